//! Host side of the MLP kernels (`shaders/mlp_*.wgsl`): their pipelines, their parameter
//! blocks, and [`Dispatch`], one kernel launch with its bind group, built once and recorded into
//! as many steps as wanted. The graphs that chain them live in [`super::mlp_graph`].

use bytemuck::{Pod, Zeroable};

use crate::Gpu;

/// Invocations per workgroup of every `mlp_*` kernel except `optim_tick`.
pub const WORKGROUP: u32 = 256;
const MAX_GROUPS_X: u32 = 65535;

/// The compiled `mlp_*` pipelines.
pub(crate) struct MlpPipelines {
    pub activation_map: wgpu::ComputePipeline,
    pub gather: wgpu::ComputePipeline,
    pub dense_forward: wgpu::ComputePipeline,
    pub task_loss: wgpu::ComputePipeline,
    pub weight_grad: wgpu::ComputePipeline,
    pub backprop: wgpu::ComputePipeline,
    pub optim_tick: wgpu::ComputePipeline,
    pub optim_update: wgpu::ComputePipeline,
    pub optim_check: wgpu::ComputePipeline,
    pub optim_prepare: wgpu::ComputePipeline,
    pub sam_norm: wgpu::ComputePipeline,
    pub sam_perturb: wgpu::ComputePipeline,
    pub sam_cosine: wgpu::ComputePipeline,
}

impl MlpPipelines {
    pub fn new(gpu: &Gpu) -> Self {
        let make = |file, entry| gpu.create_pipeline(file, entry);
        MlpPipelines {
            activation_map: make("mlp_activation_map.wgsl", "activation_map"),
            gather: make("mlp_gather.wgsl", "gather_rows"),
            dense_forward: make("mlp_dense_forward.wgsl", "dense_forward"),
            task_loss: make("mlp_loss.wgsl", "task_loss"),
            weight_grad: make("mlp_weight_grad.wgsl", "weight_grad"),
            backprop: make("mlp_backprop.wgsl", "backprop"),
            optim_tick: make("mlp_optim.wgsl", "optim_tick"),
            optim_update: make("mlp_optim.wgsl", "optim_update"),
            optim_check: make("mlp_optim.wgsl", "optim_check"),
            optim_prepare: make("mlp_optim.wgsl", "optim_prepare"),
            sam_norm: make("mlp_sam.wgsl", "sam_norm"),
            sam_perturb: make("mlp_sam.wgsl", "sam_perturb"),
            sam_cosine: make("mlp_sam.wgsl", "sam_cosine"),
        }
    }
}

/// One kernel launch: pipeline, bind group (with its uniform) and workgroup counts.
#[derive(Clone)]
pub(crate) struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: (u32, u32),
}

impl Dispatch {
    /// A launch of `pipeline` with `storage` bound at bindings 0, 1, … and `uniform` after them.
    pub fn new(
        gpu: &Gpu,
        pipeline: &wgpu::ComputePipeline,
        storage: &[&wgpu::Buffer],
        uniform: &[u8],
        groups: (u32, u32),
    ) -> Self {
        Self::with_uniform_at(gpu, pipeline, storage, storage.len() as u32, uniform, groups)
    }

    /// As [`Dispatch::new`] with the uniform at binding `uniform_binding` (an entry point that
    /// uses only some of its module's storage bindings).
    pub fn with_uniform_at(
        gpu: &Gpu,
        pipeline: &wgpu::ComputePipeline,
        storage: &[&wgpu::Buffer],
        uniform_binding: u32,
        uniform: &[u8],
        groups: (u32, u32),
    ) -> Self {
        let uniform_buf = gpu.uniform_init("mlp kernel params", uniform);
        let mut entries: Vec<wgpu::BindGroupEntry> = storage
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        entries.push(wgpu::BindGroupEntry { binding: uniform_binding, resource: uniform_buf.as_entire_binding() });
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch { pipeline: pipeline.clone(), bind_group, groups }
    }

