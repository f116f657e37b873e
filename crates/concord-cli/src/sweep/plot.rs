//! The PNGs of `concord sweep --summary FILE --plot DIR` (plotters' bitmap backend, the house
//! font and colours of `crate::plot`): `final-loss.png` (per task, each arm × setting's mean
//! final loss ± sd), `lr-sensitivity.png` (with an `lr` axis: mean final loss against the
//! learning rate, a line per arm) and `loss-space.png` (every cell's final losses, task 0
//! against task 1, a colour per arm).
//!
//! Every chart is drawn on linear coordinates; a logarithmic axis is its log10, with tick labels
//! at 1-2-5 multiples drawn here (plotters' log axis labels only powers of ten, which left a
//! one-decade loss axis with a single label).

use super::lines::Line;
use super::stats;
use super::summary::{diverged, num, Grouped};
use crate::plot::{register, series, FAMILY};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::Path;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn color(arm: usize) -> RGBColor {
    series(arm)
}

/// An axis's extent in data values: log scale when every value is positive and they span more
/// than 3×.
#[derive(Clone, Copy, Debug)]
struct Span {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Span {
    fn of(values: impl IntoIterator<Item = f64>, force_log: bool) -> Span {
        let v: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        if !lo.is_finite() {
            return Span { lo: 0.0, hi: 1.0, log: false };
        }
        if lo > 0.0 && (force_log || hi / lo > 3.0) {
            let pad = (hi / lo).powf(0.06).max(1.15);
            return Span { lo: lo / pad, hi: hi * pad, log: true };
        }
        let pad = if hi > lo { 0.06 * (hi - lo) } else { 0.1 * hi.abs().max(1e-12) };
        Span { lo: lo - pad, hi: hi + pad, log: false }
    }

    /// A data value on the chart's (linear) coordinate.
    fn t(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }

    fn range(&self) -> Range<f64> {
        self.t(self.lo)..self.t(self.hi)
    }

    /// `v` on the chart, and whether it had to be cut at the axis's ends.
    fn place(&self, v: f64) -> (f64, bool) {
        if v.is_nan() || v <= self.lo {
            (self.t(self.lo), true)
        } else if v >= self.hi {
            (self.t(self.hi), true)
        } else {
            (self.t(v), false)
        }
    }

    fn desc(&self, what: &str) -> String {
        if self.log {
            format!("{what} (log scale)")
        } else {
            what.to_string()
        }
    }

    /// A log axis's labelled ticks (1-2-5 multiples, or every multiple on a short span) and its
    /// unlabelled grid lines (every multiple 1–9 of each power of ten).
    fn log_ticks(&self) -> (Vec<f64>, Vec<f64>) {
        let (a, b) = (self.lo.log10().floor() as i32, self.hi.log10().ceil() as i32);
        let inside = |m: &[f64]| -> Vec<f64> {
            (a..=b)
                // k / 10^-e: 10^n is exact for small n, so 0.05 is 0.05.
                .flat_map(|e| m.iter().map(move |k| if e < 0 { k / 10f64.powi(-e) } else { k * 10f64.powi(e) }))
                .filter(|v| *v >= self.lo && *v <= self.hi)
                .collect()
        };
        // Over many decades every multiple would grey the plot: powers of ten only (none past
        // twenty decades, where the labels are thinned too).
        let all = match b - a {
            0..=3 => inside(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]),
            4..=20 => inside(&[1.0]),
            _ => Vec::new(),
        };
        let mut labelled = inside(&[1.0]);
        for m in [&[1.0, 2.0, 5.0][..], &[1.0, 2.0, 3.0, 5.0, 7.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]] {
            if labelled.len() >= 4 {
                break;
            }
            labelled = inside(m);
        }
        // Decades apart: thin the labels to about eight.
        let step = labelled.len().div_ceil(8).max(1);
        (labelled.into_iter().step_by(step).collect(), all)
    }
}

