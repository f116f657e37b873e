//! The methods side by side: each an aggregator (concord-core's registry), optionally with a
//! loss weighting and a conflict-aware sample weighting, with its parameters as `key=value`
//! text; every edit goes through `MethodSpec::parse`, the one parser. On a toy preset each
//! method runs from every start. Under each method, its training options (optimizer, SAM/ASAM,
//! clipping, warm-up and cosine, the task schedule, the spike score): each control edits one
//! item of the run text `method@item@item` and the result goes through `RunSpec::parse`, so the
//! page accepts exactly what a link and `concord train --hash` accept.

use crate::session::{colour_for, use_session};
use crate::state::arena_limit;
use crate::state::use_cfg;
use concord_core::aggregators::registry;
use concord_core::dynamics::{LrSchedule, RunSpec, TaskSchedule};
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

/// Which group a run-text item belongs to (one item per group), as `apply_items` groups them.
fn item_group(item: &str) -> &str {
    match item.split_once('=').map_or(item, |(k, _)| k).trim() {
        "sgd" | "adam" | "adamw" | "spam" => "optimizer",
        "sam" | "asam" => "sam",
        "joint" | "alternating" | "sample" | "sequential" => "schedule",
        other => other,
    }
}

/// The run with its item of `group` replaced by `item` (`None`: removed, the default), checked
/// by the one parser; `what` names the control in the message.
fn with_item(run: &RunSpec, group: &str, item: Option<String>, what: &str) -> Result<RunSpec, String> {
    let options = run.options.to_text();
    let mut items: Vec<String> =
        options.split('@').filter(|i| !i.is_empty() && item_group(i) != group).map(str::to_string).collect();
    items.extend(item);
    let text =
        if items.is_empty() { run.method.to_text() } else { format!("{}@{}", run.method.to_text(), items.join("@")) };
    RunSpec::parse(&text).map_err(|e| format!("{what}: {e}"))
}

