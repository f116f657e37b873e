//! The multi-task MLP: batched forward, hand-written backprop to per-task Jacobians.
//!
//! Batches are row-major in meaning: x is B × input_dim, one sample per row. A layer's weight
//! W (fan_out × fan_in, row-major in the flat vector) is read as the column-major matrix Wᵀ
//! (fan_in × fan_out), so z = a·Wᵀ + b is one product and dWᵀ = aᵀ·dz lands in the flat layout.

use super::config::MlpConfig;
use super::layout::{init_params, LayerSlice, Layout};
use super::loss::{check_target, loss_and_grad, Target};
use crate::pause::{finish, pause};
use nalgebra::{DMatrix, DMatrixView};

/// A validated multi-task MLP (the structure only; parameters live in a flat `Vec<f64>`).
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    config: MlpConfig,
    layout: Layout,
}

/// What one mini-batch yields.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    /// Mean loss of each task over the batch.
    pub losses: Vec<f64>,
    /// m × d_shared: row i = ∇ of task i's mean loss w.r.t. the shared (trunk) parameters.
    pub shared_jacobian: DMatrix<f64>,
    /// Head t's gradient of task t's own loss (length = head t's block; the other tasks'
    /// losses do not depend on it).
    pub head_grads: Vec<Vec<f64>>,
}

impl Gradients {
    /// The m × (layer block) slice of the shared Jacobian for trunk layer `l` (weights then bias).
    pub fn layer_jacobian<'a>(&'a self, layout: &Layout, l: usize) -> DMatrixView<'a, f64> {
        let r = layout.trunk[l].range();
        self.shared_jacobian.columns(r.start, r.len())
    }

    /// The full-length update: `shared` (a d_shared direction, e.g. the aggregator's d) followed
    /// by every head's own gradient, ready for `Optimizer::step`.
    pub fn full_update(&self, layout: &Layout, shared: &[f64]) -> Result<Vec<f64>, String> {
        if shared.len() != layout.shared_len {
            return Err(format!("shared update has {} entries, the trunk has {}", shared.len(), layout.shared_len));
        }
        let mut out = shared.to_vec();
        for g in &self.head_grads {
            out.extend_from_slice(g);
        }
        Ok(out)
    }
}

/// Pre-activations and activations of the trunk for one batch.
pub(super) struct TrunkCache {
    /// zs[l] = B × width_l pre-activation of trunk layer l.
    pub(super) zs: Vec<DMatrix<f64>>,
    /// acts[0] = x, acts[l+1] = φ(zs[l]); the last is the trunk's output h.
    pub(super) acts: Vec<DMatrix<f64>>,
}

/// Wᵀ (fan_in × fan_out) of a layer, read straight from the flat vector.
pub(super) fn weight_t(params: &[f64], s: &LayerSlice) -> DMatrix<f64> {
    DMatrix::from_column_slice(s.fan_in, s.fan_out, &params[s.weight.clone()])
}

/// a·Wᵀ + b for every row of a.
pub(super) fn linear(params: &[f64], s: &LayerSlice, a: &DMatrix<f64>) -> DMatrix<f64> {
    let mut z = a * weight_t(params, s);
    let b = &params[s.bias.clone()];
    for mut row in z.row_iter_mut() {
        for (v, bias) in row.iter_mut().zip(b) {
            *v += bias;
        }
    }
    z
}

impl Mlp {
    pub fn new(config: MlpConfig) -> Result<Self, String> {
        config.validate()?;
        let layout = Layout::new(&config);
        Ok(Mlp { config, layout })
    }

    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn num_tasks(&self) -> usize {
        self.config.heads.len()
    }

    /// Seeded parameters (see `layout::init_params` for the scheme).
    pub fn init_params(&self, seed: u64) -> Vec<f64> {
        init_params(&self.config, &self.layout, seed)
    }

