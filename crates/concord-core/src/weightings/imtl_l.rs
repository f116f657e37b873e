//! IMTL-L, the loss half of IMTL (Liu et al., ICLR 2021; LibMTL `IMTL.py`, methods-wave2.md §2c):
//! L̃_i = e^{s_i}L_i − s_i with learnable s_i, initialised to 0.
//!
//! Weight (chain rule): ∂L̃/∂L_i = e^{s_i}, so task i's gradient row is scaled by e^{s_i} (LibMTL
//! backpropagates L̃ and hands the scaled gradients g̃_i = e^{s_i}g_i to IMTL-G: here
//! `imtl-g+imtl-l` does the same). Then s takes one Adam step on ∂L̃/∂s_i = e^{s_i}L_i − 1, whose
//! root is s_i = −log L_i (every scaled loss equal to 1). In LibMTL s is a model parameter trained
//! by the main optimizer, so the defaults are the trainer's: Adam, lr 1e-4, weight decay 1e-5
//! (torch's L2 form). The weight is read before the step, as the backward pass reads s. No epochs.

use super::registry;
use super::registry::{TRAINER_LR, TRAINER_WEIGHT_DECAY};
use super::{AdamParam, LossWeighting, ParamSpec, WeightingContext, WeightingDescription};

/// This weighting's entry in the registry (`concord methods`, parameter parsing).
pub(crate) fn description() -> WeightingDescription {
    WeightingDescription {
        name: "imtl-l",
        label: "IMTL-L",
        summary: "Σ e^{s_i}L_i − s_i, learnable s (init 0); weight e^{s_i}; pair with imtl-g for IMTL",
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

/// |s| is kept below this, so that e^{s} stays finite whatever the losses (e^{±700} ≈ 1e±304).
const S_MAX: f64 = 700.0;

#[derive(Clone, Debug)]
pub struct ImtlL {
    s: AdamParam,
}

impl ImtlL {
    pub fn new(m: usize, lr: f64, weight_decay: f64) -> Self {
        ImtlL { s: AdamParam::new(vec![0.0; m], lr, weight_decay) }
    }

    /// The current loss scales s (weights e^{s}).
    pub fn scales(&self) -> &[f64] {
        &self.s.value
    }
}

impl LossWeighting for ImtlL {
    fn name(&self) -> &'static str {
        "imtl-l"
    }

    fn num_tasks(&self) -> usize {
        self.s.value.len()
    }

    fn weights(&mut self, ctx: &WeightingContext) -> Vec<f64> {
        if ctx.losses.len() != self.num_tasks() {
            return vec![1.0; ctx.losses.len()];
        }
        let w: Vec<f64> = self.s.value.iter().map(|s| s.exp()).collect();
        let grad: Vec<f64> = w.iter().zip(ctx.losses).map(|(wi, li)| wi * li - 1.0).collect();
        self.s.step(&grad);
        for s in &mut self.s.value {
            *s = s.clamp(-S_MAX, S_MAX);
        }
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

    /// methods-wave2.md §2c: with s = [0.5, −1] and L = [0.5, 2], ∂L̃/∂s = [−0.175639, −0.264241].
    #[test]
    fn starts_at_unit_weights_and_steps_against_the_scale_gradient() {
        let mut w = ImtlL::new(2, 0.01, 0.0);
        assert_eq!(w.weights(&WeightingContext::new(&[0.5, 2.0], 0, 0)), vec![1.0, 1.0]);
        // ∂/∂s = L − 1 = (−0.5, +1): the first Adam step moves s by lr against each sign.
        assert_abs_diff_eq!(w.scales()[0], 0.01, epsilon = 1e-9);
        assert_abs_diff_eq!(w.scales()[1], -0.01, epsilon = 1e-9);
        let g = |s: f64, l: f64| s.exp() * l - 1.0;
        assert_abs_diff_eq!(g(0.5, 0.5), -0.175639, epsilon = 1e-6);
        assert_abs_diff_eq!(g(-1.0, 2.0), -0.264241, epsilon = 1e-6);
        w.reset();
        assert_eq!(w.scales(), &[0.0, 0.0]);
    }

    #[test]
    fn drives_every_scaled_loss_to_one() {
        let mut w = ImtlL::new(2, 0.05, 0.0);
        let l = [4.0, 0.25];
        for step in 0..4000 {
            w.weights(&WeightingContext::new(&l, step, 0));
        }
        assert_abs_diff_eq!(w.scales()[0], -(4f64.ln()), epsilon = 0.05);
        assert_abs_diff_eq!(w.scales()[1], -(0.25f64.ln()), epsilon = 0.05);
    }
}
