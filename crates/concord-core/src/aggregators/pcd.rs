//! PCD, Priority-Constrained Descent (TMLR 2026, "Not All Objectives Are Born Equal"), torchjd 0.18
//! `_pcd.py` semantics (methods-wave2.md §1b). Row 0 of J is the primary task.
//!
//! State: v = EMA of diag G with decay β (zero-initialised, bias-corrected), t. Each call:
//!     v ← βv + (1−β)·diag G,  v̂ = v/(1−βᵗ),  s_i = 1/√(v̂_i + ε) (0 when that root is 0),
//!     Ĝ = G ⊙ ssᵀ,  w̃ = [1, μ] from  min_d ½‖d − g̃₁‖²  s.t.  g̃_jᵀd ≥ τ_j‖g̃_j‖² (j ≥ 2),
//! solved with the Goldfarb–Idnani dual active-set method in Gram form (infeasible → w̃ = e₁),
//!     w = w̃ ⊙ s · √(G₀₀ / w̃ᵀĜw̃)   (so ‖d‖ = ‖g₁‖), or 0 if G₀₀ = 0 or w̃ᵀĜw̃ is rounding noise.
//! Not symmetric in the tasks; no documented property row (torchjd); weighted; stateful (the EMA
//! restarts when m changes). A non-finite G gives NaN weights in torchjd; here the caller gets
//! zero weights (no step) and the EMA is left untouched, so nothing downstream turns NaN.
use super::numerics::argmin_first;
use super::registry::Property::NotDocumented;
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range, EPS_MAX};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "pcd",
    label: "PCD",
    description: "Priority-constrained descent: follows task 1's gradient while every other task keeps a fraction τ of its own normalised progress.",
    params: &[
        param(
            "tau",
            ParamDefault::Value("0.02"),
            Range::UnitInterval,
            "fraction τ of normalised first-order progress guaranteed to each secondary task",
        ),
        param("beta", ParamDefault::Value("0.999"), Range::UnitIntervalOpen, "EMA decay of the squared gradient norms (< 1)"),
        param(
            "eps",
            ParamDefault::Value("1e-8"),
            Range::NonNegative { max: EPS_MAX },
            "added to the EMA before its inverse square root",
        ),
    ],
    properties: props(
        NotDocumented,
        NotDocumented,
        NotDocumented,
        Some("not in torchjd's table; row 1 is the primary task (asymmetric); weighted; stateful"),
    ),
    gramian_weighted: true,
    stateful: true,
    seeded: false,
    needs_losses: false,
};

#[derive(Clone, Debug)]
pub struct Pcd {
    tau: f64,
    beta: f64,
    eps: f64,
    /// EMA of ‖g_i‖² and the step count; `None` until the first call.
    ema: Option<(DVector<f64>, i32)>,
}

impl Default for Pcd {
    /// torchjd's defaults: τ = 0.02, β = 0.999, ε = 1e-8.
    fn default() -> Self {
        Pcd { tau: 0.02, beta: 0.999, eps: 1e-8, ema: None }
    }
}

impl Pcd {
    /// torchjd's checks: τ ∈ [0, 1], β ∈ [0, 1), ε ≥ 0.
    pub fn new(tau: f64, beta: f64, eps: f64) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&tau) {
            return Err(format!("tau must be in [0, 1], got {tau}"));
        }
        if !(0.0..1.0).contains(&beta) {
            return Err(format!("beta must be in [0, 1), got {beta}"));
        }
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(format!("eps must be finite and ≥ 0, got {eps}"));
        }
        Ok(Pcd { tau, beta, eps, ema: None })
    }

    fn update_scales(&mut self, sq_norms: &DVector<f64>) -> DVector<f64> {
        let m = sq_norms.len();
        if self.ema.as_ref().is_none_or(|(v, _)| v.len() != m) {
            self.ema = Some((DVector::zeros(m), 0));
        }
        let (v, t) = self.ema.as_mut().expect("set above");
        *t = t.saturating_add(1);
        *v = &*v * self.beta + sq_norms * (1.0 - self.beta);
        let debias = 1.0 - self.beta.powi(*t);
        v.map(|x| {
            let den = (x / debias + self.eps).sqrt();
            if den > 0.0 {
                1.0 / den
            } else {
                0.0
            }
        })
    }
}

