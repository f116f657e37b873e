// weights_common.wgsl — state and small linear algebra shared by every weighting function
// (w = f(G), m ≤ 32).
//
// The weighting functions (weights_*.wgsl) are plain functions over these per-invocation
// `private` variables, so the same code runs in `weighting.wgsl` (one invocation per call) and
// inside the fused toy kernel (`toy_trajectory.wgsl`, one invocation per run).
//
// Usage, Gram mode: wt_begin(m); wt_set(i, j, G_ij) for every entry.
// Usage, factor mode: wt_begin_factor(m, k); wt_set_factor(i, l, R_il) with G = RRᵀ (k ≤ 32),
//   e.g. R = J when the Jacobian is small (the toy kernel). Then quadratic forms are computed as
//   vᵀGv = ‖Rᵀv‖², which has no cancellation: near Pareto stationarity ‖Jᵀw‖² ≈ 1e-8 while
//   G's entries are O(1), below what vᵀ(Gv) resolves in f32 (≈ 6e-8·‖G‖), and CAGrad's
//   ‖g_w‖ ≥ 1e-4 test would be decided by rounding.
// Then call a weights_* function and read wt_weight(i) for i < m. The functions may rescale the
// stored G or R. They only touch G through wt_gram, wt_matvec, wt_gv, wt_bilin and wt_quad.
//
// Layout: vectors of length ≤ 32 are `array<vec4<f32>, 8>` (entry i in block i/4, lane i%4);
// G is 8 × 8 blocks of mat4x4 (block (bi, bj) at index bi·8 + bj; G_ij in column j%4, row i%4,
// so `block * v` is the block's matrix–vector product). Only the first wt_nb = ⌈m/4⌉ blocks
// are used; unused lanes hold 0 and stay 0.
// Why blocks: Mesa's llvmpipe (lavapipe, the CI adapter) stops every loop of an invocation
// once the invocation has taken 65 535 loop back-edges in total (LP_MAX_TGSI_LOOP_ITERATIONS,
// shared by all loops). Scalar m × m loops cost ~m² back-edges per matrix–vector product;
// blocked ones ≤ 72 (m = 32), which keeps a CAGrad solve for m = 32 inside that budget.
// Kernels also detect the cut (see `wt_sentinel` uses) instead of returning cut-short results.
//
// Fragment assembly: a file names what it needs on lines `// requires: a.wgsl b.wgsl`;
// concord-gpu (src/shaders.rs) concatenates the requirements (depth first, each once) in
// front of the file. This file requires nothing.

const WT_MAX_M: u32 = 32u;
// Blocks per row of wt_g (WT_MAX_M / 4).
const WT_NB_MAX: u32 = 8u;

alias WtVec = array<vec4<f32>, 8>;

var<private> wt_m: u32;
var<private> wt_nb: u32;
// Factor mode when wt_factor; then wt_g holds R (m × k, kb = ⌈k/4⌉ block columns).
var<private> wt_factor: bool;
var<private> wt_kb: u32;
var<private> wt_g: array<mat4x4<f32>, 64>;
var<private> wt_w: WtVec;

fn wt_zero_blocks(rows: u32, cols: u32) {
    for (var bi = 0u; bi < rows; bi++) {
        for (var bj = 0u; bj < cols; bj++) {
            wt_g[bi * WT_NB_MAX + bj] = mat4x4<f32>();
        }
    }
}

// Start a new m × m Gramian (Gram mode): sets m, zeroes the blocks in use and the weights.
fn wt_begin(m: u32) {
    wt_m = min(m, WT_MAX_M);
    wt_nb = (wt_m + 3u) / 4u;
    wt_factor = false;
    wt_kb = wt_nb;
    wt_zero_blocks(wt_nb, wt_nb);
    wt_w = WtVec();
}

// Start a Gramian given as G = RRᵀ with R of size m × k (factor mode).
fn wt_begin_factor(m: u32, k: u32) {
    wt_m = min(m, WT_MAX_M);
    wt_nb = (wt_m + 3u) / 4u;
    wt_factor = true;
    wt_kb = (min(k, WT_MAX_M) + 3u) / 4u;
    wt_zero_blocks(wt_nb, wt_kb);
    wt_w = WtVec();
}

// Gram mode: G_ij. Factor mode: R_ij.
fn wt_set(i: u32, j: u32, v: f32) {
    wt_g[(i / 4u) * WT_NB_MAX + j / 4u][j % 4u][i % 4u] = v;
}

