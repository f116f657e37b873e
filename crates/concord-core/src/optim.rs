//! First-order optimizers on a flat parameter vector, with PyTorch's update rules so that runs
//! reproduce the papers' `torch.optim.Adam` / `torch.optim.SGD` trajectories.
//!
//! Decoupled weight decay (Loshchilov & Hutter, `torch.optim.AdamW`): `Optimizer::with_weight_decay`
//! shrinks θ ← θ·(1 − lr·λ) before the step, so Adam + λ is AdamW (and SGD + λ is SGDW). It is
//! kept outside `OptimizerKind` so that the toy runs and GPU kernels, which match on the kind,
//! are unchanged; the trainer's `TrainConfig` names it `adamw`.

use crate::multiversion::multiversion;

mod spam;

pub use spam::{spam_warmup_scale, SpamParams, CLIP_AFTER};

/// Which update rule, with its hyper-parameters (PyTorch defaults via `adam`/`sgd`). Internal:
/// runs name their optimizer with `train::TrainOptimizer`, which builds one of these.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum OptimizerKind {
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    Sgd {
        lr: f64,
        momentum: f64,
    },
    /// SPAM (Huang et al. 2025): Adam with periodic moment reset, spike clipping and a cosine
    /// warm-up after each reset (`spam.rs`).
    Spam(SpamParams),
}

impl OptimizerKind {
    pub fn adam(lr: f64) -> Self {
        OptimizerKind::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    pub fn lr(&self) -> f64 {
        match *self {
            OptimizerKind::Adam { lr, .. } | OptimizerKind::Sgd { lr, .. } => lr,
            OptimizerKind::Spam(p) => p.lr,
        }
    }

    /// The same optimizer with another learning rate (the state is kept by `Optimizer::set_lr`).
    pub fn with_lr(self, lr: f64) -> Self {
        match self {
            OptimizerKind::Adam { beta1, beta2, eps, .. } => OptimizerKind::Adam { lr, beta1, beta2, eps },
            OptimizerKind::Sgd { momentum, .. } => OptimizerKind::Sgd { lr, momentum },
            OptimizerKind::Spam(p) => OptimizerKind::Spam(SpamParams { lr, ..p }),
        }
    }

    pub fn build(&self, dim: usize) -> Optimizer {
        Optimizer {
            kind: *self,
            m: vec![0.0; dim],
            v: vec![0.0; dim],
            t: 0,
            weight_decay: 0.0,
            track_spikes: false,
            accumulated: 0,
        }
    }
}

/// What one optimizer step saw (for the run's `DynamicsRecord`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepInfo {
    /// Adam family: max |g|/√v over coordinates with v > 0 (v before the step); `None` for SGD
    /// and on the first step (v = 0 everywhere).
    pub spike_score: Option<f64>,
    /// SPAM: coordinates its spike clip changed.
    pub spikes_clipped: usize,
    /// SPAM: the moments were reset on this step.
    pub reset: bool,
}

/// Optimizer state: Adam's moments (or SGD's momentum buffer in `m`) and the step count.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer {
    kind: OptimizerKind,
    m: Vec<f64>,
    v: Vec<f64>,
    t: u64,
    /// Decoupled weight decay λ (0: none).
    weight_decay: f64,
    /// Adam: measure the spike score every step (an extra pass over the parameters).
    track_spikes: bool,
    /// Updates accumulated in v since it was last zero (SPAM resets it), for the spike score's
    /// bias correction.
    accumulated: u64,
}

impl Optimizer {
    /// Change the learning rate and keep the moments, so a live edit does not reset training.
    pub fn set_lr(&mut self, lr: f64) {
        self.kind = self.kind.with_lr(lr);
    }

    /// Decoupled weight decay λ ≥ 0: every step first shrinks θ ← θ·(1 − lr·λ), then applies the
    /// usual update (torch.optim.AdamW for Adam). λ = 0 is the plain optimizer.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Adam: report max |g|/√v in every step's [`StepInfo`] (SPAM always does).
    pub fn with_spike_tracking(mut self, on: bool) -> Self {
        self.track_spikes = on;
        self
    }

    pub fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    /// θ ← θ − step(d), where `direction` plays the role of `x.grad` in PyTorch.
    pub fn step(&mut self, x: &mut [f64], direction: &[f64]) {
        self.step_scaled(x, direction, 1.0);
    }

