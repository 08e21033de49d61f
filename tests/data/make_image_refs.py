#!/usr/bin/env python3
"""Writes the small test images in tests/data/images/ and what Pillow makes of them.

The C tests (tests/test_image.c) decode these files and compare against
images/refs.safetensors, so they never need Python. Regenerate with the
reference environment's Pillow (9.4.0) and numpy (1.24.2); the CLIP references
also need transformers 4.36.2 (CLIPImageProcessor), the version the fixtures
were made with:

    python3 -m venv /tmp/venv-img
    /tmp/venv-img/bin/pip install pillow==9.4.0 numpy==1.24.2 transformers==4.36.2
    /tmp/venv-img/bin/python tests/data/make_image_refs.py

The output is deterministic (fixed seeds, no timestamps). Tensors in refs.safetensors:
  rgb.<file>                U8 [H, W, 3]  np.array(Image.open(file).convert("RGB"))
  resize.<file>.<W>x<H>     U8 [H, W, C]  PIL resize(BICUBIC) of the file as RGB (C 3), or as
                                          opened when it is mode "L" (C 1)
  clip.<config>.<file>      F32 [3, H, W] CLIPImageProcessor(**clip_<config>/preprocessor_config.json)
                                          (images=Image.open(file)).pixel_values[0]
Also written: clip_<config>/preprocessor_config.json for each CLIP case.

PNGs that Pillow cannot write (1/2/4-bit gray, 16-bit colour, interlaced, palettes
with indices past PLTE) come from the small PNG writer below; JPEGs it cannot write
(YCCK, RGB colour space, restart markers) from mkjpeg.c, compiled here with cc -ljpeg.
"""
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "images")
W, H = 37, 23  # odd, not multiples of 8 or 16: exercises JPEG edge blocks and PNG bit packing


# ---------------------------------------------------------------- patterns

