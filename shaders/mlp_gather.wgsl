// mlp_gather.wgsl — copy the rows named by an index list out of a row-major table:
// dst[r, c] = src[idx[idx_off + r], c]. The trainer runs it once for the inputs and once for the
// targets of each mini-batch; `GpuTrainer::predict_hidden` runs it on each trunk layer's φ(z) of
// the grid forward pass, so dst is `Mlp::hidden_activations` at the network view's thumbnail rows.
// requires: mlp_index.wgsl

struct GatherParams {
    rows: u32,
    width: u32,
    idx_off: u32,
    groups_x: u32,
}

@group(0) @binding(0) var<storage, read> g_src: array<f32>;
@group(0) @binding(1) var<storage, read> g_idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> g_dst: array<f32>;
@group(0) @binding(3) var<uniform> gpar: GatherParams;

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_index(wid, lid, gpar.groups_x);
    if e >= gpar.rows * gpar.width {
        return;
    }
    let r = e / gpar.width;
    let c = e % gpar.width;
    g_dst[e] = g_src[g_idx[gpar.idx_off + r] * gpar.width + c];
}
