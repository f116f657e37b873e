//! The one GPU adapter every test binary shares (Mesa lavapipe in CI).
#![allow(dead_code)] // each test file uses some of these

use concord_gpu::Gpu;
use std::sync::{Arc, OnceLock};

/// The device, opened once per test binary. A missing adapter fails the test — CI installs
/// Mesa lavapipe (mesa-vulkan-drivers), so this is never a skip.
pub fn gpu_arc() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            // lavapipe prints harmless `error:` lines without it.
            std::env::set_var("XDG_RUNTIME_DIR", "/tmp");
        }
        match pollster::block_on(Gpu::new()) {
            Ok(g) => {
                eprintln!("adapter: {}", g.adapter_label());
                Arc::new(g)
            }
            Err(e) => panic!("no usable GPU adapter — a failure, not a skip: {e} (CI installs mesa-vulkan-drivers)"),
        }
    })
    .clone()
}

/// The same device, borrowed for the whole test run.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(gpu_arc)
}

/// The preset at `steps`, with the CPU side on the f64 reference (the kernels' parity is
/// checked against it; the GPU trains in f32 whatever the config says).
pub fn f64_config(name: &str, steps: usize) -> concord_core::train::TrainConfig {
    let mut c = concord_core::train::preset(name).unwrap();
    c.steps = steps;
    c.precision = concord_core::train::Precision::F64;
    c
}

/// Relative difference, guarded near 0.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / (a.abs() + 1e-3)
}

/// `cfg` trained to the end by the CPU trainer and by the GPU trainer (submitting `chunk` steps
/// at a time), both checked to have finished without an error: what the parity tests compare.
pub fn train_both(
    cfg: &concord_core::train::TrainConfig,
    chunk: usize,
) -> (concord_core::train::Trainer, concord_core::train::RunRecord) {
    let mut cpu = concord_core::train::Trainer::new(cfg.clone()).unwrap();
    cpu.run_to_end(|_| {});
    assert!(cpu.error().is_none(), "{:?}", cpu.error());
    let mut g = concord_gpu::GpuTrainer::new(gpu_arc(), cfg.clone()).unwrap();
    pollster::block_on(g.run_to_end(chunk, |_| {})).unwrap();
    let rec = pollster::block_on(g.record()).unwrap();
    assert!(rec.error.is_none(), "{:?}", rec.error);
    (cpu, rec)
}

/// The worst relative gap between the CPU trainer's records and the GPU run's: every step's
/// losses, test losses and aggregator weights, and the final train-set losses (the steps must
/// line up one for one).
pub fn records_gap(cpu: &concord_core::train::Trainer, rec: &concord_core::train::RunRecord) -> f64 {
    let mut worst = 0.0f64;
    let mut widen = |a: &[f64], b: &[f64]| {
        for (x, y) in a.iter().zip(b) {
            worst = worst.max(rel(*x, *y));
        }
    };
    for (c, g) in cpu.history().iter().zip(&rec.history) {
        assert_eq!(c.step, g.step);
        widen(&c.losses, &g.losses);
        if let (Some(ct), Some(gt)) = (&c.test_losses, &g.test_losses) {
            widen(ct, gt);
        }
        if let (Some(cw), Some(gw)) = (&c.aggregator_weights, &g.aggregator_weights) {
            widen(cw, gw);
        }
    }
    widen(&cpu.train_losses().unwrap(), &rec.final_train_losses);
    worst
}

/// A step's Gramian G from its recorded task-gradient norms and cosines (an undefined cosine, a
/// zero gradient's, as 0).
pub fn recorded_gram(step: &concord_core::train::StepRecord) -> nalgebra::DMatrix<f64> {
    let n = &step.metrics.norms;
    nalgebra::DMatrix::from_fn(n.len(), n.len(), |i, j| {
        if i == j {
            n[i] * n[i]
        } else {
            step.metrics.cosine[i][j].unwrap_or(0.0) * n[i] * n[j]
        }
    })
}

/// The worst relative gap between one batch of an MoE architecture's gradients on the GPU
/// (`concord_gpu::moe_gradients`) and concord-core's `Moe::gradients` (f64): the losses (|Δ|/|L|
/// / 10), every entry of the per-task shared Jacobian and of each task's own block, each
/// relative to its block's largest entry. Also checks that every task's gate part (what precedes
/// its head in its block) gets a gradient, so the comparison cannot pass on zeros.
pub fn arch_gradient_gap(cpu: &concord_core::train::Trainer) -> f64 {
    let moe = cpu.moe().expect("an MoE trainer");
    let (x, y) = cpu.train_data().expect("train data");
    let want = moe.gradients(cpu.params(), x, y, None).expect("CPU gradients");
    let got = pollster::block_on(concord_gpu::moe_gradients(gpu(), moe, cpu.params(), x, y)).expect("GPU gradients");
    let mut worst = 0.0f64;
    for (a, b) in want.tasks.losses.iter().zip(&got.losses) {
        worst = worst.max((a - f64::from(*b)).abs() / a.abs().max(1e-3) / 10.0);
    }
    let jac = &want.tasks.shared_jacobian;
    let n = jac.ncols();
    assert_eq!(got.shared_jacobian.len(), jac.nrows() * n);
    let lay = moe.layout();
    for t in 0..jac.nrows() {
        for (_, range) in lay.shared_blocks() {
            let scale = range.clone().map(|j| jac[(t, j)].abs()).fold(0.0, f64::max).max(1e-6);
            for j in range {
                worst = worst.max((jac[(t, j)] - f64::from(got.shared_jacobian[t * n + j])).abs() / scale);
            }
        }
    }
    // Each task's own block (`head_grads`: its gate(s), its own experts, its head).
    assert_eq!(got.head_grads.len(), want.tasks.head_grads.len());
    for (t, (hw, hg)) in want.tasks.head_grads.iter().zip(&got.head_grads).enumerate() {
        assert_eq!(hw.len(), hg.len());
        let head = lay.heads[t].weight.start - lay.task_ranges[t].start;
        let gate_part: f64 = hw[..head].iter().map(|v| v.abs()).sum();
        assert!(gate_part > 1e-6, "task {t}'s gate gets no gradient: {gate_part}");
        let scale = hw.iter().map(|v| v.abs()).fold(0.0, f64::max).max(1e-6);
        for (a, b) in hw.iter().zip(hg) {
            worst = worst.max((a - f64::from(*b)).abs() / scale);
        }
    }
    worst
}
