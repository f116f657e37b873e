//! Input features, L1/L2 regularisation and the init choice against their definitions.

use super::*;
use crate::data::{Feature, FeatureSet};

/// xor-conflict (a task set) with SGD (no momentum), so one step is `w − lr·update`.
fn xor(precision: Precision, steps: usize) -> TrainConfig {
    let mut c = preset("xor-conflict").unwrap();
    c.optimizer = TrainOptimizer::sgd(0.1, 0.0);
    c.precision = precision;
    c.steps = steps;
    c
}

fn l(p: Penalty, rate: f64) -> Option<Regularization> {
    Some(Regularization { penalty: p, rate })
}

fn weights(t: &Trainer) -> Vec<f64> {
    let mask = weight_mask(t.mlp().unwrap().layout());
    t.params().iter().zip(&mask).filter(|(_, &m)| m).map(|(&w, _)| w).collect()
}

fn run(c: TrainConfig) -> Trainer {
    let mut t = Trainer::new(c).unwrap();
    t.run_to_end(|_| {});
    assert!(t.error().is_none(), "{:?}", t.error());
    t
}

/// One step with the penalty minus the same step without it is −lr·rate·∂R/∂w on the weights
/// and 0 on the biases, on the f64 reference and the f32 fast path.
#[test]
fn the_penalty_adds_its_analytic_gradient_to_the_update() {
    for precision in [Precision::F64, Precision::F32] {
        for (penalty, rate) in [(Penalty::L2, 0.3), (Penalty::L1, 0.01)] {
            let plain = run(xor(precision, 1));
            let mut c = xor(precision, 1);
            c.regularization = l(penalty, rate);
            let start = Trainer::new(c.clone()).unwrap().params().to_vec();
            let reg = run(c);
            let mask = weight_mask(reg.mlp().unwrap().layout());
            for (i, ((&a, &b), &w0)) in reg.params().iter().zip(plain.params()).zip(&start).enumerate() {
                let want = if !mask[i] {
                    0.0
                } else if penalty == Penalty::L2 {
                    -0.1 * rate * w0
                } else {
                    -0.1 * rate * w0.signum()
                };
                let tol = if precision == Precision::F64 { 1e-12 } else { 1e-6 };
                assert!((a - b - want).abs() <= tol, "{precision:?} {penalty:?} entry {i}: {} vs {want}", a - b);
            }
        }
    }
}

#[test]
fn l2_shrinks_the_weight_norm_and_l1_drives_weights_to_zero() {
    for precision in [Precision::F64, Precision::F32] {
        let norm2 = |t: &Trainer| weights(t).iter().map(|w| w * w).sum::<f64>().sqrt();
        let norm1 = |t: &Trainer| weights(t).iter().map(|w| w.abs()).sum::<f64>();
        let plain = run(xor(precision, 100));
        let mut c = xor(precision, 100);
        c.regularization = l(Penalty::L2, 0.3);
        let l2 = run(c);
        assert!(norm2(&l2) < 0.8 * norm2(&plain), "{precision:?}: L2 ‖w‖ {} vs {}", norm2(&l2), norm2(&plain));
        let mut c = xor(precision, 100);
        c.regularization = l(Penalty::L1, 0.03);
        let l1 = run(c);
        assert!(norm1(&l1) < 0.8 * norm1(&plain), "{precision:?}: L1 Σ|w| {} vs {}", norm1(&l1), norm1(&plain));
        let small = |t: &Trainer| weights(t).iter().filter(|w| w.abs() < 0.01).count();
        assert!(small(&l1) > small(&plain), "{precision:?}: near-zero weights {} vs {}", small(&l1), small(&plain));
        // Rate 0 is the plain run, bit for bit.
        let mut c = xor(precision, 100);
        c.regularization = l(Penalty::L2, 0.0);
        assert_eq!(run(c).params(), plain.params());
    }
}

