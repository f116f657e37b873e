// weights_modo.wgsl — MoDo, torchjd 0.18 `MoDoWeighting` as concord-core's modo.rs
// (single-batch A = G): λ₀ = 1/m, one projected step per call,
//   λ ← Π_Δ(λ − γ(Gλ + ρλ)),
// λ kept in weights_memory.wgsl between calls. A non-finite G, or a step that overflows, keeps
// λ. Also the sort-based simplex projection Π_Δ (numerics.rs `project_onto_simplex`), which
// SDMGrad shares. Invocation 0 does the work (O(m²) per call).
// requires: weights_memory.wgsl

// Π_Δ(y) in place for the first m entries (sort-based, as concord-core).
fn wt_project_simplex(y: ptr<function, array<f32, 32>>, m: u32) {
    var s: array<f32, 32>;
    var total = 0.0;
    for (var i = 0u; i < m; i++) {
        s[i] = (*y)[i];
        total += (*y)[i];
    }
    // Insertion sort, descending.
    for (var a = 1u; a < m; a++) {
        let v = s[a];
        var k = a;
        loop {
            if k == 0u || s[k - 1u] >= v {
                break;
            }
            s[k] = s[k - 1u];
            k--;
        }
        s[k] = v;
    }
    var threshold = (total - 1.0) / f32(m);
    var partial = 0.0;
    for (var i = 0u; i + 1u < m; i++) {
        partial += s[i];
        let t = (partial - 1.0) / f32(i + 1u);
        if t > s[i + 1u] {
            threshold = t;
            break;
        }
    }
    for (var i = 0u; i < m; i++) {
        (*y)[i] = max((*y)[i] - threshold, 0.0);
    }
}

// λ for m tasks: the stored one, or 1/m when the memory is fresh (or sized for another m).
fn mem_simplex_start(m: u32) -> array<f32, 32> {
    let fresh = !mem_sized_for(m);
    var lam: array<f32, 32>;
    for (var i = 0u; i < m; i++) {
        lam[i] = select(wt_memory[MEM_BASE + i], 1.0 / f32(m), fresh);
    }
    return lam;
}

fn mem_store_vector(v: ptr<function, array<f32, 32>>, m: u32) {
    wt_memory[0] = f32(m);
    for (var i = 0u; i < m; i++) {
        wt_memory[MEM_BASE + i] = (*v)[i];
    }
}

fn weights_modo(gamma: f32, rho: f32) {
    let m = workgroupUniformLoad(&wg_size);
    if wg_lid != 0u {
        return;
    }
    var lam = mem_simplex_start(m);
    if wt_is_finite(wg_gram_max_abs(m)) {
        var next: array<f32, 32>;
        for (var i = 0u; i < m; i++) {
            var g = 0.0;
            for (var j = 0u; j < m; j++) {
                g += wg_gram(i, j) * lam[j];
            }
            next[i] = lam[i] - gamma * (g + rho * lam[i]);
        }
        wt_project_simplex(&next, m);
        var ok = true;
        for (var i = 0u; i < m; i++) {
            ok = ok && wt_is_finite(next[i]);
        }
        if ok {
            lam = next;
        }
    }
    mem_store_vector(&lam, m);
    for (var i = 0u; i < m; i++) {
        wg_w[i] = lam[i];
    }
}
