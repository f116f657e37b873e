//! TF Playground's trunk options of a run: L1/L2 regularisation with a rate, and the
//! initialisation (Concord's default, all zeros, or TF's U(−0.5, 0.5) weights with 0.1 biases).
//!
//! Where the penalty enters a multi-task step: R(w) is shared, not a task, so it takes no part
//! in the Jacobian, the loss weighting or the aggregator. Its gradient rate·∂R/∂w (weights only,
//! never biases — as TF does) is added to the aggregated update d after gradient clipping and
//! before the optimizer, so the optimizer (SGD, Adam, …) sees d + rate·∂R/∂w. TF's SGD does the
//! same in one line (w −= lr·(acc/n) then w −= lr·rate·∂R/∂w); TF's L1 also marks a weight that
//! crosses 0 as a dead link, which Concord does not.

use crate::model::Layout;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// TF Playground's regularisation-rate menu.
pub const TF_REGULARIZATION_RATES: [f64; 10] = [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0];

/// The penalty on the weights: L1 = Σ|w| (∂ = sign w, 0 at 0), L2 = ½Σw² (∂ = w).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Penalty {
    L1,
    L2,
}

impl Penalty {
    /// TF's name (the `regularization` URL value).
    pub fn name(self) -> &'static str {
        match self {
            Penalty::L1 => "L1",
            Penalty::L2 => "L2",
        }
    }

    pub fn parse(text: &str) -> Option<Penalty> {
        match text {
            "L1" => Some(Penalty::L1),
            "L2" => Some(Penalty::L2),
            _ => None,
        }
    }

    fn value(self, w: f64) -> f64 {
        match self {
            Penalty::L1 => w.abs(),
            Penalty::L2 => 0.5 * w * w,
        }
    }

    fn derivative(self, w: f64) -> f64 {
        match self {
            Penalty::L1 if w == 0.0 => 0.0,
            Penalty::L1 => w.signum(),
            Penalty::L2 => w,
        }
    }
}

/// rate · R(weights), added to the shared update as rate · ∂R/∂w.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Regularization {
    pub penalty: Penalty,
    pub rate: f64,
}

impl Regularization {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            return Err(format!("the regularization rate must be a finite number ≥ 0, got {}", self.rate));
        }
        Ok(())
    }

    /// rate · R over the weight entries (`mask[i]`: entry i is a weight, not a bias).
    pub fn penalty(&self, params: &[f64], mask: &[bool]) -> f64 {
        self.rate * params.iter().zip(mask).filter(|(_, &m)| m).map(|(&w, _)| self.penalty.value(w)).sum::<f64>()
    }

    /// `update += rate · ∂R/∂w` on the weight entries.
    pub fn add_gradient(&self, params: &[f64], mask: &[bool], update: &mut [f64]) {
        for ((u, &w), &m) in update.iter_mut().zip(params).zip(mask) {
            if m {
                *u += self.rate * self.penalty.derivative(w);
            }
        }
    }
}

/// Which entries of an MLP's flat parameters are weights (trunk and heads), not biases.
pub fn weight_mask(layout: &Layout) -> Vec<bool> {
    let mut mask = vec![false; layout.total_len];
    for slice in layout.trunk.iter().chain(&layout.heads) {
        mask[slice.weight.clone()].iter_mut().for_each(|m| *m = true);
    }
    mask
}

/// How a model's parameters start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// Concord's seeded Glorot/He draw (`model::init_params`).
    #[default]
    Default,
    /// Every weight and bias 0 (TF's `initZero`): all units of a layer stay identical.
    Zero,
    /// TF Playground's: weights U(−0.5, 0.5) from the run's seed, biases 0.1.
    TfUniform,
}

impl Init {
    pub fn name(self) -> &'static str {
        match self {
            Init::Default => "default",
            Init::Zero => "zero",
            Init::TfUniform => "tf-uniform",
        }
    }

    pub fn parse(text: &str) -> Option<Init> {
        [Init::Default, Init::Zero, Init::TfUniform].into_iter().find(|i| i.name() == text)
    }

    pub fn is_default(&self) -> bool {
        *self == Init::Default
    }

    /// Overwrite `params` (the default draw) by this scheme; `weights` marks the weight entries.
    pub fn apply(self, params: &mut [f64], weights: &[bool], seed: u64) {
        match self {
            Init::Default => {}
            Init::Zero => params.iter_mut().for_each(|p| *p = 0.0),
            Init::TfUniform => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                for (p, &w) in params.iter_mut().zip(weights) {
                    *p = if w { rng.random_range(-0.5..0.5) } else { 0.1 };
                }
            }
        }
    }
}
