//! Sample-level conflict in the trainer (`TrainConfig::sample_metrics`): every recorded step of an
//! MLP run carries it, equal to an independent computation from the explicit per-sample
//! gradients of the step's batch at the step's parameters, on both the f64 and the f32 path; it
//! changes nothing about the run; MoE models and the analytic problems record none; old files
//! still read.

use super::*;
use crate::metrics::coherence;
use crate::model::PointGradient;

/// α, the conflicting fraction and the opposing share from explicit vectors: g_t(x_i) by
/// `per_point_gradients` (one backward pass per sample, checked against finite differences in
/// model/point_conflict.rs), summed, α by `metrics::coherence` over the B × d rows.
fn explicit(mlp: &Mlp, params: &[f64], x: &DMatrix<f64>, y: &[Target]) -> (f64, f64, f64) {
    let per = mlp.per_point_gradients(params, x, PointGradient::Loss, Some(y)).unwrap();
    let (b, m) = (x.nrows(), per.len());
    let g = per.iter().fold(DMatrix::zeros(b, per[0].ncols()), |a, p| a + p);
    let min_cos: Vec<f64> = (0..b)
        .map(|i| {
            let mut c = f64::INFINITY;
            for s in 0..m {
                for t in s + 1..m {
                    let (u, v) = (per[s].row(i), per[t].row(i));
                    c = c.min(u.dot(&v) / (u.norm() * v.norm()));
                }
            }
            c
        })
        .collect();
    let fraction = min_cos.iter().filter(|c| **c < 0.0).count() as f64 / b as f64;
    // Sample i's part of the top n: the slots its rank group has left, shared by the group
    // (cosines rounded to 1e-9 as the definition says).
    let top = (b as f64 * OPPOSING_TOP_PERCENT as f64 / 100.0).ceil().max(1.0);
    let key: Vec<f64> = min_cos.iter().map(|c| (c * 1e9).round()).collect();
    let part = |i: usize| {
        let before = key.iter().filter(|k| **k < key[i]).count() as f64;
        let tied = key.iter().filter(|k| **k == key[i]).count() as f64;
        ((top - before) / tied).clamp(0.0, 1.0)
    };
    let norm = |i: usize| g.row(i).norm();
    let share = (0..b).map(|i| part(i) * norm(i)).sum::<f64>() / (0..b).map(norm).sum::<f64>();
    (coherence(&g).unwrap(), fraction, share)
}

fn config(name: &str, precision: Precision, steps: usize) -> TrainConfig {
    let mut c = preset(name).unwrap();
    c.steps = steps;
    c.precision = precision;
    c.sample_metrics = true;
    c
}

#[test]
fn every_recorded_step_carries_what_the_explicit_gradients_give() {
    // Step by step: the parameters before the step and the sampler's batch (the same seed walks
    // the same batches), against the record. 1e-12: both sides are f64 sums of the same terms in
    // different orders. Minibatch (xor-conflict) and full batch (a batch size the train set fits in).
    for (name, full) in [("xor-conflict", false), ("circle-vs-gauss", true), ("sinusoid-phases", false)] {
        for precision in [Precision::F64, Precision::F32] {
            let mut c = config(name, precision, 6);
            if full {
                c.batch_size = None;
            }
            let mut trainer = Trainer::new(c.clone()).unwrap();
            let mlp = trainer.mlp().unwrap().clone();
            let (tx, ty) = trainer.train_set().map(|(x, y)| (x.clone(), y.to_vec())).unwrap();
            let mut sampler = BatchSampler::new(c.seed, c.batch_size, tx.nrows());
            let mut conflicted = false;
            for step in 0..c.steps {
                let before = trainer.params().to_vec();
                let (x, y) = match sampler.next_batch().0 {
                    Some(idx) => (select_rows(&tx, &idx), select_targets(&ty, &idx)),
                    None => (tx.clone(), ty.clone()),
                };
                let record = trainer.step().unwrap().unwrap().clone();
                let s = record.samples.expect("an MLP run that asks records sample conflict");
                let (alpha, fraction, share) = explicit(&mlp, &before, &x, &y);
                let at = format!("{name} {precision:?} step {step}");
                assert_eq!(s.samples, x.nrows(), "{at}");
                assert!((s.coherence.unwrap() - alpha).abs() <= 1e-12, "{at}: α {:?} vs {alpha}", s.coherence);
                assert_eq!(s.conflicting_fraction, fraction, "{at}");
                assert!((s.opposing_share.unwrap() - share).abs() <= 1e-12, "{at}: {:?} vs {share}", s.opposing_share);
                conflicted |= fraction > 0.0;
            }
            if name == "xor-conflict" {
                assert!(conflicted, "xor-conflict's flipped labels make samples conflict");
            }
        }
    }
}

