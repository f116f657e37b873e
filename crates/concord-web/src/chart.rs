//! Small canvas charts for the arena panels: the line charts (`Figure`: concord-figures' chart
//! drawn through plotters-canvas, the same code as the CLI's PNGs), the same axes for the
//! scatter-like panels (which draw their own marks over them), the figures' colour scales, and
//! the downsampling that keeps a long history cheap to draw.

use concord_figures::{draw_colour_bar, draw_line_chart, ColourBar, LineChart, Rgb, Theme};
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, IntoDrawingArea};
use plotters_canvas::CanvasBackend;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};

pub const FONT: &str = "11px 'DejaVu Sans', system-ui, sans-serif";
pub const FONT_TITLE: &str = "600 12px 'DejaVu Sans', system-ui, sans-serif";
pub const INK: &str = "#1f2328";
pub const MUTED: &str = "#5b636b";
pub const GRID: &str = "#e6e9ed";

/// A plot area on the canvas (CSS pixels).
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// Axes, ticks and their labels: shared with `concord … --plot` (concord-figures).
pub use concord_figures::Axis;

pub fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten()?.dyn_into::<CanvasRenderingContext2d>().ok()
}

/// Size the canvas for (w, h) CSS pixels at the device ratio, clear it white, and return its
/// context scaled to CSS pixels.
pub fn prepare(canvas: &HtmlCanvasElement, w: f64, h: f64) -> Option<CanvasRenderingContext2d> {
    let dpr = web_sys::window().map(|w| w.device_pixel_ratio()).unwrap_or(1.0).clamp(1.0, 3.0);
    let (pw, ph) = ((w * dpr).round() as u32, (h * dpr).round() as u32);
    if canvas.width() != pw || canvas.height() != ph {
        canvas.set_width(pw);
        canvas.set_height(ph);
    }
    let _ = canvas.style().set_property("width", &format!("{w}px"));
    let _ = canvas.style().set_property("height", &format!("{h}px"));
    let ctx = context(canvas)?;
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    ctx.set_fill_style_str("#ffffff");
    ctx.fill_rect(0.0, 0.0, w, h);
    Some(ctx)
}

pub fn text(ctx: &CanvasRenderingContext2d, s: &str, x: f64, y: f64, align: &str, font: &str, colour: &str) {
    ctx.set_font(font);
    ctx.set_text_align(align);
    ctx.set_fill_style_str(colour);
    let _ = ctx.fill_text(s, x, y);
}

/// Grid, ticks and labels around `f`, the title above it: concord-figures' line chart without
/// lines (plotters on the canvas), so the scatter-like panels' axes are the CLI's and the line
/// charts'. The panel draws its marks over the frame after.
pub fn axes(ctx: &CanvasRenderingContext2d, f: Frame, x: Axis, y: Axis, title: &str, x_label: &str) {
    if let Some(canvas) = ctx.canvas() {
        // The scatter panels leave a row under the tick labels for the axis's name (a long name
        // there hides no tick label, as it would closing the tick row).
        Figure { x_label_below: true, ..Figure::new(f, x, y, title, x_label) }.draw(&canvas, ctx);
    }
}

/// How a line is drawn.
#[derive(Clone, Copy, Debug)]
pub struct Pen<'a> {
    pub colour: &'a str,
    pub width: f64,
    pub dashed: bool,
}

impl<'a> Pen<'a> {
    pub fn solid(colour: &'a str, width: f64) -> Self {
        Pen { colour, width, dashed: false }
    }
    pub fn dashed(colour: &'a str, width: f64) -> Self {
        Pen { colour, width, dashed: true }
    }
}

