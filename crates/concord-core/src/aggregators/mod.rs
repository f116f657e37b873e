//! Gradient aggregators in the Gramian-weighted shape.
//!
//! From the m × n task Jacobian J (row i = ∇L_i over the n shared parameters) every method here
//! forms G = JJᵀ, computes weights w = f(G) with a tiny m × m problem, and returns d = Jᵀw.
//! The two O(mn) passes (`gram`, `combine`) are shared; a method is only its `Weighting`.
//! Semantics and defaults follow torchjd 0.18 (`shared/reference/aggregators.md`).
//!
//! J is an `nalgebra::DMatrix<f64>` (m rows, n columns); weights are `DVector<f64>` of length m.

mod aligned_mtl;
mod cagrad;
mod config;
mod constant;
mod cr_mogm;
mod db_mtl;
mod dual_cone;
mod dualproj;
mod excess_mtl;
mod fairgrad;
mod graddrop;
mod gradvac;
mod imtl_g;
mod jacobian_f32;
mod krum;
mod loss_aware;
mod mean;
mod mgda;
mod moco;
mod modo;
mod nash_mtl;
mod numerics;
mod pcd;
mod pcgrad;
#[cfg(test)]
mod properties;
mod random;
pub mod registry;
mod sdmgrad;
mod spec;
mod sum;
#[cfg(test)]
mod testing;
mod trimmed_mean;
mod upgrad;

pub use aligned_mtl::{AlignedMtl, ScaleMode};
pub use cagrad::CaGrad;
pub use config::Config;
pub use constant::Constant;
pub use cr_mogm::CrMogm;
pub use db_mtl::DbMtl;
pub use dualproj::DualProj;
pub use excess_mtl::ExcessMtl;
pub use fairgrad::FairGrad;
pub use graddrop::{graddrop, GradDrop};
pub use gradvac::GradVac;
pub use imtl_g::ImtlG;
pub use jacobian_f32::{combine_f32, gram_f32, JacobianF32};
pub use krum::Krum;
pub use mean::Mean;
pub use mgda::Mgda;
pub use moco::MoCo;
pub use modo::MoDo;
pub use nash_mtl::NashMtl;
pub use pcd::Pcd;
pub use pcgrad::{pcg_hash, visit_order, PcGrad};
pub use random::{rlw_pcg_weights, Random};
pub use sdmgrad::SdmGrad;
pub(crate) use spec::named_params;
pub use spec::{AggregatorSpec, ParamValue};
pub use sum::Sum;
pub use trimmed_mean::TrimmedMean;
pub use upgrad::UpGrad;

use nalgebra::{DMatrix, DVector};

/// The result of one aggregation: the update direction d (length n) and, for weighted
/// methods, the weights w with d = Jᵀw.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregation {
    pub update: DVector<f64>,
    pub weights: Option<DVector<f64>>,
}

/// w = f(G): the only part in which Gramian-weighted methods differ.
pub trait Weighting: Send {
    /// Weights for the m × m Gramian `gram` (symmetric positive semi-definite).
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64>;
    /// Forget any state carried between calls (random streams restart from their seed).
    fn reset(&mut self) {}
    /// Whether `weights` reads the entries of G (not only its size m). When it does not (Mean,
    /// Sum, Constant), the blanket `Aggregator` impl skips the O(m²n) product G = JJᵀ and passes
    /// an m × m zero matrix instead.
    fn reads_gram(&self) -> bool {
        true
    }
    /// w from G and the m task losses, for the methods that read the losses (MGDA with LibMTL's
    /// `gn=loss` / `loss+`); the others ignore them.
    fn weights_with_losses(&mut self, gram: &DMatrix<f64>, _losses: &[f64]) -> DVector<f64> {
        self.weights(gram)
    }
}

/// The result of one aggregation of an f32 Jacobian: d in f32, the weights (if any) in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregationF32 {
    pub update: Vec<f32>,
    pub weights: Option<DVector<f64>>,
}

