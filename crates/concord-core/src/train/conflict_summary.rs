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
    /// Steps with a defined cosine.
    pub steps: usize,
}

impl ConflictSummary {
    /// `None` for fewer than two tasks or no step with a defined cosine.
    pub fn of(record: &RunRecord) -> Option<Self> {
        let cos: Vec<f64> = record
            .history
            .iter()
            .filter_map(|s| s.metrics.cosine.first().and_then(|r| r.get(1).copied().flatten()))
            .collect();
        if cos.is_empty() {
            return None;
        }
        let n = cos.len() as f64;
        Some(ConflictSummary {
            mean_cosine: cos.iter().sum::<f64>() / n,
            mean_conflict: cos.iter().map(|c| c.min(0.0)).sum::<f64>() / n,
            conflicting_fraction: cos.iter().filter(|c| **c < 0.0).count() as f64 / n,
            steps: cos.len(),
        })
    }
}
