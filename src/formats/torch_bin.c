#include "formats/torch_bin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "formats/pickle.h"
#include "formats/zip.h"

/* Entry names are <archive>/<name>; the archive folder name is short. */
#define TB_MAX_ENTRY_NAME 600

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- one archive ---- */

typedef struct {
    SafeTensors *st;
    ZipArchive zip;
    const char *label;
    char prefix[TB_MAX_ENTRY_NAME / 2]; /* "<archive>/" */
    int file;                           /* index into st->files */
    const TorchBinOptions *opt;
    uint8_t *checked;                   /* per zip entry: CRC already verified */
} Archive;

static const ZipEntry *find_entry(const Archive *a, const char *name) {
    char full[TB_MAX_ENTRY_NAME];
    snprintf(full, sizeof full, "%s%s", a->prefix, name);
    return zip_find(&a->zip, full);
}

/* Every entry of a torch archive sits in one folder, named by the first
 * entry (torch's reader takes it from there too). */
static int find_prefix(Archive *a, Error *err) {
    const char *first = a->zip.entries[0].name;
    const char *slash = strchr(first, '/');
    if (!slash || (size_t)(slash - first) + 2 > sizeof a->prefix)
        return error_set(err, "%s: zip entry '%s' is not inside an archive folder; not a torch.save checkpoint",
                         a->label, first);
    snprintf(a->prefix, sizeof a->prefix, "%.*s", (int)(slash - first + 1), first);
    return 0;
}

static int check_crc_once(Archive *a, const ZipEntry *e, Error *err) {
    size_t i = (size_t)(e - a->zip.entries);
    if (a->checked[i]) return 0;
    if (zip_entry_check_crc(&a->zip, e, err) != 0) return -1;
    a->checked[i] = 1;
    return 0;
}

/* The small entries: always CRC-checked. byteorder, when present, must say
 * little: storages hold native bytes of the machine that saved them. */
static int check_small_entries(Archive *a, const ZipEntry **pkl, Error *err) {
    *pkl = find_entry(a, "data.pkl");
    if (!*pkl) return error_set(err, "%s: no zip entry '%sdata.pkl'; not a torch.save checkpoint", a->label, a->prefix);
    if (check_crc_once(a, *pkl, err) != 0) return -1;
    const ZipEntry *v = find_entry(a, "version");
    if (v && check_crc_once(a, v, err) != 0) return -1;
    const ZipEntry *bo = find_entry(a, "byteorder");
    if (!bo) return 0;
    const uint8_t *text;
    if (check_crc_once(a, bo, err) != 0 || zip_entry_data(&a->zip, bo, &text, err) != 0) return -1;
    if (bo->size != 6 || memcmp(text, "little", 6) != 0)
        return error_set(err, "%s: the checkpoint was saved big-endian (byteorder '%.*s'); vmed reads little-endian "
                         "ones", a->label, bo->size < 16 ? (int)bo->size : 16, (const char *)text);
    return 0;
}

/* Points t at its bytes in the storage entry, checking the entry holds
 * exactly the elements the pickle declares for the storage. */
static int place_tensor(Archive *a, const PickleTensor *p, StTensor *t, Error *err) {
    char name[TB_MAX_ENTRY_NAME / 2];
    snprintf(name, sizeof name, "data/%s", p->storage);
    const ZipEntry *e = find_entry(a, name);
    if (!e)
        return error_set(err, "%s: tensor '%s' uses storage '%s' but the archive has no entry '%s%s'", a->label,
                         p->name, p->storage, a->prefix, name);
    const uint8_t *data;
    if (zip_entry_data(&a->zip, e, &data, err) != 0) return -1;
    uint64_t esize = dtype_size(p->dtype);
    if (p->storage_numel > UINT64_MAX / esize || p->storage_numel * esize != e->size)
        return error_set(err, "%s: storage '%s' holds %llu %s elements (%llu bytes) by data.pkl, but zip entry '%s' "
                         "is %llu bytes", a->label, p->storage, (unsigned long long)p->storage_numel,
                         dtype_name(p->dtype), (unsigned long long)(p->storage_numel * esize), e->name,
                         (unsigned long long)e->size);
    if (a->opt->verify_crc && check_crc_once(a, e, err) != 0) return -1;
    uint64_t numel = 1;
    for (int i = 0; i < p->ndim; i++) numel *= (uint64_t)p->shape[i]; /* bounded by the storage: checked */
    memset(t, 0, sizeof *t);
    t->dtype = p->dtype;
    t->ndim = p->ndim;
    memcpy(t->shape, p->shape, sizeof t->shape);
    t->nbytes = (size_t)(numel * esize);
    t->data = t->nbytes ? data + p->storage_offset * esize : data;
    t->offset = (uint64_t)((const uint8_t *)t->data - a->zip.bytes);
    t->file = a->file;
    return 0;
}

