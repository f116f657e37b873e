//! What a multi-task run is made of: the data source, the model, the optimizer, the aggregator
//! and the optional loss weighting, serialisable and validated with messages a user can act on.

use super::moe_spec::MoeSpec;
use super::trunk::{Init, Regularization};
use crate::data::{FeatureSet, GradNormConfig, MultiTaskData, SinusoidConfig, TaskSetConfig};
use crate::dynamics::Dynamics;
use crate::method::MethodSpec;
use crate::model::MlpConfig;
use crate::optim::{OptimizerKind, SpamParams};
use crate::problems::ProblemKind;
use serde::{Deserialize, Serialize};

/// Where the training (and test) points come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum DataSource {
    /// TF-Playground tasks on shared 2-D inputs (with the conflict knob); the config's own split.
    TaskSet { config: TaskSetConfig },
    /// GradNorm's synthetic regression: fixed train and test sets drawn from the problem's
    /// seed (train from stream `seed + 1`, test from `seed + 2`).
    GradNorm { config: GradNormConfig, n_train: usize, n_test: usize },
    /// Sinusoid regression: the first ⌊n·train_ratio⌋ points train, the rest test (x is i.i.d.).
    Sinusoid { config: SinusoidConfig, train_ratio: f64 },
    /// Points the caller parsed (`data::parse_csv`) and split (`shuffle_and_split`); an empty
    /// test split is allowed (no test losses then).
    Points { data: MultiTaskData },
    /// The analytic Pareto-MTL problem over x ∈ ℝⁿ: no model, no data; the parameter vector is x
    /// itself (x₀ ~ U(−0.5, 0.5)ⁿ from the run's seed), trained with the same aggregator /
    /// weighting / optimizer machinery on the exact 2 × n Jacobian. No test losses.
    ParetoSynthetic { n: usize },
    /// One of CAGrad's two-objective toys: the parameters are the point x ∈ ℝ² itself, starting
    /// at `start`; no model, no data, no test losses.
    Toy { problem: ProblemKind, start: [f64; 2] },
}

impl DataSource {
    pub fn kind(&self) -> &'static str {
        match self {
            DataSource::TaskSet { .. } => "task-set",
            DataSource::GradNorm { .. } => "grad-norm",
            DataSource::Sinusoid { .. } => "sinusoid",
            DataSource::Points { .. } => "points",
            DataSource::ParetoSynthetic { .. } => "pareto-synthetic",
            DataSource::Toy { .. } => "toy",
        }
    }

    /// The analytic sources (pareto-synthetic, the CAGrad toys) train x directly: no model.
    pub fn is_analytic(&self) -> bool {
        matches!(self, DataSource::ParetoSynthetic { .. } | DataSource::Toy { .. })
    }
}

