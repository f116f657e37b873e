//! Where a run's `TrainConfig` comes from — a preset, a config file (`concord config` output,
//! a `concord train --out run.json` record, or the page's exported run file), or a playground
//! URL / hash — and the keys that change one setting of it (`concord train`'s override flags and
//! `concord sweep`'s axes name the same keys).

use crate::UsageError;
use concord_core::dynamics::{items_text, RunOptions};
use concord_core::optim::SpamParams;
use concord_core::train::{DataSource, Precision, Preset, RunRecord, TrainOptimizer};
use concord_core::{AggregatorSpec, MethodSpec, TrainConfig, WeightingSpec};
use std::io::Read;
use std::path::Path;

/// The page's run-file format name (`concord-web`'s `saved::FORMAT`).
const PAGE_FORMAT: &str = concord_web::saved::FORMAT;

/// A config with where it came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: TrainConfig,
    /// The preset's name, or what the config was read from (a file name, "stdin", "hash").
    pub label: String,
    /// A page export or a run record: what it recorded, to compare a replay against.
    pub recorded: Option<Recording>,
}

/// A run file's record of the run being replayed.
#[derive(Clone, Debug)]
pub struct Recording {
    pub record: RunRecord,
    /// Where the page trained it ("webgpu": f32 on the GPU; "cpu"), if the file says.
    pub backend: Option<String>,
}

/// The keys of `TrainConfig` a config file may hold (anything else is a typo worth an error:
/// a silently ignored "stpes" would run the default).
const CONFIG_KEYS: &[&str] = &[
    "data",
    "model",
    "moe",
    "optimizer",
    "batch_size",
    "steps",
    "seed",
    "method",
    "aggregator",
    "aggregator_params",
    "weighting",
    "weighting_params",
    "eval_every",
    "layer_metrics",
    "record_every",
    "precision",
    "sample_metrics",
    "dynamics",
    // TF's trunk options (concord-core train/trunk.rs).
    "features",
    "regularization",
    "init",
];

/// The preset `name`'s own config (its method, seed 0).
pub fn from_preset(name: &str) -> Result<Loaded, UsageError> {
    let preset = Preset::parse(name).map_err(UsageError)?;
    Ok(Loaded { config: preset.config(), label: preset.name().to_string(), recorded: None })
}

/// Read `path` (`-`: standard input) as a config; `run` picks one run of a page export that
/// holds several (default 0).
pub fn from_file(path: &Path, run: Option<usize>) -> Result<Loaded, UsageError> {
    let (text, label) = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| UsageError(format!("cannot read stdin: {e}")))?;
        (s, "stdin".to_string())
    } else {
        let s =
            std::fs::read_to_string(path).map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
        (s, path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string()))
    };
    from_text(&text, &label, run)
}

