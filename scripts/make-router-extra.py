#!/usr/bin/env python3
"""Draws the synthetic `other` images of data/router-extra/ for the image router.

The router's real training data (../shared/data/router/train) has only two
diagrams in `other`, so "white page, flat colours, straight lines" meant
`chart` and a flowchart was routed to DePlot. This script draws what that data
lacks: flowcharts, block and architecture diagrams (rounded, square, diamond,
cylinder, ... boxes with text labels, straight and elbow arrows, coloured
fills, icon-like shapes, multi-column layouts, group frames), text tables and
slides with bullet text. None has data axes or tick labels. Nothing is copied
from anywhere: every image is drawn here from random choices, with the DejaVu
and Liberation fonts of the system (free licences). The seed images of the
repository (model.png, assets/samples/*) are not used or imitated on purpose.

Deterministic: image n is drawn from random.Random(SEED * 1000 + n) only, so
the same Pillow and fonts give the same files.

    python3 scripts/make-router-extra.py [OUT_DIR]   # default data/router-extra

writes OUT_DIR/other/other_synthdiagram_<n>.png (n = 1..COUNT): RGB or RGBA
with a transparent page, 300 to 1000 px, 8-bit palette PNGs to stay small.
"""
import math
import os
import random
import sys

from PIL import Image, ImageChops, ImageDraw, ImageFont

SEED = 2024
COUNT = 50
CHART_COUNT = 32
FONT_DIRS = ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation"]
FONT_NAMES = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansCondensed.ttf", "DejaVuSerif.ttf",
              "DejaVuSansMono.ttf", "LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf",
              "LiberationSerif-Regular.ttf", "LiberationSansNarrow-Regular.ttf", "LiberationMono-Regular.ttf",
              "LiberationSans-Italic.ttf"]
WORDS = ["input", "output", "encoder", "decoder", "user", "server", "database", "cache", "queue", "parser",
         "tokenizer", "filter", "validate", "report", "patient record", "lab results", "scheduler", "worker",
         "storage", "index", "search", "ranker", "upload", "review", "approve", "reject", "notify", "login",
         "API gateway", "frontend", "backend", "preprocess", "normalize", "embed", "classify", "summarize",
         "attention", "feed forward", "layer norm", "softmax", "pooling", "retrieval", "prompt", "answer",
         "clinician", "triage", "discharge", "billing", "export", "import", "config", "logger", "monitor",
         "Start", "End", "Yes", "No", "Step 1", "Step 2", "Step 3", "Module A", "Module B", "Service",
         "data lake", "ETL", "dashboard", "feedback", "training", "inference", "checkpoint", "metrics"]
# page, fills, lines/text: light and dark themes, pastel and saturated fills
THEMES = [
    ((255, 255, 255), [(214, 232, 213), (218, 232, 252), (255, 242, 204), (248, 206, 204), (225, 213, 231)],
     (60, 60, 60)),
    ((255, 255, 255), [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)], (0, 0, 0)),
    ((255, 255, 255), [(255, 255, 255)], (0, 0, 0)),
    ((250, 250, 250), [(236, 239, 241), (207, 216, 220), (176, 190, 197)], (38, 50, 56)),
    ((255, 255, 255), [(173, 216, 230), (144, 238, 144), (255, 182, 193), (255, 255, 153)], (20, 20, 90)),
    ((245, 240, 230), [(120, 170, 150), (200, 150, 100), (150, 130, 180)], (50, 40, 30)),
    ((40, 44, 52), [(97, 175, 239), (152, 195, 121), (229, 192, 123), (198, 120, 221)], (220, 223, 228)),
    ((255, 255, 255), [(102, 153, 204), (153, 204, 153), (204, 153, 102)], (90, 100, 120)),
    ((255, 255, 255), [(160, 185, 160), (150, 170, 200), (200, 175, 130), (180, 180, 180)], (30, 30, 30)),
    ((255, 255, 255), [(120, 144, 156), (141, 110, 99), (121, 134, 203)], (33, 33, 33)),
]


def font(rng, size):
    name = rng.choice(FONT_NAMES)
    for d in FONT_DIRS:
        if os.path.exists(os.path.join(d, name)):
            return ImageFont.truetype(os.path.join(d, name), size)
    sys.exit(f"make-router-extra: font {name} not found in {FONT_DIRS}")


def label(rng):
    w = rng.choice(WORDS)
    return w if rng.random() < 0.8 else w + "\n" + rng.choice(WORDS)


