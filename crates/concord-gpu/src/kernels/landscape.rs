//! A 2-D loss-landscape slice of the multi-task MLP on the GPU (`shaders/landscape_slice.wgsl`):
//! one dispatch over every grid point × sample, in f32, reduced per 64 samples on the GPU and
//! over the chunks on the host in f64. Mirrors `concord_core::landscape::mlp_slice` (the parity
//! test holds it to that reference).

use bytemuck::{Pod, Zeroable};
use concord_core::landscape::{Grid, Plane, Surface};
use concord_core::model::{Activation, LossKind, Mlp, Target};
use nalgebra::DMatrix;
use std::sync::OnceLock;

use crate::{Gpu, GpuError};

/// Samples per workgroup (the shader's `WG`).
pub const SAMPLES_PER_GROUP: usize = 64;
/// Inner loop iterations one invocation may take: lavapipe stops an invocation at 65 535.
pub const MAX_LOOP_ITERATIONS: usize = 60_000;
const MAX_GROUPS_X: usize = 65_535;
/// The shader's private buffers hold this many activations per layer.
const MAX_WIDTH: usize = 256;
/// The shader's workgroup reduction holds this many tasks.
const MAX_HEADS: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct SliceParams {
    n_trunk: u32,
    n_heads: u32,
    batch: u32,
    chunks: u32,
    points: u32,
    n_alpha: u32,
    n_beta: u32,
    groups_x: u32,
    activation: u32,
    n_params: u32,
    input_dim: u32,
    _pad: u32,
    alpha_lo: f32,
    alpha_hi: f32,
    beta_lo: f32,
    beta_hi: f32,
}

fn activation_code(a: Activation) -> u32 {
    match a {
        Activation::Relu => 0,
        Activation::Tanh => 1,
        Activation::Gelu => 2,
        Activation::Sigmoid => 3,
        Activation::Linear => 4,
    }
}

fn loss_code(l: LossKind) -> u32 {
    match l {
        LossKind::Mse => 0,
        LossKind::Bce => 1,
        LossKind::SoftmaxCe => 2,
    }
}

/// The inner loop iterations of one invocation (see the shader header).
pub fn loop_iterations(mlp: &Mlp) -> usize {
    let l = mlp.layout();
    let layers: usize = l.trunk.iter().chain(&l.heads).map(|s| s.fan_out * (s.fan_in + 1)).sum();
    let softmax: usize = l.heads.iter().map(|s| s.fan_out).sum();
    let reduction = 8 + 6 * MAX_HEADS;
    mlp.config().input_dim + layers + softmax + reduction
}

fn unsupported(msg: String) -> GpuError {
    GpuError::Unsupported(format!("landscape slice: {msg}"))
}

