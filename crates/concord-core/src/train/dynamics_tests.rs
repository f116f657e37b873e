//! The training dynamics in the trainer (`crate::dynamics`): each step is checked against the
//! same step worked out from the model's own gradients (SAM/ASAM, clipping, warm-up, one-task
//! schedules, SPAM's reset), and configs it cannot serve are errors with messages.

use super::*;
use crate::dynamics::{Dynamics, LrSchedule, SamSpec, TaskSchedule};
use crate::optim::SpamParams;
use crate::MethodSpec;
use approx::assert_abs_diff_eq;

/// xor-conflict on the f64 reference, full batch (so a test can take the same gradients).
fn xor(steps: usize, optimizer: TrainOptimizer, dynamics: Dynamics) -> TrainConfig {
    let mut c = preset("xor-conflict").unwrap();
    c.steps = steps;
    c.batch_size = None;
    c.precision = Precision::F64;
    c.optimizer = optimizer;
    c.dynamics = dynamics;
    c
}

fn full_gradients(t: &Trainer, params: &[f64]) -> (DMatrix<f64>, Vec<Vec<f64>>) {
    let (x, y) = t.train_data().unwrap();
    let g = t.mlp().unwrap().gradients(params, x, y).unwrap();
    (g.shared_jacobian, g.head_grads)
}

/// Mean's full update: the row mean of J, then each head's own gradient.
fn mean_full(j: &DMatrix<f64>, heads: &[Vec<f64>]) -> Vec<f64> {
    let m = j.nrows() as f64;
    let mut full: Vec<f64> = (0..j.ncols()).map(|c| j.column(c).sum() / m).collect();
    for h in heads {
        full.extend(h);
    }
    full
}

#[test]
fn sam_steps_with_the_gradient_at_the_ascent_point() {
    // SGD (lr 0.1) + SAM ρ = 0.05 on Mean: ε = ρ·d₀/‖d₀‖ over the whole update, d at w + ε.
    let config =
        xor(3, TrainOptimizer::sgd(0.1, 0.0), Dynamics { sam: Some(SamSpec::sam(0.05)), ..Default::default() });
    let mut t = Trainer::new(config).unwrap();
    for _ in 0..3 {
        let w = t.params().to_vec();
        let (j, h) = full_gradients(&t, &w);
        let d0 = mean_full(&j, &h);
        let n0 = d0.iter().map(|v| v * v).sum::<f64>().sqrt();
        let moved: Vec<f64> = w.iter().zip(&d0).map(|(w, d)| w + 0.05 * d / n0).collect();
        let (j2, h2) = full_gradients(&t, &moved);
        let d = mean_full(&j2, &h2);
        let record = t.step().unwrap().unwrap().clone();
        for k in 0..w.len() {
            assert_abs_diff_eq!(t.params()[k], w[k] - 0.1 * d[k], epsilon = 1e-14);
        }
        let dynamics = record.dynamics.expect("a SAM run records its dynamics");
        let cos = crate::dynamics::cosine(&d0, &d);
        assert_abs_diff_eq!(dynamics.sam_cosine.unwrap(), cos, epsilon = 1e-14);
        assert!(cos < 1.0 - 1e-9, "the SAM gradient differs from the plain one");
        assert_eq!(dynamics.lr, 0.1);
    }
}

#[test]
fn asam_scales_weights_not_biases() {
    let config =
        xor(1, TrainOptimizer::sgd(0.1, 0.0), Dynamics { sam: Some(SamSpec::asam(0.5)), ..Default::default() });
    let mut t = Trainer::new(config).unwrap();
    let w = t.params().to_vec();
    let (j, h) = full_gradients(&t, &w);
    let d0 = mean_full(&j, &h);
    let layout = t.mlp().unwrap().layout().clone();
    let mut tw = vec![1.0; w.len()];
    for s in layout.trunk.iter().chain(&layout.heads) {
        for k in s.weight.clone() {
            tw[k] = w[k].abs() + 0.01;
        }
    }
    let norm = tw.iter().zip(&d0).map(|(t, g)| (t * g).powi(2)).sum::<f64>().sqrt();
    let moved: Vec<f64> = (0..w.len()).map(|k| w[k] + 0.5 * tw[k] * tw[k] * d0[k] / norm).collect();
    let (j2, h2) = full_gradients(&t, &moved);
    let d = mean_full(&j2, &h2);
    t.step().unwrap();
    for k in 0..w.len() {
        assert_abs_diff_eq!(t.params()[k], w[k] - 0.1 * d[k], epsilon = 1e-13);
    }
}

