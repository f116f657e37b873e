//! One run's task conflict in three numbers, from the per-step cosine of tasks 0 and 1 on the
//! shared parameters (steps where the cosine is undefined — a zero gradient — are skipped).

use super::RunRecord;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConflictSummary {
    /// Mean of cos(g₀, g₁) over the steps.
    pub mean_cosine: f64,
    /// Mean of min(cos, 0): how much the tasks pull against each other (0 = never).
    pub mean_conflict: f64,
    /// Fraction of steps with cos < 0.
    pub conflicting_fraction: f64,
    /// Records with a defined cosine.
    pub steps: usize,
}

impl ConflictSummary {
    /// `None` for fewer than two tasks or no step with a defined cosine. Each record stands for
    /// the steps up to the next one, so a thinned history (older steps kept at a stride) gives
    /// the same means as the full one would, up to sampling; a full history weighs all equally.
    pub fn of(record: &RunRecord) -> Option<Self> {
        let h = &record.history;
        let cos: Vec<(f64, f64)> = h
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let c = s.metrics.cosine.first().and_then(|r| r.get(1).copied().flatten())?;
                // The gap to the next record (the last one repeats the gap before it).
                let gap = match (h.get(i + 1), i.checked_sub(1).and_then(|p| h.get(p))) {
                    (Some(next), _) => next.step - s.step,
                    (None, Some(prev)) => s.step - prev.step,
                    (None, None) => 1,
                };
                Some((c, gap.max(1) as f64))
            })
            .collect();
        if cos.is_empty() {
            return None;
        }
        let n: f64 = cos.iter().map(|(_, w)| w).sum();
        let mean = |f: &dyn Fn(f64) -> f64| cos.iter().map(|(c, w)| f(*c) * w).sum::<f64>() / n;
        Some(ConflictSummary {
            mean_cosine: mean(&|c| c),
            mean_conflict: mean(&|c| c.min(0.0)),
            conflicting_fraction: mean(&|c| if c < 0.0 { 1.0 } else { 0.0 }),
            steps: cos.len(),
        })
    }
}
