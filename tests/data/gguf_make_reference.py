#!/usr/bin/env python3
"""Writes the GGUF files tests/test_gguf.c reads, with llama.cpp's own
writer (gguf-py), so the test checks vmed against the reference writer:

    python3 -m venv /tmp/gguf-venv && /tmp/gguf-venv/bin/pip install gguf numpy
    /tmp/gguf-venv/bin/python tests/data/gguf_make_reference.py tests/data

gguf_reference.gguf: metadata of every value type, arrays (of ints, floats,
bools and strings), and tensors F32 [3, 4], F16 [2, 8], BF16 [5], I32 [2, 3]
and Q8_0 [32, 2] (raw blocks), default alignment 32.
gguf_reference_align64.gguf: general.alignment 64 and two F32 tensors.
The values are the ones test_gguf.c expects: change both together."""
import sys

import numpy as np
import gguf

out = sys.argv[1] if len(sys.argv) > 1 else "."

w = gguf.GGUFWriter(f"{out}/gguf_reference.gguf", arch="llama")
w.add_uint8("t.u8", 200)
w.add_int8("t.i8", -100)
w.add_uint16("t.u16", 60000)
w.add_int16("t.i16", -30000)
w.add_uint32("t.u32", 4000000000)
w.add_int32("t.i32", -2000000000)
w.add_float32("t.f32", 0.15625)
w.add_bool("t.bool", True)
w.add_string("t.string", "héllo ▁world")
w.add_uint64("t.u64", 18000000000000000000)
w.add_int64("t.i64", -9000000000000000000)
w.add_float64("t.f64", -2.5e-300)
w.add_array("t.arr_i32", [1, -2, 3])
w.add_array("t.arr_f32", [0.5, -1.25])
w.add_array("t.arr_str", ["a", "", "▁bc"])
w.add_array("t.arr_bool", [True, False])
w.add_tensor("f32", np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5)
w.add_tensor("f16", (np.arange(16, dtype=np.float32).reshape(2, 8) / 8).astype(np.float16))
bf16 = (np.array([1.0, -2.0, 0.5, 3.0, -0.125], dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
w.add_tensor("bf16", bf16, raw_dtype=gguf.GGMLQuantizationType.BF16)
w.add_tensor("i32", np.array([[1, 2, 3], [-4, -5, -6]], dtype=np.int32))
q8 = np.arange(2 * 34, dtype=np.uint8).reshape(2, 34)  # two Q8_0 blocks: rows of 32 values
w.add_tensor("q8_0", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

w = gguf.GGUFWriter(f"{out}/gguf_reference_align64.gguf", arch="llama")
w.add_custom_alignment(64)
w.add_tensor("a", np.array([1.0, 2.0, 3.0], dtype=np.float32))
w.add_tensor("b", np.array([[4.0], [5.0]], dtype=np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