fn wt_set_factor(i: u32, l: u32, v: f32) {
    wt_set(i, l, v);
}

// Rᵀv (factor mode; a k-vector).
fn wt_rt(v: ptr<function, WtVec>) -> WtVec {
    var out = WtVec();
    for (var bj = 0u; bj < wt_kb; bj++) {
        var acc = vec4<f32>(0.0);
        for (var bi = 0u; bi < wt_nb; bi++) {
            acc += transpose(wt_g[bi * WT_NB_MAX + bj]) * (*v)[bi];
        }
        out[bj] = acc;
    }
    return out;
}

// R t (factor mode; t a k-vector).
fn wt_r(t: ptr<function, WtVec>) -> WtVec {
    var out = WtVec();
    for (var bi = 0u; bi < wt_nb; bi++) {
        var acc = vec4<f32>(0.0);
        for (var bj = 0u; bj < wt_kb; bj++) {
            acc += wt_g[bi * WT_NB_MAX + bj] * (*t)[bj];
        }
        out[bi] = acc;
    }
    return out;
}

// Row i of R as a k-vector (factor mode).
fn wt_r_row(i: u32) -> WtVec {
    var out = WtVec();
    for (var bj = 0u; bj < wt_kb; bj++) {
        let blk = wt_g[(i / 4u) * WT_NB_MAX + bj];
        let r = i % 4u;
        out[bj] = vec4<f32>(blk[0][r], blk[1][r], blk[2][r], blk[3][r]);
    }
    return out;
}

fn wt_gram(i: u32, j: u32) -> f32 {
    if wt_factor {
        var ri = wt_r_row(i);
        var rj = wt_r_row(j);
        var s = 0.0;
        for (var b = 0u; b < wt_kb; b++) {
            s += dot(ri[b], rj[b]);
        }
        return s;
    }
    return wt_g[(i / 4u) * WT_NB_MAX + j / 4u][j % 4u][i % 4u];
}

fn wt_weight(i: u32) -> f32 {
    return wt_w[i / 4u][i % 4u];
}

// 1 on the lanes of block b that are tasks (index < m), 0 elsewhere.
fn wt_mask(b: u32) -> vec4<f32> {
    let idx = vec4<u32>(0u, 1u, 2u, 3u) + vec4<u32>(b * 4u);
    return select(vec4<f32>(0.0), vec4<f32>(1.0), idx < vec4<u32>(wt_m));
}

fn wt_get(v: ptr<function, WtVec>, i: u32) -> f32 {
    return (*v)[i / 4u][i % 4u];
}

fn wt_put(v: ptr<function, WtVec>, i: u32, x: f32) {
    (*v)[i / 4u][i % 4u] = x;
}

// The vector with value x on the task lanes.
fn wt_fill(x: f32) -> WtVec {
    var out = WtVec();
    for (var b = 0u; b < wt_nb; b++) {
        out[b] = x * wt_mask(b);
    }
    return out;
}

// G v.
fn wt_matvec(v: ptr<function, WtVec>) -> WtVec {
    if wt_factor {
        var t = wt_rt(v);
        return wt_r(&t);
    }
    var out = WtVec();
    for (var bi = 0u; bi < wt_nb; bi++) {
        var acc = vec4<f32>(0.0);
        for (var bj = 0u; bj < wt_nb; bj++) {
            acc += wt_g[bi * WT_NB_MAX + bj] * (*v)[bj];
        }
        out[bi] = acc;
    }
    return out;
}

// (G v)_j for one j (G symmetric: column j of G dotted with v).
fn wt_gv(j: u32, v: ptr<function, WtVec>) -> f32 {
    if wt_factor {
        var t = wt_rt(v);
        var rj = wt_r_row(j);
        var s = 0.0;
        for (var b = 0u; b < wt_kb; b++) {
            s += dot(rj[b], t[b]);
        }
        return s;
    }
    var s = 0.0;
    for (var bk = 0u; bk < wt_nb; bk++) {
        s += dot(wt_g[bk * WT_NB_MAX + j / 4u][j % 4u], (*v)[bk]);
    }
    return s;
}

fn wt_dot(a: ptr<function, WtVec>, b: ptr<function, WtVec>) -> f32 {
    var s = 0.0;
    for (var k = 0u; k < wt_nb; k++) {
        s += dot((*a)[k], (*b)[k]);
    }
    return s;
}

