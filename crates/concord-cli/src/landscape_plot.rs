//! PNG figures of `concord landscape`: the slice as log-coloured heatmaps with log-spaced
//! contour lines (one panel per task and one for the total) and the runs' trajectories on top,
//! the interpolation curves, and λ_max over training.

use crate::plot::{register, series, FAMILY};
use concord_core::landscape::{Interpolation, ProjectedPath, SharpnessPoint, Surface};
use plotters::prelude::*;
use std::path::Path;

/// The isolines: dark and translucent over the light heatmap (the page's).
const ISOLINE: RGBColor = RGBColor(31, 35, 40);
/// This run's path (the page's ink) and the comparison run's (purple: apart from both ends of
/// the blue ↔ orange scale, and from the ink by hue as well as lightness).
const INK: RGBColor = RGBColor(31, 35, 40);
const OTHER_RUN: RGBColor = RGBColor(123, 50, 148);

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// log10 of the values, floored so that zero and negative losses still get a colour.
fn log_values(values: &[f64]) -> (Vec<f64>, f64, f64) {
    let hi = values.iter().copied().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    let pos_min = values.iter().copied().filter(|v| v.is_finite() && *v > 0.0).fold(f64::INFINITY, f64::min);
    let floor = if pos_min.is_finite() { pos_min.max(hi.abs() * 1e-12) } else { 1e-12 };
    let logs: Vec<f64> = values.iter().map(|v| if v.is_finite() { v.max(floor).log10() } else { f64::NAN }).collect();
    let lo = logs.iter().copied().filter(|v| v.is_finite()).fold(f64::INFINITY, f64::min);
    let top = logs.iter().copied().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    (logs, lo, top)
}

/// The segments of the `level` isoline of z (sampled on xs × ys, x fastest) in (α, β):
/// concord-core's `isolines` (the `contour` crate's marching squares, as the page draws them).
fn contour_segments(xs: &[f64], ys: &[f64], z: &[f64], level: f64) -> Vec<[(f64, f64); 2]> {
    // Grid units → coordinates: linear between the neighbouring samples.
    let at = |axis: &[f64], u: f64| {
        let i = (u.floor() as usize).min(axis.len().saturating_sub(2));
        axis[i] + (u - i as f64) * (axis[i + 1] - axis[i])
    };
    let lines = concord_core::landscape::isolines(z, xs.len(), ys.len(), &[level]).unwrap_or_default();
    lines.into_iter().flatten().map(|[a, b]| [(at(xs, a[0]), at(ys, a[1])), (at(xs, b[0]), at(ys, b[1]))]).collect()
}

/// One panel per task plus the total, each a heatmap of log10(loss) with 10 log-spaced
/// contours, the trajectories (dark: this run, purple: the comparison run) and the centre θ.
pub fn surface_png(
    path: &Path,
    s: &Surface,
    names: &[String],
    paths: &[&ProjectedPath],
    title: &str,
) -> Result<(), String> {
    register();
    let panels = s.tasks.len() + 1;
    let cols = panels.min(3);
    let rows = panels.div_ceil(cols);
    let root = BitMapBackend::new(path, (460 * cols as u32, 440 * rows as u32 + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, body) = root.split_vertically(40);
    top.draw_text(title, &(FAMILY, 20).into_font().color(&BLACK), (12, 10)).map_err(err)?;
    let areas = body.split_evenly((rows, cols));
    let (xs, ys) = (&s.grid.alphas, &s.grid.betas);
    let (hx, hy) = ((xs[1] - xs[0]) / 2.0, (ys[1] - ys[0]) / 2.0);
    for (p, area) in areas.iter().enumerate().take(panels) {
        let (values, label) = if p < s.tasks.len() {
            (&s.tasks[p], format!("task {p}: {}", names.get(p).map_or("", String::as_str)))
        } else {
            (&s.total, "total (sum)".to_string())
        };
        let (logs, lo, hi) = log_values(values);
        let span = if hi > lo { hi - lo } else { 1.0 };
        let caption = format!("{label}  [log10 {lo:.2} … {hi:.2}]");
        let mut chart = ChartBuilder::on(area)
            .caption(caption, (FAMILY, 14))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(xs[0] - hx..xs[xs.len() - 1] + hx, ys[0] - hy..ys[ys.len() - 1] + hy)
            .map_err(err)?;
        chart.configure_mesh().disable_mesh().x_desc("α").y_desc("β").label_style((FAMILY, 12)).draw().map_err(err)?;
        // The cells (k = j·n_α + i, β rising), filling the plotting area: the figures' heatmap.
        let (px, py) = chart.plotting_area().get_pixel_range();
        let (bx, by) = area.get_base_pixel();
        let levels: Vec<f64> = logs.iter().map(|l| (l - lo) / span).collect();
        let colour = |t: f64| {
            if t.is_finite() {
                concord_figures::colour::loss_level(t)
            } else {
                concord_figures::colour::UNDEFINED
            }
        };
        let heatmap = concord_figures::Heatmap {
            frame: concord_figures::Frame {
                x: px.start - bx,
                y: py.start - by,
                w: px.end - px.start,
                h: py.end - py.start,
            },
            nx: xs.len(),
            ny: ys.len(),
            values: &levels,
            top_down: false,
            colour: &colour,
        };
        concord_figures::draw_heatmap(area, &heatmap)?;
        for l in 1..10 {
            let level = lo + span * l as f64 / 10.0;
            let segs = contour_segments(xs, ys, &logs, level);
            chart
                .draw_series(segs.into_iter().map(|s| PathElement::new(vec![s[0], s[1]], ISOLINE.mix(0.45))))
                .map_err(err)?;
        }
        for (r, path) in paths.iter().enumerate() {
            let color = if r == 0 { INK } else { OTHER_RUN };
            let pts: Vec<(f64, f64)> = path.coords.iter().map(|c| (c[0], c[1])).collect();
            chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2))).map_err(err)?;
            if let Some(&first) = pts.first() {
                chart.draw_series([Circle::new(first, 4, color.filled())]).map_err(err)?;
            }
            if let Some(&last) = pts.last() {
                chart.draw_series([Cross::new(last, 5, color.stroke_width(2))]).map_err(err)?;
            }
        }
    }
    root.present().map_err(err)
}

