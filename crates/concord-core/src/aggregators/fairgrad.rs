//! FairGrad (Ban & Ji 2024, Alg. 1), torchjd `_fairgrad.py` semantics: the α-fair weights solve
//!     G w = w^{−1/α}   (elementwise),   w ≥ 0,
//! found as the bounded nonlinear least-squares problem min ½‖Gw − w^{−1/α}‖² from x₀ = 1/m
//! (torchjd: scipy `least_squares`, trust-region reflective, `max_nfev = max_iters`, default
//! 100·m). α = 0 is linear scalarisation: w = 1/m. At a root (Gw)_i = w_i^{−1/α} > 0, so J·d > 0:
//! non-conflicting whenever the root exists (torchjd asserts it for α = 0.1, max_iters = 100).
//! Not linear under scaling; weighted.
//!
//! scipy's TRF has no Rust twin; the solver here is a hand-written Levenberg–Marquardt on the
//! m × m problem with the analytic Jacobian G + diag((1/α)w^{−1/α−1}) (scipy differences it),
//! Marquardt column scaling, Nielsen's damping update, one closed-form rescale of x₀ along its
//! ray, and positivity kept by never moving more than 99 % of the way to the bound (scipy
//! reflects instead). The root, when it exists, is unique (the Jacobian is
//! positive definite), so both converge to the same w; they differ only when the iteration cap
//! binds or no root exists (gradients that cancel: w grows without bound while d = Jᵀw stays
//! ≈ 0, aggregators.md §7.4), where each stops at its own large w.
//!
//! Scale: with s = max|G_ij|, the substitution w = s^{−α/(1+α)}·v turns the problem into
//! Ĝv = v^{−1/α} with Ĝ = G/s, so the iteration runs on O(1) numbers for any scale of J; the
//! start x₀ = 1/m is mapped exactly (v₀ = s^{α/(1+α)}/m). v is kept ≥ v_min = 10^{−100α}, so that
//! v^{−1/α} ≤ 1e100 stays finite (scipy fails on a non-finite residual at x₀, e.g. small α).
use super::numerics::all_finite;
use super::registry::Property::NotDocumented;
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range};
use super::Weighting;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "fairgrad",
    label: "FairGrad",
    description: "α-fair weights: the root of Gw = w^(−1/α) (Levenberg–Marquardt); α = 0 is the mean.",
    params: &[
        // α ≥ 1000 is max-min fairness in all but rounding; the published value is 1.
        param(
            "alpha",
            ParamDefault::Required,
            Range::NonNegative { max: 1e3 },
            "fairness α (0: utilitarian, large: towards max-min)",
        ),
        // Each evaluation is an m × m solve: 10⁵ bounds one call (scipy's default is 100·m).
        param(
            "max_iters",
            ParamDefault::Computed("100·m"),
            Range::PositiveCount { max: 100_000 },
            "at most this many residual evaluations",
        ),
    ],
    properties: props(
        NotDocumented,
        NotDocumented,
        NotDocumented,
        Some("not in torchjd's table; returns weights (d = Jᵀw) by construction; non-conflicting where the root exists (torchjd tests α = 0.1)"),
    ),
    gramian_weighted: true,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

#[derive(Clone, Debug)]
pub struct FairGrad {
    alpha: f64,
    max_iters: Option<usize>,
}

/// Stop tolerances, tighter than scipy's 1e-8 defaults because this is the f64 reference.
const FTOL: f64 = 1e-12;
const XTOL: f64 = 1e-12;
const GTOL: f64 = 1e-12;

impl FairGrad {
    /// `alpha` must be finite and ≥ 0; `max_iters` defaults to scipy's 100·m evaluations.
    pub fn new(alpha: f64) -> Result<Self, String> {
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(format!("fairgrad needs a finite alpha ≥ 0, got {alpha}"));
        }
        Ok(FairGrad { alpha, max_iters: None })
    }

    /// `max_iters` caps the residual evaluations, the initial one included (scipy's
    /// `max_nfev`, which torchjd passes it as): `max_iters = 1` returns x₀ = 1/m.
    pub fn with_max_iters(alpha: f64, max_iters: usize) -> Result<Self, String> {
        if max_iters == 0 {
            return Err("fairgrad needs max_iters ≥ 1".into());
        }
        Ok(FairGrad { max_iters: Some(max_iters), ..FairGrad::new(alpha)? })
    }

    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    pub fn max_iters(&self) -> Option<usize> {
        self.max_iters
    }
}

