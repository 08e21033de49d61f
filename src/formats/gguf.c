#include "formats/gguf.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/bytes.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vmed's GGUF reader and writer assume a little-endian host"
#endif

/* ------------------------------------------------------------ type tables */

/* Block sizes as ggml-common.h defines the blocks (Q8_1 is 36 bytes there:
 * two f16 and 32 int8; gguf-py's table still says 40 from an older layout,
 * but Q8_1 is a dot-product scratch type that no file stores). */
static const GgmlTypeInfo GGML_TYPES[GGML_TYPE_LIMIT] = {
    [GGML_F32] = {"F32", 1, 4, 0},           [GGML_F16] = {"F16", 1, 2, 0},
    [GGML_Q4_0] = {"Q4_0", 32, 18, 1},       [GGML_Q4_1] = {"Q4_1", 32, 20, 1},
    [GGML_Q5_0] = {"Q5_0", 32, 22, 1},       [GGML_Q5_1] = {"Q5_1", 32, 24, 1},
    [GGML_Q8_0] = {"Q8_0", 32, 34, 1},       [GGML_Q8_1] = {"Q8_1", 32, 36, 1},
    [GGML_Q2_K] = {"Q2_K", 256, 84, 1},      [GGML_Q3_K] = {"Q3_K", 256, 110, 1},
    [GGML_Q4_K] = {"Q4_K", 256, 144, 1},     [GGML_Q5_K] = {"Q5_K", 256, 176, 1},
    [GGML_Q6_K] = {"Q6_K", 256, 210, 1},     [GGML_Q8_K] = {"Q8_K", 256, 292, 1},
    [GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66, 1}, [GGML_IQ2_XS] = {"IQ2_XS", 256, 74, 1},
    [GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98, 1}, [GGML_IQ1_S] = {"IQ1_S", 256, 50, 1},
    [GGML_IQ4_NL] = {"IQ4_NL", 32, 18, 1},   [GGML_IQ3_S] = {"IQ3_S", 256, 110, 1},
    [GGML_IQ2_S] = {"IQ2_S", 256, 82, 1},    [GGML_IQ4_XS] = {"IQ4_XS", 256, 136, 1},
    [GGML_I8] = {"I8", 1, 1, 0},             [GGML_I16] = {"I16", 1, 2, 0},
    [GGML_I32] = {"I32", 1, 4, 0},           [GGML_I64] = {"I64", 1, 8, 0},
    [GGML_F64] = {"F64", 1, 8, 0},           [GGML_IQ1_M] = {"IQ1_M", 256, 56, 1},
    [GGML_BF16] = {"BF16", 1, 2, 0},         [GGML_TQ1_0] = {"TQ1_0", 256, 54, 1},
    [GGML_TQ2_0] = {"TQ2_0", 256, 66, 1},    [GGML_MXFP4] = {"MXFP4", 32, 17, 1},
    [GGML_NVFP4] = {"NVFP4", 64, 36, 1},     [GGML_Q1_0] = {"Q1_0", 128, 18, 1},
};

const GgmlTypeInfo *ggml_type_info(uint32_t type) {
    if (type >= GGML_TYPE_LIMIT || !GGML_TYPES[type].name) return NULL;
    return &GGML_TYPES[type];
}

const char *ggml_type_name(uint32_t type) {
    const GgmlTypeInfo *ti = ggml_type_info(type);
    return ti ? ti->name : "unknown";
}

int ggml_type_to_dtype(uint32_t type, DType *out) {
    switch (type) {
    case GGML_F32: *out = DT_F32; return 0;
    case GGML_F16: *out = DT_F16; return 0;
    case GGML_BF16: *out = DT_BF16; return 0;
    case GGML_F64: *out = DT_F64; return 0;
    case GGML_I8: *out = DT_I8; return 0;
    case GGML_I16: *out = DT_I16; return 0;
    case GGML_I32: *out = DT_I32; return 0;
    case GGML_I64: *out = DT_I64; return 0;
    default: return -1;
    }
}

uint64_t ggml_row_bytes(uint32_t type, uint64_t n) {
    const GgmlTypeInfo *ti = ggml_type_info(type);
    return ti ? n / (uint64_t)ti->block_elems * (uint64_t)ti->block_bytes : 0;
}

static const char *const VALUE_TYPE_NAMES[GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

const char *gguf_type_name(uint32_t type) { return type < GGUF_TYPE_COUNT ? VALUE_TYPE_NAMES[type] : "unknown"; }

/* Bytes of one value of a fixed-size type; 0 for string, array, unknown. */
static unsigned value_size(uint32_t type) {
    static const unsigned sizes[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < GGUF_TYPE_COUNT ? sizes[type] : 0;
}

/* ---------------------------------------------------------------- helpers */

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd_u64(const uint8_t *p) { return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32; }

/* A name as it may appear in a message: non-printable bytes as \xNN, cut. */
static const char *show(char *dst, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\'') dst[o++] = (char)c;
        else o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
    }
    if (cap) dst[o < cap ? o : cap - 1] = 0;
    return dst;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static int is_pow2(uint64_t x) { return x && (x & (x - 1)) == 0; }

/* ----------------------------------------------------------------- reader */

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    const char *label;
    Error *err;
} Cur;

