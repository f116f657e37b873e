//! The PNGs of `concord sweep --summary FILE --plot DIR` (plotters' bitmap backend, the house
//! font and colours of `crate::plot`): `final-loss.png` (per task, each arm × setting's mean
//! final loss ± sd), `lr-sensitivity.png` (with an `lr` axis: mean final loss against the
//! learning rate, a line per arm) and `loss-space.png` (every cell's final losses, task 0
//! against task 1, a colour per arm).

use super::stats;
use super::summary::{diverged, num, Grouped};
use crate::plot::{register, COLORS, FAMILY};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn color(arm: usize) -> RGBColor {
    COLORS[arm % COLORS.len()]
}

/// An axis's extent: log scale when every value is positive and they span more than 3×.
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

    fn clamp(&self, v: f64) -> f64 {
        v.clamp(self.lo, self.hi)
    }

    fn desc(&self, what: &str) -> String {
        if self.log {
            format!("{what} (log scale)")
        } else {
            what.to_string()
        }
    }
}

/// Calls `$f(x, y)` with each span as a plotters coordinate (linear or log): the chart types
/// differ, so each combination is its own call.
macro_rules! with_spans {
    ($x:expr, $y:expr, $f:expr) => {{
        let (x, y): (Span, Span) = ($x, $y);
        match (x.log, y.log) {
            (false, false) => $f(x.lo..x.hi, y.lo..y.hi),
            (true, false) => $f((x.lo..x.hi).log_scale(), y.lo..y.hi),
            (false, true) => $f(x.lo..x.hi, (y.lo..y.hi).log_scale()),
            (true, true) => $f((x.lo..x.hi).log_scale(), (y.lo..y.hi).log_scale()),
        }
    }};
}

/// An error bar's end: a short line through `$at`, ± `$half` pixels (plotters' `ErrorBar` needs
/// a feature this crate does not build with; caps sized in pixels suit log axes too).
macro_rules! cap {
    ($at:expr, $half:expr, $style:expr) => {{
        let (h, v): (i32, i32) = $half;
        EmptyElement::at($at) + PathElement::new(vec![(-h, -v), (h, v)], $style)
    }};
}

/// The values an axis must show for a mean ± sd: mean − sd only while positive (a loss axis
/// stays logarithmic; a bar reaching below it is cut at the axis).
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

/// Mean and sd (0 below two runs) of one group's finite final losses of task t, and how many.
fn mean_sd(g: &Grouped, cells: &[&super::lines::Line], t: usize) -> Option<(f64, f64, usize)> {
    let v: Vec<f64> = cells.iter().map(|l| g.loss(l, t)).filter(|v| v.is_finite()).collect();
    (!v.is_empty()).then(|| (stats::mean(&v), stats::sd(&v).unwrap_or(0.0), v.len()))
}

/// `xor-conflict: final test loss` (the base config's name and the loss the figures show).
fn title(g: &Grouped) -> String {
    let base = g.lines.first().map(|l| l.base.as_str()).filter(|b| !b.is_empty()).unwrap_or("sweep");
    format!("{base}: {}", short_loss(g))
}

/// "final test loss" / "final train loss".
fn short_loss(g: &Grouped) -> &'static str {
    if g.test {
        "final test loss"
    } else {
        "final train loss"
    }
}

/// A lighter grid than plotters' default (the data, not the grid, should stand out).
fn grid() -> (ShapeStyle, ShapeStyle) {
    (BLACK.mix(0.18).into(), BLACK.mix(0.05).into())
}

/// A legend entry's mark.
#[derive(Clone, Copy, PartialEq)]
enum Mark {
    Line(usize),
    Circle,
    Triangle,
    Cross,
}

/// The k-th marker shape (for the lines or settings that share a colour).
fn mark_of(k: usize) -> Mark {
    [Mark::Circle, Mark::Triangle, Mark::Cross][k % 3]
}

fn draw_mark<'a, C>(area: &Area<'a>, at: (i32, i32), mark: Mark, c: C) -> Result<(), String>
where
    C: Color + Copy,
{
    let style: ShapeStyle = c.filled();
    match mark {
        Mark::Line(shape) => {
            area.draw(&PathElement::new(vec![(at.0 - 12, at.1), (at.0 + 12, at.1)], c.stroke_width(3))).map_err(err)?;
            draw_mark(area, at, mark_of(shape), c)
        }
        Mark::Circle => area.draw(&Circle::new(at, 5, style)).map_err(err),
        Mark::Triangle => area.draw(&TriangleMarker::new(at, 6, style)).map_err(err),
        Mark::Cross => area.draw(&Cross::new(at, 5, c.stroke_width(2))).map_err(err),
    }
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

fn task_caption(g: &Grouped, t: usize) -> String {
    format!("task {t}: {}", g.task_names[t])
}

/// One row per setting × arm with cells; its label and per-task (mean, sd, n).
struct Row {
    arm: usize,
    label: String,
    stats: Vec<Option<(f64, f64, usize)>>,
}

fn rows(g: &Grouped) -> Vec<Row> {
    let mut out = Vec::new();
    for s in &g.settings {
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
            out.push(Row { arm: a, label, stats });
        }
    }
    out
}

