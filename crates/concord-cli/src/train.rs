//! `concord train`: one run of a method on a toy problem, on the CPU or the GPU.

use crate::run_config::{self, Loaded};
use crate::train_preset::parse_kv;
use crate::UsageError;
use clap::{Args, ValueEnum};
use concord_core::dynamics::{LrSchedule, SamSpec, TaskSchedule};
use concord_core::train::{Backend as RunBackend, DataSource, Precision, RunRecord, TrainOptimizer};
use concord_core::{AggregatorSpec, MethodSpec, Problem, ProblemKind, TrainConfig, Trainer, WeightingSpec};
use concord_gpu::Gpu;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A toy problem: cagrad-toy or cagrad-toy-scaled (the same as --preset of that name, with
    /// the toy's outputs: the final point, a trajectory CSV). Defaults: the first published
    /// start, 100 000 steps, Adam at lr 0.001.
    #[arg(long, required_unless_present_any = ["preset", "config", "hash"], conflicts_with_all = ["preset", "config", "hash"])]
    problem: Option<String>,
    /// A named run: xor-conflict, circle-vs-gauss, gradnorm-scales, sinusoid-phases,
    /// pareto-synthetic, task-experts (task-routed MoE), task-experts-dense (its dense twin),
    /// conflict-wedge (two tasks that fight in one quarter of the plane), cagrad-toy,
    /// cagrad-toy-scaled, or the training-dynamics presets sam-flattens, spam-spike,
    /// alternating-vs-joint, sequential-gap, merge-or-joint (their first run; the others differ
    /// by the options below).
    #[arg(long, conflicts_with_all = ["config", "hash"])]
    preset: Option<String>,
    /// A full run config as JSON (FILE, or - for stdin): what `concord config --preset NAME`
    /// prints, a run record written by `--out run.json`, or a run file exported from the page
    /// (Export run), which replays to the step the page had reached. The flags below override it.
    #[arg(long, value_name = "FILE|-", conflicts_with = "hash")]
    config: Option<PathBuf>,
    /// A playground URL or its hash (`'#preset=xor-conflict&methods=upgrad&lr=0.01'`): the run the
    /// page builds from it, for the preset's own number of steps unless --steps says otherwise.
    #[arg(long, value_name = "URL|HASH")]
    hash: Option<String>,
    /// Which run of a page export or of the hash's arena (0-based, in the page's order; default 0).
    #[arg(long, value_name = "K")]
    run: Option<usize>,
    /// The aggregator: any of `concord methods` (default: the preset's own method — mean for the
    /// multi-task presets, CAGrad with c = 0.5 for the toys). The text form
    /// `aggregator[+weighting][+sample-weighting][:key=value…]` is accepted too, e.g.
    /// `cagrad:c=0.3` or `upgrad+harmonize` (sample weightings: harmonize, curriculum,
    /// conflict-mask; MLP models, on the CPU).
    #[arg(long)]
    method: Option<String>,
    /// A method parameter as key=value (repeatable), e.g. --param c=0.5.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// A loss weighting (ew, uw, dwa, gradnorm, famo, gls, stch, rlw).
    #[arg(long)]
    weighting: Option<String>,
    /// A loss-weighting parameter as key=value (repeatable).
    #[arg(long = "weighting-param", value_name = "KEY=VALUE")]
    weighting_params: Vec<String>,
    /// The start point X,Y of a toy run (write --start=-8.5,7.5 for negative numbers).
    #[arg(long, value_name = "X,Y", allow_hyphen_values = true)]
    start: Option<String>,
    /// Number of optimizer steps (a preset has its own default).
    #[arg(long)]
    steps: Option<usize>,
    /// Learning rate (a preset has its own default).
    #[arg(long)]
    lr: Option<f64>,
    /// Optimizer: adam, sgd, adamw (weight decay 0.01), spam (spike-aware Adam) or sam / asam
    /// (sharpness-aware, around Adam unless --base-optimizer); default the preset's. The
    /// learning rate is kept.
    #[arg(long, value_name = "NAME")]
    optimizer: Option<String>,
    /// The optimizer that --optimizer sam / asam wraps: sgd, adam (default), adamw or spam.
    #[arg(long, value_name = "NAME")]
    base_optimizer: Option<String>,
    /// SAM/ASAM's neighbourhood radius ρ (default 0.05 for sam, 0.5 for asam).
    #[arg(long, value_name = "R", allow_hyphen_values = true)]
    rho: Option<f64>,
    /// Scale each update to at most this norm (gradient-norm clipping after aggregation).
    #[arg(long, value_name = "X", allow_hyphen_values = true)]
    clip_norm: Option<f64>,
    /// Linear learning-rate warm-up over this many steps (the first update gets lr·0).
    #[arg(long, value_name = "STEPS")]
    warmup: Option<usize>,
    /// The learning rate after the warm-up: constant, or cosine (half a cosine down to 0 at the
    /// last step).
    #[arg(long, value_name = "constant|cosine")]
    lr_schedule: Option<String>,
    /// Which tasks a step trains: joint (all), alternating (one in turn), sample (one at
    /// random) or sequential (one after another, --switch-every steps each).
    #[arg(long, value_name = "joint|alternating|sample|sequential")]
    schedule: Option<String>,
    /// --schedule sequential: the steps each task trains before the next one takes over.
    #[arg(long, value_name = "N")]
    switch_every: Option<usize>,
    /// --schedule alternating: each task's interval (IMP's weighted round robin: pass p visits
    /// task t when p is a multiple of its interval; 1,2 trains task 2 every other pass).
    #[arg(long, value_name = "I,I,…", value_delimiter = ',')]
    task_intervals: Option<Vec<usize>>,
    /// --schedule sample: each task's sampling weight (uniform without it).
    #[arg(long, value_name = "W,W,…", value_delimiter = ',', allow_hyphen_values = true)]
    task_weights: Option<Vec<f64>>,
    /// Where the steps run.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// CPU step arithmetic: f32 (the fast path; the presets' default) or f64 (the reference).
    /// MoE models and the analytic problems (pareto-synthetic, the toys) always step in f64.
    #[arg(long, value_parser = Precision::parse)]
    precision: Option<Precision>,
    /// Print one JSON object with the result on stdout.
    #[arg(long)]
    json: bool,
    /// Toys: the trajectory as CSV (step,x1,x2,l1,l2). Other presets: the run record as JSON
    /// (run.json) or the per-step metrics as CSV (run.csv), by extension.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Multi-task presets: write losses.png and cosine.png into this folder (created if missing).
    #[arg(long, value_name = "DIR", conflicts_with = "problem")]
    plot: Option<PathBuf>,
    /// Seed of the model init, the batch order and the methods that draw random numbers
    /// (default: the config's; 0 for every preset). The data keep their own seed (the config's
    /// `data` section; the page's seed key sets both).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    moe: crate::train_moe::MoeArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    Cpu,
    Gpu,
}

