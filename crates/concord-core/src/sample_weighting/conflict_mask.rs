//! Masking the most conflicting samples, in the spirit of GTPO (Simoni et al., arXiv
//! 2508.03772; methods-wave2.md 4d), which finds "conflict tokens" (shared by completions whose
//! updates pull opposite ways) and leaves them out of the update that would push them down.
//!
//! Here the unit is a sample and the conflict is between its task gradients: the ⌈B·top/100⌉
//! samples with the most negative smallest pairwise cosine, **among the samples that conflict**
//! (min cos < 0), are left out of the shared gradient; ties at the cut share the slots left
//! (`ranking::take_first`). J′_t = Σ_i w_i g_t(x_i) / Σ_i w_i, the mean over the samples kept
//! (J′ = 0 if none is: only the heads learn that step). A batch without conflict is untouched.
//! GTPO's other half — amplifying the conflict tokens of the positive completions (×2) — has no
//! counterpart here: a sample's tasks have no positive/negative sides.

use super::ranking::{conflict_key, take_first};
use super::{SampleMix, SampleStageRecord, SampleWeightingDescription};
use crate::model::PointGrams;
use crate::weightings::ParamSpec;

pub(super) fn description() -> SampleWeightingDescription {
    SampleWeightingDescription {
        name: "conflict-mask",
        label: "Conflict mask",
        summary: "the top % most conflicting samples (min task cosine < 0) are left out of the shared gradient",
        params: vec![ParamSpec::positive(
            "top",
            10.0,
            100.0,
            "percent of the batch masked at most (the most conflicting)",
        )],
    }
}

pub(super) fn mix(grams: &PointGrams, top: f64) -> SampleMix {
    let b = grams.len();
    let n = ((b as f64 * top / 100.0).ceil() as usize).min(b);
    let min_cos: Vec<Option<f64>> = (0..b).map(|i| grams.min_cos(i)).collect();
    // Only conflicting samples are candidates: the others rank after every candidate.
    let keys: Vec<i64> =
        min_cos.iter().map(|c| if c.is_some_and(|c| c < 0.0) { conflict_key(*c) } else { i64::MAX }).collect();
    let conflicting = keys.iter().filter(|&&k| k != i64::MAX).count();
    let masked = take_first(&keys, n.min(conflicting));
    let weights: Vec<f64> = masked.iter().map(|m| 1.0 - m).collect();
    let changed = masked.iter().sum();
    SampleMix::weighted(grams.m, &weights, SampleStageRecord { samples: b, changed, kept_share: None })
}
