//! EW (LibMTL `EW.py`): L_total = Σ_i L_i, so every weight is **1** (the LibMTL docstring says
//! 1/T, but the code sums). No state, no epochs.

use super::{LossWeighting, WeightingContext, WeightingDescription};

/// This weighting's entry in the registry (`concord methods`, parameter parsing).
pub(crate) fn description() -> WeightingDescription {
    WeightingDescription {
        name: "ew",
        label: "EW",
        summary: "Σ L_i, every weight 1",
        epochs: "none",
        params: vec![],
        needs_jacobian: false,
        needs_losses_after_step: false,
    }
}

#[derive(Clone, Debug)]
pub struct Ew {
    m: usize,
}

impl Ew {
    pub fn new(m: usize) -> Self {
        Ew { m }
    }
}

impl LossWeighting for Ew {
    fn name(&self) -> &'static str {
        "ew"
    }

    fn num_tasks(&self) -> usize {
        self.m
    }

    fn weights(&mut self, ctx: &WeightingContext) -> Vec<f64> {
        vec![1.0; ctx.losses.len()]
    }

    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ew_weights_are_all_one() {
        let mut ew = Ew::new(3);
        assert_eq!(ew.weights(&WeightingContext::new(&[0.1, -5.0, 1e9], 0, 0)), vec![1.0; 3]);
    }
}
