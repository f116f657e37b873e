//! Finite-difference checks of the backprop, reproducibility, validation, and a tiny overfit.

use super::*;
use crate::aggregators::combine;
use crate::optim::OptimizerKind;
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Central-difference step and the tolerance |analytic − numeric| ≤ TOL·(1 + |analytic|).
/// With h = 1e-5 the truncation error is O(h²) ≈ 1e-10 and rounding ≈ 1e-16/h ≈ 1e-11.
const H: f64 = 1e-5;
const TOL: f64 = 1e-6;

fn config(act: Activation, hidden: Vec<usize>, loss: LossKind, tasks: usize) -> MlpConfig {
    config_with_inputs(act, hidden, loss, tasks, 2)
}

/// A test MLP: heads of width 2 (3 classes for softmax-CE), Glorot heads.
pub(super) fn config_with_inputs(
    act: Activation,
    hidden: Vec<usize>,
    loss: LossKind,
    tasks: usize,
    input_dim: usize,
) -> MlpConfig {
    let out_dim = if loss == LossKind::SoftmaxCe { 3 } else { 2 };
    MlpConfig {
        input_dim,
        hidden,
        activation: act,
        heads: vec![HeadConfig { out_dim, loss }; tasks],
        tied_head_init: false,
        head_init_scale: 1.0,
    }
}

/// b random inputs in [−2, 2] and targets that fit each head's loss.
pub(super) fn batch(rng: &mut ChaCha8Rng, mlp: &Mlp, b: usize) -> (DMatrix<f64>, Vec<Target>) {
    let x = DMatrix::from_fn(b, mlp.config().input_dim, |_, _| rng.random_range(-2.0..2.0));
    let targets = mlp
        .config()
        .heads
        .iter()
        .map(|h| match h.loss {
            LossKind::Mse => Target::Values(DMatrix::from_fn(b, h.out_dim, |_, _| rng.random_range(-1.0..1.0))),
            LossKind::Bce => Target::Values(DMatrix::from_fn(b, h.out_dim, |_, _| rng.random_range(0.0..1.0))),
            LossKind::SoftmaxCe => Target::Classes((0..b).map(|_| rng.random_range(0..h.out_dim)).collect()),
        })
        .collect();
    (x, targets)
}

fn check_close(what: &str, analytic: f64, numeric: f64) {
    assert!(
        (analytic - numeric).abs() <= TOL * (1.0 + analytic.abs()),
        "{what}: analytic {analytic} vs finite difference {numeric}"
    );
}

#[test]
fn gradients_match_finite_differences_for_every_activation_loss_and_depth() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for act in Activation::ALL {
        for loss in [LossKind::Mse, LossKind::Bce, LossKind::SoftmaxCe] {
            for (hidden, tasks) in [(vec![], 2), (vec![5], 3), (vec![4, 3, 4], 2), (vec![3, 5, 3], 3)] {
                let mlp = Mlp::new(config(act, hidden.clone(), loss, tasks)).unwrap();
                let mut p = mlp.init_params(rng.random());
                // Non-zero biases so their gradients are exercised away from the init.
                for v in p.iter_mut() {
                    *v += rng.random_range(-0.2..0.2);
                }
                let (x, y) = batch(&mut rng, &mlp, 6);
                let g = mlp.gradients(&p, &x, &y).unwrap();
                let lay = mlp.layout();
                assert_eq!(g.shared_jacobian.shape(), (tasks, lay.shared_len));
                let tag = format!("{act:?}/{loss:?}/{hidden:?}");
                for k in 0..lay.total_len {
                    let mut plus = p.clone();
                    plus[k] += H;
                    let mut minus = p.clone();
                    minus[k] -= H;
                    let lp = mlp.losses(&plus, &x, &y).unwrap();
                    let lm = mlp.losses(&minus, &x, &y).unwrap();
                    for t in 0..tasks {
                        let numeric = (lp[t] - lm[t]) / (2.0 * H);
                        if k < lay.shared_len {
                            check_close(&format!("{tag} task {t} shared {k}"), g.shared_jacobian[(t, k)], numeric);
                        } else {
                            let head = lay.heads.iter().position(|s| s.range().contains(&k)).unwrap();
                            let analytic = if head == t { g.head_grads[t][k - lay.heads[t].weight.start] } else { 0.0 };
                            check_close(&format!("{tag} task {t} param {k} (head {head})"), analytic, numeric);
                        }
                    }
                }
                // Losses agree between `losses` and `gradients`.
                assert_eq!(mlp.losses(&p, &x, &y).unwrap(), g.losses);
            }
        }
    }
}

