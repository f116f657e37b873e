//! Noisy top-k gating (Shazeer et al. 2017; tensor2tensor `NoisyTopKGating`):
//! H = h + ε·(softplus(h_noise) + 1e-2), ε ~ N(0, 1) while training only, and
//! G = softmax over the k largest H (ties → lower index), 0 elsewhere.
//! Also the Φ-smoothed load P(x,i) = Φ((h_i − θ_i)/σ_i), θ_i = the (k+1)-th largest noisy logit
//! when i is in the top k, else the k-th.

use super::normal;
use super::routing::{softmax_rows, top_k, NoiseCache, Routing};
use super::softplus::softplus;
use crate::model::sigmoid;
use nalgebra::DMatrix;

pub const NOISE_EPSILON: f64 = 1e-2;

/// `eps`: T × E normal draws (training) or `None` (evaluation: H = h).
pub fn route(logits: DMatrix<f64>, raw_noise: DMatrix<f64>, eps: Option<DMatrix<f64>>, k: usize) -> Routing {
    let probs = softmax_rows(&logits);
    let (t, e) = logits.shape();
    let noise = eps.map(|eps| {
        let std = raw_noise.map(|r| softplus(r) + NOISE_EPSILON);
        let noisy = &logits + eps.component_mul(&std);
        NoiseCache { raw: raw_noise, eps, std, noisy }
    });
    let h = noise.as_ref().map_or(&logits, |n| &n.noisy);
    let mut combine = DMatrix::zeros(t, e);
    let mut dispatch = DMatrix::zeros(t, e);
    for tok in 0..t {
        let row: Vec<f64> = h.row(tok).iter().copied().collect();
        let kept = top_k(&row, k);
        let max = row[kept[0]];
        let s: f64 = kept.iter().map(|&i| (row[i] - max).exp()).sum();
        for &i in &kept {
            combine[(tok, i)] = (row[i] - max).exp() / s;
            dispatch[(tok, i)] = 1.0;
        }
    }
    Routing { logits, probs, combine, dispatch, capacity: None, dropped: 0, noise }
}

/// dL/dh and dL/dh_noise from dL/dG through the softmax over the kept noisy logits.
pub fn backward(routing: &Routing, d_combine: &DMatrix<f64>) -> (DMatrix<f64>, DMatrix<f64>) {
    let (t, e) = routing.logits.shape();
    let mut d_h = DMatrix::zeros(t, e);
    for tok in 0..t {
        let dot: f64 = (0..e).map(|i| routing.combine[(tok, i)] * d_combine[(tok, i)]).sum();
        for i in 0..e {
            if routing.dispatch[(tok, i)] > 0.0 {
                d_h[(tok, i)] = routing.combine[(tok, i)] * (d_combine[(tok, i)] - dot);
            }
        }
    }
    let d_raw = noise_chain(routing, &d_h);
    (d_h, d_raw)
}

/// dL/dh_noise given dL/dH: H = h + ε·(softplus(h_noise) + c) ⇒ ∂H/∂h_noise = ε·σ(h_noise).
fn noise_chain(routing: &Routing, d_noisy: &DMatrix<f64>) -> DMatrix<f64> {
    match &routing.noise {
        Some(n) => DMatrix::from_fn(d_noisy.nrows(), d_noisy.ncols(), |r, c| {
            d_noisy[(r, c)] * n.eps[(r, c)] * sigmoid(n.raw[(r, c)])
        }),
        None => DMatrix::zeros(d_noisy.nrows(), d_noisy.ncols()),
    }
}

/// θ's column for token `tok` and expert `i`: the (k+1)-th largest noisy logit if i is in the
/// top k, else the k-th. Needs k < E.
fn threshold_index(noisy_row: &[f64], k: usize, i: usize) -> usize {
    let order = top_k(noisy_row, k + 1);
    if order[..k].contains(&i) {
        order[k]
    } else {
        order[k - 1]
    }
}

/// The Φ-smoothed load per expert, Σ_x P(x, i). `None` without noise or when k = E (every
/// expert is always in the top k, so the load is the constant T).
pub fn smooth_load(routing: &Routing, k: usize) -> Option<Vec<f64>> {
    let n = routing.noise.as_ref()?;
    let (t, e) = routing.logits.shape();
    if k >= e {
        return None;
    }
    let mut load = vec![0.0; e];
    for tok in 0..t {
        let row: Vec<f64> = n.noisy.row(tok).iter().copied().collect();
        for (i, l) in load.iter_mut().enumerate() {
            let theta = row[threshold_index(&row, k, i)];
            *l += normal::cdf((routing.logits[(tok, i)] - theta) / n.std[(tok, i)]);
        }
    }
    Some(load)
}

/// dL/dh and dL/dh_noise from dL/dLoad (θ is a noisy logit, so it carries a gradient too).
pub fn smooth_load_backward(routing: &Routing, k: usize, d_load: &[f64]) -> (DMatrix<f64>, DMatrix<f64>) {
    let (t, e) = routing.logits.shape();
    let mut d_h = DMatrix::zeros(t, e);
    let mut d_noisy = DMatrix::zeros(t, e);
    let mut d_std = DMatrix::zeros(t, e);
    let Some(n) = routing.noise.as_ref() else { return (d_h, d_noisy) };
    if k >= e {
        return (d_h, d_noisy);
    }
    for tok in 0..t {
        let row: Vec<f64> = n.noisy.row(tok).iter().copied().collect();
        for i in 0..e {
            let j = threshold_index(&row, k, i);
            let sigma = n.std[(tok, i)];
            let z = (routing.logits[(tok, i)] - row[j]) / sigma;
            let g = d_load[i] * normal::pdf(z) / sigma;
            d_h[(tok, i)] += g;
            d_noisy[(tok, j)] -= g;
            d_std[(tok, i)] -= g * z;
        }
    }
    // H_j = h_j + ε_j σ_j: dH_j flows to h_j and to σ_j (times ε_j); σ = softplus(raw) + c.
    d_h += &d_noisy;
    let d_std_total = d_std + d_noisy.component_mul(&n.eps);
    let d_raw = DMatrix::from_fn(t, e, |r, c| d_std_total[(r, c)] * sigmoid(n.raw[(r, c)]));
    (d_h, d_raw)
}
