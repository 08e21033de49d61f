/* PyTorch checkpoints: the zip reader, the restricted unpickler, the .bin
 * reader and writer, the folder fallback and PEFT's adapter_model.bin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/peft.h"
#include "formats/pickle.h"
#include "formats/safetensors.h"
#include "formats/torch_bin.h"
#include "formats/zip.h"
#include "models/llama.h"
#include "models/llama_lora.h"
#include "test.h"

void suite_torch_bin(void);

/* ------------------------------------------------------------ helpers */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} Buf;

static void put(Buf *b, const void *s, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void put_le(Buf *b, uint64_t v, int n) {
    for (int i = 0; i < n; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        put(b, &c, 1);
    }
}

static void put_s(Buf *b, const char *s) { put(b, s, strlen(s)); }

/* A string literal, NUL bytes included. */
#define put_lit(b, lit) put(b, lit, sizeof(lit) - 1)

/* Pickle pieces, as torch writes them. */
static void pk_str(Buf *b, const char *s) {
    put_lit(b, "X");
    put_le(b, strlen(s), 4);
    put_s(b, s);
}

static void pk_int(Buf *b, uint64_t v) {
    put_lit(b, "J");
    put_le(b, v, 4);
}

/* A one-tensor state dict: {name: _rebuild_tensor_v2(('storage', torch.<type>,
 * key, 'cpu', numel), offset, shape, stride, False, OrderedDict())}. */
static void pk_state_dict(Buf *b, const char *name, const char *type, const char *key, long numel, long offset,
                          int ndim, const long *shape, const long *stride) {
    put_lit(b, "\x80\x02" "ccollections\nOrderedDict\nq\x00)R(");
    pk_str(b, name);
    put_lit(b, "ctorch._utils\n_rebuild_tensor_v2\n((");
    pk_str(b, "storage");
    put_lit(b, "ctorch\n");
    put_s(b, type);
    put_lit(b, "\n");
    pk_str(b, key);
    pk_str(b, "cpu");
    pk_int(b, (uint64_t)numel);
    put_lit(b, "tQ");
    pk_int(b, (uint64_t)offset);
    put_lit(b, "(");
    for (int i = 0; i < ndim; i++) pk_int(b, (uint64_t)shape[i]);
    put_lit(b, "t(");
    for (int i = 0; i < ndim; i++) pk_int(b, (uint64_t)stride[i]);
    put_lit(b, "t\x89h\x00)RtRu.");
}

typedef struct {
    const char *name;
    const void *data;
    size_t size;
} Entry;

/* A zip of stored entries, no alignment, as a minimal writer makes it. */
static Buf make_zip(const Entry *e, int n) {
    Buf b = {0}, cd = {0};
    for (int i = 0; i < n; i++) {
        uint64_t at = b.len;
        uint32_t crc = zip_crc32(0, e[i].data, e[i].size);
        put_le(&b, 0x04034b50u, 4), put_le(&b, 20, 2), put_le(&b, 0, 2), put_le(&b, 0, 2);
        put_le(&b, 0, 4), put_le(&b, crc, 4), put_le(&b, e[i].size, 4), put_le(&b, e[i].size, 4);
        put_le(&b, strlen(e[i].name), 2), put_le(&b, 0, 2);
        put_s(&b, e[i].name);
        if (e[i].size) put(&b, e[i].data, e[i].size);
        put_le(&cd, 0x02014b50u, 4), put_le(&cd, 20, 2), put_le(&cd, 20, 2), put_le(&cd, 0, 2), put_le(&cd, 0, 2);
        put_le(&cd, 0, 4), put_le(&cd, crc, 4), put_le(&cd, e[i].size, 4), put_le(&cd, e[i].size, 4);
        put_le(&cd, strlen(e[i].name), 2), put_le(&cd, 0, 2), put_le(&cd, 0, 2), put_le(&cd, 0, 2);
        put_le(&cd, 0, 2), put_le(&cd, 0, 4), put_le(&cd, at, 4);
        put_s(&cd, e[i].name);
    }
    uint64_t cd_off = b.len;
    put(&b, cd.p, cd.len);
    put_le(&b, 0x06054b50u, 4), put_le(&b, 0, 4), put_le(&b, (uint64_t)n, 2), put_le(&b, (uint64_t)n, 2);
    put_le(&b, cd.len, 4), put_le(&b, cd_off, 4), put_le(&b, 0, 2);
    free(cd.p);
    return b;
}

/* A checkpoint holding pkl as archive/data.pkl plus the given storages. */
static const char *write_ckpt(const char *file, const Buf *pkl, const Entry *storages, int n) {
    Entry e[8] = {{"archive/data.pkl", pkl->p, pkl->len}, {"archive/version", "3\n", 2}};
    for (int i = 0; i < n; i++) e[2 + i] = storages[i];
    Buf z = make_zip(e, 2 + n);
    const char *path = test_write_file(file, z.p, z.len);
    free(z.p);
    return path;
}

/* Opens path expecting failure with exactly "<path><rest>". */
static int fails_with(const char *path, const char *rest, char *got, size_t cap) {
    SafeTensors st;
    Error err;
    if (torch_bin_open_opts(&st, path, NULL, &err) == 0) {
        st_close(&st);
        snprintf(got, cap, "(it opened)");
        return 0;
    }
    snprintf(got, cap, "%s", err.msg);
    char want[2048];
    snprintf(want, sizeof want, "%s%s", path, rest);
    return strcmp(err.msg, want) == 0;
}

#define CHECK_FAILS(path, rest)                                                     \
    do {                                                                            \
        char got_[1200];                                                            \
        CHECK(fails_with(path, rest, got_, sizeof got_), "got  %s\nwant %s%s", got_, \
              path, rest);                                                          \
    } while (0)

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(p, 1, (size_t)len, fp);
    fclose(fp);
    return p;
}

