#!/usr/bin/env python3
"""CPU benchmark: Concord's training step against a PyTorch + torchjd 0.18 training loop.

What it measures
    Training steps per second of one shared-trunk multi-task model, trained with Adam on
    mini-batches, for four shapes x four aggregators (Mean, UPGrad, MGDA, PCGrad), in one
    invocation on one machine:
      * Concord f64: `concord bench train --precision f64 --json` (the CPU reference trainer);
      * Concord f32: `concord bench train --precision f32 --json` (the fast path, the default);
      * PyTorch + torchjd: a plain training loop in this process, torch.float32: forward through
        the trunk and the heads, the per-task losses, torchjd.autojac.mtl_backward (the Jacobian
        of the losses w.r.t. the shared trunk into its parameters' .jac, the heads' own gradients
        into their .grad), torchjd.autojac.jac_to_grad with the aggregator (the aggregated
        update into the trunk's .grad), optimizer.step() (torch.optim.Adam), zero_grad.
    The shapes, read from Concord's own configs so that both sides build the same model:
      xor-conflict      2 -> 8 -> 8 tanh,   2 heads x 1 (BCE), batch 50,  Adam lr 0.01
      sinusoid-phases   1 -> 32 -> 32 tanh, 3 heads x 1 (MSE), batch 50,  Adam lr 0.01
      gradnorm-scales   50 -> 64 -> 64 relu, 2 heads x 10 (MSE), batch 100, Adam lr 0.001
      wide-trunk        2 -> 64 -> 64 tanh, 4 heads x 1 (BCE), batch 256, Adam lr 0.01
    (the first three are `concord train --preset P`; wide-trunk is bench/wide-trunk.json, four
    Playground tasks on 2048 points, 1024 for training: 4 batches of 256 per epoch, passed with
    --config).
    Each Concord run is `Trainer::step` in a loop (its warm-up steps untimed), which includes what
    the trainer does every step besides the update: drawing the batch from the data set, the
    per-step metrics (task cosines, the step record) and the test losses every 10th step
    (eval_every = 10). The PyTorch loop is given one fixed pre-sampled batch of the same shape
    (no data loading, no metrics, no evaluation): the comparison favours PyTorch.
    Each (shape, method, side) is timed --repeats times, interleaved (f64, f32, torch, f64, ...)
    so that a slow spell on the machine hits all three alike; the median steps/s is reported.
    The number of timed steps is chosen from a short pilot so that one timed run lasts about
    --seconds (at least 20 steps); warm-up steps (--warmup) are never timed.
    Threads: PyTorch runs with its default intra-op thread count (torch.get_num_threads(),
    reported; one per core) unless --torch-threads N; Concord's trainer runs as `concord bench
    train` runs it (its own default).
    Ratios: fast / torch (the issue's target: >= 10x on every row), f64 / torch, fast / f64.

How to run (from the repository root)
    cargo build --release -p concord-cli      # the binary this script times
    /work/benchenv/bin/python bench/train_vs_torchjd.py
    # options: --concord PATH (default $CONCORD_BIN or target/release/concord),
    #          --out bench/train-results (writes OUT.json, OUT.md, OUT.png),
    #          --quick (short runs, one repeat: a smoke test; do not publish its figures),
    #          --repeats 3, --seconds 1.0, --warmup 20, --shapes xor-conflict,wide-trunk,
    #          --methods mean,upgrad
    It needs torch, torchjd 0.18 and matplotlib (the venv /work/benchenv has them). A full run
    takes about 5 minutes on 2 cores. Run it on an idle machine (check `uptime`): other processes
    inflate both columns, unevenly; the load average at the start and the CPU time other
    processes used during each row (in cores) are recorded.
    Any failed run (a Concord error, a non-finite PyTorch loss) stops the script with a non-zero
    exit status.
"""

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torchjd.aggregation as A
from torchjd.autojac import jac_to_grad, mtl_backward

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, where the config comes from: a preset name or a config file under the repo root)
SHAPES = [
    ("xor-conflict", {"preset": "xor-conflict"}),
    ("sinusoid-phases", {"preset": "sinusoid-phases"}),
    ("gradnorm-scales", {"preset": "gradnorm-scales"}),
    ("wide-trunk", {"config": "bench/wide-trunk.json"}),
]

METHODS = {
    "mean": A.Mean,
    "upgrad": A.UPGrad,
    "mgda": A.MGDA,
    "pcgrad": A.PCGrad,
}

TARGET = 10.0  # the target: fast / torch >= 10 on every row


class BenchError(RuntimeError):
    pass


