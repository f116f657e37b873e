//! MGDA (Désidéri 2012) with the Frank–Wolfe solver of Sener & Koltun 2018 (Alg. 2),
//! torchjd `_mgda.py` semantics: w ≈ argmin_{α∈Δ} αᵀGα, the min-norm point of conv{g_i}.
//! Non-conflicting (up to the solver's tolerance); not linear under scaling; weighted.
//! G is not normalised in the torchjd sense and the output is not rescaled.
//!
//! `gn` is LibMTL's `--mgda_gn` (methods-wave2.md §2e): n_i = 1 (`none`, default, torchjd),
//! ‖g_i‖ (`l2`), L_i (`loss`, the task's loss value) or L_i‖g_i‖ (`loss+`). LibMTL solves the
//! min-norm problem on ĝ_i = g_i/n_i and applies sol to the normalised gradients,
//! d = Σ sol_i ĝ_i, so the weights on the raw rows are w_i = sol_i/n_i (a zero row keeps
//! ‖g_i‖ = 1 in n_i: LibMTL would divide 0 by 0; a loss enters as `positive(L_i)` ≥ 1e-12).
//! With `loss` / `loss+` MGDA reads the task losses (`Weighting::weights_with_losses`): the spec
//! `needs_losses`, so callers with a bare matrix refuse it and the trainer passes the losses.
use super::numerics::{argmin_first, pow2_rescaled};
use super::registry::Property::{No, Yes};
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range};
use super::Weighting;
use crate::weightings::positive;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "mgda",
    label: "MGDA",
    description: "The min-norm point of the convex hull of the gradients (Frank–Wolfe, Sener & Koltun).",
    params: &[
        param(
            "epsilon",
            ParamDefault::Value("1e-3"),
            // γ ∈ [0, 1], so ε > 1 would stop at once. ε = 0 stays valid (it runs every one of
            // max_iters steps, which the GPU's loop-limit test relies on): max_iters bounds the time.
            Range::NonNegative { max: 1.0 },
            "stop once the Frank–Wolfe step size falls below this",
        ),
        // 1000 × torchjd's 100; one step is O(m²), so even m = 1024 stays within seconds.
        param(
            "max_iters",
            ParamDefault::Value("100"),
            Range::PositiveCount { max: MGDA_MAX_ITERS },
            "at most this many Frank–Wolfe steps",
        ),
        param(
            "gn",
            ParamDefault::Value("none"),
            Range::OneOf(&["none", "l2", "loss", "loss+"]),
            "gradient normalisation before the solve (LibMTL --mgda_gn): none, l2 (g_i/‖g_i‖), loss (g_i/L_i) \
             or loss+ (g_i/(L_i‖g_i‖)); loss and loss+ read the task losses",
        ),
    ],
    properties: props(Yes, No, Yes, Some("non-conflicting up to the Frank–Wolfe tolerance")),
    gramian_weighted: true,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

/// The most Frank–Wolfe steps a spec may ask for.
pub const MGDA_MAX_ITERS: usize = 100_000;

/// Frank–Wolfe MGDA. Defaults `epsilon = 1e-3`, `max_iters = 100` (torchjd).
#[derive(Clone, Debug)]
pub struct Mgda {
    /// Stop once the step size γ falls below this.
    pub epsilon: f64,
    /// At most this many Frank–Wolfe steps.
    pub max_iters: usize,
    /// Solve on g_i/‖g_i‖ (LibMTL `--mgda_gn l2`, and the ‖g_i‖ of `loss+`) instead of g_i.
    pub l2_normalize: bool,
    /// Also divide g_i by its task's loss L_i (LibMTL `--mgda_gn loss`, with `l2_normalize`
    /// `loss+`): the weights then need the losses (`weights_with_losses`).
    pub loss_normalize: bool,
}

impl Default for Mgda {
    fn default() -> Self {
        Mgda { epsilon: 1e-3, max_iters: 100, l2_normalize: false, loss_normalize: false }
    }
}

