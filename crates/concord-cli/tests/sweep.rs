//! `concord sweep`: one command runs every cell once; a killed sweep resumes to the same
//! results; shards merge to the unsharded results; the threads do not change a result; bad
//! input exits 2 and writes nothing.

mod common;

use common::concord;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const METHODS: [&str; 4] = ["mean", "upgrad", "mgda", "cagrad"];
const LRS: [&str; 3] = ["1e-3", "3e-3", "1e-2"];

/// 4 methods × 10 seeds × 3 learning rates on xor-conflict, 40 steps: 120 cells (about 4 ms a
/// cell here in the test profile: a single-threaded run takes long enough to be killed part-way).
fn sweep_args(out: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "sweep",
        "--preset",
        "xor-conflict",
        "--axis",
        "method=mean,upgrad,mgda,cagrad",
        "--axis",
        "seed=0..9",
        "--axis",
        "lr=1e-3,3e-3,1e-2",
        "--steps",
        "40",
        "--out",
    ]
    .map(String::from)
    .to_vec();
    a.push(out.display().to_string());
    a
}

fn run(args: &[String]) -> Output {
    concord(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "concord failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("concord-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "{} ends with a whole line", path.display());
    text.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect()
}

/// The results and comparison tables of `--summary` (the cost table, with its timings, cut off).
fn tables(path: &Path) -> String {
    let out = concord(&["sweep", "--summary", path.to_str().unwrap()]);
    ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    let at = text.find("\nCost:").expect("a cost table");
    assert!(text.contains("Paired comparisons"), "{text}");
    text[..at].to_string()
}

/// A line without what depends on the machine (its timing and thread count).
fn results_only(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("wall_s");
    o.remove("threads");
    v
}

fn by_cell(lines: Vec<Value>) -> BTreeMap<u64, Value> {
    let mut m = BTreeMap::new();
    for l in lines {
        let cell = l["cell"].as_u64().unwrap();
        assert!(m.insert(cell, results_only(l)).is_none(), "cell {cell} twice");
    }
    m
}

/// The uninterrupted, unsharded run every other test compares to (run once).
struct Reference {
    lines: Vec<Value>,
    tables: String,
    stdout: String,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = temp_dir("reference");
        let file = dir.join("all.jsonl");
        let stderr = ok(&run(&sweep_args(&file)));
        assert!(stderr.contains("120 cells; 0 already in") && stderr.contains("running 120"), "{stderr}");
        let figs = dir.join("figs");
        let out = concord(&["sweep", "--summary", file.to_str().unwrap(), "--plot", figs.to_str().unwrap()]);
        ok(&out);
        for png in ["final-loss.png", "lr-sensitivity.png", "loss-space.png"] {
            let bytes = std::fs::read(figs.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
            assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{png}: {} bytes", bytes.len());
        }
        Reference { lines: lines(&file), tables: tables(&file), stdout: String::from_utf8(out.stdout).unwrap() }
    })
}

#[test]
fn one_command_runs_every_cell_once() {
    let r = reference();
    assert_eq!(r.lines.len(), 120);
    let sweep = r.lines[0]["sweep"].as_str().unwrap();
    let mut combos = HashSet::new();
    let mut keys = HashSet::new();
    let mut cells = HashSet::new();
    for l in &r.lines {
        assert_eq!((l["sweep"].as_str(), l["cells"].as_u64()), (Some(sweep), Some(120)));
        let key = l["key"].as_str().unwrap();
        assert!(key.len() == 64 && key.chars().all(|c| c.is_ascii_hexdigit()), "{key}");
        assert!(keys.insert(key.to_string()));
        let a = &l["axes"];
        let (m, s, lr) = (a["method"].as_str().unwrap(), a["seed"].as_str().unwrap(), a["lr"].as_str().unwrap());
        assert!(combos.insert((m.to_string(), s.to_string(), lr.to_string())));
        // Cell order: the product in the axes' order, the first axis slowest.
        let (mi, si, li) = (
            METHODS.iter().position(|x| *x == m).unwrap(),
            s.parse::<usize>().unwrap(),
            LRS.iter().position(|x| *x == lr).unwrap(),
        );
        let cell = l["cell"].as_u64().unwrap() as usize;
        assert_eq!(cell, mi * 30 + si * 3 + li, "{a}");
        assert!(cells.insert(cell));
        assert_eq!(l["method"], m);
        assert_eq!((l["steps"].as_u64(), l["steps_done"].as_u64()), (Some(40), Some(40)));
        assert_eq!(l["final_train_losses"].as_array().unwrap().len(), 2);
        assert_eq!(l["final_test_losses"].as_array().unwrap().len(), 2);
        assert!(l["conflict_summary"]["mean_cosine"].is_number());
        assert!(l["error"].is_null());
        assert!(l["wall_s"].as_f64().unwrap() > 0.0 && l["threads"].as_u64().unwrap() >= 1);
    }
    assert_eq!(combos.len(), 120, "every combination once");

    // A row per arm × lr with n = 10, none diverged; 6 pairs × 2 tasks per lr compared.
    for lr in LRS {
        for m in METHODS {
            let row = r.tables.lines().find(|l| l.split_whitespace().take(2).eq([lr, m])).unwrap_or_else(|| {
                panic!("no row {lr} {m}:\n{}", r.tables);
            });
            let cols: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(cols[2..4], ["10", "0"], "{row}");
        }
        let pairs = r.tables.lines().filter(|l| l.starts_with(&format!("{lr} ")) && l.contains(" t")).count();
        assert_eq!(pairs, 12, "{}", r.tables);
    }
    assert!(r.tables.contains("final test loss"), "{}", r.tables);
    assert!(r.stdout.contains("\nCost:") && r.stdout.contains("total wall time"), "{}", r.stdout);
}

