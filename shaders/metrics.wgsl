// metrics.wgsl — conflict metrics read straight off an m × m Gramian (m ≤ 32), as
// concord-core's metrics.rs `cosine_from_gram`, `gms_from_gram` and `conflict_ratio`
// (shared/reference/metrics.md). One workgroup of 64; invocation e handles entries e, e + 64, …
//
// Output (f32): cos (m·m, row-major), GMS (m·m), then the definedness of each (m·m each, 1 or 0;
// metrics.md: a cosine with a zero gradient is undefined, not 0), then the conflict ratio.
//   ‖g_i‖ = √G_ii when G_ii is finite and > 0, else the row counts as zero;
//   cos_ij = 1 on the diagonal, else ((G_ab + G_ba)/2)/‖g_a‖/‖g_b‖ with a = min(i, j),
//     clamped to [−1, 1]; undefined when either row is zero;
//   GMS_ij = 2/(‖g_i‖/‖g_j‖ + ‖g_j‖/‖g_i‖) (≤ 1), 0 when exactly one row is zero, undefined
//     when both are;
//   conflict ratio = #{i < j : G_ij < 0} / (m(m−1)/2), 0 for m < 2.

struct MetricsParams {
    m: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> mg_gram: array<f32>;
@group(0) @binding(1) var<storage, read_write> mg_out: array<f32>;
@group(0) @binding(2) var<uniform> mp: MetricsParams;

fn mg_norm(i: u32) -> f32 {
    let g = mg_gram[i * mp.m + i];
    // Finite and > 0 (a NaN fails the comparison; +inf is caught by the bit test).
    if g > 0.0 && (bitcast<u32>(g) & 0x7f800000u) != 0x7f800000u {
        return sqrt(g);
    }
    return 0.0;
}

@compute @workgroup_size(64)
fn metrics(@builtin(local_invocation_index) lid: u32) {
    let m = min(mp.m, 32u);
    let mm = m * m;
    for (var e = lid; e < mm; e += 64u) {
        let i = e / m;
        let j = e % m;
        let ni = mg_norm(i);
        let nj = mg_norm(j);
        var cos = 0.0;
        var cos_defined = 0.0;
        if ni > 0.0 && nj > 0.0 {
            cos_defined = 1.0;
            if i == j {
                cos = 1.0;
            } else {
                let a = min(i, j);
                let b = max(i, j);
                let na = select(nj, ni, i < j);
                let nb = select(ni, nj, i < j);
                let g_ab = 0.5 * (mg_gram[a * m + b] + mg_gram[b * m + a]);
                cos = clamp(g_ab / na / nb, -1.0, 1.0);
            }
        }
        var gms = 0.0;
        var gms_defined = 1.0;
        if ni == 0.0 && nj == 0.0 {
            gms_defined = 0.0;
        } else if ni > 0.0 && nj > 0.0 {
            gms = min(2.0 / (ni / nj + nj / ni), 1.0);
        }
        mg_out[e] = cos;
        mg_out[mm + e] = gms;
        mg_out[2u * mm + e] = cos_defined;
        mg_out[3u * mm + e] = gms_defined;
    }
    if lid == 0u {
        var conflicts = 0u;
        for (var i = 0u; i < m; i++) {
            for (var j = i + 1u; j < m; j++) {
                if mg_gram[i * m + j] < 0.0 {
                    conflicts++;
                }
            }
        }
        var ratio = 0.0;
        if m >= 2u {
            ratio = f32(conflicts) / f32(m * (m - 1u) / 2u);
        }
        mg_out[4u * mm] = ratio;
    }
}
