//! Model merging (issue 18): when the arena holds one single-task parent per task — the
//! `constant` aggregator at the one-hot weights, concord-core's `merge::parent_method` — the
//! panel merges the parents' current trunks (task arithmetic, TIES, projective, each at its
//! published λ; each task keeps its own parent's head; the parents' other heads back to θ₀, as
//! `merge::train_parents` does) and shows the merged points three ways: on the plane of merged
//! models (`merge::MergePlane`: trunk θ₀ + a·τ₁ + b·τ₂, total train loss in log bands, the
//! parents' trajectories), in loss space beside the joint runs, and in a table with each
//! merge's loss barrier to each parent (`merge::task_barriers`). Every loss is on the full
//! training set (the objective the landscape uses).
//!
//! Computing is on demand (the button, or when play pauses), in chunks — one merge or one row
//! of the plane per macrotask — since the projective merge runs 400 Adam steps.
//! `window.concord.merge()` returns the last result for the browser tests.

use crate::chart::{self, Axis, Frame, INK, MUTED};
use crate::dom::{install_computed_hook, with_computed, yield_now, Computed, ComputedCell};
use crate::plot;
use crate::session::{now_ms, use_session, Session, SessionInner as Arena};
use concord_core::dynamics::RunSpec;
use concord_core::merge::{as_parent, evaluate, parent_method, MergeMethod, MergePlane, MergeSpec, Parents};
use leptos::html::Canvas;
use leptos::prelude::*;
use serde::Serialize;
use std::cell::RefCell;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

