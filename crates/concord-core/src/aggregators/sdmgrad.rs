//! SDMGrad (Xiao et al., NeurIPS 2023, "Direction-oriented Multi-objective Learning"), torchjd 0.18
//! `SDMGradWeighting` semantics (methods-wave2.md §1e).
//!
//! σ = mean_i √max(A_ii, 0), a = A/(σ² + 1e-8). From the stored w (warm start, 1/m at first),
//! n_iter steps of projected SGD with momentum (the velocity restarts at every call):
//!     r = a(w + λw̃),  v = r (first step) else μv + r,  w ← Π_Δ(w − lr·v);
//! store w and return (w + λw̃)/(1 + λ), d = Jᵀ·that. The reference takes A = J₁J₂ᵀ from two
//! independent batches and d from a third; an aggregator sees one Jacobian, so here A = G = JJᵀ
//! (single-batch). No documented property row (torchjd); weighted; stateful (w restarts when m
//! changes).
use super::numerics::{all_finite, project_onto_simplex};
use super::registry::Property::NotDocumented;
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range, LIST_MAX, PREF_MEAN};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "sdmgrad",
    label: "SDMGrad",
    description:
        "Min-norm weights pulled towards a preference direction, by warm-started projected SGD (single-batch G).",
    params: &[
        // torchjd: lr > 0; the inner problem is scale-normalised, so 1e4 already jumps vertex to vertex.
        param("lr", ParamDefault::Value("10"), Range::Positive { max: 1e4 }, "step size of the inner SGD (> 0)"),
        param("momentum", ParamDefault::Value("0.5"), Range::UnitIntervalOpen, "momentum of the inner SGD (< 1)"),
        param("n_iter", ParamDefault::Value("20"), Range::PositiveCount { max: 100_000 }, "inner SGD steps per call"),
        param(
            "lambda",
            ParamDefault::Value("0.3"),
            Range::NonNegative { max: LIST_MAX },
            "pull λ towards the preference direction (torchjd `lambda_`)",
        ),
        PREF_MEAN,
    ],
    properties: props(
        NotDocumented,
        NotDocumented,
        NotDocumented,
        Some("not in torchjd's table; A = JJᵀ from one batch (the paper uses two); weighted; stateful"),
    ),
    gramian_weighted: true,
    stateful: true,
    seeded: false,
    needs_losses: false,
};

#[derive(Clone, Debug)]
pub struct SdmGrad {
    lr: f64,
    momentum: f64,
    n_iter: usize,
    lambda: f64,
    pref: Option<Vec<f64>>,
    w: Option<DVector<f64>>,
}

impl Default for SdmGrad {
    /// torchjd's defaults: lr = 10, momentum = 0.5, n_iter = 20, λ = 0.3, w̃ = 1/m.
    fn default() -> Self {
        SdmGrad { lr: 10.0, momentum: 0.5, n_iter: 20, lambda: 0.3, pref: None, w: None }
    }
}

impl SdmGrad {
    /// torchjd's checks: lr > 0, momentum ∈ [0, 1), n_iter ≥ 1, λ ≥ 0.
    pub fn new(lr: f64, momentum: f64, n_iter: usize, lambda: f64, pref: Option<Vec<f64>>) -> Result<Self, String> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("lr must be positive, got {lr}"));
        }
        if !(0.0..1.0).contains(&momentum) {
            return Err(format!("momentum must be in [0, 1), got {momentum}"));
        }
        if n_iter == 0 {
            return Err("n_iter must be at least 1".into());
        }
        if !(lambda.is_finite() && lambda >= 0.0) {
            return Err(format!("lambda must be finite and ≥ 0, got {lambda}"));
        }
        Ok(SdmGrad { lr, momentum, n_iter, lambda, pref, w: None })
    }
}

impl Weighting for SdmGrad {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        if self.w.as_ref().is_none_or(|w| w.len() != m) {
            self.w = Some(DVector::from_element(m, 1.0 / m as f64));
        }
        let pref = match &self.pref {
            Some(p) if p.len() == m => DVector::from_column_slice(p),
            _ => DVector::from_element(m, 1.0 / m as f64),
        };
        let stored = self.w.as_ref().expect("set above").clone();
        let output = |w: &DVector<f64>| (w + &pref * self.lambda) / (1.0 + self.lambda);
        if m == 0 || !all_finite(gram) {
            return output(&stored);
        }
        let sigma = gram.diagonal().iter().map(|d| d.max(0.0).sqrt()).sum::<f64>() / m as f64;
        let a = gram / (sigma * sigma + 1e-8);
        let mut w = stored;
        let mut velocity: Option<DVector<f64>> = None;
        for _ in 0..self.n_iter {
            let r = &a * (&w + &pref * self.lambda);
            let v = match velocity {
                None => r,
                Some(v) => v * self.momentum + r,
            };
            w = project_onto_simplex(&(&w - &v * self.lr));
            velocity = Some(v);
        }
        // An overflow (σ² + 1e-8 = ∞) would give NaN: keep the stored w.
        if w.iter().all(|x| x.is_finite()) {
            self.w = Some(w);
        }
        output(self.w.as_ref().expect("set above"))
    }

    fn reset(&mut self) {
        self.w = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// methods-wave2.md §1e "Test this" (torchjd 0.18 values).
    #[test]
    fn matches_the_reference_examples() {
        let a = DMatrix::from_row_slice(2, 2, &[1.0, -1.0, -1.0, 2.0]);
        let mut s = SdmGrad::default();
        for _ in 0..2 {
            assert_abs_diff_eq!(s.weights(&a), DVector::from_vec(vec![0.115385, 0.884615]), epsilon = 1e-6);
        }
        let w = SdmGrad::new(10.0, 0.5, 1, 0.3, None).unwrap().weights(&a);
        assert_abs_diff_eq!(w, DVector::from_vec(vec![0.884615, 0.115385]), epsilon = 1e-6);
        assert!(SdmGrad::new(0.0, 0.5, 1, 0.3, None).is_err());
        assert!(SdmGrad::new(1.0, 1.0, 1, 0.3, None).is_err());
        assert!(SdmGrad::new(1.0, 0.5, 0, 0.3, None).is_err());
    }
}
