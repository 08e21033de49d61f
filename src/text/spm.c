/* SentencePiece tokenizer (BPE and Unigram) with HF LlamaTokenizer's
 * legacy encode/decode rules on top. See spm.h for what it promises.
 *
 * Layout of this file:
 *   small buffers, UTF-8 and hashing helpers
 *   the piece table (strings, scores, types, a hash index)
 *   the protobuf reader and the ModelProto loader
 *   the HF tokenizer.json loader
 *   normalisation (sentencepiece's Normalizer, incl. precompiled charsmaps)
 *   BPE and Unigram segmentation, byte fallback
 *   HF's special-token split and tokenizer_encode
 *   decoding (sentencepiece's DecodePieces + HF's legacy rules)
 *   the ModelProto writer and the synthetic vocabulary */
#include "text/spm.h"

#include <float.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "formats/gguf.h"
#include "formats/json_util.h"

/* "▁" (U+2581), the whitespace marker of SentencePiece. */
static const char SPACE_SYM[] = "\xe2\x96\x81";
#define SPACE_SYM_LEN 3

/* Per-piece flags beyond the SentencePiece type. */
enum {
    F_SPLIT = 1,   /* matched in the text before encoding (HF added token) */
    F_SPECIAL = 2, /* HF special token: skipped by skip_special_tokens */
};

/* Files larger than this are refused; the biggest real SentencePiece models
 * (256k pieces) are ~20 MB and their tokenizer.json ~40 MB. */
#define MAX_MODEL_BYTES ((size_t)1 << 30)
#define MAX_JSON_BYTES ((size_t)512 << 20)
/* sentencepiece's trainer makes pieces of at most 512 characters (2048
 * bytes); longer ones could only be hand-made, and refusing them bounds
 * the work of every scan over growing piece lengths. */
#define MAX_PIECE_BYTES 2048
/* Text longer than this is refused by the encoder (positions are ints). */
#define MAX_TEXT_BYTES ((size_t)1 << 28)

typedef struct {
    uint64_t key; /* left id << 32 | right id; UINT64_MAX when empty */
    int rank;
    int result;
} MergeSlot;

struct Tokenizer {
    char label[512]; /* the file, as named in messages */
    int n, cap;
    uint32_t *off; /* piece i is blob + off[i], len[i] bytes, NUL-terminated */
    uint32_t *len;
    float *score;
    uint8_t *type;
    uint8_t *flags;
    char *blob;
    size_t blob_len, blob_cap;
    int32_t *slots; /* open-addressing index piece -> id, -1 empty */
    size_t n_slots;
    uint32_t *prefixes; /* fingerprints of every prefix of a mergeable piece, 0 empty */
    size_t n_prefix_slots;

    int model_type;
    int byte_fallback;
    int unk_id, bos_id, eos_id, pad_id;
    int byte_id[256];
    int max_len;      /* longest NORMAL / USER_DEFINED / UNUSED piece, bytes */
    int max_user_len; /* longest USER_DEFINED piece, 0 when there is none */
    float min_score, max_score; /* over NORMAL pieces, for Unigram */
    char unk_surface[64];
    int fuse_unk;

    /* normalizer_spec */
    char norm_name[64];
    int add_dummy_prefix, remove_extra_ws, escape_ws, ws_as_suffix;
    uint8_t *charsmap; /* precompiled_charsmap as stored, or NULL */
    size_t charsmap_len;
    size_t trie_units;      /* double-array units at charsmap + 4 */
    const char *norm_str;   /* replacement strings after the trie */
    size_t norm_str_len;

    /* tokenizer.json only */
    int use_merges;
    MergeSlot *merges;
    size_t n_merge_slots;
    int metaspace;         /* the prefix comes from a Metaspace pre-tokenizer */
    int prefix_first_only; /* Metaspace prepend_scheme "first" */
    int split_on_ws;       /* Metaspace split: BPE runs on each "▁word" */
};

/* ------------------------------------------------------------ helpers */

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->len) return -1;
    size_t need = b->len + extra + 1; /* room for a NUL */
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const void *p, size_t n) {
    if (buf_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

static int buf_putc(Buf *b, int c) {
    char ch = (char)c;
    return buf_put(b, &ch, 1);
}

typedef struct {
    int *v;
    size_t n, cap;
} IntVec;

static int ivec_push(IntVec *a, int x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(int)) return -1;
        int *p = realloc(a->v, cap * sizeof(int));
        if (!p) return -1;
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* Length of the UTF-8 character at s as sentencepiece's DecodeUTF8 accepts
 * it (no overlong forms, no surrogates, nothing past U+10FFFF), or 0 when
 * s[0] does not start a valid character. */
static int utf8_valid_len(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        unsigned cp = ((c & 0x1F) << 6) | (s[1] & 0x3F);
        return cp >= 0x80 ? 2 : 0;
    }
    if ((c & 0xF0) == 0xE0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        unsigned cp = ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000) ? 3 : 0;
    }
    if ((c & 0xF8) == 0xF0) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        unsigned cp = ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return cp >= 0x10000 && cp <= 0x10FFFF ? 4 : 0;
    }
    return 0;
}

/* sentencepiece's OneCharLen: the length the lead byte announces, cut to
 * what is left. Used on text that is already normalised. */
static int utf8_lead_len(const char *s, size_t n) {
    static const unsigned char len_by_top4[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t l = len_by_top4[(unsigned char)s[0] >> 4];
    return (int)(l < n ? l : n);
}

/* FNV-1a, one byte at a time, so the hashes of s[0..1], s[0..2], ... come
 * in one pass; hash_final mixes the state into the value tables use. */
#define HASH_SEED 1469598103934665603ull
static uint64_t hash_step(uint64_t h, char c) { return (h ^ (unsigned char)c) * 1099511628211ull; }
static uint64_t hash_final(uint64_t h) { return h ^ (h >> 29); }

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = HASH_SEED;
    for (size_t i = 0; i < n; i++) h = hash_step(h, s[i]);
    return hash_final(h);
}

/* A piece for a message: control characters escaped, cut at 40 bytes. */
static const char *show(char *dst, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 40) {
            o += (size_t)snprintf(dst + o, cap - o, "...");
            break;
        }
        if (c < 0x20 || c == 0x7F || c == '\'' || c == '\\')
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02X", c);
        else
            dst[o++] = (char)c;
    }
    dst[o] = 0;
    return dst;
}

static int parse_byte_piece(const char *s, size_t n) {
    /* exactly "<0xXX>" with upper-case hex digits, as ByteToPiece writes */
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* -------------------------------------------------------- piece table */

static Tokenizer *tok_new(const char *label) {
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    snprintf(t->label, sizeof t->label, "%s", label ? label : "tokenizer");
    t->unk_id = t->bos_id = t->eos_id = t->pad_id = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    t->model_type = SPM_UNIGRAM; /* the proto default */
    t->add_dummy_prefix = t->remove_extra_ws = t->escape_ws = 1;
    t->fuse_unk = 1;
    snprintf(t->unk_surface, sizeof t->unk_surface, " \xe2\x81\x87 ");
    return t;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    free(t->off);
    free(t->len);
    free(t->score);
    free(t->type);
    free(t->flags);
    free(t->blob);
    free(t->slots);
    free(t->prefixes);
    free(t->charsmap);
    free(t->merges);
    free(t);
}

static int tok_add_piece(Tokenizer *t, const char *s, size_t n, float score, int type, Error *err) {
    if (t->n == t->cap) {
        if (t->cap >= INT_MAX / 4) return error_set(err, "%s: more than %d pieces", t->label, INT_MAX / 4);
        int cap = t->cap ? t->cap * 2 : 1024;
        uint32_t *off = realloc(t->off, (size_t)cap * sizeof *off);
        if (off) t->off = off;
        uint32_t *len = realloc(t->len, (size_t)cap * sizeof *len);
        if (len) t->len = len;
        float *sc = realloc(t->score, (size_t)cap * sizeof *sc);
        if (sc) t->score = sc;
        uint8_t *ty = realloc(t->type, (size_t)cap);
        if (ty) t->type = ty;
        uint8_t *fl = realloc(t->flags, (size_t)cap);
        if (fl) t->flags = fl;
        if (!off || !len || !sc || !ty || !fl) return error_set(err, "%s: out of memory for %d pieces", t->label, cap);
        t->cap = cap;
    }
    if (n > MAX_PIECE_BYTES) {
        char b[200];
        return error_set(err, "%s: piece %d '%s' is %zu bytes long; pieces of more than %d bytes are refused", t->label,
                         t->n, show(b, sizeof b, s, n), n, MAX_PIECE_BYTES);
    }
    if (t->blob_len + n + 1 > UINT32_MAX)
        return error_set(err, "%s: the pieces hold more than 4 GB of text", t->label);
    if (t->blob_len + n + 1 > t->blob_cap) {
        size_t cap = t->blob_cap ? t->blob_cap : 1 << 16;
        while (cap < t->blob_len + n + 1) cap *= 2;
        char *b = realloc(t->blob, cap);
        if (!b) return error_set(err, "%s: out of memory for the piece strings", t->label);
        t->blob = b;
        t->blob_cap = cap;
    }
    if (n) memcpy(t->blob + t->blob_len, s, n);
    t->blob[t->blob_len + n] = 0;
    t->off[t->n] = (uint32_t)t->blob_len;
    t->len[t->n] = (uint32_t)n;
    t->score[t->n] = score;
    t->type[t->n] = (uint8_t)type;
    t->flags[t->n] = 0;
    t->blob_len += n + 1;
    t->n++;
    return 0;
}

static const char *piece_str(const Tokenizer *t, int id) { return t->blob + t->off[id]; }

/* Pieces BPE may form and Unigram may choose: sentencepiece's pieces_ map. */
static int is_mergeable(int type) {
    return type == PIECE_NORMAL || type == PIECE_USER_DEFINED || type == PIECE_UNUSED;
}

/* The id of the piece s[0..n) whose hash_bytes is h, or -1. */
static int lookup_hashed(const Tokenizer *t, const char *s, size_t n, uint64_t h) {
    if (!t->slots) return -1;
    size_t mask = t->n_slots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        int id = t->slots[i];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(piece_str(t, id), s, n) == 0) return id;
    }
}

static int lookup(const Tokenizer *t, const char *s, size_t n) { return lookup_hashed(t, s, n, hash_bytes(s, n)); }

/* The prefix set lets a scan over growing lengths stop where no piece
 * continues, as sentencepiece's trie does, instead of trying every length
 * up to the longest piece. A fingerprint collision only costs a few more
 * steps. */
static uint32_t prefix_fp(uint64_t h) { return (uint32_t)(h >> 32) | 1; }

static int has_prefix(const Tokenizer *t, uint64_t h) {
    size_t mask = t->n_prefix_slots - 1;
    uint32_t fp = prefix_fp(h);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (t->prefixes[i] == 0) return 0;
        if (t->prefixes[i] == fp) return 1;
    }
}

static int build_prefixes(Tokenizer *t, Error *err) {
    size_t total = 0;
    for (int id = 0; id < t->n; id++)
        if (is_mergeable(t->type[id])) total += t->len[id];
    size_t want = 16;
    while (want < total * 2) want *= 2;
    free(t->prefixes);
    t->prefixes = calloc(want, sizeof *t->prefixes);
    if (!t->prefixes) return error_set(err, "%s: out of memory for the prefix index", t->label);
    t->n_prefix_slots = want;
    for (int id = 0; id < t->n; id++) {
        if (!is_mergeable(t->type[id])) continue;
        const char *s = piece_str(t, id);
        uint64_t h = HASH_SEED;
        for (size_t l = 0; l < t->len[id]; l++) {
            h = hash_step(h, s[l]);
            uint64_t f = hash_final(h);
            size_t i = f & (want - 1);
            while (t->prefixes[i] != 0 && t->prefixes[i] != prefix_fp(f)) i = (i + 1) & (want - 1);
            t->prefixes[i] = prefix_fp(f);
        }
    }
    return 0;
}

