//! `GpuTrainer`: concord-core's multi-task training step (`train::Trainer`) entirely on the GPU.
//!
//! One step, all recorded into the queue without a readback: gather the mini-batch rows (the
//! CPU trainer's `BatchSampler` order, uploaded per submission) → forward, per-task losses and
//! dL/do → head gradients and the m × d_shared Jacobian (`kernels::mlp_graph`) → G = JJᵀ
//! (`gram`) → w = f(G) (`weighting`) → d = Jᵀw (`combine`) → optimizer (`mlp_optim.wgsl`) on the
//! trunk's d and each head's own gradient, exactly as `Trainer::step`.
//!
//! [`GpuTrainer::steps`] encodes many steps into one submission; what the caller wants to see
//! (per-step losses, weights, G for the metrics, test losses; an MoE model's routing and
//! per-expert Gramians, `kernels::moe_record`) is copied into a history buffer at a cadence
//! ([`GpuTrainer::set_record_every`]) and read back only when asked
//! ([`GpuTrainer::read_history`], async: it never blocks a browser).
//!
//! Supported: the MLP data sources with the aggregators [`gpu_weighting`] maps and the
//! per-coordinate TrimmedMean and GradDrop (`kernels::coordinate`: d straight from J, GradDrop's
//! draws uploaded from the CPU aggregator's stream; the metrics from the Gramian of [J; d]), the
//! methods without a kernel with w (or MoCo's / DB-MTL's d) from the CPU (`host_weighting`: `steps`
//! queues them, the async read-back runs them, one read-back of G or J each), the loss weightings
//! of `kernels::loss_weighting` (w from the batch losses on the GPU, J's rows and the heads'
//! gradients scaled before the aggregator), SGD(momentum) / Adam / AdamW / SPAM, full batch or mini-batches, and the training
//! dynamics of a joint schedule (concord-core `dynamics`, in the CPU trainer's order): SAM/ASAM
//! (mlp_sam.wgsl: ε along d₀, the same batch again at w + ε, w restored), clipping, the lr
//! warm-up and cosine, the spike score (`optim_prepare` in mlp_optim.wgsl, constants from
//! `step_dynamics`), and TF's L1/L2 penalty on the weights (`optim_update`: added after the
//! clip, before the optimizer, as the CPU trainer's). Everything else (a one-task schedule: `TrainConfig::gpu_unsupported_dynamics`)
//! is a `GpuError::Unsupported` from [`GpuTrainer::new`]. A SAM step records the losses and G of
//! the pass at w and the weights of the pass at w + ε, as the CPU trainer; its metrics come from
//! that G and those weights (the CPU's use d itself, from J at w + ε: close for a small ρ, not
//! equal).
//!
//! Divergence: every step is checked on the GPU before its optimizer update (`optim_check` in
//! mlp_optim.wgsl: the CPU trainer's checks in its order). A failed check freezes the parameters
//! at the last finite state and the step count; the read-back reports it in the CPU trainer's
//! words, at the same step index.

use std::sync::Arc;

use concord_core::aggregators::AggregatorSpec;
use concord_core::metrics::StepMetrics;
use concord_core::model::moe::Moe;
use concord_core::model::{Mlp, PointGradient, PointGrams};
use concord_core::train::{
    restore_point, weight_mask, Backend, BackendError, BackendKind, BatchSampler, History, ReadBack, RunRecord,
    Snapshot, StepRecord, TrainConfig, Trainer,
};
use concord_core::MethodSpec;
use nalgebra::{DMatrix, DVector};

use crate::host_weighting::HostWeighting;
use crate::kernels::coordinate::{CoordinatePipelines, CoordinateStep, GpuCoordinate, MAX_COORDINATE_TASKS};
use crate::kernels::loss_weighting::{self, GpuLossWeighting};
use crate::kernels::mlp::{
    grid, penalty_code, CheckParams, Dispatch, GatherParams, MlpPipelines, OptParams, SamParams, HALT_REASONS,
    STEP_STATE,
};
use crate::kernels::mlp_graph::{matrix_f32, BackwardGraph, ForwardGraph, ModelShape};
use crate::kernels::moe_aux::MoeAuxStep;
use crate::kernels::moe_hidden;
use crate::kernels::moe_record::{step_noise_seed, MoeRecordPlan};
use crate::kernels::moe_train::{gpu_moe_unsupported, routing_noise_f32, MoeForward, MoeShape, MoeTrainPipelines};
use crate::kernels::point_conflict::{self, check_point_shape, PointGraph, PointPipelines};
use crate::kernels::weighting::{self, GpuWeighting, WeightCall, WeightingState};
use crate::kernels::{combine, gram, MAX_TASKS};
use crate::step_dynamics::{records_dynamics, DynamicsClock, HostDynamics};
use crate::{Gpu, GpuError};
use concord_core::dynamics::DynamicsRecord;

const RW: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// The GPU weighting of a run's aggregator — the one place that decides which aggregators the
/// GPU backends accept: every weighting in the GPU method table ([`GpuWeighting::from_spec`]).
pub fn gpu_weighting(spec: &AggregatorSpec, m: usize, seed: u64) -> Result<GpuWeighting, GpuError> {
    refuse_loss_aware(spec)?;
    GpuWeighting::from_spec(spec, m, seed).map_err(|e| match e {
        GpuError::Unsupported(msg) => GpuError::Unsupported(format!("{msg}; use the CPU backend")),
        other => other,
    })
}

/// MoCo, DB-MTL, MGDA gn=loss / loss+ (concord-core's loss-aware aggregators) have no GPU
/// weighting kernel: the GPU trainer runs them with the host's help (`host_weighting`), the
/// fused toy kernel (the only other caller of [`gpu_weighting`]) refuses them.
pub(crate) fn refuse_loss_aware(spec: &AggregatorSpec) -> Result<(), GpuError> {
    if spec.needs_losses() {
        return Err(GpuError::Unsupported(format!(
            "'{}' reads the task losses with J (LibMTL), and the GPU weighting kernels see only the Gramian: \
             the GPU trainer takes its update from the CPU, the fused toy kernel cannot; use the CPU backend",
            spec.to_text()
        )));
    }
    Ok(())
}

/// Whether the run has a loss weighting (`ew` or one with a GPU kernel,
/// `kernels::loss_weighting`); the others are refused.
pub(crate) fn gpu_loss_weighting(method: &MethodSpec) -> Result<bool, GpuError> {
    match method.weighting.as_ref().map(|w| w.name()) {
        None => Ok(false),
        Some(name) if loss_weighting::GPU_LOSS_WEIGHTINGS.contains(&name) => Ok(true),
        Some(other) => Err(GpuError::Unsupported(loss_weighting::unsupported_reason(other))),
    }
}

/// The most steps one queue submission holds: each step's Gram / weighting / combine buffers
/// live until the submission finishes, so an unbounded `steps(k)` is split.
pub const MAX_STEPS_PER_SUBMISSION: usize = 1000;

/// Floats per recorded step in the history buffer: losses (m), weights + completion flag
/// (m + 1), G (m²), test losses (m), the dynamics words (`DYN_WORDS`), then the loss weights (m).
fn slot_len(m: usize) -> usize {
    loss_weights_at(m) + m
}

/// Where a slot's loss weights start.
fn loss_weights_at(m: usize) -> usize {
    m + (m + 1) + m * m + m + DYN_WORDS
}

/// A slot's dynamics words (mlp_optim.wgsl's header): ‖d‖, clipped, the spike score (bits + 1,
/// 0 = none), SPAM's clipped coordinates, SAM's cos(d₀, d).
const DYN_WORDS: usize = 5;

/// The head of `optim_check`'s buffer, in u32s: reason bits, 1 + the step, that step's losses
/// and test losses (MAX_TASKS slots each); its inputs follow (mlp_optim.wgsl's CHECK_IN).
const HALT_WORDS: usize = 2 + 2 * MAX_TASKS;

/// A submitted chunk whose history has not been read back yet.
struct Pending {
    /// The halt words as the chunk left them (HALT_WORDS), then the recorded slots.
    staging: wgpu::Buffer,
    floats: usize,
    /// (step index, evaluated test losses, the host's part of its dynamics record) per recorded
    /// slot, in slot order.
    slots: Vec<(usize, bool, Option<HostDynamics>)>,
    /// An MoE run's routing read-back, [`MoeRecordPlan::floats`] per recorded slot.
    moe: Option<wgpu::Buffer>,
}

/// The most bytes of MoE routing read-back one submission stages (its steps are capped to fit).
const MOE_STAGING_BYTES: usize = 32 << 20;

