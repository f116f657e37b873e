// weights_workgroup.wgsl — shared state of the weightings that run on a whole workgroup
// (UPGrad, DualProj, IMTL-G, Aligned-MTL, ConFIG, Constant, Random), m ≤ 32.
// requires: weights_common.wgsl
//
// Why a workgroup: an m × m eigendecomposition or m dual-cone QPs cost O(m³) scalar steps, and
// lavapipe stops an invocation after 65 535 loop iterations in total (see weights_common.wgsl).
// Spread over WG_SIZE invocations (Jacobi: one rotation pair per invocation; UPGrad: one QP per
// invocation), each invocation stays far below that budget for m = 32.
//
// Usage (weighting.wgsl): every invocation sets wg_lid and wg_param_vec; invocation 0 stores m
// in wg_size and the Gramian in wg_g (row-major, stride WG_STRIDE); barrier; then every
// invocation calls the same weights_* function (the barriers inside need uniform control flow),
// which leaves the weights in wg_w. Loop bounds that contain barriers come from
// workgroupUniformLoad, so they are uniform by construction.

const WG_SIZE: u32 = 64u;
const WG_STRIDE: u32 = 32u;
const WG_CELLS: u32 = 1024u;

var<workgroup> wg_size: u32;
// The Gramian as given (wg_g), the matrix a method works on (wg_a: normalised G, or the Jacobi
// iterate whose diagonal ends up holding the eigenvalues), the eigenvectors (wg_q, column k) or
// per-invocation result rows, and the weights.
var<workgroup> wg_g: array<f32, 1024>;
var<workgroup> wg_a: array<f32, 1024>;
var<workgroup> wg_q: array<f32, 1024>;
var<workgroup> wg_w: array<f32, 32>;
// Jacobi: the rotation of each pair in the current round, (c, s), and its two indices.
var<workgroup> wg_rot: array<vec2<f32>, 16>;
var<workgroup> wg_rot_idx: array<vec2<u32>, 16>;

var<private> wg_lid: u32;
// The method's vector parameter (preference vector, or Constant's weights), m entries.
var<private> wg_param_vec: array<f32, 32>;

fn wg_gram(i: u32, j: u32) -> f32 {
    return wg_g[i * WG_STRIDE + j];
}

// Largest |G_ij| over the m × m block, or +inf when an entry is not finite.
fn wg_gram_max_abs(m: u32) -> f32 {
    var mx = 0.0;
    var finite = true;
    for (var i = 0u; i < m; i++) {
        for (var j = 0u; j < m; j++) {
            let v = wg_gram(i, j);
            finite = finite && wt_is_finite(v);
            mx = max(mx, abs(v));
        }
    }
    // +inf from a runtime value: Chrome's WGSL compiler (Tint) rejects a constant expression
    // that evaluates to inf ("value inf cannot be represented as 'f32'").
    var inf_bits = 0x7f800000u;
    return select(bitcast<f32>(inf_bits), mx, finite);
}

// The exact power of two 2^(1 − e) that brings max |G_ij| = mx into [1, 2) (1 when mx = 0).
fn wg_pow2_factor(mx: f32) -> f32 {
    if mx == 0.0 {
        return 1.0;
    }
    return ldexp(1.0, 1 - frexp(mx).exp);
}

// wg_a ← normalize(G, norm_eps) + reg_eps·I (torchjd: G / tr G, or 0 when tr G < norm_eps;
// tr G = 0 gives 0 even for norm_eps = 0). Every invocation computes the same scalars; each
// writes its share of wg_a. Returns false when G has a non-finite entry (wg_a then is
// unspecified). The caller must barrier before reading wg_a.
fn wg_normalised_into_a(m: u32, norm_eps: f32, reg_eps: f32) -> bool {
    let mx = wg_gram_max_abs(m);
    if !wt_is_finite(mx) {
        return false;
    }
    var trace = 0.0;
    for (var i = 0u; i < m; i++) {
        trace += wg_gram(i, i);
    }
    // An overflowing trace is ≥ any eps: rescale exactly by a power of two first.
    let f = wg_pow2_factor(mx);
    var scaled_trace = 0.0;
    for (var i = 0u; i < m; i++) {
        scaled_trace += wg_gram(i, i) * f;
    }
    let zero = trace < norm_eps || !(scaled_trace > 0.0);
    for (var e = wg_lid; e < m * m; e += WG_SIZE) {
        let i = e / m;
        let j = e % m;
        var v = 0.0;
        if !zero {
            v = (wg_gram(i, j) * f) / scaled_trace;
        }
        if i == j {
            v += reg_eps;
        }
        wg_a[i * WG_STRIDE + j] = v;
    }
    return true;
}

// Round-robin tournament: player `i` of round `r` among `mm` (even) players; positions k and
// mm−1−k meet, so each round pairs every index once and mm−1 rounds pair every two once.
fn wg_player(i: u32, r: u32, mm: u32) -> u32 {
    if i == 0u {
        return 0u;
    }
    return (i - 1u + r) % (mm - 1u) + 1u;
}

const JACOBI_SWEEPS: u32 = 10u;