impl Weighting for FairGrad {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let x0 = DVector::from_element(m, 1.0 / m as f64);
        if m == 0 || self.alpha == 0.0 || !all_finite(gram) {
            return x0;
        }
        let s = gram.amax();
        if s == 0.0 {
            // G = 0: 0 = w^{−1/α} has no solution (w → ∞); d = Jᵀw = 0 whatever w is, so
            // return x₀ rather than a huge w.
            return x0;
        }
        let k = self.alpha / (1.0 + self.alpha);
        let s_k = (k * s.ln()).exp();
        let g_hat = gram / s;
        let max_nfev = self.max_iters.unwrap_or(100 * m);
        let v = solve(&g_hat, self.alpha, &x0 * s_k, max_nfev);
        let w = v / s_k;
        if w.iter().all(|x| x.is_finite()) {
            w
        } else {
            x0
        }
    }
}

/// The least-squares problem min ½‖Ĝv − v^{−p}‖² over v ≥ lower.
///
/// (Tried: running the iteration in x = v^{−p} for α < 1, where the steep term is linear. On
/// rank-deficient Ĝ it needed ~10× more evaluations than v itself, so v it is.)
struct Problem<'a> {
    g_hat: &'a DMatrix<f64>,
    p: f64,
    /// Keeps v^{−p} ≤ 1e100.
    lower: f64,
}

impl Problem<'_> {
    fn new(g_hat: &DMatrix<f64>, alpha: f64) -> Problem<'_> {
        Problem { g_hat, p: 1.0 / alpha, lower: 10f64.powf(-100.0 * alpha) }
    }

    fn v(&self, x: &DVector<f64>) -> DVector<f64> {
        x.clone()
    }

    fn x(&self, v: &DVector<f64>) -> DVector<f64> {
        v.clone()
    }

    /// F = Ĝv − v^{−p}.
    fn residual(&self, v: &DVector<f64>) -> DVector<f64> {
        self.g_hat * v - v.map(|t| t.powf(-self.p))
    }

    /// ∂F/∂v = Ĝ + diag(p v^{−p−1}): analytic (scipy differences it).
    fn jacobian(&self, v: &DVector<f64>) -> DMatrix<f64> {
        let mut jac = self.g_hat.clone();
        for j in 0..v.len() {
            jac[(j, j)] += self.p * v[j].powf(-self.p - 1.0);
        }
        jac
    }
}

