//! Each MLP kernel (`shaders/mlp_*.wgsl`) against its concord-core twin on Mesa lavapipe, on
//! random inputs across sizes that are and are not multiples of the 256-wide workgroups. A
//! missing adapter is a failure, not a skip.
//!
//! Inputs are rounded to f32 once and the CPU reference runs in f64 on exactly those values,
//! so the differences are the GPU's f32 arithmetic. Each tolerance is stated next to its
//! assert, with the worst case measured on lavapipe.

mod common;
use common::gpu;

use concord_core::model::{loss_and_grad, Activation, HeadConfig, LossKind, Mlp, MlpConfig, Target};
use concord_core::train::TrainOptimizer;
use concord_gpu::kernels::mlp_ops;
use concord_gpu::mlp_gradients;
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand_f32(rng: &mut ChaCha8Rng, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi) as f32).collect()
}

#[test]
fn activations_forward_and_derivative_match_core() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut worst = 0.0f64;
    for len in [1usize, 255, 257, 1000] {
        let mut xs = rand_f32(&mut rng, len, -8.0, 8.0);
        // Edges: 0 (ReLU's kink), tiny, and large arguments (tanh/sigmoid/GELU saturation).
        for (i, v) in [0.0f32, 1e-4, -1e-4, 30.0, -30.0, 90.0, -90.0].into_iter().enumerate() {
            if i < len {
                xs[i] = v;
            }
        }
        for act in Activation::ALL {
            let got = pollster::block_on(mlp_ops::activation_map(gpu(), act, &xs)).unwrap();
            assert_eq!(got.len(), len);
            for (&x, &(f, df)) in xs.iter().zip(&got) {
                let x = f64::from(x);
                let (rf, rdf) = (act.apply(x), act.derivative(x));
                let ef = (f64::from(f) - rf).abs() / (1.0 + rf.abs());
                let edf = (f64::from(df) - rdf).abs() / (1.0 + rdf.abs());
                worst = worst.max(ef).max(edf);
                // |Δ| ≤ 5e-7·(1 + |ref|) (measured worst 8.6e-8; the shader writes 1 − tanh² as
                // 4σ(2u)σ(−2u), without cancellation in the tails).
                assert!(ef <= 5e-7 && edf <= 5e-7, "{act:?} at {x}: φ {f} vs {rf}, φ' {df} vs {rdf}");
            }
        }
    }
    eprintln!("activations: worst |Δ|/(1+|ref|) = {worst:e}");
}

#[test]
fn dense_layer_matches_core_formula() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut worst = 0.0f64;
    for (rows, fan_in, fan_out) in [(1, 1, 1), (3, 2, 257), (300, 50, 7), (17, 1024, 3), (129, 64, 64)] {
        let x = rand_f32(&mut rng, rows * fan_in, -2.0, 2.0);
        let w = rand_f32(&mut rng, fan_out * fan_in, -0.5, 0.5);
        let b = rand_f32(&mut rng, fan_out, -0.5, 0.5);
        for act in Activation::ALL {
            let (z, a) = pollster::block_on(mlp_ops::dense_layer(gpu(), &x, rows, &w, &b, act)).unwrap();
            for r in 0..rows {
                for j in 0..fan_out {
                    let mut rz = f64::from(b[j]);
                    let mut mag = rz.abs();
                    for i in 0..fan_in {
                        let t = f64::from(x[r * fan_in + i]) * f64::from(w[j * fan_in + i]);
                        rz += t;
                        mag += t.abs();
                    }
                    let gz = f64::from(z[r * fan_out + j]);
                    let e = (gz - rz).abs() / (mag + 1e-30);
                    worst = worst.max(e);
                    // f32 dot products: |Δz| ≤ 1e-6·Σ|x·w| (measured worst 1.8e-7).
                    assert!(e <= 1e-6, "{rows}×{fan_in}→{fan_out} {act:?}: z {gz} vs {rz}");
                    // φ applied to the kernel's own z: the activation is checked on its own above.
                    let ra = act.apply(gz);
                    let ga = f64::from(a[r * fan_out + j]);
                    assert!((ga - ra).abs() <= 2e-6 * (1.0 + ra.abs()), "{act:?}: φ(z) {ga} vs {ra}");
                }
            }
        }
    }
    eprintln!("dense forward: worst |Δz|/Σ|x·w| = {worst:e}");
}

