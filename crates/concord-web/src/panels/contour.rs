//! The figure: filled, quantised contours of the chosen loss with contour lines, a colour bar,
//! axes, the Pareto segment, the average-loss optimum, and the animated trajectories.
//!
//! The static part (contours, axes, references) is drawn once per problem/view into an
//! off-screen canvas; each redraw copies it and adds the trails, start markers and current dots.

use crate::chart;
use crate::plot::{self, Marker, CONTOUR_CELLS, DOMAIN};
use crate::session::{use_session, Run, SessionInner};
use crate::state::use_cfg;
use crate::state::View;
use concord_core::{problems::CagradToy, ProblemKind};
use leptos::prelude::*;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};

/// Logical canvas size and plot geometry (CSS pixels).
const W: f64 = 690.0;
const H: f64 = 600.0;
const PX: f64 = 58.0;
const PY: f64 = 30.0;
const S: f64 = 520.0;
const BAR_X: f64 = PX + S + 20.0;
const BAR_W: f64 = 16.0;
const FONT: &str = "13px 'DejaVu Sans', system-ui, sans-serif";

fn to_px(x: [f64; 2]) -> (f64, f64) {
    let (lo, hi) = (DOMAIN[0], DOMAIN[1]);
    (PX + (x[0] - lo) / (hi - lo) * S, PY + (hi - x[1]) / (hi - lo) * S)
}

struct StaticLayer {
    key: (ProblemKind, View, u32),
    canvas: HtmlCanvasElement,
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten()?.dyn_into::<CanvasRenderingContext2d>().ok()
}

fn device_ratio() -> f64 {
    web_sys::window().map(|w| w.device_pixel_ratio()).unwrap_or(1.0).clamp(1.0, 3.0)
}

pub fn view_title(view: View) -> &'static str {
    match view {
        View::Average => "Average loss ½(L₁ + L₂)",
        View::L1 => "Task 1 loss L₁",
        View::L2 => "Task 2 loss L₂",
    }
}

