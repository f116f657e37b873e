//! [`GpuToy`]: one CAGrad-toy run (`DataSource::Toy`) on the GPU, behind concord-core's
//! [`Backend`] contract — the GPU twin of the CPU `Trainer` on the same `TrainConfig`.
//!
//! Every method of the GPU weighting table runs: the single-invocation ones (mean, sum, pcgrad,
//! mgda, cagrad) in the fused kernel's `toy_step` (one invocation per run, G given by its
//! factor J), the workgroup ones (constant, upgrad, dualproj, imtl-g, aligned-mtl, config,
//! random, and MoDo, SDMGrad, GradVac with their state in the run's weighting-memory buffer,
//! kept across steps as `GpuTrainer` keeps it) in `toy_step_workgroup` (one workgroup per run,
//! G = JJᵀ in f32). The per-coordinate TrimmedMean and GradDrop (not weightings: d straight from
//! the 2 × 2 J, as `kernels::coordinate` computes it) run in `toy_step`, GradDrop with draws
//! from the CPU aggregator's own stream (`GpuCoordinate::draws`, two per step, uploaded per
//! submission). Many steps per dispatch, many dispatches per submission, nothing read back
//! until [`Backend::read_back`].
//!
//! A loss weighting (every one of the GPU trainer's, `GPU_LOSS_WEIGHTINGS`) runs its
//! loss_weighting.wgsl kernel between single-step dispatches, its state on the GPU; the step
//! scales J's rows by its λ before the aggregator, as the CPU trainer does.
//!
//! Records (per `config.record_every`, and the last step) carry the losses at x before the
//! step, the aggregator weights, λ, and the metrics computed from G = JJᵀ (read back with them).
//! `train_losses` are the toy's f64 losses at the read-back x (the problem is analytic).
//!
//! lavapipe: a dispatch cut by the adapter's loop cap is discarded, never stored wrong, so a
//! run may have taken fewer steps than submitted: `Snapshot::steps_done` is the steps the GPU
//! took, and [`GpuToy::state`] reports the cuts.

use std::sync::Arc;

use concord_core::metrics::StepMetrics;
use concord_core::problems::CagradToy;
use concord_core::train::{
    restore_point, Backend, BackendError, BackendKind, DataSource, ReadBack, Snapshot, StepRecord, TrainConfig,
};
use concord_core::{Problem, ProblemKind};
use nalgebra::{DMatrix, DVector};

use crate::kernels::coordinate::GpuCoordinate;
use crate::kernels::loss_weighting::GpuLossWeighting;
use crate::kernels::toy::{PendingHistory, RunParams, RunState, ToyCoordinate, ToyKernel, SLOT};
use crate::kernels::weighting::GpuWeighting;
use crate::trainer::{backend_error, gpu_loss_weighting, gpu_weighting};
use crate::{Gpu, GpuError};

/// What the GPU state of a toy run says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToyRunState {
    /// x (the f32 position with its compensation term, as f64).
    pub position: [f64; 2],
    /// Optimizer steps taken (stops growing once the run stopped).
    pub steps: u32,
    /// The run hit a non-finite position and stopped at its last finite point.
    pub stopped: bool,
    /// Dispatches in which the adapter's loop limit cut this run short (the cut step is
    /// discarded, so `steps` is behind by that much). 0 unless the adapter has such a limit.
    pub cut_short: u32,
}

/// One CAGrad-toy run on the GPU.
pub struct GpuToy {
    gpu: Arc<Gpu>,
    config: TrainConfig,
    toy: CagradToy,
    /// The GPU weighting; `None` for a per-coordinate aggregator (`coordinate`).
    weighting: Option<GpuWeighting>,
    /// TrimmedMean or GradDrop (GradDrop's draws come from its CPU stream).
    coordinate: Option<GpuCoordinate>,
    /// The run has a loss weighting (records carry its λ; `ew`'s is 1).
    weighted: bool,
    /// The loss weighting's kernel and state (`None` for none and `ew`).
    loss_weighting: Option<GpuLossWeighting>,
    /// Steps submitted by this object: the CPU trainer's epoch index of the next step (a toy
    /// step is one full-batch epoch; like the CPU trainer's counter, a restore does not reset it).
    epoch: u64,
    params: RunParams,
    kernel: ToyKernel,
    submitted: usize,
    pending: Vec<PendingHistory>,
    stopped: bool,
}

