//! Constant (torchjd `_constant.py`): w is a fixed vector given at construction, whatever J is.
//! Not non-conflicting; linear under scaling; weighted.
use super::registry::Property::{No, Yes};
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range, LIST_MAX};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "constant",
    label: "Constant",
    description: "Fixed weights given by the user, whatever J is.",
    params: &[param(
        "weights",
        ParamDefault::Required,
        Range::FiniteList { bound: LIST_MAX },
        "the weights w, one per task",
    )],
    properties: props(No, Yes, Yes, None),
    gramian_weighted: true,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

#[derive(Clone, Debug)]
pub struct Constant {
    weights: DVector<f64>,
}

impl Constant {
    /// The weights must be non-empty and finite; their length is the number of tasks m.
    pub fn new(weights: Vec<f64>) -> Result<Self, String> {
        if weights.is_empty() {
            return Err("Constant needs at least one weight".into());
        }
        if !weights.iter().all(|w| w.is_finite()) {
            return Err(format!("Constant weights must be finite, got {weights:?}"));
        }
        Ok(Constant { weights: DVector::from_vec(weights) })
    }

    pub fn weights(&self) -> &DVector<f64> {
        &self.weights
    }
}

impl Weighting for Constant {
    fn reads_gram(&self) -> bool {
        false // only m = G.nrows() is used
    }

    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        if m == self.weights.len() {
            self.weights.clone()
        } else {
            // torchjd raises on a row count that differs from the number of weights; weights()
            // has no error path, so the mismatch gives no step (zero weights), not a panic.
            DVector::zeros(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::j_base;
    use super::super::Aggregator;
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn constant_matches_torchjd_on_j_base() {
        let a = Constant::new(vec![1.0, 2.0]).unwrap().aggregate(&j_base());
        assert_abs_diff_eq!(a.weights.unwrap(), DVector::from_vec(vec![1.0, 2.0]), epsilon = 1e-4);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![8.0, 3.0, 3.0]), epsilon = 1e-4);
    }

    #[test]
    fn constructor_validates_and_mismatch_is_zero() {
        assert!(Constant::new(vec![]).is_err());
        assert!(Constant::new(vec![1.0, f64::NAN]).is_err());
        let mut c = Constant::new(vec![1.0, 2.0]).unwrap();
        assert_eq!(Weighting::weights(&mut c, &DMatrix::identity(3, 3)), DVector::zeros(3));
    }
}