/// Grid points per side of the plane's loss bands.
const GRID: usize = 41;
/// The plane's coordinate range (each axis): θ₀ at 0, the parents' corners at 1.
const LO: f64 = -0.25;
const HI: f64 = 1.25;
const BANDS: usize = 12;
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 421.0;

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PointOut {
    pub label: String,
    pub colour: String,
    pub losses: Vec<f64>,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BarrierOut {
    pub task: usize,
    pub entezari: f64,
    pub frankle: f64,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeOut {
    pub method: String,
    pub lambda: f64,
    pub losses: Vec<f64>,
    /// Task t's barrier along parent t → the merged point.
    pub barriers: Vec<BarrierOut>,
    /// Least-squares (a, b) on the plane and the share of the trunk step off it.
    pub coords: [f64; 2],
    pub off_plane: f64,
    pub params: Vec<f64>,
}

/// One computation (serialised for the test hook).
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeResult {
    /// The parents' step when merged.
    pub step: usize,
    pub tasks: Vec<String>,
    pub shared_len: usize,
    /// θ₀ and the parents as merged (other heads at θ₀).
    pub base: Vec<f64>,
    pub parent_params: Vec<Vec<f64>>,
    pub theta0: PointOut,
    pub parents: Vec<PointOut>,
    pub joints: Vec<PointOut>,
    pub merges: Vec<MergeOut>,
    /// The parents' snapshot trajectories on the plane.
    pub paths: Vec<Vec<[f64; 2]>>,
    pub grid: usize,
    /// Total train loss at the plane's grid points, row j (b) by column i (a), b from LO up.
    pub plane_total: Vec<f64>,
    pub compute_ms: f64,
}

type StoreCell = ComputedCell<MergeResult>;

/// The arena's parent run of each task (the first run whose text is `parent_method(m, t)`'s,
/// without options), if every task has one and the runs are MLPs.
fn parent_runs(a: &Arena) -> Option<Vec<usize>> {
    let m = a.task_names.len();
    if m < 2 || a.runs.iter().any(|r| r.mlp().is_none()) {
        return None;
    }
    (0..m)
        .map(|t| {
            let text = RunSpec::plain(parent_method(m, t).ok()?).to_text();
            a.runs.iter().position(|r| r.spec.to_text() == text)
        })
        .collect()
}

/// What a computation starts from, read at once.
struct Inputs {
    parents: Parents,
    parent_idx: Vec<usize>,
    step: usize,
    tasks: Vec<String>,
    points: Vec<(String, String)>,
    joints: Vec<(String, String, Vec<f64>)>,
    snapshots: Vec<Vec<Vec<f64>>>,
}

fn inputs(a: &Arena) -> Result<Inputs, String> {
    let idx = parent_runs(a).ok_or("the arena has no single-task parent for every task (constant, weights eₜ)")?;
    let first = &a.runs[idx[0]];
    let layout = first.mlp().ok_or("not an MLP")?.layout().clone();
    let base = first.init_params().ok_or("the runs are not built")?.to_vec();
    let mut parents = Vec::new();
    let mut snapshots = Vec::new();
    for (t, &k) in idx.iter().enumerate() {
        let r = &a.runs[k];
        let p = r.params().ok_or("a parent has no parameters yet")?;
        parents.push(as_parent(&layout, &base, p, t));
        let mut snaps: Vec<Vec<f64>> = r.snapshots.params.iter().map(|s| as_parent(&layout, &base, s, t)).collect();
        snaps.push(parents[t].clone());
        snapshots.push(snaps);
    }
    let steps: Vec<usize> = idx.iter().map(|&k| a.runs[k].steps).collect();
    let joints = a
        .runs
        .iter()
        .enumerate()
        .filter(|(k, _)| !idx.contains(k))
        .filter_map(|(_, r)| Some((r.label.clone(), r.colour.to_string(), r.params()?.to_vec())))
        .collect();
    Ok(Inputs {
        parents: Parents { base, parents, layout },
        points: idx.iter().map(|&k| (a.runs[k].label.clone(), a.runs[k].colour.to_string())).collect(),
        parent_idx: idx,
        step: steps.iter().copied().min().unwrap_or(0),
        tasks: a.task_names.clone(),
        joints,
        snapshots,
    })
}

/// `f` with the objective (the full training set) of parent run `k`.
fn with_objective<R>(
    session: Session,
    k: usize,
    f: impl FnOnce(&dyn concord_core::landscape::Objective) -> R,
) -> Result<R, String> {
    session.with(|a| Some(f(&*a.runs.get(k)?.objective()?))).flatten().ok_or_else(|| "the runs went away".to_string())
}

async fn compute(session: Session) -> Result<MergeResult, String> {
    let t0 = now_ms();
    let inp = session.with(|a| inputs(a)).ok_or("the session is gone")??;
    let k = inp.parent_idx[0];
    let losses = |p: &[f64]| with_objective(session, k, |o| o.losses(p)).and_then(|r| r);
    let theta0 = PointOut { label: "θ₀".into(), colour: MUTED.into(), losses: losses(&inp.parents.base)? };
    let parents = inp
        .points
        .iter()
        .zip(&inp.parents.parents)
        .map(|((l, c), p)| Ok(PointOut { label: l.clone(), colour: c.clone(), losses: losses(p)? }))
        .collect::<Result<Vec<_>, String>>()?;
    let joints = inp
        .joints
        .iter()
        .map(|(l, c, p)| Ok(PointOut { label: l.clone(), colour: c.clone(), losses: losses(p)? }))
        .collect::<Result<Vec<_>, String>>()?;
    let plane = MergePlane::new(&inp.parents.layout, &inp.parents.base, &inp.parents.parents);
    let mut merges = Vec::new();
    for how in MergeMethod::ALL {
        yield_now().await;
        let spec = MergeSpec::new(how, None)?;
        let m = with_objective(session, k, |o| evaluate(&spec, o, &inp.parents))??;
        let (coords, off_plane) = plane.as_ref().map(|p| p.coords(&m.params)).unwrap_or(([f64::NAN; 2], f64::NAN));
        merges.push(MergeOut {
            method: how.name().into(),
            lambda: spec.lambda,
            losses: m.losses,
            barriers: m
                .barriers
                .iter()
                .map(|b| BarrierOut { task: b.task, entezari: b.entezari, frankle: b.frankle })
                .collect(),
            coords,
            off_plane,
            params: m.params,
        });
    }
    // The plane's bands and the parents' paths (none while the task vectors span no plane,
    // e.g. at step 0).
    let (mut plane_total, mut paths) = (Vec::new(), Vec::new());
    if let Ok(plane) = &plane {
        let h = (HI - LO) / (GRID - 1) as f64;
        for j in 0..GRID {
            yield_now().await;
            let b = LO + j as f64 * h;
            let row = with_objective(session, k, |o| -> Result<Vec<f64>, String> {
                (0..GRID).map(|i| Ok(o.losses(&plane.point(LO + i as f64 * h, b))?.iter().sum())).collect()
            })??;
            plane_total.extend(row);
        }
        paths = inp.snapshots.iter().map(|s| s.iter().map(|p| plane.coords(p).0).collect()).collect();
    }
    Ok(MergeResult {
        step: inp.step,
        tasks: inp.tasks,
        shared_len: inp.parents.layout.shared_len,
        base: inp.parents.base.clone(),
        parent_params: inp.parents.parents.clone(),
        theta0,
        parents,
        joints,
        merges,
        paths,
        grid: if plane_total.is_empty() { 0 } else { GRID },
        plane_total,
        compute_ms: now_ms() - t0,
    })
}

// ---------------------------------------------------------------- drawing

/// The merges' marks: ◆ task arithmetic, ■ TIES, ▲ projective.
fn mark(ctx: &CanvasRenderingContext2d, method: &str, x: f64, y: f64, r: f64) {
    ctx.begin_path();
    match method {
        "task-arithmetic" => {
            ctx.move_to(x, y - r);
            ctx.line_to(x + r, y);
            ctx.line_to(x, y + r);
            ctx.line_to(x - r, y);
        }
        "ties" => ctx.rect(x - r * 0.8, y - r * 0.8, r * 1.6, r * 1.6),
        _ => {
            ctx.move_to(x, y - r);
            ctx.line_to(x + r, y + r * 0.8);
            ctx.line_to(x - r, y + r * 0.8);
        }
    }
    ctx.close_path();
    ctx.set_fill_style_str(INK);
    ctx.fill();
    ctx.set_stroke_style_str("#ffffff");
    ctx.set_line_width(1.0);
    ctx.stroke();
}

fn short(method: &str) -> &'static str {
    match method {
        "task-arithmetic" => "TA",
        "ties" => "TIES",
        _ => "proj.",
    }
}

fn draw(canvas: &HtmlCanvasElement, r: &MergeResult) {
    let Some(ctx) = chart::prepare(canvas, WIDTH, HEIGHT) else { return };
    // Left: the plane of merged models.
    let f = Frame { x: 44.0, y: 30.0, w: 280.0, h: 280.0 };
    let ax = Axis::fixed(LO, HI);
    let to_px = |c: [f64; 2]| (f.x + (c[0] - LO) / (HI - LO) * f.w, f.y + f.h - (c[1] - LO) / (HI - LO) * f.h);
    let inside = |c: [f64; 2]| (LO..=HI).contains(&c[0]) && (LO..=HI).contains(&c[1]);
    let n = r.grid;
    if n > 1 {
        let logs: Vec<f64> =
            r.plane_total.iter().map(|v| if v.is_finite() && *v > 0.0 { v.log10() } else { f64::NAN }).collect();
        let (lo, hi) = logs
            .iter()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let hi = if hi - lo < 1e-9 { lo + 1e-3 } else { hi };
        let levels: Vec<f64> = (0..=BANDS).map(|b| lo + (hi - lo) * b as f64 / BANDS as f64).collect();
        let cell = f.w / n as f64;
        // The log bands through the figures' heatmap (grid row 0 is b = LO, at the bottom), each
        // cell a block so the bands keep their edges; a loss that is not finite is white.
        let band = |v: f64| {
            if v.is_finite() {
                concord_figures::colour::loss_band(plot::band_of(&levels, v), BANDS)
            } else {
                concord_figures::Rgb(255, 255, 255)
            }
        };
        chart::heatmap(&ctx, f, (n, n), &logs, false, &band, chart::Scaling::Blocks);
        ctx.set_stroke_style_str("rgba(31,35,40,0.4)");
        ctx.set_line_width(0.8);
        let filled: Vec<f64> = logs.iter().map(|v| if v.is_finite() { *v } else { hi }).collect();
        for &level in &levels[1..BANDS] {
            ctx.begin_path();
            for [p, q] in plot::isoline(&filled, n - 1, level) {
                let g = |u: [f64; 2]| (f.x + (u[0] + 0.5) * cell, f.y + f.h - (u[1] + 0.5) * cell);
                let ((x0, y0), (x1, y1)) = (g(p), g(q));
                ctx.move_to(x0, y0);
                ctx.line_to(x1, y1);
            }
            ctx.stroke();
        }
        // The legend: the figures' colour bar lying under the plane, its bands the plane's.
        let labels: Vec<(f64, String)> =
            levels.iter().step_by(BANDS / 4).map(|l| (*l, format!("{:.2}", 10f64.powf(*l)))).collect();
        let ticks: Vec<(f64, &str)> = labels.iter().map(|(l, s)| (*l, s.as_str())).collect();
        let strip = Frame { x: f.x, y: HEIGHT - 51.0, w: f.w, h: 8.0 };
        let heading = "total train loss (log bands; blue = low)";
        chart::colour_bar(&ctx, strip, (levels[0], levels[BANDS]), &band, &ticks, heading, false);
    } else {
        chart::text(&ctx, "the task vectors span no plane yet", f.x + 10.0, f.y + 20.0, "left", chart::FONT, MUTED);
    }
    chart::axes(&ctx, f, ax, ax, &format!("Merged models at step {}: total train loss (log)", r.step), "a (τ₁)");
    ctx.save();
    let _ = ctx.translate(12.0, f.y + f.h / 2.0);
    let _ = ctx.rotate(-std::f64::consts::FRAC_PI_2);
    chart::text(&ctx, "b (τ₂)", 0.0, 0.0, "center", chart::FONT, MUTED);
    ctx.restore();
    // Task arithmetic's line λ ↦ (λ, λ).
    chart::polyline(&ctx, f, ax, ax, &[(0.0, 0.0), (1.0, 1.0)], chart::Pen::dashed(INK, 1.0));
    for (t, (path, p)) in r.paths.iter().zip(&r.parents).enumerate() {
        let pts: Vec<(f64, f64)> = path.iter().map(|c| (c[0], c[1])).collect();
        chart::polyline(&ctx, f, ax, ax, &pts, chart::Pen::solid(&p.colour, 2.0));
        if let Some(&end) = path.last().filter(|c| inside(**c)) {
            let (x, y) = to_px(end);
            chart::dot(&ctx, x, y, 4.5, &p.colour, Some(INK));
            chart::text(&ctx, &format!("parent {}", t + 1), x + 7.0, y - 7.0, "left", chart::FONT, INK);
        }
    }
    let (x0, y0) = to_px([0.0, 0.0]);
    chart::dot(&ctx, x0, y0, 4.5, "#ffffff", Some(INK));
    chart::text(&ctx, "θ₀", x0 - 7.0, y0 + 13.0, "right", chart::FONT, INK);
    for m in r.merges.iter().filter(|m| inside(m.coords)) {
        let (x, y) = to_px(m.coords);
        mark(&ctx, &m.method, x, y, 6.0);
        chart::text(&ctx, short(&m.method), x + 8.0, y - 6.0, "left", chart::FONT, INK);
    }

    // Right: loss space (log-log), task 1 across, task 2 up.
    let g = Frame { x: 440.0, y: 30.0, w: 290.0, h: 280.0 };
    let all = std::iter::once(&r.theta0).chain(&r.parents).chain(&r.joints);
    let xs: Vec<f64> = all.clone().map(|p| p.losses[0]).chain(r.merges.iter().map(|m| m.losses[0])).collect();
    let ys: Vec<f64> = all.clone().map(|p| p.losses[1]).chain(r.merges.iter().map(|m| m.losses[1])).collect();
    let (lx, ly) = (Axis::fit(xs.into_iter(), true), Axis::fit(ys.into_iter(), true));
    let t1 = r.tasks.first().cloned().unwrap_or_default();
    let t2 = r.tasks.get(1).cloned().unwrap_or_default();
    chart::axes(&ctx, g, lx, ly, "Loss space: per-task train loss (log axes)", &format!("{t1} loss"));
    ctx.save();
    let _ = ctx.translate(g.x - 40.0, g.y + g.h / 2.0);
    let _ = ctx.rotate(-std::f64::consts::FRAC_PI_2);
    chart::text(&ctx, &format!("{t2} loss"), 0.0, 0.0, "center", chart::FONT, MUTED);
    ctx.restore();
    // Labels go left of a point near the right edge.
    let label = |x: f64, y: f64, s: &str| {
        let (lx_, align) = if x > g.x + g.w - 70.0 { (x - 9.0, "right") } else { (x + 9.0, "left") };
        chart::text(&ctx, s, lx_, y, align, chart::FONT, INK);
    };
    let at = |l: &[f64]| Some((g.x + lx.unit(l[0])? * g.w, g.y + g.h - ly.unit(l[1])? * g.h));
    for (k, p) in all.enumerate() {
        if let Some((x, y)) = at(&p.losses) {
            let fill = if k == 0 { "#ffffff" } else { p.colour.as_str() };
            chart::dot(&ctx, x, y, 5.0, fill, Some(INK));
            let text = match k {
                0 => "θ₀".to_string(),
                k if k <= r.parents.len() => format!("parent {k}"),
                _ => p.label.clone(),
            };
            label(x, y + 4.0, &text);
        }
    }
    for m in &r.merges {
        if let Some((x, y)) = at(&m.losses) {
            mark(&ctx, &m.method, x, y, 6.0);
            label(x, y - 6.0, short(&m.method));
        }
    }
    chart::text(
        &ctx,
        "◆ task arithmetic (λ 0.4)   ■ TIES (λ 1)   ▲ projective (λ 0.07)   ○ θ₀   ● runs",
        f.x,
        HEIGHT - 8.0,
        "left",
        chart::FONT,
        MUTED,
    );
}

fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "–".into()
    }
}

