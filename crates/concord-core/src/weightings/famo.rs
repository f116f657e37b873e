//! FAMO, fast adaptive multitask optimisation (Liu et al. 2023; LibMTL `FAMO.py`).
//!
//! Logits w (w₀ = 0), z = softmax(w), D_i = L_i − min_i + 1e-8 with min_i = 0 by default.
//! L_total = Σ_i z_i·log D_i / c with c = Σ_i z_i/D_i detached, so the chain-rule weight is
//! ∂L_total/∂L_i = z_i/(c·D_i) (the weights sum to 1).
//!
//! After the model step the trainer recomputes the losses on the same batch and calls
//! `after_step`: δ = log D(before) − log D(after), w.grad = (∂z/∂w)ᵀδ, then one Adam step on w at
//! lr `w_lr` = 0.025 with weight decay `gamma` = 1e-3 (torch's L2 form; LibMTL's defaults). If
//! `after_step` is never called, w stays 0 and FAMO is the fixed scalarisation Σ log D_i / m.
//! No epochs. Guard: D_i = max(L_i − min_i, 0) + 1e-8, so a loss below its minimum (where
//! LibMTL's log would be NaN) counts as at the minimum.

use super::registry;
use super::{softmax, softmax_vjp, AdamParam, LossWeighting, ParamSpec, WeightingContext, WeightingDescription};

pub const FAMO_W_LR: f64 = 0.025;
pub const FAMO_GAMMA: f64 = 1e-3;
const FAMO_EPS: f64 = 1e-8;

/// This weighting's entry in the registry (`concord methods`, parameter parsing).
pub(crate) fn description() -> WeightingDescription {
    WeightingDescription {
        name: "famo",
        label: "FAMO",
        summary: "Σ z_i log D_i / c, z = softmax(w); w learns from the loss decrease of each step",
        epochs: "none",
        params: vec![
            ParamSpec::positive("w_lr", FAMO_W_LR, registry::LR_MAX, "Adam learning rate of the logits w"),
            ParamSpec::non_negative("gamma", FAMO_GAMMA, registry::DECAY_MAX, "Adam weight decay of the logits w"),
        ],
        needs_jacobian: false,
        needs_losses_after_step: true,
    }
}

#[derive(Clone, Debug)]
pub struct Famo {
    w: AdamParam,
    min_losses: Vec<f64>,
    prev: Option<Vec<f64>>,
}

impl Famo {
    pub fn new(m: usize, w_lr: f64, gamma: f64) -> Self {
        Famo { w: AdamParam::new(vec![0.0; m], w_lr, gamma), min_losses: vec![0.0; m], prev: None }
    }

    /// Known lower bounds of the losses (FAMO's `set_min_losses`; e.g. the toy's [−2.1, −21]).
    /// Ignored if the length is not m or a value is not finite.
    pub fn with_min_losses(mut self, min_losses: &[f64]) -> Self {
        if min_losses.len() == self.min_losses.len() && min_losses.iter().all(|x| x.is_finite()) {
            self.min_losses = min_losses.to_vec();
        }
        self
    }

    /// The current logits w.
    pub fn logits(&self) -> &[f64] {
        &self.w.value
    }

    fn d(&self, losses: &[f64]) -> Vec<f64> {
        losses
            .iter()
            .zip(&self.min_losses)
            .map(|(l, mn)| {
                // NaN → 0 as well: clamp would keep NaN, max returns the non-NaN operand.
                #[allow(clippy::manual_clamp)]
                let x = (l - mn).max(0.0).min(f64::MAX);
                x + FAMO_EPS
            })
            .collect()
    }
}

