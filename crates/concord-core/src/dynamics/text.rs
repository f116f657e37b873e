//! The text form of a run's optimizer and dynamics, written after its method with `@`:
//! `mean@sam`, `upgrad@asam=0.5@clip=1`, `mean@spam@spikes`, `mean@sequential=150`,
//! `mean@warmup=20@cosine=400`. The page's arena list (`methods=` in the URL) and
//! `concord train --hash` read it, so a link can put "Adam" and "SAM" side by side.
//!
//! Items (each at most once):
//! - an optimizer: `sgd`, `adam`, `adamw`, `spam` or `spam=ΔT` (moments reset every ΔT steps,
//!   the warm-up N = 0.3·ΔT as the official 150/500; the learning rate is kept);
//! - `sam[=ρ]` (default 0.05), `asam[=ρ]` (default 0.5): the sharpness-aware wrapper;
//! - `clip=X`: gradient-norm clipping of the update;
//! - `warmup=N`, `cosine[=T]` (T: the decay's length, default the run's steps);
//! - `joint`, `alternating[=I₁:I₂:…]`, `sample[=W₁:W₂:…]`, `sequential=N`: the task schedule
//!   (IMP's per-task intervals, e.g. `alternating=1:2` visits task 2 every other pass; sampling
//!   weights, e.g. `sample=3:1`; `:` because `,` separates the arena's runs in a URL);
//! - `spikes`: record Adam's spike score every step.

use super::{Dynamics, LrSchedule, SamSpec, TaskSchedule};
use crate::optim::SpamParams;
use crate::train::{TrainConfig, TrainOptimizer};
use crate::MethodSpec;

/// A run's options after its method: an optimizer other than the page's or preset's (keeping
/// its learning rate) and the dynamics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunOptions {
    /// The optimizer item as written: `sgd`, `adam`, `adamw`, `spam` or `spam=ΔT` (`None`:
    /// the base config's).
    pub optimizer: Option<String>,
    pub dynamics: Dynamics,
}

impl RunOptions {
    /// `items` without the leading `@` (empty: the defaults).
    pub fn parse(items: &str) -> Result<Self, String> {
        // Apply to a probe optimizer to learn which optimizer the items name, if any.
        let probe = TrainOptimizer::sgd(1.0, 0.5);
        let (mut optimizer, mut dynamics) = (probe, Dynamics::default());
        apply_items(items, &mut optimizer, &mut dynamics)?;
        let named = items
            .split('@')
            .map(str::trim)
            .find(|i| matches!(i.split_once('=').map_or(*i, |(k, _)| k.trim()), "sgd" | "adam" | "adamw" | "spam"))
            .map(|i| i.replace(' ', ""));
        Ok(RunOptions { optimizer: named, dynamics })
    }

    pub fn is_default(&self) -> bool {
        self.optimizer.is_none() && self.dynamics.is_default()
    }

    /// The items, without the leading `@` (empty for the defaults).
    pub fn to_text(&self) -> String {
        let mut text = self.optimizer.clone().unwrap_or_default();
        let rest = items_text(&TrainOptimizer::adam(1.0), &TrainOptimizer::adam(1.0), &self.dynamics);
        if !rest.is_empty() {
            if !text.is_empty() {
                text.push('@');
            }
            text.push_str(&rest);
        }
        text
    }

    /// The base config with these options: the named optimizer (the base's learning rate) and
    /// these dynamics in place of the base's; a sequential schedule also evaluates every step.
    pub fn apply(&self, config: &mut TrainConfig) {
        if let Some(item) = &self.optimizer {
            let mut dynamics = Dynamics::default();
            // The item was checked by `parse`; one that fails here changes nothing.
            let _ = apply_items(item, &mut config.optimizer, &mut dynamics);
        }
        config.dynamics = self.dynamics.clone();
        // The stability-gap paper evaluates after every iteration: a sequential run does too,
        // so the dip after a switch is seen whole.
        if let TaskSchedule::Sequential { .. } = self.dynamics.schedule {
            config.eval_every = 1;
        }
    }
}

/// One run of an arena: its method and its options, as `method@item@item…`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    pub method: MethodSpec,
    pub options: RunOptions,
}

