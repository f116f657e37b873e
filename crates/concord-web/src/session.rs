//! The one engine of a playground: a `Session` owns every run of the page it belongs to and
//! drives each through concord-core's `train::Backend` — the CPU `Trainer`, or on WebGPU the
//! backend concord-gpu builds for the config (its fused toy kernel for the CAGrad toys, its MLP
//! trainer otherwise). A multi-task preset is one run per method (same data, seed and initial
//! weights); a toy preset is the grid method × published start.
//!
//! A session is a value: the playground component that owns it creates it and provides it to
//! its panels by context, so two playgrounds on one page run independently (no globals).
//!
//! Per animation frame: serve a pending `step(n)` request or, while playing, the steps-per-frame
//! setting. CPU runs take the steps in lock-step rounds and are then read back, all within a
//! wall-clock budget per frame that holds inside a step: rounds are sized from the measured
//! pace, and a step (or read-back) slower than a frame pauses between its pieces — a layer, an
//! expert, a task's backward pass — and goes on in the next frame with exactly the numbers of
//! an uninterrupted step (`Backend::submit_within`, `concord_core::pause`). So the page answers
//! however large a model the settings allow; the batch's read-back waits until every CPU run has
//! taken its steps. GPU runs then submit the same number of steps in one queue submission each and are read
//! back asynchronously — the backend is moved into the read-back future, so at most one
//! read-back per run is in flight and nothing blocks. A GPU run on 2-D points also predicts the
//! heatmap grid in that future (`Backend::predict`), so its heatmaps come from the GPU at the
//! read-back parameters; CPU runs' heatmaps are the CPU forward pass. While the conflict map panel
//! wants maps, a GPU MLP run computes its per-point conflict map in that future too
//! (`Backend::point_grams`) where its engine can; every other MLP run's map is concord-core's
//! `Mlp::point_grams` at the read-back parameters, computed when the panel redraws
//! (`refresh_conflict_maps`). Until every read-back of the frame is in,
//! the session submits nothing more (the runs stay in lock-step and a `step(n)` request
//! resolves on read-back state). If a read-back reports a device error, every GPU run continues
//! on the CPU from its last read-back state with a notice. A reset bumps `generation`, so a
//! read-back for old runs is dropped.

use crate::conflict_map::{ConflictMap, HOW};
use crate::preset::Family;
use crate::saved::{CurvePoint, ImportedRun, SavedCsv, SavedRun, SavedSession, FORMAT, VERSION};
use crate::state::State;
use crate::train_config::{base_config, run_limit_message, task_names, toy_configs, with_method, EVAL_EVERY};
use concord_core::data::MultiTaskData;
use concord_core::dynamics::RunSpec;
use concord_core::train::{Backend, BackendError, BackendKind, DataSource, History, RunRecord, Snapshot, TrainConfig};
use concord_core::Trainer;
use leptos::prelude::*;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use nalgebra::DMatrix;
/// The most steps one batch takes while a GPU run's weights come from the CPU: each of its steps
/// waits on a read-back of G (about a millisecond or two in the browser, more on SwiftShader),
/// so 20 keeps a snapshot within a few frames.
const HYBRID_BATCH: u64 = 20;

/// CPU time per frame, in ms, before the rest of a chunk moves to the next frame.
const CPU_BUDGET_MS: f64 = 24.0;
/// Shortest gap between two redraws while playing, in ms.
const REDRAW_MS: f64 = 90.0;
/// Steps one `step(n)` request may do per frame (it spans frames beyond that).
const REQUEST_CHUNK: u64 = 10_000;
/// Toy trails are thinned to half when they grow past this many points.
const TRAIL_MAX: usize = 6_000;
/// Loss curves are thinned to half when they grow past this many points.
const CURVE_MAX: usize = 4_000;
/// Conflict maps are refreshed at most this often (ms) while the runs train: the GPU's at
/// read-back while playing, the CPU's when the panel redraws (and both once a `step(n)` request
/// is done).
pub const MAP_MS: f64 = 400.0;
/// What one point of a CPU conflict map costs, in half forward passes of the model: 2m + 3, i.e.
/// a forward pass, one backward pass per task (`Mlp::point_grams`) and the Grams. Measured in
/// the page's wasm: 3.4–3.5 forward passes for m = 2 (BENCHMARKS.md, "Per-point conflict map").
fn map_half_passes(m: usize) -> usize {
    2 * m + 3
}
/// One colour per method slot (distinct from the heatmaps' orange and blue). PCGrad's is
/// Okabe–Ito's bluish green: the earlier #1a9850 and the crimson were nearly one colour to a
/// deuteranope (simulated ΔE 4.8; now the closest pair of the five is ΔE 19.6).
pub const SLOT_COLOURS: [&str; 5] = ["#d6204e", "#009e73", "#6a3d9a", "#2b2b2b", "#8c510a"];
/// The toys' other methods (up to twelve race at once): none close to the classic five's colours.
pub const TOY_COLOURS: [&str; 12] = [
    "#1f78b4", "#ff7f00", "#e7298a", "#17becf", "#b8860b", "#7f7f7f", "#00008b", "#bc80bd", "#8dd3c7", "#fb8072",
    "#4d9221", "#000000",
];

/// A run's colour: on the toys the classic methods (without options) keep the colours the
/// explanation names (Mean grey-black, PCGrad green, MGDA purple, CAGrad red); otherwise one
/// colour per slot.
pub fn colour_for(run: &RunSpec, slot: usize, toy: bool) -> &'static str {
    let spec = &run.method;
    let classic = match spec.aggregator.name() {
        _ if !run.options.is_default() => None,
        "mean" if spec.weighting.is_none() => Some("#2b2b2b"),
        "sum" => Some("#8c510a"),
        "pcgrad" => Some("#009e73"),
        "mgda" => Some("#6a3d9a"),
        "cagrad" => Some("#d6204e"),
        _ => None,
    };
    match classic {
        Some(c) if toy => c,
        None if toy => TOY_COLOURS[slot % TOY_COLOURS.len()],
        _ => SLOT_COLOURS[slot % SLOT_COLOURS.len()],
    }
}

/// What the backend readout shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Readout {
    /// `None` while the device is being acquired; else whether any run is on WebGPU.
    pub gpu: Option<bool>,
    pub text: String,
}

/// Signals the session writes and the panels read (Copy, so closures capture it freely).
#[derive(Clone, Copy)]
pub struct SessionUi {
    /// Bumped whenever runs or read-back state change: the panels redraw.
    pub version: RwSignal<u64>,
    pub steps: RwSignal<u64>,
    /// Steps per second per run, over the last second or so.
    pub rate: RwSignal<f64>,
    /// Why no run could be built (bad data/model combination), if so.
    pub error: RwSignal<Option<String>>,
    /// Per-slot errors (a bad parameter, a divergence): the first run of each method slot.
    pub run_errors: RwSignal<Vec<Option<String>>>,
    /// "name.csv: 300 points, 2 tasks" while the user's CSV is in use.
    pub csv: RwSignal<Option<String>>,
    pub backend: RwSignal<Readout>,
    pub ready: RwSignal<bool>,
}

impl SessionUi {
    fn new() -> Self {
        SessionUi {
            version: RwSignal::new(0),
            steps: RwSignal::new(0),
            rate: RwSignal::new(0.0),
            error: RwSignal::new(None),
            run_errors: RwSignal::new(Vec::new()),
            csv: RwSignal::new(None),
            backend: RwSignal::new(Readout { gpu: None, text: "Choosing a backend…".into() }),
            ready: RwSignal::new(false),
        }
    }
}

/// A parameter snapshot is kept every this many steps (for trajectories, PCA and λ_max).
const SNAPSHOT_EVERY: usize = 10;
/// Most snapshots kept per run.
const MAX_SNAPSHOTS: usize = 200;

/// One run's parameter snapshots (step, θ), oldest first: one every `SNAPSHOT_EVERY` steps,
/// thinned to every other one when `MAX_SNAPSHOTS` is reached (memory stays bounded).
#[derive(Default, Clone)]
pub struct Snapshots {
    pub steps: Vec<usize>,
    pub params: Vec<Vec<f64>>,
    every: usize,
}

impl Snapshots {
    /// Keep θ at `step` if it is due.
    pub fn offer(&mut self, step: usize, params: &[f64]) {
        let every = self.every.max(SNAPSHOT_EVERY);
        if self.steps.last().is_some_and(|&l| step < l) {
            *self = Snapshots::default();
        }
        if self.steps.last().is_none_or(|&l| step >= l + every) || self.steps.is_empty() {
            self.steps.push(step);
            self.params.push(params.to_vec());
            self.every = every;
        }
        if self.steps.len() > MAX_SNAPSHOTS {
            self.steps = self.steps.iter().copied().step_by(2).collect();
            self.params = std::mem::take(&mut self.params).into_iter().step_by(2).collect();
            self.every = every * 2;
        }
    }

    /// Steps from `step` until the next snapshot is due (≥ 1). A GPU run is read back only
    /// between submissions, so a submission ends there to see θ at that step.
    pub fn steps_until_due(&self, step: usize) -> usize {
        let every = self.every.max(SNAPSHOT_EVERY);
        match self.steps.last() {
            Some(&l) if step >= l => (l + every).saturating_sub(step).max(1),
            _ => 1,
        }
    }
}

