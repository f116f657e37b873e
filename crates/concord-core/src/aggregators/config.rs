//! ConFIG (Liu et al. 2024, "ConFIG: Towards Conflict-free Training of PINNs", eq. 2), torchjd
//! `_config.py` semantics, in the Gram form of aggregators.md §2.
//!
//! torchjd: U = rows of J over their norms (zero rows stay 0), b = U⁺p, u = b/‖b‖, output
//! (Σ_i g_i·u)·u, with p = **ones** by default. With D = diag(‖g_i‖) (D⁻¹_ii := 0 on zero rows),
//! C = D⁻¹GD⁻¹ (the cosine matrix) and v = C⁺p, b = JᵀD⁻¹v and ‖b‖² = pᵀv, so
//!     w = D⁻¹v · (1ᵀGD⁻¹v)/(pᵀv),        w = 0 when pᵀv = 0.
//! The output makes equal angles with every (non-zero) gradient it has p-weight on.
//! Not non-conflicting; linear under scaling; weighted (in Gram form).
use super::numerics::pow2_rescaled;
use super::registry::Property::{No, Yes};
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range, LIST_MAX};
use super::upgrad::validate_pref;
use super::Weighting;
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "config",
    label: "ConFIG",
    description: "The direction at equal angles to every (p-weighted) gradient, scaled by the sum's projection on it.",
    params: &[param(
        "pref_vector",
        ParamDefault::Computed("ones"),
        Range::NonNegativeList { max: LIST_MAX },
        "preference vector p over the unit gradients",
    )],
    properties: props(No, Yes, Yes, Some("weighted in Gram form")),
    gramian_weighted: true,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

#[derive(Clone, Debug, Default)]
pub struct Config {
    pref: Option<Vec<f64>>,
}

impl Config {
    /// `pref`: preference vector (None → ones; finite, ≥ 0; the wrong length falls back to ones).
    pub fn new(pref: Option<Vec<f64>>) -> Result<Self, String> {
        validate_pref(&pref)?;
        Ok(Config { pref })
    }
}

/// Relative eigenvalue cutoff for C⁺. torch cuts U's singular values at max(m, n)·ε·σ_max,
/// i.e. C's eigenvalues at ~(nε)²·λ_max, far below the rounding noise of a Gram-formed C
/// (~m·√n·ε·λ_max: G's entries are n-term dot products). 1e-11 (σ ratio ≈ 3e-6) cuts that noise
/// with a wide margin; only rows that are independent by less than that are treated differently
/// from torchjd.
const C_CUTOFF: f64 = 1e-11;

impl Weighting for Config {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let zeros = DVector::zeros(m);
        let p = match &self.pref {
            Some(p) if p.len() == m => DVector::from_column_slice(p),
            _ => DVector::from_element(m, 1.0),
        };
        // w is invariant under G → cG (D⁻¹ ∝ c^{−1/2}, GD⁻¹ ∝ c^{1/2}), so an exact power-of-two
        // rescale only keeps products in range.
        let Some(g) = pow2_rescaled(gram) else {
            return zeros;
        };
        let d_inv = DVector::from_fn(m, |i, _| {
            let norm = g[(i, i)].max(0.0).sqrt();
            if norm > 0.0 {
                1.0 / norm
            } else {
                0.0
            }
        });
        let c = DMatrix::from_fn(m, m, |i, j| g[(i, j)] * d_inv[i] * d_inv[j]);
        let Some(eig) = SymmetricEigen::try_new(c, f64::EPSILON, 1000 * m.max(1)) else {
            return zeros;
        };
        let lmax = eig.eigenvalues.iter().fold(0.0f64, |a, l| a.max(l.abs()));
        let mut v = DVector::zeros(m);
        for k in 0..m {
            let l = eig.eigenvalues[k];
            if l > C_CUTOFF * lmax {
                let q = eig.eigenvectors.column(k);
                v += q * (q.dot(&p) / l);
            }
        }
        let pv = p.dot(&v);
        let dv = d_inv.component_mul(&v);
        // F.normalize divides by max(‖b‖, 1e-12): ‖b‖² = pᵀv.
        let denom = pv.max(1e-24);
        if !(pv > 0.0) {
            return zeros;
        }
        let length = (&g * &dv).sum();
        let w = dv * (length / denom);
        if w.iter().all(|x| x.is_finite()) {
            w
        } else {
            zeros
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{j_base, Normal};
    use super::super::{gram, Aggregator};
    use super::*;
    use approx::assert_abs_diff_eq;

    /// torchjd's formula on J itself, for the full-rank m ≤ n case: U⁺ = Uᵀ(UUᵀ)⁻¹.
    fn direct(j: &DMatrix<f64>) -> DVector<f64> {
        let m = j.nrows();
        let mut u = j.clone();
        for i in 0..m {
            let n = u.row(i).norm();
            u.row_mut(i).scale_mut(1.0 / n);
        }
        let b = u.transpose() * (&u * u.transpose()).try_inverse().unwrap() * DVector::from_element(m, 1.0);
        let unit = &b / b.norm();
        let length = (j * &unit).sum();
        unit * length
    }

    #[test]
    fn config_matches_torchjd_on_j_base() {
        let a = Config::default().aggregate(&j_base());
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.1588, 2.0706, 2.0706]), epsilon = 1e-4);
    }

    #[test]
    fn gram_form_matches_the_direct_formula() {
        let mut rng = Normal::new(71);
        for (m, n) in [(2, 3), (3, 3), (4, 9), (6, 20)] {
            let j = rng.matrix(m, n);
            let d = Config::default().aggregate(&j).update;
            assert_abs_diff_eq!(d, direct(&j), epsilon = 1e-9 * j.norm());
        }
    }

    #[test]
    fn equal_angles_with_every_gradient() {
        let mut rng = Normal::new(72);
        let j = rng.matrix(4, 7);
        let d = Config::default().aggregate(&j).update;
        let cos: Vec<f64> = (0..4).map(|i| j.row(i).transpose().dot(&d) / j.row(i).norm() / d.norm()).collect();
        for c in &cos {
            assert!((c - cos[0]).abs() < 1e-9, "{cos:?}");
        }
    }

    #[test]
    fn zero_rows_and_zero_matrix() {
        let w = Config::default().weights(&DMatrix::zeros(3, 3));
        assert_eq!(w, DVector::zeros(3));
        // A zero row has D⁻¹ = 0 and contributes nothing; the others behave as without it.
        let j = DMatrix::from_row_slice(3, 3, &[-4.0, 1.0, 1.0, 0.0, 0.0, 0.0, 6.0, 1.0, 1.0]);
        let d = Config::default().aggregate(&j).update;
        // torchjd: the zero unit row still counts in length = Σ g_i·u (it adds 0), and b = U⁺1
        // includes its 1 (which U⁺ maps through a zero column): same as J_base.
        assert_abs_diff_eq!(d, DVector::from_vec(vec![0.1588, 2.0706, 2.0706]), epsilon = 1e-4);
        let _ = gram(&j);
    }
}
