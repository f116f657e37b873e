//! Per-sample gradient harmonization, after Wu et al., *Scaling Multimodal Pre-Training via
//! Cross-Modality Gradient Harmonization* (NeurIPS 2022, arXiv 2211.02077), whose
//! "cross-modality gradient realignment" modifies the task (there: CMA-loss) gradients **of
//! one sample** so that their directions agree more, before the batch is averaged.
//!
//! The rule here (Concord's; the paper's own equation was not in the copies we could read —
//! methods-wave2.md 4a — so it is stated in full and not called the paper's): within each
//! sample, PCGrad's projection (Yu et al. 2020) with a fixed task order. For every task t, in
//! order s = 0 … m−1 (s ≠ t): if ĝ_t · g_s < 0, ĝ_t ← ĝ_t − (ĝ_t · g_s / ‖g_s‖²) g_s, where
//! ĝ_t starts at g_t(x_i) and g_s are the sample's original gradients. For two tasks that is:
//! where the sample's task gradients conflict, each loses its component along the other; where
//! they agree, nothing changes. Then J′_t = (1/B) Σ_i ĝ_t(x_i): the batch mean of the
//! harmonized per-sample gradients (N = B).
//!
//! Batch-level PCGrad projects the *averaged* task gradients; a batch can average to no
//! conflict while many of its samples conflict (or the reverse), which is the point of doing it
//! per sample. Everything is computed from the sample's Gram: ĝ_t = Σ_s C[t][s] g_s, so
//! ĝ_t · g_s = Σ_k C[t][k] G[k][s].

use super::{SampleMix, SampleStageRecord, SampleWeightingDescription};
use crate::model::PointGrams;

pub(super) fn description() -> SampleWeightingDescription {
    SampleWeightingDescription {
        name: "harmonize",
        label: "Harmonize",
        summary:
            "per sample: each task gradient loses its component along a conflicting one (PCGrad within the sample)",
        params: vec![],
    }
}

/// C (m × m, row-major) of one sample from its Gram G: row t holds ĝ_t's coefficients on the
/// sample's original task gradients; and whether any projection happened. A zero g_s (or a
/// non-finite Gram entry) projects nothing.
pub fn harmonize_coefficients(gram: &[f64], m: usize) -> (Vec<f64>, bool) {
    let mut c = vec![0.0; m * m];
    let mut projected = false;
    for t in 0..m {
        let row = &mut c[t * m..(t + 1) * m];
        row[t] = 1.0;
        for s in (0..m).filter(|&s| s != t) {
            let norm_sq = gram[s * m + s];
            let dot: f64 = (0..m).map(|k| row[k] * gram[k * m + s]).sum();
            if dot < 0.0 && norm_sq > 0.0 && norm_sq.is_finite() {
                row[s] -= dot / norm_sq;
                projected = true;
            }
        }
    }
    (c, projected)
}

pub(super) fn mix(grams: &PointGrams) -> SampleMix {
    let (m, b) = (grams.m, grams.len());
    let mut coefficients = Vec::with_capacity(b * m * m);
    let mut changed = 0;
    for i in 0..b {
        let (c, projected) = harmonize_coefficients(grams.gram(i), m);
        coefficients.extend(c);
        changed += usize::from(projected);
    }
    let record = SampleStageRecord { samples: b, changed: changed as f64, kept_share: None };
    SampleMix { m, coefficients, divisor: b as f64, record }
}