static int truncated(Cur *c, uint64_t n, const char *what) {
    return error_set(c->err, "%s: truncated file: %s needs %llu bytes at offset %zu, but the file ends at %zu",
                     c->label, what, (unsigned long long)n, c->pos, c->size);
}

static int need(Cur *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos) return truncated(c, n, what);
    return 0;
}

static int get_u32(Cur *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return -1;
    *v = rd_u32(c->p + c->pos);
    c->pos += 4;
    return 0;
}

static int get_u64(Cur *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return -1;
    *v = rd_u64(c->p + c->pos);
    c->pos += 8;
    return 0;
}

/* A string: *s points into the data. */
static int get_str(Cur *c, const char **s, uint64_t *len, const char *what) {
    if (get_u64(c, len, what)) return -1;
    if (*len > c->size - c->pos) {
        char w[300];
        snprintf(w, sizeof w, "%s (a string of %llu bytes)", what, (unsigned long long)*len);
        return truncated(c, *len, w);
    }
    *s = (const char *)c->p + c->pos;
    c->pos += (size_t)*len;
    return 0;
}

/* A copy of a key or tensor name: non-empty, at most max bytes, no NUL. */
static int copy_name(Cur *c, const char *s, uint64_t len, uint64_t max, const char *what, char **out) {
    char b[200];
    if (len == 0) return error_set(c->err, "%s: %s is empty", c->label, what);
    if (len > max)
        return error_set(c->err, "%s: %s '%s...' is %llu bytes long; GGUF allows at most %llu", c->label, what,
                         show(b, 60, s, (size_t)len), (unsigned long long)len, (unsigned long long)max);
    if (memchr(s, 0, (size_t)len))
        return error_set(c->err, "%s: %s '%s' contains a NUL byte", c->label, what, show(b, sizeof b, s, (size_t)len));
    *out = malloc((size_t)len + 1);
    if (!*out) return error_set(c->err, "%s: out of memory", c->label);
    memcpy(*out, s, (size_t)len);
    (*out)[len] = 0;
    return 0;
}

static int parse_array(Cur *c, GgufKV *kv) {
    char what[300], b[200];
    show(b, sizeof b, kv->key, strlen(kv->key));
    snprintf(what, sizeof what, "the array header of '%s'", b);
    uint64_t count;
    if (get_u32(c, &kv->elem_type, what) || get_u64(c, &count, what)) return -1;
    if (kv->elem_type == GGUF_ARRAY)
        return error_set(c->err, "%s: metadata '%s' is an array of arrays, which vmed does not read", c->label, b);
    if (kv->elem_type >= GGUF_TYPE_COUNT)
        return error_set(c->err, "%s: metadata '%s' is an array of value type %u, which is not a GGUF type", c->label,
                         b, kv->elem_type);
    kv->count = count;
    kv->data = c->p + c->pos;
    size_t left = c->size - c->pos;
    snprintf(what, sizeof what, "the array '%s' (%llu elements)", b, (unsigned long long)count);
    if (kv->elem_type != GGUF_STRING) {
        uint64_t es = value_size(kv->elem_type);
        if (count > left / es) return truncated(c, count <= UINT64_MAX / es ? count * es : UINT64_MAX, what);
        kv->nbytes = count * es;
        if (kv->elem_type == GGUF_BOOL)
            for (uint64_t i = 0; i < count; i++)
                if (kv->data[i] > 1)
                    return error_set(c->err, "%s: element %llu of '%s' is bool value %u, not 0 or 1", c->label,
                                     (unsigned long long)i, b, kv->data[i]);
        c->pos += (size_t)kv->nbytes;
        return 0;
    }
    /* Each string takes at least its 8-byte length: this bounds the
     * offsets array by the file size. */
    if (count > left / 8) return truncated(c, count > UINT64_MAX / 8 ? UINT64_MAX : count * 8, what);
    kv->str_offsets = malloc((size_t)(count ? count : 1) * sizeof *kv->str_offsets);
    if (!kv->str_offsets) return error_set(c->err, "%s: out of memory for %llu strings", c->label,
                                           (unsigned long long)count);
    size_t start = c->pos;
    for (uint64_t i = 0; i < count; i++) {
        kv->str_offsets[i] = c->pos - start;
        const char *s;
        uint64_t len;
        snprintf(what, sizeof what, "element %llu of '%s'", (unsigned long long)i, b);
        if (get_str(c, &s, &len, what)) return -1;
    }
    kv->nbytes = c->pos - start;
    return 0;
}

