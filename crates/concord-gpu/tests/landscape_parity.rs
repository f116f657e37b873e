//! The GPU landscape slice (`kernels::landscape::mlp_slice`) against concord-core's CPU slice,
//! on Mesa lavapipe (or the adapter wgpu picks). A missing adapter is a failure, not a skip.
//!
//! Inputs (x, targets, θ, δ, η) are rounded to f32 once and the f64 CPU reference runs on those
//! same values, so the difference measured is the kernel's f32 arithmetic. Tolerance: relative
//! 1e-6 per surface (‖Δ‖/‖ref‖); measured on lavapipe 5.4e-8 … 8.6e-8 (printed per case).

mod common;
use common::gpu;

use concord_core::landscape::{mlp_slice as cpu_slice, plane, DirectionKind, Grid, MlpObjective, Plane, PlaneInputs};
use concord_core::model::{Activation, HeadConfig, LossKind, Mlp, MlpConfig, Target};
use concord_gpu::kernels::landscape::{loop_iterations, mlp_slice, MAX_LOOP_ITERATIONS};
use concord_gpu::GpuError;
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn f32_round(v: f64) -> f64 {
    v as f32 as f64
}

fn model(act: Activation, hidden: Vec<usize>, input: usize, heads: Vec<(usize, LossKind)>) -> Mlp {
    let heads = heads.into_iter().map(|(out_dim, loss)| HeadConfig { out_dim, loss }).collect();
    Mlp::new(MlpConfig {
        input_dim: input,
        hidden,
        activation: act,
        heads,
        tied_head_init: false,
        head_init_scale: 1.0,
    })
    .unwrap()
}

/// Random inputs and targets, already f32-representable.
fn data(mlp: &Mlp, b: usize, seed: u64) -> (DMatrix<f64>, Vec<Target>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cfg = mlp.config();
    let x = DMatrix::from_fn(b, cfg.input_dim, |_, _| f32_round(rng.random_range(-2.0..2.0)));
    let y = cfg
        .heads
        .iter()
        .map(|h| match h.loss {
            LossKind::Mse => {
                Target::Values(DMatrix::from_fn(b, h.out_dim, |_, _| f32_round(rng.random_range(-1.0..1.0))))
            }
            LossKind::Bce => Target::Values(DMatrix::from_fn(b, h.out_dim, |_, _| rng.random_range(0..2) as f64)),
            LossKind::SoftmaxCe => Target::Classes((0..b).map(|_| rng.random_range(0..h.out_dim)).collect()),
        })
        .collect();
    (x, y)
}

fn rounded_plane(mlp: &Mlp, x: &DMatrix<f64>, y: &[Target], seed: u64) -> Plane {
    let theta = mlp.init_params(seed);
    let obj = MlpObjective { mlp, x, targets: y };
    let p = plane(
        DirectionKind::Random,
        &obj,
        &theta,
        &PlaneInputs { layout: Some(mlp.layout()), seed, trajectory: &[], tasks: (0, 1) },
    )
    .unwrap();
    let r = |v: &[f64]| v.iter().map(|&e| f32_round(e)).collect::<Vec<_>>();
    Plane { origin: r(&p.origin), delta: r(&p.delta), eta: r(&p.eta), ..p }
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    d / b.iter().map(|v| v * v).sum::<f64>().sqrt()
}

#[test]
fn gpu_slice_matches_the_cpu_reference() {
    let cases = [
        // Two trunk layers, tanh, BCE + MSE heads; 100 samples = one full and one partial chunk.
        (model(Activation::Tanh, vec![8, 6], 3, vec![(1, LossKind::Bce), (2, LossKind::Mse)]), 100),
        // ReLU, three tasks incl. softmax CE.
        (
            model(
                Activation::Relu,
                vec![10],
                2,
                vec![(3, LossKind::SoftmaxCe), (1, LossKind::Bce), (2, LossKind::Mse)],
            ),
            64,
        ),
        // No trunk: heads read x; GELU unused but the path without hidden layers is covered.
        (model(Activation::Gelu, vec![], 4, vec![(2, LossKind::Mse), (3, LossKind::SoftmaxCe)]), 37),
        (model(Activation::Sigmoid, vec![5], 2, vec![(1, LossKind::Mse), (1, LossKind::Mse)]), 20),
    ];
    for (i, (m, b)) in cases.iter().enumerate() {
        let (x, y) = data(m, *b, i as u64);
        let p = rounded_plane(m, &x, &y, i as u64 + 1);
        let grid = Grid::new(9, [-1.0, 1.0], 7, [-0.5, 1.5]).unwrap();
        let reference = cpu_slice(m, &x, &y, &p, &grid, 1).unwrap();
        let got = pollster::block_on(mlp_slice(gpu(), m, &x, &y, &p, &grid)).unwrap();
        assert_eq!(got.grid, reference.grid);
        for t in 0..m.num_tasks() {
            let e = rel(&got.tasks[t], &reference.tasks[t]);
            assert!(e < 1e-6, "case {i} task {t}: relative error {e:e}");
        }
        let e = rel(&got.total, &reference.total);
        eprintln!("case {i}: total relative error {e:e}");
        assert!(e < 1e-6, "case {i} total: relative error {e:e}");
    }
}

#[test]
fn models_past_the_loop_budget_and_bad_planes_are_errors() {
    // 256 × 256 hidden layer: 65 792 inner iterations > the lavapipe budget.
    let big = model(Activation::Relu, vec![256, 256], 2, vec![(1, LossKind::Mse), (1, LossKind::Mse)]);
    assert!(loop_iterations(&big) > MAX_LOOP_ITERATIONS);
    let (x, y) = data(&big, 4, 0);
    let theta = big.init_params(0);
    let p = Plane {
        kind: DirectionKind::Random,
        origin: theta.clone(),
        delta: theta.clone(),
        eta: theta,
        cosine: 0.0,
        explained_variance: None,
    };
    let grid = Grid::square(3, -1.0, 1.0).unwrap();
    match pollster::block_on(mlp_slice(gpu(), &big, &x, &y, &p, &grid)) {
        Err(GpuError::Unsupported(msg)) => assert!(msg.contains("loop iterations"), "{msg}"),
        other => panic!("expected Unsupported, got {:?}", other.map(|s| s.total.len())),
    }
    let small = model(Activation::Tanh, vec![3], 2, vec![(1, LossKind::Mse), (1, LossKind::Mse)]);
    let (x, y) = data(&small, 4, 0);
    let mut p = rounded_plane(&small, &x, &y, 0);
    p.delta[0] = f64::NAN;
    assert!(matches!(pollster::block_on(mlp_slice(gpu(), &small, &x, &y, &p, &grid)), Err(GpuError::Unsupported(_))));
    p.delta.pop();
    assert!(matches!(pollster::block_on(mlp_slice(gpu(), &small, &x, &y, &p, &grid)), Err(GpuError::Unsupported(_))));
}