/// The `--json` document of a toy run.
#[derive(Serialize)]
struct Report<'a> {
    problem: &'static str,
    /// `{"method": name, parameter: value…}` (the given parameters).
    method: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    weighting: Option<&'a WeightingSpec>,
    optimizer: TrainOptimizer,
    backend: &'a str,
    start: [f64; 2],
    steps: usize,
    #[serde(rename = "final")]
    final_point: [f64; 2],
    losses: &'a [f64],
    error: Option<&'a str>,
    /// A replayed record (`--config` with a page export or a run record): what it recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded: Option<crate::train_preset::Recorded>,
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

/// The run's method from the flags, parsed once: `--method` (a name or the text form) with
/// `--param`s, `--weighting` with `--weighting-param`s; without `--method` the preset's own
/// method, its parameters changed by `--param`.
fn method_spec(a: &TrainArgs, own: &MethodSpec) -> Result<MethodSpec, UsageError> {
    let params = parse_kv(&a.params, "--param")?;
    let w_params = parse_kv(&a.weighting_params, "--weighting-param")?;
    if a.weighting.is_none() && !w_params.is_empty() {
        return Err(UsageError("--weighting-param needs --weighting".into()));
    }
    let mut spec = match a.method.as_deref().map(str::trim) {
        Some(text) if text.contains([':', '+']) => MethodSpec::parse(text).map_err(UsageError)?,
        Some(name) => MethodSpec::from_parts(name, &[], None).map_err(UsageError)?,
        None => own.clone(),
    };
    if !params.is_empty() {
        let mut given: Vec<(String, String)> =
            spec.aggregator.given().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        given.retain(|(k, _)| !params.iter().any(|(p, _)| p == k));
        given.extend(params);
        spec.aggregator = AggregatorSpec::parse(spec.aggregator.name(), &given).map_err(UsageError)?;
    }
    if let Some(w) = &a.weighting {
        spec.weighting = Some(WeightingSpec::parse(w, &w_params).map_err(UsageError)?);
    }
    Ok(spec)
}

