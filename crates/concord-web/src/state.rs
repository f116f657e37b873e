//! URL-hash state, as a typed key table (TensorFlow Playground's `state.ts`, adapted). The
//! preset key is read first and supplies every other key's default.
//!
//! The hash is `key=value&key=value…`, written in `PROPS` order. Enums are written by name,
//! lists are comma-joined, and `<control>_hide=true` flags trim the UI (`hideText=true` hides
//! the explanatory text). Reading never panics: an unknown name, a malformed number or an
//! out-of-range value is dropped or clamped, and each such fix becomes a `notice` the page shows.

use crate::preset::{Preset, PRESET_NAMES};
use concord_core::data::{Dataset, Feature, FeatureSet};
use concord_core::dynamics::RunSpec;
use concord_core::model::moe::MAX_DSELECT_GAMMA;
use concord_core::model::{Activation, LossKind};
use concord_core::train::{Init, Penalty, Precision, TrainOptimizer};
#[cfg(test)]
use concord_core::MethodSpec;
use concord_core::ProblemKind;

/// The notices about malformed URL values, shown until dismissed.
#[derive(Clone, Copy)]
pub struct Notices(pub leptos::prelude::RwSignal<Vec<String>>);

/// The playground's URL state (provided by the playground that owns it).
pub fn use_cfg() -> leptos::prelude::RwSignal<State> {
    leptos::prelude::expect_context::<leptos::prelude::RwSignal<State>>()
}

/// The panels an embedded figure shows (by `data-panel` key); provided by a figure only. The
/// playground shows every panel its state does not hide.
#[derive(Clone, Copy)]
pub struct FigurePanels(pub leptos::prelude::Signal<Vec<&'static str>>);

/// Whether panel `key` is hidden: by `<key>_hide=true`, or by an embedded figure's `view` not
/// naming it.
pub fn panel_hidden(key: &'static str) -> impl Fn() -> bool + Copy + 'static {
    use leptos::prelude::*;
    let cfg = use_cfg();
    let figure = use_context::<FigurePanels>();
    move || cfg.with(|s| s.is_hidden(key)) || figure.is_some_and(|f| f.0.with(|shown| !shown.contains(&key)))
}

/// Whether this component is inside an embedded figure (not the playground page).
pub fn in_figure() -> bool {
    leptos::prelude::use_context::<FigurePanels>().is_some()
}

/// The type of a hash value, with its limits: the table is the single source of truth.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    /// One name out of a fixed set.
    Enum(&'static [&'static str]),
    /// A comma-joined sequence of names (order kept, repeats allowed), min..=max long.
    Seq { names: &'static [&'static str], min: usize, max: usize },
    /// Comma-joined integers in [1, max_value], at most max_len of them (the hidden widths).
    Shape { max_len: usize, max_value: i64 },
    /// Comma-joined method specs (`aggregator[+weighting][:key=value…]`), 1..=max of them.
    Specs { max: usize },
    /// A finite number, clamped to [min, max].
    Number { min: f64, max: f64 },
    /// An integer, clamped to [min, max].
    Int { min: i64, max: i64 },
    /// `true` / `false`.
    Bool,
}

/// One hash key.
#[derive(Clone, Copy, Debug)]
pub struct Prop {
    pub key: &'static str,
    pub ty: Ty,
    /// The default of the default preset (xor-conflict); `Preset::default_for` overrides it.
    pub default: &'static str,
}

/// The toy methods of the first links (`methods=…&c=…`), translated into `arena` on load.
pub const LEGACY_METHODS: &[&str] = &["mean", "sum", "pcgrad", "mgda", "cagrad"];
pub const OPTIMIZERS: &[&str] = &["adam", "sgd", "adamw"];
/// The CPU trainer's arithmetic: f32 (the fast path) or f64 (the reference).
pub const PRECISIONS: &[&str] = &["f32", "f64"];
pub const VIEWS: &[&str] = &["average", "l1", "l2"];
pub const DATASETS: &[&str] = &["circle", "xor", "gauss", "spiral", "reg-plane", "reg-gauss"];
pub const ACTIVATIONS: &[&str] = &["tanh", "relu", "gelu", "sigmoid", "linear"];
pub const LOSSES: &[&str] = &["bce", "mse"];
pub const INPUTS: &[&str] = &["native", "union", "uniform"];
/// Landscape plane directions (concord-core's `DirectionKind` names).
pub const LANDSCAPE_DIRECTIONS: &[&str] = &["random", "gradients", "pca", "start-end"];
pub const MODELS: &[&str] = &["mlp", "moe"];
/// TF Playground's `regularization` values (`none` is TF's absent key).
pub const REGULARIZATIONS: &[&str] = &["none", "L1", "L2"];
/// The init choice: Concord's seeded Glorot/He, zeros (TF's `initZero=true`), TF's U(−0.5, 0.5).
pub const INITS: &[&str] = &["default", "zero", "tf-uniform"];
/// MoE routers, by concord-core's names.
pub const ROUTERS: &[&str] = &concord_core::model::moe::RouterKind::NAMES;
/// Experts in the playground's MoE block (concord-core allows more; the panel stays legible).
pub const MAX_EXPERTS: usize = 16;
/// Tasks on the 2-D playground data.
pub const MIN_TASKS: usize = 2;
pub const MAX_TASKS: usize = 4;
/// Methods side by side on a multi-task preset (each trains a network).
pub const MAX_ARENA: usize = 5;
/// Methods side by side on the toys (each from every start; a race of every GPU method fits).
pub const MAX_ARENA_TOY: usize = 12;

/// How many methods a preset's arena holds.
pub fn arena_limit(toy: bool) -> usize {
    if toy {
        MAX_ARENA_TOY
    } else {
        MAX_ARENA
    }
}

