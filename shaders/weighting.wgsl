// weighting.wgsl — w = f(G) for one m × m Gramian (m ≤ 32), one workgroup of WG_SIZE.
// requires: weights_common.wgsl weights_dispatch.wgsl
//
// Bindings: gram (m×m row-major, f32), weights (m values, then a completion flag), params,
// state (the call counter, see WeightParams.call_from_state), and (binding 4, weights_memory.wgsl)
// what a stateful weighting keeps between calls.
// With params.factor_cols = k > 0 the first binding holds instead a factor R (m × k row-major,
// k ≤ 32) with G = RRᵀ — the Jacobian itself when n ≤ 32.
// Methods 0–4 (Mean, Sum, PCGrad, MGDA, CAGrad) run on invocation 0 alone, exactly the code
// the fused toy kernel runs; in factor mode they work from R (quadratic forms without
// cancellation; see weights_common.wgsl). Methods ≥ 5 run on the whole workgroup from G
// (weights_workgroup.wgsl); in factor mode G is formed from R first.
// weights[m] = 1 when every invocation's loops ran to their end and 0 when the adapter cut one
// short (llvmpipe's 65 535-iteration cap, see weights_common.wgsl): each invocation's
// sentinel loop runs `sentinel_trips` = 2 iterations (a uniform, so it cannot be unrolled) and
// only its second iteration counts as done, which an exhausted loop budget never reaches.

struct WeightParams {
    m: u32,
    method: u32,
    seed: u32,
    call: u32,
    c: f32,
    sentinel_trips: u32,
    factor_cols: u32,
    mode: u32,
    // MGDA: epsilon, max_iters; CAGrad: norm_eps in eps_b; UPGrad/DualProj: norm_eps, reg_eps.
    eps_a: f32,
    eps_b: f32,
    max_iters: u32,
    // 1: take the call index from state[0] and store call + 1 there afterwards (the stateful
    // methods' counter lives on the GPU, so many steps fit in one submission); 0: use `call`.
    call_from_state: u32,
    // Preference vector or Constant's weights (m entries).
    vec: array<vec4<f32>, 8>,
}

@group(0) @binding(0) var<storage, read> gram: array<f32>;
@group(0) @binding(1) var<storage, read_write> weights: array<f32>;
@group(0) @binding(2) var<uniform> params: WeightParams;
// state[0]: the call counter of a stateful weighting (PCGrad's order, Random's stream).
@group(0) @binding(3) var<storage, read_write> state: array<u32>;

var<workgroup> wg_done: atomic<u32>;

fn sentinel_done() -> bool {
    var complete = false;
    for (var s = 0u; s < params.sentinel_trips; s++) {
        if s == 1u {
            complete = true;
        }
    }
    return complete;
}

fn input_gram(i: u32, j: u32, m: u32, k: u32) -> f32 {
    if k == 0u {
        return gram[i * m + j];
    }
    var s = 0.0;
    for (var l = 0u; l < k; l++) {
        s += gram[i * k + l] * gram[j * k + l];
    }
    return s;
}

@compute @workgroup_size(64)
fn weighting(@builtin(local_invocation_index) lid: u32) {
    let m = min(params.m, WT_MAX_M);
    // Read before any barrier; invocation 0 writes call + 1 only after the last one.
    let call = select(params.call, state[0], params.call_from_state != 0u);
    let k = min(params.factor_cols, WT_MAX_M);
    if is_workgroup_method(params.method) {
        wg_lid = lid;
        for (var i = 0u; i < WT_MAX_M; i++) {
            wg_param_vec[i] = params.vec[i / 4u][i % 4u];
        }
        if lid == 0u {
            wg_size = m;
            atomicStore(&wg_done, 0u);
        }
        for (var e = lid; e < m * m; e += WG_SIZE) {
            wg_g[(e / m) * WG_STRIDE + e % m] = input_gram(e / m, e % m, m, k);
        }
        workgroupBarrier();
        compute_weights_workgroup(
            params.method, params.c, params.eps_a, params.eps_b, params.mode, params.max_iters, params.seed, call,
        );
        if sentinel_done() {
            atomicAdd(&wg_done, 1u);
        }
        workgroupBarrier();
        if lid == 0u {
            for (var i = 0u; i < m; i++) {
                weights[i] = wg_w[i];
            }
            weights[m] = select(0.0, 1.0, atomicLoad(&wg_done) == WG_SIZE);
            if params.call_from_state != 0u {
                state[0] = call + 1u;
            }
        }
        return;
    }
    if lid != 0u {
        return;
    }
    mgda_epsilon = params.eps_a;
    mgda_max_iters = params.max_iters;
    cagrad_norm_eps = params.eps_b;
    if k > 0u {
        wt_begin_factor(m, k);
        for (var i = 0u; i < wt_m; i++) {
            for (var l = 0u; l < k; l++) {
                wt_set_factor(i, l, gram[i * k + l]);
            }
        }
    } else {
        wt_begin(m);
        for (var i = 0u; i < wt_m; i++) {
            for (var j = 0u; j < wt_m; j++) {
                wt_set(i, j, gram[i * wt_m + j]);
            }
        }
    }
    compute_weights(params.method, params.c, params.seed, call);
    for (var i = 0u; i < m; i++) {
        weights[i] = wt_weight(i);
    }
    weights[m] = select(0.0, 1.0, sentinel_done());
    if params.call_from_state != 0u {
        state[0] = call + 1u;
    }
}
