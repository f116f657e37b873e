//! The host-weighting hybrid of the GPU trainer: for a Gramian-weighted aggregator that has no
//! GPU weighting kernel (Nash-MTL, FairGrad, PCD, CR-MOGM, and MGDA / CAGrad with LibMTL's `gn`
//! / `rescale` options), the GPU still does the forward and backward passes, the per-task
//! Jacobian J and G = JJᵀ; G (m × m) and the batch's m task losses are copied to a staging
//! buffer and read back, the weights are computed on the host by concord-core's aggregator
//! itself (one instance kept across the run's steps, so a stateful method carries exactly the
//! state it carries in the CPU trainer), w is uploaded, and the GPU combines d = Jᵀw and applies
//! the optimizer.
//!
//! A step therefore waits on one read-back in its middle. `GpuTrainer::steps` only queues such
//! steps; its async read-back drives them one at a time (`queue.submit` of the step's first
//! half, await the map of G, the host solve, `write_buffer` of w, then the second half is
//! recorded into the encoder that also carries the next step's first half). Natively that await
//! is a blocking poll; in the browser the map resolves on the event loop, so nothing blocks.
//! Why not a WGSL solver: `concord bench round-trip` measures the round trip at ~0.1 ms on
//! lavapipe, and the host keeps the CPU's exact solver (Nash-MTL's cone solve, FairGrad's
//! Levenberg–Marquardt, PCD's active set) with no second implementation to drift.

use concord_core::aggregators::registry::AGGREGATORS;
use concord_core::aggregators::{Aggregator, AggregatorSpec};
use nalgebra::DMatrix;

use crate::kernels::weighting::CPU_ONLY_OPTIONS;
use crate::kernels::{combine, gram, methods};
use crate::{Gpu, GpuError};

/// Whether the GPU trainer runs `spec` as a hybrid: Gramian-weighted in concord-core's registry
/// (w = f(G), optionally reading the losses), but without a GPU weighting kernel for it, or with
/// an option the kernel lacks (MGDA's `gn`, CAGrad's `rescale`).
pub fn host_weighted(spec: &AggregatorSpec) -> bool {
    let info = spec.info();
    info.gramian_weighted
        && (methods::find(info.name).is_none()
            || CPU_ONLY_OPTIONS.iter().any(|(key, plain)| spec.word(key).is_some_and(|v| v != *plain)))
}

/// The registry aggregators the GPU trainer runs only as a hybrid (every spelling of them):
/// Gramian-weighted, no GPU weighting kernel.
pub fn host_methods() -> Vec<&'static str> {
    AGGREGATORS.iter().filter(|a| a.gramian_weighted && methods::find(a.name).is_none()).map(|a| a.name).collect()
}

/// The backend's label for a hybrid run (the page's readout, the CLI's `backend` field).
pub const HYBRID_LABEL: &str = "GPU (weights on the CPU)";

/// One hybrid run's host side: the core aggregator and the two small buffers of the round trip.
pub(crate) struct HostWeighting {
    agg: Box<dyn Aggregator>,
    name: &'static str,
    m: usize,
    /// G (m × m, row-major) then the m losses, as one step left them (MAP_READ).
    staging: wgpu::Buffer,
    /// w (m), then the completion flag 1.0 the GPU weighting kernels write (the history's check).
    w: wgpu::Buffer,
}

impl HostWeighting {
    /// The hybrid for `spec` if [`host_weighted`]; `None` for a method the GPU kernels run.
    pub(crate) fn for_spec(gpu: &Gpu, spec: &AggregatorSpec, m: usize, seed: u64) -> Result<Option<Self>, GpuError> {
        if !host_weighted(spec) {
            return Ok(None);
        }
        // The same constructor, m and seed as the CPU trainer's (`Trainer::new`).
        let agg = spec.build(m, seed).map_err(GpuError::Unsupported)?;
        let staging = gpu.buffer(
            "host weighting: G and losses",
            ((m * m + m) * 4) as u64,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let w = gpu.buffer(
            "host weighting: w",
            ((m + 1) * 4) as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        );
        Ok(Some(HostWeighting { agg, name: spec.info().name, m, staging, w }))
    }

    /// G = JJᵀ of `jac` (m × n), read back with `losses`; w from the core aggregator, uploaded;
    /// d = Jᵀw into the trunk's part of `update`. `encoder` is submitted up to G and replaced by a
    /// fresh one that holds the combine. Returns G and w (m + 1 floats, as the GPU weightings').
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn combine(
        &mut self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        jac: &wgpu::Buffer,
        losses: &wgpu::Buffer,
        update: &wgpu::Buffer,
        n: usize,
    ) -> Result<(wgpu::Buffer, wgpu::Buffer), GpuError> {
        let m = self.m;
        let f = |x: usize| (x * 4) as u64;
        let gram_buf = gram::encode(gpu, encoder, jac, m, n);
        encoder.copy_buffer_to_buffer(&gram_buf, 0, &self.staging, 0, f(m * m));
        encoder.copy_buffer_to_buffer(losses, 0, &self.staging, f(m * m), f(m));
        let first_half = std::mem::replace(
            encoder,
            gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train steps") }),
        );
        gpu.queue.submit(Some(first_half.finish()));
        let back = gpu.read_mapped(&self.staging, f(m * m + m)).await?;
        let g = DMatrix::from_row_slice(m, m, &back[..m * m].iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        let l: Vec<f64> = back[m * m..].iter().map(|&x| f64::from(x)).collect();
        let mut w: Vec<f32> = self.weights(&g, &l)?.into_iter().map(|x| x as f32).collect();
        w.push(1.0);
        // Ordered before the next submission, which holds the combine that reads it.
        gpu.queue.write_buffer(&self.w, 0, bytemuck::cast_slice(&w));
        let d = combine::encode(gpu, encoder, jac, &self.w, m, n);
        encoder.copy_buffer_to_buffer(&d, 0, update, 0, f(n));
        Ok((gram_buf, self.w.clone()))
    }

    /// The core aggregator's weights for G and the losses, as the CPU trainer's
    /// `aggregate_with_losses` computes them. A non-finite G or loss never reaches the
    /// aggregator (the CPU trainer stops before it; `optim_check` stops this step the same way),
    /// so a stateful method's state is not poisoned: w = 0 then.
    fn weights(&mut self, g: &DMatrix<f64>, losses: &[f64]) -> Result<Vec<f64>, GpuError> {
        if !(g.iter().all(|x| x.is_finite()) && losses.iter().all(|x| x.is_finite())) {
            return Ok(vec![0.0; self.m]);
        }
        // `host_weighted` admits Gramian-weighted methods only, which always return weights; an
        // error (not a panic, which would take the page down) if one ever does not.
        self.agg
            .gram_weights_with_losses(g, losses)
            .map(|w| w.as_slice().to_vec())
            .ok_or_else(|| GpuError::Unsupported(format!("'{}' gave no weights from the Gramian", self.name)))
    }
}
