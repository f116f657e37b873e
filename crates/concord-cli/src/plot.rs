//! PNG figures of a multi-task run (`train --preset … --plot DIR`), drawn with plotters' bitmap
//! backend. Text goes through ab_glyph with DejaVu Sans Mono embedded from `assets/` (license
//! beside it), so no system font library is needed.

use concord_core::train::RunRecord;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};
use std::path::Path;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
pub(crate) const FAMILY: &str = "sans-serif";

/// Task colours (matplotlib's tab10).
pub(crate) const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font compiled into the binary.
        let _ = register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Train loss (per step, on the batch) and test loss (where evaluated) of every task, log scale.
pub fn losses_png(path: &Path, record: &RunRecord, title: &str) -> Result<(), String> {
    register();
    let floor = 1e-12;
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for s in &record.history {
        for v in s.losses.iter().chain(s.test_losses.iter().flatten()) {
            let v = v.max(floor);
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !(lo.is_finite() && hi.is_finite()) {
        lo = 0.1;
        hi = 1.0;
    }
    let (lo, hi) = (lo / 1.5, hi * 1.5);
    let steps = record.history.len().max(1) as f64;

    let root = BitMapBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 20))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..steps, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss (log scale)")
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 15))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(err)?;
    for (t, name) in record.task_names.iter().enumerate() {
        let color = COLORS[t % COLORS.len()];
        let train = record.history.iter().map(|s| (s.step as f64, s.losses[t].max(floor)));
        chart
            .draw_series(LineSeries::new(train, color.mix(0.55).stroke_width(1)))
            .map_err(err)?
            .label(format!("train {t}: {name}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.mix(0.55).stroke_width(2)));
        let test: Vec<(f64, f64)> = record
            .history
            .iter()
            .filter_map(|s| s.test_losses.as_ref().map(|l| (s.step as f64, l[t].max(floor))))
            .collect();
        if !test.is_empty() {
            chart
                .draw_series(LineSeries::new(test.clone(), color.stroke_width(3)))
                .map_err(err)?
                .label(format!("test {t}: {name}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
            chart.draw_series(test.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Diverging colormap: −1 blue, 0 white, +1 red; undefined grey.
fn cos_color(c: Option<f64>) -> RGBColor {
    let Some(c) = c else { return RGBColor(200, 200, 200) };
    let c = c.clamp(-1.0, 1.0);
    let (end, a) = if c < 0.0 { ((59.0, 76.0, 192.0), -c) } else { ((180.0, 4.0, 38.0), c) };
    let mix = |e: f64| (255.0 + (e - 255.0) * a).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

/// One heatmap strip per task pair: the pairwise task-gradient cosine over the steps (binned to
/// at most 300 columns, each the mean of its defined cosines), with a colour bar.
pub fn cosine_png(path: &Path, record: &RunRecord, title: &str) -> Result<(), String> {
    register();
    let m = record.task_names.len();
    let pairs: Vec<(usize, usize)> = (0..m).flat_map(|i| (i + 1..m).map(move |j| (i, j))).collect();
    let np = pairs.len().max(1);
    let steps = record.history.len();
    let cols = steps.clamp(1, 300);
    let height = (170 + 60 * np).min(1400) as u32;

    let root = BitMapBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (main, side) = root.split_horizontally(850);
    let mut chart = ChartBuilder::on(&main)
        .caption(title, (FAMILY, 20))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(150)
        .build_cartesian_2d(0f64..steps.max(1) as f64, 0f64..np as f64)
        .map_err(err)?;
    let names = &record.task_names;
    let short = |t: usize| -> String {
        let n = &names[t];
        if n.chars().count() > 10 {
            format!("{t}")
        } else {
            format!("{t}:{n}")
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_y_axis()
        .x_desc("step")
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    // Pair names left of their strips (top strip = first pair).
    let text = TextStyle::from((FAMILY, 14).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (k, &(i, j)) in pairs.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, (np - k) as f64 - 0.5));
        main.draw(&Text::new(format!("{} vs {}", short(i), short(j)), (x - 8, y), text.clone())).map_err(err)?;
    }
    let mut cells = Vec::with_capacity(cols * pairs.len());
    for (k, &(i, j)) in pairs.iter().enumerate() {
        for b in 0..cols {
            let (s0, s1) = (b * steps / cols, ((b + 1) * steps / cols).max(b * steps / cols + 1).min(steps.max(1)));
            let vals: Vec<f64> =
                record.history[s0.min(steps)..s1.min(steps)].iter().filter_map(|s| s.metrics.cosine[i][j]).collect();
            let c = (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64);
            cells.push(Rectangle::new(
                [(s0 as f64, (np - k) as f64), (s1 as f64, (np - k - 1) as f64)],
                cos_color(c).filled(),
            ));
        }
    }
    chart.draw_series(cells).map_err(err)?;

    // Colour bar.
    let mut bar = ChartBuilder::on(&side)
        .margin_top(50)
        .margin_bottom(58)
        .margin_right(16)
        .y_label_area_size(56)
        .caption("cos", (FAMILY, 15))
        .build_cartesian_2d(0f64..1f64, -1f64..1f64)
        .map_err(err)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(5)
        .label_style((FAMILY, 13))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()
        .map_err(err)?;
    bar.draw_series((0..100).map(|k| {
        let y0 = -1.0 + 2.0 * k as f64 / 100.0;
        let y1 = y0 + 0.02;
        Rectangle::new([(0.0, y0), (1.0, y1)], cos_color(Some(y0 + 0.01)).filled())
    }))
    .map_err(err)?;
    root.present().map_err(err)
}
