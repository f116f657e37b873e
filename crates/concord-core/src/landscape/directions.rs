//! The two directions (δ, η) that span a 2-D slice through θ.
//!
//! - `Random`: Gaussian, filter-normalised (Li et al. 2018, `net_plotter.py` with
//!   `--xnorm filter --xignore biasbn`): each output neuron's row of incoming weights is scaled to
//!   the norm of θ's row, biases get 0. For an analytic problem (one flat vector, no filters) the
//!   whole vector is one "layer": d ← d·‖θ‖/‖d‖ (the reference's `layer` mode).
//! - `Gradients`: the descent directions −∇L₀, −∇L₁ at θ, each scaled to ‖θ‖ (the norm a
//!   filter-normalised direction has once biases are zeroed), *not* orthogonalised: the angle
//!   between the axes is the conflict. Their cosine is recorded.
//! - `Pca`: the first two principal components of the trajectory (see `pca.rs`).
//! - `StartEnd`: δ = θ_start − θ (α = 1 is the start), η a filter-normalised random direction
//!   made orthogonal to δ and scaled to ‖δ‖.

use super::objective::Objective;
use super::pca::pca_directions;
use super::vector::{cosine, dot, norm, scale};
use crate::data::{normal, DataRng};
use crate::model::Layout;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// |cos(δ, η)| above which two random directions are made orthogonal (the reference logs the
/// cosine; tiny models can draw visibly correlated pairs).
pub const ORTHOGONALISE_ABOVE: f64 = 0.1;
/// `+ 1e-10` in the filter scaling, as in `net_plotter.py`.
const FILTER_EPS: f64 = 1e-10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirectionKind {
    Random,
    Gradients,
    Pca,
    StartEnd,
}

impl DirectionKind {
    pub const ALL: [DirectionKind; 4] =
        [DirectionKind::Random, DirectionKind::Gradients, DirectionKind::Pca, DirectionKind::StartEnd];

    pub fn name(self) -> &'static str {
        match self {
            DirectionKind::Random => "random",
            DirectionKind::Gradients => "gradients",
            DirectionKind::Pca => "pca",
            DirectionKind::StartEnd => "start-end",
        }
    }
}

impl std::str::FromStr for DirectionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DirectionKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| format!("unknown directions '{s}' (expected one of: random, gradients, pca, start-end)"))
    }
}

/// The slice plane θ + α·δ + β·η.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plane {
    pub kind: DirectionKind,
    pub origin: Vec<f64>,
    pub delta: Vec<f64>,
    pub eta: Vec<f64>,
    /// cos(δ, η) as drawn (before any orthogonalisation for `Random`).
    pub cosine: f64,
    /// Explained-variance ratios of the two components (`Pca` only).
    pub explained_variance: Option<[f64; 2]>,
}

/// A Gaussian vector of length `n` from `seed` (Marsaglia polar, unit variance).
pub fn gaussian(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = DataRng::seed_from_u64(seed);
    (0..n).map(|_| normal(&mut rng, 0.0, 1.0)).collect()
}

/// Filter normalisation of `d` against `theta` in place: every output row of every layer's
/// weight gets ‖θ_row‖/(‖d_row‖ + 1e-10), every bias 0. `layout = None`: one flat tensor
/// (layer normalisation).
pub fn filter_normalise(d: &mut [f64], theta: &[f64], layout: Option<&Layout>) {
    match layout {
        None => {
            let s = norm(theta) / (norm(d) + FILTER_EPS);
            scale(d, s);
        }
        Some(layout) => {
            for s in layout.trunk.iter().chain(&layout.heads) {
                for j in 0..s.fan_out {
                    let r = s.weight.start + j * s.fan_in..s.weight.start + (j + 1) * s.fan_in;
                    let k = norm(&theta[r.clone()]) / (norm(&d[r.clone()]) + FILTER_EPS);
                    scale(&mut d[r], k);
                }
                d[s.bias.clone()].iter_mut().for_each(|v| *v = 0.0);
            }
        }
    }
}

/// A filter-normalised random direction.
pub fn random_direction(theta: &[f64], layout: Option<&Layout>, seed: u64) -> Vec<f64> {
    let mut d = gaussian(theta.len(), seed);
    filter_normalise(&mut d, theta, layout);
    d
}

