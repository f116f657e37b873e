#!/usr/bin/env python3
"""CPU benchmark: Concord's aggregators against torchjd 0.18's, on the same matrices.

What it measures
    For m in {2, 4, 8} tasks, n in {1e3, 1e4, 1e5} parameters and the methods below, the
    median wall-clock time of ONE aggregation call J -> d (m x n Jacobian in, length-n update out):
      * torchjd: the aggregator object called in-process on a torch tensor (warm-up, then the
        median over repeated calls; fast calls are timed in batches of >= 50 us), in float32 (what
        torchjd users train with) and in float64 (Concord's precision);
      * Concord: `concord bench aggregate --input FILE --json --precision f32|f64` on the very
        same matrix (same warm-up / batching / median scheme, in Rust): f32 (row-major J, both
        O(mn) passes in f32, the m x m weighting in f64) against torchjd float32, and f64 (the
        CPU reference path) against torchjd float64.
    The matrix is standard-normal from numpy's default_rng(seed=0), rounded to float32 so that
    all three runs see identical values, and written to a temporary CSV file (17 significant
    digits: exact). Each case also checks that Concord's updates (`concord aggregate
    --precision f32|f64`) match torchjd's float64 update, reported as
    max|d_concord - d_torchjd| / max|d_torchjd|.
    Methods: Mean, Sum, MGDA, PCGrad, UPGrad, DualProj, CAGrad(c=0.5), IMTL-G, Aligned-MTL,
    ConFIG, Nash-MTL(n_tasks=m), FairGrad(alpha=1); Krum(n_byzantine=1) and
    TrimmedMean(trim_number=1) where valid (m >= 4). PCGrad is exact for m = 2; for m > 2 both
    libraries visit the other tasks in a random order (different generators), so the updates
    differ (the work per call is the same). Nash-MTL is stateful (warm start) in both.
    Threads: --threads N sets both torch's intra-op threads and Concord's (`--threads`); by
    default both use one thread per core.

How to run (from the repository root)
    cargo build --release -p concord-cli        # the binary this script times
    python3 -m venv /tmp/tjd-venv && /tmp/tjd-venv/bin/pip install "torchjd[full]"   # once
    /tmp/tjd-venv/bin/python bench/compare_torchjd.py
    # options: --concord PATH (default target/release/concord), --out bench/results,
    #          --threads 1 (both libraries on one core; on a shared machine with one core busy,
    #          2-thread torch ops stall for a scheduler slice, ~16 ms), --quick (n <= 1e4, shorter
    #          budgets: a smoke test), --methods mean,upgrad
    It writes OUT.json (every measurement) and OUT.md (the tables pasted into BENCHMARKS.md).
    The committed runs: bench/results.{json,md} (default threads: each library uses every core,
    the verdict) and bench/results-1-thread.{json,md} (--threads 1 --out bench/results-1-thread).
    One full run takes about 5 minutes on 2 cores. Run it on an idle machine: other processes
    inflate both columns, unevenly.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
import torchjd.aggregation as A

warnings.filterwarnings("ignore")  # cvxpy's DPP warning for Nash-MTL, on every call

GRAMIAN_SOLVERS = {"mgda", "upgrad", "dualproj", "cagrad", "imtl-g", "aligned-mtl", "config", "nash-mtl", "fairgrad"}
NO_SLOWER = {"mean", "sum"}

# (concord name, concord --param list, torchjd factory(m), smallest valid m)
METHODS = [
    ("mean", [], lambda m: A.Mean(), 1),
    ("sum", [], lambda m: A.Sum(), 1),
    ("mgda", [], lambda m: A.MGDA(), 1),
    ("pcgrad", [], lambda m: A.PCGrad(), 1),
    ("upgrad", [], lambda m: A.UPGrad(), 1),
    ("dualproj", [], lambda m: A.DualProj(), 1),
    ("cagrad", ["c=0.5"], lambda m: A.CAGrad(c=0.5), 1),
    ("imtl-g", [], lambda m: A.IMTLG(), 1),
    ("aligned-mtl", [], lambda m: A.AlignedMTL(), 1),
    ("config", [], lambda m: A.ConFIG(), 1),
    ("nash-mtl", [], lambda m: A.NashMTL(n_tasks=m), 1),
    ("fairgrad", ["alpha=1"], lambda m: A.FairGrad(alpha=1.0), 1),
    ("krum", ["n_byzantine=1"], lambda m: A.Krum(n_byzantine=1), 4),
    ("trimmed-mean", ["trim_number=1"], lambda m: A.TrimmedMean(trim_number=1), 3),
]

MIN_SAMPLE_S = 50e-6


def median_us(fn, warmup_s, budget_s, max_samples=2000, min_samples=5):
    """Median seconds per call of fn(), in µs: warm-up (>= 3 calls), then batched samples."""
    start = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - start < warmup_s:
        fn()
        calls += 1
        if time.perf_counter() - start > budget_s:
            break
    per_call = (time.perf_counter() - start) / calls
    batch = 1 if per_call >= MIN_SAMPLE_S else int(MIN_SAMPLE_S / max(per_call, 1e-9)) + 1
    samples = []
    t0 = time.perf_counter()
    while len(samples) < min_samples or (time.perf_counter() - t0 < budget_s and len(samples) < max_samples):
        s = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - s) / batch * 1e6)
        if time.perf_counter() - t0 > 4 * budget_s:  # very slow calls: stop at min_samples or this
            break
    return statistics.median(samples), len(samples) * batch


def concord_json(binary, args):
    out = subprocess.run([binary, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"concord {' '.join(args)}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def machine_info():
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchjd": importlib.metadata.version("torchjd"),
        "numpy": np.__version__,
        "rustc": rustc,
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "loadavg_start": os.getloadavg(),
    }


def verdict(method, ratio):
    if method in GRAMIAN_SOLVERS:
        return ("✔" if ratio >= 5 else "✘"), "≥ 5×"
    if method in NO_SLOWER:
        return ("✔" if ratio >= 1 else "✘"), "≥ 1×"
    return "–", "none"


def markdown(info, rows):
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores (torch uses {info['torch_threads']} threads, "
        f"Concord {info['concord_threads']}). "
        f"torch {info['torch']}, torchjd {info['torchjd']}, numpy {info['numpy']}, {info['rustc']}, "
        f"Python {info['python']}. Run {info['date']} (load average at start {info['loadavg_start'][0]:.2f}, "
        f"at end {info['loadavg_end'][0]:.2f}).",
        "",
        "Median µs per call; ratio = torchjd / Concord at the same precision (> 1: Concord faster). "
        "Target (judged on float32, what torchjd users train with): ≥ 5× for the methods that solve "
        "a problem on the Gramian, ≥ 1× for Mean/Sum; float64 shown for information. "
        "‖Δd‖ = max|d_concord − d_torchjd,f64| / max|d_torchjd,f64| (Concord f32 / f64).",
        "",
        "| method | m | n | torchjd f32 µs | Concord f32 µs | ratio f32 | torchjd f64 µs | Concord f64 µs | ratio f64 | target | ‖Δd‖ f32 / f64 |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|",
    ]
    order = {name: i for i, (name, *_rest) in enumerate(METHODS)}
    rows = sorted(rows, key=lambda r: (order[r["method"]], r["m"], r["n"]))
    for r in rows:
        mark, _ = verdict(r["method"], r["ratio_f32"])
        lines.append(
            f"| {r['method']} | {r['m']} | {r['n']:.0e} | {r['torchjd_f32_us']:.1f} | {r['concord_f32_us']:.1f} | "
            f"{r['ratio_f32']:.1f} | {r['torchjd_f64_us']:.1f} | {r['concord_f64_us']:.1f} | {r['ratio_f64']:.1f} | "
            f"{mark} | {r['rel_diff_f32']:.1e} / {r['rel_diff_f64']:.1e} |"
        )
    lines += ["", "| method | target | holds at (m, n) | misses at (m, n) | ratio f32 min – max | ratio f64 min – max |", "|---|:-:|---|---|--:|--:|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method]
        _, target = verdict(method, 1.0)
        held = [f"({r['m']}, {r['n']:.0e})" for r in rs if verdict(method, r["ratio_f32"])[0] == "✔"]
        missed = [f"({r['m']}, {r['n']:.0e})" for r in rs if verdict(method, r["ratio_f32"])[0] == "✘"]
        if target == "none":
            held_s, missed_s = "no target", "–"
        else:
            held_s = "all" if not missed else (", ".join(held) or "none")
            missed_s = "none" if not missed else ", ".join(missed)
        lo, hi = min(r["ratio_f32"] for r in rs), max(r["ratio_f32"] for r in rs)
        lo64, hi64 = min(r["ratio_f64"] for r in rs), max(r["ratio_f64"] for r in rs)
        lines.append(f"| {method} | {target} | {held_s} | {missed_s} | {lo:.1f} – {hi:.1f} | {lo64:.1f} – {hi64:.1f} |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--concord", default="target/release/concord")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, help="threads for both torch (set_num_threads) and Concord (default: one per core)")
    p.add_argument("--methods", help="comma-separated Concord names (default: all)")
    a = p.parse_args()
    if not os.path.exists(a.concord):
        sys.exit(f"{a.concord} not found: run `cargo build --release -p concord-cli` first")

    ms, ns = [2, 4, 8], [1_000, 10_000, 100_000]
    warm, budget32, budget64 = 0.1, 0.8, 0.4
    if a.quick:
        ns, budget32, budget64 = [1_000, 10_000], 0.2, 0.1
    if a.threads:
        torch.set_num_threads(a.threads)
    threads = a.threads or os.cpu_count()
    info = machine_info()
    info["concord_threads"] = threads
    rows = []
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="concord-bench-") as tmp:
        for m in ms:
            for n in ns:
                j64 = np.random.default_rng(0).standard_normal((m, n)).astype(np.float32).astype(np.float64)
                path = os.path.join(tmp, f"j_{m}x{n}.csv")
                np.savetxt(path, j64, delimiter=",", fmt="%.17g")
                t32 = torch.from_numpy(j64.astype(np.float32))
                t64 = torch.from_numpy(j64)
                for name, params, make, m_min in METHODS:
                    if m < m_min or (a.methods and name not in a.methods.split(",")):
                        continue
                    pargs = [x for kv in params for x in ("--param", kv)]
                    agg32, agg64 = make(m), make(m)
                    with torch.no_grad():
                        tj32, calls32 = median_us(lambda: agg32(t32), warm, budget32)
                        tj64, calls64 = median_us(lambda: agg64(t64), warm, budget64)
                        ref = make(m)(t64).numpy()
                    c, rel = {}, {}
                    for prec in ("f32", "f64"):
                        common = [*pargs, "--input", path, "--precision", prec]
                        c[prec] = concord_json(a.concord, ["bench", "aggregate", "--method", name, *common,
                                                           "--threads", str(threads), "--json"])
                        assert (c[prec]["m"], c[prec]["n"], c[prec]["precision"]) == (m, n, prec), c[prec]
                        d = np.array(concord_json(a.concord, ["aggregate", "--method", name, *common])["update"])
                        rel[prec] = float(np.max(np.abs(d - ref)) / max(np.max(np.abs(ref)), 1e-300))
                    row = {
                        "method": name, "m": m, "n": n, "params": params,
                        "torchjd_f32_us": tj32, "torchjd_f32_calls": calls32,
                        "torchjd_f64_us": tj64, "torchjd_f64_calls": calls64,
                        "concord_f32_us": c["f32"]["median_us"], "concord_f32_calls": c["f32"]["calls"],
                        "concord_f64_us": c["f64"]["median_us"], "concord_f64_calls": c["f64"]["calls"],
                        "ratio_f32": tj32 / c["f32"]["median_us"], "ratio_f64": tj64 / c["f64"]["median_us"],
                        "rel_diff_f32": rel["f32"], "rel_diff_f64": rel["f64"],
                    }
                    rows.append(row)
                    print(f"{name:>13} m={m} n={n:>6}: f32 torchjd {tj32:9.1f} concord {row['concord_f32_us']:8.1f} "
                          f"({row['ratio_f32']:6.1f}x)  f64 torchjd {tj64:9.1f} concord {row['concord_f64_us']:8.1f} "
                          f"({row['ratio_f64']:6.1f}x)  Δd {rel['f32']:.1e}/{rel['f64']:.1e}", flush=True)
    info["loadavg_end"] = os.getloadavg()
    info["seconds"] = round(time.time() - t_start, 1)
    with open(a.out + ".json", "w") as f:
        json.dump({"machine": info, "rows": rows}, f, indent=1)
    with open(a.out + ".md", "w") as f:
        f.write(markdown(info, rows))
    print(f"wrote {a.out}.json and {a.out}.md in {info['seconds']} s")


if __name__ == "__main__":
    main()
