//! The one backend contract: every engine that runs a `TrainConfig` — the CPU `Trainer` here,
//! concord-gpu's `GpuTrainer` and its fused toy kernel — implements [`Backend`], and the CLI and
//! the page drive every run through it.
//!
//! The cycle is submit → read back: [`Backend::submit`] queues k steps (the CPU takes them at
//! once; a GPU encodes them into one queue submission without waiting), and
//! [`Backend::read_back`] resolves to a [`Snapshot`] of what those steps produced. The read-back
//! is a future because a GPU's results arrive asynchronously (a browser must never block on
//! them); the CPU's future is ready at once ([`now`] takes its value without an executor).
//! The learning rate can change between submissions and keeps the optimizer's moments;
//! `restore` puts back an exported run.

use super::{StepRecord, TrainConfig};
use crate::model::{PointGradient, PointGrams};
use nalgebra::DMatrix;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Which engine runs the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// concord-core's f64 trainer (native or wasm).
    Cpu,
    /// concord-gpu's f32 kernels (Vulkan natively, WebGPU in the browser).
    Gpu,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Gpu => "gpu",
        }
    }
}

/// What one read-back brings: the records of the steps since the last read-back, and the state
/// after them.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Steps taken so far.
    pub steps_done: usize,
    /// The step records (per `record_every`) since the previous read-back, in order.
    pub new_records: Vec<StepRecord>,
    /// The parameters now (for the toys, the point x).
    pub params: Vec<f64>,
    /// Per-task losses on the whole train set at `params`.
    pub train_losses: Vec<f64>,
    /// Per-task test losses at `params`, if the data has a test split.
    pub test_losses: Option<Vec<f64>>,
    /// Why the run stopped early (a divergence), if it did: parameters are the last finite ones.
    pub error: Option<String>,
}

/// Why a backend call failed.
#[derive(Clone, Debug, PartialEq)]
pub enum BackendError {
    /// The run itself cannot go on (invalid request, complete); the message says why.
    Run(String),
    /// The device is gone (GPU lost, mapping failed): move the run to another backend.
    Device(String),
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendError::Run(m) => f.write_str(m),
            BackendError::Device(m) => write!(f, "the GPU device failed: {m}"),
        }
    }
}

/// A read-back in flight.
pub type ReadBack<'a> = Pin<Box<dyn Future<Output = Result<Snapshot, BackendError>> + 'a>>;

/// A prediction in flight: one matrix of head outputs per task (rows = points).
pub type Predict<'a> = Pin<Box<dyn Future<Output = Result<Vec<DMatrix<f64>>, BackendError>> + 'a>>;

/// A prediction with the trunk's hidden activations in flight (`Backend::predict_hidden`): the
/// heads' outputs (as `Predict`) and one matrix per hidden layer (rows = the chosen points, as
/// `Mlp::hidden_activations`).
pub type PredictHidden<'a> =
    Pin<Box<dyn Future<Output = Result<(Vec<DMatrix<f64>>, Vec<DMatrix<f64>>), BackendError>> + 'a>>;

/// `PredictHidden` plus one neuron's activation at every point (`Backend::predict_neuron`).
pub type PredictNeuron<'a> =
    Pin<Box<dyn Future<Output = Result<(Vec<DMatrix<f64>>, Vec<DMatrix<f64>>, Vec<f64>), BackendError>> + 'a>>;

/// Per-point Grams in flight (`Backend::point_grams`).
pub type PointGramsFuture<'a> = Pin<Box<dyn Future<Output = Result<PointGrams, BackendError>> + 'a>>;

/// One engine running one `TrainConfig`.
pub trait Backend {
    fn kind(&self) -> BackendKind;
    /// The run's config (its learning rate follows `set_lr`).
    fn config(&self) -> &TrainConfig;
    /// Steps taken so far (submitted ones included).
    fn steps_submitted(&self) -> usize;
    /// Queue up to `k` more steps; returns how many were queued (fewer at the end of the run,
    /// none after it stopped).
    fn submit(&mut self, k: usize) -> Result<usize, BackendError>;
    /// What the submitted steps produced since the last read-back.
    fn read_back(&mut self) -> ReadBack<'_>;
    /// Change the learning rate for the next steps; the optimizer's moments are kept.
    fn set_lr(&mut self, lr: f64) -> Result<(), String>;
    /// Put back an exported run's parameters and history (every step recorded); the step count
    /// continues from the history's length, the optimizer's moments restart.
    fn restore(&mut self, params: Vec<f64>, history: Vec<StepRecord>) -> Result<(), String>;
    /// The heads' outputs at 2-D input points at the current parameters (the decision-boundary
    /// grids), evaluated where the run lives; `None` for a run without a model (the analytic
    /// sources), an error for a model whose inputs are not 2-D.
    fn predict(&mut self, _points: &[[f64; 2]]) -> Option<Predict<'_>> {
        None
    }
    /// `predict` and, from the same forward pass, the trunk's hidden activations at the points
    /// `rows` (indices into `points`; the network view's thumbnails), evaluated where the run
    /// lives; `None` where the engine does not (the CPU `Trainer`: its caller has the model and
    /// calls `Mlp::hidden_activations`; an MoE), an error for bad rows or non-2-D inputs.
    fn predict_hidden(&mut self, _points: &[[f64; 2]], _rows: &[usize]) -> Option<PredictHidden<'_>> {
        None
    }
    /// `predict_hidden` and, from the same forward pass, hidden layer l's neuron j at *every*
    /// point (`neuron` = (l, j); the network view's enlarged map, `Mlp::hidden_activations`'s
    /// column), evaluated where the run lives; `None` where the engine does not.
    fn predict_neuron(
        &mut self,
        _points: &[[f64; 2]],
        _rows: &[usize],
        _neuron: (usize, usize),
    ) -> Option<PredictNeuron<'_>> {
        None
    }
    /// Every point's m × m Gram of its per-task gradients of the shared parameters at 2-D input
    /// points, at the current parameters (the page's per-point conflict map), computed where the
    /// run lives; `None` where the engine does not (the CPU `Trainer`: its caller has the model
    /// and calls `Mlp::point_grams`), an error for a model whose inputs are not 2-D.
    fn point_grams(&mut self, _points: &[[f64; 2]], _how: PointGradient) -> Option<PointGramsFuture<'_>> {
        None
    }
    /// Up to `k` steps computed on the calling thread, stopping once `deadline()` returns true
    /// — between steps, or at a pause inside one (`crate::pause`): a step cut short goes on at
    /// the next call and gives exactly the numbers of an uninterrupted step. Returns the steps
    /// completed. For an engine that only queues work (a GPU) this is `submit`.
    fn submit_within(&mut self, k: usize, _deadline: &mut dyn FnMut() -> bool) -> Result<usize, BackendError> {
        self.submit(k)
    }
    /// A read-back computed on the calling thread (the whole-set losses are forward passes),
    /// stopping at a pause once `deadline()` returns true: `None` until it is done — call again,
    /// with no `submit` in between. For an engine whose `read_back` is not ready at once this
    /// stays `None`: await `read_back` instead.
    fn read_back_within(&mut self, _deadline: &mut dyn FnMut() -> bool) -> Option<Result<Snapshot, BackendError>> {
        now(self.read_back())
    }
}