/// One run: its config, its engine, and the state as last read back.
pub struct Run {
    pub spec: RunSpec,
    /// Index of the method in the page's method list (colour, legend).
    pub slot: usize,
    pub label: String,
    pub colour: &'static str,
    /// Toy runs: the start and its index among the published starts (the marker).
    pub start: Option<([f64; 2], usize)>,
    pub config: TrainConfig,
    /// The engine; `None` while its read-back is in flight, or if it could not be built.
    engine: Option<Box<dyn Backend>>,
    on_gpu: bool,
    built: bool,
    /// A CPU trainer of the same config, never stepped: the model, the training set and the
    /// objective (the loss at any parameter vector) for the panels.
    twin: Option<Trainer>,
    pub error: Option<String>,
    /// Why this run is on the CPU (no WebGPU, a config the GPU cannot train, a GPU failure).
    pub cpu_reason: Option<String>,
    /// Steps before the engine's own count (a toy continued on the CPU from a read-back point).
    offset: usize,
    lr_pending: Option<f64>,
    // The read-back state.
    pub steps: usize,
    /// Bounded (concord-core's `History`: the recent steps whole, older ones thinned), so a run
    /// left playing keeps a flat memory.
    pub history: History,
    pub params: Vec<f64>,
    pub train: Vec<f64>,
    pub test: Option<Vec<f64>>,
    pub curve: Vec<CurvePoint>,
    /// Toy runs: the point at every read-back.
    pub trail: Vec<[f64; 2]>,
    pub snapshots: Snapshots,
    /// GPU runs on 2-D points: the heatmap grid's head outputs (extent, one matrix per task)
    /// predicted by the engine at the last read-back, i.e. at `params`.
    grid: GridOutputs,
    /// GPU runs the network view shows: the trunk's activations (one matrix per hidden layer,
    /// rows = `grid::thumbnail_rows`) from the same forward pass as `grid`, i.e. at `params`.
    grid_hidden: GridOutputs,
    /// GPU runs whose network view shows an enlarged neuron: (extent, (layer, neuron), its
    /// activation at every heatmap grid point) from the same forward pass as `grid`.
    grid_neuron: GridNeuron,
    /// The latest per-point conflict map (MLP runs of two tasks or more; its `step` says at which
    /// parameters), from the GPU read-back or the CPU.
    pub conflict: Option<ConflictMap>,
    /// Whether the engine computes conflict maps itself (`Backend::point_grams`): unknown until
    /// a read-back asked it.
    gpu_maps: Option<bool>,
    /// Sample-level conflict at the snapshots, computed by the panel that charts it.
    pub sample_series: crate::sample_series::SampleSeries,
}

impl Run {
    pub fn on_gpu(&self) -> bool {
        self.on_gpu
    }
    pub fn kind(&self) -> &'static str {
        if self.on_gpu {
            "webgpu"
        } else {
            "cpu"
        }
    }
    fn live(&self) -> bool {
        self.built && self.error.is_none()
    }
    pub fn is_built(&self) -> bool {
        self.built
    }
    pub fn mlp(&self) -> Option<&concord_core::model::Mlp> {
        self.twin.as_ref()?.mlp()
    }
    pub fn moe(&self) -> Option<&concord_core::model::moe::Moe> {
        self.twin.as_ref()?.moe()
    }
    pub fn objective(&self) -> Option<Box<dyn concord_core::landscape::Objective + '_>> {
        Some(self.twin.as_ref()?.objective())
    }
    pub fn train_set(&self) -> Option<(&nalgebra::DMatrix<f64>, &[concord_core::model::Target])> {
        self.twin.as_ref()?.train_set()
    }
    pub fn params(&self) -> Option<&[f64]> {
        self.built.then_some(self.params.as_slice())
    }
    /// The model's head outputs at 2-D points (MLP or MoE) at the run's read-back weights, each
    /// point through the run's input features first (the twin's `predict_points_at`).
    pub fn predict_points(&self, points: &[[f64; 2]]) -> Option<Vec<nalgebra::DMatrix<f64>>> {
        self.twin.as_ref()?.predict_points_at(self.params()?, points)?.ok()
    }
    /// The initial weights θ₀ (the never-stepped twin's; every run of the arena shares them).
    pub fn init_params(&self) -> Option<&[f64]> {
        Some(self.twin.as_ref()?.params())
    }
    /// The engine's own heatmap grid outputs at `params` for this extent, if it predicted them.
    pub fn grid_outputs(&self, extent: f64) -> Option<&[DMatrix<f64>]> {
        match &self.grid {
            Some((e, outs)) if *e == extent => Some(outs),
            _ => None,
        }
    }
    /// The engine's own network-view thumbnails (`grid_hidden`) at `params` for this extent.
    pub fn gpu_thumbnails(&self, extent: f64) -> Option<&[DMatrix<f64>]> {
        match &self.grid_hidden {
            Some((e, acts)) if *e == extent => Some(acts),
            _ => None,
        }
    }
    /// The engine's own full-resolution map of neuron `at` (`grid_neuron`) at `params`.
    pub fn gpu_neuron(&self, extent: f64, at: (usize, usize)) -> Option<&[f64]> {
        match &self.grid_neuron {
            Some((e, n, values)) if *e == extent && *n == at => Some(values),
            _ => None,
        }
    }
    /// Whether the run has a conflict map at all: an MLP of two tasks or more on 2-D inputs.
    pub fn has_conflict_map(&self) -> bool {
        let points = self.config.features.is_some() || self.mlp().is_some_and(|m| m.config().input_dim == 2);
        self.mlp().is_some_and(|m| m.num_tasks() >= 2) && points && self.built
    }
    /// Whether its maps come from its engine (the GPU kernel) rather than the CPU.
    pub fn maps_on_gpu(&self) -> bool {
        self.on_gpu && self.gpu_maps != Some(false)
    }
    /// The latest map if it is of the current parameters and this grid.
    pub fn fresh_conflict(&self, extent: f64) -> Option<&ConflictMap> {
        self.conflict.as_ref().filter(|c| c.step == self.steps && c.extent == extent)
    }
    pub fn position(&self) -> [f64; 2] {
        [self.params.first().copied().unwrap_or(f64::NAN), self.params.get(1).copied().unwrap_or(f64::NAN)]
    }

    /// The run in concord-core's record shape (the last read-back state).
    pub fn record(&self, task_names: &[String]) -> Option<RunRecord> {
        self.built.then(|| RunRecord {
            config: self.config.clone(),
            task_names: task_names.to_vec(),
            steps_done: self.steps,
            params: self.params.clone(),
            history: self.history.to_vec(),
            final_train_losses: self.train.clone(),
            final_test_losses: self.test.clone(),
            error: self.error.clone(),
        })
    }

    /// Take a read-back.
    fn apply(&mut self, snap: Snapshot) {
        let last_curve = self.curve.last().map(|c| c.step);
        for mut rec in snap.new_records {
            rec.step += self.offset;
            if rec.step > 0 && rec.step.is_multiple_of(EVAL_EVERY) && last_curve.is_none_or(|l| rec.step > l) {
                self.curve.push(CurvePoint {
                    step: rec.step,
                    train: rec.losses.clone(),
                    test: rec.test_losses.clone(),
                });
            }
            self.history.push(rec);
        }
        self.steps = snap.steps_done + self.offset;
        self.params = snap.params;
        self.train = snap.train_losses;
        self.test = snap.test_losses;
        if self.steps.is_multiple_of(EVAL_EVERY)
            && self.curve.last().is_none_or(|c| self.steps > c.step)
            && !self.train.is_empty()
        {
            self.curve.push(CurvePoint { step: self.steps, train: self.train.clone(), test: self.test.clone() });
        }
        thin_curve(&mut self.curve);
        if let Some(e) = snap.error {
            self.error = Some(e);
        }
        // The step limit ends a run the same way on every backend: at the read-back that
        // reaches it (the engines queue no step past it).
        if self.error.is_none() && self.steps >= self.config.steps {
            self.error = Some(run_limit_message(self.config.steps));
        }
        if self.start.is_some() {
            let p = self.position();
            if self.trail.last() != Some(&p) {
                self.trail.push(p);
            }
            thin_trail(&mut self.trail);
        }
        let (step, params) = (self.steps, std::mem::take(&mut self.params));
        self.snapshots.offer(step, &params);
        self.params = params;
    }
}

/// The loss curve (a point every `EVAL_EVERY` steps) is thinned to every other point, the first
/// and the latest kept, when it grows past `CURVE_MAX`: it spans the whole run in bounded
/// memory (the curves panel draws at most a few hundred points per line anyway).
fn thin_curve(curve: &mut Vec<CurvePoint>) {
    if curve.len() <= CURVE_MAX {
        return;
    }
    let last = curve.pop();
    let mut k = 0;
    curve.retain(|_| {
        k += 1;
        k % 2 == 1
    });
    curve.extend(last);
}

