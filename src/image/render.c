/* transformers' render_text / render_header as PIL 9.4 + libraqm draw them;
 * see render.h for what is and is not reproduced. The numbered steps of
 * PIL's own code that this follows are named in the comments so the next
 * reader can check them against Pillow's _imagingft.c and ImageDraw.py. */
#include "image/render.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <ft2build.h>
#include FT_FREETYPE_H
#include FT_GLYPH_H
#include FT_BITMAP_H
#include FT_ADVANCES_H
#include FT_TRUETYPE_TABLES_H
#include FT_TRUETYPE_TAGS_H

#include "base/file.h"
#include "image/resize.h"

/* Longest text accepted, in bytes; the strip limit refuses far less. */
#define RENDER_MAX_TEXT (1u << 20)
/* GSUB/GPOS tables bigger than this are refused (real ones are < 1 MB). */
#define RENDER_MAX_LAYOUT_TABLE (16u << 20)

void render_options_default(RenderOptions *o) {
    memset(o, 0, sizeof *o);
    o->font_path = NULL;
    o->font_size = 36;
    o->padding = 5;
    o->wrap_width = 80;
    o->line_spacing = 4;
    memset(o->background_rgb, 255, 3);
}

/* ---- UTF-8 ---- */

/* Strict decoding: overlong forms, surrogates and values past U+10FFFF are
 * invalid, as they are for Python, which the original text came from. */
static int utf8_decode(const char *s, uint32_t **out, size_t *n_out, Error *err) {
    size_t len = strlen(s);
    if (len > RENDER_MAX_TEXT)
        return error_set(err, "render: text is %zu bytes, more than the limit of %u", len, RENDER_MAX_TEXT);
    uint32_t *cp = malloc((len + 1) * sizeof *cp);
    if (!cp) return error_set(err, "render: out of memory for %zu characters", len);
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0, i = 0;
    while (i < len) {
        unsigned c = p[i];
        int extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        uint32_t v = extra == 0 ? c : extra == 1 ? c & 0x1F : extra == 2 ? c & 0x0F : c & 0x07;
        int ok = extra >= 0 && i + (size_t)extra < len;
        for (int k = 1; ok && k <= extra; k++) {
            ok = (p[i + k] & 0xC0) == 0x80;
            v = v << 6 | (p[i + k] & 0x3F);
        }
        static const uint32_t min_value[4] = {0, 0x80, 0x800, 0x10000};
        if (ok && (v < min_value[extra] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))) ok = 0;
        if (!ok) {
            free(cp);
            return error_set(err, "render: text is not valid UTF-8 (byte %zu)", i);
        }
        cp[n++] = v;
        i += (size_t)extra + 1;
    }
    *out = cp;
    *n_out = n;
    return 0;
}

static size_t utf8_put(char *o, uint32_t c) {
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    size_t n = c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    static const unsigned char lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (size_t k = n - 1; k > 0; k--, c >>= 6) o[k] = (char)(0x80 | (c & 0x3F));
    o[0] = (char)(lead[n] | c);
    return n;
}

/* ---- Python character classes (str methods and the re module's \w \d) ---- */

/* str.isspace(), which str.strip() uses. */
static int py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* \d: decimal digits (ASCII and the common non-Latin digit blocks). */
static int py_isdigit(uint32_t c) {
    return (c >= '0' && c <= '9') || (c >= 0x660 && c <= 0x669) || (c >= 0x6F0 && c <= 0x6F9) ||
           (c >= 0x966 && c <= 0x96F) || (c >= 0xFF10 && c <= 0xFF19);
}

/* \w: alphanumeric or '_'. Exact for ASCII and Latin-1; above that the
 * punctuation and symbol blocks are not word characters and everything
 * else is (Python asks the Unicode database; this is close enough for
 * where textwrap breaks hyphenated words). */
static int py_isword(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (c < 0xC0)
        return c == 0xAA || c == 0xB2 || c == 0xB3 || c == 0xB5 || c == 0xB9 || c == 0xBA ||
               (c >= 0xBC && c <= 0xBE);
    if (c == 0xD7 || c == 0xF7 || py_isspace(c)) return 0;
    if ((c >= 0x2000 && c <= 0x206F) || (c >= 0x20A0 && c <= 0x20CF) || (c >= 0x2190 && c <= 0x2BFF) ||
        (c >= 0x3000 && c <= 0x3004) || (c >= 0x3008 && c <= 0x3020) || (c >= 0xE000 && c <= 0xF8FF) ||
        (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
        (c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65) || (c >= 0x1F000 && c <= 0x1FAFF))
        return 0;
    return 1;
}

static int py_isletter(uint32_t c) { return py_isword(c) && !py_isdigit(c); }

/* textwrap's word_punct: [\w!"'&.,?] */
static int py_isword_punct(uint32_t c) { return py_isword(c) || (c && c < 0x80 && strchr("!\"'&.,?", (int)c)); }

/* ---- textwrap.TextWrapper(width).wrap ---- */

typedef struct {
    size_t start, len; /* code points of the munged text */
} Span;

/* expandtabs(8), then each of \t\n\v\f\r becomes a space. */
static uint32_t *munge_whitespace(const uint32_t *t, size_t n, size_t *n_out) {
    size_t cap = n, m = 0, col = 0;
    for (size_t i = 0; i < n; i++) cap += t[i] == '\t' ? 7 : 0;
    uint32_t *o = malloc((cap + 1) * sizeof *o);
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '\t') {
            do o[m++] = ' ', col++;
            while (col % 8);
            continue;
        }
        col = (t[i] == '\n' || t[i] == '\r') ? 0 : col + 1;
        o[m++] = (t[i] == '\n' || t[i] == '\r' || t[i] == 0x0B || t[i] == 0x0C) ? ' ' : t[i];
    }
    *n_out = m;
    return o;
}

static size_t hyphen_run(const uint32_t *t, size_t n, size_t i) {
    size_t k = i;
    while (k < n && t[k] == '-') k++;
    return k - i;
}

