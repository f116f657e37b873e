//! The statistics of `concord sweep --summary`: mean, sample standard deviation, median, and
//! two paired tests — the exact sign test and the Wilcoxon signed-rank test (exact null
//! distribution for n ≤ 25 without tied |differences|, else the normal approximation with the
//! tie correction, no continuity correction). Both two-sided, as scipy.stats computes them
//! (`binomtest(k, n, 0.5)`, `wilcoxon(d, zero_method="wilcox", method="exact" | "asymptotic",
//! correction=False)`); `tests/fixtures/sweep_stats.py` wrote the values the tests compare to.

/// Mean of `x` (NaN when empty).
pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample standard deviation (n − 1 in the denominator); `None` below two values.
pub fn sd(x: &[f64]) -> Option<f64> {
    if x.len() < 2 {
        return None;
    }
    let m = mean(x);
    Some((x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64).sqrt())
}

/// Median (the mean of the middle two for an even count; NaN when empty).
pub fn median(x: &[f64]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Two-sided exact sign test: the probability, under Binomial(w + l, ½), of a split at least as
/// uneven as w : l. `None` without a non-tied pair.
pub fn sign_test(wins: usize, losses: usize) -> Option<f64> {
    let n = wins + losses;
    if n == 0 {
        return None;
    }
    let k = wins.min(losses);
    if 2 * k == n {
        return Some(1.0);
    }
    // P(X ≤ k) = Σ C(n, i) / 2ⁿ, the terms in log space (no overflow for large n).
    let ln2n = n as f64 * std::f64::consts::LN_2;
    let (mut ln_c, mut tail) = (0.0f64, 0.0f64);
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_c - ln2n).exp();
    }
    Some((2.0 * tail).min(1.0))
}

/// How a Wilcoxon p-value was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WilcoxonMethod {
    /// The exact null distribution of W⁺ (n ≤ 25, no tied |differences|).
    Exact,
    /// The normal approximation with the tie correction (no continuity correction).
    Normal,
}

impl WilcoxonMethod {
    pub fn name(self) -> &'static str {
        match self {
            WilcoxonMethod::Exact => "exact",
            WilcoxonMethod::Normal => "normal",
        }
    }
}

/// The largest n the exact distribution is used for.
pub const EXACT_MAX_N: usize = 25;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wilcoxon {
    /// Non-zero differences.
    pub n: usize,
    /// Sum of the ranks of |d| over the positive differences (average ranks for ties).
    pub r_plus: f64,
    pub p: f64,
    pub method: WilcoxonMethod,
}

/// Average ranks (1-based) of `x` and the sizes of its groups of tied values.
fn ranks(x: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut ties = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && x[order[j]] == x[order[i]] {
            j += 1;
        }
        // Positions i..j (0-based) share the mean of ranks i+1..=j.
        let avg = (i + 1 + j) as f64 / 2.0;
        for &o in &order[i..j] {
            r[o] = avg;
        }
        ties.push(j - i);
        i = j;
    }
    (r, ties)
}

/// P(W⁺ = s) for s = 0 ..= n(n+1)/2 under the null (each rank's sign a fair coin): the number of
/// subsets of {1..n} summing to s, over 2ⁿ.
fn exact_pmf(n: usize) -> Vec<f64> {
    let max = n * (n + 1) / 2;
    let mut count = vec![0u64; max + 1];
    count[0] = 1;
    for k in 1..=n {
        for s in (k..=k * (k + 1) / 2).rev() {
            count[s] += count[s - k];
        }
    }
    let total = 2f64.powi(n as i32);
    count.into_iter().map(|c| c as f64 / total).collect()
}

/// Two-sided Wilcoxon signed-rank test of paired differences `d` (zeros dropped). `None`
/// without a non-zero difference. Infinite differences rank above every finite one.
pub fn wilcoxon(d: &[f64]) -> Option<Wilcoxon> {
    let d: Vec<f64> = d.iter().copied().filter(|v| *v != 0.0 && !v.is_nan()).collect();
    let n = d.len();
    if n == 0 {
        return None;
    }
    let abs: Vec<f64> = d.iter().map(|v| v.abs()).collect();
    let (r, ties) = ranks(&abs);
    let r_plus: f64 = d.iter().zip(&r).filter(|(v, _)| **v > 0.0).map(|(_, r)| r).sum();
    let tied = ties.iter().any(|&t| t > 1);
    if n <= EXACT_MAX_N && !tied {
        let pmf = exact_pmf(n);
        let t = r_plus.round() as usize;
        let cdf: f64 = pmf[..=t].iter().sum();
        let sf: f64 = pmf[t..].iter().sum();
        return Some(Wilcoxon { n, r_plus, p: (2.0 * cdf.min(sf)).min(1.0), method: WilcoxonMethod::Exact });
    }
    let nf = n as f64;
    let mean = nf * (nf + 1.0) / 4.0;
    let tie_term: f64 = ties.iter().map(|&t| (t * t * t - t) as f64).sum();
    let se = ((nf * (nf + 1.0) * (2.0 * nf + 1.0) - tie_term / 2.0) / 24.0).sqrt();
    let z = (r_plus - mean) / se;
    // 2·P(Z > |z|) = erfc(|z|/√2).
    let p = if se > 0.0 { libm::erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0) } else { 1.0 };
    Some(Wilcoxon { n, r_plus, p, method: WilcoxonMethod::Normal })
}

