// mlp_optim.wgsl — torch.optim.SGD (momentum) / Adam / AdamW on the flat parameter vector, as
// concord-core optim.rs: AdamW first shrinks θ ← θ·(1 − lr·λ), then takes the Adam step.
//
// `optim_tick` (one invocation, once per step) advances the step count t and Adam's bias terms
// q₁ = 1 − β₁ᵗ, q₂ = 1 − β₂ᵗ as running values q ← q + (1−β)(1−q) — accurate in f32 at every
// t, where 1 − pow(β, t) loses ~1e-4 relative at t = 1 (see optim.wgsl) — then `optim_update`
// moves every parameter. The step state lives on the GPU, so many steps share one submission.
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

// [t (as f32), q₁, q₂, unused]
@group(0) @binding(0) var<storage, read_write> o_step: array<f32>;
@group(0) @binding(1) var<storage, read_write> o_params: array<f32>;
@group(0) @binding(2) var<storage, read> o_grad: array<f32>;
// First moment (or SGD's momentum buffer) at [k], second moment at [len + k].
@group(0) @binding(3) var<storage, read_write> o_moments: array<f32>;
@group(0) @binding(4) var<uniform> op: MlpOptParams;

@compute @workgroup_size(1)
fn optim_tick() {
    o_step[0] = o_step[0] + 1.0;
    o_step[1] = o_step[1] + op.one_minus_beta1 * (1.0 - o_step[1]);
    o_step[2] = o_step[2] + op.one_minus_beta2 * (1.0 - o_step[2]);
}

@compute @workgroup_size(256)
fn optim_update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = flat_index(wid, lid, op.groups_x);
    if k >= op.len {
        return;
    }
    var x = o_params[k];
    if op.weight_decay != 0.0 {
        x *= 1.0 - op.lr * op.weight_decay;
    }
    let g = o_grad[k];
    if op.kind == MOPT_ADAM {
        let m = op.beta1 * o_moments[k] + op.one_minus_beta1 * g;
        let v = op.beta2 * o_moments[op.len + k] + op.one_minus_beta2 * g * g;
        o_moments[k] = m;
        o_moments[op.len + k] = v;
        let denom = sqrt(v) / sqrt(o_step[2]) + op.eps;
        x -= (op.lr / o_step[1]) * m / denom;
    } else if op.momentum == 0.0 {
        x -= op.lr * g;
    } else {
        // The first step seeds the momentum buffer with the gradient itself.
        var buf = g;
        if o_step[0] > 1.5 {
            buf = op.momentum * o_moments[k] + g;
        }
        o_moments[k] = buf;
        x -= op.lr * buf;
    }
    o_params[k] = x;
}
