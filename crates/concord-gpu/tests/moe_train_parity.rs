//! The GPU MoE training pass (`kernels::moe_train`) against concord-core's `Moe::gradients` (f64)
//! on Mesa lavapipe (a missing adapter is a failure, not a skip): one batch of a preset's data,
//! the losses, every entry of the per-task shared Jacobian (pre-layers, gates, experts) and the
//! heads' gradients.
//!
//! Tolerance: f32 against f64 on the same f64 parameters (rounded once to f32): each entry
//! within 1e-4 of the CPU's, relative to the largest entry of its block (|Δ| ≤ 1e-4·max|row|),
//! losses 1e-5 relative.

mod common;
use common::gpu;

use concord_core::model::moe::RouterKind;
use concord_core::train::{preset, MoeSpec, Trainer};
use concord_gpu::{moe_gradients, GpuError};

fn moe_trainer(router: RouterKind) -> Trainer {
    let mut c = preset("xor-conflict").unwrap();
    c.moe = Some(MoeSpec::new(router));
    Trainer::new(c).unwrap()
}

/// The worst relative gap of one batch's losses, Jacobian and head gradients for `router`.
fn gradient_gap(router: RouterKind) -> f64 {
    let cpu = moe_trainer(router);
    let moe = cpu.moe().unwrap();
    let (x, y) = cpu.train_data().unwrap();
    let want = moe.gradients(cpu.params(), x, y, None).unwrap();
    let got = pollster::block_on(moe_gradients(gpu(), moe, cpu.params(), x, y)).unwrap();
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
        let worst = gradient_gap(router);
        eprintln!("{}: worst relative gap {worst:e}", router.name());
        assert!(worst <= 1e-4, "{}: {worst:e}", router.name());
    }
}

#[test]
fn routers_without_kernels_are_refused_with_a_reason() {
    let cpu = moe_trainer(RouterKind::Switch { capacity_factor: 1.25 });
    let (x, y) = cpu.train_data().unwrap();
    match pollster::block_on(moe_gradients(gpu(), cpu.moe().unwrap(), cpu.params(), x, y)) {
        Err(GpuError::Unsupported(why)) => assert!(why.contains("not on the GPU"), "{why}"),
        other => panic!("expected a refusal, got {:?}", other.map(|g| g.losses)),
    }
}
