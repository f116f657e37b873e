//! `concord bench conflict-map --preset NAME --backend cpu|gpu [--grid 100] [--mode M]
//! [--train-steps N] [--json]`: the time of one refresh of the page's per-point conflict map —
//! every cell of a grid × grid lattice over [−6, 6]² (the page's cell centres), its m × m Gram of
//! the tasks' gradients of the shared trunk — at the preset's parameters after N training steps
//! (the mean method; default 100 steps).
//!
//! CPU: `Mlp::point_grams` (f64, one thread: what the page runs in wasm without a GPU) at the
//! CPU trainer's parameters. GPU: `GpuTrainer::point_grams` at the GPU trainer's parameters: the
//! forward pass, the per-point backward passes and the Grams in one submission, waited on, the
//! rows · m² Grams read back and widened. The first call (the GPU's pipelines and buffers are
//! made then) is reported apart; then the median over repeated calls (bench.rs's
//! `median_call_us`: warm-up, then calls for ~1.5 s).

use super::median_call_us;
use crate::train::Backend;
use crate::UsageError;
use clap::Args;
use concord_core::data::DOMAIN;
use concord_core::model::PointGradient;
use concord_core::train::{preset, TrainConfig, Trainer};
use nalgebra::DMatrix;
use std::hint::black_box;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchConflictArgs {
    /// A preset whose model is an MLP on 2-D inputs (xor-conflict, circle-vs-gauss, …).
    #[arg(long)]
    preset: String,
    /// Where the map is computed.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// Cells per side (the page's map: 100).
    #[arg(long, default_value_t = 100)]
    grid: usize,
    /// What each task's gradient at a cell is of: own-prediction (the page's map) or output.
    #[arg(long, default_value = "own-prediction", value_parser = parse_mode)]
    mode: PointGradient,
    /// Training steps (the mean method) before the map is timed.
    #[arg(long, default_value_t = 100)]
    train_steps: usize,
    /// Print one JSON object {"preset", "backend", "adapter", "grid", "points", "tasks", "mode",
    /// "train_steps", "first_ms", "median_ms", "calls"} on stdout ("adapter" null on the CPU).
    #[arg(long)]
    json: bool,
}

/// The largest grid side here (the GPU's kernels take at most 60 000 rows: a side of 244).
const MAX_GRID: usize = 1000;

fn parse_mode(text: &str) -> Result<PointGradient, String> {
    match PointGradient::parse(text)? {
        PointGradient::Loss => Err("the map's cells have no labels: use own-prediction or output".into()),
        how => Ok(how),
    }
}

/// The page's cell centres: side × side over [−6, 6]², row by row from the top.
fn grid_points(side: usize) -> DMatrix<f64> {
    let h = 2.0 * DOMAIN / side as f64;
    DMatrix::from_fn(side * side, 2, |i, c| {
        if c == 0 {
            -DOMAIN + ((i % side) as f64 + 0.5) * h
        } else {
            DOMAIN - ((i / side) as f64 + 0.5) * h
        }
    })
}

pub fn run(a: BenchConflictArgs) -> Result<(), UsageError> {
    if !(1..=MAX_GRID).contains(&a.grid) {
        return Err(UsageError(format!("--grid must be in 1..={MAX_GRID}, got {}", a.grid)));
    }
    let mut config = preset(&a.preset).map_err(UsageError)?;
    config.method = concord_core::MethodSpec::plain("mean");
    config.steps = a.train_steps.max(1);
    let cpu = Trainer::new(config.clone()).map_err(UsageError)?;
    let Some(mlp) = cpu.mlp().cloned() else {
        return Err(UsageError(format!("preset '{}' has no MLP model to map (an MLP on 2-D inputs)", a.preset)));
    };
    if mlp.config().input_dim != 2 {
        return Err(UsageError(format!(
            "preset '{}' has {}-D inputs; the conflict map is drawn over a 2-D plane",
            a.preset,
            mlp.config().input_dim
        )));
    }
    let x = grid_points(a.grid);
    let (first_ms, median_us, calls, adapter) = match a.backend {
        Backend::Cpu => cpu_times(cpu, a.train_steps, &x, a.mode)?,
        Backend::Gpu => gpu_times(config, a.train_steps, &x, a.mode)?,
    };
    let median_ms = median_us / 1e3;
    let backend = match a.backend {
        Backend::Cpu => "cpu",
        Backend::Gpu => "gpu",
    };
    let mode = a.mode.name();
    let points = x.nrows();
    let tasks = mlp.num_tasks();
    if a.json {
        let out = serde_json::json!({
            "preset": a.preset,
            "backend": backend,
            "adapter": adapter,
            "grid": a.grid,
            "points": points,
            "tasks": tasks,
            "mode": mode,
            "train_steps": a.train_steps,
            "first_ms": first_ms,
            "median_ms": median_ms,
            "calls": calls,
        });
        println!("{out}");
    } else {
        let on = adapter.map(|l| format!("gpu: {l}")).unwrap_or_else(|| "cpu".into());
        println!(
            "{} conflict map {g}×{g} ({mode}, {tasks} tasks, after {} steps) [{on}]: median {median_ms:.3} ms per \
             refresh ({calls} calls; first {first_ms:.3} ms)",
            a.preset,
            a.train_steps,
            g = a.grid
        );
    }
    Ok(())
}

type Times = (f64, f64, usize, Option<String>);

fn cpu_times(mut t: Trainer, steps: usize, x: &DMatrix<f64>, how: PointGradient) -> Result<Times, UsageError> {
    for _ in 0..steps {
        t.step().map_err(UsageError)?;
    }
    let mlp = t.mlp().expect("checked: an MLP").clone();
    let params = t.params().to_vec();
    let start = Instant::now();
    mlp.point_grams(&params, x, how, None).map_err(UsageError)?;
    let first_ms = start.elapsed().as_secs_f64() * 1e3;
    let (median_us, calls) = median_call_us(|| drop(black_box(mlp.point_grams(&params, black_box(x), how, None))));
    Ok((first_ms, median_us, calls, None))
}

fn gpu_times(config: TrainConfig, steps: usize, x: &DMatrix<f64>, how: PointGradient) -> Result<Times, UsageError> {
    use concord_gpu::{Gpu, GpuTrainer};
    let err = |e: concord_gpu::GpuError| UsageError(e.to_string());
    let gpu = pollster::block_on(Gpu::new()).map_err(|e| UsageError(format!("no GPU backend: {e}")))?;
    let label = gpu.adapter_label();
    let mut t = GpuTrainer::new(std::sync::Arc::new(gpu), config).map_err(err)?;
    t.set_record_every(steps.max(1)).map_err(err)?;
    t.steps(steps).map_err(err)?;
    pollster::block_on(t.read_history()).map_err(err)?;
    let start = Instant::now();
    pollster::block_on(t.point_grams(x, how)).map_err(err)?;
    let first_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut failed = None;
    let (median_us, calls) = median_call_us(|| {
        if let Err(e) = pollster::block_on(t.point_grams(black_box(x), how)) {
            failed.get_or_insert(e);
        }
    });
    if let Some(e) = failed {
        return Err(err(e));
    }
    Ok((first_ms, median_us, calls, Some(label)))
}
