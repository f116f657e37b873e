//! TIES merging (Yadav et al. 2023; prateeky2806/ties-merging `src/utils/merge_utils.py`), on
//! task vectors flattened over everything that is merged (in Concord the trunk):
//! 1. **Trim**: keep |τ| ≥ the (d − ⌊dK⌋)-th smallest |τ| ([`keep_mask`]). This is the repo's
//!    `kthvalue` rule, so it keeps ⌊dK⌋ + 1 entries plus ties, not the top ⌊dK⌋.
//! 2. **Elect**: γ_j = sign(Σ_t τ̂_tj); where that sum is 0, γ_j = sign(Σ_j γ_j) (the majority).
//! 3. **Disjoint mean**: τ_m,j = mean of the τ̂_tj whose sign is strictly γ_j, the count clamped
//!    to at least 1. (Where γ_j stays 0 the repo's `torch.where(γ > 0, τ > 0, τ < 0)` would average
//!    the negative entries; dynamics.md says "strictly γ_j", which gives 0 there. The two differ
//!    only when both the coordinate's sum and the sum of all signs are exactly 0.)
//! 4. **Scale**: θ = θ₀ + λ·τ_m. The notebook uses λ = 1 (Concord's default, [`DEFAULT_LAMBDA`]) and
//!    K = 0.2 (`topk20`, [`DEFAULT_KEEP`]).

/// The notebook's λ.
pub const DEFAULT_LAMBDA: f64 = 1.0;
/// `topk20`: K = 0.2.
pub const DEFAULT_KEEP: f64 = 0.2;

/// Which entries of τ survive trimming at keep fraction K ∈ (0, 1]: |τ_j| ≥ the
/// (d − ⌊dK⌋)-th smallest |τ| (1-based). ⌊dK⌋ ≥ d keeps everything; ⌊dK⌋ = 0 keeps |τ| ≥ max.
pub fn keep_mask(tau: &[f64], keep: f64) -> Vec<bool> {
    let d = tau.len();
    let kept = (d as f64 * keep).floor() as usize;
    if d == 0 || kept >= d {
        return vec![true; d];
    }
    let mut abs: Vec<f64> = tau.iter().map(|v| v.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let threshold = abs[d - kept - 1];
    tau.iter().map(|v| v.abs() >= threshold).collect()
}

/// Step 1: τ with the trimmed entries set to 0.
pub fn trim(tau: &[f64], keep: f64) -> Vec<f64> {
    tau.iter().zip(keep_mask(tau, keep)).map(|(&v, k)| if k { v } else { 0.0 }).collect()
}

fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The merged task vector λ·τ_m (add it to θ₀), with keep fraction K.
pub fn ties(taus: &[Vec<f64>], keep: f64, lambda: f64) -> Vec<f64> {
    let d = taus.first().map_or(0, Vec::len);
    assert!(taus.iter().all(|t| t.len() == d), "task vectors of different lengths");
    let trimmed: Vec<Vec<f64>> = taus.iter().map(|t| trim(t, keep)).collect();
    let mut gamma: Vec<f64> = (0..d).map(|j| sign(trimmed.iter().map(|t| t[j]).sum())).collect();
    let majority = sign(gamma.iter().sum());
    gamma.iter_mut().filter(|g| **g == 0.0).for_each(|g| *g = majority);
    (0..d)
        .map(|j| {
            let agree: Vec<f64> = trimmed.iter().map(|t| t[j]).filter(|&v| sign(v) == gamma[j] && v != 0.0).collect();
            lambda * agree.iter().sum::<f64>() / agree.len().max(1) as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::tests::{assert_close, TAUS};

    fn taus() -> Vec<Vec<f64>> {
        TAUS.iter().map(|t| t.to_vec()).collect()
    }

    /// dynamics.md §5 "Test this", K = 0.4: (0.4, −0.7, 0.3, 0.6, −0.5). By hand: ⌊5·0.4⌋ = 2, so
    /// each τ keeps |τ| ≥ its 3rd smallest |τ| (τ₂ keeps four entries, a tie at 0.2).
    #[test]
    fn ties_keep_04_matches_the_hand_computed_case() {
        assert_eq!(trim(&TAUS[1], 0.4), vec![-0.4, 0.2, 0.0, 0.6, -0.2]);
        assert_close(&ties(&taus(), 0.4, 1.0), &[0.4, -0.7, 0.3, 0.6, -0.5], 1e-12);
    }

    /// K = 0.2 (the default): (0.5, −0.7, 0, 0.6, −0.8); the third coordinate's sum is 0 and so is
    /// the sum of the signs, so nothing is elected there.
    #[test]
    fn ties_keep_02_matches_the_hand_computed_case() {
        assert_close(&ties(&taus(), 0.2, 1.0), &[0.5, -0.7, 0.0, 0.6, -0.8], 1e-12);
        // λ scales the merged vector.
        assert_close(&ties(&taus(), 0.2, 0.5), &[0.25, -0.35, 0.0, 0.3, -0.4], 1e-12);
    }

    /// The off-by-one: ⌊dK⌋ + 1 entries survive without ties, not ⌊dK⌋.
    #[test]
    fn trimming_keeps_one_more_than_dk() {
        let tau: Vec<f64> = (1..=10).map(|v| v as f64).collect();
        assert_eq!(keep_mask(&tau, 0.3).iter().filter(|k| **k).count(), 4);
        assert_eq!(keep_mask(&tau, 1.0).iter().filter(|k| **k).count(), 10);
        assert_eq!(keep_mask(&tau, 0.01).iter().filter(|k| **k).count(), 1);
    }

    /// Where the elected sign is 0 but the majority is not, the majority decides.
    #[test]
    fn a_zero_sum_takes_the_majority_sign() {
        // Coordinate 0 sums to 0; coordinates 1 and 2 are positive, so γ₀ = +1 and the mean of
        // the positive entry (0.3) is kept.
        let taus = vec![vec![0.3, 1.0, 1.0], vec![-0.3, 1.0, 1.0]];
        assert_close(&ties(&taus, 1.0, 1.0), &[0.3, 1.0, 1.0], 1e-12);
    }
}
