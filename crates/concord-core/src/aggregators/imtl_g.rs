//! IMTL-G (Liu et al. 2021, "Towards Impartial Multi-task Learning"), torchjd `_imtl_g.py`
//! semantics, generalised to linearly dependent rows: with d = √diag(G) (the gradient norms),
//! v = G⁺d and w = v/Σv, or w = 0 when |Σv| < 1e-12. The update then has the same projection
//! onto every unit gradient: (Gw)_i/d_i is constant. Not non-conflicting; not linear under
//! scaling; weighted.
//!
//! The pseudo-inverse is computed in f64 with torch's relative cutoff (eigenvalues |λ| ≤
//! λ_max·m·ε dropped), on G/tr G so that any finite G stays in range; f32 would return finite but
//! wrong weights on rank-deficient G (aggregators.md §7.2).
use super::registry::Property::{No, Yes};
use super::registry::{props, AggregatorInfo};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "imtl-g",
    label: "IMTL-G",
    description: "The update with equal projections onto every unit gradient: w ∝ G⁺·(gradient norms), Σw = 1.",
    params: &[],
    properties: props(No, No, Yes, None),
    gramian_weighted: true,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

#[derive(Clone, Copy, Debug, Default)]
pub struct ImtlG;

/// A⁺x for a symmetric A, with torch.linalg.pinv's default cutoff for an m × m matrix:
/// singular values (here |λ|) at most σ_max·m·ε are treated as zero. A⁺ itself is never formed:
/// A⁺x = Σ_k q_k (q_kᵀx)/λ_k over the kept eigenpairs. `None` when the eigendecomposition fails.
pub(crate) fn pinv_symmetric_times(a: &DMatrix<f64>, x: &DVector<f64>) -> Option<DVector<f64>> {
    if let Some(v) = solve_if_clearly_invertible(a, x) {
        return Some(v);
    }
    pinv_eigen_times(a, x)
}

/// A⁺x through the eigendecomposition (any symmetric A).
fn pinv_eigen_times(a: &DMatrix<f64>, x: &DVector<f64>) -> Option<DVector<f64>> {
    let m = a.nrows();
    let eig = nalgebra::SymmetricEigen::try_new(a.clone(), f64::EPSILON, 1000 * m.max(1))?;
    let sigma_max = eig.eigenvalues.iter().fold(0.0f64, |acc, l| acc.max(l.abs()));
    let cutoff = sigma_max * m as f64 * f64::EPSILON;
    let mut out = DVector::zeros(m);
    for (k, &l) in eig.eigenvalues.iter().enumerate() {
        if l.abs() > cutoff {
            let q = eig.eigenvectors.column(k);
            out.axpy(q.dot(x) / l, &q, 1.0);
        }
    }
    Some(out)
}

/// A⁻¹x by Cholesky when that provably equals A⁺x with the cutoff above, i.e. when no
/// eigenvalue can fall under it: for A = LLᵀ, 1/λ_min = ‖L⁻¹‖₂² ≤ ‖L⁻¹‖_F² and λ_max ≤ tr A,
/// so ‖L⁻¹‖_F² · tr A · m · ε < 1 (with a 100× margin for rounding) certifies it. Several times
/// cheaper than the eigendecomposition at m = 8; near-singular A falls through to it.
fn solve_if_clearly_invertible(a: &DMatrix<f64>, x: &DVector<f64>) -> Option<DVector<f64>> {
    let m = a.nrows();
    let chol = nalgebra::Cholesky::new(a.clone())?;
    let l_inv = chol.l().solve_lower_triangular(&DMatrix::identity(m, m))?;
    let bound = l_inv.norm_squared() * a.trace() * m as f64 * f64::EPSILON;
    if !(bound.is_finite() && bound < 1e-2) {
        return None;
    }
    Some(chol.solve(x))
}

