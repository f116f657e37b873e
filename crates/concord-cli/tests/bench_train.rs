//! `concord bench train`: the JSON document on both backends and bad input (exit 2). No
//! timing is asserted: the figures belong in the report, not in a test.

mod common;

use common::{concord, json};

#[test]
fn bench_train_reports_steps_per_second_on_both_backends() {
    for backend in ["cpu", "gpu"] {
        let v = json(&concord(&[
            "bench",
            "train",
            "--preset",
            "xor-conflict",
            "--backend",
            backend,
            "--steps",
            "12",
            "--warmup",
            "2",
            "--chunk",
            "5",
            "--json",
        ]));
        assert_eq!(v["backend"], backend);
        assert_eq!(v["steps"], 12);
        assert_eq!(v["preset"], "xor-conflict");
        let (sps, secs) = (v["steps_per_second"].as_f64().unwrap(), v["seconds"].as_f64().unwrap());
        assert!(sps > 0.0 && secs > 0.0, "{v}");
        assert_eq!(v["adapter"].is_null(), backend == "cpu", "{v}");
    }
}

#[test]
fn bench_train_bad_input_exits_2() {
    for args in [
        &["bench", "train", "--preset", "nope"][..],
        &["bench", "train", "--preset", "xor-conflict", "--steps", "0"][..],
        &["bench", "train", "--preset", "xor-conflict", "--backend", "gpu", "--method", "mean+harmonize"][..],
        &["bench", "train", "--preset", "pareto-synthetic", "--backend", "gpu"][..],
    ] {
        let out = concord(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error"), "{args:?}");
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("concord-bench-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const QUICK: [&str; 5] = ["--steps", "3", "--warmup", "1", "--json"];

#[test]
fn bench_train_precision_reaches_the_run() {
    let base = ["bench", "train", "--preset", "sinusoid-phases", "--method", "upgrad"];
    let default = json(&concord(&[&base[..], &QUICK[..]].concat()));
    assert_eq!(default["precision"], "f32", "{default}");
    assert_eq!(default["preset"], "sinusoid-phases", "{default}");
    assert!(default["config"].is_null(), "{default}");
    assert_eq!(default["method"], "upgrad", "{default}");
    for p in ["f32", "f64"] {
        let v = json(&concord(&[&base[..], &["--precision", p], &QUICK[..]].concat()));
        assert_eq!(v["precision"], p, "{v}");
        assert!(v["steps_per_second"].as_f64().unwrap() > 0.0, "{v}");
    }
}

/// A run's "config" object, written by `concord train --out`, drives `bench train --config`:
/// its method and precision unless the flags say otherwise.
#[test]
fn bench_train_config_file_is_a_run_config() {
    let dir = temp_dir("config");
    let run = dir.join("run.json");
    let out = concord(&[
        "train",
        "--preset",
        "xor-conflict",
        "--method",
        "pcgrad",
        "--precision",
        "f64",
        "--steps",
        "2",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&run).unwrap()).unwrap();
    let file = dir.join("config.json");
    std::fs::write(&file, record["config"].to_string()).unwrap();
    let path = file.to_str().unwrap();

    let v = json(&concord(&[&["bench", "train", "--config", path][..], &QUICK[..]].concat()));
    assert_eq!(v["config"], path, "{v}");
    assert!(v["preset"].is_null(), "{v}");
    assert_eq!(v["method"], "pcgrad", "the file's method: {v}");
    assert_eq!(v["precision"], "f64", "the file's precision: {v}");
    assert_eq!(v["steps"], 3, "{v}");

    let v = json(&concord(
        &[&["bench", "train", "--config", path, "--precision", "f32", "--method", "mgda"][..], &QUICK[..]].concat(),
    ));
    assert_eq!((v["precision"].as_str(), v["method"].as_str()), (Some("f32"), Some("mgda")), "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_train_bad_precision_and_config_exit_2() {
    let dir = temp_dir("bad");
    let not_json = dir.join("not.json");
    std::fs::write(&not_json, "{ \"data\": ").unwrap();
    let not_config = dir.join("other.json");
    std::fs::write(&not_config, r#"{"preset": "xor-conflict"}"#).unwrap();
    // Parses (the preset's own config) but fails validate(): eval_every 0.
    let mut config = serde_json::to_value(concord_core::train::preset("xor-conflict").unwrap()).unwrap();
    config["eval_every"] = 0.into();
    let invalid = dir.join("invalid.json");
    std::fs::write(&invalid, config.to_string()).unwrap();
    let missing = dir.join("missing.json");
    let p = |f: &std::path::Path| f.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--preset".into(), "xor-conflict".into(), "--precision".into(), "f16".into()], "unknown precision"),
        (vec!["--preset".into(), "xor-conflict".into(), "--precision".into(), "".into()], "unknown precision"),
        (vec!["--config".into(), p(&missing)], "cannot read"),
        (vec!["--config".into(), p(&not_json)], "not a valid TrainConfig"),
        (vec!["--config".into(), p(&not_config)], "not a valid TrainConfig"),
        (vec!["--config".into(), p(&invalid)], "eval_every"),
        (vec!["--config".into(), p(&invalid), "--preset".into(), "xor-conflict".into()], "cannot be used with"),
        (vec![], "required"),
    ];
    for (flags, said) in cases {
        let args: Vec<&str> = ["bench", "train"].into_iter().chain(flags.iter().map(String::as_str)).collect();
        let out = concord(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(err.contains("error") && err.contains(said), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
