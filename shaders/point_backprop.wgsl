// point_backprop.wgsl — the per-point conflict map's backward step: for every point b and task
// t, the delta one dense layer hands to the layer below,
//   D_out[b, t, i] = (Σ_j D_in[b, t, j]·W[j, i]) · φ'(Z_prev[b, i]),
// with W (fan_out × fan_in) at w_off in the flat parameters and Z_prev the lower layer's
// pre-activation (rows × fan_in). Deltas are stored point-major: D[b, t, ·] at
// ((b·tasks + t)·width). A dispatch covers `count` tasks: input task in_t0 + t of in_tasks,
// output task out_t0 + t of out_tasks — a head (its own 1-task gradient buffer into task slot t
// of the stack) or the trunk (all m tasks at once). Nothing is divided by the batch size: each
// point's delta is its own per-sample gradient. One invocation per (point, task, input unit);
// its loop runs over fan_out ≤ 256.
// requires: mlp_index.wgsl mlp_activation.wgsl

struct PointBackpropParams {
    rows: u32,
    fan_in: u32,
    fan_out: u32,
    w_off: u32,
    act: u32,
    count: u32,
    in_tasks: u32,
    in_t0: u32,
    out_tasks: u32,
    out_t0: u32,
    groups_x: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> pb_din: array<f32>;
@group(0) @binding(1) var<storage, read> pb_params: array<f32>;
@group(0) @binding(2) var<storage, read> pb_zprev: array<f32>;
@group(0) @binding(3) var<storage, read_write> pb_dout: array<f32>;
@group(0) @binding(4) var<uniform> pbp: PointBackpropParams;

@compute @workgroup_size(256)
fn point_backprop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_index(wid, lid, pbp.groups_x);
    if e >= pbp.rows * pbp.count * pbp.fan_in {
        return;
    }
    let i = e % pbp.fan_in;
    let bt = e / pbp.fan_in;
    let t = bt % pbp.count;
    let b = bt / pbp.count;
    let in0 = (b * pbp.in_tasks + pbp.in_t0 + t) * pbp.fan_out;
    var g = 0.0;
    for (var j = 0u; j < pbp.fan_out; j++) {
        g += pb_din[in0 + j] * pb_params[pbp.w_off + j * pbp.fan_in + i];
    }
    let out = (b * pbp.out_tasks + pbp.out_t0 + t) * pbp.fan_in + i;
    pb_dout[out] = g * act_derivative(pbp.act, pb_zprev[b * pbp.fan_in + i]);
}
