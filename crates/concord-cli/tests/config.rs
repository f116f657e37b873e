//! `concord config --preset NAME`, `concord train --config FILE|-` with flags beside it, and
//! `concord train --hash URL`: every preset's config round-trips to the same run, flags override
//! the file, a run record replays, and bad files say what is wrong.

mod common;

use common::{concord, concord_with_stdin, json};
use concord_core::train::{Preset, TrainConfig};

fn config_of(preset: &str) -> String {
    let out = concord(&["config", "--preset", preset]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The `--json` report without the field naming where the config came from.
fn without_label(mut v: serde_json::Value) -> serde_json::Value {
    v.as_object_mut().unwrap().remove("preset");
    v
}

/// Short runs: the round trip is about the config, not the length (the toys' 100 000 steps and
/// the presets' hundreds take minutes in a debug build).
fn steps_for(p: Preset) -> &'static str {
    if p.toy_problem().is_some() {
        "3000"
    } else {
        "40"
    }
}

#[test]
fn every_presets_config_round_trips_to_the_same_run() {
    for p in Preset::ALL {
        let text = config_of(p.name());
        // What it prints is the preset's config, exactly.
        let parsed: TrainConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, p.config(), "{}", p.name());
        let steps = steps_for(p);
        let piped = json(&concord_with_stdin(&["train", "--config", "-", "--steps", steps, "--json"], &text));
        let named = json(&concord(&["train", "--preset", p.name(), "--steps", steps, "--json"]));
        assert_eq!(without_label(piped), without_label(named), "{}", p.name());
    }
}

#[test]
fn flags_beside_a_config_override_it() {
    let dir = std::env::temp_dir().join(format!("concord-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("base.json");
    std::fs::write(&path, config_of("circle-vs-gauss")).unwrap();
    let file = path.to_str().unwrap();
    let flags = ["--method", "cagrad", "--param", "c=0.3", "--weighting", "uw", "--steps", "30", "--seed", "4"];
    let over = json(&concord(&[&["train", "--config", file, "--lr", "0.02", "--json"][..], &flags[..]].concat()));
    let named =
        json(&concord(&[&["train", "--preset", "circle-vs-gauss", "--lr", "0.02", "--json"][..], &flags[..]].concat()));
    assert_eq!(over["method_spec"], "cagrad+uw:c=0.3");
    assert_eq!(over["steps"], 30);
    assert_eq!(over["preset"], "base.json");
    assert_eq!(without_label(over), without_label(named.clone()));

    // A run record written by --out replays: same config, same losses, and the report says so.
    let record = dir.join("run.json");
    let args =
        [&["train", "--preset", "circle-vs-gauss", "--lr", "0.02", "--out", record.to_str().unwrap()][..], &flags]
            .concat();
    assert!(concord(&args).status.success());
    let replay = json(&concord(&["train", "--config", record.to_str().unwrap(), "--json"]));
    assert_eq!(replay["final_losses"], named["final_losses"]);
    assert_eq!(replay["recorded"]["final_losses"], named["final_losses"]);
    assert_eq!(replay["recorded"]["max_abs_diff"], 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_hash_trains_what_the_page_builds() {
    // The page's defaults for this preset are the preset's own config (same data, model,
    // optimizer, seed); the page evaluates more often, which does not change the training. (The
    // page's seed also draws the data; `--seed` only the init, batches and methods.)
    let url = "http://127.0.0.1:8080/#preset=sinusoid-phases&arena=mean,upgrad&lr=0.005&play=false";
    let hashed = json(&concord(&["train", "--hash", url, "--run", "1", "--steps", "30", "--json"]));
    let named = json(&concord(&[
        "train",
        "--preset",
        "sinusoid-phases",
        "--method",
        "upgrad",
        "--lr",
        "0.005",
        "--steps",
        "30",
        "--json",
    ]));
    assert_eq!(hashed["method_spec"], "upgrad");
    assert_eq!(hashed["final_losses"], named["final_losses"]);
    assert_eq!(hashed["test_losses"], named["test_losses"]);
    // Without --steps the preset's own length, not the page's open-ended limit.
    let out = concord(&["train", "--hash", "#preset=pareto-synthetic&arena=mgda", "--json"]);
    assert_eq!(json(&out)["steps"], Preset::ParetoSynthetic.config().steps);
}

#[test]
fn a_hash_trains_on_the_gpu_without_its_per_layer_metrics() {
    // A hash sets `layer_metrics`, which the GPU trainer does not read back: as the page, the
    // GPU run leaves them off instead of failing, and trains what the CPU trains (f32 vs f64 over
    // 30 steps: well within 1e-3 relative).
    let url = "#preset=sinusoid-phases&arena=upgrad&lr=0.005";
    let gpu = concord(&["train", "--hash", url, "--steps", "30", "--backend", "gpu", "--json"]);
    assert!(gpu.status.success(), "{}", String::from_utf8_lossy(&gpu.stderr));
    let cpu = json(&concord(&["train", "--hash", url, "--steps", "30", "--json"]));
    let gpu = json(&gpu);
    let floats =
        |v: &serde_json::Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let (g, c) = (floats(&gpu["final_losses"]), floats(&cpu["final_losses"]));
    assert_eq!(g.len(), c.len());
    for (g, c) in g.iter().zip(&c) {
        assert!((g - c).abs() <= 1e-3 * c.abs().max(1e-3), "gpu {g} vs cpu {c}");
    }
}

#[test]
fn bad_configs_and_hashes_exit_2_with_a_message() {
    let mut typo: serde_json::Value = serde_json::from_str(&config_of("xor-conflict")).unwrap();
    typo["stpes"] = 10.into();
    let bad_lr = config_of("xor-conflict").replace("\"lr\": 0.01", "\"lr\": -1.0");
    let cases: Vec<(Vec<&str>, String, &str)> = vec![
        (vec!["train", "--config", "-"], "not json".into(), "is not JSON"),
        (vec!["train", "--config", "-"], "[1, 2]".into(), "expected a JSON object"),
        (vec!["train", "--config", "-"], typo.to_string(), "unknown key \"stpes\""),
        (vec!["train", "--config", "-"], bad_lr, "learning rate"),
        (vec!["train", "--config", "/no/such/file.json"], String::new(), "cannot read /no/such/file.json"),
        (vec!["train", "--config", "-", "--run", "1"], config_of("xor-conflict"), "--run picks a run"),
        (vec!["train", "--preset", "xor-conflict", "--run", "1"], String::new(), "--run picks a run"),
        (vec!["train", "--hash", "#preset=xor-conflict", "--run", "9"], String::new(), "--run 9"),
        (vec!["train", "--hash", "#preset=xor-conflict", "--start=1,2"], String::new(), "--start is for the toy"),
        (
            vec!["train", "--config", "-"],
            r#"{"format": "concord-playground-run", "version": 99, "hash": "", "csv": null, "steps": 0, "runs": []}"#
                .into(),
            "version 99",
        ),
        (
            vec!["train", "--config", "-"],
            r#"{"format": "concord-playground-run", "version": 1, "hash": "", "csv": null, "steps": 0, "runs": []}"#
                .into(),
            "no run 0: the file holds 0",
        ),
        (vec!["config", "--preset", "nope"], String::new(), "unknown preset 'nope'"),
    ];
    for (args, stdin, says) in cases {
        let out = concord_with_stdin(&args, &stdin);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: expected '{says}' in: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}