#[test]
fn each_loss_and_its_gradient_match_core() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mut worst_l, mut worst_g) = (0.0f64, 0.0f64);
    for loss in [LossKind::Mse, LossKind::Bce, LossKind::SoftmaxCe] {
        for (rows, k) in [(1usize, 2usize), (7, 3), (300, 10), (513, 2), (64, 256)] {
            let out = rand_f32(&mut rng, rows * k, -6.0, 6.0);
            let (targets, target) = match loss {
                LossKind::Mse => {
                    let y = rand_f32(&mut rng, rows * k, -3.0, 3.0);
                    let t = Target::Values(DMatrix::from_row_slice(
                        rows,
                        k,
                        &y.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
                    ));
                    (y, t)
                }
                LossKind::Bce => {
                    let y = rand_f32(&mut rng, rows * k, 0.0, 1.0);
                    let t = Target::Values(DMatrix::from_row_slice(
                        rows,
                        k,
                        &y.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
                    ));
                    (y, t)
                }
                LossKind::SoftmaxCe => {
                    let c: Vec<usize> = (0..rows).map(|_| rng.random_range(0..k)).collect();
                    (c.iter().map(|&v| v as f32).collect(), Target::Classes(c))
                }
            };
            let o = DMatrix::from_row_slice(rows, k, &out.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
            let (rl, rg) = loss_and_grad(loss, &o, &target);
            let (gl, gg) = pollster::block_on(mlp_ops::task_loss(gpu(), loss, &out, rows, &targets)).unwrap();
            let el = (f64::from(gl) - rl).abs() / rl.abs().max(1e-12);
            worst_l = worst_l.max(el);
            // Mean over ≤ 16 384 f32 terms, reduced in a tree: relative 1e-6 (measured 8.3e-8).
            assert!(el <= 1e-6, "{loss:?} {rows}×{k}: loss {gl} vs {rl}");
            let gmax = rg.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            for r in 0..rows {
                for c in 0..k {
                    let e = (f64::from(gg[r * k + c]) - rg[(r, c)]).abs() / gmax;
                    worst_g = worst_g.max(e);
                    // Element-wise f32 formulas: |Δ| ≤ 2e-6·max|∂L/∂o| (measured 4.0e-7).
                    assert!(e <= 2e-6, "{loss:?} {rows}×{k} grad[{r},{c}]: {} vs {}", gg[r * k + c], rg[(r, c)]);
                }
            }
        }
    }
    eprintln!("losses: worst relative loss {worst_l:e}, worst gradient |Δ|/max {worst_g:e}");
}

fn model(act: Activation, hidden: Vec<usize>, input_dim: usize, heads: Vec<HeadConfig>) -> Mlp {
    Mlp::new(MlpConfig { input_dim, hidden, activation: act, heads, tied_head_init: false, head_init_scale: 1.0 })
        .unwrap()
}

fn frob_rel(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let n: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if n == 0.0 {
        d
    } else {
        d / n
    }
}

