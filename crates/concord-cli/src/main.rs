//! `concord`: Concord's runs without a browser.
//!
//! The interface is fixed (scripts rely on it): see `concord --help`. Bad input exits with
//! code 2 and a one-line message on stderr; results go to stdout.

mod aggregate;
mod bench;
mod bench_gram;
mod bench_landscape;
mod bench_train;
mod landscape;
mod landscape_files;
mod landscape_plot;
mod methods;
mod plot;
mod train;
mod train_moe;
mod train_preset;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "concord", version, about = "Concord: watch and tame gradient conflicts, headless.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a method on a toy problem (--problem) or a multi-task preset (--preset).
    Train(train::TrainArgs),
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
}

/// An error the user can fix: printed as one line, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl<E: std::fmt::Display> From<E> for UsageError {
    fn from(e: E) -> Self {
        UsageError(e.to_string())
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
    let result = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Methods(args) => methods::run(args),
        Command::Aggregate(args) => aggregate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Landscape(args) => landscape::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(UsageError(msg)) => {
            eprintln!("concord: error: {msg}");
            ExitCode::from(2)
        }
    }
}
