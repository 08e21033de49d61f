#include "formats/safetensors.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/bytes.h"
#include "formats/json_util.h"
#include "formats/torch_bin.h"

#define ST_SINGLE_NAME "model.safetensors"
#define ST_INDEX_NAME "model.safetensors.index.json"
/* LLaMA-65B's index is ~60 KB; a few MB covers any real model. */
#define ST_MAX_INDEX_BYTES (64u << 20)
/* Offsets and sizes are JSON numbers, exact in a double up to 2^53. */
#define ST_MAX_OFFSET 9007199254740992ull

/* ---- small helpers ---- */

static uint64_t read_u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Index of the first byte that does not start a valid UTF-8 sequence
 * (overlong forms, surrogates and code points past U+10FFFF count as
 * invalid), or n when all n bytes are valid. */
static size_t utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (len > n - i) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return n;
}

static int utf8_valid(const char *s) {
    size_t n = strlen(s);
    return utf8_check((const uint8_t *)s, n) == n;
}

/* "[32000, 64]" (or "[]" for a scalar), for messages. */
static const char *shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}

/* Bytes of a tensor, or -1 when numel x dtype size would exceed what an
 * offset can hold. Any 0 dimension makes it empty, however big the others
 * are, so zeros are looked for before multiplying. */
static int tensor_bytes(DType dt, int ndim, const int64_t *shape, uint64_t *out) {
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) {
            *out = 0;
            return 0;
        }
    uint64_t n = dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (n > ST_MAX_OFFSET / d) return -1;
        n *= d;
    }
    *out = n;
    return 0;
}

int st_dtype_from_name(const char *s, DType *out) {
    for (int i = 0; i < DT_COUNT; i++) {
        if (strcmp(s, dtype_name((DType)i)) == 0) {
            *out = (DType)i;
            return 0;
        }
    }
    return -1;
}

/* ---- reading: one file ---- */

static int parse_metadata(SafeTensors *st, const cJSON *meta, const char *label, Error *err) {
    if (!cJSON_IsObject(meta))
        return error_set(err, "%s: __metadata__ is %s, expected an object of strings", label, json_type_name(meta));
    int n = cJSON_GetArraySize(meta);
    if (n > INT_MAX - st->n_meta) return error_set(err, "%s: too many __metadata__ entries", label);
    size_t cap = (size_t)st->n_meta + (size_t)n;
    if (cap == 0) return 0;
    char **keys = realloc(st->meta_keys, cap * sizeof *keys);
    if (keys) st->meta_keys = keys;
    char **values = realloc(st->meta_values, cap * sizeof *values);
    if (values) st->meta_values = values;
    if (!keys || !values) return error_set(err, "%s: out of memory reading __metadata__", label);
    for (const cJSON *e = meta->child; e; e = e->next) {
        const char *key = e->string ? e->string : "";
        if (!cJSON_IsString(e) || !e->valuestring)
            return error_set(err, "%s: __metadata__ value for '%s' is %s, expected a string", label, key,
                             json_type_name(e));
        char *k = strdup(key);
        char *v = strdup(e->valuestring);
        if (!k || !v) {
            free(k);
            free(v);
            return error_set(err, "%s: out of memory reading __metadata__", label);
        }
        st->meta_keys[st->n_meta] = k;
        st->meta_values[st->n_meta] = v;
        st->n_meta++;
    }
    return 0;
}

static int parse_dtype(const cJSON *entry, const char *label, const char *name, DType *out, Error *err) {
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (!dt) return error_set(err, "%s: tensor '%s' has no dtype", label, name);
    if (!cJSON_IsString(dt) || !dt->valuestring)
        return error_set(err, "%s: tensor '%s' dtype is %s, expected a string", label, name, json_type_name(dt));
    if (st_dtype_from_name(dt->valuestring, out) != 0)
        return error_set(err, "%s: tensor '%s' has unsupported dtype '%s' (supported: F32 F16 BF16 F64 I64 I32 "
                         "I16 I8 U8 BOOL)", label, name, dt->valuestring);
    return 0;
}

