//! Krum / Multi-Krum (Blanchard et al. 2017), torchjd `_krum.py` semantics.
//!
//! dist_ij = √max(0, G_ii + G_jj − 2G_ij) (torchjd uses plain distances; the paper squares them);
//! score_i = the sum of the m − f − 2 smallest distances from row i to the others; w = 1/n_selected
//! on the n_selected lowest scores. Robust to f adversarial rows. Requires m ≥ f + 3 and
//! m ≥ n_selected. Not non-conflicting; not linear under scaling; weighted.
use super::numerics::pow2_rescaled;
use super::registry::Property::{No, Yes};
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range, ROWS_MAX};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "krum",
    label: "Krum",
    description: "The mean of the n_selected rows closest to their neighbours; robust to n_byzantine adversarial rows.",
    params: &[
        param(
            "n_byzantine",
            ParamDefault::Required,
            Range::Count { max: ROWS_MAX },
            "f, the adversarial rows tolerated (needs m ≥ f + 3)",
        ),
        param(
            "n_selected",
            ParamDefault::Value("1"),
            Range::PositiveCount { max: ROWS_MAX },
            "how many rows are averaged (needs m ≥ n_selected)",
        ),
    ],
    properties: props(No, No, Yes, None),
    gramian_weighted: true,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

#[derive(Clone, Debug)]
pub struct Krum {
    n_byzantine: usize,
    n_selected: usize,
}

impl Krum {
    /// `n_byzantine` (f) ≥ 0 adversarial rows tolerated; `n_selected` ≥ 1 rows averaged.
    pub fn new(n_byzantine: usize, n_selected: usize) -> Result<Self, String> {
        if n_selected < 1 {
            return Err("Krum needs n_selected ≥ 1".into());
        }
        Ok(Krum { n_byzantine, n_selected })
    }

    /// Whether m tasks are enough (m ≥ f + 3 and m ≥ n_selected), as torchjd checks per call.
    pub fn check_tasks(&self, m: usize) -> Result<(), String> {
        if m < self.n_byzantine + 3 {
            return Err(format!(
                "Krum with n_byzantine = {} needs at least {} tasks, got {m}",
                self.n_byzantine,
                self.n_byzantine + 3
            ));
        }
        if m < self.n_selected {
            return Err(format!("Krum selects {} tasks but got {m}", self.n_selected));
        }
        Ok(())
    }
}

impl Weighting for Krum {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        // torchjd raises on too few rows; weights() has no error path, so such a call (and a
        // non-finite G) gives no step: zero weights. Callers validate with `check_tasks`.
        if self.check_tasks(m).is_err() {
            return DVector::zeros(m);
        }
        // The ranking is invariant under G → cG; the exact power-of-two rescale keeps the sums
        // of distances from overflowing.
        let Some(g) = pow2_rescaled(gram) else {
            return DVector::zeros(m);
        };
        let n_closest = m - self.n_byzantine - 2;
        let scores: Vec<f64> = (0..m)
            .map(|i| {
                let mut dist: Vec<f64> =
                    (0..m).map(|j| (g[(i, i)] + g[(j, j)] - 2.0 * g[(i, j)]).max(0.0).sqrt()).collect();
                dist.sort_by(f64::total_cmp);
                // The smallest is the distance to itself (0): skip it, as torchjd does.
                dist[1..=n_closest].iter().sum()
            })
            .collect();
        let mut order: Vec<usize> = (0..m).collect();
        // Stable sort: on ties the lower index wins (torch.topk leaves ties unspecified).
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let mut w = DVector::zeros(m);
        for &i in &order[..self.n_selected] {
            w[i] = 1.0 / self.n_selected as f64;
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::super::{gram, Aggregator};
    use super::*;
    use approx::assert_abs_diff_eq;

    fn j_krum() -> DMatrix<f64> {
        DMatrix::from_row_slice(5, 3, &[1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 75.0, -666.0, 23.0, 1.0, 2.0, 3.0, 2.0, 0.0, 1.0])
    }

    #[test]
    fn krum_matches_torchjd_on_j_krum() {
        let a = Krum::new(1, 4).unwrap().aggregate(&j_krum());
        assert_abs_diff_eq!(a.weights.unwrap(), DVector::from_vec(vec![0.25, 0.25, 0.0, 0.25, 0.25]), epsilon = 1e-4);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![1.25, 0.75, 1.5]), epsilon = 1e-4);
    }

    #[test]
    fn validation() {
        assert!(Krum::new(1, 0).is_err());
        let mut k = Krum::new(2, 1).unwrap();
        assert!(k.check_tasks(4).is_err());
        assert!(k.check_tasks(5).is_ok());
        assert!(Krum::new(0, 4).unwrap().check_tasks(3).is_err());
        // Too few tasks: zero weights, no panic.
        assert_eq!(k.weights(&gram(&j_krum()).view((0, 0), (4, 4)).into_owned()), DVector::zeros(4));
    }

    #[test]
    fn scale_invariant() {
        // Not J_Krum: rows 1 and 5 tie there at n_selected = 2, and rounding picks either.
        let j = super::super::testing::Normal::new(81).matrix(7, 4);
        let w = Krum::new(1, 2).unwrap().weights(&gram(&j));
        for s in [1e-100, 1e100] {
            assert_eq!(Krum::new(1, 2).unwrap().weights(&gram(&(&j * s))), w);
        }
    }
}
