//! Gradient-conflict metrics (`shared/reference/metrics.md`).
//!
//! Notation: rows g_i of J (m × n), G = JJᵀ, the update d = Jᵀw, the mean gradient ḡ = Jᵀ1/m.
//! Every metric has a `*_from_gram` form so that the GPU can read it straight off the Gramian it
//! already computes; the J forms just build G first. Per-layer metrics use one G per column block.
//!
//! **Zero rows.** metrics.md says a cosine with a zero gradient is *undefined*, not 0. So pairwise
//! matrices are `Vec<Vec<Option<f64>>>` (row-major, JSON `null` for undefined): cos_ij is `None`
//! when G_ii or G_jj is 0 (or not finite), including the diagonal of a zero row. Scalars that are
//! 0/0 (cos(d, ḡ) with d = 0, α with tr G = 0) are `None` too. A zero row never counts as a
//! conflict (G_ij = 0 is not < 0).
//!
//! Computed in f64; cosines are clamped to [−1, 1] so that round-off in a read-back G cannot
//! push them out of range.

use std::ops::Range;

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::aggregators::gram;

mod neuron_conflict;
pub use neuron_conflict::{moe_neuron_conflicts, neuron_conflicts, neuron_params, NeuronConflict};

/// An m × m matrix of pairwise values, row-major; `None` = undefined (a zero gradient involved).
pub type PairMatrix = Vec<Vec<Option<f64>>>;

/// torchjd's `assert_non_conflicting` tolerances (atol = rtol = 4e-4).
pub const NON_CONFLICT_ATOL: f64 = 4e-4;
pub const NON_CONFLICT_RTOL: f64 = 4e-4;

/// √G_ii, or `None` for a zero (or non-finite) diagonal entry.
fn norm_of(g_ii: f64) -> Option<f64> {
    (g_ii.is_finite() && g_ii > 0.0).then(|| g_ii.sqrt())
}

/// Task-gradient norms ‖g_i‖ = √G_ii (0 for a zero row).
pub fn norms_from_gram(gram: &DMatrix<f64>) -> Vec<f64> {
    (0..gram.nrows()).map(|i| norm_of(gram[(i, i)]).unwrap_or(0.0)).collect()
}

