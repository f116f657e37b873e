//! `cargo xtask serve | dist | test`: the two commands of the README, and the static build.
//!
//! Each command first installs what is missing on a fresh machine (the wasm target, trunk, the
//! wasm-bindgen CLI that matches the crate pin, binaryen's wasm-opt, and for `test` Mesa
//! lavapipe and Chromium), then builds and runs. Plain std only, so xtask itself builds in
//! seconds.

mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  serve [--port P]   install what is missing, build the playground and the gallery, serve
                     them on 127.0.0.1
  dist [--out DIR]   install what is missing, build the static site into DIR (default dist/)
  test               install what is missing (lavapipe, Chromium too), then check the format
                     and lints (cargo fmt --check, clippy -D warnings) and run every test:
                     native CPU, native GPU on lavapipe, the wasm build, the browser tests
                     (with the short memory soak, web/tests/soak.test.mjs)
  soak [--steps N]   the full memory soak: build the test site, train 4 arena runs for N steps
                     (default 50000) on the default preset and on a 16-expert MoE in headless
                     Chromium, check wasm memory (RELIABILITY.md, \"Memory\"); figures in
                     target/browser/soak-*.json";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("dist") => dist_cmd(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("soak") => soak(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent").to_path_buf()
}

/// Run a command to completion; a non-zero exit is an error naming the command.
pub fn run(cmd: &mut Command) -> Result {
    let shown = format!("{cmd:?}");
    println!("xtask: $ {shown}");
    let status = cmd.status().map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}

fn flag_value(args: &[String], flag: &str) -> Result<Option<String>> {
    match args.iter().position(|a| a == flag) {
        None => Ok(args.iter().find_map(|a| a.strip_prefix(&format!("{flag}=")).map(str::to_owned))),
        Some(i) => args.get(i + 1).cloned().map(Some).ok_or_else(|| format!("{flag} needs a value")),
    }
}

/// `trunk build --release` into `out`, with the pinned tools on PATH; `test_hooks` turns on
/// concord-web's `test-hooks` feature (`window.concord`, for the browser tests only).
fn build_site(out: &Path, test_hooks: bool) -> Result {
    let path = tools::ensure_web_tools()?;
    let mut cmd = Command::new(tools::cargo_bin("trunk"));
    cmd.current_dir(root()).env("PATH", path).args(["build", "--release", "--offline"]);
    if test_hooks {
        cmd.args(["--features", "test-hooks"]);
    }
    run(cmd.arg("--dist").arg(out))
}

fn dist_cmd(args: &[String]) -> Result {
    let out = flag_value(args, "--out")?.map(PathBuf::from).unwrap_or_else(|| root().join("dist"));
    build_site(&out, false)?;
    println!("xtask: the static site is in {} (upload the folder to any static host)", out.display());
    println!("xtask:   playground: {}", out.join("index.html").display());
    println!("xtask:   gallery:    {}", out.join("gallery.html").display());
    println!("xtask:   embedding:  concord-embed.js and embed.html next to them (EMBEDDING.md)");
    Ok(())
}

fn serve(args: &[String]) -> Result {
    let port = flag_value(args, "--port")?.unwrap_or_else(|| "8080".into());
    port.parse::<u16>().map_err(|_| format!("--port '{port}' is not a port number"))?;
    let path = tools::ensure_web_tools()?;
    println!("xtask: building, then serving the playground at http://127.0.0.1:{port}/ (Ctrl-C stops)");
    println!("xtask: the gallery of embedded figures: http://127.0.0.1:{port}/gallery.html");
    // No autoreload: its injected inline script would break the pages' Content-Security-Policy.
    // Trunk.toml's [serve] headers add the CORS header sandboxed iframes of embed.html need.
    run(Command::new(tools::cargo_bin("trunk")).current_dir(root()).env("PATH", path).args([
        "serve",
        "--release",
        "--offline",
        "--no-autoreload",
        "--address",
        "127.0.0.1",
        "--port",
        &port,
    ]))
}

/// The full memory soak (web/tests/soak.test.mjs with CONCORD_SOAK_STEPS); `cargo xtask test`
/// runs its short version with the other browser tests.
fn soak(args: &[String]) -> Result {
    let steps = flag_value(args, "--steps")?.unwrap_or_else(|| "50000".into());
    match steps.parse::<u64>() {
        Ok(n) if n >= 2 => {}
        _ => return Err(format!("--steps '{steps}' is not a step count of at least 2")),
    }
    let path = tools::ensure_web_tools()?;
    tools::ensure_test_tools()?;
    let root = root();
    let site = root.join("target/browser-dist");
    build_site(&site, true)?;
    println!("xtask: the memory soak, {steps} steps per preset (headless Chromium; minutes)");
    run(Command::new("node")
        .current_dir(root.join("web"))
        .env("PATH", path)
        .env("CONCORD_SITE", &site)
        .env("CONCORD_ARTIFACTS", root.join("target/browser"))
        .env("CONCORD_SOAK_STEPS", &steps)
        .args(["--test", "--test-reporter=spec", "tests/soak.test.mjs"]))?;
    println!("xtask: the figures are in {}", root.join("target/browser/soak-*.json").display());
    Ok(())
}

