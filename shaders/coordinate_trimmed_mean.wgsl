// coordinate_trimmed_mean.wgsl — TrimmedMean straight from J (it is not a weighting: each
// coordinate keeps different rows), mirroring concord-core's aggregators/trimmed_mean.rs: for
// every column k of the row-major m × n J (m ≤ 32), sort the m entries in `f32::total_cmp`'s
// order, drop the `trim` smallest and the `trim` largest (the host clamps trim to ⌊(m − 1)/2⌋,
// `TrimmedMean::effective_trim`) and average the rest as Σ(x / kept). One invocation per column,
// k = (workgroup_id.y · groups_x + workgroup_id.x) · 256 + local index. The sum is f32 where the
// CPU's is f64 (then rounded): the two differ by f32 rounding only.

struct TrimParams {
    m: u32,
    n: u32,
    groups_x: u32,
    trim: u32,
}

@group(0) @binding(0) var<storage, read> jac: array<f32>;
@group(0) @binding(1) var<storage, read_write> update: array<f32>;
@group(0) @binding(2) var<uniform> tp: TrimParams;

// An integer with the order of `f32::total_cmp` (negative values get their magnitude bits
// flipped); the map is its own inverse.
fn total_order_key(bits: i32) -> i32 {
    return bits ^ bitcast<i32>(bitcast<u32>(bits >> 31u) >> 1u);
}

@compute @workgroup_size(256)
fn trimmed_mean(
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(workgroup_id) wid3: vec3<u32>,
) {
    let col = (wid3.y * tp.groups_x + wid3.x) * 256u + lid3.x;
    let n = tp.n;
    let m = tp.m;
    if col >= n {
        return;
    }
    // Insertion sort of the column's keys (at most 32·31/2 moves: far below any loop limit).
    var keys: array<i32, 32>;
    for (var i = 0u; i < m; i++) {
        let key = total_order_key(bitcast<i32>(jac[i * n + col]));
        var j = i;
        while j > 0u && keys[j - 1u] > key {
            keys[j] = keys[j - 1u];
            j -= 1u;
        }
        keys[j] = key;
    }
    let kept = m - 2u * tp.trim;
    var d = 0.0;
    for (var i = tp.trim; i < m - tp.trim; i++) {
        d += bitcast<f32>(total_order_key(keys[i])) / f32(kept);
    }
    update[col] = d;
}
