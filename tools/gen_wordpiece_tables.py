#!/usr/bin/env python3
"""Writes src/text/wordpiece_tables.h: the Unicode data the BERT tokenizer
(src/text/wordpiece.c) needs, taken from Python's unicodedata.

HF's BasicTokenizer asks unicodedata for character categories and runs
str.lower(), unicodedata.normalize("NFC") and normalize("NFD") on the text.
The tables hold what those calls answer for one character, for every code
point:

  classes  ranges of code points that are not ordinary characters:
           DROP  (category C*, U+0000, U+FFFD: removed by _clean_text),
           SPACE (Zs, \\t \\n \\r; also U+2028/U+2029, which _clean_text keeps
                  but str.split() splits on),
           PUNCT (category P* and the ASCII symbol ranges HF adds),
           MARK  (Mn: dropped when accents are stripped).
  lower    str.lower(); U+0130 is the only character that lowers to two
           (i + U+0307) and is left to the C code.
  nfc      NFC of a lone character when it differs: singletons (CJK
           compatibility ideographs, U+212B ANGSTROM SIGN, U+037E ...) and
           composition exclusions; nfc3 when that is 2 or 3 characters.
  strip    NFD with the Mn marks dropped, for characters NFC leaves alone
           (the C code applies nfc first); strip3 when that is 2 or 3
           characters. Hangul syllables are left to the C code (algorithmic).

One-character mappings are stored as runs (every stride-th code point from
first to last maps to `to`, or to `to` + (cp - first)) plus single pairs.

The C code maps character by character. The asserts below check that this
gives what HF's whole-string calls give, except that NFC also composes
sequences (e + U+0301 -> é), which the C code does not do; that cannot
matter once accents are stripped.

Run with the Python of the reference environment (3.11, Unicode 14.0.0):
    python3 tools/gen_wordpiece_tables.py > src/text/wordpiece_tables.h
"""
import sys
import unicodedata as ud

UNICODE_VERSION = "14.0.0"
N = 0x110000
DROP, SPACE, PUNCT, MARK = 1, 2, 3, 4


def char_class(c):
    ch = chr(c)
    cat = ud.category(ch)
    if ch in " \t\n\r" or cat == "Zs" or c in (0x2028, 0x2029):
        return SPACE
    if c == 0 or c == 0xFFFD or cat.startswith("C"):
        return DROP
    if 33 <= c <= 47 or 58 <= c <= 64 or 91 <= c <= 96 or 123 <= c <= 126 or cat.startswith("P"):
        return PUNCT
    if cat == "Mn":
        return MARK
    return 0


def class_ranges():
    out, start, cur = [], 0, char_class(0)
    for c in range(1, N + 1):
        k = char_class(c) if c < N else -1
        if k != cur:
            if cur:
                out.append((start, c - 1, cur))
            start, cur = c, k
    return out


def nfc(ch):
    return ud.normalize("NFC", ch)


def strip(s):
    return "".join(ch for ch in ud.normalize("NFD", s) if ud.category(ch) != "Mn")


def add(one, many, c, s):
    assert 1 <= len(s) <= 3, hex(c)
    if len(s) == 1:
        one[c] = ord(s)
    else:
        many[c] = [ord(x) for x in s] + [0] * (3 - len(s))


def maps():
    lower, nfc1, nfc3, strip1, strip3 = {}, {}, {}, {}, {}
    for c in range(N):
        ch = chr(c)
        low = ch.lower()
        assert low.lower() == low  # BasicTokenizer lowers twice
        if low != ch:
            if len(low) == 1:
                lower[c] = ord(low)
            else:
                assert c == 0x130 and low == "i\u0307", hex(c)
        if char_class(c) in (SPACE, DROP):
            continue  # clean-up removes these before NFC
        n = nfc(ch)
        if n != ch:
            add(nfc1, nfc3, c, n)
        for x in n:
            # NFC output is stable and never a space or a dropped character
            assert nfc(x) == x and char_class(ord(x)) not in (SPACE, DROP), hex(c)
        if n != ch or char_class(c) == MARK or 0xAC00 <= c <= 0xD7A3:
            continue
        s = strip(ch)
        assert all(char_class(ord(x)) not in (SPACE, DROP) for x in s), hex(c)
        if s != ch:
            add(strip1, strip3, c, s)
    for c in range(N):  # so the lower-casing after NFC changes nothing
        for x in chr(c).lower():
            assert char_class(ord(x)) in (SPACE, DROP) or all(y.lower() == y for y in nfc(x)), hex(c)
    return lower, nfc1, nfc3, strip1, strip3


