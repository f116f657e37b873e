//! The landscape panel: the 2-D loss slice through one arena run's current parameters (log
//! colour scale, per task or total, four direction choices) with every run's trajectory
//! projected onto it, the 1-D interpolation between two chosen runs with both barrier
//! heights, and λ_max (power iteration) over training plus the Hutchinson trace at the end; it
//! also supplies the loss-space panel's Pareto front and 2-D hypervolume (`pareto_of`).
//! Definitions: concord-core's `landscape`.
//!
//! Computing is on demand (the button, or when play pauses) and runs in chunks — one slice row
//! or one curvature estimate per macrotask — so the page stays responsive. `window.concord.
//! landscape()` returns the last result for the browser tests.

use crate::chart::{self, Axis, Frame, INK, MUTED};
use crate::dom::{download_png, install_computed_hook, with_computed, yield_now, Computed, ComputedCell};
use crate::plot;
use crate::session::{now_ms, use_session, Session, Snapshots};
use crate::state::use_cfg;
use concord_core::landscape::{
    barriers, hutchinson_trace, linspace, plane, project, top_eigenvalue, CurvatureConfig, DirectionKind, Grid,
    Objective, ParetoView, Plane, PlaneInputs, Surface,
};
use leptos::html::Canvas;
use leptos::prelude::*;
use serde::Serialize;
use std::cell::RefCell;
use web_sys::HtmlCanvasElement;

/// Grid points per side: the reference default. In headless Chromium on this machine a 51 × 51
/// slice of the xor-conflict MLP takes ~0.5 s in 51 row-chunks of ~10 ms, so no smaller default.
pub const DEFAULT_GRID: usize = 51;
pub const GRID_CHOICES: [usize; 3] = [21, 31, 51];
/// At most this many λ_max estimates per run (snapshots are thinned evenly).
const SHARPNESS_POINTS: usize = 8;
/// Power-iteration / Hutchinson probes in the browser (PyHessian uses 100; tol stays 1e-3).
const CURVATURE_ITERS: usize = 20;
/// α values of the interpolation (Entezari's code uses 11 on [0, 1]; 21 here).
const INTERP_POINTS: usize = 21;
/// Slice contours: this many log-spaced bands.
const BANDS: usize = 14;
const SIZE: f64 = 420.0;