/* Offset of the central directory record of entry name in a zip image. */
static long find_central(const uint8_t *z, size_t n, const char *name) {
    size_t len = strlen(name);
    for (size_t i = 0; i + 46 + len <= n; i++)
        if (memcmp(z + i, "PK\1\2", 4) == 0 && (z[i + 28] | z[i + 29] << 8) == (int)len &&
            memcmp(z + i + 46, name, len) == 0)
            return (long)i;
    return -1;
}

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The local header offset and data offset of entry name. */
static int find_local(const uint8_t *z, size_t n, const char *name, long *lh, long *data) {
    long c = find_central(z, n, name);
    if (c < 0) return -1;
    *lh = (long)rd32(z + c + 42);
    *data = *lh + 30 + (z[*lh + 26] | z[*lh + 27] << 8) + (z[*lh + 28] | z[*lh + 29] << 8);
    return 0;
}

/* A small state dict in memory: F32, F16, BF16, I64, a scalar, an empty one. */
typedef struct {
    StTensor t[6];
    float f32[12];
    uint16_t f16[5], bf16[7];
    int64_t i64[3];
    float scalar;
} Sample;

static void make_sample(Sample *s) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 12; i++) s->f32[i] = (float)i * 0.37f - 1.5f;
    for (int i = 0; i < 5; i++) s->f16[i] = f32_to_f16((float)i / 3.0f);
    for (int i = 0; i < 7; i++) s->bf16[i] = f32_to_bf16(-(float)i * 1.7f);
    for (int i = 0; i < 3; i++) s->i64[i] = (int64_t)1 << (20 * i);
    s->scalar = 42.5f;
    s->t[0] = (StTensor){.name = "model.w", .dtype = DT_F32, .ndim = 2, .shape = {3, 4}, .data = s->f32,
                         .nbytes = sizeof s->f32};
    s->t[1] = (StTensor){.name = "half", .dtype = DT_F16, .ndim = 1, .shape = {5}, .data = s->f16,
                         .nbytes = sizeof s->f16};
    s->t[2] = (StTensor){.name = "brain", .dtype = DT_BF16, .ndim = 3, .shape = {7, 1, 1}, .data = s->bf16,
                         .nbytes = sizeof s->bf16};
    s->t[3] = (StTensor){.name = "ids", .dtype = DT_I64, .ndim = 2, .shape = {1, 3}, .data = s->i64,
                         .nbytes = sizeof s->i64};
    s->t[4] = (StTensor){.name = "scalar", .dtype = DT_F32, .ndim = 0, .data = &s->scalar, .nbytes = 4};
    s->t[5] = (StTensor){.name = "empty", .dtype = DT_F16, .ndim = 2, .shape = {0, 4}, .data = NULL, .nbytes = 0};
}

/* Every tensor of want is in st with the same dtype, shape and bytes. */
static int same_tensors(const SafeTensors *st, const StTensor *want, int n, char *why, size_t cap) {
    if (st->n_tensors != n) return snprintf(why, cap, "%d tensors, want %d", st->n_tensors, n), 0;
    for (int i = 0; i < n; i++) {
        const StTensor *t = st_find(st, want[i].name);
        if (!t) return snprintf(why, cap, "no tensor '%s'", want[i].name), 0;
        if (t->dtype != want[i].dtype || t->ndim != want[i].ndim || t->nbytes != want[i].nbytes)
            return snprintf(why, cap, "'%s' differs in dtype, rank or size", want[i].name), 0;
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] != want[i].shape[d]) return snprintf(why, cap, "'%s' shape differs", want[i].name), 0;
        if (t->nbytes && memcmp(t->data, want[i].data, t->nbytes) != 0)
            return snprintf(why, cap, "'%s' bytes differ", want[i].name), 0;
    }
    return 1;
}

static const char *saved_sample(const char *file, int zip64) {
    static char path[600];
    Sample s;
    make_sample(&s);
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), file);
    TorchBinSaveOptions o = {.force_zip64 = zip64};
    Error err;
    if (torch_bin_save_opts(path, s.t, 6, &o, &err) != 0) {
        printf("     save: %s\n", err.msg);
        return NULL;
    }
    return path;
}

/* ------------------------------------------------------------ CRC-32 */

