//! STCH, smooth Tchebycheff scalarisation (Lin et al. 2024; LibMTL `STCH.py`).
//!
//! - epoch < warmup_epoch: L_total = Σ_i log(L_i + 1e-20), weight 1/(L_i + 1e-20);
//! - epoch == warmup_epoch: the same, while the losses are averaged into the nadir vector;
//! - epoch > warmup_epoch: ℓ_i = log(L_i/nadir_i + 1e-20),
//!   L_total = T·μ·log Σ_i exp((ℓ_i − max ℓ)/μ) (the max shift does not change the gradient), so
//!   w_i = T·softmax(ℓ/μ)_i · (1/nadir_i)/(L_i/nadir_i + 1e-20).
//!
//! Epochs → steps: the nadir is the mean of every loss vector passed to `weights` during the
//! warmup epoch, fixed at the first call of a later epoch. If the warmup epoch was skipped, the
//! losses of that first later call serve as the nadir. Losses and the nadir go through
//! `positive` (LibMTL would take the log of a non-positive number), which keeps the weights
//! finite. Defaults: μ = 1, warmup_epoch = 4.

use super::registry;
use super::{positive, softmax, EpochMeans, LossWeighting, ParamSpec, WeightingContext, WeightingDescription};

pub const STCH_MU: f64 = 1.0;
pub const STCH_WARMUP_EPOCH: u64 = 4;
const STCH_EPS: f64 = 1e-20;

/// This weighting's entry in the registry (`concord methods`, parameter parsing).
pub(crate) fn description() -> WeightingDescription {
    WeightingDescription {
        name: "stch",
        label: "STCH",
        summary: "Σ log L_i until warmup, then T·μ·logΣexp(log(L_i/nadir_i)/μ)",
        epochs: "log-loss before and during the warmup epoch (whose mean losses become the nadir); smooth max after it",
        params: vec![
            ParamSpec::positive("mu", STCH_MU, registry::SCALE_MAX, "smoothing μ"),
            ParamSpec {
                name: "warmup_epoch",
                default: STCH_WARMUP_EPOCH as f64,
                min: 0.0,
                min_inclusive: true,
                // An epoch index: beyond a million epochs the warmup never ends in practice.
                max: Some(1e6),
                integer: true,
                doc: "epoch whose mean losses form the nadir",
            },
        ],
        needs_jacobian: false,
        needs_losses_after_step: false,
    }
}

#[derive(Clone, Debug)]
pub struct Stch {
    m: usize,
    mu: f64,
    warmup_epoch: u64,
    means: EpochMeans,
    nadir: Option<Vec<f64>>,
}

impl Stch {
    pub fn new(m: usize, mu: f64, warmup_epoch: u64) -> Self {
        Stch { m, mu, warmup_epoch, means: EpochMeans::default(), nadir: None }
    }

    /// The nadir vector once fixed.
    pub fn nadir(&self) -> Option<&[f64]> {
        self.nadir.as_deref()
    }
}

