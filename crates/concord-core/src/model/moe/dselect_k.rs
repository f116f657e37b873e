//! DSelect-k gating (Hazimeh et al. NeurIPS 2021; google-research `dselect_k_moe`, LibMTL
//! `DSelect_k`), per-example form: for one token, z = Linear(a → k·b) and w = Linear(a → k),
//! b = ⌈log₂N⌉ binary selectors per choice, and
//!
//! q = Σ_l softmax(w)_l · r⁽ˡ⁾,  r⁽ˡ⁾_i = Π_j (S(z_lj) if bit j of i is 1 else 1 − S(z_lj)),
//!
//! with the smooth step S(t) = 0 (t ≤ −γ/2), 1 (t ≥ γ/2), −2t³/γ³ + 3t/(2γ) + ½ between. Expert
//! i's code is `binary_repr(i, b)`, most significant bit first (bit 1 pairs with z_l1). q has
//! at most k non-zeros once the selectors saturate.
//!
//! N not a power of 2: only the first N codes exist, so q keeps just those entries (its sum is
//! < 1 while a selector leans to a missing code) and the official regulariser Σ_l 1/Σ_{i<N} r⁽ˡ⁾_i
//! pushes mass back (always on, weight 1, as in the official code; here averaged over the
//! batch's tokens where the official code sums).
//!
//! LibMTL quirks **not** followed (methods-wave2.md §3): γ is the smooth step's γ (LibMTL
//! calls the step without γ, so its `--kgamma` only moves the initialisation); the entropy
//! regulariser λ·Σ_l −Σ_i r_i log(r_i + 1e-6) is an optional aux weight (default 0, the
//! official `entropy_reg=None`) over *every* task's selectors (LibMTL: the last task's only);
//! both regularisers really reach the update (LibMTL backprops them before `zero_grad`).

/// The smooth step S(t) with width γ.
pub fn smooth_step(t: f64, gamma: f64) -> f64 {
    if t <= -gamma / 2.0 {
        0.0
    } else if t >= gamma / 2.0 {
        1.0
    } else {
        -2.0 * t.powi(3) / gamma.powi(3) + 3.0 * t / (2.0 * gamma) + 0.5
    }
}

/// S′(t): 0 outside (−γ/2, γ/2).
pub fn smooth_step_derivative(t: f64, gamma: f64) -> f64 {
    if t.abs() >= gamma / 2.0 {
        0.0
    } else {
        -6.0 * t * t / gamma.powi(3) + 3.0 / (2.0 * gamma)
    }
}

/// b = ⌈log₂N⌉ (0 for a single expert).
pub fn selector_bits(experts: usize) -> usize {
    experts.next_power_of_two().trailing_zeros() as usize
}

/// Bit j (0 = most significant) of expert i's b-bit code.
fn bit(i: usize, j: usize, bits: usize) -> bool {
    (i >> (bits - 1 - j)) & 1 == 1
}

/// One selector's r_i for the first `experts` codes, from its b smooth-step inputs z.
pub fn selector(z: &[f64], experts: usize, gamma: f64) -> Vec<f64> {
    let bits = z.len();
    let s: Vec<f64> = z.iter().map(|&t| smooth_step(t, gamma)).collect();
    (0..experts).map(|i| (0..bits).map(|j| if bit(i, j, bits) { s[j] } else { 1.0 - s[j] }).product()).collect()
}

/// dr_i/dz_j for one selector: E × b (row i, column j).
fn selector_jacobian(z: &[f64], experts: usize, gamma: f64) -> Vec<Vec<f64>> {
    let bits = z.len();
    let s: Vec<f64> = z.iter().map(|&t| smooth_step(t, gamma)).collect();
    (0..experts)
        .map(|i| {
            (0..bits)
                .map(|j| {
                    let others: f64 = (0..bits)
                        .filter(|&jj| jj != j)
                        .map(|jj| if bit(i, jj, bits) { s[jj] } else { 1.0 - s[jj] })
                        .product();
                    let ds = smooth_step_derivative(z[j], gamma);
                    others * if bit(i, j, bits) { ds } else { -ds }
                })
                .collect()
        })
        .collect()
}

