//! The arena's methods: up to four, each an aggregator (concord-core's registry) or a loss
//! weighting on top of one, with its parameters as `key=value` text.

use crate::arena::{ArenaUi, SLOT_COLOURS};
use crate::spec::MethodSpec;
use crate::state::MAX_ARENA;
use crate::use_cfg;
use concord_core::aggregators::registry;
use concord_core::weightings;
use leptos::prelude::*;

/// "c (default 0.4), norm_eps (…)" for the hint under a slot.
fn param_hint(spec: &MethodSpec) -> String {
    let mut parts: Vec<String> = registry::find(spec.aggregator)
        .map(|i| i.params.iter().map(|p| format!("{} ({}, {})", p.name, p.default.text(), p.range)).collect())
        .unwrap_or_default();
    if let Some(w) = spec.weighting.and_then(weightings::describe) {
        parts.extend(w.params.iter().map(|p| format!("{} (default {})", p.name, p.default)));
    }
    if parts.is_empty() {
        "no parameters".into()
    } else {
        format!("parameters: {}", parts.join("; "))
    }
}

/// Parse `k=v k=v` (spaces or `:` between pairs) against the spec's names.
fn parse_params(spec: &MethodSpec, text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in text.split([' ', ':']).map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| format!("“{pair}” is not key=value"))?;
        if !spec.knows(k.trim()) {
            return Err(format!("{} has no parameter “{}”", spec.label(), k.trim()));
        }
        out.push((k.trim().to_string(), v.trim().replace(',', ";")));
    }
    Ok(out)
}

#[component]
pub fn ArenaMethodsPanel() -> impl IntoView {
    let cfg = use_cfg();
    let aui = expect_context::<ArenaUi>();
    let param_error = RwSignal::new(None::<String>);

    let slots = move || {
        let arena = cfg.with(|s| s.arena.clone());
        let n = arena.len();
        arena
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let colour = SLOT_COLOURS[i % SLOT_COLOURS.len()];
                let agg_id = format!("arena-{}-aggregator", i + 1);
                let w_id = format!("arena-{}-weighting", i + 1);
                let p_id = format!("arena-{}-params", i + 1);
                let hint = param_hint(&spec);
                let error = move || aui.run_errors.with(|e| e.get(i).cloned().flatten());
                let spec2 = spec.clone();
                view! {
                    <li class="slot" style=format!("border-left-color:{colour}")>
                        <div class="field inline">
                            <label for=agg_id.clone()>{format!("Method {}", i + 1)}</label>
                            <select
                                id=agg_id
                                on:change=move |ev| {
                                    let v = event_target_value(&ev);
                                    if let Some(info) = registry::find(&v) {
                                        cfg.update(|s| {
                                            s.arena[i].aggregator = info.name;
                                            s.arena[i].params.retain(|(k, _)| info.param(k).is_some());
                                        });
                                    }
                                }
                            >
                                {registry::names()
                                    .into_iter()
                                    .map(|n| {
                                        let label = registry::find(n).map_or(n, |i| i.label);
                                        view! { <option value=n selected=spec.aggregator == n>{label}</option> }
                                    })
                                    .collect_view()}
                            </select>
                            <button
                                type="button"
                                class="btn small"
                                disabled=n <= 1
                                aria-label=format!("Remove method {}", i + 1)
                                on:click=move |_| cfg.update(|s| {
                                    if s.arena.len() > 1 {
                                        s.arena.remove(i);
                                    }
                                })
                            >
                                "−"
                            </button>
                        </div>
                        <div class="field inline">
                            <label for=w_id.clone()>"Loss weighting"</label>
                            <select
                                id=w_id
                                on:change=move |ev| {
                                    let v = event_target_value(&ev);
                                    let w = weightings::NAMES.iter().copied().find(|n| *n == v);
                                    cfg.update(|s| {
                                        s.arena[i].weighting = w;
                                        let agg = registry::find(s.arena[i].aggregator);
                                        s.arena[i].params.retain(|(k, _)| agg.is_some_and(|a| a.param(k).is_some()));
                                    });
                                }
                            >
                                <option value="none" selected=spec.weighting.is_none()>"none"</option>
                                {weightings::NAMES
                                    .iter()
                                    .map(|n| {
                                        let label = weightings::describe(n).map_or(*n, |d| d.label);
                                        view! { <option value=*n selected=spec.weighting == Some(*n)>{label}</option> }
                                    })
                                    .collect_view()}
                            </select>
                        </div>
                        <div class="field">
                            <label for=p_id.clone()>"Parameters"</label>
                            <input
                                id=p_id
                                type="text"
                                placeholder="key=value …"
                                value=spec.params_text()
                                on:change=move |ev| {
                                    match parse_params(&spec2, &event_target_value(&ev)) {
                                        Ok(p) => {
                                            param_error.set(None);
                                            cfg.update(|s| s.arena[i].params = p);
                                        }
                                        Err(e) => param_error.set(Some(e)),
                                    }
                                }
                            />
                            <small class="hint">{hint}</small>
                        </div>
                        <p class="error" role="alert" class:hidden=move || error().is_none()>{error}</p>
                    </li>
                }
            })
            .collect_view()
    };

    view! {
        <section class="card" class:hidden=move || cfg.with(|s| s.is_hidden("arena"))>
            <h2>"Arena: methods side by side"</h2>
            <ol class="slots">{slots}</ol>
            <p class="error" role="alert" class:hidden=move || param_error.with(|e| e.is_none())>
                {move || param_error.get().unwrap_or_default()}
            </p>
            <button
                type="button"
                class="btn small"
                id="add-method"
                disabled=move || cfg.with(|s| s.arena.len() >= MAX_ARENA)
                on:click=move |_| cfg.update(|s| {
                    if s.arena.len() < MAX_ARENA {
                        s.arena.push(MethodSpec::plain("upgrad"));
                    }
                })
            >
                "+ Add a method"
            </button>
            <p class="hint">"Same data, seed and initial weights for every method. Changing a method restarts the arena; the learning rate changes live."</p>
        </section>
    }
}
