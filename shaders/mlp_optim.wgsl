// mlp_optim.wgsl — torch.optim.SGD (momentum) / Adam / AdamW on the flat parameter vector, as
// concord-core optim.rs: AdamW first shrinks θ ← θ·(1 − lr·λ), then takes the Adam step.
//
// `optim_tick` (one invocation, once per step) advances the step count t and Adam's bias terms
// q₁ = 1 − β₁ᵗ, q₂ = 1 − β₂ᵗ as running values q ← q + (1−β)(1−q) — accurate in f32 at every
// t, where 1 − pow(β, t) loses ~1e-4 relative at t = 1 (see optim.wgsl) — then `optim_update`
// moves every parameter. The step state lives on the GPU, so many steps share one submission.
//
// The stop contract (concord-core `Trainer::step`): before the tick, `optim_check` looks at the
// step's losses, Gramian, weights and test losses (copied into `o_check` from CHECK_IN), the
// combined gradient, and the parameters the update would give. Anything non-finite sets a
// reason bit in `o_check`;
// from then on tick and update do nothing, so the parameters stay at the last finite state and t
// counts the steps taken. The host reads the lowest bit, which is the CPU trainer's first failing
// check, and words it as the CPU does.
//
// Training dynamics (concord-core `dynamics`, `op.dynamics` = 1): `optim_prepare` (one
// workgroup, first in the step) reduces ‖d‖₂ over the whole update (trunk d and the heads'
// gradients, as `dynamics::clip_by_norm`), and writes this step's constants into the step state:
// the scheduled lr·f(s), the clip factor min(1, c/(‖d‖ + 1e-6)), SPAM's step size s·α, its
// reset/clip flags and θ, and the spike score's bias correction 1 − β₂ᶜ (0: no score). Check and
// update both read them, so the halt check sees the clipped update at the scheduled rate, as the
// CPU trainer's. SPAM (MOPT_SPAM, optim/spam.rs): on a reset step m, v read as 0; where the clip
// is on, g² > θ·v clips g to sign(g)·√(θ·v); x ← x − s·α·m/(√v + eps). The step's DYN words
// after the history slot's test losses: ‖d‖ (f32 bits), clipped (0/1), the spike score
// (f32 bits + 1 of max |g|/√v̂, atomicMax; 0: none), the coordinates SPAM clipped (atomicAdd),
// SAM's cos(d₀, d) (mlp_sam.wgsl).
//
// L1/L2 (concord-core train/trunk.rs `Regularization::add_gradient`, `op.penalty` ≠ 0): the
// optimizer takes d·coef + rate·∂R/∂w on the weight entries (the mask after the step state,
// core's `weight_mask`: weights of the trunk and the heads, never biases), at w before the
// step: after aggregation and the clip, which never see it, as the CPU trainer's `Trainer::step`.
// So ‖d‖ in the DYN words leaves it out; the halt check, the spike score and SPAM's clip see it.
// requires: mlp_index.wgsl

const MOPT_ADAM: u32 = 0u;
const MOPT_SGD: u32 = 1u;
const MOPT_SPAM: u32 = 2u;

struct MlpOptParams {
    kind: u32,
    len: u32,
    groups_x: u32,
    // 1: lr, clip factor and SPAM's constants come from the step state (optim_prepare).
    dynamics: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
    momentum: f32,
    weight_decay: f32,
    // PENALTY_* and its rate.
    penalty: u32,
    penalty_rate: f32,
    _q0: u32,
    _q1: u32,
}

const PENALTY_NONE: u32 = 0u;
const PENALTY_L1: u32 = 1u;
const PENALTY_L2: u32 = 2u;

@group(0) @binding(0) var<storage, read_write> o_params: array<f32>;
@group(0) @binding(1) var<storage, read> o_grad: array<f32>;
// First moment (or SGD's momentum buffer) at [k], second moment at [len + k], then the step
// state [t (as f32), q₁, q₂, unused, then optim_prepare's: lr·f(s), clip factor, SPAM's s·α,
// SPAM flags (1 reset, 2 clip), θ, the spike correction, m, unused] at [2·len …] (STEP_STATE
// words), then with a penalty the weight mask (len: 1 weight, 0 bias) (one buffer: WebGPU's
// baseline allows 4 storage buffers per stage, and optim_check needs all of them).
@group(0) @binding(2) var<storage, read_write> o_moments: array<f32>;
// [reason bits (HALT_*), 1 + the step that set them (0: running), that step's m losses and m
// test losses (bit patterns, when a loss was the reason; MAX_TASKS slots each)], then from
// CHECK_IN optim_check's inputs, one history slot: losses (m), weights (m, then the solve's
// completion flag), G (m × m, row-major), test losses (m, when `tested`).
@group(0) @binding(3) var<storage, read_write> o_check: array<atomic<u32>>;
@group(0) @binding(4) var<uniform> op: MlpOptParams;
@group(0) @binding(5) var<uniform> cp: MlpCheckParams;

// 2 + 2 · MAX_TASKS (32): trainer.rs's HALT_WORDS (checked by its tests).
const CHECK_IN: u32 = 66u;