    /// [`Optimizer::step`] with the learning rate scaled by `lr_factor` for this step (a warm-up
    /// or cosine schedule; the weight decay uses the scaled rate too, as torch's schedulers do).
    /// Returns what the step saw.
    pub fn step_scaled(&mut self, x: &mut [f64], direction: &[f64], lr_factor: f64) -> StepInfo {
        assert_eq!(x.len(), direction.len());
        self.t += 1;
        let lr_now = self.kind.lr() * lr_factor;
        let mut info = StepInfo::default();
        let beta2 = match self.kind {
            OptimizerKind::Spam(p) => {
                if p.reset_every > 0 && self.t.is_multiple_of(p.reset_every) {
                    self.accumulated = 0;
                }
                Some(p.beta2)
            }
            OptimizerKind::Adam { beta2, .. } if self.track_spikes => Some(beta2),
            _ => None,
        };
        let score = beta2.and_then(|b2| spike_score(direction, &self.v, b2, self.accumulated));
        if self.weight_decay != 0.0 && !matches!(self.kind, OptimizerKind::Spam(_)) {
            let shrink = 1.0 - lr_now * self.weight_decay;
            for v in x.iter_mut() {
                *v *= shrink;
            }
        }
        match self.kind {
            OptimizerKind::Spam(p) => {
                info = spam::step(&p, lr_now, self.t, x, direction, &mut self.m, &mut self.v);
                info.spike_score = score;
                if self.weight_decay != 0.0 {
                    // SPAM's decoupled decay comes after the update and is not warm-up scaled.
                    let shrink = 1.0 - lr_now * self.weight_decay;
                    x.iter_mut().for_each(|v| *v *= shrink);
                }
            }
            OptimizerKind::Adam { beta1, beta2, eps, .. } => {
                let lr = lr_now;
                // torch.optim.Adam (amsgrad=False, weight_decay=0).
                let t = self.t as i32;
                let bias1 = 1.0 - beta1.powi(t);
                let bias2 = 1.0 - beta2.powi(t);
                adam_update(x, direction, &mut self.m, &mut self.v, [lr, beta1, beta2, eps, bias1, bias2]);
            }
            OptimizerKind::Sgd { momentum, .. } => {
                let lr = lr_now;
                // torch.optim.SGD: the first step seeds the buffer with the gradient itself.
                for k in 0..x.len() {
                    let g = direction[k];
                    let d = if momentum == 0.0 {
                        g
                    } else {
                        self.m[k] = if self.t == 1 { g } else { momentum * self.m[k] + g };
                        self.m[k]
                    };
                    x[k] -= lr * d;
                }
            }
        }
        if let OptimizerKind::Adam { .. } = self.kind {
            info.spike_score = score;
        }
        self.accumulated += 1;
        info
    }
}

/// The spike score max |g|/√v̂ over coordinates with v > 0, where v̂ = v/(1 − β₂ᶜ) is v
/// bias-corrected for the `c` updates it holds (`None` when c < 20 or v is 0 everywhere).
/// Without the correction every step just after a (re)start would score ≈ 1/√(1 − β₂) ≈ 32:
/// that is why SPAM's own clip, on the raw v, waits 20 steps after a reset.
pub(crate) fn spike_score(g: &[f64], v: &[f64], beta2: f64, c: u64) -> Option<f64> {
    // As SPAM's clip: no score in the first 20 updates of v, where v̂ rests on a few gradients
    // and a coordinate that was near 0 on the first step would score huge.
    if c < spam::CLIP_AFTER {
        return None;
    }
    let correction = 1.0 - beta2.powi(c.min(i32::MAX as u64) as i32);
    let mut best: Option<f64> = None;
    for (g, &v) in g.iter().zip(v) {
        if v > 0.0 {
            let s = g.abs() / (v / correction).sqrt();
            best = Some(best.map_or(s, |b: f64| b.max(s)));
        }
    }
    best
}

