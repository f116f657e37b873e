//! A sweep's axes and cells: `--axis KEY=V1,V2,…` parsing (`a..b` ranges), the cartesian
//! product in the order the axes were given (first axis slowest), `--shard I/N`, each cell's
//! config (axes applied in a fixed order through `run_config::set`) and the hashes that name a
//! sweep and a cell.

use crate::run_config;
use crate::UsageError;
use concord_core::train::Trainer;
use concord_core::TrainConfig;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The most cells one sweep may have (a typo such as `seed=0..99999999` is an error, not a
/// run that never ends).
pub const MAX_CELLS: usize = 1_000_000;

/// One `--axis`: a key `run_config::set` accepts and its values as given (ranges expanded).
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// The plain keys an axis may name (besides `param.NAME` and `weighting.NAME`).
const PLAIN_KEYS: &[&str] =
    &["method", "weighting", "lr", "steps", "seed", "optimizer", "options", "batch_size", "precision", "eval_every"];

/// Where a key's axis is applied: the method first (it replaces the weighting and every
/// parameter), then the weighting (its parameters at their defaults), then single parameters,
/// then everything else — whatever order the axes were given in.
fn apply_rank(key: &str) -> u8 {
    match key {
        "method" => 0,
        "weighting" => 1,
        k if k.starts_with("param.") || k.starts_with("weighting.") => 2,
        _ => 3,
    }
}

/// An axis that changes the method (so its values are part of a cell's arm).
pub fn is_arm_key(key: &str) -> bool {
    apply_rank(key) < 3
}

fn known_key(key: &str) -> bool {
    PLAIN_KEYS.contains(&key)
        || ["param.", "weighting."].iter().any(|p| key.strip_prefix(p).is_some_and(|n| !n.trim().is_empty()))
}

/// `a..b`: the whole numbers from a to b, both included.
fn expand_range(text: &str) -> Option<Vec<String>> {
    let (a, b) = text.split_once("..")?;
    let (a, b): (i64, i64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    if a > b || i128::from(b) - i128::from(a) >= MAX_CELLS as i128 {
        return None;
    }
    Some((a..=b).map(|v| v.to_string()).collect())
}

/// Parse `KEY=V1,V2,…`. Values are split on `,` (a list-valued parameter uses `;`); a value
/// `a..b` is the whole numbers a to b.
pub fn parse_axis(text: &str) -> Result<Axis, UsageError> {
    let Some((key, values)) = text.split_once('=') else {
        return Err(UsageError(format!("--axis {text}: expected KEY=V1,V2,… (e.g. --axis seed=0..9)")));
    };
    let key = key.trim();
    if !known_key(key) {
        return Err(UsageError(format!("--axis {text}: unknown key '{key}' (expected one of: {})", run_config::KEYS)));
    }
    if values.trim().is_empty() {
        return Err(UsageError(format!("--axis {key}=: no values (expected KEY=V1,V2,…)")));
    }
    let mut out = Vec::new();
    for v in values.split(',').map(str::trim) {
        if v.is_empty() {
            return Err(UsageError(format!(
                "--axis {key}={values}: an empty value (values are separated by ','; a list-valued parameter \
                 is written with ';')"
            )));
        }
        if v.contains("..") {
            let range = expand_range(v).ok_or_else(|| {
                UsageError(format!(
                    "--axis {key}={values}: bad range '{v}' (expected a..b, whole numbers a ≤ b, both included, \
                     fewer than {MAX_CELLS})"
                ))
            })?;
            out.extend(range);
        } else {
            out.push(v.to_string());
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = out.iter().find(|v| !seen.insert(v.as_str())) {
        return Err(UsageError(format!("--axis {key}: the value '{dup}' is given twice")));
    }
    if out.len() > MAX_CELLS {
        return Err(UsageError(format!("--axis {key}: {} values (at most {MAX_CELLS})", out.len())));
    }
    Ok(Axis { key: key.to_string(), values: out })
}

/// Parse every `--axis`; a key given twice is an error.
pub fn parse_axes(texts: &[String]) -> Result<Vec<Axis>, UsageError> {
    let axes = texts.iter().map(|t| parse_axis(t)).collect::<Result<Vec<_>, _>>()?;
    for (i, a) in axes.iter().enumerate() {
        if axes[..i].iter().any(|b| b.key == a.key) {
            return Err(UsageError(format!(
                "--axis {}: the key is given twice (give all its values in one --axis)",
                a.key
            )));
        }
    }
    Ok(axes)
}

/// How many cells the axes span (1 without axes).
pub fn total_cells(axes: &[Axis]) -> Result<usize, UsageError> {
    axes.iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.values.len()).filter(|&n| n <= MAX_CELLS))
        .ok_or_else(|| UsageError(format!("the axes span more than {MAX_CELLS} cells")))
}

/// The value index of each axis in cell `index` (the last axis varies fastest).
pub fn cell_values(axes: &[Axis], mut index: usize) -> Vec<usize> {
    let mut at = vec![0; axes.len()];
    for (k, a) in axes.iter().enumerate().rev() {
        at[k] = index % a.values.len();
        index /= a.values.len();
    }
    at
}

/// `--shard I/N`: shard I (0-based) of N runs the cells with index % N == I.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn parse(text: &str) -> Result<Shard, UsageError> {
        let bad = || {
            UsageError(format!(
                "--shard {text}: expected I/N with 0 ≤ I < N, I counted from 0 (e.g. --shard 0/4 … 3/4; a Slurm \
                 array --array=0-3 passes $SLURM_ARRAY_TASK_ID/4)"
            ))
        };
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    pub fn holds(self, cell: usize) -> bool {
        cell % self.count == self.index
    }
}

/// One cell: its index, the axes' values (in the order the axes were given) and its config.
#[derive(Clone, Debug)]
pub struct Cell {
    pub index: usize,
    pub values: Vec<(String, String)>,
    pub config: TrainConfig,
    /// sha256 of the config's JSON: resuming and merging recognise a cell by it.
    pub key: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex sha256 of a config's JSON (serde writes a struct's fields in declaration order and
/// the config holds no hash maps, so one config always gives the same text).
pub fn config_key(config: &TrainConfig) -> String {
    let text = serde_json::to_string(config).expect("a config serialises");
    hex(&Sha256::digest(text.as_bytes()))
}

/// Names a sweep: the base config and the axes with their values (16 hex digits of a sha256).
/// Shards, resumed runs and merges refuse lines with another fingerprint.
pub fn fingerprint(base: &TrainConfig, axes: &[Axis]) -> String {
    let axes: Vec<(&str, &[String])> = axes.iter().map(|a| (a.key.as_str(), a.values.as_slice())).collect();
    let text = serde_json::to_string(&(base, axes)).expect("a config serialises");
    hex(&Sha256::digest(text.as_bytes())[..8])
}

fn describe(values: &[(String, String)]) -> String {
    if values.is_empty() {
        return "the base config".into();
    }
    values.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// Cell `index`'s config: the base with each axis's value applied (method, then weighting,
/// then parameters, then the rest), validated.
pub fn build_cell(base: &TrainConfig, axes: &[Axis], index: usize) -> Result<Cell, UsageError> {
    let at = cell_values(axes, index);
    let values: Vec<(String, String)> =
        axes.iter().zip(&at).map(|(a, &i)| (a.key.clone(), a.values[i].clone())).collect();
    let mut order: Vec<usize> = (0..axes.len()).collect();
    order.sort_by_key(|&k| apply_rank(&axes[k].key)); // stable: the given order within a rank
    let mut config = base.clone();
    for k in order {
        let (key, value) = &values[k];
        run_config::set(&mut config, key, value)
            .map_err(|e| UsageError(format!("cell {index} ({}): {}", describe(&values), e.0)))?;
    }
    config.validate().map_err(|e| UsageError(format!("cell {index} ({}): {e}", describe(&values))))?;
    let key = config_key(&config);
    Ok(Cell { index, values, config, key })
}

/// Every cell, built and validated; the trainer is built for the first cell of each
/// combination of the non-seed axes (which checks the model against the data) — all before any
/// cell runs. Two cells with the same config (two spellings of one value) are an error.
pub fn build_all(base: &TrainConfig, axes: &[Axis]) -> Result<Vec<Cell>, UsageError> {
    let total = total_cells(axes)?;
    let cells = (0..total).map(|i| build_cell(base, axes, i)).collect::<Result<Vec<_>, _>>()?;
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for c in &cells {
        if let Some(&first) = by_key.get(c.key.as_str()) {
            return Err(UsageError(format!(
                "cells {first} ({}) and {} ({}) are the same run: two values of an axis name the same setting",
                describe(&cells[first].values),
                c.index,
                describe(&c.values)
            )));
        }
        by_key.insert(&c.key, c.index);
    }
    let mut probed = std::collections::HashSet::new();
    for c in &cells {
        let others: Vec<&(String, String)> = c.values.iter().filter(|(k, _)| k != "seed").collect();
        if probed.insert(format!("{others:?}")) {
            Trainer::new(c.config.clone())
                .map_err(|e| UsageError(format!("cell {} ({}): {e}", c.index, describe(&c.values))))?;
        }
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xor() -> TrainConfig {
        run_config::from_preset("xor-conflict").unwrap().config
    }

    fn axes(texts: &[&str]) -> Vec<Axis> {
        parse_axes(&texts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn axes_parse_lists_and_ranges() {
        let a = parse_axis("seed=0..3").unwrap();
        assert_eq!((a.key.as_str(), a.values.clone()), ("seed", vec!["0".into(), "1".into(), "2".into(), "3".into()]));
        let a = parse_axis(" lr = 1e-3, 3e-3 ,1e-2").unwrap();
        assert_eq!((a.key.as_str(), a.values.clone()), ("lr", vec!["1e-3".into(), "3e-3".into(), "1e-2".into()]));
        assert_eq!(parse_axis("seed=5..5,7,-2..-1").unwrap().values, ["5", "7", "-2", "-1"]);
        // A list-valued parameter keeps its ';'.
        assert_eq!(parse_axis("param.pref_vector=1;2,2;1").unwrap().values, ["1;2", "2;1"]);
        assert_eq!(parse_axis("method=cagrad:c=0.3,upgrad").unwrap().values, ["cagrad:c=0.3", "upgrad"]);
        for (text, says) in [
            ("colour=red", "unknown key 'colour'"),
            ("param.=3", "unknown key"),
            ("seed", "expected KEY=V1,V2"),
            ("seed=", "no values"),
            ("seed=1,,2", "an empty value"),
            ("seed=1,", "an empty value"),
            ("seed=3..1", "bad range '3..1'"),
            ("seed=0..x", "bad range"),
            ("seed=0..", "bad range"),
            ("lr=0.1..0.3", "bad range"),
            ("seed=0..99999999", "bad range"),
            ("seed=1,0..2", "'1' is given twice"),
        ] {
            let e = parse_axis(text).unwrap_err().0;
            assert!(e.contains(says), "{text}: {e}");
        }
        let e = parse_axes(&["seed=1".into(), "lr=1".into(), "seed=2".into()]).unwrap_err().0;
        assert!(e.contains("seed: the key is given twice"), "{e}");
    }

    #[test]
    fn cells_are_the_product_with_the_first_axis_slowest() {
        let a = axes(&["method=mean,upgrad", "seed=0..2", "lr=0.1,0.2"]);
        assert_eq!(total_cells(&a).unwrap(), 12);
        let all: Vec<Vec<usize>> = (0..12).map(|i| cell_values(&a, i)).collect();
        assert_eq!(all[0], [0, 0, 0]);
        assert_eq!(all[1], [0, 0, 1]);
        assert_eq!(all[2], [0, 1, 0]);
        assert_eq!(all[6], [1, 0, 0]);
        assert_eq!(all[11], [1, 2, 1]);
        // Every combination exactly once.
        let set: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(set.len(), 12);
        assert_eq!(total_cells(&[]).unwrap(), 1);
        assert_eq!(cell_values(&[], 0), Vec::<usize>::new());
        let huge = axes(&["seed=0..999", "lr=0..999", "steps=1..2"]);
        assert!(total_cells(&huge).unwrap_err().0.contains("more than"));
    }

    /// An `options` axis compares run options (the text form after `method@`): each cell has
    /// its own dynamics and optimizer, the learning rate kept; a bad value is refused by name.
    #[test]
    fn an_options_axis_sets_each_cells_dynamics() {
        let a = axes(&["options=none,sam=0.1@clip=1,spam@sequential=5"]);
        let cells = build_all(&xor(), &a).unwrap();
        assert_eq!(cells.len(), 3);
        assert!(cells[0].config.dynamics.is_default());
        let d = &cells[1].config.dynamics;
        assert_eq!((d.sam.map(|s| s.rho), d.clip_norm), (Some(0.1), Some(1.0)));
        assert_eq!(cells[2].config.optimizer.name(), "spam");
        assert_eq!(cells[2].config.optimizer.lr(), xor().optimizer.lr());
        assert_eq!(cells[2].config.dynamics.schedule.name(), "sequential");
        let e = build_all(&xor(), &axes(&["options=sam@clip=0"])).unwrap_err().0;
        assert!(e.contains("options=sam@clip=0") && e.contains("positive number"), "{e}");
    }

    #[test]
    fn shards_split_the_cells_by_index_mod_n() {
        let s = Shard::parse("1/3").unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        let held: Vec<usize> = (0..10).filter(|&c| s.holds(c)).collect();
        assert_eq!(held, [1, 4, 7]);
        // The shards of N partition the cells.
        for n in 1..6 {
            let shards: Vec<Shard> = (0..n).map(|i| Shard::parse(&format!("{i}/{n}")).unwrap()).collect();
            for c in 0..50 {
                assert_eq!(shards.iter().filter(|s| s.holds(c)).count(), 1);
            }
        }
        for bad in ["3/3", "0/0", "-1/3", "1", "a/b", "1/2/3", ""] {
            let e = Shard::parse(bad).unwrap_err().0;
            assert!(e.contains("expected I/N with 0 ≤ I < N"), "{bad}: {e}");
        }
    }

    #[test]
    fn axes_apply_method_first_whatever_their_order() {
        let base = xor();
        let a = axes(&["param.c=0.2,0.4", "method=cagrad"]);
        let c = build_cell(&base, &a, 1).unwrap();
        assert_eq!(c.config.method.to_text(), "cagrad:c=0.4");
        assert_eq!(
            c.values,
            [("param.c".to_string(), "0.4".to_string()), ("method".to_string(), "cagrad".to_string())]
        );
        let a = axes(&["weighting.alpha=2", "lr=0.003", "weighting=gradnorm", "method=upgrad"]);
        let c = build_cell(&base, &a, 0).unwrap();
        assert_eq!(c.config.method.to_text(), "upgrad+gradnorm:alpha=2");
        assert_eq!(c.config.optimizer.lr(), 0.003);
        // The key is the config's: same config, same key; another seed, another key.
        assert_eq!(c.key, config_key(&c.config));
        assert_eq!(c.key.len(), 64);
        let a = axes(&["seed=0,1"]);
        assert_ne!(build_cell(&base, &a, 0).unwrap().key, build_cell(&base, &a, 1).unwrap().key);
    }

    #[test]
    fn bad_cells_are_refused_before_anything_runs() {
        let base = xor();
        // MGDA has no parameter c: the cell says which one.
        let e = build_all(&base, &axes(&["method=cagrad,mgda", "param.c=0.3"])).unwrap_err().0;
        assert!(e.contains("cell 1 (method=mgda, param.c=0.3)") && e.contains("no parameter 'c'"), "{e}");
        let e = build_all(&base, &axes(&["lr=fast"])).unwrap_err().0;
        assert!(e.contains("learning rate"), "{e}");
        // The trainer's own checks (a batch larger than the train set).
        let e = build_all(&base, &axes(&["batch_size=10,100000"])).unwrap_err().0;
        assert!(e.contains("cell 1") && e.contains("exceeds"), "{e}");
        // Two spellings of one value are one run.
        let e = build_all(&base, &axes(&["lr=0.001,1e-3"])).unwrap_err().0;
        assert!(e.contains("cells 0 (lr=0.001) and 1 (lr=1e-3) are the same run"), "{e}");
    }

    #[test]
    fn the_fingerprint_names_base_and_axes() {
        let base = xor();
        let a = axes(&["seed=0..2"]);
        let f = fingerprint(&base, &a);
        assert_eq!(f.len(), 16);
        assert_eq!(f, fingerprint(&base, &axes(&["seed=0,1,2"])), "a range is its values");
        assert_ne!(f, fingerprint(&base, &axes(&["seed=0..3"])));
        let mut other = base.clone();
        other.steps = 7;
        assert_ne!(f, fingerprint(&other, &a));
    }
}