/// Loss along the linear path, per task and total; grey lines at α = 0 and α = 1.
pub fn interpolation_png(path: &Path, r: &Interpolation, names: &[String], title: &str) -> Result<(), String> {
    register();
    let all = r.tasks.iter().flatten().chain(&r.total).copied().filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (lo.min(0.0), lo.max(0.0) + 1.0) };
    let pad = 0.05 * (hi - lo);
    let (a0, a1) = (r.alphas[0], r.alphas[r.alphas.len() - 1]);
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(a0..a1.max(a0 + 1e-9), lo - pad..hi + pad)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("α  (0: this run, 1: the other)")
        .y_desc("loss")
        .label_style((FAMILY, 13))
        .draw()
        .map_err(err)?;
    for a in [0.0, 1.0] {
        chart
            .draw_series([PathElement::new(vec![(a, lo - pad), (a, hi + pad)], RGBColor(160, 160, 160))])
            .map_err(err)?;
    }
    let curves = r
        .tasks
        .iter()
        .enumerate()
        .map(|(t, c)| (c, series(t), format!("task {t}: {}", names.get(t).map_or("", String::as_str))));
    for (values, color, label) in curves.chain([(&r.total, BLACK, "total".to_string())]) {
        let pts = r.alphas.iter().copied().zip(values.iter().copied()).filter(|p| p.1.is_finite());
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// λ_max of every task and of the total over the training steps.
pub fn sharpness_png(path: &Path, points: &[SharpnessPoint], names: &[String], title: &str) -> Result<(), String> {
    register();
    let all = points.iter().flat_map(|p| p.lambda_max.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (lo.min(0.0), lo.max(0.0) + 1.0) };
    let pad = 0.05 * (hi - lo);
    let last = points.last().map_or(1, |p| p.step.max(1)) as f64;
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title}: λ_max over training"), (FAMILY, 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..last, lo - pad..hi + pad)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("top Hessian eigenvalue")
        .label_style((FAMILY, 13))
        .draw()
        .map_err(err)?;
    let m = points.first().map_or(0, |p| p.lambda_max.len());
    for t in 0..m {
        let (color, label) = if t + 1 == m {
            (BLACK, "total".to_string())
        } else {
            (series(t), format!("task {t}: {}", names.get(t).map_or("", String::as_str)))
        };
        let pts: Vec<(f64, f64)> =
            points.iter().map(|p| (p.step as f64, p.lambda_max[t])).filter(|p| p.1.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contour_of_a_plane_is_the_level_line() {
        // z = x on a 3 × 2 grid: the 0.5 contour is the vertical line x = 0.5.
        let xs = [0.0, 1.0, 2.0];
        let ys = [0.0, 1.0];
        let z = [0.0, 1.0, 2.0, 0.0, 1.0, 2.0];
        let segs = contour_segments(&xs, &ys, &z, 0.5);
        assert_eq!(segs.len(), 1);
        for p in segs[0] {
            assert!((p.0 - 0.5).abs() < 1e-12);
        }
        assert!(contour_segments(&xs, &ys, &z, 5.0).is_empty());
    }

    #[test]
    fn log_floor() {
        let (logs, lo, hi) = log_values(&[0.0, 1.0, 100.0]);
        assert_eq!((lo, hi), (0.0, 2.0));
        assert_eq!(logs[0], 0.0); // 0 is floored at the smallest positive value
    }
}
