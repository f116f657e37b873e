//! The arena: up to four multi-task runs side by side — same data, same seed, same initial
//! weights, one aggregator/weighting each — stepped in lock-step once per animation frame.
//!
//! Each run is a `TrainBackend` (concord-core's CPU `Trainer` compiled to wasm). A frame does the
//! steps-per-frame setting (or a pending `step(n)` request) within a CPU time budget; requests
//! span frames and count exactly. Every `EVAL_EVERY` steps each run records its whole-train-set
//! and test losses for the loss curves. The panels redraw when `version` changes, at most about
//! ten times a second while playing.

use crate::preset::Family;
use crate::runner::{now_ms, TrainBackend};
use crate::spec::MethodSpec;
use crate::state::State;
use crate::train_config::{base_config, with_method, EVAL_EVERY};
use concord_core::data::MultiTaskData;
use concord_core::train::{DataSource, TrainConfig};
use concord_core::Trainer;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::VecDeque;

/// CPU time per frame, in ms.
const CPU_BUDGET_MS: f64 = 30.0;
/// Shortest gap between two redraws while playing, in ms.
const REDRAW_MS: f64 = 90.0;
/// One colour per arena slot (distinct from the heatmaps' orange and blue).
pub const SLOT_COLOURS: [&str; 4] = ["#d6204e", "#1a9850", "#6a3d9a", "#2b2b2b"];

thread_local! {
    static ARENA: RefCell<Option<Arena>> = const { RefCell::new(None) };
}

/// Run `f` on the arena; `None` before `install` (or if called re-entrantly).
pub fn with<R>(f: impl FnOnce(&mut Arena) -> R) -> Option<R> {
    ARENA.with(|cell| match cell.try_borrow_mut() {
        Ok(mut guard) => guard.as_mut().map(f),
        Err(_) => None,
    })
}

/// Signals the arena writes and the panels read.
#[derive(Clone, Copy)]
pub struct ArenaUi {
    pub version: RwSignal<u64>,
    pub steps: RwSignal<u64>,
    pub rate: RwSignal<f64>,
    /// Why no run could be built (bad data/model combination), if so.
    pub error: RwSignal<Option<String>>,
    /// Per-slot errors (a bad parameter, a divergence).
    pub run_errors: RwSignal<Vec<Option<String>>>,
    /// "name.csv: 300 points, 2 tasks" while the user's CSV is in use.
    pub csv: RwSignal<Option<String>>,
    /// The last CSV or import problem (shown under the upload button).
    pub io_error: RwSignal<Option<String>>,
}

impl ArenaUi {
    pub fn new() -> Self {
        ArenaUi {
            version: RwSignal::new(0),
            steps: RwSignal::new(0),
            rate: RwSignal::new(0.0),
            error: RwSignal::new(None),
            run_errors: RwSignal::new(Vec::new()),
            csv: RwSignal::new(None),
            io_error: RwSignal::new(None),
        }
    }
}

/// Whole-train-set and test losses at one step (before that step's update).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub step: usize,
    pub train: Vec<f64>,
    pub test: Option<Vec<f64>>,
}

pub struct ArenaRun {
    pub spec: MethodSpec,
    pub label: String,
    pub colour: &'static str,
    pub backend: Option<Box<dyn TrainBackend>>,
    pub error: Option<String>,
    pub curve: Vec<CurvePoint>,
}

impl ArenaRun {
    fn live(&self) -> bool {
        self.backend.is_some() && self.error.is_none()
    }

    pub fn steps(&self) -> usize {
        self.backend.as_ref().map_or(0, |b| b.history().len())
    }

    fn sample_curve(&mut self) {
        if let Some(b) = &self.backend {
            let step = b.history().len();
            if let Ok(train) = b.train_losses() {
                self.curve.push(CurvePoint { step, train, test: b.test_losses() });
            }
        }
    }
}

/// A `step(n)` request from the test hook or the Step button.
struct StepRequest {
    remaining: u64,
    resolve: Option<js_sys::Function>,
}

/// What the exported JSON holds.
#[derive(Serialize, Deserialize)]
struct SavedArena {
    format: String,
    version: u32,
    /// The page's URL hash (every setting).
    hash: String,
    /// The user's CSV before the split, if the runs trained on it.
    csv: Option<SavedCsv>,
    steps: u64,
    runs: Vec<SavedRun>,
}

#[derive(Serialize, Deserialize)]
struct SavedCsv {
    name: String,
    data: MultiTaskData,
}

#[derive(Serialize, Deserialize)]
struct SavedRun {
    method: String,
    /// Config, weights and the per-step metrics history (concord-core's `RunRecord`).
    record: Option<concord_core::RunRecord>,
    error: Option<String>,
    curve: Vec<CurvePoint>,
}

