//! TF's trunk options on the GPU trainer (Mesa lavapipe; a missing adapter is a failure): input
//! features and the init choice come from the CPU trainer (its data and its start vector), so a
//! run with both matches the CPU reference as the presets do (TOL as in train_parity.rs); the
//! grid predictions go through the same features; L1/L2 has no kernel yet and is refused with
//! the message the page shows when it trains such a run on the CPU.

mod common;
use common::{f64_config, gpu_arc, rel, train_both};

use concord_core::data::{Feature, FeatureSet};
use concord_core::train::{Backend, Init, Penalty, Regularization};
use concord_gpu::{GpuError, GpuTrainer};

const TOL: f64 = 2e-5;

fn featured(steps: usize) -> concord_core::train::TrainConfig {
    let mut c = f64_config("xor-conflict", steps);
    let set = FeatureSet::new(&[Feature::X, Feature::Y, Feature::XTimesY, Feature::SinX]).unwrap();
    c.model.as_mut().unwrap().input_dim = set.len();
    c.features = Some(set);
    c.init = Init::TfUniform;
    c
}

#[test]
fn features_and_tf_init_match_the_cpu_trainer() {
    let cfg = featured(60);
    let (cpu, rec) = train_both(&cfg, 32);
    let mut worst = 0.0f64;
    for (c, g) in cpu.history().iter().zip(&rec.history) {
        for (a, b) in c.losses.iter().zip(&g.losses) {
            worst = worst.max(rel(*a, *b));
        }
    }
    for (a, b) in cpu.train_losses().unwrap().iter().zip(&rec.final_train_losses) {
        worst = worst.max(rel(*a, *b));
    }
    eprintln!("features + tf-uniform init: worst relative difference {worst:e}");
    assert!(worst <= TOL, "{worst:e}");
    // The decision-boundary grid: the GPU maps the points through the same features.
    let mut g = GpuTrainer::new(gpu_arc(), cfg.clone()).unwrap();
    pollster::block_on(g.run_to_end(32, |_| {})).unwrap();
    let points = [[0.5, -1.0], [2.0, 3.0], [-4.0, 1.5]];
    let gpu_out = pollster::block_on(Backend::predict(&mut g, &points).unwrap()).unwrap();
    let cpu_out = cpu.predict_points(&points).unwrap().unwrap();
    for (a, b) in cpu_out.iter().zip(&gpu_out) {
        for (x, y) in a.iter().zip(b.iter()) {
            assert!(rel(*x, *y) <= 1e-3, "grid prediction {x} vs {y}");
        }
    }
}

#[test]
fn zero_init_starts_the_gpu_from_zero() {
    let mut cfg = featured(1);
    cfg.init = Init::Zero;
    let g = GpuTrainer::new(gpu_arc(), cfg).unwrap();
    let params = pollster::block_on(g.params()).unwrap();
    assert!(params.iter().all(|&p| p == 0.0));
}

#[test]
fn regularization_is_refused_with_the_cpu_fallback_message() {
    let mut cfg = featured(1);
    cfg.regularization = Some(Regularization { penalty: Penalty::L2, rate: 0.01 });
    match GpuTrainer::new(gpu_arc(), cfg) {
        Err(GpuError::Unsupported(msg)) => {
            assert!(msg.contains("'L2' has no GPU kernel yet; use the CPU backend"), "{msg}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("L2 was accepted by the GPU trainer"),
    }
}