def pattern(w, h, channels, seed, maxval=255):
    """Smooth gradients plus noise over the whole range, so every filter tap matters."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for c in range(channels):
        fx, fy = rng.uniform(0.5, 3.0, 2)
        base = 0.5 + 0.35 * np.sin(fx * x / w * 2 * np.pi + c) * np.cos(fy * y / h * 2 * np.pi - c)
        noise = rng.uniform(-0.15, 0.15, (h, w))
        planes.append(np.clip(base + noise, 0, 1) * maxval)
    a = np.stack(planes, axis=-1).round()
    a[0, 0] = 0
    a[-1, -1] = maxval  # both extremes present
    return a.astype(np.uint16 if maxval > 255 else np.uint8)


# ---------------------------------------------------------------- a PNG writer

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """One row of samples (channels interleaved) as PNG bytes."""
    if depth == 16:
        return b"".join(struct.pack(">H", int(v)) for v in samples)
    if depth == 8:
        return bytes(int(v) for v in samples)
    bits = "".join(format(int(v), "0%db" % depth) for v in samples)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_row(kind, row, prior, bpp):
    out = bytearray()
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prior[i] if prior else 0
        c = prior[i - bpp] if prior and i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out.append((x - pred) & 0xFF)
    return bytes([kind]) + bytes(out)


def png_bytes(samples, depth, color_type, interlace=False, extra=b""):
    """samples: [H, W, C] integer array. Rows use all five filter types in turn."""
    h, w, ch = samples.shape
    bpp = max(1, ch * depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = b""
    n = 0
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        prior = None
        for r in sub:
            row = pack_row(r.reshape(-1), depth)
            raw += filter_row(n % 5, row, prior, bpp)
            prior = row
            n += 1
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


# ---------------------------------------------------------------- the images

def save(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def pil_bytes(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def make_pngs():
    g = pattern(W, H, 1, 1)
    save("gray1.png", pil_bytes(Image.fromarray(g[..., 0]).convert("1"), "PNG"))
    save("gray2.png", png_bytes(pattern(W, H, 1, 2, 3), 2, 0))
    save("gray4_interlaced.png", png_bytes(pattern(W, H, 1, 3, 15), 4, 0, interlace=True))
    save("gray8.png", pil_bytes(Image.fromarray(g[..., 0], "L"), "PNG"))
    save("gray8_trns.png", png_bytes(g, 8, 0, extra=chunk(b"tRNS", struct.pack(">H", int(g[3, 3, 0])))))
    # 16-bit gray: PIL opens it as mode "I" and clips to 255 in convert("RGB"), so keep
    # half the pixels below 256 to see both sides of the clip.
    g16 = pattern(W, H, 1, 4, 65535)
    g16[::2] //= 300
    save("gray16.png", png_bytes(g16, 16, 0))
    save("gray16_interlaced.png", png_bytes(pattern(19, 13, 1, 5, 400), 16, 0, interlace=True))
    la = pattern(W, H, 2, 6)
    save("la8.png", pil_bytes(Image.fromarray(la, "LA"), "PNG"))
    save("la16.png", png_bytes(pattern(W, H, 2, 7, 65535), 16, 4))
    rgb = pattern(W, H, 3, 8)
    save("rgb8.png", pil_bytes(Image.fromarray(rgb, "RGB"), "PNG"))
    save("rgb8_interlaced.png", png_bytes(pattern(W, H, 3, 9), 8, 2, interlace=True))
    save("rgb16.png", png_bytes(pattern(W, H, 3, 10, 65535), 16, 2))
    rgba = pattern(W, H, 4, 11)
    rgba[::3, ::2, 3] = 0  # transparent pixels keep their colour in convert("RGB")
    save("rgba8.png", pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    save("rgba16_interlaced.png", png_bytes(pattern(W, H, 4, 12, 65535), 16, 6, interlace=True))
    # palettes: 8-bit with a partial tRNS and indices past the 40 PLTE entries (PIL reads
    # its default grey ramp there); 4-bit; 1-bit interlaced.
    rng = np.random.RandomState(13)
    plte = bytes(rng.randint(0, 256, 40 * 3).astype(np.uint8))
    idx = rng.randint(0, 48, (H, W, 1))
    trns = bytes(rng.randint(0, 256, 20).astype(np.uint8))
    save("pal8_trns.png", png_bytes(idx, 8, 3, extra=chunk(b"PLTE", plte) + chunk(b"tRNS", trns)))
    save("pal4.png", png_bytes(rng.randint(0, 16, (H, W, 1)), 4, 3, extra=chunk(b"PLTE", plte[:16 * 3])))
    save("pal1_interlaced.png", png_bytes(rng.randint(0, 2, (H, W, 1)), 1, 3, interlace=True,
                                          extra=chunk(b"PLTE", bytes([200, 30, 40, 10, 220, 90]))))
    # sources for the resize references: a bigger RGB image and a tall one
    save("rgb97x61.png", pil_bytes(Image.fromarray(pattern(97, 61, 3, 14), "RGB"), "PNG"))
    save("tall21x40.png", pil_bytes(Image.fromarray(pattern(21, 40, 3, 15), "RGB"), "PNG"))


def mkjpeg(tool, mode, arr, name):
    with tempfile.NamedTemporaryFile(suffix=".raw") as f:
        f.write(arr.tobytes())
        f.flush()
        subprocess.run([tool, mode, str(arr.shape[1]), str(arr.shape[0]), f.name, os.path.join(OUT, name)],
                       check=True)


def make_jpegs(tool):
    rgb = Image.fromarray(pattern(W, H, 3, 20), "RGB")
    save("rgb420.jpg", pil_bytes(rgb, "JPEG", quality=90, subsampling=2))
    save("rgb422.jpg", pil_bytes(rgb, "JPEG", quality=90, subsampling=1))
    save("rgb444.jpg", pil_bytes(rgb, "JPEG", quality=90, subsampling=0))
    save("progressive.jpg", pil_bytes(rgb, "JPEG", quality=90, progressive=True))
    save("gray.jpg", pil_bytes(Image.fromarray(pattern(W, H, 1, 21)[..., 0], "L"), "JPEG", quality=90))
    cmyk = pattern(W, H, 4, 22)
    save("cmyk.jpg", pil_bytes(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=90))
    mkjpeg(tool, "ycck", cmyk, "ycck.jpg")
    mkjpeg(tool, "rgb", pattern(W, H, 3, 23), "rgb_colorspace.jpg")
    mkjpeg(tool, "restart", pattern(W, H, 3, 24), "restart.jpg")


RESIZES = {
    "rgb8.png": [(17, 11), (53, 41), (20, 40), (37, 11), (50, 23), (1, 1), (5, 3)],
    "rgb97x61.png": [(31, 19), (13, 9), (120, 80)],
    "tall21x40.png": [(8, 15)],
    "gray8.png": [(17, 11), (60, 30)],
}

# CLIPImageProcessor cases on small images: the short-side rule both ways round,
# center crops with odd margins, a crop larger than the image (padding; an odd
# difference comes out one row short), fixed height/width resize, scalar mean.
CLIP_CASES = {
    "small": ({"do_resize": True, "size": {"shortest_edge": 16}, "resample": 3, "do_center_crop": True,
               "crop_size": {"height": 12, "width": 12}, "do_rescale": True, "rescale_factor": 1 / 255,
               "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
               "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True,
               "image_processor_type": "CLIPImageProcessor"}, ["rgb8.png", "tall21x40.png", "gray16.png"]),
    "pad_odd": ({"size": 9, "crop_size": {"height": 12, "width": 11}, "image_mean": 0.5,
                 "image_std": [0.2, 0.3, 0.4], "rescale_factor": 0.0078125}, ["rgb8.png", "tall21x40.png"]),
    "fixed": ({"size": {"height": 20, "width": 30}, "crop_size": 16, "do_normalize": False,
               "feature_extractor_type": "CLIPFeatureExtractor"}, ["rgb8.png", "rgba8.png"]),
    "no_resize": ({"do_resize": False, "crop_size": {"height": 30, "width": 30}, "do_rescale": False},
                  ["rgb8.png"]),
}


# ---------------------------------------------------------------- references

def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, array); laid out in name order, header padded to 8."""
    dtypes = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32"}
    header = {"__metadata__": metadata}
    blobs = []
    off = 0
    for name, a in sorted(tensors, key=lambda t: t[0]):
        a = np.ascontiguousarray(a)
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def references():
    tensors = []
    for name in sorted(os.listdir(OUT)):
        if name.endswith((".png", ".jpg")):
            tensors.append(("rgb." + name, np.array(Image.open(os.path.join(OUT, name)).convert("RGB"))))
    for name, sizes in RESIZES.items():
        im = Image.open(os.path.join(OUT, name))
        im = im if im.mode == "L" else im.convert("RGB")
        for w, h in sizes:
            a = np.array(im.resize((w, h), resample=Image.BICUBIC))
            tensors.append(("resize.%s.%dx%d" % (name, w, h), a.reshape(h, w, -1)))
    versions = {"pillow": PIL.__version__, "numpy": np.__version__}
    try:
        import transformers
        from transformers import CLIPImageProcessor
    except ImportError:
        sys.exit("transformers is needed for the CLIP references (pip install transformers==4.36.2)")
    versions["transformers"] = transformers.__version__
    for case, (cfg, files) in CLIP_CASES.items():
        d = os.path.join(OUT, "clip_" + case)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        proc = CLIPImageProcessor.from_pretrained(d)
        for name in files:
            pv = proc(images=Image.open(os.path.join(OUT, name)), return_tensors="np").pixel_values[0]
            tensors.append(("clip.%s.%s" % (case, name), pv.astype(np.float32)))
    write_safetensors(os.path.join(OUT, "refs.safetensors"), tensors, versions)
    return versions


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tool = os.path.join(tmp, "mkjpeg")
        subprocess.run(["cc", "-O1", "-o", tool, os.path.join(HERE, "mkjpeg.c"), "-ljpeg"], check=True)
        make_pngs()
        make_jpegs(tool)
    versions = references()
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print("wrote %s (%d bytes in all) with %s" % (OUT, total, versions))


if __name__ == "__main__":
    main()
