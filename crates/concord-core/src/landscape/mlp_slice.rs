//! The batched MLP slice: every grid point × every sample, without per-point allocation.
//!
//! The first layer is linear in its weights, so x·(W + αΔ + βH)ᵀ = x·Wᵀ + α·x·Δᵀ + β·x·Hᵀ: three
//! products once, then one axpy per point. Later layers form W + αΔ + βH in a reused buffer and
//! run one gemm (nalgebra → matrixmultiply) per layer per point. Grid points are shared out over
//! threads (std::thread::scope), each with its own buffers.
//!
//! `Precision::F32` runs the same algorithm in single precision (sgemm: twice the SIMD lanes);
//! losses are still summed in f64. The f64 path is the reference; the tests bound the f32
//! path's relative error (≤ 1e-4 on the test models).

use super::directions::Plane;
use super::grid::{Grid, Surface};
use super::slice::{for_each_point, surface_from_points, thread_count};
use crate::model::{LayerSlice, LossKind, Mlp, Target};
use nalgebra::{DMatrix, DMatrixView, RealField};
use serde::{Deserialize, Serialize};

/// Arithmetic of the batched slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F64,
    F32,
}

/// The float types the slice runs in.
pub trait SliceFloat: RealField + Copy {
    fn from_f64_lossy(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl SliceFloat for f64 {
    fn from_f64_lossy(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

impl SliceFloat for f32 {
    fn from_f64_lossy(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// log(1 + eˣ) without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The mean loss of `loss` on outputs `out` (B × k): the value `model::loss_and_grad` returns,
/// without building the gradient. Targets must have passed `check_target`.
pub fn loss_value<T: SliceFloat>(loss: LossKind, out: &DMatrix<T>, target: &Target) -> f64 {
    let (b, k) = out.shape();
    let o = |r: usize, c: usize| out[(r, c)].to_f64();
    match (loss, target) {
        (LossKind::Mse, Target::Values(y)) => {
            out.iter().zip(y.iter()).map(|(o, t)| (o.to_f64() - t).powi(2)).sum::<f64>() / (b * k) as f64
        }
        (LossKind::Bce, Target::Values(y)) => {
            out.iter().zip(y.iter()).map(|(o, &t)| softplus(o.to_f64()) - t * o.to_f64()).sum::<f64>() / (b * k) as f64
        }
        (LossKind::SoftmaxCe, Target::Classes(labels)) => {
            let mut total = 0.0;
            for (r, &label) in labels.iter().enumerate().take(b) {
                let max = (0..k).map(|c| o(r, c)).fold(f64::NEG_INFINITY, f64::max);
                let lse = max + (0..k).map(|c| (o(r, c) - max).exp()).sum::<f64>().ln();
                total += lse - o(r, label);
            }
            total / b as f64
        }
        // Unreachable after check_target; NaN makes a misuse visible instead of panicking.
        _ => f64::NAN,
    }
}

/// One thread's buffers.
struct Scratch<T: SliceFloat> {
    /// Activations after each trunk layer (B × width).
    acts: Vec<DMatrix<T>>,
    /// One head's output (B × k), per head.
    outs: Vec<DMatrix<T>>,
    /// W + αΔ + βH of the current layer.
    w_eff: Vec<T>,
    b_eff: Vec<T>,
}

/// x·Wᵀ for the weight block `w` of layer `s` (flat row-major W = column-major Wᵀ).
fn times_wt<T: SliceFloat>(x: &DMatrix<T>, s: &LayerSlice, w: &[T]) -> DMatrix<T> {
    x * DMatrixView::from_slice(&w[s.weight.clone()], s.fan_in, s.fan_out)
}

/// The first layer's three products.
struct FirstLayer<T: SliceFloat> {
    base: DMatrix<T>,
    along_delta: DMatrix<T>,
    along_eta: DMatrix<T>,
}

/// Per-task and total losses of `mlp` on (x, targets) over the grid of `plane`, in f64.
pub fn mlp_slice(
    mlp: &Mlp,
    x: &DMatrix<f64>,
    targets: &[Target],
    plane: &Plane,
    grid: &Grid,
    threads: usize,
) -> Result<Surface, String> {
    mlp_slice_with(mlp, x, targets, plane, grid, threads, Precision::F64)
}

/// `mlp_slice` in the given precision.
pub fn mlp_slice_with(
    mlp: &Mlp,
    x: &DMatrix<f64>,
    targets: &[Target],
    plane: &Plane,
    grid: &Grid,
    threads: usize,
    precision: Precision,
) -> Result<Surface, String> {
    let layout = mlp.layout();
    for (name, v) in [("origin", &plane.origin), ("δ", &plane.delta), ("η", &plane.eta)] {
        if v.len() != layout.total_len {
            return Err(format!("the plane's {name} has {} entries, the model {}", v.len(), layout.total_len));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(format!("the plane's {name} is not finite"));
        }
    }
    // Validates x and the targets (shapes, finiteness, labels) once.
    mlp.losses(&plane.origin, x, targets)?;
    match precision {
        Precision::F64 => slice_in::<f64>(mlp, x, targets, plane, grid, threads),
        Precision::F32 => slice_in::<f32>(mlp, x, targets, plane, grid, threads),
    }
}

fn slice_in<T: SliceFloat>(
    mlp: &Mlp,
    x: &DMatrix<f64>,
    targets: &[Target],
    plane: &Plane,
    grid: &Grid,
    threads: usize,
) -> Result<Surface, String> {
    let layout = mlp.layout();
    let cast = |v: &[f64]| -> Vec<T> { v.iter().map(|&e| T::from_f64_lossy(e)).collect() };
    let (origin, delta, eta) = (cast(&plane.origin), cast(&plane.delta), cast(&plane.eta));
    let x: DMatrix<T> = x.map(T::from_f64_lossy);
    let act = mlp.config().activation;
    let relu = act == crate::model::Activation::Relu;
    let heads_cfg = &mlp.config().heads;
    let batch = x.nrows();
    // The layers that read x directly: trunk layer 0, or every head when there is no trunk.
    let first_layers: Vec<&LayerSlice> =
        if layout.trunk.is_empty() { layout.heads.iter().collect() } else { vec![&layout.trunk[0]] };
    let first: Vec<FirstLayer<T>> = first_layers
        .iter()
        .map(|s| FirstLayer {
            base: times_wt(&x, s, &origin),
            along_delta: times_wt(&x, s, &delta),
            along_eta: times_wt(&x, s, &eta),
        })
        .collect();
    let max_block = layout.trunk.iter().chain(&layout.heads).map(|s| s.weight.len()).max().unwrap_or(0);
    let make_scratch = || Scratch {
        acts: layout.trunk.iter().map(|s| DMatrix::zeros(batch, s.fan_out)).collect(),
        outs: layout.heads.iter().map(|s| DMatrix::zeros(batch, s.fan_out)).collect(),
        w_eff: vec![T::zero(); max_block],
        b_eff: Vec::with_capacity(256),
    };
    let effective_bias = |s: &LayerSlice, a: T, b: T, out: &mut Vec<T>| {
        out.clear();
        out.extend(s.bias.clone().map(|i| origin[i] + a * delta[i] + b * eta[i]));
    };
    // φ over a whole buffer; ReLU as a branch-free select so it vectorises.
    let activate_all = |zs: &mut [T]| {
        if relu {
            for v in zs.iter_mut() {
                *v = if *v > T::zero() { *v } else { T::zero() };
            }
        } else {
            for v in zs.iter_mut() {
                *v = T::from_f64_lossy(act.apply(v.to_f64()));
            }
        }
    };
    // z ← φ?(base + α·D + β·E + bias); plain slices per column (column-major) so the loop
    // vectorises.
    let first_layer_into = |f: &FirstLayer<T>, a: T, b: T, bias: &[T], z: &mut DMatrix<T>, activate: bool| {
        let rows = z.nrows();
        let (ps, ds, es) = (f.base.as_slice(), f.along_delta.as_slice(), f.along_eta.as_slice());
        let zs = z.as_mut_slice();
        for (c, &bc) in bias.iter().enumerate() {
            let r = c * rows..(c + 1) * rows;
            for (((zv, &pv), &dv), &ev) in zs[r.clone()].iter_mut().zip(&ps[r.clone()]).zip(&ds[r.clone()]).zip(&es[r])
            {
                *zv = pv + a * dv + b * ev + bc;
            }
        }
        if activate {
            activate_all(zs);
        }
    };
    // z ← φ?(a_prev·(W + αΔ + βH)ᵀ + bias).
    let linear_into = |s: &LayerSlice,
                       a_prev: &DMatrix<T>,
                       al: T,
                       be: T,
                       sc_w: &mut [T],
                       bias: &[T],
                       z: &mut DMatrix<T>,
                       activate: bool| {
        let w = &mut sc_w[..s.weight.len()];
        for (o, i) in w.iter_mut().zip(s.weight.clone()) {
            *o = origin[i] + al * delta[i] + be * eta[i];
        }
        z.gemm(T::one(), a_prev, &DMatrixView::from_slice(w, s.fan_in, s.fan_out), T::zero());
        let rows = z.nrows();
        let zs = z.as_mut_slice();
        for (c, &bc) in bias.iter().enumerate() {
            for v in zs[c * rows..(c + 1) * rows].iter_mut() {
                *v += bc;
            }
        }
        if activate {
            activate_all(zs);
        }
    };
    let eval = |k: usize, sc: &mut Scratch<T>| -> Result<Vec<f64>, String> {
        let (a, b) = grid.point(k);
        let (a, b) = (T::from_f64_lossy(a), T::from_f64_lossy(b));
        let Scratch { acts, outs, w_eff, b_eff } = sc;
        if layout.trunk.is_empty() {
            for (h, s) in layout.heads.iter().enumerate() {
                effective_bias(s, a, b, b_eff);
                first_layer_into(&first[h], a, b, b_eff, &mut outs[h], false);
            }
        } else {
            for (l, s) in layout.trunk.iter().enumerate() {
                effective_bias(s, a, b, b_eff);
                let (done, rest) = acts.split_at_mut(l);
                let z = &mut rest[0];
                if l == 0 {
                    first_layer_into(&first[0], a, b, b_eff, z, true);
                } else {
                    linear_into(s, &done[l - 1], a, b, w_eff, b_eff, z, true);
                }
            }
            let h = acts.last().expect("the trunk is not empty");
            for (t, s) in layout.heads.iter().enumerate() {
                effective_bias(s, a, b, b_eff);
                linear_into(s, h, a, b, w_eff, b_eff, &mut outs[t], false);
            }
        }
        Ok(heads_cfg.iter().zip(outs.iter()).zip(targets).map(|((hc, o), y)| loss_value(hc.loss, o, y)).collect())
    };
    let per_point = for_each_point(grid.len(), thread_count(threads, grid.len()), make_scratch, eval)?;
    Ok(surface_from_points(grid.clone(), mlp.num_tasks(), &per_point))
}
