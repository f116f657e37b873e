//! The engine of the task-gated architectures (CGC, PLE, DSelect-k): levels of experts mixed by
//! one gate per task (and, below PLE's last level, a shared gate), with hand-written backprop.
//! `cgc.rs`, `ple.rs` and `dselect_k.rs` say which levels, experts and gates each one uses.
//!
//! Level j reads task streams h_k^{j−1} and a shared stream h_s^{j−1} (h⁰ = a, the pre-layers'
//! output). Shared experts read h_s, task-k experts read h_k. Task k's gate reads h_k and mixes
//! [shared experts; task-k experts] (shared first, as LibMTL); the shared gate reads h_s and
//! mixes [shared; task 1; …; task m]. Every mixture is the MoE module's residual block:
//! h^j = h^{j−1} + Σ_c p_c·e_c, so an architecture's experts are the MoE block's experts
//! (H → expert_hidden → H) and its towers are the MoE model's linear heads.
//!
//! **Which parameters are shared (the columns of J).** Exactly those more than one task's loss
//! depends on: the pre-layers, every shared expert, the shared gates, and the task experts a
//! shared gate reads (PLE's level-1 task experts). Each task's gates, its last-level experts
//! and its head are task-owned: they form one contiguous block after the shared part and get
//! that task's gradient only, like an MLP head (`head_grads[t]`).

use super::config::{MoeConfig, RouterKind};
use super::layout::{ExpertSlice, GateSlice, MoeLayout};
use super::routing::{softmax_backward, softmax_rows, Routing};
use super::stats::{matrix_rows, RoutingStats, TaskRouting};
use super::{dselect_k, linear, mutual_info, AuxValues, ExpertGroup};
use crate::model::{loss_and_grad, Activation, Gradients, LayerSlice, Target};
use crate::pause::pause;
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ops::Range;

/// How a gate turns its input into mixture weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GateKind {
    /// p = softmax(W·in + b) (LibMTL's `nn.Linear` + softmax).
    Softmax,
    /// DSelect-k per-example gate: z = Linear(in → k·b), w = Linear(in → k).
    DselectK { k: usize, gamma: f64 },
}

/// The shape of one architecture.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    pub levels: usize,
    pub task_experts: usize,
    pub gate: GateKind,
}

