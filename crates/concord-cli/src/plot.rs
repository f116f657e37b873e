//! PNG figures of a multi-task run (`train --preset … --plot DIR`), drawn with plotters' bitmap
//! backend. Text goes through ab_glyph with DejaVu Sans Mono embedded from `assets/` (license
//! beside it), so no system font library is needed.

use concord_core::train::{RunRecord, SampleConflict, TrainOptimizer};
use concord_figures::{draw_line_chart, Axis, Frame, Line, LineChart, Marker, Rgb, Theme};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};
use std::path::Path;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
pub(crate) const FAMILY: &str = "sans-serif";

/// Series colours (tasks, arms, parents): the figures' categorical palette (colorous'
/// TABLEAU10), as plotters draws them.
pub(crate) fn series(k: usize) -> RGBColor {
    let Rgb(r, g, b) = concord_figures::colour::category(k);
    RGBColor(r, g, b)
}

/// The palette's red (its third colour): spikes and the merged model.
pub(crate) const RED: usize = 2;
/// The palette's green (its fifth colour).
pub(crate) const GREEN: usize = 4;

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

/// The steps a record spans (its last recorded step + 1). A long run's history is thinned
/// (`train::History`: older steps kept sparsely), so the x axis comes from the steps the records
/// carry, never from how many records there are.
fn step_span(record: &RunRecord) -> usize {
    record.history.last().map_or(0, |r| r.step + 1)
}

/// The cosine strip of task pair (i, j): `cols` equal step bins over the run, each the mean of
/// the defined cosines recorded in it. Where thinning left a bin without records it holds the
/// last value recorded before it (a thinned history samples the run; grey would read as
/// "undefined"). Returns (first step, end step, cosine) per bin.
fn cosine_bins(record: &RunRecord, (i, j): (usize, usize), cols: usize) -> Vec<(usize, usize, Option<f64>)> {
    let span = step_span(record);
    let mut bins = Vec::with_capacity(cols);
    let mut held = None;
    let mut k = 0;
    for b in 0..cols {
        let (s0, s1) = (b * span / cols, ((b + 1) * span / cols).max(b * span / cols + 1));
        let mut vals = Vec::new();
        let mut seen = false;
        while k < record.history.len() && record.history[k].step < s1 {
            seen = true;
            vals.extend(record.history[k].metrics.cosine[i][j]);
            k += 1;
        }
        let c = (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64);
        if seen {
            held = c;
        }
        bins.push((s0, s1, if seen { c } else { held }));
    }
    bins
}

/// The figures' look on a 960-pixel-wide PNG: the shared line chart with the CLI's font.
pub(crate) fn theme() -> Theme<'static> {
    Theme { family: FAMILY, text_px: 14.0, title_px: 20.0, bold_title: false, ticks: 10, ..Theme::PAGE }
}

fn rgb(c: RGBColor) -> Rgb {
    Rgb(c.0, c.1, c.2)
}

/// Train loss (per step, on the batch) and test loss (where evaluated) of every task, log scale;
/// the line chart the page's loss panel draws too (concord-figures).
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
    let steps = step_span(record).max(1) as f64;

    let mut lines = Vec::new();
    for (t, name) in record.task_names.iter().enumerate() {
        let color = rgb(series(t));
        let train = record.history.iter().map(|s| (s.step as f64, s.losses[t].max(floor))).collect();
        lines.push(Line::solid(train, color, 1).alpha(0.55).label(format!("train {t}: {name}")));
        let test: Vec<(f64, f64)> = record
            .history
            .iter()
            .filter_map(|s| s.test_losses.as_ref().map(|l| (s.step as f64, l[t].max(floor))))
            .collect();
        if !test.is_empty() {
            lines.push(Line::solid(test, color, 3).marker(Marker::Dot(3)).label(format!("test {t}: {name}")));
        }
    }
    let marks = DynamicsMarks::of(record);
    // Task switches: dashed vertical lines, unlike the grid.
    let dark = Rgb(40, 40, 40);
    for (k, &s) in marks.switches.iter().enumerate() {
        let switch = Line::dashed(vec![(s as f64, lo), (s as f64, hi)], dark, 2);
        lines.push(if k == 0 { switch.label("task switch") } else { switch });
    }
    if !marks.spikes.is_empty() {
        // Along the bottom edge, clear of the legend and mostly of the loss curves.
        let y = lo * 1.25;
        let spikes = marks.spikes.iter().map(|&s| (s as f64, y)).collect();
        let label = format!("gradient spike (SPAM clipped, or score > √θ = {:.1})", marks.threshold.sqrt());
        lines.push(Line::markers(spikes, rgb(series(RED)), Marker::Up(8)).label(label));
    }
    let root = BitMapBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let chart = LineChart {
        frame: Frame { x: 96, y: 44, w: 840, h: 440 },
        x: Axis::fixed(0.0, steps),
        y: Axis::log_range(lo, hi),
        title,
        x_label: "step",
        x_label_below: false,
        y_label: Some("loss (log scale)"),
        lines,
        legend: true,
        theme: theme(),
    };
    draw_line_chart(&root, &chart)?;
    root.present().map_err(err)
}

