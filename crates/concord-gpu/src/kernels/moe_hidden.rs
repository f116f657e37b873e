//! An MoE model's hidden activations on the GPU — the twin of concord-core's
//! `Moe::hidden_activations` (pre-layers, then each expert's hidden layer) — for the network
//! view's neuron thumbnails and its enlarged map, recorded after the grid forward pass of a
//! `GpuTrainer` that trains the MoE (the dense routers, `kernels::moe_train`).
//!
//! No kernel of its own: the grid forward graph already holds every pre-layer's φ(z) for all
//! rows (`ForwardGraph::act`), so the pre-layers are gathered as the MLP's trunk is
//! (`mlp_gather.wgsl`). The experts' hidden φ(z) live in `MoeForward`'s own buffers, which the
//! graph does not hand out; rather than reach into the training graph, the expert hidden layers
//! are run again with `mlp_dense_forward.wgsl` on the gathered block input `a` at the thumbnail
//! rows only (rows × H × expert_hidden per expert: a few thousand multiply-adds), or at every
//! row for one expert neuron's full-resolution map. Every row, routed to the expert or not, as
//! concord-core computes it: the map of what the neuron would say there. PLE's level-2 experts
//! read level 1's mixtures, not a: for it the levels' forward (`kernels::moe_arch`) runs again
//! on those rows, as `Extraction::expert_activations` does.

use super::mlp::{grid, Dispatch, GatherParams, MlpPipelines};
use super::mlp_graph::{ForwardGraph, LayerDims};
use super::moe_arch::ExpertBuffers;
use super::moe_train::{MoeShape, MoeTrainPipelines};
use crate::Gpu;

const RW: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// The widths of `Moe::hidden_activations`' matrices: each pre-layer, then each expert's hidden.
pub(crate) fn hidden_widths(shape: &MoeShape) -> Vec<usize> {
    shape.base.trunk.iter().map(|l| l.fan_out).chain(shape.experts.iter().map(|(h, _)| h.fan_out)).collect()
}

/// The expert block's input `a` of a forward graph: the last pre-layer's φ(z), else the inputs
/// `x`, and its width.
fn block_input<'a>(shape: &MoeShape, fwd: &'a ForwardGraph, x: &'a wgpu::Buffer) -> (&'a wgpu::Buffer, usize) {
    match (fwd.act.last(), shape.base.trunk.last()) {
        (Some(a), Some(l)) => (a, l.fan_out),
        _ => (x, shape.base.input_dim),
    }
}

fn gather(
    gpu: &Gpu,
    pipes: &MlpPipelines,
    src: &wgpu::Buffer,
    idx: &wgpu::Buffer,
    rows: usize,
    width: usize,
) -> (Dispatch, wgpu::Buffer) {
    let out = gpu.buffer("moe hidden gather", (rows * width * 4) as u64, RW);
    let (gx, gy) = grid(rows * width);
    let p = GatherParams { rows: rows as u32, width: width as u32, idx_off: 0, groups_x: gx };
    (Dispatch::new(gpu, &pipes.gather, &[src, idx, &out], bytemuck::bytes_of(&p), (gx, gy)), out)
}

/// φ(W·a + b) of `layer` over `rows` rows of `input`, stored in the returned buffer.
fn dense_act(
    gpu: &Gpu,
    pipes: &MlpPipelines,
    input: &wgpu::Buffer,
    params: &wgpu::Buffer,
    layer: &LayerDims,
    act: u32,
    rows: usize,
) -> (Dispatch, wgpu::Buffer) {
    let z = gpu.buffer("moe hidden z", (rows * layer.fan_out * 4) as u64, RW);
    let a = gpu.buffer("moe hidden act", (rows * layer.fan_out * 4) as u64, RW);
    let (p, groups) = layer.dense_params(rows, act, true);
    (Dispatch::new(gpu, &pipes.dense_forward, &[input, params, &z, &a], bytemuck::bytes_of(&p), groups), a)
}

