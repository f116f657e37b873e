//! The batched MLP slice: every grid point × every sample, without per-point allocation.
//!
//! The first layer is linear in its weights, so x·(W + αΔ + βH)ᵀ = x·Wᵀ + α·x·Δᵀ + β·x·Hᵀ: three
//! products once, then one axpy per point. Later layers form W + αΔ + βH in a reused buffer and
//! run one gemm (nalgebra → matrixmultiply) per layer per point. Grid points are shared out over
//! threads (std::thread::scope), each with its own buffers.

use super::directions::Plane;
use super::grid::{Grid, Surface};
use super::slice::{for_each_point, surface_from_points, thread_count};
use crate::model::{LayerSlice, LossKind, Mlp, Target};
use nalgebra::{DMatrix, DMatrixView};

/// log(1 + eˣ) without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The mean loss of `loss` on outputs `out` (B × k): the value `model::loss_and_grad` returns,
/// without building the gradient. Targets must have passed `check_target`.
pub fn loss_value(loss: LossKind, out: &DMatrix<f64>, target: &Target) -> f64 {
    let (b, k) = out.shape();
    match (loss, target) {
        (LossKind::Mse, Target::Values(y)) => {
            out.iter().zip(y.iter()).map(|(o, t)| (o - t) * (o - t)).sum::<f64>() / (b * k) as f64
        }
        (LossKind::Bce, Target::Values(y)) => {
            out.iter().zip(y.iter()).map(|(&o, &t)| softplus(o) - t * o).sum::<f64>() / (b * k) as f64
        }
        (LossKind::SoftmaxCe, Target::Classes(labels)) => {
            let mut total = 0.0;
            for r in 0..b {
                let max = (0..k).map(|c| out[(r, c)]).fold(f64::NEG_INFINITY, f64::max);
                let lse = max + (0..k).map(|c| (out[(r, c)] - max).exp()).sum::<f64>().ln();
                total += lse - out[(r, labels[r])];
            }
            total / b as f64
        }
        // Unreachable after check_target; NaN makes a misuse visible instead of panicking.
        _ => f64::NAN,
    }
}

/// One thread's buffers.
struct Scratch {
    /// Activations after each trunk layer (B × width).
    acts: Vec<DMatrix<f64>>,
    /// One head's output (B × k), per head.
    outs: Vec<DMatrix<f64>>,
    /// W + αΔ + βH of the current layer.
    w_eff: Vec<f64>,
    b_eff: Vec<f64>,
}

/// x·Wᵀ for the weight block `w` of layer `s` (flat row-major W = column-major Wᵀ).
fn times_wt(x: &DMatrix<f64>, s: &LayerSlice, w: &[f64]) -> DMatrix<f64> {
    x * DMatrixView::from_slice(&w[s.weight.clone()], s.fan_in, s.fan_out)
}

/// The first layer's three products.
struct FirstLayer {
    base: DMatrix<f64>,
    along_delta: DMatrix<f64>,
    along_eta: DMatrix<f64>,
}

/// Per-task and total losses of `mlp` on (x, targets) over the grid of `plane`.
pub fn mlp_slice(mlp: &Mlp, x: &DMatrix<f64>, targets: &[Target], plane: &Plane, grid: &Grid, threads: usize) -> Result<Surface, String> {
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
    let act = mlp.config().activation;
    let heads_cfg = &mlp.config().heads;
    let batch = x.nrows();
    // The layers that read x directly: trunk layer 0, or every head when there is no trunk.
    let first_layers: Vec<&LayerSlice> = if layout.trunk.is_empty() { layout.heads.iter().collect() } else { vec![&layout.trunk[0]] };
    let first: Vec<FirstLayer> = first_layers
        .iter()
        .map(|s| FirstLayer {
            base: times_wt(x, s, &plane.origin),
            along_delta: times_wt(x, s, &plane.delta),
            along_eta: times_wt(x, s, &plane.eta),
        })
        .collect();
    let max_block = layout.trunk.iter().chain(&layout.heads).map(|s| s.weight.len()).max().unwrap_or(0);
    let make_scratch = || Scratch {
        acts: layout.trunk.iter().map(|s| DMatrix::zeros(batch, s.fan_out)).collect(),
        outs: layout.heads.iter().map(|s| DMatrix::zeros(batch, s.fan_out)).collect(),
        w_eff: vec![0.0; max_block],
        b_eff: Vec::with_capacity(256),
    };
    let effective_bias = |s: &LayerSlice, a: f64, b: f64, out: &mut Vec<f64>| {
        out.clear();
        out.extend(s.bias.clone().map(|i| plane.origin[i] + a * plane.delta[i] + b * plane.eta[i]));
    };
    // z ← base + α·D + β·E + bias, column by column (column-major storage).
    let first_layer_into = |f: &FirstLayer, a: f64, b: f64, bias: &[f64], z: &mut DMatrix<f64>| {
        for (c, &bc) in bias.iter().enumerate() {
            let (zc, p, d, e) = (z.column_mut(c), f.base.column(c), f.along_delta.column(c), f.along_eta.column(c));
            for (((zv, pv), dv), ev) in zc.into_iter().zip(p.iter()).zip(d.iter()).zip(e.iter()) {
                *zv = pv + a * dv + b * ev + bc;
            }
        }
    };
    // z ← a_prev·(W + αΔ + βH)ᵀ + bias.
    let linear_into = |s: &LayerSlice, a_prev: &DMatrix<f64>, al: f64, be: f64, sc_w: &mut [f64], bias: &[f64], z: &mut DMatrix<f64>| {
        let w = &mut sc_w[..s.weight.len()];
        for (o, i) in w.iter_mut().zip(s.weight.clone()) {
            *o = plane.origin[i] + al * plane.delta[i] + be * plane.eta[i];
        }
        z.gemm(1.0, a_prev, &DMatrixView::from_slice(w, s.fan_in, s.fan_out), 0.0);
        for (c, &bc) in bias.iter().enumerate() {
            z.column_mut(c).add_scalar_mut(bc);
        }
    };
    let eval = |k: usize, sc: &mut Scratch| -> Result<Vec<f64>, String> {
        let (a, b) = grid.point(k);
        let Scratch { acts, outs, w_eff, b_eff } = sc;
        if layout.trunk.is_empty() {
            for (h, s) in layout.heads.iter().enumerate() {
                effective_bias(s, a, b, b_eff);
                first_layer_into(&first[h], a, b, b_eff, &mut outs[h]);
            }
        } else {
            for (l, s) in layout.trunk.iter().enumerate() {
                effective_bias(s, a, b, b_eff);
                let (done, rest) = acts.split_at_mut(l);
                let z = &mut rest[0];
                if l == 0 {
                    first_layer_into(&first[0], a, b, b_eff, z);
                } else {
                    linear_into(s, &done[l - 1], a, b, w_eff, b_eff, z);
                }
                z.apply(|v| *v = act.apply(*v));
            }
            let h = acts.last().expect("the trunk is not empty");
            for (t, s) in layout.heads.iter().enumerate() {
                effective_bias(s, a, b, b_eff);
                linear_into(s, h, a, b, w_eff, b_eff, &mut outs[t]);
            }
        }
        Ok(heads_cfg.iter().zip(outs.iter()).zip(targets).map(|((hc, o), y)| loss_value(hc.loss, o, y)).collect())
    };
    let per_point = for_each_point(grid.len(), thread_count(threads, grid.len()), make_scratch, eval)?;
    Ok(surface_from_points(grid.clone(), mlp.num_tasks(), &per_point))
}
