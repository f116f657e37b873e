//! The host-weighting hybrid of the GPU trainer: for an aggregator that has no GPU kernel, the
//! GPU still does the forward and backward passes and the per-task Jacobian J; what the
//! aggregator reads is copied to a staging buffer and read back, concord-core's aggregator itself
//! (one instance kept across the run's steps, so a stateful method carries exactly the state it
//! carries in the CPU trainer) runs on it, its result is uploaded, and the GPU combines and
//! applies the optimizer. Two read-backs ([`HostStep`]):
//! * G = JJᵀ (m × m) and the batch's m task losses, for the Gramian-weighted methods (Nash-MTL,
//!   FairGrad, PCD, CR-MOGM, and MGDA / CAGrad with LibMTL's `gn` / `rescale` options): w up,
//!   d = Jᵀw on the GPU.
//! * J itself (m × n) and the losses, for the rest (ExcessMTL: w from J elementwise; MoCo and
//!   DB-MTL: d from their state tracked across steps, not Jᵀw), called exactly as the CPU
//!   trainer calls them (`Aggregator::aggregate_with_losses`): ExcessMTL's w goes up as the
//!   Gramian methods' do; MoCo's and DB-MTL's d goes up itself, and the step's metrics come from
//!   the Gramian of [J; d], as TrimmedMean's and GradDrop's (`kernels::coordinate`).
//!
//! A step therefore waits on one read-back in its middle. `GpuTrainer::steps` only queues such
//! steps; its async read-back drives them one at a time (`queue.submit` of the step's first
//! half, await the map of G or J, the host call, `write_buffer` of w or d, then the second half
//! is recorded into the encoder that also carries the next step's first half). Natively that
//! await is a blocking poll; in the browser the map resolves on the event loop, so nothing
//! blocks. Why not a WGSL solver: `concord bench round-trip` measures the round trip at ~0.1 ms
//! on lavapipe, and the host keeps the CPU's exact solver (Nash-MTL's cone solve, FairGrad's
//! Levenberg–Marquardt, PCD's active set, MoCo's, DB-MTL's and ExcessMTL's f64 state) with no
//! second implementation to drift.

use concord_core::aggregators::registry::AGGREGATORS;
use concord_core::aggregators::{Aggregator, AggregatorSpec};
use nalgebra::DMatrix;

use crate::kernels::coordinate::{self, COORDINATE_METHODS, MAX_COORDINATE_TASKS};
use crate::kernels::weighting::CPU_ONLY_OPTIONS;
use crate::kernels::{combine, gram, methods};
use crate::{Gpu, GpuError};

/// Whether the GPU trainer runs `spec` as a hybrid: an aggregator of concord-core's registry
/// without a GPU kernel (neither a weighting kernel nor a per-coordinate one), or a GPU method
/// with an option the kernel lacks (MGDA's `gn`, CAGrad's `rescale`).
pub fn host_weighted(spec: &AggregatorSpec) -> bool {
    HostStep::of(spec).is_some()
}

/// The registry aggregators the GPU trainer runs only as a hybrid (every spelling of them).
pub fn host_methods() -> Vec<&'static str> {
    AGGREGATORS.iter().filter(|a| no_kernel(a.name)).map(|a| a.name).collect()
}

/// No weighting kernel and no per-coordinate kernel.
fn no_kernel(name: &str) -> bool {
    methods::find(name).is_none() && !COORDINATE_METHODS.contains(&name)
}

/// The backend's label for a hybrid run (the page's readout, the CLI's `backend` field).
pub const HYBRID_LABEL: &str = "GPU (weights on the CPU)";

/// What a hybrid step reads back, and what it uploads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostStep {
    /// G (m × m) and the losses back, w = f(G, losses) up: the Gramian-weighted methods.
    Gram,
    /// J (m × n) and the losses back, w up: an aggregator whose w reads J itself (ExcessMTL's
    /// per-coordinate squared-gradient sums).
    JacobianWeights,
    /// J and the losses back, d itself up: LibMTL's loss-aware steps (MoCo, DB-MTL), whose d
    /// combines their tracked state, not the current J (`aggregators::loss_aware`: no weights).
    JacobianDirection,
}

