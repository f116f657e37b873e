//! `concord train --preset NAME --method NAME …`: a multi-task run on the CPU trainer (or with
//! `--backend gpu` the GPU trainer, same outputs), with optional JSON / CSV records and PNG
//! figures.

use crate::UsageError;
use concord_core::dynamics::DynamicsRecord;
use concord_core::metrics::StepMetrics;
use concord_core::train::{ConflictSummary, MoeStepRecord, RunRecord, TrainConfig, OPPOSING_TOP_PERCENT};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// What `train::run` hands over for a multi-task preset run: the config the flags describe.
pub struct PresetArgs {
    /// The preset's name, or what the config came from (a file name, "stdin", "hash").
    pub preset: String,
    pub config: TrainConfig,
    /// The record a replayed config came with (a page export, a `--out run.json`).
    pub recorded: Option<crate::run_config::Recording>,
    pub gpu: bool,
    pub json: bool,
    pub out: Option<PathBuf>,
    pub plot: Option<PathBuf>,
}

/// The `--json` document.
#[derive(Serialize)]
struct Report<'a> {
    final_losses: &'a [f64],
    test_losses: Option<&'a [f64]>,
    steps: usize,
    preset: &'a str,
    /// The aggregator's name.
    method: &'a str,
    weighting: Option<&'a str>,
    /// The whole method in its text form (`cagrad+stch:c=0.4`), parameters included.
    method_spec: String,
    final_metrics: Option<&'a StepMetrics>,
    task_names: &'a [String],
    error: Option<&'a str>,
    /// "mlp" or "moe".
    model: &'static str,
    /// Tasks 0 and 1 over the run: mean cosine on the shared parameters, mean of min(cos, 0),
    /// fraction of steps with cos < 0.
    conflict_summary: Option<ConflictSummary>,
    /// Sample-level conflict over the recorded steps (CPU MLP runs; `null` otherwise).
    sample_conflict: Option<SampleSeries>,
    /// `--model moe` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    moe: Option<MoeReport<'a>>,
    /// A replayed record (`--config` with a page export or a run record): what it recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded: Option<Recorded>,
}

/// Sample-level conflict over the run (`concord_core::train::SampleConflict`, one entry per
/// recorded step that has it): per-sample coherence α of the summed task loss's gradients, the
/// fraction of the batch whose task gradients conflict, and the share of Σ_i ‖Σ_t g_t(x_i)‖ the
/// most opposed `top_percent` % of the batch carry.
#[derive(Serialize)]
struct SampleSeries {
    steps: Vec<usize>,
    coherence: Vec<Option<f64>>,
    conflicting_fraction: Vec<f64>,
    opposing_share: Vec<Option<f64>>,
    top_percent: usize,
}

impl SampleSeries {
    /// `None` when no record carries sample metrics (GPU, MoE and analytic runs).
    fn of(record: &RunRecord) -> Option<SampleSeries> {
        let kept: Vec<_> = record.history.iter().filter_map(|h| h.samples.as_ref().map(|s| (h.step, s))).collect();
        if kept.is_empty() {
            return None;
        }
        Some(SampleSeries {
            steps: kept.iter().map(|(step, _)| *step).collect(),
            coherence: kept.iter().map(|(_, s)| s.coherence).collect(),
            conflicting_fraction: kept.iter().map(|(_, s)| s.conflicting_fraction).collect(),
            opposing_share: kept.iter().map(|(_, s)| s.opposing_share).collect(),
            top_percent: OPPOSING_TOP_PERCENT,
        })
    }
}

/// `concord train` records sample-level conflict for an MLP run on the CPU when an output carries
/// it (`--json`, `--out`, `--plot`) or the config asks (`"sample_metrics": true`). It changes
/// nothing else about the run but costs 2m f64 backward passes a recorded step (the presets'
/// 500 steps take 6–19× as long as on the f32 fast path alone, 0.06–0.5 s), so a plain run
/// without those outputs skips it. A preset and its printed config (`concord config`, the key
/// absent) decide alike. The GPU trainer does not compute it: off there, so the record does not
/// claim it.
fn with_sample_metrics(mut config: TrainConfig, gpu: bool, reported: bool) -> TrainConfig {
    config.sample_metrics =
        !gpu && config.model.is_some() && config.moe.is_none() && (reported || config.sample_metrics);
    config
}

