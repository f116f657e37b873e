//! The dual-cone projection shared by UPGrad and DualProj (torchjd `_linalg/_dual_cone.py`).
//!
//! JD paper Prop. 1: the projection of Jᵀu onto the dual cone {y : Jy ≥ 0} is Jᵀv* with
//!     v* = argmin_v vᵀĜv  s.t.  v ≥ u   (elementwise),
//! so the projection needs only the Gramian. torchjd solves this QP with quadprog in f64 on
//! Ĝ = normalize(G, norm_eps) + reg_eps·I; here clarabel solves it in f64, an active-set
//! refinement then makes the answer exact up to rounding (quadprog is an exact active-set
//! method too), and coordinate descent is the fallback when clarabel reports no solution.
use super::numerics::{solve_conic, trace_normalized, Triplets};
use clarabel::algebra::CscMatrix;
use clarabel::solver::SupportedConeT;
use nalgebra::{DMatrix, DVector};

/// torchjd's `regularize(normalize(G, norm_eps), reg_eps)`: G / tr G (0 when tr G < norm_eps)
/// plus reg_eps·I. `None` when G has a non-finite entry.
///
/// With norm_eps = 0 (the exact mode) torchjd would divide 0 by 0 on G = 0; here a zero trace
/// gives the zero matrix, whose projection is u itself.
pub(crate) fn regularized_gram(gram: &DMatrix<f64>, norm_eps: f64, reg_eps: f64) -> Option<DMatrix<f64>> {
    let m = gram.nrows();
    let mut g = if gram.trace() > 0.0 || !gram.trace().is_finite() {
        trace_normalized(gram, norm_eps)?
    } else {
        if !super::numerics::all_finite(gram) {
            return None;
        }
        DMatrix::zeros(m, m)
    };
    for i in 0..m {
        g[(i, i)] += reg_eps;
    }
    Some(g)
}

/// v* = argmin_v vᵀĜv s.t. v ≥ u, for a symmetric PSD Ĝ of trace ≲ 1 (normalised) and finite u.
/// Always finite and feasible (v ≥ u).
pub(crate) fn project_weights(g_hat: &DMatrix<f64>, u: &DVector<f64>) -> DVector<f64> {
    let m = g_hat.nrows();
    if m == 0 {
        return DVector::zeros(0);
    }
    // Where Ĝu ≥ 0 already, u itself satisfies the KKT conditions (μ = 2Ĝu ≥ 0 on the active
    // set, which is every coordinate): no solve needed. This is the common non-conflicting case.
    if (g_hat * u).iter().all(|&x| x >= 0.0) {
        return u.clone();
    }
    // The active-set iteration started from the bound itself usually settles in a few m × m
    // solves, and a point it returns satisfies the KKT conditions to rounding, which for this
    // convex QP makes it the minimiser. The interior-point solve (≈100× slower) runs only when
    // it does not settle.
    if let Some(v) = refine(g_hat, u, u) {
        return v;
    }
    let start = solve_qp(g_hat, u, QP_TOL)
        .or_else(|| solve_qp(g_hat, u, 1e-8))
        .unwrap_or_else(|| coordinate_descent(g_hat, u, u.clone(), 10_000));
    refine(g_hat, u, &start).unwrap_or(start)
}

/// Clarabel's gap and feasibility tolerances: tighter than its 1e-8 defaults, since the
/// refinement below needs a correct active set, and the interior point must be close enough
/// to tell active from inactive constraints.
const QP_TOL: f64 = 1e-10;

