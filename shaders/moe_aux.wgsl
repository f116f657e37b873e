// moe_aux.wgsl — the MoE aux losses' gradient w.r.t. a gate group's clean logits (and noisy
// top-k's noise logits), mirroring `concord_core::model::moe::aux::aux_losses`: the Switch
// load-balancing loss, the router z-loss, CV²(importance) and CV²(load) (each weighted and divided
// by the number of gate groups, as there) and Mod-Squad's mutual-information loss (one quantity
// over all tasks, weighted once), plus the two helpers that sum the groups' gate gradients into
// one vector. The gate and pre-layer backward after dL_aux/dh run on `moe_train.wgsl` / the MLP
// kernels (`kernels::moe_aux`).
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
    // w_imp / groups; w_load / groups where the load is Φ-smoothed (noisy top-k with noise and
    // k < E), else 0: the hard counts have no gradient.
    importance: f32,
    load: f32,
    // How dL/dG reaches the logits (`selection::backward`): 0 G = p (softmax, MMoE); 1 G = p
    // where dispatched (switch, expert choice, task routing); 2 top-2's renormalised pair;
    // 3 noisy top-k's softmax over the kept noisy logits.
    selection: u32,
    // Noisy top-k's k, and this group's ε block in the noise buffer (groups × T × E).
    k: u32,
    eps_off: u32,
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
// The routing of this group (CV² losses): the combine weights G (rows × E), then for a
// selecting router the dispatch mask (rows × E); the routing noise ε and the raw noise logits
// h_noise (noisy top-k).
@group(0) @binding(9) var<storage, read> ma_route: array<f32>;
@group(0) @binding(11) var<storage, read> ma_eps: array<f32>;
@group(0) @binding(12) var<storage, read> ma_raw: array<f32>;
// dL_aux/dh_noise (rows × E).
@group(0) @binding(13) var<storage, read_write> ma_dnoise: array<f32>;
// The CV² passes' scratch, one buffer so that each entry point binds at most 4 storage buffers
// (WebGPU's default): w_imp'·∇CV²(importance) | w_load'·∇CV²(load) (2E), then per (token, expert)
// Φ((h_i − θ_i)/σ_i), dL/dH (noisy logits), dL/dσ and the load's direct dL/dh (4 × rows × E).
@group(0) @binding(14) var<storage, read_write> ma_s: array<f32>;

fn s_phi() -> u32 { return 2u * ma.experts; }
fn s_dnoisy() -> u32 { return 2u * ma.experts + ma.rows * ma.experts; }
fn s_dsigma() -> u32 { return 2u * ma.experts + 2u * ma.rows * ma.experts; }
fn s_ddirect() -> u32 { return 2u * ma.experts + 3u * ma.rows * ma.experts; }

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

// `softplus::softplus`: log(1 + eˣ) without overflow.
fn aux_softplus(x: f32) -> f32 {
    if x > 30.0 {
        return x;
    }
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

fn aux_sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// erfc(x) by Numerical Recipes' erfcc (relative error < 1.2e-7 everywhere, so Φ keeps its
// precision in the left tail; WGSL has no erf).
fn aux_erfc(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(-z * z + poly);
    return select(2.0 - r, r, x >= 0.0);
}

// `normal::cdf` and `normal::pdf`.
fn aux_normal_cdf(z: f32) -> f32 {
    return 0.5 * aux_erfc(-z * 0.70710678);
}

fn aux_normal_pdf(z: f32) -> f32 {
    return exp(-0.5 * z * z) * 0.39894228;
}

// Token r's noise scale σ = softplus(h_noise) + 1e-2 and noisy logits H = h + ε·σ
// (`noisy_topk::route`), and the expert each expert's threshold θ reads
// (`noisy_topk::threshold_index`: the (k+1)-th largest H if it is in the top k, else the k-th;
// ties → the lower index, as `routing::top_k`).
struct NoisyRow {
    sigma: array<f32, 64>,
    noisy: array<f32, 64>,
    theta: array<u32, 64>,
}

fn aux_noisy_row(r: u32) -> NoisyRow {
    var row: NoisyRow;
    let n = ma.experts;
    let o = r * n;
    for (var e = 0u; e < n; e++) {
        row.sigma[e] = aux_softplus(ma_raw[o + e]) + 0.01;
        row.noisy[e] = ma_logits[o + e] + ma_eps[ma.eps_off + o + e] * row.sigma[e];
    }
    var rank: array<u32, 64>;
    var at_rank: array<u32, 64>;
    for (var i = 0u; i < n; i++) {
        var q = 0u;
        for (var j = 0u; j < n; j++) {
            if row.noisy[j] > row.noisy[i] || (row.noisy[j] == row.noisy[i] && j < i) {
                q += 1u;
            }
        }
        rank[i] = q;
        at_rank[q] = i;
    }
    for (var i = 0u; i < n; i++) {
        row.theta[i] = select(at_rank[ma.k - 1u], at_rank[ma.k], rank[i] < ma.k);
    }
    return row;
}

// moe_aux_smooth_load — `noisy_topk::smooth_load`'s terms P(x, i) = Φ((h_i − θ_i)/σ_i) of
// token x (moe_aux_cv sums them over the tokens). One invocation per token.
@compute @workgroup_size(256)
fn moe_aux_smooth_load(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, ma.groups_x);
    if r >= ma.rows {
        return;
    }
    let row = aux_noisy_row(r);
    let o = r * ma.experts;
    for (var i = 0u; i < ma.experts; i++) {
        ma_s[s_phi() + o + i] = aux_normal_cdf((ma_logits[o + i] - row.noisy[row.theta[i]]) / row.sigma[i]);
    }
}

