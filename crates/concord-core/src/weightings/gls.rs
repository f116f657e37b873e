//! GLS, geometric loss strategy (LibMTL `GLS.py`): L_total = (Π_i L_i)^{1/T}, T = m.
//!
//! The chain-rule weight is ∂L_total/∂L_i = (Π L)^{1/T}/(T·L_i), computed in log space
//! ((ΠL)^{1/T} = exp(mean_i ln L_i)) so that products of many small or large losses neither
//! underflow nor overflow. (LibMTL *reports* L_i/(T·ΠL), which is not the gradient; we return the
//! gradient, which is what scales g_i.) Losses go through `positive`, so L_i ≤ 0 is treated as
//! LOSS_FLOOR. Stateless; no epochs.

use super::{positive, LossWeighting, WeightingContext, WeightingDescription};

/// This weighting's entry in the registry (`concord methods`, parameter parsing).
pub(crate) fn description() -> WeightingDescription {
    WeightingDescription {
        name: "gls",
        label: "GLS",
        summary: "(Π L_i)^{1/T}; weight (ΠL)^{1/T}/(T·L_i)",
        epochs: "none",
        params: vec![],
        needs_jacobian: false,
        needs_losses_after_step: false,
    }
}

#[derive(Clone, Debug)]
pub struct Gls {
    m: usize,
}

impl Gls {
    pub fn new(m: usize) -> Self {
        Gls { m }
    }
}

/// (∂/∂L_i) (Π L)^{1/T} at `losses`.
pub(crate) fn gls_weights(losses: &[f64]) -> Vec<f64> {
    let t = losses.len() as f64;
    if losses.is_empty() {
        return Vec::new();
    }
    let l: Vec<f64> = losses.iter().map(|&x| positive(x)).collect();
    let log_gm = l.iter().map(|x| x.ln()).sum::<f64>() / t;
    // exp(log_gm − ln L_i)/T: the ratio in log space stays finite.
    l.iter().map(|x| (log_gm - x.ln()).exp() / t).map(|w| if w.is_finite() { w } else { f64::MAX }).collect()
}

impl LossWeighting for Gls {
    fn name(&self) -> &'static str {
        "gls"
    }

    fn num_tasks(&self) -> usize {
        self.m
    }

    fn weights(&mut self, ctx: &WeightingContext) -> Vec<f64> {
        if ctx.losses.len() != self.m {
            return vec![1.0; ctx.losses.len()];
        }
        gls_weights(ctx.losses)
    }

    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn gls_hand_computed() {
        // L = (1, 4): (ΠL)^{1/2} = 2, w = (2/(2·1), 2/(2·4)) = (1, 0.25).
        let w = Gls::new(2).weights(&WeightingContext::new(&[1.0, 4.0], 0, 0));
        assert_abs_diff_eq!(w[0], 1.0, epsilon = 1e-14);
        assert_abs_diff_eq!(w[1], 0.25, epsilon = 1e-14);
    }

    #[test]
    fn gls_is_the_chain_rule_of_the_geometric_mean() {
        let l = [0.3, 2.0, 7.5];
        let f = |l: &[f64]| l.iter().product::<f64>().powf(1.0 / 3.0);
        let w = gls_weights(&l);
        for i in 0..3 {
            let h = 1e-6;
            let (mut lp, mut lm) = (l, l);
            lp[i] += h;
            lm[i] -= h;
            assert_abs_diff_eq!(w[i], (f(&lp) - f(&lm)) / (2.0 * h), epsilon = 1e-8);
            // (ΠL)^{1/T}/(T·L_i)
            assert_abs_diff_eq!(w[i], f(&l) / (3.0 * l[i]), epsilon = 1e-12);
        }
    }

    #[test]
    fn gls_guards_zero_and_negative_losses() {
        let w = gls_weights(&[0.0, -1.0, 1e300, 1e-300]);
        assert!(w.iter().all(|x| x.is_finite() && *x >= 0.0));
    }
}