/* The longest USER_DEFINED piece at the start of s[0..n), 0 if none. */
static size_t match_user_defined(const Tokenizer *t, const char *s, size_t n) {
    size_t best = 0;
    uint64_t h = HASH_SEED;
    for (size_t l = 1; l <= n && l <= (size_t)t->max_user_len; l++) {
        h = hash_step(h, s[l - 1]);
        uint64_t f = hash_final(h);
        if (!has_prefix(t, f)) break;
        int id = lookup_hashed(t, s, l, f);
        if (id >= 0 && t->type[id] == PIECE_USER_DEFINED) best = l;
    }
    return best;
}

static int lookup_mergeable(const Tokenizer *t, const char *s, size_t n) {
    int id = lookup(t, s, n);
    return id >= 0 && is_mergeable(t->type[id]) ? id : -1;
}

static int build_index(Tokenizer *t, Error *err);

/* Adds the newest piece to the index, rebuilding it when it gets full. */
static int index_add_last(Tokenizer *t, Error *err) {
    if (!t->slots || (size_t)t->n * 2 > t->n_slots) return build_index(t, err);
    int id = t->n - 1;
    size_t mask = t->n_slots - 1;
    size_t i = hash_bytes(piece_str(t, id), t->len[id]) & mask;
    while (t->slots[i] >= 0) i = (i + 1) & mask;
    t->slots[i] = id;
    return 0;
}

static int build_index(Tokenizer *t, Error *err) {
    size_t want = 16;
    while (want < (size_t)t->n * 2) want *= 2;
    free(t->slots);
    t->slots = malloc(want * sizeof *t->slots);
    if (!t->slots) return error_set(err, "%s: out of memory for the piece index", t->label);
    t->n_slots = want;
    for (size_t i = 0; i < want; i++) t->slots[i] = -1;
    for (int id = 0; id < t->n; id++) {
        const char *s = piece_str(t, id);
        size_t n = t->len[id];
        int other = lookup(t, s, n);
        if (other >= 0) {
            char b[200];
            return error_set(err, "%s: piece '%s' is defined twice (ids %d and %d)", t->label,
                             show(b, sizeof b, s, n), other, id);
        }
        size_t i = hash_bytes(s, n) & (want - 1);
        while (t->slots[i] >= 0) i = (i + 1) & (want - 1);
        t->slots[i] = id;
    }
    return 0;
}

/* After the pieces are in: the index, byte ids, lengths and score range. */
static int finish_pieces(Tokenizer *t, Error *err) {
    if (t->n == 0) return error_set(err, "%s: the model has no pieces (empty vocabulary)", t->label);
    if (build_index(t, err) || build_prefixes(t, err)) return -1;
    t->max_len = 0;
    t->max_user_len = 0;
    t->min_score = FLT_MAX;
    t->max_score = FLT_MIN; /* sentencepiece starts from FLT_MIN too */
    for (int id = 0; id < t->n; id++) {
        int ty = t->type[id];
        int len = (int)t->len[id];
        if (is_mergeable(ty) && len > t->max_len) t->max_len = len;
        if (ty == PIECE_USER_DEFINED && len > t->max_user_len) t->max_user_len = len;
        if (ty == PIECE_NORMAL) {
            if (t->score[id] < t->min_score) t->min_score = t->score[id];
            if (t->score[id] > t->max_score) t->max_score = t->score[id];
        }
    }
    return 0;
}

/* ------------------------------------------------------ protobuf reader */

typedef struct {
    const uint8_t *base; /* start of the whole buffer, for offsets */
    const uint8_t *p, *end;
    const char *label;
    const char *where; /* "" or " in piece 7" etc., for messages */
} Pb;

typedef struct {
    uint32_t field;
    int wire;
    uint64_t v;          /* varint value or fixed32 / fixed64 bits */
    const uint8_t *data; /* wire type 2 */
    size_t len;
    size_t offset; /* of the tag */
} PbField;

static int pb_varint(Pb *r, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return -1;
        uint8_t b = *r->p++;
        if (shift < 64) v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -2;
}

/* Reads the next field: 1 when one was read, 0 at the end of the message,
 * -1 on malformed input (err says where). */
static int pb_next(Pb *r, PbField *f, Error *err) {
    if (r->p >= r->end) return 0;
    f->offset = (size_t)(r->p - r->base);
    uint64_t tag;
    int rc = pb_varint(r, &tag);
    if (rc == -1)
        return error_set(err, "%s: truncated: the field tag at byte %zu%s runs past the end", r->label, f->offset,
                         r->where);
    if (rc == -2 || tag >> 3 > 0x1FFFFFFF)
        return error_set(err, "%s: not a SentencePiece model protobuf (bad field tag at byte %zu%s)", r->label,
                         f->offset, r->where);
    f->field = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    f->data = NULL;
    f->len = 0;
    f->v = 0;
    if (f->field == 0)
        return error_set(err, "%s: not a SentencePiece model protobuf (field number 0 at byte %zu%s)", r->label,
                         f->offset, r->where);
    size_t left;
    switch (f->wire) {
    case 0:
        rc = pb_varint(r, &f->v);
        if (rc == -1)
            return error_set(err, "%s: truncated: the value of field %u at byte %zu%s runs past the end", r->label,
                             f->field, f->offset, r->where);
        if (rc == -2)
            return error_set(err, "%s: not a SentencePiece model protobuf (varint longer than 10 bytes at byte %zu%s)",
                             r->label, f->offset, r->where);
        return 1;
    case 1:
    case 5: {
        size_t w = f->wire == 1 ? 8 : 4;
        if ((size_t)(r->end - r->p) < w)
            return error_set(err, "%s: truncated: the %zu-byte value of field %u at byte %zu%s runs past the end",
                             r->label, w, f->field, f->offset, r->where);
        for (size_t i = 0; i < w; i++) f->v |= (uint64_t)r->p[i] << (8 * i);
        r->p += w;
        return 1;
    }
    case 2: {
        uint64_t n;
        rc = pb_varint(r, &n);
        if (rc == -1)
            return error_set(err, "%s: truncated: the length of field %u at byte %zu%s runs past the end", r->label,
                             f->field, f->offset, r->where);
        if (rc == -2)
            return error_set(err, "%s: not a SentencePiece model protobuf (bad length of field %u at byte %zu%s)",
                             r->label, f->field, f->offset, r->where);
        left = (size_t)(r->end - r->p);
        if (n > left)
            return error_set(err,
                             "%s: truncated or corrupt: field %u at byte %zu%s has length %llu, which runs past the "
                             "end (%zu bytes left)",
                             r->label, f->field, f->offset, r->where, (unsigned long long)n, left);
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return 1;
    }
    default:
        return error_set(err, "%s: not a SentencePiece model protobuf (field %u at byte %zu%s has wire type %d)",
                         r->label, f->field, f->offset, r->where, f->wire);
    }
}

static int pb_want(const Pb *r, const PbField *f, int wire, const char *name, Error *err) {
    if (f->wire == wire) return 0;
    return error_set(err, "%s: not a SentencePiece model protobuf (field %u%s%s has wire type %d, expected %d)",
                     r->label, f->field, name[0] ? " " : "", name, f->wire, wire);
}

static Pb pb_sub(const Pb *outer, const PbField *f, const char *where) {
    Pb r = {outer->base, f->data, f->data + f->len, outer->label, where};
    return r;
}

/* ------------------------------------------------------- ModelProto */

typedef struct {
    const char *s;
    size_t n;
} Str;

/* What the loader needs from TrainerSpec beyond the Tokenizer fields. */
typedef struct {
    Str unk_piece, bos_piece, eos_piece, pad_piece;
} SpecNames;

static int parse_piece(Tokenizer *t, const Pb *outer, const PbField *pf, Error *err) {
    char where[64];
    snprintf(where, sizeof where, " in piece %d", t->n);
    Pb r = pb_sub(outer, pf, where);
    PbField f;
    Str s = {"", 0};
    float score = 0;
    int type = PIECE_NORMAL;
    int rc;
    while ((rc = pb_next(&r, &f, err)) == 1) {
        if (f.field == 1) {
            if (pb_want(&r, &f, 2, "(piece string)", err)) return -1;
            s.s = (const char *)f.data;
            s.n = f.len;
        } else if (f.field == 2) {
            if (pb_want(&r, &f, 5, "(piece score)", err)) return -1;
            uint32_t bits = (uint32_t)f.v;
            memcpy(&score, &bits, sizeof score);
        } else if (f.field == 3) {
            if (pb_want(&r, &f, 0, "(piece type)", err)) return -1;
            int64_t v = (int64_t)f.v;
            if (v < PIECE_NORMAL || v > PIECE_BYTE)
                return error_set(err, "%s: piece %d has type %lld, not one of 1..6", t->label, t->n, (long long)v);
            type = (int)v;
        }
    }
    if (rc < 0) return -1;
    if (s.n == 0) return error_set(err, "%s: piece %d is empty", t->label, t->n);
    return tok_add_piece(t, s.s, s.n, score, type, err);
}

static int32_t as_int32(uint64_t v) { return (int32_t)(uint32_t)v; }

static int parse_trainer_spec(Tokenizer *t, const Pb *outer, const PbField *pf, SpecNames *names, Error *err) {
    Pb r = pb_sub(outer, pf, " in trainer_spec");
    PbField f;
    int rc;
    while ((rc = pb_next(&r, &f, err)) == 1) {
        switch (f.field) {
        case 3: /* model_type */
            if (pb_want(&r, &f, 0, "(trainer_spec.model_type)", err)) return -1;
            t->model_type = as_int32(f.v);
            break;
        case 24: /* treat_whitespace_as_suffix */
            if (pb_want(&r, &f, 0, "(trainer_spec.treat_whitespace_as_suffix)", err)) return -1;
            t->ws_as_suffix = f.v != 0;
            break;
        case 35: /* byte_fallback */
            if (pb_want(&r, &f, 0, "(trainer_spec.byte_fallback)", err)) return -1;
            t->byte_fallback = f.v != 0;
            break;
        case 44: /* unk_surface */
            if (pb_want(&r, &f, 2, "(trainer_spec.unk_surface)", err)) return -1;
            if (f.len >= sizeof t->unk_surface)
                return error_set(err, "%s: trainer_spec.unk_surface is %zu bytes, more than %zu", t->label, f.len,
                                 sizeof t->unk_surface - 1);
            memcpy(t->unk_surface, f.data, f.len);
            t->unk_surface[f.len] = 0;
            break;
        case 45:
        case 46:
        case 47:
        case 48: {
            static const char *const what[] = {"unk_piece", "bos_piece", "eos_piece", "pad_piece"};
            char name[64];
            snprintf(name, sizeof name, "(trainer_spec.%s)", what[f.field - 45]);
            if (pb_want(&r, &f, 2, name, err)) return -1;
            Str s = {(const char *)f.data, f.len};
            if (f.field == 45) names->unk_piece = s;
            if (f.field == 46) names->bos_piece = s;
            if (f.field == 47) names->eos_piece = s;
            if (f.field == 48) names->pad_piece = s;
            break;
        }
        default:
            break; /* training options: not needed to encode */
        }
    }
    return rc < 0 ? -1 : 0;
}

