#!/usr/bin/python3
"""Generate the PyTorch parity fixtures for the Go nn package (see notes in scripts/README.md).

Writes into testdata/nn/ (relative to the repository root):
  recipe_cnn.weights.safetensors       RecipeCNN(3, 10) state_dict, F32
  recipe_cnn.io.safetensors            input (4,3,28,28), every module's output keyed by path, "output"
  recipe_cnn_f16.weights.safetensors   the same weights as F16
  recipe_cnn_bf16.weights.safetensors  the same weights as BF16
  paritynet.weights.safetensors        ParityNet state_dict (num_batches_tracked dropped), F32
  paritynet.io.safetensors             input (4,3,17,17), every module's output, "output"

Reference outputs are computed in float64 from the float32 weights and inputs (both exactly
representable), then rounded to float32, so they carry no float32 accumulation error of their own.
The script also runs the float32 model and checks it agrees with the reference.
Deterministic: fixed seeds, single thread.

Usage: /usr/bin/python3 scripts/gen_nn_fixtures.py [outdir]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
from models import ParityNet, RecipeCNN, state_dict_f32  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def capture(model, x):
    """Run model on x with a forward hook on every named module; returns {path: output}."""
    outs = {}
    handles = []
    for path, mod in model.named_modules():
        if path == "":
            continue

        def hook(m, inp, out, path=path):
            outs[path] = out.detach().clone()

        handles.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        y = model(x)
    for h in handles:
        h.remove()
    outs["output"] = y.detach().clone()
    return outs


def reference(model, x):
    """Per-module outputs computed in float64, returned as float32; checked against float32 run."""
    ref = capture(model.double(), x.double())
    model.float()
    f32 = capture(model, x)
    assert set(ref) == set(f32)
    worst = 0.0
    for k in ref:
        tol = 1e-5 * max(1.0, ref[k].abs().max().item())
        err = (ref[k] - f32[k].double()).abs().max().item()
        worst = max(worst, err)
        assert err <= tol, f"{k}: float32 vs float64 error {err} > {tol}"
    out = {k: v.float().contiguous() for k, v in ref.items()}
    out["input"] = x.float().contiguous()
    return out, worst


def recipe_cnn():
    torch.manual_seed(0)
    m = RecipeCNN(3, 10).eval()
    x = torch.randn(4, 3, 28, 28)  # signed input, so relu1 sees negatives too
    return m, x


def paritynet():
    torch.manual_seed(0)
    m = ParityNet()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                mod.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                mod.weight.copy_(torch.rand(n, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(n, generator=g) * 0.2)
    m.eval()
    torch.manual_seed(0)
    x = torch.randn(4, 3, 17, 17)
    return m, x


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "testdata", "nn")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    for name, build in (("recipe_cnn", recipe_cnn), ("paritynet", paritynet)):
        m, x = build()
        sd = state_dict_f32(m)
        io, worst = reference(m, x)
        meta = {"generator": "scripts/gen_nn_fixtures.py", "torch": torch.__version__}
        safetensors_io.save(os.path.join(out, f"{name}.weights.safetensors"), sd, meta)
        safetensors_io.save(os.path.join(out, f"{name}.io.safetensors"), io,
                            dict(meta, reference="float64 rounded to float32"))
        if name == "recipe_cnn":
            safetensors_io.save(os.path.join(out, "recipe_cnn_f16.weights.safetensors"),
                                {k: v.half() for k, v in sd.items()}, meta)
            safetensors_io.save(os.path.join(out, "recipe_cnn_bf16.weights.safetensors"),
                                {k: v.bfloat16() for k, v in sd.items()}, meta)
        # round-trip check of the writer
        back, _ = safetensors_io.load(os.path.join(out, f"{name}.io.safetensors"))
        assert all(torch.equal(back[k], io[k]) for k in io)
        print(f"{name}: {len(sd)} weights, {len(io)} io tensors, float32-vs-float64 max err {worst:.2e}")


if __name__ == "__main__":
    main()