static int parse_kv(Cur *c, GgufKV *kv, int64_t index) {
    char what[300], b[200];
    const char *key;
    uint64_t key_len;
    snprintf(what, sizeof what, "the key of metadata entry %lld", (long long)index);
    if (get_str(c, &key, &key_len, what)) return -1;
    snprintf(what, sizeof what, "the key of metadata entry %lld", (long long)index);
    if (copy_name(c, key, key_len, GGUF_MAX_KEY, what, &kv->key)) return -1;
    show(b, sizeof b, kv->key, strlen(kv->key));
    snprintf(what, sizeof what, "the value type of '%s'", b);
    if (get_u32(c, &kv->type, what)) return -1;
    if (kv->type >= GGUF_TYPE_COUNT)
        return error_set(c->err, "%s: metadata '%s' has value type %u, which is not a GGUF type", c->label, b,
                         kv->type);
    kv->elem_type = kv->type;
    kv->count = 1;
    if (kv->type == GGUF_ARRAY) return parse_array(c, kv);
    snprintf(what, sizeof what, "the value of '%s'", b);
    kv->data = c->p + c->pos;
    if (kv->type == GGUF_STRING) {
        const char *s;
        uint64_t len;
        if (get_str(c, &s, &len, what)) return -1;
        kv->nbytes = 8 + len;
        return 0;
    }
    kv->nbytes = value_size(kv->type);
    if (need(c, kv->nbytes, what)) return -1;
    if (kv->type == GGUF_BOOL && kv->data[0] > 1)
        return error_set(c->err, "%s: metadata '%s' is bool value %u, not 0 or 1", c->label, b, kv->data[0]);
    c->pos += (size_t)kv->nbytes;
    return 0;
}

