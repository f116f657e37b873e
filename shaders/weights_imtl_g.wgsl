// weights_imtl_g.wgsl — IMTL-G, torchjd `_imtl_g.py` as concord-core's imtl_g.rs:
// Ĝ = G / tr G, d = √diag(Ĝ), v = Ĝ⁺d, w = v / Σv, or w = 0 when |Σv| < 1e-12·√(tr G), when
// tr G = 0, or when G is not finite. Ĝ⁺ from the Jacobi eigendecomposition with the f32 rank
// cutoff of weights_workgroup.wgsl (eigenvalues |λ| ≤ cutoff·max|λ| dropped).
// requires: weights_workgroup.wgsl

fn weights_imtl_g() {
    let m = workgroupUniformLoad(&wg_size);
    let finite = wg_normalised_into_a(m, 0.0, 0.0);
    workgroupBarrier();
    // d before Jacobi overwrites wg_a.
    var d: array<f32, 32>;
    for (var i = 0u; i < m; i++) {
        d[i] = sqrt(max(wg_a[i * WG_STRIDE + i], 0.0));
    }
    workgroupBarrier();
    wg_jacobi();
    if wg_lid != 0u {
        return;
    }
    var trace = 0.0;
    for (var i = 0u; i < m; i++) {
        trace += wg_gram(i, i);
    }
    var lmax = 0.0;
    for (var k = 0u; k < m; k++) {
        lmax = max(lmax, abs(wg_eigenvalue(k)));
    }
    let cut = wg_rank_cutoff(m) * lmax;
    var v: array<f32, 32>;
    for (var k = 0u; k < m; k++) {
        let l = wg_eigenvalue(k);
        if abs(l) > cut {
            let coef = wg_eig_dot(k, &d, m) / l;
            for (var i = 0u; i < m; i++) {
                v[i] += wg_q[i * WG_STRIDE + k] * coef;
            }
        }
    }
    var sum = 0.0;
    for (var i = 0u; i < m; i++) {
        sum += v[i];
    }
    // √(tr G), finite even when tr G overflows f32 (then any nonzero Σv passes, as in f64).
    let sqrt_s = select(sqrt(trace), 1.8446744e19, !wt_is_finite(trace));
    let ok = finite && trace > 0.0 && abs(sum) >= 1e-12 * sqrt_s && wt_is_finite(sum);
    for (var i = 0u; i < m; i++) {
        wg_w[i] = select(0.0, v[i] / sum, ok);
    }
}
