//! CGC, customised gate control (Tang et al. RecSys 2020, the PLE paper; LibMTL `CGC`), one
//! level of the extraction engine (`extraction.rs`): the `experts` shared experts plus
//! `task_experts` experts per task, and one softmax gate per task over [shared; its own]:
//! o_k = Σ_j softmax(W_k·a + b_k)_j·e_j (shared first), then head k reads a + o_k (the MoE
//! module's residual block; LibMTL feeds o_k to the tower directly).
//!
//! Shared parameters (J's columns): the shared experts and the pre-layers only. The task
//! experts, the gates and the heads are task-owned (the heads' gradients).

use super::extraction::{GateKind, Plan};

pub fn plan(task_experts: usize) -> Plan {
    Plan { levels: 1, task_experts, gate: GateKind::Softmax }
}
