//! Loss-level scalarisations ("loss weightings"), LibMTL semantics and defaults
//! (`shared/reference/aggregators.md` §8).
//!
//! A loss weighting turns the m task losses L_i into one scalar L_total(L_1, …, L_m). The
//! gradient of L_total wrt the shared parameters is Σ_i (∂L_total/∂L_i)·g_i = Jᵀw, so every method
//! here only returns w_i = ∂L_total/∂L_i **at the current losses** (the exact chain-rule weights;
//! for linear scalarisations Σ w_i L_i that is just w). The trainer scales task i's gradient row
//! by w_i, i.e. d = Jᵀw, and can feed the same w to the head gradients.
//!
//! Protocol (once per training step):
//! 1. compute the losses (and J, if `needs_jacobian`);
//! 2. `weights(ctx)` → w; methods with learnable parameters (UW's s, GradNorm's s) also take
//!    their own Adam step here, as LibMTL's shared `optimizer.step()` would, after w is read;
//! 3. the model step with d = Jᵀw;
//! 4. if `needs_losses_after_step`: recompute the losses on the same batch and call
//!    `after_step` (FAMO updates its logits from the loss decrease).
//!
//! Epochs: `ctx.epoch` is the trainer's epoch index (LibMTL's `self.epoch`). Methods that use
//! epoch statistics (DWA, GradNorm, STCH) keep the mean of the losses they were given during
//! each epoch themselves, and close an epoch when they first see a larger epoch index. A trainer
//! without epochs (full-batch toys) should count one step as one epoch.
//!
//! Guards: losses enter logs and ratios only through `positive(L) = max(L, LOSS_FLOOR)` (NaN →
//! the floor), so finite losses always give finite weights and nothing panics. A context whose
//! number of losses differs from the m the weighting was built for gets equal weights 1 and
//! leaves the state untouched.

mod dwa;
mod ew;
mod famo;
mod gls;
mod gradnorm;
mod imtl_l;
mod registry;
mod rlw;
mod stch;
mod uw;

pub use dwa::Dwa;
pub use ew::Ew;
pub use famo::Famo;
pub use gls::Gls;
pub use gradnorm::GradNorm;
pub use imtl_l::ImtlL;
pub(crate) use registry::ParamValues;
pub use registry::{build, describe, descriptions, ParamSpec, WeightingDescription, WeightingSpec, NAMES};
pub use rlw::Rlw;
pub use stch::Stch;
pub use uw::Uw;

use std::collections::BTreeMap;

use nalgebra::DMatrix;

use crate::optim::{Optimizer, OptimizerKind};

/// Smallest loss value used inside a log or a ratio (non-positive losses are clamped to it).
pub const LOSS_FLOOR: f64 = 1e-12;

/// What a weighting sees at one training step.
#[derive(Clone, Copy, Debug)]
pub struct WeightingContext<'a> {
    /// The m task losses at the current parameters (before the step).
    pub losses: &'a [f64],
    /// Global step index (0-based), for logging and step-dependent schedules.
    pub step: u64,
    /// Epoch index (0-based).
    pub epoch: u64,
    /// Per-task gradients of the shared parameters (m × n), for GradNorm.
    pub jacobian: Option<&'a DMatrix<f64>>,
    /// Or their Gramian JJᵀ (GradNorm only needs ‖g_i‖ = √G_ii; the GPU already has G).
    pub gram: Option<&'a DMatrix<f64>>,
}

impl<'a> WeightingContext<'a> {
    pub fn new(losses: &'a [f64], step: u64, epoch: u64) -> Self {
        WeightingContext { losses, step, epoch, jacobian: None, gram: None }
    }

    pub fn with_jacobian(mut self, jacobian: &'a DMatrix<f64>) -> Self {
        self.jacobian = Some(jacobian);
        self
    }

    pub fn with_gram(mut self, gram: &'a DMatrix<f64>) -> Self {
        self.gram = Some(gram);
        self
    }