/// The config the flags describe: a preset's, a file's or a hash's, then the flags beside it.
fn config_from_args(a: &TrainArgs) -> Result<Loaded, UsageError> {
    let mut loaded = match (&a.problem, &a.preset, &a.config, &a.hash) {
        (Some(p), ..) => {
            let problem: ProblemKind = p.trim().parse().map_err(UsageError)?;
            run_config::from_preset(problem.name())?
        }
        (_, Some(name), ..) => run_config::from_preset(name)?,
        (_, _, Some(path), _) => run_config::from_file(path, a.run)?,
        (_, _, _, Some(hash)) => run_config::from_hash(hash, a.run)?,
        _ => return Err(UsageError("give --preset NAME, --config FILE, --hash URL or --problem NAME".into())),
    };
    if a.run.is_some() && a.config.is_none() && a.hash.is_none() {
        return Err(UsageError("--run picks a run of a page export (--config) or of a hash's arena (--hash)".into()));
    }
    let config = &mut loaded.config;
    let toy = match config.data {
        DataSource::Toy { problem, .. } => Some(problem),
        _ => None,
    };
    if let Some(start) = &a.start {
        let Some(problem) = toy else {
            return Err(UsageError(format!("--start is for the toy problems; '{}' does not take one", loaded.label)));
        };
        config.data = DataSource::Toy { problem, start: parse_start(start)? };
    }
    if let Some(choice) = a.moe.spec()? {
        if choice.is_some() && config.model.is_none() {
            return Err(UsageError(format!(
                "--model moe needs a run with a model; '{}' trains x directly",
                loaded.label
            )));
        }
        config.moe = choice;
    }
    config.method = method_spec(a, &config.method)?;
    if let Some(steps) = a.steps {
        run_config::set(config, "steps", &steps.to_string())?;
    }
    if let Some(seed) = a.seed {
        config.seed = seed;
    }
    if let Some(precision) = a.precision {
        config.precision = precision;
    }
    apply_dynamics(a, config)?;
    if let Some(lr) = a.lr {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(UsageError(format!("--lr must be a positive number, got {lr}")));
        }
        config.optimizer = config.optimizer.with_lr(lr);
    }
    if toy.is_some() {
        // About a thousand recorded points, whatever the length.
        config.record_every = (config.steps / 1000).max(1);
    }
    Ok(loaded)
}

/// The optimizers `--optimizer` and `--base-optimizer` name directly (`run_config::set`'s).
const PLAIN_OPTIMIZERS: [&str; 4] = ["sgd", "adam", "adamw", "spam"];

