// loss_weighting.wgsl — the run's loss weighting on the GPU: w_i = ∂L_total/∂L_i from the
// step's batch losses (`loss_weights`, one invocation: m ≤ 16), then task i's row of J and its
// head's gradient scaled by w_i (`scale_rows`, `scale_heads`), as concord-core's trainer does
// before the aggregator (`Trainer::combine` / the f32 path). Kinds mirror concord-core:
//   LW_GLS: `weightings::gls::gls_weights` (stateless);
//   LW_DWA: `weightings::Dwa::weights` with `EpochMeans` (the epoch's running loss sum, and the
//           means of the last two closed epochs, in `lw_state`);
//   LW_STCH: `weightings::Stch::weights` (the warmup epoch's loss sum, then the nadir);
//   LW_UW: `weightings::Uw::weights` (s, and its Adam moments: concord-core's `adam_update`
//          with the host's bias corrections); LW_IMTL_L: `weightings::ImtlL::weights`, the same;
//   LW_GRADNORM: `weightings::GradNorm::weights` (L(0), s and its Adam moments; ‖g_i‖ from G);
//   LW_FAMO: `weightings::Famo::weights` (z/(c·D), the losses kept) and `Famo::after_step`
//            (`famo_after`: the logits' Adam step on the decrease of log D over the step, from
//            the same batch's losses after the update, a second forward pass);
//   LW_RLW: `weightings::Rlw::weights`, drawn on the host from the CPU's seeded stream (as the
//           batch order is) and bound as `lw_state`: copied.
// The host passes the CPU trainer's epoch index of the step (`LwParams.epoch`).

const LW_GLS: u32 = 1u;
const LW_DWA: u32 = 2u;
const LW_STCH: u32 = 3u;
const LW_UW: u32 = 4u;
const LW_RLW: u32 = 5u;
const LW_GRADNORM: u32 = 6u;
const LW_FAMO: u32 = 7u;
const LW_IMTL_L: u32 = 8u;
// concord-core's LOSS_FLOOR.
const LW_FLOOR: f32 = 1e-12;

struct LwParams {
    kind: u32,
    m: u32,
    epoch: u32,
    shared_len: u32,
    total_len: u32,
    groups_x: u32,
    // DWA's τ, STCH's μ, UW's Adam lr.
    a: f32,
    // STCH's warmup epoch.
    warmup: u32,
    // UW's weight decay, then Adam's 1 − β₁ᵗ and 1 − β₂ᵗ (the host's, in f64 rounded once).
    b: f32,
    bias1: f32,
    bias2: f32,
    // GradNorm's α.
    gn_alpha: f32,
}

@group(0) @binding(0) var<storage, read> lw_losses: array<f32>;
// DWA: [0] running epoch + 1 (0 = none), [1] its step count, [2] last closed epoch + 1,
// [3] the one before + 1, then the running sum (m), the last closed mean (m), the one before (m).
@group(0) @binding(1) var<storage, read_write> lw_state: array<f32>;
@group(0) @binding(2) var<storage, read_write> lw_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lw_jac: array<f32>;
@group(0) @binding(4) var<storage, read_write> lw_update: array<f32>;
// Head t's parameters are [lw_heads[t], lw_heads[t + 1]).
@group(0) @binding(5) var<storage, read> lw_heads: array<u32>;
@group(0) @binding(6) var<uniform> lwp: LwParams;
// G = JJᵀ of the plain J (m × m), for GradNorm's ‖g_i‖.
@group(0) @binding(7) var<storage, read> lw_gram: array<f32>;

// concord-core's `positive`: max(L, LOSS_FLOOR), NaN → the floor.
fn lw_positive(l: f32) -> f32 {
    if l > LW_FLOOR {
        return l;
    }
    return LW_FLOOR;
}

