//! `concord sweep`: a base config and axes, every cell run in parallel, results as JSON lines.
//!
//! - `concord sweep (--preset NAME | --config FILE) --axis KEY=V1,V2,… [--axis …] [--steps N]
//!   --out FILE.jsonl [--shard I/N] [--threads T]` runs the cartesian product of the axes (first
//!   axis slowest; `a..b` is a whole-number range, both ends included) on a thread pool and
//!   appends one line per finished cell to FILE. Cells whose config (by its sha256) is already in
//!   FILE are skipped, so a killed sweep resumes by running the same command again.
//! - `concord sweep --merge A.jsonl B.jsonl … --out FILE.jsonl` combines shards.
//! - `concord sweep --summary FILE.jsonl [--plot DIR]` prints the results, paired comparisons
//!   and cost tables, and draws the PNGs.
//!
//! Every cell's config is built and validated before any cell runs: a bad axis value is one
//! error line (exit 2) and nothing is written. One writer (the calling thread, fed by a
//! channel) appends and flushes a whole line per finished cell, so a kill loses at most the
//! cells in flight (and perhaps leaves a cut-short last line, which the next run drops).

mod cells;
mod lines;
mod plot;
mod stats;
mod summary;

use crate::run_config;
use crate::UsageError;
use cells::{Cell, Shard};
use clap::Args;
use concord_core::train::ConflictSummary;
use indicatif::{ProgressBar, ProgressStyle};
use lines::{Line, Tail};
use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The base config: a preset's own (what `concord config --preset NAME` prints).
    #[arg(long, value_name = "NAME")]
    preset: Option<String>,
    /// The base config from a file: `concord config` output, a run record (`train --out run.json`)
    /// or a page export; `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// An axis: KEY=V1,V2,… with KEY one of method, weighting, param.NAME, weighting.NAME, lr,
    /// steps, seed, optimizer, options (run options such as sam@clip=1, or none), batch_size,
    /// precision, eval_every; `a..b` is the whole numbers a to b (seed=0..9 is ten seeds); a
    /// list-valued parameter is written with ';'. Repeat for more axes: the cells are their
    /// product, the first axis varying slowest.
    #[arg(long = "axis", value_name = "KEY=V1,V2,…")]
    axes: Vec<String>,
    /// The base config's number of steps.
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// The results file (JSON Lines), appended to; with --merge, the merged file (replaced).
    #[arg(long, value_name = "FILE.jsonl")]
    out: Option<PathBuf>,
    /// Run only the cells with index % N == I (I from 0: a Slurm array's $SLURM_ARRAY_TASK_ID).
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Threads running cells (default: every core).
    #[arg(long, value_name = "T")]
    threads: Option<usize>,
    /// Combine the results files of one sweep's shards into --out (each cell once, by index).
    #[arg(long, num_args = 1.., value_name = "FILE.jsonl")]
    merge: Vec<PathBuf>,
    /// Print the results, paired comparisons and cost tables of a results file.
    #[arg(long, value_name = "FILE.jsonl")]
    summary: Option<PathBuf>,
    /// With --summary: write final-loss.png, lr-sensitivity.png (with an lr axis) and
    /// loss-space.png to this folder.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
}

pub fn run(args: SweepArgs) -> Result<(), UsageError> {
    let given = [
        ("--preset", args.preset.is_some()),
        ("--config", args.config.is_some()),
        ("--axis", !args.axes.is_empty()),
        ("--steps", args.steps.is_some()),
        ("--shard", args.shard.is_some()),
        ("--threads", args.threads.is_some()),
        ("--out", args.out.is_some()),
        ("--merge", !args.merge.is_empty()),
        ("--summary", args.summary.is_some()),
        ("--plot", args.plot.is_some()),
    ];
    let refuse = |mode: &str, allowed: &[&str]| -> Result<(), UsageError> {
        match given.iter().find(|(flag, on)| *on && !allowed.contains(flag)) {
            Some((flag, _)) => Err(UsageError(format!("{flag} does not go with {mode}"))),
            None => Ok(()),
        }
    };
    if !args.merge.is_empty() {
        refuse("--merge", &["--merge", "--out"])?;
        let out = args.out.ok_or_else(|| UsageError("--merge needs --out FILE.jsonl (the merged file)".into()))?;
        let (read, kept) = lines::merge(&args.merge, &out)?;
        eprintln!(
            "concord sweep: merged {read} lines from {} file(s) into {}: {kept} cells",
            args.merge.len(),
            out.display()
        );
        return Ok(());
    }
    if let Some(file) = &args.summary {
        refuse("--summary", &["--summary", "--plot"])?;
        return summarise(file, args.plot.as_deref());
    }
    refuse("a sweep run", &["--preset", "--config", "--axis", "--steps", "--shard", "--threads", "--out"])?;
    run_sweep(args)
}

