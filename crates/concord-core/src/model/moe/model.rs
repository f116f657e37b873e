//! The multi-task MoE model: forward per gate group, hand-written backprop through the experts,
//! the router and the pre-layers to the per-task Jacobian of the shared parameters (the same
//! `Gradients` the MLP returns, so every aggregator works on it), plus the aux-loss gradient
//! and the routing statistics.

use super::aux::{aux_losses, AuxValues};
use super::config::{Gating, MoeConfig};
use super::extraction::{Extraction, Plan};
use super::layout::{init_params, MoeLayout};
use super::routing::Routing;
use super::stats::RoutingStats;
use super::{linear, selection};
use crate::data::{normal, DataRng};
use crate::model::{check_target, loss_and_grad, Gradients, Target};
use crate::pause::{finish, pause};
use nalgebra::DMatrix;
use rand::SeedableRng;

#[derive(Clone, Debug, PartialEq)]
pub struct Moe {
    config: MoeConfig,
    layout: MoeLayout,
    /// CGC, PLE or DSelect-k: the task-gated architecture this model runs instead of a routed
    /// block (`extraction.rs`).
    arch: Option<Box<Extraction>>,
}

/// What one mini-batch yields for an MoE model.
#[derive(Clone, Debug, PartialEq)]
pub struct MoeGradients {
    /// Task losses, the m × d_shared Jacobian of the *task* losses, the heads' gradients.
    pub tasks: Gradients,
    /// ∇ of the weighted aux loss, added after aggregation: over the shared parameters, or over
    /// all parameters for CGC/PLE/DSelect-k (whose gates are task-owned).
    pub aux_grad: Vec<f64>,
    pub stats: RoutingStats,
}

/// One expert's activations on the batch.
struct ExpertCache {
    z: DMatrix<f64>,
    u: DMatrix<f64>,
    y: DMatrix<f64>,
}

struct ForwardCache {
    /// acts[0] = x, acts[l+1] = φ(zs[l]); the last is a.
    pre_zs: Vec<DMatrix<f64>>,
    pre_acts: Vec<DMatrix<f64>>,
    experts: Vec<ExpertCache>,
    gate_inputs: Vec<DMatrix<f64>>,
    routings: Vec<Routing>,
    /// h per gate group: a + Σ_e G_e ⊙ E_e(a).
    outputs: Vec<DMatrix<f64>>,
}

impl ForwardCache {
    fn a(&self) -> &DMatrix<f64> {
        self.pre_acts.last().expect("pre_acts starts with x")
    }
}

impl Moe {
    pub fn new(config: MoeConfig) -> Result<Self, String> {
        config.validate()?;
        let arch = Plan::of(&config.router).map(|plan| Box::new(Extraction::new(&config, plan)));
        let layout = arch.as_ref().map_or_else(|| MoeLayout::new(&config), |a| a.layout().clone());
        Ok(Moe { config, layout, arch })
    }

    /// The task-gated architecture's engine (CGC, PLE, DSelect-k), if this is one.
    pub(super) fn arch(&self) -> Option<&Extraction> {
        self.arch.as_deref()
    }

    pub fn config(&self) -> &MoeConfig {
        &self.config
    }

    pub fn layout(&self) -> &MoeLayout {
        &self.layout
    }

    pub fn num_tasks(&self) -> usize {
        self.config.heads.len()
    }

    pub fn init_params(&self, seed: u64) -> Vec<f64> {
        if let Some(a) = &self.arch {
            return a.init_params(seed);
        }
        init_params(&self.config, &self.layout, seed)
    }

    /// The gate group routing task t (0 for a shared gate).
    pub fn group_of(&self, task: usize) -> usize {
        match self.config.router.gating() {
            Gating::Shared => 0,
            Gating::PerTask | Gating::TaskEmbedding => task,
        }
    }

    fn groups(&self) -> usize {
        match self.config.router.gating() {
            Gating::Shared => 1,
            Gating::PerTask | Gating::TaskEmbedding => self.num_tasks(),
        }
    }

    fn gate_of(&self, group: usize) -> usize {
        match self.config.router.gating() {
            Gating::PerTask => group,
            Gating::Shared | Gating::TaskEmbedding => 0,
        }
    }

    fn check_inputs(&self, params: &[f64], x: &DMatrix<f64>) -> Result<(), String> {
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
        if let Some(i) = params.iter().position(|v| !v.is_finite()) {
            return Err(format!("parameter {i} is not finite"));
        }
        Ok(())
    }

