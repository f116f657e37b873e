//! The GPU trainer's loss weightings (`shaders/loss_weighting.wgsl`) against concord-core's CPU
//! trainer: 200 steps of xor-conflict (mini-batches of 50 out of 250, so 40 epochs turn over)
//! per weighting, with `mean` and `upgrad`, on Mesa lavapipe (a missing adapter is a failure).
//!
//! Compared at every step: the batch losses, the recorded loss weights w, the aggregator's
//! weights, the test losses; then the final train losses. Tolerance as train_parity.rs (the GPU
//! in f32 from the same init and batches as the f64 CPU reference):
//! |Δ| / (|cpu| + 1e-3) ≤ TOL = 2e-5.
//! Measured on lavapipe (worst over everything, mean / upgrad): gls 1.8e-6 / 3.1e-6,
//! dwa 1.5e-6 / 2.3e-6.

mod common;
use common::{f64_config as config, gpu_arc as gpu, rel, train_both};

use concord_core::MethodSpec;
use concord_gpu::{GpuError, GpuTrainer};

const TOL: f64 = 2e-5;

/// The worst relative difference between the CPU and GPU runs of `agg` + `weighting`, and
/// whether the loss weights moved away from 1 (so the comparison weighs something).
fn compare(agg: &str, weighting: &str) -> (f64, bool) {
    let mut cfg = config("xor-conflict", 200);
    cfg.method = MethodSpec::from_parts(agg, &[], Some((weighting, &[][..]))).unwrap();
    let (cpu, rec) = train_both(&cfg, 64);
    assert_eq!(rec.history.len(), cfg.steps);
    let (mut worst, mut moved) = (0.0f64, false);
    for (c, g) in cpu.history().iter().zip(&rec.history) {
        assert_eq!(c.step, g.step);
        let (cw, gw) = (c.loss_weights.as_ref().unwrap(), g.loss_weights.as_ref().unwrap());
        assert_eq!(cw.len(), gw.len());
        moved |= cw.iter().any(|w| (w - 1.0).abs() > 1e-3);
        let pairs = c
            .losses
            .iter()
            .zip(&g.losses)
            .chain(cw.iter().zip(gw))
            .chain(c.aggregator_weights.iter().flatten().zip(g.aggregator_weights.iter().flatten()))
            .chain(c.test_losses.iter().flatten().zip(g.test_losses.iter().flatten()));
        for (a, b) in pairs {
            let r = rel(*a, *b);
            assert!(r.is_finite(), "step {}: {a} vs {b}", c.step);
            worst = worst.max(r);
        }
    }
    for (a, b) in cpu.train_losses().unwrap().iter().zip(&rec.final_train_losses) {
        worst = worst.max(rel(*a, *b));
    }
    (worst, moved)
}

fn check(weighting: &str) {
    for agg in ["mean", "upgrad"] {
        let (worst, moved) = compare(agg, weighting);
        eprintln!("{agg} + {weighting}: worst relative difference {worst:e}");
        assert!(moved, "{agg} + {weighting}: the loss weights stayed 1");
        assert!(worst <= TOL, "{agg} + {weighting}: {worst:e}");
    }
}

#[test]
fn gls_matches_the_cpu_trainer() {
    check("gls");
}

#[test]
fn dwa_matches_the_cpu_trainer() {
    check("dwa");
}

#[test]
fn weightings_without_a_kernel_are_refused_with_the_reason() {
    let mut cfg = config("xor-conflict", 10);
    cfg.method = MethodSpec::from_parts("mean", &[], Some(("famo", &[][..]))).unwrap();
    match GpuTrainer::new(gpu(), cfg) {
        Err(GpuError::Unsupported(m)) => {
            assert!(m.contains("'famo' is not on the GPU yet") && m.contains("gls"), "{m}");
            assert!(m.contains("use the CPU backend"), "{m}");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("famo trained on the GPU"),
    }
}
