//! The network view: one arena run's trunk and task heads drawn as TF Playground draws its
//! network — input nodes, every hidden neuron a small heatmap of its activation over the plane,
//! the heads' outputs, links blue (w > 0) / orange (w < 0) and thickened by |w| — with each
//! trunk neuron ringed by its per-neuron conflict (concord-core's `metrics::neuron_conflicts`).
//!
//! **Which gradients.** Each task's gradient of its own mean loss over the whole training set,
//! unweighted, at the run's read-back parameters, in f64 on the CPU (the page's never-stepped
//! twin holds the model and the data). So the numbers are a function of the weights alone and
//! `concord neurons --config export.json --run K` reproduces them from an exported run.
//!
//! **Throttle.** Nothing is computed while the panel is hidden. A new computation starts only
//! when the run's state changed and at least max(400 ms, 8 × the last one's time) has passed,
//! so a large model while playing costs at most ~1/9 of the page's time.
//!
//! **Thumbnails**: each neuron's activation on a coarse `THUMB` × `THUMB` grid over the
//! heatmap's square (the points through the run's input features). For a WebGPU run they come
//! from the GPU: while the panel shows the run, its read-backs ask the engine for the grid
//! prediction *and* the trunk's activations at the grid rows `grid::thumbnail_rows` (the same
//! forward pass, `Backend::predict_hidden`); a CPU run, or a GPU run whose last read-back did not
//! bring them (the panel was hidden or showed another run then), uses `Mlp::hidden_activations`
//! on the CPU. The input nodes show their features over the plane, each scaled to its largest
//! |value|. `window.concord.network()` returns the last result (`thumbnailsSource`: "gpu" or
//! "cpu", and `thumbSample`: a few activations with their points, for the browser test).
//!
//! **Links**: a layer of more than `LINKS_PER_LAYER` links draws only that many, the largest
//! |w| (the hint says how many of how many); opacity grows with |w| / the layer's largest.

use crate::dom::{install_computed_hook, with_computed, yield_now, Computed, ComputedCell};
use crate::session::{now_ms, use_session, Session};
use crate::state::use_cfg;
use concord_core::metrics::{neuron_conflicts, NeuronConflict};
use concord_core::model::{LossKind, Mlp};
use leptos::html::Canvas;
use leptos::prelude::*;
use serde::Serialize;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{HtmlCanvasElement, ImageData};

/// Thumbnail cells per side (TF averages its 100 × 100 grid down to 10 × 10): a subgrid of the
/// heatmap grid, so the GPU's grid pass gives them.
const THUMB: usize = crate::grid::THUMB;
/// The most links drawn between two columns: a 64 × 64 layer's 4096 would be a thicket.
const LINKS_PER_LAYER: usize = 160;
/// Cells per side of the enlarged heatmap (the heatmap panel's own grid).
const LARGE: usize = crate::grid::GRID;
/// The input column's centre: room on its left for the feature labels (sin x₁, x₁x₂).
const LEFT: f64 = 72.0;
/// Room right of the heads' column for their labels.
const RIGHT: f64 = 90.0;
/// Pixels between two columns of nodes.
const COLUMN_GAP: f64 = 120.0;
/// Height the tallest column aims at before nodes shrink (and, at 8 px, the panel scrolls).
const COLUMN_HEIGHT: f64 = 330.0;
/// TF Playground's colours: orange (negative) → grey → blue (positive).
pub const BLUE: [u8; 3] = [0x08, 0x77, 0xbd];
pub const ORANGE: [u8; 3] = [0xf5, 0x93, 0x22];
const GREY: [u8; 3] = [0xe8, 0xea, 0xeb];