/// The multi-task trainer on the GPU; the same API shape as `concord_core::train::Trainer`
/// (async where it reads back).
pub struct GpuTrainer {
    gpu: Arc<Gpu>,
    config: TrainConfig,
    task_names: Vec<String>,
    net: GpuNet,
    shape: ModelShape,
    pipes: MlpPipelines,
    /// The Gramian weighting of the run's aggregator; `None` for a per-coordinate one
    /// (`coordinate`).
    weighting: Option<GpuWeighting>,
    /// TrimmedMean / GradDrop: d straight from J, with what its step needs.
    coordinate: Option<CoordinateStep>,
    /// A method without a GPU kernel (Nash-MTL, FairGrad, MoCo, …): w or d from the core
    /// aggregator on the host, each step split around a read-back of G or J (`host_weighting`).
    host: Option<HostWeighting>,
    /// Hybrid steps asked for by `steps` and not yet run: the async read-back runs them.
    queued: usize,
    /// The state a stateful weighting (MoDo, SDMGrad, GradVac) keeps across the run's steps,
    /// as the CPU trainer's aggregator instance does; `None` for the others.
    weighting_memory: Option<WeightingState>,
    /// Whether the run has a loss weighting (its weights are recorded).
    ew: bool,
    /// The loss weighting's kernel (`None` without one, and for `ew`: w = 1).
    loss_weighting: Option<GpuLossWeighting>,
    /// The CPU trainer's epoch index (`Trainer::epoch`: +1 at each new pass over the shuffled
    /// train set, or after each full-batch step), which the loss weighting sees.
    epoch: u64,
    sampler: BatchSampler,
    batch_rows: usize,
    n_train: usize,
    params: wgpu::Buffer,
    moments: wgpu::Buffer,
    x_all: wgpu::Buffer,
    y_all: wgpu::Buffer,
    xb: wgpu::Buffer,
    yb: wgpu::Buffer,
    jac: wgpu::Buffer,
    update: wgpu::Buffer,
    step_fwd: ForwardGraph,
    step_bwd: BackwardGraph,
    train_eval: ForwardGraph,
    test_eval: Option<ForwardGraph>,
    opt_params: OptParams,
    /// The optimizer's counters for the per-step dynamics constants (`step_dynamics`); used
    /// when the run records dynamics (`records_dynamics`).
    clock: DynamicsClock,
    opt_tick: Dispatch,
    opt_update: Dispatch,
    /// SAM / ASAM (`dynamics.sam`): the second pass's kernels and their buffer.
    sam: Option<SamGraph>,
    /// `optim_check`'s verdict (HALT_WORDS; once set, no step changes the parameters), then its
    /// inputs: one history slot of the step's losses, weights, G and test losses.
    check: wgpu::Buffer,
    last_gram: Option<wgpu::Buffer>,
    step: usize,
    record_every: usize,
    pending: Vec<Pending>,
    /// Bounded as the CPU trainer's (concord-core's `History`): recent steps whole, older thinned.
    history: History,
    error: Option<String>,
    /// The step whose readback found the error (the CPU trainer's `steps_done` then).
    failed_at: Option<usize>,
    /// The forward graph of the last `predict` / `point_grams` call and the inputs it was built
    /// for.
    predict_graph: Option<GridGraph>,
    /// The conflict-map kernels (compiled at the first `point_grams`), the graph of the last
    /// `point_grams` call (for `predict_graph`'s inputs) and of the last `train_point_grams`.
    point_pipes: Option<PointPipelines>,
    point_graph: Option<(Vec<f32>, PointGradient, PointGraph)>,
    train_point_graph: Option<(PointGradient, PointGraph)>,
    /// The step after the last record a `Backend::read_back` handed out.
    read_cursor: usize,
    /// Noisy top-k: the training step's routing noise ε (groups × batch rows × E), copied in
    /// before each step from the chunk's draws (the CPU trainer's, `Moe::routing_noise`).
    moe_noise: Option<wgpu::Buffer>,
    /// MoE aux losses: the step's aux gradient (first pass only: SAM's second pass adds the
    /// first pass's, as the CPU trainer does) and its addition after the aggregator.
    moe_aux: Option<MoeAuxStep>,
    /// An MoE run: what a recorded step copies for its `MoeStepRecord`.
    moe_record: Option<MoeRecordPlan>,
}