fn test(_args: &[String]) -> Result {
    let path = timed("installs", || -> Result<String> {
        let path = tools::ensure_web_tools()?;
        tools::ensure_test_tools()?;
        tools::ensure_lint_tools()?;
        Ok(path)
    })?;
    let root = root();
    println!("xtask: [0/3] format and lints: cargo fmt --check, clippy -D warnings (native and wasm32)");
    timed("format and lints", || -> Result {
        run(Command::new("cargo").current_dir(&root).args(["fmt", "--all", "--check"]))?;
        run(Command::new("cargo").current_dir(&root).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        // The page's own code paths (WebGPU, the DOM) only exist on wasm32.
        run(Command::new("cargo").current_dir(&root).args([
            "clippy",
            "-p",
            "concord-web",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    // XDG_RUNTIME_DIR silences lavapipe's harmless warnings; the adapter must exist (no skips).
    println!("xtask: [1/3] native tests: CPU reference, GPU kernels on lavapipe, CLI");
    timed("native tests", || -> Result {
        let xdg = std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into());
        // nextest runs every test in its own process, as many at once as there are cores, across
        // test binaries: `cargo test` runs the binaries one after another, and a binary whose tests
        // wait on the GPU keeps about one core busy (loss_weighting_parity: 70 s of CPU in 69 s).
        run(Command::new("cargo").current_dir(&root).env("XDG_RUNTIME_DIR", &xdg).args([
            "nextest",
            "run",
            "--workspace",
            "--no-fail-fast",
        ]))?;
        // nextest does not run doc-tests.
        run(Command::new("cargo").current_dir(&root).env("XDG_RUNTIME_DIR", &xdg).args([
            "test",
            "--workspace",
            "--doc",
        ]))
    })?;

    println!("xtask: [2/3] wasm builds of the playground (trunk --release): with the test hooks, and as shipped");
    let site = root.join("target/browser-dist");
    // The site as `dist` writes it (no `window.concord`): one test checks it works without hooks.
    let release_site = root.join("target/browser-release");
    timed("wasm builds", || -> Result {
        build_site(&site, true)?;
        build_site(&release_site, false)
    })?;

    println!("xtask: [3/3] browser tests: headless Chromium with WebGPU (SwiftShader)");
    let (shared, alone) = browser_test_files(&root.join("web/tests"))?;
    let jobs = browser_jobs()?;
    let node = |files: &[String], jobs: usize| {
        let mut cmd = Command::new("node");
        cmd.current_dir(root.join("web"))
            .env("PATH", &path)
            .env("CONCORD_SITE", &site)
            .env("CONCORD_RELEASE_SITE", &release_site)
            // Built by step 1 (the CLI's integration tests need it): the native CPU reference.
            .env("CONCORD_CLI", root.join("target/debug/concord"))
            .env("CONCORD_ARTIFACTS", root.join("target/browser"))
            .args(["--test", "--test-reporter=spec", &format!("--test-concurrency={jobs}")])
            .args(files.iter().map(|f| format!("tests/{f}")));
        cmd
    };
    println!("xtask: {} browser test files, {jobs} at a time; then {} alone", shared.len(), alone.join(", "));
    let shared_result = timed("browser tests (shared machine)", || run(&mut node(&shared, jobs)));
    // Run the timing tests even when another file failed: one run reports every failure.
    let alone_result = timed("browser tests (alone)", || run(&mut node(&alone, 1)));
    shared_result.and(alone_result)
}

/// Browser test files that time the page's answers (budget.test.mjs: every script call within
/// 500 ms) and so run by themselves, after the others: a neighbour's Chromium on the same cores
/// would measure the machine, not the page.
const BROWSER_TESTS_ALONE: &[&str] = &["budget.test.mjs"];

/// Every `*.test.mjs` in `dir`, sorted: (those that may share the machine, those run alone).
fn browser_test_files(dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.mjs"))
        .collect();
    files.sort();
    let (alone, shared): (Vec<String>, Vec<String>) =
        files.into_iter().partition(|f| BROWSER_TESTS_ALONE.contains(&f.as_str()));
    if alone.len() != BROWSER_TESTS_ALONE.len() {
        return Err(format!("web/tests lacks one of {BROWSER_TESTS_ALONE:?}"));
    }
    Ok((shared, alone))
}

/// How many browser test files run at once: two where the machine has two cores or more. One
/// file keeps about 1.3 cores busy (the page's wasm thread, SwiftShader, the test process), so
/// on CI's 2 cores two at a time took 146 s where one at a time took 227 s (6 files, 20 tests).
/// `CONCORD_BROWSER_JOBS=N` overrides it.
fn browser_jobs() -> Result<usize> {
    match std::env::var("CONCORD_BROWSER_JOBS") {
        Ok(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("CONCORD_BROWSER_JOBS='{v}' is not a count of at least 1")),
        },
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 2)),
    }
}

/// Run a stage and print how long it took (CI's time budget is read from these lines).
fn timed<T>(stage: &str, f: impl FnOnce() -> T) -> T {
    let t0 = std::time::Instant::now();
    let out = f();
    println!("xtask: {stage} took {:.0} s", t0.elapsed().as_secs_f64());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_browser_test_file_runs_once_and_the_timing_test_runs_alone() {
        let dir = root().join("web/tests");
        let (shared, alone) = browser_test_files(&dir).unwrap();
        assert_eq!(alone, ["budget.test.mjs"]);
        assert!(shared.len() > 20, "{shared:?}");
        assert!(shared.iter().all(|f| f.ends_with(".test.mjs") && !alone.contains(f)));
        let on_disk = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".test.mjs"))
            .count();
        assert_eq!(shared.len() + alone.len(), on_disk);
    }
}