    /// ‖g_i‖ from the Gramian's diagonal if given, else from J's rows.
    pub fn grad_norms(&self) -> Option<Vec<f64>> {
        if let Some(g) = self.gram {
            return Some((0..g.nrows()).map(|i| g[(i, i)].max(0.0).sqrt()).collect());
        }
        self.jacobian.map(|j| j.row_iter().map(|r| r.norm()).collect())
    }
}

/// A loss-level scalarisation with its own state.
pub trait LossWeighting: Send {
    /// Registry name (`ew`, `uw`, …).
    fn name(&self) -> &'static str;
    /// The number of tasks m it was built for.
    fn num_tasks(&self) -> usize;
    /// w_i = ∂L_total/∂L_i at `ctx.losses`; call exactly once per training step (stateful
    /// methods advance their state here). Length `ctx.losses.len()`, finite for finite losses.
    fn weights(&mut self, ctx: &WeightingContext) -> Vec<f64>;
    /// The losses on the same batch after the model step (only FAMO uses them).
    fn after_step(&mut self, _losses_after: &[f64]) {}
    /// Back to the initial state (random streams restart from their seed).
    fn reset(&mut self);
    /// Whether `weights` needs `ctx.jacobian` or `ctx.gram` (GradNorm from epoch 1 on).
    fn needs_jacobian(&self) -> bool {
        false
    }
    /// Whether the trainer must call `after_step` (FAMO).
    fn needs_losses_after_step(&self) -> bool {
        false
    }
}

/// max(L, LOSS_FLOOR); NaN → LOSS_FLOOR. Keeps logs and ratios finite.
pub(crate) fn positive(l: f64) -> f64 {
    if l > LOSS_FLOOR {
        l
    } else {
        LOSS_FLOOR
    }
}

