//! The documented `concord train` interface: output shape, bad input, and agreement with the
//! library (CPU) and the GPU backend (lavapipe in CI; a missing adapter fails the test).

use concord_core::train::{DataSource, Preset};
use concord_core::{train, MethodSpec, ProblemKind, RunRecord, TrainConfig, TrainOptimizer};
mod common;

/// The library's run of a toy config (the CLI's reference): the same trainer, called directly.
fn reference(
    problem: ProblemKind,
    start: [f64; 2],
    method: &str,
    steps: usize,
    optimizer: Option<TrainOptimizer>,
) -> RunRecord {
    let mut c: TrainConfig = Preset::parse(problem.name()).unwrap().config();
    c.data = DataSource::Toy { problem, start };
    c.method = MethodSpec::parse(method).unwrap();
    c.steps = steps;
    c.record_every = (steps / 1000).max(1);
    if let Some(o) = optimizer {
        c.optimizer = o;
    }
    train(&c).unwrap()
}

use common::{concord, json};
use std::process::Command;

fn point(v: &serde_json::Value) -> [f64; 2] {
    [v[0].as_f64().unwrap(), v[1].as_f64().unwrap()]
}

#[test]
fn json_output_has_the_documented_fields_and_matches_the_library() {
    let out = concord(&[
        "train",
        "--problem",
        "cagrad-toy",
        "--method",
        "cagrad",
        "--param",
        "c=0.5",
        "--start=-8.5,7.5",
        "--steps",
        "3000",
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["steps"], 3000);
    let r = reference(ProblemKind::CagradToy, [-8.5, 7.5], "cagrad:c=0.5", 3000, None);
    assert_eq!(point(&v["final"]).to_vec(), r.params);
    assert_eq!(point(&v["losses"]).to_vec(), r.final_train_losses);
    assert_eq!(v["method"], serde_json::json!({"method": "cagrad", "c": 0.5}));
    assert_eq!(v["optimizer"]["optimizer"], "adam");
    assert_eq!(v["backend"], "cpu");
}

#[test]
fn sgd_and_lr_flags_reach_the_optimizer() {
    let v = json(&concord(&[
        "train",
        "--problem",
        "cagrad-toy-scaled",
        "--method",
        "mean",
        "--start=0,0",
        "--steps",
        "10",
        "--lr",
        "0.01",
        "--optimizer",
        "sgd",
        "--json",
    ]));
    let r = reference(ProblemKind::CagradToyScaled, [0.0, 0.0], "mean", 10, Some(TrainOptimizer::sgd(0.01, 0.0)));
    assert_eq!(point(&v["final"]).to_vec(), r.params);
}

#[test]
fn out_writes_the_trajectory_csv() {
    let dir = std::env::temp_dir().join(format!("concord-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("traj.csv");
    let out = concord(&[
        "train",
        "--problem",
        "cagrad-toy",
        "--method",
        "mgda",
        "--start=9,9",
        "--steps",
        "500",
        "--out",
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
        &[
            "train",
            "--problem",
            "cagrad-toy",
            "--method",
            "mean",
            "--start=0,0",
            "--steps",
            "1",
            "--optimizer",
            "lbfgs",
        ],
        &["train", "--problem", "cagrad-toy", "--method", "cagrad", "--param", "c=-1", "--start=0,0", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "cagrad", "--param", "c", "--start=0,0", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "mean", "--param", "c=1", "--start=0,0", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "mean", "--start=0,0", "--steps", "1", "--backend", "tpu"],
        &["train", "--problem", "cagrad-toy", "--method", "mean+nope", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "krum", "--param", "n_byzantine=0", "--steps", "1"],
        &["train", "--problem", "cagrad-toy", "--method", "mean", "--weighting-param", "T=2", "--steps", "1"],
        // Nash-MTL has no GPU kernel: an error naming the methods the GPU has, never a CPU run.
        &["train", "--problem", "cagrad-toy", "--method", "nash-mtl", "--steps", "1", "--backend", "gpu"],
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
            vec![
                "train",
                "--problem",
                "cagrad-toy",
                "--method",
                method,
                "--start=-8.5,7.5",
                "--steps",
                "100000",
                "--backend",
                backend,
                "--json",
            ]
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

/// Every registry method and loss weighting runs on the toy from the CLI (required parameters
/// given), on the CPU, and gives the library's endpoint; `--method` defaults to the preset's own
/// (CAGrad with c = 0.5 on the toys).
#[test]
fn every_method_and_weighting_runs_on_the_toy() {
    for info in &concord_core::aggregators::registry::AGGREGATORS {
        let method = match info.name {
            "constant" => "constant:weights=0.5;1",
            "fairgrad" => "fairgrad:alpha=1",
            "krum" | "trimmed-mean" => continue, // need m ≥ 3 rows; the toy has 2 (bad_input covers it)
            other => other,
        };
        let v = json(&concord(&[
            "train",
            "--problem",
            "cagrad-toy",
            "--method",
            method,
            "--start=-8.5,7.5",
            "--steps",
            "200",
            "--json",
        ]));
        let r = reference(ProblemKind::CagradToy, [-8.5, 7.5], method, 200, None);
        assert_eq!(point(&v["final"]).to_vec(), r.params, "{method}");
    }
    for w in concord_core::weightings::NAMES {
        let out = concord(&[
            "train",
            "--problem",
            "cagrad-toy-scaled",
            "--method",
            "upgrad",
            "--weighting",
            w,
            "--steps",
            "50",
            "--json",
        ]);
        assert!(out.status.success(), "{w}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(json(&out)["weighting"]["name"], *w);
    }
    let default = json(&concord(&["train", "--preset", "cagrad-toy", "--steps", "300", "--json"]));
    assert_eq!(default["method"], serde_json::json!({"method": "cagrad", "c": 0.5}));
    let r = reference(ProblemKind::CagradToy, [-8.5, 7.5], "cagrad:c=0.5", 300, None);
    assert_eq!(point(&default["final"]).to_vec(), r.params);
    // --param without --method changes the preset's own method.
    let c3 = json(&concord(&["train", "--problem", "cagrad-toy", "--param", "c=0.3", "--steps", "10", "--json"]));
    assert_eq!(c3["method"], serde_json::json!({"method": "cagrad", "c": 0.3}));
}

/// Every method the GPU toy has (the stateful MoDo, SDMGrad, GradVac and the per-coordinate
/// TrimmedMean, GradDrop included) runs on the toy with `--backend gpu` and lands near the CPU's
/// point; a method it lacks is exit 2 with the list of the methods the GPU has.
#[test]
fn gpu_toy_runs_every_gpu_method_and_refuses_the_others() {
    let methods = concord_gpu::toy_gpu_methods();
    for new in ["modo", "sdmgrad", "gradvac", "trimmed-mean", "graddrop"] {
        assert!(methods.contains(&new), "{new} runs in the GPU toy");
    }
    for method in methods {
        let method = match method {
            "constant" => "constant:weights=0.5;1",
            // Two tasks allow only trim 0 (on the CPU too).
            "trimmed-mean" => "trimmed-mean:trim_number=0",
            other => other,
        };
        let args = |backend| {
            vec![
                "train",
                "--problem",
                "cagrad-toy",
                "--method",
                method,
                "--start=-8.5,7.5",
                "--steps",
                "300",
                "--backend",
                backend,
                "--json",
            ]
        };
        let cpu = json(&concord(&args("cpu")));
        let gpu = json(&concord(&args("gpu")));
        let (a, b) = (point(&cpu["final"]), point(&gpu["final"]));
        let gap = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        // f32 vs f64 over 300 Adam steps of lr 1e-3 (each moves x by ≤ 1e-3): well below 1e-2.
        assert!(gap < 1e-2, "{method}: cpu {a:?} vs gpu {b:?} (gap {gap})");
    }
    let out =
        concord(&["train", "--problem", "cagrad-toy", "--method", "nash-mtl", "--steps", "5", "--backend", "gpu"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nash-mtl") && err.contains("upgrad") && err.contains("mean"), "{err}");
}

/// A GPU command run from a plain shell (no XDG_RUNTIME_DIR, as under cron, ssh or a container)
/// prints no spurious `error: XDG_RUNTIME_DIR is invalid or not set` from the Vulkan loader /
/// Mesa: a user reads that as a failure. The private directory the CLI uses instead is gone
/// after the run.
#[test]
fn gpu_commands_run_clean_without_xdg_runtime_dir() {
    let train = ["train", "--problem", "cagrad-toy", "--method", "mean", "--steps", "20", "--backend", "gpu", "--json"];
    let bench = ["bench", "gram", "--m", "4", "--n", "256", "--min-time-ms", "10", "--json"];
    for args in [&train[..], &bench[..]] {
        let child = Command::new(env!("CARGO_BIN_EXE_concord"))
            .args(args)
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("concord runs");
        let pid = child.id();
        let out = child.wait_with_output().expect("concord finishes");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{args:?} printed: {stderr}");
        assert!(stderr.trim().is_empty(), "{args:?} printed on stderr: {stderr}");
        assert!(!std::env::temp_dir().join(format!("concord-runtime-{pid}")).exists(), "left its runtime dir");
    }
}

/// `concord train --problem cagrad-toy --method sum --optimizer sgd --start=-8.5,-5 --lr LR
/// --steps STEPS --backend B --json`.
fn sgd_sum_run(lr: &str, steps: usize, backend: &str) -> serde_json::Value {
    let steps = steps.to_string();
    json(&concord(&[
        "train",
        "--problem",
        "cagrad-toy",
        "--method",
        "sum",
        "--start=-8.5,-5",
        "--optimizer",
        "sgd",
        "--lr",
        lr,
        "--steps",
        &steps,
        "--backend",
        backend,
        "--json",
    ]))
}

fn rel_dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    d / (b[0].powi(2) + b[1].powi(2)).sqrt()
}

/// lr 1e10 throws x far out on the log side, x ≈ (−1.3e20, 1.3e18), where the run rests: the
/// point is finite in f32 too, so the GPU must not report a divergence (it used to: the closed
/// quadratic gate's term overflowed f32 and 0 · inf = NaN stopped the run at step 2).
#[test]
fn a_huge_but_finite_toy_run_is_no_divergence_on_the_gpu() {
    let cpu = sgd_sum_run("1e10", 50, "cpu");
    let gpu = sgd_sum_run("1e10", 50, "gpu");
    for v in [&cpu, &gpu] {
        assert!(v["error"].is_null(), "{v}");
        assert_eq!(v["steps"], 50, "{v}");
    }
    let d = rel_dist(point(&gpu["final"]), point(&cpu["final"]));
    // f32 rounding of a few steps: measured ~1e-7.
    assert!(d <= 1e-5, "GPU {} vs CPU {}: relative distance {d:e}", gpu["final"], cpu["final"]);
}

/// The stop contract of a diverging toy run, the same on both backends: `error` is
/// "step N: <reason>; the run stopped, parameters kept at the last finite state" with the
/// CPU trainer's reasons, `steps` is N (< the steps asked for) and `final` is the last finite
/// point, the one N steps reach.
///
/// f32 and f64 necessarily diverge at different steps: a run diverges when x or a loss leaves
/// the float range, 3.4e38 in f32 and 1.8e308 in f64. At lr 1e30 the second step would land
/// at x ≈ (−1.3e60, 1.3e58): beyond f32 (the GPU stops after 1 step), a finite resting point in
/// f64 (the CPU runs all 200 steps, as the library does). Any lr that blows up f64 on this toy
/// (≳ 1e153) is itself beyond f32. So each backend is checked on a run that diverges there,
/// against the CPU trainer's message and its point after N steps.
#[test]
fn a_diverging_toy_run_reports_the_same_stop_on_both_backends() {
    let contract = |v: &serde_json::Value, asked: usize| -> usize {
        let error = v["error"].as_str().unwrap_or_else(|| panic!("no error reported: {v}"));
        let n = v["steps"].as_u64().expect("steps") as usize;
        assert!(n < asked, "{v}");
        assert!(error.starts_with(&format!("step {n}: ")), "{error}");
        assert!(error.ends_with("; the run stopped, parameters kept at the last finite state"), "{error}");
        assert!(point(&v["final"]).iter().all(|x| x.is_finite()), "{v}");
        n
    };
    // GPU, lr 1e30: at the point one step reaches the losses overflow f32 (the CPU trainer's
    // first check: a loss at x), and the second step would too.
    let gpu = sgd_sum_run("1e30", 200, "gpu");
    assert_eq!(contract(&gpu, 200), 1);
    assert_eq!(
        gpu["error"],
        "step 1: a task loss is not finite ([inf, inf]); the run stopped, parameters kept at the last finite state"
    );
    let one_step = sgd_sum_run("1e30", 1, "cpu");
    assert!(one_step["error"].is_null(), "{one_step}");
    let d = rel_dist(point(&gpu["final"]), point(&one_step["final"]));
    assert!(d <= 1e-6, "GPU stop point {} vs the CPU's after 1 step {}: {d:e}", gpu["final"], one_step["final"]);
    // The CPU on the same run: f64 holds x ≈ 1.3e60, so no divergence (see above).
    let cpu = sgd_sum_run("1e30", 200, "cpu");
    assert!(cpu["error"].is_null() && cpu["steps"] == 200, "{cpu}");
    // CPU, lr 1e300: after one step x ≈ 3.4e300 and its loss overflows f64.
    let cpu = sgd_sum_run("1e300", 200, "cpu");
    assert_eq!(contract(&cpu, 200), 1);
    assert_eq!(
        cpu["error"],
        "step 1: a task loss is not finite ([inf, inf]); the run stopped, parameters kept at the last finite state"
    );
    let reference = reference(ProblemKind::CagradToy, [-8.5, -5.0], "sum", 1, Some(TrainOptimizer::sgd(1e300, 0.0)));
    assert_eq!(point(&cpu["final"]), [reference.params[0], reference.params[1]]);
}
