// moe_train.wgsl — the MoE block's own steps of a training pass, for every router (softmax,
// MMoE, and — with the routing core's moe_select / moe_capacity / moe_expert_choice choosing
// the experts — switch, top-2, noisy top-k, expert choice, task routing); the dense layers around them (pre-layers, experts, heads) run on the MLP
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
    // The gate's W (E × gin, no bias) in the flat parameters (moe_gate_softmax,
    // moe_gate_back_input).
    w_off: u32,
    groups_x: u32,
    // The gate input's width: H, or H + tasks for a task-embedding gate.
    gin: u32,
    // W_noise's offset (noisy top-k).
    noise_off: u32,
    // This gate group's ε block in the noise buffer (groups × T × E).
    eps_off: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> mt: MoeTrainParams;

// moe_gate_softmax — `linear::forward` of the gate (h = gin·W_gᵀ, no bias; gin = a, or a
// task-embedding gate's concat(a, onehot)) then `routing::softmax_rows` (shifted by the row
// max). Also noisy top-k's raw noise logits gin·W_noiseᵀ (w_off = W_noise; the softmax unused).
// One invocation per token.
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
        let w0 = mt.w_off + e * mt.gin;
        for (var i = 0u; i < mt.gin; i++) {
            z += gs_a[r * mt.gin + i] * gs_params[w0 + i];
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

// moe_scatter_dy — `Moe::block_backward`'s dL/dy_e = G[:, e] ⊙ dL/dh (row-wise; G = 0 where
// the expert does not take the token). One
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

// moe_dcombine — `Moe::block_backward`'s dL/dG[t, e] = ⟨dL/dh[t], y_e[t]⟩, only where expert e
// takes token t (mode 1 reads the dispatch half of the routing, combine | dispatch | dropped;
// mode 0, the dense routers: everywhere). One invocation per token.
@group(0) @binding(12) var<storage, read> dc_dh: array<f32>;
@group(0) @binding(13) var<storage, read> dc_y: array<f32>;
@group(0) @binding(14) var<storage, read_write> dc_out: array<f32>;
@group(0) @binding(24) var<storage, read> dc_route: array<f32>;

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
    if mt.mode == 1u && dc_route[mt.rows * mt.experts + r * mt.experts + mt.expert] == 0.0 {
        s = 0.0;
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

// moe_gate_input — `Moe::run_forward`'s task-embedding gate input concat(a, onehot(group))
// (group in mt.expert). One invocation per entry of the rows × gin matrix.
@group(0) @binding(40) var<storage, read> gi_a: array<f32>;
@group(0) @binding(41) var<storage, read_write> gi_out: array<f32>;

@compute @workgroup_size(256)
fn moe_gate_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, lid, mt.groups_x);
    if i >= mt.rows * mt.gin {
        return;
    }
    let r = i / mt.gin;
    let c = i % mt.gin;
    if c < mt.width {
        gi_out[i] = gi_a[r * mt.width + c];
    } else {
        gi_out[i] = select(0.0, 1.0, c - mt.width == mt.expert);
    }
}

// moe_noisy_logits — what the routing core selects on, laid out as its gate_out (logits T×E |
// probs T×E | lse T), from a selecting router's clean gate logits h (moe_gate_softmax): the
// noisy logits H = h + ε·(softplus(h_noise) + 1e-2) (`noisy_topk::route`; mode 1, ε from the
// host; H = h otherwise) and softmax(H), whose order is H's and whose renormalised top k is the
// softmax over the kept H. One invocation per token.
@group(0) @binding(42) var<storage, read> nl_logits: array<f32>;
@group(0) @binding(43) var<storage, read> nl_raw: array<f32>;
@group(0) @binding(44) var<storage, read> nl_eps: array<f32>;
@group(0) @binding(45) var<storage, read_write> nl_sel: array<f32>;

// `softplus::softplus`: log(1 + eˣ) without overflow.
fn moe_softplus(x: f32) -> f32 {
    if x > 30.0 {
        return x;
    }
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

fn moe_sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

@compute @workgroup_size(256)
fn moe_noisy_logits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, mt.groups_x);
    if r >= mt.rows {
        return;
    }
    let o = r * mt.experts;
    let te = mt.rows * mt.experts;
    var hmx = -3.4e38;
    for (var e = 0u; e < mt.experts; e++) {
        var h = nl_logits[o + e];
        if mt.mode == 1u {
            h = h + nl_eps[mt.eps_off + o + e] * (moe_softplus(nl_raw[o + e]) + 0.01);
        }
        nl_sel[o + e] = h;
        hmx = max(hmx, h);
    }
    var hs = 0.0;
    for (var e = 0u; e < mt.experts; e++) {
        let w = exp(nl_sel[o + e] - hmx);
        nl_sel[te + o + e] = w;
        hs += w;
    }
    for (var e = 0u; e < mt.experts; e++) {
        nl_sel[te + o + e] = nl_sel[te + o + e] / hs;
    }
    nl_sel[2u * te + r] = 0.0;
}

