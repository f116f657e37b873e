//! Fuzzing the URL-hash parser `State::from_hash` (issue 14): a shared link is untrusted input.
//! Inputs are raw arbitrary strings, mixes of the table's keys (and `_hide` flags, the old
//! `methods`/`c`) with valid values, garbage and percent escapes, and mostly well-formed hashes.
//! Properties: no panic; at most `MAX_NOTICES` + 1 notices; the arena non-empty within its limit;
//! and the round trip: every state parsing produces writes a hash that parses back to the same
//! state with no notice.
//!
//! Cases per run: `CONCORD_FUZZ_CASES` (default 20 000). The long run (RELIABILITY.md):
//! `CONCORD_FUZZ_CASES=1000000 cargo test --release -p concord-web --bin concord-web fuzz_`.

use crate::preset::PRESET_NAMES;
use crate::state::{arena_limit, State, Ty, HIDABLE_CONTROLS, MAX_NOTICES, PROPS};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::sync::atomic::{AtomicUsize, Ordering};

fn cases() -> u32 {
    std::env::var("CONCORD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

fn number() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(vec!["0", "1", "2", "-1", "0.5", "1e-3", "-0", "50", "500", "2000", "1.5"]).prop_map(str::to_string),
        2 => any::<f64>().prop_map(|v| v.to_string()),
        1 => any::<i64>().prop_map(|v| v.to_string()),
        1 => prop::sample::select(vec!["1e309", "inf", "NaN", "", "x", "1,", "0x1", " 3 ", "4294967296", "1e9"]).prop_map(str::to_string),
    ]
    .boxed()
}

/// Names from every enum and list of the table, and method-spec pieces.
fn word() -> BoxedStrategy<String> {
    let mut names: Vec<&'static str> = PRESET_NAMES.to_vec();
    for p in PROPS {
        match p.ty {
            Ty::Enum(n) | Ty::Seq { names: n, .. } => names.extend(n),
            _ => {}
        }
    }
    names.extend(concord_core::aggregators::registry::names());
    names.extend(concord_core::weightings::NAMES);
    names.extend(["true", "false", "cagrad:c=0.3", "mean+uw", "mgda:max_iters=7", "upgrad+dwa:T=3", "c=1"]);
    prop::sample::select(names).prop_map(str::to_string).boxed()
}

/// One value: a number, a name, a list of names or numbers, garbage, percent escapes.
fn value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => number(),
        4 => word(),
        3 => prop::collection::vec(prop_oneof![3 => word(), 1 => number()], 0..6).prop_map(|v| v.join(",")),
        1 => prop::sample::select(vec!["%", "%2C", "%26", "%3D", "%e2%88%9e", "%zz", "=", "&", "#", "+", ";", ":"]).prop_map(str::to_string),
        1 => any::<String>(),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<String> {
    let mut keys: Vec<String> = PROPS.iter().map(|p| p.key.to_string()).collect();
    keys.extend(["methods", "c"].map(str::to_string));
    let hides: Vec<String> = HIDABLE_CONTROLS.iter().map(|(c, _)| format!("{c}_hide")).collect();
    prop_oneof![
        6 => prop::sample::select(keys),
        2 => prop::sample::select(hides),
        1 => "[a-zA-Z_%]{0,8}",
        1 => any::<String>(),
    ]
    .boxed()
}

/// `key=value&…` pairs, sometimes without `=`, sometimes with a leading `#`.
fn pairs() -> BoxedStrategy<String> {
    let pair = prop_oneof![8 => (key(), value()).prop_map(|(k, v)| format!("{k}={v}")), 1 => key()];
    (any::<bool>(), prop::collection::vec(pair, 0..12))
        .prop_map(|(hash, p)| format!("{}{}", if hash { "#" } else { "" }, p.join("&")))
        .boxed()
}

/// Mostly well-formed: a preset and a few keys with values of their own type.
fn hash_like() -> BoxedStrategy<String> {
    let preset = prop::sample::select(PRESET_NAMES.to_vec()).prop_map(|p| format!("preset={p}"));
    let one = prop::sample::select(PROPS.to_vec()).prop_flat_map(|p| {
        let v: BoxedStrategy<String> = match p.ty {
            Ty::Enum(n) => prop::sample::select(n.to_vec()).prop_map(str::to_string).boxed(),
            Ty::Seq { names, max, .. } => {
                prop::collection::vec(prop::sample::select(names.to_vec()), 1..=max).prop_map(|v| v.join(",")).boxed()
            }
            Ty::Shape { max_len, max_value } => prop::collection::vec(1..=max_value, 0..=max_len)
                .prop_map(|v| v.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(","))
                .boxed(),
            Ty::Specs { .. } => prop::collection::vec(word(), 1..4).prop_map(|v| v.join(",")).boxed(),
            Ty::Number { min, max } => (min..=max).prop_map(|x| x.to_string()).boxed(),
            Ty::Int { min, max } => (min..=max).prop_map(|x| x.to_string()).boxed(),
            Ty::Bool => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        };
        v.prop_map(move |v| format!("{}={v}", p.key))
    });
    let hide = (prop::sample::select(HIDABLE_CONTROLS.to_vec()), any::<bool>())
        .prop_map(|((c, _), b)| format!("{c}_hide={b}"));
    (preset, prop::collection::vec(prop_oneof![6 => one, 1 => hide], 0..8))
        .prop_map(|(p, rest)| std::iter::once(p).chain(rest).collect::<Vec<_>>().join("&"))
        .boxed()
}

static CLEAN: AtomicUsize = AtomicUsize::new(0);

fn check(hash: &str) -> Result<(), TestCaseError> {
    let (state, notices) = State::from_hash(hash);
    if notices.is_empty() {
        CLEAN.fetch_add(1, Ordering::Relaxed);
    }
    prop_assert!(notices.len() <= MAX_NOTICES + 1, "{} notices", notices.len());
    prop_assert!(!state.arena.is_empty() && state.arena.len() <= arena_limit(state.preset.is_toy()));
    let written = state.to_hash();
    let (back, again) = State::from_hash(&written);
    prop_assert!(again.is_empty(), "{:?} → {:?}: {:?}", hash, written, again);
    prop_assert!(back == state, "{:?} → {:?} → {:?}", hash, written, back.to_hash());
    Ok(())
}

#[test]
fn fuzz_from_hash_never_panics_and_round_trips() {
    let mixed = prop_oneof![3 => hash_like(), 3 => pairs(), 1 => any::<String>()];
    let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
    let start = std::time::Instant::now();
    runner.run(&mixed, |s| check(&s)).unwrap();
    let clean = CLEAN.load(Ordering::Relaxed);
    eprintln!("fuzz_from_hash: {} cases, {clean} parsed without a notice, {:.1?}", cases(), start.elapsed());
    // The generators must reach the valid space, not only the error paths.
    assert!(clean * 20 >= cases() as usize, "only {clean} hashes parsed without a notice");
}

#[test]
fn fuzz_regressions() {
    for hash in
        ["", "#", "&&&", "=", "preset", "preset=", "#preset=cagrad-toy&methods=&c=", "arena=,,,", "%", "hidden="]
    {
        check(hash).unwrap();
    }
}