static int parse_normalizer_spec(Tokenizer *t, const Pb *outer, const PbField *pf, Error *err) {
    Pb r = pb_sub(outer, pf, " in normalizer_spec");
    PbField f;
    int rc;
    while ((rc = pb_next(&r, &f, err)) == 1) {
        switch (f.field) {
        case 1:
            if (pb_want(&r, &f, 2, "(normalizer_spec.name)", err)) return -1;
            show(t->norm_name, sizeof t->norm_name, (const char *)f.data, f.len);
            break;
        case 2:
            if (pb_want(&r, &f, 2, "(normalizer_spec.precompiled_charsmap)", err)) return -1;
            free(t->charsmap);
            t->charsmap = NULL;
            t->charsmap_len = 0;
            if (f.len) {
                t->charsmap = malloc(f.len);
                if (!t->charsmap) return error_set(err, "%s: out of memory for the charsmap", t->label);
                memcpy(t->charsmap, f.data, f.len);
                t->charsmap_len = f.len;
            }
            break;
        case 3:
            if (pb_want(&r, &f, 0, "(normalizer_spec.add_dummy_prefix)", err)) return -1;
            t->add_dummy_prefix = f.v != 0;
            break;
        case 4:
            if (pb_want(&r, &f, 0, "(normalizer_spec.remove_extra_whitespaces)", err)) return -1;
            t->remove_extra_ws = f.v != 0;
            break;
        case 5:
            if (pb_want(&r, &f, 0, "(normalizer_spec.escape_whitespaces)", err)) return -1;
            t->escape_ws = f.v != 0;
            break;
        default:
            break;
        }
    }
    return rc < 0 ? -1 : 0;
}

static uint32_t rd_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* precompiled_charsmap = u32 trie size, the double-array trie, then the
 * NUL-separated replacement strings. */
static int setup_charsmap(Tokenizer *t, Error *err) {
    if (!t->charsmap) return 0;
    if (t->charsmap_len <= 4)
        return error_set(err, "%s: normalizer_spec.precompiled_charsmap is broken (%zu bytes)", t->label,
                         t->charsmap_len);
    size_t trie_bytes = rd_u32le(t->charsmap);
    if (trie_bytes >= t->charsmap_len - 4)
        return error_set(err, "%s: normalizer_spec.precompiled_charsmap is broken (trie of %zu bytes in %zu)",
                         t->label, trie_bytes, t->charsmap_len);
    t->trie_units = trie_bytes / 4;
    t->norm_str = (const char *)t->charsmap + 4 + trie_bytes;
    t->norm_str_len = t->charsmap_len - 4 - trie_bytes;
    return 0;
}

/* The checks sentencepiece makes when it loads a model, and the ids of the
 * special pieces. */
static int finish_spm(Tokenizer *t, const SpecNames *names, Error *err) {
    if (finish_pieces(t, err)) return -1;
    if (t->model_type < SPM_UNIGRAM || t->model_type > SPM_CHAR)
        return error_set(err, "%s: trainer_spec.model_type is %d, not one of 1 (UNIGRAM), 2 (BPE), 3 (WORD), 4 (CHAR)",
                         t->label, t->model_type);
    int n_bytes = 0;
    for (int id = 0; id < t->n; id++) {
        if (t->type[id] == PIECE_UNKNOWN) {
            if (t->unk_id >= 0)
                return error_set(err, "%s: pieces %d and %d both have type UNKNOWN; a model has one <unk>", t->label,
                                 t->unk_id, id);
            t->unk_id = id;
        }
        if (t->type[id] == PIECE_BYTE) {
            char b[200];
            if (!t->byte_fallback)
                return error_set(err, "%s: piece %d '%s' has type BYTE but trainer_spec.byte_fallback is false",
                                 t->label, id, show(b, sizeof b, piece_str(t, id), t->len[id]));
            int v = parse_byte_piece(piece_str(t, id), t->len[id]);
            if (v < 0)
                return error_set(err, "%s: byte piece %d '%s' is not of the form <0xXX>", t->label, id,
                                 show(b, sizeof b, piece_str(t, id), t->len[id]));
            t->byte_id[v] = id;
            n_bytes++;
        }
    }
    if (t->unk_id < 0) return error_set(err, "%s: no piece has type UNKNOWN (the model defines no <unk>)", t->label);
    if (t->byte_fallback && n_bytes != 256)
        return error_set(err, "%s: trainer_spec.byte_fallback is set but the model has %d of the 256 byte pieces",
                         t->label, n_bytes);
    /* sentencepiece finds bos/eos/pad by their piece names and only counts
     * CONTROL pieces; tokenizer_from_vocab passes no names, having set the ids */
    if (names) {
        const Str *named[3] = {&names->bos_piece, &names->eos_piece, &names->pad_piece};
        int *ids[3] = {&t->bos_id, &t->eos_id, &t->pad_id};
        for (int k = 0; k < 3; k++) {
            int id = lookup(t, named[k]->s, named[k]->n);
            *ids[k] = id >= 0 && t->type[id] == PIECE_CONTROL ? id : -1;
        }
    }
    /* HF makes unk, bos, eos (and pad when set) special tokens */
    int specials[4] = {t->unk_id, t->bos_id, t->eos_id, t->pad_id};
    for (int k = 0; k < 4; k++)
        if (specials[k] >= 0) t->flags[specials[k]] |= F_SPLIT | F_SPECIAL;
    return setup_charsmap(t, err);
}