/// The fused toy kernel (toy_trajectory.wgsl) has none of the training dynamics, SPAM
/// included (the MLP trainer's `TrainConfig::gpu_unsupported_dynamics` is narrower): a message
/// naming what the run asks for, or `None`.
fn toy_unsupported_dynamics(config: &TrainConfig) -> Option<String> {
    let mut what = Vec::new();
    if matches!(config.optimizer, concord_core::train::TrainOptimizer::Spam(_)) {
        what.push("the SPAM optimizer".to_string());
    }
    if !config.dynamics.is_default() {
        what.push(format!("the training dynamics '{}'", config.dynamics.label()));
    }
    (!what.is_empty()).then(|| {
        format!(
            "{} {} no kernel in the GPU toy yet; use the CPU backend",
            what.join(" and "),
            if what.len() == 1 { "has" } else { "have" }
        )
    })
}

impl GpuToy {
    /// Validates the config as the CPU trainer does, plus what the GPU toy supports: toy data,
    /// a method of the GPU table, a GPU loss weighting (or none), SGD / Adam / AdamW.
    pub fn new(gpu: Arc<Gpu>, config: TrainConfig) -> Result<GpuToy, GpuError> {
        config.validate().map_err(GpuError::Unsupported)?;
        if let Some(msg) = toy_unsupported_dynamics(&config) {
            return Err(GpuError::Unsupported(msg));
        }
        let DataSource::Toy { problem, start } = config.data else {
            return Err(GpuError::Unsupported(format!(
                "GpuToy runs the CAGrad toys; this config's data is '{}' (use GpuTrainer)",
                config.data.kind()
            )));
        };
        if config.steps > (u32::MAX / 2) as usize {
            return Err(GpuError::Unsupported(format!(
                "{} steps; the GPU toy takes at most {}",
                config.steps,
                u32::MAX / 2
            )));
        }
        let coordinate = GpuCoordinate::from_spec(&config.method.aggregator, config.seed);
        let weighting = match coordinate {
            Some(_) => None,
            None => Some(gpu_weighting(&config.method.aggregator, 2, config.seed)?),
        };
        let weighted = gpu_loss_weighting(&config.method)?;
        gpu.check()?;
        let params = run_params(weighting.as_ref(), coordinate.as_ref(), &config.optimizer)?;
        let workgroup = weighting.as_ref().is_some_and(GpuWeighting::is_workgroup);
        let mut kernel = ToyKernel::new(&gpu, problem, &params, &RunState::at(start, 0), workgroup);
        let loss_weighting = match &config.method.weighting {
            Some(spec) => GpuLossWeighting::weights_only(&gpu, spec, 2, config.seed)?,
            None => None,
        };
        if loss_weighting.is_some() {
            kernel.use_loss_weights(&gpu);
        }
        gpu.check()?;
        Ok(GpuToy {
            gpu,
            toy: problem.toy(),
            config,
            weighting,
            coordinate,
            weighted,
            loss_weighting,
            epoch: 0,
            params,
            kernel,
            submitted: 0,
            pending: Vec::new(),
            stopped: false,
        })
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    pub fn problem(&self) -> ProblemKind {
        match self.config.data {
            DataSource::Toy { problem, .. } => problem,
            _ => unreachable!("checked in new"),
        }
    }

    /// The GPU weighting the run uses (`None` for TrimmedMean and GradDrop, which are not
    /// weightings).
    pub fn weighting(&self) -> Option<&GpuWeighting> {
        self.weighting.as_ref()
    }

    /// Steps submitted (the GPU may have taken fewer: see [`GpuToy::state`]).
    pub fn steps_submitted(&self) -> usize {
        self.submitted
    }

    /// All steps submitted, or the run stopped (known after a read-back).
    pub fn is_done(&self) -> bool {
        self.stopped || self.submitted >= self.config.steps
    }

    /// Queue up to `k` more steps (fewer at the end of the run) into one submission; returns how
    /// many. Nothing is read back.
    pub fn steps(&mut self, k: usize) -> Result<usize, GpuError> {
        if self.stopped {
            return Ok(0);
        }
        let n = k.min(self.config.steps.saturating_sub(self.submitted));
        if n == 0 {
            return Ok(0);
        }
        self.gpu.check()?;
        let every = self.config.record_every.clamp(1, self.config.steps.max(1)) as u32;
        let last = self.config.steps.saturating_sub(1) as u32;
        let lw = self.loss_weighting.as_mut().map(|lw| (lw, self.epoch));
        // GradDrop's U for these n steps (two columns each), in the CPU aggregator's order.
        let draws = self.coordinate.as_mut().map_or_else(Vec::new, |c| c.draws(n, 2));
        let pending = self.kernel.submit(&self.gpu, self.submitted as u32, n as u32, every, last, lw, &draws);
        self.pending.push(pending);
        self.submitted += n;
        self.epoch += n as u64;
        Ok(n)
    }

    /// The run's GPU state (one readback; pending histories stay pending).
    pub async fn state(&self) -> Result<ToyRunState, GpuError> {
        let s = self.kernel.state(&self.gpu).await?;
        Ok(ToyRunState { position: s.point(), steps: s.t, stopped: s.status != 0, cut_short: s.cut_short })
    }

    /// Steps per dispatch (default: `STEPS_PER_DISPATCH`, or `STEPS_PER_DISPATCH_CPU` on a CPU
    /// adapter). For tests and benchmarks; at least 1.
    #[doc(hidden)]
    pub fn set_steps_per_dispatch(&mut self, steps: u32) {
        self.kernel.chunk = steps.max(1);
    }

    fn record(&self, slot: &[f32]) -> StepRecord {
        let f = |i: usize| f64::from(slot[i]);
        let lambda = [f(8), f(9)];
        // G is the plain J's and the update is J_λᵀw = Jᵀ(λ∘w): the CPU's metrics of the plain J.
        let gram = DMatrix::from_row_slice(2, 2, &[f(5), f(6), f(6), f(7)]);
        let (metrics, weights) = if self.coordinate.is_some() {
            // No weights: the slot holds the plain J's Jd and ‖d‖² (as the GPU trainer's does).
            (StepMetrics::from_directional(&gram, &[f(3), f(4)], f(10)), None)
        } else {
            let weights = vec![f(3), f(4)];
            let effective = DVector::from_vec(vec![lambda[0] * weights[0], lambda[1] * weights[1]]);
            (StepMetrics::from_gram(&gram, &effective, None), Some(weights))
        };
        StepRecord {
            step: (slot[0].to_bits() - 1) as usize,
            losses: vec![f(1), f(2)],
            loss_weights: self.weighted.then(|| lambda.to_vec()),
            metrics,
            aggregator_weights: weights,
            test_losses: None,
            moe: None,
            samples: None,
            sample_stage: None,
            dynamics: None,
        }
    }

    /// Every pending history and the state, as a snapshot.
    pub async fn snapshot(&mut self) -> Result<Snapshot, GpuError> {
        let mut new_records = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            let data = self.gpu.read_mapped(&p.staging, (p.floats * 4) as u64).await?;
            // Slots of steps the GPU did not take (a stopped or cut run) stay empty (tag 0).
            new_records.extend(data.chunks_exact(SLOT).filter(|s| s[0].to_bits() != 0).map(|s| self.record(s)));
        }
        let state = self.kernel.state(&self.gpu).await?;
        let params = state.point().to_vec();
        // The CPU trainer's text (concord-core `Trainer::fail`): one stop contract for both.
        let error = state.stop_reason().map(|why| {
            self.stopped = true;
            format!("step {}: {why}; the run stopped, parameters kept at the last finite state", state.t)
        });
        Ok(Snapshot {
            steps_done: state.t as usize,
            new_records,
            train_losses: self.toy.losses(&params),
            params,
            test_losses: None,
            error,
        })
    }