impl GpuTrainer {
    /// Validates the config (as the CPU trainer does, plus what the GPU path supports), builds
    /// the data and the initial parameters on the CPU (bit for bit the CPU trainer's) and
    /// uploads them.
    pub fn new(gpu: Arc<Gpu>, mut config: TrainConfig) -> Result<Self, GpuError> {
        // The GPU step records no sample-level conflict (`StepRecord.samples`): its config (and a
        // page's export of the run) says so rather than promising records it has not.
        config.sample_metrics = false;
        if let Some(w) = &config.method.sample_weighting {
            return Err(GpuError::Unsupported(format!(
                "sample weighting '{}' has no GPU kernel yet (it remixes each sample's task gradients); \
                 use the CPU backend",
                w.name()
            )));
        }
        if let Some(msg) = config.gpu_unsupported_dynamics() {
            return Err(GpuError::Unsupported(msg));
        }
        let cpu = Trainer::new(config.clone()).map_err(GpuError::Unsupported)?;
        let net = match (cpu.mlp(), cpu.moe()) {
            (Some(mlp), _) => GpuNet::Mlp(mlp.clone()),
            (None, Some(moe)) => {
                if let Some(why) = gpu_moe_unsupported(moe) {
                    return Err(GpuError::Unsupported(why));
                }
                GpuNet::Moe {
                    moe: Box::new(moe.clone()),
                    shape: Box::new(MoeShape::new(moe)),
                    pipes: Box::new(MoeTrainPipelines::new(&gpu)),
                }
            }
            (None, None) => {
                return Err(GpuError::Unsupported(
                    "pareto-synthetic has no model to train on the GPU; use the CPU backend".into(),
                ))
            }
        };
        let m = cpu.num_tasks();
        if m > MAX_TASKS {
            return Err(GpuError::Unsupported(format!("{m} tasks; the GPU kernels take at most {MAX_TASKS}")));
        }
        // TrimmedMean and GradDrop are not weightings: they run from J (`kernels::coordinate`).
        let coordinate_agg = GpuCoordinate::from_spec(&config.method.aggregator, config.seed);
        let shape = net.shape();
        let host = HostWeighting::for_spec(&gpu, &config.method.aggregator, m, shape.shared_len, config.seed)?;
        let weighting = match coordinate_agg {
            Some(_) if m > MAX_COORDINATE_TASKS => {
                return Err(GpuError::Unsupported(format!(
                    "{m} tasks; '{}' on the GPU takes at most {MAX_COORDINATE_TASKS} (its metrics use the Gramian of \
                     [J; d]); use the CPU backend",
                    config.method.aggregator.name()
                )))
            }
            Some(_) => None,
            None if host.is_some() => None,
            None => Some(gpu_weighting(&config.method.aggregator, m, config.seed)?),
        };
        let ew = gpu_loss_weighting(&config.method)?;
        if config.layer_metrics {
            return Err(GpuError::Unsupported(
                "per-layer metrics are not read back on the GPU yet; leave layer_metrics off".into(),
            ));
        }
        if shape.shared_len == 0 {
            return Err(GpuError::Unsupported(
                "a model without hidden layers has no shared parameters to aggregate".into(),
            ));
        }
        let (train_x, train_y) = cpu.train_data().ok_or_else(|| GpuError::Unsupported("no training data".into()))?;
        let n_train = train_x.nrows();
        let sampler = BatchSampler::new(config.seed, config.batch_size, n_train);
        let batch_rows = sampler.rows_per_step();
        shape.check_rows(batch_rows)?;
        shape.check_rows(n_train)?;
        let test = cpu.test_data();
        if let Some((tx, _)) = test {
            shape.check_rows(tx.nrows())?;
        }
        if let GpuNet::Moe { shape: moe_shape, .. } = &net {
            moe_shape.check_rows(batch_rows)?;
            moe_shape.check_rows(n_train)?;
            if let Some((tx, _)) = test {
                moe_shape.check_rows(tx.nrows())?;
            }
        }
        gpu.check()?;
        let total = shape.total_len;
        gpu.check_binding_size("the Jacobian", (m * shape.shared_len * 4) as u64)?;

        let pipes = MlpPipelines::new(&gpu);
        let p32: Vec<f32> = cpu.params().iter().map(|&v| v as f32).collect();
        let params = gpu.storage_init("params", bytemuck::cast_slice(&p32), RW);
        // The moments, the step state (t, q₁, q₂, …), then the penalty's weight mask: see
        // mlp_optim.wgsl.
        let moments = gpu.buffer("optimizer moments", ((3 * total + STEP_STATE) * 4) as u64, RW);
        let mask = net.weight_mask();
        gpu.queue.write_buffer(&moments, ((2 * total + STEP_STATE) * 4) as u64, bytemuck::cast_slice(&mask));
        let x_all = gpu.storage_init("train x", bytemuck::cast_slice(&matrix_f32(train_x)), RW);
        let y_all = gpu.storage_init("train y", bytemuck::cast_slice(&shape.target_table(train_y, n_train)), RW);
        let full = sampler.is_full_batch();
        let xb =
            if full { x_all.clone() } else { gpu.buffer("batch x", (batch_rows * shape.input_dim * 4) as u64, RW) };
        let yb = if full { y_all.clone() } else { gpu.buffer("batch y", (batch_rows * shape.y_stride * 4) as u64, RW) };
        let jac = gpu.buffer("jacobian", (m * shape.shared_len * 4) as u64, RW);
        let update = gpu.buffer("update", (total * 4) as u64, RW);
        let moe_noise = match &net {
            GpuNet::Moe { shape: s, .. } if s.noisy() => {
                Some(gpu.buffer("routing noise", (s.noise_len(batch_rows) * 4) as u64, RW))
            }
            _ => None,
        };
        let (step_fwd, step_bwd, moe_aux, moe_record) =
            net.step_graphs(&gpu, &pipes, &shape, batch_rows, (&xb, &yb), &params, (&jac, &update), moe_noise.as_ref());
        let train_eval = net.forward_graph(&gpu, &pipes, &shape, n_train, &x_all, &y_all, &params);
        let test_eval = test.map(|(tx, ty)| {
            let x = gpu.storage_init("test x", bytemuck::cast_slice(&matrix_f32(tx)), RW);
            let y = gpu.storage_init("test y", bytemuck::cast_slice(&shape.target_table(ty, tx.nrows())), RW);
            net.forward_graph(&gpu, &pipes, &shape, tx.nrows(), &x, &y, &params)
        });
        let check = gpu.buffer("step check", ((HALT_WORDS + slot_len(m)) * 4) as u64, RW);
        let loss_weighting = match &config.method.weighting {
            Some(spec) => GpuLossWeighting::new(&gpu, spec, &shape, config.seed, &jac, &update)?,
            None => None,
        };
        let opt_params = opt_params(&config, total);
        let (opt_tick, opt_update) =
            optimizer_dispatches(&gpu, &pipes, &opt_params, &params, &update, &moments, &check);
        let sam = config.dynamics.sam.map(|spec| {
            let p = SamParams {
                len: total as u32,
                adaptive: u32::from(spec.adaptive),
                groups_x: grid(total).0,
                cos_at: (HALT_WORDS + 3 * m + 1 + m * m + 4) as u32,
                rho: spec.rho as f32,
                eta: concord_core::dynamics::ASAM_ETA as f32,
                _pad: [0.0; 2],
            };
            SamGraph::new(&gpu, &pipes, &mask, &p, &params, &update, &check)
        });
        let task_names = cpu.task_names().to_vec();
        let config_record_every = config.record_every.max(1);
        let weighting_memory = weighting.as_ref().is_some_and(|w| w.has_memory()).then(|| WeightingState::new(&gpu, 0));
        let coordinate = coordinate_agg.map(|agg| CoordinateStep {
            agg,
            pipes: CoordinatePipelines::new(&gpu),
            ext: gpu.buffer("[J; d]", ((m + 1) * shape.shared_len * 4) as u64, RW),
            d: gpu.buffer("coordinate update", (shape.shared_len * 4) as u64, RW),
        });
        gpu.check()?;
        Ok(GpuTrainer {
            gpu,
            config,
            task_names,
            net,
            shape,
            pipes,
            weighting_memory,
            weighting,
            coordinate,
            host,
            queued: 0,
            ew,
            loss_weighting,
            epoch: 0,
            sampler,
            batch_rows,
            n_train,
            params,
            moments,
            x_all,
            y_all,
            xb,
            yb,
            jac,
            update,
            step_fwd,
            step_bwd,
            train_eval,
            test_eval,
            opt_params,
            clock: DynamicsClock::default(),
            opt_tick,
            opt_update,
            sam,
            check,
            last_gram: None,
            step: 0,
            record_every: config_record_every,
            pending: Vec::new(),
            history: History::new(),
            error: None,
            failed_at: None,
            predict_graph: None,
            point_pipes: None,
            point_graph: None,
            train_point_graph: None,
            read_cursor: 0,
            moe_noise,
            moe_aux,
            moe_record,
        })
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    pub fn task_names(&self) -> &[String] {
        &self.task_names
    }

    pub fn num_tasks(&self) -> usize {
        self.task_names.len()
    }

    /// The MLP this run trains (`None` for an MoE model: [`GpuTrainer::moe`]).
    pub fn mlp(&self) -> Option<&Mlp> {
        match &self.net {
            GpuNet::Mlp(mlp) => Some(mlp),
            GpuNet::Moe { .. } => None,
        }
    }

    /// `Unsupported` for an MoE run: `what` reads an MLP trunk (hidden activations, per-point
    /// conflict kernels), as the CPU trainer's twins do.
    fn mlp_only(&self, what: &str) -> Result<(), GpuError> {
        match &self.net {
            GpuNet::Mlp(_) => Ok(()),
            GpuNet::Moe { .. } => Err(GpuError::Unsupported(format!("{what}: an MoE run has no MLP trunk"))),
        }
    }

    /// The MoE model this run trains (`None` for an MLP).
    pub fn moe(&self) -> Option<&Moe> {
        match &self.net {
            GpuNet::Mlp(_) => None,
            GpuNet::Moe { moe, .. } => Some(moe),
        }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Steps submitted so far (their history may not be read back yet).
    pub fn step_index(&self) -> usize {
        self.step + self.queued
    }

    /// The records read back so far (one per `record_every` steps).
    pub fn history(&self) -> &[StepRecord] {
        &self.history
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Stopped by an error (found at a readback), or all `config.steps` submitted.
    pub fn is_done(&self) -> bool {
        self.error.is_some() || self.step + self.queued >= self.config.steps
    }

    /// Whether the run's weights (or update) come from the CPU (`host_weighting`): its steps
    /// run at the read-back, one read-back of G or J each.
    pub fn host_weighted(&self) -> bool {
        self.host.is_some()
    }

    /// Whether a step's update is not Jᵀw of recorded weights (TrimmedMean, GradDrop, MoCo,
    /// DB-MTL): its history slot holds (Jd, ‖d‖²) in w's place.
    fn directional(&self) -> bool {
        self.coordinate.is_some() || self.host.as_ref().is_some_and(HostWeighting::directional)
    }

    /// Record every `every`-th step (step % every == 0, and the last step) from now on; 1 records
    /// every step. Starts at `config.record_every`.
    pub fn set_record_every(&mut self, every: usize) -> Result<(), GpuError> {
        if every == 0 {
            return Err(GpuError::Unsupported("record_every must be at least 1".into()));
        }
        self.record_every = every;
        Ok(())
    }

    /// Change the learning rate for the steps submitted from now on; the optimizer's moments
    /// and step count stay on the GPU untouched.
    pub fn set_lr(&mut self, lr: f64) -> Result<(), GpuError> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(GpuError::Unsupported(format!("the learning rate must be a positive finite number, got {lr}")));
        }
        self.config.optimizer = self.config.optimizer.with_lr(lr);
        self.opt_params = opt_params(&self.config, self.shape.total_len);
        let (tick, update) = optimizer_dispatches(
            &self.gpu,
            &self.pipes,
            &self.opt_params,
            &self.params,
            &self.update,
            &self.moments,
            &self.check,
        );
        self.opt_tick = tick;
        self.opt_update = update;
        Ok(())
    }

    /// Encode up to `k` steps (fewer if the run ends) into queue submissions of at most
    /// [`MAX_STEPS_PER_SUBMISSION`] steps each and submit them. Nothing is read back; returns the
    /// number of steps submitted.
    pub fn steps(&mut self, k: usize) -> Result<usize, GpuError> {
        if let Some(e) = &self.error {
            return Err(GpuError::Device(e.clone()));
        }
        let planned = self.step + self.queued;
        let mut left = k.min(self.config.steps - planned.min(self.config.steps));
        let mut done = 0;
        // An MoE run stages its recorded steps' routing: at most MOE_STAGING_BYTES a submission.
        let max_steps = self.max_steps_per_submission();
        while left > 0 {
            let chunk = left.min(max_steps);
            if self.host.is_some() {
                // Each hybrid step awaits a read-back: they run at `read_history`.
                self.queued += chunk;
            } else {
                // Without a host weighting nothing in `submit` awaits: it is ready at once.
                concord_core::train::now(self.submit(chunk))
                    .unwrap_or_else(|| Err(GpuError::Device("a GPU submission waited on a read-back".into())))?;
            }
            left -= chunk;
            done += chunk;
        }
        Ok(done)
    }

    /// At most this many steps in one submission: an MoE run's recorded steps' routing copies
    /// must fit `MOE_STAGING_BYTES`.
    fn max_steps_per_submission(&self) -> usize {
        self.moe_record.as_ref().map_or(MAX_STEPS_PER_SUBMISSION, |p| {
            let records = (MOE_STAGING_BYTES / (4 * p.floats())).max(1);
            records.saturating_mul(self.record_every).min(MAX_STEPS_PER_SUBMISSION)
        })
    }

    /// The hybrid steps `steps` queued, run now (each awaits its read-back of G).
    async fn run_queued(&mut self) -> Result<(), GpuError> {
        while self.queued > 0 && self.error.is_none() {
            let chunk = self.queued.min(self.max_steps_per_submission());
            self.queued -= chunk;
            self.submit(chunk).await?;
        }
        Ok(())
    }

    /// One submission of `k` ≥ 1 steps (a hybrid run's: `k` submissions, one per step, each
    /// split at its read-back of G).
    async fn submit(&mut self, k: usize) -> Result<(), GpuError> {
        self.gpu.check()?;
        let gpu = self.gpu.clone();
        let m = self.num_tasks();
        let n = self.shape.shared_len;
        let slot = slot_len(m);

        // This chunk's batch rows, in the CPU trainer's order.
        let full = self.sampler.is_full_batch();
        let mut gathers: Vec<[Dispatch; 2]> = Vec::new();
        // Each step's epoch index, counted as the CPU trainer counts it (the loss weighting's).
        let mut epochs: Vec<u64> = Vec::with_capacity(k);
        if full {
            epochs.extend((0..k as u64).map(|s| self.epoch + s));
            self.epoch += k as u64;
        } else {
            let mut idx: Vec<u32> = Vec::with_capacity(k * self.batch_rows);
            for _ in 0..k {
                let (rows, new_epoch) = self.sampler.next_batch();
                self.epoch += u64::from(new_epoch);
                epochs.push(self.epoch);
                idx.extend(rows.unwrap_or_default().into_iter().map(|r| r as u32));
            }
            let idx_buf = gpu.storage_init("batch rows", bytemuck::cast_slice(&idx), wgpu::BufferUsages::empty());
            for s in 0..k {
                let gather = |src: &wgpu::Buffer, dst: &wgpu::Buffer, width: usize| {
                    let (gx, gy) = grid(self.batch_rows * width);
                    let p = GatherParams {
                        rows: self.batch_rows as u32,
                        width: width as u32,
                        idx_off: (s * self.batch_rows) as u32,
                        groups_x: gx,
                    };
                    Dispatch::new(&gpu, &self.pipes.gather, &[src, &idx_buf, dst], bytemuck::bytes_of(&p), (gx, gy))
                };
                gathers.push([
                    gather(&self.x_all, &self.xb, self.shape.input_dim),
                    gather(&self.y_all, &self.yb, self.shape.y_stride),
                ]);
            }
        }

        // GradDrop's draws for every aggregator call of the chunk (SAM makes two a step), from
        // the CPU aggregator's stream in its order.
        let calls = if self.sam.is_some() { 2 } else { 1 };
        let draws = self.coordinate.as_mut().map(|c| {
            let mut u = c.agg.draws(k * calls, n);
            // A zero-length binding is invalid (TrimmedMean draws nothing).
            if u.is_empty() {
                u.push(0.0);
            }
            gpu.storage_init("graddrop draws", bytemuck::cast_slice(&u), wgpu::BufferUsages::empty())
        });
        let last = self.config.steps.saturating_sub(1);
        let recorded: Vec<usize> =
            (self.step..self.step + k).filter(|&s| s % self.record_every == 0 || s == last).collect();
        // One read-back buffer: the halt words after the last step, then the recorded slots.
        let hist_floats = recorded.len() * slot;
        let staging = gpu.buffer(
            "history staging",
            ((HALT_WORDS + hist_floats) * 4) as u64,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let mut slots = Vec::new();
        let moe_staging = self.moe_record.as_ref().filter(|_| !recorded.is_empty()).map(|p| {
            gpu.buffer(
                "moe routing staging",
                (recorded.len() * p.floats() * 4) as u64,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            )
        });
        let mut encoder =
            gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train steps") });
        let mut last_gram = None;
        // Noisy top-k: every step's ε, drawn as the CPU trainer draws it (seed ^ step·φ), one
        // upload per chunk; each step copies its block in.
        let noise_chunk = match (&self.net, &self.moe_noise) {
            (GpuNet::Moe { moe, shape, .. }, Some(_)) => {
                let eps: Vec<f32> = (self.step..self.step + k)
                    .flat_map(|step| {
                        routing_noise_f32(moe, shape, step_noise_seed(self.config.seed, step), self.batch_rows)
                    })
                    .collect();
                let block = (shape.noise_len(self.batch_rows) * 4) as u64;
                Some((gpu.storage_init("routing noise chunk", bytemuck::cast_slice(&eps), RW), block))
            }
            _ => None,
        };
        for (s, &epoch) in epochs.iter().enumerate() {
            let step = self.step + s;
            if let (Some((chunk, block)), Some(dst)) = (&noise_chunk, &self.moe_noise) {
                encoder.copy_buffer_to_buffer(chunk, s as u64 * block, dst, 0, *block);
            }
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("mlp step"),
                    timestamp_writes: None,
                });
                if let Some(g) = gathers.get(s) {
                    g[0].record(&mut pass);
                    g[1].record(&mut pass);
                }
                for d in self.step_fwd.dispatches.iter().chain(&self.step_bwd.dispatches) {
                    d.record(&mut pass);
                }
                for d in self.moe_aux.iter().flat_map(|a| &a.dispatches) {
                    d.record(&mut pass);
                }
            }
            // A recorded MoE step's routing and per-expert Gramians, from this pass at w and the
            // plain J, as the CPU trainer's record.
            if let (Some(plan), Some(dst), Some(slot_idx)) =
                (&self.moe_record, &moe_staging, recorded.iter().position(|&r| r == step))
            {
                plan.record(&mut encoder, dst, slot_idx * plan.floats());
            }
            // A per-coordinate aggregator's metrics need the plain J (before any loss weighting
            // scales it), as the CPU's: it goes into the first m rows of [J; d].
            if let Some(c) = &self.coordinate {
                encoder.copy_buffer_to_buffer(&self.jac, 0, &c.ext, 0, (m * n * 4) as u64);
            }
            // The loss weighting: w from the batch losses, then J's rows and the heads' gradients
            // scaled by it (the CPU's `combine`). The history keeps G of the plain J, as the CPU
            // records it, so that G is taken first.
            let plain_gram = self.loss_weighting.as_mut().map(|lw| {
                let g = gram::encode(&gpu, &mut encoder, &self.jac, m, n);
                let weights = lw.weights(&gpu, &self.step_fwd.losses, &g, epoch);
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("loss weighting"),
                    timestamp_writes: None,
                });
                weights.record(&mut pass);
                lw.record_scaling(&mut pass);
                g
            });
            // SAM calls the aggregator twice a step, as the CPU trainer's `combine` (a stateful
            // weighting — PCGrad's order, Random's stream — counts both calls).
            let (gram_buf, mut w) = match self.host.as_mut() {
                Some(h) => {
                    let out = h.combine(&gpu, &mut encoder, &self.jac, &self.step_fwd.losses, &self.update, n).await?;
                    self.add_moe_aux(&mut encoder);
                    out
                }
                None => self.combine_step(&mut encoder, (calls * step) as u32, (draws.as_ref(), calls * s)),
            };
            let gram_buf = plain_gram.unwrap_or(gram_buf);
            // The step's losses, weights, G (and test losses) into one slot: `optim_check` reads
            // it, and a recorded step's history slot is a copy of it. Losses and G are the
            // plain pass's, at w (the CPU records the losses at w and the metrics of J at w).
            let f = |x: usize| (x * 4) as u64;
            let c = f(HALT_WORDS);
            encoder.copy_buffer_to_buffer(&self.step_fwd.losses, 0, &self.check, c, f(m));
            encoder.copy_buffer_to_buffer(&gram_buf, 0, &self.check, c + f(2 * m + 1), f(m * m));
            if let Some(lw) = &self.loss_weighting {
                encoder.copy_buffer_to_buffer(&lw.out, 0, &self.check, c + f(loss_weights_at(m)), f(m));
            }
            if let Some(sam) = &self.sam {
                // w and d₀ saved, the parameters moved to w + ε, the same batch again (xb, yb
                // still hold it), d at w + ε into `update`, cos(d₀, d), w back.
                let total = f(self.shape.total_len);
                encoder.copy_buffer_to_buffer(&self.params, 0, &sam.buf, 0, total);
                encoder.copy_buffer_to_buffer(&self.update, 0, &sam.buf, total, total);
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("sam ascent"),
                        timestamp_writes: None,
                    });
                    sam.norm.record(&mut pass);
                    sam.perturb.record(&mut pass);
                    for d in self.step_fwd.dispatches.iter().chain(&self.step_bwd.dispatches) {
                        d.record(&mut pass);
                    }
                    // The CPU scales the second pass's gradients by the first pass's w.
                    if let Some(lw) = &self.loss_weighting {
                        lw.record_scaling(&mut pass);
                    }
                }
                let (_, w2) = match self.host.as_mut() {
                    Some(h) => {
                        let out =
                            h.combine(&gpu, &mut encoder, &self.jac, &self.step_fwd.losses, &self.update, n).await?;
                        self.add_moe_aux(&mut encoder);
                        out
                    }
                    None => self.combine_step(&mut encoder, (2 * step + 1) as u32, (draws.as_ref(), 2 * s + 1)),
                };
                w = w2;
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("sam cosine"),
                        timestamp_writes: None,
                    });
                    sam.cosine.record(&mut pass);
                }
                encoder.copy_buffer_to_buffer(&sam.buf, 0, &self.params, 0, total);
            }
            encoder.copy_buffer_to_buffer(&w, 0, &self.check, c + f(m), f(m + 1));
            let record_slot = recorded.iter().position(|&r| r == step);
            let mut tested = false;
            if let (Some(_), true, Some(test)) =
                (record_slot, step.is_multiple_of(self.config.eval_every), &self.test_eval)
            {
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("test losses"),
                        timestamp_writes: None,
                    });
                    for dsp in &test.dispatches {
                        dsp.record(&mut pass);
                    }
                }
                encoder.copy_buffer_to_buffer(&test.losses, 0, &self.check, c + f(2 * m + 1 + m * m), f(m));
                tested = true;
            }
            // The dynamics' constants and ‖d‖ before the check, which sees the clipped update.
            let host_dyn = if self.opt_params.dynamics != 0 {
                let (prep, host) = self.clock.next(&self.config, step, m, self.shape.total_len);
                let prepare = Dispatch::with_bindings(
                    &gpu,
                    &self.pipes.optim_prepare,
                    &[(1, &self.update), (2, &self.moments), (3, &self.check)],
                    &[(6, bytemuck::bytes_of(&prep))],
                    (1, 1),
                );
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("step dynamics"),
                    timestamp_writes: None,
                });
                prepare.record(&mut pass);
                Some(host)
            } else {
                None
            };
            let check = CheckParams { step: step as u32, tasks: m as u32, shared_len: n as u32, tested: tested as u32 };
            let check = Dispatch::with_bindings(
                &gpu,
                &self.pipes.optim_check,
                &[(0, &self.params), (1, &self.update), (2, &self.moments), (3, &self.check)],
                &[(4, bytemuck::bytes_of(&self.opt_params)), (5, bytemuck::bytes_of(&check))],
                grid(self.shape.total_len),
            );
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("step check"),
                    timestamp_writes: None,
                });
                check.record(&mut pass);
            }
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("optimizer"),
                    timestamp_writes: None,
                });
                self.opt_tick.record(&mut pass);
                self.opt_update.record(&mut pass);
            }
            // FAMO: the losses on the same batch (xb, yb still hold it) after the update.
            if let Some(after) = self.loss_weighting.as_mut().and_then(|lw| lw.after_step(&gpu, &self.step_fwd.losses))
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("losses after the step"),
                    timestamp_writes: None,
                });
                for d in &self.step_fwd.dispatches {
                    d.record(&mut pass);
                }
                after.record(&mut pass);
            }
            // After the update: its spike score and SPAM's clip count are in the slot.
            if let Some(slot_idx) = record_slot {
                encoder.copy_buffer_to_buffer(&self.check, c, &staging, f(HALT_WORDS + slot_idx * slot), f(slot));
                slots.push((step, tested, host_dyn));
            }
            last_gram = Some(gram_buf);
        }
        encoder.copy_buffer_to_buffer(&self.check, 0, &staging, 0, (HALT_WORDS * 4) as u64);
        gpu.queue.submit(Some(encoder.finish()));
        gpu.check()?;
        self.last_gram = last_gram;
        self.pending.push(Pending { staging, floats: hist_floats, slots, moe: moe_staging });
        self.step += k;
        Ok(())
    }

    /// G = JJᵀ → w = f(G) (weighting call `call`) → d = Jᵀw into the trunk's part of `update`
    /// (the backward pass wrote the heads' gradients after it), for the J of the last backward
    /// pass. Returns G and w. A per-coordinate aggregator ([`CoordinateStep`]) instead takes d
    /// straight from J (GradDrop with the draws of the chunk's call `draws.1`) and returns G and
    /// (Jd, ‖d‖²) in w's place.
    fn combine_step(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        call: u32,
        draws: (Option<&wgpu::Buffer>, usize),
    ) -> (wgpu::Buffer, wgpu::Buffer) {
        let (m, n) = (self.num_tasks(), self.shape.shared_len);
        let Some(weighting) = &self.weighting else {
            let c = self.coordinate.as_ref().expect("a run has a weighting or a per-coordinate aggregator");
            let (buf, call_at) = draws;
            let buf = buf.expect("a per-coordinate run uploads its draws");
            let out = c.record(&self.gpu, encoder, &self.jac, (buf, call_at * n), &self.update, m, n);
            self.add_moe_aux(encoder);
            return out;
        };
        let gram_buf = gram::encode(&self.gpu, encoder, &self.jac, m, n);
        let memory = self.weighting_memory.as_ref().map(|s| s.memory());
        let call = WeightCall { weighting, call, state: None, memory };
        // As `aggregate`: for n ≤ 16 the weighting reads J itself as G's factor.
        let w = if n <= MAX_TASKS {
            weighting::encode(&self.gpu, encoder, &self.jac, m, n, &call)
        } else {
            weighting::encode(&self.gpu, encoder, &gram_buf, m, 0, &call)
        };
        let d = combine::encode(&self.gpu, encoder, &self.jac, &w, m, n);
        encoder.copy_buffer_to_buffer(&d, 0, &self.update, 0, (n * 4) as u64);
        self.add_moe_aux(encoder);
        (gram_buf, w)
    }

    /// The MoE aux gradient joins the update after the aggregator (the CPU trainer's `combine`).
    fn add_moe_aux(&self, encoder: &mut wgpu::CommandEncoder) {
        if let Some(aux) = &self.moe_aux {
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("moe aux"), timestamp_writes: None });
            aux.add_to_update.record(&mut pass);
        }
    }

    /// Read back every submitted chunk's history and append its records. A step `optim_check`
    /// refused stops the run in the CPU trainer's words, its parameters at the last finite state
    /// (records from that step on are not steps taken and are dropped); a weighting solve cut
    /// short by the adapter stops it too.
    pub async fn read_history(&mut self) -> Result<&[StepRecord], GpuError> {
        let m = self.num_tasks();
        let slot = slot_len(m);
        self.run_queued().await?;
        for p in std::mem::take(&mut self.pending) {
            if self.error.is_some() {
                continue;
            }
            let back = self.gpu.read_mapped(&p.staging, ((HALT_WORDS + p.floats) * 4) as u64).await?;
            let (halt, data) = back.split_at(HALT_WORDS);
            let halt: Vec<u32> = halt.iter().map(|x| x.to_bits()).collect();
            let halted_at = (halt[0] != 0).then(|| halt[1] as usize - 1);
            let moe_back = match (&p.moe, &self.moe_record) {
                (Some(buf), Some(plan)) => {
                    Some(self.gpu.read_mapped(buf, (p.slots.len() * plan.floats() * 4) as u64).await?)
                }
                _ => None,
            };
            for (i, &(step, tested, host_dyn)) in p.slots.iter().enumerate() {
                if halted_at.is_some_and(|at| step >= at) {
                    break;
                }
                let moe = match (&moe_back, &self.moe_record, &self.net) {
                    (Some(back), Some(plan), GpuNet::Moe { moe, .. }) => {
                        let f = plan.floats();
                        Some(plan.decode(moe, &back[i * f..(i + 1) * f], step_noise_seed(self.config.seed, step)))
                    }
                    _ => None,
                };
                let v = &data[i * slot..(i + 1) * slot];
                let f64s = |r: std::ops::Range<usize>| v[r].iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
                let weights = f64s(m..2 * m);
                if self.directional() {
                    // d is not Jᵀw (a per-coordinate aggregator, MoCo, DB-MTL): no weights; its
                    // slot holds Jd and ‖d‖².
                    let gram = DMatrix::from_row_slice(m, m, &f64s(2 * m + 1..2 * m + 1 + m * m));
                    let sam = self.sam.is_some();
                    self.history.push(StepRecord {
                        step,
                        losses: f64s(0..m),
                        loss_weights: match &self.loss_weighting {
                            Some(_) => Some(f64s(loss_weights_at(m)..loss_weights_at(m) + m)),
                            None => self.ew.then(|| vec![1.0; m]),
                        },
                        aggregator_weights: None,
                        metrics: StepMetrics::from_directional(&gram, &weights, f64::from(v[2 * m])),
                        test_losses: tested.then(|| f64s(2 * m + 1 + m * m..3 * m + 1 + m * m)),
                        moe,
                        samples: None,
                        sample_stage: None,
                        dynamics: host_dyn.map(|h| dynamics_record(h, &v[3 * m + 1 + m * m..slot], sam)),
                    });
                    continue;
                }
                if v[2 * m] != 1.0 {
                    self.error = Some(format!(
                        "step {step}: the weighting solve was cut short by the adapter's shader loop limit ({}); the GPU run stopped (its parameters may be past this step)",
                        self.gpu.adapter_label()
                    ));
                    self.failed_at = Some(step);
                    break;
                }
                let gram = DMatrix::from_row_slice(m, m, &f64s(2 * m + 1..2 * m + 1 + m * m));
                let sam = self.sam.is_some();
                let dynamics = host_dyn.map(|h| dynamics_record(h, &v[3 * m + 1 + m * m..slot], sam));
                // The CPU's metrics are of the plain G with the coefficients lw ∘ w.
                let loss_weights = match &self.loss_weighting {
                    Some(_) => Some(f64s(loss_weights_at(m)..loss_weights_at(m) + m)),
                    None => self.ew.then(|| vec![1.0; m]),
                };
                let w = DVector::from_fn(m, |i, _| weights[i] * loss_weights.as_ref().map_or(1.0, |l| l[i]));
                self.history.push(StepRecord {
                    step,
                    losses: f64s(0..m),
                    loss_weights,
                    aggregator_weights: Some(weights),
                    metrics: StepMetrics::from_gram(&gram, &w, None),
                    test_losses: tested.then(|| f64s(2 * m + 1 + m * m..3 * m + 1 + m * m)),
                    moe,
                    samples: None,
                    sample_stage: None,
                    dynamics,
                });
            }
            if let (None, Some(at)) = (&self.error, halted_at) {
                self.error = Some(halt_message(&halt, m, at));
                self.failed_at = Some(at);
            }
        }
        match &self.error {
            Some(e) => Err(GpuError::Device(e.clone())),
            None => Ok(&self.history),
        }
    }

    /// One step, read back (the CPU trainer's `step`). Its record exists only if the step is
    /// on the recording cadence.
    pub async fn step(&mut self) -> Result<Option<&StepRecord>, GpuError> {
        if self.step >= self.config.steps {
            return Err(GpuError::Unsupported(format!("the run is complete ({} steps)", self.config.steps)));
        }
        let step = self.step;
        self.steps(1)?;
        self.read_history().await?;
        Ok(self.history.last().filter(|r| r.step == step))
    }

    /// Submit the rest of the run in chunks of `chunk` steps, reading the history back after
    /// each chunk and calling `progress(steps_done)`.
    pub async fn run_to_end(&mut self, chunk: usize, mut progress: impl FnMut(usize)) -> Result<(), GpuError> {
        while !self.is_done() {
            self.steps(chunk.max(1))?;
            self.read_history().await?;
            progress(self.step);
        }
        Ok(())
    }

    /// The current parameters (f32 on the GPU, widened).
    pub async fn params(&self) -> Result<Vec<f64>, GpuError> {
        let encoder =
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read params") });
        let mut back = self.gpu.submit_and_read(encoder, &[(&self.params, (self.shape.total_len * 4) as u64)]).await?;
        Ok(back.remove(0).into_iter().map(f64::from).collect())
    }

    /// G = JJᵀ of the last submitted step (m × m), `None` before the first step.
    pub async fn gramian(&self) -> Result<Option<DMatrix<f64>>, GpuError> {
        let Some(g) = &self.last_gram else { return Ok(None) };
        let m = self.num_tasks();
        let encoder =
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read gram") });
        let back = self.gpu.submit_and_read(encoder, &[(g, (m * m * 4) as u64)]).await?;
        Ok(Some(DMatrix::from_row_slice(m, m, &back[0].iter().map(|&x| f64::from(x)).collect::<Vec<_>>())))
    }

    async fn eval(&self, graph: &ForwardGraph) -> Result<Vec<f64>, GpuError> {
        let mut encoder =
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("eval") });
        {
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("eval"), timestamp_writes: None });
            for d in &graph.dispatches {
                d.record(&mut pass);
            }
        }
        let back = self.gpu.submit_and_read(encoder, &[(&graph.losses, (self.num_tasks() * 4) as u64)]).await?;
        Ok(back[0].iter().map(|&x| f64::from(x)).collect())
    }

    /// Per-task losses on the whole train set at the current parameters.
    pub async fn train_losses(&self) -> Result<Vec<f64>, GpuError> {
        self.eval(&self.train_eval).await
    }

    /// Per-task test losses (`None` without a test set).
    pub async fn test_losses(&self) -> Result<Option<Vec<f64>>, GpuError> {
        match &self.test_eval {
            Some(g) => Ok(Some(self.eval(g).await?)),
            None => Ok(None),
        }
    }

    /// The record of the run so far, in the CPU trainer's `RunRecord` shape (reads back the
    /// history, the parameters and the final losses).
    pub async fn record(&mut self) -> Result<RunRecord, GpuError> {
        // A divergence is reported in the record, as the CPU trainer does.
        let _ = self.read_history().await;
        let params = self.params().await?;
        let final_train_losses = self.train_losses().await?;
        let final_test_losses = self.test_losses().await?;
        Ok(RunRecord {
            config: self.config.clone(),
            task_names: self.task_names.clone(),
            steps_done: self.failed_at.unwrap_or(self.step),
            params,
            history: self.history.to_vec(),
            final_train_losses,
            final_test_losses,
            error: self.error.clone(),
        })
    }

    /// Put back saved parameters and history (an exported run imported again), as the CPU
    /// trainer's `restore`: the step counter continues from the history's length; the optimizer
    /// moments, the batch order and stateful weightings are the ones this trainer has now
    /// (fresh for a new trainer). Call it before any step is pending. Rejects what the CPU
    /// trainer rejects (wrong length, non-finite values, gaps in the step indices).
    pub fn restore(&mut self, params: Vec<f64>, history: Vec<StepRecord>) -> Result<(), GpuError> {
        if !self.pending.is_empty() || self.queued > 0 {
            return Err(GpuError::Unsupported("restore needs the pending steps read back first".into()));
        }
        // A long run's history is thinned (steps increase from 0, with gaps): the run goes on
        // after its last record, as the CPU trainer's restore does.
        let steps =
            restore_point(&params, self.shape.total_len, &history, self.config.steps).map_err(GpuError::Unsupported)?;
        let p32: Vec<f32> = params.iter().map(|&v| v as f32).collect();
        self.gpu.queue.write_buffer(&self.params, 0, bytemuck::cast_slice(&p32));
        // A restored run is running again: clear `optim_check`'s verdict.
        self.gpu.queue.write_buffer(&self.check, 0, &[0u8; HALT_WORDS * 4]);
        self.step = steps;
        self.history = History::from_records(history);
        self.error = None;
        self.failed_at = None;
        self.gpu.check()
    }

    /// The head outputs (one rows × out_dim matrix per task, the CPU `Mlp::forward`'s shape) at
    /// the current parameters for the inputs `x` (rows × input_dim): e.g. the playground's
    /// 100 × 100 decision-boundary grid. The graph for `x` is kept, so asking again for the same
    /// inputs after more steps only runs the forward pass and reads the outputs back.
    pub async fn predict(&mut self, x: &DMatrix<f64>) -> Result<Vec<DMatrix<f64>>, GpuError> {
        Ok(self.predict_inner(x, None, None).await?.0)
    }

    /// [`GpuTrainer::predict`] and, from the same forward pass, the trunk's hidden activations
    /// at the rows `rows` of `x` — the GPU twin of `Mlp::hidden_activations` on those rows (one
    /// rows.len() × width matrix per hidden layer). The forward kernels already keep every
    /// layer's φ(z) for all of `x`; `mlp_gather.wgsl` copies the chosen rows out of each, in
    /// the same submission, and they are read back with the outputs. So the page's network
    /// view gets its thumbnails (a 20 × 20 subgrid of the 100 × 100 heatmap grid) for the cost
    /// of reading back rows.len() × Σ widths floats. An MoE run (the routers the GPU trains):
    /// the twin of `Moe::hidden_activations` — its pre-layers, then each expert's hidden layer
    /// (`kernels::moe_hidden`).
    pub async fn predict_hidden(
        &mut self,
        x: &DMatrix<f64>,
        rows: &[usize],
    ) -> Result<(Vec<DMatrix<f64>>, Vec<DMatrix<f64>>), GpuError> {
        if let Some(&r) = rows.iter().find(|&&r| r >= x.nrows()) {
            return Err(GpuError::Unsupported(format!(
                "predict_hidden: row {r} is not one of the {} inputs",
                x.nrows()
            )));
        }
        let (outs, hidden, _) = self.predict_inner(x, Some(rows), None).await?;
        Ok((outs, hidden.unwrap_or_default()))
    }

    /// [`GpuTrainer::predict_hidden`] and, from the same forward pass, one neuron's activation
    /// at *every* row of `x`: `neuron` = (hidden layer, index), the column
    /// `Mlp::hidden_activations(x)[l].column(j)` — the network view's enlarged map at the full
    /// grid resolution. It is one more `mlp_gather.wgsl` dispatch over layer l's φ(z) with the
    /// flat indices r·width + j as "rows" of width 1, so reading it back costs rows floats.
    pub async fn predict_hidden_neuron(
        &mut self,
        x: &DMatrix<f64>,
        rows: &[usize],
        neuron: (usize, usize),
    ) -> Result<(Vec<DMatrix<f64>>, Vec<DMatrix<f64>>, Vec<f64>), GpuError> {
        let (l, j) = neuron;
        match self.net.hidden_widths().get(l) {
            Some(&width) if j < width => {}
            _ => {
                return Err(GpuError::Unsupported(format!(
                    "predict_hidden_neuron: the model has no neuron {j} in hidden layer {l}"
                )))
            }
        }
        if let Some(&r) = rows.iter().find(|&&r| r >= x.nrows()) {
            return Err(GpuError::Unsupported(format!(
                "predict_hidden: row {r} is not one of the {} inputs",
                x.nrows()
            )));
        }
        let (outs, hidden, column) = self.predict_inner(x, Some(rows), Some(neuron)).await?;
        Ok((outs, hidden.unwrap_or_default(), column.unwrap_or_default()))
    }

    /// The grid forward pass, with the gathers `predict_hidden` and `predict_hidden_neuron` ask
    /// for (the neuron was checked by the caller).
    #[allow(clippy::type_complexity)]
    async fn predict_inner(
        &mut self,
        x: &DMatrix<f64>,
        hidden_rows: Option<&[usize]>,
        neuron: Option<(usize, usize)>,
    ) -> Result<(Vec<DMatrix<f64>>, Option<Vec<DMatrix<f64>>>, Option<Vec<f64>>), GpuError> {
        if x.ncols() != self.shape.input_dim {
            return Err(GpuError::Unsupported(format!(
                "predict: the inputs have {} columns, the model takes {}",
                x.ncols(),
                self.shape.input_dim
            )));
        }
        let rows = x.nrows();
        let widths = self.net.hidden_widths();
        if rows == 0 {
            let outs = self.shape.heads.iter().map(|h| DMatrix::zeros(0, h.fan_out)).collect();
            let hidden = hidden_rows.map(|r| widths.iter().map(|&w| DMatrix::zeros(r.len(), w)).collect());
            return Ok((outs, hidden, neuron.map(|_| Vec::new())));
        }
        self.grid_graph(x)?;
        let wanted: Option<Vec<u32>> =
            hidden_rows.filter(|r| !r.is_empty() && !widths.is_empty()).map(|r| r.iter().map(|&i| i as u32).collect());
        if let Some(idx) = &wanted {
            let grid = self.predict_graph.as_mut().expect("built by grid_graph");
            if grid.hidden.as_ref().is_none_or(|h| h.rows != *idx) {
                grid.hidden = Some(match &self.net {
                    GpuNet::Mlp(_) => HiddenGather::new(&self.gpu, &self.pipes, &grid.fwd, &widths, idx.clone()),
                    GpuNet::Moe { shape, pipes: moe_pipes, .. } => {
                        let (dispatches, outs) = moe_hidden::gather_at_rows(
                            &self.gpu,
                            &self.pipes,
                            moe_pipes,
                            shape,
                            &grid.fwd,
                            &grid.x,
                            &self.params,
                            idx,
                        );
                        HiddenGather { rows: idx.clone(), outs, dispatches }
                    }
                });
            }
        }
        if let Some(at) = neuron {
            let grid = self.predict_graph.as_mut().expect("built by grid_graph");
            if grid.neuron.as_ref().is_none_or(|n| n.at != at) {
                grid.neuron = Some(match &self.net {
                    GpuNet::Mlp(_) => NeuronGather::new(&self.gpu, &self.pipes, &grid.fwd, widths[at.0], rows, at),
                    GpuNet::Moe { shape, pipes: moe_pipes, .. } => {
                        let (dispatches, out) = moe_hidden::neuron_column(
                            &self.gpu,
                            &self.pipes,
                            moe_pipes,
                            shape,
                            &grid.fwd,
                            &grid.x,
                            &self.params,
                            at,
                        );
                        NeuronGather { at, out, dispatches }
                    }
                });
            }
        }
        let grid = self.predict_graph.as_ref().expect("built by grid_graph");
        let gather = wanted.as_ref().and(grid.hidden.as_ref());
        let column = neuron.and(grid.neuron.as_ref());
        let mut encoder =
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("predict") });
        {
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("predict"), timestamp_writes: None });
            for d in grid
                .fwd
                .dispatches
                .iter()
                .chain(gather.into_iter().flat_map(|g| &g.dispatches))
                .chain(column.into_iter().flat_map(|c| &c.dispatches))
            {
                d.record(&mut pass);
            }
        }
        let mut parts: Vec<(&wgpu::Buffer, u64)> =
            grid.fwd.outs.iter().zip(&self.shape.heads).map(|(o, h)| (o, (rows * h.fan_out * 4) as u64)).collect();
        if let Some(g) = gather {
            parts.extend(g.outs.iter().zip(&widths).map(|(b, w)| (b, (g.rows.len() * w * 4) as u64)));
        }
        if let Some(c) = column {
            parts.push((&c.out, (rows * 4) as u64));
        }
        let back = self.gpu.submit_and_read(encoder, &parts).await?;
        let to_matrix =
            |v: &Vec<f32>, r: usize, c: usize| DMatrix::from_row_iterator(r, c, v.iter().map(|&x| f64::from(x)));
        let heads = self.shape.heads.len();
        let outs = back.iter().zip(&self.shape.heads).map(|(v, h)| to_matrix(v, rows, h.fan_out)).collect();
        let hidden = hidden_rows.map(|r| match gather {
            Some(g) => back[heads..].iter().zip(&widths).map(|(v, &w)| to_matrix(v, g.rows.len(), w)).collect(),
            // No rows, or no hidden layer.
            None => widths.iter().map(|&w| DMatrix::zeros(r.len(), w)).collect(),
        });
        // The neuron's column is the last part read back.
        let column = column.and(back.last()).map(|v| v.iter().map(|&x| f64::from(x)).collect());
        Ok((outs, hidden, column))
    }

    /// Makes `predict_graph` the forward graph over the inputs `x` (rows ≥ 1, width checked by
    /// the caller), kept for the next call with the same inputs.
    fn grid_graph(&mut self, x: &DMatrix<f64>) -> Result<(), GpuError> {
        let x32 = matrix_f32(x);
        if self.predict_graph.as_ref().is_none_or(|g| g.x32 != x32) {
            let rows = x.nrows();
            self.shape.check_rows(rows)?;
            if let GpuNet::Moe { shape, .. } = &self.net {
                shape.check_rows(rows)?;
            }
            let xb = self.gpu.storage_init("predict x", bytemuck::cast_slice(&x32), RW);
            // The loss kernels of the graph need a target table; zeros are valid for every loss
            // (class 0, label 0) and the losses are not read.
            let y = vec![0.0f32; rows * self.shape.y_stride];
            let yb = self.gpu.storage_init("predict y", bytemuck::cast_slice(&y), RW);
            let fwd = self.net.forward_graph(&self.gpu, &self.pipes, &self.shape, rows, &xb, &yb, &self.params);
            self.predict_graph = Some(GridGraph { x32, x: xb, y: yb, fwd, hidden: None, neuron: None });
        }
        Ok(())
    }

    /// Every point's m × m Gram of its per-task gradients of the shared (trunk) parameters at the
    /// current parameters, for the inputs `x` (rows × input_dim): the per-point conflict map,
    /// the GPU twin of `Mlp::point_grams` (`PointGradient::OwnPrediction` or `Output`; the loss
    /// needs labels: [`GpuTrainer::train_point_grams`]). The forward pass, m per-point backward
    /// passes and the Grams are one queue submission; the graph is kept (shared with `predict`
    /// on the same inputs), so a refresh after more steps only runs the kernels and reads the
    /// rows · m² Gram entries back.
    pub async fn point_grams(&mut self, x: &DMatrix<f64>, how: PointGradient) -> Result<PointGrams, GpuError> {
        self.mlp_only("point_grams")?;
        if how == PointGradient::Loss {
            return Err(GpuError::Unsupported(
                "point_grams: per-point loss gradients need the points' labels (train_point_grams has them)".into(),
            ));
        }
        if x.ncols() != self.shape.input_dim {
            return Err(GpuError::Unsupported(format!(
                "point_grams: the inputs have {} columns, the model takes {}",
                x.ncols(),
                self.shape.input_dim
            )));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(GpuError::Unsupported(format!("point_grams: input in row {} is not finite", i % x.nrows())));
        }
        let m = self.num_tasks();
        let rows = x.nrows();
        if rows == 0 {
            return Ok(PointGrams { m, grams: Vec::new() });
        }
        self.shape.check_rows(rows).map_err(|_| {
            GpuError::Unsupported(format!(
                "point_grams: {rows} points are more than one call's kernels take (their loops are bounded for \
                 lavapipe); ask for fewer at a time"
            ))
        })?;
        check_point_shape(&self.gpu, &self.shape, rows)?;
        self.grid_graph(x)?;
        let grid = self.predict_graph.as_ref().expect("built by grid_graph");
        let pipes = self.point_pipes.get_or_insert_with(|| PointPipelines::new(&self.gpu));
        if self.point_graph.as_ref().is_none_or(|(x32, h, _)| *h != how || *x32 != grid.x32) {
            let graph = PointGraph::new(&self.gpu, pipes, &self.shape, &grid.fwd, &grid.x, &grid.y, &self.params, how);
            self.point_graph = Some((grid.x32.clone(), how, graph));
        }
        let (_, _, graph) = self.point_graph.as_ref().expect("just built");
        self.run_point_graph(&grid.fwd, graph).await
    }

    /// [`GpuTrainer::point_grams`] for the training points (the CPU trainer's `train_data()`
    /// rows, in order) with their labels, so `PointGradient::Loss` works too: the twin of
    /// `Mlp::point_grams(params, train_x, how, Some(train_y))`.
    pub async fn train_point_grams(&mut self, how: PointGradient) -> Result<PointGrams, GpuError> {
        self.mlp_only("train_point_grams")?;
        check_point_shape(&self.gpu, &self.shape, self.n_train)?;
        let pipes = self.point_pipes.get_or_insert_with(|| PointPipelines::new(&self.gpu));
        if self.train_point_graph.as_ref().is_none_or(|(h, _)| *h != how) {
            let graph = PointGraph::new(
                &self.gpu,
                pipes,
                &self.shape,
                &self.train_eval,
                &self.x_all,
                &self.y_all,
                &self.params,
                how,
            );
            self.train_point_graph = Some((how, graph));
        }
        let (_, graph) = self.train_point_graph.as_ref().expect("just built");
        self.run_point_graph(&self.train_eval, graph).await
    }

    /// One submission: the forward graph, the conflict-map graph, the Grams read back.
    async fn run_point_graph(&self, fwd: &ForwardGraph, graph: &PointGraph) -> Result<PointGrams, GpuError> {
        self.gpu.check()?;
        let mut encoder =
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("point grams") });
        point_conflict::record(&mut encoder, fwd, graph);
        let back = self.gpu.submit_and_read(encoder, &[(&graph.grams, graph.gram_bytes())]).await?;
        Ok(graph.to_point_grams(&back[0]))
    }

    /// Rows per step and training rows (full batch: equal).
    pub fn batch_shape(&self) -> (usize, usize) {
        (self.batch_rows, self.n_train)
    }
}