// Eigendecomposition of the symmetric m × m matrix in wg_a by the cyclic Jacobi method with
// the parallel (round-robin) ordering: each round rotates m/2 disjoint (p, q) planes at once,
// invocation k < m/2 computing the rotation that zeroes A_pq (Numerical Recipes §11.1:
// θ = (A_qq − A_pp)/(2A_pq), t = sgn θ/(|θ| + √(θ² + 1)), c = 1/√(t² + 1), s = tc), then all
// invocations apply A ← PᵀA, A ← AP, Q ← QP to their share of rows/columns. Rotations in
// disjoint planes commute, so a round equals m/2 sequential rotations. 10 sweeps: Jacobi
// converges quadratically; in f32 the off-diagonal mass is at rounding level after 5–7 sweeps
// for m = 32. On return wg_a's diagonal holds the eigenvalues (unsorted) and wg_q's column k the
// eigenvector of eigenvalue k. Every invocation must call it (barriers).
fn wg_jacobi() {
    let m = workgroupUniformLoad(&wg_size);
    let mm = m + (m & 1u);
    let half = mm / 2u;
    for (var e = wg_lid; e < WG_CELLS; e += WG_SIZE) {
        wg_q[e] = select(0.0, 1.0, e / WG_STRIDE == e % WG_STRIDE);
    }
    workgroupBarrier();
    for (var sweep = 0u; sweep < JACOBI_SWEEPS; sweep++) {
        for (var r = 0u; r + 1u < mm; r++) {
            if wg_lid < half {
                let k = wg_lid;
                let p0 = wg_player(k, r, mm);
                let q0 = wg_player(mm - 1u - k, r, mm);
                let p = min(p0, q0);
                let q = max(p0, q0);
                var cs = vec2<f32>(1.0, 0.0);
                if q < m {
                    let apq = wg_a[p * WG_STRIDE + q];
                    if apq != 0.0 {
                        let theta = (wg_a[q * WG_STRIDE + q] - wg_a[p * WG_STRIDE + p]) / (2.0 * apq);
                        var t: f32;
                        if abs(theta) > 1e18 {
                            t = 0.5 / theta;
                        } else {
                            t = select(-1.0, 1.0, theta >= 0.0) / (abs(theta) + sqrt(theta * theta + 1.0));
                        }
                        let c = 1.0 / sqrt(t * t + 1.0);
                        cs = vec2<f32>(c, t * c);
                    }
                }
                wg_rot[k] = cs;
                wg_rot_idx[k] = vec2<u32>(p, q);
            }
            workgroupBarrier();
            // Rows p, q of A: A ← PᵀA.
            for (var e = wg_lid; e < half * m; e += WG_SIZE) {
                let k = e / m;
                let j = e % m;
                let pq = wg_rot_idx[k];
                if pq.y < m {
                    let cs = wg_rot[k];
                    let apj = wg_a[pq.x * WG_STRIDE + j];
                    let aqj = wg_a[pq.y * WG_STRIDE + j];
                    wg_a[pq.x * WG_STRIDE + j] = cs.x * apj - cs.y * aqj;
                    wg_a[pq.y * WG_STRIDE + j] = cs.y * apj + cs.x * aqj;
                }
            }
            workgroupBarrier();
            // Columns p, q of A and Q: A ← AP, Q ← QP.
            for (var e = wg_lid; e < half * m; e += WG_SIZE) {
                let k = e / m;
                let i = e % m;
                let pq = wg_rot_idx[k];
                if pq.y < m {
                    let cs = wg_rot[k];
                    let aip = wg_a[i * WG_STRIDE + pq.x];
                    let aiq = wg_a[i * WG_STRIDE + pq.y];
                    wg_a[i * WG_STRIDE + pq.x] = cs.x * aip - cs.y * aiq;
                    wg_a[i * WG_STRIDE + pq.y] = cs.y * aip + cs.x * aiq;
                    let qip = wg_q[i * WG_STRIDE + pq.x];
                    let qiq = wg_q[i * WG_STRIDE + pq.y];
                    wg_q[i * WG_STRIDE + pq.x] = cs.x * qip - cs.y * qiq;
                    wg_q[i * WG_STRIDE + pq.y] = cs.y * qip + cs.x * qiq;
                }
            }
            workgroupBarrier();
        }
    }
}

fn wg_eigenvalue(k: u32) -> f32 {
    return wg_a[k * WG_STRIDE + k];
}

// q_kᵀ x for eigenvector k and an m-vector x.
fn wg_eig_dot(k: u32, x: ptr<function, array<f32, 32>>, m: u32) -> f32 {
    var s = 0.0;
    for (var i = 0u; i < m; i++) {
        s += wg_q[i * WG_STRIDE + k] * (*x)[i];
    }
    return s;
}

// f32 rank cutoff for eigenvalues, relative to the largest |λ|: torch uses m·ε(f64); the
// f32 eigenvalues of a rank-deficient G sit at ~m·ε(f32)·λ_max, so the cutoff is a few times
// that (4·m·2⁻²³ ≈ 1.5e-5 for m = 32).
fn wg_rank_cutoff(m: u32) -> f32 {
    return 4.0 * f32(m) * 1.1920929e-7;
}