static int parse_tensor_info(Cur *c, GgufTensor *t, int64_t index) {
    char what[300], b[200];
    const char *name;
    uint64_t len;
    snprintf(what, sizeof what, "the name of tensor %lld", (long long)index);
    if (get_str(c, &name, &len, what)) return -1;
    snprintf(what, sizeof what, "the name of tensor %lld", (long long)index);
    if (copy_name(c, name, len, GGUF_MAX_NAME, what, &t->name)) return -1;
    const char *lb = c->label;
    show(b, sizeof b, t->name, strlen(t->name));
    snprintf(what, sizeof what, "the dimensions of tensor '%s'", b);
    uint32_t n_dims;
    if (get_u32(c, &n_dims, what)) return -1;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return error_set(c->err, "%s: tensor '%s' has %u dimensions; GGUF allows 1 to %d", lb, b, n_dims,
                         GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    uint64_t numel = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (int d = 0; d < t->n_dims; d++) {
        uint64_t n;
        if (get_u64(c, &n, what)) return -1;
        if (n == 0) return error_set(c->err, "%s: tensor '%s' has size 0 in dimension %d", lb, b, d);
        if (n > (uint64_t)INT64_MAX / numel)
            return error_set(c->err, "%s: tensor '%s' has more than 2^63 - 1 elements (dimension %d is %llu)", lb, b, d,
                             (unsigned long long)n);
        numel *= n;
        t->ne[d] = (int64_t)n;
    }
    snprintf(what, sizeof what, "the type and offset of tensor '%s'", b);
    if (get_u32(c, &t->type, what) || get_u64(c, &t->offset, what)) return -1;
    const GgmlTypeInfo *ti = ggml_type_info(t->type);
    if (!ti) return error_set(c->err, "%s: tensor '%s' has type id %u, which vmed does not know", lb, b, t->type);
    if (t->ne[0] % ti->block_elems)
        return error_set(c->err, "%s: tensor '%s' is %s with rows of %lld values, not a multiple of its block size %d",
                         lb, b, ti->name, (long long)t->ne[0], ti->block_elems);
    uint64_t blocks = numel / (uint64_t)ti->block_elems;
    if (blocks > UINT64_MAX / 2 / (uint64_t)ti->block_bytes)
        return error_set(c->err, "%s: tensor '%s' is too large (%llu blocks of %s)", lb, b,
                         (unsigned long long)blocks, ti->name);
    t->nbytes = blocks * (uint64_t)ti->block_bytes;
    return 0;
}

static int cmp_kv(const void *a, const void *b) {
    return strcmp((*(GgufKV *const *)a)->key, (*(GgufKV *const *)b)->key);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(GgufTensor *const *)a)->name, (*(GgufTensor *const *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const GgufTensor *x = *(GgufTensor *const *)a, *y = *(GgufTensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int set_alignment(Gguf *g, Error *err) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const GgufKV *kv = gguf_find_kv(g, "general.alignment");
    if (!kv) return 0;
    if (kv->type != GGUF_U32)
        return error_set(err, "%s: general.alignment has type %s; it must be u32", g->label, gguf_type_name(kv->type));
    uint32_t a = rd_u32(kv->data);
    if (!is_pow2(a)) return error_set(err, "%s: general.alignment is %u; it must be a power of two", g->label, a);
    g->alignment = a;
    return 0;
}

static int index_kvs(Gguf *g, Error *err) {
    g->kv_by_key = malloc((size_t)(g->n_kv ? g->n_kv : 1) * sizeof *g->kv_by_key);
    if (!g->kv_by_key) return error_set(err, "%s: out of memory", g->label);
    for (int64_t i = 0; i < g->n_kv; i++) g->kv_by_key[i] = &g->kvs[i];
    qsort(g->kv_by_key, (size_t)g->n_kv, sizeof *g->kv_by_key, cmp_kv);
    for (int64_t i = 1; i < g->n_kv; i++)
        if (strcmp(g->kv_by_key[i - 1]->key, g->kv_by_key[i]->key) == 0) {
            char b[200];
            const char *k = g->kv_by_key[i]->key;
            return error_set(err, "%s: metadata key '%s' appears twice", g->label, show(b, sizeof b, k, strlen(k)));
        }
    return 0;
}

/* Names unique, offsets aligned, inside the data section, no overlaps. */
static int check_tensors(Gguf *g, Error *err) {
    size_t n = (size_t)g->n_tensors;
    g->tensor_by_name = malloc((n ? n : 1) * sizeof *g->tensor_by_name);
    GgufTensor **by_off = malloc((n ? n : 1) * sizeof *by_off);
    if (!g->tensor_by_name || !by_off) {
        free(by_off);
        return error_set(err, "%s: out of memory", g->label);
    }
    for (size_t i = 0; i < n; i++) g->tensor_by_name[i] = by_off[i] = &g->tensors[i];
    qsort(g->tensor_by_name, n, sizeof *by_off, cmp_tensor_name);
    qsort(by_off, n, sizeof *by_off, cmp_tensor_offset);
    uint64_t data_size = g->data_offset < g->size ? g->size - g->data_offset : 0;
    int rc = 0;
    char a[200], b[200];
    for (size_t i = 1; i < n && !rc; i++)
        if (strcmp(g->tensor_by_name[i - 1]->name, g->tensor_by_name[i]->name) == 0)
            rc = error_set(err, "%s: tensor name '%s' appears twice", g->label,
                           show(a, sizeof a, g->tensor_by_name[i]->name, strlen(g->tensor_by_name[i]->name)));
    for (size_t i = 0; i < n && !rc; i++) {
        GgufTensor *t = by_off[i];
        show(a, sizeof a, t->name, strlen(t->name));
        if (t->offset % g->alignment)
            rc = error_set(err, "%s: tensor '%s' starts at offset %llu of the data section, not a multiple of the "
                           "alignment %u", g->label, a, (unsigned long long)t->offset, g->alignment);
        else if (t->offset > data_size || t->nbytes > data_size - t->offset)
            rc = error_set(err, "%s: tensor '%s' (%llu bytes at offset %llu of the data section) ends past the end "
                           "of the file (the data section holds %llu bytes)", g->label, a,
                           (unsigned long long)t->nbytes, (unsigned long long)t->offset,
                           (unsigned long long)data_size);
        else if (i > 0 && by_off[i - 1]->offset + by_off[i - 1]->nbytes > t->offset) {
            const GgufTensor *p = by_off[i - 1];
            rc = error_set(err, "%s: tensors '%s' and '%s' overlap (bytes %llu..%llu and %llu..%llu of the data "
                           "section)", g->label, show(b, sizeof b, p->name, strlen(p->name)), a,
                           (unsigned long long)p->offset, (unsigned long long)(p->offset + p->nbytes),
                           (unsigned long long)t->offset, (unsigned long long)(t->offset + t->nbytes));
        } else
            t->data = g->bytes + g->data_offset + t->offset;
    }
    free(by_off);
    return rc;
}

/* Minimum bytes of one metadata entry (8-byte length, a 1-byte key, type,
 * a 1-byte value) and of one tensor info (length, 1-byte name, n_dims, one
 * dimension, type, offset): counts beyond what the file could hold are
 * refused before anything is allocated for them. */
#define MIN_KV_BYTES 14
#define MIN_TENSOR_INFO_BYTES 33

static int parse_header(Gguf *g, Cur *c, uint64_t *n_tensors, uint64_t *n_kv, Error *err) {
    if (c->size < 4 || memcmp(c->p, "GGUF", 4) != 0) {
        char b[40];
        return error_set(err, "%s: not a GGUF file (it starts with '%s', not 'GGUF')", g->label,
                         show(b, sizeof b, (const char *)c->p, c->size < 4 ? c->size : 4));
    }
    c->pos = 4;
    if (get_u32(c, &g->version, "the version")) return -1;
    uint32_t v = g->version, swapped = (v >> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24);
    if (swapped == 2 || swapped == 3)
        return error_set(err, "%s: a big-endian GGUF file (version %u byte-swapped); vmed reads little-endian files "
                         "only", g->label, swapped);
    if (v != 2 && v != 3)
        return error_set(err, "%s: GGUF version %u is not supported (vmed reads versions 2 and 3)", g->label, v);
    if (get_u64(c, n_tensors, "the tensor count") || get_u64(c, n_kv, "the metadata count")) return -1;
    size_t left = c->size - c->pos;
    if (*n_kv > left / MIN_KV_BYTES)
        return error_set(err, "%s: the header says %llu metadata entries, more than the %zu bytes after it could hold",
                         g->label, (unsigned long long)*n_kv, left);
    if (*n_tensors > left / MIN_TENSOR_INFO_BYTES)
        return error_set(err, "%s: the header says %llu tensors, more than the %zu bytes after it could hold",
                         g->label, (unsigned long long)*n_tensors, left);
    return 0;
}

static int parse_all(Gguf *g, Error *err) {
    Cur c = {g->bytes, g->size, 0, g->label, err};
    uint64_t n_tensors, n_kv;
    if (parse_header(g, &c, &n_tensors, &n_kv, err)) return -1;
    g->kvs = calloc((size_t)(n_kv ? n_kv : 1), sizeof *g->kvs);
    g->tensors = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *g->tensors);
    if (!g->kvs || !g->tensors) return error_set(err, "%s: out of memory", g->label);
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv = (int64_t)i + 1; /* so gguf_close frees what this entry allocated */
        if (parse_kv(&c, &g->kvs[i], (int64_t)i)) return -1;
    }
    if (index_kvs(g, err) || set_alignment(g, err)) return -1;
    for (uint64_t i = 0; i < n_tensors; i++) {
        g->n_tensors = (int64_t)i + 1;
        if (parse_tensor_info(&c, &g->tensors[i], (int64_t)i)) return -1;
    }
    g->data_offset = align_up(c.pos, g->alignment);
    return check_tensors(g, err);
}

int gguf_parse(Gguf **out, const uint8_t *data, size_t size, const char *label, Error *err) {
    *out = NULL;
    Gguf *g = calloc(1, sizeof *g);
    if (!g) return error_set(err, "%s: out of memory", label ? label : "gguf");
    snprintf(g->label, sizeof g->label, "%s", label ? label : "gguf");
    static const uint8_t empty[1];
    g->bytes = data ? data : empty;
    g->size = data ? size : 0;
    if (parse_all(g, err)) {
        gguf_close(g);
        return -1;
    }
    *out = g;
    return 0;
}

int gguf_open(Gguf **out, const char *path, Error *err) {
    *out = NULL;
    MappedFile m;
    if (file_map(&m, path, err)) return -1;
    if (gguf_parse(out, m.data, m.size, path, err)) {
        file_unmap(&m);
        return -1;
    }
    (*out)->file = m;
    return 0;
}

void gguf_close(Gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kvs[i].key);
        free(g->kvs[i].str_offsets);
    }
    for (int64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kvs);
    free(g->tensors);
    free(g->kv_by_key);
    free(g->tensor_by_name);
    file_unmap(&g->file);
    free(g);
}

