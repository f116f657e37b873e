//! The per-point conflict map on the GPU (`GpuTrainer::point_grams`, `train_point_grams` and the
//! one-shot `kernels::point_conflict::point_grams`) against concord-core's `Mlp::point_grams` at
//! the same parameters, on lavapipe.
//!
//! The reference evaluates the GPU's own parameters (f32, read back and widened) on the
//! f32-rounded inputs, so every gap is the GPU's f32 arithmetic. Compared per point:
//!
//! * the Gram entries against the point's gradient norms: |ΔG_st| / √(N_s·N_t) ≤ GRAM_TOL with
//!   N_s = max(G_ss, F), F = NORM_FLOOR × the largest G_ss of the set (relative where both
//!   norms are above F; an off-diagonal entry near 0 by cancellation is measured against the
//!   norms, as its share of the cosine; below F, against F: a small gradient's f32 error is set
//!   by the sizes of the terms it was summed from, not by its own length);
//! * the cosines cos(g_s, g_t) of every pair, where every G_ss ≥ F: |Δcos| ≤ COS_TOL;
//! * where the reference has a zero gradient (every path through the trunk closed, e.g. dead
//!   ReLUs): the GPU's is exactly zero too, and its cosines undefined (`None`), as the reference's.
//!
//! Points on an f32 decision edge are skipped and counted (at most MAX_SKIPPED of a set,
//! asserted): a tie of the prediction that own-prediction / softmax-output gradients take their
//! label from (BCE |o| or the softmax top-two gap below TIE), a ReLU pre-activation within KINK
//! of 0 (an exact 0 — zero inputs and bias — is the same in f32 and is kept), or an MSE residual
//! |o − y| below TIE in loss mode. There the label, the kink's side or the residual's sign may
//! differ between f32 and f64, and the gradient with it. At least a quarter of every set must
//! have its cosines compared.
//!
//! Measured on lavapipe (llvmpipe, LLVM 15; every case prints its gaps): worst |Δcos| 3.9e-6
//! (ReLU [6, 8, 4], loss mode); worst Gram gap 1.2e-5 in the own-prediction / output modes the
//! page draws, 8.3e-5 in loss mode (MSE residuals, see GRAM_TOL_LOSS). On the 100 × 100 grid
//! of xor-conflict and circle-vs-gauss after 60 steps: |Δcos| ≤ 1e-6, Gram gap ≤ 4.3e-6.
//! Tolerances: COS_TOL 1e-4 (25× the worst), GRAM_TOL 1e-4 (8×), GRAM_TOL_LOSS 5e-4 (6×).
//! A parameter vector moved by ±5e-2 gives |Δcos| 9e-2 (`a_different_parameter_vector_is_caught`);
//! dropping the bias term (+1) from the kernel's norm, or the softmax own-prediction's sign,
//! fails `every_activation_depth_and_head_kind_in_every_mode` (checked by hand).

mod common;
use common::{gpu, gpu_arc};

use concord_core::data::{Dataset, InputSource};
use concord_core::model::{Activation, HeadConfig, LossKind, Mlp, MlpConfig, PointGradient, PointGrams, Target};
use concord_core::train::{preset, DataSource, TrainConfig, Trainer};
use concord_gpu::kernels::point_conflict::point_grams;
use concord_gpu::{GpuError, GpuTrainer};
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const COS_TOL: f64 = 1e-4;
const GRAM_TOL: f64 = 1e-4;
/// Loss mode: an MSE head's residual o − y carries the f32 rounding of o (≈ 1e-7·|o|) into its
/// gradient's length, relatively larger as the residual shrinks (the cosine of a 1-output head
/// does not see it).
const GRAM_TOL_LOSS: f64 = 5e-4;
const NORM_FLOOR: f64 = 1e-6;
const TIE: f64 = 1e-4;
const KINK: f64 = 1e-4;
/// At most this fraction of points skipped as decision edges.
const MAX_SKIPPED: f64 = 0.005;

const GRID: usize = 100;

