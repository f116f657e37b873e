// moe_train.wgsl — the MoE block's own steps of a training pass, for the dense routers
// (softmax, MMoE); the dense layers around them (pre-layers, experts, heads) run on the MLP
// kernels. Each entry point names the concord-core function (crates/concord-core/src/model/moe)
// it mirrors. Sizes: E ≤ 64 experts, H ≤ 256 (a row loop runs over at most E·H ≤ 16 384).
// requires: mlp_index.wgsl mlp_activation.wgsl

struct MoeTrainParams {
    rows: u32,
    // H: the block's width (the gate's input and each expert's output).
    width: u32,
    experts: u32,
    // The expert (moe_mix, moe_scatter_dy, moe_dcombine).
    expert: u32,
    // moe_mix: 1 = the first expert (h starts from the residual a). moe_accumulate: 0 =
    // dst = src·φ'(z), 1 = dst += src.
    mode: u32,
    act: u32,
    // The gate's W (E × H, no bias) in the flat parameters (moe_gate_softmax).
    w_off: u32,
    groups_x: u32,
}

@group(0) @binding(0) var<uniform> mt: MoeTrainParams;

// moe_gate_softmax — `linear::forward` of the gate (h = a·W_gᵀ, no bias) then
// `routing::softmax_rows` (shifted by the row max). One invocation per token.
@group(0) @binding(1) var<storage, read> gs_a: array<f32>;
@group(0) @binding(2) var<storage, read> gs_params: array<f32>;
@group(0) @binding(3) var<storage, read_write> gs_logits: array<f32>;
@group(0) @binding(4) var<storage, read_write> gs_probs: array<f32>;

@compute @workgroup_size(256)
fn moe_gate_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, mt.groups_x);
    if r >= mt.rows {
        return;
    }
    let o = r * mt.experts;
    var mx = -3.4e38;
    for (var e = 0u; e < mt.experts; e++) {
        var z = 0.0;
        let w0 = mt.w_off + e * mt.width;
        for (var i = 0u; i < mt.width; i++) {
            z += gs_a[r * mt.width + i] * gs_params[w0 + i];
        }
        gs_logits[o + e] = z;
        mx = max(mx, z);
    }
    var s = 0.0;
    for (var e = 0u; e < mt.experts; e++) {
        let v = exp(gs_logits[o + e] - mx);
        gs_probs[o + e] = v;
        s += v;
    }
    for (var e = 0u; e < mt.experts; e++) {
        gs_probs[o + e] = gs_probs[o + e] / s;
    }
}

// moe_mix — `Moe::run_forward`'s h = a + Σ_e G_e ⊙ E_e(a), one expert per dispatch (mode 1 for
// the first: h starts from a). One invocation per (token, channel).
@group(0) @binding(5) var<storage, read> mx_a: array<f32>;
@group(0) @binding(6) var<storage, read> mx_g: array<f32>;
@group(0) @binding(7) var<storage, read> mx_y: array<f32>;
@group(0) @binding(8) var<storage, read_write> mx_h: array<f32>;

@compute @workgroup_size(256)
fn moe_mix(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, lid, mt.groups_x);
    if i >= mt.rows * mt.width {
        return;
    }
    let r = i / mt.width;
    var base = mx_h[i];
    if mt.mode == 1u {
        base = mx_a[i];
    }
    mx_h[i] = base + mx_g[r * mt.experts + mt.expert] * mx_y[i];
}

// moe_scatter_dy — `Moe::block_backward`'s dL/dy_e = G[:, e] ⊙ dL/dh (row-wise). One
// invocation per (token, channel).
@group(0) @binding(9) var<storage, read> sd_dh: array<f32>;
@group(0) @binding(10) var<storage, read> sd_g: array<f32>;
@group(0) @binding(11) var<storage, read_write> sd_dy: array<f32>;

@compute @workgroup_size(256)
fn moe_scatter_dy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, lid, mt.groups_x);
    if i >= mt.rows * mt.width {
        return;
    }
    let r = i / mt.width;
    sd_dy[i] = sd_g[r * mt.experts + mt.expert] * sd_dh[i];
}

// moe_dcombine — `Moe::block_backward`'s dL/dG[t, e] = ⟨dL/dh[t], y_e[t]⟩. One invocation per
// token.
@group(0) @binding(12) var<storage, read> dc_dh: array<f32>;
@group(0) @binding(13) var<storage, read> dc_y: array<f32>;
@group(0) @binding(14) var<storage, read_write> dc_out: array<f32>;

@compute @workgroup_size(256)
fn moe_dcombine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, mt.groups_x);
    if r >= mt.rows {
        return;
    }
    var s = 0.0;
    for (var c = 0u; c < mt.width; c++) {
        s += dc_dh[r * mt.width + c] * dc_y[r * mt.width + c];
    }
    dc_out[r * mt.experts + mt.expert] = s;
}

// moe_softmax_back — `routing::softmax_backward` after `dense_softmax::d_probs` (G = p):
// dL/dh = p ⊙ (dG − ⟨p, dG⟩). One invocation per (token, expert).
@group(0) @binding(15) var<storage, read> sb_p: array<f32>;
@group(0) @binding(16) var<storage, read> sb_dg: array<f32>;
@group(0) @binding(17) var<storage, read_write> sb_dh: array<f32>;

@compute @workgroup_size(256)
fn moe_softmax_back(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, lid, mt.groups_x);
    if i >= mt.rows * mt.experts {
        return;
    }
    let o = (i / mt.experts) * mt.experts;
    var dot = 0.0;
    for (var e = 0u; e < mt.experts; e++) {
        dot += sb_p[o + e] * sb_dg[o + e];
    }
    sb_dh[i] = sb_p[i] * (sb_dg[i] - dot);
}

// moe_accumulate — dL/da summed over the residual, the experts and the gate
// (`Moe::block_backward`'s d_a), already through the last pre-layer's φ' (what
// `Moe::pre_backward` multiplies first): mode 0 dst = src·φ'(z) (the residual path), mode 1
// dst += src (a path that `backprop` already took through φ'). One invocation per entry.
@group(0) @binding(18) var<storage, read> ac_src: array<f32>;
@group(0) @binding(19) var<storage, read> ac_z: array<f32>;
@group(0) @binding(20) var<storage, read_write> ac_dst: array<f32>;

@compute @workgroup_size(256)
fn moe_accumulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, lid, mt.groups_x);
    if i >= mt.rows * mt.width {
        return;
    }
    if mt.mode == 0u {
        ac_dst[i] = ac_src[i] * act_derivative(mt.act, ac_z[i]);
    } else {
        ac_dst[i] = ac_dst[i] + ac_src[i];
    }
}