int gguf_path_is_gguf(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    size_t n = strlen(path);
    if (n >= 5 && strcmp(path + n - 5, ".gguf") == 0) return 1;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[4];
    int is = fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    fclose(f);
    return is;
}

/* --------------------------------------------------------------- lookups */

const GgufKV *gguf_find_kv(const Gguf *g, const char *key) {
    int64_t lo = 0, hi = g->n_kv;
    if (!g->kv_by_key) return NULL;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->kv_by_key[mid]->key, key);
        if (c == 0) return g->kv_by_key[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const GgufTensor *gguf_find_tensor(const Gguf *g, const char *name) {
    int64_t lo = 0, hi = g->n_tensors;
    if (!g->tensor_by_name) return NULL;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->tensor_by_name[mid]->name, name);
        if (c == 0) return g->tensor_by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int is_int_type(uint32_t t) {
    return t == GGUF_U8 || t == GGUF_I8 || t == GGUF_U16 || t == GGUF_I16 || t == GGUF_U32 || t == GGUF_I32 ||
           t == GGUF_U64 || t == GGUF_I64;
}

/* Value i of a fixed-size element type, as the widest type of its kind. */
static int64_t int_at(uint32_t type, const uint8_t *p) {
    switch (type) {
    case GGUF_U8: case GGUF_BOOL: return p[0];
    case GGUF_I8: return (int8_t)p[0];
    case GGUF_U16: return (uint16_t)(p[0] | p[1] << 8);
    case GGUF_I16: return (int16_t)(uint16_t)(p[0] | p[1] << 8);
    case GGUF_U32: return rd_u32(p);
    case GGUF_I32: return (int32_t)rd_u32(p);
    default: return (int64_t)rd_u64(p); /* U64 (callers check the range) and I64 */
    }
}

static double float_at(uint32_t type, const uint8_t *p) {
    if (type == GGUF_F32) {
        uint32_t bits = rd_u32(p);
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    uint64_t bits = rd_u64(p);
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

static int wrong_type(const Gguf *g, const GgufKV *kv, const char *want, Error *err) {
    char b[200];
    const char *arr = kv->type == GGUF_ARRAY ? " array" : "";
    return error_set(err, "%s: metadata '%s' is a %s%s; %s was expected", g->label,
                     show(b, sizeof b, kv->key, strlen(kv->key)), gguf_type_name(kv->elem_type), arr, want);
}

int gguf_get_int(const Gguf *g, const char *key, int64_t *out, Error *err) {
    const GgufKV *kv = gguf_find_kv(g, key);
    if (!kv) return 1;
    if (kv->type == GGUF_ARRAY || !is_int_type(kv->type)) return wrong_type(g, kv, "an integer", err);
    if (kv->type == GGUF_U64 && rd_u64(kv->data) > (uint64_t)INT64_MAX)
        return error_set(err, "%s: metadata '%s' is %llu, too large", g->label, key,
                         (unsigned long long)rd_u64(kv->data));
    *out = int_at(kv->type, kv->data);
    return 0;
}

int gguf_get_float(const Gguf *g, const char *key, double *out, Error *err) {
    const GgufKV *kv = gguf_find_kv(g, key);
    if (!kv) return 1;
    if (kv->type != GGUF_F32 && kv->type != GGUF_F64) return wrong_type(g, kv, "a float", err);
    *out = float_at(kv->type, kv->data);
    return 0;
}

int gguf_get_bool(const Gguf *g, const char *key, int *out, Error *err) {
    const GgufKV *kv = gguf_find_kv(g, key);
    if (!kv) return 1;
    if (kv->type != GGUF_BOOL) return wrong_type(g, kv, "a bool", err);
    *out = kv->data[0] != 0;
    return 0;
}

int gguf_get_string(const Gguf *g, const char *key, const char **s, uint64_t *len, Error *err) {
    const GgufKV *kv = gguf_find_kv(g, key);
    if (!kv) return 1;
    if (kv->type != GGUF_STRING) return wrong_type(g, kv, "a string", err);
    *len = rd_u64(kv->data);
    *s = (const char *)kv->data + 8;
    return 0;
}

int gguf_get_array(const Gguf *g, const char *key, uint32_t elem_type, const GgufKV **kv_out, uint64_t *count,
                   Error *err) {
    const GgufKV *kv = gguf_find_kv(g, key);
    if (!kv) return 1;
    if (kv->type != GGUF_ARRAY || kv->elem_type != elem_type) {
        char want[64];
        snprintf(want, sizeof want, "an array of %s", gguf_type_name(elem_type));
        return wrong_type(g, kv, want, err);
    }
    *kv_out = kv;
    *count = kv->count;
    return 0;
}

int64_t gguf_array_int(const GgufKV *kv, uint64_t i) {
    return int_at(kv->elem_type, kv->data + i * value_size(kv->elem_type));
}

double gguf_array_float(const GgufKV *kv, uint64_t i) {
    return float_at(kv->elem_type, kv->data + i * value_size(kv->elem_type));
}

const char *gguf_array_string(const GgufKV *kv, uint64_t i, uint64_t *len) {
    const uint8_t *p = kv->data + kv->str_offsets[i];
    *len = rd_u64(p);
    return (const char *)p + 8;
}

double gguf_kv_number(const GgufKV *kv) {
    if (kv->type == GGUF_F32 || kv->type == GGUF_F64) return float_at(kv->type, kv->data);
    if (kv->type == GGUF_U64) return (double)rd_u64(kv->data);
    if (is_int_type(kv->type) || kv->type == GGUF_BOOL) return (double)int_at(kv->type, kv->data);
    return 0;
}

int gguf_tensor_view(const Gguf *g, const GgufTensor *t, Tensor *out, Error *err) {
    DType dt;
    if (ggml_type_to_dtype(t->type, &dt))
        return error_set(err, "%s: tensor '%s' is %s, which has no plain dtype", g->label, t->name,
                         ggml_type_name(t->type));
    int64_t shape[GGUF_MAX_DIMS];
    for (int d = 0; d < t->n_dims; d++) shape[d] = t->ne[t->n_dims - 1 - d];
    *out = tensor_view(dt, (void *)t->data, t->n_dims, shape);
    return 0;
}

const char *gguf_dims_str(const GgufTensor *t, char *buf, size_t cap) {
    size_t o = 0;
    if (cap) buf[0] = 0;
    for (int d = 0; d < t->n_dims && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, d ? "x%lld" : "%lld", (long long)t->ne[d]);
    return buf;
}

/* ----------------------------------------------------------------- writer */

/* The metadata and header are built in a Bytes buffer; these return -1
 * once it has run out of memory, so writes chain with ||. */
static int buf_put(Bytes *b, const void *p, size_t n) {
    bytes_put(b, p, n);
    return b->oom ? -1 : 0;
}

static int buf_u32(Bytes *b, uint32_t v) {
    bytes_put_le(b, v, 4);
    return b->oom ? -1 : 0;
}

static int buf_u64(Bytes *b, uint64_t v) {
    bytes_put_le(b, v, 8);
    return b->oom ? -1 : 0;
}

static int buf_str(Bytes *b, const char *s, uint64_t n) { return buf_u64(b, n) || buf_put(b, s, (size_t)n); }

typedef struct {
    char name[GGUF_MAX_NAME + 1];
    uint32_t type;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
} WTensor;

struct GgufWriter {
    AtomicFile f;
    uint32_t alignment;
    Bytes kv;        /* the metadata, serialised as it is added */
    uint64_t n_kv;
    char **keys;     /* for the duplicate check */
    WTensor *tensors;
    int64_t n_tensors, cap_tensors;
    int started;     /* the header is out */
    int64_t cur;     /* tensor being written */
    uint64_t cur_done;
    uint64_t pos;    /* bytes into the data section */
};

int gguf_writer_open(GgufWriter **out, const char *path, Error *err) {
    *out = NULL;
    GgufWriter *w = calloc(1, sizeof *w);
    if (!w) return error_set(err, "%s: out of memory", path);
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (file_begin(&w->f, path, err)) {
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void gguf_writer_abort(GgufWriter *w) {
    if (!w) return;
    file_abort(&w->f);
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    bytes_free(&w->kv);
    free(w->tensors);
    free(w);
}

/* The key and type of a new entry; the caller appends the value. */
static int begin_kv(GgufWriter *w, const char *key, uint32_t type, Error *err) {
    size_t n = strlen(key);
    if (w->started) return error_set(err, "%s: metadata '%s' comes after the tensor data began", w->f.path, key);
    if (n == 0 || n > GGUF_MAX_KEY)
        return error_set(err, "%s: metadata key '%s' is %zu bytes; keys are 1 to %d bytes", w->f.path, key, n,
                         GGUF_MAX_KEY);
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0) return error_set(err, "%s: metadata key '%s' is added twice", w->f.path, key);
    char **keys = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *keys);
    char *copy = keys ? strdup(key) : NULL;
    if (keys) w->keys = keys;
    if (!copy || buf_str(&w->kv, key, n) || buf_u32(&w->kv, type)) {
        free(copy);
        return error_set(err, "%s: out of memory", w->f.path);
    }
    w->keys[w->n_kv++] = copy;
    return 0;
}

static int add_scalar(GgufWriter *w, const char *key, uint32_t type, const void *v, Error *err) {
    if (begin_kv(w, key, type, err)) return -1;
    if (buf_put(&w->kv, v, value_size(type))) return error_set(err, "%s: out of memory", w->f.path);
    return 0;
}

int gguf_writer_add_u8(GgufWriter *w, const char *key, uint8_t v, Error *err) { return add_scalar(w, key, GGUF_U8, &v, err); }
int gguf_writer_add_i8(GgufWriter *w, const char *key, int8_t v, Error *err) { return add_scalar(w, key, GGUF_I8, &v, err); }
int gguf_writer_add_u16(GgufWriter *w, const char *key, uint16_t v, Error *err) { return add_scalar(w, key, GGUF_U16, &v, err); }
int gguf_writer_add_i16(GgufWriter *w, const char *key, int16_t v, Error *err) { return add_scalar(w, key, GGUF_I16, &v, err); }
int gguf_writer_add_i32(GgufWriter *w, const char *key, int32_t v, Error *err) { return add_scalar(w, key, GGUF_I32, &v, err); }
int gguf_writer_add_u64(GgufWriter *w, const char *key, uint64_t v, Error *err) { return add_scalar(w, key, GGUF_U64, &v, err); }
int gguf_writer_add_i64(GgufWriter *w, const char *key, int64_t v, Error *err) { return add_scalar(w, key, GGUF_I64, &v, err); }
int gguf_writer_add_f32(GgufWriter *w, const char *key, float v, Error *err) { return add_scalar(w, key, GGUF_F32, &v, err); }
int gguf_writer_add_f64(GgufWriter *w, const char *key, double v, Error *err) { return add_scalar(w, key, GGUF_F64, &v, err); }

int gguf_writer_add_u32(GgufWriter *w, const char *key, uint32_t v, Error *err) {
    if (strcmp(key, "general.alignment") == 0) {
        if (!is_pow2(v)) return error_set(err, "%s: general.alignment %u is not a power of two", w->f.path, v);
        if (add_scalar(w, key, GGUF_U32, &v, err)) return -1;
        w->alignment = v;
        return 0;
    }
    return add_scalar(w, key, GGUF_U32, &v, err);
}

int gguf_writer_add_bool(GgufWriter *w, const char *key, int v, Error *err) {
    uint8_t b = v != 0;
    return add_scalar(w, key, GGUF_BOOL, &b, err);
}

int gguf_writer_add_string(GgufWriter *w, const char *key, const char *s, Error *err) {
    if (begin_kv(w, key, GGUF_STRING, err)) return -1;
    if (buf_str(&w->kv, s, strlen(s))) return error_set(err, "%s: out of memory", w->f.path);
    return 0;
}

int gguf_writer_add_array(GgufWriter *w, const char *key, uint32_t elem_type, const void *values, uint64_t n,
                          Error *err) {
    unsigned es = value_size(elem_type);
    if (!es) return error_set(err, "%s: metadata '%s': arrays of %s are not written by this call", w->f.path, key,
                              gguf_type_name(elem_type));
    if (n > SIZE_MAX / es) return error_set(err, "%s: metadata '%s' is too large", w->f.path, key);
    if (begin_kv(w, key, GGUF_ARRAY, err)) return -1;
    if (buf_u32(&w->kv, elem_type) || buf_u64(&w->kv, n) || buf_put(&w->kv, values, (size_t)n * es))
        return error_set(err, "%s: out of memory", w->f.path);
    return 0;
}

int gguf_writer_add_string_array(GgufWriter *w, const char *key, const char *const *strs, const size_t *lens,
                                 uint64_t n, Error *err) {
    if (begin_kv(w, key, GGUF_ARRAY, err)) return -1;
    if (buf_u32(&w->kv, GGUF_STRING) || buf_u64(&w->kv, n)) return error_set(err, "%s: out of memory", w->f.path);
    for (uint64_t i = 0; i < n; i++)
        if (buf_str(&w->kv, strs[i], lens ? lens[i] : strlen(strs[i])))
            return error_set(err, "%s: out of memory", w->f.path);
    return 0;
}

int gguf_writer_add_tensor(GgufWriter *w, const char *name, uint32_t type, int n_dims, const int64_t *ne,
                           Error *err) {
    const char *path = w->f.path;
    const GgmlTypeInfo *ti = ggml_type_info(type);
    size_t len = strlen(name);
    if (w->started) return error_set(err, "%s: tensor '%s' is declared after the tensor data began", path, name);
    if (len == 0 || len > GGUF_MAX_NAME)
        return error_set(err, "%s: tensor name '%s' is %zu bytes; GGUF allows 1 to %d", path, name, len, GGUF_MAX_NAME);
    if (!ti) return error_set(err, "%s: tensor '%s' has type id %u, which vmed does not know", path, name, type);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return error_set(err, "%s: tensor '%s' has %d dimensions; GGUF allows 1 to %d", path, name, n_dims,
                         GGUF_MAX_DIMS);
    uint64_t numel = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 1 || (uint64_t)ne[d] > (uint64_t)INT64_MAX / numel)
            return error_set(err, "%s: tensor '%s' has a bad size %lld in dimension %d", path, name, (long long)ne[d], d);
        numel *= (uint64_t)ne[d];
    }
    if (ne[0] % ti->block_elems)
        return error_set(err, "%s: tensor '%s' is %s with rows of %lld values, not a multiple of its block size %d",
                         path, name, ti->name, (long long)ne[0], ti->block_elems);
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return error_set(err, "%s: tensor '%s' is added twice", path, name);
    if (w->n_tensors == w->cap_tensors) {
        int64_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        WTensor *t = realloc(w->tensors, (size_t)cap * sizeof *t);
        if (!t) return error_set(err, "%s: out of memory", path);
        w->tensors = t;
        w->cap_tensors = cap;
    }
    WTensor *t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, len);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) t->ne[d] = ne[d];
    t->nbytes = numel / (uint64_t)ti->block_elems * (uint64_t)ti->block_bytes;
    return 0;
}