/* (?=-{2,}\w) at i: an em-dash written as hyphens, then a word character. */
static int emdash_ahead(const uint32_t *t, size_t n, size_t i) {
    size_t k = hyphen_run(t, n, i);
    return k >= 2 && i + k < n && py_isword(t[i + k]);
}

/* The hyphenated-word branch of wordsep_re, for the '-' at e: letters
 * before it (two, or letter-hyphen-letter) and a letter, optionally a
 * hyphen, and a letter after it. */
static int hyphen_breaks(const uint32_t *t, size_t n, size_t e) {
    int before = (e >= 2 && py_isletter(t[e - 2]) && py_isletter(t[e - 1])) ||
                 (e >= 3 && py_isletter(t[e - 3]) && t[e - 2] == '-' && py_isletter(t[e - 1]));
    int after = e + 1 < n && py_isletter(t[e + 1]) &&
                ((e + 2 < n && py_isletter(t[e + 2])) || (e + 3 < n && t[e + 2] == '-' && py_isletter(t[e + 3])));
    return before && after;
}

/* End of the word chunk that starts at i: the shortest run of non-spaces
 * that ends after a breakable hyphen, before a space or the end, or before
 * an em-dash. */
static size_t word_end(const uint32_t *t, size_t n, size_t i) {
    for (size_t e = i + 1;; e++) {
        if (e < n && t[e] == '-' && hyphen_breaks(t, n, e)) return e + 1;
        if (e == n || t[e] == ' ') return e;
        if (py_isword_punct(t[e - 1]) && emdash_ahead(t, n, e)) return e;
    }
}

/* textwrap's _split: wordsep_re.split on the munged text (only spaces are
 * whitespace by now). Every position starts a match, so the chunks tile
 * the text. */
static size_t split_chunks(const uint32_t *t, size_t n, Span *out) {
    size_t m = 0, i = 0;
    while (i < n) {
        size_t j;
        if (t[i] == ' ') {
            j = i;
            while (j < n && t[j] == ' ') j++;
        } else if (i > 0 && py_isword_punct(t[i - 1]) && emdash_ahead(t, n, i)) {
            j = i + hyphen_run(t, n, i);
        } else {
            j = word_end(t, n, i);
        }
        out[m++] = (Span){i, j - i};
        i = j;
    }
    return m;
}

static int span_blank(const uint32_t *t, Span s) {
    for (size_t i = 0; i < s.len; i++)
        if (!py_isspace(t[s.start + i])) return 0;
    return 1;
}

/* textwrap's _handle_long_word with break_long_words and break_on_hyphens:
 * how much of chunk c goes on a line that has space_left characters. */
static size_t long_word_cut(const uint32_t *t, Span c, size_t space_left) {
    if (c.len <= space_left) return space_left;
    size_t hyphen = 0;
    int found = 0;
    for (size_t k = 0; k < space_left; k++)
        if (t[c.start + k] == '-') hyphen = k, found = 1;
    if (!found || hyphen == 0) return space_left;
    for (size_t k = 0; k < hyphen; k++)
        if (t[c.start + k] != '-') return hyphen + 1;
    return space_left;
}

/* textwrap's _wrap_chunks (no indents, no max_lines). A line is a run of
 * whole chunks, possibly followed by the front part of a long chunk, so it
 * is one span of the text. */
static size_t wrap_chunks(const uint32_t *t, Span *c, size_t m, size_t width, Span *lines) {
    size_t n_lines = 0, k = 0;
    while (k < m) {
        if (n_lines > 0 && span_blank(t, c[k])) k++;
        size_t first = k, cur_len = 0;
        while (k < m && cur_len + c[k].len <= width) cur_len += c[k++].len;
        /* pieces: chunks first..k-1, then maybe a cut piece of c[k] */
        int has_cut = 0;
        Span cut = {0, 0};
        if (k < m && c[k].len > width) {
            size_t space_left = width - cur_len; /* width >= 1 */
            size_t end = long_word_cut(t, c[k], space_left);
            cut = (Span){c[k].start, end};
            has_cut = 1;
            c[k].start += end;
            c[k].len -= end;
        }
        /* drop one trailing whitespace piece (an empty cut counts) */
        size_t last = k;
        if (has_cut && span_blank(t, cut))
            has_cut = 0;
        else if (!has_cut && last > first && span_blank(t, c[last - 1]))
            last--;
        if (has_cut) {
            size_t s = last > first ? c[first].start : cut.start;
            lines[n_lines++] = (Span){s, cut.start + cut.len - s};
        } else if (last > first) {
            lines[n_lines++] = (Span){c[first].start, c[last - 1].start + c[last - 1].len - c[first].start};
        }
    }
    return n_lines;
}

typedef struct {
    uint32_t *text; /* munged code points; lines point into it */
    Span *lines;
    size_t n_lines;
} Wrapped;

static void wrapped_free(Wrapped *w) {
    free(w->text);
    free(w->lines);
    memset(w, 0, sizeof *w);
}

static int wrap_text(Wrapped *w, const uint32_t *cp, size_t n, int width, Error *err) {
    memset(w, 0, sizeof *w);
    if (width < 1) return error_set(err, "render: wrap width %d, expected at least 1", width);
    size_t m = 0;
    w->text = munge_whitespace(cp, n, &m);
    if (!w->text) return error_set(err, "render: out of memory wrapping %zu characters", n);
    Span *chunks = malloc((m + 1) * sizeof *chunks);
    w->lines = malloc((m + 1) * sizeof *w->lines);
    if (!chunks || !w->lines) {
        free(chunks);
        wrapped_free(w);
        return error_set(err, "render: out of memory wrapping %zu characters", n);
    }
    size_t n_chunks = split_chunks(w->text, m, chunks);
    w->n_lines = wrap_chunks(w->text, chunks, n_chunks, (size_t)width, w->lines);
    free(chunks);
    return 0;
}

