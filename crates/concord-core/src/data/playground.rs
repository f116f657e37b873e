//! The six TF-Playground generators (`dataset.ts`, toys.md §4), plus a labelling rule for each
//! so that several tasks can label the same input points.
//!
//! The native generators follow `dataset.ts` draw for draw (the loop bounds `i < N/2` included:
//! an odd N gives ⌈N/2⌉ points per half, as in JavaScript); only the random source differs
//! (ChaCha8 seeded by a u64 instead of `Math.seedrandom(string)`), so point sets are
//! statistically, not bitwise, the Playground's.

use super::sampling::{normal, uniform, DataRng};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Half-width of the Playground's domain [−6, 6]².
pub const DOMAIN: f64 = 6.0;
/// Points per spiral arm used by the nearest-arm rule: the native arm at the default N = 500.
pub const SPIRAL_ARM_SAMPLES: usize = 250;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dataset {
    Circle,
    Xor,
    Gauss,
    Spiral,
    RegPlane,
    RegGauss,
}

/// One generated point with its label: ±1 for classification, a real value for regression.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub p: [f64; 2],
    pub label: f64,
}

/// The six bumps of `regressGaussian`: (cx, cy, sign).
const BUMPS: [(f64, f64, f64); 6] =
    [(-4.0, 2.5, 1.0), (0.0, 2.5, -1.0), (4.0, 2.5, 1.0), (-4.0, -2.5, -1.0), (0.0, -2.5, 1.0), (4.0, -2.5, -1.0)];

fn circle_label(x: f64, y: f64) -> f64 {
    if (x * x + y * y).sqrt() < 2.5 {
        1.0
    } else {
        -1.0
    }
}

fn xor_label(x: f64, y: f64) -> f64 {
    if x * y >= 0.0 {
        1.0
    } else {
        -1.0
    }
}

/// `labelScale(x + y)`: [−10, 10] → [−1, 1], not clamped.
fn plane_label(x: f64, y: f64) -> f64 {
    (x + y) / 10.0
}

/// The bump value of largest magnitude; each bump is sign·clamp(1 − d/2, 0, 1).
fn bumps_label(x: f64, y: f64) -> f64 {
    let mut label: f64 = 0.0;
    for (cx, cy, sign) in BUMPS {
        let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
        let v = sign * (1.0 - d / 2.0).clamp(0.0, 1.0);
        if v.abs() > label.abs() {
            label = v;
        }
    }
    label
}

/// Arm point i of n (as a real count) with phase `delta`: r = 5i/n, t = 1.75·2π·i/n + Δ.
fn spiral_point(i: f64, n: f64, delta: f64) -> [f64; 2] {
    let r = i / n * 5.0;
    let t = 1.75 * i / n * 2.0 * PI + delta;
    [r * t.sin(), r * t.cos()]
}

impl Dataset {
    pub const ALL: [Dataset; 6] =
        [Dataset::Circle, Dataset::Xor, Dataset::Gauss, Dataset::Spiral, Dataset::RegPlane, Dataset::RegGauss];