static void t_torch_crc32_vectors(void) {
    static const struct {
        const char *s;
        uint32_t crc;
    } v[] = {{"", 0}, {"a", 0xe8b7be43u}, {"abc", 0x352441c2u}, {"123456789", 0xcbf43926u},
             {"The quick brown fox jumps over the lazy dog", 0x414fa339u},
             {"message digest", 0x20159d7fu}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        CHECK(zip_crc32(0, v[i].s, strlen(v[i].s)) == v[i].crc, "crc('%s') = %08x, want %08x", v[i].s,
              zip_crc32(0, v[i].s, strlen(v[i].s)), v[i].crc);
    /* 1 MiB of zeros: a known value; and the table path against the bitwise
     * one (pieces under 256 bytes), with every alignment. */
    size_t n = 1 << 20;
    uint8_t *buf = calloc(n, 1);
    CHECK(zip_crc32(0, buf, n) == 0xa738ea1cu, "crc(1 MiB of zeros) = %08x", zip_crc32(0, buf, n));
    for (size_t i = 0; i < 4099; i++) buf[i] = (uint8_t)(i * 131 + (i >> 5));
    for (size_t off = 0; off < 9; off++) {
        uint32_t whole = zip_crc32(0, buf + off, 4090), pieces = 0;
        for (size_t k = 0; k < 4090; k += 101) pieces = zip_crc32(pieces, buf + off + k, k + 101 <= 4090 ? 101 : 4090 - k);
        if (whole != pieces) {
            free(buf);
            CHECK(0, "offset %zu: one call %08x, in pieces %08x", off, whole, pieces);
        }
    }
    free(buf);
}

/* ------------------------------------------------------------ round trips */

static void roundtrip(int zip64) {
    const char *path = saved_sample(zip64 ? "rt64.bin" : "rt.bin", zip64);
    CHECK(path, "save failed");
    Sample s;
    make_sample(&s);
    SafeTensors st;
    Error err;
    TorchBinOptions o = {.verify_crc = 1};
    CHECK(torch_bin_open_opts(&st, path, &o, &err) == 0, "%s", err.msg);
    char why[300];
    int ok = same_tensors(&st, s.t, 6, why, sizeof why);
    for (int i = 0; i < st.n_tensors && ok; i++)
        if (!st_tensor_aligned(&st.tensors[i]) || (st.tensors[i].nbytes && st.tensors[i].offset % 64))
            ok = 0, snprintf(why, sizeof why, "'%s' is not 64-byte aligned", st.tensors[i].name);
    st_close(&st);
    CHECK(ok, "%s", why);
    /* st_open takes a .bin file too. */
    CHECK(st_open(&st, path, &err) == 0, "st_open: %s", err.msg);
    ok = same_tensors(&st, s.t, 6, why, sizeof why);
    st_close(&st);
    CHECK(ok, "st_open: %s", why);
}

static void t_torch_roundtrip_exact(void) { roundtrip(0); }
static void t_torch_roundtrip_zip64(void) { roundtrip(1); }

static void t_torch_save_refuses_bad_input(void) {
    float x[4] = {0};
    StTensor t = {.name = "x", .dtype = DT_F32, .ndim = 1, .shape = {5}, .data = x, .nbytes = sizeof x};
    char path[600];
    snprintf(path, sizeof path, "%s/bad-save.bin", test_tmpdir());
    Error err;
    CHECK(torch_bin_save(path, &t, 1, &err) != 0, "saved a tensor with too few bytes");
    char want[800];
    snprintf(want, sizeof want, "%s: tensor 'x' has 16 bytes of data but its shape needs 20", path);
    CHECK(strcmp(err.msg, want) == 0, "got  %s\nwant %s", err.msg, want);
    CHECK(access(path, F_OK) != 0, "a file was left behind");
}

/* ------------------------------------------------------------ what torch writes */

static float value_at(int64_t i) { return (float)(i - 3) / 4.0f; }

static float as_f32(const StTensor *t, int64_t i) {
    uint16_t h;
    float f;
    switch (t->dtype) {
    case DT_F32: memcpy(&f, (const float *)t->data + i, 4); return f;
    case DT_F16: memcpy(&h, (const uint16_t *)t->data + i, 2); return f16_to_f32(h);
    case DT_BF16: memcpy(&h, (const uint16_t *)t->data + i, 2); return bf16_to_f32(h);
    default: return -1e30f;
    }
}

/* Tensor name holds value_at(start + i) for i < n. */
static int ramp_ok(const SafeTensors *st, const char *name, DType dt, int64_t start, int64_t n) {
    const StTensor *t = st_find(st, name);
    if (!t || t->dtype != dt || (int64_t)(t->nbytes / dtype_size(dt)) != n) return 0;
    for (int64_t i = 0; i < n; i++)
        if (as_f32(t, i) != value_at(start + i)) return 0;
    return 1;
}

static void t_torch_reads_torch_files(void) {
    static const struct {
        const char *file;
        DType dt;
    } cases[] = {{"torch/f32.bin", DT_F32}, {"torch/f16.bin", DT_F16}, {"torch/bf16.bin", DT_BF16},
                 {"torch/proto4.bin", DT_F32}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        SafeTensors st;
        Error err;
        TorchBinOptions o = {.verify_crc = 1};
        CHECK(torch_bin_open_opts(&st, test_data(cases[i].file), &o, &err) == 0, "%s", err.msg);
        const StTensor *w = st_find(&st, "w");
        int ok = st.n_tensors == 2 && w && w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 3 &&
                 ramp_ok(&st, "w", cases[i].dt, 0, 6) && ramp_ok(&st, "b", cases[i].dt, 6, 3);
        st_close(&st);
        CHECK(ok, "%s: wrong tensors or values", cases[i].file);
    }
}

static void t_torch_reads_shared_storage(void) {
    SafeTensors st;
    Error err;
    CHECK(torch_bin_open(&st, test_data("torch/shared.bin"), &err) == 0, "%s", err.msg);
    const StTensor *full = st_find(&st, "full"), *slice = st_find(&st, "slice"), *grid = st_find(&st, "grid");
    const StTensor *param = st_find(&st, "param"), *pos = st_find(&st, "position_ids");
    int ok = st.n_tensors == 5 && full && slice && grid && param && pos;
    ok = ok && ramp_ok(&st, "full", DT_F32, 0, 10) && ramp_ok(&st, "slice", DT_F32, 2, 3) &&
         ramp_ok(&st, "grid", DT_F32, 0, 10) && ramp_ok(&st, "param", DT_F32, 0, 4);
    /* Views share their storage's bytes in the map: nothing was copied. */
    ok = ok && (const uint8_t *)slice->data == (const uint8_t *)full->data + 8 && grid->data == full->data;
    ok = ok && grid->ndim == 2 && grid->shape[0] == 2 && grid->shape[1] == 5;
    int64_t ids[4] = {0};
    if (ok && pos->dtype == DT_I64 && pos->ndim == 2 && pos->shape[0] == 1 && pos->shape[1] == 4)
        memcpy(ids, pos->data, sizeof ids);
    ok = ok && ids[0] == 0 && ids[1] == 1 && ids[2] == 2 && ids[3] == 3;
    st_close(&st);
    CHECK(ok, "wrong tensors, values or sharing");
}

static void t_torch_sharded_index(void) {
    SafeTensors st;
    Error err;
    /* Through st_open: a folder with only the .bin index falls back to it. */
    CHECK(st_open(&st, test_data("torch/sharded"), &err) == 0, "%s", err.msg);
    int ok = st.n_tensors == 3 && st.n_files == 2 && ramp_ok(&st, "a.weight", DT_F32, 0, 4) &&
             ramp_ok(&st, "b.weight", DT_F32, 4, 3) && ramp_ok(&st, "b.bias", DT_F32, 7, 1);
    ok = ok && strstr(st_file_path(&st, st_find(&st, "b.bias")), "pytorch_model-00002-of-00002.bin");
    st_close(&st);
    CHECK(ok, "wrong tensors or files");

    /* An index that puts a tensor in the wrong shard. */
    char dir[600], path[700], src[700];
    snprintf(dir, sizeof dir, "%s/bad-shards", test_tmpdir());
    mkdir(dir, 0755);
    for (int i = 1; i <= 2; i++) {
        snprintf(path, sizeof path, "%s/pytorch_model-0000%d-of-00002.bin", dir, i);
        snprintf(src, sizeof src, "%s/pytorch_model-0000%d-of-00002.bin", test_data("torch/sharded"), i);
        unlink(path);
        CHECK(symlink(src, path) == 0, "symlink %s", path);
    }
    const char *index = "{\"weight_map\": {\"a.weight\": \"pytorch_model-00002-of-00002.bin\", "
                        "\"b.weight\": \"pytorch_model-00002-of-00002.bin\", "
                        "\"b.bias\": \"pytorch_model-00001-of-00002.bin\"}}";
    snprintf(path, sizeof path, "%s/pytorch_model.bin.index.json", dir);
    FILE *fp = fopen(path, "w");
    CHECK(fp, "cannot write %s", path);
    fputs(index, fp);
    fclose(fp);
    CHECK(st_open(&st, dir, &err) != 0, "a wrong weight_map was accepted");
    char want[1600];
    snprintf(want, sizeof want, "%s: weight_map puts tensor 'a.weight' in pytorch_model-00002-of-00002.bin, but it "
             "is in pytorch_model-00001-of-00002.bin", path);
    CHECK(strcmp(err.msg, want) == 0, "got  %s\nwant %s", err.msg, want);
}

static void t_torch_safetensors_wins(void) {
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/both", test_tmpdir());
    mkdir(dir, 0755);
    float a = 1, b = 2;
    StTensor ta = {.name = "from_safetensors", .dtype = DT_F32, .ndim = 1, .shape = {1}, .data = &a, .nbytes = 4};
    StTensor tb = {.name = "from_bin", .dtype = DT_F32, .ndim = 1, .shape = {1}, .data = &b, .nbytes = 4};
    Error err;
    snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
    CHECK(torch_bin_save(path, &tb, 1, &err) == 0, "%s", err.msg);
    SafeTensors st;
    CHECK(st_open(&st, dir, &err) == 0, "%s", err.msg);
    int only_bin = st.n_tensors == 1 && st_find(&st, "from_bin");
    st_close(&st);
    CHECK(only_bin, "the folder with only pytorch_model.bin did not load it");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(st_save(path, &ta, 1, &err) == 0, "%s", err.msg);
    CHECK(st_open(&st, dir, &err) == 0, "%s", err.msg);
    int st_won = st.n_tensors == 1 && st_find(&st, "from_safetensors");
    st_close(&st);
    CHECK(st_won, "pytorch_model.bin was preferred over model.safetensors");
}

/* ------------------------------------------------------------ models */

/* Writes the tensors of a safetensors file as a .bin with torch_bin_save. */
static int convert(const char *st_path, const char *bin_path, Error *err) {
    SafeTensors st;
    if (st_open(&st, st_path, err)) return -1;
    int rc = torch_bin_save(bin_path, st.tensors, st.n_tensors, err);
    st_close(&st);
    return rc;
}

/* dir gets a symlink to every file of src except skip. */
static int link_all_but(const char *src, const char *dir, const char *skip) {
    static const char *const names[] = {"config.json", "generation_config.json", "special_tokens_map.json",
                                        "tokenizer.model", "tokenizer_config.json", "tokenizer.json",
                                        "adapter_config.json", "model.safetensors", "adapter_model.safetensors"};
    mkdir(dir, 0755);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char from[1200], to[1200];
        if (strcmp(names[i], skip) == 0) continue;
        snprintf(from, sizeof from, "%s/%s", src, names[i]);
        snprintf(to, sizeof to, "%s/%s", dir, names[i]);
        if (access(from, R_OK) != 0) continue;
        unlink(to);
        if (symlink(from, to) != 0) return -1;
    }
    return 0;
}

