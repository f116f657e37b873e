//! `concord bench conflict-map`: the JSON it prints on the CPU and on the GPU (lavapipe), and
//! exit code 2 with a message for bad flags. No timing is asserted (benchmarks are not tests).

mod common;

use common::{concord, json};

#[test]
fn json_output_on_both_backends() {
    for backend in ["cpu", "gpu"] {
        let out = concord(&[
            "bench",
            "conflict-map",
            "--preset",
            "xor-conflict",
            "--backend",
            backend,
            "--grid",
            "12",
            "--train-steps",
            "5",
            "--mode",
            "output",
            "--json",
        ]);
        let v = json(&out);
        assert_eq!(v["preset"], "xor-conflict");
        assert_eq!(v["backend"], backend);
        assert_eq!(v["grid"], 12);
        assert_eq!(v["points"], 144);
        assert_eq!(v["tasks"], 2);
        assert_eq!(v["mode"], "output");
        assert_eq!(v["train_steps"], 5);
        assert_eq!(v["adapter"].is_string(), backend == "gpu", "{v}");
        for k in ["first_ms", "median_ms"] {
            let t = v[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {v}"));
            assert!(t.is_finite() && t > 0.0, "{k} = {t} in {v}");
        }
        assert!(v["calls"].as_u64().is_some_and(|c| c >= 1), "{v}");
    }
}

#[test]
fn text_output_names_the_map_and_the_backend() {
    let out = concord(&["bench", "conflict-map", "--preset", "circle-vs-gauss", "--grid", "5", "--train-steps", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("circle-vs-gauss conflict map 5×5 (own-prediction") && text.contains("[cpu]"), "{text}");
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for (args, needle) in [
        (vec!["--preset", "nope"], "unknown preset"),
        (vec!["--preset", "gradnorm-scales"], "2-D plane"),
        (vec!["--preset", "cagrad-toy"], "no MLP"),
        (vec!["--preset", "xor-conflict", "--grid", "0"], "--grid"),
        (vec!["--preset", "xor-conflict", "--grid", "1001"], "--grid"),
        (vec!["--preset", "xor-conflict", "--mode", "loss"], "no labels"),
        (vec!["--preset", "xor-conflict", "--mode", "grad"], "unknown point gradient"),
        (vec!["--preset", "xor-conflict", "--backend", "tpu"], "backend"),
        (vec!["--preset", "xor-conflict", "--backend", "gpu", "--grid", "300", "--train-steps", "1"], "points"),
    ] {
        let mut full = vec!["bench", "conflict-map"];
        full.extend(&args);
        let out = concord(&full);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: stderr lacks '{needle}': {err}");
        assert!(out.stdout.is_empty(), "{args:?}: printed {:?}", String::from_utf8_lossy(&out.stdout));
    }
}
