//! Where the tasks fight: per-point task gradients of the shared parameters and their cosines.
//!
//! For one input x and task t, g_t(x) = ∂φ_t(x)/∂θ_shared, where φ_t is chosen by
//! [`PointGradient`]: the task's loss at the point's label (train points), the loss against the
//! model's own hard prediction (any point, no label needed: the page's map), or the task's raw
//! output. The map is cos(g_s(x), g_t(x)) per pair of tasks (for m > 2 the page shows the
//! smallest pairwise cosine).
//!
//! **Why no per-point gradient vector is ever stored.** For one sample the gradient of trunk
//! layer l's weights is the outer product δ_l ⊗ a_{l−1} (δ_l = ∂φ/∂z_l, a_{l−1} the layer's
//! input) and its bias gradient is δ_l, so for two tasks
//!
//! g_s(x) · g_t(x) = Σ_l (δ_l^s · δ_l^t) (‖a_{l−1}‖² + 1).
//!
//! One batched forward pass and one batched backward pass per task give every point's δ's; the
//! m × m Gram of each point then costs O(m² Σ_l width_l) — no B × d matrix. The WGSL kernel
//! computes the same sum; `per_point_gradients` (explicit vectors, one backward per point) is the
//! test's independent reference, itself checked against finite differences.

use super::loss::{loss_and_grad, LossKind, Target};
use super::mlp::{linear, weight_t, Mlp, TrunkCache};
use crate::pause::finish;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// What a point's per-task gradient is the gradient of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PointGradient {
    /// ℓ_t(x, y_t), the task's loss at the point's own label (the per-sample loss: the batch's
    /// loss is the mean of these). Train points only: needs targets.
    Loss,
    /// ℓ_t(x, ŷ_t) against the model's own hard prediction ŷ_t: BCE the label 1[z ≥ 0], softmax
    /// CE the argmax class. It is the gradient that makes each task more sure of what it already
    /// predicts, so two tasks that predict different labels at x with aligned features pull
    /// apart there. A regression head's own prediction is its output (loss 0, gradient 0): it
    /// takes the output's gradient instead, as in `Output`.
    OwnPrediction,
    /// The task's raw output: a 1-output head's logit or value; a softmax head's log-probability
    /// of its predicted class; a k-output regression head's sum of outputs.
    Output,
}

impl PointGradient {
    pub fn name(self) -> &'static str {
        match self {
            PointGradient::Loss => "loss",
            PointGradient::OwnPrediction => "own-prediction",
            PointGradient::Output => "output",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "loss" => Ok(PointGradient::Loss),
            "own-prediction" => Ok(PointGradient::OwnPrediction),
            "output" => Ok(PointGradient::Output),
            other => Err(format!("unknown point gradient '{other}' (expected loss, own-prediction or output)")),
        }
    }
}

/// Every point's m × m Gram of its per-task shared gradients.
#[derive(Clone, Debug, PartialEq)]
pub struct PointGrams {
    pub m: usize,
    /// Point i's Gram, row-major, at `i·m² .. (i+1)·m²`.
    pub grams: Vec<f64>,
}

impl PointGrams {
    pub fn len(&self) -> usize {
        self.grams.len() / (self.m * self.m).max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.grams.is_empty()
    }

    /// Point i's Gram (m × m, row-major).
    pub fn gram(&self, i: usize) -> &[f64] {
        let mm = self.m * self.m;
        &self.grams[i * mm..(i + 1) * mm]
    }

    /// cos(g_s, g_t) at point i; `None` where either gradient is zero.
    pub fn cos(&self, i: usize, s: usize, t: usize) -> Option<f64> {
        let g = self.gram(i);
        let (ss, tt, st) = (g[s * self.m + s], g[t * self.m + t], g[s * self.m + t]);
        let denom = (ss * tt).sqrt();
        (denom > 0.0 && denom.is_finite()).then(|| (st / denom).clamp(-1.0, 1.0))
    }