/// Every serialised key, in the order the hash is written.
pub const PROPS: &[Prop] = &[
    Prop { key: "preset", ty: Ty::Enum(PRESET_NAMES), default: "xor-conflict" },
    // Data & tasks (2-D task sets; seed, points and train ratio also for the sinusoids).
    Prop { key: "tasks", ty: Ty::Seq { names: DATASETS, min: MIN_TASKS, max: MAX_TASKS }, default: "xor,xor" },
    Prop { key: "inputs", ty: Ty::Enum(INPUTS), default: "native" },
    Prop { key: "points", ty: Ty::Int { min: 50, max: 2000 }, default: "500" },
    Prop { key: "noise", ty: Ty::Int { min: 0, max: 50 }, default: "0" },
    Prop { key: "trainRatio", ty: Ty::Int { min: 10, max: 90 }, default: "50" },
    Prop { key: "conflict", ty: Ty::Number { min: -1.0, max: 1.0 }, default: "-0.8" },
    Prop { key: "conflictTask", ty: Ty::Int { min: 1, max: MAX_TASKS as i64 }, default: "2" },
    Prop { key: "seed", ty: Ty::Int { min: 0, max: 4_294_967_295 }, default: "0" },
    // Model & method.
    Prop { key: "hidden", ty: Ty::Shape { max_len: 6, max_value: 64 }, default: "8,8" },
    Prop { key: "activation", ty: Ty::Enum(ACTIVATIONS), default: "tanh" },
    Prop { key: "losses", ty: Ty::Seq { names: LOSSES, min: 1, max: MAX_TASKS }, default: "bce,bce" },
    Prop { key: "tiedHeads", ty: Ty::Bool, default: "true" },
    Prop { key: "batch", ty: Ty::Int { min: 1, max: 2000 }, default: "50" },
    // TF Playground's input features of the 2-D point (its keys), the L1/L2 penalty and init.
    Prop { key: "x", ty: Ty::Bool, default: "true" },
    Prop { key: "y", ty: Ty::Bool, default: "true" },
    Prop { key: "xSquared", ty: Ty::Bool, default: "false" },
    Prop { key: "ySquared", ty: Ty::Bool, default: "false" },
    Prop { key: "xTimesY", ty: Ty::Bool, default: "false" },
    Prop { key: "sinX", ty: Ty::Bool, default: "false" },
    Prop { key: "sinY", ty: Ty::Bool, default: "false" },
    Prop { key: "regularization", ty: Ty::Enum(REGULARIZATIONS), default: "none" },
    Prop { key: "regularizationRate", ty: Ty::Number { min: 0.0, max: 10.0 }, default: "0" },
    Prop { key: "init", ty: Ty::Enum(INITS), default: "default" },
    // The model choice: the MLP trunk, or the same trunk with an MoE block on top.
    Prop { key: "model", ty: Ty::Enum(MODELS), default: "mlp" },
    Prop { key: "router", ty: Ty::Enum(ROUTERS), default: "task" },
    Prop { key: "experts", ty: Ty::Int { min: 1, max: MAX_EXPERTS as i64 }, default: "4" },
    Prop { key: "k", ty: Ty::Int { min: 1, max: MAX_EXPERTS as i64 }, default: "1" },
    Prop { key: "cf", ty: Ty::Number { min: 0.1, max: 8.0 }, default: "1.25" },
    // The architectures' options: CGC/PLE task experts, DSelect-k's γ and entropy weight.
    Prop { key: "taskExperts", ty: Ty::Int { min: 0, max: MAX_EXPERTS as i64 }, default: "1" },
    Prop { key: "gamma", ty: Ty::Number { min: 0.01, max: MAX_DSELECT_GAMMA }, default: "1" },
    Prop { key: "auxEntropy", ty: Ty::Number { min: 0.0, max: 1.0 }, default: "0" },
    Prop { key: "arena", ty: Ty::Specs { max: MAX_ARENA_TOY }, default: "mean,pcgrad,mgda,cagrad" },
    // The CAGrad toys' contour view.
    Prop { key: "view", ty: Ty::Enum(VIEWS), default: "average" },
    // Shared: optimizer and transport.
    Prop { key: "optimizer", ty: Ty::Enum(OPTIMIZERS), default: "adam" },
    Prop { key: "lr", ty: Ty::Number { min: 1e-6, max: 10.0 }, default: "0.01" },
    Prop { key: "precision", ty: Ty::Enum(PRECISIONS), default: "f32" },
    Prop { key: "spf", ty: Ty::Int { min: 1, max: 20_000 }, default: "5" },
    Prop { key: "play", ty: Ty::Bool, default: "true" },
    // Views.
    Prop { key: "layers", ty: Ty::Bool, default: "false" },
    Prop { key: "showTest", ty: Ty::Bool, default: "true" },
    Prop { key: "discretize", ty: Ty::Bool, default: "false" },
    Prop { key: "hideText", ty: Ty::Bool, default: "false" },
    // The landscape panel: plane directions, grid points per side, shown task (0 = total).
    Prop { key: "landDirections", ty: Ty::Enum(LANDSCAPE_DIRECTIONS), default: "random" },
    Prop { key: "landGrid", ty: Ty::Int { min: 5, max: 101 }, default: "51" },
    Prop { key: "landTask", ty: Ty::Int { min: 0, max: MAX_TASKS as i64 }, default: "0" },
];

/// Controls that `<name>_hide=true` removes, with the label the UI shows for them.
pub const HIDABLE_CONTROLS: &[(&str, &str)] = &[
    ("preset", "Preset"),
    ("data", "Data & tasks"),
    ("model", "Model"),
    ("arena", "Methods"),
    ("io", "Export / import"),
    ("problem", "Problem"),
    ("optimizer", "Optimizer"),
    ("lr", "Learning rate"),
    ("spf", "Steps per frame"),
    ("precision", "CPU arithmetic"),
    ("playButton", "Play/pause"),
    ("stepButton", "Step"),
    ("resetButton", "Reset"),
    // TF Playground's names for its view toggles, penalty and input features.
    ("showTestData", "Show test data"),
    ("discretize", "Discretize output"),
    ("regularization", "Regularization"),
    ("regularizationRate", "Regularization rate"),
    ("init", "Initialisation"),
    ("x", "Feature x₁"),
    ("y", "Feature x₂"),
    ("xSquared", "Feature x₁²"),
    ("ySquared", "Feature x₂²"),
    ("xTimesY", "Feature x₁x₂"),
    ("sinX", "Feature sin x₁"),
    ("sinY", "Feature sin x₂"),
    ("view", "Loss view"),
    ("backend", "Backend readout"),
    ("heatmaps", "Heatmaps"),
    ("conflictMap", "Conflict map"),
    ("samples", "Sample-level conflict"),
    ("dynamics", "Training dynamics"),
    ("curves", "Loss curves"),
    ("weights", "Weights"),
    ("cosine", "Cosine matrix"),
    ("conflict", "Conflict metrics"),
    ("lossSpace", "Loss space"),
    ("landscape", "Loss landscape"),
    ("network", "Network view"),
];

/// Which loss the contour plot shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Average,
    L1,
    L2,
}

impl View {
    pub fn name(self) -> &'static str {
        match self {
            View::Average => "average",
            View::L1 => "l1",
            View::L2 => "l2",
        }
    }

    fn from_name(s: &str) -> View {
        match s {
            "l1" => View::L1,
            "l2" => View::L2,
            _ => View::Average,
        }
    }
}

/// The optimizer by name (the learning rate is a separate key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    Adam,
    Sgd,
    AdamW,
}

impl Opt {
    pub const ALL: [Opt; 3] = [Opt::Adam, Opt::Sgd, Opt::AdamW];

    pub fn name(self) -> &'static str {
        match self {
            Opt::Adam => "adam",
            Opt::Sgd => "sgd",
            Opt::AdamW => "adamw",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Opt::Adam => "Adam",
            Opt::Sgd => "SGD",
            Opt::AdamW => "AdamW (wd 0.01)",
        }
    }

    fn from_name(s: &str) -> Opt {
        match s {
            "sgd" => Opt::Sgd,
            "adamw" => Opt::AdamW,
            _ => Opt::Adam,
        }
    }

    pub fn train(self, lr: f64) -> TrainOptimizer {
        match self {
            Opt::Adam => TrainOptimizer::adam(lr),
            Opt::Sgd => TrainOptimizer::sgd(lr, 0.0),
            Opt::AdamW => TrainOptimizer::adamw(lr),
        }
    }
}

