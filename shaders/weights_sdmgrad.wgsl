// weights_sdmgrad.wgsl — SDMGrad, torchjd 0.18 `SDMGradWeighting` as concord-core's
// sdmgrad.rs (single-batch A = G): σ = mean_i √max(G_ii, 0), a = G/(σ² + 1e-8); from the stored
// w (1/m at first), n_iter times r = a(w + λw̃), v = r (first) else μv + r, w ← Π_Δ(w − lr·v);
// store w (unless the loop overflowed), return (w + λw̃)/(1 + λ). w̃ = the preference vector.
// Invocation 0 does the work: n_iter·O(m²) loop steps, which lavapipe's 65 535-iteration cap
// bounds (n_iter = 20 fits for m = 32; a longer solve is reported as cut, never returned).
// requires: weights_modo.wgsl

fn weights_sdmgrad(lr: f32, momentum: f32, n_iter: u32, lambda: f32) {
    let m = workgroupUniformLoad(&wg_size);
    if wg_lid != 0u {
        return;
    }
    var stored = mem_simplex_start(m);
    if wt_is_finite(wg_gram_max_abs(m)) {
        var sigma = 0.0;
        for (var i = 0u; i < m; i++) {
            sigma += sqrt(max(wg_gram(i, i), 0.0));
        }
        sigma /= f32(m);
        let denom = sigma * sigma + 1e-8;
        var w = stored;
        var v: array<f32, 32>;
        for (var it = 0u; it < n_iter; it++) {
            var y: array<f32, 32>;
            for (var i = 0u; i < m; i++) {
                var r = 0.0;
                for (var j = 0u; j < m; j++) {
                    r += wg_gram(i, j) / denom * (w[j] + wg_param_vec[j] * lambda);
                }
                v[i] = select(momentum * v[i] + r, r, it == 0u);
                y[i] = w[i] - lr * v[i];
            }
            wt_project_simplex(&y, m);
            w = y;
        }
        var ok = true;
        for (var i = 0u; i < m; i++) {
            ok = ok && wt_is_finite(w[i]);
        }
        if ok {
            stored = w;
        }
    }
    mem_store_vector(&stored, m);
    for (var i = 0u; i < m; i++) {
        wg_w[i] = (stored[i] + wg_param_vec[i] * lambda) / (1.0 + lambda);
    }
}
