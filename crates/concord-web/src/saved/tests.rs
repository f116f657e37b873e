//! The run importer's checks, one hole of issue 14 per test (each failed on the importer before
//! `parse_saved`: an index panic, a file that could not be read back, a record the page took
//! without looking), and the helpers the fuzz target shares.

use super::*;
use crate::train_config::base_config;
use concord_core::data::parse_csv;
use serde_json::{json, Value};

/// A small CSV: two ±1 tasks and a 3-class one.
pub const CSV: &str = "x1,x2,a,b,c:class\n\
    0,0,1,-1,0\n1,0,-1,1,1\n0,1,1,1,2\n-1,0,-1,-1,0\n0,-1,1,-1,1\n1,1,-1,1,2\n-1,-1,1,1,0\n2,0,-1,-1,1\n\
    0,2,1,-1,2\n-2,0,-1,1,0\n0,-2,1,1,1\n2,2,-1,-1,2\n";

fn curve_point(t: &Trainer, step: usize) -> CurvePoint {
    CurvePoint { step, train: t.train_losses().unwrap(), test: t.test_losses().and_then(Result::ok) }
}

/// The side of the conflict maps `exported` writes (the page's is up to 100; small keeps the
/// fuzz target's files small).
const MAP_SIDE: usize = 6;

/// A run file as the page writes it: the runs of `hash` (on `csv`, if given) trained `steps`
/// steps on the CPU, with their records, loss curves, conflict maps (MLP runs of two tasks or
/// more) and the step counter.
pub fn exported(hash: &str, csv: Option<&str>, steps: usize) -> String {
    let (state, notices) = State::from_hash(hash);
    assert!(notices.is_empty(), "{notices:?}");
    let data = csv.map(|t| parse_csv(t).unwrap());
    let base = base_config(&state, data.as_ref()).unwrap();
    let runs = state
        .arena
        .iter()
        .map(|spec| {
            let mut t = Trainer::new(with_method(&state, &base, spec)).unwrap();
            let mut curve = vec![curve_point(&t, 0)];
            for s in 1..=steps {
                if t.step().is_err() {
                    break;
                }
                if s % EVAL_EVERY == 0 {
                    curve.push(curve_point(&t, s));
                }
            }
            let names = crate::train_config::task_names(&base, t.num_tasks());
            let record = RunRecord { task_names: names, ..t.record() };
            let conflict_map = t.mlp().filter(|_| t.num_tasks() >= 2).map(|mlp| {
                let h = 2.0 * 6.0 / MAP_SIDE as f64;
                let pts: Vec<[f64; 2]> = (0..MAP_SIDE * MAP_SIDE)
                    .map(|i| [-6.0 + ((i % MAP_SIDE) as f64 + 0.5) * h, 6.0 - ((i / MAP_SIDE) as f64 + 0.5) * h])
                    .collect();
                ConflictMap::cpu(mlp, t.config().features.as_ref(), t.params(), &pts, t.step_index(), 6.0, MAP_SIDE)
                    .unwrap()
            });
            SavedRun {
                method: spec.to_text(),
                error: t.error().map(str::to_string),
                record: Some(record),
                curve,
                backend: Some("cpu".into()),
                conflict_map,
            }
        })
        .collect();
    SavedSession {
        format: FORMAT.into(),
        version: VERSION,
        hash: state.to_hash(),
        csv: data.map(|data| SavedCsv { name: "data.csv".into(), data }),
        steps: steps as u64,
        runs,
    }
    .to_json()
}

/// A validated import written back as a run file (what the page exports after installing it).
pub fn write_back(v: &ValidatedImport) -> String {
    let base = base_config(&v.state, v.csv.as_ref().map(|(_, d)| d)).expect("a validated state builds");
    let runs = v
        .runs
        .iter()
        .zip(&v.state.arena)
        .map(|(run, spec)| SavedRun {
            method: spec.to_text(),
            error: run.error.clone(),
            curve: run.curve.clone(),
            backend: None,
            conflict_map: run.conflict_map.clone(),
            record: run.restored.as_ref().map(|r| RunRecord {
                config: with_method(&v.state, &base, spec),
                task_names: crate::train_config::task_names(&base, r.train.len()),
                steps_done: r.steps,
                params: r.params.clone(),
                history: r.history.clone(),
                final_train_losses: r.train.clone(),
                final_test_losses: r.test.clone(),
                error: run.error.clone(),
            }),
        })
        .collect();
    SavedSession {
        format: FORMAT.into(),
        version: VERSION,
        hash: v.state.to_hash(),
        csv: v.csv.as_ref().map(|(name, data)| SavedCsv { name: name.clone(), data: data.clone() }),
        steps: v.steps,
        runs,
    }
    .to_json()
}

