//! The methods side by side: each an aggregator (concord-core's registry) or a loss weighting on
//! top of one, with its parameters as `key=value` text; every edit goes through
//! `MethodSpec::parse`, the one parser. On a toy preset each method runs from every start.

use crate::session::{colour_for, use_session};
use crate::state::arena_limit;
use crate::state::use_cfg;
use concord_core::aggregators::registry;
use concord_core::weightings;
use concord_core::MethodSpec;
use leptos::prelude::*;

/// `k=v k=v`: the parameters given, aggregator's then weighting's.
fn params_text(spec: &MethodSpec) -> String {
    let mut p: Vec<String> = spec.aggregator.given().iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(w) = &spec.weighting {
        p.extend(w.given().iter().map(|(k, v)| format!("{k}={v}")));
    }
    p.join(" ")
}

/// The spec with another aggregator or weighting: the parameters that still fit are kept.
fn respec(spec: &MethodSpec, aggregator: &str, weighting: Option<&str>) -> Option<MethodSpec> {
    let head = match weighting {
        Some(w) => format!("{aggregator}+{w}"),
        None => aggregator.to_string(),
    };
    let mut spec_now = MethodSpec::parse(&head).ok()?;
    for pair in params_text(spec).split(' ').filter(|p| !p.is_empty()) {
        if let Ok(s) = MethodSpec::parse(&format!("{}:{pair}", spec_now.to_text())) {
            spec_now = s;
        }
    }
    Some(spec_now)
}

/// "c (default 0.4), norm_eps (…)" for the hint under a slot.
fn param_hint(spec: &MethodSpec) -> String {
    let info = spec.aggregator.info();
    let mut parts: Vec<String> =
        info.params.iter().map(|p| format!("{} ({}, {})", p.name, p.default.text(), p.range)).collect();
    if let Some(w) = spec.weighting.as_ref().map(|w| w.describe()) {
        parts.extend(w.params.iter().map(|p| format!("{} (default {})", p.name, p.default)));
    }
    if parts.is_empty() {
        "no parameters".into()
    } else {
        format!("parameters: {}", parts.join("; "))
    }
}

/// Parse `k=v k=v` (spaces or `:` between pairs) into the spec: `MethodSpec::parse` checks
/// names and values.
fn parse_params(spec: &MethodSpec, text: &str) -> Result<MethodSpec, String> {
    let mut head = spec.aggregator.name().to_string();
    if let Some(w) = &spec.weighting {
        head.push('+');
        head.push_str(w.name());
    }
    for pair in text.split([' ', ':']).map(str::trim).filter(|p| !p.is_empty()) {
        if !pair.contains('=') {
            return Err(format!("“{pair}” is not key=value"));
        }
        head.push(':');
        head.push_str(&pair.replace(',', ";"));
    }
    MethodSpec::parse(&head)
}

#[component]
pub fn ArenaMethodsPanel() -> impl IntoView {
    let cfg = use_cfg();
    let aui = use_session().ui;
    let param_error = RwSignal::new(None::<String>);

    let slots = move || {
        let arena = cfg.with(|s| s.arena.clone());
        let n = arena.len();
        arena
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                // The colour the runs of this slot are drawn in (the toys keep the classic ones).
                let colour = colour_for(&spec, i, cfg.with_untracked(|s| s.preset.is_toy()));
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
                                    let old = cfg.with_untracked(|s| s.arena[i].clone());
                                    if let Some(new) = respec(&old, &v, old.weighting.as_ref().map(|w| w.name())) {
                                        cfg.update(|s| s.arena[i] = new);
                                    }
                                }
                            >
                                {registry::names()
                                    .into_iter()
                                    .map(|n| {
                                        let label = registry::find(n).map_or(n, |i| i.label);
                                        view! { <option value=n selected=spec.aggregator.name() == n>{label}</option> }
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
                                    let old = cfg.with_untracked(|s| s.arena[i].clone());
                                    if let Some(new) = respec(&old, old.aggregator.name(), w) {
                                        cfg.update(|s| s.arena[i] = new);
                                    }
                                }
                            >
                                <option value="none" selected=spec.weighting.is_none()>"none"</option>
                                {weightings::NAMES
                                    .iter()
                                    .map(|n| {
                                        let label = weightings::describe(n).map_or(*n, |d| d.label);
                                        view! { <option value=*n selected=spec.weighting.as_ref().map(|w| w.name()) == Some(*n)>{label}</option> }
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
                                value=params_text(&spec)
                                on:change=move |ev| {
                                    match parse_params(&spec2, &event_target_value(&ev)) {
                                        Ok(p) => {
                                            param_error.set(None);
                                            cfg.update(|s| s.arena[i] = p);
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
            <h2>{move || if cfg.with(|s| s.preset.is_toy()) { "Methods (each from every start)" } else { "Arena: methods side by side" }}</h2>
            <ol class="slots">{slots}</ol>
            <p class="error" role="alert" class:hidden=move || param_error.with(|e| e.is_none())>
                {move || param_error.get().unwrap_or_default()}
            </p>
            <button
                type="button"
                class="btn small"
                id="add-method"
                disabled=move || cfg.with(|s| s.arena.len() >= arena_limit(s.preset.is_toy()))
                on:click=move |_| cfg.update(|s| {
                    if s.arena.len() < arena_limit(s.preset.is_toy()) {
                        s.arena.push(MethodSpec::plain("upgrad"));
                    }
                })
            >
                "+ Add a method"
            </button>
            <p class="hint">"Same data, seed and initial weights (or starts) for every method. Changing a method restarts the runs; the learning rate changes live."</p>
        </section>
    }
}
