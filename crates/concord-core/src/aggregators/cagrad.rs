//! CAGrad (Liu et al. 2021, Alg. 1), torchjd `_cagrad.py` semantics.
//!
//! Ĝ = normalize(G, norm_eps) (G / tr G, or 0 when tr G < norm_eps), factored Ĝ = RRᵀ with
//! R = U S^{1/2}. With g₀ = Rᵀ1/m and φ = c‖g₀‖, solve the SOCP
//!     w* = argmin_{w∈Δ} (Rg₀)ᵀw + φ‖Rᵀw‖
//! (clarabel, f64, as torchjd does through cvxpy), let g_w = Rᵀw*, and return
//!     w = 1/m + (φ/‖g_w‖)·w*      if ‖g_w‖ ≥ norm_eps,
//!     w = 0                       otherwise ("approximately on the Pareto front").
//! So d = Jᵀw = g₀ + (c‖g₀‖/‖g_w‖)·g_w in the original scale, with **no** 1/(1+c) rescale
//! (CAGrad's `toy.py` divides by 1+c). Not non-conflicting in general (it is for c ≥ 1);
//! not linear under scaling; weighted.
//!
//! `rescale` is LibMTL's `--rescale` (methods-wave2.md §2d): 0 (default, torchjd) returns d as
//! above; 1 divides it by 1 + c², 2 by 1 + c (CAGrad's `toy.py`). LibMTL's own default is 1.
use super::numerics::{solve_conic, trace_normalized, Triplets};
use super::registry::Property::{No, Yes};
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range, EPS_MAX};
use super::Weighting;
use clarabel::algebra::CscMatrix;
use clarabel::solver::SupportedConeT;
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "cagrad",
    label: "CAGrad",
    description:
        "Conflict-averse: the best worst-case improvement within a ball of radius c‖g₀‖ around the mean g₀ (SOCP).",
    params: &[
        param(
            "c",
            ParamDefault::Value("0.5"),
            // Published values are 0.2–0.8 (torchjd tests up to 2); beyond 100 the ball dwarfs g₀.
            Range::NonNegative { max: 100.0 },
            "radius of the ball around the mean (torchjd: required)",
        ),
        param(
            "norm_eps",
            ParamDefault::Value("1e-4"),
            Range::NonNegative { max: EPS_MAX },
            "G is divided by tr G; below this trace, or ‖g_w‖ below it, w = 0",
        ),
        param(
            "rescale",
            ParamDefault::Value("0"),
            Range::OneOf(&["0", "1", "2"]),
            "LibMTL's rescale: 0 none (torchjd), 1 divides d by 1 + c², 2 by 1 + c",
        ),
    ],
    properties: props(No, No, Yes, Some("non-conflicting for c ≥ 1; torchjd scale: no 1/(1+c) rescale")),
    gramian_weighted: true,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

/// CAGrad weighting. `c` must be finite and ≥ 0 (checked by `Method::parse`); `norm_eps`
/// defaults to torchjd's 1e-4.
#[derive(Clone, Debug)]
pub struct CaGrad {
    pub c: f64,
    pub norm_eps: f64,
    /// LibMTL's `rescale`: 0 none, 1 d/(1 + c²), 2 d/(1 + c).
    pub rescale: u8,
}

impl CaGrad {
    pub fn new(c: f64) -> Self {
        CaGrad { c, norm_eps: 1e-4, rescale: 0 }
    }

    /// The divisor of LibMTL's `rescale` option.
    fn divisor(&self) -> f64 {
        match self.rescale {
            1 => 1.0 + self.c * self.c,
            2 => 1.0 + self.c,
            _ => 1.0,
        }
    }
}

