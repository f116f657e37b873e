//! The f32 fast path of the two O(mn) passes: G = JJᵀ and d = Jᵀw on a row-major f32 Jacobian.
//!
//! Why a second path: at large n an aggregation is bound by reading J twice, and deep-learning
//! frameworks hand out f32 gradients, one contiguous vector per task. Converting them to the
//! f64 column-major `DMatrix` doubles the bytes read and costs a transposing copy. Here J stays
//! as given; only the m × m Gramian is promoted to f64, so every `Weighting` runs unchanged.
//!
//! Accuracy: products and sums inside a block of `BLOCK` columns are f32 (as torch's f32
//! matmul); block partial sums are added in f64, so the error grows with the block length, not
//! with n. The tests bound the difference to the f64 path.
//!
//! Speed: in the Gram pass each loaded chunk of a row feeds four dot products at once (AVX2 +
//! FMA when the CPU has them, checked at run time; a GEMM library call per block was 2–6×
//! slower here: it allocates and packs), the combine pass is a multiply-add sweep, and
//! both passes split the columns over threads natively (rayon; the browser build has no threads
//! and runs them in order).

use nalgebra::{DMatrix, DVector};
#[cfg(not(target_arch = "wasm32"))]
use rayon::prelude::*;

/// An m × n task Jacobian in f32, row-major: row i (task i's gradient) is contiguous.
#[derive(Clone, Debug, PartialEq)]
pub struct JacobianF32 {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl JacobianF32 {
    /// `data` holds the m rows one after another (m·n values).
    pub fn from_row_major(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self, String> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(format!("{rows} × {cols} needs {} values, got {}", rows.saturating_mul(cols), data.len()));
        }
        Ok(Self { rows, cols, data })
    }

    /// Rounds an f64 Jacobian to f32.
    pub fn from_f64(j: &DMatrix<f64>) -> Self {
        let (m, n) = j.shape();
        let mut data = Vec::with_capacity(m * n);
        for i in 0..m {
            data.extend(j.row(i).iter().map(|&x| x as f32));
        }
        Self { rows: m, cols: n, data }
    }

    /// The same matrix as an f64 `DMatrix` (for aggregators without an f32 path).
    pub fn to_f64(&self) -> DMatrix<f64> {
        DMatrix::from_fn(self.rows, self.cols, |i, k| self.data[i * self.cols + k] as f64)
    }

    pub fn nrows(&self) -> usize {
        self.rows
    }

    pub fn ncols(&self) -> usize {
        self.cols
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
}

/// Columns per block: partial sums in f32 stay short (error ∝ block length, not n), and a
/// block is the unit of work handed to a thread.
const BLOCK: usize = 512;

/// G = JJᵀ (m × m, f64, exactly symmetric).
pub fn gram_f32(j: &JacobianF32) -> DMatrix<f64> {
    let (m, n) = (j.rows, j.cols);
    let mut g = vec![0.0f64; m * m];
    if m == 0 || n == 0 {
        return DMatrix::zeros(m, m);
    }
    let blocks = n.div_ceil(BLOCK);
    let add_block = |acc: &mut [f64], b: usize| {
        let cols = b * BLOCK..((b + 1) * BLOCK).min(n);
        gram_block(j, cols, acc);
    };
    #[cfg(not(target_arch = "wasm32"))]
    if parallel(m * n) {
        // One partial Gramian per block, added in block order: the same bits as the serial
        // loop, whatever the thread count or the work stealing did.
        let mut partials = vec![0.0f64; blocks * m * m];
        partials.par_chunks_mut(m * m).enumerate().for_each(|(b, p)| add_block(p, b));
        for p in partials.chunks_exact(m * m) {
            g.iter_mut().zip(p).for_each(|(x, y)| *x += y);
        }
        return mirror(m, &g);
    }
    for b in 0..blocks {
        add_block(&mut g, b);
    }
    mirror(m, &g)
}

/// Whether a pass over this many entries is split over threads: below 2¹⁶ entries a fork
/// costs more than it saves.
#[cfg(not(target_arch = "wasm32"))]
fn parallel(entries: usize) -> bool {
    const PARALLEL_MIN_ENTRIES: usize = 1 << 16;
    entries >= PARALLEL_MIN_ENTRIES && rayon::current_num_threads() > 1
}

/// The full Gramian from its upper triangle (a ≤ b), as filled by the kernel.
fn mirror(m: usize, g: &[f64]) -> DMatrix<f64> {
    DMatrix::from_fn(m, m, |a, b| if a <= b { g[a * m + b] } else { g[b * m + a] })
}

/// Adds Σ_{k ∈ cols} J[a,k]·J[b,k] to acc[a·m + b] for every a ≤ b.
fn gram_block(j: &JacobianF32, cols: std::ops::Range<usize>, acc: &mut [f64]) {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for (checked above).
            unsafe { gram_block_avx2_fma(j, cols, acc) };
            return;
        }
    }
    gram_block_generic::<Plain>(j, cols, acc);
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
unsafe fn gram_block_avx2_fma(j: &JacobianF32, cols: std::ops::Range<usize>, acc: &mut [f64]) {
    gram_block_generic::<avx2::Fma>(j, cols, acc);
}

