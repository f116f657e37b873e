//! DualProj (Lopez-Paz & Ranzato 2017, GEM eq. 11, as a multi-task aggregator), torchjd
//! `_dualproj.py` semantics: w = argmin_v vᵀĜv s.t. v ≥ p with Ĝ = normalize(G, norm_eps) +
//! reg_eps·I, i.e. the mean Jᵀp projected onto the dual cone {y : Jy ≥ 0}.
//! Non-conflicting (exactly with reg_eps = 0; with torchjd's 1e-4 ridge the J_base output itself
//! conflicts slightly, aggregators.md §7.1); not linear under scaling; weighted.
//! Shares the QP with UPGrad ([`super::dual_cone`]).
use super::dual_cone::{project_weights, regularized_gram};
use super::registry::Property::{No, Yes};
use super::registry::{props, AggregatorInfo, NORM_EPS, PREF_MEAN, REG_EPS};
use super::upgrad::{pref_for, validate_eps, validate_pref};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "dualproj",
    label: "DualProj",
    description: "The p-weighted mean projected onto the dual cone of the rows (GEM).",
    params: &[PREF_MEAN, NORM_EPS, REG_EPS],
    properties: props(Yes, No, Yes, Some("exact with reg_eps = 0; the default 1e-4 ridge can leave a small conflict")),
    gramian_weighted: true,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

/// DualProj weighting: [`DualProj::default`] (torchjd's p = 1/m, norm_eps = reg_eps = 1e-4),
/// [`DualProj::exact`] or [`DualProj::new`].
#[derive(Clone, Debug)]
pub struct DualProj {
    pref: Option<Vec<f64>>,
    norm_eps: f64,
    reg_eps: f64,
}

impl Default for DualProj {
    fn default() -> Self {
        DualProj { pref: None, norm_eps: 1e-4, reg_eps: 1e-4 }
    }
}

impl DualProj {
    /// Same parameters and checks as [`super::UpGrad::new`].
    pub fn new(pref: Option<Vec<f64>>, norm_eps: f64, reg_eps: f64) -> Result<Self, String> {
        validate_pref(&pref)?;
        validate_eps(norm_eps, reg_eps)?;
        Ok(DualProj { pref, norm_eps, reg_eps })
    }

    /// The exact projection (norm_eps = reg_eps = 0, p = 1/m).
    pub fn exact() -> Self {
        DualProj { pref: None, norm_eps: 0.0, reg_eps: 0.0 }
    }
}

impl Weighting for DualProj {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let p = pref_for(&self.pref, gram.nrows());
        match regularized_gram(gram, self.norm_eps, self.reg_eps) {
            Some(g_hat) => project_weights(&g_hat, &p),
            // Non-finite G: stay finite with the unprojected p.
            None => p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{j_base, worst_conflict, Normal, SHAPES};
    use super::super::{gram, Aggregator};
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn dualproj_matches_torchjd_on_j_base() {
        let a = DualProj::default().aggregate(&j_base());
        assert_abs_diff_eq!(a.weights.unwrap(), DVector::from_vec(vec![0.6109, 0.5000]), epsilon = 1e-4);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.5563, 1.1109, 1.1109]), epsilon = 1e-4);
    }

    #[test]
    fn exact_mode_on_j_base() {
        // aggregators.md §6: A = [5/9, 10/9, 10/9]; g₁·d = 0 exactly (g₁ was the conflicting one).
        let a = DualProj::exact().aggregate(&j_base());
        let expected = DVector::from_vec(vec![5.0 / 9.0, 10.0 / 9.0, 10.0 / 9.0]);
        assert_abs_diff_eq!(a.update, expected, epsilon = 1e-12);
    }

    #[test]
    fn exact_mode_is_non_conflicting() {
        let mut rng = Normal::new(43);
        for &(m, n, r) in SHAPES.iter() {
            for _ in 0..3 {
                let j = rng.low_rank(m, n, r);
                let d = DualProj::exact().aggregate(&j).update;
                let worst = worst_conflict(&j, &d);
                assert!(worst >= -1e-9, "{m}×{n} rank {r}: J·d reaches {worst}·‖J‖²");
            }
        }
    }

    #[test]
    fn non_conflicting_input_is_left_alone() {
        // All pairwise dot products ≥ 0: the mean is already in the dual cone.
        let j = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 1.0, 1.0]);
        let w = DualProj::default().weights(&gram(&j));
        assert_abs_diff_eq!(w, DVector::from_vec(vec![0.5, 0.5]), epsilon = 1e-15);
    }

    #[test]
    fn constructor_validates() {
        assert!(DualProj::new(Some(vec![-1.0]), 1e-4, 1e-4).is_err());
        assert!(DualProj::new(None, f64::NAN, 1e-4).is_err());
        assert!(DualProj::new(Some(vec![1.0, 3.0]), 0.0, 0.0).is_ok());
    }
}