/// A polyline through (x, y) points, clipped to the frame; gaps where a point cannot be shown.
pub fn polyline(ctx: &CanvasRenderingContext2d, f: Frame, x: Axis, y: Axis, pts: &[(f64, f64)], pen: Pen) {
    let Pen { colour, width, dashed } = pen;
    ctx.save();
    ctx.begin_path();
    ctx.rect(f.x, f.y, f.w, f.h);
    ctx.clip();
    ctx.set_stroke_style_str(colour);
    ctx.set_line_width(width);
    let dash = js_sys::Array::new();
    if dashed {
        dash.push(&5.0.into());
        dash.push(&4.0.into());
    }
    let _ = ctx.set_line_dash(&dash);
    ctx.begin_path();
    let mut pen = false;
    for &(a, b) in pts {
        match (x.unit(a), y.unit(b)) {
            (Some(u), Some(v)) => {
                let (px, py) = (f.x + u * f.w, f.y + f.h - v * f.h);
                if pen {
                    ctx.line_to(px, py);
                } else {
                    ctx.move_to(px, py);
                    pen = true;
                }
            }
            _ => pen = false,
        }
    }
    ctx.stroke();
    ctx.restore();
}

/// One line chart: its axes, grid and lines are drawn by concord-figures (plotters) on the
/// canvas, in the CSS pixels of `frame`, so a panel can draw its own marks over it after.
pub struct Figure<'a> {
    frame: Frame,
    x: Axis,
    y: Axis,
    title: &'a str,
    x_label: &'a str,
    x_label_below: bool,
    lines: Vec<concord_figures::Line>,
}

impl<'a> Figure<'a> {
    pub fn new(frame: Frame, x: Axis, y: Axis, title: &'a str, x_label: &'a str) -> Self {
        Figure { frame, x, y, title, x_label, x_label_below: false, lines: Vec::new() }
    }

    /// A line through (x, y) points; gaps where a point cannot be shown.
    pub fn line(&mut self, pts: &[(f64, f64)], pen: Pen) {
        let colour = Rgb::from_hex(pen.colour).unwrap_or(Theme::PAGE.ink);
        // plotters strokes whole pixels (CSS pixels here; the canvas scales them for HiDPI).
        let width = pen.width.round().max(1.0) as u32;
        let line = if pen.dashed {
            concord_figures::Line::dashed(pts.to_vec(), colour, width)
        } else {
            concord_figures::Line::solid(pts.to_vec(), colour, width)
        };
        self.lines.push(line);
    }

    /// Draws the chart on `canvas` (sized by `prepare`, whose CSS-pixel transform `ctx` holds).
    pub fn draw(self, canvas: &HtmlCanvasElement, ctx: &CanvasRenderingContext2d) {
        let Some(area) = css_area(canvas) else { return };
        let chart = LineChart {
            frame: pixel_frame(self.frame),
            x: self.x,
            y: self.y,
            title: self.title,
            x_label: self.x_label,
            x_label_below: self.x_label_below,
            y_label: None,
            lines: self.lines,
            legend: false,
            theme: Theme::PAGE,
        };
        ctx.save();
        if let Err(e) = draw_line_chart(&area, &chart) {
            web_sys::console::warn_1(&format!("chart: {e}").into());
        }
        ctx.restore();
    }
}

/// The canvas as a plotters drawing area in CSS pixels. The backend sees device pixels; the
/// context's transform (set by `prepare`) scales CSS pixels to them, so a figure draws on the
/// CSS-sized corner of the area.
fn css_area(canvas: &HtmlCanvasElement) -> Option<DrawingArea<CanvasBackend, Shift>> {
    let dpr = web_sys::window().map(|w| w.device_pixel_ratio()).unwrap_or(1.0).clamp(1.0, 3.0);
    let backend = CanvasBackend::with_canvas_object(canvas.clone())?;
    let css = ((canvas.width() as f64 / dpr).round() as u32, (canvas.height() as f64 / dpr).round() as u32);
    Some(backend.into_drawing_area().shrink((0, 0), css))
}

fn pixel_frame(f: Frame) -> concord_figures::Frame {
    concord_figures::Frame {
        x: f.x.round() as i32,
        y: f.y.round() as i32,
        w: f.w.round() as i32,
        h: f.h.round() as i32,
    }
}

