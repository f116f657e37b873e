//! The MoE model's configuration: which router, how many experts, the aux-loss weights, and
//! their validation.
//!
//! Structure (a Transformer-style residual block in the shared trunk):
//! x → dense pre-layers `hidden` (φ) → a (width H) → h = a + Σ_e G_e(a)·E_e(a) → one head per task.
//! Expert e is a small MLP H → `expert_hidden` (φ) → H. A token an expert does not take (not
//! selected, or dropped for capacity) gets 0 from it, so a fully dropped token passes through
//! the residual unchanged.

use crate::model::{Activation, HeadConfig, LossKind, MAX_HIDDEN_LAYERS, MAX_INPUT_DIM, MAX_WIDTH};
use serde::{Deserialize, Serialize};

pub const MAX_EXPERTS: usize = 64;
pub const MAX_EXPERT_HIDDEN: usize = 256;
pub const MAX_CAPACITY_FACTOR: f64 = 64.0;

/// How a task-conditioned router feeds the task in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskGate {
    /// One gate per task (M³ViT multi-gate, Mod-Squad): task t's tokens use gate t.
    PerTask,
    /// One shared gate fed concat(a, onehot(task)) (M³ViT task-conditioned router).
    Embedding,
}

/// The routers. Each decides, per token, the combine weights G (T × E) from the gate logits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "router", rename_all = "kebab-case")]
pub enum RouterKind {
    /// One gate, G = softmax(h): every expert runs (dense).
    Softmax,
    /// One dense softmax gate per task (MMoE).
    Mmoe,
    /// Shazeer et al.: softmax over the k largest noisy logits (noise only while training).
    NoisyTopK { k: usize },
    /// Switch top-1 with capacity ⌊cf·T/E⌋; overflow passes through the residual.
    Switch { capacity_factor: f64 },
    /// GShard top-2 (second-expert policy `all`), capacity ⌊cf·2T/E⌋, first choices first.
    Top2 { capacity_factor: f64 },
    /// Experts choose tokens: each takes its ⌊T·c/E⌋ best (c = capacity factor).
    ExpertChoice { capacity_factor: f64 },
    /// Task-conditioned routing: top-k of the gate probabilities (not renormalised, so k = 1
    /// still trains the gate), with a gate per task or one gate fed the task's one-hot.
    Task { k: usize, gate: TaskGate },
    /// CGC (PLE paper; LibMTL `CGC`): the `experts` shared experts plus `task_experts` per
    /// task, one softmax gate per task over [shared; its own]. Only the shared experts (and
    /// the pre-layers) are shared parameters. See `cgc.rs`.
    Cgc {
        #[serde(default = "one_expert")]
        task_experts: usize,
    },
    /// PLE (progressive layered extraction, the paper's form) with 2 levels of CGC, a shared
    /// gate over all experts at level 1 feeding level 2's shared experts. See `ple.rs`.
    Ple {
        #[serde(default = "one_expert")]
        task_experts: usize,
    },
    /// DSelect-k (per-example gating): one gate per task over the shared experts, q from k
    /// binary-coded selectors through a smooth step of width γ. See `dselect_k.rs`.
    #[serde(rename = "dselect-k")]
    DselectK {
        #[serde(default = "two")]
        k: usize,
        #[serde(default = "one")]
        gamma: f64,
    },
}

fn one_expert() -> usize {
    1
}

fn two() -> usize {
    2
}

/// Largest γ of DSelect-k's smooth step.
pub const MAX_DSELECT_GAMMA: f64 = 100.0;

impl RouterKind {
    pub const NAMES: [&'static str; 10] =
        ["softmax", "mmoe", "noisy-topk", "switch", "top2", "expert-choice", "task", "cgc", "ple", "dselect-k"];

    pub fn name(&self) -> &'static str {
        match self {
            RouterKind::Softmax => "softmax",
            RouterKind::Mmoe => "mmoe",
            RouterKind::NoisyTopK { .. } => "noisy-topk",
            RouterKind::Switch { .. } => "switch",
            RouterKind::Top2 { .. } => "top2",
            RouterKind::ExpertChoice { .. } => "expert-choice",
            RouterKind::Task { .. } => "task",
            RouterKind::Cgc { .. } => "cgc",
            RouterKind::Ple { .. } => "ple",
            RouterKind::DselectK { .. } => "dselect-k",
        }
    }

    /// CGC, PLE and DSelect-k: multi-task architectures with task-owned gates (and experts)
    /// rather than a router in a shared block. The GPU trainer runs CGC and DSelect-k (not PLE).
    pub fn is_architecture(&self) -> bool {
        matches!(self, RouterKind::Cgc { .. } | RouterKind::Ple { .. } | RouterKind::DselectK { .. })
    }

