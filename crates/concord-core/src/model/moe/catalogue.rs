//! What `concord methods` lists about the MoE routers and architectures: each with its
//! parameters (the `concord train` flag that sets it, its default, its meaning). The defaults
//! are `RouterKind::from_name`'s (checked by the tests below), so the listing cannot drift.
use serde::Serialize;

/// One parameter of a router or of every MoE model.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RouterParam {
    /// The `concord train` flag.
    pub flag: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// One router (`architecture`: CGC, PLE, DSelect-k, multi-task architectures with task-owned
/// gates rather than a router of a shared block).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RouterInfo {
    pub name: &'static str,
    pub label: &'static str,
    pub architecture: bool,
    pub description: &'static str,
    pub params: &'static [RouterParam],
}

const fn p(flag: &'static str, default: &'static str, meaning: &'static str) -> RouterParam {
    RouterParam { flag, default, meaning }
}

const K_TOPK: RouterParam = p("--k", "2", "experts per token");
const CF_125: RouterParam = p("--capacity-factor", "1.25", "expert capacity factor (overflow takes the residual)");
const TASK_EXPERTS: RouterParam = p("--task-experts", "1", "experts owned by each task");

/// Every router, in `RouterKind::NAMES` order.
pub const ROUTERS: [RouterInfo; 10] = [
    RouterInfo {
        name: "softmax",
        label: "Softmax",
        architecture: false,
        description: "one dense gate G = softmax(h); every expert runs",
        params: &[],
    },
    RouterInfo {
        name: "mmoe",
        label: "MMoE",
        architecture: false,
        description: "one dense softmax gate per task (Ma et al. 2018)",
        params: &[],
    },
    RouterInfo {
        name: "noisy-topk",
        label: "Noisy top-k",
        architecture: false,
        description: "softmax over the k largest noisy logits (Shazeer et al. 2017; noise while training)",
        params: &[K_TOPK],
    },
    RouterInfo {
        name: "switch",
        label: "Switch",
        architecture: false,
        description: "top-1 with capacity ⌊cf·T/E⌋ (Fedus et al. 2021)",
        params: &[CF_125],
    },
    RouterInfo {
        name: "top2",
        label: "Top-2",
        architecture: false,
        description: "GShard top-2, capacity ⌊cf·2T/E⌋, first choices first",
        params: &[CF_125],
    },
    RouterInfo {
        name: "expert-choice",
        label: "Expert choice",
        architecture: false,
        description: "each expert takes its ⌊T·cf/E⌋ best tokens (Zhou et al. 2022)",
        params: &[p("--capacity-factor", "2", "tokens per expert, as a multiple of T/E")],
    },
    RouterInfo {
        name: "task",
        label: "Task-routed",
        architecture: false,
        description: "task-conditioned top-k of the gate probabilities (M³ViT, Mod-Squad)",
        params: &[
            p("--k", "1", "experts per token"),
            p("--task-gate", "per-task", "a gate per task, or one gate fed the task's one-hot (embedding)"),
        ],
    },
    RouterInfo {
        name: "cgc",
        label: "CGC",
        architecture: true,
        description: "shared experts plus each task's own, one softmax gate per task (PLE paper's CGC)",
        params: &[TASK_EXPERTS],
    },
    RouterInfo {
        name: "ple",
        label: "PLE",
        architecture: true,
        description: "2 levels of CGC with a shared gate at level 1 (progressive layered extraction)",
        params: &[p("--task-experts", "1", "experts owned by each task, per level")],
    },
    RouterInfo {
        name: "dselect-k",
        label: "DSelect-k",
        architecture: true,
        description: "per-task gate over the shared experts from k binary-coded selectors (Hazimeh et al. 2021)",
        params: &[
            p("--k", "2", "selectors (num_nonzeros)"),
            p("--gamma", "1", "width γ of the smooth step"),
            p("--aux-entropy", "0", "weight of the selector-entropy regulariser (official schedule 1e-6)"),
        ],
    },
];

/// The parameters every MoE model has (`--model moe`).
pub const MOE_PARAMS: [RouterParam; 7] = [
    p("--experts", "4", "experts (cgc and ple: shared experts per level)"),
    p("--expert-hidden", "8", "hidden width of each expert"),
    p("--aux-load-balance", "0", "weight α of the Switch load-balancing loss N·Σ f_i·P_i"),
    p("--aux-z-loss", "0", "weight of the router z-loss mean(logsumexp²)"),
    p("--aux-importance", "0", "weight of CV²(importance)"),
    p("--aux-load", "0", "weight of CV²(load)"),
    p("--aux-mi", "0", "weight of the task–expert mutual-information loss"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::moe::{AuxWeights, RouterKind, TaskGate};

    #[test]
    fn every_router_is_listed_in_order() {
        let names: Vec<&str> = ROUTERS.iter().map(|r| r.name).collect();
        assert_eq!(names, RouterKind::NAMES);
        for r in &ROUTERS {
            let kind = RouterKind::from_name(r.name, None, None, TaskGate::PerTask).unwrap();
            assert_eq!(kind.is_architecture(), r.architecture, "{}", r.name);
        }
    }

    /// The listed defaults are the ones `from_name` and `AuxWeights::default` use: a wrong
    /// default here fails.
    #[test]
    fn listed_defaults_are_the_constructors() {
        let listed = |name: &str, flag: &str| -> f64 {
            let r = ROUTERS.iter().find(|r| r.name == name).unwrap();
            r.params.iter().find(|q| q.flag == flag).unwrap().default.parse().unwrap()
        };
        for r in &ROUTERS {
            let kind = RouterKind::from_name(r.name, None, None, TaskGate::PerTask).unwrap();
            let (flag, value) = match kind {
                RouterKind::Softmax | RouterKind::Mmoe => {
                    assert!(r.params.is_empty());
                    continue;
                }
                RouterKind::NoisyTopK { k } => ("--k", k as f64),
                RouterKind::Switch { capacity_factor }
                | RouterKind::Top2 { capacity_factor }
                | RouterKind::ExpertChoice { capacity_factor } => ("--capacity-factor", capacity_factor),
                RouterKind::Task { k, gate } => {
                    assert_eq!(gate, TaskGate::PerTask);
                    ("--k", k as f64)
                }
                RouterKind::Cgc { task_experts } | RouterKind::Ple { task_experts } => {
                    ("--task-experts", task_experts as f64)
                }
                RouterKind::DselectK { k, gamma } => {
                    assert_eq!(listed(r.name, "--gamma"), gamma);
                    assert_eq!(listed(r.name, "--aux-entropy"), AuxWeights::default().entropy);
                    ("--k", k as f64)
                }
            };
            assert_eq!(listed(r.name, flag), value, "{} {flag}", r.name);
        }
        let aux = AuxWeights::default();
        for (flag, v) in [
            ("--aux-load-balance", aux.load_balance),
            ("--aux-z-loss", aux.z_loss),
            ("--aux-importance", aux.importance),
            ("--aux-load", aux.load),
            ("--aux-mi", aux.mutual_info),
        ] {
            let q = MOE_PARAMS.iter().find(|q| q.flag == flag).unwrap();
            assert_eq!(q.default.parse::<f64>().unwrap(), v, "{flag}");
        }
    }
}
