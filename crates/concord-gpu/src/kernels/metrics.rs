//! Conflict metrics read straight off the Gramian on the GPU (`shaders/metrics.wgsl`): the
//! cosine matrix, gradient-magnitude similarity and conflict ratio, with concord-core's
//! semantics (`concord_core::metrics::{cosine_from_gram, gms_from_gram, conflict_ratio}`).

use bytemuck::{Pod, Zeroable};
use concord_core::metrics::PairMatrix;

use super::MAX_TASKS;
use crate::{Gpu, GpuError};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct MetricsParams {
    m: u32,
    _pad: [u32; 3],
}

/// The metrics of one Gramian, in concord-core's types (`None` = undefined, a zero gradient).
#[derive(Clone, Debug, PartialEq)]
pub struct GramMetrics {
    pub cosine: PairMatrix,
    pub gms: PairMatrix,
    pub conflict_ratio: f64,
}

/// Number of f32 values the metrics buffer holds for m tasks.
pub fn output_len(m: usize) -> usize {
    4 * m * m + 1
}

/// Encode the metrics of the m × m Gramian in `gram_buf`; returns the output buffer
/// (STORAGE | COPY_SRC, [`output_len`] values; decode with [`decode`]).
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, gram_buf: &wgpu::Buffer, m: usize) -> wgpu::Buffer {
    let params = MetricsParams { m: m as u32, _pad: [0; 3] };
    let uniform = gpu.uniform_init("metrics params", bytemuck::bytes_of(&params));
    let out =
        gpu.buffer("metrics", (output_len(m) * 4) as u64, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
    let pipeline = gpu.pipeline(&gpu.pipelines.metrics, "metrics.wgsl", "metrics");
    let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("metrics"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: gram_buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: out.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 2, resource: uniform.as_entire_binding() },
        ],
    });
    let mut pass =
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("metrics"), timestamp_writes: None });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, &bg, &[]);
    pass.dispatch_workgroups(1, 1, 1);
    drop(pass);
    out
}

/// The read-back metrics buffer as [`GramMetrics`].
pub fn decode(raw: &[f32], m: usize) -> GramMetrics {
    let mm = m * m;
    let pairs = |values: usize, defined: usize| -> PairMatrix {
        (0..m)
            .map(|i| {
                (0..m)
                    .map(|j| {
                        let e = i * m + j;
                        (raw[defined + e] == 1.0).then(|| f64::from(raw[values + e]))
                    })
                    .collect()
            })
            .collect()
    };
    GramMetrics { cosine: pairs(0, 2 * mm), gms: pairs(mm, 3 * mm), conflict_ratio: f64::from(raw[4 * mm]) }
}

/// Cosine matrix, GMS and conflict ratio of a row-major m × m Gramian `g` (1 ≤ m ≤ 32).
pub async fn gram_metrics(gpu: &Gpu, g: &[f32], m: usize) -> Result<GramMetrics, GpuError> {
    if m == 0 || m > MAX_TASKS || g.len() != m * m {
        return Err(GpuError::Unsupported(format!(
            "gram_metrics: G has {} entries for m = {m} (need m·m, 1 ≤ m ≤ {MAX_TASKS})",
            g.len()
        )));
    }
    gpu.check()?;
    let gram_buf = gpu.storage_init("G", bytemuck::cast_slice(g), wgpu::BufferUsages::empty());
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("metrics") });
    let out = encode(gpu, &mut encoder, &gram_buf, m);
    let mut parts = gpu.submit_and_read(encoder, &[(&out, (output_len(m) * 4) as u64)]).await?;
    Ok(decode(&parts.remove(0), m))
}
