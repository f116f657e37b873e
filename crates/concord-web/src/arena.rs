//! The arena: up to four multi-task runs side by side — same data, same seed, same initial
//! weights, one aggregator/weighting each — stepped in lock-step once per animation frame.
//!
//! Each run is a `TrainBackend`: concord-gpu's `GpuTrainer` (`gpu_run::GpuRun`) when the page has
//! WebGPU and the GPU supports the run's config, else concord-core's CPU `Trainer` compiled to
//! wasm, with the reason kept per run. A frame does the steps-per-frame setting (or a pending
//! `step(n)` request): the CPU runs within a CPU time budget, then the GPU runs submit the same
//! number of steps in one queue submission each and read back asynchronously. Until every
//! readback of the frame is in, the arena does nothing more (so the runs stay in lock-step and a
//! `step(n)` request resolves on read-back state); if one fails with a device error, every GPU
//! run continues on the CPU from its last read-back state (`Trainer::restore`) with a notice.
//! Requests span frames and count exactly. Every `EVAL_EVERY` steps each run records its whole-train-set
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
    /// The backend readout: (gpu: whether any run is on WebGPU, text with the backend per run).
    pub backend: RwSignal<(bool, String)>,
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
            backend: RwSignal::new((false, "Choosing a backend…".into())),
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
    /// Why this run is on the CPU (no WebGPU, a config the GPU cannot train, a GPU failure).
    pub cpu_reason: Option<String>,
    /// Parameter snapshots for the landscape panel (trajectories, PCA, λ_max over time).
    pub snapshots: crate::panels::landscape::Snapshots,
}