static int parse_shape(const cJSON *entry, const char *label, const char *name, StTensor *t, Error *err) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    if (!shape) return error_set(err, "%s: tensor '%s' has no shape", label, name);
    if (!cJSON_IsArray(shape))
        return error_set(err, "%s: tensor '%s' shape is %s, expected an array", label, name, json_type_name(shape));
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > TENSOR_MAX_DIMS)
        return error_set(err, "%s: tensor '%s' has %d dimensions, at most %d are supported", label, name, ndim,
                         TENSOR_MAX_DIMS);
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++) {
        uint64_t v;
        if (!cJSON_IsNumber(d))
            return error_set(err, "%s: tensor '%s' shape[%d] is %s, expected a non-negative integer", label, name,
                             i, json_type_name(d));
        if (!json_as_u53(d, &v))
            return error_set(err, "%s: tensor '%s' shape[%d] is %g, expected a non-negative integer", label, name,
                             i, d->valuedouble);
        t->shape[i] = (int64_t)v;
    }
    t->ndim = ndim;
    return 0;
}

static int parse_offsets(const cJSON *entry, const char *label, const char *name, uint64_t *begin,
                         uint64_t *end, Error *err) {
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!offs) return error_set(err, "%s: tensor '%s' has no data_offsets", label, name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return error_set(err, "%s: tensor '%s' data_offsets is %s, expected an array [begin, end]", label, name,
                         cJSON_IsArray(offs) ? "an array not of length 2" : json_type_name(offs));
    const cJSON *b = offs->child, *e = offs->child->next;
    if (!json_as_u53(b, begin) || !json_as_u53(e, end))
        return error_set(err, "%s: tensor '%s' data_offsets are not two non-negative integers", label, name);
    return 0;
}

/* Fills t (all but name and file) from one header entry, checking it
 * against the data section [data, data + data_size). */
