//! Router z-loss (ST-MoE): L_z = (1/T)·Σ_x (log Σ_j exp h_j(x))². Returned unweighted.

use super::routing::{logsumexp_rows, softmax_rows};
use nalgebra::DMatrix;

pub fn value(logits: &DMatrix<f64>) -> f64 {
    let lse = logsumexp_rows(logits);
    lse.iter().map(|l| l * l).sum::<f64>() / lse.len() as f64
}

/// dL_z/dh = 2·lse(x)·softmax(h(x))/T.
pub fn d_logits(logits: &DMatrix<f64>) -> DMatrix<f64> {
    let t = logits.nrows() as f64;
    let lse = logsumexp_rows(logits);
    let mut p = softmax_rows(logits);
    for (r, mut row) in p.row_iter_mut().enumerate() {
        row *= 2.0 * lse[r] / t;
    }
    p
}
