//! Nash-MTL (Navon et al. 2022, Alg. 1), torchjd `_nash_mtl.py` semantics (adapted by torchjd
//! from the official code, "which has some flaws").
//!
//! Target: the Nash bargaining point α > 0 with α_i(Gα)_i = 1 for every i. With nf = ‖G‖_F and
//! Ĝ = G/nf, a concave–convex procedure runs for at most `optim_niter` steps, each solving
//!     min_α  Σ_i(Ĝα)_i + ∇φ(α_prev)·(α − α_prev)/nf
//!     s.t.   α ≥ 0,   −log(α_i·nf) − log((Ĝα)_i) ≤ 0   (⟺ α_i(Gα)_i ≥ 1),
//! where φ(α) = Σ_i[log α_i + log(Ĝα)_i] and ∇φ = 1/α + Ĝ(1/(Ĝα)). It stops, keeping the
//! iterate it had *before* the solve (torchjd's quirk), when ‖Ĝα − 1/(α + 1e-10)‖ < 1e-3, when
//! the solve moved α by less than 1e-6, or when the solve fails (infeasible, unbounded, error).
//! α is warm-started from the previous call (initially α = 1); weights are recomputed every
//! `update_weights_every` calls and reused otherwise. If max_norm > 0 and ‖Jᵀα‖ > max_norm, the
//! returned α is rescaled to norm max_norm (the stored α is not), with ‖Jᵀα‖ = √(αᵀGα), so this
//! is a weighting: it needs only G.
//! Non-conflicting whenever a solve succeeded (every constraint gives (Gα)_i ≥ 1/α_i > 0), which
//! needs a β ≥ 0 with Gβ > 0; when none exists (0 in the convex hull of the g_i) every solve is
//! infeasible and the previous α is returned unchanged. Not linear under scaling; weighted;
//! stateful.
//!
//! **Solver.** torchjd hands the problem to ECOS through cvxpy, which writes each log constraint
//! with exponential cones. Here it goes to clarabel with an equivalent second-order-cone form:
//! for x = α_i√nf and y = (Ĝα)_i√nf the constraint is log x + log y ≥ 0, i.e. xy ≥ 1 with
//! x, y > 0, which is exactly the rotated cone ‖(x − y, 2)‖ ≤ x + y. Same feasible set, same
//! linear objective, so the same minimiser; SOCs are cheaper and better conditioned than exp
//! cones. The variable β = α√nf (and the objective divided by its largest coefficient) keeps
//! the cone problem O(1) for any scale of J: α itself scales like 1/‖J‖².
//!
//! **Guards** (torchjd fails on these, aggregators.md §7.3): m = 1 returns the bargaining point
//! in closed form, α = 1/√G₁₁ (d = g/‖g‖, then max_norm); G = 0 (nf = 0, no feasible α) and a
//! non-finite G keep the previous α, so d = 0 for G = 0. A call whose m differs from the stored
//! state's restarts from α = 1 (torchjd needs `reset` after changing `n_tasks`).
use super::numerics::{all_finite, solve_conic, Triplets};
use super::registry::Property::{No, Yes};
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range};
use super::Weighting;
use clarabel::algebra::CscMatrix;
use clarabel::solver::SupportedConeT;
use nalgebra::{DMatrix, DVector};

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "nash-mtl",
    label: "Nash-MTL",
    description: "The Nash bargaining point α_i(Gα)_i = 1 (concave–convex procedure, warm-started across calls).",
    params: &[
        param("n_tasks", ParamDefault::Computed("m"), Range::EqualsM, "the number of tasks (torchjd: required)"),
        param(
            "max_norm",
            ParamDefault::Value("1.0"),
            Range::NonNegative { max: 1e6 },
            "rescale d to this norm when longer (0 disables)",
        ),
        param(
            "update_weights_every",
            ParamDefault::Value("1"),
            // Larger only means fewer solves; the cap keeps the counter meaningful.
            Range::PositiveCount { max: 1_000_000 },
            "recompute the weights every this many calls",
        ),
        // Each iteration is one conic solve (~ms): 1000 bounds a call to about a second.
        param(
            "optim_niter",
            ParamDefault::Value("20"),
            Range::PositiveCount { max: 1_000 },
            "at most this many cone solves per call",
        ),
    ],
    properties: props(
        Yes,
        No,
        Yes,
        Some(
            "non-conflicting whenever a solve succeeds (a failed first solve keeps α = 1: the rescaled sum); stateful",
        ),
    ),
    gramian_weighted: true,
    stateful: true,
    seeded: false,
    needs_losses: false,
};

