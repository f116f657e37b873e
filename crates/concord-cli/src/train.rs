//! `concord train`: one run of a method on a toy problem, on the CPU or the GPU.

use crate::UsageError;
use clap::{Args, ValueEnum};
use concord_core::{run::run_with_progress, Method, OptimizerKind, Problem, ProblemKind, RunConfig};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A toy problem (2-D runs): cagrad-toy or cagrad-toy-scaled. Needs --start and --steps.
    #[arg(long, required_unless_present = "preset", conflicts_with = "preset")]
    problem: Option<String>,
    /// A named multi-task run (MLP, MoE or analytic): xor-conflict, circle-vs-gauss,
    /// gradnorm-scales, sinusoid-phases, pareto-synthetic, task-experts (task-routed MoE) or
    /// task-experts-dense (its dense twin).
    #[arg(long)]
    preset: Option<String>,
    /// The aggregation method: with --problem mean, sum, pcgrad, mgda or cagrad; with --preset
    /// any aggregator of `concord methods`.
    #[arg(long)]
    method: String,
    /// A method parameter as key=value (repeatable), e.g. --param c=0.5.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// A loss weighting for --preset runs (ew, uw, dwa, gradnorm, famo, gls, stch, rlw).
    #[arg(long, conflicts_with = "problem")]
    weighting: Option<String>,
    /// A loss-weighting parameter as key=value (repeatable).
    #[arg(long = "weighting-param", value_name = "KEY=VALUE", conflicts_with = "problem")]
    weighting_params: Vec<String>,
    /// The start point X,Y of a --problem run (write --start=-8.5,7.5 for negative numbers).
    #[arg(long, value_name = "X,Y", allow_hyphen_values = true, conflicts_with = "preset")]
    start: Option<String>,
    /// Number of optimizer steps (required with --problem; a preset has its own default).
    #[arg(long)]
    steps: Option<usize>,
    /// Learning rate (--problem default 0.001; a preset has its own).
    #[arg(long)]
    lr: Option<f64>,
    /// Optimizer of a --problem run: adam or sgd.
    #[arg(long, conflicts_with = "preset")]
    optimizer: Option<String>,
    /// Where the steps run.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// Print one JSON object with the result on stdout.
    #[arg(long)]
    json: bool,
    /// --problem: the trajectory as CSV (step,x1,x2,l1,l2). --preset: the run record as JSON
    /// (run.json) or the per-step metrics as CSV (run.csv), by extension.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// --preset: write losses.png and cosine.png into this folder (created if missing).
    #[arg(long, value_name = "DIR", conflicts_with = "problem")]
    plot: Option<PathBuf>,
    /// Seed for methods that draw random numbers (and, with --preset, the model init and batches).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    moe: crate::train_moe::MoeArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    Cpu,
    Gpu,
}

#[derive(Serialize)]
struct Report {
    problem: &'static str,
    method: Method,
    optimizer: OptimizerKind,
    backend: String,
    start: [f64; 2],
    steps: usize,
    #[serde(rename = "final")]
    final_point: [f64; 2],
    losses: Vec<f64>,
    error: Option<String>,
}

pub(crate) fn parse_params(raw: &[String]) -> Result<Vec<(String, f64)>, UsageError> {
    raw.iter()
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| UsageError(format!("--param '{p}' is not KEY=VALUE")))?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| UsageError(format!("--param {k}: '{v}' is not a number")))?;
            Ok((k.trim().to_string(), v))
        })
        .collect()
}

fn parse_start(s: &str) -> Result<[f64; 2], UsageError> {
    let parts: Vec<&str> = s.split(',').collect();
    let bad = || UsageError(format!("--start '{s}' must be two finite numbers X,Y"));
    if parts.len() != 2 {
        return Err(bad());
    }
    let x: f64 = parts[0].trim().parse().map_err(|_| bad())?;
    let y: f64 = parts[1].trim().parse().map_err(|_| bad())?;
    if !(x.is_finite() && y.is_finite()) {
        return Err(bad());
    }
    Ok([x, y])
}

