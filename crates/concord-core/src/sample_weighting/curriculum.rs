//! A conflict curriculum, after the "gradient-based curriculum learning" of Wu et al. (NeurIPS
//! 2022, arXiv 2211.02077), which takes a sample's gradient conflict as a sign that the sample
//! is noisy and trains on the less noisy samples first.
//!
//! The rule here (Concord's: the paper's schedule was not in the copies we could read,
//! methods-wave2.md 4a): a pacing function over the batch ranked by conflict. At step k the
//! batch's least-conflicting share
//!
//! q(k) = start + (1 − start) · min(1, k / anneal)
//!
//! is trained on, the rest left out: q starts at `start` and grows linearly to the whole batch
//! by step `anneal` — a step count, not a share of the run: the page's runs have no end (their
//! step count is a limit), and a replay of a run's first k steps must train as they did.
//!
//! A sample's rank is its smallest pairwise task-gradient cosine, highest first (a sample
//! without one — a zero task gradient — ranks first: it has no conflict); ties at the cut share
//! the slots left (`ranking::take_first`). With n = round(q·B) (at least 1) samples let in,
//! w_i ∈ [0, 1] and J′_t = Σ_i w_i g_t(x_i) / Σ_i w_i: the mean over the samples let in.

use super::ranking::{conflict_key, take_first};
use super::{SampleMix, SampleStageRecord, SampleWeightingDescription};
use crate::model::PointGrams;
use crate::weightings::ParamSpec;

pub(super) fn description() -> SampleWeightingDescription {
    SampleWeightingDescription {
        name: "curriculum",
        label: "Conflict curriculum",
        summary: "the batch's least-conflicting samples first; the share let in grows from start to all by step anneal",
        params: vec![
            ParamSpec::positive("start", 0.5, 1.0, "share of the batch let in at step 0 (the least conflicting)"),
            ParamSpec::positive("anneal", 200.0, 1e7, "the step from which every sample is let in"),
        ],
    }
}

/// q(k): the share of the batch let in at step k.
pub(super) fn kept_share(step: usize, start: f64, anneal: f64) -> f64 {
    start + (1.0 - start) * (step as f64 / anneal).min(1.0)
}

pub(super) fn mix(grams: &PointGrams, step: usize, start: f64, anneal: f64) -> SampleMix {
    let b = grams.len();
    let share = kept_share(step, start, anneal);
    let n = ((share * b as f64).round() as usize).clamp(b.min(1), b);
    // Least conflicting first: the negated key (no cosine: first of all).
    let keys: Vec<i64> = (0..b).map(|i| conflict_key(grams.min_cos(i)).saturating_neg()).collect();
    let weights = take_first(&keys, n);
    let changed = b as f64 - weights.iter().sum::<f64>();
    SampleMix::weighted(grams.m, &weights, SampleStageRecord { samples: b, changed, kept_share: Some(share) })
}