const FORMAT: &str = "concord-playground-run";

pub struct Arena {
    pub ui: ArenaUi,
    cfg: RwSignal<State>,
    active: bool,
    applied: Option<State>,
    pub base: Option<TrainConfig>,
    pub runs: Vec<ArenaRun>,
    pub task_names: Vec<String>,
    /// The 2-D points and labels (task sets and CSV), for the heatmaps.
    pub points: Option<MultiTaskData>,
    /// The sinusoid points (x, one y column per task) and the train count, for its curve plot.
    pub curve_data: Option<(Vec<f64>, Vec<Vec<f64>>, usize)>,
    csv: Option<(String, MultiTaskData)>,
    playing: bool,
    spf: u32,
    steps: u64,
    requests: VecDeque<StepRequest>,
    rate_samples: VecDeque<(f64, u64)>,
    work: u64,
    last_publish: f64,
}

/// Build one run's backend (the place a GPU trainer would be chosen).
fn build_backend(config: TrainConfig) -> Result<Box<dyn TrainBackend>, String> {
    Trainer::new(config).map(|t| Box::new(t) as Box<dyn TrainBackend>)
}

impl Arena {
    fn new(ui: ArenaUi, cfg: RwSignal<State>) -> Self {
        Arena {
            ui,
            cfg,
            active: false,
            applied: None,
            base: None,
            runs: Vec::new(),
            task_names: Vec::new(),
            points: None,
            curve_data: None,
            csv: None,
            playing: false,
            spf: 1,
            steps: 0,
            requests: VecDeque::new(),
            rate_samples: VecDeque::new(),
            work: 0,
            last_publish: 0.0,
        }
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn family(&self) -> Option<Family> {
        self.applied.as_ref().map(|s| if self.csv.is_some() { Family::TaskSet } else { s.preset.family() })
    }

    /// Take the page state: rebuild the runs when data, model or methods changed; apply a new
    /// learning rate live (optimizer state kept).
    pub fn configure(&mut self, state: &State) {
        self.active = !state.preset.is_toy();
        self.playing = state.play;
        self.spf = state.spf.max(1);
        if !self.active {
            return;
        }
        let rebuild = self.applied.as_ref().is_none_or(|a| a.arena_needs_reset(state));
        let lr_changed = self.applied.as_ref().is_some_and(|a| a.lr != state.lr);
        self.applied = Some(state.clone());
        if rebuild {
            self.rebuild();
        } else if lr_changed {
            for run in &mut self.runs {
                if let Some(b) = &mut run.backend {
                    if let Err(e) = b.set_lr(state.lr) {
                        run.error = Some(e);
                    }
                }
            }
            self.publish(true);
        }
    }

    /// Use the user's CSV (`None`: back to the generated data) and rebuild.
    pub fn set_csv(&mut self, csv: Option<(String, MultiTaskData)>) {
        self.ui.csv.set(csv.as_ref().map(|(name, d)| {
            format!("{name}: {} points, {} task{}", d.len(), d.num_tasks(), if d.num_tasks() == 1 { "" } else { "s" })
        }));
        self.csv = csv;
        if self.active {
            self.rebuild();
        }
    }

    /// Restart every run from the shared initial weights.
    pub fn rebuild(&mut self) {
        let Some(state) = self.applied.clone() else { return };
        self.steps = 0;
        self.runs.clear();
        self.points = None;
        self.curve_data = None;
        self.task_names.clear();
        let base = base_config(&state, self.csv.as_ref().map(|(_, d)| d));
        let base = match base {
            Ok(b) => b,
            Err(e) => {
                self.base = None;
                self.ui.error.set(Some(e));
                self.publish(true);
                return;
            }
        };
        self.load_plot_data(&base);
        for (slot, spec) in state.arena.iter().enumerate() {
            let (backend, error) = match build_backend(with_method(&base, spec)) {
                Ok(b) => (Some(b), None),
                Err(e) => (None, Some(e)),
            };
            let mut run = ArenaRun {
                spec: spec.clone(),
                label: spec.label(),
                colour: SLOT_COLOURS[slot % SLOT_COLOURS.len()],
                backend,
                error,
                curve: Vec::new(),
            };
            run.sample_curve();
            self.runs.push(run);
        }
        if let Some(b) = self.runs.iter().find_map(|r| r.backend.as_ref()) {
            let m = b.train_losses().map(|l| l.len()).unwrap_or(0);
            self.task_names = task_names(&base, m);
        }
        // One message when nothing could be built (the data and model do not fit).
        let all_failed = !self.runs.is_empty() && self.runs.iter().all(|r| r.backend.is_none());
        self.ui.error.set(all_failed.then(|| self.runs[0].error.clone().unwrap_or_default()));
        self.base = Some(base);
        self.publish(true);
    }

    fn load_plot_data(&mut self, base: &TrainConfig) {
        match &base.data {
            DataSource::TaskSet { config } => self.points = config.generate().ok(),
            DataSource::Points { data } => self.points = Some(data.clone()),
            DataSource::Sinusoid { config, train_ratio } => {
                if let Ok((x, y)) = config.generate() {
                    let xs: Vec<f64> = x.column(0).iter().copied().collect();
                    let ys = y
                        .iter()
                        .map(|t| match t {
                            concord_core::model::Target::Values(v) => v.column(0).iter().copied().collect(),
                            _ => Vec::new(),
                        })
                        .collect();
                    let n_train = (config.n as f64 * train_ratio).floor() as usize;
                    self.curve_data = Some((xs, ys, n_train));
                }
            }
            _ => {}
        }
    }

    pub fn request_steps(&mut self, n: u64, resolve: Option<js_sys::Function>) {
        self.requests.push_back(StepRequest { remaining: n, resolve });
    }

    pub fn tick(&mut self, now: f64) {
        if !self.active {
            return;
        }
        self.sample_rate(now);
        self.resolve_finished();
        let live = self.runs.iter().any(ArenaRun::live);
        let n = match self.requests.front() {
            // Nothing can step: answer the requests as they are.
            Some(_) if !live => {
                self.requests.iter_mut().for_each(|r| r.remaining = 0);
                self.resolve_finished();
                return;
            }
            Some(req) => req.remaining,
            None if self.playing && live => self.spf as u64,
            None => return,
        };
        let t0 = now_ms();
        let mut done = 0;
        while done < n {
            for run in self.runs.iter_mut().filter(|r| r.live()) {
                let result = run.backend.as_mut().expect("live").step();
                match result {
                    Ok(()) => {
                        if run.steps() % EVAL_EVERY == 0 {
                            run.sample_curve();
                        }
                    }
                    Err(e) => run.error = Some(e),
                }
            }
            done += 1;
            if now_ms() - t0 > CPU_BUDGET_MS {
                break;
            }
        }
        self.steps += done;
        self.work += done;
        let finished_request = match self.requests.front_mut() {
            Some(req) => {
                req.remaining = req.remaining.saturating_sub(done);
                req.remaining == 0
            }
            None => false,
        };
        self.publish(finished_request || !self.playing);
        self.resolve_finished();
    }

    fn resolve_finished(&mut self) {
        while self.requests.front().is_some_and(|r| r.remaining == 0) {
            let req = self.requests.pop_front().expect("front exists");
            if let Some(resolve) = req.resolve {
                let state = self.state_js();
                let _ = resolve.call1(&wasm_bindgen::JsValue::NULL, &state);
            }
        }
    }

    fn publish(&mut self, force: bool) {
        let now = now_ms();
        if !force && now - self.last_publish < REDRAW_MS {
            return;
        }
        self.last_publish = now;
        self.ui.steps.set(self.steps);
        let errors: Vec<Option<String>> = self.runs.iter().map(|r| r.error.clone()).collect();
        if self.ui.run_errors.with_untracked(|e| *e != errors) {
            self.ui.run_errors.set(errors);
        }
        self.ui.version.update(|v| *v += 1);
    }

    fn sample_rate(&mut self, now: f64) {
        self.rate_samples.push_back((now, self.work));
        while self.rate_samples.len() > 2 && now - self.rate_samples[1].0 > 1000.0 {
            self.rate_samples.pop_front();
        }
        let (t0, w0) = self.rate_samples[0];
        if now - t0 >= 250.0 {
            let rate = (self.work - w0) as f64 * 1000.0 / (now - t0);
            if (rate - self.ui.rate.get_untracked()).abs() > 0.5 {
                self.ui.rate.set(rate);
            }
        }
    }

    /// The run as JSON: settings (the hash), the CSV if any, and per run its config, weights,
    /// metrics history and loss curve.
    pub fn export_json(&self) -> String {
        let saved = SavedArena {
            format: FORMAT.into(),
            version: 1,
            hash: self.applied.as_ref().map(|s| s.to_hash()).unwrap_or_default(),
            csv: self.csv.as_ref().map(|(name, data)| SavedCsv { name: name.clone(), data: data.clone() }),
            steps: self.steps,
            runs: self
                .runs
                .iter()
                .map(|r| SavedRun {
                    method: r.spec.to_text(),
                    record: r.backend.as_ref().and_then(|b| b.record()),
                    error: r.error.clone(),
                    curve: r.curve.clone(),
                })
                .collect(),
        };
        serde_json::to_string(&saved).unwrap_or_default()
    }

    /// Load an exported run: settings, data, weights, history and curves. The optimizer moments
    /// start afresh (they are not part of the record).
    pub fn import_json(&mut self, text: &str) -> Result<(), String> {
        let saved: SavedArena = serde_json::from_str(text).map_err(|e| format!("not a Concord run file: {e}"))?;
        if saved.format != FORMAT || saved.version != 1 {
            return Err(format!("unsupported file: format “{}” version {}", saved.format, saved.version));
        }
        let (state, notices) = State::from_hash(&saved.hash);
        if !notices.is_empty() {
            return Err(format!("the saved settings do not parse: {}", notices.join("; ")));
        }
        if state.preset.is_toy() {
            return Err("the file holds a toy preset; only arena runs can be imported".into());
        }
        if saved.runs.len() != state.arena.len() {
            return Err(format!("the file has {} runs for {} arena methods", saved.runs.len(), state.arena.len()));
        }
        self.csv = saved.csv.map(|c| (c.name, c.data));
        self.ui.csv.set(self.csv.as_ref().map(|(name, d)| format!("{name}: {} points, {} tasks", d.len(), d.num_tasks())));
        self.active = true;
        self.playing = false;
        self.applied = Some(State { play: false, ..state.clone() });
        self.rebuild();
        for (run, saved) in self.runs.iter_mut().zip(saved.runs) {
            run.curve = saved.curve;
            run.error = saved.error;
            if let (Some(b), Some(rec)) = (run.backend.as_mut(), saved.record) {
                b.restore(rec.params, rec.history).map_err(|e| format!("{}: {e}", run.label))?;
            }
        }
        self.steps = saved.steps;
        self.publish(true);
        self.cfg.set(State { play: false, ..state });
        Ok(())
    }

    /// The test hook's `state()` in the arena: a plain object, built through JSON.
    pub fn state_js(&self) -> wasm_bindgen::JsValue {
        let runs: Vec<serde_json::Value> = self
            .runs
            .iter()
            .map(|r| {
                let b = r.backend.as_ref();
                let last = b.and_then(|b| b.history().last());
                let params = b.and_then(|b| b.params()).unwrap_or(&[]);
                serde_json::json!({
                    "method": r.spec.to_text(),
                    "label": r.label,
                    "aggregator": r.spec.aggregator,
                    "weighting": r.spec.weighting,
                    "steps": r.steps(),
                    "error": r.error,
                    "trainLosses": b.and_then(|b| b.train_losses().ok()),
                    "testLosses": b.and_then(|b| b.test_losses()),
                    "paramCount": params.len(),
                    "paramsHead": params.iter().take(8).collect::<Vec<_>>(),
                    "paramsSum": params.iter().sum::<f64>(),
                    "cosine": last.map(|h| h.metrics.cosine.clone()),
                    "conflictRatio": last.map(|h| h.metrics.conflict_ratio),
                    "updateCosMean": last.and_then(|h| h.metrics.update_cosine_mean),
                    "curvePoints": r.curve.len(),
                    // MoE runs: the latest step's routing stats and per-expert cosines.
                    "moe": last.and_then(|h| h.moe.as_ref()),
                })
            })
            .collect();
        let s = self.applied.as_ref();
        let state = serde_json::json!({
            "mode": "multitask",
            "preset": s.map(|s| s.preset.name()),
            "backend": self.runs.iter().find_map(|r| r.backend.as_ref()).map_or("cpu", |b| b.kind()),
            "steps": self.steps,
            "lr": s.map(|s| s.lr),
            "optimizer": s.map(|s| s.optimizer.name()),
            "seed": s.map(|s| s.seed),
            "tasks": self.task_names,
            "csv": self.csv.as_ref().map(|(n, _)| n),
            "error": self.ui.error.get_untracked(),
            "runs": runs,
        });
        js_sys::JSON::parse(&state.to_string()).unwrap_or(wasm_bindgen::JsValue::NULL)
    }
}

fn task_names(base: &TrainConfig, m: usize) -> Vec<String> {
    match &base.data {
        DataSource::TaskSet { config } => config.tasks.iter().enumerate().map(|(t, d)| format!("{} {}", t + 1, d.name())).collect(),
        DataSource::Points { data } => data.task_names.clone(),
        DataSource::GradNorm { config, .. } => config.sigmas.iter().map(|s| format!("σ = {s}")).collect(),
        DataSource::Sinusoid { config, .. } => {
            config.tasks.iter().enumerate().map(|(t, _)| format!("sin φ{}", t + 1)).collect()
        }
        DataSource::ParetoSynthetic { .. } => (1..=m).map(|t| format!("f{t}")).collect(),
    }
}

/// Create the arena and apply the initial state.
pub fn install(ui: ArenaUi, cfg: RwSignal<State>, state: &State) {
    ARENA.with(|cell| *cell.borrow_mut() = Some(Arena::new(ui, cfg)));
    with(|a| a.configure(state));
}
