//! The arena's output panels, each one canvas with a PNG button: per-task decision boundary /
//! regression heatmaps (100 × 100 grid — coarser where a large model's CPU forward passes
//! would not fit a frame — train and test points) or, for the sinusoids, the fitted
//! curves; per-task train/test loss curves; the task-gradient cosine matrix (per layer on a
//! toggle) and its history; conflict ratio and the update-vs-mean angle; the loss-space
//! (L₁ vs L₂) trajectories. Every panel shows all arena runs together.

use crate::chart::{self, Axis, Frame, INK, MUTED};
use crate::dom::{download_png, figure};
use crate::preset::Family;
use crate::session::{use_session, Run, SessionInner as Arena};
use crate::state::use_cfg;
use crate::state::State;
use concord_core::data::LabelKind;
use concord_core::model::LossKind;
use leptos::html::Canvas;
use leptos::prelude::*;
use nalgebra::DMatrix;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

/// Width of every panel canvas (CSS pixels).
const WIDTH: f64 = 760.0;
/// Heatmap resolution per side.
use crate::grid::GRID;
/// Points per history line.
const MAX_POINTS: usize = 300;
/// Heatmaps cost 100² forward passes per task and run: redraw them at most this often.
const HEATMAP_MS: f64 = 400.0;

/// One entry per method (a toy method's runs from every start share its colour), then on the
/// toys one per start: its marker, which also ends each of its runs' lines in the panels.
fn legend(ctx: &CanvasRenderingContext2d, runs: &[Run], y: f64) {
    let mut x = 8.0;
    ctx.set_text_baseline("middle");
    ctx.set_font(chart::FONT);
    let width = |s: &str| ctx.measure_text(s).map(|m| m.width()).unwrap_or(8.0 * s.len() as f64);
    for r in by_method(runs).into_iter().map(|g| g[0]) {
        ctx.set_fill_style_str(r.colour);
        ctx.fill_rect(x, y - 5.0, 14.0, 10.0);
        let stopped = runs.iter().any(|o| o.slot == r.slot && o.error.is_some());
        let label = if stopped { format!("{} (stopped)", r.label) } else { r.label.clone() };
        chart::text(ctx, &label, x + 18.0, y, "left", chart::FONT, INK);
        ctx.set_font(chart::FONT);
        x += 18.0 + width(&label) + 16.0;
    }
    let starts = starts_of(runs);
    if !starts.is_empty() {
        let texts: Vec<String> = starts.iter().map(|(st, _)| start_text(*st)).collect();
        // The coordinates where they fit on the line; the markers alone otherwise (the
        // contour's legend names them).
        let full = width("starts") + texts.iter().map(|t| 30.0 + width(t)).sum::<f64>();
        let with_text = x + 8.0 + full < WIDTH - 8.0;
        x += 8.0;
        chart::text(ctx, "starts", x, y, "left", chart::FONT, MUTED);
        ctx.set_font(chart::FONT);
        x += width("starts") + 12.0;
        for ((_, i), t) in starts.iter().zip(&texts) {
            start_marker(ctx, *i, x, y, "#ffffff", INK);
            x += 10.0;
            if with_text {
                chart::text(ctx, t, x, y, "left", chart::FONT, INK);
                ctx.set_font(chart::FONT);
                x += width(t) + 12.0;
            } else {
                x += 6.0;
            }
        }
    }
    ctx.set_text_baseline("alphabetic");
}

