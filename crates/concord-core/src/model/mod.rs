//! The multi-task MLP: a shared trunk, one linear head per task, per-task losses, and
//! hand-written backprop to the per-task Jacobian of the shared parameters.

mod activation;
mod config;
pub mod fast;
mod layout;
mod loss;
mod mlp;
pub mod moe;
mod point_conflict;
mod sample_stage;
#[cfg(test)]
mod tests;

pub use activation::{sigmoid, Activation};
pub use config::{
    HeadConfig, MlpConfig, MAX_HIDDEN_LAYERS, MAX_INPUT_DIM, MAX_OUTPUT_DIM, MAX_TASKS, MAX_WIDTH, MIN_TASKS,
};
pub use layout::{init_params, LayerSlice, Layout};
pub use loss::{check_target, loss_and_grad, LossKind, Target};
pub use mlp::{Gradients, Mlp};
pub use point_conflict::{PointGradient, PointGrams};
pub use sample_stage::StageGradients;