/// The page state that lives in the URL hash.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub preset: Preset,
    pub tasks: Vec<Dataset>,
    pub inputs: &'static str,
    pub points: usize,
    /// 0–50, as the Playground's slider (÷100 = ν).
    pub noise: u32,
    /// 10–90 % of the points train.
    pub train_pct: u32,
    /// κ of the conflict knob (1 = no change).
    pub conflict: f64,
    /// 1-based task the knob flips.
    pub conflict_task: usize,
    pub seed: u64,
    pub hidden_layers: Vec<usize>,
    pub activation: Activation,
    pub losses: Vec<LossKind>,
    pub tied_heads: bool,
    pub batch: usize,
    /// The input features of the 2-D point (task sets, CSV points; never empty).
    pub features: FeatureSet,
    /// L1/L2 on the MLP's weights (`None`: TF's "None").
    pub regularization: Option<Penalty>,
    pub reg_rate: f64,
    pub init: Init,
    /// The MoE block's settings, or `None` for the plain MLP trunk.
    pub moe: Option<MoeChoice>,
    /// The runs side by side, each a method and its options (`mean@sam`; the toys: each from
    /// every published start).
    pub arena: Vec<RunSpec>,
    pub view: View,
    pub optimizer: Opt,
    pub lr: f64,
    /// The CPU runs' arithmetic (the GPU trains in f32 whatever this says).
    pub precision: Precision,
    /// Steps per animation frame.
    pub spf: u32,
    pub play: bool,
    pub layers: bool,
    pub show_test: bool,
    /// Heatmaps show the sign (argmax) of the output, not its value (a view: no reset).
    pub discretize: bool,
    pub hide_text: bool,
    pub land_directions: &'static str,
    pub land_grid: usize,
    /// 0: the total; t ≥ 1: task t.
    pub land_task: usize,
    /// Controls hidden with `<name>_hide=true`.
    pub hidden: Vec<String>,
    /// The lesson step shown (1-based, `lesson=N`; `lessons::LESSON`), or none.
    pub lesson: Option<usize>,
}

impl Default for State {
    fn default() -> Self {
        State::from_hash("").0
    }
}

impl State {
    /// The defaults of a preset (everything else reset too).
    pub fn for_preset(preset: Preset) -> State {
        State::from_hash(&format!("preset={}", preset.name())).0
    }

    /// The toy's problem.
    pub fn problem(&self) -> ProblemKind {
        self.preset.toy_problem()
    }

    pub fn is_hidden(&self, control: &str) -> bool {
        self.hidden.iter().any(|h| h == control)
    }

    /// Whether going from `self` to `other` needs the runs to restart: every setting of the
    /// data, the model, the methods or the optimizer does; the learning rate, speed,
    /// play/pause and views do not (they apply live).
    pub fn needs_reset(&self, other: &State) -> bool {
        let live = |s: &State| State {
            lr: 0.0,
            spf: 0,
            play: false,
            layers: false,
            show_test: false,
            discretize: false,
            hide_text: false,
            land_directions: "random",
            land_grid: 0,
            land_task: 0,
            hidden: Vec::new(),
            view: View::Average,
            lesson: None,
            ..s.clone()
        };
        live(self) != live(other)
    }

