//! Mixture-of-experts in the shared trunk: routers (one file each), auxiliary losses (one file
//! each), the model with hand-written backprop, and its routing statistics. The task-gated
//! architectures CGC, PLE and DSelect-k (`cgc.rs`, `ple.rs`, `dselect_k.rs`) run on the same
//! experts, linear layers and statistics through `extraction.rs`.
//!
//! Tie-breaking, shared with the WGSL routing core: among equal values the lower index wins
//! (lower expert for token→expert choices, lower token for expert→token choices); capacity
//! slots go to tokens in batch order.

mod activations;
mod aux;
mod backend_routing;
mod config;
mod extraction;
mod layout;
mod linear;
mod model;
mod normal;
mod selection;
mod softplus;
mod stats;

pub mod catalogue;
pub mod cgc;
pub mod cv_squared;
pub mod dense_softmax;
pub mod dselect_k;
pub mod expert_choice;
pub mod load_balance;
pub mod mmoe;
pub mod mutual_info;
pub mod noisy_topk;
pub mod ple;
pub mod routing;
pub mod switch;
pub mod task_routing;
pub mod top2;
pub mod z_loss;

#[cfg(test)]
mod tests;

pub use activations::ExpertGroup;
pub use aux::AuxValues;
pub use backend_routing::BackendChoice;
pub use config::{
    AuxWeights, Gating, MoeConfig, RouterKind, TaskGate, MAX_CAPACITY_FACTOR, MAX_DSELECT_GAMMA, MAX_EXPERTS,
    MAX_EXPERT_HIDDEN,
};
pub use layout::{ExpertSlice, GateSlice, MoeLayout};
pub use model::{Moe, MoeGradients};
pub use routing::Routing;
pub use stats::{RoutingStats, TaskRouting};
