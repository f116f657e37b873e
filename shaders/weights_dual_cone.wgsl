// weights_dual_cone.wgsl — the dual-cone projection shared by UPGrad and DualProj (torchjd
// `_dual_cone.py`, concord-core's dual_cone.rs): v* = argmin_v vᵀĜv s.t. v ≥ u, in one
// invocation, for the Ĝ in wg_a (loaded into that invocation's private blocks first).
// requires: weights_workgroup.wgsl
//
// Algorithm: the primal active-set iteration concord-core runs first (`refine` from v = u):
//   * Ĝu ≥ 0 already: u is optimal (KKT with μ = Ĝu ≥ 0 on every coordinate);
//   * otherwise start with the free set F = {k : (Ĝu)_k < 0}, the active set A the rest;
//   * solve Ĝ_FF v_F = −Ĝ_FA u_A, v_A = u_A (Cholesky of the system with active rows/columns
//     replaced by the identity; a pivot ≤ DC_PIVOT·max diag is dropped, its coordinate set to
//     0: for a PSD Ĝ = JJᵀ/tr G the system is consistent and any solution gives the same Jᵀv);
//   * flip the violated conditions (a free coordinate below its bound, or an active one whose
//     multiplier (Ĝv)_k is negative) until none exceeds DC_TOL·scale·(1 + max Ĝ): all of them
//     at once while their count keeps falling (block principal pivoting, Júdice & Pires 1994,
//     with 3 grace steps), else the most violated one (concord-core's rule, which cannot cycle).
//     Flipping one at a time would need ~m steps from the start set at m = 32, too many for
//     lavapipe's loop budget.
// An exact method (like quadprog, which torchjd calls): it ends on the optimum's active set, so
// the f32 answer differs from the f64 one only by the rounding of one m × m solve. Cost per
// step: one blocked Cholesky (≈ m³/24 vec4 steps, ~1.4k loop iterations at m = 32); it usually
// settles in 2–5 steps. It is capped at 4m + 8 steps (concord-core: 2m + 4, then clarabel).

const DC_TOL: f32 = 1e-5;
const DC_PIVOT: f32 = 4e-6;
const DC_BLOCK_TRIES: u32 = 3u;

// Cholesky factor rows: row i is dc_l[i·8 .. i·8 + 8) (vec4 chunks, lane = column % 4).
var<private> dc_l: array<vec4<f32>, 256>;

// This invocation's private copy of the m × m matrix in wg_a (Gram mode of weights_common).
fn dc_load(m: u32) {
    wt_begin(m);
    for (var i = 0u; i < m; i++) {
        for (var j = 0u; j < m; j++) {
            wt_set(i, j, wg_a[i * WG_STRIDE + j]);
        }
    }
}

fn dc_row_dot(i: u32, j: u32, chunks: u32) -> f32 {
    var s = vec4<f32>(0.0);
    for (var c = 0u; c < chunks; c++) {
        s += dc_l[i * 8u + c] * dc_l[j * 8u + c];
    }
    return s.x + s.y + s.z + s.w;
}

fn dc_set_l(i: u32, j: u32, v: f32) {
    dc_l[i * 8u + j / 4u][j % 4u] = v;
}

fn dc_get_l(i: u32, j: u32) -> f32 {
    return dc_l[i * 8u + j / 4u][j % 4u];
}