/// What a replayed run file recorded at its last step, to compare the replay with.
#[derive(Serialize)]
pub(crate) struct Recorded {
    pub(crate) steps: usize,
    #[serde(with = "concord_core::train::float_serde::floats")]
    pub(crate) final_losses: Vec<f64>,
    #[serde(with = "concord_core::train::float_serde::opt_floats")]
    pub(crate) test_losses: Option<Vec<f64>>,
    /// The CPU arithmetic of its config (f32 in the page's wasm and natively can round
    /// differently; f64 runs the same operations in the same order).
    pub(crate) precision: &'static str,
    /// Where the page trained it ("webgpu": f32 on the GPU; "cpu"), if the file says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) backend: Option<String>,
    /// max |replayed − recorded| over the final train (and test) losses.
    #[serde(with = "concord_core::train::float_serde::float")]
    pub(crate) max_abs_diff: f64,
}

impl Recorded {
    /// What `then` recorded, against the replay `now`.
    pub(crate) fn of(recording: &crate::run_config::Recording, now: &RunRecord) -> Recorded {
        let then = &recording.record;
        let pairs = then.final_train_losses.iter().zip(&now.final_train_losses);
        let test = match (&then.final_test_losses, &now.final_test_losses) {
            (Some(a), Some(b)) => a.iter().zip(b.iter()).collect(),
            _ => Vec::new(),
        };
        // Equal values (∞ = ∞, NaN with NaN) differ by 0; a NaN against a number by ∞.
        let diff = |(a, b): (&f64, &f64)| match (a.is_nan(), b.is_nan()) {
            (true, true) => 0.0,
            (false, false) if a == b => 0.0,
            (false, false) => (a - b).abs(),
            _ => f64::INFINITY,
        };
        let max_abs_diff = pairs.chain(test).map(diff).fold(0.0, f64::max);
        Recorded {
            steps: then.steps_done,
            final_losses: then.final_train_losses.clone(),
            test_losses: then.final_test_losses.clone(),
            precision: then.config.precision.name(),
            backend: recording.backend.clone(),
            max_abs_diff,
        }
    }
}

/// The routing statistics of an MoE run.
#[derive(Serialize)]
struct MoeReport<'a> {
    router: &'static str,
    experts: usize,
    /// The last step's routing: per task the expert load, router probability P_i, top-1
    /// fraction f_i, dropped tokens; P(t,e); the aux losses; and the per-expert cosines.
    last_step: Option<&'a MoeStepRecord>,
    /// Token→expert assignments dropped for capacity, summed over steps and tasks.
    dropped_total: usize,
}

/// `key=value` pairs, values kept as text (the registries parse and validate them).
pub(crate) fn parse_kv(raw: &[String], flag: &str) -> Result<Vec<(String, String)>, UsageError> {
    raw.iter()
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| UsageError(format!("{flag} '{p}' is not KEY=VALUE")))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.is_empty() {
                return Err(UsageError(format!("{flag} '{p}' is not KEY=VALUE")));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

#[derive(Clone, Copy)]
enum OutKind {
    Json,
    Csv,
}

fn out_kind(path: &Path) -> Result<OutKind, UsageError> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("json") => Ok(OutKind::Json),
        Some("csv") => Ok(OutKind::Csv),
        _ => Err(UsageError(format!("--out {}: the file name must end in .json or .csv", path.display()))),
    }
}

