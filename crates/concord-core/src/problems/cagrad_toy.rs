//! The two-objective toy of CAGrad (`toy.py`), also used by Nash-MTL and FAMO.
//!
//! Losses and gradients follow `shared/reference/toys.md` §1–§3. The gradient is written out
//! by hand, and at every clamp it takes the subgradient the published figures were made with
//! (PyTorch 1.9–1.12): a clamp passes gradient 1 when its input equals the bound. That matters
//! at x₂ = 0, where both gates sit exactly on their bound; see the `start_origin` test.

use super::Problem;

/// The floor under |u| inside the log terms.
pub const LOWER: f64 = 0.000005;

/// CAGrad's toy. `scale` multiplies L₁ only (1.0: `toy.py`; 0.1: Nash-MTL/FAMO `Toy(scale=0.1)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CagradToy {
    pub scale: f64,
}

/// Every intermediate value of the losses at one point, shared by `losses` and `jacobian`.
struct Parts {
    u: [f64; 2],
    f: [f64; 2],
    f_sq: [f64; 2],
    gate: [f64; 2],
}

impl CagradToy {
    pub fn new(scale: f64) -> Self {
        Self { scale }
    }

    /// Minimum of ½(L₁+L₂) for the unscaled toy (toys.md, "Optima").
    pub const AVERAGE_OPTIMUM: [f64; 2] = [0.0, -8.35511];
    /// The Pareto segment the papers draw: x₁ ∈ [−7, 7] at x₂ = −8.3552.
    pub const PARETO_SEGMENT: [[f64; 2]; 2] = [[-7.0, -8.3552], [7.0, -8.3552]];
    /// The plotting domain of `toy.py`.
    pub const DOMAIN: [f64; 2] = [-11.0, 11.0];

    /// The Pareto segment mapped to loss space: (L₁, L₂) at `n` ≥ 2 evenly spaced points of
    /// `PARETO_SEGMENT`, from x₁ = −7 to 7 (what the loss-space figure draws for the toys).
    pub fn pareto_front(&self, n: usize) -> Vec<[f64; 2]> {
        let ([a0, x2], [a1, _]) = (Self::PARETO_SEGMENT[0], Self::PARETO_SEGMENT[1]);
        let n = n.max(2);
        (0..n)
            .map(|i| {
                let a = a0 + (a1 - a0) * i as f64 / (n - 1) as f64;
                let l = self.losses(&[a, x2]);
                [l[0], l[1]]
            })
            .collect()
    }

    fn parts(x1: f64, x2: f64) -> Parts {
        let u1 = 0.5 * (-x1 - 7.0) - (-x2).tanh();
        let u2 = 0.5 * (-x1 + 3.0) + (-x2).tanh() + 2.0;
        let log_term = |u: f64| u.abs().max(LOWER).ln() + 6.0;
        let sq = |c: f64| ((-x1 + c).powi(2) + 0.1 * (-x2 - 8.0).powi(2)) / 10.0 - 20.0;
        Parts {
            u: [u1, u2],
            f: [log_term(u1), log_term(u2)],
            f_sq: [sq(7.0), sq(-7.0)],
            gate: [(0.5 * x2).tanh().max(0.0), (-0.5 * x2).tanh().max(0.0)],
        }
    }

    fn task_scale(&self, task: usize) -> f64 {
        if task == 0 {
            self.scale
        } else {
            1.0
        }
    }
}

/// gate · term, where a closed gate (exactly 0) contributes exactly 0 even when the term
/// overflows: far out (|x| ≳ 1e154) the quadratic branch's term is +inf in f64, and 0 · inf = NaN
/// would stop a finite run (toy.wgsl's `toy_gated` does the same in f32, from |x₁| ≈ 6e19).
fn gated(gate: f64, term: f64) -> f64 {
    if gate == 0.0 {
        0.0
    } else {
        gate * term
    }
}

impl Problem for CagradToy {
    fn num_tasks(&self) -> usize {
        2
    }

    fn dim(&self) -> usize {
        2
    }

