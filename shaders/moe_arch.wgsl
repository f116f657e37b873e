// moe_arch.wgsl — the gates of CGC and PLE (concord-core `model/moe/extraction.rs`, `cgc.rs`,
// `ple.rs`): task t's softmax over its candidates [shared experts; task t's experts] (the logits
// come from the MLP's dense kernel: the gate is an `nn.Linear` with bias), spread into the
// level's expert columns [shared; task 0's; …; task m−1's] with 0 on the other tasks' experts,
// so the MoE block's mix and dL/dG kernels run on it unchanged. Candidate c is expert
// level_off + c (c < shared) or level_off + shared + task·task_experts + (c − shared). PLE's
// shared gate mixes every expert of its level [shared; task 0's; …]: it runs as task 0 with
// cands = shared + tasks·task_experts, for which that numbering is level_off + c.
// requires: mlp_index.wgsl

struct ArchParams {
    rows: u32,
    // Columns of the spread weights: every expert of the block.
    experts: u32,
    // Candidates of this task's gate: shared + task_experts.
    cands: u32,
    shared_experts: u32,
    task_experts: u32,
    task: u32,
    groups_x: u32,
    // The level's first expert in the block's numbering (PLE's level 2 follows level 1's).
    level_off: u32,
}

@group(0) @binding(0) var<uniform> ap: ArchParams;

fn arch_expert(c: u32) -> u32 {
    if c < ap.shared_experts {
        return ap.level_off + c;
    }
    return ap.level_off + ap.shared_experts + ap.task * ap.task_experts + (c - ap.shared_experts);
}

// arch_softmax — `routing::softmax_rows` of the gate's logits (shifted by the row max), written
// spread. One invocation per token.
@group(0) @binding(1) var<storage, read> as_logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> as_probs: array<f32>;

@compute @workgroup_size(256)
fn arch_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, lid, ap.groups_x);
    if r >= ap.rows {
        return;
    }
    let o = r * ap.experts;
    for (var e = 0u; e < ap.experts; e++) {
        as_probs[o + e] = 0.0;
    }
    let l = r * ap.cands;
    var mx = -3.4e38;
    for (var c = 0u; c < ap.cands; c++) {
        mx = max(mx, as_logits[l + c]);
    }
    var s = 0.0;
    for (var c = 0u; c < ap.cands; c++) {
        s += exp(as_logits[l + c] - mx);
    }
    for (var c = 0u; c < ap.cands; c++) {
        as_probs[o + arch_expert(c)] = exp(as_logits[l + c] - mx) / s;
    }
}

// arch_softmax_back — `routing::softmax_backward` on the candidates: dL/dlogit_c =
// p_c·(dG_c − Σ_c' p_c'·dG_c'), read from the spread p and dL/dG, written per candidate.
// One invocation per (token, candidate).
@group(0) @binding(3) var<storage, read> ab_p: array<f32>;
@group(0) @binding(4) var<storage, read> ab_dg: array<f32>;
@group(0) @binding(5) var<storage, read_write> ab_dl: array<f32>;

@compute @workgroup_size(256)
fn arch_softmax_back(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, lid, ap.groups_x);
    if i >= ap.rows * ap.cands {
        return;
    }
    let r = i / ap.cands;
    let o = r * ap.experts;
    var dot = 0.0;
    for (var c = 0u; c < ap.cands; c++) {
        let e = arch_expert(c);
        dot += ab_p[o + e] * ab_dg[o + e];
    }
    let e = arch_expert(i % ap.cands);
    ab_dl[i] = ab_p[o + e] * (ab_dg[o + e] - dot);
}
