//! The MoE panel (only for runs that train an MoE block): the routing of the first MoE run at
//! its latest step — task × expert heatmap of P(t,e), f_i and P_i bars with the aux-loss values,
//! dropped tokens against the capacity factor, the 2-D input plane coloured by the winning
//! expert (one map per task gate) — and the task-gradient cosine inside each expert next to
//! the cosine on all shared parameters, for every MoE run. The dense trunk of equal size is
//! the `task-experts-dense` preset, one click away (the arena runs one model at a time).

use crate::chart::{self, INK, MUTED};
use crate::session::{use_session, SessionInner as Arena};
use crate::state::use_cfg;
use concord_core::model::moe::{Gating, Moe, RouterKind};
use concord_core::train::MoeStepRecord;
use leptos::html::Canvas;
use leptos::prelude::*;
use nalgebra::DMatrix;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

const WIDTH: f64 = 760.0;
/// Routing-map resolution per side (a forward pass per pixel and task gate).
const MAP_GRID: usize = 80;
/// The map and the capacity sweep cost whole forward passes: redraw them at most this often.
const SLOW_MS: f64 = 500.0;
/// Capacity factors of the sweep (the reference's slider values and a few around them).
const SWEEP: [f64; 8] = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0];

/// One colour per expert (up to 16; Tableau-like, distinguishable on white).
const EXPERT_RGB: [[u8; 3]; 16] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
    [174, 199, 232],
    [255, 187, 120],
    [152, 223, 138],
    [255, 152, 150],
    [197, 176, 213],
    [196, 156, 148],
];

fn expert_colour(e: usize) -> String {
    chart::rgb(EXPERT_RGB[e % EXPERT_RGB.len()])
}

/// Routing column c's name: for CGC/PLE the columns are [shared; task 1's own; task 2's own; …]
/// (`Extraction::routings`), so a task-owned expert is named by its task ("1 xor expert 1",
/// as the network view names it);
/// otherwise every column is a shared expert ("E2").
fn column_label(moe: &Moe, tasks: &[String], c: usize) -> String {
    let own = match moe.config().router {
        RouterKind::Cgc { task_experts } | RouterKind::Ple { task_experts } => task_experts,
        _ => 0,
    };
    let shared = moe.config().experts;
    if own == 0 {
        return format!("E{}", c + 1);
    }
    if c < shared {
        return format!("Shared {}", c + 1);
    }
    let t = (c - shared) / own;
    let task = tasks.get(t).cloned().unwrap_or_else(|| format!("task {}", t + 1));
    format!("{task} expert {} (own)", (c - shared) % own + 1)
}

/// The first run that trains an MoE block: its index, model, parameters and latest record.
fn first_moe(a: &Arena) -> Option<(usize, &Moe, &[f64], Option<&MoeStepRecord>)> {
    a.runs.iter().enumerate().find_map(|(i, r)| {
        let moe = r.moe()?;
        Some((i, moe, r.params()?, r.history.last().and_then(|h| h.moe.as_ref())))
    })
}

/// White → blue for a probability mass in [0, max].
fn mass_rgb(v: f64, max: f64) -> [u8; 3] {
    let t = if max > 0.0 { (v / max).clamp(0.0, 1.0) } else { 0.0 };
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    [lerp(247.0, 8.0), lerp(251.0, 81.0), lerp(255.0, 156.0)]
}

fn no_data(ctx: &CanvasRenderingContext2d, h: f64) {
    chart::text(ctx, "Take a step to see the routing.", WIDTH / 2.0, h / 2.0, "center", chart::FONT, MUTED);
}

