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
    let path = tools::ensure_web_tools()?;
    tools::ensure_test_tools()?;
    tools::ensure_lint_tools()?;
    let root = root();
    println!("xtask: [0/3] format and lints: cargo fmt --check, clippy -D warnings (native and wasm32)");
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
    ]))?;
    // XDG_RUNTIME_DIR silences lavapipe's harmless warnings; the adapter must exist (no skips).
    println!("xtask: [1/3] native tests: CPU reference, GPU kernels on lavapipe, CLI");
    run(Command::new("cargo")
        .current_dir(&root)
        .env("XDG_RUNTIME_DIR", std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into()))
        .args(["test", "--workspace"]))?;

    println!("xtask: [2/3] wasm builds of the playground (trunk --release): with the test hooks, and as shipped");
    let site = root.join("target/browser-dist");
    build_site(&site, true)?;
    // The site as `dist` writes it (no `window.concord`): one test checks it works without hooks.
    let release_site = root.join("target/browser-release");
    build_site(&release_site, false)?;

    println!("xtask: [3/3] browser tests: headless Chromium with WebGPU (SwiftShader)");
    run(Command::new("node")
        .current_dir(root.join("web"))
        .env("PATH", path)
        .env("CONCORD_SITE", &site)
        .env("CONCORD_RELEASE_SITE", &release_site)
        // Built by step 1 (the CLI's integration tests need it): the native CPU reference.
        .env("CONCORD_CLI", root.join("target/debug/concord"))
        .env("CONCORD_ARTIFACTS", root.join("target/browser"))
        .args(["--test", "--test-reporter=spec", "tests/"]))
}
