//! MoDo (Chen et al., JMLR 2024, "Three-Way Trade-Off in Multi-Objective Learning"), torchjd 0.18
//! `MoDoWeighting` semantics (methods-wave2.md §1d).
//!
//! λ₀ = 1/m; one projected step per call:
//!     λ ← Π_Δ(λ − γ(Aλ + ρλ)),   d = Jᵀλ.
//! The reference takes A = J₁J₂ᵀ from two independent mini-batches (and the update from a third,
//! in LibMTL); an aggregator sees one Jacobian, so here A = G = JJᵀ, the single-batch variant
//! that torchjd warns voids the paper's convergence guarantee (the weights are otherwise the
//! same computation). No documented property row (torchjd); weighted; stateful (λ restarts when m
//! changes).
use super::numerics::{all_finite, project_onto_simplex};
use super::registry::Property::NotDocumented;
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "modo",
    label: "MoDo",
    description: "Task weights take one projected-gradient step on ½λᵀGλ + ½ρ‖λ‖² per call (single-batch G).",
    params: &[
        // torchjd: gamma > 0, rho ≥ 0; beyond 1e3 a step jumps to a simplex vertex anyway.
        param("gamma", ParamDefault::Value("0.1"), Range::Positive { max: 1e3 }, "step size of the λ update (> 0)"),
        param("rho", ParamDefault::Value("0.1"), Range::NonNegative { max: 1e3 }, "ℓ2 regularisation of λ"),
    ],
    properties: props(
        NotDocumented,
        NotDocumented,
        NotDocumented,
        Some("not in torchjd's table; A = JJᵀ from one batch (the paper uses two); weighted; stateful"),
    ),
    gramian_weighted: true,
    stateful: true,
    seeded: false,
    needs_losses: false,
};

#[derive(Clone, Debug)]
pub struct MoDo {
    gamma: f64,
    rho: f64,
    lambda: Option<DVector<f64>>,
}

impl Default for MoDo {
    /// torchjd's defaults: γ = 0.1, ρ = 0.1.
    fn default() -> Self {
        MoDo { gamma: 0.1, rho: 0.1, lambda: None }
    }
}

impl MoDo {
    /// torchjd's checks: γ > 0, ρ ≥ 0 (finite here).
    pub fn new(gamma: f64, rho: f64) -> Result<Self, String> {
        if !(gamma.is_finite() && gamma > 0.0) {
            return Err(format!("gamma must be positive, got {gamma}"));
        }
        if !(rho.is_finite() && rho >= 0.0) {
            return Err(format!("rho must be finite and ≥ 0, got {rho}"));
        }
        Ok(MoDo { gamma, rho, lambda: None })
    }
}

impl Weighting for MoDo {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        if self.lambda.as_ref().is_none_or(|l| l.len() != m) {
            self.lambda = Some(DVector::from_element(m, 1.0 / m as f64));
        }
        let lambda = self.lambda.as_mut().expect("set above");
        if m == 0 || !all_finite(gram) {
            return lambda.clone();
        }
        let grad = gram * &*lambda + &*lambda * self.rho;
        let next = project_onto_simplex(&(&*lambda - grad * self.gamma));
        // A huge G (γ‖G‖ overflowing) would give a NaN threshold: keep λ.
        if next.iter().all(|x| x.is_finite()) {
            *lambda = next;
        }
        lambda.clone()
    }

    fn reset(&mut self) {
        self.lambda = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// methods-wave2.md §1d "Test this" (torchjd 0.18 values).
    #[test]
    fn matches_the_reference_sequence() {
        let a = DMatrix::from_row_slice(2, 2, &[1.0, -1.0, -1.0, 2.0]);
        let mut modo = MoDo::default();
        for want in [[0.525, 0.475], [0.5435, 0.4565], [0.557190, 0.442810]] {
            assert_abs_diff_eq!(modo.weights(&a), DVector::from_row_slice(&want), epsilon = 1e-6);
        }
        let w = MoDo::new(1.0, 0.0).unwrap().weights(&a);
        assert_abs_diff_eq!(w, DVector::from_vec(vec![0.75, 0.25]), epsilon = 1e-12);
        modo.reset();
        assert_abs_diff_eq!(modo.weights(&a), DVector::from_vec(vec![0.525, 0.475]), epsilon = 1e-12);
        assert!(MoDo::new(0.0, 0.1).is_err() && MoDo::new(0.1, -1.0).is_err());
    }
}
