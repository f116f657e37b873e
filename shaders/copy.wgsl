// copy.wgsl — dst = src, one vec4 per invocation: the reference kernel for `concord bench gram`
// (the best bandwidth a plain streaming kernel reaches on the adapter). Index
// k = (workgroup_id.y · groups_x + workgroup_id.x) · 256 + local index (2-D dispatch beyond
// 65535 workgroups), over `len4` vec4s.

struct CopyParams {
    len4: u32,
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> cpy: CopyParams;

@compute @workgroup_size(256)
fn copy(
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(workgroup_id) wid3: vec3<u32>,
) {
    let k = (wid3.y * cpy.groups_x + wid3.x) * 256u + lid3.x;
    if k < cpy.len4 {
        dst[k] = src[k];
    }
}
