//! Sample-level conflict over the steps (issue 17): three stacked plots, one line per run in its
//! colour — per-sample coherence α, the fraction of train samples whose tasks' gradients
//! conflict, and the share of Σ_i ‖g_i‖ carried by the most opposed 10 % of them (dashed: 0.1,
//! their head count). The values are `sample_series`: concord-core's `SampleConflict` of the
//! train set at each run's parameter snapshots and latest read-back, computed on the page's CPU
//! for every MLP run, WebGPU runs included, a few milliseconds per redraw.

use crate::chart::{self, Axis, Frame, INK, MUTED};
use crate::dom::figure;
use crate::sample_series::Inputs;
use crate::session::{now_ms, use_session, Session, SessionInner as Arena};
use concord_core::train::{SampleConflict, OPPOSING_TOP_PERCENT};
use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

/// Width of the canvas (CSS pixels), as the other panels.
const WIDTH: f64 = 760.0;
/// Height of each of the three plots.
const PLOT_H: f64 = 112.0;
/// Room for a plot's title above it and its step labels below.
const GAP: f64 = 44.0;
/// CPU time per redraw for points not computed yet (ms); the rest follow in later redraws.
const BUDGET_MS: f64 = 8.0;

/// What the chart drew for one run (also the test hook's answer).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Drawn {
    run: String,
    colour: String,
    backend: &'static str,
    /// The run's steps as last read back.
    steps: usize,
    /// The train points measured (0: the run has no MLP).
    train_points: usize,
    points: Vec<Point>,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Point {
    step: usize,
    coherence: Option<f64>,
    conflicting_fraction: f64,
    opposing_share: Option<f64>,
    samples: usize,
    top: usize,
}

impl Point {
    fn of(step: usize, s: &SampleConflict) -> Point {
        Point {
            step,
            coherence: s.coherence,
            conflicting_fraction: s.conflicting_fraction,
            opposing_share: s.opposing_share,
            samples: s.samples,
            top: s.top,
        }
    }
}

/// Brings every MLP run's series up to its snapshots, until `deadline` (ms, `None`: all of it).
/// Returns whether every series is complete.
fn refresh(a: &mut Arena, deadline: Option<f64>) -> bool {
    // One point per refresh whatever the budget (so a slow model still progresses), then as
    // many as fit before the deadline.
    let first = std::cell::Cell::new(true);
    let more = || first.replace(false) || deadline.is_none_or(|d| now_ms() < d);
    let mut complete = true;
    for run in a.runs.iter_mut() {
        let mut series = std::mem::take(&mut run.sample_series);
        if let (true, Some(mlp), Some((x, y)), Some(now)) = (run.is_built(), run.mlp(), run.train_set(), run.params()) {
            let inputs = Inputs { mlp, x, y };
            let s = &run.snapshots;
            complete &= series.update(&inputs, &s.steps, &s.params, (run.steps, now), more);
        }
        run.sample_series = series;
    }
    complete
}

/// The runs' series as the chart draws them.
fn drawn(a: &Arena) -> Vec<Drawn> {
    a.runs
        .iter()
        .filter(|r| r.is_built())
        .map(|r| {
            let has_mlp = r.mlp().is_some();
            Drawn {
                run: r.label.clone(),
                colour: r.colour.to_string(),
                backend: r.kind(),
                steps: r.steps,
                train_points: if has_mlp { r.sample_series.points } else { 0 },
                points: r.sample_series.values().map(|(step, s)| Point::of(step, s)).collect(),
            }
        })
        .collect()
}

fn legend(ctx: &CanvasRenderingContext2d, runs: &[Drawn], y: f64) {
    let mut x = 8.0;
    ctx.set_text_baseline("middle");
    ctx.set_font(chart::FONT);
    for r in runs {
        ctx.set_fill_style_str(&r.colour);
        ctx.fill_rect(x, y - 5.0, 14.0, 10.0);
        chart::text(ctx, &r.run, x + 18.0, y, "left", chart::FONT, INK);
        ctx.set_font(chart::FONT);
        x += 18.0 + ctx.measure_text(&r.run).map(|m| m.width()).unwrap_or(60.0) + 16.0;
    }
    ctx.set_text_baseline("alphabetic");
}