    /// The smallest defined pairwise cosine at point i (`None` if no pair is defined).
    pub fn min_cos(&self, i: usize) -> Option<f64> {
        (0..self.m)
            .flat_map(|s| (s + 1..self.m).map(move |t| (s, t)))
            .filter_map(|(s, t)| self.cos(i, s, t))
            .reduce(f64::min)
    }
}

/// dφ_t/do for one batch (B × k, one row per point, not divided by B).
fn output_grad(loss: LossKind, out: &DMatrix<f64>, target: Option<&Target>, how: PointGradient) -> DMatrix<f64> {
    let (b, k) = out.shape();
    match (how, loss, target) {
        (PointGradient::Loss, _, Some(y)) => loss_and_grad(loss, out, y).1 * b as f64,
        (PointGradient::OwnPrediction, LossKind::Bce, _) => {
            let own = out.map(|z| if z >= 0.0 { 1.0 } else { 0.0 });
            loss_and_grad(loss, out, &Target::Values(own)).1 * b as f64
        }
        (PointGradient::OwnPrediction, LossKind::SoftmaxCe, _) => {
            let own = (0..b).map(|r| argmax(out, r)).collect();
            loss_and_grad(loss, out, &Target::Classes(own)).1 * b as f64
        }
        (_, LossKind::SoftmaxCe, _) => {
            // ∂ log p_c / ∂z_j = 1[j = c] − p_j, c the predicted class.
            let mut g = DMatrix::zeros(b, k);
            for r in 0..b {
                let max = (0..k).map(|c| out[(r, c)]).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..k).map(|c| (out[(r, c)] - max).exp()).sum();
                let c = argmax(out, r);
                for j in 0..k {
                    g[(r, j)] = if j == c { 1.0 } else { 0.0 } - (out[(r, j)] - max).exp() / sum;
                }
            }
            g
        }
        // The output itself (a regression head's own prediction too).
        _ => DMatrix::from_element(b, k, 1.0),
    }
}

/// The first index of the largest value in row r (NaN never wins).
fn argmax(out: &DMatrix<f64>, r: usize) -> usize {
    (0..out.ncols()).fold(0, |best, c| if out[(r, c)] > out[(r, best)] { c } else { best })
}

impl Mlp {
    fn point_checks(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        how: PointGradient,
        targets: Option<&[Target]>,
    ) -> Result<(), String> {
        self.check_inputs(params, x)?;
        match (how, targets) {
            (PointGradient::Loss, None) => Err("per-point loss gradients need the points' labels".into()),
            (_, Some(t)) => self.check_targets(x, t),
            _ => Ok(()),
        }
    }

    /// Every point's m × m Gram of its per-task gradients w.r.t. the shared (trunk) parameters,
    /// by the per-layer sum in the module's doc: one batched forward and m batched backward
    /// passes. `targets` are needed for `PointGradient::Loss` (and checked when given).
    pub fn point_grams(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        how: PointGradient,
        targets: Option<&[Target]>,
    ) -> Result<PointGrams, String> {
        self.point_checks(params, x, how, targets)?;
        let (b, m) = (x.nrows(), self.num_tasks());
        let layout = self.layout();
        if layout.shared_len == 0 {
            return Ok(PointGrams { m, grams: vec![0.0; b * m * m] });
        }
        let cache = finish(self.trunk_forward(params, x));
        let h = cache.acts.last().expect("acts starts with x");
        let d_hs: Vec<DMatrix<f64>> = layout
            .heads
            .iter()
            .enumerate()
            .map(|(t, s)| {
                let d_o = output_grad(self.config().heads[t].loss, &linear(params, s, h), targets.map(|y| &y[t]), how);
                d_o * weight_t(params, s).transpose()
            })
            .collect();
        Ok(PointGrams { m, grams: self.grams_from_output_grads(params, &cache, &d_hs) })
    }

