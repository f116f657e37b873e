//! The merged point's loss barrier to each parent (dynamics.md §6): Entezari et al. 2022's
//! B = sup_α [L(αθ₁ + (1−α)θ₂) − (αL(θ₁) + (1−α)L(θ₂))] applied to task t's loss along the
//! straight line θ_t → θ_M, per task (**ours**). Frankle et al. 2020's form
//! sup_α L − ½(L(θ₁) + L(θ₂)) is kept beside it. Both come from `landscape::interpolate`, so the
//! sup is taken over [`BARRIER_POINTS`] evenly spaced α in [0, 1] (a lower bound that tightens
//! with the sampling; 21 points including α = ½ is **ours**).
//!
//! Along θ_t → θ_M head t is the same at both ends (the merged point keeps each task's parent
//! head), so the path moves task t's trunk only.

use crate::landscape::{interpolate, linspace, Objective};
use serde::{Deserialize, Serialize};

/// α samples on the path, ends included (odd, so α = ½ is one of them).
pub const BARRIER_POINTS: usize = 21;

/// Task t's loss along θ_t → θ_M and its two barrier heights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskBarrier {
    pub task: usize,
    /// α = 0 is the parent θ_t, α = 1 the merged point.
    pub alphas: Vec<f64>,
    pub losses: Vec<f64>,
    pub entezari: f64,
    pub frankle: f64,
}

/// Task `task`'s barrier along `from` → `to`, sampled at `points` α (≥ 2).
pub fn barrier(
    objective: &dyn Objective,
    task: usize,
    from: &[f64],
    to: &[f64],
    points: usize,
) -> Result<TaskBarrier, String> {
    if task >= objective.num_tasks() {
        return Err(format!("task {task} does not exist ({} tasks)", objective.num_tasks()));
    }
    if points < 2 {
        return Err(format!("a barrier needs at least 2 points on the path, got {points}"));
    }
    let path = interpolate(objective, from, to, &linspace(0.0, 1.0, points), 1)?;
    Ok(TaskBarrier {
        task,
        alphas: path.alphas,
        losses: path.tasks[task].clone(),
        entezari: path.barrier_entezari[task],
        frankle: path.barrier_frankle[task],
    })
}

/// Every task's barrier between its parent `parents[t]` and the merged point.
pub fn task_barriers(
    objective: &dyn Objective,
    parents: &[Vec<f64>],
    merged: &[f64],
) -> Result<Vec<TaskBarrier>, String> {
    parents.iter().enumerate().map(|(t, p)| barrier(objective, t, p, merged, BARRIER_POINTS)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    /// One-dimensional losses: task 0 is (x² − 1)², task 1 is x².
    struct Curves;

    impl Objective for Curves {
        fn dim(&self) -> usize {
            1
        }
        fn num_tasks(&self) -> usize {
            2
        }
        fn losses(&self, p: &[f64]) -> Result<Vec<f64>, String> {
            let x = p[0];
            Ok(vec![(x * x - 1.0).powi(2), x * x])
        }
        fn task_gradients(&self, p: &[f64]) -> Result<DMatrix<f64>, String> {
            let x = p[0];
            Ok(DMatrix::from_row_slice(2, 1, &[4.0 * x * (x * x - 1.0), 2.0 * x]))
        }
    }

    /// dynamics.md §6 "Test this": L = (x² − 1)² from −1 to 1 has both barriers 1, at α = ½; the
    /// convex x² has Entezari barrier 0 (and Frankle's is 0 too: the endpoints are the max).
    #[test]
    fn barriers_on_the_double_well_and_the_parabola() {
        let b = barrier(&Curves, 0, &[-1.0], &[1.0], BARRIER_POINTS).unwrap();
        assert!((b.entezari - 1.0).abs() < 1e-12 && (b.frankle - 1.0).abs() < 1e-12, "{b:?}");
        let peak = b.losses.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let at = b.losses.iter().position(|&l| l == peak).unwrap();
        assert_eq!(b.alphas[at], 0.5);
        let c = barrier(&Curves, 1, &[-1.0], &[1.0], BARRIER_POINTS).unwrap();
        assert!(c.entezari.abs() < 1e-12 && c.frankle.abs() < 1e-12, "{c:?}");
    }

    /// Per task: task 0 from its parent at 0, task 1 from its own at 2, both to the merged 1.
    /// Task 0: (1 − α²)² against the chord 1 − α, highest of the samples at α = ¼, by hand
    /// 0.75·(0.75·1.25² − 1) = 0.12890625. Task 1: x² from 2 to 1 is convex, 0.
    /// From −1 to 0.5: (x² − 1)² against the chord 0 → 0.5625α; the continuous sup is near
    /// α ≈ 0.6035 (x ≈ −0.095), and of the 21 samples α = 0.6 (x = −0.1) is highest, by hand
    /// (0.01 − 1)² − 0.6·0.5625 = 0.6426 (α = 0.55 gives 0.6303, α = 0.65 gives 0.6331).
    #[test]
    fn task_barriers_follow_each_parent() {
        let bs = task_barriers(&Curves, &[vec![0.0], vec![2.0]], &[1.0]).unwrap();
        assert!((bs[0].entezari - 0.12890625).abs() < 1e-12 && bs[1].entezari.abs() < 1e-12, "{bs:?}");
        let b = barrier(&Curves, 0, &[-1.0], &[0.5], BARRIER_POINTS).unwrap();
        let expect = 0.6426;
        assert!((b.entezari - expect).abs() < 1e-12, "{} vs {expect}", b.entezari);
        assert!(barrier(&Curves, 2, &[0.0], &[1.0], 5).is_err());
    }
}