static const int prompt_ids[] = {1, 15043, 3186, 29871, 13, 450, 16500, 471};
#define N_PROMPT ((int)(sizeof prompt_ids / sizeof prompt_ids[0]))

/* The logits of every prompt position (malloc'd), optionally with a LoRA. */
static float *logits_of(const char *dir, const char *lora, size_t *n, Error *err) {
    Llama m;
    LlamaLora *l = NULL;
    if (llama_load(&m, dir, err)) return NULL;
    if (lora && (llama_lora_load(&l, &m, lora, err) || llama_attach_lora(&m, l, err))) {
        llama_lora_free(l);
        llama_free(&m);
        return NULL;
    }
    *n = (size_t)N_PROMPT * (size_t)m.config.vocab_size;
    float *out = malloc(*n * sizeof *out);
    LlamaState s;
    int rc = llama_state_new(&s, &m, 16, 8, test_pool(2), err);
    if (rc == 0) {
        rc = llama_forward(&m, &s, prompt_ids, N_PROMPT, 0, out, err);
        llama_state_free(&s);
    }
    llama_lora_free(l);
    llama_free(&m);
    if (rc) {
        free(out);
        return NULL;
    }
    return out;
}

static void t_torch_llama_tiny_same_logits(void) {
    NEED_FIXTURE(src, "llama-tiny");
    char dir[600], st_path[1200], bin[700];
    snprintf(dir, sizeof dir, "%s/llama-tiny-bin", test_tmpdir());
    CHECK(link_all_but(src, dir, "model.safetensors") == 0, "cannot link the fixture files");
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", src);
    snprintf(bin, sizeof bin, "%s/pytorch_model.bin", dir);
    Error err;
    CHECK(convert(st_path, bin, &err) == 0, "%s", err.msg);
    size_t n1 = 0, n2 = 0;
    float *a = logits_of(src, NULL, &n1, &err);
    CHECK(a, "safetensors: %s", err.msg);
    float *b = logits_of(dir, NULL, &n2, &err);
    int same = b && n1 == n2 && memcmp(a, b, n1 * sizeof *a) == 0;
    free(a);
    free(b);
    CHECK(same, "the logits from pytorch_model.bin differ from those of model.safetensors (%s)", b ? "" : err.msg);
}