    /// Parse a hash (with or without the leading `#`). Returns the state and one notice per
    /// value that was dropped or clamped.
    pub fn from_hash(hash: &str) -> (State, Vec<String>) {
        let hash = hash.strip_prefix('#').unwrap_or(hash);
        let mut notices = Vec::new();
        let mut values: Vec<Option<String>> = vec![None; PROPS.len()];
        let mut hidden = Vec::new();
        let (mut legacy_methods, mut legacy_c) = (None, None);
        // A lesson step's keys are read first, so the keys the hash names itself override them.
        let mut lesson = None;
        for pair in hash.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode(key) == "lesson" {
                let value = percent_decode(value);
                lesson = Some(crate::lessons::parse_step(&value).unwrap_or_else(|why| {
                    notices.push(format!("lesson={}: {why}; showing step 1", short(&value)));
                    1
                }));
            }
        }
        // TF's key names for what Concord names otherwise: `showTestData` (= showTest) and
        // `initZero` (= init=zero); the Concord key wins when both are given.
        let (mut tf_show_test, mut tf_init_zero) = (None, None);
        let step_keys = lesson.map_or("", |n| crate::lessons::LESSON[n - 1].hash);
        for pair in step_keys.split('&').chain(hash.split('&')).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key);
            let value = percent_decode(value);
            if key == "lesson" {
                continue;
            }
            if let Some(control) = key.strip_suffix("_hide") {
                if HIDABLE_CONTROLS.iter().any(|(k, _)| *k == control) {
                    if value == "true" {
                        if !hidden.iter().any(|h| h == control) {
                            hidden.push(control.to_string());
                        }
                    } else if value != "false" {
                        notices.push(format!("{}={}: expected true or false; ignored", short(&key), short(&value)));
                    }
                } else {
                    notices.push(format!("{}: no control named “{}”; ignored", short(&key), short(control)));
                }
                continue;
            }
            match (PROPS.iter().position(|p| p.key == key), key.as_str()) {
                (Some(i), _) => values[i] = Some(value),
                (None, "methods") => legacy_methods = Some(value),
                (None, "c") => legacy_c = Some(value),
                (None, "showTestData") => tf_show_test = Some(value),
                (None, "initZero") => tf_init_zero = Some(value),
                (None, _) => notices.push(format!("unknown key “{}” ignored", short(&key))),
            }
        }
        // In the table's order, the order `to_hash` writes them (the fuzzer's first find: a link
        // with `io_hide` before `preset_hide` did not read back equal from its own hash).
        hidden.sort_by_key(|h| HIDABLE_CONTROLS.iter().position(|(k, _)| k == h));
        // The preset first: it supplies the other keys' defaults.
        let preset = values[0].as_deref().map(str::trim).and_then(Preset::from_name).unwrap_or(Preset::XorConflict);

        // The first links' toy keys become `arena` once (the page then writes the new key). The
        // old page wrote every key, so an old toy link holds `arena` too, which did nothing on a
        // toy: there `methods`/`c` win. On a multi-task preset they did nothing: dropped quietly.
        if preset.is_toy() {
            let arena_index = PROPS.iter().position(|p| p.key == "arena").expect("arena key");
            let (arena, mut legacy_notices) = translate_legacy(legacy_methods.as_deref(), legacy_c.as_deref());
            if let Some(a) = arena {
                values[arena_index] = Some(a);
            }
            notices.append(&mut legacy_notices);
        }
        let at = |key: &str| PROPS.iter().position(|p| p.key == key).expect("key in table");
        if values[at("showTest")].is_none() {
            values[at("showTest")] = tf_show_test;
        }
        if values[at("init")].is_none() {
            match tf_init_zero.as_deref() {
                Some("true") => values[at("init")] = Some("zero".into()),
                Some("false") | None => {}
                Some(other) => notices.push(format!("initZero={}: expected true or false; ignored", short(other))),
            }
        }
        let mut parsed: Vec<Value> = Vec::with_capacity(PROPS.len());
        for (prop, raw) in PROPS.iter().zip(values) {
            let default_text = preset.default_for(prop.key).unwrap_or_else(|| prop.default.to_string());
            let default = parse_value(prop, &default_text).expect("defaults parse");
            let value = match raw {
                None => default,
                Some(raw) => match parse_value(prop, &raw) {
                    Ok(v) => v,
                    Err(Fix::Clamped(v, why)) => {
                        notices.push(format!("{}={}: {why}", prop.key, short(&raw)));
                        v
                    }
                    Err(Fix::Dropped(why)) => {
                        notices.push(format!("{}={}: {why}; using {default_text}", prop.key, short(&raw)));
                        default
                    }
                },
            };
            parsed.push(value);
        }

        let get = |key: &str| &parsed[PROPS.iter().position(|p| p.key == key).expect("key in table")];
        let tasks: Vec<Dataset> = get("tasks").list().iter().filter_map(|n| n.parse().ok()).collect();
        let mut losses: Vec<LossKind> =
            get("losses").list().iter().map(|n| if *n == "mse" { LossKind::Mse } else { LossKind::Bce }).collect();
        // One loss per task: a short list is padded with each task's natural loss, a long one cut.
        if losses.len() != tasks.len() && matches!(preset.family(), crate::preset::Family::TaskSet) {
            notices.push(format!(
                "losses: {} given for {} tasks; {}",
                losses.len(),
                tasks.len(),
                if losses.len() > tasks.len() {
                    "extra ones dropped"
                } else {
                    "the missing ones take the task’s natural loss"
                }
            ));
            losses.truncate(tasks.len());
            for d in &tasks[losses.len()..] {
                losses.push(natural_loss(*d));
            }
        }
        let mut arena = get("arena").specs();
        let limit = arena_limit(preset.is_toy());
        if arena.len() > limit {
            notices.push(format!(
                "arena: at most {MAX_ARENA} methods side by side on a multi-task preset ({MAX_ARENA_TOY} on the toys); kept the first {limit}"
            ));
            arena.truncate(limit);
        }
        let conflict_task = (get("conflictTask").num() as usize).min(tasks.len().max(1));
        let experts = get("experts").num() as usize;
        let mut k = get("k").num() as usize;
        if k > experts {
            notices.push(format!("k={k}: at most the number of experts ({experts}); using {experts}"));
            k = experts;
        }
        let on: Vec<Feature> = Feature::ALL.into_iter().filter(|f| get(f.key()).flag()).collect();
        let features = FeatureSet::new(&on).unwrap_or_else(|why| {
            notices.push(format!("input features: {why}; using x, y"));
            FeatureSet::raw()
        });
        let moe = (get("model").name() == "moe").then(|| MoeChoice {
            router: get("router").name(),
            experts,
            k,
            cf: get("cf").num(),
            task_experts: get("taskExperts").num() as usize,
            gamma: get("gamma").num(),
            aux_entropy: get("auxEntropy").num(),
        });
        let state = State {
            preset,
            tasks,
            inputs: get("inputs").name(),
            points: get("points").num() as usize,
            noise: get("noise").num() as u32,
            train_pct: get("trainRatio").num() as u32,
            conflict: get("conflict").num(),
            conflict_task,
            seed: get("seed").num() as u64,
            hidden_layers: get("hidden").shape(),
            activation: get("activation").name().parse().unwrap_or(Activation::Tanh),
            losses,
            tied_heads: get("tiedHeads").flag(),
            batch: get("batch").num() as usize,
            features,
            regularization: Penalty::parse(get("regularization").name()),
            reg_rate: get("regularizationRate").num(),
            init: Init::parse(get("init").name()).unwrap_or_default(),
            moe,
            arena,
            view: View::from_name(get("view").name()),
            optimizer: Opt::from_name(get("optimizer").name()),
            lr: get("lr").num(),
            precision: Precision::parse(get("precision").name()).unwrap_or_default(),
            spf: get("spf").num() as u32,
            play: get("play").flag(),
            layers: get("layers").flag(),
            show_test: get("showTest").flag(),
            discretize: get("discretize").flag(),
            hide_text: get("hideText").flag(),
            land_directions: get("landDirections").name(),
            land_grid: get("landGrid").num() as usize,
            land_task: get("landTask").num() as usize,
            hidden,
            lesson,
        };
        (state, cap_notices(notices))
    }

    /// The hash (without `#`), every key in table order, then the `_hide` flags that are set.
    pub fn to_hash(&self) -> String {
        let join = |v: Vec<String>| v.join(",");
        let mut parts: Vec<String> = PROPS
            .iter()
            .map(|p| {
                let v = match p.key {
                    "preset" => self.preset.name().to_string(),
                    "tasks" => join(self.tasks.iter().map(|d| d.name().to_string()).collect()),
                    "inputs" => self.inputs.to_string(),
                    "points" => self.points.to_string(),
                    "noise" => self.noise.to_string(),
                    "trainRatio" => self.train_pct.to_string(),
                    "conflict" => fmt_num(self.conflict),
                    "conflictTask" => self.conflict_task.to_string(),
                    "seed" => self.seed.to_string(),
                    "hidden" => join(self.hidden_layers.iter().map(|w| w.to_string()).collect()),
                    "activation" => self.activation.name().to_string(),
                    "losses" => join(self.losses.iter().map(|l| l.name().to_string()).collect()),
                    "tiedHeads" => self.tied_heads.to_string(),
                    "batch" => self.batch.to_string(),
                    key @ ("x" | "y" | "xSquared" | "ySquared" | "xTimesY" | "sinX" | "sinY") => {
                        Feature::from_key(key).is_some_and(|f| self.features.contains(f)).to_string()
                    }
                    "regularization" => self.regularization.map_or("none", Penalty::name).to_string(),
                    "regularizationRate" => fmt_num(self.reg_rate),
                    "init" => self.init.name().to_string(),
                    "model" => if self.moe.is_some() { "moe" } else { "mlp" }.to_string(),
                    "router" => self.moe_or_default().router.to_string(),
                    "experts" => self.moe_or_default().experts.to_string(),
                    "k" => self.moe_or_default().k.to_string(),
                    "cf" => fmt_num(self.moe_or_default().cf),
                    "taskExperts" => self.moe_or_default().task_experts.to_string(),
                    "gamma" => fmt_num(self.moe_or_default().gamma),
                    "auxEntropy" => fmt_num(self.moe_or_default().aux_entropy),
                    "arena" => join(self.arena.iter().map(|s| s.to_text()).collect()),
                    "view" => self.view.name().to_string(),
                    "optimizer" => self.optimizer.name().to_string(),
                    "lr" => fmt_num(self.lr),
                    "precision" => self.precision.name().to_string(),
                    "spf" => self.spf.to_string(),
                    "play" => self.play.to_string(),
                    "layers" => self.layers.to_string(),
                    "showTest" => self.show_test.to_string(),
                    "discretize" => self.discretize.to_string(),
                    "hideText" => self.hide_text.to_string(),
                    "landDirections" => self.land_directions.to_string(),
                    "landGrid" => self.land_grid.to_string(),
                    "landTask" => self.land_task.to_string(),
                    other => unreachable!("key {other} has no writer"),
                };
                format!("{}={}", p.key, v)
            })
            .collect();
        if let Some(n) = self.lesson {
            parts.push(format!("lesson={n}"));
        }
        for (control, _) in HIDABLE_CONTROLS {
            if self.is_hidden(control) {
                parts.push(format!("{control}_hide=true"));
            }
        }
        parts.join("&")
    }
}

