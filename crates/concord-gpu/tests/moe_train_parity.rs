//! The GPU MoE training pass (`kernels::moe_train`) against concord-core's `Moe::gradients` (f64)
//! on Mesa lavapipe (a missing adapter is a failure, not a skip): one batch of a preset's data,
//! the losses, every entry of the per-task shared Jacobian (pre-layers, gates, experts) and the
//! heads' gradients.
//!
//! Tolerance: f32 against f64 on the same f64 parameters (rounded once to f32): each entry
//! within 1e-4 of the CPU's, relative to the largest entry of its block (|Δ| ≤ 1e-4·max|row|),
//! losses 1e-5 relative. Measured: softmax 8.3e-7, mmoe 8.4e-7; the selecting routers (with and
//! without noisy top-k's noise, seed 7) switch 6.1e-7, top2 7.1e-7, noisy-topk 5.8e-7,
//! expert-choice 6.5e-7, task (gate per task) 5.2e-7, task (embedding gate) 4.6e-7. No near-tie
//! flips a selection on this data (a flip would show as a whole expert block off, ≫ 1e-4).
//!
//! Then `GpuTrainer` against the CPU `Trainer` on MoE runs, 200 steps, as `train_parity.rs`
//! (per-step batch losses, test losses, aggregator weights and final train losses within
//! |Δ|/(|cpu| + 1e-3) ≤ 2e-5), and the gates must have moved (the MoE part trained).
//! Measured (xor-conflict, Adam 3e-3, batches of 50): softmax/mean 5.2e-6, mmoe/pcgrad 1.2e-5,
//! switch/mean 1.1e-6, top2/pcgrad 6.7e-6, noisy-topk/mean 3.8e-6 (the CPU's noise per step),
//! expert-choice/upgrad 2.6e-6, task/mean 6.9e-6 (gate per task) and 5.6e-6 (embedding gate).

mod common;
use common::{gpu, records_gap, train_both};

use concord_core::model::moe::{RouterKind, TaskGate};
use concord_core::train::{preset, MoeSpec, Precision, TrainConfig, TrainOptimizer, Trainer};
use concord_core::MethodSpec;
use concord_gpu::{moe_gradients, moe_gradients_with_noise};

fn moe_trainer(router: RouterKind) -> Trainer {
    let mut c = preset("xor-conflict").unwrap();
    c.moe = Some(MoeSpec::new(router));
    Trainer::new(c).unwrap()
}

/// The selecting routers, each with settings that make it select: capacity factors that drop
/// tokens (switch, top-2) or leave some without an expert (expert choice), k < E.
fn selecting_routers() -> [RouterKind; 6] {
    [
        RouterKind::Switch { capacity_factor: 1.0 },
        RouterKind::Top2 { capacity_factor: 1.0 },
        RouterKind::NoisyTopK { k: 2 },
        RouterKind::ExpertChoice { capacity_factor: 1.0 },
        RouterKind::Task { k: 1, gate: TaskGate::PerTask },
        RouterKind::Task { k: 2, gate: TaskGate::Embedding },
    ]
}

/// The worst relative gap of one batch's losses, Jacobian and head gradients for `router`
/// (with the routing noise of `noise_seed`: noisy top-k's ε on both sides).
fn gradient_gap(router: RouterKind, noise_seed: Option<u64>) -> f64 {
    let cpu = moe_trainer(router);
    let moe = cpu.moe().unwrap();
    let (x, y) = cpu.train_data().unwrap();
    let want = moe.gradients(cpu.params(), x, y, noise_seed).unwrap();
    let got = pollster::block_on(moe_gradients_with_noise(gpu(), moe, cpu.params(), x, y, noise_seed)).unwrap();
    let mut worst = 0.0f64;
    for (a, b) in want.tasks.losses.iter().zip(&got.losses) {
        worst = worst.max((a - f64::from(*b)).abs() / a.abs().max(1e-3) / 10.0);
    }
    let jac = &want.tasks.shared_jacobian;
    let n = jac.ncols();
    let lay = moe.layout();
    let mut gate_norm = 0.0f64;
    for t in 0..jac.nrows() {
        for (_, range) in lay.shared_blocks() {
            let scale = range.clone().map(|j| jac[(t, j)].abs()).fold(0.0, f64::max).max(1e-6);
            for j in range {
                worst = worst.max((jac[(t, j)] - f64::from(got.shared_jacobian[t * n + j])).abs() / scale);
            }
        }
        for g in &lay.gates {
            gate_norm += g.range().map(|j| jac[(t, j)].abs()).sum::<f64>();
        }
    }
    // The gate part of J is what the MoE kernels add: it must be there to be compared.
    assert!(gate_norm > 1e-6, "the gates get no gradient: {gate_norm}");
    for (hw, hg) in want.tasks.head_grads.iter().zip(&got.head_grads) {
        let scale = hw.iter().map(|v| v.abs()).fold(0.0, f64::max).max(1e-6);
        for (a, b) in hw.iter().zip(hg) {
            worst = worst.max((a - f64::from(*b)).abs() / scale);
        }
    }
    worst
}

