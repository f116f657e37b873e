//! The model choice of a run: the plain MLP (`moe: None`), or the same MLP trunk with an MoE
//! block on top (`moe: Some(MoeSpec)`). The MoE model takes the MLP config's input width,
//! activation and heads; the MLP's hidden layers become the dense pre-layers before the block.

use crate::model::moe::{AuxWeights, MoeConfig, RouterKind};
use crate::model::MlpConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoeSpec {
    pub router: RouterKind,
    pub experts: usize,
    /// Width of each expert's hidden layer.
    pub expert_hidden: usize,
    #[serde(default)]
    pub aux: AuxWeights,
}

impl MoeSpec {
    /// Defaults: 4 experts of hidden width 8, no aux losses.
    pub fn new(router: RouterKind) -> Self {
        MoeSpec { router, experts: 4, expert_hidden: 8, aux: AuxWeights::default() }
    }

    pub fn model_config(&self, mlp: &MlpConfig) -> MoeConfig {
        MoeConfig {
            input_dim: mlp.input_dim,
            hidden: mlp.hidden.clone(),
            activation: mlp.activation,
            experts: self.experts,
            expert_hidden: self.expert_hidden,
            router: self.router,
            aux: self.aux,
            heads: mlp.heads.clone(),
            head_init_scale: mlp.head_init_scale,
            tied_head_init: mlp.tied_head_init,
        }
    }
}
