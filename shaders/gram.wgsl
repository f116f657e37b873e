// gram.wgsl — G = J Jᵀ for a row-major m × n Jacobian (m ≤ 32, n up to what one storage
// binding holds), in two passes and without float atomics.
//
// Tiles: the rows are cut into blocks of 8; workgroup_id.y picks a pair of blocks (ta ≤ tb)
// of the upper triangle (⌈m/8⌉(⌈m/8⌉+1)/2 tiles: 1 for m ≤ 8, 10 for m = 32).
// Pass 1 (`gram_partials`, num_groups × tiles workgroups of 64): invocation l of group g walks
//   the columns k = g·64 + l, + num_groups·64, …, loads the 8 + 8 values J[rows of ta, k] and
//   J[rows of tb, k] as four vec4s and accumulates their outer product in four mat4x4
//   registers (constant indices only: no private arrays, which llvmpipe turns into per-lane
//   gathers and scatters). Loading 4 columns per row as one vec4 instead was measured 3×
//   slower on lavapipe (n = 1e6, m = 8), so every load is a scalar one, contiguous across lanes. The group then sums its 64 invocations' tiles
//   through workgroup memory (two halves of 8 vec4 per invocation, 8 KiB) and writes the
//   64 values to partials[(tile·num_groups + g)·64 + e].
// Pass 2 (`gram_reduce`, one workgroup of 64 per tile): invocation e sums entry e over the
//   num_groups·64 lanes' partials (Kahan-compensated) and writes G[i,j] and G[j,i] for i ≤ j < m.
//   Both halves come from one sum, so G is exactly symmetric.
// Entry e = 16·(2a + b) + 4c + r of a tile holds Σ_k J[8ta + 4a + r, k]·J[8tb + 4b + c, k].
// Rows ≥ m are read as row m − 1; the entries they feed are never read.

struct GramParams {
    m: u32,
    n: u32,
    num_groups: u32,
    tiles: u32,
}

const GRAM_WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> jac: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> gram_out: array<f32>;
@group(0) @binding(3) var<uniform> gp: GramParams;

// Row block t of the tile index (ta ≤ tb, enumerated row by row over ⌈m/8⌉ blocks).
fn gram_tile_blocks(tile: u32, nb: u32) -> vec2<u32> {
    var ta = 0u;
    var first = 0u;
    while first + (nb - ta) <= tile {
        first += nb - ta;
        ta++;
    }
    return vec2<u32>(ta, ta + (tile - first));
}

// Start offsets (in units of `unit` values) of rows r0 … r0+3, rows ≥ m clamped to row m − 1:
// they accumulate finite garbage in tile entries that gram_reduce never reads, which is
// cheaper than masking every load.
fn gram_offsets(r0: u32, row_len: u32) -> vec4<u32> {
    let last = gp.m - 1u;
    return min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last)) * row_len;
}

fn gram_load4(o: vec4<u32>, col: u32) -> vec4<f32> {
    return vec4<f32>(jac[o.x + col], jac[o.y + col], jac[o.z + col], jac[o.w + col]);
}

fn outer_add(acc: mat4x4<f32>, a: vec4<f32>, b: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(acc[0] + a * b.x, acc[1] + a * b.y, acc[2] + a * b.z, acc[3] + a * b.w);
}

@compute @workgroup_size(64)
fn gram_partials(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid3: vec3<u32>,
) {
    let grp = wid3.x;
    let tile = wid3.y;
    let nb = (min(gp.m, 32u) + 7u) / 8u;
    let blocks = gram_tile_blocks(tile, nb);
    let ra = blocks.x * 8u;
    let rb = blocks.y * 8u;
    let n = gp.n;
    let stride = gp.num_groups * GRAM_WG;
    var a00 = mat4x4<f32>();
    var a01 = mat4x4<f32>();
    var a10 = mat4x4<f32>();
    var a11 = mat4x4<f32>();
    // Diagonal tiles skip a10: its entries (i > j) are not read by gram_reduce.
    {
        let oa0 = gram_offsets(ra, n);
        let oa1 = gram_offsets(ra + 4u, n);
        let ob0 = gram_offsets(rb, n);
        let ob1 = gram_offsets(rb + 4u, n);
        var col = grp * GRAM_WG + lid;
        if ra == rb && ra + 4u >= gp.m {
            // A diagonal tile whose second half is past row m − 1 (m ≤ 4, for one): only a00.
            while col < n {
                let v0 = gram_load4(oa0, col);
                a00 = outer_add(a00, v0, v0);
                col += stride;
            }
        } else if ra == rb {
            while col < n {
                let v0 = gram_load4(oa0, col);
                let v1 = gram_load4(oa1, col);
                a00 = outer_add(a00, v0, v0);
                a01 = outer_add(a01, v0, v1);
                a11 = outer_add(a11, v1, v1);
                col += stride;
            }
        } else {
            while col < n {
                let u0 = gram_load4(oa0, col);
                let u1 = gram_load4(oa1, col);
                let w0 = gram_load4(ob0, col);
                let w1 = gram_load4(ob1, col);
                a00 = outer_add(a00, u0, w0);
                a01 = outer_add(a01, u0, w1);
                a10 = outer_add(a10, u1, w0);
                a11 = outer_add(a11, u1, w1);
                col += stride;
            }
        }
    }
    // Every invocation writes its own tile: no workgroup reduction, so no barrier (llvmpipe
    // compiles a shader with barriers into coroutines, whose frames hold the accumulators in
    // memory: 2–3× slower). Layout partials[(tile·64 + e)·lanes + lane], contiguous across lanes.
    let lanes = gp.num_groups * GRAM_WG;
    let lane = grp * GRAM_WG + lid;
    let base = tile * 64u * lanes + lane;
    for (var c = 0u; c < 4u; c++) {
        for (var r = 0u; r < 4u; r++) {
            let e = 4u * c + r;
            partials[base + e * lanes] = a00[c][r];
            partials[base + (16u + e) * lanes] = a01[c][r];
            partials[base + (32u + e) * lanes] = a10[c][r];
            partials[base + (48u + e) * lanes] = a11[c][r];
        }
    }
}

@compute @workgroup_size(64)
fn gram_reduce(
    @builtin(local_invocation_index) e: u32,
    @builtin(workgroup_id) wid3: vec3<u32>,
) {
    let tile = wid3.x;
    let m = min(gp.m, 32u);
    let nb = (m + 7u) / 8u;
    let blocks = gram_tile_blocks(tile, nb);
    // e = 16·(2a + b) + 4c + r.
    let a = e / 32u;
    let b = (e / 16u) % 2u;
    let c = (e / 4u) % 4u;
    let r = e % 4u;
    let i = blocks.x * 8u + a * 4u + r;
    let j = blocks.y * 8u + b * 4u + c;
    if i >= m || j >= m || i > j {
        return;
    }
    var sum = 0.0;
    var comp = 0.0;
    let lanes = gp.num_groups * GRAM_WG;
    for (var l = 0u; l < lanes; l++) {
        let yv = partials[(tile * 64u + e) * lanes + l] - comp;
        let tv = sum + yv;
        comp = (tv - sum) - yv;
        sum = tv;
    }
    gram_out[i * m + j] = sum;
    gram_out[j * m + i] = sum;
}