impl Weighting for CaGrad {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let uniform = DVector::from_element(m, 1.0 / m as f64);
        if m == 0 {
            return uniform;
        }
        // torchjd raises on c < 0; weights() has no error path, so an invalid c (which
        // Method::parse already rejects) degrades to c = 0, i.e. the mean, rather than
        // an unbounded SOCP.
        let c = if self.c.is_finite() && self.c >= 0.0 { self.c } else { 0.0 };
        let Some(g_hat) = trace_normalized(gram, self.norm_eps) else {
            // Non-finite G: torchjd's SVD would fail; stay finite with the mean's weights.
            return uniform;
        };
        let Some(r) = psd_factor(&g_hat) else {
            return uniform;
        };
        let g0 = r.tr_mul(&uniform);
        let phi = c * g0.norm();
        let b = &r * &g0;
        let w_opt = if phi > 0.0 {
            solve_socp(&r, &b, phi, SOCP_TOL)
                .or_else(|| solve_socp(&r, &b, phi, 1e-8))
                .unwrap_or_else(|| frank_wolfe(&r, &b, phi))
        } else {
            // φ = 0 leaves a bare LP whose optimal face is the set of smallest b_i;
            // an interior-point solver lands at its centre, the uniform point on the ties.
            lp_centre(&b)
        };
        let g_w_norm = r.tr_mul(&w_opt).norm();
        if g_w_norm >= self.norm_eps && g_w_norm.is_finite() {
            (uniform + w_opt * (phi / g_w_norm)) / self.divisor()
        } else {
            // torchjd: "We are approximately on the pareto front".
            DVector::zeros(m)
        }
    }
}

/// R with RRᵀ = Ĝ: R = U·S^{1/2} from the symmetric eigendecomposition. torchjd uses
/// `torch.svd`, which equals this for PSD input; rounding-level negative eigenvalues are
/// clamped to 0 (the SVD would flip their sign instead; the difference is at 1e-16).
fn psd_factor(g_hat: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    let m = g_hat.nrows();
    // Ĝ has trace 1 (or is 0), so the QR iteration converges quickly; the cap only turns a
    // pathological input into a fallback instead of a hang.
    let eig = SymmetricEigen::try_new(g_hat.clone(), f64::EPSILON, 1000 * m.max(1))?;
    let mut r = eig.eigenvectors;
    for k in 0..m {
        let s = eig.eigenvalues[k].max(0.0).sqrt();
        r.column_mut(k).scale_mut(s);
    }
    r.iter().all(|v| v.is_finite()).then_some(r)
}

/// Clarabel's gap and feasibility tolerances, tighter than its 1e-8 defaults (which cvxpy
/// uses) because this f64 solve is the reference the GPU kernel is tested against. The
/// direction g_w/‖g_w‖ is only as accurate as √(objective error), and on random matrices
/// 1e-10 cuts the worst J·d conflict at c ≥ 1 from ~2e-5·‖J‖² to ~1e-6·‖J‖² (9000 random
/// problems). About one solve in ten then ends `AlmostSolved`, which is accepted (in those
/// runs its iterate was no worse than a solve at the defaults); a failed solve is retried at
/// the defaults, then handed to `frank_wolfe`.
const SOCP_TOL: f64 = 1e-10;

/// min_{w,t} bᵀw + φt  s.t.  Σw = 1, w ≥ 0, ‖Rᵀw‖ ≤ t — the epigraph form cvxpy hands to
/// CLARABEL. Returns `None` unless clarabel reports a (possibly reduced-accuracy) solution.
fn solve_socp(r: &DMatrix<f64>, b: &DVector<f64>, phi: f64, tol: f64) -> Option<DVector<f64>> {
    let m = r.nrows();
    let n = m + 1; // x = (w, t)
    let rows = 1 + m + 1 + m;
    let mut a = Triplets::default();
    // Clarabel's form is Ax + s = b', s ∈ K.
    for i in 0..m {
        a.push(0, i, 1.0); // zero cone: 1 − Σw = 0
        a.push(1 + i, i, -1.0); // non-negative cone: s = w ≥ 0
    }
    a.push(1 + m, m, -1.0); // second-order cone head: s₀ = t
    for k in 0..m {
        for i in 0..m {
            a.push(2 + m + k, i, -r[(i, k)]); // cone tail: s = Rᵀw
        }
    }
    let a = a.into_csc(rows, n);
    let p = CscMatrix::zeros((n, n));
    let mut q: Vec<f64> = b.iter().copied().collect();
    q.push(phi);
    let mut rhs = vec![0.0; rows];
    rhs[0] = 1.0;
    let cones =
        [SupportedConeT::ZeroConeT(1), SupportedConeT::NonnegativeConeT(m), SupportedConeT::SecondOrderConeT(m + 1)];
    solve_conic(&p, &q, &a, &rhs, &cones, Some(tol), m)
}