static void t_torch_peft_adapter_bin(void) {
    NEED_FIXTURE(base, "llama-tiny");
    NEED_FIXTURE(lora, "llama-tiny-lora");
    char dir[700], st_path[1200], bin[800];
    /* beside the fixture's copy so that base_model_name_or_path resolves alike */
    snprintf(dir, sizeof dir, "%s/lora-bin", test_tmpdir());
    CHECK(link_all_but(lora, dir, "adapter_model.safetensors") == 0, "cannot link the adapter files");
    snprintf(st_path, sizeof st_path, "%s/adapter_model.safetensors", lora);
    snprintf(bin, sizeof bin, "%s/adapter_model.bin", dir);
    Error err;
    CHECK(convert(st_path, bin, &err) == 0, "%s", err.msg);
    SafeTensors want, got;
    CHECK(st_open(&want, st_path, &err) == 0, "%s", err.msg);
    int rc = peft_open_weights(&got, dir, &err);
    char why[300] = "";
    int ok = rc == 0 && same_tensors(&got, want.tensors, want.n_tensors, why, sizeof why);
    if (rc == 0) st_close(&got);
    st_close(&want);
    CHECK(ok, "%s", rc ? err.msg : why);
    size_t n1 = 0, n2 = 0;
    float *a = logits_of(base, lora, &n1, &err);
    CHECK(a, "safetensors adapter: %s", err.msg);
    float *b = logits_of(base, dir, &n2, &err);
    int same = b && n1 == n2 && memcmp(a, b, n1 * sizeof *a) == 0;
    free(a);
    free(b);
    CHECK(same, "the logits with adapter_model.bin differ (%s)", b ? "" : err.msg);
}

/* ------------------------------------------------------------ hostile pickles */

static void t_torch_refuses_os_system(void) {
    Buf p = {0};
    put_lit(&p, "\x80\x02" "cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85R.");
    const char *path = write_ckpt("evil.bin", &p, NULL, 0);
    free(p.p);
    CHECK_FAILS(path, ": data.pkl asks for global 'os.system', which is not allowed in a state dict (vmed never "
                      "runs code from a pickle)");
}

static void t_torch_refuses_other_globals(void) {
    static const char *const pickles[][2] = {
        {"\x80\x02" "cbuiltins\neval\n.", "builtins.eval"},
        {"\x80\x02" "c__builtin__\ngetattr\n.", "__builtin__.getattr"},
        {"\x80\x02" "csubprocess\nPopen\n.", "subprocess.Popen"},
        {"\x80\x02" "ctorch._utils\n_rebuild_qtensor\n.", "torch._utils._rebuild_qtensor"},
        {"\x80\x02" "ctorch\nComplexFloatStorage\n.", "torch.ComplexFloatStorage"},
        {"\x80\x04\x8c\x05posix\x8c\x06system\x93.", "posix.system"}, /* STACK_GLOBAL, protocol 4 */
        {"\x80\x02" "c\x01\x02\nx\n.", "??.x"},
    };
    for (size_t i = 0; i < sizeof pickles / sizeof pickles[0]; i++) {
        Buf p = {0};
        put_s(&p, pickles[i][0]);
        const char *path = write_ckpt("global.bin", &p, NULL, 0);
        free(p.p);
        char rest[300];
        snprintf(rest, sizeof rest, ": data.pkl asks for global '%s', which is not allowed in a state dict (vmed "
                 "never runs code from a pickle)", pickles[i][1]);
        CHECK_FAILS(path, rest);
    }
}

static void t_torch_refuses_unknown_storage_type(void) {
    long shape[1] = {2}, stride[1] = {1};
    Buf p = {0};
    pk_state_dict(&p, "w", "QInt8Storage", "0", 2, 0, 1, shape, stride);
    const char *path = write_ckpt("qint.bin", &p, NULL, 0);
    free(p.p);
    CHECK_FAILS(path, ": data.pkl asks for global 'torch.QInt8Storage', which is not allowed in a state dict (vmed "
                      "never runs code from a pickle)");
}