    pub(super) fn check_inputs(&self, params: &[f64], x: &DMatrix<f64>) -> Result<(), String> {
        if params.len() != self.layout.total_len {
            return Err(format!("expected {} parameters, got {}", self.layout.total_len, params.len()));
        }
        if x.nrows() == 0 {
            return Err("the batch is empty".into());
        }
        if x.ncols() != self.config.input_dim {
            return Err(format!("inputs have {} columns, the model expects {}", x.ncols(), self.config.input_dim));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(format!("input in row {} is not finite", i % x.nrows()));
        }
        Ok(())
    }

    pub(super) fn check_targets(&self, x: &DMatrix<f64>, targets: &[Target]) -> Result<(), String> {
        if targets.len() != self.num_tasks() {
            return Err(format!("{} target sets for {} tasks", targets.len(), self.num_tasks()));
        }
        for (t, (h, y)) in self.config.heads.iter().zip(targets).enumerate() {
            check_target(t, h.loss, h.out_dim, x.nrows(), y)?;
        }
        Ok(())
    }

    /// The trunk's activations, pausing after each layer (`crate::pause`).
    pub(super) async fn trunk_forward(&self, params: &[f64], x: &DMatrix<f64>) -> TrunkCache {
        let act = self.config.activation;
        let mut cache = TrunkCache { zs: Vec::new(), acts: vec![x.clone()] };
        for s in &self.layout.trunk {
            let z = linear(params, s, cache.acts.last().expect("acts starts with x"));
            cache.acts.push(z.map(|v| act.apply(v)));
            cache.zs.push(z);
            pause().await;
        }
        cache
    }

    /// Backprop dL/dh (B × trunk_out) through the trunk: the flat gradient of the shared part
    /// (pausing after each layer).
    pub(super) async fn trunk_backward(&self, params: &[f64], cache: &TrunkCache, d_h: DMatrix<f64>) -> Vec<f64> {
        let act = self.config.activation;
        let mut grad = vec![0.0; self.layout.shared_len];
        let mut d_a = d_h;
        for (l, s) in self.layout.trunk.iter().enumerate().rev() {
            let d_z = d_a.zip_map(&cache.zs[l], |g, z| g * act.derivative(z));
            let d_wt = cache.acts[l].tr_mul(&d_z); // fan_in × fan_out = dWᵀ, column-major = W row-major
            grad[s.weight.clone()].copy_from_slice(d_wt.as_slice());
            for (j, g) in grad[s.bias.clone()].iter_mut().enumerate() {
                *g = d_z.column(j).sum();
            }
            if l > 0 {
                d_a = d_z * weight_t(params, s).transpose();
            }
            pause().await;
        }
        grad
    }

    /// Raw head outputs (logits for BCE / softmax-CE, values for MSE), one B × out_dim matrix
    /// per task. Apply a sigmoid / softmax to the logits for probabilities.
    pub fn forward(&self, params: &[f64], x: &DMatrix<f64>) -> Result<Vec<DMatrix<f64>>, String> {
        finish(self.forward_paused(params, x))
    }

    /// [`Mlp::forward`], pausing between layers.
    pub async fn forward_paused(&self, params: &[f64], x: &DMatrix<f64>) -> Result<Vec<DMatrix<f64>>, String> {
        self.check_inputs(params, x)?;
        let cache = self.trunk_forward(params, x).await;
        let h = cache.acts.last().expect("acts starts with x");
        Ok(self.layout.heads.iter().map(|s| linear(params, s, h)).collect())
    }

    /// Forward over 2-D points (e.g. a decision-boundary grid), when input_dim is 2.
    pub fn predict_points(&self, params: &[f64], points: &[[f64; 2]]) -> Result<Vec<DMatrix<f64>>, String> {
        let x = DMatrix::from_fn(points.len(), 2, |r, c| points[r][c]);
        self.forward(params, &x)
    }

    /// Every trunk layer's activations φ(W·a + b) at each row of x: one B × width matrix per
    /// hidden layer (empty without hidden layers) — the network view's neuron thumbnails.
    pub fn hidden_activations(&self, params: &[f64], x: &DMatrix<f64>) -> Result<Vec<DMatrix<f64>>, String> {
        self.check_inputs(params, x)?;
        let mut cache = finish(self.trunk_forward(params, x));
        cache.acts.remove(0);
        Ok(cache.acts)
    }

