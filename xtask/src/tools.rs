//! Installing what a fresh machine lacks. Every check is cheap, so running a command twice
//! installs nothing the second time.

use crate::{root, run, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The exact versions the build is known to work with (shared/reference/toolchain.md).
const TRUNK_VERSION: &str = "0.21.14";
/// Must equal the `wasm-bindgen` pin in the workspace Cargo.toml.
const WASM_BINDGEN_VERSION: &str = "0.2.130";

pub fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"));
    home.join("bin").join(name)
}

fn output_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn version_matches(bin: &Path, version: &str) -> bool {
    output_of(Command::new(bin).arg("--version")).is_some_and(|v| v.split_whitespace().any(|w| w == version))
}

/// wasm target, trunk, wasm-bindgen-cli and binaryen; returns a PATH that finds them first.
pub fn ensure_web_tools() -> Result<String> {
    let targets = output_of(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !targets.lines().any(|t| t.trim() == "wasm32-unknown-unknown") {
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    if !version_matches(&cargo_bin("trunk"), TRUNK_VERSION) {
        println!("xtask: installing trunk {TRUNK_VERSION} (about 10 minutes on 2 cores, once)");
        run(Command::new("cargo").args(["install", "--locked", "trunk", "--version", TRUNK_VERSION]))?;
    }
    if !version_matches(&cargo_bin("wasm-bindgen"), WASM_BINDGEN_VERSION) {
        // Not --locked: its lock file names a webpki-roots version the registry here lacks.
        println!("xtask: installing wasm-bindgen-cli {WASM_BINDGEN_VERSION} (matches the crate pin)");
        run(Command::new("cargo").args(["install", "--force", "wasm-bindgen-cli", "--version", WASM_BINDGEN_VERSION]))?;
    }
    let web = root().join("web");
    // Every devDependency of web/package.json (a checkout that pulled a new one, e.g. axe-core,
    // has a node_modules without it).
    let missing = npm_dev_dependencies(&web)?.into_iter().find(|name| !web.join("node_modules").join(name).exists());
    if !web.join("node_modules/.bin/wasm-opt").exists() || missing.is_some() {
        // binaryen 132 from npm: Debian's binaryen 108 produces a wasm that fails at start-up.
        run(Command::new("npm").current_dir(&web).args(["ci", "--no-audit", "--no-fund"]))?;
    }
    let mut paths = vec![web.join("node_modules/.bin"), cargo_bin("")];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(paths).map(|p| p.to_string_lossy().into_owned()).map_err(|e| e.to_string())
}

/// The package names under `devDependencies` in web/package.json (a flat object of "name":
/// "version" pairs; xtask has no JSON parser and needs none for that).
fn npm_dev_dependencies(web: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(web.join("package.json")).map_err(|e| format!("web/package.json: {e}"))?;
    let block = text
        .split_once("\"devDependencies\"")
        .and_then(|(_, rest)| rest.split_once('{'))
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(inside, _)| inside)
        .ok_or("web/package.json has no devDependencies object")?;
    Ok(block.split(',').filter_map(|pair| pair.split('"').nth(1)).map(str::to_string).collect())
}

/// rustfmt and clippy (the format and lint checks), from rustup where they are missing.
pub fn ensure_lint_tools() -> Result {
    let have = |args: &[&str]| Command::new("cargo").args(args).output().is_ok_and(|o| o.status.success());
    if have(&["fmt", "--version"]) && have(&["clippy", "--version"]) {
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))
}

/// cargo-nextest (the native test runner), Mesa lavapipe (Vulkan on the CPU) for the native GPU
/// tests and Chromium for the browser tests.
pub fn ensure_test_tools() -> Result {
    let have_nextest = Command::new("cargo").args(["nextest", "--version"]).output().is_ok_and(|o| o.status.success());
    if !have_nextest {
        println!("xtask: installing cargo-nextest (a few minutes on 2 cores, once)");
        run(Command::new("cargo").args(["install", "--locked", "cargo-nextest"]))?;
    }
    let lavapipe = ["/usr/share/vulkan/icd.d/lvp_icd.x86_64.json", "/usr/share/vulkan/icd.d/lvp_icd.aarch64.json"]
        .iter()
        .any(|p| Path::new(p).exists());
    let chromium = Path::new("/usr/bin/chromium").exists();
    if lavapipe && chromium {
        return Ok(());
    }
    let sudo: &[&str] =
        if output_of(Command::new("id").arg("-u")).is_some_and(|u| u.trim() == "0") { &[] } else { &["sudo"] };
    let apt = |args: &[&str]| {
        let mut all: Vec<&str> = sudo.to_vec();
        all.push("apt-get");
        all.extend_from_slice(args);
        let mut cmd = Command::new(all[0]);
        cmd.args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    println!("xtask: installing Mesa lavapipe and Chromium from Debian's packages");
    apt(&["update", "-q"])?;
    apt(&["install", "-y", "-q", "mesa-vulkan-drivers", "chromium", "chromium-driver"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_dependencies_are_read_from_package_json() {
        let names = npm_dev_dependencies(&root().join("web")).unwrap();
        for name in ["axe-core", "binaryen", "playwright-core"] {
            assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
        }
        assert!(names.iter().all(|n| !n.contains(['{', '}', ':', ' '])), "{names:?}");
    }
}
