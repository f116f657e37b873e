//! CGC (concord-core `model/moe/cgc.rs` on `extraction.rs`) on the MoE training graph
//! (`kernels::moe_train`): one level whose experts all read the block input a, the block's
//! experts numbered [shared; task 0's; …; task m−1's], and one gate group per task whose gate —
//! an `nn.Linear` with bias, task-owned — mixes [shared; its own] by a softmax.
//!
//! The gate's logits run on the MLP's dense kernel; `shaders/moe_arch.wgsl` takes the softmax
//! and spreads it over every expert (0 on the other tasks' experts), so the block's mix, dL/dG
//! and expert backprop kernels run on it as on MMoE's probabilities; only each task's candidates
//! are mixed and backpropagated. Gradients land as the CPU lays them out: the shared experts and
//! pre-layers in J's row, the gate and the task's own experts (with the head) in the task's
//! block of `update`.

use bytemuck::{Pod, Zeroable};
use concord_core::model::moe::{Moe, RouterKind};

use super::mlp::{grid, Dispatch, MlpPipelines};
use super::mlp_graph::LayerDims;
use crate::Gpu;

/// A CGC model as the training graph sees it.
#[derive(Clone, Debug)]
pub(crate) struct CgcShape {
    pub shared: usize,
    pub task_experts: usize,
    /// Task t's gate: width → shared + task_experts, with bias.
    pub gates: Vec<LayerDims>,
}

impl CgcShape {
    /// `Some` for a CGC model.
    pub fn of(moe: &Moe) -> Option<Self> {
        let RouterKind::Cgc { task_experts } = moe.config().router else { return None };
        let gates = moe.task_gate_layers().iter().map(|levels| LayerDims::from(&levels[0].0)).collect();
        Some(CgcShape { shared: moe.config().experts, task_experts, gates })
    }

    /// The block's experts task t's gate mixes, in its candidate order.
    pub fn candidates(&self, t: usize) -> Vec<usize> {
        let own = self.shared + t * self.task_experts;
        (0..self.shared).chain(own..own + self.task_experts).collect()
    }

    /// Whether expert e is a task's own (its gradient goes to `update`, not J).
    pub fn owned(&self, e: usize) -> bool {
        e >= self.shared
    }

    fn params(&self, t: usize, rows: usize, experts: usize, items: usize) -> (ArchParams, (u32, u32)) {
        let g = grid(items);
        let p = ArchParams {
            rows: rows as u32,
            experts: experts as u32,
            cands: (self.shared + self.task_experts) as u32,
            shared_experts: self.shared as u32,
            task_experts: self.task_experts as u32,
            task: t as u32,
            groups_x: g.0,
            _pad: 0,
        };
        (p, g)
    }

    /// Task t's gate on a (rows × width): logits (rows × candidates) on the dense kernel, then
    /// the spread softmax into `probs` (rows × experts).
    #[allow(clippy::too_many_arguments)]
    pub fn gate_forward(
        &self,
        gpu: &Gpu,
        pipes: &MlpPipelines,
        arch: &ArchPipelines,
        t: usize,
        rows: usize,
        experts: usize,
        (a, params, probs): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
    ) -> Vec<Dispatch> {
        let gate = &self.gates[t];
        let logits = gpu.buffer("cgc gate logits", (rows * gate.fan_out * 4) as u64, RW);
        let unused = gpu.buffer("unused activation", 4, RW);
        let (dp, groups) = gate.dense_params(rows, 4, false);
        let dense =
            Dispatch::new(gpu, &pipes.dense_forward, &[a, params, &logits, &unused], bytemuck::bytes_of(&dp), groups);
        let (p, groups) = self.params(t, rows, experts, rows);
        let softmax = Dispatch::with_bindings(
            gpu,
            &arch.softmax,
            &[(1, &logits), (2, probs)],
            &[(0, bytemuck::bytes_of(&p))],
            groups,
        );
        vec![dense, softmax]
    }

    /// dL/dG (rows × experts, spread) → dL/dlogits of task t's gate (rows × candidates) into
    /// `d_logits`.
    #[allow(clippy::too_many_arguments)]
    pub fn softmax_back(
        &self,
        gpu: &Gpu,
        arch: &ArchPipelines,
        t: usize,
        rows: usize,
        experts: usize,
        (probs, d_comb, d_logits): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
    ) -> Dispatch {
        let (p, groups) = self.params(t, rows, experts, rows * (self.shared + self.task_experts));
        Dispatch::with_bindings(
            gpu,
            &arch.softmax_back,
            &[(3, probs), (4, d_comb), (5, d_logits)],
            &[(0, bytemuck::bytes_of(&p))],
            groups,
        )
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
    _pad: u32,
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
