//! `concord bench gram`: the GPU Gram kernel's achieved bandwidth as a fraction of a plain copy
//! kernel's over the same bytes on the same adapter (concord_gpu::bench::gram_bandwidth).

use crate::UsageError;
use clap::{Args, ValueEnum};
use concord_gpu::Gpu;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GramBackend {
    /// The wgpu adapter (`WGPU_ADAPTER_NAME` picks one; lavapipe without a GPU).
    Gpu,
}

#[derive(Args, Debug)]
pub struct BenchGramArgs {
    /// Rows of J (tasks), 1–32.
    #[arg(long)]
    m: usize,
    /// Columns of J (parameters), ≥ 1.
    #[arg(long)]
    n: usize,
    /// Where the Gram kernel runs (only the GPU kernel is measured here; the CPU Gram is timed
    /// by `concord bench aggregate`).
    #[arg(long, value_enum, default_value = "gpu")]
    backend: GramBackend,
    /// Each timed submission lasts at least this many milliseconds (more: steadier figures).
    #[arg(long, default_value_t = 300)]
    min_time_ms: u64,
    /// Print one JSON object {"adapter", "m", "n", "gram_seconds", "copy_seconds", "gram_gbps",
    /// "copy_gbps", "fraction"} on stdout.
    #[arg(long)]
    json: bool,
}

/// The most J entries the benchmark allocates (f32, so 512 MB).
const MAX_ENTRIES: usize = 128 * 1024 * 1024;

pub fn run(args: BenchGramArgs) -> Result<(), UsageError> {
    let (m, n) = (args.m, args.n);
    if !(1..=concord_gpu::MAX_TASKS).contains(&m) {
        return Err(UsageError(format!("--m must be in 1..={}, got {m}", concord_gpu::MAX_TASKS)));
    }
    if n == 0 {
        return Err(UsageError("--n must be at least 1".into()));
    }
    if m.checked_mul(n).is_none_or(|e| e > MAX_ENTRIES) {
        return Err(UsageError(format!("{m} × {n} is too large for the benchmark (at most {MAX_ENTRIES} entries)")));
    }
    if args.min_time_ms == 0 || args.min_time_ms > 60_000 {
        return Err(UsageError(format!("--min-time-ms must be in 1..=60000, got {}", args.min_time_ms)));
    }
    let GramBackend::Gpu = args.backend;
    let gpu = pollster::block_on(Gpu::new()).map_err(|e| UsageError(format!("no GPU adapter: {e}")))?;
    let r = concord_gpu::bench::gram_bandwidth(&gpu, m, n, Duration::from_millis(args.min_time_ms))?;
    if args.json {
        let out = serde_json::json!({
            "adapter": r.adapter,
            "m": r.m,
            "n": r.n,
            "gram_seconds": r.gram_seconds,
            "copy_seconds": r.copy_seconds,
            "gram_gbps": r.gram_gbps,
            "copy_gbps": r.copy_gbps,
            "fraction": r.fraction,
        });
        println!("{out}");
    } else {
        println!(
            "gram {m}×{n} on {}: {:.3} ms, {:.2} GB/s; copy {:.3} ms, {:.2} GB/s; fraction {:.3}",
            r.adapter,
            r.gram_seconds * 1e3,
            r.gram_gbps,
            r.copy_seconds * 1e3,
            r.copy_gbps,
            r.fraction
        );
    }
    Ok(())
}

/// `concord bench round-trip`: the median time of one G → host → w round trip on the GPU
/// adapter (concord_gpu::bench::host_round_trip), the per-step price of solving a weighting
/// on the CPU inside a GPU run.
#[derive(Args, Debug)]
pub struct BenchRoundTripArgs {
    /// Tasks (G is m × m), 1–32.
    #[arg(long)]
    m: usize,
    /// Time round trips for at least this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    min_time_ms: u64,
    /// Print one JSON object {"adapter", "m", "median_us", "samples"} on stdout.
    #[arg(long)]
    json: bool,
}

pub fn round_trip(args: BenchRoundTripArgs) -> Result<(), UsageError> {
    let m = args.m;
    if !(1..=concord_gpu::MAX_TASKS).contains(&m) {
        return Err(UsageError(format!("--m must be in 1..={}, got {m}", concord_gpu::MAX_TASKS)));
    }
    if args.min_time_ms == 0 || args.min_time_ms > 60_000 {
        return Err(UsageError(format!("--min-time-ms must be in 1..=60000, got {}", args.min_time_ms)));
    }
    let gpu = pollster::block_on(Gpu::new()).map_err(|e| UsageError(format!("no GPU adapter: {e}")))?;
    let r = concord_gpu::bench::host_round_trip(&gpu, m, Duration::from_millis(args.min_time_ms))?;
    let us = r.seconds * 1e6;
    if args.json {
        println!("{}", serde_json::json!({ "adapter": r.adapter, "m": r.m, "median_us": us, "samples": r.samples }));
    } else {
        println!("G ({m}×{m}) → host → w round trip on {}: {us:.1} µs median of {}", r.adapter, r.samples);
    }
    Ok(())
}
