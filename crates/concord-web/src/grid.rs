//! The decision-boundary grid of the heatmaps: GRID × GRID cell centres over [−extent, extent]²,
//! row 0 at the top (x₂ = +extent). One definition, so the GPU runs predict on exactly the
//! points the heatmap panel colours.

use concord_core::data::MultiTaskData;

pub const GRID: usize = 100;

/// The half-width of the plotted square: 6, or a little more than the farthest coordinate.
pub fn extent(data: &MultiTaskData) -> f64 {
    let far = data.points.iter().flat_map(|p| [p[0].abs(), p[1].abs()]).fold(0.0f64, f64::max);
    if far <= 6.0 {
        6.0
    } else {
        far * 1.05
    }
}

pub fn points(extent: f64) -> Vec<[f64; 2]> {
    let h = 2.0 * extent / GRID as f64;
    (0..GRID * GRID)
        .map(|i| {
            let (r, c) = (i / GRID, i % GRID);
            [-extent + (c as f64 + 0.5) * h, extent - (r as f64 + 0.5) * h]
        })
        .collect()
}
