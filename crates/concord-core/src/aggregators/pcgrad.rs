//! PCGrad (Yu et al. 2020, Alg. 1), torchjd `_pcgrad.py` semantics, in Gram form.
//!
//! For each task i, start from c = e_i (so Jᵀc = g_i) and visit the other tasks j in a random
//! order: whenever the current projection conflicts with g_j, i.e. (Gc)_j < 0, remove that
//! component: c_j −= (Gc)_j / G_jj. The weights are w = Σ_i c⁽ⁱ⁾, so d = Jᵀw is the **sum** of
//! the projected gradients (torchjd and the paper; CAGrad's `toy.py` takes the mean).
//! Not non-conflicting; linear under scaling; weighted. For m = 2 the order does not matter.
//!
//! The visiting order comes from [`visit_order`], not from `rand`, because the WGSL kernel must
//! draw exactly the same permutations.
use super::numerics::pow2_rescaled;
use super::registry::Property::{No, Yes};
use super::registry::{props, AggregatorInfo};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "pcgrad",
    label: "PCGrad",
    description: "Each gradient projected off the ones it conflicts with (random visiting order, seeded), summed.",
    params: &[],
    properties: props(
        No,
        Yes,
        Yes,
        Some("the sum of the projected gradients (torchjd, the paper); the order matters only for m ≥ 3"),
    ),
    gramian_weighted: true,
    stateful: false,
    seeded: true,
    needs_losses: false,
};

/// PCGrad weighting. Carries a call counter so that each call draws fresh visiting orders, as
/// torchjd draws a fresh `torch.randperm` for every task on every call.
#[derive(Clone, Debug)]
pub struct PcGrad {
    seed: u64,
    calls: u64,
}

impl PcGrad {
    /// `seed` is truncated to its low 32 bits (`seed as u32`), the width the WGSL kernel uses.
    pub fn new(seed: u64) -> Self {
        PcGrad { seed, calls: 0 }
    }

    /// The seed as given to [`PcGrad::new`].
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many times `weights` ran since construction or the last `reset`: the `call` index
    /// (as `u32`, wrapping) that the next call passes to [`visit_order`].
    pub fn calls(&self) -> u64 {
        self.calls
    }
}

/// The PCG hash (Jarzynski & Olano 2020, "Hash Functions for GPU Rendering"), all-u32 and
/// wrapping. A hash rather than rand_chacha because WGSL must reproduce it bit for bit.
pub fn pcg_hash(x: u32) -> u32 {
    let state = x.wrapping_mul(747796405).wrapping_add(2891336453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
    (word >> 22) ^ word
}

/// The order in which task `task` visits the others on call `call`: a Fisher–Yates shuffle of
/// 0..m driven by [`pcg_hash`]. The entry equal to `task` is skipped by the caller.
///
/// A hash rather than rand_chacha because WGSL must reproduce it: the key depends only on
/// (seed, call, task), so each GPU invocation can compute its own order independently.
pub fn visit_order(seed: u32, call: u32, task: u32, m: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..m).collect();
    let mut key = pcg_hash(seed ^ pcg_hash(call.wrapping_mul(16).wrapping_add(task)));
    for k in (1..m).rev() {
        key = pcg_hash(key);
        let j = (key % (k as u32 + 1)) as usize;
        order.swap(k, j);
    }
    order
}

