//! The CPU multi-task trainer.
//!
//! One step: the next mini-batch → `Mlp::gradients` (per-task losses, the m × d_shared Jacobian J,
//! the heads' own gradients) → the loss weighting, if any, gives w_i = ∂L_total/∂L_i and scales
//! J's rows (J_w = diag(w)·J) → the aggregator turns J_w into the shared update d → each head's
//! gradient is scaled by the same w_t → one optimizer step on the flat parameters. Without a
//! weighting w = 1. Every step is recorded (batch losses, the loss weights, `StepMetrics` of the
//! *unweighted* J against d — cosines, conflict ratio, GMS, cos(d, ḡ), J·d and the non-conflict
//! check; scaling rows by w > 0 changes no sign of J·d), and every `eval_every` steps the test
//! losses (at the parameters the step starts from).
//!
//! Failure: a non-finite loss, Jacobian, weight, update or new parameter stops the run with an
//! error; the parameters stay at the last finite state (the failed update is not applied) and
//! nothing panics. Seeded: one config reproduces a run bit for bit.
//!
//! The analytic sources (`pareto-synthetic`, the CAGrad toys) have no model: x is the parameter
//! vector and J the problem's exact Jacobian (all of it "shared"), so the same aggregator /
//! weighting / optimizer path applies — every method runs on the toys.
//!
//! `Backend` (backend.rs) is the contract every engine implements — this trainer, concord-gpu's
//! GPU trainer and its fused toy kernel — and the CLI and the page drive every run through it.

#[cfg(test)]
mod arch_tests;
mod backend;
mod batches;
mod config;
mod conflict_summary;
#[cfg(test)]
mod dynamics_presets_tests;
#[cfg(test)]
mod dynamics_tests;
#[cfg(test)]
mod fast_tests;
pub mod float_serde;
mod history;
#[cfg(test)]
mod loss_aware_tests;
mod moe_spec;
#[cfg(test)]
mod moe_tests;
mod net;
#[cfg(test)]
mod pause_tests;
mod presets;
mod sample_conflict;
#[cfg(test)]
mod sample_tests;
#[cfg(test)]
mod sample_weighting_tests;
#[cfg(test)]
mod task_experts_tests;
#[cfg(test)]
mod tests;
mod trunk;
#[cfg(test)]
mod trunk_tests;

pub use backend::{
    now, Backend, BackendError, BackendKind, PointGramsFuture, Predict, PredictHidden, PredictNeuron, ReadBack,
    Snapshot,
};
pub use batches::BatchSampler;
pub use config::{DataSource, Precision, TrainConfig, TrainOptimizer, MAX_STEPS};
pub use conflict_summary::ConflictSummary;
pub use history::{restore_point, History, HISTORY_CAP, HISTORY_OLD_CAP, HISTORY_WINDOW};
pub use moe_spec::MoeSpec;
pub use net::{MoeStepRecord, Net, NetGradients, StageStep};
pub use presets::{preset, task_experts_spec, Preset, TASK_EXPERTS_DENSE_HIDDEN};
pub use sample_conflict::{SampleConflict, COS_TIE, OPPOSING_TOP_PERCENT};
pub use trunk::{weight_mask, Init, Penalty, Regularization, TF_REGULARIZATION_RATES};

use crate::aggregators::combine_f32;
use crate::aggregators::Aggregator;
use crate::data::{uniform, DataRng};
use crate::dynamics::{self, DynamicsRecord};
use crate::landscape::vector::norm;
use crate::landscape::{MlpObjective, MoeObjective, Objective, ProblemObjective};
use crate::metrics::StepMetrics;
use crate::model::fast::{FastData, FastMlp};
use crate::model::moe::Moe;
use crate::model::Gradients;
use crate::model::{Mlp, Target};
use crate::optim::Optimizer;
use crate::pause::{drive, Paused};
use crate::problems::{CagradToy, ParetoMtlSynthetic, Problem};
use crate::sample_weighting::SampleStageRecord;
use crate::weightings::{LossWeighting, WeightingContext};
use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;

/// One step's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 0-based step index; the losses and metrics are at the parameters this step started from.
    pub step: usize,
    /// Per-task mean loss on this step's batch.
    #[serde(with = "float_serde::floats")]
    pub losses: Vec<f64>,
    /// The loss weighting's w (absent without a weighting).
    #[serde(with = "float_serde::opt_floats", default)]
    pub loss_weights: Option<Vec<f64>>,
    /// The aggregator's weights on the (weighted) Jacobian rows, if it is a weighted method.
    #[serde(with = "float_serde::opt_floats", default)]
    pub aggregator_weights: Option<Vec<f64>>,
    pub metrics: StepMetrics,
    /// Per-task test losses when this step was an evaluation step (and there is a test set).
    #[serde(with = "float_serde::opt_floats", default)]
    pub test_losses: Option<Vec<f64>>,
    /// MoE models: routing statistics (per task: expert load, router probability, f_i, dropped
    /// tokens; P(t,e); the aux losses) and the per-expert task-gradient cosine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moe: Option<MoeStepRecord>,
    /// Sample-level conflict on this step's batch (`TrainConfig::sample_metrics`, MLP models;
    /// absent otherwise and in files written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<SampleConflict>,
    /// What the method's sample-weighting stage did on this step's batch (runs with one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_stage: Option<SampleStageRecord>,
    /// What the training dynamics did (the lr used, the update's norm and clipping, the task a
    /// one-task schedule trained, SAM's plain-vs-SAM cosine, the spike score; runs with
    /// non-default `dynamics` or SPAM only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamics: Option<DynamicsRecord>,
}

/// A finished (or stopped) run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub config: TrainConfig,
    pub task_names: Vec<String>,
    /// Steps taken (= config.steps unless the run stopped early).
    pub steps_done: usize,
    /// Final (last finite) parameters.
    pub params: Vec<f64>,
    pub history: Vec<StepRecord>,
    /// Per-task losses on the whole train set at the final parameters (after a divergence they
    /// may overflow to ±inf even though the parameters are finite). Non-finite values are
    /// written as the strings "inf", "-inf", "nan" (`float_serde`), so such a file reads back.
    #[serde(with = "float_serde::floats")]
    pub final_train_losses: Vec<f64>,
    /// Per-task test losses at the final parameters (absent without a test set).
    #[serde(with = "float_serde::opt_floats", default)]
    pub final_test_losses: Option<Vec<f64>>,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
}

/// The model and its data, or the analytic problem. One per trainer, so the size difference
/// between the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Engine {
    /// The network is shared with a step under way (`Trainer::step_within`).
    Mlp {
        mlp: Arc<Net>,
        train_x: DMatrix<f64>,
        train_y: Vec<Target>,
        test: Option<(DMatrix<f64>, Vec<Target>)>,
    },
    Analytic(Analytic),
}

/// An analytic problem trained directly (x is the parameter vector).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Analytic {
    Pareto(ParetoMtlSynthetic),
    Toy(CagradToy),
}