#[test]
fn a_long_run_samples_about_a_hundred_steps_on_recorded_ones() {
    for (steps, every) in [(500, 1), (1000, 3), (99, 1)] {
        let mut c = config("xor-conflict", Precision::F32, steps);
        c.record_every = every;
        let stride = super::sample_stride(&c);
        assert_eq!(stride % every, 0);
        let r = train(&c).unwrap();
        let sampled: Vec<usize> = r.history.iter().filter(|s| s.samples.is_some()).map(|s| s.step).collect();
        let want: Vec<usize> = (0..steps).filter(|s| s % stride == 0 || s + 1 == steps).collect();
        assert_eq!(sampled, want, "{steps} steps, record_every {every}");
        assert!(sampled.len() <= super::SAMPLE_POINTS + 1, "{}", sampled.len());
    }
}

#[test]
fn sample_metrics_change_nothing_else() {
    // The same run with and without: identical parameters, losses and step metrics; the f32 and
    // f64 paths record the same sample metrics at step 0 (same f64 parameters, same batch, J by
    // the same reference code).
    for precision in [Precision::F64, Precision::F32] {
        let with = train(&config("xor-conflict", precision, 20)).unwrap();
        let without = train(&TrainConfig { sample_metrics: false, ..config("xor-conflict", precision, 20) }).unwrap();
        assert_eq!(with.params, without.params);
        assert_eq!(with.final_train_losses, without.final_train_losses);
        assert!(without.history.iter().all(|r| r.samples.is_none()));
        let stripped: Vec<StepRecord> =
            with.history.iter().cloned().map(|r| StepRecord { samples: None, ..r }).collect();
        assert_eq!(stripped, without.history);
    }
    let f32 = train(&config("xor-conflict", Precision::F32, 1)).unwrap();
    let f64 = train(&config("xor-conflict", Precision::F64, 1)).unwrap();
    assert_eq!(f32.history[0].samples, f64.history[0].samples);
}

#[test]
fn only_recorded_steps_of_mlp_runs_carry_it() {
    let mut c = config("xor-conflict", Precision::F32, 10);
    c.record_every = 4;
    let r = train(&c).unwrap();
    assert_eq!(r.history.iter().map(|h| h.step).collect::<Vec<_>>(), [0, 4, 8, 9]);
    assert!(r.history.iter().all(|h| h.samples.is_some()));
    // MoE, the analytic problems: none (the run itself is fine).
    for name in ["task-experts", "pareto-synthetic", "cagrad-toy"] {
        let r = train(&config(name, Precision::F64, 3)).unwrap();
        assert!(r.error.is_none(), "{name}");
        assert!(r.history.iter().all(|h| h.samples.is_none()), "{name}");
    }
}

#[test]
fn configs_and_records_without_it_read_as_before() {
    // Off: the config prints without the key (the presets' printed configs are unchanged); on:
    // it is written and reads back.
    let off = preset("xor-conflict").unwrap();
    let text = serde_json::to_string(&off).unwrap();
    assert!(!text.contains("sample_metrics"));
    assert_eq!(serde_json::from_str::<TrainConfig>(&text).unwrap(), off);
    let on = TrainConfig { sample_metrics: true, ..off };
    let text = serde_json::to_string(&on).unwrap();
    assert!(text.contains("\"sample_metrics\":true"));
    assert_eq!(serde_json::from_str::<TrainConfig>(&text).unwrap(), on);
    // A record with the sample metrics round-trips; one without the key reads as None.
    let r = train(&config("xor-conflict", Precision::F32, 2)).unwrap();
    let back: RunRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
    let mut value = serde_json::to_value(&r).unwrap();
    for h in value["history"].as_array_mut().unwrap() {
        h.as_object_mut().unwrap().remove("samples").expect("written when present");
    }
    let old: RunRecord = serde_json::from_value(value).unwrap();
    assert!(old.history.iter().all(|h| h.samples.is_none()));
}
