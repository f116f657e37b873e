//! Mean: w = 1/m. Not non-conflicting; linear under scaling; weighted.
use super::registry::Property::{No, Yes};
use super::registry::{props, AggregatorInfo};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "mean",
    label: "Mean",
    description: "The average gradient: w = 1/m.",
    params: &[],
    properties: props(No, Yes, Yes, None),
    gramian_weighted: true,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

#[derive(Clone, Copy, Debug, Default)]
pub struct Mean;

impl Weighting for Mean {
    fn reads_gram(&self) -> bool {
        false // only m = G.nrows() is used
    }

    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        DVector::from_element(m, 1.0 / m as f64)
    }
}
