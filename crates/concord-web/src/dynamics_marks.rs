//! What a run's training dynamics mark on the charts (issue 18): a sequential run's task
//! switches and task 1's stability gap on its test-loss series, spikes (a score over √θ, or SPAM
//! clipped) and SPAM's moment resets. Read by the loss curves (panels/outputs.rs) and the
//! Training dynamics panel (panels/dynamics.rs).

use crate::session::Run;
use concord_core::dynamics::StabilityGap;

/// SPAM's default θ: a coordinate with g² > θ·v is a spike (dynamics.md §2).
pub const SPIKE_THETA: f64 = 5000.0;
/// Whether a step is a spike: a score over √θ, or SPAM clipped some coordinates.
pub fn is_spike(d: &concord_core::dynamics::DynamicsRecord) -> bool {
    d.spike_score.is_some_and(|s| s > SPIKE_THETA.sqrt()) || d.spikes_clipped > 0
}

/// The steps at which a sequential run moves to the next task (up to its current step).
pub fn switches(run: &Run) -> Vec<usize> {
    run.config.dynamics.schedule.switches(run.train.len(), run.steps + 1)
}

/// The run's test-loss series of task `t`: (step, loss) at every record that evaluated.
pub fn test_series(run: &Run, t: usize) -> Vec<(usize, f64)> {
    run.history.iter().filter_map(|h| Some((h.step, *h.test_losses.as_ref()?.get(t)?))).collect()
}

/// Task 1's stability gap after the first switch, on its test losses: the worst (highest) loss
/// after the switch and the step it came at. A record's losses are at the parameters its step
/// started from, so the record of the switch step is task 1's end.
pub fn first_gap(run: &Run) -> Option<(StabilityGap, usize)> {
    let switch = *switches(run).first()?;
    let series = test_series(run, 0);
    let end = series.iter().rposition(|(s, _)| *s <= switch)?;
    let values: Vec<f64> = series.iter().map(|p| p.1).collect();
    let gap = StabilityGap::of_losses(&values, end)?;
    Some((gap, series[gap.worst_at].0))
}

/// Steps of the run's spikes and of SPAM's moment resets.
pub fn spikes_and_resets(run: &Run) -> (Vec<usize>, Vec<usize>) {
    let (mut spikes, mut resets) = (Vec::new(), Vec::new());
    for h in run.history.iter() {
        if let Some(d) = &h.dynamics {
            if is_spike(d) {
                spikes.push(h.step);
            }
            if d.reset {
                resets.push(h.step);
            }
        }
    }
    (spikes, resets)
}
