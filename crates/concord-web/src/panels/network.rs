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
//! **Enlarged map** (a click on a neuron): the neuron's activation on the heatmap's own
//! `LARGE` × `LARGE` grid. For a WebGPU run (MLP, or MoE of a router the GPU trains) it comes from the GPU: while the map is open the
//! run's read-backs also gather that one neuron at every grid point from the same forward pass
//! (`Backend::predict_neuron`, `GpuTrainer::predict_hidden_neuron`); until such a read-back
//! lands (a paused run, the moment after the click), and for CPU runs, the CPU computes it. `large.source` in `window.concord.network()` says which, `large.sample` holds a few values.
//!
//! **Links**: a layer of more than `LINKS_PER_LAYER` links draws only that many, the largest
//! |w| (the hint says how many of how many); opacity grows with |w| / the layer's largest.
//!
//! **Mixtures of experts** (the routers concord-core had when this was written, `DRAWN_ROUTERS`;
//! any other architecture gets a note, not a guess): the pre-layers as an MLP's layers, then one
//! "Experts" column holding each expert's hidden neurons as a labelled group, then the heads.
//! Links a → expert neuron are the expert's first W; expert neuron → head t carry the effective
//! weight Σ_c W_head[t, c]·W_out[c, j] with opacity = task t's mean gate weight on that expert
//! over the training set (`Moe::mean_gate_weights`), so routing shows as which links are visible;
//! the residual a → heads is drawn dashed. The rings are `metrics::moe_neuron_conflicts` (layers
//! 0..L the pre-layers, L + e expert e). Thumbnails of a WebGPU run (softmax, MMoE: the routers
//! the GPU trains) come from its grid pass as an MLP's do (`GpuTrainer::predict_hidden`,
//! `kernels/moe_hidden.rs`); other routers train on the CPU, so `Moe::hidden_activations` there.
//!
//! **Task-gated architectures** (CGC, PLE, DSelect-k; `Moe::expert_groups`): one experts column
//! per level (PLE: 2), each holding the shared experts, then each task's experts ("1 xor expert 1").
//! Rings on the shared-parameter experts (`layout.experts`: CGC's shared experts, PLE's shared
//! experts and its level-1 task experts, which the shared gate reads); a task's own experts get
//! a dotted grey ring (one task's gradient, its norm from `head_grads`, no cosine). Links into
//! the first level from a; the last level's experts link to the heads their task's gate can
//! pick (DSelect-k's selectors are its gates: opacity = the mean selection weight); PLE's level
//! 2 reads level 1's mixtures, which are not nodes, so no links run between the levels.

use crate::dom::{install_computed_hook, with_computed, yield_now, Computed, ComputedCell};
use crate::session::{now_ms, use_session, Session};
use crate::state::use_cfg;
use concord_core::metrics::{moe_neuron_conflicts, neuron_conflicts, NeuronConflict};
use concord_core::model::moe::Moe;
use concord_core::model::{LossKind, Mlp};
use leptos::html::Canvas;
use leptos::prelude::*;
use nalgebra::DMatrix;
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
/// TF Playground's link colours: orange (negative), blue (positive).
pub const BLUE: [u8; 3] = [0x08, 0x77, 0xbd];
pub const ORANGE: [u8; 3] = [0xf5, 0x93, 0x22];
/// The MoE routers whose structure (pre-layers → experts of one hidden layer → residual sum →
/// heads, gates by `Gating`) this view draws, and the task-gated architectures (CGC, PLE,
/// DSelect-k: `Moe::expert_groups` says which experts are shared and which a task's own, one
/// column per level). A router added later is not assumed to share either structure.
const DRAWN_ROUTERS: [&str; 10] =
    ["softmax", "mmoe", "noisy-topk", "switch", "top2", "expert-choice", "task", "cgc", "ple", "dselect-k"];
/// The most expert hidden neurons drawn (64 experts × 8 fit; beyond, a note).
const MAX_EXPERT_NEURONS: usize = 512;
/// The most work (training rows × parameters × tasks) one MoE redraw may take. The per-task
/// backprop over the training set runs on the page's thread in one piece; past this (e.g. 2000
/// points through six 64-wide layers and 16 experts, ~1 s of wasm) the page would stop answering
/// for longer than the budget test allows, so the view says so instead of drawing.
const MAX_MOE_WORK: usize = 20_000_000;