static int parse_entry(const cJSON *entry, const char *label, const uint8_t *data, uint64_t data_size,
                       StTensor *t, Error *err) {
    const char *name = entry->string ? entry->string : "";
    memset(t, 0, sizeof *t);
    if (!cJSON_IsObject(entry))
        return error_set(err, "%s: tensor '%s' is %s, expected an object with dtype, shape and data_offsets",
                         label, name, json_type_name(entry));
    uint64_t begin, end, need;
    if (parse_dtype(entry, label, name, &t->dtype, err) != 0) return -1;
    if (parse_shape(entry, label, name, t, err) != 0) return -1;
    if (parse_offsets(entry, label, name, &begin, &end, err) != 0) return -1;
    char sh[160];
    if (tensor_bytes(t->dtype, t->ndim, t->shape, &need) != 0)
        return error_set(err, "%s: tensor '%s' shape %s of %s is too large (over 2^53 bytes)", label, name,
                         shape_str(sh, sizeof sh, t->ndim, t->shape), dtype_name(t->dtype));
    if (begin > end)
        return error_set(err, "%s: tensor '%s' data_offsets [%llu, %llu) begin after end", label, name,
                         (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return error_set(err, "%s: tensor '%s' data [%llu, %llu) runs past the end of the data section (%llu bytes)",
                         label, name, (unsigned long long)begin, (unsigned long long)end,
                         (unsigned long long)data_size);
    if (need != end - begin)
        return error_set(err, "%s: tensor '%s' shape %s of %s needs %llu bytes but data_offsets [%llu, %llu) "
                         "hold %llu", label, name, shape_str(sh, sizeof sh, t->ndim, t->shape),
                         dtype_name(t->dtype), (unsigned long long)need, (unsigned long long)begin,
                         (unsigned long long)end, (unsigned long long)(end - begin));
    t->data = data + begin;
    t->nbytes = (size_t)need;
    t->offset = begin;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a;
    const StTensor *y = *(const StTensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

/* The byte ranges must tile [0, data_size) exactly. Sorted by begin (empty
 * tensors first at equal begins), each must start where the last ended:
 * earlier is an overlap, later a hole. */
static int check_layout(const StTensor *ts, int n, const char *label, uint64_t data_size, Error *err) {
    const StTensor **order = NULL;
    if (n > 0) {
        order = malloc((size_t)n * sizeof *order);
        if (!order) return error_set(err, "%s: out of memory checking %d tensors", label, n);
        for (int i = 0; i < n; i++) order[i] = &ts[i];
        qsort(order, (size_t)n, sizeof *order, cmp_by_offset);
    }
    uint64_t pos = 0;
    const StTensor *prev = NULL;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const StTensor *t = order[i];
        unsigned long long b = t->offset, e = t->offset + t->nbytes;
        if (t->offset < pos)
            rc = error_set(err, "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap", label, prev->name,
                           (unsigned long long)prev->offset, (unsigned long long)pos, t->name, b, e);
        else if (t->offset > pos)
            rc = error_set(err, "%s: %llu unused bytes before tensor '%s' [%llu, %llu) (the data section must be "
                           "fully indexed, without holes)", label, (unsigned long long)(t->offset - pos),
                           t->name, b, e);
        pos = e;
        prev = t;
    }
    if (rc == 0 && pos != data_size)
        rc = error_set(err, "%s: data section is %llu bytes but the tensors end at %llu (%llu unused bytes at the "
                       "end)", label, (unsigned long long)data_size, (unsigned long long)pos,
                       (unsigned long long)(data_size - pos));
    free(order);
    return rc;
}

static int parse_header(SafeTensors *st, const cJSON *root, const char *label, const uint8_t *data,
                        uint64_t data_size, int file, Error *err) {
    int count = cJSON_GetArraySize(root);
    if (count > INT_MAX - st->n_tensors) return error_set(err, "%s: too many tensors", label);
    if (count > 0) {
        StTensor *ts = realloc(st->tensors, ((size_t)st->n_tensors + (size_t)count) * sizeof *ts);
        if (!ts) return error_set(err, "%s: out of memory for %d tensors", label, count);
        st->tensors = ts;
    }
    int first = st->n_tensors;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (e->string && strcmp(e->string, "__metadata__") == 0) {
            if (parse_metadata(st, e, label, err) != 0) return -1;
            continue;
        }
        StTensor t;
        if (parse_entry(e, label, data, data_size, &t, err) != 0) return -1;
        t.name = strdup(e->string ? e->string : "");
        if (!t.name) return error_set(err, "%s: out of memory", label);
        t.file = file;
        st->tensors[st->n_tensors++] = t;
    }
    int n = st->n_tensors - first;
    return check_layout(n > 0 ? st->tensors + first : NULL, n, label, data_size, err);
}

/* Parses one whole file image and appends its tensors (marked as coming
 * from files[file]) and metadata to st. */
static int parse_file(SafeTensors *st, const uint8_t *data, size_t size, const char *label, int file, Error *err) {
    if (size < 8)
        return error_set(err, "%s: file is %zu bytes, too short for a safetensors header (8-byte length + JSON)",
                         label, size);
    uint64_t n = read_u64le(data);
    if (n > ST_MAX_HEADER)
        return error_set(err, "%s: header length %llu is absurd (over the %u-byte limit); not a safetensors file?",
                         label, (unsigned long long)n, ST_MAX_HEADER);
    if (n > size - 8)
        return error_set(err, "%s: header length %llu runs past the end of the file (%zu bytes)", label,
                         (unsigned long long)n, size);
    const char *text = (const char *)data + 8;
    size_t bad = utf8_check(data + 8, (size_t)n);
    if (bad < n) return error_set(err, "%s: header is not valid UTF-8 (byte %zu of the header)", label, bad);
    char what[1100];
    snprintf(what, sizeof what, "%s: header", label);
    cJSON *root;
    if (json_parse(&root, text, (size_t)n, what, err) != 0) return -1;
    int rc;
    if (!cJSON_IsObject(root))
        rc = error_set(err, "%s: header is %s, expected a JSON object", label, json_type_name(root));
    else
        rc = parse_header(st, root, label, data + 8 + n, size - 8 - n, file, err);
    cJSON_Delete(root);
    return rc;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

int st_finish(SafeTensors *st, const char *index, const char *what, Error *err) {
    if (st->n_tensors > 1) qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_by_name);
    for (int i = 1; i < st->n_tensors; i++) {
        const StTensor *a = &st->tensors[i - 1], *b = &st->tensors[i];
        if (strcmp(a->name, b->name) != 0) continue;
        if (a->file == b->file || !index)
            return error_set(err, "%s: tensor '%s' appears twice in the %s", st_file_path(st, a), a->name, what);
        return error_set(err, "%s: tensor '%s' is in two shards, %s and %s", index, a->name, st_file_path(st, a),
                         st_file_path(st, b));
    }
    return 0;
}

/* Maps path as files[st->n_files] and parses it. */
static int add_file(SafeTensors *st, const char *path, Error *err) {
    MappedFile *fs = realloc(st->files, ((size_t)st->n_files + 1) * sizeof *fs);
    if (!fs) return error_set(err, "%s: out of memory", path);
    st->files = fs;
    if (file_map(&st->files[st->n_files], path, err) != 0) return -1;
    int idx = st->n_files++;
    const MappedFile *f = &st->files[idx];
    return parse_file(st, f->data, f->size, path, idx, err);
}

/* ---- reading: shards ---- */

static int find_name(char **names, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

/* Shards must be plain files next to the index: no paths that leave the
 * model folder. */
static int shard_name_ok(const char *s) {
    return s[0] && strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Opens each shard the first time the weight map names it; shards[i] is
 * the shard name of files[i]. */
static int open_shards(SafeTensors *st, const cJSON *wm, const char *index, const char *dir, StShardOpener add,
                       const void *ctx, char ***shards, Error *err) {
    for (const cJSON *e = wm->child; e; e = e->next) {
        const char *name = e->string ? e->string : "";
        if (!cJSON_IsString(e) || !e->valuestring)
            return error_set(err, "%s: weight_map entry '%s' is %s, expected a shard file name", index, name,
                             json_type_name(e));
        const char *shard = e->valuestring;
        if (find_name(*shards, st->n_files, shard) >= 0) continue;
        if (!shard_name_ok(shard))
            return error_set(err, "%s: weight_map entry '%s' names shard '%s', which is not a file name in the "
                             "model folder", index, name, shard);
        char path[1024];
        if (path_join(path, sizeof path, dir, shard, err) != 0) return -1;
        char **grown = realloc(*shards, ((size_t)st->n_files + 1) * sizeof *grown);
        if (!grown) return error_set(err, "%s: out of memory", index);
        *shards = grown;
        (*shards)[st->n_files] = strdup(shard);
        if (!(*shards)[st->n_files]) return error_set(err, "%s: out of memory", index);
        int before = st->n_files;
        if (add(st, path, ctx, err) != 0) {
            /* an opener counts the file only once it is mapped */
            if (st->n_files == before) free((*shards)[before]);
            return error_prefix(err, "%s: shard '%s' named by weight_map", index, shard);
        }
    }
    return 0;
}

/* Every weight_map entry must name the shard its tensor is really in. */
static int check_weight_map(const SafeTensors *st, const cJSON *wm, const char *index, char **shards,
                            Error *err) {
    for (const cJSON *e = wm->child; e; e = e->next) {
        const char *name = e->string ? e->string : "";
        const StTensor *t = st_find(st, name);
        if (!t)
            return error_set(err, "%s: weight_map puts tensor '%s' in %s, but that shard has no such tensor",
                             index, name, e->valuestring);
        if (strcmp(shards[t->file], e->valuestring) != 0)
            return error_set(err, "%s: weight_map puts tensor '%s' in %s, but it is in %s", index, name,
                             e->valuestring, shards[t->file]);
    }
    return 0;
}

int st_open_sharded(SafeTensors *st, const char *index, StShardOpener add, const void *ctx, const char *what,
                    Error *err) {
    char dir[1024];
    const char *slash = strrchr(index, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - index), index);
    if (slash == index) snprintf(dir, sizeof dir, "/");

    cJSON *root;
    if (json_load_file(&root, index, ST_MAX_INDEX_BYTES, err) != 0) return -1;
    char **shards = NULL;
    int rc = 0;
    const cJSON *wm = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(root))
        rc = error_set(err, "%s: is %s, expected a JSON object with a weight_map", index, json_type_name(root));
    else if (!wm)
        rc = error_set(err, "%s: no weight_map", index);
    else if (!cJSON_IsObject(wm))
        rc = error_set(err, "%s: weight_map is %s, expected an object of tensor name -> shard file", index,
                       json_type_name(wm));
    else if (!wm->child)
        rc = error_set(err, "%s: weight_map is empty", index);
    if (rc == 0) rc = open_shards(st, wm, index, dir, add, ctx, &shards, err);
    if (rc == 0) rc = st_finish(st, index, what, err);
    if (rc == 0) rc = check_weight_map(st, wm, index, shards, err);
    for (int i = 0; i < st->n_files && shards; i++) free(shards[i]);
    free(shards);
    cJSON_Delete(root);
    return rc;
}

/* ---- reading: public ---- */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int add_shard(SafeTensors *st, const char *path, const void *ctx, Error *err) {
    (void)ctx;
    return add_file(st, path, err);
}

static int open_index(SafeTensors *st, const char *index, Error *err) {
    return st_open_sharded(st, index, add_shard, NULL, "header", err);
}

static int open_path(SafeTensors *st, const char *path, Error *err) {
    if (!dir_exists(path)) {
        if (ends_with(path, ".bin") || ends_with(path, ".bin.index.json")) return torch_bin_open(st, path, err);
        if (ends_with(path, ".json")) return open_index(st, path, err);
        if (add_file(st, path, err) != 0) return -1;
        return st_finish(st, NULL, "header", err);
    }
    char file[1024];
    if (path_join(file, sizeof file, path, ST_SINGLE_NAME, err) != 0) return -1;
    if (file_exists(file)) {
        if (add_file(st, file, err) != 0) return -1;
        return st_finish(st, NULL, "header", err);
    }
    if (path_join(file, sizeof file, path, ST_INDEX_NAME, err) != 0) return -1;
    if (file_exists(file)) return open_index(st, file, err);
    /* PyTorch checkpoints only when there is no safetensors: it wins. */
    if (torch_bin_in_folder(path)) return torch_bin_open(st, path, err);
    return error_set(err, "%s: no %s or %s in this folder (nor %s or %s)", path, ST_SINGLE_NAME, ST_INDEX_NAME,
                     TORCH_BIN_SINGLE_NAME, TORCH_BIN_INDEX_NAME);
}

int st_open(SafeTensors *st, const char *path, Error *err) {
    memset(st, 0, sizeof *st);
    if (open_path(st, path, err) != 0) {
        st_close(st);
        return -1;
    }
    return 0;
}

int st_parse(SafeTensors *st, const uint8_t *data, size_t size, const char *label, Error *err) {
    memset(st, 0, sizeof *st);
    st->label = strdup(label);
    if (!st->label) return error_set(err, "%s: out of memory", label);
    if (parse_file(st, data, size, label, 0, err) != 0 || st_finish(st, NULL, "header", err) != 0) {
        st_close(st);
        return -1;
    }
    return 0;
}

void st_close(SafeTensors *st) {
    for (int i = 0; i < st->n_files; i++) file_unmap(&st->files[i]);
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->files);
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->label);
    memset(st, 0, sizeof *st);
}