/// A colour bar over `f` from `lo` to `hi`: lying (`lo` left, ticks below) or standing (`lo`
/// at the bottom, ticks right), its heading above: concord-figures' (the CLI's maps stand the
/// same bar beside them).
pub fn colour_bar(
    ctx: &CanvasRenderingContext2d,
    f: Frame,
    (lo, hi): (f64, f64),
    colour: &dyn Fn(f64) -> Rgb,
    ticks: &[(f64, &str)],
    heading: &str,
    standing: bool,
) {
    let Some(area) = ctx.canvas().as_ref().and_then(css_area) else { return };
    let bar = ColourBar { frame: pixel_frame(f), lo, hi, colour, ticks, heading, standing, theme: Theme::PAGE };
    ctx.save();
    if let Err(e) = draw_colour_bar(&area, &bar) {
        web_sys::console::warn_1(&format!("colour bar: {e}").into());
    }
    ctx.restore();
}

/// How a heatmap's grid is scaled up to its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scaling {
    /// Bilinear: a coarse grid of a smooth function (the outputs, the conflict map).
    Smooth,
    /// Each cell a block: bands and categories keep their edges.
    Blocks,
}

/// A grid of `nx` × `ny` values (row by row; row 0 on top when `top_down`) coloured by
/// `colour` over `f`: concord-figures' heatmap pixels (the CLI's maps' colouring), put into a
/// one-pixel-per-cell canvas and drawn scaled in one call.
#[allow(clippy::too_many_arguments)]
pub fn heatmap(
    ctx: &CanvasRenderingContext2d,
    f: Frame,
    (nx, ny): (usize, usize),
    values: &[f64],
    top_down: bool,
    colour: &dyn Fn(f64) -> Rgb,
    scaling: Scaling,
) {
    let px = match concord_figures::heatmap::rgba(nx, ny, values, top_down, colour) {
        Ok(px) => px,
        Err(e) => {
            web_sys::console::warn_1(&format!("heatmap: {e}").into());
            return;
        }
    };
    let Some(scratch) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("canvas").ok())
        .and_then(|c| c.dyn_into::<HtmlCanvasElement>().ok())
    else {
        return;
    };
    scratch.set_width(nx as u32);
    scratch.set_height(ny as u32);
    let Some(sctx) = context(&scratch) else { return };
    if let Ok(img) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&px), nx as u32, ny as u32) {
        let _ = sctx.put_image_data(&img, 0.0, 0.0);
        ctx.set_image_smoothing_enabled(scaling == Scaling::Smooth);
        let _ = ctx.draw_image_with_html_canvas_element_and_dw_and_dh(&scratch, f.x, f.y, f.w, f.h);
        ctx.set_image_smoothing_enabled(true);
    }
}

pub fn dot(ctx: &CanvasRenderingContext2d, px: f64, py: f64, r: f64, fill: &str, stroke: Option<&str>) {
    ctx.begin_path();
    let _ = ctx.arc(px, py, r, 0.0, std::f64::consts::TAU);
    ctx.set_fill_style_str(fill);
    ctx.fill();
    if let Some(s) = stroke {
        ctx.set_stroke_style_str(s);
        ctx.set_line_width(1.0);
        ctx.stroke();
    }
}

/// Bucket means: at most `max` points, each the mean of a run of consecutive ones (keeps the
/// trend of a noisy per-step series readable and its drawing cheap).
pub fn downsample(pts: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if pts.len() <= max || max == 0 {
        return pts.to_vec();
    }
    let k = pts.len().div_ceil(max);
    pts.chunks(k)
        .map(|c| {
            let finite: Vec<&(f64, f64)> = c.iter().filter(|p| p.1.is_finite()).collect();
            let y = if finite.is_empty() {
                f64::NAN
            } else {
                finite.iter().map(|p| p.1).sum::<f64>() / finite.len() as f64
            };
            (c[c.len() / 2].0, y)
        })
        .collect()
}

