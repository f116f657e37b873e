//! `concord train --preset … --backend gpu`: the run on `concord_gpu::GpuTrainer`, returning
//! the same `RunRecord` the CPU trainer gives (every step recorded), so every output of
//! `train --preset` (JSON, --out, --plot, the summary) is unchanged.

use crate::UsageError;
use concord_core::train::{RunRecord, TrainConfig};
use concord_gpu::{Gpu, GpuTrainer};
use std::sync::Arc;

/// Steps per queue submission; the history is read back after each.
pub const CHUNK: usize = 100;

/// Runs `config` to the end on the GPU; returns the record and a backend label for the summary.
pub fn run(config: TrainConfig, mut progress: impl FnMut(usize)) -> Result<(RunRecord, String), UsageError> {
    let gpu = pollster::block_on(Gpu::new()).map_err(|e| UsageError(format!("no GPU backend: {e}")))?;
    let label = format!("gpu: {}", gpu.adapter_label());
    let mut trainer = GpuTrainer::new(Arc::new(gpu), config).map_err(|e| UsageError(e.to_string()))?;
    // A divergence ends the run with `record.error` set, as on the CPU; device failures are errors.
    if let Err(e) = pollster::block_on(trainer.run_to_end(CHUNK, &mut progress)) {
        if trainer.error().is_none() {
            return Err(UsageError(e.to_string()));
        }
    }
    let record = pollster::block_on(trainer.record()).map_err(|e| UsageError(e.to_string()))?;
    Ok((record, label))
}