fn thin_trail(trail: &mut Vec<[f64; 2]>) {
    if trail.len() <= TRAIL_MAX {
        return;
    }
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

/// Steps of at least this long (per run, as measured) are taken with the clock checked inside
/// them (`Backend::submit_within`); quicker ones in one `submit` per run and round.
const SLOW_STEP_MS: f64 = 0.5;
/// A round shorter than this is not timed (the page's clock ticks in 0.1 ms or coarser).
const MIN_TIMED_MS: f64 = 2.0;
/// Weight of a new measurement in the pace's moving averages.
const PACE_WEIGHT: f64 = 0.3;

/// The CPU runs' measured pace (exponential moving averages, in ms): one lock-step step of
/// every CPU run, and one read-back of every CPU run. A frame's rounds are sized by it.
#[derive(Default)]
struct CpuPace {
    /// The runs it was measured on.
    generation: u64,
    step_ms: Option<f64>,
    read_ms: Option<f64>,
    /// The largest round so far (a round grows at most 8× over it).
    last_k: usize,
}

/// One batch of lock-step steps of the CPU runs, which may span frames: in rounds, every run
/// takes steps up to the same count (`target`), then every run is read back. The GPU runs take
/// the batch's steps once it is done, so a `step(n)` request still resolves on read-back state
/// with every run at the same count.
struct CpuBatch {
    generation: u64,
    /// Steps wanted (a request's chunk, or steps-per-frame while playing).
    want: usize,
    /// Per CPU run: (index in `runs`, steps taken in this batch, stopped — the engine took
    /// fewer steps than asked: an error, or the end of the run).
    runs: Vec<(usize, usize, bool)>,
    /// The current round's count.
    target: usize,
    round_k: usize,
    /// Time spent on the current round so far, in ms.
    round_ms: f64,
    /// Every run has taken its steps; read-backs under way.
    reading: bool,
    /// Runs read back so far (in `runs`' order), and where this frame's read-backs began.
    read: usize,
    read_start: usize,
    read_ms: f64,
}

impl CpuBatch {
    fn new(generation: u64, want: usize, runs: Vec<usize>) -> CpuBatch {
        CpuBatch {
            generation,
            want,
            runs: runs.into_iter().map(|i| (i, 0, false)).collect(),
            target: 0,
            round_k: 0,
            round_ms: 0.0,
            reading: false,
            read: 0,
            read_start: 0,
            read_ms: 0.0,
        }
    }

    /// The fewest steps the batch takes before its read-back: as many as one read-back costs
    /// (with the measured pace), at most the steps wanted.
    fn least(&self, pace: &CpuPace) -> usize {
        match (pace.step_ms, pace.read_ms) {
            (Some(step), Some(read)) if step > 0.0 => ((read / step).ceil() as usize).clamp(1, self.want.max(1)),
            _ => 1,
        }
    }

    /// The count every run still going has reached (all stopped: the farthest one's).
    fn level(&self) -> usize {
        let going = self.runs.iter().filter(|r| !r.2).map(|r| r.1).min();
        going.unwrap_or_else(|| self.runs.iter().map(|r| r.1).max().unwrap_or(0))
    }
}

/// A `step(n)` request from the test hook or the Step button.
struct StepRequest {
    remaining: u64,
    resolve: Option<js_sys::Function>,
}

/// The session's view of its WebGPU device.
enum GpuChoice {
    Pending,
    #[cfg(feature = "webgpu")]
    Ready(std::sync::Arc<concord_gpu::Gpu>),
    /// No WebGPU, or it failed: why.
    Unavailable(String),
}

/// Runs built for a state, not yet in the session: `rebuild` installs them at once, `import_json`
/// once every one is restored (so a refused file leaves the session as it was).
struct Built {
    runs: Vec<Run>,
    points: Option<MultiTaskData>,
    curve_data: Option<(Vec<f64>, Vec<Vec<f64>>, usize)>,
    grid_points: GridPoints,
    task_names: Vec<String>,
}

/// A GPU read-back, held until the frame's other read-backs are in.
struct Arrived {
    slot: usize,
    engine: Box<dyn Backend>,
    /// The snapshot and, for a run with a heatmap grid, the grid's outputs and (if asked) the
    /// conflict map.
    result: Result<(Snapshot, GridOutputs, GridOutputs, GridNeuron, MapOutcome), BackendError>,
}

/// What a GPU read-back brought for the conflict map.
enum MapOutcome {
    /// Not asked for.
    None,
    /// The engine has no conflict-map kernel for this run: the CPU computes its maps.
    Unsupported,
    /// The map, and how long it took (ms, the kernels and their read-back).
    Map(ConflictMap, f64),
}

/// A heatmap grid's head outputs as an engine predicted them: (extent, one matrix per task).
type GridOutputs = Option<(f64, Vec<DMatrix<f64>>)>;

/// One hidden neuron's activation over a heatmap grid as an engine computed it: (extent,
/// (layer, neuron), one value per grid point).
type GridNeuron = Option<(f64, (usize, usize), Vec<f64>)>;

/// The heatmap grid a GPU run predicts at each read-back: its extent and points.
type GridPoints = Option<(f64, Rc<Vec<[f64; 2]>>)>;

pub struct SessionInner {
    pub ui: SessionUi,
    cfg: RwSignal<State>,
    /// The state the runs were built from.
    applied: Option<State>,
    pub runs: Vec<Run>,
    pub task_names: Vec<String>,
    /// The 2-D points and labels (task sets and CSV), for the heatmaps.
    pub points: Option<MultiTaskData>,
    /// The sinusoid points (x, one y column per task) and the train count, for its curve plot.
    pub curve_data: Option<(Vec<f64>, Vec<Vec<f64>>, usize)>,
    /// The heatmap grid (`grid::points` over `points`' extent) the GPU runs predict.
    grid_points: GridPoints,
    csv: Option<(String, MultiTaskData)>,
    playing: bool,
    /// False while an embedded figure is scrolled out of view: playing then takes no steps
    /// (explicit `step(n)` requests still run) and resumes when it is visible again.
    visible: bool,
    spf: u32,
    steps: u64,
    requests: VecDeque<StepRequest>,
    rate_samples: VecDeque<(f64, u64)>,
    work: u64,
    last_publish: f64,
    gpu: GpuChoice,
    adapter: String,
    generation: u64,
    in_flight: usize,
    /// Steps this frame's GPU submissions took.
    frame_steps: u64,
    /// The CPU runs' batch under way (it may span frames), and their measured pace.
    cpu_batch: Option<CpuBatch>,
    pace: CpuPace,
    arrived: Vec<Arrived>,
    simulate_gpu_failure: bool,
    /// Why the runs left the GPU mid-run, once they have.
    gpu_notice: Option<String>,
    /// The `window.concord`-style hook object of this session (panels add to it).
    pub hook: js_sys::Object,
    /// The page's own playground (it marks the body with the backend in use).
    main: bool,
    /// Whether the conflict map panel is shown (GPU read-backs then bring maps), when the GPU
    /// runs last brought one (ms), and how long the slowest of them took then.
    maps_wanted: bool,
    /// The run the network view shows while it is shown: its GPU read-backs bring the trunk's
    /// activations at the thumbnail points too (`Backend::predict_hidden`).
    network_run: Option<usize>,
    /// The neuron the network view shows enlarged (layer, index), if any: that run's GPU
    /// read-backs bring its map at the full grid resolution (`Backend::predict_neuron`).
    network_large: Option<(usize, usize)>,
    last_gpu_map: f64,
    gpu_map_ms: f64,
}

/// A playground's engine: a cheap handle (Copy) to the runs and the signals the panels read.
#[derive(Clone, Copy)]
pub struct Session {
    inner: StoredValue<Rc<RefCell<SessionInner>>, LocalStorage>,
    pub ui: SessionUi,
}

pub fn use_session() -> Session {
    expect_context::<Session>()
}

impl Session {
    /// A session for `cfg`'s settings; it acquires its WebGPU device, builds the runs and starts
    /// its animation loop (which ends when the owning component is disposed).
    pub fn new(cfg: RwSignal<State>, hook: js_sys::Object, main: bool, on_ready: impl FnOnce() + 'static) -> Session {
        let ui = SessionUi::new();
        let inner = SessionInner {
            ui,
            cfg,
            applied: None,
            runs: Vec::new(),
            task_names: Vec::new(),
            points: None,
            curve_data: None,
            grid_points: None,
            csv: None,
            playing: false,
            visible: true,
            spf: 1,
            steps: 0,
            requests: VecDeque::new(),
            rate_samples: VecDeque::new(),
            work: 0,
            last_publish: 0.0,
            gpu: GpuChoice::Pending,
            adapter: String::new(),
            generation: 0,
            in_flight: 0,
            frame_steps: 0,
            cpu_batch: None,
            pace: CpuPace::default(),
            arrived: Vec::new(),
            simulate_gpu_failure: false,
            gpu_notice: None,
            hook,
            main,
            maps_wanted: false,
            network_run: None,
            network_large: None,
            last_gpu_map: f64::NEG_INFINITY,
            gpu_map_ms: 0.0,
        };
        let session = Session { inner: StoredValue::new_local(Rc::new(RefCell::new(inner))), ui };
        let state = cfg.get_untracked();
        session.with(|s| s.configure(&state));
        with_shared_gpu(move |choice| {
            session.with(|s| {
                match choice {
                    #[cfg(feature = "webgpu")]
                    Ok(gpu) => {
                        s.adapter = gpu.adapter_label();
                        s.gpu = GpuChoice::Ready(gpu);
                    }
                    Err(why) => s.gpu = GpuChoice::Unavailable(why),
                }
                s.rebuild();
                s.ui.ready.set(true);
            });
            on_ready();
            schedule_frame(session);
        });
        session
    }

    /// Run `f` on the session; `None` once it is disposed (or if called re-entrantly).
    pub fn with<R>(&self, f: impl FnOnce(&mut SessionInner) -> R) -> Option<R> {
        let rc = self.inner.try_get_value()?;
        let mut guard = rc.try_borrow_mut().ok()?;
        Some(f(&mut guard))
    }

    /// One press of Step: steps-per-frame more steps.
    pub fn step_once(&self) {
        self.with(|s| {
            let spf = s.spf as u64;
            s.request_steps(spf, None)
        });
    }

    pub fn reset(&self) {
        self.with(SessionInner::rebuild);
    }
}

fn schedule_frame(session: Session) {
    request_animation_frame(move || {
        let t = now_ms();
        if session.with(|s| s.tick(session, t)).is_some() {
            schedule_frame(session);
        }
    });
}

#[cfg(feature = "webgpu")]
type SharedGpu = Result<std::sync::Arc<concord_gpu::Gpu>, String>;
#[cfg(not(feature = "webgpu"))]
type SharedGpu = Result<std::convert::Infallible, String>;

/// The page's one WebGPU device, shared by every playground and figure on the page: requested
/// once (the first session asks), handed to each session as it starts.
enum GpuSlot {
    Idle,
    Pending(Vec<Box<dyn FnOnce(SharedGpu)>>),
    Done(SharedGpu),
}

thread_local! {
    // A page-wide resource, not engine state: sessions stay values, they only share the device.
    static PAGE_GPU: RefCell<GpuSlot> = const { RefCell::new(GpuSlot::Idle) };
}

/// Call `f` with the page's device (or why there is none), asking for it on first use. `f`
/// always runs on a later turn of the event loop, never inside this call.
fn with_shared_gpu(f: impl FnOnce(SharedGpu) + 'static) {
    let f: Box<dyn FnOnce(SharedGpu)> = Box::new(f);
    let (ask, known) = PAGE_GPU.with_borrow_mut(|slot| match slot {
        GpuSlot::Done(result) => (false, Some((f, result.clone()))),
        GpuSlot::Pending(waiting) => {
            waiting.push(f);
            (false, None)
        }
        GpuSlot::Idle => {
            *slot = GpuSlot::Pending(vec![f]);
            (true, None)
        }
    });
    if let Some((f, result)) = known {
        wasm_bindgen_futures::spawn_local(async move { f(result) });
    }
    if ask {
        wasm_bindgen_futures::spawn_local(async move {
            let result = choose_gpu().await;
            let waiting =
                PAGE_GPU.with_borrow_mut(|slot| match std::mem::replace(slot, GpuSlot::Done(result.clone())) {
                    GpuSlot::Pending(waiting) => waiting,
                    _ => Vec::new(),
                });
            for f in waiting {
                f(result.clone());
            }
        });
    }
}

/// A session saw the device fail: the next session to start asks for a new one.
fn forget_shared_gpu() {
    PAGE_GPU.with_borrow_mut(|slot| {
        if matches!(slot, GpuSlot::Done(_)) {
            *slot = GpuSlot::Idle;
        }
    });
}

#[cfg(feature = "webgpu")]
async fn choose_gpu() -> SharedGpu {
    #[allow(clippy::arc_with_non_send_sync)]
    concord_gpu::Gpu::new().await.map(std::sync::Arc::new).map_err(|e| e.to_string())
}

#[cfg(not(feature = "webgpu"))]
async fn choose_gpu() -> SharedGpu {
    Err("this build has no WebGPU backend (concord-web built without the `webgpu` feature)".into())
}

pub fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or(0.0)
}

