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
        &["bench", "train", "--preset", "xor-conflict", "--backend", "gpu", "--method", "nash-mtl"][..],
        &["bench", "train", "--preset", "pareto-synthetic", "--backend", "gpu"][..],
    ] {
        let out = concord(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error"), "{args:?}");
    }
}
