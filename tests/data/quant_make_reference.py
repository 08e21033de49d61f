#!/usr/bin/env python3
"""Writes tests/data/quant_reference.bin: ggml block formats as llama.cpp's
gguf-py (gguf.quants) quantizes and dequantizes them, for tests/test_quant.c.

    python3 -m venv /tmp/q-venv && /tmp/q-venv/bin/pip install gguf numpy
    /tmp/q-venv/bin/python tests/data/quant_make_reference.py

Made with gguf 0.19.0 and numpy 2.x. Two kinds of record, all little-endian:

  'Q' type[8] n:u32 x:f32[n] nbytes:u32 blocks[nbytes]
      x quantized by gguf-py (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: the types whose
      quantizers gguf-py has; its docs say they are bit-exact with ggml's).
  'D' type[8] n:u32 nbytes:u32 blocks[nbytes] y:f32[n]
      random blocks (sane f16 scales) dequantized by gguf-py: the layouts of
      all eight types vmed computes with, K types included.
"""
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

TYPES = {
    "Q4_0": T.Q4_0, "Q4_1": T.Q4_1, "Q5_0": T.Q5_0, "Q5_1": T.Q5_1, "Q8_0": T.Q8_0,
    "Q4_K": T.Q4_K, "Q5_K": T.Q5_K, "Q6_K": T.Q6_K,
}
QUANTIZABLE = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]
BLOCK = {"Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34),
         "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210)}


def inputs(rng):
    """Rows of 512 values with the blocks that test the edge cases."""
    rows = []
    x = rng.standard_normal(512).astype(np.float32)
    x[0:32] = 0                       # all zeros: d = 0
    x[32:64] = 0.25                   # constant block
    x[64:96] *= 1e-3                  # tiny values
    x[96] = 40.0                      # one outlier
    x[128:160] = rng.integers(-8, 8, 32).astype(np.float32) * 0.125  # exact grid points (ties)
    x[160] = 3.0                      # |max| twice, + first
    x[170] = -3.0
    x[192] = -3.0                     # |max| twice, - first
    x[200] = 3.0
    rows.append(x)
    rows.append((rng.standard_normal(512) * 0.02).astype(np.float32))   # weight-like
    rows.append((rng.standard_normal(512) * 5 + 1).astype(np.float32))  # offset, for the _1 types
    return rows


def random_blocks(rng, name, nblocks):
    elems, size = BLOCK[name]
    raw = rng.integers(0, 256, (nblocks, size), dtype=np.uint8)
    def f16(n):
        return (rng.standard_normal(n) * 0.01).astype(np.float16).view(np.uint8).reshape(n, 2)
    if name in ("Q4_0", "Q5_0", "Q8_0"):
        raw[:, 0:2] = f16(nblocks)
    elif name in ("Q4_1", "Q5_1", "Q4_K", "Q5_K"):
        raw[:, 0:2] = f16(nblocks)
        raw[:, 2:4] = f16(nblocks)
    elif name == "Q6_K":
        raw[:, 208:210] = f16(nblocks)
    return raw


def main():
    rng = np.random.default_rng(20240607)
    out = bytearray()
    for name in QUANTIZABLE:
        for x in inputs(rng):
            q = quants.quantize(x, TYPES[name])
            qb = q.tobytes()
            out += b"Q" + name.encode().ljust(8, b"\0") + struct.pack("<I", x.size) + x.tobytes()
            out += struct.pack("<I", len(qb)) + qb
    for name in TYPES:
        elems, _ = BLOCK[name]
        nblocks = 512 // elems
        raw = random_blocks(rng, name, nblocks)
        y = quants.dequantize(raw.reshape(-1), TYPES[name]).astype(np.float32).reshape(-1)
        assert y.size == nblocks * elems
        out += b"D" + name.encode().ljust(8, b"\0") + struct.pack("<I", y.size)
        out += struct.pack("<I", raw.size) + raw.tobytes() + y.tobytes()
    path = Path(__file__).with_name("quant_reference.bin")
    path.write_bytes(bytes(out))
    print(f"wrote {path} ({len(out)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