impl HostStep {
    /// The hybrid step of `spec`; `None` for a method the GPU kernels run.
    pub(crate) fn of(spec: &AggregatorSpec) -> Option<Self> {
        let info = spec.info();
        let cpu_option = || CPU_ONLY_OPTIONS.iter().any(|(key, plain)| spec.word(key).is_some_and(|v| v != *plain));
        if info.gramian_weighted {
            (methods::find(info.name).is_none() || cpu_option()).then_some(HostStep::Gram)
        } else if !no_kernel(info.name) {
            None
        } else if info.needs_losses {
            Some(HostStep::JacobianDirection)
        } else {
            Some(HostStep::JacobianWeights)
        }
    }
}

/// One hybrid run's host side: the core aggregator and the buffers of the round trip.
pub(crate) struct HostWeighting {
    agg: Box<dyn Aggregator>,
    name: &'static str,
    kind: HostStep,
    m: usize,
    n: usize,
    /// G (m × m, row-major) or J (m × n), then the m losses, as one step left them (MAP_READ).
    staging: wgpu::Buffer,
    /// w (m), then the completion flag 1.0 the GPU weighting kernels write (the history's check).
    w: wgpu::Buffer,
    /// [`HostStep::JacobianDirection`]: [J; d] ((m + 1) × n), whose Gramian gives the step's
    /// metrics as the CPU's `StepMetrics::new(J, d)`.
    ext: Option<wgpu::Buffer>,
}

