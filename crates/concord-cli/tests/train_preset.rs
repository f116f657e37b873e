//! `concord train --preset …`: the --json document, --out JSON/CSV, --plot PNGs, and bad input.

mod common;

use common::{concord, concord_with_stdin, json};
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("concord-train-preset-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number")).collect()
}

#[test]
fn json_has_the_documented_fields() {
    let v = json(&concord(&[
        "train",
        "--preset",
        "xor-conflict",
        "--method",
        "upgrad",
        "--steps",
        "60",
        "--seed",
        "3",
        "--lr",
        "0.02",
        "--json",
    ]));
    assert_eq!(v["steps"], 60);
    assert_eq!(v["preset"], "xor-conflict");
    assert_eq!(v["method"], "upgrad");
    assert!(v["weighting"].is_null());
    let (train, test) = (floats(&v["final_losses"]), floats(&v["test_losses"]));
    assert_eq!((train.len(), test.len()), (2, 2));
    assert!(train.iter().chain(&test).all(|l| l.is_finite() && *l > 0.0));
    let m = &v["final_metrics"];
    for key in ["cosine", "conflict_ratio", "gms", "update_cosine_mean", "directional", "non_conflicting"] {
        assert!(!m[key].is_null(), "final_metrics.{key} missing: {m}");
    }
    assert_eq!(m["non_conflicting"], true, "upgrad is non-conflicting");

    // Same flags, same numbers; a weighting and its parameter reach the run.
    let again = json(&concord(&[
        "train",
        "--preset",
        "xor-conflict",
        "--method",
        "upgrad",
        "--steps",
        "60",
        "--seed",
        "3",
        "--lr",
        "0.02",
        "--json",
    ]));
    assert_eq!(again["final_losses"], v["final_losses"]);
    let w = json(&concord(&[
        "train",
        "--preset",
        "sinusoid-phases",
        "--method",
        "cagrad",
        "--param",
        "c=0.4",
        "--weighting",
        "stch",
        "--weighting-param",
        "mu=0.5",
        "--steps",
        "20",
        "--json",
    ]));
    assert_eq!(w["weighting"], "stch");
    assert_eq!(floats(&w["final_losses"]).len(), 3);
    // pareto-synthetic has no test set.
    let p = json(&concord(&["train", "--preset", "pareto-synthetic", "--method", "mgda", "--steps", "30", "--json"]));
    assert!(p["test_losses"].is_null());
    assert_eq!(floats(&p["final_losses"]).len(), 2);
}