static int read_tensors(Archive *a, const uint8_t *pkl, size_t pkl_size, Error *err) {
    char label[1100];
    snprintf(label, sizeof label, "%s: data.pkl", a->label);
    PickleStateDict sd;
    if (pickle_read_state_dict(&sd, pkl, pkl_size, label, err) != 0) return -1;
    SafeTensors *st = a->st;
    int rc = 0;
    if (sd.n_tensors > 0) {
        StTensor *ts = realloc(st->tensors, ((size_t)st->n_tensors + (size_t)sd.n_tensors) * sizeof *ts);
        if (!ts) rc = error_set(err, "%s: out of memory for %d tensors", a->label, sd.n_tensors);
        else st->tensors = ts;
    }
    for (int i = 0; i < sd.n_tensors && rc == 0; i++) {
        StTensor *t = &st->tensors[st->n_tensors];
        rc = place_tensor(a, &sd.tensors[i], t, err);
        if (rc == 0) {
            t->name = sd.tensors[i].name; /* taken over */
            sd.tensors[i].name = NULL;
            st->n_tensors++;
        }
    }
    pickle_state_dict_free(&sd);
    return rc;
}

static int refuse_legacy(const uint8_t *data, size_t size, const char *label, Error *err) {
    if (size >= 2 && data[0] == 0x80 && data[1] <= 5)
        return error_set(err, "%s: a legacy torch.save file (a bare pickle, from before torch 1.6); vmed reads the "
                         "zip format: re-save it with torch >= 1.6 or convert it to safetensors", label);
    return 0;
}

static int parse_archive(SafeTensors *st, const uint8_t *data, size_t size, const char *label, int file,
                         const TorchBinOptions *opt, Error *err) {
    if (refuse_legacy(data, size, label, err) != 0) return -1;
    Archive a = {.st = st, .label = label, .file = file, .opt = opt};
    if (zip_open(&a.zip, data, size, label, err) != 0) return -1;
    const ZipEntry *pkl;
    const uint8_t *pkl_data;
    int rc = 0;
    a.checked = calloc((size_t)a.zip.n_entries, 1);
    if (!a.checked) rc = error_set(err, "%s: out of memory", label);
    if (rc == 0) rc = find_prefix(&a, err);
    if (rc == 0) rc = check_small_entries(&a, &pkl, err);
    if (rc == 0) rc = zip_entry_data(&a.zip, pkl, &pkl_data, err);
    if (rc == 0) rc = read_tensors(&a, pkl_data, (size_t)pkl->size, err);
    free(a.checked);
    zip_close(&a.zip);
    return rc;
}

/* Maps path as files[st->n_files] and reads its tensors. */
static int add_file(SafeTensors *st, const char *path, const TorchBinOptions *opt, Error *err) {
    MappedFile *fs = realloc(st->files, ((size_t)st->n_files + 1) * sizeof *fs);
    if (!fs) return error_set(err, "%s: out of memory", path);
    st->files = fs;
    if (file_map(&st->files[st->n_files], path, err) != 0) return -1;
    int idx = st->n_files++;
    return parse_archive(st, st->files[idx].data, st->files[idx].size, path, idx, opt, err);
}

static int add_shard(SafeTensors *st, const char *path, const void *ctx, Error *err) {
    return add_file(st, path, ctx, err);
}

static int open_index(SafeTensors *st, const char *index, const TorchBinOptions *opt, Error *err) {
    return st_open_sharded(st, index, add_shard, opt, "state dict", err);
}

/* ---- reading: public ---- */

int torch_bin_in_folder(const char *dir) {
    char path[1024];
    Error err;
    return (path_join(path, sizeof path, dir, TORCH_BIN_SINGLE_NAME, &err) == 0 && file_exists(path)) ||
           (path_join(path, sizeof path, dir, TORCH_BIN_INDEX_NAME, &err) == 0 && file_exists(path));
}

