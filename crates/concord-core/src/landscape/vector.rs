//! Small dense-vector helpers shared by the landscape code.

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// cos(a, b); 0 when either is the zero vector.
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let n = norm(a) * norm(b);
    if n > 0.0 {
        dot(a, b) / n
    } else {
        0.0
    }
}

/// θ + α·δ + β·η into `out`.
pub fn combine_into(out: &mut [f64], theta: &[f64], alpha: f64, delta: &[f64], beta: f64, eta: &[f64]) {
    for (((o, t), d), e) in out.iter_mut().zip(theta).zip(delta).zip(eta) {
        *o = t + alpha * d + beta * e;
    }
}

pub fn scale(v: &mut [f64], s: f64) {
    v.iter_mut().for_each(|x| *x *= s);
}
