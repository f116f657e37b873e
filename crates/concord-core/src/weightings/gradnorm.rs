//! GradNorm (Chen et al. 2018; LibMTL `GradNorm.py`).
//!
//! Weights λ = T·softmax(s) with learnable s, s₀ = 1 (so λ₀ = 1). Epoch 0 is EW (weights 1, s
//! untouched) while the epoch-0 mean losses L_i(0) are recorded. From epoch 1 on, each step:
//! - G_i = ‖λ_i g_i‖ = λ_i‖g_i‖ with g_i the task gradient of the shared parameters (from
//!   `ctx.gram`'s diagonal or `ctx.jacobian`'s rows), Ḡ = mean_i G_i;
//! - r_i = L̃_i/mean(L̃), L̃_i = L_i/L_i(0); the target Ḡ·r_i^α is held constant (detached);
//! - L_grad = Σ_i |G_i − Ḡ·r_i^α|; its gradient wrt λ_i is sign(G_i − target_i)·‖g_i‖ (torch's
//!   sign(0) = 0), pulled back through λ = T·softmax(s);
//! - the returned weights are λ *before* s takes its Adam step (LibMTL detaches λ, then the shared
//!   optimizer steps s), with the trainer's defaults lr 1e-4, weight decay 1e-5.
//!
//! L_grad is not a function of the task losses, so λ are the chain-rule weights of Σ λ_i L_i.
//! Without a Jacobian or Gramian in the context (or with one of the wrong size) λ is returned and
//! s is not updated. If epoch 0 was never seen, the mean losses of the first closed epoch (or, if
//! none, the first losses seen from epoch 1 on) stand in for L(0). Losses go through `positive`.

use super::registry;
use super::registry::{TRAINER_LR, TRAINER_WEIGHT_DECAY};
use super::{
    positive, softmax, softmax_vjp, AdamParam, EpochMeans, LossWeighting, ParamSpec, WeightingContext,
    WeightingDescription,
};

pub const GRADNORM_ALPHA: f64 = 1.5;

/// This weighting's entry in the registry (`concord methods`, parameter parsing).
pub(crate) fn description() -> WeightingDescription {
    WeightingDescription {
        name: "gradnorm",
        label: "GradNorm",
        summary: "T·softmax(s); s balances ‖w_i g_i‖ towards mean·r_i^α by Adam on Σ|G_i − target_i|",
        epochs: "EW in epoch 0 (records L(0) as its mean losses); adapts every step from epoch 1",
        params: vec![
            ParamSpec::non_negative("alpha", GRADNORM_ALPHA, registry::SCALE_MAX, "restoring-force strength α"),
            ParamSpec::positive(
                "lr",
                TRAINER_LR,
                registry::LR_MAX,
                "Adam learning rate of s (LibMTL: the trainer's lr)",
            ),
            ParamSpec::non_negative(
                "weight_decay",
                TRAINER_WEIGHT_DECAY,
                registry::DECAY_MAX,
                "Adam L2 weight decay of s",
            ),
        ],
        needs_jacobian: true,
        needs_losses_after_step: false,
    }
}

#[derive(Clone, Debug)]
pub struct GradNorm {
    alpha: f64,
    s: AdamParam,
    means: EpochMeans,
    reference: Option<Vec<f64>>,
}

impl GradNorm {
    pub fn new(m: usize, alpha: f64, lr: f64, weight_decay: f64) -> Self {
        GradNorm {
            alpha,
            s: AdamParam::new(vec![1.0; m], lr, weight_decay),
            means: EpochMeans::default(),
            reference: None,
        }
    }

    /// The current logits s.
    pub fn logits(&self) -> &[f64] {
        &self.s.value
    }

    /// The reference losses L(0) once known.
    pub fn reference_losses(&self) -> Option<&[f64]> {
        self.reference.as_deref()
    }

    fn lambda(&self) -> Vec<f64> {
        let m = self.s.value.len() as f64;
        softmax(&self.s.value).into_iter().map(|z| m * z).collect()
    }
}

/// ∂L_grad/∂λ for λ, ‖g_i‖, losses and reference losses (the target held constant).
pub(crate) fn gradnorm_lambda_grad(
    lambda: &[f64],
    norms: &[f64],
    losses: &[f64],
    reference: &[f64],
    alpha: f64,
) -> Vec<f64> {
    let m = lambda.len() as f64;
    let g: Vec<f64> = lambda.iter().zip(norms).map(|(l, n)| l * n).collect();
    let g_bar = g.iter().sum::<f64>() / m;
    let tilde: Vec<f64> = losses.iter().zip(reference).map(|(l, r)| positive(*l) / positive(*r)).collect();
    let mean_tilde = tilde.iter().sum::<f64>() / m;
    g.iter()
        .zip(&tilde)
        .zip(norms)
        .map(|((gi, ti), ni)| {
            let r = ti / mean_tilde;
            let diff = gi - g_bar * r.powf(alpha);
            let sign = if diff > 0.0 {
                1.0
            } else if diff < 0.0 {
                -1.0
            } else {
                0.0
            };
            sign * ni
        })
        .collect()
}