/// How `dots` forms the A × B dot products of A rows against B others. Written with explicit AVX2
/// intrinsics on x86 because LLVM's auto-vectoriser splits the lane arrays into 2-wide pieces
/// (measured 3× slower); the portable version is the reference the tests compare against.
trait Dots {
    fn dots<const A: usize, const B: usize>(rows_a: [&[f32]; A], rows_b: [&[f32]; B]) -> [[f32; B]; A];
}

struct Plain;

impl Dots for Plain {
    #[inline(always)]
    fn dots<const A: usize, const B: usize>(rows_a: [&[f32]; A], rows_b: [&[f32]; B]) -> [[f32; B]; A] {
        const L: usize = 8;
        let n = rows_a[0].len();
        let body = n - n % L;
        let mut acc = [[[0.0f32; L]; B]; A];
        let mut k = 0;
        while k < body {
            for x in 0..A {
                for y in 0..B {
                    for l in 0..L {
                        acc[x][y][l] += rows_a[x][k + l] * rows_b[y][k + l];
                    }
                }
            }
            k += L;
        }
        std::array::from_fn(|x| {
            std::array::from_fn(|y| {
                let tail: f32 = rows_a[x][body..].iter().zip(&rows_b[y][body..]).map(|(p, q)| p * q).sum();
                acc[x][y].iter().sum::<f32>() + tail
            })
        })
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod avx2 {
    #[cfg(target_arch = "x86")]
    use std::arch::x86::*;
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    pub struct Fma;

    impl super::Dots for Fma {
        /// Only called from `gram_block_avx2_fma`, i.e. after the AVX2/FMA check.
        #[inline(always)]
        fn dots<const A: usize, const B: usize>(rows_a: [&[f32]; A], rows_b: [&[f32]; B]) -> [[f32; B]; A] {
            let n = rows_a[0].len();
            for r in rows_a.iter().chain(&rows_b) {
                assert_eq!(r.len(), n);
            }
            let body = n - n % 8;
            // SAFETY: the caller runs with AVX2 + FMA enabled; every load reads 8 floats at
            // k < body ≤ the length of each slice (checked above).
            unsafe {
                let mut acc = [[_mm256_setzero_ps(); B]; A];
                let mut k = 0;
                while k < body {
                    let va: [__m256; A] = std::array::from_fn(|x| _mm256_loadu_ps(rows_a[x].as_ptr().add(k)));
                    for y in 0..B {
                        let vb = _mm256_loadu_ps(rows_b[y].as_ptr().add(k));
                        for x in 0..A {
                            acc[x][y] = _mm256_fmadd_ps(va[x], vb, acc[x][y]);
                        }
                    }
                    k += 8;
                }
                std::array::from_fn(|x| {
                    std::array::from_fn(|y| {
                        let mut lanes = [0.0f32; 8];
                        _mm256_storeu_ps(lanes.as_mut_ptr(), acc[x][y]);
                        let tail: f32 =
                            rows_a[x][body..].iter().zip(&rows_b[y][body..]).map(|(p, q)| p * q).sum();
                        lanes.iter().sum::<f32>() + tail
                    })
                })
            }
        }
    }
}

/// Rows a, a+1 against rows b ≥ a, four at a time: each loaded chunk feeds several
/// multiply-adds (2 × 4 tile: 6 loads per 8 FMAs), so the pass is bound by arithmetic rather
/// than by loads. A block of `BLOCK` columns stays in L1 while its tiles are formed.
#[inline(always)]
fn gram_block_generic<D: Dots>(j: &JacobianF32, cols: std::ops::Range<usize>, acc: &mut [f64]) {
    let m = j.rows;
    let row = |i: usize| &j.row(i)[cols.clone()];
    let mut a = 0;
    while a < m {
        let ta = if m - a >= 2 { 2 } else { 1 };
        let mut b = a;
        while b < m {
            let tb = (m - b).min(4);
            let d: [[f32; 4]; 2] = match (ta, tb) {
                (2, 4) => pad(D::dots::<2, 4>([row(a), row(a + 1)], [row(b), row(b + 1), row(b + 2), row(b + 3)])),
                (2, 3) => pad(D::dots::<2, 3>([row(a), row(a + 1)], [row(b), row(b + 1), row(b + 2)])),
                (2, 2) => pad(D::dots::<2, 2>([row(a), row(a + 1)], [row(b), row(b + 1)])),
                (2, _) => pad(D::dots::<2, 1>([row(a), row(a + 1)], [row(b)])),
                (_, 4) => pad(D::dots::<1, 4>([row(a)], [row(b), row(b + 1), row(b + 2), row(b + 3)])),
                (_, 3) => pad(D::dots::<1, 3>([row(a)], [row(b), row(b + 1), row(b + 2)])),
                (_, 2) => pad(D::dots::<1, 2>([row(a)], [row(b), row(b + 1)])),
                _ => pad(D::dots::<1, 1>([row(a)], [row(b)])),
            };
            for (x, dx) in d.iter().enumerate().take(ta) {
                for (y, &v) in dx.iter().enumerate().take(tb) {
                    // Pairs below the diagonal (a + 1 against b = a) come free with the tile.
                    if a + x <= b + y {
                        acc[(a + x) * m + b + y] += v as f64;
                    }
                }
            }
            b += tb;
        }
        a += ta;
    }
}

/// A tile's dot products placed in a 2 × 4 array.
#[inline(always)]
fn pad<const A: usize, const B: usize>(d: [[f32; B]; A]) -> [[f32; 4]; 2] {
    let mut out = [[0.0; 4]; 2];
    for (o, row) in out.iter_mut().zip(&d) {
        o[..B].copy_from_slice(row);
    }
    out
}

/// d = Jᵀw (length n, f32).
pub fn combine_f32(j: &JacobianF32, weights: &DVector<f64>) -> Vec<f32> {
    assert_eq!(weights.len(), j.rows, "combine_f32: {} weights for {} rows", weights.len(), j.rows);
    let w: Vec<f32> = weights.iter().map(|&x| x as f32).collect();
    let mut out = vec![0.0f32; j.cols];
    if j.rows == 0 {
        return out;
    }
    let fill = |(b, chunk): (usize, &mut [f32])| combine_block(j, &w, b * COMBINE_BLOCK, chunk);
    #[cfg(not(target_arch = "wasm32"))]
    if parallel(j.rows * j.cols) {
        out.par_chunks_mut(COMBINE_BLOCK).enumerate().for_each(fill);
        return out;
    }
    out.chunks_mut(COMBINE_BLOCK).enumerate().for_each(fill);
    out
}

/// Output entries per combine block: the block of d stays in L1 across the m row sweeps.
const COMBINE_BLOCK: usize = 2048;

fn combine_block(j: &JacobianF32, w: &[f32], start: usize, out: &mut [f32]) {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { combine_block_avx2(j, w, start, out) };
            return;
        }
    }
    combine_block_generic(j, w, start, out);
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
unsafe fn combine_block_avx2(j: &JacobianF32, w: &[f32], start: usize, out: &mut [f32]) {
    combine_block_generic(j, w, start, out);
}

/// out = Σ_i w_i · J[i, start..start+len]: one multiply-add sweep per row (element-wise, so
/// the auto-vectoriser handles it). Multiply then add, not fused: every CPU gives the same bits.
#[inline(always)]
fn combine_block_generic(j: &JacobianF32, w: &[f32], start: usize, out: &mut [f32]) {
    let end = start + out.len();
    for (o, &x) in out.iter_mut().zip(&j.row(0)[start..end]) {
        *o = w[0] * x;
    }
    for (i, &wi) in w.iter().enumerate().skip(1) {
        for (o, &x) in out.iter_mut().zip(&j.row(i)[start..end]) {
            *o += wi * x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregators::{combine, gram};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(m: usize, n: usize, seed: u64) -> DMatrix<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Values exactly representable in f32, so the f64 path sees the same matrix.
        DMatrix::from_fn(m, n, |_, _| (rng.random::<f64>() * 2.0 - 1.0) as f32 as f64)
    }

    /// Sizes cover every tile shape (m 1–11), column tails (n not a multiple of 8 or of
    /// BLOCK) and the threaded path (m·n ≥ 2¹⁶).
    #[test]
    fn gram_and_combine_match_the_f64_path() {
        for &(m, n) in &[(1, 1), (2, 7), (3, 9), (4, 1024), (5, 1031), (6, 3000), (7, 17), (8, 100_003), (11, 9_001)] {
            let j = random(m, n, (m * 1000 + n) as u64);
            let jf = JacobianF32::from_f64(&j);
            let g64 = gram(&j);
            let g32 = gram_f32(&jf);
            // f32 products inside 1024-column blocks: relative error ≲ √BLOCK · 2⁻²⁴ of the
            // scale Σ|J_ak J_bk| ≤ √(G_aa G_bb).
            for a in 0..m {
                for b in 0..m {
                    let scale = (g64[(a, a)] * g64[(b, b)]).sqrt().max(f64::MIN_POSITIVE);
                    let err = (g32[(a, b)] - g64[(a, b)]).abs() / scale;
                    assert!(err < 1e-5, "m={m} n={n} G[{a},{b}]: {} vs {} (rel {err:e})", g32[(a, b)], g64[(a, b)]);
                    assert_eq!(g32[(a, b)], g32[(b, a)], "exact symmetry");
                }
            }
            let w = DVector::from_fn(m, |i, _| 0.5 + i as f64 * 0.25);
            let d64 = combine(&j, &w);
            let d32 = combine_f32(&jf, &w);
            let wsum: f64 = w.iter().sum();
            for k in 0..n {
                // |d_k| ≤ Σ w_i |J_ik| ≤ Σ w_i; each of m terms rounds once.
                assert!((d32[k] as f64 - d64[k]).abs() <= 4.0 * m as f64 * 6e-8 * wsum, "m={m} n={n} d[{k}]");
            }
        }
    }

    /// The portable kernel (used where AVX2/FMA are missing, e.g. wasm) agrees with the one
    /// this CPU runs, block by block.
    #[test]
    fn portable_kernel_matches_the_dispatched_one() {
        for &(m, n) in &[(1, 5), (3, 1000), (6, 1024), (9, 777)] {
            let jf = JacobianF32::from_f64(&random(m, n, 7 + m as u64));
            let (mut plain, mut fast) = (vec![0.0; m * m], vec![0.0; m * m]);
            gram_block_generic::<Plain>(&jf, 0..n, &mut plain);
            gram_block(&jf, 0..n, &mut fast);
            for (p, f) in plain.iter().zip(&fast) {
                assert!((p - f).abs() <= 1e-5 * (1.0 + p.abs()), "m={m} n={n}: {p} vs {f}");
            }
            assert!(plain.iter().any(|&x| x != 0.0));
        }
    }

    /// Threads change nothing: the same bits with 1 and 2 worker threads (a seed reproduces a
    /// run bit for bit).
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let jf = JacobianF32::from_f64(&random(5, 200_003, 3));
        let w = DVector::from_vec(vec![0.3, -1.0, 2.0, 0.5, 1.5]);
        let run = |t: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| (gram_f32(&jf), combine_f32(&jf, &w)))
        };
        let (g1, d1) = run(1);
        let (g2, d2) = run(2);
        assert_eq!(g1, g2);
        assert_eq!(d1, d2);
    }

    #[test]
    fn empty_shapes_give_empty_results() {
        let j = JacobianF32::from_row_major(3, 0, vec![]).unwrap();
        assert_eq!(gram_f32(&j), DMatrix::zeros(3, 3));
        assert!(combine_f32(&j, &DVector::from_element(3, 1.0)).is_empty());
        let j = JacobianF32::from_row_major(0, 4, vec![]).unwrap();
        assert_eq!(gram_f32(&j).shape(), (0, 0));
        assert_eq!(combine_f32(&j, &DVector::zeros(0)), vec![0.0; 4]);
    }

    #[test]
    fn a_wrong_length_is_an_error() {
        let e = JacobianF32::from_row_major(2, 3, vec![0.0; 5]).unwrap_err();
        assert!(e.contains("needs 6 values, got 5"), "{e}");
    }

    #[test]
    fn from_f64_is_row_major() {
        let j = DMatrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let jf = JacobianF32::from_f64(&j);
        assert_eq!(jf.row(1), &[4.0, 5.0, 6.0]);
        assert_eq!(jf.to_f64(), j);
    }
}
