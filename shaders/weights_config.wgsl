// weights_config.wgsl — ConFIG in Gram form, torchjd `_config.py` as concord-core's config.rs:
// D = diag(‖g_i‖) (D⁻¹_ii = 0 on zero rows), C = D⁻¹GD⁻¹, v = C⁺p (p = ones by default),
//   w = D⁻¹v · (1ᵀGD⁻¹v) / (pᵀv),   w = 0 when pᵀv ≤ 0 or G is not finite.
// G is first scaled by an exact power of two (w is invariant under G → cG). C⁺ from the Jacobi
// eigendecomposition, eigenvalues ≤ cutoff·max|λ| dropped (f32 cutoff of
// weights_workgroup.wgsl; concord-core's f64 cutoff is 1e-11).
// requires: weights_workgroup.wgsl

fn weights_config() {
    let m = workgroupUniformLoad(&wg_size);
    let mx = wg_gram_max_abs(m);
    let finite = wt_is_finite(mx);
    let f = wg_pow2_factor(select(0.0, mx, finite));
    var d_inv: array<f32, 32>;
    for (var i = 0u; i < m; i++) {
        let norm = sqrt(max(wg_gram(i, i) * f, 0.0));
        d_inv[i] = select(0.0, 1.0 / norm, norm > 0.0);
    }
    for (var e = wg_lid; e < m * m; e += WG_SIZE) {
        let i = e / m;
        let j = e % m;
        wg_a[i * WG_STRIDE + j] = select(0.0, wg_gram(i, j) * f * d_inv[i] * d_inv[j], finite);
    }
    workgroupBarrier();
    wg_jacobi();
    if wg_lid != 0u {
        return;
    }
    var p: array<f32, 32>;
    for (var i = 0u; i < m; i++) {
        p[i] = wg_param_vec[i];
    }
    var lmax = 0.0;
    for (var k = 0u; k < m; k++) {
        lmax = max(lmax, abs(wg_eigenvalue(k)));
    }
    let cut = wg_rank_cutoff(m) * lmax;
    var v: array<f32, 32>;
    for (var k = 0u; k < m; k++) {
        let l = wg_eigenvalue(k);
        if l > cut {
            let coef = wg_eig_dot(k, &p, m) / l;
            for (var i = 0u; i < m; i++) {
                v[i] += wg_q[i * WG_STRIDE + k] * coef;
            }
        }
    }
    var pv = 0.0;
    var dv: array<f32, 32>;
    for (var i = 0u; i < m; i++) {
        pv += p[i] * v[i];
        dv[i] = d_inv[i] * v[i];
    }
    // 1ᵀ(G·dv) with the rescaled G.
    var length = 0.0;
    for (var i = 0u; i < m; i++) {
        for (var j = 0u; j < m; j++) {
            length += wg_gram(i, j) * f * dv[j];
        }
    }
    var ok = finite && pv > 0.0;
    for (var i = 0u; i < m; i++) {
        ok = ok && wt_is_finite(dv[i] * (length / pv));
    }
    for (var i = 0u; i < m; i++) {
        wg_w[i] = select(0.0, dv[i] * (length / pv), ok);
    }
}
