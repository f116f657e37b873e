//! Per-task losses: value and gradient with respect to the head's raw output (logits).
//!
//! Every loss is the mean over the batch of a per-sample loss; MSE and BCE also average over the
//! output's components, as PyTorch's `reduction="mean"` does, so values match `torch.nn`.

use super::activation::sigmoid;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// A task's loss on its head output o (B × k).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// mean (o − y)² over batch and components (`nn.MSELoss`).
    Mse,
    /// Binary cross-entropy on logits, targets in [0, 1] (`nn.BCEWithLogitsLoss`).
    Bce,
    /// Softmax cross-entropy, integer class labels in 0..k (`nn.CrossEntropyLoss`); k ≥ 2.
    SoftmaxCe,
}

impl LossKind {
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Mse => "mse",
            LossKind::Bce => "bce",
            LossKind::SoftmaxCe => "softmax-ce",
        }
    }
}

/// A task's targets for a batch: values (B × k, for MSE and BCE) or class indices (length B).
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Values(DMatrix<f64>),
    Classes(Vec<usize>),
}

impl Target {
    pub fn len(&self) -> usize {
        match self {
            Target::Values(v) => v.nrows(),
            Target::Classes(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Check that `target` fits a head of width `k` with loss `loss` on a batch of `batch` rows.
pub fn check_target(task: usize, loss: LossKind, k: usize, batch: usize, target: &Target) -> Result<(), String> {
    if target.len() != batch {
        return Err(format!("task {task}: {} targets for a batch of {batch} inputs", target.len()));
    }
    match (loss, target) {
        (LossKind::Mse | LossKind::Bce, Target::Values(v)) => {
            if v.ncols() != k {
                return Err(format!("task {task}: targets have {} columns, the head has {k} outputs", v.ncols()));
            }
            for (idx, &y) in v.iter().enumerate() {
                let row = idx % v.nrows();
                if !y.is_finite() {
                    return Err(format!("task {task}: target in row {row} is not finite ({y})"));
                }
                if loss == LossKind::Bce && !(0.0..=1.0).contains(&y) {
                    return Err(format!("task {task}: BCE target in row {row} must lie in [0, 1], got {y}"));
                }
            }
            Ok(())
        }
        (LossKind::SoftmaxCe, Target::Classes(c)) => match c.iter().position(|&l| l >= k) {
            Some(row) => Err(format!("task {task}: class label {} in row {row} is out of range 0..{k}", c[row])),
            None => Ok(()),
        },
        (LossKind::SoftmaxCe, Target::Values(_)) => {
            Err(format!("task {task}: softmax cross-entropy needs class labels, got values"))
        }
        (_, Target::Classes(_)) => Err(format!("task {task}: {} needs target values, got class labels", loss.name())),
    }
}

/// log(1 + eˣ) without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The mean loss over the batch and dL/do (B × k, already divided by B). Targets must have
/// passed `check_target`.
pub fn loss_and_grad(loss: LossKind, out: &DMatrix<f64>, target: &Target) -> (f64, DMatrix<f64>) {
    let (b, k) = out.shape();
    let inv_b = 1.0 / b as f64;
    let mut grad = DMatrix::zeros(b, k);
    let mut total = 0.0;
    match (loss, target) {
        (LossKind::Mse, Target::Values(y)) => {
            let scale = inv_b / k as f64;
            for r in 0..b {
                for c in 0..k {
                    let e = out[(r, c)] - y[(r, c)];
                    total += e * e * scale;
                    grad[(r, c)] = 2.0 * e * scale;
                }
            }
        }
        (LossKind::Bce, Target::Values(y)) => {
            let scale = inv_b / k as f64;
            for r in 0..b {
                for c in 0..k {
                    let (o, t) = (out[(r, c)], y[(r, c)]);
                    total += (softplus(o) - t * o) * scale;
                    grad[(r, c)] = (sigmoid(o) - t) * scale;
                }
            }
        }
        (LossKind::SoftmaxCe, Target::Classes(labels)) => {
            for r in 0..b {
                let max = (0..k).map(|c| out[(r, c)]).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..k).map(|c| (out[(r, c)] - max).exp()).sum();
                let lse = max + sum.ln();
                total += (lse - out[(r, labels[r])]) * inv_b;
                for c in 0..k {
                    let p = (out[(r, c)] - lse).exp();
                    grad[(r, c)] = (p - if c == labels[r] { 1.0 } else { 0.0 }) * inv_b;
                }
            }
        }
        _ => unreachable!("targets are checked by check_target before use"),
    }
    (total, grad)
}