/// Everything one computation produced (serialised for the test hook).
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkResult {
    pub run: usize,
    pub run_label: String,
    pub steps: usize,
    /// Why nothing is drawn (an MoE architecture not drawn, a toy), if so.
    pub note: Option<String>,
    pub inputs: Vec<String>,
    /// The trunk's (an MoE: its pre-layers') widths.
    pub hidden: Vec<usize>,
    pub tasks: Vec<String>,
    /// `[layer][neuron]`: cosines, norms and the most negative pair of each trunk neuron. An MoE:
    /// its pre-layers, then one layer per expert (its hidden neurons).
    pub layers: Vec<Vec<NeuronConflict>>,
    /// An MoE: how many of `layers` are pre-layers (the rest are experts); `None` for an MLP.
    pub pre_layers: Option<usize>,
    /// An MoE: its router's name.
    pub router: Option<String>,
    /// An MoE: `[task][expert]` mean gate weight over the training set (the links' opacity); a
    /// task-gated architecture: over its last level's experts [shared; task 1's; …].
    pub gates: Vec<Vec<f64>>,
    /// An MoE: every expert drawn, in `layers` order after the pre-layers (the shared ones,
    /// which have conflict rings, then a task-gated architecture's task-owned ones).
    pub experts: Vec<ExpertView>,
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
    /// The enlarged neuron's map, while one is open.
    pub large: Option<LargeMap>,
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
    #[serde(skip)]
    moe: Option<Moe>,
    /// Node slots per column (inputs, layers or pre-layers, [experts,] heads): an MoE's experts
    /// column holds each expert's neurons after one slot for its label.
    #[serde(skip)]
    columns: Vec<usize>,
    /// The run's input features (None: the raw 2-D point), for the enlarged thumbnail.
    #[serde(skip)]
    features: Option<concord_core::data::FeatureSet>,
}

/// One expert as drawn: its label, whose it is, where its group sits and which gate column
/// (of `gates[t]`) weighs it at the heads (`None`: PLE's level 1, mixed into level 2).
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpertView {
    pub label: String,
    pub level: usize,
    pub task: Option<usize>,
    /// Its parameters are shared (a conflict ring) or its task's own (a dotted grey ring).
    pub shared: bool,
    pub gate_col: Option<usize>,
    #[serde(skip)]
    col: usize,
    /// The slot of its label; its neurons follow.
    #[serde(skip)]
    first_slot: usize,
    #[serde(skip)]
    slice: concord_core::model::moe::ExpertSlice,
}

/// The enlarged neuron's map (`LARGE`² values, row 0 at the top) and where it was computed.
#[derive(Clone, Serialize)]
pub struct LargeMap {
    pub layer: usize,
    pub neuron: usize,
    /// "gpu" (the run's grid pass) or "cpu".
    pub source: &'static str,
    /// A few of its values with their points (the browser test recomputes them).
    pub sample: Vec<ThumbSample>,
    #[serde(skip)]
    values: Vec<f64>,
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
    // The same colorous scale as the output heatmaps, so a neuron and the output read alike.
    let c = concord_figures::colour::diverging(v);
    [c.0, c.1, c.2]
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
fn compute(session: Session, k: usize, enlarged: Option<(usize, usize)>) -> Result<NetworkResult, String> {
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
                pre_layers: None,
                router: None,
                gates: Vec::new(),
                experts: Vec::new(),
                params: Vec::new(),
                extent,
                compute_ms: 0.0,
                thumbnails_source: "none",
                thumb_side: THUMB,
                thumb_sample: Vec::new(),
                links_shown: (0, 0),
                large: None,
                inputs_maps: Vec::new(),
                acts: Vec::new(),
                heads: Vec::new(),
                mlp: None,
                moe: None,
                columns: Vec::new(),
                features: None,
            };
            if let Some(moe) = r.moe() {
                compute_moe(&mut out, r, moe)?;
                out.large = enlarged.and_then(|at| large_map(&out, r, at));
                return Ok(out);
            }
            let Some(mlp) = r.mlp() else {
                out.note = Some("This run has no network to draw.".into());
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
                let gpu =
                    r.gpu_thumbnails(extent).filter(|a| r.on_gpu() && a.iter().all(|m| m.nrows() == points.len()));
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
                set_thumbnails(&mut out, &acts, &points, &x);
                // The heads' thumbnails: the GPU's grid outputs at the same rows, else the CPU's.
                let rows = crate::grid::thumbnail_rows();
                let gpu_outs = r.grid_outputs(extent).filter(|_| out.thumbnails_source == "gpu");
                let outs = match gpu_outs {
                    Some(o) => o.iter().map(|m| m.select_rows(rows.iter())).collect(),
                    None => mlp.forward(params, &x)?,
                };
                out.heads = head_maps(&outs, &mlp.config().heads);
            }
            out.params = params.to_vec();
            out.columns =
                std::iter::once(out.inputs.len()).chain(out.hidden.iter().copied()).chain([mlp.num_tasks()]).collect();
            out.mlp = Some(mlp.clone());
            out.features = r.config.features.clone();
            out.links_shown = links(&out).1;
            out.large = enlarged.and_then(|at| large_map(&out, r, at));
            Ok(out)
        })
        .ok_or_else(|| "the page is busy".to_string())?
        .map(|mut r| {
            r.compute_ms = now_ms() - t0;
            r
        })
}

