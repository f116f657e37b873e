// point_gram.wgsl — the per-point conflict map's Gram: one trunk layer's share of every point's
// m × m Gram of its per-task gradients of the shared parameters. For one sample, layer l's weight
// gradient is δ_l ⊗ a_{l−1} and its bias gradient δ_l, so
//   g_s · g_t = Σ_l (δ_l^s · δ_l^t)(‖a_{l−1}‖² + 1)
// (concord-core model/point_conflict.rs `Mlp::point_grams`). The deltas D (rows × m × width,
// point-major, from point_backprop.wgsl) and the layer's input A (rows × fan_in: x or the layer
// below's φ(z)) give the term; `accumulate` 0 writes it (the first layer visited), 1 adds it.
// One invocation per (point, s, t), so G is symmetric bit for bit (the same products in the
// same order); its loops run over fan_in ≤ 1024 and width ≤ 256.
// requires: mlp_index.wgsl

struct PointGramParams {
    rows: u32,
    tasks: u32,
    width: u32,
    fan_in: u32,
    accumulate: u32,
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> pg_d: array<f32>;
@group(0) @binding(1) var<storage, read> pg_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> pg_gram: array<f32>;
@group(0) @binding(3) var<uniform> pgp: PointGramParams;

@compute @workgroup_size(256)
fn point_gram(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_index(wid, lid, pgp.groups_x);
    let m = pgp.tasks;
    if e >= pgp.rows * m * m {
        return;
    }
    let b = e / (m * m);
    let s = (e / m) % m;
    let t = e % m;
    var sq = 1.0;
    let a0 = b * pgp.fan_in;
    for (var i = 0u; i < pgp.fan_in; i++) {
        let a = pg_a[a0 + i];
        sq += a * a;
    }
    let ds = (b * m + s) * pgp.width;
    let dt = (b * m + t) * pgp.width;
    var dot = 0.0;
    for (var j = 0u; j < pgp.width; j++) {
        dot += pg_d[ds + j] * pg_d[dt + j];
    }
    let v = dot * sq;
    if pgp.accumulate == 1u {
        pg_gram[e] += v;
    } else {
        pg_gram[e] = v;
    }
}