impl Plan {
    pub fn of(router: &RouterKind) -> Option<Plan> {
        match *router {
            RouterKind::Cgc { task_experts } => Some(super::cgc::plan(task_experts)),
            RouterKind::Ple { task_experts } => Some(super::ple::plan(task_experts)),
            RouterKind::DselectK { k, gamma } => {
                Some(Plan { levels: 1, task_experts: 0, gate: GateKind::DselectK { k, gamma } })
            }
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Gate {
    /// Softmax: the logits layer. DSelect-k: the selector layer z.
    z: LayerSlice,
    /// DSelect-k: the selector-weight layer w.
    w: Option<LayerSlice>,
}

#[derive(Clone, Debug, PartialEq)]
struct Level {
    shared: Vec<ExpertSlice>,
    /// [task][i].
    task: Vec<Vec<ExpertSlice>>,
    task_gates: Vec<Gate>,
    shared_gate: Option<Gate>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum InitRule {
    /// He (ReLU/GELU) or Glorot, like the MoE's pre-layers and expert hidden layers.
    Hidden,
    Glorot,
    Head,
    /// Weights and biases U(−b, b): `nn.Linear`'s default b = 1/√fan_in, or DSelect-k's.
    Uniform(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Extraction {
    config: MoeConfig,
    plan: Plan,
    pre: Vec<LayerSlice>,
    levels: Vec<Level>,
    heads: Vec<LayerSlice>,
    task_ranges: Vec<Range<usize>>,
    init: Vec<(LayerSlice, InitRule)>,
    layout: MoeLayout,
}

struct ExpertAct {
    z: DMatrix<f64>,
    u: DMatrix<f64>,
    y: DMatrix<f64>,
}

struct GateAct {
    input: DMatrix<f64>,
    z: DMatrix<f64>,
    w: Option<DMatrix<f64>>,
    /// T × candidates: p (softmax) or q (DSelect-k).
    weights: DMatrix<f64>,
}

struct LevelAct {
    /// h_k^{j−1} per task and h_s^{j−1}: what the level's experts and gates read.
    task_in: Vec<DMatrix<f64>>,
    shared_in: DMatrix<f64>,
    shared: Vec<ExpertAct>,
    task: Vec<Vec<ExpertAct>>,
    task_gates: Vec<GateAct>,
    shared_gate: Option<GateAct>,
}

struct Cache {
    pre_zs: Vec<DMatrix<f64>>,
    pre_acts: Vec<DMatrix<f64>>,
    levels: Vec<LevelAct>,
    /// h_k^L per task: what head k reads.
    outputs: Vec<DMatrix<f64>>,
}

/// Per-candidate d(output) of every expert of a level: [shared] and [task][i].
struct ExpertGrads {
    shared: Vec<Option<DMatrix<f64>>>,
    task: Vec<Vec<Option<DMatrix<f64>>>>,
}

fn add_to(slot: &mut Option<DMatrix<f64>>, v: DMatrix<f64>) {
    match slot {
        Some(s) => *s += v,
        None => *slot = Some(v),
    }
}

impl Extraction {
    pub fn new(config: &MoeConfig, plan: Plan) -> Self {
        let mut b = Builder::default();
        let mut pre = Vec::new();
        let mut fan_in = config.input_dim;
        for (l, &w) in config.hidden.iter().enumerate() {
            pre.push(b.layer(format!("pre.{l}"), fan_in, w, InitRule::Hidden));
            fan_in = w;
        }
        let (width, m, ns, nt) = (config.width(), config.heads.len(), config.experts, plan.task_experts);
        let expert = |b: &mut Builder, name: String| ExpertSlice {
            hidden: b.layer(format!("{name}.0"), width, config.expert_hidden, InitRule::Hidden),
            out: b.layer(format!("{name}.1"), config.expert_hidden, width, InitRule::Glorot),
        };
        let gate_default = InitRule::Uniform(1.0 / (width as f64).sqrt());
        let mut levels: Vec<Level> = Vec::new();
        // The shared part, level by level.
        for j in 0..plan.levels {
            let last = j + 1 == plan.levels;
            let shared = (0..ns).map(|e| expert(&mut b, format!("l{j}.shared.{e}"))).collect();
            let shared_gate = (!last)
                .then(|| Gate { z: b.layer(format!("l{j}.gate.shared"), width, ns + m * nt, gate_default), w: None });
            let task = if last {
                vec![Vec::new(); m]
            } else {
                (0..m).map(|t| (0..nt).map(|e| expert(&mut b, format!("l{j}.task{t}.{e}"))).collect()).collect()
            };
            levels.push(Level { shared, task, task_gates: Vec::new(), shared_gate });
        }
        let shared_len = b.offset;
        // The task-owned blocks: gates of every level, the last level's experts, the head.
        let mut heads = Vec::new();
        let mut task_ranges = Vec::new();
        for t in 0..m {
            let start = b.offset;
            for (j, level) in levels.iter_mut().enumerate() {
                let gate = match plan.gate {
                    GateKind::Softmax => {
                        Gate { z: b.layer(format!("l{j}.gate.task{t}"), width, ns + nt, gate_default), w: None }
                    }
                    GateKind::DselectK { k, gamma } => Gate {
                        z: b.layer(
                            format!("l{j}.gate.task{t}.z"),
                            width,
                            k * dselect_k::selector_bits(ns),
                            InitRule::Uniform(gamma / 100.0),
                        ),
                        w: Some(b.layer(format!("l{j}.gate.task{t}.w"), width, k, InitRule::Uniform(0.05))),
                    },
                };
                level.task_gates.push(gate);
                if j + 1 == plan.levels {
                    level.task[t] = (0..nt).map(|e| expert(&mut b, format!("l{j}.task{t}.{e}"))).collect();
                }
            }
            heads.push(b.layer(format!("head.{t}"), width, config.heads[t].out_dim, InitRule::Head));
            task_ranges.push(start..b.offset);
        }
        let (total_len, init) = (b.offset, b.init);
        let layout = MoeLayout {
            pre: pre.clone(),
            gates: levels
                .iter()
                .filter_map(|l| l.shared_gate.as_ref().map(|g| GateSlice { weight: g.z.clone(), noise: None }))
                .collect(),
            experts: levels
                .iter()
                .flat_map(|l| l.shared.iter().chain(l.task.iter().flatten()))
                .filter(|e| e.out.bias.end <= shared_len)
                .cloned()
                .collect(),
            heads: heads.clone(),
            shared_len,
            total_len,
            task_ranges: task_ranges.clone(),
        };
        Extraction { config: config.clone(), plan, pre, levels, heads, task_ranges, init, layout }
    }

    pub fn layout(&self) -> &MoeLayout {
        &self.layout
    }

    fn m(&self) -> usize {
        self.config.heads.len()
    }

    /// One ChaCha8 stream in layout order; biases 0 except the `nn.Linear`-style gates.
    pub fn init_params(&self, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p = vec![0.0; self.layout.total_len];
        let he = matches!(self.config.activation, Activation::Relu | Activation::Gelu);
        for (s, rule) in &self.init {
            let glorot = (6.0 / (s.fan_in + s.fan_out) as f64).sqrt();
            let (bound, bias) = match *rule {
                InitRule::Hidden if he => ((6.0 / s.fan_in as f64).sqrt(), false),
                InitRule::Hidden | InitRule::Glorot => (glorot, false),
                InitRule::Head => (self.config.head_init_scale * glorot, false),
                InitRule::Uniform(b) => (b, true),
            };
            let t = self.heads.iter().position(|h| h == s);
            if let (true, Some(t)) = (self.config.tied_head_init, t.filter(|&t| t > 0)) {
                let src = self.heads[0].weight.clone();
                p.copy_within(src, self.heads[t].weight.start);
                continue;
            }
            let range = if bias { s.weight.start..s.bias.end } else { s.weight.clone() };
            for v in &mut p[range] {
                *v = rng.random_range(-bound..bound);
            }
        }
        p
    }

    /// Gate weights (p or q) of a gate on its input.
    fn gate_forward(&self, params: &[f64], gate: &Gate, input: &DMatrix<f64>, candidates: usize) -> GateAct {
        let z = linear::forward(params, &gate.z, input);
        match (self.plan.gate, &gate.w) {
            (GateKind::DselectK { gamma, .. }, Some(ws)) => {
                let w = linear::forward(params, ws, input);
                let mut q = DMatrix::zeros(input.nrows(), candidates);
                for r in 0..input.nrows() {
                    let zr: Vec<f64> = z.row(r).iter().copied().collect();
                    let wr: Vec<f64> = w.row(r).iter().copied().collect();
                    for (c, v) in dselect_k::weights(&zr, &wr, candidates, gamma).into_iter().enumerate() {
                        q[(r, c)] = v;
                    }
                }
                GateAct { input: input.clone(), z, w: Some(w), weights: q }
            }
            _ => {
                let p = softmax_rows(&z);
                GateAct { input: input.clone(), z, w: None, weights: p }
            }
        }
    }

    /// dL/d(weights) → the gate's parameter gradient; returns dL/d(input).
    fn gate_backward(
        &self,
        params: &[f64],
        gate: &Gate,
        act: &GateAct,
        d_weights: &DMatrix<f64>,
        grad: &mut [f64],
    ) -> DMatrix<f64> {
        match (self.plan.gate, &gate.w, &act.w) {
            (GateKind::DselectK { gamma, .. }, Some(ws), Some(w)) => {
                let (t, n) = d_weights.shape();
                let mut d_z = DMatrix::zeros(t, act.z.ncols());
                let mut d_w = DMatrix::zeros(t, w.ncols());
                for r in 0..t {
                    let zr: Vec<f64> = act.z.row(r).iter().copied().collect();
                    let wr: Vec<f64> = w.row(r).iter().copied().collect();
                    let dq: Vec<f64> = (0..n).map(|c| d_weights[(r, c)]).collect();
                    let (dz, dw) = dselect_k::weights_backward(&zr, &wr, n, gamma, &dq);
                    d_z.row_mut(r).iter_mut().zip(dz).for_each(|(a, b)| *a = b);
                    d_w.row_mut(r).iter_mut().zip(dw).for_each(|(a, b)| *a = b);
                }
                linear::backward(params, &gate.z, &act.input, &d_z, grad)
                    + linear::backward(params, ws, &act.input, &d_w, grad)
            }
            _ => {
                let d_logits = softmax_backward(&act.weights, d_weights);
                linear::backward(params, &gate.z, &act.input, &d_logits, grad)
            }
        }
    }

    fn expert_forward(&self, params: &[f64], s: &ExpertSlice, input: &DMatrix<f64>) -> ExpertAct {
        let act = self.config.activation;
        let z = linear::forward(params, &s.hidden, input);
        let u = z.map(|v| act.apply(v));
        let y = linear::forward(params, &s.out, &u);
        ExpertAct { z, u, y }
    }

    fn expert_backward(
        &self,
        params: &[f64],
        s: &ExpertSlice,
        a: &ExpertAct,
        input: &DMatrix<f64>,
        d_y: &DMatrix<f64>,
        grad: &mut [f64],
    ) -> DMatrix<f64> {
        let act = self.config.activation;
        let d_u = linear::backward(params, &s.out, &a.u, d_y, grad);
        let d_z = d_u.zip_map(&a.z, |g, z| g * act.derivative(z));
        linear::backward(params, &s.hidden, input, &d_z, grad)
    }

    async fn run_forward(&self, params: &[f64], x: &DMatrix<f64>) -> Cache {
        let act = self.config.activation;
        let mut pre_zs = Vec::new();
        let mut pre_acts = vec![x.clone()];
        for s in &self.pre {
            let z = linear::forward(params, s, pre_acts.last().expect("non-empty"));
            pre_acts.push(z.map(|v| act.apply(v)));
            pre_zs.push(z);
            pause().await;
        }
        let a = pre_acts.last().expect("non-empty").clone();
        let m = self.m();
        let mut task_in = vec![a.clone(); m];
        let mut shared_in = a;
        let mut levels = Vec::new();
        for level in &self.levels {
            let shared: Vec<ExpertAct> =
                level.shared.iter().map(|s| self.expert_forward(params, s, &shared_in)).collect();
            let task: Vec<Vec<ExpertAct>> = level
                .task
                .iter()
                .zip(&task_in)
                .map(|(es, h)| es.iter().map(|s| self.expert_forward(params, s, h)).collect())
                .collect();
            pause().await;
            let mut task_gates = Vec::new();
            let mut task_out = Vec::new();
            for (k, gate) in level.task_gates.iter().enumerate() {
                let g = self.gate_forward(params, gate, &task_in[k], shared.len() + task[k].len());
                task_out.push(mix(&task_in[k], &g.weights, shared.iter().chain(&task[k])));
                task_gates.push(g);
            }
            let shared_gate = level
                .shared_gate
                .as_ref()
                .map(|gate| self.gate_forward(params, gate, &shared_in, shared.len() + m * self.plan.task_experts));
            let shared_out = match &shared_gate {
                Some(g) => mix(&shared_in, &g.weights, shared.iter().chain(task.iter().flatten())),
                None => shared_in.clone(),
            };
            let task_in = std::mem::replace(&mut task_in, task_out);
            let shared_in = std::mem::replace(&mut shared_in, shared_out);
            levels.push(LevelAct { task_in, shared_in, shared, task, task_gates, shared_gate });
            pause().await;
        }
        Cache { pre_zs, pre_acts, levels, outputs: task_in }
    }

    /// dL/d(h_t^L) of one task → the full-length gradient (shared part and task blocks).
    async fn backward(&self, params: &[f64], cache: &Cache, t: usize, d_out: DMatrix<f64>, grad: &mut [f64]) {
        let m = self.m();
        let mut d_task: Vec<Option<DMatrix<f64>>> = vec![None; m];
        d_task[t] = Some(d_out);
        let mut d_shared: Option<DMatrix<f64>> = None;
        for (level, la) in self.levels.iter().zip(&cache.levels).rev() {
            // The residual paths.
            let mut d_task_in = d_task.clone();
            let mut d_shared_in = d_shared.clone();
            let mut dy = ExpertGrads {
                shared: vec![None; level.shared.len()],
                task: level.task.iter().map(|v| vec![None; v.len()]).collect(),
            };
            for k in 0..m {
                let Some(d) = &d_task[k] else { continue };
                let ga = &la.task_gates[k];
                let ys: Vec<&DMatrix<f64>> = la.shared.iter().chain(&la.task[k]).map(|e| &e.y).collect();
                let dp = mix_backward(d, &ga.weights, &ys, |c, v| {
                    if c < level.shared.len() {
                        add_to(&mut dy.shared[c], v)
                    } else {
                        add_to(&mut dy.task[k][c - level.shared.len()], v)
                    }
                });
                add_to(&mut d_task_in[k], self.gate_backward(params, &level.task_gates[k], ga, &dp, grad));
            }
            if let (Some(d), Some(gate), Some(ga)) = (&d_shared, &level.shared_gate, &la.shared_gate) {
                let ys: Vec<&DMatrix<f64>> = la.shared.iter().chain(la.task.iter().flatten()).map(|e| &e.y).collect();
                let (ns, nt) = (level.shared.len(), self.plan.task_experts);
                let dp = mix_backward(d, &ga.weights, &ys, |c, v| {
                    if c < ns {
                        add_to(&mut dy.shared[c], v)
                    } else {
                        add_to(&mut dy.task[(c - ns) / nt][(c - ns) % nt], v)
                    }
                });
                add_to(&mut d_shared_in, self.gate_backward(params, gate, ga, &dp, grad));
            }
            for ((s, a), d) in level.shared.iter().zip(&la.shared).zip(&dy.shared) {
                if let Some(d) = d {
                    add_to(&mut d_shared_in, self.expert_backward(params, s, a, &la.shared_in, d, grad));
                }
            }
            for (k, slot) in d_task_in.iter_mut().enumerate() {
                for ((s, a), d) in level.task[k].iter().zip(&la.task[k]).zip(&dy.task[k]) {
                    if let Some(d) = d {
                        add_to(slot, self.expert_backward(params, s, a, &la.task_in[k], d, grad));
                    }
                }
            }
            d_task = d_task_in;
            d_shared = d_shared_in;
            pause().await;
        }
        // Level 1 reads a in every stream.
        let a = cache.pre_acts.last().expect("non-empty");
        let mut d_a = DMatrix::zeros(a.nrows(), a.ncols());
        for d in d_task.into_iter().chain(std::iter::once(d_shared)).flatten() {
            d_a += d;
        }
        self.pre_backward(params, cache, d_a, grad).await;
    }

    async fn pre_backward(&self, params: &[f64], cache: &Cache, d_a: DMatrix<f64>, grad: &mut [f64]) {
        let act = self.config.activation;
        let mut d = d_a;
        for (l, s) in self.pre.iter().enumerate().rev() {
            let d_z = d.zip_map(&cache.pre_zs[l], |g, z| g * act.derivative(z));
            d = linear::backward(params, s, &cache.pre_acts[l], &d_z, grad);
            pause().await;
        }
    }

    pub async fn forward(&self, params: &[f64], x: &DMatrix<f64>) -> Vec<DMatrix<f64>> {
        let cache = self.run_forward(params, x).await;
        self.heads.iter().zip(&cache.outputs).map(|(s, h)| linear::forward(params, s, h)).collect()
    }

    /// Task losses, the shared Jacobian and each task's block gradient, the regularisers'
    /// gradient (full length) and the routing stats.
    pub async fn gradients(
        &self,
        params: &[f64],
        x: &DMatrix<f64>,
        targets: &[Target],
    ) -> (Gradients, Vec<f64>, RoutingStats) {
        let cache = self.run_forward(params, x).await;
        let m = self.m();
        let shared_len = self.layout.shared_len;
        let mut tasks = Gradients {
            losses: Vec::with_capacity(m),
            shared_jacobian: DMatrix::zeros(m, shared_len),
            head_grads: Vec::with_capacity(m),
        };
        for t in 0..m {
            let h = &cache.outputs[t];
            let s = &self.heads[t];
            let (loss, d_o) = loss_and_grad(self.config.heads[t].loss, &linear::forward(params, s, h), &targets[t]);
            tasks.losses.push(loss);
            let mut grad = vec![0.0; self.layout.total_len];
            let d_h = linear::backward(params, s, h, &d_o, &mut grad);
            self.backward(params, &cache, t, d_h, &mut grad).await;
            tasks.shared_jacobian.row_mut(t).copy_from_slice(&grad[..shared_len]);
            tasks.head_grads.push(grad[self.task_ranges[t].clone()].to_vec());
        }
        let (aux, aux_grad) = self.regularisers(params, &cache).await;
        let routings = self.routings_of(&cache);
        let probs: Vec<&DMatrix<f64>> = routings.iter().map(|r| &r.probs).collect();
        let joint = mutual_info::joint(&probs);
        let stats = RoutingStats {
            tasks: routings.iter().map(TaskRouting::from_routing).collect(),
            task_expert: matrix_rows(&joint),
            aux: AuxValues { mutual_information: mutual_info::mutual_information(&joint), ..aux },
        };
        (tasks, aux_grad, stats)
    }

    /// DSelect-k's entropy (weight `aux.entropy`) and non-power-of-2 term (weight 1), each a mean
    /// over tokens summed over the task gates; 0 and no gradient for softmax gates.
    async fn regularisers(&self, params: &[f64], cache: &Cache) -> (AuxValues, Vec<f64>) {
        let mut grad = vec![0.0; self.layout.total_len];
        let mut v = AuxValues::default();
        let GateKind::DselectK { gamma, .. } = self.plan.gate else { return (v, grad) };
        let lambda = self.config.aux.entropy;
        let a = cache.pre_acts.last().expect("non-empty");
        let mut d_a = DMatrix::zeros(a.nrows(), a.ncols());
        let n = self.config.experts;
        for (gate, ga) in self.levels[0].task_gates.iter().zip(&cache.levels[0].task_gates) {
            let tokens = ga.z.nrows() as f64;
            let mut d_z = DMatrix::zeros(ga.z.nrows(), ga.z.ncols());
            for r in 0..ga.z.nrows() {
                let zr: Vec<f64> = ga.z.row(r).iter().copied().collect();
                let (e, de) = dselect_k::entropy(&zr, n, gamma);
                let (mm, dm) = dselect_k::missing_mass(&zr, n, gamma);
                v.selector_entropy += e / tokens;
                v.missing_mass += mm / tokens;
                for c in 0..zr.len() {
                    d_z[(r, c)] = (lambda * de[c] + dm[c]) / tokens;
                }
            }
            if d_z.iter().any(|x| *x != 0.0) {
                d_a += linear::backward(params, &gate.z, &ga.input, &d_z, &mut grad);
            }
        }
        v.total = lambda * v.selector_entropy + v.missing_mass;
        if v.total != 0.0 || d_a.iter().any(|x| *x != 0.0) {
            self.pre_backward(params, cache, d_a, &mut grad).await;
        }
        (v, grad)
    }

    /// Per task, the last level's gate weights over that level's experts, numbered
    /// [shared; task 1's; …; task m's] (0 on other tasks' experts).
    fn routings_of(&self, cache: &Cache) -> Vec<Routing> {
        let la = cache.levels.last().expect("at least one level");
        let (ns, nt, m) = (la.shared.len(), self.plan.task_experts, self.m());
        let total = ns + m * nt;
        (0..m)
            .map(|k| {
                let w = &la.task_gates[k].weights;
                let t = w.nrows();
                let probs = DMatrix::from_fn(t, total, |r, c| {
                    if c < ns {
                        w[(r, c)]
                    } else if (c - ns) / nt == k {
                        w[(r, ns + (c - ns) % nt)]
                    } else {
                        0.0
                    }
                });
                Routing {
                    logits: probs.clone(),
                    combine: probs.clone(),
                    dispatch: probs.map(|v| f64::from(u8::from(v > 0.0))),
                    probs,
                    capacity: None,
                    dropped: 0,
                    noise: None,
                }
            })
            .collect()
    }

    pub async fn routings(&self, params: &[f64], x: &DMatrix<f64>) -> Vec<Routing> {
        let cache = self.run_forward(params, x).await;
        self.routings_of(&cache)
    }

    /// Every expert, numbered as `Moe::hidden_activations` numbers them after the pre-layers:
    /// first the shared-parameter experts in `layout.experts` order (level by level: the shared
    /// experts, then — below the last level — each task's experts, which a shared gate reads),
    /// then each task's task-owned experts (the last level's), task by task.
    pub fn expert_groups(&self) -> Vec<ExpertGroup> {
        let last = self.levels.len().saturating_sub(1);
        let mut shared = Vec::new();
        let mut owned = Vec::new();
        for (j, level) in self.levels.iter().enumerate() {
            for (i, x) in level.shared.iter().enumerate() {
                shared.push(ExpertGroup { level: j, task: None, index: i, shared: true, expert: x.clone() });
            }
            for (t, experts) in level.task.iter().enumerate() {
                for (i, x) in experts.iter().enumerate() {
                    let g = ExpertGroup { level: j, task: Some(t), index: i, shared: j != last, expert: x.clone() };
                    if g.shared {
                        shared.push(g);
                    } else {
                        owned.push(g);
                    }
                }
            }
        }
        shared.extend(owned);
        shared
    }

    /// φ(z) of every expert's hidden layer at the rows of x, in `expert_groups` order, each on
    /// the stream it reads (shared experts h_s, task-k experts h_k; PLE's level 2 reads level 1's
    /// mixtures).
    pub async fn expert_activations(&self, params: &[f64], x: &DMatrix<f64>) -> Vec<DMatrix<f64>> {
        let cache = self.run_forward(params, x).await;
        self.expert_groups()
            .iter()
            .map(|g| {
                let la = &cache.levels[g.level];
                match g.task {
                    None => la.shared[g.index].u.clone(),
                    Some(t) => la.task[t][g.index].u.clone(),
                }
            })
            .collect()
    }

    pub async fn aux_values(&self, params: &[f64], x: &DMatrix<f64>) -> AuxValues {
        let cache = self.run_forward(params, x).await;
        self.regularisers(params, &cache).await.0
    }
}

impl super::model::Moe {
    /// A task-gated architecture's gates, `[task][level]`: the logits (softmax) or selector z
    /// layer and DSelect-k's selector-weight layer w (empty for the routers). The GPU trainer
    /// reads the task-owned gates from here.
    pub fn task_gate_layers(&self) -> Vec<Vec<(LayerSlice, Option<LayerSlice>)>> {
        let Some(a) = self.arch() else { return Vec::new() };
        (0..a.m())
            .map(|t| a.levels.iter().map(|l| (l.task_gates[t].z.clone(), l.task_gates[t].w.clone())).collect())
            .collect()
    }
}

/// in + Σ_c w[:, c] ⊙ e_c.
fn mix<'a>(input: &DMatrix<f64>, w: &DMatrix<f64>, experts: impl Iterator<Item = &'a ExpertAct>) -> DMatrix<f64> {
    let mut h = input.clone();
    for (c, e) in experts.enumerate() {
        for r in 0..h.nrows() {
            let wc = w[(r, c)];
            if wc != 0.0 {
                for col in 0..h.ncols() {
                    h[(r, col)] += wc * e.y[(r, col)];
                }
            }
        }
    }
    h
}

/// Backward of the mixture for dL/dh: hands each candidate's dL/de_c to `to_expert` and
/// returns dL/dw (T × candidates).
fn mix_backward(
    d: &DMatrix<f64>,
    w: &DMatrix<f64>,
    ys: &[&DMatrix<f64>],
    mut to_expert: impl FnMut(usize, DMatrix<f64>),
) -> DMatrix<f64> {
    let mut dw = DMatrix::zeros(d.nrows(), ys.len());
    for (c, y) in ys.iter().enumerate() {
        let mut de = d.clone();
        for r in 0..d.nrows() {
            dw[(r, c)] = d.row(r).dot(&y.row(r));
            de.row_mut(r).scale_mut(w[(r, c)]);
        }
        to_expert(c, de);
    }
    dw
}

/// Lays blocks out one after another (W row-major, then b) and remembers how to draw each.
#[derive(Default)]
struct Builder {
    offset: usize,
    init: Vec<(LayerSlice, InitRule)>,
}

impl Builder {
    fn layer(&mut self, name: String, fan_in: usize, fan_out: usize, rule: InitRule) -> LayerSlice {
        let w = self.offset..self.offset + fan_in * fan_out;
        let b = w.end..w.end + fan_out;
        self.offset = b.end;
        let s = LayerSlice { name, fan_in, fan_out, weight: w, bias: b };
        self.init.push((s.clone(), rule));
        s
    }
}

#[cfg(test)]
#[path = "arch_tests.rs"]
mod tests;
