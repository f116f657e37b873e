//! The MLP's forward and backward passes as fixed lists of [`Dispatch`]es over GPU buffers,
//! mirroring `concord_core::model::Mlp::{forward, losses, gradients}`:
//!
//! * [`ForwardGraph`]: trunk layers (z, φ(z)), raw head outputs, each task's mean loss and
//!   dL/do, for `rows` samples in an x buffer and a target table.
//! * [`BackwardGraph`]: from a forward graph, each head's gradient of its own loss into the
//!   update vector at the head's offset, and row t of the m × d_shared Jacobian (task t's loss
//!   w.r.t. the trunk), layer by layer — the layout the gram / combine kernels read.
//!
//! [`mlp_gradients`] runs both once and reads everything back (the parity tests use it).

use concord_core::model::{LayerSlice, Mlp, Target};
use nalgebra::DMatrix;

use super::mlp::{
    activation_code, grid, loss_code, BackpropParams, DenseParams, Dispatch, LossParams, MlpPipelines, WeightGradParams,
};
use crate::{Gpu, GpuError};

/// Task t's loss over `rows` head outputs `o` against the target table `y`: its value into
/// `losses[t]` and dL/do into `d_o` (the MLP's and the MoE model's forward graphs share it).
pub(crate) fn task_loss_dispatch(
    gpu: &Gpu,
    pipes: &MlpPipelines,
    shape: &ModelShape,
    rows: usize,
    t: usize,
    (o, y): (&wgpu::Buffer, &wgpu::Buffer),
    (d_o, losses): (&wgpu::Buffer, &wgpu::Buffer),
) -> Dispatch {
    let lp = LossParams {
        rows: rows as u32,
        k: shape.heads[t].fan_out as u32,
        kind: shape.losses[t],
        y_stride: shape.y_stride as u32,
        y_col: shape.y_cols[t] as u32,
        task: t as u32,
        _pad: [0; 2],
    };
    Dispatch::new(gpu, &pipes.task_loss, &[o, y, d_o, losses], bytemuck::bytes_of(&lp), (1, 1))
}

/// A lavapipe invocation stops its loops after 65 535 iterations in total; the kernels' longest
/// loops (batch rows in `weight_grad`, rows·k in `task_loss`) are kept under this.
pub(crate) const LOOP_BUDGET: usize = 60_000;

const RW: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// Where one layer lives in the flat vector, as the kernels need it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayerDims {
    pub fan_in: usize,
    pub fan_out: usize,
    pub w_off: usize,
    pub b_off: usize,
}

impl LayerDims {
    /// `mlp_dense_forward.wgsl`'s parameters for this layer over `rows` rows (φ = `act`, storing
    /// φ(z) when `store_act`) and the dispatch grid: the one place a dense layer's call is built,
    /// for the MLP's graph, the MoE's, and the MoE thumbnails' expert layers.
    pub(crate) fn dense_params(&self, rows: usize, act: u32, store_act: bool) -> (DenseParams, (u32, u32)) {
        let (gx, gy) = grid(rows * self.fan_out);
        let p = DenseParams {
            rows: rows as u32,
            fan_in: self.fan_in as u32,
            fan_out: self.fan_out as u32,
            w_off: self.w_off as u32,
            b_off: self.b_off as u32,
            act,
            store_act: u32::from(store_act),
            groups_x: gx,
        };
        (p, (gx, gy))
    }

    /// `mlp_weight_grad.wgsl`'s parameters for this layer's weights (and bias, when `bias`) over
    /// `rows` rows, written at `out_off`, and the dispatch grid: one place for the MLP's backward,
    /// the MoE's and the MoE aux gradient's.
    pub(crate) fn weight_grad_params(&self, rows: usize, out_off: usize, bias: bool) -> (WeightGradParams, (u32, u32)) {
        let (gx, gy) = grid(self.fan_out * (self.fan_in + usize::from(bias)));
        let p = WeightGradParams {
            rows: rows as u32,
            fan_in: self.fan_in as u32,
            fan_out: self.fan_out as u32,
            out_off: out_off as u32,
            groups_x: gx,
            no_bias: u32::from(!bias),
            _pad: [0; 2],
        };
        (p, (gx, gy))
    }
}