/// Levenberg–Marquardt (Nielsen's damping update) for min ½‖F‖² over x ≥ lower, from v0, with
/// at most `max_nfev` evaluations of F (the first included). Returns v.
fn solve(g_hat: &DMatrix<f64>, alpha: f64, v0: DVector<f64>, max_nfev: usize) -> DVector<f64> {
    let pr = Problem::new(g_hat, alpha);
    let (p, lower) = (pr.p, pr.lower);
    let m = g_hat.nrows();
    let clamp = |x: DVector<f64>| x.map(|t| t.max(lower));
    let mut x = clamp(pr.x(&v0));
    let mut f = pr.residual(&x);
    let mut nfev = 1;
    let mut cost = f.norm_squared();
    if !cost.is_finite() {
        return pr.v(&x);
    }
    // The Newton step for a steep power far from its root moves little, so from x₀ = 1/m
    // (which can be decades off) LM would spend much of its budget walking along the ray.
    // One evaluation buys the best multiple t·v instead: ‖tA − t^{−p}B‖² (A = Ĝv, B = v^{−p})
    // is minimal where z = t^{1+p} solves a z² − (1−p)c z − p b = 0 with a = ‖A‖², b = ‖B‖²,
    // c = A·B — a closed form, no extra evaluations to find it.
    if nfev < max_nfev {
        let v = pr.v(&x);
        if let Some(t) = ray_scale(&(g_hat * &v), &v.map(|t| t.powf(-p)), p) {
            let x_ray = clamp(pr.x(&(&v * t)));
            let f_ray = pr.residual(&x_ray);
            nfev += 1;
            let cost_ray = f_ray.norm_squared();
            if cost_ray.is_finite() && cost_ray < cost {
                (x, f, cost) = (x_ray, f_ray, cost_ray);
            }
        }
    }
    let (mut lambda, mut nu): (f64, f64) = (1e-3, 2.0);
    while nfev < max_nfev && cost > 0.0 {
        let jac = pr.jacobian(&x);
        let grad = jac.tr_mul(&f);
        // scipy's first-order test: the gradient scaled by the distance to the active bound.
        let scaled = (0..m).map(|i| grad[i].abs() * if grad[i] > 0.0 { x[i] - lower } else { 1.0 });
        if scaled.fold(0.0, f64::max) < GTOL {
            break;
        }
        let col_norms: Vec<f64> = (0..m).map(|j| jac.column(j).norm().max(1e-300)).collect();
        let mut accepted = None;
        while nfev < max_nfev {
            // min ‖Jδ + F‖² + λ‖Dδ‖² as one stacked least-squares problem (SVD: no squaring of
            // J's condition number, which Ĝ's null space can make huge).
            let mut a = DMatrix::zeros(2 * m, m);
            a.rows_mut(0, m).copy_from(&jac);
            for j in 0..m {
                a[(m + j, j)] = lambda.sqrt() * col_norms[j];
            }
            let mut b = DVector::zeros(2 * m);
            b.rows_mut(0, m).copy_from(&(-&f));
            let Ok(step) = a.svd(true, true).solve(&b, 1e-300) else { return pr.v(&x) };
            // Stay interior: at most 99 % of the way to the bound in each coordinate.
            let x_new = DVector::from_fn(m, |i, _| (x[i] + step[i]).max(lower + 0.01 * (x[i] - lower)));
            let f_new = pr.residual(&x_new);
            nfev += 1;
            let cost_new = f_new.norm_squared();
            if cost_new.is_finite() && cost_new < cost {
                let predicted = cost - (&f + &jac * (&x_new - &x)).norm_squared();
                let rho = if predicted > 0.0 { (cost - cost_new) / predicted } else { 1.0 };
                lambda = (lambda * (1.0 / 3.0f64).max(1.0 - (2.0 * rho - 1.0).powi(3))).max(1e-15);
                nu = 2.0;
                accepted = Some((x_new, f_new, cost_new));
                break;
            }
            lambda *= nu;
            nu *= 2.0;
            if lambda > 1e30 {
                return pr.v(&x);
            }
        }
        let Some((x_new, f_new, cost_new)) = accepted else { break };
        let dx = (&x_new - &x).norm();
        let df = cost - cost_new;
        let norm_x = x.norm();
        x = x_new;
        f = f_new;
        cost = cost_new;
        if df < FTOL * (cost + df) || dx < XTOL * (XTOL + norm_x) || pr.v(&x).amax() > 1e100 {
            // Converged, stalled, or running off to infinity (no root): stop.
            break;
        }
    }
    pr.v(&x)
}