#[test]
fn per_layer_blocks_tile_the_shared_jacobian() {
    let mlp = Mlp::new(config(Activation::Tanh, vec![4, 3], LossKind::Mse, 2)).unwrap();
    let p = mlp.init_params(1);
    let (x, y) = batch(&mut ChaCha8Rng::seed_from_u64(2), &mlp, 5);
    let g = mlp.gradients(&p, &x, &y).unwrap();
    let lay = mlp.layout();
    assert_eq!(lay.trunk[0].name, "trunk.0");
    assert_eq!(lay.heads[1].name, "head.1");
    let widths: usize = (0..lay.trunk.len()).map(|l| g.layer_jacobian(lay, l).ncols()).sum();
    assert_eq!(widths, lay.shared_len);
    assert_eq!(lay.shared_len, 2 * 4 + 4 + 4 * 3 + 3);
    assert_eq!(lay.total_len, lay.shared_len + 2 * (3 * 2 + 2));
    let block = g.layer_jacobian(lay, 1);
    assert_eq!(block[(1, 0)], g.shared_jacobian[(1, lay.trunk[1].weight.start)]);
}

#[test]
fn per_sample_gradients_average_to_the_batch_gradient() {
    for loss in [LossKind::Mse, LossKind::Bce, LossKind::SoftmaxCe] {
        let mlp = Mlp::new(config(Activation::Gelu, vec![4], loss, 2)).unwrap();
        let p = mlp.init_params(3);
        let (x, y) = batch(&mut ChaCha8Rng::seed_from_u64(4), &mlp, 7);
        let g = mlp.gradients(&p, &x, &y).unwrap();
        for t in 0..2 {
            let per = mlp.per_sample_shared_gradients(&p, &x, &y, t).unwrap();
            assert_eq!(per.nrows(), 7);
            for k in 0..per.ncols() {
                let mean = per.column(k).sum() / 7.0;
                assert!((mean - g.shared_jacobian[(t, k)]).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn a_seed_reproduces_parameters_and_gradients_bit_for_bit() {
    let mlp = Mlp::new(config(Activation::Relu, vec![8, 8], LossKind::Bce, 3)).unwrap();
    let (a, b, c) = (mlp.init_params(42), mlp.init_params(42), mlp.init_params(43));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let (x, y) = batch(&mut ChaCha8Rng::seed_from_u64(5), &mlp, 4);
    assert_eq!(mlp.gradients(&a, &x, &y).unwrap(), mlp.gradients(&b, &x, &y).unwrap());
    // Biases start at 0; He bound for the first ReLU layer is √(6/2).
    let lay = mlp.layout();
    assert!(a[lay.trunk[0].bias.clone()].iter().all(|&v| v == 0.0));
    assert!(a[lay.trunk[0].weight.clone()].iter().all(|v| v.abs() <= 3f64.sqrt()));
}

#[test]
fn tied_head_init_gives_identical_heads_and_rows_for_identical_labels() {
    let mut cfg = config(Activation::Tanh, vec![6], LossKind::Bce, 2);
    cfg.tied_head_init = true;
    let mlp = Mlp::new(cfg).unwrap();
    let p = mlp.init_params(9);
    let lay = mlp.layout();
    assert_eq!(p[lay.head_range(0)], p[lay.head_range(1)]);
    let (x, mut y) = batch(&mut ChaCha8Rng::seed_from_u64(6), &mlp, 5);
    y[1] = y[0].clone();
    let g = mlp.gradients(&p, &x, &y).unwrap();
    assert_eq!(g.shared_jacobian.row(0), g.shared_jacobian.row(1));
}

#[test]
fn bad_configs_and_batches_are_errors_not_panics() {
    let ok = config(Activation::Tanh, vec![4], LossKind::Mse, 2);
    let bad = [
        MlpConfig { hidden: vec![4; 7], ..ok.clone() },
        MlpConfig { hidden: vec![0], ..ok.clone() },
        MlpConfig { hidden: vec![257], ..ok.clone() },
        MlpConfig { input_dim: 0, ..ok.clone() },
        MlpConfig { heads: vec![ok.heads[0]], ..ok.clone() },
        MlpConfig { heads: vec![ok.heads[0]; 9], ..ok.clone() },
        MlpConfig { heads: vec![HeadConfig { out_dim: 1, loss: LossKind::SoftmaxCe }; 2], ..ok.clone() },
        MlpConfig {
            heads: vec![ok.heads[0], HeadConfig { out_dim: 3, loss: LossKind::Mse }],
            tied_head_init: true,
            head_init_scale: 1.0,
            ..ok.clone()
        },
    ];
    for c in bad {
        assert!(Mlp::new(c.clone()).is_err(), "{c:?} should be rejected");
    }
    let mlp = Mlp::new(ok).unwrap();
    let p = mlp.init_params(0);
    let (x, y) = batch(&mut ChaCha8Rng::seed_from_u64(0), &mlp, 3);
    assert!(mlp.gradients(&p[1..], &x, &y).is_err());
    assert!(mlp.gradients(&p, &x.columns(0, 1).into_owned(), &y).is_err());
    assert!(mlp.gradients(&p, &x, &y[..1]).is_err());
    assert!(mlp.gradients(&p, &x, &[y[0].clone(), Target::Classes(vec![0, 1, 2])]).is_err());
    assert!(mlp.gradients(&p, &DMatrix::zeros(0, 2), &y).is_err());
    let mut nan = x.clone();
    nan[(1, 1)] = f64::NAN;
    assert!(mlp.forward(&p, &nan).is_err());
    let bce = Mlp::new(config(Activation::Tanh, vec![], LossKind::Bce, 2)).unwrap();
    let y_bad = Target::Values(DMatrix::from_element(3, 2, 2.0));
    assert!(bce.gradients(&bce.init_params(0), &x, &[y_bad.clone(), y_bad]).is_err());
    let ce = Mlp::new(config(Activation::Tanh, vec![], LossKind::SoftmaxCe, 2)).unwrap();
    let out_of_range = Target::Classes(vec![0, 3, 1]);
    assert!(ce.gradients(&ce.init_params(0), &x, &[out_of_range.clone(), out_of_range]).is_err());
    assert!(mlp.per_sample_shared_gradients(&p, &x, &y, 2).is_err());
}

#[test]
fn mean_of_task_gradients_with_adam_overfits_a_tiny_regression() {
    let mlp = Mlp::new(MlpConfig {
        input_dim: 2,
        hidden: vec![16, 16],
        activation: Activation::Tanh,
        heads: vec![HeadConfig { out_dim: 1, loss: LossKind::Mse }; 2],
        tied_head_init: false,
        head_init_scale: 1.0,
    })
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x: DMatrix<f64> = DMatrix::from_fn(12, 2, |_, _| rng.random_range(-1.0..1.0));
    let y = vec![
        Target::Values(DMatrix::from_fn(12, 1, |r, _| (2.0 * x[(r, 0)]).sin())),
        Target::Values(DMatrix::from_fn(12, 1, |r, _| x[(r, 0)] * x[(r, 1)])),
    ];
    let mut p = mlp.init_params(11);
    let mut opt = OptimizerKind::adam(0.01).build(p.len());
    let w = DVector::from_element(2, 0.5); // d = Jᵀ(1/m)
    let first = mlp.losses(&p, &x, &y).unwrap().iter().sum::<f64>();
    for _ in 0..1500 {
        let g = mlp.gradients(&p, &x, &y).unwrap();
        let d = combine(&g.shared_jacobian, &w);
        let full = g.full_update(mlp.layout(), d.as_slice()).unwrap();
        opt.step(&mut p, &full);
    }
    let last = mlp.losses(&p, &x, &y).unwrap();
    assert!(last.iter().sum::<f64>() < 0.01 * first, "{first} → {last:?}");
    assert!(last.iter().all(|&l| l < 1e-3), "{last:?}");
}

#[test]
fn hidden_activations_match_a_hand_written_forward_pass() {
    // Explicit loops over the documented layout (W row-major fan_out × fan_in, then b), so the
    // check does not reuse the batched code; same f64 operations up to summation order: 1e-12.
    for act in [Activation::Tanh, Activation::Relu, Activation::Sigmoid] {
        let mlp = Mlp::new(config(act, vec![3, 4], LossKind::Bce, 2)).unwrap();
        let params = mlp.init_params(3);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let points: Vec<[f64; 2]> =
            (0..9).map(|_| [rng.random_range(-6.0..6.0), rng.random_range(-6.0..6.0)]).collect();
        let acts = mlp.hidden_activations(&params, &crate::data::feature_rows(None, &points)).unwrap();
        assert_eq!(acts.len(), 2);
        for (b, p) in points.iter().enumerate() {
            let mut a = p.to_vec();
            for (l, s) in mlp.layout().trunk.iter().enumerate() {
                let next: Vec<f64> = (0..s.fan_out)
                    .map(|j| {
                        let z: f64 =
                            (0..s.fan_in).map(|k| params[s.weight.start + j * s.fan_in + k] * a[k]).sum::<f64>()
                                + params[s.bias.start + j];
                        act.apply(z)
                    })
                    .collect();
                assert_eq!(acts[l].shape(), (points.len(), s.fan_out));
                for (j, v) in next.iter().enumerate() {
                    assert!((acts[l][(b, j)] - v).abs() < 1e-12, "{act:?} layer {l} neuron {j}");
                }
                a = next;
            }
        }
    }
    // No hidden layers: nothing to draw; bad input: an error, not a panic.
    let flat = Mlp::new(config(Activation::Tanh, vec![], LossKind::Bce, 2)).unwrap();
    let origin = crate::data::feature_rows(None, &[[0.0, 0.0]]);
    assert!(flat.hidden_activations(&flat.init_params(0), &origin).unwrap().is_empty());
    assert!(flat.hidden_activations(&[0.0], &origin).is_err());
}
