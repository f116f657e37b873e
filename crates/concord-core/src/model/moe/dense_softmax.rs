//! Dense softmax gating: G = softmax(h), every expert runs on every token (no capacity).

use super::routing::{softmax_rows, Routing};
use nalgebra::DMatrix;

pub fn route(logits: DMatrix<f64>) -> Routing {
    let probs = softmax_rows(&logits);
    let (t, e) = logits.shape();
    Routing {
        combine: probs.clone(),
        dispatch: DMatrix::from_element(t, e, 1.0),
        logits,
        probs,
        capacity: None,
        dropped: 0,
        noise: None,
    }
}

/// dL/dp from dL/dG: G = p.
pub fn d_probs(_routing: &Routing, d_combine: &DMatrix<f64>) -> DMatrix<f64> {
    d_combine.clone()
}