/// What every cell's line shares.
struct Context {
    sweep: String,
    cells: usize,
    base: String,
    threads: usize,
}

fn run_sweep(args: SweepArgs) -> Result<(), UsageError> {
    let loaded = match (&args.preset, &args.config) {
        (Some(p), None) => run_config::from_preset(p)?,
        (None, Some(f)) => run_config::from_file(f, None)?,
        (Some(_), Some(_)) => return Err(UsageError("give --preset or --config, not both".into())),
        (None, None) => {
            return Err(UsageError(
                "give the base config (--preset NAME or --config FILE), or --merge FILES… / --summary FILE".into(),
            ))
        }
    };
    let out = args.out.ok_or_else(|| UsageError("--out FILE.jsonl is required (one JSON line per cell)".into()))?;
    let mut base = loaded.config;
    if let Some(s) = args.steps {
        run_config::set(&mut base, "steps", &s.to_string()).map_err(|e| UsageError(format!("--steps: {}", e.0)))?;
    }
    let axes = cells::parse_axes(&args.axes)?;
    let shard = args.shard.as_deref().map(Shard::parse).transpose()?.unwrap_or(Shard::ALL);
    let threads = match args.threads {
        Some(0) => return Err(UsageError("--threads must be at least 1".into())),
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let all = cells::build_all(&base, &axes)?;
    let ctx =
        Arc::new(Context { sweep: cells::fingerprint(&base, &axes), cells: all.len(), base: loaded.label, threads });

    // What FILE holds already (every line checked before anything is written).
    let mut expect = Some(ctx.sweep.clone());
    let existing = match std::fs::metadata(&out) {
        Ok(_) => lines::read(&out, &mut expect)?,
        Err(_) => lines::SweepFile { entries: Vec::new(), tail: Tail::Clean },
    };
    let done: HashSet<&str> = existing.entries.iter().map(|e| e.line.key.as_str()).collect();
    let mine: Vec<&Cell> = all.iter().filter(|c| shard.holds(c.index)).collect();
    let todo: Vec<Cell> = mine.iter().filter(|c| !done.contains(c.key.as_str())).map(|c| (*c).clone()).collect();
    let skipped = mine.len() - todo.len();

    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .map_err(|e| UsageError(format!("cannot open {}: {e}", out.display())))?;
    match existing.tail {
        Tail::Clean => {}
        Tail::Unterminated => file.write_all(b"\n").map_err(|e| write_error(&out, e))?,
        Tail::Torn { keep, line_no } => {
            file.set_len(keep).map_err(|e| write_error(&out, e))?;
            eprintln!("concord sweep: dropped line {line_no} of {}: cut short (a killed run)", out.display());
        }
    }
    let shard_text = if shard == Shard::ALL {
        String::new()
    } else {
        format!(", shard {}/{} holds {}", shard.index, shard.count, mine.len())
    };
    eprintln!(
        "concord sweep: {} cells{shard_text}; {skipped} already in {} (skipped), running {} on {threads} thread(s)",
        all.len(),
        out.display(),
        todo.len()
    );
    if todo.is_empty() {
        return Ok(());
    }

    let bar = if std::io::stderr().is_terminal() { ProgressBar::new(mine.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} cells, {elapsed} elapsed, eta {eta}")
            .expect("static template"),
    );
    bar.set_position(skipped as u64);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("concord-sweep-{i}"))
        .build()
        .map_err(|e| UsageError(format!("cannot start {threads} threads: {e}")))?;
    let start = Instant::now();
    let (tx, rx) = mpsc::channel::<(usize, Result<String, String>)>();
    let count = todo.len();
    // FIFO: cells start in index order.
    for cell in todo {
        let (tx, ctx) = (tx.clone(), Arc::clone(&ctx));
        pool.spawn_fifo(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_cell(&cell, &ctx)))
                .unwrap_or_else(|p| {
                    let msg =
                        p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
                    Err(format!("panicked: {}", msg.unwrap_or_default()))
                });
            let _ = tx.send((cell.index, result));
        });
    }
    drop(tx);
    let mut failed = Vec::new();
    let mut written = 0;
    for (index, result) in rx {
        match result {
            Ok(mut text) => {
                text.push('\n');
                file.write_all(text.as_bytes()).and_then(|()| file.flush()).map_err(|e| write_error(&out, e))?;
                written += 1;
            }
            Err(e) => {
                bar.suspend(|| eprintln!("concord sweep: cell {index} failed (not written): {e}"));
                failed.push(index);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "concord sweep: wrote {written} of {count} cells to {} in {secs:.2} s ({:.2} cells/s)",
        out.display(),
        written as f64 / secs.max(1e-9)
    );
    if !failed.is_empty() {
        failed.sort_unstable();
        return Err(UsageError(format!("{} cell(s) failed and were not written: {failed:?}", failed.len())));
    }
    Ok(())
}

fn write_error(path: &Path, e: std::io::Error) -> UsageError {
    UsageError(format!("cannot write {}: {e}", path.display()))
}

/// Train one cell and make its line.
fn run_cell(cell: &Cell, ctx: &Context) -> Result<String, String> {
    let start = Instant::now();
    let record = concord_core::train::train(&cell.config)?;
    let wall_s = start.elapsed().as_secs_f64();
    let finite =
        |c: &ConflictSummary| [c.mean_cosine, c.mean_conflict, c.conflicting_fraction].iter().all(|v| v.is_finite());
    let line = Line {
        sweep: ctx.sweep.clone(),
        key: cell.key.clone(),
        cell: cell.index,
        cells: ctx.cells,
        base: ctx.base.clone(),
        axes: lines::Axes(cell.values.clone()),
        method: cell.config.method.to_text(),
        task_names: record.task_names.clone(),
        steps: cell.config.steps,
        steps_done: record.steps_done,
        conflict_summary: ConflictSummary::of(&record).filter(finite),
        final_train_losses: record.final_train_losses,
        final_test_losses: record.final_test_losses,
        error: record.error,
        wall_s,
        threads: ctx.threads,
    };
    Ok(serde_json::to_string(&line).expect("a line serialises"))
}

/// `--summary FILE [--plot DIR]`.
fn summarise(file: &Path, plot_dir: Option<&Path>) -> Result<(), UsageError> {
    let mut sweep = None;
    let f = lines::read(file, &mut sweep)?;
    if let Tail::Torn { line_no, .. } = f.tail {
        eprintln!("concord sweep: warning: {} line {line_no} was cut short (still running?): left out", file.display());
    }
    let mut seen = HashSet::new();
    let lines: Vec<Line> = f.entries.into_iter().map(|e| e.line).filter(|l| seen.insert(l.key.clone())).collect();
    if lines.is_empty() {
        return Err(UsageError(format!("{} holds no finished cell", file.display())));
    }
    let g = summary::Grouped::new(&lines);
    let text = format!("{}\n{}", summary::results(&g), summary::cost(&g));
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if let Some(dir) = plot_dir {
        std::fs::create_dir_all(dir).map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
        let draw = |name: &str, r: Result<bool, String>| -> Result<(), UsageError> {
            match r {
                Ok(true) => {
                    eprintln!("concord sweep: wrote {}", dir.join(name).display());
                    Ok(())
                }
                Ok(false) => Ok(()),
                Err(e) => Err(UsageError(format!("cannot draw {name}: {e}"))),
            }
        };
        draw("final-loss.png", plot::final_loss_png(&dir.join("final-loss.png"), &g).map(|()| true))?;
        let lr = plot::lr_png(&dir.join("lr-sensitivity.png"), &g);
        if matches!(lr, Ok(false)) {
            eprintln!("concord sweep: note: no lr axis, so no lr-sensitivity.png");
        }
        draw("lr-sensitivity.png", lr)?;
        let space = plot::loss_space_png(&dir.join("loss-space.png"), &g);
        if matches!(space, Ok(false)) {
            eprintln!("concord sweep: note: one task, so no loss-space.png");
        }
        draw("loss-space.png", space)?;
    }
    Ok(())
}