fn softmax(w: &[f64]) -> Vec<f64> {
    let max = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = w.iter().map(|v| (v - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// One token's gate: z (k·b values, selector l at l·b..(l+1)·b) and w (k) → q (N).
pub fn weights(z: &[f64], w: &[f64], experts: usize, gamma: f64) -> Vec<f64> {
    let bits = selector_bits(experts);
    let sw = softmax(w);
    let mut q = vec![0.0; experts];
    for (l, s) in sw.iter().enumerate() {
        for (qi, ri) in q.iter_mut().zip(selector(&z[l * bits..(l + 1) * bits], experts, gamma)) {
            *qi += s * ri;
        }
    }
    q
}

/// (dL/dz, dL/dw) of one token from dL/dq.
pub fn weights_backward(z: &[f64], w: &[f64], experts: usize, gamma: f64, d_q: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let bits = selector_bits(experts);
    let sw = softmax(w);
    let mut d_z = vec![0.0; z.len()];
    let mut d_s = vec![0.0; w.len()];
    for l in 0..w.len() {
        let zl = &z[l * bits..(l + 1) * bits];
        let r = selector(zl, experts, gamma);
        d_s[l] = r.iter().zip(d_q).map(|(a, b)| a * b).sum();
        let jac = selector_jacobian(zl, experts, gamma);
        for (i, row) in jac.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                d_z[l * bits + j] += sw[l] * d_q[i] * v;
            }
        }
    }
    let dot: f64 = sw.iter().zip(&d_s).map(|(a, b)| a * b).sum();
    let d_w = sw.iter().zip(&d_s).map(|(s, d)| s * (d - dot)).collect();
    (d_z, d_w)
}

const ENTROPY_EPS: f64 = 1e-6;

/// Σ_l −Σ_i r⁽ˡ⁾_i log(r⁽ˡ⁾_i + 1e-6) over one token's k selectors, and dL/dz.
pub fn entropy(z: &[f64], experts: usize, gamma: f64) -> (f64, Vec<f64>) {
    let bits = selector_bits(experts).max(1);
    let mut d_z = vec![0.0; z.len()];
    let mut value = 0.0;
    if selector_bits(experts) == 0 {
        return (0.0, d_z);
    }
    for (l, zl) in z.chunks(bits).enumerate() {
        let r = selector(zl, experts, gamma);
        value -= r.iter().map(|v| v * (v + ENTROPY_EPS).ln()).sum::<f64>();
        let d_r: Vec<f64> = r.iter().map(|v| -(v + ENTROPY_EPS).ln() - v / (v + ENTROPY_EPS)).collect();
        for (i, row) in selector_jacobian(zl, experts, gamma).iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                d_z[l * bits + j] += d_r[i] * v;
            }
        }
    }
    (value, d_z)
}

/// The non-power-of-2 term Σ_l 1/Σ_{i<N} r⁽ˡ⁾_i of one token, and dL/dz (0 when N = 2^b).
pub fn missing_mass(z: &[f64], experts: usize, gamma: f64) -> (f64, Vec<f64>) {
    let bits = selector_bits(experts);
    let mut d_z = vec![0.0; z.len()];
    if bits == 0 || experts.is_power_of_two() {
        return (0.0, d_z);
    }
    let mut value = 0.0;
    for (l, zl) in z.chunks(bits).enumerate() {
        let total: f64 = selector(zl, experts, gamma).iter().sum();
        value += 1.0 / total;
        let d_total = -1.0 / (total * total);
        for row in selector_jacobian(zl, experts, gamma) {
            for (j, v) in row.iter().enumerate() {
                d_z[l * bits + j] += d_total * v;
            }
        }
    }
    (value, d_z)
}

#[cfg(test)]
mod tests {
    use super::*;

