//! CAGrad — TODO(helper)
use super::Weighting;
use nalgebra::{DMatrix, DVector};

#[derive(Clone, Debug)]
pub struct CaGrad { pub c: f64, pub norm_eps: f64 }
impl CaGrad { pub fn new(c: f64) -> Self { CaGrad { c, norm_eps: 1e-4 } } }
impl Weighting for CaGrad {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> { todo!("{}", gram.nrows()) }
}
