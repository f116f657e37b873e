// moe_select.wgsl — top-k selection per token: expert e's rank is the number of experts with a
// larger probability, or an equal one and a lower index (ties → lower index); ranks < K are kept,
// stored in rank order with weight p (or p / Σ kept p when mp.renorm = 1: GShard's top-2
// renormalisation, and noise-free noisy top-k's softmax over the kept logits).
// Loop iterations per invocation: E² + K (≤ 4 160 for E ≤ 64).
// requires: moe_common.wgsl

@group(0) @binding(1) var<storage, read> gate_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> choice: array<u32>;
@group(0) @binding(3) var<storage, read_write> choice_w: array<f32>;

fn sel_prob(t: u32, e: u32) -> f32 {
    return gate_out[mp.t * mp.e + t * mp.e + e];
}

@compute @workgroup_size(64)
fn moe_select(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= mp.t {
        return;
    }
    var kept = 0.0;
    for (var e = 0u; e < mp.e; e++) {
        let p = sel_prob(t, e);
        var rank = 0u;
        for (var j = 0u; j < mp.e; j++) {
            let q = sel_prob(t, j);
            if q > p || (q == p && j < e) {
                rank++;
            }
        }
        if rank < mp.k {
            choice[t * mp.k + rank] = e;
            choice_w[t * mp.k + rank] = p;
            kept += p;
        }
    }
    if mp.renorm == 1u {
        for (var r = 0u; r < mp.k; r++) {
            choice_w[t * mp.k + r] = choice_w[t * mp.k + r] / kept;
        }
    }
}
