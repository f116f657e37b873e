//! `concord merge`: the JSON's merged point rebuilt from its own parameter vectors, its losses
//! recomputed with the core's objective on the preset's data, the barrier curves' ends against
//! the points' losses, the PNG (in the figures' series colours), and bad flags → exit code 2
//! with a one-line message.

mod common;

use common::concord;
use concord_core::train::{preset, Trainer};
use serde_json::Value;
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("concord-merge-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number")).collect()
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}[{i}]: {x} vs {y}");
    }
}

/// Runs `concord merge` on xor-conflict for 20 steps and returns merge.json.
fn merge(how: &str, extra: &[&str]) -> Value {
    let dir = temp_dir(how);
    let args =
        [&["merge", "--preset", "xor-conflict", "--steps", "20", "--how", how, "--out", dir.to_str().unwrap()], extra]
            .concat();
    let out = concord(&args);
    assert!(out.status.success(), "concord merge failed: {}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(dir.join("merge.png")).expect("merge.png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    serde_json::from_str(&std::fs::read_to_string(dir.join("merge.json")).expect("merge.json")).expect("JSON")
}

/// Every head of `merged` is its parent's; every parent's other heads are θ₀'s.
fn check_heads(v: &Value) -> (Vec<f64>, Vec<Vec<f64>>, Vec<f64>, usize) {
    let p = &v["params"];
    let init = floats(&p["init"]);
    let parents: Vec<Vec<f64>> = p["parents"].as_array().unwrap().iter().map(floats).collect();
    let merged = floats(&p["merged"]);
    let heads: Vec<(usize, usize)> = p["heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h[0].as_u64().unwrap() as usize, h[1].as_u64().unwrap() as usize))
        .collect();
    assert_eq!((parents.len(), heads.len()), (2, 2));
    for (t, &(a, b)) in heads.iter().enumerate() {
        assert_eq!(merged[a..b], parents[t][a..b], "merged head {t}");
        assert_eq!(parents[1 - t][a..b], init[a..b], "parent {}'s head {t}", 1 - t);
    }
    (init, parents, merged, p["trunk_len"].as_u64().unwrap() as usize)
}

#[test]
fn task_arithmetic_json_rebuilds_and_its_losses_recompute() {
    let v = merge("task-arithmetic", &["--lambda", "0.5"]);
    assert_eq!(
        (v["how"].as_str(), v["lambda"].as_f64(), v["steps"].as_u64()),
        (Some("task-arithmetic"), Some(0.5), Some(20))
    );
    assert_eq!(v["joint"]["method"], "mean");
    let (init, parents, merged, n) = check_heads(&v);
    // The trunk, rebuilt from the JSON: θ₀ + 0.5·Σ_t (θ_t − θ₀).
    let trunk: Vec<f64> = (0..n).map(|i| init[i] + 0.5 * parents.iter().map(|p| p[i] - init[i]).sum::<f64>()).collect();
    close(&merged[..n], &trunk, 1e-14, "merged trunk");

    // Losses recomputed with the core's objective on the preset's train set.
    let mut config = preset("xor-conflict").unwrap();
    config.steps = 20;
    let trainer = Trainer::new(config).unwrap();
    let objective = trainer.objective();
    close(&floats(&v["merged"]["train"]), &objective.losses(&merged).unwrap(), 1e-12, "merged losses");
    close(&floats(&v["init"]["train"]), &objective.losses(&init).unwrap(), 1e-12, "init losses");
    let joint = floats(&v["params"]["joint"]);
    close(&floats(&v["joint"]["losses"]["train"]), &objective.losses(&joint).unwrap(), 1e-12, "joint losses");
    assert_eq!(v["merged"]["test"].as_array().map(Vec::len), Some(2));

    // Barrier curves: task t's loss from its parent (α = 0) to the merged point (α = 1).
    for (t, b) in v["barriers"].as_array().unwrap().iter().enumerate() {
        let losses = floats(&b["losses"]);
        assert_eq!(floats(&b["alphas"]).len(), 21);
        let parent = floats(&v["parents"][t]["losses"]["train"]);
        close(&[losses[0], losses[20]], &[parent[t], floats(&v["merged"]["train"])[t]], 1e-12, "barrier ends");
        let chord_gap = losses
            .iter()
            .enumerate()
            .map(|(k, l)| l - ((1.0 - k as f64 / 20.0) * losses[0] + k as f64 / 20.0 * losses[20]))
            .fold(0.0, f64::max);
        close(&[b["entezari"].as_f64().unwrap()], &[chord_gap], 1e-12, "Entezari barrier");
    }
}

/// TIES at its defaults (K = 0.2, λ = 1), checked against a direct computation on the JSON's task
/// vectors: per task keep |τ| ≥ the (d − ⌊0.2d⌋)-th smallest, elect the sign of the sum, average
/// the agreeing entries.
#[test]
fn ties_defaults_match_a_direct_computation() {
    let v = merge("ties", &[]);
    assert_eq!(v["lambda"].as_f64(), Some(1.0));
    let (init, parents, merged, n) = check_heads(&v);
    let taus: Vec<Vec<f64>> = parents.iter().map(|p| (0..n).map(|i| p[i] - init[i]).collect()).collect();
    let trimmed: Vec<Vec<f64>> = taus
        .iter()
        .map(|t| {
            let mut abs: Vec<f64> = t.iter().map(|x| x.abs()).collect();
            abs.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let cut = abs[n - (n as f64 * 0.2).floor() as usize - 1];
            t.iter().map(|&x| if x.abs() >= cut { x } else { 0.0 }).collect()
        })
        .collect();
    let signum = |x: f64| {
        if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        }
    };
    let mut gamma: Vec<f64> = (0..n).map(|i| signum(trimmed[0][i] + trimmed[1][i])).collect();
    let majority = signum(gamma.iter().sum());
    gamma.iter_mut().filter(|g| **g == 0.0).for_each(|g| *g = majority);
    for i in 0..n {
        let agree: Vec<f64> = trimmed.iter().map(|t| t[i]).filter(|&x| x != 0.0 && signum(x) == gamma[i]).collect();
        let want = init[i] + agree.iter().sum::<f64>() / agree.len().max(1) as f64;
        assert!((merged[i] - want).abs() < 1e-14, "trunk[{i}]: {} vs {want}", merged[i]);
    }
}

#[test]
fn projective_runs_with_its_default_lambda() {
    let v = merge("projective", &[]);
    assert_eq!(v["lambda"].as_f64(), Some(0.07));
    let (init, _, merged, n) = check_heads(&v);
    assert!(merged[..n] != init[..n], "the projective merge moved the trunk");
    assert!(floats(&v["merged"]["train"]).iter().all(|l| l.is_finite()));
    assert!(v["barriers"].as_array().unwrap().iter().all(|b| b["entezari"].as_f64().unwrap() >= 0.0));
}

#[test]
fn bad_flags_exit_2_with_one_line() {
    let dir = temp_dir("bad");
    let out = dir.to_str().unwrap();
    let cases: [&[&str]; 7] = [
        &["--preset", "xor-conflict", "--how", "average"],
        &["--preset", "xor-conflict", "--how", "ties", "--lambda", "nan"],
        &["--preset", "xor-conflict", "--how", "projective", "--lambda", "-1"],
        &["--preset", "xor-conflict", "--how", "ties", "--steps", "0"],
        &["--preset", "nope", "--how", "ties"],
        &["--preset", "cagrad-toy", "--how", "ties"],
        &["--preset", "task-experts", "--how", "ties"],
    ];
    for case in cases {
        let args = [&["merge", "--out", out][..], case].concat();
        let o = concord(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{case:?}: {err}");
        assert!(err.starts_with("concord: error:") && err.trim_end().lines().count() == 1, "{case:?}: {err}");
    }
}

/// The RGB pixels of a PNG (plotters writes 8-bit RGB).
fn png_pixels(path: &std::path::Path) -> Vec<[u8; 3]> {
    let decoder = png::Decoder::new(std::fs::File::open(path).expect("the PNG"));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    assert_eq!(info.color_type, png::ColorType::Rgb, "8-bit RGB");
    buf[..info.buffer_size()].chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect()
}

#[test]
fn the_figure_draws_parents_and_merge_in_the_figures_series_colours() {
    let dir = temp_dir("colours");
    let out = concord(&[
        "merge",
        "--preset",
        "xor-conflict",
        "--steps",
        "20",
        "--how",
        "ties",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "concord merge failed: {}", String::from_utf8_lossy(&out.stderr));
    let px = png_pixels(&dir.join("merge.png"));
    let count = |c: [u8; 3]| px.iter().filter(|p| **p == c).count();
    // Parent t's dot (radius 6, and its legend's) in series colour t, the merged triangle in the
    // palette's red: solid, so exactly those colours, dozens of pixels each.
    for (what, k) in [("parent 0", 0), ("parent 1", 1), ("merged", 2)] {
        let c = concord_figures::colour::category(k).array();
        assert!(count(c) >= 40, "{what}: {} pixels of {c:?}", count(c));
    }
    // None in the former ad-hoc colours (matplotlib's tab10 blue and orange).
    assert_eq!(count([31, 119, 180]) + count([255, 127, 14]), 0, "tab10 colours left");
    let _ = std::fs::remove_dir_all(&dir);
}