var<workgroup> aux_importance: array<f32, 64>;
var<workgroup> aux_load: array<f32, 64>;

// `cv_squared::gradient`: dCV²/dv_i = (2(v_i − μ)/n)/D − Var·(2μ/n)/D², D = μ² + 1e-10, for
// v = aux_importance (which = 0) or aux_load (which = 1); 0 for fewer than 2 experts.
fn aux_cv_gradient(which: u32, i: u32) -> f32 {
    let n = ma.experts;
    if n < 2u {
        return 0.0;
    }
    var mean = 0.0;
    for (var e = 0u; e < n; e++) {
        mean += select(aux_importance[e], aux_load[e], which == 1u);
    }
    mean = mean / f32(n);
    var variance = 0.0;
    for (var e = 0u; e < n; e++) {
        let d = select(aux_importance[e], aux_load[e], which == 1u) - mean;
        variance += d * d;
    }
    variance = variance / f32(n);
    let d = mean * mean + 1e-10;
    let v = select(aux_importance[i], aux_load[i], which == 1u);
    return 2.0 * (v - mean) / f32(n) / d - variance * 2.0 * mean / f32(n) / (d * d);
}

// moe_aux_cv — the importance Σ_x G(x)_i (`cv_squared::importance`) and the smooth load
// Σ_x P(x, i) of this group, then w'·∇CV² of each into the scratch. One workgroup, one
// invocation per expert (E ≤ 64).
@compute @workgroup_size(64)
fn moe_aux_cv(@builtin(local_invocation_id) lid: vec3<u32>) {
    let i = lid.x;
    let n = ma.experts;
    if i < n {
        var importance = 0.0;
        var smooth_load = 0.0;
        for (var r = 0u; r < ma.rows; r++) {
            importance += ma_route[r * n + i];
            if ma.load != 0.0 {
                smooth_load += ma_s[s_phi() + r * n + i];
            }
        }
        aux_importance[i] = importance;
        aux_load[i] = smooth_load;
    }
    workgroupBarrier();
    if i < n {
        ma_s[i] = ma.importance * aux_cv_gradient(0u, i);
        ma_s[n + i] = ma.load * aux_cv_gradient(1u, i);
    }
}

// The expert with the second largest p in token r's row (ties → the lower index): top-2's
// pair is the two largest p (`routing::top_k`).
fn aux_second(r: u32, first: u32) -> u32 {
    let o = r * ma.experts;
    var best = select(0u, 1u, first == 0u);
    for (var e = 0u; e < ma.experts; e++) {
        if e != first && ma_probs[o + e] > ma_probs[o + best] {
            best = e;
        }
    }
    return best;
}