    /// A launch whose storage buffers sit at the given bindings, with one uniform block per
    /// `(binding, bytes)` (an entry point that uses some of its module's bindings, out of order).
    pub fn with_bindings(
        gpu: &Gpu,
        pipeline: &wgpu::ComputePipeline,
        storage: &[(u32, &wgpu::Buffer)],
        uniforms: &[(u32, &[u8])],
        groups: (u32, u32),
    ) -> Self {
        let uniform_bufs: Vec<(u32, wgpu::Buffer)> =
            uniforms.iter().map(|&(b, bytes)| (b, gpu.uniform_init("mlp kernel params", bytes))).collect();
        let entries: Vec<wgpu::BindGroupEntry> = storage
            .iter()
            .map(|&(binding, b)| (binding, b))
            .chain(uniform_bufs.iter().map(|(binding, b)| (*binding, b)))
            .map(|(binding, b)| wgpu::BindGroupEntry { binding, resource: b.as_entire_binding() })
            .collect();
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch { pipeline: pipeline.clone(), bind_group, groups }
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups.0, self.groups.1, 1);
    }
}

/// Workgroups (x, y) covering `items` invocations of 256, spilling into y past 65 535.
pub(crate) fn grid(items: usize) -> (u32, u32) {
    let groups = (items as u32).div_ceil(WORKGROUP).max(1);
    let x = groups.min(MAX_GROUPS_X);
    (x, groups.div_ceil(x))
}

/// `shaders/mlp_activation_map.wgsl`'s ActMapParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct ActMapParams {
    pub len: u32,
    pub act: u32,
    pub groups_x: u32,
    pub _pad: u32,
}

/// `shaders/mlp_gather.wgsl`'s GatherParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct GatherParams {
    pub rows: u32,
    pub width: u32,
    pub idx_off: u32,
    pub groups_x: u32,
}

/// `shaders/mlp_dense_forward.wgsl`'s DenseParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct DenseParams {
    pub rows: u32,
    pub fan_in: u32,
    pub fan_out: u32,
    pub w_off: u32,
    pub b_off: u32,
    pub act: u32,
    pub store_act: u32,
    pub groups_x: u32,
}

/// `shaders/mlp_loss.wgsl`'s LossParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct LossParams {
    pub rows: u32,
    pub k: u32,
    pub kind: u32,
    pub y_stride: u32,
    pub y_col: u32,
    pub task: u32,
    pub _pad: [u32; 2],
}

/// `shaders/mlp_weight_grad.wgsl`'s WeightGradParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct WeightGradParams {
    pub rows: u32,
    pub fan_in: u32,
    pub fan_out: u32,
    pub out_off: u32,
    pub groups_x: u32,
    /// 1: the layer has no bias (an MoE gate): only dW is written.
    pub no_bias: u32,
    pub _pad: [u32; 2],
}

/// `shaders/mlp_backprop.wgsl`'s BackpropParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct BackpropParams {
    pub rows: u32,
    pub fan_in: u32,
    pub fan_out: u32,
    pub w_off: u32,
    pub act: u32,
    pub groups_x: u32,
    pub _pad: [u32; 2],
}

/// `shaders/mlp_optim.wgsl`'s MlpCheckParams: which step `optim_check` looks at, and how to read
/// its inputs.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct CheckParams {
    pub step: u32,
    pub tasks: u32,
    pub shared_len: u32,
    /// 1 when the step's test losses are in the check inputs.
    pub tested: u32,
}

/// `optim_check`'s reason bits (mlp_optim.wgsl's HALT_*), in the CPU trainer's order of checks,
/// and the CPU trainer's words for each.
pub(crate) const HALT_REASONS: [(u32, &str); 5] = [
    (1, "a task loss is not finite"),
    (2, "a gradient is not finite"),
    (4, "a test loss is not finite"),
    (8, "the aggregator's update is not finite"),
    (16, "the optimizer step produced non-finite parameters"),
];

/// `shaders/mlp_optim.wgsl`'s MlpOptParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct OptParams {
    pub kind: u32,
    pub len: u32,
    pub groups_x: u32,
    /// 1: the step's lr, clip factor and SPAM constants come from `optim_prepare`.
    pub dynamics: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub one_minus_beta1: f32,
    pub one_minus_beta2: f32,
    pub eps: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    /// L1/L2 on the weights ([`penalty_code`]; 0: none) and its rate.
    pub penalty: u32,
    pub penalty_rate: f32,
    pub _pad: [u32; 2],
}