impl SessionInner {
    pub fn is_toy(&self) -> bool {
        self.applied.as_ref().is_some_and(|s| s.preset.is_toy())
    }

    /// The toy problem the runs train on, if this is a toy preset.
    pub fn toy_problem(&self) -> Option<concord_core::ProblemKind> {
        self.is_toy().then(|| self.applied.as_ref().map(|s| s.preset.toy_problem())).flatten()
    }

    pub fn state(&self) -> Option<&State> {
        self.applied.as_ref()
    }

    pub fn family(&self) -> Option<Family> {
        self.applied.as_ref().map(|s| if self.csv.is_some() { Family::TaskSet } else { s.preset.family() })
    }

    /// The page's WebGPU device, once acquired (the landscape panel slices on it).
    #[cfg(feature = "webgpu")]
    pub fn gpu_device(&self) -> Option<std::sync::Arc<concord_gpu::Gpu>> {
        match &self.gpu {
            GpuChoice::Ready(gpu) => Some(gpu.clone()),
            _ => None,
        }
    }

    /// An embedded figure scrolled into (true) or out of (false) view.
    pub fn set_visible(&mut self, visible: bool) {
        self.visible = visible;
    }

    /// The conflict map panel is shown (`true`) or hidden: GPU read-backs bring maps only while
    /// it is shown.
    pub fn set_maps_wanted(&mut self, wanted: bool) {
        self.maps_wanted = wanted;
    }

    /// The network view shows run `k` (`None`: it is hidden): that run's GPU read-backs bring
    /// its thumbnails.
    pub fn set_network_run(&mut self, k: Option<usize>) {
        self.network_run = k;
    }

    /// The network view enlarges neuron (layer, index) of its run (`None`: no enlarged map).
    pub fn set_network_large(&mut self, at: Option<(usize, usize)>) {
        self.network_large = at;
    }

    /// Whether `step(n)` requests are still being served.
    pub fn requests_pending(&self) -> bool {
        !self.requests.is_empty()
    }

    /// The extent of the heatmap grid, if the runs are on 2-D points.
    pub fn grid_extent(&self) -> Option<f64> {
        self.grid_points.as_ref().map(|(e, _)| *e)
    }

    /// Whether the runs are stopped: not playing, no `step(n)` request left.
    fn idle(&self) -> bool {
        !self.playing && self.requests.is_empty()
    }

    /// The side of the CPU's conflict maps: within the page's CPU grid budget (`grid::
    /// side_within_budget`) for every run whose maps the CPU computes (every MLP run once they
    /// stop: GPU runs whose last map is older get one too), a point costing about m + 1.5 forward
    /// passes of the model (`map_half_passes`).
    pub fn cpu_map_side(&self) -> usize {
        let idle = self.idle();
        let cpu: Vec<&Run> = self.runs.iter().filter(|r| r.has_conflict_map() && (idle || !r.maps_on_gpu())).collect();
        let params = cpu.iter().filter_map(|r| r.params()).map(<[f64]>::len).max().unwrap_or(0);
        let m = cpu.iter().filter_map(|r| r.mlp()).map(|m| m.num_tasks()).max().unwrap_or(2);
        let cost = (params * map_half_passes(m)).div_ceil(2);
        crate::grid::side_within_budget(cost, cpu.len(), crate::grid::GRID)
    }

    /// The CPU's conflict maps: every MLP run whose engine does not compute maps (has not brought
    /// one yet, or is stopped on an older one), and whose map is not of its current parameters
    /// and grid, gets
    /// concord-core's `Mlp::point_grams` map at its read-back parameters on a grid of
    /// `cpu_map_side()` cells per side.
    pub fn refresh_conflict_maps(&mut self) {
        self.refresh_conflict_maps_within(f64::INFINITY);
    }

    /// `refresh_conflict_maps`, one run's map after another until `deadline` (ms, `now_ms`' clock)
    /// has passed (at least one map per call, so a refresh spread over frames keeps each frame to
    /// about one map). Returns whether every map is refreshed.
    pub fn refresh_conflict_maps_within(&mut self, deadline: f64) -> bool {
        let Some((extent, _)) = self.grid_points.clone() else { return true };
        let side = self.cpu_map_side();
        let idle = self.idle();
        let mut points: Option<Vec<[f64; 2]>> = None;
        let mut done = 0;
        for run in self.runs.iter_mut().filter(|r| r.has_conflict_map()) {
            // A GPU run shows its engine's latest map while it trains (a read-back or so old);
            // until the first one arrives, if the engine has no kernel, or once the runs stop
            // between maps (a pause while playing), the CPU's at the read-back parameters.
            let gpu_brings = run.on_gpu && run.gpu_maps == Some(true) && !idle;
            let fresh = run.fresh_conflict(extent).is_some_and(|c| c.engine == "webgpu" || c.side == side);
            if gpu_brings || fresh {
                continue;
            }
            if done > 0 && now_ms() >= deadline {
                return false;
            }
            let pts = points.get_or_insert_with(|| crate::grid::points_n(extent, side));
            let (Some(mlp), Some(params)) = (run.mlp(), run.params()) else { continue };
            match ConflictMap::cpu(mlp, run.config.features.as_ref(), params, pts, run.steps, extent, side) {
                Ok(map) => run.conflict = Some(map),
                Err(_) => run.conflict = None,
            }
            done += 1;
        }
        true
    }

    /// Test-only: make the next GPU read-back fail. Returns whether a run is on the GPU.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))] // the browser tests' hook
    pub fn simulate_gpu_failure(&mut self) -> bool {
        self.simulate_gpu_failure = true;
        self.runs.iter().any(Run::on_gpu)
    }

    /// Take the page state: rebuild the runs when data, model or methods changed; apply a new
    /// learning rate live (optimizer state kept).
    pub fn configure(&mut self, state: &State) {
        let paused = self.playing && !state.play;
        self.playing = state.play;
        self.spf = state.spf.max(1);
        let rebuild = self.applied.as_ref().is_none_or(|a| a.needs_reset(state));
        let lr_changed = self.applied.as_ref().is_some_and(|a| a.lr != state.lr);
        self.applied = Some(state.clone());
        if rebuild {
            if !matches!(self.gpu, GpuChoice::Pending) {
                self.rebuild();
            }
        } else if lr_changed {
            for run in &mut self.runs {
                run.config.optimizer = run.config.optimizer.with_lr(state.lr);
                match &mut run.engine {
                    Some(e) => {
                        if let Err(err) = e.set_lr(state.lr) {
                            run.error = Some(err);
                        }
                    }
                    None => run.lr_pending = Some(state.lr),
                }
            }
            self.publish(true);
        } else if paused {
            // Frames publish at most every REDRAW_MS while playing: the count shown (and the last
            // concord-step event) must catch up with the steps done before the pause.
            self.publish(true);
        }
    }

    /// Use the user's CSV (`None`: back to the generated data) and rebuild.
    pub fn set_csv(&mut self, csv: Option<(String, MultiTaskData)>) {
        self.ui.csv.set(csv.as_ref().map(|(name, d)| csv_summary(name, d)));
        self.csv = csv;
        self.rebuild();
    }

    /// Restart every run from its start (the shared initial weights, or the toy's starts).
    pub fn rebuild(&mut self) {
        let Some(state) = self.applied.clone() else { return };
        let built = self.build_runs(&state, self.csv.as_ref().map(|(_, d)| d));
        self.install(built);
        self.publish(true);
    }

    /// The runs of `state` (on `csv`, if given), built without touching the session.
    fn build_runs(&self, state: &State, csv: Option<&MultiTaskData>) -> Result<Built, String> {
        let toy = state.preset.is_toy() && csv.is_none();
        let base = base_config(state, csv)?;
        let (points, curve_data) = plot_data(&base);
        let grid_points = points.as_ref().map(|d| {
            let extent = crate::grid::extent(d);
            (extent, Rc::new(crate::grid::points(extent)))
        });
        // (slot, spec, start, config)
        type Plan = (usize, RunSpec, Option<([f64; 2], usize)>, TrainConfig);
        let mut plans: Vec<Plan> = Vec::new();
        for (slot, spec) in state.arena.iter().enumerate() {
            let config = with_method(state, &base, spec);
            if toy {
                for (i, (start, c)) in toy_configs(&config, state.preset).into_iter().enumerate() {
                    plans.push((slot, spec.clone(), Some((start, i)), c));
                }
            } else {
                plans.push((slot, spec.clone(), None, config));
            }
        }
        let runs: Vec<Run> =
            plans.into_iter().map(|(slot, spec, start, config)| self.build_run(slot, spec, start, config)).collect();
        let task_names = runs.iter().find(|r| r.built).map_or_else(Vec::new, |r| task_names(&base, r.train.len()));
        Ok(Built { runs, points, curve_data, grid_points, task_names })
    }

