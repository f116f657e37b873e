//! Host code for each kernel family, next to its WGSL twin in `shaders/`.

pub mod combine;
pub mod copy;
pub mod gram;
pub mod mlp;
pub mod mlp_graph;
pub mod mlp_ops;
pub mod moe;
pub mod metrics;
pub mod landscape;
pub mod toy;
pub mod weighting;

use crate::GpuError;

/// The largest number of tasks the kernels handle (WGSL arrays are sized for it).
pub const MAX_TASKS: usize = 32;

pub(crate) fn check_shape(m: usize, n: usize, len: usize, what: &str) -> Result<(), GpuError> {
    if m == 0 || m > MAX_TASKS {
        return Err(GpuError::Unsupported(format!("{what}: m = {m} tasks; the kernels take 1 ≤ m ≤ {MAX_TASKS}")));
    }
    if m.checked_mul(n) != Some(len) {
        return Err(GpuError::Unsupported(format!("{what}: J has {len} entries, expected m·n = {m}·{n}")));
    }
    if n > u32::MAX as usize / MAX_TASKS {
        return Err(GpuError::Unsupported(format!("{what}: n = {n} is too large")));
    }
    Ok(())
}
