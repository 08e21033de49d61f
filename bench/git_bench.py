"""PyTorch reference for vmed's caption benchmark: HF GitForCausalLM on the
CPU, the same checkpoint, image and thread count, timed the way vmed bench
--image times itself: open the image, CLIPImageProcessor, encode, and N
greedy tokens (min_new_tokens = N, so EOS never ends a run early).

usage: python git_bench.py MODEL_DIR IMAGE THREADS N REPS  -> one JSON line
"""
import json
import sys
import time

import torch
from PIL import Image
from transformers import CLIPImageProcessor, GitForCausalLM

model_dir, image, threads, n, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
t0 = time.perf_counter()
model = GitForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
proc = CLIPImageProcessor.from_pretrained(model_dir)
load_s = time.perf_counter() - t0


def once():
    t = time.perf_counter()
    pv = proc(images=Image.open(image), return_tensors="pt").pixel_values
    with torch.inference_mode():
        model.generate(pixel_values=pv, max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1)
    return time.perf_counter() - t


once()  # warm-up, as vmed bench does
times = [once() for _ in range(reps)]
mean = sum(times) / len(times)
sd = (sum((x - mean) ** 2 for x in times) / (len(times) - 1)) ** 0.5 if len(times) > 1 else 0.0
print(json.dumps({"model": model_dir, "threads": threads, "tokens": n, "caption_s": mean, "caption_sd": sd,
                  "load_s": load_s, "torch": torch.__version__,
                  "transformers": __import__("transformers").__version__}))
