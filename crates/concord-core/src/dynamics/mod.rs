//! How a run steps through its objectives, beyond the aggregator: the sharpness-aware wrapper
//! (SAM, ASAM), gradient-norm clipping, learning-rate warm-up and cosine decay, and the task
//! schedule (every task at once, one task per step in turn or drawn at random, or one task after
//! another). SPAM, the spike-aware Adam, is an optimizer (`TrainOptimizer::Spam`, `optim::spam`).
//!
//! Formulas and test values: `shared/reference/dynamics.md` §1–4. Every piece is off by
//! default, and a config without a `dynamics` section reads and prints as before.
//!
//! Order inside one step (the trainer, `train::Trainer`):
//! 1. the task schedule picks the tasks this step trains (all of them for `joint`);
//! 2. J at w → loss weighting → aggregator → the full direction d₀ (shared part, heads);
//! 3. SAM: ε = ρ·d₀/‖d₀‖ (ASAM: ρ·T²d₀/‖T d₀‖), J at w + ε on the same batch → the same loss
//!    weights → aggregator → d. The ascent step follows the *aggregated* direction (the shared
//!    variant of dynamics.md §1), so SAM composes with every aggregator;
//! 4. clipping scales d to at most `clip_norm` (torch's `clip_grad_norm_`, after aggregation);
//! 5. the optimizer steps at w with the scheduled learning rate lr·f(s).

mod sam;
mod schedule;
mod stability;
mod text;

pub use sam::{asam_perturbation, cosine, sam_perturbation, ASAM_ETA};
pub use schedule::{clip_by_norm, lr_factor, task_for_step, CLIP_EPS};
pub use stability::{StabilityGap, WindowedStability};
pub use text::{apply_items, items_text, split_run_text, RunOptions, RunSpec};

use serde::{Deserialize, Serialize};

/// The sharpness-aware wrapper around the run's optimizer (which steps at w with the gradient
/// taken at w + ε).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamSpec {
    /// The neighbourhood radius ρ (SAM's 0.05, ASAM's 0.5 by default).
    pub rho: f64,
    /// ASAM (Kwon et al. 2021): the neighbourhood is scaled by T_w = |w| + η on weight
    /// matrices (biases: T = 1), so ε = ρ·T²g/‖Tg‖.
    #[serde(default)]
    pub adaptive: bool,
}

impl SamSpec {
    /// Foret et al.'s default radius.
    pub const SAM_RHO: f64 = 0.05;
    /// Kwon et al.'s class default (and the README's CIFAR-10 setting).
    pub const ASAM_RHO: f64 = 0.5;

    pub fn sam(rho: f64) -> Self {
        SamSpec { rho, adaptive: false }
    }

    pub fn asam(rho: f64) -> Self {
        SamSpec { rho, adaptive: true }
    }

    pub fn name(&self) -> &'static str {
        if self.adaptive {
            "asam"
        } else {
            "sam"
        }
    }
}

/// The learning rate's shape after the warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "kebab-case")]
pub enum LrSchedule {
    /// lr itself after the warm-up.
    #[default]
    Constant,
    /// Half a cosine from lr down to lr·min_ratio at the run's last step (SPAM/GaLore use
    /// min_ratio 0.1; transformers' `get_cosine_schedule_with_warmup` uses 0).
    Cosine {
        #[serde(default)]
        min_ratio: f64,
        /// The decay's length T in steps (`None`: the run's `steps`; the page's runs have no
        /// end, so it names one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        over: Option<usize>,
    },
}

impl LrSchedule {
    pub fn name(&self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine { .. } => "cosine",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "constant" => Ok(LrSchedule::Constant),
            "cosine" => Ok(LrSchedule::Cosine { min_ratio: 0.0, over: None }),
            other => Err(format!("unknown learning-rate schedule '{other}' (expected constant or cosine)")),
        }
    }
}