    fn check_targets(&self, x: &DMatrix<f64>, targets: &[Target]) -> Result<(), String> {
        if targets.len() != self.num_tasks() {
            return Err(format!("{} target sets for {} tasks", targets.len(), self.num_tasks()));
        }
        for (t, (h, y)) in self.config.heads.iter().zip(targets).enumerate() {
            check_target(t, h.loss, h.out_dim, x.nrows(), y)?;
        }
        Ok(())
    }

    /// `noise_seed`: draw the noisy-top-k noise from this seed (training); `None` = no noise.
    /// Pauses (`crate::pause`) after each pre-layer, expert and gate group.
    async fn run_forward(&self, params: &[f64], x: &DMatrix<f64>, noise_seed: Option<u64>) -> ForwardCache {
        let act = self.config.activation;
        let mut pre_zs = Vec::new();
        let mut pre_acts = vec![x.clone()];
        for s in &self.layout.pre {
            let z = linear::forward(params, s, pre_acts.last().expect("non-empty"));
            pre_acts.push(z.map(|v| act.apply(v)));
            pre_zs.push(z);
            pause().await;
        }
        let a = pre_acts.last().expect("non-empty").clone();
        let mut experts: Vec<ExpertCache> = Vec::with_capacity(self.layout.experts.len());
        for s in &self.layout.experts {
            let z = linear::forward(params, &s.hidden, &a);
            let u = z.map(|v| act.apply(v));
            let y = linear::forward(params, &s.out, &u);
            experts.push(ExpertCache { z, u, y });
            pause().await;
        }
        let (t, m) = (a.nrows(), self.num_tasks());
        let mut gate_inputs = Vec::new();
        let mut routings = Vec::new();
        let mut outputs = Vec::new();
        for g in 0..self.groups() {
            let gin = match self.config.router.gating() {
                Gating::TaskEmbedding => DMatrix::from_fn(t, a.ncols() + m, |r, c| {
                    if c < a.ncols() {
                        a[(r, c)]
                    } else {
                        f64::from(u8::from(c - a.ncols() == g))
                    }
                }),
                _ => a.clone(),
            };
            let gate = &self.layout.gates[self.gate_of(g)];
            let logits = linear::forward(params, &gate.weight, &gin);
            let raw = gate.noise.as_ref().map(|s| linear::forward(params, s, &gin));
            let eps = noise_seed.filter(|_| raw.is_some()).map(|seed| self.routing_noise(seed, g, t));
            let routing = selection::route(&self.config.router, logits, raw, eps);
            let mut h = a.clone();
            for (e, ex) in experts.iter().enumerate() {
                for r in 0..t {
                    let w = routing.combine[(r, e)];
                    if w != 0.0 {
                        for c in 0..h.ncols() {
                            h[(r, c)] += w * ex.y[(r, c)];
                        }
                    }
                }
            }
            gate_inputs.push(gin);
            routings.push(routing);
            outputs.push(h);
            pause().await;
        }
        ForwardCache { pre_zs, pre_acts, experts, gate_inputs, routings, outputs }
    }

    /// Gate group g's noisy-top-k draws ε (T × E standard normals) for `noise_seed`: one
    /// `DataRng` stream per group. Public so the GPU trainer uploads the very same draws.
    pub fn routing_noise(&self, noise_seed: u64, group: usize, tokens: usize) -> DMatrix<f64> {
        let mut rng = DataRng::seed_from_u64(noise_seed);
        rng.set_stream(group as u64);
        DMatrix::from_fn(tokens, self.config.experts, |_, _| normal(&mut rng, 0.0, 1.0))
    }

    /// Adds the gate's gradient for dL/dh, dL/dh_noise of group g; returns dL/da via the gate input.
    fn gate_backward(
        &self,
        params: &[f64],
        cache: &ForwardCache,
        g: usize,
        d_h: &DMatrix<f64>,
        d_raw: &DMatrix<f64>,
        grad: &mut [f64],
    ) -> DMatrix<f64> {
        let gate = &self.layout.gates[self.gate_of(g)];
        let gin = &cache.gate_inputs[g];
        let mut d_gin = linear::backward(params, &gate.weight, gin, d_h, grad);
        if let Some(s) = &gate.noise {
            d_gin += linear::backward(params, s, gin, d_raw, grad);
        }
        // The task one-hot columns are constants: keep the part that reads a.
        d_gin.columns(0, self.config.width()).into_owned()
    }