/// min ½vᵀĜv s.t. v ≥ u in clarabel's form: P = Ĝ (upper triangle), q = 0, −v + s = −u, s ≥ 0.
fn solve_qp(g_hat: &DMatrix<f64>, u: &DVector<f64>, tol: f64) -> Option<DVector<f64>> {
    let m = g_hat.nrows();
    let mut p = Triplets::default();
    for j in 0..m {
        for i in 0..=j {
            p.push(i, j, g_hat[(i, j)]);
        }
    }
    let p = p.into_csc(m, m);
    let a = CscMatrix::new_from_triplets(m, m, (0..m).collect(), (0..m).collect(), vec![-1.0; m]);
    let q = vec![0.0; m];
    let b: Vec<f64> = u.iter().map(|x| -x).collect();
    let cones = [SupportedConeT::NonnegativeConeT(m)];
    let v = solve_conic(&p, &q, &a, &b, &cones, Some(tol), m)?;
    Some(v.zip_map(u, f64::max))
}

/// Polish an approximate minimiser into the exact one by an active-set iteration (what quadprog
/// does from scratch). The first guess of the active set A (where v_k = u_k) compares each slack
/// v_k − u_k with its multiplier μ_k = (Ĝv)_k, the usual interior-point crossover: at the
/// optimum one of the two is zero. On the free set F, stationarity gives Ĝ_FF v_F = −Ĝ_FA u_A;
/// a free coordinate that falls below its bound is fixed, an active one with a negative
/// multiplier is released, until the KKT conditions hold to rounding. `None` (keep the interior
/// point) if that does not happen within a few steps or the result raises the objective.
fn refine(g_hat: &DMatrix<f64>, u: &DVector<f64>, v: &DVector<f64>) -> Option<DVector<f64>> {
    let m = g_hat.nrows();
    let scale = u.amax().max(v.amax()).max(f64::MIN_POSITIVE);
    let tol = 1e-12 * scale * (1.0 + g_hat.amax());
    let gv = g_hat * v;
    let mut free: Vec<bool> = (0..m).map(|k| v[k] - u[k] > gv[k]).collect();
    for _ in 0..(2 * m + 4) {
        let x = solve_on_free_set(g_hat, u, &free)?;
        let gx = g_hat * &x;
        // Most violated condition first: a free coordinate below its bound, or an active one
        // whose multiplier is negative.
        let mut worst: Option<(usize, f64)> = None;
        for k in 0..m {
            let violation = if free[k] { u[k] - x[k] } else { -gx[k] };
            if violation > tol && worst.is_none_or(|(_, w)| violation > w) {
                worst = Some((k, violation));
            }
        }
        match worst {
            Some((k, _)) => free[k] = !free[k],
            None => {
                let x = x.zip_map(u, f64::max);
                let no_worse = x.dot(&(g_hat * &x)) <= v.dot(&gv) + tol * scale;
                return no_worse.then_some(x);
            }
        }
    }
    None
}

/// v with v_A = u_A and Ĝ_FF v_F = −Ĝ_FA u_A. Cholesky when Ĝ_FF is well conditioned (always
/// with reg_eps = 1e-4); otherwise (exact mode, rank-deficient G) the system is still consistent,
/// since Ĝ = JJᵀ/tr G, and the SVD with a 1e-10 relative cutoff gives its minimum-norm
/// solution (any solution gives the same Jᵀv; the minimum-norm one keeps rounding out of it).
fn solve_on_free_set(g_hat: &DMatrix<f64>, u: &DVector<f64>, free: &[bool]) -> Option<DVector<f64>> {
    let m = g_hat.nrows();
    let idx: Vec<usize> = (0..m).filter(|&k| free[k]).collect();
    let mut x = u.clone();
    if idx.is_empty() {
        return Some(x);
    }
    let f = idx.len();
    let gff = DMatrix::from_fn(f, f, |a, b| g_hat[(idx[a], idx[b])]);
    let rhs = DVector::from_fn(f, |a, _| -(0..m).filter(|&k| !free[k]).map(|k| g_hat[(idx[a], k)] * u[k]).sum::<f64>());
    // A rank-deficient Ĝ_FF computed in floating point can still pass Cholesky with a pivot at
    // rounding level, whose solution is huge noise: require pivots clearly above rounding
    // (with reg_eps = 1e-4 they are ≥ 1e-4, far above the threshold).
    let chol = gff.clone().cholesky().filter(|ch| {
        let d = ch.l_dirty().diagonal().map(|x| x * x);
        d.min() > 1e-10 * d.max()
    });
    let sol = match chol {
        Some(ch) => ch.solve(&rhs),
        None => {
            let svd = gff.svd(true, true);
            let cut = svd.singular_values.max() * 1e-10;
            svd.solve(&rhs, cut).ok()?
        }
    };
    for (a, &k) in idx.iter().enumerate() {
        x[k] = sol[a];
    }
    x.iter().all(|t| t.is_finite()).then_some(x)
}

