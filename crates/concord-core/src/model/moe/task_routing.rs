//! Task-conditioned routing (M³ViT, Mod-Squad): the gate sees the task — one gate per task, or
//! one gate fed concat(a, onehot(task)) (`Gating`). Selection: the k experts with the largest
//! probability (ties → lower index), weighted by their probability *without* renormalising, as
//! Switch does for k = 1, so the task loss still trains the gate when k = 1. With k = E this is
//! MMoE. The routing is computed once per task on the whole batch.

use super::routing::{softmax_rows, top_k, Routing};
use nalgebra::DMatrix;

pub fn route(logits: DMatrix<f64>, k: usize) -> Routing {
    let probs = softmax_rows(&logits);
    let (t, e) = logits.shape();
    let mut combine = DMatrix::zeros(t, e);
    let mut dispatch = DMatrix::zeros(t, e);
    for tok in 0..t {
        let row: Vec<f64> = probs.row(tok).iter().copied().collect();
        for ex in top_k(&row, k) {
            combine[(tok, ex)] = row[ex];
            dispatch[(tok, ex)] = 1.0;
        }
    }
    Routing { logits, probs, combine, dispatch, capacity: None, dropped: 0, noise: None }
}

pub fn d_probs(routing: &Routing, d_combine: &DMatrix<f64>) -> DMatrix<f64> {
    d_combine.component_mul(&routing.dispatch)
}