/// Cell centres of a GRID × GRID grid over [−6, 6]², row by row from the top (as the page's).
fn grid_points(n: usize) -> DMatrix<f64> {
    let (extent, h) = (6.0, 12.0 / n as f64);
    DMatrix::from_fn(n * n, 2, |i, c| {
        if c == 0 {
            -extent + ((i % n) as f64 + 0.5) * h
        } else {
            extent - ((i / n) as f64 + 0.5) * h
        }
    })
}

/// The inputs as the GPU sees them (rounded to f32).
fn as_f32(x: &DMatrix<f64>) -> DMatrix<f64> {
    x.map(|v| f64::from(v as f32))
}

/// Each trunk layer's pre-activation z (B × width), in f64.
fn trunk_pre(mlp: &Mlp, params: &[f64], x: &DMatrix<f64>) -> Vec<DMatrix<f64>> {
    let act = mlp.config().activation;
    let mut a = x.clone();
    let mut out = Vec::new();
    for s in &mlp.layout().trunk {
        let z = DMatrix::from_fn(a.nrows(), s.fan_out, |r, j| {
            params[s.bias.start + j]
                + (0..s.fan_in).map(|i| params[s.weight.start + j * s.fan_in + i] * a[(r, i)]).sum::<f64>()
        });
        a = z.map(|v| act.apply(v));
        out.push(z);
    }
    out
}

/// The points on an f32 decision edge (see the module doc), from the reference's f64 values.
fn edges(mlp: &Mlp, params: &[f64], x: &DMatrix<f64>, how: PointGradient, targets: Option<&[Target]>) -> Vec<bool> {
    let b = x.nrows();
    let mut edge = vec![false; b];
    if mlp.config().activation == Activation::Relu {
        for z in trunk_pre(mlp, params, x) {
            for (r, e) in edge.iter_mut().enumerate() {
                *e |= z.row(r).iter().any(|v| *v != 0.0 && v.abs() < KINK);
            }
        }
    }
    let outs = mlp.forward(params, x).unwrap();
    for (t, (o, h)) in outs.iter().zip(&mlp.config().heads).enumerate() {
        for (r, e) in edge.iter_mut().enumerate() {
            let row: Vec<f64> = o.row(r).iter().copied().collect();
            *e |= match (how, h.loss) {
                (PointGradient::OwnPrediction, LossKind::Bce) => row.iter().any(|v| v.abs() < TIE),
                (PointGradient::OwnPrediction | PointGradient::Output, LossKind::SoftmaxCe) => {
                    let mut sorted = row.clone();
                    sorted.sort_by(|a, b| b.total_cmp(a));
                    sorted[0] - sorted[1] < TIE
                }
                (PointGradient::Loss, LossKind::Mse) => match &targets.unwrap()[t] {
                    Target::Values(y) => row.iter().zip(y.row(r).iter()).any(|(o, y)| (o - y).abs() < TIE),
                    Target::Classes(_) => unreachable!(),
                },
                _ => false,
            };
        }
    }
    edge
}

#[derive(Debug, Default)]
struct Gap {
    cos: f64,
    gram: f64,
    /// Points whose cosines were compared (every gradient above the floor).
    compared: usize,
    /// Points with a gradient above 0 but below the floor (Gram entries compared only).
    small: usize,
    /// Points with a zero gradient in the reference (and, asserted, on the GPU).
    zero: usize,
    edges: usize,
}

