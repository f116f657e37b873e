//! The MoE model's training pass on the GPU, mirroring `concord_core::model::moe::Moe::gradients`
//! for the dense routers (softmax, MMoE): forward per gate group, each task's loss, its head's
//! gradient and row t of the m × d_shared Jacobian (the columns of concord-core's `MoeLayout`,
//! so the Gram / weighting / combine / optimizer kernels run on it unchanged).
//!
//! The dense layers (pre-layers, each expert's H → expert_hidden → H, the heads) and their
//! backprop / weight gradients run on the MLP kernels (`mlp_dense_forward`, `mlp_backprop`,
//! `mlp_weight_grad`); what is the MoE block's own — gate + softmax, the mix
//! h = a + Σ_e G_e ⊙ E_e(a), dL/dG, the softmax backward, the sum of dL/da over the residual,
//! the experts and the gate — is `shaders/moe_train.wgsl`.
//!
//! The graphs come out as the MLP's [`ForwardGraph`] / [`BackwardGraph`] (losses, head outputs,
//! dispatches), so the trainer records them as it does the MLP's; the MoE-only buffers live on
//! in the dispatches' bind groups.
//!
//! The sparse routers, a task-embedding gate and non-zero aux-loss weights are refused
//! ([`gpu_moe_unsupported`]).

use bytemuck::{Pod, Zeroable};
use concord_core::model::moe::{Moe, RouterKind};
use concord_core::model::Target;
use nalgebra::DMatrix;

use super::mlp::{
    activation_code, grid, loss_code, BackpropParams, DenseParams, Dispatch, LossParams, MlpPipelines, WeightGradParams,
};
use super::mlp_graph::{matrix_f32, BackwardGraph, ForwardGraph, GpuGradients, LayerDims, ModelShape};
use crate::{Gpu, GpuError};

const RW: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// The most experts and the widest block the kernels take (a row loop runs over E·H).
pub const MAX_EXPERTS: usize = 64;
pub const MAX_WIDTH: usize = 256;

/// Why `moe` cannot train on the GPU yet (`None`: it can). Every router not named here keeps a
/// reason, so routers added to concord-core are refused until they have kernels.
pub fn gpu_moe_unsupported(moe: &Moe) -> Option<String> {
    let cfg = moe.config();
    let router = &cfg.router;
    let dense = matches!(router, RouterKind::Softmax | RouterKind::Mmoe);
    if !dense {
        return Some(format!(
            "MoE router '{}' is not on the GPU yet (the GPU trainer trains the dense routers softmax and mmoe); \
             use the CPU backend",
            router.name()
        ));
    }
    let aux = &cfg.aux;
    if aux.load_balance != 0.0
        || aux.z_loss != 0.0
        || aux.importance != 0.0
        || aux.load != 0.0
        || aux.mutual_info != 0.0
    {
        return Some("MoE aux losses are not on the GPU yet (set every aux weight to 0); use the CPU backend".into());
    }
    if cfg.experts > MAX_EXPERTS || cfg.width() > MAX_WIDTH {
        return Some(format!(
            "the GPU MoE kernels take at most {MAX_EXPERTS} experts of width {MAX_WIDTH}; use the CPU backend"
        ));
    }
    None
}

/// `shaders/moe_train.wgsl`'s MoeTrainParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct MoeTrainParams {
    rows: u32,
    width: u32,
    experts: u32,
    expert: u32,
    mode: u32,
    act: u32,
    w_off: u32,
    groups_x: u32,
}

/// The `moe_train.wgsl` pipelines.
pub(crate) struct MoeTrainPipelines {
    gate_softmax: wgpu::ComputePipeline,
    mix: wgpu::ComputePipeline,
    scatter_dy: wgpu::ComputePipeline,
    dcombine: wgpu::ComputePipeline,
    softmax_back: wgpu::ComputePipeline,
    accumulate: wgpu::ComputePipeline,
}

impl MoeTrainPipelines {
    pub fn new(gpu: &Gpu) -> Self {
        let make = |entry| gpu.create_pipeline("moe_train.wgsl", entry);
        MoeTrainPipelines {
            gate_softmax: make("moe_gate_softmax"),
            mix: make("moe_mix"),
            scatter_dy: make("moe_scatter_dy"),
            dcombine: make("moe_dcombine"),
            softmax_back: make("moe_softmax_back"),
            accumulate: make("moe_accumulate"),
        }
    }
}

