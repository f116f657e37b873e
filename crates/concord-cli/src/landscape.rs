//! `concord landscape --preset NAME --method NAME …`: train a preset (tracking λ_max and the
//! trace every K steps), then draw the 2-D loss slice through the final parameters with the
//! run's trajectory (and a second run's) on it, the 1-D interpolation between the two runs with
//! both barrier heights, and a loss-space Pareto view. Writes CSV + PNG into --out and prints a
//! summary (JSON with --json).

use crate::landscape_files::{write_interpolation_csv, write_sharpness_csv, write_surface_csv, write_trajectory_csv};
use crate::landscape_plot::{interpolation_png, sharpness_png, surface_png};
use crate::train_preset::parse_kv;
use crate::UsageError;
use clap::Args;
use concord_core::landscape::{
    interpolate, linspace, mlp_slice, pareto_view, plane, project, run_tracked, slice_surface, CurvatureConfig,
    DirectionKind, Grid, Objective, ParetoView, PlaneInputs, ProjectedPath, Surface, TrackedRun, TrackingConfig,
    MAX_POINTS,
};
use concord_core::train::{preset, TrainConfig, Trainer};
use concord_core::MethodSpec;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct LandscapeArgs {
    /// The multi-task preset (see `concord train --help`).
    #[arg(long)]
    preset: String,
    /// The aggregator (see `concord methods`).
    #[arg(long)]
    method: String,
    /// An aggregator parameter as key=value (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", allow_hyphen_values = true)]
    params: Vec<String>,
    /// Training steps (default: the preset's).
    #[arg(long)]
    steps: Option<usize>,
    /// Grid points per axis.
    #[arg(long, default_value_t = 51)]
    grid: usize,
    /// Half-width of the square [−r, r]² (default 1; for pca: 1.2 × the trajectory's extent).
    #[arg(long, allow_hyphen_values = true)]
    range: Option<f64>,
    /// random (filter-normalised), gradients (−∇L₀, −∇L₁ at θ), pca (of the trajectory) or start-end.
    #[arg(long, default_value = "random")]
    directions: String,
    /// Seed of the run (and of the random directions).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seed of the second run the interpolation goes to (default: --seed + 1).
    #[arg(long)]
    compare_seed: Option<u64>,
    /// Method of the second run (default: --method).
    #[arg(long)]
    compare_method: Option<String>,
    /// Measure λ_max and the trace every K steps (default: steps / 10; 0 = at the start and the end only).
    #[arg(long)]
    sharpness_every: Option<usize>,
    /// Iterations of the power method and probes of the Hutchinson trace (PyHessian: 100).
    #[arg(long, default_value_t = 50)]
    hessian_iters: usize,
    /// Reference point of the hypervolume as L0,L1 (default: 1.1 × the largest losses shown).
    #[arg(long, value_name = "L0,L1")]
    hv_ref: Option<String>,
    /// Directory for the CSV and PNG files.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Threads for the slice (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

/// The --json document (the files hold the arrays).
#[derive(Serialize)]
struct Summary<'a> {
    preset: &'a str,
    method: &'a str,
    compare: String,
    directions: &'a str,
    params: usize,
    grid: usize,
    range: [f64; 2],
    task_names: &'a [String],
    /// cos(δ, η) as drawn.
    direction_cosine: f64,
    explained_variance: Option<[f64; 2]>,
    /// Per task then the total, at the centre of the slice (the final parameters).
    loss_at_centre: Vec<f64>,
    min_total: f64,
    slice_seconds: f64,
    barrier_frankle: &'a [f64],
    barrier_entezari: &'a [f64],
    /// Per task then the total, at the final parameters.
    lambda_max: Vec<f64>,
    trace: Option<Vec<f64>>,
    pareto: Option<&'a ParetoView>,
    trajectory_residual_max: f64,
    error: Option<&'a str>,
    files: Vec<String>,
}

fn parse_pair(raw: &str, flag: &str) -> Result<[f64; 2], UsageError> {
    let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
    let vals: Vec<f64> = parts.iter().filter_map(|p| p.parse::<f64>().ok()).filter(|v| v.is_finite()).collect();
    match vals.as_slice() {
        [a, b] if parts.len() == 2 => Ok([*a, *b]),
        _ => Err(UsageError(format!("{flag} '{raw}' is not two numbers A,B"))),
    }
}

fn configure(a: &LandscapeArgs, method: &str, seed: u64) -> Result<TrainConfig, UsageError> {
    let mut config = preset(&a.preset).map_err(UsageError)?;
    config.method =
        MethodSpec::from_parts(method.trim(), &parse_kv(&a.params, "--param")?, None).map_err(UsageError)?;
    if let Some(steps) = a.steps {
        config.steps = steps;
    }
    config.seed = seed;
    Ok(config)
}

