//! Training dynamics over the steps (issue 18): one small chart, one line per run in its colour,
//! of a series chosen in its select — the spike score max|g|/√v (log scale, with SPAM's clip
//! level √θ dashed), SAM's cosine between the plain and the sharpness-aware update, the learning
//! rate the optimizer used (warm-up, cosine) and the update's norm before clipping. The values
//! are the runs' own `DynamicsRecord`s (concord-core), read back with their history; the panel
//! is hidden while no run records them (plain runs with SGD).
//!
//! What the loss-curve chart marks as well (switches, the gap, spikes, resets) is found in
//! `dynamics_marks`, which both panels read (panels do not import each other).

use crate::chart::{self, Axis, Frame, INK, MUTED};
use crate::dynamics_marks::{first_gap, spikes_and_resets, switches, test_series, SPIKE_THETA};
use crate::session::{use_session, Session, SessionInner as Arena};
use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use web_sys::HtmlCanvasElement;

/// Width of the canvas (CSS pixels), as the other panels.
const WIDTH: f64 = 760.0;
const PLOT_H: f64 = 170.0;
/// Most points drawn per line.
const MAX_POINTS: usize = 600;

/// The series the select offers: (value, title, y label).
const SERIES: [(&str, &str); 4] = [
    ("spike", "Spike score max |g|/√v (log scale; - - √θ = √5000, SPAM's clip level)"),
    ("sam", "SAM: cosine between the plain and the sharpness-aware update"),
    ("lr", "Learning rate used (warm-up, cosine schedule)"),
    ("norm", "Update norm ‖d‖ before clipping"),
];

/// A run's value of `series` at one record.
fn pick(series: &str, d: &concord_core::dynamics::DynamicsRecord) -> Option<f64> {
    match series {
        "spike" => d.spike_score,
        "sam" => d.sam_cosine,
        "lr" => Some(d.lr),
        _ => Some(d.grad_norm),
    }
}

fn has_dynamics(a: &Arena) -> bool {
    a.runs.iter().any(|r| r.history.iter().any(|h| h.dynamics.is_some()))
}

/// What the chart shows for one run (also the hook's answer).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Drawn {
    run: String,
    spec: String,
    colour: String,
    backend: &'static str,
    steps: usize,
    /// (step, value) of the chosen series.
    points: Vec<(usize, f64)>,
    switches: Vec<usize>,
    spikes: Vec<usize>,
    resets: Vec<usize>,
    /// Task 1's test losses (step, loss) at every evaluating record.
    test_losses: Vec<(usize, f64)>,
    /// Task 1's stability gap after the first switch: {atSwitch, worst, worstStep, last, gap}.
    gap: Option<serde_json::Value>,
}

fn drawn(a: &Arena, series: &str) -> Vec<Drawn> {
    a.runs
        .iter()
        .map(|r| {
            let (spikes, resets) = spikes_and_resets(r);
            Drawn {
                run: r.label.clone(),
                spec: r.spec.to_text(),
                colour: r.colour.to_string(),
                backend: r.kind(),
                steps: r.steps,
                points: r
                    .history
                    .iter()
                    .filter_map(|h| Some((h.step, pick(series, h.dynamics.as_ref()?)?)))
                    .filter(|p| p.1.is_finite())
                    .collect(),
                switches: switches(r),
                spikes,
                resets,
                test_losses: test_series(r, 0),
                gap: first_gap(r).map(|(g, step)| {
                    serde_json::json!({"atSwitch": g.at_switch, "worst": g.worst, "worstStep": step, "last": g.last, "gap": g.gap})
                }),
            }
        })
        .collect()
}

fn draw(canvas: &HtmlCanvasElement, a: &Arena, series: &str) -> Vec<Drawn> {
    let runs = drawn(a, series);
    let Some(ctx) = chart::prepare(canvas, WIDTH, PLOT_H + 80.0) else { return runs };
    // Legend: the runs that record this series.
    let mut x = 8.0;
    ctx.set_text_baseline("middle");
    for r in runs.iter().filter(|r| !r.points.is_empty()) {
        ctx.set_fill_style_str(&r.colour);
        ctx.fill_rect(x, 7.0, 14.0, 10.0);
        chart::text(&ctx, &r.run, x + 18.0, 12.0, "left", chart::FONT, INK);
        ctx.set_font(chart::FONT);
        x += 18.0 + ctx.measure_text(&r.run).map(|m| m.width()).unwrap_or(60.0) + 16.0;
    }
    ctx.set_text_baseline("alphabetic");
    let log = series == "spike" || series == "norm";
    let reference = (series == "spike").then(|| SPIKE_THETA.sqrt());
    let values = runs.iter().flat_map(|r| r.points.iter().map(|p| p.1));
    // SAM's cosine sits near 1: fit its range (with 1 in view) so the dips show.
    let top = (series == "sam").then_some(1.0);
    let ya = Axis::fit(values.chain(reference).chain(top), log);
    let max_step = runs.iter().map(|r| r.steps).max().unwrap_or(0).max(1) as f64;
    let xa = Axis::fixed(0.0, max_step);
    let f = Frame { x: 62.0, y: 50.0, w: WIDTH - 80.0, h: PLOT_H };
    let title = SERIES.iter().find(|s| s.0 == series).map_or("", |s| s.1);
    let mut fig = chart::Figure::new(f, xa, ya, title, "step");
    if let Some(level) = reference {
        fig.line(&[(0.0, level), (max_step, level)], chart::Pen::dashed(MUTED, 1.2));
    }
    let lines: Vec<Vec<(f64, f64)>> =
        runs.iter().map(|r| r.points.iter().map(|&(s, v)| (s as f64, v)).collect()).collect();
    for (r, pts) in runs.iter().zip(&lines) {
        fig.line(&chart::downsample(pts, MAX_POINTS), chart::Pen::solid(&r.colour, 1.5));
    }
    fig.draw(canvas, &ctx);
    if runs.iter().all(|r| r.points.is_empty()) {
        let why = match series {
            "spike" => "No spike score: pick SPAM, or Adam with “record spike score”, in a method's training options.",
            "sam" => "No SAM run: set “Sharpness-aware” to SAM or ASAM in a method's training options.",
            _ => "No run records training dynamics yet.",
        };
        ctx.set_text_baseline("middle");
        chart::text(&ctx, why, f.x + f.w / 2.0, f.y + f.h / 2.0, "center", chart::FONT, MUTED);
        ctx.set_text_baseline("alphabetic");
    }
    for (r, pts) in runs.iter().zip(&lines) {
        // The spikes over √θ: a dot on the line.
        if series == "spike" {
            for &(s, v) in pts.iter().filter(|p| p.1 > SPIKE_THETA.sqrt()) {
                if let (Some(u), Some(w)) = (xa.unit(s), ya.unit(v)) {
                    chart::dot(&ctx, f.x + u * f.w, f.y + f.h - w * f.h, 2.5, &r.colour, Some(INK));
                }
            }
        }
    }
    runs
}