/// The MoE model as the kernels see it: the pre-layers as the MLP's trunk, the heads, and the
/// block's gates and experts.
#[derive(Clone, Debug)]
pub(crate) struct MoeShape {
    /// trunk = the pre-layers; heads, losses, targets, shared_len and total_len as the MLP's.
    pub base: ModelShape,
    pub width: usize,
    pub experts: Vec<(LayerDims, LayerDims)>,
    /// W_g's offset per gate.
    pub gates: Vec<usize>,
    /// The gate group of each task (one group for a shared gate, one per task for MMoE).
    pub group_of: Vec<usize>,
    pub groups: usize,
}

impl MoeShape {
    pub fn new(moe: &Moe) -> Self {
        let cfg = moe.config();
        let lay = moe.layout();
        let mut y_cols = Vec::new();
        let mut y_stride = 0;
        for h in &cfg.heads {
            y_cols.push(y_stride);
            y_stride += match h.loss {
                concord_core::model::LossKind::SoftmaxCe => 1,
                _ => h.out_dim,
            };
        }
        let base = ModelShape {
            input_dim: cfg.input_dim,
            act: activation_code(cfg.activation),
            trunk: lay.pre.iter().map(LayerDims::from).collect(),
            heads: lay.heads.iter().map(LayerDims::from).collect(),
            losses: cfg.heads.iter().map(|h| loss_code(h.loss)).collect(),
            shared_len: lay.shared_len,
            total_len: lay.total_len,
            y_stride,
            y_cols,
        };
        let group_of: Vec<usize> = (0..cfg.heads.len()).map(|t| moe.group_of(t)).collect();
        let groups = group_of.iter().max().map_or(1, |g| g + 1);
        MoeShape {
            base,
            width: cfg.width(),
            experts: lay.experts.iter().map(|x| (LayerDims::from(&x.hidden), LayerDims::from(&x.out))).collect(),
            gates: lay.gates.iter().map(|g| g.weight.weight.start).collect(),
            group_of,
            groups,
        }
    }

    fn gate_of(&self, group: usize) -> usize {
        if self.gates.len() == 1 {
            0
        } else {
            group
        }
    }
}

/// The MoE forward pass's own buffers, which the backward graph reads.
pub(crate) struct MoeForward {
    pub graph: ForwardGraph,
    /// Each expert's hidden pre-activation z, its φ(z) and its output y (rows × …).
    expert_z: Vec<wgpu::Buffer>,
    expert_u: Vec<wgpu::Buffer>,
    expert_y: Vec<wgpu::Buffer>,
    /// Per gate group: G = softmax(h) (rows × E) and the block output h (rows × H).
    probs: Vec<wgpu::Buffer>,
    outputs: Vec<wgpu::Buffer>,
}

fn moe_params(rows: usize, shape: &MoeShape, items: usize) -> (MoeTrainParams, (u32, u32)) {
    let g = grid(items);
    let p = MoeTrainParams {
        rows: rows as u32,
        width: shape.width as u32,
        experts: shape.experts.len() as u32,
        expert: 0,
        mode: 0,
        act: shape.base.act,
        w_off: 0,
        groups_x: g.0,
    };
    (p, g)
}

fn moe_dispatch(
    gpu: &Gpu,
    pipeline: &wgpu::ComputePipeline,
    first_binding: u32,
    storage: &[&wgpu::Buffer],
    p: &MoeTrainParams,
    groups: (u32, u32),
) -> Dispatch {
    let bound: Vec<(u32, &wgpu::Buffer)> =
        storage.iter().enumerate().map(|(i, b)| (first_binding + i as u32, *b)).collect();
    Dispatch::with_bindings(gpu, pipeline, &bound, &[(0, bytemuck::bytes_of(p))], groups)
}

