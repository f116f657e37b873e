//! A trajectory projected onto a slice plane, by least squares (`project_2D` in the
//! reference): (α, β) minimises ‖θ_i − origin − α·δ − β·η‖. Exact when δ ⟂ η or not.

use super::directions::Plane;
use super::vector::{dot, norm};
use serde::{Deserialize, Serialize};

/// Plane coordinates of each snapshot, and how much of it the plane misses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectedPath {
    /// A label for the run (method, seed) the panel can show.
    pub label: String,
    /// The step each snapshot was taken at.
    pub steps: Vec<usize>,
    pub coords: Vec<[f64; 2]>,
    /// ‖residual‖ / ‖θ_i − origin‖ (0 when the snapshot lies on the plane or at the origin).
    pub residual: Vec<f64>,
}

pub fn project(plane: &Plane, label: &str, steps: &[usize], snapshots: &[Vec<f64>]) -> Result<ProjectedPath, String> {
    if steps.len() != snapshots.len() {
        return Err(format!("{} steps for {} snapshots", steps.len(), snapshots.len()));
    }
    let (d, e) = (&plane.delta, &plane.eta);
    let (dd, de, ee) = (dot(d, d), dot(d, e), dot(e, e));
    let det = dd * ee - de * de;
    if !(det > 1e-14 * dd * ee) {
        return Err("the slice directions are parallel: no plane to project on".into());
    }
    let mut coords = Vec::with_capacity(snapshots.len());
    let mut residual = Vec::with_capacity(snapshots.len());
    let mut diff = vec![0.0; plane.origin.len()];
    for (i, s) in snapshots.iter().enumerate() {
        if s.len() != plane.origin.len() {
            return Err(format!("snapshot {i} has {} parameters, the plane {}", s.len(), plane.origin.len()));
        }
        for ((o, a), b) in diff.iter_mut().zip(s).zip(&plane.origin) {
            *o = a - b;
        }
        let (bd, be) = (dot(&diff, d), dot(&diff, e));
        // The 2 × 2 normal equations [dd de; de ee]·(α, β) = (bd, be).
        let alpha = (ee * bd - de * be) / det;
        let beta = (dd * be - de * bd) / det;
        let total = norm(&diff);
        let res: f64 = diff
            .iter()
            .zip(d.iter().zip(e))
            .map(|(x, (dv, ev))| (x - alpha * dv - beta * ev).powi(2))
            .sum::<f64>()
            .sqrt();
        coords.push([alpha, beta]);
        residual.push(if total > 0.0 { res / total } else { 0.0 });
    }
    Ok(ProjectedPath { label: label.to_string(), steps: steps.to_vec(), coords, residual })
}
