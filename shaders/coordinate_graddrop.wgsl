// coordinate_graddrop.wgsl — GradDrop straight from J (its mask is per coordinate, so it is not
// a weighting), mirroring concord-core's aggregators/graddrop.rs (`graddrop`, f = identity,
// leak = 0): for every column k of the row-major m × n J (m ≤ 32), with s = max_i |J_ik|,
//     P_k = ½(1 + Σ_i (J_ik/s) / Σ_i |J_ik/s|),
// d_k = Σ of the positive entries if P_k > U_k, of the negative ones if P_k < U_k (in row
// order), and 0 for an all-zero column. The draws U (one per column) come from the CPU
// aggregator's own ChaCha8 stream, drawn on the host and uploaded (`draws[offset + k]`), so a
// GPU run keeps the same coordinates as the CPU run. One invocation per column,
// k = (workgroup_id.y · groups_x + workgroup_id.x) · 256 + local index.

struct DropParams {
    m: u32,
    n: u32,
    groups_x: u32,
    offset: u32,
}

@group(0) @binding(0) var<storage, read> jac: array<f32>;
@group(0) @binding(1) var<storage, read> draws: array<f32>;
@group(0) @binding(2) var<storage, read_write> update: array<f32>;
@group(0) @binding(3) var<uniform> dp: DropParams;

@compute @workgroup_size(256)
fn graddrop(
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(workgroup_id) wid3: vec3<u32>,
) {
    let col = (wid3.y * dp.groups_x + wid3.x) * 256u + lid3.x;
    let n = dp.n;
    let m = dp.m;
    if col >= n {
        return;
    }
    var s = 0.0;
    for (var i = 0u; i < m; i++) {
        s = max(s, abs(jac[i * n + col]));
    }
    // An all-zero (or, outside the contract, non-finite) column gives 0, as on the CPU.
    if m == 0u || s == 0.0 || !(s <= 3.4028235e38) {
        update[col] = 0.0;
        return;
    }
    var sum = 0.0;
    var total = 0.0;
    for (var i = 0u; i < m; i++) {
        let v = jac[i * n + col] / s;
        sum += v;
        total += abs(v);
    }
    let purity = 0.5 * (1.0 + sum / total);
    let u = draws[dp.offset + col];
    let keep_pos = purity > u;
    let keep_neg = purity < u;
    var d = 0.0;
    for (var i = 0u; i < m; i++) {
        let v = jac[i * n + col];
        if (keep_pos && v > 0.0) || (keep_neg && v < 0.0) {
            d += v;
        }
    }
    update[col] = d;
}