/// A table row: label, colour, per-task losses, barriers, share of the trunk step off the plane.
type TableRow = (String, String, Vec<f64>, Vec<String>, String);

#[component]
pub fn MergePanel() -> impl IntoView {
    let cfg = crate::state::use_cfg();
    let session = use_session();
    let aui = session.ui;
    let store: StoreCell = StoredValue::new_local(std::rc::Rc::new(RefCell::new(Computed::default())));
    let canvas = NodeRef::<Canvas>::new();
    let version = RwSignal::new(0u64);
    let status = RwSignal::new(String::from("Not computed yet: press “Compute merges” or pause."));
    let none = Signal::derive(move || {
        aui.version.track();
        session.with(|a| parent_runs(a).is_none()).unwrap_or(true)
    });
    let panel_hidden = crate::state::panel_hidden("merge");
    let hidden = move || panel_hidden() || none.get();
    // `merge()` on this playground's hook object: {shown, busy, error, result: {step, tasks,
    // sharedLen, base, parentParams, theta0, parents, joints: [{label, colour, losses}], merges:
    // [{method, lambda, losses, barriers: [{task, entezari, frankle}], coords, offPlane, params}],
    // paths, grid, planeTotal, computeMs}}.
    let shown = move || !(panel_hidden() || none.get_untracked());
    install_computed_hook(session.with(|s| s.hook.clone()), "merge", store, Some(Box::new(shown)));

    let start = move || {
        if with_computed(store, |s| std::mem::replace(&mut s.busy, true)).unwrap_or(true) {
            return;
        }
        status.set("Computing…".into());
        leptos::task::spawn_local(async move {
            let out = compute(session).await;
            with_computed(store, |s| {
                s.busy = false;
                match out {
                    Ok(res) => {
                        status.set(format!("Merged at step {} in {:.0} ms.", res.step, res.compute_ms));
                        s.error = None;
                        s.result = Some(res);
                    }
                    Err(e) => {
                        status.set(format!("Could not merge: {e}"));
                        s.error = Some(e);
                    }
                }
            });
            version.update(|v| *v += 1);
        });
    };

    // Recompute when play pauses (merging is not per frame: the projective merge is 400 steps).
    Effect::new(move |prev: Option<bool>| {
        let playing = cfg.with(|s| s.play);
        if prev == Some(true) && !playing && !untrack(hidden) {
            start();
        }
        playing
    });
    Effect::new(move |_| {
        version.track();
        let Some(c) = canvas.get_untracked() else { return };
        with_computed(store, |s| {
            if let Some(r) = &s.result {
                draw(&c, r);
            }
        });
    });

    let rows = move || {
        version.track();
        with_computed(store, |s| {
            let r = s.result.as_ref()?;
            let mut out: Vec<TableRow> = Vec::new();
            out.push(("θ₀ (init)".into(), MUTED.into(), r.theta0.losses.clone(), vec![], String::new()));
            for (t, p) in r.parents.iter().enumerate() {
                let label = format!("parent {}: {}", t + 1, p.label);
                out.push((label, p.colour.clone(), p.losses.clone(), vec![], String::new()));
            }
            for p in &r.joints {
                out.push((format!("joint: {}", p.label), p.colour.clone(), p.losses.clone(), vec![], String::new()));
            }
            for m in &r.merges {
                let name = match m.method.as_str() {
                    "task-arithmetic" => "◆ task arithmetic",
                    "ties" => "■ TIES",
                    _ => "▲ projective",
                };
                out.push((
                    format!("{name}, λ = {}", m.lambda),
                    INK.into(),
                    m.losses.clone(),
                    m.barriers.iter().map(|b| fmt(b.entezari)).collect(),
                    if m.off_plane.is_finite() { format!("{:.0} %", 100.0 * m.off_plane) } else { String::new() },
                ));
            }
            Some((r.tasks.clone(), out))
        })
        .flatten()
    };

    view! {
        <section class="card figure-card" data-panel="merge" class:hidden=hidden>
            <div class="figure-head">
                <h2>"Model merging"</h2>
                <button type="button" class="btn small" data-testid="merge-compute" on:click=move |_| start()>"Compute merges"</button>
                <button type="button" class="btn small" aria-label="Download the merging plot as PNG" on:click=move |_| {
                    if let Some(c) = canvas.get_untracked() { crate::dom::download_png(&c, "merge"); }
                }>"PNG"</button>
            </div>
            <canvas node_ref=canvas data-testid="merge-canvas" role="img" aria-label="Merged models on the plane of task vectors and in loss space"></canvas>
            <p class="hint" data-testid="merge-status">{move || status.get()}</p>
            {move || rows().map(|(tasks, rows)| {
                let t1 = tasks.first().cloned().unwrap_or_default();
                let t2 = tasks.get(1).cloned().unwrap_or_default();
                view! {
                    <table class="merge-table" data-testid="merge-table">
                        <thead><tr>
                            <th>"point"</th>
                            <th>{format!("{t1} loss")}</th>
                            <th>{format!("{t2} loss")}</th>
                            <th title="Entezari barrier on task 1's loss along parent 1 → merged point">"barrier to parent 1"</th>
                            <th title="Entezari barrier on task 2's loss along parent 2 → merged point">"barrier to parent 2"</th>
                            <th title="The share of the merged trunk step θ − θ₀ that lies off the plane of τ₁, τ₂ (‖residual‖ / ‖step‖): the plot shows its projection">"off the plane"</th>
                        </tr></thead>
                        <tbody>
                            {rows.into_iter().map(|(label, colour, losses, barriers, off)| view! {
                                <tr>
                                    <td><span class="swatch" style=format!("background:{colour}")></span>{label}</td>
                                    <td>{fmt(losses.first().copied().unwrap_or(f64::NAN))}</td>
                                    <td>{fmt(losses.get(1).copied().unwrap_or(f64::NAN))}</td>
                                    <td>{barriers.first().cloned().unwrap_or_default()}</td>
                                    <td>{barriers.get(1).cloned().unwrap_or_default()}</td>
                                    <td>{off}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }
            })}
            <p class="hint">"Left: the plane of merged models — trunk θ₀ + a·τ₁ + b·τ₂ (τₜ = parent t’s trunk minus θ₀), each task on its own parent’s head; the colour is the total train loss there (log bands, blue = low). θ₀ is (0, 0), parent t’s trunk its corner; the lines are the parents’ trajectories (snapshots every 10 steps). Task arithmetic lies on the dashed diagonal at (λ, λ), exactly; TIES and the projective merge are projected onto the plane, and the table says how much of their trunk step is off it. The heads are not drawn: every point uses the parents’ heads. Right: per-task train losses of θ₀, the parents, the joint runs and the merges. Barrier: Entezari’s sup over α of task t’s loss along parent t → merged point above the straight line between the ends (21 points)."</p>
        </section>
    }
}
