//! UPGrad (Quinton & Rey 2024, "Jacobian Descent"), torchjd `_upgrad.py` semantics.
//!
//! Ĝ = normalize(G, norm_eps) + reg_eps·I; for each task i, v⁽ⁱ⁾ = argmin_v vᵀĜv s.t.
//! v ≥ p_i e_i (the dual-cone projection of p_i g_i, see [`super::dual_cone`]); w = Σ_i v⁽ⁱ⁾.
//! So A(J) = Σ_i p_i π_J(g_i): every task's gradient projected onto the cone of non-conflicting
//! directions, then averaged. Non-conflicting (exactly with reg_eps = 0; the 1e-4 ridge can
//! leave a small conflict, aggregators.md §7.1); linear under scaling (up to the ridge);
//! weighted. The defaults are torchjd's: p = 1/m, norm_eps = reg_eps = 1e-4.
use super::dual_cone::{project_weights, regularized_gram};
use super::registry::Property::Yes;
use super::registry::{props, AggregatorInfo, NORM_EPS, PREF_MEAN, REG_EPS};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "upgrad",
    label: "UPGrad",
    description:
        "Every gradient projected onto the dual cone of the rows, then combined with p (torchjd's recommendation).",
    params: &[PREF_MEAN, NORM_EPS, REG_EPS],
    properties: props(
        Yes,
        Yes,
        Yes,
        Some("exact with reg_eps = 0; the default 1e-4 ridge can leave a small conflict and bends linearity slightly"),
    ),
    gramian_weighted: true,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

/// UPGrad weighting. Build with [`UpGrad::default`] (torchjd's defaults), [`UpGrad::exact`]
/// (the exact projection) or [`UpGrad::new`].
#[derive(Clone, Debug)]
pub struct UpGrad {
    pref: Option<Vec<f64>>,
    norm_eps: f64,
    reg_eps: f64,
}

impl Default for UpGrad {
    fn default() -> Self {
        UpGrad { pref: None, norm_eps: 1e-4, reg_eps: 1e-4 }
    }
}

impl UpGrad {
    /// `pref`: the preference vector p (None → 1/m); it must be finite and non-negative, and
    /// its length must equal m at every call (otherwise the default 1/m is used).
    /// `norm_eps`, `reg_eps` must be finite and ≥ 0.
    pub fn new(pref: Option<Vec<f64>>, norm_eps: f64, reg_eps: f64) -> Result<Self, String> {
        validate_pref(&pref)?;
        validate_eps(norm_eps, reg_eps)?;
        Ok(UpGrad { pref, norm_eps, reg_eps })
    }

    /// The exact projection: norm_eps = reg_eps = 0, p = 1/m. Non-conflicting up to rounding;
    /// for m = 2 it equals ½·PCGrad (aggregators.md §3, §7.1).
    pub fn exact() -> Self {
        UpGrad { pref: None, norm_eps: 0.0, reg_eps: 0.0 }
    }
}

/// Preference vectors must be non-empty, finite and ≥ 0 (a negative entry would ask for the
/// projection of a reversed gradient).
pub(crate) fn validate_pref(pref: &Option<Vec<f64>>) -> Result<(), String> {
    if let Some(p) = pref {
        if p.is_empty() {
            return Err("the preference vector must not be empty".into());
        }
        if !p.iter().all(|x| x.is_finite() && *x >= 0.0) {
            return Err(format!("the preference vector must be finite and ≥ 0, got {p:?}"));
        }
    }
    Ok(())
}

pub(crate) fn validate_eps(norm_eps: f64, reg_eps: f64) -> Result<(), String> {
    for (name, v) in [("norm_eps", norm_eps), ("reg_eps", reg_eps)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("{name} must be finite and ≥ 0, got {v}"));
        }
    }
    Ok(())
}

/// p for m tasks: the given vector when its length is m, else 1/m.
pub(crate) fn pref_for(pref: &Option<Vec<f64>>, m: usize) -> DVector<f64> {
    match pref {
        Some(p) if p.len() == m => DVector::from_column_slice(p),
        _ => DVector::from_element(m, 1.0 / m as f64),
    }
}

