//! The page's run file (Export run / Import run): its JSON form and the validation an import
//! passes before anything on the page changes.
//!
//! A run file is untrusted input. `parse_saved` checks everything the page would later index by
//! or keep, and returns the values the session installs: the format and version; the settings
//! (the URL hash, parsed by `State::from_hash` with no notice but renames); the CSV's data
//! (`MultiTaskData::validate`: consistent columns, finite points, labels that fit their kinds);
//! one run per method of the arena; each run's record against the model its config builds (a
//! `Trainer` of that config, restored from the record: parameter count and finiteness, a history
//! from step 0 with strictly increasing steps within the config's step limit and at most
//! `HISTORY_CAP` records, every record shaped for m tasks, the model's layers and experts); the
//! loss curve (increasing steps up to the run's, m losses per point); the run's conflict map, if
//! the file has one (`ConflictMap::check`: its grid's size, one cosine in [−1, 1] per cell, a
//! step no later than the run's, and an MLP with two tasks or more to belong to); and the sizes
//! of everything else (the file, names and error texts). Non-finite losses and metrics are allowed (a diverged
//! run exports them as "inf"/"nan", concord-core's `float_serde`); parameters are not.
//!
//! The session (`Session::import_json`) builds the new runs off to the side from the result and
//! swaps them in only once every engine is restored, so a refused file changes nothing.

use crate::conflict_map::ConflictMap;
use crate::state::State;
use crate::train_config::{base_config, with_method, EVAL_EVERY};
use concord_core::data::MultiTaskData;
use concord_core::metrics::PairMatrix;
use concord_core::train::{float_serde, RunRecord, StepRecord, TrainConfig, HISTORY_CAP, MAX_STEPS};
use concord_core::Trainer;
use serde::{Deserialize, Serialize};
use std::ops::Range;

pub const FORMAT: &str = "concord-playground-run";
pub const VERSION: u32 = 1;
/// The longest text the page reads as a run file (the upload control refuses larger files
/// before reading them; a script's `importRun(text)` is checked here): above any file it writes
/// (at most 5 runs × 2048 history records; a 16-expert MoE record is ≈ 3.5 KB of JSON with 2
/// tasks, so ≈ 40–80 MB at the largest settings), and small enough that text + parsed copy stay
/// well inside a laptop tab's memory.
pub const MAX_FILE_BYTES: usize = 128 * 1024 * 1024;
/// Longest CSV file name and method text kept from a file, in characters.
const MAX_NAME_CHARS: usize = 1024;
/// Longest error text kept from a file, in characters.
const MAX_ERROR_CHARS: usize = 4096;
/// Largest token count a routing record may hold (a batch's tokens are at most the data's points;
/// the MoE panel sums them over the tasks, which must not overflow a 32-bit usize).
const MAX_TOKENS: usize = 100_000_000;

/// Whole-train-set (or batch) and test losses at one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub step: usize,
    #[serde(with = "float_serde::floats")]
    pub train: Vec<f64>,
    #[serde(with = "float_serde::opt_floats", default)]
    pub test: Option<Vec<f64>>,
}

/// What the exported JSON holds.
#[derive(Serialize, Deserialize)]
pub struct SavedSession {
    pub format: String,
    pub version: u32,
    /// The page's URL hash (every setting).
    pub hash: String,
    /// The user's CSV before the split, if the runs trained on it.
    pub csv: Option<SavedCsv>,
    pub steps: u64,
    pub runs: Vec<SavedRun>,
}

#[derive(Serialize, Deserialize)]
pub struct SavedCsv {
    pub name: String,
    pub data: MultiTaskData,
}