/// The t > 0 minimising ‖tA − t^{−p}B‖², or `None` when it does not exist (A = 0) or does not
/// fit in f64.
fn ray_scale(a_vec: &DVector<f64>, b_vec: &DVector<f64>, p: f64) -> Option<f64> {
    let (a, b, c) = (a_vec.norm_squared(), b_vec.norm_squared(), a_vec.dot(b_vec));
    let q = (1.0 - p) * c;
    let disc = (q * q + 4.0 * a * p * b).sqrt();
    // The positive root of a z² − q z − p b, in the form that does not cancel.
    let z = if q >= 0.0 { (q + disc) / (2.0 * a) } else { 2.0 * p * b / (disc - q) };
    let t = z.powf(1.0 / (1.0 + p));
    (a > 0.0 && t > 0.0 && t.is_finite()).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{j_base, Normal, SHAPES};
    use super::super::{gram, Aggregator};
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn matches_torchjd_on_j_base() {
        let a = FairGrad::new(1.0).unwrap().aggregate(&j_base());
        let w = a.weights.unwrap();
        assert_abs_diff_eq!(w, DVector::from_vec(vec![0.5915, 0.4071]), epsilon = 1e-4);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.0766, 0.9985, 0.9985]), epsilon = 1e-4);
        // It is the root: Gw = 1/w.
        let g = gram(&j_base());
        assert_abs_diff_eq!(&g * &w, w.map(|x| 1.0 / x), epsilon = 1e-9);
    }

    #[test]
    fn alpha_zero_is_the_mean_and_one_evaluation_is_x0() {
        let g = gram(&Normal::new(2).matrix(4, 3));
        assert_eq!(FairGrad::new(0.0).unwrap().weights(&g), DVector::from_element(4, 0.25));
        assert_eq!(FairGrad::with_max_iters(1.0, 1).unwrap().weights(&g), DVector::from_element(4, 0.25));
    }

    #[test]
    fn solves_the_fairness_equation_on_full_rank_gramians() {
        let mut rng = Normal::new(3);
        for alpha in [0.1, 0.5, 1.0, 2.0, 10.0] {
            for (m, n) in [(2, 3), (3, 5), (5, 8), (8, 20)] {
                let g = gram(&rng.matrix(m, n));
                let w = FairGrad::new(alpha).unwrap().weights(&g);
                assert!(w.min() > 0.0);
                let lhs = &g * &w;
                let rhs = w.map(|x| x.powf(-1.0 / alpha));
                let err = (&lhs - &rhs).amax() / rhs.amax();
                assert!(err < 1e-8, "α={alpha} {m}×{n}: relative residual {err}");
            }
        }
    }

    #[test]
    fn weights_scale_like_s_to_the_minus_alpha_over_one_plus_alpha() {
        let g = gram(&Normal::new(4).matrix(3, 5));
        for alpha in [0.5, 1.0, 3.0] {
            let w = FairGrad::new(alpha).unwrap().weights(&g);
            for s in [1e-20, 1e-6, 1e10, 1e30] {
                let ws = FairGrad::new(alpha).unwrap().weights(&(&g * s));
                let expected = &w * s.powf(-alpha / (1.0 + alpha));
                assert_abs_diff_eq!(ws, expected, epsilon = 1e-8 * expected.amax());
            }
        }
    }

    /// The root makes every J·d entry positive; where no root exists (m > rank) the least-squares
    /// limit still has (J·d)_i = F_i + w_i^{−1/α} ≥ F_i. torchjd's assert (atol = rtol = 4e-4).
    #[test]
    fn non_conflicting_for_alpha_0_1_with_100_iterations() {
        let mut rng = Normal::new(5);
        for &(m, n, r) in SHAPES.iter() {
            for _ in 0..3 {
                let j = rng.low_rank(m, n, r);
                let d = FairGrad::with_max_iters(0.1, 100).unwrap().aggregate(&j).update;
                let jd = &j * &d;
                let pos = jd.map(|v| v.max(0.0)).norm();
                assert!((pos - jd.norm()).abs() <= 4e-4 + 4e-4 * jd.norm(), "{m}×{n} rank {r}: J·d = {jd}");
            }
        }
    }

    #[test]
    fn parameters_are_validated() {
        assert!(FairGrad::new(-1.0).is_err());
        assert!(FairGrad::new(f64::NAN).is_err());
        assert!(FairGrad::new(f64::INFINITY).is_err());
        assert!(FairGrad::with_max_iters(1.0, 0).is_err());
        assert!(FairGrad::with_max_iters(1.0, 5).is_ok());
    }

    #[test]
    fn cancelling_and_degenerate_gramians_stay_finite() {
        // g and −g: no root; w grows but d stays ≈ 0.
        let j = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, -1.0, -2.0]);
        for alpha in [0.01, 0.1, 1.0, 100.0] {
            let a = FairGrad::new(alpha).unwrap().aggregate(&j);
            assert!(a.weights.unwrap().iter().all(|v| v.is_finite()), "α={alpha}");
            assert!(a.update.iter().all(|v| v.is_finite()), "α={alpha}");
        }
        assert!(FairGrad::new(1.0).unwrap().weights(&DMatrix::zeros(3, 3)).iter().all(|v| *v == 1.0 / 3.0));
        let mut bad = gram(&j);
        bad[(0, 0)] = f64::NAN;
        assert!(FairGrad::new(1.0).unwrap().weights(&bad).iter().all(|v| v.is_finite()));
    }
}