/// SAM's kernels (mlp_sam.wgsl) and their buffer [w | d₀ | weight mask | scale, 3 unused].
struct SamGraph {
    buf: wgpu::Buffer,
    norm: Dispatch,
    perturb: Dispatch,
    cosine: Dispatch,
}

impl SamGraph {
    fn new(
        gpu: &Gpu,
        pipes: &MlpPipelines,
        mask: &[f32],
        p: &SamParams,
        params: &wgpu::Buffer,
        update: &wgpu::Buffer,
        check: &wgpu::Buffer,
    ) -> Self {
        let len = p.len as usize;
        // ASAM's T = |w| + η on weight matrices, 1 on biases (the CPU trainer's `weight_mask`).
        let mut init = vec![0.0f32; 3 * len + 4];
        init[2 * len..3 * len].copy_from_slice(mask);
        let buf = gpu.storage_init("sam", bytemuck::cast_slice(&init), RW);
        let uniform = [(4, bytemuck::bytes_of(p))];
        let norm = Dispatch::with_bindings(gpu, &pipes.sam_norm, &[(1, &buf)], &uniform, (1, 1));
        let perturb = Dispatch::with_bindings(gpu, &pipes.sam_perturb, &[(0, params), (1, &buf)], &uniform, grid(len));
        let cosine =
            Dispatch::with_bindings(gpu, &pipes.sam_cosine, &[(1, &buf), (2, update), (3, check)], &uniform, (1, 1));
        SamGraph { buf, norm, perturb, cosine }
    }
}

