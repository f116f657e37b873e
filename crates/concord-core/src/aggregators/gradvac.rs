//! Gradient Vaccine (Wang et al. 2021), torchjd `_gradvac.py` semantics, in Gram form.
//!
//! Row i of the coefficient matrix C (initially I) stores g_i^PC = Σ_k C_ik g_k. For each task i,
//! visit the other tasks j in a random order and compute the cosine
//!     φ = (C_i G)_j / (‖g_i^PC‖‖g_j‖ + eps),   ‖g_i^PC‖² = C_i G C_iᵀ.
//! If φ < φ̂_ij (the EMA target), raise it to φ̂_ij:
//!     C_ij += ‖g_i^PC‖(φ̂_ij√(1−φ²) − φ√(1−φ̂_ij²)) / (‖g_j‖√(1−φ̂_ij²) + eps).
//! Always update φ̂_ij ← (1−β)φ̂_ij + βφ. The weights are w = Σ_i C_i, so d = Jᵀw is the sum of
//! the modified gradients. With φ̂ = 0 the correction is PCGrad's projection, so the first call
//! (and the first after `reset`) equals PCGrad up to eps. No documented property row (torchjd);
//! weighted; stateful.
//!
//! The visiting orders come from PCGrad's [`visit_order`] (seeded, so runs reproduce and the
//! same orders can be drawn on the GPU), not from torch's `randperm`. G is used as given (no
//! rescale), because eps is compared against ‖g_i‖‖g_j‖ in torchjd's own units.
use super::numerics::all_finite;
use super::pcgrad::visit_order;
use super::registry::Property::NotDocumented;
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range, EPS_MAX};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "gradvac",
    label: "GradVac",
    description:
        "Gradient Vaccine: raises pairwise cosines to an EMA target (seeded order); the first call equals PCGrad.",
    params: &[
        param("beta", ParamDefault::Value("0.5"), Range::UnitInterval, "EMA rate of the cosine targets"),
        param("eps", ParamDefault::Value("1e-8"), Range::NonNegative { max: EPS_MAX }, "added to the denominators"),
    ],
    properties: props(
        NotDocumented,
        NotDocumented,
        NotDocumented,
        Some("not in torchjd's table; returns weights (d = Jᵀw) by construction; stateful"),
    ),
    gramian_weighted: true,
    stateful: true,
    seeded: true,
    needs_losses: false,
};

#[derive(Clone, Debug)]
pub struct GradVac {
    beta: f64,
    eps: f64,
    seed: u64,
    calls: u64,
    /// φ̂ (m × m); `None` until the first call, and again after `reset`.
    phi_hat: Option<DMatrix<f64>>,
}

impl GradVac {
    /// torchjd's defaults: beta = 0.5, eps = 1e-8. `seed` drives the visiting orders (its low
    /// 32 bits, as for [`super::PcGrad`]).
    pub fn new(seed: u64) -> Self {
        GradVac { beta: 0.5, eps: 1e-8, seed, calls: 0, phi_hat: None }
    }

    /// beta ∈ [0, 1] and eps ≥ 0 (finite), as torchjd checks.
    pub fn with_params(beta: f64, eps: f64, seed: u64) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&beta) {
            return Err(format!("gradvac needs beta in [0, 1], got {beta}"));
        }
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(format!("gradvac needs a finite eps ≥ 0, got {eps}"));
        }
        Ok(GradVac { beta, eps, ..GradVac::new(seed) })
    }

    pub fn beta(&self) -> f64 {
        self.beta
    }

    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The EMA targets φ̂, once a call has sized them.
    pub fn phi_hat(&self) -> Option<&DMatrix<f64>> {
        self.phi_hat.as_ref()
    }
}

