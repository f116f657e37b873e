//! G = JJᵀ on the GPU (`shaders/gram.wgsl`): a strided pass in which every invocation sums its
//! columns' 8 × 8 row-block tiles in registers and writes them as partials, then one small pass
//! that adds the partials. No float atomics, no barriers.

use bytemuck::{Pod, Zeroable};

use super::check_shape;
use crate::{Gpu, GpuError};

/// Invocations per workgroup in gram.wgsl.
pub const WORKGROUP: u32 = 64;
/// At most this many workgroups in pass 1: beyond it each invocation loops over more columns,
/// which keeps the partials buffer and the second pass small for n up to 1e6 and more.
pub const MAX_GROUPS: u32 = 512;
/// Columns each pass-1 invocation walks, at least (see `GramPlan::new`). 128 rather than 32:
/// 4× fewer partials to write and sum, 0.4 → 0.6 of the copy bandwidth on lavapipe at 8 × 1e6
/// (BENCHMARKS.md).
pub const COLUMNS_PER_LANE: u32 = 128;
/// Rows per block of a tile (gram.wgsl); a tile holds 8 × 8 = 64 entries of G.
pub const TILE_ROWS: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct GramParams {
    m: u32,
    n: u32,
    num_groups: u32,
    tiles: u32,
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
    let plan = GramPlan::new(gpu, jac, m, n);
    plan.record(gpu, encoder);
    plan.out
}

/// The buffers and bind groups of one Gram computation, made once and recorded any number of
/// times (the benchmark, a training loop: no per-call allocation or zero-fill of the partials).
pub(crate) struct GramPlan {
    bg1: wgpu::BindGroup,
    bg2: wgpu::BindGroup,
    num_groups: u32,
    tiles: u32,
    /// G, m × m row-major (STORAGE | COPY_SRC).
    pub out: wgpu::Buffer,
}

impl GramPlan {
    pub(crate) fn new(gpu: &Gpu, jac: &wgpu::Buffer, m: usize, n: usize) -> GramPlan {
        let nb = m.div_ceil(TILE_ROWS);
        let tiles = (nb * (nb + 1) / 2) as u32;
        // Each invocation walks ≥ COLUMNS_PER_LANE columns (its 64 partials cost 256 bytes of
        // writes, ≤ 1/32 of what it reads for m ≥ 8), in at most MAX_GROUPS groups.
        let num_groups = (n as u32).div_ceil(WORKGROUP * COLUMNS_PER_LANE).clamp(1, MAX_GROUPS);
        let params = GramParams { m: m as u32, n: n as u32, num_groups, tiles };
        let uniform = gpu.uniform_init("gram params", bytemuck::bytes_of(&params));
        let partials = gpu.buffer(
            "gram partials",
            u64::from(num_groups) * u64::from(WORKGROUP) * u64::from(tiles) * 64 * 4,
            wgpu::BufferUsages::STORAGE,
        );
        let out = gpu.buffer("gram", (m * m * 4) as u64, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
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
        GramPlan { bg1, bg2, num_groups, tiles, out }
    }

    pub(crate) fn record(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder) {
        let p1 = gpu.pipeline(&gpu.pipelines.gram_partials, "gram.wgsl", "gram_partials");
        let p2 = gpu.pipeline(&gpu.pipelines.gram_reduce, "gram.wgsl", "gram_reduce");
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("gram"), timestamp_writes: None });
        pass.set_pipeline(p1);
        pass.set_bind_group(0, &self.bg1, &[]);
        pass.dispatch_workgroups(self.num_groups, self.tiles, 1);
        pass.set_pipeline(p2);
        pass.set_bind_group(0, &self.bg2, &[]);
        pass.dispatch_workgroups(self.tiles, 1, 1);
    }
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
