// weights_random.wgsl — Random loss weighting (RLW), torchjd `_random.py`: w = softmax(z) with
// z ~ N(0, I_m) fresh on every call.
// requires: weights_workgroup.wgsl weights_pcgrad.wgsl
//
// The GPU stream (torch's cannot be reproduced): for call c and task i, two 24-bit uniforms
//   u1 = 1 − (h(seed ^ h(64c + 2i)) >> 8)·2⁻²⁴ ∈ (0, 1],   u2 = (h(seed ^ h(64c + 2i + 1)) >> 8)·2⁻²⁴,
// h = pcg_hash (weights_pcgrad.wgsl), and Box–Muller z_i = √(−2 ln u1)·cos(2π u2).
// concord-core's `aggregators::rlw_pcg_weights(seed, call, m)` computes the same stream in f64,
// so a GPU call and a CPU call with the same (seed, call) agree to f32 rounding.

fn rlw_uniform(seed: u32, index: u32) -> f32 {
    return f32(pcg_hash(seed ^ pcg_hash(index)) >> 8u) * 5.9604645e-8;
}

fn weights_random(seed: u32, call: u32) {
    let m = workgroupUniformLoad(&wg_size);
    if wg_lid != 0u {
        return;
    }
    var z: array<f32, 32>;
    var zmax = -3.4e38;
    for (var i = 0u; i < m; i++) {
        let u1 = 1.0 - rlw_uniform(seed, call * 64u + 2u * i);
        let u2 = rlw_uniform(seed, call * 64u + 2u * i + 1u);
        z[i] = sqrt(-2.0 * log(u1)) * cos(6.2831853 * u2);
        zmax = max(zmax, z[i]);
    }
    var sum = 0.0;
    for (var i = 0u; i < m; i++) {
        z[i] = exp(z[i] - zmax);
        sum += z[i];
    }
    for (var i = 0u; i < m; i++) {
        wg_w[i] = z[i] / sum;
    }
}