impl From<&LayerSlice> for LayerDims {
    fn from(s: &LayerSlice) -> Self {
        LayerDims { fan_in: s.fan_in, fan_out: s.fan_out, w_off: s.weight.start, b_off: s.bias.start }
    }
}

/// The model as the kernels see it.
#[derive(Clone, Debug)]
pub(crate) struct ModelShape {
    pub input_dim: usize,
    pub act: u32,
    pub trunk: Vec<LayerDims>,
    pub heads: Vec<LayerDims>,
    pub losses: Vec<u32>,
    pub shared_len: usize,
    pub total_len: usize,
    /// Columns of the target table, and where each task's targets start.
    pub y_stride: usize,
    pub y_cols: Vec<usize>,
    /// Where each task's own block starts (its gradient is in `update`, scaled by a loss
    /// weighting): the head's weights, or a CGC task's gate.
    pub task_starts: Vec<usize>,
}

impl ModelShape {
    pub fn new(mlp: &Mlp) -> Self {
        let lay = mlp.layout();
        let cfg = mlp.config();
        let mut y_cols = Vec::new();
        let mut y_stride = 0;
        for h in &cfg.heads {
            y_cols.push(y_stride);
            y_stride += match h.loss {
                concord_core::model::LossKind::SoftmaxCe => 1,
                _ => h.out_dim,
            };
        }
        ModelShape {
            input_dim: cfg.input_dim,
            act: activation_code(cfg.activation),
            trunk: lay.trunk.iter().map(LayerDims::from).collect(),
            heads: lay.heads.iter().map(LayerDims::from).collect(),
            losses: cfg.heads.iter().map(|h| loss_code(h.loss)).collect(),
            shared_len: lay.shared_len,
            total_len: lay.total_len,
            y_stride,
            y_cols,
            task_starts: lay.heads.iter().map(|h| h.weight.start).collect(),
        }
    }

    pub fn num_tasks(&self) -> usize {
        self.heads.len()
    }

    /// The targets of `rows` samples as one row-major f32 table (class labels as f32).
    pub fn target_table(&self, targets: &[Target], rows: usize) -> Vec<f32> {
        let mut table = vec![0.0f32; rows * self.y_stride];
        for (t, target) in targets.iter().enumerate() {
            let c0 = self.y_cols[t];
            match target {
                Target::Values(v) => {
                    for r in 0..rows {
                        for c in 0..v.ncols() {
                            table[r * self.y_stride + c0 + c] = v[(r, c)] as f32;
                        }
                    }
                }
                Target::Classes(cls) => {
                    for (r, &c) in cls.iter().enumerate().take(rows) {
                        table[r * self.y_stride + c0] = c as f32;
                    }
                }
            }
        }
        table
    }

    /// `Unsupported` when a batch of `rows` would run a kernel loop past the lavapipe budget.
    pub fn check_rows(&self, rows: usize) -> Result<(), GpuError> {
        let longest_loss = self.heads.iter().map(|h| rows.div_ceil(256) * (3 * h.fan_out + 1)).max().unwrap_or(0);
        if rows > LOOP_BUDGET || longest_loss > LOOP_BUDGET {
            return Err(GpuError::Unsupported(format!(
                "a batch of {rows} rows is too long for one kernel invocation's loop (at most {LOOP_BUDGET} \
                 iterations; use a smaller batch_size)"
            )));
        }
        Ok(())
    }
}

/// A row-major matrix as f32.
pub(crate) fn matrix_f32(x: &DMatrix<f64>) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for r in 0..x.nrows() {
        out.extend(x.row(r).iter().map(|&v| v as f32));
    }
    out
}

/// Forward pass and per-task losses over `rows` samples.
pub(crate) struct ForwardGraph {
    pub rows: usize,
    /// pre[l] and act[l]: trunk layer l's z and φ(z), rows × width.
    pub pre: Vec<wgpu::Buffer>,
    pub act: Vec<wgpu::Buffer>,
    /// Head outputs and dL/do per task (rows × k).
    pub outs: Vec<wgpu::Buffer>,
    pub d_outs: Vec<wgpu::Buffer>,
    /// The m mean losses.
    pub losses: wgpu::Buffer,
    pub dispatches: Vec<Dispatch>,
}