#[test]
fn sam_on_a_toy_follows_the_problem_gradients() {
    let mut config = preset("cagrad-toy").unwrap();
    config.steps = 5;
    config.optimizer = TrainOptimizer::sgd(0.01, 0.0);
    config.method = MethodSpec::plain("mean");
    config.dynamics.sam = Some(SamSpec::sam(0.05));
    let mut t = Trainer::new(config).unwrap();
    let p = *t.analytic().unwrap();
    for _ in 0..5 {
        let x = t.params().to_vec();
        let mean = |x: &[f64]| {
            let j = p.jacobian(x);
            [(j[0][0] + j[1][0]) / 2.0, (j[0][1] + j[1][1]) / 2.0]
        };
        let d0 = mean(&x);
        let n = (d0[0] * d0[0] + d0[1] * d0[1]).sqrt();
        let d = mean(&[x[0] + 0.05 * d0[0] / n, x[1] + 0.05 * d0[1] / n]);
        t.step().unwrap();
        assert_abs_diff_eq!(t.params()[0], x[0] - 0.01 * d[0], epsilon = 1e-15);
        assert_abs_diff_eq!(t.params()[1], x[1] - 0.01 * d[1], epsilon = 1e-15);
    }
}

#[test]
fn clipping_caps_the_update_norm() {
    // SGD moves by lr·d: with clip 0.01 the step's length is lr·0.01·‖d‖/(‖d‖ + 1e-6).
    let config = xor(2, TrainOptimizer::sgd(0.5, 0.0), Dynamics { clip_norm: Some(0.01), ..Default::default() });
    let mut t = Trainer::new(config).unwrap();
    let w = t.params().to_vec();
    let (j, h) = full_gradients(&t, &w);
    let d = mean_full(&j, &h);
    let total = d.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(total > 0.01, "the preset's first update is larger than the clip ({total})");
    let record = t.step().unwrap().unwrap().clone();
    let coef = 0.01 / (total + 1e-6);
    for k in 0..w.len() {
        assert_abs_diff_eq!(t.params()[k], w[k] - 0.5 * coef * d[k], epsilon = 1e-15);
    }
    let dynamics = record.dynamics.unwrap();
    assert!(dynamics.clipped);
    assert_abs_diff_eq!(dynamics.grad_norm, total, epsilon = 1e-12);
}

#[test]
fn warmup_and_cosine_set_each_steps_learning_rate() {
    let dynamics =
        Dynamics { warmup: 4, lr_schedule: LrSchedule::Cosine { min_ratio: 0.0, over: None }, ..Default::default() };
    let config = xor(12, TrainOptimizer::sgd(0.2, 0.0), dynamics);
    let mut t = Trainer::new(config).unwrap();
    let w = t.params().to_vec();
    t.step().unwrap();
    assert_eq!(t.params(), w.as_slice(), "the first warm-up step has lr 0");
    t.run_to_end(|_| {});
    let lrs: Vec<f64> = t.history().iter().map(|r| r.dynamics.as_ref().unwrap().lr).collect();
    let want: Vec<f64> =
        (0..12).map(|s| 0.2 * crate::dynamics::lr_factor(t.config().dynamics.lr_schedule, 4, 12, s)).collect();
    assert_eq!(lrs, want);
    for (got, want) in lrs[..5].iter().zip([0.0, 0.05, 0.1, 0.15, 0.2]) {
        assert_abs_diff_eq!(*got, want, epsilon = 1e-15);
    }
}

#[test]
fn one_task_schedules_step_one_task_and_leave_the_other_head() {
    let layout = |t: &Trainer| t.mlp().unwrap().layout().clone();
    let sequential = Dynamics { schedule: TaskSchedule::Sequential { switch_every: 3 }, ..Default::default() };
    let mut t = Trainer::new(xor(6, TrainOptimizer::sgd(0.1, 0.0), sequential)).unwrap();
    let heads = layout(&t).heads;
    for step in 0..6 {
        let w = t.params().to_vec();
        let (j, h) = full_gradients(&t, &w);
        let task = usize::from(step >= 3);
        let record = t.step().unwrap().unwrap().clone();
        assert_eq!(record.dynamics.as_ref().unwrap().task, Some(task));
        // The shared part moved along task `task`'s row; its head along its own gradient.
        for c in 0..j.ncols() {
            assert_abs_diff_eq!(t.params()[c], w[c] - 0.1 * j[(task, c)], epsilon = 1e-15);
        }
        let (mine, other) = (heads[task].range(), heads[1 - task].range());
        for (k, idx) in mine.enumerate() {
            assert_abs_diff_eq!(t.params()[idx], w[idx] - 0.1 * h[task][k], epsilon = 1e-15);
        }
        assert_eq!(&t.params()[other.clone()], &w[other], "the other head stays");
        assert!(record.aggregator_weights.is_none());
    }
    let alternating = Dynamics { schedule: TaskSchedule::Alternating { intervals: None }, ..Default::default() };
    let mut t = Trainer::new(xor(6, TrainOptimizer::adam(0.01), alternating)).unwrap();
    t.run_to_end(|_| {});
    let tasks: Vec<_> = t.history().iter().map(|r| r.dynamics.as_ref().unwrap().task.unwrap()).collect();
    assert_eq!(tasks, vec![0, 1, 0, 1, 0, 1]);
}

