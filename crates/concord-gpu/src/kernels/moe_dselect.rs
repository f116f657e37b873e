//! DSelect-k (concord-core `model/moe/dselect_k.rs` on `extraction.rs`) on the MoE training
//! graph (`kernels::moe_train`): one level of shared experts that all read the block input a,
//! and per task a gate of two task-owned `nn.Linear`s with bias — the selector inputs
//! z: width → k·b and the selector weights w: width → k — on the MLP's dense kernel.
//! `shaders/moe_dselect.wgsl` turns them into q over the experts, which the block's mix, dL/dG
//! and expert backprop kernels read as MMoE's probabilities, and takes dL/dq back to dL/dz and
//! dL/dw. The gates' gradients land in their task's block of `update`, dL/da through them in the
//! pre-layers' row of J, as the CPU lays them out.
//!
//! The regularisers — Σ_l 1/Σ_{i<N} r_i when N is not a power of 2 (always on, weight 1) and
//! λ·selector entropy when λ = `aux.entropy` ≠ 0 — are the step's aux gradient: over *every*
//! parameter (the z layers are task-owned), added to the update after the aggregator as the CPU
//! trainer's `combine` adds `Extraction::regularisers`' gradient.

use bytemuck::{Pod, Zeroable};
use concord_core::model::moe::{dselect_k, Moe, RouterKind};

use super::mlp::{grid, BackpropParams, Dispatch, MlpPipelines};
use super::mlp_graph::LayerDims;
use super::moe_aux::{add, zero, MoeAuxPipelines};
use super::moe_train::{MoeForward, MoeShape};
use crate::Gpu;

const RW: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// Linear: the dense and backprop kernels' code for "no activation".
const LINEAR: u32 = 4;

/// A DSelect-k model as the training graph sees it.
#[derive(Clone, Debug)]
pub(crate) struct DselectShape {
    k: usize,
    /// b = ⌈log₂N⌉ selector bits per choice (0 for one expert: no z layer weights).
    bits: usize,
    gamma: f64,
    /// λ of the selector entropy.
    entropy: f64,
    /// Task t's selector layer z and selector-weight layer w.
    gates: Vec<(LayerDims, LayerDims)>,
}

/// One task gate's forward buffers, which its backward and the regularisers read.
pub(crate) struct DselectGate {
    /// rows × k·b selector inputs (one unused float when b = 0).
    z: wgpu::Buffer,
    /// rows × k selector weights.
    w: wgpu::Buffer,
}

impl DselectShape {
    /// `Some` for a DSelect-k model.
    pub fn of(moe: &Moe) -> Option<Self> {
        let RouterKind::DselectK { k, gamma } = moe.config().router else { return None };
        let gates = moe
            .task_gate_layers()
            .iter()
            .map(|levels| {
                let (z, w) = levels.first()?;
                Some((LayerDims::from(z), LayerDims::from(w.as_ref()?)))
            })
            .collect::<Option<Vec<_>>>()?;
        let bits = dselect_k::selector_bits(moe.config().experts);
        Some(DselectShape { k, bits, gamma, entropy: moe.config().aux.entropy, gates })
    }

    /// Whether N is not a power of 2, so the missing-mass term is on.
    fn missing_mass(&self, experts: usize) -> bool {
        self.bits > 0 && !experts.is_power_of_two()
    }

    /// Whether the regularisers have a gradient (`Extraction::regularisers` adds 0 otherwise).
    pub fn has_regulariser(&self, experts: usize) -> bool {
        self.bits > 0 && (self.missing_mass(experts) || self.entropy != 0.0)
    }

    fn params(&self, rows: usize, experts: usize) -> (DselectParams, (u32, u32)) {
        let g = grid(rows);
        let p = DselectParams {
            rows: rows as u32,
            experts: experts as u32,
            k: self.k as u32,
            bits: self.bits as u32,
            groups_x: g.0,
            missing: u32::from(self.missing_mass(experts)),
            gamma: self.gamma as f32,
            entropy: self.entropy as f32,
            tokens: rows as f32,
            back_w: 0,
            _pad: [0; 2],
        };
        (p, g)
    }