// uᵀGv; in factor mode (Rᵀu)·(Rᵀv), without cancellation.
fn wt_bilin(u: ptr<function, WtVec>, v: ptr<function, WtVec>) -> f32 {
    if wt_factor {
        var ru = wt_rt(u);
        var rv = wt_rt(v);
        var s = 0.0;
        for (var b = 0u; b < wt_kb; b++) {
            s += dot(ru[b], rv[b]);
        }
        return s;
    }
    var gv = wt_matvec(v);
    return wt_dot(u, &gv);
}

// vᵀGv ≥ 0.
fn wt_quad(v: ptr<function, WtVec>) -> f32 {
    return max(wt_bilin(v, v), 0.0);
}

fn wt_trace() -> f32 {
    if wt_factor {
        // tr RRᵀ = ‖R‖_F².
        var t = 0.0;
        for (var bi = 0u; bi < wt_nb; bi++) {
            for (var bj = 0u; bj < wt_kb; bj++) {
                let blk = wt_g[bi * WT_NB_MAX + bj];
                t += dot(blk[0], blk[0]) + dot(blk[1], blk[1]) + dot(blk[2], blk[2]) + dot(blk[3], blk[3]);
            }
        }
        return t;
    }
    var t = 0.0;
    for (var b = 0u; b < wt_nb; b++) {
        let blk = wt_g[b * WT_NB_MAX + b];
        t += blk[0][0] + blk[1][1] + blk[2][2] + blk[3][3];
    }
    return t;
}

fn wt_is_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

fn wt_all_finite() -> bool {
    var ok = true;
    for (var bi = 0u; bi < wt_nb; bi++) {
        for (var bj = 0u; bj < wt_kb; bj++) {
            let blk = wt_g[bi * WT_NB_MAX + bj];
            for (var c = 0u; c < 4u; c++) {
                let bits = bitcast<vec4<u32>>(blk[c]) & vec4<u32>(0x7f800000u);
                ok = ok && all(bits != vec4<u32>(0x7f800000u));
            }
        }
    }
    return ok;
}

// Multiply every stored entry (of G, or of R) by s.
fn wt_scale_stored(s: f32) {
    for (var bi = 0u; bi < wt_nb; bi++) {
        for (var bj = 0u; bj < wt_kb; bj++) {
            wt_g[bi * WT_NB_MAX + bj] = wt_g[bi * WT_NB_MAX + bj] * s;
        }
    }
}

fn wt_max_abs() -> f32 {
    var mx = vec4<f32>(0.0);
    for (var bi = 0u; bi < wt_nb; bi++) {
        for (var bj = 0u; bj < wt_kb; bj++) {
            let blk = wt_g[bi * WT_NB_MAX + bj];
            mx = max(mx, max(max(abs(blk[0]), abs(blk[1])), max(abs(blk[2]), abs(blk[3]))));
        }
    }
    return max(max(mx.x, mx.y), max(mx.z, mx.w));
}

// Scale G by a power of two (G = 0 stays 0): max |G_ij| into [1, 2) in Gram mode, max |R_ij|
// into [1, 2) in factor mode. Exact — and f32 rounding commutes with powers of two — so the
// weights of a scale-invariant method (MGDA, PCGrad) are unchanged while products such as
// αᵀGα stay inside f32 range. concord-core's `pow2_rescaled` does the same in f64.
// Call only on finite G.
fn wt_pow2_rescale() {
    let mx = wt_max_abs();
    if mx == 0.0 {
        return;
    }
    // mx = fract · 2^exp with fract ∈ [0.5, 1): multiply by 2^(1 − exp), in two halves so each
    // factor is a normal f32 even at the ends of the exponent range.
    let e = 1 - frexp(mx).exp;
    let h = e / 2;
    wt_scale_stored(ldexp(1.0, h));
    wt_scale_stored(ldexp(1.0, e - h));
}

// torchjd's `normalize(G, eps)`: G ← G / tr G, or G ← 0 when tr G < eps. Returns false (and
// zeroes G) in the second case. Call only on finite G. An f32 trace that overflows from finite
// entries is certainly ≥ eps; then G is pre-scaled by a power of two before dividing.
fn wt_normalise(eps: f32) -> bool {
    var t = wt_trace();
    if t < eps {
        wt_scale_stored(0.0);
        return false;
    }
    if !wt_is_finite(t) {
        wt_pow2_rescale();
        t = wt_trace();
    }
    if wt_factor {
        wt_scale_stored(1.0 / sqrt(t));
    } else {
        wt_scale_stored(1.0 / t);
    }
    return true;
}
