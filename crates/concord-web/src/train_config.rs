//! The page state (and the user's CSV, if any) → concord-core `TrainConfig`s: one base config,
//! then one per method that differs only in the method (and, for the toys, one per published
//! start), so every run has the same data, the same seed and the same initial weights.

use crate::preset::Family;
use crate::state::State;
use concord_core::data::FeatureSet;
use concord_core::data::{
    Conflict, DataRng, GradNormConfig, InputSource, LabelKind, MultiTaskData, SinusoidConfig, TaskSetConfig,
};
use concord_core::dynamics::{LrSchedule, RunSpec};
use concord_core::model::moe::{AuxWeights, RouterKind, TaskGate};
use concord_core::model::{HeadConfig, LossKind, MlpConfig};
use concord_core::train::{DataSource, Init, MoeSpec, Regularization, TrainConfig};
use concord_core::MethodSpec;
use rand::SeedableRng;

/// A page run's step limit: concord-core's longest run (10⁷ steps), on every preset, toys too.
/// It is no memory cap — a run keeps a bounded history, loss curve, trail and snapshot set, so a
/// run left playing keeps flat memory (RELIABILITY.md, "Memory") and goes on as TF Playground's
/// do, for hours. A run that reaches it stops with `run_limit_message`, the same on every
/// backend (the session words it, from the read-back's step count).
pub const MAX_RUN_STEPS: usize = concord_core::train::MAX_STEPS;

/// Why a run stopped at its limit of `limit` steps.
pub fn run_limit_message(limit: usize) -> String {
    format!("step {limit}: the run reached the page's limit of {limit} steps and stopped")
}

