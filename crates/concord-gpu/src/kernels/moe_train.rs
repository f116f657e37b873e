//! The MoE model's training pass on the GPU, mirroring `concord_core::model::moe::Moe::gradients`
//! for every router (dense: softmax, MMoE; selecting: switch, top-2, noisy top-k, expert choice,
//! task routing): forward per gate group, each task's loss, its head's
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
//! A selecting router's choice runs on the routing core (`kernels::moe`: moe_select,
//! moe_capacity, moe_expert_choice, with their tie-breaking and capacity order) over the gate's
//! output; its combine weights then stand where the dense router's probabilities do, and dL/dG
//! is kept only where an expert takes a token. Noisy top-k's ε comes from the host
//! ([`routing_noise_f32`]: `Moe::routing_noise`, the CPU trainer's draws).
//!
//! CGC and PLE run on the same kernels level by level (`kernels::moe_arch`: their streams, task
//! and shared gates and task-owned experts), and so does DSelect-k (`kernels::moe_dselect`: its
//! selector gates and their regularisers). The aux losses' gradient is `kernels::moe_aux`'s
//! (the routers' aux losses do not apply to an architecture: concord-core's config refuses them).

use bytemuck::{Pod, Zeroable};
use concord_core::model::moe::{Gating, Moe, RouterKind};
use concord_core::model::Target;
use nalgebra::DMatrix;

use super::mlp::{activation_code, grid, loss_code, BackpropParams, Dispatch, MlpPipelines};
use super::mlp_graph::{
    matrix_f32, task_loss_dispatch, BackwardGraph, ForwardGraph, GpuGradients, LayerDims, ModelShape,
};
use super::moe::{within_loop_budget, GpuRouter, MoeParams};
use super::moe_arch::{ArchBackward, ArchLevel, ArchPipelines, ArchShape, ExpertBuffers};
use super::moe_dselect::{DselectGate, DselectPipelines, DselectShape};
use super::moe_record::RoutingOutputs;
use crate::{Gpu, GpuError};

const RW: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// The most experts and the widest block the kernels take (a row loop runs over E·H).
pub const MAX_EXPERTS: usize = 64;
pub const MAX_WIDTH: usize = 256;

/// Why `moe` cannot train on the GPU (`None`: it can). Every router and architecture has
/// kernels (a router added to concord-core fails to compile in `kernels::moe`'s exhaustive
/// match until it has some); what is left is the kernels' size limits.
pub fn gpu_moe_unsupported(moe: &Moe) -> Option<String> {
    let cfg = moe.config();
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
    pub(super) expert: u32,
    pub(super) mode: u32,
    pub(super) act: u32,
    w_off: u32,
    groups_x: u32,
    gin: u32,
    noise_off: u32,
    eps_off: u32,
    _pad: u32,
}

