use super::*;
use crate::data::parse_csv;
use crate::method::MethodSpec;
use crate::weightings::WeightingSpec;

fn with(mut c: TrainConfig, aggregator: &str, steps: usize) -> TrainConfig {
    c.method = MethodSpec::parse(aggregator).unwrap();
    c.steps = steps;
    c
}

fn mean_loss(l: &[f64]) -> f64 {
    l.iter().sum::<f64>() / l.len() as f64
}

#[test]
fn every_preset_parses_validates_and_is_listed() {
    for p in Preset::ALL {
        let c = preset(p.name()).unwrap();
        assert_eq!(c, p.config());
        c.validate().unwrap();
        assert!(!p.description().is_empty());
        Trainer::new(c).unwrap();
    }
    let err = preset("nope").unwrap_err();
    assert!(err.contains("xor-conflict") && err.contains("pareto-synthetic"), "{err}");
}

#[test]
fn the_same_config_reproduces_a_run_bit_for_bit() {
    for (name, agg, w) in [
        ("xor-conflict", "pcgrad", None),
        ("sinusoid-phases", "upgrad", Some("rlw")),
        ("pareto-synthetic", "mgda", Some("famo")),
    ] {
        let mut c = with(preset(name).unwrap(), agg, 40);
        c.method.weighting = w.map(|w| WeightingSpec::named(w).unwrap());
        let a = train(&c).unwrap();
        let b = train(&c).unwrap();
        assert!(a.error.is_none(), "{name}: {:?}", a.error);
        assert_eq!(a, b, "{name}");
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        // Another seed gives another run.
        c.seed = 1;
        assert_ne!(train(&c).unwrap().params, a.params, "{name}");
    }
}

/// Every preset learns with Mean and with UPGrad: the whole-train-set loss falls.
#[test]
fn loss_decreases_on_every_preset_with_mean_and_upgrad() {
    // The toys run 100 000 steps at lr 1e-3: tests/cagrad_paper.rs checks them.
    for p in Preset::ALL.into_iter().filter(|p| p.toy_problem().is_none()) {
        for agg in ["mean", "upgrad"] {
            let mut c = with(p.config(), agg, 300);
            // The data and model learn; a one-task schedule forgets the earlier tasks by design
            // (the sequential presets' own tests: dynamics_presets_tests.rs), so train jointly.
            c.dynamics.schedule = crate::dynamics::TaskSchedule::Joint;
            let t = Trainer::new(c.clone()).unwrap();
            let before = mean_loss(&t.train_losses().unwrap());
            let r = train(&c).unwrap();
            assert!(r.error.is_none(), "{} {agg}: {:?}", p.name(), r.error);
            assert_eq!(r.steps_done, 300);
            let after = mean_loss(&r.final_train_losses);
            assert!(after < 0.8 * before, "{} {agg}: {before} → {after}", p.name());
            if let Some(test) = &r.final_test_losses {
                assert!(test.iter().all(|v| v.is_finite()));
            }
        }
    }
}

#[test]
fn xor_conflict_starts_opposed_and_non_conflicting_methods_stay_non_conflicting() {
    let steps = 150;
    let mean = train(&with(preset("xor-conflict").unwrap(), "mean", steps)).unwrap();
    let cos0 = mean.history[0].metrics.cosine[0][1].unwrap();
    assert!(cos0 < -0.5, "initial cosine {cos0}");
    assert!(
        mean.history.iter().any(|s| !s.metrics.non_conflicting),
        "mean never conflicted: min Jd = {:?}",
        mean.history.iter().map(|s| s.metrics.min_directional.unwrap()).fold(f64::INFINITY, f64::min)
    );
    for agg in ["upgrad", "mgda"] {
        let r = train(&with(preset("xor-conflict").unwrap(), agg, steps)).unwrap();
        assert!(r.error.is_none());
        for s in &r.history {
            assert!(s.metrics.non_conflicting, "{agg} step {}: J·d = {:?}", s.step, s.metrics.directional);
        }
    }
}

#[test]
fn a_diverging_run_stops_with_an_error_and_keeps_finite_parameters() {
    for name in ["gradnorm-scales", "sinusoid-phases"] {
        let mut c = with(preset(name).unwrap(), "sum", 200);
        c.optimizer = TrainOptimizer::sgd(1e6, 0.0);
        let r = train(&c).unwrap();
        let e = r.error.as_deref().unwrap_or_else(|| panic!("{name}: lr 1e6 did not diverge"));
        assert!(e.contains("not finite") && e.contains("step"), "{e}");
        assert!(r.steps_done < 200);
        assert_eq!(r.history.len(), r.steps_done);
        assert!(r.params.iter().all(|v| v.is_finite()));
        // The trainer refuses to go on.
        let mut t = Trainer::new(c).unwrap();
        t.run_to_end(|_| {});
        assert!(t.is_done() && t.step().is_err());
    }
}

