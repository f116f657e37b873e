// moe_aux.wgsl — the MoE aux losses' gradient w.r.t. a gate group's clean logits, mirroring
// `concord_core::model::moe::aux::aux_losses` for the Switch load-balancing loss and the router
// z-loss (each weighted and divided by the number of gate groups, as there), plus the two
// helpers that sum the groups' gate gradients into one vector. The gate and pre-layer
// backward after dL_aux/dh run on `moe_train.wgsl` / the MLP kernels (`kernels::moe_aux`).
// requires: mlp_index.wgsl

struct MoeAuxParams {
    rows: u32,
    experts: u32,
    groups_x: u32,
    // moe_aux_add / moe_aux_zero: the entries touched and where they start in dst.
    len: u32,
    off: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    // α / groups and c_z / groups.
    load_balance: f32,
    z_loss: f32,
    _pad3: f32,
    _pad4: f32,
}

@group(0) @binding(0) var<uniform> ma: MoeAuxParams;
// Per token: p = softmax(h) and the clean logits h (rows × E).
@group(0) @binding(1) var<storage, read> ma_probs: array<f32>;
@group(0) @binding(2) var<storage, read> ma_logits: array<f32>;
// moe_aux_fractions' output: `load_balance::d_probs`' per-expert N·f_i/T.
@group(0) @binding(3) var<storage, read_write> ma_dprobs: array<f32>;
// dL_aux/dh (rows × E).
@group(0) @binding(4) var<storage, read_write> ma_dlogits: array<f32>;
@group(0) @binding(5) var<storage, read> ma_src: array<f32>;
@group(0) @binding(6) var<storage, read_write> ma_dst: array<f32>;

// The expert with the largest p in token r's row (ties → the lower index, `routing::argmax`).
fn aux_argmax(r: u32) -> u32 {
    var best = 0u;
    for (var e = 1u; e < ma.experts; e++) {
        if ma_probs[r * ma.experts + e] > ma_probs[r * ma.experts + best] {
            best = e;
        }
    }
    return best;
}

// moe_aux_fractions — `load_balance::d_probs`: N·f_i/T with f_i the fraction of tokens whose
// top-1 expert by p is i (held constant: not differentiated). One invocation per expert.
@compute @workgroup_size(64)
fn moe_aux_fractions(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= ma.experts {
        return;
    }
    var count = 0u;
    for (var r = 0u; r < ma.rows; r++) {
        if aux_argmax(r) == i {
            count += 1u;
        }
    }
    let t = f32(ma.rows);
    ma_dprobs[i] = f32(ma.experts) * (f32(count) / t) / t;
}

// moe_aux_logits — dL_aux/dh of one token row: α'·`softmax_backward`(p, N·f/T) plus
// c_z'·`z_loss::d_logits` = c_z'·2·lse(h)·p/T (lse shifted by the row max). One invocation per token.
@compute @workgroup_size(256)
fn moe_aux_logits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, ma.groups_x);
    if r >= ma.rows {
        return;
    }
    let base = r * ma.experts;
    var dot = 0.0;
    var top = ma_logits[base];
    for (var e = 0u; e < ma.experts; e++) {
        dot += ma_probs[base + e] * ma_dprobs[e];
        top = max(top, ma_logits[base + e]);
    }
    var sum = 0.0;
    for (var e = 0u; e < ma.experts; e++) {
        sum += exp(ma_logits[base + e] - top);
    }
    let lse = top + log(sum);
    let t = f32(ma.rows);
    for (var e = 0u; e < ma.experts; e++) {
        let p = ma_probs[base + e];
        ma_dlogits[base + e] = ma.load_balance * p * (ma_dprobs[e] - dot) + ma.z_loss * 2.0 * lse * p / t;
    }
}

// moe_aux_add — dst[off + i] += src[i]: one gate group's gate gradient into the aux gradient
// (groups that share a gate, a task-embedding gate, sum there). One invocation per entry.
@compute @workgroup_size(256)
fn moe_aux_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, lid, ma.groups_x);
    if i >= ma.len {
        return;
    }
    ma_dst[ma.off + i] = ma_dst[ma.off + i] + ma_src[i];
}

// moe_aux_zero — dst[off + i] = 0: the aux gradient and dL/da start from zero each step.
@compute @workgroup_size(256)
fn moe_aux_zero(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, lid, ma.groups_x);
    if i >= ma.len {
        return;
    }
    ma_dst[ma.off + i] = 0.0;
}
