// mlp_weight_grad.wgsl — a dense layer's parameter gradient from its output gradient dZ
// (B × fan_out) and its input A (B × fan_in): dW[j, i] = Σ_b dZ[b, j]·A[b, i] (fan_out × fan_in,
// row-major, as W in the flat vector), then db[j] = Σ_b dZ[b, j]. Entry e of the block goes to
// out[out_off + e]: a row of the per-task Jacobian for trunk layers, the update vector for heads.
// One invocation per entry; its loop runs over the batch rows. `no_bias` = 1: a layer without
// bias (an MoE gate): only dW, so the entries after the block stay untouched.
// requires: mlp_index.wgsl

struct WeightGradParams {
    rows: u32,
    fan_in: u32,
    fan_out: u32,
    out_off: u32,
    groups_x: u32,
    no_bias: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> wg_dz: array<f32>;
@group(0) @binding(1) var<storage, read> wg_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> wg_out: array<f32>;
@group(0) @binding(3) var<uniform> wgp: WeightGradParams;

@compute @workgroup_size(256)
fn weight_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_index(wid, lid, wgp.groups_x);
    let n_w = wgp.fan_out * wgp.fan_in;
    if e >= n_w + select(wgp.fan_out, 0u, wgp.no_bias == 1u) {
        return;
    }
    var g = 0.0;
    if e < n_w {
        let j = e / wgp.fan_in;
        let i = e % wgp.fan_in;
        for (var b = 0u; b < wgp.rows; b++) {
            g += wg_dz[b * wgp.fan_out + j] * wg_a[b * wgp.fan_in + i];
        }
    } else {
        let j = e - n_w;
        for (var b = 0u; b < wgp.rows; b++) {
            g += wg_dz[b * wgp.fan_out + j];
        }
    }
    wg_out[wgp.out_off + e] = g;
}