/// The optimizer of a multi-task run. `AdamW` is Adam with decoupled weight decay.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "optimizer", rename_all = "kebab-case")]
pub enum TrainOptimizer {
    Sgd {
        lr: f64,
        momentum: f64,
    },
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    #[serde(rename = "adamw")]
    AdamW {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
    /// SPAM (spike-aware Adam with momentum reset, `optim::spam`).
    Spam(SpamParams),
}

impl TrainOptimizer {
    pub fn adam(lr: f64) -> Self {
        TrainOptimizer::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    /// torch.optim.AdamW defaults (weight_decay 0.01).
    pub fn adamw(lr: f64) -> Self {
        TrainOptimizer::AdamW { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }

    /// SPAM with the official defaults (θ = 5000, ΔT = 500, N = 150, eps 1e-6).
    pub fn spam(lr: f64) -> Self {
        TrainOptimizer::Spam(SpamParams::new(lr))
    }

    pub fn sgd(lr: f64, momentum: f64) -> Self {
        TrainOptimizer::Sgd { lr, momentum }
    }

    pub fn name(&self) -> &'static str {
        match self {
            TrainOptimizer::Sgd { .. } => "sgd",
            TrainOptimizer::Adam { .. } => "adam",
            TrainOptimizer::AdamW { .. } => "adamw",
            TrainOptimizer::Spam(_) => "spam",
        }
    }

    pub fn lr(&self) -> f64 {
        match *self {
            TrainOptimizer::Sgd { lr, .. } | TrainOptimizer::Adam { lr, .. } | TrainOptimizer::AdamW { lr, .. } => lr,
            TrainOptimizer::Spam(p) => p.lr,
        }
    }

    pub fn with_lr(self, lr: f64) -> Self {
        match self {
            TrainOptimizer::Sgd { momentum, .. } => TrainOptimizer::Sgd { lr, momentum },
            TrainOptimizer::Adam { beta1, beta2, eps, .. } => TrainOptimizer::Adam { lr, beta1, beta2, eps },
            TrainOptimizer::AdamW { beta1, beta2, eps, weight_decay, .. } => {
                TrainOptimizer::AdamW { lr, beta1, beta2, eps, weight_decay }
            }
            TrainOptimizer::Spam(p) => TrainOptimizer::Spam(SpamParams { lr, ..p }),
        }
    }

    /// A fresh optimizer over `dim` parameters (moments at zero).
    pub fn build(&self, dim: usize) -> crate::optim::Optimizer {
        let (kind, wd) = self.split();
        kind.build(dim).with_weight_decay(wd)
    }

    /// The core optimizer kind and the decoupled weight decay.
    pub(crate) fn split(&self) -> (OptimizerKind, f64) {
        match *self {
            TrainOptimizer::Sgd { lr, momentum } => (OptimizerKind::Sgd { lr, momentum }, 0.0),
            TrainOptimizer::Adam { lr, beta1, beta2, eps } => (OptimizerKind::Adam { lr, beta1, beta2, eps }, 0.0),
            TrainOptimizer::AdamW { lr, beta1, beta2, eps, weight_decay } => {
                (OptimizerKind::Adam { lr, beta1, beta2, eps }, weight_decay)
            }
            TrainOptimizer::Spam(p) => (OptimizerKind::Spam(p), 0.0),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let lr = self.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("the learning rate must be a positive finite number, got {lr}"));
        }
        match *self {
            TrainOptimizer::Sgd { momentum, .. } => {
                if !(0.0..1.0).contains(&momentum) {
                    return Err(format!("SGD momentum must lie in [0, 1), got {momentum}"));
                }
            }
            TrainOptimizer::Adam { beta1, beta2, eps, .. } | TrainOptimizer::AdamW { beta1, beta2, eps, .. } => {
                if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
                    return Err(format!("Adam betas must lie in [0, 1), got ({beta1}, {beta2})"));
                }
                if !(eps.is_finite() && eps > 0.0) {
                    return Err(format!("Adam eps must be a positive finite number, got {eps}"));
                }
            }
            TrainOptimizer::Spam(p) => p.validate()?,
        }
        if let TrainOptimizer::AdamW { weight_decay, .. } = *self {
            if !(weight_decay.is_finite() && weight_decay >= 0.0) {
                return Err(format!("weight_decay must be a finite number ≥ 0, got {weight_decay}"));
            }
        }
        Ok(())
    }
}

/// The arithmetic of a run's training step on the CPU.
///
/// `F32` is the fast path (`model::fast`): MLP models step in f32 with batched GEMMs and the
/// Gramian built layer by layer; everything else about the step (loss weighting, the
/// aggregator's weights, the optimizer, the parameters kept between steps) stays f64. `F64` is
/// the reference every kernel and golden test is checked against. MoE models and the analytic
/// problems have no f32 path: they always run the reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    F64,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "f32" => Ok(Precision::F32),
            "f64" => Ok(Precision::F64),
            other => Err(format!("unknown precision '{other}' (expected f32, the fast path, or f64, the reference)")),
        }
    }
}