/// Everything one computation produced (serialised for the test hook).
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkResult {
    pub run: usize,
    pub run_label: String,
    pub steps: usize,
    /// Why nothing is drawn (a mixture of experts, a toy), if so.
    pub note: Option<String>,
    pub inputs: Vec<String>,
    pub hidden: Vec<usize>,
    pub tasks: Vec<String>,
    /// `[layer][neuron]`: cosines, norms and the most negative pair of each trunk neuron.
    pub layers: Vec<Vec<NeuronConflict>>,
    pub params: Vec<f64>,
    pub extent: f64,
    pub compute_ms: f64,
    /// Where the thumbnails were computed: "gpu" (the run's engine, with its grid), "cpu", or
    /// "none" (no 2-D plane).
    pub thumbnails_source: &'static str,
    pub thumb_side: usize,
    /// A few thumbnail activations with their plane points (the browser test recomputes them).
    pub thumb_sample: Vec<ThumbSample>,
    /// (drawn, total) links of the widest-linked layer pair (thinned above `LINKS_PER_LAYER`).
    pub links_shown: (usize, usize),
    /// `inputs_maps[i]`: THUMB² values of input feature i over the plane, scaled to [−1, 1].
    #[serde(skip)]
    inputs_maps: Vec<Vec<f64>>,
    /// `acts[layer][neuron]`: THUMB² activations, row 0 at the top.
    #[serde(skip)]
    acts: Vec<Vec<Vec<f64>>>,
    /// Per head: THUMB² outputs mapped to [−1, 1].
    #[serde(skip)]
    heads: Vec<Vec<f64>>,
    #[serde(skip)]
    mlp: Option<Mlp>,
    /// The run's input features (None: the raw 2-D point), for the enlarged thumbnail.
    #[serde(skip)]
    features: Option<concord_core::data::FeatureSet>,
}

/// One thumbnail activation: layer `layer`'s neuron `neuron` at the 2-D point `point`.
#[derive(Clone, Serialize)]
pub struct ThumbSample {
    pub layer: usize,
    pub neuron: usize,
    pub point: [f64; 2],
    pub value: f64,
}

/// The input nodes' labels: the run's input features (TF's x₁, x₁², sin x₁, …), else x₁ … xₙ.
pub fn input_labels(features: Option<&concord_core::data::FeatureSet>, input_dim: usize) -> Vec<String> {
    if let Some(f) = features {
        return f.features().iter().map(|f| f.label().to_string()).collect();
    }
    const SUB: [char; 10] = ['₀', '₁', '₂', '₃', '₄', '₅', '₆', '₇', '₈', '₉'];
    (1..=input_dim)
        .map(|i| format!("x{}", i.to_string().chars().map(|c| SUB[(c as u8 - b'0') as usize]).collect::<String>()))
        .collect()
}

/// TF's diverging scale on [−1, 1]: orange → grey → blue (clamped; NaN is grey).
pub fn diverging(v: f64) -> [u8; 3] {
    let v = if v.is_finite() { v.clamp(-1.0, 1.0) } else { 0.0 };
    let (end, t) = if v < 0.0 { (ORANGE, -v) } else { (BLUE, v) };
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    [mix(GREY[0], end[0]), mix(GREY[1], end[1]), mix(GREY[2], end[2])]
}