int render_wrap_text(char **out, const char *text, int width, Error *err) {
    uint32_t *cp;
    size_t n;
    *out = NULL;
    if (utf8_decode(text, &cp, &n, err)) return -1;
    Wrapped w;
    int rc = wrap_text(&w, cp, n, width, err);
    free(cp);
    if (rc) return -1;
    size_t total = 1;
    for (size_t i = 0; i < w.n_lines; i++) total += w.lines[i].len * 4 + 1;
    char *s = malloc(total), *o = s;
    if (!s) {
        wrapped_free(&w);
        return error_set(err, "render: out of memory");
    }
    for (size_t i = 0; i < w.n_lines; i++) {
        if (i) *o++ = '\n';
        for (size_t k = 0; k < w.lines[i].len; k++) o += utf8_put(o, w.text[w.lines[i].start + k]);
    }
    *o = 0;
    wrapped_free(&w);
    *out = s;
    return 0;
}

/* ---- OpenType layout tables (the part of HarfBuzz that Latin text needs) ---- */

/* A bounds-checked view of font bytes: reads past the end give 0, which
 * every table below treats as "nothing here", so a damaged font can lay
 * text out wrongly but never read outside its table. */
typedef struct {
    const uint8_t *d;
    size_t n;
} Blob;

static Blob blob_at(Blob b, size_t off) {
    if (!b.d || off >= b.n) return (Blob){NULL, 0};
    return (Blob){b.d + off, b.n - off};
}

static unsigned rd16(Blob b, size_t off) { return b.d && off + 2 <= b.n ? (unsigned)b.d[off] << 8 | b.d[off + 1] : 0; }

static int rd16s(Blob b, size_t off) {
    unsigned v = rd16(b, off);
    return v >= 0x8000 ? (int)v - 0x10000 : (int)v;
}

static uint32_t rd32(Blob b, size_t off) { return (uint32_t)rd16(b, off) << 16 | rd16(b, off + 2); }

#define TAG(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

/* Coverage table: the glyph's coverage index, or -1. */
static long coverage_index(Blob cov, unsigned glyph) {
    unsigned format = rd16(cov, 0), count = rd16(cov, 2);
    long lo = 0, hi = (long)count - 1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        if (format == 1) {
            unsigned g = rd16(cov, 4 + 2 * (size_t)mid);
            if (g == glyph) return mid;
            if (g < glyph) lo = mid + 1;
            else hi = mid - 1;
        } else if (format == 2) {
            size_t r = 4 + 6 * (size_t)mid;
            unsigned start = rd16(cov, r), end = rd16(cov, r + 2);
            if (glyph < start) hi = mid - 1;
            else if (glyph > end) lo = mid + 1;
            else return (long)rd16(cov, r + 4) + (long)(glyph - start);
        } else {
            return -1;
        }
    }
    return -1;
}

/* Class definition table: the glyph's class (0 when not listed). */
static unsigned class_of(Blob cd, unsigned glyph) {
    unsigned format = rd16(cd, 0);
    if (format == 1) {
        unsigned start = rd16(cd, 2), count = rd16(cd, 4);
        return glyph >= start && glyph - start < count ? rd16(cd, 6 + 2 * (size_t)(glyph - start)) : 0;
    }
    if (format != 2) return 0;
    long lo = 0, hi = (long)rd16(cd, 2) - 1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        size_t r = 4 + 6 * (size_t)mid;
        unsigned start = rd16(cd, r), end = rd16(cd, r + 2);
        if (glyph < start) hi = mid - 1;
        else if (glyph > end) lo = mid + 1;
        else return rd16(cd, r + 4);
    }
    return 0;
}

/* HarfBuzz's default-shaper features for horizontal left-to-right text
 * that use the lookup types implemented below. */
static const uint32_t GSUB_FEATURES[] = {TAG('c', 'c', 'm', 'p'), TAG('l', 'o', 'c', 'l'), TAG('r', 'l', 'i', 'g'),
                                         TAG('c', 'a', 'l', 't'), TAG('c', 'l', 'i', 'g'), TAG('l', 'i', 'g', 'a'),
                                         TAG('r', 'c', 'l', 't'), TAG('l', 't', 'r', 'a'), TAG('l', 't', 'r', 'm')};
static const uint32_t GPOS_FEATURES[] = {TAG('k', 'e', 'r', 'n'), TAG('d', 'i', 's', 't'), TAG('m', 'a', 'r', 'k'),
                                         TAG('m', 'k', 'm', 'k'), TAG('a', 'b', 'v', 'm'), TAG('b', 'l', 'w', 'm')};

/* The default LangSys of the script (HarfBuzz falls back to DFLT, dflt,
 * then latn when the font lacks the text's script). */
static Blob select_langsys(Blob table, uint32_t script) {
    Blob sl = blob_at(table, rd16(table, 4));
    const uint32_t tries[4] = {script, TAG('D', 'F', 'L', 'T'), TAG('d', 'f', 'l', 't'), TAG('l', 'a', 't', 'n')};
    unsigned count = rd16(sl, 0);
    for (int t = 0; t < 4; t++)
        for (unsigned i = 0; i < count; i++)
            if (rd32(sl, 2 + 6 * (size_t)i) == tries[t]) {
                Blob script_table = blob_at(sl, rd16(sl, 6 + 6 * (size_t)i));
                unsigned off = rd16(script_table, 0);
                return off ? blob_at(script_table, off) : (Blob){NULL, 0};
            }
    return (Blob){NULL, 0};
}

/* Marks in on[] (one byte per lookup index) the lookups of the wanted
 * features, plus the required feature, of the script's default LangSys. */
static void collect_lookups(Blob table, uint32_t script, const uint32_t *tags, int n_tags, uint8_t *on) {
    memset(on, 0, 65536);
    Blob ls = select_langsys(table, script);
    if (!ls.d) return;
    Blob fl = blob_at(table, rd16(table, 6));
    unsigned n_features = rd16(fl, 0), required = rd16(ls, 2), count = rd16(ls, 4);
    for (long k = -1; k < (long)count; k++) {
        unsigned f = k < 0 ? required : rd16(ls, 6 + 2 * (size_t)k);
        if (f >= n_features) continue; /* also 0xFFFF: no required feature */
        uint32_t tag = rd32(fl, 2 + 6 * (size_t)f);
        int wanted = k < 0;
        for (int t = 0; t < n_tags && !wanted; t++) wanted = tag == tags[t];
        if (!wanted) continue;
        Blob feature = blob_at(fl, rd16(fl, 6 + 6 * (size_t)f));
        unsigned n = rd16(feature, 2);
        for (unsigned i = 0; i < n; i++) on[rd16(feature, 4 + 2 * (size_t)i)] = 1;
    }
}