impl Weighting for PcGrad {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let call = self.calls as u32;
        self.calls = self.calls.wrapping_add(1);
        // Projections are ratios of Gramian entries, so an exact power-of-two rescale changes
        // nothing but keeps (Gc)_j away from overflow.
        let Some(g) = pow2_rescaled(gram) else {
            // Non-finite G: no projection can be computed; fall back to the plain sum.
            return DVector::from_element(m, 1.0);
        };
        let mut w = DVector::zeros(m);
        let mut c = DVector::zeros(m);
        for i in 0..m {
            c.fill(0.0);
            c[i] = 1.0;
            for j in visit_order(self.seed as u32, call, i as u32, m) {
                if j == i {
                    continue;
                }
                // (Gc)_j summed in index order, as the kernel does.
                let mut inner = 0.0;
                for k in 0..m {
                    inner += g[(j, k)] * c[k];
                }
                // G_jj = 0 means g_j = 0: nothing to project onto (torchjd would divide by 0).
                if inner < 0.0 && g[(j, j)] > 0.0 {
                    c[j] -= inner / g[(j, j)];
                }
            }
            w += &c;
        }
        w
    }

    fn reset(&mut self) {
        self.calls = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{j_base, Normal};
    use super::super::{gram, Aggregator};
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn pcg_hash_golden() {
        // python3: M=0xFFFFFFFF
        //   def h(x): s=(x*747796405+2891336453)&M; w=(((s>>((s>>28)+4))^s)*277803737)&M; return ((w>>22)^w)&M
        //   [h(x) for x in (0, 1, 2, 0xFFFFFFFF)]
        assert_eq!(pcg_hash(0), 129708002);
        assert_eq!(pcg_hash(1), 2831084092);
        assert_eq!(pcg_hash(2), 2055130248);
        assert_eq!(pcg_hash(u32::MAX), 3861530882);
    }

    #[test]
    fn visit_order_golden() {
        // The golden the WGSL kernel is tested against. Computed independently in Python with h
        // as in `pcg_hash_golden` and
        //   def vo(seed, call, task, m):
        //       o = list(range(m)); key = h(seed ^ h((call*16 + task) & M))
        //       for k in range(m-1, 0, -1):
        //           key = h(key); j = key % (k+1); o[k], o[j] = o[j], o[k]
        //       return o
        assert_eq!(visit_order(0, 0, 0, 3), vec![0, 2, 1]);
        assert_eq!(visit_order(0, 0, 1, 3), vec![2, 1, 0]);
        assert_eq!(visit_order(0, 1, 0, 3), vec![1, 2, 0]);
        assert_eq!(visit_order(1, 0, 0, 2), vec![1, 0]);
        assert_eq!(visit_order(7, 0, 0, 4), vec![2, 1, 0, 3]);
        assert_eq!(visit_order(42, 7, 3, 8), vec![7, 5, 6, 0, 3, 4, 2, 1]);
        assert_eq!(visit_order(0xDEAD_BEEF, 123456, 5, 16), vec![15, 6, 9, 2, 5, 11, 1, 14, 0, 10, 7, 13, 4, 8, 12, 3]);
    }

    #[test]
    fn visit_order_is_a_permutation() {
        for m in 0..=16usize {
            for (seed, call, task) in [(0u32, 0u32, 0u32), (1, 2, 3), (u32::MAX, u32::MAX, 15), (99, 5, 0)] {
                let mut o = visit_order(seed, call, task, m);
                o.sort_unstable();
                assert_eq!(o, (0..m).collect::<Vec<_>>(), "m={m} seed={seed} call={call} task={task}");
            }
        }
    }

    #[test]
    fn pcgrad_matches_torchjd_on_j_base() {
        let j = j_base();
        let a = PcGrad::new(0).aggregate(&j);
        let w = a.weights.unwrap();
        // Hand check (aggregators.md §6): w = [1 + 22/18, 1 + 22/38].
        assert_abs_diff_eq!(w[0], 1.0 + 22.0 / 18.0, epsilon = 1e-12);
        assert_abs_diff_eq!(w[1], 1.0 + 22.0 / 38.0, epsilon = 1e-12);
        assert_abs_diff_eq!(w, DVector::from_vec(vec![2.2222, 1.5789]), epsilon = 1e-4);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.5848, 3.8012, 3.8012]), epsilon = 1e-4);
    }

    /// m = 2 needs no order: w₁ = 1 + max(0, −G₁₂)/G₁₁ (g₁ projected off g₂ contributes
    /// −G₁₂/G₂₂ to w₂, and vice versa), i.e. w = [1 + (−G₁₂)₊/G₁₁, 1 + (−G₁₂)₊/G₂₂].
    /// This is torchjd's test "PCGrad = UPGrad(ones, no normalize/regularize) on 2 × n".
    #[test]
    fn two_tasks_match_the_closed_form() {
        let mut rng = Normal::new(11);
        let mut pc = PcGrad::new(3);
        for n in [1, 2, 5, 7, 9, 15, 27, 68, 102, 57, 1200] {
            for _ in 0..5 {
                let j = rng.matrix(2, n);
                let g = gram(&j);
                let neg = (-g[(0, 1)]).max(0.0);
                let expected = DVector::from_vec(vec![1.0 + neg / g[(0, 0)], 1.0 + neg / g[(1, 1)]]);
                let w = pc.weights(&g);
                assert_abs_diff_eq!(w, expected, epsilon = 1e-9 * expected.amax());
            }
        }
    }

    /// Three unit gradients at 120° conflict pairwise, so the order matters.
    fn mercedes() -> DMatrix<f64> {
        let s = 3f64.sqrt() / 2.0;
        DMatrix::from_row_slice(3, 2, &[1.0, 0.0, -0.5, s, -0.5, -s])
    }

    #[test]
    fn deterministic_given_seed_and_call() {
        let mut rng = Normal::new(21);
        let j = rng.matrix(5, 3);
        let g = gram(&j);
        let (mut a, mut b) = (PcGrad::new(9), PcGrad::new(9));
        let first: Vec<_> = (0..6).map(|_| a.weights(&g)).collect();
        let second: Vec<_> = (0..6).map(|_| b.weights(&g)).collect();
        assert_eq!(first, second);
        assert_eq!(a.calls(), 6);
        // reset() restarts the stream.
        Weighting::reset(&mut a);
        assert_eq!(a.calls(), 0);
        let again: Vec<_> = (0..6).map(|_| a.weights(&g)).collect();
        assert_eq!(first, again);
    }

    #[test]
    fn order_changes_across_calls_when_it_matters() {
        let g = gram(&mercedes());
        let mut pc = PcGrad::new(0);
        let ws: Vec<_> = (0..8).map(|_| pc.weights(&g)).collect();
        let distinct = ws.iter().filter(|w| (*w - &ws[0]).amax() > 1e-9).count();
        assert!(distinct > 0, "eight calls gave the same weights: {ws:?}");
        // And a different seed gives a different sequence.
        let mut other = PcGrad::new(1);
        let ws1: Vec<_> = (0..8).map(|_| other.weights(&g)).collect();
        assert_ne!(ws, ws1);
    }

    #[test]
    fn matches_a_direct_projection_with_the_same_orders() {
        // Project the actual gradient vectors (not Gram form) in the same visiting orders.
        let mut rng = Normal::new(77);
        for (m, n) in [(3, 4), (5, 2), (8, 20)] {
            let j = rng.matrix(m, n);
            let mut pc = PcGrad::new(123);
            let _ = pc.weights(&gram(&j)); // call 0
            let d = pc.aggregate(&j).update; // call 1
            let mut expected = DVector::zeros(n);
            for i in 0..m {
                let mut gi: DVector<f64> = j.row(i).transpose();
                for jj in visit_order(123, 1, i as u32, m) {
                    if jj == i {
                        continue;
                    }
                    let gj: DVector<f64> = j.row(jj).transpose();
                    let dot = gi.dot(&gj);
                    if dot < 0.0 {
                        gi -= &gj * (dot / gj.norm_squared());
                    }
                }
                expected += gi;
            }
            assert_abs_diff_eq!(d, expected, epsilon = 1e-9 * (1.0 + expected.amax()));
        }
    }

    #[test]
    fn zero_rows_are_skipped() {
        // g₂ = 0: G₂₂ = 0 must not divide.
        let j = DMatrix::from_row_slice(3, 2, &[1.0, 0.0, 0.0, 0.0, -1.0, 0.5]);
        let w = PcGrad::new(0).weights(&gram(&j));
        assert!(w.iter().all(|v| v.is_finite()));
        assert_eq!(w[1], 1.0);
    }
}
