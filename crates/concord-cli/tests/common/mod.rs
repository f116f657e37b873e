//! Running the built `concord` binary from the integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_concord"));
    // XDG_RUNTIME_DIR silences lavapipe's harmless warnings in the GPU runs.
    cmd.args(args).env("XDG_RUNTIME_DIR", "/tmp");
    cmd
}

/// `concord ARGS` with an empty standard input.
pub fn concord(args: &[&str]) -> Output {
    command(args).stdin(Stdio::null()).output().expect("concord runs")
}

/// `concord ARGS` with `stdin` on its standard input.
pub fn concord_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("concord runs");
    // A command that fails before reading stdin closes it: ignore the broken pipe.
    let _ = child.stdin.take().expect("piped").write_all(stdin.as_bytes());
    child.wait_with_output().expect("concord finishes")
}

/// The one JSON value a successful command printed.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "concord failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON value")
}