/// The `moe_train.wgsl` pipelines, and the routing core's that a selecting router runs.
pub(crate) struct MoeTrainPipelines {
    gate_softmax: wgpu::ComputePipeline,
    pub(super) mix: wgpu::ComputePipeline,
    pub(super) scatter_dy: wgpu::ComputePipeline,
    pub(super) dcombine: wgpu::ComputePipeline,
    softmax_back: wgpu::ComputePipeline,
    pub(super) accumulate: wgpu::ComputePipeline,
    gate_input: wgpu::ComputePipeline,
    noisy_logits: wgpu::ComputePipeline,
    noise_chain: wgpu::ComputePipeline,
    top2_dprobs: wgpu::ComputePipeline,
    noisy_back: wgpu::ComputePipeline,
    gate_back_input: wgpu::ComputePipeline,
    select: wgpu::ComputePipeline,
    capacity: wgpu::ComputePipeline,
    expert_choice: wgpu::ComputePipeline,
    pub(super) arch: ArchPipelines,
    pub(super) dselect: DselectPipelines,
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
            gate_input: make("moe_gate_input"),
            noisy_logits: make("moe_noisy_logits"),
            noise_chain: make("moe_noise_chain"),
            top2_dprobs: make("moe_top2_dprobs"),
            noisy_back: make("moe_noisy_back"),
            gate_back_input: make("moe_gate_back_input"),
            select: gpu.create_pipeline("moe_select.wgsl", "moe_select"),
            capacity: gpu.create_pipeline("moe_capacity.wgsl", "moe_capacity"),
            expert_choice: gpu.create_pipeline("moe_expert_choice.wgsl", "moe_expert_choice"),
            arch: ArchPipelines::new(gpu),
            dselect: DselectPipelines::new(gpu),
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
    pub router: RouterKind,
    /// The gate input's width: H, or H + tasks for a task-embedding gate.
    pub gin: usize,
    pub task_embedding: bool,
    /// W_noise's offset per gate (noisy top-k).
    pub noise: Vec<Option<usize>>,
    /// CGC and PLE: the levels, gates and streams (`kernels::moe_arch`).
    pub arch: Option<Box<ArchShape>>,
    /// DSelect-k: the task gates' selector layers (`kernels::moe_dselect`).
    pub dselect: Option<Box<DselectShape>>,
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
            task_starts: if lay.task_ranges.is_empty() {
                lay.heads.iter().map(|h| h.weight.start).collect()
            } else {
                lay.task_ranges.iter().map(|r| r.start).collect()
            },
        };
        let arch = ArchShape::of(moe).map(Box::new);
        // CGC's and PLE's block holds every expert (task-owned ones too), numbered as
        // `expert_groups`: level by level, each level's [shared; task 0's; …].
        let experts = match &arch {
            Some(_) => moe.expert_groups().into_iter().map(|g| g.expert).collect(),
            None => lay.experts.clone(),
        };
        let group_of: Vec<usize> = (0..cfg.heads.len()).map(|t| moe.group_of(t)).collect();
        let groups = group_of.iter().max().map_or(1, |g| g + 1);
        MoeShape {
            base,
            width: cfg.width(),
            experts: experts.iter().map(|x| (LayerDims::from(&x.hidden), LayerDims::from(&x.out))).collect(),
            gates: lay.gates.iter().map(|g| g.weight.weight.start).collect(),
            group_of,
            groups,
            router: cfg.router,
            gin: lay.gates.first().map_or(cfg.width(), |g| g.weight.fan_in),
            task_embedding: matches!(cfg.router.gating(), Gating::TaskEmbedding),
            noise: lay.gates.iter().map(|g| g.noise.as_ref().map(|n| n.weight.start)).collect(),
            arch,
            dselect: DselectShape::of(moe).map(Box::new),
        }
    }

    /// Whether the router chooses experts (every router but the dense softmax and MMoE).
    pub fn selecting(&self) -> bool {
        !matches!(
            self.router,
            RouterKind::Softmax
                | RouterKind::Mmoe
                | RouterKind::Cgc { .. }
                | RouterKind::Ple { .. }
                | RouterKind::DselectK { .. }
        )
    }

    pub fn noisy(&self) -> bool {
        self.router.is_noisy()
    }

    /// Floats of one step's routing noise ε: groups × rows × E.
    pub fn noise_len(&self, rows: usize) -> usize {
        self.groups * rows * self.experts.len()
    }

    /// Whether the routing core can route `rows` tokens for this router (its loop budget).
    pub fn check_rows(&self, rows: usize) -> Result<(), GpuError> {
        if !self.selecting() {
            return Ok(());
        }
        let (_, k, _) = MoeParams::for_router(rows, self.gin, self.experts.len(), self.gpu_router(rows));
        if within_loop_budget(rows, k) {
            Ok(())
        } else {
            Err(GpuError::Unsupported(format!(
                "MoE router '{}' on {rows} rows exceeds the GPU routing kernels' loop budget; use the CPU backend",
                self.router.name()
            )))
        }
    }

    fn gpu_router(&self, rows: usize) -> GpuRouter {
        GpuRouter::from_core(&self.router, rows, self.experts.len())
    }

    pub(super) fn gate_of(&self, group: usize) -> usize {
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
    /// Per gate group: p = softmax(h) (rows × E) and the block output h (rows × H; CGC and PLE:
    /// head t's input, with `probs`, `logits` and `combine` empty: `arch` has the gates'); the
    /// clean logits h (the aux losses read them, `kernels::moe_aux`, and the step records'
    /// routing statistics, `kernels::moe_record`).
    pub(super) probs: Vec<wgpu::Buffer>,
    pub(super) logits: Vec<wgpu::Buffer>,
    outputs: Vec<wgpu::Buffer>,
    /// Per gate group: the combine weights G the mix reads (rows × E first): `probs` for a
    /// dense router, the routing core's combine | dispatch | dropped for a selecting one.
    combine: Vec<wgpu::Buffer>,
    /// Per gate group of a selecting router: what its backward reads.
    routes: Vec<GroupRoute>,
    /// The routing noise ε, groups × rows × E (zeros: no noise), and whether it was given.
    eps: wgpu::Buffer,
    /// CGC and PLE: each level's streams and gate weights.
    arch: Vec<ArchLevel>,
    /// DSelect-k: each task gate's z and w (`kernels::moe_dselect`).
    dselect: Vec<DselectGate>,
    noise_given: bool,
}