fn css(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// A head's raw output as a value in [−1, 1]: 2σ(o) − 1 for BCE logits (a softmax head: the
/// first class's probability, likewise), the value itself (clamped) for MSE.
fn head_value(loss: LossKind, row: &[f64]) -> f64 {
    match loss {
        LossKind::Bce => (row[0] / 2.0).tanh(),
        LossKind::Mse => row[0].clamp(-1.0, 1.0),
        LossKind::SoftmaxCe => {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
            2.0 * (row[0] - max).exp() / sum - 1.0
        }
    }
}

/// The whole computation for run `k` (synchronous; the caller yields first).
fn compute(session: Session, k: usize) -> Result<NetworkResult, String> {
    let t0 = now_ms();
    session
        .with(|a| -> Result<NetworkResult, String> {
            let tasks = a.task_names.clone();
            let extent = a.grid_extent().unwrap_or(6.0);
            let r = a.runs.get(k).ok_or("that run is gone")?;
            let mut out = NetworkResult {
                run: k,
                run_label: r.label.clone(),
                steps: r.steps,
                note: None,
                inputs: Vec::new(),
                hidden: Vec::new(),
                tasks,
                layers: Vec::new(),
                params: Vec::new(),
                extent,
                compute_ms: 0.0,
                thumbnails_source: "none",
                thumb_side: THUMB,
                thumb_sample: Vec::new(),
                links_shown: (0, 0),
                inputs_maps: Vec::new(),
                acts: Vec::new(),
                heads: Vec::new(),
                mlp: None,
                features: None,
            };
            let Some(mlp) = r.mlp() else {
                out.note = Some(if r.moe().is_some() {
                    "This run is a mixture of experts: the network view draws MLP runs only (the experts and the router are not drawn).".into()
                } else {
                    "This run has no network to draw.".into()
                });
                return Ok(out);
            };
            let params = r.params().ok_or("the run has no parameters yet")?;
            let (x, targets) = r.train_set().ok_or("the run has no training set")?;
            let grads = mlp.gradients(params, x, targets)?;
            out.layers = neuron_conflicts(mlp.layout(), &grads.shared_jacobian)?;
            out.inputs = input_labels(r.config.features.as_ref(), mlp.config().input_dim);
            out.hidden = mlp.config().hidden.clone();
            // 2-D points, through the run's input features as the trainers map them.
            if r.config.features.is_some() || mlp.config().input_dim == 2 {
                let points = crate::grid::points_n(extent, THUMB);
                let x = concord_core::data::feature_rows(r.config.features.as_ref(), &points);
                // The GPU's activations are of the read-back parameters, i.e. `params`.
                let gpu = r.gpu_thumbnails(extent).filter(|a| r.on_gpu() && a.iter().all(|m| m.nrows() == points.len()));
                let acts = match gpu {
                    Some(a) => {
                        out.thumbnails_source = "gpu";
                        a.to_vec()
                    }
                    None => {
                        out.thumbnails_source = "cpu";
                        mlp.hidden_activations(params, &x)?
                    }
                };
                out.acts = acts.iter().map(|m| (0..m.ncols()).map(|j| m.column(j).iter().copied().collect()).collect()).collect();
                // Corners and middle of the plane, the first few neurons of each layer.
                let at = [0, THUMB - 1, THUMB * (THUMB / 2) + THUMB / 2, THUMB * THUMB - 1];
                for (l, m) in acts.iter().enumerate() {
                    for j in 0..m.ncols().min(4) {
                        for &i in &at {
                            out.thumb_sample.push(ThumbSample { layer: l, neuron: j, point: points[i], value: m[(i, j)] });
                        }
                    }
                }
                // TF's input nodes: each feature over the plane, scaled to its largest |value|.
                out.inputs_maps = (0..x.ncols())
                    .map(|c| {
                        let col = x.column(c);
                        let scale = col.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-12);
                        col.iter().map(|v| v / scale).collect()
                    })
                    .collect();
                // The heads' thumbnails: the GPU's grid outputs at the same rows, else the CPU's.
                let rows = crate::grid::thumbnail_rows();
                let gpu_outs = r.grid_outputs(extent).filter(|_| out.thumbnails_source == "gpu");
                let outs = match gpu_outs {
                    Some(o) => o.iter().map(|m| m.select_rows(rows.iter())).collect(),
                    None => mlp.forward(params, &x)?,
                };
                out.heads = outs
                    .iter()
                    .zip(&mlp.config().heads)
                    .map(|(o, h)| {
                        (0..o.nrows())
                            .map(|i| head_value(h.loss, &o.row(i).iter().copied().collect::<Vec<_>>()))
                            .collect()
                    })
                    .collect();
            }
            out.params = params.to_vec();
            out.mlp = Some(mlp.clone());
            out.features = r.config.features.clone();
            out.links_shown = links(&out).1;
            Ok(out)
        })
        .ok_or_else(|| "the page is busy".to_string())?
        .map(|mut r| {
            r.compute_ms = now_ms() - t0;
            r
        })
}

/// Paint `values` (side², row 0 at the top, in [−1, 1]) onto a side × side canvas.
fn paint(canvas: &HtmlCanvasElement, values: &[f64], side: usize) {
    canvas.set_width(side as u32);
    canvas.set_height(side as u32);
    let Ok(Some(ctx)) = canvas.get_context("2d") else { return };
    let Ok(ctx) = ctx.dyn_into::<web_sys::CanvasRenderingContext2d>() else { return };
    let mut rgba = vec![0u8; side * side * 4];
    for (i, v) in values.iter().take(side * side).enumerate() {
        let c = diverging(*v);
        rgba[i * 4..i * 4 + 4].copy_from_slice(&[c[0], c[1], c[2], 255]);
    }
    if let Ok(img) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), side as u32, side as u32) {
        let _ = ctx.put_image_data(&img, 0.0, 0.0);
    }
}

