//! `concord bench gram`: the JSON it prints (shape and internal consistency, on lavapipe) and
//! exit code 2 with a message for bad flags. No timing is asserted (benchmarks are not tests).

mod common;

use common::{concord, json};

#[test]
fn json_output_has_every_field_and_consistent_figures() {
    let out =
        concord(&["bench", "gram", "--m", "5", "--n", "10001", "--backend", "gpu", "--min-time-ms", "5", "--json"]);
    let v = json(&out);
    assert_eq!(v["m"], 5);
    assert_eq!(v["n"], 10001);
    assert!(v["adapter"].as_str().is_some_and(|a| !a.is_empty()), "{v}");
    let num = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {v}"));
    for k in ["gram_seconds", "copy_seconds", "gram_gbps", "copy_gbps", "fraction"] {
        assert!(num(k).is_finite() && num(k) > 0.0, "{k} = {} in {v}", num(k));
    }
    // The definitions in concord_gpu::bench: bytes over seconds, and their ratio.
    let bytes = 5.0 * 10001.0 * 4.0;
    let rel = |a: f64, b: f64| (a - b).abs() / b;
    assert!(rel(num("gram_gbps"), bytes / num("gram_seconds") / 1e9) < 1e-9, "{v}");
    assert!(rel(num("copy_gbps"), 2.0 * bytes / num("copy_seconds") / 1e9) < 1e-9, "{v}");
    assert!(rel(num("fraction"), num("gram_gbps") / num("copy_gbps")) < 1e-9, "{v}");
}

#[test]
fn text_output_names_the_adapter_and_the_fraction() {
    let out = concord(&["bench", "gram", "--m", "2", "--n", "300", "--min-time-ms", "5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("gram 2×300 on ") && text.contains("fraction"), "{text}");
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for (args, needle) in [
        (vec!["--m", "0", "--n", "10"], "--m"),
        (vec!["--m", "33", "--n", "10"], "--m"),
        (vec!["--m", "4", "--n", "0"], "--n"),
        (vec!["--m", "4", "--n", "10", "--backend", "cpu"], "backend"),
        (vec!["--m", "4", "--n", "ten"], "--n"),
        (vec!["--m", "4"], "--n"),
        (vec!["--m", "4", "--n", "10", "--min-time-ms", "0"], "min-time-ms"),
        (vec!["--m", "32", "--n", "99999999999"], "too large"),
    ] {
        let mut full = vec!["bench", "gram"];
        full.extend(&args);
        let out = concord(&full);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: stderr lacks '{needle}': {err}");
        assert!(out.stdout.is_empty(), "{args:?}: printed {:?}", String::from_utf8_lossy(&out.stdout));
    }
}

/// `concord bench round-trip`: its JSON (on lavapipe) and exit code 2 for a bad --m.
#[test]
fn round_trip_json_and_bad_m() {
    let v = json(&concord(&["bench", "round-trip", "--m", "3", "--min-time-ms", "5", "--json"]));
    assert_eq!(v["m"], 3);
    assert!(v["adapter"].as_str().is_some_and(|a| !a.is_empty()), "{v}");
    assert!(v["median_us"].as_f64().is_some_and(|t| t.is_finite() && t > 0.0), "{v}");
    assert!(v["samples"].as_u64().is_some_and(|s| s >= 20), "{v}");
    for m in ["0", "33"] {
        let out = concord(&["bench", "round-trip", "--m", m]);
        assert_eq!(out.status.code(), Some(2), "--m {m}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--m"), "--m {m}");
    }
}
