//! concord-gpu: Concord's WGSL kernels (`shaders/` at the workspace root) and their wgpu host
//! code. Each kernel mirrors a concord-core function and is tested against it
//! (`tests/parity.rs`); every shader is validated by naga without a GPU (`tests/naga_validate.rs`).
//!
//! * [`gram`]: G = JJᵀ; [`combine`]: d = Jᵀw; [`weights_with`]: w = f(G) for every
//!   Gramian-weighted aggregator of concord-core's registry except Krum, GradVac, Nash-MTL and
//!   FairGrad ([`GpuWeighting::from_spec`], ids from the one table [`kernels::methods`]);
//!   [`aggregate_with`]: all three on the GPU with one readback.
//! * [`kernels::moe`]: the MoE routing core (gate, top-k, capacity, expert choice, f_i/P_i,
//!   dispatch/combine), the twin of concord-core's `model::moe` routers.
//! * [`gram_metrics`]: cosine matrix, GMS and conflict ratio straight off G.
//! * [`kernels::point_conflict`]: the per-point conflict map, every point's m × m Gram of its
//!   per-task gradients of the shared trunk (the twin of `Mlp::point_grams`), for a whole grid in
//!   one submission; at a trainer's parameters through `GpuTrainer::point_grams`.
//! * [`GpuToy`]: one CAGrad-toy run (`DataSource::Toy`) with any GPU weighting, many steps per
//!   dispatch (`toy_trajectory.wgsl`).
//! * [`GpuTrainer`]: concord-core's multi-task MLP training step (forward, losses, per-task
//!   Jacobian, gram → weighting → combine, SGD/Adam/AdamW/SPAM, and the training dynamics of a
//!   joint schedule: SAM/ASAM, clipping, the lr warm-up and cosine) with no CPU round trip per step;
//!   its kernels one at a time in [`kernels::mlp_ops`] and [`mlp_gradients`]. Methods without a
//!   kernel (Nash-MTL, FairGrad, PCD, CR-MOGM, MGDA `gn`, CAGrad `rescale`; ExcessMTL, MoCo,
//!   DB-MTL) take their weights (MoCo, DB-MTL: their update) from the CPU, one read-back of G (J
//!   for the last three) per step ([`host_weighting`]).
//!
//! Natively, drive the async functions with `pollster::block_on`; in the browser, await them
//! (nothing here blocks). Built for native Vulkan (Mesa lavapipe without a GPU) and for
//! wasm32 WebGPU (never WebGL).
//!
//! Shaders: `shaders/*.wgsl`, one concern per file, assembled by a tiny `// requires:` concat
//! step ([`shaders`]). Everything is f32.
//!
//! lavapipe caveat: Mesa's llvmpipe stops every loop of a shader invocation once that
//! invocation has taken 65 535 loop iterations in total. The weighting code keeps its loop
//! counts small (vec4-blocked m × m algebra), `GpuToy` uses short dispatches on CPU adapters,
//! and both kernels detect a cut with a sentinel loop: `weights`/`aggregate` then return
//! `GpuError::Unsupported`, and a toy run discards the cut step (`ToyRunState::cut_short`)
//! rather than store a wrong state.

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
mod gpu;
pub mod host_weighting;
pub mod kernels;
pub mod shaders;
mod step_dynamics;
pub mod toy_backend;
pub mod trainer;

pub use gpu::{Gpu, GpuError};
pub use host_weighting::{host_weighted, HYBRID_LABEL};
pub use kernels::combine::combine;
pub use kernels::coordinate::{GpuCoordinate, COORDINATE_METHODS};
pub use kernels::copy::copy;
pub use kernels::gram::gram;
pub use kernels::loss_weighting::GPU_LOSS_WEIGHTINGS;
pub use kernels::metrics::{gram_metrics, GramMetrics};
pub use kernels::mlp_graph::{mlp_gradients, GpuGradients};
pub use kernels::moe::{GpuRouter, GpuRouting};
pub use kernels::moe_aux::moe_aux_gradient;
pub use kernels::moe_train::{gpu_moe_unsupported, moe_gradients, moe_gradients_with_noise};
pub use kernels::weighting::{
    aggregate_with, unsupported_reason, weights_with, weights_with_state, GpuWeighting, WeightingState,
};
pub use kernels::MAX_TASKS;
pub use shaders::shader_sources;
pub use toy_backend::{GpuToy, ToyRunState};
pub use trainer::{gpu_weighting, GpuTrainer};

use std::sync::Arc;

use concord_core::train::{Backend, TrainConfig};

/// The registry names of every aggregator the GPU has a weighting kernel for, in id order.
pub fn gpu_methods() -> Vec<&'static str> {
    kernels::methods::names()
}

/// Every aggregator the GPU trainer (`GpuTrainer`) runs: [`gpu_methods`], then the
/// per-coordinate ones it takes straight from J (TrimmedMean, GradDrop: `kernels::coordinate`),
/// then the ones whose weights (or update) it takes from the CPU (Nash-MTL, FairGrad, PCD,
/// CR-MOGM, ExcessMTL, MoCo, DB-MTL: [`host_weighting`]) — every registry aggregator.
pub fn gpu_trainer_methods() -> Vec<&'static str> {
    let mut names = kernels::methods::names();
    names.extend_from_slice(COORDINATE_METHODS);
    names.extend(host_weighting::host_methods());
    names
}

/// The aggregators the fused CAGrad-toy kernel (`GpuToy`) runs: [`gpu_trainer_methods`] without
/// Krum (it needs at least three tasks, on the CPU too) and the hybrids — the weightings, those with memory
/// included, then TrimmedMean and GradDrop from J.
pub fn toy_gpu_methods() -> Vec<&'static str> {
    let mut names = kernels::methods::toy_names();
    names.extend_from_slice(COORDINATE_METHODS);
    names
}

/// The GPU backend for a run: [`GpuToy`] for the CAGrad toys, [`GpuTrainer`] for the MLP data
/// sources. A method without a GPU kernel is `Unsupported` with a message naming the methods
/// the GPU has; so are pareto-synthetic (no GPU path) and a sample-weighting stage
/// (`GpuTrainer::new`).
pub fn backend(gpu: Arc<Gpu>, config: TrainConfig) -> Result<Box<dyn Backend>, GpuError> {
    let name = config.method.aggregator.name();
    // A hybrid (`host_weighting`) reads G or J and the losses back: the GPU trainer runs it;
    // the fused toy kernel refuses it below with the reason.
    if !host_weighted(&config.method.aggregator) {
        trainer::refuse_loss_aware(&config.method.aggregator)?;
        if kernels::methods::find(name).is_none() && !COORDINATE_METHODS.contains(&name) {
            return Err(GpuError::Unsupported(kernels::weighting::no_kernel_message(name)));
        }
    }
    match config.data {
        concord_core::train::DataSource::Toy { .. } => Ok(Box::new(GpuToy::new(gpu, config)?)),
        _ => Ok(Box::new(GpuTrainer::new(gpu, config)?)),
    }
}