// `EpochMeans::observe`: add the losses to the running epoch, closing it first if the epoch
// index moved on (the closed means shift down one slot).
fn lw_observe(m: u32, epoch: u32) {
    let s = 4u;
    if lw_state[0] == f32(epoch + 1u) {
        for (var i = 0u; i < m; i++) {
            lw_state[s + i] += lw_losses[i];
        }
        lw_state[1] += 1.0;
        return;
    }
    if lw_state[0] != 0.0 && f32(epoch + 1u) > lw_state[0] {
        let count = lw_state[1];
        for (var i = 0u; i < m; i++) {
            lw_state[s + 2u * m + i] = lw_state[s + m + i];
            lw_state[s + m + i] = lw_state[s + i] / count;
        }
        lw_state[3] = lw_state[2];
        lw_state[2] = lw_state[0];
    }
    lw_state[0] = f32(epoch + 1u);
    lw_state[1] = 1.0;
    for (var i = 0u; i < m; i++) {
        lw_state[s + i] = lw_losses[i];
    }
}

// `Dwa::weights`: T·softmax(r/τ), r_i = L̄_i(e−1)/L̄_i(e−2); 1 before epoch 2 or without both means.
fn lw_dwa(m: u32, epoch: u32) {
    lw_observe(m, epoch);
    for (var i = 0u; i < m; i++) {
        lw_out[i] = 1.0;
    }
    if epoch < 2u || lw_state[2] != f32(epoch) || lw_state[3] != f32(epoch - 1u) {
        return;
    }
    let s = 4u;
    for (var i = 0u; i < m; i++) {
        lw_out[i] = lw_state[s + m + i] / lw_positive(lw_state[s + 2u * m + i]) / lwp.a;
    }
    let sum = lw_exp_shifted(m);
    for (var i = 0u; i < m; i++) {
        lw_out[i] = f32(m) * lw_out[i] / sum;
    }
}

// Softmax's stable half, in place: lw_out[i] ← exp(lw_out[i] − max_j lw_out[j]); returns their
// sum (DWA and STCH divide by it).
fn lw_exp_shifted(m: u32) -> f32 {
    var zmax = -3.4e38;
    for (var i = 0u; i < m; i++) {
        zmax = max(zmax, lw_out[i]);
    }
    var sum = 0.0;
    for (var i = 0u; i < m; i++) {
        let e = exp(lw_out[i] - zmax);
        lw_out[i] = e;
        sum += e;
    }
    return sum;
}

// `Stch::weights`: 1/(L_i + 1e-20) up to the warmup epoch (whose losses are summed into the
// nadir), then T·softmax(ℓ/μ)_i/(nadir_i·x_i), x_i = L_i/nadir_i + 1e-20, ℓ_i = ln x_i.
// State: [0] warmup steps seen, [1] nadir fixed, [4..4+m) the warmup sum, then the nadir (m).
fn lw_stch(m: u32, epoch: u32) {
    let s = 4u;
    if epoch <= lwp.warmup {
        for (var i = 0u; i < m; i++) {
            let l = lw_positive(lw_losses[i]);
            if epoch == lwp.warmup {
                lw_state[s + i] += l;
            }
            lw_out[i] = lw_finite(1.0 / (l + 1e-20));
        }
        if epoch == lwp.warmup {
            lw_state[0] += 1.0;
        }
        return;
    }
    if lw_state[1] == 0.0 {
        // The warmup epoch's mean, or these losses if it was skipped.
        for (var i = 0u; i < m; i++) {
            if lw_state[0] > 0.0 {
                lw_state[s + m + i] = lw_state[s + i] / lw_state[0];
            } else {
                lw_state[s + m + i] = lw_positive(lw_losses[i]);
            }
        }
        lw_state[1] = 1.0;
    }
    for (var i = 0u; i < m; i++) {
        let x = lw_positive(lw_losses[i]) / lw_positive(lw_state[s + m + i]) + 1e-20;
        lw_out[i] = log(x) / lwp.a;
    }
    let sum = lw_exp_shifted(m);
    for (var i = 0u; i < m; i++) {
        let nadir = lw_positive(lw_state[s + m + i]);
        let x = lw_positive(lw_losses[i]) / nadir + 1e-20;
        lw_out[i] = lw_finite(f32(m) * (lw_out[i] / sum) / (nadir * x));
    }
}

