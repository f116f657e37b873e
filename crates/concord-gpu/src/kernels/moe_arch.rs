//! The task-gated architectures CGC and PLE (concord-core `model/moe/cgc.rs`, `ple.rs` on
//! `extraction.rs`) on the MoE training graph (`kernels::moe_train`): levels of experts, each
//! level's experts numbered [shared; task 0's; …; task m−1's] and the levels one after another
//! (the order of `Moe::expert_groups`). Level j reads task streams h_k^{j−1} and a shared stream
//! h_s^{j−1} (h⁰ = a): shared experts read h_s, task-k experts read h_k. Task k's gate (an
//! `nn.Linear` with bias, task-owned) reads h_k and mixes [shared; its own] by a softmax; PLE's
//! shared gate (below the last level, shared) reads h_s and mixes every expert of its level.
//! Every mixture is the residual h^j = h^{j−1} + Σ p_c·e_c; head k reads h_k of the last level.
//!
//! The gates' logits run on the MLP's dense kernel; `shaders/moe_arch.wgsl` takes the softmax
//! and spreads it over every expert (0 elsewhere), so the block's mix, dL/dG and expert
//! backprop kernels run on it as on MMoE's probabilities; only each gate's candidates are mixed
//! and backpropagated. Gradients land where concord-core's layout puts each parameter: below
//! `shared_len` in J's row (pre-layers, shared experts, the shared gate, PLE's level-1 task
//! experts), above it in the task's block of `update` (its gates, its last-level experts, the
//! head).

use bytemuck::{Pod, Zeroable};
use concord_core::model::moe::{Moe, RouterKind};

use super::mlp::{grid, BackpropParams, Dispatch, MlpPipelines};
use super::mlp_graph::LayerDims;
use super::moe_train::{moe_dispatch_at, moe_params, MoeShape, MoeTrainPipelines};
use crate::Gpu;

/// Activation code 4 (linear): φ' = 1, so `backprop` gives dz·W and `accumulate` mode 0 copies.
const LINEAR: u32 = 4;

/// One mixture of a level: task k's gate, or the shared gate (PLE below its last level).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Mixture {
    Task(usize),
    Shared,
}

/// A CGC or PLE model as the training graph sees it.
#[derive(Clone, Debug)]
pub(crate) struct ArchShape {
    pub shared: usize,
    pub task_experts: usize,
    pub tasks: usize,
    pub levels: usize,
    /// `[task][level]`: task t's gate, width → shared + task_experts, with bias.
    pub gates: Vec<Vec<LayerDims>>,
    /// `[level]` below the last: the shared gate, width → every expert of its level, with bias.
    pub shared_gates: Vec<LayerDims>,
}

impl ArchShape {
    /// `Some` for a CGC or PLE model.
    pub fn of(moe: &Moe) -> Option<Self> {
        let (RouterKind::Cgc { task_experts } | RouterKind::Ple { task_experts }) = moe.config().router else {
            return None;
        };
        let gates: Vec<Vec<LayerDims>> = moe
            .task_gate_layers()
            .iter()
            .map(|levels| levels.iter().map(|(z, _)| LayerDims::from(z)).collect())
            .collect();
        let levels = gates.first().map_or(1, Vec::len);
        let shared_gates = moe.layout().gates.iter().map(|g| LayerDims::from(&g.weight)).collect();
        Some(ArchShape {
            shared: moe.config().experts,
            task_experts,
            tasks: moe.config().heads.len(),
            levels,
            gates,
            shared_gates,
        })
    }

    /// Experts per level: shared + tasks·task_experts.
    pub fn per_level(&self) -> usize {
        self.shared + self.tasks * self.task_experts
    }

    /// The experts (block numbering) a mixture of level j mixes, in its candidate order.
    pub fn candidates(&self, j: usize, mix: Mixture) -> Vec<usize> {
        let first = j * self.per_level();
        match mix {
            Mixture::Task(t) => {
                let own = first + self.shared + t * self.task_experts;
                (first..first + self.shared).chain(own..own + self.task_experts).collect()
            }
            Mixture::Shared => (first..first + self.per_level()).collect(),
        }
    }