impl Problem for Analytic {
    fn num_tasks(&self) -> usize {
        match self {
            Analytic::Pareto(p) => p.num_tasks(),
            Analytic::Toy(t) => t.num_tasks(),
        }
    }
    fn dim(&self) -> usize {
        match self {
            Analytic::Pareto(p) => p.dim(),
            Analytic::Toy(t) => t.dim(),
        }
    }
    fn losses(&self, x: &[f64]) -> Vec<f64> {
        match self {
            Analytic::Pareto(p) => p.losses(x),
            Analytic::Toy(t) => t.losses(x),
        }
    }
    fn jacobian(&self, x: &[f64]) -> Vec<Vec<f64>> {
        match self {
            Analytic::Pareto(p) => p.jacobian(x),
            Analytic::Toy(t) => t.jacobian(x),
        }
    }
}

/// How far [`Trainer::step_within`] got.
#[derive(Debug, PartialEq)]
pub enum StepProgress<'a> {
    /// The step is done: its record, or `None` when `record_every` skips this step.
    Done(Option<&'a StepRecord>),
    /// The deadline came inside the step: the next call goes on with it.
    Paused,
}

/// A step's place in the run.
struct StepPlan {
    step: usize,
    record: bool,
    full_batch: bool,
}

/// A step's gradients: the reference's, or the fast path's buffers holding them. One per step
/// under way, so the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Grads {
    Reference(Result<NetGradients, String>),
    Fast(Box<FastMlp>),
}

/// What a step's gradient work yields: the gradients on the batch and, on an evaluation step,
/// the test losses (both at the parameters the step starts from), and the batch back (as
/// values for the reference, as row indices into the train set for the fast path).
struct GradWork {
    grads: Grads,
    test: Option<Result<Vec<f64>, String>>,
    batch: Option<(DMatrix<f64>, Vec<Target>)>,
    rows: Option<Vec<usize>>,
}

/// What a step has worked out before FAMO's losses after it.
struct Applied {
    next: Vec<f64>,
    losses: Vec<f64>,
    loss_weights: Option<Vec<f64>>,
    aggregator_weights: Option<Vec<f64>>,
    /// The step's metrics (recorded steps only).
    metrics: Option<StepMetrics>,
    test_losses: Option<Vec<f64>>,
    moe: Option<MoeStepRecord>,
    samples: Option<SampleConflict>,
    sample_stage: Option<SampleStageRecord>,
    dynamics: Option<DynamicsRecord>,
}

/// A step's update before the optimizer: the full-length direction (shared part, then each
/// head's), and what the record keeps.
struct Update {
    losses: Vec<f64>,
    loss_weights: Option<Vec<f64>>,
    aggregator_weights: Option<Vec<f64>>,
    full: Vec<f64>,
    metrics: Option<StepMetrics>,
    test_losses: Option<Vec<f64>>,
    moe: Option<MoeStepRecord>,
    /// The f64 Jacobian when a recorded step's sample metrics can reuse it (the reference path).
    jacobian: Option<DMatrix<f64>>,
    sample_stage: Option<SampleStageRecord>,
    /// The one task a one-task schedule trained, and SAM's cos(d₀, d).
    task: Option<usize>,
    sam_cosine: Option<f64>,
}

/// A step's combined update: the shared direction d, the full update (d, then each head's),
/// and the aggregator's weights when it has them.
type Combined = (DVector<f64>, Vec<f64>, Option<Vec<f64>>);

/// FAMO's losses after the step, and the fast path's buffers back.
type AfterWork = Paused<(Result<Vec<f64>, String>, Option<Box<FastMlp>>)>;

/// A step cut short by [`Trainer::step_within`]'s deadline.
enum PendingStep {
    Gradients { plan: StepPlan, work: Paused<GradWork> },
    AfterStep { plan: StepPlan, applied: Box<Applied>, work: AfterWork },
}

/// The f32 fast path of an MLP run (`Precision::F32`): the train and test sets in f32 and the
/// step's buffers (lent to a step under way; rebuilt if that step is abandoned).
struct Fast {
    train: Arc<FastData>,
    test: Option<Arc<FastData>>,
    buffers: Option<Box<FastMlp>>,
}

/// The whole-set losses of a read-back (`Backend::read_back_within`) under way, at this step.
type PendingEval = (usize, Paused<(Vec<f64>, Option<Vec<f64>>)>);

/// A run that advances one step at a time (for the UI), or to the end (`train`).
pub struct Trainer {
    config: TrainConfig,
    engine: Engine,
    task_names: Vec<String>,
    params: Vec<f64>,
    optimizer: Optimizer,
    aggregator: Box<dyn Aggregator>,
    weighting: Option<Box<dyn LossWeighting>>,
    batches: BatchSampler,
    epoch: u64,
    step: usize,
    /// Bounded: the recent window whole, older steps thinned (see [`History`]).
    history: History,
    error: Option<String>,
    layer_ranges: Vec<Range<usize>>,
    /// The step of the last record a read-back (`Backend`) handed out.
    read_after: Option<usize>,
    /// A step cut short (`step_within`).
    pending: Option<PendingStep>,
    /// A read-back's losses cut short (`Backend::read_back_within`).
    pending_eval: Option<PendingEval>,
    /// The f32 fast path (MLP models at `Precision::F32`); `None` runs the f64 reference.
    fast: Option<Fast>,
    /// The parameters the last step replaced: the next step writes its new ones here.
    spare: Vec<f64>,
}

fn select_rows(x: &DMatrix<f64>, idx: &[usize]) -> DMatrix<f64> {
    DMatrix::from_fn(idx.len(), x.ncols(), |r, c| x[(idx[r], c)])
}

fn select_targets(y: &[Target], idx: &[usize]) -> Vec<Target> {
    y.iter()
        .map(|t| match t {
            Target::Values(v) => Target::Values(select_rows(v, idx)),
            Target::Classes(c) => Target::Classes(idx.iter().map(|&i| c[i]).collect()),
        })
        .collect()
}

fn split_rows(x: &DMatrix<f64>, y: &[Target], rows: Range<usize>) -> (DMatrix<f64>, Vec<Target>) {
    let idx: Vec<usize> = rows.collect();
    (select_rows(x, &idx), select_targets(y, &idx))
}

use crate::multiversion::{all_finite, all_finite_f32};

