//! Every GPU loss weighting on the CAGrad toy (`GpuToy`) against the CPU `Trainer` on the same
//! `TrainConfig` (f64, the reference): the loss weights λ of every recorded step, the
//! aggregator's weights, the losses and the final x. The weighting's state lives on the GPU
//! (loss_weighting.wgsl, reused from the MLP trainer); the toy scales J's rows by λ in its step.

mod common;
use common::gpu_arc;

use concord_core::train::{now, Backend, DataSource, Preset, Snapshot, TrainConfig, TrainOptimizer, Trainer};
use concord_core::{MethodSpec, ProblemKind};

const STEPS: usize = 100;
/// Tolerances of `compare`'s quantities, in its order: f32 rounding, measured on lavapipe at
/// most 2.6e-6 (λ, FAMO), 1.4e-5 (UPGrad's w under UW), 5.2e-7, 4.0e-6 and 6.5e-7. A wrong
/// weighting or a λ not applied moves λ or x by far more (DWA, the smallest mover here, by 1e-4).
const TOLERANCES: [f64; 5] = [1e-5, 1e-4, 1e-5, 2e-5, 1e-5];
/// λ must move at least this far from 1 somewhere in the run (every weighting but ew), so that
/// the comparison sees the weighting at all.
const MOVED: f64 = 1e-5;

fn config(problem: ProblemKind, start: [f64; 2], method: &str) -> TrainConfig {
    let mut c = Preset::CagradToy.config();
    c.data = DataSource::Toy { problem, start };
    c.method = MethodSpec::parse(method).unwrap();
    c.optimizer = TrainOptimizer::adam(1e-2);
    c.steps = STEPS;
    c.seed = 7;
    c.record_every = 1;
    c
}

fn run(mut b: Box<dyn Backend>, steps: usize) -> Snapshot {
    assert_eq!(b.submit(steps).unwrap(), steps);
    now(b.read_back()).unwrap_or_else(|| pollster::block_on(b.read_back())).unwrap()
}

/// Worst (λ difference, aggregator-weight difference relative to Σ|w|, relative loss
/// difference, |Δx|, relative difference of the metrics' min_i (Jd)_i) of one run, and how far the
/// CPU's λ moved from 1 (the weighting acted).
fn compare(c: &TrainConfig) -> ([f64; 5], f64) {
    let gpu = run(concord_gpu::backend(gpu_arc(), c.clone()).unwrap(), c.steps);
    let cpu = run(Box::new(Trainer::new(c.clone()).unwrap()), c.steps);
    assert_eq!(gpu.error, None, "{}", c.method);
    assert_eq!(gpu.steps_done, c.steps);
    assert_eq!(gpu.new_records.len(), cpu.new_records.len());
    let mut worst = [0.0f64; 5];
    let mut moved = 0.0f64;
    for (g, w) in gpu.new_records.iter().zip(&cpu.new_records) {
        assert_eq!(g.step, w.step);
        let (gl, wl) = (g.loss_weights.as_ref().unwrap(), w.loss_weights.as_ref().unwrap());
        for (a, b) in gl.iter().zip(wl) {
            worst[0] = worst[0].max((a - b).abs() / b.abs().max(1.0));
            moved = moved.max((b - 1.0).abs());
        }
        let (ga, wa) = (g.aggregator_weights.as_ref().unwrap(), w.aggregator_weights.as_ref().unwrap());
        let scale = wa.iter().map(|v| v.abs()).sum::<f64>().max(1.0);
        for (a, b) in ga.iter().zip(wa) {
            worst[1] = worst[1].max((a - b).abs() / scale);
        }
        for (a, b) in g.losses.iter().zip(&w.losses) {
            worst[2] = worst[2].max((a - b).abs() / b.abs().max(1.0));
        }
        // The metrics describe the plain J with the effective update Jᵀ(λ∘w), as on the CPU.
        let (gm, wm) = (g.metrics.min_directional.unwrap(), w.metrics.min_directional.unwrap());
        worst[4] = worst[4].max((gm - wm).abs() / wm.abs().max(1.0));
    }
    worst[3] = ((gpu.params[0] - cpu.params[0]).powi(2) + (gpu.params[1] - cpu.params[1]).powi(2)).sqrt();
    (worst, moved)
}

/// Every weighting with Mean (toy_step, the single-invocation entry point), and two with
/// UPGrad (toy_step_workgroup) on the scaled toy.
#[test]
fn every_gpu_loss_weighting_runs_on_the_toy_as_on_the_cpu() {
    let mut cases: Vec<(String, TrainConfig)> = concord_gpu::GPU_LOSS_WEIGHTINGS
        .iter()
        .map(|w| (w.to_string(), config(ProblemKind::CagradToy, [-8.5, 7.5], &format!("mean+{w}"))))
        .collect();
    for w in ["uw", "famo"] {
        cases.push((w.to_string(), config(ProblemKind::CagradToyScaled, [-7.5, -0.5], &format!("upgrad+{w}"))));
    }
    let mut failed = Vec::new();
    for (weighting, c) in &cases {
        let (worst, moved) = compare(c);
        eprintln!(
            "{}: λ {:.1e}, w {:.1e}, losses {:.1e}, |Δx| {:.1e}, directional {:.1e}; max |λ − 1| {moved:.1e}",
            c.method, worst[0], worst[1], worst[2], worst[3], worst[4]
        );
        if !(worst.iter().zip(TOLERANCES).all(|(&v, tol)| v <= tol) && (moved > MOVED) == (weighting != "ew")) {
            failed.push(format!("{}: {worst:?} moved {moved}", c.method));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