fn tracked_run(config: TrainConfig, tracking: &TrackingConfig) -> Result<(Trainer, TrackedRun), UsageError> {
    let mut trainer = Trainer::new(config).map_err(UsageError)?;
    let run = run_tracked(&mut trainer, tracking, |_| {}).map_err(UsageError)?;
    Ok((trainer, run))
}

/// The (task 0, task 1) losses of every snapshot of both runs, for the Pareto view.
fn loss_points(
    objective: &dyn Objective,
    runs: &[(&str, &TrackedRun)],
) -> Result<(Vec<[f64; 2]>, Vec<String>), UsageError> {
    let mut points = Vec::new();
    let mut labels = Vec::new();
    for (label, run) in runs {
        for (step, s) in run.snapshot_steps.iter().zip(&run.snapshots) {
            let l = objective.losses(s).map_err(UsageError)?;
            if l.iter().all(|v| v.is_finite()) {
                points.push([l[0], l[1]]);
                labels.push(format!("{label} step {step}"));
            }
        }
    }
    Ok((points, labels))
}

pub fn run(a: LandscapeArgs) -> Result<(), UsageError> {
    let kind: DirectionKind = a.directions.parse().map_err(UsageError)?;
    if !(2..=MAX_POINTS).contains(&a.grid) {
        return Err(UsageError(format!("--grid must be 2–{MAX_POINTS}, got {}", a.grid)));
    }
    if a.steps == Some(0) {
        return Err(UsageError("--steps must be at least 1".into()));
    }
    if let Some(r) = a.range {
        if !(r.is_finite() && r > 0.0) {
            return Err(UsageError(format!("--range must be a positive number, got {r}")));
        }
    }
    if !(1..=10_000).contains(&a.hessian_iters) {
        return Err(UsageError(format!("--hessian-iters must be 1–10000, got {}", a.hessian_iters)));
    }
    let hv_ref = a.hv_ref.as_deref().map(|r| parse_pair(r, "--hv-ref")).transpose()?;
    let compare_method = a.compare_method.clone().unwrap_or_else(|| a.method.clone());
    let compare_seed = a.compare_seed.unwrap_or(a.seed.wrapping_add(1));
    let config = configure(&a, &a.method, a.seed)?;
    let compare_config = configure(&a, &compare_method, compare_seed)?;
    let steps = config.steps;
    let tracking = TrackingConfig {
        every: match a.sharpness_every {
            None => (steps / 10).max(1),
            // Step 0 is a multiple of everything, and the end is always measured.
            Some(0) => usize::MAX,
            Some(k) => k,
        },
        trace: true,
        curvature: CurvatureConfig { max_iter: a.hessian_iters, tol: 1e-3, seed: a.seed },
        snapshot_every: (steps / 50).max(1),
    };
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
    }

    let (trainer, main) = tracked_run(config, &tracking)?;
    // The second run only needs its trajectory and end point.
    let (_, other) = tracked_run(compare_config, &TrackingConfig { every: 0, ..tracking })?;
    let objective = trainer.objective();
    let theta = trainer.params();
    let layout = trainer.mlp().map(|m| m.layout());
    let inputs = PlaneInputs { layout, seed: a.seed, trajectory: &main.snapshots, tasks: (0, 1) };
    let pl = plane(kind, &*objective, theta, &inputs).map_err(UsageError)?;
    let main_label = format!("{} seed {}", a.method.trim(), a.seed);
    let other_label = format!("{} seed {compare_seed}", compare_method.trim());
    let path_main = project(&pl, &main_label, &main.snapshot_steps, &main.snapshots).map_err(UsageError)?;
    let path_other = project(&pl, &other_label, &other.snapshot_steps, &other.snapshots).map_err(UsageError)?;
    let range = match (a.range, kind) {
        (Some(r), _) => r,
        (None, DirectionKind::Pca) => {
            let extent = path_main.coords.iter().flat_map(|c| [c[0].abs(), c[1].abs()]).fold(0.0, f64::max);
            if extent > 0.0 {
                1.2 * extent
            } else {
                1.0
            }
        }
        (None, _) => 1.0,
    };
    let grid = Grid::square(a.grid, -range, range).map_err(UsageError)?;
    let started = Instant::now();
    let surface: Surface = match (trainer.mlp(), trainer.train_set()) {
        (Some(mlp), Some((x, y))) => mlp_slice(mlp, x, y, &pl, &grid, a.threads),
        _ => slice_surface(&*objective, &pl, &grid, a.threads),
    }
    .map_err(UsageError)?;
    let slice_seconds = started.elapsed().as_secs_f64();

    let alphas = linspace(-0.5, 1.5, 41);
    let interp = interpolate(&*objective, theta, &other.record.params, &alphas, a.threads).map_err(UsageError)?;
    let (points, labels) = loss_points(&*objective, &[(&main_label, &main), (&other_label, &other)])?;
    let pareto = if points.is_empty() {
        None
    } else {
        let reference = hv_ref.unwrap_or_else(|| {
            let max = |i: usize| points.iter().map(|p| p[i]).fold(f64::NEG_INFINITY, f64::max);
            [1.1 * max(0), 1.1 * max(1)]
        });
        Some(pareto_view(points, labels, reference).map_err(UsageError)?)
    };
    let last = main.sharpness.last();
    let centre = surface.grid.len() / 2; // odd grids: exactly (0, 0)
    let mut loss_at_centre: Vec<f64> = surface.tasks.iter().map(|t| t[centre]).collect();
    loss_at_centre.push(surface.total[centre]);
    let paths: [&ProjectedPath; 2] = [&path_main, &path_other];

    let mut files = Vec::new();
    if let Some(dir) = &a.out {
        let names = trainer.task_names();
        let io = |r: std::io::Result<()>, f: &str| {
            r.map_err(|e| UsageError(format!("cannot write {}: {e}", dir.join(f).display())))
        };
        io(write_surface_csv(&dir.join("surface.csv"), &surface), "surface.csv")?;
        io(write_trajectory_csv(&dir.join("trajectory.csv"), &paths), "trajectory.csv")?;
        io(write_interpolation_csv(&dir.join("interpolation.csv"), &interp), "interpolation.csv")?;
        io(write_sharpness_csv(&dir.join("sharpness.csv"), &main.sharpness), "sharpness.csv")?;
        let title = format!("{} · {} · {} directions", a.preset.trim(), a.method.trim(), kind.name());
        let png = |r: Result<(), String>, f: &str| {
            r.map_err(|e| UsageError(format!("cannot draw {}: {e}", dir.join(f).display())))
        };
        png(surface_png(&dir.join("landscape.png"), &surface, names, &paths, &title), "landscape.png")?;
        png(
            interpolation_png(&dir.join("interpolation.png"), &interp, names, &format!("{main_label} → {other_label}")),
            "interpolation.png",
        )?;
        png(sharpness_png(&dir.join("sharpness.png"), &main.sharpness, names, &title), "sharpness.png")?;
        files = [
            "surface.csv",
            "trajectory.csv",
            "interpolation.csv",
            "sharpness.csv",
            "landscape.png",
            "interpolation.png",
            "sharpness.png",
        ]
        .iter()
        .map(|f| dir.join(f).display().to_string())
        .collect();
    }
    let summary = Summary {
        preset: a.preset.trim(),
        method: a.method.trim(),
        compare: other_label.clone(),
        directions: kind.name(),
        params: theta.len(),
        grid: a.grid,
        range: [-range, range],
        task_names: trainer.task_names(),
        direction_cosine: pl.cosine,
        explained_variance: pl.explained_variance,
        loss_at_centre,
        min_total: Surface::finite_range(&surface.total).map_or(f64::NAN, |r| r.0),
        slice_seconds,
        barrier_frankle: &interp.barrier_frankle,
        barrier_entezari: &interp.barrier_entezari,
        lambda_max: last.map(|p| p.lambda_max.clone()).unwrap_or_default(),
        trace: last.and_then(|p| p.trace.clone()),
        pareto: pareto.as_ref(),
        trajectory_residual_max: path_main.residual.iter().copied().fold(0.0, f64::max),
        error: main.record.error.as_deref(),
        files,
    };
    if a.json {
        println!("{}", serde_json::to_string(&summary).expect("the summary serialises"));
    } else {
        let total = summary.loss_at_centre.last().copied().unwrap_or(f64::NAN);
        println!(
            "{} · {} · {} directions: {}×{} slice of {} parameters in {:.3} s; total loss at θ {:.5}, min on the slice {:.5}",
            summary.preset, summary.method, summary.directions, a.grid, a.grid, summary.params, slice_seconds, total, summary.min_total
        );
        println!(
            "interpolation to {}: barrier (Frankle) {:.5}, (Entezari) {:.5}; λ_max (total) {:.5}",
            other_label,
            interp.barrier_frankle.last().copied().unwrap_or(f64::NAN),
            interp.barrier_entezari.last().copied().unwrap_or(f64::NAN),
            summary.lambda_max.last().copied().unwrap_or(f64::NAN)
        );
        if let Some(e) = summary.error {
            eprintln!("concord: warning: {e}");
        }
    }
    Ok(())
}
