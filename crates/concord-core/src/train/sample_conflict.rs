//! Sample-level conflict of one step (issue 17): how the batch's samples agree with each other,
//! and how many of them are torn between the tasks.
//!
//! For the step's batch x_1 … x_B at the parameters the step starts from, g_t(x_i) is the
//! gradient of task t's per-sample loss ℓ_t(x_i, y_i) w.r.t. the shared (trunk) parameters
//! (`PointGradient::Loss` at the batch's own labels; the batch's task loss is the mean over i of
//! ℓ_t(x_i, y_i)), and g_i = Σ_t g_t(x_i) is sample i's gradient of the summed task loss. Loss
//! weightings are not applied: these are the raw tasks, like `StepMetrics`. From each sample's
//! m × m Gram G_i (G_i[s][t] = g_s(x_i)·g_t(x_i), `Mlp::point_grams`):
//!
//! - **coherence** α = ‖mean_i g_i‖² / mean_i ‖g_i‖² (Chatterjee & Zielinski; metrics.md and
//!   methods-wave2.md 4b) over the B per-sample gradients g_i. ‖g_i‖² = 1ᵀG_i1, and
//!   mean_i g_i = Σ_t J_t exactly, J the batch's m × d_shared Jacobian of the *mean* task losses
//!   (J_t = (1/B) Σ_i g_t(x_i)), so no per-sample vector is stored:
//!   α = ‖Σ_t J_t‖² / ((1/B) Σ_i 1ᵀG_i1) ∈ [0, 1]. 1 when every sample pulls the same way, 1/B for
//!   equal-norm orthogonal samples, 0 when they cancel. `None` when every g_i is 0.
//! - **conflicting fraction** = #{i : min_{s<t} cos(g_s(x_i), g_t(x_i)) < 0} / B: the share of the
//!   batch whose own task gradients conflict. A sample with no defined cosine (a zero task
//!   gradient) does not conflict (metrics.md: a zero row is never a conflict); with one task it
//!   is 0.
//! - **opposing share**: the samples ranked by their min pairwise cosine, most opposed first
//!   (undefined ones last); the top [`OPPOSING_TOP_PERCENT`] % of them (n = ⌈B·k/100⌉, at least
//!   one) and the share of Σ_i ‖g_i‖ = Σ_i ‖Σ_t g_t(x_i)‖ they carry. Cosines are compared
//!   rounded to 1e-9 ([`COS_TIE`]), and samples tied at the cut count fractionally: with r
//!   slots left for a tie of q samples, each counts r/q of its norm (the expected share under a
//!   random tie-break). Without that, round-off would pick the top among samples whose tasks
//!   are exactly opposed (tied heads at step 0 give cos = −1 at every point), and with it the
//!   number does not depend on the batch's order.
//!   Why that sum: ‖g_i‖ is how much sample i moves the summed-loss step that a plain mean
//!   method takes, and the shares add up over samples (unlike ‖Σ_i g_i‖, where samples cancel),
//!   so the number reads against the uniform k/100 = 0.1: above it the most opposed samples
//!   carry more than their head count of the gradient (the "opposing signals" view, Rosenfeld &
//!   Risteski: large, opposed groups that dominate the update); below it their task gradients
//!   cancel inside the sample and they barely move the step. `None` when Σ_i ‖g_i‖ = 0.
//!
//! Computed in f64 with the reference `Mlp` at the step's f64 parameters, also when the step runs
//! on the f32 fast path. Cost per recorded step with `TrainConfig::sample_metrics`: one batched
//! forward and m batched backward passes for the Grams (`point_grams`); the f64 reference step
//! already has J, the fast path computes it in f64 once more (another forward and m backward
//! passes). MLP models only: MoE models and the analytic problems record `None`.

use crate::model::{Mlp, PointGradient, PointGrams, Target};
use crate::sample_weighting::{conflict_key, take_first};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// k of the opposing share: the most opposed k % of the batch.
pub const OPPOSING_TOP_PERCENT: usize = 10;

/// Cosines closer than this rank as tied (they are rounded to multiples of it).
pub const COS_TIE: f64 = 1e-9;

