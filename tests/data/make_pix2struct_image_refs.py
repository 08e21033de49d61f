"""References for tests/test_pix2struct_image.c that the shared fixtures do not hold.

Run with the reference environment (transformers 4.36.2, Pillow 9.4.0 with libraqm, Python 3.11,
Debian 12 FreeType 2.12.1, fonts-dejavu-core 2.37, fonts-liberation 2.1):
    python tests/data/make_pix2struct_image_refs.py
Writes tests/data/pix2struct/:
  wrap.json    textwrap.TextWrapper(width).wrap(text) for random and hand-picked texts
  render.json  + render_*.png: transformers' render_text(text, font_path=...) for texts that exercise
               kerning, ligatures, several lines, hyphens and non-Latin letters, in both fonts
  stats.json   numpy's float32 mean and std (Pix2StructImageProcessor.normalize) of the fixture's
               two with-header images, as exact float32 bit patterns
"""
import json
import os
import random
import struct
import textwrap

import numpy as np
from PIL import Image
from transformers.models.pix2struct.image_processing_pix2struct import render_text

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "pix2struct")
FIX = os.path.join(HERE, "..", "..", "..", "shared", "fixtures")
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LIBERATION = "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"


def wrap_cases():
    rng = random.Random(1)
    alpha = list("ab-- -\t\n.,!?'\"&_9x") + ["é", "—", "½", "\u3000", "\xa0", "Ж", "\x0b", "\r", "²"]
    cases = []
    for width in (1, 3, 10, 80):
        for _ in range(60):
            n = rng.randint(0, 40 if width < 20 else 250)
            text = "".join(rng.choice(alpha) if rng.random() < 0.6 else rng.choice("abcdefgh") for _ in range(n))
            cases.append((text, width))
    for text in ["state-of-the-art", "a--b", "well-known-x", "---", "--ab", "ab--", "x" * 200,
                 " " * 100 + "a", "a" + " " * 100, "x" * 79 + " " + "y" * 100, "tab\there\tand\tthere",
                 "Generate underlying data table of the figure below:", ""]:
        cases.append((text, 80))
    return [{"text": t, "width": w, "wrapped": "\n".join(textwrap.TextWrapper(width=w).wrap(t))} for t, w in cases]


RENDERS = [
    ("kern_dejavu", DEJAVU, "AVAVTeToWAffi fl ffl office Type LTA yo P. Wa VAT Yeah. Av Aw Ay"),
    ("kern_liberation", LIBERATION, "AVAVTeToWAffi fl ffl office Type LTA yo P. Wa VAT Yeah. Av Aw Ay"),
    ("lines_dejavu", DEJAVU, "What is the value of the blue bar in 2019, and how does it compare? " * 3),
    ("lines_liberation", LIBERATION, "What is the value of the blue bar in 2019, and how does it compare? " * 3),
    ("mixed_dejavu", DEJAVU, "Ünïcödé café naïve Ωμέγα Привет мир ½ € “quotes” well-known state-of-the-art x--y"),
]


def f32_bits(v):
    return struct.unpack("<I", struct.pack("<f", float(v)))[0]


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "wrap.json"), "w") as f:
        json.dump(wrap_cases(), f, ensure_ascii=False, indent=0)
    renders = []
    for name, font, text in RENDERS:
        im = render_text(text, font_path=font)
        im.save(os.path.join(OUT, f"render_{name}.png"), optimize=True)
        renders.append({"name": name, "font": font, "text": text, "size_wh": list(im.size)})
    with open(os.path.join(OUT, "render.json"), "w") as f:
        json.dump(renders, f, ensure_ascii=False, indent=1)
    stats = []
    for k in (0, 1):
        path = os.path.join(FIX, "pix2struct-tiny", "ref", f"img{k}_with_header.png")
        im = np.array(Image.open(path).convert("RGB")).astype(np.float32)
        mean, std = np.mean(im), np.std(im)
        stats.append({"image": f"pix2struct-tiny/ref/img{k}_with_header.png", "mean": float(mean), "std": float(std),
                      "mean_f32_bits": f32_bits(mean), "std_f32_bits": f32_bits(std)})
    with open(os.path.join(OUT, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)


if __name__ == "__main__":
    main()
