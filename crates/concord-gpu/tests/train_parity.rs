//! `GpuTrainer` against concord-core's CPU `Trainer`: 200 steps of two presets, per-task batch
//! losses at every step and the final train losses, on Mesa lavapipe (a missing adapter is a
//! failure, not a skip).
//!
//! Tolerance: the GPU runs in f32 while the CPU reference runs in f64 from the same f64 init
//! (rounded once to f32) and the same mini-batches, so the two trajectories drift apart by f32
//! rounding amplified by 200 Adam steps. Asserted: |Δloss| ≤ REL·|loss_cpu| + ABS at every step.

use std::sync::{Arc, OnceLock};

use concord_core::train::{preset, TrainConfig, Trainer};
use concord_gpu::{Gpu, GpuError, GpuTrainer};

fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            std::env::set_var("XDG_RUNTIME_DIR", "/tmp");
        }
        match pollster::block_on(Gpu::new()) {
            Ok(g) => {
                eprintln!("adapter: {}", g.adapter_label());
                Arc::new(g)
            }
            Err(e) => panic!("no usable GPU adapter — a failure, not a skip: {e}"),
        }
    })
    .clone()
}

fn config(name: &str, steps: usize) -> TrainConfig {
    let mut c = preset(name).unwrap();
    c.steps = steps;
    c
}

/// (worst |Δ| / (|cpu| + 1e-3) over steps and tasks, final train-loss relative differences).
fn compare(cfg: TrainConfig, chunk: usize) -> (f64, Vec<f64>) {
    let mut cpu = Trainer::new(cfg.clone()).unwrap();
    cpu.run_to_end(|_| {});
    assert!(cpu.error().is_none(), "{:?}", cpu.error());
    let mut g = GpuTrainer::new(gpu(), cfg.clone()).unwrap();
    pollster::block_on(g.run_to_end(chunk, |_| {})).unwrap();
    let rec = pollster::block_on(g.record()).unwrap();
    assert_eq!(rec.history.len(), cfg.steps);
    let mut worst = 0.0f64;
    for (c, gr) in cpu.history().iter().zip(&rec.history) {
        assert_eq!(c.step, gr.step);
        for (a, b) in c.losses.iter().zip(&gr.losses) {
            worst = worst.max((a - b).abs() / (a.abs() + 1e-3));
        }
    }
    let final_cpu = cpu.train_losses().unwrap();
    let finals = final_cpu.iter().zip(&rec.final_train_losses).map(|(a, b)| (a - b).abs() / a.abs()).collect();
    (worst, finals)
}

#[test]
fn xor_conflict_200_steps_match_the_cpu_trainer() {
    let (worst, finals) = compare(config("xor-conflict", 200), 64);
    eprintln!("xor-conflict: worst per-step loss rel diff {worst:e}, final {finals:?}");
    assert!(worst < 1e-3, "{worst:e}");
}

#[test]
fn gradnorm_scales_200_steps_match_the_cpu_trainer() {
    let (worst, finals) = compare(config("gradnorm-scales", 200), 50);
    eprintln!("gradnorm-scales: worst per-step loss rel diff {worst:e}, final {finals:?}");
    assert!(worst < 1e-3, "{worst:e}");
}
