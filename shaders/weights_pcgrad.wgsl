// weights_pcgrad.wgsl — PCGrad in Gram form (torchjd `PCGradWeighting`; sum of the projections).
// requires: weights_common.wgsl
//
// For each task i: c = e_i; visit the other tasks j in a pseudo-random order; if (G c)_j < 0,
// c_j −= (G c)_j / G_jj (skipped unless G_jj > 0). Then w = Σ_i c⁽ⁱ⁾.
// The visiting order is a Fisher–Yates shuffle driven by the PCG hash below, keyed by
// (seed, call, task); concord-core's pcgrad.rs (`visit_order`) uses the identical
// construction, so a GPU run and a CPU run with the same seed and call counter visit the tasks
// in the same order. The method is scale-invariant, so G is first scaled by an exact power of
// two (f32 range only). Non-finite G: w = 1 (the plain sum), as concord-core does.

fn pcg_hash(x: u32) -> u32 {
    let state = x * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn weights_pcgrad(seed: u32, call: u32) {
    let m = wt_m;
    if !wt_all_finite() {
        wt_w = wt_fill(1.0);
        return;
    }
    wt_pow2_rescale();
    var w = WtVec();
    for (var task = 0u; task < m; task++) {
        // Visiting order for this (seed, call, task).
        var order: array<u32, 32>;
        for (var k = 0u; k < m; k++) {
            order[k] = k;
        }
        var key = pcg_hash(seed ^ pcg_hash(call * 16u + task));
        for (var kk = m; kk > 1u; kk--) {
            let k = kk - 1u;
            key = pcg_hash(key);
            let j = key % (k + 1u);
            let tmp = order[k];
            order[k] = order[j];
            order[j] = tmp;
        }
        var c = WtVec();
        wt_put(&c, task, 1.0);
        for (var idx = 0u; idx < m; idx++) {
            let j = order[idx];
            if j == task {
                continue;
            }
            // G_jj = 0 means g_j = 0: nothing to project onto.
            let gjj = wt_gram(j, j);
            let gc = wt_gv(j, &c);
            if gc < 0.0 && gjj > 0.0 {
                wt_put(&c, j, wt_get(&c, j) - gc / gjj);
            }
        }
        for (var b = 0u; b < wt_nb; b++) {
            w[b] += c[b];
        }
    }
    wt_w = w;
}