struct MlpCheckParams {
    step: u32,
    tasks: u32,
    shared_len: u32,
    tested: u32,
}

// In the CPU trainer's order of checks (the lowest set bit is the reason).
const HALT_LOSS: u32 = 1u;
const HALT_GRADIENT: u32 = 2u;
const HALT_TEST_LOSS: u32 = 4u;
const HALT_UPDATE: u32 = 8u;
const HALT_PARAMS: u32 = 16u;

fn mopt_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

struct OptNext {
    x: f32,
    m: f32,
    v: f32,
    // SPAM: the spike clip changed this coordinate's gradient.
    clipped: bool,
}

// trainer.rs's STEP_STATE (checked by its tests): the step state's length.
const STEP_STATE: u32 = 12u;

// The step state's word i (see binding 2).
fn step_state(i: u32) -> f32 {
    return o_moments[2u * op.len + i];
}

// rate·∂R/∂w at entry k (concord-core trunk.rs `Penalty::derivative`: L1's sign w is 0 at 0,
// L2's is w), 0 on biases.
fn penalty_grad(k: u32) -> f32 {
    if op.penalty == PENALTY_NONE || o_moments[2u * op.len + STEP_STATE + k] == 0.0 {
        return 0.0;
    }
    let w = o_params[k];
    if op.penalty == PENALTY_L1 {
        return op.penalty_rate * sign(w);
    }
    return op.penalty_rate * w;
}

// The update entry k as the optimizer takes it: clipped by optim_prepare's factor, then the
// penalty's gradient (see the header).
fn step_grad(k: u32) -> f32 {
    var g = o_grad[k];
    if op.dynamics != 0u {
        g *= step_state(5u);
    }
    return g + penalty_grad(k);
}

// Parameter k after one step on gradient g, with the step state (t, q₁, q₂) already advanced.
fn optim_next(k: u32, g_in: f32, t: f32, q1: f32, q2: f32) -> OptNext {
    var x = o_params[k];
    var g = g_in;
    var lr = op.lr;
    if op.dynamics != 0u {
        lr = step_state(4u);
    }
    if op.weight_decay != 0.0 {
        x *= 1.0 - lr * op.weight_decay;
    }
    if op.kind == MOPT_SPAM {
        let flags = u32(step_state(7u));
        var m0 = o_moments[k];
        var v0 = o_moments[op.len + k];
        if (flags & 1u) != 0u {
            m0 = 0.0;
            v0 = 0.0;
        }
        var clipped = false;
        let bound = step_state(8u) * v0;
        if (flags & 2u) != 0u && g * g > bound {
            g = sign(g) * sqrt(bound);
            clipped = true;
        }
        let m = op.beta1 * m0 + op.one_minus_beta1 * g;
        let v = op.beta2 * v0 + op.one_minus_beta2 * g * g;
        return OptNext(x - step_state(6u) * m / (sqrt(v) + op.eps), m, v, clipped);
    }
    if op.kind == MOPT_ADAM {
        let m = op.beta1 * o_moments[k] + op.one_minus_beta1 * g;
        let v = op.beta2 * o_moments[op.len + k] + op.one_minus_beta2 * g * g;
        let denom = sqrt(v) / sqrt(q2) + op.eps;
        return OptNext(x - (lr / q1) * m / denom, m, v, false);
    }
    if op.momentum == 0.0 {
        return OptNext(x - lr * g, 0.0, 0.0, false);
    }
    // The first step seeds the momentum buffer with the gradient itself.
    var buf = g;
    if t > 1.5 {
        buf = op.momentum * o_moments[k] + g;
    }
    return OptNext(x - lr * buf, buf, 0.0, false);
}

fn halted() -> bool {
    return atomicLoad(&o_check[0]) != 0u;
}

fn check_in(i: u32) -> f32 {
    return bitcast<f32>(atomicLoad(&o_check[CHECK_IN + i]));
}

@compute @workgroup_size(1)
fn optim_tick() {
    if halted() {
        return;
    }
    let s = 2u * op.len;
    o_moments[s] = o_moments[s] + 1.0;
    o_moments[s + 1u] = o_moments[s + 1u] + op.one_minus_beta1 * (1.0 - o_moments[s + 1u]);
    o_moments[s + 2u] = o_moments[s + 2u] + op.one_minus_beta2 * (1.0 - o_moments[s + 2u]);
}

// The step's first DYN word (after the history slot's test losses).
fn dyn_at(m: u32) -> u32 {
    return CHECK_IN + 3u * m + 1u + m * m;
}