int tokenizer_load_spm_buffer(Tokenizer **out, const uint8_t *data, size_t n, const char *label, Error *err) {
    *out = NULL;
    Tokenizer *t = tok_new(label);
    if (!t) return error_set(err, "%s: out of memory", label ? label : "tokenizer");
    static const uint8_t empty[1];
    if (!data) {
        data = empty;
        n = 0;
    }
    Pb r = {data, data, data + n, t->label, ""};
    SpecNames names = {{"<unk>", 5}, {"<s>", 3}, {"</s>", 4}, {"<pad>", 5}};
    PbField f;
    int rc;
    while ((rc = pb_next(&r, &f, err)) == 1) {
        if (f.field == 1) {
            if (pb_want(&r, &f, 2, "(pieces)", err) || parse_piece(t, &r, &f, err)) break;
        } else if (f.field == 2) {
            if (pb_want(&r, &f, 2, "(trainer_spec)", err) || parse_trainer_spec(t, &r, &f, &names, err)) break;
        } else if (f.field == 3) {
            if (pb_want(&r, &f, 2, "(normalizer_spec)", err) || parse_normalizer_spec(t, &r, &f, err)) break;
        } else if (f.field == 4 || f.field == 5) {
            /* self_test_data, denormalizer_spec: not used here */
            if (pb_want(&r, &f, 2, f.field == 4 ? "(self_test_data)" : "(denormalizer_spec)", err)) break;
        }
    }
    if (rc != 0 || finish_spm(t, &names, err)) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int tokenizer_load_spm(Tokenizer **out, const char *path, Error *err) {
    *out = NULL;
    MappedFile m;
    if (file_map(&m, path, err)) return -1;
    if (m.size > MAX_MODEL_BYTES) {
        file_unmap(&m);
        return error_set(err, "%s: %zu bytes is too large for a SentencePiece model (limit %zu)", path, m.size,
                         MAX_MODEL_BYTES);
    }
    int rc = tokenizer_load_spm_buffer(out, m.data, m.size, path, err);
    file_unmap(&m);
    return rc;
}

int tokenizer_from_vocab(Tokenizer **out, const SpmVocab *v, const char *label, Error *err) {
    *out = NULL;
    Tokenizer *t = tok_new(label);
    if (!t) return error_set(err, "%s: out of memory", label ? label : "tokenizer");
    t->model_type = v->model_type;
    t->add_dummy_prefix = v->add_dummy_prefix;
    t->remove_extra_ws = v->remove_extra_ws;
    snprintf(t->norm_name, sizeof t->norm_name, "%s", v->charsmap ? "precompiled" : "identity");
    int rc = 0;
    for (int i = 0; i < v->n && !rc; i++) {
        int type = v->types ? v->types[i] : PIECE_NORMAL;
        if (type < PIECE_NORMAL || type > PIECE_BYTE)
            rc = error_set(err, "%s: piece %d has type %d, not one of 1..6", t->label, i, type);
        else if (v->lens[i] == 0)
            rc = error_set(err, "%s: piece %d is empty", t->label, i);
        else
            rc = tok_add_piece(t, v->pieces[i], v->lens[i], v->scores ? v->scores[i] : 0.0f, type, err);
        if (type == PIECE_BYTE) t->byte_fallback = 1;
    }
    int given[3] = {v->bos_id, v->eos_id, v->pad_id};
    int *ids[3] = {&t->bos_id, &t->eos_id, &t->pad_id};
    for (int k = 0; k < 3 && !rc; k++) {
        if (given[k] >= v->n) rc = error_set(err, "%s: special token id %d is past the %d pieces", t->label, given[k], v->n);
        *ids[k] = given[k] < 0 ? -1 : given[k];
    }
    if (!rc && v->charsmap && v->charsmap_len) {
        t->charsmap = malloc(v->charsmap_len);
        if (!t->charsmap) rc = error_set(err, "%s: out of memory for the charsmap", t->label);
        else memcpy(t->charsmap, v->charsmap, v->charsmap_len);
        t->charsmap_len = v->charsmap_len;
    }
    if (rc || finish_spm(t, NULL, err)) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int tokenizer_load(Tokenizer **out, const char *model_dir, Error *err) {
    *out = NULL;
    if (gguf_path_is_gguf(model_dir)) return tokenizer_load_gguf_path(out, model_dir, err);
    char path[1100];
    if (path_join(path, sizeof path, model_dir, "tokenizer.model", err)) return -1;
    if (file_exists(path)) return tokenizer_load_spm(out, path, err);
    if (path_join(path, sizeof path, model_dir, "tokenizer.json", err)) return -1;
    if (file_exists(path)) return tokenizer_load_hf_json(out, path, err);
    return error_set(err, "%s: no tokenizer.model or tokenizer.json in this folder", model_dir);
}

/* ------------------------------------------------- HF tokenizer.json */

static uint64_t merge_key(int a, int b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

static size_t merge_hash(uint64_t k, size_t mask) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k & mask;
}

static const MergeSlot *merge_find(const Tokenizer *t, int a, int b) {
    if (!t->merges) return NULL;
    uint64_t k = merge_key(a, b);
    size_t mask = t->n_merge_slots - 1;
    for (size_t i = merge_hash(k, mask);; i = (i + 1) & mask) {
        if (t->merges[i].key == UINT64_MAX) return NULL;
        if (t->merges[i].key == k) return &t->merges[i];
    }
}

/* A later duplicate of a merge replaces the earlier one, as in HF. */
static void merge_put(Tokenizer *t, int a, int b, int rank, int result) {
    uint64_t k = merge_key(a, b);
    size_t mask = t->n_merge_slots - 1;
    size_t i = merge_hash(k, mask);
    while (t->merges[i].key != UINT64_MAX && t->merges[i].key != k) i = (i + 1) & mask;
    t->merges[i].key = k;
    t->merges[i].rank = rank;
    t->merges[i].result = result;
}

static const cJSON *jget(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static const char *jtype(const cJSON *obj) {
    const cJSON *v = jget(obj, "type");
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int json_vocab(Tokenizer *t, const cJSON *vocab, Error *err) {
    if (!vocab) return error_set(err, "%s: model.vocab is missing", t->label);
    if (!cJSON_IsObject(vocab))
        return error_set(err, "%s: model.vocab is %s, expected an object of piece -> id", t->label,
                         json_type_name(vocab));
    int n = cJSON_GetArraySize(vocab);
    if (n <= 0) return error_set(err, "%s: model.vocab is empty", t->label);
    const cJSON **by_id = calloc((size_t)n, sizeof *by_id);
    if (!by_id) return error_set(err, "%s: out of memory for %d pieces", t->label, n);
    int rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        uint64_t id;
        char b[200];
        const char *key = e->string ? e->string : "";
        if (!json_as_u53(e, &id) || id >= (uint64_t)n) {
            rc = error_set(err, "%s: model.vocab['%s'] is not an id in 0..%d", t->label,
                           show(b, sizeof b, key, strlen(key)), n - 1);
            break;
        }
        if (by_id[id]) {
            rc = error_set(err, "%s: model.vocab gives id %llu to two pieces", t->label, (unsigned long long)id);
            break;
        }
        by_id[id] = e;
    }
    for (int id = 0; id < n && rc == 0; id++) {
        const char *key = by_id[id]->string ? by_id[id]->string : "";
        size_t len = strlen(key);
        if (len == 0) rc = error_set(err, "%s: model.vocab has an empty piece (id %d)", t->label, id);
        else rc = tok_add_piece(t, key, len, 0, PIECE_NORMAL, err);
    }
    free(by_id);
    return rc;
}

static int json_added_tokens(Tokenizer *t, const cJSON *added, Error *err) {
    if (!added) return 0;
    if (!cJSON_IsArray(added)) return error_set(err, "%s: added_tokens is %s, expected an array", t->label,
                                                json_type_name(added));
    const cJSON *a;
    int k = 0;
    cJSON_ArrayForEach(a, added) {
        int64_t id = -1;
        const char *content = NULL;
        int special = 0;
        char what[sizeof t->label + 32];
        snprintf(what, sizeof what, "%s: added_tokens[%d]", t->label, k);
        if (json_get_int(a, "id", &id, 0, INT_MAX / 4, what, err) ||
            json_get_string(a, "content", &content, what, err) || json_opt_bool(a, "special", &special, what, err))
            return -1;
        size_t len = strlen(content);
        char b[200];
        if (len == 0) return error_set(err, "%s has an empty content", what);
        if (id < t->n) {
            if (t->len[id] != len || memcmp(piece_str(t, (int)id), content, len) != 0)
                return error_set(err, "%s is '%s' but model.vocab has '%s' at id %lld", what,
                                 show(b, sizeof b, content, len), piece_str(t, (int)id), (long long)id);
        } else if (id == t->n) {
            if (tok_add_piece(t, content, len, 0, PIECE_USER_DEFINED, err)) return -1;
        } else {
            return error_set(err, "%s ('%s') has id %lld but the vocabulary so far has %d pieces", what,
                             show(b, sizeof b, content, len), (long long)id, t->n);
        }
        t->flags[id] |= F_SPLIT | (special ? F_SPECIAL : 0);
        if (special) t->type[id] = PIECE_CONTROL;
        k++;
    }
    return 0;
}

static int json_merges(Tokenizer *t, const cJSON *merges, Error *err) {
    if (!merges) return error_set(err, "%s: model.merges is missing", t->label);
    if (!cJSON_IsArray(merges)) return error_set(err, "%s: model.merges is %s, expected an array", t->label,
                                                 json_type_name(merges));
    int n = cJSON_GetArraySize(merges);
    size_t slots = 16;
    while (slots < (size_t)n * 2) slots *= 2;
    t->merges = malloc(slots * sizeof *t->merges);
    if (!t->merges) return error_set(err, "%s: out of memory for %d merges", t->label, n);
    t->n_merge_slots = slots;
    for (size_t i = 0; i < slots; i++) t->merges[i].key = UINT64_MAX;
    Buf joined = {0};
    uint8_t *scored = calloc((size_t)t->n, 1); /* score already set by an earlier merge */
    if (!scored) return error_set(err, "%s: out of memory for %d merges", t->label, n);
    const cJSON *m;
    int rank = 0, rc = 0;
    cJSON_ArrayForEach(m, merges) {
        Str a = {0}, b = {0};
        if (cJSON_IsString(m)) {
            const char *s = m->valuestring;
            const char *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' ')) {
                char q[200];
                rc = error_set(err, "%s: model.merges[%d] '%s' is not two pieces separated by one space", t->label,
                               rank, show(q, sizeof q, s, strlen(s)));
                break;
            }
            a = (Str){s, (size_t)(sp - s)};
            b = (Str){sp + 1, strlen(sp + 1)};
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            const char *s0 = cJSON_GetArrayItem(m, 0)->valuestring, *s1 = cJSON_GetArrayItem(m, 1)->valuestring;
            a = (Str){s0, strlen(s0)};
            b = (Str){s1, strlen(s1)};
        } else {
            rc = error_set(err, "%s: model.merges[%d] is %s, expected \"a b\" or [\"a\", \"b\"]", t->label, rank,
                           json_type_name(m));
            break;
        }
        joined.len = 0;
        if (buf_put(&joined, a.s, a.n) || buf_put(&joined, b.s, b.n)) {
            rc = error_set(err, "%s: out of memory", t->label);
            break;
        }
        int ia = lookup(t, a.s, a.n), ib = lookup(t, b.s, b.n), ic = lookup(t, joined.data, joined.len);
        if (ia < 0 || ib < 0 || ic < 0) {
            char q[200];
            const Str *miss = ia < 0 ? &a : ib < 0 ? &b : &(Str){joined.data, joined.len};
            rc = error_set(err, "%s: model.merges[%d]: '%s' is not in model.vocab", t->label, rank,
                           show(q, sizeof q, miss->s, miss->n));
            break;
        }
        merge_put(t, ia, ib, rank, ic);
        /* a score that orders the pieces as the merges do, so the model can
         * be saved as a SentencePiece BPE model */
        if (!scored[ic]) t->score[ic] = -(float)rank;
        scored[ic] = 1;
        rank++;
    }
    free(joined.data);
    for (int id = 0; id < t->n && rc == 0; id++)
        if (!scored[id]) t->score[id] = -(float)rank - (float)id;
    free(scored);
    return rc ? -1 : 0;
}

static int json_replace_is_space(const cJSON *norm) {
    const cJSON *pat = jget(norm, "pattern");
    const cJSON *str = pat ? jget(pat, "String") : NULL;
    const cJSON *content = jget(norm, "content");
    return cJSON_IsString(str) && strcmp(str->valuestring, " ") == 0 && cJSON_IsString(content) &&
           strcmp(content->valuestring, SPACE_SYM) == 0;
}

static int json_normalizer(Tokenizer *t, const cJSON *norm, int depth, Error *err) {
    if (!norm) return 0;
    const char *type = jtype(norm);
    if (strcmp(type, "Sequence") == 0 && depth < 4) {
        const cJSON *list = jget(norm, "normalizers");
        if (!cJSON_IsArray(list)) return error_set(err, "%s: normalizer Sequence has no normalizers array", t->label);
        const cJSON *e;
        cJSON_ArrayForEach(e, list) if (json_normalizer(t, e, depth + 1, err)) return -1;
        return 0;
    }
    if (strcmp(type, "Prepend") == 0) {
        const cJSON *p = jget(norm, "prepend");
        if (!cJSON_IsString(p) || strcmp(p->valuestring, SPACE_SYM) != 0)
            return error_set(err, "%s: normalizer Prepend must prepend \"\xe2\x96\x81\"", t->label);
        t->add_dummy_prefix = 1;
        return 0;
    }
    if (strcmp(type, "Replace") == 0) {
        if (!json_replace_is_space(norm))
            return error_set(err, "%s: only the normalizer Replace(\" \", \"\xe2\x96\x81\") is supported", t->label);
        t->escape_ws = 1;
        return 0;
    }
    return error_set(err, "%s: normalizer type '%s' is not supported (LLaMA files use Prepend + Replace)", t->label,
                     type);
}

static int json_pre_tokenizer(Tokenizer *t, const cJSON *pre, Error *err) {
    if (!pre) return 0;
    const char *type = jtype(pre);
    if (strcmp(type, "Metaspace") != 0)
        return error_set(err, "%s: pre_tokenizer type '%s' is not supported (only Metaspace or none)", t->label, type);
    const cJSON *rep = jget(pre, "replacement");
    if (rep && (!cJSON_IsString(rep) || strcmp(rep->valuestring, SPACE_SYM) != 0))
        return error_set(err, "%s: pre_tokenizer Metaspace replacement must be \"\xe2\x96\x81\"", t->label);
    t->escape_ws = 1;
    t->add_dummy_prefix = 1;
    t->metaspace = 1;
    const cJSON *scheme = jget(pre, "prepend_scheme");
    const cJSON *add = jget(pre, "add_prefix_space");
    if (cJSON_IsString(scheme)) {
        if (strcmp(scheme->valuestring, "never") == 0) t->add_dummy_prefix = 0;
        else if (strcmp(scheme->valuestring, "first") == 0) t->prefix_first_only = 1;
        else if (strcmp(scheme->valuestring, "always") != 0)
            return error_set(err, "%s: pre_tokenizer Metaspace prepend_scheme '%s' is unknown", t->label,
                             scheme->valuestring);
    } else if (cJSON_IsBool(add)) {
        t->add_dummy_prefix = cJSON_IsTrue(add);
    }
    const cJSON *split = jget(pre, "split");
    t->split_on_ws = split ? cJSON_IsTrue(split) : 1;
    return 0;
}

static int json_model_options(Tokenizer *t, const cJSON *model, Error *err) {
    const cJSON *v = jget(model, "dropout");
    if (v && !(cJSON_IsNumber(v) && v->valuedouble == 0))
        return error_set(err, "%s: model.dropout is set; BPE dropout makes encoding random and is not supported",
                         t->label);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        v = jget(model, affixes[i]);
        if (v && !(cJSON_IsString(v) && v->valuestring[0] == 0))
            return error_set(err, "%s: model.%s is set; only SentencePiece-style BPE is supported", t->label,
                             affixes[i]);
    }
    v = jget(model, "byte_fallback");
    t->byte_fallback = cJSON_IsTrue(v);
    v = jget(model, "fuse_unk");
    t->fuse_unk = cJSON_IsTrue(v);
    return 0;
}

static int load_hf_json_tree(Tokenizer *t, const cJSON *root, Error *err) {
    const cJSON *model = jget(root, "model");
    if (!cJSON_IsObject(model)) return error_set(err, "%s: no \"model\" object", t->label);
    const char *type = jtype(model);
    if (type[0] && strcmp(type, "BPE") != 0)
        return error_set(err, "%s: model.type is '%s'; only BPE tokenizers (LLaMA) are supported", t->label, type);
    if (!type[0] && !jget(model, "merges"))
        return error_set(err, "%s: model has no type and no merges; only BPE tokenizers are supported", t->label);
    t->model_type = SPM_BPE;
    t->use_merges = 1;
    t->add_dummy_prefix = t->remove_extra_ws = t->escape_ws = 0;
    snprintf(t->norm_name, sizeof t->norm_name, "identity");
    if (json_model_options(t, model, err) || json_vocab(t, jget(model, "vocab"), err)) return -1;
    if (build_index(t, err) || json_merges(t, jget(model, "merges"), err)) return -1;
    if (json_added_tokens(t, jget(root, "added_tokens"), err)) return -1;
    if (json_normalizer(t, jget(root, "normalizer"), 0, err) || json_pre_tokenizer(t, jget(root, "pre_tokenizer"), err))
        return -1;
    const cJSON *unk = jget(model, "unk_token");
    if (unk) {
        if (!cJSON_IsString(unk)) return error_set(err, "%s: model.unk_token is not a string", t->label);
        if (build_index(t, err)) return -1;
        int id = lookup(t, unk->valuestring, strlen(unk->valuestring));
        if (id < 0) return error_set(err, "%s: model.unk_token '%s' is not in model.vocab", t->label,
                                     unk->valuestring);
        t->type[id] = PIECE_UNKNOWN;
        t->unk_id = id;
    }
    for (int id = 0; id < t->n && t->byte_fallback; id++) {
        int v = parse_byte_piece(piece_str(t, id), t->len[id]);
        if (v >= 0 && t->type[id] == PIECE_NORMAL) {
            t->type[id] = PIECE_BYTE;
            t->byte_id[v] = id;
        }
    }
    if (finish_pieces(t, err)) return -1;
    t->bos_id = lookup(t, "<s>", 3);
    t->eos_id = lookup(t, "</s>", 4);
    return 0;
}