/// One step's sample-level conflict (see the module docs for the definitions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleConflict {
    /// B, the batch's samples.
    pub samples: usize,
    /// How many samples the opposing share takes: ⌈B·k/100⌉ (at least one), k = `top_percent`.
    pub top: usize,
    /// k.
    pub top_percent: usize,
    /// α of the per-sample gradients of the summed task loss.
    #[serde(with = "crate::train::float_serde::opt_float", default)]
    pub coherence: Option<f64>,
    /// Share of the samples whose min pairwise task-gradient cosine is < 0.
    #[serde(with = "crate::train::float_serde::float")]
    pub conflicting_fraction: f64,
    /// Share of Σ_i ‖Σ_t g_t(x_i)‖ carried by the `top` most opposed samples.
    #[serde(with = "crate::train::float_serde::opt_float", default)]
    pub opposing_share: Option<f64>,
}

/// ⌈B·k/100⌉, at least one (0 for an empty batch).
fn top_count(b: usize) -> usize {
    (b * OPPOSING_TOP_PERCENT).div_ceil(100).clamp(b.min(1), b)
}

impl SampleConflict {
    /// From each sample's Gram of its per-task gradients and Σ_t J_t = mean_i Σ_t g_t(x_i) (the
    /// column sums of the batch's mean-loss Jacobian).
    pub fn from_grams(grams: &PointGrams, summed_mean: &[f64]) -> Self {
        let (b, m) = (grams.len(), grams.m);
        // ‖g_i‖² = 1ᵀG_i1 (≥ 0 up to round-off).
        let sq: Vec<f64> = (0..b).map(|i| grams.gram(i).iter().sum::<f64>().max(0.0)).collect();
        let mean_sq = sq.iter().sum::<f64>() / b.max(1) as f64;
        let num: f64 = summed_mean.iter().map(|v| v * v).sum();
        let coherence = (b > 0 && mean_sq.is_finite() && mean_sq > 0.0).then(|| (num / mean_sq).clamp(0.0, 1.0));
        let min_cos: Vec<Option<f64>> = (0..b).map(|i| if m < 2 { None } else { grams.min_cos(i) }).collect();
        let conflicting = min_cos.iter().filter(|c| matches!(c, Some(c) if *c < 0.0)).count();
        // The `top` most opposed samples (undefined cosines last), ties at the cut fractionally.
        let keys: Vec<i64> = min_cos.iter().map(|c| conflict_key(*c)).collect();
        let top = top_count(b);
        let norms: Vec<f64> = sq.iter().map(|s| s.sqrt()).collect();
        let total: f64 = norms.iter().sum();
        let carried: f64 = take_first(&keys, top).iter().zip(&norms).map(|(part, n)| part * n).sum();
        let opposing_share = (total.is_finite() && total > 0.0).then(|| (carried / total).clamp(0.0, 1.0));
        SampleConflict {
            samples: b,
            top,
            top_percent: OPPOSING_TOP_PERCENT,
            coherence,
            conflicting_fraction: if b == 0 { 0.0 } else { conflicting as f64 / b as f64 },
            opposing_share,
        }
    }