typedef struct {
    unsigned glyph;
    int x_advance, x_offset, y_offset; /* 1/64 pixel, y up */
} Glyph;

/* A subtable of a lookup, with extension subtables (GSUB 7, GPOS 9)
 * resolved to the subtable they point at. */
static Blob lookup_subtable(Blob lookup, unsigned s, unsigned ext_type, unsigned *type) {
    Blob st = blob_at(lookup, rd16(lookup, 6 + 2 * (size_t)s));
    *type = rd16(lookup, 0);
    if (*type == ext_type && rd16(st, 0) == 1) {
        *type = rd16(st, 2);
        st = blob_at(st, rd32(st, 4));
    }
    return st;
}

/* GSUB type 1. */
static int single_subst(Blob st, Glyph *g) {
    long cov = coverage_index(blob_at(st, rd16(st, 2)), g->glyph);
    if (cov < 0) return 0;
    unsigned format = rd16(st, 0);
    if (format == 1) g->glyph = (g->glyph + rd16(st, 4)) & 0xFFFF;
    else if (format == 2 && (unsigned long)cov < rd16(st, 4)) g->glyph = rd16(st, 6 + 2 * (size_t)cov);
    else return 0;
    return 1;
}

/* GSUB type 4 at position i: the first ligature of the glyph's set whose
 * components follow it becomes one glyph. (Lookup flags are not read, so
 * marks between components are not skipped as HarfBuzz would.) */
static int ligature_subst(Blob st, Glyph *g, size_t *n, size_t i) {
    if (rd16(st, 0) != 1) return 0;
    long cov = coverage_index(blob_at(st, rd16(st, 2)), g[i].glyph);
    if (cov < 0 || (unsigned long)cov >= rd16(st, 4)) return 0;
    Blob set = blob_at(st, rd16(st, 6 + 2 * (size_t)cov));
    unsigned n_ligs = rd16(set, 0);
    for (unsigned l = 0; l < n_ligs; l++) {
        Blob lig = blob_at(set, rd16(set, 2 + 2 * (size_t)l));
        size_t comps = rd16(lig, 2);
        if (comps == 0 || i + comps > *n) continue;
        size_t k = 1;
        while (k < comps && g[i + k].glyph == rd16(lig, 4 + 2 * (k - 1))) k++;
        if (k < comps) continue;
        g[i].glyph = rd16(lig, 0);
        memmove(g + i + 1, g + i + comps, (*n - i - comps) * sizeof *g);
        *n -= comps - 1;
        return 1;
    }
    return 0;
}

static void apply_gsub(Blob gsub, const uint8_t *on, Glyph *g, size_t *n) {
    Blob ll = blob_at(gsub, rd16(gsub, 8));
    unsigned n_lookups = rd16(ll, 0);
    for (unsigned li = 0; li < n_lookups; li++) {
        if (!on[li]) continue;
        Blob lookup = blob_at(ll, rd16(ll, 2 + 2 * (size_t)li));
        unsigned n_sub = rd16(lookup, 4);
        for (size_t i = 0; i < *n; i++) {
            for (unsigned s = 0; s < n_sub; s++) {
                unsigned type;
                Blob st = lookup_subtable(lookup, s, 7, &type);
                int applied = type == 1 ? single_subst(st, &g[i]) : type == 4 ? ligature_subst(st, g, n, i) : 0;
                if (applied) break;
            }
        }
    }
}

/* HarfBuzz's font-unit to 1/64-pixel scaling (hb_font_t::em_mult): a 16.16
 * multiplier, rounded, floor-shifted. */
typedef struct {
    int64_t x_mult, y_mult;
} EmScale;

static int em_scale(int v, int64_t mult) {
    int64_t p = (int64_t)v * mult + 32768;
    return (int)(p >= 0 ? p / 65536 : -((-p + 65535) / 65536));
}

static unsigned popcount16(unsigned v) {
    unsigned c = 0;
    for (; v; v &= v - 1) c++;
    return c;
}

/* A ValueRecord applied to a horizontal glyph. Device tables are ignored,
 * as HarfBuzz ignores them when no ppem is set (hb-ft sets none). */
static void apply_value(Glyph *g, Blob rec, size_t off, unsigned format, const EmScale *sc) {
    size_t k = 0;
    if (format & 1) g->x_offset += em_scale(rd16s(rec, off + 2 * k++), sc->x_mult);
    if (format & 2) g->y_offset += em_scale(rd16s(rec, off + 2 * k++), sc->y_mult);
    if (format & 4) g->x_advance += em_scale(rd16s(rec, off + 2 * k++), sc->x_mult);
}

/* GPOS type 2 at glyph i with its neighbour i + 1. Returns 1 when the
 * subtable applies (HarfBuzz then tries no further subtable) and sets
 * *next: past the second glyph when it got a value, else at it. */