/// Node geometry: the side of a node and the pitch between two nodes of a column. Nodes stay
/// at least 12 px (a wide layer scrolls), so the conflict ring around them stays readable.
fn node_size(tallest: usize) -> (f64, f64) {
    let pitch = (COLUMN_HEIGHT / tallest.max(1) as f64).clamp(15.0, 44.0);
    let size = (pitch * 0.72).clamp(12.0, 30.0).floor();
    (size, pitch)
}

/// Where node `i` of a column of `n` sits (its centre), columns centred on the tallest.
/// A short column (the inputs, the heads, a narrow layer next to a wide one) keeps its own, larger
/// nodes: each column is sized for its own count and centred on the tallest.
fn node_pos(col: usize, i: usize, n: usize, tallest: usize) -> (f64, f64) {
    let (_, pitch) = node_size(n);
    let (_, tall_pitch) = node_size(tallest);
    let top = (tallest as f64 * tall_pitch - n as f64 * pitch) / 2.0;
    (LEFT + col as f64 * COLUMN_GAP, 20.0 + top + (i as f64 + 0.5) * pitch)
}

/// One link: from node `from` of column `col` to node `to` of column `col + 1`, weight `w`.
struct Link {
    col: usize,
    from: usize,
    to: usize,
    w: f64,
}

/// The links to draw, per column pair: every one, or the `LINKS_PER_LAYER` of largest |w|.
/// Also (drawn, total) of the pair with the most links.
fn links(r: &NetworkResult) -> (Vec<Vec<Link>>, (usize, usize)) {
    let Some(mlp) = &r.mlp else { return (Vec::new(), (0, 0)) };
    let layout = mlp.layout();
    let trunk = layout.trunk.len();
    let mut out = Vec::new();
    let mut widest = (0, 0);
    for (l, slice) in layout.trunk.iter().chain(layout.heads.iter()).enumerate() {
        let is_head = l >= trunk;
        if is_head && l > trunk {
            continue; // the heads share one column pair: collected with the first
        }
        let mut pair = Vec::new();
        if is_head {
            for (t, head) in layout.heads.iter().enumerate() {
                for k in 0..head.fan_in {
                    // A head of several outputs (softmax): the mean of its rows' weights from k.
                    let w = (0..head.fan_out).map(|o| r.params[head.weight.start + o * head.fan_in + k]).sum::<f64>()
                        / head.fan_out as f64;
                    pair.push(Link { col: trunk, from: k, to: t, w });
                }
            }
        } else {
            for j in 0..slice.fan_out {
                for k in 0..slice.fan_in {
                    pair.push(Link { col: l, from: k, to: j, w: r.params[slice.weight.start + j * slice.fan_in + k] });
                }
            }
        }
        let total = pair.len();
        if total > LINKS_PER_LAYER {
            pair.sort_by(|a, b| b.w.abs().total_cmp(&a.w.abs()));
            pair.truncate(LINKS_PER_LAYER);
        }
        if total > widest.1 {
            widest = (pair.len(), total);
        }
        out.push(pair);
    }
    (out, widest)
}