impl ArenaRun {
    fn on_gpu(&self) -> bool {
        self.backend.as_ref().is_some_and(|b| b.kind() == "webgpu")
    }

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
            if let Some(params) = b.params() {
                self.snapshots.offer(step, params);
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

/// Most steps one frame submits to a GPU run.
const GPU_CHUNK: u64 = 1000;

/// The arena's view of the page's WebGPU device (the toy runner acquires it).
enum GpuChoice {
    Pending,
    #[cfg(feature = "webgpu")]
    Ready(std::sync::Arc<concord_gpu::Gpu>),
    /// No WebGPU, or it failed: why.
    Unavailable(String),
}

/// One GPU run's readback, held until the frame's other readbacks are in.
#[cfg(feature = "webgpu")]
struct Readback {
    slot: usize,
    trainer: concord_gpu::GpuTrainer,
    result: Result<crate::gpu_run::Snapshot, crate::gpu_run::ReadbackError>,
}

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
    gpu: GpuChoice,
    /// Bumped by a rebuild or a GPU failure: readbacks of an older generation are dropped.
    generation: u64,
    /// GPU readbacks of this frame still in flight, and those already in.
    in_flight: usize,
    #[cfg(feature = "webgpu")]
    arrived: Vec<Readback>,
    /// Test-only: the next GPU readback fails as if the device were lost.
    simulate_gpu_failure: bool,
    /// Why the runs left the GPU mid-run, once they have.
    gpu_notice: Option<String>,
}

/// Build one run's backend: the GPU trainer when there is a GPU and it supports the config,
/// else the CPU trainer, with the reason it is on the CPU.
fn build_backend(config: TrainConfig, gpu: &GpuChoice) -> (Result<Box<dyn TrainBackend>, String>, Option<String>) {
    let reason = match gpu {
        GpuChoice::Pending => "the WebGPU device is still being acquired".to_string(),
        GpuChoice::Unavailable(why) => why.clone(),
        #[cfg(feature = "webgpu")]
        GpuChoice::Ready(gpu) => match crate::gpu_run::GpuRun::new(gpu.clone(), config.clone()) {
            Ok(run) => return (Ok(Box::new(run)), None),
            Err(why) => format!("the GPU trainer cannot run this config: {why}"),
        },
    };
    (Trainer::new(config).map(|t| Box::new(t) as Box<dyn TrainBackend>), Some(reason))
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
            gpu: GpuChoice::Pending,
            generation: 0,
            in_flight: 0,
            #[cfg(feature = "webgpu")]
            arrived: Vec::new(),
            simulate_gpu_failure: false,
            gpu_notice: None,
        }
    }

    /// The page's WebGPU device is known (or known to be missing): runs not yet stepped move to
    /// it.
    #[cfg_attr(not(feature = "webgpu"), allow(unused_mut))]
    pub fn set_gpu(&mut self, gpu: Result<GpuDevice, String>) {
        self.gpu = match gpu {
            #[cfg(feature = "webgpu")]
            Ok(gpu) => GpuChoice::Ready(gpu),
            #[cfg(not(feature = "webgpu"))]
            Ok(never) => match never {},
            Err(why) => GpuChoice::Unavailable(why),
        };
        if self.active && self.steps == 0 {
            self.rebuild();
        }
    }

    /// Test-only: make the next GPU readback fail. Returns whether a run is on the GPU.
    /// The page's WebGPU device, once acquired (the landscape panel slices on it).
    #[cfg(feature = "webgpu")]
    pub fn gpu_device(&self) -> Option<std::sync::Arc<concord_gpu::Gpu>> {
        match &self.gpu {
            GpuChoice::Ready(gpu) => Some(gpu.clone()),
            _ => None,
        }
    }

    pub fn simulate_gpu_failure(&mut self) -> bool {
        self.simulate_gpu_failure = true;
        self.runs.iter().any(ArenaRun::on_gpu)
    }

    fn gpu_busy(&self) -> bool {
        self.in_flight > 0
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
        self.generation += 1;
        self.in_flight = 0;
        #[cfg(feature = "webgpu")]
        self.arrived.clear();
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
            let (mut built, cpu_reason) = build_backend(with_method(&base, spec), &self.gpu);
            // GPU runs on 2-D points predict the heatmap grid themselves.
            #[cfg(feature = "webgpu")]
            if let (Ok(b), Some(points)) = (&mut built, &self.points) {
                if let Some(g) = b.as_gpu() {
                    g.set_grid(crate::grid::extent(points));
                }
            }
            let (backend, error) = match built {
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
                cpu_reason,
                snapshots: Default::default(),
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
        if self.gpu_busy() {
            return; // the frame's GPU readbacks come first
        }
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
        // The CPU runs first, within the budget; the GPU runs then submit as many steps.
        let any_cpu = self.runs.iter().any(|r| r.live() && !r.on_gpu());
        let mut done = 0;
        if any_cpu {
            let t0 = now_ms();
            while done < n {
                for run in self.runs.iter_mut().filter(|r| r.live() && !r.on_gpu()) {
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
        } else {
            // Submissions end where a GPU run's next trajectory snapshot for the landscape panel
            // is due (every 10 steps at first, sparser as the run grows), so θ is read back there.
            let gap = self
                .runs
                .iter()
                .filter(|r| r.live() && r.on_gpu())
                .map(|r| r.snapshots.steps_until_due(r.steps()) as u64)
                .min()
                .unwrap_or(GPU_CHUNK);
            done = n.min(GPU_CHUNK).min(gap);
        }
        #[cfg(feature = "webgpu")]
        let failure = self.submit_gpu(done);
        self.steps += done;
        self.work += done;
        // A submission refused at once (the device is gone): those runs catch up on the CPU.
        #[cfg(feature = "webgpu")]
        if let Some(e) = failure {
            self.gpu_failed(e);
        }
        let finished_request = match self.requests.front_mut() {
            Some(req) => {
                req.remaining = req.remaining.saturating_sub(done);
                req.remaining == 0
            }
            None => false,
        };
        if !self.gpu_busy() {
            self.publish(finished_request || !self.playing);
            self.resolve_finished();
        }
    }

    /// Submit `k` steps to every live GPU run and start their readbacks; the error of a
    /// submission the GPU refused.
    #[cfg(feature = "webgpu")]
    fn submit_gpu(&mut self, k: u64) -> Option<String> {
        let generation = self.generation;
        let simulate = std::mem::take(&mut self.simulate_gpu_failure);
        let mut failure = None;
        for (slot, run) in self.runs.iter_mut().enumerate() {
            if !run.live() {
                continue;
            }
            let Some(g) = run.backend.as_mut().and_then(|b| b.as_gpu()) else { continue };
            let from = TrainBackend::history(g).len();
            let grid = g.grid_inputs();
            match g.submit(k as usize) {
                None => {}
                Some(Err(e)) => failure = Some(e),
                Some(Ok(mut trainer)) => {
                    self.in_flight += 1;
                    wasm_bindgen_futures::spawn_local(async move {
                        let result = if simulate {
                            Err(crate::gpu_run::ReadbackError::Device(
                                "simulated device loss (window.concord._simulateGpuFailure)".into(),
                            ))
                        } else {
                            crate::gpu_run::read_back(&mut trainer, from, grid).await
                        };
                        with(move |a| a.gpu_arrived(generation, Readback { slot, trainer, result }));
                    });
                }
            }
        }
        failure
    }

    /// One readback is in; once the frame's last is, apply them all (or fall back to the CPU).
    #[cfg(feature = "webgpu")]
    fn gpu_arrived(&mut self, generation: u64, readback: Readback) {
        if generation != self.generation {
            return; // rebuilt or fallen back meanwhile: drop the old trainer
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.arrived.push(readback);
        if self.in_flight > 0 {
            return;
        }
        let arrived = std::mem::take(&mut self.arrived);
        let device_error = arrived.iter().find_map(|r| match &r.result {
            Err(crate::gpu_run::ReadbackError::Device(e)) => Some(e.clone()),
            _ => None,
        });
        if let Some(e) = device_error {
            // No run takes this frame's results: all continue from the same earlier step.
            self.gpu_failed(e);
        } else {
            for Readback { slot, trainer, result } in arrived {
                let Some(run) = self.runs.get_mut(slot) else { continue };
                let Some(g) = run.backend.as_mut().and_then(|b| b.as_gpu()) else { continue };
                let before = TrainBackend::history(g).len();
                let outcome = match result {
                    Ok(snapshot) => g.finish(trainer, snapshot),
                    Err(crate::gpu_run::ReadbackError::Run(e)) => {
                        g.stop(trainer, e.clone());
                        Err(e)
                    }
                    Err(crate::gpu_run::ReadbackError::Device(_)) => unreachable!("handled above"),
                };
                let g = &*g;
                // Loss-curve points: the recorded steps on the cadence (the step's batch losses,
                // the whole test set), then the whole-set losses at the snapshot's step.
                let mut points: Vec<CurvePoint> = TrainBackend::history(g)[before..]
                    .iter()
                    .filter(|h| h.step > 0 && h.step % EVAL_EVERY == 0)
                    .map(|h| CurvePoint { step: h.step, train: h.losses.clone(), test: h.test_losses.clone() })
                    .collect();
                let now = TrainBackend::history(g).len();
                if outcome.is_ok() && now > before && now % EVAL_EVERY == 0 {
                    if let Ok(train) = g.train_losses() {
                        points.push(CurvePoint { step: now, train, test: g.test_losses() });
                    }
                }
                run.curve.extend(points);
                // The trajectory snapshot for the landscape panel (submissions end where one is due).
                let step = run.steps();
                if let Some(theta) = run.backend.as_ref().and_then(|b| b.params()).map(<[f64]>::to_vec) {
                    run.snapshots.offer(step, &theta);
                }
                if let Err(e) = outcome {
                    run.error = Some(e);
                }
            }
        }
        self.publish(true);
        self.resolve_finished();
    }

    /// The GPU failed: every GPU run continues on the CPU from its last read-back state.
    #[cfg(feature = "webgpu")]
    fn gpu_failed(&mut self, error: String) {
        self.generation += 1;
        self.in_flight = 0;
        self.arrived.clear();
        let at = self.runs.iter().filter(|r| r.on_gpu()).map(ArenaRun::steps).min().unwrap_or(0);
        let notice = format!(
            "the GPU failed at step {at} ({error}); the runs continue on the CPU from the last read-back state — optimizer state restarted"
        );
        web_sys::console::warn_1(&format!("concord: {notice}").into());
        self.gpu = GpuChoice::Unavailable(notice.clone());
        for run in &mut self.runs {
            let Some(g) = run.backend.as_mut().and_then(|b| b.as_gpu()) else { continue };
            match g.to_cpu() {
                Ok(cpu) => run.backend = Some(Box::new(cpu)),
                Err(e) => run.error = Some(format!("could not continue on the CPU: {e}")),
            }
            run.cpu_reason = Some(notice.clone());
        }
        // The steps submitted but never read back are done again on the CPU (at most one
        // frame's worth), so every run is back at the arena's step count.
        let target = self.steps as usize;
        for run in self.runs.iter_mut().filter(|r| r.live()) {
            while run.steps() < target {
                let result = run.backend.as_mut().expect("live").step();
                match result {
                    Ok(()) if run.steps() % EVAL_EVERY == 0 => run.sample_curve(),
                    Ok(()) => {}
                    Err(e) => {
                        run.error = Some(e);
                        break;
                    }
                }
            }
        }
        self.gpu_notice = Some(notice);
        self.publish(true);
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
        let readout = self.backend_readout();
        if self.ui.backend.with_untracked(|b| *b != readout) {
            self.ui.backend.set(readout);
        }
        self.ui.version.update(|v| *v += 1);
    }

    /// (any run on WebGPU, "WebGPU · adapter — mean, mgda · CPU — dwa: reason").
    fn backend_readout(&self) -> (bool, String) {
        #[cfg(feature = "webgpu")]
        let adapter = match &self.gpu {
            GpuChoice::Ready(gpu) => gpu.adapter_label(),
            _ => String::new(),
        };
        #[cfg(not(feature = "webgpu"))]
        let adapter = String::new();
        let adapter = adapter.strip_suffix(" · WebGPU").unwrap_or(&adapter).to_string();
        let gpu_runs: Vec<&str> = self.runs.iter().filter(|r| r.on_gpu()).map(|r| r.label.as_str()).collect();
        let mut parts = Vec::new();
        if !gpu_runs.is_empty() {
            parts.push(format!("WebGPU · {adapter} — {}", gpu_runs.join(", ")));
        }
        for r in self.runs.iter().filter(|r| r.backend.is_some() && !r.on_gpu()) {
            let why = r.cpu_reason.as_deref().unwrap_or("no reason given");
            parts.push(format!("CPU · concord-core trainer (wasm) — {}: {why}", r.label));
        }
        if parts.is_empty() {
            parts.push("no run could be built".into());
        }
        (!gpu_runs.is_empty(), parts.join(" · "))
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
                b.restore(rec).map_err(|e| format!("{}: {e}", run.label))?;
            }
        }
        self.steps = saved.steps;
        self.publish(true);
        self.cfg.set(State { play: false, ..state });
        Ok(())
    }

    /// The test hook's `gridCheck()`: per run, where its heatmap grid was computed ("webgpu" or
    /// "cpu") and, for a GPU grid, the largest |GPU − CPU| head output over the grid, the CPU
    /// being concord-core's forward pass at the same (read-back) parameters.
    pub fn grid_check_js(&self) -> wasm_bindgen::JsValue {
        let extent = self.points.as_ref().map(crate::grid::extent);
        let runs: Vec<serde_json::Value> = self
            .runs
            .iter()
            .map(|r| {
                let b = r.backend.as_ref();
                let gpu = b.zip(extent).and_then(|(b, e)| b.grid_outputs(e));
                let gap = gpu.zip(b.and_then(|b| Some((b.mlp()?, b.params()?)))).zip(extent).and_then(|((outs, (mlp, params)), e)| {
                    let cpu = mlp.predict_points(params, &crate::grid::points(e)).ok()?;
                    Some(outs.iter().zip(&cpu).flat_map(|(g, c)| g.iter().zip(c.iter()).map(|(a, b)| (a - b).abs())).fold(0.0f64, f64::max))
                });
                serde_json::json!({
                    "grid": if gpu.is_some() { "webgpu" } else { "cpu" },
                    "cells": gpu.map(|o| o.first().map_or(0, |m| m.nrows())),
                    "maxGap": gap,
                })
            })
            .collect();
        js_sys::JSON::parse(&serde_json::Value::Array(runs).to_string()).unwrap_or(wasm_bindgen::JsValue::NULL)
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
                    "backend": b.map(|b| b.kind()),
                    "backendReason": r.cpu_reason,
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
            "backendText": self.ui.backend.get_untracked().1,
            "reason": self.gpu_notice.clone().or_else(|| match &self.gpu {
                GpuChoice::Unavailable(why) => Some(why.clone()),
                _ => None,
            }),
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

/// What `set_gpu` takes: the device (nothing to take without the `webgpu` feature).
#[cfg(feature = "webgpu")]
pub type GpuDevice = std::sync::Arc<concord_gpu::Gpu>;
#[cfg(not(feature = "webgpu"))]
pub type GpuDevice = std::convert::Infallible;

/// Create the arena and apply the initial state.
pub fn install(ui: ArenaUi, cfg: RwSignal<State>, state: &State) {
    ARENA.with(|cell| *cell.borrow_mut() = Some(Arena::new(ui, cfg)));
    with(|a| a.configure(state));
}