/// The values an axis must show for a mean ± sd: mean − sd only while positive (a loss axis
/// stays logarithmic; a bar reaching below it is cut at the axis and drawn without its cap).
fn spread(mu: f64, sd: f64) -> [f64; 3] {
    [mu, mu + sd, if mu - sd > 0.0 { mu - sd } else { mu }]
}

/// A tick label: up to four significant digits without trailing zeros (`0.65`, `1e6`, `0.001`).
fn tick(v: f64) -> String {
    let s = num(v);
    let (mantissa, exp) = match s.split_once('e') {
        Some((m, e)) => (m.to_string(), format!("e{e}")),
        None => (s.clone(), String::new()),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        mantissa
    };
    format!("{mantissa}{exp}")
}

/// A lighter grid than plotters' default (the data, not the grid, should stand out).
fn grid() -> (ShapeStyle, ShapeStyle) {
    (BLACK.mix(0.18).into(), BLACK.mix(0.05).into())
}

/// The chart on `area` with its mesh: linear axes labelled by plotters, log axes (and `x_ticks`,
/// ticks at given values with given labels) labelled here.
struct Axes<'s> {
    caption: Option<String>,
    x: Span,
    y: Span,
    x_desc: String,
    y_desc: Option<String>,
    x_ticks: Option<&'s [(f64, String)]>,
    y_label_area: u32,
}

