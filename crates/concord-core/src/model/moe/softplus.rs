//! Softplus, the noise std's link (kept apart from the trunk activations, which are a user choice).

/// log(1 + eˣ) without overflow.
pub fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }
}
