//! Mean: w = 1/m. Not non-conflicting; linear under scaling; weighted.
use super::Weighting;
use nalgebra::{DMatrix, DVector};

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