/// A forward graph over caller-given inputs (`predict`, `point_grams`), with its input buffer
/// and its (all-zero) target table.
struct GridGraph {
    x32: Vec<f32>,
    x: wgpu::Buffer,
    y: wgpu::Buffer,
    fwd: ForwardGraph,
    /// `predict_hidden`'s gathers for its last rows (kept for the next call with the same rows).
    hidden: Option<HiddenGather>,
    /// `predict_hidden_neuron`'s gather for its last neuron (kept likewise).
    neuron: Option<NeuronGather>,
}

/// One neuron's activation at every row of a forward graph (`predict_hidden_neuron`):
/// `mlp_gather.wgsl` with width 1 and the flat indices r·width + j, so dst[r] = act_l[r, j].
struct NeuronGather {
    /// (hidden layer, neuron).
    at: (usize, usize),
    out: wgpu::Buffer,
    /// An MoE expert neuron: its expert's hidden layer over every row first (`moe_hidden`).
    dispatches: Vec<Dispatch>,
}

impl NeuronGather {
    fn new(gpu: &Gpu, pipes: &MlpPipelines, fwd: &ForwardGraph, width: usize, rows: usize, at: (usize, usize)) -> Self {
        let flat: Vec<u32> = (0..rows).map(|r| (r * width + at.1) as u32).collect();
        let idx = gpu.storage_init("neuron rows", bytemuck::cast_slice(&flat), wgpu::BufferUsages::empty());
        let out = gpu.buffer("neuron activations", (rows * 4) as u64, RW);
        let (gx, gy) = grid(rows);
        let p = GatherParams { rows: rows as u32, width: 1, idx_off: 0, groups_x: gx };
        let dispatch =
            Dispatch::new(gpu, &pipes.gather, &[&fwd.act[at.0], &idx, &out], bytemuck::bytes_of(&p), (gx, gy));
        Self { at, out, dispatches: vec![dispatch] }
    }
}