/// [`no_data`], unless an MoE run on WebGPU has trained without routing records (a history
/// saved before the GPU trainer recorded them), which the panel says rather than asking for a
/// step.
fn no_records(ctx: &CanvasRenderingContext2d, h: f64, a: &Arena) {
    let gpu_moe = a.runs.iter().find(|r| r.moe().is_some() && r.on_gpu() && !r.history.is_empty());
    // The GPU trainer records no routing for the task-gated architectures yet (their gates keep
    // their weights in their own buffers, `kernels::moe_arch` / `moe_dselect`).
    let router = gpu_moe.and_then(|r| r.moe()).map(|m| m.config().router).filter(|r| r.is_architecture());
    if let Some(router) = router {
        let msg = format!("WebGPU records no routing for the {} architecture yet.", router.name());
        chart::text(ctx, &msg, WIDTH / 2.0, h / 2.0, "center", chart::FONT, MUTED);
    } else if gpu_moe.is_some() {
        let msg = "This WebGPU run's history has no routing records (saved without them).";
        chart::text(ctx, msg, WIDTH / 2.0, h / 2.0, "center", chart::FONT, MUTED);
    } else {
        no_data(ctx, h);
    }
}

/// P(t,e) heatmap (left) and per-task f_i / P_i bars with the aux-loss values (right).
fn draw_routing(canvas: &HtmlCanvasElement, a: &Arena) {
    let h = 250.0;
    let Some(ctx) = chart::prepare(canvas, WIDTH, h) else { return };
    let Some((i, _, _, Some(rec))) = first_moe(a) else { return no_records(&ctx, h, a) };
    let r = &rec.routing;
    let m = r.task_expert.len();
    let e = r.task_expert.first().map_or(0, Vec::len);
    if m == 0 || e == 0 {
        return no_data(&ctx, h);
    }
    // Heatmap.
    let (x0, y0, cw, ch) = (70.0, 40.0, (220.0 / e as f64).min(50.0), (150.0 / m as f64).min(50.0));
    chart::text(&ctx, &format!("P(task, expert) — {}", a.runs[i].label), x0, 20.0, "left", chart::FONT_TITLE, INK);
    let max = r.task_expert.iter().flatten().copied().fold(0.0, f64::max);
    for (t, row) in r.task_expert.iter().enumerate() {
        chart::text(
            &ctx,
            &format!("task {}", t + 1),
            x0 - 6.0,
            y0 + (t as f64 + 0.5) * ch + 4.0,
            "right",
            chart::FONT,
            MUTED,
        );
        for (j, v) in row.iter().enumerate() {
            ctx.set_fill_style_str(&chart::rgb(mass_rgb(*v, max)));
            ctx.fill_rect(x0 + j as f64 * cw, y0 + t as f64 * ch, cw - 1.0, ch - 1.0);
            let ink = if max > 0.0 && *v > 0.55 * max { "#ffffff" } else { INK };
            chart::text(
                &ctx,
                &format!("{v:.2}"),
                x0 + (j as f64 + 0.5) * cw,
                y0 + (t as f64 + 0.5) * ch + 4.0,
                "center",
                chart::FONT,
                ink,
            );
        }
    }
    for j in 0..e {
        chart::text(
            &ctx,
            &format!("E{}", j + 1),
            x0 + (j as f64 + 0.5) * cw,
            y0 + m as f64 * ch + 14.0,
            "center",
            chart::FONT,
            expert_colour(j).as_str(),
        );
    }
    chart::text(
        &ctx,
        &format!("MI(task; expert) = {:.3} nats", r.aux.mutual_information),
        x0,
        y0 + m as f64 * ch + 34.0,
        "left",
        chart::FONT,
        MUTED,
    );

    // Bars: per task, f_i (solid) and P_i (outline) per expert.
    let bx = 360.0;
    chart::text(
        &ctx,
        "f_i (filled: top-1 share) and P_i (outline: mean router prob.)",
        bx,
        20.0,
        "left",
        chart::FONT_TITLE,
        INK,
    );
    let group_w = (WIDTH - bx - 20.0) / m as f64;
    let bar_h = 140.0;
    let by = 40.0 + bar_h;
    for (t, tr) in r.tasks.iter().enumerate() {
        let gx = bx + t as f64 * group_w;
        let w = (group_w - 16.0) / e as f64;
        ctx.set_stroke_style_str(chart::GRID);
        ctx.begin_path();
        ctx.move_to(gx, by + 0.5);
        ctx.line_to(gx + group_w - 16.0, by + 0.5);
        ctx.stroke();
        for j in 0..e {
            let f = tr.top1_fraction.get(j).copied().unwrap_or(0.0);
            let p = tr.router_prob.get(j).copied().unwrap_or(0.0);
            let x = gx + j as f64 * w;
            ctx.set_fill_style_str(&expert_colour(j));
            ctx.fill_rect(x + 2.0, by - f * bar_h, w * 0.45, f * bar_h);
            ctx.set_stroke_style_str(&expert_colour(j));
            ctx.set_line_width(1.5);
            ctx.stroke_rect(x + 2.0 + w * 0.5, by - p * bar_h, w * 0.4, p * bar_h);
        }
        chart::text(
            &ctx,
            &format!("task {}", t + 1),
            gx + (group_w - 16.0) / 2.0,
            by + 14.0,
            "center",
            chart::FONT,
            MUTED,
        );
    }
    let aux = &r.aux;
    let lines = [
        format!("load balance N·Σ f_i·P_i = {:.3} (1 when balanced)", aux.load_balance),
        format!(
            "z-loss mean(lse²) = {:.3}   CV²(importance) = {:.3}   CV²(load) = {:.3}",
            aux.z_loss, aux.importance_cv2, aux.load_cv2
        ),
        format!("aux loss added to the objective = {:.4}", aux.total),
    ];
    for (k, l) in lines.iter().enumerate() {
        chart::text(&ctx, l, bx, by + 34.0 + k as f64 * 14.0, "left", chart::FONT, if k == 2 { INK } else { MUTED });
    }
}

