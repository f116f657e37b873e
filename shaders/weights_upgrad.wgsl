// weights_upgrad.wgsl — UPGrad, torchjd `_upgrad.py` as concord-core's upgrad.rs:
// Ĝ = normalize(G, norm_eps) + reg_eps·I; w = Σ_i argmin_v vᵀĜv s.t. v ≥ p_i e_i.
// Invocation i < m solves task i's projection (weights_dual_cone.wgsl); invocation 0 sums.
// Non-finite G: w = p.
// requires: weights_dual_cone.wgsl

fn weights_upgrad(norm_eps: f32, reg_eps: f32) {
    let m = workgroupUniformLoad(&wg_size);
    let finite = wg_normalised_into_a(m, norm_eps, reg_eps);
    workgroupBarrier();
    if wg_lid < m {
        let i = wg_lid;
        var v = WtVec();
        if wg_param_vec[i] != 0.0 {
            dc_load(m);
            var u = WtVec();
            wt_put(&u, i, wg_param_vec[i]);
            v = dc_project(&u);
        }
        for (var k = 0u; k < m; k++) {
            wg_q[i * WG_STRIDE + k] = wt_get(&v, k);
        }
    }
    workgroupBarrier();
    if wg_lid == 0u {
        for (var k = 0u; k < m; k++) {
            var s = 0.0;
            for (var i = 0u; i < m; i++) {
                s += wg_q[i * WG_STRIDE + k];
            }
            wg_w[k] = select(wg_param_vec[k], s, finite);
        }
    }
}