    /// The stream expert e reads: `None` the shared stream, `Some(k)` task k's.
    pub fn stream_of(&self, e: usize) -> Option<usize> {
        let c = e % self.per_level();
        (c >= self.shared).then(|| (c - self.shared) / self.task_experts.max(1))
    }

    fn gate(&self, j: usize, mix: Mixture) -> &LayerDims {
        match mix {
            Mixture::Task(t) => &self.gates[t][j],
            Mixture::Shared => &self.shared_gates[j],
        }
    }

    fn params(&self, j: usize, mix: Mixture, rows: usize, experts: usize, items: usize) -> (ArchParams, (u32, u32)) {
        let g = grid(items);
        // The shared gate runs as task 0 over every expert of its level (moe_arch.wgsl).
        let (task, cands) = match mix {
            Mixture::Task(t) => (t, self.shared + self.task_experts),
            Mixture::Shared => (0, self.per_level()),
        };
        let p = ArchParams {
            rows: rows as u32,
            experts: experts as u32,
            cands: cands as u32,
            shared_experts: self.shared as u32,
            task_experts: self.task_experts as u32,
            task: task as u32,
            groups_x: g.0,
            level_off: (j * self.per_level()) as u32,
        };
        (p, g)
    }

    /// A gate of level j on its input (rows × width): logits (rows × candidates) on the dense
    /// kernel, then the spread softmax into `probs` (rows × experts).
    #[allow(clippy::too_many_arguments)]
    fn gate_forward(
        &self,
        gpu: &Gpu,
        pipes: &MlpPipelines,
        arch: &ArchPipelines,
        (j, mix): (usize, Mixture),
        rows: usize,
        experts: usize,
        (input, params, probs): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
    ) -> Vec<Dispatch> {
        let gate = self.gate(j, mix);
        let logits = gpu.buffer("arch gate logits", (rows * gate.fan_out * 4) as u64, RW);
        let unused = gpu.buffer("unused activation", 4, RW);
        let (dp, groups) = gate.dense_params(rows, LINEAR, false);
        let dense = Dispatch::new(
            gpu,
            &pipes.dense_forward,
            &[input, params, &logits, &unused],
            bytemuck::bytes_of(&dp),
            groups,
        );
        let (p, groups) = self.params(j, mix, rows, experts, rows);
        let softmax = Dispatch::with_bindings(
            gpu,
            &arch.softmax,
            &[(1, &logits), (2, probs)],
            &[(0, bytemuck::bytes_of(&p))],
            groups,
        );
        vec![dense, softmax]
    }

    /// dL/dG (rows × experts, spread) → dL/dlogits of a gate of level j (rows × candidates)
    /// into `d_logits`.
    #[allow(clippy::too_many_arguments)]
    fn softmax_back(
        &self,
        gpu: &Gpu,
        arch: &ArchPipelines,
        (j, mix): (usize, Mixture),
        rows: usize,
        experts: usize,
        (probs, d_comb, d_logits): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
    ) -> Dispatch {
        let cands = self.gate(j, mix).fan_out;
        let (p, groups) = self.params(j, mix, rows, experts, rows * cands);
        Dispatch::with_bindings(
            gpu,
            &arch.softmax_back,
            &[(3, probs), (4, d_comb), (5, d_logits)],
            &[(0, bytemuck::bytes_of(&p))],
            groups,
        )
    }
}

/// What the forward pass of one level leaves for the backward.
pub(crate) struct ArchLevel {
    /// h_k^{j−1} per task and h_s^{j−1}: what the level's experts and gates read.
    task_in: Vec<wgpu::Buffer>,
    shared_in: wgpu::Buffer,
    /// The spread gate weights (rows × experts) of each task's gate, and of the shared gate.
    task_probs: Vec<wgpu::Buffer>,
    shared_probs: Option<wgpu::Buffer>,
}

