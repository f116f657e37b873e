//! TrimmedMean (Yin et al. 2018), torchjd `_trimmed_mean.py` semantics: for every column k of J,
//! sort the m entries, drop the t smallest and the t largest, and average the m − 2t left.
//! Not non-conflicting; not linear under scaling; **not weighted** (each coordinate keeps
//! different rows), so it implements [`Aggregator`] directly and reports no weights.
//!
//! torchjd raises when m < 2t + 1. `aggregate` has no error path, and m is only known per call,
//! so here the trim is clamped to ⌊(m − 1)/2⌋ instead: with too few rows the result is the
//! column-wise median (the most trimming that leaves a value), never a panic. m = 0 gives 0.
use super::registry::Property::No;
use super::registry::{param, props, AggregatorInfo, ParamDefault, Range, ROWS_MAX};
use super::{Aggregation, AggregationF32, Aggregator, JacobianF32};
use nalgebra::{DMatrix, DVector};
#[cfg(not(target_arch = "wasm32"))]
use rayon::prelude::*;

/// This aggregator's entry in [`super::registry::AGGREGATORS`]: name, parameters, properties.
pub const INFO: AggregatorInfo = AggregatorInfo {
    name: "trimmed-mean",
    label: "TrimmedMean",
    description: "Per coordinate, the mean after dropping the trim_number smallest and largest entries.",
    params: &[param(
        "trim_number",
        ParamDefault::Required,
        Range::Count { max: ROWS_MAX },
        "t, entries dropped at each end of every column (needs m ≥ 2t + 1)",
    )],
    properties: props(No, No, No, None),
    gramian_weighted: false,
    stateful: false,
    seeded: false,
    needs_losses: false,
};

#[derive(Clone, Copy, Debug)]
pub struct TrimmedMean {
    /// How many of the smallest and of the largest values each column drops (t).
    pub trim_number: usize,
}

impl TrimmedMean {
    /// Infallible: torchjd's only constructor check (t ≥ 0) is the type; the row-count check
    /// (m ≥ 2t + 1) is per call and handled by clamping, see the module docs.
    pub fn new(trim_number: usize) -> Self {
        TrimmedMean { trim_number }
    }

    /// The trim actually applied to an m-row J.
    pub fn effective_trim(&self, m: usize) -> usize {
        self.trim_number.min(m.saturating_sub(1) / 2)
    }
}

impl Aggregator for TrimmedMean {
    fn aggregate(&mut self, jacobian: &DMatrix<f64>) -> Aggregation {
        let (m, n) = jacobian.shape();
        let t = self.effective_trim(m);
        let kept = m.saturating_sub(2 * t);
        let mut column = Vec::with_capacity(m);
        let update = DVector::from_fn(n, |k, _| {
            if kept == 0 {
                return 0.0;
            }
            column.clear();
            column.extend(jacobian.column(k).iter().copied());
            column.sort_unstable_by(f64::total_cmp);
            // Σ(x/kept) rather than Σx/kept: a mean of finite values is finite, a sum need not be.
            column[t..m - t].iter().map(|x| x / kept as f64).sum()
        });
        Aggregation { update, weights: None }
    }

    fn reset(&mut self) {}

    /// The same on f32 rows, without the f64 copy of J. Columns are sorted `LANES` at a time by
    /// a branch-free network (odd-even transposition: m rounds of neighbour compare-exchanges,
    /// which sorts any m) on integer keys with `f32::total_cmp`'s order, so the compiler turns
    /// each compare-exchange into vector min/max over the lanes; the kept values are averaged
    /// in f64 in the f64 path's order, so the result is the f64 path's rounded to f32. Blocks
    /// of columns run on all cores natively.
    fn aggregate_f32(&mut self, jacobian: &JacobianF32) -> AggregationF32 {
        let (m, n) = (jacobian.nrows(), jacobian.ncols());
        let t = self.effective_trim(m);
        let kept = m.saturating_sub(2 * t);
        let mut update = vec![0.0f32; n];
        if kept == 0 {
            return AggregationF32 { update, weights: None };
        }
        let rows: Vec<&[f32]> = (0..m).map(|i| jacobian.row(i)).collect();
        let fill = |(b, out): (usize, &mut [f32])| trim_block(&rows, t, b * TRIM_BLOCK, out);
        #[cfg(not(target_arch = "wasm32"))]
        if super::jacobian_f32::parallel(m * n, super::jacobian_f32::COMBINE_PARALLEL_MIN) {
            update.par_chunks_mut(TRIM_BLOCK).enumerate().for_each(fill);
            return AggregationF32 { update, weights: None };
        }
        update.chunks_mut(TRIM_BLOCK).enumerate().for_each(fill);
        AggregationF32 { update, weights: None }
    }
}

