"""PyTorch reference for vmed's chart benchmark: HF
Pix2StructForConditionalGeneration on the CPU, same checkpoint, chart and
threads, timed as `vmed bench --image` times itself: open the chart,
Pix2StructImageProcessor (DePlot's header rendered with DejaVu Sans, 2048
patches), encode, and N greedy tokens (min_new_tokens = N).

usage: python deplot_bench.py MODEL_DIR IMAGE THREADS N REPS  -> one JSON line
"""
import json
import sys
import time

import torch
import transformers.models.pix2struct.image_processing_pix2struct as ipp
from PIL import Image
from transformers import Pix2StructForConditionalGeneration, Pix2StructImageProcessor

HEADER = "Generate underlying data table of the figure below:"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
model_dir, image, threads, n, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
# Newer transformers take no font_path in the processor call and would fetch
# Arial from the hub (there is no network here): render with DejaVu Sans,
# as vmed does by default.
_render_text = ipp.render_text
ipp.render_text = lambda text, **kw: _render_text(text, **{**kw, "font_path": FONT})
t0 = time.perf_counter()
model = Pix2StructForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
proc = Pix2StructImageProcessor.from_pretrained(model_dir)
load_s = time.perf_counter() - t0


def once():
    t = time.perf_counter()
    inputs = proc(images=Image.open(image), header_text=HEADER, max_patches=2048, return_tensors="pt")
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1)
    return time.perf_counter() - t


once()  # warm-up, as vmed bench does
times = [once() for _ in range(reps)]
mean = sum(times) / len(times)
sd = (sum((x - mean) ** 2 for x in times) / (len(times) - 1)) ** 0.5 if len(times) > 1 else 0.0
print(json.dumps({"model": model_dir, "threads": threads, "tokens": n, "chart_s": mean, "chart_sd": sd,
                  "load_s": load_s, "torch": torch.__version__,
                  "transformers": __import__("transformers").__version__}))
