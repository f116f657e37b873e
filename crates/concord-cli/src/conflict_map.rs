//! `concord conflict-map --preset NAME [--method M] [--steps N] [--grid 100]
//! [--gradient own-prediction|output] [--seed S] --out DIR`: train a preset on the CPU, then map
//! where its tasks fight over the input plane: at every cell of a grid × grid lattice, the
//! cosines between the tasks' gradients of the shared trunk (`Mlp::point_grams` at the final
//! parameters, f64), and the same at every train point against its own labels.
//!
//! Files in DIR:
//! - `map.csv`: `x1,x2,cos_S_T… (every pair s < t),min_cos,norm_T…` per cell, row-major, row 0 at
//!   the top. A cosine with a zero gradient is undefined: an empty field.
//! - `train_points.csv`: `x1,x2,label_T…,labels_disagree,cos_S_T…,min_cos,norm_T…` per train
//!   point, the gradients of each task's loss at the point's own labels (`PointGradient::Loss`).
//!   A label is the value (a multi-output regression target: its values joined by `;`) or the
//!   class; `labels_disagree` is true when the tasks' labels are not all equal.
//! - `map.json`: the grid (extent, side, layout), the gradient, the run, every cell's min cos.
//! - `map.png`: the min cos as a diverging heatmap (blue: the tasks agree, cos > 0; white: 0;
//!   red: they oppose, cos < 0; grey: undefined), the train points on top marked by whether
//!   their labels disagree, a colour bar.
//! - `run.json`: the run record (config, final parameters, history): the map can be recomputed
//!   from it, and `concord train --config DIR/run.json` replays the run.
//!
//! The grid is the page's heatmap grid (concord-web's `grid.rs`, not part of its library, so
//! restated here): side × side cell centres over [−e, e]², e = 6, or 1.05 × the farthest
//! coordinate of the data (train and test points) when that is past 6.

use crate::plot::{register, FAMILY};
use crate::UsageError;
use clap::Args;
use concord_core::model::{Mlp, PointGradient, PointGrams, Target};
use concord_core::train::{Preset, TrainConfig, Trainer};
use indicatif::{ProgressBar, ProgressStyle};
use nalgebra::DMatrix;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The largest grid side (10⁶ cells).
pub const MAX_SIDE: usize = 1000;
/// Grid points per `point_grams` call (bounds the per-layer δ matrices' memory).
const CHUNK: usize = 4096;

#[derive(Args, Debug)]
pub struct ConflictMapArgs {
    /// A preset whose model is an MLP on 2-D inputs (xor-conflict, circle-vs-gauss, …).
    #[arg(long)]
    preset: String,
    /// The method (a name of `concord methods`, or the text form `cagrad:c=0.3`); default the
    /// preset's own.
    #[arg(long)]
    method: Option<String>,
    /// Training steps (default: the preset's).
    #[arg(long)]
    steps: Option<usize>,
    /// Cells per side of the map.
    #[arg(long, default_value_t = 100)]
    grid: usize,
    /// What each task's gradient at a cell is of: own-prediction (the task's loss against its own
    /// hard prediction: the page's map) or output (the raw output). The train points always use
    /// their labels.
    #[arg(long, default_value = "own-prediction")]
    gradient: String,
    /// Seed of the model init, the batch order and the methods (default: the preset's, 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Directory for map.csv, train_points.csv, map.json, map.png and run.json (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// `map.json`.
#[derive(Serialize)]
struct MapJson<'a> {
    preset: &'a str,
    method: String,
    steps: usize,
    seed: u64,
    /// The gradient of the cells: "own-prediction" or "output".
    mode: &'static str,
    side: usize,
    extent: f64,
    layout: &'static str,
    task_names: &'a [String],
    /// The task pairs of the cos columns, in order.
    pairs: Vec<[usize; 2]>,
    /// Per cell, in the layout's order: the smallest pairwise cosine (`null`: undefined).
    min_cos: Vec<Option<f64>>,
    /// Share of the cells with a defined min cos that have min cos < 0.
    conflicting_cells: Option<f64>,
    train_points: usize,
    /// Share of the train points whose loss gradients conflict (min cos < 0).
    conflicting_train_points: f64,
    /// The run stopped early (the map is at its last finite parameters).
    error: Option<&'a str>,
}

const LAYOUT: &str = "side × side cell centres over [−extent, extent]², row-major, row 0 at the top (x2 = +extent), column 0 at the left (x1 = −extent)";

/// The half-width of the map: 6, or 5 % past the farthest coordinate (the page's `grid::extent`).
pub fn extent(points: &[&DMatrix<f64>]) -> f64 {
    concord_web::grid::extent_for(points.iter().flat_map(|x| x.iter()).fold(0.0f64, |a, v| a.max(v.abs())))
}

