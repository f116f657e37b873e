// moe_dselect.wgsl — DSelect-k's task gate (concord-core `model/moe/dselect_k.rs` on
// `extraction.rs`): from one token's selector inputs z (k·b, selector l at l·b..(l+1)·b) and
// selector weights w (k), both from the MLP's dense kernel,
//   q_i = Σ_l softmax(w)_l · r⁽ˡ⁾_i,  r⁽ˡ⁾_i = Π_j (S(z_lj) if bit j of i is 1 else 1 − S(z_lj)),
// with the smooth step S of width γ and expert i's code most significant bit first. q (rows ×
// experts) stands where MMoE's probabilities do, so the block's mix, dL/dG and expert backprop
// kernels run on it unchanged. Sizes: experts ≤ 64, so k ≤ 64 and b ≤ 6.
// requires: mlp_index.wgsl

struct DselectParams {
    rows: u32,
    experts: u32,
    k: u32,
    // b = ⌈log₂ experts⌉ (0 for one expert: every r is the empty product 1).
    bits: u32,
    groups_x: u32,
    // 1: experts is not a power of 2, so the missing-mass term Σ_l 1/Σ_{i<N} r_i is on.
    missing: u32,
    gamma: f32,
    // λ of the selector entropy.
    entropy: f32,
    // The batch's tokens: the regularisers are means over tokens.
    tokens: f32,
    // dselect_gate_back: 0 writes dL/dz, 1 dL/dw (one output each: 4 storage buffers a stage).
    back_w: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> dp: DselectParams;

const ENTROPY_EPS: f32 = 1e-6;

// `dselect_k::smooth_step`.
fn ds_step(t: f32) -> f32 {
    let g = dp.gamma;
    if t <= -g / 2.0 {
        return 0.0;
    }
    if t >= g / 2.0 {
        return 1.0;
    }
    return -2.0 * t * t * t / (g * g * g) + 3.0 * t / (2.0 * g) + 0.5;
}

// `dselect_k::smooth_step_derivative`.
fn ds_step_d(t: f32) -> f32 {
    let g = dp.gamma;
    if abs(t) >= g / 2.0 {
        return 0.0;
    }
    return -6.0 * t * t / (g * g * g) + 3.0 / (2.0 * g);
}

// Bit j (0 = most significant) of expert i's b-bit code.
fn ds_bit(i: u32, j: u32) -> bool {
    return ((i >> (dp.bits - 1u - j)) & 1u) == 1u;
}

// The factor bit j of expert i takes from S(z_j).
fn ds_factor(i: u32, j: u32, s: f32) -> f32 {
    if ds_bit(i, j) {
        return s;
    }
    return 1.0 - s;
}

// r_i of one selector from its smooth steps s.
fn ds_r(i: u32, s_in: array<f32, 6>) -> f32 {
    var s = s_in;
    var r = 1.0;
    for (var j = 0u; j < dp.bits; j++) {
        r *= ds_factor(i, j, s[j]);
    }
    return r;
}

// dr_i/dz_j (`selector_jacobian`): the other factors times ±S′(z_j). A product, not r_i / factor:
// a saturated factor is exactly 0.
fn ds_jac(i: u32, j: u32, s_in: array<f32, 6>, d_in: array<f32, 6>) -> f32 {
    var s = s_in;
    var d = d_in;
    var others = 1.0;
    for (var jj = 0u; jj < dp.bits; jj++) {
        if jj != j {
            others *= ds_factor(i, jj, s[jj]);
        }
    }
    if ds_bit(i, j) {
        return others * d[j];
    }
    return -others * d[j];
}

// Selector l's smooth steps S(z_lj) of token r.
fn ds_steps(z_row: u32, l: u32) -> array<f32, 6> {
    var s: array<f32, 6>;
    for (var j = 0u; j < dp.bits; j++) {
        s[j] = ds_step(dg_z[z_row + l * dp.bits + j]);
    }
    return s;
}

fn ds_step_ds(z_row: u32, l: u32) -> array<f32, 6> {
    var d: array<f32, 6>;
    for (var j = 0u; j < dp.bits; j++) {
        d[j] = ds_step_d(dg_z[z_row + l * dp.bits + j]);
    }
    return d;
}

// The gate's inputs (rows × k·b and rows × k), shared by every entry point.
@group(0) @binding(1) var<storage, read> dg_z: array<f32>;
@group(0) @binding(2) var<storage, read> dg_w: array<f32>;

// softmax(w)_l of token r (`dselect_k::softmax`, shifted by the row max).
fn ds_softmax(r: u32) -> array<f32, 64> {
    var sw: array<f32, 64>;
    let o = r * dp.k;
    var mx = -3.4e38;
    for (var l = 0u; l < dp.k; l++) {
        mx = max(mx, dg_w[o + l]);
    }
    var sum = 0.0;
    for (var l = 0u; l < dp.k; l++) {
        sw[l] = exp(dg_w[o + l] - mx);
        sum += sw[l];
    }
    for (var l = 0u; l < dp.k; l++) {
        sw[l] /= sum;
    }
    return sw;
}

// dselect_gate — `dselect_k::weights`: q of each token into the gate's expert columns. One
// invocation per token.
@group(0) @binding(3) var<storage, read_write> dg_q: array<f32>;

@compute @workgroup_size(256)
fn dselect_gate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, dp.groups_x);
    if r >= dp.rows {
        return;
    }
    let o = r * dp.experts;
    let z_row = r * dp.k * dp.bits;
    var sw = ds_softmax(r);
    for (var i = 0u; i < dp.experts; i++) {
        dg_q[o + i] = 0.0;
    }
    for (var l = 0u; l < dp.k; l++) {
        let s = ds_steps(z_row, l);
        for (var i = 0u; i < dp.experts; i++) {
            dg_q[o + i] += sw[l] * ds_r(i, s);
        }
    }
}

