//! The documented `concord train` interface: output shape, bad input, and agreement with the
//! library (CPU) and the GPU backend (lavapipe in CI; a missing adapter fails the test).

use concord_core::{run, Method, OptimizerKind, ProblemKind, RunConfig};
mod common;

use common::{concord, json};
use std::process::Command;

fn point(v: &serde_json::Value) -> [f64; 2] {
    [v[0].as_f64().unwrap(), v[1].as_f64().unwrap()]
}

#[test]
fn json_output_has_the_documented_fields_and_matches_the_library() {
    let out = concord(&[
        "train", "--problem", "cagrad-toy", "--method", "cagrad", "--param", "c=0.5", "--start=-8.5,7.5",
        "--steps", "3000", "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["steps"], 3000);
    let reference = run(&RunConfig {
        steps: 3000,
        ..RunConfig::published(ProblemKind::CagradToy, [-8.5, 7.5], Method::CaGrad { c: 0.5 })
    });
    assert_eq!(point(&v["final"]), reference.final_point);
    assert_eq!(point(&v["losses"]).to_vec(), reference.final_losses);
}

#[test]
fn sgd_and_lr_flags_reach_the_optimizer() {
    let v = json(&concord(&[
        "train", "--problem", "cagrad-toy-scaled", "--method", "mean", "--start=0,0", "--steps", "10", "--lr", "0.01",
        "--optimizer", "sgd", "--json",
    ]));
    let reference = run(&RunConfig {
        problem: ProblemKind::CagradToyScaled,
        start: [0.0, 0.0],
        method: Method::Mean,
        optimizer: OptimizerKind::sgd(0.01),
        steps: 10,
        seed: 0,
        record_every: 1,
    });
    assert_eq!(point(&v["final"]), reference.final_point);
}

#[test]
fn out_writes_the_trajectory_csv() {
    let dir = std::env::temp_dir().join(format!("concord-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("traj.csv");
    let out = concord(&[
        "train", "--problem", "cagrad-toy", "--method", "mgda", "--start=9,9", "--steps", "500", "--out",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let csv = std::fs::read_to_string(&path).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("step,x1,x2,l1,l2"));
    let rows: Vec<_> = lines.collect();
    assert_eq!(rows.first().unwrap().split(',').next(), Some("0"));
    assert_eq!(rows.last().unwrap().split(',').next(), Some("500"));
    assert!(rows.iter().all(|r| r.split(',').count() == 5));
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let cases: &[&[&str]] = &[
        &["train", "--problem", "nope", "--method", "mean", "--start=0,0", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "adagrad", "--start=0,0", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "mean", "--start=0", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "mean", "--start=a,b", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "mean", "--start=nan,1", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "mean", "--start=0,0", "--steps", "-5"],
        &["train", "--problem", "cagrad-toy", "--method", "mean", "--start=0,0", "--steps", "0"],
        &["train", "--problem", "cagrad-toy", "--method", "mean", "--start=0,0", "--steps", "1", "--lr", "-1"],
        &["train", "--problem", "cagrad-toy", "--method", "mean", "--start=0,0", "--steps", "1", "--optimizer", "lbfgs"],
        &["train", "--problem", "cagrad-toy", "--method", "cagrad", "--param", "c=-1", "--start=0,0", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "cagrad", "--param", "c", "--start=0,0", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "mean", "--param", "c=1", "--start=0,0", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "mean", "--start=0,0", "--steps", "1", "--backend", "tpu"],
        &["train", "--bogus"],
        &["frobnicate"],
    ];
    for args in cases {
        let out = concord(args);
        assert_eq!(out.status.code(), Some(2), "{args:?} should exit 2");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{args:?}: stderr should say what is wrong, got {err:?}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

/// CPU and GPU (WGSL, f32) agree on the endpoint of a full-length published run.
#[test]
fn gpu_backend_reaches_the_cpu_endpoint() {
    for method in ["cagrad", "mgda"] {
        let args = |backend| {
            vec!["train", "--problem", "cagrad-toy", "--method", method, "--start=-8.5,7.5", "--steps", "100000", "--backend", backend, "--json"]
        };
        let cpu = json(&concord(&args("cpu")));
        let gpu = json(&concord(&args("gpu")));
        assert!(gpu["backend"].as_str().unwrap().starts_with("gpu"), "{}", gpu["backend"]);
        let (a, b) = (point(&cpu["final"]), point(&gpu["final"]));
        let gap = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        assert!(gap < 0.05, "{method}: cpu {a:?} vs gpu {b:?} (gap {gap})");
    }
}

/// A reader that stops early (`concord methods | head -1`) ends the output quietly, no panic.
#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["methods"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("concord runs");
    // Close the read end before the child has started writing (it is still starting up), so
    // its first write meets a closed pipe whatever the pipe's buffer size.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "stderr: {err}");
}
