// weights_krum.wgsl — Krum / Multi-Krum, torchjd `_krum.py` as concord-core's krum.rs:
// dist_ij = √max(0, G_ii + G_jj − 2G_ij), score_i = the sum of the m − f − 2 smallest
// distances to the other rows, w = 1/n_selected on the n_selected lowest scores (ties: the
// lower index, as the CPU's stable sort). Too few rows (m < f + 3 or m < n_selected) or a
// non-finite G give w = 0, as on the CPU. G is scaled by an exact power of two first (the
// ranking is invariant under G → cG). Invocation i < m scores row i (a sort of m distances).
// requires: weights_workgroup.wgsl

fn weights_krum(n_byzantine: u32, n_selected: u32) {
    let m = workgroupUniformLoad(&wg_size);
    let mx = wg_gram_max_abs(m);
    let valid = wt_is_finite(mx) && m >= n_byzantine + 3u && m >= n_selected && n_selected >= 1u;
    let f = wg_pow2_factor(select(0.0, mx, valid));
    let i = wg_lid;
    if valid && i < m {
        var dist: array<f32, 32>;
        let gii = wg_gram(i, i) * f;
        for (var j = 0u; j < m; j++) {
            dist[j] = sqrt(max(gii + wg_gram(j, j) * f - 2.0 * wg_gram(i, j) * f, 0.0));
        }
        // Insertion sort, ascending.
        for (var a = 1u; a < m; a++) {
            let v = dist[a];
            var k = a;
            loop {
                if k == 0u || dist[k - 1u] <= v {
                    break;
                }
                dist[k] = dist[k - 1u];
                k--;
            }
            dist[k] = v;
        }
        // dist[0] is the distance to itself (0): skipped, as torchjd does.
        var score = 0.0;
        for (var k = 1u; k <= m - n_byzantine - 2u; k++) {
            score += dist[k];
        }
        wg_a[i] = score;
    }
    workgroupBarrier();
    if wg_lid != 0u {
        return;
    }
    var w: array<f32, 32>;
    if valid {
        var taken: array<bool, 32>;
        for (var r = 0u; r < n_selected; r++) {
            var best = m;
            for (var j = 0u; j < m; j++) {
                if !taken[j] && (best == m || wg_a[j] < wg_a[best]) {
                    best = j;
                }
            }
            taken[best] = true;
            w[best] = 1.0 / f32(n_selected);
        }
    }
    for (var j = 0u; j < m; j++) {
        wg_w[j] = w[j];
    }
}
