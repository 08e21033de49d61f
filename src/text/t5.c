#include "text/t5.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "formats/json_util.h"

#define T5_MAX_EXTRA_IDS 10000
#define EXTRA_NAME_CAP 24 /* "<extra_id_9999>" and its NUL fit */
#define CONFIG_MAX_BYTES (4u << 20)

static const char SPACE_SYM[] = "\xe2\x96\x81"; /* "▁" */
#define SPACE_SYM_LEN 3

struct T5Tokenizer {
    Tokenizer *sp;
    int n_pieces;      /* ids below this are SentencePiece pieces */
    int n_extra;       /* extra ids above them */
    int eos, unk, pad; /* -1 when the model has none */
    int clean_up;      /* clean_up_tokenization_spaces */
    char *extra_names; /* n_extra names of EXTRA_NAME_CAP bytes: <extra_id_0> first */
    char label[1100];  /* the spiece.model path, for messages */
};

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

typedef struct {
    const char *s;
    size_t n;
} Str;

static int buf_put(Buf *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

static int buf_putc(Buf *b, char c) { return buf_put(b, &c, 1); }

/* ------------------------------------------------------------- loading */

static const char *extra_name(const T5Tokenizer *t, int n) { return t->extra_names + (size_t)n * EXTRA_NAME_CAP; }

/* The N of "<extra_id_N>" at the start of s (N written as Python writes
 * it: no sign, no leading zeros), with its length in *len; -1 if none. */
static int parse_extra(const T5Tokenizer *t, const char *s, size_t n, size_t *len) {
    static const char prefix[] = "<extra_id_";
    size_t p = sizeof prefix - 1;
    if (n < p + 2 || memcmp(s, prefix, p) != 0 || s[p] < '0' || s[p] > '9') return -1;
    long v = 0;
    size_t i = p;
    while (i < n && s[i] >= '0' && s[i] <= '9' && v <= T5_MAX_EXTRA_IDS) v = v * 10 + (s[i++] - '0');
    if (i >= n || s[i] != '>' || (s[p] == '0' && i != p + 1) || v >= t->n_extra) return -1;
    *len = i + 1;
    return (int)v;
}

static int read_tokenizer_config(T5Tokenizer *t, const char *dir, Error *err) {
    char path[1100];
    if (path_join(path, sizeof path, dir, "tokenizer_config.json", err)) return -1;
    int64_t extra = 100;
    t->clean_up = 1;
    if (file_exists(path)) {
        cJSON *root;
        if (json_load_file(&root, path, CONFIG_MAX_BYTES, err)) return -1;
        int legacy = 1, rc = 0;
        if (!cJSON_IsObject(root)) rc = error_set(err, "%s: not a JSON object", path);
        if (!rc) rc = json_opt_int(root, "extra_ids", &extra, 0, T5_MAX_EXTRA_IDS, path, err);
        if (!rc) rc = json_opt_bool(root, "legacy", &legacy, path, err);
        if (!rc) rc = json_opt_bool(root, "clean_up_tokenization_spaces", &t->clean_up, path, err);
        if (!rc && !legacy)
            rc = error_set(err, "%s: legacy is false; only T5Tokenizer's legacy=True encoding is supported", path);
        cJSON_Delete(root);
        if (rc) return -1;
    }
    if ((int64_t)t->n_pieces + extra > INT_MAX / 2)
        return error_set(err, "%s: %d pieces and %lld extra ids are too many", t->label, t->n_pieces, (long long)extra);
    t->n_extra = (int)extra;
    t->extra_names = calloc((size_t)(extra ? extra : 1), EXTRA_NAME_CAP);
    if (!t->extra_names) return error_set(err, "out of memory");
    for (int i = 0; i < t->n_extra; i++)
        snprintf(t->extra_names + (size_t)i * EXTRA_NAME_CAP, EXTRA_NAME_CAP, "<extra_id_%d>", i);
    return 0;
}

/* added_tokens.json may only confirm what T5 adds by itself. */
static int check_added_tokens(const T5Tokenizer *t, const char *dir, Error *err) {
    char path[1100];
    if (path_join(path, sizeof path, dir, "added_tokens.json", err)) return -1;
    if (!file_exists(path)) return 0;
    cJSON *root;
    if (json_load_file(&root, path, CONFIG_MAX_BYTES, err)) return -1;
    int rc = cJSON_IsObject(root) ? 0 : error_set(err, "%s: not a JSON object", path);
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (rc) break;
        const char *name = item->string;
        if (!cJSON_IsNumber(item)) {
            rc = error_set(err, "%s: token '%s' maps to %s, not an id", path, name, json_type_name(item));
            break;
        }
        size_t len;
        int n = parse_extra(t, name, strlen(name), &len);
        int want = n >= 0 && len == strlen(name) ? t5_extra_id(t, n) : tokenizer_piece_id(t->sp, name, strlen(name));
        if (want < 0)
            rc = error_set(err, "%s: added token '%s' is not supported (only T5's <extra_id_N>)", path, name);
        else if (item->valuedouble != want)
            rc = error_set(err, "%s: token '%s' has id %g, but T5 with %d pieces and %d extra ids gives it %d", path,
                           name, item->valuedouble, t->n_pieces, t->n_extra, want);
    }
    cJSON_Delete(root);
    return rc;
}

