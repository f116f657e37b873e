//! `concord bench landscape`: the wall time of one 51 × 51 slice of a ~10k-parameter MLP on
//! 1000 points through the batched CPU path (`landscape::mlp_slice`), and optionally the exact
//! inputs as JSON so `bench/landscape_torch.py` times the same evaluation in PyTorch and checks
//! its values against ours.

use crate::UsageError;
use clap::Args;
use concord_core::data::GradNormConfig;
use concord_core::landscape::{
    mlp_slice_with, plane, thread_count, DirectionKind, Grid, MlpObjective, PlaneInputs, Precision,
};
use concord_core::model::{Activation, HeadConfig, LossKind, Mlp, MlpConfig, Target};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchLandscapeArgs {
    /// Grid points per axis (over [−1, 1]²).
    #[arg(long, default_value_t = 51)]
    grid: usize,
    /// Samples the loss is averaged over at every grid point.
    #[arg(long, default_value_t = 1000)]
    points: usize,
    /// Hidden widths, comma-separated (default: 50 → 64 → 80 → 2 × 10 = 10 084 parameters).
    #[arg(long, default_value = "64,80", value_delimiter = ',')]
    hidden: Vec<usize>,
    /// Arithmetic: f64 (the reference) or f32 (sgemm, twice the SIMD lanes).
    #[arg(long, default_value = "f64", value_parser = ["f64", "f32"])]
    precision: String,
    /// Threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Timed repetitions (the minimum and the median are reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Write θ, δ, η, x, the targets and our surface to this JSON file (for the PyTorch script).
    #[arg(long, value_name = "FILE")]
    dump: Option<PathBuf>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// CPU seconds this process has used (user + system, all threads): on a shared machine the
/// wall time depends on the other load, the CPU time much less.
fn cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        // SAFETY: getrusage writes one plain struct we own.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } == 0 {
            let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
            return Some(t(u.ru_utime) + t(u.ru_stime));
        }
    }
    None
}

const INPUT_DIM: usize = 50;
const OUTPUT_DIM: usize = 10;

fn values(t: &Target) -> Vec<Vec<f64>> {
    match t {
        Target::Values(v) => v.row_iter().map(|r| r.iter().copied().collect()).collect(),
        Target::Classes(_) => unreachable!("the bench model has MSE heads"),
    }
}

pub fn run(a: BenchLandscapeArgs) -> Result<(), UsageError> {
    if a.repeats == 0 || a.repeats > 100 {
        return Err(UsageError(format!("--repeats must be 1–100, got {}", a.repeats)));
    }
    if !(1..=100_000).contains(&a.points) {
        return Err(UsageError(format!("--points must be 1–100000, got {}", a.points)));
    }
    let config = MlpConfig {
        input_dim: INPUT_DIM,
        hidden: a.hidden.clone(),
        activation: Activation::Relu,
        heads: vec![HeadConfig { out_dim: OUTPUT_DIM, loss: LossKind::Mse }; 2],
        tied_head_init: false,
        head_init_scale: 1.0,
    };
    let mlp = Mlp::new(config).map_err(|e| UsageError(format!("--hidden: {e}")))?;
    let grid = Grid::square(a.grid, -1.0, 1.0).map_err(|e| UsageError(format!("--grid: {e}")))?;
    let data = GradNormConfig {
        input_dim: INPUT_DIM,
        output_dim: OUTPUT_DIM,
        sigmas: vec![1.0, 100.0],
        b_std: 10.0,
        eps_std: 3.5,
        seed: 0,
    };
    let (x, y) = data.build().map_err(UsageError)?.fixed_set(a.points, 1);
    let theta = mlp.init_params(0);
    let objective = MlpObjective { mlp: &mlp, x: &x, targets: &y };
    let inputs = PlaneInputs { layout: Some(mlp.layout()), seed: 0, trajectory: &[], tasks: (0, 1) };
    let p = plane(DirectionKind::Random, &objective, &theta, &inputs).map_err(UsageError)?;
    let threads = thread_count(a.threads, grid.len());
    let precision = if a.precision == "f32" { Precision::F32 } else { Precision::F64 };

    let mut times = Vec::with_capacity(a.repeats);
    let mut surface = None;
    let cpu_start = cpu_seconds();
    for _ in 0..a.repeats {
        let t = Instant::now();
        let s = mlp_slice_with(&mlp, &x, &y, &p, &grid, threads, precision).map_err(UsageError)?;
        times.push(t.elapsed().as_secs_f64());
        surface = Some(s);
    }
    let cpu_per_run = cpu_start.zip(cpu_seconds()).map(|(s, e)| (e - s) / a.repeats as f64);
    let surface = surface.expect("at least one repeat");
    times.sort_by(f64::total_cmp);
    let (min, median) = (times[0], times[times.len() / 2]);
    let params = mlp.layout().total_len;

    if let Some(path) = &a.dump {
        let doc = serde_json::json!({
            "input_dim": INPUT_DIM, "hidden": a.hidden, "output_dim": OUTPUT_DIM, "heads": 2, "activation": "relu",
            "grid": a.grid, "theta": theta, "delta": p.delta, "eta": p.eta,
            "x": x.row_iter().map(|r| r.iter().copied().collect::<Vec<f64>>()).collect::<Vec<_>>(),
            "targets": y.iter().map(values).collect::<Vec<_>>(),
            "surface_tasks": surface.tasks, "surface_total": surface.total,
        });
        std::fs::write(path, doc.to_string())
            .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "seconds_min": min, "seconds_median": median, "repeats": a.repeats, "grid": a.grid,
                "points": a.points, "params": params, "threads": threads, "hidden": a.hidden, "precision": a.precision, "cpu_seconds_per_run": cpu_per_run,
            })
        );
    } else {
        println!(
            "landscape slice {g}×{g} of a {params}-parameter MLP on {n} points, {p}, {threads} thread(s): min {min:.3} s, median {median:.3} s ({r} runs); CPU time {cpu} per run",
            g = a.grid,
            p = a.precision,
            cpu = cpu_per_run.map_or("n/a".to_string(), |c| format!("{c:.3} s")),
            n = a.points,
            r = a.repeats
        );
    }
    Ok(())
}
