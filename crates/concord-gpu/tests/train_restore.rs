//! `GpuTrainer::restore` (an exported run imported into a GPU run) against the CPU trainer's
//! `restore`: both take the same saved state — 30 CPU steps of xor-conflict — and train 30 more
//! steps from it; the step indices continue and the losses agree within the f32 tolerance of
//! `train_parity.rs` (TOL = 2e-5 relative; both restart the optimizer moments and the batch
//! order, so the reference is the restored CPU run, not the uninterrupted one). On lavapipe.

mod common;
use common::gpu_arc as gpu;

use concord_core::train::{preset, TrainConfig, Trainer};
use concord_gpu::GpuTrainer;

const TOL: f64 = 2e-5;

fn config(aggregator: &str) -> TrainConfig {
    let mut c = preset("xor-conflict").unwrap();
    c.method = concord_core::MethodSpec::plain(aggregator);
    c.steps = 60;
    c
}

#[test]
fn a_restored_gpu_run_continues_like_a_restored_cpu_run() {
    let gpu = gpu();
    for aggregator in ["mean", "mgda"] {
        let cfg = config(aggregator);
        let mut first = Trainer::new(cfg.clone()).unwrap();
        for _ in 0..30 {
            first.step().unwrap();
        }
        let saved = first.record();

        let mut cpu = Trainer::new(cfg.clone()).unwrap();
        cpu.restore(saved.params.clone(), saved.history.clone()).unwrap();
        let mut g = GpuTrainer::new(gpu.clone(), cfg.clone()).unwrap();
        g.restore(saved.params.clone(), saved.history.clone()).unwrap();
        assert_eq!(g.step_index(), 30);
        // Right after the restore both evaluate the same parameters (the GPU's rounded to f32).
        let (c0, g0) = (cpu.train_losses().unwrap(), pollster::block_on(g.train_losses()).unwrap());
        for (a, b) in c0.iter().zip(&g0) {
            assert!((a - b).abs() / (a.abs() + 1e-3) <= TOL, "{aggregator}: restored losses {c0:?} vs {g0:?}");
        }
        for _ in 0..30 {
            cpu.step().unwrap();
        }
        g.steps(30).unwrap();
        let history = pollster::block_on(g.read_history()).unwrap().to_vec();
        assert_eq!(history.len(), 60);
        assert!(history.iter().enumerate().all(|(i, r)| r.step == i), "{aggregator}: step indices continue 0..60");
        let mut worst = 0.0f64;
        for (c, gr) in cpu.history()[30..].iter().zip(&history[30..]) {
            for (a, b) in c.losses.iter().zip(&gr.losses) {
                worst = worst.max((a - b).abs() / (a.abs() + 1e-3));
            }
        }
        let (cf, gf) = (cpu.train_losses().unwrap(), pollster::block_on(g.train_losses()).unwrap());
        for (a, b) in cf.iter().zip(&gf) {
            worst = worst.max((a - b).abs() / (a.abs() + 1e-3));
        }
        eprintln!("{aggregator}: worst relative loss gap after the restore: {worst:.2e}");
        assert!(worst <= TOL, "{aggregator}: {worst:.2e} > {TOL:.0e}");
        // And the restore moved the run: 30 more steps from the start would give other losses.
        let mut fresh = Trainer::new(cfg.clone()).unwrap();
        for _ in 0..30 {
            fresh.step().unwrap();
        }
        assert!(fresh.train_losses().unwrap().iter().zip(&gf).any(|(a, b)| (a - b).abs() > 1e-3));
    }
}

#[test]
fn restore_rejects_bad_saved_state_with_a_message() {
    let cfg = config("mean");
    let mut first = Trainer::new(cfg.clone()).unwrap();
    for _ in 0..3 {
        first.step().unwrap();
    }
    let saved = first.record();
    let mut g = GpuTrainer::new(gpu(), cfg).unwrap();
    let short = saved.params[..saved.params.len() - 1].to_vec();
    let err = g.restore(short, saved.history.clone()).unwrap_err().to_string();
    assert!(err.contains("parameters, this model has"), "{err}");
    let mut nan = saved.params.clone();
    nan[0] = f64::NAN;
    let err = g.restore(nan, saved.history.clone()).unwrap_err().to_string();
    assert!(err.contains("non-finite"), "{err}");
    let mut back = saved.history.clone();
    back.swap(1, 2);
    let err = g.restore(saved.params.clone(), back).unwrap_err().to_string();
    assert!(err.contains("record 2 says step 1, not after step 2"), "{err}");
    let late = saved.history[1..].to_vec();
    let err = g.restore(saved.params.clone(), late).unwrap_err().to_string();
    assert!(err.contains("record 0 says step 1"), "{err}");
    assert_eq!(g.step_index(), 0, "a rejected restore changes nothing");
}

/// A long run's exported history is thinned (concord-core's `History`): the GPU run takes it as
/// the CPU trainer does, goes on after its last record, and hands out only the new records.
#[test]
fn a_thinned_history_restores_and_the_run_continues_after_it() {
    use concord_core::train::Backend;
    let cfg = config("mean");
    let mut first = Trainer::new(cfg.clone()).unwrap();
    for _ in 0..6 {
        first.step().unwrap();
    }
    let mut saved = first.record();
    saved.history.retain(|r| r.step % 2 == 0 || r.step == 5); // steps 0, 2, 4, 5
    let mut g = GpuTrainer::new(gpu(), cfg.clone()).unwrap();
    Backend::restore(&mut g, saved.params.clone(), saved.history.clone()).unwrap();
    assert_eq!(g.step_index(), 6, "the run continues after the last record");
    Backend::submit(&mut g, 3).unwrap();
    let snap = pollster::block_on(g.read_back()).unwrap();
    assert_eq!(snap.steps_done, 9);
    assert_eq!(snap.new_records.iter().map(|r| r.step).collect::<Vec<_>>(), [6, 7, 8], "only the new steps");
    assert_eq!(g.history().iter().map(|r| r.step).collect::<Vec<_>>(), [0, 2, 4, 5, 6, 7, 8]);
}

/// The GPU run's history is bounded like the CPU trainer's: a run of more steps than the cap
/// keeps at most `HISTORY_CAP` records, the first and the latest among them, and every record
/// is handed out once by the read-backs.
#[test]
fn a_long_gpu_run_keeps_a_bounded_history() {
    use concord_core::train::{Backend, HISTORY_CAP};
    let mut cfg = config("mean");
    let steps = HISTORY_CAP + 1500;
    cfg.steps = steps;
    let mut g = GpuTrainer::new(gpu(), cfg).unwrap();
    let mut delivered = Vec::new();
    while Backend::steps_submitted(&g) < steps {
        let k = 500.min(steps - Backend::steps_submitted(&g));
        Backend::submit(&mut g, k).unwrap();
        let snap = pollster::block_on(g.read_back()).unwrap();
        delivered.extend(snap.new_records.iter().map(|r| r.step));
    }
    assert_eq!(delivered, (0..steps).collect::<Vec<_>>(), "each step's record handed out once, in order");
    let kept: Vec<usize> = g.history().iter().map(|r| r.step).collect();
    assert!(kept.len() <= HISTORY_CAP, "{} records kept > {HISTORY_CAP}", kept.len());
    assert_eq!(kept.first(), Some(&0));
    assert_eq!(kept.last(), Some(&(steps - 1)));
}