/// J ↦ d. Every Gramian-weighted method gets this through the blanket impl below.
///
/// **Loss-aware methods** (MoCo, DB-MTL, MGDA with `gn=loss` / `loss+`; the registry's
/// `needs_losses`, [`AggregatorSpec::needs_losses`]) also read the m task losses of the batch J
/// was taken on: a caller that has them calls the `*_with_losses` variants, which for every
/// other method are the plain calls. Given no losses (the plain calls), a loss-aware method
/// takes every L_i = 1, which is *not* the method: callers without losses refuse such a spec
/// instead ([`AggregatorSpec::build_without_losses`]).
pub trait Aggregator: Send {
    fn aggregate(&mut self, jacobian: &DMatrix<f64>) -> Aggregation;
    fn reset(&mut self);
    /// `aggregate` for a J whose rows' task losses are `losses` (length m, finite).
    fn aggregate_with_losses(&mut self, jacobian: &DMatrix<f64>, _losses: &[f64]) -> Aggregation {
        self.aggregate(jacobian)
    }
    /// `aggregate_f32` with the task losses (see `aggregate_with_losses`).
    fn aggregate_f32_with_losses(&mut self, jacobian: &JacobianF32, _losses: &[f64]) -> AggregationF32 {
        self.aggregate_f32(jacobian)
    }
    /// `gram_weights` with the task losses (see `aggregate_with_losses`).
    fn gram_weights_with_losses(&mut self, gram: &DMatrix<f64>, _losses: &[f64]) -> Option<DVector<f64>> {
        self.gram_weights(gram)
    }
    /// The same on an f32 row-major Jacobian. Gramian-weighted methods run both O(mn) passes in
    /// f32 (`gram_f32`, `combine_f32`); the others (GradDrop, TrimmedMean) convert to f64.
    fn aggregate_f32(&mut self, jacobian: &JacobianF32) -> AggregationF32 {
        let a = self.aggregate(&jacobian.to_f64());
        AggregationF32 { update: a.update.iter().map(|&x| x as f32).collect(), weights: a.weights }
    }
    /// w = f(G) for the Gramian-weighted methods (then d = Jᵀw), `None` for the others (they
    /// need J itself). Lets a caller that already holds G (the fast trainer builds it layer by
    /// layer) skip the O(m²n) product.
    fn gram_weights(&mut self, _gram: &DMatrix<f64>) -> Option<DVector<f64>> {
        None
    }
}

impl<W: Weighting> Aggregator for W {
    fn aggregate(&mut self, jacobian: &DMatrix<f64>) -> Aggregation {
        let g = if self.reads_gram() { gram(jacobian) } else { DMatrix::zeros(jacobian.nrows(), jacobian.nrows()) };
        let w = self.weights(&g);
        Aggregation { update: combine(jacobian, &w), weights: Some(w) }
    }

    fn reset(&mut self) {
        Weighting::reset(self)
    }

    fn aggregate_f32(&mut self, jacobian: &JacobianF32) -> AggregationF32 {
        let m = jacobian.nrows();
        let g = if self.reads_gram() { gram_f32(jacobian) } else { DMatrix::zeros(m, m) };
        let w = self.weights(&g);
        AggregationF32 { update: combine_f32(jacobian, &w), weights: Some(w) }
    }

    fn gram_weights(&mut self, gram: &DMatrix<f64>) -> Option<DVector<f64>> {
        Some(self.weights(gram))
    }

    fn aggregate_with_losses(&mut self, jacobian: &DMatrix<f64>, losses: &[f64]) -> Aggregation {
        let g = if self.reads_gram() { gram(jacobian) } else { DMatrix::zeros(jacobian.nrows(), jacobian.nrows()) };
        let w = self.weights_with_losses(&g, losses);
        Aggregation { update: combine(jacobian, &w), weights: Some(w) }
    }

    fn aggregate_f32_with_losses(&mut self, jacobian: &JacobianF32, losses: &[f64]) -> AggregationF32 {
        let m = jacobian.nrows();
        let g = if self.reads_gram() { gram_f32(jacobian) } else { DMatrix::zeros(m, m) };
        let w = self.weights_with_losses(&g, losses);
        AggregationF32 { update: combine_f32(jacobian, &w), weights: Some(w) }
    }

    fn gram_weights_with_losses(&mut self, gram: &DMatrix<f64>, losses: &[f64]) -> Option<DVector<f64>> {
        Some(self.weights_with_losses(gram, losses))
    }
}

/// G = JJᵀ (m × m), exactly symmetric.
///
/// J is column-major, so column k (the k-th parameter across the m tasks) is a contiguous slice
/// of length m and G = Σ_k c_k c_kᵀ. For m ≤ 5 that sum runs in one pass over J with G held in
/// registers (`gram_small`); nalgebra would otherwise copy Jᵀ and fall back to one gemv per
/// column below its gemm threshold. For m ≥ 6, J times a strided *view* of Jᵀ (no copy) goes to
/// nalgebra's gemm (matrixmultiply). Both orders agree with `J * J.transpose()` to rounding.
pub fn gram(jacobian: &DMatrix<f64>) -> DMatrix<f64> {
    let (m, n) = jacobian.shape();
    let data = jacobian.as_slice();
    match m {
        _ if n == 0 => DMatrix::zeros(m, m),
        0 => DMatrix::zeros(0, 0),
        1 => gram_small_interleaved::<1>(data),
        2 => gram_small_interleaved::<2>(data),
        3 => gram_small::<3>(data),
        4 => gram_small::<4>(data),
        5 => gram_small::<5>(data),
        _ => {
            let jt = nalgebra::DMatrixView::from_slice_with_strides_generic(
                data,
                nalgebra::Dyn(n),
                nalgebra::Dyn(m),
                nalgebra::Dyn(m),
                nalgebra::Dyn(1),
            );
            jacobian * jt
        }
    }
}

