//! The run's loss weighting on the GPU (`shaders/loss_weighting.wgsl`): w_i = ∂L_total/∂L_i from
//! the step's batch losses, with its state in a GPU buffer, and the scaling of J's rows and the
//! heads' gradients by w — concord-core's `weightings` and `Trainer::combine`, without a read-back.

use bytemuck::{Pod, Zeroable};
use concord_core::WeightingSpec;

use super::mlp::{grid, Dispatch};
use super::mlp_graph::ModelShape;
use crate::{Gpu, GpuError};

/// `LW_*` in loss_weighting.wgsl.
const LW_GLS: u32 = 1;
const LW_DWA: u32 = 2;
const LW_STCH: u32 = 3;
const LW_UW: u32 = 4;
const LW_RLW: u32 = 5;
const LW_GRADNORM: u32 = 6;
const LW_FAMO: u32 = 7;
const LW_IMTL_L: u32 = 8;

/// `shaders/loss_weighting.wgsl`'s LwParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct LwParams {
    pub kind: u32,
    pub m: u32,
    pub epoch: u32,
    pub shared_len: u32,
    pub total_len: u32,
    pub groups_x: u32,
    /// DWA's τ, STCH's μ, UW's Adam lr.
    pub a: f32,
    /// STCH's warmup epoch.
    pub warmup: u32,
    /// UW's weight decay.
    pub b: f32,
    /// UW's Adam bias corrections 1 − β₁ᵗ, 1 − β₂ᵗ of this step (computed in f64 on the host).
    pub bias1: f32,
    pub bias2: f32,
    /// GradNorm's α.
    pub gn_alpha: f32,
}

/// Which loss weightings have a GPU kernel (`none` and `ew` need none: w = 1).
pub const GPU_LOSS_WEIGHTINGS: &[&str] = &["ew", "gls", "dwa", "stch", "uw", "imtl-l", "rlw", "gradnorm", "famo"];

/// Why a registry loss weighting has no GPU kernel yet.
pub(crate) fn unsupported_reason(name: &str) -> String {
    format!(
        "loss weighting '{name}' is not on the GPU yet (GPU: none, {}); use the CPU backend",
        GPU_LOSS_WEIGHTINGS.join(", ")
    )
}

/// A weighting's kernel and state for one trainer.
pub(crate) struct GpuLossWeighting {
    params: LwParams,
    pipe: wgpu::ComputePipeline,
    state: wgpu::Buffer,
    /// This step's w (m floats), read by the scaling kernels and copied into the history slot.
    pub out: wgpu::Buffer,
    /// `scale_rows` and `scale_heads` (the MLP trainer's; the toy scales J in its own kernel).
    scaling: Option<[Dispatch; 2]>,
    /// The weights calls so far.
    calls: u64,
    /// The Adam steps of the learnable weights so far (UW: every call; GradNorm: from epoch 1;
    /// FAMO: one per `after_step`).
    adam_steps: u64,
    /// FAMO's `famo_after` pipeline.
    after_pipe: Option<wgpu::ComputePipeline>,
    /// RLW: concord-core's weighting itself, drawing each step's weights on the host from the
    /// CPU trainer's seeded stream (the GPU cannot reproduce ChaCha8 + Box–Muller cheaply).
    host: Option<Box<dyn concord_core::weightings::LossWeighting>>,
}

impl GpuLossWeighting {
    /// The kernel of `spec` (`None` for `ew`, whose weights are 1); `jac` (m × shared_len) and
    /// `update` (the full gradient, heads after the trunk) are scaled in place.
    pub fn new(
        gpu: &Gpu,
        spec: &WeightingSpec,
        shape: &ModelShape,
        seed: u64,
        jac: &wgpu::Buffer,
        update: &wgpu::Buffer,
    ) -> Result<Option<Self>, GpuError> {
        let Some(mut lw) = Self::weights_only(gpu, spec, shape.num_tasks(), seed)? else { return Ok(None) };
        let params = LwParams { shared_len: shape.shared_len as u32, total_len: shape.total_len as u32, ..lw.params };
        let mut bounds: Vec<u32> = shape.task_starts.iter().map(|&s| s as u32).collect();
        bounds.push(shape.total_len as u32);
        let heads = gpu.storage_init("head bounds", bytemuck::cast_slice(&bounds), wgpu::BufferUsages::empty());
        let rows_grid = grid(lw.params.m as usize * shape.shared_len);
        let heads_grid = grid(shape.total_len);
        let scale_rows = Dispatch::with_bindings(
            gpu,
            &gpu.create_pipeline("loss_weighting.wgsl", "scale_rows"),
            &[(2, &lw.out), (3, jac)],
            &[(6, bytemuck::bytes_of(&LwParams { groups_x: rows_grid.0, ..params }))],
            rows_grid,
        );
        let scale_heads = Dispatch::with_bindings(
            gpu,
            &gpu.create_pipeline("loss_weighting.wgsl", "scale_heads"),
            &[(2, &lw.out), (4, update), (5, &heads)],
            &[(6, bytemuck::bytes_of(&LwParams { groups_x: heads_grid.0, ..params }))],
            heads_grid,
        );
        lw.params = params;
        lw.scaling = Some([scale_rows, scale_heads]);
        Ok(Some(lw))
    }

