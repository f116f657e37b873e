//! DWA, dynamic weight average (Liu et al.; LibMTL `DWA.py`):
//! w_i = T·softmax_i(r_i/τ) with r_i = L̄_i(e−1)/L̄_i(e−2), the ratio of epoch-mean losses, from
//! epoch index 2 on; w = 1 before (and whenever either epoch mean is missing, e.g. after a jump
//! in the epoch index). T = m tasks, τ the temperature (`T` in LibMTL's CLI, default 2).
//!
//! Epochs → steps: the epoch means are the means of the losses passed to `weights` during each
//! epoch (LibMTL's `train_loss_buffer`), so the weights are constant within an epoch. The
//! denominator goes through `positive`. Linear scalarisation: the weights are the chain rule.

use super::registry;
use super::{positive, softmax, EpochMeans, LossWeighting, ParamSpec, WeightingContext, WeightingDescription};

pub const DWA_TEMPERATURE: f64 = 2.0;

/// This weighting's entry in the registry (`concord methods`, parameter parsing).
pub(crate) fn description() -> WeightingDescription {
    WeightingDescription {
        name: "dwa",
        label: "DWA",
        summary: "T·softmax(r/τ), r_i = ratio of the last two epoch-mean losses",
        epochs: "weights 1 in epochs 0 and 1; then constant within an epoch",
        params: vec![ParamSpec::positive("T", DWA_TEMPERATURE, registry::SCALE_MAX, "temperature τ")],
        needs_jacobian: false,
        needs_losses_after_step: false,
    }
}

#[derive(Clone, Debug)]
pub struct Dwa {
    m: usize,
    temperature: f64,
    means: EpochMeans,
}

impl Dwa {
    pub fn new(m: usize, temperature: f64) -> Self {
        Dwa { m, temperature, means: EpochMeans::default() }
    }
}

impl LossWeighting for Dwa {
    fn name(&self) -> &'static str {
        "dwa"
    }

    fn num_tasks(&self) -> usize {
        self.m
    }

    fn weights(&mut self, ctx: &WeightingContext) -> Vec<f64> {
        let m = ctx.losses.len();
        if m != self.m {
            return vec![1.0; m];
        }
        self.means.observe(ctx.epoch, ctx.losses);
        if ctx.epoch < 2 {
            return vec![1.0; m];
        }
        let (Some(prev), Some(prev2)) = (self.means.mean(ctx.epoch - 1), self.means.mean(ctx.epoch - 2)) else {
            return vec![1.0; m];
        };
        let r: Vec<f64> = prev.iter().zip(prev2).map(|(a, b)| a / positive(*b) / self.temperature).collect();
        softmax(&r).into_iter().map(|z| m as f64 * z).collect()
    }

    fn reset(&mut self) {
        self.means = EpochMeans::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn dwa_is_one_before_epoch_two_then_the_ratio_softmax() {
        let mut dwa = Dwa::new(2, 2.0);
        let mut call = |l: [f64; 2], epoch| dwa.weights(&WeightingContext::new(&l, 0, epoch));
        assert_eq!(call([2.0, 3.0], 0), vec![1.0, 1.0]);
        assert_eq!(call([2.0, 5.0], 0), vec![1.0, 1.0]); // epoch 0 mean (2, 4)
        assert_eq!(call([1.0, 4.0], 1), vec![1.0, 1.0]); // epoch 1 mean (1, 4)
                                                         // r = (1/2, 4/4) → w = 2·softmax(0.25, 0.5).
        let w = call([9.0, 9.0], 2);
        let (a, b) = (0.25f64.exp(), 0.5f64.exp());
        assert_abs_diff_eq!(w[0], 2.0 * a / (a + b), epsilon = 1e-14);
        assert_abs_diff_eq!(w[1], 2.0 * b / (a + b), epsilon = 1e-14);
        assert_abs_diff_eq!(w[0] + w[1], 2.0, epsilon = 1e-14);
        // Constant within the epoch.
        assert_eq!(call([0.1, 100.0], 2), w);
    }

    #[test]
    fn dwa_falls_back_to_one_after_an_epoch_gap_and_guards_zero() {
        let mut dwa = Dwa::new(2, 2.0);
        dwa.weights(&WeightingContext::new(&[1.0, 1.0], 0, 0));
        assert_eq!(dwa.weights(&WeightingContext::new(&[1.0, 1.0], 1, 5)), vec![1.0, 1.0]);
        let mut dwa = Dwa::new(2, 2.0);
        dwa.weights(&WeightingContext::new(&[0.0, -1.0], 0, 0));
        dwa.weights(&WeightingContext::new(&[1.0, 1.0], 1, 1));
        let w = dwa.weights(&WeightingContext::new(&[1.0, 1.0], 2, 2));
        assert!(w.iter().all(|x| x.is_finite()));
        assert_abs_diff_eq!(w.iter().sum::<f64>(), 2.0, epsilon = 1e-12);
    }
}