pub fn run(args: TrainArgs) -> Result<(), UsageError> {
    if let Some(preset) = &args.preset {
        let opts = crate::train_preset::PresetArgs {
            preset: preset.clone(),
            method: args.method.clone(),
            params: args.params.clone(),
            weighting: args.weighting.clone(),
            weighting_params: args.weighting_params.clone(),
            steps: args.steps,
            seed: args.seed,
            lr: args.lr,
            gpu: args.backend == Backend::Gpu,
            json: args.json,
            out: args.out.clone(),
            plot: args.plot.clone(),
            moe: args.moe.spec()?,
        };
        return crate::train_preset::run(opts);
    }
    let problem: ProblemKind = args.problem.as_deref().unwrap_or_default().parse().map_err(UsageError)?;
    let method = Method::parse(&args.method, &parse_params(&args.params)?).map_err(UsageError)?;
    let optimizer =
        OptimizerKind::parse(args.optimizer.as_deref().unwrap_or("adam"), args.lr.unwrap_or(0.001)).map_err(UsageError)?;
    let start = parse_start(args.start.as_deref().ok_or_else(|| UsageError("--problem needs --start X,Y".into()))?)?;
    let steps = args.steps.ok_or_else(|| UsageError("--problem needs --steps N".into()))?;
    if steps == 0 {
        return Err(UsageError("--steps must be at least 1".into()));
    }
    let config = RunConfig { problem, start, method, optimizer, steps, seed: args.seed, record_every: (steps / 1000).max(1) };

    // A bar only where a person watches: a terminal on stderr, a long run, and not --json piped.
    let show_bar = std::io::stderr().is_terminal()
        && steps >= 10_000
        && !(args.json && !std::io::stdout().is_terminal());
    let bar = if show_bar { ProgressBar::new(steps as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {human_pos}/{human_len} steps, {elapsed} elapsed, eta {eta}")
            .expect("static template"),
    );

    let (points, final_point, steps, error, backend) = match args.backend {
        Backend::Cpu => {
            let t = run_with_progress(&config, |s| bar.set_position(s as u64));
            (t.points, t.final_point, t.steps, t.error, "cpu".to_string())
        }
        Backend::Gpu => gpu::run(&config, &bar)?,
    };
    bar.finish_and_clear();

    let toy = problem.toy();
    if let Some(path) = &args.out {
        write_csv(path, &toy, &points).map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    let report = Report {
        problem: problem.name(),
        method,
        optimizer,
        backend,
        start,
        steps,
        final_point,
        losses: toy.losses(&final_point),
        error,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("report serialises"));
    } else {
        println!(
            "{} on {} from ({}, {}) after {} steps [{}]: x = ({:.5}, {:.5}), L = ({:.5}, {:.5})",
            method.label(),
            report.problem,
            start[0],
            start[1],
            steps,
            report.backend,
            final_point[0],
            final_point[1],
            report.losses[0],
            report.losses[1]
        );
        if let Some(e) = &report.error {
            eprintln!("concord: warning: {e}");
        }
    }
    Ok(())
}

fn write_csv(path: &PathBuf, toy: &impl Problem, points: &[(usize, [f64; 2])]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "step,x1,x2,l1,l2")?;
    for (s, p) in points {
        let l = toy.losses(p);
        writeln!(f, "{s},{},{},{},{}", p[0], p[1], l[0], l[1])?;
    }
    f.flush()
}

mod gpu {
    use super::*;
    use concord_gpu::{Gpu, ToyBatch, ToyRunSpec};

    type Outcome = (Vec<(usize, [f64; 2])>, [f64; 2], usize, Option<String>, String);

    /// The whole run on the GPU, reading the position back every chunk for the CSV and the bar.
    pub fn run(config: &RunConfig, bar: &ProgressBar) -> Result<Outcome, UsageError> {
        let gpu = pollster::block_on(Gpu::new()).map_err(|e| UsageError(format!("no GPU backend: {e}")))?;
        let spec = ToyRunSpec {
            start: config.start,
            method: config.method,
            optimizer: config.optimizer,
            seed: config.seed as u32,
        };
        let mut batch = ToyBatch::new(&gpu, config.problem, &[spec]).map_err(|e| UsageError(e.to_string()))?;
        let chunk = config.record_every.max(1000);
        let mut points = vec![(0, config.start)];
        let mut done = 0usize;
        while done < config.steps {
            let k = chunk.min(config.steps - done);
            batch.advance(&gpu, k as u32);
            done += k;
            let p = pollster::block_on(batch.positions(&gpu)).map_err(|e| UsageError(e.to_string()))?[0];
            points.push((done, [p[0] as f64, p[1] as f64]));
            bar.set_position(done as u64);
        }
        let last = points.last().expect("start is recorded").1;
        let error = (!last.iter().all(|v| v.is_finite())).then(|| "the GPU run produced a non-finite position".to_string());
        Ok((points, last, done, error, format!("gpu: {}", gpu.adapter_label())))
    }
}