static int cmp_key_name(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const StTensor *)elem)->name);
}

const StTensor *st_find(const SafeTensors *st, const char *name) {
    if (st->n_tensors == 0) return NULL;
    return bsearch(name, st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_key_name);
}

Tensor st_tensor_view(const StTensor *t) {
    return tensor_view(t->dtype, (void *)t->data, t->ndim, t->shape);
}

int st_tensor_aligned(const StTensor *t) {
    size_t a = dtype_size(t->dtype);
    return a == 0 || (uintptr_t)t->data % a == 0;
}

const char *st_metadata(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

const char *st_file_path(const SafeTensors *st, const StTensor *t) {
    if (t && t->file >= 0 && t->file < st->n_files) return st->files[t->file].path;
    return st->label ? st->label : "?";
}

/* ---- writing ---- */

typedef struct {
    char *name;
    DType dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    uint64_t begin, end;
} WEntry;

struct StWriter {
    AtomicFile file;
    WEntry *entries;
    int n_entries, cap_entries;
    char **meta_keys, **meta_values;
    int n_meta;
    uint64_t total;     /* data bytes declared */
    uint64_t written;   /* data bytes written so far */
    int header_written;
    int failed;         /* a write failed: the file can only be dropped */
};

static void writer_free(StWriter *w) {
    for (int i = 0; i < w->n_entries; i++) free(w->entries[i].name);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->entries);
    free(w->meta_keys);
    free(w->meta_values);
    free(w);
}