#[test]
fn trainer_steps_evaluates_and_keeps_optimizer_state_on_set_lr() {
    let mut c = preset("circle-vs-gauss").unwrap();
    c.steps = 25;
    c.eval_every = 10;
    c.layer_metrics = true;
    let mut t = Trainer::new(c.clone()).unwrap();
    for k in 0..5 {
        let s = t.step().unwrap().expect("every step is recorded");
        assert_eq!(s.step, k);
        assert_eq!(s.losses.len(), 2);
        assert_eq!(s.metrics.layers.len(), 2);
        assert_eq!(s.test_losses.is_some(), k % 10 == 0);
    }
    // set_lr keeps the moments: continuing equals a fresh run that changed lr at the same step.
    t.set_lr(0.02).unwrap();
    assert!(t.set_lr(-1.0).is_err());
    let mut u = Trainer::new(c).unwrap();
    for _ in 0..5 {
        u.step().unwrap();
    }
    u.set_lr(0.02).unwrap();
    t.run_to_end(|_| {});
    u.run_to_end(|_| {});
    assert_eq!(t.params(), u.params());
    let r = t.record();
    assert_eq!(r.config.optimizer.lr(), 0.02);
    let evals: Vec<_> = r.history.iter().filter(|s| s.test_losses.is_some()).map(|s| s.step).collect();
    assert_eq!(evals, vec![0, 10, 20]);
    assert!(t.step().is_err());
}

#[test]
fn loss_weighting_scales_rows_and_heads() {
    // A constant weighting-free run and an EW run (w = 1) are identical; GradNorm-style
    // weightings run without error.
    let base = with(preset("gradnorm-scales").unwrap(), "mean", 20);
    let mut ew = base.clone();
    ew.method.weighting = Some(WeightingSpec::named("ew").unwrap());
    let (a, b) = (train(&base).unwrap(), train(&ew).unwrap());
    assert_eq!(a.params, b.params);
    assert_eq!(b.history[0].loss_weights.as_deref(), Some(&[1.0, 1.0][..]));
    for w in ["uw", "dwa", "gradnorm", "famo", "gls", "stch", "rlw"] {
        let mut c = base.clone();
        c.method.weighting = Some(WeightingSpec::named(w).unwrap());
        let r = train(&c).unwrap();
        assert!(r.error.is_none(), "{w}: {:?}", r.error);
        assert!(r.history.iter().all(|s| s.loss_weights.as_ref().is_some_and(|l| l.len() == 2)));
    }
}

#[test]
fn adamw_sgd_momentum_and_csv_points_train() {
    let mut c = with(preset("sinusoid-phases").unwrap(), "mean", 50);
    c.optimizer = TrainOptimizer::adamw(0.01);
    assert!(train(&c).unwrap().error.is_none());
    c.optimizer = TrainOptimizer::sgd(0.05, 0.9);
    assert!(train(&c).unwrap().error.is_none());
    // The user's CSV: two tasks on four points, full batch, split 3 / 1.
    let mut data = parse_csv("x1,x2,a,b\n0,0,1,-1\n1,0,-1,1\n0,1,1,1\n1,1,-1,-1\n").unwrap();
    data.n_train = 3;
    let c = TrainConfig {
        data: DataSource::Points { data },
        model: Some(crate::model::MlpConfig::playground(vec![4], 2)),
        batch_size: None,
        ..with(preset("xor-conflict").unwrap(), "upgrad", 30)
    };
    let r = train(&c).unwrap();
    assert!(r.error.is_none());
    assert!(r.final_test_losses.is_some());
    // A full-batch run counts one epoch per step (DWA uses epochs).
    let mut c2 = c.clone();
    c2.method.weighting = Some(WeightingSpec::named("dwa").unwrap());
    assert!(train(&c2).unwrap().error.is_none());
}

