// moe_expert_gram.wgsl — one m × m Gramian per expert over that expert's columns of the
// row-major m × n Jacobian: G_e[i, j] = Σ_{c ∈ block e} J[i, c]·J[j, c] (the MoE step record's
// per-expert task-gradient cosine; the host takes the cosines with concord-core's
// `cosine_from_gram`, as the CPU trainer's `layer_cosines`). Recorded steps only.
//
// Workgroup (i·m + j, e) of 64 invocations: invocation l sums the columns start + l, + 64, …,
// then the 64 partial sums are added in workgroup memory (a fixed tree: G_e[i, j] and
// G_e[j, i] are the same products in the same order, so G_e is exactly symmetric).
// Loop iterations per invocation: ⌈block / 64⌉.

struct ExpertGramParams {
    m: u32,
    n: u32,
    experts: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> jac: array<f32>;
// [start, end) column range of each expert's block.
@group(0) @binding(1) var<storage, read> blocks: array<u32>;
@group(0) @binding(2) var<storage, read_write> grams: array<f32>;
@group(0) @binding(3) var<uniform> gp: ExpertGramParams;

const EG_WG: u32 = 64u;
var<workgroup> eg_sums: array<f32, 64>;

@compute @workgroup_size(64)
fn moe_expert_gram(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let i = wg.x / gp.m;
    let j = wg.x % gp.m;
    let e = wg.y;
    let start = blocks[2u * e];
    let end = blocks[2u * e + 1u];
    var s = 0.0;
    for (var c = start + lane; c < end; c += EG_WG) {
        s += jac[i * gp.n + c] * jac[j * gp.n + c];
    }
    eg_sums[lane] = s;
    workgroupBarrier();
    for (var w = EG_WG / 2u; w > 0u; w = w / 2u) {
        if lane < w {
            eg_sums[lane] += eg_sums[lane + w];
        }
        workgroupBarrier();
    }
    if lane == 0u {
        grams[(e * gp.m + i) * gp.m + j] = eg_sums[0];
    }
}
