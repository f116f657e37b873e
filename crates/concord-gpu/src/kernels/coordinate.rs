//! The aggregators that work per coordinate of J rather than from the Gramian — TrimmedMean
//! (`shaders/coordinate_trimmed_mean.wgsl`) and GradDrop (`shaders/coordinate_graddrop.wgsl`):
//! d straight from J, one invocation per column, no weights.
//!
//! GradDrop's draws U are not made on the GPU: the host draws them from exactly the ChaCha8
//! stream concord-core's `GradDrop` uses (n per call, in column order, the same seed) and
//! uploads them, so a GPU run keeps and drops the same coordinates as the CPU run.

use bytemuck::{Pod, Zeroable};
use concord_core::aggregators::{AggregatorSpec, GradDrop, TrimmedMean};

use super::mlp::{grid, Dispatch};
use super::{check_shape, MAX_TASKS};
use crate::{Gpu, GpuError};

/// The registry names of the per-coordinate aggregators the GPU trainer runs from J.
pub const COORDINATE_METHODS: &[&str] = &["trimmed-mean", "graddrop"];

/// Both kernels' parameter block (`TrimParams` / `DropParams`): m, n, the dispatch's x width,
/// then TrimmedMean's trim or GradDrop's offset into the draws.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct CoordParams {
    m: u32,
    n: u32,
    groups_x: u32,
    extra: u32,
}

/// A per-coordinate aggregator as the GPU runs it.
#[derive(Clone, Debug)]
pub enum GpuCoordinate {
    /// TrimmedMean with its trim number t (clamped per call as on the CPU).
    TrimmedMean { trim: usize },
    /// GradDrop: concord-core's own aggregator (seeded with the run's seed), used only for
    /// its draws.
    GradDrop(Box<GradDrop>),
}

impl GpuCoordinate {
    /// The per-coordinate aggregator of `spec` (seeded as concord-core's registry seeds it),
    /// `None` for any other method.
    pub fn from_spec(spec: &AggregatorSpec, seed: u64) -> Option<Self> {
        match spec.name() {
            "trimmed-mean" => Some(GpuCoordinate::TrimmedMean { trim: spec.int("trim_number").unwrap_or(0) }),
            "graddrop" => Some(GpuCoordinate::GradDrop(Box::new(GradDrop::new(seed)))),
            _ => None,
        }
    }

    /// The next `calls` calls' draws (n per call, the CPU aggregator's order); empty for
    /// TrimmedMean.
    pub fn draws(&mut self, calls: usize, n: usize) -> Vec<f32> {
        match self {
            GpuCoordinate::TrimmedMean { .. } => Vec::new(),
            GpuCoordinate::GradDrop(g) => (0..calls).flat_map(|_| g.draws(n)).map(|u| u as f32).collect(),
        }
    }

    /// Encode d = f(J) for the row-major m × n J in `jac` into `out` (n floats); GradDrop reads
    /// its draws from `draws[offset..offset + n]`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dispatch(
        &self,
        gpu: &Gpu,
        pipes: &CoordinatePipelines,
        jac: &wgpu::Buffer,
        draws: &wgpu::Buffer,
        offset: usize,
        out: &wgpu::Buffer,
        m: usize,
        n: usize,
    ) -> Dispatch {
        let (gx, gy) = grid(n);
        match self {
            GpuCoordinate::TrimmedMean { trim } => {
                let t = TrimmedMean::new(*trim).effective_trim(m) as u32;
                let p = CoordParams { m: m as u32, n: n as u32, groups_x: gx, extra: t };
                Dispatch::new(gpu, &pipes.trimmed_mean, &[jac, out], bytemuck::bytes_of(&p), (gx, gy))
            }
            GpuCoordinate::GradDrop(_) => {
                let p = CoordParams { m: m as u32, n: n as u32, groups_x: gx, extra: offset as u32 };
                Dispatch::new(gpu, &pipes.graddrop, &[jac, draws, out], bytemuck::bytes_of(&p), (gx, gy))
            }
        }
    }
}

/// The two kernels' pipelines.
pub(crate) struct CoordinatePipelines {
    trimmed_mean: wgpu::ComputePipeline,
    graddrop: wgpu::ComputePipeline,
}

impl CoordinatePipelines {
    pub(crate) fn new(gpu: &Gpu) -> Self {
        CoordinatePipelines {
            trimmed_mean: gpu.create_pipeline("coordinate_trimmed_mean.wgsl", "trimmed_mean"),
            graddrop: gpu.create_pipeline("coordinate_graddrop.wgsl", "graddrop"),
        }
    }
}

