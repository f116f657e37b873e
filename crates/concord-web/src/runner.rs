//! Drives the runs, one chunk of steps per animation frame.
//!
//! One `Runner` lives in a thread-local (the page is single-threaded). Each animation frame it
//! either serves a pending `step(n)` request or, while playing, advances every run by the
//! steps-per-frame setting, then reads the positions back:
//! - **WebGPU**: every run sits in one `concord_gpu::ToyBatch`; a frame is one `advance`
//!   submission and one async readback. The batch is taken out of the runner while its readback
//!   is in flight, so at most one readback is ever pending and nothing blocks the main thread.
//! - **CPU**: one `concord_core::ToyRun` per run, stepped in lock-step within a time budget.
//!
//! If the GPU fails mid-run (device lost, mapping error) the runner continues on the CPU from the
//! last read-back positions, says so in the backend readout, and warns that the optimizer state
//! restarted. A reset bumps `generation`, so a readback for the old runs is discarded.

use crate::state::State;
use concord_core::{Method, OptimizerKind, ProblemKind, RunConfig, ToyRun};
use leptos::prelude::*;
use std::cell::RefCell;
use std::collections::VecDeque;

/// Steps one `step(n)` request may do per frame (it spans frames beyond that).
const REQUEST_CHUNK: u64 = 10_000;
/// CPU time per frame, in ms, before the rest of a chunk moves to the next frame.
const CPU_BUDGET_MS: f64 = 24.0;
/// Trails are thinned to half when they grow past this many points.
const TRAIL_MAX: usize = 6_000;

thread_local! {
    static RUNNER: RefCell<Option<Runner>> = const { RefCell::new(None) };
}

/// Run `f` on the runner; `None` before `install` (or if called re-entrantly).
pub fn with<R>(f: impl FnOnce(&mut Runner) -> R) -> Option<R> {
    RUNNER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut guard) => guard.as_mut().map(f),
        Err(_) => {
            web_sys::console::warn_1(&"concord: runner re-entered; call skipped".into());
            None
        }
    })
}

/// Which engine does the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    WebGpu,
    Cpu,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::WebGpu => "webgpu",
            BackendKind::Cpu => "cpu",
        }
    }
}

/// What the backend readout shows.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendInfo {
    /// `None` while the backend is still being chosen.
    pub kind: Option<BackendKind>,
    pub adapter: String,
    /// Why the CPU runs the steps (no WebGPU, or a GPU failure mid-run).
    pub reason: Option<String>,
}

/// Signals the runner writes and the panels read.
#[derive(Clone, Copy)]
pub struct Ui {
    pub steps: RwSignal<u64>,
    /// Steps per second, per run, over the last second or so.
    pub rate: RwSignal<f64>,
    pub backend: RwSignal<BackendInfo>,
    /// Bumped whenever positions or runs change: the plot redraws.
    pub version: RwSignal<u64>,
    pub ready: RwSignal<bool>,
}

impl Ui {
    pub fn new() -> Self {
        Ui {
            steps: RwSignal::new(0),
            rate: RwSignal::new(0.0),
            backend: RwSignal::new(BackendInfo {
                kind: None,
                adapter: String::new(),
                reason: None,
            }),
            version: RwSignal::new(0),
            ready: RwSignal::new(false),
        }
    }
}

/// One run as the page sees it.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub method: Method,
    pub start: [f64; 2],
    /// Index into the problem's published starts (picks the marker).
    pub start_index: usize,
}

enum Engine {
    #[cfg(feature = "webgpu")]
    Gpu(concord_gpu::ToyBatch),
    Cpu(Vec<ToyRun>),
}

/// A `step(n)` request from the test hook (or the Step button, which passes no callback).
struct StepRequest {
    remaining: u64,
    resolve: Option<js_sys::Function>,
}