fn build_static(problem: ProblemKind, view: View, dpr: f64) -> Option<HtmlCanvasElement> {
    let doc = web_sys::window()?.document()?;
    let canvas: HtmlCanvasElement = doc.create_element("canvas").ok()?.dyn_into().ok()?;
    canvas.set_width((W * dpr).round() as u32);
    canvas.set_height((H * dpr).round() as u32);
    let ctx = context(&canvas)?;

    // Levels from the contour grid.
    let n = CONTOUR_CELLS;
    let grid = plot::sample_grid(problem, view, n);
    let (min, max) = grid.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let levels = plot::nice_levels(min, max, 14);
    let bands = levels.len() - 1;

    // Filled bands, one sample per device pixel.
    let fill_n = ((S * dpr).round() as usize).min(1600);
    let toy = problem.toy();
    let (lo, hi) = (DOMAIN[0], DOMAIN[1]);
    let mut values = Vec::with_capacity(fill_n * fill_n);
    for j in 0..fill_n {
        let x2 = hi - (j as f64 + 0.5) / fill_n as f64 * (hi - lo);
        for i in 0..fill_n {
            let x1 = lo + (i as f64 + 0.5) / fill_n as f64 * (hi - lo);
            values.push(plot::view_value(&toy, view, [x1, x2]));
        }
    }
    // The figures' heatmap pixels (row 0 is x₂ = hi, on top), one per device pixel.
    let band = |v: f64| concord_figures::colour::loss_band(plot::band_of(&levels, v), bands);
    let data = concord_figures::heatmap::rgba(fill_n, fill_n, &values, true, &band).ok()?;
    ctx.set_fill_style_str("#ffffff");
    ctx.fill_rect(0.0, 0.0, W * dpr, H * dpr);
    if let Ok(img) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&data), fill_n as u32, fill_n as u32) {
        let _ = ctx.put_image_data(&img, (PX * dpr).round(), (PY * dpr).round());
    }
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);

    // Contour lines.
    ctx.save();
    ctx.begin_path();
    ctx.rect(PX, PY, S, S);
    ctx.clip();
    ctx.set_stroke_style_str("rgba(35, 40, 45, 0.42)");
    ctx.set_line_width(0.75);
    let cell = S / n as f64;
    for &level in &levels[1..levels.len() - 1] {
        ctx.begin_path();
        for seg in plot::isoline(&grid, n, level) {
            ctx.move_to(PX + seg[0][0] * cell, PY + S - seg[0][1] * cell);
            ctx.line_to(PX + seg[1][0] * cell, PY + S - seg[1][1] * cell);
        }
        ctx.stroke();
    }
    ctx.restore();

    // Frame, ticks, labels.
    ctx.set_stroke_style_str("#3a3f44");
    ctx.set_line_width(1.0);
    ctx.stroke_rect(PX, PY, S, S);
    ctx.set_fill_style_str("#2b3036");
    ctx.set_font(FONT);
    for t in [-10.0, -5.0, 0.0, 5.0, 10.0] {
        let (x, _) = to_px([t, 0.0]);
        let (_, y) = to_px([0.0, t]);
        ctx.begin_path();
        ctx.move_to(x, PY + S);
        ctx.line_to(x, PY + S + 5.0);
        ctx.move_to(PX, y);
        ctx.line_to(PX - 5.0, y);
        ctx.stroke();
        ctx.set_text_align("center");
        ctx.set_text_baseline("top");
        let _ = ctx.fill_text(&plot::fmt_tick(t, 0), x, PY + S + 8.0);
        ctx.set_text_align("right");
        ctx.set_text_baseline("middle");
        let _ = ctx.fill_text(&plot::fmt_tick(t, 0), PX - 8.0, y);
    }
    ctx.set_font("italic 15px 'DejaVu Serif', Georgia, serif");
    ctx.set_text_align("center");
    ctx.set_text_baseline("top");
    let _ = ctx.fill_text("x₁", PX + S / 2.0, PY + S + 28.0);
    ctx.save();
    let _ = ctx.translate(PX - 42.0, PY + S / 2.0);
    let _ = ctx.rotate(-std::f64::consts::FRAC_PI_2);
    ctx.set_text_baseline("middle");
    let _ = ctx.fill_text("x₂", 0.0, 0.0);
    ctx.restore();

    // Colour bar: the figures' standing beside the map, its bands the map's (low at the bottom).
    let every = if bands > 9 { 2 } else { 1 };
    // As few decimals as print every labelled level exactly (0.25 steps need two).
    let decimals = (0..4)
        .find(|d| levels.iter().all(|l| ((l * 10f64.powi(*d)) - (l * 10f64.powi(*d)).round()).abs() < 1e-6))
        .unwrap_or(3) as usize;
    let labels: Vec<(f64, String)> = levels.iter().step_by(every).map(|l| (*l, plot::fmt_tick(*l, decimals))).collect();
    let ticks: Vec<(f64, &str)> = labels.iter().map(|(l, s)| (*l, s.as_str())).collect();
    let bar_title = match view {
        View::Average => "½(L₁+L₂)",
        View::L1 => "L₁",
        View::L2 => "L₂",
    };
    let strip = chart::Frame { x: BAR_X, y: PY, w: BAR_W, h: S };
    chart::colour_bar(&ctx, strip, (levels[0], levels[bands]), &band, &ticks, bar_title, true);

    // Pareto segment: a broad translucent band, as in the papers' figures.
    let [a, b] = CagradToy::PARETO_SEGMENT;
    let (ax, ay) = to_px(a);
    let (bx, by) = to_px(b);
    ctx.set_line_cap("round");
    ctx.set_stroke_style_str("rgba(255,255,255,0.85)");
    ctx.set_line_width(8.0);
    ctx.begin_path();
    ctx.move_to(ax, ay);
    ctx.line_to(bx, by);
    ctx.stroke();
    ctx.set_stroke_style_str("rgba(20,20,20,0.62)");
    ctx.set_line_width(5.0);
    ctx.stroke();
    ctx.set_line_cap("butt");

    Some(canvas)
}

fn trace_star(ctx: &CanvasRenderingContext2d, x: f64, y: f64, r: f64) {
    ctx.begin_path();
    for (i, p) in plot::star_points(x, y, r).iter().enumerate() {
        if i == 0 {
            ctx.move_to(p[0], p[1]);
        } else {
            ctx.line_to(p[0], p[1]);
        }
    }
    ctx.close_path();
}