fn build_engine(config: &TrainConfig) -> Result<(Engine, Vec<String>), String> {
    let (train_x, train_y, test, names) = match &config.data {
        DataSource::ParetoSynthetic { n } => {
            let p = ParetoMtlSynthetic::new(*n)?;
            return Ok((Engine::Analytic(Analytic::Pareto(p)), vec!["f1".into(), "f2".into()]));
        }
        DataSource::Toy { problem, .. } => {
            return Ok((Engine::Analytic(Analytic::Toy(problem.toy())), vec!["L1".into(), "L2".into()]));
        }
        DataSource::TaskSet { config: ts } => {
            let data = ts.generate().map_err(|e| format!("task set: {e}"))?;
            points_to_sets(config, &data)?
        }
        DataSource::Points { data } => points_to_sets(config, data)?,
        DataSource::GradNorm { config: gc, n_train, n_test } => {
            let problem = gc.build().map_err(|e| format!("gradnorm data: {e}"))?;
            let (x, y) = problem.fixed_set(*n_train, gc.seed.wrapping_add(1));
            let test = problem.fixed_set(*n_test, gc.seed.wrapping_add(2));
            let names = (0..gc.sigmas.len()).map(|t| format!("σ={}", gc.sigmas[t])).collect();
            (x, y, Some(test), names)
        }
        DataSource::Sinusoid { config: sc, train_ratio } => {
            let (x, y) = sc.generate().map_err(|e| format!("sinusoid data: {e}"))?;
            let n_train = (sc.n as f64 * train_ratio).floor() as usize;
            let test = (n_train < sc.n).then(|| split_rows(&x, &y, n_train..sc.n));
            let (tx, ty) = split_rows(&x, &y, 0..n_train);
            let names = sc.tasks.iter().map(|t| format!("A={:.2} φ={:.2}", t.amplitude, t.phase)).collect();
            (tx, ty, test, names)
        }
    };
    let model = config.model.clone().ok_or("this data source needs a model")?;
    let m_data = train_y.len();
    if model.heads.len() != m_data {
        return Err(format!("the model has {} heads but the data has {m_data} tasks", model.heads.len()));
    }
    if model.input_dim != train_x.ncols() {
        return Err(format!("the model reads {} inputs but the data has {}", model.input_dim, train_x.ncols()));
    }
    let mlp = match &config.moe {
        None => Net::Mlp(Mlp::new(model).map_err(|e| format!("model: {e}"))?),
        Some(spec) => Net::Moe(Moe::new(spec.model_config(&model)).map_err(|e| format!("moe model: {e}"))?),
    };
    // Surface head/target mismatches (widths, loss kinds) now, as configuration errors.
    let probe = mlp.init_params(0);
    let (px, py) = split_rows(&train_x, &train_y, 0..1);
    mlp.losses(&probe, &px, &py).map_err(|e| format!("model and data do not fit: {e}"))?;
    if let Some(b) = config.batch_size {
        if b > train_x.nrows() {
            return Err(format!("batch_size {b} exceeds the {} training points", train_x.nrows()));
        }
    }
    Ok((Engine::Mlp { mlp: Arc::new(mlp), train_x, train_y, test }, names))
}

type Sets = (DMatrix<f64>, Vec<Target>, Option<(DMatrix<f64>, Vec<Target>)>, Vec<String>);

fn points_to_sets(config: &TrainConfig, data: &crate::data::MultiTaskData) -> Result<Sets, String> {
    let model = config.model.as_ref().ok_or("this data source needs a model")?;
    if model.heads.len() != data.num_tasks() {
        return Err(format!("the model has {} heads but the data has {} tasks", model.heads.len(), data.num_tasks()));
    }
    let losses: Vec<_> = model.heads.iter().map(|h| h.loss).collect();
    // The model reads the points' input features (TF's x₁², sin x₁, …) when the run has some.
    let features = |(x, y): (DMatrix<f64>, Vec<Target>)| -> Result<_, String> {
        match &config.features {
            Some(f) => Ok((f.map_rows(&x)?, y)),
            None => Ok((x, y)),
        }
    };
    let (x, y) = features(data.batch(data.train_indices(), &losses)?)?;
    let test =
        if data.test_indices().is_empty() { None } else { Some(features(data.batch(data.test_indices(), &losses)?)?) };
    Ok((x, y, test, data.task_names.clone()))
}

