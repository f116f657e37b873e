// landscape_slice.wgsl — a 2-D loss-landscape slice of the multi-task MLP in one dispatch:
// every (grid point, sample) pair runs the forward pass at p = θ + α·δ + β·η and adds its
// per-task loss share; a workgroup covers 64 samples of one grid point and tree-reduces them,
// so the output holds one partial sum per (point, chunk of 64 samples, task). The host adds
// the chunks (in f64). Mirrors concord_core::landscape::mlp_slice.
//
// Buffers: params = [θ | δ | η] (3·P floats), data = [x (B × in, row-major) | each head's
// targets (B × k row-major; softmax-CE: one label per row)], layers = 8 u32 per layer (trunk
// layers, then heads): fan_in, fan_out, weight offset, bias offset, loss kind, target offset,
// target columns, 0.
// Loop budget: one invocation runs Σ fan_out·(fan_in + 1) + in + Σ heads' k inner iterations;
// the host refuses models above 60 000 (lavapipe cuts an invocation at 65 535 loop iterations).

struct SliceParams {
    n_trunk: u32,
    n_heads: u32,
    batch: u32,
    chunks: u32,
    points: u32,
    n_alpha: u32,
    n_beta: u32,
    groups_x: u32,
    activation: u32, // 0 relu, 1 tanh, 2 gelu (tanh form), 3 sigmoid, 4 linear
    n_params: u32,
    input_dim: u32,
    _pad: u32,
    alpha_lo: f32,
    alpha_hi: f32,
    beta_lo: f32,
    beta_hi: f32,
}

const WG: u32 = 64u;
const MAX_WIDTH: u32 = 256u;
const MAX_HEADS: u32 = 8u;

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read> layers: array<u32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<uniform> sp: SliceParams;

// Two activation buffers side by side (the current layer's input and output swap halves),
// and one head's outputs for the softmax.
var<private> acts: array<f32, 512>;
var<private> outs: array<f32, 256>;
var<workgroup> shares: array<f32, 512>; // WG × MAX_HEADS

fn weight(i: u32, a: f32, b: f32) -> f32 {
    let n = sp.n_params;
    return params[i] + a * params[n + i] + b * params[2u * n + i];
}

fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

fn activate(x: f32) -> f32 {
    switch sp.activation {
        case 0u: { return max(x, 0.0); }
        case 1u: { return tanh(x); }
        case 2u: { return 0.5 * x * (1.0 + tanh(0.7978845608 * (x + 0.044715 * x * x * x))); }
        case 3u: { return 1.0 / (1.0 + exp(-x)); }
        default: { return x; }
    }
}

// α_i as np.linspace: both ends exact.
fn coord(lo: f32, hi: f32, n: u32, i: u32) -> f32 {
    if i + 1u == n {
        return hi;
    }
    return lo + (hi - lo) * f32(i) / f32(n - 1u);
}

@compute @workgroup_size(64)
fn landscape_slice(
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(workgroup_id) wid3: vec3<u32>,
) {
    let lid = lid3.x;
    let group = wid3.y * sp.groups_x + wid3.x;
    let point = group / sp.chunks;
    let chunk = group % sp.chunks;
    let sample = chunk * WG + lid;
    // Out-of-range invocations still take part in the barriers below, with zero shares.
    let in_range = point < sp.points && sample < sp.batch;
    for (var t = 0u; t < MAX_HEADS; t++) {
        shares[t * WG + lid] = 0.0;
    }
    if in_range {
        let a = coord(sp.alpha_lo, sp.alpha_hi, sp.n_alpha, point % sp.n_alpha);
        let b = coord(sp.beta_lo, sp.beta_hi, sp.n_beta, point / sp.n_alpha);
        let inv_b = 1.0 / f32(sp.batch);
        var cur = 0u;
        for (var i = 0u; i < sp.input_dim; i++) {
            acts[i] = data[sample * sp.input_dim + i];
        }
        for (var l = 0u; l < sp.n_trunk; l++) {
            let fan_in = layers[l * 8u];
            let fan_out = layers[l * 8u + 1u];
            let w_off = layers[l * 8u + 2u];
            let b_off = layers[l * 8u + 3u];
            let nxt = MAX_WIDTH - cur;
            for (var j = 0u; j < fan_out; j++) {
                var z = weight(b_off + j, a, b);
                let row = w_off + j * fan_in;
                for (var i = 0u; i < fan_in; i++) {
                    z += weight(row + i, a, b) * acts[cur + i];
                }
                acts[nxt + j] = activate(z);
            }
            cur = nxt;
        }
        for (var h = 0u; h < sp.n_heads; h++) {
            let m = (sp.n_trunk + h) * 8u;
            let fan_in = layers[m];
            let k = layers[m + 1u];
            let w_off = layers[m + 2u];
            let b_off = layers[m + 3u];
            let kind = layers[m + 4u];
            let y_off = layers[m + 5u];
            let y_cols = layers[m + 6u];
            var share = 0.0;
            var top = -3.0e38;
            for (var j = 0u; j < k; j++) {
                var o = weight(b_off + j, a, b);
                let row = w_off + j * fan_in;
                for (var i = 0u; i < fan_in; i++) {
                    o += weight(row + i, a, b) * acts[cur + i];
                }
                outs[j] = o;
                top = max(top, o);
                if kind == 0u {
                    let e = o - data[y_off + sample * y_cols + j];
                    share += e * e;
                } else if kind == 1u {
                    share += softplus(o) - data[y_off + sample * y_cols + j] * o;
                }
            }
            if kind == 2u {
                var sum = 0.0;
                for (var j = 0u; j < k; j++) {
                    sum += exp(outs[j] - top);
                }
                let label = u32(data[y_off + sample * y_cols]);
                share = (top + log(sum) - outs[label]) * inv_b;
            } else {
                share *= inv_b / f32(k);
            }
            shares[h * WG + lid] = share;
        }
    }
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            for (var t = 0u; t < MAX_HEADS; t++) {
                shares[t * WG + lid] += shares[t * WG + lid + stride];
            }
        }
        workgroupBarrier();
    }
    if lid == 0u && point < sp.points {
        for (var t = 0u; t < sp.n_heads; t++) {
            partials[(point * sp.chunks + chunk) * sp.n_heads + t] = shares[t * WG];
        }
    }
}
