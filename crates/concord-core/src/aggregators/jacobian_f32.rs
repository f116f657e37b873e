//! The f32 fast path of the two O(mn) passes: G = JJᵀ and d = Jᵀw on a row-major f32 Jacobian.
//!
//! Why a second path: at large n an aggregation is bound by reading J twice, and deep-learning
//! frameworks hand out f32 gradients, one contiguous vector per task. Converting them to the
//! f64 column-major `DMatrix` doubles the bytes read and costs a transposing copy. Here J stays
//! as given; only the m × m Gramian is promoted to f64, so every `Weighting` runs unchanged.
//!
//! Accuracy: products and sums inside a block of columns (`block_cols`) are f32 (as torch's f32
//! matmul); block partial sums are added in f64, so the error grows with the block length, not
//! with n. The tests bound the difference to the f64 path.
//!
//! Speed (BENCHMARKS.md has the figures): both passes read J at close to the cache bandwidth.
//! The Gram pass forms every row pair once from register tiles (AVX-512, else AVX2 + FMA,
//! checked at run time; a portable kernel elsewhere; a GEMM library call per block was 2–6×
//! slower: it allocates and packs) over L1-sized blocks; the combine sums each output vector
//! in a register and runs back to front, onto the part of J the Gram pass left in L2; rows
//! are cache-line aligned; both passes split the columns over threads natively (rayon; the
//! browser build has no threads and runs them in order).

use nalgebra::{DMatrix, DVector};
#[cfg(not(target_arch = "wasm32"))]
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// An m × n task Jacobian in f32, row-major: row i (task i's gradient) is contiguous.
///
/// Every row starts on a 64-byte boundary (a cache line, one AVX-512 register): the storage is
/// cache-line aligned and each row is padded with zeros to a multiple of 16 values. Unaligned
/// 64-byte loads straddle two lines; aligning them made both passes 5–15 % faster at n = 1e5
/// (frameworks' CPU allocators align tensors the same way).
#[derive(Clone, Debug, PartialEq)]
pub struct JacobianF32 {
    rows: usize,
    cols: usize,
    /// Values per stored row: `cols` rounded up to whole lines.
    stride: usize,
    lines: Vec<Line>,
}

/// One cache line of values: the unit of storage, so that rows start aligned.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C, align(64))]
struct Line([f32; LINE]);

const LINE: usize = 16;

impl JacobianF32 {
    /// An m × n Jacobian of zeros, to be filled row by row (`row_mut`).
    pub fn zeros(rows: usize, cols: usize) -> Self {
        let per_row = cols.div_ceil(LINE);
        Self { rows, cols, stride: per_row * LINE, lines: vec![Line::default(); rows * per_row] }
    }