/// The MoE block a page run uses (`model=moe`): router name, experts, k and capacity factor.
/// k applies to the routers that take one (noisy-topk, task, dselect-k's selectors), cf to
/// switch, top2 and expert-choice; task experts to CGC and PLE (per level), γ and the
/// entropy weight to DSelect-k; the others ignore them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeChoice {
    pub router: &'static str,
    pub experts: usize,
    pub k: usize,
    pub cf: f64,
    pub task_experts: usize,
    pub gamma: f64,
    pub aux_entropy: f64,
}

impl MoeChoice {
    /// The table's defaults (what the MoE controls show while the model is the MLP).
    pub const DEFAULT: MoeChoice =
        MoeChoice { router: "task", experts: 4, k: 1, cf: 1.25, task_experts: 1, gamma: 1.0, aux_entropy: 0.0 };

    pub fn uses_k(&self) -> bool {
        matches!(self.router, "noisy-topk" | "task" | "dselect-k")
    }

    pub fn uses_cf(&self) -> bool {
        matches!(self.router, "switch" | "top2" | "expert-choice")
    }

    pub fn uses_task_experts(&self) -> bool {
        matches!(self.router, "cgc" | "ple")
    }

    /// γ and the entropy weight: DSelect-k's.
    pub fn uses_gamma(&self) -> bool {
        self.router == "dselect-k"
    }
}

impl State {
    /// The MoE settings, or the defaults while the model is the MLP (they are written to the
    /// hash either way, so switching to MoE starts from them).
    pub fn moe_or_default(&self) -> MoeChoice {
        self.moe.unwrap_or(MoeChoice::DEFAULT)
    }
}

/// The first links' toy keys: `methods` (a subset of `LEGACY_METHODS`) and CAGrad's `c` become
/// the `arena` key's text (`cagrad` takes `c`, 0.5 when absent, clamped to [0, 10] as then).
/// Returns the new `arena` value (`None`: nothing to translate)
/// and the notices: that the key was renamed, and any value dropped or clamped.
pub fn translate_legacy(methods: Option<&str>, c: Option<&str>) -> (Option<String>, Vec<String>) {
    let mut notices = Vec::new();
    if methods.is_none() && c.is_none() {
        return (None, notices);
    }
    let mut cv = 0.5;
    if let Some(raw) = c {
        match raw.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => {
                cv = x.clamp(0.0, 10.0);
                if cv != x {
                    notices.push(format!("c={}: out of range [0, 10]; clamped to {}", short(raw), fmt_num(cv)));
                }
            }
            _ => notices.push(format!("c={}: not a finite number; using 0.5", short(raw))),
        }
    }
    let raw = methods.unwrap_or("mean,pcgrad,mgda,cagrad");
    let wanted: Vec<&str> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let unknown: Vec<&str> = wanted.iter().copied().filter(|w| !LEGACY_METHODS.contains(w)).collect();
    if !unknown.is_empty() {
        notices.push(format!(
            "methods={}: dropped unknown name(s) {} (known: {})",
            short(raw),
            unknown.join(", "),
            LEGACY_METHODS.join(", ")
        ));
    }
    // Kept in the old list's order, as the old page ran them.
    let specs: Vec<String> = LEGACY_METHODS
        .iter()
        .filter(|n| wanted.contains(n))
        .map(|n| if *n == "cagrad" { format!("cagrad:c={}", fmt_num(cv)) } else { n.to_string() })
        .collect();
    let text = specs.join(",");
    notices.push(format!("the keys “methods” and “c” were renamed: now arena={text}"));
    (Some(text), notices)
}

/// Notices shown in full; beyond them one line counts the rest (a hostile hash of a million bad
/// pairs must not render a million list items).
pub const MAX_NOTICES: usize = 20;
/// The longest notice shown (a notice quotes the raw value, which a link can make megabytes long).
pub const MAX_NOTICE_CHARS: usize = 240;
const MORE_PREFIX: &str = "and ";
const MORE_SUFFIX: &str = " more adjusted values";

/// A raw value as a notice quotes it: at most 40 characters, so the reason after it stays visible.
fn short(raw: &str) -> String {
    match raw.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &raw[..cut]),
        None => raw.to_string(),
    }
}

/// The notices as shown: the first `MAX_NOTICES`, each cut to `MAX_NOTICE_CHARS`, then
/// "and K more adjusted values". Idempotent, and a list that already ends in such a line (a
/// capped list with other notices put in front) counts that line's K, so K stays exact.
pub fn cap_notices(mut notices: Vec<String>) -> Vec<String> {
    let mut more = 0;
    if let Some(k) =
        notices.last().and_then(|l| l.strip_prefix(MORE_PREFIX)?.strip_suffix(MORE_SUFFIX)?.parse::<usize>().ok())
    {
        notices.pop();
        more = k;
    }
    if notices.len() > MAX_NOTICES {
        more += notices.len() - MAX_NOTICES;
        notices.truncate(MAX_NOTICES);
    }
    for n in &mut notices {
        if let Some((cut, _)) = n.char_indices().nth(MAX_NOTICE_CHARS) {
            n.truncate(cut);
            n.push('…');
        }
    }
    if more > 0 {
        notices.push(format!("{MORE_PREFIX}{more}{MORE_SUFFIX}"));
    }
    notices
}

/// The loss a dataset's labels call for: BCE for ±1 labels, MSE for real values.
pub fn natural_loss(d: Dataset) -> LossKind {
    if d.is_classification() {
        LossKind::Bce
    } else {
        LossKind::Mse
    }
}

/// A parsed value of one of the `Ty` kinds.
#[derive(Clone, Debug)]
enum Value {
    Name(&'static str),
    List(Vec<&'static str>),
    Shape(Vec<usize>),
    Specs(Vec<RunSpec>),
    Num(f64),
    Flag(bool),
}

impl Value {
    fn name(&self) -> &'static str {
        match self {
            Value::Name(n) => n,
            _ => "",
        }
    }
    fn list(&self) -> Vec<&'static str> {
        match self {
            Value::List(l) => l.clone(),
            _ => Vec::new(),
        }
    }
    fn shape(&self) -> Vec<usize> {
        match self {
            Value::Shape(s) => s.clone(),
            _ => Vec::new(),
        }
    }
    fn specs(&self) -> Vec<RunSpec> {
        match self {
            Value::Specs(s) => s.clone(),
            _ => Vec::new(),
        }
    }
    fn num(&self) -> f64 {
        match self {
            Value::Num(x) => *x,
            _ => 0.0,
        }
    }
    fn flag(&self) -> bool {
        matches!(self, Value::Flag(true))
    }
}

/// Why a raw value was not taken as is.
#[derive(Debug)]
enum Fix {
    /// Usable after a fix (the fixed value and what was done).
    Clamped(Value, String),
    /// Unusable: the default is kept.
    Dropped(String),
}

