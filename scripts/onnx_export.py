#!/usr/bin/python3
"""Export ONNX fixtures for Go's nn/onnx loader, with PyTorch reference outputs.

Default mode writes into testdata/onnx/ (committed, small):
  recipe_cnn.onnx              RecipeCNN(1, 10), opset 13, dynamic batch. Weights from
                               testdata/models/recipe-cnn-v1.safetensors if present, else seed 0.
  opsnet_opset{11,13,17}.onnx  OpsNet (below): Conv, Relu, BatchNormalization, LeakyRelu,
                               AveragePool, GlobalAveragePool, GELU as its Erf pattern, Flatten,
                               Shape/Gather/Unsqueeze/Concat -> Reshape, Gemm, MatMul, Transpose,
                               Slice, Add/Sub/Mul/Div, Sigmoid, Tanh, Clip, Concat, Softmax, plus
                               Identity, Dropout and Constant nodes inserted after export.
  tinyformer_opset{13,17}.onnx  TinyFormer (below), a pre-norm transformer block on (N, 5, 8).
  upnet_opset{11,13,17}.onnx    UpNet (below): Resize nearest/bilinear, Expand, ConvTranspose.
  actnet_opset{12,13,17}.onnx   ActNet (below): InstanceNormalization, PRelu, Split, ELU/SELU/CELU...
  opsnet_external.onnx, .data opsnet_opset13 with its initializers in an external data file.
  <model>.io.safetensors       "input" (batch 1 to 3; exported with another batch size), "output", and the output of every PyTorch leaf
                               module whose ONNX counterpart is one node (key = module path, which
                               is the Go module path the loader derives from the node name).

References are computed in float64 from the float32 weights and input and rounded to float32.

--large DIR (not committed): torchvision resnet18 and mobilenet_v2 (random weights, seed 0),
224x224, opset 13, with DIR/<model>.io.safetensors (batch 1 input and output) and PyTorch timings
of resnet18 at batch 1 and 8 (DIR/pytorch_bench.txt, --threads, default 2) for comparison with
`go test ./nn/onnx -bench ResNet18`.

--zoo (with --large) adds more torchvision models (see ZOO) with their references.

Usage: /usr/bin/python3 scripts/onnx_export.py [--large DIR [--zoo] [--threads N] [--bench-only]]
"""
import argparse
import os
import sys
import time

import onnx
import torch
import torch.nn as nn
from onnx import helper, numpy_helper, TensorProto

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
from models import RecipeCNN  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OpsNet(nn.Module):
    """A small model that makes the exporter emit most operators the loader supports."""

    def __init__(s):
        super().__init__()
        s.conv = nn.Conv2d(3, 8, 3, padding=1)
        s.relu = nn.ReLU()
        s.bn = nn.BatchNorm2d(8)  # after ReLU: not fused into the Conv
        s.leaky = nn.LeakyReLU(0.1)
        s.avgpool = nn.AvgPool2d(2)
        s.gelu = nn.GELU()  # exported as Div, Erf, Add, Mul, Mul below opset 20
        s.gap = nn.AdaptiveAvgPool2d(1)  # GlobalAveragePool
        s.flatten = nn.Flatten()
        s.fc = nn.Linear(8 * 4 * 4, 16)  # Gemm
        s.w = nn.Parameter(torch.randn(8, 16) * 0.3)  # MatMul
        s.hardtanh = nn.Hardtanh(-0.5, 0.5)  # Clip
        s.sigmoid = nn.Sigmoid()
        s.tanh = nn.Tanh()
        s.fc2 = nn.Linear(48, 10)
        s.softmax = nn.Softmax(dim=1)

    def forward(s, x):
        x = s.leaky(s.bn(s.relu(s.conv(x))))  # (N, 8, 8, 8)
        a = s.gelu(s.avgpool(x))  # (N, 8, 4, 4)
        g = s.flatten(s.gap(x))  # (N, 8)
        y = s.fc(a.view(a.size(0), -1))  # Shape/Gather/Unsqueeze/Concat -> Reshape, Gemm
        m = torch.matmul(g, s.w)  # (N, 16)
        t = a.permute(0, 2, 3, 1).reshape(a.size(0), -1)[:, :16]  # Transpose, Reshape, Slice
        z = (y - m) * s.sigmoid(m) / (1.5 + s.tanh(y)) + s.hardtanh(y)
        return s.softmax(s.fc2(torch.cat([z, m, t], dim=1)))