/// The links as one SVG (hundreds of paths: one string, not one reactive node each).
fn links_svg(r: &NetworkResult, width: f64, height: f64) -> String {
    let Some(mlp) = &r.mlp else { return String::new() };
    let widths: Vec<usize> = std::iter::once(mlp.config().input_dim)
        .chain(r.hidden.iter().copied())
        .chain([mlp.layout().heads.len()])
        .collect();
    let tallest = widths.iter().copied().max().unwrap_or(1);
    let (pairs, _) = links(r);
    // TF maps |w| ∈ [0, 5] to 1–10 px; many links get thinner so the picture stays legible.
    let drawn: usize = pairs.iter().map(Vec::len).sum();
    let thin = if drawn > 400 {
        0.35
    } else if drawn > 100 {
        0.6
    } else {
        1.0
    };
    let mut s = format!(
        r#"<svg class="network-links" width="{width}" height="{height}" viewBox="0 0 {width} {height}" aria-hidden="true">"#
    );
    for pair in &pairs {
        let strongest = pair.iter().fold(0.0f64, |a, l| a.max(l.w.abs())).max(1e-12);
        for l in pair {
            let (x1, y1) = node_pos(l.col, l.from, widths[l.col], tallest);
            let (x2, y2) = node_pos(l.col + 1, l.to, widths[l.col + 1], tallest);
            let colour = if l.w >= 0.0 { css(BLUE) } else { css(ORANGE) };
            let stroke = ((1.0 + l.w.abs().min(5.0) * 1.8) * thin).max(0.3);
            // Weak links fade: the strong ones carry the picture.
            let opacity = 0.2 + 0.7 * l.w.abs() / strongest;
            let xm = (x1 + x2) / 2.0;
            s.push_str(&format!(
                r#"<path d="M{x1:.1} {y1:.1}C{xm:.1} {y1:.1} {xm:.1} {y2:.1} {x2:.1} {y2:.1}" stroke="{colour}" stroke-width="{stroke:.2}" stroke-opacity="{opacity:.2}" fill="none"><title>w = {w:.3}</title></path>"#,
                w = l.w
            ));
        }
    }
    s.push_str("</svg>");
    s
}

fn fmt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:+.3}").replace('-', "−")).unwrap_or_else(|| "undefined".into())
}

/// The numbers of one neuron, as one line (tooltip, aria-label).
fn neuron_text(n: &NeuronConflict, tasks: &[String]) -> String {
    let name = |t: usize| tasks.get(t).cloned().unwrap_or_else(|| format!("task {}", t + 1));
    let mut parts = vec![format!("Layer {}, neuron {}", n.layer + 1, n.index + 1)];
    for i in 0..n.norms.len() {
        for j in i + 1..n.norms.len() {
            parts.push(format!("cos({}, {}) = {}", name(i), name(j), fmt(n.cosines[i][j])));
        }
    }
    for (t, g) in n.norms.iter().enumerate() {
        parts.push(format!("‖g {}‖ = {g:.3e}", name(t)));
    }
    parts.join("; ")
}

