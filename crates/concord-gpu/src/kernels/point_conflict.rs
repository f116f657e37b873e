//! The per-point conflict map on the GPU: every point's m × m Gram of its per-task gradients of
//! the shared (trunk) parameters, the twin of concord-core's `Mlp::point_grams`
//! (`model/point_conflict.rs`, whose doc has the formula).
//!
//! `PointGraph` chains three kernels after a `ForwardGraph` (`super::mlp_graph`) over the same
//! rows (which gives each trunk layer's z and φ(z) and the head outputs):
//!
//! 1. `point_out_grad.wgsl`, per head: dφ_t/do per row (own prediction, output, or the loss at
//!    the target table's labels), not divided by the batch size;
//! 2. `point_backprop.wgsl`: the head's delta into task slot t of a point-major delta stack
//!    D (rows × m × width), then layer by layer down the trunk for all m tasks at once
//!    (two stacks, used in turn);
//! 3. `point_gram.wgsl`, per trunk layer l (top first): `G[b] += (δ_l^s·δ_l^t)(‖a_{l−1}‖² + 1)`.
//!
//! No per-point gradient vector exists anywhere: the largest buffers are the two delta stacks,
//! rows · m · max width floats each. Everything is recorded into the caller's compute pass, so
//! a refresh (forward + this graph + the read-back) is one queue submission.
//!
//! [`point_grams`] runs it once for any model and parameters (the parity tests use it);
//! `GpuTrainer::point_grams` keeps the graph for repeated calls at the trainer's parameters.

use bytemuck::{Pod, Zeroable};
use concord_core::model::{Mlp, PointGradient, PointGrams, Target};
use nalgebra::DMatrix;

use super::mlp::{grid, Dispatch, MlpPipelines};
use super::mlp_graph::{matrix_f32, ForwardGraph, ModelShape};
use crate::{Gpu, GpuError};

const RW: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// `shaders/point_out_grad.wgsl`'s PointOutParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct PointOutParams {
    pub rows: u32,
    pub k: u32,
    pub kind: u32,
    pub mode: u32,
    pub y_stride: u32,
    pub y_col: u32,
    pub groups_x: u32,
    pub _pad: u32,
}

/// `shaders/point_backprop.wgsl`'s PointBackpropParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct PointBackpropParams {
    pub rows: u32,
    pub fan_in: u32,
    pub fan_out: u32,
    pub w_off: u32,
    pub act: u32,
    pub count: u32,
    pub in_tasks: u32,
    pub in_t0: u32,
    pub out_tasks: u32,
    pub out_t0: u32,
    pub groups_x: u32,
    pub _pad: u32,
}

/// `shaders/point_gram.wgsl`'s PointGramParams.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct PointGramParams {
    pub rows: u32,
    pub tasks: u32,
    pub width: u32,
    pub fan_in: u32,
    pub accumulate: u32,
    pub groups_x: u32,
    pub _pad: [u32; 2],
}

/// The kernel's mode code (`point_out_grad.wgsl`).
fn mode_code(how: PointGradient) -> u32 {
    match how {
        PointGradient::OwnPrediction => 0,
        PointGradient::Output => 1,
        PointGradient::Loss => 2,
    }
}

/// The three compiled `point_*` pipelines.
pub(crate) struct PointPipelines {
    out_grad: wgpu::ComputePipeline,
    backprop: wgpu::ComputePipeline,
    gram: wgpu::ComputePipeline,
}

impl PointPipelines {
    pub fn new(gpu: &Gpu) -> Self {
        let make = |file, entry| gpu.create_pipeline(file, entry);
        PointPipelines {
            out_grad: make("point_out_grad.wgsl", "point_out_grad"),
            backprop: make("point_backprop.wgsl", "point_backprop"),
            gram: make("point_gram.wgsl", "point_gram"),
        }
    }
}

