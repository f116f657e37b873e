// moe_aux.wgsl — the MoE aux losses' gradient w.r.t. a gate group's clean logits, mirroring
// `concord_core::model::moe::aux::aux_losses` for the Switch load-balancing loss and the router
// z-loss (each weighted and divided by the number of gate groups, as there) and Mod-Squad's
// mutual-information loss (one quantity over all tasks, weighted once), plus the two
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
    // This dispatch's gate group, the number of groups and of tasks.
    group: u32,
    groups: u32,
    tasks: u32,
    // α / groups and c_z / groups; w_MI.
    load_balance: f32,
    z_loss: f32,
    mutual_info: f32,
    _pad: f32,
}

@group(0) @binding(0) var<uniform> ma: MoeAuxParams;
// Per token: p = softmax(h) and the clean logits h (rows × E).
@group(0) @binding(1) var<storage, read> ma_probs: array<f32>;
@group(0) @binding(2) var<storage, read> ma_logits: array<f32>;
// Per group (groups × E), dL/dp, the same for every token of the group: α'·`load_balance::d_probs`'
// N·f_i/T (moe_aux_fractions), plus the MI loss's (moe_aux_mi).
@group(0) @binding(3) var<storage, read_write> ma_dprobs: array<f32>;
// dL_aux/dh (rows × E).
@group(0) @binding(4) var<storage, read_write> ma_dlogits: array<f32>;
@group(0) @binding(5) var<storage, read> ma_src: array<f32>;
@group(0) @binding(6) var<storage, read_write> ma_dst: array<f32>;
// Per group (groups × E): Σ_tokens p (moe_aux_fractions, for moe_aux_mi); the gate group of
// each task.
@group(0) @binding(7) var<storage, read_write> ma_colsum: array<f32>;
@group(0) @binding(8) var<storage, read> ma_group_of: array<u32>;

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
// top-1 expert by p is i (held constant: not differentiated), times α'; and Σ_tokens p_i, which
// `mutual_info::joint` reads. One invocation per expert.
@compute @workgroup_size(64)
fn moe_aux_fractions(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= ma.experts {
        return;
    }
    var count = 0u;
    var mass = 0.0;
    for (var r = 0u; r < ma.rows; r++) {
        if aux_argmax(r) == i {
            count += 1u;
        }
        mass += ma_probs[r * ma.experts + i];
    }
    let t = f32(ma.rows);
    ma_dprobs[ma.group * ma.experts + i] = ma.load_balance * f32(ma.experts) * (f32(count) / t) / t;
    ma_colsum[ma.group * ma.experts + i] = mass;
}

// P(t, e) of `mutual_info::joint`: task t's probability mass on expert e over all tokens.
fn aux_joint(t: u32, e: u32) -> f32 {
    return ma_colsum[ma_group_of[t] * ma.experts + e] / f32(ma.tasks * ma.rows);
}

// moe_aux_mi — `mutual_info::d_joint` then `d_task_probs`, summed over the tasks each gate
// group routes, times w_MI, added to dL/dp per (group, expert) (after moe_aux_fractions). One
// invocation (tasks ≤ 32, E ≤ 64).
@compute @workgroup_size(1)
fn moe_aux_mi() {
    let n = ma.experts;
    let m = ma.tasks;
    // The marginals P(t), P(e), then Σ_e q(t, e)/P(t) and Σ_t q(t, e)/P(e) with
    // q = P·r/(r + δ), r = P/(P(t)P(e)).
    var pt: array<f32, 32>;
    var pe: array<f32, 64>;
    var row_term: array<f32, 32>;
    var col_term: array<f32, 64>;
    for (var t = 0u; t < m; t++) {
        for (var e = 0u; e < n; e++) {
            let p = aux_joint(t, e);
            pt[t] += p;
            pe[e] += p;
        }
    }
    for (var t = 0u; t < m; t++) {
        for (var e = 0u; e < n; e++) {
            let p = aux_joint(t, e);
            let r = p / (pt[t] * pe[e]);
            let q = p * r / (r + 1e-4);
            row_term[t] += q;
            col_term[e] += q;
        }
    }
    let total = f32(m * ma.rows);
    for (var a = 0u; a < m; a++) {
        for (var b = 0u; b < n; b++) {
            let r = aux_joint(a, b) / (pt[a] * pe[b]);
            let d = -log(r + 1e-4) - r / (r + 1e-4) + row_term[a] / pt[a] + col_term[b] / pe[b];
            let at = ma_group_of[a] * n + b;
            ma_dprobs[at] = ma_dprobs[at] + d * ma.mutual_info / total;
        }
    }
}

// moe_aux_logits — dL_aux/dh of one token row: `softmax_backward`(p, α'·N·f/T + dL_MI/dp) plus
// c_z'·`z_loss::d_logits` = c_z'·2·lse(h)·p/T (lse shifted by the row max). One invocation per token.
@compute @workgroup_size(256)
fn moe_aux_logits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, ma.groups_x);
    if r >= ma.rows {
        return;
    }
    let base = r * ma.experts;
    let at = ma.group * ma.experts;
    var dot = 0.0;
    var top = ma_logits[base];
    for (var e = 0u; e < ma.experts; e++) {
        dot += ma_probs[base + e] * ma_dprobs[at + e];
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
        ma_dlogits[base + e] = p * (ma_dprobs[at + e] - dot) + ma.z_loss * 2.0 * lse * p / t;
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