/// Which tasks a step trains.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TaskSchedule {
    /// Every task every step: J → (weighting) → aggregator.
    #[default]
    Joint,
    /// One task per step, in turn (IMP's executor): each pass over the tasks visits task t when
    /// the pass counter is a multiple of `intervals[t]` (all 1, the default: round robin).
    Alternating {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        intervals: Option<Vec<usize>>,
    },
    /// One task per step, drawn i.i.d. from `weights` (uniform by default), seeded by the run's
    /// seed and the step, so a run reproduces and a restored run draws the same tasks.
    Sample {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weights: Option<Vec<f64>>,
    },
    /// Task 1 for `switch_every` steps, then task 2, …; the last task to the end (the
    /// continual-learning setting of the stability-gap paper).
    Sequential { switch_every: usize },
}

impl TaskSchedule {
    pub fn name(&self) -> &'static str {
        match self {
            TaskSchedule::Joint => "joint",
            TaskSchedule::Alternating { .. } => "alternating",
            TaskSchedule::Sample { .. } => "sample",
            TaskSchedule::Sequential { .. } => "sequential",
        }
    }

    pub fn is_joint(&self) -> bool {
        matches!(self, TaskSchedule::Joint)
    }

    /// `joint`, `alternating`, `sample`, or `sequential` with `switch_every` (required there,
    /// refused elsewhere).
    pub fn parse(text: &str, switch_every: Option<usize>) -> Result<Self, String> {
        let schedule = match text.trim() {
            "joint" => TaskSchedule::Joint,
            "alternating" => TaskSchedule::Alternating { intervals: None },
            "sample" => TaskSchedule::Sample { weights: None },
            "sequential" => {
                let Some(n) = switch_every else {
                    return Err("the sequential schedule needs switch_every (steps per task)".into());
                };
                TaskSchedule::Sequential { switch_every: n }
            }
            other => {
                return Err(format!(
                    "unknown task schedule '{other}' (expected joint, alternating, sample or sequential)"
                ))
            }
        };
        if switch_every.is_some() && !matches!(schedule, TaskSchedule::Sequential { .. }) {
            return Err(format!("switch_every is for the sequential schedule, not '{}'", schedule.name()));
        }
        Ok(schedule)
    }

    /// The steps at which a sequential schedule moves to the next task (none otherwise).
    pub fn switches(&self, num_tasks: usize, steps: usize) -> Vec<usize> {
        match self {
            TaskSchedule::Sequential { switch_every } if *switch_every > 0 => {
                (1..num_tasks).map(|t| t * switch_every).filter(|&s| s < steps).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Everything of this module a run uses; the default changes nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dynamics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sam: Option<SamSpec>,
    /// Scale the update d to norm at most this (after aggregation; `None`: no clipping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
    /// Linear warm-up over this many steps (the first update gets lr·0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup: usize,
    #[serde(default, skip_serializing_if = "is_constant")]
    pub lr_schedule: LrSchedule,
    #[serde(default, skip_serializing_if = "TaskSchedule::is_joint")]
    pub schedule: TaskSchedule,
    /// Record the Adam family's spike score max |g|/√v every step (SPAM always does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spikes: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_constant(s: &LrSchedule) -> bool {
    matches!(s, LrSchedule::Constant)
}

/// Longest interval of an alternating schedule (its cycle is their least common multiple).
pub const MAX_INTERVAL: usize = 16;

impl Dynamics {
    pub fn is_default(&self) -> bool {
        *self == Dynamics::default()
    }

    /// The cosine's length T for a run of `steps`.
    pub fn schedule_steps(&self, steps: usize) -> usize {
        match self.lr_schedule {
            LrSchedule::Cosine { over: Some(t), .. } => t,
            _ => steps,
        }
    }

    /// Whether the step must run on the f64 reference (SAM's second gradient and a one-task
    /// step are reference-path code; clipping and schedules work on both paths).
    pub fn needs_reference(&self) -> bool {
        self.sam.is_some() || !self.schedule.is_joint()
    }

    /// Checks against the run's number of tasks and steps.
    pub fn validate(&self, num_tasks: Option<usize>, steps: usize) -> Result<(), String> {
        if let Some(sam) = &self.sam {
            if !(sam.rho.is_finite() && sam.rho > 0.0) {
                return Err(format!("{}'s rho must be a positive finite number, got {}", sam.name(), sam.rho));
            }
        }
        if let Some(c) = self.clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(format!("clip_norm must be a positive finite number, got {c}"));
            }
        }
        if self.warmup > steps {
            return Err(format!("the warm-up ({} steps) is longer than the run ({steps} steps)", self.warmup));
        }
        if let LrSchedule::Cosine { min_ratio, over } = self.lr_schedule {
            if !(0.0..=1.0).contains(&min_ratio) {
                return Err(format!("the cosine schedule's min_ratio must lie in [0, 1], got {min_ratio}"));
            }
            if over == Some(0) {
                return Err("the cosine schedule's length must be at least 1 step".into());
            }
        }
        match &self.schedule {
            TaskSchedule::Joint => {}
            TaskSchedule::Sequential { switch_every } => {
                if *switch_every == 0 {
                    return Err("the sequential schedule's switch_every must be at least 1".into());
                }
            }
            TaskSchedule::Alternating { intervals: Some(iv) } => {
                if num_tasks.is_some_and(|m| iv.len() != m) {
                    return Err(format!(
                        "alternating intervals: one per task ({} tasks), got {}",
                        num_tasks.unwrap_or(0),
                        iv.len()
                    ));
                }
                if iv.iter().any(|&i| i == 0 || i > MAX_INTERVAL) {
                    return Err(format!("alternating intervals must be 1–{MAX_INTERVAL}, got {iv:?}"));
                }
            }
            TaskSchedule::Sample { weights: Some(w) } => {
                if num_tasks.is_some_and(|m| w.len() != m) {
                    return Err(format!(
                        "sample weights: one per task ({} tasks), got {}",
                        num_tasks.unwrap_or(0),
                        w.len()
                    ));
                }
                if !w.iter().all(|v| v.is_finite() && *v >= 0.0) || !(w.iter().sum::<f64>() > 0.0) {
                    return Err(format!("sample weights must be finite, ≥ 0 and not all 0, got {w:?}"));
                }
            }
            TaskSchedule::Alternating { intervals: None } | TaskSchedule::Sample { weights: None } => {}
        }
        Ok(())
    }

    /// A short label for legends: "SAM ρ=0.05 · clip 1 · warm-up 10 · cosine · sequential/100".
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.sam {
            parts.push(format!("{} ρ={}", s.name().to_uppercase(), s.rho));
        }
        if let Some(c) = self.clip_norm {
            parts.push(format!("clip {c}"));
        }
        if self.warmup > 0 {
            parts.push(format!("warm-up {}", self.warmup));
        }
        if let LrSchedule::Cosine { .. } = self.lr_schedule {
            parts.push("cosine".into());
        }
        match &self.schedule {
            TaskSchedule::Joint => {}
            TaskSchedule::Sequential { switch_every } => parts.push(format!("sequential/{switch_every}")),
            s => parts.push(s.name().into()),
        }
        parts.join(" · ")
    }
}

/// What the dynamics did on one step (runs with a non-default `Dynamics` or a SPAM/Adam
/// optimizer; absent otherwise and in older files).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DynamicsRecord {
    /// The learning rate the optimizer used (after warm-up/schedule).
    pub lr: f64,
    /// ‖d‖₂ of the full update before clipping (the L1/L2 penalty's gradient, added after the
    /// clip, not included).
    pub grad_norm: f64,
    /// Whether clipping scaled the update down.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clipped: bool,
    /// The one task a non-joint schedule trained on this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<usize>,
    /// SAM: cos(d₀, d) between the plain and the sharpness-aware update — GAQAT's conflict
    /// between the task gradient and the SAM gradient, as a metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sam_cosine: Option<f64>,
    /// Adam-family optimizers: max over coordinates of |g|/√v̂, v̂ the bias-corrected second
    /// moment before this step's update (coordinates with v = 0 skipped; none in the first 20 updates
    /// of v, as SPAM's clip). SPAM's own clip compares g² with θ·v on the raw v.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spike_score: Option<f64>,
    /// SPAM: how many coordinates its spike clip changed on this step.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spikes_clipped: usize,
    /// SPAM: whether the moments were reset on this step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
}