/// What an accepted file guarantees the page (the invariants the fuzz target asserts).
pub fn check_invariants(v: &ValidatedImport) -> Result<(), String> {
    let fail = |what: &str| Err(what.to_string());
    if v.state.play || v.state.preset.is_toy() || v.runs.len() != v.state.arena.len() {
        return fail("state or run count");
    }
    if let Some((name, data)) = &v.csv {
        data.validate()?;
        if name.chars().count() > MAX_NAME_CHARS {
            return fail("csv name");
        }
    }
    let base = base_config(&v.state, v.csv.as_ref().map(|(_, d)| d))?;
    for (run, spec) in v.runs.iter().zip(&v.state.arena) {
        let Some(r) = &run.restored else { continue };
        let t = Trainer::new(with_method(&v.state, &base, spec))?;
        let m = t.num_tasks();
        if r.params.len() != t.params().len() || !r.params.iter().all(|p| p.is_finite()) {
            return fail("params");
        }
        if r.history.len() > HISTORY_CAP
            || r.history.first().is_some_and(|h| h.step != 0)
            || r.history.windows(2).any(|w| w[0].step >= w[1].step)
            || r.steps != r.history.last().map_or(0, |h| h.step + 1)
            || r.steps > t.config().steps
        {
            return fail("history steps");
        }
        if r.history.iter().any(|h| h.losses.len() != m || h.metrics.cosine.len() != m) {
            return fail("history shapes");
        }
        if r.train.len() != m || r.test.as_ref().is_some_and(|t| t.len() != m) {
            return fail("final losses");
        }
        if run.curve.windows(2).any(|w| w[0].step >= w[1].step)
            || run.curve.iter().any(|c| c.step > r.steps || c.train.len() != m)
        {
            return fail("curve");
        }
    }
    Ok(())
}

