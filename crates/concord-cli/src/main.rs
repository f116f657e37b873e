//! `concord`: Concord's runs without a browser.
//!
//! The interface is fixed (scripts rely on it): see `concord --help`. Bad input exits with
//! code 2 and a one-line message on stderr; results go to stdout.

mod aggregate;
#[cfg(test)]
mod aggregate_fuzz;
mod bench;
mod bench_gram;
mod bench_landscape;
mod bench_train;
mod conflict_map;
mod landscape;
mod landscape_files;
mod landscape_plot;
mod merge;
mod methods;
mod neurons;
mod plot;
mod run_config;
mod sweep;
mod train;
mod train_moe;
mod train_preset;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "concord", version, about = "Concord: watch and tame gradient conflicts, headless.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a method on a toy problem (--problem), a preset (--preset), a config file or page
    /// export (--config) or a playground URL (--hash).
    Train(Box<train::TrainArgs>),
    /// List every aggregator with its parameters, defaults and properties.
    Methods(methods::MethodsArgs),
    /// Aggregate one matrix (JSON or CSV rows, from a file or stdin) and print the update.
    Aggregate(aggregate::AggregateArgs),
    /// Time the aggregators (bench aggregate), training steps (bench train) or a landscape
    /// slice (bench landscape).
    Bench(bench::BenchArgs),
    /// Train a preset, then write its loss landscape: a 2-D slice with trajectories, the
    /// interpolation to a second run with barrier heights, sharpness over training (CSV + PNG).
    Landscape(landscape::LandscapeArgs),
    /// Print a preset's full run config as JSON (a start for `train --config` and `sweep --config`).
    Config(ConfigArgs),
    /// Train a preset with 2-D inputs, then map where its tasks fight: the cosine of the tasks'
    /// shared-trunk gradients on a grid over the plane and at every train point (CSV + PNG).
    ConflictMap(conflict_map::ConflictMapArgs),
    /// Run a base config over axes (methods × seeds × learning rates …) on every core, appending
    /// one JSON line per cell (resumable, shardable); merge shards; summarise with statistics and plots.
    Sweep(sweep::SweepArgs),
    /// Train one run per task from the same init, merge them (task arithmetic, TIES or the
    /// projective DOGE), and compare the merged point with the jointly trained run in loss space,
    /// with its barrier to each parent (merge.json + merge.png).
    Merge(merge::MergeArgs),
    /// The network view's per-neuron conflict at a run file's parameters: for every trunk neuron,
    /// the tasks' gradient cosines and norms on its incoming weights and bias (JSON).
    Neurons(neurons::NeuronsArgs),
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// The preset whose config to print (see `concord train --help` for the names).
    #[arg(long)]
    preset: String,
}

/// `concord config --preset NAME`: the preset's run config, pretty-printed, on stdout.
fn print_config(args: ConfigArgs) -> Result<(), UsageError> {
    let loaded = run_config::from_preset(&args.preset)?;
    let text = serde_json::to_string_pretty(&loaded.config).expect("a config serialises");
    // A closed pipe (`| head`) is not an error.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(())
}

/// An error the user can fix: printed as one line, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl<E: std::fmt::Display> From<E> for UsageError {
    fn from(e: E) -> Self {
        UsageError(e.to_string())
    }
}

/// A private XDG_RUNTIME_DIR for this process, removed on drop.
///
/// Mesa's Vulkan WSI (lavapipe included) prints `error: XDG_RUNTIME_DIR is invalid or not set in
/// the environment.` on stderr when the variable is missing — from cron, ssh, containers — even
/// though a headless compute run never uses the directory; a user reads it as a failure. So when
/// the variable is unset or not a directory, point it at an empty directory of our own (mode
/// 0700, as the XDG spec requires) before any wgpu instance exists. Only this binary does it: a
/// library must not change its host's environment.
struct RuntimeDir(Option<std::path::PathBuf>);

impl RuntimeDir {
    fn ensure() -> RuntimeDir {
        if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir()) {
            return RuntimeDir(None);
        }
        let dir = std::env::temp_dir().join(format!("concord-runtime-{}", std::process::id()));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        // A directory of that name left by an earlier process with this id may belong to someone
        // else: then leave the environment as it is (a warning, not a failure).
        match builder.create(&dir) {
            Ok(()) => {
                // Set from main before any thread starts: nothing reads the environment meanwhile.
                std::env::set_var("XDG_RUNTIME_DIR", &dir);
                RuntimeDir(Some(dir))
            }
            Err(_) => RuntimeDir(None),
        }
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `concord methods | head` would panic on the closed pipe; a
    // command-line tool should just stop, as `cat` does.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let _runtime_dir = RuntimeDir::ensure();
    let result = match cli.command {
        Command::Train(args) => train::run(*args),
        Command::Methods(args) => methods::run(args),
        Command::Aggregate(args) => aggregate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Landscape(args) => landscape::run(args),
        Command::Config(args) => print_config(args),
        Command::Sweep(args) => sweep::run(args),
        Command::ConflictMap(args) => conflict_map::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Neurons(args) => neurons::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(UsageError(msg)) => {
            eprintln!("concord: error: {msg}");
            ExitCode::from(2)
        }
    }
}