    /// Task t's gate on a (rows × width): z and w on the dense kernel, then q into `q`
    /// (rows × experts).
    #[allow(clippy::too_many_arguments)]
    pub fn gate_forward(
        &self,
        gpu: &Gpu,
        pipes: &MlpPipelines,
        ds: &DselectPipelines,
        t: usize,
        rows: usize,
        experts: usize,
        (a, params, q): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
    ) -> (DselectGate, Vec<Dispatch>) {
        let (z_layer, w_layer) = &self.gates[t];
        let z = gpu.buffer("dselect selector inputs z", (rows * z_layer.fan_out).max(1) as u64 * 4, RW);
        let w = gpu.buffer("dselect selector weights w", (rows * w_layer.fan_out * 4) as u64, RW);
        let unused = gpu.buffer("unused activation", 4, RW);
        let mut dispatches = Vec::new();
        for (layer, out) in [(z_layer, &z), (w_layer, &w)] {
            if layer.fan_out > 0 {
                let (dp, groups) = layer.dense_params(rows, LINEAR, false);
                dispatches.push(Dispatch::new(
                    gpu,
                    &pipes.dense_forward,
                    &[a, params, out, &unused],
                    bytemuck::bytes_of(&dp),
                    groups,
                ));
            }
        }
        let (p, groups) = self.params(rows, experts);
        dispatches.push(Dispatch::with_bindings(
            gpu,
            &ds.gate,
            &[(1, &z), (2, &w), (3, q)],
            &[(0, bytemuck::bytes_of(&p))],
            groups,
        ));
        (DselectGate { z, w }, dispatches)
    }

    /// dL/dq (rows × experts) → task t's gate layers with their dL/d(output): the backward
    /// dispatch, and (layer, dL/dz) then (layer, dL/dw) — z left out when it has no outputs.
    #[allow(clippy::too_many_arguments)]
    pub fn gate_backward(
        &self,
        gpu: &Gpu,
        ds: &DselectPipelines,
        t: usize,
        rows: usize,
        experts: usize,
        gate: &DselectGate,
        d_q: &wgpu::Buffer,
    ) -> (Vec<Dispatch>, Vec<(LayerDims, wgpu::Buffer)>) {
        let (z_layer, w_layer) = &self.gates[t];
        let d_z = gpu.buffer("dselect dL/dz", (rows * z_layer.fan_out).max(1) as u64 * 4, RW);
        let d_w = gpu.buffer("dselect dL/dw", (rows * w_layer.fan_out * 4) as u64, RW);
        let (mut p, groups) = self.params(rows, experts);
        let mut back = Vec::new();
        for (flag, out) in [(0, &d_z), (1, &d_w)] {
            p.back_w = flag;
            back.push(Dispatch::with_bindings(
                gpu,
                &ds.gate_back,
                &[(1, &gate.z), (2, &gate.w), (4, d_q), (5, out)],
                &[(0, bytemuck::bytes_of(&p))],
                groups,
            ));
        }
        let mut grads = Vec::new();
        if z_layer.fan_out > 0 {
            grads.push((*z_layer, d_z));
        }
        grads.push((*w_layer, d_w));
        (back, grads)
    }
}

