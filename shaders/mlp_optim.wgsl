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
// requires: mlp_index.wgsl

const MOPT_ADAM: u32 = 0u;
const MOPT_SGD: u32 = 1u;

struct MlpOptParams {
    kind: u32,
    len: u32,
    groups_x: u32,
    _pad: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
    momentum: f32,
    weight_decay: f32,
}

@group(0) @binding(0) var<storage, read_write> o_params: array<f32>;
@group(0) @binding(1) var<storage, read> o_grad: array<f32>;
// First moment (or SGD's momentum buffer) at [k], second moment at [len + k], then the step
// state [t (as f32), q₁, q₂, unused] at [2·len …] (one buffer: WebGPU's baseline allows 4
// storage buffers per stage, and optim_check needs all of them).
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
}

// Parameter k after one step on gradient g, with the step state (t, q₁, q₂) already advanced.
fn optim_next(k: u32, g: f32, t: f32, q1: f32, q2: f32) -> OptNext {
    var x = o_params[k];
    if op.weight_decay != 0.0 {
        x *= 1.0 - op.lr * op.weight_decay;
    }
    if op.kind == MOPT_ADAM {
        let m = op.beta1 * o_moments[k] + op.one_minus_beta1 * g;
        let v = op.beta2 * o_moments[op.len + k] + op.one_minus_beta2 * g * g;
        let denom = sqrt(v) / sqrt(q2) + op.eps;
        return OptNext(x - (op.lr / q1) * m / denom, m, v);
    }
    if op.momentum == 0.0 {
        return OptNext(x - op.lr * g, 0.0, 0.0);
    }
    // The first step seeds the momentum buffer with the gradient itself.
    var buf = g;
    if t > 1.5 {
        buf = op.momentum * o_moments[k] + g;
    }
    return OptNext(x - op.lr * buf, buf, 0.0);
}

fn halted() -> bool {
    return atomicLoad(&o_check[0]) != 0u;
}

fn step_state(i: u32) -> f32 {
    return o_moments[2u * op.len + i];
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

@compute @workgroup_size(256)
fn optim_update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = flat_index(wid, lid, op.groups_x);
    if k >= op.len || halted() {
        return;
    }
    let n = optim_next(k, o_grad[k], step_state(0u), step_state(1u), step_state(2u));
    if op.kind == MOPT_ADAM {
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
            if !mopt_finite(optim_next(k, g, t, q1, q2).x) {
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
