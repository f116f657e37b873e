//! MoCo (Fernando et al., ICLR 2023; LibMTL `MoCo.py`, methods-wave2.md §2a). State: y = 0
//! (m × n), λ = 1/m, t = 0. Each step, from the losses L and their shared-parameter gradients J:
//!     t ← t + 1,  ĝ_i = L_i·g_i/(‖g_i‖ + 1e-8),
//!     y ← y − (β/t^{βσ})(y − ĝ),
//!     λ ← softmax(λ − (γ/t^{γσ})(yyᵀ + ρI)λ)      (LibMTL's softmax, not a simplex projection),
//!     d = yᵀλ.
//! The update combines the *tracked* y, not the current J, so it is not Jᵀw and fits neither the
//! aggregator shape nor the loss-weighting shape: this is the reference computation,
//! golden-tested, not yet selectable in a `MethodSpec`. Defaults β = 0.5, βσ = 0.5, γ = 0.1,
//! γσ = 0.5, ρ = 0 (LibMTL).
use nalgebra::{DMatrix, DVector};

use super::softmax;

#[derive(Clone, Debug)]
pub struct MoCo {
    beta: f64,
    beta_sigma: f64,
    gamma: f64,
    gamma_sigma: f64,
    rho: f64,
    y: Option<DMatrix<f64>>,
    lambda: DVector<f64>,
    step: u64,
}

impl Default for MoCo {
    /// LibMTL's defaults: `MoCo_beta` 0.5, `MoCo_beta_sigma` 0.5, `MoCo_gamma` 0.1,
    /// `MoCo_gamma_sigma` 0.5, `MoCo_rho` 0.
    fn default() -> Self {
        MoCo::new(0.5, 0.5, 0.1, 0.5, 0.0)
    }
}

impl MoCo {
    pub fn new(beta: f64, beta_sigma: f64, gamma: f64, gamma_sigma: f64, rho: f64) -> Self {
        MoCo { beta, beta_sigma, gamma, gamma_sigma, rho, y: None, lambda: DVector::zeros(0), step: 0 }
    }

    /// λ after the last step.
    pub fn lambda(&self) -> &DVector<f64> {
        &self.lambda
    }

    /// One step: the update d (length n). A shape change restarts the state.
    pub fn step(&mut self, losses: &[f64], jacobian: &DMatrix<f64>) -> DVector<f64> {
        let (m, n) = jacobian.shape();
        assert_eq!(losses.len(), m, "one loss per row of J");
        if self.y.as_ref().is_none_or(|y| y.shape() != (m, n)) {
            self.y = Some(DMatrix::zeros(m, n));
            self.lambda = DVector::from_element(m, 1.0 / m as f64);
            self.step = 0;
        }
        self.step += 1;
        let t = self.step as f64;
        let rate = self.beta / t.powf(self.beta_sigma);
        let y = self.y.as_mut().expect("set above");
        for i in 0..m {
            let scale = losses[i] / (jacobian.row(i).norm() + 1e-8);
            for k in 0..n {
                let g = jacobian[(i, k)] * scale;
                y[(i, k)] -= rate * (y[(i, k)] - g);
            }
        }
        let mut a = &*y * y.transpose();
        for i in 0..m {
            a[(i, i)] += self.rho;
        }
        let step = self.gamma / t.powf(self.gamma_sigma);
        let logits = &self.lambda - (a * &self.lambda) * step;
        self.lambda = DVector::from_vec(softmax(logits.as_slice()));
        y.tr_mul(&self.lambda)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// methods-wave2.md §2a "Test this" (a transcription of LibMTL's code).
    #[test]
    fn matches_the_transcribed_steps() {
        let mut moco = MoCo::default();
        let d = moco.step(&[0.5, 2.0], &DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 3.0, -1.0]));
        assert_abs_diff_eq!(moco.lambda().clone(), DVector::from_vec(vec![0.511717, 0.488283]), epsilon = 1e-6);
        assert_abs_diff_eq!(d, DVector::from_vec(vec![0.520438, -0.039985]), epsilon = 1e-6);
        let d = moco.step(&[0.4, 1.0], &DMatrix::from_row_slice(2, 2, &[2.0, 0.0, 1.0, 1.0]));
        assert_abs_diff_eq!(moco.lambda().clone(), DVector::from_vec(vec![0.511784, 0.488216]), epsilon = 1e-6);
        assert_abs_diff_eq!(d, DVector::from_vec(vec![0.530830, 0.096229]), epsilon = 1e-6);
    }
}