fn chart<'a, 'b>(area: &'a Area<'b>, a: &Axes) -> Result<Chart<'a, 'b>, String> {
    let mut builder = ChartBuilder::on(area);
    if let Some(c) = &a.caption {
        builder.caption(c, (FAMILY, 16));
    }
    let mut chart = builder
        .margin(12)
        .margin_right(22)
        .x_label_area_size(46)
        .y_label_area_size(a.y_label_area)
        .build_cartesian_2d(a.x.range(), a.y.range())
        .map_err(err)?;
    let (bold, light) = grid();
    let own_x = a.x.log || a.x_ticks.is_some();
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(bold)
        .light_line_style(light)
        .x_desc(a.x_desc.clone())
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v));
    if own_x {
        mesh.disable_x_mesh().x_labels(0);
    } else {
        mesh.x_labels(6);
    }
    match &a.y_desc {
        Some(d) if a.y.log => mesh.y_desc(d.clone()).disable_y_mesh().y_labels(0),
        Some(d) => mesh.y_desc(d.clone()),
        None => mesh.disable_y_mesh().disable_y_axis(),
    };
    mesh.draw().map_err(err)?;

    let base = area.get_base_pixel();
    let below = TextStyle::from((FAMILY, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    let left = TextStyle::from((FAMILY, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    let (yr, xr) = (a.y.range(), a.x.range());
    let mut x_labels: Vec<(f64, String)> = Vec::new();
    if let Some(t) = a.x_ticks {
        x_labels = t.iter().map(|(v, s)| (a.x.t(*v), s.clone())).collect();
    } else if a.x.log {
        let (labelled, all) = a.x.log_ticks();
        for v in all {
            chart.draw_series(LineSeries::new([(v.log10(), yr.start), (v.log10(), yr.end)], light)).map_err(err)?;
        }
        x_labels = labelled.iter().map(|v| (v.log10(), tick(*v))).collect();
    }
    for (v, text) in x_labels {
        chart.draw_series(LineSeries::new([(v, yr.start), (v, yr.end)], bold)).map_err(err)?;
        let (px, py) = chart.backend_coord(&(v, yr.start));
        area.draw(&Text::new(text, (px - base.0, py - base.1 + 6), below.clone())).map_err(err)?;
    }
    if a.y.log && a.y_desc.is_some() {
        let (labelled, all) = a.y.log_ticks();
        for v in all {
            chart.draw_series(LineSeries::new([(xr.start, v.log10()), (xr.end, v.log10())], light)).map_err(err)?;
        }
        for v in labelled {
            chart.draw_series(LineSeries::new([(xr.start, v.log10()), (xr.end, v.log10())], bold)).map_err(err)?;
            let (px, py) = chart.backend_coord(&(xr.start, v.log10()));
            area.draw(&Text::new(tick(v), (px - base.0 - 6, py - base.1), left.clone())).map_err(err)?;
        }
    }
    Ok(chart)
}

/// An error bar from `lo` to `hi` (data values) across `at` (chart coordinate) along x
/// (`horizontal`) or y; an end cut at the axis gets no cap, so the bar reads as going on.
fn error_bar(
    chart: &mut Chart,
    span: Span,
    at: f64,
    lo: f64,
    hi: f64,
    horizontal: bool,
    style: ShapeStyle,
) -> Result<(), String> {
    let (lo, lo_cut) = span.place(lo);
    let (hi, hi_cut) = span.place(hi);
    let pt = |v: f64| if horizontal { (v, at) } else { (at, v) };
    chart.draw_series(LineSeries::new([pt(lo), pt(hi)], style)).map_err(err)?;
    let half = if horizontal { (0, 5) } else { (4, 0) };
    for (v, cut) in [(lo, lo_cut), (hi, hi_cut)] {
        if !cut {
            let cap = EmptyElement::at(pt(v)) + PathElement::new(vec![(-half.0, -half.1), (half.0, half.1)], style);
            chart.draw_series([cap]).map_err(err)?;
        }
    }
    Ok(())
}

/// Mean and sd (0 below two runs) of one group's finite final losses of task t, and how many.
fn mean_sd(g: &Grouped, cells: &[&Line], t: usize) -> Option<(f64, f64, usize)> {
    let v: Vec<f64> = cells.iter().map(|l| g.loss(l, t)).filter(|v| v.is_finite()).collect();
    (!v.is_empty()).then(|| (stats::mean(&v), stats::sd(&v).unwrap_or(0.0), v.len()))
}

/// "final test loss" / "final train loss".
fn short_loss(g: &Grouped) -> &'static str {
    if g.test {
        "final test loss"
    } else {
        "final train loss"
    }
}

/// `xor-conflict: final test loss` (the base config's name and the loss the figures show).
fn title(g: &Grouped) -> String {
    let base = g.lines.first().map(|l| l.base.as_str()).filter(|b| !b.is_empty()).unwrap_or("sweep");
    format!("{base}: {}", short_loss(g))
}

fn task_caption(g: &Grouped, t: usize) -> String {
    format!("task {t}: {}", g.task_names[t])
}

/// A legend entry's mark.
#[derive(Clone, Copy, PartialEq)]
enum Mark {
    /// A line with the k-th marker on it.
    Line(usize),
    Circle,
    Triangle,
    Cross,
}

/// The k-th marker shape (for the lines or settings that share a colour).
fn mark_of(k: usize) -> Mark {
    [Mark::Circle, Mark::Triangle, Mark::Cross][k % 3]
}

/// `mark` at pixel `at` of `area`.
fn draw_mark(area: &Area, at: (i32, i32), mark: Mark, c: RGBColor) -> Result<(), String> {
    match mark {
        Mark::Line(shape) => {
            area.draw(&PathElement::new(vec![(at.0 - 12, at.1), (at.0 + 12, at.1)], c.stroke_width(3))).map_err(err)?;
            draw_mark(area, at, mark_of(shape), c)
        }
        Mark::Circle => area.draw(&Circle::new(at, 5, c.filled())).map_err(err),
        Mark::Triangle => area.draw(&TriangleMarker::new(at, 6, c.filled())).map_err(err),
        Mark::Cross => area.draw(&Cross::new(at, 5, c.stroke_width(2))).map_err(err),
    }
}

/// `mark` at each data point of the chart.
fn draw_marks(chart: &mut Chart, pts: &[(f64, f64)], mark: Mark, c: RGBColor, alpha: f64) -> Result<(), String> {
    let fill = c.mix(alpha).filled();
    match mark {
        Mark::Triangle => chart.draw_series(pts.iter().map(|p| TriangleMarker::new(*p, 6, fill))).map(|_| ()),
        Mark::Cross => chart.draw_series(pts.iter().map(|p| Cross::new(*p, 5, c.stroke_width(2)))).map(|_| ()),
        _ => chart.draw_series(pts.iter().map(|p| Circle::new(*p, 4, fill))).map(|_| ()),
    }
    .map_err(err)
}

/// A legend entry: colour, mark, label.
type Key = (RGBColor, Mark, String);

/// A legend in its own column (beside the plots, so it never hides data): sections of a
/// heading and one mark and label per entry.
fn legend(area: &Area, sections: &[(&str, Vec<Key>)]) -> Result<(), String> {
    let text = TextStyle::from((FAMILY, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let head = TextStyle::from((FAMILY, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let mut y = 60;
    for (heading, keys) in sections {
        area.draw(&Text::new(heading.to_string(), (10, y), head.clone())).map_err(err)?;
        y += 26;
        for (c, mark, label) in keys {
            draw_mark(area, (26, y), *mark, *c)?;
            area.draw(&Text::new(label.clone(), (46, y), text.clone())).map_err(err)?;
            y += 22;
        }
        y += 14;
    }
    Ok(())
}

/// Pixel width of a legend column for these sections (DejaVu Sans Mono at 13–14 px: ~8.5 px a
/// character).
fn legend_width(sections: &[(&str, Vec<Key>)]) -> u32 {
    let chars = sections
        .iter()
        .flat_map(|(h, keys)| keys.iter().map(|k| k.2.chars().count() + 5).chain([h.chars().count() + 1]))
        .max()
        .unwrap_or(0);
    30 + (chars as f64 * 8.5) as u32
}

/// One row per setting × arm with cells; its label and per-task (mean, sd, n).
struct Row {
    arm: usize,
    setting: usize,
    label: String,
    stats: Vec<Option<(f64, f64, usize)>>,
}

fn rows(g: &Grouped) -> Vec<Row> {
    let mut out = Vec::new();
    for (si, s) in g.settings.iter().enumerate() {
        for (a, arm) in g.arms.iter().enumerate() {
            let cells = g.cells(s, arm);
            if cells.is_empty() {
                continue;
            }
            let bad = cells.iter().filter(|l| diverged(l)).count();
            let mut label = match g.setting_label(s) {
                l if l.is_empty() => arm.clone(),
                l => format!("{l}  {arm}"),
            };
            label.push_str(&format!("  (n={})", cells.len()));
            if bad > 0 {
                label.push_str(&format!(" {bad} diverged"));
            }
            let stats = (0..g.task_names.len()).map(|t| mean_sd(g, &cells, t)).collect();
            out.push(Row { arm: a, setting: si, label, stats });
        }
    }
    out
}

/// `final-loss.png`: a panel per task; a row per setting × arm: its mean final loss (dot) ± sd
/// (bar), the row labelled on the left, a colour per arm, a rule between settings.
pub fn final_loss_png(path: &Path, g: &Grouped) -> Result<(), String> {
    register();
    let rows = rows(g);
    let m = g.task_names.len();
    let label_w = 24 + (rows.iter().map(|r| r.label.chars().count()).max().unwrap_or(0) as f64 * 8.5) as u32;
    let height = 120 + 26 * rows.len().max(1) as u32 + 60;
    let root = BitMapBackend::new(path, (label_w + 440 * m as u32, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(&format!("{} per arm and setting: mean ± sd over the runs (seeds)", title(g)), (FAMILY, 20))
        .map_err(err)?;
    let (labels, panels) = root.split_horizontally(label_w);
    let n = rows.len();
    // Row k from the top sits at y = n − k − ½.
    let y_of = |k: usize| (n - k) as f64 - 0.5;
    for (t, area) in panels.split_evenly((1, m)).iter().enumerate() {
        let x = Span::of(rows.iter().filter_map(|r| r.stats[t]).flat_map(|(mu, sd, _)| spread(mu, sd)), false);
        let axes = Axes {
            caption: Some(task_caption(g, t)),
            x,
            y: Span { lo: 0.0, hi: n as f64, log: false },
            x_desc: x.desc(short_loss(g)),
            y_desc: None,
            x_ticks: None,
            y_label_area: 0,
        };
        let mut chart = chart(area, &axes)?;
        let xr = x.range();
        for (k, r) in rows.iter().enumerate() {
            if k > 0 && rows[k - 1].setting != r.setting {
                let y = (n - k) as f64;
                chart.draw_series(LineSeries::new([(xr.start, y), (xr.end, y)], BLACK.mix(0.3))).map_err(err)?;
            }
            let c = color(r.arm);
            if let Some((mu, sd, _)) = r.stats[t] {
                error_bar(&mut chart, x, y_of(k), mu - sd, mu + sd, true, c.stroke_width(2))?;
                chart.draw_series([Circle::new((x.t(mu), y_of(k)), 5, c.filled())]).map_err(err)?;
            }
            if t == 0 {
                let (_, py) = chart.backend_coord(&(xr.start, y_of(k)));
                let style =
                    TextStyle::from((FAMILY, 14).into_font()).color(&c).pos(Pos::new(HPos::Right, VPos::Center));
                let (_, ly) = labels.get_base_pixel();
                let at = (labels.dim_in_pixel().0 as i32 - 8, py - ly);
                labels.draw(&Text::new(r.label.clone(), at, style)).map_err(err)?;
            }
        }
    }
    root.present().map_err(err)
}

/// One line of `lr-sensitivity.png`: an arm (and the other setting axes' values, if any), its
/// colour and marker, and per task the points (lr, mean, sd) in lr order.
struct LrLine {
    arm: usize,
    mark: usize,
    name: String,
    points: Vec<Vec<(f64, f64, f64)>>,
}

/// `lr-sensitivity.png` (only with an `lr` axis; `Ok(false)` otherwise): per task, the mean
/// final loss ± sd against the learning rate (log axis, ticks at the swept rates), a line per
/// arm (and per value of the other setting axes, if any), points nudged sideways per line so
/// that their error bars do not hide each other; the legend beside the panels.
pub fn lr_png(path: &Path, g: &Grouped) -> Result<bool, String> {
    let Some(lr_pos) = g.setting_keys.iter().position(|k| k == "lr") else { return Ok(false) };
    register();
    let m = g.task_names.len();
    let mut lines: Vec<LrLine> = Vec::new();
    // The swept rates, with their text as given (the tick labels).
    let mut lrs: Vec<(f64, String)> = Vec::new();
    for s in &g.settings {
        let Some(lr) = s[lr_pos].parse::<f64>().ok().filter(|v| *v > 0.0) else { continue };
        if !lrs.iter().any(|(v, _)| *v == lr) {
            lrs.push((lr, s[lr_pos].clone()));
        }
        let others: Vec<String> = g
            .setting_keys
            .iter()
            .zip(s)
            .enumerate()
            .filter(|(i, _)| *i != lr_pos)
            .map(|(_, (k, v))| format!("{k}={v}"))
            .collect();
        for (a, arm) in g.arms.iter().enumerate() {
            let cells = g.cells(s, arm);
            if cells.is_empty() {
                continue;
            }
            let name = if others.is_empty() { arm.clone() } else { format!("{arm}  {}", others.join(" ")) };
            let i = match lines.iter().position(|l| l.name == name) {
                Some(i) => i,
                None => {
                    let mark = lines.iter().filter(|l| l.arm == a).count();
                    lines.push(LrLine { arm: a, mark, name, points: vec![Vec::new(); m] });
                    lines.len() - 1
                }
            };
            for t in 0..m {
                if let Some((mu, sd, _)) = mean_sd(g, &cells, t) {
                    lines[i].points[t].push((lr, mu, sd));
                }
            }
        }
    }
    for l in &mut lines {
        for pts in &mut l.points {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    lrs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (Some(first), Some(last)) = (lrs.first(), lrs.last()) else { return Ok(false) };
    let k_mid = (lines.len() as f64 - 1.0) / 2.0;
    // Lines are nudged sideways by `nudge` decades each, so that their error bars stay apart;
    // the axis leaves room for them.
    let decades = (last.0 / first.0).log10().max(1.0);
    let nudge = 0.012 * decades;
    let pad = 10f64.powf(0.08 * decades + nudge * k_mid);
    let x = Span { lo: first.0 / pad, hi: last.0 * pad, log: true };
    let cols = m.clamp(1, 3);
    let grid_rows = m.div_ceil(cols).max(1);
    let keys: Vec<Key> = lines.iter().map(|l| (color(l.arm), Mark::Line(l.mark), l.name.clone())).collect();
    let sections = [("arm", keys)];
    let legend_w = legend_width(&sections);
    let width = 520 * cols as u32 + legend_w;
    let root = BitMapBackend::new(path, (width, 60 + 420 * grid_rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(&format!("{} against the learning rate: mean ± sd over the runs (seeds)", title(g)), (FAMILY, 20))
        .map_err(err)?;
    let (plots, side) = root.split_horizontally(width - legend_w);
    legend(&side, &sections)?;
    for (t, area) in plots.split_evenly((grid_rows, cols)).iter().enumerate().take(m) {
        let y = Span::of(lines.iter().flat_map(|l| l.points[t].iter().flat_map(|&(_, mu, sd)| spread(mu, sd))), false);
        let axes = Axes {
            caption: Some(task_caption(g, t)),
            x,
            y,
            x_desc: "learning rate (log scale)".into(),
            y_desc: Some(y.desc(&format!("mean {}", short_loss(g)))),
            x_ticks: Some(&lrs),
            y_label_area: 70,
        };
        let mut chart = chart(area, &axes)?;
        for (k, l) in lines.iter().enumerate() {
            let c = color(l.arm);
            let dx = nudge * (k as f64 - k_mid);
            let pts: Vec<(f64, f64, f64)> = l.points[t].iter().map(|&(lr, mu, sd)| (lr.log10() + dx, mu, sd)).collect();
            let at: Vec<(f64, f64)> = pts.iter().map(|&(v, mu, _)| (v, y.t(mu))).collect();
            chart.draw_series(LineSeries::new(at.clone(), c.stroke_width(2))).map_err(err)?;
            for &(v, mu, sd) in &pts {
                error_bar(&mut chart, y, v, mu - sd, mu + sd, false, c.stroke_width(1))?;
            }
            draw_marks(&mut chart, &at, mark_of(l.mark), c, 1.0)?;
        }
    }
    root.present().map_err(err)?;
    Ok(true)
}

/// `loss-space.png` (two tasks or more; `Ok(false)` otherwise): every cell's final loss of task
/// 0 against task 1, a colour per arm and (with two or three settings) a marker per setting;
/// the legend beside the plot.
pub fn loss_space_png(path: &Path, g: &Grouped) -> Result<bool, String> {
    if g.task_names.len() < 2 {
        return Ok(false);
    }
    register();
    let pts: Vec<(usize, usize, f64, f64)> = g
        .lines
        .iter()
        .filter_map(|l| {
            let (a, b) = (g.loss(l, 0), g.loss(l, 1));
            let arm = g.arms.iter().position(|x| *x == l.method)?;
            let s = g.settings.iter().position(|s| *s == g.setting(l))?;
            (a.is_finite() && b.is_finite()).then_some((arm, s, a, b))
        })
        .collect();
    let left_out = g.lines.len() - pts.len();
    let x = Span::of(pts.iter().map(|p| p.2), false);
    let y = Span::of(pts.iter().map(|p| p.3), false);
    let shapes = g.settings.len() > 1 && g.settings.len() <= 3;
    let mut sections = vec![(
        if shapes { "arm (colour)" } else { "arm" },
        g.arms.iter().enumerate().map(|(a, arm)| (color(a), Mark::Circle, arm.clone())).collect::<Vec<_>>(),
    )];
    if shapes {
        let grey = RGBColor(90, 90, 90);
        sections.push((
            "setting (marker)",
            g.settings.iter().enumerate().map(|(k, s)| (grey, mark_of(k), g.setting_label(s))).collect(),
        ));
    }
    let legend_w = legend_width(&sections);
    let root = BitMapBackend::new(path, (820 + legend_w, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut heading = format!("{}: every run, task 0 against task 1", title(g));
    if left_out > 0 {
        heading.push_str(&format!(" ({left_out} non-finite left out)"));
    }
    let root = root.titled(&heading, (FAMILY, 20)).map_err(err)?;
    let (plot, side) = root.split_horizontally(820);
    legend(&side, &sections)?;
    let axes = Axes {
        caption: None,
        x,
        y,
        x_desc: x.desc(&format!("task 0 ({}): {}", g.task_names[0], short_loss(g))),
        y_desc: Some(y.desc(&format!("task 1 ({}): {}", g.task_names[1], short_loss(g)))),
        x_ticks: None,
        y_label_area: 80,
    };
    let mut chart = chart(&plot, &axes)?;
    for a in 0..g.arms.len() {
        for k in 0..3 {
            let mark = if shapes { mark_of(k) } else { Mark::Circle };
            let at: Vec<(f64, f64)> = pts
                .iter()
                .filter(|p| p.0 == a && (if shapes { p.1 == k } else { k == 0 }))
                .map(|p| (x.t(p.2), y.t(p.3)))
                .collect();
            draw_marks(&mut chart, &at, mark, color(a), 0.8)?;
        }
    }
    root.present().map_err(err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        for (v, s) in [(0.01, "0.01"), (1.0, "1"), (100.0, "100"), (1e6, "1e6"), (0.6435, "0.6435"), (2.5e-5, "2.5e-5")]
        {
            assert_eq!(tick(v), s);
        }
    }

    #[test]
    fn spans_go_logarithmic_only_for_positive_values_far_apart() {
        let s = Span::of([0.5, 0.6, f64::INFINITY], false);
        assert!(!s.log && s.lo < 0.5 && s.hi > 0.6, "{s:?}");
        let s = Span::of([0.01, 100.0], false);
        assert!(s.log && s.lo < 0.01 && s.hi > 100.0, "{s:?}");
        assert!(!Span::of([-1.0, 100.0], false).log);
        // A bar below zero does not turn a loss axis linear; it is cut at the axis.
        assert_eq!(spread(1.0, 2.0), [1.0, 3.0, 1.0]);
        assert_eq!(s.place(-1.0), (s.lo.log10(), true));
        assert_eq!(s.place(1.0), (0.0, false));
    }

    #[test]
    fn log_axes_get_enough_labels() {
        // Less than a decade: 1-2-5 multiples are not enough, so more multiples.
        let (labels, grid) = Span { lo: 0.015, hi: 0.55, log: true }.log_ticks();
        assert_eq!(labels, [0.02, 0.05, 0.1, 0.2, 0.5].map(|v: f64| v), "{labels:?}");
        assert!(grid.len() > labels.len());
        let (labels, _) = Span { lo: 0.5, hi: 0.9, log: true }.log_ticks();
        assert!(labels.len() >= 4 && labels.iter().all(|v| (0.5..=0.9).contains(v)), "{labels:?}");
        // Many decades: at most about eight labels.
        let (labels, _) = Span { lo: 1e-3, hi: 1e9, log: true }.log_ticks();
        assert!((4..=8).contains(&labels.len()), "{labels:?}");
    }
}