#[derive(Serialize, Deserialize)]
pub struct SavedRun {
    pub method: String,
    /// Config, weights and the per-step metrics history (concord-core's `RunRecord`); `None` for
    /// a run the exporting page could not build.
    pub record: Option<RunRecord>,
    pub error: Option<String>,
    pub curve: Vec<CurvePoint>,
    /// Where the page trained it: "webgpu" (f32 on the GPU, whatever the config's precision) or
    /// "cpu". Files from before this field have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The run's latest per-point conflict map (the conflict map panel's; MLP runs of two tasks
    /// or more). Files from before this field, and runs without a map, have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_map: Option<ConflictMap>,
}

impl SavedSession {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A run file that passed every check: what the session installs.
#[derive(Clone, Debug)]
pub struct ValidatedImport {
    /// The settings, not playing.
    pub state: State,
    /// The CSV's name and data (before the split), if the runs trained on one.
    pub csv: Option<(String, MultiTaskData)>,
    /// The page's step counter.
    pub steps: u64,
    /// One per method of `state.arena`, in its order.
    pub runs: Vec<ImportedRun>,
}

#[derive(Clone, Debug)]
pub struct ImportedRun {
    pub error: Option<String>,
    pub curve: Vec<CurvePoint>,
    /// The run's conflict map as exported (checked), if the file has one.
    pub conflict_map: Option<ConflictMap>,
    /// The run's state, restorable into an engine of its config; `None` for a run the exporting
    /// page could not build (it starts afresh).
    pub restored: Option<Restored>,
}

#[derive(Clone, Debug)]
pub struct Restored {
    /// Finite, as many as the model has.
    pub params: Vec<f64>,
    /// From step 0, steps strictly increasing, at most `HISTORY_CAP` records.
    pub history: Vec<StepRecord>,
    /// Steps done: one after the history's last record.
    pub steps: usize,
    /// The losses as exported (m each; they may be non-finite after a divergence).
    pub train: Vec<f64>,
    pub test: Option<Vec<f64>>,
}

/// `s` cut to `max` characters (an error message quoting a huge value stays readable).
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn check_len(what: &str, s: &str, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n > max {
        return Err(format!("{what} has {n} characters; at most {max} are allowed"));
    }
    Ok(())
}

/// The model's shape that every record of a run must fit.
struct Shape<'a> {
    m: usize,
    layers: &'a [Range<usize>],
    /// Experts of the MoE block (`None`: no MoE, so no routing records).
    experts: Option<usize>,
}

fn check_len_m(what: &str, v: &[f64], m: usize) -> Result<(), String> {
    if v.len() != m {
        return Err(format!("{what} has {} values for {m} tasks", v.len()));
    }
    Ok(())
}

fn check_pairs(what: &str, p: &PairMatrix, m: usize) -> Result<(), String> {
    if p.len() != m || p.iter().any(|row| row.len() != m) {
        return Err(format!("{what} is not a {m} × {m} matrix"));
    }
    Ok(())
}