fn newlines(path: &Path) -> usize {
    std::fs::read(path).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0)
}

#[test]
fn a_killed_sweep_resumes_to_the_same_results() {
    let r = reference();
    let dir = temp_dir("resume");
    let file = dir.join("part.jsonl");
    let mut args = sweep_args(&file);
    args.extend(["--threads".into(), "1".into()]);
    // Kill it part-way. The whole sweep takes about a second on one thread; should this test's
    // thread not be scheduled for that long (other tests share the cores), the sweep ends before
    // the kill: start again, a few times, rather than fail on the machine's load.
    let mut before = 120;
    for _ in 0..5 {
        let _ = std::fs::remove_file(&file);
        let mut child = Command::new(env!("CARGO_BIN_EXE_concord"))
            .args(&args)
            .env("XDG_RUNTIME_DIR", "/tmp")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while newlines(&file) < 5 {
            assert!(start.elapsed() < Duration::from_secs(60), "the sweep wrote nothing in 60 s");
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        before = newlines(&file);
        if before < 120 {
            break;
        }
    }
    assert!((5..120).contains(&before), "killed part-way: {before} lines");
    // A write cut short: half of a line with no newline.
    let torn = serde_json::to_string(&r.lines[119]).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.iter().rposition(|&b| b == b'\n').unwrap() + 1);
    let whole = bytes.iter().filter(|&&c| c == b'\n').count();
    bytes.extend_from_slice(&torn.as_bytes()[..torn.len() / 2]);
    std::fs::write(&file, bytes).unwrap();

    let stderr = ok(&run(&args));
    assert!(stderr.contains("cut short"), "{stderr}");
    assert!(stderr.contains(&format!("{whole} already in")), "{stderr}");
    assert!(stderr.contains(&format!("running {}", 120 - whole)), "{stderr}");
    let got = lines(&file);
    assert_eq!(got.len(), 120);
    assert_eq!(by_cell(got), by_cell(r.lines.clone()), "the same results, each cell once");
    assert_eq!(tables(&file), r.tables);
    // Running it again runs nothing.
    let stderr = ok(&run(&args));
    assert!(stderr.contains("120 already in") && stderr.contains("running 0"), "{stderr}");
    assert_eq!(newlines(&file), 120);
}

#[test]
fn shards_merge_to_the_unsharded_results() {
    let r = reference();
    let dir = temp_dir("shards");
    let mut parts = Vec::new();
    for i in 0..3 {
        let file = dir.join(format!("part-{i}.jsonl"));
        let mut args = sweep_args(&file);
        args.extend(["--shard".into(), format!("{i}/3")]);
        let stderr = ok(&run(&args));
        assert!(stderr.contains(&format!("shard {i}/3 holds 40")), "{stderr}");
        let got = lines(&file);
        assert_eq!(got.len(), 40);
        assert!(got.iter().all(|l| l["cell"].as_u64().unwrap() % 3 == i), "shard {i} runs index % 3 == {i}");
        parts.push(file);
    }
    let merged = dir.join("all.jsonl");
    // A shard given twice is read twice and each cell kept once.
    let mut args: Vec<String> = vec!["sweep".into(), "--merge".into()];
    args.extend(parts.iter().chain([&parts[1]]).map(|p| p.display().to_string()));
    args.extend(["--out".into(), merged.display().to_string()]);
    let stderr = ok(&run(&args));
    assert!(stderr.contains("merged 160 lines from 4 file(s)") && stderr.contains("120 cells"), "{stderr}");
    let got = lines(&merged);
    let order: Vec<u64> = got.iter().map(|l| l["cell"].as_u64().unwrap()).collect();
    assert_eq!(order, (0..120).collect::<Vec<_>>(), "sorted by cell index");
    assert_eq!(by_cell(got), by_cell(r.lines.clone()));
    assert_eq!(tables(&merged), r.tables);
}