    /// Sets the architecture options (CGC/PLE task experts, DSelect-k γ); an option the router
    /// does not have is an error.
    pub fn with_arch_options(self, task_experts: Option<usize>, gamma: Option<f64>) -> Result<Self, String> {
        let name = self.name();
        Ok(match (self, task_experts, gamma) {
            (_, Some(_), _) if !matches!(self, RouterKind::Cgc { .. } | RouterKind::Ple { .. }) => {
                return Err(format!("router '{name}' has no task experts (only cgc and ple do)"))
            }
            (_, _, Some(_)) if !matches!(self, RouterKind::DselectK { .. }) => {
                return Err(format!("router '{name}' has no gamma (only dselect-k does)"))
            }
            (RouterKind::Cgc { .. }, Some(n), _) => RouterKind::Cgc { task_experts: n },
            (RouterKind::Ple { .. }, Some(n), _) => RouterKind::Ple { task_experts: n },
            (RouterKind::DselectK { k, .. }, _, Some(g)) => RouterKind::DselectK { k, gamma: g },
            (r, _, _) => r,
        })
    }

    /// Builds a router from its name with the given (or default) k and capacity factor; the
    /// defaults follow the reference: k = 2, cf = 1.25 (Switch train), 2.0 for expert choice.
    pub fn from_name(
        name: &str,
        k: Option<usize>,
        capacity_factor: Option<f64>,
        gate: TaskGate,
    ) -> Result<Self, String> {
        let uses_k = matches!(name, "noisy-topk" | "task" | "dselect-k");
        let uses_cf = matches!(name, "switch" | "top2" | "expert-choice");
        if k.is_some() && !uses_k {
            return Err(format!("router '{name}' takes no k (only noisy-topk, task and dselect-k do)"));
        }
        if capacity_factor.is_some() && !uses_cf {
            return Err(format!("router '{name}' has no capacity factor (only switch, top2 and expert-choice do)"));
        }
        Ok(match name {
            "softmax" => RouterKind::Softmax,
            "mmoe" => RouterKind::Mmoe,
            "noisy-topk" => RouterKind::NoisyTopK { k: k.unwrap_or(2) },
            "switch" => RouterKind::Switch { capacity_factor: capacity_factor.unwrap_or(1.25) },
            "top2" => RouterKind::Top2 { capacity_factor: capacity_factor.unwrap_or(1.25) },
            "expert-choice" => RouterKind::ExpertChoice { capacity_factor: capacity_factor.unwrap_or(2.0) },
            "task" => RouterKind::Task { k: k.unwrap_or(1), gate },
            "cgc" => RouterKind::Cgc { task_experts: 1 },
            "ple" => RouterKind::Ple { task_experts: 1 },
            // LibMTL's num_nonzeros default 2 and the official γ = 1.
            "dselect-k" => RouterKind::DselectK { k: k.unwrap_or(2), gamma: 1.0 },
            other => return Err(format!("unknown router '{other}' (expected one of: {})", Self::NAMES.join(", "))),
        })
    }

    /// Where the gate's input comes from.
    pub fn gating(&self) -> Gating {
        match self {
            RouterKind::Mmoe
            | RouterKind::Task { gate: TaskGate::PerTask, .. }
            | RouterKind::Cgc { .. }
            | RouterKind::Ple { .. }
            | RouterKind::DselectK { .. } => Gating::PerTask,
            RouterKind::Task { gate: TaskGate::Embedding, .. } => Gating::TaskEmbedding,
            _ => Gating::Shared,
        }
    }

    pub fn is_noisy(&self) -> bool {
        matches!(self, RouterKind::NoisyTopK { .. })
    }

    fn validate(&self, experts: usize) -> Result<(), String> {
        let check_cf = |cf: f64| {
            if cf.is_finite() && cf > 0.0 && cf <= MAX_CAPACITY_FACTOR {
                Ok(())
            } else {
                Err(format!("capacity factor must be a finite number in (0, {MAX_CAPACITY_FACTOR}], got {cf}"))
            }
        };
        match *self {
            RouterKind::NoisyTopK { k } | RouterKind::Task { k, .. } => {
                if !(1..=experts).contains(&k) {
                    return Err(format!("k must be 1–{experts} (the number of experts), got {k}"));
                }
            }
            RouterKind::Switch { capacity_factor } | RouterKind::ExpertChoice { capacity_factor } => {
                check_cf(capacity_factor)?
            }
            RouterKind::Top2 { capacity_factor } => {
                check_cf(capacity_factor)?;
                if experts < 2 {
                    return Err("top2 routing needs at least 2 experts".into());
                }
            }
            RouterKind::Cgc { task_experts } | RouterKind::Ple { task_experts } => {
                if task_experts > MAX_EXPERTS {
                    return Err(format!("task experts must be 0–{MAX_EXPERTS}, got {task_experts}"));
                }
            }
            RouterKind::DselectK { k, gamma } => {
                if !(1..=experts).contains(&k) {
                    return Err(format!("k must be 1–{experts} (the number of experts), got {k}"));
                }
                if !(gamma.is_finite() && gamma > 0.0 && gamma <= MAX_DSELECT_GAMMA) {
                    return Err(format!("gamma must be a finite number in (0, {MAX_DSELECT_GAMMA}], got {gamma}"));
                }
            }
            RouterKind::Softmax | RouterKind::Mmoe => {}
        }
        Ok(())
    }
}

/// Where each gate reads from: one gate for all tasks, one per task, or one fed the task id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gating {
    Shared,
    PerTask,
    TaskEmbedding,
}

