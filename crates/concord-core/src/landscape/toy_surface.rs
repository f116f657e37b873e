//! The exact surfaces of the CAGrad toys, in the slice's data shape: the plane is the toy's own
//! (x₁, x₂) plane (origin 0, δ = e₁, η = e₂), the grid its plotting domain, with the optimum
//! marker and the Pareto segment the papers draw, and that segment's image in loss space.

use super::grid::{linspace, Grid, Surface};
use crate::problems::{CagradToy, Problem, ProblemKind};
use serde::{Deserialize, Serialize};

/// Points along the Pareto segment's image (the nash-mtl plot uses linspace(−7, 7, 1000)).
pub const FRONT_POINTS: usize = 1000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToySurface {
    pub problem: String,
    pub surface: Surface,
    /// The marker drawn in the repos (the minimum of ½(L₁+L₂) for the unscaled toy).
    pub optimum: [f64; 2],
    /// Segment endpoints in parameter space.
    pub pareto_segment: [[f64; 2]; 2],
    /// (L₁, L₂) along the segment: the front drawn in loss space.
    pub pareto_front: Vec<[f64; 2]>,
}

pub fn toy_surface(kind: ProblemKind, points: usize) -> Result<ToySurface, String> {
    let [lo, hi] = CagradToy::DOMAIN;
    let grid = Grid::square(points, lo, hi)?;
    let toy: CagradToy = kind.toy();
    let mut tasks = vec![Vec::new(), Vec::new()];
    for k in 0..grid.len() {
        let (a, b) = grid.point(k);
        for (t, l) in toy.losses(&[a, b]).into_iter().enumerate() {
            tasks[t].push(l);
        }
    }
    let seg = CagradToy::PARETO_SEGMENT;
    let pareto_front = linspace(seg[0][0], seg[1][0], FRONT_POINTS)
        .into_iter()
        .map(|x1| {
            let l = toy.losses(&[x1, seg[0][1]]);
            [l[0], l[1]]
        })
        .collect();
    Ok(ToySurface {
        problem: kind.name().to_string(),
        surface: Surface::from_tasks(grid, tasks),
        optimum: [CagradToy::AVERAGE_OPTIMUM[0], CagradToy::PARETO_SEGMENT[0][1]],
        pareto_segment: seg,
        pareto_front,
    })
}
