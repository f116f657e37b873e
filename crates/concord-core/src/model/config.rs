//! The multi-task MLP's user-facing configuration and its validation.

use super::activation::Activation;
use super::loss::LossKind;
use serde::{Deserialize, Serialize};

pub const MAX_HIDDEN_LAYERS: usize = 6;
pub const MAX_WIDTH: usize = 256;
pub const MIN_TASKS: usize = 2;
pub const MAX_TASKS: usize = 8;
/// Generous bounds on input and head widths (GradNorm's synthetic task needs 250 in, 100 out).
pub const MAX_INPUT_DIM: usize = 1024;
pub const MAX_OUTPUT_DIM: usize = 256;

/// One task's head: a linear layer from the trunk's output to `out_dim` outputs, and its loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadConfig {
    pub out_dim: usize,
    pub loss: LossKind,
}

/// Shared trunk (`hidden` widths, one activation) plus one head per task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    pub input_dim: usize,
    /// Hidden layer widths, 0–6 layers of width 1–256. Empty: the heads read the input directly.
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub heads: Vec<HeadConfig>,
    /// All heads start from the same draw (they must have equal widths), so at initialisation the
    /// task gradients differ only through the labels: the data's conflict knob then sets the
    /// initial cosine on its own. Off: each head draws its own weights.
    #[serde(default)]
    pub tied_head_init: bool,
    /// Multiplies the heads' initial weights (default 1.0: plain Glorot). A small value (e.g. 0.1)
    /// starts every head output near 0, so the BCE gradient's σ(o) − ½ part is ≈ 0 and a task whose
    /// labels the conflict knob flips gets a shared gradient ≈ −(the other task's): with plain
    /// Glorot heads two fully opposed label sets only reach an initial cosine of ≈ −0.48.
    #[serde(default = "default_head_init_scale")]
    pub head_init_scale: f64,
}

fn default_head_init_scale() -> f64 {
    1.0
}

impl MlpConfig {
    /// Playground-style defaults: 2-D input, the given hidden widths, tanh, one BCE logit per task.
    pub fn playground(hidden: Vec<usize>, tasks: usize) -> Self {
        MlpConfig {
            input_dim: 2,
            hidden,
            activation: Activation::Tanh,
            heads: vec![HeadConfig { out_dim: 1, loss: LossKind::Bce }; tasks],
            tied_head_init: false,
            head_init_scale: 1.0,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_INPUT_DIM).contains(&self.input_dim) {
            return Err(format!("input_dim must be 1–{MAX_INPUT_DIM}, got {}", self.input_dim));
        }
        if self.hidden.len() > MAX_HIDDEN_LAYERS {
            return Err(format!("at most {MAX_HIDDEN_LAYERS} hidden layers, got {}", self.hidden.len()));
        }
        for (l, &w) in self.hidden.iter().enumerate() {
            if !(1..=MAX_WIDTH).contains(&w) {
                return Err(format!("hidden layer {l} must have width 1–{MAX_WIDTH}, got {w}"));
            }
        }
        validate_heads(&self.heads, self.head_init_scale, self.tied_head_init)
    }
}

/// The head checks an MLP and an MoE model share: task count, outputs per head, softmax classes,
/// head init scale, tied init.
pub(crate) fn validate_heads(heads: &[HeadConfig], head_init_scale: f64, tied_head_init: bool) -> Result<(), String> {
    if !(MIN_TASKS..=MAX_TASKS).contains(&heads.len()) {
        return Err(format!("need {MIN_TASKS}–{MAX_TASKS} tasks (heads), got {}", heads.len()));
    }
    for (t, h) in heads.iter().enumerate() {
        if !(1..=MAX_OUTPUT_DIM).contains(&h.out_dim) {
            return Err(format!("head {t} must have 1–{MAX_OUTPUT_DIM} outputs, got {}", h.out_dim));
        }
        if h.loss == LossKind::SoftmaxCe && h.out_dim < 2 {
            return Err(format!("head {t}: softmax cross-entropy needs at least 2 classes, got {}", h.out_dim));
        }
    }
    if !(head_init_scale.is_finite() && head_init_scale > 0.0) {
        return Err(format!("head_init_scale must be a positive finite number, got {head_init_scale}"));
    }
    if tied_head_init && heads.iter().any(|h| h.out_dim != heads[0].out_dim) {
        return Err("tied_head_init needs every head to have the same out_dim".into());
    }
    Ok(())
}