impl Weighting for ImtlG {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let zeros = DVector::zeros(m);
        if !super::numerics::all_finite(gram) {
            return zeros;
        }
        // G = s·Ĝ with s = tr G: then v = Ĝ⁺√diag(Ĝ)/√s, so w = v̂/Σv̂ is scale-free, and
        // torchjd's absolute test |Σv| < 1e-12 becomes |Σv̂| < 1e-12·√s.
        let s = gram.trace();
        if !(s > 0.0) {
            return zeros; // G = 0: pinv(0) = 0, so v = 0 and torchjd returns 0.
        }
        let Some(g_hat) = super::numerics::trace_normalized(gram, 0.0) else {
            return zeros;
        };
        // An overflowing trace was handled by a pre-scaled copy; √s then only enters the
        // threshold, which such a G passes anyway.
        let sqrt_s = if s.is_finite() { s.sqrt() } else { f64::MAX.sqrt() };
        let d = g_hat.diagonal().map(|x| x.max(0.0).sqrt());
        let Some(v) = pinv_symmetric_times(&g_hat, &d) else {
            return zeros;
        };
        let sum = v.sum();
        if !(sum.abs() >= 1e-12 * sqrt_s) || !sum.is_finite() {
            return zeros;
        }
        v / sum
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{j_base, Normal};
    use super::super::{gram, Aggregator};
    use super::*;
    use approx::assert_abs_diff_eq;

    /// The Cholesky shortcut is taken on a well-conditioned G and gives the eigendecomposition's
    /// answer; a singular G (two equal rows) or a merely ill-conditioned one is refused.
    #[test]
    fn the_cholesky_shortcut_agrees_and_refuses_near_singular_gramians() {
        let mut normal = Normal::new(5);
        let j = DMatrix::from_fn(8, 50, |_, _| normal.sample());
        let g = gram(&j);
        let x = DVector::from_fn(8, |i, _| 1.0 + i as f64);
        let fast = solve_if_clearly_invertible(&g, &x).expect("a random 8 × 50 J has a well-conditioned G");
        let slow = pinv_eigen_times(&g, &x).unwrap();
        assert!((&fast - &slow).norm() <= 1e-10 * slow.norm(), "{fast} vs {slow}");

        let mut twin = j.clone();
        twin.set_row(7, &j.row(6));
        assert!(solve_if_clearly_invertible(&gram(&twin), &x).is_none());
        let mut close = j.clone();
        close.set_row(7, &(j.row(6) * (1.0 + 1e-9)));
        assert!(solve_if_clearly_invertible(&gram(&close), &x).is_none(), "κ ≈ 1e18: too close to call");
    }

    #[test]
    fn imtl_g_matches_torchjd_on_j_base() {
        let a = ImtlG.aggregate(&j_base());
        assert_abs_diff_eq!(a.weights.unwrap(), DVector::from_vec(vec![0.5923, 0.4077]), epsilon = 1e-4);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.0767, 1.0, 1.0]), epsilon = 1e-4);
    }

    #[test]
    fn equal_projections_on_unit_gradients() {
        let mut rng = Normal::new(51);
        for (m, n) in [(2, 3), (4, 6), (7, 20)] {
            let j = rng.matrix(m, n);
            let g = gram(&j);
            let w = ImtlG.weights(&g);
            let gw = &g * &w;
            let proj: Vec<f64> = (0..m).map(|i| gw[i] / g[(i, i)].sqrt()).collect();
            for p in &proj {
                assert!((p - proj[0]).abs() < 1e-9 * proj[0].abs().max(1.0), "{proj:?}");
            }
        }
    }

    #[test]
    fn degenerate_inputs_give_zero() {
        // Zero J (torchjd's test), rows g and −g, and three rows summing to zero: Σv = 0.
        assert_eq!(ImtlG.weights(&DMatrix::zeros(3, 3)), DVector::zeros(3));
        let j = DMatrix::from_row_slice(2, 3, &[1.0, 2.0, -0.5, -1.0, -2.0, 0.5]);
        assert_abs_diff_eq!(ImtlG.aggregate(&j).update, DVector::zeros(3), epsilon = 1e-12);
        let j = DMatrix::from_row_slice(3, 2, &[1.0, 0.3, -2.0, 0.5, 1.0, -0.8]);
        assert_abs_diff_eq!(ImtlG.aggregate(&j).update, DVector::zeros(2), epsilon = 1e-12);
    }

    #[test]
    fn scale_invariant_weights() {
        let mut rng = Normal::new(52);
        let j = rng.matrix(4, 6);
        let w = ImtlG.weights(&gram(&j));
        for s in [1e-3, 1e2, 1e5] {
            assert_abs_diff_eq!(ImtlG.weights(&gram(&(&j * s))), w, epsilon = 1e-9);
        }
        // torchjd's absolute 1e-12 threshold on Σv = Σv̂/√tr G: for huge G the weights vanish.
        assert_eq!(ImtlG.weights(&gram(&(&j * 1e15))), DVector::zeros(4));
    }
}
