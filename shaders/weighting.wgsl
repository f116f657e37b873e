// weighting.wgsl — w = f(G) for one m × m Gramian (m ≤ 16), one invocation.
// requires: weights_common.wgsl weights_dispatch.wgsl
//
// Bindings: gram (m×m row-major, f32), weights (m values, then a completion flag), params.
// With params.factor_cols = k > 0 the first binding holds instead a factor R (m × k row-major,
// k ≤ 16) with G = RRᵀ — the Jacobian itself when n ≤ 16 — and the weighting runs in factor
// mode (quadratic forms without cancellation; see weights_common.wgsl).
// The m × m problem is tiny; a single invocation keeps it exactly the code the fused toy kernel
// runs, and avoids any cross-invocation reduction order in the solvers.
// weights[m] = 1 when the solve ran to its end and 0 when the adapter cut the invocation's
// loops short (llvmpipe's 65 535-iteration cap, see weights_common.wgsl): the sentinel loop
// runs `sentinel_trips` = 2 iterations (a uniform, so it cannot be unrolled) and only its
// second iteration sets the flag, which an exhausted loop budget never reaches.

struct WeightParams {
    m: u32,
    method: u32,
    seed: u32,
    call: u32,
    c: f32,
    sentinel_trips: u32,
    factor_cols: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> gram: array<f32>;
@group(0) @binding(1) var<storage, read_write> weights: array<f32>;
@group(0) @binding(2) var<uniform> params: WeightParams;

@compute @workgroup_size(1)
fn weighting(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = min(params.factor_cols, WT_MAX_M);
    if k > 0u {
        wt_begin_factor(params.m, k);
        for (var i = 0u; i < wt_m; i++) {
            for (var l = 0u; l < k; l++) {
                wt_set_factor(i, l, gram[i * k + l]);
            }
        }
    } else {
        wt_begin(params.m);
        for (var i = 0u; i < wt_m; i++) {
            for (var j = 0u; j < wt_m; j++) {
                wt_set(i, j, gram[i * wt_m + j]);
            }
        }
    }
    let m = wt_m;
    compute_weights(params.method, params.c, params.seed, params.call);
    for (var i = 0u; i < m; i++) {
        weights[i] = wt_weight(i);
    }
    var complete = 0.0;
    for (var s = 0u; s < params.sentinel_trips; s++) {
        if s == 1u {
            complete = 1.0;
        }
    }
    weights[m] = complete;
}
