//! The stability gap (De Lange et al., ICLR 2023; Mattdl/ContinualEvaluation
//! `continual_eval_metrics.py`): a previous task's test performance, evaluated every iteration,
//! drops right after the next task starts and then partly recovers (dynamics.md §4).
//!
//! The paper's metrics are on accuracy (higher is better); Concord's runs draw test *losses*,
//! where the same quantities are read with the sign flipped (`StabilityGap::of_losses`).

/// The gap of one earlier task after a switch, on a per-iteration series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StabilityGap {
    /// The value at the task's end (the last evaluation before the switch).
    pub at_switch: f64,
    /// The worst value after the switch (lowest accuracy / highest loss).
    pub worst: f64,
    /// Index (into the series) of the worst value.
    pub worst_at: usize,
    /// The last value (how far it recovered).
    pub last: f64,
    /// Concord's gap: |at_switch − worst| in the bad direction (dynamics.md §4: A_i(end of task
    /// i) − min_{t>end} A_i(t) for accuracy; worst − at_switch for a loss), never negative.
    pub gap: f64,
}

impl StabilityGap {
    /// `accuracy`: the task's evaluations, `end`: the index of its last evaluation before the
    /// next task starts. `None` when nothing follows the end.
    pub fn of_accuracy(accuracy: &[f64], end: usize) -> Option<Self> {
        Self::of(accuracy, end, true)
    }

    /// The same on a loss series (higher is worse).
    pub fn of_losses(losses: &[f64], end: usize) -> Option<Self> {
        Self::of(losses, end, false)
    }

    fn of(series: &[f64], end: usize, higher_is_better: bool) -> Option<Self> {
        let at_switch = *series.get(end)?;
        let after = series.get(end + 1..).filter(|a| !a.is_empty())?;
        let sign = if higher_is_better { 1.0 } else { -1.0 };
        let (k, &worst) = after
            .iter()
            .enumerate()
            .min_by(|a, b| (sign * a.1).partial_cmp(&(sign * b.1)).unwrap_or(std::cmp::Ordering::Equal))?;
        Some(StabilityGap {
            at_switch,
            worst,
            worst_at: end + 1 + k,
            last: *after.last()?,
            gap: (sign * (at_switch - worst)).max(0.0),
        })
    }
}

/// The paper's summary metrics over accuracy series (Mattdl/ContinualEvaluation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowedStability {
    /// min-ACC: the mean over earlier tasks of their lowest accuracy once later tasks train.
    pub min_acc: f64,
    /// WC-ACC = (1/k)·A_current + (1 − 1/k)·min-ACC.
    pub wc_acc: f64,
    /// WF^w: the largest drop A_i − A_j (i < j, within w evaluations), over the earlier tasks.
    pub wf: f64,
}

impl WindowedStability {
    /// `earlier`: each earlier task's accuracies from its end on (the first entry is its value
    /// at the end); `current`: the current task's accuracy; `window` = w.
    pub fn new(earlier: &[&[f64]], current: f64, window: usize) -> Self {
        let k = earlier.len() + 1;
        let min_acc = if earlier.is_empty() {
            0.0
        } else {
            earlier.iter().map(|a| a[1.min(a.len() - 1)..].iter().copied().fold(f64::INFINITY, f64::min)).sum::<f64>()
                / earlier.len() as f64
        };
        let wc_acc = current / k as f64 + (1.0 - 1.0 / k as f64) * min_acc;
        let mut wf: f64 = 0.0;
        for a in earlier {
            for i in 0..a.len() {
                for j in i + 1..a.len().min(i + window) {
                    wf = wf.max(a[i] - a[j]);
                }
            }
        }
        WindowedStability { min_acc, wc_acc, wf }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn the_papers_metrics_on_dynamics_md_case() {
        // Task-1 accuracy 0.95 at its end, then 0.60, 0.70, 0.90; the current task at 0.80
        // (k = 2): min-ACC 0.60, gap 0.35, WC-ACC 0.70, WF³ 0.35.
        let task1 = [0.95, 0.60, 0.70, 0.90];
        let gap = StabilityGap::of_accuracy(&task1, 0).unwrap();
        assert_abs_diff_eq!(gap.gap, 0.35, epsilon = 1e-12);
        assert_eq!((gap.worst, gap.worst_at, gap.last), (0.60, 1, 0.90));
        let w = WindowedStability::new(&[&task1], 0.80, 3);
        assert_abs_diff_eq!(w.min_acc, 0.60, epsilon = 1e-12);
        assert_abs_diff_eq!(w.wc_acc, 0.70, epsilon = 1e-12);
        assert_abs_diff_eq!(w.wf, 0.35, epsilon = 1e-12);
    }

    #[test]
    fn on_losses_the_gap_is_the_rise() {
        // A loss that falls to 0.2 by the switch (index 2), jumps to 0.9, recovers to 0.4.
        let loss = [1.0, 0.5, 0.2, 0.9, 0.6, 0.4];
        let gap = StabilityGap::of_losses(&loss, 2).unwrap();
        assert_abs_diff_eq!(gap.gap, 0.7, epsilon = 1e-12);
        assert_eq!((gap.worst_at, gap.last), (3, 0.4));
        // A loss that only falls after the switch has no gap; nothing after the end: none.
        assert_eq!(StabilityGap::of_losses(&[1.0, 0.5, 0.4], 0).unwrap().gap, 0.0);
        assert!(StabilityGap::of_losses(&loss, 5).is_none());
    }
}
