//! GShard top-2 (fairscale `top2gate`, mesh `_top_2_gating` with second-expert policy `all`,
//! chosen so routing is deterministic): e₁ = argmax p, e₂ = argmax p without e₁ (ties → lower
//! index), weights renormalised g₁' = g₁/(g₁+g₂), g₂' = g₂/(g₁+g₂). Capacity C = ⌊cf·2T/E⌋.
//! First choices take slots first (batch order); second-choice slots start after the count of
//! first choices of that expert. A choice whose slot is ≥ C is dropped (weight 0, not
//! renormalised again).

use super::routing::{capacity, softmax_rows, top_k, Routing};
use nalgebra::DMatrix;

/// Each token's (e₁, e₂).
pub fn choices(probs: &DMatrix<f64>) -> Vec<(usize, usize)> {
    probs
        .row_iter()
        .map(|row| {
            let v: Vec<f64> = row.iter().copied().collect();
            let k = top_k(&v, 2);
            (k[0], k[1])
        })
        .collect()
}

pub fn route(logits: DMatrix<f64>, capacity_factor: f64) -> Routing {
    let probs = softmax_rows(&logits);
    let (t, e) = logits.shape();
    let cap = capacity(capacity_factor, 2 * t, e, t);
    let picks = choices(&probs);
    let mut first_count = vec![0usize; e];
    for &(e1, _) in &picks {
        first_count[e1] += 1;
    }
    let mut combine = DMatrix::zeros(t, e);
    let mut dispatch = DMatrix::zeros(t, e);
    let mut fill1 = vec![0usize; e];
    let mut fill2 = first_count.clone();
    let mut dropped = 0;
    for (tok, &(e1, e2)) in picks.iter().enumerate() {
        let (g1, g2) = (probs[(tok, e1)], probs[(tok, e2)]);
        let s = g1 + g2;
        if fill1[e1] < cap {
            combine[(tok, e1)] = g1 / s;
            dispatch[(tok, e1)] = 1.0;
        } else {
            dropped += 1;
        }
        fill1[e1] += 1;
        if fill2[e2] < cap {
            combine[(tok, e2)] = g2 / s;
            dispatch[(tok, e2)] = 1.0;
        } else {
            dropped += 1;
        }
        fill2[e2] += 1;
    }
    Routing { logits, probs, combine, dispatch, capacity: Some(cap), dropped, noise: None }
}

/// dL/dp from dL/dG through the renormalisation (only kept choices carry a gradient).
pub fn d_probs(routing: &Routing, d_combine: &DMatrix<f64>) -> DMatrix<f64> {
    let mut out = DMatrix::zeros(routing.tokens(), routing.experts());
    for (tok, (e1, e2)) in choices(&routing.probs).into_iter().enumerate() {
        let (g1, g2) = (routing.probs[(tok, e1)], routing.probs[(tok, e2)]);
        let s2 = (g1 + g2) * (g1 + g2);
        let d1 = d_combine[(tok, e1)] * routing.dispatch[(tok, e1)];
        let d2 = d_combine[(tok, e2)] * routing.dispatch[(tok, e2)];
        // ∂(g₁/s)/∂g₁ = g₂/s², ∂(g₁/s)/∂g₂ = −g₁/s², and symmetrically for g₂/s.
        out[(tok, e1)] = (d1 - d2) * g2 / s2;
        out[(tok, e2)] = (d2 - d1) * g1 / s2;
    }
    out
}
