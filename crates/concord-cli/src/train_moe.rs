//! The MoE flags of `concord train --preset …`: `--model moe --router NAME [--experts E] [--k K]
//! [--capacity-factor F] [--task-gate per-task|embedding] [--task-experts N] [--gamma G]
//! [--expert-hidden H] [--aux-* W]`,
//! turned into the core's `MoeSpec` with a usage error for every bad combination.

use crate::UsageError;
use clap::{Args, ValueEnum};
use concord_core::model::moe::{AuxWeights, RouterKind, TaskGate};
use concord_core::train::MoeSpec;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModelKind {
    Mlp,
    Moe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum TaskGateArg {
    PerTask,
    Embedding,
}

#[derive(Args, Debug, Clone)]
pub struct MoeArgs {
    /// --preset: the model — the preset's MLP, or an MoE block on top of its trunk (default: the
    /// preset's own choice; task-experts is an MoE, the others MLPs).
    #[arg(long, value_enum, conflicts_with = "problem")]
    model: Option<ModelKind>,
    /// --model moe: softmax, mmoe, noisy-topk, switch, top2, expert-choice or task; or the
    /// architectures cgc, ple (2 levels) and dselect-k.
    #[arg(long, conflicts_with = "problem")]
    router: Option<String>,
    /// --model moe: number of experts (default 4; cgc and ple: shared experts per level).
    #[arg(long, conflicts_with = "problem")]
    experts: Option<usize>,
    /// --model moe: experts per token for noisy-topk (default 2) and task (default 1); the
    /// number of selectors (num_nonzeros) for dselect-k (default 2).
    #[arg(long, conflicts_with = "problem")]
    k: Option<usize>,
    /// --model moe: capacity factor of switch, top2 (default 1.25) and expert-choice (default 2).
    #[arg(long, conflicts_with = "problem")]
    capacity_factor: Option<f64>,
    /// --router task: a gate per task, or one gate fed the task's one-hot.
    #[arg(long, value_enum, conflicts_with = "problem")]
    task_gate: Option<TaskGateArg>,
    /// --router cgc|ple: experts owned by each task (per level for ple; default 1).
    #[arg(long, value_name = "N", conflicts_with = "problem")]
    task_experts: Option<usize>,
    /// --router dselect-k: width γ of the smooth step (default 1).
    #[arg(long, value_name = "G", conflicts_with = "problem")]
    gamma: Option<f64>,
    /// --model moe: hidden width of each expert (default 8).
    #[arg(long, conflicts_with = "problem")]
    expert_hidden: Option<usize>,
    /// Weight α of the Switch load-balancing loss N·Σ f_i·P_i (default 0).
    #[arg(long, value_name = "W", conflicts_with = "problem")]
    aux_load_balance: Option<f64>,
    /// Weight of the router z-loss mean(logsumexp²) (default 0).
    #[arg(long, value_name = "W", conflicts_with = "problem")]
    aux_z_loss: Option<f64>,
    /// Weight of CV²(importance) (default 0).
    #[arg(long, value_name = "W", conflicts_with = "problem")]
    aux_importance: Option<f64>,
    /// Weight of CV²(load) (default 0).
    #[arg(long, value_name = "W", conflicts_with = "problem")]
    aux_load: Option<f64>,
    /// Weight of the task–expert mutual-information loss (default 0).
    #[arg(long, value_name = "W", conflicts_with = "problem")]
    aux_mi: Option<f64>,
    /// --router dselect-k: weight of the selector-entropy regulariser (default 0 = off;
    /// the official schedule uses 1e-6).
    #[arg(long, value_name = "W", conflicts_with = "problem")]
    aux_entropy: Option<f64>,
}

impl MoeArgs {
    fn any_moe_flag(&self) -> Option<&'static str> {
        [
            (self.router.is_some(), "--router"),
            (self.experts.is_some(), "--experts"),
            (self.k.is_some(), "--k"),
            (self.capacity_factor.is_some(), "--capacity-factor"),
            (self.task_gate.is_some(), "--task-gate"),
            (self.task_experts.is_some(), "--task-experts"),
            (self.gamma.is_some(), "--gamma"),
            (self.aux_entropy.is_some(), "--aux-entropy"),
            (self.expert_hidden.is_some(), "--expert-hidden"),
            (self.aux_load_balance.is_some(), "--aux-load-balance"),
            (self.aux_z_loss.is_some(), "--aux-z-loss"),
            (self.aux_importance.is_some(), "--aux-importance"),
            (self.aux_load.is_some(), "--aux-load"),
            (self.aux_mi.is_some(), "--aux-mi"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }

    /// `None`: keep the preset's model; `Some(None)`: `--model mlp`; `Some(Some(spec))`:
    /// `--model moe` with its validated spec.
    pub fn spec(&self) -> Result<Option<Option<MoeSpec>>, UsageError> {
        if self.model != Some(ModelKind::Moe) {
            return match self.any_moe_flag() {
                Some(flag) => Err(UsageError(format!("{flag} needs --model moe"))),
                None => Ok(self.model.map(|_| None)),
            };
        }
        let name = self
            .router
            .as_deref()
            .ok_or_else(|| UsageError(format!("--model moe needs --router ({})", RouterKind::NAMES.join(", "))))?;
        if self.task_gate.is_some() && name.trim() != "task" {
            return Err(UsageError("--task-gate only applies to --router task".into()));
        }
        let gate = match self.task_gate {
            Some(TaskGateArg::Embedding) => TaskGate::Embedding,
            _ => TaskGate::PerTask,
        };
        if let Some(cf) = self.capacity_factor {
            if !(cf.is_finite() && cf > 0.0) {
                return Err(UsageError(format!("--capacity-factor must be a positive number, got {cf}")));
            }
        }
        if self.aux_entropy.is_some() && name.trim() != "dselect-k" {
            return Err(UsageError("--aux-entropy only applies to --router dselect-k".into()));
        }
        let router = RouterKind::from_name(name.trim(), self.k, self.capacity_factor, gate)
            .and_then(|r| r.with_arch_options(self.task_experts, self.gamma))
            .map_err(|e| UsageError(e.replace("task experts", "--task-experts").replace("no gamma", "no --gamma")))?;
        let mut spec = MoeSpec::new(router);
        if let Some(e) = self.experts {
            spec.experts = e;
        }
        if let Some(h) = self.expert_hidden {
            spec.expert_hidden = h;
        }
        spec.aux = AuxWeights {
            load_balance: self.aux_load_balance.unwrap_or(0.0),
            z_loss: self.aux_z_loss.unwrap_or(0.0),
            importance: self.aux_importance.unwrap_or(0.0),
            load: self.aux_load.unwrap_or(0.0),
            mutual_info: self.aux_mi.unwrap_or(0.0),
            entropy: self.aux_entropy.unwrap_or(0.0),
        };
        Ok(Some(Some(spec)))
    }
}
