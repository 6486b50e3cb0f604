#!/usr/bin/env python3
"""Load actquery exports with the usual Python libraries.

Needs only numpy and pandas (Debian: apt install python3-numpy python3-pandas).
Parquet and Arrow files are loaded too when pyarrow is importable; Debian 12
ships no python3-pyarrow package, so there they are skipped (pip install
pyarrow, or query the Parquet dataset with DuckDB).

Make the exports first, e.g.:

    actquery export RUN --format npz   --out run.npz
    actquery export RUN --format npy   --out conv1.npy --layer conv1
    actquery export RUN --format csv   --out stats.csv
    actquery export RUN --format jsonl --out stats.jsonl
    actquery export RUN --format parquet --out dataset/       # Hive: run=RUN/layer=L/part-0.parquet
    actquery export RUN --format arrow --out conv1.arrow --layer conv1

then print the first values of one sample and the stats of its batch from
every file given:

    python3 load_exports.py --layer conv1 --batch 1 --sample 0 \
        --npz run.npz --npy conv1.npy --csv stats.csv --jsonl stats.jsonl \
        --parquet dataset/ --arrow conv1.arrow

Output lines (compared by the Go test TestNotebookCheck with `actquery show`):

    VALUES <source> <dataset_index> <v0> <v1> ...
    STATS <source> <count> <mean> <std> <min> <max>
    SKIP <source>: <reason>
"""
import argparse
import json
import sys

import numpy as np
import pandas as pd


def fmt(values):
    # str() of a numpy float32 is its shortest round-trip form, like Go's
    # strconv.FormatFloat(v, 'g', -1, 32).
    return " ".join(str(v) for v in np.asarray(values, dtype=np.float32).ravel())


def row_index(batch, sample, want_batch, want_sample):
    hits = np.nonzero((batch == want_batch) & (sample == want_sample))[0]
    if len(hits) == 0:
        sys.exit(f"batch {want_batch} sample {want_sample} not in the export")
    return int(hits[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layer", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--sample", type=int, default=0)
    ap.add_argument("--values", type=int, default=16, help="leading values to print (-1: all)")
    ap.add_argument("--npz")
    ap.add_argument("--npy", help="an npy export of --layer (rows in the same order as the npz)")
    ap.add_argument("--csv")
    ap.add_argument("--jsonl")
    ap.add_argument("--parquet", help="a .parquet file or a Hive-partitioned dataset directory")
    ap.add_argument("--arrow")
    a = ap.parse_args()
    L, k = a.layer, (a.values if a.values >= 0 else None)

    row = None
    if a.npz:
        z = np.load(a.npz)  # keys: L, L.batch, L.sample, L.dataset_index
        data = z[L]  # float32, shape (n, *per-sample shape)
        row = row_index(z[L + ".batch"], z[L + ".sample"], a.batch, a.sample)
        print("VALUES npz", int(z[L + ".dataset_index"][row]), fmt(data[row].ravel()[:k]))
    if a.npy:
        if row is None:
            sys.exit("--npy needs --npz to locate the row (npy holds the tensor array only)")
        data = np.load(a.npy, mmap_mode="r")  # memory-mapped: data is 64-byte aligned
        print("VALUES npy", int(z[L + ".dataset_index"][row]), fmt(data[row].ravel()[:k]))
    if a.csv:
        df = pd.read_csv(a.csv, float_precision="round_trip")  # exact float64
        r = df[(df.layer == L) & (df.batch == a.batch)].iloc[0]
        print("STATS csv", int(r["count"]), repr(float(r["mean"])), repr(float(r["std"])),
              repr(float(r["min"])), repr(float(r["max"])))
    if a.jsonl:
        # precise_float: pandas' default JSON float parser is off in the last digits.
        df = pd.read_json(a.jsonl, lines=True, precise_float=True)
        r = df[(df.layer == L) & (df.batch == a.batch)].iloc[0]
        print("STATS jsonl", int(r["count"]), repr(float(r["mean"])), repr(float(r["std"])),
              repr(float(r["min"])), repr(float(r["max"])))
    if a.parquet or a.arrow:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            for src in ("parquet", "arrow"):
                if getattr(a, src):
                    print(f"SKIP {src}: pyarrow is not importable (Debian 12 has no python3-pyarrow)")
            return
    if a.parquet:
        df = pd.read_parquet(a.parquet)  # a dataset directory adds run and layer columns
        if "layer" in df.columns:
            df = df[df.layer.astype(str) == L]
        r = df[(df.batch == a.batch) & (df["sample"] == a.sample)].iloc[0]
        print("VALUES parquet", int(r["dataset_index"]), fmt(np.asarray(r["tensor"])[:k]))
    if a.arrow:
        import pyarrow as pa
        with pa.memory_map(a.arrow) as src:
            t = pa.ipc.open_file(src).read_all()
        i = row_index(t.column("batch").to_numpy(), t.column("sample").to_numpy(), a.batch, a.sample)
        col = t.column("tensor").combine_chunks()
        if hasattr(col, "to_numpy_ndarray"):  # pyarrow >= 12: arrow.fixed_shape_tensor
            arr = col.to_numpy_ndarray()  # (n, *shape)
        else:
            arr = col.storage.flatten().to_numpy().reshape(len(t), -1)
        print("VALUES arrow", int(t.column("dataset_index")[i].as_py()), fmt(arr[i].ravel()[:k]))

if __name__ == "__main__":
    main()
