//! `concord bench aggregate`: the median time of one aggregation of a random m × n matrix, or of
//! a matrix read from a file (`--input`, JSON or CSV as for `concord aggregate`).

use crate::aggregate::{parse_losses, parse_params, read_matrix_file, Precision, MAX_ROWS};
use crate::UsageError;
use clap::{Args, Subcommand};
use concord_core::aggregators::{registry, AggregatorSpec, JacobianF32};
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

// A child module (main.rs is not touched): it shares `median_call_us`.
#[path = "bench_conflict.rs"]
mod bench_conflict;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Median time per call of one aggregator on a random m × n matrix (seeded).
    Aggregate(BenchAggregateArgs),
    /// Training steps per second of a preset on the CPU or the GPU trainer.
    Train(crate::bench_train::BenchTrainArgs),
    /// Wall time of one 2-D loss-landscape slice of an MLP on the CPU (`landscape::mlp_slice`).
    Landscape(crate::bench_landscape::BenchLandscapeArgs),
    /// The GPU Gram kernel's bandwidth as a fraction of a plain copy's (bench_gram.rs).
    Gram(crate::bench_gram::BenchGramArgs),
    /// What a hybrid GPU step would pay to hand G to a CPU solver and take w back (bench_gram.rs).
    RoundTrip(crate::bench_gram::BenchRoundTripArgs),
    /// Time per refresh of the per-point conflict map of a preset, on the CPU or the GPU.
    ConflictMap(bench_conflict::BenchConflictArgs),
}

#[derive(Args, Debug)]
pub struct BenchAggregateArgs {
    /// The aggregator (see `concord methods`).
    #[arg(long)]
    method: String,
    /// Rows (tasks). Required unless --input is given (then it must match the file, if given).
    #[arg(long, required_unless_present = "input")]
    m: Option<usize>,
    /// Columns (parameters). Required unless --input is given (then it must match the file, if given).
    #[arg(long, required_unless_present = "input")]
    n: Option<usize>,
    /// Time this matrix (JSON `[[...],...]` or CSV rows, as for `concord aggregate`) instead of
    /// the seeded random one.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// A parameter as key=value (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", allow_hyphen_values = true)]
    params: Vec<String>,
    /// Precision of the Jacobian: f64 (column-major `DMatrix`, the CPU reference) or f32
    /// (row-major, what training frameworks hand out; both O(mn) passes in f32, the m × m
    /// weighting in f64).
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    precision: Precision,
    /// The task losses (m numbers, comma-separated) passed with every call, as for `concord
    /// aggregate --losses`: required by the loss-aware methods (MoCo, DB-MTL, MGDA gn=loss).
    #[arg(long, value_name = "L1,L2,…")]
    losses: Option<String>,
    /// Threads for the O(mn) passes (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object {"median_us", "m", "n", "method", "calls", "input", "precision",
    /// "threads", "losses"} on stdout ("input": the file's path, or null for the random matrix;
    /// "losses": the --losses values, or null).
    #[arg(long)]
    json: bool,
}

/// At most this many entries (8 bytes each) in the random matrix.
const MAX_ENTRIES: usize = 50_000_000;
/// Warm-up: at least 3 calls, until this much time has passed.
const WARMUP: Duration = Duration::from_millis(200);
/// Measurement: until this much time has passed (or `MAX_SAMPLES` samples).
const BUDGET: Duration = Duration::from_millis(1500);
const MAX_SAMPLES: usize = 5_000;
/// Calls shorter than this are timed in batches, so that the clock's resolution does not matter.
const MIN_SAMPLE: Duration = Duration::from_micros(50);

pub fn run(args: BenchArgs) -> Result<(), UsageError> {
    match args.command {
        BenchCommand::Aggregate(a) => aggregate(a),
        BenchCommand::Train(a) => crate::bench_train::run(a),
        BenchCommand::Landscape(a) => crate::bench_landscape::run(a),
        BenchCommand::Gram(a) => crate::bench_gram::run(a),
        BenchCommand::RoundTrip(a) => crate::bench_gram::round_trip(a),
        BenchCommand::ConflictMap(a) => bench_conflict::run(a),
    }
}

/// m × n with i.i.d. standard-normal entries from ChaCha8 seeded with 0 (Box–Muller).
fn random_matrix(m: usize, n: usize) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    DMatrix::from_fn(m, n, |_, _| {
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    })
}