class Block(nn.Module):
    """Pre-norm transformer block: LayerNorm, multi-head self-attention, MLP with GELU."""

    def __init__(s, d=16, heads=2):
        super().__init__()
        s.heads = heads
        s.ln1 = nn.LayerNorm(d)
        s.qkv = nn.Linear(d, 3 * d)
        s.softmax = nn.Softmax(dim=-1)
        s.proj = nn.Linear(d, d)
        s.ln2 = nn.LayerNorm(d)
        s.mlp = nn.Sequential(nn.Linear(d, 32), nn.GELU(), nn.Linear(32, d))

    def forward(s, x):  # (B, L, D)
        b, n, d = x.shape
        q, k, v = s.qkv(s.ln1(x)).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, n, s.heads, d // s.heads).transpose(1, 2) for t in (q, k, v))
        a = s.softmax(q @ k.transpose(-2, -1) / (d // s.heads) ** 0.5)
        x = x + s.proj((a @ v).transpose(1, 2).reshape(b, n, d))
        return x + s.mlp(s.ln2(x))


class TinyFormer(nn.Module):
    """(N, 5, 8) -> (N, 4): exercises MatMul on 3-D/4-D tensors, LayerNormalization (opset 17)
    or its ReduceMean/Sub/Pow/Sqrt/Div pattern (before 17), Slice, Transpose, ReduceMean."""

    def __init__(s):
        super().__init__()
        s.embed = nn.Linear(8, 16)
        s.block = Block()
        s.head = nn.Linear(16, 4)

    def forward(s, x):
        return s.head(s.block(s.embed(x)).mean(dim=1))


class UpNet(nn.Module):
    """(N, 3, 4, 3) -> (N, 6, 24, 18): Resize (nearest x2, bilinear to a size, bilinear with
    align_corners), Expand with -1 (Equal/Where/ConstantOfShape at load time), grouped
    ConvTranspose with stride, padding and output_padding."""

    def __init__(s):
        super().__init__()
        s.conv = nn.Conv2d(3, 4, 3, padding=1)
        s.up = nn.Upsample(scale_factor=2, mode="nearest")
        s.conv2 = nn.Conv2d(4, 1, 1)
        s.deconv = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)

    def forward(s, x):
        y = s.up(s.conv(x))
        z = nn.functional.interpolate(y, size=(8, 6), mode="bilinear", align_corners=False)
        w = nn.functional.interpolate(z, scale_factor=1.5, mode="bilinear", align_corners=True)
        return s.deconv(w * s.conv2(w).expand(-1, 4, -1, -1))


class ActNet(nn.Module):
    """(N, 3, 5, 5) -> (N, 8, 5, 5): InstanceNormalization, PRelu, Split, Elu, Selu, Celu,
    Softplus, Mish and Softsign patterns, SiLU, Hardswish."""

    def __init__(s):
        super().__init__()
        s.conv = nn.Conv2d(3, 8, 3, padding=1)
        s.inorm = nn.InstanceNorm2d(8, affine=True)
        s.prelu = nn.PReLU(8)
        s.elu = nn.ELU(0.7)
        s.selu = nn.SELU()
        s.softplus = nn.Softplus()
        s.mish = nn.Mish()
        s.silu = nn.SiLU()
        s.softsign = nn.Softsign()
        s.celu = nn.CELU(1.3)
        s.hardswish = nn.Hardswish()

    def forward(s, x):
        x = s.prelu(s.inorm(s.conv(x)))
        a, b, c = torch.split(x, [2, 2, 4], dim=1)
        c = s.mish(c) * s.silu(c) + s.softsign(c) - s.celu(c) + s.hardswish(c)
        return torch.cat([s.elu(a), s.selu(b) + s.softplus(b), c], 1)


def init_bn(model, gen):
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
            mod.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            mod.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            mod.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)


