#!/usr/bin/env python3
"""numpy baseline for BenchmarkDiff: the same error metrics as query.Diff,
computed in float64 from two .npy files in one streaming pass.

    ACTREC_BENCH_DIFF_MB=1024 ACTREC_BENCH_DIR=/tmp/bench ACTREC_BENCH_NPY_DIR=/tmp/bench \
        go test -run XXX -bench 'Diff$' -benchtime 3x ./query
    /usr/bin/python3 query/testdata/bench_diff_numpy.py /tmp/bench/a.npy /tmp/bench/b.npy --atol 1e-2

Needs only numpy (Debian: python3-numpy). Prints the metrics (to compare
with actquery diff --json) and the throughput in GB/s of one file's bytes,
like the Go benchmark. The files are memory-mapped and processed in chunks
of --chunk elements so that memory stays bounded, as in the Go code.
"""
import argparse
import math
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--atol", type=float, default=0.0)
    ap.add_argument("--rtol", type=float, default=0.0)
    ap.add_argument("--chunk", type=int, default=1 << 18)  # cache-sized: numpy is fastest so
    args = ap.parse_args()

    t0 = time.perf_counter()
    a = np.load(args.a, mmap_mode="r").reshape(-1)
    b = np.load(args.b, mmap_mode="r").reshape(-1)
    if a.shape != b.shape:
        raise SystemExit(f"shape mismatch {a.shape} {b.shape}")
    n = a.size
    s_abs = s_sq = s_a2 = s_b2 = s_ab = 0.0
    mx = 0.0
    outside = 0
    for lo in range(0, n, args.chunk):
        x = np.asarray(a[lo:lo + args.chunk], dtype=np.float64)
        y = np.asarray(b[lo:lo + args.chunk], dtype=np.float64)
        d = np.abs(x - y)
        s_abs += d.sum()
        s_sq += np.dot(d, d)
        s_a2 += np.dot(x, x)
        s_b2 += np.dot(y, y)
        s_ab += np.dot(x, y)
        mx = max(mx, float(d.max(initial=0.0)))
        outside += int(np.count_nonzero(d > args.atol + args.rtol * np.abs(y)))
    dt = time.perf_counter() - t0

    sqnr = math.inf if s_sq == 0 else 10 * math.log10(s_b2 / s_sq)
    cos = 1.0 if s_a2 == 0 and s_b2 == 0 else s_ab / math.sqrt(s_a2 * s_b2)
    print(f"n={n} max_abs_err={mx!r} mean_abs_err={s_abs / n!r} rmse={math.sqrt(s_sq / n)!r}")
    print(f"rel_l2={math.sqrt(s_sq) / math.sqrt(s_b2)!r} cosine={cos!r} sqnr_db={sqnr!r} "
          f"outside_frac={outside / n!r}")
    gb = a.nbytes / 1e9
    print(f"numpy: {gb:.3f} GB per run in {dt:.3f} s = {gb / dt:.3f} GB/s")


if __name__ == "__main__":
    main()