int t5_load(T5Tokenizer **out, const char *dir, Error *err) {
    *out = NULL;
    T5Tokenizer *t = calloc(1, sizeof *t);
    if (!t) return error_set(err, "out of memory");
    if (path_join(t->label, sizeof t->label, dir, "spiece.model", err) || tokenizer_load_spm(&t->sp, t->label, err))
        goto fail;
    t->n_pieces = tokenizer_vocab_size(t->sp);
    t->eos = tokenizer_eos(t->sp);
    t->unk = tokenizer_unk(t->sp);
    t->pad = tokenizer_pad(t->sp);
    if (t->eos < 0) {
        error_set(err, "%s: the model has no </s> (eos) piece, which T5 appends to every text", t->label);
        goto fail;
    }
    if (read_tokenizer_config(t, dir, err) || check_added_tokens(t, dir, err)) goto fail;
    *out = t;
    return 0;
fail:
    t5_free(t);
    return -1;
}

void t5_free(T5Tokenizer *t) {
    if (!t) return;
    tokenizer_free(t->sp);
    free(t->extra_names);
    free(t);
}

int t5_vocab_size(const T5Tokenizer *t) { return t->n_pieces + t->n_extra; }
int t5_eos(const T5Tokenizer *t) { return t->eos; }
int t5_pad(const T5Tokenizer *t) { return t->pad; }
const Tokenizer *t5_spm(const T5Tokenizer *t) { return t->sp; }

int t5_extra_id(const T5Tokenizer *t, int n) {
    return n >= 0 && n < t->n_extra ? t->n_pieces + t->n_extra - 1 - n : -1;
}

const char *t5_token(const T5Tokenizer *t, int id) {
    if (id >= t->n_pieces && id < t5_vocab_size(t)) return extra_name(t, t->n_pieces + t->n_extra - 1 - id);
    return tokenizer_piece(t->sp, id);
}

int t5_token_id(const T5Tokenizer *t, const char *token) {
    size_t n = strlen(token), len;
    int e = parse_extra(t, token, n, &len);
    if (e >= 0 && len == n) return t5_extra_id(t, e);
    return tokenizer_piece_id(t->sp, token, n);
}

/* ------------------------------------------------------------ encoding */

/* Python's str.isspace() characters, as the UTF-8 bytes of each. */
static const char *const PY_SPACES[] = {
    "\t", "\n", "\v", "\f", "\r", "\x1c", "\x1d", "\x1e", "\x1f", " ", "\xc2\x85", "\xc2\xa0",
    "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82", "\xe2\x80\x83", "\xe2\x80\x84",
    "\xe2\x80\x85", "\xe2\x80\x86", "\xe2\x80\x87", "\xe2\x80\x88", "\xe2\x80\x89", "\xe2\x80\x8a",
    "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80",
};

/* Length of the whitespace character at the start (at_end 0) or the end
 * (at_end 1) of s, 0 when there is none. */
static size_t py_space(const char *s, size_t n, int at_end) {
    for (size_t i = 0; i < sizeof PY_SPACES / sizeof PY_SPACES[0]; i++) {
        size_t l = strlen(PY_SPACES[i]);
        if (l <= n && memcmp(at_end ? s + n - l : s, PY_SPACES[i], l) == 0) return l;
    }
    return 0;
}