// `AdamParam::step` (concord-core's `adam_update`, torch's L2 decay added to g): the m values
// at `at`, their moments after them; a non-finite gradient skips the step.
fn lw_adam(at: u32, m: u32, grad: array<f32, 32>) {
    var g = grad;
    for (var i = 0u; i < m; i++) {
        if !(g[i] == g[i] && abs(g[i]) <= 3.4e38) {
            return;
        }
    }
    let step = lwp.a / lwp.bias1;
    let root2 = sqrt(lwp.bias2);
    for (var i = 0u; i < m; i++) {
        let x = lw_state[at + i];
        let gi = g[i] + lwp.b * x;
        let mo = 0.9 * lw_state[at + m + i] + 0.1 * gi;
        let ve = 0.999 * lw_state[at + 2u * m + i] + 0.001 * gi * gi;
        lw_state[at + m + i] = mo;
        lw_state[at + 2u * m + i] = ve;
        lw_state[at + i] = x - step * mo / (sqrt(ve) / root2 + 1e-8);
    }
}

// `Uw::weights`: w_i = e^{−s_i}/2, then one Adam step of s on 1/2 − w_i·L_i.
// State: s (m, from −0.5 set by the host), Adam's m (m), v (m), from index 4.
fn lw_uw(m: u32) {
    var g: array<f32, 32>;
    for (var i = 0u; i < m; i++) {
        lw_out[i] = 0.5 * exp(-lw_state[4u + i]);
        g[i] = 0.5 - lw_out[i] * lw_losses[i];
    }
    lw_adam(4u, m, g);
}

// `ImtlL::weights`: w_i = e^{s_i}, then one Adam step of s on w_i·L_i − 1 (IMTL's loss scales;
// s clamped to ±700 as on the CPU). State: s (m, from 0), Adam's m (m), v (m), from index 4.
fn lw_imtl_l(m: u32) {
    var g: array<f32, 32>;
    for (var i = 0u; i < m; i++) {
        lw_out[i] = exp(lw_state[4u + i]);
        g[i] = lw_out[i] * lw_losses[i] - 1.0;
    }
    lw_adam(4u, m, g);
    for (var i = 0u; i < m; i++) {
        lw_state[4u + i] = clamp(lw_state[4u + i], -700.0, 700.0);
    }
}

