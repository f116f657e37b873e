//! A GPU MoE step's record (`MoeStepRecord`, what the CPU trainer keeps on each recorded step):
//! routing statistics and the task-gradient cosine inside each expert.
//!
//! On a recorded step only, right after the backward pass (before a loss weighting scales J or
//! SAM's second pass overwrites the buffers), [`MoeRecordPlan::record`] copies each gate
//! group's clean logits, a selecting router's combine | dispatch | dropped and noisy top-k's raw
//! noise logits into the chunk's staging buffer, with one m × m Gramian per expert over its
//! columns of J (`shaders/moe_expert_gram.wgsl`). [`MoeRecordPlan::decode`] rebuilds each
//! group's `Routing` on the host (`Moe::routing_from_backend`: the probabilities from the
//! logits and ε from the host's draw, as the CPU computes them; the choices are the GPU's own)
//! and takes the statistics and cosines with concord-core's code (`Moe::routing_stats`,
//! `cosine_from_gram`), so the CPU and GPU records come from one code path.
//!
//! Per recorded step this reads back groups × (T·E logits [+ 2·T·E + E choices] [+ T·E noise
//! logits]) + E·m² floats; unrecorded steps copy nothing.

use bytemuck::{Pod, Zeroable};
use concord_core::metrics::cosine_from_gram;
use concord_core::model::moe::{BackendChoice, Moe};
use concord_core::train::MoeStepRecord;
use nalgebra::DMatrix;

use super::mlp::Dispatch;
use super::moe_train::MoeShape;
use crate::Gpu;

/// `shaders/moe_expert_gram.wgsl`'s ExpertGramParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct ExpertGramParams {
    m: u32,
    n: u32,
    experts: u32,
    _pad: u32,
}

/// One gate group's routing buffers in the training pass (`MoeForward::routing_outputs`).
pub(crate) struct RoutingOutputs {
    /// T × E clean gate logits.
    pub logits: wgpu::Buffer,
    /// A selecting router's combine T × E | dispatch T × E | dropped per expert E.
    pub chosen: Option<wgpu::Buffer>,
    /// Noisy top-k's raw noise logits T × E.
    pub raw: Option<wgpu::Buffer>,
}

/// The copies and the per-expert Gramian of a recorded step, built once per trainer.
pub(crate) struct MoeRecordPlan {
    groups: Vec<RoutingOutputs>,
    rows: usize,
    experts: usize,
    tasks: usize,
    gram: Dispatch,
    /// E × m × m, row-major per expert.
    grams: wgpu::Buffer,
}

impl MoeRecordPlan {
    /// `outputs`: the training forward pass's routing buffers over `rows` batch rows; `jac`: the
    /// m × shared_len Jacobian its backward pass fills.
    pub fn new(
        gpu: &Gpu,
        moe: &Moe,
        shape: &MoeShape,
        outputs: Vec<RoutingOutputs>,
        rows: usize,
        jac: &wgpu::Buffer,
    ) -> Self {
        let (m, n, e) = (shape.base.num_tasks(), shape.base.shared_len, shape.experts.len());
        let blocks: Vec<u32> =
            moe.layout().experts.iter().flat_map(|x| [x.range().start as u32, x.range().end as u32]).collect();
        let blocks =
            gpu.storage_init("expert column blocks", bytemuck::cast_slice(&blocks), wgpu::BufferUsages::empty());
        let grams = gpu.buffer(
            "expert grams",
            (e * m * m * 4) as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        let params = ExpertGramParams { m: m as u32, n: n as u32, experts: e as u32, _pad: 0 };
        let pipeline = gpu.create_pipeline("moe_expert_gram.wgsl", "moe_expert_gram");
        let gram = Dispatch::new(
            gpu,
            &pipeline,
            &[jac, &blocks, &grams],
            bytemuck::bytes_of(&params),
            ((m * m) as u32, e as u32),
        );
        MoeRecordPlan { groups: outputs, rows, experts: e, tasks: m, gram, grams }
    }

    /// Floats one recorded step takes in the staging buffer.
    pub fn floats(&self) -> usize {
        let te = self.rows * self.experts;
        let group: usize = self
            .groups
            .iter()
            .map(|g| te + g.chosen.as_ref().map_or(0, |_| 2 * te + self.experts) + g.raw.as_ref().map_or(0, |_| te))
            .sum();
        group + self.experts * self.tasks * self.tasks
    }

    /// The per-expert Gramians of the step's J, then every piece into `dst` from float `at` on.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, dst: &wgpu::Buffer, at: usize) {
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("expert grams"),
                timestamp_writes: None,
            });
            self.gram.record(&mut pass);
        }
        let te = self.rows * self.experts;
        let mut at = at;
        let mut copy = |src: &wgpu::Buffer, floats: usize| {
            encoder.copy_buffer_to_buffer(src, 0, dst, (at * 4) as u64, (floats * 4) as u64);
            at += floats;
        };
        for g in &self.groups {
            copy(&g.logits, te);
            if let Some(c) = &g.chosen {
                copy(c, 2 * te + self.experts);
            }
            if let Some(r) = &g.raw {
                copy(r, te);
            }
        }
        copy(&self.grams, self.experts * self.tasks * self.tasks);
    }

    /// The step's record from its [`MoeRecordPlan::floats`] floats (`noise_seed`: the step's
    /// routing noise, as the CPU trainer draws it).
    pub fn decode(&self, moe: &Moe, data: &[f32], noise_seed: u64) -> MoeStepRecord {
        let (t, e, m) = (self.rows, self.experts, self.tasks);
        let mut at = 0;
        let mut take = |len: usize| {
            let s: Vec<f64> = data[at..at + len].iter().map(|&v| f64::from(v)).collect();
            at += len;
            s
        };
        let mut routings = Vec::with_capacity(self.groups.len());
        for (g, out) in self.groups.iter().enumerate() {
            let logits = DMatrix::from_row_slice(t, e, &take(t * e));
            let choice = out.chosen.as_ref().map(|_| {
                let combine = DMatrix::from_row_slice(t, e, &take(t * e));
                let dispatch = DMatrix::from_row_slice(t, e, &take(t * e));
                let dropped = take(e).iter().map(|&d| d.round() as usize).sum();
                BackendChoice { combine, dispatch, dropped }
            });
            let raw = out.raw.as_ref().map(|_| DMatrix::from_row_slice(t, e, &take(t * e)));
            routings.push(moe.routing_from_backend(g, logits, raw, Some(noise_seed), choice));
        }
        let grams = take(e * m * m);
        MoeStepRecord {
            routing: moe.routing_stats(&routings),
            expert_cosine: grams.chunks(m * m).map(|g| cosine_from_gram(&DMatrix::from_row_slice(m, m, g))).collect(),
        }
    }
}

/// The routing-noise seed of training step `step` (the CPU trainer's: a fresh, reproducible
/// draw per step).
pub(crate) fn step_noise_seed(seed: u64, step: usize) -> u64 {
    seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