/// Every expert's hidden φ(z) over `rows` rows of the block input `a`, each on the stream it reads:
/// a itself, or (PLE) its level's task or shared stream.
#[allow(clippy::too_many_arguments)]
fn expert_hidden(
    gpu: &Gpu,
    pipes: &MlpPipelines,
    moe_pipes: &MoeTrainPipelines,
    shape: &MoeShape,
    a: &wgpu::Buffer,
    params: &wgpu::Buffer,
    rows: usize,
) -> (Vec<Dispatch>, Vec<wgpu::Buffer>) {
    if let Some(arch) = shape.arch.as_ref().filter(|arch| arch.levels > 1) {
        let buf = |label: &str, len: usize| gpu.buffer(label, (len * 4) as u64, RW);
        let z: Vec<wgpu::Buffer> = shape.experts.iter().map(|(h, _)| buf("moe hidden z", rows * h.fan_out)).collect();
        let u: Vec<wgpu::Buffer> = shape.experts.iter().map(|(h, _)| buf("moe hidden act", rows * h.fan_out)).collect();
        let y: Vec<wgpu::Buffer> = shape.experts.iter().map(|(_, o)| buf("moe hidden y", rows * o.fan_out)).collect();
        let experts = ExpertBuffers { z: &z, u: &u, y: &y };
        let (_, _, dispatches) = arch.forward(gpu, pipes, moe_pipes, shape, rows, (a, params), &experts);
        return (dispatches, u);
    }
    shape.experts.iter().map(|(hidden, _)| dense_act(gpu, pipes, a, params, hidden, shape.base.act, rows)).unzip()
}

/// The dispatches that fill one rows.len() × width buffer per matrix of
/// `Moe::hidden_activations` at the rows `rows` of the forward graph `fwd` over the inputs `x`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gather_at_rows(
    gpu: &Gpu,
    pipes: &MlpPipelines,
    moe_pipes: &MoeTrainPipelines,
    shape: &MoeShape,
    fwd: &ForwardGraph,
    x: &wgpu::Buffer,
    params: &wgpu::Buffer,
    rows: &[u32],
) -> (Vec<Dispatch>, Vec<wgpu::Buffer>) {
    let n = rows.len();
    let idx = gpu.storage_init("thumbnail rows", bytemuck::cast_slice(rows), wgpu::BufferUsages::empty());
    let (mut dispatches, mut outs) = (Vec::new(), Vec::new());
    for (act, layer) in fwd.act.iter().zip(&shape.base.trunk) {
        let (d, out) = gather(gpu, pipes, act, &idx, n, layer.fan_out);
        dispatches.push(d);
        outs.push(out);
    }
    // The block input at those rows, then each expert's hidden layer on it.
    let (a, width) = block_input(shape, fwd, x);
    let (d, a_rows) = gather(gpu, pipes, a, &idx, n, width);
    dispatches.push(d);
    let (d, experts) = expert_hidden(gpu, pipes, moe_pipes, shape, &a_rows, params, n);
    dispatches.extend(d);
    outs.extend(experts);
    (dispatches, outs)
}

/// The dispatches that write matrix `at.0`'s column `at.1` of `Moe::hidden_activations` at
/// every row of `fwd` into the returned buffer (rows floats). `at` was checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(crate) fn neuron_column(
    gpu: &Gpu,
    pipes: &MlpPipelines,
    moe_pipes: &MoeTrainPipelines,
    shape: &MoeShape,
    fwd: &ForwardGraph,
    x: &wgpu::Buffer,
    params: &wgpu::Buffer,
    at: (usize, usize),
) -> (Vec<Dispatch>, wgpu::Buffer) {
    let rows = fwd.rows;
    let (l, j) = at;
    let pre = shape.base.trunk.len();
    let mut dispatches = Vec::new();
    let (src, width) = if l < pre {
        (fwd.act[l].clone(), shape.base.trunk[l].fan_out)
    } else {
        let (a, _) = block_input(shape, fwd, x);
        let e = l - pre;
        let hidden = &shape.experts[e].0;
        if shape.arch.as_ref().is_some_and(|arch| arch.levels > 1) {
            let (d, mut u) = expert_hidden(gpu, pipes, moe_pipes, shape, a, params, rows);
            dispatches.extend(d);
            (u.swap_remove(e), hidden.fan_out)
        } else {
            let (d, u) = dense_act(gpu, pipes, a, params, hidden, shape.base.act, rows);
            dispatches.push(d);
            (u, hidden.fan_out)
        }
    };
    // dst[r] = src[r·width + j]: the gather with width 1 and flat indices.
    let flat: Vec<u32> = (0..rows).map(|r| (r * width + j) as u32).collect();
    let idx = gpu.storage_init("neuron rows", bytemuck::cast_slice(&flat), wgpu::BufferUsages::empty());
    let (d, out) = gather(gpu, pipes, &src, &idx, rows, 1);
    dispatches.push(d);
    (dispatches, out)
}
