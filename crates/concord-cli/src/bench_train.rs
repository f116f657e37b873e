//! `concord bench train --preset NAME --backend cpu|gpu`: training steps per second of a preset
//! (its model, data, batch size and optimizer; `--method` picks the aggregator), or of any run
//! given as a TrainConfig JSON file (`--config FILE`, the "config" object of a run record).
//! `--precision f32|f64` picks the CPU step's arithmetic (the fast path or the reference).
//!
//! CPU: `Trainer::step` in a loop. GPU: `GpuTrainer::steps` in submissions of `--chunk` steps,
//! recording only the first step, timed until the last submission's work has finished (the
//! final readback waits for it). Both first take `--warmup` untimed steps (the GPU's pipelines
//! are compiled and its buffers touched by then).

use crate::train::Backend;
use crate::UsageError;
use clap::Args;
use concord_core::train::{preset, Precision, TrainConfig, Trainer};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("run").required(true).args(["preset", "config"])))]
pub struct BenchTrainArgs {
    /// The preset (see `concord train --preset`).
    #[arg(long)]
    preset: Option<String>,
    /// A run's TrainConfig as JSON (the "config" object of a run record, e.g. from
    /// `concord train --preset P --out run.json`): its model, data, batch size, optimizer and
    /// method. Its step count is replaced by --warmup + --steps.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// CPU step arithmetic: f32 (the fast path) or f64 (the reference). Default: f32 for a
    /// preset, the file's own "precision" (f32 when absent) for --config.
    #[arg(long, value_parser = Precision::parse)]
    precision: Option<Precision>,
    /// Where the steps run.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// Timed steps.
    #[arg(long, default_value_t = 500)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// GPU: steps per queue submission.
    #[arg(long, default_value_t = 100)]
    chunk: usize,
    /// The aggregator, in the text form `aggregator[+weighting][:key=value…]` (default: mean for
    /// a preset, the file's own method for --config).
    #[arg(long)]
    method: Option<String>,
    /// Print one JSON object {"preset", "config", "backend", "adapter", "method", "precision",
    /// "steps", "steps_per_second", "seconds"} on stdout ("preset" or "config" is null: the one
    /// not given).
    #[arg(long)]
    json: bool,
}

pub fn run(a: BenchTrainArgs) -> Result<(), UsageError> {
    if a.steps == 0 || a.chunk == 0 {
        return Err(UsageError(format!("--steps and --chunk must be at least 1, got {} and {}", a.steps, a.chunk)));
    }
    let mut config = match (&a.preset, &a.config) {
        (Some(name), None) => {
            let mut c = preset(name).map_err(UsageError)?;
            c.method = concord_core::MethodSpec::plain("mean");
            c
        }
        (None, Some(path)) => read_config(path)?,
        _ => return Err(UsageError("give --preset NAME or --config FILE (not both)".into())),
    };
    if let Some(text) = &a.method {
        config.method = concord_core::MethodSpec::parse(text.trim()).map_err(UsageError)?;
    }
    if let Some(precision) = a.precision {
        config.precision = precision;
    }
    let method = config.method.to_text();
    let precision = config.precision.name();
    config.steps = a.warmup.checked_add(a.steps).ok_or_else(|| UsageError("--steps is too large".into()))?;
    let (seconds, adapter) = match a.backend {
        Backend::Cpu => {
            let mut t = Trainer::new(config).map_err(UsageError)?;
            for _ in 0..a.warmup {
                t.step().map_err(UsageError)?;
            }
            let start = Instant::now();
            for _ in 0..a.steps {
                t.step().map_err(UsageError)?;
            }
            (start.elapsed().as_secs_f64(), None)
        }
        Backend::Gpu => gpu(config, &a)?,
    };
    let sps = a.steps as f64 / seconds;
    if a.json {
        let out = serde_json::json!({
            "preset": a.preset,
            "config": a.config.as_ref().map(|p| p.display().to_string()),
            "backend": match a.backend { Backend::Cpu => "cpu", Backend::Gpu => "gpu" },
            "adapter": adapter,
            "method": method,
            "precision": precision,
            "steps": a.steps,
            "steps_per_second": sps,
            "seconds": seconds,
        });
        println!("{out}");
    } else {
        let on = adapter.map(|l| format!("gpu: {l}")).unwrap_or_else(|| "cpu".into());
        let what = match (&a.preset, &a.config) {
            (Some(name), _) => name.clone(),
            (None, Some(path)) => path.display().to_string(),
            (None, None) => unreachable!("checked above"),
        };
        println!("{what} / {method} [{on}, {precision}]: {sps:.1} steps/s ({} steps in {seconds:.3} s)", a.steps);
    }
    Ok(())
}

/// A TrainConfig JSON file, parsed and validated (every failure a usage error naming the file).
fn read_config(path: &Path) -> Result<TrainConfig, UsageError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| UsageError(format!("--config: cannot read {shown}: {e}")))?;
    let config: TrainConfig = serde_json::from_str(&text)
        .map_err(|e| UsageError(format!("--config: {shown} is not a valid TrainConfig JSON: {e}")))?;
    config.validate().map_err(|e| UsageError(format!("--config: {shown}: invalid run: {e}")))?;
    Ok(config)
}

fn gpu(config: concord_core::train::TrainConfig, a: &BenchTrainArgs) -> Result<(f64, Option<String>), UsageError> {
    use concord_gpu::{Gpu, GpuTrainer};
    let err = |e: concord_gpu::GpuError| UsageError(e.to_string());
    let gpu = pollster::block_on(Gpu::new()).map_err(|e| UsageError(format!("no GPU backend: {e}")))?;
    let label = gpu.adapter_label();
    let mut t = GpuTrainer::new(std::sync::Arc::new(gpu), config).map_err(err)?;
    t.set_record_every(a.warmup + a.steps).map_err(err)?;
    t.steps(a.warmup).map_err(err)?;
    pollster::block_on(t.read_history()).map_err(err)?;
    let start = Instant::now();
    let mut left = a.steps;
    while left > 0 {
        left -= t.steps(left.min(a.chunk)).map_err(err)?;
    }
    // Runs a hybrid run's queued steps (each waits on its read-back of G: `host_weighting`),
    // then waits for the GPU to finish everything submitted.
    pollster::block_on(t.read_history()).map_err(err)?;
    pollster::block_on(t.params()).map_err(err)?;
    Ok((start.elapsed().as_secs_f64(), Some(label)))
}
