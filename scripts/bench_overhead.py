#!/usr/bin/python3
"""The recorder's overhead next to PyTorch's hooks, in the same window (issue 4).

Alternates, for --rounds rounds, one run of the PyTorch anchor (../shared/bench/torch_seedcnn.py:
the recipe CNN at batch 64, plain vs forward hooks computing mean/std/min/max of relu1,
maxpool2 and fc1) with one run of the Go benchmark BenchmarkOverheadStream at one inference
thread (the anchor's default) for the configurations below, and prints every round's
overhead and the medians, plus Go's overhead divided by PyTorch's for the same stats.

  anchor-moments   the anchor's work: mean/std/min/max (+ count, L2, zeros, NaN, Inf) of
                   relu1, maxpool2, fc1, in hooks
  anchor-stats     the full statistics (with histogram and percentiles) of the same layers
  stats-all        the full statistics of every layer, in hooks (the library default)
  workers-all      the same, StatsInWorkers (the other core computes them; actrec --threads 1)
  workers-samples  + samples 0 and 2 of relu1, maxpool2, fc1, StatsInWorkers

Wall-clock overhead; the machine is shared, so compare only figures of the same round.
Usage: /usr/bin/python3 scripts/bench_overhead.py [--rounds 3] [--anchor PATH] [--benchtime 20x]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

CONFIGS = {
    "anchor-moments": "anchor-moments-relu1,maxpool2,fc1",
    "anchor-stats": "anchor-stats-relu1,maxpool2,fc1",
    "stats-all": "stats-all-layers",
    "workers-all": "stats-in-workers-all-layers",
    "workers-samples": "stats-in-workers+samples-0,2-relu1,maxpool2,fc1",
}


def go_round(root, benchtime):
    pattern = "OverheadStream/threads=1/(" + "|".join(re.escape(v) + "$" for v in CONFIGS.values()) + ")"
    out = subprocess.run(
        ["go", "test", "-run", "XXX", "-bench", pattern, "-benchtime", benchtime, "-count", "1", "./recorder"],
        cwd=root, check=True, capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        m = re.match(r"BenchmarkOverheadStream/threads=1/(\S+)-\d+\s", line)
        o = re.search(r"([-0-9.]+) overhead-%", line)
        if m and o:
            for k, v in CONFIGS.items():
                if v == m.group(1):
                    res[k] = float(o.group(1))
    missing = set(CONFIGS) - set(res)
    if missing:
        sys.exit(f"bench_overhead: no figure for {sorted(missing)} in:\n{out}")
    return res


def torch_round(anchor):
    out = subprocess.run([sys.executable, anchor, "64", "50", "1"], check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return {"torch-plain-ms": r["plain_ms"], "torch-stats": 100 * (r["stats_hook_ms"] / r["plain_ms"] - 1)}


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--anchor", default=os.path.join(root, "..", "shared", "bench", "torch_seedcnn.py"))
    ap.add_argument("--benchtime", default="20x")
    a = ap.parse_args()
    cols = ["torch-plain-ms", "torch-stats"] + list(CONFIGS)
    print("round " + " ".join(f"{c:>15}" for c in cols))
    rows = []
    for i in range(a.rounds):
        row = torch_round(a.anchor)
        row.update(go_round(root, a.benchtime))
        rows.append(row)
        print(f"{i:5d} " + " ".join(f"{row[c]:15.2f}" for c in cols), flush=True)
    med = {c: statistics.median(r[c] for r in rows) for c in cols}
    print("  med " + " ".join(f"{med[c]:15.2f}" for c in cols))
    ratios = [r["anchor-moments"] / r["torch-stats"] for r in rows if r["torch-stats"] > 0]
    if ratios:
        print(f"Go / PyTorch overhead for the anchor's stats (per round): "
              + ", ".join(f"{x:.2f}" for x in ratios))


if __name__ == "__main__":
    main()