#[derive(Clone, Debug)]
pub struct NashMtl {
    n_tasks: usize,
    max_norm: f64,
    update_weights_every: u64,
    optim_niter: usize,
    step: u64,
    prev_alpha: DVector<f64>,
}

impl NashMtl {
    /// torchjd's defaults: max_norm = 1.0, update_weights_every = 1, optim_niter = 20.
    pub fn new(n_tasks: usize) -> Result<Self, String> {
        Self::with_params(n_tasks, 1.0, 1, 20)
    }

    /// n_tasks ≥ 1, max_norm finite and ≥ 0 (0 disables the rescale), update_weights_every ≥ 1,
    /// optim_niter ≥ 1, as torchjd checks.
    pub fn with_params(
        n_tasks: usize,
        max_norm: f64,
        update_weights_every: u64,
        optim_niter: usize,
    ) -> Result<Self, String> {
        if n_tasks == 0 {
            return Err("nash-mtl needs n_tasks ≥ 1".into());
        }
        if !(max_norm.is_finite() && max_norm >= 0.0) {
            return Err(format!("nash-mtl needs a finite max_norm ≥ 0, got {max_norm}"));
        }
        if update_weights_every == 0 {
            return Err("nash-mtl needs update_weights_every ≥ 1".into());
        }
        if optim_niter == 0 {
            return Err("nash-mtl needs optim_niter ≥ 1".into());
        }
        Ok(NashMtl {
            n_tasks,
            max_norm,
            update_weights_every,
            optim_niter,
            step: 0,
            prev_alpha: DVector::from_element(n_tasks, 1.0),
        })
    }

    pub fn n_tasks(&self) -> usize {
        self.n_tasks
    }

    /// The stored (unrescaled) α that the next solve starts from.
    pub fn prev_alpha(&self) -> &DVector<f64> {
        &self.prev_alpha
    }

    /// One call's CCCP from the stored α; returns the new α (unrescaled).
    fn solve(&self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        let prev = self.prev_alpha.clone();
        if !all_finite(gram) {
            return prev;
        }
        if m == 1 {
            let g11 = gram[(0, 0)];
            let a = 1.0 / g11.sqrt();
            return if g11 > 0.0 && a.is_finite() { DVector::from_element(1, a) } else { prev };
        }
        // nf = ‖G‖_F computed on G/max|G| so that neither squares nor the root under/overflow.
        let max = gram.amax();
        if max == 0.0 {
            return prev;
        }
        let unit = gram / max;
        let unit_norm = unit.norm();
        let g_hat = &unit / unit_norm;
        let sqrt_nf = max.sqrt() * unit_norm.sqrt();
        if !(sqrt_nf > 0.0 && sqrt_nf.is_finite()) {
            return prev;
        }
        let mut alpha_t = prev;
        for _ in 0..self.optim_niter {
            let solved = solve_step(&g_hat, &(&alpha_t * sqrt_nf), sqrt_nf).map(|b| b / sqrt_nf);
            let nash_gap = (&g_hat * &alpha_t - alpha_t.map(|a| 1.0 / (a + 1e-10))).norm();
            let stop = match &solved {
                None => true,
                Some(next) => nash_gap < 1e-3 || (next - &alpha_t).norm() < 1e-6,
            };
            if stop {
                break;
            }
            alpha_t = solved.unwrap();
        }
        alpha_t
    }
}

