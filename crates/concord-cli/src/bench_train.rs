//! `concord bench train --preset NAME --backend cpu|gpu`: training steps per second of a preset
//! (its model, data, batch size and optimizer; `--method` picks the aggregator).
//!
//! CPU: `Trainer::step` in a loop. GPU: `GpuTrainer::steps` in submissions of `--chunk` steps,
//! recording only the first step, timed until the last submission's work has finished (the
//! final readback waits for it). Both first take `--warmup` untimed steps (the GPU's pipelines
//! are compiled and its buffers touched by then).

use crate::train::Backend;
use crate::UsageError;
use clap::Args;
use concord_core::train::{preset, Trainer};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchTrainArgs {
    /// The preset (see `concord train --preset`).
    #[arg(long)]
    preset: String,
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
    /// The aggregator.
    #[arg(long, default_value = "mean")]
    method: String,
    /// Print one JSON object {"preset", "backend", "adapter", "method", "steps",
    /// "steps_per_second", "seconds"} on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(a: BenchTrainArgs) -> Result<(), UsageError> {
    if a.steps == 0 || a.chunk == 0 {
        return Err(UsageError(format!("--steps and --chunk must be at least 1, got {} and {}", a.steps, a.chunk)));
    }
    let mut config = preset(&a.preset).map_err(UsageError)?;
    config.method = concord_core::MethodSpec::parse(a.method.trim()).map_err(UsageError)?;
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
            "backend": match a.backend { Backend::Cpu => "cpu", Backend::Gpu => "gpu" },
            "adapter": adapter,
            "method": a.method,
            "steps": a.steps,
            "steps_per_second": sps,
            "seconds": seconds,
        });
        println!("{out}");
    } else {
        let on = adapter.map(|l| format!("gpu: {l}")).unwrap_or_else(|| "cpu".into());
        println!("{} / {} [{on}]: {sps:.1} steps/s ({} steps in {seconds:.3} s)", a.preset, a.method, a.steps);
    }
    Ok(())
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
    // Waits for the GPU to finish everything submitted.
    pollster::block_on(t.params()).map_err(err)?;
    Ok((start.elapsed().as_secs_f64(), Some(label)))
}
