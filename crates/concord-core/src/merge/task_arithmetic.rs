//! Task arithmetic (Ilharco et al. 2023; mlfoundations/task_vectors `src/task_vectors.py`):
//! τ_t = θ_t − θ₀ and θ = θ₀ + λ·Σ_t τ_t. Their `apply_to` defaults to λ = 1, the README's sum
//! example uses 0.8 and the TIES repo's notebook 0.4 (Concord's default, [`DEFAULT_LAMBDA`]);
//! the paper picks λ on held-out data.

/// The TIES repo notebook's λ, Concord's default for task arithmetic.
pub const DEFAULT_LAMBDA: f64 = 0.4;

/// The merged task vector λ·Σ_t τ_t (add it to θ₀). All τ_t must have one length.
pub fn task_arithmetic(taus: &[Vec<f64>], lambda: f64) -> Vec<f64> {
    let d = taus.first().map_or(0, Vec::len);
    let mut out = vec![0.0; d];
    for tau in taus {
        assert_eq!(tau.len(), d, "task vectors of different lengths");
        for (o, v) in out.iter_mut().zip(tau) {
            *o += v;
        }
    }
    out.iter_mut().for_each(|o| *o *= lambda);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::tests::{assert_close, TAUS};

    /// dynamics.md §5 "Test this": λ = 0.4 gives (0.16, −0.24, 0.18, 0.2, −0.24) (by hand:
    /// Σ τ = (0.4, −0.6, 0.45, 0.5, −0.6)).
    #[test]
    fn task_arithmetic_matches_the_hand_computed_case() {
        let taus: Vec<Vec<f64>> = TAUS.iter().map(|t| t.to_vec()).collect();
        assert_close(&task_arithmetic(&taus, 0.4), &[0.16, -0.24, 0.18, 0.2, -0.24], 1e-12);
    }

    #[test]
    fn one_task_at_lambda_one_is_the_parent() {
        let tau = vec![0.3, -2.0, 5.0];
        assert_eq!(task_arithmetic(std::slice::from_ref(&tau), 1.0), tau);
    }
}