impl Trainer {
    /// Validates the config, builds the data, the model, the aggregator and the weighting.
    pub fn new(config: TrainConfig) -> Result<Self, String> {
        config.validate()?;
        let (engine, task_names) = build_engine(&config)?;
        let m = task_names.len();
        let aggregator = config.method.aggregator.build(m, config.seed)?;
        let weighting = match &config.method.weighting {
            None => None,
            Some(spec) => Some(spec.build(m, config.seed)?),
        };
        let (params, layer_ranges) = match (&engine, &config.data) {
            (Engine::Mlp { mlp, .. }, _) => {
                let mut params = mlp.init_params(config.seed);
                if let Net::Mlp(net) = &**mlp {
                    config.init.apply(&mut params, &weight_mask(net.layout()), config.seed);
                }
                (params, mlp.layer_ranges())
            }
            (Engine::Analytic(_), DataSource::Toy { start, .. }) => (start.to_vec(), Vec::new()),
            (Engine::Analytic(p), _) => {
                let mut rng = DataRng::seed_from_u64(config.seed);
                ((0..p.dim()).map(|_| uniform(&mut rng, -0.5, 0.5)).collect(), Vec::new())
            }
        };
        let optimizer = config.optimizer.build(params.len()).with_spike_tracking(config.dynamics.spikes);
        let n_train = match &engine {
            Engine::Mlp { train_x, .. } => train_x.nrows(),
            Engine::Analytic(_) => 0,
        };
        let batches = BatchSampler::new(config.seed, config.batch_size, n_train);
        // A sample-weighting stage runs on the f64 reference (the fast path has no per-sample
        // Grams), as MoE models do.
        let fast = match (&engine, config.precision) {
            _ if config.method.sample_weighting.is_some() => None,
            // SAM's second gradient and a one-task step are reference-path code.
            _ if config.dynamics.needs_reference() => None,
            (Engine::Mlp { mlp, train_x, train_y, test }, Precision::F32) => match &**mlp {
                Net::Mlp(net) => Some(Fast {
                    train: Arc::new(FastData::new(train_x, train_y)),
                    test: test.as_ref().map(|(x, y)| Arc::new(FastData::new(x, y))),
                    buffers: Some(Box::new(FastMlp::new(net))),
                }),
                Net::Moe(_) => None,
            },
            _ => None,
        };
        Ok(Trainer {
            config,
            engine,
            task_names,
            params,
            optimizer,
            aggregator,
            weighting,
            batches,
            epoch: 0,
            step: 0,
            history: History::new(),
            error: None,
            layer_ranges,
            read_after: None,
            pending: None,
            pending_eval: None,
            fast,
            spare: Vec::new(),
        })
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    pub fn task_names(&self) -> &[String] {
        &self.task_names
    }

    pub fn num_tasks(&self) -> usize {
        self.task_names.len()
    }

    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// The step records kept so far: every one of the recent window, older ones thinned, the
    /// first and the latest always (at most [`HISTORY_CAP`]).
    pub fn history(&self) -> &[StepRecord] {
        &self.history
    }

    /// The parameter ranges per-layer metrics are recorded over (`StepMetrics::layers`, when
    /// `config.layer_metrics` is on; empty for the analytic problems).
    pub fn layer_ranges(&self) -> &[Range<usize>] {
        &self.layer_ranges
    }

    /// Steps taken so far.
    pub fn step_index(&self) -> usize {
        self.step
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Stopped by an error, or all `config.steps` taken.
    pub fn is_done(&self) -> bool {
        self.error.is_some() || self.step >= self.config.steps
    }

    /// The model, for drawing decision boundaries (`None` for pareto-synthetic).
    pub fn mlp(&self) -> Option<&Mlp> {
        match self.net()? {
            Net::Mlp(mlp) => Some(mlp),
            Net::Moe(_) => None,
        }
    }

    fn net(&self) -> Option<&Net> {
        match &self.engine {
            Engine::Mlp { mlp, .. } => Some(mlp),
            Engine::Analytic(_) => None,
        }
    }

    /// The MoE model, for routing maps and statistics (`None` unless the run trains one).
    pub fn moe(&self) -> Option<&Moe> {
        match self.net()? {
            Net::Moe(moe) => Some(moe),
            Net::Mlp(_) => None,
        }
    }

    /// Head outputs at 2-D points (decision-boundary grids) for MLP and MoE runs alike;
    /// `None` for pareto-synthetic.
    /// The points go through the run's input features first.
    pub fn predict_points(&self, points: &[[f64; 2]]) -> Option<Result<Vec<DMatrix<f64>>, String>> {
        self.predict_points_at(&self.params, points)
    }

    /// [`Trainer::predict_points`] at other parameters of this model (a page's read-back ones).
    pub fn predict_points_at(&self, params: &[f64], points: &[[f64; 2]]) -> Option<Result<Vec<DMatrix<f64>>, String>> {
        let x = crate::data::feature_rows(self.config.features.as_ref(), points);
        match self.net()? {
            Net::Mlp(n) => Some(n.forward(params, &x)),
            Net::Moe(n) => Some(n.forward(params, &x)),
        }
    }

    /// The analytic problem (pareto-synthetic, a toy), if the run trains x directly.
    pub fn analytic(&self) -> Option<&Analytic> {
        match &self.engine {
            Engine::Analytic(p) => Some(p),
            _ => None,
        }
    }

    /// The whole training set the MLP is evaluated on (`None` for pareto-synthetic).
    pub fn train_set(&self) -> Option<(&DMatrix<f64>, &[Target])> {
        match &self.engine {
            Engine::Mlp { train_x, train_y, .. } => Some((train_x, train_y.as_slice())),
            Engine::Analytic(_) => None,
        }
    }

    /// What the landscape tools evaluate: the MLP on the whole training set, or the analytic
    /// problem (x is θ).
    pub fn objective(&self) -> Box<dyn Objective + '_> {
        match &self.engine {
            Engine::Mlp { mlp, train_x, train_y, .. } => match &**mlp {
                Net::Mlp(mlp) => Box::new(MlpObjective { mlp, x: train_x, targets: train_y }),
                Net::Moe(moe) => Box::new(MoeObjective { moe, x: train_x, targets: train_y }),
            },
            Engine::Analytic(p) => Box::new(ProblemObjective(p)),
        }
    }

    /// Change the learning rate; the optimizer's moments are kept.
    pub fn set_lr(&mut self, lr: f64) -> Result<(), String> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("the learning rate must be a positive finite number, got {lr}"));
        }
        self.optimizer.set_lr(lr);
        self.config.optimizer = self.config.optimizer.with_lr(lr);
        Ok(())
    }

    /// Put back saved parameters and history (a run exported as JSON and imported again): the
    /// step counter continues after the history's last step. The optimizer's moments, the batch
    /// order and stateful aggregators/weightings start afresh, so later steps can differ from the
    /// uninterrupted run's. Rejects a parameter vector of the wrong length or with non-finite
    /// entries, and a history that does not start at step 0 with increasing steps (a thinned
    /// history, as [`History`] keeps for a long run, is fine).
    pub fn restore(&mut self, params: Vec<f64>, history: Vec<StepRecord>) -> Result<(), String> {
        if self.config.record_every != 1 {
            return Err("only a run that records every step can be restored".into());
        }
        let steps = history::restore_point(&params, self.params.len(), &history, self.config.steps)?;
        self.params = params;
        self.step = steps;
        self.history = History::from_records(history);
        self.error = None;
        self.pending = None;
        self.pending_eval = None;
        Ok(())
    }

    /// Per-task losses on the whole train set (the analytic losses for pareto-synthetic).
    pub fn train_losses(&self) -> Result<Vec<f64>, String> {
        match &self.engine {
            Engine::Mlp { mlp, train_x, train_y, .. } => mlp.losses(&self.params, train_x, train_y),
            Engine::Analytic(p) => Ok(p.losses(&self.params)),
        }
    }

    /// The whole-set losses at the current parameters (train, test) as a computation that pauses
    /// between pieces (the same numbers as `train_losses` and `test_losses`).
    fn eval_work(&self) -> Paused<(Vec<f64>, Option<Vec<f64>>)> {
        match &self.engine {
            Engine::Mlp { mlp, train_x, train_y, test } => {
                let (net, params) = (Arc::clone(mlp), self.params.clone());
                let (x, y, test) = (train_x.clone(), train_y.clone(), test.clone());
                Box::pin(async move {
                    let train = net.losses_paused(&params, &x, &y).await.unwrap_or_default();
                    let test = match &test {
                        Some((tx, ty)) => net.losses_paused(&params, tx, ty).await.ok(),
                        None => None,
                    };
                    (train, test)
                })
            }
            Engine::Analytic(p) => Box::pin(std::future::ready((p.losses(&self.params), None))),
        }
    }

    /// Per-task test losses (`None` without a test set).
    pub fn test_losses(&self) -> Option<Result<Vec<f64>, String>> {
        match &self.engine {
            Engine::Mlp { mlp, test: Some((x, y)), .. } => Some(mlp.losses(&self.params, x, y)),
            _ => None,
        }
    }

    /// The next batch's row indices (`None` = the whole train set).
    fn next_batch(&mut self) -> Option<Vec<usize>> {
        let (idx, new_epoch) = self.batches.next_batch();
        if new_epoch {
            self.epoch += 1;
        }
        idx
    }

    /// The training inputs and targets (`None` for pareto-synthetic), e.g. to upload to a GPU.
    pub fn train_data(&self) -> Option<(&DMatrix<f64>, &[Target])> {
        match &self.engine {
            Engine::Mlp { train_x, train_y, .. } => Some((train_x, train_y.as_slice())),
            Engine::Analytic(_) => None,
        }
    }

    /// The test inputs and targets, if the data source has a test split.
    pub fn test_data(&self) -> Option<(&DMatrix<f64>, &[Target])> {
        match &self.engine {
            Engine::Mlp { test: Some((x, y)), .. } => Some((x, y.as_slice())),
            _ => None,
        }
    }

    fn fail(&mut self, msg: String) -> String {
        let msg = format!("step {}: {msg}; the run stopped, parameters kept at the last finite state", self.step);
        self.error = Some(msg.clone());
        msg
    }

    /// One training step: its record, or `None` when `record_every` skips this step. After an
    /// error (or the last step) it only returns the error.
    pub fn step(&mut self) -> Result<Option<&StepRecord>, String> {
        match self.step_within(&mut || false)? {
            StepProgress::Done(record) => Ok(record),
            StepProgress::Paused => Err("a step paused without a deadline".into()),
        }
    }

    /// One training step that may be cut short: the step's forward and backward passes (and
    /// its test-set evaluation, and FAMO's losses after it) pause between pieces — a layer, an
    /// expert, a task's backward pass — and once `deadline()` returns true at a pause, the call
    /// returns `Paused`; the next call goes on where it stopped. The step's numbers are exactly
    /// those of [`Trainer::step`] (the same code runs in the same order: `crate::pause`). The
    /// page uses this to keep a frame's CPU work within its time budget when one step of a
    /// large model takes longer than a frame. Nothing of a step shows (parameters, history,
    /// step count) before it is done.
    pub fn step_within(&mut self, deadline: &mut dyn FnMut() -> bool) -> Result<StepProgress<'_>, String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut pending = match self.pending.take() {
            Some(p) => p,
            None => {
                if self.step >= self.config.steps {
                    return Err(format!("the run is complete ({} steps)", self.config.steps));
                }
                self.begin_step()
            }
        };
        loop {
            pending = match pending {
                PendingStep::Gradients { plan, mut work } => match drive(work.as_mut(), deadline) {
                    None => {
                        self.pending = Some(PendingStep::Gradients { plan, work });
                        return Ok(StepProgress::Paused);
                    }
                    Some(out) => match self.apply_gradients(plan, out)? {
                        Ok(recorded) => return Ok(StepProgress::Done(self.history.last().filter(|_| recorded))),
                        Err(after) => after,
                    },
                },
                PendingStep::AfterStep { plan, applied, mut work } => match drive(work.as_mut(), deadline) {
                    None => {
                        self.pending = Some(PendingStep::AfterStep { plan, applied, work });
                        return Ok(StepProgress::Paused);
                    }
                    Some((after, buffers)) => {
                        self.return_buffers(buffers);
                        let recorded = self.complete_step(plan, *applied, Some(after))?;
                        return Ok(StepProgress::Done(self.history.last().filter(|_| recorded)));
                    }
                },
            };
        }
    }

    /// Whether a step cut short by [`Trainer::step_within`] is waiting to go on.
    pub fn step_in_progress(&self) -> bool {
        self.pending.is_some()
    }

    /// A step's start: the batch (the sampler moves on here, once) and its gradient work.
    fn begin_step(&mut self) -> PendingStep {
        let step = self.step;
        let record = step.is_multiple_of(self.config.record_every) || step + 1 == self.config.steps;
        let evaluate = record && step.is_multiple_of(self.config.eval_every);
        let idx = match self.engine {
            Engine::Mlp { .. } => self.next_batch(),
            Engine::Analytic(_) => None,
        };
        let plan = StepPlan { step, record, full_batch: idx.is_none() };
        // Gradients at the current parameters.
        let work: Paused<GradWork> = match &self.engine {
            Engine::Analytic(p) => {
                let j = p.jacobian(&self.params);
                let jm = DMatrix::from_fn(j.len(), p.dim(), |r, c| j[r][c]);
                let tasks = Gradients { losses: p.losses(&self.params), shared_jacobian: jm, head_grads: Vec::new() };
                let grads = Grads::Reference(Ok(NetGradients {
                    tasks,
                    raw_jacobian: None,
                    stage: None,
                    aux_grad: None,
                    moe: None,
                }));
                Box::pin(std::future::ready(GradWork { grads, test: None, batch: None, rows: None }))
            }
            Engine::Mlp { mlp: net, .. } if self.fast.is_some() => {
                let fast = self.fast.as_mut().expect("checked");
                let Net::Mlp(mlp) = &**net else { unreachable!("the fast path is built for MLPs only") };
                let mut buffers = fast.buffers.take().unwrap_or_else(|| Box::new(FastMlp::new(mlp)));
                buffers.load_params(&self.params);
                let train = Arc::clone(&fast.train);
                let test = if evaluate { fast.test.clone() } else { None };
                Box::pin(async move {
                    buffers.gradients(&train, idx.as_deref()).await;
                    let test = match test {
                        Some(t) => Some(Ok(buffers.losses(&t, None).await)),
                        None => None,
                    };
                    GradWork { grads: Grads::Fast(buffers), test, batch: None, rows: idx }
                })
            }
            Engine::Mlp { mlp, train_x, train_y, test } => {
                let (x, y) = match &idx {
                    Some(idx) => (select_rows(train_x, idx), select_targets(train_y, idx)),
                    None => (train_x.clone(), train_y.clone()),
                };
                // Routing noise: a fresh, reproducible draw per step.
                let noise_seed = self.config.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let (net, params) = (Arc::clone(mlp), self.params.clone());
                let test = if evaluate { test.clone() } else { None };
                let stage = self.config.method.sample_weighting.clone().map(|spec| StageStep { spec, step });
                Box::pin(async move {
                    let grads = net.gradients_paused(&params, &x, &y, noise_seed, stage.as_ref()).await;
                    // The test losses at the same parameters (none after a failed gradient).
                    let test = match (&grads, &test) {
                        (Ok(_), Some((tx, ty))) => Some(net.losses_paused(&params, tx, ty).await),
                        _ => None,
                    };
                    GradWork { grads: Grads::Reference(grads), test, batch: Some((x, y)), rows: None }
                })
            }
        };
        PendingStep::Gradients { plan, work }
    }

    /// The step after its gradients: checks, loss weighting, aggregator, optimizer. `Ok(Ok(recorded))`
    /// when the step is done, `Ok(Err(work))` when FAMO's losses after the step are still to
    /// compute on the network.
    fn apply_gradients(&mut self, plan: StepPlan, work: GradWork) -> Result<Result<bool, PendingStep>, String> {
        let GradWork { grads, test, batch, rows } = work;
        let (update, buffers) = match grads {
            Grads::Reference(g) => (self.reference_update(&plan, g, test, batch.as_ref())?, None),
            Grads::Fast(b) => {
                let u = self.fast_update(&plan, &b, test)?;
                (u, Some(b))
            }
        };
        let Update {
            losses,
            loss_weights,
            aggregator_weights,
            mut full,
            metrics,
            test_losses,
            moe,
            jacobian,
            sample_stage,
            task,
            sam_cosine,
        } = update;
        let samples = self.sample_conflict(&plan, batch.as_ref(), rows.as_deref(), jacobian.as_ref());
        let dyn_config = &self.config.dynamics;
        // ‖d‖ before the clip and before the penalty joins (the GPU trainer's `optim_prepare`
        // records the same).
        let (grad_norm, clipped) = match dyn_config.clip_norm {
            Some(max) => dynamics::clip_by_norm(&mut full, max),
            None if plan.record && self.records_dynamics() => (norm(&full), false),
            None => (0.0, false),
        };
        let lr_factor = dynamics::lr_factor(
            dyn_config.lr_schedule,
            dyn_config.warmup,
            dyn_config.schedule_steps(self.config.steps),
            plan.step,
        );
        // The penalty is shared, not a task: its gradient joins the aggregated (and clipped)
        // update here, before the optimizer (trunk.rs).
        if let Some(reg) = self.config.regularization.filter(|r| r.rate > 0.0) {
            reg.add_gradient(&self.params, &self.weight_mask(), &mut full);
        }
        let mut next = std::mem::take(&mut self.spare);
        next.clear();
        next.extend_from_slice(&self.params);
        let info = self.optimizer.step_scaled(&mut next, &full, lr_factor);
        if !all_finite(&next) {
            return Err(self.fail("the optimizer step produced non-finite parameters".into()));
        }
        let dynamics = (plan.record && self.records_dynamics()).then(|| DynamicsRecord {
            lr: self.config.optimizer.lr() * lr_factor,
            grad_norm,
            clipped,
            task,
            sam_cosine,
            spike_score: info.spike_score,
            spikes_clipped: info.spikes_clipped,
            reset: info.reset,
        });
        let applied = Applied {
            next,
            losses,
            loss_weights,
            aggregator_weights,
            metrics,
            test_losses,
            moe,
            samples,
            sample_stage,
            dynamics,
        };
        // FAMO: the losses on the same batch after the step.
        if !self.weighting.as_ref().is_some_and(|w| w.needs_losses_after_step()) {
            self.return_buffers(buffers);
            return self.complete_step(plan, applied, None).map(Ok);
        }
        match (&self.engine, batch, buffers) {
            (Engine::Mlp { .. }, _, Some(mut buffers)) => {
                let train = Arc::clone(&self.fast.as_ref().expect("fast buffers come from the fast path").train);
                buffers.load_params(&applied.next);
                let work: AfterWork = Box::pin(async move {
                    let losses = buffers.losses(&train, rows.as_deref()).await;
                    (Ok(losses), Some(buffers))
                });
                Ok(Err(PendingStep::AfterStep { plan, applied: Box::new(applied), work }))
            }
            (Engine::Mlp { mlp, .. }, Some((x, y)), None) => {
                let (net, params) = (Arc::clone(mlp), applied.next.clone());
                let work: AfterWork = Box::pin(async move { (net.losses_paused(&params, &x, &y).await, None) });
                Ok(Err(PendingStep::AfterStep { plan, applied: Box::new(applied), work }))
            }
            (Engine::Analytic(p), _, _) => {
                let after = Ok(p.losses(&applied.next));
                self.complete_step(plan, applied, Some(after)).map(Ok)
            }
            (Engine::Mlp { .. }, None, None) => self.complete_step(plan, applied, Some(Err("no batch".into()))).map(Ok),
        }
    }

    /// The fast path's buffers back from a step (the next step borrows them again).
    fn return_buffers(&mut self, buffers: Option<Box<FastMlp>>) {
        if let (Some(b), Some(fast)) = (buffers, self.fast.as_mut()) {
            fast.buffers = Some(b);
        }
    }

    /// The test losses of an evaluation step, checked (after the gradients: the stop contract's order).
    fn check_test(&mut self, test: Option<Result<Vec<f64>, String>>) -> Result<Option<Vec<f64>>, String> {
        match test {
            Some(Ok(l)) if all_finite(&l) => Ok(Some(l)),
            Some(Ok(l)) => Err(self.fail(format!("a test loss is not finite ({l:?})"))),
            Some(Err(e)) => Err(self.fail(e)),
            None => Ok(None),
        }
    }

    /// The loss weighting's w_i = ∂L_total/∂L_i, checked (`jacobian` only for weightings that
    /// read it).
    fn loss_weights(
        &mut self,
        losses: &[f64],
        step: usize,
        jacobian: Option<&DMatrix<f64>>,
    ) -> Result<Option<Vec<f64>>, String> {
        let weights = match self.weighting.as_mut() {
            None => return Ok(None),
            Some(w) => {
                let ctx = WeightingContext::new(losses, step as u64, self.epoch);
                let ctx = match jacobian {
                    Some(j) if w.needs_jacobian() => ctx.with_jacobian(j),
                    _ => ctx,
                };
                w.weights(&ctx)
            }
        };
        if weights.len() != losses.len() || !all_finite(&weights) {
            return Err(self.fail(format!("the loss weighting returned unusable weights {weights:?}")));
        }
        Ok(Some(weights))
    }

    fn needs_jacobian(&self) -> bool {
        self.weighting.as_ref().is_some_and(|w| w.needs_jacobian())
    }

    /// The reference (f64) update: the loss weighting scales J's rows and the aggregator runs on
    /// the weighted J.
    fn reference_update(
        &mut self,
        plan: &StepPlan,
        grads: Result<NetGradients, String>,
        test: Option<Result<Vec<f64>, String>>,
        batch: Option<&(DMatrix<f64>, Vec<Target>)>,
    ) -> Result<Update, String> {
        let g = match grads {
            Ok(g) => g,
            Err(e) => return Err(self.fail(e)),
        };
        let (losses, jacobian, head_grads, aux_grad, moe) =
            (g.tasks.losses, g.tasks.shared_jacobian, g.tasks.head_grads, g.aux_grad, g.moe);
        // With a sample-weighting stage the aggregator takes its J′; the metrics and the loss
        // weighting describe the plain J.
        let (raw, sample_stage) = (g.raw_jacobian, g.stage);
        if !all_finite(&losses) {
            return Err(self.fail(format!("a task loss is not finite ({losses:?})")));
        }
        if !all_finite(jacobian.as_slice())
            || !raw.as_ref().is_none_or(|r| all_finite(r.as_slice()))
            || !head_grads.iter().all(|h| all_finite(h))
            || !aux_grad.as_ref().is_none_or(|a| all_finite(a))
        {
            return Err(self.fail("a gradient is not finite".into()));
        }
        let test_losses = self.check_test(test)?;
        let plain = raw.as_ref().unwrap_or(&jacobian);
        let task = dynamics::task_for_step(&self.config.dynamics.schedule, losses.len(), self.config.seed, plan.step);
        let loss_weights = match task {
            // A one-task step has nothing to weigh (the config refuses a weighting there).
            Some(_) => None,
            None => self.loss_weights(&losses, plan.step, Some(plain))?,
        };
        let (mut d, mut full, mut aggregator_weights) =
            self.combine(&jacobian, &losses, &head_grads, aux_grad.as_deref(), loss_weights.as_deref(), task)?;
        let mut sam_cosine = None;
        if let Some(sam) = self.config.dynamics.sam {
            // SAM: ε along the aggregated direction d₀ (the whole update, heads included), the
            // gradients again at w + ε on the same batch, aggregated with the same loss weights.
            let eps = if sam.adaptive {
                dynamics::asam_perturbation(&self.params, &full, &self.weight_mask(), sam.rho, dynamics::ASAM_ETA)
            } else {
                dynamics::sam_perturbation(&full, sam.rho)
            };
            let moved: Vec<f64> = self.params.iter().zip(&eps).map(|(w, e)| w + e).collect();
            let g2 = match self.gradients_at(&moved, batch, plan.step) {
                Ok(g) => g,
                Err(e) => return Err(self.fail(format!("SAM's gradient at w + ε: {e}"))),
            };
            if !all_finite(&g2.losses)
                || !all_finite(g2.shared_jacobian.as_slice())
                || !g2.head_grads.iter().all(|h| all_finite(h))
            {
                return Err(self.fail("SAM's gradient at w + ε is not finite".into()));
            }
            let (d2, full2, w2) = self.combine(
                &g2.shared_jacobian,
                &g2.losses,
                &g2.head_grads,
                aux_grad.as_deref(),
                loss_weights.as_deref(),
                task,
            )?;
            sam_cosine = Some(dynamics::cosine(&full, &full2));
            (d, full, aggregator_weights) = (d2, full2, w2);
        }
        let plain = raw.unwrap_or(jacobian);
        let metrics = plan.record.then(|| StepMetrics::new(&plain, &d, self.metric_layers()));
        let jacobian = self.wants_samples(plan).then_some(plain);
        Ok(Update {
            losses,
            loss_weights,
            aggregator_weights,
            full,
            metrics,
            test_losses,
            moe,
            jacobian,
            sample_stage,
            task,
            sam_cosine,
        })
    }

    /// J (rows scaled by the loss weights) → the aggregator → the shared update d, and the full
    /// update (d, the MoE aux gradient, each head's gradient scaled by its task's weight). A
    /// one-task step (`task`) skips the aggregator: its update is that task's gradient, and the
    /// other heads stay still. The aggregator also gets the batch's task `losses`, which a
    /// loss-aware one (MoCo, DB-MTL, MGDA `gn=loss`) reads and the others ignore.
    fn combine(
        &mut self,
        jacobian: &DMatrix<f64>,
        losses: &[f64],
        head_grads: &[Vec<f64>],
        aux_grad: Option<&[f64]>,
        loss_weights: Option<&[f64]>,
        task: Option<usize>,
    ) -> Result<Combined, String> {
        let (d, aggregator_weights): (DVector<f64>, _) = match (task, loss_weights) {
            (Some(t), _) => (jacobian.row(t).transpose(), None),
            (None, None) => {
                let a = self.aggregator.aggregate_with_losses(jacobian, losses);
                (a.update, a.weights)
            }
            (None, Some(w)) => {
                let mut weighted = jacobian.clone();
                for (i, wi) in w.iter().enumerate() {
                    weighted.row_mut(i).scale_mut(*wi);
                }
                let a = self.aggregator.aggregate_with_losses(&weighted, losses);
                (a.update, a.weights)
            }
        };
        if !all_finite(d.as_slice()) {
            return Err(self.fail("the aggregator's update is not finite".into()));
        }
        let mut full: Vec<f64> = d.as_slice().to_vec();
        for (t, h) in head_grads.iter().enumerate() {
            let wt = match task {
                Some(only) => f64::from(u8::from(only == t)),
                None => loss_weights.map_or(1.0, |w| w[t]),
            };
            full.extend(h.iter().map(|g| g * wt));
        }
        // The MoE aux losses are regularisers of the router, not tasks: their gradient joins the
        // update after the aggregator (so it neither sees nor reshapes them). It covers the
        // shared parameters, or every parameter where gates are task-owned (DSelect-k).
        if let Some(a) = aux_grad {
            for (f, g) in full.iter_mut().zip(a) {
                *f += g;
            }
        }
        Ok((d, full, aggregator_weights.map(|w| w.as_slice().to_vec())))
    }

    /// The gradients at `params` on the step's batch (SAM's second pass), without pausing.
    fn gradients_at(
        &self,
        params: &[f64],
        batch: Option<&(DMatrix<f64>, Vec<Target>)>,
        step: usize,
    ) -> Result<Gradients, String> {
        match (&self.engine, batch) {
            (Engine::Analytic(p), _) => {
                let j = p.jacobian(params);
                let jm = DMatrix::from_fn(j.len(), p.dim(), |r, c| j[r][c]);
                Ok(Gradients { losses: p.losses(params), shared_jacobian: jm, head_grads: Vec::new() })
            }
            (Engine::Mlp { mlp, .. }, Some((x, y))) => {
                // The same routing noise as the step's first pass.
                let noise_seed = self.config.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                mlp.gradients(params, x, y, noise_seed).map(|g| g.tasks)
            }
            (Engine::Mlp { .. }, None) => Err("no batch".into()),
        }
    }

    /// ASAM's T_w: which entries of the parameter vector are weights (biases get T = 1). MoE
    /// models and the analytic problems treat every entry as a weight.
    fn weight_mask(&self) -> Vec<bool> {
        match self.mlp() {
            Some(mlp) => weight_mask(mlp.layout()),
            None => vec![true; self.params.len()],
        }
    }

    /// Whether recorded steps carry a `DynamicsRecord`.
    fn records_dynamics(&self) -> bool {
        !self.config.dynamics.is_default() || matches!(self.config.optimizer, TrainOptimizer::Spam(_))
    }

    /// The fast path's update: J and G are the f32 pass's; a Gramian-weighted aggregator gets
    /// diag(w)·G·diag(w) and its d = Jᵀ(w ⊙ weights) is one f32 pass over the unweighted J.
    fn fast_update(
        &mut self,
        plan: &StepPlan,
        b: &FastMlp,
        test: Option<Result<Vec<f64>, String>>,
    ) -> Result<Update, String> {
        let losses = b.losses.clone();
        if !all_finite(&losses) {
            return Err(self.fail(format!("a task loss is not finite ({losses:?})")));
        }
        let m = losses.len();
        if !(0..m).all(|i| all_finite_f32(b.jacobian.row(i))) || !all_finite_f32(&b.head_grads) {
            return Err(self.fail("a gradient is not finite".into()));
        }
        let test_losses = self.check_test(test)?;
        let j64 = self.needs_jacobian().then(|| b.jacobian.to_f64());
        let loss_weights = self.loss_weights(&losses, plan.step, j64.as_ref())?;
        let scaled;
        let gram_w = match &loss_weights {
            None => &b.gram,
            Some(w) => {
                scaled = DMatrix::from_fn(m, m, |i, j| w[i] * b.gram[(i, j)] * w[j]);
                &scaled
            }
        };
        let (d, aggregator_weights, coefficients) = match self.aggregator.gram_weights_with_losses(gram_w, &losses) {
            Some(w) => {
                let v = match &loss_weights {
                    None => w.clone(),
                    Some(lw) => DVector::from_fn(m, |i, _| lw[i] * w[i]),
                };
                (combine_f32(&b.jacobian, &v), Some(w), Some(v))
            }
            None => {
                let mut weighted = b.jacobian.clone();
                if let Some(lw) = &loss_weights {
                    for (i, &wi) in lw.iter().enumerate() {
                        weighted.row_mut(i).iter_mut().for_each(|v| *v *= wi as f32);
                    }
                }
                let a = self.aggregator.aggregate_f32_with_losses(&weighted, &losses);
                (a.update, a.weights, None)
            }
        };
        if !all_finite_f32(&d) {
            return Err(self.fail("the aggregator's update is not finite".into()));
        }
        let mut full = Vec::with_capacity(self.params.len());
        full.extend(d.iter().map(|&v| v as f64));
        for t in 0..m {
            let wt = loss_weights.as_ref().map_or(1.0, |w| w[t]);
            full.extend(b.head_block(t).iter().map(|&g| g as f64 * wt));
        }
        let metrics = plan.record.then(|| match &coefficients {
            Some(v) => {
                let layers: Option<Vec<(Range<usize>, DMatrix<f64>)>> = self
                    .metric_layers()
                    .map(|ranges| ranges.iter().cloned().zip(b.layer_grams.iter().cloned()).collect());
                StepMetrics::from_gram(&b.gram, v, layers.as_deref())
            }
            None => {
                let d64 = DVector::from_iterator(d.len(), d.iter().map(|&v| v as f64));
                StepMetrics::new(&b.jacobian.to_f64(), &d64, self.metric_layers())
            }
        });
        let aggregator_weights = aggregator_weights.map(|w| w.as_slice().to_vec());
        Ok(Update {
            losses,
            loss_weights,
            aggregator_weights,
            full,
            metrics,
            test_losses,
            moe: None,
            jacobian: None,
            sample_stage: None,
            task: None,
            sam_cosine: None,
        })
    }

    /// Whether this step records sample-level conflict: a recorded step of an MLP run that asks
    /// for it (`TrainConfig::sample_metrics`), on the cadence of [`sample_stride`] (and the last
    /// step).
    fn wants_samples(&self, plan: &StepPlan) -> bool {
        plan.record
            && self.config.sample_metrics
            && self.mlp().is_some()
            && (self.step.is_multiple_of(sample_stride(&self.config)) || self.step + 1 == self.config.steps)
    }

    /// The step's [`SampleConflict`] at the parameters it starts from (still `self.params`), on
    /// its batch: the reference path's `batch`, or the fast path's `rows` of the train set (`None`
    /// = all of it). `jacobian`: the reference step's f64 J, reused; the fast path's J is f32, so
    /// it is computed again in f64. `None` when the step does not record it, and when it cannot
    /// be computed (a diagnostic never stops a run whose step went through).
    fn sample_conflict(
        &self,
        plan: &StepPlan,
        batch: Option<&(DMatrix<f64>, Vec<Target>)>,
        rows: Option<&[usize]>,
        jacobian: Option<&DMatrix<f64>>,
    ) -> Option<SampleConflict> {
        if !self.wants_samples(plan) {
            return None;
        }
        let (mlp, Engine::Mlp { train_x, train_y, .. }) = (self.mlp()?, &self.engine) else { return None };
        let picked;
        let (x, y) = match (batch, rows) {
            (Some((x, y)), _) => (x, y.as_slice()),
            (None, Some(idx)) => {
                picked = (select_rows(train_x, idx), select_targets(train_y, idx));
                (&picked.0, picked.1.as_slice())
            }
            (None, None) => (train_x, train_y.as_slice()),
        };
        SampleConflict::of_batch(mlp, &self.params, x, y, jacobian).ok()
    }

    /// The trunk layers' column ranges when the run records per-layer metrics.
    fn metric_layers(&self) -> Option<&[Range<usize>]> {
        (self.config.layer_metrics && !self.layer_ranges.is_empty()).then_some(self.layer_ranges.as_slice())
    }

    /// The step's end: the new parameters, FAMO's update from the losses after the step, the
    /// record. Returns whether the step was recorded.
    fn complete_step(
        &mut self,
        plan: StepPlan,
        a: Applied,
        after: Option<Result<Vec<f64>, String>>,
    ) -> Result<bool, String> {
        self.spare = std::mem::replace(&mut self.params, a.next);
        if let (Some(after), Some(w)) = (after, self.weighting.as_mut()) {
            match after {
                Ok(l) if all_finite(&l) => w.after_step(&l),
                Ok(l) => return Err(self.fail(format!("a task loss after the step is not finite ({l:?})"))),
                Err(e) => return Err(self.fail(e)),
            }
        }
        if plan.full_batch {
            // Full batch: one step is one epoch.
            self.epoch += 1;
        }
        // Metrics exist exactly on recorded steps.
        let Some(metrics) = a.metrics else {
            self.step += 1;
            return Ok(false);
        };
        self.history.push(StepRecord {
            step: plan.step,
            losses: a.losses,
            loss_weights: a.loss_weights,
            aggregator_weights: a.aggregator_weights,
            metrics,
            test_losses: a.test_losses,
            moe: a.moe,
            samples: a.samples,
            sample_stage: a.sample_stage,
            dynamics: a.dynamics,
        });
        self.step += 1;
        Ok(true)
    }

    /// Steps until done (or an error), calling `progress(steps_done)` after each.
    pub fn run_to_end(&mut self, mut progress: impl FnMut(usize)) {
        while !self.is_done() {
            if self.step().is_err() {
                break;
            }
            progress(self.step);
        }
    }

    /// The record of the run so far (final losses at the current parameters).
    pub fn record(&self) -> RunRecord {
        let final_train_losses = self.train_losses().unwrap_or_default();
        let final_test_losses = self.test_losses().and_then(|r| r.ok());
        RunRecord {
            config: self.config.clone(),
            task_names: self.task_names.clone(),
            steps_done: self.step,
            params: self.params.clone(),
            history: self.history.to_vec(),
            final_train_losses,
            final_test_losses,
            error: self.error.clone(),
        }
    }
}

/// At most about this many steps of a run record sample-level conflict: each costs m (f64
/// path) or 2m (f32 path) extra f64 backward passes, several times a fast step, so a series of
/// this length shows the trend for a bounded share of the run's time.
pub const SAMPLE_POINTS: usize = 100;

/// Steps between two records of sample-level conflict: a multiple of `record_every` (so they
/// fall on recorded steps), about `steps / SAMPLE_POINTS`, at least `record_every`.
pub fn sample_stride(config: &TrainConfig) -> usize {
    let every = config.record_every.max(1);
    let records = config.steps.div_ceil(every);
    every * records.div_ceil(SAMPLE_POINTS).max(1)
}

/// Runs `config` to the end. `Err` only for an invalid config; a run that diverges returns its
/// record with `error` set.
pub fn train(config: &TrainConfig) -> Result<RunRecord, String> {
    train_with_progress(config, |_| {})
}

/// `train`, calling `progress(steps_done)` after every step.
pub fn train_with_progress(config: &TrainConfig, progress: impl FnMut(usize)) -> Result<RunRecord, String> {
    let mut trainer = Trainer::new(config.clone())?;
    trainer.run_to_end(progress);
    Ok(trainer.record())
}
