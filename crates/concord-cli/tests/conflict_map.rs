//! `concord conflict-map`: the files and their documented columns, the values against
//! `Mlp::point_grams` recomputed here at the run's final parameters (and the run against one
//! trained here), the page's grid, and bad flags exiting 2.

mod common;

use common::concord;
use concord_core::model::{Mlp, PointGradient, PointGrams, Target};
use concord_core::train::{preset, RunRecord, Trainer};
use concord_core::MethodSpec;
use nalgebra::DMatrix;
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("concord-conflict-map-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A CSV as its header and rows of fields.
fn csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    (header, lines.map(|l| l.split(',').map(String::from).collect()).collect())
}

fn num(field: &str) -> f64 {
    field.parse().unwrap_or_else(|_| panic!("'{field}' is not a number"))
}

/// An empty field is an undefined cosine.
fn opt(field: &str) -> Option<f64> {
    (!field.is_empty()).then(|| num(field))
}

/// cos, min cos and norms of point i as the CSV writes them (m = 2: cos_0_1, min_cos, norm_0, norm_1).
fn check_point(fields: &[String], g: &PointGrams, i: usize, what: &str) {
    // The CSV holds f64's shortest round-trip text, so the same computation at the same
    // parameters reads back exactly; 1e-12 relative leaves room for round-off only.
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * b.abs().max(1e-3),
        (None, None) => true,
        _ => false,
    };
    let cos = opt(&fields[0]);
    assert!(cos.is_none_or(|c| (-1.0..=1.0).contains(&c)), "{what}: cos {cos:?}");
    assert!(close(cos, g.cos(i, 0, 1)), "{what}: cos {cos:?} vs {:?}", g.cos(i, 0, 1));
    assert!(close(opt(&fields[1]), g.min_cos(i)), "{what}: min_cos");
    assert_eq!(opt(&fields[1]), cos, "{what}: two tasks: min cos is the one cosine");
    for t in 0..2 {
        let norm = g.gram(i)[t * 2 + t].sqrt();
        assert!(close(Some(num(&fields[2 + t])), Some(norm)), "{what}: norm_{t}");
    }
}