/// The router with its capacity factor replaced (`None` for routers without one).
fn with_capacity(router: RouterKind, cf: f64) -> Option<RouterKind> {
    match router {
        RouterKind::Switch { .. } => Some(RouterKind::Switch { capacity_factor: cf }),
        RouterKind::Top2 { .. } => Some(RouterKind::Top2 { capacity_factor: cf }),
        RouterKind::ExpertChoice { .. } => Some(RouterKind::ExpertChoice { capacity_factor: cf }),
        _ => None,
    }
}

/// Dropped tokens (summed over the task gates) of the current weights on the train points,
/// for each capacity factor of the sweep.
fn capacity_sweep(moe: &Moe, params: &[f64], points: &[[f64; 2]]) -> Option<Vec<(f64, f64, f64)>> {
    with_capacity(moe.config().router, 1.0)?;
    let x = DMatrix::from_fn(points.len(), 2, |r, c| points[r][c]);
    let groups = if moe.config().router.gating() == Gating::Shared { 1 } else { moe.num_tasks() };
    SWEEP
        .iter()
        .map(|&cf| {
            let mut config = moe.config().clone();
            config.router = with_capacity(config.router, cf)?;
            let routed = Moe::new(config).ok()?.routings(params, &x).ok()?;
            let dropped: usize = routed.iter().take(groups).map(|r| r.dropped).sum();
            let unrouted: usize =
                routed.iter().take(groups).map(|r| r.dispatch.row_iter().filter(|row| row.sum() == 0.0).count()).sum();
            let tokens = (points.len() * groups) as f64;
            Some((cf, dropped as f64 / tokens, unrouted as f64 / tokens))
        })
        .collect()
}