def run_concord(binary, args):
    out = subprocess.run([binary, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise BenchError(f"concord {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError as e:
        raise BenchError(f"concord {' '.join(args)} printed no JSON: {e}: {out.stdout[:200]!r}") from e


def shape_config(binary, source, tmp):
    """The TrainConfig Concord trains for this shape (a preset's own, or the file's)."""
    if "config" in source:
        with open(os.path.join(ROOT, source["config"])) as f:
            return json.load(f)
    path = os.path.join(tmp, f"{source['preset']}.json")
    out = subprocess.run(
        [binary, "train", "--preset", source["preset"], "--steps", "1", "--out", path], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise BenchError(f"concord train --preset {source['preset']}: {out.stderr.strip()}")
    with open(path) as f:
        return json.load(f)["config"]


def describe(config):
    m = config["model"]
    heads = m["heads"]
    if len({(h["out_dim"], h["loss"]) for h in heads}) != 1:
        raise BenchError("the heads differ; this script builds identical heads")
    trunk = " -> ".join(str(w) for w in [m["input_dim"], *m["hidden"]])
    h = heads[0]
    return f"{trunk} {m['activation']}, {len(heads)} x {h['out_dim']} ({h['loss'].upper()}), batch {config['batch_size']}"


# ---------------------------------------------------------------------------- PyTorch + torchjd


class TorchLoop:
    """The shape's model in torch.float32, one fixed batch, Adam and the aggregator."""

    def __init__(self, config, method, seed=0):
        m = config["model"]
        opt = config["optimizer"]
        if config.get("moe") is not None:
            raise BenchError("MoE configs are not supported here")
        if opt["optimizer"] != "adam":
            raise BenchError(f"optimizer {opt['optimizer']}: this script builds Adam only")
        if config.get("batch_size") is None:
            raise BenchError("full-batch configs are not supported here")
        act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[m["activation"]]
        torch.manual_seed(seed)
        layers, width = [], m["input_dim"]
        for w in m["hidden"]:
            layers += [torch.nn.Linear(width, w), act()]
            width = w
        self.trunk = torch.nn.Sequential(*layers)
        self.heads = torch.nn.ModuleList(torch.nn.Linear(width, h["out_dim"]) for h in m["heads"])
        b = config["batch_size"]
        self.x = torch.randn(b, m["input_dim"])
        self.targets, self.loss_fns = [], []
        for h in m["heads"]:
            if h["loss"] == "bce":
                self.targets.append(torch.randint(0, 2, (b, h["out_dim"])).float())
                self.loss_fns.append(torch.nn.functional.binary_cross_entropy_with_logits)
            elif h["loss"] == "mse":
                self.targets.append(torch.randn(b, h["out_dim"]))
                self.loss_fns.append(torch.nn.functional.mse_loss)
            else:
                raise BenchError(f"loss {h['loss']}: not supported here")
        self.shared = list(self.trunk.parameters())
        self.optimizer = torch.optim.Adam(
            [*self.shared, *self.heads.parameters()],
            lr=opt["lr"],
            betas=(opt["beta1"], opt["beta2"]),
            eps=opt["eps"],
        )
        self.aggregator = METHODS[method]()
        self.last_losses = None

    def step(self):
        self.optimizer.zero_grad(set_to_none=True)
        features = self.trunk(self.x)
        losses = [f(head(features), y) for head, f, y in zip(self.heads, self.loss_fns, self.targets)]
        mtl_backward(losses, features=features)
        jac_to_grad(self.shared, self.aggregator)
        self.optimizer.step()
        self.last_losses = losses

    def check(self):
        values = [float(l.detach()) for l in self.last_losses]
        if not all(math.isfinite(v) for v in values):
            raise BenchError(f"PyTorch loop: non-finite losses {values}")
        return values

    def timed(self, steps):
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        return time.perf_counter() - start


def torch_run(config, method, warmup, seconds):
    loop = TorchLoop(config, method)
    for _ in range(warmup):
        loop.step()
    pilot = max(10, warmup)
    rate = pilot / loop.timed(pilot)
    steps = max(20, int(rate * seconds))
    return loop, steps


# ---------------------------------------------------------------------------- the run


class OtherLoad:
    """CPU time used by everything but this script and its children (cores busy on average)
    since start(): /proc/stat's busy time minus os.times(). The load average cannot say this
    while the benchmark itself keeps one or two cores busy."""

    def __init__(self):
        self.hz = os.sysconf("SC_CLK_TCK")
        self.start()

    def _read(self):
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / self.hz  # user nice system irq softirq steal
        t = os.times()
        return busy, t.user + t.system + t.children_user + t.children_system, time.monotonic()

    def start(self):
        self.t0 = self._read()

    def cores(self):
        busy, mine, now = self._read()
        return max(0.0, ((busy - self.t0[0]) - (mine - self.t0[1])) / max(now - self.t0[2], 1e-9))


def concord_args(source, method, precision, steps, warmup):
    where = ["--preset", source["preset"]] if "preset" in source else ["--config", os.path.join(ROOT, source["config"])]
    return [
        "bench", "train", *where, "--method", method, "--precision", precision,
        "--steps", str(steps), "--warmup", str(warmup), "--json",
    ]  # fmt: skip


def concord_steps(binary, source, method, precision, warmup, seconds):
    pilot = run_concord(binary, concord_args(source, method, precision, 20, warmup))
    return max(20, int(pilot["steps_per_second"] * seconds))


def machine_info(binary):
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    git = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "crates"], capture_output=True, text=True)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchjd": importlib.metadata.version("torchjd"),
        "concord": binary,
        "concord_built": datetime.datetime.fromtimestamp(os.path.getmtime(binary), datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "git_head": git.stdout.strip(),
        "crates_modified": bool(dirty.stdout.strip()),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": os.getloadavg(),
    }


def fmt_rate(v):
    return f"{v:,.0f}".replace(",", " ") if v >= 100 else f"{v:.1f}"


def fmt_ratio(v):
    return f"{v:.1f}×" if v < 100 else f"{v:.0f}×"


def markdown(info, shapes, rows, command):
    out = [
        "# Training: Concord vs PyTorch + torchjd",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores; {info['date']}; load average at start "
        f"{info['loadavg_start'][0]:.2f}; other processes used {info['other_cores']:.2f} cores on average during "
        f"the run (at most {max(r['other_cores'] for r in rows):.2f} during one row).",
        f"PyTorch {info['torch']} ({info['torch_threads']} intra-op threads"
        + (", the default" if info["torch_threads_default"] else ", set by --torch-threads")
        + f"), torchjd {info['torchjd']}, "
        f"Python {info['python']}; Concord at {info['git_head']}"
        + (" (with uncommitted changes under crates/)" if info["crates_modified"] else "")
        + f", binary built {info['concord_built']}.",
        f"Command: `{command}`. Median of {info['repeats']} interleaved timed runs of ≈ {info['seconds']} s each.",
        "",
        "Shapes: " + "; ".join(f"{name}: {desc}" for name, desc in shapes) + ".",
        "",
        "| shape | method | PyTorch + torchjd | Concord f64 | Concord f32 (fast) | fast / torch | f64 / torch | fast / f64 |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        mark = "" if r["fast_over_torch"] >= TARGET else " ✘"
        out.append(
            f"| {r['shape']} | {r['method']} | {fmt_rate(r['torch'])} | {fmt_rate(r['f64'])} | {fmt_rate(r['f32'])} "
            f"| **{fmt_ratio(r['fast_over_torch'])}**{mark} | {fmt_ratio(r['f64_over_torch'])} | {fmt_ratio(r['fast_over_f64'])} |"
        )
    methods = list(dict.fromkeys(r["method"] for r in rows))
    out += [
        "",
        "steps/s (median). ✘: below the 10× target.",
        "",
        "fast / torch:",
        "",
        "| shape | " + " | ".join(methods) + " |",
        "|---|" + "--:|" * len(methods),
    ]
    for name, _ in shapes:
        cells = [fmt_ratio(r["fast_over_torch"]) for m in methods for r in rows if r["shape"] == name and r["method"] == m]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def plot(rows, shapes, methods, path, info):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.4), dpi=120)
    width = 0.8 / len(methods)
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    for j, m in enumerate(methods):
        xs, fast, ref = [], [], []
        for i, (name, _) in enumerate(shapes):
            r = next(r for r in rows if r["shape"] == name and r["method"] == m)
            xs.append(i + (j - (len(methods) - 1) / 2) * width)
            fast.append(r["fast_over_torch"])
            ref.append(r["f64_over_torch"])
        bars = ax.bar(xs, fast, width * 0.92, color=colors[j % len(colors)], label=f"{m}: f32 (fast) / torch")
        ax.scatter(xs, ref, marker="_", s=160, color="black", zorder=3, label="f64 (reference) / torch" if j == 0 else None)
        for b, v in zip(bars, fast):
            ax.annotate(f"{v:.1f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=7)
    ax.axhline(TARGET, color="crimson", linestyle="--", linewidth=1.2, label="target 10×")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(shapes)))
    ax.set_xticklabels([name for name, _ in shapes])
    ax.set_ylabel("steps/s ratio: Concord / (PyTorch + torchjd)")
    ax.set_title(
        f"Training steps/s, Concord vs PyTorch {info['torch'].split('+')[0]} + torchjd {info['torchjd']} "
        f"({info['cores']} cores)",
        fontsize=10,
    )
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.09))
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--concord", default=os.environ.get("CONCORD_BIN", os.path.join(ROOT, "target/release/concord")))
    p.add_argument("--out", help="output path stem (default bench/train-results; --quick: a temp folder)")
    p.add_argument("--quick", action="store_true", help="a smoke run: short timings, one repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.0, help="length of one timed run")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--shapes", default=",".join(n for n, _ in SHAPES))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument(
        "--built-from", help="the commit the binary was built from (default: this checkout's HEAD, marked if crates/ has changes)"
    )
    p.add_argument("--torch-threads", type=int, help="torch.set_num_threads(N) (default: torch's own, one per core)")
    a = p.parse_args()
    if a.torch_threads is not None:
        torch.set_num_threads(a.torch_threads)
    if a.quick:
        a.repeats, a.seconds, a.warmup = 1, 0.05, 5
    if a.out is None:
        a.out = os.path.join(tempfile.gettempdir(), "train-results-quick") if a.quick else os.path.join(ROOT, "bench/train-results")
    if not os.access(a.concord, os.X_OK):
        sys.exit(f"no concord binary at {a.concord}: cargo build --release -p concord-cli (or --concord PATH)")
    shapes = [(n, s) for n, s in SHAPES if n in a.shapes.split(",")]
    methods = [m for m in a.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS] + [
        s for s in a.shapes.split(",") if s not in {n for n, _ in SHAPES}
    ]
    if unknown or not shapes or not methods:
        sys.exit(f"unknown or empty --shapes/--methods: {unknown}")

    info = machine_info(a.concord)
    if a.built_from:
        info.update(git_head=a.built_from, crates_modified=False)
    info.update(
        repeats=a.repeats, seconds=a.seconds, warmup=a.warmup, quick=a.quick, torch_threads_default=a.torch_threads is None
    )
    if info["loadavg_start"][0] > 1.2:
        print(f"warning: load average {info['loadavg_start'][0]:.2f} at the start: the machine is busy", file=sys.stderr)
    print(
        f"{info['cpu']}, {info['cores']} cores; torch {info['torch']} with {info['torch_threads']} threads "
        f"(default), torchjd {info['torchjd']}; concord {a.concord}"
    )

    rows, described = [], []
    other = OtherLoad()
    total_other = OtherLoad()
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in shapes:
            config = shape_config(a.concord, source, tmp)
            described.append((name, describe(config)))
            print(f"\n{name}: {described[-1][1]}")
            for method in methods:
                other.start()
                runs = {"f64": [], "f32": [], "torch": []}
                steps = {
                    prec: concord_steps(a.concord, source, method, prec, a.warmup, a.seconds) for prec in ("f64", "f32")
                }
                loop, steps["torch"] = torch_run(config, method, a.warmup, a.seconds)
                for _ in range(a.repeats):
                    for prec in ("f64", "f32"):
                        v = run_concord(a.concord, concord_args(source, method, prec, steps[prec], a.warmup))
                        if v["precision"] != prec or v["steps"] != steps[prec]:
                            raise BenchError(f"concord reported {v}")
                        runs[prec].append(v["steps_per_second"])
                    runs["torch"].append(steps["torch"] / loop.timed(steps["torch"]))
                losses = loop.check()
                med = {k: statistics.median(v) for k, v in runs.items()}
                row = {
                    "shape": name,
                    "method": method,
                    "torch": med["torch"],
                    "f64": med["f64"],
                    "f32": med["f32"],
                    "fast_over_torch": med["f32"] / med["torch"],
                    "f64_over_torch": med["f64"] / med["torch"],
                    "fast_over_f64": med["f32"] / med["f64"],
                    "timed_steps": steps,
                    "runs": runs,
                    "torch_final_losses": losses,
                    "other_cores": other.cores(),
                }
                rows.append(row)
                print(
                    f"  {method:7s} torch {fmt_rate(med['torch']):>8} | f64 {fmt_rate(med['f64']):>8} | "
                    f"f32 {fmt_rate(med['f32']):>8} steps/s | fast/torch {fmt_ratio(row['fast_over_torch']):>6}  "
                    f"f64/torch {fmt_ratio(row['f64_over_torch']):>6}  fast/f64 {fmt_ratio(row['fast_over_f64']):>6}"
                    f"  (others {row['other_cores']:.2f} cores)"
                )

    info["loadavg_end"] = os.getloadavg()
    info["other_cores"] = total_other.cores()
    command = "python bench/train_vs_torchjd.py " + " ".join(sys.argv[1:])
    with open(a.out + ".json", "w") as f:
        json.dump({"info": info, "shapes": dict(described), "rows": rows}, f, indent=1)
    md = markdown(info, described, rows, command.strip())
    with open(a.out + ".md", "w") as f:
        f.write(md)
    plot(rows, described, methods, a.out + ".png", info)
    print("\n" + md)
    print(f"wrote {a.out}.json, {a.out}.md, {a.out}.png")
    below = [f"{r['shape']}/{r['method']}" for r in rows if r["fast_over_torch"] < TARGET]
    if below:
        print(f"below the {TARGET:.0f}x target: {', '.join(below)}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        sys.exit(f"train_vs_torchjd: error: {e}")