impl Weighting for GradVac {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let call = self.calls as u32;
        self.calls = self.calls.wrapping_add(1);
        if !all_finite(gram) {
            // No cosine can be computed; the plain sum, and the targets stay as they were.
            return DVector::from_element(m, 1.0);
        }
        // torchjd re-initialises φ̂ when m (or the dtype) changes.
        if self.phi_hat.as_ref().is_none_or(|p| p.nrows() != m) {
            self.phi_hat = Some(DMatrix::zeros(m, m));
        }
        let saved = self.phi_hat.clone();
        let phi_hat = self.phi_hat.as_mut().unwrap();
        let (beta, eps) = (self.beta, self.eps);
        let mut c = DMatrix::<f64>::identity(m, m);
        for i in 0..m {
            // cg = C_i G: the dot products of g_i^PC with every original g_j.
            let mut cg: DVector<f64> = gram.tr_mul(&c.row(i).transpose());
            for j in visit_order(self.seed as u32, call, i as u32, m) {
                if j == i {
                    continue;
                }
                let norm_i = c.row(i).transpose().dot(&cg).max(0.0).sqrt();
                let norm_j = gram[(j, j)].max(0.0).sqrt();
                let phi = cg[j] / (norm_i * norm_j + eps);
                if !phi.is_finite() {
                    // Only reachable through overflow (eps = 0 with a zero row gives 0/0):
                    // skip the pair rather than poison φ̂.
                    continue;
                }
                let target = phi_hat[(i, j)];
                if phi < target {
                    let s_phi = (1.0 - phi * phi).max(0.0).sqrt();
                    let s_target = (1.0 - target * target).max(0.0).sqrt();
                    let w = norm_i * (target * s_phi - phi * s_target) / (norm_j * s_target + eps);
                    if w.is_finite() {
                        c[(i, j)] += w;
                        cg.axpy(w, &gram.column(j), 1.0);
                    }
                }
                phi_hat[(i, j)] = (1.0 - beta) * target + beta * phi;
            }
        }
        let w = c.row_sum().transpose();
        if w.iter().all(|v| v.is_finite()) {
            w
        } else {
            // A chain of corrections with φ̂ ≈ ±1 (denominator ≈ eps) can overflow at extreme
            // scales; fall back to the plain sum and forget this call's EMA update.
            self.phi_hat = saved;
            DVector::from_element(m, 1.0)
        }
    }

    fn reset(&mut self) {
        self.phi_hat = None;
        self.calls = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{j_base, Normal};
    use super::super::{gram, Aggregator, PcGrad};
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn first_call_matches_torchjd_on_j_base() {
        let a = GradVac::new(0).aggregate(&j_base());
        assert_abs_diff_eq!(a.weights.unwrap(), DVector::from_vec(vec![2.2222, 1.5789]), epsilon = 1e-4);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.5848, 3.8012, 3.8012]), epsilon = 1e-4);
    }

    /// With φ̂ = 0 the correction is −(g_i^PC·g_j)/(‖g_j‖² + eps/‖g_i^PC‖·…): PCGrad's projection
    /// up to eps, in the same visiting orders (same seed, call 0), for any m.
    #[test]
    fn first_call_equals_pcgrad() {
        let mut rng = Normal::new(31);
        for (m, n) in [(2, 3), (3, 2), (5, 4), (8, 20), (12, 5)] {
            let g = gram(&rng.matrix(m, n));
            for seed in [0, 5, 1234] {
                let gv = GradVac::new(seed).weights(&g);
                let pc = PcGrad::new(seed).weights(&g);
                assert_abs_diff_eq!(gv, pc, epsilon = 1e-6 * (1.0 + pc.amax()));
            }
        }
    }

    #[test]
    fn seeded_runs_reproduce_and_reset_restarts() {
        let mut rng = Normal::new(32);
        let js: Vec<_> = (0..5).map(|_| rng.matrix(6, 4)).collect();
        let run = |gv: &mut GradVac| js.iter().map(|j| gv.weights(&gram(j))).collect::<Vec<_>>();
        let (mut a, mut b) = (GradVac::new(9), GradVac::new(9));
        let first = run(&mut a);
        assert_eq!(first, run(&mut b));
        // The state matters: the second call differs from a fresh call on the same matrix.
        assert_ne!(first[1], GradVac::new(9).weights(&gram(&js[1])));
        Weighting::reset(&mut a);
        assert!(a.phi_hat().is_none());
        assert_eq!(first, run(&mut a));
        // Another seed gives other orders.
        assert_ne!(first, run(&mut GradVac::new(10)));
    }

    #[test]
    fn ema_targets_follow_beta() {
        // m = 2, J_base: φ = −22/(√18·√38 + eps) on the first call; φ̂ = β·φ afterwards.
        let g = gram(&j_base());
        let mut gv = GradVac::with_params(0.25, 1e-8, 0).unwrap();
        gv.weights(&g);
        let phi = -22.0 / (18f64.sqrt() * 38f64.sqrt() + 1e-8);
        let p = gv.phi_hat().unwrap();
        assert_abs_diff_eq!(p[(0, 1)], 0.25 * phi, epsilon = 1e-12);
        assert_abs_diff_eq!(p[(1, 0)], 0.25 * phi, epsilon = 1e-12);
        assert_eq!(p[(0, 0)], 0.0);
    }

    #[test]
    fn changing_m_resets_the_targets() {
        let mut gv = GradVac::new(0);
        gv.weights(&gram(&Normal::new(1).matrix(3, 4)));
        let w = gv.weights(&gram(&j_base()));
        assert_eq!(gv.phi_hat().unwrap().shape(), (2, 2));
        assert_abs_diff_eq!(w, DVector::from_vec(vec![1.0 + 22.0 / 18.0, 1.0 + 22.0 / 38.0]), epsilon = 1e-6);
    }

    #[test]
    fn parameters_are_validated() {
        assert!(GradVac::with_params(1.5, 1e-8, 0).is_err());
        assert!(GradVac::with_params(-0.1, 1e-8, 0).is_err());
        assert!(GradVac::with_params(0.5, -1.0, 0).is_err());
        assert!(GradVac::with_params(f64::NAN, 1e-8, 0).is_err());
        assert!(GradVac::with_params(0.5, f64::INFINITY, 0).is_err());
        assert!(GradVac::with_params(1.0, 0.0, 0).is_ok());
    }

    #[test]
    fn zero_and_parallel_rows_stay_finite() {
        let j = DMatrix::from_row_slice(3, 2, &[0.0, 0.0, 1.0, 2.0, -2.0, -4.0]);
        let mut gv = GradVac::with_params(0.5, 0.0, 3).unwrap();
        for _ in 0..10 {
            assert!(gv.weights(&gram(&j)).iter().all(|v| v.is_finite()));
        }
        let mut bad = gram(&j);
        bad[(0, 1)] = f64::NAN;
        assert!(gv.weights(&bad).iter().all(|v| v.is_finite()));
    }
}