/// Trailing moving average over `window` points (NaNs skipped): per-step metrics of mini-batch
/// gradients flip from step to step; the average shows the trend (for the conflict ratio: the
/// share of recent steps in conflict).
pub fn moving_average(pts: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let window = window.max(1);
    let (mut sum, mut count) = (0.0, 0usize);
    let mut out = Vec::with_capacity(pts.len());
    for (i, &(x, y)) in pts.iter().enumerate() {
        if y.is_finite() {
            sum += y;
            count += 1;
        }
        if i >= window {
            let old = pts[i - window].1;
            if old.is_finite() {
                sum -= old;
                count -= 1;
            }
        }
        out.push((x, if count > 0 { sum / count as f64 } else { f64::NAN }));
    }
    out
}

/// The history smoothing window for `n` points: about a fiftieth of the run, 1–200 steps.
pub fn smoothing_window(n: usize) -> usize {
    (n / 50).clamp(1, 200)
}

/// The Playground's heatmaps' scale for a value in [−1, 1]: orange (−1) → light (0) → blue
/// (+1), colorous' ramps through concord-figures (the CLI's too).
pub fn playground_rgb(v: f64) -> [u8; 3] {
    concord_figures::colour::diverging(v).array()
}

/// Cosine scale: orange (−1, conflict) → light (0) → blue (+1, agreement), as the CLI's maps.
pub fn cosine_rgb(v: f64) -> [u8; 3] {
    concord_figures::colour::cosine(Some(v)).array()
}

pub fn rgb(c: [u8; 3]) -> String {
    format!("rgb({},{},{})", c[0], c[1], c[2])
}

/// The staircase of a front up to its reference point, (ℓ₁, ℓ₂) pairs to draw as one line.
pub fn staircase(p: &concord_core::landscape::ParetoView) -> Vec<(f64, f64)> {
    let front: Vec<[f64; 2]> = p.front.iter().map(|&k| p.points[k]).collect();
    let mut stair = Vec::new();
    if let Some(first) = front.first() {
        stair.push((first[0], p.reference[1]));
    }
    for (k, q) in front.iter().enumerate() {
        stair.push((q[0], q[1]));
        let next_x = front.get(k + 1).map_or(p.reference[0], |n| n[0]);
        stair.push((next_x, q[1]));
    }
    stair
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsample_takes_bucket_means() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, i as f64)).collect();
        let d = downsample(&pts, 5);
        assert_eq!(d.len(), 5);
        assert_eq!(d[0], (1.0, 0.5));
        assert_eq!(d[4], (9.0, 8.5));
        assert_eq!(downsample(&pts, 20), pts);
    }

    #[test]
    fn moving_average_skips_nans_and_trails() {
        let pts = [(0.0, 1.0), (1.0, 0.0), (2.0, f64::NAN), (3.0, 1.0), (4.0, 1.0)];
        let m = moving_average(&pts, 2);
        assert_eq!(m[0], (0.0, 1.0));
        assert_eq!(m[1], (1.0, 0.5));
        assert_eq!(m[2], (2.0, 0.0), "window {{0, NaN}}");
        assert_eq!(m[3], (3.0, 1.0), "window {{NaN, 1}}");
        assert_eq!(m[4], (4.0, 1.0));
        assert_eq!(smoothing_window(10), 1);
        assert_eq!(smoothing_window(1000), 20);
        assert_eq!(smoothing_window(100_000), 200);
    }

    #[test]
    fn colour_scales_are_the_figures_blue_orange_ones() {
        use concord_figures::colour::diverging;
        assert_eq!(playground_rgb(-1.0), diverging(-1.0).array());
        assert_eq!(playground_rgb(1.0), diverging(1.0).array());
        assert_eq!(cosine_rgb(-0.4), diverging(-0.4).array());
        // Conflict is orange (red over blue), agreement blue.
        let (o, b) = (cosine_rgb(-1.0), cosine_rgb(1.0));
        assert!(o[0] > o[2] && b[2] > b[0], "{o:?} {b:?}");
    }
}