/// A selecting router's gate group: the gate input (a task-embedding gate's concat(a, onehot),
/// `None`: a itself), the top-k choices in rank order, and the raw noise logits.
struct GroupRoute {
    gin: Option<wgpu::Buffer>,
    choice: wgpu::Buffer,
    raw: wgpu::Buffer,
}

/// Noisy top-k's ε for `noise_seed` (`Moe::routing_noise`, the CPU's draws), row-major per gate
/// group: what [`MoeForward`]'s noise buffer holds for a step.
pub(crate) fn routing_noise_f32(moe: &Moe, shape: &MoeShape, noise_seed: u64, rows: usize) -> Vec<f32> {
    (0..shape.groups).flat_map(|g| matrix_f32(&moe.routing_noise(noise_seed, g, rows))).collect()
}

pub(super) fn moe_params(rows: usize, shape: &MoeShape, items: usize) -> (MoeTrainParams, (u32, u32)) {
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
        gin: shape.width as u32,
        noise_off: 0,
        eps_off: 0,
        _pad: 0,
    };
    (p, g)
}

/// A dispatch with its storage buffers at the given bindings and `p` at binding 0.
pub(super) fn moe_dispatch_at(
    gpu: &Gpu,
    pipeline: &wgpu::ComputePipeline,
    bound: &[(u32, &wgpu::Buffer)],
    p: &MoeTrainParams,
    groups: (u32, u32),
) -> Dispatch {
    Dispatch::with_bindings(gpu, pipeline, bound, &[(0, bytemuck::bytes_of(p))], groups)
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
    /// target table `y`, mirroring `Moe::run_forward`; `noise`: the routing noise ε
    /// (groups × rows × E, written per step), `None` = no noise.
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
        noise: Option<&wgpu::Buffer>,
    ) -> Self {
        let buf = |label: &str, len: usize| gpu.buffer(label, (len * 4) as u64, RW);
        let eps = match noise {
            Some(b) => b.clone(),
            None => buf("no routing noise", shape.noise_len(rows).max(1)),
        };
        let placeholder = buf("unused activation", 4);
        let dense = |input: &wgpu::Buffer, layer: &LayerDims, act: u32, z: &wgpu::Buffer, a: Option<&wgpu::Buffer>| {
            let (p, groups) = layer.dense_params(rows, act, a.is_some());
            let a = a.unwrap_or(&placeholder);
            Dispatch::new(gpu, &pipes.dense_forward, &[input, params, z, a], bytemuck::bytes_of(&p), groups)
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
            expert_z.push(buf("expert z", rows * hidden.fan_out));
            expert_u.push(buf("expert u", rows * hidden.fan_out));
            expert_y.push(buf("expert y", rows * out.fan_out));
        }
        let n = shape.experts.len();
        let (mut probs, mut outputs, mut combine, mut routes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut all_logits = Vec::new();
        let mut arch_levels = Vec::new();
        let mut dselect = Vec::new();
        if let Some(arch) = &shape.arch {
            let experts = ExpertBuffers { z: &expert_z, u: &expert_u, y: &expert_y };
            let (levels, heads_in, d) = arch.forward(gpu, pipes, moe_pipes, shape, rows, (&a, params), &experts);
            dispatches.extend(d);
            arch_levels = levels;
            outputs = heads_in;
        } else {
            for (e, (hidden, out)) in shape.experts.iter().enumerate() {
                dispatches.push(dense(&a, hidden, shape.base.act, &expert_z[e], Some(&expert_u[e])));
                dispatches.push(dense(&expert_u[e], out, 4, &expert_y[e], None));
            }
        }
        for g in (0..shape.groups).filter(|_| shape.arch.is_none()) {
            let logits = buf("gate logits", rows * n);
            let p = buf("gate probs", rows * n);
            let h = buf("moe block output", rows * shape.width);
            let g_combine = if let Some(ds) = &shape.dselect {
                let (gate, d) = ds.gate_forward(gpu, pipes, &moe_pipes.dselect, g, rows, n, (&a, params, &p));
                dispatches.extend(d);
                dselect.push(gate);
                p.clone()
            } else if shape.selecting() {
                let route = Self::route(gpu, moe_pipes, shape, rows, g, (&a, params, &eps), (&logits, &p));
                let (route, f, d) = route;
                dispatches.extend(d);
                routes.push(route);
                f
            } else {
                let (mut gp, groups) = moe_params(rows, shape, rows);
                gp.w_off = shape.gates[shape.gate_of(g)] as u32;
                dispatches.push(moe_dispatch(gpu, &moe_pipes.gate_softmax, 1, &[&a, params, &logits, &p], &gp, groups));
                p.clone()
            };
            for (e, y_e) in expert_y.iter().enumerate() {
                let (mut mp, groups) = moe_params(rows, shape, rows * shape.width);
                mp.expert = e as u32;
                mp.mode = u32::from(e == 0);
                dispatches.push(moe_dispatch(gpu, &moe_pipes.mix, 5, &[&a, &g_combine, y_e, &h], &mp, groups));
            }
            probs.push(p);
            all_logits.push(logits);
            outputs.push(h);
            combine.push(g_combine);
        }
        let losses = buf("task losses", shape.base.num_tasks());
        let (mut outs, mut d_outs) = (Vec::new(), Vec::new());
        for (t, head) in shape.base.heads.iter().enumerate() {
            let o = buf("head output", rows * head.fan_out);
            let d_o = buf("head output gradient", rows * head.fan_out);
            dispatches.push(dense(&outputs[shape.group_of[t]], head, 4, &o, None));
            dispatches.push(task_loss_dispatch(gpu, pipes, &shape.base, rows, t, (&o, y), (&d_o, &losses)));
            outs.push(o);
            d_outs.push(d_o);
        }
        MoeForward {
            graph: ForwardGraph { rows, pre, act, outs, d_outs, losses, dispatches },
            expert_z,
            expert_u,
            expert_y,
            probs,
            logits: all_logits,
            outputs,
            combine,
            routes,
            eps,
            arch: arch_levels,
            dselect,
            noise_given: noise.is_some(),
        }
    }

    /// DSelect-k's task gates' forward buffers, task by task (empty for another model).
    pub(super) fn dselect_gates(&self) -> &[DselectGate] {
        &self.dselect
    }

    /// Per gate group, what a step record's routing statistics read back: the clean logits, a
    /// selecting router's combine | dispatch | dropped, noisy top-k's raw noise logits.
    pub(crate) fn routing_outputs(&self, shape: &MoeShape) -> Vec<RoutingOutputs> {
        (0..shape.groups)
            .map(|g| RoutingOutputs {
                logits: self.logits[g].clone(),
                chosen: shape.selecting().then(|| self.combine[g].clone()),
                raw: (shape.selecting() && shape.noisy()).then(|| self.routes[g].raw.clone()),
            })
            .collect()
    }

    /// A selecting router's gate group g: the gate input, the gate (clean logits and p into
    /// `logits` / `probs`; noisy top-k's raw noise logits), what the core selects on
    /// (`moe_noisy_logits`), then the routing core's selection.
    /// Returns the group's buffers, its combine | dispatch | dropped and the dispatches.
    fn route(
        gpu: &Gpu,
        moe_pipes: &MoeTrainPipelines,
        shape: &MoeShape,
        rows: usize,
        g: usize,
        (a, params, eps): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
        (logits, probs): (&wgpu::Buffer, &wgpu::Buffer),
    ) -> (GroupRoute, wgpu::Buffer, Vec<Dispatch>) {
        let buf = |label: &str, len: usize| gpu.buffer(label, (len * 4) as u64, RW);
        let n = shape.experts.len();
        let mut dispatches = Vec::new();
        let gin = shape.task_embedding.then(|| {
            let out = buf("task-embedding gate input", rows * shape.gin);
            let (mut p, groups) = moe_params(rows, shape, rows * shape.gin);
            p.gin = shape.gin as u32;
            p.expert = g as u32;
            dispatches.push(moe_dispatch_at(gpu, &moe_pipes.gate_input, &[(40, a), (41, &out)], &p, groups));
            out
        });
        let gate = shape.gate_of(g);
        let gin_ref = gin.as_ref().unwrap_or(a);
        let sel = buf("routing gate_out", 2 * rows * n + rows);
        let raw = buf("raw noise logits", rows * n);
        let (mut p, groups) = moe_params(rows, shape, rows);
        p.gin = shape.gin as u32;
        p.w_off = shape.gates[gate] as u32;
        dispatches.push(moe_dispatch(gpu, &moe_pipes.gate_softmax, 1, &[gin_ref, params, logits, probs], &p, groups));
        if let Some(off) = shape.noise[gate] {
            let unused = buf("unused softmax of the noise logits", rows * n);
            p.w_off = off as u32;
            dispatches.push(moe_dispatch(
                gpu,
                &moe_pipes.gate_softmax,
                1,
                &[gin_ref, params, &raw, &unused],
                &p,
                groups,
            ));
        }
        p.mode = u32::from(shape.noisy());
        p.eps_off = (g * rows * n) as u32;
        dispatches.push(moe_dispatch_at(
            gpu,
            &moe_pipes.noisy_logits,
            &[(42, logits), (43, &raw), (44, eps), (45, &sel)],
            &p,
            groups,
        ));
        let router = shape.gpu_router(rows);
        let (mp, k, cbuf) = MoeParams::for_router(rows, shape.gin, n, router);
        let uniform = bytemuck::bytes_of(&mp);
        let choice = buf("top-k choices", rows * k);
        let choice_w = buf("top-k weights", rows * k);
        let route_f = buf("combine | dispatch | dropped", 2 * rows * n + n);
        let route_u = buf("slots", rows * n + n * cbuf);
        let token_groups = (rows as u32).div_ceil(64).max(1);
        match router {
            GpuRouter::ExpertChoice { .. } => dispatches.push(Dispatch::with_bindings(
                gpu,
                &moe_pipes.expert_choice,
                &[(1, &sel), (3, &route_f), (4, &route_u)],
                &[(0, uniform)],
                (token_groups, n as u32),
            )),
            GpuRouter::TopK { .. } => {
                dispatches.push(Dispatch::with_bindings(
                    gpu,
                    &moe_pipes.select,
                    &[(1, &sel), (2, &choice), (3, &choice_w)],
                    &[(0, uniform)],
                    (token_groups, 1),
                ));
                dispatches.push(Dispatch::with_bindings(
                    gpu,
                    &moe_pipes.capacity,
                    &[(1, &choice), (2, &choice_w), (3, &route_f), (4, &route_u)],
                    &[(0, uniform)],
                    ((n as u32).div_ceil(64).max(1), 1),
                ));
            }
        }
        (GroupRoute { gin, choice, raw }, route_f, dispatches)
    }

    /// Gate group g's routing as the CV² aux losses read it (`kernels::moe_aux`): its combine
    /// weights (p for a dense router, combine | dispatch | dropped for a selecting one) and a
    /// selecting router's top-k choices and raw noise logits.
    pub(super) fn selection(&self, g: usize) -> (&wgpu::Buffer, Option<(&wgpu::Buffer, &wgpu::Buffer)>) {
        (&self.combine[g], self.routes.get(g).map(|r| (&r.choice, &r.raw)))
    }

    /// The routing noise ε (groups × rows × E) and whether this pass has any (zeros if not).
    pub(super) fn noise(&self) -> (&wgpu::Buffer, bool) {
        (&self.eps, self.noise_given)
    }

    /// Gate group g's gate input: a task-embedding gate's concat(a, onehot), `None` for a itself.
    pub(super) fn gate_input(&self, g: usize) -> Option<&wgpu::Buffer> {
        self.routes.get(g).and_then(|r| r.gin.as_ref())
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
        let d_raw = buf("dL/dh_noise", rows * n);
        let d_probs = buf("dL/dp", rows * n);
        let d_expert = buf("expert dz", rows * shape.experts.first().map_or(1, |x| x.0.fan_out));
        let d_path = buf("dL/da of one path", rows * h_w);
        let d_pre: Vec<wgpu::Buffer> = shape.base.trunk.iter().map(|l| buf("moe pre dz", rows * l.fan_out)).collect();
        let n_pre = shape.base.trunk.len();
        let weight_grad =
            |dz: &wgpu::Buffer, input: &wgpu::Buffer, out: &wgpu::Buffer, l: &LayerDims, off: usize, bias: bool| {
                let (p, (gx, gy)) = l.weight_grad_params(rows, off, bias);
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
        let arch = shape.arch.as_ref().map(|arch| {
            let experts = ExpertBuffers { z: &self.expert_z, u: &self.expert_u, y: &self.expert_y };
            let bufs = (params, jac, update);
            ArchBackward::new(gpu, (pipes, moe_pipes), shape, arch, rows, bufs, &self.arch, experts)
        });
        for (t, head) in shape.base.heads.iter().enumerate() {
            let g = shape.group_of[t];
            let h = &self.outputs[g];
            let row = t * s;
            dispatches.push(weight_grad(&fwd.d_outs[t], h, update, head, head.w_off, true));
            // dL/dh = dL/do · W_head (linear: φ' = 1; z_prev is only read through φ').
            dispatches.push(backprop(&fwd.d_outs[t], head.w_off, head.fan_in, head.fan_out, 4, h, &d_h));
            if let Some(arch) = &arch {
                let (d, d_a) = arch.task(t, &d_h);
                dispatches.extend(d);
                if n_pre > 0 {
                    dispatches.push(accumulate(d_a, &fwd.pre[n_pre - 1], &d_pre[n_pre - 1], 0));
                }
            } else {
                if n_pre > 0 {
                    // The residual path: dL/da = dL/dh, through the last pre-layer's φ'.
                    dispatches.push(accumulate(&d_h, &fwd.pre[n_pre - 1], &d_pre[n_pre - 1], 0));
                }
                for e in 0..n {
                    let (hidden, out) = &shape.experts[e];
                    let (mut p, groups) = moe_params(rows, shape, rows * h_w);
                    p.expert = e as u32;
                    dispatches.push(moe_dispatch(
                        gpu,
                        &moe_pipes.scatter_dy,
                        9,
                        &[&d_h, &self.combine[g], &d_y],
                        &p,
                        groups,
                    ));
                    let (mut p, groups) = moe_params(rows, shape, rows);
                    p.expert = e as u32;
                    p.mode = u32::from(shape.selecting());
                    dispatches.push(moe_dispatch_at(
                        gpu,
                        &moe_pipes.dcombine,
                        &[(12, &d_h), (13, &self.expert_y[e]), (14, &d_comb), (24, &self.combine[g])],
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
                if let Some(ds) = &shape.dselect {
                    // Task t's z and w layers (with bias) are its own: into `update`; dL/da
                    // through both as through CGC's gate.
                    let gate = &self.dselect[g];
                    let (back, grads) = ds.gate_backward(gpu, &moe_pipes.dselect, t, rows, n, gate, &d_comb);
                    dispatches.extend(back);
                    for (layer, d_out) in &grads {
                        dispatches.push(weight_grad(d_out, a, update, layer, layer.w_off, true));
                        if n_pre > 0 {
                            let z = &fwd.pre[n_pre - 1];
                            dispatches.push(backprop(
                                d_out,
                                layer.w_off,
                                h_w,
                                layer.fan_out,
                                shape.base.act,
                                z,
                                &d_path,
                            ));
                            dispatches.push(accumulate(&d_path, z, &d_pre[n_pre - 1], 1));
                        }
                    }
                } else {
                    let gate_off = shape.gates[shape.gate_of(g)];
                    let gate =
                        LayerDims { fan_in: shape.gin, fan_out: n, w_off: gate_off, b_off: gate_off + shape.gin * n };
                    let softmax_back = |d_probs: &wgpu::Buffer| {
                        let (p, groups) = moe_params(rows, shape, rows * n);
                        moe_dispatch(
                            gpu,
                            &moe_pipes.softmax_back,
                            15,
                            &[&self.probs[g], d_probs, &d_logits],
                            &p,
                            groups,
                        )
                    };
                    if !shape.selecting() {
                        dispatches.push(softmax_back(&d_comb));
                        dispatches.push(weight_grad(&d_logits, a, jac, &gate, row + gate_off, false));
                        if n_pre > 0 {
                            let z = &fwd.pre[n_pre - 1];
                            dispatches.push(backprop(&d_logits, gate_off, h_w, n, shape.base.act, z, &d_path));
                            dispatches.push(accumulate(&d_path, z, &d_pre[n_pre - 1], 1));
                        }
                    } else {
                        let route = &self.routes[g];
                        let (p, groups) = moe_params(rows, shape, rows);
                        match shape.router {
                            RouterKind::NoisyTopK { .. } => {
                                dispatches.push(moe_dispatch_at(
                                    gpu,
                                    &moe_pipes.noisy_back,
                                    &[(29, &self.combine[g]), (30, &d_comb), (33, &d_logits)],
                                    &p,
                                    groups,
                                ));
                                let (mut p, groups) = moe_params(rows, shape, rows * n);
                                p.eps_off = (g * rows * n) as u32;
                                dispatches.push(moe_dispatch_at(
                                    gpu,
                                    &moe_pipes.noise_chain,
                                    &[(31, &d_logits), (32, &self.eps), (34, &route.raw), (46, &d_raw)],
                                    &p,
                                    groups,
                                ));
                            }
                            RouterKind::Top2 { .. } => {
                                dispatches.push(moe_dispatch_at(
                                    gpu,
                                    &moe_pipes.top2_dprobs,
                                    &[(25, &self.probs[g]), (26, &d_comb), (27, &route.choice), (28, &d_probs)],
                                    &p,
                                    groups,
                                ));
                                dispatches.push(softmax_back(&d_probs));
                            }
                            // Switch, expert choice, task routing: G = p where kept, and dL/dG is
                            // already 0 elsewhere.
                            _ => dispatches.push(softmax_back(&d_comb)),
                        }
                        let gin = route.gin.as_ref().unwrap_or(a);
                        dispatches.push(weight_grad(&d_logits, gin, jac, &gate, row + gate_off, false));
                        let noise_off = shape.noise[shape.gate_of(g)];
                        if let Some(off) = noise_off {
                            let noise = LayerDims { w_off: off, b_off: off + shape.gin * n, ..gate };
                            dispatches.push(weight_grad(&d_raw, gin, jac, &noise, row + off, false));
                        }
                        if n_pre > 0 {
                            let z = &fwd.pre[n_pre - 1];
                            let paths = [(&d_logits, Some(gate_off)), (&d_raw, noise_off)];
                            for (d, off) in paths.into_iter().filter_map(|(d, off)| off.map(|o| (d, o))) {
                                let (mut p, groups) = moe_params(rows, shape, rows * h_w);
                                p.w_off = off as u32;
                                p.gin = shape.gin as u32;
                                dispatches.push(moe_dispatch_at(
                                    gpu,
                                    &moe_pipes.gate_back_input,
                                    &[(35, d), (37, params), (38, z), (39, &d_pre[n_pre - 1])],
                                    &p,
                                    groups,
                                ));
                            }
                        }
                    }
                }
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

/// `moe_gate_back_input`: dst += (dL/dh·W_g at `w_off`, the columns that read a)·φ'(z) over
/// `rows` tokens (the aux gradient's path into the pre-layers, `kernels::moe_aux`).
#[allow(clippy::too_many_arguments)]
pub(super) fn gate_back_input_dispatch(
    gpu: &Gpu,
    moe_pipes: &MoeTrainPipelines,
    shape: &MoeShape,
    rows: usize,
    w_off: usize,
    (d, params, z, dst): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
) -> Dispatch {
    let (mut p, groups) = moe_params(rows, shape, rows * shape.width);
    p.w_off = w_off as u32;
    p.gin = shape.gin as u32;
    moe_dispatch_at(gpu, &moe_pipes.gate_back_input, &[(35, d), (37, params), (38, z), (39, dst)], &p, groups)
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
    moe_gradients_with_noise(gpu, moe, params, x, targets, None).await
}

/// [`moe_gradients`] with noisy top-k's routing noise of `noise_seed` (the draws of
/// `Moe::gradients(…, Some(noise_seed))`); `outputs` are the noisy pass's head outputs.
pub async fn moe_gradients_with_noise(
    gpu: &Gpu,
    moe: &Moe,
    params: &[f64],
    x: &DMatrix<f64>,
    targets: &[Target],
    noise_seed: Option<u64>,
) -> Result<GpuGradients, GpuError> {
    moe.losses(params, x, targets).map_err(GpuError::Unsupported)?;
    if let Some(why) = gpu_moe_unsupported(moe) {
        return Err(GpuError::Unsupported(why));
    }
    let shape = MoeShape::new(moe);
    let rows = x.nrows();
    shape.base.check_rows(rows)?;
    shape.check_rows(rows)?;
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
    let noise = noise_seed.filter(|_| shape.noisy()).map(|seed| {
        gpu.storage_init("routing noise", bytemuck::cast_slice(&routing_noise_f32(moe, &shape, seed, rows)), RW)
    });
    let fwd = MoeForward::new(gpu, &pipes, &moe_pipes, &shape, rows, &x_buf, &y_buf, &params_buf, noise.as_ref());
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
    // Each task's own block, as `Moe::gradients`' head_grads: the head, or an architecture's
    // whole task block (gate, task experts, head).
    let lay = moe.layout();
    let head_grads = if lay.task_ranges.is_empty() {
        lay.heads.iter().map(|s| update[s.range()].to_vec()).collect()
    } else {
        lay.task_ranges.iter().map(|r| update[r.clone()].to_vec()).collect()
    };
    Ok(GpuGradients { losses, shared_jacobian, head_grads, outputs })
}
