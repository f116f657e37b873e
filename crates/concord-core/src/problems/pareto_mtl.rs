//! The Pareto-MTL synthetic two-objective problem (Xi-L/ParetoMTL `run_synthetic_example.py`,
//! toys.md §4): f₁ = 1 − exp(−‖x − 1/√n‖²), f₂ = 1 − exp(−‖x + 1/√n‖²) over x ∈ ℝⁿ (n = 20).
//! Its Pareto set is x₁ = … = x_n = t, t ∈ [−1/√n, 1/√n]; the front is concave.

use super::Problem;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParetoMtlSynthetic {
    pub n: usize,
}

impl ParetoMtlSynthetic {
    /// The published dimension.
    pub const PUBLISHED_DIM: usize = 20;

    pub fn new(n: usize) -> Result<Self, String> {
        if n == 0 {
            return Err("the Pareto-MTL problem needs n ≥ 1".into());
        }
        Ok(Self { n })
    }

    pub fn published() -> Self {
        Self { n: Self::PUBLISHED_DIM }
    }

    /// The point (t, …, t) of the Pareto set (for t ∈ [−1/√n, 1/√n]).
    pub fn pareto_point(&self, t: f64) -> Vec<f64> {
        vec![t; self.n]
    }

    /// exp(−‖x − c·1‖²) for c = ±1/√n, the common factor of loss and gradient.
    fn bump(&self, x: &[f64], c: f64) -> f64 {
        (-x.iter().map(|v| (v - c).powi(2)).sum::<f64>()).exp()
    }

    fn center(&self) -> f64 {
        1.0 / (self.n as f64).sqrt()
    }
}

impl Problem for ParetoMtlSynthetic {
    fn num_tasks(&self) -> usize {
        2
    }

    fn dim(&self) -> usize {
        self.n
    }

    fn losses(&self, x: &[f64]) -> Vec<f64> {
        let c = self.center();
        vec![1.0 - self.bump(x, c), 1.0 - self.bump(x, -c)]
    }

    /// ∇f_i = 2(x − c_i)·exp(−‖x − c_i‖²), with c₁ = +1/√n, c₂ = −1/√n.
    fn jacobian(&self, x: &[f64]) -> Vec<Vec<f64>> {
        let c = self.center();
        [c, -c]
            .iter()
            .map(|&ci| {
                let e = self.bump(x, ci);
                x.iter().map(|v| 2.0 * (v - ci) * e).collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn gradients_are_anti_parallel_on_the_pareto_set() {
        let p = ParetoMtlSynthetic::published();
        let c = 1.0 / 20f64.sqrt();
        for k in 1..10 {
            let t = -c + 2.0 * c * k as f64 / 10.0;
            let g = p.jacobian(&p.pareto_point(t));
            let cos = dot(&g[0], &g[1]) / (dot(&g[0], &g[0]).sqrt() * dot(&g[1], &g[1]).sqrt());
            assert!((cos + 1.0).abs() < 1e-12, "t = {t}: cos = {cos}");
        }
        // Off the set the gradients are not anti-parallel.
        let mut x = p.pareto_point(0.0);
        x[0] = 0.3;
        let g = p.jacobian(&x);
        let cos = dot(&g[0], &g[1]) / (dot(&g[0], &g[0]).sqrt() * dot(&g[1], &g[1]).sqrt());
        assert!(cos > -0.999);
        // The endpoints are the single-task optima.
        assert!(p.losses(&p.pareto_point(c))[0].abs() < 1e-15);
        assert!(p.losses(&p.pareto_point(-c))[1].abs() < 1e-15);
    }

    #[test]
    fn jacobian_matches_finite_differences() {
        let p = ParetoMtlSynthetic::new(5).unwrap();
        let x = [0.1, -0.3, 0.2, 0.05, -0.4];
        let g = p.jacobian(&x);
        for k in 0..5 {
            let (mut a, mut b) = (x, x);
            a[k] += 1e-6;
            b[k] -= 1e-6;
            for (i, gi) in g.iter().enumerate() {
                let fd = (p.losses(&a)[i] - p.losses(&b)[i]) / 2e-6;
                assert!((fd - gi[k]).abs() < 1e-8);
            }
        }
        assert!(ParetoMtlSynthetic::new(0).is_err());
    }
}