#[test]
fn writes_the_documented_files_with_point_grams_values() {
    let dir = temp_dir("files");
    let out = concord(&[
        "conflict-map",
        "--preset",
        "xor-conflict",
        "--method",
        "upgrad",
        "--steps",
        "40",
        "--seed",
        "3",
        "--grid",
        "24",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("24×24 map (own-prediction)"), "{said}");

    // The run: the record is the run trained here from the same settings.
    let record: RunRecord = serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    let mut config = preset("xor-conflict").unwrap();
    config.method = MethodSpec::parse("upgrad").unwrap();
    config.steps = 40;
    config.seed = 3;
    assert_eq!(record.config, config);
    let mut trainer = Trainer::new(config.clone()).unwrap();
    trainer.run_to_end(|_| {});
    assert_eq!(record.params, trainer.params(), "run.json holds the run's final parameters");
    let mlp = Mlp::new(config.model.clone().unwrap()).unwrap();
    let params = &record.params;

    // map.csv: the page's grid (6 × 6 around the origin for xor-conflict's data), cell centres
    // row-major from the top-left, and the own-prediction Grams there.
    let (header, rows) = csv(&dir.join("map.csv"));
    assert_eq!(header, ["x1", "x2", "cos_0_1", "min_cos", "norm_0", "norm_1"]);
    assert_eq!(rows.len(), 24 * 24);
    let h = 12.0 / 24.0;
    let x = DMatrix::from_fn(rows.len(), 2, |r, c| {
        let want = if c == 0 { -6.0 + ((r % 24) as f64 + 0.5) * h } else { 6.0 - ((r / 24) as f64 + 0.5) * h };
        assert!((num(&rows[r][c]) - want).abs() < 1e-12, "cell {r} coordinate {c}");
        want
    });
    let g = mlp.point_grams(params, &x, PointGradient::OwnPrediction, None).unwrap();
    for (i, row) in rows.iter().enumerate() {
        check_point(&row[2..], &g, i, &format!("cell {i}"));
    }
    let defined: Vec<f64> = rows.iter().filter_map(|r| opt(&r[3])).collect();
    assert!(defined.iter().any(|c| *c < 0.0) && defined.iter().any(|c| *c > 0.0), "a map with both signs");

    // train_points.csv: every train point, its labels, the loss gradients at them.
    let (header, rows) = csv(&dir.join("train_points.csv"));
    assert_eq!(header, ["x1", "x2", "label_0", "label_1", "labels_disagree", "cos_0_1", "min_cos", "norm_0", "norm_1"]);
    let (tx, ty) = trainer.train_set().unwrap();
    assert_eq!(rows.len(), tx.nrows());
    let g = mlp.point_grams(params, tx, PointGradient::Loss, Some(ty)).unwrap();
    let label = |y: &Target, i: usize| match y {
        Target::Values(v) => v[(i, 0)],
        Target::Classes(c) => c[i] as f64,
    };
    let mut disagreeing = 0;
    for (i, row) in rows.iter().enumerate() {
        assert_eq!((num(&row[0]), num(&row[1])), (tx[(i, 0)], tx[(i, 1)]), "train point {i}");
        let (l0, l1) = (label(&ty[0], i), label(&ty[1], i));
        assert_eq!((num(&row[2]), num(&row[3])), (l0, l1), "train point {i}'s labels");
        assert_eq!(row[4], (l0 != l1).to_string(), "train point {i}");
        disagreeing += usize::from(l0 != l1);
        check_point(&row[5..], &g, i, &format!("train point {i}"));
    }
    // The knob flips task 2 on 90 % of the plane.
    assert!(disagreeing > rows.len() / 2, "{disagreeing} of {}", rows.len());

    // map.json: the grid, the mode, every cell's min cos (as map.csv).
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("map.json")).unwrap()).unwrap();
    assert_eq!(doc["side"], 24);
    assert_eq!(doc["extent"], 6.0);
    assert_eq!(doc["mode"], "own-prediction");
    assert_eq!(doc["method"], "upgrad");
    assert_eq!(doc["steps"], 40);
    assert_eq!(doc["pairs"], serde_json::json!([[0, 1]]));
    let (_, map_rows) = csv(&dir.join("map.csv"));
    let min_cos = doc["min_cos"].as_array().unwrap();
    assert_eq!(min_cos.len(), 24 * 24);
    for (v, row) in min_cos.iter().zip(&map_rows) {
        assert_eq!(v.as_f64(), opt(&row[3]));
    }

    // map.png: a PNG of the documented size.
    let png = std::fs::read(dir.join("map.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) =
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!((w, h), (940, 800));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn output_gradients_and_the_preset_defaults() {
    // --gradient output: the raw outputs' gradients; the preset's own method and steps.
    let dir = temp_dir("output");
    let out = concord(&[
        "conflict-map",
        "--preset",
        "circle-vs-gauss",
        "--gradient",
        "output",
        "--steps",
        "15",
        "--grid",
        "9",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let record: RunRecord = serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(record.config.method.to_text(), "mean");
    let mlp = Mlp::new(record.config.model.clone().unwrap()).unwrap();
    let (_, rows) = csv(&dir.join("map.csv"));
    let x = DMatrix::from_fn(rows.len(), 2, |r, c| num(&rows[r][c]));
    let g = mlp.point_grams(&record.params, &x, PointGradient::Output, None).unwrap();
    for (i, row) in rows.iter().enumerate() {
        check_point(&row[2..], &g, i, &format!("cell {i}"));
    }
    // 9 × 9: the middle cell is the origin.
    assert_eq!((num(&rows[40][0]), num(&rows[40][1])), (0.0, 0.0));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("map.json")).unwrap()).unwrap();
    assert_eq!(doc["mode"], "output");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_exit_2_and_write_nothing() {
    let dir = temp_dir("bad");
    let d = dir.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--preset", "gradnorm-scales"], "50-D inputs"),
        (vec!["--preset", "sinusoid-phases"], "1-D inputs"),
        (vec!["--preset", "task-experts"], "MoE"),
        (vec!["--preset", "cagrad-toy"], "no model"),
        (vec!["--preset", "pareto-synthetic"], "no model"),
        (vec!["--preset", "nope"], "unknown preset"),
        (vec!["--preset", "xor-conflict", "--grid", "1"], "--grid"),
        (vec!["--preset", "xor-conflict", "--grid", "100000"], "--grid"),
        (vec!["--preset", "xor-conflict", "--gradient", "loss"], "needs labels"),
        (vec!["--preset", "xor-conflict", "--gradient", "slope"], "unknown point gradient"),
        (vec!["--preset", "xor-conflict", "--method", "nope"], "nope"),
        (vec!["--preset", "xor-conflict", "--steps", "0"], "steps"),
    ];
    for (args, says) in cases {
        let out = concord(&[&["conflict-map"][..], &args, &["--out", d]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: expected '{says}' in {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!dir.exists(), "{args:?} created the output folder");
    }
    // Missing --out or --preset: clap's usage error, also exit 2.
    for args in [&["conflict-map", "--preset", "xor-conflict"][..], &["conflict-map", "--out", d][..]] {
        assert_eq!(concord(args).status.code(), Some(2), "{args:?}");
    }
}