/// A number field's text as an item's value: trimmed; `None` when empty.
fn field(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// The run's options as controls. Every change builds the new run text and parses it; a value
/// the parser refuses shows its message in `error` and leaves the run as it was.
fn options_view(i: usize, run: &RunSpec, error: RwSignal<Option<String>>) -> impl IntoView {
    let cfg = use_cfg();
    let d = run.options.dynamics.clone();
    let id = |what: &str| format!("arena-{}-{what}", i + 1);
    // Apply `f` to the slot's current run; `Err` shows the message and changes nothing.
    let edit = move |f: &dyn Fn(&RunSpec) -> Result<RunSpec, String>| {
        let Some(old) = cfg.with_untracked(|s| s.arena.get(i).cloned()) else { return };
        match f(&old) {
            Ok(new) => {
                error.set(None);
                if new != old {
                    cfg.update(|s| s.arena[i] = new);
                }
            }
            Err(e) => error.set(Some(e)),
        }
    };
    let optimizer = run.options.optimizer.as_deref().map(|o| o.split('=').next().unwrap_or(o).to_string());
    let sam = d.sam.as_ref().map(|s| s.name());
    let rho = d.sam.as_ref().map(|s| s.rho.to_string()).unwrap_or_default();
    let clip = d.clip_norm.map(|c| c.to_string()).unwrap_or_default();
    let warmup = if d.warmup > 0 { d.warmup.to_string() } else { String::new() };
    let (cosine, cosine_t) = match d.lr_schedule {
        LrSchedule::Cosine { over, .. } => (true, over.map(|t| t.to_string()).unwrap_or_default()),
        LrSchedule::Constant => (false, String::new()),
    };
    let schedule = d.schedule.name();
    let switch_every = match d.schedule {
        TaskSchedule::Sequential { switch_every } => switch_every,
        _ => 100,
    };
    // Alternating's intervals or sampling's weights, as the run text writes them (`1:2`).
    let per_task = match &d.schedule {
        TaskSchedule::Alternating { intervals: Some(iv) } => {
            iv.iter().map(usize::to_string).collect::<Vec<_>>().join(":")
        }
        TaskSchedule::Sample { weights: Some(w) } => w.iter().map(f64::to_string).collect::<Vec<_>>().join(":"),
        _ => String::new(),
    };
    let spikes = d.spikes;
    let summary = if run.options.is_default() {
        "Training options: the page's".to_string()
    } else {
        format!("Training options: {}", run.options.to_text().replace('@', " · "))
    };
    let opt_choices: [(&str, &str); 5] =
        [("", "the page's"), ("sgd", "SGD"), ("adam", "Adam"), ("adamw", "AdamW"), ("spam", "SPAM (spike-aware Adam)")];
    view! {
        <details class="run-options" open=!run.options.is_default()>
            <summary title="How this method trains: its own optimizer, sharpness-aware steps, clipping, learning-rate schedule and task order. A one-task schedule (alternating, random, sequential) trains on the CPU; the rest run on WebGPU where the page has it.">{summary}</summary>
            <div class="field inline">
                <label for=id("optimizer") title="The optimizer of this run only (the learning rate stays the page's). SPAM is Adam that clips gradient spikes and resets its moments every 500 steps.">"Optimizer"</label>
                <select
                    id=id("optimizer")
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        edit(&|r| with_item(r, "optimizer", field(&v), "Optimizer"));
                    }
                >
                    {opt_choices
                        .into_iter()
                        .map(|(v, label)| {
                            let chosen = optimizer.as_deref().unwrap_or("") == v;
                            view! { <option value=v selected=chosen>{label}</option> }
                        })
                        .collect_view()}
                </select>
            </div>
            <div class="field inline">
                <label for=id("sam") title="Sharpness-aware minimization: each step first moves the weights a distance ρ uphill, then takes the gradient there, which favours flat minima. ASAM scales that move by the size of each weight. Two gradients per step.">"Sharpness-aware"</label>
                <select
                    id=id("sam")
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        edit(&|r| with_item(r, "sam", field(&v).filter(|v| v != "off"), "Sharpness-aware"));
                    }
                >
                    <option value="off" selected=sam.is_none()>"off"</option>
                    <option value="sam" selected=sam == Some("sam")>"SAM"</option>
                    <option value="asam" selected=sam == Some("asam")>"ASAM (adaptive)"</option>
                </select>
                <label for=id("rho") title="ρ: how far the sharpness-aware step looks uphill (SAM: 0.05, ASAM: 0.5 by default)">"ρ"</label>
                <input
                    id=id("rho")
                    type="text"
                    inputmode="decimal"
                    size="5"
                    disabled=sam.is_none()
                    value=rho
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        edit(&|r| {
                            let Some(s) = &r.options.dynamics.sam else { return Ok(r.clone()) };
                            let item = match field(&v) {
                                Some(v) => format!("{}={v}", s.name()),
                                None => s.name().to_string(),
                            };
                            with_item(r, "sam", Some(item), "ρ")
                        });
                    }
                />
            </div>
            <div class="field inline">
                <label for=id("clip") title="Gradient clipping: an update longer than this is scaled down to this length. Empty: no clipping.">"Clip norm"</label>
                <input
                    id=id("clip")
                    type="text"
                    inputmode="decimal"
                    placeholder="off"
                    value=clip
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        edit(&|r| with_item(r, "clip", field(&v).map(|v| format!("clip={v}")), "Clip norm"));
                    }
                />
                <label for=id("warmup") title="Warm-up: the learning rate grows from 0 to its value over this many steps. Empty or 0: none.">"Warm-up steps"</label>
                <input
                    id=id("warmup")
                    type="text"
                    inputmode="numeric"
                    size="5"
                    placeholder="0"
                    value=warmup
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        let item = field(&v).filter(|v| v != "0").map(|v| format!("warmup={v}"));
                        edit(&|r| with_item(r, "warmup", item.clone(), "Warm-up steps"));
                    }
                />
            </div>
            <div class="field inline">
                <label for=id("lr") title="The learning rate over time: constant, or a cosine that falls smoothly to 0 over T steps (empty T: the preset's run length).">"Learning rate"</label>
                <select
                    id=id("lr")
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        edit(&|r| with_item(r, "cosine", (v == "cosine").then(|| "cosine".to_string()), "Learning rate"));
                    }
                >
                    <option value="constant" selected=!cosine>"constant"</option>
                    <option value="cosine" selected=cosine>"cosine decay"</option>
                </select>
                <label for=id("cosine-t") title="T: the steps over which the cosine falls to 0 (empty: the preset's run length)">"over T"</label>
                <input
                    id=id("cosine-t")
                    type="text"
                    inputmode="numeric"
                    size="5"
                    placeholder="preset"
                    disabled=!cosine
                    value=cosine_t
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        let item = Some(field(&v).map_or("cosine".to_string(), |t| format!("cosine={t}")));
                        edit(&|r| with_item(r, "cosine", item.clone(), "Cosine length T"));
                    }
                />
            </div>
            <div class="field inline">
                <label for=id("schedule") title="Which tasks each step trains: all together (joint), one at a time in turn (alternating), one drawn at random (sample), or task 1 first, then task 2, … (sequential: watch task 1's test loss jump after the switch).">"Task schedule"</label>
                <select
                    id=id("schedule")
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        let item = match v.as_str() {
                            "joint" => None,
                            "sequential" => Some(format!("sequential={switch_every}")),
                            other => Some(other.to_string()),
                        };
                        edit(&|r| with_item(r, "schedule", item.clone(), "Task schedule"));
                    }
                >
                    <option value="joint" selected=schedule == "joint">"joint (all tasks)"</option>
                    <option value="alternating" selected=schedule == "alternating">"alternating"</option>
                    <option value="sample" selected=schedule == "sample">"random task"</option>
                    <option value="sequential" selected=schedule == "sequential">"sequential"</option>
                </select>
                <label for=id("switch") title="Sequential: the steps each task trains before the next one starts">"steps per task"</label>
                <input
                    id=id("switch")
                    type="text"
                    inputmode="numeric"
                    size="5"
                    disabled=schedule != "sequential"
                    value=switch_every.to_string()
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        let item = Some(format!("sequential={}", v.trim()));
                        edit(&|r| with_item(r, "schedule", item.clone(), "Steps per task"));
                    }
                />
                <label for=id("per-task") title="Alternating: each task's interval (1:2 trains task 2 every other pass, IMP's weighted round robin). Random task: each task's sampling weight (3:1 draws task 1 three times as often). One number per task, separated by ':'; empty: round robin / uniform.">"intervals / weights"</label>
                <input
                    id=id("per-task")
                    type="text"
                    size="7"
                    placeholder="1:1"
                    disabled=schedule != "alternating" && schedule != "sample"
                    value=per_task
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        let item = Some(match field(&v) {
                            Some(v) => format!("{schedule}={v}"),
                            None => schedule.to_string(),
                        });
                        edit(&|r| with_item(r, "schedule", item.clone(), "Per-task intervals or weights"));
                    }
                />
            </div>
            <div class="field inline">
                <input
                    id=id("spikes")
                    type="checkbox"
                    checked=spikes
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        edit(&|r| with_item(r, "spikes", on.then(|| "spikes".to_string()), "Spike score"));
                    }
                />
                <label for=id("spikes") title="Record the spike score max |g|/√v of the Adam-family optimizers every step (SPAM always records it); shown in the Training dynamics chart.">"record spike score"</label>
            </div>
        </details>
    }
}

