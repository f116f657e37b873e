// mlp_backprop.wgsl — the gradient one dense layer hands back to the layer below:
// dZ_prev[b, i] = (Σ_j dZ[b, j]·W[j, i]) · φ'(Z_prev[b, i]), W (fan_out × fan_in) at w_off in
// the flat parameters and Z_prev the lower layer's pre-activation (B × fan_in). One invocation
// per (row, input unit); its loop runs over fan_out ≤ 256.
// requires: mlp_index.wgsl mlp_activation.wgsl

struct BackpropParams {
    rows: u32,
    fan_in: u32,
    fan_out: u32,
    w_off: u32,
    act: u32,
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> bp_dz: array<f32>;
@group(0) @binding(1) var<storage, read> bp_params: array<f32>;
@group(0) @binding(2) var<storage, read> bp_zprev: array<f32>;
@group(0) @binding(3) var<storage, read_write> bp_dzprev: array<f32>;
@group(0) @binding(4) var<uniform> bpp: BackpropParams;

@compute @workgroup_size(256)
fn backprop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_index(wid, lid, bpp.groups_x);
    if e >= bpp.rows * bpp.fan_in {
        return;
    }
    let b = e / bpp.fan_in;
    let i = e % bpp.fan_in;
    var g = 0.0;
    for (var j = 0u; j < bpp.fan_out; j++) {
        g += bp_dz[b * bpp.fan_out + j] * bp_params[bpp.w_off + j * bpp.fan_in + i];
    }
    bp_dzprev[e] = g * act_derivative(bpp.act, bp_zprev[e]);
}