    async fn pre_backward(&self, params: &[f64], cache: &ForwardCache, d_a: DMatrix<f64>, grad: &mut [f64]) {
        let act = self.config.activation;
        let mut d = d_a;
        for (l, s) in self.layout.pre.iter().enumerate().rev() {
            let d_z = d.zip_map(&cache.pre_zs[l], |g, z| g * act.derivative(z));
            d = linear::backward(params, s, &cache.pre_acts[l], &d_z, grad);
            pause().await;
        }
    }

    /// dL/dh of group g → the shared gradient (experts, gate, pre-layers), pausing after each
    /// expert and pre-layer.
    async fn block_backward(&self, params: &[f64], cache: &ForwardCache, g: usize, d_out: &DMatrix<f64>) -> Vec<f64> {
        let act = self.config.activation;
        let mut grad = vec![0.0; self.layout.shared_len];
        let routing = &cache.routings[g];
        let a = cache.a();
        let (t, n) = (a.nrows(), self.config.experts);
        let mut d_a = d_out.clone(); // the residual path
        let mut d_combine = DMatrix::zeros(t, n);
        for (e, (s, ex)) in self.layout.experts.iter().zip(&cache.experts).enumerate() {
            if routing.dispatch.column(e).iter().all(|&v| v == 0.0) {
                continue; // an empty expert gets no gradient
            }
            let mut d_y = DMatrix::zeros(t, a.ncols());
            for r in 0..t {
                if routing.dispatch[(r, e)] > 0.0 {
                    d_combine[(r, e)] = d_out.row(r).dot(&ex.y.row(r));
                    let w = routing.combine[(r, e)];
                    d_y.row_mut(r).copy_from(&(d_out.row(r) * w));
                }
            }
            let d_u = linear::backward(params, &s.out, &ex.u, &d_y, &mut grad);
            let d_z = d_u.zip_map(&ex.z, |g, z| g * act.derivative(z));
            d_a += linear::backward(params, &s.hidden, a, &d_z, &mut grad);
            pause().await;
        }
        let (d_h, d_raw) = selection::backward(&self.config.router, routing, &d_combine);
        d_a += self.gate_backward(params, cache, g, &d_h, &d_raw, &mut grad);
        self.pre_backward(params, cache, d_a, &mut grad).await;
        grad
    }

    /// Raw head outputs per task, without routing noise.
    pub fn forward(&self, params: &[f64], x: &DMatrix<f64>) -> Result<Vec<DMatrix<f64>>, String> {
        finish(self.forward_paused(params, x))
    }

    /// [`Moe::forward`], pausing between layers, experts and gate groups.
    pub async fn forward_paused(&self, params: &[f64], x: &DMatrix<f64>) -> Result<Vec<DMatrix<f64>>, String> {
        self.check_inputs(params, x)?;
        if let Some(a) = &self.arch {
            return Ok(a.forward(params, x).await);
        }
        let cache = self.run_forward(params, x, None).await;
        Ok(self
            .layout
            .heads
            .iter()
            .enumerate()
            .map(|(t, s)| linear::forward(params, s, &cache.outputs[self.group_of(t)]))
            .collect())
    }

    pub fn losses(&self, params: &[f64], x: &DMatrix<f64>, targets: &[Target]) -> Result<Vec<f64>, String> {
        finish(self.losses_paused(params, x, targets))
    }

    /// [`Moe::losses`], pausing between layers, experts and gate groups.
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

    /// The routing of each task (noise-free), e.g. for the winning-expert map.
    pub fn routings(&self, params: &[f64], x: &DMatrix<f64>) -> Result<Vec<Routing>, String> {
        self.check_inputs(params, x)?;
        if let Some(a) = &self.arch {
            return Ok(finish(a.routings(params, x)));
        }
        let cache = finish(self.run_forward(params, x, None));
        Ok((0..self.num_tasks()).map(|t| cache.routings[self.group_of(t)].clone()).collect())
    }

    /// Per task, the winning expert (largest combine weight; `None` when no expert took the
    /// point) of every 2-D point.
    pub fn winning_experts(&self, params: &[f64], points: &[[f64; 2]]) -> Result<Vec<Vec<Option<usize>>>, String> {
        let x = DMatrix::from_fn(points.len(), 2, |r, c| points[r][c]);
        Ok(self.routings(params, &x)?.iter().map(Routing::winners).collect())
    }