/// Cyclic coordinate descent on ½vᵀĜv over the box v ≥ u: the exact minimiser along each
/// coordinate, clipped. Converges for PSD Ĝ; a coordinate with Ĝ_kk = 0 (a zero gradient) has
/// no effect on the objective and stays at its bound.
pub(crate) fn coordinate_descent(
    g_hat: &DMatrix<f64>,
    u: &DVector<f64>,
    mut v: DVector<f64>,
    sweeps: usize,
) -> DVector<f64> {
    let m = g_hat.nrows();
    for _ in 0..sweeps {
        let mut change = 0.0f64;
        for k in 0..m {
            let d = g_hat[(k, k)];
            if d <= 0.0 {
                continue;
            }
            let grad: f64 = (0..m).map(|l| g_hat[(k, l)] * v[l]).sum();
            let new = (v[k] - grad / d).max(u[k]);
            change = change.max((new - v[k]).abs());
            v[k] = new;
        }
        if change <= 1e-15 * (1.0 + v.amax()) {
            break;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::super::gram;
    use super::super::testing::Normal;
    use super::*;
    use approx::assert_abs_diff_eq;

    /// KKT residuals of the QP at v: primal v ≥ u, dual Ĝv ≥ 0 where active, Ĝv = 0 where free.
    fn kkt_violation(g: &DMatrix<f64>, u: &DVector<f64>, v: &DVector<f64>) -> f64 {
        let gv = g * v;
        let mut worst = 0.0f64;
        for k in 0..u.len() {
            worst = worst.max(u[k] - v[k]);
            if v[k] - u[k] > 1e-9 {
                worst = worst.max(gv[k].abs());
            } else {
                worst = worst.max(-gv[k]);
            }
        }
        worst
    }

    #[test]
    fn solves_to_kkt_precision() {
        let mut rng = Normal::new(31);
        for (m, n, r) in [(2, 3, 2), (4, 3, 3), (6, 10, 6), (9, 11, 5), (20, 10, 10), (20, 100, 19)] {
            for _ in 0..5 {
                let j = rng.low_rank(m, n, r);
                let g = regularized_gram(&gram(&j), 1e-4, 1e-4).unwrap();
                for i in 0..m {
                    let mut u = DVector::zeros(m);
                    u[i] = 1.0 / m as f64;
                    let v = project_weights(&g, &u);
                    assert!(kkt_violation(&g, &u, &v) < 1e-12, "{m}×{n}: {v}");
                }
            }
        }
    }

    #[test]
    fn fallback_agrees_with_clarabel() {
        let mut rng = Normal::new(32);
        for (m, n) in [(3, 2), (5, 5), (8, 4)] {
            let g = regularized_gram(&gram(&rng.matrix(m, n)), 1e-4, 1e-4).unwrap();
            let u = DVector::from_element(m, 1.0 / m as f64);
            let v = project_weights(&g, &u);
            let cd = coordinate_descent(&g, &u, u.clone(), 100_000);
            assert_abs_diff_eq!(v, cd, epsilon = 1e-7);
        }
    }

    #[test]
    fn zero_gramian_projects_to_u() {
        let g = regularized_gram(&DMatrix::zeros(3, 3), 0.0, 0.0).unwrap();
        let u = DVector::from_vec(vec![0.5, 0.0, 0.0]);
        assert_eq!(project_weights(&g, &u), u);
    }
}