/// cos φ_ij = G_ij/(√G_ii·√G_jj) (PCGrad Def. 1). The diagonal is exactly 1 for non-zero rows.
/// Conflicting iff cos < 0. `None` where either row is zero.
pub fn cosine_from_gram(gram: &DMatrix<f64>) -> PairMatrix {
    let m = gram.nrows();
    let norms: Vec<Option<f64>> = (0..m).map(|i| norm_of(gram[(i, i)])).collect();
    (0..m)
        .map(|i| {
            (0..m)
                .map(|j| match (norms[i], norms[j]) {
                    (Some(_), Some(_)) if i == j => Some(1.0),
                    // Symmetrised and in a fixed order so that cos_ij == cos_ji bit for bit
                    // (a GEMM or GPU G need not be exactly symmetric); divide by each norm
                    // separately because the product G_ii·G_jj can underflow.
                    (Some(ni), Some(nj)) => {
                        let (a, b, na, nb) = if i < j { (i, j, ni, nj) } else { (j, i, nj, ni) };
                        let g_ab = 0.5 * (gram[(a, b)] + gram[(b, a)]);
                        Some((g_ab / na / nb).clamp(-1.0, 1.0))
                    }
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// Pairwise cosine of the rows of J (whole model).
pub fn cosine_matrix(jacobian: &DMatrix<f64>) -> PairMatrix {
    cosine_from_gram(&gram(jacobian))
}

/// G_layer = J[:, range] J[:, range]ᵀ. The range is clamped to the columns of J (an empty or
/// out-of-bounds range gives the zero matrix, so every cosine of that layer is undefined).
pub fn layer_gram(jacobian: &DMatrix<f64>, range: &Range<usize>) -> DMatrix<f64> {
    let n = jacobian.ncols();
    let start = range.start.min(n);
    let end = range.end.clamp(start, n);
    let block = jacobian.columns(start, end - start);
    block * block.transpose()
}

/// Pairwise cosine per layer, one matrix per column range.
pub fn layer_cosines(jacobian: &DMatrix<f64>, ranges: &[Range<usize>]) -> Vec<PairMatrix> {
    ranges.iter().map(|r| cosine_from_gram(&layer_gram(jacobian, r))).collect()
}

/// Conflict ratio: #{i < j : G_ij < 0} / (m(m−1)/2), read off the sign of the off-diagonal of G.
/// 0 means no conflicting pair. With fewer than two tasks there are no pairs: defined as 0.
pub fn conflict_ratio(gram: &DMatrix<f64>) -> f64 {
    let m = gram.nrows();
    if m < 2 {
        return 0.0;
    }
    let mut conflicts = 0usize;
    for i in 0..m {
        for j in i + 1..m {
            if gram[(i, j)] < 0.0 {
                conflicts += 1;
            }
        }
    }
    conflicts as f64 / (m * (m - 1) / 2) as f64
}

/// Recon's S-conflict count for one step: #{i < j : cos φ_ij < s} over pairs with a defined
/// cosine (Recon uses s = 0, −0.02, −0.1; summed over steps and ranked per layer by the caller).
pub fn s_conflict_count(gram: &DMatrix<f64>, s: f64) -> usize {
    cosine_from_gram(gram)
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row.iter().skip(i + 1))
        .filter(|c| matches!(c, Some(c) if *c < s))
        .count()
}

/// Gradient magnitude similarity Φ_ij = 2√(G_iiG_jj)/(G_ii + G_jj) (PCGrad Def. 2):
/// 1 for equal norms, → 0 when one task dominates (exactly 0 when one row is zero and the other
/// is not). `None` only when both rows are zero (0/0).
pub fn gms_from_gram(gram: &DMatrix<f64>) -> PairMatrix {
    let m = gram.nrows();
    let n: Vec<f64> = norms_from_gram(gram);
    (0..m)
        .map(|i| {
            (0..m)
                .map(|j| {
                    let (a, b) = (n[i], n[j]);
                    if a == 0.0 && b == 0.0 {
                        None
                    } else if a == 0.0 || b == 0.0 {
                        Some(0.0)
                    } else {
                        // 2ab/(a² + b²) written as 2/(a/b + b/a) so that neither square overflows.
                        Some((2.0 / (a / b + b / a)).min(1.0))
                    }
                })
                .collect()
        })
        .collect()
}

/// Coherence α = ‖mean_i g_i‖²/mean_i ‖g_i‖² = 1ᵀG1/(m·tr G) ∈ [0, 1]; 1/m for m equal-norm
/// orthogonal vectors, 1 for identical ones (m-coherence = m·α). `None` when tr G = 0 or m = 0.
pub fn coherence_from_gram(gram: &DMatrix<f64>) -> Option<f64> {
    let m = gram.nrows();
    let trace = gram.trace();
    if m == 0 || !(trace.is_finite() && trace > 0.0) {
        return None;
    }
    Some((gram.sum() / (m as f64 * trace)).clamp(0.0, 1.0))
}

/// α of a set of per-sample gradients: one row per sample (Chatterjee & Zielinski).
pub fn coherence(per_sample: &DMatrix<f64>) -> Option<f64> {
    // 1ᵀG1 = ‖Σ_i g_i‖² and tr G = ‖J‖_F², without forming the (samples × samples) Gramian.
    let m = per_sample.nrows();
    let frob2 = per_sample.norm_squared();
    if m == 0 || !(frob2.is_finite() && frob2 > 0.0) {
        return None;
    }
    let sum = per_sample.row_sum();
    Some((sum.norm_squared() / (m as f64 * frob2)).clamp(0.0, 1.0))
}

/// α per task, from one per-sample gradient matrix per task (rows = samples).
pub fn coherence_per_task(per_sample: &[DMatrix<f64>]) -> Vec<Option<f64>> {
    per_sample.iter().map(coherence).collect()
}

/// cos(d, ḡ) with ḡ = Jᵀ1/m: 1 means the same direction as GD on the mean loss.
/// `None` when d = 0 or ḡ = 0.
pub fn update_cosine_mean(jacobian: &DMatrix<f64>, update: &DVector<f64>) -> Option<f64> {
    let m = jacobian.nrows();
    if m == 0 {
        return None;
    }
    let mean = jacobian.row_sum().transpose() / m as f64;
    cosine_of(update.dot(&mean), update.norm(), mean.norm())
}

/// cos(d, ḡ) = wᵀG1/(√(wᵀGw)·√(1ᵀG1)) for d = Jᵀw (the 1/m cancels).
pub fn update_cosine_mean_from_gram(gram: &DMatrix<f64>, weights: &DVector<f64>) -> Option<f64> {
    let gw = gram * weights;
    let dd = weights.dot(&gw);
    let mm = gram.sum();
    cosine_of(gw.sum(), dd.max(0.0).sqrt(), mm.max(0.0).sqrt())
}

fn cosine_of(dot: f64, na: f64, nb: f64) -> Option<f64> {
    (na > 0.0 && nb > 0.0 && na.is_finite() && nb.is_finite()).then(|| (dot / na / nb).clamp(-1.0, 1.0))
}

/// Per-task directional derivatives J·d: (Jd)_i = g_i·d; task i's loss decreases to first
/// order (for θ ← θ − ηd) iff (Jd)_i > 0.
pub fn directional_derivatives(jacobian: &DMatrix<f64>, update: &DVector<f64>) -> DVector<f64> {
    jacobian * update
}

/// J·d = Gw for d = Jᵀw.
pub fn directional_derivatives_from_gram(gram: &DMatrix<f64>, weights: &DVector<f64>) -> DVector<f64> {
    gram * weights
}

/// Tolerances of the non-conflict check (torchjd defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NonConflictTolerance {
    pub atol: f64,
    pub rtol: f64,
}

impl Default for NonConflictTolerance {
    fn default() -> Self {
        NonConflictTolerance { atol: NON_CONFLICT_ATOL, rtol: NON_CONFLICT_RTOL }
    }
}

/// torchjd's `assert_non_conflicting`: ‖(Jd)₊‖ ≈ ‖Jd‖, i.e. ‖Jd‖ − ‖(Jd)₊‖ ≤ atol + rtol·‖Jd‖.
/// Scale-aware: a tiny negative entry next to large positive ones still passes.
pub fn is_non_conflicting(directional: &[f64], tol: NonConflictTolerance) -> bool {
    let full = directional.iter().map(|x| x * x).sum::<f64>().sqrt();
    let pos = directional.iter().map(|x| x.max(0.0).powi(2)).sum::<f64>().sqrt();
    full - pos <= tol.atol + tol.rtol * full
}

/// The tasks to highlight: (Jd)_i < 0 strictly (no tolerance; use `is_non_conflicting` for the
/// verdict).
pub fn conflicting_tasks(directional: &[f64]) -> Vec<usize> {
    directional.iter().enumerate().filter(|(_, &x)| x < 0.0).map(|(i, _)| i).collect()
}

/// Metrics of one column block (layer) of J.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerMetrics {
    pub start: usize,
    pub end: usize,
    #[serde(with = "crate::train::float_serde::floats")]
    pub norms: Vec<f64>,
    #[serde(with = "crate::train::float_serde::pair_matrix")]
    pub cosine: PairMatrix,
    #[serde(with = "crate::train::float_serde::float")]
    pub conflict_ratio: f64,
}

impl LayerMetrics {
    pub fn from_gram(range: &Range<usize>, gram: &DMatrix<f64>) -> Self {
        LayerMetrics {
            start: range.start,
            end: range.end,
            norms: norms_from_gram(gram),
            cosine: cosine_from_gram(gram),
            conflict_ratio: conflict_ratio(gram),
        }
    }
}

/// What is computed every step (the time series of metrics.md: conflict ratio, min_i (Jd)_i,
/// cos(d, ḡ), α and the pairwise matrices).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// ‖g_i‖.
    #[serde(with = "crate::train::float_serde::floats")]
    pub norms: Vec<f64>,
    /// Pairwise cosine of the task gradients (whole model).
    #[serde(with = "crate::train::float_serde::pair_matrix")]
    pub cosine: PairMatrix,
    #[serde(with = "crate::train::float_serde::float")]
    pub conflict_ratio: f64,
    /// Gradient magnitude similarity.
    #[serde(with = "crate::train::float_serde::pair_matrix")]
    pub gms: PairMatrix,
    /// α of the m task gradients, 1ᵀG1/(m·tr G). (α over per-sample gradients needs those and
    /// is computed separately by `coherence`.)
    #[serde(with = "crate::train::float_serde::opt_float", default)]
    pub task_coherence: Option<f64>,
    /// cos(d, ḡ).
    #[serde(with = "crate::train::float_serde::opt_float", default)]
    pub update_cosine_mean: Option<f64>,
    /// J·d.
    #[serde(with = "crate::train::float_serde::floats")]
    pub directional: Vec<f64>,
    /// min_i (Jd)_i (`None` for m = 0).
    #[serde(with = "crate::train::float_serde::opt_float", default)]
    pub min_directional: Option<f64>,
    /// Tasks with (Jd)_i < 0.
    pub conflicting_tasks: Vec<usize>,
    /// torchjd's non-conflict check with the default tolerance.
    pub non_conflicting: bool,
    /// Per-layer metrics, in the order of the given ranges (empty without ranges).
    pub layers: Vec<LayerMetrics>,
}

impl StepMetrics {
    /// From J and the update d (any d: it need not be Jᵀw, e.g. GradDrop). `layers` are column
    /// ranges of J (clamped to its width).
    ///
    /// # Panics
    /// If d's length is not J's number of columns.
    pub fn new(jacobian: &DMatrix<f64>, update: &DVector<f64>, layers: Option<&[Range<usize>]>) -> Self {
        assert_eq!(jacobian.ncols(), update.len(), "d must have one entry per column of J");
        let g = gram(jacobian);
        let directional = directional_derivatives(jacobian, update);
        let layers =
            layers.unwrap_or(&[]).iter().map(|r| LayerMetrics::from_gram(r, &layer_gram(jacobian, r))).collect();
        Self::assemble(&g, directional.as_slice(), update_cosine_mean(jacobian, update), layers)
    }

    /// From G and w (d = Jᵀw), as read back from the GPU; per-layer Gramians optional.
    ///
    /// # Panics
    /// If w's length is not G's size.
    pub fn from_gram(
        gram: &DMatrix<f64>,
        weights: &DVector<f64>,
        layer_grams: Option<&[(Range<usize>, DMatrix<f64>)]>,
    ) -> Self {
        assert_eq!(gram.nrows(), weights.len(), "w must have one entry per task");
        let directional = directional_derivatives_from_gram(gram, weights);
        let layers = layer_grams.unwrap_or(&[]).iter().map(|(r, g)| LayerMetrics::from_gram(r, g)).collect();
        Self::assemble(gram, directional.as_slice(), update_cosine_mean_from_gram(gram, weights), layers)
    }

    /// From G, the directional derivatives Jd and ‖d‖² (the Gramian of [J; d], as the GPU
    /// trainer reads it back for an aggregator that reports no weights): the same values as
    /// [`StepMetrics::new`] up to rounding, since d·ḡ = Σ(Jd)/m and ‖ḡ‖ = √(1ᵀG1)/m.
    pub fn from_directional(gram: &DMatrix<f64>, directional: &[f64], update_norm_sq: f64) -> Self {
        assert_eq!(gram.nrows(), directional.len(), "Jd must have one entry per task");
        let cos_mean = (!directional.is_empty())
            .then(|| cosine_of(directional.iter().sum(), update_norm_sq.max(0.0).sqrt(), gram.sum().max(0.0).sqrt()));
        Self::assemble(gram, directional, cos_mean.flatten(), Vec::new())
    }

    fn assemble(g: &DMatrix<f64>, directional: &[f64], cos_mean: Option<f64>, layers: Vec<LayerMetrics>) -> Self {
        StepMetrics {
            norms: norms_from_gram(g),
            cosine: cosine_from_gram(g),
            conflict_ratio: conflict_ratio(g),
            gms: gms_from_gram(g),
            task_coherence: coherence_from_gram(g),
            update_cosine_mean: cos_mean,
            directional: directional.to_vec(),
            min_directional: directional.iter().copied().reduce(f64::min),
            conflicting_tasks: conflicting_tasks(directional),
            non_conflicting: is_non_conflicting(directional, NonConflictTolerance::default()),
            layers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn j_base() -> DMatrix<f64> {
        DMatrix::from_row_slice(2, 3, &[-4.0, 1.0, 1.0, 6.0, 1.0, 1.0])
    }

    fn random_j(seed: u64, m: usize, n: usize) -> DMatrix<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        DMatrix::from_fn(m, n, |_, _| rng.random::<f64>() * 2.0 - 1.0)
    }

    fn v(x: &[f64]) -> DVector<f64> {
        DVector::from_row_slice(x)
    }

    #[test]
    fn j_base_cosine_is_minus_22_over_sqrt_18_38() {
        let cos = cosine_matrix(&j_base());
        let expected = -22.0 / (18.0f64 * 38.0).sqrt();
        assert_abs_diff_eq!(cos[0][1].unwrap(), expected, epsilon = 1e-15);
        assert_abs_diff_eq!(cos[1][0].unwrap(), expected, epsilon = 1e-15);
        assert_eq!(cos[0][0], Some(1.0));
        assert_eq!(cos[1][1], Some(1.0));
        assert_eq!(conflict_ratio(&gram(&j_base())), 1.0);
    }

    #[test]
    fn m2_reduces_to_three_numbers() {
        // metrics.md: for m = 2, cos = g12/√(g11g22), GMS = 2√(g11g22)/(g11 + g22).
        let g = gram(&j_base());
        let gms = gms_from_gram(&g);
        assert_abs_diff_eq!(gms[0][1].unwrap(), 2.0 * (18.0f64 * 38.0).sqrt() / 56.0, epsilon = 1e-15);
        assert_eq!(gms[0][0], Some(1.0));
        // α = (18 + 38 − 44)/(2·56) = 12/112.
        assert_abs_diff_eq!(coherence_from_gram(&g).unwrap(), 12.0 / 112.0, epsilon = 1e-15);
        assert_abs_diff_eq!(coherence(&j_base()).unwrap(), 12.0 / 112.0, epsilon = 1e-15);
    }

    #[test]
    fn per_layer_cosines_split_columns() {
        // Column 0: [−4] vs [6] → cos −1; columns 1..3: [1,1] vs [1,1] → cos 1.
        let layers = layer_cosines(&j_base(), &[0..1, 1..3]);
        assert_abs_diff_eq!(layers[0][0][1].unwrap(), -1.0, epsilon = 1e-15);
        assert_abs_diff_eq!(layers[1][0][1].unwrap(), 1.0, epsilon = 1e-15);
        // An out-of-range layer is clamped to nothing: every cosine undefined.
        let empty = layer_cosines(&j_base(), &[5..9, 2..2]);
        assert_eq!(empty[0], vec![vec![None, None], vec![None, None]]);
        assert_eq!(empty[1], empty[0]);
    }

    #[test]
    fn zero_rows_give_undefined_cosine_and_no_conflict() {
        let j = DMatrix::from_row_slice(3, 2, &[1.0, 0.0, 0.0, 0.0, -1.0, 0.0]);
        let g = gram(&j);
        let cos = cosine_from_gram(&g);
        assert_eq!(cos[1], vec![None, None, None]);
        assert_eq!(cos[0][1], None);
        assert_eq!(cos[0][2], Some(-1.0));
        // Only the pair (0, 2) conflicts out of 3.
        assert_abs_diff_eq!(conflict_ratio(&g), 1.0 / 3.0, epsilon = 1e-15);
        let gms = gms_from_gram(&g);
        assert_eq!(gms[0][1], Some(0.0));
        assert_eq!(gms[1][1], None);
        assert_eq!(coherence_from_gram(&DMatrix::zeros(2, 2)), None);
        assert_eq!(update_cosine_mean(&j, &v(&[0.0, 0.0])), None);
        assert_eq!(conflict_ratio(&DMatrix::from_element(1, 1, 4.0)), 0.0);
    }

    #[test]
    fn cosine_properties_on_random_jacobians() {
        for seed in 0..20 {
            let m = 1 + (seed as usize % 6);
            let j = random_j(seed, m, 7);
            let g = gram(&j);
            let cos = cosine_from_gram(&g);
            let scaled = cosine_from_gram(&gram(&(&j * 1e12)));
            let tiny = cosine_from_gram(&gram(&(&j * 1e-100)));
            for i in 0..m {
                assert_eq!(cos[i][i], Some(1.0));
                for k in 0..m {
                    let c = cos[i][k].unwrap();
                    assert!((-1.0..=1.0).contains(&c));
                    assert_eq!(cos[i][k], cos[k][i]);
                    assert_abs_diff_eq!(scaled[i][k].unwrap(), c, epsilon = 1e-12);
                    assert_abs_diff_eq!(tiny[i][k].unwrap(), c, epsilon = 1e-12);
                    let gms = gms_from_gram(&g)[i][k].unwrap();
                    assert!(gms > 0.0 && gms <= 1.0);
                }
            }
            let r = conflict_ratio(&g);
            assert!((0.0..=1.0).contains(&r));
            let a = coherence_from_gram(&g).unwrap();
            assert!((0.0..=1.0).contains(&a));
            assert_abs_diff_eq!(a, coherence(&j).unwrap(), epsilon = 1e-12);
        }
    }

    #[test]
    fn coherence_published_extremes() {
        // α⊥ = 1/m for m equal-norm orthogonal gradients, 1 for identical ones.
        for m in 1..6 {
            let eye = DMatrix::<f64>::identity(m, m) * 3.0;
            assert_abs_diff_eq!(coherence(&eye).unwrap(), 1.0 / m as f64, epsilon = 1e-15);
            let same = DMatrix::from_fn(m, 4, |_, k| k as f64 + 1.0);
            assert_abs_diff_eq!(coherence(&same).unwrap(), 1.0, epsilon = 1e-15);
        }
        // Opposite gradients cancel: α = 0.
        let opposite = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, -1.0, -2.0]);
        assert_abs_diff_eq!(coherence(&opposite).unwrap(), 0.0, epsilon = 1e-15);
        let per_task = coherence_per_task(&[opposite, DMatrix::zeros(3, 2)]);
        assert_eq!(per_task[1], None);
    }

    #[test]
    fn update_cosine_mean_agrees_between_j_and_g() {
        let j = j_base();
        let g = gram(&j);
        // Mean: d = ḡ → 1.
        let w = v(&[0.5, 0.5]);
        assert_abs_diff_eq!(update_cosine_mean(&j, &j.tr_mul(&w)).unwrap(), 1.0, epsilon = 1e-15);
        // MGDA's J_base output [0, 1, 1] against ḡ = [1, 1, 1]: 2/(√2·√3).
        let w = v(&[0.6, 0.4]);
        let d = j.tr_mul(&w);
        let expected = 2.0 / (2.0f64.sqrt() * 3.0f64.sqrt());
        assert_abs_diff_eq!(update_cosine_mean(&j, &d).unwrap(), expected, epsilon = 1e-12);
        assert_abs_diff_eq!(update_cosine_mean_from_gram(&g, &w).unwrap(), expected, epsilon = 1e-12);
    }

    #[test]
    fn non_conflict_on_published_j_base_outputs() {
        let j = j_base();
        let g = gram(&j);
        // Mean: Jd = (−2, 8) → conflicting for task 0.
        let jd = directional_derivatives(&j, &v(&[1.0, 1.0, 1.0]));
        assert_eq!(jd, v(&[-2.0, 8.0]));
        assert!(!is_non_conflicting(jd.as_slice(), NonConflictTolerance::default()));
        assert_eq!(conflicting_tasks(jd.as_slice()), vec![0]);
        // Exact UPGrad w = [10/9, 15/19]: Gw > 0.
        let gw = directional_derivatives_from_gram(&g, &v(&[10.0 / 9.0, 15.0 / 19.0]));
        assert!(gw.iter().all(|&x| x > 0.0));
        assert!(is_non_conflicting(gw.as_slice(), NonConflictTolerance::default()));
        // torchjd's DualProj output [0.5563, 1.1109, 1.1109] has g1·d ≈ −0.0034 < 0, yet passes
        // torchjd's tolerance check (aggregators.md §7.1): flagged, but non-conflicting.
        let jd = directional_derivatives(&j, &v(&[0.5563, 1.1109, 1.1109]));
        assert!(jd[0] < 0.0);
        assert_eq!(conflicting_tasks(jd.as_slice()), vec![0]);
        assert!(is_non_conflicting(jd.as_slice(), NonConflictTolerance::default()));
        // With zero tolerance it fails.
        assert!(!is_non_conflicting(jd.as_slice(), NonConflictTolerance { atol: 0.0, rtol: 0.0 }));
    }

    #[test]
    fn step_metrics_from_j_and_from_g_agree() {
        let j = j_base();
        let w = v(&[0.6, 0.4]);
        let d = j.tr_mul(&w);
        let ranges = [0..1, 1..3];
        let a = StepMetrics::new(&j, &d, Some(&ranges));
        let grams: Vec<_> = ranges.iter().map(|r| (r.clone(), layer_gram(&j, r))).collect();
        let b = StepMetrics::from_gram(&gram(&j), &w, Some(&grams));
        assert_eq!(a.norms, vec![18f64.sqrt(), 38f64.sqrt()]);
        assert_eq!(a.conflict_ratio, 1.0);
        assert_abs_diff_eq!(a.directional[0], 2.0, epsilon = 1e-12);
        assert_abs_diff_eq!(a.directional[1], 2.0, epsilon = 1e-12);
        assert!(a.non_conflicting);
        assert!(a.conflicting_tasks.is_empty());
        assert_eq!(a.layers.len(), 2);
        assert_eq!(a.layers[0].conflict_ratio, 1.0);
        assert_eq!(a.layers[1].conflict_ratio, 0.0);
        assert_eq!(a.layers, b.layers);
        assert_abs_diff_eq!(a.min_directional.unwrap(), b.min_directional.unwrap(), epsilon = 1e-12);
        assert_abs_diff_eq!(a.update_cosine_mean.unwrap(), b.update_cosine_mean.unwrap(), epsilon = 1e-12);
        assert_eq!(a.cosine, b.cosine);
    }

    #[test]
    fn step_metrics_serialises_undefined_as_null() {
        let j = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 0.0]);
        let m = StepMetrics::new(&j, &v(&[1.0, 0.0]), None);
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("null"));
        let back: StepMetrics = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let empty = StepMetrics::new(&DMatrix::zeros(0, 3), &v(&[0.0, 0.0, 0.0]), None);
        assert_eq!(empty.min_directional, None);
        assert!(empty.non_conflicting);
    }

    #[test]
    fn recon_s_conflict_counts_pairs_below_threshold() {
        let g = gram(&j_base()); // cos ≈ −0.841
        assert_eq!(s_conflict_count(&g, 0.0), 1);
        assert_eq!(s_conflict_count(&g, -0.9), 0);
    }
}
