// combine.wgsl — d = Jᵀw for a row-major m × n Jacobian: one invocation per column.
// Column k = (workgroup_id.y · groups_x + workgroup_id.x) · 256 + local index, so n beyond
// 65535 · 256 columns is covered by a 2-D dispatch.

struct CombineParams {
    m: u32,
    n: u32,
    groups_x: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> jac: array<f32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> update: array<f32>;
@group(0) @binding(3) var<uniform> cp: CombineParams;

@compute @workgroup_size(256)
fn combine(
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(workgroup_id) wid3: vec3<u32>,
) {
    let col = (wid3.y * cp.groups_x + wid3.x) * 256u + lid3.x;
    let n = cp.n;
    if col >= n {
        return;
    }
    var d = 0.0;
    for (var i = 0u; i < cp.m; i++) {
        d += weights[i] * jac[i * n + col];
    }
    update[col] = d;
}