/// `Unsupported` when the model has no trunk (nothing shared) or the delta stacks of `rows`
/// points would not fit one storage binding.
pub(crate) fn check_point_shape(gpu: &Gpu, shape: &ModelShape, rows: usize) -> Result<(), GpuError> {
    if shape.trunk.is_empty() {
        return Err(GpuError::Unsupported("a model without hidden layers has no shared parameters".into()));
    }
    let width = shape.trunk.iter().map(|l| l.fan_out).max().unwrap_or(1);
    let m = shape.num_tasks();
    gpu.check_binding_size("the per-point delta stack", (rows * m * width * 4) as u64)?;
    gpu.check_binding_size("the per-point Grams", (rows * m * m * 4) as u64)?;
    // Every kernel invocation index is a u32.
    if rows.checked_mul(m * width.max(m)).is_none_or(|n| n > u32::MAX as usize / 2) {
        return Err(GpuError::Unsupported(format!("{rows} points are too many for one conflict map")));
    }
    Ok(())
}

/// The backward passes and Gram accumulation of the conflict map, after a forward graph.
pub(crate) struct PointGraph {
    pub rows: usize,
    pub m: usize,
    /// rows × m × m, row-major per point.
    pub grams: wgpu::Buffer,
    pub dispatches: Vec<Dispatch>,
}

impl PointGraph {
    /// `x` and `y` are the forward graph's inputs and target table (the labels are read in
    /// `PointGradient::Loss` mode only); `params` the flat parameter vector.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        pipes: &PointPipelines,
        shape: &ModelShape,
        fwd: &ForwardGraph,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        params: &wgpu::Buffer,
        how: PointGradient,
    ) -> Self {
        let rows = fwd.rows;
        let m = shape.num_tasks();
        let n_layers = shape.trunk.len();
        let width = shape.trunk.iter().map(|l| l.fan_out).max().unwrap_or(1);
        let stacks = [
            gpu.buffer("point deltas A", (rows * m * width * 4) as u64, RW),
            gpu.buffer("point deltas B", (rows * m * width * 4) as u64, RW),
        ];
        let grams = gpu.buffer("point grams", (rows * m * m * 4) as u64, RW);
        let mut dispatches = Vec::new();
        let backprop = |din: &wgpu::Buffer, dout: &wgpu::Buffer, p: PointBackpropParams, zprev: &wgpu::Buffer| {
            let (gx, gy) = grid(rows * p.count as usize * p.fan_in as usize);
            let p = PointBackpropParams { groups_x: gx, ..p };
            Dispatch::new(gpu, &pipes.backprop, &[din, params, zprev, dout], bytemuck::bytes_of(&p), (gx, gy))
        };
        let top = n_layers - 1;
        for (t, head) in shape.heads.iter().enumerate() {
            let d_o = gpu.buffer("point output gradient", (rows * head.fan_out * 4) as u64, RW);
            let (gx, gy) = grid(rows);
            let p = PointOutParams {
                rows: rows as u32,
                k: head.fan_out as u32,
                kind: shape.losses[t],
                mode: mode_code(how),
                y_stride: shape.y_stride as u32,
                y_col: shape.y_cols[t] as u32,
                groups_x: gx,
                _pad: 0,
            };
            dispatches.push(Dispatch::new(
                gpu,
                &pipes.out_grad,
                &[&fwd.outs[t], y, &d_o],
                bytemuck::bytes_of(&p),
                (gx, gy),
            ));
            let p = PointBackpropParams {
                rows: rows as u32,
                fan_in: head.fan_in as u32,
                fan_out: head.fan_out as u32,
                w_off: head.w_off as u32,
                act: shape.act,
                count: 1,
                in_tasks: 1,
                in_t0: 0,
                out_tasks: m as u32,
                out_t0: t as u32,
                groups_x: 0,
                _pad: 0,
            };
            dispatches.push(backprop(&d_o, &stacks[0], p, &fwd.pre[top]));
        }
        // Layer l's deltas sit in stacks[(top − l) % 2].
        for l in (0..n_layers).rev() {
            let layer = &shape.trunk[l];
            let here = &stacks[(top - l) % 2];
            let input = if l == 0 { x } else { &fwd.act[l - 1] };
            let (gx, gy) = grid(rows * m * m);
            let p = PointGramParams {
                rows: rows as u32,
                tasks: m as u32,
                width: layer.fan_out as u32,
                fan_in: layer.fan_in as u32,
                accumulate: u32::from(l != top),
                groups_x: gx,
                _pad: [0; 2],
            };
            dispatches.push(Dispatch::new(gpu, &pipes.gram, &[here, input, &grams], bytemuck::bytes_of(&p), (gx, gy)));
            if l > 0 {
                let p = PointBackpropParams {
                    rows: rows as u32,
                    fan_in: layer.fan_in as u32,
                    fan_out: layer.fan_out as u32,
                    w_off: layer.w_off as u32,
                    act: shape.act,
                    count: m as u32,
                    in_tasks: m as u32,
                    in_t0: 0,
                    out_tasks: m as u32,
                    out_t0: 0,
                    groups_x: 0,
                    _pad: 0,
                };
                dispatches.push(backprop(here, &stacks[(top - l + 1) % 2], p, &fwd.pre[l - 1]));
            }
        }
        PointGraph { rows, m, grams, dispatches }
    }

    /// The read-back Gram buffer as concord-core's `PointGrams` (f32 widened).
    pub fn to_point_grams(&self, flat: &[f32]) -> PointGrams {
        let len = self.rows * self.m * self.m;
        PointGrams { m: self.m, grams: flat[..len].iter().map(|&v| f64::from(v)).collect() }
    }

    /// Bytes of the Gram buffer to read back.
    pub fn gram_bytes(&self) -> u64 {
        (self.rows * self.m * self.m * 4) as u64
    }
}

