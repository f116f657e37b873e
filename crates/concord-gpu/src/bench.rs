//! The Gram kernel's bandwidth against a plain copy on the same adapter (`concord bench gram`).
//! Native only (wall-clock timing with `std::time::Instant`).
//!
//! Both kernels stream the same m·n f32 values of J from one storage buffer, with their buffers
//! and bind groups made once (the Gram kernel through `GramPlan`). Each is timed as
//! `reps` dispatches in one submission, waited on with a 16-byte readback, `reps` doubled from
//! 1 until a submission takes at least `min_time` (submission and readback then cost ≪ 1 %),
//! best of three such submissions. Bytes moved: the Gram kernel reads J once (m·n·4 bytes; the
//! partials and G are ≪ 1 % for n ≫ 512); the copy reads and writes it (2·m·n·4 bytes).

use std::time::{Duration, Instant};

use crate::kernels::{check_shape, copy, gram};
use crate::{Gpu, GpuError};

/// One measurement of `concord bench gram`.
#[derive(Clone, Debug, PartialEq)]
pub struct GramBandwidth {
    pub adapter: String,
    pub m: usize,
    pub n: usize,
    /// Seconds per Gram computation (both passes).
    pub gram_seconds: f64,
    /// Seconds per copy of J.
    pub copy_seconds: f64,
    /// m·n·4 / gram_seconds, in GB/s (10⁹ bytes).
    pub gram_gbps: f64,
    /// 2·m·n·4 / copy_seconds, in GB/s.
    pub copy_gbps: f64,
    /// gram_gbps / copy_gbps.
    pub fraction: f64,
}

/// Times G = JJᵀ and a copy of J for a seeded m × n J (values in [−1, 1)).
pub fn gram_bandwidth(gpu: &Gpu, m: usize, n: usize, min_time: Duration) -> Result<GramBandwidth, GpuError> {
    check_shape(m, n, m.saturating_mul(n), "bench gram")?;
    if n == 0 {
        return Err(GpuError::Unsupported("bench gram: n must be ≥ 1".into()));
    }
    gpu.check()?;
    let len = m * n;
    let padded = len.next_multiple_of(4);
    gpu.check_binding_size("bench gram: J", (padded * 4) as u64)?;
    // A cheap deterministic fill (xorshift); the values do not affect the timing.
    let mut state = 0x9E37_79B9u32;
    let data: Vec<f32> = (0..padded)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 8) as f32 / 8_388_608.0 - 1.0
        })
        .collect();
    let jac = gpu.storage_init("bench J", bytemuck::cast_slice(&data), wgpu::BufferUsages::empty());
    let dst =
        gpu.buffer("bench copy dst", (padded * 4) as u64, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
    let len4 = (padded / 4) as u32;

    let plan = gram::GramPlan::new(gpu, &jac, m, n);
    let gram_seconds = time_reps(gpu, min_time, &mut |encoder| {
        plan.record(gpu, encoder);
        plan.out.clone()
    })?;
    let copy_seconds = time_reps(gpu, min_time, &mut |encoder| {
        copy::encode(gpu, encoder, &jac, &dst, len4);
        dst.clone()
    })?;
    let bytes = (len * 4) as f64;
    let gram_gbps = bytes / gram_seconds / 1e9;
    let copy_gbps = 2.0 * bytes / copy_seconds / 1e9;
    Ok(GramBandwidth {
        adapter: gpu.adapter_label(),
        m,
        n,
        gram_seconds,
        copy_seconds,
        gram_gbps,
        copy_gbps,
        fraction: gram_gbps / copy_gbps,
    })
}

/// Seconds per rep of `encode_one` (which returns a buffer to read 16 bytes of when done).
fn time_reps(
    gpu: &Gpu,
    min_time: Duration,
    encode_one: &mut dyn FnMut(&mut wgpu::CommandEncoder) -> wgpu::Buffer,
) -> Result<f64, GpuError> {
    let mut run = |reps: u32| -> Result<Duration, GpuError> {
        let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("bench") });
        let mut last = None;
        for _ in 0..reps {
            last = Some(encode_one(&mut encoder));
        }
        let last = last.expect("reps ≥ 1");
        let start = Instant::now();
        pollster::block_on(gpu.submit_and_read(encoder, &[(&last, 16)]))?;
        Ok(start.elapsed())
    };
    run(1)?; // warm-up: pipeline creation, first-touch of the buffers
    let mut reps = 1u32;
    let mut took = run(reps)?;
    while took < min_time && reps < 1 << 16 {
        reps *= 2;
        took = run(reps)?;
    }
    let mut best = took;
    for _ in 0..2 {
        best = best.min(run(reps)?);
    }
    Ok(best.as_secs_f64() / f64::from(reps))
}

/// One measurement of `concord bench round-trip`: what a GPU run pays per step to hand an
/// m × m Gramian to a CPU solver and take its weights back.
#[derive(Clone, Debug, PartialEq)]
pub struct HostRoundTrip {
    pub adapter: String,
    pub m: usize,
    /// Median seconds of one round trip: a submission that copies G (m × m) out of a storage
    /// buffer, the wait for it and the map of its staging buffer, then the upload of m weights
    /// (`write_buffer`, flushed by the next round trip's submission).
    pub seconds: f64,
    /// Round trips timed.
    pub samples: usize,
}

/// Times the G → host → w round trip of a hybrid step (the solve itself excluded: that is
/// `concord bench aggregate`) for `min_time` after a warm-up, on an otherwise idle adapter: the
/// least a hybrid step pays, before the lost overlap of many steps per submission.
pub fn host_round_trip(gpu: &Gpu, m: usize, min_time: Duration) -> Result<HostRoundTrip, GpuError> {
    check_shape(m, 1, m, "bench round-trip")?;
    gpu.check()?;
    let g: Vec<f32> = (0..m * m).map(|i| (i % (m + 1) == 0) as u32 as f32).collect();
    let gram_buf = gpu.storage_init("bench G", bytemuck::cast_slice(&g), wgpu::BufferUsages::COPY_SRC);
    let weights = gpu.buffer("bench w", (m * 4) as u64, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST);
    let w = vec![1.0f32 / m as f32; m];
    let once = || -> Result<Duration, GpuError> {
        let start = Instant::now();
        let encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("round trip") });
        let back = pollster::block_on(gpu.submit_and_read(encoder, &[(&gram_buf, (m * m * 4) as u64)]))?;
        std::hint::black_box(&back);
        gpu.queue.write_buffer(&weights, 0, bytemuck::cast_slice(&w));
        Ok(start.elapsed())
    };
    for _ in 0..20 {
        once()?;
    }
    let mut samples = Vec::new();
    let begin = Instant::now();
    while begin.elapsed() < min_time || samples.len() < 20 {
        samples.push(once()?);
    }
    samples.sort();
    Ok(HostRoundTrip {
        adapter: gpu.adapter_label(),
        m,
        seconds: samples[samples.len() / 2].as_secs_f64(),
        samples: samples.len(),
    })
}