static int load_hf_json_root(Tokenizer **out, cJSON *root, const char *label, Error *err) {
    Tokenizer *t = tok_new(label);
    if (!t) {
        cJSON_Delete(root);
        return error_set(err, "%s: out of memory", label);
    }
    int rc = load_hf_json_tree(t, root, err);
    cJSON_Delete(root);
    if (rc) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int tokenizer_load_hf_json(Tokenizer **out, const char *path, Error *err) {
    *out = NULL;
    cJSON *root;
    if (json_load_file(&root, path, MAX_JSON_BYTES, err)) return -1;
    return load_hf_json_root(out, root, path, err);
}

int tokenizer_load_hf_json_buffer(Tokenizer **out, const char *text, size_t n, const char *label, Error *err) {
    *out = NULL;
    if (!label) label = "tokenizer.json";
    if (n > MAX_JSON_BYTES)
        return error_set(err, "%s: %zu bytes is more than the %zu allowed", label, n, MAX_JSON_BYTES);
    cJSON *root;
    if (json_parse(&root, text ? text : "", text ? n : 0, label, err)) return -1;
    return load_hf_json_root(out, root, label, err);
}

/* ------------------------------------------------------ normalisation */

/* darts-clone double-array unit fields, as sentencepiece stores them. */
static int trie_unit(const Tokenizer *t, size_t pos, uint32_t *u) {
    if (pos >= t->trie_units) return -1;
    *u = rd_u32le(t->charsmap + 4 + 4 * pos);
    return 0;
}
static uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static uint32_t unit_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
static int unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static uint32_t unit_value(uint32_t u) { return u & ((1u << 31) - 1); }

/* Longest charsmap rule matching a prefix of s: its length, 0 if none.
 * Like sentencepiece, only the first 32 matches are considered. */
static size_t charsmap_match(const Tokenizer *t, const char *s, size_t n, const char **rep, size_t *rep_len) {
    uint32_t u;
    size_t pos = 0, best = 0, n_found = 0;
    uint32_t best_value = 0;
    if (trie_unit(t, pos, &u)) return 0;
    pos ^= unit_offset(u);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        pos ^= c;
        if (trie_unit(t, pos, &u) || unit_label(u) != c) break;
        pos ^= unit_offset(u);
        if (unit_has_leaf(u)) {
            uint32_t leaf;
            if (trie_unit(t, pos, &leaf)) break;
            if (n_found++ < 32) {
                best = i + 1;
                best_value = unit_value(leaf);
            }
        }
    }
    if (!best || best_value >= t->norm_str_len) return 0;
    const char *r = t->norm_str + best_value;
    const char *nul = memchr(r, 0, t->norm_str_len - best_value);
    *rep = r;
    *rep_len = nul ? (size_t)(nul - r) : t->norm_str_len - best_value;
    return best;
}

/* sentencepiece's NormalizePrefix: the replacement text for the start of s
 * and how many bytes of s it stands for. */
static void normalize_prefix(const Tokenizer *t, const char *s, size_t n, const char **rep, size_t *rep_len,
                             size_t *consumed) {
    size_t user = t->max_user_len ? match_user_defined(t, s, n) : 0;
    if (user) {
        *rep = s;
        *rep_len = *consumed = user;
        return;
    }
    if (t->charsmap) {
        size_t l = charsmap_match(t, s, n, rep, rep_len);
        if (l) {
            *consumed = l;
            return;
        }
    }
    int l = utf8_valid_len((const unsigned char *)s, n);
    if (l == 0) {
        *rep = "\xef\xbf\xbd"; /* U+FFFD for a malformed byte */
        *rep_len = 3;
        *consumed = 1;
    } else {
        *rep = s;
        *rep_len = *consumed = (size_t)l;
    }
}

static int put_ws(const Tokenizer *t, Buf *out) {
    return t->escape_ws ? buf_put(out, SPACE_SYM, SPACE_SYM_LEN) : buf_putc(out, ' ');
}

/* sentencepiece's Normalizer::Normalize into out (which it empties). */
static int normalize(const Tokenizer *t, const char *s, size_t n, int add_prefix, Buf *out) {
    out->len = 0;
    if (buf_reserve(out, n + 16)) return -1;
    out->data[0] = 0;
    const char *rep;
    size_t rep_len, used, pos = 0;
    if (t->remove_extra_ws) {
        while (pos < n) {
            normalize_prefix(t, s + pos, n - pos, &rep, &rep_len, &used);
            if (!(rep_len == 1 && rep[0] == ' ')) break;
            pos += used;
        }
    }
    if (pos == n) return 0;
    if (add_prefix && !t->ws_as_suffix && put_ws(t, out)) return -1;
    int prev_space = t->remove_extra_ws;
    while (pos < n) {
        normalize_prefix(t, s + pos, n - pos, &rep, &rep_len, &used);
        if (prev_space)
            while (rep_len > 0 && rep[0] == ' ') rep++, rep_len--;
        if (rep_len > 0) {
            for (size_t i = 0; i < rep_len; i++) {
                int rc = t->escape_ws && rep[i] == ' ' ? buf_put(out, SPACE_SYM, SPACE_SYM_LEN) : buf_putc(out, rep[i]);
                if (rc) return -1;
            }
            prev_space = rep[rep_len - 1] == ' ';
        }
        pos += used;
        if (!t->remove_extra_ws) prev_space = 0;
    }
    if (t->remove_extra_ws) {
        const char *sp = t->escape_ws ? SPACE_SYM : " ";
        size_t sl = t->escape_ws ? SPACE_SYM_LEN : 1;
        while (out->len >= sl && memcmp(out->data + out->len - sl, sp, sl) == 0) out->len -= sl;
        out->data[out->len] = 0;
    }
    if (add_prefix && t->ws_as_suffix && put_ws(t, out)) return -1;
    return 0;
}

/* -------------------------------------------------------- segmentation */

/* Pieces found by BPE or Unigram before byte fallback: a span of the
 * normalised text and its id (-1: not a piece, i.e. unknown). */
typedef struct {
    int start, len, id;
} Seg;

typedef struct {
    Seg *v;
    size_t n, cap;
} SegVec;

static int seg_push(SegVec *a, int start, int len, int id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        Seg *p = realloc(a->v, cap * sizeof *p);
        if (!p) return -1;
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = (Seg){start, len, id};
    return 0;
}

typedef struct {
    int start, len, prev, next, id, frozen;
} Sym;

typedef struct {
    double prio; /* higher first: the piece score, or minus the merge rank */
    int left, right, size, result;
} Cand;

typedef struct {
    Cand *v;
    size_t n, cap;
} Heap;

static int cand_before(const Cand *a, const Cand *b) {
    return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

static int heap_push(Heap *h, Cand c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        Cand *p = realloc(h->v, cap * sizeof *p);
        if (!p) return -1;
        h->v = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && cand_before(&c, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = c;
    return 0;
}

static Cand heap_pop(Heap *h) {
    Cand top = h->v[0];
    Cand last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && cand_before(&h->v[c + 1], &h->v[c])) c++;
        if (!cand_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* sentencepiece remembers, for each UNUSED piece BPE forms, the pair it was
 * last formed from, and splits it back afterwards. */
typedef struct {
    int id, left_len;
} RevMerge;

typedef struct {
    RevMerge *v;
    size_t n, cap;
} RevVec;

static int rev_put(RevVec *r, int id, int left_len) {
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].id == id) {
            r->v[i].left_len = left_len;
            return 0;
        }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        RevMerge *p = realloc(r->v, cap * sizeof *p);
        if (!p) return -1;
        r->v = p;
        r->cap = cap;
    }
    r->v[r->n++] = (RevMerge){id, left_len};
    return 0;
}

static int rev_get(const RevVec *r, int id) {
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].id == id) return r->v[i].left_len;
    return -1;
}

typedef struct {
    const Tokenizer *t;
    const char *s;
    Sym *sym;
    Heap heap;
    RevVec rev;
} Bpe;

static int bpe_try_pair(Bpe *b, int l, int r) {
    if (l < 0 || r < 0 || b->sym[l].frozen || b->sym[r].frozen) return 0;
    const Tokenizer *t = b->t;
    int size = b->sym[l].len + b->sym[r].len;
    Cand c = {0, l, r, size, -1};
    if (t->use_merges) {
        if (b->sym[l].id < 0 || b->sym[r].id < 0) return 0;
        const MergeSlot *m = merge_find(t, b->sym[l].id, b->sym[r].id);
        if (!m) return 0;
        c.prio = -(double)m->rank;
        c.result = m->result;
    } else {
        if (size > t->max_len) return 0;
        int id = lookup_mergeable(t, b->s + b->sym[l].start, (size_t)size);
        if (id < 0) return 0;
        c.prio = t->score[id];
        c.result = id;
        if (t->type[id] == PIECE_UNUSED && rev_put(&b->rev, id, b->sym[l].len)) return -1;
    }
    return heap_push(&b->heap, c);
}

/* Splits s[0..n) into characters (user-defined pieces stay whole). */
static int split_symbols(const Tokenizer *t, const char *s, int n, Sym *sym) {
    int count = 0;
    for (int pos = 0; pos < n;) {
        int len = t->max_user_len ? (int)match_user_defined(t, s + pos, (size_t)(n - pos)) : 0;
        int frozen = len > 0;
        if (!len) len = utf8_lead_len(s + pos, (size_t)(n - pos));
        sym[count] = (Sym){pos, len, count - 1, -1, -1, frozen};
        if (count > 0) sym[count - 1].next = count;
        if (t->use_merges) sym[count].id = lookup(t, s + pos, (size_t)len);
        count++;
        pos += len;
    }
    return count;
}

/* Appends the final pieces of one BPE symbol, splitting UNUSED pieces back
 * into the pair they came from. Each split shortens the span, so the stack
 * never holds more than len + 1 spans. */
static int bpe_emit(Bpe *b, int start, int len, int id, SegVec *out) {
    const Tokenizer *t = b->t;
    if (t->use_merges || id < 0 || t->type[id] != PIECE_UNUSED) return seg_push(out, start, len, id);
    int(*stack)[2] = malloc(((size_t)len + 1) * sizeof *stack);
    if (!stack) return -1;
    int top = 0, rc = 0;
    stack[top][0] = start;
    stack[top][1] = len;
    top++;
    while (top > 0 && rc == 0) {
        top--;
        int st = stack[top][0], ln = stack[top][1];
        int pid = lookup_mergeable(t, b->s + st, (size_t)ln);
        int left = pid >= 0 && t->type[pid] == PIECE_UNUSED ? rev_get(&b->rev, pid) : -1;
        if (left <= 0 || left >= ln) {
            rc = seg_push(out, st, ln, pid);
            continue;
        }
        stack[top][0] = st + left; /* the right half comes out after the left */
        stack[top][1] = ln - left;
        top++;
        stack[top][0] = st;
        stack[top][1] = left;
        top++;
    }
    free(stack);
    return rc;
}

