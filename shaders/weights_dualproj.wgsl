// weights_dualproj.wgsl — DualProj, torchjd `_dualproj.py` as concord-core's dualproj.rs:
// Ĝ = normalize(G, norm_eps) + reg_eps·I; w = argmin_v vᵀĜv s.t. v ≥ p (one projection, on
// invocation 0). Non-finite G: w = p.
// requires: weights_dual_cone.wgsl

fn weights_dualproj(norm_eps: f32, reg_eps: f32) {
    let m = workgroupUniformLoad(&wg_size);
    let finite = wg_normalised_into_a(m, norm_eps, reg_eps);
    workgroupBarrier();
    if wg_lid == 0u {
        var u = WtVec();
        for (var k = 0u; k < m; k++) {
            wt_put(&u, k, wg_param_vec[k]);
        }
        var v = u;
        if finite {
            dc_load(m);
            v = dc_project(&u);
        }
        for (var k = 0u; k < m; k++) {
            wg_w[k] = wt_get(&v, k);
        }
    }
}