impl MoeForward {
    /// Forward pass and task losses over `rows` samples of `x` (rows × input_dim) with the
    /// target table `y`, mirroring `Moe::run_forward` without routing noise.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        pipes: &MlpPipelines,
        moe_pipes: &MoeTrainPipelines,
        shape: &MoeShape,
        rows: usize,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        params: &wgpu::Buffer,
    ) -> Self {
        let buf = |label: &str, len: usize| gpu.buffer(label, (len * 4) as u64, RW);
        let placeholder = buf("unused activation", 4);
        let dense = |input: &wgpu::Buffer, layer: &LayerDims, act: u32, z: &wgpu::Buffer, a: Option<&wgpu::Buffer>| {
            let (gx, gy) = grid(rows * layer.fan_out);
            let p = DenseParams {
                rows: rows as u32,
                fan_in: layer.fan_in as u32,
                fan_out: layer.fan_out as u32,
                w_off: layer.w_off as u32,
                b_off: layer.b_off as u32,
                act,
                store_act: u32::from(a.is_some()),
                groups_x: gx,
            };
            let a = a.unwrap_or(&placeholder);
            Dispatch::new(gpu, &pipes.dense_forward, &[input, params, z, a], bytemuck::bytes_of(&p), (gx, gy))
        };
        let mut dispatches = Vec::new();
        let (mut pre, mut act) = (Vec::new(), Vec::new());
        for (l, layer) in shape.base.trunk.iter().enumerate() {
            let z = buf("moe pre z", rows * layer.fan_out);
            let a = buf("moe pre a", rows * layer.fan_out);
            let input = if l == 0 { x } else { &act[l - 1] };
            dispatches.push(dense(input, layer, shape.base.act, &z, Some(&a)));
            pre.push(z);
            act.push(a);
        }
        let a = act.last().unwrap_or(x).clone();
        let (mut expert_z, mut expert_u, mut expert_y) = (Vec::new(), Vec::new(), Vec::new());
        for (hidden, out) in &shape.experts {
            let z = buf("expert z", rows * hidden.fan_out);
            let u = buf("expert u", rows * hidden.fan_out);
            let y = buf("expert y", rows * out.fan_out);
            dispatches.push(dense(&a, hidden, shape.base.act, &z, Some(&u)));
            dispatches.push(dense(&u, out, 4, &y, None));
            expert_z.push(z);
            expert_u.push(u);
            expert_y.push(y);
        }
        let n = shape.experts.len();
        let (mut probs, mut outputs) = (Vec::new(), Vec::new());
        for g in 0..shape.groups {
            let logits = buf("gate logits", rows * n);
            let p = buf("gate probs", rows * n);
            let h = buf("moe block output", rows * shape.width);
            let (mut gp, groups) = moe_params(rows, shape, rows);
            gp.w_off = shape.gates[shape.gate_of(g)] as u32;
            dispatches.push(moe_dispatch(gpu, &moe_pipes.gate_softmax, 1, &[&a, params, &logits, &p], &gp, groups));
            for (e, y_e) in expert_y.iter().enumerate() {
                let (mut mp, groups) = moe_params(rows, shape, rows * shape.width);
                mp.expert = e as u32;
                mp.mode = u32::from(e == 0);
                dispatches.push(moe_dispatch(gpu, &moe_pipes.mix, 5, &[&a, &p, y_e, &h], &mp, groups));
            }
            probs.push(p);
            outputs.push(h);
        }
        let losses = buf("task losses", shape.base.num_tasks());
        let (mut outs, mut d_outs) = (Vec::new(), Vec::new());
        for (t, head) in shape.base.heads.iter().enumerate() {
            let o = buf("head output", rows * head.fan_out);
            let d_o = buf("head output gradient", rows * head.fan_out);
            dispatches.push(dense(&outputs[shape.group_of[t]], head, 4, &o, None));
            let lp = LossParams {
                rows: rows as u32,
                k: head.fan_out as u32,
                kind: shape.base.losses[t],
                y_stride: shape.base.y_stride as u32,
                y_col: shape.base.y_cols[t] as u32,
                task: t as u32,
                _pad: [0; 2],
            };
            dispatches.push(Dispatch::new(
                gpu,
                &pipes.task_loss,
                &[&o, y, &d_o, &losses],
                bytemuck::bytes_of(&lp),
                (1, 1),
            ));
            outs.push(o);
            d_outs.push(d_o);
        }
        MoeForward {
            graph: ForwardGraph { rows, pre, act, outs, d_outs, losses, dispatches },
            expert_z,
            expert_u,
            expert_y,
            probs,
            outputs,
        }
    }

    /// Head t's gradient into `update[head t's block]` and row t of the Jacobian into `jac`,
    /// mirroring `Moe::gradients` → `block_backward` → `gate_backward` / `pre_backward`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        gpu: &Gpu,
        pipes: &MlpPipelines,
        moe_pipes: &MoeTrainPipelines,
        shape: &MoeShape,
        x: &wgpu::Buffer,
        params: &wgpu::Buffer,
        jac: &wgpu::Buffer,
        update: &wgpu::Buffer,
    ) -> BackwardGraph {
        let fwd = &self.graph;
        let rows = fwd.rows;
        let (h_w, n) = (shape.width, shape.experts.len());
        let buf = |label: &str, len: usize| gpu.buffer(label, (len * 4) as u64, RW);
        let a = fwd.act.last().unwrap_or(x);
        let d_h = buf("dL/dh", rows * h_w);
        let d_y = buf("dL/dy", rows * h_w);
        let d_comb = buf("dL/dG", rows * n);
        let d_logits = buf("dL/dlogits", rows * n);
        let d_expert = buf("expert dz", rows * shape.experts.first().map_or(1, |x| x.0.fan_out));
        let d_path = buf("dL/da of one path", rows * h_w);
        let d_pre: Vec<wgpu::Buffer> = shape.base.trunk.iter().map(|l| buf("moe pre dz", rows * l.fan_out)).collect();
        let n_pre = shape.base.trunk.len();
        let weight_grad =
            |dz: &wgpu::Buffer, input: &wgpu::Buffer, out: &wgpu::Buffer, l: &LayerDims, off: usize, bias: bool| {
                let items = l.fan_out * (l.fan_in + usize::from(bias));
                let (gx, gy) = grid(items);
                let p = WeightGradParams {
                    rows: rows as u32,
                    fan_in: l.fan_in as u32,
                    fan_out: l.fan_out as u32,
                    out_off: off as u32,
                    groups_x: gx,
                    no_bias: u32::from(!bias),
                    _pad: [0; 2],
                };
                Dispatch::new(gpu, &pipes.weight_grad, &[dz, input, out], bytemuck::bytes_of(&p), (gx, gy))
            };
        // dz_prev = (dz·W) ⊙ φ'(z_prev) for W = (fan_out × fan_in) at w_off; act 4 (linear): no φ'.
        let backprop = |dz: &wgpu::Buffer,
                        w_off: usize,
                        fan_in: usize,
                        fan_out: usize,
                        act: u32,
                        z_prev: &wgpu::Buffer,
                        out: &wgpu::Buffer| {
            let (gx, gy) = grid(rows * fan_in);
            let p = BackpropParams {
                rows: rows as u32,
                fan_in: fan_in as u32,
                fan_out: fan_out as u32,
                w_off: w_off as u32,
                act,
                groups_x: gx,
                _pad: [0; 2],
            };
            Dispatch::new(gpu, &pipes.backprop, &[dz, params, z_prev, out], bytemuck::bytes_of(&p), (gx, gy))
        };
        let accumulate = |src: &wgpu::Buffer, z: &wgpu::Buffer, dst: &wgpu::Buffer, mode: u32| {
            let (mut p, groups) = moe_params(rows, shape, rows * h_w);
            p.mode = mode;
            moe_dispatch(gpu, &moe_pipes.accumulate, 18, &[src, z, dst], &p, groups)
        };
        let mut dispatches = Vec::new();
        let s = shape.base.shared_len;
        for (t, head) in shape.base.heads.iter().enumerate() {
            let g = shape.group_of[t];
            let h = &self.outputs[g];
            let row = t * s;
            dispatches.push(weight_grad(&fwd.d_outs[t], h, update, head, head.w_off, true));
            // dL/dh = dL/do · W_head (linear: φ' = 1; z_prev is only read through φ').
            dispatches.push(backprop(&fwd.d_outs[t], head.w_off, head.fan_in, head.fan_out, 4, h, &d_h));
            if n_pre > 0 {
                // The residual path: dL/da = dL/dh, through the last pre-layer's φ'.
                dispatches.push(accumulate(&d_h, &fwd.pre[n_pre - 1], &d_pre[n_pre - 1], 0));
            }
            for (e, (hidden, out)) in shape.experts.iter().enumerate() {
                let (mut p, groups) = moe_params(rows, shape, rows * h_w);
                p.expert = e as u32;
                dispatches.push(moe_dispatch(gpu, &moe_pipes.scatter_dy, 9, &[&d_h, &self.probs[g], &d_y], &p, groups));
                let (mut p, groups) = moe_params(rows, shape, rows);
                p.expert = e as u32;
                dispatches.push(moe_dispatch(
                    gpu,
                    &moe_pipes.dcombine,
                    12,
                    &[&d_h, &self.expert_y[e], &d_comb],
                    &p,
                    groups,
                ));
                dispatches.push(weight_grad(&d_y, &self.expert_u[e], jac, out, row + out.w_off, true));
                dispatches.push(backprop(
                    &d_y,
                    out.w_off,
                    out.fan_in,
                    out.fan_out,
                    shape.base.act,
                    &self.expert_z[e],
                    &d_expert,
                ));
                dispatches.push(weight_grad(&d_expert, a, jac, hidden, row + hidden.w_off, true));
                if n_pre > 0 {
                    let z = &fwd.pre[n_pre - 1];
                    dispatches.push(backprop(
                        &d_expert,
                        hidden.w_off,
                        hidden.fan_in,
                        hidden.fan_out,
                        shape.base.act,
                        z,
                        &d_path,
                    ));
                    dispatches.push(accumulate(&d_path, z, &d_pre[n_pre - 1], 1));
                }
            }
            let (p, groups) = moe_params(rows, shape, rows * n);
            dispatches.push(moe_dispatch(
                gpu,
                &moe_pipes.softmax_back,
                15,
                &[&self.probs[g], &d_comb, &d_logits],
                &p,
                groups,
            ));
            let gate_off = shape.gates[shape.gate_of(g)];
            let gate = LayerDims { fan_in: h_w, fan_out: n, w_off: gate_off, b_off: gate_off + h_w * n };
            dispatches.push(weight_grad(&d_logits, a, jac, &gate, row + gate_off, false));
            if n_pre > 0 {
                let z = &fwd.pre[n_pre - 1];
                dispatches.push(backprop(&d_logits, gate_off, h_w, n, shape.base.act, z, &d_path));
                dispatches.push(accumulate(&d_path, z, &d_pre[n_pre - 1], 1));
            }
            for l in (0..n_pre).rev() {
                let layer = &shape.base.trunk[l];
                let input = if l == 0 { x } else { &fwd.act[l - 1] };
                dispatches.push(weight_grad(&d_pre[l], input, jac, layer, row + layer.w_off, true));
                if l > 0 {
                    let lp = &shape.base.trunk[l];
                    dispatches.push(backprop(
                        &d_pre[l],
                        lp.w_off,
                        lp.fan_in,
                        lp.fan_out,
                        shape.base.act,
                        &fwd.pre[l - 1],
                        &d_pre[l - 1],
                    ));
                }
            }
        }
        BackwardGraph { dispatches }
    }
}

