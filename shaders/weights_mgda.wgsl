// weights_mgda.wgsl — MGDA, torchjd `MGDAWeighting(epsilon = 1e-3, max_iters = 100)`.
// requires: weights_common.wgsl
//
// Frank–Wolfe on min_{α∈Δ} αᵀGα (Sener & Koltun, Alg. 2), started at α = 1/m:
//   t = argmin_i (Gα)_i (first index on ties); a = (Gα)_t; b = αᵀGα; c = G_tt;
//   γ = 1 if c ≤ a, else 0 if b ≤ a, else (b − a)/(b + c − 2a); α ← (1−γ)α + γe_t;
//   stop when γ < epsilon.
// Every quantity is homogeneous in G, so an exact power-of-two rescale of G first changes
// nothing but the f32 range. No output rescale. Non-finite G: w = 1/m (as concord-core).
// The tests and γ use the algebraically equal difference forms, with δ = α − e_t:
//   c ≤ a ⇔ (Gδ)_t ≥ 0;  b ≤ a ⇔ αᵀGδ ≤ 0;  γ = αᵀGδ / δᵀGδ,
// which f32 evaluates without the cancellation of b + c − 2a (and, in factor mode, as
// (Rᵀα)·(Rᵀδ) / ‖Rᵀδ‖²).
// When an iteration leaves α bit-for-bit unchanged (γ = 1 onto the vertex α already is), every
// later iteration would repeat it exactly, so the loop stops there: the same result as running
// all 100 iterations, without spending them.

// epsilon and max_iters (registry parameters); weighting.wgsl sets them per call, the toy
// kernel keeps torchjd's defaults.
var<private> mgda_epsilon: f32 = 1e-3;
var<private> mgda_max_iters: u32 = 100u;

fn weights_mgda() {
    let m = wt_m;
    var alpha = wt_fill(1.0 / f32(m));
    if !wt_all_finite() {
        wt_w = alpha;
        return;
    }
    wt_pow2_rescale();
    for (var it = 0u; it < mgda_max_iters; it++) {
        var ga = wt_matvec(&alpha);
        var t = 0u;
        var best = ga[0].x;
        for (var i = 1u; i < m; i++) {
            let v = wt_get(&ga, i);
            if v < best {
                best = v;
                t = i;
            }
        }
        var delta = alpha;
        wt_put(&delta, t, wt_get(&delta, t) - 1.0);
        let c_minus_a = -wt_gv(t, &delta);
        let b_minus_a = wt_bilin(&alpha, &delta);
        var gamma: f32;
        if c_minus_a <= 0.0 {
            gamma = 1.0;
        } else if b_minus_a <= 0.0 {
            gamma = 0.0;
        } else {
            gamma = b_minus_a / wt_quad(&delta);
        }
        var changed = false;
        for (var k = 0u; k < wt_nb; k++) {
            var nk = (1.0 - gamma) * alpha[k];
            if k == t / 4u {
                nk[t % 4u] += gamma;
            }
            changed = changed || any(nk != alpha[k]);
            alpha[k] = nk;
        }
        if gamma < mgda_epsilon || !changed {
            break;
        }
    }
    wt_w = alpha;
}