    const Z: [f64; 4] = [0.2, -0.1, -0.3, 0.4];
    const W: [f64; 2] = [0.0, 0.5];

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < tol, "{a:?} vs {b:?}");
        }
    }

    /// methods-wave2.md §3 "Test this" (6-digit reference values).
    #[test]
    fn reference_values() {
        assert!((smooth_step(0.2, 1.0) - 0.784).abs() < 1e-12);
        assert!((smooth_step(-0.1, 1.0) - 0.352).abs() < 1e-12);
        assert_eq!(smooth_step(0.5, 1.0), 1.0);
        assert_eq!(smooth_step(-0.5, 1.0), 0.0);
        close(&selector(&Z[..2], 4, 1.0), &[0.139968, 0.076032, 0.508032, 0.275968], 1e-9);
        let q = weights(&Z, &W, 4, 1.0);
        close(&q, &[0.068460, 0.570812, 0.193615, 0.167112], 5e-7);
        assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((entropy(&Z, 4, 1.0).0 - 1.631970).abs() < 5e-7);
        let q3 = weights(&Z, &W, 3, 1.0);
        close(&q3, &[0.068460, 0.570812, 0.193615], 5e-7);
        assert!((q3.iter().sum::<f64>() - 0.832888).abs() < 5e-7);
        assert!((missing_mass(&Z, 3, 1.0).0 - 2.493610).abs() < 5e-7);
        assert_eq!(missing_mass(&Z, 4, 1.0).0, 0.0);
    }

    #[test]
    fn codes_are_msb_first_and_bits_round_up() {
        assert_eq!([1, 2, 3, 4, 5, 8, 9].map(selector_bits), [0, 1, 2, 2, 3, 3, 4]);
        // z₁ saturated at 1 and z₂ at 0 select code 10 = expert 2.
        assert_eq!(selector(&[1.0, -1.0], 4, 1.0), vec![0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn gamma_widens_the_step() {
        assert_eq!(smooth_step(0.6, 1.0), 1.0);
        assert!(smooth_step(0.6, 2.0) < 1.0);
        assert!((smooth_step(0.6, 2.0) - (-2.0 * 0.216 / 8.0 + 0.45 + 0.5)).abs() < 1e-12);
    }

    /// Central differences of q·c, the entropy and the missing mass against the hand-written
    /// backward, for N = 3, 4, 5 and γ = 1, 2.
    #[test]
    fn backward_matches_finite_differences() {
        for (experts, gamma) in [(3, 1.0), (4, 1.0), (5, 2.0), (4, 2.0)] {
            let bits = selector_bits(experts);
            let k = 2;
            let z: Vec<f64> = (0..k * bits).map(|i| 0.37 * ((i as f64) * 1.7).sin() * gamma / 2.0).collect();
            let w = vec![0.3, -0.2];
            let c: Vec<f64> = (0..experts).map(|i| 1.0 + 0.5 * i as f64).collect();
            let f =
                |z: &[f64], w: &[f64]| weights(z, w, experts, gamma).iter().zip(&c).map(|(a, b)| a * b).sum::<f64>();
            let (d_z, d_w) = weights_backward(&z, &w, experts, gamma, &c);
            let h = 1e-6;
            for i in 0..z.len() {
                let (mut p, mut m) = (z.clone(), z.clone());
                p[i] += h;
                m[i] -= h;
                assert!(((f(&p, &w) - f(&m, &w)) / (2.0 * h) - d_z[i]).abs() < 1e-7);
                let e = (entropy(&p, experts, gamma).0 - entropy(&m, experts, gamma).0) / (2.0 * h);
                assert!((e - entropy(&z, experts, gamma).1[i]).abs() < 1e-6);
                let mm = (missing_mass(&p, experts, gamma).0 - missing_mass(&m, experts, gamma).0) / (2.0 * h);
                assert!((mm - missing_mass(&z, experts, gamma).1[i]).abs() < 1e-6);
            }
            for i in 0..w.len() {
                let (mut p, mut m) = (w.clone(), w.clone());
                p[i] += h;
                m[i] -= h;
                assert!(((f(&z, &p) - f(&z, &m)) / (2.0 * h) - d_w[i]).abs() < 1e-7);
            }
        }
    }
}
