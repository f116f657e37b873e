// mlp_activation_map.wgsl — φ(x) and φ'(x) for every x of a buffer (the activation kernels on
// their own, for parity tests against concord-core): out[2i] = φ(x_i), out[2i+1] = φ'(x_i).
// requires: mlp_index.wgsl mlp_activation.wgsl

struct ActMapParams {
    len: u32,
    act: u32,
    groups_x: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> am_in: array<f32>;
@group(0) @binding(1) var<storage, read_write> am_out: array<f32>;
@group(0) @binding(2) var<uniform> amp: ActMapParams;

@compute @workgroup_size(256)
fn activation_map(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, lid, amp.groups_x);
    if i >= amp.len {
        return;
    }
    let x = am_in[i];
    am_out[2u * i] = act_apply(amp.act, x);
    am_out[2u * i + 1u] = act_derivative(amp.act, x);
}
