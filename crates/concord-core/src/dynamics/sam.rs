//! SAM's and ASAM's ascent step ε (dynamics.md §1).
//!
//! SAM (Foret et al. 2021; google-research/sam `dual_vector`, davda54/sam):
//!   ε = ρ · g / ‖g‖₂ (the p = 2 case of ρ·sign(g)|g|^{q−1}/‖g‖_q^{q−1}).
//! ASAM (Kwon et al. 2021; SamsungLabs/ASAM `asam.py`):
//!   ε = ρ · T_w² g / ‖T_w g‖₂, T_w = diag(|w|) + η·I on weight tensors, T = 1 on biases.
//!
//! Here g is the run's aggregated direction d₀ (see the module doc of `dynamics`). Norms are
//! accumulated in f64; a zero direction gives ε = 0 (the JAX code would divide by zero).

/// Samsung's class default η (the `T_w = |w| + η` offset), which keeps zero weights movable.
pub const ASAM_ETA: f64 = 0.01;

/// SAM's ε = ρ·g/‖g‖ (0 when g = 0).
pub fn sam_perturbation(direction: &[f64], rho: f64) -> Vec<f64> {
    let n = norm(direction);
    if !(n > 0.0) {
        return vec![0.0; direction.len()];
    }
    direction.iter().map(|g| rho * g / n).collect()
}

/// ASAM's ε = ρ·T²g/‖Tg‖ with T = |w| + η where `is_weight` (biases and other entries: T = 1).
pub fn asam_perturbation(params: &[f64], direction: &[f64], is_weight: &[bool], rho: f64, eta: f64) -> Vec<f64> {
    let t: Vec<f64> =
        params.iter().zip(is_weight).map(|(w, &weight)| if weight { w.abs() + eta } else { 1.0 }).collect();
    let norm = t.iter().zip(direction).map(|(t, g)| (t * g) * (t * g)).sum::<f64>().sqrt();
    if !(norm > 0.0) {
        return vec![0.0; direction.len()];
    }
    // Samsung adds 1e-16 to the norm; with norm > 0 checked above the two agree to that size.
    t.iter().zip(direction).map(|(t, g)| rho * t * t * g / (norm + 1e-16)).collect()
}

/// cos(a, b), 0 when either is zero (GAQAT's plain-vs-SAM gradient metric): the landscape's
/// vector helper.
pub use crate::landscape::vector::cosine;
use crate::landscape::vector::norm;

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    // L = ½(x² + 10y²): ∇L = (x, 10y).
    fn grad(w: &[f64]) -> Vec<f64> {
        vec![w[0], 10.0 * w[1]]
    }

    #[test]
    fn sam_step_on_the_quadratic_matches_dynamics_md() {
        // dynamics.md §1 "Test this": w = (1, 1), ρ = 0.05, SGD η = 0.1.
        let w = [1.0, 1.0];
        let eps = sam_perturbation(&grad(&w), 0.05);
        assert_abs_diff_eq!(eps[0], 0.00497519, epsilon = 1e-8);
        assert_abs_diff_eq!(eps[1], 0.04975186, epsilon = 1e-8);
        let moved = [w[0] + eps[0], w[1] + eps[1]];
        let loss = 0.5 * (moved[0] * moved[0] + 10.0 * moved[1] * moved[1]);
        assert_abs_diff_eq!(loss, 6.0148824, epsilon = 1e-7);
        let g_sam = grad(&moved);
        assert_abs_diff_eq!(g_sam[0], 1.00497519, epsilon = 1e-8);
        assert_abs_diff_eq!(g_sam[1], 10.49751860, epsilon = 1e-8);
        let next = [w[0] - 0.1 * g_sam[0], w[1] - 0.1 * g_sam[1]];
        assert_abs_diff_eq!(next[0], 0.89950248, epsilon = 1e-8);
        assert_abs_diff_eq!(next[1], -0.04975186, epsilon = 1e-8);
    }

    #[test]
    fn asam_follows_samsungs_rule() {
        // dynamics.md §1: w = (1, −2), ρ = 0.5, η = 0.01 → ε = (0.0126838, −1.0046830).
        let w = [1.0, -2.0];
        let eps = asam_perturbation(&w, &grad(&w), &[true, true], 0.5, ASAM_ETA);
        assert_abs_diff_eq!(eps[0], 0.0126838, epsilon = 1e-7);
        assert_abs_diff_eq!(eps[1], -1.0046830, epsilon = 1e-7);
        // davda54's adaptive rule is the η = 0 case: (0.0124961, −0.9996876).
        let eps = asam_perturbation(&w, &grad(&w), &[true, true], 0.5, 0.0);
        assert_abs_diff_eq!(eps[0], 0.0124961, epsilon = 1e-7);
        assert_abs_diff_eq!(eps[1], -0.9996876, epsilon = 1e-7);
    }

    #[test]
    fn asam_leaves_biases_unscaled_and_zero_directions_give_zero() {
        // A bias entry has T = 1: with every entry a bias ASAM is SAM.
        let (w, g) = ([3.0, -0.5, 2.0], [0.2, -1.0, 0.4]);
        let a = asam_perturbation(&w, &g, &[false; 3], 0.1, ASAM_ETA);
        let s = sam_perturbation(&g, 0.1);
        for (x, y) in a.iter().zip(&s) {
            assert_abs_diff_eq!(x, y, epsilon = 1e-15);
        }
        assert_eq!(sam_perturbation(&[0.0, 0.0], 0.05), vec![0.0, 0.0]);
        assert_eq!(asam_perturbation(&[0.0], &[0.0], &[true], 0.5, 0.0), vec![0.0]);
        assert_abs_diff_eq!(cosine(&[1.0, 0.0], &[1.0, 1.0]), std::f64::consts::FRAC_1_SQRT_2, epsilon = 1e-15);
        assert_eq!(cosine(&[0.0], &[1.0]), 0.0);
    }
}
