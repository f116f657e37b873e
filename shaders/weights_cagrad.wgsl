// weights_cagrad.wgsl — CAGrad(c), torchjd `CAGradWeighting(c, norm_eps = 1e-4)`; no output rescale.
// requires: weights_common.wgsl
//
//   Ĝ = G / tr G (zero when tr G < 1e-4); b = 1/m; φ = c·√(bᵀĜb);
//   w* = argmin_{w∈Δ} f(w),  f(w) = wᵀĜb + φ·√(wᵀĜw)   (= g₀·g_w + φ‖g_w‖ with g_w = Rᵀw);
//   ‖g_w‖ = √(w*ᵀĜw*); w = b + (φ/‖g_w‖)·w* if ‖g_w‖ ≥ 1e-4, else w = 0 (torchjd: "approximately
//   on the Pareto front"). Non-finite G: w = 1/m (concord-core).
//
// Solver: accelerated projected gradient (FISTA) on the simplex, with
//   * Euclidean projection onto Δ by Michelot's algorithm (1986): θ = (Σ_I v − 1)/|I| over the
//     active set I, drop the entries ≤ θ, repeat until none drops (≤ m passes, usually 2–3);
//     the exact projection, like the sort-based one, without an O(m²) sort;
//   * backtracking on L (×2) tested with the exact Bregman distance of f, written without
//     cancellation: f(w⁺) − f(y) − ∇f(y)ᵀδ = φ(‖g⁺‖ − uᵀg⁺) with u = g_y/‖g_y‖, and
//     ‖g⁺‖ − uᵀg⁺ = [(yᵀĜy)(δᵀĜδ) − (yᵀĜδ)²] / [‖g_y‖(‖g_y‖‖g⁺‖ + yᵀĜw⁺)], δ = w⁺ − y.
//     Every term is O(‖δ‖²) computed from δ itself, so the test stays meaningful in f32 down to
//     steps of 1e-7, where a test on f values (f32 noise ~1e-7·|f|) would be pure noise;
//   * L shrunk by 0.9 before each step (the local curvature φλ(Ĝ)/‖g_w‖ changes along the path;
//     a stale large L slows the nearly-linear problems of small c by 10×);
//   * gradient-based adaptive restart (O'Donoghue & Candès 2015): momentum reset when
//     (y − w⁺)·(w⁺ − w) > 0;
//   * stop when ‖w⁺ − w‖∞ ≤ 1e-7 or after 1000 iterations.
// Why this one: f is smooth away from g_w = 0 but its curvature ranges over orders of magnitude
// (it is nearly linear for small c, nearly a norm for large c), and every decision must use
// quantities that are accurate in f32. Gradients and the Bregman term above are; objective
// values are not. Frank–Wolfe variants converge sublinearly here and need more iterations for
// the same accuracy. Measured with an f32 CPU transcription of this solver against an f64 solve
// of the same problem (3000 random Gramians, m ∈ {2,3,4,8,16}, rank 1..m, c ∈ {0.1..5}):
// median ‖R(w − w_ref)‖/‖g₀‖ ≈ 3e-8 (c = 0.5), p99 ≈ 1e-6 (c ≤ 0.5) to 2e-5 (c = 5), the same
// order as the effect of rounding Ĝ to f32 itself; mean 17 iterations, max 130. On lavapipe
// against concord-core (clarabel, f64): ≤ 7e-6·‖g₀‖ on the update (tests/parity.rs).
// All quadratic forms go through wt_quad / wt_bilin, so in factor mode (G = RRᵀ given as R)
// they are computed as ‖Rᵀv‖² without cancellation.

// norm_eps (registry parameter); weighting.wgsl sets it per call, the toy kernel keeps 1e-4.
var<private> cagrad_norm_eps: f32 = 1e-4;
const CAGRAD_MAX_ITERS: u32 = 1000u;
const CAGRAD_TOL: f32 = 1e-7;