/// One arm against another on paired final losses (lower wins). A NaN loss counts as +∞ (a
/// failed run is worse than any finished one); two infinite losses tie.
#[derive(Clone, Debug, PartialEq)]
pub struct Paired {
    pub n: usize,
    pub wins: usize,
    pub losses: usize,
    pub ties: usize,
    pub sign_p: Option<f64>,
    pub wilcoxon: Option<Wilcoxon>,
}

pub fn paired(a: &[f64], b: &[f64]) -> Paired {
    assert_eq!(a.len(), b.len(), "paired samples");
    let worst = |v: f64| if v.is_nan() { f64::INFINITY } else { v };
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let (x, y) = (worst(x), worst(y));
            if x == y {
                0.0
            } else {
                x - y
            }
        })
        .collect();
    let wins = d.iter().filter(|v| **v < 0.0).count();
    let losses = d.iter().filter(|v| **v > 0.0).count();
    Paired {
        n: d.len(),
        wins,
        losses,
        ties: d.len() - wins - losses,
        sign_p: sign_test(wins, losses),
        wilcoxon: wilcoxon(&d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// Written by tests/fixtures/sweep_stats.py (scipy 1.17.1).
    const FIXTURE: &str = include_str!("../../tests/fixtures/sweep_stats.json");

    #[derive(Deserialize)]
    struct Fixture {
        scipy: String,
        sign: Vec<SignCase>,
        wilcoxon: Vec<WilcoxonCase>,
        describe: Vec<DescribeCase>,
    }

    #[derive(Deserialize)]
    struct SignCase {
        wins: usize,
        losses: usize,
        p: f64,
    }

    #[derive(Deserialize)]
    struct WilcoxonCase {
        d: Vec<f64>,
        method: String,
        n: usize,
        r_plus: f64,
        p: f64,
    }

    #[derive(Deserialize)]
    struct DescribeCase {
        x: Vec<f64>,
        mean: f64,
        sd: f64,
        median: f64,
    }

    fn fixture() -> Fixture {
        serde_json::from_str(FIXTURE).expect("the fixture parses")
    }

    #[test]
    fn sign_test_matches_scipy_binomtest() {
        let f = fixture();
        assert!(f.scipy.starts_with("1."), "{}", f.scipy);
        assert!(f.sign.len() >= 10);
        for c in &f.sign {
            let p = sign_test(c.wins, c.losses).unwrap();
            assert!((p - c.p).abs() <= 1e-9, "{}:{} → {p} vs scipy {}", c.wins, c.losses, c.p);
            // Symmetric in the two arms.
            assert_eq!(Some(p), sign_test(c.losses, c.wins));
        }
        assert_eq!(sign_test(0, 0), None);
    }

    #[test]
    fn wilcoxon_matches_scipy_exact_and_normal() {
        let f = fixture();
        let (mut exact, mut normal) = (0, 0);
        for c in &f.wilcoxon {
            let w = wilcoxon(&c.d).unwrap();
            assert_eq!(w.method.name(), c.method, "n = {}: {:?}", c.n, c.d);
            assert_eq!(w.n, c.n);
            assert!((w.r_plus - c.r_plus).abs() <= 1e-9, "W+ {} vs {}", w.r_plus, c.r_plus);
            assert!((w.p - c.p).abs() <= 1e-9, "n = {} {}: p {} vs scipy {}", c.n, c.method, w.p, c.p);
            match w.method {
                WilcoxonMethod::Exact => exact += 1,
                WilcoxonMethod::Normal => normal += 1,
            }
        }
        assert!(exact >= 5 && normal >= 5, "both branches covered: {exact} exact, {normal} normal");
        assert_eq!(wilcoxon(&[0.0, 0.0]), None);
    }

    #[test]
    fn mean_sd_median_match_numpy() {
        for c in &fixture().describe {
            assert!((mean(&c.x) - c.mean).abs() <= 1e-12 * c.mean.abs().max(1.0));
            assert!((sd(&c.x).unwrap() - c.sd).abs() <= 1e-12 * c.sd.abs().max(1.0));
            assert_eq!(median(&c.x), c.median);
        }
        assert_eq!(sd(&[1.0]), None);
        assert!(mean(&[]).is_nan() && median(&[]).is_nan());
    }

    #[test]
    fn the_exact_distribution_sums_to_one_and_is_symmetric() {
        for n in [1, 2, 5, 25] {
            let pmf = exact_pmf(n);
            assert!((pmf.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let m = pmf.len() - 1;
            assert!((0..=m).all(|s| pmf[s] == pmf[m - s]));
        }
        // n = 3: subsets of {1,2,3} by sum: 0,1,2,3(×2),4,5,6.
        assert_eq!(exact_pmf(3), [1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0].map(|c| c / 8.0));
    }

    #[test]
    fn paired_counts_wins_and_treats_failures_as_worst() {
        let a = [1.0, 2.0, f64::NAN, f64::INFINITY, 5.0, 3.0];
        let b = [2.0, 1.0, 4.0, f64::INFINITY, f64::NAN, 3.0];
        let p = paired(&a, &b);
        // a wins: 1<2, 5<NaN; b wins: 2>1, NaN>4; ties: ∞=∞, 3=3.
        assert_eq!((p.n, p.wins, p.losses, p.ties), (6, 2, 2, 2));
        assert_eq!(p.sign_p, Some(1.0));
        let w = p.wilcoxon.unwrap();
        // |d| = 1, 1, ∞, ∞ → ranks 1.5, 1.5, 3.5, 3.5; positive d: 2−1 and ∞ (NaN vs 4).
        assert_eq!((w.n, w.r_plus, w.method), (4, 5.0, WilcoxonMethod::Normal));
        assert!((w.p - 1.0).abs() < 1e-12);
    }
}