static int pair_pos(Blob st, Glyph *g, size_t n, size_t i, const EmScale *sc, size_t *next) {
    unsigned format = rd16(st, 0), vf1 = rd16(st, 4), vf2 = rd16(st, 6);
    size_t len1 = popcount16(vf1), len2 = popcount16(vf2);
    long cov = coverage_index(blob_at(st, rd16(st, 2)), g[i].glyph);
    if (cov < 0 || i + 1 >= n) return 0;
    size_t j = i + 1;
    Blob values;
    size_t off;
    if (format == 1) {
        if ((unsigned long)cov >= rd16(st, 8)) return 0;
        Blob set = blob_at(st, rd16(st, 10 + 2 * (size_t)cov));
        size_t rec = 2 * (1 + len1 + len2);
        long lo = 0, hi = (long)rd16(set, 0) - 1, found = -1;
        while (lo <= hi && found < 0) {
            long mid = (lo + hi) / 2;
            unsigned second = rd16(set, 2 + rec * (size_t)mid);
            if (second == g[j].glyph) found = mid;
            else if (second < g[j].glyph) lo = mid + 1;
            else hi = mid - 1;
        }
        if (found < 0) return 0;
        values = set;
        off = 2 + rec * (size_t)found + 2;
    } else if (format == 2) {
        unsigned c1 = class_of(blob_at(st, rd16(st, 8)), g[i].glyph);
        unsigned c2 = class_of(blob_at(st, rd16(st, 10)), g[j].glyph);
        unsigned n1 = rd16(st, 12), n2 = rd16(st, 14);
        if (c1 >= n1 || c2 >= n2) return 0;
        values = st;
        off = 16 + 2 * (len1 + len2) * ((size_t)c1 * n2 + c2);
    } else {
        return 0;
    }
    apply_value(&g[i], values, off, vf1, sc);
    apply_value(&g[j], values, off + 2 * len1, vf2, sc);
    *next = len2 ? j + 1 : j;
    return 1;
}

static void apply_gpos(Blob gpos, const uint8_t *on, Glyph *g, size_t n, const EmScale *sc) {
    Blob ll = blob_at(gpos, rd16(gpos, 8));
    unsigned n_lookups = rd16(ll, 0);
    for (unsigned li = 0; li < n_lookups; li++) {
        if (!on[li]) continue;
        Blob lookup = blob_at(ll, rd16(ll, 2 + 2 * (size_t)li));
        unsigned n_sub = rd16(lookup, 4);
        size_t i = 0;
        while (i < n) {
            size_t next = i + 1;
            for (unsigned s = 0; s < n_sub; s++) {
                unsigned type;
                Blob st = lookup_subtable(lookup, s, 9, &type);
                if (type == 2 && pair_pos(st, g, n, i, sc, &next)) break;
            }
            i = next;
        }
    }
}

/* ---- the font ---- */

typedef struct {
    FT_Library lib;
    FT_Face face;
    uint8_t *gsub, *gpos;
    size_t gsub_n, gpos_n;
    EmScale em;
    int ascender; /* pixels, PIL's "la" anchor */
    uint8_t *lookups_on; /* 65536 flags, scratch */
    const char *path;
} Font;

static void font_close(Font *f) {
    free(f->gsub);
    free(f->gpos);
    free(f->lookups_on);
    if (f->face) FT_Done_Face(f->face);
    if (f->lib) FT_Done_FreeType(f->lib);
    memset(f, 0, sizeof *f);
}

static int load_layout_table(Font *f, FT_ULong tag, uint8_t **out, size_t *n, Error *err) {
    FT_ULong len = 0;
    *out = NULL;
    *n = 0;
    if (FT_Load_Sfnt_Table(f->face, tag, 0, NULL, &len) || len == 0) return 0; /* absent: no layout */
    if (len > RENDER_MAX_LAYOUT_TABLE)
        return error_set(err, "%s: layout table is %lu bytes, more than %u", f->path, (unsigned long)len,
                         RENDER_MAX_LAYOUT_TABLE);
    *out = malloc(len);
    if (!*out) return error_set(err, "%s: out of memory for a %lu-byte table", f->path, (unsigned long)len);
    if (FT_Load_Sfnt_Table(f->face, tag, 0, *out, &len)) {
        free(*out);
        *out = NULL;
        return 0;
    }
    *n = len;
    return 0;
}

/* PIXEL() of Pillow 9.4: a 26.6 value rounded to the nearest pixel, halves up. */
static int pixel_round(long v) {
    long p = v + 32;
    return (int)(p >= 0 ? p / 64 : -((-p + 63) / 64));
}

static int font_open(Font *f, const RenderOptions *o, Error *err) {
    memset(f, 0, sizeof *f);
    const char *path = o->font_path ? o->font_path : RENDER_DEFAULT_FONT;
    if (!file_exists(path)) {
        if (!o->font_path)
            return error_set(err,
                             "render: font %s not found: install the Debian package fonts-dejavu-core, or set "
                             "the font path (real DePlot used Arial; fonts-liberation's %s is metric-compatible)",
                             path, RENDER_ARIAL_LIKE_FONT);
        return error_set(err, "render: font %s not found", path);
    }
    if (o->font_size < 1 || o->font_size > 1000)
        return error_set(err, "render: font size %d, expected 1..1000 pixels", o->font_size);
    if (FT_Init_FreeType(&f->lib)) {
        f->lib = NULL;
        return error_set(err, "render: FreeType did not start");
    }
    FT_Error e = FT_New_Face(f->lib, path, 0, &f->face);
    if (e) f->face = NULL;
    if (e || !FT_IS_SCALABLE(f->face) || f->face->units_per_EM == 0 ||
        FT_Set_Pixel_Sizes(f->face, 0, (FT_UInt)o->font_size)) {
        font_close(f);
        return error_set(err, "render: %s is not a scalable font FreeType can read at %d pixels", path,
                         o->font_size);
    }
    f->path = path;
    /* hb_ft_font_changed's scale, then hb_font_t's 16.16 multiplier */
    uint64_t upem = f->face->units_per_EM;
    int64_t x_scale = (int64_t)(((uint64_t)f->face->size->metrics.x_scale * upem + 32768) >> 16);
    int64_t y_scale = (int64_t)(((uint64_t)f->face->size->metrics.y_scale * upem + 32768) >> 16);
    f->em.x_mult = x_scale * 65536 / (int64_t)upem;
    f->em.y_mult = y_scale * 65536 / (int64_t)upem;
    f->ascender = pixel_round(f->face->size->metrics.ascender);
    f->lookups_on = malloc(65536);
    if (!f->lookups_on) {
        font_close(f);
        return error_set(err, "render: out of memory");
    }
    if (load_layout_table(f, TTAG_GSUB, &f->gsub, &f->gsub_n, err) ||
        load_layout_table(f, TTAG_GPOS, &f->gpos, &f->gpos_n, err)) {
        font_close(f);
        return -1;
    }
    return 0;
}

