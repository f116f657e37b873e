// mlp_index.wgsl — the flat invocation index of a (possibly 2-D) dispatch of 256-wide
// workgroups: more than 65 535 workgroups spill into workgroup_id.y.

fn flat_index(wid: vec3<u32>, lid: vec3<u32>, groups_x: u32) -> u32 {
    return (wid.y * groups_x + wid.x) * 256u + lid.x;
}