pub struct Runner {
    ui: Ui,
    #[cfg(feature = "webgpu")]
    /// Shared with the arena's GPU runs (`GpuTrainer` takes an `Arc`; the page is single-threaded).
    gpu: Option<std::sync::Arc<concord_gpu::Gpu>>,
    backend: Option<BackendKind>,
    adapter: String,
    reason: Option<String>,
    problem: ProblemKind,
    methods: Vec<Method>,
    optimizer: OptimizerKind,
    lr_dirty: bool,
    spf: u32,
    playing: bool,
    runs: Vec<RunInfo>,
    engine: Option<Engine>,
    generation: u64,
    busy: bool,
    positions: Vec<[f64; 2]>,
    trails: Vec<Vec<[f64; 2]>>,
    steps: u64,
    requests: VecDeque<StepRequest>,
    /// (time ms, steps done since page load) samples for the steps/s readout.
    rate_samples: VecDeque<(f64, u64)>,
    work: u64,
    /// Test-only: the next GPU readback fails as if the device were lost.
    simulate_gpu_failure: bool,
    /// Whether a toy preset is shown (the multi-task presets run in `arena`).
    active: bool,
}

impl Runner {
    fn new(ui: Ui, state: &State) -> Self {
        Runner {
            ui,
            #[cfg(feature = "webgpu")]
            gpu: None,
            backend: None,
            adapter: String::new(),
            reason: None,
            problem: state.problem(),
            methods: state.method_list(),
            optimizer: state.optimizer_kind(),
            lr_dirty: false,
            spf: state.spf,
            playing: state.play,
            runs: Vec::new(),
            engine: None,
            generation: 0,
            busy: false,
            positions: Vec::new(),
            trails: Vec::new(),
            steps: 0,
            requests: VecDeque::new(),
            rate_samples: VecDeque::new(),
            work: 0,
            simulate_gpu_failure: false,
            active: state.preset.is_toy(),
        }
    }


    pub fn runs(&self) -> &[RunInfo] {
        &self.runs
    }
    pub fn positions(&self) -> &[[f64; 2]] {
        &self.positions
    }
    pub fn trails(&self) -> &[Vec<[f64; 2]>] {
        &self.trails
    }
    pub fn problem(&self) -> ProblemKind {
        self.problem
    }
    pub fn is_ready(&self) -> bool {
        self.backend.is_some()
    }

    /// Take the page state. `reset` restarts the runs (problem, methods, c or optimizer changed);
    /// a new learning rate is applied live, keeping the optimizer state.
    pub fn configure(&mut self, state: &State, reset: bool) {
        self.active = state.preset.is_toy();
        self.problem = state.problem();
        self.methods = state.method_list();
        self.spf = state.spf.max(1);
        self.playing = state.play;
        let kind = state.optimizer_kind();
        if reset || kind.name() != self.optimizer.name() {
            self.optimizer = kind;
            if self.is_ready() {
                self.reset();
            }
        } else if kind.lr() != self.optimizer.lr() {
            self.optimizer = self.optimizer.with_lr(kind.lr());
            self.lr_dirty = true;
        }
    }

    /// Restart every run from its start with the current settings.
    pub fn reset(&mut self) {
        self.generation += 1;
        self.busy = false;
        self.lr_dirty = false;
        self.steps = 0;
        self.runs = self
            .methods
            .iter()
            .flat_map(|&method| {
                self.problem.published_starts().iter().enumerate().map(
                    move |(start_index, &start)| RunInfo {
                        method,
                        start,
                        start_index,
                    },
                )
            })
            .collect();
        self.positions = self.runs.iter().map(|r| r.start).collect();
        self.trails = self.runs.iter().map(|r| vec![r.start]).collect();
        self.engine = Some(self.build_engine());
        self.publish();
    }