@compute @workgroup_size(256)
fn optim_update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = flat_index(wid, lid, op.groups_x);
    if k >= op.len || halted() {
        return;
    }
    let g = step_grad(k);
    if op.dynamics != 0u {
        // The spike score max |g|/√v̂ over v > 0, v before this step (optim.rs `spike_score`).
        let correction = step_state(9u);
        let v_old = o_moments[op.len + k];
        if correction > 0.0 && v_old > 0.0 {
            let score = bitcast<u32>(abs(g) / sqrt(v_old / correction)) + 1u;
            let at = dyn_at(u32(step_state(10u)));
            if score > atomicLoad(&o_check[at + 2u]) {
                atomicMax(&o_check[at + 2u], score);
            }
        }
    }
    let n = optim_next(k, g, step_state(0u), step_state(1u), step_state(2u));
    if n.clipped {
        atomicAdd(&o_check[dyn_at(u32(step_state(10u))) + 3u], 1u);
    }
    if op.kind == MOPT_ADAM || op.kind == MOPT_SPAM {
        o_moments[k] = n.m;
        o_moments[op.len + k] = n.v;
    } else if op.momentum != 0.0 {
        o_moments[k] = n.m;
    }
    o_params[k] = n.x;
}

// Before the tick of step `cp.step`: may it be taken? (See the header.) A step after the one that
// halted checks nothing, so the reason stays that step's.
@compute @workgroup_size(256)
fn optim_check(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let at = atomicLoad(&o_check[1]);
    if at != 0u && at != cp.step + 1u {
        return;
    }
    let k = flat_index(wid, lid, op.groups_x);
    let m = cp.tasks;
    var bits = 0u;
    if k == 0u {
        for (var i = 0u; i < m; i++) {
            if !mopt_finite(check_in(i)) {
                bits |= HALT_LOSS;
            }
            if !mopt_finite(check_in(m + i)) {
                bits |= HALT_UPDATE;
            }
            if cp.tested != 0u && !mopt_finite(check_in(2u * m + 1u + m * m + i)) {
                bits |= HALT_TEST_LOSS;
            }
        }
        for (var i = 0u; i < m * m; i++) {
            if !mopt_finite(check_in(2u * m + 1u + i)) {
                bits |= HALT_GRADIENT;
            }
        }
    }
    if k < op.len {
        let g = o_grad[k];
        if !mopt_finite(g) {
            // The trunk's entries are the aggregator's update d; the heads' are their gradients.
            bits |= select(HALT_GRADIENT, HALT_UPDATE, k < cp.shared_len);
        } else {
            let t = step_state(0u) + 1.0;
            let q1 = step_state(1u) + op.one_minus_beta1 * (1.0 - step_state(1u));
            let q2 = step_state(2u) + op.one_minus_beta2 * (1.0 - step_state(2u));
            if !mopt_finite(optim_next(k, step_grad(k), t, q1, q2).x) {
                bits |= HALT_PARAMS;
            }
        }
    }
    if bits != 0u {
        atomicOr(&o_check[0], bits);
        atomicStore(&o_check[1], cp.step + 1u);
    }
    if k == 0u && (bits & (HALT_LOSS | HALT_TEST_LOSS)) != 0u {
        for (var i = 0u; i < m; i++) {
            atomicStore(&o_check[2u + i], atomicLoad(&o_check[CHECK_IN + i]));
            atomicStore(&o_check[34u + i], atomicLoad(&o_check[CHECK_IN + 2u * m + 1u + m * m + i]));
        }
    }
}

// optim_prepare's per-step constants (see the header), computed on the host in f64 as the CPU
// trainer's.
struct MlpPrepParams {
    tasks: u32,
    len: u32,
    clip: u32,
    spam_flags: u32,
    clip_norm: f32,
    lr_now: f32,
    spam_step: f32,
    threshold: f32,
    spike_correction: f32,
    _p0: f32,
    _p1: f32,
    _p2: f32,
}

@group(0) @binding(6) var<uniform> pp: MlpPrepParams;

var<workgroup> prep_sum: array<f32, 256>;

// One workgroup, before the step's check: ‖d‖² strided over the update, then a fixed tree (the
// same order every run), and the step's constants into the step state and its DYN words.
@compute @workgroup_size(256)
fn optim_prepare(@builtin(local_invocation_index) li: u32) {
    var acc = 0.0;
    for (var k = li; k < pp.len; k += 256u) {
        let g = o_grad[k];
        acc += g * g;
    }
    prep_sum[li] = acc;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if li < w {
            prep_sum[li] += prep_sum[li + w];
        }
        workgroupBarrier();
    }
    if li != 0u {
        return;
    }
    let norm = sqrt(prep_sum[0]);
    var coef = 1.0;
    if pp.clip != 0u {
        // torch's clip_grad_norm_ (dynamics::clip_by_norm).
        coef = min(1.0, pp.clip_norm / (norm + 1e-6));
    }
    let s = 2u * pp.len;
    o_moments[s + 4u] = pp.lr_now;
    o_moments[s + 5u] = coef;
    o_moments[s + 6u] = pp.spam_step;
    o_moments[s + 7u] = f32(pp.spam_flags);
    o_moments[s + 8u] = pp.threshold;
    o_moments[s + 9u] = pp.spike_correction;
    o_moments[s + 10u] = f32(pp.tasks);
    let at = dyn_at(pp.tasks);
    atomicStore(&o_check[at], bitcast<u32>(norm));
    atomicStore(&o_check[at + 1u], select(0u, 1u, coef < 1.0));
    atomicStore(&o_check[at + 2u], 0u);
    atomicStore(&o_check[at + 3u], 0u);
}
