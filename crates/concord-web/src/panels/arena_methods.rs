//! The methods side by side: each an aggregator (concord-core's registry), optionally with a
//! loss weighting and a conflict-aware sample weighting, with its parameters as `key=value`
//! text; every edit goes through `MethodSpec::parse`, the one parser. On a toy preset each
//! method runs from every start.

use crate::session::{colour_for, use_session};
use crate::state::arena_limit;
use crate::state::use_cfg;
use concord_core::aggregators::registry;
use concord_core::dynamics::RunSpec;
use concord_core::sample_weighting;
use concord_core::weightings;
use concord_core::MethodSpec;
use leptos::prelude::*;

/// `k=v k=v`: the parameters given, aggregator's, weighting's, then the sample weighting's.
fn params_text(spec: &MethodSpec) -> String {
    let mut p: Vec<String> = spec.aggregator.given().iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(w) = &spec.weighting {
        p.extend(w.given().iter().map(|(k, v)| format!("{k}={v}")));
    }
    if let Some(w) = &spec.sample_weighting {
        p.extend(w.given().iter().map(|(k, v)| format!("{k}={v}")));
    }
    p.join(" ")
}

/// `aggregator[+weighting][+sample weighting]`.
fn head_of(aggregator: &str, weighting: Option<&str>, sample: Option<&str>) -> String {
    let mut head = aggregator.to_string();
    for part in [weighting, sample].into_iter().flatten() {
        head.push('+');
        head.push_str(part);
    }
    head
}

/// The spec with another aggregator, weighting or sample weighting: the parameters that still
/// fit are kept.
fn respec(spec: &MethodSpec, aggregator: &str, weighting: Option<&str>, sample: Option<&str>) -> Option<MethodSpec> {
    let head = head_of(aggregator, weighting, sample);
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
    if let Some(w) = spec.sample_weighting.as_ref().map(|w| w.describe()) {
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
    let mut head = head_of(
        spec.aggregator.name(),
        spec.weighting.as_ref().map(|w| w.name()),
        spec.sample_weighting.as_ref().map(|w| w.name()),
    );
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
            .map(|(i, run)| {
                // The colour the runs of this slot are drawn in (the toys keep the classic ones).
                let colour = colour_for(&run, i, cfg.with_untracked(|s| s.preset.is_toy()));
                let spec = run.method.clone();
                let agg_id = format!("arena-{}-aggregator", i + 1);
                let w_id = format!("arena-{}-weighting", i + 1);
                let p_id = format!("arena-{}-params", i + 1);
                let s_id = format!("arena-{}-samples", i + 1);
                // The analytic problems have no samples to weigh.
                let is_toy = cfg.with_untracked(|s| s.preset.is_toy());
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
                                    let old = cfg.with_untracked(|s| s.arena[i].method.clone());
                                    let (w, sw) = (old.weighting.as_ref().map(|w| w.name()), old.sample_weighting.as_ref().map(|w| w.name()));
                                    if let Some(new) = respec(&old, &v, w, sw) {
                                        cfg.update(|s| s.arena[i].method = new);
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
                                    let old = cfg.with_untracked(|s| s.arena[i].method.clone());
                                    let sw = old.sample_weighting.as_ref().map(|w| w.name());
                                    if let Some(new) = respec(&old, old.aggregator.name(), w, sw) {
                                        cfg.update(|s| s.arena[i].method = new);
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
                        <div class="field inline" class:hidden=is_toy>
                            <label for=s_id.clone() title="A stage before the weighting and the aggregator: each sample's own task conflict rewrites the shared gradient (runs on the CPU)">"Sample weighting"</label>
                            <select
                                id=s_id
                                on:change=move |ev| {
                                    let v = event_target_value(&ev);
                                    let sw = sample_weighting::NAMES.iter().copied().find(|n| *n == v);
                                    let old = cfg.with_untracked(|s| s.arena[i].method.clone());
                                    let w = old.weighting.as_ref().map(|w| w.name());
                                    if let Some(new) = respec(&old, old.aggregator.name(), w, sw) {
                                        cfg.update(|s| s.arena[i].method = new);
                                    }
                                }
                            >
                                <option value="none" selected=spec.sample_weighting.is_none()>"none"</option>
                                {sample_weighting::NAMES
                                    .iter()
                                    .map(|n| {
                                        let label = sample_weighting::describe(n).map_or(*n, |d| d.label);
                                        let chosen = spec.sample_weighting.as_ref().map(|w| w.name()) == Some(*n);
                                        view! { <option value=*n selected=chosen>{label}</option> }
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
                                            cfg.update(|s| s.arena[i].method = p);
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
                        s.arena.push(RunSpec::plain(MethodSpec::plain("upgrad")));
                    }
                })
            >
                "+ Add a method"
            </button>
            <p class="hint">"Same data, seed and initial weights (or starts) for every method. Changing a method restarts the runs; the learning rate changes live."</p>
        </section>
    }
}