def scope_path(node_name):
    """The module path nn/onnx derives from a PyTorch-exported node name, without the op part.

    "/features/features.17/conv/conv.1/conv.1.0/Conv" -> "features.17.conv.1.0"
    (a scope segment that extends the previous one with "." replaces it).
    """
    segs = [p for p in node_name.split("/") if p][:-1]
    out = []
    for s in segs:
        if out and s.startswith(out[-1] + "."):
            out[-1] = s
        else:
            out.append(s)
    return ".".join(out)


def capture(model, x):
    """Outputs of every module called exactly once, keyed by path, plus "output"."""
    outs, calls, handles = {}, {}, []
    for path, mod in model.named_modules():
        if path == "":
            continue

        def hook(m, inp, out, path=path):
            if isinstance(out, torch.Tensor):
                outs[path] = out.detach().clone()
            calls[path] = calls.get(path, 0) + 1

        handles.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        y = model(x)
    for h in handles:
        h.remove()
    outs = {k: v for k, v in outs.items() if calls[k] == 1}
    outs["output"] = y.detach().clone()
    return outs


def reference(model, x):
    """capture() in float64, rounded to float32, checked against the float32 run."""
    ref = capture(model.double(), x.double())
    model.float()
    f32 = capture(model, x)
    worst = 0.0
    for k in ref:
        tol = 1e-5 * max(1.0, ref[k].abs().max().item())
        err = (ref[k] - f32[k].double()).abs().max().item()
        assert err <= tol, (k, err, tol)
        worst = max(worst, err)
    return {k: v.float() for k, v in ref.items()}, worst


def clear_keys(model_proto, ref, model):
    """Keep the module outputs that the Go model has under the same path.

    A PyTorch module maps to the ONNX nodes whose scope is its path or lies below it (one node:
    a Go leaf, several: a Go container whose output is its last node's). It is kept if that last
    node's output leaves the group (it is the module's output). Convolutions and linear layers
    whose weights were renamed by the exporter had a BatchNorm folded into them: their output is
    not the PyTorch module's, so they are left out.
    """
    mods = dict(model.named_modules())
    nodes = [n for n in model_proto.graph.node if n.op_type != "Constant" and "/" in n.name]
    scopes = [scope_path(n.name) for n in nodes]
    graph_outputs = {o.name for o in model_proto.graph.output}
    keep = {}
    for k, v in ref.items():
        if k in ("input", "output"):
            keep[k] = v
            continue
        group = [i for i, s in enumerate(scopes) if s == k or s.startswith(k + ".")]
        if not group:
            continue
        last = nodes[group[-1]]
        inside = {nodes[i].name for i in group}
        out = last.output[0]
        used_outside = out in graph_outputs or any(
            out in n.input for n in model_proto.graph.node if n.name not in inside)
        if not used_outside:
            continue
        if isinstance(mods.get(k), (nn.Conv2d, nn.Linear)) and (
                len(group) != 1 or len(last.input) < 2 or last.input[1] != k + ".weight"):
            continue
        keep[k] = v
    return keep


def export(model, x, path, opset):
    model.eval()
    torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"],
                      output_names=["output"], do_constant_folding=True,
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return onnx.load(path)


def insert_after(graph, value, node):
    """Rewire every consumer of value (and the graph output) to node's output."""
    out = node.output[0]
    for n in graph.node:
        for i, name in enumerate(n.input):
            if name == value:
                n.input[i] = out
    for o in graph.output:
        if o.name == value:
            o.name = out
    idx = [i for i, n in enumerate(graph.node) if value in n.output][0]
    graph.node.insert(idx + 1, node)


def add_identity_dropout(m, opset):
    """Insert an Identity and an (inference-mode) Dropout before the final Gemm, as other
    exporters emit them; PyTorch drops both in eval mode."""
    g = m.graph
    gemm = [n for n in g.node if n.name == "/fc2/Gemm"][0]
    src = gemm.input[0]
    insert_after(g, src, helper.make_node("Identity", [src], ["/identity/Identity_output_0"],
                                          name="/identity/Identity"))
    src = "/identity/Identity_output_0"
    if opset < 12:
        drop = helper.make_node("Dropout", [src], ["/dropout/Dropout_output_0"],
                                name="/dropout/Dropout", ratio=0.25)
        insert_after(g, src, drop)
    else:
        ratio = helper.make_node("Constant", [], ["/dropout/Constant_output_0"],
                                 name="/dropout/Constant",
                                 value=numpy_helper.from_array(
                                     torch.tensor(0.25).numpy(), name=""))
        drop = helper.make_node("Dropout", [src, "/dropout/Constant_output_0"],
                                ["/dropout/Dropout_output_0"], name="/dropout/Dropout")
        insert_after(g, src, drop)
        idx = [i for i, n in enumerate(g.node) if n.name == "/dropout/Dropout"][0]
        g.node.insert(idx, ratio)
    onnx.checker.check_model(m)
    return m