// Euclidean projection of v onto the probability simplex over the task lanes.
fn cagrad_project(v: ptr<function, WtVec>) -> WtVec {
    var act = WtVec();
    for (var b = 0u; b < wt_nb; b++) {
        act[b] = wt_mask(b);
    }
    var theta = 0.0;
    for (var round = 0u; round <= WT_MAX_M; round++) {
        var s = 0.0;
        var cnt = 0.0;
        for (var b = 0u; b < wt_nb; b++) {
            s += dot((*v)[b], act[b]);
            cnt += dot(act[b], vec4<f32>(1.0));
        }
        theta = (s - 1.0) / cnt;
        var dropped = false;
        for (var b = 0u; b < wt_nb; b++) {
            let keep = select(vec4<f32>(0.0), act[b], (*v)[b] > vec4<f32>(theta));
            dropped = dropped || any(keep != act[b]);
            act[b] = keep;
        }
        if !dropped {
            break;
        }
    }
    var out = WtVec();
    for (var b = 0u; b < wt_nb; b++) {
        out[b] = max((*v)[b] - vec4<f32>(theta), vec4<f32>(0.0)) * act[b];
    }
    return out;
}

fn weights_cagrad(c: f32) {
    let m = wt_m;
    var b = wt_fill(1.0 / f32(m));
    if !wt_all_finite() {
        // Non-finite G: the mean's weights, as concord-core does.
        wt_w = b;
        return;
    }
    let kept = wt_normalise(cagrad_norm_eps);
    var gb = wt_matvec(&b);
    let phi = c * sqrt(wt_quad(&b));

    var w = b;
    var y = b;
    var t = 1.0;
    var l = 1.0;
    for (var it = 0u; it < CAGRAD_MAX_ITERS; it++) {
        var gy = wt_matvec(&y);
        let nyy = wt_quad(&y);
        let ny = sqrt(nyy);
        let has_grad = ny > 1e-20;
        let k = select(0.0, phi / ny, has_grad);
        var grad = WtVec();
        for (var q = 0u; q < wt_nb; q++) {
            grad[q] = gb[q] + k * gy[q];
        }
        l *= 0.9;
        var wp = WtVec();
        for (var bt = 0u; bt < 64u; bt++) {
            var z = WtVec();
            for (var q = 0u; q < wt_nb; q++) {
                z[q] = y[q] - grad[q] / l;
            }
            wp = cagrad_project(&z);
            if !has_grad {
                break;
            }
            var d = WtVec();
            for (var q = 0u; q < wt_nb; q++) {
                d[q] = wp[q] - y[q];
            }
            let dd = wt_dot(&d, &d);
            let dgd = wt_quad(&d);
            let ygd = wt_bilin(&y, &d);
            let ygwp = wt_bilin(&y, &wp);
            let num = max(nyy * dgd - ygd * ygd, 0.0);
            let np = sqrt(wt_quad(&wp));
            let den = ny * (ny * np + ygwp);
            var breg: f32;
            if den > 1e-30 {
                breg = phi * num / den;
            } else {
                breg = phi * (np - ygwp / ny);
            }
            if breg <= 0.5 * l * dd {
                break;
            }
            l *= 2.0;
        }
        // Adaptive restart and momentum.
        var rs = 0.0;
        var diff = vec4<f32>(0.0);
        for (var q = 0u; q < wt_nb; q++) {
            rs += dot(y[q] - wp[q], wp[q] - w[q]);
            diff = max(diff, abs(wp[q] - w[q]));
        }
        if rs > 0.0 {
            t = 1.0;
        }
        let tn = 0.5 * (1.0 + sqrt(1.0 + 4.0 * t * t));
        let mom = (t - 1.0) / tn;
        for (var q = 0u; q < wt_nb; q++) {
            y[q] = wp[q] + mom * (wp[q] - w[q]);
        }
        t = tn;
        w = wp;
        if max(max(diff.x, diff.y), max(diff.z, diff.w)) <= CAGRAD_TOL {
            break;
        }
    }

    let gw_norm = sqrt(wt_quad(&w));
    if kept && gw_norm >= cagrad_norm_eps {
        let scale = phi / gw_norm;
        for (var q = 0u; q < wt_nb; q++) {
            wt_w[q] = b[q] + scale * w[q];
        }
    } else {
        wt_w = WtVec();
    }
}
