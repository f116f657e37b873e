//! Isolines of a sampled field: the page's contour panels, the merge plane, the landscape panel
//! and `concord landscape --plot` draw their level lines from here.
//!
//! The marching squares are the `contour` crate's (d3-contour's algorithm with linear
//! interpolation between samples). It stitches closed rings, treating the outside of the grid
//! as below every level, so a region above a level that touches the edge comes back closed by a
//! frame half a cell outside the grid; those frame pieces are not level lines and are dropped.

use contour::ContourBuilder;

/// One isoline segment, two points in grid units (x along the row, y across rows).
pub type Segment = [[f64; 2]; 2];

/// Slack for "on the grid": crossings are computed in f64 from integer cell positions.
const ON_GRID: f64 = 1e-9;

/// The level lines of `values`, an `nx` × `ny` grid of samples stored row by row (x fastest), as
/// segments in grid units (sample (i, j) at (i, j)), one list per level, in `levels`' order.
///
/// A non-finite sample counts as above every level (a diverged loss is high): the lines keep
/// it on their high side instead of breaking off.
pub fn isolines(values: &[f64], nx: usize, ny: usize, levels: &[f64]) -> Result<Vec<Vec<Segment>>, String> {
    if nx < 2 || ny < 2 {
        return Err(format!("an isoline needs a grid of at least 2 × 2 samples, got {nx} × {ny}"));
    }
    if values.len() != nx * ny {
        return Err(format!("{} samples do not make a {nx} × {ny} grid", values.len()));
    }
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let top = finite.clone().fold(f64::NEG_INFINITY, f64::max);
    let bottom = finite.fold(f64::INFINITY, f64::min);
    let high_levels = levels.iter().copied().filter(|l| l.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    // Above the highest sample and the highest level, by a margin that stays finite.
    let above = {
        let reference = top.max(high_levels);
        let reference = if reference.is_finite() { reference } else { 0.0 };
        let span = if top.is_finite() && bottom.is_finite() { (top - bottom).abs() } else { 0.0 };
        reference + span.max(reference.abs()).max(1.0)
    };
    let filled: Vec<f64> = values.iter().map(|&v| if v.is_finite() { v } else { above }).collect();
    // The crate places sample i at i + ½; shifting back puts it at i.
    let builder = ContourBuilder::new(nx, ny, true).x_origin(-0.5).y_origin(-0.5);
    let finite_levels: Vec<f64> = levels.iter().copied().filter(|l| l.is_finite()).collect();
    let lines = builder.lines(&filled, &finite_levels).map_err(|e| format!("isolines: {e:?}"))?;
    let inside = |p: [f64; 2]| {
        (-ON_GRID..=(nx - 1) as f64 + ON_GRID).contains(&p[0]) && (-ON_GRID..=(ny - 1) as f64 + ON_GRID).contains(&p[1])
    };
    let mut by_level = lines.iter().map(|line| {
        let mut segments = Vec::new();
        for ring in line.geometry().0.iter() {
            for pair in ring.0.windows(2) {
                let (a, b) = ([pair[0].x, pair[0].y], [pair[1].x, pair[1].y]);
                // The frame outside the grid, and the stubs that join it to a line, are dropped.
                if inside(a) && inside(b) && a != b {
                    segments.push([a, b]);
                }
            }
        }
        segments
    });
    // Non-finite levels get no line.
    Ok(levels.iter().map(|l| if l.is_finite() { by_level.next().unwrap_or_default() } else { Vec::new() }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(nx: usize, ny: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
        (0..ny).flat_map(|j| (0..nx).map(move |i| (i, j))).map(|(i, j)| f(i as f64, j as f64)).collect()
    }

    #[test]
    fn a_plane_gives_its_straight_level_line_across_the_whole_grid() {
        // f = x + 2y on 11 × 9 samples: the 7.5 line is x = 7.5 − 2y, exact under linear interpolation.
        let (nx, ny) = (11, 9);
        let lines = isolines(&grid(nx, ny, |x, y| x + 2.0 * y), nx, ny, &[7.5]).unwrap();
        let segs = &lines[0];
        assert!(!segs.is_empty());
        for p in segs.iter().flatten() {
            assert!((p[0] + 2.0 * p[1] - 7.5).abs() < 1e-12, "{p:?} is off the line");
        }
        // The line runs from y = 0 (x = 7.5) to x = 0 (y = 3.75), with no piece of the frame.
        let length: f64 = segs.iter().map(|[a, b]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()).sum();
        assert!((length - (7.5f64.powi(2) + 3.75f64.powi(2)).sqrt()).abs() < 1e-9, "length {length}");
    }

    #[test]
    fn a_bowl_gives_a_closed_ring_near_its_circle() {
        let (n, c, r) = (41, 20.0, 12.0);
        let lines = isolines(&grid(n, n, |x, y| (x - c).powi(2) + (y - c).powi(2)), n, n, &[r * r]).unwrap();
        let segs = &lines[0];
        // Linear interpolation of a quadratic: within a quarter cell of the true circle.
        for p in segs.iter().flatten() {
            let d = ((p[0] - c).powi(2) + (p[1] - c).powi(2)).sqrt();
            assert!((d - r).abs() < 0.25, "{p:?} at radius {d}");
        }
        // Closed: every end point is shared by two segments.
        let ends: Vec<[f64; 2]> = segs.iter().flatten().copied().collect();
        for p in &ends {
            let k = ends.iter().filter(|q| (q[0] - p[0]).abs() < 1e-9 && (q[1] - p[1]).abs() < 1e-9).count();
            assert_eq!(k, 2, "{p:?} ends {k} segments");
        }
    }

    #[test]
    fn levels_outside_the_field_give_no_line_and_keep_their_place() {
        let lines = isolines(&grid(5, 5, |x, _| x), 5, 5, &[-1.0, f64::NAN, 2.5, 10.0]).unwrap();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].is_empty() && lines[1].is_empty() && lines[3].is_empty());
        assert!(lines[2].iter().flatten().all(|p| (p[0] - 2.5).abs() < 1e-12));
    }

    #[test]
    fn a_non_finite_sample_counts_as_high() {
        // x on 6 × 3, with a NaN at x = 5: the 2.5 line is the same as without it, and no line
        // circles the NaN.
        let mut v = grid(6, 3, |x, _| x);
        v[5] = f64::NAN;
        v[11] = f64::INFINITY;
        let lines = isolines(&v, 6, 3, &[2.5]).unwrap();
        assert!(lines[0].iter().flatten().all(|p| (p[0] - 2.5).abs() < 1e-12), "{:?}", lines[0]);
    }

    #[test]
    fn a_wrong_shape_is_an_error() {
        assert!(isolines(&[0.0; 5], 2, 2, &[0.5]).unwrap_err().contains("2 × 2"));
        assert!(isolines(&[0.0; 3], 3, 1, &[0.5]).is_err());
    }
}
