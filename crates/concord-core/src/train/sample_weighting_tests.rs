//! A sample-weighting stage in the trainer: the update is the aggregator's on the stage's J′
//! (checked against `Mlp::stage_gradients` on the step's batch and parameters, itself checked
//! against explicit per-sample vectors in sample_weighting/tests.rs), the record keeps what the
//! stage did and metrics of the plain J, runs reproduce, and configs it cannot serve are errors.

use super::*;
use crate::MethodSpec;

fn wedge(method: &str, steps: usize) -> TrainConfig {
    let mut c = preset("conflict-wedge").unwrap();
    c.steps = steps;
    c.method = MethodSpec::parse(method).unwrap();
    c
}

#[test]
fn each_step_applies_the_stage_on_its_batch() {
    for method in ["mean+harmonize", "upgrad+conflict-mask:top=20", "mean+curriculum:start=0.3:anneal=6"] {
        let config = wedge(method, 8);
        let spec = config.method.sample_weighting.clone().unwrap();
        let mut t = Trainer::new(config.clone()).unwrap();
        // The same seed walks the same batches.
        let mut sampler = BatchSampler::new(config.seed, config.batch_size, t.train_data().unwrap().0.nrows());
        let mut aggregator = config.method.aggregator.build(2, config.seed).unwrap();
        for step in 0..8 {
            let before = t.params().to_vec();
            let (idx, _) = sampler.next_batch();
            let idx = idx.expect("a minibatch preset");
            let (x, y) = t.train_data().unwrap();
            let (bx, by) = (select_rows(x, &idx), select_targets(y, &idx));
            let mlp = t.mlp().unwrap().clone();
            let want = mlp.stage_gradients(&before, &bx, &by, &spec, step).unwrap();
            let record = t.step().unwrap().unwrap().clone();
            let d = aggregator.aggregate(&want.gradients.shared_jacobian).update;
            let stage = record.sample_stage.as_ref().expect("the stage's record");
            assert_eq!(stage, &want.record, "{method} step {step}");
            assert_eq!(record.losses, want.gradients.losses);
            // The metrics are of the plain J against the update.
            let metrics = StepMetrics::new(&want.raw_jacobian, &d, None);
            assert_eq!(record.metrics, metrics, "{method} step {step}");
            // Adam moved the shared parameters along d: the first step's sign agrees.
            if step == 0 {
                let moved: Vec<f64> = t.params().iter().zip(&before).map(|(a, b)| a - b).collect();
                for (k, dk) in d.iter().enumerate() {
                    if dk.abs() > 1e-12 {
                        assert!(moved[k] * dk < 0.0, "{method}: parameter {k} moves against d");
                    }
                }
            }
        }
    }
}

#[test]
fn a_run_reproduces_and_differs_from_plain_training() {
    let a = train(&wedge("mean+harmonize", 40)).unwrap();
    let b = train(&wedge("mean+harmonize", 40)).unwrap();
    assert_eq!(a.params, b.params);
    assert!(a.history.iter().all(|h| h.sample_stage.is_some()));
    assert!(a.history.iter().any(|h| h.sample_stage.as_ref().unwrap().changed > 0.0), "some sample conflicts");
    let mut plain = wedge("mean", 40);
    plain.precision = Precision::F64;
    let plain = train(&plain).unwrap();
    assert!(plain.history.iter().all(|h| h.sample_stage.is_none()));
    assert_ne!(plain.params, a.params);
    // The record reads back.
    let json = serde_json::to_string(&a).unwrap();
    let back: RunRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back.history, a.history);
    assert!(json.contains("\"sample_weighting\":{\"name\":\"harmonize\"}"), "the config names the stage");
}

#[test]
fn the_stage_runs_on_the_reference_at_either_precision() {
    // The f32 fast path has no per-sample Grams: a stage runs the f64 reference, so the two
    // precisions give the same run.
    let mut f32 = wedge("mean+conflict-mask", 5);
    f32.precision = Precision::F32;
    let mut f64 = f32.clone();
    f64.precision = Precision::F64;
    assert_eq!(train(&f32).unwrap().params, train(&f64).unwrap().params);
}

#[test]
fn configs_without_an_mlp_are_rejected() {
    let mut toy = preset("cagrad-toy").unwrap();
    toy.method = MethodSpec::parse("mean+harmonize").unwrap();
    let e = Trainer::new(toy).err().unwrap();
    assert!(e.contains("sample weighting 'harmonize' needs an MLP model") && e.contains("toy"), "{e}");
    let mut moe = preset("task-experts").unwrap();
    moe.method = MethodSpec::parse("mean+curriculum").unwrap();
    let e = Trainer::new(moe).err().unwrap();
    assert!(e.contains("an MoE model has none"), "{e}");
}