// dselect_gate_back — `dselect_k::weights_backward`: dL/dq (rows × experts) → dL/dz and dL/dw.
// One invocation per token (dL/dw needs every selector's Σ_i r_i·dq_i).
@group(0) @binding(4) var<storage, read> db_dq: array<f32>;
@group(0) @binding(5) var<storage, read_write> db_out: array<f32>;

@compute @workgroup_size(256)
fn dselect_gate_back(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, dp.groups_x);
    if r >= dp.rows {
        return;
    }
    let o = r * dp.experts;
    let z_row = r * dp.k * dp.bits;
    var sw = ds_softmax(r);
    var d_s: array<f32, 64>;
    var dot = 0.0;
    for (var l = 0u; l < dp.k; l++) {
        let s = ds_steps(z_row, l);
        let d = ds_step_ds(z_row, l);
        var acc = 0.0;
        for (var i = 0u; i < dp.experts; i++) {
            acc += ds_r(i, s) * db_dq[o + i];
        }
        d_s[l] = acc;
        dot += sw[l] * acc;
        for (var j = 0u; j < dp.bits; j++) {
            var g = 0.0;
            for (var i = 0u; i < dp.experts; i++) {
                g += db_dq[o + i] * ds_jac(i, j, s, d);
            }
            if dp.back_w == 0u {
                db_out[z_row + l * dp.bits + j] = sw[l] * g;
            }
        }
    }
    if dp.back_w == 1u {
        for (var l = 0u; l < dp.k; l++) {
            db_out[r * dp.k + l] = sw[l] * (d_s[l] - dot);
        }
    }
}

// dselect_regulariser_back — the z gradient of `Extraction::regularisers` for one task gate:
// (λ·d entropy + d missing mass) / tokens per token, with `dselect_k::entropy` (Σ_l −Σ_i r_i
// log(r_i + 1e-6)) and `dselect_k::missing_mass` (Σ_l 1/Σ_{i<N} r_i, only when N is not a power
// of 2). One invocation per token.
@group(0) @binding(7) var<storage, read_write> dr_dz: array<f32>;

@compute @workgroup_size(256)
fn dselect_regulariser_back(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, dp.groups_x);
    if r >= dp.rows {
        return;
    }
    let z_row = r * dp.k * dp.bits;
    for (var l = 0u; l < dp.k; l++) {
        let s = ds_steps(z_row, l);
        let d = ds_step_ds(z_row, l);
        var total = 0.0;
        var d_entropy: array<f32, 6>;
        var d_total: array<f32, 6>;
        for (var i = 0u; i < dp.experts; i++) {
            let ri = ds_r(i, s);
            total += ri;
            let d_r = -log(ri + ENTROPY_EPS) - ri / (ri + ENTROPY_EPS);
            for (var j = 0u; j < dp.bits; j++) {
                let jac = ds_jac(i, j, s, d);
                d_entropy[j] += d_r * jac;
                d_total[j] += jac;
            }
        }
        for (var j = 0u; j < dp.bits; j++) {
            var g = dp.entropy * d_entropy[j];
            if dp.missing == 1u {
                g += -d_total[j] / (total * total);
            }
            dr_dz[z_row + l * dp.bits + j] = g / dp.tokens;
        }
    }
}