fn aggregate(args: BenchAggregateArgs) -> Result<(), UsageError> {
    let params = parse_params(&args.params)?;
    // Unknown methods, m-independent parameter errors and the losses come before any matrix.
    let spec = AggregatorSpec::parse(&args.method, &params).map_err(UsageError)?;
    let losses = args.losses.as_deref().map(parse_losses).transpose()?;
    if losses.is_none() && spec.needs_losses() {
        let e = spec.build_without_losses(1, 0).err().unwrap_or_default();
        return Err(UsageError(format!("{e}; or give the losses to time it with: --losses L1,L2,…")));
    }
    let j = match &args.input {
        Some(path) => {
            let j = read_matrix_file(path)?;
            for (flag, given, actual) in [("--m", args.m, j.nrows()), ("--n", args.n, j.ncols())] {
                if given.is_some_and(|g| g != actual) {
                    return Err(UsageError(format!(
                        "{flag} {} does not match {}, which is {} × {}",
                        given.unwrap_or_default(),
                        path.display(),
                        j.nrows(),
                        j.ncols()
                    )));
                }
            }
            j
        }
        None => {
            let (m, n) = (args.m.unwrap_or_default(), args.n.unwrap_or_default());
            if m == 0 || n == 0 {
                return Err(UsageError(format!("--m and --n must be at least 1, got {m} × {n}")));
            }
            if m > MAX_ROWS {
                return Err(UsageError(format!(
                    "--m {m} is too large: at most {MAX_ROWS} rows (the aggregators form the m × m Gramian)"
                )));
            }
            if m.checked_mul(n).is_none_or(|e| e > MAX_ENTRIES) {
                return Err(UsageError(format!(
                    "{m} × {n} is too large for the benchmark (at most {MAX_ENTRIES} entries)"
                )));
            }
            spec.build(m, 0).map_err(UsageError)?;
            random_matrix(m, n)
        }
    };
    let (m, n) = j.shape();
    if let Some(l) = losses.as_ref().filter(|l| l.len() != m) {
        return Err(UsageError(format!(
            "--losses has {} entries but the matrix has m = {m} rows (one loss per row)",
            l.len()
        )));
    }
    let mut aggregator = spec.build(m, 0).map_err(UsageError)?;
    // Methods that ignore the losses take the plain call's path (`aggregate_with_losses`
    // defaults to it), so the timing of every other method is unchanged.
    let call_losses = losses.clone().unwrap_or_else(|| vec![1.0; m]);
    let method = registry::find(args.method.trim()).expect("built, so listed").name;
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = args.threads {
        if t == 0 {
            return Err(UsageError("--threads must be at least 1".into()));
        }
        pool = pool.num_threads(t);
    }
    let pool =
        pool.build().map_err(|e| UsageError(format!("cannot start {} threads: {e}", args.threads.unwrap_or(0))))?;
    let threads = pool.current_num_threads();
    let median_us = match args.precision {
        Precision::F64 => pool.install(|| {
            median_call_us(|| drop(black_box(aggregator.aggregate_with_losses(black_box(&j), &call_losses))))
        }),
        Precision::F32 => {
            let jf = JacobianF32::from_f64(&j);
            pool.install(|| {
                median_call_us(|| drop(black_box(aggregator.aggregate_f32_with_losses(black_box(&jf), &call_losses))))
            })
        }
    };
    let (median_us, calls) = median_us;
    let precision = args.precision.name();

    if args.json {
        let out = serde_json::json!({
            "median_us": median_us,
            "m": m,
            "n": n,
            "method": method,
            "calls": calls,
            "input": args.input.as_ref().map(|p| p.display().to_string()),
            "precision": precision,
            "threads": threads,
            "losses": losses,
        });
        println!("{out}");
    } else {
        let what = match &args.input {
            Some(path) => format!("the {m}×{n} matrix of {}", path.display()),
            None => format!("a random {m}×{n} matrix"),
        };
        println!(
            "{method} on {what} ({precision}, {threads} threads): median {median_us:.3} µs per call ({calls} calls)"
        );
    }
    Ok(())
}

/// Warm-up, then the median µs per call of `call` and the number of timed calls.
fn median_call_us(mut call: impl FnMut()) -> (f64, usize) {
    // Warm-up, which also estimates the time per call.
    let start = Instant::now();
    let mut warm_calls = 0u32;
    while warm_calls < 3 || start.elapsed() < WARMUP {
        call();
        warm_calls += 1;
        if start.elapsed() > BUDGET {
            break; // a slow method: the warm-up already took the budget
        }
    }
    let per_call = start.elapsed() / warm_calls;
    let batch =
        if per_call >= MIN_SAMPLE { 1 } else { (MIN_SAMPLE.as_nanos() / per_call.as_nanos().max(1)) as usize + 1 };

    let mut samples: Vec<f64> = Vec::new();
    let measure = Instant::now();
    while samples.is_empty() || (measure.elapsed() < BUDGET && samples.len() < MAX_SAMPLES) {
        let t = Instant::now();
        for _ in 0..batch {
            call();
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
    }
    let calls = samples.len() * batch;
    samples.sort_by(f64::total_cmp);
    let k = samples.len();
    let median_us = if k % 2 == 1 { samples[k / 2] } else { 0.5 * (samples[k / 2 - 1] + samples[k / 2]) };
    (median_us, calls)
}
