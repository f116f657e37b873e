#!/usr/bin/env python3
"""How `concord sweep` scales with cores: cells per second at --threads 1 and --threads N.

What it measures
    One sweep — a preset (default xor-conflict, its own 500 steps) × 4 methods (mean, upgrad,
    mgda, cagrad) × S seeds (default 24: 96 cells) — run from scratch into a fresh results file
    with `--threads 1` and with `--threads T` (default: every core), the two interleaved
    (1, T, 1, T, …) for R repeats (default 3). Each run is timed from the outside (process start
    to exit, time.perf_counter): cells/s = cells / wall time. The speed-up is the median
    cells/s at T threads over the median at 1 thread. Also recorded per run: the CPU seconds the
    sweep used (getrusage of the child) and the CPU seconds everything else on the machine used
    meanwhile (/proc/stat busy time minus the sweep's), to show the machine was quiet.
    The runs' results must not depend on the threads: the script checks that every cell's
    losses are identical across all runs.

How to run (from the repository root, on a quiet machine)
    cargo build --release -p concord-cli          # the binary this script times
    /work/notes/quiet.sh 600                      # wait until no other process uses a core
    python3 bench/sweep_scaling.py [--seeds 24] [--repeats 3] [--threads T] [--preset NAME]
Writes bench/sweep-scaling.json (the raw numbers) and prints a Markdown table.
"""
import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "concord")
METHODS = "mean,upgrad,mgda,cagrad"


def busy_jiffies():
    """Busy (non-idle, non-iowait) CPU time of the whole machine, in clock ticks."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]


def cpu_model():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def run_once(args, threads, tmp):
    out = os.path.join(tmp, f"sweep-{threads}-{time.monotonic_ns()}.jsonl")
    cmd = [BIN, "sweep", "--preset", args.preset, "--axis", f"method={METHODS}", "--axis",
           f"seed=0..{args.seeds - 1}", "--threads", str(threads), "--out", out]
    tick = os.sysconf("SC_CLK_TCK")
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    j0 = busy_jiffies()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    j1 = busy_jiffies()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    with open(out) as f:
        lines = [json.loads(l) for l in f]
    os.remove(out)
    losses = {l["key"]: (l["final_train_losses"], l["final_test_losses"]) for l in lines}
    return {
        "threads": threads,
        "cells": len(lines),
        "wall_s": wall,
        "cells_per_s": len(lines) / wall,
        "sweep_cpu_s": own,
        "other_cpu_s": max(0.0, (j1 - j0) / tick - own),
        "cell_wall_s_sum": sum(l["wall_s"] for l in lines),
    }, losses


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="xor-conflict")
    ap.add_argument("--seeds", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "sweep-scaling.json"))
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: cargo build --release -p concord-cli")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    runs, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        run_once(args, 1, tmp)  # warm-up (page cache, CPU frequency); not recorded
        for r in range(args.repeats):
            for t in (1, args.threads):
                row, losses = run_once(args, t, tmp)
                row["repeat"] = r
                runs.append(row)
                if reference is None:
                    reference = losses
                elif losses != reference:
                    sys.exit(f"run {r} at {t} threads: losses differ from the first run")
                print(f"repeat {r} threads {t}: {row['wall_s']:.3f} s, {row['cells_per_s']:.1f} cells/s, "
                      f"others used {row['other_cpu_s']:.2f} CPU s", file=sys.stderr)
    med = {t: statistics.median(x["cells_per_s"] for x in runs if x["threads"] == t) for t in (1, args.threads)}
    doc = {
        "what": "concord sweep cells/s at --threads 1 and --threads T, interleaved repeats",
        "command": f"concord sweep --preset {args.preset} --axis method={METHODS} "
                   f"--axis seed=0..{args.seeds - 1} --threads T --out FILE",
        "preset": args.preset,
        "cells": 4 * args.seeds,
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": commit,
        "binary": os.path.relpath(BIN, ROOT),
        "runs": runs,
        "median_cells_per_s": {str(t): v for t, v in med.items()},
        "speedup": med[args.threads] / med[1],
        "identical_losses_across_runs": True,
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"| threads | runs: cells/s | median cells/s | speed-up |\n|---|---|---|---|")
    for t in (1, args.threads):
        xs = ", ".join(f"{x['cells_per_s']:.1f}" for x in runs if x["threads"] == t)
        print(f"| {t} | {xs} | {med[t]:.1f} | {med[t] / med[1]:.2f}× |")
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