impl OptParams {
    /// The kernel's hyper-parameters for a trainer optimizer over `len` parameters.
    pub fn new(opt: &concord_core::train::TrainOptimizer, len: usize) -> Self {
        use concord_core::train::TrainOptimizer as T;
        let groups_x = grid(len).0;
        let base = OptParams {
            kind: 0,
            len: len as u32,
            groups_x,
            dynamics: 0,
            lr: opt.lr() as f32,
            beta1: 0.0,
            beta2: 0.0,
            one_minus_beta1: 0.0,
            one_minus_beta2: 0.0,
            eps: 0.0,
            momentum: 0.0,
            weight_decay: 0.0,
            penalty: 0,
            penalty_rate: 0.0,
            _pad: [0; 2],
        };
        let adam = |beta1: f64, beta2: f64, eps: f64, wd: f64| OptParams {
            kind: 0,
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            eps: eps as f32,
            weight_decay: wd as f32,
            ..base
        };
        match *opt {
            T::Sgd { momentum, .. } => OptParams { kind: 1, momentum: momentum as f32, ..base },
            T::Adam { beta1, beta2, eps, .. } => adam(beta1, beta2, eps, 0.0),
            T::AdamW { beta1, beta2, eps, weight_decay, .. } => adam(beta1, beta2, eps, weight_decay),
            // Its per-step constants (s·α, flags, θ) come from `optim_prepare` (`PrepParams`).
            T::Spam(p) => OptParams { kind: 2, dynamics: 1, ..adam(p.beta1, p.beta2, p.eps, 0.0) },
        }
    }
}

/// Floats of the optimizer's step state after the moments (mlp_optim.wgsl's binding 2).
pub(crate) const STEP_STATE: usize = 12;

/// `shaders/mlp_optim.wgsl`'s MlpPrepParams: `optim_prepare`'s constants for one step.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct PrepParams {
    pub tasks: u32,
    pub len: u32,
    /// 1 when the run clips at `clip_norm`.
    pub clip: u32,
    /// SPAM: 1 = reset the moments on this step, 2 = the spike clip is on.
    pub spam_flags: u32,
    pub clip_norm: f32,
    /// The scheduled learning rate lr·f(s).
    pub lr_now: f32,
    /// SPAM's s·α = s·lr·f(s)·√(1 − β₂ᵗ)/(1 − β₁ᵗ).
    pub spam_step: f32,
    /// SPAM's θ.
    pub threshold: f32,
    /// 1 − β₂ᶜ for the spike score (0: no score on this step).
    pub spike_correction: f32,
    pub _pad: [f32; 3],
}

/// `shaders/mlp_sam.wgsl`'s SamParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct SamParams {
    pub len: u32,
    /// 1: ASAM's T = |w| + η on weight entries.
    pub adaptive: u32,
    pub groups_x: u32,
    /// The check buffer's word for the step's cos(d₀, d).
    pub cos_at: u32,
    pub rho: f32,
    pub eta: f32,
    pub _pad: [f32; 2],
}

/// The kernel code of a penalty (`mlp_optim.wgsl`'s PENALTY_*).
pub(crate) fn penalty_code(penalty: concord_core::train::Penalty) -> u32 {
    use concord_core::train::Penalty as P;
    match penalty {
        P::L1 => 1,
        P::L2 => 2,
    }
}

/// The kernel code of an activation (`mlp_activation.wgsl`).
pub(crate) fn activation_code(act: concord_core::model::Activation) -> u32 {
    use concord_core::model::Activation as A;
    match act {
        A::Relu => 0,
        A::Tanh => 1,
        A::Gelu => 2,
        A::Sigmoid => 3,
        A::Linear => 4,
    }
}

/// The kernel code of a loss (`mlp_loss.wgsl`).
pub(crate) fn loss_code(loss: concord_core::model::LossKind) -> u32 {
    use concord_core::model::LossKind as L;
    match loss {
        L::Mse => 0,
        L::Bce => 1,
        L::SoftmaxCe => 2,
    }
}