/* The script of a character for run splitting; 0 = common (spaces,
 * digits, punctuation, and scripts not told apart here). */
static uint32_t script_of(uint32_t c) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == 0xAA || c == 0xBA ||
        (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7) || (c >= 0x1E00 && c <= 0x1EFF) ||
        (c >= 0x2C60 && c <= 0x2C7F) || (c >= 0xA720 && c <= 0xA7FF) || (c >= 0xFB00 && c <= 0xFB06) ||
        (c >= 0xFF21 && c <= 0xFF3A) || (c >= 0xFF41 && c <= 0xFF5A))
        return TAG('l', 'a', 't', 'n');
    if ((c >= 0x370 && c <= 0x3FF && c != 0x37E && c != 0x387) || (c >= 0x1F00 && c <= 0x1FFF))
        return TAG('g', 'r', 'e', 'k');
    if ((c >= 0x400 && c <= 0x52F) || (c >= 0x2DE0 && c <= 0x2DFF) || (c >= 0xA640 && c <= 0xA69F))
        return TAG('c', 'y', 'r', 'l');
    return 0;
}

/* One run of one script, as HarfBuzz shapes it: cmap, GSUB, advances,
 * GPOS. Appends to g (room for n more). */
static size_t shape_run(Font *f, const uint32_t *cp, size_t n, uint32_t script, Glyph *g) {
    for (size_t i = 0; i < n; i++) g[i] = (Glyph){FT_Get_Char_Index(f->face, cp[i]), 0, 0, 0};
    if (f->gsub) {
        collect_lookups((Blob){f->gsub, f->gsub_n}, script, GSUB_FEATURES,
                        (int)(sizeof GSUB_FEATURES / sizeof *GSUB_FEATURES), f->lookups_on);
        apply_gsub((Blob){f->gsub, f->gsub_n}, f->lookups_on, g, &n);
    }
    for (size_t i = 0; i < n; i++) {
        /* hb-ft: unhinted advance, 16.16 rounded to 26.6 through a float */
        FT_Fixed v = 0;
        FT_Get_Advance(f->face, g[i].glyph, FT_LOAD_DEFAULT | FT_LOAD_NO_HINTING, &v);
        g[i].x_advance = (int)((float)v * 1.0f + (float)(1 << 9)) >> 10;
    }
    if (f->gpos) {
        collect_lookups((Blob){f->gpos, f->gpos_n}, script, GPOS_FEATURES,
                        (int)(sizeof GPOS_FEATURES / sizeof *GPOS_FEATURES), f->lookups_on);
        apply_gpos((Blob){f->gpos, f->gpos_n}, f->lookups_on, g, n, &f->em);
    }
    return n;
}

/* raqm's itemisation for left-to-right text: runs of one script, the
 * common characters taking the script before them (or, at the start, the
 * first one after). g has room for n glyphs. */
static size_t shape_line(Font *f, const uint32_t *cp, size_t n, Glyph *g) {
    size_t out = 0, start = 0;
    uint32_t run_script = 0;
    for (size_t i = 0; i < n && !run_script; i++) run_script = script_of(cp[i]);
    for (size_t i = 0; i <= n; i++) {
        uint32_t s = i < n ? script_of(cp[i]) : 0;
        if (i == n || (s && s != run_script)) {
            out += shape_run(f, cp + start, i - start, run_script ? run_script : TAG('D', 'F', 'L', 'T'), g + out);
            start = i;
            if (s) run_script = s;
        }
    }
    return out;
}

/* ---- measuring and drawing, as Pillow 9.4's font_getsize / font_render ---- */

typedef struct {
    int width, height;       /* of the line's mask */
    int x_offset, y_offset;  /* where the mask goes, from the drawing point */
} LineBox;

/* font_getsize with anchor "la": glyph boxes (hinted, whole pixels) and the
 * pen line from 0 to the advance, top at the ascender. */
static int line_box(Font *f, const Glyph *g, size_t n, LineBox *b, Error *err) {
    long position = 0;
    int x_min = 0, x_max = 0, y_min = 0, y_max = 0;
    for (size_t i = 0; i < n; i++) {
        int px = pixel_round(position + g[i].x_offset), py = pixel_round(g[i].y_offset);
        position += g[i].x_advance;
        if (pixel_round(position) > x_max) x_max = pixel_round(position);
        FT_Glyph glyph;
        if (FT_Load_Glyph(f->face, g[i].glyph, FT_LOAD_DEFAULT) || FT_Get_Glyph(f->face->glyph, &glyph))
            return error_set(err, "render: %s: cannot load glyph %u", f->path, g[i].glyph);
        FT_BBox bb;
        FT_Glyph_Get_CBox(glyph, FT_GLYPH_BBOX_PIXELS, &bb);
        FT_Done_Glyph(glyph);
        if (bb.xMax + px > x_max) x_max = (int)bb.xMax + px;
        if (bb.xMin + px < x_min) x_min = (int)bb.xMin + px;
        if (bb.yMax + py > y_max) y_max = (int)bb.yMax + py;
        if (bb.yMin + py < y_min) y_min = (int)bb.yMin + py;
    }
    int y_anchor = n ? f->ascender : 0;
    b->width = x_max - x_min;
    b->height = y_max - y_min;
    b->x_offset = x_min;
    b->y_offset = y_anchor - y_max;
    return 0;
}

/* A rendered glyph as 8-bit coverage (Pillow converts 1, 2 and 4-bit
 * embedded bitmaps the same way). conv is initialised by the caller. */
