//! Random loss weighting (RLW; Lin et al. 2022, Alg. 2), torchjd `_random.py` semantics:
//! w = softmax(z) with a fresh z ~ N(0, I_m) on every call. Not non-conflicting; linear under
//! scaling (for fixed draws); weighted.
//!
//! torch's RNG stream cannot be reproduced, so z comes from a seeded ChaCha8 stream (Box–Muller,
//! as rand_distr is not a dependency); `reset` restarts it, so a run is reproducible from its seed.
use super::registry::Property::{No, Yes};
use super::registry::{props, AggregatorInfo};
use super::Weighting;
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "random",
    label: "Random",
    description: "Random loss weighting (RLW): w = softmax(z), a fresh z ~ N(0, I) each call (seeded).",
    params: &[],
    properties: props(No, Yes, Yes, Some("linear for fixed draws")),
    gramian_weighted: true,
    stateful: false,
    seeded: true,
    needs_losses: false,
};

#[derive(Clone, Debug)]
pub struct Random {
    seed: u64,
    rng: ChaCha8Rng,
}

impl Random {
    pub fn new(seed: u64) -> Self {
        Random { seed, rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn standard_normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1]: keeps ln finite
        let u2: f64 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// softmax(z), shifted by max z so that exp never overflows.
pub(crate) fn softmax(z: &DVector<f64>) -> DVector<f64> {
    if z.is_empty() {
        return z.clone();
    }
    let max = z.max();
    let e = z.map(|x| (x - max).exp());
    let sum = e.sum();
    e / sum
}

/// The RLW weights of concord-gpu's random stream (`shaders/weights_random.wgsl`) for call
/// `call` of an instance seeded with `seed`: with h = [`super::pcg_hash`],
/// u1 = 1 − (h(seed ^ h(64·call + 2i)) >> 8)·2⁻²⁴, u2 = (h(seed ^ h(64·call + 2i + 1)) >> 8)·2⁻²⁴,
/// z_i = √(−2 ln u1)·cos(2π u2), w = softmax(z). The GPU cannot run ChaCha8 cheaply, so the GPU
/// Random weighting uses this stream instead; this function is its f64 reference (same draws,
/// so the two agree to f32 rounding). m ≤ 32 keeps the indices of different calls apart.
pub fn rlw_pcg_weights(seed: u32, call: u32, m: usize) -> DVector<f64> {
    use super::pcg_hash;
    let uniform = |index: u32| f64::from(pcg_hash(seed ^ pcg_hash(index)) >> 8) / 16_777_216.0;
    let z = DVector::from_fn(m, |i, _| {
        let base = call.wrapping_mul(64).wrapping_add(2 * i as u32);
        let u1 = 1.0 - uniform(base);
        let u2 = uniform(base.wrapping_add(1));
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    });
    softmax(&z)
}

impl Weighting for Random {
    /// Uses only m from the Gramian: the weights do not depend on J.
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let z = DVector::from_fn(m, |_, _| self.standard_normal());
        softmax(&z)
    }

    fn reset(&mut self) {
        self.rng = ChaCha8Rng::seed_from_u64(self.seed);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::j_base;
    use super::super::Aggregator;
    use super::*;

    #[test]
    fn pcg_stream_golden() {
        // Computed independently in Python (math.log/cos/exp on the same pcg_hash bits).
        let w = rlw_pcg_weights(1, 0, 3);
        let want = [0.3321557231026716, 0.23055812860374755, 0.4372861482935808];
        for i in 0..3 {
            assert!((w[i] - want[i]).abs() < 1e-14, "{w}");
        }
        let w = rlw_pcg_weights(42, 5, 4);
        let want = [0.44056450665420743, 0.29311627681356967, 0.0929225410311719, 0.173396675501051];
        for i in 0..4 {
            assert!((w[i] - want[i]).abs() < 1e-14, "{w}");
        }
    }
    use approx::assert_abs_diff_eq;

    /// torchjd's value uses torch's draw z (softmax → [0.8623, 0.1377]); inject it.
    #[test]
    fn random_matches_torchjd_on_j_base_with_its_draw() {
        let w = DVector::from_vec(vec![0.8623, 0.1377]);
        let d = j_base().tr_mul(&w);
        assert_abs_diff_eq!(d, DVector::from_vec(vec![-2.6229, 1.0, 1.0]), epsilon = 1e-4);
        // softmax(z) for z = [ln 0.8623, ln 0.1377] reproduces it.
        let z = DVector::from_vec(vec![0.8623f64.ln(), 0.1377f64.ln()]);
        assert_abs_diff_eq!(softmax(&z), w, epsilon = 1e-12);
    }

    #[test]
    fn seeded_reset_and_on_the_simplex() {
        let g = DMatrix::identity(5, 5);
        let mut r = Random::new(7);
        let first: Vec<_> = (0..4).map(|_| r.weights(&g)).collect();
        assert_ne!(first[0], first[1]);
        for w in &first {
            assert!(w.iter().all(|&x| x > 0.0));
            assert_abs_diff_eq!(w.sum(), 1.0, epsilon = 1e-12);
        }
        Weighting::reset(&mut r);
        let again: Vec<_> = (0..4).map(|_| r.weights(&g)).collect();
        assert_eq!(first, again);
        let mut agg = Random::new(7);
        assert_eq!(agg.aggregate(&DMatrix::identity(5, 2)).weights.unwrap(), first[0]);
        assert!(softmax(&DVector::from_vec(vec![1e308, -1e308])).iter().all(|x| x.is_finite()));
    }
}
