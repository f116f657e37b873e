//! The trainer with the loss-aware aggregators (MoCo, DB-MTL, MGDA `gn=loss` / `loss+`): every
//! path that has the batch's losses hands them to the aggregator — the f64 reference (toys, MLPs,
//! MoE models) and the f32 fast path — and a loss weighting on top is refused.

use super::*;
use crate::aggregators::AggregatorSpec;
use crate::method::MethodSpec;
use crate::problems::{Problem, ProblemKind};

const LOSS_AWARE: [&str; 4] = ["moco", "db-mtl", "mgda:gn=loss", "mgda:gn=loss+"];

fn toy(method: &str, steps: usize) -> TrainConfig {
    let mut c = Preset::CagradToy.config();
    c.data = DataSource::Toy { problem: ProblemKind::CagradToy, start: [-8.5, 7.5] };
    c.method = MethodSpec::parse(method).unwrap();
    c.steps = steps;
    c
}

/// With plain SGD, x_{k+1} = x_k − η·d_k, where d_k is the aggregator's update from the toy's
/// J and losses at x_k: the trainer's run is replayed step by step (the state carried by MoCo and
/// DB-MTL included) from the aggregator alone, to rounding.
#[test]
fn toy_runs_are_the_aggregator_fed_with_the_losses() {
    let lr = 0.01;
    for method in LOSS_AWARE {
        let mut c = toy(method, 6);
        c.optimizer = TrainOptimizer::Sgd { lr, momentum: 0.0 };
        let r = train(&c).unwrap();
        assert!(r.error.is_none(), "{method}: {:?}", r.error);
        let problem = ProblemKind::CagradToy.toy();
        let mut agg = MethodSpec::parse(method).unwrap().aggregator.build(2, c.seed).unwrap();
        let mut x = vec![-8.5, 7.5];
        for _ in 0..6 {
            let rows = problem.jacobian(&x);
            let j = DMatrix::from_fn(2, 2, |i, k| rows[i][k]);
            let d = agg.aggregate_with_losses(&j, &problem.losses(&x)).update;
            x = x.iter().zip(d.iter()).map(|(xi, di)| xi - lr * di).collect();
        }
        let err = (x[0] - r.params[0]).abs().max((x[1] - r.params[1]).abs());
        assert!(err <= 1e-12 * (1.0 + x[0].abs().max(x[1].abs())), "{method}: replay {x:?} vs run {:?}", r.params);
        // The same replay with unit losses ends elsewhere: the run did read the losses.
        let mut agg = MethodSpec::parse(method).unwrap().aggregator.build(2, c.seed).unwrap();
        let mut y = vec![-8.5, 7.5];
        for _ in 0..6 {
            let rows = problem.jacobian(&y);
            let d = agg.aggregate(&DMatrix::from_fn(2, 2, |i, k| rows[i][k])).update;
            y = y.iter().zip(d.iter()).map(|(yi, di)| yi - lr * di).collect();
        }
        assert!((y[0] - x[0]).abs().max((y[1] - x[1]).abs()) > 1e-9, "{method}: the losses made no difference");
    }
}

/// MoCo and DB-MTL train the two-task toy with its Adam: they move, reproduce, and end
/// somewhere else than Mean (and than each other).
#[test]
fn moco_and_db_mtl_train_the_toy_and_differ_from_mean() {
    let mean = train(&toy("mean", 300)).unwrap();
    let mut ends = vec![mean.params.clone()];
    for method in LOSS_AWARE {
        let c = toy(method, 300);
        let r = train(&c).unwrap();
        assert!(r.error.is_none(), "{method}: {:?}", r.error);
        assert_eq!(r.steps_done, 300);
        assert_ne!(r.params, vec![-8.5, 7.5], "{method} did not move");
        assert_eq!(train(&c).unwrap(), r, "{method}: not reproducible");
        for other in &ends {
            let gap = (r.params[0] - other[0]).abs().max((r.params[1] - other[1]).abs());
            assert!(gap > 1e-3, "{method} ends at {:?}, as an earlier method", r.params);
        }
        ends.push(r.params.clone());
        // d is not Jᵀw: no aggregator weights are reported for MoCo and DB-MTL.
        let weighted = method.starts_with("mgda");
        assert!(r.history.iter().all(|s| s.aggregator_weights.is_some() == weighted), "{method}");
    }
}

