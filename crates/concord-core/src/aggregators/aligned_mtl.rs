//! Aligned-MTL (Senushkin et al. 2023, Alg. 1), torchjd `_aligned_mtl.py` semantics.
//!
//! eigh(G) = VΛVᵀ; keep the r eigenvalues λ > λ_max·m·ε (if r = 0, B = I);
//! B = √s·V_r Λ_r^{−1/2} V_rᵀ and w = B·p (p = 1/m by default), where s is λ_min of the kept
//! ones (`Min`, the default), their median (`Median`, torch's **lower** median for even r) or
//! their mean (`Rmse`, what the original code did). B aligns the principal components of the
//! gradients: JᵀB has equal singular values √s on the kept subspace.
//! Not non-conflicting; not linear under scaling; weighted.
//!
//! B is invariant under G → cG (both √s and Λ^{−1/2} scale), so G is normalised by its trace
//! in f64 before the eigendecomposition; the rank cutoff is relative and unaffected.
use super::registry::Property::{No, Yes};
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range, PREF_MEAN};
use super::upgrad::{pref_for, validate_pref};
use super::Weighting;
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "aligned-mtl",
    label: "Aligned-MTL",
    description: "Aligns the principal components of the gradients (equal singular values) and combines with p.",
    params: &[
        PREF_MEAN,
        param(
            "scale_mode",
            ParamDefault::Value("min"),
            Range::OneOf(&["min", "median", "rmse"]),
            "which kept eigenvalue of G sets the scale",
        ),
    ],
    properties: props(No, No, Yes, None),
    gramian_weighted: true,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

/// Which eigenvalue scales the balance transformation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScaleMode {
    /// The smallest kept eigenvalue (torchjd's default).
    #[default]
    Min,
    /// torch.median of the kept eigenvalues: the lower middle value for an even count.
    Median,
    /// The mean of the kept eigenvalues, as in the original implementation.
    Rmse,
}

impl ScaleMode {
    /// Parse torchjd's names "min", "median", "rmse".
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "min" => Ok(ScaleMode::Min),
            "median" => Ok(ScaleMode::Median),
            "rmse" => Ok(ScaleMode::Rmse),
            _ => Err(format!("invalid scale_mode '{name}' (expected 'min', 'median' or 'rmse')")),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct AlignedMtl {
    pref: Option<Vec<f64>>,
    scale_mode: ScaleMode,
}

impl AlignedMtl {
    /// `pref`: preference vector (None → 1/m; finite, ≥ 0; the wrong length falls back to 1/m).
    pub fn new(pref: Option<Vec<f64>>, scale_mode: ScaleMode) -> Result<Self, String> {
        validate_pref(&pref)?;
        Ok(AlignedMtl { pref, scale_mode })
    }
}

/// The balance transformation B for a finite, trace-normalised Ĝ; `None` if eigh fails.
fn balance_transformation(g_hat: &DMatrix<f64>, mode: ScaleMode) -> Option<DMatrix<f64>> {
    let m = g_hat.nrows();
    let eig = SymmetricEigen::try_new(g_hat.clone(), f64::EPSILON, 1000 * m.max(1))?;
    let max = eig.eigenvalues.max();
    let tol = max * m as f64 * f64::EPSILON;
    // Kept eigenpairs in descending order, as torchjd sorts them.
    let mut kept: Vec<usize> = (0..m).filter(|&k| eig.eigenvalues[k] > tol).collect();
    if kept.is_empty() {
        return Some(DMatrix::identity(m, m));
    }
    kept.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let lambdas: Vec<f64> = kept.iter().map(|&k| eig.eigenvalues[k]).collect();
    let r = lambdas.len();
    let scale = match mode {
        ScaleMode::Min => lambdas[r - 1],
        // Ascending index (r−1)/2 (integer division) is torch's lower median; descending it is
        // r−1−(r−1)/2.
        ScaleMode::Median => lambdas[r - 1 - (r - 1) / 2],
        ScaleMode::Rmse => lambdas.iter().sum::<f64>() / r as f64,
    };
    let mut b = DMatrix::zeros(m, m);
    for (&k, &l) in kept.iter().zip(&lambdas) {
        let q = eig.eigenvectors.column(k);
        b += (q * q.transpose()) * (scale.sqrt() / l.sqrt());
    }
    Some(b)
}

impl Weighting for AlignedMtl {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let p = pref_for(&self.pref, m);
        // normalize(G, 0): tr G = 0 means G = 0, where torchjd's rank is 0 and B = I.
        let g_hat = if gram.trace() > 0.0 || !gram.trace().is_finite() {
            super::numerics::trace_normalized(gram, 0.0)
        } else {
            super::numerics::all_finite(gram).then(|| DMatrix::zeros(m, m))
        };
        // Non-finite G (torchjd would propagate NaN): stay finite with B = I.
        match g_hat.and_then(|g| balance_transformation(&g, self.scale_mode)) {
            Some(b) => b * p,
            None => p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{j_base, Normal};
    use super::super::{gram, Aggregator};
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn aligned_mtl_matches_torchjd_on_j_base() {
        let a = AlignedMtl::default().aggregate(&j_base());
        assert_abs_diff_eq!(a.weights.unwrap(), DVector::from_vec(vec![0.5591, 0.4083]), epsilon = 1e-4);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.2133, 0.9673, 0.9673]), epsilon = 1e-4);
    }

    #[test]
    fn lower_median() {
        // Ĝ = diag(4, 3, 2, 1)/10: kept λ = [.4, .3, .2, .1], torch.median → 0.2 (not 0.25).
        let g = DMatrix::from_diagonal(&DVector::from_vec(vec![4.0, 3.0, 2.0, 1.0]));
        let mut am = AlignedMtl::new(None, ScaleMode::Median).unwrap();
        let w = am.weights(&g);
        let expected = DVector::from_fn(4, |i, _| (0.2f64 / [0.4, 0.3, 0.2, 0.1][i]).sqrt() / 4.0);
        assert_abs_diff_eq!(w, expected, epsilon = 1e-12);
    }

    #[test]
    fn balanced_singular_values() {
        // JᵀB has all kept singular values equal to √s: BᵀGB = s·P_r (P_r the kept projector).
        let mut rng = Normal::new(61);
        let j = rng.low_rank(5, 8, 3);
        let g = gram(&j);
        let g_hat = &g / g.trace();
        let b = balance_transformation(&g_hat, ScaleMode::Rmse).unwrap();
        let bgb = b.transpose() * &g_hat * &b;
        let eig = bgb.symmetric_eigenvalues();
        let mut nonzero: Vec<f64> = eig.iter().copied().filter(|l| *l > 1e-9).collect();
        nonzero.sort_by(f64::total_cmp);
        assert_eq!(nonzero.len(), 3);
        assert!((nonzero[2] - nonzero[0]).abs() < 1e-9, "{nonzero:?}");
    }

    #[test]
    fn zero_gramian_and_validation() {
        let w = AlignedMtl::default().weights(&DMatrix::zeros(3, 3));
        assert_abs_diff_eq!(w, DVector::from_element(3, 1.0 / 3.0), epsilon = 1e-15);
        assert!(ScaleMode::parse("mean").is_err());
        assert_eq!(ScaleMode::parse("median"), Ok(ScaleMode::Median));
        assert!(AlignedMtl::new(Some(vec![f64::INFINITY]), ScaleMode::Min).is_err());
    }
}