/* str.strip(): *s and *n shrink to the text without outer whitespace. */
static void py_strip(const char **s, size_t *n, int left, int right) {
    size_t l;
    while (left && *n && (l = py_space(*s, *n, 0)) > 0) {
        *s += l;
        *n -= l;
    }
    while (right && *n && (l = py_space(*s, *n, 1)) > 0) *n -= l;
}

/* The special token (</s>, <unk>, <pad> or an extra id) that starts s, with
 * its length; -1 if none. None of them is a prefix of another, so the first
 * match is HF's trie match. */
static int match_special(const T5Tokenizer *t, const char *s, size_t n, size_t *len) {
    if (s[0] != '<') return -1;
    int plain[3] = {t->eos, t->unk, t->pad};
    for (int k = 0; k < 3; k++) {
        if (plain[k] < 0) continue;
        const char *p = tokenizer_piece(t->sp, plain[k]);
        size_t l = strlen(p);
        if (l && l <= n && memcmp(s, p, l) == 0) {
            *len = l;
            return plain[k];
        }
    }
    int e = parse_extra(t, s, n, len);
    return e >= 0 ? t5_extra_id(t, e) : -1;
}

typedef struct {
    Str text;
    int id; /* a special token, or -1 for text */
} Segment;

/* Splits text into special tokens and the text between them, then lets
 * each extra id eat the whitespace next to it (AddedToken lstrip/rstrip). */
static Segment *split_specials(const T5Tokenizer *t, const char *text, size_t len, size_t *n_seg) {
    Segment *seg = malloc(sizeof *seg * (2 * len + 2));
    if (!seg) return NULL;
    size_t n = 0, chunk = 0, sl;
    for (size_t pos = 0; pos < len;) {
        int id = match_special(t, text + pos, len - pos, &sl);
        if (id < 0) {
            pos++;
            continue;
        }
        if (pos > chunk) seg[n++] = (Segment){{text + chunk, pos - chunk}, -1};
        seg[n++] = (Segment){{text + pos, sl}, id};
        pos += sl;
        chunk = pos;
    }
    if (len > chunk) seg[n++] = (Segment){{text + chunk, len - chunk}, -1};
    for (size_t i = 0; i < n; i++) {
        if (seg[i].id < t->n_pieces) continue;
        if (i + 1 < n && seg[i + 1].id < 0) py_strip(&seg[i + 1].text.s, &seg[i + 1].text.n, 1, 0);
        if (i > 0 && seg[i - 1].id < 0) py_strip(&seg[i - 1].text.s, &seg[i - 1].text.n, 0, 1);
    }
    *n_seg = n;
    return seg;
}

static int push_ids(int **ids, int *n, int *cap, const int *src, int k) {
    if (*n + k > *cap) {
        int c = *cap ? *cap : 16;
        while (c < *n + k) c *= 2;
        int *p = realloc(*ids, sizeof(int) * (size_t)c);
        if (!p) return -1;
        *ids = p;
        *cap = c;
    }
    memcpy(*ids + *n, src, sizeof(int) * (size_t)k);
    *n += k;
    return 0;
}

int t5_encode(const T5Tokenizer *t, const char *text, int add_eos, int **ids, int *n_ids, Error *err) {
    *ids = NULL;
    *n_ids = 0;
    size_t len = text ? strlen(text) : 0, n_seg = 0;
    Segment *seg = split_specials(t, text ? text : "", len, &n_seg);
    if (!seg) return error_set(err, "%s: encode: out of memory for a text of %zu bytes", t->label, len);
    int n = 0, cap = 0, rc = 0;
    for (size_t i = 0; i < n_seg && rc == 0; i++) {
        if (seg[i].id >= 0) {
            if (push_ids(ids, &n, &cap, &seg[i].id, 1)) rc = error_set(err, "%s: encode: out of memory", t->label);
            continue;
        }
        if (seg[i].text.n == 0) continue;
        int *part, k;
        rc = tokenizer_encode_bytes(t->sp, seg[i].text.s, seg[i].text.n, 0, &part, &k, err);
        if (rc == 0 && push_ids(ids, &n, &cap, part, k)) rc = error_set(err, "%s: encode: out of memory", t->label);
        if (rc == 0) free(part);
    }
    free(seg);
    /* _add_eos_if_not_present */
    if (rc == 0 && add_eos && (n == 0 || (*ids)[n - 1] != t->eos) && push_ids(ids, &n, &cap, &t->eos, 1))
        rc = error_set(err, "%s: encode: out of memory", t->label);
    if (rc) {
        free(*ids);
        *ids = NULL;
        return -1;
    }
    *n_ids = n;
    return 0;
}