/// `final-loss.png`: a panel per task; a row per setting × arm: its mean final loss (dot) ± sd
/// (bar), the row labelled on the left, a colour per arm.
pub fn final_loss_png(path: &Path, g: &Grouped) -> Result<(), String> {
    register();
    let rows = rows(g);
    let m = g.task_names.len();
    let label_w = 24 + (rows.iter().map(|r| r.label.chars().count()).max().unwrap_or(0) as f64 * 8.5) as u32;
    let panel_w = 440u32;
    let height = 120 + 26 * rows.len().max(1) as u32 + 60;
    let root = BitMapBackend::new(path, (label_w + panel_w * m as u32, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(&format!("{} per arm and setting: mean ± sd over the runs (seeds)", title(g)), (FAMILY, 20))
        .map_err(err)?;
    let (labels, panels) = root.split_horizontally(label_w);
    let panels = panels.split_evenly((1, m));
    let n = rows.len();
    for (t, area) in panels.iter().enumerate() {
        let x = Span::of(rows.iter().filter_map(|r| r.stats[t]).flat_map(|(mu, sd, _)| spread(mu, sd)), false);
        let y = Span { lo: 0.0, hi: n as f64, log: false };
        with_spans!(x, y, |xs, ys| final_loss_panel(area, &labels, t == 0, g, t, &rows, x, xs, ys))?;
    }
    root.present().map_err(err)
}

#[allow(clippy::too_many_arguments)]
fn final_loss_panel<X, Y>(
    area: &Area,
    labels: &Area,
    draw_labels: bool,
    g: &Grouped,
    t: usize,
    rows: &[Row],
    x: Span,
    xs: X,
    ys: Y,
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let n = rows.len();
    let mut chart = ChartBuilder::on(area)
        .caption(task_caption(g, t), (FAMILY, 16))
        .margin(10)
        .margin_right(24)
        .x_label_area_size(44)
        .y_label_area_size(0)
        .build_cartesian_2d(xs, ys)
        .map_err(err)?;
    let (bold, light) = grid();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .bold_line_style(bold)
        .light_line_style(light)
        .x_desc(x.desc(short_loss(g)))
        .x_labels(6)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .x_label_formatter(&|v| tick(*v))
        .draw()
        .map_err(err)?;
    // Row k from the top sits at y = n − k − ½; a thin rule between settings.
    let y_of = |k: usize| (n - k) as f64 - 0.5;
    let mut previous_setting: Option<&str> = None;
    for (k, r) in rows.iter().enumerate() {
        let setting = r.label.split("  ").next().unwrap_or("");
        if previous_setting.is_some_and(|p| p != setting) {
            let y = (n - k) as f64;
            chart.draw_series(LineSeries::new([(x.lo, y), (x.hi, y)], BLACK.mix(0.3))).map_err(err)?;
        }
        previous_setting = Some(setting);
        let c = color(r.arm);
        if let Some((mu, sd, _)) = r.stats[t] {
            let lo = if x.log && mu - sd <= 0.0 { x.lo } else { x.clamp(mu - sd) };
            let (hi, y) = (x.clamp(mu + sd), y_of(k));
            let style = c.stroke_width(2);
            chart.draw_series(LineSeries::new([(lo, y), (hi, y)], style)).map_err(err)?;
            chart.draw_series([lo, hi].map(|v| cap!((v, y), (0, 5), style))).map_err(err)?;
            chart.draw_series([Circle::new((mu, y), 5, c.filled())]).map_err(err)?;
        }
        if draw_labels {
            let (_, py) = chart.backend_coord(&(x.lo, y_of(k)));
            let style = TextStyle::from((FAMILY, 14).into_font()).color(&c).pos(Pos::new(HPos::Right, VPos::Center));
            let (_, ly) = labels.get_base_pixel();
            labels
                .draw(&Text::new(r.label.clone(), (labels.dim_in_pixel().0 as i32 - 8, py - ly), style))
                .map_err(err)?;
        }
    }
    Ok(())
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
    // x is log10(lr) on a linear axis, so the ticks can sit at the swept rates.
    let logs: Vec<f64> = lrs.iter().map(|v| v.0.log10()).collect();
    let (l0, l1) = (logs.first().copied().unwrap_or(-3.0), logs.last().copied().unwrap_or(-2.0));
    let pad = (0.12 * (l1 - l0)).max(0.15);
    let x = Span { lo: l0 - pad, hi: l1 + pad, log: false };
    let nudge = 0.012 * (l1 - l0).max(1.0);
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
        let ctx = LrPanel { g, t, lines: &lines, lrs: &lrs, x, y, nudge };
        with_spans!(x, y, |xs, ys| lr_panel(area, &ctx, xs, ys))?;
    }
    root.present().map_err(err)?;
    Ok(true)
}

struct LrPanel<'a> {
    g: &'a Grouped<'a>,
    t: usize,
    lines: &'a [LrLine],
    lrs: &'a [(f64, String)],
    x: Span,
    y: Span,
    nudge: f64,
}

