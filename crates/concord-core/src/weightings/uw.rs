//! UW, uncertainty weighting (Kendall et al.; LibMTL `UW.py`):
//! L_total = Σ_i [L_i/(2e^{s_i}) + s_i/2] with learnable s_i, initialised to −0.5.
//!
//! Weight (chain rule, equal to LibMTL's reported weight): ∂L_total/∂L_i = 1/(2e^{s_i}); the
//! s_i/2 term does not depend on L. Then s takes one Adam step on ∂L_total/∂s_i =
//! 1/2 − L_i/(2e^{s_i}) (the stationary point is e^{s_i} = L_i). In LibMTL s shares the model's
//! optimizer, so the defaults are the trainer's: Adam, lr 1e-4, weight decay 1e-5 (torch's L2
//! form). Losses are used as given here (no log), so no guard is needed; a non-finite gradient
//! skips the update. No epochs.

use super::registry;
use super::registry::{TRAINER_LR, TRAINER_WEIGHT_DECAY};
use super::{AdamParam, LossWeighting, ParamSpec, WeightingContext, WeightingDescription};

pub const UW_INIT: f64 = -0.5;

/// This weighting's entry in the registry (`concord methods`, parameter parsing).
pub(crate) fn description() -> WeightingDescription {
    WeightingDescription {
        name: "uw",
        label: "UW",
        summary: "Σ L_i/(2e^{s_i}) + s_i/2, learnable s (init −0.5); weight 1/(2e^{s_i})",
        epochs: "none",
        params: vec![
            ParamSpec::positive(
                "lr",
                TRAINER_LR,
                registry::LR_MAX,
                "Adam learning rate of the learnable parameters (LibMTL: the trainer's lr)",
            ),
            ParamSpec::non_negative(
                "weight_decay",
                TRAINER_WEIGHT_DECAY,
                registry::DECAY_MAX,
                "Adam L2 weight decay of the learnable parameters",
            ),
        ],
        needs_jacobian: false,
        needs_losses_after_step: false,
    }
}

#[derive(Clone, Debug)]
pub struct Uw {
    s: AdamParam,
}

impl Uw {
    pub fn new(m: usize, lr: f64, weight_decay: f64) -> Self {
        Uw { s: AdamParam::new(vec![UW_INIT; m], lr, weight_decay) }
    }

    /// The current log-variances s.
    pub fn log_vars(&self) -> &[f64] {
        &self.s.value
    }
}

impl LossWeighting for Uw {
    fn name(&self) -> &'static str {
        "uw"
    }

    fn num_tasks(&self) -> usize {
        self.s.value.len()
    }

    fn weights(&mut self, ctx: &WeightingContext) -> Vec<f64> {
        if ctx.losses.len() != self.num_tasks() {
            return vec![1.0; ctx.losses.len()];
        }
        let w: Vec<f64> = self.s.value.iter().map(|s| 0.5 * (-s).exp()).collect();
        let grad: Vec<f64> = w.iter().zip(ctx.losses).map(|(wi, li)| 0.5 - wi * li).collect();
        self.s.step(&grad);
        w
    }

    fn reset(&mut self) {
        self.s.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn uw_initial_weight_is_one_over_two_e_to_minus_half() {
        let mut uw = Uw::new(2, 1e-4, 1e-5);
        let w = uw.weights(&WeightingContext::new(&[1.0, 0.5], 0, 0));
        let expected = 1.0 / (2.0 * (-0.5f64).exp());
        assert_abs_diff_eq!(w[0], expected, epsilon = 1e-15);
        assert_abs_diff_eq!(w[1], expected, epsilon = 1e-15);
    }

    #[test]
    fn uw_adam_step_on_s_by_hand() {
        // ∂/∂s_i = 1/2 − L_i·w_i: L = (1, 0.5) → (0.5 − 0.824, 0.5 − 0.412) = (−, +). The first
        // Adam step moves each s_i by lr against the sign of its gradient (plus decay wd·s).
        let lr = 0.01;
        let mut uw = Uw::new(2, lr, 0.0);
        uw.weights(&WeightingContext::new(&[1.0, 0.5], 0, 0));
        // First Adam step: lr·g/(|g| + eps) (bias-corrected m̂ = g, v̂ = g²).
        let w0 = 0.5 * 0.5f64.exp();
        let adam1 = |g: f64| lr * g / (g.abs() + 1e-8);
        assert_abs_diff_eq!(uw.log_vars()[0], -0.5 - adam1(0.5 - w0 * 1.0), epsilon = 1e-15);
        assert_abs_diff_eq!(uw.log_vars()[1], -0.5 - adam1(0.5 - w0 * 0.5), epsilon = 1e-15);
        let w = uw.weights(&WeightingContext::new(&[1.0, 0.5], 1, 0));
        assert_abs_diff_eq!(w[0], 0.5 * (0.5 - lr).exp(), epsilon = 1e-9);
        uw.reset();
        assert_eq!(uw.log_vars(), &[UW_INIT, UW_INIT]);
    }

    #[test]
    fn uw_drives_e_to_the_s_towards_the_loss() {
        // Fixed losses: s_i → ln L_i, so the weight → 1/(2L_i).
        let mut uw = Uw::new(2, 0.05, 0.0);
        let l = [2.0, 0.25];
        for step in 0..4000 {
            uw.weights(&WeightingContext::new(&l, step, 0));
        }
        assert_abs_diff_eq!(uw.log_vars()[0], 2f64.ln(), epsilon = 0.05);
        assert_abs_diff_eq!(uw.log_vars()[1], 0.25f64.ln(), epsilon = 0.05);
    }
}
