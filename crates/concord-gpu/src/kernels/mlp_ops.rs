//! Single MLP kernels on host slices, one submission each — for parity tests against
//! concord-core and for callers that want one operation. The trainer records the same kernels
//! through [`super::mlp_graph`] instead.

use concord_core::model::{Activation, LossKind};
use concord_core::train::TrainOptimizer;

use super::mlp::{
    activation_code, grid, loss_code, ActMapParams, DenseParams, Dispatch, LossParams, MlpPipelines, OptParams,
};
use crate::{Gpu, GpuError};

const RW: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

async fn run(gpu: &Gpu, dispatches: &[Dispatch], read: &[(&wgpu::Buffer, usize)]) -> Result<Vec<Vec<f32>>, GpuError> {
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("mlp op") });
    {
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("mlp op"), timestamp_writes: None });
        for d in dispatches {
            d.record(&mut pass);
        }
    }
    let parts: Vec<(&wgpu::Buffer, u64)> = read.iter().map(|(b, len)| (*b, (*len * 4) as u64)).collect();
    gpu.submit_and_read(encoder, &parts).await
}

fn input(gpu: &Gpu, data: &[f32]) -> wgpu::Buffer {
    // A zero-length binding is invalid; pad empty inputs.
    let padded: Vec<f32> = if data.is_empty() { vec![0.0] } else { data.to_vec() };
    gpu.storage_init("mlp op input", bytemuck::cast_slice(&padded), RW)
}

/// (φ(x), φ'(x)) for every x, by `mlp_activation_map.wgsl`.
pub async fn activation_map(gpu: &Gpu, act: Activation, xs: &[f32]) -> Result<Vec<(f32, f32)>, GpuError> {
    if xs.is_empty() {
        return Ok(Vec::new());
    }
    gpu.check()?;
    let pipes = MlpPipelines::new(gpu);
    let x = input(gpu, xs);
    let out = gpu.buffer("activation map", (xs.len() * 8) as u64, RW);
    let (gx, gy) = grid(xs.len());
    let p = ActMapParams { len: xs.len() as u32, act: activation_code(act), groups_x: gx, _pad: 0 };
    let d = Dispatch::new(gpu, &pipes.activation_map, &[&x, &out], bytemuck::bytes_of(&p), (gx, gy));
    let flat = run(gpu, &[d], &[(&out, xs.len() * 2)]).await?.remove(0);
    Ok(flat.chunks(2).map(|c| (c[0], c[1])).collect())
}

/// One dense layer by `mlp_dense_forward.wgsl`: z = x·Wᵀ + b and φ(z), for x (rows × fan_in,
/// row-major), W (fan_out × fan_in, row-major) and b. Returns (z, φ(z)), rows × fan_out each.
pub async fn dense_layer(
    gpu: &Gpu,
    x: &[f32],
    rows: usize,
    w: &[f32],
    b: &[f32],
    act: Activation,
) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
    let fan_out = b.len();
    if rows == 0 || fan_out == 0 || !x.len().is_multiple_of(rows) || w.len() != fan_out * (x.len() / rows) {
        return Err(GpuError::Unsupported(format!(
            "dense_layer: x has {} values for {rows} rows, W {} and b {}",
            x.len(),
            w.len(),
            b.len()
        )));
    }
    let fan_in = x.len() / rows;
    gpu.check()?;
    let pipes = MlpPipelines::new(gpu);
    let mut params = w.to_vec();
    params.extend_from_slice(b);
    let (xb, pb) = (input(gpu, x), input(gpu, &params));
    let z = gpu.buffer("z", (rows * fan_out * 4) as u64, RW);
    let a = gpu.buffer("a", (rows * fan_out * 4) as u64, RW);
    let (gx, gy) = grid(rows * fan_out);
    let p = DenseParams {
        rows: rows as u32,
        fan_in: fan_in as u32,
        fan_out: fan_out as u32,
        w_off: 0,
        b_off: w.len() as u32,
        act: activation_code(act),
        store_act: 1,
        groups_x: gx,
    };
    let d = Dispatch::new(gpu, &pipes.dense_forward, &[&xb, &pb, &z, &a], bytemuck::bytes_of(&p), (gx, gy));
    let mut back = run(gpu, &[d], &[(&z, rows * fan_out), (&a, rows * fan_out)]).await?;
    let a_out = back.pop().unwrap_or_default();
    Ok((back.pop().unwrap_or_default(), a_out))
}