/// The value of a future that is already ready (a CPU read-back); `None` if it is pending.
pub fn now<F: Future>(fut: F) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

impl super::Trainer {
    /// The CPU snapshot: records since the last read-back, parameters, whole-set losses.
    pub fn snapshot(&mut self) -> Snapshot {
        match self.snapshot_within(&mut || false) {
            Some(s) => s,
            // (A deadline that never passes runs the losses to the end.)
            None => {
                self.snapshot_with(self.train_losses().unwrap_or_default(), self.test_losses().and_then(Result::ok))
            }
        }
    }

    /// [`Trainer::snapshot`] with its whole-set losses (the forward passes over the train and
    /// the test set) paused between pieces: `None` when `deadline()` came first; the next call
    /// goes on (from scratch if a step was taken in between).
    pub fn snapshot_within(&mut self, deadline: &mut dyn FnMut() -> bool) -> Option<Snapshot> {
        let at = self.step_index();
        let mut work = match self.pending_eval.take() {
            Some((s, work)) if s == at => work,
            _ => self.eval_work(),
        };
        match crate::pause::drive(work.as_mut(), deadline) {
            None => {
                self.pending_eval = Some((at, work));
                None
            }
            Some((train, test)) => Some(self.snapshot_with(train, test)),
        }
    }

    fn snapshot_with(&mut self, train_losses: Vec<f64>, test_losses: Option<Vec<f64>>) -> Snapshot {
        // By step, not index: thinning moves the indices. Records thinned away before a read-back
        // (more than the recent window submitted at once) are not delivered.
        let h = self.history();
        let from = self.read_after.map_or(0, |s| h.partition_point(|r| r.step <= s));
        let new_records = h[from..].to_vec();
        self.read_after = h.last().map(|r| r.step).or(self.read_after);
        Snapshot {
            steps_done: self.step_index(),
            new_records,
            params: self.params().to_vec(),
            train_losses,
            test_losses,
            error: self.error().map(str::to_owned),
        }
    }
}

impl Backend for super::Trainer {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn config(&self) -> &TrainConfig {
        super::Trainer::config(self)
    }

    fn steps_submitted(&self) -> usize {
        self.step_index()
    }

    fn submit(&mut self, k: usize) -> Result<usize, BackendError> {
        let mut done = 0;
        while done < k && !self.is_done() {
            if self.step().is_err() {
                break;
            }
            done += 1;
        }
        Ok(done)
    }

    fn submit_within(&mut self, k: usize, deadline: &mut dyn FnMut() -> bool) -> Result<usize, BackendError> {
        let mut done = 0;
        while done < k && !self.is_done() {
            match self.step_within(deadline) {
                Ok(super::StepProgress::Done(_)) => done += 1,
                Ok(super::StepProgress::Paused) | Err(_) => break,
            }
            if done < k && deadline() {
                break;
            }
        }
        Ok(done)
    }

    fn read_back_within(&mut self, deadline: &mut dyn FnMut() -> bool) -> Option<Result<Snapshot, BackendError>> {
        self.snapshot_within(deadline).map(Ok)
    }

    fn read_back(&mut self) -> ReadBack<'_> {
        let snapshot = self.snapshot();
        Box::pin(std::future::ready(Ok(snapshot)))
    }

    fn set_lr(&mut self, lr: f64) -> Result<(), String> {
        super::Trainer::set_lr(self, lr)
    }

    fn restore(&mut self, params: Vec<f64>, history: Vec<StepRecord>) -> Result<(), String> {
        super::Trainer::restore(self, params, history)?;
        self.read_after = self.history().last().map(|r| r.step);
        Ok(())
    }

    fn predict(&mut self, points: &[[f64; 2]]) -> Option<Predict<'_>> {
        let out = self.predict_points(points)?.map_err(BackendError::Run);
        Some(Box::pin(std::future::ready(out)))
    }
}
