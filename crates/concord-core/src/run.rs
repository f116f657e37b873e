//! A run: problem + start + method + optimizer + steps → trajectory.
//!
//! `ToyRun` advances step by step (the UI animates it); `run` drives one to the end.

use crate::aggregators::{Aggregator, Method};
use crate::optim::{Optimizer, OptimizerKind};
use crate::problems::{Problem, ProblemKind};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// Everything that defines a run on a 2-D toy problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub problem: ProblemKind,
    pub start: [f64; 2],
    pub method: Method,
    pub optimizer: OptimizerKind,
    pub steps: usize,
    /// Seed for methods that draw random numbers.
    pub seed: u64,
    /// Record the position every this many steps (the start and the end are always recorded).
    pub record_every: usize,
}

impl RunConfig {
    /// The published setting: Adam at lr 1e-3, 100 000 steps.
    pub fn published(problem: ProblemKind, start: [f64; 2], method: Method) -> Self {
        RunConfig {
            problem,
            start,
            method,
            optimizer: OptimizerKind::adam(1e-3),
            steps: 100_000,
            seed: 0,
            record_every: 100,
        }
    }
}

/// The recorded path of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// (step, x₁, x₂) every `record_every` steps, plus the start and the last step.
    pub points: Vec<(usize, [f64; 2])>,
    pub final_point: [f64; 2],
    pub final_losses: Vec<f64>,
    pub steps: usize,
    /// Set when a step produced a non-finite value; the run stopped at the last finite point.
    pub error: Option<String>,
}

/// A run in progress.
pub struct ToyRun {
    config: RunConfig,
    problem: Box<dyn Problem + Send>,
    aggregator: Box<dyn Aggregator>,
    optimizer: Optimizer,
    x: Vec<f64>,
    steps_done: usize,
    error: Option<String>,
}

impl ToyRun {
    pub fn new(config: RunConfig) -> Self {
        let problem = Box::new(config.problem.toy());
        ToyRun {
            aggregator: config.method.build(config.seed),
            optimizer: config.optimizer.build(problem.dim()),
            x: config.start.to_vec(),
            problem,
            config,
            steps_done: 0,
            error: None,
        }
    }

    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    pub fn position(&self) -> [f64; 2] {
        [self.x[0], self.x[1]]
    }

    pub fn steps_done(&self) -> usize {
        self.steps_done
    }

    /// Why the run stopped early, if it did.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Change the learning rate without resetting the optimizer's state.
    pub fn set_lr(&mut self, lr: f64) {
        self.optimizer.set_lr(lr);
        self.config.optimizer = self.config.optimizer.with_lr(lr);
    }

    /// One step: J at x → aggregate → optimizer step. Returns false (and keeps the last finite
    /// point) once a non-finite value appears.
    pub fn step(&mut self) -> bool {
        if self.error.is_some() {
            return false;
        }
        let rows = self.problem.jacobian(&self.x);
        let (m, n) = (rows.len(), self.x.len());
        let j = DMatrix::from_fn(m, n, |i, k| rows[i][k]);
        let d = self.aggregator.aggregate(&j).update;
        let mut next = self.x.clone();
        self.optimizer.step(&mut next, d.as_slice());
        if next.iter().all(|v| v.is_finite()) {
            self.x = next;
            self.steps_done += 1;
            true
        } else {
            self.error = Some(format!(
                "step {} produced a non-finite position; stopped at ({}, {})",
                self.steps_done + 1,
                self.x[0],
                self.x[1]
            ));
            false
        }
    }

    pub fn losses(&self) -> Vec<f64> {
        self.problem.losses(&self.x)
    }
}

/// Run to the end, calling `progress(steps_done)` now and then (every 1% of the run).
pub fn run_with_progress(config: &RunConfig, mut progress: impl FnMut(usize)) -> Trajectory {
    let mut r = ToyRun::new(config.clone());
    let every = config.record_every.max(1);
    let tick = (config.steps / 100).max(1);
    let mut points = vec![(0, r.position())];
    while r.steps_done() < config.steps && r.step() {
        let s = r.steps_done();
        if s.is_multiple_of(every) || s == config.steps {
            points.push((s, r.position()));
        }
        if s.is_multiple_of(tick) {
            progress(s);
        }
    }
    if points.last().map(|p| p.0) != Some(r.steps_done()) {
        points.push((r.steps_done(), r.position()));
    }
    Trajectory {
        final_point: r.position(),
        final_losses: r.losses(),
        steps: r.steps_done(),
        error: r.error().map(str::to_owned),
        points,
    }
}

pub fn run(config: &RunConfig) -> Trajectory {
    run_with_progress(config, |_| {})
}
