//! Hidden-layer activations and their derivatives (element-wise, written out for backprop).

use serde::{Deserialize, Serialize};

/// The trunk's activation. GELU is the tanh approximation (PyTorch `approximate="tanh"`):
/// WGSL has no `erf`, so the CPU reference uses the form a shader can reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Tanh,
    Gelu,
    Sigmoid,
    Linear,
}

const GELU_C: f64 = 0.797_884_560_802_865_4; // √(2/π)
const GELU_A: f64 = 0.044_715;

/// σ(x) without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Activation {
    pub const ALL: [Activation; 5] =
        [Activation::Relu, Activation::Tanh, Activation::Gelu, Activation::Sigmoid, Activation::Linear];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::Sigmoid => "sigmoid",
            Activation::Linear => "linear",
        }
    }

    pub fn apply(self, x: f64) -> f64 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Tanh => x.tanh(),
            Activation::Gelu => 0.5 * x * (1.0 + (GELU_C * (x + GELU_A * x * x * x)).tanh()),
            Activation::Sigmoid => sigmoid(x),
            Activation::Linear => x,
        }
    }

    /// dφ/dx at the pre-activation x. ReLU takes 0 at x = 0 (PyTorch and the Playground agree).
    pub fn derivative(self, x: f64) -> f64 {
        match self {
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Tanh => {
                let t = x.tanh();
                1.0 - t * t
            }
            Activation::Gelu => {
                let t = (GELU_C * (x + GELU_A * x * x * x)).tanh();
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * x * x)
            }
            Activation::Sigmoid => {
                let s = sigmoid(x);
                s * (1.0 - s)
            }
            Activation::Linear => 1.0,
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| format!("unknown activation '{s}' (expected one of: relu, tanh, gelu, sigmoid, linear)"))
    }
}
