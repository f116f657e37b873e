//! The per-point conflict map: for each run, at every cell of the heatmap grid, the smallest
//! pairwise cosine between the tasks' gradients of the shared trunk, each task pushed towards
//! its own prediction there (`conflict_map::HOW`) — blue where the tasks pull the trunk the same
//! way, red where they oppose — with the train points on top, dark where their tasks' labels
//! disagree. A GPU run's map comes from its engine at read-back (when it has the kernel); the
//! others' from concord-core on the CPU at the read-back parameters (`Session::
//! refresh_conflict_maps`, on a coarser grid drawn smoothed where the CPU budget asks for it).
//! Hovering a map, or focusing it and moving with the arrow keys, reads a cell's cosine.

use crate::chart::{self, INK, MUTED};
use crate::conflict_map::{train_disagreement, ConflictMap};
use crate::dom::download_png;
use crate::preset::Family;
use crate::session::{now_ms, use_session, Run, SessionInner as Arena, MAP_MS};
use crate::state::use_cfg;
use leptos::html::Canvas;
use leptos::prelude::*;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

/// Width of the canvas (CSS pixels), as the other panels.
const WIDTH: f64 = 760.0;
/// The largest map side on the canvas (CSS pixels).
const MAX_CELL: f64 = 240.0;
/// Colour of cells where a task’s gradient is zero (no direction): the figures’ (the CLI’s too).
const UNDEFINED: [u8; 3] = concord_figures::colour::UNDEFINED.array();

/// Where a run's map sits on the canvas: its run index and its square.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Placed {
    run: usize,
    x: f64,
    y: f64,
    size: f64,
}

/// The cell a keyboard user has moved to: (index among the placed maps, row, column).
type Cursor = Option<(usize, usize, usize)>;

/// Why the runs have no map (`None`: they have one).
fn why_no_map(a: &Arena) -> Option<&'static str> {
    match a.family()? {
        Family::Toy(_) => {
            return Some("No map here: a toy trains the point x itself — there is no network and no input plane.")
        }
        Family::Pareto => {
            return Some(
                "No map here: Pareto-MTL’s problem trains x ∈ ℝ²⁰ directly — there is no network and no input plane.",
            )
        }
        Family::GradNorm => {
            return Some("No map here: the inputs are 50-dimensional; the map is drawn over a 2-D input plane.")
        }
        Family::Sinusoid => return Some("No map here: the inputs are 1-D; the map is drawn over a 2-D input plane."),
        Family::TaskSet => {}
    }
    let built: Vec<&Run> = a.runs.iter().filter(|r| r.is_built()).collect();
    if built.is_empty() {
        return Some("No map: no run could be built with these settings.");
    }
    if built.iter().any(|r| r.moe().is_some()) {
        return Some("No map for MoE runs: the map sums each task’s gradient over the layers of a dense trunk. The MoE panel below compares the cosine inside each expert.");
    }
    if built.iter().all(|r| r.mlp().is_some_and(|m| m.num_tasks() < 2)) {
        return Some("No map: one task has no other task to conflict with.");
    }
    None
}

/// The map's cells (row 0 at the top) through the figures' heatmap and cosine scale, as the
/// CLI's `conflict-map --plot`; a cell without a direction is NaN, drawn `UNDEFINED`.
fn paint(ctx: &CanvasRenderingContext2d, map: &ConflictMap, x: f64, y: f64, size: f64) {
    let values: Vec<f64> = map.min_cos.iter().map(|c| c.map_or(f64::NAN, f64::from)).collect();
    let cosine = |v: f64| concord_figures::colour::cosine(Some(v));
    let f = chart::Frame { x, y, w: size, h: size };
    // A coarse CPU grid is drawn smoothed, as the heatmaps are.
    chart::heatmap(ctx, f, (map.side, map.side), &values, true, &cosine, chart::Scaling::Smooth);
}

