"""HF references for tests/test_pix2struct.c that the pix2struct-tiny fixture does not hold.

Run with the fixtures' reference environment (transformers 4.36.2, torch 1.13 CPU, Pillow 9.4, safetensors):
    python tests/data/make_pix2struct_refs.py ../shared/fixtures > tests/data/pix2struct_refs.json
The fixtures folder defaults to ../../../shared/fixtures from this file. Writes JSON (indent 1) to stdout:
  cases      beam search: model.generate(num_beams, length_penalty, early_stopping, max_new_tokens=24) on the
             fixture's mp512 flattened_patches / attention_mask of each image; ids include decoder start 0
  masks      masks the processor never makes, on the first 16 mp512 patch rows of img0: every patch masked, and
             masked patches between unmasked ones. encoder_last_hidden_state [16*32] and the first 100 logits of
             both rows for decoder_input_ids [0, 1350], rounded to 7 decimals
  tokenizer  the slow T5Tokenizer: texts (ids with eos / without specials, both decodes of the ids with eos)
             and id lists (both decodes)

    python tests/data/make_pix2struct_refs.py ../shared/fixtures --full-patches /tmp/p2s_patches_2048.safetensors
instead writes the full [2048, 770] mp2048 flattened_patches of both fixture images (13 MB, left out of the
fixture), checked against ref/forward.json's flattened_patches_stats: HF's own full patches, for comparing
vmed's by hand (the test suite builds the 2048-patch input with vmed's preprocessing).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.numpy import save_file
from safetensors.torch import load_file
from transformers import Pix2StructForConditionalGeneration, Pix2StructImageProcessor, T5Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = "Generate underlying data table of the figure below:"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
IMAGES = {"img0": "bar.png", "img1": "plot.jpg"}

BEAMS = [(2, 1.0, False), (3, 1.0, False), (4, 0.5, True)]  # num_beams, length_penalty, early_stopping
MASKS = [("all_masked", [0.0] * 16), ("holes", [1.0 if i % 4 in (0, 3) else 0.0 for i in range(16)])]
TEXTS = [
    "a <extra_id_1>\t b",
    "x\u3000<extra_id_2>\xa0\n y",
    "<extra_id_0><extra_id_1> <pad><unk>",
    "<extra_id_100> <extra_id_05> <extra_id_",
    "Hello </s>",
    "Hello , world . don 't it 's we 're",
    "  <extra_id_3>  ",
    "ends with a space ",
]
IDS = [
    [259, 259, 1, 259],
    [2099, 259, 2098, 13, 2097],
    [5, 200, 1, 2099, 200, 5],
    [198, 178, 198, 1, 229, 132],
    [0, 1350, 2, 33, 0],
    [2099],
    [13, 2099, 13],
]


def r7(t):
    return [round(float(v), 7) for v in t.reshape(-1).tolist()]


def beam_cases(model, fwd):
    cases = []
    for img in IMAGES:
        fp, mask = fwd[f"{img}.mp512.flattened_patches"][None], fwd[f"{img}.mp512.attention_mask"][None]
        for num_beams, length_penalty, early_stopping in BEAMS:
            out = model.generate(flattened_patches=fp, attention_mask=mask, num_beams=num_beams,
                                 length_penalty=length_penalty, early_stopping=early_stopping, max_new_tokens=24)
            cases.append({"image": img, "max_patches": 512, "num_beams": num_beams, "length_penalty": length_penalty,
                          "early_stopping": early_stopping, "max_new_tokens": 24, "ids": out[0].tolist()})
    return cases


def mask_cases(model, fwd):
    cases = []
    fp = fwd["img0.mp512.flattened_patches"][None, :16]
    ids = [0, 1350]
    for name, mask in MASKS:
        am = torch.tensor([mask])
        enc = model.encoder(flattened_patches=fp, attention_mask=am).last_hidden_state[0]
        logits = model(flattened_patches=fp, attention_mask=am, decoder_input_ids=torch.tensor([ids])).logits[0]
        cases.append({"name": name, "image": "img0", "rows": 16, "attention_mask": mask, "decoder_input_ids": ids,
                      "encoder_last_hidden_state": r7(enc), "logits_first100": [r7(row[:100]) for row in logits]})
    return cases


def tokenizer_cases(fix):
    tok = T5Tokenizer(os.path.join(fix, "pix2struct-tiny", "spiece.model"), extra_ids=100, legacy=True)
    texts = []
    for text in TEXTS:
        ids = tok(text).input_ids
        texts.append({"text": text, "ids_with_eos": ids, "ids_no_special": tok(text, add_special_tokens=False).input_ids,
                      "decode": tok.decode(ids), "decode_skip_special": tok.decode(ids, skip_special_tokens=True)})
    ids = [{"ids": i, "decode": tok.decode(i), "decode_skip_special": tok.decode(i, skip_special_tokens=True)}
           for i in IDS]
    return {"texts": texts, "ids": ids}


def full_patches(fix, path):
    proc = Pix2StructImageProcessor.from_pretrained(os.path.join(fix, "pix2struct-tiny"))
    with open(os.path.join(fix, "pix2struct-tiny", "ref", "forward.json")) as f:
        runs = json.load(f)["runs"]
    out = {}
    for k, (img, name) in enumerate(IMAGES.items()):
        fp = proc(images=Image.open(os.path.join(fix, "images", name)), header_text=HEADER, max_patches=2048,
                  font_path=FONT, return_tensors="np")["flattened_patches"][0].astype(np.float32)
        want = runs[k]["variants"]["2048"]["flattened_patches_stats"]
        got = {"sum": float(fp.sum(dtype=np.float64)), "abs_sum": float(np.abs(fp).sum(dtype=np.float64)),
               "sq_sum": float((fp.astype(np.float64) ** 2).sum())}
        assert runs[k]["image"] == name and fp.shape == (2048, 770), (name, fp.shape)
        for key, v in want.items():
            assert abs(got[key] - v) <= 1e-6 * abs(v), (name, key, got[key], v)
        out[f"{img}.mp2048.flattened_patches"] = fp
    save_file(out, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fixtures", nargs="?", default=os.path.join(HERE, "..", "..", "..", "shared", "fixtures"))
    ap.add_argument("--full-patches", metavar="FILE", help="write the mp2048 flattened_patches to FILE instead")
    args = ap.parse_args()
    if args.full_patches:
        return full_patches(args.fixtures, args.full_patches)
    torch.manual_seed(0)
    model = Pix2StructForConditionalGeneration.from_pretrained(os.path.join(args.fixtures, "pix2struct-tiny")).eval()
    fwd = load_file(os.path.join(args.fixtures, "pix2struct-tiny", "ref", "forward.safetensors"))
    with torch.no_grad():
        refs = {"transformers": transformers.__version__, "torch": torch.__version__,
                "cases": beam_cases(model, fwd), "masks": mask_cases(model, fwd),
                "tokenizer": tokenizer_cases(args.fixtures)}
    json.dump(refs, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
