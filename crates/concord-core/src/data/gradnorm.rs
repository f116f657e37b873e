//! GradNorm's synthetic regression (Chen et al. 2018 eq. 3; toys.md §4, following the
//! brianlan/pytorch-grad-norm re-implementation): y_t = σ_t·tanh((B + ε_t)·x), squared loss.
//! B and ε_t have i.i.d. normal entries with *standard deviations* 10 and 3.5 (the paper's
//! "N(0; 10)" is read as a std, as that re-implementation does); x ~ U(−1, 1)^d scaled to
//! unit length. Use `sample` for fresh points every step (the reference) or `fixed_set`.

use super::sampling::{normal, uniform, DataRng};
use crate::model::Target;
use nalgebra::DMatrix;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradNormConfig {
    pub input_dim: usize,
    pub output_dim: usize,
    /// σ_t, one per task (the reference's two tasks: [1, 100]).
    pub sigmas: Vec<f64>,
    pub b_std: f64,
    pub eps_std: f64,
    /// Seeds B and every ε_t.
    pub seed: u64,
}

impl GradNormConfig {
    /// The reference setting: 250 → 100, B std 10, ε std 3.5, the given σ.
    pub fn published(sigmas: Vec<f64>, seed: u64) -> Self {
        GradNormConfig { input_dim: 250, output_dim: 100, sigmas, b_std: 10.0, eps_std: 3.5, seed }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1024).contains(&self.input_dim) || !(1..=256).contains(&self.output_dim) {
            return Err(format!(
                "GradNorm dims must be 1–1024 in and 1–256 out, got {} → {}",
                self.input_dim, self.output_dim
            ));
        }
        if !(1..=8).contains(&self.sigmas.len()) {
            return Err(format!("GradNorm needs 1–8 tasks (sigmas), got {}", self.sigmas.len()));
        }
        if let Some(s) = self.sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("every σ must be a positive number, got {s}"));
        }
        for (name, v) in [("b_std", self.b_std), ("eps_std", self.eps_std)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be a non-negative number, got {v}"));
            }
        }
        Ok(())
    }

    /// Draw B (out × in) then ε_1, ε_2, … from one ChaCha8 stream seeded with `seed`.
    pub fn build(&self) -> Result<GradNormSynthetic, String> {
        self.validate()?;
        let mut rng = DataRng::seed_from_u64(self.seed);
        let (o, i) = (self.output_dim, self.input_dim);
        let mut draw = |std: f64| DMatrix::from_fn(o, i, |_, _| normal(&mut rng, 0.0, std * std));
        let b = draw(self.b_std);
        let task_maps = self.sigmas.iter().map(|_| &b + draw(self.eps_std)).collect();
        Ok(GradNormSynthetic { task_maps, sigmas: self.sigmas.clone(), input_dim: i })
    }
}

/// The drawn problem: task t's map B + ε_t (out × in) and scale σ_t.
#[derive(Clone, Debug, PartialEq)]
pub struct GradNormSynthetic {
    pub task_maps: Vec<DMatrix<f64>>,
    pub sigmas: Vec<f64>,
    pub input_dim: usize,
}

impl GradNormSynthetic {
    /// `batch` inputs (batch × in): U(−1, 1) entries, each row scaled to unit length.
    pub fn sample_inputs(&self, batch: usize, rng: &mut DataRng) -> DMatrix<f64> {
        let mut x = DMatrix::from_fn(batch, self.input_dim, |_, _| uniform(rng, -1.0, 1.0));
        for mut row in x.row_iter_mut() {
            let norm = row.norm();
            if norm > 0.0 {
                row /= norm;
            }
        }
        x
    }

    /// y_t = σ_t·tanh(x·(B + ε_t)ᵀ), one batch × out matrix per task.
    pub fn targets(&self, x: &DMatrix<f64>) -> Vec<Target> {
        self.task_maps
            .iter()
            .zip(&self.sigmas)
            .map(|(w, &s)| Target::Values((x * w.transpose()).map(|v| s * v.tanh())))
            .collect()
    }

    /// A fresh batch (the reference draws new points every step).
    pub fn sample(&self, batch: usize, rng: &mut DataRng) -> (DMatrix<f64>, Vec<Target>) {
        let x = self.sample_inputs(batch, rng);
        let y = self.targets(&x);
        (x, y)
    }

    /// A fixed set of n points from its own seed.
    pub fn fixed_set(&self, n: usize, seed: u64) -> (DMatrix<f64>, Vec<Target>) {
        self.sample(n, &mut DataRng::seed_from_u64(seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_scales_and_reproducibility() {
        let g = GradNormConfig::published(vec![1.0, 100.0], 123).build().unwrap();
        assert_eq!(g.task_maps[0].shape(), (100, 250));
        let (x, y) = g.fixed_set(50, 1);
        assert_eq!(x.shape(), (50, 250));
        assert!(x.row_iter().all(|r| (r.norm() - 1.0).abs() < 1e-12));
        let max = |t: &Target| match t {
            Target::Values(v) => v.amax(),
            Target::Classes(_) => unreachable!(),
        };
        assert!(max(&y[0]) <= 1.0 && max(&y[1]) <= 100.0 && max(&y[1]) > 10.0);
        assert_eq!(g.fixed_set(50, 1), (x, y));
        let again = GradNormConfig::published(vec![1.0, 100.0], 123).build().unwrap();
        assert_eq!(again, g);
        assert_ne!(GradNormConfig::published(vec![1.0, 100.0], 124).build().unwrap(), g);
        // The two tasks share B: their maps differ only by ε (std 3.5 ≪ 10).
        let diff = (&g.task_maps[0] - &g.task_maps[1]).norm() / g.task_maps[0].norm();
        assert!(diff < 0.6, "{diff}");
    }

    #[test]
    fn bad_configs_are_errors() {
        assert!(GradNormConfig::published(vec![], 0).validate().is_err());
        assert!(GradNormConfig::published(vec![1.0, -1.0], 0).validate().is_err());
        assert!(GradNormConfig { input_dim: 0, ..GradNormConfig::published(vec![1.0], 0) }.validate().is_err());
    }
}