// `GradNorm::weights`: λ = T·softmax(s), 1 in epoch 0 (whose mean losses become L(0)); from
// epoch 1 on s takes an Adam step on ∂Σ|λ_i‖g_i‖ − Ḡ·r_i^α|/∂s (`gradnorm_lambda_grad` pulled
// back through the softmax), ‖g_i‖ = √G_ii of the plain J. State: [0] running epoch + 1, [1] its
// step count, [2] L(0) known, [4..4+m) the running sum, L(0) (m), s (m, from 1), Adam's m, v.
fn lw_gradnorm(m: u32, epoch: u32) {
    let sum_at = 4u;
    let ref_at = 4u + m;
    let s_at = 4u + 2u * m;
    let e1 = f32(epoch + 1u);
    if lw_state[0] == e1 {
        for (var i = 0u; i < m; i++) {
            lw_state[sum_at + i] += lw_losses[i];
        }
        lw_state[1] += 1.0;
    } else {
        // The first closed epoch's mean is L(0) (`EpochMeans`, first closed epoch).
        if lw_state[0] != 0.0 && e1 > lw_state[0] && lw_state[2] == 0.0 {
            for (var i = 0u; i < m; i++) {
                lw_state[ref_at + i] = lw_state[sum_at + i] / lw_state[1];
            }
            lw_state[2] = 1.0;
        }
        lw_state[0] = e1;
        lw_state[1] = 1.0;
        for (var i = 0u; i < m; i++) {
            lw_state[sum_at + i] = lw_losses[i];
        }
    }
    if epoch == 0u {
        for (var i = 0u; i < m; i++) {
            lw_out[i] = 1.0;
        }
        return;
    }
    if lw_state[2] == 0.0 {
        for (var i = 0u; i < m; i++) {
            lw_state[ref_at + i] = lw_losses[i];
        }
        lw_state[2] = 1.0;
    }
    // z = softmax(s), λ = m·z.
    var zmax = -3.4e38;
    for (var i = 0u; i < m; i++) {
        zmax = max(zmax, lw_state[s_at + i]);
    }
    var z: array<f32, 32>;
    var zsum = 0.0;
    for (var i = 0u; i < m; i++) {
        z[i] = exp(lw_state[s_at + i] - zmax);
        zsum += z[i];
    }
    var g_bar = 0.0;
    var mean_tilde = 0.0;
    var d: array<f32, 32>;
    for (var i = 0u; i < m; i++) {
        z[i] /= zsum;
        lw_out[i] = f32(m) * z[i];
        let norm = sqrt(max(lw_gram[i * m + i], 0.0));
        g_bar += lw_out[i] * norm;
        mean_tilde += lw_positive(lw_losses[i]) / lw_positive(lw_state[ref_at + i]);
    }
    g_bar /= f32(m);
    mean_tilde /= f32(m);
    var dot = 0.0;
    for (var i = 0u; i < m; i++) {
        let norm = sqrt(max(lw_gram[i * m + i], 0.0));
        let r = lw_positive(lw_losses[i]) / lw_positive(lw_state[ref_at + i]) / mean_tilde;
        let diff = lw_out[i] * norm - g_bar * pow(r, lwp.gn_alpha);
        d[i] = sign(diff) * norm;
        dot += z[i] * d[i];
    }
    // ∂L/∂s = m·(softmax VJP)(z, ∂L/∂λ).
    var g: array<f32, 32>;
    for (var i = 0u; i < m; i++) {
        g[i] = f32(m) * z[i] * (d[i] - dot);
    }
    lw_adam(s_at, m, g);
}

// FAMO's D_i = max(L_i − 0, 0) + 1e-8 (min losses 0, as the trainer builds it; NaN → 0 + 1e-8).
fn lw_famo_d(l: f32) -> f32 {
    var x = 0.0;
    if l > 0.0 {
        x = min(l, 3.4e38);
    }
    return x + 1e-8;
}

// `Famo::weights`: z = softmax(w), w_i = z_i/(c·D_i), c = Σ z_j/D_j; the losses are kept for
// `famo_after`. State: [4..4+m) the losses before the step, the logits w (m, from 0), Adam's m, v.
fn lw_famo(m: u32) {
    let w_at = 4u + m;
    var zmax = -3.4e38;
    for (var i = 0u; i < m; i++) {
        zmax = max(zmax, lw_state[w_at + i]);
    }
    var zsum = 0.0;
    for (var i = 0u; i < m; i++) {
        lw_out[i] = exp(lw_state[w_at + i] - zmax);
        zsum += lw_out[i];
    }
    var c = 0.0;
    for (var i = 0u; i < m; i++) {
        lw_out[i] /= zsum;
        c += lw_out[i] / lw_famo_d(lw_losses[i]);
    }
    for (var i = 0u; i < m; i++) {
        lw_out[i] = lw_out[i] / (c * lw_famo_d(lw_losses[i]));
        lw_state[4u + i] = lw_losses[i];
    }
}

// ln(1 + x), accurate for small |x| (WGSL has no log1p): the series below 1e-2.
fn lw_log1p(x: f32) -> f32 {
    if abs(x) < 1e-2 {
        return x * (1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x)));
    }
    return log(1.0 + x);
}