/// The colour bar and the point legend, from (x, y).
fn colour_bar(ctx: &CanvasRenderingContext2d, x: f64, y: f64) {
    let w = 260.0;
    let top = y + 8.0;
    let ticks = [(-1.0, "−1"), (-0.5, "−0.5"), (0.0, "0"), (0.5, "+0.5"), (1.0, "+1")];
    let cosine = |v: f64| concord_figures::colour::cosine(Some(v));
    let strip = chart::Frame { x, y: top, w, h: 12.0 };
    chart::colour_bar(ctx, strip, (-1.0, 1.0), &cosine, &ticks, "cos of the tasks’ gradients at the point", false);
    chart::text(ctx, "← the tasks oppose", x, top + 42.0, "left", chart::FONT, MUTED);
    chart::text(ctx, "the tasks agree →", x + w, top + 42.0, "right", chart::FONT, MUTED);
    let lx = x + w + 36.0;
    chart::dot(ctx, lx, top + 2.0, 2.6, INK, Some("#ffffff"));
    chart::text(ctx, "train point whose tasks’ labels disagree", lx + 9.0, top + 6.0, "left", chart::FONT, INK);
    chart::dot(ctx, lx, top + 20.0, 1.8, "#ffffff", Some("#7a828a"));
    chart::text(ctx, "train point whose labels agree", lx + 9.0, top + 24.0, "left", chart::FONT, INK);
    ctx.set_fill_style_str(&chart::rgb(UNDEFINED));
    ctx.fill_rect(lx - 4.0, top + 33.0, 8.0, 8.0);
    ctx.set_stroke_style_str("#9aa3ad");
    ctx.set_line_width(1.0);
    ctx.stroke_rect(lx - 4.0, top + 33.0, 8.0, 8.0);
    chart::text(ctx, "no direction (a gradient is 0)", lx + 9.0, top + 41.0, "left", chart::FONT, INK);
}

/// Draw every run's map; returns where each one went.
fn draw(canvas: &HtmlCanvasElement, a: &Arena, cursor: Cursor) -> Vec<Placed> {
    let (Some(data), Some(extent)) = (&a.points, a.grid_extent()) else { return Vec::new() };
    let shown: Vec<usize> = (0..a.runs.len()).filter(|&i| a.runs[i].has_conflict_map()).collect();
    let cols = shown.len().max(1);
    let size = ((WIDTH - 16.0) / cols as f64 - 14.0).min(MAX_CELL);
    let top = 40.0;
    let height = top + size + 78.0;
    let Some(ctx) = chart::prepare(canvas, WIDTH, height) else { return Vec::new() };
    // Narrower than the drawing, the canvas shrinks as a whole (its maps stay square, and a
    // pointer's position scales the same way on both axes).
    let _ = web_sys::HtmlElement::style(canvas).set_property("height", "auto");
    let disagree = train_disagreement(data);
    let mut placed = Vec::with_capacity(shown.len());
    for (c, &i) in shown.iter().enumerate() {
        let run = &a.runs[i];
        let x0 = 8.0 + c as f64 * (size + 14.0);
        ctx.set_fill_style_str(run.colour);
        ctx.fill_rect(x0, 8.0, 10.0, 10.0);
        chart::text(&ctx, &run.label, x0 + 14.0, 17.0, "left", chart::FONT_TITLE, INK);
        match run.conflict.as_ref().filter(|m| m.extent == extent) {
            Some(map) => {
                paint(&ctx, map, x0, top, size);
                let share = map.conflict_share().map_or("—".to_string(), |s| format!("{:.0} %", 100.0 * s));
                let stale = if map.step == run.steps { String::new() } else { format!(" · step {}", map.step) };
                let engine = if map.engine == "webgpu" { "GPU" } else { "CPU" };
                let note = format!("cos < 0: {share} · {engine} {0}×{0}{stale}", map.side);
                chart::text(&ctx, &note, x0, 32.0, "left", chart::FONT, MUTED);
            }
            None => {
                ctx.set_fill_style_str("#f3f4f6");
                ctx.fill_rect(x0, top, size, size);
                chart::text(&ctx, "computing…", x0 + size / 2.0, top + size / 2.0, "center", chart::FONT, MUTED);
            }
        }
        let to_px =
            |p: [f64; 2]| (x0 + (p[0] + extent) / (2.0 * extent) * size, top + (extent - p[1]) / (2.0 * extent) * size);
        // Agreeing points first, so the disagreeing ones stay on top.
        for pass in [false, true] {
            for (k, p) in data.points.iter().take(data.n_train).enumerate() {
                if disagree[k] != pass {
                    continue;
                }
                let (px, py) = to_px(*p);
                if pass {
                    chart::dot(&ctx, px, py, 2.6, INK, Some("#ffffff"));
                } else {
                    chart::dot(&ctx, px, py, 1.8, "#ffffff", Some("#7a828a"));
                }
            }
        }
        ctx.set_stroke_style_str(run.colour);
        ctx.set_line_width(2.0);
        ctx.stroke_rect(x0, top, size, size);
        let spot = Placed { run: i, x: x0, y: top, size };
        if let (Some((k, r, col)), Some(map)) = (cursor, run.conflict.as_ref()) {
            if k == placed.len() {
                let h = size / map.side as f64;
                let (cx, cy) = (x0 + (col as f64 + 0.5) * h, top + (r as f64 + 0.5) * h);
                let half = (h / 2.0).max(4.0);
                ctx.set_line_width(2.0);
                ctx.set_stroke_style_str("#ffffff");
                ctx.stroke_rect(cx - half - 1.0, cy - half - 1.0, 2.0 * half + 2.0, 2.0 * half + 2.0);
                ctx.set_stroke_style_str(INK);
                ctx.set_line_width(1.2);
                ctx.stroke_rect(cx - half, cy - half, 2.0 * half, 2.0 * half);
            }
        }
        placed.push(spot);
    }
    colour_bar(&ctx, 8.0, top + size + 20.0);
    placed
}