/// The thumbnails' activations (`acts[layer]`: THUMB² × neurons), a sample of them for the
/// browser test, and the input nodes' maps (each feature over the plane, scaled to its largest
/// |value|, as TF draws them).
fn set_thumbnails(out: &mut NetworkResult, acts: &[DMatrix<f64>], points: &[[f64; 2]], x: &DMatrix<f64>) {
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
    out.inputs_maps = (0..x.ncols())
        .map(|c| {
            let col = x.column(c);
            let scale = col.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-12);
            col.iter().map(|v| v / scale).collect()
        })
        .collect();
}

/// Per head: its outputs at each thumbnail point as values in [−1, 1].
fn head_maps(outs: &[DMatrix<f64>], heads: &[concord_core::model::HeadConfig]) -> Vec<Vec<f64>> {
    outs.iter()
        .zip(heads)
        .map(|(o, h)| {
            (0..o.nrows()).map(|i| head_value(h.loss, &o.row(i).iter().copied().collect::<Vec<_>>())).collect()
        })
        .collect()
}

/// An MoE run: the conflict of its pre-layer and expert neurons, the mean gate weights, the
/// thumbnails (CPU) — or a note when its architecture is not one this view draws.
fn compute_moe(out: &mut NetworkResult, r: &crate::session::Run, moe: &Moe) -> Result<(), String> {
    let config = moe.config();
    let router = config.router.name();
    let groups = moe.expert_groups();
    let routed = !config.router.is_architecture();
    if !DRAWN_ROUTERS.contains(&router) || (routed && moe.layout().experts.len() != config.experts) {
        out.note = Some(format!(
            "This mixture of experts (router “{router}”) has a structure the network view does not draw yet; it draws the {} routers.",
            DRAWN_ROUTERS.join(", ")
        ));
        return Ok(());
    }
    if groups.len() * config.expert_hidden > MAX_EXPERT_NEURONS {
        out.note = Some(format!(
            "This mixture of experts has {} × {} expert neurons: more than the {MAX_EXPERT_NEURONS} the network view draws.",
            groups.len(),
            config.expert_hidden
        ));
        return Ok(());
    }
    let params = r.params().ok_or("the run has no parameters yet")?;
    let (x, targets) = r.train_set().ok_or("the run has no training set")?;
    let work = x.nrows() * moe.layout().total_len * moe.num_tasks();
    if work > MAX_MOE_WORK {
        out.note = Some(format!(
            "This mixture of experts is too large to redraw live ({} training points × {} parameters × {} tasks); \
             the network view draws MoE models up to {MAX_MOE_WORK} of that product, so that the page keeps answering.",
            x.nrows(),
            moe.layout().total_len,
            moe.num_tasks()
        ));
        return Ok(());
    }
    // The task losses' Jacobian without routing noise (the aux loss is no task's gradient).
    let grads = moe.gradients(params, x, targets, None)?;
    out.layers = moe_neuron_conflicts(moe.layout(), &grads.tasks.shared_jacobian)?;
    // A task-gated architecture's task-owned experts: only their task's gradient reaches them
    // (its head block, `head_grads[t]`), so they get that norm and no cosine.
    let pre = config.hidden.len();
    for (i, g) in groups.iter().enumerate().filter(|(_, g)| !g.shared) {
        let t = g.task.unwrap_or(0);
        let block = moe.layout().head_range(t);
        let layer = (0..g.expert.hidden.fan_out)
            .map(|j| {
                let norm = concord_core::metrics::neuron_params(&g.expert.hidden, j)
                    .map(|c| grads.tasks.head_grads[t][c - block.start].powi(2))
                    .sum::<f64>()
                    .sqrt();
                let m = moe.num_tasks();
                NeuronConflict {
                    layer: pre + i,
                    index: j,
                    norms: (0..m).map(|k| if k == t { norm } else { 0.0 }).collect(),
                    cosines: vec![vec![None; m]; m],
                    min_cos: None,
                    min_pair: None,
                }
            })
            .collect();
        out.layers.push(layer);
    }
    out.gates = moe.mean_gate_weights(params, x)?;
    out.experts = expert_views(moe, &groups, &out.tasks);
    out.pre_layers = Some(config.hidden.len());
    out.router = Some(router.to_string());
    out.inputs = input_labels(r.config.features.as_ref(), config.input_dim);
    out.hidden = config.hidden.clone();
    if r.config.features.is_some() || config.input_dim == 2 {
        let points = crate::grid::points_n(out.extent, THUMB);
        let x = concord_core::data::feature_rows(r.config.features.as_ref(), &points);
        let widths: Vec<usize> =
            config.hidden.iter().copied().chain(groups.iter().map(|g| g.expert.hidden.fan_out)).collect();
        let (acts, source) = moe_thumbnails(r, moe, params, &x, out.extent, &widths)?;
        out.thumbnails_source = source;
        set_thumbnails(out, &acts, &points, &x);
        // The heads' thumbnails: the GPU's grid outputs at the same rows, else the CPU's.
        let gpu_outs = r.grid_outputs(out.extent).filter(|_| source == "gpu");
        let outs = match gpu_outs {
            Some(o) => o.iter().map(|m| m.select_rows(crate::grid::thumbnail_rows().iter())).collect(),
            None => moe.forward(params, &x)?,
        };
        out.heads = head_maps(&outs, &config.heads);
    }
    out.params = params.to_vec();
    // One column per level, each expert a label slot and its neurons.
    let levels = out.experts.iter().map(|e| e.level + 1).max().unwrap_or(1);
    let slots = (0..levels).map(|l| out.experts.iter().filter(|e| e.level == l).count() * (config.expert_hidden + 1));
    out.columns = std::iter::once(out.inputs.len())
        .chain(out.hidden.iter().copied())
        .chain(slots)
        .chain([moe.num_tasks()])
        .collect();
    out.moe = Some(moe.clone());
    out.features = r.config.features.clone();
    out.links_shown = links(out).1;
    Ok(())
}