/// One CCCP step in β = α√nf: min qᵀβ s.t. β ≥ 0, β_i(Ĝβ)_i ≥ 1, with
/// q = Ĝ1 + ∇φ(β_prev)/√nf (the α-problem's objective times √nf, constants dropped; φ's
/// gradient satisfies ∇φ(α_prev)/nf = ∇φ(β_prev)/√nf). `None` unless clarabel solves it.
fn solve_step(g_hat: &DMatrix<f64>, beta_prev: &DVector<f64>, sqrt_nf: f64) -> Option<DVector<f64>> {
    let m = g_hat.nrows();
    let g_beta = g_hat * beta_prev;
    let grad_phi = beta_prev.map(|b| 1.0 / b) + g_hat * g_beta.map(|v| 1.0 / v);
    let mut q = g_hat.column_sum() + grad_phi / sqrt_nf;
    // A zero α_prev or (Ĝα_prev)_i makes ∇φ infinite: cvxpy rejects the parameter (torchjd
    // catches the error and stops); so does this.
    if !q.iter().all(|v| v.is_finite()) {
        return None;
    }
    let scale = q.amax();
    if scale > 0.0 {
        q /= scale;
    }
    // Clarabel's form: Ax + s = b, s ∈ K. Rows: β ≥ 0 (m), then per task the cone
    // (β_i + (Ĝβ)_i, β_i − (Ĝβ)_i, 2) ∈ SOC₃.
    let rows = 4 * m;
    let mut a = Triplets::default();
    let mut b = vec![0.0; rows];
    for i in 0..m {
        a.push(i, i, -1.0);
        let r = m + 3 * i;
        for k in 0..m {
            let e = if k == i { 1.0 } else { 0.0 };
            a.push(r, k, -(e + g_hat[(i, k)]));
            a.push(r + 1, k, -(e - g_hat[(i, k)]));
        }
        b[r + 2] = 2.0;
    }
    let a = a.into_csc(rows, m);
    let p = CscMatrix::zeros((m, m));
    let mut cones = vec![SupportedConeT::NonnegativeConeT(m)];
    cones.extend((0..m).map(|_| SupportedConeT::SecondOrderConeT(3)));
    solve_conic(&p, q.as_slice(), &a, &b, &cones, None, m)
}

/// √(αᵀGα) = ‖Jᵀα‖ without overflow: both α and G are divided by their largest entry first.
fn update_norm(gram: &DMatrix<f64>, alpha: &DVector<f64>) -> f64 {
    let (ga, aa) = (gram.amax(), alpha.amax());
    if ga == 0.0 || aa == 0.0 {
        return 0.0;
    }
    let a = alpha / aa;
    let q = a.dot(&((gram / ga) * &a)).max(0.0);
    aa * q.sqrt() * ga.sqrt()
}

impl Weighting for NashMtl {
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64> {
        let m = gram.nrows();
        if m == 0 {
            return DVector::zeros(0);
        }
        if self.prev_alpha.len() != m {
            self.prev_alpha = DVector::from_element(m, 1.0);
        }
        let update = self.step.is_multiple_of(self.update_weights_every);
        self.step = self.step.wrapping_add(1);
        if update {
            self.prev_alpha = self.solve(gram);
        }
        let mut alpha = self.prev_alpha.clone();
        if self.max_norm > 0.0 && all_finite(gram) {
            let norm = update_norm(gram, &alpha);
            if norm > self.max_norm && norm.is_finite() {
                alpha *= self.max_norm / norm;
            }
        }
        alpha
    }