impl LossWeighting for GradNorm {
    fn name(&self) -> &'static str {
        "gradnorm"
    }

    fn num_tasks(&self) -> usize {
        self.s.value.len()
    }

    fn weights(&mut self, ctx: &WeightingContext) -> Vec<f64> {
        let m = self.num_tasks();
        if ctx.losses.len() != m {
            return vec![1.0; ctx.losses.len()];
        }
        self.means.observe(ctx.epoch, ctx.losses);
        if ctx.epoch == 0 {
            return vec![1.0; m];
        }
        if self.reference.is_none() {
            let first_closed = (0..ctx.epoch).find_map(|e| self.means.mean(e).map(|v| v.to_vec()));
            self.reference = Some(first_closed.unwrap_or_else(|| ctx.losses.to_vec()));
        }
        let lambda = self.lambda();
        let norms = match ctx.grad_norms() {
            Some(n) if n.len() == m => n,
            _ => return lambda,
        };
        let reference = self.reference.as_deref().unwrap_or(ctx.losses);
        let d_lambda = gradnorm_lambda_grad(&lambda, &norms, ctx.losses, reference, self.alpha);
        // λ = m·softmax(s) ⇒ ∂L/∂s = m·(∂softmax/∂s)ᵀ ∂L/∂λ.
        let z = softmax(&self.s.value);
        let grad: Vec<f64> = softmax_vjp(&z, &d_lambda).into_iter().map(|g| m as f64 * g).collect();
        self.s.step(&grad);
        lambda
    }

    fn reset(&mut self) {
        self.s.reset();
        self.means = EpochMeans::default();
        self.reference = None;
    }

    fn needs_jacobian(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use nalgebra::DMatrix;

    #[test]
    fn gradnorm_is_ew_in_epoch_zero() {
        let mut gn = GradNorm::new(2, 1.5, 0.1, 0.0);
        let j = DMatrix::from_row_slice(2, 2, &[3.0, 0.0, 0.0, 1.0]);
        let w = gn.weights(&WeightingContext::new(&[2.0, 1.0], 0, 0).with_jacobian(&j));
        assert_eq!(w, vec![1.0, 1.0]);
        assert_eq!(gn.logits(), &[1.0, 1.0]);
    }

    #[test]
    fn gradnorm_one_update_of_s_by_hand() {
        // ‖g‖ = (3, 1), s = (1, 1) → λ = (1, 1), G = (3, 1), Ḡ = 2. L(0) = (2, 1), L = (1, 1):
        // L̃ = (0.5, 1), r = (2/3, 4/3), targets 2·r^1.5 = (1.089, 3.079) → signs (+, −),
        // ∂L/∂λ = (3, −1); ∂L/∂s = 2·z⊙(a − zᵀa) = 2·0.5·(3 − 1, −1 − 1) = (2, −2).
        let lambda_grad = gradnorm_lambda_grad(&[1.0, 1.0], &[3.0, 1.0], &[1.0, 1.0], &[2.0, 1.0], 1.5);
        assert_eq!(lambda_grad, vec![3.0, -1.0]);

        let lr = 0.01;
        let mut gn = GradNorm::new(2, 1.5, lr, 0.0);
        let j = DMatrix::from_row_slice(2, 2, &[3.0, 0.0, 0.0, 1.0]);
        gn.weights(&WeightingContext::new(&[2.0, 1.0], 0, 0).with_jacobian(&j));
        let w = gn.weights(&WeightingContext::new(&[1.0, 1.0], 1, 1).with_jacobian(&j));
        assert_eq!(gn.reference_losses(), Some(&[2.0, 1.0][..]));
        // Weights are λ before the step; the first Adam step moves s by lr against the gradient.
        assert_abs_diff_eq!(w[0], 1.0, epsilon = 1e-15);
        assert_abs_diff_eq!(gn.logits()[0], 1.0 - lr, epsilon = 1e-9);
        assert_abs_diff_eq!(gn.logits()[1], 1.0 + lr, epsilon = 1e-9);
        // Next weights: 2·softmax(1 − lr, 1 + lr), read off the Gramian this time.
        let g = &j * j.transpose();
        let w = gn.weights(&WeightingContext::new(&[1.0, 1.0], 2, 1).with_gram(&g));
        let e = (2.0 * lr).exp();
        assert_abs_diff_eq!(w[0], 2.0 / (1.0 + e), epsilon = 1e-9);
        assert_abs_diff_eq!(w[0] + w[1], 2.0, epsilon = 1e-12);
    }

    #[test]
    fn gradnorm_without_jacobian_keeps_s() {
        let mut gn = GradNorm::new(2, 1.5, 0.1, 0.0);
        gn.weights(&WeightingContext::new(&[2.0, 1.0], 0, 0));
        let w = gn.weights(&WeightingContext::new(&[0.0, -3.0], 1, 1));
        assert_eq!(w, vec![1.0, 1.0]);
        assert_eq!(gn.logits(), &[1.0, 1.0]);
    }

    #[test]
    fn gradnorm_balances_gradient_norms_over_time() {
        // Equal loss ratios: the target is Ḡ for each task, so λ_i‖g_i‖ equalise: λ ∝ 1/‖g_i‖.
        let mut gn = GradNorm::new(2, 1.5, 0.01, 0.0);
        let j = DMatrix::from_row_slice(2, 2, &[3.0, 0.0, 0.0, 1.0]);
        gn.weights(&WeightingContext::new(&[1.0, 1.0], 0, 0).with_jacobian(&j));
        let mut w = vec![];
        for step in 1..3000 {
            w = gn.weights(&WeightingContext::new(&[1.0, 1.0], step, 1).with_jacobian(&j));
        }
        assert_abs_diff_eq!(w[0] * 3.0, w[1] * 1.0, epsilon = 0.1);
    }
}