    /// Replace the runs (and drop any read-back of the old ones still in flight); an error
    /// leaves no runs and shows it.
    fn install(&mut self, built: Result<Built, String>) {
        self.generation += 1;
        self.in_flight = 0;
        self.arrived.clear();
        self.steps = 0;
        match built {
            Ok(b) => {
                self.runs = b.runs;
                self.points = b.points;
                self.curve_data = b.curve_data;
                self.grid_points = b.grid_points;
                self.task_names = b.task_names;
                let all_failed = !self.runs.is_empty() && self.runs.iter().all(|r| !r.built);
                self.ui.error.set(all_failed.then(|| self.runs[0].error.clone().unwrap_or_default()));
            }
            Err(e) => {
                self.runs.clear();
                self.points = None;
                self.curve_data = None;
                self.grid_points = None;
                self.task_names.clear();
                self.ui.error.set(Some(e));
            }
        }
    }

    fn build_run(&self, slot: usize, spec: RunSpec, start: Option<([f64; 2], usize)>, config: TrainConfig) -> Run {
        let colour = colour_for(&spec, slot, start.is_some());
        let mut run = Run {
            label: spec.label(),
            spec,
            slot,
            colour,
            start,
            config: config.clone(),
            engine: None,
            on_gpu: false,
            built: false,
            twin: None,
            error: None,
            cpu_reason: None,
            offset: 0,
            lr_pending: None,
            steps: 0,
            history: History::new(),
            params: Vec::new(),
            train: Vec::new(),
            test: None,
            curve: Vec::new(),
            trail: Vec::new(),
            snapshots: Snapshots::default(),
            grid: None,
            grid_hidden: None,
            grid_neuron: None,
            conflict: None,
            gpu_maps: None,
            sample_series: Default::default(),
        };
        // The CPU twin gives the initial state every engine starts from (the GPU builds the
        // same parameters), the model and the objective.
        let mut twin = match Trainer::new(config.clone()) {
            Ok(t) => t,
            Err(e) => {
                run.error = Some(e);
                return run;
            }
        };
        let snap = twin.snapshot();
        run.twin = Some(twin);
        run.apply(snap);
        run.curve = vec![CurvePoint { step: 0, train: run.train.clone(), test: run.test.clone() }];
        let (engine, reason) = self.build_engine(&config);
        match engine {
            Ok(e) => {
                run.on_gpu = e.kind() == BackendKind::Gpu;
                run.engine = Some(e);
                run.built = true;
                run.cpu_reason = reason;
            }
            Err(e) => run.error = Some(e),
        }
        run
    }

    /// The GPU backend where there is a GPU and it has this config, else the CPU trainer with
    /// the reason it is on the CPU.
    fn build_engine(&self, config: &TrainConfig) -> (Result<Box<dyn Backend>, String>, Option<String>) {
        let reason = match &self.gpu {
            GpuChoice::Pending => "the WebGPU device is still being acquired".to_string(),
            GpuChoice::Unavailable(why) => why.clone(),
            #[cfg(feature = "webgpu")]
            GpuChoice::Ready(gpu) => {
                // DSelect-k with k ≥ 2 trains on lavapipe as on the CPU, but in SwiftShader's
                // WebGPU its losses part from the CPU's by 1e-1 within 40 steps (k = 1 agrees to
                // 3e-8), not yet understood: such runs stay on the CPU here until it is.
                use concord_core::model::moe::RouterKind;
                let router = config.moe.as_ref().map(|m| m.router);
                if matches!(router, Some(RouterKind::DselectK { k, .. }) if k > 1) {
                    return (
                        Trainer::new(config.clone()).map(|t| Box::new(t) as Box<dyn Backend>),
                        Some("DSelect-k with k ≥ 2 is not verified on WebGPU yet".to_string()),
                    );
                }
                // The GPU reads whole-model metrics back, not per-layer ones. A config the GPU
                // lacks (a sample-weighting stage, …) is refused there, with the reason.
                let gpu_config = TrainConfig { layer_metrics: false, ..config.clone() };
                match concord_gpu::backend(gpu.clone(), gpu_config) {
                    Ok(b) => return (Ok(b), None),
                    Err(why) => format!("the GPU trainer cannot run this config: {why}"),
                }
            }
        };
        (Trainer::new(config.clone()).map(|t| Box::new(t) as Box<dyn Backend>), Some(reason))
    }

    /// Queue `n` steps; `resolve` is called with `state()` once they are done and read back.
    pub fn request_steps(&mut self, n: u64, resolve: Option<js_sys::Function>) {
        self.requests.push_back(StepRequest { remaining: n, resolve });
    }