async fn run_one(
    gpu: &Gpu,
    agg: &GpuCoordinate,
    j: &[f32],
    u: &[f32],
    m: usize,
    n: usize,
) -> Result<Vec<f32>, GpuError> {
    check_shape(m, n, j.len(), agg_name(agg))?;
    if n == 0 {
        return Ok(Vec::new());
    }
    gpu.check()?;
    gpu.check_binding_size("J", (j.len() * 4) as u64)?;
    let pipes = CoordinatePipelines::new(gpu);
    let jac = gpu.storage_init("J", bytemuck::cast_slice(j), wgpu::BufferUsages::empty());
    // A zero-length binding is invalid: TrimmedMean's unused draws get one float.
    let padded: &[f32] = if u.is_empty() { &[0.0] } else { u };
    let draws = gpu.storage_init("draws", bytemuck::cast_slice(padded), wgpu::BufferUsages::empty());
    let out = gpu.buffer("update", (n * 4) as u64, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
    let d = agg.dispatch(gpu, &pipes, &jac, &draws, 0, &out, m, n);
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("coordinate") });
    {
        let mut pass = encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("coordinate"), timestamp_writes: None });
        d.record(&mut pass);
    }
    let mut parts = gpu.submit_and_read(encoder, &[(&out, (n * 4) as u64)]).await?;
    Ok(parts.remove(0))
}

fn agg_name(agg: &GpuCoordinate) -> &'static str {
    match agg {
        GpuCoordinate::TrimmedMean { .. } => "trimmed-mean",
        GpuCoordinate::GradDrop(_) => "graddrop",
    }
}

/// TrimmedMean's d for the row-major m × n J (1 ≤ m ≤ [`MAX_TASKS`]), trim clamped as
/// concord-core's `TrimmedMean` clamps it. Mirrors `TrimmedMean::aggregate_f32`.
pub async fn trimmed_mean(gpu: &Gpu, j: &[f32], m: usize, n: usize, trim: usize) -> Result<Vec<f32>, GpuError> {
    run_one(gpu, &GpuCoordinate::TrimmedMean { trim }, j, &[], m, n).await
}

/// GradDrop's d for the row-major m × n J with the draws `u` (one per column). Mirrors
/// concord-core's `graddrop`.
pub async fn graddrop(gpu: &Gpu, j: &[f32], u: &[f32], m: usize, n: usize) -> Result<Vec<f32>, GpuError> {
    if u.len() != n {
        return Err(GpuError::Unsupported(format!("graddrop: {} draws for n = {n} columns", u.len())));
    }
    run_one(gpu, &GpuCoordinate::GradDrop(Box::new(GradDrop::new(0))), j, u, m, n).await
}

/// The most tasks a GPU run of these aggregators takes: its step metrics come from the Gramian
/// of [J; d] (m + 1 rows), which the Gram kernel computes for at most [`MAX_TASKS`] rows.
pub const MAX_COORDINATE_TASKS: usize = MAX_TASKS - 1;

/// What a GPU trainer step of a per-coordinate aggregator needs besides the kernel: [J; d]
/// ((m + 1) × n: the plain J, copied before any loss weighting scales it, then the step's d),
/// whose Gramian gives the step's metrics as the CPU's `StepMetrics::new(J, d)` computes them.
pub(crate) struct CoordinateStep {
    pub agg: GpuCoordinate,
    pub pipes: CoordinatePipelines,
    pub ext: wgpu::Buffer,
    pub d: wgpu::Buffer,
}

impl CoordinateStep {
    /// d = f(J) (GradDrop with `draws.0[draws.1..]`) into the first n floats of `update` and
    /// the last row of [J; d]; then the Gramian of [J; d]. Returns G (m × m) and (Jd, ‖d‖²)
    /// (m + 1 floats: what the history slot holds in a weighting's w and completion flag).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        jac: &wgpu::Buffer,
        draws: (&wgpu::Buffer, usize),
        update: &wgpu::Buffer,
        m: usize,
        n: usize,
    ) -> (wgpu::Buffer, wgpu::Buffer) {
        let f = |x: usize| (x * 4) as u64;
        let dispatch = self.agg.dispatch(gpu, &self.pipes, jac, draws.0, draws.1, &self.d, m, n);
        {
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("coordinate"), timestamp_writes: None });
            dispatch.record(&mut pass);
        }
        encoder.copy_buffer_to_buffer(&self.d, 0, update, 0, f(n));
        encoder.copy_buffer_to_buffer(&self.d, 0, &self.ext, f(m * n), f(n));
        directional_gram(gpu, encoder, &self.ext, m, n)
    }
}

/// The Gramian of [J; d] in `ext` ((m + 1) × n, m + 1 ≤ [`MAX_TASKS`]), split into G (m × m)
/// and (Jd, ‖d‖²) (m + 1 floats): a step's metrics when d is not Jᵀw (these aggregators, and
/// MoCo / DB-MTL in `host_weighting`).
pub(crate) fn directional_gram(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    ext: &wgpu::Buffer,
    m: usize,
    n: usize,
) -> (wgpu::Buffer, wgpu::Buffer) {
    let f = |x: usize| (x * 4) as u64;
    let g_ext = super::gram::encode(gpu, encoder, ext, m + 1, n);
    let rw = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let gram = gpu.buffer("gram", f(m * m), rw);
    for i in 0..m {
        encoder.copy_buffer_to_buffer(&g_ext, f(i * (m + 1)), &gram, f(i * m), f(m));
    }
    let directional = gpu.buffer("Jd, |d|²", f(m + 1), rw);
    encoder.copy_buffer_to_buffer(&g_ext, f(m * (m + 1)), &directional, 0, f(m + 1));
    (gram, directional)
}