/// SPAM's default spike threshold θ (dynamics.md §2), also the yardstick for Adam's spike score.
const SPIKE_THRESHOLD: f64 = 5000.0;

/// What `losses_png` marks of a run's training dynamics.
#[derive(Debug, PartialEq)]
struct DynamicsMarks {
    /// Where a sequential schedule moves on to the next task.
    switches: Vec<usize>,
    /// Recorded steps where SPAM clipped spikes or the spike score max |g|/√v exceeded √θ.
    spikes: Vec<usize>,
    /// θ: SPAM's own threshold, 5000 for the other optimizers.
    threshold: f64,
}

impl DynamicsMarks {
    fn of(record: &RunRecord) -> DynamicsMarks {
        let threshold = match record.config.optimizer {
            TrainOptimizer::Spam(p) => p.threshold,
            _ => SPIKE_THRESHOLD,
        };
        let switches = record.config.dynamics.schedule.switches(record.task_names.len(), step_span(record));
        let spikes = record
            .history
            .iter()
            .filter(|h| {
                h.dynamics
                    .as_ref()
                    .is_some_and(|d| d.spikes_clipped > 0 || d.spike_score.is_some_and(|g| g > threshold.sqrt()))
            })
            .map(|h| h.step)
            .collect();
        DynamicsMarks { switches, spikes, threshold }
    }
}

/// The figures' cosine scale (the page's too): −1 orange (conflict), 0 light, +1 blue
/// (agreement); undefined grey.
fn cos_color(c: Option<f64>) -> RGBColor {
    let Rgb(r, g, b) = concord_figures::colour::cosine(c);
    RGBColor(r, g, b)
}

/// A standing colour bar of the cosine scale, −1 … +1 with ticks every 0.5, filling `area`
/// less `margins` (top, bottom, left, right): the figures' bar, as the page's conflict map lays
/// it under its maps. Returns where the strip went.
pub(crate) fn cosine_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    (top, bottom, left, right): (i32, i32, i32, i32),
    heading: &str,
) -> Result<Frame, String> {
    let (w, h) = area.dim_in_pixel();
    let frame = Frame { x: left, y: top, w: (w as i32 - left - right).clamp(8, 24), h: h as i32 - top - bottom };
    let ticks = [(-1.0, "−1"), (-0.5, "−0.5"), (0.0, "0"), (0.5, "+0.5"), (1.0, "+1")];
    let colour = |v: f64| concord_figures::colour::cosine(Some(v));
    let bar = concord_figures::ColourBar {
        frame,
        lo: -1.0,
        hi: 1.0,
        colour: &colour,
        ticks: &ticks,
        heading,
        standing: true,
        theme: Theme { text_px: 13.0, ..theme() },
    };
    concord_figures::draw_colour_bar(area, &bar)?;
    Ok(frame)
}