fn draw_capacity(canvas: &HtmlCanvasElement, a: &Arena) {
    let h = 200.0;
    let Some(ctx) = chart::prepare(canvas, WIDTH, h) else { return };
    let Some((_, moe, params, rec)) = first_moe(a) else { return no_data(&ctx, h) };
    let router = moe.config().router;
    let now = rec.map(|r| r.routing.tasks.iter().map(|t| t.dropped).sum::<usize>());
    let caps: Vec<String> = rec
        .map(|r| r.routing.tasks.iter().filter_map(|t| t.capacity).map(|c| c.to_string()).collect())
        .unwrap_or_default();
    // The train points (evenly thinned for a large model: the sweep routes them once per
    // capacity factor, within the page's CPU budget for a figure).
    let most = (crate::grid::CPU_GRID_MACS / (SWEEP.len() * params.len().max(1)) as f64) as usize;
    let train: Vec<[f64; 2]> = a
        .points
        .as_ref()
        .map(|d| {
            let all = &d.points[..d.n_train];
            let every = all.len().div_ceil(most.max(16));
            all.iter().step_by(every.max(1)).copied().collect()
        })
        .unwrap_or_default();
    let sweep = if train.is_empty() { None } else { capacity_sweep(moe, params, &train) };
    let Some(sweep) = sweep else {
        // No capacity: show what each expert processed in the latest batch (nothing is dropped).
        chart::text(
            &ctx,
            &format!("Router “{}” has no capacity limit: no token is dropped.", router.name()),
            20.0,
            20.0,
            "left",
            chart::FONT_TITLE,
            INK,
        );
        if let Some(rec) = rec {
            let tasks = &rec.routing.tasks;
            let e = tasks.first().map_or(0, |t| t.load.len());
            let (bx, by, bar_h) = (60.0, 40.0 + 110.0, 110.0);
            let group_w = 300.0 / tasks.len().max(1) as f64;
            for (t, tr) in tasks.iter().enumerate() {
                let w = (group_w - 16.0) / e.max(1) as f64;
                for (j, l) in tr.load.iter().enumerate() {
                    ctx.set_fill_style_str(&expert_colour(j));
                    ctx.fill_rect(bx + t as f64 * group_w + j as f64 * w, by - l * bar_h, w - 2.0, l * bar_h);
                }
                chart::text(
                    &ctx,
                    &format!("task {}", t + 1),
                    bx + t as f64 * group_w + (group_w - 16.0) / 2.0,
                    by + 14.0,
                    "center",
                    chart::FONT,
                    MUTED,
                );
            }
            chart::text(
                &ctx,
                "share of the batch each expert processed (bar height 1 = every token)",
                bx,
                by + 32.0,
                "left",
                chart::FONT,
                MUTED,
            );
        }
        let tx = 400.0;
        if let Some(n) = now {
            chart::text(&ctx, &format!("Dropped at the latest step: {n}"), tx, 60.0, "left", chart::FONT, MUTED);
        }
        chart::text(&ctx, "Choose switch, top2 or expert-choice in the", tx, 82.0, "left", chart::FONT, MUTED);
        chart::text(&ctx, "Model panel to see dropped tokens against", tx, 98.0, "left", chart::FONT, MUTED);
        chart::text(&ctx, "the capacity factor.", tx, 114.0, "left", chart::FONT, MUTED);
        return;
    };
    let f = chart::Frame { x: 60.0, y: 30.0, w: 420.0, h: h - 70.0 };
    let xa = chart::Axis::fixed(0.0, 4.0);
    let ya = chart::Axis::fixed(0.0, sweep.iter().map(|s| s.1.max(s.2)).fold(0.05, f64::max).min(1.0));
    chart::axes(
        &ctx,
        f,
        xa,
        ya,
        "Share of train tokens dropped vs capacity factor (current weights)",
        "capacity factor",
    );
    let dropped: Vec<(f64, f64)> = sweep.iter().map(|s| (s.0, s.1)).collect();
    let unrouted: Vec<(f64, f64)> = sweep.iter().map(|s| (s.0, s.2)).collect();
    chart::polyline(&ctx, f, xa, ya, &dropped, chart::Pen::solid("#d62728", 2.0));
    chart::polyline(&ctx, f, xa, ya, &unrouted, chart::Pen::dashed("#1f77b4", 1.5));
    let cf_now = match router {
        RouterKind::Switch { capacity_factor }
        | RouterKind::Top2 { capacity_factor }
        | RouterKind::ExpertChoice { capacity_factor } => capacity_factor,
        _ => 0.0,
    };
    if let Some(px) = xa.unit(cf_now).map(|u| f.x + u * f.w) {
        ctx.set_stroke_style_str(INK);
        ctx.set_line_width(1.0);
        ctx.begin_path();
        ctx.move_to(px, f.y);
        ctx.line_to(px, f.y + f.h);
        ctx.stroke();
    }
    let tx = f.x + f.w + 24.0;
    chart::text(&ctx, "red: assignments dropped for capacity", tx, 50.0, "left", chart::FONT, "#d62728");
    chart::text(&ctx, "blue dashed: tokens no expert took", tx, 66.0, "left", chart::FONT, "#1f77b4");
    chart::text(&ctx, &format!("black line: this run’s cf = {cf_now}"), tx, 82.0, "left", chart::FONT, INK);
    if let Some(n) = now {
        chart::text(
            &ctx,
            &format!("latest batch: {n} dropped, capacity {}", caps.join(", ")),
            tx,
            104.0,
            "left",
            chart::FONT,
            MUTED,
        );
    }
}

