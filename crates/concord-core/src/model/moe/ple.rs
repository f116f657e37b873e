//! PLE, progressive layered extraction (Tang et al. RecSys 2020), **the paper's form** with 2
//! levels on the extraction engine (`extraction.rs`). Level 1: task-k experts read a, shared
//! experts read a; task k's gate mixes [shared; task-k] into h_k¹, and a *shared gate* mixes
//! [shared; every task's experts] into the shared stream h_s¹. Level 2 (the last): task-k
//! experts read h_k¹, shared experts read h_s¹, task k's gate (reading h_k¹) mixes them into
//! h_k², which head k reads; there is no shared gate at the last level. Every mixture is the
//! MoE block's residual h + Σ p·e. Both levels have `experts` shared and `task_experts` per-task
//! experts.
//!
//! Not LibMTL's `PLE`, which is ResNet-only and has no shared branch or shared gate (both
//! expert kinds read h_k at every level).
//!
//! Shared parameters (J's columns): the pre-layers, both levels' shared experts, the level-1
//! shared gate and the level-1 task experts (the shared gate reads them, so every task depends
//! on them). Task-owned: both levels' task gates, the level-2 task experts and the head.

use super::extraction::{GateKind, Plan};

pub const LEVELS: usize = 2;

pub fn plan(task_experts: usize) -> Plan {
    Plan { levels: LEVELS, task_experts, gate: GateKind::Softmax }
}