impl Weighting for Pcd {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let mut weights = DVector::zeros(m);
        if m == 0 || gram.iter().any(|x| !x.is_finite()) {
            return weights;
        }
        let sq_norms = gram.diagonal();
        let s = self.update_scales(&sq_norms);
        let precision = 10.0 * f64::EPSILON;
        if sq_norms[0] > 0.0 {
            let g_hat = DMatrix::from_fn(m, m, |i, j| gram[(i, j)] * s[i] * s[j]);
            let w = solve_qp(&g_hat, self.tau, precision.max(1e-9));
            let sq = w.dot(&(&g_hat * &w));
            let magnitude =
                w.iter().zip(g_hat.diagonal().iter()).map(|(w, d)| w.abs() * d.max(0.0).sqrt()).sum::<f64>();
            if sq > precision * magnitude * magnitude {
                let k = (sq_norms[0] / sq).sqrt();
                weights = w.component_mul(&s) * k;
            }
        }
        if weights.iter().all(|x| x.is_finite()) {
            weights
        } else {
            DVector::zeros(m)
        }
    }

    fn reset(&mut self) {
        self.ema = None;
    }
}

/// torchjd's `_solve_qp` (Goldfarb–Idnani, identity Hessian, Gram form): the weights [1, μ] of
/// the minimiser of ½‖d − g₁‖² subject to g_jᵀd ≥ τ‖g_j‖² (j ≥ 2), or e₁ if infeasible.
fn solve_qp(g: &DMatrix<f64>, tau: f64, dependence_tol: f64) -> DVector<f64> {
    let m = g.nrows();
    let mut weights = DVector::zeros(m);
    weights[0] = 1.0;
    if m == 1 {
        return weights;
    }
    let max_iters = 10 * m;
    let k = m - 1;
    let gs = g.view((1, 1), (k, k)).into_owned();
    let b = DVector::from_fn(k, |j, _| tau * gs[(j, j)] - g[(j + 1, 0)]);
    let mut mu = DVector::<f64>::zeros(k);
    let max_diag = g.diagonal().max();
    let atol = 1e-9 * max_diag.max(f64::MIN_POSITIVE);
    let mut active: Vec<usize> = Vec::new();
    let mut n_iters = 0;
    // torch's first-index tie rule.
    let argmin = argmin_first;
    'outer: while n_iters < max_iters {
        let mut slacks = &gs * &mu - &b;
        for &a in &active {
            slacks[a] = 0.0;
        }
        let p = argmin(&slacks);
        if slacks[p] >= -atol {
            break;
        }
        let mut slack_p = slacks[p];
        while n_iters < max_iters {
            n_iters += 1;
            let (r, z_sq, kk, partial) = if active.is_empty() {
                (DVector::zeros(0), gs[(p, p)], usize::MAX, f64::INFINITY)
            } else {
                let na = active.len();
                let ga = DMatrix::from_fn(na, na, |i, j| gs[(active[i], active[j])]);
                let rhs = DVector::from_fn(na, |i, _| gs[(active[i], p)]);
                let Some(r) = ga.lu().solve(&rhs) else {
                    break 'outer;
                };
                let z_sq = gs[(p, p)] - (0..na).map(|i| gs[(p, active[i])] * r[i]).sum::<f64>();
                let ratios = DVector::from_fn(na, |i, _| if r[i] > 0.0 { mu[active[i]] / r[i] } else { f64::INFINITY });
                let kk = argmin(&ratios);
                (r, z_sq, kk, ratios[kk])
            };
            let full = if z_sq > dependence_tol * gs[(p, p)] { -slack_p / z_sq } else { f64::INFINITY };
            let step = partial.min(full);
            if step == f64::INFINITY {
                return weights; // infeasible
            }
            for (i, &a) in active.iter().enumerate() {
                mu[a] -= step * r[i];
            }
            mu[p] += step;
            if full <= partial {
                active.push(p);
                break;
            }
            mu[active[kk]] = 0.0;
            active.remove(kk);
            slack_p = gs.row(p).transpose().dot(&mu) - b[p];
        }
    }
    for j in 0..k {
        weights[j + 1] = mu[j].max(0.0);
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::super::{gram, Aggregator};
    use super::*;
    use approx::assert_abs_diff_eq;

    fn j(rows: usize, v: &[f64]) -> DMatrix<f64> {
        DMatrix::from_row_slice(rows, v.len() / rows, v)
    }

    /// methods-wave2.md §1b "Test this" (torchjd 0.18 values; μ = τ + 1/√2 by hand).
    #[test]
    fn matches_the_reference_examples() {
        let j2 = j(2, &[1.0, 0.0, -1.0, 1.0]);
        let mut a = Pcd::default();
        let first = a.aggregate(&j2);
        assert_abs_diff_eq!(first.weights.unwrap(), DVector::from_vec(vec![1.413648, 0.726816]), epsilon = 1e-6);
        assert_abs_diff_eq!(first.update, DVector::from_vec(vec![0.686832, 0.726816]), epsilon = 1e-6);
        // A second identical call, or a secondary row ×100 on a fresh instance: the same d.
        assert_abs_diff_eq!(a.aggregate(&j2).update, first.update, epsilon = 1e-9);
        let scaled = j(2, &[1.0, 0.0, -100.0, 100.0]);
        assert_abs_diff_eq!(Pcd::default().aggregate(&scaled).update, first.update, epsilon = 1e-9);
        let j3 = j(3, &[1.0, 0.0, 0.0, -1.0, 1.0, 0.0, -0.5, -0.5, 1.0]);
        let d = Pcd::new(0.5, 0.999, 1e-8).unwrap().aggregate(&j3).update;
        assert_abs_diff_eq!(d, DVector::from_vec(vec![-0.245757, 0.528840, 0.812362]), epsilon = 1e-6);
        // Infeasible (anti-parallel secondaries) → g₁; zero primary → 0.
        let d = Pcd::default().aggregate(&j(3, &[1.0, 0.0, 0.0, 1.0, 0.0, -1.0])).update;
        assert_abs_diff_eq!(d, DVector::from_vec(vec![1.0, 0.0]), epsilon = 1e-12);
        let d = Pcd::default().aggregate(&j(2, &[0.0, 0.0, 1.0, 1.0])).update;
        assert_eq!(d, DVector::from_vec(vec![0.0, 0.0]));
    }

    /// The output has the primary gradient's norm, and every secondary task gets its share.
    #[test]
    fn keeps_the_primary_norm_and_the_constraints() {
        let mut rng = super::super::testing::Normal::new(41);
        for (m, n) in [(2, 3), (3, 5), (5, 8), (6, 4)] {
            let jm = rng.matrix(m, n);
            let d = Pcd::new(0.3, 0.999, 0.0).unwrap().aggregate(&jm).update;
            assert_abs_diff_eq!(d.norm(), jm.row(0).norm(), epsilon = 1e-9);
            if m <= n {
                let g = gram(&jm);
                // First call: Ĝ is the cosine matrix, so g̃_j = g_j/‖g_j‖ and d̃ ∝ d.
                for i in 1..m {
                    let cos = jm.row(i).transpose().dot(&d) / (g[(i, i)].sqrt() * d.norm());
                    assert!(cos >= -1e-9, "{m}×{n} task {i}: cos {cos}");
                }
            }
        }
    }

    #[test]
    fn parameters_are_checked_and_non_finite_input_keeps_the_state() {
        assert!(Pcd::new(1.5, 0.5, 0.0).is_err());
        assert!(Pcd::new(0.5, 1.0, 0.0).is_err());
        assert!(Pcd::new(0.5, 0.5, -1.0).is_err());
        let mut a = Pcd::default();
        let mut g = gram(&j(2, &[1.0, 0.0, -1.0, 1.0]));
        g[(0, 1)] = f64::NAN;
        assert_eq!(a.weights(&g), DVector::zeros(2));
        assert!(a.ema.is_none());
    }
}