fn draw_runs(ctx: &CanvasRenderingContext2d, runs: &[Run], problem: ProblemKind) {
    ctx.save();
    ctx.begin_path();
    ctx.rect(PX, PY, S, S);
    ctx.clip();
    ctx.set_line_join("round");
    ctx.set_line_cap("round");
    // Halos first, so a later trail never hides an earlier one completely.
    for pass in 0..2 {
        for (run, trail) in runs.iter().map(|r| (r, &r.trail)) {
            if trail.len() < 2 {
                continue;
            }
            ctx.begin_path();
            for (i, p) in trail.iter().enumerate() {
                let (x, y) = to_px(*p);
                if i == 0 {
                    ctx.move_to(x, y);
                } else {
                    ctx.line_to(x, y);
                }
            }
            if pass == 0 {
                ctx.set_stroke_style_str("rgba(255,255,255,0.8)");
                ctx.set_line_width(4.6);
            } else {
                ctx.set_stroke_style_str(run.colour);
                ctx.set_line_width(2.2);
            }
            ctx.stroke();
        }
    }
    // The average-loss optimum, above the trails but below the current points.
    let (ox, oy) = to_px(plot::average_optimum(problem));
    trace_star(ctx, ox, oy, 13.0);
    ctx.set_fill_style_str("#ffd21f");
    ctx.fill();
    ctx.set_stroke_style_str("#1b1b1b");
    ctx.set_line_width(1.3);
    ctx.stroke();
    // Current points.
    for run in runs {
        let (x, y) = to_px(run.position());
        ctx.begin_path();
        let _ = ctx.arc(x, y, 5.0, 0.0, std::f64::consts::TAU);
        ctx.set_fill_style_str(run.colour);
        ctx.fill();
        ctx.set_stroke_style_str("#ffffff");
        ctx.set_line_width(1.6);
        ctx.stroke();
    }
    // Start markers (one per start), as outlines on top: a run still at its start shows
    // its dot inside the marker.
    let mut seen = Vec::new();
    for (start, start_index) in runs.iter().filter_map(|r| r.start) {
        if seen.contains(&start_index) {
            continue;
        }
        seen.push(start_index);
        let (x, y) = to_px(start);
        plot::trace_marker(ctx, Marker::for_start(start_index), x, y, 7.5);
        ctx.set_stroke_style_str("rgba(255,255,255,0.9)");
        ctx.set_line_width(4.0);
        ctx.stroke();
        ctx.set_stroke_style_str("#1d2125");
        ctx.set_line_width(1.8);
        ctx.stroke();
    }
    ctx.restore();
}

/// Redraw the figure on `canvas`.
fn draw(
    canvas: &HtmlCanvasElement,
    problem: ProblemKind,
    view: View,
    layer: &mut Option<StaticLayer>,
    s: &SessionInner,
) {
    let dpr = device_ratio();
    let (w, h) = ((W * dpr).round() as u32, (H * dpr).round() as u32);
    if canvas.width() != w || canvas.height() != h {
        canvas.set_width(w);
        canvas.set_height(h);
    }
    let Some(ctx) = context(canvas) else { return };
    let key = (problem, view, (dpr * 100.0).round() as u32);
    if layer.as_ref().map(|l| l.key) != Some(key) {
        *layer = build_static(problem, view, dpr).map(|canvas| StaticLayer { key, canvas });
    }
    let _ = ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
    if let Some(l) = layer.as_ref() {
        let _ = ctx.draw_image_with_html_canvas_element(&l.canvas, 0.0, 0.0);
    }
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    // While the session still holds runs of another problem (just switched), skip them.
    if s.is_toy() && s.state().map(|st| st.problem()) == Some(problem) {
        draw_runs(&ctx, &s.runs, problem)
    }
}

fn legend_line(colour: &'static str) -> impl IntoView {
    view! {
        <svg class="swatch-svg" width="30" height="14" viewBox="0 0 30 14" aria-hidden="true">
            <line x1="2" y1="7" x2="28" y2="7" stroke="white" stroke-width="5" stroke-linecap="round"></line>
            <line x1="2" y1="7" x2="28" y2="7" stroke=colour stroke-width="2.6" stroke-linecap="round"></line>
            <circle cx="28" cy="7" r="3.6" fill=colour stroke="white" stroke-width="1.2"></circle>
        </svg>
    }
}

fn legend_marker(marker: Marker) -> impl IntoView {
    view! {
        <svg class="swatch-svg" width="18" height="18" viewBox="0 0 18 18" aria-hidden="true">
            <path d=marker.svg_path(9.0, 9.0, 5.5) fill="white" stroke="#1d2125" stroke-width="1.6"></path>
        </svg>
    }
}

fn star_path() -> String {
    let pts = plot::star_points(9.0, 9.5, 8.0);
    let mut d = String::new();
    for (i, p) in pts.iter().enumerate() {
        d.push_str(&format!("{}{:.2} {:.2}", if i == 0 { "M" } else { "L" }, p[0], p[1]));
    }
    d.push('Z');
    d
}

