//! concord-core: pure math, no I/O, no GPU.
//!
//! The CPU reference for everything Concord computes: analytic toy problems with their
//! per-task gradients, gradient aggregators in the Gramian-weighted shape
//! (`gram(J) → weighting(G) → combine(J, w)`), optimizers, and runs that turn a
//! problem + start + method + optimizer + step count into a trajectory.

pub mod aggregators;
pub mod data;
pub mod landscape;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod problems;
pub mod run;
pub mod train;
pub mod weightings;

pub use aggregators::{Aggregation, Aggregator, Method};
pub use optim::{Optimizer, OptimizerKind};
pub use problems::{Problem, ProblemKind};
pub use run::{run, run_with_progress, RunConfig, ToyRun, Trajectory};
pub use train::{train, RunRecord, TrainConfig, Trainer};