static int write_zeros(GgufWriter *w, uint64_t n, Error *err) {
    static const uint8_t zeros[256];
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (file_write(&w->f, zeros, k, err)) return -1;
        n -= k;
    }
    return 0;
}

/* Header, metadata and tensor infos, then padding to the data section. */
static int write_header(GgufWriter *w, Error *err) {
    Bytes h = {0};
    uint64_t off = 0;
    int oom = buf_put(&h, "GGUF", 4) || buf_u32(&h, 3) || buf_u64(&h, (uint64_t)w->n_tensors) ||
              buf_u64(&h, w->n_kv) || buf_put(&h, w->kv.p, w->kv.len);
    for (int64_t i = 0; i < w->n_tensors && !oom; i++) {
        WTensor *t = &w->tensors[i];
        t->offset = off;
        off = align_up(off + t->nbytes, w->alignment);
        oom = buf_str(&h, t->name, strlen(t->name)) || buf_u32(&h, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims && !oom; d++) oom = buf_u64(&h, (uint64_t)t->ne[d]);
        oom = oom || buf_u32(&h, t->type) || buf_u64(&h, t->offset);
    }
    if (oom) {
        bytes_free(&h);
        return error_set(err, "%s: out of memory", w->f.path);
    }
    int rc = file_write(&w->f, h.p, h.len, err) || write_zeros(w, align_up(h.len, w->alignment) - h.len, err);
    bytes_free(&h);
    w->started = 1;
    return rc ? -1 : 0;
}