    /// `data` holds the m rows one after another (m·n values); they are copied into aligned rows.
    pub fn from_row_major(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self, String> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(format!("{rows} × {cols} needs {} values, got {}", rows.saturating_mul(cols), data.len()));
        }
        let mut j = Self::zeros(rows, cols);
        for (i, src) in data.chunks_exact(cols.max(1)).enumerate().take(rows) {
            j.row_mut(i).copy_from_slice(src);
        }
        Ok(j)
    }

    /// Rounds an f64 Jacobian to f32.
    pub fn from_f64(j: &DMatrix<f64>) -> Self {
        let (m, n) = j.shape();
        let mut out = Self::zeros(m, n);
        for i in 0..m {
            for (o, &x) in out.row_mut(i).iter_mut().zip(j.row(i).iter()) {
                *o = x as f32;
            }
        }
        out
    }

    /// The same matrix as an f64 `DMatrix` (for aggregators without an f32 path).
    pub fn to_f64(&self) -> DMatrix<f64> {
        DMatrix::from_fn(self.rows, self.cols, |i, k| self.row(i)[k] as f64)
    }

    pub fn nrows(&self) -> usize {
        self.rows
    }

    pub fn ncols(&self) -> usize {
        self.cols
    }

    pub fn row(&self, i: usize) -> &[f32] {
        assert!(i < self.rows, "row {i} of {}", self.rows);
        &self.values()[i * self.stride..i * self.stride + self.cols]
    }

    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.rows, "row {i} of {}", self.rows);
        let (start, cols) = (i * self.stride, self.cols);
        &mut self.values_mut()[start..start + cols]
    }

    /// Every row at once, as disjoint mutable slices (to fill rows from several threads).
    pub fn rows_mut(&mut self) -> impl Iterator<Item = &mut [f32]> {
        let (stride, cols, rows) = (self.stride, self.cols, self.rows);
        self.values_mut().chunks_exact_mut(stride.max(1)).take(rows).map(move |r| &mut r[..cols])
    }

    /// All stored values, padding included.
    fn values(&self) -> &[f32] {
        // SAFETY: `Line` is repr(C) around [f32; LINE] with no padding (64 bytes, align 64), so
        // the lines are `len · LINE` consecutive, initialised f32 values.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.lines.len() * LINE) }
    }

    fn values_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `values`, and the borrow of `self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.lines.len() * LINE) }
    }
}

/// Bytes of J one block holds: the block stays in L1 (≥ 32 KiB on current x86 and ARM cores)
/// while every tile re-reads its rows.
const BLOCK_BYTES: usize = 32 * 1024;

/// Columns per block for m rows: as many as fit in `BLOCK_BYTES`, in whole 64-column steps,
/// between 256 and 4096. The block is also the unit of work handed to a thread, and the f32
/// partial sums stay short (≤ 4096 / lanes terms per lane; block sums are added in f64), so the
/// error grows with the block length, not with n.
fn block_cols(m: usize) -> usize {
    (BLOCK_BYTES / (4 * m.max(1))).clamp(256, 4096) / 64 * 64
}

/// G = JJᵀ (m × m, f64, exactly symmetric).
pub fn gram_f32(j: &JacobianF32) -> DMatrix<f64> {
    let (m, n) = (j.rows, j.cols);
    let mut g = vec![0.0f64; m * m];
    if m == 0 || n == 0 {
        return DMatrix::zeros(m, m);
    }
    let block = block_cols(m);
    let blocks = n.div_ceil(block);
    let add_block = |acc: &mut [f64], b: usize| {
        let cols = b * block..((b + 1) * block).min(n);
        gram_block(j, cols, acc);
    };
    #[cfg(not(target_arch = "wasm32"))]
    if parallel(m * n, GRAM_PARALLEL_MIN) {
        // One partial Gramian per block, added in block order: the same bits as the serial
        // loop, whatever the thread count or the work stealing did.
        let mut partials = vec![0.0f64; blocks * m * m];
        // One contiguous run of blocks per thread, front to back (see `combine_f32`).
        let per_part = blocks.div_ceil(rayon::current_num_threads());
        partials.par_chunks_mut(per_part * m * m).enumerate().for_each(|(part, ps)| {
            for (i, p) in ps.chunks_exact_mut(m * m).enumerate() {
                add_block(p, part * per_part + i);
            }
        });
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

/// Whether a pass over this many entries of J is split over threads. Waking a worker and
/// joining costs a few µs, so small passes stay on one core; the Gram pass keeps more of a
/// small J in one core's L2 than split across two (measured on a 2-core Zen 5: m = 2,
/// n = 1e5 ran 3.9 µs on one thread, 7.8 µs on two; the combine pass, which also writes n
/// values, gained from two threads there).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn parallel(entries: usize, min_entries: usize) -> bool {
    entries >= min_entries && rayon::current_num_threads() > 1
}

#[cfg(not(target_arch = "wasm32"))]
const GRAM_PARALLEL_MIN: usize = 1 << 18;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const COMBINE_PARALLEL_MIN: usize = 1 << 17;

/// The full Gramian from its upper triangle (a ≤ b), as filled by the kernel.
fn mirror(m: usize, g: &[f64]) -> DMatrix<f64> {
    DMatrix::from_fn(m, m, |a, b| if a <= b { g[a * m + b] } else { g[b * m + a] })
}

/// Adds Σ_{k ∈ cols} J[a,k]·J[b,k] to acc[a·m + b] for every a ≤ b, with the widest vectors
/// the CPU has (checked at run time).
fn gram_block(j: &JacobianF32, cols: std::ops::Range<usize>, acc: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature the function is compiled for (checked above).
            unsafe { gram_block_avx512(j, cols, acc) };
            return;
        }
    }
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for (checked above).
            unsafe { gram_block_avx2(j, cols, acc) };
            return;
        }
    }
    gram_block_generic::<Plain>(j, cols, acc);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gram_block_avx512(j: &JacobianF32, cols: std::ops::Range<usize>, acc: &mut [f64]) {
    gram_block_generic::<simd::Avx512>(j, cols, acc);
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
unsafe fn gram_block_avx2(j: &JacobianF32, cols: std::ops::Range<usize>, acc: &mut [f64]) {
    gram_block_generic::<simd::Avx2>(j, cols, acc);
}

/// One vector register of f32 lanes: what the tile kernel needs of it. Written with explicit
/// intrinsics on x86 because LLVM's auto-vectoriser splits lane arrays into 2-wide pieces
/// (measured 3× slower); `Plain` is the portable version the tests compare against.
trait Lanes: Copy {
    const LANES: usize;
    /// Cross tiles pair a group with at most this many rows of a later group per call, so that
    /// accumulators and loaded rows fit in the register file (32 zmm, 16 ymm).
    const CROSS: usize;
    fn zero() -> Self;
    /// SAFETY (caller): `LANES` floats are readable at `p`.
    unsafe fn load(p: *const f32) -> Self;
    fn mul_add(a: Self, b: Self, acc: Self) -> Self;
    fn sum(self) -> f32;
    fn splat(x: f32) -> Self;
    fn mul(a: Self, b: Self) -> Self;
    fn add(a: Self, b: Self) -> Self;
    /// SAFETY (caller): `LANES` floats are writable at `p`.
    unsafe fn store(self, p: *mut f32);
}

#[derive(Clone, Copy)]
struct Plain([f32; 8]);

impl Lanes for Plain {
    const LANES: usize = 8;
    const CROSS: usize = 2;
    #[inline(always)]
    fn zero() -> Self {
        Plain([0.0; 8])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: forwarded from the caller.
        Plain(unsafe { std::ptr::read_unaligned(p as *const [f32; 8]) })
    }
    #[inline(always)]
    fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        Plain(std::array::from_fn(|l| acc.0[l] + a.0[l] * b.0[l]))
    }
    #[inline(always)]
    fn sum(self) -> f32 {
        self.0.iter().sum()
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Plain([x; 8])
    }
    #[inline(always)]
    fn mul(a: Self, b: Self) -> Self {
        Plain(std::array::from_fn(|l| a.0[l] * b.0[l]))
    }
    #[inline(always)]
    fn add(a: Self, b: Self) -> Self {
        Plain(std::array::from_fn(|l| a.0[l] + b.0[l]))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: forwarded from the caller.
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 8], self.0) }
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod simd {
    #[cfg(target_arch = "x86")]
    use std::arch::x86::*;
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    // The methods are only reached from `gram_block_avx2` / `gram_block_avx512`, i.e. after the
    // run-time feature check, and are inlined into them (so they compile with those features).

    #[derive(Clone, Copy)]
    pub struct Avx2(__m256);

    impl super::Lanes for Avx2 {
        const LANES: usize = 8;
        const CROSS: usize = 2;
        #[inline(always)]
        fn zero() -> Self {
            // SAFETY: AVX is available (see above).
            Avx2(unsafe { _mm256_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: 8 floats are readable at p (caller), AVX is available.
            Avx2(unsafe { _mm256_loadu_ps(p) })
        }
        #[inline(always)]
        fn mul_add(a: Self, b: Self, acc: Self) -> Self {
            // SAFETY: FMA is available.
            Avx2(unsafe { _mm256_fmadd_ps(a.0, b.0, acc.0) })
        }
        #[inline(always)]
        fn sum(self) -> f32 {
            let mut lanes = [0.0f32; 8];
            // SAFETY: 8 writable floats; AVX is available.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), self.0) };
            lanes.iter().sum()
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: AVX is available.
            Avx2(unsafe { _mm256_set1_ps(x) })
        }
        #[inline(always)]
        fn mul(a: Self, b: Self) -> Self {
            // SAFETY: AVX is available.
            Avx2(unsafe { _mm256_mul_ps(a.0, b.0) })
        }
        #[inline(always)]
        fn add(a: Self, b: Self) -> Self {
            // SAFETY: AVX is available.
            Avx2(unsafe { _mm256_add_ps(a.0, b.0) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: 8 floats are writable at p (caller), AVX is available.
            unsafe { _mm256_storeu_ps(p, self.0) }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[derive(Clone, Copy)]
    pub struct Avx512(__m512);

    #[cfg(target_arch = "x86_64")]
    impl super::Lanes for Avx512 {
        const LANES: usize = 16;
        const CROSS: usize = 4;
        #[inline(always)]
        fn zero() -> Self {
            // SAFETY: AVX-512F is available (see above).
            Avx512(unsafe { _mm512_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: 16 floats are readable at p (caller), AVX-512F is available.
            Avx512(unsafe { _mm512_loadu_ps(p) })
        }
        #[inline(always)]
        fn mul_add(a: Self, b: Self, acc: Self) -> Self {
            // SAFETY: AVX-512F is available.
            Avx512(unsafe { _mm512_fmadd_ps(a.0, b.0, acc.0) })
        }
        #[inline(always)]
        fn sum(self) -> f32 {
            // SAFETY: AVX-512F is available.
            unsafe { _mm512_reduce_add_ps(self.0) }
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: AVX-512F is available.
            Avx512(unsafe { _mm512_set1_ps(x) })
        }
        #[inline(always)]
        fn mul(a: Self, b: Self) -> Self {
            // SAFETY: AVX-512F is available.
            Avx512(unsafe { _mm512_mul_ps(a.0, b.0) })
        }
        #[inline(always)]
        fn add(a: Self, b: Self) -> Self {
            // SAFETY: AVX-512F is available.
            Avx512(unsafe { _mm512_add_ps(a.0, b.0) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: 16 floats are writable at p (caller), AVX-512F is available.
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
    }
}

/// The dot products of rows `a` against rows `b` over their common length; with `DIAG`, `b` is
/// `a` and only the pairs x ≤ y are formed (a group's own triangle). Each loaded chunk feeds
/// several multiply-adds, so the pass is bound by arithmetic and memory rather than by loads;
/// tiles with fewer than 8 accumulators run two column chunks at once to hide the FMA latency.
#[inline(always)]
fn tile<V: Lanes, const A: usize, const B: usize, const DIAG: bool>(a: [&[f32]; A], b: [&[f32]; B]) -> [[f32; B]; A] {
    let n = a[0].len();
    for r in a.iter().chain(&b) {
        assert_eq!(r.len(), n);
    }
    let pairs = if DIAG { A * (A + 1) / 2 } else { A * B };
    let unroll = if pairs < 8 { 2 } else { 1 };
    let step = V::LANES * unroll;
    let body = n - n % step;
    // Two accumulator sets as plain locals (constant indices only), so that they live in
    // registers; the second is used when the tile is too small to hide the FMA latency.
    let mut acc0 = [[V::zero(); B]; A];
    let mut acc1 = [[V::zero(); B]; A];
    let chunk = |acc: &mut [[V; B]; A], at: usize| {
        // SAFETY: at + LANES ≤ body ≤ the length of every row (asserted above).
        let va: [V; A] = std::array::from_fn(|x| unsafe { V::load(a[x].as_ptr().add(at)) });
        for y in 0..B {
            // On the diagonal the row is already loaded.
            let vb = if DIAG { va[y] } else { unsafe { V::load(b[y].as_ptr().add(at)) } };
            for x in 0..A {
                if !DIAG || x <= y {
                    acc[x][y] = V::mul_add(va[x], vb, acc[x][y]);
                }
            }
        }
    };
    let mut k = 0;
    while k < body {
        chunk(&mut acc0, k);
        if unroll == 2 {
            chunk(&mut acc1, k + V::LANES);
        }
        k += step;
    }
    let mut out = [[0.0f32; B]; A];
    for x in 0..A {
        for y in 0..B {
            if !DIAG || x <= y {
                let tail: f32 = a[x][body..].iter().zip(&b[y][body..]).map(|(p, q)| p * q).sum();
                out[x][y] = V::sum(acc0[x][y]) + V::sum(acc1[x][y]) + tail;
            }
        }
    }
    out
}

/// Rows in groups of four: a diagonal tile forms each group's own pairs, cross tiles pair it
/// with the later groups (`V::CROSS` rows at a time). Every pair a ≤ b is formed exactly once,
/// m(m+1)/2 multiply-adds per column, while the block of J stays in L1.
#[inline(always)]
fn gram_block_generic<V: Lanes>(j: &JacobianF32, cols: std::ops::Range<usize>, acc: &mut [f64]) {
    const GROUP: usize = 4;
    let m = j.rows;
    let row = |i: usize| &j.row(i)[cols.clone()];
    for g in (0..m).step_by(GROUP) {
        let gl = (m - g).min(GROUP);
        match gl {
            4 => add_tile(acc, m, g, g, tile::<V, 4, 4, true>(rows(row, g), rows(row, g))),
            3 => add_tile(acc, m, g, g, tile::<V, 3, 3, true>(rows(row, g), rows(row, g))),
            2 => add_tile(acc, m, g, g, tile::<V, 2, 2, true>(rows(row, g), rows(row, g))),
            _ => add_tile(acc, m, g, g, tile::<V, 1, 1, true>(rows(row, g), rows(row, g))),
        }
        // Only the last group can be short, and it has no later group.
        let mut h = g + gl;
        while h < m {
            debug_assert_eq!(gl, GROUP);
            let hl = (m - h).min(V::CROSS);
            match hl {
                4 => add_tile(acc, m, g, h, tile::<V, 4, 4, false>(rows(row, g), rows(row, h))),
                3 => add_tile(acc, m, g, h, tile::<V, 4, 3, false>(rows(row, g), rows(row, h))),
                2 => add_tile(acc, m, g, h, tile::<V, 4, 2, false>(rows(row, g), rows(row, h))),
                _ => add_tile(acc, m, g, h, tile::<V, 4, 1, false>(rows(row, g), rows(row, h))),
            }
            h += hl;
        }
    }
}

/// Adds a tile's products (rows a0.., against rows b0..) to the upper triangle of the m × m
/// `acc`; a diagonal tile's pairs below the diagonal are skipped.
#[inline(always)]
fn add_tile<const A: usize, const B: usize>(acc: &mut [f64], m: usize, a0: usize, b0: usize, d: [[f32; B]; A]) {
    for (x, dx) in d.iter().enumerate() {
        for (y, &v) in dx.iter().enumerate() {
            if a0 + x <= b0 + y {
                acc[(a0 + x) * m + b0 + y] += v as f64;
            }
        }
    }
}

/// Rows start, start+1, …, start+K−1 of the block.
#[inline(always)]
fn rows<'a, const K: usize>(row: impl Fn(usize) -> &'a [f32], start: usize) -> [&'a [f32]; K] {
    std::array::from_fn(|i| row(start + i))
}

/// d = Jᵀw (length n, f32).
pub fn combine_f32(j: &JacobianF32, weights: &DVector<f64>) -> Vec<f32> {
    assert_eq!(weights.len(), j.rows, "combine_f32: {} weights for {} rows", weights.len(), j.rows);
    let w: Vec<f32> = weights.iter().map(|&x| x as f32).collect();
    if j.rows == 0 {
        return vec![0.0; j.cols];
    }
    // Every entry is written exactly once below, so the output is not zeroed first (at n = 1e5
    // zeroing costs as much as a tenth of the pass).
    let mut out = Vec::with_capacity(j.cols);
    let spare = &mut out.spare_capacity_mut()[..j.cols];
    let rows: Vec<&[f32]> = (0..j.rows).map(|i| j.row(i)).collect();
    let fill = |(b, chunk): (usize, &mut [MaybeUninit<f32>])| combine_block(&rows, &w, b * COMBINE_BLOCK, chunk);
    // Blocks run back to front: the Gram pass ran front to back, so the end of J is still in
    // this core's L2 when J does not fit whole. With threads, each takes one contiguous part,
    // as in the Gram pass (rayon runs the first part on the calling thread in both), and runs
    // it back to front.
    #[cfg(not(target_arch = "wasm32"))]
    if parallel(j.rows * j.cols, COMBINE_PARALLEL_MIN) {
        let blocks = j.cols.div_ceil(COMBINE_BLOCK);
        let per_part = blocks.div_ceil(rayon::current_num_threads());
        spare.par_chunks_mut(per_part * COMBINE_BLOCK).enumerate().for_each(|(part, chunk)| {
            chunk.chunks_mut(COMBINE_BLOCK).enumerate().rev().for_each(|(i, c)| fill((part * per_part + i, c)));
        });
    } else {
        spare.chunks_mut(COMBINE_BLOCK).enumerate().rev().for_each(fill);
    }
    #[cfg(target_arch = "wasm32")]
    spare.chunks_mut(COMBINE_BLOCK).enumerate().rev().for_each(fill);
    // SAFETY: the chunks cover 0..cols and `combine_block` writes every entry of its chunk.
    unsafe { out.set_len(j.cols) };
    out
}

/// Output entries per combine block (the unit of work handed to a thread).
const COMBINE_BLOCK: usize = 2048;

/// out[c] = Σ_i w_i · rows[i][start + c], with the widest vectors the CPU has.
fn combine_block(rows: &[&[f32]], w: &[f32], start: usize, out: &mut [MaybeUninit<f32>]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { combine_block_avx512(rows, w, start, out) };
            return;
        }
    }
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { combine_block_avx2(rows, w, start, out) };
            return;
        }
    }
    combine_block_generic::<Plain>(rows, w, start, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn combine_block_avx512(rows: &[&[f32]], w: &[f32], start: usize, out: &mut [MaybeUninit<f32>]) {
    combine_block_generic::<simd::Avx512>(rows, w, start, out);
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
unsafe fn combine_block_avx2(rows: &[&[f32]], w: &[f32], start: usize, out: &mut [MaybeUninit<f32>]) {
    combine_block_generic::<simd::Avx2>(rows, w, start, out);
}

/// out = Σ_i w_i · J[i, start..start+len], one vector of columns at a time: the sum over rows
/// stays in a register and each output vector is stored once. Multiply then add, not fused,
/// rows in order: every CPU and vector width gives the same bits.
#[inline(always)]
fn combine_block_generic<V: Lanes>(rows: &[&[f32]], w: &[f32], start: usize, out: &mut [MaybeUninit<f32>]) {
    let len = out.len();
    for r in rows {
        assert!(r.len() >= start + len, "a row of {} values for columns {start}..{}", r.len(), start + len);
    }
    let body = len - len % V::LANES;
    let mut k = 0;
    while k < body {
        // SAFETY: k + LANES ≤ body ≤ len = the length of `out`, and every row holds start + len
        // values (asserted above).
        unsafe {
            let at = start + k;
            let mut acc = V::mul(V::splat(w[0]), V::load(rows[0].as_ptr().add(at)));
            for (row, &wi) in rows[1..].iter().zip(&w[1..]) {
                acc = V::add(acc, V::mul(V::splat(wi), V::load(row.as_ptr().add(at))));
            }
            acc.store(out.as_mut_ptr().add(k).cast::<f32>());
        }
        k += V::LANES;
    }
    for k in body..len {
        let mut acc = w[0] * rows[0][start + k];
        for (row, &wi) in rows[1..].iter().zip(&w[1..]) {
            acc += wi * row[start + k];
        }
        out[k].write(acc);
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

    /// Sizes cover every tile shape (m 1–11), column tails (n not a multiple of 16 or of the
    /// block) and the threaded path (8 × 100 003 ≥ 2¹⁸ entries).
    #[test]
    fn gram_and_combine_match_the_f64_path() {
        for &(m, n) in &[(1, 1), (2, 7), (3, 9), (4, 1024), (5, 1031), (6, 3000), (7, 17), (8, 100_003), (11, 9_001)] {
            let j = random(m, n, (m * 1000 + n) as u64);
            let jf = JacobianF32::from_f64(&j);
            let g64 = gram(&j);
            let g32 = gram_f32(&jf);
            // f32 sums over at most 4096 / lanes products per lane and block: relative error
            // ≲ √4096 · 2⁻²⁴ ≈ 4e-6 of the scale Σ|J_ak J_bk| ≤ √(G_aa G_bb).
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

    type GramKernel = fn(&JacobianF32, std::ops::Range<usize>, &mut [f64]);
    type CombineKernel = fn(&[&[f32]], &[f32], usize, &mut [MaybeUninit<f32>]);

    /// Every kernel this CPU can run: the portable one (wasm, CPUs without AVX2/FMA) and the
    /// vector ones the run-time check would pick.
    fn kernels() -> Vec<(&'static str, GramKernel, CombineKernel)> {
        let mut k: Vec<(&'static str, GramKernel, CombineKernel)> =
            vec![("plain", gram_block_generic::<Plain>, combine_block_generic::<Plain>)];
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY (both): called only after the feature check above.
            k.push((
                "avx2",
                |j, c, a| unsafe { gram_block_avx2(j, c, a) },
                |j, w, s, o| unsafe { combine_block_avx2(j, w, s, o) },
            ));
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY (both): called only after the feature check above.
            k.push((
                "avx512",
                |j, c, a| unsafe { gram_block_avx512(j, c, a) },
                |j, w, s, o| unsafe { combine_block_avx512(j, w, s, o) },
            ));
        }
        k
    }

    /// Each kernel against the f64 Gramian (every tile shape: m 1–11 gives short last groups
    /// and short cross tiles; n covers the unrolled and plain loops and their tails), and the
    /// combine kernels against each other bit for bit (multiply then add, rows in order).
    #[test]
    fn every_kernel_matches_the_f64_reference() {
        let kernels = kernels();
        println!("kernels on this CPU: {:?}", kernels.iter().map(|k| k.0).collect::<Vec<_>>());
        for m in 1..=11 {
            for &n in &[1usize, 15, 16, 17, 33, 100, 1000, 1024] {
                let j = random(m, n, (31 * m + n) as u64);
                let jf = JacobianF32::from_f64(&j);
                let g64 = gram(&j);
                let w: Vec<f32> = (0..m).map(|i| 0.75 - 0.3 * i as f32).collect();
                let mut reference: Option<Vec<f32>> = None;
                for (name, gram_kernel, combine_kernel) in &kernels {
                    let mut acc = vec![0.0; m * m];
                    gram_kernel(&jf, 0..n, &mut acc);
                    for a in 0..m {
                        for b in 0..m {
                            let got = if a <= b { acc[a * m + b] } else { acc[b * m + a] };
                            let scale = (g64[(a, a)] * g64[(b, b)]).sqrt();
                            assert!(
                                (got - g64[(a, b)]).abs() <= 1e-6 * (scale + 1e-30),
                                "{name} m={m} n={n} G[{a},{b}]: {got} vs {}",
                                g64[(a, b)]
                            );
                            if a > b {
                                assert_eq!(acc[a * m + b], 0.0, "{name} writes the upper triangle only");
                            }
                        }
                    }
                    let mut d = vec![MaybeUninit::new(f32::NAN); n];
                    let rows: Vec<&[f32]> = (0..m).map(|i| jf.row(i)).collect();
                    combine_kernel(&rows, &w, 0, &mut d);
                    // SAFETY: initialised above (the kernel overwrites the NaNs).
                    let d: Vec<f32> = d.iter().map(|x| unsafe { x.assume_init() }).collect();
                    match &reference {
                        None => {
                            for (k, &x) in d.iter().enumerate() {
                                let exact: f64 = (0..m).map(|i| w[i] as f64 * j[(i, k)]).sum();
                                assert!((x as f64 - exact).abs() <= 1e-6 * m as f64, "{name} m={m} n={n} d[{k}]");
                            }
                            reference = Some(d);
                        }
                        Some(r) => assert!(
                            r.iter().zip(&d).all(|(p, q)| p.to_bits() == q.to_bits()),
                            "{name} m={m} n={n}: combine differs from the portable kernel"
                        ),
                    }
                }
            }
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
    fn rows_start_on_cache_lines_and_keep_their_values() {
        for &(m, n) in &[(1, 1), (3, 17), (4, 100_003)] {
            let data: Vec<f32> = (0..m * n).map(|i| i as f32).collect();
            let j = JacobianF32::from_row_major(m, n, data.clone()).unwrap();
            for i in 0..m {
                assert_eq!(j.row(i).as_ptr() as usize % 64, 0, "m={m} n={n} row {i}");
                assert_eq!(j.row(i), &data[i * n..(i + 1) * n]);
            }
        }
    }

    #[test]
    fn from_f64_is_row_major() {
        let j = DMatrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let jf = JacobianF32::from_f64(&j);
        assert_eq!(jf.row(1), &[4.0, 5.0, 6.0]);
        assert_eq!(jf.to_f64(), j);
    }
}
