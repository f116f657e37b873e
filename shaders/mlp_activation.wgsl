// mlp_activation.wgsl — the trunk's activations and their derivatives, exactly the formulas of
// concord-core model/activation.rs (GELU is the tanh approximation there too).
// Codes follow `Activation::ALL`: 0 relu, 1 tanh, 2 gelu, 3 sigmoid, 4 linear.

const ACT_RELU: u32 = 0u;
const ACT_TANH: u32 = 1u;
const ACT_GELU: u32 = 2u;
const ACT_SIGMOID: u32 = 3u;
const ACT_LINEAR: u32 = 4u;

const GELU_C: f32 = 0.7978845608028654;
const GELU_A: f32 = 0.044715;

// tanh clamped first: some drivers return NaN for tanh of a large argument, and
// tanh(±15) already rounds to ±1 in f32.
fn act_tanh(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}

// σ(x) without overflow, as concord-core's `sigmoid`.
fn act_sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

// ½(1 + tanh u) for GELU's u = c(x + ax³), as σ(2u): the same value, but without the
// cancellation of 1 + t (and 1 − t²) as t → −1, which cost GELU' ~1e-6 near x = −5 in f32.
fn gelu_half_one_plus_tanh(x: f32) -> f32 {
    return act_sigmoid(2.0 * GELU_C * (x + GELU_A * x * x * x));
}

fn act_apply(code: u32, x: f32) -> f32 {
    switch code {
        case 0u: { return max(x, 0.0); }
        case 1u: { return act_tanh(x); }
        case 2u: { return x * gelu_half_one_plus_tanh(x); }
        case 3u: { return act_sigmoid(x); }
        default: { return x; }
    }
}

// dφ/dx at the pre-activation x; ReLU takes 0 at x = 0 as in the reference.
fn act_derivative(code: u32, x: f32) -> f32 {
    switch code {
        case 0u: { return select(0.0, 1.0, x > 0.0); }
        case 1u: {
            // 1 − tanh²x = 4σ(2x)σ(−2x), exact to f32 rounding in both tails.
            return 4.0 * act_sigmoid(2.0 * x) * act_sigmoid(-2.0 * x);
        }
        case 2u: {
            // ½(1 + t) + ½x(1 − t²)·c(1 + 3ax²) with ½(1 + t) = σ(2u), ½(1 − t) = σ(−2u) and
            // ½(1 − t²) = 2σ(2u)σ(−2u): no cancellation at either tail.
            let u2 = 2.0 * GELU_C * (x + GELU_A * x * x * x);
            let sp = act_sigmoid(u2);
            let sm = act_sigmoid(-u2);
            return sp + x * 2.0 * sp * sm * GELU_C * (1.0 + 3.0 * GELU_A * x * x);
        }
        case 3u: {
            let s = act_sigmoid(x);
            return s * (1.0 - s);
        }
        default: { return 1.0; }
    }
}