static int glyph_gray(Font *f, FT_Bitmap *conv, const FT_Bitmap **out, Error *err) {
    const FT_Bitmap *bm = &f->face->glyph->bitmap;
    unsigned char scale = bm->pixel_mode == FT_PIXEL_MODE_MONO    ? 255
                          : bm->pixel_mode == FT_PIXEL_MODE_GRAY2 ? 255 / 3
                          : bm->pixel_mode == FT_PIXEL_MODE_GRAY4 ? 255 / 15
                                                                  : 1;
    *out = bm;
    if (bm->pixel_mode == FT_PIXEL_MODE_GRAY) return 0;
    if (scale == 1) return error_set(err, "render: %s: unsupported glyph bitmap mode %d", f->path, bm->pixel_mode);
    if (FT_Bitmap_Convert(f->lib, bm, conv, 1))
        return error_set(err, "render: %s: cannot convert a glyph bitmap", f->path);
    for (size_t k = 0; k < (size_t)conv->rows * (size_t)abs(conv->pitch); k++) conv->buffer[k] *= scale;
    *out = conv;
    return 0;
}

/* font_render into a zeroed width x height mask: glyphs at whole-pixel pen
 * positions, overlaps keep the larger coverage. */
static int line_mask(Font *f, const Glyph *g, size_t n, uint8_t *mask, int w, int h, Error *err) {
    long x = 0;
    int x_min = 0, y_max = 0;
    for (size_t i = 0; i < n; i++) {
        int px = pixel_round(x + g[i].x_offset), py = pixel_round(g[i].y_offset);
        if (FT_Load_Glyph(f->face, g[i].glyph, FT_LOAD_DEFAULT | FT_LOAD_RENDER))
            return error_set(err, "render: %s: cannot render glyph %u", f->path, g[i].glyph);
        if (f->face->glyph->bitmap_top + py > y_max) y_max = f->face->glyph->bitmap_top + py;
        if (f->face->glyph->bitmap_left + px < x_min) x_min = f->face->glyph->bitmap_left + px;
        x += g[i].x_advance;
    }
    x = -(long)x_min * 64;
    long y = -(long)y_max * 64;
    FT_Bitmap conv;
    FT_Bitmap_Init(&conv);
    for (size_t i = 0; i < n; i++) {
        int px = pixel_round(x + g[i].x_offset), py = pixel_round(y + g[i].y_offset);
        const FT_Bitmap *bm;
        if (FT_Load_Glyph(f->face, g[i].glyph, FT_LOAD_DEFAULT | FT_LOAD_RENDER)) {
            FT_Bitmap_Done(f->lib, &conv);
            return error_set(err, "render: %s: cannot render glyph %u", f->path, g[i].glyph);
        }
        if (!f->face->glyph->bitmap.buffer && f->face->glyph->bitmap.rows) {
            FT_Bitmap_Done(f->lib, &conv);
            return error_set(err, "render: %s: glyph %u has no bitmap", f->path, g[i].glyph);
        }
        if (glyph_gray(f, &conv, &bm, err)) {
            FT_Bitmap_Done(f->lib, &conv);
            return -1;
        }
        long xx = px + f->face->glyph->bitmap_left, yy = -(long)(py + f->face->glyph->bitmap_top);
        for (unsigned r = 0; r < bm->rows; r++, yy++) {
            if (yy < 0 || yy >= h) continue;
            const uint8_t *src = bm->buffer + (long)r * bm->pitch;
            for (unsigned k = 0; k < bm->width; k++) {
                long tx = xx + k;
                if (tx < 0 || tx >= w) continue;
                uint8_t *t = mask + (size_t)yy * w + tx;
                if (*t < src[k]) *t = src[k];
            }
        }
        x += g[i].x_advance;
    }
    FT_Bitmap_Done(f->lib, &conv);
    return 0;
}

