// gram.wgsl — G = J Jᵀ for a row-major m × n Jacobian (m ≤ 32, n up to what one storage
// binding holds), in two passes and without float atomics.
//
// Pass 1 (`gram_partials`, `num_groups` workgroups of 256): invocation l of workgroup g walks
//   the columns k = g·256 + l, then + num_groups·256, … and accumulates the upper triangle
//   J[i,k]·J[j,k] (i ≤ j, npairs = m(m+1)/2 ≤ 136 values) in registers; the workgroup then
//   tree-reduces each pair in workgroup memory and writes partials[g·npairs + p].
//   For m > 16 the pairs are split into chunks of 136 (workgroup_id.y = chunk), so every
//   invocation keeps at most 136 accumulators; m ≤ 16 is one chunk.
// Pass 2 (`gram_reduce`, one workgroup of 256): invocation p < npairs sums its pair over the
//   num_groups partials (Kahan-compensated) and writes G[i,j] and G[j,i] (p, p + 256, … when
//   npairs > 256).
// Pair p enumerates (i, j) with i ≤ j row by row: (0,0), (0,1), …, (0,m−1), (1,1), …

struct GramParams {
    m: u32,
    n: u32,
    num_groups: u32,
    npairs: u32,
}

const GRAM_WG: u32 = 256u;
const GRAM_CHUNK: u32 = 136u;

@group(0) @binding(0) var<storage, read> jac: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> gram_out: array<f32>;
@group(0) @binding(3) var<uniform> gp: GramParams;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn gram_partials(
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(workgroup_id) wid3: vec3<u32>,
) {
    let lid = lid3.x;
    let grp = wid3.x;
    let p0 = wid3.y * GRAM_CHUNK;
    let count = min(GRAM_CHUNK, gp.npairs - min(p0, gp.npairs));
    let m = min(gp.m, 32u);
    let n = gp.n;
    let stride = gp.num_groups * GRAM_WG;
    var acc: array<f32, 136>;
    for (var p = 0u; p < GRAM_CHUNK; p++) {
        acc[p] = 0.0;
    }
    var col = grp * GRAM_WG + lid;
    while col < n {
        var v: array<f32, 32>;
        for (var i = 0u; i < m; i++) {
            v[i] = jac[i * n + col];
        }
        var p = 0u;
        for (var i = 0u; i < m; i++) {
            for (var j = i; j < m; j++) {
                if p >= p0 && p - p0 < GRAM_CHUNK {
                    acc[p - p0] += v[i] * v[j];
                }
                p++;
            }
        }
        col += stride;
    }
    // Workgroup tree reduction, one pair at a time (count is uniform, so the barriers are too).
    for (var p = 0u; p < count; p++) {
        red[lid] = acc[p];
        workgroupBarrier();
        for (var s = GRAM_WG / 2u; s > 0u; s >>= 1u) {
            if lid < s {
                red[lid] += red[lid + s];
            }
            workgroupBarrier();
        }
        if lid == 0u {
            partials[grp * gp.npairs + p0 + p] = red[0];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn gram_reduce(@builtin(local_invocation_id) lid3: vec3<u32>) {
    let m = min(gp.m, 32u);
    for (var p = lid3.x; p < gp.npairs; p += GRAM_WG) {
        var sum = 0.0;
        var comp = 0.0;
        for (var g = 0u; g < gp.num_groups; g++) {
            let yv = partials[g * gp.npairs + p] - comp;
            let tv = sum + yv;
            comp = (tv - sum) - yv;
            sum = tv;
        }
        // Pair index → (i, j), i ≤ j.
        var i = 0u;
        var first = 0u;
        while first + (m - i) <= p {
            first += m - i;
            i++;
        }
        let j = i + (p - first);
        gram_out[i * m + j] = sum;
        gram_out[j * m + i] = sum;
    }
}