impl LossWeighting for Famo {
    fn name(&self) -> &'static str {
        "famo"
    }

    fn num_tasks(&self) -> usize {
        self.w.value.len()
    }

    fn weights(&mut self, ctx: &WeightingContext) -> Vec<f64> {
        if ctx.losses.len() != self.num_tasks() {
            return vec![1.0; ctx.losses.len()];
        }
        let z = softmax(&self.w.value);
        let d = self.d(ctx.losses);
        let c: f64 = z.iter().zip(&d).map(|(zi, di)| zi / di).sum();
        self.prev = Some(ctx.losses.to_vec());
        z.iter().zip(&d).map(|(zi, di)| zi / (c * di)).collect()
    }

    fn after_step(&mut self, losses_after: &[f64]) {
        let Some(prev) = self.prev.take() else { return };
        if losses_after.len() != prev.len() {
            return;
        }
        let (before, after) = (self.d(&prev), self.d(losses_after));
        let delta: Vec<f64> = before.iter().zip(&after).map(|(b, a)| b.ln() - a.ln()).collect();
        let z = softmax(&self.w.value);
        self.w.step(&softmax_vjp(&z, &delta));
    }

    fn reset(&mut self) {
        self.w.reset();
        self.prev = None;
    }

    fn needs_losses_after_step(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn famo_initial_weights_by_hand() {
        // z = (½, ½), D ≈ (1, 4), c = ½ + ⅛ = 0.625 → w = (0.5/0.625, 0.125/0.625) = (0.8, 0.2).
        let mut famo = Famo::new(2, FAMO_W_LR, FAMO_GAMMA);
        let w = famo.weights(&WeightingContext::new(&[1.0, 4.0], 0, 0));
        assert_abs_diff_eq!(w[0], 0.8, epsilon = 1e-7);
        assert_abs_diff_eq!(w[1], 0.2, epsilon = 1e-7);
    }

    #[test]
    fn famo_one_logit_update_by_hand() {
        // Before (1, 4), after (0.5, 4): δ = (ln 2, 0), zᵀδ = ln2/2,
        // grad = z⊙(δ − zᵀδ) = (ln2/4, −ln2/4); the first Adam step moves w by ∓w_lr.
        let mut famo = Famo::new(2, 0.025, 0.0);
        famo.weights(&WeightingContext::new(&[1.0, 4.0], 0, 0));
        famo.after_step(&[0.5, 4.0]);
        // First Adam step: lr·g/(|g| + eps) with bias-corrected moments m̂ = g, v̂ = g².
        let g = 2f64.ln() / 4.0;
        let step = 0.025 * g / (g + 1e-8);
        assert_abs_diff_eq!(famo.logits()[0], -step, epsilon = 1e-15);
        assert_abs_diff_eq!(famo.logits()[1], step, epsilon = 1e-15);
        // The task that improved loses weight: z = softmax(−0.025, 0.025).
        let w = famo.weights(&WeightingContext::new(&[1.0, 1.0], 1, 0));
        let z0 = 1.0 / (1.0 + 0.05f64.exp());
        assert_abs_diff_eq!(w[0], z0, epsilon = 1e-7);
        // A second after_step without weights() in between does nothing.
        famo.after_step(&[0.1, 0.1]);
        let once = famo.logits().to_vec();
        famo.after_step(&[0.01, 0.01]);
        assert_eq!(famo.logits(), &once[..]);
        famo.reset();
        assert_eq!(famo.logits(), &[0.0, 0.0]);
    }

    #[test]
    fn famo_matches_toys_chain_rule_and_guards() {
        // ∂/∂L_i Σ z_j log D_j / c = z_i/(c·D_i): finite differences at fixed z, c.
        let mut famo = Famo::new(3, FAMO_W_LR, FAMO_GAMMA).with_min_losses(&[-2.1, -21.0, 0.0]);
        let l = [0.5, -10.0, 3.0];
        let w = famo.weights(&WeightingContext::new(&l, 0, 0));
        assert_abs_diff_eq!(w.iter().sum::<f64>(), 1.0, epsilon = 1e-12);
        let d: Vec<f64> = [0.5 + 2.1, -10.0 + 21.0, 3.0].iter().map(|x| x + 1e-8).collect();
        let c: f64 = d.iter().map(|x| (1.0 / 3.0) / x).sum();
        for i in 0..3 {
            assert_abs_diff_eq!(w[i], (1.0 / 3.0) / (c * d[i]), epsilon = 1e-12);
        }
        // Below the minimum: clamped, still finite.
        let w = famo.weights(&WeightingContext::new(&[-5.0, -30.0, -1.0], 1, 0));
        assert!(w.iter().all(|x| x.is_finite()));
        famo.after_step(&[f64::NAN, 0.0, 0.0]);
        assert!(famo.logits().iter().all(|x| x.is_finite()));
    }
}
