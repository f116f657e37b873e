//! One arena run on the GPU (concord-gpu's `GpuTrainer`), behind the arena's `TrainBackend`.
//!
//! The GPU's results come back asynchronously, so the run keeps a snapshot of the last
//! read-back state — history, parameters, whole-set train and test losses — and the panels,
//! the test hook and the export read that. A frame submits k steps ([`GpuRun::submit`]: one
//! queue submission, no readback) and hands the trainer to a `spawn_local` future that reads the
//! new history, the parameters and the losses back; the arena gets the trainer and the new
//! snapshot back through [`crate::arena::with`]. While that readback is in flight the run is
//! `busy` and the arena submits nothing, so at most one readback per run is pending and nothing
//! blocks the main thread.

use crate::runner::TrainBackend;
use concord_core::model::Mlp;
use concord_core::train::{RunRecord, StepRecord, TrainConfig};
use concord_core::Trainer;
use concord_gpu::{Gpu, GpuTrainer};
use nalgebra::DMatrix;
use std::sync::Arc;

/// What one readback brings: the records of the steps read back, and the state after them.
pub struct Snapshot {
    pub new_records: Vec<StepRecord>,
    pub params: Vec<f64>,
    pub train: Vec<f64>,
    pub test: Option<Vec<f64>>,
    /// The heatmap grid's head outputs at `params`, if the run has a grid.
    pub grid: Option<Vec<DMatrix<f64>>>,
}

/// Why a readback failed: the run itself diverged (the GPU trainer stopped it), or the GPU is
/// gone (device lost, mapping error) and every GPU run must move to the CPU.
pub enum ReadbackError {
    Run(String),
    Device(String),
}

pub struct GpuRun {
    /// `None` while a readback is in flight.
    trainer: Option<GpuTrainer>,
    /// The arena's config (per-layer metrics on); the GPU trains it without them.
    config: TrainConfig,
    mlp: Mlp,
    task_names: Vec<String>,
    history: Vec<StepRecord>,
    params: Vec<f64>,
    train: Vec<f64>,
    test: Option<Vec<f64>>,
    /// The run's error as the GPU trainer found it (a divergence).
    error: Option<String>,
    /// A learning rate set while the trainer was out for a readback.
    lr_pending: Option<f64>,
    /// The heatmap grid (extent, its points as rows), predicted on the GPU at each readback.
    grid: Option<(f64, DMatrix<f64>)>,
    /// The grid's head outputs at `params` (from the last readback).
    grid_outputs: Option<Vec<DMatrix<f64>>>,
    /// The CPU trainer of the same config, never stepped: its model and training set are the
    /// landscape panel's objective (the loss at any parameter vector, in f64).
    cpu_twin: Trainer,
}

impl GpuRun {
    /// The run on `gpu`, or why the GPU cannot train this config (then the CPU does).
    pub fn new(gpu: Arc<Gpu>, config: TrainConfig) -> Result<Self, String> {
        // The initial snapshot comes from the CPU trainer: the GPU trainer starts from the same
        // parameters (it builds them the same way), so every run of the arena starts identical.
        if config.moe.is_some() {
            return Err("there is no GPU MoE trainer yet: MoE runs train on the CPU".into());
        }
        let cpu = Trainer::new(config.clone())?;
        let mlp = cpu.mlp().cloned().ok_or("this preset trains x directly (no model): the GPU trainer needs an MLP")?;
        // The GPU trainer does not read per-layer metrics back yet; the whole-trunk ones it does.
        let gpu_config = TrainConfig { layer_metrics: false, ..config.clone() };
        let mut trainer = GpuTrainer::new(gpu, gpu_config).map_err(|e| e.to_string())?;
        // Every step's record, so the history is indexed 0, 1, 2, … as the CPU trainer's (export
        // and import rely on it).
        trainer.set_record_every(1).map_err(|e| e.to_string())?;
        Ok(GpuRun {
            trainer: Some(trainer),
            mlp,
            task_names: cpu.task_names().to_vec(),
            history: Vec::new(),
            params: cpu.params().to_vec(),
            train: cpu.train_losses()?,
            test: cpu.test_losses().transpose()?,
            config,
            error: None,
            lr_pending: None,
            grid: None,
            grid_outputs: None,
            cpu_twin: cpu,
        })
    }

    /// Predict the heatmap grid (`grid::points(extent)`) on the GPU at each readback.
    pub fn set_grid(&mut self, extent: f64) {
        let pts = crate::grid::points(extent);
        self.grid = Some((extent, DMatrix::from_fn(pts.len(), 2, |r, c| pts[r][c])));
        self.grid_outputs = None;
    }

    /// The grid's inputs, for [`read_back`].
    pub fn grid_inputs(&self) -> Option<DMatrix<f64>> {
        self.grid.as_ref().map(|(_, x)| x.clone())
    }

    /// Submit `k` steps and take the trainer out for the readback; `None` if busy. The caller
    /// runs [`read_back`] on it and gives it back with [`GpuRun::finish`].
    pub fn submit(&mut self, k: usize) -> Option<Result<GpuTrainer, String>> {
        let mut trainer = self.trainer.take()?;
        match trainer.steps(k) {
            Ok(_) => Some(Ok(trainer)),
            Err(e) => {
                let msg = e.to_string();
                self.trainer = Some(trainer);
                Some(Err(msg))
            }
        }
    }

