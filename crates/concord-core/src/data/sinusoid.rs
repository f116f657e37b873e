//! Sinusoid regression tasks (MAML `data_generator.py`, toys.md §4): y_t = A_t·sin(x − φ_t),
//! x ~ U[−5, 5], one shared scalar input and one head per task.

use super::sampling::{uniform, DataRng};
use crate::model::Target;
use nalgebra::DMatrix;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SinusoidTask {
    pub amplitude: f64,
    pub phase: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SinusoidConfig {
    pub tasks: Vec<SinusoidTask>,
    pub n: usize,
    /// Seeds the x draws.
    pub seed: u64,
}

impl SinusoidConfig {
    /// m tasks of one amplitude with phases φ_t = t·shift (shift = π: task 1 is −task 0).
    pub fn phase_shifted(m: usize, amplitude: f64, shift: f64, n: usize, seed: u64) -> Self {
        let tasks = (0..m).map(|t| SinusoidTask { amplitude, phase: t as f64 * shift }).collect();
        SinusoidConfig { tasks, n, seed }
    }

    /// m tasks with MAML's ranges, A ~ U[0.1, 5], φ ~ U[0, π], drawn from stream 1 of `seed`
    /// (the x draws use stream 0).
    pub fn maml_random(m: usize, n: usize, seed: u64) -> Self {
        let mut rng = DataRng::seed_from_u64(seed);
        rng.set_stream(1);
        let tasks = (0..m)
            .map(|_| SinusoidTask { amplitude: uniform(&mut rng, 0.1, 5.0), phase: uniform(&mut rng, 0.0, PI) })
            .collect();
        SinusoidConfig { tasks, n, seed }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=8).contains(&self.tasks.len()) {
            return Err(format!("need 1–8 sinusoid tasks, got {}", self.tasks.len()));
        }
        if !(1..=100_000).contains(&self.n) {
            return Err(format!("n must be 1–100000, got {}", self.n));
        }
        if self.tasks.iter().any(|t| !(t.amplitude.is_finite() && t.phase.is_finite())) {
            return Err("sinusoid amplitudes and phases must be finite numbers".into());
        }
        Ok(())
    }

    /// x (n × 1) and one n × 1 target per task.
    pub fn generate(&self) -> Result<(DMatrix<f64>, Vec<Target>), String> {
        self.validate()?;
        let mut rng = DataRng::seed_from_u64(self.seed);
        let x = DMatrix::from_fn(self.n, 1, |_, _| uniform(&mut rng, -5.0, 5.0));
        let y = self.tasks.iter().map(|t| Target::Values(x.map(|v| t.amplitude * (v - t.phase).sin()))).collect();
        Ok((x, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_shift_of_pi_negates_the_task() {
        let (x, y) = SinusoidConfig::phase_shifted(2, 2.0, PI, 100, 3).generate().unwrap();
        assert!(x.iter().all(|v| (-5.0..5.0).contains(v)));
        let (Target::Values(a), Target::Values(b)) = (&y[0], &y[1]) else { panic!() };
        assert!((a + b).amax() < 1e-12);
        assert!((a - x.map(|v| 2.0 * v.sin())).amax() < 1e-15);
    }

    #[test]
    fn maml_ranges_and_seeds() {
        let c = SinusoidConfig::maml_random(5, 10, 1);
        assert!(c.tasks.iter().all(|t| (0.1..5.0).contains(&t.amplitude) && (0.0..PI).contains(&t.phase)));
        assert_eq!(c, SinusoidConfig::maml_random(5, 10, 1));
        assert_ne!(c, SinusoidConfig::maml_random(5, 10, 2));
        assert_ne!(c.generate().unwrap().0, SinusoidConfig { seed: 2, ..c.clone() }.generate().unwrap().0);
        assert!(SinusoidConfig { n: 0, ..c.clone() }.generate().is_err());
        assert!(SinusoidConfig::phase_shifted(0, 1.0, 0.0, 10, 0).generate().is_err());
    }
}
