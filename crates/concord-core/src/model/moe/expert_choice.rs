//! Expert-choice routing (Zhou et al. 2022): S = softmax(h) over experts per token; each expert
//! takes the k = ⌊T·c/E⌋ (clamped to 1…T) tokens with the highest S[:, e] (ties → lower token
//! index) and weights them by S. A token can get no expert (then only the residual) or several.

use super::routing::{capacity, softmax_rows, top_k, Routing};
use nalgebra::DMatrix;

pub fn route(logits: DMatrix<f64>, capacity_factor: f64) -> Routing {
    let probs = softmax_rows(&logits);
    let (t, e) = logits.shape();
    let k = capacity(capacity_factor, t, e, t);
    let mut combine = DMatrix::zeros(t, e);
    let mut dispatch = DMatrix::zeros(t, e);
    for ex in 0..e {
        let col: Vec<f64> = probs.column(ex).iter().copied().collect();
        for tok in top_k(&col, k) {
            combine[(tok, ex)] = probs[(tok, ex)];
            dispatch[(tok, ex)] = 1.0;
        }
    }
    Routing { logits, probs, combine, dispatch, capacity: Some(k), dropped: 0, noise: None }
}

pub fn d_probs(routing: &Routing, d_combine: &DMatrix<f64>) -> DMatrix<f64> {
    d_combine.component_mul(&routing.dispatch)
}