impl HostWeighting {
    /// The hybrid for `spec` if [`host_weighted`]; `None` for a method the GPU kernels run. `n`
    /// is the number of shared parameters (J's columns).
    pub(crate) fn for_spec(
        gpu: &Gpu,
        spec: &AggregatorSpec,
        m: usize,
        n: usize,
        seed: u64,
    ) -> Result<Option<Self>, GpuError> {
        let Some(kind) = HostStep::of(spec) else { return Ok(None) };
        if kind == HostStep::JacobianDirection && m > MAX_COORDINATE_TASKS {
            return Err(GpuError::Unsupported(format!(
                "{m} tasks; '{}' on the GPU takes at most {MAX_COORDINATE_TASKS} (its metrics use the Gramian of \
                 [J; d]); use the CPU backend",
                spec.name()
            )));
        }
        // The same constructor, m and seed as the CPU trainer's (`Trainer::new`).
        let agg = spec.build(m, seed).map_err(GpuError::Unsupported)?;
        let back = match kind {
            HostStep::Gram => m * m + m,
            HostStep::JacobianWeights | HostStep::JacobianDirection => m * n + m,
        };
        gpu.check_binding_size("the hybrid's read-back", (back * 4) as u64)?;
        let staging = gpu.buffer(
            "host weighting: read-back",
            (back * 4) as u64,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let rw = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let w = gpu.buffer("host weighting: w", ((m + 1) * 4) as u64, rw);
        let ext = match kind {
            HostStep::JacobianDirection => {
                gpu.check_binding_size("[J; d]", ((m + 1) * n * 4) as u64)?;
                Some(gpu.buffer("host weighting: [J; d]", ((m + 1) * n * 4) as u64, rw))
            }
            _ => None,
        };
        Ok(Some(HostWeighting { agg, name: spec.info().name, kind, m, n, staging, w, ext }))
    }

    /// Whether a step's history slot holds (Jd, ‖d‖²) in w's place (no weights: MoCo, DB-MTL).
    pub(crate) fn directional(&self) -> bool {
        self.kind == HostStep::JacobianDirection
    }

    /// G or J of `jac` (m × n) read back with `losses`; the core aggregator's w (uploaded, then
    /// d = Jᵀw) or d (uploaded) into the trunk's part of `update`. `encoder` is submitted up to
    /// the read-back and replaced by a fresh one that holds the rest. Returns G and w (m + 1
    /// floats, as the GPU weightings'), or G and (Jd, ‖d‖²) for [`HostStep::JacobianDirection`].
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
        debug_assert_eq!(n, self.n);
        let f = |x: usize| (x * 4) as u64;
        let (gram_buf, read) = match self.kind {
            HostStep::Gram => {
                let g = gram::encode(gpu, encoder, jac, m, n);
                encoder.copy_buffer_to_buffer(&g, 0, &self.staging, 0, f(m * m));
                (Some(g), m * m)
            }
            HostStep::JacobianWeights | HostStep::JacobianDirection => {
                encoder.copy_buffer_to_buffer(jac, 0, &self.staging, 0, f(m * n));
                (None, m * n)
            }
        };
        encoder.copy_buffer_to_buffer(losses, 0, &self.staging, f(read), f(m));
        let first_half = std::mem::replace(
            encoder,
            gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train steps") }),
        );
        gpu.queue.submit(Some(first_half.finish()));
        let back = gpu.read_mapped(&self.staging, f(read + m)).await?;
        let widen = |x: &[f32]| x.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
        let l = widen(&back[read..]);
        // Each `write_buffer` below is ordered before the next submission, which holds the
        // combine or the copy that reads it.
        let mut w: Vec<f32> = match self.kind {
            HostStep::Gram => self.weights(&DMatrix::from_row_slice(m, m, &widen(&back[..read])), &l)?,
            HostStep::JacobianWeights => {
                self.jacobian_weights(&DMatrix::from_row_slice(m, n, &widen(&back[..read])), &l)?
            }
            HostStep::JacobianDirection => {
                let d = self.direction(&DMatrix::from_row_slice(m, n, &widen(&back[..read])), &l);
                let ext = self.ext.as_ref().expect("a direction step has its [J; d]");
                gpu.queue.write_buffer(ext, f(m * n), bytemuck::cast_slice(&d));
                encoder.copy_buffer_to_buffer(jac, 0, ext, 0, f(m * n));
                encoder.copy_buffer_to_buffer(ext, f(m * n), update, 0, f(n));
                return Ok(coordinate::directional_gram(gpu, encoder, ext, m, n));
            }
        }
        .into_iter()
        .map(|x| x as f32)
        .collect();
        w.push(1.0);
        gpu.queue.write_buffer(&self.w, 0, bytemuck::cast_slice(&w));
        let gram_buf = gram_buf.unwrap_or_else(|| gram::encode(gpu, encoder, jac, m, n));
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
        // `HostStep::Gram` admits Gramian-weighted methods only, which always return weights; an
        // error (not a panic, which would take the page down) if one ever does not.
        self.agg
            .gram_weights_with_losses(g, losses)
            .map(|w| w.as_slice().to_vec())
            .ok_or_else(|| GpuError::Unsupported(format!("'{}' gave no weights from the Gramian", self.name)))
    }

    /// The weights of the CPU trainer's call `aggregate_with_losses(J, losses)` (ExcessMTL);
    /// w = 0 for a non-finite J or loss, as [`Self::weights`].
    fn jacobian_weights(&mut self, j: &DMatrix<f64>, losses: &[f64]) -> Result<Vec<f64>, GpuError> {
        if !(j.iter().all(|x| x.is_finite()) && losses.iter().all(|x| x.is_finite())) {
            return Ok(vec![0.0; self.m]);
        }
        self.agg
            .aggregate_with_losses(j, losses)
            .weights
            .map(|w| w.as_slice().to_vec())
            .ok_or_else(|| GpuError::Unsupported(format!("'{}' gave no weights from J", self.name)))
    }

    /// The update of the CPU trainer's call `aggregate_with_losses(J, losses)` (MoCo, DB-MTL), in
    /// f32; d = 0 for a non-finite J or loss, as [`Self::weights`]. A non-finite d is uploaded as
    /// it is: `optim_check` stops the step with the CPU trainer's "the aggregator's update is not
    /// finite".
    fn direction(&mut self, j: &DMatrix<f64>, losses: &[f64]) -> Vec<f32> {
        if !(j.iter().all(|x| x.is_finite()) && losses.iter().all(|x| x.is_finite())) {
            return vec![0.0; self.n];
        }
        self.agg.aggregate_with_losses(j, losses).update.iter().map(|&x| x as f32).collect()
    }
}