static int open_path(SafeTensors *st, const char *path, const TorchBinOptions *opt, Error *err) {
    char file[1024];
    if (!dir_exists(path)) {
        if (ends_with(path, ".json")) return open_index(st, path, opt, err);
        if (add_file(st, path, opt, err) != 0) return -1;
        return st_finish(st, NULL, "state dict", err);
    }
    if (path_join(file, sizeof file, path, TORCH_BIN_SINGLE_NAME, err) != 0) return -1;
    if (file_exists(file)) {
        if (add_file(st, file, opt, err) != 0) return -1;
        return st_finish(st, NULL, "state dict", err);
    }
    if (path_join(file, sizeof file, path, TORCH_BIN_INDEX_NAME, err) != 0) return -1;
    if (file_exists(file)) return open_index(st, file, opt, err);
    return error_set(err, "%s: no %s or %s in this folder", path, TORCH_BIN_SINGLE_NAME, TORCH_BIN_INDEX_NAME);
}

int torch_bin_open_opts(SafeTensors *st, const char *path, const TorchBinOptions *opt, Error *err) {
    memset(st, 0, sizeof *st);
    TorchBinOptions o = {0};
    if (opt) o = *opt;
    if (open_path(st, path, &o, err) != 0) {
        st_close(st);
        return -1;
    }
    return 0;
}

int torch_bin_open(SafeTensors *st, const char *path, Error *err) {
    const char *env = getenv("VMED_VERIFY_CRC");
    TorchBinOptions o = {.verify_crc = env && strcmp(env, "1") == 0};
    return torch_bin_open_opts(st, path, &o, err);
}

int torch_bin_parse(SafeTensors *st, const uint8_t *data, size_t size, const char *label,
                    const TorchBinOptions *opt, Error *err) {
    memset(st, 0, sizeof *st);
    TorchBinOptions o = {0};
    if (opt) o = *opt;
    st->label = strdup(label);
    if (!st->label) return error_set(err, "%s: out of memory", label);
    if (parse_archive(st, data, size, label, 0, &o, err) != 0 || st_finish(st, NULL, "state dict", err) != 0) {
        st_close(st);
        return -1;
    }
    return 0;
}

/* ---- writing ---- */

static void put_op(Bytes *b, uint8_t op) { bytes_put(b, &op, 1); }

/* The smallest integer opcode, as Python's pickler chooses. */
static void pk_int(Bytes *b, uint64_t v) {
    if (v < 0x100) put_op(b, 'K'), bytes_put_le(b, v, 1);
    else if (v < 0x10000) put_op(b, 'M'), bytes_put_le(b, v, 2);
    else if (v < 0x80000000u) put_op(b, 'J'), bytes_put_le(b, v, 4);
    else put_op(b, 0x8a), put_op(b, 8), bytes_put_le(b, v, 8);
}

static void pk_str(Bytes *b, const char *s) {
    size_t n = strlen(s);
    put_op(b, 'X');
    bytes_put_le(b, n, 4);
    bytes_put(b, s, n);
}

static void pk_global(Bytes *b, const char *mod, const char *name) {
    put_op(b, 'c');
    bytes_put(b, mod, strlen(mod));
    put_op(b, '\n');
    bytes_put(b, name, strlen(name));
    put_op(b, '\n');
}

/* One state dict entry: name, then _rebuild_tensor_v2((persistent storage),
 * 0, size, stride, False, OrderedDict()) over storage str(i). */
static void pk_tensor(Bytes *b, const StTensor *t, int i) {
    char key[16];
    snprintf(key, sizeof key, "%d", i);
    pk_str(b, t->name);
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    put_op(b, '(');
    put_op(b, '(');
    pk_str(b, "storage");
    pk_global(b, "torch", pickle_storage_name(t->dtype));
    pk_str(b, key);
    pk_str(b, "cpu");
    pk_int(b, t->nbytes / dtype_size(t->dtype));
    put_op(b, 't');
    put_op(b, 'Q');
    pk_int(b, 0);
    put_op(b, '(');
    for (int d = 0; d < t->ndim; d++) pk_int(b, (uint64_t)t->shape[d]);
    put_op(b, 't');
    int64_t stride[TENSOR_MAX_DIMS], s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) stride[d] = s, s *= t->shape[d];
    put_op(b, '(');
    for (int d = 0; d < t->ndim; d++) pk_int(b, (uint64_t)stride[d]);
    put_op(b, 't');
    put_op(b, 0x89);                      /* requires_grad False */
    put_op(b, 'h'), put_op(b, 0);         /* OrderedDict (memo 0) */
    put_op(b, ')'), put_op(b, 'R');       /* () -> backward_hooks */
    put_op(b, 't');
    put_op(b, 'R');
}