impl Weighting for UpGrad {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let p = pref_for(&self.pref, m);
        // Ĝ is G/tr G computed in f64, so G up to ~1e308 (J up to ~1e150) stays in range.
        let Some(g_hat) = regularized_gram(gram, self.norm_eps, self.reg_eps) else {
            // Non-finite G (torchjd would propagate NaN): stay finite with the unprojected p.
            return p;
        };
        let mut w = DVector::zeros(m);
        for i in 0..m {
            if p[i] == 0.0 {
                continue; // v ≥ 0 has the solution v = 0.
            }
            let mut u = DVector::zeros(m);
            u[i] = p[i];
            w += project_weights(&g_hat, &u);
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{j_base, worst_conflict, Normal, SHAPES};
    use super::super::{gram, Aggregator, PcGrad};
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn upgrad_matches_torchjd_on_j_base() {
        let a = UpGrad::default().aggregate(&j_base());
        assert_abs_diff_eq!(a.weights.unwrap(), DVector::from_vec(vec![1.1109, 0.7894]), epsilon = 1e-4);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.2929, 1.9004, 1.9004]), epsilon = 1e-4);
    }

    #[test]
    fn exact_mode_on_j_base() {
        // aggregators.md §6: w = [10/9, 15/19], A = ½·PCGrad = [0.2924, 1.9006, 1.9006].
        let a = UpGrad::exact().aggregate(&j_base());
        assert_abs_diff_eq!(a.weights.unwrap(), DVector::from_vec(vec![10.0 / 9.0, 15.0 / 19.0]), epsilon = 1e-12);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.2924, 1.9006, 1.9006]), epsilon = 1e-4);
    }

    /// torchjd's PCGrad test, with p = 1/m instead of 1: exact UPGrad = ½·PCGrad on 2 × n.
    /// torchjd asserts atol 4e-4 in f32; in f64 with the refined QP the match is to rounding.
    #[test]
    fn exact_mode_is_half_pcgrad_for_two_tasks() {
        let mut rng = Normal::new(41);
        for n in [1, 2, 5, 7, 9, 15, 27, 68, 102, 57, 1200, 11100] {
            for _ in 0..3 {
                let j = rng.matrix(2, n);
                let up = UpGrad::exact().aggregate(&j).update;
                let pc = PcGrad::new(0).aggregate(&j).update * 0.5;
                let err = (&up - &pc).amax() / j.norm();
                assert!(err < 1e-10, "n={n}: {up} vs {pc} ({err})");
            }
        }
    }

    #[test]
    fn exact_mode_is_non_conflicting() {
        let mut rng = Normal::new(42);
        for &(m, n, r) in SHAPES.iter() {
            for _ in 0..3 {
                let j = rng.low_rank(m, n, r);
                let d = UpGrad::exact().aggregate(&j).update;
                let worst = worst_conflict(&j, &d);
                assert!(worst >= -1e-9, "{m}×{n} rank {r}: J·d reaches {worst}·‖J‖²");
            }
        }
    }

    #[test]
    fn small_trace_gives_the_preference() {
        // tr G < norm_eps: Ĝ = 1e-4·I, so every projection is u itself and w = p.
        let w = UpGrad::default().weights(&gram(&(j_base() * 1e-3)));
        assert_abs_diff_eq!(w, DVector::from_vec(vec![0.5, 0.5]), epsilon = 1e-15);
        let w = UpGrad::exact().weights(&DMatrix::zeros(3, 3));
        assert_abs_diff_eq!(w, DVector::from_element(3, 1.0 / 3.0), epsilon = 1e-15);
    }

    #[test]
    fn constructor_validates() {
        assert!(UpGrad::new(Some(vec![]), 1e-4, 1e-4).is_err());
        assert!(UpGrad::new(Some(vec![1.0, -1.0]), 1e-4, 1e-4).is_err());
        assert!(UpGrad::new(Some(vec![1.0, f64::NAN]), 1e-4, 1e-4).is_err());
        assert!(UpGrad::new(None, -1.0, 1e-4).is_err());
        assert!(UpGrad::new(None, 1e-4, f64::INFINITY).is_err());
        let mut up = UpGrad::new(Some(vec![1.0, 2.0]), 1e-4, 1e-4).unwrap();
        // A preference vector of the wrong length falls back to 1/m instead of panicking.
        assert!(up.weights(&DMatrix::identity(3, 3)).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn non_finite_gramian_stays_finite() {
        let mut g = gram(&j_base());
        g[(0, 1)] = f64::NAN;
        assert!(UpGrad::default().weights(&g).iter().all(|v| v.is_finite()));
    }
}