multiversion! {
/// The Adam update, element by element (the same operations in the same order as torch's, so
/// the same bits at every SIMD width; see `multiversion`).
fn adam_update(x: &mut [f64], direction: &[f64], m: &mut [f64], v: &mut [f64], c: [f64; 6]) {
    let [lr, beta1, beta2, eps, bias1, bias2] = c;
    let (step, root2) = (lr / bias1, bias2.sqrt());
    for (((x, &g), m), v) in x.iter_mut().zip(direction).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m = beta1 * *m + (1.0 - beta1) * g;
        *v = beta2 * *v + (1.0 - beta2) * g * g;
        let denom = (v.sqrt() / root2) + eps;
        *x -= step * *m / denom;
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn adam_first_step_moves_by_lr_times_sign() {
        // With bias correction the first Adam step is lr·g/(|g| + eps·…) ≈ lr·sign(g).
        let mut opt = OptimizerKind::adam(0.1).build(2);
        let mut x = vec![1.0, 1.0];
        opt.step(&mut x, &[3.0, -0.5]);
        assert_abs_diff_eq!(x[0], 0.9, epsilon = 1e-7);
        assert_abs_diff_eq!(x[1], 1.1, epsilon = 1e-7);
    }

    #[test]
    fn adam_second_step_matches_hand_computation() {
        let mut opt = OptimizerKind::adam(0.01).build(1);
        let mut x = vec![0.0];
        opt.step(&mut x, &[1.0]);
        opt.step(&mut x, &[2.0]);
        let m = 0.9 * 0.1 + 0.1 * 2.0;
        let v = 0.999 * 0.001 + 0.001 * 4.0;
        let step2 = 0.01 / (1.0 - 0.81) * m / ((v / (1.0 - 0.999f64.powi(2))).sqrt() + 1e-8);
        assert_abs_diff_eq!(x[0], -0.01 - step2, epsilon = 1e-9);
    }

    #[test]
    fn sgd_with_momentum_follows_torch() {
        let mut opt = OptimizerKind::Sgd { lr: 0.1, momentum: 0.9 }.build(1);
        let mut x = vec![0.0];
        opt.step(&mut x, &[1.0]); // buf = 1
        opt.step(&mut x, &[1.0]); // buf = 1.9
        assert_abs_diff_eq!(x[0], -0.1 - 0.19, epsilon = 1e-12);
    }

    #[test]
    fn set_lr_keeps_state() {
        let mut a = OptimizerKind::adam(0.01).build(1);
        let mut x = vec![0.0];
        a.step(&mut x, &[1.0]);
        a.set_lr(0.02);
        let mut b = a.clone();
        let x1 = x[0];
        let mut y = x.clone();
        a.step(&mut x, &[1.0]);
        b.set_lr(0.01);
        b.step(&mut y, &[1.0]);
        // Same moments: the step with twice the lr moves twice as far.
        assert_abs_diff_eq!(x[0] - x1, 2.0 * (y[0] - x1), epsilon = 1e-12);
    }

    #[test]
    fn adamw_decays_then_steps_by_hand() {
        // torch.optim.AdamW(lr=0.1, weight_decay=0.5): θ ← θ(1 − 0.05), then the Adam step.
        let mut opt = OptimizerKind::adam(0.1).build(2).with_weight_decay(0.5);
        let mut x = vec![2.0, -1.0];
        opt.step(&mut x, &[0.3, 0.0]);
        // x0: 2·0.95 = 1.9, Adam's first step ≈ −0.1·sign(0.3); x1: −0.95, zero gradient → no step.
        assert_abs_diff_eq!(x[0], 1.8, epsilon = 1e-7);
        assert_abs_diff_eq!(x[1], -0.95, epsilon = 1e-15);
        let x0 = x[0];
        // Second step, by hand: m = 0.9·0.03 + 0.1·0.3 = 0.057, v = 0.999·0.00009 + 0.001·0.09.
        opt.step(&mut x, &[0.3, 0.0]);
        let m = 0.9 * 0.03 + 0.1 * 0.3;
        let v: f64 = 0.999 * 0.3 * 0.3 * 0.001 + 0.001 * 0.09;
        let adam = 0.1 / (1.0 - 0.81) * m / ((v / (1.0 - 0.999f64.powi(2))).sqrt() + 1e-8);
        assert_abs_diff_eq!(x[0], x0 * 0.95 - adam, epsilon = 1e-12);
        assert_abs_diff_eq!(x[1], -0.95 * 0.95, epsilon = 1e-15);
        // λ = 0 is plain Adam, bit for bit.
        let (mut a, mut b) =
            (OptimizerKind::adam(0.1).build(1), OptimizerKind::adam(0.1).build(1).with_weight_decay(0.0));
        let (mut xa, mut xb) = (vec![1.0], vec![1.0]);
        a.step(&mut xa, &[0.2]);
        b.step(&mut xb, &[0.2]);
        assert_eq!(xa, xb);
    }
}