def runs(mapping):
    """Greedy disjoint runs (first, last, to, stride, fixed)."""
    out, used = [], set()
    for c in sorted(mapping):
        if c in used:
            continue
        t = mapping[c]
        best = (1, 1, 0)
        for stride in (1, 2):
            for fixed in (0, 1):
                n = 1
                while True:
                    cp = c + n * stride
                    want = t if fixed else t + n * stride
                    # runs must not overlap (the C code binary-searches
                    # them), so a stride-2 run needs unmapped gaps
                    if cp in used or mapping.get(cp) != want or (stride == 2 and cp - 1 in mapping):
                        break
                    n += 1
                if n > best[0]:
                    best = (n, stride, fixed)
        n, stride, fixed = best
        for k in range(n):
            used.add(c + k * stride)
        out.append((c, c + (n - 1) * stride, t, stride, fixed))
    spans = sorted((r[0], r[1]) for r in out)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
    back = {}
    for first, last, to, stride, fixed in out:
        for cp in range(first, last + 1, stride):
            back[cp] = to if fixed else to + (cp - first)
    assert back == mapping
    return out


def emit(name, ctype, rows, per_line):
    print(f"static const {ctype} {name}[] = {{")
    for i in range(0, len(rows), per_line):
        print("    " + "".join(rows[i:i + per_line]))
    print("};")
    print()


def emit_map(name, mapping):
    """Runs of two or more as WpMapRun, the rest as WpMapPair."""
    all_runs = runs(mapping)
    long_runs = [r for r in all_runs if r[0] != r[1]]
    pairs = [(r[0], r[2]) for r in all_runs if r[0] == r[1]]
    emit(name + "_runs", "WpMapRun", [f"{{0x{a:X},0x{b:X},0x{t:X},{s},{f}}}," for a, b, t, s, f in long_runs], 5)
    emit(name + "_pairs", "WpMapPair", [f"{{0x{a:X},0x{t:X}}}," for a, t in pairs], 8)


def emit_map3(name, mapping):
    emit(name, "WpMap3", [f"{{0x{c:X},{{0x{v[0]:X},0x{v[1]:X},0x{v[2]:X}}}}}," for c, v in sorted(mapping.items())],
         4)


def main():
    if ud.unidata_version != UNICODE_VERSION:
        sys.exit(f"unicodedata is {ud.unidata_version}; the reference environment has {UNICODE_VERSION}")
    classes = class_ranges()
    lower, nfc1, nfc3, strip1, strip3 = maps()
    print("/* Generated by tools/gen_wordpiece_tables.py from Python's unicodedata")
    print(f" * (Unicode {UNICODE_VERSION}, the version of the reference environment):")
    print(" * do not edit. Covers every code point; the script says what each table")
    print(" * means. Included by wordpiece.c only. */")
    print()
    print("typedef struct { uint32_t first, last; uint8_t cls; } WpClassRange;")
    print("typedef struct { uint32_t first, last, to; uint8_t stride, fixed; } WpMapRun;")
    print("typedef struct { uint32_t cp, to; } WpMapPair;")
    print("typedef struct { uint32_t cp, to[3]; } WpMap3;")
    print()
    print(f"enum {{ WP_DROP = {DROP}, WP_SPACE = {SPACE}, WP_PUNCT = {PUNCT}, WP_MARK = {MARK} }};")
    print()
    emit("wp_classes", "WpClassRange", [f"{{0x{a:X},0x{b:X},{k}}}," for a, b, k in classes], 8)
    emit_map("wp_lower", lower)
    emit_map("wp_nfc", nfc1)
    emit_map3("wp_nfc3", nfc3)
    emit_map("wp_strip", strip1)
    emit_map3("wp_strip3", strip3)


if __name__ == "__main__":
    main()
