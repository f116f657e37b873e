//! Small numeric guards shared by the Gramian weightings.
use nalgebra::{DMatrix, DVector};

pub(crate) fn all_finite(gram: &DMatrix<f64>) -> bool {
    gram.iter().all(|v| v.is_finite())
}

/// G scaled by a power of two so that max |G_ij| lies in [1, 2), or G itself when it is zero;
/// `None` when G has a non-finite entry.
///
/// Used by the scale-invariant weightings (MGDA, PCGrad). A power of two rather than the trace
/// because multiplying by it is exact: the weights stay bit-identical to the unscaled
/// computation, while products such as αᵀGα can no longer overflow (G up to ~1e308) or lose
/// precision in subnormals.
pub(crate) fn pow2_rescaled(gram: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    if !all_finite(gram) {
        return None;
    }
    let max = gram.iter().fold(0.0f64, |acc, v| acc.max(v.abs()));
    if max == 0.0 {
        return Some(gram.clone());
    }
    // Split the exponent in two halves so each factor is a normal number, even for
    // max ≈ 1e308 (2^-1023 alone would be subnormal).
    let e = max.log2().floor() as i32;
    let (h1, h2) = (e / 2, e - e / 2);
    let (s1, s2) = (2f64.powi(-h1), 2f64.powi(-h2));
    Some(gram.map(|v| v * s1 * s2))
}

/// torchjd's `normalize(G, eps)`: G / tr G, or the zero matrix when tr G < eps.
/// `None` when G has a non-finite entry.
///
/// The trace threshold is part of torchjd's semantics (it decides when CAGrad returns zero
/// weights), so the raw trace is compared with eps; only an overflowing trace (finite entries
/// summing past f64::MAX) is recomputed on a pre-scaled copy.
pub(crate) fn trace_normalized(gram: &DMatrix<f64>, eps: f64) -> Option<DMatrix<f64>> {
    if !all_finite(gram) {
        return None;
    }
    let m = gram.nrows();
    let trace = gram.trace();
    if trace < eps {
        return Some(DMatrix::zeros(m, m));
    }
    if trace.is_finite() {
        return Some(gram / trace);
    }
    // tr G overflowed, so it is certainly ≥ eps: normalise a pre-scaled copy instead.
    let scaled = pow2_rescaled(gram)?;
    let t = scaled.trace();
    if t > 0.0 && t.is_finite() {
        Some(scaled / t)
    } else {
        Some(DMatrix::zeros(m, m))
    }
}

/// Euclidean projection onto the probability simplex, torchjd's `project_onto_simplex` (the
/// sort-based rule, also LibMTL MGDA's `_projection2simplex`), step for step so that the rounding
/// matches: the threshold is the first (Σ_{k≤i} y_(k) − 1)/(i+1) above y_(i+1), else (Σy − 1)/m.
pub(crate) fn project_onto_simplex(y: &DVector<f64>) -> DVector<f64> {
    let m = y.len();
    let mut sorted: Vec<f64> = y.iter().copied().collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut tmax_f = (y.sum() - 1.0) / m as f64;
    let mut tmpsum = 0.0;
    for i in 0..m.saturating_sub(1) {
        tmpsum += sorted[i];
        let tmax = (tmpsum - 1.0) / (i as f64 + 1.0);
        if tmax > sorted[i + 1] {
            tmax_f = tmax;
            break;
        }
    }
    y.map(|v| (v - tmax_f).max(0.0))
}

