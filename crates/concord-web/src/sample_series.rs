//! A run's sample-level conflict over its steps, as the page charts it (issue 17): concord-core's
//! [`SampleConflict`] — per-sample coherence α, the fraction of samples whose tasks' gradients
//! conflict, the share of Σ_i ‖g_i‖ the most opposed 10 % carry — of the train set at each of
//! the run's parameter snapshots (`session::Snapshots`: step 0, then every ≥ 10 steps, thinned
//! as the run grows) and at the latest read-back.
//!
//! One definition for every run: the page computes it on its CPU, in f64 with the reference
//! `Mlp` (`SampleConflict::of_batch`), at the parameters it read back — a WebGPU run's as well,
//! whose trainer records none. The CPU trainer's own records (`TrainConfig::sample_metrics`)
//! measure the step's batch at ~100 steps of the run's step limit (the page's is 10⁷, so step 0
//! and every 100 000th); on a full batch at the same step the two are the same computation.
//!
//! Cost: per point one forward and m backward passes over the (at most [`MAX_POINTS`]) train
//! points, plus the batch Jacobian once more. Points are cached by step, computed oldest first
//! within the caller's time budget.

use concord_core::model::{Mlp, Target};
use concord_core::train::SampleConflict;
use nalgebra::DMatrix;

/// The series measures at most this many train points: the first ones of the train set (the
/// data sources draw points in random order, so this is a random subsample of a large CSV).
pub const MAX_POINTS: usize = 1000;

/// One run's series.
#[derive(Clone, Debug, Default)]
pub struct SampleSeries {
    /// At the snapshot steps, in step order (`None`: it could not be computed there).
    snapshots: Vec<(usize, Option<SampleConflict>)>,
    /// At the latest read-back, when it is past the last snapshot.
    live: Option<(usize, Option<SampleConflict>)>,
    /// How many train points the values measure.
    pub points: usize,
}

/// What the series is measured on: the model, the train points (capped) and their targets.
pub struct Inputs<'a> {
    pub mlp: &'a Mlp,
    pub x: &'a DMatrix<f64>,
    pub y: &'a [Target],
}

impl SampleSeries {
    /// Brings the series up to the run's snapshots (`steps`, `params`: ascending steps and θ at
    /// each) and its latest read-back (`now`). Values already there are kept (a snapshot's θ
    /// never changes; a reset builds a new run and a new series); those of snapshots that were
    /// thinned away are dropped. Missing ones are computed oldest first while `more()` says yes
    /// (asked before each). Returns whether the series is complete.
    pub fn update(
        &mut self,
        inputs: &Inputs,
        steps: &[usize],
        params: &[Vec<f64>],
        now: (usize, &[f64]),
        mut more: impl FnMut() -> bool,
    ) -> bool {
        let n = inputs.x.nrows().min(MAX_POINTS);
        if n != self.points {
            *self = SampleSeries { points: n, ..SampleSeries::default() };
        }
        let sub;
        let (x, y) = if n < inputs.x.nrows() {
            sub = inputs.x.rows(0, n).into_owned();
            (&sub, &inputs.y[..n])
        } else {
            (inputs.x, inputs.y)
        };
        let measure = |theta: &[f64]| SampleConflict::of_batch(inputs.mlp, theta, x, y, None).ok();
        let mut old = std::mem::take(&mut self.snapshots).into_iter().peekable();
        let mut complete = true;
        for (&step, theta) in steps.iter().zip(params) {
            while old.next_if(|(s, _)| *s < step).is_some() {}
            if let Some(kept) = old.next_if(|(s, _)| *s == step) {
                self.snapshots.push(kept);
            } else if complete && more() {
                self.snapshots.push((step, measure(theta)));
            } else {
                complete = false;
            }
        }
        let last = self.snapshots.last().map(|p| p.0);
        if last.is_some_and(|l| now.0 <= l) || now.1.is_empty() {
            self.live = None;
        } else if self.live.as_ref().is_none_or(|(s, _)| *s != now.0) {
            if complete && more() {
                self.live = Some((now.0, measure(now.1)));
            } else {
                complete = false;
            }
        }
        complete
    }

    /// The computed points, in step order (the latest read-back last).
    pub fn values(&self) -> impl Iterator<Item = (usize, &SampleConflict)> {
        self.snapshots.iter().chain(self.live.as_ref()).filter_map(|(s, v)| Some((*s, v.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::train::{Preset, Trainer};

    /// Every point is `SampleConflict::of_batch` at that step's θ on the whole train set,
    /// computed independently here from a trainer stepped alongside; thinned snapshots drop
    /// their points; the budget defers work but never drops it.
    #[test]
    fn the_series_is_the_train_set_conflict_at_each_snapshot() {
        let mut config = Preset::ConflictWedge.config();
        config.batch_size = None;
        let mut trainer = Trainer::new(config).unwrap();
        let mut thetas = vec![trainer.params().to_vec()];
        for _ in 0..30 {
            trainer.step().unwrap();
            thetas.push(trainer.params().to_vec());
        }
        let mlp = trainer.mlp().unwrap();
        let (x, y) = trainer.train_set().unwrap();
        let inputs = Inputs { mlp, x, y };
        let reference = |s: usize| SampleConflict::of_batch(mlp, &thetas[s], x, y, None).unwrap();
        let steps = [0, 10, 20];
        let params: Vec<Vec<f64>> = steps.iter().map(|&s| thetas[s].clone()).collect();
        let mut series = SampleSeries::default();
        // A budget of one point per call.
        let once = || {
            let mut left = true;
            move || std::mem::replace(&mut left, false)
        };
        assert!(!series.update(&inputs, &steps, &params, (25, &thetas[25]), || false), "no budget, no point");
        assert_eq!(series.values().count(), 0);
        assert!(!series.update(&inputs, &steps, &params, (25, &thetas[25]), once()));
        assert_eq!(series.values().map(|p| p.0).collect::<Vec<_>>(), [0]);
        let mut calls = 1;
        loop {
            calls += 1;
            if series.update(&inputs, &steps, &params, (25, &thetas[25]), once()) {
                break;
            }
        }
        assert_eq!(calls, 4, "three snapshots and the live point, one per call");
        let got: Vec<(usize, SampleConflict)> = series.values().map(|(s, v)| (s, v.clone())).collect();
        assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 10, 20, 25]);
        for (s, v) in &got {
            assert_eq!(*v, reference(*s), "step {s}");
            assert_eq!(v.samples, x.nrows());
            assert!((0.0..=1.0).contains(&v.conflicting_fraction));
        }
        // Thinned to every other snapshot and a new one at the latest read-back: 10 and the
        // live point at 25 go, 30 is computed.
        let steps = [0, 20, 30];
        let params: Vec<Vec<f64>> = steps.iter().map(|&s| thetas[s].clone()).collect();
        assert!(series.update(&inputs, &steps, &params, (30, &thetas[30]), || true));
        let got: Vec<usize> = series.values().map(|p| p.0).collect();
        assert_eq!(got, [0, 20, 30], "no live point at the last snapshot");
        assert_eq!(series.values().last().unwrap().1, &reference(30));
    }
}