/// An MLP learns with them (xor-conflict, 300 steps on the fast f32 path and the f64
/// reference), and the fast path ends close to the reference: both pass the losses.
#[test]
fn mlp_runs_learn_on_both_paths_and_agree() {
    for method in LOSS_AWARE {
        let mut c = preset("xor-conflict").unwrap();
        c.method = MethodSpec::parse(method).unwrap();
        c.steps = 300;
        c.dynamics.schedule = crate::dynamics::TaskSchedule::Joint;
        let before: f64 = Trainer::new(c.clone()).unwrap().train_losses().unwrap().iter().sum();
        let reference = train(&TrainConfig { precision: Precision::F64, ..c.clone() }).unwrap();
        let fast = train(&TrainConfig { precision: Precision::F32, ..c.clone() }).unwrap();
        for (path, r) in [("f64", &reference), ("f32", &fast)] {
            assert!(r.error.is_none(), "{method} {path}: {:?}", r.error);
            let after: f64 = r.final_train_losses.iter().sum();
            assert!(after < 0.8 * before, "{method} {path}: {before} → {after}");
        }
        let gap = fast
            .final_train_losses
            .iter()
            .zip(&reference.final_train_losses)
            .map(|(f, r)| (f - r).abs() / r.abs().max(1e-12))
            .fold(0.0, f64::max);
        assert!(gap < 1e-2, "{method}: the f32 path ends {gap:e} from the f64 reference");
    }
}

/// MoE models run on the reference path, which passes the losses too.
#[test]
fn moe_runs_take_the_loss_aware_methods() {
    for method in ["moco", "db-mtl", "mgda:gn=loss"] {
        let mut c = preset("task-experts").unwrap();
        c.method = MethodSpec::parse(method).unwrap();
        c.steps = 30;
        let r = train(&c).unwrap();
        assert!(r.error.is_none(), "{method}: {:?}", r.error);
        let mean = train(&TrainConfig { method: MethodSpec::plain("mean"), ..c.clone() }).unwrap();
        assert_ne!(r.params, mean.params, "{method}");
    }
}

/// A loss weighting on top of a loss-aware aggregator is refused, however the spec arrives:
/// parsed text, `from_parts`, or a deserialised config (the trainer's `validate`).
#[test]
fn a_loss_weighting_on_a_loss_aware_method_is_refused() {
    let needle = "reads the raw task losses itself";
    assert!(MethodSpec::parse("moco+uw").unwrap_err().contains(needle));
    let e = MethodSpec::from_parts("db-mtl", &[], Some(("dwa", &[]))).unwrap_err();
    assert!(e.contains(needle) && e.contains("'+dwa'"), "{e}");
    let mut c = toy("mgda:gn=loss", 5);
    c.method.weighting = Some(crate::weightings::WeightingSpec::named("uw").unwrap());
    let json = serde_json::to_string(&c).unwrap();
    let back: TrainConfig = serde_json::from_str(&json).unwrap();
    let e = Trainer::new(back).err().expect("refused");
    assert!(e.contains(needle) && e.contains("mgda:gn=loss"), "{e}");
    // A sample weighting is no loss weighting: allowed.
    let mut c = preset("xor-conflict").unwrap();
    c.method = MethodSpec::parse("moco+harmonize").unwrap();
    c.steps = 3;
    assert!(train(&c).unwrap().error.is_none());
    // And the gn option without the losses: the plain methods are unaffected.
    assert!(!AggregatorSpec::parse("mgda", &[]).unwrap().needs_losses());
}