/// Where each expert of `groups` is drawn and what it is called: the routers' experts in one
/// column ("Expert 3"); a task-gated architecture's in one column per level, shared experts
/// first ("Shared 2"), then each task's ("1 xor expert 1"), with PLE's level in the label.
fn expert_views(moe: &Moe, groups: &[concord_core::model::moe::ExpertGroup], tasks: &[String]) -> Vec<ExpertView> {
    let pre = moe.config().hidden.len();
    let eh = moe.config().expert_hidden;
    let gated = moe.config().router.is_architecture();
    let levels = groups.iter().map(|g| g.level + 1).max().unwrap_or(1);
    let (ns, nt) = (
        groups.iter().filter(|g| g.level == 0 && g.task.is_none()).count(),
        groups.iter().filter(|g| g.level == 0 && g.task == Some(0)).count(),
    );
    // Drawn per level: shared experts, then task 1's, task 2's, …
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&i| (groups[i].level, groups[i].task.map_or(0, |t| t + 1), groups[i].index));
    let mut views: Vec<Option<ExpertView>> = vec![None; groups.len()];
    let mut next = vec![0usize; levels];
    for i in order {
        let g = &groups[i];
        let task = |t: usize| tasks.get(t).cloned().unwrap_or_else(|| format!("task {}", t + 1));
        let mut label = match (gated, g.task) {
            (false, _) => format!("Expert {}", g.index + 1),
            (true, None) => format!("Shared {}", g.index + 1),
            (true, Some(t)) => format!("{} expert {}", task(t), g.index + 1),
        };
        if levels > 1 {
            label = format!("L{} {label}", g.level + 1);
        }
        // The heads' gates weigh the last level's experts: [shared; task 1's; …].
        let gate_col = match (gated, g.task) {
            (false, _) => Some(g.index),
            _ if g.level + 1 != levels => None,
            (true, None) => Some(g.index),
            (true, Some(t)) => Some(ns + t * nt.max(1) + g.index),
        };
        let first_slot = next[g.level];
        next[g.level] += eh + 1;
        views[i] = Some(ExpertView {
            label,
            level: g.level,
            task: g.task,
            shared: g.shared,
            gate_col,
            col: pre + 1 + g.level,
            first_slot,
            slice: g.expert.clone(),
        });
    }
    views.into_iter().flatten().collect()
}