#[test]
fn bad_configs_are_clear_errors() {
    let ok = preset("xor-conflict").unwrap();
    let cases: Vec<(TrainConfig, &str)> = vec![
        (TrainConfig { steps: 0, ..ok.clone() }, "steps"),
        (TrainConfig { eval_every: 0, ..ok.clone() }, "eval_every"),
        (TrainConfig { batch_size: Some(0), ..ok.clone() }, "batch_size"),
        (TrainConfig { batch_size: Some(100_000), ..ok.clone() }, "batch_size"),
        (TrainConfig { optimizer: TrainOptimizer::adam(0.0), ..ok.clone() }, "learning rate"),
        (TrainConfig { optimizer: TrainOptimizer::sgd(0.1, 1.5), ..ok.clone() }, "momentum"),
        (TrainConfig { model: None, ..ok.clone() }, "needs a model"),
        (TrainConfig { model: Some(crate::model::MlpConfig::playground(vec![4], 3)), ..ok.clone() }, "3 heads"),
        (
            TrainConfig {
                model: Some(crate::model::MlpConfig {
                    input_dim: 3,
                    ..crate::model::MlpConfig::playground(vec![4], 2)
                }),
                ..ok.clone()
            },
            "inputs",
        ),
        (
            TrainConfig {
                model: Some(crate::model::MlpConfig {
                    head_init_scale: 0.0,
                    ..crate::model::MlpConfig::playground(vec![4], 2)
                }),
                ..ok.clone()
            },
            "head_init_scale",
        ),
        (TrainConfig { model: ok.model.clone(), ..preset("pareto-synthetic").unwrap() }, "leave the model out"),
        (TrainConfig { data: DataSource::ParetoSynthetic { n: 0 }, ..preset("pareto-synthetic").unwrap() }, "n"),
    ];
    for (c, needle) in cases {
        let e = Trainer::new(c).err().expect("config should be rejected");
        assert!(e.contains(needle), "'{e}' does not mention '{needle}'");
    }
    // MSE/BCE mismatch with the labels: sinusoid regression with a BCE head.
    let mut s = preset("sinusoid-phases").unwrap();
    if let Some(m) = s.model.as_mut() {
        m.heads[0].loss = crate::model::LossKind::SoftmaxCe;
    }
    assert!(Trainer::new(s).is_err());
    // Serde round trip of a config.
    let json = serde_json::to_string(&ok).unwrap();
    assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), ok);
}

#[test]
fn restore_puts_back_params_and_history_and_rejects_mismatches() {
    let c = with(preset("xor-conflict").unwrap(), "upgrad", 100);
    let mut a = Trainer::new(c.clone()).unwrap();
    for _ in 0..30 {
        a.step().unwrap();
    }
    let mut b = Trainer::new(c.clone()).unwrap();
    assert_ne!(b.params(), a.params());
    b.restore(a.params().to_vec(), a.history().to_vec()).unwrap();
    assert_eq!(b.params(), a.params());
    assert_eq!(b.step_index(), 30);
    assert_eq!(b.train_losses().unwrap(), a.train_losses().unwrap());
    // The next step is numbered 30 and starts from the restored parameters.
    assert_eq!(b.step().unwrap().unwrap().step, 30);

    let mut short = a.params().to_vec();
    short.pop();
    assert!(b.restore(short, Vec::new()).unwrap_err().contains("parameters"));
    let mut nan = a.params().to_vec();
    nan[0] = f64::NAN;
    assert!(b.restore(nan, Vec::new()).unwrap_err().contains("non-finite"));
    // A thinned history (steps increasing from 0) restores; one that goes back does not.
    let mut back = a.history().to_vec();
    back[3].step = 2;
    assert!(b.restore(a.params().to_vec(), back).unwrap_err().contains("record 3 says step 2, not after step 2"));
    let mut late = a.history().to_vec();
    late[0].step = 1;
    assert!(b.restore(a.params().to_vec(), late).unwrap_err().contains("record 0 says step 1"));
    let mut thinned = a.history().to_vec();
    thinned.remove(3);
    b.restore(a.params().to_vec(), thinned).unwrap();
    assert_eq!(b.step_index(), 30);
}

/// A config file's method is parsed (and checked) once, when it is read: bad names and values
/// are errors there; the first wave's keys (aggregator, aggregator_params, weighting,
/// weighting_params) still load, translated.
#[test]
fn config_files_parse_the_method_once_and_old_keys_still_load() {
    let ok = serde_json::to_value(preset("xor-conflict").unwrap()).unwrap();
    let with_keys = |drop: &[&str], add: serde_json::Value| {
        let mut v = ok.clone();
        for k in drop {
            v.as_object_mut().unwrap().remove(*k);
        }
        for (k, x) in add.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value::<TrainConfig>(v).map_err(|e| e.to_string())
    };
    let old = with_keys(
        &["method"],
        serde_json::json!({"aggregator": "upgrad", "aggregator_params": [["pref_vector", "1,3"]], "weighting": "dwa", "weighting_params": [["T", "3"]]}),
    )
    .unwrap();
    assert_eq!(old.method, MethodSpec::parse("upgrad+dwa:pref_vector=1;3:T=3").unwrap());
    Trainer::new(old).unwrap();
    let cases: [(&[&str], serde_json::Value, &str); 7] = [
        (&["method"], serde_json::json!({"aggregator": "nope"}), "unknown aggregator"),
        (&["method"], serde_json::json!({"aggregator": "mean", "aggregator_params": [["c", "1"]]}), "no parameters"),
        (&["method"], serde_json::json!({"aggregator": "mean", "weighting": "nope"}), "unknown loss weighting"),
        (
            &["method"],
            serde_json::json!({"aggregator": "mean", "weighting_params": [["mu", "1"]]}),
            "without a loss weighting",
        ),
        (
            &[],
            serde_json::json!({"method": {"aggregator": {"name": "mean"}, "weighting": {"name": "stch", "mu": -1}}}),
            "mu",
        ),
        (&[], serde_json::json!({"aggregator": "mean"}), "not both"),
        (&["method"], serde_json::json!({}), "needs a \"method\""),
    ];
    for (drop, add, needle) in cases {
        let e = with_keys(drop, add.clone()).unwrap_err();
        assert!(e.contains(needle), "{add}: {e}");
    }
    // A list parameter whose length is not m is caught when the run is built.
    let mut c = preset("xor-conflict").unwrap();
    c.method = MethodSpec::parse("upgrad:pref_vector=1;2;3").unwrap();
    let e = Trainer::new(c).err().unwrap();
    assert!(e.contains("pref_vector has 3 entries but the matrix has m = 2 rows"), "{e}");
}