/// Weights of the auxiliary losses (all 0 = none). They are added to the update *after* the
/// aggregator, so the aggregator and the conflict metrics see the tasks' gradients only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuxWeights {
    /// α of the Switch load-balancing loss α·N·Σ f_i·P_i (reference default 1e-2).
    #[serde(default)]
    pub load_balance: f64,
    /// c_z of the router z-loss mean(logsumexp(h)²) (reference default 1e-3).
    #[serde(default)]
    pub z_loss: f64,
    /// w_imp of CV²(importance).
    #[serde(default)]
    pub importance: f64,
    /// w_load of CV²(load) (Φ-smoothed load for noisy top-k while training, else hard counts).
    #[serde(default)]
    pub load: f64,
    /// w_MI of the Mod-Squad loss −MI(task; expert).
    #[serde(default)]
    pub mutual_info: f64,
    /// λ of DSelect-k's selector entropy Σ_l −Σ_i r_i log(r_i + 1e-6) (official schedule 1e-6;
    /// default 0 = the official `entropy_reg=None`).
    #[serde(default)]
    pub entropy: f64,
}

impl AuxWeights {
    fn validate(&self) -> Result<(), String> {
        for (name, w) in [
            ("load_balance", self.load_balance),
            ("z_loss", self.z_loss),
            ("importance", self.importance),
            ("load", self.load),
            ("mutual_info", self.mutual_info),
            ("entropy", self.entropy),
        ] {
            if !(w.is_finite() && (0.0..=100.0).contains(&w)) {
                return Err(format!("aux-loss weight {name} must be a finite number in [0, 100], got {w}"));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoeConfig {
    pub input_dim: usize,
    /// Dense pre-layers before the MoE block (may be empty: then H = input_dim).
    #[serde(default)]
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub experts: usize,
    pub expert_hidden: usize,
    pub router: RouterKind,
    #[serde(default)]
    pub aux: AuxWeights,
    pub heads: Vec<HeadConfig>,
    /// Multiplies the heads' initial weights (as `MlpConfig::head_init_scale`).
    #[serde(default = "one")]
    pub head_init_scale: f64,
    /// Every head starts from head 0's draw (as `MlpConfig::tied_head_init`).
    #[serde(default)]
    pub tied_head_init: bool,
}

fn one() -> f64 {
    1.0
}

impl MoeConfig {
    /// Playground-style: 2-D input, tanh, one BCE logit per task, no pre-layers.
    pub fn playground(tasks: usize, experts: usize, expert_hidden: usize, router: RouterKind) -> Self {
        MoeConfig {
            input_dim: 2,
            hidden: Vec::new(),
            activation: Activation::Tanh,
            experts,
            expert_hidden,
            router,
            aux: AuxWeights::default(),
            heads: vec![HeadConfig { out_dim: 1, loss: LossKind::Bce }; tasks],
            head_init_scale: 1.0,
            tied_head_init: false,
        }
    }

    /// Width H of the residual stream the experts read and write.
    pub fn width(&self) -> usize {
        self.hidden.last().copied().unwrap_or(self.input_dim)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_INPUT_DIM).contains(&self.input_dim) {
            return Err(format!("input_dim must be 1–{MAX_INPUT_DIM}, got {}", self.input_dim));
        }
        if self.hidden.len() > MAX_HIDDEN_LAYERS {
            return Err(format!("at most {MAX_HIDDEN_LAYERS} pre-layers, got {}", self.hidden.len()));
        }
        for (l, &w) in self.hidden.iter().enumerate() {
            if !(1..=MAX_WIDTH).contains(&w) {
                return Err(format!("pre-layer {l} must have width 1–{MAX_WIDTH}, got {w}"));
            }
        }
        if !(1..=MAX_EXPERTS).contains(&self.experts) {
            return Err(format!("experts must be 1–{MAX_EXPERTS}, got {}", self.experts));
        }
        if !(1..=MAX_EXPERT_HIDDEN).contains(&self.expert_hidden) {
            return Err(format!("expert_hidden must be 1–{MAX_EXPERT_HIDDEN}, got {}", self.expert_hidden));
        }
        self.router.validate(self.experts)?;
        self.aux.validate()?;
        // The routers' aux losses act on one gate's logits over the block's experts; the
        // architectures' task gates (extraction.rs) take none, and a weight that trains nothing
        // must not pass silently.
        let a = &self.aux;
        let routed = [
            ("load_balance", a.load_balance),
            ("z_loss", a.z_loss),
            ("importance", a.importance),
            ("load", a.load),
            ("mutual_info", a.mutual_info),
        ];
        if self.router.is_architecture() {
            if let Some((name, _)) = routed.iter().find(|(_, w)| *w != 0.0) {
                return Err(format!(
                    "the aux loss {name} applies to a routed MoE block, not to the {} architecture's task gates \
                     (DSelect-k takes the selector entropy, aux entropy)",
                    self.router.name()
                ));
            }
        }
        crate::model::config::validate_heads(&self.heads, self.head_init_scale, self.tied_head_init)
    }
}
