// optim.wgsl — torch.optim.Adam / torch.optim.SGD on a 2-vector (concord-core optim.rs).
//
// Adam keeps q₁ = 1 − β₁ᵗ and q₂ = 1 − β₂ᵗ as running values, updated by q ← q + (1−β)(1−q):
// with (1−β) passed separately this is accurate in f32 at every t, where 1 − pow(β, t) loses
// ~1e-4 relative at t = 1 (β₂ = 0.999 is not exact in f32).
// The position is kept with a Kahan compensation term, so 1e5 steps of size 1e-3 on |x| ≈ 10
// do not drift by f32 rounding (ulp(8) ≈ 1e-6).

const OPT_ADAM: u32 = 0u;
const OPT_SGD: u32 = 1u;

struct OptHyper {
    kind: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
    momentum: f32,
}

struct OptState {
    x: vec2<f32>,
    x_comp: vec2<f32>,
    m: vec2<f32>,
    v: vec2<f32>,
    q1: f32,
    q2: f32,
    t: u32,
}

// The step s with x ← x − s, updating the moments (PyTorch semantics; `d` plays x.grad).
fn optim_delta(h: OptHyper, s: ptr<function, OptState>, d: vec2<f32>) -> vec2<f32> {
    (*s).t += 1u;
    if h.kind == OPT_ADAM {
        (*s).q1 = (*s).q1 + h.one_minus_beta1 * (1.0 - (*s).q1);
        (*s).q2 = (*s).q2 + h.one_minus_beta2 * (1.0 - (*s).q2);
        (*s).m = h.beta1 * (*s).m + h.one_minus_beta1 * d;
        (*s).v = h.beta2 * (*s).v + h.one_minus_beta2 * d * d;
        let denom = sqrt((*s).v) / sqrt((*s).q2) + vec2<f32>(h.eps);
        return (h.lr / (*s).q1) * (*s).m / denom;
    }
    // SGD: the first step seeds the momentum buffer with the gradient itself.
    if h.momentum == 0.0 {
        return h.lr * d;
    }
    if (*s).t == 1u {
        (*s).m = d;
    } else {
        (*s).m = h.momentum * (*s).m + d;
    }
    return h.lr * (*s).m;
}

// x − step with Kahan compensation; returns the new (x, compensation).
fn optim_apply(x: vec2<f32>, comp: vec2<f32>, step: vec2<f32>) -> array<vec2<f32>, 2> {
    let yv = -step - comp;
    let tv = x + yv;
    let c = (tv - x) - yv;
    return array<vec2<f32>, 2>(tv, c);
}