    /// The aux-loss values (noise-free), for checks and display.
    pub fn aux_values(&self, params: &[f64], x: &DMatrix<f64>, noise_seed: Option<u64>) -> Result<AuxValues, String> {
        self.check_inputs(params, x)?;
        if let Some(a) = &self.arch {
            return Ok(finish(a.aux_values(params, x)));
        }
        let cache = finish(self.run_forward(params, x, noise_seed));
        let group_of: Vec<usize> = (0..self.num_tasks()).map(|t| self.group_of(t)).collect();
        Ok(aux_losses(&self.config.router, &self.config.aux, &cache.routings, &group_of).0)
    }

    /// Task losses with the routing noise of `noise_seed` (for finite-difference checks).
    pub fn losses_with_noise(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        targets: &[Target],
        noise_seed: Option<u64>,
    ) -> Result<Vec<f64>, String> {
        self.check_inputs(params, x)?;
        self.check_targets(x, targets)?;
        if self.arch.is_some() {
            return self.losses(params, x, targets);
        }
        let cache = finish(self.run_forward(params, x, noise_seed));
        Ok((0..self.num_tasks())
            .map(|t| {
                let o = linear::forward(params, &self.layout.heads[t], &cache.outputs[self.group_of(t)]);
                loss_and_grad(self.config.heads[t].loss, &o, &targets[t]).0
            })
            .collect())
    }

    /// Losses, the per-task shared Jacobian, the heads' gradients, the aux gradient and the
    /// routing statistics of one mini-batch. `noise_seed`: routing noise (training) or none.
    pub fn gradients(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        targets: &[Target],
        noise_seed: Option<u64>,
    ) -> Result<MoeGradients, String> {
        finish(self.gradients_paused(params, x, targets, noise_seed))
    }

    /// [`Moe::gradients`], pausing after each pre-layer, expert and gate group of the forward
    /// pass and of each task's backward pass (the same operations in the same order: the same
    /// numbers).
    pub async fn gradients_paused(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        targets: &[Target],
        noise_seed: Option<u64>,
    ) -> Result<MoeGradients, String> {
        self.check_inputs(params, x)?;
        self.check_targets(x, targets)?;
        if let Some(a) = &self.arch {
            let (tasks, aux_grad, stats) = a.gradients(params, x, targets).await;
            return Ok(MoeGradients { tasks, aux_grad, stats });
        }
        let cache = self.run_forward(params, x, noise_seed).await;
        let m = self.num_tasks();
        let mut tasks = Gradients {
            losses: Vec::with_capacity(m),
            shared_jacobian: DMatrix::zeros(m, self.layout.shared_len),
            head_grads: Vec::with_capacity(m),
        };
        for (t, s) in self.layout.heads.iter().enumerate() {
            let g = self.group_of(t);
            let h = &cache.outputs[g];
            let (loss, d_o) = loss_and_grad(self.config.heads[t].loss, &linear::forward(params, s, h), &targets[t]);
            tasks.losses.push(loss);
            let mut head = h.tr_mul(&d_o).as_slice().to_vec();
            head.extend((0..s.fan_out).map(|j| d_o.column(j).sum()));
            let d_h = &d_o * linear::weight_t(params, s).transpose();
            let row = self.block_backward(params, &cache, g, &d_h).await;
            tasks.shared_jacobian.row_mut(t).copy_from_slice(&row);
            tasks.head_grads.push(head);
        }
        let group_of: Vec<usize> = (0..m).map(|t| self.group_of(t)).collect();
        let (aux, aux_logit_grads) = aux_losses(&self.config.router, &self.config.aux, &cache.routings, &group_of);
        let mut aux_grad = vec![0.0; self.layout.shared_len];
        if aux.total != 0.0 || aux_logit_grads.iter().any(|(a, b)| a.iter().chain(b.iter()).any(|v| *v != 0.0)) {
            let mut d_a = DMatrix::zeros(cache.a().nrows(), self.config.width());
            for (g, (d_h, d_raw)) in aux_logit_grads.iter().enumerate() {
                d_a += self.gate_backward(params, &cache, g, d_h, d_raw, &mut aux_grad);
            }
            self.pre_backward(params, &cache, d_a, &mut aux_grad).await;
        }
        let stats = RoutingStats::from_routings(&cache.routings, &group_of, aux);
        Ok(MoeGradients { tasks, aux_grad, stats })
    }
}