pub fn run(a: PresetArgs) -> Result<(), UsageError> {
    let reported = a.json || a.out.is_some() || a.plot.is_some();
    let config = with_sample_metrics(a.config, a.gpu, reported);
    let out = a.out.as_ref().map(|p| out_kind(p).map(|k| (p.clone(), k))).transpose()?;
    let total = config.steps;
    let show_bar = std::io::stderr().is_terminal() && (!a.json || std::io::stdout().is_terminal());
    let bar = if show_bar { ProgressBar::new(total as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {human_pos}/{human_len} steps, {elapsed} elapsed, eta {eta}")
            .expect("static template"),
    );
    // The GPU reads back every 100 steps; the CPU about every 1 % of the run (the bar).
    let chunk = if a.gpu { 100 } else { (total / 100).max(1) };
    let done = crate::train::drive(config, a.gpu, chunk, &bar)?;
    bar.finish_and_clear();
    let (record, backend) = (done.record, done.backend);

    if let Some((path, kind)) = &out {
        let written = match kind {
            OutKind::Json => std::fs::write(path, serde_json::to_string(&record).expect("the record serialises")),
            OutKind::Csv => write_csv(path, &record),
        };
        written.map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(dir) = &a.plot {
        std::fs::create_dir_all(dir).map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
        let label = format!("{} · {}", a.preset, record.config.method.label());
        crate::plot::losses_png(&dir.join("losses.png"), &record, &format!("{label}: losses"))
            .map_err(|e| UsageError(format!("cannot draw losses.png: {e}")))?;
        crate::plot::cosine_png(&dir.join("cosine.png"), &record, &format!("{label}: task-gradient cosine"))
            .map_err(|e| UsageError(format!("cannot draw cosine.png: {e}")))?;
        crate::plot::samples_png(&dir.join("samples.png"), &record, &format!("{label}: sample-level conflict"))
            .map_err(|e| UsageError(format!("cannot draw samples.png: {e}")))?;
    }

    if a.json {
        let report = Report {
            final_losses: &record.final_train_losses,
            test_losses: record.final_test_losses.as_deref(),
            steps: record.steps_done,
            preset: &a.preset,
            method: record.config.method.aggregator.name(),
            weighting: record.config.method.weighting.as_ref().map(|w| w.name()),
            method_spec: record.config.method.to_text(),
            final_metrics: record.history.last().map(|s| &s.metrics),
            task_names: &record.task_names,
            error: record.error.as_deref(),
            model: if record.config.moe.is_some() { "moe" } else { "mlp" },
            conflict_summary: ConflictSummary::of(&record),
            sample_conflict: SampleSeries::of(&record),
            recorded: a.recorded.as_ref().map(|then| Recorded::of(then, &record)),
            moe: record.config.moe.as_ref().map(|spec| MoeReport {
                router: spec.router.name(),
                experts: spec.experts,
                last_step: record.history.last().and_then(|s| s.moe.as_ref()),
                dropped_total: record
                    .history
                    .iter()
                    .filter_map(|s| s.moe.as_ref())
                    .map(|m| m.routing.tasks.iter().map(|t| t.dropped).sum::<usize>())
                    .sum(),
            }),
        };
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ =
            writeln!(std::io::stdout().lock(), "{}", serde_json::to_string(&report).expect("the report serialises"));
    } else {
        print_summary(&a.preset, &record, &backend);
        if let Some(then) = &a.recorded {
            let r = Recorded::of(then, &record);
            println!(
                "  the file recorded train L = ({}) at step {} ({}{}): max |replay − recorded| = {:e}",
                fmt_losses(&r.final_losses),
                r.steps,
                r.precision,
                r.backend.as_deref().map(|b| format!(", {b}")).unwrap_or_default(),
                r.max_abs_diff
            );
        }
    }
    if let Some(e) = &record.error {
        if !a.json {
            eprintln!("concord: warning: {e}");
        }
    }
    Ok(())
}

fn fmt_losses(l: &[f64]) -> String {
    l.iter().map(|v| format!("{v:.5}")).collect::<Vec<_>>().join(", ")
}

fn print_summary(preset: &str, r: &RunRecord, backend: &str) {
    let mut out = std::io::stdout().lock();
    let c = &r.config;
    let _ = writeln!(
        out,
        "{} on {} after {} steps [{}]: train L = ({})",
        c.method.to_text(),
        preset,
        r.steps_done,
        backend,
        fmt_losses(&r.final_train_losses)
    );
    if let Some(t) = &r.final_test_losses {
        let _ = writeln!(out, "  test L = ({})", fmt_losses(t));
    }
    if let (Some(spec), Some(m)) = (&c.moe, r.history.last().and_then(|s| s.moe.as_ref())) {
        for (t, tr) in m.routing.tasks.iter().enumerate() {
            let _ = writeln!(
                out,
                "  moe {} × {}: task {t} load ({}), router P ({}), dropped {}",
                spec.router.name(),
                spec.experts,
                fmt_losses(&tr.load),
                fmt_losses(&tr.router_prob),
                tr.dropped
            );
        }
    }
    if let Some(s) = r.history.last() {
        let conflicts = r.history.iter().filter(|s| !s.metrics.non_conflicting).count();
        let _ = writeln!(
            out,
            "  last step: conflict ratio {:.3}, cos(d, mean) {}; steps with a task hurt (J·d < 0): {conflicts}/{}",
            s.metrics.conflict_ratio,
            s.metrics.update_cosine_mean.map_or("undefined".into(), |c| format!("{c:.3}")),
            r.history.len()
        );
    }
    if let Some(w) = &c.method.sample_weighting {
        let stages: Vec<_> = r.history.iter().filter_map(|h| h.sample_stage.as_ref()).collect();
        let changed: f64 = stages.iter().map(|s| s.changed).sum();
        let seen: usize = stages.iter().map(|s| s.samples).sum();
        let verb = if w.name() == "harmonize" { "projected" } else { "left out" };
        let _ = writeln!(
            out,
            "  sample weighting {}: {verb} {:.1} % of the recorded steps' samples ({changed:.0} of {seen})",
            w.name(),
            100.0 * changed / seen.max(1) as f64
        );
    }
    let dynamics: Vec<&DynamicsRecord> = r.history.iter().filter_map(|h| h.dynamics.as_ref()).collect();
    if let Some(last) = dynamics.last() {
        let label = c.dynamics.label();
        let clipped = dynamics.iter().filter(|d| d.clipped).count();
        let spikes: usize = dynamics.iter().map(|d| d.spikes_clipped).sum();
        let _ = writeln!(
            out,
            "  dynamics ({}{}{}): last lr {:e}; update clipped on {clipped}/{} recorded steps; {spikes} spike entries \
             clipped{}",
            c.optimizer.name(),
            if label.is_empty() { "" } else { " · " },
            label,
            last.lr,
            dynamics.len(),
            last.sam_cosine.map_or(String::new(), |c| format!("; last SAM cos(d₀, d) {c:.3}")),
        );
    }
    if let Some(s) = r.history.last().and_then(|h| h.samples.as_ref()) {
        let _ = writeln!(
            out,
            "  last batch: sample coherence α {}; {:.0} % of its samples have conflicting tasks; the most opposed {} % carry {} of Σ‖g_i‖",
            s.coherence.map_or("undefined".into(), |c| format!("{c:.3}")),
            100.0 * s.conflicting_fraction,
            s.top_percent,
            s.opposing_share.map_or("undefined".into(), |c| format!("{:.1} %", 100.0 * c)),
        );
    }
}

/// min over i < j of the defined pairwise cosines.
fn min_cosine(m: &StepMetrics) -> Option<f64> {
    let n = m.cosine.len();
    (0..n).flat_map(|i| (i + 1..n).filter_map(move |j| m.cosine[i][j])).reduce(f64::min)
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// One row per step: step, loss_t…, test_loss_t… (empty where not evaluated), conflict_ratio,
/// min_cosine, update_mean_cosine, non_conflicting (true/false), sample_coherence,
/// sample_conflicting_fraction, sample_opposing_share (empty where not recorded or undefined),
/// sample_stage_changed (the share of the batch a sample-weighting stage projected or left
/// out; empty without one); then, for a run that records its training dynamics (non-default
/// dynamics or SPAM), lr, grad_norm, clipped, task, sam_cosine, spike_score, spikes_clipped,
/// reset (`StepRecord::dynamics`; empty where the step or the run has none).
fn write_csv(path: &Path, r: &RunRecord) -> std::io::Result<()> {
    let m = r.task_names.len();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut header = vec!["step".to_string()];
    header.extend((0..m).map(|t| format!("loss_{t}")));
    header.extend((0..m).map(|t| format!("test_loss_{t}")));
    header.extend(
        [
            "conflict_ratio",
            "min_cosine",
            "update_mean_cosine",
            "non_conflicting",
            "sample_coherence",
            "sample_conflicting_fraction",
            "sample_opposing_share",
            "sample_stage_changed",
        ]
        .map(String::from),
    );
    let dynamics = r.history.iter().any(|s| s.dynamics.is_some());
    if dynamics {
        header.extend(DYNAMICS_COLUMNS.map(String::from));
    }
    writeln!(f, "{}", header.join(","))?;
    for s in &r.history {
        let mut row = vec![s.step.to_string()];
        row.extend(s.losses.iter().map(|v| v.to_string()));
        match &s.test_losses {
            Some(t) => row.extend(t.iter().map(|v| v.to_string())),
            None => row.extend((0..m).map(|_| String::new())),
        }
        row.push(s.metrics.conflict_ratio.to_string());
        row.push(opt(min_cosine(&s.metrics)));
        row.push(opt(s.metrics.update_cosine_mean));
        row.push(s.metrics.non_conflicting.to_string());
        let samples = s.samples.as_ref();
        row.push(opt(samples.and_then(|x| x.coherence)));
        row.push(opt(samples.map(|x| x.conflicting_fraction)));
        row.push(opt(samples.and_then(|x| x.opposing_share)));
        row.push(opt(s.sample_stage.as_ref().map(|x| x.changed / x.samples.max(1) as f64)));
        if dynamics {
            row.extend(dynamics_cells(s.dynamics.as_ref()));
        }
        writeln!(f, "{}", row.join(","))?;
    }
    f.flush()
}

/// The per-step CSV's training-dynamics columns (`DynamicsRecord`'s fields).
const DYNAMICS_COLUMNS: [&str; 8] =
    ["lr", "grad_norm", "clipped", "task", "sam_cosine", "spike_score", "spikes_clipped", "reset"];

/// One step's cells under `DYNAMICS_COLUMNS` (all empty for a step without a record).
fn dynamics_cells(d: Option<&DynamicsRecord>) -> [String; 8] {
    let Some(d) = d else { return Default::default() };
    [
        d.lr.to_string(),
        d.grad_norm.to_string(),
        d.clipped.to_string(),
        d.task.map(|t| t.to_string()).unwrap_or_default(),
        opt(d.sam_cosine),
        opt(d.spike_score),
        d.spikes_clipped.to_string(),
        d.reset.to_string(),
    ]
}
