//! Fuzzing `concord aggregate`'s matrix parser (issue 14): JSON and CSV text that mixes valid
//! numbers, separators and garbage, and raw arbitrary strings. Properties: no panic; an accepted
//! matrix is non-empty, finite and within `check_shape`'s bounds; printing it back as CSV and as
//! JSON parses to the same matrix.
//!
//! Cases per run: `CONCORD_FUZZ_CASES` (default 20 000, about a second in a debug build). The long
//! run (RELIABILITY.md): `CONCORD_FUZZ_CASES=1000000 cargo test --release -p concord-cli --bin concord fuzz_`.

use crate::aggregate::{check_shape, parse_matrix};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::sync::atomic::{AtomicUsize, Ordering};

fn cases() -> u32 {
    std::env::var("CONCORD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

fn number() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(vec!["0", "1", "-1", "2.5", "1e-3", "-0"]).prop_map(str::to_string),
        2 => any::<f64>().prop_map(|v| v.to_string()),
        1 => prop::sample::select(vec!["1e309", "inf", "NaN", "", "x", "1,", "[", "]", "null", "\"1\"", "0x1"])
            .prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
    ]
    .boxed()
}

/// CSV-like: rows of 1–5 fields, mostly of equal width.
fn csv_like() -> BoxedStrategy<String> {
    (1usize..5)
        .prop_flat_map(|n| {
            let row = prop_oneof![
                6 => prop::collection::vec(number(), n),
                1 => prop::collection::vec(number(), 0..7),
            ]
            .prop_map(|f| f.join(","));
            (prop::collection::vec(row, 0..8), prop::sample::select(vec!["\n", "\r\n", "\n\n"]))
        })
        .prop_map(|(rows, sep)| rows.join(sep))
        .boxed()
}

/// JSON-like: `[[…], …]` with numbers and garbage.
fn json_like() -> BoxedStrategy<String> {
    let row = prop::collection::vec(number(), 0..5).prop_map(|f| format!("[{}]", f.join(",")));
    prop::collection::vec(row, 0..6).prop_map(|rows| format!(" [{}]", rows.join(","))).boxed()
}

static ACCEPTED: AtomicUsize = AtomicUsize::new(0);

fn check(text: &str) -> Result<(), TestCaseError> {
    let Ok(j) = parse_matrix(text) else { return Ok(()) };
    ACCEPTED.fetch_add(1, Ordering::Relaxed);
    prop_assert!(j.nrows() >= 1 && j.ncols() >= 1 && check_shape(j.nrows(), j.ncols()).is_ok());
    prop_assert!(j.iter().all(|v| v.is_finite()));
    let rows: Vec<Vec<f64>> = j.row_iter().map(|r| r.iter().copied().collect()).collect();
    let csv: Vec<String> = rows.iter().map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")).collect();
    let back = parse_matrix(&csv.join("\n")).ok();
    prop_assert_eq!(back.as_ref(), Some(&j), "CSV round trip of {:?}", text);
    let json = serde_json::to_string(&rows).unwrap();
    let back = parse_matrix(&json).ok();
    prop_assert_eq!(back.as_ref(), Some(&j), "JSON round trip {}", json);
    Ok(())
}

#[test]
fn fuzz_aggregate_matrix_parse() {
    let mixed = prop_oneof![2 => csv_like(), 2 => json_like(), 1 => any::<String>()];
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    let start = std::time::Instant::now();
    runner.run(&mixed, |s| check(&s)).unwrap();
    let accepted = ACCEPTED.load(Ordering::Relaxed);
    eprintln!("fuzz_aggregate_matrix: {} cases, {accepted} accepted, {:.1?}", cases(), start.elapsed());
    assert!(accepted * 50 >= cases() as usize, "only {accepted} matrices accepted");
}

#[test]
fn fuzz_regressions() {
    for text in ["", "[", "[]", "[[]]", "\u{feff}", "1,\n", "1e309", "[[1e309]]", "[[1,2],[3]]", "-0", "1\r\n2"] {
        check(text).unwrap();
    }
}