/// A multi-task run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TrainConfigFile")]
pub struct TrainConfig {
    pub data: DataSource,
    /// The model (its heads carry each task's loss). Required for every source except the
    /// analytic ones (pareto-synthetic, the toys), which must leave it out.
    #[serde(default)]
    pub model: Option<MlpConfig>,
    /// The model choice: `None` trains the MLP `model`; `Some` puts an MoE block on top of its
    /// trunk (`MoeSpec::model_config`).
    #[serde(default)]
    pub moe: Option<MoeSpec>,
    pub optimizer: TrainOptimizer,
    /// Mini-batch size; `None` = full batch. Mini-batches walk a fresh shuffle of the train set
    /// every epoch and drop the last incomplete batch (`drop_last`).
    #[serde(default)]
    pub batch_size: Option<usize>,
    pub steps: usize,
    /// Seeds the model init (or x₀), the batch order, and the aggregator / weighting streams.
    pub seed: u64,
    /// The aggregator and the optional loss weighting, parsed and validated.
    pub method: MethodSpec,
    /// Test losses every `eval_every` steps (and after the last step).
    pub eval_every: usize,
    /// Per-layer metrics (one m × m cosine matrix per trunk layer) in every step record.
    #[serde(default)]
    pub layer_metrics: bool,
    /// Keep a step record every this many steps (1: every step). Long analytic runs (the toys'
    /// 100 000 steps) keep every 100th; the steps in between cost no metrics.
    #[serde(default = "one")]
    pub record_every: usize,
    /// f32 (the fast path, default) or f64 (the reference); see [`Precision`].
    #[serde(default)]
    pub precision: Precision,
    /// Sample-level conflict (`SampleConflict`: per-sample coherence α, the conflicting
    /// fraction, the opposing share) in the step records of an MLP run, about `SAMPLE_POINTS`
    /// of them per run (every `sample_stride`-th step and the last), at m + (f32 path) m extra
    /// f64 backward passes each. Off by default, and then not written, so configs and run files
    /// without it read and print as before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sample_metrics: bool,
    /// SAM/ASAM, clipping, warm-up and cosine schedules, the task schedule (`dynamics`). The
    /// default changes nothing and is not written.
    #[serde(default, skip_serializing_if = "Dynamics::is_default")]
    pub dynamics: Dynamics,
    /// TF Playground's input features of a 2-D point (task sets, CSV points): the model reads
    /// one column per feature, so `model.input_dim` must be their number. `None`: the raw point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<FeatureSet>,
    /// L1/L2 on the MLP's weights (`trunk.rs` says where it enters the step). `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regularization: Option<Regularization>,
    /// How the MLP's parameters start (every backend starts from the CPU trainer's vector).
    #[serde(default, skip_serializing_if = "Init::is_default")]
    pub init: Init,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn one() -> usize {
    1
}

/// What a config file may hold: today's `method`, or the first wave's `aggregator`,
/// `aggregator_params`, `weighting`, `weighting_params` (exported runs from before the one
/// engine), translated once here.
#[derive(Deserialize)]
struct TrainConfigFile {
    data: DataSource,
    #[serde(default)]
    model: Option<MlpConfig>,
    #[serde(default)]
    moe: Option<MoeSpec>,
    optimizer: TrainOptimizer,
    #[serde(default)]
    batch_size: Option<usize>,
    steps: usize,
    seed: u64,
    #[serde(default)]
    method: Option<MethodSpec>,
    #[serde(default)]
    aggregator: Option<String>,
    #[serde(default)]
    aggregator_params: Vec<(String, String)>,
    #[serde(default)]
    weighting: Option<String>,
    #[serde(default)]
    weighting_params: Vec<(String, String)>,
    eval_every: usize,
    #[serde(default)]
    layer_metrics: bool,
    #[serde(default = "one")]
    record_every: usize,
    #[serde(default)]
    precision: Precision,
    #[serde(default)]
    sample_metrics: bool,
    #[serde(default)]
    dynamics: Dynamics,
    #[serde(default)]
    features: Option<FeatureSet>,
    #[serde(default)]
    regularization: Option<Regularization>,
    #[serde(default)]
    init: Init,
}

impl TryFrom<TrainConfigFile> for TrainConfig {
    type Error = String;
    fn try_from(f: TrainConfigFile) -> Result<Self, String> {
        let method = match (f.method, f.aggregator) {
            (Some(_), Some(_)) => return Err("give either \"method\" or the older \"aggregator\", not both".into()),
            (Some(m), None) => {
                if f.weighting.is_some() || !f.aggregator_params.is_empty() || !f.weighting_params.is_empty() {
                    return Err("\"method\" holds the weighting and all parameters: leave out the older keys".into());
                }
                m
            }
            (None, Some(agg)) => {
                if f.weighting.is_none() && !f.weighting_params.is_empty() {
                    return Err("weighting parameters were given without a loss weighting".into());
                }
                let w = f.weighting.as_deref().map(|w| (w, f.weighting_params.as_slice()));
                MethodSpec::from_parts(&agg, &f.aggregator_params, w)?
            }
            (None, None) => return Err("a run needs a \"method\"".into()),
        };
        Ok(TrainConfig {
            data: f.data,
            model: f.model,
            moe: f.moe,
            optimizer: f.optimizer,
            batch_size: f.batch_size,
            steps: f.steps,
            seed: f.seed,
            method,
            eval_every: f.eval_every,
            layer_metrics: f.layer_metrics,
            record_every: f.record_every,
            precision: f.precision,
            sample_metrics: f.sample_metrics,
            dynamics: f.dynamics,
            features: f.features,
            regularization: f.regularization,
            init: f.init,
        })
    }
}

impl TrainConfig {
    /// What of this run the GPU trainer cannot do yet (a one-task schedule: it skips the
    /// aggregator): a message naming it, or `None`. SAM/ASAM, SPAM, clipping, the lr warm-up and
    /// cosine, the spike score and the L1/L2 penalty run on the GPU (`concord-gpu`'s
    /// `GpuTrainer`; its fused toy kernel has none of them and refuses on its own).
    pub fn gpu_unsupported_dynamics(&self) -> Option<String> {
        let unsupported = crate::dynamics::Dynamics { schedule: self.dynamics.schedule.clone(), ..Default::default() };
        (!unsupported.is_default()).then(|| {
            format!("the training dynamics '{}' has no GPU kernel yet; use the CPU backend", unsupported.label())
        })
    }
}

/// Longest run the trainer accepts.
pub const MAX_STEPS: usize = 10_000_000;

impl TrainConfig {
    /// Checks what can be checked without building the data (the trainer checks the model
    /// against the data when it builds them).
    pub fn validate(&self) -> Result<(), String> {
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(format!("steps must be 1–{MAX_STEPS}, got {}", self.steps));
        }
        if self.record_every == 0 {
            return Err("record_every must be at least 1".into());
        }
        if self.eval_every == 0 {
            return Err("eval_every must be at least 1".into());
        }
        if self.batch_size == Some(0) {
            return Err("batch_size must be at least 1 (or absent for full batch)".into());
        }
        self.optimizer.validate()?;
        // A deserialised method was not parsed: a loss-aware aggregator with a loss weighting.
        self.method.check_loss_aware()?;
        match (&self.data, &self.model) {
            (DataSource::ParetoSynthetic { n }, _) if *n == 0 || *n > 100_000 => {
                return Err(format!("the Pareto-MTL problem needs 1 ≤ n ≤ 100000, got {n}"));
            }
            (DataSource::Toy { start, .. }, _) if !start.iter().all(|v| v.is_finite()) => {
                return Err(format!("the toy's start must be two finite numbers, got {start:?}"));
            }
            (data, model) if data.is_analytic() => {
                let name = match data {
                    DataSource::Toy { problem, .. } => problem.name(),
                    _ => "pareto-synthetic",
                };
                if model.is_some() {
                    return Err(format!("{name} trains x directly: leave the model out"));
                }
                if self.batch_size.is_some() {
                    return Err(format!("{name} has no data to batch: leave batch_size out"));
                }
            }
            (_, None) => return Err(format!("the {} data source needs a model", self.data.kind())),
            (_, Some(model)) => match &self.moe {
                None => model.validate().map_err(|e| format!("model: {e}"))?,
                Some(spec) => spec.model_config(model).validate().map_err(|e| format!("moe model: {e}"))?,
            },
        }
        let tasks = match &self.data {
            DataSource::Toy { .. } | DataSource::ParetoSynthetic { .. } => Some(2),
            _ => self.model.as_ref().map(|m| m.heads.len()),
        };
        self.dynamics.validate(tasks, self.steps).map_err(|e| format!("dynamics: {e}"))?;
        if self.method.sample_weighting.is_some() && self.dynamics.needs_reference() {
            return Err("a sample-weighting stage cannot be combined with SAM or a one-task schedule yet \
                        (leave one of them out)"
                .into());
        }
        if !self.dynamics.schedule.is_joint() && self.method.weighting.is_some() {
            return Err(format!(
                "the {} schedule trains one task per step: a loss weighting has nothing to weigh \
                 (leave the '+{}' out of the method)",
                self.dynamics.schedule.name(),
                self.method.weighting.as_ref().map_or("", |w| w.name())
            ));
        }
        if self.moe.is_some() && self.data.is_analytic() {
            return Err(format!("{} has no model, so no MoE: leave moe out", self.data.kind()));
        }
        if let Some(w) = &self.method.sample_weighting {
            if self.data.is_analytic() || self.moe.is_some() {
                let what = if self.moe.is_some() { "an MoE model" } else { self.data.kind() };
                return Err(format!(
                    "sample weighting '{}' needs an MLP model trained on data points; {what} has none \
                     (leave the '+{}' out of the method)",
                    w.name(),
                    w.name()
                ));
            }
        }
        self.validate_trunk()?;
        match &self.data {
            DataSource::TaskSet { config } => config.validate().map_err(|e| format!("task set: {e}"))?,
            DataSource::GradNorm { config, n_train, n_test } => {
                config.validate().map_err(|e| format!("gradnorm data: {e}"))?;
                if *n_train == 0 || *n_test == 0 || n_train + n_test > 1_000_000 {
                    return Err(format!(
                        "gradnorm data needs n_train, n_test ≥ 1 (at most 10⁶ in all), got {n_train} and {n_test}"
                    ));
                }
            }
            DataSource::Sinusoid { config, train_ratio } => {
                config.validate().map_err(|e| format!("sinusoid data: {e}"))?;
                let n_train = (config.n as f64 * train_ratio).floor() as usize;
                if !(*train_ratio > 0.0 && *train_ratio <= 1.0) || n_train == 0 {
                    return Err(format!(
                        "sinusoid train_ratio {train_ratio} leaves no training point with n = {}",
                        config.n
                    ));
                }
            }
            DataSource::Points { data } => {
                if data.n_train == 0 || data.n_train > data.len() {
                    return Err(format!(
                        "the data has {} points of which {} train: need at least one",
                        data.len(),
                        data.n_train
                    ));
                }
                // Consistent columns, finite points, labels that fit their kinds (a run file's
                // data could have none of these; `targets` indexes by them).
                data.validate()?;
            }
            DataSource::ParetoSynthetic { .. } | DataSource::Toy { .. } => {}
        }
        Ok(())
    }