/// The dispatches that write the regularisers' gradient over every parameter into `out`
/// (total_len floats; 0 outside the z layers and the pre-layers), from `fwd`'s gates:
/// `Extraction::regularisers`, then `pre_backward` of the summed dL/da.
#[allow(clippy::too_many_arguments)]
pub(crate) fn regulariser_dispatches(
    gpu: &Gpu,
    pipes: &MlpPipelines,
    aux_pipes: &MoeAuxPipelines,
    shape: &MoeShape,
    ds: &DselectShape,
    fwd: &MoeForward,
    (x, params): (&wgpu::Buffer, &wgpu::Buffer),
    out: &wgpu::Buffer,
) -> Vec<Dispatch> {
    let ds_pipes = DselectPipelines::new(gpu);
    let rows = fwd.graph.rows;
    let (h_w, n) = (shape.width, shape.experts.len());
    let buf = |label: &str, len: usize| gpu.buffer(label, (len.max(1) * 4) as u64, RW);
    let a = fwd.graph.act.last().unwrap_or(x);
    let n_pre = shape.base.trunk.len();
    let backprop = |dz: &wgpu::Buffer, l: &LayerDims, z_prev: &wgpu::Buffer, dst: &wgpu::Buffer| {
        let (gx, gy) = grid(rows * l.fan_in);
        let p = BackpropParams {
            rows: rows as u32,
            fan_in: l.fan_in as u32,
            fan_out: l.fan_out as u32,
            w_off: l.w_off as u32,
            act: shape.base.act,
            groups_x: gx,
            _pad: [0; 2],
        };
        Dispatch::new(gpu, &pipes.backprop, &[dz, params, z_prev, dst], bytemuck::bytes_of(&p), (gx, gy))
    };
    let weight_grad = |dz: &wgpu::Buffer, input: &wgpu::Buffer, l: &LayerDims| {
        let (p, groups) = l.weight_grad_params(rows, l.w_off, true);
        Dispatch::new(gpu, &pipes.weight_grad, &[dz, input, out], bytemuck::bytes_of(&p), groups)
    };
    let mut dispatches = vec![zero(gpu, aux_pipes, out, shape.base.total_len)];
    let d_pre: Vec<wgpu::Buffer> =
        shape.base.trunk.iter().map(|l| buf("dselect regulariser pre dz", rows * l.fan_out)).collect();
    let d_path = buf("dselect regulariser dL/da of one gate", rows * h_w);
    if n_pre > 0 {
        dispatches.push(zero(gpu, aux_pipes, &d_pre[n_pre - 1], rows * h_w));
    }
    let (p, groups) = ds.params(rows, n);
    for (gate, (z_layer, _)) in fwd.dselect_gates().iter().zip(&ds.gates) {
        if z_layer.fan_out == 0 {
            continue;
        }
        let d_z = buf("dselect regulariser dL/dz", rows * z_layer.fan_out);
        dispatches.push(Dispatch::with_bindings(
            gpu,
            &ds_pipes.regulariser_back,
            &[(1, &gate.z), (7, &d_z)],
            &[(0, bytemuck::bytes_of(&p))],
            groups,
        ));
        dispatches.push(weight_grad(&d_z, a, z_layer));
        if n_pre > 0 {
            dispatches.push(backprop(&d_z, z_layer, &fwd.graph.pre[n_pre - 1], &d_path));
            dispatches.push(add(gpu, aux_pipes, &d_path, &d_pre[n_pre - 1], 0, rows * h_w));
        }
    }
    for l in (0..n_pre).rev() {
        let layer = &shape.base.trunk[l];
        let input = if l == 0 { x } else { &fwd.graph.act[l - 1] };
        dispatches.push(weight_grad(&d_pre[l], input, layer));
        if l > 0 {
            dispatches.push(backprop(&d_pre[l], layer, &fwd.graph.pre[l - 1], &d_pre[l - 1]));
        }
    }
    dispatches
}

/// `shaders/moe_dselect.wgsl`'s DselectParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct DselectParams {
    rows: u32,
    experts: u32,
    k: u32,
    bits: u32,
    groups_x: u32,
    missing: u32,
    gamma: f32,
    entropy: f32,
    tokens: f32,
    back_w: u32,
    _pad: [u32; 2],
}

/// The `moe_dselect.wgsl` pipelines.
pub(crate) struct DselectPipelines {
    gate: wgpu::ComputePipeline,
    gate_back: wgpu::ComputePipeline,
    regulariser_back: wgpu::ComputePipeline,
}

impl DselectPipelines {
    pub fn new(gpu: &Gpu) -> Self {
        DselectPipelines {
            gate: gpu.create_pipeline("moe_dselect.wgsl", "dselect_gate"),
            gate_back: gpu.create_pipeline("moe_dselect.wgsl", "dselect_gate_back"),
            regulariser_back: gpu.create_pipeline("moe_dselect.wgsl", "dselect_regulariser_back"),
        }
    }
}