fn parse_value(prop: &Prop, raw: &str) -> Result<Value, Fix> {
    let raw = raw.trim();
    match prop.ty {
        Ty::Enum(names) => names
            .iter()
            .find(|n| **n == raw)
            .map(|n| Value::Name(n))
            .ok_or_else(|| Fix::Dropped(format!("unknown name (expected one of: {})", names.join(", ")))),
        Ty::Seq { names, min, max } => {
            let wanted: Vec<&str> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            let unknown: Vec<&str> = wanted.iter().copied().filter(|w| !names.contains(w)).collect();
            let mut kept: Vec<&'static str> =
                wanted.iter().filter_map(|w| names.iter().copied().find(|n| n == w)).collect();
            let mut why = Vec::new();
            if !unknown.is_empty() {
                why.push(format!("dropped unknown name(s) {} (known: {})", unknown.join(", "), names.join(", ")));
            }
            if kept.len() > max {
                kept.truncate(max);
                why.push(format!("kept the first {max}"));
            }
            if kept.len() < min {
                return Err(Fix::Dropped(format!("needs {min}–{max} names from: {}", names.join(", "))));
            }
            if why.is_empty() {
                Ok(Value::List(kept))
            } else {
                Err(Fix::Clamped(Value::List(kept), why.join("; ")))
            }
        }
        Ty::Shape { max_len, max_value } => {
            if raw.is_empty() {
                return Ok(Value::Shape(Vec::new()));
            }
            let mut widths = Vec::new();
            let mut why = Vec::new();
            for part in raw.split(',').map(str::trim) {
                match part.parse::<f64>() {
                    Ok(x) if x.is_finite() => {
                        let w = x.round().clamp(1.0, max_value as f64);
                        if w != x {
                            why.push(format!("{part} → {w}"));
                        }
                        widths.push(w as usize);
                    }
                    _ => return Err(Fix::Dropped(format!("“{part}” is not a layer width"))),
                }
            }
            if widths.len() > max_len {
                widths.truncate(max_len);
                why.push(format!("at most {max_len} layers"));
            }
            if why.is_empty() {
                Ok(Value::Shape(widths))
            } else {
                Err(Fix::Clamped(
                    Value::Shape(widths),
                    format!("widths are integers 1–{max_value}: {}", why.join(", ")),
                ))
            }
        }
        Ty::Specs { max } => {
            let mut specs = Vec::new();
            let mut why = Vec::new();
            for part in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                // `method@item@item`: a bad method or a bad option drops the entry.
                match RunSpec::parse(part) {
                    Ok(s) => specs.push(s),
                    Err(e) => why.push(format!("dropped “{part}” ({e})")),
                }
            }
            if specs.len() > max {
                specs.truncate(max);
                why.push(format!("at most {max} methods side by side"));
            }
            if specs.is_empty() {
                return Err(Fix::Dropped(if why.is_empty() { "no method given".into() } else { why.join("; ") }));
            }
            if why.is_empty() {
                Ok(Value::Specs(specs))
            } else {
                Err(Fix::Clamped(Value::Specs(specs), why.join("; ")))
            }
        }
        Ty::Number { min, max } => match raw.parse::<f64>() {
            Ok(x) if x.is_finite() => {
                if x < min || x > max {
                    let y = x.clamp(min, max);
                    Err(Fix::Clamped(
                        Value::Num(y),
                        format!("out of range [{}, {}]; clamped to {}", fmt_num(min), fmt_num(max), fmt_num(y)),
                    ))
                } else {
                    Ok(Value::Num(x))
                }
            }
            _ => Err(Fix::Dropped("not a finite number".into())),
        },
        Ty::Int { min, max } => match raw.parse::<f64>() {
            Ok(x) if x.is_finite() => {
                let r = x.round();
                let y = (r.clamp(min as f64, max as f64)) as i64;
                if r != x || r < min as f64 || r > max as f64 {
                    Err(Fix::Clamped(Value::Num(y as f64), format!("expected an integer in [{min}, {max}]; using {y}")))
                } else {
                    Ok(Value::Num(y as f64))
                }
            }
            _ => Err(Fix::Dropped("not a number".into())),
        },
        Ty::Bool => match raw {
            "true" | "1" => Ok(Value::Flag(true)),
            "false" | "0" => Ok(Value::Flag(false)),
            _ => Err(Fix::Dropped("expected true or false".into())),
        },
    }
}

/// Shortest round-tripping text for a number (`0.001`, `0.5`, `2`).
pub fn fmt_num(x: f64) -> String {
    format!("{x}")
}

