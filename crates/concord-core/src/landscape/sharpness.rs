//! Curvature from Hessian-vector products, following PyHessian (`hessian.py`):
//! - the top eigenvalue by power iteration: v ~ N(0, I)/‖v‖; repeat λ = vᵀHv, v ← Hv/‖Hv‖ until
//!   |λ − λ_prev|/(|λ_prev| + 1e-6) < tol (defaults 100 iterations, tol 1e-3). Power iteration
//!   converges to the eigenvalue of largest |λ| (as PyHessian's does); near a minimum that is λ_max;
//! - the Hutchinson trace: Rademacher probes v ∈ {±1}ⁿ, Tr H ≈ mean vᵀHv, stopping when the
//!   running mean changes by less than tol (relative) or after `max_iter` probes.
//!
//! Both are seeded, so a run reproduces.

use super::directions::gaussian;
use super::hvp::hvp;
use super::objective::{check_len, Objective};
use super::vector::{dot, norm, scale};
use crate::data::DataRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvatureConfig {
    pub max_iter: usize,
    pub tol: f64,
    pub seed: u64,
}

impl Default for CurvatureConfig {
    /// PyHessian's defaults (maxIter = 100, tol = 1e-3), seed 0.
    fn default() -> Self {
        CurvatureConfig { max_iter: 100, tol: 1e-3, seed: 0 }
    }
}

impl CurvatureConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_iter == 0 {
            return Err("curvature needs at least one iteration".into());
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(format!("the curvature tolerance must be a positive number, got {}", self.tol));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopEigen {
    pub value: f64,
    pub vector: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
}

pub fn top_eigenvalue(
    objective: &dyn Objective,
    theta: &[f64],
    task: Option<usize>,
    cfg: &CurvatureConfig,
) -> Result<TopEigen, String> {
    cfg.validate()?;
    check_len(theta, objective.dim())?;
    let mut v = gaussian(theta.len(), cfg.seed);
    let n0 = norm(&v);
    scale(&mut v, 1.0 / (n0 + 1e-6));
    let mut lambda_prev: Option<f64> = None;
    for it in 1..=cfg.max_iter {
        let hv = hvp(objective, theta, &v, task)?;
        let lambda = dot(&v, &hv);
        let n = norm(&hv);
        if !lambda.is_finite() || !n.is_finite() {
            return Err("a Hessian-vector product is not finite".into());
        }
        if n == 0.0 {
            // H·v = 0: v lies in the null space; λ = 0 is exact for this start.
            return Ok(TopEigen { value: 0.0, vector: v, iterations: it, converged: true });
        }
        v = hv;
        scale(&mut v, 1.0 / n);
        if let Some(p) = lambda_prev {
            if (lambda - p).abs() / (p.abs() + 1e-6) < cfg.tol {
                return Ok(TopEigen { value: lambda, vector: v, iterations: it, converged: true });
            }
        }
        lambda_prev = Some(lambda);
    }
    Ok(TopEigen { value: lambda_prev.unwrap_or(0.0), vector: v, iterations: cfg.max_iter, converged: false })
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceEstimate {
    pub mean: f64,
    /// vᵢᵀHvᵢ of every probe (PyHessian returns these; the caller averages).
    pub samples: Vec<f64>,
}

pub fn hutchinson_trace(
    objective: &dyn Objective,
    theta: &[f64],
    task: Option<usize>,
    cfg: &CurvatureConfig,
) -> Result<TraceEstimate, String> {
    cfg.validate()?;
    check_len(theta, objective.dim())?;
    let mut rng = DataRng::seed_from_u64(cfg.seed);
    // A stream apart from the eigenvalue's Gaussian start.
    rng.set_stream(7);
    let mut samples = Vec::new();
    let mut mean_prev: Option<f64> = None;
    for _ in 0..cfg.max_iter {
        let v: Vec<f64> = (0..theta.len()).map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 }).collect();
        let s = dot(&v, &hvp(objective, theta, &v, task)?);
        if !s.is_finite() {
            return Err("a Hessian-vector product is not finite".into());
        }
        samples.push(s);
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        if let Some(p) = mean_prev {
            if (mean - p).abs() / (p.abs() + 1e-6) < cfg.tol {
                break;
            }
        }
        mean_prev = Some(mean);
    }
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    Ok(TraceEstimate { mean, samples })
}

/// λ_max and the trace for every task and for the total (last entry of each).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sharpness {
    pub lambda_max: Vec<f64>,
    pub trace: Vec<f64>,
}

pub fn sharpness(objective: &dyn Objective, theta: &[f64], cfg: &CurvatureConfig) -> Result<Sharpness, String> {
    let targets: Vec<Option<usize>> = (0..objective.num_tasks()).map(Some).chain([None]).collect();
    let mut lambda_max = Vec::with_capacity(targets.len());
    let mut trace = Vec::with_capacity(targets.len());
    for t in targets {
        lambda_max.push(top_eigenvalue(objective, theta, t, cfg)?.value);
        trace.push(hutchinson_trace(objective, theta, t, cfg)?.mean);
    }
    Ok(Sharpness { lambda_max, trace })
}