    /// One animation frame. The CPU runs' part stays near `CPU_BUDGET_MS` however slow a step
    /// is (`cpu_frame`): a batch of steps the frame cannot finish goes on in the next frames;
    /// once every CPU run has taken the batch's steps and is read back, the GPU runs take the
    /// same steps.
    fn tick(&mut self, session: Session, t: f64) {
        self.sample_rate(t);
        if self.in_flight > 0 {
            return;
        }
        self.resolve_finished();
        if self.cpu_batch.as_ref().is_some_and(|b| b.generation != self.generation) {
            self.cpu_batch = None; // the runs were rebuilt (or left the GPU) meanwhile
        }
        if self.cpu_batch.is_none() && !self.start_batch() {
            return;
        }
        let Some(done) = self.cpu_frame(now_ms() + CPU_BUDGET_MS) else { return };
        let done = done as u64;
        // GPU runs: one submission and one read-back each.
        let fail = std::mem::take(&mut self.simulate_gpu_failure);
        let generation = self.generation;
        // Conflict maps at this read-back: while playing at most every `MAP_MS`, or every four
        // times what the last one took (a slow adapter then spends at most about a fifth of its
        // time on maps); for `step(n)` requests at the read-back that completes the last one (a
        // map adds a read-back of its own to the submission loop, so the steps in between go
        // without).
        let now = now_ms();
        let completes = self.requests.len() == 1 && self.requests.front().is_some_and(|r| r.remaining <= done);
        let every = MAP_MS.max(4.0 * self.gpu_map_ms);
        let due = if self.playing { now - self.last_gpu_map >= every } else { completes };
        let maps = self.maps_wanted && due;
        let mut asked = false;
        for slot in 0..self.runs.len() {
            let run = &mut self.runs[slot];
            if !(run.live() && run.on_gpu) {
                continue;
            }
            let Some(mut engine) = run.engine.take() else { continue };
            let submitted = match engine.submit(done as usize) {
                Ok(_) if fail => {
                    Err(BackendError::Device("simulated device loss (window.concord._simulateGpuFailure)".into()))
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            self.in_flight += 1;
            let grid = self.grid_points.clone();
            let map = maps && run.has_conflict_map() && run.gpu_maps != Some(false);
            // An MLP's trunk or an MoE's pre-layers and experts (the GPU trains dense routers).
            let thumbs = self.network_run == Some(slot) && (run.mlp().is_some() || run.moe().is_some());
            let large = self.network_large.filter(|_| thumbs);
            asked |= map;
            wasm_bindgen_futures::spawn_local(async move {
                let result = match submitted {
                    Ok(()) => read_back_with_grid(engine.as_mut(), grid, map, thumbs, large).await,
                    Err(e) => Err(e),
                };
                session.with(move |s| s.arrive(generation, Arrived { slot, engine, result }));
            });
        }
        if asked {
            self.last_gpu_map = now;
            self.gpu_map_ms = 0.0;
        }
        self.frame_steps = done;
        self.work += done;
        if self.in_flight == 0 {
            self.finish_frame();
        }
    }

    /// The CPU runs' part of the batch within `deadline` (ms, `now_ms`' clock): rounds of
    /// lock-step steps (every run up to the same count; a round may span frames, and a slow
    /// step pauses inside at the deadline: `Backend::submit_within`), then one read-back per run
    /// (which may pause too: `Backend::read_back_within`). Rounds are sized from the measured
    /// pace (`CpuPace`) to fill the budget. `Some(steps)` once every CPU run is read back (the
    /// steps the batch took); `None` when the deadline came first.
    fn cpu_frame(&mut self, deadline: f64) -> Option<usize> {
        let mut b = self.cpu_batch.take()?;
        if self.pace.generation != self.generation {
            self.pace = CpuPace { generation: self.generation, ..CpuPace::default() };
        }
        let pace = &mut self.pace;
        let runs = &mut self.runs;
        let slow = pace.step_ms.is_none_or(|ms| ms / b.runs.len().max(1) as f64 >= SLOW_STEP_MS);
        let passed = || now_ms() >= deadline;
        while !b.reading {
            let level = b.level();
            if level >= b.target {
                // The round is done: time it, and plan the next one (if the batch wants more
                // steps and the frame has time; a batch's first round always runs).
                if b.round_k > 0 && b.round_ms >= MIN_TIMED_MS {
                    let ms = b.round_ms / b.round_k as f64;
                    pace.step_ms = Some(pace.step_ms.map_or(ms, |old| old + PACE_WEIGHT * (ms - old)));
                }
                pace.last_k = pace.last_k.max(b.round_k);
                let left = if b.runs.iter().all(|r| r.2) { 0 } else { b.want.saturating_sub(level) };
                let room = deadline - now_ms();
                if left == 0 || (level > 0 && room <= 0.0 && level >= b.least(pace)) {
                    b.reading = true;
                    break;
                }
                if room <= 0.0 {
                    // A batch whose read-back costs more than its steps takes more steps, over
                    // more frames, so read-backs stay the smaller part of the work.
                    self.cpu_batch = Some(b);
                    return None;
                }
                let k = match pace.step_ms {
                    // Fill the frame.
                    Some(ms) => ((room / ms).floor().max(1.0) as usize).min(pace.last_k.max(1) * 8),
                    // Unknown pace: 1 step, then 4× more each round until a round is long enough
                    // to time.
                    None => (b.round_k * 4).max(1),
                };
                b.target = level + k.clamp(1, left);
                b.round_k = b.target - level;
                b.round_ms = 0.0;
            }
            // The round: every run up to the target, the clock checked between runs (and inside
            // slow steps).
            let t0 = now_ms();
            for r in b.runs.iter_mut().filter(|r| !r.2 && r.1 < b.target) {
                let (i, left) = (r.0, b.target - r.1);
                let run = &mut runs[i];
                let Some(engine) = run.engine.as_mut() else {
                    r.2 = true;
                    continue;
                };
                let took = if slow { engine.submit_within(left, &mut || passed()) } else { engine.submit(left) };
                match took {
                    Ok(k) => r.1 += k,
                    Err(e) => {
                        run.error = Some(e.to_string());
                        r.2 = true;
                    }
                }
                // Fewer steps than asked with time left: the engine stopped (an error, or the
                // end of the run); it is read back with the others.
                let late = passed();
                if r.1 < b.target && !(slow && late) {
                    r.2 = true;
                }
                if late {
                    break;
                }
            }
            b.round_ms += now_ms() - t0;
            if passed() && b.level() < b.target {
                self.cpu_batch = Some(b);
                return None;
            }
        }
        // Read-backs: every CPU run at the batch's count (a stopped one at its own).
        let t0 = now_ms();
        while b.read < b.runs.len() {
            if b.read > b.read_start && passed() {
                break;
            }
            let run = &mut runs[b.runs[b.read].0];
            if let Some(e) = run.engine.as_mut() {
                match e.read_back_within(&mut || passed()) {
                    Some(Ok(snap)) => run.apply(snap),
                    Some(Err(err)) => run.error = Some(err.to_string()),
                    None => break,
                }
            }
            b.read += 1;
        }
        b.read_ms += now_ms() - t0;
        if b.read < b.runs.len() {
            b.read_start = b.read;
            self.cpu_batch = Some(b);
            return None;
        }
        if !b.runs.is_empty() {
            pace.read_ms = Some(pace.read_ms.map_or(b.read_ms, |old| old + PACE_WEIGHT * (b.read_ms - old)));
        }
        Some(if b.runs.is_empty() { b.want } else { b.level() })
    }

    /// Start a batch of steps (a `step(n)` request's next chunk, or steps-per-frame while
    /// playing); false when there is nothing to do.
    fn start_batch(&mut self) -> bool {
        if !self.runs.iter().any(Run::live) {
            // Nothing can step: requests resolve at once.
            for r in &mut self.requests {
                r.remaining = 0;
            }
            self.resolve_finished();
            return false;
        }
        let spf = self.spf as u64;
        let n = match self.requests.front() {
            // Chunks grow with the run (about a tenth of the steps so far), so a toy's trail
            // keeps its early curvature while a long request still needs few frames.
            Some(req) => req.remaining.min((self.steps / 10).max(spf).min(REQUEST_CHUNK.max(spf))),
            None if self.playing && self.visible => spf,
            None => return false,
        };
        // GPU MLP runs end a submission where their next landscape snapshot is due.
        let n = self
            .runs
            .iter()
            .filter(|r| r.on_gpu && r.live() && r.start.is_none())
            .map(|r| r.snapshots.steps_until_due(r.steps) as u64)
            .fold(n, u64::min)
            .max(1);
        // A GPU run with weights from the CPU (`concord_gpu::host_weighting`) waits on one
        // read-back per step: batches of at most HYBRID_BATCH keep its snapshots coming.
        let hybrid =
            self.runs.iter().any(|r| r.on_gpu && r.live() && concord_gpu::host_weighted(&r.config.method.aggregator));
        let n = if hybrid { n.min(HYBRID_BATCH) } else { n };
        // No further than the step limit (the runs reach it together, and the counter with them).
        let left = self.runs.iter().filter(|r| r.live()).map(|r| r.config.steps.saturating_sub(r.steps)).max();
        let n = n.min(left.unwrap_or(0) as u64).max(1);
        self.apply_pending_lr();
        let cpu: Vec<usize> = (0..self.runs.len()).filter(|&i| self.runs[i].live() && !self.runs[i].on_gpu).collect();
        self.cpu_batch = Some(CpuBatch::new(self.generation, n as usize, cpu));
        true
    }

    fn apply_pending_lr(&mut self) {
        for run in &mut self.runs {
            if let (Some(lr), Some(e)) = (run.lr_pending, run.engine.as_mut()) {
                run.lr_pending = None;
                if let Err(err) = e.set_lr(lr) {
                    run.error = Some(err);
                }
            }
        }
    }

    fn arrive(&mut self, generation: u64, arrived: Arrived) {
        if generation != self.generation {
            return; // the runs were rebuilt meanwhile (or left the GPU): drop the old engine
        }
        self.arrived.push(arrived);
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight > 0 {
            return;
        }
        let arrived = std::mem::take(&mut self.arrived);
        let device_error = arrived.iter().find_map(|a| match &a.result {
            Err(BackendError::Device(e)) => Some(e.clone()),
            _ => None,
        });
        if let Some(e) = device_error {
            // No run takes this frame's results: all continue from the same earlier step.
            for a in arrived {
                if let Some(run) = self.runs.get_mut(a.slot) {
                    run.engine = Some(a.engine);
                }
            }
            self.gpu_failed(e);
            return;
        }
        for Arrived { slot, engine, result } in arrived {
            let Some(run) = self.runs.get_mut(slot) else { continue };
            run.engine = Some(engine);
            match result {
                Ok((snap, grid, hidden, neuron, map)) => {
                    run.apply(snap);
                    run.grid = grid;
                    run.grid_hidden = hidden;
                    run.grid_neuron = neuron;
                    match map {
                        MapOutcome::None => {}
                        MapOutcome::Unsupported => run.gpu_maps = Some(false),
                        MapOutcome::Map(m, ms) => {
                            run.gpu_maps = Some(true);
                            run.conflict = Some(m);
                            self.gpu_map_ms = self.gpu_map_ms.max(ms);
                        }
                    }
                }
                Err(e) => run.error = Some(e.to_string()),
            }
        }
        self.finish_frame();
    }

    fn finish_frame(&mut self) {
        let done = std::mem::take(&mut self.frame_steps);
        self.steps += done;
        if let Some(req) = self.requests.front_mut() {
            req.remaining = req.remaining.saturating_sub(done);
        }
        let force = self.requests.front().is_some_and(|r| r.remaining == 0) || !self.playing;
        self.publish(force);
        self.resolve_finished();
    }

    /// The GPU failed: every GPU run continues on the CPU from its last read-back state.
    fn gpu_failed(&mut self, error: String) {
        self.generation += 1;
        self.in_flight = 0;
        self.frame_steps = 0;
        let at = self.steps;
        let notice = if self.is_toy() {
            format!("GPU failed at step {at} ({error}); continued on the CPU from the last read-back positions — optimizer state restarted")
        } else {
            format!("the GPU failed at step {at} ({error}); the runs continue on the CPU from the last read-back state — optimizer state restarted")
        };
        web_sys::console::warn_1(&format!("concord: {notice}").into());
        forget_shared_gpu();
        self.gpu = GpuChoice::Unavailable(notice.clone());
        for run in self.runs.iter_mut().filter(|r| r.on_gpu) {
            run.on_gpu = false;
            run.grid = None; // the CPU forward pass draws the heatmaps from now on
            run.grid_hidden = None;
            run.grid_neuron = None;
            run.cpu_reason = Some(notice.clone());
            match to_cpu(run) {
                Ok(()) => {}
                Err(e) => {
                    run.engine = None;
                    run.error = Some(format!("could not continue on the CPU: {e}"));
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
        // One error per method slot (its first run's).
        let slots = self.applied.as_ref().map_or(0, |s| s.arena.len());
        let errors: Vec<Option<String>> =
            (0..slots).map(|k| self.runs.iter().find(|r| r.slot == k).and_then(|r| r.error.clone())).collect();
        if self.ui.run_errors.with_untracked(|e| *e != errors) {
            self.ui.run_errors.set(errors);
        }
        let readout = self.readout();
        if self.ui.backend.with_untracked(|b| *b != readout) {
            self.ui.backend.set(readout.clone());
        }
        if self.main {
            set_body_backend(readout_kind(&readout));
        }
        self.ui.version.update(|v| *v += 1);
    }

    fn readout(&self) -> Readout {
        if matches!(self.gpu, GpuChoice::Pending) {
            return Readout { gpu: None, text: "Choosing a backend…".into() };
        }
        let adapter = self.adapter.strip_suffix(" · WebGPU").unwrap_or(&self.adapter).to_string();
        let gpu_runs: Vec<&Run> = self.runs.iter().filter(|r| r.on_gpu).collect();
        let cpu_runs: Vec<&Run> = self.runs.iter().filter(|r| r.built && !r.on_gpu).collect();
        if self.is_toy() {
            // The toy grid: one line for all runs (they share one backend unless a method has no
            // GPU kernel).
            let mut parts = Vec::new();
            if !gpu_runs.is_empty() {
                parts.push(format!("WebGPU · {adapter}"));
            }
            if let Some(r) = cpu_runs.first() {
                let why = r.cpu_reason.clone().unwrap_or_else(|| "no reason given".into());
                let mut labels: Vec<&str> = cpu_runs.iter().map(|r| r.label.as_str()).collect();
                labels.dedup();
                if gpu_runs.is_empty() {
                    parts.push(format!("CPU fallback — {why}"));
                } else {
                    parts.push(format!("CPU — {}: {why}", labels.join(", ")));
                }
            }
            if parts.is_empty() {
                parts.push("no run could be built".into());
            }
            return Readout { gpu: Some(!gpu_runs.is_empty()), text: parts.join(" · ") };
        }
        let mut parts = Vec::new();
        if !gpu_runs.is_empty() {
            // A hybrid run (Nash-MTL, FairGrad, …) says that its weights come from the CPU.
            let labels: Vec<String> = gpu_runs
                .iter()
                .map(|r| match concord_gpu::host_weighted(&r.config.method.aggregator) {
                    true => format!("{} — {}", r.label, concord_gpu::HYBRID_LABEL),
                    false => r.label.clone(),
                })
                .collect();
            parts.push(format!("WebGPU · {adapter} — {}", labels.join(", ")));
        }
        for r in &cpu_runs {
            let why = r.cpu_reason.as_deref().unwrap_or("no reason given");
            parts.push(format!("CPU · concord-core trainer (wasm) — {}: {why}", r.label));
        }
        if parts.is_empty() {
            parts.push("no run could be built".into());
        }
        Readout { gpu: Some(!gpu_runs.is_empty()), text: parts.join(" · ") }
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

    /// The runs as JSON: settings (the hash), the CSV if any, and per run its config, weights,
    /// metrics history and loss curve (`saved::SavedSession`; non-finite losses as "inf"/"nan").
    pub fn export_json(&mut self) -> String {
        // Each run's map at the exported parameters (a GPU run's from its last read-back).
        self.refresh_conflict_maps();
        SavedSession {
            format: FORMAT.into(),
            version: VERSION,
            hash: self.applied.as_ref().map(|s| s.to_hash()).unwrap_or_default(),
            csv: self.csv.as_ref().map(|(name, data)| SavedCsv { name: name.clone(), data: data.clone() }),
            steps: self.steps,
            runs: self
                .runs
                .iter()
                .map(|r| SavedRun {
                    method: r.spec.to_text(),
                    record: r.record(&self.task_names),
                    error: r.error.clone(),
                    curve: r.curve.clone(),
                    backend: r.built.then(|| r.kind().to_string()),
                    conflict_map: r.conflict.clone(),
                })
                .collect(),
        }
        .to_json()
    }

    /// Load an exported run: settings, data, weights, history and curves. The optimizer moments
    /// start afresh (they are not part of the record). All or nothing: the file is checked first
    /// (`saved::parse_saved`), then the new runs are built and restored off to the side, and only
    /// when every one is restored do they replace the session's; on `Err` nothing has changed.
    pub fn import_json(&mut self, text: &str) -> Result<(), String> {
        if matches!(self.gpu, GpuChoice::Pending) {
            // The runs are rebuilt once the backend is chosen; an import now would be lost.
            return Err("the page is still starting; import the file again in a moment".into());
        }
        let import = crate::saved::parse_saved(text)?;
        let mut built = self.build_runs(&import.state, import.csv.as_ref().map(|(_, d)| d))?;
        for (run, saved) in built.runs.iter_mut().zip(import.runs) {
            restore_imported(run, saved)?;
        }
        // Everything is in place: swap it in.
        let state = import.state;
        self.ui.csv.set(import.csv.as_ref().map(|(name, d)| csv_summary(name, d)));
        self.csv = import.csv;
        self.playing = false;
        self.applied = Some(state.clone());
        self.install(Ok(built));
        self.steps = import.steps;
        self.publish(true);
        self.cfg.set(state);
        Ok(())
    }

    /// The test hook's `gridCheck()`: per run, where its heatmap grid was computed ("webgpu" or
    /// "cpu") and, for a GPU grid, its cell count and the largest |GPU − CPU| head output over
    /// the grid, the CPU being concord-core's forward pass at the same (read-back) parameters.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))] // the browser tests' hook
    pub fn grid_check_js(&self) -> wasm_bindgen::JsValue {
        let runs: Vec<serde_json::Value> = self
            .runs
            .iter()
            .map(|r| {
                let gpu = self.grid_points.as_ref().and_then(|(e, pts)| Some((r.grid_outputs(*e)?, pts)));
                let gap = gpu.and_then(|(outs, pts)| {
                    let cpu = r.predict_points(pts)?;
                    let gaps =
                        outs.iter().zip(&cpu).flat_map(|(g, c)| g.iter().zip(c.iter()).map(|(a, b)| (a - b).abs()));
                    Some(gaps.fold(0.0f64, f64::max))
                });
                serde_json::json!({
                    "grid": if gpu.is_some() { "webgpu" } else { "cpu" },
                    "cells": gpu.map(|(o, _)| o.first().map_or(0, |m| m.nrows())),
                    "maxGap": gap,
                })
            })
            .collect();
        js_sys::JSON::parse(&serde_json::Value::Array(runs).to_string()).unwrap_or(wasm_bindgen::JsValue::NULL)
    }

    /// The test hook's `conflictMap(k)`: run k's latest conflict map (the CPU's refreshed first)
    /// — {run, engine, step, runSteps, side, extent, cells (row-major from the top left, null
    /// where a gradient is zero), conflictShare, disagree (per cell, whether the tasks'
    /// noiseless labelling rules disagree there; null unless the data is a task set)} — or null.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))] // the browser tests' hook
    pub fn conflict_map_js(&mut self, k: usize) -> wasm_bindgen::JsValue {
        self.refresh_conflict_maps();
        let value = self.runs.get(k).and_then(|r| {
            let map = r.conflict.as_ref()?;
            let disagree = match &r.config.data {
                DataSource::TaskSet { config } => {
                    Some(crate::conflict_map::rule_disagreement(config, &crate::grid::points_n(map.extent, map.side)))
                }
                _ => None,
            };
            Some(serde_json::json!({
                "run": r.label,
                "engine": map.engine,
                "step": map.step,
                "runSteps": r.steps,
                "side": map.side,
                "extent": map.extent,
                "cells": map.min_cos,
                "conflictShare": map.conflict_share(),
                "disagree": disagree,
            }))
        });
        value.map_or(wasm_bindgen::JsValue::NULL, |v| {
            js_sys::JSON::parse(&v.to_string()).unwrap_or(wasm_bindgen::JsValue::NULL)
        })
    }

    /// The test hook's `conflictMapCheck()`: per run, where its latest conflict map was computed
    /// and, when it is of the run's current parameters, the largest |map − CPU reference| over
    /// its cells, the reference being concord-core's `Mlp::point_grams` (f64) at the same
    /// parameters on the same grid, rounded as the page rounds a map ({engine, step, runSteps,
    /// side, maxGap, undefinedMismatch: cells null in one and not the other}).
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))] // the browser tests' hook
    pub fn conflict_check_js(&self) -> wasm_bindgen::JsValue {
        let runs: Vec<serde_json::Value> = self
            .runs
            .iter()
            .map(|r| {
                let map = r.conflict.as_ref();
                let reference = map.filter(|m| m.step == r.steps).and_then(|m| {
                    let pts = crate::grid::points_n(m.extent, m.side);
                    ConflictMap::cpu(r.mlp()?, r.config.features.as_ref(), r.params()?, &pts, r.steps, m.extent, m.side)
                        .ok()
                });
                let (gap, mismatch) = match (map, &reference) {
                    (Some(m), Some(c)) => {
                        let pairs = m.min_cos.iter().zip(&c.min_cos);
                        let gap = pairs
                            .clone()
                            .filter_map(|(a, b)| Some((a.as_ref()? - b.as_ref()?).abs()))
                            .fold(0.0f32, f32::max);
                        (Some(gap), Some(pairs.filter(|(a, b)| a.is_some() != b.is_some()).count()))
                    }
                    _ => (None, None),
                };
                serde_json::json!({
                    "engine": map.map(|m| m.engine.clone()),
                    "step": map.map(|m| m.step),
                    "runSteps": r.steps,
                    "side": map.map(|m| m.side),
                    "maxGap": gap,
                    "undefinedMismatch": mismatch,
                })
            })
            .collect();
        js_sys::JSON::parse(&serde_json::Value::Array(runs).to_string()).unwrap_or(wasm_bindgen::JsValue::NULL)
    }

    /// The test hook's `state()`: a plain object, built through JSON.
    pub fn state_js(&self) -> wasm_bindgen::JsValue {
        let toy = self.is_toy();
        let runs: Vec<serde_json::Value> = self
            .runs
            .iter()
            .map(|r| {
                let last = r.history.last();
                let params = r.params().unwrap_or(&[]);
                let mut v = serde_json::json!({
                    "method": if toy { r.spec.method.aggregator.name().to_string() } else { r.spec.to_text() },
                    "spec": r.spec.to_text(),
                    "options": r.spec.options.to_text(),
                    "label": r.label,
                    "aggregator": r.spec.method.aggregator.name(),
                    "weighting": r.spec.method.weighting.as_ref().map(|w| w.name()),
                    "steps": r.steps,
                    "error": r.error,
                    "trainLosses": r.built.then_some(&r.train),
                    "testLosses": r.test,
                    "paramCount": params.len(),
                    "paramsHead": params.iter().take(8).collect::<Vec<_>>(),
                    "paramsSum": params.iter().sum::<f64>(),
                    "cosine": last.map(|h| h.metrics.cosine.clone()),
                    "conflictRatio": last.map(|h| h.metrics.conflict_ratio),
                    "updateCosMean": last.and_then(|h| h.metrics.update_cosine_mean),
                    "lossWeights": last.and_then(|h| h.loss_weights.clone()),
                    "aggregatorWeights": last.and_then(|h| h.aggregator_weights.clone()),
                    "curvePoints": r.curve.len(),
                    "historyLen": r.history.len(),
                    "backend": r.built.then(|| r.kind()),
                    "backendReason": r.cpu_reason,
                    "moe": last.and_then(|h| h.moe.as_ref()),
                    // TF's trunk controls: what the model reads, and ‖w‖ over its weights.
                    "inputDim": r.mlp().map(|m| m.config().input_dim),
                    "features": r.config.features.as_ref().map(|f| f.features().iter().map(|f| f.key()).collect::<Vec<_>>()),
                    "weightNorm": r.mlp().filter(|_| r.built).map(|m| {
                        let mask = concord_core::train::weight_mask(m.layout());
                        params.iter().zip(&mask).filter(|(_, &w)| w).map(|(p, _)| p * p).sum::<f64>().sqrt()
                    }),
                });
                if let Some((start, _)) = r.start {
                    v["c"] = serde_json::json!(r.spec.method.aggregator.float("c").filter(|_| r
                        .spec
                        .method
                        .aggregator
                        .name()
                        == "cagrad"));
                    v["start"] = serde_json::json!(start);
                    v["position"] = serde_json::json!(r.position());
                }
                v
            })
            .collect();
        let s = self.applied.as_ref();
        let backend = self.runs.iter().find(|r| r.built).map(|r| r.kind()).or(match self.gpu {
            GpuChoice::Pending => None,
            _ => Some("cpu"),
        });
        let state = serde_json::json!({
            "mode": if toy { "toy" } else { "multitask" },
            "preset": s.map(|s| s.preset.name()),
            "problem": s.filter(|s| s.preset.is_toy()).map(|s| s.problem().name()),
            "backend": backend,
            "backendText": self.ui.backend.get_untracked().text,
            "adapter": self.adapter,
            "reason": self.gpu_notice.clone().or_else(|| match &self.gpu {
                GpuChoice::Unavailable(why) => Some(why.clone()),
                _ => None,
            }),
            "steps": self.steps,
            "playing": self.playing,
            // A batch is under way (its CPU part, or GPU read-backs not yet landed) or `step(n)`
            // requests wait: `steps` may still grow although `playing` is false.
            "busy": self.in_flight > 0 || self.cpu_batch.is_some() || !self.requests.is_empty(),
            "visible": self.visible,
            "lr": s.map(|s| s.lr),
            "optimizer": s.map(|s| s.optimizer.name()),
            "precision": s.map(|s| s.precision.name()),
            "seed": s.map(|s| s.seed),
            "tasks": self.task_names,
            "csv": self.csv.as_ref().map(|(n, _)| n),
            "error": self.ui.error.get_untracked(),
            "runs": runs,
        });
        js_sys::JSON::parse(&state.to_string()).unwrap_or(wasm_bindgen::JsValue::NULL)
    }
}

/// The reference point is this factor times the worst ℓ₁ and ℓ₂ of the scatter.
pub const REFERENCE_SCALE: f64 = 1.1;

/// The loss-space Pareto view of the arena: (ℓ₁, ℓ₂) of every run's recorded whole-train-set
/// losses (the loss-curve points, every few steps) and of each run now, the non-dominated front,
/// and the hypervolume against r = `REFERENCE_SCALE` × (worst ℓ₁, worst ℓ₂) of the scatter.
/// Drawn by the loss-space panel (outputs.rs); the hook exposes it with the landscape.
pub fn pareto_of(a: &SessionInner) -> Option<concord_core::landscape::ParetoView> {
    let mut pts = Vec::new();
    let mut labels = Vec::new();
    for r in &a.runs {
        for c in &r.curve {
            if c.train.len() >= 2 && c.train[0].is_finite() && c.train[1].is_finite() {
                pts.push([c.train[0], c.train[1]]);
                labels.push(format!("{} @ {}", r.label, c.step));
            }
        }
        let l = &r.train;
        if r.is_built() && l.len() >= 2 && l[0].is_finite() && l[1].is_finite() {
            pts.push([l[0], l[1]]);
            labels.push(format!("{} @ {}", r.label, r.steps));
        }
    }
    if pts.is_empty() {
        return None;
    }
    let rx = pts.iter().map(|p| p[0]).fold(f64::NEG_INFINITY, f64::max);
    let ry = pts.iter().map(|p| p[1]).fold(f64::NEG_INFINITY, f64::max);
    concord_core::landscape::pareto_view(pts, labels, [REFERENCE_SCALE * rx, REFERENCE_SCALE * ry]).ok()
}

impl SessionInner {
    /// The loss-space Pareto view of every run (`pareto_of`).
    pub fn pareto(&self) -> Option<concord_core::landscape::ParetoView> {
        pareto_of(self)
    }
}

/// A GPU run's read-back and, where the page has a heatmap grid, the engine's prediction of it
/// at the read-back parameters (queued right after, in the same future: nothing blocks). A
/// grid the engine cannot predict (no model on 2-D inputs) leaves the heatmaps to the CPU; a
/// device failure while predicting is the read-back's failure. With `thumbs` (the network view
/// shows this run) the same forward pass also brings the trunk's activations at
/// `grid::thumbnail_rows` where the engine has them (`Backend::predict_hidden`).
async fn read_back_with_grid(
    engine: &mut dyn Backend,
    grid: GridPoints,
    map: bool,
    thumbs: bool,
    large: Option<(usize, usize)>,
) -> Result<(Snapshot, GridOutputs, GridOutputs, GridNeuron, MapOutcome), BackendError> {
    let snap = engine.read_back().await?;
    let Some((extent, points)) = grid else { return Ok((snap, None, None, None, MapOutcome::None)) };
    let rows = crate::grid::thumbnail_rows();
    let mut with_hidden = None;
    let mut neuron = None;
    if thumbs && points.len() == crate::grid::GRID * crate::grid::GRID {
        // With an enlarged neuron: the same pass gathers its map too (a bad neuron — the model
        // changed under the view — falls back to the thumbnails alone).
        let mut large_map = None;
        if let Some(fut) = large.and_then(|at| engine.predict_neuron(&points, &rows, at)) {
            large_map = Some(fut.await);
        }
        match large_map {
            Some(Ok((outs, acts, column))) => {
                neuron = large.map(|at| (extent, at, column));
                with_hidden = Some(Ok((outs, acts)));
            }
            Some(Err(e @ BackendError::Device(_))) => return Err(e),
            Some(Err(BackendError::Run(_))) | None => {
                if let Some(fut) = engine.predict_hidden(&points, &rows) {
                    with_hidden = Some(fut.await);
                }
            }
        }
    }
    let (outputs, hidden) = match with_hidden {
        Some(Ok((outs, acts))) => (Some((extent, outs)), Some((extent, acts))),
        Some(Err(e @ BackendError::Device(_))) => return Err(e),
        Some(Err(BackendError::Run(_))) => (None, None),
        None => match engine.predict(&points) {
            Some(fut) => match fut.await {
                Ok(outs) => (Some((extent, outs)), None),
                Err(e @ BackendError::Device(_)) => return Err(e),
                Err(BackendError::Run(_)) => (None, None),
            },
            None => (None, None),
        },
    };
    // The conflict map on the same grid, at the same parameters.
    let map = if !map {
        MapOutcome::None
    } else {
        let t0 = now_ms();
        match engine.point_grams(&points, HOW) {
            Some(fut) => match fut.await {
                Ok(grams) => MapOutcome::Map(
                    ConflictMap::from_grams(&grams, snap.steps_done, "webgpu", extent, crate::grid::GRID),
                    now_ms() - t0,
                ),
                Err(e @ BackendError::Device(_)) => return Err(e),
                Err(BackendError::Run(_)) => MapOutcome::Unsupported,
            },
            None => MapOutcome::Unsupported,
        }
    };
    Ok((snap, outputs, hidden, neuron, map))
}

/// Move a GPU run to the CPU at its last read-back state: a run that records every step is
/// restored (parameters and history); a toy (sparser records) restarts from its read-back point
/// with the step count carried as an offset. The optimizer moments restart either way.
fn to_cpu(run: &mut Run) -> Result<(), String> {
    if run.config.record_every == 1 {
        let mut cpu = Trainer::new(run.config.clone())?;
        cpu.restore(run.params.clone(), run.history.to_vec())?;
        let _ = cpu.snapshot(); // the restored history is already on the page
        run.engine = Some(Box::new(cpu));
        run.offset = 0;
        return Ok(());
    }
    let mut config = run.config.clone();
    if let DataSource::Toy { start, .. } = &mut config.data {
        *start = run.position();
    } else {
        return Err("this run records every few steps and has no point to restart from".into());
    }
    config.steps = config.steps.saturating_sub(run.steps).max(1);
    let mut cpu = Trainer::new(config)?;
    let _ = cpu.snapshot();
    run.engine = Some(Box::new(cpu));
    run.offset = run.steps;
    Ok(())
}

fn readout_kind(r: &Readout) -> Option<&'static str> {
    r.gpu.map(|g| if g { "webgpu" } else { "cpu" })
}

fn set_body_backend(kind: Option<&'static str>) {
    let Some(kind) = kind else { return };
    if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
        if body.get_attribute("data-backend").as_deref() != Some(kind) {
            let _ = body.set_attribute("data-backend", kind);
        }
    }
}

/// The points and labels behind the heatmaps (task sets and CSV), or the sinusoid's points (x,
/// one y column per task) and its train count, for the curve plot.
type PlotData = (Option<MultiTaskData>, Option<(Vec<f64>, Vec<Vec<f64>>, usize)>);

fn plot_data(base: &TrainConfig) -> PlotData {
    match &base.data {
        DataSource::TaskSet { config } => (config.generate().ok(), None),
        DataSource::Points { data } => (Some(data.clone()), None),
        DataSource::Sinusoid { config, train_ratio } => {
            let Ok((x, y)) = config.generate() else { return (None, None) };
            let xs: Vec<f64> = x.column(0).iter().copied().collect();
            let ys = y
                .iter()
                .map(|t| match t {
                    concord_core::model::Target::Values(v) => v.column(0).iter().copied().collect(),
                    concord_core::model::Target::Classes(c) => c.iter().map(|&k| k as f64).collect(),
                })
                .collect();
            let n_train = (config.n as f64 * train_ratio).floor() as usize;
            (None, Some((xs, ys, n_train)))
        }
        _ => (None, None),
    }
}

/// "name.csv: 300 points, 2 tasks".
fn csv_summary(name: &str, d: &MultiTaskData) -> String {
    format!("{name}: {} points, {} task{}", d.len(), d.num_tasks(), if d.num_tasks() == 1 { "" } else { "s" })
}

/// Put an imported run's state into a freshly built run of its config (off the session: an
/// engine that refuses it fails the import before anything changes).
fn restore_imported(run: &mut Run, saved: ImportedRun) -> Result<(), String> {
    run.curve = saved.curve;
    let Some(r) = saved.restored else {
        // The exporting page could not build this run: it starts afresh (with its own error).
        if run.built {
            run.error = saved.error;
        }
        return Ok(());
    };
    let Some(engine) = run.engine.as_mut() else {
        return Err(format!("{}: the run does not build here: {}", run.label, run.error.clone().unwrap_or_default()));
    };
    engine.restore(r.params.clone(), r.history.clone()).map_err(|e| format!("{}: {e}", run.label))?;
    run.error = saved.error;
    // The saved losses, as exported (a GPU run's own, in f32; ±inf/NaN after a divergence), so
    // the restored state reads exactly as the exported one.
    run.train = r.train;
    run.test = r.test;
    // A long run's history is thinned: the engine continues after its last record.
    run.steps = r.steps;
    run.params = r.params;
    run.history = History::from_records(r.history);
    run.conflict = saved.conflict_map;
    Ok(())
}
