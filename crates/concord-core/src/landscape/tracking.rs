//! Sharpness over training, as a wrapper around `Trainer`: it steps the run itself and, every
//! `every` steps, measures λ_max (and optionally the Hutchinson trace) of every task and of the
//! total on the whole training set, plus parameter snapshots for trajectories. The trainer's
//! own record is left exactly as a plain run makes it.

use super::objective::Objective;
use super::sharpness::{hutchinson_trace, top_eigenvalue, CurvatureConfig};
use crate::train::{RunRecord, Trainer};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackingConfig {
    /// Measure curvature at steps 0, every, 2·every, … and at the end; 0 = never.
    pub every: usize,
    /// Also estimate the trace (costs about as much as λ_max again).
    pub trace: bool,
    pub curvature: CurvatureConfig,
    /// Keep θ at steps 0, snapshot_every, … and at the end (≥ 1).
    pub snapshot_every: usize,
}

/// Curvature at the parameters step `step` started from (as `StepRecord` reads its losses).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharpnessPoint {
    pub step: usize,
    /// Per task, then the total.
    pub lambda_max: Vec<f64>,
    pub trace: Option<Vec<f64>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackedRun {
    pub record: RunRecord,
    pub sharpness: Vec<SharpnessPoint>,
    pub snapshot_steps: Vec<usize>,
    pub snapshots: Vec<Vec<f64>>,
}

fn measure(
    objective: &dyn Objective,
    theta: &[f64],
    step: usize,
    cfg: &TrackingConfig,
) -> Result<SharpnessPoint, String> {
    let targets: Vec<Option<usize>> = (0..objective.num_tasks()).map(Some).chain([None]).collect();
    let lambda_max = targets
        .iter()
        .map(|&t| top_eigenvalue(objective, theta, t, &cfg.curvature).map(|e| e.value))
        .collect::<Result<_, _>>()?;
    let trace = if cfg.trace {
        Some(
            targets
                .iter()
                .map(|&t| hutchinson_trace(objective, theta, t, &cfg.curvature).map(|e| e.mean))
                .collect::<Result<_, _>>()?,
        )
    } else {
        None
    };
    Ok(SharpnessPoint { step, lambda_max, trace })
}

/// Runs `trainer` to the end with tracking. A run that diverges stops as `train` does (its
/// record carries the error); a curvature failure is returned as `Err`.
pub fn run_tracked(
    trainer: &mut Trainer,
    cfg: &TrackingConfig,
    mut progress: impl FnMut(usize),
) -> Result<TrackedRun, String> {
    cfg.curvature.validate()?;
    if cfg.snapshot_every == 0 {
        return Err("snapshot_every must be at least 1".into());
    }
    let mut sharpness = Vec::new();
    let mut snapshot_steps = Vec::new();
    let mut snapshots = Vec::new();
    loop {
        let s = trainer.step_index();
        let done = trainer.is_done();
        // After an error the parameters stay at step s: the guards keep one entry per step.
        if (s.is_multiple_of(cfg.snapshot_every) || done) && snapshot_steps.last() != Some(&s) {
            snapshot_steps.push(s);
            snapshots.push(trainer.params().to_vec());
        }
        if cfg.every > 0
            && (s.is_multiple_of(cfg.every) || done)
            && sharpness.last().map(|p: &SharpnessPoint| p.step) != Some(s)
        {
            sharpness.push(measure(&*trainer.objective(), trainer.params(), s, cfg)?);
        }
        if done {
            break;
        }
        // An error sets the trainer's error (is_done) and is kept in its record.
        let _ = trainer.step();
        progress(trainer.step_index());
    }
    Ok(TrackedRun { record: trainer.record(), sharpness, snapshot_steps, snapshots })
}