    fn reset(&mut self) {
        self.step = 0;
        self.prev_alpha = DVector::from_element(self.n_tasks, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{j_base, worst_conflict, Normal};
    use super::super::{gram, Aggregator};
    use super::*;
    use approx::assert_abs_diff_eq;

    /// Fresh state on J_base. The exact Nash point here has α₁/α₂ = √(38/18) (from
    /// α₁(Gα)₁ = α₂(Gα)₂ = 1), and ‖Jᵀα‖ > 1 so max_norm rescales it to norm 1:
    /// d = [0.05419, 0.70607, 0.70607]. torchjd's value agrees to 1e-4; both solvers stop on
    /// ‖Δα‖ < 1e-6 (or the iteration cap) near that point, so 1e-4 is a fair tolerance, but the
    /// anchor is weak (aggregators.md §7.3): only the fresh first call is comparable.
    #[test]
    fn fresh_call_matches_torchjd_on_j_base() {
        let a = NashMtl::new(2).unwrap().aggregate(&j_base());
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.0542, 0.7061, 0.7061]), epsilon = 1e-4);
        let w = a.weights.unwrap();
        assert_abs_diff_eq!(w[0] / w[1], (38.0f64 / 18.0).sqrt(), epsilon = 1e-4);
        assert_abs_diff_eq!(a.update.norm(), 1.0, epsilon = 1e-9);
    }

    #[test]
    fn reaches_the_bargaining_point_on_full_rank_gramians() {
        let mut rng = Normal::new(40);
        for (m, n) in [(2, 3), (3, 5), (5, 8), (6, 20)] {
            let j = rng.matrix(m, n);
            let g = gram(&j);
            let mut nash = NashMtl::with_params(m, 0.0, 1, 200).unwrap();
            let alpha = nash.weights(&g);
            let prod = alpha.component_mul(&(&g * &alpha));
            assert!((prod.add_scalar(-1.0)).amax() < 1e-3, "{m}×{n}: α_i(Gα)_i = {prod}");
            assert!(worst_conflict(&j, &(j.tr_mul(&alpha))) >= 0.0);
        }
    }

    #[test]
    fn stateful_warm_start_and_reset() {
        let j = Normal::new(41).matrix(3, 4);
        let mut nash = NashMtl::new(3).unwrap();
        let first = nash.aggregate(&j).update;
        assert_ne!(nash.prev_alpha(), &DVector::from_element(3, 1.0));
        nash.aggregate(&j);
        Aggregator::reset(&mut nash);
        assert_eq!(nash.prev_alpha(), &DVector::from_element(3, 1.0));
        assert_eq!(nash.aggregate(&j).update, first);
    }

    #[test]
    fn weights_are_reused_between_updates() {
        let mut rng = Normal::new(42);
        let (j1, j2) = (rng.matrix(3, 5), rng.matrix(3, 5));
        let mut nash = NashMtl::with_params(3, 0.0, 2, 20).unwrap();
        let w1 = nash.weights(&gram(&j1));
        let w2 = nash.weights(&gram(&j2));
        assert_eq!(w1, w2);
        assert_ne!(nash.weights(&gram(&j2)), w1);
    }

    #[test]
    fn guards_for_one_task_zero_and_cancelling_gradients() {
        // m = 1: α = 1/‖g‖, so d = g/‖g‖ (norm 1 = max_norm).
        let j = DMatrix::from_row_slice(1, 2, &[3.0, 4.0]);
        let a = NashMtl::new(1).unwrap().aggregate(&j);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![0.6, 0.8]), epsilon = 1e-12);
        // G = 0: the stored α (ones) and d = 0.
        let a = NashMtl::new(3).unwrap().aggregate(&DMatrix::zeros(3, 2));
        assert_eq!(a.weights.unwrap(), DVector::from_element(3, 1.0));
        assert_eq!(a.update, DVector::zeros(2));
        // g and −g: infeasible, α stays at 1, d = 0.
        let j = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, -1.0, -2.0]);
        let a = NashMtl::new(2).unwrap().aggregate(&j);
        assert!(a.update.iter().all(|v| v.is_finite() && v.abs() < 1e-12));
        // A non-finite Gramian keeps the state.
        let mut bad = gram(&j_base());
        bad[(0, 1)] = f64::NAN;
        assert!(NashMtl::new(2).unwrap().weights(&bad).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn parameters_are_validated() {
        assert!(NashMtl::new(0).is_err());
        assert!(NashMtl::with_params(2, -1.0, 1, 20).is_err());
        assert!(NashMtl::with_params(2, f64::NAN, 1, 20).is_err());
        assert!(NashMtl::with_params(2, 1.0, 0, 20).is_err());
        assert!(NashMtl::with_params(2, 1.0, 1, 0).is_err());
        assert!(NashMtl::with_params(2, 0.0, 3, 5).is_ok());
    }
}