/// Forward, losses and backward of `moe` at `params` on the batch (x, targets), on the GPU,
/// without routing noise. Mirrors `Moe::gradients(…, None)`'s task part (losses, Jacobian,
/// head gradients; `outputs`: the raw head outputs of `Moe::forward`).
pub async fn moe_gradients(
    gpu: &Gpu,
    moe: &Moe,
    params: &[f64],
    x: &DMatrix<f64>,
    targets: &[Target],
) -> Result<GpuGradients, GpuError> {
    moe.losses(params, x, targets).map_err(GpuError::Unsupported)?;
    if let Some(why) = gpu_moe_unsupported(moe) {
        return Err(GpuError::Unsupported(why));
    }
    let shape = MoeShape::new(moe);
    let rows = x.nrows();
    shape.base.check_rows(rows)?;
    gpu.check()?;
    let pipes = MlpPipelines::new(gpu);
    let moe_pipes = MoeTrainPipelines::new(gpu);
    let m = shape.base.num_tasks();
    let p32: Vec<f32> = params.iter().map(|&v| v as f32).collect();
    let params_buf = gpu.storage_init("params", bytemuck::cast_slice(&p32), RW);
    let x_buf = gpu.storage_init("x", bytemuck::cast_slice(&matrix_f32(x)), RW);
    let y_buf = gpu.storage_init("y", bytemuck::cast_slice(&shape.base.target_table(targets, rows)), RW);
    let jac = gpu.buffer("jacobian", (m * shape.base.shared_len * 4) as u64, RW);
    let update = gpu.buffer("update", (shape.base.total_len * 4) as u64, RW);
    let fwd = MoeForward::new(gpu, &pipes, &moe_pipes, &shape, rows, &x_buf, &y_buf, &params_buf);
    let bwd = fwd.backward(gpu, &pipes, &moe_pipes, &shape, &x_buf, &params_buf, &jac, &update);
    let mut encoder =
        gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("moe gradients") });
    {
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("moe"), timestamp_writes: None });
        for d in fwd.graph.dispatches.iter().chain(&bwd.dispatches) {
            d.record(&mut pass);
        }
    }
    let mut parts: Vec<(&wgpu::Buffer, u64)> = vec![
        (&fwd.graph.losses, (m * 4) as u64),
        (&jac, (m * shape.base.shared_len * 4) as u64),
        (&update, (shape.base.total_len * 4) as u64),
    ];
    for (t, o) in fwd.graph.outs.iter().enumerate() {
        parts.push((o, (rows * shape.base.heads[t].fan_out * 4) as u64));
    }
    let mut back = gpu.submit_and_read(encoder, &parts).await?.into_iter();
    let losses = back.next().unwrap_or_default();
    let shared_jacobian = back.next().unwrap_or_default();
    let update = back.next().unwrap_or_default();
    let outputs: Vec<Vec<f32>> = back.collect();
    let head_grads = moe.layout().heads.iter().map(|s| update[s.range()].to_vec()).collect();
    Ok(GpuGradients { losses, shared_jacobian, head_grads, outputs })
}
