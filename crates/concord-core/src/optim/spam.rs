//! SPAM: spike-aware Adam with momentum reset (Huang et al., ICLR 2025; the official
//! TianjinYellow/SPAM-Optimizer `galore_torch/SPAM.py`, dense momentum). Step t counts from 1 over
//! all optimizer calls (dynamics.md §2):
//! 1. **Reset**: if t mod ΔT = 0, m, v ← 0 (the bias-correction count is *not* reset).
//! 2. **Spike clip**, only when t ≥ 20 and t mod ΔT ≥ 20 (the code's `grad_accu_steps`): where
//!    g² > θ·v (v before this step), g ← sign(g)·√(θ·v).
//! 3. **Moments**: m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g².
//! 4. **Update**: w ← w − s·α·m/(√v + eps), α = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ).
//! 5. **Warm-up after a reset**: c = t mod ΔT steps since the last reset (c = 0 on the reset
//!    step), s(c) = 1 − 0.99·½(1 + cos(πc/(N + 1))) for c < N, else 1; s = 1 before the first
//!    reset.
//!
//! ΔT = 0 means "never reset" (the official code would divide by zero). The multi-task run
//! feeds the aggregated update d coordinatewise, as it feeds Adam.

use super::StepInfo;
use serde::{Deserialize, Serialize};

/// SPAM's hyper-parameters (the official defaults by `SpamParams::new`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpamParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// 1e-6 in the official code (Adam's is 1e-8).
    pub eps: f64,
    /// θ: entries with g² > θ·v are clipped to √(θ·v).
    pub threshold: f64,
    /// ΔT: the moments reset every this many steps (0: never).
    pub reset_every: u64,
    /// N: the cosine warm-up after a reset, in steps.
    pub warmup: u64,
}

/// The official `grad_accu_steps`: no spike clip in the first 20 steps after a reset.
pub const CLIP_AFTER: u64 = 20;

impl SpamParams {
    pub fn new(lr: f64) -> Self {
        SpamParams { lr, beta1: 0.9, beta2: 0.999, eps: 1e-6, threshold: 5000.0, reset_every: 500, warmup: 150 }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err(format!("SPAM betas must lie in [0, 1), got ({}, {})", self.beta1, self.beta2));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(format!("SPAM eps must be a positive finite number, got {}", self.eps));
        }
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(format!("SPAM's spike threshold θ must be a positive finite number, got {}", self.threshold));
        }
        Ok(())
    }
}

/// s(c), the warm-up scale `c` steps after a reset.
pub fn spam_warmup_scale(c: u64, warmup: u64) -> f64 {
    if c >= warmup {
        return 1.0;
    }
    1.0 - 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * c as f64 / (warmup + 1) as f64).cos())
}