static void t_torch_refuses_reduce_on_non_callable(void) {
    Buf p = {0};
    put_lit(&p, "\x80\x02" "ctorch\nFloatStorage\n)R.");
    const char *path = write_ckpt("reduce.bin", &p, NULL, 0);
    free(p.p);
    CHECK_FAILS(path, ": data.pkl: at byte 23: REDUCE calls a torch storage class, which is not an allowed "
                      "callable (vmed never runs code from a pickle)");
    Buf q = {0};
    put_lit(&q, "\x80\x02X\x01\x00\x00\x00" "a)R.");
    path = write_ckpt("reduce2.bin", &q, NULL, 0);
    free(q.p);
    CHECK_FAILS(path, ": data.pkl: at byte 9: REDUCE calls a str, which is not an allowed callable (vmed never "
                      "runs code from a pickle)");
    /* OrderedDict with arguments: Python would iterate them; a state dict never does that. */
    Buf r = {0};
    put_lit(&r, "\x80\x02" "ccollections\nOrderedDict\n]\x85R.");
    path = write_ckpt("reduce3.bin", &r, NULL, 0);
    free(r.p);
    CHECK_FAILS(path, ": data.pkl: at byte 29: OrderedDict called with 1 arguments, expected none");
}

static void t_torch_refuses_non_state_dict(void) {
    Buf p = {0};
    put_lit(&p, "\x80\x02N.");
    const char *path = write_ckpt("none.bin", &p, NULL, 0);
    free(p.p);
    CHECK_FAILS(path, ": data.pkl: the pickle holds None, not a state dict (a dict of name -> tensor)");
    Buf q = {0};
    put_lit(&q, "\x80\x02}X\x05\x00\x00\x00" "epochK\x03s.");
    path = write_ckpt("epoch.bin", &q, NULL, 0);
    free(q.p);
    CHECK_FAILS(path, ": data.pkl: state dict key 'epoch' holds an int, not a tensor");
}

static void t_torch_refuses_limits(void) {
    Buf p = {0};
    put_lit(&p, "\x80\x02");
    for (int i = 0; i <= PICKLE_MAX_MARKS; i++) put_lit(&p, "(");
    Error err;
    PickleStateDict sd;
    char want[300];
    CHECK(pickle_read_state_dict(&sd, p.p, p.len, "x", &err) != 0, "deep marks accepted");
    snprintf(want, sizeof want, "x: at byte %d: marks nested deeper than %d", 2 + PICKLE_MAX_MARKS, PICKLE_MAX_MARKS);
    CHECK(strcmp(err.msg, want) == 0, "got  %s\nwant %s", err.msg, want);

    p.len = 0;
    put_lit(&p, "\x80\x02Nr\xff\xff\xff\xff.");
    CHECK(pickle_read_state_dict(&sd, p.p, p.len, "x", &err) != 0, "huge memo key accepted");
    snprintf(want, sizeof want, "x: at byte 3: memo key 4294967295 (at most %d)", PICKLE_MAX_MEMO - 1);
    CHECK(strcmp(err.msg, want) == 0, "got  %s\nwant %s", err.msg, want);

    p.len = 0;
    put_lit(&p, "\x80\x02X");
    put_le(&p, PICKLE_MAX_STRING + 1, 4);
    CHECK(pickle_read_state_dict(&sd, p.p, p.len, "x", &err) != 0, "huge string accepted");
    snprintf(want, sizeof want, "x: at byte 2: a string of %d bytes (at most %d)", PICKLE_MAX_STRING + 1,
             PICKLE_MAX_STRING);
    CHECK(strcmp(err.msg, want) == 0, "got  %s\nwant %s", err.msg, want);

    p.len = 0;
    put_lit(&p, "\x80\x02");
    for (int i = 0; i <= PICKLE_MAX_STACK; i++) put_lit(&p, "N");
    CHECK(pickle_read_state_dict(&sd, p.p, p.len, "x", &err) != 0, "huge stack accepted");
    snprintf(want, sizeof want, "x: at byte %d: stack deeper than %d", 2 + PICKLE_MAX_STACK, PICKLE_MAX_STACK);
    CHECK(strcmp(err.msg, want) == 0, "got  %s\nwant %s", err.msg, want);

    p.len = 0;
    put_lit(&p, "\x80\x02");
    for (int i = 0; i < PICKLE_MAX_OBJECTS; i++) put_lit(&p, ")0");
    put_lit(&p, ")");
    CHECK(pickle_read_state_dict(&sd, p.p, p.len, "x", &err) != 0, "too many objects accepted");
    snprintf(want, sizeof want, "x: at byte %d: more than %d objects", 2 + 2 * PICKLE_MAX_OBJECTS, PICKLE_MAX_OBJECTS);
    CHECK(strcmp(err.msg, want) == 0, "got  %s\nwant %s", err.msg, want);

    p.len = 0;
    put_lit(&p, "\x80\x02}");
    CHECK(pickle_read_state_dict(&sd, p.p, p.len, "x", &err) != 0, "a pickle without STOP accepted");
    CHECK(strcmp(err.msg, "x: at byte 2: the pickle ends without a STOP opcode") == 0, "got %s", err.msg);

    p.len = 0;
    put_lit(&p, "\x80\x02" "cos\nsystem\n(S'ls'\ntR.");
    CHECK(pickle_read_state_dict(&sd, p.p, p.len, "x", &err) != 0, "os.system accepted");
    free(p.p);
}