    /// Every point's m × m Gram (row-major, point after point) from each task's per-point
    /// gradient at the trunk's output, `d_hs[t]` (B × trunk width, row b = ∂φ_t(x_b)/∂h): the
    /// per-layer sum in the module's doc, one batched backward pass per task for the deltas.
    pub(super) fn grams_from_output_grads(
        &self,
        params: &[f64],
        cache: &TrunkCache,
        d_hs: &[DMatrix<f64>],
    ) -> Vec<f64> {
        let layout = self.layout();
        let act = self.config().activation;
        let (b, m) = (cache.acts[0].nrows(), d_hs.len());
        let mut grams = vec![0.0; b * m * m];
        // ‖a_{l−1}‖² + 1 per point and layer (the bias counts as an input of 1).
        let input_sq: Vec<Vec<f64>> = (0..layout.trunk.len())
            .map(|l| (0..b).map(|r| cache.acts[l].row(r).norm_squared() + 1.0).collect())
            .collect();
        // deltas[t][l] = B × width_l.
        let mut deltas: Vec<Vec<DMatrix<f64>>> = Vec::with_capacity(m);
        for d_h in d_hs {
            let mut d_a = d_h.clone();
            let mut per_layer = vec![DMatrix::zeros(0, 0); layout.trunk.len()];
            for (l, ls) in layout.trunk.iter().enumerate().rev() {
                let d_z = d_a.zip_map(&cache.zs[l], |g, z| g * act.derivative(z));
                if l > 0 {
                    d_a = &d_z * weight_t(params, ls).transpose();
                }
                per_layer[l] = d_z;
            }
            deltas.push(per_layer);
        }
        for r in 0..b {
            let g = &mut grams[r * m * m..(r + 1) * m * m];
            for s in 0..m {
                for t in s..m {
                    let v: f64 = (0..layout.trunk.len())
                        .map(|l| deltas[s][l].row(r).dot(&deltas[t][l].row(r)) * input_sq[l][r])
                        .sum();
                    g[s * m + t] = v;
                    g[t * m + s] = v;
                }
            }
        }
        grams
    }

