#!/usr/bin/env python3
"""The same 2-D landscape slice as `concord bench landscape`, as a plain PyTorch CPU loop.

For every grid point (α, β) it sets p = θ + α·δ + β·η into a torch MLP and evaluates the mean
MSE of both heads over all samples under `torch.no_grad()`: the loop `plot_surface.py` runs.
It reads the exact inputs `concord bench landscape --dump FILE` wrote (θ, δ, η, x, targets,
and Concord's surface), times the loop, and reports the largest difference to Concord's values.

    concord bench landscape --dump /tmp/landscape.json
    python bench/landscape_torch.py /tmp/landscape.json [--dtype float64|float32] [--repeats 3] [--threads N]
"""
import argparse
import json
import time

import numpy as np
import torch


def build(doc, dtype):
    dims = [doc["input_dim"], *doc["hidden"]]
    trunk = [torch.nn.Linear(a, b, dtype=dtype) for a, b in zip(dims[:-1], dims[1:])]
    heads = [torch.nn.Linear(dims[-1], doc["output_dim"], dtype=dtype) for _ in range(doc["heads"])]
    # Concord's flat layout: trunk layers then heads, each W (fan_out × fan_in, row-major) then b.
    params = [t for layer in trunk + heads for t in (layer.weight, layer.bias)]
    return trunk, heads, params


def set_flat(params, flat):
    off = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(flat[off:off + n].view_as(p))
            off += n
    assert off == flat.numel()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    doc = json.load(open(args.dump))
    trunk, heads, params = build(doc, dtype)
    theta, delta, eta = (torch.tensor(doc[k], dtype=dtype) for k in ("theta", "delta", "eta"))
    x = torch.tensor(doc["x"], dtype=dtype)
    ys = [torch.tensor(t, dtype=dtype) for t in doc["targets"]]
    n = doc["grid"]
    coords = np.linspace(-1.0, 1.0, n)
    mse = torch.nn.MSELoss()

    def slice_once():
        out = np.empty((len(heads), n * n))
        with torch.no_grad():
            for j, b in enumerate(coords):  # meshgrid(x, y).ravel(): α fastest
                for i, a in enumerate(coords):
                    set_flat(params, theta + float(a) * delta + float(b) * eta)
                    h = x
                    for layer in trunk:
                        h = torch.relu(layer(h))
                    for t, head in enumerate(heads):
                        out[t, j * n + i] = mse(head(h), ys[t]).item()
        return out

    times = []
    cpu0 = time.process_time()
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = slice_once()
        times.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / args.repeats
    times.sort()
    ref = np.array(doc["surface_tasks"])
    rel = float(np.max(np.abs(out - ref) / np.maximum(np.abs(ref), 1e-300)))
    result = {
        "seconds_min": times[0], "seconds_median": times[len(times) // 2], "repeats": args.repeats,
        "cpu_seconds_per_run": cpu, "dtype": args.dtype, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "params": int(theta.numel()), "points": int(x.shape[0]), "grid": n,
        "max_rel_diff_to_concord": rel,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"torch {args.dtype} slice {n}x{n}, {result['params']} params, {result['points']} points, "
              f"{result['threads']} threads: min {times[0]:.3f} s, median {result['seconds_median']:.3f} s, "
              f"CPU time {cpu:.3f} s per run; "
              f"max relative difference to Concord {rel:.2e}")


if __name__ == "__main__":
    main()
