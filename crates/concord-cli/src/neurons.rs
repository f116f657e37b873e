//! `concord neurons --config FILE [--run K]`: the network view's per-neuron numbers, natively, at
//! the parameters a run file holds (a page export's run K, or a run record) — the page's
//! reference. JSON on stdout: `{steps, layers: [[{layer, index, norms, cosines, min_cos,
//! min_pair}]], pre_layers, experts}`. For an MoE run, `layers` holds its pre-layers then one
//! layer per expert (its hidden neurons), `pre_layers` how many pre-layers there are (null: an
//! MLP) and `experts` which expert each expert layer is (`{level, task, index, shared}`). CGC,
//! PLE and DSelect-k: their shared-parameter experts (`MoeLayout::experts`: CGC's shared
//! experts, PLE's shared experts of both levels and its level-1 task experts, DSelect-k's
//! experts); a task's own experts have one task's gradient and no conflict.
//!
//! Which gradients (the same definition as the page's panel): each task's gradient of its mean
//! loss over the whole training set, unweighted, at the recorded parameters, in f64.

use crate::UsageError;
use concord_core::metrics::{moe_neuron_conflicts, neuron_conflicts};
use concord_core::Trainer;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct NeuronsArgs {
    /// A run file: a page export (Export run) or a run record (`train --out run.json`).
    #[arg(long, value_name = "FILE|-")]
    config: PathBuf,
    /// Which run of a page export (0-based; default 0).
    #[arg(long, value_name = "K")]
    run: Option<usize>,
}

pub fn run(args: NeuronsArgs) -> Result<(), UsageError> {
    let loaded = crate::run_config::from_file(&args.config, args.run)?;
    let Some(recorded) = loaded.recorded else {
        return Err(UsageError(format!("{}: holds a config but no parameters (export a run first)", loaded.label)));
    };
    // The trainer only supplies the model and the training set (the page's twin does the same).
    let trainer = Trainer::new(loaded.config).map_err(UsageError)?;
    let (x, targets) = trainer.train_set().ok_or_else(|| UsageError("the run has no training set".into()))?;
    let params = &recorded.record.params;
    // An MoE: its pre-layers, then each expert's hidden layer (`pre_layers` says where they split).
    let (layers, pre_layers, experts) = if let Some(mlp) = trainer.mlp() {
        let grads = mlp.gradients(params, x, targets).map_err(UsageError)?;
        (neuron_conflicts(mlp.layout(), &grads.shared_jacobian).map_err(UsageError)?, None, None)
    } else if let Some(moe) = trainer.moe() {
        let grads = moe.gradients(params, x, targets, None).map_err(UsageError)?;
        let layers = moe_neuron_conflicts(moe.layout(), &grads.tasks.shared_jacobian).map_err(UsageError)?;
        // Which expert each expert layer is (CGC/PLE/DSelect-k: their shared experts only).
        let groups: Vec<_> = moe.expert_groups().into_iter().filter(|g| g.shared).collect();
        (layers, Some(moe.config().hidden.len()), Some(groups))
    } else {
        return Err(UsageError(format!("{}: the run has no neurons (a toy objective)", loaded.label)));
    };
    let out = serde_json::json!({
        "steps": recorded.record.steps_done,
        "layers": layers,
        "pre_layers": pre_layers,
        "experts": experts,
    });
    let _ = writeln!(std::io::stdout().lock(), "{out}");
    Ok(())
}
