//! `concord neurons --config FILE [--run K]`: the network view's per-neuron numbers, natively, at
//! the parameters a run file holds (a page export's run K, or a run record) — the page's
//! reference. JSON on stdout: `{steps, layers: [[{layer, index, norms, cosines, min_cos,
//! min_pair}]]}`.
//!
//! Which gradients (the same definition as the page's panel): each task's gradient of its mean
//! loss over the whole training set, unweighted, at the recorded parameters, in f64.

use crate::UsageError;
use concord_core::metrics::neuron_conflicts;
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
    let Some(mlp) = trainer.mlp() else {
        return Err(UsageError(format!("{}: the run is not an MLP (per-neuron conflict needs one)", loaded.label)));
    };
    let (x, targets) = trainer.train_set().ok_or_else(|| UsageError("the run has no training set".into()))?;
    let grads = mlp.gradients(&recorded.record.params, x, targets).map_err(UsageError)?;
    let layers = neuron_conflicts(mlp.layout(), &grads.shared_jacobian).map_err(UsageError)?;
    let out = serde_json::json!({ "steps": recorded.record.steps_done, "layers": layers });
    let _ = writeln!(std::io::stdout().lock(), "{out}");
    Ok(())
}