/* Skips finished tensors, padding each to the alignment. */
static int next_tensor(GgufWriter *w, Error *err) {
    while (w->cur < w->n_tensors && w->cur_done == w->tensors[w->cur].nbytes) {
        uint64_t end = w->tensors[w->cur].offset + w->tensors[w->cur].nbytes;
        if (write_zeros(w, align_up(end, w->alignment) - end, err)) return -1;
        w->pos = align_up(end, w->alignment);
        w->cur++;
        w->cur_done = 0;
    }
    return 0;
}

int gguf_writer_write(GgufWriter *w, const void *data, size_t nbytes, Error *err) {
    if (!w->started && write_header(w, err)) return -1;
    const uint8_t *p = data;
    while (nbytes > 0) {
        if (next_tensor(w, err)) return -1;
        if (w->cur >= w->n_tensors)
            return error_set(err, "%s: %zu bytes written past the last tensor", w->f.path, nbytes);
        uint64_t room = w->tensors[w->cur].nbytes - w->cur_done;
        size_t k = nbytes < room ? nbytes : (size_t)room;
        if (file_write(&w->f, p, k, err)) return -1;
        w->cur_done += k;
        p += k;
        nbytes -= k;
    }
    return next_tensor(w, err);
}

int gguf_writer_close(GgufWriter *w, Error *err) {
    int rc = 0;
    if (!w->started) rc = write_header(w, err);
    if (!rc) rc = next_tensor(w, err);
    if (!rc && w->cur < w->n_tensors)
        rc = error_set(err, "%s: tensor '%s' got %llu of its %llu bytes", w->f.path, w->tensors[w->cur].name,
                       (unsigned long long)w->cur_done, (unsigned long long)w->tensors[w->cur].nbytes);
    if (!rc) rc = file_commit(&w->f, err);
    if (rc) {
        gguf_writer_abort(w);
        return -1;
    }
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    bytes_free(&w->kv);
    free(w->tensors);
    free(w);
    return 0;
}