    /// The kernel of `spec` for `m` tasks without the scaling of J and the heads (the toy does
    /// that in its own step); `None` for `ew`.
    pub fn weights_only(gpu: &Gpu, spec: &WeightingSpec, m: usize, seed: u64) -> Result<Option<Self>, GpuError> {
        let get = |key: &str, default: f64| spec.get(key).unwrap_or(default);
        let mut state = vec![0f32; 4 + 5 * m];
        let (kind, a, warmup, b) = match spec.name() {
            "ew" => return Ok(None),
            "gls" => (LW_GLS, 1.0, 0, 0.0),
            "dwa" => (LW_DWA, get("T", 2.0), 0, 0.0),
            "stch" => (LW_STCH, get("mu", 1.0), get("warmup_epoch", 4.0) as u32, 0.0),
            "uw" => {
                // Uw's s starts at UW_INIT = −0.5.
                state[4..4 + m].fill(-0.5);
                (LW_UW, get("lr", 1e-4), 0, get("weight_decay", 1e-5))
            }
            // ImtlL's s starts at 0 (the zeroed state); Adam at the trainer's defaults, as UW.
            "imtl-l" => (LW_IMTL_L, get("lr", 1e-4), 0, get("weight_decay", 1e-5)),
            "rlw" => (LW_RLW, 0.0, 0, 0.0),
            "gradnorm" => {
                // GradNorm's s starts at 1 (λ = 1), after the running sum and L(0).
                state[4 + 2 * m..4 + 3 * m].fill(1.0);
                (LW_GRADNORM, get("lr", 1e-4), 0, get("weight_decay", 1e-5))
            }
            // Famo::new's logits start at 0 (the zeroed state).
            "famo" => (LW_FAMO, get("w_lr", 0.025), 0, get("gamma", 1e-3)),
            other => return Err(GpuError::Unsupported(unsupported_reason(other))),
        };
        let params = LwParams {
            kind,
            m: m as u32,
            epoch: 0,
            shared_len: 0,
            total_len: 0,
            groups_x: 1,
            a: a as f32,
            warmup,
            b: b as f32,
            bias1: 1.0,
            bias2: 1.0,
            gn_alpha: get("alpha", 1.5) as f32,
        };
        let rw = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let state = gpu.storage_init("loss weighting state", bytemuck::cast_slice(&state), rw);
        let out = gpu.storage_init("loss weights", bytemuck::cast_slice(&vec![1f32; m]), rw);
        let pipe = gpu.create_pipeline("loss_weighting.wgsl", "loss_weights");
        let after_pipe = (kind == LW_FAMO).then(|| gpu.create_pipeline("loss_weighting.wgsl", "famo_after"));
        let host = if kind == LW_RLW { Some(spec.build(m, seed).map_err(GpuError::Unsupported)?) } else { None };
        Ok(Some(GpuLossWeighting {
            params,
            pipe,
            state,
            out,
            scaling: None,
            calls: 0,
            adam_steps: 0,
            after_pipe,
            host,
        }))
    }

    /// w from `losses` (the step's batch losses) and `gram` (G of the plain J) at the CPU
    /// trainer's epoch index `epoch`.
    pub fn weights(&mut self, gpu: &Gpu, losses: &wgpu::Buffer, gram: &wgpu::Buffer, epoch: u64) -> Dispatch {
        self.calls += 1;
        if matches!(self.params.kind, LW_UW | LW_IMTL_L) || (self.params.kind == LW_GRADNORM && epoch >= 1) {
            self.adam_steps += 1;
        }
        let t = self.adam_steps.clamp(1, i32::MAX as u64) as i32;
        let (bias1, bias2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t));
        let p = LwParams { epoch: epoch as u32, bias1: bias1 as f32, bias2: bias2 as f32, ..self.params };
        // RLW's draw of this step (the losses only give its length).
        let drawn = self.host.as_mut().map(|w| {
            let ones = vec![1.0; self.params.m as usize];
            let ctx = concord_core::weightings::WeightingContext::new(&ones, self.calls - 1, epoch);
            let z: Vec<f32> = w.weights(&ctx).iter().map(|&x| x as f32).collect();
            gpu.storage_init("rlw weights", bytemuck::cast_slice(&z), wgpu::BufferUsages::empty())
        });
        Dispatch::with_bindings(
            gpu,
            &self.pipe,
            &[(0, losses), (1, drawn.as_ref().unwrap_or(&self.state)), (2, &self.out), (7, gram)],
            &[(6, bytemuck::bytes_of(&p))],
            (1, 1),
        )
    }

    /// FAMO's `after_step` on `losses`, the same batch's losses after the update (`None` for the
    /// other weightings: no second forward pass).
    pub fn after_step(&mut self, gpu: &Gpu, losses: &wgpu::Buffer) -> Option<Dispatch> {
        let pipe = self.after_pipe.as_ref()?;
        self.adam_steps += 1;
        let t = self.adam_steps.min(i32::MAX as u64) as i32;
        let (bias1, bias2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t));
        let p = LwParams { bias1: bias1 as f32, bias2: bias2 as f32, ..self.params };
        Some(Dispatch::with_bindings(
            gpu,
            pipe,
            &[(0, losses), (1, &self.state)],
            &[(6, bytemuck::bytes_of(&p))],
            (1, 1),
        ))
    }

    /// Scale J's rows and the heads' gradients by this step's w.
    pub fn record_scaling(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in self.scaling.iter().flatten() {
            d.record(pass);
        }
    }
}
