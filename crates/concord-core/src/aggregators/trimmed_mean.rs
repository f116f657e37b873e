//! TrimmedMean (Yin et al. 2018), torchjd `_trimmed_mean.py` semantics: for every column k of J,
//! sort the m entries, drop the t smallest and the t largest, and average the m − 2t left.
//! Not non-conflicting; not linear under scaling; **not weighted** (each coordinate keeps
//! different rows), so it implements [`Aggregator`] directly and reports no weights.
//!
//! torchjd raises when m < 2t + 1. `aggregate` has no error path, and m is only known per call,
//! so here the trim is clamped to ⌊(m − 1)/2⌋ instead: with too few rows the result is the
//! column-wise median (the most trimming that leaves a value), never a panic. m = 0 gives 0.
use super::{Aggregation, Aggregator};
use nalgebra::{DMatrix, DVector};

#[derive(Clone, Copy, Debug)]
pub struct TrimmedMean {
    /// How many of the smallest and of the largest values each column drops (t).
    pub trim_number: usize,
}

impl TrimmedMean {
    /// Infallible: torchjd's only constructor check (t ≥ 0) is the type; the row-count check
    /// (m ≥ 2t + 1) is per call and handled by clamping, see the module docs.
    pub fn new(trim_number: usize) -> Self {
        TrimmedMean { trim_number }
    }

    /// The trim actually applied to an m-row J.
    pub fn effective_trim(&self, m: usize) -> usize {
        self.trim_number.min(m.saturating_sub(1) / 2)
    }
}

impl Aggregator for TrimmedMean {
    fn aggregate(&mut self, jacobian: &DMatrix<f64>) -> Aggregation {
        let (m, n) = jacobian.shape();
        let t = self.effective_trim(m);
        let kept = m.saturating_sub(2 * t);
        let mut column = Vec::with_capacity(m);
        let update = DVector::from_fn(n, |k, _| {
            if kept == 0 {
                return 0.0;
            }
            column.clear();
            column.extend(jacobian.column(k).iter().copied());
            column.sort_unstable_by(f64::total_cmp);
            // Σ(x/kept) rather than Σx/kept: a mean of finite values is finite, a sum need not be.
            column[t..m - t].iter().map(|x| x / kept as f64).sum()
        });
        Aggregation { update, weights: None }
    }

    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// J_TrimmedMean from aggregators.md §6.
    fn j_trimmed_mean() -> DMatrix<f64> {
        DMatrix::from_row_slice(4, 2, &[1e11, 3.0, 1.0, -1e11, -1e10, 1e10, 2.0, 2.0])
    }

    #[test]
    fn matches_torchjd_on_j_trimmed_mean() {
        let a = TrimmedMean::new(1).aggregate(&j_trimmed_mean());
        // Column 1 is mean(1, 2), column 2 is mean(2, 3).
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![1.5, 2.5]), epsilon = 1e-4);
        assert!(a.weights.is_none());
    }

    #[test]
    fn zero_trim_is_the_mean() {
        let j = DMatrix::from_row_slice(3, 2, &[1.0, -2.0, 4.0, 0.5, 7.0, 3.0]);
        let a = TrimmedMean::new(0).aggregate(&j);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![4.0, 0.5]), epsilon = 1e-12);
    }

    #[test]
    fn too_few_rows_clamp_to_the_median() {
        let j = DMatrix::from_row_slice(4, 1, &[5.0, -1.0, 2.0, 100.0]);
        let mut tm = TrimmedMean::new(3);
        assert_eq!(tm.effective_trim(4), 1);
        // m = 4, t clamped to 1: mean(2, 5).
        assert_abs_diff_eq!(tm.aggregate(&j).update[0], 3.5, epsilon = 1e-12);
        let one = DMatrix::from_row_slice(1, 2, &[3.0, -4.0]);
        assert_eq!(tm.aggregate(&one).update, DVector::from_vec(vec![3.0, -4.0]));
        assert_eq!(tm.aggregate(&DMatrix::zeros(0, 3)).update, DVector::zeros(3));
    }

    #[test]
    fn huge_entries_do_not_overflow() {
        let j = DMatrix::from_row_slice(3, 1, &[1.5e308, 1.7e308, 1.6e308]);
        let d = TrimmedMean::new(0).aggregate(&j).update;
        assert!(d[0].is_finite() && (d[0] - 1.6e308).abs() < 1e294);
    }
}
