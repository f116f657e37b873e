//! G = JJᵀ on the GPU (`shaders/gram.wgsl`): a strided, workgroup-reduced pass into per-group
//! partial m × m sums, then one small pass that adds the partials. No float atomics.

use bytemuck::{Pod, Zeroable};

use super::check_shape;
use crate::{Gpu, GpuError};

/// Invocations per workgroup in gram.wgsl.
pub const WORKGROUP: u32 = 256;
/// At most this many workgroups in pass 1: beyond it each invocation loops over more columns,
/// which keeps the partials buffer and the second pass small for n up to 1e6 and more.
pub const MAX_GROUPS: u32 = 512;
/// Pairs (i ≤ j) one pass-1 workgroup accumulates (GRAM_CHUNK in gram.wgsl): all of them for
/// m ≤ 16, ⌈npairs/136⌉ chunks beyond.
pub const PAIR_CHUNK: u32 = 136;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GramParams {
    m: u32,
    n: u32,
    num_groups: u32,
    npairs: u32,
}

/// Encode G = JJᵀ for the row-major m × n Jacobian in `jac` (a STORAGE buffer of m·n f32).
/// Returns the m × m row-major result buffer (STORAGE | COPY_SRC).
pub(crate) fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    jac: &wgpu::Buffer,
    m: usize,
    n: usize,
) -> wgpu::Buffer {
    let npairs = (m * (m + 1) / 2) as u32;
    let num_groups = (n as u32).div_ceil(WORKGROUP).clamp(1, MAX_GROUPS);
    let params = GramParams { m: m as u32, n: n as u32, num_groups, npairs };
    let uniform = gpu.uniform_init("gram params", bytemuck::bytes_of(&params));
    let partials = gpu.buffer(
        "gram partials",
        u64::from(num_groups) * u64::from(npairs) * 4,
        wgpu::BufferUsages::STORAGE,
    );
    let out = gpu.buffer(
        "gram",
        (m * m * 4) as u64,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    );
    let p1 = gpu.pipeline(&gpu.pipelines.gram_partials, "gram.wgsl", "gram_partials");
    let p2 = gpu.pipeline(&gpu.pipelines.gram_reduce, "gram.wgsl", "gram_reduce");
    let bg1 = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("gram_partials"),
        layout: &p1.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: jac.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: partials.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 3, resource: uniform.as_entire_binding() },
        ],
    });
    let bg2 = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("gram_reduce"),
        layout: &p2.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 1, resource: partials.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 2, resource: out.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 3, resource: uniform.as_entire_binding() },
        ],
    });
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("gram"), timestamp_writes: None });
    pass.set_pipeline(p1);
    pass.set_bind_group(0, &bg1, &[]);
    pass.dispatch_workgroups(num_groups, npairs.div_ceil(PAIR_CHUNK), 1);
    pass.set_pipeline(p2);
    pass.set_bind_group(0, &bg2, &[]);
    pass.dispatch_workgroups(1, 1, 1);
    drop(pass);
    out
}

/// G = JJᵀ for the row-major m × n Jacobian `j` (m ≤ 32); returns G row-major (m·m values).
/// Mirrors `concord_core::aggregators::gram`.
pub async fn gram(gpu: &Gpu, j: &[f32], m: usize, n: usize) -> Result<Vec<f32>, GpuError> {
    check_shape(m, n, j.len(), "gram")?;
    if n == 0 {
        return Ok(vec![0.0; m * m]);
    }
    gpu.check()?;
    gpu.check_binding_size("gram: J", (j.len() * 4) as u64)?;
    let jac = gpu.storage_init("J", bytemuck::cast_slice(j), wgpu::BufferUsages::empty());
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("gram") });
    let out = encode(gpu, &mut encoder, &jac, m, n);
    let mut parts = gpu.submit_and_read(encoder, &[(&out, (m * m * 4) as u64)]).await?;
    Ok(parts.remove(0))
}
