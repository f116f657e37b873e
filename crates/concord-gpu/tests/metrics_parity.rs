//! The GPU conflict metrics (`concord_gpu::gram_metrics`) against concord-core's Gram forms
//! (`cosine_from_gram`, `gms_from_gram`, `conflict_ratio`) on lavapipe: random Gramians for
//! m ∈ {1, 2, 3, 5, 8, 16, 32}, with zero rows, a non-finite diagonal, and a hand-checked case.
//! The CPU runs in f64 on exactly the f32 values the GPU gets.
//! A missing adapter is a FAILURE, not a skip.

mod common;
use common::gpu;

use concord_core::metrics::{conflict_ratio, cosine_from_gram, gms_from_gram, PairMatrix};
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Tolerance for cos and GMS: 2e-6 absolute (f32 division by two square roots and a clamp;
/// measured worst printed by the test).
const TOL: f64 = 2e-6;

fn assert_pairs_close(what: &str, got: &PairMatrix, want: &PairMatrix) -> f64 {
    let mut worst: f64 = 0.0;
    for (i, (rg, rw)) in got.iter().zip(want).enumerate() {
        for (j, (g, w)) in rg.iter().zip(rw).enumerate() {
            match (g, w) {
                (Some(g), Some(w)) => {
                    worst = worst.max((g - w).abs());
                    assert!((g - w).abs() <= TOL, "{what}[{i}][{j}]: {g} vs {w}");
                }
                (None, None) => {}
                _ => panic!("{what}[{i}][{j}]: defined on one side only: {g:?} vs {w:?}"),
            }
        }
    }
    worst
}

fn check(g32: &[f32], m: usize) -> f64 {
    let got = pollster::block_on(concord_gpu::gram_metrics(gpu(), g32, m)).unwrap();
    let g = DMatrix::from_row_slice(m, m, &g32.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
    let w1 = assert_pairs_close("cos", &got.cosine, &cosine_from_gram(&g));
    let w2 = assert_pairs_close("gms", &got.gms, &gms_from_gram(&g));
    assert_eq!(got.conflict_ratio as f32, conflict_ratio(&g) as f32, "conflict ratio, m = {m}");
    w1.max(w2)
}

/// G = JJᵀ (in f64, then f32) for a random J with mixed signs and norms, and `zero_rows` zeroed.
fn random_gram(rng: &mut ChaCha8Rng, m: usize, n: usize, zero_rows: &[usize]) -> Vec<f32> {
    let mut j = DMatrix::from_fn(m, n, |_, _| rng.random::<f64>() * 2.0 - 0.8);
    for i in 0..m {
        let s = 10f64.powf(rng.random::<f64>() * 4.0 - 2.0);
        j.row_mut(i).scale_mut(s);
    }
    for &k in zero_rows {
        j.row_mut(k).fill(0.0);
    }
    let g = &j * j.transpose();
    (0..m * m).map(|k| g[(k / m, k % m)] as f32).collect()
}

#[test]
fn metrics_match_core_on_random_gramians() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut worst: f64 = 0.0;
    for m in [1usize, 2, 3, 5, 8, 16, 32] {
        for n in [3usize, 40, 257] {
            worst = worst.max(check(&random_gram(&mut rng, m, n, &[]), m));
            if m >= 2 {
                worst = worst.max(check(&random_gram(&mut rng, m, n, &[m / 2]), m));
            }
            if m >= 3 {
                worst = worst.max(check(&random_gram(&mut rng, m, n, &[0, m - 1]), m));
            }
        }
    }
    eprintln!("metrics: worst |Δ| {worst:e} (tolerance {TOL:e})");
}

#[test]
fn hand_checked_two_tasks_and_degenerate_rows() {
    // g1 = (1, 0), g2 = (−1, 1): G = [[1, −1], [−1, 2]]; cos = −1/√2, GMS = 2√2/3, ratio 1.
    let got = pollster::block_on(concord_gpu::gram_metrics(gpu(), &[1.0, -1.0, -1.0, 2.0], 2)).unwrap();
    let c = got.cosine[0][1].unwrap();
    assert!((c + std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-6, "cos {c}");
    assert_eq!(got.cosine[0][0], Some(1.0));
    let gms = got.gms[0][1].unwrap();
    assert!((gms - 2.0 * 2f64.sqrt() / 3.0).abs() < 1e-6, "gms {gms}");
    assert_eq!(got.conflict_ratio, 1.0);
    // A zero row: its cosines undefined, GMS 0 against a non-zero row, undefined against itself.
    let got = pollster::block_on(concord_gpu::gram_metrics(gpu(), &[0.0, 0.0, 0.0, 4.0], 2)).unwrap();
    assert_eq!(got.cosine[0], vec![None, None]);
    assert_eq!(got.gms[0], vec![None, Some(0.0)]);
    assert_eq!(got.conflict_ratio, 0.0);
    // A non-finite diagonal counts as a zero row, as in concord-core.
    check(&[f32::INFINITY, 1.0, 1.0, 1.0], 2);
    check(&[f32::NAN, -1.0, -1.0, 1.0], 2);
}

#[test]
fn bad_shapes_are_errors() {
    assert!(pollster::block_on(concord_gpu::gram_metrics(gpu(), &[1.0; 3], 2)).is_err());
    assert!(pollster::block_on(concord_gpu::gram_metrics(gpu(), &[], 0)).is_err());
    assert!(pollster::block_on(concord_gpu::gram_metrics(gpu(), &vec![0.0; 33 * 33], 33)).is_err());
}