/// Per-task and total losses of `mlp` on (x, targets) over `grid` in `plane`, on the GPU.
/// The grid must be evenly spaced (as `Grid::new` makes it); losses come back in f64 after an
/// f32 forward pass.
pub async fn mlp_slice(
    gpu: &Gpu,
    mlp: &Mlp,
    x: &DMatrix<f64>,
    targets: &[Target],
    plane: &Plane,
    grid: &Grid,
) -> Result<Surface, GpuError> {
    let layout = mlp.layout();
    let p = layout.total_len;
    for (name, v) in [("origin", &plane.origin), ("δ", &plane.delta), ("η", &plane.eta)] {
        if v.len() != p || v.iter().any(|e| !e.is_finite()) {
            return Err(unsupported(format!("the plane's {name} must be {p} finite values")));
        }
    }
    // Shapes, finiteness and labels, checked by the CPU model once.
    mlp.losses(&plane.origin, x, targets).map_err(unsupported)?;
    let m = mlp.num_tasks();
    if m > MAX_HEADS {
        return Err(unsupported(format!("{m} tasks; the kernel takes at most {MAX_HEADS}")));
    }
    if layout.trunk.iter().chain(&layout.heads).any(|s| s.fan_in > MAX_WIDTH || s.fan_out > MAX_WIDTH)
        || mlp.config().input_dim > MAX_WIDTH
    {
        return Err(unsupported(format!("layer widths above {MAX_WIDTH}")));
    }
    let iters = loop_iterations(mlp);
    if iters > MAX_LOOP_ITERATIONS {
        return Err(unsupported(format!(
            "the model needs {iters} loop iterations per invocation; lavapipe allows {MAX_LOOP_ITERATIONS} (use the CPU slice)"
        )));
    }
    let (na, nb) = (grid.alphas.len(), grid.betas.len());
    if na < 2 || nb < 2 {
        return Err(unsupported("the grid needs at least 2 points per axis".into()));
    }
    let batch = x.nrows();
    let chunks = batch.div_ceil(SAMPLES_PER_GROUP);
    let points = grid.len();
    let groups = points
        .checked_mul(chunks)
        .filter(|g| *g <= u32::MAX as usize)
        .ok_or_else(|| unsupported("too many workgroups".into()))?;
    let groups_x = groups.min(MAX_GROUPS_X);
    let groups_y = groups.div_ceil(groups_x);
    if groups_y > MAX_GROUPS_X {
        return Err(unsupported(format!("{groups} workgroups exceed one dispatch")));
    }
    gpu.check()?;

    // [θ | δ | η], [x | targets per head], the layer table.
    let params: Vec<f32> = plane.origin.iter().chain(&plane.delta).chain(&plane.eta).map(|&v| v as f32).collect();
    let mut data: Vec<f32> = Vec::with_capacity(batch * (x.ncols() + 4));
    for r in 0..batch {
        data.extend(x.row(r).iter().map(|&v| v as f32));
    }
    let mut table: Vec<u32> = Vec::new();
    for s in &layout.trunk {
        table.extend([s.fan_in as u32, s.fan_out as u32, s.weight.start as u32, s.bias.start as u32, 0, 0, 0, 0]);
    }
    for (s, (h, y)) in layout.heads.iter().zip(mlp.config().heads.iter().zip(targets)) {
        let y_off = data.len() as u32;
        let cols = match y {
            Target::Values(v) => {
                for r in 0..batch {
                    data.extend(v.row(r).iter().map(|&e| e as f32));
                }
                v.ncols()
            }
            Target::Classes(c) => {
                data.extend(c.iter().map(|&l| l as f32));
                1
            }
        };
        table.extend([
            s.fan_in as u32,
            s.fan_out as u32,
            s.weight.start as u32,
            s.bias.start as u32,
            loss_code(h.loss),
            y_off,
            cols as u32,
            0,
        ]);
    }
    let out_len = points * chunks * m;
    for (what, bytes) in [("parameters", params.len() * 4), ("data", data.len() * 4), ("partial sums", out_len * 4)] {
        gpu.check_binding_size(&format!("landscape slice: {what}"), bytes as u64)?;
    }
    let sp = SliceParams {
        n_trunk: layout.trunk.len() as u32,
        n_heads: m as u32,
        batch: batch as u32,
        chunks: chunks as u32,
        points: points as u32,
        n_alpha: na as u32,
        n_beta: nb as u32,
        groups_x: groups_x as u32,
        activation: activation_code(mlp.config().activation),
        n_params: p as u32,
        input_dim: mlp.config().input_dim as u32,
        _pad: 0,
        alpha_lo: grid.alphas[0] as f32,
        alpha_hi: grid.alphas[na - 1] as f32,
        beta_lo: grid.betas[0] as f32,
        beta_hi: grid.betas[nb - 1] as f32,
    };
    let params_buf = gpu.storage_init("slice params", bytemuck::cast_slice(&params), wgpu::BufferUsages::empty());
    let data_buf = gpu.storage_init("slice data", bytemuck::cast_slice(&data), wgpu::BufferUsages::empty());
    let table_buf = gpu.storage_init("slice layers", bytemuck::cast_slice(&table), wgpu::BufferUsages::empty());
    let out =
        gpu.buffer("slice partials", (out_len * 4) as u64, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
    let uniform = gpu.uniform_init("slice uniform", bytemuck::bytes_of(&sp));
    // Built per call: one slice is one dispatch, and this keeps the kernel out of the shared
    // pipeline table.
    let slot = OnceLock::new();
    let pipeline = gpu.pipeline(&slot, "landscape_slice.wgsl", "landscape_slice");
    let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("landscape slice"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: params_buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: data_buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 2, resource: table_buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 3, resource: out.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 4, resource: uniform.as_entire_binding() },
        ],
    });
    let mut encoder =
        gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("landscape slice") });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("landscape slice"),
            timestamp_writes: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(groups_x as u32, groups_y as u32, 1);
    }
    let partials = gpu.submit_and_read(encoder, &[(&out, (out_len * 4) as u64)]).await?.remove(0);
    let mut tasks = vec![vec![0.0f64; points]; m];
    for k in 0..points {
        for c in 0..chunks {
            for (t, task) in tasks.iter_mut().enumerate() {
                task[k] += partials[(k * chunks + c) * m + t] as f64;
            }
        }
    }
    Ok(Surface::from_tasks(grid.clone(), tasks))
}