/// `side` × `side` cell centres over [−extent, extent]², row 0 at the top: the page's grid.
pub fn grid_points(extent: f64, side: usize) -> Vec<[f64; 2]> {
    concord_web::grid::points_n(extent, side)
}

/// The presets `conflict-map` takes, for messages.
fn eligible() -> String {
    Preset::ALL
        .iter()
        .filter(|p| {
            let c = p.config();
            c.moe.is_none() && c.model.as_ref().is_some_and(|m| m.input_dim == 2 && m.heads.len() >= 2)
        })
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn configure(a: &ConflictMapArgs) -> Result<TrainConfig, UsageError> {
    let mut config = crate::run_config::from_preset(&a.preset)?.config;
    if let Some(m) = &a.method {
        crate::run_config::set(&mut config, "method", m)?;
    }
    if let Some(steps) = a.steps {
        crate::run_config::set(&mut config, "steps", &steps.to_string())?;
    }
    if let Some(seed) = a.seed {
        config.seed = seed;
    }
    let name = a.preset.trim();
    let why = match (&config.model, &config.moe) {
        (None, _) => Some("trains x directly (no model)".to_string()),
        (Some(_), Some(_)) => Some("is an MoE model (the map is for MLP trunks)".to_string()),
        (Some(m), None) if m.input_dim != 2 => {
            Some(format!("reads {}-D inputs (the map is over a 2-D plane)", m.input_dim))
        }
        (Some(m), None) if m.heads.len() < 2 => Some("has one task: there is no pair to compare".to_string()),
        _ => None,
    };
    if let Some(why) = why {
        return Err(UsageError(format!("conflict-map: '{name}' {why}; presets it maps: {}", eligible())));
    }
    Ok(config)
}

/// Every point's Gram, `CHUNK` rows at a time.
fn grams_of(mlp: &Mlp, params: &[f64], x: &DMatrix<f64>, how: PointGradient) -> Result<PointGrams, String> {
    let mut grams = Vec::with_capacity(x.nrows() * mlp.num_tasks().pow(2));
    for start in (0..x.nrows()).step_by(CHUNK) {
        let rows = x.rows(start, CHUNK.min(x.nrows() - start)).into_owned();
        grams.extend(mlp.point_grams(params, &rows, how, None)?.grams);
    }
    Ok(PointGrams { m: mlp.num_tasks(), grams })
}

fn pairs(m: usize) -> Vec<[usize; 2]> {
    (0..m).flat_map(|s| (s + 1..m).map(move |t| [s, t])).collect()
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// cos_S_T…,min_cos,norm_T… of point i.
fn gram_fields(g: &PointGrams, i: usize) -> Vec<String> {
    let m = g.m;
    let mut f: Vec<String> = pairs(m).iter().map(|&[s, t]| opt(g.cos(i, s, t))).collect();
    f.push(opt(g.min_cos(i)));
    f.extend((0..m).map(|t| g.gram(i)[t * m + t].max(0.0).sqrt().to_string()));
    f
}

fn gram_header(m: usize) -> Vec<String> {
    let mut h: Vec<String> = pairs(m).iter().map(|[s, t]| format!("cos_{s}_{t}")).collect();
    h.push("min_cos".into());
    h.extend((0..m).map(|t| format!("norm_{t}")));
    h
}

/// Task t's label of train point i, as text.
fn label(y: &Target, i: usize) -> String {
    match y {
        Target::Values(v) => v.row(i).iter().map(|x| x.to_string()).collect::<Vec<_>>().join(";"),
        Target::Classes(c) => c[i].to_string(),
    }
}

fn write_map_csv(path: &Path, points: &[[f64; 2]], g: &PointGrams) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "x1,x2,{}", gram_header(g.m).join(","))?;
    for (i, p) in points.iter().enumerate() {
        writeln!(f, "{},{},{}", p[0], p[1], gram_fields(g, i).join(","))?;
    }
    f.flush()
}