/// One task's mean loss and dL/do by `mlp_loss.wgsl`, for outputs o (rows × k, row-major) and
/// targets (rows × k values for MSE/BCE, rows class indices for softmax CE).
pub async fn task_loss(
    gpu: &Gpu,
    loss: LossKind,
    out: &[f32],
    rows: usize,
    targets: &[f32],
) -> Result<(f32, Vec<f32>), GpuError> {
    if rows == 0 || !out.len().is_multiple_of(rows) {
        return Err(GpuError::Unsupported(format!("task_loss: {} outputs for {rows} rows", out.len())));
    }
    let k = out.len() / rows;
    let y_stride = if loss == LossKind::SoftmaxCe { 1 } else { k };
    if targets.len() != rows * y_stride {
        return Err(GpuError::Unsupported(format!(
            "task_loss: {} targets for {rows} rows of {y_stride}",
            targets.len()
        )));
    }
    gpu.check()?;
    let pipes = MlpPipelines::new(gpu);
    let (ob, yb) = (input(gpu, out), input(gpu, targets));
    let grad = gpu.buffer("dL/do", (out.len() * 4) as u64, RW);
    let losses = gpu.buffer("loss", 4, RW);
    let p = LossParams {
        rows: rows as u32,
        k: k as u32,
        kind: loss_code(loss),
        y_stride: y_stride as u32,
        y_col: 0,
        task: 0,
        _pad: [0; 2],
    };
    let d = Dispatch::new(gpu, &pipes.task_loss, &[&ob, &yb, &grad, &losses], bytemuck::bytes_of(&p), (1, 1));
    let mut back = run(gpu, &[d], &[(&losses, 1), (&grad, out.len())]).await?;
    let g = back.pop().unwrap_or_default();
    Ok((back[0][0], g))
}

/// `grads.len()` optimizer steps from x0 by `mlp_optim.wgsl` (tick + update per step, all in
/// one submission); returns the final x. Mirrors `TrainOptimizer::split` + `Optimizer::step`.
pub async fn optimizer_steps(
    gpu: &Gpu,
    opt: &TrainOptimizer,
    x0: &[f32],
    grads: &[Vec<f32>],
) -> Result<Vec<f32>, GpuError> {
    opt.validate().map_err(GpuError::Unsupported)?;
    if let TrainOptimizer::Spam(_) = opt {
        // SPAM's per-step constants come from the trainer's `optim_prepare` (GpuTrainer).
        return Err(GpuError::Unsupported("optimizer_steps runs no SPAM; GpuTrainer does".into()));
    }
    if x0.is_empty() || grads.iter().any(|g| g.len() != x0.len()) {
        return Err(GpuError::Unsupported("optimizer_steps: every gradient needs one entry per parameter".into()));
    }
    gpu.check()?;
    let pipes = MlpPipelines::new(gpu);
    let n = x0.len();
    let x = input(gpu, x0);
    // The moments, then the step state (t, q₁, q₂, unused): see mlp_optim.wgsl.
    let moments = gpu.buffer("moments", ((2 * n + 4) * 4) as u64, RW);
    // The step check's head, never set here (no `optim_check`): every step is taken.
    let check = gpu.buffer("step check", 8, RW);
    let p = OptParams::new(opt, n);
    let mut dispatches = Vec::new();
    let mut keep = Vec::new();
    for g in grads {
        let gb = input(gpu, g);
        let uniform = [(4, bytemuck::bytes_of(&p))];
        dispatches.push(Dispatch::with_bindings(
            gpu,
            &pipes.optim_tick,
            &[(2, &moments), (3, &check)],
            &uniform,
            (1, 1),
        ));
        dispatches.push(Dispatch::with_bindings(
            gpu,
            &pipes.optim_update,
            &[(0, &x), (1, &gb), (2, &moments), (3, &check)],
            &uniform,
            grid(n),
        ));
        keep.push(gb);
    }
    Ok(run(gpu, &dispatches, &[(&x, n)]).await?.remove(0))
}