fn lr_panel<X, Y>(area: &Area, p: &LrPanel, xs: X, ys: Y) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let (x, y, t) = (p.x, p.y, p.t);
    let mut chart = ChartBuilder::on(area)
        .caption(task_caption(p.g, t), (FAMILY, 16))
        .margin(12)
        .margin_right(20)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(xs, ys)
        .map_err(err)?;
    let (bold, light) = grid();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .bold_line_style(bold)
        .light_line_style(light)
        .x_desc("learning rate (log scale)")
        .y_desc(y.desc(&format!("mean {}", short_loss(p.g))))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .y_label_formatter(&|v| tick(*v))
        .draw()
        .map_err(err)?;
    // The swept rates: a grid line and a tick label each.
    let base = area.get_base_pixel();
    let label = TextStyle::from((FAMILY, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (lr, text) in p.lrs {
        let v = lr.log10();
        chart.draw_series(LineSeries::new([(v, y.lo), (v, y.hi)], bold)).map_err(err)?;
        let (px, py) = chart.backend_coord(&(v, y.lo));
        area.draw(&Text::new(text.clone(), (px - base.0, py - base.1 + 6), label.clone())).map_err(err)?;
    }
    let k_mid = (p.lines.len() as f64 - 1.0) / 2.0;
    for (k, l) in p.lines.iter().enumerate() {
        let c = color(l.arm);
        let dx = p.nudge * (k as f64 - k_mid);
        let pts: Vec<(f64, f64, f64)> = l.points[t].iter().map(|&(lr, mu, sd)| (lr.log10() + dx, mu, sd)).collect();
        chart.draw_series(LineSeries::new(pts.iter().map(|&(v, mu, _)| (v, mu)), c.stroke_width(2))).map_err(err)?;
        for &(v, mu, sd) in &pts {
            let lo = if y.log && mu - sd <= 0.0 { y.lo } else { y.clamp(mu - sd) };
            let (hi, style) = (y.clamp(mu + sd), c.stroke_width(1));
            chart.draw_series(LineSeries::new([(v, lo), (v, hi)], style)).map_err(err)?;
            chart.draw_series([lo, hi].map(|w| cap!((v, w), (4, 0), style))).map_err(err)?;
        }
        match mark_of(l.mark) {
            Mark::Triangle => chart
                .draw_series(pts.iter().map(|&(v, mu, _)| TriangleMarker::new((v, mu), 6, c.filled())))
                .map_err(err)?,
            Mark::Cross => chart
                .draw_series(pts.iter().map(|&(v, mu, _)| Cross::new((v, mu), 5, c.stroke_width(2))))
                .map_err(err)?,
            _ => chart.draw_series(pts.iter().map(|&(v, mu, _)| Circle::new((v, mu), 4, c.filled()))).map_err(err)?,
        };
    }
    let _ = x;
    Ok(())
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
    with_spans!(x, y, |xs, ys| loss_space_panel(&plot, g, &pts, shapes, x, y, xs, ys))?;
    root.present().map_err(err)?;
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
fn loss_space_panel<X, Y>(
    area: &Area,
    g: &Grouped,
    pts: &[(usize, usize, f64, f64)],
    shapes: bool,
    x: Span,
    y: Span,
    xs: X,
    ys: Y,
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(xs, ys)
        .map_err(err)?;
    let (bold, light) = grid();
    chart
        .configure_mesh()
        .bold_line_style(bold)
        .light_line_style(light)
        .x_desc(x.desc(&format!("task 0 ({}): {}", g.task_names[0], short_loss(g))))
        .y_desc(y.desc(&format!("task 1 ({}): {}", g.task_names[1], short_loss(g))))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .draw()
        .map_err(err)?;
    for a in 0..g.arms.len() {
        let c = color(a);
        let mine = || pts.iter().filter(move |p| p.0 == a);
        let mark = |p: &(usize, usize, f64, f64)| if shapes { mark_of(p.1) } else { Mark::Circle };
        chart
            .draw_series(
                mine().filter(|p| mark(p) == Mark::Circle).map(|p| Circle::new((p.2, p.3), 4, c.mix(0.8).filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(
                mine()
                    .filter(|p| mark(p) == Mark::Triangle)
                    .map(|p| TriangleMarker::new((p.2, p.3), 6, c.mix(0.8).filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(
                mine().filter(|p| mark(p) == Mark::Cross).map(|p| Cross::new((p.2, p.3), 5, c.stroke_width(2))),
            )
            .map_err(err)?;
    }
    Ok(())
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
        // A bar below zero does not turn a loss axis linear.
        assert_eq!(spread(1.0, 2.0), [1.0, 3.0, 1.0]);
    }
}