/// The objective of the SOCP at w.
fn objective(r: &DMatrix<f64>, b: &DVector<f64>, phi: f64, w: &DVector<f64>) -> f64 {
    b.dot(w) + phi * r.tr_mul(w).norm()
}

/// Last-resort fallback when clarabel gives no solution (not seen on ~10⁴ random problems):
/// pairwise Frank–Wolfe (move weight from the worst task in the support to the best vertex)
/// with golden-section line search on the same convex objective. Pairwise because plain FW
/// zig-zags near faces. Accurate to ~1e-12 in the objective on typical problems but only
/// ~1e-4 where g_w is small (‖·‖ is sharply curved there); always finite and on Δ.
fn frank_wolfe(r: &DMatrix<f64>, b: &DVector<f64>, phi: f64) -> DVector<f64> {
    let m = r.nrows();
    let mut w = DVector::from_element(m, 1.0 / m as f64);
    for _ in 0..2000 {
        let gw = r.tr_mul(&w);
        let norm = gw.norm();
        let mut grad = b.clone();
        if norm > 0.0 {
            grad += (r * &gw) * (phi / norm);
        }
        let t = super::numerics::argmin_first(&grad);
        let mut s = t;
        for i in 0..m {
            if w[i] > 0.0 && grad[i] > grad[s] {
                s = i;
            }
        }
        if grad[s] - grad[t] <= 1e-14 {
            break; // every task in the support is as good as the best vertex: optimal
        }
        let budget = w[s];
        let point = |gamma: f64| {
            let mut x = w.clone();
            x[s] -= gamma;
            x[t] += gamma;
            x
        };
        let gamma = golden_section(|g| objective(r, b, phi, &point(g)), 0.0, budget, 1e-14);
        // Snap to the end so a task can leave the support exactly.
        let gamma = if budget - gamma <= 1e-12 { budget } else { gamma };
        w = point(gamma);
        w[s] = w[s].max(0.0);
    }
    w
}

/// Minimiser of a convex f on [lo, hi] by golden-section search.
fn golden_section(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64, tol: f64) -> f64 {
    let inv_phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut x1 = hi - inv_phi * (hi - lo);
    let mut x2 = lo + inv_phi * (hi - lo);
    let (mut f1, mut f2) = (f(x1), f(x2));
    while hi - lo > tol {
        if f1 <= f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - inv_phi * (hi - lo);
            f1 = f(x1);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + inv_phi * (hi - lo);
            f2 = f(x2);
        }
    }
    0.5 * (lo + hi)
}

/// Uniform weights on the (near-)minimal entries of b: the centre of the LP's optimal face.
fn lp_centre(b: &DVector<f64>) -> DVector<f64> {
    let min = b.min();
    // Ĝ has trace 1, so |b_i| ≤ 1 and 1e-12 is a relative tie tolerance.
    let ties = b.map(|v| if v <= min + 1e-12 { 1.0 } else { 0.0 });
    let count = ties.sum();
    ties / count
}

#[cfg(test)]
mod tests {
    use super::super::testing::{j_base, worst_conflict, Normal, SHAPES};
    use super::super::{gram, Aggregator, Mean};
    use super::*;
    use approx::assert_abs_diff_eq;

