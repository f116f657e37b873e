//! MMoE (Ma et al. 2018): one dense softmax gate per task, g^t(x) = softmax(W_gt·x), mixing
//! shared experts. The selection is the dense softmax's; what makes it MMoE is the gating —
//! each task's tokens are routed by that task's own gate (`Gating::PerTask`), so the model's
//! forward differs per task and so does every task's path through the experts.

use super::dense_softmax;
use super::routing::Routing;
use nalgebra::DMatrix;

pub fn route(logits: DMatrix<f64>) -> Routing {
    dense_softmax::route(logits)
}