fn write_train_csv(
    path: &Path,
    x: &DMatrix<f64>,
    y: &[Target],
    g: &PointGrams,
    disagree: &[bool],
) -> std::io::Result<()> {
    let m = g.m;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let labels: Vec<String> = (0..m).map(|t| format!("label_{t}")).collect();
    writeln!(f, "x1,x2,{},labels_disagree,{}", labels.join(","), gram_header(m).join(","))?;
    for i in 0..x.nrows() {
        let labels: Vec<String> = y.iter().map(|t| label(t, i)).collect();
        writeln!(
            f,
            "{},{},{},{},{}",
            x[(i, 0)],
            x[(i, 1)],
            labels.join(","),
            disagree[i],
            gram_fields(g, i).join(",")
        )?;
    }
    f.flush()
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The heatmap of the cells' min cos with the train points on top and a colour bar.
fn map_png(
    path: &Path,
    g: &PointGrams,
    extent: f64,
    side: usize,
    train: &[[f64; 2]],
    disagree: &[bool],
    title: &str,
) -> Result<(), String> {
    register();
    let root = BitMapBackend::new(path, (940, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (main, bar_area) = root.split_horizontally(800);
    let mut chart = ChartBuilder::on(&main)
        .caption(title, (FAMILY, 17))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(-extent..extent, -extent..extent)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x1")
        .y_desc("x2")
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 15))
        .draw()
        .map_err(err)?;
    // The cells (row 0 at the top), filling the plotting area: the figures' heatmap.
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let (bx, by) = main.get_base_pixel();
    let cells: Vec<f64> = (0..side * side).map(|i| g.min_cos(i).unwrap_or(f64::NAN)).collect();
    let colour = |v: f64| concord_figures::colour::cosine(Some(v));
    let heatmap = concord_figures::Heatmap {
        frame: concord_figures::Frame {
            x: xs.start - bx,
            y: ys.start - by,
            w: xs.end - xs.start,
            h: ys.end - ys.start,
        },
        nx: side,
        ny: side,
        values: &cells,
        top_down: true,
        colour: &colour,
    };
    concord_figures::draw_heatmap(&main, &heatmap)?;
    let agree_style = RGBColor(35, 35, 35).filled();
    // White ringed in black: apart from both ends of the blue ↔ orange cells.
    let disagree_fill = WHITE.filled();
    chart
        .draw_series(
            train.iter().zip(disagree).filter(|(_, d)| !**d).map(|(p, _)| Circle::new((p[0], p[1]), 3, agree_style)),
        )
        .map_err(err)?
        .label("train point, labels agree")
        .legend(move |(x, y)| Circle::new((x + 8, y), 4, agree_style));
    chart
        .draw_series(
            train.iter().zip(disagree).filter(|(_, d)| **d).map(|(p, _)| Circle::new((p[0], p[1]), 4, disagree_fill)),
        )
        .map_err(err)?
        .label("train point, labels disagree")
        .legend(move |(x, y)| {
            EmptyElement::at((x + 8, y))
                + Circle::new((0, 0), 5, disagree_fill)
                + Circle::new((0, 0), 5, BLACK.stroke_width(1))
        });
    chart
        .draw_series(
            train
                .iter()
                .zip(disagree)
                .filter(|(_, d)| **d)
                .map(|(p, _)| Circle::new((p[0], p[1]), 4, BLACK.stroke_width(1))),
        )
        .map_err(err)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;

    // Colour bar: orange (oppose) at the bottom, blue (agree) at the top, each end named.
    let strip = crate::plot::cosine_bar(&bar_area, (80, 80, 40, 0), "")?;
    let centred = TextStyle::from((FAMILY, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
    let heading = TextStyle::from((FAMILY, 15).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
    let mid = strip.x + strip.w / 2;
    bar_area.draw(&Text::new("min cos", (mid + 10, strip.y - 44), heading)).map_err(err)?;
    bar_area.draw(&Text::new("agree", (mid, strip.y - 16), centred.clone())).map_err(err)?;
    bar_area.draw(&Text::new("oppose", (mid, strip.y + strip.h + 16), centred)).map_err(err)?;
    root.present().map_err(err)
}

/// Share of the defined values that are < 0 (`None` without a defined value).
fn negative_share(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (mut neg, mut all) = (0usize, 0usize);
    for v in values.flatten() {
        all += 1;
        neg += usize::from(v < 0.0);
    }
    (all > 0).then(|| neg as f64 / all as f64)
}

pub fn run(a: ConflictMapArgs) -> Result<(), UsageError> {
    let how = PointGradient::parse(&a.gradient).map_err(|e| UsageError(format!("--gradient: {e}")))?;
    if how == PointGradient::Loss {
        return Err(UsageError(
            "--gradient loss needs labels, and the grid's cells have none (train_points.csv has the loss gradients at the train labels): use own-prediction or output".into(),
        ));
    }
    if !(2..=MAX_SIDE).contains(&a.grid) {
        return Err(UsageError(format!("--grid must be 2–{MAX_SIDE}, got {}", a.grid)));
    }
    let config = configure(&a)?;
    let mut trainer = Trainer::new(config).map_err(UsageError)?;
    std::fs::create_dir_all(&a.out).map_err(|e| UsageError(format!("cannot create {}: {e}", a.out.display())))?;

    let steps = trainer.config().steps;
    let bar = if std::io::stderr().is_terminal() { ProgressBar::new(steps as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {human_pos}/{human_len} steps, {elapsed} elapsed, eta {eta}")
            .expect("static template"),
    );
    trainer.run_to_end(|k| bar.set_position(k as u64));
    bar.finish_and_clear();

    let mlp = trainer.mlp().ok_or_else(|| UsageError("conflict-map needs an MLP run".into()))?;
    let params = trainer.params();
    let (train_x, train_y) = trainer.train_set().ok_or_else(|| UsageError("the run has no train set".into()))?;
    let mut sets = vec![train_x];
    sets.extend(trainer.test_data().map(|(x, _)| x));
    let e = extent(&sets);
    let points = grid_points(e, a.grid);
    let grid_x = DMatrix::from_fn(points.len(), 2, |r, c| points[r][c]);
    let cells = grams_of(mlp, params, &grid_x, how).map_err(UsageError)?;
    let train = mlp.point_grams(params, train_x, PointGradient::Loss, Some(train_y)).map_err(UsageError)?;
    let disagree: Vec<bool> = (0..train_x.nrows())
        .map(|i| {
            let first = label(&train_y[0], i);
            train_y.iter().any(|y| label(y, i) != first)
        })
        .collect();

    let dir = &a.out;
    let io = |r: std::io::Result<()>, f: &str| {
        r.map_err(|e| UsageError(format!("cannot write {}: {e}", dir.join(f).display())))
    };
    io(write_map_csv(&dir.join("map.csv"), &points, &cells), "map.csv")?;
    io(write_train_csv(&dir.join("train_points.csv"), train_x, train_y, &train, &disagree), "train_points.csv")?;
    let record = trainer.record();
    let method = record.config.method.to_text();
    let min_cos: Vec<Option<f64>> = (0..cells.len()).map(|i| cells.min_cos(i)).collect();
    let conflicting_cells = negative_share(min_cos.iter().copied());
    let conflicting_train = negative_share((0..train.len()).map(|i| train.min_cos(i))).unwrap_or(0.0);
    let doc = MapJson {
        preset: a.preset.trim(),
        method: method.clone(),
        steps: record.steps_done,
        seed: record.config.seed,
        mode: how.name(),
        side: a.grid,
        extent: e,
        layout: LAYOUT,
        task_names: trainer.task_names(),
        pairs: pairs(cells.m),
        min_cos,
        conflicting_cells,
        train_points: train.len(),
        conflicting_train_points: conflicting_train,
        error: record.error.as_deref(),
    };
    io(std::fs::write(dir.join("map.json"), serde_json::to_string(&doc).expect("the map serialises")), "map.json")?;
    io(
        std::fs::write(dir.join("run.json"), serde_json::to_string(&record).expect("the record serialises")),
        "run.json",
    )?;
    let train_pts: Vec<[f64; 2]> = (0..train_x.nrows()).map(|i| [train_x[(i, 0)], train_x[(i, 1)]]).collect();
    let title =
        format!("{} · {} · {} steps: min cos of the task gradients ({})", doc.preset, method, doc.steps, how.name());
    map_png(&dir.join("map.png"), &cells, e, a.grid, &train_pts, &disagree, &title)
        .map_err(|e| UsageError(format!("cannot draw {}: {e}", dir.join("map.png").display())))?;

    let pct = |v: Option<f64>| v.map_or("undefined".into(), |v| format!("{:.1} %", 100.0 * v));
    let _ = writeln!(
        std::io::stdout().lock(),
        "{} · {} · {} steps: {}×{} map ({}) over [−{e}, {e}]²: min cos < 0 on {} of the cells and {} of the {} train points (loss gradients); files in {}",
        doc.preset,
        method,
        doc.steps,
        a.grid,
        a.grid,
        how.name(),
        pct(conflicting_cells),
        pct(Some(conflicting_train)),
        train.len(),
        dir.display()
    );
    if let Some(e) = &record.error {
        eprintln!("concord: warning: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_is_the_pages() {
        // Cell centres, row 0 at the top, column 0 at the left.
        let p = grid_points(6.0, 4);
        assert_eq!(p.len(), 16);
        assert_eq!(p[0], [-4.5, 4.5]);
        assert_eq!(p[3], [4.5, 4.5]);
        assert_eq!(p[12], [-4.5, -4.5]);
        assert_eq!(extent(&[&DMatrix::from_row_slice(1, 2, &[5.9, -2.0])]), 6.0);
        assert!((extent(&[&DMatrix::from_row_slice(1, 2, &[1.0, -10.0])]) - 10.5).abs() < 1e-12);
    }
}
