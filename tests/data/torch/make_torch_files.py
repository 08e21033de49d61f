"""Writes the small PyTorch checkpoints tests/test_torch_bin.c reads, with
real torch.save, so the tests check vmed reads what torch writes.

    python make_torch_files.py   # in this folder; any torch >= 1.6

Values are small multiples of 1/4, exact in F32, F16 and BF16, so the C
test can recompute them: value(i) = (i - 3) / 4 for element i of a tensor.
"""
import json
import os

import torch


def ramp(shape, dtype, start=0):
    n = 1
    for d in shape:
        n *= d
    return ((torch.arange(n, dtype=torch.float64) + start - 3) / 4).reshape(shape).to(dtype)


def save(sd, name, **kw):
    torch.save(sd, name, **kw)


for dtype, name in [(torch.float32, "f32"), (torch.float16, "f16"), (torch.bfloat16, "bf16")]:
    save({"w": ramp((2, 3), dtype), "b": ramp((3,), dtype, 6)}, name + ".bin")

# Views of one storage at offsets, a reshaped view, an nn.Parameter, an
# int64 buffer: what a real model's state dict holds besides plain weights.
base = ramp((10,), torch.float32)
sd = {
    "slice": base[2:5],
    "full": base,
    "grid": base.view(2, 5),
    "param": torch.nn.Parameter(ramp((2, 2), torch.float32)),
    "position_ids": torch.arange(4).unsqueeze(0),
}
save(sd, "shared.bin")

# Protocol 4: frames, SHORT_BINUNICODE, MEMOIZE.
save({"w": ramp((2, 3), torch.float32), "b": ramp((3,), torch.float32, 6)}, "proto4.bin", pickle_protocol=4)

# A transposed view: torch saves it with its strides; vmed refuses it.
save({"t": ramp((2, 3), torch.float32).t()}, "noncontig.bin")

# The pre-1.6 format, which vmed refuses with a message saying so.
save({"w": ramp((2,), torch.float32)}, "legacy.bin", _use_new_zipfile_serialization=False)

# Two shards and their index, as transformers' save_pretrained writes them.
os.makedirs("sharded", exist_ok=True)
shards = {
    "pytorch_model-00001-of-00002.bin": {"a.weight": ramp((2, 2), torch.float32)},
    "pytorch_model-00002-of-00002.bin": {"b.weight": ramp((3,), torch.float32, 4),
                                         "b.bias": ramp((1,), torch.float32, 7)},
}
weight_map = {}
for shard, part in shards.items():
    save(part, os.path.join("sharded", shard))
    for k in part:
        weight_map[k] = shard
with open(os.path.join("sharded", "pytorch_model.bin.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": 36}, "weight_map": weight_map}, f, indent=2)
