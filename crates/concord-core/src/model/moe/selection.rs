//! Dispatch from the router kind to its file: route a gate group's logits, and backprop dL/dG
//! to dL/dh (clean logits) and dL/dh_noise.

use super::config::RouterKind;
use super::routing::{softmax_backward, Routing};
use super::{dense_softmax, expert_choice, mmoe, noisy_topk, switch, task_routing, top2};
use nalgebra::DMatrix;

pub fn route(
    router: &RouterKind,
    logits: DMatrix<f64>,
    raw_noise: Option<DMatrix<f64>>,
    eps: Option<DMatrix<f64>>,
) -> Routing {
    match *router {
        // The architectures gate inside `extraction.rs` and never reach a routed block; as a
        // lone gate they are dense.
        RouterKind::Softmax | RouterKind::Cgc { .. } | RouterKind::Ple { .. } | RouterKind::DselectK { .. } => {
            dense_softmax::route(logits)
        }
        RouterKind::Mmoe => mmoe::route(logits),
        RouterKind::NoisyTopK { k } => {
            let raw = raw_noise.unwrap_or_else(|| DMatrix::zeros(logits.nrows(), logits.ncols()));
            noisy_topk::route(logits, raw, eps, k)
        }
        RouterKind::Switch { capacity_factor } => switch::route(logits, capacity_factor),
        RouterKind::Top2 { capacity_factor } => top2::route(logits, capacity_factor),
        RouterKind::ExpertChoice { capacity_factor } => expert_choice::route(logits, capacity_factor),
        RouterKind::Task { k, .. } => task_routing::route(logits, k),
    }
}

/// (dL/dh, dL/dh_noise) from dL/dG.
pub fn backward(router: &RouterKind, routing: &Routing, d_combine: &DMatrix<f64>) -> (DMatrix<f64>, DMatrix<f64>) {
    let d_probs = match router {
        RouterKind::NoisyTopK { .. } => return noisy_topk::backward(routing, d_combine),
        RouterKind::Softmax
        | RouterKind::Mmoe
        | RouterKind::Cgc { .. }
        | RouterKind::Ple { .. }
        | RouterKind::DselectK { .. } => dense_softmax::d_probs(routing, d_combine),
        RouterKind::Switch { .. } => switch::d_probs(routing, d_combine),
        RouterKind::Top2 { .. } => top2::d_probs(routing, d_combine),
        RouterKind::ExpertChoice { .. } => expert_choice::d_probs(routing, d_combine),
        RouterKind::Task { .. } => task_routing::d_probs(routing, d_combine),
    };
    let zeros = DMatrix::zeros(routing.tokens(), routing.experts());
    (softmax_backward(&routing.probs, &d_probs), zeros)
}