// v with v_A = u_A and Ĝ_FF v_F = −Ĝ_FA u_A.
fn dc_solve_free(u: ptr<function, WtVec>, free: ptr<function, array<bool, 32>>) -> WtVec {
    let m = wt_m;
    var ua = WtVec();
    var maxdiag = 0.0;
    for (var k = 0u; k < m; k++) {
        if !(*free)[k] {
            wt_put(&ua, k, wt_get(u, k));
        } else {
            maxdiag = max(maxdiag, wt_gram(k, k));
        }
    }
    var gua = wt_matvec(&ua);
    for (var e = 0u; e < m * 8u; e++) {
        dc_l[e] = vec4<f32>(0.0);
    }
    var dropped: array<bool, 32>;
    for (var j = 0u; j < m; j++) {
        if !(*free)[j] {
            dc_set_l(j, j, 1.0);
            continue;
        }
        let chunks = (j + 3u) / 4u;
        let d = wt_gram(j, j) - dc_row_dot(j, j, chunks);
        if !(d > DC_PIVOT * maxdiag) {
            dropped[j] = true;
            dc_set_l(j, j, 1.0);
            continue;
        }
        let ljj = sqrt(d);
        dc_set_l(j, j, ljj);
        for (var i = j + 1u; i < m; i++) {
            if (*free)[i] {
                dc_set_l(i, j, (wt_gram(i, j) - dc_row_dot(i, j, chunks)) / ljj);
            }
        }
    }
    // L y = rhs.
    var y = WtVec();
    for (var j = 0u; j < m; j++) {
        if dropped[j] {
            continue;
        }
        let rhs = select(wt_get(u, j), -wt_get(&gua, j), (*free)[j]);
        var s = vec4<f32>(0.0);
        for (var c = 0u; c < (j + 3u) / 4u; c++) {
            s += dc_l[j * 8u + c] * y[c];
        }
        wt_put(&y, j, (rhs - (s.x + s.y + s.z + s.w)) / dc_get_l(j, j));
    }
    // Lᵀ x = y.
    var x = WtVec();
    for (var jj = m; jj > 0u; jj--) {
        let j = jj - 1u;
        if dropped[j] {
            continue;
        }
        var s = wt_get(&y, j);
        for (var i = j + 1u; i < m; i++) {
            s -= dc_get_l(i, j) * wt_get(&x, i);
        }
        wt_put(&x, j, s / dc_get_l(j, j));
    }
    return x;
}

fn dc_amax(v: ptr<function, WtVec>) -> f32 {
    var mx = vec4<f32>(0.0);
    for (var b = 0u; b < wt_nb; b++) {
        mx = max(mx, abs((*v)[b]));
    }
    return max(max(mx.x, mx.y), max(mx.z, mx.w));
}

// argmin vᵀĜv s.t. v ≥ u for the private Ĝ (dc_load first).
fn dc_project(u: ptr<function, WtVec>) -> WtVec {
    let m = wt_m;
    var gu = wt_matvec(u);
    var free: array<bool, 32>;
    var any_free = false;
    for (var k = 0u; k < m; k++) {
        free[k] = wt_get(&gu, k) < 0.0;
        any_free = any_free || free[k];
    }
    if !any_free {
        return *u;
    }
    let gmax = wt_max_abs();
    let umax = dc_amax(u);
    var x = *u;
    var best_count = m + 1u;
    var tries = DC_BLOCK_TRIES;
    for (var it = 0u; it < 4u * m + 8u; it++) {
        x = dc_solve_free(u, &free);
        var gx = wt_matvec(&x);
        let tol = DC_TOL * max(umax, dc_amax(&x)) * (1.0 + gmax);
        var violated: array<bool, 32>;
        var count = 0u;
        var worst = m;
        var worst_v = tol;
        for (var k = 0u; k < m; k++) {
            var viol: f32;
            if free[k] {
                viol = wt_get(u, k) - wt_get(&x, k);
            } else {
                viol = -wt_get(&gx, k);
            }
            violated[k] = viol > tol;
            count += select(0u, 1u, violated[k]);
            if viol > worst_v {
                worst_v = viol;
                worst = k;
            }
        }
        if count == 0u {
            break;
        }
        // Block principal pivoting (Júdice & Pires 1994): flip every violated condition while
        // that keeps lowering the count (DC_BLOCK_TRIES grace steps), else only the worst one.
        if count < best_count {
            best_count = count;
            tries = DC_BLOCK_TRIES;
        } else if tries > 0u {
            tries--;
        } else {
            free[worst] = !free[worst];
            continue;
        }
        for (var k = 0u; k < m; k++) {
            if violated[k] {
                free[k] = !free[k];
            }
        }
    }
    for (var b = 0u; b < wt_nb; b++) {
        x[b] = max(x[b], (*u)[b]);
    }
    return x;
}