/// The toys are a data source of the one trainer: x is the parameter vector, every registry
/// method runs on them (required parameters supplied) and the same config reproduces a run.
#[test]
fn every_registry_method_runs_on_the_cagrad_toys() {
    for problem in crate::problems::ProblemKind::ALL {
        for info in &crate::aggregators::registry::AGGREGATORS {
            let text = match info.name {
                "constant" => "constant:weights=0.3;0.7",
                "krum" | "trimmed-mean" => continue,
                "fairgrad" => "fairgrad:alpha=1",
                other => other,
            };
            let mut c = Preset::CagradToy.config();
            c.data = DataSource::Toy { problem, start: [-8.5, 7.5] };
            c.method = MethodSpec::parse(text).unwrap();
            c.steps = 300;
            c.record_every = 50;
            let r = train(&c).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(r.error.is_none(), "{text}: {:?}", r.error);
            assert_eq!(r.steps_done, 300);
            assert_eq!(r.params.len(), 2);
            assert_ne!(r.params, vec![-8.5, 7.5], "{text} did not move");
            // Recorded every 50th step and the last.
            let steps: Vec<usize> = r.history.iter().map(|s| s.step).collect();
            assert_eq!(steps, vec![0, 50, 100, 150, 200, 250, 299], "{text}");
            assert_eq!(r.task_names, vec!["L1", "L2"]);
            assert_eq!(train(&c).unwrap(), r, "{text}: not reproducible");
        }
        // Krum needs m ≥ 3 and TrimmedMean m ≥ 3 rows: the toy has 2 tasks, a clear error.
        let mut c = Preset::CagradToy.config();
        c.method = MethodSpec::parse("krum:n_byzantine=0").unwrap();
        assert!(Trainer::new(c).err().unwrap().contains("needs m ≥ n_byzantine + 3"));
    }
    // Every loss weighting too, with the default aggregator.
    for w in crate::weightings::NAMES {
        let mut c = Preset::CagradToyScaled.config();
        c.method = MethodSpec::parse(&format!("mean+{w}")).unwrap();
        c.steps = 200;
        let r = train(&c).unwrap();
        assert!(r.error.is_none(), "{w}: {:?}", r.error);
        assert!(r.history.iter().all(|s| s.loss_weights.as_ref().is_some_and(|l| l.len() == 2)), "{w}");
    }
}

/// The CPU trainer through the backend contract: submit k steps, read back what they produced.
#[test]
fn the_cpu_trainer_is_a_backend() {
    use crate::train::{now, Backend};
    let mut c = Preset::CagradToy.config();
    c.steps = 30;
    c.record_every = 1;
    let mut t = Trainer::new(c.clone()).unwrap();
    assert_eq!(Backend::submit(&mut t, 10).unwrap(), 10);
    let s = now(t.read_back()).expect("a CPU read-back is ready").unwrap();
    assert_eq!((s.steps_done, s.new_records.len()), (10, 10));
    Backend::set_lr(&mut t, 0.5).unwrap();
    assert_eq!(Backend::submit(&mut t, 100).unwrap(), 20, "only 20 steps are left");
    let s = now(t.read_back()).unwrap().unwrap();
    assert_eq!(s.new_records.first().map(|r| r.step), Some(10));
    assert_eq!(s.steps_done, 30);
    assert_eq!(s.params, t.params());
    assert_eq!(s.train_losses, t.train_losses().unwrap());
    assert_eq!(Backend::submit(&mut t, 5).unwrap(), 0);
    // The same 30 steps, stepped directly with the same lr change, end at the same point.
    let mut u = Trainer::new(c).unwrap();
    for _ in 0..10 {
        u.step().unwrap();
    }
    u.set_lr(0.5).unwrap();
    u.run_to_end(|_| {});
    assert_eq!(u.params(), t.params());
}
