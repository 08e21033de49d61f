"""Beam-search references from HF transformers for tests/test_beam.c.

The fixtures hold greedy references only; this adds generate(num_beams=N)
on the same tiny checkpoints, in the fixtures' reference environment
(transformers 4.36.2, torch 1.13 CPU, fp32). Run:

    python3 -m venv --system-site-packages VENV   # with Debian's python3-torch
    VENV/bin/pip install transformers==4.36.2
    VENV/bin/python tests/data/make_beam_refs.py ../shared/fixtures > tests/data/beam_refs.json
"""
import json
import sys

import torch
from safetensors.torch import load_file
from transformers import GitForCausalLM, LlamaForCausalLM

fx = sys.argv[1]
torch.manual_seed(0)
out = {"transformers": __import__("transformers").__version__, "torch": torch.__version__, "git": [], "llama": []}

git = GitForCausalLM.from_pretrained(f"{fx}/git-tiny").eval()
ref = load_file(f"{fx}/git-tiny/ref/forward.safetensors")
for img in ("img0", "img1"):
    pv = ref[f"{img}.pixel_values"][None]
    for beams, lp, es in ((3, 1.0, False), (4, 1.0, True), (2, 0.5, False), (5, 2.0, False)):
        with torch.no_grad():
            ids = git.generate(pixel_values=pv, max_length=20, num_beams=beams, length_penalty=lp, early_stopping=es)
        out["git"].append({"image": img, "num_beams": beams, "length_penalty": lp, "early_stopping": es,
                           "max_length": 20, "ids": ids[0].tolist()})

for name in ("llama-tiny", "llama-tiny-gqa"):
    m = LlamaForCausalLM.from_pretrained(f"{fx}/{name}").eval()
    gen = json.load(open(f"{fx}/{name}/ref/generate.json"))
    for g in gen["generations"]:
        ids = torch.tensor([g["input_ids"]])
        for beams in (2, 4):
            with torch.no_grad():
                o = m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, num_beams=beams,
                               do_sample=False)
            out["llama"].append({"model": name, "num_beams": beams, "max_new_tokens": 16,
                                 "input_ids": g["input_ids"], "new_ids": o[0, ids.shape[1]:].tolist()})
json.dump(out, sys.stdout, indent=1)