def text_in(d, box, text, fnt, fill):
    """Centred in box; a smaller size of the same font where the text would spill over."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    while fnt.size > 8:
        l, t, r, b = d.multiline_textbbox((cx, cy), text, font=fnt, anchor="mm", align="center")
        if r - l <= 0.85 * (box[2] - box[0]) and b - t <= 0.8 * (box[3] - box[1]):
            break
        fnt = fnt.font_variant(size=int(fnt.size * 0.85))
    d.multiline_text((cx, cy), text, font=fnt, fill=fill, anchor="mm", align="center")


def shape(d, rng, kind, b, fill, line, width):
    x0, y0, x1, y1 = b
    if kind == "rect":
        d.rectangle(b, fill=fill, outline=line, width=width)
    elif kind == "round":
        d.rounded_rectangle(b, radius=min(x1 - x0, y1 - y0) // rng.choice([3, 5, 8]), fill=fill, outline=line,
                            width=width)
    elif kind == "diamond":
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        d.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill, outline=line, width=width)
    elif kind == "ellipse":
        d.ellipse(b, fill=fill, outline=line, width=width)
    elif kind == "para":
        k = (x1 - x0) // 6
        d.polygon([(x0 + k, y0), (x1, y0), (x1 - k, y1), (x0, y1)], fill=fill, outline=line, width=width)
    elif kind == "hexagon":
        k = (x1 - x0) // 6
        cy = (y0 + y1) / 2
        d.polygon([(x0 + k, y0), (x1 - k, y0), (x1, cy), (x1 - k, y1), (x0 + k, y1), (x0, cy)], fill=fill,
                  outline=line, width=width)
    elif kind == "process":  # a box with double side bars
        d.rectangle(b, fill=fill, outline=line, width=width)
        k = max(6, (x1 - x0) // 12)
        d.line([(x0 + k, y0), (x0 + k, y1)], fill=line, width=width)
        d.line([(x1 - k, y0), (x1 - k, y1)], fill=line, width=width)
    elif kind == "cylinder":
        e = max(6, (y1 - y0) // 5)
        d.rectangle((x0, y0 + e // 2, x1, y1 - e // 2), fill=fill)
        d.ellipse((x0, y1 - e, x1, y1), fill=fill, outline=line, width=width)
        d.rectangle((x0 + width, y0 + e // 2, x1 - width, y1 - e // 2), fill=fill)
        d.line([(x0, y0 + e // 2), (x0, y1 - e // 2)], fill=line, width=width)
        d.line([(x1, y0 + e // 2), (x1, y1 - e // 2)], fill=line, width=width)
        d.ellipse((x0, y0, x1, y0 + e), fill=fill, outline=line, width=width)
    elif kind == "person":  # an icon: head and shoulders
        cx, w = (x0 + x1) / 2, min(x1 - x0, y1 - y0)
        d.ellipse((cx - w * 0.2, y0, cx + w * 0.2, y0 + w * 0.4), fill=fill, outline=line, width=width)
        d.pieslice((cx - w * 0.4, y0 + w * 0.45, cx + w * 0.4, y0 + w * 1.25), 180, 360, fill=fill, outline=line,
                   width=width)
    elif kind == "cloud":
        w, h = x1 - x0, y1 - y0
        for fx, fy, r in [(0.3, 0.6, 0.3), (0.5, 0.4, 0.35), (0.72, 0.6, 0.28), (0.5, 0.68, 0.3)]:
            rr = r * min(w, 1.6 * h)
            d.ellipse((x0 + fx * w - rr, y0 + fy * h - rr * 0.7, x0 + fx * w + rr, y0 + fy * h + rr * 0.7),
                      fill=fill, outline=line, width=width)
    elif kind == "gear":
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, min(x1 - x0, y1 - y0) / 2
        pts = [(cx + (r if i % 2 else r * 0.75) * math.cos(i * math.pi / 8),
                cy + (r if i % 2 else r * 0.75) * math.sin(i * math.pi / 8)) for i in range(16)]
        d.polygon(pts, fill=fill, outline=line)
        d.ellipse((cx - r * 0.3, cy - r * 0.3, cx + r * 0.3, cy + r * 0.3), fill=line)


def arrow(d, pts, col, width, head):
    d.line(pts, fill=col, width=width, joint="curve")
    (ax, ay), (bx, by) = pts[-2], pts[-1]
    a = math.atan2(by - ay, bx - ax)
    if head == "none":
        return
    p1 = (bx - head_len(width) * math.cos(a - 0.45), by - head_len(width) * math.sin(a - 0.45))
    p2 = (bx - head_len(width) * math.cos(a + 0.45), by - head_len(width) * math.sin(a + 0.45))
    if head == "open":
        d.line([p1, (bx, by), p2], fill=col, width=width)
    else:
        d.polygon([(bx, by), p1, p2], fill=col)


def head_len(width):
    return 6 + 3 * width


def connect(d, rng, a, b, col, width, head, elbow):
    """An arrow from box a to box b: straight between facing sides, or an elbow."""
    acx, acy, bcx, bcy = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2, (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    if abs(bcx - acx) >= abs(bcy - acy):
        sx, ex = (a[2], b[0]) if bcx > acx else (a[0], b[2])
        if elbow and abs(bcy - acy) > 4:
            mx = (sx + ex) / 2
            arrow(d, [(sx, acy), (mx, acy), (mx, bcy), (ex, bcy)], col, width, head)
        else:
            arrow(d, [(sx, acy), (ex, acy if not elbow else bcy)], col, width, head)
    else:
        sy, ey = (a[3], b[1]) if bcy > acy else (a[1], b[3])
        if elbow and abs(bcx - acx) > 4:
            my = (sy + ey) / 2
            arrow(d, [(acx, sy), (acx, my), (bcx, my), (bcx, ey)], col, width, head)
        else:
            arrow(d, [(acx, sy), (acx if not elbow else bcx, ey)], col, width, head)


def flowchart(d, rng, W, H, theme, s):
    """Nodes on a grid (rows x columns, some cells empty), joined left to right or top down."""
    page, fills, ink = theme
    rows, cols = rng.randint(1, 4), rng.randint(2, 6)
    if rng.random() < 0.4:
        rows, cols = cols, max(1, rows)
    cw, ch = W / cols, H / rows
    kinds = rng.sample(["rect", "round", "diamond", "ellipse", "para", "process", "cylinder", "hexagon"], 3)
    width, head, elbow = rng.choice([1, 1, 2, 3]) * s, rng.choice(["fill", "fill", "open"]), rng.random() < 0.6
    fnt = font(rng, int(rng.uniform(0.09, 0.16) * min(cw * 0.9, ch * 2.2)) + 6 * s)
    line_col = ink if rng.random() < 0.6 else rng.choice(fills)
    nodes = {}
    for r in range(rows):
        for c in range(cols):
            if rng.random() < 0.2 and len(nodes) > 1:
                continue
            bw, bh = cw * rng.uniform(0.55, 0.75), ch * rng.uniform(0.35, 0.6)
            cx, cy = cw * (c + 0.5), ch * (r + 0.5)
            nodes[(r, c)] = (int(cx - bw / 2), int(cy - bh / 2), int(cx + bw / 2), int(cy + bh / 2))
    keys = sorted(nodes)
    for i, k in enumerate(keys):  # edges first so that boxes cover their ends
        for j in keys[i + 1:]:
            near = (j[0] == k[0] and j[1] == k[1] + 1) or (j[1] == k[1] and j[0] == k[0] + 1)
            if near or rng.random() < 0.06:
                connect(d, rng, nodes[k], nodes[j], line_col, width, head, elbow)
    for k in keys:
        kind = rng.choice(kinds)
        fill = rng.choice(fills)
        shape(d, rng, kind, nodes[k], fill, ink, width)
        text_in(d, nodes[k], label(rng), fnt, ink if sum(fill) > 380 else (255, 255, 255))


def pipeline(d, rng, W, H, theme, s):
    """A left-to-right (or top-down) pipeline: uneven columns of 1 to 3 nodes, fan-out and fan-in
    elbow connectors, a side input joining late, random sizes, so that the page is not symmetric."""
    page, fills, ink = theme
    vertical = rng.random() < 0.3
    if vertical:
        W, H = H, W  # laid out across, drawn transposed through the helper below
    n_cols = rng.randint(3, 7)
    weights = [rng.uniform(0.6, 1.6) for _ in range(n_cols)]
    xs, acc = [], 0.0
    for w in weights:
        xs.append((acc + w / 2) / sum(weights) * W)
        acc += w
    kinds = rng.sample(["rect", "round", "round", "diamond", "process", "ellipse", "hexagon", "cylinder"], 3)
    width, head = rng.choice([1, 1, 2]) * s, rng.choice(["fill", "fill", "open"])
    line_col = rng.choice([ink, (100, 110, 130), (90, 90, 90), rng.choice(fills)])
    fnt = font(rng, max(9 * s, int(min(W / n_cols, H) * rng.uniform(0.08, 0.14))))
    cols = []
    for c in range(n_cols):
        m = rng.choice([1, 1, 1, 2, 2, 3])
        bw = W / sum(weights) * weights[c] * rng.uniform(0.5, 0.75)
        bh = min(H / (m + 1) * rng.uniform(0.6, 1.0), bw * rng.uniform(0.35, 0.9))
        ys = sorted(rng.uniform(bh / 2 + 2 * s, H - bh / 2 - 2 * s) for _ in range(m))
        if m > 1:  # spread them apart
            ys = [H * (i + 0.5 + rng.uniform(-0.15, 0.15)) / m for i in range(m)]
        jitter = rng.uniform(-0.1, 0.1) * W / n_cols
        cols.append([(int(xs[c] + jitter - bw / 2), int(y - bh / 2), int(xs[c] + jitter + bw / 2), int(y + bh / 2))
                     for y in ys])

    def tr(b):
        return (b[1], b[0], b[3], b[2]) if vertical else b

    for c in range(n_cols - 1):
        for a in cols[c]:
            targets = rng.sample(cols[c + 1], rng.randint(1, len(cols[c + 1])))
            for b in targets:
                connect(d, rng, tr(a), tr(b), line_col, width, head, True)
    if n_cols > 3 and not vertical and rng.random() < 0.6:  # a side input joining a later node from below
        b = rng.choice(cols[rng.randint(2, n_cols - 1)])
        src = (int(0.02 * W), int(0.8 * H), int(0.02 * W + W / n_cols * 0.7), int(0.97 * H))
        if b[3] < src[1]:
            x_end, y_src = (b[0] + b[2]) / 2, (src[1] + src[3]) / 2
            arrow(d, [(src[2], y_src), (x_end, y_src), (x_end, b[3])], line_col, width, head)
            cols[0].append(src)
    for c, nodes in enumerate(cols):
        for b in nodes:
            fill = rng.choice(fills)
            shape(d, rng, rng.choice(kinds), tr(b), fill, ink if rng.random() < 0.7 else line_col, width)
            text_in(d, tr(b), label(rng), fnt, ink if sum(fill) > 380 else (255, 255, 255))
        if rng.random() < 0.1 and len(nodes) == 1:  # "more of these" dots between parallel nodes
            b = tr(nodes[0])
            for k in range(3):
                cx = b[0] + (b[2] - b[0]) * (0.4 + 0.1 * k)
                d.ellipse((cx - 3 * s, b[3] + 6 * s, cx + 3 * s, b[3] + 12 * s), fill=ink)


def block_diagram(d, rng, W, H, theme, s):
    """Group frames with titles, each holding a column or row of blocks; arrows between groups; icons."""
    page, fills, ink = theme
    n = rng.randint(2, 4)
    gw, pad = W / n, int(0.03 * W)
    fnt = font(rng, max(10 * s, int(min(W, H) * rng.uniform(0.03, 0.05))))
    tfnt = font(rng, fnt.size + 2 * s)
    width = rng.choice([1, 2]) * s
    groups = []
    for g in range(n):
        box = (int(g * gw + pad), pad, int((g + 1) * gw - pad), H - pad)
        if rng.random() < 0.7:
            dash = rng.random() < 0.5
            frame_fill = None if dash else tuple(min(255, v + 12) for v in page)
            d.rounded_rectangle(box, radius=8 * s, outline=rng.choice(fills) if dash else ink, width=width,
                                fill=frame_fill)
        d.text(((box[0] + box[2]) / 2, box[1] + 4 * s), rng.choice(WORDS).title(), font=tfnt, fill=ink,
               anchor="mt")
        m = rng.randint(1, 4)
        inner = []
        top = box[1] + tfnt.size + 12 * s
        bh = (box[3] - top) / m
        for i in range(m):
            b = (box[0] + int(0.12 * gw), int(top + i * bh + 0.15 * bh), box[2] - int(0.12 * gw),
                 int(top + (i + 1) * bh - 0.15 * bh))
            kind = rng.choice(["rect", "round", "round", "cylinder", "person", "cloud", "gear", "ellipse"])
            fill = rng.choice(fills)
            shape(d, rng, kind, b, fill, ink, width)
            if kind in ("person", "gear"):
                d.text(((b[0] + b[2]) / 2, b[3]), rng.choice(WORDS), font=fnt, fill=ink, anchor="md")
            else:
                text_in(d, b, label(rng), fnt, ink if sum(fill) > 380 else (255, 255, 255))
            if i:
                connect(d, rng, inner[-1], b, ink, width, "fill", False)
            inner.append(b)
        groups.append(inner)
    for g in range(n - 1):
        a, b = rng.choice(groups[g]), rng.choice(groups[g + 1])
        connect(d, rng, a, b, ink, width, rng.choice(["fill", "open"]), rng.random() < 0.5)


def layer_stack(d, rng, W, H, theme, s):
    """A model-architecture figure: a stack of layer blocks with a residual side path, maybe repeated."""
    page, fills, ink = theme
    cols = rng.randint(1, 3)
    fnt = font(rng, max(10 * s, int(min(W / cols, H) * rng.uniform(0.04, 0.06))))
    width = rng.choice([1, 2]) * s
    for c in range(cols):
        x0, x1 = int(W * (c + 0.2) / cols), int(W * (c + 0.8) / cols)
        m = rng.randint(3, 7)
        bh = H / (m + 1)
        prev = None
        for i in range(m):
            y0 = int(H - (i + 1) * bh)
            b = (x0, y0, x1, int(y0 + bh * 0.6))
            fill = rng.choice(fills)
            shape(d, rng, rng.choice(["round", "rect"]), b, fill, ink, width)
            text_in(d, b, rng.choice(WORDS), fnt, ink if sum(fill) > 380 else (255, 255, 255))
            if prev:
                connect(d, rng, prev, b, ink, width, "fill", False)
            prev = b
        if rng.random() < 0.6:  # skip connection drawn on the side
            y_lo, y_hi = int(H - bh * 0.7), int(H - m * bh + bh * 0.3)
            xs = x1 + int(0.08 * W / cols)
            arrow(d, [(x1, y_lo), (xs, y_lo), (xs, y_hi), (x1, y_hi)], ink, width, "fill")
        d.ellipse(((x0 + x1) / 2 - 8 * s, H - bh * 0.3, (x0 + x1) / 2 + 8 * s, H - bh * 0.3 + 16 * s),
                  outline=ink, width=width)


def table(d, rng, W, H, theme, s):
    """A table of words and numbers: header row, full grid or only rules, maybe banded rows."""
    page, fills, ink = theme
    rows, cols = rng.randint(4, 14), rng.randint(2, 6)
    fnt = font(rng, max(9 * s, int(min(H / (rows + 1) * 0.5, W / cols * 0.12))))
    x0, y0, x1, y1 = int(0.04 * W), int(0.05 * H), int(0.96 * W), int(0.95 * H)
    rh, cw = (y1 - y0) / (rows + 1), (x1 - x0) / cols
    grid, banded = rng.random() < 0.5, rng.random() < 0.5
    head_fill = rng.choice(fills)
    d.rectangle((x0, y0, x1, y0 + rh), fill=head_fill)
    for r in range(rows + 1):
        top = y0 + r * rh
        if banded and r and r % 2 == 0:
            d.rectangle((x0, top, x1, top + rh), fill=tuple(int(0.85 * p + 0.15 * f) for p, f in
                                                             zip(page, rng.choice(fills))))
        for c in range(cols):
            if r == 0:
                txt = rng.choice(WORDS).title()
            elif c == 0 or rng.random() < 0.4:
                txt = rng.choice(WORDS)
            else:
                txt = f"{rng.uniform(0, 100):.{rng.randint(0, 2)}f}" if rng.random() < 0.7 else rng.choice(["yes", "no", "n/a", "-"])
            d.text((x0 + c * cw + 6 * s, top + rh / 2), txt, font=fnt, fill=ink if r else
                   (ink if sum(head_fill) > 380 else (255, 255, 255)), anchor="lm")
        if grid or r in (0, 1):
            d.line([(x0, top), (x1, top)], fill=ink, width=s)
    d.line([(x0, y1), (x1, y1)], fill=ink, width=s)
    if grid:
        for c in range(cols + 1):
            d.line([(x0 + c * cw, y0), (x0 + c * cw, y1)], fill=ink, width=s)


def slide(d, rng, W, H, theme, s):
    """A presentation slide: title (maybe on a coloured bar), bullet points, maybe a small diagram on the side."""
    page, fills, ink = theme
    bar = rng.random() < 0.5
    tfnt = font(rng, int(H * rng.uniform(0.07, 0.1)))
    title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4))).title()
    if bar:
        col = rng.choice(fills)
        d.rectangle((0, 0, W, int(H * 0.16)), fill=col)
        d.text((int(0.05 * W), int(H * 0.08)), title, font=tfnt, fill=ink if sum(col) > 380 else (255, 255, 255),
               anchor="lm")
    else:
        d.text((int(0.05 * W), int(H * 0.05)), title, font=tfnt, fill=ink)
        d.line([(int(0.05 * W), int(H * 0.17)), (int(0.6 * W), int(H * 0.17))], fill=rng.choice(fills),
               width=3 * s)
    side = rng.random() < 0.5
    bfnt = font(rng, int(H * rng.uniform(0.04, 0.06)))
    y = int(H * 0.24)
    for i in range(rng.randint(3, 7)):
        indent = int(0.07 * W) + (int(0.04 * W) if i and rng.random() < 0.3 else 0)
        r = bfnt.size // 5
        d.ellipse((indent - 3 * r, y + bfnt.size // 2 - r, indent - r, y + bfnt.size // 2 + r), fill=ink)
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6 if side else 9)))
        d.text((indent, y), words[0].upper() + words[1:], font=bfnt, fill=ink)
        y += int(bfnt.size * rng.uniform(1.5, 2.0))
        if y > H * 0.9:
            break
    if side:
        sub = (int(W * 0.62), int(H * 0.25), int(W * 0.95), int(H * 0.9))
        fills2 = fills
        for i, kind in enumerate(rng.sample(["round", "person", "cloud", "cylinder", "gear", "ellipse"], 3)):
            h = (sub[3] - sub[1]) / 3
            b = (sub[0] + int(0.2 * (sub[2] - sub[0])), int(sub[1] + i * h + 0.15 * h), sub[2] - int(0.2 * (sub[2] - sub[0])),
                 int(sub[1] + (i + 1) * h - 0.15 * h))
            shape(d, rng, kind, b, rng.choice(fills2), ink, s)
    d.text((W - int(0.03 * W), H - int(0.03 * H)), str(rng.randint(2, 40)), font=bfnt, fill=ink, anchor="rb")


DIAGRAMS = [pipeline, flowchart, pipeline, block_diagram, pipeline, flowchart, block_diagram, layer_stack,
            table, slide]

# ---- charts: hard negatives in the same drawing style, so that only the data content tells them apart ----

SERIES = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (0, 191, 196),
          (248, 118, 109), (124, 174, 0), (231, 184, 0), (80, 80, 80)]


def nice_ticks(rng, lo, hi):
    step = rng.choice([0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 20, 25, 50, 100, 250, 1000])
    k = max(1, int((hi - lo) / step / rng.randint(4, 7)))
    return step * k


def panel(d, rng, box, style, s, fnt, ink):
    """Axes of one plot panel; returns a function from data (0..1, 0..1) to pixels."""
    x0, y0, x1, y1 = box
    if style["grey_panel"]:
        d.rectangle(box, fill=(235, 235, 235))
    xmax, ymax = rng.choice([1, 5, 10, 30, 60, 100, 250, 1000, 2000]), rng.choice([1, 2, 10, 25, 50, 100, 400])
    xlo = rng.choice([0, 0, -xmax])
    for ax, (lo, hi) in (("x", (xlo, xmax)), ("y", (0, ymax))):
        step = nice_ticks(rng, lo, hi)
        v = math.ceil(lo / step) * step
        while v <= hi + 1e-9:
            t = (v - lo) / (hi - lo)
            txt = f"{v:g}" if abs(v) < 1e5 else f"{v:.0e}"
            if ax == "x":
                px = x0 + t * (x1 - x0)
                if style["grid"]:
                    d.line([(px, y0), (px, y1)], fill=style["grid"], width=s)
                d.line([(px, y1), (px, y1 + 4 * s)], fill=ink, width=s)
                d.text((px, y1 + 6 * s), txt, font=fnt, fill=ink, anchor="mt")
            else:
                py = y1 - t * (y1 - y0)
                if style["grid"]:
                    d.line([(x0, py), (x1, py)], fill=style["grid"], width=s)
                d.line([(x0 - 4 * s, py), (x0, py)], fill=ink, width=s)
                d.text((x0 - 6 * s, py), txt, font=fnt, fill=ink, anchor="rm")
            v += step
    if style["axis_lines"]:
        d.line([(x0, y0), (x0, y1), (x1, y1)], fill=ink, width=s)
    elif style["frame"]:
        d.rectangle(box, outline=ink, width=s)
    return lambda u, v: (x0 + u * (x1 - x0), y1 - v * (y1 - y0))


def plot_content(d, rng, at, kind, s, cols):
    w = rng.choice([1, 2, 2, 3]) * s
    if kind == "line":
        for c in cols:
            n, v = rng.randint(8, 60), rng.random()
            pts = []
            for i in range(n):
                v = min(1, max(0, v + rng.gauss(0, 0.08)))
                pts.append(at(i / (n - 1), 0.05 + 0.9 * v))
            d.line(pts, fill=c, width=w)
            if rng.random() < 0.4:
                for p in pts:
                    d.ellipse((p[0] - 2 * w, p[1] - 2 * w, p[0] + 2 * w, p[1] + 2 * w), fill=c)
    elif kind == "step":  # survival / cumulative incidence curves
        up = rng.random() < 0.4
        for c in cols:
            u, v, pts = 0.0, 0.0 if up else 1.0, [at(0, 0 if up else 1)]
            while u < 1:
                u2 = min(1, u + rng.expovariate(12))
                pts += [at(u2, v)]
                v = min(1, v + rng.uniform(0, 0.08)) if up else max(0, v - rng.uniform(0, 0.08))
                pts += [at(u2, v)]
                u = u2
            d.line(pts, fill=c, width=w)
    elif kind == "scatter":
        for c in cols:
            a, b, r = rng.uniform(-0.5, 0.8), rng.uniform(0.1, 0.5), rng.randint(1, 4) * s
            for _ in range(rng.randint(20, 400)):
                u = rng.random()
                x, y = at(u, min(0.98, max(0.02, b + a * u * 0.6 + rng.gauss(0, 0.12))))
                d.ellipse((x - r, y - r, x + r, y + r), fill=c if rng.random() < 0.7 else None, outline=c)
    elif kind in ("bar", "hist"):
        n = rng.randint(3, 9) if kind == "bar" else rng.randint(15, 40)
        groups = cols if kind == "bar" else cols[:1]
        width = 0.8 / n / len(groups) if kind == "bar" else 1 / n
        for i in range(n):
            for g, c in enumerate(groups):
                u = (i + 0.1 + g * width * n) / n if kind == "bar" else i / n
                v = rng.uniform(0.1, 0.95) if kind == "bar" else math.exp(-((i / n - 0.5) * 4) ** 2) * 0.9
                (ax, ay), (bx, by) = at(u, v), at(u + width, 0)
                outline_only = rng.random() < 0.2
                d.rectangle((ax, ay, bx, by), fill=None if outline_only else c, outline=c if outline_only else
                            (60, 60, 60) if kind == "hist" else None)
                if kind == "bar" and rng.random() < 0.5:  # error bar
                    (ex, e1), (_, e2) = at(u + width / 2, v + 0.05), at(u + width / 2, v - 0.05)
                    d.line([(ex, e1), (ex, e2)], fill=(0, 0, 0), width=s)
    elif kind == "box":
        n = rng.randint(2, 6)
        for i in range(n):
            c = cols[i % len(cols)]
            m, q = rng.uniform(0.3, 0.7), rng.uniform(0.05, 0.15)
            (ax, ay), (bx, by) = at((i + 0.25) / n, m + q), at((i + 0.75) / n, m - q)
            (cx, wy1), (_, wy2) = at((i + 0.5) / n, min(0.98, m + 3 * q)), at((i + 0.5) / n, max(0.02, m - 3 * q))
            d.line([(cx, wy1), (cx, wy2)], fill=(40, 40, 40), width=s)
            d.rectangle((ax, ay, bx, by), fill=c if rng.random() < 0.6 else (255, 255, 255), outline=(40, 40, 40),
                        width=s)
            d.line([(ax, (ay + by) / 2), (bx, (ay + by) / 2)], fill=(0, 0, 0), width=2 * s)
    elif kind == "area":
        n = rng.randint(20, 80)
        v, pts = rng.random(), []
        for i in range(n):
            v = min(1, max(0.05, v + rng.gauss(0, 0.05)))
            pts.append(at(i / (n - 1), v))
        d.polygon(pts + [at(1, 0), at(0, 0)], fill=cols[0])


def legend(d, rng, x, y, cols, fnt, ink, s, vertical):
    for c in cols:
        d.rectangle((x, y, x + fnt.size, y + fnt.size), fill=c)
        txt = rng.choice(WORDS)
        d.text((x + fnt.size * 1.4, y + fnt.size / 2), txt, font=fnt, fill=ink, anchor="lm")
        if vertical:
            y += int(fnt.size * 1.6)
        else:
            x += int(fnt.size * 2 + d.textlength(txt, font=fnt))


def pie(d, rng, W, H, s, fnt, ink):
    n, cols = rng.randint(2, 7), rng.sample(SERIES, 7)
    r = min(W, H) * rng.uniform(0.3, 0.4)
    cx, cy = W / 2, H / 2 + fnt.size
    shares = [rng.random() + 0.2 for _ in range(n)]
    a = -90
    for i, sh in enumerate(shares):
        b = a + 360 * sh / sum(shares)
        d.pieslice((cx - r, cy - r, cx + r, cy + r), a, b, fill=cols[i], outline=(255, 255, 255), width=s)
        m = math.radians((a + b) / 2)
        d.text((cx + 1.12 * r * math.cos(m), cy + 1.12 * r * math.sin(m)), f"{100 * sh / sum(shares):.0f}%",
               font=fnt, fill=ink, anchor="mm")
        a = b
    if rng.random() < 0.5:  # donut
        d.ellipse((cx - r * 0.5, cy - r * 0.5, cx + r * 0.5, cy + r * 0.5), fill=(255, 255, 255))
    legend(d, rng, int(W * 0.05), int(fnt.size * 0.5), cols[:n], fnt, ink, s, False)


def chart(d, rng, W, H, theme, s):
    """Plot panels (one, or facets with strip labels) with ticks, tick labels, axis titles, legend."""
    ink = (30, 30, 30)
    fnt = font(rng, max(9 * s, int(min(W, H) * rng.uniform(0.025, 0.04))))
    if rng.random() < 0.12:
        pie(d, rng, W, H, s, fnt, ink)
        return
    style = {"grey_panel": rng.random() < 0.3, "axis_lines": rng.random() < 0.5, "frame": rng.random() < 0.4}
    style["grid"] = (255, 255, 255) if style["grey_panel"] else rng.choice([None, (220, 220, 220), (235, 235, 235)])
    kind = rng.choice(["line", "step", "step", "scatter", "bar", "hist", "box", "area"])
    cols = rng.sample(SERIES, rng.randint(1, 4))
    n_panels = 1 if rng.random() < 0.6 else rng.randint(2, 3)
    top = int(H * 0.12) if rng.random() < 0.6 else int(H * 0.04)
    if top > H * 0.1:
        d.text((int(W * 0.08), top // 2), " ".join(rng.choice(WORDS) for _ in range(3)).title(), font=fnt.font_variant(
            size=int(fnt.size * 1.3)), fill=ink, anchor="lm")
        legend(d, rng, int(W * 0.45), int(top * 0.75) - fnt.size // 2, cols, fnt, ink, s, False)
    left, bottom, pw = int(fnt.size * 5), H - int(fnt.size * 3.5), (W - fnt.size * 6) / n_panels
    d.text((fnt.size, (top + bottom) / 2), rng.choice(WORDS), font=fnt, fill=ink, anchor="lm")
    d.text((left + (W - left) / 2, H - fnt.size), rng.choice(WORDS), font=fnt, fill=ink, anchor="mm")
    for p in range(n_panels):
        box = (int(left + p * pw), top, int(left + (p + 1) * pw - fnt.size * 3), bottom)
        if n_panels > 1:  # facet strip label
            strip = (box[0], box[1], box[2], box[1] + int(fnt.size * 1.8))
            d.rectangle(strip, fill=(217, 217, 217) if rng.random() < 0.6 else None, outline=ink)
            text_in(d, strip, rng.choice(WORDS).upper(), fnt, ink)
            box = (box[0], strip[3] + 4 * s, box[2], box[3])
        at = panel(d, rng, box, style, s, fnt, ink)
        plot_content(d, rng, at, kind, s, cols)


def draw(n, kinds):
    rng = random.Random(SEED * 1000 + n + (0 if kinds is DIAGRAMS else 500))
    kind = kinds[n % len(kinds)]
    long_side = rng.randint(300, 1000)
    if kind is slide:
        aspect = 0.5625 if rng.random() < 0.6 else 0.75
    elif kind is chart:
        aspect = rng.choice([0.5, 0.6, 0.75, 0.8, 1.0, 1.25])
    else:
        aspect = rng.choice([0.25, 0.33, 0.5, 0.6, 0.75, 1.0, 1.33])
    W, H = (long_side, int(long_side * aspect)) if aspect <= 1 else (int(long_side / aspect), long_side)
    H = max(H, 200 if kind is chart else 120)
    s = 2 if rng.random() < 0.7 else 1  # drawn at 2x and shrunk: anti-aliased like most real exports
    theme = rng.choice(THEMES) if kind is not chart else THEMES[0]
    transparent = theme[0] == (255, 255, 255) and rng.random() < 0.5
    img = Image.new("RGB", (W * s, H * s), theme[0])
    kind(ImageDraw.Draw(img), rng, W * s, H * s, theme, s)
    if s > 1:
        img = img.resize((W, H), Image.LANCZOS)
    if transparent:  # the page made transparent, as diagram tools export it
        r, g, b = img.split()
        img.putalpha(Image.eval(ImageChops.darker(ImageChops.darker(r, g), b), lambda v: 0 if v == 255 else 255))
        return img.quantize(colors=rng.choice([64, 128, 256]), method=Image.Quantize.FASTOCTREE,
                            dither=Image.Dither.NONE)
    return img.quantize(colors=rng.choice([64, 128, 256]), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "data/router-extra"
    for cls, source, kinds, count in (("other", "synthdiagram", DIAGRAMS, COUNT),
                                      ("chart", "synthchart", [chart], CHART_COUNT)):
        out = os.path.join(root, cls)
        os.makedirs(out, exist_ok=True)
        for n in range(1, count + 1):
            draw(n, kinds).save(os.path.join(out, f"{cls}_{source}_{n}.png"), optimize=True)
        print(f"wrote {count} images to {out}")


if __name__ == "__main__":
    main()