impl RunSpec {
    pub fn plain(method: MethodSpec) -> Self {
        RunSpec { method, options: RunOptions::default() }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let (method, items) = split_run_text(text.trim());
        Ok(RunSpec { method: MethodSpec::parse(method)?, options: RunOptions::parse(items)? })
    }

    pub fn to_text(&self) -> String {
        let options = self.options.to_text();
        if options.is_empty() {
            self.method.to_text()
        } else {
            format!("{}@{options}", self.method.to_text())
        }
    }

    /// A legend's label: the method's, then the options (`Mean · SAM ρ=0.05`).
    pub fn label(&self) -> String {
        let mut parts = vec![self.method.label()];
        if let Some(o) = &self.options.optimizer {
            parts.push(match o.split_once('=') {
                Some((name, every)) => format!("{} ΔT={every}", name.to_uppercase()),
                None => o.to_uppercase(),
            });
        }
        let d = self.options.dynamics.label();
        if !d.is_empty() {
            parts.push(d);
        }
        parts.join(" · ")
    }

    /// `base` running this method with these options.
    pub fn config(&self, base: &TrainConfig) -> TrainConfig {
        let mut config = TrainConfig { method: self.method.clone(), ..base.clone() };
        self.options.apply(&mut config);
        config
    }
}

/// Split `text` into the method part and the items after the first `@` (empty when none).
pub fn split_run_text(text: &str) -> (&str, &str) {
    match text.split_once('@') {
        Some((method, items)) => (method, items),
        None => (text, ""),
    }
}

/// Apply `items` (`sam=0.05@clip=1`, without the leading `@`) to an optimizer and dynamics.
pub fn apply_items(items: &str, optimizer: &mut TrainOptimizer, dynamics: &mut Dynamics) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for item in items.split('@').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (item, None),
        };
        let group = match key {
            "sgd" | "adam" | "adamw" | "spam" => "optimizer",
            "sam" | "asam" => "sam",
            "joint" | "alternating" | "sample" | "sequential" => "schedule",
            other => other,
        };
        if seen.contains(&group) {
            return Err(format!("'@{item}': the {group} is given twice"));
        }
        seen.push(group);
        let number = |what: &str| -> Result<f64, String> {
            let v = value.ok_or_else(|| format!("'@{key}' needs a value ({what}), e.g. @{key}=1"))?;
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| format!("'@{item}': {what} must be a positive number"))
        };
        let count = |what: &str| -> Result<usize, String> {
            let v = value.ok_or_else(|| format!("'@{key}' needs a value ({what}), e.g. @{key}=100"))?;
            v.parse::<usize>().map_err(|_| format!("'@{item}': {what} must be a whole number"))
        };
        let no_value = || match value {
            Some(_) => Err(format!("'@{item}': {key} takes no value")),
            None => Ok(()),
        };
        match key {
            "spam" => {
                let lr = optimizer.lr();
                let mut p = SpamParams::new(lr);
                if value.is_some() {
                    // ΔT given: the warm-up keeps the official ratio N/ΔT = 150/500.
                    let every = count("the steps between moment resets")?;
                    if every == 0 {
                        return Err(format!("'@{item}': the steps between resets must be at least 1"));
                    }
                    p.reset_every = every as u64;
                    p.warmup = (every as u64 * 3).div_ceil(10);
                }
                *optimizer = TrainOptimizer::Spam(p);
            }
            "sgd" | "adam" | "adamw" => {
                no_value()?;
                let lr = optimizer.lr();
                *optimizer = match key {
                    "sgd" => TrainOptimizer::sgd(lr, 0.0),
                    "adam" => TrainOptimizer::adam(lr),
                    _ => TrainOptimizer::adamw(lr),
                };
            }
            "sam" | "asam" => {
                let adaptive = key == "asam";
                let rho = match value {
                    None if adaptive => SamSpec::ASAM_RHO,
                    None => SamSpec::SAM_RHO,
                    Some(_) => number("ρ")?,
                };
                dynamics.sam = Some(SamSpec { rho, adaptive });
            }
            "clip" => dynamics.clip_norm = Some(number("the largest update norm")?),
            "warmup" => dynamics.warmup = count("the warm-up's steps")?,
            "cosine" => {
                let over = match value {
                    None => None,
                    Some(_) => Some(count("the decay's length in steps")?).filter(|&t| t > 0),
                };
                if value.is_some() && over.is_none() {
                    return Err(format!("'@{item}': the decay's length must be at least 1 step"));
                }
                dynamics.lr_schedule = LrSchedule::Cosine { min_ratio: 0.0, over };
            }
            "joint" => {
                no_value()?;
                dynamics.schedule = TaskSchedule::Joint;
            }
            "alternating" | "sample" => {
                // One value per task, `:`-separated; the trainer checks the count against the run.
                let list = |what: &str| -> Result<Vec<&str>, String> {
                    let v = value.unwrap_or_default();
                    let parts: Vec<&str> = v.split(':').map(str::trim).collect();
                    if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
                        return Err(format!("'@{item}': give one {what} per task, separated by ':' (e.g. @{key}=1:2)"));
                    }
                    Ok(parts)
                };
                dynamics.schedule = match (key, value) {
                    (_, None) => TaskSchedule::parse(key, None)?,
                    ("alternating", Some(_)) => {
                        let iv = list("interval")?
                            .iter()
                            .map(|p| p.parse::<usize>().ok().filter(|&i| (1..=super::MAX_INTERVAL).contains(&i)))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| {
                                format!("'@{item}': each interval must be a whole number 1–{}", super::MAX_INTERVAL)
                            })?;
                        TaskSchedule::Alternating { intervals: Some(iv) }
                    }
                    _ => {
                        let w = list("weight")?
                            .iter()
                            .map(|p| p.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| format!("'@{item}': each weight must be a number ≥ 0"))?;
                        if !(w.iter().sum::<f64>() > 0.0) {
                            return Err(format!("'@{item}': the weights must not all be 0"));
                        }
                        TaskSchedule::Sample { weights: Some(w) }
                    }
                };
            }
            "sequential" => {
                let n = count("the steps per task")?;
                if n == 0 {
                    return Err(format!("'@{item}': the steps per task must be at least 1"));
                }
                dynamics.schedule = TaskSchedule::Sequential { switch_every: n };
            }
            "spikes" => {
                no_value()?;
                dynamics.spikes = true;
            }
            other => {
                return Err(format!(
                    "unknown run option '@{other}' (expected sgd, adam, adamw, spam, sam, asam, clip, warmup, \
                     cosine, joint, alternating, sample, sequential or spikes)"
                ))
            }
        }
    }
    Ok(())
}

