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

fn act_apply(code: u32, x: f32) -> f32 {
    switch code {
        case 0u: { return max(x, 0.0); }
        case 1u: { return act_tanh(x); }
        case 2u: { return 0.5 * x * (1.0 + act_tanh(GELU_C * (x + GELU_A * x * x * x))); }
        case 3u: { return act_sigmoid(x); }
        default: { return x; }
    }
}

// dφ/dx at the pre-activation x; ReLU takes 0 at x = 0 as in the reference.
fn act_derivative(code: u32, x: f32) -> f32 {
    switch code {
        case 0u: { return select(0.0, 1.0, x > 0.0); }
        case 1u: {
            let t = act_tanh(x);
            return 1.0 - t * t;
        }
        case 2u: {
            let t = act_tanh(GELU_C * (x + GELU_A * x * x * x));
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * x * x);
        }
        case 3u: {
            let s = act_sigmoid(x);
            return s * (1.0 - s);
        }
        default: { return 1.0; }
    }
}