int st_writer_open(StWriter **out, const char *path, Error *err) {
    *out = NULL;
    StWriter *w = calloc(1, sizeof *w);
    if (!w) return error_set(err, "%s: out of memory", path);
    if (file_begin(&w->file, path, err) != 0) {
        free(w);
        return -1;
    }
    if (st_writer_set_metadata(w, "format", "pt", err) != 0) {
        st_writer_abort(w);
        return -1;
    }
    *out = w;
    return 0;
}

int st_writer_add(StWriter *w, const char *name, DType dt, int ndim, const int64_t *shape, Error *err) {
    const char *path = w->file.path;
    if (w->failed) return error_set(err, "%s: cannot add tensors after a failed write", path);
    if (w->header_written)
        return error_set(err, "%s: tensor '%s' declared after data was written; declare every tensor first", path,
                         name);
    if (strcmp(name, "__metadata__") == 0) return error_set(err, "%s: '__metadata__' is not a tensor name", path);
    if (!utf8_valid(name)) return error_set(err, "%s: tensor name '%s' is not valid UTF-8", path, name);
    if ((int)dt < 0 || dt >= DT_COUNT) return error_set(err, "%s: tensor '%s' has no valid dtype", path, name);
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
        return error_set(err, "%s: tensor '%s' has %d dimensions, expected 0..%d", path, name, ndim,
                         TENSOR_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || (uint64_t)shape[i] > ST_MAX_OFFSET)
            return error_set(err, "%s: tensor '%s' shape[%d] is %lld", path, name, i, (long long)shape[i]);
    uint64_t bytes;
    if (tensor_bytes(dt, ndim, shape, &bytes) != 0 || bytes > ST_MAX_OFFSET - w->total)
        return error_set(err, "%s: tensor '%s' makes the file larger than 2^53 bytes", path, name);
    if (w->n_entries == w->cap_entries) {
        int cap = w->cap_entries ? 2 * w->cap_entries : 16;
        WEntry *grown = realloc(w->entries, (size_t)cap * sizeof *grown);
        if (!grown) return error_set(err, "%s: out of memory declaring tensor '%s'", path, name);
        w->entries = grown;
        w->cap_entries = cap;
    }
    WEntry *e = &w->entries[w->n_entries];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name) return error_set(err, "%s: out of memory declaring tensor '%s'", path, name);
    e->dtype = dt;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->begin = w->total;
    e->end = w->total + bytes;
    w->total = e->end;
    w->n_entries++;
    return 0;
}