#[component]
pub fn ContourPanel() -> impl IntoView {
    let cfg = use_cfg();
    let session = use_session();
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    // The contours, drawn once per problem and view (this panel's own cache).
    let layer = StoredValue::new_local(None::<StaticLayer>);

    Effect::new(move |_| {
        let _ = session.ui.version.get();
        let (problem, view) = cfg.with(|s| (s.problem(), s.view));
        if let Some(el) = canvas.get() {
            layer.update_value(|l| {
                session.with(|s| draw(&el, problem, view, l, s));
            });
        }
    });

    let view_button = move |v: View, label: &'static str| {
        view! {
            <button
                type="button"
                role="radio"
                class="seg-btn"
                class:active=move || cfg.with(|s| s.view == v)
                aria-checked=move || cfg.with(|s| s.view == v).to_string()
                on:click=move |_| cfg.update(|s| s.view = v)
            >
                {label}
            </button>
        }
    };

    let methods_legend = move || {
        cfg.with(|s| s.arena.clone())
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let colour = crate::session::colour_for(&m, i, true);
                view! { <li>{legend_line(colour)}<span>{m.label()}</span></li> }
            })
            .collect_view()
    };
    let starts_legend = move || {
        cfg.with(|s| s.problem())
            .published_starts()
            .iter()
            .enumerate()
            .map(|(i, st)| {
                let text = format!("({}, {})", plot::fmt_tick(st[0], 1), plot::fmt_tick(st[1], 1));
                view! { <li>{legend_marker(Marker::for_start(i))}<span>{text}</span></li> }
            })
            .collect_view()
    };
    let optimum_text = move || {
        let o = plot::average_optimum(cfg.with(|s| s.problem()));
        format!("½(L₁+L₂) optimum ({}, {})", plot::fmt_tick(o[0], 2), plot::fmt_tick(o[1], 4))
    };
    let aria = move || {
        let s = cfg.get();
        format!(
            "Contour plot of {} over x₁, x₂ in [−11, 11], with the trajectories of {} from {} starts",
            view_title(s.view),
            s.arena.iter().map(|m| m.label()).collect::<Vec<_>>().join(", "),
            s.problem().published_starts().len()
        )
    };

    view! {
        <figure class="card figure-card" data-panel="toy" class:hidden=crate::state::panel_hidden("toy")>
            <div class="figure-head">
                <h2>{move || view_title(cfg.with(|s| s.view))}</h2>
                <div
                    class="seg"
                    role="radiogroup"
                    aria-label="Loss shown in the contour plot"
                    class:hidden=move || cfg.with(|s| s.is_hidden("view"))
                >
                    {view_button(View::Average, "½(L₁+L₂)")}
                    {view_button(View::L1, "L₁")}
                    {view_button(View::L2, "L₂")}
                </div>
            </div>
            <canvas
                node_ref=canvas
                class="plot"
                width=W as u32
                height=H as u32
                role="img"
                aria-label=aria
            ></canvas>
            <figcaption class="legend">
                <div class="legend-group">
                    <h3>"Methods"</h3>
                    <ul>{methods_legend}</ul>
                </div>
                <div class="legend-group">
                    <h3>"Starts"</h3>
                    <ul>{starts_legend}</ul>
                </div>
                <div class="legend-group">
                    <h3>"Reference"</h3>
                    <ul>
                        <li>
                            <svg class="swatch-svg" width="30" height="14" viewBox="0 0 30 14" aria-hidden="true">
                                <line x1="3" y1="7" x2="27" y2="7" stroke="rgba(20,20,20,0.62)" stroke-width="5" stroke-linecap="round"></line>
                            </svg>
                            <span>"Pareto set (x₁ ∈ [−7, 7], x₂ = −8.3552)"</span>
                        </li>
                        <li>
                            <svg class="swatch-svg" width="18" height="19" viewBox="0 0 18 19" aria-hidden="true">
                                <path d=star_path() fill="#ffd21f" stroke="#1b1b1b" stroke-width="1.2"></path>
                            </svg>
                            <span>{optimum_text}</span>
                        </li>
                        <li>
                            <svg class="swatch-svg" width="18" height="18" viewBox="0 0 18 18" aria-hidden="true">
                                <circle cx="9" cy="9" r="5" fill="#555" stroke="white" stroke-width="1.5"></circle>
                            </svg>
                            <span>"current point"</span>
                        </li>
                    </ul>
                </div>
            </figcaption>
        </figure>
    }
}