/// Every expert's hidden pre-activation z, its φ(z) and its output y (block numbering).
pub(crate) struct ExpertBuffers<'a> {
    pub z: &'a [wgpu::Buffer],
    pub u: &'a [wgpu::Buffer],
    pub y: &'a [wgpu::Buffer],
}

/// φ(W·input + b) of `layer` over `rows` rows into z (and φ(z) into `act_out`).
#[allow(clippy::too_many_arguments)]
fn dense(
    gpu: &Gpu,
    pipes: &MlpPipelines,
    rows: usize,
    (input, params): (&wgpu::Buffer, &wgpu::Buffer),
    layer: &LayerDims,
    act: u32,
    z: &wgpu::Buffer,
    act_out: Option<&wgpu::Buffer>,
) -> Dispatch {
    let (p, groups) = layer.dense_params(rows, act, act_out.is_some());
    let placeholder;
    let act_out = match act_out {
        Some(b) => b,
        None => {
            placeholder = gpu.buffer("unused activation", 4, RW);
            &placeholder
        }
    };
    Dispatch::new(gpu, &pipes.dense_forward, &[input, params, z, act_out], bytemuck::bytes_of(&p), groups)
}

impl ArchShape {
    /// `Extraction::run_forward`, level by level: each expert on its stream, each task's gate
    /// and mixture, the shared gate's mixture. Returns the levels' buffers, head k's input
    /// h_k^L per task and the dispatches.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        gpu: &Gpu,
        pipes: &MlpPipelines,
        moe_pipes: &MoeTrainPipelines,
        shape: &MoeShape,
        rows: usize,
        (a, params): (&wgpu::Buffer, &wgpu::Buffer),
        experts: &ExpertBuffers,
    ) -> (Vec<ArchLevel>, Vec<wgpu::Buffer>, Vec<Dispatch>) {
        let n = shape.experts.len();
        let buf = |label: &str, len: usize| gpu.buffer(label, (len * 4) as u64, RW);
        let mut dispatches = Vec::new();
        let mut task_in: Vec<wgpu::Buffer> = vec![a.clone(); self.tasks];
        let mut shared_in = a.clone();
        let mut levels = Vec::new();
        // h = input + Σ_c p_c·y_c over the mixture's candidates.
        let mix = |input: &wgpu::Buffer, probs: &wgpu::Buffer, cands: &[usize], h: &wgpu::Buffer| {
            let each = cands.iter().enumerate().map(|(i, &e)| {
                let (mut mp, groups) = moe_params(rows, shape, rows * shape.width);
                mp.expert = e as u32;
                mp.mode = u32::from(i == 0);
                let bound = [(5, input), (6, probs), (7, &experts.y[e]), (8, h)];
                moe_dispatch_at(gpu, &moe_pipes.mix, &bound, &mp, groups)
            });
            each.collect::<Vec<_>>()
        };
        for j in 0..self.levels {
            let first = j * self.per_level();
            for e in first..first + self.per_level() {
                let (hidden, out) = &shape.experts[e];
                let input = self.stream_of(e).map_or(&shared_in, |k| &task_in[k]);
                let (z, u, y) = (&experts.z[e], &experts.u[e], &experts.y[e]);
                dispatches.push(dense(gpu, pipes, rows, (input, params), hidden, shape.base.act, z, Some(u)));
                dispatches.push(dense(gpu, pipes, rows, (u, params), out, LINEAR, y, None));
            }
            let mut task_probs = Vec::new();
            let mut task_out = Vec::new();
            for (k, input) in task_in.iter().enumerate() {
                let p = buf("arch task gate weights", rows * n);
                let h = buf("arch task stream", rows * shape.width);
                let at = (j, Mixture::Task(k));
                dispatches.extend(self.gate_forward(gpu, pipes, &moe_pipes.arch, at, rows, n, (input, params, &p)));
                dispatches.extend(mix(input, &p, &self.candidates(j, Mixture::Task(k)), &h));
                task_probs.push(p);
                task_out.push(h);
            }
            let shared_probs = (j < self.shared_gates.len()).then(|| buf("arch shared gate weights", rows * n));
            let shared_out = shared_probs.as_ref().map(|p| {
                let h = buf("arch shared stream", rows * shape.width);
                let at = (j, Mixture::Shared);
                dispatches.extend(self.gate_forward(gpu, pipes, &moe_pipes.arch, at, rows, n, (&shared_in, params, p)));
                dispatches.extend(mix(&shared_in, p, &self.candidates(j, Mixture::Shared), &h));
                h
            });
            let task_in = std::mem::replace(&mut task_in, task_out);
            let next_shared = shared_out.unwrap_or_else(|| shared_in.clone());
            let shared_in = std::mem::replace(&mut shared_in, next_shared);
            levels.push(ArchLevel { task_in, shared_in, task_probs, shared_probs });
        }
        (levels, task_in, dispatches)
    }
}