    pub fn name(self) -> &'static str {
        match self {
            Dataset::Circle => "circle",
            Dataset::Xor => "xor",
            Dataset::Gauss => "gauss",
            Dataset::Spiral => "spiral",
            Dataset::RegPlane => "reg-plane",
            Dataset::RegGauss => "reg-gauss",
        }
    }

    /// Classification (labels ±1) or regression (real labels).
    pub fn is_classification(self) -> bool {
        !matches!(self, Dataset::RegPlane | Dataset::RegGauss)
    }

    /// The Playground's N: 500 for classification, 1200 for regression.
    pub fn default_n(self) -> usize {
        if self.is_classification() {
            500
        } else {
            1200
        }
    }

    /// The native generator `generator(N, ν)` of `dataset.ts`, before the shuffle.
    pub fn generate(self, n: usize, noise: f64, rng: &mut DataRng) -> Vec<Example> {
        let half = n as f64 / 2.0;
        let mut out = Vec::with_capacity(n + 1);
        match self {
            Dataset::Circle => {
                for (r_lo, r_hi) in [(0.0, 2.5), (3.5, 5.0)] {
                    let mut i = 0.0;
                    while i < half {
                        let r = uniform(rng, r_lo, r_hi);
                        let angle = uniform(rng, 0.0, 2.0 * PI);
                        let (x, y) = (r * angle.sin(), r * angle.cos());
                        let nx = uniform(rng, -5.0, 5.0) * noise;
                        let ny = uniform(rng, -5.0, 5.0) * noise;
                        out.push(Example { p: [x, y], label: circle_label(x + nx, y + ny) });
                        i += 1.0;
                    }
                }
            }
            Dataset::Xor => {
                let pad = |v: f64| if v > 0.0 { v + 0.3 } else { v - 0.3 };
                for _ in 0..n {
                    let x = pad(uniform(rng, -5.0, 5.0));
                    let y = pad(uniform(rng, -5.0, 5.0));
                    let nx = uniform(rng, -5.0, 5.0) * noise;
                    let ny = uniform(rng, -5.0, 5.0) * noise;
                    out.push(Example { p: [x, y], label: xor_label(x + nx, y + ny) });
                }
            }
            Dataset::Gauss => {
                let variance = 0.5 + 7.0 * noise; // d3 linear [0, 0.5] → [0.5, 4]
                for (c, label) in [(2.0, 1.0), (-2.0, -1.0)] {
                    let mut i = 0.0;
                    while i < half {
                        let x = normal(rng, c, variance);
                        let y = normal(rng, c, variance);
                        out.push(Example { p: [x, y], label });
                        i += 1.0;
                    }
                }
            }
            Dataset::Spiral => {
                for (delta, label) in [(0.0, 1.0), (PI, -1.0)] {
                    let mut i = 0.0;
                    while i < half {
                        let [x, y] = spiral_point(i, half, delta);
                        let x = x + uniform(rng, -1.0, 1.0) * noise;
                        let y = y + uniform(rng, -1.0, 1.0) * noise;
                        out.push(Example { p: [x, y], label });
                        i += 1.0;
                    }
                }
            }
            Dataset::RegPlane | Dataset::RegGauss => {
                for _ in 0..n {
                    let x = uniform(rng, -DOMAIN, DOMAIN);
                    let y = uniform(rng, -DOMAIN, DOMAIN);
                    let nx = uniform(rng, -DOMAIN, DOMAIN) * noise;
                    let ny = uniform(rng, -DOMAIN, DOMAIN) * noise;
                    let label = if self == Dataset::RegPlane {
                        plane_label(x + nx, y + ny)
                    } else {
                        bumps_label(x + nx, y + ny)
                    };
                    out.push(Example { p: [x, y], label });
                }
            }
        }
        out
    }

    /// This dataset's label for an arbitrary point p, with the generator's own noise model:
    /// - circle, xor, reg-plane, reg-gauss: exactly the generator's label function at p + δ
    ///   (δ drawn as in `dataset.ts`).
    /// - gauss: the Bayes rule of the two equal-variance, equal-prior Gaussians, +1 iff
    ///   x + y ≥ 0, at p + δ with δ ~ N(0, 7ν·I) (the variance that noise adds beyond 0.5).
    /// - spiral: the label of the nearest arm point (arms sampled at `SPIRAL_ARM_SAMPLES`
    ///   points each, the native arms at N = 500; ties go to +1) to p + δ, δ ~ U(−1, 1)²·ν.
    ///
    /// At ν = 0 no δ moves the point, but the draws are still made so the stream stays aligned.
    pub fn label_at(self, p: [f64; 2], noise: f64, rng: &mut DataRng) -> f64 {
        let [x, y] = p;
        match self {
            Dataset::Circle | Dataset::Xor => {
                let nx = uniform(rng, -5.0, 5.0) * noise;
                let ny = uniform(rng, -5.0, 5.0) * noise;
                if self == Dataset::Circle {
                    circle_label(x + nx, y + ny)
                } else {
                    xor_label(x + nx, y + ny)
                }
            }
            Dataset::RegPlane | Dataset::RegGauss => {
                let nx = uniform(rng, -DOMAIN, DOMAIN) * noise;
                let ny = uniform(rng, -DOMAIN, DOMAIN) * noise;
                if self == Dataset::RegPlane {
                    plane_label(x + nx, y + ny)
                } else {
                    bumps_label(x + nx, y + ny)
                }
            }
            Dataset::Gauss => {
                let nx = normal(rng, 0.0, 7.0 * noise);
                let ny = normal(rng, 0.0, 7.0 * noise);
                if (x + nx) + (y + ny) >= 0.0 {
                    1.0
                } else {
                    -1.0
                }
            }
            Dataset::Spiral => {
                let qx = x + uniform(rng, -1.0, 1.0) * noise;
                let qy = y + uniform(rng, -1.0, 1.0) * noise;
                let n = SPIRAL_ARM_SAMPLES as f64;
                let mut best = (f64::INFINITY, 1.0);
                for (delta, label) in [(0.0, 1.0), (PI, -1.0)] {
                    for i in 0..SPIRAL_ARM_SAMPLES {
                        let [ax, ay] = spiral_point(i as f64, n, delta);
                        let d = (ax - qx).powi(2) + (ay - qy).powi(2);
                        if d < best.0 {
                            best = (d, label);
                        }
                    }
                }
                best.1
            }
        }
    }
}

impl std::str::FromStr for Dataset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Dataset::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| {
            format!("unknown dataset '{s}' (expected one of: circle, xor, gauss, spiral, reg-plane, reg-gauss)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn gen(d: Dataset, n: usize, noise: f64, seed: u64) -> Vec<Example> {
        d.generate(n, noise, &mut DataRng::seed_from_u64(seed))
    }