    /// Per-task mean losses over the batch.
    pub fn losses(&self, params: &[f64], x: &DMatrix<f64>, targets: &[Target]) -> Result<Vec<f64>, String> {
        finish(self.losses_paused(params, x, targets))
    }

    /// [`Mlp::losses`], pausing between layers.
    pub async fn losses_paused(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        targets: &[Target],
    ) -> Result<Vec<f64>, String> {
        let outs = self.forward_paused(params, x).await?;
        self.check_targets(x, targets)?;
        Ok(self
            .config
            .heads
            .iter()
            .zip(outs.iter().zip(targets))
            .map(|(h, (o, y))| loss_and_grad(h.loss, o, y).0)
            .collect())
    }

    /// Losses, the shared per-task Jacobian and the heads' own gradients for one mini-batch.
    pub fn gradients(&self, params: &[f64], x: &DMatrix<f64>, targets: &[Target]) -> Result<Gradients, String> {
        finish(self.gradients_paused(params, x, targets))
    }

    /// [`Mlp::gradients`], pausing after each layer of the forward pass and of each task's
    /// backward pass (the same operations in the same order: the same numbers).
    pub async fn gradients_paused(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        targets: &[Target],
    ) -> Result<Gradients, String> {
        self.check_inputs(params, x)?;
        self.check_targets(x, targets)?;
        let cache = self.trunk_forward(params, x).await;
        let h = cache.acts.last().expect("acts starts with x");
        let m = self.num_tasks();
        let mut out = Gradients {
            losses: Vec::with_capacity(m),
            shared_jacobian: DMatrix::zeros(m, self.layout.shared_len),
            head_grads: Vec::with_capacity(m),
        };
        for (t, s) in self.layout.heads.iter().enumerate() {
            let (loss, d_o) = loss_and_grad(self.config.heads[t].loss, &linear(params, s, h), &targets[t]);
            out.losses.push(loss);
            let mut head = h.tr_mul(&d_o).as_slice().to_vec();
            head.extend((0..s.fan_out).map(|j| d_o.column(j).sum()));
            out.head_grads.push(head);
            if self.layout.shared_len > 0 {
                let d_h = d_o * weight_t(params, s).transpose();
                let row = self.trunk_backward(params, &cache, d_h).await;
                out.shared_jacobian.row_mut(t).copy_from_slice(&row);
            }
        }
        Ok(out)
    }

    /// Per-sample gradients of task `task`'s loss w.r.t. the shared parameters: B × d_shared,
    /// row b = ∇ℓ_task(sample b) (for coherence metrics). Costs one backward pass per sample.
    pub fn per_sample_shared_gradients(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        targets: &[Target],
        task: usize,
    ) -> Result<DMatrix<f64>, String> {
        if task >= self.num_tasks() {
            return Err(format!("task {task} does not exist ({} tasks)", self.num_tasks()));
        }
        self.check_inputs(params, x)?;
        self.check_targets(x, targets)?;
        let mut out = DMatrix::zeros(x.nrows(), self.layout.shared_len);
        if self.layout.shared_len == 0 {
            return Ok(out);
        }
        let s = &self.layout.heads[task];
        for b in 0..x.nrows() {
            let xb = x.rows(b, 1).into_owned();
            let yb = match &targets[task] {
                Target::Values(v) => Target::Values(v.rows(b, 1).into_owned()),
                Target::Classes(c) => Target::Classes(vec![c[b]]),
            };
            let cache = finish(self.trunk_forward(params, &xb));
            let h = cache.acts.last().expect("acts starts with x");
            let (_, d_o) = loss_and_grad(self.config.heads[task].loss, &linear(params, s, h), &yb);
            let row = finish(self.trunk_backward(params, &cache, d_o * weight_t(params, s).transpose()));
            out.row_mut(b).copy_from_slice(&row);
        }
        Ok(out)
    }
}