impl Weighting for Mgda {
    /// Without losses (a caller that has none refuses `loss` / `loss+`; see `Aggregator`), every
    /// L_i = 1.
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        self.weights_with_losses(gram, &vec![1.0; gram.nrows()])
    }

    fn weights_with_losses(&mut self, gram: &DMatrix<f64>, losses: &[f64]) -> DVector<f64> {
        if !self.l2_normalize && !self.loss_normalize {
            return self.min_norm(gram);
        }
        let m = gram.nrows();
        let norms: Vec<f64> = (0..m)
            .map(|i| {
                let d = gram[(i, i)];
                let l2 = if self.l2_normalize && d > 0.0 && d.is_finite() { d.sqrt() } else { 1.0 };
                let loss = if self.loss_normalize { positive(losses.get(i).copied().unwrap_or(1.0)) } else { 1.0 };
                l2 * loss
            })
            .collect();
        let normalized = DMatrix::from_fn(m, m, |i, j| gram[(i, j)] / (norms[i] * norms[j]));
        let sol = self.min_norm(&normalized);
        DVector::from_fn(sol.len(), |i, _| sol[i] / norms[i])
    }
}

impl Mgda {
    /// The Frank–Wolfe solve on `gram` as given.
    fn min_norm(&self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let uniform = DVector::from_element(m, 1.0 / m as f64);
        if m == 0 {
            return uniform;
        }
        // Every quantity below (the argmin, the comparisons, γ) is invariant under G → sG,
        // so an exact power-of-two rescale only protects αᵀGα from overflow.
        let Some(g) = pow2_rescaled(gram) else {
            // Non-finite G (torchjd would propagate NaN): stay finite with the mean's weights.
            return uniform;
        };
        let mut alpha = uniform;
        for _ in 0..self.max_iters {
            let g_alpha = &g * &alpha;
            // torch.argmin picks the first index on ties; on G = 0 that makes torchjd return
            // e₀ (γ = 1 every step because c ≤ a), and so does this.
            let t = argmin_first(&g_alpha);
            let a = alpha.dot(&g.column(t));
            let b = alpha.dot(&g_alpha);
            let c = g[(t, t)];
            let gamma = if c <= a {
                1.0
            } else if b <= a {
                0.0
            } else {
                // Both b > a and c > a here, so the denominator is positive.
                (b - a) / (b + c - 2.0 * a)
            };
            alpha *= 1.0 - gamma;
            alpha[t] += gamma;
            if gamma < self.epsilon {
                break;
            }
        }
        alpha
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{j_base, worst_conflict, Normal, SHAPES};
    use super::super::{gram, Aggregator};
    use super::*;
    use approx::assert_abs_diff_eq;

    /// LibMTL `--mgda_gn` (methods-wave2.md §2e, J = [[1, 0], [−1, 1]]): sol = [0.6, 0.4] and
    /// d = [0.2, 0.4] without normalisation; with l2, sol = [0.5, 0.5] on the unit rows and
    /// d = Σ sol_i g_i/‖g_i‖ = [0.146447, 0.353553].
    #[test]
    fn gradient_normalisation_matches_libmtl() {
        let j = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, -1.0, 1.0]);
        let d = Mgda::default().aggregate(&j).update;
        assert_abs_diff_eq!(d, DVector::from_vec(vec![0.2, 0.4]), epsilon = 1e-9);
        let l2 = Mgda { l2_normalize: true, ..Mgda::default() }.aggregate(&j);
        let s = 0.5f64.sqrt();
        assert_abs_diff_eq!(l2.weights.unwrap(), DVector::from_vec(vec![0.5, 0.5 * s]), epsilon = 1e-9);
        assert_abs_diff_eq!(l2.update, DVector::from_vec(vec![0.146447, 0.353553]), epsilon = 1e-6);
        // l2 ignores the rows' scales, and a zero row stays finite.
        let scaled = DMatrix::from_row_slice(2, 2, &[100.0, 0.0, -0.01, 0.01]);
        let ds = Mgda { l2_normalize: true, ..Mgda::default() }.aggregate(&scaled).update;
        assert_abs_diff_eq!(ds, l2.update, epsilon = 1e-9);
        let zero = DMatrix::from_row_slice(2, 2, &[0.0, 0.0, -1.0, 1.0]);
        let w = Mgda { l2_normalize: true, ..Mgda::default() }.aggregate(&zero).weights.unwrap();
        assert!(w.iter().all(|x| x.is_finite()));
    }

    /// methods-wave2.md §2e's "Test this" table (J = [[1, 0], [−1, 1]], L = [2, 0.5]), LibMTL's
    /// d = Σ sol_i ĝ_i for every `gn`, through the spec as the CLI and the page name it. sol is
    /// read back as w_i·n_i.
    #[test]
    fn loss_normalisations_match_the_reference_table() {
        let j = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, -1.0, 1.0]);
        let losses = [2.0, 0.5];
        let norms = [1.0, 2f64.sqrt()];
        let table: [(&str, [f64; 2], [f64; 2]); 4] = [
            ("none", [0.6, 0.4], [0.2, 0.4]),
            ("l2", [0.5, 0.5], [0.146447, 0.353553]),
            ("loss", [0.878049, 0.121951], [0.195122, 0.243902]),
            ("loss+", [0.831026, 0.168974], [0.176547, 0.238966]),
        ];
        for (gn, sol, d) in table {
            let spec = crate::MethodSpec::parse(&format!("mgda:gn={gn}")).unwrap().aggregator;
            assert_eq!(spec.needs_losses(), gn.starts_with("loss"), "{gn}");
            let a = spec.build(2, 0).unwrap().aggregate_with_losses(&j, &losses);
            assert_abs_diff_eq!(a.update, DVector::from_row_slice(&d), epsilon = 1e-6);
            let w = a.weights.unwrap();
            let n = |i: usize| match gn {
                "none" => 1.0,
                "l2" => norms[i],
                "loss" => losses[i],
                _ => losses[i] * norms[i],
            };
            let got = [w[0] * n(0), w[1] * n(1)];
            assert_abs_diff_eq!(DVector::from_row_slice(&got), DVector::from_row_slice(&sol), epsilon = 1e-6);
        }
        // The f32 path and the path from G give the same weights.
        let mut agg = crate::MethodSpec::parse("mgda:gn=loss+").unwrap().aggregator.build(2, 0).unwrap();
        let w64 = agg.aggregate_with_losses(&j, &losses).weights.unwrap();
        let w_gram = agg.gram_weights_with_losses(&gram(&j), &losses).unwrap();
        assert_abs_diff_eq!(w64, w_gram, epsilon = 1e-12);
        let f32 = agg.aggregate_f32_with_losses(&super::super::JacobianF32::from_f64(&j), &losses);
        assert_abs_diff_eq!(f32.weights.unwrap(), w64, epsilon = 1e-6);
        // A zero loss stays finite (floored).
        let w0 = agg.aggregate_with_losses(&j, &[0.0, 0.5]).weights.unwrap();
        assert!(w0.iter().all(|x| x.is_finite()), "{w0}");
    }

    #[test]
    fn mgda_matches_torchjd_on_j_base() {
        let a = Mgda::default().aggregate(&j_base());
        // α₁ = (38 + 22)/(18 + 38 + 44) = 0.6.
        assert_abs_diff_eq!(a.weights.unwrap(), DVector::from_vec(vec![0.6, 0.4]), epsilon = 1e-4);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.0, 1.0, 1.0]), epsilon = 1e-4);
    }

    #[test]
    fn two_tasks_match_the_closed_form() {
        // γ = (g22 − g12)/(g11 + g22 − 2g12) clipped to [0, 1]; FW reaches it in one or two steps.
        let mut rng = Normal::new(3);
        for _ in 0..50 {
            let g = gram(&rng.matrix(2, 3));
            let (g11, g12, g22) = (g[(0, 0)], g[(0, 1)], g[(1, 1)]);
            let gamma = ((g22 - g12) / (g11 + g22 - 2.0 * g12)).clamp(0.0, 1.0);
            let w = Mgda::default().weights(&g);
            assert_abs_diff_eq!(w, DVector::from_vec(vec![gamma, 1.0 - gamma]), epsilon = 1e-9);
        }
    }

    /// torchjd `test_mgda_satisfies_kkt_conditions`: MGDAWeighting(1e-5, 1000) on randn shapes.
    /// Stationarity Gw = λ1 + μ with λ = wᵀGw; primal w ∈ Δ; dual μ ≥ 0, asserted as torchjd
    /// does: ‖μ₊‖ ≈ ‖μ‖ (atol 1e-2). Elementwise, Frank–Wolfe's γ < 1e-5 stop leaves min μ at
    /// about −0.035 on these shapes (tr G up to 5e3), so the elementwise bound is −5e-2, not
    /// −1e-2: the same algorithm in torchjd only passes because its assert is on norms.
    #[test]
    fn satisfies_kkt_conditions() {
        let mut rng = Normal::new(0);
        for (m, n) in [(5, 7), (9, 37), (2, 14), (32, 114), (50, 100)] {
            let g = gram(&rng.matrix(m, n));
            let w = Mgda { epsilon: 1e-5, max_iters: 1000, ..Mgda::default() }.weights(&g);
            assert!(w.iter().all(|&v| v >= 0.0), "{m}×{n}: negative weight");
            assert_abs_diff_eq!(w.sum(), 1.0, epsilon = 1e-12);
            let gw = &g * &w;
            let lambda = w.dot(&gw);
            let mu = gw.add_scalar(-lambda);
            let pos = mu.map(|v| v.max(0.0)).norm();
            assert_abs_diff_eq!(pos, mu.norm(), epsilon = 1e-2);
            let min = mu.min();
            assert!(min >= -5e-2, "{m}×{n}: min μ = {min}");
        }
    }

    #[test]
    fn non_conflicting_on_random_matrices() {
        let mut rng = Normal::new(1);
        for &(m, n, r) in SHAPES.iter() {
            for _ in 0..3 {
                let j = rng.low_rank(m, n, r);
                let d = Mgda::default().aggregate(&j).update;
                // FW stops at γ < 1e-3, not at the optimum; 1e-3·‖J‖²_F covers that gap.
                let worst = worst_conflict(&j, &d);
                assert!(worst >= -1e-3, "{m}×{n} rank {r}: J·d reaches {worst}·‖J‖²");
            }
        }
    }

    #[test]
    fn zero_gramian_gives_e0_like_torchjd() {
        let w = Mgda::default().weights(&DMatrix::zeros(3, 3));
        assert_eq!(w, DVector::from_vec(vec![1.0, 0.0, 0.0]));
    }

    #[test]
    fn scale_invariant_weights() {
        let mut rng = Normal::new(8);
        let g = gram(&rng.matrix(6, 4));
        let w = Mgda::default().weights(&g);
        for s in [1e-30, 1e-8, 1e8, 1e30] {
            // A power-of-two rescale inside makes this exact up to how s·G rounds.
            let ws = Mgda::default().weights(&(&g * s));
            assert_abs_diff_eq!(w, ws, epsilon = 1e-9);
        }
    }

    #[test]
    fn non_finite_gramian_stays_finite() {
        let mut g = DMatrix::from_element(3, 3, 1.0);
        g[(1, 2)] = f64::NAN;
        let w = Mgda::default().weights(&g);
        assert!(w.iter().all(|v| v.is_finite()));
        assert_eq!(Mgda::default().weights(&DMatrix::zeros(0, 0)).len(), 0);
    }
}