/// Every point's m × m Gram of its per-task shared gradients for `mlp` at `params` on the
/// points `x`, on the GPU in one submission: the twin of `Mlp::point_grams` (same arguments,
/// validated by it; `targets` needed for `PointGradient::Loss`). Builds its pipelines and
/// buffers for this one call.
pub async fn point_grams(
    gpu: &Gpu,
    mlp: &Mlp,
    params: &[f64],
    x: &DMatrix<f64>,
    how: PointGradient,
    targets: Option<&[Target]>,
) -> Result<PointGrams, GpuError> {
    // The CPU reference's checks (parameters, shapes, finiteness, labels), with its messages.
    match targets {
        Some(t) => mlp.losses(params, x, t).map(drop),
        None if how == PointGradient::Loss => Err("per-point loss gradients need the points' labels".into()),
        None => mlp.forward(params, x).map(drop),
    }
    .map_err(GpuError::Unsupported)?;
    let shape = ModelShape::new(mlp);
    let rows = x.nrows();
    shape.check_rows(rows)?;
    check_point_shape(gpu, &shape, rows)?;
    gpu.check()?;
    let pipes = MlpPipelines::new(gpu);
    let point_pipes = PointPipelines::new(gpu);
    let p32: Vec<f32> = params.iter().map(|&v| v as f32).collect();
    let params_buf = gpu.storage_init("params", bytemuck::cast_slice(&p32), RW);
    let x_buf = gpu.storage_init("x", bytemuck::cast_slice(&matrix_f32(x)), RW);
    let table = match targets {
        Some(t) => shape.target_table(t, rows),
        // Zeros are valid labels for every loss (class 0, value 0); unread outside Loss mode.
        None => vec![0.0; rows * shape.y_stride],
    };
    let y_buf = gpu.storage_init("y", bytemuck::cast_slice(&table), RW);
    let fwd = ForwardGraph::new(gpu, &pipes, &shape, rows, &x_buf, &y_buf, &params_buf);
    let graph = PointGraph::new(gpu, &point_pipes, &shape, &fwd, &x_buf, &y_buf, &params_buf, how);
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("point grams") });
    record(&mut encoder, &fwd, &graph);
    let back = gpu.submit_and_read(encoder, &[(&graph.grams, graph.gram_bytes())]).await?;
    Ok(graph.to_point_grams(&back[0]))
}

/// The forward graph, then the point graph, in one compute pass.
pub(crate) fn record(encoder: &mut wgpu::CommandEncoder, fwd: &ForwardGraph, graph: &PointGraph) {
    let mut pass =
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("point grams"), timestamp_writes: None });
    for d in fwd.dispatches.iter().chain(&graph.dispatches) {
        d.record(&mut pass);
    }
}