static int bpe_segment(const Tokenizer *t, const char *s, int n, SegVec *out) {
    if (n == 0) return 0;
    Bpe b = {t, s, malloc((size_t)n * sizeof(Sym)), {0}, {0}};
    int rc = -1;
    if (!b.sym) goto done;
    int count = split_symbols(t, s, n, b.sym);
    for (int i = 1; i < count; i++)
        if (bpe_try_pair(&b, i - 1, i)) goto done;
    while (b.heap.n > 0) {
        Cand c = heap_pop(&b.heap);
        Sym *l = &b.sym[c.left], *r = &b.sym[c.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != c.size) continue; /* stale */
        l->len += r->len;
        l->id = c.result;
        l->next = r->next;
        if (r->next >= 0) b.sym[r->next].prev = c.left;
        r->len = 0;
        if (bpe_try_pair(&b, l->prev, c.left) || bpe_try_pair(&b, c.left, l->next)) goto done;
    }
    for (int i = 0; i >= 0 && count > 0; i = b.sym[i].next) {
        int id = t->use_merges ? b.sym[i].id : lookup_mergeable(t, s + b.sym[i].start, (size_t)b.sym[i].len);
        if (bpe_emit(&b, b.sym[i].start, b.sym[i].len, id, out)) goto done;
    }
    rc = 0;
done:
    free(b.sym);
    free(b.heap.v);
    free(b.rev.v);
    return rc;
}

/* sentencepiece's optimised Unigram Viterbi: the best path ending at each
 * byte position, pieces tried in order of length, strict improvement
 * only, unknown characters at min_score - 10. */
typedef struct {
    int id, start;
    float score;
} Best;

static int unigram_segment(const Tokenizer *t, const char *s, int n, SegVec *out) {
    if (n == 0) return 0;
    Best *best = malloc(((size_t)n + 1) * sizeof *best);
    if (!best) return -1;
    for (int i = 0; i <= n; i++) best[i] = (Best){-1, -1, 0};
    const float unk_score = t->min_score - 10.0f;
    for (int start = 0; start < n;) {
        float here = best[start].score;
        int mblen = utf8_lead_len(s + start, (size_t)(n - start));
        int has_single = 0;
        int max = t->max_len < n - start ? t->max_len : n - start;
        uint64_t h = HASH_SEED;
        for (int len = 1; len <= max; len++) {
            h = hash_step(h, s[start + len - 1]);
            uint64_t f = hash_final(h);
            if (!has_prefix(t, f)) break; /* no piece goes on from here */
            int id = lookup_hashed(t, s + start, (size_t)len, f);
            if (id < 0 || !is_mergeable(t->type[id]) || t->type[id] == PIECE_UNUSED) continue;
            /* float product, double sum: the types sentencepiece uses */
            double score = t->type[id] == PIECE_USER_DEFINED ? (double)((float)len * t->max_score) - 0.1
                                                             : (double)t->score[id];
            double cand = score + here;
            Best *b = &best[start + len];
            if (b->start == -1 || cand > b->score) *b = (Best){id, start, (float)cand};
            if (len == mblen) has_single = 1;
        }
        if (!has_single) {
            float cand = unk_score + here;
            Best *b = &best[start + mblen];
            if (b->start == -1 || cand > b->score) *b = (Best){t->unk_id, start, cand};
        }
        start += mblen;
    }
    /* walk back from the end, then reverse */
    size_t first = out->n;
    int rc = 0;
    for (int end = n; end > 0 && rc == 0;) {
        const Best *b = &best[end];
        if (b->start < 0 || b->start >= end) break; /* cannot happen: every char has a node */
        rc = seg_push(out, b->start, end - b->start, b->id == t->unk_id ? -1 : b->id);
        end = b->start;
    }
    for (size_t i = first, j = out->n ? out->n - 1 : 0; rc == 0 && i < j; i++, j--) {
        Seg tmp = out->v[i];
        out->v[i] = out->v[j];
        out->v[j] = tmp;
    }
    free(best);
    return rc;
}

/* Appends the ids for the segments: known pieces as they are, unknown ones
 * as byte pieces (byte fallback) or <unk> (runs of unknowns fused). */
static int emit_ids(const Tokenizer *t, const char *s, const SegVec *segs, IntVec *ids) {
    int prev_unk = 0;
    for (size_t i = 0; i < segs->n; i++) {
        const Seg *g = &segs->v[i];
        if (g->id >= 0 && g->id != t->unk_id) {
            if (ivec_push(ids, g->id)) return -1;
            prev_unk = 0;
            continue;
        }
        int all_bytes = t->byte_fallback;
        for (int k = 0; k < g->len && all_bytes; k++)
            if (t->byte_id[(unsigned char)s[g->start + k]] < 0) all_bytes = 0;
        if (all_bytes) {
            for (int k = 0; k < g->len; k++)
                if (ivec_push(ids, t->byte_id[(unsigned char)s[g->start + k]])) return -1;
            prev_unk = 0;
            continue;
        }
        /* without an unk piece (possible in a tokenizer.json) HF drops the
         * character */
        if (t->unk_id >= 0 && !(prev_unk && t->fuse_unk) && ivec_push(ids, t->unk_id)) return -1;
        prev_unk = 1;
    }
    return 0;
}

static int segment(const Tokenizer *t, const char *s, int n, SegVec *segs) {
    return t->model_type == SPM_UNIGRAM ? unigram_segment(t, s, n, segs) : bpe_segment(t, s, n, segs);
}

/* One chunk of text between special tokens: normalise, segment, append. */
static int encode_chunk(const Tokenizer *t, const char *s, size_t n, int at_start, Buf *norm, SegVec *segs,
                        IntVec *ids) {
    if (n == 0) return 0;
    int prefix = t->add_dummy_prefix && (!t->prefix_first_only || at_start);
    /* Metaspace adds no "▁" to text that already starts with one */
    if (t->metaspace && (s[0] == ' ' || (n >= SPACE_SYM_LEN && memcmp(s, SPACE_SYM, SPACE_SYM_LEN) == 0))) prefix = 0;
    if (normalize(t, s, n, prefix, norm)) return -1;
    if (norm->len > INT_MAX / 2) return -1;
    segs->n = 0;
    const char *x = norm->data;
    int len = (int)norm->len;
    if (!t->split_on_ws) {
        if (segment(t, x, len, segs)) return -1;
    } else {
        /* Metaspace split: each "▁" starts a new word */
        int w = 0;
        for (int i = 1; i <= len; i++) {
            if (i < len && !(i + SPACE_SYM_LEN <= len && memcmp(x + i, SPACE_SYM, SPACE_SYM_LEN) == 0)) continue;
            size_t before = segs->n;
            if (segment(t, x + w, i - w, segs)) return -1;
            for (size_t k = before; k < segs->n; k++) segs->v[k].start += w;
            w = i;
        }
    }
    return emit_ids(t, x, segs, ids);
}

/* Ids of the pieces HF splits out of the text, for a fast scan. */
static int collect_split_ids(const Tokenizer *t, IntVec *v) {
    for (int id = 0; id < t->n; id++)
        if ((t->flags[id] & F_SPLIT) && ivec_push(v, id)) return -1;
    return 0;
}

static int match_special_in(const Tokenizer *t, const IntVec *split, const char *s, size_t n, size_t *len) {
    int best = -1;
    *len = 0;
    for (size_t k = 0; k < split->n; k++) {
        int id = split->v[k];
        size_t l = t->len[id];
        if (l <= n && l > *len && piece_str(t, id)[0] == s[0] && memcmp(piece_str(t, id), s, l) == 0) {
            best = id;
            *len = l;
        }
    }
    return best;
}

int tokenizer_encode_bytes(const Tokenizer *t, const char *text, size_t len, int add_bos, int **ids, int *n_ids,
                           Error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!t) return error_set(err, "tokenizer_encode: no tokenizer");
    if (!text && len) return error_set(err, "%s: encode: no text", t->label);
    if (t->model_type != SPM_BPE && t->model_type != SPM_UNIGRAM)
        return error_set(err, "%s: SentencePiece model type %d (%s) cannot be encoded; only BPE and Unigram can",
                         t->label, t->model_type, t->model_type == SPM_WORD ? "WORD" : "CHAR");
    if (len > MAX_TEXT_BYTES)
        return error_set(err, "%s: encode: the text is %zu bytes, more than the %zu allowed", t->label, len,
                         MAX_TEXT_BYTES);
    IntVec out = {0}, split = {0};
    Buf norm = {0};
    SegVec segs = {0};
    int rc = 0;
    if (add_bos && t->bos_id >= 0) rc = ivec_push(&out, t->bos_id);
    if (rc == 0) rc = collect_split_ids(t, &split);
    size_t chunk = 0;
    for (size_t pos = 0; rc == 0 && pos < len;) {
        size_t sl;
        int sid = split.n ? match_special_in(t, &split, text + pos, len - pos, &sl) : -1;
        if (sid < 0) {
            pos++;
            continue;
        }
        rc = encode_chunk(t, text + chunk, pos - chunk, chunk == 0, &norm, &segs, &out);
        if (rc == 0) rc = ivec_push(&out, sid);
        pos += sl;
        chunk = pos;
    }
    if (rc == 0) rc = encode_chunk(t, text + chunk, len - chunk, chunk == 0, &norm, &segs, &out);
    free(split.v);
    free(norm.data);
    free(segs.v);
    if (rc == 0 && out.n > INT_MAX) rc = -1;
    if (rc) {
        free(out.v);
        return error_set(err, "%s: encode: out of memory for a text of %zu bytes", t->label, len);
    }
    *ids = out.v;
    *n_ids = (int)out.n;
    return 0;
}

int tokenizer_encode(const Tokenizer *t, const char *text, int add_bos, int **ids, int *n_ids, Error *err) {
    return tokenizer_encode_bytes(t, text, text ? strlen(text) : 0, add_bos, ids, n_ids, err);
}

/* ------------------------------------------------------------ decoding */

/* sentencepiece's handling of a run of byte pieces: valid UTF-8 characters
 * pass, each byte that starts none becomes U+FFFD. */
static int flush_bytes(Buf *run, Buf *out) {
    const unsigned char *p = (const unsigned char *)run->data;
    for (size_t i = 0; i < run->len;) {
        int l = utf8_valid_len(p + i, run->len - i);
        int rc = l ? buf_put(out, p + i, (size_t)l) : buf_put(out, "\xef\xbf\xbd", 3);
        if (rc) return -1;
        i += l ? (size_t)l : 1;
    }
    run->len = 0;
    return 0;
}

/* The id sentencepiece's PieceToId gives a piece string: unk when unknown. */
static int piece_to_id(const Tokenizer *t, Str s) {
    int id = lookup(t, s.s, s.n);
    return id >= 0 ? id : t->unk_id;
}

