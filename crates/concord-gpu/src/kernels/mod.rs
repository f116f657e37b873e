//! Host code for each kernel family, next to its WGSL twin in `shaders/`.

pub mod combine;
pub mod coordinate;
pub mod copy;
pub mod gram;
pub mod landscape;
pub(crate) mod loss_weighting;
pub mod methods;
pub mod metrics;
pub mod mlp;
pub mod mlp_graph;
pub mod mlp_ops;
pub mod moe;
pub(crate) mod moe_arch;
pub mod moe_aux;
pub(crate) mod moe_dselect;
pub mod moe_hidden;
pub(crate) mod moe_record;
pub mod moe_train;
pub mod point_conflict;
pub(crate) mod toy;
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

/// The host `#[repr(C)]` parameter structs shared with WGSL: (assembled module, WGSL struct
/// name, host size in bytes). `tests/method_table.rs` checks each against naga's layout.
#[doc(hidden)]
pub fn host_layouts() -> Vec<(&'static str, &'static str, usize)> {
    use std::mem::size_of;
    let mut out = vec![
        ("combine.wgsl", "CombineParams", size_of::<combine::CombineParams>()),
        ("copy.wgsl", "CopyParams", size_of::<copy::CopyParams>()),
        ("coordinate_trimmed_mean.wgsl", "TrimParams", size_of::<coordinate::CoordParams>()),
        ("coordinate_graddrop.wgsl", "DropParams", size_of::<coordinate::CoordParams>()),
        ("gram.wgsl", "GramParams", size_of::<gram::GramParams>()),
        ("landscape_slice.wgsl", "SliceParams", size_of::<landscape::SliceParams>()),
        ("loss_weighting.wgsl", "LwParams", size_of::<loss_weighting::LwParams>()),
        ("metrics.wgsl", "MetricsParams", size_of::<metrics::MetricsParams>()),
        ("mlp_activation_map.wgsl", "ActMapParams", size_of::<mlp::ActMapParams>()),
        ("mlp_backprop.wgsl", "BackpropParams", size_of::<mlp::BackpropParams>()),
        ("mlp_dense_forward.wgsl", "DenseParams", size_of::<mlp::DenseParams>()),
        ("mlp_gather.wgsl", "GatherParams", size_of::<mlp::GatherParams>()),
        ("mlp_loss.wgsl", "LossParams", size_of::<mlp::LossParams>()),
        ("mlp_optim.wgsl", "MlpOptParams", size_of::<mlp::OptParams>()),
        ("mlp_optim.wgsl", "MlpCheckParams", size_of::<mlp::CheckParams>()),
        ("mlp_optim.wgsl", "MlpPrepParams", size_of::<mlp::PrepParams>()),
        ("mlp_sam.wgsl", "SamParams", size_of::<mlp::SamParams>()),
        ("mlp_weight_grad.wgsl", "WeightGradParams", size_of::<mlp::WeightGradParams>()),
        ("moe_gate.wgsl", "MoeParams", size_of::<moe::MoeParams>()),
        ("moe_train.wgsl", "MoeTrainParams", size_of::<moe_train::MoeTrainParams>()),
        ("moe_expert_gram.wgsl", "ExpertGramParams", size_of::<moe_record::ExpertGramParams>()),
        ("point_out_grad.wgsl", "PointOutParams", size_of::<point_conflict::PointOutParams>()),
        ("point_backprop.wgsl", "PointBackpropParams", size_of::<point_conflict::PointBackpropParams>()),
        ("point_gram.wgsl", "PointGramParams", size_of::<point_conflict::PointGramParams>()),
        ("weighting.wgsl", "WeightParams", size_of::<weighting::WeightParams>()),
    ];
    out.extend(toy::LAYOUTS.iter().map(|&(name, size)| ("toy_trajectory.wgsl", name, size)));
    out
}
