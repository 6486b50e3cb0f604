"""Minimal safetensors writer/reader (no dependency on the `safetensors` package).

Format: 8-byte little-endian u64 header length N, then N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
padded with spaces to a multiple of 8, then the raw little-endian tensor data.
Offsets are relative to the start of the data section.
"""
import json
import struct

import numpy as np
import torch

_DTYPES = {
    torch.float32: ("F32", None),
    torch.float16: ("F16", None),
    torch.bfloat16: ("BF16", torch.int16),  # numpy has no bfloat16: write the raw 16-bit pattern
    torch.float64: ("F64", None),
    torch.int64: ("I64", None),
    torch.int32: ("I32", None),
    torch.int8: ("I8", None),
    torch.uint8: ("U8", None),
}


def _raw_bytes(t):
    t = t.detach().cpu().contiguous()
    name, view = _DTYPES[t.dtype]
    if view is not None:
        t = t.view(view)
    a = t.numpy()
    return name, a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


def save(path, tensors, metadata=None):
    """Write a dict name -> torch.Tensor, tensors laid out in sorted name order."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name]
        dtype, raw = _raw_bytes(t)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


_NP = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
       "I32": np.int32, "I8": np.int8, "U8": np.uint8, "BF16": np.int16}


def load(path):
    """Read a safetensors file into (dict name -> torch.Tensor, metadata dict)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = buf[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        a = np.frombuffer(data[b:e], dtype=np.dtype(_NP[info["dtype"]]).newbyteorder("<")).copy()
        t = torch.from_numpy(a.astype(a.dtype.newbyteorder("="))).reshape(info["shape"])
        if info["dtype"] == "BF16":
            t = t.view(torch.bfloat16)
        out[name] = t
    return out, meta