/* sentencepiece's DecodePieces of piece strings (sentencepiece 0.1.97). */
static int sp_decode(const Tokenizer *t, const Str *pieces, size_t n, Buf *out) {
    Buf run = {0};
    size_t start = out->len;
    int is_bos_ws = 1, bos_ws_seen = 0, rc = 0;
    int strip_ok = t->add_dummy_prefix || t->remove_extra_ws;
    for (size_t i = 0; i < n && rc == 0; i++) {
        Str s = pieces[i];
        int id = piece_to_id(t, s);
        int ty = id >= 0 ? t->type[id] : PIECE_UNKNOWN;
        if (ty == PIECE_BYTE) {
            rc = buf_putc(&run, parse_byte_piece(s.s, s.n));
            continue;
        }
        rc = flush_bytes(&run, out);
        if (rc) break;
        if (bos_ws_seen || out->len > start) is_bos_ws = 0;
        bos_ws_seen = 0;
        if (ty == PIECE_CONTROL) continue;
        if (ty == PIECE_UNKNOWN) {
            /* the <unk> piece shows as unk_surface, any other unknown
             * string as itself */
            if (id >= 0 && t->len[id] == s.n && memcmp(piece_str(t, id), s.s, s.n) == 0)
                rc = buf_put(out, t->unk_surface, strlen(t->unk_surface));
            else
                rc = buf_put(out, s.s, s.n);
            continue;
        }
        if (is_bos_ws && strip_ok && s.n >= SPACE_SYM_LEN && memcmp(s.s, SPACE_SYM, SPACE_SYM_LEN) == 0) {
            s.s += SPACE_SYM_LEN;
            s.n -= SPACE_SYM_LEN;
            bos_ws_seen = !t->remove_extra_ws;
        }
        for (size_t k = 0; k < s.n && rc == 0;) {
            if (k + SPACE_SYM_LEN <= s.n && memcmp(s.s + k, SPACE_SYM, SPACE_SYM_LEN) == 0) {
                rc = buf_putc(out, ' ');
                k += SPACE_SYM_LEN;
            } else {
                rc = buf_putc(out, s.s[k++]);
            }
        }
    }
    if (rc == 0) rc = flush_bytes(&run, out);
    free(run.data);
    return rc;
}

static int is_special_str(const Tokenizer *t, Str s) {
    int id = lookup(t, s.s, s.n);
    return id >= 0 && (t->flags[id] & F_SPECIAL);
}

/* HF LlamaTokenizer.convert_tokens_to_string (legacy=True). toks is
 * modified (the first token loses its "▁"); scratch holds n Strs. */
static int convert_tokens_to_string(const Tokenizer *t, Str *toks, size_t n, Str *scratch, Buf *out) {
    if (n == 0) return 0;
    if (toks[0].n >= SPACE_SYM_LEN && memcmp(toks[0].s, SPACE_SYM, SPACE_SYM_LEN) == 0) {
        toks[0].s += SPACE_SYM_LEN;
        toks[0].n -= SPACE_SYM_LEN;
    }
    size_t n_sub = 0;
    int prev_special = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_special_str(t, toks[i])) {
            if (!prev_special && i != 0 && buf_putc(out, ' ')) return -1;
            if (sp_decode(t, scratch, n_sub, out) || buf_put(out, toks[i].s, toks[i].n)) return -1;
            prev_special = 1;
            n_sub = 0;
        } else {
            scratch[n_sub++] = toks[i];
            prev_special = 0;
        }
    }
    return sp_decode(t, scratch, n_sub, out);
}

int tokenizer_decode(const Tokenizer *t, const int *ids, int n, int skip_special, char **out, Error *err) {
    *out = NULL;
    if (!t) return error_set(err, "tokenizer_decode: no tokenizer");
    if (n < 0 || (n > 0 && !ids)) return error_set(err, "%s: decode: bad id list (%d ids)", t->label, n);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n)
            return error_set(err, "%s: decode: token id %d (at %d) is outside the vocabulary of %d pieces", t->label,
                             ids[i], i, t->n);
    Str *cur = malloc(((size_t)n + 1) * sizeof *cur);
    Str *scratch = malloc(((size_t)n + 1) * sizeof *scratch);
    Buf b = {0};
    int rc = !cur || !scratch || buf_reserve(&b, 16) ? -1 : 0;
    if (rc == 0) b.data[0] = 0;
    /* HF _decode: non-special added tokens are written as they are, between
     * separately converted runs of the other tokens */
    size_t n_cur = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int id = ids[i];
        if (skip_special && (t->flags[id] & F_SPECIAL)) continue;
        Str s = {piece_str(t, id), t->len[id]};
        if ((t->flags[id] & F_SPLIT) && !(t->flags[id] & F_SPECIAL)) {
            rc = convert_tokens_to_string(t, cur, n_cur, scratch, &b);
            n_cur = 0;
            if (rc == 0) rc = buf_put(&b, s.s, s.n);
        } else {
            cur[n_cur++] = s;
        }
    }
    if (rc == 0) rc = convert_tokens_to_string(t, cur, n_cur, scratch, &b);
    free(cur);
    free(scratch);
    if (rc) {
        free(b.data);
        return error_set(err, "%s: decode: out of memory for %d ids", t->label, n);
    }
    *out = b.data;
    return 0;
}

const char *tokenizer_piece_text(const Tokenizer *t, int prev_id, int id, char *buf, size_t cap) {
    if (!buf || cap == 0) return "";
    buf[0] = 0;
    if (!t || id < 0 || id >= t->n) return buf;
    int ty = t->type[id];
    if ((t->flags[id] & F_SPECIAL) || ty == PIECE_CONTROL) return buf;
    if (ty == PIECE_BYTE) {
        if (cap >= 2) {
            buf[0] = (char)parse_byte_piece(piece_str(t, id), t->len[id]);
            buf[1] = 0;
        }
        return buf;
    }
    const char *s = piece_str(t, id);
    size_t n = t->len[id];
    /* HF strips the "▁" of the first piece after BOS; with
     * skip_special_tokens it keeps those after other special tokens */
    int at_start = prev_id < 0 || prev_id == t->bos_id;
    if (at_start && (t->add_dummy_prefix || t->remove_extra_ws) && n >= SPACE_SYM_LEN &&
        memcmp(s, SPACE_SYM, SPACE_SYM_LEN) == 0) {
        s += SPACE_SYM_LEN;
        n -= SPACE_SYM_LEN;
    }
    size_t o = 0;
    for (size_t k = 0; k < n;) {
        int is_sp = k + SPACE_SYM_LEN <= n && memcmp(s + k, SPACE_SYM, SPACE_SYM_LEN) == 0;
        size_t take = is_sp ? SPACE_SYM_LEN : (size_t)utf8_lead_len(s + k, n - k);
        size_t put = is_sp ? 1 : take;
        if (o + put + 1 > cap) break; /* whole characters only */
        if (is_sp) buf[o] = ' ';
        else memcpy(buf + o, s + k, take);
        o += put;
        k += take;
    }
    buf[o] = 0;
    return buf;
}

/* ----------------------------------------------------------- accessors */

int tokenizer_vocab_size(const Tokenizer *t) { return t ? t->n : 0; }
int tokenizer_bos(const Tokenizer *t) { return t ? t->bos_id : -1; }
int tokenizer_eos(const Tokenizer *t) { return t ? t->eos_id : -1; }
int tokenizer_pad(const Tokenizer *t) { return t ? t->pad_id : -1; }
int tokenizer_unk(const Tokenizer *t) { return t ? t->unk_id : -1; }
int tokenizer_model_type(const Tokenizer *t) { return t ? t->model_type : 0; }

const char *tokenizer_piece(const Tokenizer *t, int id) {
    return t && id >= 0 && id < t->n ? piece_str(t, id) : "";
}

float tokenizer_piece_score(const Tokenizer *t, int id) { return t && id >= 0 && id < t->n ? t->score[id] : 0.0f; }

int tokenizer_piece_type(const Tokenizer *t, int id) { return t && id >= 0 && id < t->n ? t->type[id] : 0; }

int tokenizer_piece_id(const Tokenizer *t, const char *s, size_t len) {
    return t && (s || !len) ? lookup(t, s ? s : "", len) : -1;
}

/* -------------------------------------------------------------- writer */

static int pb_put_varint(Buf *b, uint64_t v) {
    uint8_t tmp[10];
    int n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) tmp[n] |= 0x80;
        n++;
    } while (v);
    return buf_put(b, tmp, (size_t)n);
}

static int pb_put_tag(Buf *b, uint32_t field, int wire) { return pb_put_varint(b, (uint64_t)field << 3 | (uint32_t)wire); }

/* int32 fields are written sign-extended to 64 bits, as protobuf does. */
static int pb_put_int(Buf *b, uint32_t field, int64_t v) {
    return pb_put_tag(b, field, 0) || pb_put_varint(b, (uint64_t)v);
}

static int pb_put_bytes(Buf *b, uint32_t field, const void *p, size_t n) {
    return pb_put_tag(b, field, 2) || pb_put_varint(b, n) || buf_put(b, p, n);
}

static int pb_put_float(Buf *b, uint32_t field, float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint8_t le[4] = {(uint8_t)bits, (uint8_t)(bits >> 8), (uint8_t)(bits >> 16), (uint8_t)(bits >> 24)};
    return pb_put_tag(b, field, 5) || buf_put(b, le, 4);
}

/* A missing special is written as an empty name, which no piece has, so
 * the reader does not fall back to the default "<s>" and find another. */
static int put_name(Buf *b, uint32_t field, const Tokenizer *t, int id) {
    return id >= 0 ? pb_put_bytes(b, field, piece_str(t, id), t->len[id]) : pb_put_bytes(b, field, "", 0);
}

static int write_trainer_spec(const Tokenizer *t, Buf *b) {
    return pb_put_int(b, 3, t->model_type) || pb_put_int(b, 4, t->n) ||
           (t->ws_as_suffix && pb_put_int(b, 24, 1)) || pb_put_int(b, 35, t->byte_fallback) ||
           pb_put_int(b, 40, t->unk_id) || pb_put_int(b, 41, t->bos_id) || pb_put_int(b, 42, t->eos_id) ||
           pb_put_int(b, 43, t->pad_id) || pb_put_bytes(b, 44, t->unk_surface, strlen(t->unk_surface)) ||
           put_name(b, 45, t, t->unk_id) || put_name(b, 46, t, t->bos_id) || put_name(b, 47, t, t->eos_id) ||
           put_name(b, 48, t, t->pad_id);
}

static int write_normalizer_spec(const Tokenizer *t, Buf *b) {
    const char *name = t->norm_name[0] ? t->norm_name : "identity";
    return pb_put_bytes(b, 1, name, strlen(name)) ||
           (t->charsmap && pb_put_bytes(b, 2, t->charsmap, t->charsmap_len)) ||
           pb_put_int(b, 3, t->add_dummy_prefix) || pb_put_int(b, 4, t->remove_extra_ws) ||
           pb_put_int(b, 5, t->escape_ws);
}

int tokenizer_serialize_spm(const Tokenizer *t, uint8_t **out, size_t *n, Error *err) {
    *out = NULL;
    *n = 0;
    if (!t) return error_set(err, "tokenizer_serialize_spm: no tokenizer");
    if (t->metaspace)
        return error_set(err, "%s: a tokenizer with a Metaspace pre-tokenizer has no SentencePiece equivalent",
                         t->label);
    /* what sentencepiece insists on when it loads a model */
    if (t->unk_id < 0) return error_set(err, "%s: cannot write a SentencePiece model without an unk piece", t->label);
    for (int b = 0; b < 256 && t->byte_fallback; b++)
        if (t->byte_id[b] < 0)
            return error_set(err, "%s: cannot write a SentencePiece model with byte_fallback but no piece <0x%02X>",
                             t->label, b);
    Buf b = {0}, sub = {0};
    int rc = 0;
    for (int id = 0; id < t->n && rc == 0; id++) {
        sub.len = 0;
        int type = t->type[id];
        rc = pb_put_bytes(&sub, 1, piece_str(t, id), t->len[id]) || pb_put_float(&sub, 2, t->score[id]) ||
             (type != PIECE_NORMAL && pb_put_int(&sub, 3, type)) || pb_put_bytes(&b, 1, sub.data, sub.len);
    }
    sub.len = 0;
    if (rc == 0) rc = write_trainer_spec(t, &sub) || pb_put_bytes(&b, 2, sub.data, sub.len);
    sub.len = 0;
    if (rc == 0) rc = write_normalizer_spec(t, &sub) || pb_put_bytes(&b, 3, sub.data, sub.len);
    free(sub.data);
    if (rc) {
        free(b.data);
        return error_set(err, "%s: out of memory writing the model", t->label);
    }
    *out = (uint8_t *)b.data;
    *n = b.len;
    return 0;
}

