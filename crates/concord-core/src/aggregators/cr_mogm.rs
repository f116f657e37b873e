//! CR-MOGM (Zhou et al., NeurIPS 2022, "On the Convergence of Stochastic Multi-Objective Gradient
//! Manipulation and Beyond"), torchjd 0.18 `CRMOGMWeighting` semantics (methods-wave2.md §1c):
//! an EMA of a wrapped Gramian weighting's output,
//!     λ_k = αλ_{k−1} + (1−α)λ̂_k,   λ₀ = `initial_weights`, or λ̂₁ (so the first output is λ̂₁),
//! and d = Jᵀλ_k. torchjd requires the wrapped weighting; here it is named by `inner` (any
//! Gramian-weighted registry method with its defaults), MGDA by default, the paper's main
//! instance. torchjd raises when m changes; here the EMA restarts instead (and `reset` resets the
//! wrapped one too, as torchjd's does). No documented property row (torchjd); weighted; stateful.
use super::registry::Property::NotDocumented;
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range, LIST_MAX};
use super::{Aggregator, Weighting};
use nalgebra::{DMatrix, DVector};

/// The registry methods CR-MOGM can wrap: the Gramian-weighted ones without a required parameter.
pub const INNER: &[&str] = &[
    "mgda",
    "mean",
    "sum",
    "pcgrad",
    "gradvac",
    "cagrad",
    "upgrad",
    "dualproj",
    "imtl-g",
    "aligned-mtl",
    "random",
    "nash-mtl",
    "pcd",
    "modo",
    "sdmgrad",
];

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "cr-mogm",
    label: "CR-MOGM",
    description: "Smooths another method's task weights with an exponential moving average across steps.",
    params: &[
        param(
            "inner",
            ParamDefault::Value("mgda"),
            Range::OneOf(INNER),
            "the wrapped method, with its defaults (torchjd: required)",
        ),
        param(
            "alpha",
            ParamDefault::Value("0.9"),
            Range::UnitInterval,
            "EMA coefficient on the previous weights (0: pass-through, 1: frozen)",
        ),
        param(
            "initial_weights",
            ParamDefault::Computed("the first call's weights"),
            Range::FiniteList { bound: LIST_MAX },
            "λ₀, the weights the EMA starts from",
        ),
    ],
    properties: props(
        NotDocumented,
        NotDocumented,
        NotDocumented,
        Some("not in torchjd's table; weighted (an EMA of weights); stateful"),
    ),
    gramian_weighted: true,
    stateful: true,
    seeded: false,
    needs_losses: false,
};

pub struct CrMogm {
    inner: Box<dyn Aggregator>,
    alpha: f64,
    initial: Option<Vec<f64>>,
    lambda: Option<DVector<f64>>,
}

impl CrMogm {
    /// `inner` must be Gramian-weighted (its `gram_weights` gives weights); α ∈ [0, 1].
    pub fn new(inner: Box<dyn Aggregator>, alpha: f64, initial: Option<Vec<f64>>) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(format!("alpha must be in [0, 1], got {alpha}"));
        }
        Ok(CrMogm { inner, alpha, initial, lambda: None })
    }
}

impl Weighting for CrMogm {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let hat = self.inner.gram_weights(gram).unwrap_or_else(|| DVector::from_element(m, 1.0 / m.max(1) as f64));
        let prev = match self.lambda.take() {
            Some(l) if l.len() == m => l,
            _ => match &self.initial {
                Some(w) if w.len() == m => DVector::from_column_slice(w),
                _ => hat.clone(),
            },
        };
        let next = &prev * self.alpha + &hat * (1.0 - self.alpha);
        // A non-finite λ̂ (a wrapped method's failure) must not poison the EMA for good.
        let next = if next.iter().all(|x| x.is_finite()) { next } else { prev };
        self.lambda = Some(next.clone());
        next
    }

    fn reset(&mut self) {
        self.inner.reset();
        self.lambda = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mgda;
    use super::*;
    use approx::assert_abs_diff_eq;

    /// methods-wave2.md §1c "Test this" (torchjd 0.18 values).
    #[test]
    fn matches_the_reference_examples() {
        let g1 = DMatrix::from_row_slice(2, 2, &[1.0, -1.0, -1.0, 2.0]);
        let g2 = DMatrix::from_row_slice(2, 2, &[4.0, 1.0, 1.0, 1.0]);
        let mut c = CrMogm::new(Box::new(Mgda::default()), 0.9, None).unwrap();
        assert_abs_diff_eq!(c.weights(&g1), DVector::from_vec(vec![0.6, 0.4]), epsilon = 1e-9);
        assert_abs_diff_eq!(c.weights(&g2), DVector::from_vec(vec![0.54, 0.46]), epsilon = 1e-9);
        let mut c = CrMogm::new(Box::new(Mgda::default()), 0.5, Some(vec![0.5, 0.5])).unwrap();
        assert_abs_diff_eq!(c.weights(&g1), DVector::from_vec(vec![0.55, 0.45]), epsilon = 1e-9);
        assert_abs_diff_eq!(c.weights(&g2), DVector::from_vec(vec![0.275, 0.725]), epsilon = 1e-9);
        Weighting::reset(&mut c);
        assert_abs_diff_eq!(c.weights(&g1), DVector::from_vec(vec![0.55, 0.45]), epsilon = 1e-9);
        assert!(CrMogm::new(Box::new(Mgda::default()), 1.5, None).is_err());
    }
}
