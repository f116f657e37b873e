//! Where every layer lives in the flat parameter vector, and the seeded initialisation.
//!
//! Order: trunk layers 0…L−1, then heads 0…m−1; each layer is its weight W (fan_out × fan_in,
//! row-major, so z = W·a + b) followed by its bias b. The shared part is the prefix
//! `0..shared_len`; each head is one contiguous block after it.

use super::activation::Activation;
use super::config::MlpConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// One linear layer's slices of the flat parameter vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSlice {
    /// "trunk.0", "trunk.1", …, "head.0", …
    pub name: String,
    pub fan_in: usize,
    pub fan_out: usize,
    pub weight: Range<usize>,
    pub bias: Range<usize>,
}

impl LayerSlice {
    /// weight.start..bias.end: the layer's whole block.
    pub fn range(&self) -> Range<usize> {
        self.weight.start..self.bias.end
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub trunk: Vec<LayerSlice>,
    pub heads: Vec<LayerSlice>,
    /// Number of shared (trunk) parameters d_shared; the trunk occupies `0..shared_len`.
    pub shared_len: usize,
    pub total_len: usize,
}

impl Layout {
    pub fn new(config: &MlpConfig) -> Self {
        let mut offset = 0;
        let mut layer = |name: String, fan_in: usize, fan_out: usize| {
            let w = offset..offset + fan_in * fan_out;
            let b = w.end..w.end + fan_out;
            offset = b.end;
            LayerSlice { name, fan_in, fan_out, weight: w, bias: b }
        };
        let mut trunk = Vec::new();
        let mut fan_in = config.input_dim;
        for (l, &w) in config.hidden.iter().enumerate() {
            trunk.push(layer(format!("trunk.{l}"), fan_in, w));
            fan_in = w;
        }
        let shared_len = trunk.last().map_or(0, |s| s.bias.end);
        let heads = config
            .heads
            .iter()
            .enumerate()
            .map(|(t, h)| layer(format!("head.{t}"), fan_in, h.out_dim))
            .collect::<Vec<_>>();
        let total_len = heads.last().map_or(shared_len, |s| s.bias.end);
        Layout { trunk, heads, shared_len, total_len }
    }

    /// Width of the trunk's output (the input width when there are no hidden layers).
    pub fn trunk_out(&self) -> usize {
        self.heads.first().map_or(0, |h| h.fan_in)
    }

    /// The parameters of head t: `total[head_range(t)]`.
    pub fn head_range(&self, t: usize) -> Range<usize> {
        self.heads[t].range()
    }
}

/// Seeded initialisation: biases 0; weights uniform, He (±√(6/fan_in)) for ReLU/GELU trunk
/// layers, Glorot (±√(6/(fan_in+fan_out))) for tanh/sigmoid/linear trunk layers and for every
/// head. One ChaCha8 stream seeded with `seed` draws the weights in layout order, so a seed
/// reproduces the vector bit for bit. With `tied_head_init` every head copies head 0's draw.
/// Head bounds are multiplied by `head_init_scale` (1.0 leaves the draw unchanged).
pub fn init_params(config: &MlpConfig, layout: &Layout, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = vec![0.0; layout.total_len];
    let he = matches!(config.activation, Activation::Relu | Activation::Gelu);
    let mut fill = |s: &LayerSlice, he: bool, scale: f64, p: &mut [f64]| {
        let bound =
            scale * if he { (6.0 / s.fan_in as f64).sqrt() } else { (6.0 / (s.fan_in + s.fan_out) as f64).sqrt() };
        for v in &mut p[s.weight.clone()] {
            *v = rng.random_range(-bound..bound);
        }
    };
    for s in &layout.trunk {
        fill(s, he, 1.0, &mut p);
    }
    for (t, s) in layout.heads.iter().enumerate() {
        if config.tied_head_init && t > 0 {
            let src = layout.heads[0].weight.clone();
            p.copy_within(src, s.weight.start);
        } else {
            fill(s, false, config.head_init_scale, &mut p);
        }
    }
    p
}