/// What a cell says: the run, the point and its cosine in words.
fn describe(run: &Run, map: &ConflictMap, cell: usize) -> String {
    let h = 2.0 * map.extent / map.side as f64;
    let (r, c) = (cell / map.side, cell % map.side);
    let (x1, x2) = (-map.extent + (c as f64 + 0.5) * h, map.extent - (r as f64 + 0.5) * h);
    let what = match map.min_cos.get(cell).copied().flatten() {
        None => "no cosine: a task’s gradient is zero here".to_string(),
        Some(v) => {
            let words = if v < -0.1 {
                "the tasks oppose here"
            } else if v > 0.1 {
                "the tasks agree here"
            } else {
                "nearly orthogonal"
            };
            format!("cos = {v:+.2} — {words}")
        }
    };
    format!("{} at (x₁, x₂) = ({x1:.2}, {x2:.2}): {what}", run.label)
}

/// Refresh the CPU's maps in animation frames, `FRAME_MS` of it per frame, and redraw after
/// each, adding the time taken to `cost`; `pending` is cleared once every map is refreshed.
fn refresh_in_frames(
    session: crate::session::Session,
    pending: StoredValue<bool>,
    cost: StoredValue<f64>,
    redraw: impl Fn() + Copy + 'static,
) {
    request_animation_frame(move || {
        let t0 = now_ms();
        let done = session.with(|a| a.refresh_conflict_maps_within(t0 + FRAME_MS)).unwrap_or(true);
        cost.update_value(|c| *c += now_ms() - t0);
        redraw();
        if done {
            pending.set_value(false);
        } else {
            refresh_in_frames(session, pending, cost, redraw);
        }
    });
}

/// CPU time a frame may spend on maps, in ms (one map at least).
const FRAME_MS: f64 = 24.0;

const READOUT_HINT: &str =
    "Hover over a map — or focus it (Tab) and move with the arrow keys — to read a cell’s cosine.";