/// A dynamics record's ‖d‖ is the aggregated update's, before the clip and without the
/// penalty's gradient (added after the clip), with or without a clip bound: the GPU trainer
/// records the same.
#[test]
fn the_recorded_update_norm_leaves_the_penalty_out() {
    for clip in [None, Some(1e6)] {
        let mut plain = xor(Precision::F64, 1);
        plain.dynamics.spikes = true; // records the dynamics without changing the step
        plain.dynamics.clip_norm = clip;
        let mut c = plain.clone();
        c.regularization = l(Penalty::L2, 3.0);
        let norm = |t: &Trainer| t.history()[0].dynamics.as_ref().unwrap().grad_norm;
        let (a, b) = (norm(&run(plain)), norm(&run(c)));
        assert!(a > 0.0 && a == b, "clip {clip:?}: ‖d‖ {a} without the penalty, {b} with it");
    }
}

#[test]
fn the_init_choice_sets_the_starting_parameters() {
    let mut c = xor(Precision::F64, 1);
    c.init = Init::Zero;
    assert!(Trainer::new(c.clone()).unwrap().params().iter().all(|&p| p == 0.0));
    c.init = Init::TfUniform;
    let t = Trainer::new(c).unwrap();
    let mask = weight_mask(t.mlp().unwrap().layout());
    for (&p, &w) in t.params().iter().zip(&mask) {
        assert!(if w { (-0.5..0.5).contains(&p) } else { p == 0.1 }, "{p} (weight: {w})");
    }
    assert!(weights(&t).iter().any(|w| w.abs() > 0.3), "a U(−0.5, 0.5) draw, not Glorot's");
    let default = Trainer::new(xor(Precision::F64, 1)).unwrap();
    assert!(default.params().iter().any(|&p| p != 0.0) && default.params() != t.params());
}

/// The model reads one column per feature, and the grid predictions go through the same map.
#[test]
fn features_set_the_models_inputs_and_its_predictions() {
    let set = FeatureSet::new(&[Feature::X, Feature::Y, Feature::XTimesY]).unwrap();
    let mut c = xor(Precision::F64, 20);
    c.features = Some(set.clone());
    // input_dim 2 does not fit three features.
    assert!(Trainer::new(c.clone()).err().unwrap().contains("input_dim"));
    c.model.as_mut().unwrap().input_dim = 3;
    let t = run(c);
    let (x, _) = t.train_data().unwrap();
    assert_eq!(x.ncols(), 3);
    for r in 0..x.nrows() {
        assert_eq!(x[(r, 2)], x[(r, 0)] * x[(r, 1)]);
    }
    let points = [[0.5, -1.0], [2.0, 3.0]];
    let got = t.predict_points(&points).unwrap().unwrap();
    let want = t.mlp().unwrap().forward(t.params(), &set.map_points(&points)).unwrap();
    assert_eq!(got, want);
    // A source without 2-D points refuses features.
    let mut g = preset("gradnorm-scales").unwrap();
    g.features = Some(FeatureSet::raw());
    assert!(Trainer::new(g).err().unwrap().contains("2-D points"));
}

/// A run file from before these fields loads unchanged, and a default run writes none of them.
#[test]
fn old_run_files_load_and_defaults_are_not_written() {
    let c = preset("xor-conflict").unwrap();
    let text = serde_json::to_string(&c).unwrap();
    for key in ["features", "regularization", "\"init\""] {
        assert!(!text.contains(key), "{key} written for a default run");
    }
    let back: TrainConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(back, c);
    let mut d = c.clone();
    d.features = Some(FeatureSet::new(&[Feature::SinX, Feature::YSquared]).unwrap());
    d.model.as_mut().unwrap().input_dim = 2;
    d.regularization = l(Penalty::L1, 0.003);
    d.init = Init::Zero;
    let text = serde_json::to_string(&d).unwrap();
    assert!(text.contains(r#""features":["ySquared","sinX"]"#), "{text}");
    assert_eq!(serde_json::from_str::<TrainConfig>(&text).unwrap(), d);
}