static void build_pickle(Bytes *b, const StTensor *ts, int n) {
    put_op(b, 0x80), put_op(b, 2);
    pk_global(b, "collections", "OrderedDict");
    put_op(b, 'q'), put_op(b, 0);
    put_op(b, ')'), put_op(b, 'R');
    put_op(b, '(');
    for (int i = 0; i < n; i++) pk_tensor(b, &ts[i], i);
    put_op(b, 'u');
    put_op(b, '.');
}

typedef struct {
    char name[48];
    uint64_t header, size;
    uint32_t crc;
    int zip64;
} WEntry;

typedef struct {
    AtomicFile f;
    uint64_t pos;
    WEntry *entries;
    int n;
    int force64;
} ZipWriter;

static int zw_write(ZipWriter *w, const void *p, size_t n, Error *err) {
    if (n && file_write(&w->f, p, n, err) != 0) return -1;
    w->pos += n;
    return 0;
}

/* A stored entry whose data starts 64-byte aligned (as torch aligns
 * storages), the padding held in an extra field. */
static int zw_add(ZipWriter *w, const char *name, const void *data, uint64_t size, Error *err) {
    WEntry *e = &w->entries[w->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->header = w->pos;
    e->size = size;
    e->crc = zip_crc32(0, data, (size_t)size);
    e->zip64 = w->force64 || size >= 0xffffffffu;
    size_t nlen = strlen(e->name), x64 = e->zip64 ? 20 : 0;
    size_t pad = (64 - (w->pos + 30 + nlen + x64 + 4) % 64) % 64;
    Bytes h = {0};
    bytes_put_le(&h, 0x04034b50u, 4);
    bytes_put_le(&h, e->zip64 ? 45 : 20, 2);
    bytes_put_le(&h, 0, 2);                       /* flags */
    bytes_put_le(&h, 0, 2);                       /* stored */
    bytes_put_le(&h, 0, 2), bytes_put_le(&h, 0x21, 2);  /* 1980-01-01 00:00 */
    bytes_put_le(&h, e->crc, 4);
    bytes_put_le(&h, e->zip64 ? 0xffffffffu : size, 4);
    bytes_put_le(&h, e->zip64 ? 0xffffffffu : size, 4);
    bytes_put_le(&h, nlen, 2);
    bytes_put_le(&h, x64 + 4 + pad, 2);
    bytes_put(&h, e->name, nlen);
    if (e->zip64) bytes_put_le(&h, 1, 2), bytes_put_le(&h, 16, 2), bytes_put_le(&h, size, 8), bytes_put_le(&h, size, 8);
    bytes_put_le(&h, 0x4246, 2), bytes_put_le(&h, pad, 2);
    for (size_t i = 0; i < pad; i++) put_op(&h, 'Z');
    int rc = h.oom ? error_set(err, "%s: out of memory", w->f.path) : zw_write(w, h.p, h.len, err);
    bytes_free(&h);
    if (rc == 0) rc = zw_write(w, data, (size_t)size, err);
    return rc;
}

static void central_entry(Bytes *b, const WEntry *e, int force64) {
    int big_size = force64 || e->size >= 0xffffffffu, big_off = force64 || e->header >= 0xffffffffu;
    size_t nlen = strlen(e->name), xlen = big_size || big_off ? 4 + 16 * big_size + 8 * big_off : 0;
    bytes_put_le(b, 0x02014b50u, 4);
    bytes_put_le(b, 45, 2), bytes_put_le(b, xlen ? 45 : 20, 2);
    bytes_put_le(b, 0, 2), bytes_put_le(b, 0, 2);
    bytes_put_le(b, 0, 2), bytes_put_le(b, 0x21, 2);
    bytes_put_le(b, e->crc, 4);
    bytes_put_le(b, big_size ? 0xffffffffu : e->size, 4);
    bytes_put_le(b, big_size ? 0xffffffffu : e->size, 4);
    bytes_put_le(b, nlen, 2), bytes_put_le(b, xlen, 2), bytes_put_le(b, 0, 2);
    bytes_put_le(b, 0, 2), bytes_put_le(b, 0, 2), bytes_put_le(b, 0, 4);
    bytes_put_le(b, big_off ? 0xffffffffu : e->header, 4);
    bytes_put(b, e->name, nlen);
    if (xlen) {
        bytes_put_le(b, 1, 2), bytes_put_le(b, xlen - 4, 2);
        if (big_size) bytes_put_le(b, e->size, 8), bytes_put_le(b, e->size, 8);
        if (big_off) bytes_put_le(b, e->header, 8);
    }
}

static int zw_finish(ZipWriter *w, Error *err) {
    Bytes b = {0};
    uint64_t cd_off = w->pos;
    for (int i = 0; i < w->n; i++) central_entry(&b, &w->entries[i], w->force64);
    uint64_t cd_size = b.len;
    int z64 = w->force64 || w->n >= 0xffff || cd_off >= 0xffffffffu || cd_size >= 0xffffffffu;
    if (z64) {
        uint64_t rec = cd_off + cd_size;
        bytes_put_le(&b, 0x06064b50u, 4), bytes_put_le(&b, 44, 8);
        bytes_put_le(&b, 45, 2), bytes_put_le(&b, 45, 2), bytes_put_le(&b, 0, 4), bytes_put_le(&b, 0, 4);
        bytes_put_le(&b, (uint64_t)w->n, 8), bytes_put_le(&b, (uint64_t)w->n, 8);
        bytes_put_le(&b, cd_size, 8), bytes_put_le(&b, cd_off, 8);
        bytes_put_le(&b, 0x07064b50u, 4), bytes_put_le(&b, 0, 4), bytes_put_le(&b, rec, 8), bytes_put_le(&b, 1, 4);
    }
    bytes_put_le(&b, 0x06054b50u, 4), bytes_put_le(&b, 0, 2), bytes_put_le(&b, 0, 2);
    bytes_put_le(&b, z64 ? 0xffff : (uint64_t)w->n, 2), bytes_put_le(&b, z64 ? 0xffff : (uint64_t)w->n, 2);
    bytes_put_le(&b, z64 ? 0xffffffffu : cd_size, 4), bytes_put_le(&b, z64 ? 0xffffffffu : cd_off, 4);
    bytes_put_le(&b, 0, 2);
    int rc = b.oom ? error_set(err, "%s: out of memory", w->f.path) : zw_write(w, b.p, b.len, err);
    bytes_free(&b);
    return rc;
}

static int check_inputs(const char *path, const StTensor *ts, int n, Error *err) {
    if (n < 0) return error_set(err, "%s: negative tensor count %d", path, n);
    for (int i = 0; i < n; i++) {
        const StTensor *t = &ts[i];
        uint64_t need = dtype_size(t->dtype);
        if ((int)t->dtype < 0 || t->dtype >= DT_COUNT || !pickle_storage_name(t->dtype))
            return error_set(err, "%s: tensor '%s' has a dtype torch storages cannot hold", path, t->name);
        if (t->ndim < 0 || t->ndim > TENSOR_MAX_DIMS)
            return error_set(err, "%s: tensor '%s' has %d dimensions", path, t->name, t->ndim);
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0 || (t->shape[d] && need > UINT64_MAX / 2 / (uint64_t)t->shape[d]))
                return error_set(err, "%s: tensor '%s' shape[%d] is %lld", path, t->name, d, (long long)t->shape[d]);
            need *= (uint64_t)t->shape[d];
        }
        if (need != t->nbytes)
            return error_set(err, "%s: tensor '%s' has %zu bytes of data but its shape needs %llu", path, t->name,
                             t->nbytes, (unsigned long long)need);
    }
    return 0;
}

