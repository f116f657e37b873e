//! 1-D linear interpolation between two parameter vectors (Goodfellow et al. 2015) and the two
//! published barrier heights.
//!
//! f(α) = L((1−α)·θ₁ + α·θ₂), so α = 0 is θ₁ and α = 1 is θ₂. With L₁ = L(θ₁), L₂ = L(θ₂):
//! - Frankle et al. 2020 ("error barrier", applied here to the loss):
//!   sup_α f(α) − ½(L₁ + L₂);
//! - Entezari et al. 2022 ("loss barrier"):
//!   sup_α [f(α) − ((1−α)·L₁ + α·L₂)]  (their α weights θ₁; the same quantity in our α).
//!
//! Both take the sup over the sampled α in [0, 1] only (points outside are drawn, not used), so
//! the values are lower bounds that tighten with the sampling; Entezari's code samples 11.

use super::objective::{check_len, Objective};
use super::slice::{for_each_point, thread_count};
use serde::{Deserialize, Serialize};

/// Losses along the path and the barriers, per task and for the total.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interpolation {
    pub alphas: Vec<f64>,
    /// tasks[t][i] = L_t at alphas[i].
    pub tasks: Vec<Vec<f64>>,
    pub total: Vec<f64>,
    /// Per task then the total (last entry).
    pub barrier_frankle: Vec<f64>,
    pub barrier_entezari: Vec<f64>,
}

/// The two barriers of one curve, given its endpoint values.
pub fn barriers(alphas: &[f64], values: &[f64], at_0: f64, at_1: f64) -> (f64, f64) {
    let mut frankle = f64::NEG_INFINITY;
    let mut entezari = f64::NEG_INFINITY;
    for (&a, &v) in alphas.iter().zip(values) {
        if (0.0..=1.0).contains(&a) {
            frankle = frankle.max(v - 0.5 * (at_0 + at_1));
            entezari = entezari.max(v - ((1.0 - a) * at_0 + a * at_1));
        }
    }
    // The endpoints themselves are always on the path: the Entezari barrier is ≥ 0.
    entezari = entezari.max(0.0);
    frankle = frankle.max(at_0.max(at_1) - 0.5 * (at_0 + at_1));
    (frankle, entezari)
}

pub fn interpolate(
    objective: &dyn Objective,
    theta1: &[f64],
    theta2: &[f64],
    alphas: &[f64],
    threads: usize,
) -> Result<Interpolation, String> {
    check_len(theta1, objective.dim())?;
    check_len(theta2, objective.dim())?;
    if alphas.is_empty() || alphas.iter().any(|a| !a.is_finite()) {
        return Err("interpolation needs at least one finite α".into());
    }
    let point = |a: f64, buf: &mut Vec<f64>| -> Result<Vec<f64>, String> {
        for ((o, x), y) in buf.iter_mut().zip(theta1).zip(theta2) {
            *o = (1.0 - a) * x + a * y;
        }
        let mut l = objective.losses(buf)?;
        l.push(l.iter().sum());
        Ok(l)
    };
    let dim = objective.dim();
    let values = for_each_point(
        alphas.len(),
        thread_count(threads, alphas.len()),
        || vec![0.0; dim],
        |k, buf| point(alphas[k], buf),
    )?;
    let ends = [point(0.0, &mut theta1.to_vec())?, point(1.0, &mut theta2.to_vec())?];
    let m = objective.num_tasks();
    let curves: Vec<Vec<f64>> = (0..=m).map(|t| values.iter().map(|v| v[t]).collect()).collect();
    let (frankle, entezari) = (0..=m).map(|t| barriers(alphas, &curves[t], ends[0][t], ends[1][t])).unzip();
    let mut tasks = curves;
    let total = tasks.pop().expect("m + 1 curves");
    Ok(Interpolation { alphas: alphas.to_vec(), tasks, total, barrier_frankle: frankle, barrier_entezari: entezari })
}