/// The plane [−6, 6]² coloured by the winning expert, one map per task gate.
fn draw_map(canvas: &HtmlCanvasElement, a: &Arena) {
    let h = 260.0;
    let Some(ctx) = chart::prepare(canvas, WIDTH, h) else { return };
    let Some((_, moe, params, _)) = first_moe(a) else { return no_data(&ctx, h) };
    let extent = 6.0;
    // Within the page's CPU budget for a grid figure (a large model gets a coarser map).
    let map_grid = crate::grid::side_within_budget(params.len(), 1, MAP_GRID);
    let points = crate::grid::points_n(extent, map_grid);
    let Ok(winners) = moe.winning_experts(params, &points) else { return no_data(&ctx, h) };
    // Tasks sharing a gate route identically: one map for a shared gate.
    let maps = if moe.config().router.gating() == Gating::Shared { 1 } else { winners.len() };
    let side = 200.0;
    // CGC/PLE's task gates also route to their task's own experts (columns after the shared).
    let columns =
        winners.iter().take(maps).flatten().flatten().map(|e| e + 1).max().unwrap_or(0).max(moe.config().experts);
    let used: Vec<bool> = (0..columns).map(|e| winners.iter().take(maps).flatten().any(|w| *w == Some(e))).collect();
    for (t, win) in winners.iter().take(maps).enumerate() {
        let x = 20.0 + t as f64 * (side + 20.0);
        // The figures' heatmap (row 0 on top), each cell a block of its expert's colour; no
        // winner is white.
        let values: Vec<f64> = win.iter().map(|w| w.map_or(f64::NAN, |e| e as f64)).collect();
        let expert = |v: f64| {
            let [r, g, b] = if v.is_finite() { EXPERT_RGB[v as usize % EXPERT_RGB.len()] } else { [255, 255, 255] };
            concord_figures::Rgb(r, g, b)
        };
        let f = chart::Frame { x, y: 30.0, w: side, h: side };
        chart::heatmap(&ctx, f, (map_grid, map_grid), &values, true, &expert, chart::Scaling::Blocks);
        let title = if maps == 1 { "shared gate (all tasks)".to_string() } else { format!("task {}’s gate", t + 1) };
        chart::text(&ctx, &title, x, 22.0, "left", chart::FONT_TITLE, INK);
    }
    // Legend: the experts that win somewhere (also the canvas's label, for screen readers).
    let names: Vec<String> = (0..columns).map(|e| column_label(moe, &a.task_names, e)).collect();
    let _ = canvas.set_attribute("aria-label", &format!("MoE routing map; experts: {}", names.join(", ")));
    let lx = 20.0 + maps as f64 * (side + 20.0);
    chart::text(&ctx, "winning expert", lx, 40.0, "left", chart::FONT_TITLE, INK);
    for (k, e) in (0..columns).enumerate() {
        let y = 56.0 + k as f64 * 16.0;
        ctx.set_fill_style_str(&expert_colour(e));
        ctx.fill_rect(lx, y - 9.0, 12.0, 10.0);
        let name = &names[e];
        let label = if used[e] { name.clone() } else { format!("{name} (wins nowhere)") };
        chart::text(&ctx, &label, lx + 18.0, y, "left", chart::FONT, INK);
    }
    chart::text(&ctx, "x₁, x₂ ∈ [−6, 6]; white: no expert took the point", 20.0, h - 14.0, "left", chart::FONT, MUTED);
}

