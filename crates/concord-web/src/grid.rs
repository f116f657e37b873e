//! The decision-boundary grid of the heatmaps: GRID × GRID cell centres over [−extent, extent]²,
//! row 0 at the top (x₂ = +extent). One definition, so the GPU runs predict on exactly the
//! points the heatmap panel colours.

use concord_core::data::MultiTaskData;

pub const GRID: usize = 100;

/// The half-width of the plotted square: 6, or a little more than the farthest coordinate.
pub fn extent(data: &MultiTaskData) -> f64 {
    extent_for(data.points.iter().flat_map(|p| [p[0].abs(), p[1].abs()]).fold(0.0f64, f64::max))
}

/// The half-width for data whose farthest coordinate is `far` from 0 (`concord conflict-map`
/// draws the same square from its matrices).
pub fn extent_for(far: f64) -> f64 {
    if far <= 6.0 {
        6.0
    } else {
        far * 1.05
    }
}

/// Cells per side of the network view's neuron thumbnails: GRID / 5, so each thumbnail cell is
/// a 5 × 5 block of the heatmap grid whose centre cell is a grid point (`thumbnail_rows`) and a
/// GPU run's forward pass over the grid gives the thumbnails too.
pub const THUMB: usize = 20;

/// The rows of `points(extent)` that are `points_n(extent, THUMB)`, in that order: the centre
/// cell (2, 2) of each 5 × 5 block.
pub fn thumbnail_rows() -> Vec<usize> {
    const STRIDE: usize = GRID / THUMB;
    (0..THUMB * THUMB).map(|i| (STRIDE * (i / THUMB) + STRIDE / 2) * GRID + STRIDE * (i % THUMB) + STRIDE / 2).collect()
}

pub fn points(extent: f64) -> Vec<[f64; 2]> {
    points_n(extent, GRID)
}

/// `side` × `side` cell centres over [−extent, extent]², row 0 at the top.
pub fn points_n(extent: f64, side: usize) -> Vec<[f64; 2]> {
    let h = 2.0 * extent / side as f64;
    (0..side * side)
        .map(|i| {
            let (r, c) = (i / side, i % side);
            [-extent + (c as f64 + 0.5) * h, extent - (r as f64 + 0.5) * h]
        })
        .collect()
}

/// Multiply-adds the page's CPU may spend on one redraw of a grid figure (the heatmaps, the MoE
/// routing map): about 50 ms of wasm, so a large model's figures stay within a frame or two.
pub const CPU_GRID_MACS: f64 = 16e6;

/// The side of a grid of `n` models' forward passes within `CPU_GRID_MACS`: a forward pass of a
/// point costs about one multiply-add per parameter (every expert of an MoE runs on every
/// point). At most `max`, at least 10 (a coarse grid, drawn smoothed).
pub fn side_within_budget(params: usize, n: usize, max: usize) -> usize {
    let points = CPU_GRID_MACS / (params.max(1) * n.max(1)) as f64;
    (points.sqrt().floor() as usize).clamp(10.min(max), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GPU's thumbnails are the grid's rows `thumbnail_rows`: they must be the thumbnail
    /// grid's points (the CPU path evaluates those), in the same order.
    #[test]
    fn the_thumbnail_rows_are_the_thumbnail_grid() {
        const { assert!(GRID.is_multiple_of(THUMB) && !(GRID / THUMB).is_multiple_of(2)) };
        for extent in [6.0, 7.3] {
            let grid = points(extent);
            let thumbs = points_n(extent, THUMB);
            let rows = thumbnail_rows();
            assert_eq!(rows.len(), thumbs.len());
            for (&r, t) in rows.iter().zip(&thumbs) {
                let g = grid[r];
                assert!((g[0] - t[0]).abs() < 1e-12 && (g[1] - t[1]).abs() < 1e-12, "{g:?} vs {t:?}");
            }
        }
    }
}