    #[test]
    fn counts_balance_and_bounds() {
        for d in Dataset::ALL {
            let ex = gen(d, d.default_n(), 0.0, 1);
            assert_eq!(ex.len(), d.default_n(), "{d:?}");
            if d.is_classification() {
                let pos = ex.iter().filter(|e| e.label == 1.0).count();
                assert!(ex.iter().all(|e| e.label == 1.0 || e.label == -1.0));
                // circle, gauss, spiral: exactly half; xor: balanced up to sampling.
                if d == Dataset::Xor {
                    assert!((200..=300).contains(&pos), "{pos}");
                } else {
                    assert_eq!(pos, 250, "{d:?}");
                }
            }
            let bound = match d {
                Dataset::Circle => 5.0,
                Dataset::Xor => 5.3,
                Dataset::Spiral => 5.0,
                Dataset::RegPlane | Dataset::RegGauss => 6.0,
                Dataset::Gauss => f64::INFINITY,
            };
            assert!(ex.iter().all(|e| e.p[0].abs() <= bound && e.p[1].abs() <= bound), "{d:?}");
        }
        // An odd N gives ⌈N/2⌉ per half, as the JavaScript loop does.
        assert_eq!(gen(Dataset::Circle, 5, 0.0, 0).len(), 6);
    }

    #[test]
    fn noise_free_labels_follow_the_rules() {
        for e in gen(Dataset::Circle, 500, 0.0, 2) {
            let r = (e.p[0].powi(2) + e.p[1].powi(2)).sqrt();
            assert_eq!(e.label, if r < 2.5 { 1.0 } else { -1.0 });
            assert!(r <= 2.5 || r >= 3.5);
        }
        for e in gen(Dataset::Xor, 500, 0.0, 2) {
            assert_eq!(e.label, if e.p[0] * e.p[1] >= 0.0 { 1.0 } else { -1.0 });
            assert!(e.p[0].abs() >= 0.3 && e.p[1].abs() >= 0.3);
        }
        for e in gen(Dataset::RegPlane, 1200, 0.0, 2) {
            assert_eq!(e.label, (e.p[0] + e.p[1]) / 10.0);
        }
        for e in gen(Dataset::RegGauss, 1200, 0.0, 2) {
            assert!(e.label.abs() <= 1.0);
            assert_eq!(e.label, bumps_label(e.p[0], e.p[1]));
        }
        assert_eq!(bumps_label(-4.0, 2.5), 1.0);
        assert_eq!(bumps_label(0.0, -2.5), 1.0);
        assert_eq!(bumps_label(4.0, -2.5), -1.0);
        // Noise-free spiral points lie on their arms; the nearest-arm rule agrees off the origin.
        let mut rng = DataRng::seed_from_u64(0);
        for e in gen(Dataset::Spiral, 500, 0.0, 2) {
            if e.p[0].hypot(e.p[1]) > 1e-9 {
                assert_eq!(Dataset::Spiral.label_at(e.p, 0.0, &mut rng), e.label);
            }
        }
        // Noise-free circle/xor/plane/bumps rules equal the generators' labels.
        for d in [Dataset::Circle, Dataset::Xor, Dataset::RegPlane, Dataset::RegGauss] {
            for e in gen(d, 200, 0.0, 3) {
                assert_eq!(d.label_at(e.p, 0.0, &mut rng), e.label, "{d:?}");
            }
        }
    }

    #[test]
    fn gauss_spreads_with_noise_and_its_rule_is_the_bayes_line() {
        let spread = |noise| {
            let ex = gen(Dataset::Gauss, 2000, noise, 4);
            let pos: Vec<_> = ex.iter().filter(|e| e.label > 0.0).collect();
            pos.iter().map(|e| (e.p[0] - 2.0).powi(2)).sum::<f64>() / pos.len() as f64
        };
        assert!((spread(0.0) - 0.5).abs() < 0.1);
        assert!((spread(0.5) - 4.0).abs() < 0.6);
        let mut rng = DataRng::seed_from_u64(0);
        assert_eq!(Dataset::Gauss.label_at([1.0, -0.5], 0.0, &mut rng), 1.0);
        assert_eq!(Dataset::Gauss.label_at([-1.0, 0.5], 0.0, &mut rng), -1.0);
    }

    #[test]
    fn noise_flips_some_labels_but_keeps_points_clean() {
        let clean = gen(Dataset::Circle, 500, 0.0, 5);
        let noisy = gen(Dataset::Circle, 500, 0.5, 5);
        let flipped = noisy.iter().filter(|e| e.label != circle_label(e.p[0], e.p[1])).count();
        assert!(flipped > 10, "{flipped}");
        assert!(noisy.iter().all(|e| e.p[0].hypot(e.p[1]) <= 5.0));
        assert_eq!(clean.len(), noisy.len());
    }

    #[test]
    fn seeds_reproduce_and_differ() {
        for d in Dataset::ALL {
            assert_eq!(gen(d, 100, 0.2, 9), gen(d, 100, 0.2, 9));
            assert_ne!(gen(d, 100, 0.2, 9), gen(d, 100, 0.2, 10));
        }
    }
}