#[component]
pub fn ConflictMapPanel() -> impl IntoView {
    let cfg = use_cfg();
    let session = use_session();
    let aui = session.ui;
    let canvas = NodeRef::<Canvas>::new();
    let hidden = crate::state::panel_hidden("conflictMap");
    let last_refresh = StoredValue::new(f64::NEG_INFINITY);
    let pending = StoredValue::new(false);
    // The CPU time (ms) the last refresh took, over its frames.
    let cost = StoredValue::new(0.0);
    let placed = StoredValue::new(Vec::<Placed>::new());
    let cursor = RwSignal::new(None::<(usize, usize, usize)>);
    let readout = RwSignal::new(READOUT_HINT.to_string());
    let why = Memo::new(move |_| {
        aui.version.track();
        aui.csv.track();
        session.with(|a| why_no_map(a).map(str::to_string)).flatten()
    });
    let has_map = move || why.get().is_none();

    let redraw = move || {
        if let Some(c) = canvas.get_untracked() {
            let cur = cursor.get_untracked();
            if let Some(p) = session.with(|a| draw(&c, a, cur)) {
                placed.set_value(p);
            }
        }
    };
    // Maps follow the read-backs: the CPU's refreshed at most every MAP_MS while the runs train
    // and once they stop, from the next animation frame on (so a redraw of the heatmaps and a
    // refresh of the maps do not share one frame), about one run's map a frame.
    Effect::new(move |_| {
        aui.version.track();
        let playing = cfg.with(|s| s.play);
        let off = hidden() || !has_map();
        session.with(|a| a.set_maps_wanted(!off));
        if off {
            return;
        }
        let idle = session.with(|a| !playing && !a.requests_pending()).unwrap_or(true);
        // A costly refresh (a large model) waits longer, so maps take at most about a fifth of
        // the CPU while the runs train.
        let every = MAP_MS.max(4.0 * cost.get_value());
        let due = idle || now_ms() - last_refresh.get_value() >= every;
        if due && !pending.get_value() {
            pending.set_value(true);
            last_refresh.set_value(now_ms());
            cost.set_value(0.0);
            refresh_in_frames(session, pending, cost, redraw);
        } else {
            redraw();
        }
    });
    Effect::new(move |_| {
        cursor.track();
        redraw();
    });

    // The cell under a canvas position (CSS pixels of the canvas as drawn).
    let cell_at = move |cx: f64, cy: f64| -> Option<(usize, usize)> {
        placed
            .with_value(|ps| {
                ps.iter().enumerate().find_map(|(k, p)| {
                    let inside = cx >= p.x && cx < p.x + p.size && cy >= p.y && cy < p.y + p.size;
                    inside.then_some((k, *p))
                })
            })
            .and_then(|(k, p)| {
                session
                    .with(|a| {
                        let map = a.runs.get(p.run)?.conflict.as_ref()?;
                        let u = (cx - p.x) / p.size;
                        let v = (cy - p.y) / p.size;
                        let (r, c) = ((v * map.side as f64) as usize, (u * map.side as f64) as usize);
                        Some((k, (r.min(map.side - 1)) * map.side + c.min(map.side - 1)))
                    })
                    .flatten()
            })
    };
    let say = move |k: usize, cell: usize| {
        let text = placed.with_value(|ps| ps.get(k).copied()).and_then(|p| {
            session.with(|a| {
                let run = a.runs.get(p.run)?;
                Some(describe(run, run.conflict.as_ref()?, cell))
            })?
        });
        readout.set(text.unwrap_or_else(|| READOUT_HINT.to_string()));
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        let Some(c) = canvas.get_untracked() else { return };
        let rect = c.get_bounding_client_rect();
        if rect.width() <= 0.0 {
            return;
        }
        let scale = WIDTH / rect.width();
        let (x, y) = ((ev.client_x() as f64 - rect.left()) * scale, (ev.client_y() as f64 - rect.top()) * scale);
        match cell_at(x, y) {
            Some((k, cell)) => say(k, cell),
            None => readout.set(READOUT_HINT.to_string()),
        }
    };
    let on_key = move |ev: web_sys::KeyboardEvent| {
        let (dr, dc): (i64, i64) = match ev.key().as_str() {
            "ArrowUp" => (-1, 0),
            "ArrowDown" => (1, 0),
            "ArrowLeft" => (0, -1),
            "ArrowRight" => (0, 1),
            _ => return,
        };
        // The page's own keys (→ steps) do not apply while a map has the focus.
        ev.prevent_default();
        ev.stop_propagation();
        let step = if ev.shift_key() { 10 } else { 1 };
        let sides: Vec<usize> = placed.with_value(|ps| {
            ps.iter()
                .map(|p| {
                    session
                        .with(|a| a.runs.get(p.run).and_then(|r| r.conflict.as_ref()).map_or(1, |m| m.side))
                        .unwrap_or(1)
                })
                .collect()
        });
        if sides.is_empty() {
            return;
        }
        let (mut k, r, c) = cursor.get_untracked().unwrap_or((0, sides[0] / 2, sides[0] / 2));
        k = k.min(sides.len() - 1);
        let side = sides[k] as i64;
        let mut r = r as i64 + dr * step;
        let mut c = c as i64 + dc * step;
        // Past the left or right edge: the neighbouring run's map.
        if c >= side && k + 1 < sides.len() {
            k += 1;
            c = 0;
        } else if c < 0 && k > 0 {
            k -= 1;
            c = sides[k] as i64 - 1;
        }
        let side = sides[k] as i64;
        r = r.clamp(0, side - 1);
        c = c.clamp(0, side - 1);
        cursor.set(Some((k, r as usize, c as usize)));
        say(k, r as usize * side as usize + c as usize);
    };
    let on_focus = move |_| {
        if cursor.get_untracked().is_none() {
            let side = placed
                .with_value(|ps| ps.first().copied())
                .and_then(|p| session.with(|a| a.runs.get(p.run)?.conflict.as_ref().map(|m| m.side)).flatten());
            if let Some(side) = side {
                cursor.set(Some((0, side / 2, side / 2)));
                say(0, (side / 2) * side + side / 2);
            }
        }
    };
    let on_blur = move |_| {
        cursor.set(None);
        readout.set(READOUT_HINT.to_string());
    };

    view! {
        <section class="card figure-card" class:hidden=hidden data-panel="conflictMap">
            <div class="figure-head">
                <h2>"Where the tasks conflict: per-point gradient cosine"</h2>
                <button type="button" class="btn small" aria-label="Download the conflict map panel as PNG"
                    class:hidden=move || !has_map()
                    on:click=move |_| { if let Some(c) = canvas.get_untracked() { download_png(&c, "conflict-map"); } }>"PNG"</button>
            </div>
            <p class="hint" class:hidden=has_map data-testid="conflict-map-why">{move || why.get().unwrap_or_default()}</p>
            <canvas
                node_ref=canvas
                class:hidden=move || !has_map()
                tabindex="0"
                role="img"
                aria-label="Conflict map per method: the cosine between the tasks’ gradients at every point of the input plane (blue agree, red oppose), with the training points; arrow keys read a cell"
                on:mousemove=on_move
                on:mouseleave=move |_| { if cursor.get_untracked().is_none() { readout.set(READOUT_HINT.to_string()) } }
                on:keydown=on_key
                on:focus=on_focus
                on:blur=on_blur
            ></canvas>
            <p class="hint" aria-live="polite" data-testid="conflict-map-readout" class:hidden=move || !has_map()>
                {move || readout.get()}
            </p>
            <p class="hint" class:hidden=move || !has_map()>
                "At each point x of the plane: the cosine between the tasks’ gradients of the shared trunk, each task’s loss taken against its own prediction at x (no label needed), so the map shows where training on one task pulls the shared features against the other (for three or more tasks, the most opposed pair). The Task-gradient cosines panel has one number per step for the whole batch instead."
            </p>
        </section>
    }
}