    fn build_engine(&mut self) -> Engine {
        #[cfg(feature = "webgpu")]
        if self.backend == Some(BackendKind::WebGpu) {
            if let Some(gpu) = self.gpu.clone() {
                let specs: Vec<concord_gpu::ToyRunSpec> = self
                    .runs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| concord_gpu::ToyRunSpec {
                        start: r.start,
                        method: r.method,
                        optimizer: self.optimizer,
                        seed: i as u32,
                    })
                    .collect();
                match concord_gpu::ToyBatch::new(&gpu, self.problem, &specs) {
                    Ok(batch) => return Engine::Gpu(batch),
                    Err(e) => self.fall_back(format!("the GPU could not set up the runs: {e}")),
                }
            }
        }
        Engine::Cpu(self.cpu_runs(false))
    }

    /// CPU runs from the current positions (`resume`) or from the starts.
    fn cpu_runs(&self, resume: bool) -> Vec<ToyRun> {
        self.runs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                ToyRun::new(RunConfig {
                    problem: self.problem,
                    start: if resume { self.positions[i] } else { r.start },
                    method: r.method,
                    optimizer: self.optimizer,
                    steps: usize::MAX,
                    seed: i as u64,
                    record_every: 1,
                })
            })
            .collect()
    }

    /// Switch to the CPU for good (the GPU stays unused until the page reloads).
    #[cfg_attr(not(feature = "webgpu"), allow(dead_code))]
    fn fall_back(&mut self, reason: String) {
        web_sys::console::warn_1(&format!("concord: {reason}").into());
        #[cfg(feature = "webgpu")]
        {
            self.gpu = None;
        }
        self.backend = Some(BackendKind::Cpu);
        self.reason = Some(reason);
        set_body_backend(BackendKind::Cpu);
        self.publish_backend();
    }

    /// Queue `n` steps; `resolve` is called with `state()` once they are done and read back.
    pub fn request_steps(&mut self, n: u64, resolve: Option<js_sys::Function>) {
        self.requests.push_back(StepRequest {
            remaining: n,
            resolve,
        });
    }

    /// Test-only: make the next GPU readback fail (exercises the CPU fallback). Returns
    /// whether a GPU engine is in use.
    pub fn simulate_gpu_failure(&mut self) -> bool {
        self.simulate_gpu_failure = true;
        self.backend == Some(BackendKind::WebGpu)
    }

    /// One animation frame.
    pub fn tick(&mut self, now: f64) {
        if !self.active {
            return;
        }
        self.sample_rate(now);
        if self.busy || self.engine.is_none() {
            return;
        }
        self.resolve_finished();
        let n = match self.requests.front() {
            // Chunks grow with the run (about a tenth of the steps so far), so the trail keeps
            // its early curvature while a long request still needs few frames.
            Some(req) => req.remaining.min(
                (self.steps / 10)
                    .max(self.spf as u64)
                    .min(REQUEST_CHUNK.max(self.spf as u64)),
            ),
            None if self.playing => self.spf as u64,
            None => return,
        };
        self.apply_lr();
        match self.engine.take() {
            Some(Engine::Cpu(mut runs)) => {
                let done = cpu_steps(&mut runs, n);
                self.engine = Some(Engine::Cpu(runs));
                let positions = match &self.engine {
                    Some(Engine::Cpu(runs)) => runs.iter().map(|r| r.position()).collect(),
                    _ => unreachable!(),
                };
                self.finish_steps(done, positions);
            }
            #[cfg(feature = "webgpu")]
            Some(Engine::Gpu(batch)) => self.gpu_steps(batch, n),
            None => {}
        }
    }

    #[cfg(feature = "webgpu")]
    fn gpu_steps(&mut self, mut batch: concord_gpu::ToyBatch, n: u64) {
        let Some(gpu) = self.gpu.clone() else {
            self.engine = Some(Engine::Cpu(self.cpu_runs(true)));
            return;
        };
        let generation = self.generation;
        // One submission; its errors surface at the readback (or `Gpu::check`).
        batch.advance(&gpu, n as u32);
        let submitted: Result<(), String> = if std::mem::take(&mut self.simulate_gpu_failure) {
            Err("simulated device loss (window.concord._simulateGpuFailure)".into())
        } else {
            Ok(())
        };
        self.busy = true;
        wasm_bindgen_futures::spawn_local(async move {
            let result = match submitted {
                // `check` also catches errors wgpu reported while the readback was pending.
                Ok(()) => match batch.positions(&gpu).await {
                    Ok(p) => gpu.check().map(|()| p).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e),
            };
            with(move |r| {
                if r.generation != generation {
                    return; // the runs were reset meanwhile: drop the old batch
                }
                r.busy = false;
                match result {
                    Ok(p) if p.len() == r.runs.len() => {
                        r.engine = Some(Engine::Gpu(batch));
                        let positions = p.iter().map(|q| [q[0] as f64, q[1] as f64]).collect();
                        r.finish_steps(n, positions);
                    }
                    Ok(p) => r.gpu_failed(format!(
                        "the GPU returned {} positions for {} runs",
                        p.len(),
                        r.runs.len()
                    )),
                    Err(e) => r.gpu_failed(e),
                }
            });
        });
    }

    /// A GPU call failed: continue on the CPU from the last read-back positions.
    #[cfg(feature = "webgpu")]
    fn gpu_failed(&mut self, error: String) {
        self.fall_back(format!(
            "GPU failed at step {} ({error}); continued on the CPU from the last read-back positions — optimizer state restarted",
            self.steps
        ));
        self.engine = Some(Engine::Cpu(self.cpu_runs(true)));
    }

    fn apply_lr(&mut self) {
        if !self.lr_dirty {
            return;
        }
        self.lr_dirty = false;
        let lr = self.optimizer.lr();
        match &mut self.engine {
            Some(Engine::Cpu(runs)) => runs.iter_mut().for_each(|r| r.set_lr(lr)),
            #[cfg(feature = "webgpu")]
            Some(Engine::Gpu(batch)) => {
                if let Some(gpu) = &self.gpu {
                    batch.set_lr(gpu, lr);
                }
            }
            None => self.lr_dirty = true,
        }
    }

    /// `done` steps finished with these read-back positions.
    fn finish_steps(&mut self, done: u64, positions: Vec<[f64; 2]>) {
        self.steps += done;
        self.work += done;
        for (trail, p) in self.trails.iter_mut().zip(&positions) {
            if trail.last() != Some(p) {
                trail.push(*p);
            }
            if trail.len() > TRAIL_MAX {
                let last = *trail.last().expect("non-empty");
                let mut k = 0;
                trail.retain(|_| {
                    k += 1;
                    k % 2 == 1
                });
                if trail.last() != Some(&last) {
                    trail.push(last);
                }
            }
        }
        self.positions = positions;
        if let Some(req) = self.requests.front_mut() {
            req.remaining = req.remaining.saturating_sub(done);
        }
        self.publish();
        self.resolve_finished();
    }

    /// Resolve the requests that have no steps left.
    fn resolve_finished(&mut self) {
        while self.requests.front().is_some_and(|r| r.remaining == 0) {
            let req = self.requests.pop_front().expect("front exists");
            if let Some(resolve) = req.resolve {
                let state = self.state_js();
                // Resolve outside the borrow: the promise's continuations run as microtasks anyway.
                let _ = resolve.call1(&wasm_bindgen::JsValue::NULL, &state);
            }
        }
    }

    fn publish(&self) {
        self.ui.steps.set(self.steps);
        self.ui.version.update(|v| *v += 1);
    }

    fn publish_backend(&self) {
        self.ui.backend.set(BackendInfo {
            kind: self.backend,
            adapter: self.adapter.clone(),
            reason: self.reason.clone(),
        });
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

    /// The test hook's `state()`: a plain object, built through JSON.
    pub fn state_js(&self) -> wasm_bindgen::JsValue {
        let runs: Vec<serde_json::Value> = self
            .runs
            .iter()
            .zip(&self.positions)
            .map(|(r, p)| {
                let c = match r.method {
                    Method::CaGrad { c } => serde_json::json!(c),
                    _ => serde_json::Value::Null,
                };
                serde_json::json!({
                    "method": r.method.name(),
                    "c": c,
                    "start": r.start,
                    "position": p,
                })
            })
            .collect();
        let state = serde_json::json!({
            "backend": self.backend.map(|b| b.name()),
            "adapter": self.adapter,
            "reason": self.reason,
            "problem": self.problem.name(),
            "steps": self.steps,
            "lr": self.optimizer.lr(),
            "optimizer": self.optimizer.name(),
            "runs": runs,
        });
        js_sys::JSON::parse(&state.to_string()).unwrap_or(wasm_bindgen::JsValue::NULL)
    }
}

