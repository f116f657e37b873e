// weights_gradvac.wgsl — Gradient Vaccine in Gram form, torchjd `_gradvac.py` as concord-core's
// gradvac.rs. Row i of C (initially I) stores g_i^PC = Σ_k C_ik g_k; for each task i, visit the
// other tasks j in PCGrad's seeded order (weights_pcgrad.wgsl, the same (seed, call, task)
// shuffle as the CPU's `visit_order`):
//   φ = (C_i G)_j / (‖g_i^PC‖‖g_j‖ + eps);  if φ < φ̂_ij:
//   C_ij += ‖g_i^PC‖(φ̂_ij√(1−φ²) − φ√(1−φ̂_ij²)) / (‖g_j‖√(1−φ̂_ij²) + eps);
//   always φ̂_ij ← (1−β)φ̂_ij + βφ.   w = Σ_i C_i.
// φ̂ (m × m, row stride 32) lives in weights_memory.wgsl. Rows are independent, so invocation i
// builds row i (O(m²) steps, keeping C_i G up to date instead of recomputing it). G is used as
// given (eps is in its units). A non-finite G, or a non-finite w, gives the plain sum
// w = 1 and leaves φ̂ as it was, as on the CPU.
// requires: weights_memory.wgsl weights_pcgrad.wgsl

fn weights_gradvac(beta: f32, eps: f32, seed: u32, call: u32) {
    let m = workgroupUniformLoad(&wg_size);
    let finite = wt_is_finite(wg_gram_max_abs(m));
    let fresh = !mem_sized_for(m);
    let i = wg_lid;
    var phi_row: array<f32, 32>;
    if finite && i < m {
        var order: array<u32, 32>;
        for (var k = 0u; k < m; k++) {
            order[k] = k;
            phi_row[k] = select(wt_memory[MEM_BASE + i * 32u + k], 0.0, fresh);
        }
        var key = pcg_hash(seed ^ pcg_hash(call * 16u + i));
        for (var kk = m; kk > 1u; kk--) {
            let k = kk - 1u;
            key = pcg_hash(key);
            let j = key % (k + 1u);
            let tmp = order[k];
            order[k] = order[j];
            order[j] = tmp;
        }
        var c: array<f32, 32>;
        c[i] = 1.0;
        // cg = C_i G.
        var cg: array<f32, 32>;
        for (var k = 0u; k < m; k++) {
            cg[k] = wg_gram(i, k);
        }
        for (var idx = 0u; idx < m; idx++) {
            let j = order[idx];
            if j == i {
                continue;
            }
            var q = 0.0;
            for (var k = 0u; k < m; k++) {
                q += c[k] * cg[k];
            }
            let norm_i = sqrt(max(q, 0.0));
            let norm_j = sqrt(max(wg_gram(j, j), 0.0));
            let phi = cg[j] / (norm_i * norm_j + eps);
            if !wt_is_finite(phi) {
                continue;
            }
            let aim = phi_row[j];
            if phi < aim {
                // (1 − x)(1 + x) rather than 1 − x²: exact-ish in f32 as |x| → 1, where the
                // correction divides by it (the CPU's f64 1 − x² is accurate there).
                let s_phi = sqrt(max((1.0 - phi) * (1.0 + phi), 0.0));
                let s_target = sqrt(max((1.0 - aim) * (1.0 + aim), 0.0));
                let w = norm_i * (aim * s_phi - phi * s_target) / (norm_j * s_target + eps);
                if wt_is_finite(w) {
                    c[j] += w;
                    for (var k = 0u; k < m; k++) {
                        cg[k] += w * wg_gram(k, j);
                    }
                }
            }
            phi_row[j] = (1.0 - beta) * aim + beta * phi;
        }
        for (var k = 0u; k < m; k++) {
            wg_q[i * WG_STRIDE + k] = c[k];
        }
    }
    workgroupBarrier();
    if wg_lid == 0u {
        var ok = finite;
        for (var k = 0u; k < m; k++) {
            var s = 0.0;
            for (var r = 0u; r < m; r++) {
                s += wg_q[r * WG_STRIDE + k];
            }
            wg_w[k] = s;
            ok = ok && wt_is_finite(s);
        }
        if !ok {
            for (var k = 0u; k < m; k++) {
                wg_w[k] = 1.0;
            }
        }
        // The verdict for every invocation (wg_a is free here).
        wg_a[0] = select(0.0, 1.0, ok);
    }
    workgroupBarrier();
    if wg_a[0] == 1.0 && i < m {
        for (var k = 0u; k < m; k++) {
            wt_memory[MEM_BASE + i * 32u + k] = phi_row[k];
        }
        if i == 0u {
            wt_memory[0] = f32(m);
        }
    }
}