/// The worst gaps between the reference's Grams and the GPU's, over the points not on an edge.
fn compare(cpu: &PointGrams, gpu: &PointGrams, edge: &[bool]) -> Gap {
    assert_eq!(cpu.m, gpu.m);
    assert_eq!(cpu.len(), gpu.len());
    let m = cpu.m;
    let largest = (0..cpu.len()).flat_map(|i| (0..m).map(move |s| cpu.gram(i)[s * m + s])).fold(0.0, f64::max);
    assert!(largest > 0.0, "every gradient is zero");
    let floor = NORM_FLOOR * largest;
    let mut gap = Gap::default();
    for (i, &on_edge) in edge.iter().enumerate().take(cpu.len()) {
        if on_edge {
            gap.edges += 1;
            continue;
        }
        let (c, g) = (cpu.gram(i), gpu.gram(i));
        let diag = |s: usize| c[s * m + s];
        // The GPU's G is symmetric bit for bit (one invocation per entry, the same products).
        for s in 0..m {
            for t in 0..m {
                assert_eq!(g[s * m + t].to_bits(), g[t * m + s].to_bits(), "point {i}: G not symmetric");
                // Each norm clamped at the floor: relative where both are above it.
                let scale = (diag(s).max(floor) * diag(t).max(floor)).sqrt();
                gap.gram = gap.gram.max((c[s * m + t] - g[s * m + t]).abs() / scale);
            }
        }
        if (0..m).any(|s| diag(s) == 0.0) {
            // A zero gradient (every path through the trunk closed): the same on the GPU, where
            // the cosines are undefined too.
            gap.zero += 1;
            for s in (0..m).filter(|&s| diag(s) == 0.0) {
                assert_eq!(g[s * m + s], 0.0, "point {i}: task {s}'s gradient is 0 on the CPU only");
                assert!((0..m).filter(|&t| t != s).all(|t| gpu.cos(i, s, t).is_none()));
            }
        } else if (0..m).any(|s| diag(s) < floor) {
            gap.small += 1;
        } else {
            gap.compared += 1;
            for s in 0..m {
                for t in s + 1..m {
                    let want = cpu.cos(i, s, t).expect("above the floor");
                    let got = gpu.cos(i, s, t).unwrap_or_else(|| panic!("point {i}: GPU cos({s},{t}) undefined"));
                    gap.cos = gap.cos.max((want - got).abs());
                }
            }
        }
    }
    gap
}

fn assert_within(tag: &str, how: PointGradient, gap: &Gap, points: usize) {
    let gram_tol = if how == PointGradient::Loss { GRAM_TOL_LOSS } else { GRAM_TOL };
    eprintln!(
        "{tag}: |Δcos| ≤ {:.2e}, Gram gap ≤ {:.2e} ({} compared, {} small, {} zero, {} on an edge)",
        gap.cos, gap.gram, gap.compared, gap.small, gap.zero, gap.edges
    );
    assert!(gap.cos <= COS_TOL, "{tag}: |Δcos| {:.2e} > {COS_TOL:.0e}", gap.cos);
    assert!(gap.gram <= gram_tol, "{tag}: Gram gap {:.2e} > {gram_tol:.0e}", gap.gram);
    assert!(gap.compared >= points / 4, "{tag}: only {} of {points} points compared", gap.compared);
    assert!(
        gap.edges as f64 <= MAX_SKIPPED * points as f64,
        "{tag}: {} of {points} points on a decision edge",
        gap.edges
    );
}

/// The GPU trainer's map on `x` against the reference at the trainer's parameters.
fn trainer_gap(g: &mut GpuTrainer, x: &DMatrix<f64>, how: PointGradient) -> Gap {
    let got = pollster::block_on(g.point_grams(x, how)).unwrap();
    let params = pollster::block_on(g.params()).unwrap();
    let x = as_f32(x);
    let want = g.mlp().unwrap().point_grams(&params, &x, how, None).unwrap();
    compare(&want, &got, &edges(g.mlp().unwrap(), &params, &x, how, None))
}

#[test]
fn the_grid_map_matches_the_cpu_reference_as_training_goes_on() {
    let x = grid_points(GRID);
    for name in ["xor-conflict", "circle-vs-gauss"] {
        let mut cfg = preset(name).unwrap();
        cfg.steps = 60;
        let mut g = GpuTrainer::new(gpu_arc(), cfg).unwrap();
        // At the initial parameters, then after 60 steps (the cached graphs see new parameters;
        // the two modes alternate, so each is rebuilt or reused in turn).
        for steps in [0usize, 60] {
            g.steps(steps).unwrap();
            pollster::block_on(g.read_history()).unwrap();
            for how in [PointGradient::OwnPrediction, PointGradient::Output, PointGradient::OwnPrediction] {
                let gap = trainer_gap(&mut g, &x, how);
                assert_within(&format!("{name} after {steps} steps, {}", how.name()), how, &gap, GRID * GRID);
            }
        }
        // predict on the same grid shares the forward graph and still answers right.
        let outs = pollster::block_on(g.predict(&x)).unwrap();
        let params = pollster::block_on(g.params()).unwrap();
        let want = g.mlp().unwrap().forward(&params, &as_f32(&x)).unwrap();
        for (o, w) in outs.iter().zip(&want) {
            assert!(o.iter().zip(w.iter()).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs())));
        }
    }
}