/// out[c] = the trimmed mean of column start + c, with the widest vectors the CPU has.
fn trim_block(rows: &[&[f32]], t: usize, start: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature the function is compiled for (checked above).
            return unsafe { trim_block_avx512(rows, t, start, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { trim_block_avx2(rows, t, start, out) };
        }
    }
    trim_block_generic(rows, t, start, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn trim_block_avx512(rows: &[&[f32]], t: usize, start: usize, out: &mut [f32]) {
    trim_block_generic(rows, t, start, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn trim_block_avx2(rows: &[&[f32]], t: usize, start: usize, out: &mut [f32]) {
    trim_block_generic(rows, t, start, out)
}

/// Plain loops over `LANES` columns that the compiler vectorises for the enabled features.
#[inline(always)]
fn trim_block_generic(rows: &[&[f32]], t: usize, start: usize, out: &mut [f32]) {
    let m = rows.len();
    let kept = (m - 2 * t) as f64;
    let mut keys = vec![[0i32; LANES]; m];
    for (c, out) in out.chunks_mut(LANES).enumerate() {
        let k0 = start + c * LANES;
        let width = out.len();
        for (key, row) in keys.iter_mut().zip(rows) {
            for (slot, &x) in key.iter_mut().zip(&row[k0..k0 + width]) {
                *slot = total_order_key(x);
            }
        }
        for round in 0..m {
            for i in (round % 2..m - 1).step_by(2) {
                let (lo, hi) = keys.split_at_mut(i + 1);
                let (a, b) = (&mut lo[i], &mut hi[0]);
                for l in 0..LANES {
                    let (x, y) = (a[l], b[l]);
                    a[l] = x.min(y);
                    b[l] = x.max(y);
                }
            }
        }
        let mut sums = [0.0f64; LANES];
        for key in &keys[t..m - t] {
            for (s, &k) in sums.iter_mut().zip(key) {
                *s += from_total_order_key(k) as f64 / kept;
            }
        }
        for (o, s) in out.iter_mut().zip(sums) {
            *o = s as f32;
        }
    }
}

/// Columns sorted together by the network (one AVX-512 register of keys).
const LANES: usize = 16;

/// An integer with the order of `f32::total_cmp` (negative values have their magnitude bits
/// flipped), and its inverse.
fn total_order_key(x: f32) -> i32 {
    let k = x.to_bits() as i32;
    k ^ (((k >> 31) as u32) >> 1) as i32
}

fn from_total_order_key(k: i32) -> f32 {
    f32::from_bits((k ^ (((k >> 31) as u32) >> 1) as i32) as u32)
}

/// Columns per unit of work in the f32 path.
const TRIM_BLOCK: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// J_TrimmedMean from aggregators.md §6.
    fn j_trimmed_mean() -> DMatrix<f64> {
        DMatrix::from_row_slice(4, 2, &[1e11, 3.0, 1.0, -1e11, -1e10, 1e10, 2.0, 2.0])
    }

    #[test]
    fn matches_torchjd_on_j_trimmed_mean() {
        let a = TrimmedMean::new(1).aggregate(&j_trimmed_mean());
        // Column 1 is mean(1, 2), column 2 is mean(2, 3).
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![1.5, 2.5]), epsilon = 1e-4);
        assert!(a.weights.is_none());
    }

    #[test]
    fn zero_trim_is_the_mean() {
        let j = DMatrix::from_row_slice(3, 2, &[1.0, -2.0, 4.0, 0.5, 7.0, 3.0]);
        let a = TrimmedMean::new(0).aggregate(&j);
        assert_abs_diff_eq!(a.update, DVector::from_vec(vec![4.0, 0.5]), epsilon = 1e-12);
    }

    #[test]
    fn too_few_rows_clamp_to_the_median() {
        let j = DMatrix::from_row_slice(4, 1, &[5.0, -1.0, 2.0, 100.0]);
        let mut tm = TrimmedMean::new(3);
        assert_eq!(tm.effective_trim(4), 1);
        // m = 4, t clamped to 1: mean(2, 5).
        assert_abs_diff_eq!(tm.aggregate(&j).update[0], 3.5, epsilon = 1e-12);
        let one = DMatrix::from_row_slice(1, 2, &[3.0, -4.0]);
        assert_eq!(tm.aggregate(&one).update, DVector::from_vec(vec![3.0, -4.0]));
        assert_eq!(tm.aggregate(&DMatrix::zeros(0, 3)).update, DVector::zeros(3));
    }

    /// The f32 path gives the f64 path's result rounded to f32, for every trim and m, with the
    /// threaded path (m·n ≥ 2¹⁷) included.
    #[test]
    fn the_f32_path_matches_the_f64_one() {
        for &(m, n, trim) in &[(1, 3, 0), (4, 5, 1), (5, 1000, 2), (8, 40_000, 1), (3, 7, 5)] {
            let j = DMatrix::from_fn(m, n, |i, k| (((i * 7919 + k * 104_729) % 2003) as f64 - 1001.0) / 64.0);
            let jf = JacobianF32::from_f64(&j);
            let mut tm = TrimmedMean::new(trim);
            let d64 = tm.aggregate(&j).update;
            let d32 = tm.aggregate_f32(&jf);
            assert!(d32.weights.is_none());
            for k in 0..n {
                assert_eq!(d32.update[k], d64[k] as f32, "m={m} n={n} trim={trim} column {k}");
            }
        }
    }

    #[test]
    fn the_key_order_is_total_cmp() {
        let xs = [f32::NEG_INFINITY, -3.5, -0.0, 0.0, 1e-40, 2.0, f32::INFINITY, f32::NAN, -f32::NAN];
        for &x in &xs {
            assert_eq!(from_total_order_key(total_order_key(x)).to_bits(), x.to_bits());
            for &y in &xs {
                assert_eq!(total_order_key(x).cmp(&total_order_key(y)), x.total_cmp(&y), "{x} vs {y}");
            }
        }
    }

    /// Zeros of both signs and NaN (which `total_cmp` puts past +∞, so a trim can drop it) sort
    /// as in the f64 path.
    #[test]
    fn the_f32_path_orders_special_values_like_the_f64_one() {
        let j = DMatrix::from_row_slice(
            4,
            3,
            &[-0.0, f64::NAN, 1.0, 0.0, 2.0, f64::NEG_INFINITY, -0.0, 3.0, 4.0, 0.0, -1.0, 5.0],
        );
        let mut tm = TrimmedMean::new(1);
        let d64 = tm.aggregate(&j).update;
        let d32 = tm.aggregate_f32(&JacobianF32::from_f64(&j)).update;
        for k in 0..3 {
            assert_eq!(d32[k].to_bits(), (d64[k] as f32).to_bits(), "column {k}: {} vs {}", d32[k], d64[k]);
        }
        assert_eq!(d32[1], 2.5, "NaN trimmed away as the largest");
    }

    #[test]
    fn huge_entries_do_not_overflow() {
        let j = DMatrix::from_row_slice(3, 1, &[1.5e308, 1.7e308, 1.6e308]);
        let d = TrimmedMean::new(0).aggregate(&j).update;
        assert!(d[0].is_finite() && (d[0] - 1.6e308).abs() < 1e294);
    }
}