    fn losses(&self, x: &[f64]) -> Vec<f64> {
        let p = Self::parts(x[0], x[1]);
        (0..2).map(|i| self.task_scale(i) * (gated(p.gate[0], p.f[i]) + gated(p.gate[1], p.f_sq[i]))).collect()
    }

    fn jacobian(&self, x: &[f64]) -> Vec<Vec<f64>> {
        let (x1, x2) = (x[0], x[1]);
        let p = Self::parts(x1, x2);
        // d tanh(z)/dz = 1 − tanh²(z).
        let sech2 = |z: f64| 1.0 - z.tanh().powi(2);
        // Gates: clamp(tanh(±x₂/2), min=0) passes gradient where the input is ≥ 0 (bound included).
        let dgate = [
            if (0.5 * x2).tanh() >= 0.0 { 0.5 * sech2(0.5 * x2) } else { 0.0 },
            if (-0.5 * x2).tanh() >= 0.0 { -0.5 * sech2(0.5 * x2) } else { 0.0 },
        ];
        // ∂u/∂x for u₁ = −(x₁+7)/2 + tanh(x₂) and u₂ = (3−x₁)/2 − tanh(x₂) + 2.
        let du = [[-0.5, sech2(x2)], [-0.5, -sech2(x2)]];
        // d log(max(|u|, LOWER))/du: 0 below the floor, sign(u)/|u| otherwise, with sign(0) = 0.
        let dlog = |u: f64| {
            if u.abs() < LOWER || u == 0.0 {
                0.0
            } else {
                u.signum() / u.abs()
            }
        };
        let centre = [7.0, -7.0];
        (0..2)
            .map(|i| {
                let df = [dlog(p.u[i]) * du[i][0], dlog(p.u[i]) * du[i][1]];
                let df_sq = [(x1 - centre[i]) / 5.0, (x2 + 8.0) / 50.0];
                let s = self.task_scale(i);
                vec![
                    s * (gated(p.gate[0], df[0]) + gated(p.gate[1], df_sq[0])),
                    s * (gated(p.gate[0], df[1])
                        + gated(p.gate[1], df_sq[1])
                        + gated(dgate[0], p.f[i])
                        + gated(dgate[1], p.f_sq[i])),
                ]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// Along the Pareto segment one loss falls only as the other rises (both toys), and the
    /// middle of the unscaled toy's front is the average optimum's losses (−15.09 each).
    #[test]
    fn the_pareto_front_trades_one_loss_for_the_other() {
        for scale in [1.0, 0.1] {
            let front = CagradToy::new(scale).pareto_front(41);
            assert_eq!(front.len(), 41);
            for w in front.windows(2) {
                assert!(w[1][0] < w[0][0] && w[1][1] > w[0][1], "scale {scale}: {w:?}");
            }
        }
        let mid = CagradToy::new(1.0).pareto_front(3)[1];
        assert!((mid[0] - -15.0916).abs() < 1e-3 && (mid[1] - -15.0916).abs() < 1e-3, "{mid:?}");
    }

    fn numeric_jacobian(p: &CagradToy, x: [f64; 2]) -> Vec<Vec<f64>> {
        let h = 1e-6;
        let mut rows = vec![vec![0.0; 2]; 2];
        for k in 0..2 {
            let mut xp = x;
            let mut xm = x;
            xp[k] += h;
            xm[k] -= h;
            let (lp, lm) = (p.losses(&xp), p.losses(&xm));
            for i in 0..2 {
                rows[i][k] = (lp[i] - lm[i]) / (2.0 * h);
            }
        }
        rows
    }

    #[test]
    fn analytic_gradient_matches_finite_differences_away_from_kinks() {
        for scale in [1.0, 0.1] {
            let toy = CagradToy::new(scale);
            for x in [[-8.5, 7.5], [-8.5, -5.0], [9.0, 9.0], [-7.5, -0.5], [9.0, -1.0], [1.3, 2.2], [0.4, -8.0]] {
                let a = toy.jacobian(&x);
                let n = numeric_jacobian(&toy, x);
                for i in 0..2 {
                    for k in 0..2 {
                        assert_abs_diff_eq!(a[i][k], n[i][k], epsilon = 1e-5 * (1.0 + n[i][k].abs()));
                    }
                }
            }
        }
    }

    #[test]
    fn losses_match_the_published_optima() {
        let toy = CagradToy::new(1.0);
        let l = toy.losses(&CagradToy::AVERAGE_OPTIMUM);
        assert_abs_diff_eq!(0.5 * (l[0] + l[1]), -15.0916, epsilon = 1e-4);
        assert_abs_diff_eq!(toy.losses(&[7.0, -8.43446])[0], -19.98943, epsilon = 1e-5);
        assert_abs_diff_eq!(toy.losses(&[-7.0, -8.43446])[1], -19.98943, epsilon = 1e-5);
        // On x₂ = 0 both gates are 0.
        assert_eq!(toy.losses(&[3.0, 0.0]), vec![0.0, 0.0]);
    }

    /// toys.md §3: at (0, 0) both gates sit on the clamp bound. The papers' PyTorch passed
    /// gradient 1 there, giving ∇L₁ = ∇L₂ = (0, ½(log 3.5 + 6) + ½·14.46) = (0, 10.856381);
    /// the scaled variant multiplies L₁'s by 0.1. A min-norm subgradient would give 0 and freeze
    /// every method at the start.
    #[test]
    fn start_origin_takes_the_papers_subgradient() {
        let expected = 0.5 * (3.5f64.ln() + 6.0) + 0.5 * 14.46;
        assert_abs_diff_eq!(expected, 10.856381, epsilon = 1e-6);
        let j = CagradToy::new(0.1).jacobian(&[0.0, 0.0]);
        assert_abs_diff_eq!(j[0][0], 0.0);
        assert_abs_diff_eq!(j[1][0], 0.0);
        assert_abs_diff_eq!(j[0][1], 0.1 * 10.856381, epsilon = 1e-6);
        assert_abs_diff_eq!(j[1][1], 10.856381, epsilon = 1e-6);
        let j = CagradToy::new(1.0).jacobian(&[0.0, 0.0]);
        assert_abs_diff_eq!(j[0][1], 10.856381, epsilon = 1e-6);
    }

    #[test]
    fn log_floor_has_zero_gradient() {
        // u₁ = 0 exactly on the valley floor: x₁ = −7 − 2·tanh(x₂)... pick x₂ > 0 so the log terms are live.
        let x2: f64 = 1.0;
        let x1 = -7.0 + 2.0 * x2.tanh();
        let toy = CagradToy::new(1.0);
        let j = toy.jacobian(&[x1, x2]);
        // Only the gate derivative remains for task 1.
        let gate_d = 0.5 * (1.0 - (0.5 * x2).tanh().powi(2));
        assert_abs_diff_eq!(j[0][0], 0.0, epsilon = 1e-9);
        assert_abs_diff_eq!(j[0][1], gate_d * (LOWER.ln() + 6.0), epsilon = 1e-6);
    }

    /// Far out on the log side (x₂ > 0 closes the quadratic gate) the quadratic term overflows
    /// f64; the closed gate must still contribute 0, not 0 · inf = NaN (that stopped a finite run
    /// at lr ≈ 1e154 and above, where the GPU's f32 `toy_gated` already held).
    #[test]
    fn closed_gate_times_overflowing_term_is_zero() {
        for scale in [1.0, 0.1] {
            let toy = CagradToy::new(scale);
            for x in [[-1e160, 5.0], [1e200, 2.0], [-1e300, 0.5]] {
                let l = toy.losses(&x);
                let j = toy.jacobian(&x);
                assert!(l.iter().all(|v| v.is_finite()), "losses {l:?} at {x:?}");
                assert!(j.iter().flatten().all(|v| v.is_finite()), "Jacobian {j:?} at {x:?}");
                // Only the log branch is open: L₁ = s·(log|u₁| + 6)·tanh(x₂/2).
                let u1 = 0.5 * (-x[0] - 7.0) + x[1].tanh();
                assert_abs_diff_eq!(
                    l[0],
                    scale * (u1.abs().ln() + 6.0) * (0.5 * x[1]).tanh(),
                    epsilon = 1e-9 * l[0].abs()
                );
            }
        }
    }
}