    /// The batch (x, y) at `params`: the Grams by `Mlp::point_grams` (`PointGradient::Loss`), and
    /// Σ_t J_t from `jacobian` (the batch's m × d_shared mean-loss Jacobian at `params`, when the
    /// caller has it in f64) or from `Mlp::gradients`.
    pub fn of_batch(
        mlp: &Mlp,
        params: &[f64],
        x: &DMatrix<f64>,
        y: &[Target],
        jacobian: Option<&DMatrix<f64>>,
    ) -> Result<Self, String> {
        let grams = mlp.point_grams(params, x, PointGradient::Loss, Some(y))?;
        let summed: Vec<f64> = match jacobian {
            Some(j) => j.row_sum().iter().copied().collect(),
            None => mlp.gradients(params, x, y)?.shared_jacobian.row_sum().iter().copied().collect(),
        };
        if summed.len() != mlp.layout().shared_len {
            return Err(format!(
                "the Jacobian has {} columns, the trunk {} parameters",
                summed.len(),
                mlp.layout().shared_len
            ));
        }
        Ok(SampleConflict::from_grams(&grams, &summed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::coherence;
    use crate::model::{Activation, HeadConfig, LossKind, MlpConfig};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Grams and Σ_t mean_i g_t(x_i) from explicit vectors: `per_task[t]` = B × d, row i = g_t(x_i).
    fn explicit(per_task: &[DMatrix<f64>]) -> (PointGrams, Vec<f64>) {
        let (m, b) = (per_task.len(), per_task[0].nrows());
        let mut grams = vec![0.0; b * m * m];
        for i in 0..b {
            for s in 0..m {
                for t in 0..m {
                    grams[i * m * m + s * m + t] = per_task[s].row(i).dot(&per_task[t].row(i));
                }
            }
        }
        let summed: DMatrix<f64> = per_task.iter().fold(DMatrix::zeros(b, per_task[0].ncols()), |a, g| a + g);
        let mean: Vec<f64> = summed.row_sum().iter().map(|v| v / b as f64).collect();
        (PointGrams { m, grams }, mean)
    }

    fn rows(v: &[&[f64]]) -> DMatrix<f64> {
        DMatrix::from_fn(v.len(), v[0].len(), |r, c| v[r][c])
    }

    #[test]
    fn coherence_matches_the_reference_values() {
        // methods-wave2.md 4b: {[1,0],[0,1],[1,1]} → α = 2/3 (mα = 2); {[1,0],[−1,0]} → 0;
        // identical vectors → 1. Each g_i is split into two task gradients that need not agree
        // (α reads only their sum).
        let cases: [(&[&[f64]], f64); 3] = [
            (&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]], 2.0 / 3.0),
            (&[&[1.0, 0.0], &[-1.0, 0.0]], 0.0),
            (&[&[0.3, -2.0], &[0.3, -2.0], &[0.3, -2.0], &[0.3, -2.0]], 1.0),
        ];
        for (g, want) in cases {
            let sum = rows(g);
            let split = DMatrix::from_fn(sum.nrows(), 2, |r, c| if c == 0 { 2.5 + r as f64 } else { -1.0 });
            let (grams, mean) = explicit(&[split.clone(), &sum - &split]);
            let got = SampleConflict::from_grams(&grams, &mean);
            assert!((got.coherence.unwrap() - want).abs() < 1e-12, "{g:?}: {:?} vs {want}", got.coherence);
            // One task (the g_i themselves) gives the same α.
            let (one, mean1) = explicit(std::slice::from_ref(&sum));
            assert!((SampleConflict::from_grams(&one, &mean1).coherence.unwrap() - want).abs() < 1e-12);
        }
        // Every gradient zero: α undefined, no conflict, no share.
        let zero = DMatrix::zeros(3, 2);
        let (grams, mean) = explicit(&[zero.clone(), zero]);
        let s = SampleConflict::from_grams(&grams, &mean);
        assert_eq!((s.coherence, s.conflicting_fraction, s.opposing_share), (None, 0.0, None));
    }

    #[test]
    fn conflict_and_opposing_share_by_hand() {
        // Four samples, two tasks in ℝ²: sample 0 opposed (cos −1), sample 1 at cos −0.6, sample 2
        // aligned, sample 3 with a zero task gradient (no defined cosine).
        let a = rows(&[&[1.0, 0.0], &[3.0, 0.0], &[0.0, 2.0], &[0.0, 0.0]]);
        let b = rows(&[&[-3.0, 0.0], &[-3.0, 4.0], &[0.0, 1.0], &[5.0, 0.0]]);
        let (grams, mean) = explicit(&[a, b]);
        let s = SampleConflict::from_grams(&grams, &mean);
        assert_eq!(s.conflicting_fraction, 0.5);
        // ⌈4·10/100⌉ = 1 sample: sample 0, ‖g_0‖ = ‖(−2, 0)‖ = 2 of 2 + 4 + 3 + 5 = 14.
        assert_eq!((s.samples, s.top, s.top_percent), (4, 1, 10));
        assert!((s.opposing_share.unwrap() - 2.0 / 14.0).abs() < 1e-15);
        // Ties at the cut count fractionally: two samples at cos = −1 (norms 2 and 6) for one
        // slot carry (2 + 6)/2 of 2 + 6 + 3 = 11, whichever comes first in the batch.
        let a = rows(&[&[1.0, 0.0], &[0.0, 2.0], &[0.0, 4.0]]);
        let b = rows(&[&[-3.0, 0.0], &[0.0, 1.0], &[0.0, -10.0]]);
        let (grams, mean) = explicit(&[a.clone(), b.clone()]);
        let s = SampleConflict::from_grams(&grams, &mean);
        assert!((s.opposing_share.unwrap() - 4.0 / 11.0).abs() < 1e-15, "{s:?}");
        let swap =
            |m: &DMatrix<f64>| rows(&[&[m[(2, 0)], m[(2, 1)]], &[m[(1, 0)], m[(1, 1)]], &[m[(0, 0)], m[(0, 1)]]]);
        let (grams, mean) = explicit(&[swap(&a), swap(&b)]);
        assert_eq!(SampleConflict::from_grams(&grams, &mean).opposing_share, s.opposing_share);
        assert_eq!(top_count(0), 0);
        assert_eq!(top_count(1), 1);
        assert_eq!(top_count(10), 1);
        assert_eq!(top_count(11), 2);
        assert_eq!(top_count(50), 5);
    }

    fn model(heads: Vec<HeadConfig>) -> Mlp {
        Mlp::new(MlpConfig {
            input_dim: 2,
            hidden: vec![6, 5],
            activation: Activation::Tanh,
            heads,
            tied_head_init: false,
            head_init_scale: 1.0,
        })
        .unwrap()
    }

    #[test]
    fn of_batch_equals_the_explicit_per_sample_gradients() {
        // Independent computation: the explicit per-point vectors (`per_point_gradients`, checked
        // against finite differences), summed over tasks, through `metrics::coherence`, explicit
        // cosines and norms. Tolerance 1e-12: the two differ only by round-off.
        let heads = vec![
            HeadConfig { out_dim: 1, loss: LossKind::Bce },
            HeadConfig { out_dim: 1, loss: LossKind::Mse },
            HeadConfig { out_dim: 3, loss: LossKind::SoftmaxCe },
        ];
        let mlp = model(heads);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 37;
        let x = DMatrix::from_fn(n, 2, |_, _| rng.random_range(-2.0..2.0));
        let y = vec![
            Target::Values(DMatrix::from_fn(n, 1, |_, _| if rng.random_bool(0.5) { 1.0 } else { 0.0 })),
            Target::Values(DMatrix::from_fn(n, 1, |_, _| rng.random_range(-1.0..1.0))),
            Target::Classes((0..n).map(|_| rng.random_range(0..3)).collect()),
        ];
        for seed in 0..3 {
            let params = mlp.init_params(seed);
            let per = mlp.per_point_gradients(&params, &x, PointGradient::Loss, Some(&y)).unwrap();
            let g: DMatrix<f64> = per.iter().fold(DMatrix::zeros(n, per[0].ncols()), |a, p| a + p);
            let want_alpha = coherence(&g).unwrap();
            let cos = |i: usize, s: usize, t: usize| {
                let (a, b) = (per[s].row(i), per[t].row(i));
                a.dot(&b) / (a.norm() * b.norm())
            };
            let min_cos: Vec<f64> = (0..n).map(|i| cos(i, 0, 1).min(cos(i, 0, 2)).min(cos(i, 1, 2))).collect();
            let want_fraction = min_cos.iter().filter(|c| **c < 0.0).count() as f64 / n as f64;
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&i, &j| min_cos[i].partial_cmp(&min_cos[j]).unwrap());
            let norms: Vec<f64> = (0..n).map(|i| g.row(i).norm()).collect();
            let top = 4; // ⌈37 · 0.1⌉
            let want_share = order[..top].iter().map(|&i| norms[i]).sum::<f64>() / norms.iter().sum::<f64>();

            // With the step's own Jacobian, and computing it.
            let j = mlp.gradients(&params, &x, &y).unwrap().shared_jacobian;
            for got in [
                SampleConflict::of_batch(&mlp, &params, &x, &y, Some(&j)).unwrap(),
                SampleConflict::of_batch(&mlp, &params, &x, &y, None).unwrap(),
            ] {
                assert!((got.coherence.unwrap() - want_alpha).abs() <= 1e-12, "{got:?} vs α {want_alpha}");
                assert_eq!(got.conflicting_fraction, want_fraction);
                assert_eq!(got.top, top);
                assert!((got.opposing_share.unwrap() - want_share).abs() <= 1e-12, "{got:?} vs {want_share}");
            }
            assert!(want_fraction > 0.0 && want_fraction < 1.0, "a test that can tell: {want_fraction}");
        }
        // A wrong Jacobian width is an error.
        let params = mlp.init_params(0);
        assert!(SampleConflict::of_batch(&mlp, &params, &x, &y, Some(&DMatrix::zeros(3, 2))).is_err());
    }
}