    /// Change the learning rate for the steps submitted from now on; Adam's moments are kept.
    pub fn set_lr(&mut self, lr: f64) -> Result<(), GpuError> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(GpuError::Unsupported(format!("the learning rate must be a positive finite number, got {lr}")));
        }
        self.config.optimizer = self.config.optimizer.with_lr(lr);
        self.params = run_params(self.weighting.as_ref(), self.coordinate.as_ref(), &self.config.optimizer)?;
        self.kernel.write_params(&self.gpu, &self.params);
        Ok(())
    }

    /// Put back an exported run: x = `params`, the step count continues after the history's last
    /// record; the optimizer's moments, the stateful weightings' call counters and memory, and
    /// GradDrop's stream restart (as in a new run restored: the CPU's page and CLI restore into
    /// a fresh trainer).
    pub fn restore(&mut self, params: Vec<f64>, history: Vec<StepRecord>) -> Result<(), GpuError> {
        if !self.pending.is_empty() {
            return Err(GpuError::Unsupported("restore needs the pending steps read back first".into()));
        }
        // The CPU trainer's rules: every step recorded (a record every k-th step leaves the step
        // count ambiguous), and a thinned history continues after its last record.
        if self.config.record_every != 1 {
            return Err(GpuError::Unsupported("only a run that records every step can be restored".into()));
        }
        let steps = restore_point(&params, 2, &history, self.config.steps).map_err(GpuError::Unsupported)?;
        let x = [params[0], params[1]];
        self.kernel.write_state(&self.gpu, &RunState::at(x, steps as u32));
        self.kernel.reset_memory(&self.gpu);
        self.coordinate = GpuCoordinate::from_spec(&self.config.method.aggregator, self.config.seed);
        self.submitted = steps;
        self.stopped = false;
        self.gpu.check()
    }
}