/// `dynamics(series?)` on this playground's hook object: what the chart shows for `series`
/// ("spike" | "sam" | "lr" | "norm"; default the select's), drawn first: {shown, series, runs:
/// [{run, spec, colour, backend, steps, points: [[step, value]], switches, spikes, resets,
/// testLosses: [[step, loss]] (task 1), gap: {atSwitch, worst, worstStep, last, gap} | null}]}.
fn install_hook(
    session: Session,
    canvas: NodeRef<Canvas>,
    series: RwSignal<String>,
    hidden: impl Fn() -> bool + 'static,
) {
    let Some(hook) = session.with(|s| s.hook.clone()) else { return };
    let get = Closure::<dyn Fn(JsValue) -> JsValue>::new(move |which: JsValue| {
        let shown = !hidden();
        let which = which.as_string().unwrap_or_else(|| series.get_untracked());
        let runs = session
            .with(|a| match canvas.get_untracked().filter(|_| shown) {
                Some(c) if which == series.get_untracked() => draw(&c, a, &which),
                _ => drawn(a, &which),
            })
            .unwrap_or_default();
        let out = serde_json::json!({ "shown": shown, "series": which, "runs": runs });
        js_sys::JSON::parse(&out.to_string()).unwrap_or(JsValue::NULL)
    });
    let _ = js_sys::Reflect::set(&hook, &"dynamics".into(), get.as_ref());
    get.forget();
}

#[component]
pub fn DynamicsPanel() -> impl IntoView {
    let session = use_session();
    let aui = session.ui;
    let canvas = NodeRef::<Canvas>::new();
    let series = RwSignal::new("spike".to_string());
    let none = Signal::derive(move || {
        aui.version.track();
        !session.with(|a| has_dynamics(a)).unwrap_or(false)
    });
    let panel_hidden = crate::state::panel_hidden("dynamics");
    let hidden = move || panel_hidden() || none.get();
    install_hook(session, canvas, series, move || panel_hidden() || none.get_untracked());

    Effect::new(move |_| {
        aui.version.track();
        let which = series.get();
        if panel_hidden() || none.get() {
            return;
        }
        let Some(c) = canvas.get_untracked() else { return };
        session.with(|a| draw(&c, a, &which));
    });

    let title = "Training dynamics";
    view! {
        <section class="card figure-card" class:hidden=hidden data-panel="dynamics">
            <div class="figure-head">
                <h2>{title}</h2>
                <select
                    id="dynamics-series"
                    aria-label="Series"
                    title="Which per-step quantity of the training dynamics to draw"
                    on:change=move |ev| series.set(event_target_value(&ev))
                >
                    {SERIES
                        .iter()
                        .map(|(v, t)| {
                            let short = t.split(" (").next().unwrap_or(t).split(':').next().unwrap_or(t);
                            view! { <option value=*v selected=*v == "spike">{short.to_string()}</option> }
                        })
                        .collect_view()}
                </select>
                <button
                    type="button"
                    class="btn small"
                    aria-label="Download the Training dynamics panel as PNG"
                    on:click=move |_| {
                        if let Some(c) = canvas.get_untracked() {
                            crate::dom::download_png(&c, "dynamics");
                        }
                    }
                >
                    "PNG"
                </button>
            </div>
            <canvas node_ref=canvas role="img" aria-label=title></canvas>
            <p class="hint">
                "Per step, from each run's own record: the spike score max |g|/√v of the Adam-family optimizers (a coordinate whose gradient is far above its running scale; SPAM clips above the dashed √θ and resets its moments every 500 steps), SAM's agreement between the plain and the sharpness-aware update (1: the same direction), the learning rate after warm-up and schedule, and the update's length before clipping. The loss curves mark spikes (▲) and SPAM's resets (▽)."
            </p>
        </section>
    }
}
