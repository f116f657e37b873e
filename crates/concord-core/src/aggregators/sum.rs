//! Sum: w = 1. Not non-conflicting; linear under scaling; weighted.
use super::Weighting;
use nalgebra::{DMatrix, DVector};

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
