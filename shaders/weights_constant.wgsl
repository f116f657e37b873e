// weights_constant.wgsl — Constant, torchjd `_constant.py`: w is the given vector, whatever G is.
// requires: weights_workgroup.wgsl

fn weights_constant() {
    let m = workgroupUniformLoad(&wg_size);
    if wg_lid == 0u {
        for (var i = 0u; i < m; i++) {
            wg_w[i] = wg_param_vec[i];
        }
    }
}