/// One step record against the model: m losses (and weights, test losses), m × m matrices, the
/// model's layers (or none: the GPU records whole-model metrics only), routing for its experts.
fn check_record(r: &StepRecord, shape: &Shape) -> Result<(), String> {
    let m = shape.m;
    check_len_m("losses", &r.losses, m)?;
    for (what, v) in [
        ("loss_weights", &r.loss_weights),
        ("aggregator_weights", &r.aggregator_weights),
        ("test_losses", &r.test_losses),
    ] {
        if let Some(v) = v {
            check_len_m(what, v, m)?;
        }
    }
    let x = &r.metrics;
    check_len_m("norms", &x.norms, m)?;
    check_len_m("directional", &x.directional, m)?;
    check_pairs("cosine", &x.cosine, m)?;
    check_pairs("gms", &x.gms, m)?;
    if x.conflicting_tasks.len() > m
        || x.conflicting_tasks.iter().any(|&t| t >= m)
        || x.conflicting_tasks.windows(2).any(|w| w[0] >= w[1])
    {
        return Err(format!("conflicting_tasks {:?} are not tasks 0–{}", x.conflicting_tasks, m.saturating_sub(1)));
    }
    if !x.layers.is_empty() {
        if x.layers.len() != shape.layers.len() {
            return Err(format!("{} layers' metrics for a model with {}", x.layers.len(), shape.layers.len()));
        }
        for (l, (lm, range)) in x.layers.iter().zip(shape.layers).enumerate() {
            if lm.start != range.start || lm.end != range.end {
                return Err(format!("layer {l} spans {}..{}, the model's spans {range:?}", lm.start, lm.end));
            }
            check_len_m(&format!("layer {l}'s norms"), &lm.norms, m)?;
            check_pairs(&format!("layer {l}'s cosine"), &lm.cosine, m)?;
        }
    }
    match (&r.moe, shape.experts) {
        (None, _) => {}
        (Some(_), None) => return Err("routing statistics for a model without experts".into()),
        (Some(moe), Some(e)) => {
            if moe.expert_cosine.len() != e {
                return Err(format!("{} experts' cosines for {e} experts", moe.expert_cosine.len()));
            }
            for (k, c) in moe.expert_cosine.iter().enumerate() {
                check_pairs(&format!("expert {k}'s cosine"), c, m)?;
            }
            let routing = &moe.routing;
            if routing.tasks.len() != m {
                return Err(format!("routing for {} tasks, not {m}", routing.tasks.len()));
            }
            for t in &routing.tasks {
                if [t.load.len(), t.router_prob.len(), t.top1_fraction.len()].iter().any(|&n| n != e) {
                    return Err(format!("a task's routing does not have {e} experts"));
                }
                if [t.dropped, t.unrouted, t.capacity.unwrap_or(0)].iter().any(|&n| n > MAX_TOKENS) {
                    return Err(format!("a routing token count is over {MAX_TOKENS}"));
                }
            }
            if routing.task_expert.len() != m || routing.task_expert.iter().any(|row| row.len() != e) {
                return Err(format!("P(task, expert) is not a {m} × {e} matrix"));
            }
        }
    }
    Ok(())
}

/// The loss curve: steps strictly increasing up to the run's steps, m losses per point, at most
/// one point per `EVAL_EVERY` steps (and step 0).
fn check_curve(curve: &[CurvePoint], m: usize, steps: usize) -> Result<(), String> {
    if curve.len() > steps / EVAL_EVERY + 1 {
        return Err(format!("the loss curve has {} points for {steps} steps", curve.len()));
    }
    for (i, c) in curve.iter().enumerate() {
        if c.step > steps {
            return Err(format!("loss curve point {i} is at step {}, after the run's {steps} steps", c.step));
        }
        if i > 0 && c.step <= curve[i - 1].step {
            return Err(format!("loss curve point {i} says step {}, not after step {}", c.step, curve[i - 1].step));
        }
        check_len_m(&format!("loss curve point {i}'s train losses"), &c.train, m)?;
        if let Some(t) = &c.test {
            check_len_m(&format!("loss curve point {i}'s test losses"), t, m)?;
        }
    }
    Ok(())
}