// moe_top2_dprobs — `top2::d_probs`: dL/dp through the renormalised pair g₁/(g₁+g₂),
// g₂/(g₁+g₂) (choices from moe_select, in rank order; dG already 0 for a dropped choice),
// 0 for the other experts. One invocation per token.
@group(0) @binding(25) var<storage, read> t2_p: array<f32>;
@group(0) @binding(26) var<storage, read> t2_dg: array<f32>;
@group(0) @binding(27) var<storage, read> t2_choice: array<u32>;
@group(0) @binding(28) var<storage, read_write> t2_out: array<f32>;

@compute @workgroup_size(256)
fn moe_top2_dprobs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, mt.groups_x);
    if r >= mt.rows {
        return;
    }
    let o = r * mt.experts;
    for (var e = 0u; e < mt.experts; e++) {
        t2_out[o + e] = 0.0;
    }
    let e1 = t2_choice[r * 2u];
    let e2 = t2_choice[r * 2u + 1u];
    let g1 = t2_p[o + e1];
    let g2 = t2_p[o + e2];
    let s2 = (g1 + g2) * (g1 + g2);
    let d1 = t2_dg[o + e1];
    let d2 = t2_dg[o + e2];
    t2_out[o + e1] = (d1 - d2) * g2 / s2;
    t2_out[o + e2] = (d2 - d1) * g1 / s2;
}

// moe_noisy_back — `noisy_topk::backward`: dL/dH = G ⊙ (dG − ⟨G, dG⟩) on the kept experts (the
// softmax over the kept noisy logits; dL/dh = dL/dH), from the routing's combine | dispatch.
// One invocation per token.
@group(0) @binding(29) var<storage, read> nb_route: array<f32>;
@group(0) @binding(30) var<storage, read> nb_dg: array<f32>;
@group(0) @binding(33) var<storage, read_write> nb_dl: array<f32>;

@compute @workgroup_size(256)
fn moe_noisy_back(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, mt.groups_x);
    if r >= mt.rows {
        return;
    }
    let o = r * mt.experts;
    let te = mt.rows * mt.experts;
    var dot = 0.0;
    for (var e = 0u; e < mt.experts; e++) {
        dot += nb_route[o + e] * nb_dg[o + e];
    }
    for (var e = 0u; e < mt.experts; e++) {
        var dh = 0.0;
        if nb_route[te + o + e] > 0.0 {
            dh = nb_route[o + e] * (nb_dg[o + e] - dot);
        }
        nb_dl[o + e] = dh;
    }
}

// moe_noise_chain — `noisy_topk::noise_chain`: dL/dh_noise = dL/dH · ε · sigmoid(h_noise). One
// invocation per (token, expert).
@group(0) @binding(31) var<storage, read> nc_dl: array<f32>;
@group(0) @binding(32) var<storage, read> nc_eps: array<f32>;
@group(0) @binding(34) var<storage, read> nc_raw: array<f32>;
@group(0) @binding(46) var<storage, read_write> nc_draw: array<f32>;

@compute @workgroup_size(256)
fn moe_noise_chain(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, lid, mt.groups_x);
    if i >= mt.rows * mt.experts {
        return;
    }
    nc_draw[i] = nc_dl[i] * nc_eps[mt.eps_off + i] * moe_sigmoid(nc_raw[i]);
}

// moe_gate_back_input — `Moe::gate_backward`'s dL/da through a selecting router's gate:
// dL/dgin = dL/dh·W (W_g, or W_noise with dL/dh_noise: one dispatch each), keeping the columns
// that read a (a task embedding's one-hot is constant), through the last pre-layer's φ' and
// added to dst. One invocation per (token, channel of a).
@group(0) @binding(35) var<storage, read> gb_dl: array<f32>;
@group(0) @binding(37) var<storage, read> gb_params: array<f32>;
@group(0) @binding(38) var<storage, read> gb_z: array<f32>;
@group(0) @binding(39) var<storage, read_write> gb_dst: array<f32>;

@compute @workgroup_size(256)
fn moe_gate_back_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, lid, mt.groups_x);
    if i >= mt.rows * mt.width {
        return;
    }
    let r = i / mt.width;
    let c = i % mt.width;
    var s = 0.0;
    for (var e = 0u; e < mt.experts; e++) {
        s += gb_dl[r * mt.experts + e] * gb_params[mt.w_off + e * mt.gin + c];
    }
    gb_dst[i] = gb_dst[i] + s * act_derivative(mt.act, gb_z[i]);
}