#[component]
pub fn ArenaMethodsPanel() -> impl IntoView {
    let cfg = use_cfg();
    let aui = use_session().ui;
    let param_error = RwSignal::new(None::<String>);
    // A training option the parser refused (the run stays as it was).
    let option_error = RwSignal::new(None::<String>);

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
                let loss_aware = spec.aggregator.needs_losses();
                let error = move || aui.run_errors.with(|e| e.get(i).cloned().flatten());
                let spec2 = spec.clone();
                let options = options_view(i, &run, option_error);
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
                                    // A loss-aware method (MoCo, DB-MTL) is the run's weighting
                                    // itself: choosing it clears the loss weighting.
                                    if let Some(new) = respec(&old, &v, w, sw).or_else(|| respec(&old, &v, None, sw)) {
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
                                        // A loss-aware method reads the raw losses: no weighting on top.
                                        view! { <option value=*n disabled=loss_aware selected=spec.weighting.as_ref().map(|w| w.name()) == Some(*n)>{label}</option> }
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
                        {options}
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
            <p id="option-error" class="error" role="alert" class:hidden=move || option_error.with(|e| e.is_none())>
                {move || option_error.get().unwrap_or_default()}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_control_edits_one_item_through_the_parser() {
        let run = RunSpec::parse("cagrad:c=0.3@spam@sam@spikes").unwrap();
        let t = |r: Result<RunSpec, String>| r.unwrap().to_text();
        assert_eq!(t(with_item(&run, "optimizer", Some("adam".into()), "x")), "cagrad:c=0.3@adam@sam@spikes");
        assert_eq!(t(with_item(&run, "optimizer", None, "x")), "cagrad:c=0.3@sam@spikes");
        assert_eq!(t(with_item(&run, "sam", Some("asam=0.2".into()), "x")), "cagrad:c=0.3@spam@asam=0.2@spikes");
        assert_eq!(t(with_item(&run, "spikes", None, "x")), "cagrad:c=0.3@spam@sam");
        let plain = RunSpec::parse("mean").unwrap();
        assert_eq!(t(with_item(&plain, "schedule", Some("sequential=20".into()), "x")), "mean@sequential=20");
        assert_eq!(t(with_item(&plain, "schedule", Some("alternating=1:2".into()), "x")), "mean@alternating=1:2");
        assert_eq!(t(with_item(&plain, "schedule", Some("sample=3:1".into()), "x")), "mean@sample=3:1");
        let e = with_item(&plain, "schedule", Some("sample=3:x".into()), "Per-task intervals or weights").unwrap_err();
        assert!(e.starts_with("Per-task intervals or weights:") && e.contains("≥ 0"), "{e}");
        assert_eq!(t(with_item(&plain, "cosine", Some("cosine=50".into()), "x")), "mean@cosine=50");
        // A value the parser refuses is an error naming the control; the caller keeps the run.
        let e = with_item(&run, "clip", Some("clip=-2".into()), "Clip norm").unwrap_err();
        assert!(e.starts_with("Clip norm:") && e.contains("positive number"), "{e}");
        let e = with_item(&plain, "schedule", Some("sequential=0".into()), "Steps per task").unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
        assert_eq!(field("  "), None);
        assert_eq!(item_group("spam=500"), "optimizer");
    }

    /// The method picker's fallback: MoCo or DB-MTL with the run's loss weighting is refused, so
    /// picking one clears the weighting and keeps the sample weighting.
    #[test]
    fn picking_a_loss_aware_method_clears_the_loss_weighting() {
        let old = MethodSpec::parse("upgrad+uw+harmonize").unwrap();
        assert!(respec(&old, "moco", Some("uw"), Some("harmonize")).is_none());
        let new = respec(&old, "moco", None, Some("harmonize")).unwrap();
        assert_eq!(new.to_text(), "moco+harmonize");
        assert_eq!(respec(&old, "mgda", Some("uw"), Some("harmonize")).unwrap().to_text(), "mgda+uw+harmonize");
    }
}