/// The runs grouped by method slot, in slot order of first appearance (a toy method's starts
/// together).
fn by_method(runs: &[Run]) -> Vec<Vec<&Run>> {
    let mut groups: Vec<Vec<&Run>> = Vec::new();
    for r in runs {
        match groups.iter_mut().find(|g| g[0].slot == r.slot) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
}

/// The toy starts the runs use (point, index among the published starts), in index order.
fn starts_of(runs: &[Run]) -> Vec<([f64; 2], usize)> {
    let mut starts: Vec<([f64; 2], usize)> = Vec::new();
    for st in runs.iter().filter_map(|r| r.start) {
        if !starts.iter().any(|s| s.1 == st.1) {
            starts.push(st);
        }
    }
    starts.sort_by_key(|s| s.1);
    starts
}

fn start_text(st: [f64; 2]) -> String {
    format!("({}, {})", crate::plot::fmt_tick(st[0], 1), crate::plot::fmt_tick(st[1], 1))
}

/// A start's marker (as on the contour) at (x, y).
fn start_marker(ctx: &CanvasRenderingContext2d, index: usize, x: f64, y: f64, fill: &str, stroke: &str) {
    crate::plot::trace_marker(ctx, crate::plot::Marker::for_start(index), x, y, 4.5);
    ctx.set_fill_style_str(fill);
    ctx.fill();
    ctx.set_stroke_style_str(stroke);
    ctx.set_line_width(1.4);
    ctx.stroke();
}

/// On a toy run's line, its start's marker at the last point drawn (so the starts of one
/// method's colour can be told apart); nothing for other runs.
fn mark_end(ctx: &CanvasRenderingContext2d, f: Frame, xa: Axis, ya: Axis, pts: &[(f64, f64)], run: &Run) {
    let Some((_, index)) = run.start else { return };
    let last = pts.iter().rev().find_map(|&(x, y)| Some((xa.unit(x)?, ya.unit(y)?)));
    if let Some((u, v)) = last.filter(|(u, v)| (0.0..=1.0).contains(u) && (0.0..=1.0).contains(v)) {
        start_marker(ctx, index, f.x + u * f.w, f.y + f.h - v * f.h, run.colour, "#ffffff");
    }
}

/// A log axis for losses unless one is ≤ 0 (the toys' losses go negative): then linear.
fn loss_axis(values: impl Iterator<Item = f64> + Clone) -> Axis {
    let log = values.clone().filter(|v| v.is_finite()).all(|v| v > 0.0);
    Axis::fit(values, log)
}

/// A head's output mapped to [−1, 1] for the colour scale.
fn output_value(loss: LossKind, row: &[f64]) -> f64 {
    match loss {
        LossKind::Bce => 2.0 * concord_core::model::sigmoid(row[0]) - 1.0,
        LossKind::Mse => row[0].clamp(-1.0, 1.0),
        LossKind::SoftmaxCe => {
            let k = row.len();
            let best = (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
            if k <= 1 {
                0.0
            } else {
                2.0 * best as f64 / (k - 1) as f64 - 1.0
            }
        }
    }
}

fn label_value(kind: LabelKind, v: f64) -> f64 {
    match kind {
        LabelKind::Binary => v,
        LabelKind::Regression => v.clamp(-1.0, 1.0),
        LabelKind::Classes { k } => {
            if k <= 1 {
                0.0
            } else {
                2.0 * v / (k - 1) as f64 - 1.0
            }
        }
    }
}

/// The side and values of each task's output, in [−1, 1] (row 0 at the top, x₂ = +extent): the GPU's
/// 100 × 100 grid outputs when the run has them for this extent, else the CPU forward pass of
/// the MLP or the MoE model (same heads, same outputs per task) on a grid of `cpu_side`.
/// With `discretize` (TF's "Discretize output") a cell shows the sign of the output (the argmax
/// for softmax heads, already discrete), not its value.
fn heatmap_values(run: &Run, extent: f64, cpu_side: usize, discretize: bool) -> Option<(usize, Vec<Vec<f64>>)> {
    let computed;
    let cpu_points = || crate::grid::points_n(extent, cpu_side);
    let (side, outs, heads) = match (run.mlp(), run.moe()) {
        (Some(mlp), _) => match run.grid_outputs(extent) {
            Some(gpu) => (GRID, gpu, &mlp.config().heads),
            None => {
                computed = run.predict_points(&cpu_points())?;
                (cpu_side, &computed[..], &mlp.config().heads)
            }
        },
        (None, Some(moe)) => {
            computed = run.predict_points(&cpu_points())?;
            (cpu_side, &computed[..], &moe.config().heads)
        }
        (None, None) => return None,
    };
    Some((
        side,
        outs.iter()
            .zip(heads)
            .map(|(o, head)| {
                let mut row = vec![0.0; o.ncols()];
                (0..o.nrows())
                    .map(|i| {
                        for (c, v) in row.iter_mut().enumerate() {
                            *v = o[(i, c)];
                        }
                        let v = output_value(head.loss, &row);
                        if discretize && v != 0.0 {
                            v.signum()
                        } else {
                            v
                        }
                    })
                    .collect()
            })
            .collect(),
    ))
}

fn draw_heatmaps(canvas: &HtmlCanvasElement, a: &Arena, state: &State) {
    let Some(data) = &a.points else { return };
    let (m, cols) = (data.num_tasks(), a.runs.len().max(1));
    let cell = ((WIDTH - 16.0) / cols as f64 - 14.0).min(170.0);
    let row_h = cell + 22.0;
    let height = 30.0 + m as f64 * row_h + 8.0;
    let Some(ctx) = chart::prepare(canvas, WIDTH, height) else { return };
    legend(&ctx, &a.runs, 12.0);
    let extent = crate::grid::extent(data);
    // The CPU's grids (runs without the GPU's) share one redraw's budget: a large model gets a
    // coarser grid, drawn smoothed, so the page stays responsive.
    let cpu_runs: Vec<&Run> = a.runs.iter().filter(|r| r.grid_outputs(extent).is_none()).collect();
    let params = cpu_runs.iter().filter_map(|r| r.params()).map(<[f64]>::len).max().unwrap_or(0);
    let cpu_side = crate::grid::side_within_budget(params, cpu_runs.len(), GRID);
    for (c, run) in a.runs.iter().enumerate() {
        let x0 = 8.0 + c as f64 * (cell + 14.0);
        let values = heatmap_values(run, extent, cpu_side, state.discretize);
        for t in 0..m {
            let y0 = 30.0 + t as f64 * row_h + 16.0;
            let name = a.task_names.get(t).cloned().unwrap_or_else(|| format!("task {}", t + 1));
            chart::text(&ctx, &format!("Task {name}"), x0, y0 - 4.0, "left", chart::FONT, MUTED);
            match values.as_ref().and_then(|(side, v)| Some((*side, v.get(t)?.as_slice()))) {
                // The Playground's scale through the figures' heatmap, as the CLI's maps; a
                // coarse CPU grid is drawn smoothed.
                Some((side, v)) => chart::heatmap(
                    &ctx,
                    Frame { x: x0, y: y0, w: cell, h: cell },
                    (side, side),
                    v,
                    true,
                    &concord_figures::colour::diverging,
                    chart::Scaling::Smooth,
                ),
                None => {
                    ctx.set_fill_style_str("#f3f4f6");
                    ctx.fill_rect(x0, y0, cell, cell);
                    chart::text(&ctx, "no model", x0 + cell / 2.0, y0 + cell / 2.0, "center", chart::FONT, MUTED);
                }
            }
            let to_px = |p: [f64; 2]| {
                (x0 + (p[0] + extent) / (2.0 * extent) * cell, y0 + (extent - p[1]) / (2.0 * extent) * cell)
            };
            let kind = data.kinds[t];
            for (i, p) in data.points.iter().enumerate() {
                let test = i >= data.n_train;
                if test && !state.show_test {
                    continue;
                }
                let (px, py) = to_px(*p);
                let fill = chart::rgb(chart::playground_rgb(label_value(kind, data.labels[t][i])));
                dot(&ctx, px, py, if test { 2.0 } else { 1.8 }, &fill, if test { "#1f2328" } else { "#ffffff" });
            }
            ctx.set_stroke_style_str(run.colour);
            ctx.set_line_width(2.0);
            ctx.stroke_rect(x0, y0, cell, cell);
        }
    }
}

fn dot(ctx: &CanvasRenderingContext2d, x: f64, y: f64, r: f64, fill: &str, stroke: &str) {
    chart::dot(ctx, x, y, r, fill, Some(stroke));
}

fn draw_sinusoids(canvas: &HtmlCanvasElement, a: &Arena, state: &State) {
    let Some((xs, ys, n_train)) = &a.curve_data else { return };
    let m = ys.len();
    let plot_h = 120.0;
    let height = 30.0 + m as f64 * (plot_h + 36.0);
    let Some(ctx) = chart::prepare(canvas, WIDTH, height) else { return };
    legend(&ctx, &a.runs, 12.0);
    let grid: Vec<f64> = (0..=200).map(|i| -5.0 + 10.0 * i as f64 / 200.0).collect();
    let x_mat = DMatrix::from_fn(grid.len(), 1, |r, _| grid[r]);
    let preds: Vec<Option<Vec<DMatrix<f64>>>> =
        a.runs.iter().map(|r| r.mlp()?.forward(r.params()?, &x_mat).ok()).collect();
    for (t, task_ys) in ys.iter().enumerate() {
        let f = Frame { x: 44.0, y: 30.0 + t as f64 * (plot_h + 36.0) + 16.0, w: WIDTH - 60.0, h: plot_h };
        let (xa, ya) = (Axis::fixed(-5.0, 5.0), Axis::fixed(-1.6, 1.6));
        let name = a.task_names.get(t).cloned().unwrap_or_default();
        chart::axes(&ctx, f, xa, ya, &format!("Task {}: {name} — points and each method’s fit", t + 1), "x");
        for (i, (&x, &y)) in xs.iter().zip(task_ys).enumerate() {
            let test = i >= *n_train;
            if test && !state.show_test {
                continue;
            }
            if let (Some(u), Some(v)) = (xa.unit(x), ya.unit(y)) {
                let fill = if test { "#1f2328" } else { "#9aa3ad" };
                chart::dot(&ctx, f.x + u * f.w, f.y + f.h - v * f.h, 1.6, fill, None);
            }
        }
        for (run, pred) in a.runs.iter().zip(&preds) {
            if let Some(p) = pred.as_ref().and_then(|p| p.get(t)) {
                let pts: Vec<(f64, f64)> = grid.iter().enumerate().map(|(i, &x)| (x, p[(i, 0)])).collect();
                chart::polyline(&ctx, f, xa, ya, &pts, chart::Pen::solid(run.colour, 2.0));
            }
        }
    }
}

fn draw_curves(canvas: &HtmlCanvasElement, a: &Arena) {
    let m = a.task_names.len().max(1);
    let per_row = m.min(2);
    let rows = m.div_ceil(per_row);
    let (cw, ch) = ((WIDTH - 20.0) / per_row as f64, 190.0);
    let height = 30.0 + rows as f64 * (ch + 44.0);
    let Some(ctx) = chart::prepare(canvas, WIDTH, height) else { return };
    legend(&ctx, &a.runs, 12.0);
    let max_step = a.runs.iter().flat_map(|r| r.curve.last()).map(|c| c.step).max().unwrap_or(0).max(1) as f64;
    for t in 0..m {
        let (col, row) = (t % per_row, t / per_row);
        let f = Frame { x: col as f64 * cw + 62.0, y: 30.0 + row as f64 * (ch + 44.0) + 20.0, w: cw - 80.0, h: ch };
        let values = a.runs.iter().flat_map(|r| r.curve.iter()).flat_map(|c| {
            let test = c.test.as_ref().and_then(|v| v.get(t).copied());
            [c.train.get(t).copied(), test].into_iter().flatten()
        });
        let ya = loss_axis(values);
        let xa = Axis::fixed(0.0, max_step);
        let name = a.task_names.get(t).cloned().unwrap_or_default();
        let has_test = a.runs.iter().any(|r| r.curve.iter().any(|c| c.test.is_some()));
        let lines = if has_test { "— train, - - test" } else { "train" };
        let scale = if ya.log { ", log scale" } else { "" };
        let title = format!("Task {name}: loss ({lines}{scale})");
        let mut fig = chart::Figure::new(f, xa, ya, &title, "step");
        let mut trains = Vec::with_capacity(a.runs.len());
        for run in &a.runs {
            let train: Vec<(f64, f64)> =
                run.curve.iter().filter_map(|c| Some((c.step as f64, *c.train.get(t)?))).collect();
            let test: Vec<(f64, f64)> =
                run.curve.iter().filter_map(|c| Some((c.step as f64, *c.test.as_ref()?.get(t)?))).collect();
            let train = chart::downsample(&train, MAX_POINTS);
            fig.line(&train, chart::Pen::solid(run.colour, 1.8));
            fig.line(&chart::downsample(&test, MAX_POINTS), chart::Pen::dashed(run.colour, 1.4));
            trains.push(train);
        }
        fig.draw(canvas, &ctx);
        for (run, train) in a.runs.iter().zip(&trains) {
            mark_end(&ctx, f, xa, ya, train, run);
            mark_dynamics(&ctx, f, xa, ya, run, t);
        }
    }
}

/// A run's training dynamics on task `t`'s loss plot: a sequential run's task switches
/// (vertical dashed lines) and, on task 1, its worst test loss after the first switch (a ring,
/// labelled with the stability gap); spikes (▲ on the bottom edge) and SPAM's moment resets
/// (▽ on the top edge), in the run's colour.
fn mark_dynamics(ctx: &CanvasRenderingContext2d, f: Frame, xa: Axis, ya: Axis, run: &Run, t: usize) {
    use crate::dynamics_marks as dynamics;
    let px = |step: usize| xa.unit(step as f64).filter(|u| (0.0..=1.0).contains(u)).map(|u| f.x + u * f.w);
    for s in dynamics::switches(run) {
        if let Some(x) = px(s) {
            // On a pixel's centre: a crisp line in the run's own colour.
            let x = x.round() + 0.5;
            ctx.save();
            ctx.set_stroke_style_str(run.colour);
            ctx.set_line_width(1.2);
            let dash = js_sys::Array::new();
            dash.push(&4.0.into());
            dash.push(&3.0.into());
            let _ = ctx.set_line_dash(&dash);
            ctx.begin_path();
            ctx.move_to(x, f.y);
            ctx.line_to(x, f.y + f.h);
            ctx.stroke();
            ctx.restore();
            chart::text(
                ctx,
                &format!("task {}→", (s / switch_every(run)).max(1) + 1),
                x + 3.0,
                f.y + 11.0,
                "left",
                chart::FONT,
                MUTED,
            );
        }
    }
    if t == 0 {
        if let Some((gap, step)) = dynamics::first_gap(run) {
            if let (Some(x), Some(v)) = (px(step), ya.unit(gap.worst)) {
                let y = f.y + f.h - v * f.h;
                ctx.begin_path();
                let _ = ctx.arc(x, y, 5.0, 0.0, std::f64::consts::TAU);
                ctx.set_stroke_style_str(run.colour);
                ctx.set_line_width(2.0);
                ctx.stroke();
                let label = format!("worst after switch (gap {})", crate::plot::fmt_tick(gap.gap, 3));
                chart::text(ctx, &label, x + 8.0, y + 14.0, "left", chart::FONT, run.colour);
            }
        }
    }
    let (spikes, resets) = dynamics::spikes_and_resets(run);
    let triangle = |x: f64, y: f64, down: bool, filled: bool| {
        let d = if down { -1.0 } else { 1.0 };
        ctx.begin_path();
        ctx.move_to(x, y - 5.0 * d);
        ctx.line_to(x - 4.0, y + 2.0 * d);
        ctx.line_to(x + 4.0, y + 2.0 * d);
        ctx.close_path();
        if filled {
            ctx.set_fill_style_str(run.colour);
            ctx.fill();
        } else {
            ctx.set_stroke_style_str(run.colour);
            ctx.set_line_width(1.2);
            ctx.stroke();
        }
    };
    for x in spikes.into_iter().filter_map(px) {
        triangle(x, f.y + f.h - 3.0, false, true);
    }
    for x in resets.into_iter().filter_map(px) {
        triangle(x, f.y + 3.0, true, false);
    }
}

/// A sequential run's steps per task (1 for any other schedule).
fn switch_every(run: &Run) -> usize {
    match run.config.dynamics.schedule {
        concord_core::dynamics::TaskSchedule::Sequential { switch_every } => switch_every.max(1),
        _ => 1,
    }
}

/// The weight each method gives each task over time: the loss weighting's w where there is one,
/// else the aggregator's weights on the Jacobian rows (absent for methods that are not a
/// weighting of the rows, e.g. PCGrad).
fn draw_weights(canvas: &HtmlCanvasElement, a: &Arena) {
    let m = a.task_names.len().max(1);
    let per_row = m.min(2);
    let rows = m.div_ceil(per_row);
    let (cw, ch) = ((WIDTH - 20.0) / per_row as f64, 170.0);
    let height = 30.0 + rows as f64 * (ch + 44.0);
    let Some(ctx) = chart::prepare(canvas, WIDTH, height) else { return };
    legend(&ctx, &a.runs, 12.0);
    let weights = |h: &concord_core::train::StepRecord| h.loss_weights.clone().or_else(|| h.aggregator_weights.clone());
    let max_step = a.runs.iter().map(|r| r.steps).max().unwrap_or(0).max(1) as f64;
    for t in 0..m {
        let (col, row) = (t % per_row, t / per_row);
        let f = Frame { x: col as f64 * cw + 62.0, y: 30.0 + row as f64 * (ch + 44.0) + 20.0, w: cw - 80.0, h: ch };
        let values = a.runs.iter().flat_map(|r| r.history.iter().filter_map(|h| weights(h)?.get(t).copied()));
        let ya = Axis::fit(values.chain([0.0]), false);
        let xa = Axis::fixed(0.0, max_step);
        let name = a.task_names.get(t).cloned().unwrap_or_default();
        let title = format!("Task {name}: weight");
        let mut fig = chart::Figure::new(f, xa, ya, &title, "step");
        let lines: Vec<Vec<(f64, f64)>> = a
            .runs
            .iter()
            .map(|run| {
                let pts: Vec<(f64, f64)> =
                    run.history.iter().filter_map(|h| Some((h.step as f64, *weights(h)?.get(t)?))).collect();
                chart::downsample(&pts, MAX_POINTS)
            })
            .collect();
        for (run, pts) in a.runs.iter().zip(&lines) {
            fig.line(pts, chart::Pen::solid(run.colour, 1.6));
        }
        fig.draw(canvas, &ctx);
        for (run, pts) in a.runs.iter().zip(&lines) {
            mark_end(&ctx, f, xa, ya, pts, run);
        }
    }
}

/// Mean of the defined off-diagonal entries (for m = 2: cos(g₁, g₂)).
fn mean_pairwise(c: &[Vec<Option<f64>>]) -> Option<f64> {
    let vals: Vec<f64> = c
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row.iter().enumerate().filter(move |(j, _)| *j > i).filter_map(|(_, v)| *v))
        .collect();
    (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
}

fn draw_matrix(ctx: &CanvasRenderingContext2d, c: &[Vec<Option<f64>>], x: f64, y: f64, cell: f64) {
    let m = c.len();
    for (i, row) in c.iter().enumerate() {
        for (j, value) in row.iter().enumerate() {
            let (px, py) = (x + j as f64 * cell, y + i as f64 * cell);
            match *value {
                Some(v) => {
                    ctx.set_fill_style_str(&chart::rgb(chart::cosine_rgb(v)));
                    ctx.fill_rect(px, py, cell, cell);
                    let ink = if v.abs() > 0.55 { "#ffffff" } else { INK };
                    ctx.set_text_baseline("middle");
                    chart::text(
                        ctx,
                        &crate::plot::fmt_tick(v, 2),
                        px + cell / 2.0,
                        py + cell / 2.0,
                        "center",
                        chart::FONT,
                        ink,
                    );
                }
                None => {
                    ctx.set_fill_style_str("#eef0f2");
                    ctx.fill_rect(px, py, cell, cell);
                }
            }
        }
    }
    ctx.set_stroke_style_str("#b8bec5");
    ctx.set_line_width(1.0);
    ctx.stroke_rect(x, y, m as f64 * cell, m as f64 * cell);
    ctx.set_text_baseline("alphabetic");
}

fn draw_cosine(canvas: &HtmlCanvasElement, a: &Arena, state: &State) {
    let m = a.task_names.len().max(1);
    let cell = if m <= 2 { 40.0 } else { 30.0 };
    let block = m as f64 * cell;
    let layers = if state.layers {
        a.runs.iter().filter_map(|r| r.history.last().map(|h| h.metrics.layers.len())).max().unwrap_or(0)
    } else {
        0
    };
    // One group per method: its name, then one matrix (set) per run — per start on the toys,
    // each headed by the start's marker; the groups flow across the lines.
    let per_run_w = if layers > 0 { (layers as f64 + 1.0) * (block + 10.0) } else { block + 10.0 };
    let groups = by_method(&a.runs);
    let mut placed = Vec::with_capacity(groups.len());
    let (mut gx, mut line) = (8.0, 0usize);
    for g in &groups {
        let w = (g.len() as f64 * per_run_w).max(120.0);
        if gx > 8.0 && gx + w > WIDTH - 8.0 {
            gx = 8.0;
            line += 1;
        }
        placed.push((gx, line));
        gx += w + 24.0;
    }
    let run_rows = line + 1;
    let row_h = block + 58.0;
    let chart_h = 160.0;
    let height = 30.0 + run_rows as f64 * row_h + chart_h + 50.0;
    let Some(ctx) = chart::prepare(canvas, WIDTH, height) else { return };
    legend(&ctx, &a.runs, 12.0);
    for (g, &(gx, line)) in groups.iter().zip(&placed) {
        let top = 30.0 + line as f64 * row_h + 14.0;
        let head = g[0];
        ctx.set_fill_style_str(head.colour);
        ctx.fill_rect(gx, top - 9.0, 10.0, 10.0);
        chart::text(&ctx, &head.label, gx + 14.0, top, "left", chart::FONT_TITLE, INK);
        let y0 = top + 22.0;
        for (k, run) in g.iter().enumerate() {
            let x0 = gx + k as f64 * per_run_w;
            let (label_x, label) = match run.start {
                Some((st, index)) => {
                    start_marker(&ctx, index, x0 + 5.0, y0 - 7.0, run.colour, "#ffffff");
                    (x0 + 14.0, start_text(st))
                }
                None => (x0, "whole model".to_string()),
            };
            let Some(h) = run.history.last() else {
                chart::text(&ctx, "no step yet", label_x, y0 - 3.0, "left", chart::FONT, MUTED);
                continue;
            };
            chart::text(&ctx, &label, label_x, y0 - 3.0, "left", chart::FONT, MUTED);
            draw_matrix(&ctx, &h.metrics.cosine, x0, y0, cell);
            // The GPU trainer reads back whole-model metrics only.
            if state.layers && h.metrics.layers.is_empty() && run.on_gpu() && run.start.is_none() {
                chart::text(&ctx, "per-layer: CPU runs only", x0, y0 + block + 14.0, "left", chart::FONT, MUTED);
            }
            if layers > 0 {
                for (l, lm) in h.metrics.layers.iter().enumerate() {
                    let lx = x0 + (l as f64 + 1.0) * (block + 10.0);
                    chart::text(&ctx, &format!("layer {}", l + 1), lx, y0 - 3.0, "left", chart::FONT, MUTED);
                    draw_matrix(&ctx, &lm.cosine, lx, y0, cell);
                }
            }
        }
    }
    let f = Frame { x: 52.0, y: 30.0 + run_rows as f64 * row_h + 24.0, w: WIDTH - 70.0, h: chart_h };
    let max_step = a.runs.iter().map(|r| r.steps).max().unwrap_or(0).max(1) as f64;
    let (xa, ya) = (Axis::fixed(0.0, max_step), Axis::fixed(-1.05, 1.05));
    let title = if m == 2 {
        "History: cos(g₁, g₂), moving average (below 0 = conflict)"
    } else {
        "History: mean pairwise cosine, moving average (below 0 = conflict)"
    };
    let mut fig = chart::Figure::new(f, xa, ya, title, "step");
    // cos = 0: conflict below it.
    fig.line(&[(0.0, 0.0), (max_step, 0.0)], chart::Pen::solid("#9aa3ad", 1.0));
    let lines: Vec<Vec<(f64, f64)>> = a
        .runs
        .iter()
        .map(|run| {
            let pts: Vec<(f64, f64)> = run
                .history
                .iter()
                .map(|h| (h.step as f64, mean_pairwise(&h.metrics.cosine).unwrap_or(f64::NAN)))
                .collect();
            chart::downsample(&chart::moving_average(&pts, chart::smoothing_window(pts.len())), MAX_POINTS)
        })
        .collect();
    for (run, pts) in a.runs.iter().zip(&lines) {
        fig.line(pts, chart::Pen::solid(run.colour, 1.6));
    }
    fig.draw(canvas, &ctx);
    for (run, pts) in a.runs.iter().zip(&lines) {
        mark_end(&ctx, f, xa, ya, pts, run);
    }
}

fn draw_conflict(canvas: &HtmlCanvasElement, a: &Arena) {
    let height = 30.0 + 190.0 + 44.0;
    let Some(ctx) = chart::prepare(canvas, WIDTH, height) else { return };
    legend(&ctx, &a.runs, 12.0);
    let max_step = a.runs.iter().map(|r| r.steps).max().unwrap_or(0).max(1) as f64;
    let xa = Axis::fixed(0.0, max_step);
    let half = (WIDTH - 20.0) / 2.0;
    let f1 = Frame { x: 48.0, y: 50.0, w: half - 64.0, h: 190.0 };
    let f2 = Frame { x: half + 58.0, y: 50.0, w: half - 64.0, h: 190.0 };
    let (y1, y2) = (Axis::fixed(0.0, 1.0), Axis::fixed(0.0, 180.0));
    let mut fig1 = chart::Figure::new(f1, xa, y1, "Conflict ratio: share of pairs with cos < 0", "step");
    let mut fig2 = chart::Figure::new(f2, xa, y2, "Angle of the update to the mean gradient (°)", "step");
    let mut ends = Vec::with_capacity(a.runs.len());
    for run in &a.runs {
        let h = &run.history;
        let ratio: Vec<(f64, f64)> = h.iter().map(|r| (r.step as f64, r.metrics.conflict_ratio)).collect();
        let angle: Vec<(f64, f64)> = h
            .iter()
            .map(|r| {
                (
                    r.step as f64,
                    r.metrics.update_cosine_mean.map_or(f64::NAN, |c| c.clamp(-1.0, 1.0).acos().to_degrees()),
                )
            })
            .collect();
        let w = chart::smoothing_window(h.len());
        let ratio = chart::downsample(&chart::moving_average(&ratio, w), MAX_POINTS);
        let angle = chart::downsample(&chart::moving_average(&angle, w), MAX_POINTS);
        fig1.line(&ratio, chart::Pen::solid(run.colour, 1.6));
        fig2.line(&angle, chart::Pen::solid(run.colour, 1.6));
        ends.push((ratio, angle));
    }
    fig1.draw(canvas, &ctx);
    fig2.draw(canvas, &ctx);
    for (run, (ratio, angle)) in a.runs.iter().zip(&ends) {
        mark_end(&ctx, f1, xa, y1, ratio, run);
        mark_end(&ctx, f2, xa, y2, angle, run);
    }
}

fn draw_loss_space(canvas: &HtmlCanvasElement, a: &Arena) {
    let height = 360.0;
    let Some(ctx) = chart::prepare(canvas, WIDTH, height) else { return };
    legend(&ctx, &a.runs, 12.0);
    if a.task_names.len() < 2 {
        return;
    }
    let f = Frame { x: 70.0, y: 50.0, w: 420.0, h: 270.0 };
    // The toys' Pareto set in loss space, drawn under the trails (and inside the axes).
    let front: Vec<(f64, f64)> = a
        .toy_problem()
        .map(|p| p.toy().pareto_front(81).into_iter().map(|l| (l[0], l[1])).collect())
        .unwrap_or_default();
    let xs = a.runs.iter().flat_map(|r| r.curve.iter().filter_map(|c| c.train.first().copied()));
    let ys = a.runs.iter().flat_map(|r| r.curve.iter().filter_map(|c| c.train.get(1).copied()));
    let (xa, ya) = (loss_axis(xs.chain(front.iter().map(|p| p.0))), loss_axis(ys.chain(front.iter().map(|p| p.1))));
    let (n1, n2) = (&a.task_names[0], &a.task_names[1]);
    let scale = match (xa.log, ya.log) {
        (true, true) => " (log–log)",
        (true, false) => " (log L₁)",
        (false, true) => " (log L₂)",
        (false, false) => "",
    };
    chart::axes(&ctx, f, xa, ya, &format!("Loss space: train L₂ vs L₁ over time{scale}"), &format!("L₁ ({n1})"));
    chart::text(&ctx, &format!("↑ L₂ ({n2})"), f.x + 4.0, f.y + 12.0, "left", chart::FONT, MUTED);
    if !front.is_empty() {
        chart::polyline(&ctx, f, xa, ya, &front, chart::Pen::solid("#9a9a9a", 4.0));
    }
    for run in &a.runs {
        let pts: Vec<(f64, f64)> =
            run.curve.iter().filter_map(|c| Some((*c.train.first()?, *c.train.get(1)?))).collect();
        let pts = if pts.len() > MAX_POINTS {
            pts.iter().step_by(pts.len().div_ceil(MAX_POINTS)).copied().chain(pts.last().copied()).collect()
        } else {
            pts
        };
        chart::polyline(&ctx, f, xa, ya, &pts, chart::Pen::solid(run.colour, 1.4));
        for (i, p) in pts.iter().enumerate() {
            if let (Some(u), Some(v)) = (xa.unit(p.0), ya.unit(p.1)) {
                let last = i + 1 == pts.len();
                let (px, py) = (f.x + u * f.w, f.y + f.h - v * f.h);
                if last {
                    match run.start {
                        Some((_, index)) => {
                            crate::plot::trace_marker(&ctx, crate::plot::Marker::for_start(index), px, py, 6.0);
                            ctx.set_fill_style_str(run.colour);
                            ctx.fill();
                            ctx.set_stroke_style_str("#ffffff");
                            ctx.set_line_width(1.5);
                            ctx.stroke();
                        }
                        None => chart::dot(&ctx, px, py, 5.0, run.colour, Some("#ffffff")),
                    }
                } else if i % 4 == 0 {
                    chart::dot(&ctx, px, py, 1.6, run.colour, None);
                }
            }
        }
    }
    // The non-dominated front of every point drawn, and its hypervolume (landscape.rs).
    let pareto = a.pareto();
    if let Some(p) = &pareto {
        chart::polyline(&ctx, f, xa, ya, &chart::staircase(p), chart::Pen::dashed(INK, 1.2));
    }
    let notes = if a.is_toy() {
        [
            "Each trail is one run’s (L₁, L₂) every",
            "few steps: its colour is the method, the",
            "marker at its end (now) is its start.",
            "Down-left is better for both losses; a",
            "trail that moves up or left trades one",
            "loss for the other. Grey: the Pareto set.",
        ]
    } else {
        [
            "Each trail is one method’s (L₁, L₂) on the",
            "whole train set, every few steps; the big dot",
            "is now. All start at the same point (same",
            "weights). Down-left is better for both tasks;",
            "a trail that moves up or left trades one task",
            "for the other.",
        ]
    };
    for (i, n) in notes.iter().enumerate() {
        chart::text(&ctx, n, f.x + f.w + 24.0, f.y + 16.0 + i as f64 * 16.0, "left", chart::FONT, MUTED);
    }
    if a.task_names.len() > 2 {
        chart::text(&ctx, "(tasks 1 and 2 of several)", f.x + f.w + 24.0, f.y + 124.0, "left", chart::FONT, MUTED);
    }
    if let Some(p) = &pareto {
        let lines = [
            "Dashed: the non-dominated front of all",
            "points shown (staircase to r).",
            &format!("Hypervolume {:.4}", p.hypervolume),
            &format!("r = ({:.3}, {:.3}) = 1.1 × worst", p.reference[0], p.reference[1]),
            &format!("front: {} of {} points", p.front.len(), p.points.len()),
        ];
        for (i, n) in lines.iter().enumerate() {
            chart::text(&ctx, n, f.x + f.w + 24.0, f.y + 150.0 + i as f64 * 16.0, "left", chart::FONT, INK);
        }
    }
}

/// Whether each canvas panel is hidden (`_hide` flags, or a figure's view).
#[derive(Clone, Copy)]
struct Hidden<F: Fn() -> bool + Copy> {
    curves: F,
    cosine: F,
    conflict: F,
    space: F,
    weights: F,
}

/// `children` (the conflict map) go right after the heatmaps.
#[component]
pub fn OutputsPanel(#[prop(optional)] children: Option<Children>) -> impl IntoView {
    let cfg = use_cfg();
    let session = use_session();
    let aui = session.ui;
    // Heatmaps cost forward passes: this panel's own throttle.
    let last_heatmap = StoredValue::new(f64::NEG_INFINITY);
    let weights = NodeRef::<Canvas>::new();
    let heat = NodeRef::<Canvas>::new();
    let curves = NodeRef::<Canvas>::new();
    let cosine = NodeRef::<Canvas>::new();
    let conflict = NodeRef::<Canvas>::new();
    let space = NodeRef::<Canvas>::new();
    let family = move || {
        aui.version.track();
        aui.csv.track();
        session.with(|a| a.family()).flatten()
    };
    let no_map = Signal::derive(move || !matches!(family(), Some(Family::TaskSet) | Some(Family::Sinusoid)));
    let never = Signal::derive(|| false);
    let heat_hidden = crate::state::panel_hidden("heatmaps");
    let shown = Hidden {
        curves: crate::state::panel_hidden("curves"),
        cosine: crate::state::panel_hidden("cosine"),
        conflict: crate::state::panel_hidden("conflict"),
        space: crate::state::panel_hidden("lossSpace"),
        weights: crate::state::panel_hidden("weights"),
    };
    let heat_title = move || {
        if family() == Some(Family::Sinusoid) {
            "Fits per task"
        } else {
            "Decision boundary / regression per task"
        }
    };

    Effect::new(move |_| {
        aui.version.track();
        let state = cfg.get();
        let now = crate::session::now_ms();
        session.with(|a| {
            let fam = a.family();
            let redraw_heat = !state.play || now - last_heatmap.get_value() > HEATMAP_MS;
            if redraw_heat && !matches!(fam, Some(Family::Toy(_))) && !heat_hidden() {
                last_heatmap.set_value(now);
                if let Some(c) = heat.get_untracked() {
                    match fam {
                        Some(Family::Sinusoid) => draw_sinusoids(&c, a, &state),
                        _ => draw_heatmaps(&c, a, &state),
                    }
                }
            }
            // Panels a figure does not show cost nothing.
            let draw = |node: NodeRef<Canvas>, hidden: &dyn Fn() -> bool, f: &dyn Fn(&web_sys::HtmlCanvasElement)| {
                if let Some(c) = node.get_untracked().filter(|_| !hidden()) {
                    f(&c);
                }
            };
            draw(curves, &shown.curves, &|c| draw_curves(c, a));
            draw(cosine, &shown.cosine, &|c| draw_cosine(c, a, &state));
            draw(conflict, &shown.conflict, &|c| draw_conflict(c, a));
            draw(space, &shown.space, &|c| draw_loss_space(c, a));
            draw(weights, &shown.weights, &|c| draw_weights(c, a));
        });
    });

    // `hide`: the `_hide` flag that removes the toggle (TF's names).
    let toggle = move |id: &'static str,
                       hide: &'static str,
                       label: &'static str,
                       get: fn(&State) -> bool,
                       set: fn(&mut State, bool)| {
        view! {
            <span class="toggle" class:hidden=move || cfg.with(|s| s.is_hidden(hide))>
                <input
                    type="checkbox"
                    id=id
                    prop:checked=move || cfg.with(get)
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        cfg.update(|s| set(s, on));
                    }
                />
                <label for=id>{label}</label>
            </span>
        }
    };

    view! {
        <div class="outputs">
            <div class="card view-toggles" role="group" aria-label="View options" class:hidden=crate::state::panel_hidden("viewToggles")>
                {toggle("show-test", "showTestData", "Show test data", |s| s.show_test, |s, on| s.show_test = on)}
                {toggle("discretize", "discretize", "Discretize output", |s| s.discretize, |s, on| s.discretize = on)}
                {toggle("layer-toggle", "layers", "Per-layer cosines", |s| s.layers, |s, on| s.layers = on)}
            </div>
            <section class="card figure-card" class:hidden=move || heat_hidden() || no_map.get() data-panel="heatmaps">
                <div class="figure-head">
                    <h2>{heat_title}</h2>
                    <button type="button" class="btn small" aria-label="Download the heatmaps panel as PNG"
                        on:click=move |_| { if let Some(c) = heat.get_untracked() { download_png(&c, "heatmaps"); } }>"PNG"</button>
                </div>
                <canvas node_ref=heat role="img" aria-label="Per-task outputs of every method"></canvas>
                <p class="hint" class:hidden=move || family() == Some(Family::Sinusoid)>
                    "Background: each method’s output per task (orange −1 … blue +1) on a 100 × 100 grid. Dots: training points (white ring) and test points (dark ring)."
                </p>
                <p class="hint" class:hidden=move || family() != Some(Family::Sinusoid)>
                    "Grey dots: training points; dark dots: test points; one line per method."
                </p>
            </section>
            {children.map(|c| c())}
            {figure("curves", "Loss curves per task", curves, never,
                "Whole-train-set loss (solid) and test loss (dashed) every 5 steps, per method.")}
            {figure("cosine", "Task-gradient cosines", cosine, never,
                "cos(gᵢ, gⱼ) of the task gradients on the shared trunk at the latest step (red: the tasks pull apart), and its history. Per-layer: one matrix per trunk layer.")}
            {figure("conflict", "Conflict ratio and update angle", conflict, never,
                "Per-step values of mini-batch gradients flip sign often, so both lines are moving averages over about a fiftieth of the run. An angle near 0° means the method moves like the plain mean; large angles mean it corrects for conflict or scale.")}
            {figure("lossSpace", "Loss space", space, never,
                "Where each method’s run is in the space of the first two tasks’ losses.")}
            {figure("weights", "Task weights over time", weights, never,
                "The weight each method gives each task at every recorded step: the loss weighting’s w, else the aggregator’s weights on the task gradients (none for methods that do not weight them, e.g. PCGrad).")}
        </div>
    }
}
