//! PCGrad — TODO(helper)
use super::Weighting;
use nalgebra::{DMatrix, DVector};

#[derive(Clone, Debug)]
pub struct PcGrad { seed: u64, calls: u64 }
impl PcGrad { pub fn new(seed: u64) -> Self { PcGrad { seed, calls: 0 } } }
impl Weighting for PcGrad {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> { let _ = (self.seed, self.calls); todo!("{}", gram.nrows()) }
}
