#!/usr/bin/python3
"""PyTorch CPU reference timings for the recipe CNN (extends /work/shared/bench/torch_seedcnn.py).

Times RecipeCNN(cin, 10) in eval mode under torch.no_grad() on torch.rand(B, cin, 28, 28) for
every combination of batch (default 1 and 64), threads (default 1 and 2) and mode. Threads are
set with torch.set_num_threads and, for the OpenBLAS that Debian's torch uses for Linear, with
openblas_set_num_threads (torch alone leaves OpenBLAS's own pool at all cores). Modes:
  plain    no hooks
  stats    a forward hook on every module (10 leaves) computing mean, std, min, max of its
           output (.item() each, as the anchor does)
  samples  stats hooks as above, plus samples [0, 2] (those < batch) of relu1, maxpool2 and fc1
           copied out of the tensor (index_select + numpy copy kept in a list; no disk I/O)
Prints one JSON line per config: {"batch", "threads", "mode", "ms_median", "ms_min",
"us_per_sample", "cpu_ms_median", "repeats", "iters", "cin", "blas", "torch"}. ms_* are wall time per forward
call (one batch); cpu_ms_median is the process CPU time per call (all threads), steadier than
wall time on a loaded machine for 1 thread (with 2 threads OpenMP spin-waiting inflates it).

With --go-bench FILE (output of `go test -bench ...`), also prints the ratio Go/PyTorch for
every benchmark line whose name carries batch and threads, e.g.
  BenchmarkRecipeCNN/batch=64/threads=2/mode=stats-2   100   4123456 ns/op
(`batch=N`/`batchN`, `threads=N`/`threadsN`, or the -GOMAXPROCS suffix for threads, no
suffix = 1, as in `go test ./nn -run '^$' -bench 'RecipeCNN$' -cpu 1,2`; the mode is "stats" or "samples" if the name
contains that word, else "plain"). A `cpu-ns/op` metric on the line adds a CPU-time ratio.

Usage: /usr/bin/python3 scripts/bench_torch.py [--batches 1,64] [--threads 1,2] [--cin 3]
                                               [--min-seconds 0.3] [--repeats 5] [--go-bench FILE]
"""
import argparse
import ctypes
import json
import re
import statistics
import sys
import time

import torch

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from models import RecipeCNN  # noqa: E402

SAMPLE_LAYERS = ("relu1", "maxpool2", "fc1")


def set_blas_threads(n):
    """Debian's torch calls the system BLAS (OpenBLAS, pthread flavour) for Linear, and OpenBLAS
    keeps its own thread pool that torch.set_num_threads does not control. Set it too, so that
    "threads 1" really uses one core. Returns a description of what was set."""
    for lib in (None, "libblas.so.3", "libopenblas.so.0"):
        try:
            h = ctypes.CDLL(lib)
            f = h.openblas_set_num_threads
        except (OSError, AttributeError):
            continue
        f(ctypes.c_int(n))
        try:
            return f"openblas {h.openblas_get_num_threads()} threads"
        except AttributeError:
            return f"openblas {n} threads"
    return "unknown (not OpenBLAS)"


def stats_hook(mod, inp, out):
    o = out.detach()
    _ = (o.mean().item(), o.std().item(), o.min().item(), o.max().item())


def add_hooks(model, mode, batch, sink):
    hs = []
    if mode in ("stats", "samples"):
        for name, mod in model.named_modules():
            if name:
                hs.append(mod.register_forward_hook(stats_hook))
    if mode == "samples":
        idx = torch.tensor([i for i in (0, 2) if i < batch])

        def sample_hook(mod, inp, out):
            sink.append(out.detach().index_select(0, idx).numpy().copy())

        for name in SAMPLE_LAYERS:
            hs.append(getattr(model, name).register_forward_hook(sample_hook))
    return hs


def time_config(model, x, min_seconds, repeats, sink):
    with torch.no_grad():
        t0 = time.perf_counter()  # warm-up: >= 10 calls and >= 0.2 s (oneDNN primitive caches)
        n = 0
        while n < 10 or time.perf_counter() - t0 < 0.2:
            model(x)
            n += 1
        sink.clear()
        # calibrate iterations so that one repeat takes >= min_seconds
        iters, t = 1, 0.0
        while True:
            t0 = time.perf_counter()
            for _ in range(iters):
                model(x)
            t = time.perf_counter() - t0
            sink.clear()
            if t >= min_seconds / 4:
                break
            iters *= 2
        iters = max(1, int(iters * min_seconds / max(t, 1e-9)))
        per, cpu = [], []
        for _ in range(repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(iters):
                model(x)
            per.append((time.perf_counter() - t0) / iters)
            cpu.append((time.process_time() - c0) / iters)
            sink.clear()
    return per, cpu, iters


def parse_go(path):
    out = []
    with open(path) as f:
        for line in f:
            m = re.match(r"^(Benchmark\S+)\s+\d+\s+([\d.]+) ns/op", line)
            if not m:
                continue
            name, ns = m.group(1), float(m.group(2))
            c = re.search(r"\s([\d.]+) cpu-ns/op", line)
            cpu_ms = float(c.group(1)) / 1e6 if c else None
            b = re.search(r"batch[=_]?(\d+)", name)
            t = re.search(r"threads[=_]?(\d+)", name) or re.search(r"-(\d+)$", name)
            if not b:
                continue
            threads = int(t.group(1)) if t else 1  # go test omits the suffix when GOMAXPROCS=1
            mode = "samples" if "sample" in name else "stats" if "stats" in name else "plain"
            out.append((name, int(b.group(1)), threads, mode, ns / 1e6, cpu_ms))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--modes", default="plain,stats,samples")
    ap.add_argument("--cin", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=0.3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--go-bench")
    a = ap.parse_args()
    torch.manual_seed(0)
    model = RecipeCNN(a.cin, 10).eval()
    res = {}
    for threads in [int(v) for v in a.threads.split(",")]:
        torch.set_num_threads(threads)
        blas = set_blas_threads(threads)
        for batch in [int(v) for v in a.batches.split(",")]:
            x = torch.rand(batch, a.cin, 28, 28)
            for mode in a.modes.split(","):
                sink = []
                hs = add_hooks(model, mode, batch, sink)
                per, cpu, iters = time_config(model, x, a.min_seconds, a.repeats, sink)
                for h in hs:
                    h.remove()
                med = statistics.median(per)
                cmed = statistics.median(cpu)
                res[(batch, threads, mode)] = (med * 1e3, cmed * 1e3)
                print(json.dumps({"batch": batch, "threads": threads, "mode": mode,
                                  "ms_median": round(med * 1e3, 4), "ms_min": round(min(per) * 1e3, 4),
                                  "us_per_sample": round(med * 1e6 / batch, 2),
                                  "cpu_ms_median": round(cmed * 1e3, 4),
                                  "repeats": a.repeats, "iters": iters, "cin": a.cin, "blas": blas,
                                  "torch": torch.__version__}), flush=True)
    if a.go_bench:
        for name, b, t, mode, ms, cpu_ms in parse_go(a.go_bench):
            ref = res.get((b, t, mode))
            if ref is None:
                continue
            r = {"go_benchmark": name, "batch": b, "threads": t, "mode": mode,
                 "go_ms": round(ms, 4), "torch_ms": round(ref[0], 4),
                 "ratio_go_over_torch": round(ms / ref[0], 3)}
            if cpu_ms is not None:
                r.update(go_cpu_ms=round(cpu_ms, 4), torch_cpu_ms=round(ref[1], 4),
                         cpu_ratio_go_over_torch=round(cpu_ms / ref[1], 3))
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
