//! dst = src (`shaders/copy.wgsl`): the plain streaming kernel `concord bench gram` compares the
//! Gram kernel's bandwidth with.

use bytemuck::{Pod, Zeroable};

use crate::{Gpu, GpuError};

const WORKGROUP: u32 = 256;
const MAX_GROUPS_X: u32 = 65_535;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct CopyParams {
    len4: u32,
    groups_x: u32,
    _pad: [u32; 2],
}

/// Encode a copy of the first `len4` vec4s of `src` into `dst` (both STORAGE buffers).
pub(crate) fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, src: &wgpu::Buffer, dst: &wgpu::Buffer, len4: u32) {
    let groups = len4.div_ceil(WORKGROUP).max(1);
    let groups_x = groups.min(MAX_GROUPS_X);
    let groups_y = groups.div_ceil(groups_x);
    let params = CopyParams { len4, groups_x, _pad: [0; 2] };
    let uniform = gpu.uniform_init("copy params", bytemuck::bytes_of(&params));
    let pipeline = gpu.pipeline(&gpu.pipelines.copy, "copy.wgsl", "copy");
    let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("copy"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: src.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: dst.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 2, resource: uniform.as_entire_binding() },
        ],
    });
    let mut pass =
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("copy"), timestamp_writes: None });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, &bg, &[]);
    pass.dispatch_workgroups(groups_x, groups_y, 1);
}

/// A copy of `data` made by the copy kernel (its length padded to a multiple of 4 inside).
pub async fn copy(gpu: &Gpu, data: &[f32]) -> Result<Vec<f32>, GpuError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    gpu.check()?;
    let mut padded = data.to_vec();
    padded.resize(data.len().next_multiple_of(4), 0.0);
    let bytes = (padded.len() * 4) as u64;
    gpu.check_binding_size("copy", bytes)?;
    let len4 = u32::try_from(padded.len() / 4)
        .map_err(|_| GpuError::Unsupported(format!("copy: {} values is too many", data.len())))?;
    let src = gpu.storage_init("copy src", bytemuck::cast_slice(&padded), wgpu::BufferUsages::empty());
    let dst = gpu.buffer("copy dst", bytes, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("copy") });
    encode(gpu, &mut encoder, &src, &dst, len4);
    let mut parts = gpu.submit_and_read(encoder, &[(&dst, bytes)]).await?;
    let mut out = parts.remove(0);
    out.truncate(data.len());
    Ok(out)
}
