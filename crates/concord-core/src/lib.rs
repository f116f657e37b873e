//! concord-core: pure math, no I/O, no GPU.
//!
//! The CPU reference for everything Concord computes: analytic toy problems with their
//! per-task gradients, gradient aggregators in the Gramian-weighted shape
//! (`gram(J) → weighting(G) → combine(J, w)`), loss weightings, optimizers, models, and THE
//! trainer (`train`): one run = data source + model + method + optimizer + steps + seed, where
//! the analytic toys are a data source whose parameters are the point x itself. Every engine
//! (this CPU trainer, concord-gpu's) implements `train::Backend`.

// `!(x > 0.0)` is the house idiom for "not a positive number": it is true for NaN as well,
// which is the point (a NaN must take the guarded branch).
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod aggregators;
pub mod data;
pub mod dynamics;
pub mod landscape;
pub mod merge;
pub mod method;
pub mod metrics;
pub mod model;
mod multiversion;
pub mod optim;
pub mod pause;
pub mod problems;
pub mod sample_weighting;
pub mod train;
pub mod weightings;

pub use aggregators::{Aggregation, Aggregator, AggregatorSpec};
pub use method::MethodSpec;
pub use optim::Optimizer;
pub use problems::{Problem, ProblemKind};
pub use train::{train, Backend, RunRecord, TrainConfig, TrainOptimizer, Trainer};
pub use weightings::WeightingSpec;