/// Everything one computation produced (serialised for the test hook).
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LandscapeResult {
    pub run: usize,
    pub run_label: String,
    pub steps: usize,
    pub directions: String,
    pub grid: usize,
    pub alphas: Vec<f64>,
    pub betas: Vec<f64>,
    /// tasks[t][j·n + i]
    pub tasks: Vec<Vec<f64>>,
    pub total: Vec<f64>,
    pub centre_total: f64,
    /// Σ_t of the run's `train_losses()` when the slice was taken (the centre must equal it).
    pub run_total_train_loss: f64,
    pub cosine: f64,
    pub explained_variance: Option<[f64; 2]>,
    pub paths: Vec<PathOut>,
    pub interpolation: Option<InterpOut>,
    pub sharpness: Vec<SharpOut>,
    pub pareto: Option<ParetoView>,
    pub compute_ms: f64,
    pub slice_ms: f64,
    /// "webgpu" (one batched dispatch, f32) or "cpu (why not the GPU)".
    pub slice_backend: String,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathOut {
    pub label: String,
    pub colour: String,
    pub coords: Vec<[f64; 2]>,
    pub residual_max: f64,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InterpOut {
    pub from: String,
    pub to: String,
    pub alphas: Vec<f64>,
    pub total: Vec<f64>,
    pub barrier_frankle: f64,
    pub barrier_entezari: f64,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SharpOut {
    pub label: String,
    pub colour: String,
    pub steps: Vec<usize>,
    pub lambda_max: Vec<f64>,
    pub trace: f64,
}

type StoreCell = ComputedCell<LandscapeResult>;

/// Run `f` with run `k`'s objective, parameters, label and colour (None if the run is gone).
fn with_run<R>(session: Session, k: usize, f: impl FnOnce(&dyn Objective, &[f64], &str, &str) -> R) -> Option<R> {
    session
        .with(|a| {
            let run = a.runs.get(k)?;
            let obj = run.objective()?;
            let params = run.params()?;
            Some(f(&*obj, params, &run.label, run.colour))
        })
        .flatten()
}

fn run_count(session: Session) -> usize {
    session.with(|a| a.runs.len()).unwrap_or(0)
}

fn thin<T: Clone>(items: &[T], max: usize) -> Vec<T> {
    if items.len() <= max {
        return items.to_vec();
    }
    (0..max).map(|i| items[i * (items.len() - 1) / (max - 1)].clone()).collect()
}

/// The snapshots with the current θ at the end (replacing a snapshot taken at the same step).
fn with_now(s: &Snapshots, step: usize, theta: &[f64]) -> (Vec<usize>, Vec<Vec<f64>>) {
    let mut steps = s.steps.clone();
    let mut params = s.params.clone();
    if steps.last() == Some(&step) {
        steps.pop();
        params.pop();
    }
    steps.push(step);
    params.push(theta.to_vec());
    (steps, params)
}

fn err<E: ToString>(e: E) -> String {
    e.to_string()
}

/// The whole computation; one chunk per macrotask.
async fn compute(
    session: Session,
    run: usize,
    other: usize,
    kind: DirectionKind,
    n: usize,
) -> Result<LandscapeResult, String> {
    // An odd count puts a grid point exactly at (0, 0), i.e. at θ itself.
    let n = n | 1;
    let t0 = now_ms();
    let snaps: Vec<Snapshots> =
        session.with(|a| a.runs.iter().map(|r| r.snapshots.clone()).collect()).unwrap_or_default();
    let own = snaps.get(run).cloned().unwrap_or_default();
    // The plane through run `run`'s θ; the layout lets random directions be filter-normalised.
    let setup = session.with(|a| -> Option<Result<_, String>> {
        let r = a.runs.get(run)?;
        let (obj, theta) = (r.objective()?, r.params()?);
        let trajectory = with_now(&own, r.steps, theta).1;
        let inputs =
            PlaneInputs { layout: r.mlp().map(|m| m.layout()), seed: 0, trajectory: &trajectory, tasks: (0, 1) };
        Some(
            plane(kind, &*obj, theta, &inputs)
                .and_then(|p| Ok((p, obj.num_tasks(), r.label.clone(), obj.losses(theta)?, r.steps))),
        )
    });
    let (plane_, tasks_n, run_label, centre_losses, steps_now) =
        setup.flatten().ok_or("that run has no parameters to slice")??;
    yield_now().await;

    // The slice: one batched WGSL dispatch over every grid point and training sample where the
    // page has a GPU and the run is an MLP (concord-gpu's `mlp_slice`, f32); otherwise on the
    // CPU, one row of β per chunk.
    let grid = Grid::square(n, -1.0, 1.0)?;
    let t_slice = now_ms();
    let (gpu_surface, slice_backend) = gpu_slice(session, run, &plane_, &grid).await;
    let surface = match gpu_surface {
        Some(surface) => surface,
        None => cpu_slice(session, run, &plane_, &grid, n, tasks_n).await?,
    };
    let slice_ms = now_ms() - t_slice;

    // Every run's trajectory in the plane (same initial weights, so the plane is shared).
    let mut paths = Vec::new();
    for (k, s) in snaps.iter().enumerate() {
        let Some((label, colour, theta)) =
            with_run(session, k, |_, th, l, c| (l.to_string(), c.to_string(), th.to_vec()))
        else {
            continue;
        };
        let (steps, params) =
            with_now(s, session.with(|a| a.runs.get(k).map(|r| r.steps)).flatten().unwrap_or(0), &theta);
        if let Ok(p) = project(&plane_, &label, &steps, &params) {
            let residual_max = p.residual.iter().copied().fold(0.0, f64::max);
            paths.push(PathOut { label, colour, coords: p.coords, residual_max });
        }
    }

    // 1-D interpolation from the sliced run (α = 0) to the other chosen run (α = 1).
    let interpolation = if other != run && other < run_count(session) {
        let ends = (
            with_run(session, run, |_, th, l, _| (th.to_vec(), l.to_string())),
            with_run(session, other, |_, th, l, _| (th.to_vec(), l.to_string())),
        );
        match ends {
            (Some((t1, l1)), Some((t2, l2))) => {
                let alphas = linspace(0.0, 1.0, INTERP_POINTS);
                let total = with_run(session, run, |obj, _, _, _| -> Result<Vec<f64>, String> {
                    alphas
                        .iter()
                        .map(|&a| {
                            let p: Vec<f64> = t1.iter().zip(&t2).map(|(x, y)| (1.0 - a) * x + a * y).collect();
                            obj.losses(&p).map(|l| l.iter().sum())
                        })
                        .collect()
                })
                .ok_or("the run went away")??;
                let (frankle, entezari) = barriers(&alphas, &total, total[0], total[INTERP_POINTS - 1]);
                Some(InterpOut {
                    from: l1,
                    to: l2,
                    alphas,
                    total,
                    barrier_frankle: frankle,
                    barrier_entezari: entezari,
                })
            }
            _ => None,
        }
    } else {
        None
    };
    yield_now().await;

    // λ_max over training (thinned snapshots + now) and the Hutchinson trace now, per run.
    let cfg = CurvatureConfig { max_iter: CURVATURE_ITERS, tol: 1e-3, seed: 0 };
    let mut sharpness = Vec::new();
    for (k, s) in snaps.iter().enumerate() {
        let Some((label, colour, theta)) =
            with_run(session, k, |_, th, l, c| (l.to_string(), c.to_string(), th.to_vec()))
        else {
            continue;
        };
        let (all_steps, all_params) =
            with_now(s, session.with(|a| a.runs.get(k).map(|r| r.steps)).flatten().unwrap_or(0), &theta);
        let mut points: Vec<(usize, Vec<f64>)> = all_steps.into_iter().zip(all_params).collect();
        let now = points.pop().expect("with_now ends with the current θ");
        points = thin(&points, SHARPNESS_POINTS - 1);
        points.push(now);
        let mut steps = Vec::new();
        let mut lambda = Vec::new();
        for (step, th) in points {
            let v = with_run(session, k, |obj, _, _, _| top_eigenvalue(obj, &th, None, &cfg).map(|e| e.value))
                .ok_or("the run went away")?
                .map_err(err)?;
            steps.push(step);
            lambda.push(v);
            yield_now().await;
        }
        let trace = with_run(session, k, |obj, _, _, _| hutchinson_trace(obj, &theta, None, &cfg).map(|t| t.mean))
            .ok_or("the run went away")?
            .map_err(err)?;
        sharpness.push(SharpOut { label, colour, steps, lambda_max: lambda, trace });
        yield_now().await;
    }

    let pareto = session.with(|a| a.pareto()).flatten();

    let centre = (n / 2) * n + n / 2;
    Ok(LandscapeResult {
        run,
        run_label,
        steps: steps_now,
        directions: kind.name().to_string(),
        grid: n,
        alphas: grid.alphas.clone(),
        betas: grid.betas.clone(),
        centre_total: surface.total[centre],
        tasks: surface.tasks,
        total: surface.total,
        run_total_train_loss: session
            .with(|a| a.runs.get(run).filter(|r| r.is_built()).map(|r| r.train.clone()))
            .flatten()
            .map(|l| l.iter().sum())
            .unwrap_or(centre_losses.iter().sum()),
        cosine: plane_.cosine,
        explained_variance: plane_.explained_variance,
        paths,
        interpolation,
        sharpness,
        pareto,
        compute_ms: now_ms() - t0,
        slice_ms,
        slice_backend,
    })
}

/// The slice on the GPU, or why not: (`None`, "cpu (reason)") sends the caller to `cpu_slice`.
#[cfg(feature = "webgpu")]
async fn gpu_slice(session: Session, run: usize, plane_: &Plane, grid: &Grid) -> (Option<Surface>, String) {
    let inputs = session
        .with(|a| -> Result<_, String> {
            let gpu = a.gpu_device().ok_or("no WebGPU device")?;
            let b = a.runs.get(run).ok_or("the run went away")?;
            let mlp = b.mlp().ok_or("not an MLP run")?.clone();
            let (x, y) = b.train_set().ok_or("no training set")?;
            Ok((gpu, mlp, x.clone(), y.to_vec()))
        })
        .unwrap_or_else(|| Err("the session is gone".into()));
    match inputs {
        Ok((gpu, mlp, x, y)) => {
            match concord_gpu::kernels::landscape::mlp_slice(&gpu, &mlp, &x, &y, plane_, grid).await {
                Ok(surface) => (Some(surface), "webgpu".into()),
                Err(e) => (None, format!("cpu ({e})")),
            }
        }
        Err(why) => (None, format!("cpu ({why})")),
    }
}

#[cfg(not(feature = "webgpu"))]
async fn gpu_slice(_session: Session, _run: usize, _plane: &Plane, _grid: &Grid) -> (Option<Surface>, String) {
    (None, "cpu (built without WebGPU)".into())
}

/// The slice on the CPU in f64, one row of β per macrotask so the page stays responsive.
async fn cpu_slice(
    session: Session,
    run: usize,
    plane_: &Plane,
    grid: &Grid,
    n: usize,
    tasks_n: usize,
) -> Result<Surface, String> {
    let mut per_task = vec![vec![f64::NAN; n * n]; tasks_n];
    let mut buf = vec![0.0; plane_.origin.len()];
    for j in 0..n {
        let row = with_run(session, run, |obj, _, _, _| -> Result<Vec<Vec<f64>>, String> {
            (0..n)
                .map(|i| {
                    let (a, b) = grid.point(j * n + i);
                    for (k, v) in buf.iter_mut().enumerate() {
                        *v = plane_.origin[k] + a * plane_.delta[k] + b * plane_.eta[k];
                    }
                    obj.losses(&buf)
                })
                .collect()
        })
        .ok_or("the run went away while slicing")??;
        for (i, l) in row.into_iter().enumerate() {
            for (t, v) in l.into_iter().enumerate().take(tasks_n) {
                per_task[t][j * n + i] = v;
            }
        }
        yield_now().await;
    }
    Ok(Surface::from_tasks(grid.clone(), per_task))
}

// ---------------------------------------------------------------- drawing

fn log_levels(values: &[f64]) -> Option<Vec<f64>> {
    let (lo, hi) = Surface::finite_range(values)?;
    let floor = if hi > 0.0 { (hi * 1e-6).max(1e-12) } else { return None };
    let (lo, hi) = (lo.max(floor).log10(), hi.log10());
    let hi = if hi - lo < 1e-9 { lo + 1e-3 } else { hi };
    Some((0..=BANDS).map(|b| lo + (hi - lo) * b as f64 / BANDS as f64).collect())
}

fn log10_or(v: f64, floor: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v.log10()
    } else {
        floor
    }
}

fn draw_slice(canvas: &HtmlCanvasElement, r: &LandscapeResult, task: Option<usize>, task_name: &str) {
    let Some(ctx) = chart::prepare(canvas, SIZE + 130.0, SIZE + 60.0) else { return };
    let values = match task {
        Some(t) => r.tasks.get(t).cloned().unwrap_or_default(),
        None => r.total.clone(),
    };
    let n = r.grid;
    let f = Frame { x: 44.0, y: 26.0, w: SIZE, h: SIZE };
    let title =
        format!("{task_name} loss around {} at step {} ({} directions, {n}×{n})", r.run_label, r.steps, r.directions);
    let (ax, ay) = (Axis::fixed(-1.0, 1.0), Axis::fixed(-1.0, 1.0));
    let Some(levels) = log_levels(&values) else {
        chart::text(&ctx, "no finite loss values on this slice", f.x, f.y + 20.0, "left", chart::FONT, INK);
        return;
    };
    let logs: Vec<f64> = values.iter().map(|&v| log10_or(v, levels[0])).collect();
    // The log bands through the figures' heatmap (grid row 0 is β = −1, at the bottom), each
    // cell a block so the bands keep their edges.
    let band = |l: f64| concord_figures::colour::loss_band(plot::band_of(&levels, l), BANDS);
    chart::heatmap(&ctx, f, (n, n), &logs, false, &band, chart::Scaling::Blocks);
    // Contours at the band edges (grid units → canvas).
    let to_px = |p: [f64; 2]| (f.x + (p[0] + 0.5) / n as f64 * f.w, f.y + f.h - (p[1] + 0.5) / n as f64 * f.h);
    ctx.set_stroke_style_str("rgba(31,35,40,0.45)");
    ctx.set_line_width(0.8);
    for &level in &levels[1..BANDS] {
        ctx.begin_path();
        for [a, b] in plot::isoline(&logs, n - 1, level) {
            let (x0, y0) = to_px(a);
            let (x1, y1) = to_px(b);
            ctx.move_to(x0, y0);
            ctx.line_to(x1, y1);
        }
        ctx.stroke();
    }
    chart::axes(&ctx, f, ax, ay, &title, "α (δ)");
    // Trajectories, start ○ → now ●.
    for p in &r.paths {
        let pts: Vec<(f64, f64)> = p.coords.iter().map(|c| (c[0], c[1])).collect();
        chart::polyline(&ctx, f, ax, ay, &pts, chart::Pen::solid(&p.colour, 2.0));
        for (k, c) in [(0, p.coords.first()), (1, p.coords.last())] {
            if let (Some(c), true) = (c, c.is_some_and(|c| c[0].abs() <= 1.0 && c[1].abs() <= 1.0)) {
                let (x, y) = (f.x + (c[0] + 1.0) / 2.0 * f.w, f.y + f.h - (c[1] + 1.0) / 2.0 * f.h);
                chart::dot(&ctx, x, y, 4.0, if k == 0 { "#ffffff" } else { &p.colour }, Some(&p.colour));
            }
        }
    }
    // Colour legend (log scale): the figures' colour bar standing beside the map, its bands
    // the map's.
    let labels: Vec<(f64, String)> =
        levels.iter().step_by(BANDS / 7).map(|l| (*l, format!("{:.3}", 10f64.powf(*l)))).collect();
    let ticks: Vec<(f64, &str)> = labels.iter().map(|(l, s)| (*l, s.as_str())).collect();
    let strip = Frame { x: f.x + f.w + 24.0, y: f.y, w: 16.0, h: f.h };
    chart::colour_bar(&ctx, strip, (levels[0], levels[BANDS]), &band, &ticks, "loss (log)", true);
}

fn draw_interp(canvas: &HtmlCanvasElement, r: &LandscapeResult) {
    let Some(ctx) = chart::prepare(canvas, 360.0, 240.0) else { return };
    let f = Frame { x: 52.0, y: 26.0, w: 290.0, h: 170.0 };
    let Some(i) = &r.interpolation else {
        chart::text(&ctx, "Interpolation needs two different arena runs.", 10.0, 40.0, "left", chart::FONT, INK);
        return;
    };
    let pts: Vec<(f64, f64)> = i.alphas.iter().copied().zip(i.total.iter().copied()).collect();
    let ay = Axis::fit(i.total.iter().copied(), false);
    let ax = Axis::fixed(0.0, 1.0);
    chart::axes(&ctx, f, ax, ay, &format!("Total loss from {} (α=0) to {} (α=1)", i.from, i.to), "α");
    chart::polyline(&ctx, f, ax, ay, &pts, chart::Pen::solid(INK, 2.0));
    chart::polyline(&ctx, f, ax, ay, &[pts[0], pts[pts.len() - 1]], chart::Pen::dashed(MUTED, 1.0));
    chart::text(
        &ctx,
        &format!("barrier: Frankle {:.4}, Entezari {:.4}", i.barrier_frankle, i.barrier_entezari),
        f.x,
        f.y + f.h + 38.0,
        "left",
        chart::FONT,
        INK,
    );
}

fn draw_sharpness(canvas: &HtmlCanvasElement, r: &LandscapeResult) {
    let Some(ctx) = chart::prepare(canvas, 360.0, 280.0) else { return };
    let f = Frame { x: 52.0, y: 26.0, w: 290.0, h: 170.0 };
    let xs = r.sharpness.iter().flat_map(|s| s.steps.iter().map(|&v| v as f64));
    let ax = Axis::fit(xs, false);
    let ay = Axis::fit(r.sharpness.iter().flat_map(|s| s.lambda_max.iter().copied()), true);
    chart::axes(&ctx, f, ax, ay, "λ_max of the total loss (power iteration, log)", "step");
    let mut y = f.y + f.h + 38.0;
    for s in &r.sharpness {
        let pts: Vec<(f64, f64)> = s.steps.iter().map(|&v| v as f64).zip(s.lambda_max.iter().copied()).collect();
        chart::polyline(&ctx, f, ax, ay, &pts, chart::Pen::solid(&s.colour, 2.0));
        let last = s.lambda_max.last().copied().unwrap_or(f64::NAN);
        chart::text(
            &ctx,
            &format!("{}: λmax {:.4}  tr H {:.4}", s.label, last, s.trace),
            f.x,
            y,
            "left",
            chart::FONT,
            &s.colour,
        );
        y += 14.0;
    }
}

#[component]
pub fn LandscapePanel() -> impl IntoView {
    let cfg = use_cfg();
    let land_hidden = crate::state::panel_hidden("landscape");
    let session = use_session();
    let aui = session.ui;
    let store: StoreCell = StoredValue::new_local(std::rc::Rc::new(RefCell::new(Computed::default())));
    let slice = NodeRef::<Canvas>::new();
    let interp = NodeRef::<Canvas>::new();
    let sharp = NodeRef::<Canvas>::new();
    let run = RwSignal::new(0usize);
    // The other end of the interpolation (default: the first run that is not `run`).
    let other = RwSignal::new(1usize);
    // Directions, grid and task live in the URL hash (landDirections, landGrid, landTask).
    let kind = Signal::derive(move || {
        cfg.with(|s| s.land_directions.parse::<DirectionKind>().unwrap_or(DirectionKind::Random))
    });
    let grid = Signal::derive(move || cfg.with(|s| s.land_grid));
    let task = Signal::derive(move || cfg.with(|s| s.land_task.checked_sub(1)));
    let grid_choices = move || {
        let mut g = GRID_CHOICES.to_vec();
        let now = grid.get();
        if !g.contains(&now) {
            g.push(now);
            g.sort_unstable();
        }
        g
    };
    let version = RwSignal::new(0u64);
    let status = RwSignal::new(String::from("Not computed yet."));
    // `landscape()` on this playground's hook object.
    install_computed_hook(session.with(|s| s.hook.clone()), "landscape", store, None);

    let start = move || {
        if with_computed(store, |s| std::mem::replace(&mut s.busy, true)).unwrap_or(true) {
            return;
        }
        status.set("Computing…".into());
        let (r, o, k, n) = (run.get_untracked(), other.get_untracked(), kind.get_untracked(), grid.get_untracked());
        let o = if o == r { usize::from(r == 0) } else { o };
        leptos::task::spawn_local(async move {
            let out = compute(session, r, o, k, n).await;
            with_computed(store, |s| {
                s.busy = false;
                match out {
                    Ok(res) => {
                        status.set(format!(
                            "{n}×{n} slice in {:.0} ms on {}; everything in {:.0} ms. cos(δ, η) = {:.3}{}",
                            res.slice_ms,
                            if res.slice_backend == "webgpu" { "WebGPU" } else { res.slice_backend.as_str() },
                            res.compute_ms,
                            res.cosine,
                            res.explained_variance
                                .map(|e| format!("; PCA explains {:.0} % + {:.0} %", e[0] * 100.0, e[1] * 100.0))
                                .unwrap_or_default()
                        ));
                        s.error = None;
                        s.result = Some(res);
                    }
                    Err(e) => {
                        status.set(format!("Could not compute: {e}"));
                        s.error = Some(e);
                    }
                }
            });
            version.update(|v| *v += 1);
        });
    };

    // Recompute automatically when play pauses (training stays fast while playing).
    Effect::new(move |prev: Option<bool>| {
        let playing = cfg.with(|s| s.play);
        if prev == Some(true) && !playing && !untrack(land_hidden) {
            start();
        }
        playing
    });

    Effect::new(move |_| {
        version.track();
        task.track();
        let names = session.with(|a| a.task_names.clone()).unwrap_or_default();
        with_computed(store, |s| {
            let Some(r) = &s.result else { return };
            let t = task.get_untracked().filter(|&t| t < r.tasks.len());
            let name = t.and_then(|t| names.get(t).cloned()).unwrap_or_else(|| "Total".into());
            if let Some(c) = slice.get_untracked() {
                draw_slice(&c, r, t, &name);
            }
            if let Some(c) = interp.get_untracked() {
                draw_interp(&c, r);
            }
            if let Some(c) = sharp.get_untracked() {
                draw_sharpness(&c, r);
            }
        });
    });

    let runs = move || {
        aui.version.track();
        session.with(|a| a.runs.iter().map(|r| r.label.clone()).collect::<Vec<_>>()).unwrap_or_default()
    };
    let tasks = move || {
        aui.version.track();
        session.with(|a| a.task_names.clone()).unwrap_or_default()
    };
    let png = move |node: NodeRef<Canvas>, name: &'static str| {
        move |_| {
            if let Some(c) = node.get_untracked() {
                download_png(&c, name);
            }
        }
    };

    view! {
        <section class="card figure-card" data-panel="landscape" class:hidden=land_hidden>
            <div class="figure-head">
                <h2>"Loss landscape"</h2>
                <button type="button" class="btn small" aria-label="Download the landscape slice as PNG" on:click=png(slice, "landscape")>"PNG"</button>
            </div>
            <div class="landscape-controls" role="group" aria-label="Landscape options">
                <label>"Run "
                    <select data-testid="landscape-run" on:change=move |ev| run.set(event_target_value(&ev).parse().unwrap_or(0))>
                        {move || runs().into_iter().enumerate().map(|(k, l)| view! { <option value=k.to_string() selected=move || run.get() == k>{l}</option> }).collect_view()}
                    </select>
                </label>
                <label>" Interpolate to "
                    <select data-testid="landscape-other" on:change=move |ev| other.set(event_target_value(&ev).parse().unwrap_or(1))>
                        {move || runs().into_iter().enumerate().map(|(k, l)| view! { <option value=k.to_string() selected=move || other.get() == k>{l}</option> }).collect_view()}
                    </select>
                </label>
                <label>" Directions "
                    <select data-testid="landscape-directions" on:change=move |ev| {
                        let v = event_target_value(&ev);
                        if let Some(name) = crate::state::LANDSCAPE_DIRECTIONS.iter().find(|n| **n == v) { cfg.update(|s| s.land_directions = name) }
                    }>
                        {DirectionKind::ALL.iter().map(|k| view! { <option value=k.name() selected=move || kind.get() == *k>{k.name()}</option> }).collect_view()}
                    </select>
                </label>
                <label>" Grid "
                    <select data-testid="landscape-grid" on:change=move |ev| { let g = event_target_value(&ev).parse().unwrap_or(DEFAULT_GRID); cfg.update(|s| s.land_grid = g) }>
                        {move || grid_choices().into_iter().map(|g| view! { <option value=g.to_string() selected=move || grid.get() == g>{format!("{g}×{g}")}</option> }).collect_view()}
                    </select>
                </label>
                <label>" Show "
                    <select data-testid="landscape-task" on:change=move |ev| { let t = event_target_value(&ev).parse::<usize>().map_or(0, |t| t + 1); cfg.update(|s| s.land_task = t) }>
                        <option value="total" selected=move || task.get().is_none()>"total"</option>
                        {move || tasks().into_iter().enumerate().map(|(k, t)| view! { <option value=k.to_string() selected=move || task.get() == Some(k)>{t}</option> }).collect_view()}
                    </select>
                </label>
                " "
                <button type="button" class="btn small" data-testid="landscape-compute" on:click=move |_| start()>"Compute landscape"</button>
            </div>
            <canvas node_ref=slice data-testid="landscape-slice" role="img" aria-label="Loss slice with trajectories"></canvas>
            <p class="hint" data-testid="landscape-status">{move || status.get()}</p>
            <p class="hint">"L(θ + αδ + βη) on [−1, 1]² through the chosen run’s current θ (log colour bands, blue = low). Lines: every run’s parameter snapshots (every 10 steps) projected onto the plane, ○ start → ● now; all runs share the initial weights, so one plane serves all."</p>
            <div class="landscape-row">
                <canvas node_ref=interp data-testid="landscape-interp" role="img" aria-label="Interpolation between two runs"></canvas>
                <canvas node_ref=sharp data-testid="landscape-sharpness" role="img" aria-label="Sharpness over training"></canvas>
            </div>
            <p class="hint">"Barriers: Frankle = sup_α L − ½(L(θ₁) + L(θ₂)); Entezari = sup_α [L − ((1−α)L(θ₁) + αL(θ₂))]. λ_max: 20 power iterations on finite-difference Hessian-vector products; tr H: Hutchinson, 20 Rademacher probes. The Pareto front and its hypervolume are in the loss-space panel."</p>
            <div class="figure-head landscape-pngs">
                <button type="button" class="btn small" aria-label="PNG interpolation: download the plot" on:click=png(interp, "interpolation")>"PNG interpolation"</button>
                <button type="button" class="btn small" aria-label="PNG sharpness: download the plot" on:click=png(sharp, "sharpness")>"PNG sharpness"</button>
            </div>
        </section>
    }
}