// moe_aux_cv_back_dense — CV²(importance)'s dL/dh of one token for the routers whose G is
// made of p (`selection::backward`: G = p; p where dispatched; top-2's renormalised pair),
// added to dL_aux/dh (after moe_aux_logits). One invocation per token.
@compute @workgroup_size(256)
fn moe_aux_cv_back_dense(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, ma.groups_x);
    if r >= ma.rows {
        return;
    }
    let n = ma.experts;
    let o = r * n;
    let te = ma.rows * n;
    var dp: array<f32, 64>;
    if ma.selection == 2u {
        let e1 = aux_argmax(r);
        let e2 = aux_second(r, e1);
        let g1 = ma_probs[o + e1];
        let g2 = ma_probs[o + e2];
        let s2 = (g1 + g2) * (g1 + g2);
        let d1 = ma_s[e1] * ma_route[te + o + e1];
        let d2 = ma_s[e2] * ma_route[te + o + e2];
        dp[e1] = (d1 - d2) * g2 / s2;
        dp[e2] = (d2 - d1) * g1 / s2;
    } else {
        for (var e = 0u; e < n; e++) {
            dp[e] = ma_s[e];
            if ma.selection == 1u {
                dp[e] = dp[e] * ma_route[te + o + e];
            }
        }
    }
    // `routing::softmax_backward`.
    var dot = 0.0;
    for (var e = 0u; e < n; e++) {
        dot += ma_probs[o + e] * dp[e];
    }
    for (var e = 0u; e < n; e++) {
        ma_dlogits[o + e] = ma_dlogits[o + e] + ma_probs[o + e] * (dp[e] - dot);
    }
}

// moe_aux_cv_noisy_importance — noisy top-k: CV²(importance)'s dL/dH of one token, G's
// softmax over the kept noisy logits: dL/dH = G ⊙ (dG − ⟨G, dG⟩) on the kept experts. Starts
// the scratch's dL/dH, dL/dσ and direct dL/dh (moe_aux_cv_noisy_load adds to them).
@compute @workgroup_size(256)
fn moe_aux_cv_noisy_importance(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, ma.groups_x);
    if r >= ma.rows {
        return;
    }
    let n = ma.experts;
    let o = r * n;
    let te = ma.rows * n;
    var dot = 0.0;
    for (var e = 0u; e < n; e++) {
        dot += ma_route[o + e] * ma_s[e];
    }
    for (var e = 0u; e < n; e++) {
        var d = 0.0;
        if ma.importance != 0.0 && ma_route[te + o + e] > 0.0 {
            d = ma_route[o + e] * (ma_s[e] - dot);
        }
        ma_s[s_dnoisy() + o + e] = d;
        ma_s[s_dsigma() + o + e] = 0.0;
        ma_s[s_ddirect() + o + e] = 0.0;
    }
}

// moe_aux_cv_noisy_load — the smooth load's gradient of one token through Φ
// (`noisy_topk::smooth_load_backward`: θ is a noisy logit, so it carries a gradient too), added
// to the scratch's dL/dH, dL/dσ and direct dL/dh.
@compute @workgroup_size(256)
fn moe_aux_cv_noisy_load(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, ma.groups_x);
    if r >= ma.rows {
        return;
    }
    let n = ma.experts;
    let o = r * n;
    let row = aux_noisy_row(r);
    for (var i = 0u; i < n; i++) {
        let j = row.theta[i];
        let sigma = row.sigma[i];
        let z = (ma_logits[o + i] - row.noisy[j]) / sigma;
        let g = ma_s[n + i] * aux_normal_pdf(z) / sigma;
        ma_s[s_ddirect() + o + i] += g;
        ma_s[s_dnoisy() + o + j] -= g;
        ma_s[s_dsigma() + o + i] -= g * z;
    }
}

// moe_aux_cv_noisy_h — adds the CV² losses' dL/dh (H = h + ε·σ, so dL/dH, plus the load's
// direct term) to dL_aux/dh.
@compute @workgroup_size(256)
fn moe_aux_cv_noisy_h(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, ma.groups_x);
    if r >= ma.rows {
        return;
    }
    let o = r * ma.experts;
    for (var e = 0u; e < ma.experts; e++) {
        ma_dlogits[o + e] = ma_dlogits[o + e] + ma_s[s_dnoisy() + o + e] + ma_s[s_ddirect() + o + e];
    }
}

// moe_aux_cv_noisy_noise — dL_aux/dh_noise: dH_j reaches σ_j times ε_j, and
// σ = softplus(h_noise) + 1e-2.
@compute @workgroup_size(256)
fn moe_aux_cv_noisy_noise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, ma.groups_x);
    if r >= ma.rows {
        return;
    }
    let o = r * ma.experts;
    for (var e = 0u; e < ma.experts; e++) {
        let d_sigma = ma_s[s_dsigma() + o + e] + ma_s[s_dnoisy() + o + e] * ma_eps[ma.eps_off + o + e];
        ma_dnoise[o + e] = d_sigma * aux_sigmoid(ma_raw[o + e]);
    }
}