/// Step every run `n` times in lock-step, stopping early (at a multiple of the inner chunk)
/// once the frame's CPU budget is spent. Returns the steps done.
fn cpu_steps(runs: &mut [ToyRun], n: u64) -> u64 {
    let t0 = now_ms();
    let mut done = 0;
    while done < n {
        let k = (n - done).min(25);
        for run in runs.iter_mut() {
            for _ in 0..k {
                run.step();
            }
        }
        done += k;
        if now_ms() - t0 > CPU_BUDGET_MS {
            break;
        }
    }
    done
}

pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0)
}

fn set_body_backend(kind: BackendKind) {
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        let _ = body.set_attribute("data-backend", kind.name());
    }
}

/// Create the runner, pick the backend (WebGPU if an adapter is available, else the CPU) and
/// start the animation loop. `on_ready` runs once the runs exist.
pub fn install(ui: Ui, state: &State, on_ready: impl FnOnce() + 'static) {
    RUNNER.with(|cell| *cell.borrow_mut() = Some(Runner::new(ui, state)));
    wasm_bindgen_futures::spawn_local(async move {
        let choice = choose_backend().await;
        with(|r| {
            match choice {
                #[cfg(feature = "webgpu")]
                Ok((gpu, adapter)) => {
                    warm_up(&gpu);
                    #[allow(clippy::arc_with_non_send_sync)]
                    let gpu = std::sync::Arc::new(gpu);
                    crate::arena::with(|a| a.set_gpu(Ok(gpu.clone())));
                    r.gpu = Some(gpu);
                    r.backend = Some(BackendKind::WebGpu);
                    r.adapter = adapter;
                    r.reason = None;
                }
                Err(reason) => {
                    crate::arena::with(|a| a.set_gpu(Err(reason.clone())));
                    r.backend = Some(BackendKind::Cpu);
                    r.adapter = String::new();
                    r.reason = Some(reason);
                }
            }
            set_body_backend(r.backend.expect("just set"));
            r.publish_backend();
            r.reset();
            // `reset` may have fallen back to the CPU; the body attribute follows `fall_back`.
            r.ui.ready.set(true);
        });
        on_ready();
        schedule_frame();
    });
}