#[test]
fn sampled_schedules_reproduce() {
    let sample = Dynamics { schedule: TaskSchedule::Sample { weights: None }, ..Default::default() };
    let a = train(&xor(30, TrainOptimizer::adam(0.01), sample.clone())).unwrap();
    let b = train(&xor(30, TrainOptimizer::adam(0.01), sample)).unwrap();
    assert_eq!(a.params, b.params);
    let tasks: Vec<_> = a.history.iter().map(|r| r.dynamics.as_ref().unwrap().task.unwrap()).collect();
    assert!(tasks.contains(&0) && tasks.contains(&1), "{tasks:?}");
}

#[test]
fn spam_resets_and_records_spikes() {
    let spam = SpamParams { reset_every: 30, warmup: 3, ..SpamParams::new(0.01) };
    let mut config = xor(65, TrainOptimizer::Spam(spam), Dynamics::default());
    config.precision = Precision::F32; // SPAM runs on both paths
    let record = train(&config).unwrap();
    assert!(record.error.is_none());
    let resets: Vec<usize> =
        record.history.iter().filter(|r| r.dynamics.as_ref().unwrap().reset).map(|r| r.step).collect();
    // Optimizer steps t = 30 and 60 are steps 29 and 59.
    assert_eq!(resets, vec![29, 59]);
    // The score needs 20 updates in v: steps 20–28 have one, then none until 20 after the reset.
    let scored: Vec<usize> =
        record.history.iter().filter(|r| r.dynamics.as_ref().unwrap().spike_score.is_some()).map(|r| r.step).collect();
    assert_eq!(scored, (20..29).chain(49..59).collect::<Vec<_>>());
    // Adam records the score only when asked.
    let adam = train(&xor(25, TrainOptimizer::adam(0.01), Dynamics::default())).unwrap();
    assert!(adam.history.iter().all(|r| r.dynamics.is_none()));
    let spikes = train(&xor(25, TrainOptimizer::adam(0.01), Dynamics { spikes: true, ..Default::default() })).unwrap();
    assert!(spikes.history[20].dynamics.as_ref().unwrap().spike_score.is_some());
    assert!(spikes.history[19].dynamics.as_ref().unwrap().spike_score.is_none());
    // The score does not change the run.
    assert_eq!(adam.params, spikes.params);
}

#[test]
fn default_dynamics_change_nothing_and_are_not_written() {
    let config = xor(5, TrainOptimizer::adam(0.01), Dynamics::default());
    let text = serde_json::to_string(&config).unwrap();
    assert!(!text.contains("dynamics"), "{text}");
    let with = Dynamics {
        sam: Some(SamSpec::asam(0.5)),
        clip_norm: Some(1.0),
        warmup: 2,
        lr_schedule: LrSchedule::Cosine { min_ratio: 0.1, over: Some(50) },
        schedule: TaskSchedule::Sequential { switch_every: 3 },
        spikes: true,
    };
    let config = xor(5, TrainOptimizer::spam(0.01), with);
    let back: TrainConfig = serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(back, config);
}

#[test]
fn configs_the_dynamics_cannot_serve_are_refused() {
    let mut c = xor(
        5,
        TrainOptimizer::adam(0.01),
        Dynamics { schedule: TaskSchedule::Alternating { intervals: None }, ..Default::default() },
    );
    c.method = MethodSpec::parse("mean+uw").unwrap();
    assert!(Trainer::new(c.clone()).err().unwrap().contains("nothing to weigh"));
    c.method = MethodSpec::parse("mean+harmonize").unwrap();
    assert!(Trainer::new(c.clone()).err().unwrap().contains("cannot be combined"));
    for (dynamics, says) in [
        (Dynamics { sam: Some(SamSpec::sam(0.0)), ..Default::default() }, "rho"),
        (Dynamics { clip_norm: Some(f64::NAN), ..Default::default() }, "clip_norm"),
        (Dynamics { warmup: 9, ..Default::default() }, "longer than the run"),
        (Dynamics { schedule: TaskSchedule::Sequential { switch_every: 0 }, ..Default::default() }, "switch_every"),
        (
            Dynamics { schedule: TaskSchedule::Sample { weights: Some(vec![1.0]) }, ..Default::default() },
            "one per task",
        ),
    ] {
        let err = Trainer::new(xor(5, TrainOptimizer::adam(0.01), dynamics)).err().unwrap();
        assert!(err.contains(says), "{err}");
    }
}