    /// Input features, regularisation and init need an MLP (features also 2-D points).
    fn validate_trunk(&self) -> Result<(), String> {
        let mlp = if self.data.is_analytic() || self.moe.is_some() { None } else { self.model.as_ref() };
        let what = if self.moe.is_some() { "an MoE model".to_string() } else { self.data.kind().to_string() };
        if let Some(f) = &self.features {
            if !matches!(self.data, DataSource::TaskSet { .. } | DataSource::Points { .. }) {
                return Err(format!(
                    "input features map 2-D points; {} has none (leave features out)",
                    self.data.kind()
                ));
            }
            let Some(model) = mlp else {
                return Err(format!("input features need an MLP model; {what} has none"));
            };
            if model.input_dim != f.len() {
                return Err(format!(
                    "the model reads {} inputs but {} input features are on (input_dim must be their number)",
                    model.input_dim,
                    f.len()
                ));
            }
        }
        if let Some(r) = &self.regularization {
            r.validate()?;
            if mlp.is_none() {
                return Err(format!("regularization needs an MLP model; {what} has none (leave it out)"));
            }
        }
        if !self.init.is_default() && mlp.is_none() {
            return Err(format!("the '{}' init needs an MLP model; {what} has none", self.init.name()));
        }
        Ok(())
    }
}