/// `Extraction::backward` for one task at a time. Its scratch buffers are shared by every task
/// (the dispatches run in order in one pass).
pub(crate) struct ArchBackward<'a> {
    gpu: &'a Gpu,
    pipes: &'a MlpPipelines,
    moe_pipes: &'a MoeTrainPipelines,
    shape: &'a MoeShape,
    arch: &'a ArchShape,
    rows: usize,
    params: &'a wgpu::Buffer,
    jac: &'a wgpu::Buffer,
    update: &'a wgpu::Buffer,
    levels: &'a [ArchLevel],
    experts: ExpertBuffers<'a>,
    /// `[level]`: dL/d(each stream the level reads), the tasks' then the shared one; level 0's
    /// streams are all a, so it has one: dL/da.
    d_in: Vec<Vec<wgpu::Buffer>>,
    d_y: wgpu::Buffer,
    d_y_more: wgpu::Buffer,
    d_expert: wgpu::Buffer,
    d_path: wgpu::Buffer,
    d_comb: wgpu::Buffer,
    d_cand: wgpu::Buffer,
}

/// A mixture of a level with a gradient: which, dL/d(its output), its weights, the stream it reads.
type LiveMixture<'b> = (Mixture, &'b wgpu::Buffer, &'b wgpu::Buffer, Option<usize>);

