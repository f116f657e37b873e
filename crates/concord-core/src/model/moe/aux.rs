//! The auxiliary losses of one batch, assembled over the gate groups: each per-group loss is
//! averaged over the groups (one for a shared gate, one per task otherwise); the MI loss is one
//! quantity over all tasks. Returns the values and dL_aux/d(logits, noise logits) per group.

use super::config::{AuxWeights, RouterKind};
use super::routing::{softmax_backward, Routing};
use super::{cv_squared, load_balance, mutual_info, noisy_topk, selection, z_loss};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// Unweighted aux-loss values (what a panel shows) and the weighted total.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuxValues {
    /// N·Σ f_i·P_i (1 when balanced).
    #[serde(with = "crate::train::float_serde::float")]
    pub load_balance: f64,
    /// mean(logsumexp(h)²).
    #[serde(with = "crate::train::float_serde::float")]
    pub z_loss: f64,
    /// CV²(importance).
    #[serde(with = "crate::train::float_serde::float")]
    pub importance_cv2: f64,
    /// CV²(load): Φ-smoothed for noisy top-k while training, hard counts otherwise.
    #[serde(with = "crate::train::float_serde::float")]
    pub load_cv2: f64,
    /// L_MI = −Σ P(t,e)·log(P(t,e)/(P(t)P(e)) + 1e-4).
    #[serde(with = "crate::train::float_serde::float")]
    pub mutual_info_loss: f64,
    /// MI(task; expert) in nats.
    #[serde(with = "crate::train::float_serde::float")]
    pub mutual_information: f64,
    /// DSelect-k: Σ over task gates of the mean selector entropy Σ_l −Σ_i r log(r + 1e-6).
    #[serde(default, with = "crate::train::float_serde::float")]
    pub selector_entropy: f64,
    /// DSelect-k with N not a power of 2: Σ over task gates of the mean Σ_l 1/Σ_{i<N} r⁽ˡ⁾_i.
    #[serde(default, with = "crate::train::float_serde::float")]
    pub missing_mass: f64,
    /// Σ weight·value: the aux loss added to the objective.
    #[serde(with = "crate::train::float_serde::float")]
    pub total: f64,
}

/// Per gate group: (dL/dh, dL/dh_noise).
pub type LogitGrads = Vec<(DMatrix<f64>, DMatrix<f64>)>;

/// `group_of[t]`: the gate group that routes task t.
pub fn aux_losses(
    router: &RouterKind,
    weights: &AuxWeights,
    routings: &[Routing],
    group_of: &[usize],
) -> (AuxValues, LogitGrads) {
    let groups = routings.len() as f64;
    let mut v = AuxValues::default();
    let mut grads: LogitGrads = routings
        .iter()
        .map(|r| (DMatrix::zeros(r.tokens(), r.experts()), DMatrix::zeros(r.tokens(), r.experts())))
        .collect();
    let k = match router {
        RouterKind::NoisyTopK { k } => Some(*k),
        _ => None,
    };
    for (r, (d_h, d_raw)) in routings.iter().zip(grads.iter_mut()) {
        v.load_balance += load_balance::value(&r.probs) / groups;
        v.z_loss += z_loss::value(&r.logits) / groups;
        let imp = cv_squared::importance(&r.combine);
        v.importance_cv2 += cv_squared::value(&imp) / groups;
        let smooth = k.and_then(|k| noisy_topk::smooth_load(r, k));
        let load = smooth.clone().unwrap_or_else(|| cv_squared::hard_load(&r.dispatch));
        v.load_cv2 += cv_squared::value(&load) / groups;

        if weights.load_balance > 0.0 {
            *d_h += softmax_backward(&r.probs, &load_balance::d_probs(&r.probs)) * (weights.load_balance / groups);
        }
        if weights.z_loss > 0.0 {
            *d_h += z_loss::d_logits(&r.logits) * (weights.z_loss / groups);
        }
        if weights.importance > 0.0 {
            let g = cv_squared::gradient(&imp);
            let d_combine = DMatrix::from_fn(r.tokens(), r.experts(), |_, e| g[e] * weights.importance / groups);
            let (a, b) = selection::backward(router, r, &d_combine);
            *d_h += a;
            *d_raw += b;
        }
        if let (true, Some(load), Some(k)) = (weights.load > 0.0, smooth, k) {
            let g: Vec<f64> = cv_squared::gradient(&load).iter().map(|x| x * weights.load / groups).collect();
            let (a, b) = noisy_topk::smooth_load_backward(r, k, &g);
            *d_h += a;
            *d_raw += b;
        }
    }
    let task_probs: Vec<&DMatrix<f64>> = group_of.iter().map(|&g| &routings[g].probs).collect();
    let joint = mutual_info::joint(&task_probs);
    v.mutual_info_loss = mutual_info::value(&joint);
    v.mutual_information = mutual_info::mutual_information(&joint);
    if weights.mutual_info > 0.0 {
        let d_joint = mutual_info::d_joint(&joint) * weights.mutual_info;
        let total: f64 = task_probs.iter().map(|p| p.nrows() as f64).sum();
        for (t, &g) in group_of.iter().enumerate() {
            let r = &routings[g];
            let d_p = mutual_info::d_task_probs(&d_joint, t, r.tokens(), total);
            grads[g].0 += softmax_backward(&r.probs, &d_p);
        }
    }
    v.total = weights.load_balance * v.load_balance
        + weights.z_loss * v.z_loss
        + weights.importance * v.importance_cv2
        + weights.load * v.load_cv2
        + weights.mutual_info * v.mutual_info_loss;
    (v, grads)
}