/// Index of the first smallest entry, as `torch.argmin` picks on ties. Entries must be finite.
pub(crate) fn argmin_first(v: &DVector<f64>) -> usize {
    let mut best = 0;
    for i in 1..v.len() {
        if v[i] < v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow2_rescaling_is_exact_and_bounded() {
        let g = DMatrix::from_row_slice(2, 2, &[18.0, -22.0, -22.0, 38.0]);
        let s = pow2_rescaled(&g).unwrap();
        // 38 → 38/32: the same mantissas, max in [1, 2).
        assert_eq!(s[(1, 1)], 38.0 / 32.0);
        assert_eq!(s[(0, 1)], -22.0 / 32.0);
        let huge = DMatrix::from_row_slice(2, 2, &[1e308, 0.0, 0.0, 1.5e308]);
        let s = pow2_rescaled(&huge).unwrap();
        assert!(s.iter().all(|v| v.is_finite() && v.abs() < 2.0));
        assert!(s[(1, 1)] >= 1.0);
        assert!(pow2_rescaled(&DMatrix::from_element(1, 1, f64::NAN)).is_none());
        assert_eq!(pow2_rescaled(&DMatrix::zeros(3, 3)).unwrap(), DMatrix::zeros(3, 3));
    }

    #[test]
    fn trace_normalization_follows_torchjd() {
        let g = DMatrix::from_row_slice(2, 2, &[18.0, -22.0, -22.0, 38.0]);
        let n = trace_normalized(&g, 1e-4).unwrap();
        assert!((n.trace() - 1.0).abs() < 1e-15);
        // Below eps: zeros, not a rescaled matrix.
        let tiny = DMatrix::from_row_slice(2, 2, &[1e-5, 0.0, 0.0, 1e-5]);
        assert_eq!(trace_normalized(&tiny, 1e-4).unwrap(), DMatrix::zeros(2, 2));
        // Overflowing trace from finite entries.
        let huge = DMatrix::from_row_slice(2, 2, &[1.5e308, 0.0, 0.0, 1.5e308]);
        let n = trace_normalized(&huge, 1e-4).unwrap();
        assert!((n[(0, 0)] - 0.5).abs() < 1e-15 && (n[(1, 1)] - 0.5).abs() < 1e-15);
    }

    #[test]
    fn argmin_takes_the_first_tie() {
        assert_eq!(argmin_first(&DVector::from_vec(vec![1.0, 0.0, 0.0])), 1);
        assert_eq!(argmin_first(&DVector::from_vec(vec![0.0, 0.0])), 0);
    }
}

/// Sparse triplets (row, column, value) for a clarabel matrix; exact zeros are left out.
#[derive(Default)]
pub(crate) struct Triplets {
    rows: Vec<usize>,
    cols: Vec<usize>,
    vals: Vec<f64>,
}

impl Triplets {
    pub(crate) fn push(&mut self, i: usize, j: usize, v: f64) {
        if v != 0.0 {
            self.rows.push(i);
            self.cols.push(j);
            self.vals.push(v);
        }
    }

    pub(crate) fn into_csc(self, m: usize, n: usize) -> clarabel::algebra::CscMatrix<f64> {
        clarabel::algebra::CscMatrix::new_from_triplets(m, n, self.rows, self.cols, self.vals)
    }
}

/// Solve min ½xᵀPx + qᵀx s.t. Ax + s = b, s ∈ cones with clarabel (quiet: the crate does no
/// I/O), and return the first `keep` entries of x. `tol` tightens the gap and feasibility
/// tolerances (None: clarabel's defaults). `None` unless clarabel reports a (possibly
/// reduced-accuracy) solution with finite entries: every caller has its own fallback.
pub(crate) fn solve_conic(
    p: &clarabel::algebra::CscMatrix<f64>,
    q: &[f64],
    a: &clarabel::algebra::CscMatrix<f64>,
    b: &[f64],
    cones: &[clarabel::solver::SupportedConeT<f64>],
    tol: Option<f64>,
    keep: usize,
) -> Option<DVector<f64>> {
    use clarabel::solver::{DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus};
    let mut settings = DefaultSettingsBuilder::default();
    settings.verbose(false);
    if let Some(tol) = tol {
        settings.tol_gap_abs(tol).tol_gap_rel(tol).tol_feas(tol);
    }
    let mut solver = DefaultSolver::new(p, q, a, b, cones, settings.build().ok()?).ok()?;
    solver.solve();
    if !matches!(solver.solution.status, SolverStatus::Solved | SolverStatus::AlmostSolved) {
        return None;
    }
    let x = DVector::from_column_slice(&solver.solution.x[..keep]);
    x.iter().all(|v| v.is_finite()).then_some(x)
}
