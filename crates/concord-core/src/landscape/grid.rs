//! The evaluation grid of a 2-D slice and the surface it yields.

use serde::{Deserialize, Serialize};

/// The reference's default: 51 points per axis over [−1, 1] (`--x=-1:1:51`).
pub const DEFAULT_POINTS: usize = 51;
pub const DEFAULT_RANGE: f64 = 1.0;
/// Keeps a slice's memory and time bounded (401 × 401 ≈ 160k evaluations).
pub const MAX_POINTS: usize = 401;

/// `np.linspace(lo, hi, n)`: both ends included.
pub fn linspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![lo],
        _ => (0..n).map(|i| if i == n - 1 { hi } else { lo + (hi - lo) * i as f64 / (n - 1) as f64 }).collect(),
    }
}

/// Coordinates α (along δ, x axis) and β (along η, y axis).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub alphas: Vec<f64>,
    pub betas: Vec<f64>,
}

impl Grid {
    /// n × n points over [lo, hi]².
    pub fn square(n: usize, lo: f64, hi: f64) -> Result<Grid, String> {
        Grid::new(n, [lo, hi], n, [lo, hi])
    }

    pub fn new(nx: usize, x: [f64; 2], ny: usize, y: [f64; 2]) -> Result<Grid, String> {
        for (name, n, r) in [("x", nx, x), ("y", ny, y)] {
            if !(2..=MAX_POINTS).contains(&n) {
                return Err(format!("the grid needs 2–{MAX_POINTS} points along {name}, got {n}"));
            }
            if !(r[0].is_finite() && r[1].is_finite() && r[0] < r[1]) {
                return Err(format!("the {name} range must be finite with min < max, got [{}, {}]", r[0], r[1]));
            }
        }
        Ok(Grid { alphas: linspace(x[0], x[1], nx), betas: linspace(y[0], y[1], ny) })
    }

    pub fn len(&self) -> usize {
        self.alphas.len() * self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (α, β) of flat index k; k = j·n_α + i follows `meshgrid(x, y).ravel()` as the reference.
    pub fn point(&self, k: usize) -> (f64, f64) {
        let n = self.alphas.len();
        (self.alphas[k % n], self.betas[k / n])
    }
}

/// Loss values on a grid: one flat array per task plus their sum, each indexed as `Grid::point`.
/// Plain data, so a panel or a CSV writer can draw it without the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Surface {
    pub grid: Grid,
    /// tasks[t][j·n_α + i] = L_t(α_i, β_j).
    pub tasks: Vec<Vec<f64>>,
    /// Σ_t L_t at each point.
    pub total: Vec<f64>,
}

impl Surface {
    /// Builds the total from the per-task arrays.
    pub fn from_tasks(grid: Grid, tasks: Vec<Vec<f64>>) -> Surface {
        let total = (0..grid.len()).map(|k| tasks.iter().map(|t| t[k]).sum()).collect();
        Surface { grid, tasks, total }
    }

    /// Smallest and largest finite value of `values` (None if none is finite).
    pub fn finite_range(values: &[f64]) -> Option<(f64, f64)> {
        let mut it = values.iter().copied().filter(|v| v.is_finite());
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
    }
}
