//! Switch top-1 routing (Fedus et al.): each token goes to i* = argmax p (ties → lower index)
//! with weight p_{i*}; expert capacity C = ⌊cf·T/E⌋. A token's slot in its expert is the count
//! of earlier tokens (batch order) sent there; slot ≥ C drops it and the token passes through
//! the residual (its MoE output is 0).

use super::routing::{argmax, capacity, softmax_rows, Routing};
use nalgebra::DMatrix;

pub fn route(logits: DMatrix<f64>, capacity_factor: f64) -> Routing {
    let probs = softmax_rows(&logits);
    let (t, e) = logits.shape();
    let cap = capacity(capacity_factor, t, e, t);
    let mut combine = DMatrix::zeros(t, e);
    let mut dispatch = DMatrix::zeros(t, e);
    let mut fill = vec![0usize; e];
    let mut dropped = 0;
    for tok in 0..t {
        let row: Vec<f64> = probs.row(tok).iter().copied().collect();
        let i = argmax(&row);
        if fill[i] < cap {
            combine[(tok, i)] = row[i];
            dispatch[(tok, i)] = 1.0;
        } else {
            dropped += 1;
        }
        fill[i] += 1;
    }
    Routing { logits, probs, combine, dispatch, capacity: Some(cap), dropped, noise: None }
}

/// dL/dp from dL/dG: G = p on dispatched entries.
pub fn d_probs(routing: &Routing, d_combine: &DMatrix<f64>) -> DMatrix<f64> {
    d_combine.component_mul(&routing.dispatch)
}