/// One SPAM step at global step `t` (≥ 1) with the (scheduled) learning rate `lr`.
pub(super) fn step(
    p: &SpamParams,
    lr: f64,
    t: u64,
    x: &mut [f64],
    g: &[f64],
    m: &mut [f64],
    v: &mut [f64],
) -> StepInfo {
    let mut info = StepInfo::default();
    let since_reset = if p.reset_every == 0 { t } else { t % p.reset_every };
    if p.reset_every > 0 && since_reset == 0 {
        m.iter_mut().for_each(|e| *e = 0.0);
        v.iter_mut().for_each(|e| *e = 0.0);
        info.reset = true;
    }
    let clip = t >= CLIP_AFTER && since_reset >= CLIP_AFTER;
    let s = if p.reset_every == 0 || t < p.reset_every { 1.0 } else { spam_warmup_scale(since_reset, p.warmup) };
    let ti = t.min(i32::MAX as u64) as i32;
    let alpha = lr * (1.0 - p.beta2.powi(ti)).sqrt() / (1.0 - p.beta1.powi(ti));
    for k in 0..x.len() {
        let mut gk = g[k];
        if clip && gk * gk > p.threshold * v[k] {
            gk = gk.signum() * (p.threshold * v[k]).sqrt();
            info.spikes_clipped += 1;
        }
        m[k] = p.beta1 * m[k] + (1.0 - p.beta1) * gk;
        v[k] = p.beta2 * v[k] + (1.0 - p.beta2) * gk * gk;
        x[k] -= s * alpha * m[k] / (v[k].sqrt() + p.eps);
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::OptimizerKind;
    use approx::assert_abs_diff_eq;

    #[test]
    fn the_step_after_a_reset_matches_dynamics_md() {
        // dynamics.md §2: reset at t = 500, g = 0.2, lr = 1e-3, N = 150: α = 6.27392e-4,
        // m/(√v + eps) = 3.16178, update 1.98367e-5 (s = 0.01).
        let p = SpamParams::new(1e-3);
        let mut opt = OptimizerKind::Spam(p).build(1);
        let mut x = vec![0.0];
        for _ in 0..499 {
            opt.step(&mut x, &[0.2]);
        }
        let before = x[0];
        let info = opt.step_scaled(&mut x, &[0.2], 1.0);
        assert!(info.reset);
        let alpha = 1e-3 * (1.0 - 0.999f64.powi(500)).sqrt() / (1.0 - 0.9f64.powi(500));
        assert_abs_diff_eq!(alpha, 6.27392e-4, epsilon = 1e-9);
        let (m, v) = (0.1 * 0.2, 0.001 * 0.04);
        assert_abs_diff_eq!(m / (f64::sqrt(v) + 1e-6), 3.16178, epsilon = 1e-5);
        assert_abs_diff_eq!(before - x[0], 1.98367e-5, epsilon = 1e-10);
        assert_abs_diff_eq!(spam_warmup_scale(75, 150), 0.49985, epsilon = 1e-5);
        assert_eq!(spam_warmup_scale(150, 150), 1.0);
        assert_abs_diff_eq!(spam_warmup_scale(0, 150), 0.01, epsilon = 1e-15);
    }

    #[test]
    fn the_spike_clip_matches_dynamics_md() {
        // v = 1e-4, θ = 5000: g = 0.8 → 0.707107, g = −3 → −0.707107, 0.5 unchanged. Build that
        // v: one step of g₀ gives v = 0.001·g₀², so g₀ = √0.1; steps up to t = 20 keep the
        // clip off; then check the clipped moment update by hand.
        let p = SpamParams { reset_every: 0, ..SpamParams::new(1e-3) };
        // dynamics.md's ±0.707107 is √(θ·v) = √0.5.
        let bound = std::f64::consts::FRAC_1_SQRT_2;
        for (g, clipped) in [(0.8, bound), (-3.0, -bound), (0.5, 0.5)] {
            let mut m = vec![0.0];
            let mut v = vec![1e-4];
            let mut x = vec![0.0];
            let info = step(&p, 1e-3, 25, &mut x, &[g], &mut m, &mut v);
            assert_abs_diff_eq!(m[0] / 0.1, clipped, epsilon = 1e-6);
            assert_eq!(info.spikes_clipped, usize::from(g != 0.5));
        }
        // Before step 20 nothing is clipped.
        let (mut m, mut v, mut x) = (vec![0.0], vec![1e-4], vec![0.0]);
        let info = step(&p, 1e-3, 19, &mut x, &[-3.0], &mut m, &mut v);
        assert_eq!(info.spikes_clipped, 0);
        assert_abs_diff_eq!(m[0], -0.3, epsilon = 1e-15);
    }

    #[test]
    fn without_reset_or_clip_spam_is_adam_with_its_eps() {
        // ΔT = 0 (never reset), θ huge: α·m/(√v + eps) is torch's Adam with eps scaled by
        // √(1 − β₂ᵗ); compare with that form by hand over a few steps.
        let p = SpamParams { reset_every: 0, threshold: 1e300, ..SpamParams::new(0.01) };
        let mut opt = OptimizerKind::Spam(p).build(1);
        let mut x = vec![1.0];
        let (mut m, mut v, mut xr) = (0.0f64, 0.0f64, 1.0f64);
        for (t, g) in [0.3, -0.1, 0.7, 0.2].iter().enumerate() {
            opt.step(&mut x, &[*g]);
            let t = t as i32 + 1;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            xr -= 0.01 * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t)) * m / (v.sqrt() + 1e-6);
        }
        assert_abs_diff_eq!(x[0], xr, epsilon = 1e-15);
    }

    #[test]
    fn spike_score_of_a_lone_spike() {
        // dynamics.md §2's GSS case, as our online score: after 99 steps of 0.01, v ≈ 0.01²
        // (bias aside), so a 1.0 scores ≈ 1/√v > √5000 and SPAM clips it.
        let p = SpamParams { reset_every: 0, ..SpamParams::new(1e-3) };
        let mut opt = OptimizerKind::Spam(p).build(1);
        let mut x = vec![0.0];
        for _ in 0..99 {
            opt.step(&mut x, &[0.01]);
        }
        let info = opt.step_scaled(&mut x, &[1.0], 1.0);
        assert_eq!(info.spikes_clipped, 1);
        // The score against the bias-corrected v̂ (≈ 0.01², 99 updates in it): ≈ 100.
        let v: f64 = (0..99).fold(0.0, |v, _| 0.999 * v + 0.001 * 0.0001);
        let want = 1.0 / (v / (1.0 - 0.999f64.powi(99))).sqrt();
        assert_abs_diff_eq!(info.spike_score.unwrap(), want, epsilon = 1e-9);
        assert_abs_diff_eq!(want, 100.0, epsilon = 1e-6);
        // The paper's GSS on the same series: |1.0| / mean(|g|) = 1 / (1.99/100) ≈ 50.25 > 50.
        let mean = (99.0 * 0.01 + 1.0) / 100.0;
        assert_abs_diff_eq!(1.0 / mean, 50.25, epsilon = 2e-3);
    }
}
