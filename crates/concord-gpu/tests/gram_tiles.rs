//! The tiled Gram kernel (8 × 8 row-block tiles, vec4 columns when n % 4 == 0) and the copy
//! kernel against the CPU, on lavapipe, for every tile layout: m from 1 to 32 including
//! non-multiples of 8, n with n % 4 == 0 and ≠ 0, around the workgroup size (64) and the lane
//! count. A missing adapter is a FAILURE, not a skip.

mod common;
use common::gpu;

use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn gram_matches_core_for_every_tile_layout() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut worst: f64 = 0.0;
    for m in [1usize, 3, 7, 8, 9, 13, 17, 24, 31, 32] {
        for n in [1usize, 4, 63, 64, 65, 260, 4099, 70_000] {
            let j: Vec<f32> = (0..m * n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
            let got = pollster::block_on(concord_gpu::gram(gpu(), &j, m, n)).unwrap();
            let jm = DMatrix::from_row_slice(m, n, &j.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
            let want = &jm * jm.transpose();
            let mut diff = 0.0;
            for a in 0..m {
                for b in 0..m {
                    // Exactly symmetric: both halves come from one sum.
                    assert_eq!(got[a * m + b], got[b * m + a], "m={m} n={n} ({a},{b})");
                    diff += (f64::from(got[a * m + b]) - want[(a, b)]).powi(2);
                }
            }
            let e = diff.sqrt() / want.norm();
            worst = worst.max(e);
            // ‖ΔG‖_F ≤ 1e-5·‖G‖_F (f32 sums of n products; measured worst printed below).
            assert!(e <= 1e-5, "gram m={m} n={n}: relative Frobenius error {e:e}");
        }
    }
    eprintln!("gram tiles: worst relative Frobenius error {worst:e}");
}

#[test]
fn copy_kernel_copies_exactly() {
    for len in [1usize, 3, 4, 1023, 70_001] {
        let data: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 7.0).collect();
        let got = pollster::block_on(concord_gpu::copy(gpu(), &data)).unwrap();
        assert_eq!(got, data, "len {len}");
    }
}