/// An MoE's thumbnails (pre-layers, then each expert's hidden layer, `widths` wide) and where
/// they came from: a WebGPU run's grid pass gathers them (`GpuTrainer::predict_hidden`, the
/// dense routers the GPU trains) at the read-back parameters, i.e. `params`; a CPU run — every
/// other router, which the GPU refuses to train — or a read-back that did not bring them uses
/// `Moe::hidden_activations`.
fn moe_thumbnails(
    r: &crate::session::Run,
    moe: &Moe,
    params: &[f64],
    x: &DMatrix<f64>,
    extent: f64,
    widths: &[usize],
) -> Result<(Vec<DMatrix<f64>>, &'static str), String> {
    let fits = |a: &&[DMatrix<f64>]| {
        a.len() == widths.len() && a.iter().zip(widths).all(|(m, &w)| m.nrows() == x.nrows() && m.ncols() == w)
    };
    match r.gpu_thumbnails(extent).filter(|_| r.on_gpu()).filter(fits) {
        Some(a) => Ok((a.to_vec(), "gpu")),
        None => Ok((moe.hidden_activations(params, x)?, "cpu")),
    }
}

/// Neuron `at`'s map at `LARGE`²: the GPU's (a WebGPU run whose last read-back gathered it,
/// i.e. at `params`) or the CPU's. `None`: no such neuron, or no 2-D plane.
fn large_map(out: &NetworkResult, r: &crate::session::Run, at: (usize, usize)) -> Option<LargeMap> {
    let (l, j) = at;
    if out.thumbnails_source == "none" || j >= out.layers.get(l)?.len() {
        return None;
    }
    let points = crate::grid::points_n(out.extent, LARGE);
    let gpu = r.gpu_neuron(out.extent, at).filter(|v| r.on_gpu() && v.len() == points.len());
    let (values, source) = match gpu {
        Some(v) => (v.to_vec(), "gpu"),
        None => {
            let x = concord_core::data::feature_rows(out.features.as_ref(), &points);
            let acts = out.activations_at(&x)?;
            (acts.get(l)?.column(j).iter().copied().collect(), "cpu")
        }
    };
    // Corners, the middle and a few cells between.
    let sample = [0, LARGE - 1, LARGE * 37 + 61, LARGE * (LARGE / 2) + LARGE / 2, LARGE * 83 + 12, LARGE * LARGE - 1]
        .iter()
        .map(|&i| ThumbSample { layer: l, neuron: j, point: points[i], value: values[i] })
        .collect();
    Some(LargeMap { layer: l, neuron: j, source, sample, values })
}

impl NetworkResult {
    /// Where neuron `j` of layer `l` (of `layers`) is drawn: its column and slot.
    fn slot(&self, l: usize, j: usize) -> (usize, usize) {
        match self.pre_layers.and_then(|pre| self.experts.get(l.checked_sub(pre)?)) {
            Some(e) => (e.col, e.first_slot + 1 + j),
            None => (l + 1, j),
        }
    }

    /// "Layer 2, neuron 3" or, an MoE's expert neuron, "Expert 1, neuron 3".
    fn neuron_name(&self, l: usize, j: usize) -> String {
        match self.pre_layers.and_then(|pre| self.experts.get(l.checked_sub(pre)?)) {
            Some(e) => format!("{}, neuron {}", e.label, j + 1),
            None => format!("Layer {}, neuron {}", l + 1, j + 1),
        }
    }

