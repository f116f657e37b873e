//! Fuzzing the run importer `parse_saved` (issue 14): a run file is untrusted input. Inputs are
//! run files the page writes (a default arena, a CSV with a class column and a weighting, an MoE
//! model, and a diverged run with "inf"/"nan" values), mutated: fields removed, values replaced
//! (null, "inf", "nan", huge and negative integers, strings, arrays, objects), arrays truncated,
//! elements duplicated or swapped, numbers perturbed, the text cut or spliced with garbage; and
//! raw arbitrary strings. Properties: no panic; an accepted file keeps the invariants the page
//! relies on (`tests::check_invariants`); and written back as the page exports it, it parses to
//! the same values (the same text again, NaN included).
//!
//! Cases per run: `CONCORD_FUZZ_CASES` (default 20 000). The long run (RELIABILITY.md):
//! `CONCORD_FUZZ_CASES=1000000 cargo test --release -p concord-web --bin concord-web fuzz_parse_saved`.

use super::parse_saved;
use super::tests::{check_invariants, exported, write_back, CSV};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

fn cases() -> u32 {
    std::env::var("CONCORD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

/// Small run files as the page writes them (small, so a case is quick).
fn seeds() -> &'static [Value] {
    static SEEDS: OnceLock<Vec<Value>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let files = [
            exported("preset=xor-conflict&points=50&hidden=3&arena=mean,cagrad:c=0.3", None, 11),
            exported("preset=xor-conflict&points=50&hidden=2&arena=upgrad+uw", Some(CSV), 6),
            exported("preset=xor-conflict&points=50&hidden=2&model=moe&experts=2&arena=mean", None, 6),
        ];
        let mut seeds: Vec<Value> = files.iter().map(|f| serde_json::from_str(f).unwrap()).collect();
        // A diverged run: non-finite losses and metrics, as the page exports them.
        let mut diverged = seeds[0].clone();
        let run = &mut diverged["runs"][1];
        run["record"]["final_train_losses"] = json!(["inf", "nan"]);
        run["record"]["final_test_losses"] = json!(["-inf", 1.5]);
        run["record"]["history"][10]["losses"] = json!(["inf", 2.0]);
        run["record"]["history"][10]["metrics"]["conflict_ratio"] = json!("nan");
        run["curve"][2]["train"] = json!(["inf", "nan"]);
        run["error"] = json!("step 11: a task loss is not finite ([inf, NaN])");
        seeds.push(diverged);
        for s in &seeds {
            let text = s.to_string();
            assert!(parse_saved(&text).is_ok(), "every seed is a valid file");
        }
        seeds
    })
}

/// A mutation at a node chosen by a random walk from the root.
#[derive(Clone, Debug)]
enum Op {
    Remove,
    Replace(Value),
    /// Arrays and strings: keep this many elements (modulo the length + 1).
    Truncate(usize),
    /// In an array: the element again, next to itself.
    Duplicate,
    /// In an array: exchange with the element at this index (modulo the length).
    Swap(usize),
    /// Numbers: times this factor plus this offset (non-finite results become "inf"/"nan").
    Perturb(f64, f64),
}

fn replacement() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop::sample::select(vec![
            json!(null), json!("inf"), json!("-inf"), json!("nan"), json!("NaN"), json!("Infinity"), json!(0), json!(1),
            json!(2), json!(-1), json!(0.5), json!(-0.0), json!(1e308), json!(-1e308), json!(5e-324), json!(u64::MAX),
            json!(i64::MIN), json!(1u64 << 32), json!(1u64 << 53), json!(true), json!(""), json!("x"), json!([]),
            json!({}), json!([[]]), json!([null]), json!(["inf"]), json!([1.0, 2.0]), json!([0, 1, 2, 3, 4, 5]),
            json!([[1.0, 0.5], [0.5, 1.0]]), json!({"step": 0}), json!("preset=xor-conflict"),
            json!("preset=cagrad-toy"), json!("concord-playground-run"),
        ]),
        2 => any::<f64>().prop_map(|x| serde_json::Number::from_f64(x).map_or(json!("nan"), Value::Number)),
        1 => any::<i64>().prop_map(|x| json!(x)),
        1 => any::<u64>().prop_map(|x| json!(x)),
        1 => ".{0,12}".prop_map(Value::String),
        1 => prop::collection::vec(-3.0f64..3.0, 0..5).prop_map(|v| json!(v)),
    ]
    .boxed()
}

fn op() -> BoxedStrategy<Op> {
    prop_oneof![
        3 => Just(Op::Remove),
        5 => replacement().prop_map(Op::Replace),
        3 => (0usize..40).prop_map(Op::Truncate),
        2 => Just(Op::Duplicate),
        2 => (0usize..40).prop_map(Op::Swap),
        4 => (prop::sample::select(vec![0.0, -1.0, 1.0, 0.5, 2.0, 1e300, -1e-300]), prop::sample::select(vec![0.0, 1.0, -1.0, 1e-9, 1e6]))
            .prop_map(|(a, b)| Op::Perturb(a, b)),
    ]
    .boxed()
}

/// A JSON pointer token.
fn token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The pointer of the node a random walk reaches: at each step the child `choice % len`.
fn walk(root: &Value, choices: &[u16]) -> String {
    let mut node = root;
    let mut at = String::new();
    for &c in choices {
        match node {
            Value::Object(o) if !o.is_empty() => {
                let (k, v) = o.iter().nth(c as usize % o.len()).expect("in range");
                at = format!("{at}/{}", token(k));
                node = v;
            }
            Value::Array(a) if !a.is_empty() => {
                let i = c as usize % a.len();
                at = format!("{at}/{i}");
                node = &a[i];
            }
            _ => break,
        }
    }
    at
}

fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or_else(
        || {
            json!(if x.is_nan() {
                "nan"
            } else if x > 0.0 {
                "inf"
            } else {
                "-inf"
            })
        },
        Value::Number,
    )
}

fn apply(root: &mut Value, choices: &[u16], op: &Op) {
    let at = walk(root, choices);
    if at.is_empty() {
        if let Op::Replace(v) = op {
            *root = v.clone();
        }
        return;
    }
    let (parent_at, key) = at.rsplit_once('/').expect("a child");
    let key = key.replace("~1", "/").replace("~0", "~");
    let Some(parent) = root.pointer_mut(parent_at) else { return };
    match (parent, op) {
        (Value::Object(o), Op::Remove) => drop(o.remove(&key)),
        (Value::Array(a), Op::Remove) => drop(a.remove(key.parse::<usize>().expect("an index"))),
        (Value::Array(a), Op::Duplicate) => {
            let i = key.parse::<usize>().expect("an index");
            a.insert(i, a[i].clone());
        }
        (Value::Array(a), Op::Swap(j)) => {
            let j = j % a.len();
            a.swap(key.parse::<usize>().expect("an index"), j);
        }
        (parent, op) => {
            let node = match parent {
                Value::Object(o) => o.get_mut(&key),
                Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                _ => None,
            };
            let Some(node) = node else { return };
            match (node, op) {
                (node, Op::Replace(v)) => *node = v.clone(),
                (Value::Array(a), Op::Truncate(n)) => a.truncate(n % (a.len() + 1)),
                (Value::String(s), Op::Truncate(n)) => *s = s.chars().take(n % (s.chars().count() + 1)).collect(),
                (node @ Value::Number(_), Op::Perturb(f, b)) => {
                    let x = node.as_f64().expect("a number") * f + b;
                    // An integer stays an integer (counts, steps, indices), mostly.
                    *node = match node.is_f64() {
                        false if x.is_finite() && x.abs() < 9e15 => json!(x.round() as i64),
                        _ => number(x),
                    };
                }
                _ => {}
            }
        }
    }
}

/// Text edits after the mutations: none mostly, else cut at a character or splice garbage in.
#[derive(Clone, Debug)]
enum Edit {
    None,
    Cut(usize),
    Splice(usize, String),
}

fn edit() -> BoxedStrategy<Edit> {
    prop_oneof![
        12 => Just(Edit::None),
        1 => any::<usize>().prop_map(Edit::Cut),
        1 => (any::<usize>(), prop_oneof![".{0,6}", Just("null".to_string()), Just("\"inf\"".to_string()), Just(",".to_string()), Just("]".to_string())])
            .prop_map(|(i, s)| Edit::Splice(i, s)),
    ]
    .boxed()
}

fn char_boundary(s: &str, i: usize) -> usize {
    let mut i = i % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutated() -> BoxedStrategy<String> {
    let mutation = (prop::collection::vec(any::<u16>(), 0..14), op());
    (0..seeds().len(), prop::collection::vec(mutation, 0..4), edit())
        .prop_map(|(seed, mutations, edit)| {
            let mut v = seeds()[seed].clone();
            for (choices, op) in &mutations {
                apply(&mut v, choices, op);
            }
            let mut text = v.to_string();
            match edit {
                Edit::None => {}
                Edit::Cut(i) => text.truncate(char_boundary(&text, i)),
                Edit::Splice(i, s) => text.insert_str(char_boundary(&text, i), &s),
            }
            text
        })
        .boxed()
}

static ACCEPTED: AtomicUsize = AtomicUsize::new(0);

fn check(text: &str) -> Result<(), TestCaseError> {
    let Ok(v) = parse_saved(text) else { return Ok(()) };
    ACCEPTED.fetch_add(1, Ordering::Relaxed);
    check_invariants(&v).map_err(|e| TestCaseError::fail(format!("accepted, but {e}")))?;
    let written = write_back(&v);
    let back = parse_saved(&written).map_err(|e| TestCaseError::fail(format!("written back, refused: {e}")))?;
    prop_assert!(write_back(&back) == written, "the written-back file reads back different");
    Ok(())
}

#[test]
fn fuzz_parse_saved_never_panics_keeps_its_invariants_and_round_trips() {
    let mixed = prop_oneof![16 => mutated(), 1 => any::<String>()];
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    let start = std::time::Instant::now();
    runner.run(&mixed, |s| check(&s)).unwrap();
    let accepted = ACCEPTED.load(Ordering::Relaxed);
    eprintln!("fuzz_parse_saved: {} cases, {accepted} accepted and round-tripped, {:.1?}", cases(), start.elapsed());
    // The generators must reach the valid space, not only the error paths.
    assert!(accepted * 20 >= cases() as usize, "only {accepted} files accepted");
}

/// Inputs the fuzzer (or a reading of the code) singled out, kept as regressions.
#[test]
fn fuzz_regressions() {
    let seed = seeds()[0].to_string();
    for text in ["", "{}", "null", "[]", "\"inf\"", &seed[..seed.len() / 2]] {
        check(text).unwrap();
    }
}
