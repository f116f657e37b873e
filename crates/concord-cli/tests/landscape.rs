//! `concord landscape` and `concord bench landscape`: files and their headers, the JSON summary
//! against the CSV it describes, and bad flags → exit code 2 with a message.

mod common;

use common::{concord, json};
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("concord-landscape-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number")).collect()
}

/// Quick settings: few steps, a small grid, few curvature iterations.
const QUICK: [&str; 8] = ["--steps", "20", "--grid", "11", "--hessian-iters", "5", "--sharpness-every", "10"];

#[test]
fn writes_every_file_and_the_summary_matches_them() {
    let dir = temp_dir("files");
    let args = [
        &["landscape", "--preset", "xor-conflict", "--method", "upgrad", "--json", "--out", dir.to_str().unwrap()][..],
        &QUICK,
    ]
    .concat();
    let v = json(&concord(&args));
    assert_eq!(v["directions"], "random");
    assert_eq!(v["grid"], 11);
    assert_eq!(floats(&v["range"]), vec![-1.0, 1.0]);
    assert_eq!(v["compare"], "upgrad seed 1");

    // surface.csv: header, 11 × 11 rows, and the centre row equals loss_at_centre.
    let surface = std::fs::read_to_string(dir.join("surface.csv")).unwrap();
    let mut lines = surface.lines();
    assert_eq!(lines.next(), Some("alpha,beta,loss_0,loss_1,loss_total"));
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|x| x.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 121);
    let centre = &rows[60];
    assert_eq!((centre[0], centre[1]), (0.0, 0.0));
    let at_centre = floats(&v["loss_at_centre"]);
    for (csv, js) in centre[2..].iter().zip(&at_centre) {
        assert!((csv - js).abs() <= 1e-12 * js.abs(), "{csv} vs {js}");
    }
    // Total = sum of tasks in every row.
    assert!(rows.iter().all(|r| (r[4] - r[2] - r[3]).abs() <= 1e-12 * r[4].abs()));

    // Sharpness: steps 0, 10, 20; λ_max per task + total; the summary is the last row.
    let sharp = std::fs::read_to_string(dir.join("sharpness.csv")).unwrap();
    let sl: Vec<&str> = sharp.lines().collect();
    assert_eq!(sl[0], "step,lambda_max_0,lambda_max_1,lambda_max_total,trace_0,trace_1,trace_total");
    assert_eq!(sl.iter().skip(1).map(|l| l.split(',').next().unwrap()).collect::<Vec<_>>(), vec!["0", "10", "20"]);
    let last: Vec<f64> = sl[3].split(',').skip(1).take(3).map(|x| x.parse().unwrap()).collect();
    assert_eq!(last, floats(&v["lambda_max"]));

    // Interpolation: 41 α over [−0.5, 1.5]; barriers file with both definitions, matching JSON.
    let interp = std::fs::read_to_string(dir.join("interpolation.csv")).unwrap();
    assert_eq!(interp.lines().count(), 42);
    let barriers = std::fs::read_to_string(dir.join("interpolation_barriers.csv")).unwrap();
    let bl: Vec<&str> = barriers.lines().collect();
    assert_eq!(bl[0], "definition,barrier_0,barrier_1,barrier_total");
    let frankle: Vec<f64> = bl[1].split(',').skip(1).map(|x| x.parse().unwrap()).collect();
    assert!(bl[1].starts_with("frankle2020,") && bl[2].starts_with("entezari2022,"));
    assert_eq!(frankle, floats(&v["barrier_frankle"]));

    // Trajectories of both runs; this run ends at the centre of the slice.
    let traj = std::fs::read_to_string(dir.join("trajectory.csv")).unwrap();
    assert!(traj.starts_with("run,step,alpha,beta,residual\n"));
    assert!(traj.contains("\nupgrad seed 1,"));
    let end = traj.lines().rfind(|l| l.starts_with("upgrad seed 0,")).unwrap();
    let cols: Vec<f64> = end.split(',').skip(1).map(|x| x.parse().unwrap()).collect();
    assert_eq!(cols[0], 20.0);
    assert!(cols[1].abs() < 1e-12 && cols[2].abs() < 1e-12);

    for png in ["landscape.png", "interpolation.png", "sharpness.png"] {
        let bytes = std::fs::read(dir.join(png)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png} is not a PNG");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn direction_kinds_and_the_pareto_view() {
    let run = |dirs: &str| {
        json(&concord(
            &[
                &[
                    "landscape",
                    "--preset",
                    "circle-vs-gauss",
                    "--method",
                    "mgda",
                    "--directions",
                    dirs,
                    "--json",
                    "--hv-ref",
                    "5,5",
                ][..],
                &QUICK,
            ]
            .concat(),
        ))
    };
    let pca = run("pca");
    let ev = floats(&pca["explained_variance"]);
    assert!(ev[0] >= ev[1] && ev[1] > 0.0 && ev[0] + ev[1] <= 1.0 + 1e-12, "{ev:?}");
    // The pca range is fitted to the trajectory, not the default [−1, 1].
    assert_ne!(floats(&pca["range"]), vec![-1.0, 1.0]);
    let grads = run("gradients");
    let c = grads["direction_cosine"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&c));
    assert!(grads["explained_variance"].is_null());
    let p = &grads["pareto"];
    assert_eq!(floats(&p["reference"]), vec![5.0, 5.0]);
    // Every loss of these runs is < 5, so HV > 0; the front points are not dominated.
    assert!(p["hypervolume"].as_f64().unwrap() > 0.0);
    assert!(!p["front"].as_array().unwrap().is_empty());
    assert_eq!(run("start-end")["directions"], "start-end");
    // --sharpness-every 0: measured at the start and the end only.
    let dir = temp_dir("every0");
    let out = concord(&[
        "landscape",
        "--preset",
        "circle-vs-gauss",
        "--method",
        "mean",
        "--steps",
        "20",
        "--grid",
        "11",
        "--hessian-iters",
        "5",
        "--sharpness-every",
        "0",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sharp = std::fs::read_to_string(dir.join("sharpness.csv")).unwrap();
    let steps: Vec<&str> = sharp.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(steps, vec!["0", "20"]);
    let _ = std::fs::remove_dir_all(&dir);
    // The analytic preset goes through the generic slice.
    let pareto = json(&concord(
        &[&["landscape", "--preset", "pareto-synthetic", "--method", "mgda", "--json"][..], &QUICK].concat(),
    ));
    assert_eq!(pareto["params"], 20);
}

#[test]
fn bad_flags_exit_with_code_2_and_a_message() {
    let base = ["landscape", "--preset", "xor-conflict", "--method", "mean"];
    let cases: [(&[&str], &str); 10] = [
        (&["--directions", "sideways"], "unknown directions"),
        (&["--grid", "1"], "--grid"),
        (&["--grid", "ten"], "invalid value"),
        (&["--range", "-1"], "--range"),
        (&["--range", "nan"], "--range"),
        (&["--steps", "0"], "--steps"),
        (&["--hessian-iters", "0"], "--hessian-iters"),
        (&["--hv-ref", "1,x"], "--hv-ref"),
        (&["--param", "oops"], "--param"),
        (&["--frobnicate"], "unexpected argument"),
    ];
    for (extra, needle) in cases {
        let out = concord(&[&base[..], extra].concat());
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    let out = concord(&["landscape", "--preset", "nope", "--method", "mean"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown preset"));
    let out = concord(&["landscape", "--preset", "xor-conflict", "--method", "nope", "--steps", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let out = concord(&["landscape", "--method", "mean"]);
    assert_eq!(out.status.code(), Some(2), "--preset is required");
}

#[test]
fn bench_landscape_reports_and_dumps_its_inputs() {
    let dir = temp_dir("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("dump.json");
    let v = json(&concord(&[
        "bench",
        "landscape",
        "--grid",
        "5",
        "--points",
        "30",
        "--hidden",
        "8,6",
        "--repeats",
        "1",
        "--json",
        "--dump",
        dump.to_str().unwrap(),
    ]));
    // 50·8+8 + 8·6+6 + 2·(6·10+10) = 602 parameters.
    assert_eq!(v["params"], 602);
    assert!(v["seconds_min"].as_f64().unwrap() > 0.0);
    let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    assert_eq!(d["theta"].as_array().unwrap().len(), 602);
    assert_eq!(d["x"].as_array().unwrap().len(), 30);
    assert_eq!(d["surface_total"].as_array().unwrap().len(), 25);
    let f32 = json(&concord(&[
        "bench",
        "landscape",
        "--grid",
        "3",
        "--points",
        "10",
        "--hidden",
        "4",
        "--precision",
        "f32",
        "--repeats",
        "1",
        "--json",
    ]));
    assert_eq!(f32["precision"], "f32");
    for bad in
        [&["--repeats", "0"][..], &["--hidden", "0"], &["--grid", "1"], &["--points", "0"], &["--precision", "f16"]]
    {
        let out = concord(&[&["bench", "landscape"][..], bad].concat());
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