    /// Every layer's activations at the rows of x (the enlarged map), MLP or MoE.
    fn activations_at(&self, x: &DMatrix<f64>) -> Option<Vec<DMatrix<f64>>> {
        if let Some(mlp) = &self.mlp {
            return mlp.hidden_activations(&self.params, x).ok();
        }
        self.moe.as_ref()?.hidden_activations(&self.params, x).ok()
    }
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

/// One link: from (column, slot) to (column, slot), weight `w`. `gate`: an MoE's expert → head
/// link, drawn with that opacity (the task's mean gate weight on the expert); `dashed`: the
/// residual a → heads, which skips the experts column.
struct Link {
    from: (usize, usize),
    to: (usize, usize),
    w: f64,
    gate: Option<f64>,
    dashed: bool,
}

impl Link {
    fn plain(col: usize, from: usize, to: usize, w: f64) -> Self {
        Link { from: (col, from), to: (col + 1, to), w, gate: None, dashed: false }
    }
}

/// A head's weight from input k (a head of several outputs, softmax: the mean over its rows).
fn head_weight(params: &[f64], head: &concord_core::model::LayerSlice, k: usize) -> f64 {
    (0..head.fan_out).map(|o| params[head.weight.start + o * head.fan_in + k]).sum::<f64>() / head.fan_out as f64
}

/// The links of one dense layer `slice` from column `col` to the next, slot = index.
fn dense_links(params: &[f64], slice: &concord_core::model::LayerSlice, col: usize) -> Vec<Link> {
    let mut pair = Vec::new();
    for j in 0..slice.fan_out {
        for k in 0..slice.fan_in {
            pair.push(Link::plain(col, k, j, params[slice.weight.start + j * slice.fan_in + k]));
        }
    }
    pair
}

/// The links to draw, per column pair: every one, or the `LINKS_PER_LAYER` of largest |w|.
/// Also (drawn, total) of the pair with the most links.
fn links(r: &NetworkResult) -> (Vec<Vec<Link>>, (usize, usize)) {
    let mut pairs: Vec<Vec<Link>> = Vec::new();
    if let Some(mlp) = &r.mlp {
        let layout = mlp.layout();
        let trunk = layout.trunk.len();
        for (l, slice) in layout.trunk.iter().enumerate() {
            pairs.push(dense_links(&r.params, slice, l));
        }
        let mut heads = Vec::new();
        for (t, head) in layout.heads.iter().enumerate() {
            for k in 0..head.fan_in {
                heads.push(Link::plain(trunk, k, t, head_weight(&r.params, head, k)));
            }
        }
        pairs.push(heads);
    } else if let Some(moe) = &r.moe {
        let layout = moe.layout();
        let pre = layout.pre.len();
        for (l, slice) in layout.pre.iter().enumerate() {
            pairs.push(dense_links(&r.params, slice, l));
        }
        // a → each first-level expert's hidden neurons (PLE's level 2 reads the level-1
        // mixtures, which are not drawn as nodes: no links into it).
        let mut into = Vec::new();
        for (e, view) in r.experts.iter().enumerate().filter(|(_, v)| v.level == 0) {
            let ex = &view.slice;
            for j in 0..ex.hidden.fan_out {
                for k in 0..ex.hidden.fan_in {
                    let w = r.params[ex.hidden.weight.start + j * ex.hidden.fan_in + k];
                    into.push(Link { from: (pre, k), to: r.slot(pre + e, j), w, gate: None, dashed: false });
                }
            }
        }
        pairs.push(into);
        // Expert neuron → head t: the effective weight through the expert's output layer, seen
        // as much as task t's gate uses the expert (none where task t's gate cannot pick it: a
        // task-gated architecture's other tasks' experts; PLE's level 1).
        let heads_col = r.columns.len() - 1;
        let mut out = Vec::new();
        for (e, view) in r.experts.iter().enumerate() {
            let Some(c) = view.gate_col else { continue };
            let ex = &view.slice;
            for (t, head) in layout.heads.iter().enumerate() {
                if view.task.is_some_and(|owner| owner != t) {
                    continue;
                }
                let gate = r.gates.get(t).and_then(|g| g.get(c)).copied().unwrap_or(0.0);
                for j in 0..ex.out.fan_in {
                    let w = (0..ex.out.fan_out)
                        .map(|c| {
                            head_weight(&r.params, head, c) * r.params[ex.out.weight.start + c * ex.out.fan_in + j]
                        })
                        .sum();
                    out.push(Link { from: r.slot(pre + e, j), to: (heads_col, t), w, gate: Some(gate), dashed: false });
                }
            }
        }
        pairs.push(out);
        // The residual: a reaches the heads directly.
        let mut residual = Vec::new();
        for (t, head) in layout.heads.iter().enumerate() {
            for k in 0..head.fan_in {
                let w = head_weight(&r.params, head, k);
                residual.push(Link { from: (pre, k), to: (heads_col, t), w, gate: None, dashed: true });
            }
        }
        pairs.push(residual);
    }
    let mut widest = (0, 0);
    for pair in &mut pairs {
        let total = pair.len();
        if total > LINKS_PER_LAYER {
            // Gated links: the strongest as drawn (|w| × gate).
            pair.sort_by(|a, b| (b.w.abs() * b.gate.unwrap_or(1.0)).total_cmp(&(a.w.abs() * a.gate.unwrap_or(1.0))));
            pair.truncate(LINKS_PER_LAYER);
        }
        if total > widest.1 {
            widest = (pair.len(), total);
        }
    }
    (pairs, widest)
}

/// The links as one SVG (hundreds of paths: one string, not one reactive node each).
fn links_svg(r: &NetworkResult, width: f64, height: f64) -> String {
    let tallest = r.columns.iter().copied().max().unwrap_or(1);
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
            let (x1, y1) = node_pos(l.from.0, l.from.1, r.columns[l.from.0], tallest);
            let (x2, y2) = node_pos(l.to.0, l.to.1, r.columns[l.to.0], tallest);
            let colour = if l.w >= 0.0 { css(BLUE) } else { css(ORANGE) };
            let stroke = ((1.0 + l.w.abs().min(5.0) * 1.8) * thin).max(0.3);
            // Weak links fade: the strong ones carry the picture. A gated link: the gate's share.
            let (opacity, extra) = match (l.gate, l.dashed) {
                (Some(g), _) => (0.05 + 0.9 * g.clamp(0.0, 1.0), format!(r#" data-gate="{g:.4}""#)),
                (None, true) => (0.1 + 0.3 * l.w.abs() / strongest, r#" stroke-dasharray="3 3""#.to_string()),
                (None, false) => (0.2 + 0.7 * l.w.abs() / strongest, String::new()),
            };
            let title = match l.gate {
                Some(g) => format!("w = {:.3} (through the expert), mean gate weight {g:.3}", l.w),
                None if l.dashed => format!("w = {:.3} (the residual a → head)", l.w),
                None => format!("w = {:.3}", l.w),
            };
            let xm = (x1 + x2) / 2.0;
            s.push_str(&format!(
                r#"<path d="M{x1:.1} {y1:.1}C{xm:.1} {y1:.1} {xm:.1} {y2:.1} {x2:.1} {y2:.1}" stroke="{colour}" stroke-width="{stroke:.2}" stroke-opacity="{opacity:.2}"{extra} fill="none"><title>{title}</title></path>"#
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
fn neuron_text(r: &NetworkResult, n: &NeuronConflict) -> String {
    let tasks = &r.tasks;
    let name = |t: usize| tasks.get(t).cloned().unwrap_or_else(|| format!("task {}", t + 1));
    let mut parts = vec![r.neuron_name(n.layer, n.index)];
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
    let done_key = StoredValue::new((usize::MAX, u64::MAX, None::<(usize, usize)>));
    let last = StoredValue::new((f64::NEG_INFINITY, 0.0f64));
    let focus = RwSignal::new(None::<(usize, usize)>);
    let enlarged = RwSignal::new(None::<(usize, usize)>);
    let large = NodeRef::<Canvas>::new();
    let container = NodeRef::<leptos::html::Div>::new();
    // The run shown asks its GPU read-backs for the thumbnails too (nothing while hidden).
    Effect::new(move |_| {
        let shown = (!hidden()).then(|| run.get());
        let large = enlarged.get().filter(|_| shown.is_some());
        session.with(|a| {
            a.set_network_run(shown);
            a.set_network_large(large);
        });
    });
    on_cleanup(move || {
        session.with(|a| {
            a.set_network_run(None);
            a.set_network_large(None);
        });
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
        let key = (run.get_untracked(), ui.version.get_untracked(), enlarged.get_untracked());
        let (at, took) = last.get_value();
        if key == done_key.get_value() || now_ms() - at < (8.0 * took).max(400.0) {
            return;
        }
        with_computed(store, |s| s.busy = true);
        leptos::task::spawn_local(async move {
            yield_now().await;
            let out = compute(session, key.0, key.2);
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
                // The map computed with the result (GPU or CPU); a click computes anew.
                if let (Some(at), Some(c), Some(m)) = (enlarged.get_untracked(), large.get_untracked(), &r.large) {
                    if (m.layer, m.neuron) == at {
                        paint(&c, &m.values, LARGE);
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
            let m = r.tasks.len();
            let widths = r.columns.clone();
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
                let col = r.slot(l, 0).0;
                let slots = widths[col];
                let ring = if node_size(slots).0 >= 20.0 { 4.0 } else { 3.0 };
                for n in layer {
                    let (x, y) = node_pos(col, r.slot(l, n.index).1, slots, tallest);
                    let text = neuron_text(r, n);
                    let owned = r.pre_layers.and_then(|p| r.experts.get(l.checked_sub(p)?)).is_some_and(|e| !e.shared);
                    let border = match n.min_cos {
                        Some(c) => format!("border:{ring}px solid {}", css(diverging(c))),
                        // A task's own neuron: one task's gradient, no conflict to show.
                        None if owned => format!("border:{ring}px dotted #9aa0a6"),
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
                                data-expert=r.pre_layers.and_then(|p| l.checked_sub(p))
                                data-owned=owned.then_some("true")
                                style=format!("{};{border}", place(x, y, slots))
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
            // An MoE: each expert's label above its group, with its mean gate weight per task.
            for view in &r.experts {
                let (x, y) = node_pos(view.col, view.first_slot, widths[view.col], tallest);
                let title = match view.gate_col {
                    Some(c) => {
                        let gates: Vec<String> = (0..m)
                            .filter(|&t| view.task.is_none_or(|owner| owner == t))
                            .map(|t| format!("{} {:.2}", r.tasks.get(t).cloned().unwrap_or_default(), r.gates.get(t).and_then(|g| g.get(c)).copied().unwrap_or(0.0)))
                            .collect();
                        format!("{}: mean gate weight per task (the links' opacity): {}", view.label, gates.join(", "))
                    }
                    None => format!("{}: mixed into level 2 by the level-1 gates (links not drawn)", view.label),
                };
                let owned = if view.shared { "" } else { " (task-owned)" };
                nodes.push(
                    view! {
                        <span class="net-expert" data-testid="network-expert" style=format!("left:{:.1}px;top:{:.1}px", x - 40.0, y - 7.0) title=title>
                            {format!("{}{owned}", view.label.to_lowercase())}
                        </span>
                    }
                    .into_any(),
                );
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
            if r.moe.is_some() {
                let levels = r.experts.iter().map(|e| e.level + 1).max().unwrap_or(1);
                let router = r.router.clone().unwrap_or_default();
                for l in 0..levels {
                    heads_row.push(if levels > 1 { format!("Level {} ({router})", l + 1) } else { format!("Experts ({router})") });
                }
            }
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
            let expert = r.pre_layers.and_then(|p| r.experts.get(l.checked_sub(p)?));
            if let Some(c) = expert.and_then(|e| e.gate_col) {
                let owner = expert.and_then(|e| e.task);
                let gates: Vec<String> = (0..n.norms.len())
                    .filter(|&t| owner.is_none_or(|o| o == t))
                    .map(|t| {
                        format!("{} {:.3}", name(t), r.gates.get(t).and_then(|g| g.get(c)).copied().unwrap_or(0.0))
                    })
                    .collect();
                rows.push(format!("mean gate weight: {}", gates.join(", ")));
            }
            if let Some(t) = expert.filter(|e| !e.shared).and_then(|e| e.task) {
                rows.push(format!("own expert of {}: only its gradient reaches it", name(t)));
            }
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
                    <strong>{r.neuron_name(l, j)}</strong>
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
                            {move || {
                                let (l, j) = enlarged.get()?;
                                version.track();
                                let (name, source) = with_computed(store, |s| {
                                    s.result.as_ref().map(|r| {
                                        let source = match r.large.as_ref().filter(|m| (m.layer, m.neuron) == (l, j)) {
                                            Some(m) if m.source == "gpu" => " (the GPU's grid pass, f32)",
                                            Some(_) => " (CPU, f64)",
                                            None => "",
                                        };
                                        (r.neuron_name(l, j), source)
                                    })
                                })
                                .flatten()?;
                                Some(format!("{name}: activation over the plane{source}"))
                            }}
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
                    "; dashed: a zero gradient; dotted: a task's own expert (CGC, PLE), which one task's gradient reaches. With 3+ tasks the ring is the most negative pair."
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