/// One run of the file against the trainer its config builds.
fn check_run(saved: SavedRun, config: TrainConfig, experts: Option<usize>) -> Result<ImportedRun, String> {
    check_len("the method", &saved.method, MAX_NAME_CHARS)?;
    if let Some(e) = &saved.error {
        check_len("the error", e, MAX_ERROR_CHARS)?;
    }
    let Some(rec) = saved.record else {
        // A run the exporting page could not build has no state; its curve is at most step 0.
        if saved.curve.iter().any(|c| c.step > 0) || saved.curve.len() > 1 {
            return Err("a run without a record has a loss curve".into());
        }
        let m = config.model.as_ref().map_or(2, |model| model.heads.len());
        check_curve(&saved.curve, m, 0)?;
        if saved.conflict_map.is_some() {
            return Err("a run without a record has a conflict map".into());
        }
        return Ok(ImportedRun { error: saved.error, curve: saved.curve, conflict_map: None, restored: None });
    };
    let mut trainer = Trainer::new(config).map_err(|e| format!("the run does not build here: {e}"))?;
    let m = trainer.num_tasks();
    let limit = trainer.config().steps;
    let RunRecord { params, history, final_train_losses, final_test_losses, .. } = rec;
    if history.len() > HISTORY_CAP {
        return Err(format!("the history has {} records; at most {HISTORY_CAP} are kept", history.len()));
    }
    // Checked here before the engine adds one to the last step.
    if let Some(r) = history.last().filter(|r| r.step >= limit) {
        return Err(format!("the history reaches step {}, past this run's limit of {limit} steps", r.step));
    }
    let shape = Shape { m, layers: trainer.layer_ranges(), experts };
    for (i, r) in history.iter().enumerate() {
        check_record(r, &shape).map_err(|e| format!("history record {i} (step {}): {e}", r.step))?;
    }
    let steps = history.last().map_or(0, |r| r.step + 1);
    check_len_m("final_train_losses", &final_train_losses, m)?;
    if let Some(t) = &final_test_losses {
        check_len_m("final_test_losses", t, m)?;
    }
    check_curve(&saved.curve, m, steps)?;
    if let Some(map) = &saved.conflict_map {
        if trainer.mlp().is_none() || m < 2 {
            return Err("a conflict map for a run that is not an MLP of two tasks or more".into());
        }
        map.check(steps)?;
    }
    // The trainer's own checks: the parameter count and finiteness, the history's steps.
    trainer.restore(params.clone(), history.clone())?;
    Ok(ImportedRun {
        error: saved.error,
        curve: saved.curve,
        conflict_map: saved.conflict_map,
        restored: Some(Restored { params, history, steps, train: final_train_losses, test: final_test_losses }),
    })
}

/// Parse and check a run file; `Err` (a message for the page) if anything in it is off.
pub fn parse_saved(text: &str) -> Result<ValidatedImport, String> {
    if text.len() > MAX_FILE_BYTES {
        return Err(format!("the file has {} bytes; a run file may have at most {MAX_FILE_BYTES}", text.len()));
    }
    let saved: SavedSession =
        serde_json::from_str(text).map_err(|e| format!("not a Concord run file: {}", clip(&e.to_string(), 300)))?;
    if saved.format != FORMAT || saved.version != VERSION {
        return Err(format!("unsupported file: format “{}” version {}", clip(&saved.format, 60), saved.version));
    }
    let (state, notices) = State::from_hash(&saved.hash);
    if notices.iter().any(|n| !n.contains("renamed")) {
        return Err(clip(&format!("the saved settings do not parse: {}", notices.join("; ")), 1000));
    }
    if state.preset.is_toy() {
        return Err("the file holds a toy preset; only multi-task runs can be imported".into());
    }
    if saved.runs.len() != state.arena.len() {
        return Err(format!("the file has {} runs for {} methods", saved.runs.len(), state.arena.len()));
    }
    if saved.steps > MAX_STEPS as u64 {
        return Err(format!("the step count {} is over {MAX_STEPS}", saved.steps));
    }
    let state = State { play: false, ..state };
    let csv = match saved.csv {
        None => None,
        Some(SavedCsv { name, data }) => {
            check_len("the CSV's name", &name, MAX_NAME_CHARS)?;
            data.validate().map_err(|e| format!("the file's CSV data: {e}"))?;
            Some((name, data))
        }
    };
    let base = base_config(&state, csv.as_ref().map(|(_, d)| d))?;
    let experts = base.moe.as_ref().map(|m| m.experts);
    let mut runs = Vec::with_capacity(saved.runs.len());
    for (i, (saved, spec)) in saved.runs.into_iter().zip(&state.arena).enumerate() {
        let run = check_run(saved, with_method(&state, &base, spec), experts)
            .map_err(|e| format!("run {} ({}): {e}", i + 1, spec.label()))?;
        runs.push(run);
    }
    Ok(ValidatedImport { state, csv, steps: saved.steps, runs })
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
pub mod tests;