/// The optimizer and training-dynamics flags onto `config` (dynamics.md §1–4). Each flag
/// changes only its own part, so a `--config` file's other dynamics stay; `--rho` and
/// `--switch-every` also adjust a file's SAM or sequential schedule. The trainer validates the
/// result against the run (warm-up vs steps, a loss weighting with a one-task schedule …).
fn apply_dynamics(a: &TrainArgs, config: &mut TrainConfig) -> Result<(), UsageError> {
    let sam = match a.optimizer.as_deref().map(str::trim) {
        Some("sam") => Some(false),
        Some("asam") => Some(true),
        Some(name) if PLAIN_OPTIMIZERS.contains(&name) => {
            run_config::set(config, "optimizer", name)?;
            None
        }
        Some(other) => {
            return Err(UsageError(format!(
                "--optimizer {other}: unknown optimizer (expected sgd, adam, adamw, spam, sam or asam)"
            )))
        }
        None => None,
    };
    if let Some(rho) = a.rho {
        if !(rho.is_finite() && rho > 0.0) {
            return Err(UsageError(format!("--rho must be a positive number, got {rho}")));
        }
    }
    match sam {
        Some(adaptive) => {
            let base = a.base_optimizer.as_deref().map_or("adam", str::trim);
            if !PLAIN_OPTIMIZERS.contains(&base) {
                return Err(UsageError(format!(
                    "--base-optimizer {base}: unknown optimizer (expected sgd, adam, adamw or spam)"
                )));
            }
            run_config::set(config, "optimizer", base)?;
            let default = if adaptive { SamSpec::ASAM_RHO } else { SamSpec::SAM_RHO };
            config.dynamics.sam = Some(SamSpec { rho: a.rho.unwrap_or(default), adaptive });
        }
        None => {
            if a.base_optimizer.is_some() {
                return Err(UsageError(
                    "--base-optimizer names the optimizer SAM wraps: give it with --optimizer sam or asam".into(),
                ));
            }
            if let Some(rho) = a.rho {
                match &mut config.dynamics.sam {
                    Some(spec) if a.optimizer.is_none() => spec.rho = rho,
                    _ => {
                        return Err(UsageError(
                            "--rho is SAM's neighbourhood radius: give it with --optimizer sam or asam".into(),
                        ))
                    }
                }
            }
        }
    }
    if let Some(c) = a.clip_norm {
        if !(c.is_finite() && c > 0.0) {
            return Err(UsageError(format!("--clip-norm must be a positive number, got {c}")));
        }
        config.dynamics.clip_norm = Some(c);
    }
    if let Some(w) = a.warmup {
        config.dynamics.warmup = w;
    }
    if let Some(text) = &a.lr_schedule {
        let shape = LrSchedule::parse(text).map_err(|e| UsageError(format!("--lr-schedule: {e}")))?;
        // A file's cosine keeps its floor and length.
        if shape.name() != config.dynamics.lr_schedule.name() {
            config.dynamics.lr_schedule = shape;
        }
    }
    if a.switch_every == Some(0) {
        return Err(UsageError("--switch-every must be at least 1 (steps per task)".into()));
    }
    match (a.schedule.as_deref().map(str::trim), a.switch_every) {
        (Some("sequential"), None) => {
            return Err(UsageError("--schedule sequential needs --switch-every N (the steps each task trains)".into()))
        }
        (Some("sequential"), Some(n)) => {
            config.dynamics.schedule = TaskSchedule::Sequential { switch_every: n };
            // As the run text's `@sequential=N` (`RunOptions::apply`): test losses every step,
            // so the dip after a switch (the stability gap) is seen whole.
            config.eval_every = 1;
        }
        (Some(name @ ("joint" | "alternating" | "sample")), None) => {
            // A file's alternating intervals or sampling weights stay.
            if config.dynamics.schedule.name() != name {
                config.dynamics.schedule = TaskSchedule::parse(name, None).map_err(UsageError)?;
            }
        }
        (Some(name @ ("joint" | "alternating" | "sample")), Some(_)) => {
            return Err(UsageError(format!("--switch-every is for --schedule sequential, not '{name}'")))
        }
        (Some(other), _) => {
            return Err(UsageError(format!(
                "--schedule {other}: unknown task schedule (expected joint, alternating, sample or sequential)"
            )))
        }
        (None, Some(n)) => match &mut config.dynamics.schedule {
            TaskSchedule::Sequential { switch_every } => *switch_every = n,
            _ => return Err(UsageError("--switch-every needs --schedule sequential".into())),
        },
        (None, None) => {}
    }
    // The per-task numbers of the two one-task schedules (the trainer checks their count).
    if let Some(iv) = &a.task_intervals {
        match &mut config.dynamics.schedule {
            TaskSchedule::Alternating { intervals } => *intervals = Some(iv.clone()),
            _ => return Err(UsageError("--task-intervals is for --schedule alternating".into())),
        }
    }
    if let Some(w) = &a.task_weights {
        match &mut config.dynamics.schedule {
            TaskSchedule::Sample { weights } => *weights = Some(w.clone()),
            _ => return Err(UsageError("--task-weights is for --schedule sample".into())),
        }
    }
    Ok(())
}

/// What a run through the backend contract produced: the record, the (step, x) points read back
/// along the way (the toys' trajectory), and the backend's label.
pub(crate) struct Finished {
    pub record: RunRecord,
    pub points: Vec<(usize, Vec<f64>)>,
    pub backend: String,
}