fn value(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// `text` with the value at JSON pointer `at` replaced by `new` (`None`: removed).
fn with(text: &str, at: &str, new: Option<Value>) -> String {
    let mut v = value(text);
    let (parent, key) = at.rsplit_once('/').unwrap();
    let p = v.pointer_mut(parent).unwrap_or_else(|| panic!("{parent}"));
    match (p, new) {
        (Value::Object(o), Some(n)) => drop(o.insert(key.to_string(), n)),
        (Value::Object(o), None) => drop(o.remove(key)),
        (Value::Array(a), Some(n)) => a[key.parse::<usize>().unwrap()] = n,
        (Value::Array(a), None) => drop(a.remove(key.parse::<usize>().unwrap())),
        _ => panic!("{at}"),
    }
    v.to_string()
}

fn refused(text: &str, needle: &str) {
    match parse_saved(text) {
        Ok(_) => panic!("accepted, expected “{needle}”"),
        Err(e) => assert!(e.contains(needle), "expected “{needle}” in: {e}"),
    }
}

const HASH: &str = "preset=xor-conflict&points=50&arena=mean,cagrad:c=0.3";

#[test]
fn a_file_the_page_writes_is_accepted_and_writes_back_the_same() {
    for (hash, csv) in [(HASH, None), ("preset=xor-conflict&arena=mgda,pcgrad+uw", Some(CSV))] {
        let text = exported(hash, csv, 12);
        let v = parse_saved(&text).unwrap();
        check_invariants(&v).unwrap();
        assert_eq!(v.runs.len(), 2);
        let r = v.runs[0].restored.as_ref().unwrap();
        assert_eq!((r.steps, r.history.len()), (12, 12));
        assert_eq!(v.csv.is_some(), csv.is_some());
        // Written back (as the page exports after the import) and read again: the same values.
        let again = write_back(&v);
        assert_eq!(write_back(&parse_saved(&again).unwrap()), again);
        // The weights come back bit for bit.
        let back = parse_saved(&again).unwrap();
        assert_eq!(back.runs[1].restored.as_ref().unwrap().params, v.runs[1].restored.as_ref().unwrap().params);
    }
}

/// Issue 14: a dataset that parses but is inconsistent reached an index panic in
/// `shuffle_and_split` (or a panel) before any check — the release page aborts on a panic.
#[test]
fn an_inconsistent_dataset_is_refused_not_a_panic() {
    let text = exported(HASH, Some(CSV), 6);
    let data = value(&text)["csv"]["data"].clone();
    let labels1 = data["labels"][1].as_array().unwrap()[..5].to_vec();
    let kinds = data["kinds"].as_array().unwrap()[..2].to_vec();
    for (at, new, needle) in [
        ("/csv/data/labels/1", Some(json!(labels1)), "task 1 ('b') has 5 labels for 12 points"),
        ("/csv/data/kinds", Some(json!(kinds)), "3 label columns but 2 label kinds"),
        ("/csv/data/task_names", Some(json!(["a"])), "1 task names"),
        ("/csv/data/labels/2/0", Some(json!(7.0)), "label 7 of point 0 is not a Classes"),
        ("/csv/data/labels/0/3", Some(json!(0.5)), "not a Binary label"),
        ("/csv/data/labels", Some(json!([])), "1–8 label columns, got 0"),
        ("/csv/data/points", Some(json!([])), "1–100000 points, got 0"),
        ("/csv/data/n_train", Some(json!(13)), "13 training points of 12"),
    ] {
        refused(&with(&text, at, new), needle);
    }
    // What the old importer did with the first of them: `base_config` splits the data, and the
    // split indexed past the short column. It is an error there too now.
    let (state, _) = State::from_hash(HASH);
    let mut short = parse_csv(CSV).unwrap();
    short.labels[1].truncate(5);
    let e = base_config(&state, Some(&short)).expect_err("a short column is an error");
    assert!(e.contains("5 labels for 12 points"), "{e}");
    // A point at infinity cannot be written in JSON at all ("inf" is not read as a coordinate).
    refused(&with(&text, "/csv/data/points/0", Some(json!(["inf", 0.0]))), "not a Concord run file");
}

/// Issue 14: a diverged run exported its infinite losses as `null`, and that file could not be
/// imported back. They are written "inf"/"-inf"/"nan" now, and an old file's nulls read as NaN.
#[test]
fn a_diverged_run_with_non_finite_losses_exports_and_imports_back_equal() {
    let text = exported(HASH, None, 10);
    let mut v = parse_saved(&text).unwrap();
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    let r = v.runs[1].restored.as_mut().unwrap();
    r.train = vec![inf, nan];
    r.test = Some(vec![-inf, 1.0]);
    r.history[4].losses[1] = inf;
    r.history[4].metrics.conflict_ratio = nan;
    r.history[4].metrics.cosine[0][1] = Some(nan);
    v.runs[1].curve[1].train[0] = inf;
    v.runs[1].error = Some("step 9: a task loss is not finite ([inf, NaN])".into());
    let file = write_back(&v);
    assert!(file.contains(r#""final_train_losses":["inf","nan"]"#), "non-finite values are strings");
    let back = parse_saved(&file).expect("the diverged run's file imports");
    // Equal, NaN as NaN: written again it is the same text, and the values are there.
    assert_eq!(write_back(&back), file);
    let r = back.runs[1].restored.as_ref().unwrap();
    assert!(r.train[0] == inf && r.train[1].is_nan() && r.test.as_ref().unwrap()[0] == -inf);
    assert!(r.history[4].losses[1] == inf && r.history[4].metrics.conflict_ratio.is_nan());
    assert!(back.runs[1].curve[1].train[0] == inf);
    // A file from before this form (serde_json wrote null) imports, null as NaN.
    let old = file.replace(r#"["inf","nan"]"#, "[null,null]");
    let r = parse_saved(&old).unwrap().runs.remove(1).restored.unwrap();
    assert!(r.train.iter().all(|x| x.is_nan()));
    // Parameters must be finite numbers: the engines cannot continue from anything else.
    refused(&with(&text, "/runs/0/record/params/3", Some(json!("inf"))), "expected f64");
}

/// Every record is checked against the model its config builds, and everything has the UI's caps.
#[test]
fn records_that_do_not_fit_the_model_or_the_caps_are_refused() {
    let text = exported(HASH, None, 12);
    let run = value(&text)["runs"][0].clone();
    let history = run["record"]["history"].as_array().unwrap().clone();
    let mut long = history.clone();
    while long.len() <= HISTORY_CAP {
        let mut r = history[0].clone();
        r["step"] = json!(long.len());
        long.push(r);
    }
    let mut swapped = history.clone();
    swapped.swap(3, 4);
    let params = run["record"]["params"].as_array().unwrap();
    let cases: Vec<(&str, Option<Value>, &str)> = vec![
        ("/format", Some(json!("nope")), "unsupported file"),
        ("/version", Some(json!(2)), "unsupported file"),
        ("/hash", Some(json!("preset=xor-conflict&points=zzz")), "the saved settings do not parse"),
        ("/hash", Some(json!("preset=cagrad-toy")), "toy preset"),
        ("/runs/1", None, "1 runs for 2 methods"),
        ("/steps", Some(json!(u64::MAX)), "is over"),
        ("/runs/0/record/params", Some(json!(params[..params.len() - 1])), "parameters, this model has"),
        ("/runs/0/record/history", Some(json!(long)), "at most 2048 are kept"),
        ("/runs/0/record/history", Some(json!(swapped)), "not after step"),
        ("/runs/0/record/history/0/step", Some(json!(1)), "record 0 says step 1"),
        ("/runs/0/record/history/11/step", Some(json!(usize::MAX)), "past this run's limit"),
        ("/runs/0/record/history/2/losses", Some(json!([1.0])), "losses has 1 values for 2 tasks"),
        ("/runs/0/record/history/2/test_losses", Some(json!([1.0, 2.0, 3.0])), "test_losses has 3 values"),
        ("/runs/0/record/history/2/metrics/cosine", Some(json!([[1.0]])), "cosine is not a 2 × 2 matrix"),
        ("/runs/0/record/history/2/metrics/gms/1", Some(json!([1.0])), "gms is not a 2 × 2"),
        ("/runs/0/record/history/2/metrics/norms", Some(json!([])), "norms has 0 values"),
        ("/runs/0/record/history/2/metrics/conflicting_tasks", Some(json!([5])), "conflicting_tasks"),
        ("/runs/0/record/history/2/metrics/layers/0/start", Some(json!(3)), " layer 0 spans 3"),
        (
            "/runs/0/record/history/2/metrics/layers",
            Some(Value::Array(vec![history[2]["metrics"]["layers"][0].clone(); 9])),
            "9 layers",
        ),
        (
            "/runs/0/record/history/2/moe",
            Some(json!({"routing": {"tasks": [], "task_expert": [], "aux": {}}, "expert_cosine": []})),
            "not a Concord run file",
        ),
        ("/runs/0/record/final_train_losses", Some(json!([1.0])), "final_train_losses has 1"),
        ("/runs/0/record/final_test_losses", Some(json!([])), "final_test_losses has 0"),
        ("/runs/0/curve/1/step", Some(json!(99)), "after the run's 12 steps"),
        ("/runs/0/curve/2/step", Some(json!(0)), "not after step"),
        ("/runs/0/curve/1/train", Some(json!([0.5])), "train losses has 1 values"),
        ("/runs/0/curve", Some(Value::Array(vec![run["curve"][0].clone(); 40])), "40 points for 12 steps"),
        ("/runs/1/error", Some(json!("x".repeat(5000))), "the error has 5000 characters"),
        ("/runs/1/method", Some(json!("y".repeat(2000))), "the method has 2000"),
        ("/runs/0/record/params/0", Some(json!(null)), "expected f64"),
        ("/runs/0/record", None, "without a record has a loss curve"),
        ("/runs/0/record/history/0/losses", None, "not a Concord run file"),
    ];
    for (at, new, needle) in cases {
        refused(&with(&text, at, new), needle);
    }
    // Text that is not a run file, or is too long to be one.
    refused("", "not a Concord run file");
    refused("[1,2]", "not a Concord run file");
    refused(&format!("{{\"format\":\"{}\"}}", "z".repeat(100_000)), "not a Concord run file");
    let e = parse_saved(&format!("{{\"format\":{}}}", "9".repeat(500))).unwrap_err();
    assert!(e.len() < 400, "an error message stays short: {e}");
    refused(&" ".repeat(MAX_FILE_BYTES + 1), "a run file may have at most");
}

/// An MoE run's routing records are checked against its experts; a run without a record starts
/// afresh; an old link's keys still import.
#[test]
fn moe_records_missing_records_and_old_link_keys() {
    let text = exported("preset=xor-conflict&points=50&model=moe&experts=3&arena=mean", None, 6);
    parse_saved(&text).unwrap();
    let e3 = value(&text)["runs"][0]["record"]["history"][2]["moe"]["expert_cosine"].clone();
    let two = json!(e3.as_array().unwrap()[..2]);
    refused(&with(&text, "/runs/0/record/history/2/moe/expert_cosine", Some(two)), "2 experts' cosines for 3");
    refused(&with(&text, "/runs/0/record/history/2/moe/routing/task_expert/1", Some(json!([0.5]))), "P(task, expert)");
    refused(&with(&text, "/runs/0/record/history/2/moe/routing/tasks/0/dropped", Some(json!(1u64 << 40))), "token");
    // No record: the run starts afresh (a curve past step 0 cannot belong to it).
    let none = with(&text, "/runs/0/record", Some(Value::Null));
    refused(&none, "without a record has a loss curve");
    let none = with(&none, "/runs/0/curve", Some(json!([value(&text)["runs"][0]["curve"][0]])));
    let v = parse_saved(&none).unwrap();
    assert!(v.runs[0].restored.is_none());
    refused(&with(&none, "/runs/0/curve", Some(json!([value(&text)["runs"][0]["curve"][1]]))), "without a record");
    // An old link's keys that never applied to a multi-task preset still import (no notice).
    let old = with(&text, "/hash", Some(json!(format!("{}&methods=mean&c=1", value(&text)["hash"].as_str().unwrap()))));
    parse_saved(&old).unwrap();
}

/// Issue 17: each run's conflict map travels with it; a file without one (from before the field)
/// imports; a map that does not fit its grid, holds no cosines, or belongs to no MLP is refused.
#[test]
fn conflict_maps_travel_and_are_checked() {
    let text = exported(HASH, None, 8);
    let file = value(&text);
    let map = &file["runs"][1]["conflict_map"];
    assert_eq!((map["side"].as_u64(), map["step"].as_u64(), map["engine"].as_str()), (Some(6), Some(8), Some("cpu")));
    assert_eq!(map["min_cos"].as_array().unwrap().len(), 36);
    let v = parse_saved(&text).unwrap();
    let m = v.runs[1].conflict_map.as_ref().expect("the map is imported");
    assert_eq!(m.min_cos.len(), 36);
    let direct: ConflictMap = serde_json::from_value(map.clone()).unwrap();
    assert_eq!(m, &direct);
    assert_eq!(write_back(&v), write_back(&parse_saved(&write_back(&v)).unwrap()));
    // Without the field (an older file): accepted, no map.
    let old = with(&text, "/runs/1/conflict_map", None);
    assert!(parse_saved(&old).unwrap().runs[1].conflict_map.is_none());
    assert!(!write_back(&parse_saved(&old).unwrap()).contains("conflict_map\":null"), "absent, not null");
    let cells = map["min_cos"].as_array().unwrap();
    for (at, new, needle) in [
        ("/runs/1/conflict_map/side", json!(7), "36 cells for a side of 7"),
        ("/runs/1/conflict_map/side", json!(1000), "1000 cells per side"),
        ("/runs/1/conflict_map/min_cos", json!(cells[..35]), "35 cells"),
        ("/runs/1/conflict_map/min_cos/3", json!(2.5), "cell 3 holds 2.5"),
        ("/runs/1/conflict_map/min_cos/3", json!("nan"), "not a Concord run file"),
        ("/runs/1/conflict_map/extent", json!(0.0), "extent 0"),
        ("/runs/1/conflict_map/step", json!(9), "of step 9, after the run's 8 steps"),
        ("/runs/1/conflict_map/engine", json!("abacus"), "not cpu or webgpu"),
    ] {
        refused(&with(&text, at, Some(new)), needle);
    }
    // A map on a run that has no record, or no MLP.
    let none = with(&text, "/runs/0/record", Some(Value::Null));
    let none = with(&none, "/runs/0/curve", Some(json!([file["runs"][0]["curve"][0]])));
    refused(&none, "without a record has a conflict map");
    let moe = exported("preset=xor-conflict&points=50&model=moe&experts=3&arena=mean", None, 4);
    assert!(value(&moe)["runs"][0].get("conflict_map").is_none(), "no map for an MoE run");
    refused(&with(&moe, "/runs/0/conflict_map", Some(map.clone())), "not an MLP of two tasks");
}
