// weights_aligned_mtl.wgsl — Aligned-MTL, torchjd `_aligned_mtl.py` as concord-core's
// aligned_mtl.rs: Ĝ = G / tr G (0 when tr G = 0); eigh(Ĝ) = VΛVᵀ; keep λ > cutoff·λ_max
// (none kept: B = I); B = √s·V_r Λ_r^{−1/2} V_rᵀ with s the smallest kept λ (mode 0, "min"),
// torch's lower median of the kept ones (1, "median") or their mean (2, "rmse"); w = B·p.
// Non-finite G: w = p. The f32 cutoff is weights_workgroup.wgsl's (torch: m·ε(f64)).
// requires: weights_workgroup.wgsl

fn weights_aligned_mtl(mode: u32) {
    let m = workgroupUniformLoad(&wg_size);
    let finite = wg_normalised_into_a(m, 0.0, 0.0);
    workgroupBarrier();
    wg_jacobi();
    if wg_lid != 0u {
        return;
    }
    var p: array<f32, 32>;
    for (var i = 0u; i < m; i++) {
        p[i] = wg_param_vec[i];
    }
    var lmax = wg_eigenvalue(0u);
    for (var k = 1u; k < m; k++) {
        lmax = max(lmax, wg_eigenvalue(k));
    }
    let tol = wg_rank_cutoff(m) * lmax;
    // Kept eigenvalues, descending (insertion sort; m ≤ 32).
    var kept: array<u32, 32>;
    var r = 0u;
    for (var k = 0u; k < m; k++) {
        let l = wg_eigenvalue(k);
        if l > tol {
            var pos = r;
            while pos > 0u && wg_eigenvalue(kept[pos - 1u]) < l {
                kept[pos] = kept[pos - 1u];
                pos--;
            }
            kept[pos] = k;
            r++;
        }
    }
    if !finite || r == 0u {
        for (var i = 0u; i < m; i++) {
            wg_w[i] = p[i];
        }
        return;
    }
    var scale: f32;
    if mode == 1u {
        scale = wg_eigenvalue(kept[r - 1u - (r - 1u) / 2u]);
    } else if mode == 2u {
        var s = 0.0;
        for (var a = 0u; a < r; a++) {
            s += wg_eigenvalue(kept[a]);
        }
        scale = s / f32(r);
    } else {
        scale = wg_eigenvalue(kept[r - 1u]);
    }
    var w: array<f32, 32>;
    for (var a = 0u; a < r; a++) {
        let k = kept[a];
        let coef = wg_eig_dot(k, &p, m) * sqrt(scale) / sqrt(wg_eigenvalue(k));
        for (var i = 0u; i < m; i++) {
            w[i] += wg_q[i * WG_STRIDE + k] * coef;
        }
    }
    for (var i = 0u; i < m; i++) {
        wg_w[i] = w[i];
    }
}
