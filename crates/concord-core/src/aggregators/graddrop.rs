//! GradDrop (Chen et al. 2020, Alg. 1 lines 10–15), torchjd `_graddrop.py` semantics with
//! f = identity and leak = 0. For each column k of J:
//!     P_k = ½(1 + Σ_i J_ik / Σ_i |J_ik|)          (positive-sign purity)
//!     M_ik = [P_k > U_k]·[J_ik > 0] + [P_k < U_k]·[J_ik < 0],   U_k ~ U(0, 1), one per column
//! and d = Σ_i M_i ⊙ g_i: each coordinate keeps only the positive or only the negative entries.
//! Not non-conflicting; not linear under scaling; **not weighted** (the mask is per coordinate,
//! so d is not Jᵀw): it needs J elementwise, implements [`Aggregator`] directly and reports no
//! weights.
//!
//! torch's RNG stream cannot be reproduced outside torch, so the draws U come from a seeded
//! ChaCha8 stream (n draws per call, in column order); [`graddrop`] takes them explicitly so
//! that tests can inject them.
use super::registry::Property::No;
use super::registry::{props, AggregatorInfo};
use super::{Aggregation, Aggregator};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "graddrop",
    label: "GradDrop",
    description: "Per coordinate, keeps only the positive or only the negative entries, drawn by sign purity (seeded).",
    params: &[],
    properties: props(No, No, No, Some("f = identity, leak = 0")),
    gramian_weighted: false,
    stateful: false,
    seeded: true,
    needs_losses: false,
};

#[derive(Clone, Debug)]
pub struct GradDrop {
    seed: u64,
    rng: ChaCha8Rng,
}

impl GradDrop {
    pub fn new(seed: u64) -> Self {
        GradDrop { seed, rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The next call's draws U: one per column of an n-column J, in column order. `aggregate`
    /// takes them from here, and so does the GPU trainer (which uploads them), so both runs
    /// see the same stream.
    pub fn draws(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.rng.random::<f64>()).collect()
    }
}

/// GradDrop with the draws `u` (one per column, in [0, 1)) given explicitly.
///
/// # Panics
/// If `u.len()` differs from the number of columns (a caller bug, not user input).
///
/// An all-zero column has P = 0/0 in torchjd (NaN: both mask terms are false); here P is set to
/// ½ instead, which changes nothing since every entry of that column is 0 either way. The purity
/// is computed on the column divided by its largest |entry|, so Σ|J_ik| cannot overflow.
pub fn graddrop(jacobian: &DMatrix<f64>, u: &[f64]) -> DVector<f64> {
    let (m, n) = jacobian.shape();
    assert_eq!(u.len(), n, "graddrop needs one draw per column");
    DVector::from_fn(n, |k, _| {
        let col = jacobian.column(k);
        let max = col.amax();
        if m == 0 || max == 0.0 || !max.is_finite() {
            // Empty or all-zero column: d_k = 0. (A non-finite J is outside the contract; it
            // also gets 0 rather than NaN.)
            return 0.0;
        }
        let (mut sum, mut abs) = (0.0, 0.0);
        for v in col.iter() {
            sum += v / max;
            abs += (v / max).abs();
        }
        let purity = 0.5 * (1.0 + sum / abs);
        let (keep_pos, keep_neg) = (purity > u[k], purity < u[k]);
        col.iter().filter(|&&v| (keep_pos && v > 0.0) || (keep_neg && v < 0.0)).sum()
    })
}

impl Aggregator for GradDrop {
    fn aggregate(&mut self, jacobian: &DMatrix<f64>) -> Aggregation {
        // One draw per column, even when m = 0, so that the stream depends only on the shapes.
        let u = self.draws(jacobian.ncols());
        Aggregation { update: graddrop(jacobian, &u), weights: None }
    }

    /// Restart the random stream from the seed.
    fn reset(&mut self) {
        self.rng = ChaCha8Rng::seed_from_u64(self.seed);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{j_base, Normal};
    use super::*;

    #[test]
    fn matches_torchjd_on_j_base_for_both_draw_regions() {
        // Column 1: P = ½(1 + 2/10) = 0.6. Columns 2–3 have P = 1, so both entries are kept.
        let j = j_base();
        for u1 in [0.0, 0.3, 0.5999] {
            let d = graddrop(&j, &[u1, 0.9, 0.999]);
            assert_eq!(d, DVector::from_vec(vec![6.0, 2.0, 2.0]), "U₁ = {u1}");
        }
        for u1 in [0.6001, 0.8, 0.9999] {
            let d = graddrop(&j, &[u1, 0.0, 0.5]);
            assert_eq!(d, DVector::from_vec(vec![-4.0, 2.0, 2.0]), "U₁ = {u1}");
        }
        // P = U exactly keeps neither sign (both strict comparisons fail), as in torchjd.
        let d = graddrop(&j, &[0.6, 0.0, 0.0]);
        assert!(d[0] == 0.0 || d[0] == 6.0 || d[0] == -4.0);
        let out = GradDrop::new(0).aggregate(&j);
        assert!(out.weights.is_none());
        assert!(out.update[0] == 6.0 || out.update[0] == -4.0);
    }

    #[test]
    fn all_zero_columns_and_empty_shapes() {
        let j = DMatrix::from_row_slice(2, 2, &[0.0, 1.0, 0.0, -3.0]);
        assert_eq!(graddrop(&j, &[0.5, 0.0])[0], 0.0);
        assert_eq!(GradDrop::new(1).aggregate(&DMatrix::zeros(0, 3)).update, DVector::zeros(3));
        assert_eq!(GradDrop::new(1).aggregate(&DMatrix::zeros(3, 0)).update.len(), 0);
    }

    #[test]
    fn seeded_and_reset_reproduce() {
        let j = Normal::new(4).matrix(5, 30);
        let (mut a, mut b) = (GradDrop::new(7), GradDrop::new(7));
        let first: Vec<_> = (0..4).map(|_| a.aggregate(&j).update).collect();
        let second: Vec<_> = (0..4).map(|_| b.aggregate(&j).update).collect();
        assert_eq!(first, second);
        assert_ne!(first[0], first[1], "fresh draws on every call");
        a.reset();
        assert_eq!(a.aggregate(&j).update, first[0]);
    }

    #[test]
    fn every_coordinate_keeps_one_sign() {
        let j = Normal::new(5).matrix(6, 40);
        let d = GradDrop::new(3).aggregate(&j).update;
        for k in 0..40 {
            let pos: f64 = j.column(k).iter().filter(|v| **v > 0.0).sum();
            let neg: f64 = j.column(k).iter().filter(|v| **v < 0.0).sum();
            assert!(d[k] == pos || d[k] == neg || d[k] == 0.0, "column {k}");
        }
    }
}