/// The kernel's parameters for the run's weighting or per-coordinate aggregator.
fn run_params(
    weighting: Option<&GpuWeighting>,
    coordinate: Option<&GpuCoordinate>,
    optimizer: &concord_core::train::TrainOptimizer,
) -> Result<RunParams, GpuError> {
    let method = match (weighting, coordinate) {
        (Some(w), _) => Ok(w),
        (None, Some(GpuCoordinate::TrimmedMean { .. })) => Err(ToyCoordinate::TrimmedMean),
        (None, Some(GpuCoordinate::GradDrop(_))) => Err(ToyCoordinate::GradDrop),
        (None, None) => unreachable!("a toy run has a weighting or a per-coordinate aggregator"),
    };
    RunParams::new(method, optimizer)
}

impl Backend for GpuToy {
    fn kind(&self) -> BackendKind {
        BackendKind::Gpu
    }

    fn config(&self) -> &TrainConfig {
        &self.config
    }

    fn steps_submitted(&self) -> usize {
        self.submitted
    }

    fn submit(&mut self, k: usize) -> Result<usize, BackendError> {
        self.steps(k).map_err(backend_error)
    }

    fn read_back(&mut self) -> ReadBack<'_> {
        Box::pin(async move { self.snapshot().await.map_err(backend_error) })
    }

    fn set_lr(&mut self, lr: f64) -> Result<(), String> {
        GpuToy::set_lr(self, lr).map_err(|e| e.to_string())
    }

    fn restore(&mut self, params: Vec<f64>, history: Vec<StepRecord>) -> Result<(), String> {
        GpuToy::restore(self, params, history).map_err(|e| e.to_string())
    }
}