/// Build the step pipeline now (one throw-away step of a one-run batch, never read back), so
/// that its compilation is not paid by the first frame after Play.
#[cfg(feature = "webgpu")]
fn warm_up(gpu: &concord_gpu::Gpu) {
    let spec = concord_gpu::ToyRunSpec {
        start: [0.0, 0.0],
        method: Method::Mean,
        optimizer: OptimizerKind::adam(1e-3),
        seed: 0,
    };
    if let Ok(mut batch) = concord_gpu::ToyBatch::new(gpu, ProblemKind::CagradToy, &[spec]) {
        batch.advance(gpu, 1);
    }
}

#[cfg(feature = "webgpu")]
async fn choose_backend() -> Result<(concord_gpu::Gpu, String), String> {
    match concord_gpu::Gpu::new().await {
        Ok(gpu) => {
            let label = gpu.adapter_label();
            Ok((gpu, label))
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(not(feature = "webgpu"))]
async fn choose_backend() -> Result<std::convert::Infallible, String> {
    Err("this build has no WebGPU backend (concord-web built without the `webgpu` feature)".into())
}

fn schedule_frame() {
    request_animation_frame(|| {
        let now = now_ms();
        with(|r| r.tick(now));
        crate::arena::with(|a| a.tick(now));
        schedule_frame();
    });
}

/// What the arena needs from a multi-task trainer. concord-core's CPU `Trainer` (compiled to
/// wasm) implements it here, `gpu_run::GpuRun` (concord-gpu's `GpuTrainer`) in its module;
/// `arena::build_backend` chooses. The GPU run answers from its last read-back snapshot and
/// steps through the arena's submit/readback cycle (`as_gpu`), not `step`. The optional parts
/// (parameters and model, for the heatmaps and the run export) default to "not available".
pub trait TrainBackend {
    /// "cpu" or "webgpu", for the readout.
    fn kind(&self) -> &'static str;
    fn step(&mut self) -> Result<(), String>;
    fn set_lr(&mut self, lr: f64) -> Result<(), String>;
    fn train_losses(&self) -> Result<Vec<f64>, String>;
    fn history(&self) -> &[concord_core::train::StepRecord];
    fn test_losses(&self) -> Option<Vec<f64>> {
        None
    }
    fn params(&self) -> Option<&[f64]> {
        None
    }
    fn mlp(&self) -> Option<&concord_core::model::Mlp> {
        None
    }
    fn record(&self) -> Option<concord_core::RunRecord> {
        None
    }
    /// The MoE model, for the MoE panel's routing map (`None` for MLP runs).
    fn moe(&self) -> Option<&concord_core::model::moe::Moe> {
        None
    }
    /// Put back an exported run's weights and history (its final losses, where the backend
    /// trusts them over a recomputation in another precision).
    fn restore(&mut self, _record: concord_core::RunRecord) -> Result<(), String> {
        Err("this backend cannot restore a saved run".into())
    }
    /// The heatmap grid's head outputs (`grid::points(extent)`), when the backend computed
    /// them itself (the GPU run); `None`: the panel runs the CPU forward pass.
    fn grid_outputs(&self, _extent: f64) -> Option<&[nalgebra::DMatrix<f64>]> {
        None
    }
    /// The GPU run behind this backend, if it is one (it steps asynchronously).
    #[cfg(feature = "webgpu")]
    fn as_gpu(&mut self) -> Option<&mut crate::gpu_run::GpuRun> {
        None
    }
    /// The training loss as a function of any parameter vector (for the landscape panel).
    fn objective(&self) -> Option<Box<dyn concord_core::landscape::Objective + '_>> {
        None
    }
    /// The whole training set (inputs, targets) the run trains on, for the GPU slice.
    fn train_set(&self) -> Option<(&nalgebra::DMatrix<f64>, &[concord_core::model::Target])> {
        None
    }
}

impl TrainBackend for concord_core::Trainer {
    fn kind(&self) -> &'static str {
        "cpu"
    }
    fn step(&mut self) -> Result<(), String> {
        concord_core::Trainer::step(self).map(|_| ())
    }
    fn set_lr(&mut self, lr: f64) -> Result<(), String> {
        concord_core::Trainer::set_lr(self, lr)
    }
    fn train_losses(&self) -> Result<Vec<f64>, String> {
        concord_core::Trainer::train_losses(self)
    }
    fn history(&self) -> &[concord_core::train::StepRecord] {
        concord_core::Trainer::history(self)
    }
    fn test_losses(&self) -> Option<Vec<f64>> {
        concord_core::Trainer::test_losses(self).and_then(|r| r.ok())
    }
    fn params(&self) -> Option<&[f64]> {
        Some(concord_core::Trainer::params(self))
    }
    fn mlp(&self) -> Option<&concord_core::model::Mlp> {
        concord_core::Trainer::mlp(self)
    }
    fn record(&self) -> Option<concord_core::RunRecord> {
        Some(concord_core::Trainer::record(self))
    }
    fn moe(&self) -> Option<&concord_core::model::moe::Moe> {
        concord_core::Trainer::moe(self)
    }
    fn restore(&mut self, record: concord_core::RunRecord) -> Result<(), String> {
        concord_core::Trainer::restore(self, record.params, record.history)
    }
    fn objective(&self) -> Option<Box<dyn concord_core::landscape::Objective + '_>> {
        Some(concord_core::Trainer::objective(self))
    }
    fn train_set(&self) -> Option<(&nalgebra::DMatrix<f64>, &[concord_core::model::Target])> {
        concord_core::Trainer::train_set(self)
    }
}