/* ------------------------------------------------------------ decoding */

static int is_special(const T5Tokenizer *t, int id) {
    return id == t->eos || id == t->unk || id == t->pad || id >= t->n_pieces;
}

/* Length of the valid UTF-8 character at s as sentencepiece decodes it
 * (no overlong forms, no surrogates, nothing past U+10FFFF), 0 if none. */
static size_t utf8_char_len(const unsigned char *s, size_t n) {
    if (s[0] < 0x80) return 1;
    if (n >= 2 && (s[0] & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80) {
        unsigned c = (s[0] & 0x1Fu) << 6 | (s[1] & 0x3Fu);
        return c >= 0x80 ? 2 : 0;
    }
    if (n >= 3 && (s[0] & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        unsigned c = (s[0] & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
        return c >= 0x800 && (c < 0xD800 || c > 0xDFFF) ? 3 : 0;
    }
    if (n >= 4 && (s[0] & 0xF8) == 0xF0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80) {
        unsigned c = (s[0] & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu);
        return c >= 0x10000 && c <= 0x10FFFF ? 4 : 0;
    }
    return 0;
}

/* A run of byte pieces: valid UTF-8 characters pass, each other byte
 * becomes U+FFFD. */
static int flush_bytes(Buf *bytes, Buf *out) {
    const unsigned char *p = (const unsigned char *)bytes->data;
    for (size_t i = 0; i < bytes->len;) {
        size_t l = utf8_char_len(p + i, bytes->len - i);
        if (l ? buf_put(out, p + i, l) : buf_put(out, "\xef\xbf\xbd", 3)) return -1;
        i += l ? l : 1;
    }
    bytes->len = 0;
    return 0;
}

static int byte_value(const char *s, size_t n) {
    unsigned v;
    char tail;
    if (n != 6 || sscanf(s, "<0x%2X%c", &v, &tail) != 2 || tail != '>') return -1;
    return (int)v;
}

/* sentencepiece's DecodePieces (0.1.97) for a model that removes extra
 * whitespace, as T5's do: "▁" is a space, the leading "▁" of the pieces
 * before any output is dropped, control pieces vanish, a string that is no
 * piece is written as it is. */
static int sp_decode(const T5Tokenizer *t, const Str *p, size_t n, Buf *out) {
    Buf bytes = {0};
    size_t start = out->len;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        Str s = p[i];
        int id = tokenizer_piece_id(t->sp, s.s, s.n);
        int type = id >= 0 ? tokenizer_piece_type(t->sp, id) : PIECE_UNKNOWN;
        if (type == PIECE_BYTE) {
            char b = (char)byte_value(s.s, s.n);
            rc = buf_put(&bytes, &b, 1);
            continue;
        }
        rc = flush_bytes(&bytes, out);
        if (rc || type == PIECE_CONTROL) continue;
        if (type == PIECE_UNKNOWN) {
            rc = id >= 0 ? buf_put(out, " \xe2\x81\x87 ", 5) : buf_put(out, s.s, s.n);
            continue;
        }
        if (out->len == start && s.n >= SPACE_SYM_LEN && memcmp(s.s, SPACE_SYM, SPACE_SYM_LEN) == 0) {
            s.s += SPACE_SYM_LEN;
            s.n -= SPACE_SYM_LEN;
        }
        for (size_t k = 0; k < s.n && rc == 0;) {
            int sym = k + SPACE_SYM_LEN <= s.n && memcmp(s.s + k, SPACE_SYM, SPACE_SYM_LEN) == 0;
            rc = sym ? buf_putc(out, ' ') : buf_putc(out, s.s[k]);
            k += sym ? SPACE_SYM_LEN : 1;
        }
    }
    if (rc == 0) rc = flush_bytes(&bytes, out);
    free(bytes.data);
    return rc;
}

/* T5Tokenizer.convert_tokens_to_string of the pieces of ids[0..n) (no
 * extra ids among them), appended to out. */
static int convert_run(const T5Tokenizer *t, const int *ids, size_t n, Str *scratch, Buf *out) {
    Buf b = {0};
    int rc = buf_put(&b, "", 0), prev_special = 0;
    size_t n_sub = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        Str s = {tokenizer_piece(t->sp, ids[i]), 0};
        s.n = strlen(s.s);
        /* "we manually add the prefix space, we have to remove it" */
        while (i == 0 && s.n >= SPACE_SYM_LEN && memcmp(s.s, SPACE_SYM, SPACE_SYM_LEN) == 0) {
            s.s += SPACE_SYM_LEN;
            s.n -= SPACE_SYM_LEN;
        }
        if (!is_special(t, ids[i])) {
            scratch[n_sub++] = s;
            prev_special = 0;
            continue;
        }
        if (!prev_special) rc = buf_putc(&b, ' ');
        if (rc == 0) rc = sp_decode(t, scratch, n_sub, &b);
        if (rc == 0) rc = buf_put(&b, s.s, s.n);
        prev_special = 1;
        n_sub = 0;
    }
    if (rc == 0) rc = sp_decode(t, scratch, n_sub, &b);
    if (rc == 0) {
        const char *s = b.data;
        size_t len = b.len;
        py_strip(&s, &len, 1, 1);
        rc = buf_put(out, s, len);
    }
    free(b.data);
    return rc;
}

/* Appends one of _decode's sub_texts: " ".join(sub_texts). */
static int put_sub_text(Buf *out, int *n_sub, const char *s, size_t n) {
    if ((*n_sub)++ > 0 && buf_putc(out, ' ')) return -1;
    return buf_put(out, s, n);
}

/* PreTrainedTokenizer.clean_up_tokenization: each str.replace in turn. */
static int clean_up(Buf *text) {
    static const char *const rules[][2] = {{" .", "."},     {" ?", "?"},     {" !", "!"},     {" ,", ","},
                                           {" ' ", "'"},    {" n't", "n't"}, {" 'm", "'m"},   {" 's", "'s"},
                                           {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        const char *from = rules[r][0], *to = rules[r][1];
        size_t fl = strlen(from), tl = strlen(to), w = 0;
        /* to is never longer than from, so the text is rewritten in place */
        for (size_t i = 0; i < text->len;) {
            if (i + fl <= text->len && memcmp(text->data + i, from, fl) == 0) {
                memmove(text->data + w, to, tl);
                w += tl;
                i += fl;
            } else {
                text->data[w++] = text->data[i++];
            }
        }
        text->len = w;
        text->data[w] = 0;
    }
    return 0;
}

int t5_decode(const T5Tokenizer *t, const int *ids, int n, int skip_special, char **out, Error *err) {
    *out = NULL;
    if (n < 0 || (n > 0 && !ids)) return error_set(err, "%s: decode: bad id list (%d ids)", t->label, n);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t5_vocab_size(t))
            return error_set(err, "%s: decode: token id %d (at %d) is outside the vocabulary of %d", t->label, ids[i],
                             i, t5_vocab_size(t));
    int *run = malloc(sizeof(int) * (size_t)(n + 1));
    Str *scratch = malloc(sizeof(Str) * (size_t)(n + 1));
    Buf text = {0}, part = {0};
    int rc = !run || !scratch || buf_put(&text, "", 0) ? -1 : 0, n_sub = 0;
    size_t n_run = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int id = ids[i];
        if (skip_special && is_special(t, id)) continue;
        if (id < t->n_pieces) {
            run[n_run++] = id;
            continue;
        }
        /* an extra id stands alone between separately converted runs */
        part.len = 0;
        if (n_run) rc = convert_run(t, run, n_run, scratch, &part);
        if (rc == 0 && part.len > 0) rc = put_sub_text(&text, &n_sub, part.data, part.len);
        n_run = 0;
        const char *name = t5_token(t, id);
        if (rc == 0) rc = put_sub_text(&text, &n_sub, name, strlen(name));
    }
    if (rc == 0 && n_run) {
        part.len = 0;
        rc = convert_run(t, run, n_run, scratch, &part);
        if (rc == 0) rc = put_sub_text(&text, &n_sub, part.data ? part.data : "", part.len);
    }
    if (rc == 0 && t->clean_up) rc = clean_up(&text);
    free(run);
    free(scratch);
    free(part.data);
    if (rc) {
        free(text.data);
        return error_set(err, "%s: decode: out of memory for %d ids", t->label, n);
    }
    *out = text.data;
    return 0;
}