    /// LibMTL's `rescale` (methods-wave2.md §2d, J = [[1, 2], [3, −1]], c = 0.5, x = [1, 0]):
    /// rescale 0 is torchjd's value, 1 and 2 divide it by 1 + c² and 1 + c.
    #[test]
    fn rescale_options_match_libmtl() {
        let j = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 3.0, -1.0]);
        let want = [[2.460977, 1.421954], [1.968782, 1.137564], [1.640651, 0.947970]];
        for (rescale, d) in want.iter().enumerate() {
            let got = CaGrad { rescale: rescale as u8, ..CaGrad::new(0.5) }.aggregate(&j).update;
            assert_abs_diff_eq!(got, DVector::from_row_slice(d), epsilon = 1e-5);
        }
    }

    #[test]
    fn cagrad_matches_torchjd_on_j_base() {
        let a = CaGrad::new(0.5).aggregate(&j_base());
        assert_abs_diff_eq!(a.weights.unwrap(), DVector::from_vec(vec![0.7041, 0.5000]), epsilon = 1e-4);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.1835, 1.2041, 1.2041]), epsilon = 1e-4);
    }

    #[test]
    fn c_zero_gives_the_mean() {
        let mut rng = Normal::new(4);
        for &(m, n, r) in SHAPES.iter() {
            let g = gram(&rng.low_rank(m, n, r));
            let w = CaGrad::new(0.0).weights(&g);
            assert_abs_diff_eq!(w, Mean.weights(&g), epsilon = 1e-12);
        }
    }

    /// torchjd tests non-conflict for c ∈ {1, 2} only ("should not hold when c < 1"). With
    /// the SOCP solved to 1e-10 on Ĝ = G/tr G, J·d ≥ −1e-6·‖J‖²_F was the worst seen over
    /// 9000 random problems; the assert allows 1e-5·‖J‖²_F (torchjd: atol = rtol = 4e-4).
    #[test]
    fn non_conflicting_for_c_at_least_one() {
        let mut rng = Normal::new(5);
        for c in [1.0, 2.0] {
            for &(m, n, r) in SHAPES.iter() {
                for _ in 0..3 {
                    let j = rng.low_rank(m, n, r);
                    let d = CaGrad::new(c).aggregate(&j).update;
                    let worst = worst_conflict(&j, &d);
                    assert!(worst >= -1e-5, "c={c} {m}×{n} rank {r}: J·d reaches {worst}·‖J‖²");
                }
            }
        }
    }

    /// CAGrad's `toy.py` 2-task version (toys.md §1): a bounded 1-D solve over g_w = γg₁ +
    /// (1−γ)g₂ with its 1e-4 epsilons, d = (g₀ + λg_w)/(1+c). scipy's bounded Brent search is
    /// replaced by golden-section search (F is convex).
    fn toy_cagrad(j: &DMatrix<f64>, c: f64) -> DVector<f64> {
        let (g1, g2): (DVector<f64>, DVector<f64>) = (j.row(0).transpose(), j.row(1).transpose());
        let (g11, g12, g22) = (g1.dot(&g1), g1.dot(&g2), g2.dot(&g2));
        let g0 = (&g1 + &g2) * 0.5;
        let phi = c * 0.5 * (g11 + g22 + 2.0 * g12 + 1e-4).sqrt();
        let f = |x: f64| {
            phi * (x * x * (g11 + g22 - 2.0 * g12) + 2.0 * x * (g12 - g22) + g22 + 1e-4).sqrt()
                + 0.5 * x * (g11 + g22 - 2.0 * g12)
                + (0.5 + x) * (g12 - g22)
                + g22
        };
        let x = golden_section(f, 0.0, 1.0, 1e-12);
        let gw = &g1 * x + &g2 * (1.0 - x);
        let gw_norm = (x * x * g11 + (1.0 - x).powi(2) * g22 + 2.0 * x * (1.0 - x) * g12 + 1e-4).sqrt();
        let lambda = phi / (gw_norm + 1e-4);
        (g0 + gw * lambda) / (1.0 + c)
    }

    #[test]
    fn toy_identity_torchjd_is_one_plus_c_times_toy() {
        // toys.md: torchjd CAGrad(c) ≈ (1+c)·toy cagrad(c), up to the toy's 1e-4 epsilons.
        let toy = crate::problems::CagradToy::new(1.0);
        let mut jacobians = vec![j_base()];
        // Each J is scaled to ‖J‖_F = 10: torchjd's weights are scale-invariant, while the toy's
        // 1e-4 epsilons would otherwise shift it by ~1e-4/‖g‖², over 1e-3 at the toy's small
        // gradients (‖g‖ ≈ 0.1 at (9, 9)).
        for x in [[-7.5, -0.5], [9.0, -1.0], [-8.5, 7.5], [9.0, 9.0], [-8.5, -5.0], [1.3, 2.2]] {
            let rows = crate::problems::Problem::jacobian(&toy, &x);
            let j = DMatrix::from_fn(2, 2, |i, k| rows[i][k]);
            jacobians.push(&j * (10.0 / j.norm()));
        }
        let mut rng = Normal::new(6);
        for n in [2, 2, 3, 5, 8] {
            let j = rng.matrix(2, n);
            jacobians.push(&j * (10.0 / j.norm()));
        }
        // On J_base the toy gives ≈ [0.1223, 0.8027, 0.8027].
        assert_abs_diff_eq!(
            toy_cagrad(&j_base(), 0.5),
            DVector::from_vec(vec![0.1223, 0.8027, 0.8027]),
            epsilon = 1e-4
        );
        for j in &jacobians {
            for c in [0.25, 0.5, 1.0, 2.0] {
                let d = CaGrad::new(c).aggregate(j).update;
                let expected = toy_cagrad(j, c) * (1.0 + c);
                let err = (&d - &expected).norm() / expected.norm().max(1e-12);
                assert!(err < 1e-3, "c={c} J={j}: torchjd {d} vs (1+c)·toy {expected} (rel {err})");
            }
        }
    }

    #[test]
    fn small_trace_gives_zero_weights_like_torchjd() {
        // tr G < norm_eps: normalize() returns 0, so g_w = 0 and the weights are 0.
        let j = j_base() * 1e-3;
        let w = CaGrad::new(0.5).weights(&gram(&j));
        assert_eq!(w, DVector::zeros(2));
        assert_eq!(CaGrad::new(0.5).weights(&DMatrix::zeros(4, 4)), DVector::zeros(4));
    }

    #[test]
    fn scale_invariant_above_the_threshold() {
        let mut rng = Normal::new(9);
        let j = rng.matrix(4, 6);
        let w = CaGrad::new(0.5).weights(&gram(&j));
        for s in [1e-1, 1e3, 1e15] {
            let ws = CaGrad::new(0.5).weights(&gram(&(&j * s)));
            assert_abs_diff_eq!(w, ws, epsilon = 1e-6);
        }
    }

    #[test]
    fn single_task_is_one_plus_c() {
        // m = 1: Ĝ = [1], g₀ = 1, φ = c, w* = 1, so w = 1 + c.
        let w = CaGrad::new(0.5).weights(&DMatrix::from_element(1, 1, 4.0));
        assert_abs_diff_eq!(w[0], 1.5, epsilon = 1e-6);
    }

    #[test]
    fn frank_wolfe_fallback_agrees_with_clarabel() {
        let mut rng = Normal::new(10);
        for &(m, n, r) in SHAPES.iter() {
            let g = trace_normalized(&gram(&rng.low_rank(m, n, r)), 1e-4).unwrap();
            let rf = psd_factor(&g).unwrap();
            let uniform = DVector::from_element(m, 1.0 / m as f64);
            let g0 = rf.tr_mul(&uniform);
            let phi = 0.5 * g0.norm();
            let b = &rf * &g0;
            let exact = solve_socp(&rf, &b, phi, SOCP_TOL).unwrap();
            let fw = frank_wolfe(&rf, &b, phi);
            let (fe, ff) = (objective(&rf, &b, phi, &exact), objective(&rf, &b, phi, &fw));
            assert!((fw.sum() - 1.0).abs() < 1e-12 && fw.min() >= 0.0);
            assert!((ff - fe).abs() < 1e-7, "{m}×{n}: FW {ff} vs clarabel {fe}");
        }
    }

    #[test]
    fn invalid_c_or_gramian_stays_finite() {
        let g = gram(&j_base());
        for c in [-1.0, f64::NAN, f64::INFINITY] {
            let w = CaGrad::new(c).weights(&g);
            assert!(w.iter().all(|v| v.is_finite()));
        }
        let mut bad = g.clone();
        bad[(0, 1)] = f64::INFINITY;
        assert!(CaGrad::new(0.5).weights(&bad).iter().all(|v| v.is_finite()));
    }
}