/// Decode `%XX` escapes (and leave anything malformed as it is).
/// `%xx` escapes decoded (the hash's values).
pub fn decode(s: &str) -> String {
    percent_decode(s)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_for_every_preset() {
        let (s, notices) = State::from_hash("");
        assert!(notices.is_empty(), "{notices:?}");
        assert_eq!(s.preset, Preset::XorConflict);
        assert_eq!(s.tasks, vec![Dataset::Xor, Dataset::Xor]);
        assert_eq!(s.conflict, -0.8);
        assert_eq!(s.hidden_layers, vec![8, 8]);
        assert_eq!(s.arena.len(), 4);
        for p in Preset::ALL {
            let s = State::for_preset(p);
            let (t, n) = State::from_hash(&s.to_hash());
            assert!(n.is_empty(), "{}: {n:?}", p.name());
            assert_eq!(s, t, "{}", p.name());
        }
        let toy = State::for_preset(Preset::CagradToy);
        assert_eq!(toy.problem(), ProblemKind::CagradToy);
        let texts: Vec<String> = toy.arena.iter().map(|m| m.to_text()).collect();
        assert_eq!(texts, vec!["mean", "pcgrad", "mgda", "cagrad:c=0.5"], "concord-core's toy comparison");
        assert_eq!((toy.lr, toy.spf), (1e-3, 200));
    }

    #[test]
    fn preset_defaults_follow_concord_core_presets() {
        let s = State::for_preset(Preset::CircleVsGauss);
        assert_eq!(s.tasks, vec![Dataset::Circle, Dataset::Gauss]);
        assert_eq!((s.inputs, s.hidden_layers.clone(), s.tied_heads), ("union", vec![6, 6], false));
        let g = State::for_preset(Preset::GradnormScales);
        assert_eq!((g.lr, g.batch, g.activation), (1e-3, 100, Activation::Relu));
    }

    #[test]
    fn bad_values_are_fixed_with_notices() {
        let (s, notices) = State::from_hash(
            "#preset=cagrad-toy&methods=mean,foo,cagrad&c=-3&lr=abc&spf=1e9&play=maybe&bogus=1&view=l2&nosuch_hide=true&lr_hide=true",
        );
        assert_eq!(s.problem(), ProblemKind::CagradToy);
        let texts: Vec<String> = s.arena.iter().map(|m| m.to_text()).collect();
        assert_eq!(texts, vec!["mean", "cagrad:c=0"], "old keys translated, c clamped");
        assert_eq!(s.lr, 1e-3, "the toy preset's default learning rate");
        assert_eq!(s.spf, 20_000);
        assert!(s.play);
        assert_eq!(s.view, View::L2);
        assert!(s.is_hidden("lr"));
        // methods (foo), c, lr, spf, play, bogus, nosuch_hide (x_hide is now a TF feature flag), and the rename notice.
        assert_eq!(notices.len(), 8, "{notices:?}");
    }

    #[test]
    fn moe_keys_are_read_clamped_and_written_back() {
        let s = State::for_preset(Preset::TaskExperts);
        assert_eq!(s.moe, Some(MoeChoice::DEFAULT));
        assert!(s.hidden_layers.is_empty(), "task-experts has no dense pre-layer");
        assert_eq!(State::for_preset(Preset::TaskExpertsDense).moe, None);
        assert_eq!(State::for_preset(Preset::TaskExpertsDense).hidden_layers, vec![12, 12]);
        // experts above 16 clamp, k above the experts drops to E, an unknown router keeps "task",
        // a capacity factor below 0.1 clamps.
        let (s, n) = State::from_hash("model=moe&router=top3&experts=40&k=9&cf=0.01");
        assert_eq!(s.moe, Some(MoeChoice { router: "task", experts: 16, k: 9, cf: 0.1, ..MoeChoice::DEFAULT }));
        assert_eq!(n.len(), 3, "{n:?}");
        let (s, n) = State::from_hash("model=moe&router=switch&experts=3&k=5&cf=2");
        assert_eq!(s.moe, Some(MoeChoice { router: "switch", experts: 3, k: 3, cf: 2.0, ..MoeChoice::DEFAULT }));
        assert_eq!(n.len(), 1, "k clamped to E: {n:?}");
        let (t, n2) = State::from_hash(&s.to_hash());
        assert!(n2.is_empty(), "{n2:?}");
        assert_eq!(s, t);
        let (s, _) = State::from_hash("model=banana");
        assert_eq!(s.moe, None);
    }

    #[test]
    fn multitask_keys_are_clamped_or_dropped() {
        let (s, n) = State::from_hash(
            "preset=nope&tasks=xor,moon,circle,gauss,spiral&hidden=8,300,2.5&noise=80&conflict=-7&arena=mean,bogus,cagrad:c=0.3,upgrad+uw,pcgrad&losses=bce",
        );
        assert_eq!(s.preset, Preset::XorConflict);
        assert_eq!(s.tasks, vec![Dataset::Xor, Dataset::Circle, Dataset::Gauss, Dataset::Spiral]);
        assert_eq!(s.hidden_layers, vec![8, 64, 3]);
        assert_eq!(s.noise, 50);
        assert_eq!(s.conflict, -1.0);
        let arena: Vec<String> = s.arena.iter().map(|a| a.to_text()).collect();
        assert_eq!(arena, vec!["mean", "cagrad:c=0.3", "upgrad+uw", "pcgrad"]);
        assert_eq!(s.losses, vec![LossKind::Bce; 4], "padded with the tasks' natural loss");
        // preset, tasks, hidden, noise, conflict, arena, losses.
        assert_eq!(n.len(), 7, "{n:?}");
        let (t, n2) = State::from_hash(&s.to_hash());
        assert!(n2.is_empty(), "{n2:?}");
        assert_eq!(s, t);
        let (_, n3) = State::from_hash("tasks=xor&arena=");
        assert_eq!(n3.len(), 2, "{n3:?}");
    }

    #[test]
    fn landscape_keys_round_trip_and_bad_values_fall_back() {
        let (s, n) =
            State::from_hash("#preset=xor-conflict&landDirections=pca&landGrid=31&landTask=2&landscape_hide=true");
        assert!(n.is_empty(), "{n:?}");
        assert_eq!((s.land_directions, s.land_grid, s.land_task), ("pca", 31, 2));
        assert!(s.is_hidden("landscape"));
        assert_eq!(State::from_hash(&s.to_hash()).0, s);
        let (d, _) = State::from_hash("");
        assert_eq!((d.land_directions, d.land_grid, d.land_task), ("random", 51, 0));
        let (b, n) = State::from_hash("#landDirections=sideways&landGrid=500&landTask=x");
        assert_eq!((b.land_directions, b.land_grid, b.land_task), ("random", 101, 0));
        assert_eq!(n.len(), 3, "{n:?}");
        assert!(n[0].contains("landDirections=sideways"), "{n:?}");
        // Landscape settings are views: they never rebuild the arena.
        let mut v = d.clone();
        v.land_directions = "gradients";
        v.land_grid = 21;
        v.land_task = 1;
        assert!(!d.needs_reset(&v));
    }

    #[test]
    fn precision_key_round_trips_rebuilds_and_falls_back() {
        let (d, _) = State::from_hash("");
        assert_eq!(d.precision, Precision::F32, "the fast path by default");
        let (s, n) = State::from_hash("#precision=f64");
        assert!(n.is_empty(), "{n:?}");
        assert_eq!(s.precision, Precision::F64);
        assert!(s.to_hash().contains("precision=f64"));
        assert_eq!(State::from_hash(&s.to_hash()).0, s);
        // The arithmetic changes the numbers: the runs restart.
        assert!(d.needs_reset(&s));
        let (b, n) = State::from_hash("#precision=f16");
        assert_eq!(b.precision, Precision::F32);
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(n[0].contains("precision=f16"), "{n:?}");
    }

    #[test]
    fn only_data_model_and_method_changes_rebuild_the_arena() {
        let a = State::default();
        let mut b = a.clone();
        b.lr = 0.5;
        b.spf = 99;
        b.layers = true;
        assert!(!a.needs_reset(&b));
        b.noise = 10;
        assert!(a.needs_reset(&b));
    }

    #[test]
    fn old_toy_links_translate_once_into_the_arena_key() {
        // The first links: methods + c become arena, cagrad taking c; a notice names the rename.
        let (s, n) = State::from_hash("#preset=cagrad-toy&methods=mean,mgda,cagrad&c=0.3");
        let texts: Vec<String> = s.arena.iter().map(|m| m.to_text()).collect();
        assert_eq!(texts, vec!["mean", "mgda", "cagrad:c=0.3"]);
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(n[0].contains("renamed") && n[0].contains("arena=mean,mgda,cagrad:c=0.3"), "{n:?}");
        // Written back in the new key only, which reads back without a notice.
        let hash = s.to_hash();
        assert!(hash.contains("arena=mean,mgda,cagrad:c=0.3") && !hash.contains("methods="), "{hash}");
        let (t, n2) = State::from_hash(&hash);
        assert!(n2.is_empty(), "{n2:?}");
        assert_eq!(s, t);
        // Without cagrad, c has nothing to apply to; without c, cagrad takes the old 0.5.
        assert_eq!(translate_legacy(Some("mean,mgda"), Some("0.3")).0.as_deref(), Some("mean,mgda"));
        assert_eq!(translate_legacy(Some("cagrad,sum"), None).0.as_deref(), Some("sum,cagrad:c=0.5"));
        // c alone: the old default methods with that c.
        assert_eq!(translate_legacy(None, Some("2")).0.as_deref(), Some("mean,pcgrad,mgda,cagrad:c=2"));
        // An old link copied from the page holds every key, `arena` included (its default, unused
        // on a toy): on a toy the old keys win, so the link runs what it ran then.
        let (s, n) = State::from_hash("preset=cagrad-toy&arena=mean,pcgrad,mgda,cagrad&methods=mean,cagrad&c=1");
        let texts: Vec<String> = s.arena.iter().map(|m| m.to_text()).collect();
        assert_eq!(texts, vec!["mean", "cagrad:c=1"]);
        assert!(n.iter().any(|m| m.contains("renamed")), "{n:?}");
        // On a multi-task preset they never applied: the arena stays, no notice.
        let (s, n) = State::from_hash("preset=xor-conflict&arena=upgrad&methods=mean&c=1");
        assert_eq!(s.arena, vec![RunSpec::plain(MethodSpec::plain("upgrad"))]);
        assert!(n.is_empty(), "{n:?}");
        // Nothing old, nothing translated.
        assert_eq!(translate_legacy(None, None), (None, Vec::new()));
    }

    #[test]
    fn a_million_bad_pairs_give_bounded_notices() {
        // Unknown keys, bad `_hide` flags, unknown controls and bad values, a million pairs in all.
        let kinds = ["bogus{i}=1", "lr_hide=maybe{i}", "x{i}_hide=true", "lr=abc{i}"];
        let hash: String =
            (0..1_000_000).map(|i| kinds[i % 4].replace("{i}", &i.to_string())).collect::<Vec<_>>().join("&");
        let start = std::time::Instant::now();
        let (s, n) = State::from_hash(&hash);
        // Linear work: well under a second in release, a few in a debug build on a busy machine.
        assert!(start.elapsed().as_secs_f64() < 30.0, "{:?}", start.elapsed());
        assert_eq!(n.len(), MAX_NOTICES + 1, "{:?}", &n[..3]);
        assert!(n[0].contains("bogus0"), "{}", n[0]);
        // Every pair but the last lr=… gives one notice (lr keeps the last value given: one notice).
        let all = 1_000_000 - 250_000 + 1;
        assert_eq!(n[MAX_NOTICES], format!("and {} more adjusted values", all - MAX_NOTICES));
        assert_eq!(s.lr, State::default().lr);
        // Capping a capped list (with other notices in front) keeps the count exact.
        let mut more = vec!["figure attribute".to_string()];
        more.extend(n.clone());
        let again = cap_notices(more);
        assert_eq!(again.len(), MAX_NOTICES + 1);
        assert_eq!(again[MAX_NOTICES], format!("and {} more adjusted values", all + 1 - MAX_NOTICES));
        assert_eq!(cap_notices(n.clone()), n, "idempotent");
        // Huge lists in one value: linear too, one notice each, the lists kept within their caps.
        let big = |x: &str| vec![x; 200_000].join(",");
        let (s, n) =
            State::from_hash(&format!("arena={}&tasks={}&hidden={}", big("mean,bogus"), big("xor,moon"), big("8,300")));
        assert_eq!((s.arena.len(), s.tasks.len(), s.hidden_layers.len()), (MAX_ARENA, MAX_TASKS, 6));
        assert_eq!(n.len(), 5, "tasks, hidden, arena, losses (padded), arena cap: {n:?}");
        assert!(n[0].contains("dropped unknown name(s) moon"), "the reason stays visible: {}", n[0]);
        assert!(start.elapsed().as_secs_f64() < 60.0, "{:?}", start.elapsed());
        // A megabyte value is quoted cut short.
        let (_, n) = State::from_hash(&format!("lr={}", "9".repeat(1 << 20)));
        assert_eq!(n.len(), 1);
        assert!(n[0].chars().count() <= 100 && n[0].contains("9…: not a finite number"), "{}", n[0]);
    }

    #[test]
    fn arena_runs_carry_their_options_and_round_trip() {
        let (s, n) = State::from_hash("arena=mean,mean@sam,mean@spam@spikes,mean@sequential=20");
        assert!(n.is_empty(), "{n:?}");
        let texts: Vec<String> = s.arena.iter().map(|r| r.to_text()).collect();
        assert_eq!(texts, ["mean", "mean@sam", "mean@spam@spikes", "mean@sequential=20"]);
        assert_eq!(s.arena[1].options.dynamics.sam.map(|d| d.rho), Some(0.05));
        assert_eq!(s.arena[2].options.optimizer.as_deref(), Some("spam"));
        assert!(s.arena[2].options.dynamics.spikes);
        assert_eq!(s.arena[3].label(), "Mean · sequential/20");
        // The page writes the same arena back, and reads its own link without notices.
        assert!(s.to_hash().contains("arena=mean,mean@sam,mean@spam@spikes,mean@sequential=20"), "{}", s.to_hash());
        let (t, n2) = State::from_hash(&s.to_hash());
        assert!(n2.is_empty(), "{n2:?}");
        assert_eq!(s, t);
        // A bad option drops its entry with a notice naming it, like a bad method; the rest stay.
        let (s, n) = State::from_hash("arena=mean@bogus,upgrad@clip=1,mean@sam=-1");
        let texts: Vec<String> = s.arena.iter().map(|r| r.to_text()).collect();
        assert_eq!(texts, ["upgrad@clip=1"]);
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(n[0].contains("mean@bogus") && n[0].contains("unknown run option"), "{n:?}");
        let (s, n) = State::from_hash("arena=mean@sam=-1,mgda");
        assert_eq!(s.arena.iter().map(|r| r.to_text()).collect::<Vec<_>>(), ["mgda"]);
        assert!(n[0].contains("mean@sam=-1") && n[0].contains("positive number"), "{n:?}");
    }

    #[test]
    fn an_arena_over_the_cap_keeps_its_presets_limit() {
        // The toys take more methods than a multi-task preset: each keeps its own limit.
        let many = vec!["mean"; MAX_ARENA_TOY + 1].join(",");
        let (s, n) = State::from_hash(&format!("preset=cagrad-toy&arena={many}"));
        assert_eq!(s.arena.len(), MAX_ARENA_TOY, "{n:?}");
        assert!(n.iter().any(|m| m.contains(&format!("at most {MAX_ARENA_TOY} methods"))), "{n:?}");
        let (s, n) = State::from_hash(&format!("preset=xor-conflict&arena={many}"));
        assert_eq!(s.arena.len(), MAX_ARENA);
        assert!(n.iter().any(|m| m.contains(&format!("kept the first {MAX_ARENA}"))), "{n:?}");
    }

    #[test]
    fn percent_escapes_and_empty_lists() {
        let (s, n) = State::from_hash("preset=cagrad-toy&arena=mean%2Cmgda&play=false");
        assert!(n.is_empty(), "{n:?}");
        assert_eq!(s.arena, vec![RunSpec::plain(MethodSpec::plain("mean")), RunSpec::plain(MethodSpec::plain("mgda"))]);
        assert!(!s.play);
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%e2%88%9e"), "∞");
    }

    /// The loss-aware methods (MoCo, DB-MTL, MGDA gn=loss) come from a link like any other;
    /// with a loss weighting on top the run is dropped with the reason, the others stay.
    #[test]
    fn loss_aware_methods_load_from_the_url() {
        let (s, n) = State::from_hash("preset=xor-conflict&arena=moco,db-mtl:beta=0.5,mgda:gn=loss+");
        assert!(n.is_empty(), "{n:?}");
        let texts: Vec<String> = s.arena.iter().map(|m| m.to_text()).collect();
        assert_eq!(texts, vec!["moco", "db-mtl:beta=0.5", "mgda:gn=loss+"]);
        assert!(s.arena.iter().all(|r| r.method.aggregator.needs_losses()));
        let (t, n) = State::from_hash(&s.to_hash());
        assert!(n.is_empty(), "{n:?}");
        assert_eq!(s, t);
        let (s, n) = State::from_hash("preset=xor-conflict&arena=moco+uw,mean");
        assert_eq!(s.arena, vec![RunSpec::plain(MethodSpec::plain("mean"))]);
        assert!(n.len() == 1 && n[0].contains("moco reads the raw task losses itself"), "{n:?}");
    }
}
