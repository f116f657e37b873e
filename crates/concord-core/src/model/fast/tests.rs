//! The fast path against the f64 reference (`Mlp::gradients`) on the same parameters and batch.

use super::*;
use crate::aggregators::gram;
use crate::model::tests::{batch as data, config_with_inputs as config};
use crate::pause::finish;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn tanh_f32_is_within_a_few_ulps_of_tanh() {
    // Every 10⁻⁴ over [−12, 12], and tiny arguments down to 10⁻³⁰.
    let mut xs: Vec<f32> = (-120_000..=120_000).map(|i| i as f32 * 1e-4).collect();
    xs.extend((0..30).flat_map(|e| [10f32.powi(-e), -(10f32.powi(-e))]));
    let mut worst = 0.0f64;
    for x in xs {
        let exact = (x as f64).tanh();
        let got = tanh_f32(x) as f64;
        // Measured in units of f32's spacing at the exact value (at least the spacing near 1e-38).
        let ulp = (exact.abs().max(1e-37) * f32::EPSILON as f64).max(f32::MIN_POSITIVE as f64);
        let err = (got - exact).abs() / ulp;
        assert!(got.abs() <= 1.0, "tanh_f32({x}) = {got} leaves [−1, 1]");
        assert!(err <= 4.0, "tanh_f32({x}) = {got}, tanh = {exact}: {err:.2} ulp");
        worst = worst.max(err);
    }
    assert!(worst > 0.0, "compared against f64, some rounding must show");
    assert_eq!(tanh_f32(0.0), 0.0);
    assert_eq!(tanh_f32(f32::INFINITY), 1.0);
    assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
}

/// max |a − b| ≤ tol · max(max |b|, floor).
fn assert_close(what: &str, a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
    let diff = a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff <= tol * scale, "{what}: max diff {diff:e} > {tol:e} × {scale:e}");
}

fn rows_of(x: &DMatrix<f64>, t: &[Target], rows: &[usize]) -> (DMatrix<f64>, Vec<Target>) {
    let xs = DMatrix::from_fn(rows.len(), x.ncols(), |r, c| x[(rows[r], c)]);
    let ts = t
        .iter()
        .map(|t| match t {
            Target::Values(v) => Target::Values(DMatrix::from_fn(rows.len(), v.ncols(), |r, c| v[(rows[r], c)])),
            Target::Classes(c) => Target::Classes(rows.iter().map(|&r| c[r]).collect()),
        })
        .collect();
    (xs, ts)
}

/// Losses, J, the heads' gradients and every Gramian within f32 rounding of the reference, for
/// every activation, loss, depth (no hidden layer too), several tasks, whole sets and batches.
#[test]
fn gradients_match_the_f64_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for act in Activation::ALL {
        for loss in [LossKind::Mse, LossKind::Bce, LossKind::SoftmaxCe] {
            for (hidden, tasks, input_dim) in
                [(vec![], 2, 3), (vec![7], 3, 2), (vec![16, 9], 2, 5), (vec![5, 12, 4], 4, 2)]
            {
                let mlp = Mlp::new(config(act, hidden.clone(), loss, tasks, input_dim)).unwrap();
                let mut params = mlp.init_params(rng.random());
                for v in params.iter_mut() {
                    *v += rng.random_range(-0.2..0.2);
                }
                let (x, y) = data(&mut rng, &mlp, 40);
                let set = FastData::new(&x, &y);
                let batch: Vec<usize> = (0..13).map(|_| rng.random_range(0..40)).collect();
                // Whole, and cut in two halves (odd sizes too: 13 = 7 + 6) whose sums are added.
                for (split_from, rows) in
                    [usize::MAX, 0].into_iter().flat_map(|s| [(s, None), (s, Some(batch.as_slice()))])
                {
                    let mut fast = FastMlp::new(&mlp);
                    fast.split_from = split_from;
                    let (bx, by) = match rows {
                        None => (x.clone(), y.clone()),
                        Some(r) => rows_of(&x, &y, r),
                    };
                    let what = format!(
                        "{act:?}/{loss:?}/{hidden:?}/{tasks} tasks/{}{}",
                        if rows.is_some() { "batch" } else { "set" },
                        if split_from == 0 { " in halves" } else { "" }
                    );
                    let reference = mlp.gradients(&params, &bx, &by).unwrap();
                    fast.load_params(&params);
                    finish(fast.gradients(&set, rows));
                    assert_close(&format!("{what}: losses"), &fast.losses, &reference.losses, 1e-5);
                    let j = fast.jacobian.to_f64();
                    assert_close(&format!("{what}: J"), j.as_slice(), reference.shared_jacobian.as_slice(), 1e-4);
                    let heads: Vec<f64> = reference.head_grads.concat();
                    let fh: Vec<f64> = fast.head_grads.iter().map(|&v| v as f64).collect();
                    assert_close(&format!("{what}: heads"), &fh, &heads, 1e-4);
                    let g = gram(&reference.shared_jacobian);
                    assert_close(&format!("{what}: G"), fast.gram.as_slice(), g.as_slice(), 1e-4);
                    for (l, s) in mlp.layout().trunk.iter().enumerate() {
                        let jl = reference.shared_jacobian.columns(s.range().start, s.range().len()).into_owned();
                        let gl = gram(&jl);
                        assert_close(
                            &format!("{what}: G of layer {l}"),
                            fast.layer_grams[l].as_slice(),
                            gl.as_slice(),
                            1e-4,
                        );
                    }
                    let losses = finish(fast.losses(&set, rows));
                    assert_close(&format!("{what}: forward-only losses"), &losses, &reference.losses, 1e-5);
                }
            }
        }
    }
}

