//! A colour bar: the scale a heatmap is coloured with, as a strip with labelled ticks, lying
//! (the page's, under the map) or standing (the CLI's, beside it).

use crate::line_chart::{Frame, Rgb, Theme};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// What `draw_colour_bar` draws: the strip fills `frame`, running from `lo` to `hi` (left to
/// right when it lies, bottom to top when it stands).
pub struct ColourBar<'a> {
    pub frame: Frame,
    pub lo: f64,
    pub hi: f64,
    pub colour: &'a dyn Fn(f64) -> Rgb,
    /// Values along the bar and their labels (outside [lo, hi]: left out).
    pub ticks: &'a [(f64, &'a str)],
    /// Above the strip, left-aligned (lying) or centred (standing).
    pub heading: &'a str,
    pub standing: bool,
    pub theme: Theme<'a>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Draws `bar` onto `area`: one strip of 1 px per step along the bar, a border, ticks and
/// their labels (outside the strip) and the heading.
pub fn draw_colour_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, bar: &ColourBar) -> Result<(), String> {
    let Frame { x, y, w, h } = bar.frame;
    let t = bar.theme;
    let rgb = |c: Rgb| RGBColor(c.0, c.1, c.2);
    let length = if bar.standing { h } else { w }.max(1);
    // The value at the middle of pixel `k` along the bar (0: the `lo` end).
    let value = |k: i32| bar.lo + (bar.hi - bar.lo) * (f64::from(k) + 0.5) / f64::from(length);
    for k in 0..length {
        let c = rgb((bar.colour)(value(k))).filled();
        let strip = if bar.standing {
            let py = y + h - 1 - k;
            Rectangle::new([(x, py), (x + w, py + 1)], c)
        } else {
            Rectangle::new([(x + k, y), (x + k + 1, y + h)], c)
        };
        area.draw(&strip).map_err(err)?;
    }
    area.draw(&Rectangle::new([(x, y), (x + w, y + h)], rgb(t.border).stroke_width(1))).map_err(err)?;
    let font = FontDesc::new(FontFamily::Name(t.family), t.text_px, FontStyle::Normal);
    let ink = rgb(t.ink);
    for &(v, label) in bar.ticks {
        let u = (v - bar.lo) / (bar.hi - bar.lo);
        if !(-1e-9..=1.0 + 1e-9).contains(&u) {
            continue;
        }
        let along = (u * f64::from(length - 1)).round() as i32;
        if bar.standing {
            let py = y + h - 1 - along;
            area.draw(&PathElement::new(vec![(x + w, py), (x + w + 4, py)], ink.stroke_width(1))).map_err(err)?;
            let style = font.color(&rgb(t.muted)).pos(Pos::new(HPos::Left, VPos::Center));
            area.draw(&Text::new(label.to_string(), (x + w + 6, py), style)).map_err(err)?;
        } else {
            let px = x + along;
            area.draw(&PathElement::new(vec![(px, y + h), (px, y + h + 4)], ink.stroke_width(1))).map_err(err)?;
            // The end labels stay inside the bar's span.
            let hpos = if u < 0.05 {
                HPos::Left
            } else if u > 0.95 {
                HPos::Right
            } else {
                HPos::Center
            };
            let style = font.color(&rgb(t.muted)).pos(Pos::new(hpos, VPos::Top));
            area.draw(&Text::new(label.to_string(), (px, y + h + 6), style)).map_err(err)?;
        }
    }
    let (hx, hpos) = if bar.standing { (x + w / 2, HPos::Center) } else { (x, HPos::Left) };
    let style = font.color(&rgb(t.muted)).pos(Pos::new(hpos, VPos::Bottom));
    area.draw(&Text::new(bar.heading.to_string(), (hx, y - 4), style)).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colour::cosine;
    use plotters::style::register_font;

    const W: u32 = 200;
    const H: u32 = 160;

    fn theme() -> Theme<'static> {
        static FONT: &[u8] = include_bytes!("../../concord-cli/assets/DejaVuSansMono.ttf");
        let _ = register_font("figures-test", FontStyle::Normal, FONT);
        Theme { family: "figures-test", bold_title: false, ..Theme::PAGE }
    }

    fn render(bar: &ColourBar) -> Vec<u8> {
        let mut buf = vec![0u8; (W * H * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
            root.fill(&WHITE).unwrap();
            draw_colour_bar(&root, bar).unwrap();
            root.present().unwrap();
        }
        buf
    }

    fn pixel(buf: &[u8], x: i32, y: i32) -> Rgb {
        let i = ((y as u32 * W + x as u32) * 3) as usize;
        Rgb(buf[i], buf[i + 1], buf[i + 2])
    }

    fn cos(v: f64) -> Rgb {
        cosine(Some(v))
    }

    const TICKS: [(f64, &str); 3] = [(-1.0, "−1"), (0.0, "0"), (1.0, "+1")];

    #[test]
    fn a_lying_bar_runs_from_its_low_colour_on_the_left_to_its_high_on_the_right() {
        let frame = Frame { x: 20, y: 40, w: 101, h: 12 };
        let bar = ColourBar {
            frame,
            lo: -1.0,
            hi: 1.0,
            colour: &cos,
            ticks: &TICKS,
            heading: "cos",
            standing: false,
            theme: theme(),
        };
        let buf = render(&bar);
        let mid_row = frame.y + frame.h / 2;
        // One pixel column per 1/50 of the range: the pixel at column k shows the value at its
        // middle.
        for k in [1, 25, 50, 75, 99] {
            let v = -1.0 + 2.0 * (f64::from(k) + 0.5) / 101.0;
            assert_eq!(pixel(&buf, frame.x + k, mid_row), cos(v), "column {k}");
        }
        // The ticks hang below the strip; the heading is above it.
        let ink = theme().ink;
        assert_eq!(pixel(&buf, frame.x + 50, frame.y + frame.h + 2), ink, "the 0 tick");
        let above = (frame.x..frame.x + 30).any(|x| pixel(&buf, x, frame.y - 8) != Rgb(255, 255, 255));
        assert!(above, "the heading is drawn above the strip");
    }

    #[test]
    fn a_standing_bar_has_its_high_end_on_top() {
        let frame = Frame { x: 30, y: 20, w: 14, h: 120 };
        let bar = ColourBar {
            frame,
            lo: -1.0,
            hi: 1.0,
            colour: &cos,
            ticks: &TICKS,
            heading: "min cos",
            standing: true,
            theme: theme(),
        };
        let buf = render(&bar);
        let cx = frame.x + frame.w / 2;
        let (top, bottom) = (pixel(&buf, cx, frame.y + 2), pixel(&buf, cx, frame.y + frame.h - 3));
        assert!(top.2 > top.0 + 80, "blue (agree) on top: {top:?}");
        assert!(bottom.0 > bottom.2 + 80, "orange (oppose) at the bottom: {bottom:?}");
        // Tick labels to the right of the strip.
        let right = (frame.x + frame.w + 6..frame.x + frame.w + 30)
            .any(|x| (frame.y..frame.y + frame.h).any(|y| pixel(&buf, x, y) != Rgb(255, 255, 255)));
        assert!(right, "labels right of the strip");
    }

    #[test]
    fn a_banded_scale_stands_as_its_bands_lowest_at_the_bottom() {
        // The landscape's legend: 4 loss bands over [0, 4), one colour each.
        use crate::colour::loss_band;
        let band = |v: f64| loss_band((v.floor().clamp(0.0, 3.0)) as usize, 4);
        let frame = Frame { x: 30, y: 20, w: 16, h: 100 };
        let bar = ColourBar {
            frame,
            lo: 0.0,
            hi: 4.0,
            colour: &band,
            ticks: &[(0.0, "0"), (2.0, "2"), (4.0, "4")],
            heading: "loss",
            standing: true,
            theme: theme(),
        };
        let buf = render(&bar);
        let cx = frame.x + frame.w / 2;
        // Band b fills rows 25·b … 25·b + 24 counted up from the bottom edge.
        for b in 0..4 {
            for k in [1, 12, 23] {
                let y = frame.y + frame.h - 1 - (25 * b + k);
                assert_eq!(pixel(&buf, cx, y), loss_band(b as usize, 4), "band {b}, row {k}");
            }
        }
        assert_ne!(loss_band(0, 4), loss_band(3, 4));
    }
}
