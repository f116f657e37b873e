//! `concord train --precision f32|f64`: the choice reaches the run record (f32, the fast path,
//! by default) and a bad value exits 2.

mod common;

use common::concord;

fn record_precision(extra: &[&str]) -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!("concord-train-precision-{}-{}", std::process::id(), extra.join("_")));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = dir.join("run.json");
    let base = ["train", "--preset", "gradnorm-scales", "--method", "upgrad", "--steps", "3", "--out"];
    let out = concord(&[&base[..], &[run.to_str().unwrap()], extra].concat());
    assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&run).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(record["steps_done"], 3, "{extra:?}");
    record["config"]["precision"].clone()
}

#[test]
fn train_precision_reaches_the_run_record() {
    assert_eq!(record_precision(&[]), "f32");
    assert_eq!(record_precision(&["--precision", "f32"]), "f32");
    assert_eq!(record_precision(&["--precision", "f64"]), "f64");
}

#[test]
fn train_bad_precision_exits_2() {
    for bad in ["f16", "F64", "double", ""] {
        let out = concord(&["train", "--preset", "xor-conflict", "--steps", "2", "--precision", bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--precision '{bad}': {err}");
        assert!(out.stdout.is_empty(), "--precision '{bad}'");
        assert!(err.contains("unknown precision"), "--precision '{bad}': {err}");
    }
}
