// mlp_dense_forward.wgsl — one dense layer over a mini-batch: z = a·Wᵀ + b (B × fan_out), and
// optionally the activation φ(z). W (fan_out × fan_in, row-major) and b sit in the flat
// parameter vector at w_off / b_off, in concord-core's layout. One invocation per (row, unit);
// its loop runs over fan_in ≤ 1024.
// requires: mlp_index.wgsl mlp_activation.wgsl

struct DenseParams {
    rows: u32,
    fan_in: u32,
    fan_out: u32,
    w_off: u32,
    b_off: u32,
    act: u32,
    // 1: also write φ(z) to d_act; 0: d_act is a placeholder (heads keep raw outputs).
    store_act: u32,
    groups_x: u32,
}

@group(0) @binding(0) var<storage, read> d_in: array<f32>;
@group(0) @binding(1) var<storage, read> d_params: array<f32>;
@group(0) @binding(2) var<storage, read_write> d_pre: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_act: array<f32>;
@group(0) @binding(4) var<uniform> dp: DenseParams;

@compute @workgroup_size(256)
fn dense_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_index(wid, lid, dp.groups_x);
    if e >= dp.rows * dp.fan_out {
        return;
    }
    let r = e / dp.fan_out;
    let j = e % dp.fan_out;
    var z = d_params[dp.b_off + j];
    let a0 = r * dp.fan_in;
    let w0 = dp.w_off + j * dp.fan_in;
    for (var i = 0u; i < dp.fan_in; i++) {
        z += d_in[a0 + i] * d_params[w0 + i];
    }
    d_pre[e] = z;
    if dp.store_act == 1u {
        d_act[e] = act_apply(dp.act, z);
    }
}