/// The top of a plot's value axis: the smallest of 0.01, 0.02, 0.05, 0.1, 0.2, 0.5 and 1 above
/// every value (and reference level) with a little room, so small values are not a flat line.
fn top_of(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0].into_iter().find(|t| max * 1.08 <= *t).unwrap_or(1.0)
}

/// Draws the three plots; returns what they show.
fn draw(canvas: &HtmlCanvasElement, a: &Arena) -> Vec<Drawn> {
    let runs = drawn(a);
    let height = 30.0 + 3.0 * (PLOT_H + GAP) + 10.0;
    let Some(ctx) = chart::prepare(canvas, WIDTH, height) else { return runs };
    legend(&ctx, &runs, 12.0);
    let max_step = a.runs.iter().map(|r| r.steps).max().unwrap_or(0).max(1) as f64;
    let xa = Axis::fixed(0.0, max_step);
    let k = OPPOSING_TOP_PERCENT;
    // α of B equal-norm orthogonal samples (the train points measured).
    let b = runs.iter().map(|r| r.train_points).max().unwrap_or(0);
    // Each plot: its title, its value, and a reference level with its label.
    type Plot = (&'static str, fn(&Point) -> Option<f64>, Option<(f64, String)>);
    let plots: [Plot; 3] = [
        (
            "Coherence α of the per-sample gradients (1: all pull the same way)",
            |p| p.coherence,
            (b > 0).then(|| (1.0 / b as f64, format!("- - 1/B = 1/{b}: orthogonal samples"))),
        ),
        (
            "Conflicting fraction: share of train samples whose tasks’ gradients oppose",
            |p| Some(p.conflicting_fraction),
            None,
        ),
        (
            "Opposing share: part of Σᵢ‖gᵢ‖ the most opposed 10 % carry",
            |p| p.opposing_share,
            Some((k as f64 / 100.0, format!("- - {k} %: their head count"))),
        ),
    ];
    let none = !a.runs.iter().any(|r| r.mlp().is_some());
    for (i, (title, pick, reference)) in plots.iter().enumerate() {
        let f = Frame { x: 52.0, y: 30.0 + 20.0 + i as f64 * (PLOT_H + GAP), w: WIDTH - 70.0, h: PLOT_H };
        let values = runs.iter().flat_map(|r| r.points.iter().filter_map(pick));
        let top = top_of(values.chain(reference.as_ref().map(|r| r.0)));
        let ya = Axis::fixed(0.0, top);
        let mut fig = chart::Figure::new(f, xa, ya, title, "step");
        if let Some((level, _)) = reference {
            fig.line(&[(0.0, *level), (max_step, *level)], chart::Pen::dashed(MUTED, 1.2));
        }
        // Earlier runs drawn wider, so a later run on the same values leaves them visible.
        let n = runs.len();
        let lines: Vec<Vec<(f64, f64)>> = runs
            .iter()
            .map(|r| r.points.iter().map(|p| (p.step as f64, pick(p).unwrap_or(f64::NAN))).collect())
            .collect();
        if !none {
            for (j, (r, pts)) in runs.iter().zip(&lines).enumerate() {
                fig.line(pts, chart::Pen::solid(&r.colour, 1.5 + 0.9 * (n - 1 - j) as f64));
            }
        }
        fig.draw(canvas, &ctx);
        if let Some((_, label)) = reference {
            chart::text(&ctx, label, f.x + f.w, f.y - 6.0, "right", chart::FONT, MUTED);
        }
        if none {
            let why = "Measured for MLP models only: this model has no per-sample conflict here (MoE).";
            ctx.set_text_baseline("middle");
            chart::text(&ctx, why, f.x + f.w / 2.0, f.y + f.h / 2.0, "center", chart::FONT, MUTED);
            ctx.set_text_baseline("alphabetic");
            continue;
        }
        for (r, pts) in runs.iter().zip(&lines) {
            // A run that has just started: dots, so a single point shows.
            if pts.len() < 3 {
                for &(s, v) in pts {
                    if let (Some(u), Some(w)) = (xa.unit(s), ya.unit(v)) {
                        chart::dot(&ctx, f.x + u * f.w, f.y + f.h - w * f.h, 2.5, &r.colour, None);
                    }
                }
            }
        }
    }
    runs
}

/// `sampleConflict()` on this playground's hook object: every series completed and drawn, then
/// what the chart shows ({shown, runs: [{run, colour, backend, steps, trainPoints, points:
/// [{step, coherence, conflictingFraction, opposingShare, samples, top}]}]}).
fn install_hook(session: Session, canvas: NodeRef<Canvas>, hidden: impl Fn() -> bool + 'static) {
    let Some(hook) = session.with(|s| s.hook.clone()) else { return };
    let get = Closure::<dyn Fn() -> JsValue>::new(move || {
        let shown = !hidden();
        let runs = session
            .with(|a| {
                refresh(a, None);
                match canvas.get_untracked().filter(|_| shown) {
                    Some(c) => draw(&c, a),
                    None => drawn(a),
                }
            })
            .unwrap_or_default();
        let out = serde_json::json!({ "shown": shown, "runs": runs });
        js_sys::JSON::parse(&out.to_string()).unwrap_or(JsValue::NULL)
    });
    let _ = js_sys::Reflect::set(&hook, &"sampleConflict".into(), get.as_ref());
    get.forget();
}

#[component]
pub fn SamplesPanel() -> impl IntoView {
    let session = use_session();
    let aui = session.ui;
    let canvas = NodeRef::<Canvas>::new();
    // Bumped to redraw when a redraw's budget left points to compute (while paused nothing
    // else would redraw).
    let more = RwSignal::new(0u64);
    let pending = StoredValue::new(false);
    // No network (the toys, Pareto-MTL): no samples to measure.
    let no_model = Signal::derive(move || {
        aui.version.track();
        !session.with(|a| a.runs.iter().any(|r| r.mlp().is_some() || r.moe().is_some())).unwrap_or(false)
    });
    let panel_hidden = crate::state::panel_hidden("samples");
    let hidden = move || panel_hidden() || no_model.get_untracked();
    install_hook(session, canvas, hidden);

    Effect::new(move |_| {
        aui.version.track();
        more.track();
        if panel_hidden() || no_model.get() {
            return;
        }
        let Some(c) = canvas.get_untracked() else { return };
        let complete = session
            .with(|a| {
                let complete = refresh(a, Some(now_ms() + BUDGET_MS));
                draw(&c, a);
                complete
            })
            .unwrap_or(true);
        if !complete && !pending.get_value() {
            pending.set_value(true);
            set_timeout(
                move || {
                    pending.set_value(false);
                    more.update(|n| *n += 1);
                },
                std::time::Duration::from_millis(40),
            );
        }
    });

    figure(
        "samples",
        "Sample-level conflict over training",
        canvas,
        no_model,
        "Per-sample gradients gᵢ = Σₜ gₜ(xᵢ) of the summed task loss on the shared trunk, for the train set (up to 1000 points) at each run’s parameters every ≥ 10 steps (sparser as the run grows) and now — computed on this page’s CPU for every run, WebGPU runs included. α = ‖mean gᵢ‖² / mean ‖gᵢ‖²; a sample conflicts when two of its tasks’ gradients have cos < 0; the opposing share is above the dashed 0.1 when the most opposed samples carry more than their head count of the update (concord train --plot shows the same per step’s batch).",
    )
}