static void t_torch_refuses_bad_tensors(void) {
    float data[6] = {1, 2, 3, 4, 5, 6};
    Entry storage = {"archive/data/0", data, sizeof data};
    Buf p = {0};
    long shape[2] = {2, 4}, stride[2] = {4, 1};
    pk_state_dict(&p, "w", "FloatStorage", "0", 6, 0, 2, shape, stride);
    const char *path = write_ckpt("small-storage.bin", &p, &storage, 1);
    CHECK_FAILS(path, ": data.pkl: tensor 'w' of shape (2, 4) at offset 0 needs 8 elements of storage '0', which "
                      "holds 6");

    long shape2[1] = {3}, stride2[1] = {1};
    p.len = 0;
    pk_state_dict(&p, "w", "FloatStorage", "0", 6, 4, 1, shape2, stride2);
    path = write_ckpt("offset.bin", &p, &storage, 1);
    CHECK_FAILS(path, ": data.pkl: tensor 'w' of shape (3,) at offset 4 needs 7 elements of storage '0', which "
                      "holds 6");

    long shape3[2] = {3, 2}, stride3[2] = {1, 3};
    p.len = 0;
    pk_state_dict(&p, "w", "FloatStorage", "0", 6, 0, 2, shape3, stride3);
    path = write_ckpt("strides.bin", &p, &storage, 1);
    CHECK_FAILS(path, ": data.pkl: tensor 'w' of shape (3, 2) has strides (1, 3): it is not contiguous (vmed uses "
                      "tensors in place; save it after .contiguous())");

    /* The pickle says 6 elements, the entry holds 5. */
    Entry short_entry = {"archive/data/0", data, 20};
    p.len = 0;
    pk_state_dict(&p, "w", "FloatStorage", "0", 6, 0, 1, shape2, stride2);
    path = write_ckpt("entry-size.bin", &p, &short_entry, 1);
    CHECK_FAILS(path, ": storage '0' holds 6 F32 elements (24 bytes) by data.pkl, but zip entry 'archive/data/0' is "
                      "20 bytes");

    p.len = 0;
    pk_state_dict(&p, "w", "FloatStorage", "7", 6, 0, 1, shape2, stride2);
    path = write_ckpt("no-storage.bin", &p, &storage, 1);
    CHECK_FAILS(path, ": tensor 'w' uses storage '7' but the archive has no entry 'archive/data/7'");
    free(p.p);

    /* A real transposed tensor, as torch saves it. */
    const char *nc = test_data("torch/noncontig.bin");
    CHECK_FAILS(nc, ": data.pkl: tensor 't' of shape (3, 2) has strides (1, 3): it is not contiguous (vmed uses "
                    "tensors in place; save it after .contiguous())");
}

static void t_torch_refuses_legacy_and_big_endian(void) {
    CHECK_FAILS(test_data("torch/legacy.bin"), ": a legacy torch.save file (a bare pickle, from before torch 1.6); "
                                               "vmed reads the zip format: re-save it with torch >= 1.6 or convert it "
                                               "to safetensors");
    Buf p = {0};
    put_lit(&p, "\x80\x02}.");
    Entry e[3] = {{"archive/data.pkl", p.p, p.len}, {"archive/byteorder", "big", 3}, {"archive/version", "3\n", 2}};
    Buf z = make_zip(e, 3);
    const char *path = test_write_file("big.bin", z.p, z.len);
    free(z.p);
    free(p.p);
    CHECK_FAILS(path, ": the checkpoint was saved big-endian (byteorder 'big'); vmed reads little-endian ones");
}

/* ------------------------------------------------------------ hostile zips */

static void t_torch_refuses_bad_crc(void) {
    const char *src = saved_sample("crc-src.bin", 0);
    CHECK(src, "save failed");
    size_t n;
    uint8_t *z = read_file(src, &n);
    long lh, data, c = find_central(z, n, "archive/data.pkl");
    CHECK(c >= 0 && find_local(z, n, "archive/data.pkl", &lh, &data) == 0, "no data.pkl");
    uint32_t size = rd32(z + c + 24);
    z[data + 20] ^= 0x20; /* the CRC check comes before the pickle is run */
    uint32_t computed = zip_crc32(0, z + data, size);
    const char *path = test_write_file("crc.bin", z, n);
    char rest[300];
    snprintf(rest, sizeof rest, ": zip entry 'archive/data.pkl' fails its CRC-32 check (recorded %08x, computed "
             "%08x): the file is damaged", rd32(z + c + 16), computed);
    z[data + 20] ^= 0x20;
    /* A damaged storage: found only when asked. */
    long dlh, ddata, dc = find_central(z, n, "archive/data/0");
    CHECK(dc >= 0 && find_local(z, n, "archive/data/0", &dlh, &ddata) == 0, "no data/0");
    z[ddata] ^= 1;
    const char *path2 = test_write_file("crc-storage.bin", z, n);
    uint32_t computed2 = zip_crc32(0, z + ddata, rd32(z + dc + 24));
    uint32_t recorded2 = rd32(z + dc + 16);
    free(z);
    CHECK_FAILS(path, rest);

    SafeTensors st;
    Error err;
    CHECK(torch_bin_open(&st, path2, &err) == 0, "a damaged storage was checked without being asked: %s", err.msg);
    st_close(&st);
    TorchBinOptions o = {.verify_crc = 1};
    CHECK(torch_bin_open_opts(&st, path2, &o, &err) != 0, "a damaged storage passed verify_crc");
    char want[900];
    snprintf(want, sizeof want, "%s: zip entry 'archive/data/0' fails its CRC-32 check (recorded %08x, computed "
             "%08x): the file is damaged", path2, recorded2, computed2);
    CHECK(strcmp(err.msg, want) == 0, "got  %s\nwant %s", err.msg, want);
    setenv("VMED_VERIFY_CRC", "1", 1);
    int rc = torch_bin_open(&st, path2, &err);
    unsetenv("VMED_VERIFY_CRC");
    if (rc == 0) st_close(&st);
    CHECK(rc != 0 && strcmp(err.msg, want) == 0, "VMED_VERIFY_CRC=1: %s", rc ? err.msg : "opened");
}