/// The items that turn `base` (optimizer) and the default dynamics into `optimizer` and
/// `dynamics` (empty when they are the defaults), without the leading `@`. Parameters the text
/// form cannot hold (cosine floors, SPAM's θ and β's) are left out.
pub fn items_text(base: &TrainOptimizer, optimizer: &TrainOptimizer, dynamics: &Dynamics) -> String {
    let mut items: Vec<String> = Vec::new();
    if optimizer.name() != base.name() {
        items.push(optimizer.name().into());
    }
    if let Some(s) = &dynamics.sam {
        let default = if s.adaptive { SamSpec::ASAM_RHO } else { SamSpec::SAM_RHO };
        items.push(if s.rho == default { s.name().into() } else { format!("{}={}", s.name(), s.rho) });
    }
    if let Some(c) = dynamics.clip_norm {
        items.push(format!("clip={c}"));
    }
    if dynamics.warmup > 0 {
        items.push(format!("warmup={}", dynamics.warmup));
    }
    if let LrSchedule::Cosine { over, .. } = dynamics.lr_schedule {
        items.push(over.map_or("cosine".into(), |t| format!("cosine={t}")));
    }
    match &dynamics.schedule {
        TaskSchedule::Joint => {}
        TaskSchedule::Sequential { switch_every } => items.push(format!("sequential={switch_every}")),
        TaskSchedule::Alternating { intervals: Some(iv) } => {
            items.push(format!("alternating={}", iv.iter().map(usize::to_string).collect::<Vec<_>>().join(":")))
        }
        TaskSchedule::Sample { weights: Some(w) } => {
            items.push(format!("sample={}", w.iter().map(f64::to_string).collect::<Vec<_>>().join(":")))
        }
        s => items.push(s.name().into()),
    }
    if dynamics.spikes {
        items.push("spikes".into());
    }
    items.join("@")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip() {
        let base = TrainOptimizer::adam(0.01);
        for text in [
            "sam",
            "asam=0.2@clip=1",
            "spam@spikes",
            "sequential=150",
            "warmup=20@cosine=400",
            "alternating",
            "alternating=1:2",
            "sample=3:1",
            "sample=0.25:0:0.75",
            "sgd@sam=0.1",
        ] {
            let (mut opt, mut dynamics) = (base, Dynamics::default());
            apply_items(text, &mut opt, &mut dynamics).unwrap();
            assert_eq!(items_text(&base, &opt, &dynamics), text, "{text}");
            assert_eq!(opt.lr(), 0.01, "the learning rate is kept");
        }
        assert_eq!(split_run_text("upgrad:x=1@sam"), ("upgrad:x=1", "sam"));
        assert_eq!(split_run_text("mean"), ("mean", ""));
    }

    #[test]
    fn run_specs_round_trip_and_apply() {
        let spam = RunSpec::parse("mean@spam=150").unwrap().config(&crate::train::preset("xor-conflict").unwrap());
        let TrainOptimizer::Spam(p) = spam.optimizer else { panic!("spam") };
        assert_eq!((p.reset_every, p.warmup, p.threshold), (150, 45, 5000.0));
        for text in [
            "mean@spam=150",
            "mean",
            "upgrad+uw",
            "mean@sam",
            "cagrad:c=0.3@asam=0.2@clip=1",
            "mean@spam@spikes",
            "mean@sequential=150",
            "mean@alternating=1:2",
            "mean@sample=3:1",
        ] {
            assert_eq!(RunSpec::parse(text).unwrap().to_text(), text);
        }
        // The intervals and weights reach the config; the trainer checks their count.
        let c = RunSpec::parse("mean@alternating=1:3").unwrap().config(&base_config());
        assert_eq!(c.dynamics.schedule, TaskSchedule::Alternating { intervals: Some(vec![1, 3]) });
        let c = RunSpec::parse("mean@sample=3:1").unwrap().config(&base_config());
        assert_eq!(c.dynamics.schedule, TaskSchedule::Sample { weights: Some(vec![3.0, 1.0]) });
        let three = RunSpec::parse("mean@alternating=1:2:3").unwrap().config(&base_config());
        let err = crate::train::Trainer::new(three).err().expect("three intervals for two tasks");
        assert!(err.contains("one per task"), "{err}");
        let base = crate::train::preset("xor-conflict").unwrap();
        let spec = RunSpec::parse("pcgrad@spam@warmup=5").unwrap();
        let c = spec.config(&base);
        assert_eq!((c.optimizer.name(), c.optimizer.lr()), ("spam", base.optimizer.lr()));
        assert_eq!(c.dynamics.warmup, 5);
        assert_eq!(c.method.to_text(), "pcgrad");
        assert_eq!(RunSpec::parse("mean@sam").unwrap().label(), "Mean · SAM ρ=0.05");
        assert!(RunSpec::parse("mean@bogus").unwrap_err().contains("unknown run option"));
    }

    fn base_config() -> TrainConfig {
        crate::train::preset("xor-conflict").unwrap()
    }

    #[test]
    fn bad_items_say_what_is_wrong() {
        let base = TrainOptimizer::adam(0.01);
        for (text, says) in [
            ("sam=-1", "positive number"),
            ("clip", "needs a value"),
            ("sequential", "needs a value"),
            ("sequential=0", "at least 1"),
            ("sam@asam", "given twice"),
            ("lbfgs", "unknown run option"),
            ("sgd=3", "takes no value"),
            ("spam=0", "at least 1"),
            ("warmup=ten", "whole number"),
            ("alternating=2", "one interval per task"),
            ("alternating=1:0", "1–16"),
            ("alternating=1:x", "1–16"),
            ("sample=1:", "one weight per task"),
            ("sample=1:-1", "≥ 0"),
            ("sample=0:0", "not all be 0"),
            ("joint=1", "takes no value"),
        ] {
            let (mut opt, mut dynamics) = (base, Dynamics::default());
            let err = apply_items(text, &mut opt, &mut dynamics).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