def small(outdir):
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)

    cnn = RecipeCNN(1, 10)
    wpath = os.path.join(ROOT, "testdata", "models", "recipe-cnn-v1.safetensors")
    if os.path.exists(wpath):
        sd, _ = safetensors_io.load(wpath)
        cnn.load_state_dict({k: v.float() for k, v in sd.items()})
        print("recipe_cnn: weights from", wpath)
    else:
        print("recipe_cnn: random weights (seed 0);", wpath, "not found")
    cnn.eval()
    x = torch.randn(1, 1, 28, 28)
    p = os.path.join(outdir, "recipe_cnn.onnx")
    m = export(cnn, torch.randn(4, 1, 28, 28), p, 13)
    ref, worst = reference(cnn, x)
    ref = clear_keys(m, ref, cnn)
    ref["input"] = x
    safetensors_io.save(os.path.join(outdir, "recipe_cnn.io.safetensors"), ref)
    print("recipe_cnn: keys", sorted(ref), "f32 err", worst)

    gen = torch.Generator().manual_seed(1)
    ops = OpsNet()
    init_bn(ops, gen)
    ops.eval()
    x = torch.randn(3, 3, 8, 8, generator=gen)
    ref, worst = reference(ops, x)
    for opset in (11, 13, 17):
        name = f"opsnet_opset{opset}"
        p = os.path.join(outdir, name + ".onnx")
        m = export(ops, torch.randn(2, 3, 8, 8, generator=gen), p, opset)
        m = add_identity_dropout(m, opset)
        onnx.save(m, p)
        r = clear_keys(m, ref, ops)
        r["input"] = x
        safetensors_io.save(os.path.join(outdir, name + ".io.safetensors"), r)
        print(name, "ops", sorted({n.op_type for n in m.graph.node}))
        if opset == 13:
            # The same model with every initializer in an external data file.
            ext = onnx.load(p)
            onnx.save_model(ext, os.path.join(outdir, "opsnet_external.onnx"),
                            save_as_external_data=True, all_tensors_to_one_file=True,
                            location="opsnet_external.data", size_threshold=0)
        print(name, "keys", sorted(r), "f32 err", worst)


def tinyformer(outdir):
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    tf = TinyFormer().eval()
    x = torch.randn(3, 5, 8, generator=gen)
    ref, worst = reference(tf, x)
    for opset in (13, 17):
        name = f"tinyformer_opset{opset}"
        p = os.path.join(outdir, name + ".onnx")
        m = export(tf, torch.randn(2, 5, 8, generator=gen), p, opset)
        r = clear_keys(m, ref, tf)
        r["input"] = x
        safetensors_io.save(os.path.join(outdir, name + ".io.safetensors"), r)
        print(name, "ops", sorted({n.op_type for n in m.graph.node}))
        print(name, "keys", sorted(r), "f32 err", worst)


# More torchvision models for --zoo (random weights; googlenet without auxiliary heads).
ZOO = ["alexnet", "squeezenet1_0", "googlenet", "densenet121", "shufflenet_v2_x0_5",
       "mobilenet_v3_small", "mnasnet0_5", "efficientnet_b0", "regnet_y_400mf", "convnext_tiny",
       "segmentation.lraspp_mobilenet_v3_large"]


class SegOut(nn.Module):
    """A torchvision segmentation model returning its "out" tensor instead of a dict."""

    def __init__(s, m):
        super().__init__()
        s.m = m

    def forward(s, x):
        return s.m(x)["out"]