// `Famo::after_step` on the batch losses after the update (`lw_losses` now): δ_i = log D_i(before)
// − log D_i(after), the logits' gradient (∂z/∂w)ᵀδ, one Adam step.
@compute @workgroup_size(1)
fn famo_after() {
    let m = lwp.m;
    let w_at = 4u + m;
    var zmax = -3.4e38;
    for (var i = 0u; i < m; i++) {
        zmax = max(zmax, lw_state[w_at + i]);
    }
    var z: array<f32, 32>;
    var zsum = 0.0;
    for (var i = 0u; i < m; i++) {
        z[i] = exp(lw_state[w_at + i] - zmax);
        zsum += z[i];
    }
    var delta: array<f32, 32>;
    var dot = 0.0;
    for (var i = 0u; i < m; i++) {
        z[i] /= zsum;
        // log D_b − log D_a as log1p((D_b − D_a)/D_a): the difference of two close f32 losses is
        // exact, where the difference of their f32 logs loses digits (measured with upgrad over
        // 200 steps: 5.8e-5 off the f64 reference that way, 2.7e-5 this way).
        let before = lw_famo_d(lw_state[4u + i]);
        let after = lw_famo_d(lw_losses[i]);
        delta[i] = lw_log1p((before - after) / after);
        dot += z[i] * delta[i];
    }
    var g: array<f32, 32>;
    for (var i = 0u; i < m; i++) {
        g[i] = z[i] * (delta[i] - dot);
    }
    lw_adam(w_at, m, g);
}

// A weight that overflowed is the largest float (concord-core: f64::MAX).
fn lw_finite(w: f32) -> f32 {
    if w == w && abs(w) <= 3.4e38 {
        return w;
    }
    return 3.4e38;
}

// `gls_weights`: exp(mean_j ln L_j − ln L_i)/T.
fn lw_gls(m: u32) {
    var log_gm = 0.0;
    for (var i = 0u; i < m; i++) {
        log_gm += log(lw_positive(lw_losses[i]));
    }
    log_gm /= f32(m);
    for (var i = 0u; i < m; i++) {
        lw_out[i] = exp(log_gm - log(lw_positive(lw_losses[i]))) / f32(m);
    }
}

@compute @workgroup_size(1)
fn loss_weights() {
    let m = lwp.m;
    switch lwp.kind {
        case LW_GLS: {
            lw_gls(m);
        }
        case LW_DWA: {
            lw_dwa(m, lwp.epoch);
        }
        case LW_STCH: {
            lw_stch(m, lwp.epoch);
        }
        case LW_UW: {
            lw_uw(m);
        }
        case LW_IMTL_L: {
            lw_imtl_l(m);
        }
        case LW_GRADNORM: {
            lw_gradnorm(m, lwp.epoch);
        }
        case LW_FAMO: {
            lw_famo(m);
        }
        case LW_RLW: {
            for (var i = 0u; i < m; i++) {
                lw_out[i] = lw_state[i];
            }
        }
        default: {
            for (var i = 0u; i < m; i++) {
                lw_out[i] = 1.0;
            }
        }
    }
}

// J (m × shared_len, row-major): row i ← w_i · row i.
@compute @workgroup_size(256)
fn scale_rows(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid3: vec3<u32>) {
    let k = (wid3.y * lwp.groups_x + wid3.x) * 256u + lid3.x;
    if k < lwp.m * lwp.shared_len {
        lw_jac[k] *= lw_out[k / lwp.shared_len];
    }
}

// The heads' gradients (after the trunk's part of `update`): head t's ← w_t · head t's.
@compute @workgroup_size(256)
fn scale_heads(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid3: vec3<u32>) {
    let k = (wid3.y * lwp.groups_x + wid3.x) * 256u + lid3.x;
    if k < lwp.total_len {
        for (var t = 0u; t < lwp.m; t++) {
            if k >= lw_heads[t] && k < lw_heads[t + 1u] {
                lw_update[k] *= lw_out[t];
            }
        }
    }
}