    /// The explicit per-point gradients, `out[t]` = B × d_shared with row b = g_t(x_b): one
    /// backward pass per point (the reference `point_grams` is tested against).
    pub fn per_point_gradients(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        how: PointGradient,
        targets: Option<&[Target]>,
    ) -> Result<Vec<DMatrix<f64>>, String> {
        self.point_checks(params, x, how, targets)?;
        let layout = self.layout();
        let act = self.config().activation;
        let mut out = vec![DMatrix::zeros(x.nrows(), layout.shared_len); self.num_tasks()];
        if layout.shared_len == 0 {
            return Ok(out);
        }
        for r in 0..x.nrows() {
            let xr = x.rows(r, 1).into_owned();
            let cache = finish(self.trunk_forward(params, &xr));
            let h = cache.acts.last().expect("acts starts with x");
            for (t, s) in layout.heads.iter().enumerate() {
                let y = targets.map(|y| match &y[t] {
                    Target::Values(v) => Target::Values(v.rows(r, 1).into_owned()),
                    Target::Classes(c) => Target::Classes(vec![c[r]]),
                });
                let d_o = output_grad(self.config().heads[t].loss, &linear(params, s, h), y.as_ref(), how);
                let mut d_a = d_o * weight_t(params, s).transpose();
                for (l, ls) in layout.trunk.iter().enumerate().rev() {
                    let d_z = d_a.zip_map(&cache.zs[l], |g, z| g * act.derivative(z));
                    let d_wt = cache.acts[l].tr_mul(&d_z);
                    let mut row = out[t].row_mut(r);
                    for (i, v) in ls.weight.clone().zip(d_wt.iter()) {
                        row[i] = *v;
                    }
                    for (j, i) in ls.bias.clone().enumerate() {
                        row[i] = d_z[(0, j)];
                    }
                    if l > 0 {
                        d_a = &d_z * weight_t(params, ls).transpose();
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, HeadConfig, MlpConfig};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn model(activation: Activation, heads: Vec<HeadConfig>, hidden: Vec<usize>) -> Mlp {
        Mlp::new(MlpConfig { input_dim: 2, hidden, activation, heads, tied_head_init: false, head_init_scale: 1.0 })
            .unwrap()
    }

    fn heads() -> Vec<HeadConfig> {
        vec![
            HeadConfig { out_dim: 1, loss: LossKind::Bce },
            HeadConfig { out_dim: 1, loss: LossKind::Mse },
            HeadConfig { out_dim: 3, loss: LossKind::SoftmaxCe },
        ]
    }

    fn points(n: usize, seed: u64) -> DMatrix<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        DMatrix::from_fn(n, 2, |_, _| rng.random_range(-2.0..2.0))
    }

    fn labels(n: usize, seed: u64) -> Vec<Target> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        vec![
            Target::Values(DMatrix::from_fn(n, 1, |_, _| if rng.random_bool(0.5) { 1.0 } else { 0.0 })),
            Target::Values(DMatrix::from_fn(n, 1, |_, _| rng.random_range(-1.0..1.0))),
            Target::Classes((0..n).map(|_| rng.random_range(0..3)).collect()),
        ]
    }

    /// φ_t at one point, for finite differences: the per-sample loss, or the output quantity.
    fn phi(mlp: &Mlp, params: &[f64], x: &DMatrix<f64>, t: usize, how: PointGradient, y: Option<&Target>) -> f64 {
        let out = &mlp.forward(params, x).unwrap()[t];
        let loss = mlp.config().heads[t].loss;
        match (how, y) {
            (PointGradient::Loss, Some(y)) => loss_and_grad(loss, out, y).0,
            (PointGradient::Output, _) if loss == LossKind::SoftmaxCe => {
                let c = argmax(out, 0);
                let lse = (0..out.ncols()).map(|j| out[(0, j)].exp()).sum::<f64>().ln();
                out[(0, c)] - lse
            }
            _ => out.sum(),
        }
    }

    #[test]
    fn per_point_gradients_match_finite_differences() {
        // Central differences with h = 1e-6 on smooth activations: agreement to ~1e-7 of the
        // gradient's size; the check allows 1e-5 relative (plus 1e-8 absolute).
        for act in [Activation::Tanh, Activation::Sigmoid] {
            let mlp = model(act, heads(), vec![5, 4]);
            let params = mlp.init_params(3);
            let x = points(4, 1);
            let y = labels(4, 2);
            for how in [PointGradient::Loss, PointGradient::Output] {
                let grads = mlp.per_point_gradients(&params, &x, how, Some(&y)).unwrap();
                for r in 0..x.nrows() {
                    let xr = x.rows(r, 1).into_owned();
                    for t in 0..3 {
                        let yr = match &y[t] {
                            Target::Values(v) => Target::Values(v.rows(r, 1).into_owned()),
                            Target::Classes(c) => Target::Classes(vec![c[r]]),
                        };
                        for i in 0..mlp.layout().shared_len {
                            let (mut up, mut down) = (params.clone(), params.clone());
                            up[i] += 1e-6;
                            down[i] -= 1e-6;
                            let fd = (phi(&mlp, &up, &xr, t, how, Some(&yr))
                                - phi(&mlp, &down, &xr, t, how, Some(&yr)))
                                / 2e-6;
                            let g = grads[t][(r, i)];
                            assert!(
                                (g - fd).abs() <= 1e-5 * fd.abs().max(g.abs()) + 1e-8,
                                "{act:?} {how:?} point {r} task {t} param {i}: {g} vs {fd}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn own_prediction_is_the_loss_at_the_predicted_labels() {
        // With the predictions written as labels, the (finite-difference checked) loss
        // gradients are the own-prediction gradients, for the classification heads.
        let mlp = model(Activation::Tanh, heads(), vec![5, 4]);
        let params = mlp.init_params(7);
        let x = points(12, 3);
        let out = mlp.forward(&params, &x).unwrap();
        let mut own = labels(12, 0);
        own[0] = Target::Values(out[0].map(|z| if z >= 0.0 { 1.0 } else { 0.0 }));
        own[2] = Target::Classes((0..12).map(|r| argmax(&out[2], r)).collect());
        let by_loss = mlp.per_point_gradients(&params, &x, PointGradient::Loss, Some(&own)).unwrap();
        let by_own = mlp.per_point_gradients(&params, &x, PointGradient::OwnPrediction, None).unwrap();
        let by_output = mlp.per_point_gradients(&params, &x, PointGradient::Output, None).unwrap();
        assert_eq!(by_own[0], by_loss[0]);
        assert_eq!(by_own[2], by_loss[2]);
        assert_eq!(by_own[1], by_output[1], "a regression head takes its output's gradient");
        assert!(by_own[0].norm() > 0.0 && by_own[2].norm() > 0.0);
    }

    #[test]
    fn the_per_layer_sum_equals_the_explicit_gram() {
        let y = labels(30, 5);
        for act in [Activation::Tanh, Activation::Relu, Activation::Sigmoid] {
            for hidden in [vec![6], vec![8, 5, 3]] {
                let mlp = model(act, heads(), hidden.clone());
                let params = mlp.init_params(11);
                let x = points(30, 4);
                for how in [PointGradient::Loss, PointGradient::OwnPrediction, PointGradient::Output] {
                    let grams = mlp.point_grams(&params, &x, how, Some(&y)).unwrap();
                    let g = mlp.per_point_gradients(&params, &x, how, Some(&y)).unwrap();
                    assert_eq!(grams.len(), 30);
                    for r in 0..30 {
                        for s in 0..3 {
                            for t in 0..3 {
                                let want = g[s].row(r).dot(&g[t].row(r));
                                let got = grams.gram(r)[s * 3 + t];
                                assert!(
                                    (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                                    "{act:?} {hidden:?} {how:?} point {r} ({s},{t}): {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn own_prediction_flips_the_sign_where_the_predictions_differ() {
        // Two BCE heads with the same weights but opposite signs predict opposite labels
        // everywhere, with identical output gradients up to sign: the own-prediction gradients
        // are then exactly aligned (cos = 1: each wants to be surer of its own, opposite, label,
        // and the trunk serves both), and the output gradients exactly opposed (cos = −1).
        let bce = HeadConfig { out_dim: 1, loss: LossKind::Bce };
        let mlp = model(Activation::Tanh, vec![bce, bce], vec![6]);
        let mut params = mlp.init_params(2);
        let (h0, h1) = (mlp.layout().head_range(0), mlp.layout().head_range(1));
        for (i, j) in h0.zip(h1) {
            params[j] = -params[i];
        }
        let x = points(20, 9);
        let own = mlp.point_grams(&params, &x, PointGradient::OwnPrediction, None).unwrap();
        let out = mlp.point_grams(&params, &x, PointGradient::Output, None).unwrap();
        for r in 0..20 {
            assert!((own.cos(r, 0, 1).unwrap() - 1.0).abs() < 1e-12);
            assert!((out.min_cos(r).unwrap() + 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let mlp = model(Activation::Tanh, heads(), vec![4]);
        let params = mlp.init_params(0);
        let x = points(3, 0);
        assert!(mlp.point_grams(&params, &x, PointGradient::Loss, None).unwrap_err().contains("labels"));
        assert!(mlp.point_grams(&params[1..], &x, PointGradient::Output, None).is_err());
        let nan = DMatrix::from_element(1, 2, f64::NAN);
        assert!(mlp.point_grams(&params, &nan, PointGradient::Output, None).is_err());
        assert_eq!(PointGradient::parse(" own-prediction "), Ok(PointGradient::OwnPrediction));
        assert!(PointGradient::parse("grad").is_err());
    }
}