impl ForwardGraph {
    /// `x`: rows × input_dim; `y`: the rows × y_stride target table; `params`: the flat vector.
    pub fn new(
        gpu: &Gpu,
        pipes: &MlpPipelines,
        shape: &ModelShape,
        rows: usize,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        params: &wgpu::Buffer,
    ) -> Self {
        let buf = |label: &str, len: usize| gpu.buffer(label, (len * 4) as u64, RW);
        let placeholder = buf("unused activation", 4);
        let mut dispatches = Vec::new();
        let mut pre = Vec::new();
        let mut act: Vec<wgpu::Buffer> = Vec::new();
        for (l, layer) in shape.trunk.iter().enumerate() {
            let z = buf("trunk z", rows * layer.fan_out);
            let a = buf("trunk a", rows * layer.fan_out);
            let input = if l == 0 { x } else { &act[l - 1] };
            let (p, groups) = layer.dense_params(rows, shape.act, true);
            dispatches.push(Dispatch::new(
                gpu,
                &pipes.dense_forward,
                &[input, params, &z, &a],
                bytemuck::bytes_of(&p),
                groups,
            ));
            pre.push(z);
            act.push(a);
        }
        let h = act.last().unwrap_or(x);
        let losses = buf("task losses", shape.num_tasks());
        let mut outs = Vec::new();
        let mut d_outs = Vec::new();
        for (t, head) in shape.heads.iter().enumerate() {
            let o = buf("head output", rows * head.fan_out);
            let d_o = buf("head output gradient", rows * head.fan_out);
            let (p, groups) = head.dense_params(rows, 4, false);
            dispatches.push(Dispatch::new(
                gpu,
                &pipes.dense_forward,
                &[h, params, &o, &placeholder],
                bytemuck::bytes_of(&p),
                groups,
            ));
            dispatches.push(task_loss_dispatch(gpu, pipes, shape, rows, t, (&o, y), (&d_o, &losses)));
            outs.push(o);
            d_outs.push(d_o);
        }
        ForwardGraph { rows, pre, act, outs, d_outs, losses, dispatches }
    }
}

/// Head gradients and the shared Jacobian from a [`ForwardGraph`]'s dL/do.
pub(crate) struct BackwardGraph {
    pub dispatches: Vec<Dispatch>,
}

impl BackwardGraph {
    /// Writes row t of the m × shared_len Jacobian into `jac` and head t's gradient into
    /// `update[head t's block]` (the trunk part of `update` is left alone).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        pipes: &MlpPipelines,
        shape: &ModelShape,
        fwd: &ForwardGraph,
        x: &wgpu::Buffer,
        params: &wgpu::Buffer,
        jac: &wgpu::Buffer,
        update: &wgpu::Buffer,
    ) -> Self {
        let rows = fwd.rows;
        let dz: Vec<wgpu::Buffer> =
            shape.trunk.iter().map(|l| gpu.buffer("trunk dz", (rows * l.fan_out * 4) as u64, RW)).collect();
        let h = fwd.act.last().unwrap_or(x);
        let n_layers = shape.trunk.len();
        let mut dispatches = Vec::new();
        let weight_grad =
            |dz: &wgpu::Buffer, a: &wgpu::Buffer, out: &wgpu::Buffer, layer: &LayerDims, out_off: usize| {
                let (p, (gx, gy)) = layer.weight_grad_params(rows, out_off, true);
                Dispatch::new(gpu, &pipes.weight_grad, &[dz, a, out], bytemuck::bytes_of(&p), (gx, gy))
            };
        let backprop = |dz: &wgpu::Buffer, z_prev: &wgpu::Buffer, dz_prev: &wgpu::Buffer, layer: &LayerDims| {
            let (gx, gy) = grid(rows * layer.fan_in);
            let p = BackpropParams {
                rows: rows as u32,
                fan_in: layer.fan_in as u32,
                fan_out: layer.fan_out as u32,
                w_off: layer.w_off as u32,
                act: shape.act,
                groups_x: gx,
                _pad: [0; 2],
            };
            Dispatch::new(gpu, &pipes.backprop, &[dz, params, z_prev, dz_prev], bytemuck::bytes_of(&p), (gx, gy))
        };
        for (t, head) in shape.heads.iter().enumerate() {
            dispatches.push(weight_grad(&fwd.d_outs[t], h, update, head, head.w_off));
            if n_layers == 0 {
                continue;
            }
            dispatches.push(backprop(&fwd.d_outs[t], &fwd.pre[n_layers - 1], &dz[n_layers - 1], head));
            for l in (0..n_layers).rev() {
                let layer = &shape.trunk[l];
                let input = if l == 0 { x } else { &fwd.act[l - 1] };
                dispatches.push(weight_grad(&dz[l], input, jac, layer, t * shape.shared_len + layer.w_off));
                if l > 0 {
                    dispatches.push(backprop(&dz[l], &fwd.pre[l - 1], &dz[l - 1], layer));
                }
            }
        }
        BackwardGraph { dispatches }
    }
}