/// Per MoE run: cos(g₁, g₂) inside each expert (latest step) and on all shared parameters.
fn draw_conflict(canvas: &HtmlCanvasElement, a: &Arena) {
    let moe_runs: Vec<_> = a
        .runs
        .iter()
        .filter_map(|r| {
            r.moe()?;
            let last = r.history.last()?;
            Some((r, last.moe.as_ref()?, last.metrics.cosine.clone()))
        })
        .collect();
    let h = 60.0 + 30.0 * moe_runs.len().max(1) as f64 + 50.0;
    let Some(ctx) = chart::prepare(canvas, WIDTH, h) else { return };
    if moe_runs.is_empty() {
        return no_records(&ctx, h, a);
    }
    let experts = moe_runs[0].1.expert_cosine.len();
    let (x0, cw) = (150.0, ((WIDTH - 150.0 - 120.0) / experts as f64).min(70.0));
    chart::text(&ctx, "cos(g₁, g₂) of tasks 1 and 2, latest step", 20.0, 20.0, "left", chart::FONT_TITLE, INK);
    for j in 0..experts {
        chart::text(
            &ctx,
            &format!("E{}", j + 1),
            x0 + (j as f64 + 0.5) * cw,
            44.0,
            "center",
            chart::FONT,
            expert_colour(j).as_str(),
        );
    }
    let sx = x0 + experts as f64 * cw + 10.0;
    chart::text(&ctx, "all shared", sx + 40.0, 44.0, "center", chart::FONT, INK);
    let cell = |ctx: &CanvasRenderingContext2d, x: f64, y: f64, w: f64, v: Option<f64>| {
        let (fill, label) = match v {
            Some(c) => (chart::rgb(chart::cosine_rgb(c)), format!("{c:+.2}")),
            None => ("#f0f0f0".to_string(), "unused".to_string()),
        };
        ctx.set_fill_style_str(&fill);
        ctx.fill_rect(x, y, w - 2.0, 24.0);
        chart::text(ctx, &label, x + w / 2.0, y + 16.0, "center", chart::FONT, INK);
    };
    for (k, (run, rec, shared)) in moe_runs.iter().enumerate() {
        let y = 54.0 + k as f64 * 30.0;
        ctx.set_fill_style_str(run.colour);
        ctx.fill_rect(20.0, y + 7.0, 10.0, 10.0);
        chart::text(&ctx, &run.label, 36.0, y + 16.0, "left", chart::FONT, INK);
        for (j, m) in rec.expert_cosine.iter().enumerate() {
            let v = m.first().and_then(|row| row.get(1)).copied().flatten();
            cell(&ctx, x0 + j as f64 * cw, y, cw, v);
        }
        let v = shared.first().and_then(|row| row.get(1)).copied().flatten();
        cell(&ctx, sx, y, 80.0, v);
    }
    let y = 54.0 + moe_runs.len() as f64 * 30.0 + 18.0;
    chart::text(&ctx, "Orange: the tasks pull an expert apart. “unused”: a task sent the expert no token, so the tasks share none of its parameters.", 20.0, y, "left", chart::FONT, MUTED);
    chart::text(&ctx, "The dense trunk of equal size is the “task-experts-dense” preset (link below): compare its cosine history with this one’s.", 20.0, y + 16.0, "left", chart::FONT, MUTED);
}

