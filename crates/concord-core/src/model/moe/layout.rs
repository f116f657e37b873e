//! Where every block of the MoE model lives in the flat parameter vector.
//!
//! Order: dense pre-layers, gates (per gate: W_g, E × gate_in, no bias; then W_noise for noisy
//! top-k), experts (per expert: H → expert_hidden, then expert_hidden → H), then the heads.
//! Everything before the heads is shared (`0..shared_len`): the per-task Jacobian covers it.

use super::config::{Gating, MoeConfig};
use crate::model::{Activation, LayerSlice};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSlice {
    pub weight: LayerSlice,
    pub noise: Option<LayerSlice>,
}

impl GateSlice {
    pub fn range(&self) -> Range<usize> {
        self.weight.weight.start..self.noise.as_ref().map_or(self.weight.bias.end, |n| n.bias.end)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpertSlice {
    pub hidden: LayerSlice,
    pub out: LayerSlice,
}

impl ExpertSlice {
    pub fn range(&self) -> Range<usize> {
        self.hidden.weight.start..self.out.bias.end
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoeLayout {
    pub pre: Vec<LayerSlice>,
    pub gates: Vec<GateSlice>,
    pub experts: Vec<ExpertSlice>,
    pub heads: Vec<LayerSlice>,
    pub shared_len: usize,
    pub total_len: usize,
    /// CGC/PLE/DSelect-k: each task's owned block (gates, task experts, head), contiguous after
    /// the shared part. Empty for the routers, whose task-owned block is the head alone.
    #[serde(default)]
    pub task_ranges: Vec<Range<usize>>,
}

impl MoeLayout {
    pub fn new(config: &MoeConfig) -> Self {
        let mut offset = 0;
        let mut layer = |name: String, fan_in: usize, fan_out: usize, bias: bool| {
            let w = offset..offset + fan_in * fan_out;
            let b = w.end..w.end + if bias { fan_out } else { 0 };
            offset = b.end;
            LayerSlice { name, fan_in, fan_out, weight: w, bias: b }
        };
        let mut pre = Vec::new();
        let mut fan_in = config.input_dim;
        for (l, &w) in config.hidden.iter().enumerate() {
            pre.push(layer(format!("pre.{l}"), fan_in, w, true));
            fan_in = w;
        }
        let width = config.width();
        let m = config.heads.len();
        let (gates, gate_in) = match config.router.gating() {
            Gating::Shared => (1, width),
            Gating::PerTask => (m, width),
            Gating::TaskEmbedding => (1, width + m),
        };
        let gates = (0..gates)
            .map(|g| GateSlice {
                weight: layer(format!("gate.{g}"), gate_in, config.experts, false),
                noise: config
                    .router
                    .is_noisy()
                    .then(|| layer(format!("gate.{g}.noise"), gate_in, config.experts, false)),
            })
            .collect();
        let experts: Vec<ExpertSlice> = (0..config.experts)
            .map(|e| ExpertSlice {
                hidden: layer(format!("expert.{e}.0"), width, config.expert_hidden, true),
                out: layer(format!("expert.{e}.1"), config.expert_hidden, width, true),
            })
            .collect();
        let shared_len = experts.last().map_or(0, |x: &ExpertSlice| x.out.bias.end);
        let heads = config
            .heads
            .iter()
            .enumerate()
            .map(|(t, h)| layer(format!("head.{t}"), width, h.out_dim, true))
            .collect::<Vec<_>>();
        let total_len = heads.last().map_or(shared_len, |s| s.bias.end);
        MoeLayout { pre, gates, experts, heads, shared_len, total_len, task_ranges: Vec::new() }
    }

    /// Named blocks of the shared parameters (pre-layers, gates, experts), for per-block metrics.
    pub fn shared_blocks(&self) -> Vec<(String, Range<usize>)> {
        let mut out: Vec<(String, Range<usize>)> = self.pre.iter().map(|s| (s.name.clone(), s.range())).collect();
        out.extend(self.gates.iter().map(|g| (g.weight.name.clone(), g.range())));
        out.extend(self.experts.iter().enumerate().map(|(e, x)| (format!("expert.{e}"), x.range())));
        out
    }

    /// Task t's own parameters (what its `head_grads` entry updates).
    pub fn head_range(&self, t: usize) -> Range<usize> {
        self.task_ranges.get(t).cloned().unwrap_or_else(|| self.heads[t].range())
    }
}

/// Seeded initialisation, one ChaCha8 stream in layout order. Biases 0; pre-layers and expert
/// hidden layers He (ReLU/GELU) or Glorot; expert outputs and heads Glorot (heads × head_init_scale,
/// tied to head 0 when asked). Gates: uniform with the Switch init's std √(0.1/fan_in)
/// (bound √(0.3/fan_in)); noisy top-k gates start at 0, as tensor2tensor's do.
pub fn init_params(config: &MoeConfig, layout: &MoeLayout, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = vec![0.0; layout.total_len];
    let he = matches!(config.activation, Activation::Relu | Activation::Gelu);
    let glorot = |s: &LayerSlice| (6.0 / (s.fan_in + s.fan_out) as f64).sqrt();
    let he_bound = |s: &LayerSlice| (6.0 / s.fan_in as f64).sqrt();
    let mut fill = |s: &LayerSlice, bound: f64, p: &mut [f64]| {
        for v in &mut p[s.weight.clone()] {
            *v = rng.random_range(-bound..bound);
        }
    };
    for s in &layout.pre {
        fill(s, if he { he_bound(s) } else { glorot(s) }, &mut p);
    }
    if !config.router.is_noisy() {
        for g in &layout.gates {
            fill(&g.weight, (0.3 / g.weight.fan_in as f64).sqrt(), &mut p);
        }
    }
    for x in &layout.experts {
        fill(&x.hidden, if he { he_bound(&x.hidden) } else { glorot(&x.hidden) }, &mut p);
        fill(&x.out, glorot(&x.out), &mut p);
    }
    for (t, s) in layout.heads.iter().enumerate() {
        if config.tied_head_init && t > 0 {
            let src = layout.heads[0].weight.clone();
            p.copy_within(src, s.weight.start);
        } else {
            fill(s, config.head_init_scale * glorot(s), &mut p);
        }
    }
    p
}
