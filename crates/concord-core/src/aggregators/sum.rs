//! Sum: w = 1. Not non-conflicting; linear under scaling; weighted.
use super::registry::Property::{No, Yes};
use super::registry::{props, AggregatorInfo};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "sum",
    label: "Sum",
    description: "The sum of the gradients: w = 1.",
    params: &[],
    properties: props(No, Yes, Yes, None),
    gramian_weighted: true,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

#[derive(Clone, Copy, Debug, Default)]
pub struct Sum;

impl Weighting for Sum {
    fn reads_gram(&self) -> bool {
        false // only m = G.nrows() is used
    }

    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        DVector::from_element(gram.nrows(), 1.0)
    }
}