#[cfg(feature = "test-hooks")]
thread_local! {
    /// A lower limit for the browser tests (`window.concord._setRunLimit`), from the next reset.
    static RUN_LIMIT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Test hook: the runs built from now on stop at `limit` steps (`None`: `MAX_RUN_STEPS`).
#[cfg(feature = "test-hooks")]
pub fn set_run_limit(limit: Option<usize>) {
    RUN_LIMIT.with(|l| l.set(limit.map(|n| n.clamp(1, MAX_RUN_STEPS))));
}

/// The step limit of the runs built now.
pub fn run_limit() -> usize {
    #[cfg(feature = "test-hooks")]
    if let Some(limit) = RUN_LIMIT.with(std::cell::Cell::get) {
        return limit;
    }
    MAX_RUN_STEPS
}
/// Test losses (and the loss curves) every this many steps.
pub const EVAL_EVERY: usize = 5;

fn model(state: &State, input_dim: usize, heads: Vec<HeadConfig>) -> MlpConfig {
    let tied = state.tied_heads && heads.windows(2).all(|w| w[0].out_dim == w[1].out_dim);
    MlpConfig {
        input_dim,
        hidden: state.hidden_layers.clone(),
        activation: state.activation,
        heads,
        tied_head_init: tied,
        head_init_scale: if tied { 0.1 } else { 1.0 },
    }
}

/// The heads for the CSV's columns: ±1 labels take the chosen loss (BCE or MSE), classes take
/// softmax cross-entropy, real values MSE.
fn csv_heads(state: &State, data: &MultiTaskData) -> Vec<HeadConfig> {
    data.kinds
        .iter()
        .enumerate()
        .map(|(t, kind)| match kind {
            LabelKind::Binary => HeadConfig { out_dim: 1, loss: state.losses.get(t).copied().unwrap_or(LossKind::Bce) },
            LabelKind::Classes { k } => HeadConfig { out_dim: *k, loss: LossKind::SoftmaxCe },
            LabelKind::Regression => HeadConfig { out_dim: 1, loss: LossKind::Mse },
        })
        .collect()
}

/// Width of each expert's hidden layer (concord-core's default and task-experts').
pub const EXPERT_HIDDEN: usize = 8;

/// The MoE block of `model=moe`: k, the capacity factor, the task experts, γ and the entropy
/// weight only go to the routers that take them (concord-core rejects them elsewhere); task
/// routers use a gate per task.
fn moe_spec(state: &State) -> Result<Option<MoeSpec>, String> {
    let Some(c) = state.moe else { return Ok(None) };
    let router =
        RouterKind::from_name(c.router, c.uses_k().then_some(c.k), c.uses_cf().then_some(c.cf), TaskGate::PerTask)?
            .with_arch_options(c.uses_task_experts().then_some(c.task_experts), c.uses_gamma().then_some(c.gamma))?;
    let aux = AuxWeights { entropy: if c.uses_gamma() { c.aux_entropy } else { 0.0 }, ..AuxWeights::default() };
    Ok(Some(MoeSpec { router, experts: c.experts, expert_hidden: EXPERT_HIDDEN, aux }))
}

/// The config every arena run shares (aggregator `mean`, no weighting).
pub fn base_config(state: &State, csv: Option<&MultiTaskData>) -> Result<TrainConfig, String> {
    let train_ratio = state.train_pct as f64 / 100.0;
    let one_head = |loss| HeadConfig { out_dim: 1, loss };
    let (data, model, batch) = match (csv, state.preset.family()) {
        (Some(points), _) => {
            // The split indexes every column by the points (a run file's data is checked too).
            points.validate()?;
            let mut data = points.clone();
            let mut rng = DataRng::seed_from_u64(state.seed);
            data.shuffle_and_split(&mut rng, train_ratio);
            if data.n_train == 0 {
                return Err(format!(
                    "a {} % train split of {} points leaves no training point",
                    state.train_pct,
                    data.len()
                ));
            }
            let heads = csv_heads(state, &data);
            (DataSource::Points { data }, Some(model(state, state.features.len(), heads)), Some(state.batch))
        }
        (None, Family::TaskSet) => {
            let m = state.tasks.len();
            let conflict = (state.conflict < 1.0)
                .then_some(Conflict { task: state.conflict_task.clamp(1, m) - 1, kappa: state.conflict });
            let inputs = match state.inputs {
                "union" => InputSource::Union,
                "uniform" => InputSource::Uniform,
                _ => InputSource::Native { task: 0 },
            };
            let config = TaskSetConfig {
                tasks: state.tasks.clone(),
                n: state.points,
                noise: state.noise as f64 / 100.0,
                train_ratio,
                seed: state.seed,
                inputs,
                conflict,
            };
            let heads = state.losses.iter().map(|&l| one_head(l)).collect();
            (DataSource::TaskSet { config }, Some(model(state, state.features.len(), heads)), Some(state.batch))
        }
        (None, Family::GradNorm) => {
            let gc = GradNormConfig {
                input_dim: 50,
                output_dim: 10,
                sigmas: vec![1.0, 100.0],
                b_std: 10.0,
                eps_std: 3.5,
                seed: state.seed,
            };
            let heads = vec![HeadConfig { out_dim: 10, loss: LossKind::Mse }; 2];
            // GradNorm's sets are drawn apart: `points` train, a fixed 200 test.
            let data = DataSource::GradNorm { config: gc, n_train: state.points, n_test: 200 };
            (data, Some(model(state, 50, heads)), Some(state.batch))
        }
        (None, Family::Sinusoid) => {
            let sc = SinusoidConfig::phase_shifted(3, 1.0, 2.0 * std::f64::consts::PI / 3.0, state.points, state.seed);
            let heads = vec![one_head(LossKind::Mse); 3];
            (DataSource::Sinusoid { config: sc, train_ratio }, Some(model(state, 1, heads)), Some(state.batch))
        }
        (None, Family::Pareto) => (DataSource::ParetoSynthetic { n: 20 }, None, None),
        (None, Family::Toy(_)) => {
            // concord-core's toy preset (record cadence, first start); the page's optimizer,
            // learning rate and step limit.
            let core = state.preset.core().config();
            return Ok(TrainConfig {
                optimizer: state.optimizer.train(state.lr),
                seed: state.seed,
                steps: run_limit(),
                ..core
            });
        }
    };
    // A batch as large as the train set is full-batch training (the trainer would reject it).
    let n_train = match &data {
        DataSource::TaskSet { config } => (config.n as f64 * train_ratio).floor() as usize,
        DataSource::Points { data } => data.n_train,
        DataSource::GradNorm { n_train, .. } => *n_train,
        DataSource::Sinusoid { config, train_ratio } => (config.n as f64 * train_ratio).floor() as usize,
        _ => 0,
    };
    let batch_size = batch.filter(|b| *b < n_train);
    // The MoE block needs a network (the Pareto problem has none).
    let moe = if model.is_some() { moe_spec(state)? } else { None };
    let (features, regularization, init) = trunk_options(state, &data, model.is_some() && moe.is_none());
    let mut model = model;
    if let (Some(m), None) = (model.as_mut(), &features) {
        // The raw point (also what an MoE model reads: it takes no feature map).
        if matches!(data, DataSource::TaskSet { .. } | DataSource::Points { .. }) {
            m.input_dim = 2;
        }
    }
    Ok(TrainConfig {
        data,
        model,
        optimizer: state.optimizer.train(state.lr),
        batch_size,
        steps: run_limit(),
        seed: state.seed,
        method: MethodSpec::plain("mean"),
        eval_every: EVAL_EVERY,
        layer_metrics: true,
        moe,
        record_every: 1,
        precision: state.precision,
        // Only records (never changes a step): the CPU trainer's batch at step 0 and every
        // `sample_stride`-th step, in the export. The page's chart computes its own series.
        sample_metrics: true,
        dynamics: Default::default(),
        features,
        regularization,
        init,
    })
}

/// TF's trunk options as the run takes them: the feature map only for 2-D points (x, y alone is
/// the raw point: `None`, so such a run is the run from before the features), the penalty and
/// the init only for an MLP (an MoE model and the analytic problems take neither). A penalty
/// of rate 0 is none (and keeps the run on the GPU).
fn trunk_options(state: &State, data: &DataSource, mlp: bool) -> (Option<FeatureSet>, Option<Regularization>, Init) {
    let points = matches!(data, DataSource::TaskSet { .. } | DataSource::Points { .. });
    let features = (points && mlp && !state.features.is_raw()).then(|| state.features.clone());
    let regularization = state
        .regularization
        .filter(|_| mlp && state.reg_rate > 0.0)
        .map(|penalty| Regularization { penalty, rate: state.reg_rate });
    (features, regularization, if mlp { state.init } else { Init::Default })
}

/// The base config with one arena run's method and options (its optimizer, keeping the page's
/// learning rate, and its dynamics): `RunSpec::config`, the one place both the page and
/// `concord train --hash` build a run from. A cosine without its length decays over the
/// preset's own step count, not over the page's step limit (the page runs until stopped), so
/// the page and the CLI (which runs the preset's steps) decay alike.
pub fn with_method(state: &State, base: &TrainConfig, spec: &RunSpec) -> TrainConfig {
    let mut config = spec.config(base);
    if let LrSchedule::Cosine { over: over @ None, .. } = &mut config.dynamics.lr_schedule {
        *over = Some(state.preset.core().config().steps);
    }
    config
}

/// A playground URL (or its hash alone) → one config per arena method, as the page builds them,
/// and the notices the page would show (values it fixed or ignored). What only the page has is
/// replaced: the step count is the preset's own (the page runs until stopped, up to
/// `MAX_RUN_STEPS`), and a toy trains from the preset's first published start (the page also
/// runs the others). `concord train --hash` reads a URL through this.
pub fn configs_from_hash(url: &str) -> Result<(Vec<TrainConfig>, Vec<String>), String> {
    let hash = url.trim();
    let hash = hash.split_once('#').map_or(hash, |(_, h)| h);
    let (state, notices) = State::from_hash(hash);
    let mut base = base_config(&state, None)?;
    base.steps = state.preset.core().config().steps;
    Ok((state.arena.iter().map(|spec| with_method(&state, &base, spec)).collect(), notices))
}

/// The page's names of the m tasks of `base` (legends, the export's `task_names`).
pub fn task_names(base: &TrainConfig, m: usize) -> Vec<String> {
    match &base.data {
        DataSource::TaskSet { config } => {
            config.tasks.iter().enumerate().map(|(t, d)| format!("{} {}", t + 1, d.name())).collect()
        }
        DataSource::Points { data } => data.task_names.clone(),
        DataSource::GradNorm { config, .. } => config.sigmas.iter().map(|s| format!("σ = {s}")).collect(),
        DataSource::Sinusoid { config, .. } => {
            config.tasks.iter().enumerate().map(|(t, _)| format!("sin φ{}", t + 1)).collect()
        }
        DataSource::ParetoSynthetic { .. } => (1..=m).map(|t| format!("f{t}")).collect(),
        DataSource::Toy { .. } => vec!["L1".into(), "L2".into()],
    }
}

/// A toy method's runs: one per published start of the preset's problem.
pub fn toy_configs(config: &TrainConfig, preset: crate::preset::Preset) -> Vec<([f64; 2], TrainConfig)> {
    preset
        .core()
        .starts()
        .into_iter()
        .map(|start| {
            let mut c = config.clone();
            if let DataSource::Toy { start: s, .. } = &mut c.data {
                *s = start;
            }
            (start, c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::Preset;
    use concord_core::train::Trainer;

    #[test]
    fn the_page_defaults_equal_concord_core_presets() {
        // Same data, model and optimizer as `concord train --preset …` (the page samples test
        // losses more often and always records per-layer metrics).
        let mut checked = 0;
        for (p, core) in Preset::ALL.into_iter().map(|p| (p, p.core())) {
            let page = base_config(&State::for_preset(p), None).unwrap();
            let core = core.config();
            checked += 1;
            assert_eq!(page.data, core.data, "{}", p.name());
            assert_eq!(page.model, core.model, "{}", p.name());
            assert_eq!(page.optimizer, core.optimizer, "{}", p.name());
            assert_eq!(page.batch_size, core.batch_size, "{}", p.name());
            assert_eq!(page.seed, core.seed, "{}", p.name());
            assert_eq!(page.moe, core.moe, "{}", p.name());
            assert_eq!(page.record_every, core.record_every, "{}", p.name());
            assert_eq!(page.precision, core.precision, "{}", p.name());
        }
        let f64_page = base_config(&State::from_hash("#precision=f64").0, None).unwrap();
        assert_eq!(f64_page.precision, concord_core::train::Precision::F64, "the URL key reaches the runs");
        // Every concord-core preset has its page preset.
        assert_eq!(checked, concord_core::train::Preset::ALL.len());
    }

    #[test]
    fn a_url_gives_the_pages_configs_with_the_presets_step_count() {
        let url = "https://example.org/concord/#preset=circle-vs-gauss&arena=mean,upgrad&lr=0.02&seed=3&bogus=1";
        let (configs, notices) = configs_from_hash(url).unwrap();
        let (state, _) = State::from_hash("preset=circle-vs-gauss&arena=mean,upgrad&lr=0.02&seed=3");
        let base = base_config(&state, None).unwrap();
        assert_eq!(configs.len(), 2);
        for (c, spec) in configs.iter().zip(&state.arena) {
            assert_eq!(
                *c,
                TrainConfig { steps: Preset::CircleVsGauss.core().config().steps, ..with_method(&state, &base, spec) }
            );
        }
        assert_eq!(
            (configs[1].method.to_text(), configs[1].seed, configs[1].optimizer.lr()),
            ("upgrad".into(), 3, 0.02)
        );
        assert!(notices.iter().any(|n| n.contains("bogus")), "{notices:?}");
        // The hash alone reads the same.
        assert_eq!(configs_from_hash("#preset=circle-vs-gauss&arena=mean,upgrad&lr=0.02&seed=3").unwrap().0, configs);
    }

    #[test]
    fn a_url_with_run_options_gives_their_configs() {
        let hash =
            "#preset=xor-conflict&arena=mean,mean@sam,mean@spam@spikes,mean@sequential=20,upgrad@cosine@warmup=5";
        let (configs, notices) = configs_from_hash(hash).unwrap();
        assert!(notices.is_empty(), "{notices:?}");
        let steps = Preset::XorConflict.core().config().steps;
        let plain = &configs[0];
        assert!(plain.dynamics.is_default() && plain.gpu_unsupported_dynamics().is_none());
        assert_eq!(configs[1].dynamics.sam, Some(concord_core::dynamics::SamSpec::sam(0.05)));
        assert_eq!((configs[2].optimizer.name(), configs[2].optimizer.lr()), ("spam", plain.optimizer.lr()));
        assert!(configs[2].dynamics.spikes);
        assert_eq!(configs[3].dynamics.schedule, concord_core::dynamics::TaskSchedule::Sequential { switch_every: 20 });
        // A cosine without its length decays over the preset's steps, on the page as in the CLI.
        assert_eq!(configs[4].dynamics.lr_schedule, LrSchedule::Cosine { min_ratio: 0.0, over: Some(steps) });
        assert_eq!((configs[4].dynamics.warmup, configs[4].method.to_text().as_str()), (5, "upgrad"));
        // A one-task schedule has no GPU kernel (the page puts that run on the CPU); SAM, SPAM
        // with its spike score and the warm-up + cosine train on the GPU.
        let refused: Vec<bool> = configs.iter().map(|c| c.gpu_unsupported_dynamics().is_some()).collect();
        assert_eq!(refused, [false, false, false, true, false]);
        // The page builds the same from the same state (its own step limit aside).
        let (state, _) = State::from_hash(hash);
        let base = base_config(&state, None).unwrap();
        for (c, spec) in configs.iter().zip(&state.arena) {
            assert_eq!(*c, TrainConfig { steps, ..with_method(&state, &base, spec) });
        }
    }

    #[test]
    fn arena_runs_share_the_initial_weights() {
        let state = State::default();
        let base = base_config(&state, None).unwrap();
        let params: Vec<Vec<f64>> = state
            .arena
            .iter()
            .map(|s| Trainer::new(with_method(&state, &base, s)).unwrap().params().to_vec())
            .collect();
        assert!(params.windows(2).all(|w| w[0] == w[1]));
        let mut other = state.clone();
        other.seed = 7;
        let moved = Trainer::new(base_config(&other, None).unwrap()).unwrap();
        assert_ne!(moved.params(), params[0].as_slice());
    }

    #[test]
    fn moe_settings_reach_the_config_only_where_the_router_takes_them() {
        let (state, _) = State::from_hash("model=moe&router=switch&experts=6&k=3&cf=2");
        let moe = base_config(&state, None).unwrap().moe.expect("model=moe");
        assert_eq!(moe.experts, 6);
        assert_eq!(moe.router, RouterKind::Switch { capacity_factor: 2.0 });
        let (state, _) = State::from_hash("model=moe&router=task&experts=3&k=2&cf=2");
        let moe = base_config(&state, None).unwrap().moe.expect("model=moe");
        assert_eq!(moe.router, RouterKind::Task { k: 2, gate: TaskGate::PerTask });
        let (state, _) = State::from_hash("model=mlp&router=switch");
        assert_eq!(base_config(&state, None).unwrap().moe, None);
    }

    #[test]
    fn a_regression_task_with_bce_is_a_clear_error() {
        let (state, _) = State::from_hash("tasks=xor,reg-plane&losses=bce,bce");
        let err = Trainer::new(base_config(&state, None).unwrap()).err().expect("bce on real labels fails");
        assert!(!err.is_empty());
    }
}