/// softmax(z) shifted by max z; empty stays empty. Non-finite inputs fall back to uniform.
pub(crate) fn softmax(z: &[f64]) -> Vec<f64> {
    if z.is_empty() {
        return Vec::new();
    }
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|x| (x - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    if !(sum.is_finite() && sum > 0.0) || e.iter().any(|x| !x.is_finite()) {
        return vec![1.0 / z.len() as f64; z.len()];
    }
    e.into_iter().map(|x| x / sum).collect()
}

/// (∂softmax(z)/∂z)ᵀ·v: component k is z_k (v_k − Σ_j z_j v_j).
pub(crate) fn softmax_vjp(z: &[f64], v: &[f64]) -> Vec<f64> {
    let dot: f64 = z.iter().zip(v).map(|(a, b)| a * b).sum();
    z.iter().zip(v).map(|(zk, vk)| zk * (vk - dot)).collect()
}

/// A learnable parameter vector with its own torch-style Adam (L2 weight decay added to the
/// gradient, as `torch.optim.Adam(weight_decay=…)` does).
#[derive(Clone, Debug)]
pub(crate) struct AdamParam {
    pub value: Vec<f64>,
    init: Vec<f64>,
    lr: f64,
    weight_decay: f64,
    opt: Optimizer,
}

impl AdamParam {
    pub fn new(init: Vec<f64>, lr: f64, weight_decay: f64) -> Self {
        let opt = OptimizerKind::adam(lr).build(init.len());
        AdamParam { value: init.clone(), init, lr, weight_decay, opt }
    }

    /// One Adam step on `grad` (skipped if the gradient is not finite, so state stays finite).
    pub fn step(&mut self, grad: &[f64]) {
        if grad.len() != self.value.len() || grad.iter().any(|g| !g.is_finite()) {
            return;
        }
        let g: Vec<f64> = grad.iter().zip(&self.value).map(|(g, x)| g + self.weight_decay * x).collect();
        self.opt.step(&mut self.value, &g);
    }

    pub fn reset(&mut self) {
        self.value = self.init.clone();
        self.opt = OptimizerKind::adam(self.lr).build(self.init.len());
    }
}

/// Per-epoch mean losses, as LibMTL's `train_loss_buffer` (the mean of the losses seen during
/// the epoch). Keeps epoch 0 (GradNorm's reference) and the last two closed epochs (DWA).
#[derive(Clone, Debug, Default)]
pub(crate) struct EpochMeans {
    closed: BTreeMap<u64, Vec<f64>>,
    current: Option<(u64, Vec<f64>, u64)>,
}

impl EpochMeans {
    /// Record the losses of one step of `epoch`, closing the running epoch if `epoch` is later.
    /// Call before reading `mean` for the current step. Losses are recorded as given.
    pub fn observe(&mut self, epoch: u64, losses: &[f64]) {
        match &mut self.current {
            Some((e, sum, count)) if *e == epoch && sum.len() == losses.len() => {
                for (s, l) in sum.iter_mut().zip(losses) {
                    *s += l;
                }
                *count += 1;
            }
            _ => {
                if let Some((e, sum, count)) = self.current.take() {
                    if epoch > e {
                        let mean = sum.iter().map(|s| s / count as f64).collect();
                        self.closed.insert(e, mean);
                        self.prune(epoch);
                    }
                }
                self.current = Some((epoch, losses.to_vec(), 1));
            }
        }
    }

    fn prune(&mut self, epoch: u64) {
        let keep_from = epoch.saturating_sub(2);
        self.closed.retain(|&e, _| e == 0 || e >= keep_from);
    }

    /// The mean losses of a closed epoch.
    pub fn mean(&self, epoch: u64) -> Option<&[f64]> {
        self.closed.get(&epoch).map(|v| v.as_slice())
    }

    /// The mean of the running epoch so far (STCH's warmup average).
    pub fn running(&self, epoch: u64) -> Option<Vec<f64>> {
        match &self.current {
            Some((e, sum, count)) if *e == epoch => Some(sum.iter().map(|s| s / *count as f64).collect()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn softmax_vjp_matches_finite_differences() {
        let w = [0.3, -1.2, 0.7];
        let v = [0.5, 2.0, -1.0];
        let z = softmax(&w);
        let g = softmax_vjp(&z, &v);
        for k in 0..3 {
            let h = 1e-6;
            let mut wp = w;
            wp[k] += h;
            let mut wm = w;
            wm[k] -= h;
            let f = |w: &[f64]| softmax(w).iter().zip(&v).map(|(a, b)| a * b).sum::<f64>();
            assert_abs_diff_eq!(g[k], (f(&wp) - f(&wm)) / (2.0 * h), epsilon = 1e-8);
        }
    }

    #[test]
    fn epoch_means_close_on_epoch_change() {
        let mut e = EpochMeans::default();
        e.observe(0, &[1.0, 2.0]);
        e.observe(0, &[3.0, 4.0]);
        assert_eq!(e.mean(0), None);
        assert_eq!(e.running(0), Some(vec![2.0, 3.0]));
        e.observe(1, &[5.0, 5.0]);
        assert_eq!(e.mean(0), Some(&[2.0, 3.0][..]));
        for epoch in 2..6 {
            e.observe(epoch, &[epoch as f64, 0.0]);
        }
        // Epoch 0 is kept, as are the two last closed epochs.
        assert!(e.mean(0).is_some() && e.mean(1).is_none());
        assert_eq!(e.mean(4), Some(&[4.0, 0.0][..]));
        assert_eq!(e.mean(3), Some(&[3.0, 0.0][..]));
    }

    #[test]
    fn positive_guards_non_positive_and_nan() {
        assert_eq!(positive(-3.0), LOSS_FLOOR);
        assert_eq!(positive(0.0), LOSS_FLOOR);
        assert_eq!(positive(f64::NAN), LOSS_FLOOR);
        assert_eq!(positive(2.5), 2.5);
    }
}
