//! d = Jᵀw on the GPU (`shaders/combine.wgsl`): one invocation per column.

use bytemuck::{Pod, Zeroable};

use super::check_shape;
use crate::{Gpu, GpuError};

pub const WORKGROUP: u32 = 256;
const MAX_GROUPS_X: u32 = 65535;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct CombineParams {
    m: u32,
    n: u32,
    groups_x: u32,
    _pad: u32,
}

/// Encode d = Jᵀw; `jac` holds the row-major m × n J, `weights` m values. Returns the
/// length-n result buffer (STORAGE | COPY_SRC).
pub(crate) fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    jac: &wgpu::Buffer,
    weights: &wgpu::Buffer,
    m: usize,
    n: usize,
) -> wgpu::Buffer {
    let groups = (n as u32).div_ceil(WORKGROUP).max(1);
    let groups_x = groups.min(MAX_GROUPS_X);
    let groups_y = groups.div_ceil(groups_x);
    let params = CombineParams { m: m as u32, n: n as u32, groups_x, _pad: 0 };
    let uniform = gpu.uniform_init("combine params", bytemuck::bytes_of(&params));
    let out = gpu.buffer("update", (n * 4) as u64, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
    let pipeline = gpu.pipeline(&gpu.pipelines.combine, "combine.wgsl", "combine");
    let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("combine"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: jac.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: weights.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 2, resource: out.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 3, resource: uniform.as_entire_binding() },
        ],
    });
    let mut pass =
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("combine"), timestamp_writes: None });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, &bg, &[]);
    pass.dispatch_workgroups(groups_x, groups_y, 1);
    drop(pass);
    out
}

/// d = Jᵀw for the row-major m × n Jacobian `j` and weights `w` (length m).
/// Mirrors `concord_core::aggregators::combine`.
pub async fn combine(gpu: &Gpu, j: &[f32], w: &[f32], m: usize, n: usize) -> Result<Vec<f32>, GpuError> {
    check_shape(m, n, j.len(), "combine")?;
    if w.len() != m {
        return Err(GpuError::Unsupported(format!("combine: {} weights for m = {m} tasks", w.len())));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    gpu.check()?;
    gpu.check_binding_size("combine: J", (j.len() * 4) as u64)?;
    let jac = gpu.storage_init("J", bytemuck::cast_slice(j), wgpu::BufferUsages::empty());
    let weights = gpu.storage_init("w", bytemuck::cast_slice(w), wgpu::BufferUsages::empty());
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("combine") });
    let out = encode(gpu, &mut encoder, &jac, &weights, m, n);
    let mut parts = gpu.submit_and_read(encoder, &[(&out, (n * 4) as u64)]).await?;
    Ok(parts.remove(0))
}