/* Pillow's BLEND with DIV255: ink over the canvas by coverage m. */
static uint8_t blend(uint8_t m, uint8_t in, uint8_t ink) {
    unsigned t = (unsigned)in * (255u - m) + (unsigned)ink * m + 128u;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

/* ImageDraw's draw_bitmap: the mask pasted at (x, y) in ink, clipped. */
static void paste_mask(Image *canvas, const uint8_t *mask, int w, int h, long x, long y, const uint8_t ink[3]) {
    for (int r = 0; r < h; r++) {
        long cy = y + r;
        if (cy < 0 || cy >= canvas->height) continue;
        for (int k = 0; k < w; k++) {
            long cx = x + k;
            if (cx < 0 || cx >= canvas->width) continue;
            uint8_t *p = canvas->data + ((size_t)cy * canvas->width + (size_t)cx) * 3;
            uint8_t m = mask[(size_t)r * w + k];
            for (int c = 0; c < 3; c++) p[c] = blend(m, p[c], ink[c]);
        }
    }
}

/* ---- render_text ---- */

typedef struct {
    Glyph *g;
    size_t n;
    LineBox box;
} Line;

static void lines_free(Line *lines, size_t n) {
    if (!lines) return;
    for (size_t i = 0; i < n; i++) free(lines[i].g);
    free(lines);
}

static int check_options(const RenderOptions *o, Error *err) {
    if (o->padding < 0 || o->padding > 1000) return error_set(err, "render: padding %d, expected 0..1000", o->padding);
    if (o->line_spacing < 0 || o->line_spacing > 1000)
        return error_set(err, "render: line spacing %d, expected 0..1000", o->line_spacing);
    if (o->wrap_width < 1 || o->wrap_width > 100000)
        return error_set(err, "render: wrap width %d, expected 1..100000 characters", o->wrap_width);
    return 0;
}

/* Shapes and measures every line; *spacing = PIL's multiline step. */
static int layout_lines(Font *f, const Wrapped *w, Line **out, int *spacing, const RenderOptions *o, Error *err) {
    Line *lines = calloc(w->n_lines + 1, sizeof *lines);
    if (!lines) return error_set(err, "render: out of memory");
    for (size_t i = 0; i < w->n_lines; i++) {
        Span s = w->lines[i];
        lines[i].g = malloc((s.len + 1) * sizeof *lines[i].g);
        if (!lines[i].g) {
            lines_free(lines, w->n_lines);
            return error_set(err, "render: out of memory");
        }
        lines[i].n = shape_line(f, w->text + s.start, s.len, lines[i].g);
        if (line_box(f, lines[i].g, lines[i].n, &lines[i].box, err)) {
            lines_free(lines, w->n_lines);
            return -1;
        }
    }
    /* _multiline_spacing: textsize("A")[1] + spacing = size[1] + offset[1] + spacing */
    const uint32_t a = 'A';
    Glyph ga[1];
    LineBox ba;
    size_t na = shape_line(f, &a, 1, ga);
    if (line_box(f, ga, na, &ba, err)) {
        lines_free(lines, w->n_lines);
        return -1;
    }
    *spacing = ba.height + ba.y_offset + o->line_spacing;
    *out = lines;
    return 0;
}

int render_text(Image *out, const char *text, const RenderOptions *opt, Error *err) {
    RenderOptions def;
    memset(out, 0, sizeof *out);
    if (!opt) render_options_default(&def), opt = &def;
    if (!text) return error_set(err, "render: no text");
    if (check_options(opt, err)) return -1;
    uint32_t *cp;
    size_t n;
    if (utf8_decode(text, &cp, &n, err)) return -1;
    Wrapped w;
    int rc = wrap_text(&w, cp, n, opt->wrap_width, err);
    free(cp);
    if (rc) return -1;
    if (w.n_lines > RENDER_MAX_SIDE) {
        size_t nl = w.n_lines;
        wrapped_free(&w);
        return error_set(err, "render: the text wraps to %zu lines; the strip limit is %d pixels", nl,
                         RENDER_MAX_SIDE);
    }
    Font f;
    Line *lines = NULL;
    int spacing = 0;
    if (font_open(&f, opt, err) || layout_lines(&f, &w, &lines, &spacing, opt, err)) {
        font_close(&f);
        wrapped_free(&w);
        return -1;
    }
    /* textbbox at (0, 0): the lines' boxes, line k at top k * spacing (one
     * line is the same with k = 0); no text is the empty box at (0, 0) */
    long right = 0, bottom = 0;
    for (size_t i = 0; i < w.n_lines; i++) {
        const LineBox *b = &lines[i].box;
        long top = (long)i * spacing;
        long r = (long)b->x_offset + b->width, bt = top + b->y_offset + b->height;
        if (i == 0 || r > right) right = r;
        if (i == 0 || bt > bottom) bottom = bt;
    }
    long width = right + 2L * opt->padding, height = bottom + 2L * opt->padding;
    if (width < 1 || height < 1 || width > RENDER_MAX_SIDE || height > RENDER_MAX_SIDE) {
        rc = error_set(err, "render: the text makes a %ldx%ld strip (%zu lines); the limit is %d pixels each way",
                       width, height, w.n_lines, RENDER_MAX_SIDE);
    } else {
        rc = image_alloc(out, (int)width, (int)height, 3, 8, "render", err);
    }
    for (size_t p = 0; rc == 0 && p < (size_t)width * (size_t)height; p++)
        memcpy(out->data + 3 * p, opt->background_rgb, 3);
    for (size_t i = 0; rc == 0 && i < w.n_lines; i++) {
        const LineBox *b = &lines[i].box;
        if (b->width <= 0 || b->height <= 0) continue;
        uint8_t *mask = calloc((size_t)b->width * (size_t)b->height, 1);
        if (!mask) {
            rc = error_set(err, "render: out of memory");
            break;
        }
        rc = line_mask(&f, lines[i].g, lines[i].n, mask, b->width, b->height, err);
        if (rc == 0)
            paste_mask(out, mask, b->width, b->height, (long)opt->padding + b->x_offset,
                       (long)opt->padding + (long)i * spacing + b->y_offset, opt->text_rgb);
        free(mask);
    }
    if (rc) image_free(out);
    lines_free(lines, w.n_lines);
    font_close(&f);
    wrapped_free(&w);
    return rc;
}

/* ---- render_header ---- */

/* Python's int(h * (new_w / w)): a double quotient, a double product,
 * truncated. */
static long scaled_height(int h, int new_w, int w) { return (long)((double)h * ((double)new_w / (double)w)); }

int render_header(Image *out, const Image *rgb8, const char *header, const RenderOptions *o, Error *err) {
    memset(out, 0, sizeof *out);
    if (!rgb8 || !rgb8->data || rgb8->channels != 3 || rgb8->bits != 8 || rgb8->width < 1 || rgb8->height < 1)
        return error_set(err, "render_header: needs an 8-bit RGB image (convert it with image_to_rgb8)");
    Image hdr;
    if (render_text(&hdr, header, o, err)) return -1;
    int new_w = hdr.width > rgb8->width ? hdr.width : rgb8->width;
    long img_h = scaled_height(rgb8->height, new_w, rgb8->width);
    long hdr_h = scaled_height(hdr.height, new_w, hdr.width);
    long total = img_h + hdr_h;
    if (img_h < 1 || hdr_h < 1 || total > INT_MAX || image_check_size(new_w, total, NULL, "render_header", err)) {
        image_free(&hdr);
        if (img_h < 1 || hdr_h < 1 || total > INT_MAX)
            error_set(err, "render_header: a %dx%d image under a %dx%d header has no room", rgb8->width,
                      rgb8->height, hdr.width, hdr.height);
        return -1;
    }
    if (img_h * 100 < total) {
        error_set(err, "render_header: the header (%dx%d) would take %ld of the %ld rows and leave the %dx%d "
                       "image under 1%%: shorten the header text", hdr.width, hdr.height, hdr_h, total,
                  rgb8->width, rgb8->height);
        image_free(&hdr);
        return -1;
    }
    Image hdr_r = {0}, img_r = {0};
    int rc = image_resize_pil_bicubic(&hdr_r, &hdr, new_w, (int)hdr_h, err);
    if (rc == 0) rc = image_resize_pil_bicubic(&img_r, rgb8, new_w, (int)img_h, err);
    if (rc == 0) rc = image_alloc(out, new_w, (int)total, 3, 8, "render_header", err);
    if (rc == 0) {
        memcpy(out->data, hdr_r.data, image_size_bytes(&hdr_r));
        memcpy(out->data + image_size_bytes(&hdr_r), img_r.data, image_size_bytes(&img_r));
    }
    image_free(&hdr);
    image_free(&hdr_r);
    image_free(&img_r);
    return rc;
}
