//! The standard normal CDF Φ and density φ, accurate to ~1e-14 so finite-difference checks of
//! the Φ-smoothed load are not swamped by approximation error (Rust's std has no erf).

use std::f64::consts::{PI, SQRT_2};

/// erf(x) by its Maclaurin series (|x| ≤ 3, where cancellation costs < 1e-13) and erfc's
/// continued fraction beyond.
pub fn erf(x: f64) -> f64 {
    if x.abs() <= 3.0 {
        let mut term = x;
        let mut sum = x;
        let x2 = x * x;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -x2 / n;
            sum += term / (2.0 * n + 1.0);
        }
        2.0 / PI.sqrt() * sum
    } else {
        x.signum() * (1.0 - erfc_cf(x.abs()))
    }
}

/// erfc(x) for x > 3: e^{−x²}/√π · 1/(x + ½/(x + 1/(x + 3⁄2/(x + …)))), 60 levels from the back.
fn erfc_cf(x: f64) -> f64 {
    let mut f = x;
    for n in (1..=60).rev() {
        f = x + (n as f64 / 2.0) / f;
    }
    (-x * x).exp() / PI.sqrt() / f
}

/// Φ(z) = ½(1 + erf(z/√2)), written through erfc in the far left tail to keep relative precision.
pub fn cdf(z: f64) -> f64 {
    if z < -3.0 * SQRT_2 {
        0.5 * erfc_cf(-z / SQRT_2)
    } else {
        0.5 * (1.0 + erf(z / SQRT_2))
    }
}

pub fn pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * PI).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published values (Abramowitz & Stegun table 26.1 / any Φ table).
    #[test]
    fn matches_tabulated_values() {
        assert!((cdf(0.0) - 0.5).abs() < 1e-15);
        assert!((cdf(1.959963984540054) - 0.975).abs() < 1e-13);
        assert!((cdf(-1.0) - 0.158_655_253_931_457_05).abs() < 1e-13);
        assert!((cdf(-3.5) - 2.326_290_790_355_250_4e-4).abs() < 1e-15);
        assert!((cdf(-5.0) / 2.866_515_718_791_939e-7 - 1.0).abs() < 1e-10);
        assert!((erf(3.5) - 0.999_999_256_901_627_7).abs() < 1e-14);
        assert!((erf(-0.5) + 0.520_499_877_813_046_5).abs() < 1e-14);
    }

    #[test]
    fn density_is_the_derivative_of_the_cdf() {
        for z in [-4.0, -2.5, -0.3, 0.0, 1.1, 2.9, 3.2] {
            let h = 1e-5;
            let num = (cdf(z + h) - cdf(z - h)) / (2.0 * h);
            assert!((num - pdf(z)).abs() < 1e-9, "z = {z}: {num} vs {}", pdf(z));
        }
    }
}