/// One heatmap strip per task pair: the pairwise task-gradient cosine over the steps (binned to
/// at most 300 columns, each the mean of its defined cosines), with a colour bar.
pub fn cosine_png(path: &Path, record: &RunRecord, title: &str) -> Result<(), String> {
    register();
    let m = record.task_names.len();
    let pairs: Vec<(usize, usize)> = (0..m).flat_map(|i| (i + 1..m).map(move |j| (i, j))).collect();
    let np = pairs.len().max(1);
    let steps = step_span(record);
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
    for (k, &pair) in pairs.iter().enumerate() {
        for (s0, s1, c) in cosine_bins(record, pair, cols) {
            cells.push(Rectangle::new(
                [(s0 as f64, (np - k) as f64), (s1 as f64, (np - k - 1) as f64)],
                cos_color(c).filled(),
            ));
        }
    }
    chart.draw_series(cells).map_err(err)?;

    cosine_bar(&side, (50, 58, 16, 0), "cos")?;
    root.present().map_err(err)
}

/// Sample-level conflict over the steps (`StepRecord::samples`): per-sample coherence α, the
/// fraction of the batch whose tasks conflict, the share of Σ_i ‖Σ_t g_t(x_i)‖ the most opposed
/// k % carry, and that share's uniform level k/100 (dashed). Each series thin at every recorded
/// step and thick as its moving mean over about a fiftieth of the run; the legend below the
/// plot. `Ok(false)` without sample metrics in the record (GPU, MoE and analytic runs): nothing
/// is drawn.
pub fn samples_png(path: &Path, record: &RunRecord, title: &str) -> Result<bool, String> {
    let kept: Vec<(f64, &SampleConflict)> =
        record.history.iter().filter_map(|h| h.samples.as_ref().map(|s| (h.step as f64, s))).collect();
    let Some(k) = kept.first().map(|(_, s)| s.top_percent) else { return Ok(false) };
    register();
    let steps = step_span(record).max(1) as f64;
    let window = (kept.len() / 50).max(1);
    type Pick = fn(&SampleConflict) -> Option<f64>;
    let series: [(String, Pick, RGBColor); 3] = [
        ("coherence α of the per-sample gradients (of the summed loss)".into(), |s| s.coherence, series(0)),
        ("fraction of the batch whose tasks' gradients conflict".into(), |s| Some(s.conflicting_fraction), series(RED)),
        (format!("share of Σ_i ‖Σ_t g_t(x_i)‖ carried by the most opposed {k} %"), |s| s.opposing_share, series(GREEN)),
    ];
    let mut lines = Vec::new();
    for (_, pick, color) in &series {
        // Undefined values break the lines (NaN: the figure leaves a gap); the mean runs over
        // each defined stretch.
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (step, s) in &kept {
            match pick(s) {
                Some(v) => runs.last_mut().expect("one run").push((*step, v)),
                None if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(Vec::new()),
                None => {}
            }
        }
        let (mut thin, mut thick) = (Vec::new(), Vec::new());
        for run in runs.into_iter().filter(|r| !r.is_empty()) {
            thick.extend((0..run.len()).map(|i| {
                let part = &run[i.saturating_sub(window / 2)..(i + window.div_ceil(2)).min(run.len())];
                (run[i].0, part.iter().map(|p| p.1).sum::<f64>() / part.len() as f64)
            }));
            thin.extend(run);
            thin.push((f64::NAN, f64::NAN));
            thick.push((f64::NAN, f64::NAN));
        }
        lines.push(Line::solid(thin, rgb(*color), 1).alpha(0.3));
        lines.push(Line::solid(thick, rgb(*color), 3));
    }
    let level = k as f64 / 100.0;
    let grey = RGBColor(90, 90, 90);
    lines.push(Line::dashed(vec![(0.0, level), (steps, level)], rgb(grey), 1));
    let root = BitMapBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (plot, legend) = root.split_vertically(500);
    let chart = LineChart {
        frame: Frame { x: 84, y: 44, w: 852, h: 400 },
        x: Axis::fixed(0.0, steps),
        y: Axis::fixed(0.0, 1.02),
        title,
        x_label: "step",
        x_label_below: false,
        y_label: Some("on the step's batch"),
        lines,
        legend: false,
        theme: theme(),
    };
    draw_line_chart(&plot, &chart)?;

    // The legend, one entry a line under the plot.
    let text = TextStyle::from((FAMILY, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let mut entries: Vec<(String, RGBColor, bool)> = series.iter().map(|(l, _, c)| (l.clone(), *c, false)).collect();
    entries.push((format!("{k} %: that share if every sample carried as much"), grey, true));
    for (i, (label, color, dashed)) in entries.into_iter().enumerate() {
        let (x, y) = (80, 16 + 24 * i as i32);
        if dashed {
            for d in 0..3 {
                legend
                    .draw(&PathElement::new(vec![(x + 10 * d, y), (x + 10 * d + 5, y)], grey.stroke_width(1)))
                    .map_err(err)?;
            }
        } else {
            legend.draw(&PathElement::new(vec![(x, y), (x + 26, y)], color.stroke_width(3))).map_err(err)?;
        }
        legend.draw(&Text::new(label, (x + 34, y), text.clone())).map_err(err)?;
    }
    let note = format!("thin: every recorded step; thick: the mean over {window} of them");
    legend
        .draw(&Text::new(
            note,
            (80, 16 + 24 * 4),
            TextStyle::from((FAMILY, 13).into_font()).color(&grey).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::train::{train, Preset, HISTORY_CAP};

    /// A run longer than the history cap keeps a thinned history: the figures' x axis and the
    /// cosine bins go by the steps the records carry (they used to go by record position, so a
    /// 3 000-step run was drawn as ≈ 2 000 steps with its late records in early bins).
    #[test]
    fn thinned_histories_are_drawn_by_step() {
        let mut config = Preset::XorConflict.config();
        config.steps = HISTORY_CAP + 1000;
        let record = train(&config).unwrap();
        assert!(record.history.len() < config.steps, "the history is thinned ({} records)", record.history.len());
        assert_eq!(step_span(&record), config.steps);
        let bins = cosine_bins(&record, (0, 1), 300);
        assert_eq!((bins[0].0, bins[299].1), (0, config.steps), "the bins cover the run");
        assert!(bins.windows(2).all(|w| w[0].1 == w[1].0), "contiguous bins");
        // Every bin has a value (held over where thinning left it without records), and a bin
        // with records is their mean cosine.
        assert!(bins.iter().all(|b| b.2.is_some()));
        for &(s0, s1, c) in &bins {
            let vals: Vec<f64> = record
                .history
                .iter()
                .filter(|r| (s0..s1).contains(&r.step))
                .filter_map(|r| r.metrics.cosine[0][1])
                .collect();
            if !vals.is_empty() {
                let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                assert!((c.unwrap() - mean).abs() <= 1e-12, "bin {s0}..{s1}: {c:?} vs {mean}");
            }
        }
        // The figures draw.
        let dir = std::env::temp_dir().join(format!("concord-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        losses_png(&dir.join("losses.png"), &record, "thinned").unwrap();
        cosine_png(&dir.join("cosine.png"), &record, "thinned").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The marks of a sequential SPAM run: the switch at each switch_every (none at the end),
    /// and the steps whose record shows a clipped spike or a score over √θ — and only those.
    #[test]
    fn losses_mark_task_switches_and_spikes() {
        use concord_core::dynamics::TaskSchedule;
        let mut config = Preset::SinusoidPhases.config();
        config.steps = 12;
        config.dynamics.schedule = TaskSchedule::Sequential { switch_every: 4 };
        config.optimizer = TrainOptimizer::spam(config.optimizer.lr());
        let mut record = train(&config).unwrap();
        // Three tasks: task 1 from step 4, task 2 from step 8.
        let marks = DynamicsMarks::of(&record);
        assert_eq!((marks.switches.clone(), marks.threshold), (vec![4, 8], 5000.0));
        // Make two steps spiky: one clipped, one with a score just over √5000 ≈ 70.71.
        for h in &mut record.history {
            let d = h.dynamics.as_mut().expect("SPAM records its dynamics");
            d.spikes_clipped = usize::from(h.step == 3);
            d.spike_score = Some(if h.step == 7 { 70.72 } else { 70.70 });
        }
        assert_eq!(DynamicsMarks::of(&record).spikes, vec![3, 7]);
        let dir = std::env::temp_dir().join(format!("concord-plot-marks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        losses_png(&dir.join("losses.png"), &record, "marks").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