/// ReLU's derivative jumps at 0: pre-activations that are 1e-10 in f64 but 0 in f32 (x₀ = 0.1 +
/// 1e-10 rounds to 0.1) count as positive, as in the reference — in the first layer (x₀ − x₁) and
/// in the second (a₁ − a₂ with a₁ = x₀, a₂ = x₁) — on the whole set and on a batch.
#[test]
fn relu_pre_activations_near_zero_take_the_references_side() {
    let mlp = Mlp::new(config(Activation::Relu, vec![3, 3], LossKind::Mse, 2, 2)).unwrap();
    let mut params = mlp.init_params(7);
    let (l0, l1) = (mlp.layout().trunk[0].range(), mlp.layout().trunk[1].range());
    params[l0].copy_from_slice(&[1.0, -1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    params[l1].copy_from_slice(&[0.0, 1.0, -1.0, 0.5, 0.3, 0.2, -0.4, 0.6, 0.1, 0.0, 0.1, 0.1]);
    let x = DMatrix::from_row_slice(2, 2, &[0.1 + 1e-10, 0.1, 0.3, -0.2]);
    let y = DMatrix::from_row_slice(2, 2, &[1.0, -1.0, 0.5, 0.2]);
    let y = vec![Target::Values(y.clone()), Target::Values(-y)];
    let set = FastData::new(&x, &y);
    let mut fast = FastMlp::new(&mlp);
    fast.load_params(&params);
    for rows in [None, Some(&[1, 0][..])] {
        let (bx, by) = rows.map_or((x.clone(), y.clone()), |r| rows_of(&x, &y, r));
        let reference = mlp.gradients(&params, &bx, &by).unwrap();
        finish(fast.gradients(&set, rows));
        let j = fast.jacobian.to_f64();
        assert_close(&format!("J ({rows:?})"), j.as_slice(), reference.shared_jacobian.as_slice(), 1e-5);
    }
}

/// A batch smaller than the last one reuses the buffers without reading stale rows.
#[test]
fn a_smaller_batch_after_a_larger_one_gives_its_own_gradients() {
    let mlp = Mlp::new(config(Activation::Tanh, vec![8, 8], LossKind::Bce, 2, 2)).unwrap();
    let params = mlp.init_params(3);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (x, y) = data(&mut rng, &mlp, 30);
    let set = FastData::new(&x, &y);
    let mut warm = FastMlp::new(&mlp);
    warm.load_params(&params);
    finish(warm.gradients(&set, None));
    let rows = [4, 9, 17];
    finish(warm.gradients(&set, Some(&rows)));
    let mut cold = FastMlp::new(&mlp);
    cold.load_params(&params);
    finish(cold.gradients(&set, Some(&rows)));
    assert_eq!(warm.losses, cold.losses);
    assert_eq!(warm.jacobian, cold.jacobian);
    assert_eq!(warm.head_grads, cold.head_grads);
    assert_eq!(warm.gram, cold.gram);
}

/// Cut in two, a batch gives the numbers of the whole within f32 rounding, the same at every
/// call (the halves are fixed by the batch, not by the threads), and a one-row batch is not cut.
#[test]
fn halves_add_up_to_the_whole_batch() {
    let mlp = Mlp::new(config(Activation::Tanh, vec![24, 16], LossKind::Mse, 3, 4)).unwrap();
    let params = mlp.init_params(7);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (x, y) = data(&mut rng, &mlp, 64);
    let set = FastData::new(&x, &y);
    let run = |split_from: usize, rows: Option<&[usize]>| {
        let mut f = FastMlp::new(&mlp);
        f.split_from = split_from;
        f.load_params(&params);
        finish(f.gradients(&set, rows));
        let test = finish(f.losses(&set, None));
        (f, test)
    };
    let (whole, whole_test) = run(usize::MAX, None);
    let (halves, halves_test) = run(0, None);
    let (again, _) = run(0, None);
    assert_eq!(halves.jacobian, again.jacobian, "the same halves give the same bits");
    assert_ne!(halves.jacobian, whole.jacobian, "the halves' sums round differently");
    let as64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    assert_close("J", halves.jacobian.to_f64().as_slice(), whole.jacobian.to_f64().as_slice(), 1e-5);
    assert_close("heads", &as64(&halves.head_grads), &as64(&whole.head_grads), 1e-5);
    assert_close("losses", &halves.losses, &whole.losses, 1e-6);
    assert_close("G", halves.gram.as_slice(), whole.gram.as_slice(), 1e-5);
    assert_close("test losses", &halves_test, &whole_test, 1e-6);
    for (a, b) in halves.layer_grams.iter().zip(&whole.layer_grams) {
        assert_close("layer G", a.as_slice(), b.as_slice(), 1e-5);
    }
    let (one, _) = run(0, Some(&[5]));
    let (one_whole, _) = run(usize::MAX, Some(&[5]));
    assert_eq!(one.jacobian, one_whole.jacobian, "one row: nothing to cut");
}