int tokenizer_save_spm(const Tokenizer *t, const char *path, Error *err) {
    uint8_t *data;
    size_t n;
    if (tokenizer_serialize_spm(t, &data, &n, err)) return error_prefix(err, "%s", path);
    AtomicFile f;
    int rc = file_begin(&f, path, err);
    if (rc == 0) rc = file_write(&f, data, n, err);
    if (rc == 0) rc = file_commit(&f, err);
    else if (f.fp) file_abort(&f);
    free(data);
    return rc;
}

/* ------------------------------------------------- synthetic vocabulary */

/* Common English words first, then medical ones, so a small vocabulary
 * still covers the everyday words of a prompt. */
static const char *const SYNTH_WORDS[] = {
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "with", "as", "was", "on", "be", "by", "this",
    "are", "an", "or", "at", "from", "not", "which", "have", "has", "can", "there", "were", "their", "its", "no",
    "but", "all", "one", "two", "three", "more", "may", "these", "other", "some", "into", "than", "also", "after",
    "been", "who", "what", "when", "where", "how", "why", "do", "does", "if", "any", "each", "between", "both",
    "during", "over", "under", "left", "right", "above", "below", "Below", "The", "A", "What", "This", "There",
    "In", "instruction", "describes", "task", "Write", "response", "appropriately", "completes", "request",
    "paired", "input", "provides", "further", "context", "uploaded", "image", "Instruction", "Input", "Response",
    "Hello", "world", "you", "your", "we", "our", "they", "he", "she", "his", "her", "them", "use", "used", "using",
    "show", "shows", "showing", "seen", "see", "visible", "found", "present", "normal", "abnormal", "common",
    "most", "often", "usually", "should", "would", "could", "will", "time", "day", "days", "year", "years",
    "patient", "patients", "case", "cases", "study", "treatment", "therapy", "disease", "diagnosis", "symptoms",
    "pain", "chest", "heart", "lung", "lungs", "liver", "kidney", "brain", "bone", "blood", "skin", "head", "neck",
    "abdomen", "abdominal", "pelvis", "spine", "artery", "vein", "tissue", "cell", "cells", "tumor", "mass",
    "lesion", "lesions", "fracture", "infection", "inflammation", "effusion", "edema", "cancer", "carcinoma",
    "metastasis", "nodule", "cyst", "stenosis", "aneurysm", "thrombosis", "embolism", "hemorrhage", "infarction",
    "ischemia", "pneumonia", "pneumothorax", "cardiomegaly", "atelectasis", "consolidation", "opacity",
    "radiograph", "radiology", "scan", "CT", "MRI", "X", "ray", "ultrasound", "contrast", "enhanced", "axial",
    "coronal", "sagittal", "view", "views", "arrow", "arrows", "demonstrates", "reveals", "revealed", "suggest",
    "suggests", "consistent", "evidence", "small", "large", "mild", "moderate", "severe", "acute", "chronic",
    "bilateral", "lateral", "anterior", "posterior", "superior", "inferior", "upper", "lower", "side", "wall",
    "region", "area", "lobe", "diameter", "size", "cm", "mm", "mg", "dose", "surgery", "surgical", "clinical",
    "medical", "doctor", "hospital", "history", "examination", "test", "tests", "result", "results", "risk",
    "age", "male", "female", "man", "woman", "child", "children", "years", "old", "new", "first", "second",
    "after", "before", "within", "without", "because", "however", "therefore", "such", "like", "same", "different",
    "high", "low", "increased", "decreased", "level", "levels", "rate", "heart", "cardiac", "pulmonary", "renal",
    "hepatic", "vascular", "muscle", "joint", "knee", "hip", "shoulder", "hand", "foot", "fluid", "air", "gas",
    "free", "wall", "thickening", "calcification", "dilatation", "obstruction", "stent", "catheter", "tube",
    "line", "drain", "biopsy", "specimen", "histology", "pathology", "benign", "malignant", "lymph", "node",
    "nodes", "diabetes", "hypertension", "asthma", "fever", "cough", "breath", "shortness", "weight", "loss",
    "about", "only", "very", "well", "then", "so", "up", "out", "about", "answer", "question", "please", "help",
    "information", "following", "list", "type", "figure", "table", "data", "chart", "plot", "value", "values",
    "total", "number", "percent", "between", "increase", "decrease", "trend", "highest", "lowest", "average",
};

/* The byte pieces, "▁" and the printable ASCII characters: enough for any
 * text. NORMAL pieces score -(rank). */
static int add_synthetic_base(Tokenizer *t, int first_normal, Error *err) {
    int rc = 0;
    for (int b = 0; b < 256 && rc == 0; b++) {
        char p[8];
        snprintf(p, sizeof p, "<0x%02X>", b);
        rc = tok_add_piece(t, p, 6, 0, PIECE_BYTE, err);
    }
    if (rc == 0) rc = tok_add_piece(t, SPACE_SYM, SPACE_SYM_LEN, -(float)(t->n - first_normal), PIECE_NORMAL, err);
    for (int c = 0x21; c < 0x7F && rc == 0; c++) {
        char ch = (char)c;
        rc = tok_add_piece(t, &ch, 1, -(float)(t->n - first_normal), PIECE_NORMAL, err);
    }
    return rc ? -1 : build_index(t, err);
}

/* Fills the vocabulary up to vocab_size with <unusedN> pieces. */
static int add_synthetic_unused(Tokenizer *t, int vocab_size, int first_normal, Error *err) {
    char piece[64];
    for (int k = 0; t->n < vocab_size; k++) {
        int len = snprintf(piece, sizeof piece, "<unused%d>", k);
        if (tok_add_piece(t, piece, (size_t)len, -(float)(t->n - first_normal), PIECE_UNUSED, err)) return -1;
    }
    return 0;
}

static int check_synthetic_size(int vocab_size, Error *err) {
    if (vocab_size < 512)
        return error_set(err, "synthetic tokenizer: vocab_size %d is below the minimum of 512 (3 specials + 256 "
                              "bytes + the ASCII characters + words)", vocab_size);
    if (vocab_size > (1 << 24))
        return error_set(err, "synthetic tokenizer: vocab_size %d is above the maximum of %d", vocab_size, 1 << 24);
    return 0;
}

/* A tokenizer with no pieces yet, byte fallback on, no normalization. */
static Tokenizer *synthetic_begin(const char *label, int model_type, int remove_extra_ws) {
    Tokenizer *t = tok_new(label);
    if (!t) return NULL;
    t->model_type = model_type;
    t->byte_fallback = 1;
    t->remove_extra_ws = remove_extra_ws;
    snprintf(t->norm_name, sizeof t->norm_name, "identity");
    return t;
}

/* Finds the special pieces by name as sentencepiece does, or frees t when
 * building it failed (rc). */
static int synthetic_end(Tokenizer *t, int rc, Tokenizer **out, Error *err) {
    SpecNames names = {{"<unk>", 5}, {"<s>", 3}, {"</s>", 4}, {"<pad>", 5}};
    if (rc || finish_spm(t, &names, err)) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int tokenizer_build_synthetic(Tokenizer **out, int vocab_size, Error *err) {
    *out = NULL;
    if (check_synthetic_size(vocab_size, err)) return -1;
    Tokenizer *t = synthetic_begin("synthetic tokenizer", SPM_BPE, 0);
    if (!t) return error_set(err, "synthetic tokenizer: out of memory");
    int rc = tok_add_piece(t, "<unk>", 5, 0, PIECE_UNKNOWN, err) || tok_add_piece(t, "<s>", 3, 0, PIECE_CONTROL, err) ||
             tok_add_piece(t, "</s>", 4, 0, PIECE_CONTROL, err);
    int first_normal = t->n + 256;
    if (rc == 0) rc = add_synthetic_base(t, first_normal, err);
    /* each word as "▁w", "▁wo", ... "▁word": the only pair BPE can merge in
     * a word is then the one that extends its "▁" prefix, so every listed
     * word becomes one piece */
    size_t n_words = sizeof SYNTH_WORDS / sizeof SYNTH_WORDS[0];
    char piece[64];
    for (size_t w = 0; w < n_words && rc == 0; w++) {
        size_t wl = strlen(SYNTH_WORDS[w]);
        memcpy(piece, SPACE_SYM, SPACE_SYM_LEN);
        memcpy(piece + SPACE_SYM_LEN, SYNTH_WORDS[w], wl);
        int missing = 0;
        for (size_t k = 1; k <= wl; k++)
            if (lookup(t, piece, SPACE_SYM_LEN + k) < 0) missing++;
        if (missing == 0 || t->n + missing > vocab_size) continue;
        for (size_t k = 1; k <= wl && rc == 0; k++)
            if (lookup(t, piece, SPACE_SYM_LEN + k) < 0)
                rc = tok_add_piece(t, piece, SPACE_SYM_LEN + k, -(float)(t->n - first_normal), PIECE_NORMAL, err) ||
                     index_add_last(t, err);
    }
    if (rc == 0) rc = add_synthetic_unused(t, vocab_size, first_normal, err);
    return synthetic_end(t, rc, out, err);
}

int tokenizer_build_synthetic_t5(Tokenizer **out, int vocab_size, Error *err) {
    *out = NULL;
    if (check_synthetic_size(vocab_size, err)) return -1;
    Tokenizer *t = synthetic_begin("synthetic T5 tokenizer", SPM_UNIGRAM, 1);
    if (!t) return error_set(err, "synthetic tokenizer: out of memory");
    /* T5's layout: pad 0, eos 1, unk 2, no bos */
    int rc = tok_add_piece(t, "<pad>", 5, 0, PIECE_CONTROL, err) || tok_add_piece(t, "</s>", 4, 0, PIECE_CONTROL, err) ||
             tok_add_piece(t, "<unk>", 5, 0, PIECE_UNKNOWN, err);
    int first_normal = t->n + 256;
    if (rc == 0) rc = add_synthetic_base(t, first_normal, err);
    /* Unigram picks the segmentation of highest total score: a whole word
     * (one piece) beats its letters (one piece each, every score < 0). */
    size_t n_words = sizeof SYNTH_WORDS / sizeof SYNTH_WORDS[0];
    char piece[64];
    for (size_t w = 0; w < n_words && rc == 0 && t->n < vocab_size; w++) {
        size_t wl = strlen(SYNTH_WORDS[w]);
        memcpy(piece, SPACE_SYM, SPACE_SYM_LEN);
        memcpy(piece + SPACE_SYM_LEN, SYNTH_WORDS[w], wl);
        if (lookup(t, piece, SPACE_SYM_LEN + wl) >= 0) continue;
        rc = tok_add_piece(t, piece, SPACE_SYM_LEN + wl, -(float)(t->n - first_normal), PIECE_NORMAL, err) ||
             index_add_last(t, err);
    }
    if (rc == 0) rc = add_synthetic_unused(t, vocab_size, first_normal, err);
    return synthetic_end(t, rc, out, err);
}