#[test]
fn results_do_not_depend_on_threads() {
    let dir = temp_dir("threads");
    let mut runs = Vec::new();
    for t in ["1", "2"] {
        let file = dir.join(format!("t{t}.jsonl"));
        let args: Vec<String> = [
            "sweep",
            "--preset",
            "xor-conflict",
            "--axis",
            "method=mean,upgrad,mgda,cagrad",
            "--axis",
            "seed=0..2",
            "--steps",
            "30",
            "--threads",
            t,
            "--out",
            file.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        ok(&run(&args));
        let got = lines(&file);
        assert!(got.iter().all(|l| l["threads"].as_str().is_none() && l["threads"] == t.parse::<u64>().unwrap()));
        let by_key: BTreeMap<String, Value> =
            got.into_iter().map(|l| (l["key"].as_str().unwrap().to_string(), l)).collect();
        runs.push(by_key);
    }
    assert_eq!(runs[0].len(), 12);
    assert_eq!(runs[0].keys().collect::<Vec<_>>(), runs[1].keys().collect::<Vec<_>>());
    for (key, a) in &runs[0] {
        let b = &runs[1][key];
        for field in ["final_train_losses", "final_test_losses", "conflict_summary", "steps_done", "error"] {
            assert_eq!(a[field], b[field], "{key}: {field}");
        }
    }
}

/// Exit 2, a one-line message containing `says`.
fn refused(args: &[&str], says: &str) {
    let out = concord(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: one line: {stderr}");
    assert!(stderr.starts_with("concord: error: ") && stderr.contains(says), "{args:?}: {stderr}");
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let dir = temp_dir("bad");
    let out = dir.join("out.jsonl");
    let o = out.to_str().unwrap();
    let base = ["sweep", "--preset", "xor-conflict", "--steps", "5", "--out", o];
    let with = |extra: &[&'static str]| -> Vec<&str> { base.iter().copied().chain(extra.iter().copied()).collect() };
    for (extra, says) in [
        (&["--axis", "colour=red,blue"][..], "unknown key 'colour'"),
        (&["--axis", "seed="], "no values"),
        (&["--axis", "seed=1,,2"], "an empty value"),
        (&["--axis", "seed=5..1"], "bad range '5..1'"),
        (&["--axis", "seed=0..x"], "bad range"),
        (&["--axis", "seed=0..2", "--shard", "3/3"], "--shard 3/3: expected I/N with 0 ≤ I < N"),
        (&["--axis", "seed=0..2", "--shard", "1"], "expected I/N"),
        (&["--axis", "lr=0.1,fast"], "learning rate must be a number"),
        (&["--axis", "method=cagrad,mgda", "--axis", "param.c=0.3"], "cell 1 (method=mgda, param.c=0.3)"),
        (&["--axis", "seed=1", "--axis", "seed=2"], "given twice"),
        (&["--axis", "seed=0..2", "--threads", "0"], "--threads must be at least 1"),
        (&["--axis", "seed=0..2", "--plot", "figs"], "--plot does not go with a sweep run"),
    ] {
        refused(&with(extra), says);
        assert!(!out.exists(), "{extra:?} wrote {}", out.display());
    }
    refused(&["sweep", "--preset", "xor-conflict", "--axis", "seed=0..2"], "--out FILE.jsonl is required");
    refused(&["sweep", "--axis", "seed=0..2", "--out", o], "give the base config");
    assert!(!out.exists());

    // A file of another sweep (or with a bad line) is refused by line and left as it was.
    ok(&concord(&with(&["--axis", "seed=0,1"])));
    let before = std::fs::read(&out).unwrap();
    refused(&with(&["--axis", "seed=0,2"]), "line 1: a line of another sweep");
    refused(&["sweep", "--preset", "xor-conflict", "--steps", "6", "--axis", "seed=0,1", "--out", o], "another sweep");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let bad = dir.join("bad.jsonl");
    let text = String::from_utf8(before.clone()).unwrap();
    let first = text.lines().next().unwrap();
    std::fs::write(&bad, format!("{first}\n{{\"sweep\": 1}}\n{first}\n")).unwrap();
    let b = bad.to_str().unwrap();
    refused(
        &["sweep", "--preset", "xor-conflict", "--steps", "5", "--axis", "seed=0,1", "--out", b],
        "line 2: not a sweep line",
    );
    refused(&["sweep", "--summary", b], "line 2: not a sweep line");

    // Merge: not into one of its inputs, not two sweeps.
    let other = dir.join("other.jsonl");
    ok(&concord(&[
        "sweep",
        "--preset",
        "xor-conflict",
        "--steps",
        "5",
        "--axis",
        "seed=3",
        "--out",
        other.to_str().unwrap(),
    ]));
    refused(&["sweep", "--merge", o, other.to_str().unwrap(), "--out", o], "is one of the --merge inputs");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let merged = dir.join("merged.jsonl");
    let m = merged.to_str().unwrap();
    refused(&["sweep", "--merge", o, other.to_str().unwrap(), "--out", m], "a line of another sweep");
    assert!(!merged.exists());
    refused(&["sweep", "--merge", o], "--merge needs --out");
    refused(&["sweep", "--merge", o, "--out", m, "--axis", "seed=1"], "--axis does not go with --merge");
    refused(&["sweep", "--summary", dir.join("missing.jsonl").to_str().unwrap()], "cannot read");
}
