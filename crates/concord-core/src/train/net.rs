//! The trained network: an MLP or an MoE model, behind the calls the trainer makes.

use crate::metrics::{layer_cosines, PairMatrix};
use crate::model::moe::{Moe, RoutingStats};
use crate::model::{Gradients, Mlp, Target};
use crate::sample_weighting::{SampleStageRecord, SampleWeightingSpec};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use std::ops::Range;

pub enum Net {
    Mlp(Mlp),
    Moe(Moe),
}

/// An MoE step's extras: routing statistics and the task-gradient cosine inside each expert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoeStepRecord {
    pub routing: RoutingStats,
    /// One m × m cosine matrix per expert, over that expert's parameters (`None` where a task
    /// sent the expert no token, so its gradient there is 0).
    #[serde(with = "crate::train::float_serde::pair_matrices")]
    pub expert_cosine: Vec<PairMatrix>,
}

pub struct NetGradients {
    /// With a sample-weighting stage, `shared_jacobian` is the stage's J′.
    pub tasks: Gradients,
    /// The plain J when a sample-weighting stage replaced it in `tasks` (the metrics are of J).
    pub raw_jacobian: Option<DMatrix<f64>>,
    pub stage: Option<SampleStageRecord>,
    /// Aux-loss gradient on the shared parameters (MoE only), added after aggregation.
    pub aux_grad: Option<Vec<f64>>,
    pub moe: Option<MoeStepRecord>,
}

impl Net {
    pub fn init_params(&self, seed: u64) -> Vec<f64> {
        match self {
            Net::Mlp(n) => n.init_params(seed),
            Net::Moe(n) => n.init_params(seed),
        }
    }

    pub fn losses(&self, params: &[f64], x: &DMatrix<f64>, y: &[Target]) -> Result<Vec<f64>, String> {
        match self {
            Net::Mlp(n) => n.losses(params, x, y),
            Net::Moe(n) => n.losses(params, x, y),
        }
    }

    /// [`Net::losses`], pausing between pieces (`crate::pause`).
    pub async fn losses_paused(&self, params: &[f64], x: &DMatrix<f64>, y: &[Target]) -> Result<Vec<f64>, String> {
        match self {
            Net::Mlp(n) => n.losses_paused(params, x, y).await,
            Net::Moe(n) => n.losses_paused(params, x, y).await,
        }
    }

    /// Ranges for per-layer metrics: the trunk layers, or the MoE's pre-layers, gates, experts.
    pub fn layer_ranges(&self) -> Vec<Range<usize>> {
        match self {
            Net::Mlp(n) => n.layout().trunk.iter().map(|s| s.range()).collect(),
            Net::Moe(n) => n.layout().shared_blocks().into_iter().map(|(_, r)| r).collect(),
        }
    }

    /// `noise_seed`: the MoE's routing noise for this step (noisy top-k only).
    pub fn gradients(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        y: &[Target],
        noise_seed: u64,
    ) -> Result<NetGradients, String> {
        crate::pause::finish(self.gradients_paused(params, x, y, noise_seed, None))
    }

    /// [`Net::gradients`], pausing between pieces (`crate::pause`).
    pub async fn gradients_paused(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        y: &[Target],
        noise_seed: u64,
        stage: Option<&StageStep>,
    ) -> Result<NetGradients, String> {
        match (self, stage) {
            (Net::Mlp(n), Some(s)) => {
                let g = n.stage_gradients_paused(params, x, y, &s.spec, s.step).await?;
                Ok(NetGradients {
                    tasks: g.gradients,
                    raw_jacobian: Some(g.raw_jacobian),
                    stage: Some(g.record),
                    aux_grad: None,
                    moe: None,
                })
            }
            (Net::Moe(_), Some(_)) => Err("sample weighting needs an MLP model".into()),
            (Net::Mlp(n), None) => Ok(NetGradients {
                tasks: n.gradients_paused(params, x, y).await?,
                raw_jacobian: None,
                stage: None,
                aux_grad: None,
                moe: None,
            }),
            (Net::Moe(n), None) => {
                let g = n.gradients_paused(params, x, y, Some(noise_seed)).await?;
                let ranges: Vec<Range<usize>> = n.layout().experts.iter().map(|e| e.range()).collect();
                let expert_cosine = layer_cosines(&g.tasks.shared_jacobian, &ranges);
                Ok(NetGradients {
                    tasks: g.tasks,
                    raw_jacobian: None,
                    stage: None,
                    aux_grad: Some(g.aux_grad),
                    moe: Some(MoeStepRecord { routing: g.stats, expert_cosine }),
                })
            }
        }
    }
}

/// A step's sample-weighting stage: the spec and the step's index in the run.
#[derive(Clone, Debug)]
pub struct StageStep {
    pub spec: SampleWeightingSpec,
    pub step: usize,
}
