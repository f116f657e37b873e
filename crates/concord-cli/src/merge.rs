//! `concord merge --preset NAME --steps N --how task-arithmetic|ties|projective [--lambda L]
//! --out DIR`: train one parent per task from the preset's init (only task t's loss trains the
//! trunk and head t), merge their trunk task vectors (each task keeps its parent's head), train
//! the preset's own method jointly from the same init, and write DIR/merge.json (every point's
//! losses, the merged point's barrier to each parent, the parameter vectors) and DIR/merge.png
//! (the points in loss space with the straight paths parent → merged). See
//! `concord_core::merge` for the methods and their sources.

use crate::plot::{register, FAMILY, RED as MERGED};
use crate::UsageError;
use clap::Args;
use concord_core::landscape::{interpolate, linspace, Objective};
use concord_core::merge::{self, MergeMethod, MergeSpec, TaskBarrier};
use concord_core::train::{preset, Trainer};
use concord_figures::colour::category;
use concord_figures::{draw_line_chart, Axis, Frame, Line, LineChart, Marker, Rgb};
use plotters::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// A multi-task preset with an MLP model (see `concord train --help`).
    #[arg(long)]
    preset: String,
    /// Training steps of every parent and of the joint run (default: the preset's).
    #[arg(long)]
    steps: Option<usize>,
    /// task-arithmetic (θ₀ + λΣτ_t), ties (trim to 20 %, elect sign, disjoint mean, × λ) or
    /// projective (DOGE: λ_i = λ/‖τ_i‖ per layer, the shared update projected off the tasks'
    /// shared subspace).
    #[arg(long)]
    how: String,
    /// The merge coefficient. Defaults: 0.4 for task-arithmetic (the TIES notebook), 1 for ties
    /// (the TIES notebook), 0.07 for projective (FusionBench's DOGE lamda).
    #[arg(long, allow_hyphen_values = true)]
    lambda: Option<f64>,
    /// Seed of the common init, the batches and the joint run (default: the preset's).
    #[arg(long)]
    seed: Option<u64>,
    /// Directory for merge.json and merge.png.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Per-task losses of one parameter vector on the whole train set (and test set, if any).
#[derive(Serialize)]
struct Losses {
    train: Vec<f64>,
    test: Option<Vec<f64>>,
}

#[derive(Serialize)]
struct Parent {
    task: usize,
    losses: Losses,
}

#[derive(Serialize)]
struct Joint {
    method: String,
    losses: Losses,
    error: Option<String>,
}

#[derive(Serialize)]
struct Barrier {
    task: usize,
    /// Entezari et al.: sup_α [L_t(path) − the chord], α sampled at `alphas`.
    entezari: f64,
    /// Frankle et al.: sup_α L_t(path) − ½(L_t(θ_t) + L_t(θ_M)).
    frankle: f64,
    alphas: Vec<f64>,
    /// Task t's train loss along θ_t (α = 0) → θ_M (α = 1).
    losses: Vec<f64>,
}

impl From<&TaskBarrier> for Barrier {
    fn from(b: &TaskBarrier) -> Self {
        Barrier {
            task: b.task,
            entezari: b.entezari,
            frankle: b.frankle,
            alphas: b.alphas.clone(),
            losses: b.losses.clone(),
        }
    }
}

#[derive(Serialize)]
struct Params<'a> {
    /// The trunk is `0..trunk_len`; head t is `heads[t]` (start, end).
    trunk_len: usize,
    heads: Vec<[usize; 2]>,
    init: &'a [f64],
    parents: &'a [Vec<f64>],
    merged: &'a [f64],
    joint: &'a [f64],
}

#[derive(Serialize)]
struct Report<'a> {
    preset: &'a str,
    how: &'static str,
    lambda: f64,
    seed: u64,
    steps: usize,
    task_names: &'a [String],
    init: Losses,
    parents: Vec<Parent>,
    merged: Losses,
    joint: Joint,
    barriers: Vec<Barrier>,
    params: Params<'a>,
}