    /// The trainer is back with a successful readback: take the new snapshot.
    pub fn finish(&mut self, mut trainer: GpuTrainer, snapshot: Snapshot) -> Result<(), String> {
        let lr = self.lr_pending.take();
        if let Some(lr) = lr {
            trainer.set_lr(lr).map_err(|e| e.to_string())?;
        }
        self.trainer = Some(trainer);
        self.history.extend(snapshot.new_records);
        self.params = snapshot.params;
        self.train = snapshot.train;
        self.test = snapshot.test;
        self.grid_outputs = snapshot.grid;
        Ok(())
    }

    /// The trainer is back and its run diverged: the run stops with the GPU trainer's message.
    pub fn stop(&mut self, trainer: GpuTrainer, error: String) {
        self.trainer = Some(trainer);
        self.error = Some(error);
    }

    /// A CPU trainer at the last read-back state (parameters and history), for the device-loss
    /// fallback. The optimizer moments and the batch order restart, as after an import.
    pub fn to_cpu(&self) -> Result<Trainer, String> {
        let mut cpu = Trainer::new(self.config.clone())?;
        cpu.restore(self.params.clone(), self.history.clone())?;
        Ok(cpu)
    }
}

/// Read back what the submitted steps produced: the new history records (from index `from`),
/// the parameters and the whole-set losses. A divergence the trainer found is a `Run` error,
/// anything else (device lost, mapping failed) a `Device` error.
pub async fn read_back(trainer: &mut GpuTrainer, from: usize, grid: Option<DMatrix<f64>>) -> Result<Snapshot, ReadbackError> {
    if let Err(e) = trainer.read_history().await {
        return Err(match trainer.error() {
            Some(run_error) => ReadbackError::Run(run_error.to_string()),
            None => ReadbackError::Device(e.to_string()),
        });
    }
    let device = |e: concord_gpu::GpuError| ReadbackError::Device(e.to_string());
    let params = trainer.params().await.map_err(device)?;
    let train = trainer.train_losses().await.map_err(device)?;
    let test = trainer.test_losses().await.map_err(device)?;
    let grid = match grid {
        Some(x) => Some(trainer.predict(&x).await.map_err(device)?),
        None => None,
    };
    trainer.gpu().check().map_err(device)?;
    let new_records = trainer.history().get(from..).unwrap_or(&[]).to_vec();
    Ok(Snapshot { new_records, params, train, test, grid })
}

impl TrainBackend for GpuRun {
    fn kind(&self) -> &'static str {
        "webgpu"
    }
    fn objective(&self) -> Option<Box<dyn concord_core::landscape::Objective + '_>> {
        Some(self.cpu_twin.objective())
    }
    fn train_set(&self) -> Option<(&DMatrix<f64>, &[concord_core::model::Target])> {
        self.cpu_twin.train_set()
    }
    fn step(&mut self) -> Result<(), String> {
        Err("a GPU run steps through the arena's submit/readback cycle".into())
    }
    fn set_lr(&mut self, lr: f64) -> Result<(), String> {
        self.config.optimizer = self.config.optimizer.with_lr(lr);
        match &mut self.trainer {
            Some(t) => t.set_lr(lr).map_err(|e| e.to_string()),
            // Busy: `finish` applies it when the trainer is back.
            None => {
                self.lr_pending = Some(lr);
                Ok(())
            }
        }
    }
    fn train_losses(&self) -> Result<Vec<f64>, String> {
        Ok(self.train.clone())
    }
    fn history(&self) -> &[StepRecord] {
        &self.history
    }
    fn test_losses(&self) -> Option<Vec<f64>> {
        self.test.clone()
    }
    fn params(&self) -> Option<&[f64]> {
        Some(&self.params)
    }
    fn mlp(&self) -> Option<&Mlp> {
        Some(&self.mlp)
    }
    /// The last read-back state, in the CPU trainer's record shape.
    fn record(&self) -> Option<RunRecord> {
        Some(RunRecord {
            config: self.config.clone(),
            task_names: self.task_names.clone(),
            steps_done: self.history.len(),
            params: self.params.clone(),
            history: self.history.clone(),
            final_train_losses: self.train.clone(),
            final_test_losses: self.test.clone(),
            error: self.error.clone(),
        })
    }
    fn restore(&mut self, record: RunRecord) -> Result<(), String> {
        let RunRecord { params, history, final_train_losses, final_test_losses, .. } = record;
        // The CPU trainer validates and gives the losses at the restored parameters; the saved
        // losses win when they fit (a GPU run's own, evaluated in f32, so the restored state
        // reads exactly as the exported one).
        let mut cpu = Trainer::new(self.config.clone())?;
        cpu.restore(params.clone(), history.clone())?;
        let trainer = self.trainer.as_mut().ok_or("the run is busy reading back")?;
        trainer.restore(params.clone(), history.clone()).map_err(|e| e.to_string())?;
        let m = self.task_names.len();
        let fits = |l: &[f64]| l.len() == m && l.iter().all(|v| v.is_finite());
        self.train = if fits(&final_train_losses) { final_train_losses } else { cpu.train_losses()? };
        self.test = match (final_test_losses, cpu.test_losses().transpose()?) {
            (Some(saved), Some(_)) if fits(&saved) => Some(saved),
            (_, computed) => computed,
        };
        self.params = params;
        self.history = history;
        self.error = None;
        Ok(())
    }
    fn grid_outputs(&self, extent: f64) -> Option<&[DMatrix<f64>]> {
        match (&self.grid, &self.grid_outputs) {
            (Some((e, _)), Some(outs)) if *e == extent => Some(outs),
            _ => None,
        }
    }
    fn as_gpu(&mut self) -> Option<&mut GpuRun> {
        Some(self)
    }
}