/// η − (η·δ/δ·δ)·δ, rescaled to `target_norm`.
fn orthogonal_to(eta: &[f64], delta: &[f64], target_norm: f64) -> Vec<f64> {
    let dd = dot(delta, delta);
    let c = if dd > 0.0 { dot(eta, delta) / dd } else { 0.0 };
    let mut out: Vec<f64> = eta.iter().zip(delta).map(|(e, d)| e - c * d).collect();
    let n = norm(&out);
    if n > 0.0 {
        scale(&mut out, target_norm / n);
    }
    out
}

/// The norm a direction is scaled to: ‖θ‖ without the biases (= ‖filter-normalised d‖), or 1
/// when that is 0 (a start at the origin).
fn reference_norm(theta: &[f64], layout: Option<&Layout>) -> f64 {
    let mut weights_only = theta.to_vec();
    if let Some(layout) = layout {
        for s in layout.trunk.iter().chain(&layout.heads) {
            weights_only[s.bias.clone()].iter_mut().for_each(|v| *v = 0.0);
        }
    }
    let n = norm(&weights_only);
    if n > 0.0 {
        n
    } else {
        1.0
    }
}

/// What a plane may need besides θ.
pub struct PlaneInputs<'a> {
    pub layout: Option<&'a Layout>,
    pub seed: u64,
    /// Parameter snapshots along the run, oldest first (for `Pca` and `StartEnd`).
    pub trajectory: &'a [Vec<f64>],
    /// Tasks whose gradients span the plane (`Gradients`), default (0, 1).
    pub tasks: (usize, usize),
}

/// Builds the plane of kind `kind` through `theta`.
pub fn plane(
    kind: DirectionKind,
    objective: &dyn Objective,
    theta: &[f64],
    inputs: &PlaneInputs,
) -> Result<Plane, String> {
    super::objective::check_len(theta, objective.dim())?;
    let layout = inputs.layout;
    let origin = theta.to_vec();
    let (delta, eta, cos, explained) = match kind {
        DirectionKind::Random => {
            let delta = random_direction(theta, layout, inputs.seed);
            let eta = random_direction(theta, layout, inputs.seed.wrapping_add(1));
            let cos = cosine(&delta, &eta);
            let eta = if cos.abs() > ORTHOGONALISE_ABOVE { orthogonal_to(&eta, &delta, norm(&eta)) } else { eta };
            (delta, eta, cos, None)
        }
        DirectionKind::Gradients => {
            let (a, b) = inputs.tasks;
            let m = objective.num_tasks();
            if a >= m || b >= m || a == b {
                return Err(format!("gradient directions need two different tasks below {m}, got ({a}, {b})"));
            }
            let j = objective.task_gradients(theta)?;
            let target = reference_norm(theta, layout);
            let mut dirs = [a, b].map(|t| j.row(t).iter().map(|g| -g).collect::<Vec<f64>>());
            for d in &mut dirs {
                let n = norm(d);
                if !(n > 0.0 && n.is_finite()) {
                    return Err("a task gradient is zero or not finite at θ: it cannot span a slice".into());
                }
                scale(d, target / n);
            }
            let [delta, eta] = dirs;
            let cos = cosine(&delta, &eta);
            (delta, eta, cos, None)
        }
        DirectionKind::Pca => {
            let (d1, d2, ratios) = pca_directions(inputs.trajectory, theta)?;
            (d1, d2, 0.0, Some(ratios))
        }
        DirectionKind::StartEnd => {
            let start = inputs.trajectory.first().ok_or("start-end directions need the trajectory's start")?;
            super::objective::check_len(start, theta.len())?;
            let delta: Vec<f64> = start.iter().zip(theta).map(|(s, t)| s - t).collect();
            let n = norm(&delta);
            if n == 0.0 {
                return Err("the run did not move: start and end coincide".into());
            }
            let r = random_direction(theta, layout, inputs.seed);
            let cos = cosine(&delta, &r);
            let eta = orthogonal_to(&r, &delta, n);
            (delta, eta, cos, None)
        }
    };
    if delta.iter().chain(&eta).any(|v| !v.is_finite()) {
        return Err("a slice direction is not finite".into());
    }
    Ok(Plane { kind, origin, delta, eta, cosine: cos, explained_variance: explained })
}