/// Drives one run to the end through `concord_core::train::Backend` — the CPU trainer or the
/// GPU backend — reading back every `chunk` steps (the progress bar and the toys' trajectory).
pub(crate) fn drive(config: TrainConfig, gpu: bool, chunk: usize, bar: &ProgressBar) -> Result<Finished, UsageError> {
    // The CPU trainer validates and knows the task names; the GPU starts from the same state.
    let cpu = Trainer::new(config.clone()).map_err(UsageError)?;
    let task_names = cpu.task_names().to_vec();
    let start = cpu.params().to_vec();
    let (mut backend, label): (Box<dyn RunBackend>, String) = if gpu {
        let device = pollster::block_on(Gpu::new()).map_err(|e| UsageError(format!("no GPU backend: {e}")))?;
        let mut label = format!("gpu: {}", device.adapter_label());
        // Nash-MTL, FairGrad, …: the GPU trainer takes their weights from the CPU each step.
        if concord_gpu::host_weighted(&config.method.aggregator) {
            label.push_str(" (weights on the CPU)");
        }
        // Never a silent CPU run: what the GPU lacks is an error that says what it has.
        // As the page: the GPU reads whole-model metrics back, not per-layer ones (a hash sets
        // `layer_metrics`), so a GPU run trains without them rather than failing.
        let gpu_config = TrainConfig { layer_metrics: false, ..config.clone() };
        let b = concord_gpu::backend(Arc::new(device), gpu_config).map_err(|e| match e {
            concord_gpu::GpuError::Unsupported(m) if !m.contains("CPU backend") => {
                UsageError(format!("unsupported on the GPU: {m}; use the CPU backend (--backend cpu)"))
            }
            other => UsageError(other.to_string()),
        })?;
        (b, label)
    } else {
        (Box::new(cpu), "cpu".to_string())
    };
    let mut history = Vec::new();
    let mut points = vec![(0, start.clone())];
    let mut last = None;
    while backend.steps_submitted() < config.steps {
        let queued = backend.submit(chunk.max(1)).map_err(|e| UsageError(e.to_string()))?;
        let snap = pollster::block_on(backend.read_back()).map_err(|e| UsageError(e.to_string()))?;
        history.extend(snap.new_records.iter().cloned());
        points.push((snap.steps_done, snap.params.clone()));
        bar.set_position(snap.steps_done as u64);
        let stop = queued == 0 || snap.error.is_some();
        last = Some(snap);
        if stop {
            break;
        }
    }
    let snap = match last {
        Some(s) => s,
        None => pollster::block_on(backend.read_back()).map_err(|e| UsageError(e.to_string()))?,
    };
    points.dedup_by_key(|p| p.0);
    let record = RunRecord {
        config,
        task_names,
        steps_done: snap.steps_done,
        params: snap.params,
        history,
        final_train_losses: snap.train_losses,
        final_test_losses: snap.test_losses,
        error: snap.error,
    };
    Ok(Finished { record, points, backend: label })
}

pub fn run(args: TrainArgs) -> Result<(), UsageError> {
    let Loaded { config, label, recorded } = config_from_args(&args)?;
    let DataSource::Toy { problem, start } = config.data else {
        return crate::train_preset::run(crate::train_preset::PresetArgs {
            preset: label,
            config,
            recorded,
            gpu: args.backend == Backend::Gpu,
            json: args.json,
            out: args.out.clone(),
            plot: args.plot.clone(),
        });
    };
    let steps = config.steps;
    // A bar only where a person watches: a terminal on stderr, a long run, and not --json piped.
    let show_bar =
        std::io::stderr().is_terminal() && steps >= 10_000 && (!args.json || std::io::stdout().is_terminal());
    let bar = if show_bar { ProgressBar::new(steps as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {human_pos}/{human_len} steps, {elapsed} elapsed, eta {eta}")
            .expect("static template"),
    );
    // Read back every recorded step's worth on the CPU (the CSV's points); the GPU in chunks of
    // at least 1000 steps (each read-back waits for the device).
    let chunk = if args.backend == Backend::Gpu { config.record_every.max(1000) } else { config.record_every };
    let done = drive(config, args.backend == Backend::Gpu, chunk, &bar)?;
    bar.finish_and_clear();
    let record = &done.record;
    let toy = problem.toy();
    let points: Vec<(usize, [f64; 2])> = done.points.iter().map(|(s, x)| (*s, [x[0], x[1]])).collect();
    if let Some(path) = &args.out {
        write_csv(path, &toy, &points).map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    let final_point = [record.params[0], record.params[1]];
    let losses = toy.losses(&final_point);
    let spec = &record.config.method;
    let mut method = serde_json::json!({ "method": spec.aggregator.name() });
    for (k, v) in spec.aggregator.values() {
        if spec.aggregator.given().iter().any(|(g, _)| g == k) {
            method[*k] = serde_json::to_value(v).expect("parameter values serialise");
        }
    }
    let report = Report {
        problem: problem.name(),
        method,
        weighting: spec.weighting.as_ref(),
        optimizer: record.config.optimizer,
        backend: &done.backend,
        start,
        steps: record.steps_done,
        final_point,
        losses: &losses,
        error: record.error.as_deref(),
        recorded: recorded.as_ref().map(|then| crate::train_preset::Recorded::of(then, record)),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("report serialises"));
    } else {
        println!(
            "{} on {} from ({}, {}) after {} steps [{}]: x = ({:.5}, {:.5}), L = ({:.5}, {:.5})",
            spec.label(),
            report.problem,
            start[0],
            start[1],
            report.steps,
            report.backend,
            final_point[0],
            final_point[1],
            losses[0],
            losses[1]
        );
        if let Some(r) = &report.recorded {
            println!(
                "  the file recorded L = ({:.5}, {:.5}) at step {}: max |replay − recorded| = {:e}",
                r.final_losses.first().copied().unwrap_or(f64::NAN),
                r.final_losses.get(1).copied().unwrap_or(f64::NAN),
                r.steps,
                r.max_abs_diff
            );
        }
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