#[test]
fn the_backend_contract_serves_the_map() {
    // `Backend::point_grams` (what the page calls at read-back) on the GPU engine.
    let mut cfg = preset("xor-conflict").unwrap();
    cfg.steps = 30;
    let mut b = concord_gpu::backend(gpu_arc(), cfg).unwrap();
    b.submit(30).unwrap();
    let snap = pollster::block_on(b.read_back()).unwrap();
    let x = grid_points(30);
    let pts: Vec<[f64; 2]> = (0..x.nrows()).map(|r| [x[(r, 0)], x[(r, 1)]]).collect();
    let how = PointGradient::OwnPrediction;
    let got = pollster::block_on(b.point_grams(&pts, how).expect("the GPU engine computes the map")).unwrap();
    let mlp = Trainer::new(b.config().clone()).unwrap().mlp().cloned().unwrap();
    let x = as_f32(&x);
    let want = mlp.point_grams(&snap.params, &x, how, None).unwrap();
    assert_within("backend xor-conflict", how, &compare(&want, &got, &edges(&mlp, &snap.params, &x, how, None)), 900);
}

/// A task-set run with the given tasks, heads, activation and trunk.
fn task_set_config(tasks: Vec<Dataset>, heads: Vec<HeadConfig>, act: Activation, hidden: Vec<usize>) -> TrainConfig {
    let mut cfg = preset("circle-vs-gauss").unwrap();
    let DataSource::TaskSet { config: mut ts } = cfg.data.clone() else { panic!("a task set") };
    ts.tasks = tasks;
    ts.inputs = InputSource::Uniform;
    cfg.data = DataSource::TaskSet { config: ts };
    cfg.model = Some(MlpConfig { activation: act, heads, ..MlpConfig::playground(hidden, 2) });
    cfg.steps = 40;
    cfg
}

fn head(out_dim: usize, loss: LossKind) -> HeadConfig {
    HeadConfig { out_dim, loss }
}

#[test]
fn trained_models_of_every_head_kind_on_the_grid_and_the_train_points() {
    use Dataset::*;
    let cases = [
        (
            vec![Xor, Circle, RegPlane],
            vec![head(1, LossKind::Bce), head(2, LossKind::SoftmaxCe), head(1, LossKind::Mse)],
            Activation::Relu,
            vec![8, 6, 5],
        ),
        (vec![Gauss, RegGauss], vec![head(2, LossKind::SoftmaxCe), head(1, LossKind::Mse)], Activation::Gelu, vec![16]),
        (vec![Spiral, Circle], vec![head(1, LossKind::Mse), head(1, LossKind::Bce)], Activation::Sigmoid, vec![6, 6]),
    ];
    let x = grid_points(GRID);
    for (tasks, heads, act, hidden) in cases {
        let cfg = task_set_config(tasks, heads, act, hidden.clone());
        let cpu = Trainer::new(cfg.clone()).unwrap();
        let (train_x, train_y) = cpu.train_data().unwrap();
        let (train_x, train_y) = (as_f32(train_x), train_y.to_vec());
        let mut g = GpuTrainer::new(gpu_arc(), cfg).unwrap();
        g.steps(40).unwrap();
        pollster::block_on(g.read_history()).unwrap();
        let tag = format!("{act:?} {hidden:?} m={}", g.num_tasks());
        for how in [PointGradient::OwnPrediction, PointGradient::Output] {
            let gap = trainer_gap(&mut g, &x, how);
            assert_within(&format!("{tag} grid {}", how.name()), how, &gap, GRID * GRID);
        }
        let params = pollster::block_on(g.params()).unwrap();
        for how in [PointGradient::Loss, PointGradient::OwnPrediction, PointGradient::Output] {
            let got = pollster::block_on(g.train_point_grams(how)).unwrap();
            let want = g.mlp().unwrap().point_grams(&params, &train_x, how, Some(&train_y)).unwrap();
            let edge = edges(g.mlp().unwrap(), &params, &train_x, how, Some(&train_y));
            assert_within(
                &format!("{tag} train points {}", how.name()),
                how,
                &compare(&want, &got, &edge),
                train_x.nrows(),
            );
        }
    }
}