fn losses(trainer: &Trainer, objective: &dyn Objective, params: &[f64]) -> Result<Losses, UsageError> {
    let train = objective.losses(params).map_err(UsageError)?;
    let test = match (trainer.mlp(), trainer.test_data()) {
        (Some(mlp), Some((x, y))) => Some(mlp.losses(params, x, y).map_err(UsageError)?),
        _ => None,
    };
    Ok(Losses { train, test })
}

pub fn run(a: MergeArgs) -> Result<(), UsageError> {
    let how = MergeMethod::parse(&a.how).map_err(UsageError)?;
    let spec = MergeSpec::new(how, a.lambda).map_err(|e| UsageError(format!("--lambda: {e}")))?;
    let mut config = preset(&a.preset).map_err(UsageError)?;
    if let Some(steps) = a.steps {
        if steps == 0 {
            return Err(UsageError("--steps must be at least 1".into()));
        }
        config.steps = steps;
    }
    if let Some(seed) = a.seed {
        config.seed = seed;
    }
    config.validate().map_err(UsageError)?;
    std::fs::create_dir_all(&a.out).map_err(|e| UsageError(format!("cannot create {}: {e}", a.out.display())))?;

    let parents = merge::train_parents(&config).map_err(UsageError)?;
    let merged = merge::merge(&spec, &parents.layout, &parents.base, &parents.parents).map_err(UsageError)?;
    let mut joint = Trainer::new(config.clone()).map_err(UsageError)?;
    joint.run_to_end(|_| {});
    let objective = joint.objective();
    let barriers = merge::task_barriers(&*objective, &parents.parents, &merged).map_err(UsageError)?;
    let names = joint.task_names().to_vec();

    let report = Report {
        preset: a.preset.trim(),
        how: how.name(),
        lambda: spec.lambda,
        seed: config.seed,
        steps: config.steps,
        task_names: &names,
        init: losses(&joint, &*objective, &parents.base)?,
        parents: parents
            .parents
            .iter()
            .enumerate()
            .map(|(task, p)| Ok(Parent { task, losses: losses(&joint, &*objective, p)? }))
            .collect::<Result<_, UsageError>>()?,
        merged: losses(&joint, &*objective, &merged)?,
        joint: Joint {
            method: config.method.to_string(),
            losses: losses(&joint, &*objective, joint.params())?,
            error: joint.error().map(str::to_string),
        },
        barriers: barriers.iter().map(Barrier::from).collect(),
        params: Params {
            trunk_len: parents.layout.shared_len,
            heads: (0..names.len()).map(|t| parents.layout.head_range(t)).map(|r| [r.start, r.end]).collect(),
            init: &parents.base,
            parents: &parents.parents,
            merged: &merged,
            joint: joint.params(),
        },
    };
    let json_path = a.out.join("merge.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report).expect("the report serialises"))
        .map_err(|e| UsageError(format!("cannot write {}: {e}", json_path.display())))?;

    // The straight paths parent → merged, every task's loss along them, for the figure.
    let alphas = linspace(0.0, 1.0, merge::BARRIER_POINTS);
    let paths = parents
        .parents
        .iter()
        .map(|p| interpolate(&*objective, p, &merged, &alphas, 1).map(|i| i.tasks))
        .collect::<Result<Vec<_>, _>>()
        .map_err(UsageError)?;
    let png_path = a.out.join("merge.png");
    let title = format!(
        "{} · {} merge, λ = {} · {} steps, seed {}",
        report.preset,
        how.name(),
        spec.lambda,
        config.steps,
        config.seed
    );
    loss_space_png(&png_path, &report, &paths, &title)
        .map_err(|e| UsageError(format!("cannot draw {}: {e}", png_path.display())))?;

    let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(", ");
    println!(
        "{} · {} (λ = {}): merged train losses [{}], joint ({}) [{}], parents' own [{}]; barriers (Entezari) [{}]; wrote {} and {}",
        report.preset,
        how.name(),
        spec.lambda,
        fmt(&report.merged.train),
        report.joint.method,
        fmt(&report.joint.losses.train),
        fmt(&report.parents.iter().map(|p| p.losses.train[p.task]).collect::<Vec<_>>()),
        fmt(&report.barriers.iter().map(|b| b.entezari).collect::<Vec<_>>()),
        json_path.display(),
        png_path.display()
    );
    if let Some(e) = &report.joint.error {
        eprintln!("concord: warning: the joint run stopped: {e}");
    }
    Ok(())
}

/// Loss space, one panel per task pair (at most three): θ₀, each parent (its task's colour),
/// the merged point and the joint run, with each parent's straight path to the merged point.
/// Log axes (train losses).
fn loss_space_png(path: &Path, r: &Report, paths: &[Vec<Vec<f64>>], title: &str) -> Result<(), String> {
    register();
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let m = r.task_names.len();
    let pairs: Vec<(usize, usize)> = (0..m).flat_map(|i| (i + 1..m).map(move |j| (i, j))).take(3).collect();
    if pairs.is_empty() {
        return Err("loss space needs at least two tasks".into());
    }
    let floor = 1e-12;
    let root = BitMapBackend::new(path, (620 * pairs.len() as u32, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(title, (FAMILY, 18)).map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, pairs.len()));
    let black = Rgb(0, 0, 0);
    for (panel, &(i, j)) in panels.iter().zip(&pairs) {
        let all_points = || {
            std::iter::once(&r.init.train)
                .chain(r.parents.iter().map(|p| &p.losses.train))
                .chain([&r.merged.train, &r.joint.losses.train])
                .map(|l| (l[i], l[j]))
                .chain(paths.iter().flat_map(|p| p[i].iter().copied().zip(p[j].iter().copied())))
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|(x, y)| (x.max(floor), y.max(floor)))
        };
        let range = |f: fn((f64, f64)) -> f64| {
            let (lo, hi) =
                all_points().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            if lo.is_finite() {
                (lo / 1.3, hi * 1.3)
            } else {
                (0.1, 1.0)
            }
        };
        let (x0, x1) = range(|p| p.0);
        let (y0, y1) = range(|p| p.1);
        // Headroom above the points for the legend (upper right), about 40 % of the log height.
        let y1 = y1 * (y1 / y0).powf(0.7);
        let name = |t: usize| format!("L{t} ({})", r.task_names[t]);
        let pt = |l: &[f64]| (l[i].max(floor), l[j].max(floor));
        // The figures' line chart (the page's too): the series colours of every CLI figure.
        let mut lines: Vec<Line> = paths
            .iter()
            .enumerate()
            .map(|(t, p)| {
                let line = p[i].iter().zip(&p[j]).map(|(&x, &y)| (x.max(floor), y.max(floor))).collect();
                Line::solid(line, category(t), 2).alpha(0.6).label(format!("parent {t} → merged"))
            })
            .collect();
        lines.push(Line::markers(vec![pt(&r.init.train)], black, Marker::Square(5)).label("θ₀ (init)"));
        for p in &r.parents {
            lines.push(
                Line::markers(vec![pt(&p.losses.train)], category(p.task), Marker::Dot(6))
                    .label(format!("parent {} ({})", p.task, r.task_names[p.task])),
            );
        }
        lines.push(
            Line::markers(vec![pt(&r.merged.train)], category(MERGED), Marker::Up(9))
                .label(format!("merged ({})", r.how)),
        );
        lines.push(
            Line::markers(vec![pt(&r.joint.losses.train)], black, Marker::Cross(6))
                .label(format!("joint ({})", r.joint.method)),
        );
        let (w, h) = panel.dim_in_pixel();
        let (x_label, y_label) = (format!("{} train loss (log)", name(i)), format!("{} train loss (log)", name(j)));
        let chart = LineChart {
            frame: Frame { x: 84, y: 30, w: w as i32 - 84 - 24, h: h as i32 - 30 - 44 },
            x: Axis::log_range(x0, x1),
            y: Axis::log_range(y0, y1),
            title: "",
            x_label: &x_label,
            x_label_below: true,
            y_label: Some(&y_label),
            lines,
            legend: true,
            theme: crate::plot::theme(),
        };
        draw_line_chart(panel, &chart)?;
    }
    root.present().map_err(|e| err(&e))
}
