//! The line chart: titled axes with labelled ticks and a grid, lines (solid or dashed, gaps
//! where a value cannot be shown), point markers and an optional legend, drawn into a given
//! frame of any plotters drawing area. The page draws it on a canvas in CSS pixels, the CLI on
//! a bitmap; the frame is explicit so a caller can draw its own marks over the same plot.

use crate::axis::Axis;
use plotters::chart::SeriesAnno;
use plotters::coord::Shift;
use plotters::element::{DashedPathElement, IntoDynElement};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A colour as the page writes it (`#rrggbb`) and the bitmap draws it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`; `None` for anything else.
    pub fn from_hex(s: &str) -> Option<Rgb> {
        let h = s.strip_prefix('#')?;
        if h.len() != 6 || !h.is_ascii() {
            return None;
        }
        let part = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
        Some(Rgb(part(0)?, part(2)?, part(4)?))
    }

    fn with_alpha(self, alpha: f64) -> RGBAColor {
        RGBColor(self.0, self.1, self.2).mix(alpha)
    }
}

/// A mark at each point of a line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Marker {
    /// A filled circle of this radius (px).
    Dot(u32),
    /// A filled triangle pointing up, this size (px).
    Up(u32),
    /// An outlined triangle pointing down, this size (px).
    Down(u32),
    /// An outlined square, this half side (px), 2 px wide.
    Square(u32),
    /// A cross (×), this half side (px), about 3 px wide.
    Cross(u32),
}

/// One series: its points in data units, how it is drawn, and its legend entry.
#[derive(Clone, Debug)]
pub struct Line {
    pub points: Vec<(f64, f64)>,
    pub colour: Rgb,
    /// Opacity 0..1 (1 opaque).
    pub alpha: f64,
    /// Stroke width (px).
    pub width: u32,
    pub dashed: bool,
    /// Whether the points are joined (false: markers only).
    pub path: bool,
    pub marker: Option<Marker>,
    /// The legend entry (drawn only when the chart has a legend).
    pub label: Option<String>,
}

impl Line {
    pub fn solid(points: Vec<(f64, f64)>, colour: Rgb, width: u32) -> Line {
        Line { points, colour, alpha: 1.0, width, dashed: false, path: true, marker: None, label: None }
    }

    pub fn dashed(points: Vec<(f64, f64)>, colour: Rgb, width: u32) -> Line {
        Line { dashed: true, ..Line::solid(points, colour, width) }
    }

    /// Markers only, no line between them.
    pub fn markers(points: Vec<(f64, f64)>, colour: Rgb, marker: Marker) -> Line {
        Line { path: false, marker: Some(marker), ..Line::solid(points, colour, 1) }
    }

    pub fn alpha(mut self, alpha: f64) -> Line {
        self.alpha = alpha;
        self
    }

    pub fn marker(mut self, marker: Marker) -> Line {
        self.marker = Some(marker);
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Line {
        self.label = Some(label.into());
        self
    }

    /// The runs of consecutive points both axes can show (a NaN, or a value ≤ 0 on a log axis,
    /// breaks the line), in axis units.
    fn runs(&self, x: &Axis, y: &Axis) -> Vec<Vec<(f64, f64)>> {
        let mut runs = vec![Vec::new()];
        for &(a, b) in &self.points {
            match (x.to_axis(a), y.to_axis(b)) {
                (Some(u), Some(v)) => runs.last_mut().expect("one run").push((u, v)),
                _ if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(Vec::new()),
                _ => {}
            }
        }
        runs.retain(|r| !r.is_empty());
        runs
    }
}

/// Where the plot goes on the drawing area (px; the axes' labels go around it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

/// Fonts and the axes' colours.
#[derive(Clone, Copy, Debug)]
pub struct Theme<'a> {
    /// A CSS font family list on the page, a registered family name for the bitmap.
    pub family: &'a str,
    pub text_px: f64,
    pub title_px: f64,
    /// A bold title (the bitmap's registered font may have no bold face).
    pub bold_title: bool,
    pub ink: Rgb,
    pub muted: Rgb,
    pub grid: Rgb,
    pub border: Rgb,
    /// About how many ticks per axis.
    pub ticks: usize,
}

impl Theme<'_> {
    /// The page's: 11 px labels, a 12 px bold title, GitHub-like greys.
    pub const PAGE: Theme<'static> = Theme {
        family: "'DejaVu Sans', system-ui, sans-serif",
        text_px: 11.0,
        title_px: 12.0,
        bold_title: true,
        ink: Rgb(0x1f, 0x23, 0x28),
        muted: Rgb(0x5b, 0x63, 0x6b),
        grid: Rgb(0xe6, 0xe9, 0xed),
        border: Rgb(0xb8, 0xbe, 0xc5),
        ticks: 4,
    };
}

/// A line chart: what `draw_line_chart` draws.
#[derive(Clone, Debug)]
pub struct LineChart<'a> {
    pub frame: Frame,
    pub x: Axis,
    pub y: Axis,
    /// Above the plot, left-aligned.
    pub title: &'a str,
    /// Below the plot, right-aligned.
    pub x_label: &'a str,
    /// The x axis's name on a row of its own under the tick labels (the scatter panels have the
    /// room), instead of closing the tick row (where it hides the tick labels it would cover).
    pub x_label_below: bool,
    /// Left of the y tick labels, turned a quarter (none on the page: its titles say it).
    pub y_label: Option<&'a str>,
    pub lines: Vec<Line>,
    /// The labelled lines' legend in the plot's upper right corner.
    pub legend: bool,
    pub theme: Theme<'a>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The ticks of `axis` in axis units, with their labels.
fn ticks_in_axis_units(axis: &Axis, n: usize) -> Vec<(f64, String)> {
    axis.ticks(n).into_iter().filter_map(|(v, label)| Some((axis.to_axis(v)?, label))).collect()
}

/// About how wide `s` is in a sans-serif font of `px` (for spacing labels without measuring:
/// the bitmap and the canvas measure differently).
fn text_width(s: &str, px: f64) -> i32 {
    (s.chars().count() as f64 * px * 0.62).ceil() as i32
}

/// Draws `chart` onto `area`. Plotting is in axis units (log₁₀ on a log axis), so a log axis
/// spaces decades evenly and a value it cannot show is left out instead of failing.
pub fn draw_line_chart<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &LineChart) -> Result<(), String> {
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let Frame { x: fx, y: fy, w: fw, h: fh } = chart.frame;
    let t = chart.theme;
    let (xa, ya) = (chart.x, chart.y);
    let rgb = |c: Rgb| RGBColor(c.0, c.1, c.2);
    let (ink, muted, grid, border) = (rgb(t.ink), rgb(t.muted), rgb(t.grid), rgb(t.border));
    let font = |px: f64| FontDesc::new(FontFamily::Name(t.family), px, FontStyle::Normal);
    // The margins make the plotting area exactly the frame: callers draw over it in the same
    // pixels.
    let mut cc = ChartBuilder::on(area)
        .margin_left(fx.max(0))
        .margin_top(fy.max(0))
        .margin_right((w - fx - fw).max(0))
        .margin_bottom((h - fy - fh).max(0))
        .build_cartesian_2d(xa.lo..xa.hi, ya.lo..ya.hi)
        .map_err(err)?;
    let (ox, oy) = area.get_base_pixel();
    let local = |p: (i32, i32)| (p.0 - ox, p.1 - oy);

    // Grid, ticks and tick labels: the ticks are ours (`Axis::ticks`), so a log axis over less
    // than a decade still gets readable labels.
    let x_ticks = ticks_in_axis_units(&xa, t.ticks);
    let y_ticks = ticks_in_axis_units(&ya, t.ticks);
    let grid_style = grid.stroke_width(1);
    let tick_style = border.stroke_width(1);
    let y_text = font(t.text_px).color(&muted).pos(Pos::new(HPos::Right, VPos::Center));
    for (v, label) in &y_ticks {
        cc.draw_series(std::iter::once(PathElement::new(vec![(xa.lo, *v), (xa.hi, *v)], grid_style))).map_err(err)?;
        let (px, py) = local(cc.backend_coord(&(xa.lo, *v)));
        area.draw(&PathElement::new(vec![(px - 3, py), (px, py)], tick_style)).map_err(err)?;
        area.draw(&Text::new(label.clone(), (px - 5, py), y_text.clone())).map_err(err)?;
    }
    // The x axis's name closes the tick row at the right end (the page's panels have no room
    // below it); a tick label it would cover is left out.
    let x_text = font(t.text_px).color(&muted).pos(Pos::new(HPos::Center, VPos::Top));
    let name_left = if chart.x_label_below { i32::MAX } else { fx + fw - text_width(chart.x_label, t.text_px) - 6 };
    for (v, label) in &x_ticks {
        cc.draw_series(std::iter::once(PathElement::new(vec![(*v, ya.lo), (*v, ya.hi)], grid_style))).map_err(err)?;
        let (px, py) = local(cc.backend_coord(&(*v, ya.lo)));
        area.draw(&PathElement::new(vec![(px, py), (px, py + 3)], tick_style)).map_err(err)?;
        if px + text_width(label, t.text_px) / 2 < name_left {
            area.draw(&Text::new(label.clone(), (px, py + 5), x_text.clone())).map_err(err)?;
        }
    }

    for line in &chart.lines {
        let colour = line.colour.with_alpha(line.alpha);
        let style = colour.stroke_width(line.width);
        let runs = line.runs(&xa, &ya);
        if line.path {
            let anno = if line.dashed {
                cc.draw_series(runs.iter().map(|r| DashedPathElement::new(r.clone(), 5, 4, style)))
            } else {
                cc.draw_series(runs.iter().map(|r| PathElement::new(r.clone(), style)))
            }
            .map_err(err)?;
            legend_entry(anno, line, colour);
        }
        if let Some(marker) = line.marker {
            let pts = runs.iter().flatten().copied();
            let anno = cc
                .draw_series(pts.map(|p| {
                    let (dot, fill, outline) = marker_parts(marker, colour, (0, 0));
                    EmptyElement::at(p) + dot + fill + outline
                }))
                .map_err(err)?;
            // One legend entry per line: the path's when it has one.
            if !line.path {
                legend_entry(anno, line, colour);
            }
        }
    }
    // A full border.
    cc.draw_series(std::iter::once(Rectangle::new([(xa.lo, ya.lo), (xa.hi, ya.hi)], border.stroke_width(1))))
        .map_err(err)?;
    if chart.legend && chart.lines.iter().any(|l| l.label.is_some()) {
        cc.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(font(t.text_px).color(&ink))
            .background_style(WHITE.mix(0.85))
            .border_style(border)
            .draw()
            .map_err(err)?;
    }
    let weight = if t.bold_title { FontStyle::Bold } else { FontStyle::Normal };
    let title = FontDesc::new(FontFamily::Name(t.family), t.title_px, weight)
        .color(&ink)
        .pos(Pos::new(HPos::Left, VPos::Bottom));
    area.draw(&Text::new(chart.title.to_string(), (fx, fy - 3), title)).map_err(err)?;
    let name = font(t.text_px).color(&ink).pos(Pos::new(HPos::Right, VPos::Top));
    let name_y = if chart.x_label_below { fy + fh + 7 + t.text_px.round() as i32 } else { fy + fh + 5 };
    area.draw(&Text::new(chart.x_label.to_string(), (fx + fw, name_y), name)).map_err(err)?;
    if let Some(d) = chart.y_label {
        let turned = font(t.text_px + 1.0)
            .transform(FontTransform::Rotate270)
            .color(&muted)
            .pos(Pos::new(HPos::Center, VPos::Top));
        area.draw(&Text::new(d.to_string(), (4, fy + fh / 2), turned)).map_err(err)?;
    }
    Ok(())
}

/// The line's legend entry, when it has a label.
fn legend_entry<'a, DB: DrawingBackend + 'a>(anno: &mut SeriesAnno<'a, DB>, line: &Line, colour: RGBAColor) {
    if let Some(l) = &line.label {
        let (dashed, path, marker, width) = (line.dashed, line.path, line.marker, line.width);
        anno.label(l.clone()).legend(move |at| legend_glyph::<'a, DB>(at, colour, width, dashed, path, marker));
    }
}

type MarkerParts = (Circle<(i32, i32), u32>, Polygon<(i32, i32)>, PathElement<(i32, i32)>);

/// A marker as pixels around `(cx, cy)`: a dot, a filled outline and a stroked outline, the
/// unused ones empty (one type for every marker, so a series of them is one element type).
fn marker_parts(marker: Marker, colour: RGBAColor, (cx, cy): (i32, i32)) -> MarkerParts {
    let none = TRANSPARENT.filled();
    let at = |pts: [(i32, i32); 3]| pts.iter().map(|p| (cx + p.0, cy + p.1)).collect::<Vec<_>>();
    match marker {
        Marker::Dot(r) => (
            Circle::new((cx, cy), r, colour.filled()),
            Polygon::new(Vec::new(), none),
            PathElement::new(Vec::new(), none),
        ),
        Marker::Up(s) => {
            let s = s as i32;
            let pts = at([(0, -s), (-(s * 4 / 5), s * 2 / 5), (s * 4 / 5, s * 2 / 5)]);
            (Circle::new((cx, cy), 0, none), Polygon::new(pts, colour.filled()), PathElement::new(Vec::new(), none))
        }
        Marker::Down(s) => {
            let s = s as i32;
            let mut pts = at([(0, s), (-(s * 4 / 5), -(s * 2 / 5)), (s * 4 / 5, -(s * 2 / 5))]);
            pts.push(pts[0]);
            (
                Circle::new((cx, cy), 0, none),
                Polygon::new(Vec::new(), none),
                PathElement::new(pts, colour.stroke_width(1)),
            )
        }
        Marker::Square(s) => {
            let s = s as i32;
            let pts =
                [(-s, -s), (s, -s), (s, s), (-s, s), (-s, -s)].iter().map(|p| (cx + p.0, cy + p.1)).collect::<Vec<_>>();
            (
                Circle::new((cx, cy), 0, none),
                Polygon::new(Vec::new(), none),
                PathElement::new(pts, colour.stroke_width(2)),
            )
        }
        Marker::Cross(s) => {
            let s = s as i32;
            // One diagonal stroked, the other a filled band as wide (a single path doubling
            // back on itself draws its wide joins wrong).
            let stroke = vec![(cx - s, cy - s), (cx + s, cy + s)];
            let band = vec![
                (cx + s + 1, cy - s + 1),
                (cx + s - 1, cy - s - 1),
                (cx - s - 1, cy + s - 1),
                (cx - s + 1, cy + s + 1),
            ];
            (
                Circle::new((cx, cy), 0, none),
                Polygon::new(band, colour.filled()),
                PathElement::new(stroke, colour.stroke_width(3)),
            )
        }
    }
}

/// A legend entry's sample: a short line (dashed as the line is) with the line's marker.
fn legend_glyph<'a, DB: DrawingBackend + 'a>(
    at: (i32, i32),
    colour: RGBAColor,
    width: u32,
    dashed: bool,
    path: bool,
    marker: Option<Marker>,
) -> impl IntoDynElement<'a, DB, (i32, i32)> {
    let style = colour.stroke_width(width.max(2));
    let (first, second) = match (path, dashed) {
        (false, _) => (vec![], vec![]),
        (true, false) => (vec![(0, 0), (20, 0)], vec![]),
        (true, true) => (vec![(0, 0), (7, 0)], vec![(13, 0), (20, 0)]),
    };
    let none = TRANSPARENT.filled();
    let (dot, fill, outline) = match marker {
        Some(m) => marker_parts(m, colour, (10, 0)),
        None => (Circle::new((0, 0), 0, none), Polygon::new(Vec::new(), none), PathElement::new(Vec::new(), none)),
    };
    EmptyElement::at(at) + PathElement::new(first, style) + PathElement::new(second, style) + dot + fill + outline
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::style::{register_font, FontStyle};

    const W: u32 = 320;
    const H: u32 = 200;
    const FRAME: Frame = Frame { x: 40, y: 20, w: 260, h: 150 };
    const RED: Rgb = Rgb(255, 0, 0);
    const BLUE: Rgb = Rgb(0, 0, 255);

    fn theme() -> Theme<'static> {
        // The CLI's font: the bitmap backend draws text through ab_glyph.
        static FONT: &[u8] = include_bytes!("../../concord-cli/assets/DejaVuSansMono.ttf");
        let _ = register_font("figures-test", FontStyle::Normal, FONT);
        Theme { family: "figures-test", bold_title: false, ..Theme::PAGE }
    }

    /// Draws `chart` into an in-memory RGB buffer and returns it.
    fn render(chart: &LineChart) -> Vec<u8> {
        let mut buf = vec![0u8; (W * H * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
            root.fill(&WHITE).unwrap();
            draw_line_chart(&root, chart).unwrap();
            root.present().unwrap();
        }
        buf
    }

    fn pixel(buf: &[u8], x: i32, y: i32) -> Rgb {
        let i = ((y as u32 * W + x as u32) * 3) as usize;
        Rgb(buf[i], buf[i + 1], buf[i + 2])
    }

    fn chart(y: Axis, lines: Vec<Line>) -> LineChart<'static> {
        LineChart {
            frame: FRAME,
            x: Axis::fixed(0.0, 10.0),
            y,
            title: "title",
            x_label: "step",
            x_label_below: false,
            y_label: None,
            lines,
            legend: false,
            theme: theme(),
        }
    }

    /// The pixel row of `v` on a linear 0..1 axis (top of the frame = 1).
    fn row(v: f64) -> i32 {
        FRAME.y + ((1.0 - v) * (FRAME.h - 1) as f64).round() as i32
    }

    /// The pixel column of `v` on the 0..10 x axis.
    fn col(v: f64) -> i32 {
        FRAME.x + (v / 10.0 * (FRAME.w - 1) as f64).round() as i32
    }

    #[test]
    fn a_line_lands_where_its_values_say_in_its_colour() {
        // A rising red line from (0, 0.2) to (10, 0.8), 3 px wide.
        let buf = render(&chart(Axis::fixed(0.0, 1.0), vec![Line::solid(vec![(0.0, 0.2), (10.0, 0.8)], RED, 3)]));
        for x in [1.0, 2.5, 5.0, 7.5, 9.0] {
            let v = 0.2 + 0.06 * x;
            assert_eq!(pixel(&buf, col(x), row(v)), RED, "the line at x = {x}");
            // Well above and below it: not red (grid, or white).
            assert_ne!(pixel(&buf, col(x), row(v) - 12), RED);
            assert_ne!(pixel(&buf, col(x), row(v) + 12), RED);
        }
        // Outside the frame (left of the y tick labels) nothing of the line.
        assert!((0..H as i32).all(|y| pixel(&buf, 2, y) != RED));
        // The frame's border is drawn, in the theme's colour, and the plot inside is white
        // away from lines and grid.
        let b = Theme::PAGE.border;
        assert_eq!(pixel(&buf, FRAME.x + 100, FRAME.y), b);
        assert_eq!(pixel(&buf, FRAME.x + 7, FRAME.y + 7), Rgb(255, 255, 255));
        // Tick labels are drawn: some dark text left of the frame.
        let dark = (FRAME.y..FRAME.y + FRAME.h).any(|y| (0..FRAME.x - 4).any(|x| pixel(&buf, x, y).0 < 160));
        assert!(dark, "no y tick labels");
    }

    #[test]
    fn an_x_name_below_the_ticks_hides_no_tick_label() {
        // A long name: closing the tick row it hides the labels at the right end (8, 10); on a
        // row of its own it hides none.
        let tick_row_ink = |below: bool| {
            let c = LineChart {
                x_label: "a long name for the x axis",
                x_label_below: below,
                ..chart(Axis::fixed(0.0, 1.0), vec![])
            };
            let buf = render(&c);
            let x0 = col(8.0) - 6;
            (FRAME.y + FRAME.h + 6..FRAME.y + FRAME.h + 14)
                .flat_map(|y| (x0..x0 + 12).map(move |x| (x, y)))
                .filter(|&(x, y)| pixel(&buf, x, y).0 < 160)
                .count()
        };
        assert!(tick_row_ink(true) > 0, "the 8 is drawn when the name is below");
        // The name starts left of the 8 and is drawn from the row's top: ink there either way,
        // but the name's row is lower when below.
        let c = LineChart { x_label: "x", x_label_below: true, ..chart(Axis::fixed(0.0, 1.0), vec![]) };
        let buf = render(&c);
        let name_row = (FRAME.y + FRAME.h + 19..FRAME.y + FRAME.h + 30)
            .any(|y| (FRAME.x + FRAME.w - 12..FRAME.x + FRAME.w).any(|x| pixel(&buf, x, y).0 < 160));
        assert!(name_row, "the name is on its own row under the ticks");
    }

    #[test]
    fn a_log_axis_skips_what_it_cannot_show_and_nans_break_lines() {
        // 0.001 … 1 on a log axis: three decades over the frame's height.
        let y = Axis::log_range(1e-3, 1.0);
        let pts = vec![
            (0.0, 1e-2),
            (2.0, 1e-2),
            (3.0, 0.0),
            (4.0, -1.0),
            (5.0, 1e-2),
            (6.0, f64::NAN),
            (7.0, 1e-2),
            (10.0, 1e-2),
        ];
        let buf = render(&chart(y, vec![Line::solid(pts, BLUE, 3)]));
        // 0.01 sits a third of the way up.
        let r = FRAME.y + ((2.0 / 3.0) * (FRAME.h - 1) as f64).round() as i32;
        assert_eq!(pixel(&buf, col(1.0), r), BLUE, "the drawn run 0..2");
        assert_eq!(pixel(&buf, col(8.5), r), BLUE, "the drawn run 7..10");
        // The gaps: between x = 2 and 5 (0 and −1 cannot be shown) and between 5 and 7 (NaN).
        assert_ne!(pixel(&buf, col(3.5), r), BLUE);
        assert_ne!(pixel(&buf, col(6.0), r), BLUE);
        assert!((FRAME.y..FRAME.y + FRAME.h).all(|y| pixel(&buf, col(3.5), y) != BLUE), "nothing drawn at 0 or −1");
    }

    #[test]
    fn markers_and_dashes_and_a_legend_draw() {
        let lines = vec![
            Line::markers(vec![(5.0, 0.5)], RED, Marker::Dot(4)).label("dot"),
            Line::dashed(vec![(0.0, 0.25), (10.0, 0.25)], BLUE, 2).label("dashed"),
            Line::markers(vec![(2.0, 0.75)], BLUE, Marker::Up(6)),
        ];
        let mut c = chart(Axis::fixed(0.0, 1.0), lines);
        c.legend = true;
        let buf = render(&c);
        assert_eq!(pixel(&buf, col(5.0), row(0.5)), RED, "the dot");
        assert_eq!(pixel(&buf, col(2.0), row(0.75)), BLUE, "the triangle");
        // Dashed: along the line some pixels are blue and some are not.
        let along: Vec<bool> = (col(0.5)..col(4.0)).map(|x| pixel(&buf, x, row(0.25)) == BLUE).collect();
        assert!(along.iter().any(|b| *b) && along.iter().any(|b| !*b), "dashes");
        // The legend box in the upper right holds a red sample.
        let legend_red =
            (FRAME.y..FRAME.y + 60).any(|y| (col(5.0)..FRAME.x + FRAME.w).any(|x| pixel(&buf, x, y) == RED));
        assert!(legend_red, "no legend entry for the dot");
    }

    #[test]
    fn squares_and_crosses_are_outlines_centred_on_their_points() {
        let lines = vec![
            Line::markers(vec![(2.0, 0.5)], RED, Marker::Square(6)),
            Line::markers(vec![(7.0, 0.5)], BLUE, Marker::Cross(6)),
        ];
        let buf = render(&chart(Axis::fixed(0.0, 1.0), lines));
        let (sx, cx, y) = (col(2.0), col(7.0), row(0.5));
        // The square: its edges, not its inside.
        assert_eq!(pixel(&buf, sx - 6, y), RED, "left edge");
        assert_eq!(pixel(&buf, sx + 6, y), RED, "right edge");
        assert_eq!(pixel(&buf, sx, y - 6), RED, "top edge");
        assert_ne!(pixel(&buf, sx, y), RED, "hollow");
        // The cross: its centre and its four arms, not the middles of its sides.
        for (dx, dy) in [(0, 0), (-5, -5), (5, 5), (5, -5), (-5, 5)] {
            assert_eq!(pixel(&buf, cx + dx, y + dy), BLUE, "cross at ({dx}, {dy})");
        }
        assert_ne!(pixel(&buf, cx + 5, y), BLUE, "no right side");
    }

    #[test]
    fn hex_colours_parse() {
        assert_eq!(Rgb::from_hex("#d6204e"), Some(Rgb(0xd6, 0x20, 0x4e)));
        assert_eq!(Rgb::from_hex("d6204e"), None);
        assert_eq!(Rgb::from_hex("#d6204"), None);
        assert_eq!(Rgb::from_hex("#zz204e"), None);
    }
}
