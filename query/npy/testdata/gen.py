#!/usr/bin/env python3
"""Generates the numpy-written fixtures the Go tests compare against.

Run from this directory with Debian's python3-numpy: /usr/bin/python3 gen.py
"""
import numpy as np

np.save("f32_2x3.npy", np.arange(6, dtype="<f4").reshape(2, 3) - 2.5)
np.save("i64_5.npy", np.array([0, 1, -1, 2**40, -(2**62)], dtype="<i8"))
np.save("f32_0x4.npy", np.zeros((0, 4), dtype="<f4"))
np.save("f32_scalar.npy", np.array(1.5, dtype="<f4"))
np.savez("pair.npz", x=np.arange(4, dtype="<f4"), idx=np.arange(4, dtype="<i8"))