int st_writer_set_metadata(StWriter *w, const char *key, const char *value, Error *err) {
    const char *path = w->file.path;
    if (w->header_written) return error_set(err, "%s: metadata '%s' set after data was written", path, key);
    if (!utf8_valid(key) || !utf8_valid(value))
        return error_set(err, "%s: metadata '%s' is not valid UTF-8", path, key);
    char *v = strdup(value);
    if (!v) return error_set(err, "%s: out of memory", path);
    for (int i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_values[i]);
            w->meta_values[i] = v;
            return 0;
        }
    }
    char *k = strdup(key);
    char **keys = realloc(w->meta_keys, ((size_t)w->n_meta + 1) * sizeof *keys);
    if (keys) w->meta_keys = keys;
    char **values = realloc(w->meta_values, ((size_t)w->n_meta + 1) * sizeof *values);
    if (values) w->meta_values = values;
    if (!k || !keys || !values) {
        free(k);
        free(v);
        return error_set(err, "%s: out of memory", path);
    }
    w->meta_keys[w->n_meta] = k;
    w->meta_values[w->n_meta] = v;
    w->n_meta++;
    return 0;
}

static void buf_str(Bytes *b, const char *s) { bytes_put(b, s, strlen(s)); }

static void buf_json_string(Bytes *b, const char *s) {
    bytes_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            bytes_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            bytes_put(b, esc, 6);
        } else {
            bytes_put(b, s, 1);
        }
    }
    bytes_put(b, "\"", 1);
}

static void buf_u64(Bytes *b, uint64_t v) {
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    buf_str(b, num);
}

/* The header as HF writes it: compact JSON, __metadata__ first, then the
 * tensors in data order, padded with spaces to a multiple of 8 so that the
 * data section starts 8-aligned. */
static void build_header(const StWriter *w, Bytes *b) {
    buf_str(b, "{\"__metadata__\":{");
    for (int i = 0; i < w->n_meta; i++) {
        if (i) buf_str(b, ",");
        buf_json_string(b, w->meta_keys[i]);
        buf_str(b, ":");
        buf_json_string(b, w->meta_values[i]);
    }
    buf_str(b, "}");
    for (int i = 0; i < w->n_entries; i++) {
        const WEntry *e = &w->entries[i];
        buf_str(b, ",");
        buf_json_string(b, e->name);
        buf_str(b, ":{\"dtype\":\"");
        buf_str(b, dtype_name(e->dtype));
        buf_str(b, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            if (d) buf_str(b, ",");
            buf_u64(b, (uint64_t)e->shape[d]);
        }
        buf_str(b, "],\"data_offsets\":[");
        buf_u64(b, e->begin);
        buf_str(b, ",");
        buf_u64(b, e->end);
        buf_str(b, "]}");
    }
    buf_str(b, "}");
    while (b->len % 8) bytes_put(b, " ", 1);
}

