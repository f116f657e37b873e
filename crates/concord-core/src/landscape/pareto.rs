//! Two-task Pareto views: the non-dominated set of loss points and the 2-D hypervolume.
//!
//! Minimisation throughout (lower-left is better). HV(A, r) = λ(∪_{a∈A} [a, r]); points that do
//! not strictly dominate r add nothing (moocore's definition). The sum is optuna's `_compute_2d`:
//! sort by f₁, keep the staircase, HV = Σ (r₁ − xᵢ)(y_{i−1} − yᵢ) with y₀ = r₂.

use serde::{Deserialize, Serialize};

/// a dominates b: no worse in both and better in one.
pub fn dominates(a: [f64; 2], b: [f64; 2]) -> bool {
    a[0] <= b[0] && a[1] <= b[1] && (a[0] < b[0] || a[1] < b[1])
}

fn check_points(points: &[[f64; 2]]) -> Result<(), String> {
    match points.iter().position(|p| !(p[0].is_finite() && p[1].is_finite())) {
        Some(i) => Err(format!("loss point {i} is not finite ({:?})", points[i])),
        None => Ok(()),
    }
}

/// Indices of the non-dominated points, sorted by f₁ ascending (then f₂ descending: the
/// staircase a plot draws). Duplicates of a front point are all kept.
pub fn non_dominated(points: &[[f64; 2]]) -> Result<Vec<usize>, String> {
    check_points(points)?;
    let mut idx: Vec<usize> = (0..points.len()).filter(|&i| !points.iter().any(|&q| dominates(q, points[i]))).collect();
    idx.sort_by(|&a, &b| points[a][0].total_cmp(&points[b][0]).then(points[b][1].total_cmp(&points[a][1])));
    Ok(idx)
}

/// The 2-D hypervolume of `points` against the reference point `reference`.
pub fn hypervolume_2d(points: &[[f64; 2]], reference: [f64; 2]) -> Result<f64, String> {
    check_points(points)?;
    if !(reference[0].is_finite() && reference[1].is_finite()) {
        return Err(format!("the reference point must be finite, got {reference:?}"));
    }
    let mut pts: Vec<[f64; 2]> =
        points.iter().copied().filter(|p| p[0] < reference[0] && p[1] < reference[1]).collect();
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut level = reference[1];
    let mut hv = 0.0;
    for p in pts {
        // Sorted by f₁: a point is on the staircase only if it lowers the current f₂ level.
        if p[1] < level {
            hv += (reference[0] - p[0]) * (level - p[1]);
            level = p[1];
        }
    }
    Ok(hv)
}

/// A loss-space scatter with its front and hypervolume, ready to draw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParetoView {
    pub points: Vec<[f64; 2]>,
    pub labels: Vec<String>,
    /// Indices into `points`, staircase order.
    pub front: Vec<usize>,
    pub reference: [f64; 2],
    pub hypervolume: f64,
}

pub fn pareto_view(points: Vec<[f64; 2]>, labels: Vec<String>, reference: [f64; 2]) -> Result<ParetoView, String> {
    if labels.len() != points.len() {
        return Err(format!("{} labels for {} points", labels.len(), points.len()));
    }
    let front = non_dominated(&points)?;
    let hypervolume = hypervolume_2d(&points, reference)?;
    Ok(ParetoView { points, labels, front, reference, hypervolume })
}