/// The trunk's activations at a few rows of a forward graph's inputs (`predict_hidden`): one
/// `mlp_gather.wgsl` dispatch per hidden layer, dst[r, c] = act_l[rows[r], c] — i.e.
/// `Mlp::hidden_activations` at those rows, since the forward kernels computed act_l =
/// φ(W·act_{l−1} + b) for every row.
struct HiddenGather {
    rows: Vec<u32>,
    /// One rows.len() × width buffer per hidden layer.
    outs: Vec<wgpu::Buffer>,
    dispatches: Vec<Dispatch>,
}

impl HiddenGather {
    fn new(gpu: &Gpu, pipes: &MlpPipelines, fwd: &ForwardGraph, widths: &[usize], rows: Vec<u32>) -> Self {
        let idx = gpu.storage_init("thumbnail rows", bytemuck::cast_slice(&rows), wgpu::BufferUsages::empty());
        let mut outs = Vec::new();
        let mut dispatches = Vec::new();
        for (act, &width) in fwd.act.iter().zip(widths) {
            let out = gpu.buffer("hidden activations", (rows.len() * width * 4) as u64, RW);
            let (gx, gy) = grid(rows.len() * width);
            let p = GatherParams { rows: rows.len() as u32, width: width as u32, idx_off: 0, groups_x: gx };
            dispatches.push(Dispatch::new(gpu, &pipes.gather, &[act, &idx, &out], bytemuck::bytes_of(&p), (gx, gy)));
            outs.push(out);
        }
        Self { rows, outs, dispatches }
    }
}