impl LossWeighting for Stch {
    fn name(&self) -> &'static str {
        "stch"
    }

    fn num_tasks(&self) -> usize {
        self.m
    }

    fn weights(&mut self, ctx: &WeightingContext) -> Vec<f64> {
        let m = ctx.losses.len();
        if m != self.m {
            return vec![1.0; m];
        }
        let l: Vec<f64> = ctx.losses.iter().map(|&x| positive(x)).collect();
        if ctx.epoch <= self.warmup_epoch {
            if ctx.epoch == self.warmup_epoch {
                self.means.observe(ctx.epoch, &l);
            }
            return l.iter().map(|x| 1.0 / (x + STCH_EPS)).collect();
        }
        if self.nadir.is_none() {
            let warm = self.means.running(self.warmup_epoch);
            self.nadir = Some(warm.unwrap_or_else(|| l.clone()));
        }
        let nadir: Vec<f64> = self.nadir.as_deref().unwrap_or(&l).iter().map(|&x| positive(x)).collect();
        let inner: Vec<f64> = l.iter().zip(&nadir).map(|(li, ni)| li / ni + STCH_EPS).collect();
        let scaled: Vec<f64> = inner.iter().map(|x| x.ln() / self.mu).collect();
        let p = softmax(&scaled);
        p.iter()
            .zip(&inner)
            .zip(&nadir)
            .map(|((pi, xi), ni)| m as f64 * pi / (ni * xi))
            .map(|w| if w.is_finite() { w } else { f64::MAX })
            .collect()
    }

    fn reset(&mut self) {
        self.means = EpochMeans::default();
        self.nadir = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn stch_warmup_nadir_then_smooth_max() {
        let mut stch = Stch::new(2, 1.0, 1);
        let mut call = |l: [f64; 2], epoch| stch.weights(&WeightingContext::new(&l, 0, epoch));
        // Before and during warmup: the log-loss weights 1/L.
        let w = call([2.0, 4.0], 0);
        assert_abs_diff_eq!(w[0], 0.5, epsilon = 1e-15);
        assert_abs_diff_eq!(w[1], 0.25, epsilon = 1e-15);
        call([1.0, 2.0], 1);
        call([3.0, 6.0], 1); // nadir = (2, 4)
                             // L = (2, 2): ℓ = (0, ln ½), p = softmax(ℓ) = (⅔, ⅓),
                             // w = (2·⅔·(½)/1, 2·⅓·(¼)/½) = (⅔, ⅓).
        let w = call([2.0, 2.0], 2);
        assert_abs_diff_eq!(w[0], 2.0 / 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(w[1], 1.0 / 3.0, epsilon = 1e-12);
        assert_eq!(stch.nadir(), Some(&[2.0, 4.0][..]));
    }

    #[test]
    fn stch_matches_finite_differences_after_warmup() {
        let mut stch = Stch::new(3, 0.5, 0);
        stch.weights(&WeightingContext::new(&[1.0, 2.0, 3.0], 0, 0));
        let l = [0.7, 1.5, 4.0];
        let w = stch.weights(&WeightingContext::new(&l, 1, 1));
        let nadir = [1.0, 2.0, 3.0];
        let f = |l: &[f64]| {
            let s: f64 = l.iter().zip(&nadir).map(|(a, n)| ((a / n + 1e-20).ln() / 0.5).exp()).sum();
            3.0 * 0.5 * s.ln()
        };
        for i in 0..3 {
            let h = 1e-6;
            let (mut lp, mut lm) = (l, l);
            lp[i] += h;
            lm[i] -= h;
            assert_abs_diff_eq!(w[i], (f(&lp) - f(&lm)) / (2.0 * h), epsilon = 1e-7);
        }
    }

    #[test]
    fn stch_small_mu_puts_the_weight_on_the_worst_relative_loss() {
        let mut stch = Stch::new(2, 0.01, 0);
        stch.weights(&WeightingContext::new(&[1.0, 1.0], 0, 0));
        let w = stch.weights(&WeightingContext::new(&[0.5, 0.9], 1, 1));
        assert!(w[1] > 1e3 * w[0]);
    }

    #[test]
    fn stch_guards_non_positive_losses_and_skipped_warmup() {
        let mut stch = Stch::new(2, 1.0, 2);
        let w = stch.weights(&WeightingContext::new(&[0.0, -1.0], 0, 0));
        assert!(w.iter().all(|x| x.is_finite()));
        // Jump straight past the warmup epoch: the current losses become the nadir.
        let w = stch.weights(&WeightingContext::new(&[1.0, 3.0], 1, 5));
        assert_eq!(stch.nadir(), Some(&[1.0, 3.0][..]));
        assert_abs_diff_eq!(w[0], 1.0, epsilon = 1e-12); // 2·½·1/1
        assert_abs_diff_eq!(w[1], 1.0 / 3.0, epsilon = 1e-12);
        let w = stch.weights(&WeightingContext::new(&[0.0, f64::NAN], 2, 5));
        assert!(w.iter().all(|x| x.is_finite()));
    }
}
