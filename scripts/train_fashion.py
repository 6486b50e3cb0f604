#!/usr/bin/python3
"""Train the recipe CNN, RecipeCNN(1, 10), on Fashion-MNIST with PyTorch on CPU and ship it.

Reads the training and test sets from Debian's dataset-fashion-mnist package
(/usr/share/datasets/fashion-mnist, override with --data). Writes into testdata/models/:
  recipe-cnn-v1.safetensors       v1: 2 epochs, Adam lr 1e-3, batch 128
  recipe-cnn-v2.safetensors       v2: v1 fine-tuned 3 more epochs at lr 3e-4 (5 epochs in total)
  recipe-cnn-v1-int8.safetensors  v1 weights quantized symmetric per output channel to int8
                                  (scale = max|w|/127 per output channel, round half to even,
                                  clamp to [-127, 127]) and dequantized back to F32; biases F32 as is
  accuracy.json                   test accuracy of every model on the 10,000 test images, and the
                                  logits of the first 8 test images (for a Go cross-check)

Input normalization (the Go side applies the same):
  x = (pixel/255 - 0.2860) / 0.3530, shape (N, 1, 28, 28), float32.

Deterministic given the thread count: seed 0, torch.set_num_threads(2).
Usage: /usr/bin/python3 scripts/train_fashion.py [--data DIR] [--out DIR]
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
from models import RecipeCNN, state_dict_f32  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN, STD = 0.2860, 0.3530
MEAN_S, STD_S = "0.2860", "0.3530"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        buf = f.read()
    magic, = struct.unpack(">I", buf[:4])
    ndim = magic & 0xFF
    assert magic >> 8 == 0x08, f"{path}: not u8 IDX (magic {magic:#x})"
    dims = struct.unpack(">" + "I" * ndim, buf[4:4 + 4 * ndim])
    data = np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim)
    assert data.size == int(np.prod(dims)), f"{path}: size mismatch"
    return data.reshape(dims)


def load_split(data_dir, prefix):
    x = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(x.astype(np.float32) / 255.0)
    x = ((x - MEAN) / STD).unsqueeze(1).contiguous()  # same float32 ops as the Go side
    return x, torch.from_numpy(y.astype(np.int64))


def train_epochs(model, opt, x, y, epochs, gen, batch=128, log=""):
    model.train()
    n = x.shape[0]
    for ep in range(epochs):
        t0 = time.time()
        perm = torch.randperm(n, generator=gen)
        tot, correct, loss_sum = 0, 0, 0.0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            xb, yb = x[idx], y[idx]
            opt.zero_grad()
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
            tot += len(idx)
        print(f"{log} epoch {ep + 1}/{epochs}: loss {loss_sum / tot:.4f} train acc {correct / tot:.4f}"
              f" ({time.time() - t0:.1f} s)", flush=True)
    model.eval()


def evaluate(model, x, y):
    model.eval()
    preds, first = [], None
    with torch.no_grad():
        for i in range(0, x.shape[0], 1000):
            out = model(x[i:i + 1000])
            if first is None:
                first = out[:8].clone()
            preds.append(out.argmax(1))
    pred = torch.cat(preds)
    correct = int((pred == y).sum().item())
    return correct, pred, first


def quantize_int8(sd):
    """Symmetric per-output-channel int8 fake quantization of every weight (dim 0 = out channel)."""
    out = {}
    for k, w in sd.items():
        if not k.endswith(".weight"):
            out[k] = w.clone()
            continue
        flat = w.reshape(w.shape[0], -1)
        scale = flat.abs().amax(dim=1) / 127.0
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.clamp(torch.round(flat / scale[:, None]), -127, 127)
        out[k] = (q * scale[:, None]).reshape(w.shape).float().contiguous()
    return out


def meta(version, epochs, extra=None):
    m = {"model": "recipe-cnn", "version": version, "normalize_mean": MEAN_S,
         "normalize_std": STD_S, "in_channels": "1", "classes": "10", "epochs": str(epochs),
         "dataset": "fashion-mnist", "torch": torch.__version__,
         "generator": "scripts/train_fashion.py"}
    m.update(extra or {})
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default=os.path.join(ROOT, "testdata", "models"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--v1-epochs", type=int, default=2)
    ap.add_argument("--v2-extra-epochs", type=int, default=3)
    a = ap.parse_args()
    t_start = time.time()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    os.makedirs(a.out, exist_ok=True)

    xtr, ytr = load_split(a.data, "train")
    xte, yte = load_split(a.data, "t10k")
    print(f"train {tuple(xtr.shape)}, test {tuple(xte.shape)}; normalized train mean"
          f" {xtr.mean():.4f} std {xtr.std():.4f}", flush=True)

    model = RecipeCNN(1, 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_epochs(model, opt, xtr, ytr, a.v1_epochs, gen, log="v1")
    v1 = state_dict_f32(model)

    for g in opt.param_groups:
        g["lr"] = 3e-4
    train_epochs(model, opt, xtr, ytr, a.v2_extra_epochs, gen, log="v2")
    v2 = state_dict_f32(model)
    v1q = quantize_int8(v1)

    e1, e2 = a.v1_epochs, a.v1_epochs + a.v2_extra_epochs
    variants = [
        ("v1", v1, e1, {}),
        ("v2", v2, e2, {"finetuned_from": "v1", "finetune_lr": "3e-4"}),
        ("v1-int8", v1q, e1, {"quantization": "int8 symmetric per output channel, dequantized to F32",
                              "quantized_from": "v1"}),
    ]
    acc = {}
    preds = {}
    for name, sd, epochs, extra in variants:
        m = RecipeCNN(1, 10)
        m.load_state_dict(sd)
        correct, pred, first = evaluate(m, xte, yte)
        preds[name] = pred
        path = os.path.join(a.out, f"recipe-cnn-{name}.safetensors")
        safetensors_io.save(path, sd, meta(name, epochs, extra))
        acc[name] = {"accuracy": round(correct / len(yte), 4), "correct": correct, "total": len(yte),
                     "epochs": epochs, "file": os.path.basename(path),
                     "first8_logits": [[float(v) for v in row] for row in first.tolist()],
                     "first8_pred": pred[:8].tolist()}
        print(f"{name}: test accuracy {correct}/{len(yte)} = {correct / len(yte):.4f}", flush=True)
    acc["v1-int8"]["agreement_with_v1"] = round(float((preds["v1-int8"] == preds["v1"]).float().mean()), 4)
    acc["v2"]["agreement_with_v1"] = round(float((preds["v2"] == preds["v1"]).float().mean()), 4)
    acc["test_set"] = {"file": "testdata/fashion-mnist/t10k-images-idx3-ubyte.gz",
                       "first8_labels": yte[:8].tolist(),
                       "normalize": "x = (pixel/255 - 0.2860) / 0.3530",
                       "torch": torch.__version__, "threads": a.threads,
                       "train_seconds": round(time.time() - t_start, 1)}
    with open(os.path.join(a.out, "accuracy.json"), "w") as f:
        json.dump(acc, f, indent=1)
        f.write("\n")
    print(f"done in {time.time() - t_start:.1f} s")


if __name__ == "__main__":
    main()