/// The CPU trainer's stop message (`Trainer::fail`) for the halt buffer's first reason.
fn halt_message(halt: &[u32], m: usize, at: usize) -> String {
    let (bit, what) = HALT_REASONS.iter().find(|(bit, _)| halt[0] & bit != 0).copied().unwrap_or(HALT_REASONS[4]);
    let values =
        |from: usize| -> Vec<f64> { halt[from..from + m].iter().map(|&b| f64::from(f32::from_bits(b))).collect() };
    let what = match bit {
        1 => format!("{what} ({:?})", values(2)),
        4 => format!("{what} ({:?})", values(2 + MAX_TASKS)),
        _ => what.to_string(),
    };
    format!("step {at}: {what}; the run stopped, parameters kept at the last finite state")
}

/// The model a [`GpuTrainer`] trains: an MLP, or an MoE model (every router and CGC; not PLE/DSelect-k,
/// `kernels::moe_train`) whose graphs come out in the MLP's shape.
enum GpuNet {
    Mlp(Mlp),
    Moe { moe: Box<Moe>, shape: Box<MoeShape>, pipes: Box<MoeTrainPipelines> },
}

impl GpuNet {
    /// The widths of the hidden activations `predict_hidden` reads back: an MLP's trunk layers;
    /// an MoE's pre-layers, then each expert's hidden layer (`Moe::hidden_activations`' order).
    fn hidden_widths(&self) -> Vec<usize> {
        match self {
            GpuNet::Mlp(mlp) => mlp.layout().trunk.iter().map(|l| l.fan_out).collect(),
            GpuNet::Moe { shape, .. } => moe_hidden::hidden_widths(shape),
        }
    }

    /// The kernels' view: an MoE's pre-layers stand where the MLP's trunk does.
    fn shape(&self) -> ModelShape {
        match self {
            GpuNet::Mlp(mlp) => ModelShape::new(mlp),
            GpuNet::Moe { shape, .. } => shape.base.clone(),
        }
    }