int torch_bin_save_opts(const char *path, const StTensor *ts, int n, const TorchBinSaveOptions *opt, Error *err) {
    if (check_inputs(path, ts, n, err) != 0) return -1;
    Bytes pkl = {0};
    build_pickle(&pkl, ts, n);
    ZipWriter w = {.force64 = opt && opt->force_zip64};
    w.entries = calloc((size_t)n + 3, sizeof *w.entries);
    if (pkl.oom || !w.entries) {
        bytes_free(&pkl);
        free(w.entries);
        return error_set(err, "%s: out of memory", path);
    }
    int rc = file_begin(&w.f, path, err);
    if (rc == 0) {
        rc = zw_add(&w, "archive/data.pkl", pkl.p, pkl.len, err);
        if (rc == 0) rc = zw_add(&w, "archive/byteorder", "little", 6, err);
        for (int i = 0; i < n && rc == 0; i++) {
            char name[48];
            snprintf(name, sizeof name, "archive/data/%d", i);
            rc = zw_add(&w, name, ts[i].data, ts[i].nbytes, err);
        }
        if (rc == 0) rc = zw_add(&w, "archive/version", "3\n", 2, err);
        if (rc == 0) rc = zw_finish(&w, err);
        if (rc == 0) rc = file_commit(&w.f, err);
        else file_abort(&w.f);
    }
    bytes_free(&pkl);
    free(w.entries);
    return rc;
}

int torch_bin_save(const char *path, const StTensor *tensors, int n, Error *err) {
    return torch_bin_save_opts(path, tensors, n, NULL, err);
}