/// A model with `input_dim` inputs.
fn model(act: Activation, hidden: Vec<usize>, input_dim: usize, heads: Vec<HeadConfig>) -> Mlp {
    Mlp::new(MlpConfig { input_dim, hidden, activation: act, heads, tied_head_init: false, head_init_scale: 1.0 })
        .unwrap()
}

/// Labels for every head (values in [0, 1] for BCE, in [−1, 1] for MSE, classes for softmax).
fn labels(mlp: &Mlp, rows: usize, rng: &mut ChaCha8Rng) -> Vec<Target> {
    mlp.config()
        .heads
        .iter()
        .map(|h| match h.loss {
            LossKind::Bce => Target::Values(DMatrix::from_fn(rows, h.out_dim, |_, _| f64::from(rng.random_bool(0.5)))),
            LossKind::Mse => Target::Values(DMatrix::from_fn(rows, h.out_dim, |_, _| rng.random_range(-1.0..1.0))),
            LossKind::SoftmaxCe => Target::Classes((0..rows).map(|_| rng.random_range(0..h.out_dim)).collect()),
        })
        .collect()
}

#[test]
fn every_activation_depth_and_head_kind_in_every_mode() {
    let head_sets = [
        vec![head(1, LossKind::Bce), head(2, LossKind::Mse)],
        vec![head(3, LossKind::SoftmaxCe), head(2, LossKind::Bce), head(1, LossKind::Mse)],
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let mut worst = Gap::default();
    for act in Activation::ALL {
        for hidden in [vec![7], vec![9, 5], vec![6, 8, 4]] {
            for heads in &head_sets {
                let mlp = model(act, hidden.clone(), 3, heads.clone());
                // Init, moved off it so the heads and trunk are not at their seeded scales.
                let params: Vec<f64> = mlp
                    .init_params(rng.random())
                    .iter()
                    .map(|v| f64::from((v + rng.random_range(-0.3..0.3)) as f32))
                    .collect();
                let rows = 400;
                let x = as_f32(&DMatrix::from_fn(rows, 3, |_, _| rng.random_range(-3.0..3.0)));
                let y = labels(&mlp, rows, &mut rng);
                for how in [PointGradient::Loss, PointGradient::OwnPrediction, PointGradient::Output] {
                    let got = pollster::block_on(point_grams(gpu(), &mlp, &params, &x, how, Some(&y))).unwrap();
                    let want = mlp.point_grams(&params, &x, how, Some(&y)).unwrap();
                    let gap = compare(&want, &got, &edges(&mlp, &params, &x, how, Some(&y)));
                    assert_within(&format!("{act:?} {hidden:?} m={} {}", heads.len(), how.name()), how, &gap, rows);
                    worst.cos = worst.cos.max(gap.cos);
                    worst.gram = worst.gram.max(gap.gram);
                }
            }
        }
    }
    eprintln!("worst over every model and mode: |Δcos| {:.2e}, Gram gap {:.2e}", worst.cos, worst.gram);
}

#[test]
fn wide_deep_models_and_many_classes_stay_within_the_kernels_limits() {
    // 256-wide layers, 4 of them, 8 tasks, a 256-class softmax head and input_dim 50: the longest
    // loops of every kernel (fan_out 256, softmax 3·256, fan_in 256) on 2000 points.
    let mut heads = vec![head(256, LossKind::SoftmaxCe), head(10, LossKind::Mse), head(4, LossKind::Bce)];
    heads.extend((0..5).map(|_| head(1, LossKind::Bce)));
    let mlp = model(Activation::Tanh, vec![256, 256, 64, 256], 50, heads);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let params: Vec<f64> = mlp.init_params(3).iter().map(|&v| f64::from(v as f32)).collect();
    let rows = 2000;
    let x = as_f32(&DMatrix::from_fn(rows, 50, |_, _| rng.random_range(-1.0..1.0)));
    let y = labels(&mlp, rows, &mut rng);
    for how in [PointGradient::Loss, PointGradient::OwnPrediction] {
        let got = pollster::block_on(point_grams(gpu(), &mlp, &params, &x, how, Some(&y))).unwrap();
        let want = mlp.point_grams(&params, &x, how, Some(&y)).unwrap();
        let gap = compare(&want, &got, &edges(&mlp, &params, &x, how, Some(&y)));
        assert_within(&format!("wide m=8 {}", how.name()), how, &gap, rows);
    }
}

#[test]
fn a_different_parameter_vector_is_caught() {
    // The comparison can fail: the GPU at θ against the reference at θ + noise of ±5e-2
    // (measured: |Δcos| 6e-2, Gram gap 0.7 — hundreds of times the tolerances).
    let mut cfg = preset("xor-conflict").unwrap();
    cfg.steps = 30;
    let mut g = GpuTrainer::new(gpu_arc(), cfg).unwrap();
    g.steps(30).unwrap();
    let x = grid_points(40);
    let got = pollster::block_on(g.point_grams(&x, PointGradient::Output)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let params: Vec<f64> =
        pollster::block_on(g.params()).unwrap().iter().map(|v| v + rng.random_range(-5e-2..5e-2)).collect();
    let x = as_f32(&x);
    let want = g.mlp().unwrap().point_grams(&params, &x, PointGradient::Output, None).unwrap();
    let gap = compare(&want, &got, &vec![false; x.nrows()]);
    eprintln!("perturbed parameters: |Δcos| {:.2e}, Gram gap {:.2e}", gap.cos, gap.gram);
    assert!(gap.cos > 10.0 * COS_TOL && gap.gram > 10.0 * GRAM_TOL, "{gap:?}");
}

#[test]
fn bad_requests_are_errors() {
    let mut g = GpuTrainer::new(gpu_arc(), preset("xor-conflict").unwrap()).unwrap();
    let unsupported = |r: Result<PointGrams, GpuError>| match r {
        Err(GpuError::Unsupported(msg)) => msg,
        other => panic!("expected Unsupported, got {other:?}"),
    };
    let msg = unsupported(pollster::block_on(g.point_grams(&grid_points(4), PointGradient::Loss)));
    assert!(msg.contains("labels"), "{msg}");
    let msg = unsupported(pollster::block_on(g.point_grams(&DMatrix::zeros(4, 3), PointGradient::Output)));
    assert!(msg.contains("the inputs have 3 columns, the model takes 2"), "{msg}");
    let msg =
        unsupported(pollster::block_on(g.point_grams(&DMatrix::from_element(2, 2, f64::NAN), PointGradient::Output)));
    assert!(msg.contains("not finite"), "{msg}");
    let empty = pollster::block_on(g.point_grams(&DMatrix::zeros(0, 2), PointGradient::Output)).unwrap();
    assert!(empty.is_empty() && empty.m == 2);
    let mlp = g.mlp().unwrap().clone();
    let params = mlp.init_params(0);
    let msg =
        unsupported(pollster::block_on(point_grams(gpu(), &mlp, &params, &grid_points(3), PointGradient::Loss, None)));
    assert!(msg.contains("labels"), "{msg}");
    let msg = unsupported(pollster::block_on(point_grams(
        gpu(),
        &mlp,
        &params[1..],
        &grid_points(3),
        PointGradient::Output,
        None,
    )));
    assert!(msg.contains("parameters"), "{msg}");
}