/// What [`mlp_gradients`] reads back: `concord_core::model::Gradients` in f32.
#[derive(Clone, Debug)]
pub struct GpuGradients {
    /// Mean loss of each task over the batch.
    pub losses: Vec<f32>,
    /// m × d_shared, row-major: row t = ∇ of task t's loss w.r.t. the trunk parameters.
    pub shared_jacobian: Vec<f32>,
    /// Head t's gradient of task t's own loss (its weights row-major, then its bias).
    pub head_grads: Vec<Vec<f32>>,
    /// Raw head outputs per task (rows × k, row-major).
    pub outputs: Vec<Vec<f32>>,
}

/// Forward, losses and backward of `mlp` at `params` on the batch (x, targets), on the GPU.
/// Mirrors `Mlp::gradients` (and `Mlp::forward` in `outputs`).
pub async fn mlp_gradients(
    gpu: &Gpu,
    mlp: &Mlp,
    params: &[f64],
    x: &DMatrix<f64>,
    targets: &[Target],
) -> Result<GpuGradients, GpuError> {
    // The CPU reference validates shapes, targets and finiteness with clear messages.
    mlp.losses(params, x, targets).map_err(GpuError::Unsupported)?;
    let shape = ModelShape::new(mlp);
    let rows = x.nrows();
    shape.check_rows(rows)?;
    gpu.check()?;
    let pipes = MlpPipelines::new(gpu);
    let m = shape.num_tasks();
    let p32: Vec<f32> = params.iter().map(|&v| v as f32).collect();
    let params_buf = gpu.storage_init("params", bytemuck::cast_slice(&p32), RW);
    let x_buf = gpu.storage_init("x", bytemuck::cast_slice(&matrix_f32(x)), RW);
    let y_buf = gpu.storage_init("y", bytemuck::cast_slice(&shape.target_table(targets, rows)), RW);
    let jac = gpu.buffer("jacobian", (m * shape.shared_len * 4) as u64, RW);
    let update = gpu.buffer("update", (shape.total_len * 4) as u64, RW);
    let fwd = ForwardGraph::new(gpu, &pipes, &shape, rows, &x_buf, &y_buf, &params_buf);
    let bwd = BackwardGraph::new(gpu, &pipes, &shape, &fwd, &x_buf, &params_buf, &jac, &update);
    let mut encoder =
        gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("mlp gradients") });
    {
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("mlp"), timestamp_writes: None });
        for d in fwd.dispatches.iter().chain(&bwd.dispatches) {
            d.record(&mut pass);
        }
    }
    let mut parts: Vec<(&wgpu::Buffer, u64)> = vec![
        (&fwd.losses, (m * 4) as u64),
        (&jac, (m * shape.shared_len * 4) as u64),
        (&update, (shape.total_len * 4) as u64),
    ];
    for (t, o) in fwd.outs.iter().enumerate() {
        parts.push((o, (rows * shape.heads[t].fan_out * 4) as u64));
    }
    let mut back = gpu.submit_and_read(encoder, &parts).await?.into_iter();
    let losses = back.next().unwrap_or_default();
    let shared_jacobian = back.next().unwrap_or_default();
    let update = back.next().unwrap_or_default();
    let outputs: Vec<Vec<f32>> = back.collect();
    let head_grads = mlp.layout().heads.iter().map(|s| update[s.range()].to_vec()).collect();
    Ok(GpuGradients { losses, shared_jacobian, head_grads, outputs })
}