    /// The CPU trainer's `weight_mask` as the kernels read it (ASAM's T and the L1/L2 penalty):
    /// an MLP's weights 1 and biases 0; an MoE model treats every entry as a weight, as the CPU
    /// trainer does.
    fn weight_mask(&self) -> Vec<f32> {
        match self {
            GpuNet::Mlp(mlp) => weight_mask(mlp.layout()).into_iter().map(|w| f32::from(u8::from(w))).collect(),
            GpuNet::Moe { moe, .. } => vec![1.0; moe.layout().total_len],
        }
    }

    /// A forward graph (losses and head outputs, no backward) over `rows` rows of `x`.
    #[allow(clippy::too_many_arguments)]
    fn forward_graph(
        &self,
        gpu: &Gpu,
        pipes: &MlpPipelines,
        shape: &ModelShape,
        rows: usize,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        params: &wgpu::Buffer,
    ) -> ForwardGraph {
        match self {
            GpuNet::Mlp(_) => ForwardGraph::new(gpu, pipes, shape, rows, x, y, params),
            GpuNet::Moe { shape, pipes: moe_pipes, .. } => {
                MoeForward::new(gpu, pipes, moe_pipes, shape, rows, x, y, params, None).graph
            }
        }
    }

    /// The training step's forward graph, the backward graph that fills `jac` and the heads'
    /// part of `update`, and for an MoE model what a recorded step reads back of its routing.
    #[allow(clippy::too_many_arguments)]
    fn step_graphs(
        &self,
        gpu: &Gpu,
        pipes: &MlpPipelines,
        shape: &ModelShape,
        rows: usize,
        (x, y): (&wgpu::Buffer, &wgpu::Buffer),
        params: &wgpu::Buffer,
        (jac, update): (&wgpu::Buffer, &wgpu::Buffer),
        noise: Option<&wgpu::Buffer>,
    ) -> (ForwardGraph, BackwardGraph, Option<MoeAuxStep>, Option<MoeRecordPlan>) {
        match self {
            GpuNet::Mlp(_) => {
                let fwd = ForwardGraph::new(gpu, pipes, shape, rows, x, y, params);
                let bwd = BackwardGraph::new(gpu, pipes, shape, &fwd, x, params, jac, update);
                (fwd, bwd, None, None)
            }
            GpuNet::Moe { moe, shape, pipes: moe_pipes } => {
                let fwd = MoeForward::new(gpu, pipes, moe_pipes, shape, rows, x, y, params, noise);
                let bwd = fwd.backward(gpu, pipes, moe_pipes, shape, x, params, jac, update);
                let aux = MoeAuxStep::new(gpu, pipes, moe_pipes, moe, shape, &fwd, (x, params), update);
                // The architectures' gates keep their logits in their own buffers (`kernels::moe_arch`,
                // `kernels::moe_dselect`), which the records do not read yet: their steps carry no
                // routing statistics.
                let record = (shape.arch.is_none() && shape.dselect.is_none())
                    .then(|| MoeRecordPlan::new(gpu, moe, shape, fwd.routing_outputs(shape), rows, jac));
                (fwd.graph, bwd, aux, record)
            }
        }
    }
}

/// The optimizer kernels' parameters for a run: `dynamics` on when it records them (SPAM's
/// constants, the schedule and the clip come from `optim_prepare` then); the L1/L2 penalty
/// (rate 0 is none, as the CPU trainer's).
fn opt_params(config: &TrainConfig, total: usize) -> OptParams {
    let mut p = OptParams::new(&config.optimizer, total);
    p.dynamics = u32::from(records_dynamics(config));
    if let Some(r) = config.regularization.filter(|r| r.rate > 0.0) {
        p.penalty = penalty_code(r.penalty);
        p.penalty_rate = r.rate as f32;
    }
    p
}

/// A recorded step's `DynamicsRecord`: the host's lr and reset, the GPU's words (`DYN_WORDS`).
fn dynamics_record(host: HostDynamics, words: &[f32], sam: bool) -> DynamicsRecord {
    let score = words[2].to_bits();
    DynamicsRecord {
        lr: host.lr,
        grad_norm: f64::from(words[0]),
        clipped: words[1].to_bits() != 0,
        task: None,
        sam_cosine: sam.then(|| f64::from(words[4])),
        spike_score: (score != 0).then(|| f64::from(f32::from_bits(score - 1))),
        spikes_clipped: words[3].to_bits() as usize,
        reset: host.reset,
    }
}

fn optimizer_dispatches(
    gpu: &Gpu,
    pipes: &MlpPipelines,
    p: &OptParams,
    params: &wgpu::Buffer,
    update: &wgpu::Buffer,
    moments: &wgpu::Buffer,
    check: &wgpu::Buffer,
) -> (Dispatch, Dispatch) {
    let uniform = [(4, bytemuck::bytes_of(p))];
    let tick = Dispatch::with_bindings(gpu, &pipes.optim_tick, &[(2, moments), (3, check)], &uniform, (1, 1));
    let update = Dispatch::with_bindings(
        gpu,
        &pipes.optim_update,
        &[(0, params), (1, update), (2, moments), (3, check)],
        &uniform,
        grid(p.len as usize),
    );
    (tick, update)
}

/// A GPU error as the backend contract names it: an invalid request is the run's, the rest is
/// the device's (the caller may move the run to the CPU).
pub(crate) fn backend_error(e: GpuError) -> BackendError {
    match e {
        GpuError::Unsupported(m) => BackendError::Run(m),
        other => BackendError::Device(other.to_string()),
    }
}

impl Backend for GpuTrainer {
    fn kind(&self) -> BackendKind {
        BackendKind::Gpu
    }

    fn config(&self) -> &TrainConfig {
        &self.config
    }

    fn steps_submitted(&self) -> usize {
        self.step + self.queued
    }

    fn submit(&mut self, k: usize) -> Result<usize, BackendError> {
        if self.error.is_some() {
            return Ok(0);
        }
        self.steps(k).map_err(backend_error)
    }

    fn read_back(&mut self) -> ReadBack<'_> {
        Box::pin(async move {
            // A divergence is the snapshot's `error`, not a failed read-back.
            if let Err(e) = self.read_history().await {
                if self.error.is_none() {
                    return Err(backend_error(e));
                }
            }
            // By step, not position: thinning moves older records.
            let next = self.read_cursor;
            let new_records: Vec<StepRecord> = self.history.iter().filter(|r| r.step >= next).cloned().collect();
            self.read_cursor = self.history.last().map_or(next, |r| r.step + 1);
            let params = self.params().await.map_err(backend_error)?;
            let train_losses = self.train_losses().await.map_err(backend_error)?;
            let test_losses = self.test_losses().await.map_err(backend_error)?;
            Ok(Snapshot {
                steps_done: self.failed_at.unwrap_or(self.step),
                new_records,
                params,
                train_losses,
                test_losses,
                error: self.error.clone(),
            })
        })
    }

    fn set_lr(&mut self, lr: f64) -> Result<(), String> {
        GpuTrainer::set_lr(self, lr).map_err(|e| e.to_string())
    }

    fn restore(&mut self, params: Vec<f64>, history: Vec<StepRecord>) -> Result<(), String> {
        GpuTrainer::restore(self, params, history).map_err(|e| e.to_string())?;
        self.read_cursor = self.history.last().map_or(0, |r| r.step + 1);
        Ok(())
    }

    fn predict(&mut self, points: &[[f64; 2]]) -> Option<concord_core::train::Predict<'_>> {
        // The points go through the run's input features, as the CPU trainer's predict_points.
        let x = concord_core::data::feature_rows(self.config.features.as_ref(), points);
        // A model whose inputs are not 2-D is the inherent predict's Unsupported → Run.
        Some(Box::pin(async move { GpuTrainer::predict(self, &x).await.map_err(backend_error) }))
    }

    fn predict_hidden(
        &mut self,
        points: &[[f64; 2]],
        rows: &[usize],
    ) -> Option<concord_core::train::PredictHidden<'_>> {
        // An MoE run (a router the GPU trains): its pre-layers' and experts' hidden neurons.
        let x = concord_core::data::feature_rows(self.config.features.as_ref(), points);
        let rows = rows.to_vec();
        Some(Box::pin(async move { GpuTrainer::predict_hidden(self, &x, &rows).await.map_err(backend_error) }))
    }

    fn predict_neuron(
        &mut self,
        points: &[[f64; 2]],
        rows: &[usize],
        neuron: (usize, usize),
    ) -> Option<concord_core::train::PredictNeuron<'_>> {
        let x = concord_core::data::feature_rows(self.config.features.as_ref(), points);
        let rows = rows.to_vec();
        Some(Box::pin(async move {
            GpuTrainer::predict_hidden_neuron(self, &x, &rows, neuron).await.map_err(backend_error)
        }))
    }

    fn point_grams(
        &mut self,
        points: &[[f64; 2]],
        how: PointGradient,
    ) -> Option<concord_core::train::PointGramsFuture<'_>> {
        // The per-point kernels differentiate an MLP trunk; an MoE run has none (as on the CPU).
        self.mlp()?;
        let x = concord_core::data::feature_rows(self.config.features.as_ref(), points);
        // The kernel's graph for these points is kept, as predict's (and shares its forward).
        Some(Box::pin(async move { GpuTrainer::point_grams(self, &x, how).await.map_err(backend_error) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mlp_optim.wgsl reads the step's inputs after the halt words: the two must agree.
    #[test]
    fn the_shader_reads_its_inputs_after_the_halt_words() {
        let src = crate::shaders::SOURCES.iter().find(|(name, _)| *name == "mlp_optim.wgsl").expect("mlp_optim.wgsl").1;
        assert!(src.contains(&format!("const CHECK_IN: u32 = {HALT_WORDS}u;")), "CHECK_IN ≠ HALT_WORDS ({HALT_WORDS})");
        assert!(src.contains(&format!("atomicStore(&o_check[{}u + i]", 2 + MAX_TASKS)), "test losses at 2 + MAX_TASKS");
        // The penalty's weight mask follows the step state.
        assert!(src.contains(&format!("const STEP_STATE: u32 = {STEP_STATE}u;")), "STEP_STATE ≠ {STEP_STATE}");
        use concord_core::train::Penalty;
        for (p, name) in [(Penalty::L1, "PENALTY_L1"), (Penalty::L2, "PENALTY_L2")] {
            assert!(src.contains(&format!("const {name}: u32 = {}u;", penalty_code(p))), "{name}");
        }
    }
}