/// A config JSON, a run record (`{"config": …, "params": …}`) or a page export.
pub fn from_text(text: &str, label: &str, run: Option<usize>) -> Result<Loaded, UsageError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| UsageError(format!("{label} is not JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err(UsageError(format!("{label}: expected a JSON object (a run config), got {}", kind(&value))));
    };
    if obj.contains_key("format") {
        return page_export(text, label, run);
    }
    if run.is_some() {
        return Err(UsageError(format!("--run picks a run of a page export; {label} holds one config")));
    }
    if obj.contains_key("config") && obj.contains_key("params") {
        // A run record (`concord train --out run.json`): replay its config.
        let record: RunRecord =
            serde_json::from_value(value).map_err(|e| UsageError(format!("{label}: not a run record: {e}")))?;
        let config = record.config.clone();
        return Ok(Loaded { config, label: label.to_string(), recorded: Some(Recording { record, backend: None }) });
    }
    if let Some(bad) = obj.keys().find(|k| !CONFIG_KEYS.contains(&k.as_str())) {
        return Err(UsageError(format!(
            "{label}: unknown key \"{bad}\" in the run config (known keys: {})",
            CONFIG_KEYS.join(", ")
        )));
    }
    let config: TrainConfig =
        serde_json::from_value(value).map_err(|e| UsageError(format!("{label}: not a run config: {e}")))?;
    Ok(Loaded { config, label: label.to_string(), recorded: None })
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A page export: run `run` (default 0) replays to the step the page had reached.
fn page_export(text: &str, label: &str, run: Option<usize>) -> Result<Loaded, UsageError> {
    let saved: concord_web::saved::SavedSession =
        serde_json::from_str(text).map_err(|e| UsageError(format!("{label}: not a page run file: {e}")))?;
    if saved.format != PAGE_FORMAT {
        return Err(UsageError(format!("{label}: format \"{}\" is not a page run file ({PAGE_FORMAT})", saved.format)));
    }
    if saved.version != concord_web::saved::VERSION {
        return Err(UsageError(format!(
            "{label}: run file version {} (this concord reads version {})",
            saved.version,
            concord_web::saved::VERSION
        )));
    }
    // A toy method runs once per start: name the start too.
    let methods: Vec<String> = saved
        .runs
        .iter()
        .map(|r| match r.record.as_ref().map(|rec| &rec.config.data) {
            Some(DataSource::Toy { start, .. }) => format!("{} from ({}, {})", r.method, start[0], start[1]),
            _ => r.method.clone(),
        })
        .collect();
    let index = run.unwrap_or(0);
    let Some(chosen) = saved.runs.into_iter().nth(index) else {
        return Err(UsageError(format!(
            "{label}: no run {index}: the file holds {} ({})",
            methods.len(),
            methods.iter().enumerate().map(|(i, m)| format!("{i}: {m}")).collect::<Vec<_>>().join(", ")
        )));
    };
    if run.is_none() && methods.len() > 1 {
        eprintln!(
            "concord: note: {label} holds {} runs ({}); replaying run 0 ({}); pick another with --run K",
            methods.len(),
            methods.iter().enumerate().map(|(i, m)| format!("{i}: {m}")).collect::<Vec<_>>().join(", "),
            methods[0]
        );
    }
    let Some(record) = chosen.record else {
        return Err(UsageError(format!(
            "{label}: run {index} ({}) could not be built on the page: {}",
            chosen.method,
            chosen.error.unwrap_or_default()
        )));
    };
    let mut config = record.config.clone();
    // The page runs until stopped, up to its limit: replay the steps it took.
    if record.steps_done == 0 {
        return Err(UsageError(format!(
            "{label}: run {index} ({}) took no step yet: nothing to replay",
            chosen.method
        )));
    }
    config.steps = record.steps_done;
    if chosen.backend.as_deref() == Some("webgpu") {
        eprintln!(
            "concord: note: the page trained run {index} on WebGPU (f32); a CPU replay agrees only to f32 rounding \
             (the page's CPU fallback, or --backend gpu, replays closer)"
        );
    }
    let recorded = Some(Recording { record, backend: chosen.backend });
    Ok(Loaded { config, label: label.to_string(), recorded })
}

/// A playground URL or its hash (`#preset=xor-conflict&methods=…`); `run` picks one of the
/// arena's methods (default 0).
pub fn from_hash(text: &str, run: Option<usize>) -> Result<Loaded, UsageError> {
    let (configs, notices) = concord_web::train_config::configs_from_hash(text).map_err(UsageError)?;
    for n in notices {
        eprintln!("concord: warning: the hash: {n}");
    }
    let labels = run_labels(&configs);
    let index = run.unwrap_or(0);
    if run.is_none() && configs.len() > 1 {
        eprintln!(
            "concord: note: the hash's arena holds {} runs ({}); training run 0; pick another with --run K",
            configs.len(),
            labels.iter().enumerate().map(|(i, m)| format!("{i}: {m}")).collect::<Vec<_>>().join(", ")
        );
    }
    let config = configs.into_iter().nth(index).ok_or_else(|| {
        UsageError(format!("--run {index}: the hash's arena holds {} runs ({})", labels.len(), labels.join(", ")))
    })?;
    Ok(Loaded { config, label: "hash".into(), recorded: None })
}

/// The arena's runs as the page's run text (`mean@sam`, `mean@spam@sequential=150`): runs that
/// differ only by their options must not read alike in `--run K`'s list. The optimizer is named
/// only where the runs' optimizers differ.
fn run_labels(configs: &[TrainConfig]) -> Vec<String> {
    // SPAM with its own reset period reads as the run text writes it (`spam=150`).
    let optimizer = |c: &TrainConfig| match c.optimizer {
        TrainOptimizer::Spam(p) if p.reset_every != SpamParams::new(p.lr).reset_every => {
            format!("spam={}", p.reset_every)
        }
        o => o.name().to_string(),
    };
    let one_optimizer = configs.windows(2).all(|w| optimizer(&w[0]) == optimizer(&w[1]));
    configs
        .iter()
        .map(|c| {
            let mut text = c.method.to_text();
            if !one_optimizer {
                text = format!("{text}@{}", optimizer(c));
            }
            let items = items_text(&c.optimizer, &c.optimizer, &c.dynamics);
            if !items.is_empty() {
                text = format!("{text}@{items}");
            }
            text
        })
        .collect()
}

/// The keys `set` knows, for messages.
pub const KEYS: &str = "method, weighting, param.NAME, weighting.NAME, lr, steps, seed, optimizer, options, \
     batch_size, precision, eval_every";

/// Change one setting of `config`: `key` as `concord sweep --axis KEY=…` names it.
///
/// - `method`: the text form `aggregator[+weighting][:key=value…]`; it replaces the whole method
///   (weighting included), as `--method` does.
/// - `weighting`: a loss weighting by name (`none` removes it), its parameters at their defaults.
/// - `param.NAME`: one parameter of the aggregator (or, if the aggregator has none of that name,
///   of the weighting); lists with `;`.
/// - `weighting.NAME`: one parameter of the weighting.
/// - `lr`, `steps`, `seed`, `optimizer` (adam, sgd, adamw, spam: keeps the learning rate),
///   `batch_size` (`full` for the whole train set), `precision` (f32, f64), `eval_every`.
/// - `options`: the run options of the text form `method@options` (`sam@clip=1`,
///   `spam@warmup=20@cosine`, `asam=0.2@sequential=100`; `none` or empty: the defaults). They
///   replace the whole `dynamics` section and, if they name one, the optimizer (keeping the
///   learning rate), so one axis can compare "Adam" with "SAM" or "SPAM with clipping".
///
/// The result is not validated here: `Trainer::new` does that, with its own messages.
pub fn set(config: &mut TrainConfig, key: &str, value: &str) -> Result<(), UsageError> {
    let value = value.trim();
    let bad = |what: &str| UsageError(format!("{key}={value}: {what}"));
    match key.trim() {
        "method" => config.method = MethodSpec::parse(value).map_err(|e| bad(&e))?,
        "weighting" => {
            config.method.weighting = match value {
                "none" | "" => None,
                name => Some(WeightingSpec::parse(name, &[]).map_err(|e| bad(&e))?),
            }
        }
        "lr" => {
            let lr: f64 = value.parse().map_err(|_| bad("the learning rate must be a number"))?;
            if !(lr.is_finite() && lr > 0.0) {
                return Err(bad("the learning rate must be a positive number"));
            }
            config.optimizer = config.optimizer.with_lr(lr);
        }
        "steps" => {
            let steps: usize = value.parse().map_err(|_| bad("steps must be a whole number"))?;
            if steps == 0 {
                return Err(bad("steps must be at least 1"));
            }
            config.steps = steps;
        }
        "seed" => config.seed = value.parse().map_err(|_| bad("the seed must be a whole number ≥ 0"))?,
        "optimizer" => {
            let lr = config.optimizer.lr();
            config.optimizer = match value {
                "adam" => TrainOptimizer::adam(lr),
                "sgd" => TrainOptimizer::sgd(lr, 0.0),
                "adamw" => TrainOptimizer::adamw(lr),
                "spam" => TrainOptimizer::spam(lr),
                _ => return Err(bad("unknown optimizer (expected adam, sgd, adamw or spam)")),
            };
        }
        "options" => {
            let options = match value {
                "none" | "" => RunOptions::default(),
                items => RunOptions::parse(items.strip_prefix('@').unwrap_or(items)).map_err(|e| bad(&e))?,
            };
            options.apply(config);
        }
        "batch_size" | "batch" => {
            config.batch_size = match value {
                "full" | "none" => None,
                v => Some(v.parse().ok().filter(|&b: &usize| b > 0).ok_or_else(|| bad("a batch size ≥ 1 or full"))?),
            }
        }
        "precision" => config.precision = Precision::parse(value).map_err(|e| bad(&e))?,
        "eval_every" => {
            config.eval_every =
                value.parse().ok().filter(|&e: &usize| e > 0).ok_or_else(|| bad("a whole number ≥ 1"))?
        }
        k => {
            if let Some(name) = k.strip_prefix("param.") {
                set_param(config, name, value).map_err(|e| bad(&e))?;
            } else if let Some(name) = k.strip_prefix("weighting.") {
                let w = config.method.weighting.as_ref().ok_or_else(|| bad("the method has no loss weighting"))?;
                config.method.weighting = Some(with_param(w.name(), &w.given(), name, value, WeightingSpec::parse)?);
            } else {
                return Err(UsageError(format!("unknown key '{k}' (expected one of: {KEYS})")));
            }
        }
    }
    Ok(())
}

/// A registry's parser: a name and `key=value` parameters to a checked spec.
type Parse<T> = fn(&str, &[(String, String)]) -> Result<T, String>;

/// `given` with `name` set to `value`, parsed again by `parse` (which range-checks it).
fn with_param<T>(
    owner: &str,
    given: &[(&'static str, String)],
    name: &str,
    value: &str,
    parse: Parse<T>,
) -> Result<T, UsageError> {
    let mut params: Vec<(String, String)> =
        given.iter().filter(|(k, _)| *k != name).map(|(k, v)| (k.to_string(), v.clone())).collect();
    params.push((name.to_string(), value.to_string()));
    parse(owner, &params).map_err(|e| UsageError(format!("{name}={value}: {e}")))
}

fn set_param(config: &mut TrainConfig, name: &str, value: &str) -> Result<(), String> {
    let agg = &config.method.aggregator;
    if agg.info().param(name).is_some() {
        config.method.aggregator =
            with_param(agg.name(), &agg.given(), name, value, AggregatorSpec::parse).map_err(|e| e.0)?;
        return Ok(());
    }
    if let Some(w) = &config.method.weighting {
        if w.describe().params.iter().any(|p| p.name == name) {
            config.method.weighting =
                Some(with_param(w.name(), &w.given(), name, value, WeightingSpec::parse).map_err(|e| e.0)?);
            return Ok(());
        }
    }
    Err(format!("{} has no parameter '{name}'", config.method.label()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xor() -> TrainConfig {
        from_preset("xor-conflict").unwrap().config
    }

    #[test]
    fn keys_change_one_setting_each() {
        let mut c = xor();
        set(&mut c, "method", "cagrad").unwrap();
        set(&mut c, "param.c", "0.3").unwrap();
        assert_eq!(c.method.to_text(), "cagrad:c=0.3");
        set(&mut c, "weighting", "gradnorm").unwrap();
        set(&mut c, "param.alpha", "1.25").unwrap();
        assert_eq!(c.method.to_text(), "cagrad+gradnorm:c=0.3:alpha=1.25");
        set(&mut c, "weighting.alpha", "2").unwrap();
        assert_eq!(c.method.to_text(), "cagrad+gradnorm:c=0.3:alpha=2");
        set(&mut c, "lr", "0.003").unwrap();
        assert_eq!(c.optimizer.lr(), 0.003);
        set(&mut c, "optimizer", "sgd").unwrap();
        assert_eq!((c.optimizer.name(), c.optimizer.lr()), ("sgd", 0.003));
        set(&mut c, "steps", "7").unwrap();
        set(&mut c, "seed", "11").unwrap();
        set(&mut c, "batch_size", "32").unwrap();
        set(&mut c, "precision", "f64").unwrap();
        assert_eq!((c.steps, c.seed, c.batch_size, c.precision), (7, 11, Some(32), Precision::F64));
        set(&mut c, "batch_size", "full").unwrap();
        set(&mut c, "weighting", "none").unwrap();
        assert_eq!((c.batch_size, c.method.weighting.is_none()), (None, true));
        set(&mut c, "optimizer", "spam").unwrap();
        assert_eq!((c.optimizer.name(), c.optimizer.lr()), ("spam", 0.003));
    }

    #[test]
    fn options_set_the_dynamics_and_keep_the_learning_rate() {
        use concord_core::dynamics::{LrSchedule, SamSpec, TaskSchedule};
        let mut c = xor();
        let lr = c.optimizer.lr();
        set(&mut c, "options", "asam=0.2@clip=1@warmup=5@cosine@sequential=50").unwrap();
        let d = &c.dynamics;
        assert_eq!(d.sam, Some(SamSpec { rho: 0.2, adaptive: true }));
        assert_eq!((d.clip_norm, d.warmup), (Some(1.0), 5));
        assert_eq!(d.lr_schedule, LrSchedule::Cosine { min_ratio: 0.0, over: None });
        assert_eq!(d.schedule, TaskSchedule::Sequential { switch_every: 50 });
        assert_eq!(c.optimizer, xor().optimizer, "no optimizer named: the base's");
        // The options replace the dynamics as a whole; an optimizer named keeps the lr.
        set(&mut c, "options", "@sgd@sam").unwrap();
        assert_eq!(c.dynamics.sam, Some(SamSpec::sam(SamSpec::SAM_RHO)));
        assert_eq!((c.dynamics.clip_norm, c.dynamics.warmup), (None, 0));
        assert_eq!((c.optimizer.name(), c.optimizer.lr()), ("sgd", lr));
        for none in ["none", ""] {
            set(&mut c, "options", none).unwrap();
            assert!(c.dynamics.is_default(), "{none:?}");
        }
    }

    #[test]
    fn bad_keys_and_values_say_what_is_wrong() {
        let mut c = xor();
        let before = c.clone();
        for (k, v, says) in [
            ("lr", "-1", "positive"),
            ("lr", "fast", "number"),
            ("steps", "0", "at least 1"),
            ("seed", "-3", "seed"),
            ("method", "nope", "unknown aggregator"),
            ("param.c", "0.5", "no parameter 'c'"),
            ("weighting.alpha", "1", "no loss weighting"),
            ("optimizer", "lbfgs", "unknown optimizer"),
            ("optimizer", "sam", "unknown optimizer"),
            ("options", "sam=-1", "positive number"),
            ("options", "lbfgs", "unknown run option"),
            ("batch_size", "0", "batch size"),
            ("colour", "red", "unknown key"),
        ] {
            let e = set(&mut c, k, v).unwrap_err().0;
            assert!(e.contains(says), "{k}={v}: {e}");
        }
        assert_eq!(c, before, "a refused value changes nothing");
    }

    #[test]
    fn hash_runs_that_differ_by_options_read_apart() {
        let mut spam = xor();
        set(&mut spam, "options", "spam@sequential=5").unwrap();
        let mut sam = xor();
        set(&mut sam, "options", "sam=0.1").unwrap();
        assert_eq!(run_labels(&[xor(), sam.clone()]), ["mean", "mean@sam=0.1"]);
        assert_eq!(run_labels(&[xor(), sam, spam]), ["mean@adam", "mean@adam@sam=0.1", "mean@spam@sequential=5"]);
        let mut spam150 = xor();
        set(&mut spam150, "options", "spam=150").unwrap();
        assert_eq!(run_labels(&[spam150, xor()]), ["mean@spam=150", "mean@adam"]);
    }

    #[test]
    fn a_config_file_with_a_typo_is_refused_by_name() {
        let mut v = serde_json::to_value(xor()).unwrap();
        v["stpes"] = 5.into();
        let e = from_text(&v.to_string(), "run.json", None).unwrap_err().0;
        assert!(e.contains("\"stpes\""), "{e}");
        let ok = from_text(&serde_json::to_string(&xor()).unwrap(), "run.json", None).unwrap();
        assert_eq!(ok.config, xor());
        // A config with a dynamics section reads back whole.
        let mut c = xor();
        set(&mut c, "options", "spam@clip=2@alternating").unwrap();
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains("\"dynamics\""), "{text}");
        assert_eq!(from_text(&text, "run.json", None).unwrap().config, c);
    }
}
