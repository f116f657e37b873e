//! MGDA — TODO(helper)
use super::Weighting;
use nalgebra::{DMatrix, DVector};

#[derive(Clone, Debug)]
pub struct Mgda { pub epsilon: f64, pub max_iters: usize }
impl Default for Mgda { fn default() -> Self { Mgda { epsilon: 1e-3, max_iters: 100 } } }
impl Weighting for Mgda {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> { todo!("{}", gram.nrows()) }
}