/// The arena's panel frame (heading, PNG button, canvas, hint); MoE figures have no extra
/// hide condition of their own (the whole panel hides when no run is an MoE).
fn figure(key: &'static str, title: &'static str, node: NodeRef<Canvas>, hint: &'static str) -> impl IntoView {
    crate::dom::figure(key, title, node, Signal::stored(false), hint)
}

#[component]
pub fn MoePanel() -> impl IntoView {
    let cfg = use_cfg();
    let session = use_session();
    let aui = session.ui;
    // The slow figures' own throttle.
    let last_slow = StoredValue::new(f64::NEG_INFINITY);
    let routing = NodeRef::<Canvas>::new();
    let capacity = NodeRef::<Canvas>::new();
    let map = NodeRef::<Canvas>::new();
    let conflict = NodeRef::<Canvas>::new();
    // The four MoE figures show under `view=moe` (or each by its own key).
    let moe_hidden = {
        let whole = crate::state::panel_hidden("moe");
        let keys = ["moeRouting", "moeCapacity", "moeMap", "moeConflict"].map(crate::state::panel_hidden);
        move || whole() || keys.iter().all(|hidden| hidden())
    };
    let has_moe = move || {
        aui.version.track();
        session.with(|a| a.runs.iter().any(|r| r.moe().is_some())).unwrap_or(false)
    };

    Effect::new(move |_| {
        aui.version.track();
        let state = cfg.get();
        if state.preset.is_toy() || state.moe.is_none() {
            return;
        }
        let now = crate::session::now_ms();
        session.with(|a| {
            if let Some(c) = routing.get_untracked() {
                draw_routing(&c, a);
            }
            if let Some(c) = conflict.get_untracked() {
                draw_conflict(&c, a);
            }
            if !state.play || now - last_slow.get_value() > SLOW_MS {
                last_slow.set_value(now);
                if let Some(c) = map.get_untracked() {
                    draw_map(&c, a);
                }
                if let Some(c) = capacity.get_untracked() {
                    draw_capacity(&c, a);
                }
            }
        });
    });

    view! {
        <div class="moe-panel" data-panel="moe" class:hidden=move || !has_moe() || moe_hidden()>
            {figure("moeRouting", "MoE routing: load per task and expert", routing,
                "Heatmap: P(t, e), the router probability mass of task t on expert e over the latest batch (rows sum to the task’s share of tokens). Bars: f_i, the share of a task’s tokens whose top expert is i, and P_i, the mean router probability; their product is the Switch load-balancing loss.")}
            {figure("moeCapacity", "MoE capacity: dropped tokens", capacity,
                "Routers with a capacity (switch, top2, expert-choice): the current weights routed on the train points with each capacity factor; tokens over an expert’s capacity skip it and pass through the residual. Other routers: each expert’s share of the latest batch.")}
            {figure("moeMap", "MoE routing map", map,
                "Each pixel of the input plane coloured by the expert with the largest combine weight; one map per task gate where the gates differ.")}
            {figure("moeConflict", "Conflict inside each expert", conflict,
                "Task-gradient cosine restricted to each expert’s parameters, next to the cosine on all shared parameters (gates and experts).")}
            <p class="hint moe-twin" class:hidden=crate::state::in_figure()>
                "Dense trunk of equal size: "
                <a href="#preset=task-experts-dense">"task-experts-dense"</a>
                " · back to "
                <a href="#preset=task-experts">"task-experts"</a>
            </p>
        </div>
    }
}