impl<'a> ArchBackward<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &'a Gpu,
        (pipes, moe_pipes): (&'a MlpPipelines, &'a MoeTrainPipelines),
        shape: &'a MoeShape,
        arch: &'a ArchShape,
        rows: usize,
        (params, jac, update): (&'a wgpu::Buffer, &'a wgpu::Buffer, &'a wgpu::Buffer),
        levels: &'a [ArchLevel],
        experts: ExpertBuffers<'a>,
    ) -> Self {
        let buf = |label: &str, len: usize| gpu.buffer(label, (len * 4) as u64, RW);
        let h = rows * shape.width;
        let d_in = (0..arch.levels)
            .map(|j| {
                let streams = if j == 0 { 1 } else { arch.tasks + 1 };
                (0..streams).map(|_| buf("dL/d(arch stream)", h)).collect()
            })
            .collect();
        let hidden = shape.experts.iter().map(|(x, _)| x.fan_out).max().unwrap_or(1);
        ArchBackward {
            gpu,
            pipes,
            moe_pipes,
            shape,
            arch,
            rows,
            params,
            jac,
            update,
            levels,
            experts,
            d_in,
            d_y: buf("dL/dy", h),
            d_y_more: buf("dL/dy of a second mixture", h),
            d_expert: buf("expert dz", rows * hidden),
            d_path: buf("dL/d(stream) of one path", h),
            d_comb: buf("dL/dG", rows * shape.experts.len()),
            d_cand: buf("dL/dlogits of an arch gate", rows * arch.per_level()),
        }
    }

    /// Where level j keeps dL/d(stream): task k's (`Some(k)`) or the shared one.
    fn slot(&self, j: usize, stream: Option<usize>) -> usize {
        if j == 0 {
            0
        } else {
            stream.unwrap_or(self.arch.tasks)
        }
    }

    /// dst = src (`first`) or dst += src.
    fn add(&self, src: &wgpu::Buffer, dst: &wgpu::Buffer, first: bool) -> Dispatch {
        let (mut p, groups) = moe_params(self.rows, self.shape, self.rows * self.shape.width);
        p.mode = u32::from(!first);
        p.act = LINEAR;
        moe_dispatch_at(self.gpu, &self.moe_pipes.accumulate, &[(18, src), (19, src), (20, dst)], &p, groups)
    }

    /// Adds src into level j's dL/d(stream) (`live` says which already hold a sum).
    fn add_into(&self, j: usize, stream: Option<usize>, src: &wgpu::Buffer, live: &mut [bool]) -> Dispatch {
        let s = self.slot(j, stream);
        let d = self.add(src, &self.d_in[j][s], !live[s]);
        live[s] = true;
        d
    }

    /// A layer's weight and bias gradient for task t, where concord-core's layout keeps it:
    /// J's row t below `shared_len`, the task's block of `update` above.
    fn weight_grad(&self, t: usize, dz: &wgpu::Buffer, input: &wgpu::Buffer, layer: &LayerDims) -> Dispatch {
        let s = self.shape.base.shared_len;
        let (out, off) = if layer.w_off < s { (self.jac, t * s + layer.w_off) } else { (self.update, layer.w_off) };
        let (p, groups) = layer.weight_grad_params(self.rows, off, true);
        Dispatch::new(self.gpu, &self.pipes.weight_grad, &[dz, input, out], bytemuck::bytes_of(&p), groups)
    }

    /// out = (dz·W) ⊙ φ'(z_prev) (`act` LINEAR: no φ', z_prev unread).
    fn backprop(
        &self,
        dz: &wgpu::Buffer,
        layer: &LayerDims,
        act: u32,
        z_prev: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> Dispatch {
        let (gx, gy) = grid(self.rows * layer.fan_in);
        let p = BackpropParams {
            rows: self.rows as u32,
            fan_in: layer.fan_in as u32,
            fan_out: layer.fan_out as u32,
            w_off: layer.w_off as u32,
            act,
            groups_x: gx,
            _pad: [0; 2],
        };
        let bound = [dz, self.params, z_prev, out];
        Dispatch::new(self.gpu, &self.pipes.backprop, &bound, bytemuck::bytes_of(&p), (gx, gy))
    }

    fn moe_dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        bound: &[(u32, &wgpu::Buffer)],
        e: usize,
        items: usize,
    ) -> Dispatch {
        let (mut p, groups) = moe_params(self.rows, self.shape, items);
        p.expert = e as u32;
        moe_dispatch_at(self.gpu, pipeline, bound, &p, groups)
    }

    /// Task t's dL/dh of its head's input → its gradients (J's row t, its block of `update`);
    /// returns the dispatches and the buffer they leave dL/da in (before the pre-layers' φ').
    pub fn task(&self, t: usize, d_h: &wgpu::Buffer) -> (Vec<Dispatch>, &wgpu::Buffer) {
        let (m, rows, w) = (self.arch.tasks, self.rows, self.shape.width);
        let mut ds = Vec::new();
        let mut d_task_out: Vec<Option<&wgpu::Buffer>> = vec![None; m];
        d_task_out[t] = Some(d_h);
        let mut d_shared_out: Option<&wgpu::Buffer> = None;
        for j in (0..self.arch.levels).rev() {
            let lv = &self.levels[j];
            let mut live = vec![false; self.d_in[j].len()];
            let input_of = |stream: Option<usize>| stream.map_or(&lv.shared_in, |k| &lv.task_in[k]);
            // The residual paths.
            for (k, d) in d_task_out.iter().enumerate() {
                if let Some(d) = d {
                    ds.push(self.add_into(j, Some(k), d, &mut live));
                }
            }
            if let Some(d) = d_shared_out {
                ds.push(self.add_into(j, None, d, &mut live));
            }
            let mut mixes: Vec<LiveMixture> = Vec::new();
            for (k, d) in d_task_out.iter().enumerate() {
                if let Some(d) = d {
                    mixes.push((Mixture::Task(k), d, &lv.task_probs[k], Some(k)));
                }
            }
            if let (Some(d), Some(p)) = (d_shared_out, &lv.shared_probs) {
                mixes.push((Mixture::Shared, d, p, None));
            }
            // Each gate: dL/dG on its candidates, the softmax backward, its parameters, its input.
            for &(mix, d, p, stream) in &mixes {
                for e in self.arch.candidates(j, mix) {
                    let bound = [(12, d), (13, &self.experts.y[e]), (14, &self.d_comb), (24, p)];
                    ds.push(self.moe_dispatch(&self.moe_pipes.dcombine, &bound, e, rows));
                }
                let n = self.shape.experts.len();
                let bufs = (p, &self.d_comb, &self.d_cand);
                ds.push(self.arch.softmax_back(self.gpu, &self.moe_pipes.arch, (j, mix), rows, n, bufs));
                let gate = self.arch.gate(j, mix);
                ds.push(self.weight_grad(t, &self.d_cand, input_of(stream), gate));
                ds.push(self.backprop(&self.d_cand, gate, LINEAR, &self.d_cand, &self.d_path));
                ds.push(self.add_into(j, stream, &self.d_path, &mut live));
            }
            // Each expert a mixture with a gradient reads: dL/dy summed over those mixtures.
            let first = j * self.arch.per_level();
            for e in first..first + self.arch.per_level() {
                let readers: Vec<&LiveMixture> =
                    mixes.iter().filter(|(mix, ..)| self.arch.candidates(j, *mix).contains(&e)).collect();
                if readers.is_empty() {
                    continue;
                }
                for (i, &&(_, d, p, _)) in readers.iter().enumerate() {
                    let dst = if i == 0 { &self.d_y } else { &self.d_y_more };
                    ds.push(self.moe_dispatch(&self.moe_pipes.scatter_dy, &[(9, d), (10, p), (11, dst)], e, rows * w));
                    if i > 0 {
                        ds.push(self.add(&self.d_y_more, &self.d_y, false));
                    }
                }
                let (hidden, out) = &self.shape.experts[e];
                let stream = self.arch.stream_of(e);
                ds.push(self.weight_grad(t, &self.d_y, &self.experts.u[e], out));
                ds.push(self.backprop(&self.d_y, out, self.shape.base.act, &self.experts.z[e], &self.d_expert));
                ds.push(self.weight_grad(t, &self.d_expert, input_of(stream), hidden));
                ds.push(self.backprop(&self.d_expert, hidden, LINEAR, &self.d_expert, &self.d_path));
                ds.push(self.add_into(j, stream, &self.d_path, &mut live));
            }
            if j > 0 {
                let slots = &self.d_in[j];
                d_task_out = (0..m).map(|k| live[k].then_some(&slots[k])).collect();
                d_shared_out = live[m].then_some(&slots[m]);
            }
        }
        (ds, &self.d_in[0][0])
    }
}

const RW: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// `shaders/moe_arch.wgsl`'s ArchParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ArchParams {
    rows: u32,
    experts: u32,
    cands: u32,
    shared_experts: u32,
    task_experts: u32,
    task: u32,
    groups_x: u32,
    level_off: u32,
}

/// The `moe_arch.wgsl` pipelines.
pub(crate) struct ArchPipelines {
    softmax: wgpu::ComputePipeline,
    softmax_back: wgpu::ComputePipeline,
}

impl ArchPipelines {
    pub fn new(gpu: &Gpu) -> Self {
        ArchPipelines {
            softmax: gpu.create_pipeline("moe_arch.wgsl", "arch_softmax"),
            softmax_back: gpu.create_pipeline("moe_arch.wgsl", "arch_softmax_back"),
        }
    }
}