/// Σ_k c_k c_kᵀ over the length-M columns of a column-major M × n matrix, one pass, G in registers.
fn gram_small<const M: usize>(data: &[f64]) -> DMatrix<f64> {
    let mut g = [[0.0f64; M]; M];
    for c in data.chunks_exact(M) {
        for b in 0..M {
            for a in 0..M {
                g[b][a] += c[b] * c[a];
            }
        }
    }
    DMatrix::from_fn(M, M, |a, b| g[b][a])
}

/// `gram_small` with two accumulators (even and odd columns) to break the add chain; for M ≤ 2,
/// where both fit in registers.
fn gram_small_interleaved<const M: usize>(data: &[f64]) -> DMatrix<f64> {
    let (mut g0, mut g1) = ([[0.0f64; M]; M], [[0.0f64; M]; M]);
    let mut pairs = data.chunks_exact(2 * M);
    for p in &mut pairs {
        let (c0, c1) = p.split_at(M);
        for b in 0..M {
            for a in 0..M {
                g0[b][a] += c0[b] * c0[a];
                g1[b][a] += c1[b] * c1[a];
            }
        }
    }
    for c in pairs.remainder().chunks_exact(M) {
        for b in 0..M {
            for a in 0..M {
                g0[b][a] += c[b] * c[a];
            }
        }
    }
    DMatrix::from_fn(M, M, |a, b| g0[b][a] + g1[b][a])
}

/// d = Jᵀw (length n). d_k is column k's dot product with w, so large J are split into runs of
/// columns over threads natively (each d_k is computed exactly as in one piece: the same bits
/// for any thread count).
pub fn combine(jacobian: &DMatrix<f64>, weights: &DVector<f64>) -> DVector<f64> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        let (m, n) = jacobian.shape();
        if jacobian_f32::parallel(m * n, jacobian_f32::COMBINE_PARALLEL_MIN) {
            const COLUMNS: usize = 2048;
            let mut out = DVector::zeros(n);
            out.as_mut_slice().par_chunks_mut(COLUMNS).enumerate().for_each(|(b, o)| {
                o.copy_from_slice(jacobian.columns(b * COLUMNS, o.len()).tr_mul(weights).as_slice());
            });
            return out;
        }
    }
    jacobian.tr_mul(weights)
}

#[cfg(test)]
mod gram_tests {
    use super::{gram, Aggregator, Constant, Mean, Sum};
    use nalgebra::{DMatrix, DVector};

    /// Split over threads, d = Jᵀw has the bits of the one-piece product (and of one thread).
    #[test]
    fn combine_in_parallel_gives_the_same_bits() {
        let j = DMatrix::from_fn(3, 100_003, |i, k| (((i * 37 + k * 11) % 23) as f64 - 11.0) / 7.0);
        let w = DVector::from_vec(vec![0.3, -1.7, 2.5]);
        let want = j.tr_mul(&w);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            assert_eq!(pool.install(|| super::combine(&j, &w)), want, "{threads} threads");
        }
    }

    /// The fast paths (m ≤ 5 in registers, m ≥ 6 through a strided view) agree with the plain
    /// product, are exactly symmetric, and handle empty and odd-length inputs.
    #[test]
    fn gram_matches_the_plain_product() {
        for m in 0..=9 {
            for n in [0, 1, 2, 3, 7, 64, 1001] {
                let j = DMatrix::from_fn(m, n, |i, k| (((i * 37 + k * 11) % 23) as f64 - 11.0) / 7.0);
                let want = &j * j.transpose();
                let got = gram(&j);
                assert_eq!(got.shape(), (m, m));
                assert_eq!(got, got.transpose(), "m={m} n={n}: not symmetric");
                let tol = 1e-12 * (1.0 + want.amax());
                assert!((&got - &want).amax() <= tol, "m={m} n={n}: {got} vs {want}");
            }
        }
    }

    /// Mean, Sum and Constant skip G and still give their fixed weights.
    #[test]
    fn size_only_weightings_skip_the_gramian() {
        let j = DMatrix::from_row_slice(2, 3, &[-4.0, 1.0, 1.0, 6.0, 1.0, 1.0]);
        assert_eq!(Mean.aggregate(&j).update, DVector::from_vec(vec![1.0, 1.0, 1.0]));
        assert_eq!(Sum.aggregate(&j).update, DVector::from_vec(vec![2.0, 2.0, 2.0]));
        let c = Constant::new(vec![1.0, 2.0]).expect("valid weights").aggregate(&j);
        assert_eq!(c.update, DVector::from_vec(vec![8.0, 3.0, 3.0]));
    }
}