#[component]
pub fn NetworkPanel() -> impl IntoView {
    let _cfg = use_cfg();
    let hidden = crate::state::panel_hidden("network");
    let session = use_session();
    let ui = session.ui;
    let store: ComputedCell<NetworkResult> =
        StoredValue::new_local(std::rc::Rc::new(RefCell::new(Computed::default())));
    // `network()` on this playground's hook object.
    install_computed_hook(session.with(|s| s.hook.clone()), "network", store, None);
    let run = RwSignal::new(0usize);
    // Bumped when a result lands: the view and the canvases redraw.
    let version = RwSignal::new(0u64);
    // (run, session version) of the last computation, when it finished and how long it took.
    let done_key = StoredValue::new((usize::MAX, u64::MAX));
    let last = StoredValue::new((f64::NEG_INFINITY, 0.0f64));
    let focus = RwSignal::new(None::<(usize, usize)>);
    let enlarged = RwSignal::new(None::<(usize, usize)>);
    let large = NodeRef::<Canvas>::new();
    let container = NodeRef::<leptos::html::Div>::new();
    // The run shown asks its GPU read-backs for the thumbnails too (nothing while hidden).
    Effect::new(move |_| {
        let shown = (!hidden()).then(|| run.get());
        session.with(|a| a.set_network_run(shown));
    });
    on_cleanup(move || {
        session.with(|a| a.set_network_run(None));
    });

    let labels = move || {
        ui.version.track();
        session.with(|a| a.runs.iter().map(|r| r.label.clone()).collect::<Vec<_>>()).unwrap_or_default()
    };

    // The throttle: a timer polls "is a new computation due?" (see the module comment).
    let tick = move || {
        if hidden() || with_computed(store, |s| s.busy).unwrap_or(true) {
            return;
        }
        let key = (run.get_untracked(), ui.version.get_untracked());
        let (at, took) = last.get_value();
        if key == done_key.get_value() || now_ms() - at < (8.0 * took).max(400.0) {
            return;
        }
        with_computed(store, |s| s.busy = true);
        leptos::task::spawn_local(async move {
            yield_now().await;
            let out = compute(session, key.0);
            with_computed(store, |s| {
                s.busy = false;
                match out {
                    Ok(r) => {
                        last.set_value((now_ms(), r.compute_ms));
                        s.error = None;
                        s.result = Some(r);
                    }
                    Err(e) => {
                        last.set_value((now_ms(), 0.0));
                        s.error = Some(e);
                    }
                }
            });
            done_key.set_value(key);
            version.update(|v| *v += 1);
        });
    };
    let timer = Closure::<dyn Fn()>::new(tick);
    let id = web_sys::window().and_then(|w| {
        w.set_interval_with_callback_and_timeout_and_arguments_0(timer.as_ref().unchecked_ref(), 150).ok()
    });
    timer.forget();
    on_cleanup(move || {
        if let (Some(w), Some(id)) = (web_sys::window(), id) {
            w.clear_interval_with_handle(id);
        }
    });

    // Paint the thumbnails (and the enlarged map) once the view of a new result is in the DOM.
    Effect::new(move |_| {
        version.track();
        enlarged.track();
        leptos::task::spawn_local(async move {
            yield_now().await;
            let Some(root) = container.get_untracked() else { return };
            let Ok(list) = root.query_selector_all("canvas[data-thumb]") else { return };
            with_computed(store, |s| {
                let Some(r) = &s.result else { return };
                for i in 0..list.length() {
                    let Some(c) = list.item(i).and_then(|n| n.dyn_into::<HtmlCanvasElement>().ok()) else { continue };
                    let num = |k: &str| c.get_attribute(k).and_then(|v| v.parse::<usize>().ok());
                    let values = match (c.get_attribute("data-thumb").as_deref(), num("data-l"), num("data-j")) {
                        (Some("hidden"), Some(l), Some(j)) => r.acts.get(l).and_then(|a| a.get(j)),
                        (Some("input"), _, Some(j)) => r.inputs_maps.get(j),
                        (Some("head"), _, Some(j)) => r.heads.get(j),
                        _ => None,
                    };
                    if let Some(v) = values {
                        paint(&c, v, THUMB);
                    }
                }
                if let (Some((l, j)), Some(c), Some(mlp)) = (enlarged.get_untracked(), large.get_untracked(), &r.mlp) {
                    let points = crate::grid::points_n(r.extent, LARGE);
                    let x = concord_core::data::feature_rows(r.features.as_ref(), &points);
                    if let Ok(acts) = mlp.hidden_activations(&r.params, &x) {
                        if let Some(m) = acts.get(l).filter(|m| j < m.ncols()) {
                            paint(&c, &m.column(j).iter().copied().collect::<Vec<_>>(), LARGE);
                        }
                    }
                }
            });
        });
    });

    let on_key = move |ev: web_sys::KeyboardEvent| {
        if ev.key() == "Escape" {
            enlarged.set(None);
        }
    };

    let body = move || {
        version.track();
        with_computed(store, |s| {
            if let Some(e) = &s.error {
                return view! { <p class="hint">{format!("Could not compute: {e}")}</p> }.into_any();
            }
            let Some(r) = &s.result else {
                return view! { <p class="hint">"Computing…"</p> }.into_any();
            };
            if let Some(note) = &r.note {
                return view! { <p class="hint" data-testid="network-note">{note.clone()}</p> }.into_any();
            }
            let m = r.mlp.as_ref().map_or(1, Mlp::num_tasks);
            let widths: Vec<usize> = std::iter::once(r.inputs.len()).chain(r.hidden.iter().copied()).chain([m]).collect();
            let tallest = widths.iter().copied().max().unwrap_or(1);
            let (_, pitch) = node_size(tallest);
            let width = LEFT + RIGHT + (widths.len() - 1) as f64 * COLUMN_GAP;
            let height = 40.0 + tallest as f64 * pitch;
            let svg = links_svg(r, width, height);
            // A node of a column of `n`, centred at (x, y).
            let place = |x: f64, y: f64, n: usize| {
                let size = node_size(n).0;
                format!("left:{:.1}px;top:{:.1}px;width:{size}px;height:{size}px", x - size / 2.0, y - size / 2.0)
            };
            let mut nodes: Vec<AnyView> = Vec::new();
            for (i, name) in r.inputs.iter().enumerate() {
                let (x, y) = node_pos(0, i, r.inputs.len(), tallest);
                let title = format!("{name} over the plane (scaled to its largest |value|)");
                nodes.push(
                    view! {
                        <div class="net-node net-input" style=place(x, y, r.inputs.len()) title=title>
                            <canvas data-thumb="input" data-j=i></canvas>
                            <span class="net-label net-label-left">{name.clone()}</span>
                        </div>
                    }
                    .into_any(),
                );
            }
            // A ring of at least 3 px; a hairline (the node's padding over the page's ink colour)
            // parts it from the thumbnail, whose colours are the same scale.
            for (l, layer) in r.layers.iter().enumerate() {
                let ring = if node_size(layer.len()).0 >= 20.0 { 4.0 } else { 3.0 };
                for n in layer {
                    let (x, y) = node_pos(l + 1, n.index, layer.len(), tallest);
                    let text = neuron_text(n, &r.tasks);
                    let border = match n.min_cos {
                        Some(c) => format!("border:{ring}px solid {}", css(diverging(c))),
                        None => format!("border:{ring}px dashed #9aa0a6"),
                    };
                    let (lj, jj) = (l, n.index);
                    let cos_attr = n.min_cos.map(|c| format!("{c}")).unwrap_or_default();
                    nodes.push(
                        view! {
                            // A real button: Tab reaches it, Enter and Space click it.
                            <button
                                type="button"
                                class="net-node net-neuron"
                                data-testid="network-neuron"
                                data-l=lj
                                data-j=jj
                                data-cos=cos_attr
                                aria-label=text
                                style=format!("{};{border}", place(x, y, layer.len()))
                                on:mouseenter=move |_| focus.set(Some((lj, jj)))
                                on:mouseleave=move |_| focus.set(None)
                                on:focus=move |_| focus.set(Some((lj, jj)))
                                on:blur=move |_| focus.set(None)
                                on:click=move |_| enlarged.set(Some((lj, jj)))
                            >
                                <canvas data-thumb="hidden" data-l=lj data-j=jj></canvas>
                            </button>
                        }
                        .into_any(),
                    );
                }
            }
            for t in 0..m {
                let (x, y) = node_pos(widths.len() - 1, t, m, tallest);
                let name = r.tasks.get(t).cloned().unwrap_or_else(|| format!("task {}", t + 1));
                let title = format!("{name}: the head's output");
                nodes.push(
                    view! {
                        <div class="net-node net-head" style=place(x, y, m) title=title>
                            <canvas data-thumb="head" data-j=t></canvas>
                            <span class="net-label net-label-right">{name}</span>
                        </div>
                    }
                    .into_any(),
                );
            }
            let mut heads_row = vec!["Input".to_string()];
            heads_row.extend((1..=r.hidden.len()).map(|l| format!("Layer {l}")));
            heads_row.push("Heads".into());
            let col_titles = heads_row
                .into_iter()
                .enumerate()
                .map(|(c, t)| view! { <span class="net-col" style=format!("left:{:.0}px", LEFT + c as f64 * COLUMN_GAP - 40.0)>{t}</span> })
                .collect_view();
            view! {
                <div class="net-cols" style=format!("width:{width:.0}px")>{col_titles}</div>
                <div class="net-canvas" style=format!("width:{width:.0}px;height:{height:.0}px")>
                    <div inner_html=svg></div>
                    {nodes}
                </div>
            }
            .into_any()
        })
        .unwrap_or_else(|| view! { <p class="hint">"Computing…"</p> }.into_any())
    };

    let tooltip = move || {
        let (l, j) = focus.get()?;
        version.track();
        with_computed(store, |s| {
            let r = s.result.as_ref()?;
            let n = r.layers.get(l)?.get(j)?;
            let name = |t: usize| r.tasks.get(t).cloned().unwrap_or_else(|| format!("task {}", t + 1));
            let mut rows = Vec::new();
            for a in 0..n.norms.len() {
                for b in a + 1..n.norms.len() {
                    let worst = n.min_pair == Some([a, b]) && n.norms.len() > 2;
                    rows.push(format!(
                        "cos({}, {}) = {}{}",
                        name(a),
                        name(b),
                        fmt(n.cosines[a][b]),
                        if worst { "  ← ring" } else { "" }
                    ));
                }
            }
            for (t, g) in n.norms.iter().enumerate() {
                rows.push(format!("‖∇ {}‖ = {g:.3e}", name(t)));
            }
            Some(view! {
                <div class="net-tooltip" role="status" data-testid="network-tooltip">
                    <strong>{format!("Layer {}, neuron {}", l + 1, j + 1)}</strong>
                    {rows.into_iter().map(|t| view! { <div>{t}</div> }).collect_view()}
                </div>
            })
        })
        .flatten()
    };

    let status = move || {
        version.track();
        with_computed(store, |s| {
            s.result.as_ref().map(|r| {
                let thumbs = match r.thumbnails_source {
                    "gpu" => " Thumbnails from the GPU's grid pass (f32).",
                    "cpu" => " Thumbnails on the CPU (f64).",
                    _ => "",
                };
                let (shown, total) = r.links_shown;
                let links = if shown < total {
                    format!(" Links: the {shown} of largest |w| of {total} per layer are drawn.")
                } else {
                    String::new()
                };
                format!(
                    "{} at step {}: gradients computed in {:.0} ms (f64, CPU).{thumbs}{links}",
                    r.run_label, r.steps, r.compute_ms
                )
            })
        })
        .flatten()
        .unwrap_or_default()
    };

    view! {
        <section class="card figure-card network-card" class:hidden=hidden data-panel="network" on:keydown=on_key>
            <div class="figure-head">
                <h2>"Network"</h2>
                <label class="inline">
                    "Run "
                    <select
                        data-testid="network-run"
                        aria-label="Which run the network view shows"
                        on:change=move |ev| run.set(event_target_value(&ev).parse().unwrap_or(0))
                    >
                        {move || {
                            labels()
                                .into_iter()
                                .enumerate()
                                .map(|(k, l)| view! { <option value=k selected=move || run.get() == k>{l}</option> })
                                .collect_view()
                        }}
                    </select>
                </label>
            </div>
            <div class="net-scroll" node_ref=container>
                {body}
            </div>
            {tooltip}
            <Show when=move || enlarged.get().is_some()>
                <div class="net-large" data-testid="network-large">
                    <div class="figure-head">
                        <strong>
                            {move || enlarged.get().map(|(l, j)| format!("Layer {}, neuron {}: activation over the plane", l + 1, j + 1))}
                        </strong>
                        <button type="button" class="btn small" on:click=move |_| enlarged.set(None)>
                            "Close (Esc)"
                        </button>
                    </div>
                    <canvas node_ref=large class="net-large-canvas" role="img" aria-label="The chosen neuron's activation over the plane"></canvas>
                </div>
            </Show>
            <div class="net-legend">
                <span class="net-ramp net-ramp-cos"></span>
                <span>
                    "Ring: cosine of the tasks' gradients on the neuron's incoming weights and bias — "
                    <b class="net-orange">"orange −1 (the tasks pull it apart)"</b>
                    ", grey 0, "
                    <b class="net-blue">"blue +1 (they agree)"</b>
                    "; dashed: a zero gradient. With 3+ tasks the ring is the most negative pair."
                </span>
            </div>
            <p class="hint">
                "Thumbnails: each neuron's activation over the plane (orange −1, blue +1); inputs: each feature over the plane. Links: blue w > 0, orange w < 0, thicker and more opaque = larger |w|; a wide layer draws only its strongest links. Gradients: each task's mean loss over the whole training set at the run's current weights. Hover or focus a neuron for its numbers; click or Enter enlarges it."
                " "
                {status}
            </p>
        </section>
    }
}
