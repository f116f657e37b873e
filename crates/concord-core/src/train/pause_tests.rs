//! A step cut into pieces (`Trainer::step_within`, `Backend::submit_within`,
//! `Trainer::snapshot_within`) gives exactly the numbers of an uninterrupted step — the CPU
//! reference the page's deadline-bounded frames must match bit for bit.

use super::*;
use crate::model::moe::{AuxWeights, RouterKind, TaskGate};
use crate::model::MlpConfig;

/// The runs: MLPs (mini-batch and full batch, a test split, FAMO's losses after the step, a
/// Jacobian weighting) and MoE models (routing noise, capacity, aux losses, task gates).
fn configs() -> Vec<(&'static str, TrainConfig)> {
    let with = |preset_name: &str, method: &str, f: &dyn Fn(&mut TrainConfig)| {
        let mut c = preset(preset_name).unwrap();
        c.method = crate::MethodSpec::parse(method).unwrap();
        c.steps = 23;
        c.eval_every = 5;
        c.layer_metrics = true;
        f(&mut c);
        c
    };
    let moe = |router: RouterKind| {
        move |c: &mut TrainConfig| {
            let mut spec = MoeSpec::new(router);
            spec.experts = 5;
            spec.aux = AuxWeights {
                load_balance: 0.01,
                z_loss: 0.001,
                importance: 0.01,
                load: 0.01,
                mutual_info: 0.005,
                ..Default::default()
            };
            c.moe = Some(spec);
        }
    };
    vec![
        ("mlp pcgrad", with("xor-conflict", "pcgrad", &|_| {})),
        ("mlp full batch famo", with("xor-conflict", "mgda+famo", &|c| c.batch_size = None)),
        ("mlp gradnorm", with("gradnorm-scales", "mean+gradnorm", &|_| {})),
        (
            "mlp deep sinusoid",
            with("sinusoid-phases", "upgrad", &|c| {
                c.model = Some(MlpConfig { hidden: vec![16, 16, 16], ..c.model.clone().unwrap() })
            }),
        ),
        ("moe noisy-topk", with("xor-conflict", "cagrad", &moe(RouterKind::NoisyTopK { k: 2 }))),
        ("moe switch famo", with("circle-vs-gauss", "mean+famo", &moe(RouterKind::Switch { capacity_factor: 1.0 }))),
        (
            "moe expert-choice",
            with("xor-conflict", "nash-mtl", &moe(RouterKind::ExpertChoice { capacity_factor: 2.0 })),
        ),
        (
            "moe task embedding",
            with("xor-conflict", "upgrad+uw", &moe(RouterKind::Task { k: 2, gate: TaskGate::Embedding })),
        ),
        ("task-experts", with("task-experts", "dualproj", &|_| {})),
        ("toy", with("cagrad-toy", "mgda+famo", &|c| c.record_every = 3)),
    ]
}

/// Every number of a trainer's state, exactly (Debug prints f64 so that it reads back the same).
fn fingerprint(t: &Trainer) -> String {
    format!("{:?} {:?} {:?} {:?}", t.step_index(), t.params(), t.history(), t.error())
}

/// Steps by `step_within` with a deadline that has passed after `every` pauses: returns the
/// trainer and how many times a step was cut short.
fn sliced(config: &TrainConfig, steps: usize, every: usize) -> (Trainer, usize) {
    let mut t = Trainer::new(config.clone()).unwrap();
    let mut cuts = 0;
    let mut asked = 0;
    while t.step_index() < steps {
        let before = fingerprint(&t);
        match t.step_within(&mut || {
            asked += 1;
            asked % every == 0
        }) {
            Ok(StepProgress::Paused) => {
                cuts += 1;
                assert!(t.step_in_progress());
                // Nothing of a step shows before it is done.
                assert_eq!(fingerprint(&t), before);
            }
            Ok(StepProgress::Done(_)) => assert!(!t.step_in_progress()),
            Err(e) => panic!("{e}"),
        }
    }
    (t, cuts)
}

#[test]
fn a_step_cut_at_every_pause_gives_exactly_the_uninterrupted_numbers() {
    for (name, config) in configs() {
        let steps = config.steps;
        let mut reference = Trainer::new(config.clone()).unwrap();
        for _ in 0..steps {
            reference.step().unwrap();
        }
        for every in [1, 2, 7] {
            let (t, cuts) = sliced(&config, steps, every);
            assert_eq!(fingerprint(&t), fingerprint(&reference), "{name}, a cut every {every} pauses");
            if config.model.is_some() && every == 1 {
                assert!(cuts >= steps, "{name}: {cuts} cuts in {steps} steps (every {every})");
            }
        }
    }
}

#[test]
fn submit_within_and_read_back_within_match_submit_and_read_back() {
    for (name, config) in configs() {
        let mut reference = Trainer::new(config.clone()).unwrap();
        let mut cut = Trainer::new(config.clone()).unwrap();
        for k in [1, 4, 9] {
            assert_eq!(Backend::submit(&mut reference, k).unwrap(), k);
            let expected = now(reference.read_back()).unwrap().unwrap();
            // At most one piece of work per call: many calls.
            let mut done = 0;
            let mut calls = 0;
            while done < k {
                done += cut.submit_within(k - done, &mut || true).unwrap();
                calls += 1;
            }
            assert!(calls >= k, "{name}");
            let snap = loop {
                if let Some(s) = cut.read_back_within(&mut || true) {
                    break s.unwrap();
                }
            };
            assert_eq!(format!("{snap:?}"), format!("{expected:?}"), "{name}: read-back after {k} steps");
        }
        assert_eq!(fingerprint(&cut), fingerprint(&reference), "{name}");
    }
}

#[test]
fn a_read_back_cut_short_starts_again_after_a_step() {
    let config = configs().remove(0).1;
    let mut t = Trainer::new(config.clone()).unwrap();
    t.step().unwrap();
    assert!(t.snapshot_within(&mut || true).is_none(), "the losses pause");
    t.step().unwrap();
    let snap = t.snapshot_within(&mut || false).unwrap();
    let mut reference = Trainer::new(config).unwrap();
    reference.step().unwrap();
    reference.step().unwrap();
    assert_eq!(format!("{snap:?}"), format!("{:?}", reference.snapshot()), "the losses at step 2, not 1");
}

#[test]
fn restore_drops_a_step_cut_short() {
    let config = configs().remove(0).1;
    let mut t = Trainer::new(config.clone()).unwrap();
    let (p0, h0) = (t.params().to_vec(), Vec::new());
    assert_eq!(t.step_within(&mut || true).unwrap(), StepProgress::Paused);
    t.restore(p0, h0).unwrap();
    assert!(!t.step_in_progress());
    assert_eq!(t.step_index(), 0);
}
