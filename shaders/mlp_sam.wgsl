// mlp_sam.wgsl — SAM's and ASAM's ascent step on the GPU trainer (concord-core dynamics/sam.rs,
// dynamics.md §1), along the step's aggregated update d₀ (the whole update: trunk d and the
// heads' gradients):
//   SAM:  ε = ρ·d₀/‖d₀‖;  ASAM: ε = ρ·T²d₀/‖T d₀‖, T = |w| + η on weight entries, 1 on biases.
// The host saves w and d₀ into `s_sam` (copies), `sam_norm` (one workgroup) reduces ‖T d₀‖ into
// the scale ρ/‖T d₀‖ (0 for a zero direction, as the CPU's ε = 0), `sam_perturb` moves the
// parameters to w + ε; the step's second pass runs there; `sam_cosine` (one workgroup) writes
// cos(d₀, d) into the step's DYN word (mlp_optim.wgsl), and the host copies w back.
// Reductions stride over the vector and finish in a fixed tree: the same order every run.
// requires: mlp_index.wgsl

struct SamParams {
    len: u32,
    adaptive: u32,
    groups_x: u32,
    // The o_check word of the step's cos(d₀, d).
    cos_at: u32,
    rho: f32,
    eta: f32,
    _p0: f32,
    _p1: f32,
}

@group(0) @binding(0) var<storage, read_write> s_params: array<f32>;
// [w (len) | d₀ (len) | weight mask (len: 1 weight, 0 bias) | scale, unused ×3].
@group(0) @binding(1) var<storage, read_write> s_sam: array<f32>;
@group(0) @binding(2) var<storage, read> s_update: array<f32>;
@group(0) @binding(3) var<storage, read_write> s_check: array<atomic<u32>>;
@group(0) @binding(4) var<uniform> sp: SamParams;

var<workgroup> sam_a: array<f32, 256>;
var<workgroup> sam_b: array<f32, 256>;
var<workgroup> sam_c: array<f32, 256>;

// ASAM's T at entry k (1 for SAM and for biases).
fn sam_t(k: u32) -> f32 {
    if sp.adaptive != 0u && s_sam[2u * sp.len + k] != 0.0 {
        return abs(s_sam[k]) + sp.eta;
    }
    return 1.0;
}

fn sam_tree(li: u32) {
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if li < w {
            sam_a[li] += sam_a[li + w];
            sam_b[li] += sam_b[li + w];
            sam_c[li] += sam_c[li + w];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn sam_norm(@builtin(local_invocation_index) li: u32) {
    var acc = 0.0;
    for (var k = li; k < sp.len; k += 256u) {
        let v = sam_t(k) * s_sam[sp.len + k];
        acc += v * v;
    }
    sam_a[li] = acc;
    sam_b[li] = 0.0;
    sam_c[li] = 0.0;
    sam_tree(li);
    if li == 0u {
        let norm = sqrt(sam_a[0]);
        s_sam[3u * sp.len] = select(0.0, sp.rho / norm, norm > 0.0);
    }
}

@compute @workgroup_size(256)
fn sam_perturb(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = flat_index(wid, lid, sp.groups_x);
    if k >= sp.len {
        return;
    }
    let t = sam_t(k);
    s_params[k] = s_sam[k] + s_sam[3u * sp.len] * t * t * s_sam[sp.len + k];
}

@compute @workgroup_size(256)
fn sam_cosine(@builtin(local_invocation_index) li: u32) {
    var dot = 0.0;
    var aa = 0.0;
    var bb = 0.0;
    for (var k = li; k < sp.len; k += 256u) {
        let a = s_sam[sp.len + k];
        let b = s_update[k];
        dot += a * b;
        aa += a * a;
        bb += b * b;
    }
    sam_a[li] = dot;
    sam_b[li] = aa;
    sam_c[li] = bb;
    sam_tree(li);
    if li == 0u {
        // landscape::vector::cosine: 0 when either vector is zero.
        let den = sqrt(sam_b[0]) * sqrt(sam_c[0]);
        atomicStore(&s_check[sp.cos_at], bitcast<u32>(select(0.0, sam_a[0] / den, den > 0.0)));
    }
}