/* Loads the saved sample, lets edit change it, writes it as file. */
static const char *edited(const char *file, void (*edit)(uint8_t *z, size_t *n)) {
    const char *src = saved_sample("edit-src.bin", 0);
    if (!src) return NULL;
    size_t n;
    uint8_t *z = read_file(src, &n);
    edit(z, &n);
    const char *path = test_write_file(file, z, n);
    free(z);
    return path;
}

static void edit_past_end(uint8_t *z, size_t *n) { wr32(z + find_central(z, *n, "archive/data/0") + 20, 0x7fffffff); }

static void edit_deflate(uint8_t *z, size_t *n) {
    long c = find_central(z, *n, "archive/data/0"), lh, data;
    find_local(z, *n, "archive/data/0", &lh, &data);
    z[c + 10] = 8;
    z[lh + 8] = 8;
}

static void edit_truncate(uint8_t *z, size_t *n) {
    (void)z;
    *n /= 2;
}

static void edit_duplicate(uint8_t *z, size_t *n) {
    long c = find_central(z, *n, "archive/data/1"), lh, data;
    find_local(z, *n, "archive/data/1", &lh, &data);
    z[c + 46 + 13] = '0';
    z[lh + 30 + 13] = '0';
}

static void edit_local_name(uint8_t *z, size_t *n) {
    long lh, data;
    find_local(z, *n, "archive/data/0", &lh, &data);
    z[lh + 30 + 13] = '9';
}

static void edit_cd_offset(uint8_t *z, size_t *n) { wr32(z + *n - 6, 0x7ffffff0); }

static void t_torch_refuses_bad_zip(void) {
    const char *path = edited("past-end.bin", edit_past_end);
    CHECK_FAILS(path, ": zip entry 'archive/data/0' runs past the end of the file");
    path = edited("deflate.bin", edit_deflate);
    CHECK_FAILS(path, ": zip entry 'archive/data/0' is compressed (method 8, deflate); vmed reads only stored "
                      "entries, as torch.save writes them");
    path = edited("truncated.bin", edit_truncate);
    CHECK_FAILS(path, ": no zip end-of-central-directory record; not a zip archive (torch.save writes zip archives "
                      "since torch 1.6; older pickle-only files are not supported)");
    path = edited("dup.bin", edit_duplicate);
    CHECK_FAILS(path, ": zip entry 'archive/data/0' appears twice");
    path = edited("local-name.bin", edit_local_name);
    CHECK_FAILS(path, ": zip entry 'archive/data/0' has a different name in its local header");
    path = edited("cd-offset.bin", edit_cd_offset);
    SafeTensors st;
    Error err;
    CHECK(torch_bin_open(&st, path, &err) != 0 && strstr(err.msg, "the zip central directory (offset 2147483632"),
          "got %s", err.msg);
    const char *empty = test_write_file("empty.bin", "", 0);
    CHECK_FAILS(empty, ": file is 0 bytes, too short for a zip archive (a torch.save checkpoint is one)");
}

/* ------------------------------------------------------------ robustness */

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Random byte edits of a valid file never crash the reader, and whatever it
 * accepts points inside the file. (The fuzz targets go much further.) */
static void t_torch_mutations_are_safe(void) {
    const char *src = saved_sample("mut-src.bin", 0);
    CHECK(src, "save failed");
    size_t n;
    uint8_t *orig = read_file(src, &n), *z = malloc(n);
    uint64_t seed = 12345;
    int accepted = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(z, orig, n);
        int edits = 1 + (int)(lcg(&seed) % 4);
        for (int k = 0; k < edits; k++) z[lcg(&seed) % n] = (uint8_t)lcg(&seed);
        size_t len = iter % 10 == 0 ? lcg(&seed) % n : n;
        SafeTensors st;
        Error err;
        if (torch_bin_parse(&st, z, len, "m.bin", NULL, &err) != 0) continue;
        accepted++;
        for (int i = 0; i < st.n_tensors; i++) {
            const uint8_t *d = st.tensors[i].data;
            if (d < z || d + st.tensors[i].nbytes > z + len) {
                st_close(&st);
                free(orig);
                free(z);
                CHECK(0, "tensor '%s' points outside the file", st.tensors[i].name);
            }
        }
        st_close(&st);
    }
    free(orig);
    free(z);
    CHECK(accepted > 0, "no mutation at all was accepted (the edits should often hit tensor data)");
}

void suite_torch_bin(void) {
    RUN(t_torch_crc32_vectors);
    RUN(t_torch_roundtrip_exact);
    RUN(t_torch_roundtrip_zip64);
    RUN(t_torch_save_refuses_bad_input);
    RUN(t_torch_reads_torch_files);
    RUN(t_torch_reads_shared_storage);
    RUN(t_torch_sharded_index);
    RUN(t_torch_safetensors_wins);
    RUN(t_torch_llama_tiny_same_logits);
    RUN(t_torch_peft_adapter_bin);
    RUN(t_torch_refuses_os_system);
    RUN(t_torch_refuses_other_globals);
    RUN(t_torch_refuses_unknown_storage_type);
    RUN(t_torch_refuses_reduce_on_non_callable);
    RUN(t_torch_refuses_non_state_dict);
    RUN(t_torch_refuses_limits);
    RUN(t_torch_refuses_bad_tensors);
    RUN(t_torch_refuses_legacy_and_big_endian);
    RUN(t_torch_refuses_bad_crc);
    RUN(t_torch_refuses_bad_zip);
    RUN(t_torch_mutations_are_safe);
}