#[test]
fn out_writes_the_record_as_json_or_csv() {
    let dir = temp_dir("out");
    let run_json = dir.join("run.json");
    let run_csv = dir.join("run.csv");
    let base = ["train", "--preset", "circle-vs-gauss", "--method", "mean", "--steps", "25"];
    let out = concord(&[&base[..], &["--out", run_json.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&run_json).unwrap()).unwrap();
    assert_eq!(rec["steps_done"], 25);
    assert_eq!(rec["history"].as_array().unwrap().len(), 25);
    assert_eq!(rec["config"]["method"]["aggregator"]["name"], "mean");
    assert!(rec["history"][0]["metrics"]["cosine"].is_array());
    assert!(rec["params"].as_array().unwrap().len() > 10);

    let out = concord(&[&base[..], &["--out", run_csv.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&run_csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "step,loss_0,loss_1,test_loss_0,test_loss_1,conflict_ratio,min_cosine,update_mean_cosine,non_conflicting,\
         sample_coherence,sample_conflicting_fraction,sample_opposing_share,sample_stage_changed"
    );
    assert_eq!(lines.len(), 26);
    for (k, line) in lines[1..].iter().enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 13, "{line}");
        assert_eq!(f[12], "", "no sample weighting: {line}");
        assert_eq!(f[0], k.to_string());
        assert!(f[1].parse::<f64>().unwrap() > 0.0);
        // Test losses every 10 steps (the preset's eval_every), empty otherwise.
        assert_eq!(!f[3].is_empty(), k % 10 == 0, "{line}");
        let cr: f64 = f[5].parse().unwrap();
        assert!((0.0..=1.0).contains(&cr));
        let c: f64 = f[6].parse().unwrap();
        assert!((-1.0..=1.0).contains(&c));
        assert!(f[8] == "true" || f[8] == "false");
        // The sample-level conflict of the step: the record's.
        let samples = &rec["history"][k]["samples"];
        for (i, key) in [(9, "coherence"), (10, "conflicting_fraction"), (11, "opposing_share")] {
            assert_eq!(f[i].parse::<f64>().unwrap(), samples[key].as_f64().unwrap(), "{key} at step {k}");
        }
    }
    // The CSV's losses are the JSON record's.
    let first = rec["history"][0]["losses"][0].as_f64().unwrap();
    assert_eq!(lines[1].split(',').nth(1).unwrap().parse::<f64>().unwrap(), first);
    let _ = std::fs::remove_dir_all(&dir);
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    assert!(bytes.len() > 5_000, "{} is only {} bytes", path.display(), bytes.len());
    // IHDR: width and height.
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(w >= 400 && h >= 150, "{w}×{h}");
}

#[test]
fn plot_writes_the_pngs() {
    let dir = temp_dir("plot");
    let figs = dir.join("figs");
    let out = concord(&[
        "train",
        "--preset",
        "sinusoid-phases",
        "--method",
        "upgrad",
        "--steps",
        "40",
        "--plot",
        figs.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_png(&figs.join("losses.png"));
    assert_png(&figs.join("cosine.png"));
    assert_png(&figs.join("samples.png"));
    // No sample metrics (an analytic problem): no samples.png.
    let other = dir.join("pareto");
    let out = concord(&["train", "--preset", "pareto-synthetic", "--steps", "5", "--plot", other.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_png(&other.join("cosine.png"));
    assert!(!other.join("samples.png").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_has_the_sample_conflict_series() {
    // Every recorded step of a CPU MLP run, as the run record holds it; null where nothing
    // records it (an analytic problem, an MoE model).
    let dir = temp_dir("samples");
    let record_path = dir.join("run.json");
    let v = json(&concord(&[
        "train",
        "--preset",
        "xor-conflict",
        "--steps",
        "30",
        "--json",
        "--out",
        record_path.to_str().unwrap(),
    ]));
    let s = &v["sample_conflict"];
    assert_eq!(s["top_percent"], 10);
    let steps: Vec<u64> = s["steps"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
    assert_eq!(steps, (0..30).collect::<Vec<_>>());
    let rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    assert_eq!(rec["config"]["sample_metrics"], true, "the record says what it recorded");
    for key in ["coherence", "conflicting_fraction", "opposing_share"] {
        let series = floats(&s[key]);
        assert_eq!(series.len(), 30, "{key}");
        assert!(series.iter().all(|x| (0.0..=1.0).contains(x)), "{key}: {series:?}");
        for (k, x) in series.iter().enumerate() {
            assert_eq!(*x, rec["history"][k]["samples"][key].as_f64().unwrap(), "{key} at step {k}");
        }
    }
    // xor-conflict's flipped labels: at the start most samples' tasks conflict.
    assert!(floats(&s["conflicting_fraction"])[0] > 0.5, "{}", s["conflicting_fraction"]);
    for preset in ["pareto-synthetic", "task-experts"] {
        let v = json(&concord(&["train", "--preset", preset, "--steps", "3", "--json"]));
        assert!(v["sample_conflict"].is_null(), "{preset}: {}", v["sample_conflict"]);
    }
    // A plain text run skips it (it costs several times the step); a config that asks gets it.
    let text = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let plain = text(concord(&["train", "--preset", "xor-conflict", "--steps", "5"]));
    assert!(!plain.contains("sample coherence"), "{plain}");
    let mut config: serde_json::Value =
        serde_json::from_slice(&concord(&["config", "--preset", "xor-conflict"]).stdout).unwrap();
    assert!(config.get("sample_metrics").is_none(), "the printed config leaves it out");
    config["sample_metrics"] = true.into();
    let asked = text(concord_with_stdin(&["train", "--config", "-", "--steps", "5"], &config.to_string()));
    assert!(asked.contains("last batch: sample coherence α"), "{asked}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_preset_input_exits_2_with_a_message() {
    let dir = temp_dir("bad");
    let txt = dir.join("run.txt");
    let cases: Vec<Vec<&str>> = vec![
        vec!["train", "--preset", "nope", "--method", "mean"],
        vec!["train", "--preset", "xor-conflict", "--method", "adagrad"],
        vec!["train", "--preset", "xor-conflict", "--method", "mean", "--param", "c=1"],
        vec!["train", "--preset", "xor-conflict", "--method", "cagrad", "--param", "c=-1"],
        vec!["train", "--preset", "xor-conflict", "--method", "cagrad", "--param", "c"],
        vec!["train", "--preset", "xor-conflict", "--method", "mean", "--weighting", "nope"],
        vec![
            "train",
            "--preset",
            "xor-conflict",
            "--method",
            "mean",
            "--weighting",
            "stch",
            "--weighting-param",
            "mu=-1",
        ],
        vec!["train", "--preset", "xor-conflict", "--method", "mean", "--weighting", "ew", "--weighting-param", "x=1"],
        vec!["train", "--preset", "xor-conflict", "--method", "mean", "--weighting-param", "mu=1"],
        vec!["train", "--preset", "xor-conflict", "--method", "mean", "--steps", "0"],
        vec!["train", "--preset", "xor-conflict", "--method", "mean", "--lr", "-1"],
        vec!["train", "--preset", "xor-conflict", "--method", "mean", "--lr", "nan"],
        vec!["train", "--preset", "xor-conflict", "--method", "mean", "--out", txt.to_str().unwrap()],
        vec!["train", "--preset", "xor-conflict", "--method", "mean", "--start=0,0"],
        vec!["train", "--preset", "xor-conflict", "--problem", "cagrad-toy", "--method", "mean"],
        vec!["train", "--method", "mean"],
    ];
    for args in cases {
        let out = concord(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?} should exit 2");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{args:?}: stderr should say what is wrong, got {err:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed a result");
    }
    assert!(!txt.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gpu_backend_matches_the_cpu_backend_on_a_preset() {
    // Same JSON document from both backends; the GPU trainer runs in f32 (lavapipe in CI, a
    // missing adapter fails): final losses within 1e-4 relative (measured 1.0e-6, see
    // concord-gpu's train_parity for the per-step figures).
    for (preset, method) in [("xor-conflict", "mean"), ("gradnorm-scales", "pcgrad")] {
        let args = |backend| {
            vec!["train", "--preset", preset, "--method", method, "--steps", "150", "--backend", backend, "--json"]
        };
        let cpu = json(&concord(&args("cpu")));
        let gpu = json(&concord(&args("gpu")));
        let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&cpu), keys(&gpu), "same document shape");
        assert_eq!(gpu["steps"], 150);
        assert!(gpu["error"].is_null(), "{}", gpu["error"]);
        for key in ["final_losses", "test_losses"] {
            for (c, g) in floats(&cpu[key]).iter().zip(floats(&gpu[key])) {
                assert!((c - g).abs() <= 1e-4 * c.abs(), "{preset} {key}: cpu {c} vs gpu {g}");
            }
        }
        assert_eq!(keys(&cpu["final_metrics"]), keys(&gpu["final_metrics"]));
    }
}

#[test]
fn gpu_backend_refuses_what_it_cannot_run_with_exit_2() {
    // The fused toy kernel never leaves the GPU between steps: no hybrid (MoCo's update from the CPU).
    for extra in [
        &["--problem", "cagrad-toy", "--method", "moco"][..],
        &["--preset", "xor-conflict", "--method", "mean+harmonize"],
    ] {
        let out = concord(&[&["train", "--backend", "gpu", "--steps", "5"][..], extra].concat());
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("use the CPU backend"), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn gpu_backend_trains_the_host_weighted_methods_as_the_cpu() {
    // The GPU trainer's hybrid (G or J read back, w or d from the core aggregator, the rest on the
    // GPU): the same final losses as the CPU within 1e-4 relative, as the presets above.
    let methods = ["nash-mtl", "fairgrad:alpha=1", "pcd", "cr-mogm", "mgda:gn=loss", "cagrad:rescale=2"];
    for method in methods.into_iter().chain(["excess-mtl", "moco", "db-mtl"]) {
        let run = |backend: &str| {
            let args = [
                "train",
                "--preset",
                "xor-conflict",
                "--method",
                method,
                "--steps",
                "60",
                "--backend",
                backend,
                "--json",
            ];
            json(&concord(&args))
        };
        let (cpu, gpu) = (run("cpu"), run("gpu"));
        assert!(gpu["error"].is_null(), "{method}: {}", gpu["error"]);
        assert_eq!(gpu["steps"], 60, "{method}");
        for (c, g) in floats(&cpu["final_losses"]).iter().zip(floats(&gpu["final_losses"])) {
            assert!((c - g).abs() <= 1e-4 * c.abs(), "{method}: cpu {c} vs gpu {g}");
        }
    }
    // The summary names where the weights come from.
    for method in ["nash-mtl", "moco"] {
        let out =
            concord(&["train", "--preset", "xor-conflict", "--method", method, "--steps", "5", "--backend", "gpu"]);
        assert!(out.status.success(), "{method}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("(weights on the CPU)"), "{method}: {text}");
    }
}

#[test]
fn gpu_backend_trains_a_loss_weighting_as_the_cpu() {
    // DWA's epoch means on the GPU (60 steps of 5 batches per epoch: its weights move from
    // epoch 2 on); f32 against f64 within 1e-4 relative, as the presets above.
    let run = |backend: &str| {
        let args = [
            "train",
            "--preset",
            "xor-conflict",
            "--method",
            "upgrad+dwa",
            "--steps",
            "60",
            "--backend",
            backend,
            "--json",
        ];
        json(&concord(&args))
    };
    let (cpu, gpu) = (run("cpu"), run("gpu"));
    assert!(gpu["error"].is_null(), "{}", gpu["error"]);
    let floats =
        |v: &serde_json::Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    for (c, g) in floats(&cpu["final_losses"]).iter().zip(floats(&gpu["final_losses"])) {
        assert!((c - g).abs() <= 1e-4 * c.abs(), "cpu {c} vs gpu {g}");
    }
}

#[test]
fn a_diverging_preset_run_reports_its_error() {
    let v = json(&concord(&[
        "train",
        "--preset",
        "gradnorm-scales",
        "--method",
        "sum",
        "--lr",
        "1e300",
        "--steps",
        "50",
        "--json",
    ]));
    let e = v["error"].as_str().expect("the run diverges at lr 1e300");
    assert!(e.contains("not finite"), "{e}");
    assert!(v["steps"].as_u64().unwrap() < 50);
    // The losses at the last finite parameters may themselves overflow (JSON null then).
    assert_eq!(v["final_losses"].as_array().unwrap().len(), 2);
}

#[test]
fn a_sample_weighting_runs_and_reports_what_it_did() {
    let dir = temp_dir("sample-weighting");
    let csv = dir.join("run.csv");
    let json_path = dir.join("run.json");
    let base = ["train", "--preset", "conflict-wedge", "--method", "mean+conflict-mask:top=20", "--steps", "12"];
    let out = concord(&[&base[..], &["--out", json_path.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sample weighting conflict-mask: left out"), "{text}");
    let rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(rec["config"]["method"]["sample_weighting"]["name"], "conflict-mask");
    assert_eq!(rec["config"]["method"]["sample_weighting"]["top"], 20.0);
    let out = concord(&[&base[..], &["--out", csv.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    for (k, line) in text.lines().skip(1).enumerate() {
        let stage = &rec["history"][k]["sample_stage"];
        let want = stage["changed"].as_f64().unwrap() / stage["samples"].as_f64().unwrap();
        let got: f64 = line.split(',').nth(12).unwrap().parse().unwrap();
        assert_eq!(got, want, "step {k}");
        assert!(got <= 0.2 + 1e-12, "at most top = 20 % is left out: {got}");
    }
    // The same run from a config file (the page's schema) and the bad forms.
    let bad = concord(&["train", "--preset", "conflict-wedge", "--method", "mean+harmonize+curriculum"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("names two sample weightings"));
    let bad = concord(&["train", "--preset", "cagrad-toy", "--method", "mean+harmonize", "--steps", "3"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("needs an MLP model"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
