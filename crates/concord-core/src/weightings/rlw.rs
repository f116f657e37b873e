//! RLW, random loss weighting (LibMTL `RLW.py`): w = softmax(z) with a fresh z ~ N(0, I_m) on
//! every step (weights on the simplex). torch's stream cannot be reproduced; z comes from a
//! seeded ChaCha8 stream (Box–Muller) and `reset` restarts it. No epochs.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{softmax, LossWeighting, WeightingContext, WeightingDescription};

/// This weighting's entry in the registry (`concord methods`, parameter parsing).
pub(crate) fn description() -> WeightingDescription {
    WeightingDescription {
        name: "rlw",
        label: "RLW",
        summary: "softmax(z), z ~ N(0, I) fresh every step (seeded)",
        epochs: "none",
        params: vec![],
        needs_jacobian: false,
        needs_losses_after_step: false,
    }
}

#[derive(Clone, Debug)]
pub struct Rlw {
    m: usize,
    seed: u64,
    rng: ChaCha8Rng,
}

impl Rlw {
    pub fn new(m: usize, seed: u64) -> Self {
        Rlw { m, seed, rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    fn standard_normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1]: keeps ln finite
        let u2: f64 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

impl LossWeighting for Rlw {
    fn name(&self) -> &'static str {
        "rlw"
    }

    fn num_tasks(&self) -> usize {
        self.m
    }

    fn weights(&mut self, ctx: &WeightingContext) -> Vec<f64> {
        if ctx.losses.len() != self.m {
            return vec![1.0; ctx.losses.len()];
        }
        let z: Vec<f64> = (0..ctx.losses.len()).map(|_| self.standard_normal()).collect();
        softmax(&z)
    }

    fn reset(&mut self) {
        self.rng = ChaCha8Rng::seed_from_u64(self.seed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    fn draw(r: &mut Rlw, steps: usize) -> Vec<Vec<f64>> {
        (0..steps).map(|s| r.weights(&WeightingContext::new(&[1.0; 4], s as u64, 0))).collect()
    }

    #[test]
    fn rlw_is_reproducible_from_its_seed_and_resets() {
        let mut a = Rlw::new(4, 7);
        let mut b = Rlw::new(4, 7);
        let wa = draw(&mut a, 5);
        assert_eq!(wa, draw(&mut b, 5));
        a.reset();
        assert_eq!(wa, draw(&mut a, 5));
        assert_ne!(wa, draw(&mut Rlw::new(4, 8), 5));
        // Fresh draws each step.
        assert_ne!(wa[0], wa[1]);
    }

    #[test]
    fn rlw_weights_lie_on_the_simplex() {
        let mut r = Rlw::new(4, 0);
        for w in draw(&mut r, 200) {
            assert!(w.iter().all(|&x| x > 0.0 && x < 1.0));
            assert_abs_diff_eq!(w.iter().sum::<f64>(), 1.0, epsilon = 1e-12);
        }
    }
}