def upnet(outdir):
    gen = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    up = UpNet().eval()
    x = torch.randn(2, 3, 4, 3, generator=gen)
    ref, worst = reference(up, x)
    for opset in (11, 13, 17):
        name = f"upnet_opset{opset}"
        p = os.path.join(outdir, name + ".onnx")
        m = export(up, torch.randn(3, 3, 4, 3, generator=gen), p, opset)
        r = clear_keys(m, ref, up)
        r["input"] = x
        safetensors_io.save(os.path.join(outdir, name + ".io.safetensors"), r)
        print(name, "ops", sorted({n.op_type for n in m.graph.node}))
        print(name, "keys", sorted(r), "f32 err", worst)


def actnet(outdir):
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    net = ActNet().eval()
    with torch.no_grad():
        net.prelu.weight.copy_(torch.rand(8, generator=gen))
        net.inorm.weight.copy_(torch.rand(8, generator=gen) + 0.5)
        net.inorm.bias.copy_(torch.randn(8, generator=gen) * 0.2)
    x = torch.randn(2, 3, 5, 5, generator=gen) * 2
    ref, worst = reference(net, x)
    for opset in (12, 13, 17):  # CELU needs opset 12
        name = f"actnet_opset{opset}"
        p = os.path.join(outdir, name + ".onnx")
        m = export(net, torch.randn(3, 3, 5, 5, generator=gen), p, opset)
        r = clear_keys(m, ref, net)
        r["input"] = x
        safetensors_io.save(os.path.join(outdir, name + ".io.safetensors"), r)
        print(name, "ops", sorted({n.op_type for n in m.graph.node}))
        print(name, "keys", sorted(r), "f32 err", worst)


def large(outdir, threads, bench_only=False, zoo=False):
    import torchvision
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(threads)
    lines = []
    names = ["resnet18", "mobilenet_v2"] + (ZOO if zoo and not bench_only else [])
    for name in names:
        torch.manual_seed(0)
        kw = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
        if name.startswith("segmentation."):
            name = name.split(".", 1)[1]
            model = SegOut(getattr(torchvision.models.segmentation, name)(
                weights_backbone=None, num_classes=5))
        else:
            model = getattr(torchvision.models, name)(**kw)
        init_bn(model, torch.Generator().manual_seed(2))
        model.eval()
        if not bench_only:
            x = torch.randn(1, 3, 224, 224)
            m = export(model, torch.randn(1, 3, 224, 224), os.path.join(outdir, name + ".onnx"), 13)
            ref, worst = reference(model, x)
            ref = clear_keys(m, ref, model)
            ref["input"] = x
            safetensors_io.save(os.path.join(outdir, name + ".io.safetensors"), ref)
            print(name, "keys", len(ref), "f32 err", worst)
        if name != "resnet18":
            continue
        for batch in (1, 8):
            xb = torch.randn(batch, 3, 224, 224)
            with torch.no_grad():
                for _ in range(3):
                    model(xb)
                times, cpus, t0 = [], [], time.perf_counter()
                while len(times) < 5 or time.perf_counter() - t0 < 10:
                    t1, c1 = time.perf_counter(), time.process_time()
                    model(xb)
                    times.append(time.perf_counter() - t1)
                    cpus.append(time.process_time() - c1)
            times.sort()
            line = f"pytorch {torch.__version__} resnet18 batch={batch} threads={threads}: " \
                   f"min {times[0] * 1e3:.1f} ms, median {times[len(times) // 2] * 1e3:.1f} ms, " \
                   f"mean {sum(times) / len(times) * 1e3:.1f} ms per forward; " \
                   f"{sum(cpus) / len(cpus) * 1e3:.1f} cpu-ms per forward ({len(times)} runs)"
            print(line)
            lines.append(line)
    with open(os.path.join(outdir, "pytorch_bench.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large", metavar="DIR", help="export resnet18 and mobilenet_v2 into DIR")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch threads for --large timings")
    ap.add_argument("--zoo", action="store_true",
                    help="with --large: also export " + ", ".join(ZOO))
    ap.add_argument("--bench-only", action="store_true",
                    help="with --large: only time PyTorch's resnet18, do not export")
    ap.add_argument("--out", default=os.path.join(ROOT, "testdata", "onnx"))
    a = ap.parse_args()
    if a.large:
        large(a.large, a.threads, a.bench_only, a.zoo)
    else:
        small(a.out)
        tinyformer(a.out)
        upnet(a.out)
        actnet(a.out)


if __name__ == "__main__":
    main()