#[test]
fn dense_routers_match_the_cpu_gradients() {
    for router in [RouterKind::Softmax, RouterKind::Mmoe] {
        let worst = gradient_gap(router, None);
        eprintln!("{}: worst relative gap {worst:e}", router.name());
        assert!(worst <= 1e-4, "{}: {worst:e}", router.name());
    }
}

/// A selection that came out differently in f32 would move whole rows of J (an expert's block
/// zero on one side): the 1e-4 bound also checks that both sides chose the same experts.
#[test]
fn selecting_routers_match_the_cpu_gradients() {
    for router in selecting_routers() {
        for noise_seed in [None, Some(7)] {
            let worst = gradient_gap(router, noise_seed);
            eprintln!("{} (noise {noise_seed:?}): worst relative gap {worst:e}", router.name());
            assert!(worst <= 1e-4, "{} (noise {noise_seed:?}): {worst:e}", router.name());
        }
    }
}

#[test]
fn moe_gradients_without_noise_is_the_noise_free_pass() {
    let cpu = moe_trainer(RouterKind::NoisyTopK { k: 1 });
    let (x, y) = cpu.train_data().unwrap();
    let moe = cpu.moe().unwrap();
    let plain = pollster::block_on(moe_gradients(gpu(), moe, cpu.params(), x, y)).unwrap();
    let none = pollster::block_on(moe_gradients_with_noise(gpu(), moe, cpu.params(), x, y, None)).unwrap();
    let noisy = pollster::block_on(moe_gradients_with_noise(gpu(), moe, cpu.params(), x, y, Some(3))).unwrap();
    assert_eq!(plain.shared_jacobian, none.shared_jacobian);
    // The noise changes the routing, so the gradients (the noise weights' block first).
    assert_ne!(plain.shared_jacobian, noisy.shared_jacobian);
}

fn moe_config(router: RouterKind, aggregator: &str, steps: usize) -> TrainConfig {
    let mut c = preset("xor-conflict").unwrap();
    c.steps = steps;
    c.precision = Precision::F64;
    c.method = MethodSpec::parse(aggregator).unwrap();
    c.moe = Some(MoeSpec::new(router));
    // Adam at 3e-3, not the preset's 1e-2: at 1e-2 the softmax run's gap grows smoothly from
    // 1e-8 (step 0) to 4.8e-5 (step 200) — f32 rounding amplified by Adam's normalised steps on
    // the gates' and experts' near-zero gradients, not a kernel error (the one-batch gradients
    // agree to 8e-7 above) — past the MLP runs' 2e-5.
    c.optimizer = TrainOptimizer::adam(3e-3);
    c
}

/// The worst relative gap of the two trainers' records on `cfg`, and how far the GPU moved the
/// gate weights from their start.
fn train_gap(cfg: &TrainConfig) -> (f64, f64) {
    let (cpu, rec) = train_both(cfg, 64);
    assert_eq!(rec.history.len(), cfg.steps);
    let worst = records_gap(&cpu, &rec);
    let init = Trainer::new(cfg.clone()).unwrap();
    let moe = init.moe().unwrap();
    let gate_move: f64 = moe
        .layout()
        .gates
        .iter()
        .flat_map(|g| g.range())
        .map(|j| (rec.params[j] - init.params()[j]).abs())
        .fold(0.0, f64::max);
    (worst, gate_move)
}

const TOL: f64 = 2e-5;

#[test]
fn selecting_router_runs_train_as_on_the_cpu_for_200_steps() {
    // Not MGDA here: its solver turns the task-embedding run's f32 rounding into a 7.7e-5 gap
    // by step 200 (with mean: 5.6e-6), an aggregator property, not a routing one.
    let aggregators = ["mean", "pcgrad", "mean", "upgrad", "mean", "mean"];
    for (router, aggregator) in selecting_routers().into_iter().zip(aggregators) {
        let cfg = moe_config(router, aggregator, 200);
        let (worst, gate_move) = train_gap(&cfg);
        eprintln!("{} / {aggregator}: worst relative gap {worst:e}, gates moved {gate_move:e}", router.name());
        assert!(worst <= TOL, "{}: {worst:e}", router.name());
        assert!(gate_move > 1e-3, "{}: the gates did not train ({gate_move:e})", router.name());
    }
}

#[test]
fn dense_router_runs_train_as_on_the_cpu_for_200_steps() {
    for (router, aggregator) in [(RouterKind::Softmax, "mean"), (RouterKind::Mmoe, "pcgrad")] {
        let cfg = moe_config(router, aggregator, 200);
        let (worst, gate_move) = train_gap(&cfg);
        eprintln!("{} / {aggregator}: worst relative gap {worst:e}, gates moved {gate_move:e}", router.name());
        assert!(worst <= TOL, "{}: {worst:e}", router.name());
        assert!(gate_move > 1e-3, "{}: the gates did not train ({gate_move:e})", router.name());
    }
}