#[test]
fn forward_losses_jacobian_rows_layer_blocks_and_head_grads_match_core() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut worst = 0.0f64;
    let heads_mixed = vec![
        HeadConfig { out_dim: 3, loss: LossKind::Mse },
        HeadConfig { out_dim: 1, loss: LossKind::Bce },
        HeadConfig { out_dim: 4, loss: LossKind::SoftmaxCe },
    ];
    let cases: Vec<(Vec<usize>, usize, Vec<HeadConfig>, usize)> = vec![
        (vec![5], 2, heads_mixed.clone(), 6),
        (vec![4, 3, 4], 3, heads_mixed.clone(), 1),
        (vec![200, 3], 7, heads_mixed, 300),
        (vec![64, 64], 50, vec![HeadConfig { out_dim: 10, loss: LossKind::Mse }; 2], 100),
        (vec![37], 2, vec![HeadConfig { out_dim: 1, loss: LossKind::Bce }; 8], 257),
    ];
    for (hidden, input_dim, heads, rows) in cases {
        for act in Activation::ALL {
            let mlp = model(act, hidden.clone(), input_dim, heads.clone());
            // Round the parameters to f32 so both sides start from the same values; nudge the
            // biases off 0 so their gradients are exercised.
            let params: Vec<f64> = mlp
                .init_params(rng.random())
                .iter()
                .map(|&v| f64::from((v + rng.random_range(-0.1..0.1)) as f32))
                .collect();
            let x = DMatrix::from_fn(rows, input_dim, |_, _| f64::from(rng.random_range(-2.0f32..2.0)));
            let targets: Vec<Target> = heads
                .iter()
                .map(|h| match h.loss {
                    LossKind::Mse => Target::Values(DMatrix::from_fn(rows, h.out_dim, |_, _| {
                        f64::from(rng.random_range(-1.0f32..1.0))
                    })),
                    LossKind::Bce => Target::Values(DMatrix::from_fn(rows, h.out_dim, |_, _| {
                        f64::from(rng.random_range(0.0f32..1.0))
                    })),
                    LossKind::SoftmaxCe => Target::Classes((0..rows).map(|_| rng.random_range(0..h.out_dim)).collect()),
                })
                .collect();
            let want = mlp.gradients(&params, &x, &targets).unwrap();
            let outs = mlp.forward(&params, &x).unwrap();
            let got = pollster::block_on(mlp_gradients(gpu(), &mlp, &params, &x, &targets)).unwrap();
            let tag = format!("{act:?} {hidden:?} in={input_dim} rows={rows}");
            let f64s = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
            for (t, o) in outs.iter().enumerate() {
                let o_rows: Vec<f64> = (0..rows).flat_map(|r| o.row(r).iter().copied().collect::<Vec<_>>()).collect();
                let e = frob_rel(&f64s(&got.outputs[t]), &o_rows);
                worst = worst.max(e);
                assert!(e <= 2e-5, "{tag}: head {t} outputs rel {e:e}");
            }
            for (t, (a, b)) in got.losses.iter().zip(&want.losses).enumerate() {
                let e = (f64::from(*a) - b).abs() / b.abs().max(1e-12);
                worst = worst.max(e);
                assert!(e <= 2e-5, "{tag}: loss {t} {a} vs {b}");
            }
            let lay = mlp.layout();
            let m = heads.len();
            let jac = DMatrix::from_row_slice(m, lay.shared_len, &f64s(&got.shared_jacobian));
            for t in 0..m {
                for l in 0..lay.trunk.len() {
                    // Per-layer blocks of each Jacobian row.
                    let g_block: Vec<f64> = jac
                        .row(t)
                        .columns(lay.trunk[l].range().start, lay.trunk[l].range().len())
                        .iter()
                        .copied()
                        .collect();
                    let w_block: Vec<f64> = want.layer_jacobian(lay, l).row(t).iter().copied().collect();
                    let e = frob_rel(&g_block, &w_block);
                    worst = worst.max(e);
                    // Backprop through ≤ 4 layers of f32 sums: relative 2e-5 per block (measured
                    // worst over outputs, losses, blocks and heads: 1.5e-6).
                    assert!(e <= 2e-5, "{tag}: task {t} layer {l} block rel {e:e}");
                }
                let e = frob_rel(&f64s(&got.head_grads[t]), &want.head_grads[t]);
                worst = worst.max(e);
                assert!(e <= 2e-5, "{tag}: head {t} gradient rel {e:e}");
            }
        }
    }
    eprintln!("forward/backward: worst relative error {worst:e}");
}

#[test]
fn optimizer_updates_match_core() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut worst = 0.0f64;
    let opts = [
        TrainOptimizer::sgd(0.1, 0.0),
        TrainOptimizer::sgd(0.05, 0.9),
        TrainOptimizer::adam(0.01),
        TrainOptimizer::Adam { lr: 0.003, beta1: 0.5, beta2: 0.9, eps: 1e-6 },
        TrainOptimizer::adamw(0.02),
    ];
    for n in [1usize, 255, 257, 1000] {
        for opt in opts {
            let x0 = rand_f32(&mut rng, n, -1.0, 1.0);
            let grads: Vec<Vec<f32>> = (0..6).map(|_| rand_f32(&mut rng, n, -2.0, 2.0)).collect();
            let got = pollster::block_on(mlp_ops::optimizer_steps(gpu(), &opt, &x0, &grads)).unwrap();
            let mut cpu = opt.build(n);
            let mut x: Vec<f64> = x0.iter().map(|&v| f64::from(v)).collect();
            for g in &grads {
                cpu.step(&mut x, &g.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
            }
            for (a, b) in got.iter().zip(&x) {
                let e = (f64::from(*a) - b).abs() / (1.0 + b.abs());
                worst = worst.max(e);
                // Six f32 updates: |Δx| ≤ 1e-6·(1 + |x|) (measured 1.6e-7).
                assert!(e <= 1e-6, "{} n={n}: {a} vs {b}", opt.name());
            }
        }
    }
    eprintln!("optimizers: worst |Δx|/(1+|x|) = {worst:e}");
}