static int cmp_entry_names(const void *a, const void *b) {
    return strcmp((*(const WEntry *const *)a)->name, (*(const WEntry *const *)b)->name);
}

static int check_unique_names(const StWriter *w, Error *err) {
    if (w->n_entries < 2) return 0;
    const WEntry **order = malloc((size_t)w->n_entries * sizeof *order);
    if (!order) return error_set(err, "%s: out of memory", w->file.path);
    for (int i = 0; i < w->n_entries; i++) order[i] = &w->entries[i];
    qsort(order, (size_t)w->n_entries, sizeof *order, cmp_entry_names);
    int rc = 0;
    for (int i = 1; i < w->n_entries && rc == 0; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            rc = error_set(err, "%s: tensor '%s' declared twice", w->file.path, order[i]->name);
    free(order);
    return rc;
}

static int write_header(StWriter *w, Error *err) {
    if (check_unique_names(w, err) != 0) return -1;
    Bytes b = {0};
    build_header(w, &b);
    int rc = 0;
    if (b.oom) {
        rc = error_set(err, "%s: out of memory building the header", w->file.path);
    } else if (b.len > ST_MAX_HEADER) {
        rc = error_set(err, "%s: header would be %zu bytes, over the %u-byte limit readers accept", w->file.path,
                       b.len, ST_MAX_HEADER);
    } else {
        uint8_t len[8];
        for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)b.len >> (8 * i));
        if (file_write(&w->file, len, 8, err) != 0 || file_write(&w->file, b.p, b.len, err) != 0) rc = -1;
    }
    bytes_free(&b);
    if (rc == 0) w->header_written = 1;
    return rc;
}

int st_writer_write(StWriter *w, const void *data, size_t nbytes, Error *err) {
    if (w->failed) return error_set(err, "%s: cannot write after a failed write", w->file.path);
    if (!w->header_written && write_header(w, err) != 0) {
        w->failed = 1;
        return -1;
    }
    if (nbytes > w->total - w->written) {
        w->failed = 1;
        return error_set(err, "%s: writing %zu bytes would pass the %llu declared (%llu already written)",
                         w->file.path, nbytes, (unsigned long long)w->total, (unsigned long long)w->written);
    }
    if (file_write(&w->file, data, nbytes, err) != 0) {
        w->failed = 1;
        return -1;
    }
    w->written += nbytes;
    return 0;
}

int st_writer_close(StWriter *w, Error *err) {
    if (!w) return error_set(err, "st_writer_close: no writer");
    int rc = 0;
    if (w->failed)
        rc = error_set(err, "%s: not written because an earlier write failed", w->file.path);
    else if (!w->header_written && write_header(w, err) != 0)
        rc = -1;
    else if (w->written != w->total)
        rc = error_set(err, "%s: only %llu of the %llu declared data bytes were written", w->file.path,
                       (unsigned long long)w->written, (unsigned long long)w->total);
    if (rc == 0) rc = file_commit(&w->file, err); /* removes the temporary file itself on failure */
    else file_abort(&w->file);
    writer_free(w);
    return rc;
}

void st_writer_abort(StWriter *w) {
    if (!w) return;
    file_abort(&w->file);
    writer_free(w);
}

int st_save(const char *path, const StTensor *tensors, int n, Error *err) {
    StWriter *w;
    if (n < 0) return error_set(err, "%s: negative tensor count %d", path, n);
    if (st_writer_open(&w, path, err) != 0) return -1;
    for (int i = 0; i < n; i++) {
        const StTensor *t = &tensors[i];
        if (st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, err) != 0) goto fail;
        const WEntry *e = &w->entries[w->n_entries - 1];
        if (t->nbytes != e->end - e->begin) {
            error_set(err, "%s: tensor '%s' has %zu bytes of data but its shape needs %llu", path, t->name,
                      t->nbytes, (unsigned long long)(e->end - e->begin));
            goto fail;
        }
    }
    for (int i = 0; i < n; i++)
        if (tensors[i].nbytes && st_writer_write(w, tensors[i].data, tensors[i].nbytes, err) != 0) goto fail;
    return st_writer_close(w, err);
fail:
    st_writer_abort(w);
    return -1;
}
