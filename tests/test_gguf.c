/* GGUF: the reader and writer (round trips, a file written by llama.cpp's
 * gguf-py, every kind of bad input with its message), LLaMA and its
 * tokenizer from GGUF files that `vmed convert` writes from the fixtures,
 * against HF transformers' numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "formats/gguf.h"
#include "formats/json_util.h"
#include "formats/safetensors.h"
#include "generate/generate.h"
#include "models/llama.h"
#include "models/llama_gguf.h"
#include "test.h"
#include "text/spm.h"

void suite_gguf(void);

/* ------------------------------------------------------------ type table */

static void t_gguf_type_table(void) {
    struct {
        uint32_t id;
        const char *name;
        int elems, bytes;
    } want[] = {
        {GGML_F32, "F32", 1, 4},      {GGML_F16, "F16", 1, 2},       {GGML_BF16, "BF16", 1, 2},
        {GGML_Q4_0, "Q4_0", 32, 18},  {GGML_Q4_1, "Q4_1", 32, 20},   {GGML_Q5_0, "Q5_0", 32, 22},
        {GGML_Q5_1, "Q5_1", 32, 24},  {GGML_Q8_0, "Q8_0", 32, 34},   {GGML_Q8_1, "Q8_1", 32, 36},
        {GGML_Q2_K, "Q2_K", 256, 84}, {GGML_Q3_K, "Q3_K", 256, 110}, {GGML_Q4_K, "Q4_K", 256, 144},
        {GGML_Q5_K, "Q5_K", 256, 176}, {GGML_Q6_K, "Q6_K", 256, 210}, {GGML_Q8_K, "Q8_K", 256, 292},
        {GGML_IQ4_XS, "IQ4_XS", 256, 136}, {GGML_I32, "I32", 1, 4},  {GGML_F64, "F64", 1, 8},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const GgmlTypeInfo *ti = ggml_type_info(want[i].id);
        CHECK(ti && strcmp(ti->name, want[i].name) == 0 && ti->block_elems == want[i].elems &&
                  ti->block_bytes == want[i].bytes,
              "type %u: %s", want[i].id, ti ? ti->name : "missing");
    }
    uint32_t gone[] = {4, 5, 31, 32, 33, 36, 37, 38, 99, 0xffffffffu};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        CHECK(ggml_type_info(gone[i]) == NULL, "type id %u should be unknown", gone[i]);
    CHECK(ggml_row_bytes(GGML_Q4_K, 4096) == 16 * 144, "Q4_K row bytes");
}

/* ------------------------------------------------------------ round trip */

static const uint8_t ARR_U8[] = {0, 7, 255};
static const int16_t ARR_I16[] = {-32768, 0, 32767};
static const uint64_t ARR_U64[] = {0, 1, UINT64_MAX};
static const double ARR_F64[] = {1e300, -0.0, 3.25};
static const uint8_t ARR_BOOL[] = {1, 0, 1};

/* A file with every metadata type and F32/F16/BF16/Q8_0 tensors. */
static int write_everything(const char *path, uint32_t alignment, Error *err) {
    GgufWriter *w;
    if (gguf_writer_open(&w, path, err)) return -1;
    const char *strs[] = {"a", "", "\xe2\x96\x81\x62\x63", "with\0nul"};
    size_t lens[] = {1, 0, 5, 8};
    float f32[15], f32b[7];
    uint16_t f16[7], bf16[4];
    uint8_t q8[2 * 34];
    for (int i = 0; i < 15; i++) f32[i] = (float)i * 0.37f - 2.0f;
    for (int i = 0; i < 7; i++) f16[i] = f32_to_f16((float)i / 3.0f), f32b[i] = (float)-i;
    for (int i = 0; i < 4; i++) bf16[i] = f32_to_bf16((float)i * 1.5f);
    for (int i = 0; i < 68; i++) q8[i] = (uint8_t)(i * 7);
    int64_t ne_a[2] = {5, 3}, ne_b[1] = {7}, ne_c[2] = {2, 2}, ne_q[2] = {32, 2}, ne_d[3] = {7, 1, 1};
    int rc = (alignment != GGUF_DEFAULT_ALIGNMENT && gguf_writer_add_u32(w, "general.alignment", alignment, err)) ||
             gguf_writer_add_u8(w, "k.u8", 250, err) || gguf_writer_add_i8(w, "k.i8", -128, err) ||
             gguf_writer_add_u16(w, "k.u16", 65535, err) || gguf_writer_add_i16(w, "k.i16", -12345, err) ||
             gguf_writer_add_u32(w, "k.u32", 4294967295u, err) || gguf_writer_add_i32(w, "k.i32", INT32_MIN, err) ||
             gguf_writer_add_u64(w, "k.u64", 1ull << 62, err) || gguf_writer_add_i64(w, "k.i64", INT64_MIN, err) ||
             gguf_writer_add_f32(w, "k.f32", 1e-6f, err) || gguf_writer_add_f64(w, "k.f64", 1.0 / 3.0, err) ||
             gguf_writer_add_bool(w, "k.bool", 1, err) || gguf_writer_add_string(w, "k.str", "LLaMA \xf0\x9f\xa6\x99", err) ||
             gguf_writer_add_array(w, "a.u8", GGUF_U8, ARR_U8, 3, err) ||
             gguf_writer_add_array(w, "a.i16", GGUF_I16, ARR_I16, 3, err) ||
             gguf_writer_add_array(w, "a.u64", GGUF_U64, ARR_U64, 3, err) ||
             gguf_writer_add_array(w, "a.f64", GGUF_F64, ARR_F64, 3, err) ||
             gguf_writer_add_array(w, "a.bool", GGUF_BOOL, ARR_BOOL, 3, err) ||
             gguf_writer_add_array(w, "a.empty", GGUF_I32, NULL, 0, err) ||
             gguf_writer_add_string_array(w, "a.str", strs, lens, 4, err) ||
             gguf_writer_add_tensor(w, "t.f32", GGML_F32, 2, ne_a, err) ||
             gguf_writer_add_tensor(w, "t.f16", GGML_F16, 1, ne_b, err) ||
             gguf_writer_add_tensor(w, "t.bf16", GGML_BF16, 2, ne_c, err) ||
             gguf_writer_add_tensor(w, "t.q8_0", GGML_Q8_0, 2, ne_q, err) ||
             gguf_writer_add_tensor(w, "t.f32.3d", GGML_F32, 3, ne_d, err);
    /* uneven chunks: the writer must split and pad them itself */
    if (!rc) rc = gguf_writer_write(w, f32, 9 * 4, err) || gguf_writer_write(w, (uint8_t *)f32 + 36, 6 * 4, err) ||
                  gguf_writer_write(w, f16, sizeof f16, err) || gguf_writer_write(w, bf16, sizeof bf16, err) ||
                  gguf_writer_write(w, q8, sizeof q8, err) || gguf_writer_write(w, f32b, sizeof f32b, err);
    if (rc) {
        gguf_writer_abort(w);
        return -1;
    }
    return gguf_writer_close(w, err);
}

static void check_everything(const Gguf *g, uint32_t alignment) {
    Error err;
    int64_t v;
    double d;
    int b;
    struct {
        const char *key;
        int64_t want;
    } ints[] = {{"k.u8", 250}, {"k.i8", -128}, {"k.u16", 65535}, {"k.i16", -12345}, {"k.u32", 4294967295ll},
                {"k.i32", INT32_MIN}, {"k.u64", 1ll << 62}, {"k.i64", INT64_MIN}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        CHECK(gguf_get_int(g, ints[i].key, &v, &err) == 0, "%s: %s", ints[i].key, err.msg);
        CHECK(v == ints[i].want, "%s is %lld", ints[i].key, (long long)v);
    }
    CHECK(gguf_get_float(g, "k.f32", &d, &err) == 0 && d == (double)1e-6f, "k.f32");
    CHECK(gguf_get_float(g, "k.f64", &d, &err) == 0 && d == 1.0 / 3.0, "k.f64");
    CHECK(gguf_get_bool(g, "k.bool", &b, &err) == 0 && b == 1, "k.bool");
    const char *s;
    uint64_t n;
    CHECK(gguf_get_string(g, "k.str", &s, &n, &err) == 0 && n == 10 && memcmp(s, "LLaMA \xf0\x9f\xa6\x99", 10) == 0,
          "k.str");
    CHECK(gguf_get_int(g, "absent", &v, &err) == 1, "an absent key is 1");
    CHECK(gguf_get_int(g, "k.str", &v, &err) == -1, "a string read as an integer");
    CHECK(strstr(err.msg, "metadata 'k.str' is a string; an integer was expected"), "%s", err.msg);
    const GgufKV *kv;
    CHECK(gguf_get_array(g, "a.u8", GGUF_U8, &kv, &n, &err) == 0 && n == 3, "a.u8");
    for (int i = 0; i < 3; i++) CHECK(gguf_array_int(kv, (uint64_t)i) == ARR_U8[i], "a.u8[%d]", i);
    CHECK(gguf_get_array(g, "a.i16", GGUF_I16, &kv, &n, &err) == 0 && n == 3, "a.i16");
    for (int i = 0; i < 3; i++) CHECK(gguf_array_int(kv, (uint64_t)i) == ARR_I16[i], "a.i16[%d]", i);
    CHECK(gguf_get_array(g, "a.u64", GGUF_U64, &kv, &n, &err) == 0 && n == 3, "a.u64");
    for (int i = 0; i < 3; i++) CHECK((uint64_t)gguf_array_int(kv, (uint64_t)i) == ARR_U64[i], "a.u64[%d]", i);
    CHECK(gguf_get_array(g, "a.f64", GGUF_F64, &kv, &n, &err) == 0 && n == 3, "a.f64");
    for (int i = 0; i < 3; i++) CHECK(memcmp(&(double){gguf_array_float(kv, (uint64_t)i)}, &ARR_F64[i], 8) == 0, "a.f64[%d]", i);
    CHECK(gguf_get_array(g, "a.bool", GGUF_BOOL, &kv, &n, &err) == 0 && n == 3, "a.bool");
    for (int i = 0; i < 3; i++) CHECK(gguf_array_int(kv, (uint64_t)i) == ARR_BOOL[i], "a.bool[%d]", i);
    CHECK(gguf_get_array(g, "a.empty", GGUF_I32, &kv, &n, &err) == 0 && n == 0, "a.empty");
    CHECK(gguf_get_array(g, "a.str", GGUF_STRING, &kv, &n, &err) == 0 && n == 4, "a.str");
    const char *want_s[] = {"a", "", "\xe2\x96\x81\x62\x63", "with\0nul"};
    size_t want_n[] = {1, 0, 5, 8};
    for (int i = 0; i < 4; i++) {
        s = gguf_array_string(kv, (uint64_t)i, &n);
        CHECK(n == want_n[i] && memcmp(s, want_s[i], n) == 0, "a.str[%d]", i);
    }
    CHECK(gguf_get_array(g, "a.str", GGUF_I32, &kv, &n, &err) == -1 &&
              strstr(err.msg, "metadata 'a.str' is a string array; an array of i32 was expected"),
          "%s", err.msg);
    CHECK(g->alignment == alignment && g->data_offset % alignment == 0, "alignment %u", g->alignment);
    CHECK(g->n_tensors == 5, "%lld tensors", (long long)g->n_tensors);
    /* the tensor bytes, exactly */
    const GgufTensor *t = gguf_find_tensor(g, "t.f32");
    CHECK(t && t->type == GGML_F32 && t->n_dims == 2 && t->ne[0] == 5 && t->ne[1] == 3 && t->nbytes == 60, "t.f32");
    for (int i = 0; i < 15; i++) {
        float x;
        memcpy(&x, (const float *)t->data + i, 4);
        CHECK(x == (float)i * 0.37f - 2.0f, "t.f32[%d] = %g", i, x);
    }
    Tensor view;
    CHECK(gguf_tensor_view(g, t, &view, &err) == 0 && view.ndim == 2 && view.shape[0] == 3 && view.shape[1] == 5,
          "view of t.f32 is row-major [3, 5]");
    t = gguf_find_tensor(g, "t.f16");
    CHECK(t && t->type == GGML_F16 && t->nbytes == 14, "t.f16");
    for (int i = 0; i < 7; i++) CHECK(((const uint16_t *)t->data)[i] == f32_to_f16((float)i / 3.0f), "t.f16[%d]", i);
    t = gguf_find_tensor(g, "t.bf16");
    CHECK(t && t->type == GGML_BF16 && t->nbytes == 8, "t.bf16");
    for (int i = 0; i < 4; i++) CHECK(((const uint16_t *)t->data)[i] == f32_to_bf16((float)i * 1.5f), "t.bf16[%d]", i);
    t = gguf_find_tensor(g, "t.q8_0");
    CHECK(t && t->type == GGML_Q8_0 && t->nbytes == 68, "t.q8_0");
    for (int i = 0; i < 68; i++) CHECK(((const uint8_t *)t->data)[i] == (uint8_t)(i * 7), "t.q8_0 byte %d", i);
    CHECK(gguf_tensor_view(g, t, &view, &err) == -1 && strstr(err.msg, "tensor 't.q8_0' is Q8_0, which has no plain dtype"),
          "%s", err.msg);
    t = gguf_find_tensor(g, "t.f32.3d");
    CHECK(t && t->n_dims == 3 && t->ne[1] == 1 && ((const float *)t->data)[6] == -6.0f, "t.f32.3d");
    for (int64_t i = 0; i < g->n_tensors; i++)
        CHECK(g->tensors[i].offset % alignment == 0, "tensor %lld misaligned", (long long)i);
    CHECK(gguf_find_tensor(g, "t.f3") == NULL && gguf_find_kv(g, "k.u") == NULL, "prefix lookups");
}

static void t_gguf_write_read_round_trip(void) {
    uint32_t aligns[] = {GGUF_DEFAULT_ALIGNMENT, 64, 8};
    for (int k = 0; k < 3 && !test_failed(); k++) {
        char path[600];
        snprintf(path, sizeof path, "%s/everything-%u.gguf", test_tmpdir(), aligns[k]);
        Error err;
        CHECK(write_everything(path, aligns[k], &err) == 0, "%s", err.msg);
        Gguf *g;
        CHECK(gguf_open(&g, path, &err) == 0, "%s", err.msg);
        CHECK(g->version == 3, "version %u", g->version);
        check_everything(g, aligns[k]);
        gguf_close(g);
    }
}

static void t_gguf_writer_refuses_misuse(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/misuse.gguf", test_tmpdir());
    Error err;
    GgufWriter *w;
    int64_t ne[1] = {8}, ne_q[1] = {16};
    CHECK(gguf_writer_open(&w, path, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_add_u32(w, "x", 1, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_add_u32(w, "x", 2, &err) == -1 && strstr(err.msg, "metadata key 'x' is added twice"), "%s",
          err.msg);
    CHECK(gguf_writer_add_u32(w, "general.alignment", 24, &err) == -1 &&
              strstr(err.msg, "general.alignment 24 is not a power of two"),
          "%s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "q", GGML_Q4_0, 1, ne_q, &err) == -1 &&
              strstr(err.msg, "tensor 'q' is Q4_0 with rows of 16 values, not a multiple of its block size 32"),
          "%s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "a", GGML_F32, 1, ne, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "a", GGML_F32, 1, ne, &err) == -1 && strstr(err.msg, "tensor 'a' is added twice"),
          "%s", err.msg);
    float x[8] = {0};
    CHECK(gguf_writer_write(w, x, 16, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_close(w, &err) == -1 && strstr(err.msg, "tensor 'a' got 16 of its 32 bytes"), "%s", err.msg);
    CHECK(!file_exists(path), "a failed write left %s behind", path);
}

/* --------------------------------------------- a file gguf-py wrote */

static void t_gguf_reads_gguf_py_file(void) {
    Error err;
    Gguf *g;
    CHECK(gguf_open(&g, test_data("gguf_reference.gguf"), &err) == 0, "%s", err.msg);
    int64_t v;
    double d;
    int b;
    const char *s;
    uint64_t n;
    struct {
        const char *key;
        uint32_t type;
        int64_t want;
    } ints[] = {{"t.u8", GGUF_U8, 200},          {"t.i8", GGUF_I8, -100},
                {"t.u16", GGUF_U16, 60000},      {"t.i16", GGUF_I16, -30000},
                {"t.u32", GGUF_U32, 4000000000}, {"t.i32", GGUF_I32, -2000000000},
                {"t.i64", GGUF_I64, -9000000000000000000ll}};
    int ok = 1;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && ok; i++)
        ok = gguf_find_kv(g, ints[i].key) && gguf_find_kv(g, ints[i].key)->type == ints[i].type &&
             gguf_get_int(g, ints[i].key, &v, &err) == 0 && v == ints[i].want;
    const GgufKV *u64 = gguf_find_kv(g, "t.u64");
    ok = ok && u64 && u64->type == GGUF_U64 && gguf_kv_number(u64) == 18000000000000000000.0;
    ok = ok && gguf_get_int(g, "t.u64", &v, &err) == -1 && strstr(err.msg, "is 18000000000000000000, too large");
    ok = ok && gguf_get_float(g, "t.f32", &d, &err) == 0 && d == 0.15625;
    ok = ok && gguf_get_float(g, "t.f64", &d, &err) == 0 && d == -2.5e-300;
    ok = ok && gguf_get_bool(g, "t.bool", &b, &err) == 0 && b == 1;
    ok = ok && gguf_get_string(g, "t.string", &s, &n, &err) == 0 && n == strlen("héllo ▁world") &&
         memcmp(s, "héllo ▁world", n) == 0;
    ok = ok && gguf_get_string(g, "general.architecture", &s, &n, &err) == 0 && n == 5 && memcmp(s, "llama", 5) == 0;
    const GgufKV *kv;
    ok = ok && gguf_get_array(g, "t.arr_i32", GGUF_I32, &kv, &n, &err) == 0 && n == 3 && gguf_array_int(kv, 1) == -2;
    ok = ok && gguf_get_array(g, "t.arr_f32", GGUF_F32, &kv, &n, &err) == 0 && n == 2 &&
         gguf_array_float(kv, 1) == -1.25;
    ok = ok && gguf_get_array(g, "t.arr_bool", GGUF_BOOL, &kv, &n, &err) == 0 && n == 2 && gguf_array_int(kv, 0) == 1;
    ok = ok && gguf_get_array(g, "t.arr_str", GGUF_STRING, &kv, &n, &err) == 0 && n == 3;
    if (ok) {
        s = gguf_array_string(kv, 1, &n);
        ok = n == 0;
        s = gguf_array_string(kv, 2, &n);
        ok = ok && n == strlen("▁bc") && memcmp(s, "▁bc", n) == 0;
    }
    if (!ok) gguf_close(g);
    CHECK(ok, "the metadata gguf-py wrote reads back wrong (%s)", err.msg);
    const GgufTensor *f32 = gguf_find_tensor(g, "f32"), *f16 = gguf_find_tensor(g, "f16"),
                     *bf16 = gguf_find_tensor(g, "bf16"), *i32 = gguf_find_tensor(g, "i32"),
                     *q8 = gguf_find_tensor(g, "q8_0");
    ok = f32 && f16 && bf16 && i32 && q8 && f32->ne[0] == 4 && f32->ne[1] == 3 && f16->ne[0] == 8 &&
         f16->ne[1] == 2 && bf16->n_dims == 1 && bf16->ne[0] == 5 && i32->type == GGML_I32 && q8->type == GGML_Q8_0 &&
         q8->ne[0] == 32 && q8->ne[1] == 2 && q8->nbytes == 68;
    for (int i = 0; ok && i < 12; i++) ok = ((const float *)f32->data)[i] == (float)i - 5.5f;
    for (int i = 0; ok && i < 16; i++) ok = f16_to_f32(((const uint16_t *)f16->data)[i]) == (float)i / 8;
    const float bf_want[5] = {1.0f, -2.0f, 0.5f, 3.0f, -0.125f};
    for (int i = 0; ok && i < 5; i++) ok = bf16_to_f32(((const uint16_t *)bf16->data)[i]) == bf_want[i];
    for (int i = 0; ok && i < 6; i++) ok = ((const int32_t *)i32->data)[i] == (i < 3 ? i + 1 : -(i + 1));
    for (int i = 0; ok && i < 68; i++) ok = ((const uint8_t *)q8->data)[i] == i;
    gguf_close(g);
    CHECK(ok, "the tensors gguf-py wrote read back wrong");
    CHECK(gguf_open(&g, test_data("gguf_reference_align64.gguf"), &err) == 0, "%s", err.msg);
    const GgufTensor *a = gguf_find_tensor(g, "a"), *bt = gguf_find_tensor(g, "b");
    ok = g->alignment == 64 && g->data_offset % 64 == 0 && a && bt && bt->offset == 64 &&
         ((const float *)bt->data)[1] == 5.0f && ((const float *)a->data)[2] == 3.0f;
    gguf_close(g);
    CHECK(ok, "general.alignment 64 from gguf-py");
}

/* ------------------------------------------------------------ bad input */

typedef struct {
    uint8_t b[4096];
    size_t n;
} Bytes;

static void put(Bytes *x, const void *p, size_t n) {
    memcpy(x->b + x->n, p, n);
    x->n += n;
}
static void put_u32(Bytes *x, uint32_t v) { put(x, &v, 4); }
static void put_u64(Bytes *x, uint64_t v) { put(x, &v, 8); }
static void put_str(Bytes *x, const char *s) {
    put_u64(x, strlen(s));
    put(x, s, strlen(s));
}
static void header(Bytes *x, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    x->n = 0;
    put(x, "GGUF", 4);
    put_u32(x, version);
    put_u64(x, n_tensors);
    put_u64(x, n_kv);
}
static void tensor_info(Bytes *x, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    put_str(x, name);
    put_u32(x, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) put_u64(x, ne[d]);
    put_u32(x, type);
    put_u64(x, off);
}
/* Padding to 32, then n bytes of tensor data. */
static void data(Bytes *x, size_t n) {
    while (x->n % 32) x->b[x->n++] = 0;
    memset(x->b + x->n, 0, n);
    x->n += n;
}

/* One valid file: a string KV and two F32 tensors [8] at offsets 0, 32. */
static void valid(Bytes *x) {
    uint64_t ne[1] = {8};
    header(x, 3, 2, 1);
    put_str(x, "general.name");
    put_u32(x, GGUF_STRING);
    put_str(x, "t");
    tensor_info(x, "a", 1, ne, GGML_F32, 0);
    tensor_info(x, "b", 1, ne, GGML_F32, 32);
    data(x, 64);
}

static int parse_fails(const Bytes *x, const char *want, char *got, size_t cap) {
    Gguf *g;
    Error err;
    if (gguf_parse(&g, x->b, x->n, "x.gguf", &err) == 0) {
        gguf_close(g);
        snprintf(got, cap, "(it parsed)");
        return 0;
    }
    snprintf(got, cap, "%s", err.msg);
    return strcmp(err.msg, want) == 0;
}

static void t_gguf_bad_input_messages(void) {
    Bytes x;
    char got[1024];
    Gguf *g;
    Error err;
    valid(&x);
    CHECK(gguf_parse(&g, x.b, x.n, "x.gguf", &err) == 0, "the valid file: %s", err.msg);
    CHECK(g->n_tensors == 2 && g->data_offset == 128, "data offset %llu", (unsigned long long)g->data_offset);
    gguf_close(g);
    /* every cut of the valid file fails cleanly; here one inside a string */
    size_t full = x.n;
    for (size_t cut = 0; cut < 128 + 64; cut++) {
        Bytes y = x;
        y.n = cut;
        CHECK(gguf_parse(&g, y.b, y.n, "x.gguf", &err) == -1, "cut at %zu parsed", cut);
    }
    x.n = 110;
    CHECK(parse_fails(&x, "x.gguf: truncated file: the dimensions of tensor 'b' needs 8 bytes at offset 103, but the "
                          "file ends at 110", got, sizeof got), "%s", got);
    x.n = full - 1;
    CHECK(parse_fails(&x, "x.gguf: tensor 'b' (32 bytes at offset 32 of the data section) ends past the end of the file "
                          "(the data section holds 63 bytes)", got, sizeof got), "%s", got);
    valid(&x);
    memcpy(x.b, "GGUX", 4);
    CHECK(parse_fails(&x, "x.gguf: not a GGUF file (it starts with 'GGUX', not 'GGUF')", got, sizeof got), "%s", got);
    x.n = 2;
    memcpy(x.b, "GG", 2);
    CHECK(parse_fails(&x, "x.gguf: not a GGUF file (it starts with 'GG', not 'GGUF')", got, sizeof got), "%s", got);
    valid(&x);
    x.b[4] = 4;
    CHECK(parse_fails(&x, "x.gguf: GGUF version 4 is not supported (vmed reads versions 2 and 3)", got, sizeof got),
          "%s", got);
    x.b[4] = 1;
    CHECK(parse_fails(&x, "x.gguf: GGUF version 1 is not supported (vmed reads versions 2 and 3)", got, sizeof got),
          "%s", got);
    x.b[4] = 0, x.b[7] = 3;
    CHECK(parse_fails(&x, "x.gguf: a big-endian GGUF file (version 3 byte-swapped); vmed reads little-endian files only",
                      got, sizeof got), "%s", got);
    valid(&x);
    x.b[4] = 2; /* version 2 has the same layout */
    CHECK(gguf_parse(&g, x.b, x.n, "x.gguf", &err) == 0 && g->version == 2, "version 2: %s", err.msg);
    gguf_close(g);
    valid(&x);
    uint64_t big = 1000000000;
    memcpy(x.b + 8, &big, 8);
    CHECK(parse_fails(&x, "x.gguf: the header says 1000000000 tensors, more than the 168 bytes after it could hold", got,
                      sizeof got), "%s", got);
    valid(&x);
    memcpy(x.b + 16, &big, 8);
    CHECK(parse_fails(&x, "x.gguf: the header says 1000000000 metadata entries, more than the 168 bytes after it could "
                          "hold", got, sizeof got), "%s", got);
    valid(&x);
    big = 1000;
    memcpy(x.b + 24, &big, 8);
    CHECK(parse_fails(&x, "x.gguf: truncated file: the key of metadata entry 0 (a string of 1000 bytes) needs 1000 "
                          "bytes at offset 32, but the file ends at 192", got, sizeof got), "%s", got);
    valid(&x);
    big = UINT64_MAX;
    memcpy(x.b + 48, &big, 8); /* the value string's length */
    CHECK(parse_fails(&x, "x.gguf: truncated file: the value of 'general.name' (a string of 18446744073709551615 bytes) "
                          "needs 18446744073709551615 bytes at offset 56, but the file ends at 192", got, sizeof got),
          "%s", got);

    uint64_t ne8[1] = {8}, ne5[5] = {8, 1, 1, 1, 1}, ne0[2] = {8, 0}, ne_huge[2] = {1ull << 32, 1ull << 31}, ne_big[2] = {1ull << 31, 1ull << 31},
             ne16[1] = {16};
    struct {
        const char *name;
        uint32_t n_dims;
        const uint64_t *ne;
        uint32_t type;
        uint64_t off;
        const char *want;
    } cases[] = {
        {"blk.0.attn_q.weight", 1, ne8, 99, 0,
         "x.gguf: tensor 'blk.0.attn_q.weight' has type id 99, which vmed does not know"},
        {"a", 5, ne5, GGML_F32, 0, "x.gguf: tensor 'a' has 5 dimensions; GGUF allows 1 to 4"},
        {"a", 0, ne8, GGML_F32, 0, "x.gguf: tensor 'a' has 0 dimensions; GGUF allows 1 to 4"},
        {"a", 2, ne0, GGML_F32, 0, "x.gguf: tensor 'a' has size 0 in dimension 1"},
        {"a", 2, ne_huge, GGML_F32, 0, "x.gguf: tensor 'a' has more than 2^63 - 1 elements (dimension 1 is 2147483648)"},
        {"a", 2, ne_big, GGML_F64, 0, "x.gguf: tensor 'a' is too large (4611686018427387904 blocks of F64)"},
        {"a", 1, ne16, GGML_Q4_0, 0,
         "x.gguf: tensor 'a' is Q4_0 with rows of 16 values, not a multiple of its block size 32"},
        {"a", 1, ne8, GGML_F32, 4,
         "x.gguf: tensor 'a' starts at offset 4 of the data section, not a multiple of the alignment 32"},
        {"a", 1, ne8, GGML_F32, 128,
         "x.gguf: tensor 'a' (32 bytes at offset 128 of the data section) ends past the end of the file (the data "
         "section holds 128 bytes)"},
        {"a", 1, ne16, GGML_F32, 0,
         "x.gguf: tensors 'b' and 'a' overlap (bytes 0..32 and 0..64 of the data section)"},
        {"b", 1, ne8, GGML_F32, 32, "x.gguf: tensor name 'b' appears twice"},
        {"", 1, ne8, GGML_F32, 32, "x.gguf: the name of tensor 1 is empty"},
        {"0123456789012345678901234567890123456789012345678901234567890123", 1, ne8, GGML_F32, 32,
         "x.gguf: the name of tensor 1 '0123456789012345678901234567890123456789012345678901234...' is 64 bytes long; "
         "GGUF allows at most 63"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        header(&x, 3, 2, 0);
        tensor_info(&x, "b", 1, ne8, GGML_F32, 0);
        tensor_info(&x, cases[i].name, cases[i].n_dims, cases[i].ne, cases[i].type, cases[i].off);
        data(&x, 128);
        CHECK(parse_fails(&x, cases[i].want, got, sizeof got), "case %zu: %s", i, got);
    }

    /* metadata */
    struct {
        uint32_t type;
        const char *key;
        size_t klen;
        const void *value;
        size_t n;
        const char *want;
    } kvs[] = {
        {77, "k", 1, "\0\0\0\0", 4, "x.gguf: metadata 'k' has value type 77, which is not a GGUF type"},
        {GGUF_BOOL, "k", 1, "\2", 1, "x.gguf: metadata 'k' is bool value 2, not 0 or 1"},
        {GGUF_ARRAY, "k", 1, "\x09\0\0\0\1\0\0\0\0\0\0\0", 12, "x.gguf: metadata 'k' is an array of arrays, which vmed does not read"},
        {GGUF_ARRAY, "k", 1, "\x04\0\0\0\0\0\0\0\0\0\0\x10", 12,
         "x.gguf: truncated file: the array 'k' (1152921504606846976 elements) needs 4611686018427387904 bytes at "
         "offset 49, but the file ends at 81"},
        {GGUF_U32, "general.alignment", 17, "\3\0\0\0", 4, "x.gguf: general.alignment is 3; it must be a power of two"},
        {GGUF_U16, "general.alignment", 17, "\x20\0", 2, "x.gguf: general.alignment has type u16; it must be u32"},
        {GGUF_U8, "", 0, "\1", 1, "x.gguf: the key of metadata entry 0 is empty"},
        {GGUF_U8, "a\0b", 3, "\1", 1, "x.gguf: the key of metadata entry 0 'a\\x00b' contains a NUL byte"},
    };
    for (size_t i = 0; i < sizeof kvs / sizeof kvs[0]; i++) {
        header(&x, 3, 0, 1);
        put_u64(&x, kvs[i].klen);
        put(&x, kvs[i].key, kvs[i].klen);
        put_u32(&x, kvs[i].type);
        put(&x, kvs[i].value, kvs[i].n);
        memset(x.b + x.n, 0, 32);
        x.n += 32;
        CHECK(parse_fails(&x, kvs[i].want, got, sizeof got), "kv case %zu: %s", i, got);
    }
    header(&x, 3, 0, 2);
    for (int k = 0; k < 2; k++) {
        put_str(&x, "dup");
        put_u32(&x, GGUF_U8);
        put(&x, "\1", 1);
    }
    CHECK(parse_fails(&x, "x.gguf: metadata key 'dup' appears twice", got, sizeof got), "%s", got);

    /* the file's path names it in messages */
    valid(&x);
    x.b[4] = 9;
    const char *path = test_write_file("bad-version.gguf", x.b, x.n);
    CHECK(gguf_open(&g, path, &err) == -1, "opened");
    char want[1200];
    snprintf(want, sizeof want, "%s: GGUF version 9 is not supported (vmed reads versions 2 and 3)", path);
    CHECK(strcmp(err.msg, want) == 0, "%s", err.msg);
    CHECK(gguf_path_is_gguf(path) && !gguf_path_is_gguf(test_tmpdir()), "gguf_path_is_gguf");
}

/* ------------------------------------------------------- LLaMA from GGUF */

/* llama-tiny converted to GGUF type `type` in the scratch folder. */
static const char *converted(const char *model_rel, const char *type, Error *err) {
    static char paths[4][700];
    static int next;
    const char *dir = fixture_path(model_rel);
    char *path = paths[next++ % 4];
    snprintf(path, sizeof paths[0], "%s/%s-%s.gguf", test_tmpdir(), model_rel, type);
    if (file_exists(path)) return path;
    return llama_convert_gguf(dir, path, gguf_out_type(type), err) ? NULL : path;
}

/* Prompt logits p0/p1 of forward.safetensors against the model at path;
 * fills the worst difference relative to max(1, max|ref|). */
static int prompt_logits_vs_ref(const char *path, const char *ref_path, float *worst, Error *err) {
    Llama m;
    if (llama_load(&m, path, err)) return -1;
    SafeTensors ref;
    if (st_open(&ref, ref_path, err)) {
        llama_free(&m);
        return -1;
    }
    LlamaState s;
    int rc = llama_state_new(&s, &m, 64, 64, test_pool(2), err);
    *worst = 0;
    for (int p = 0; p < 2 && !rc; p++) {
        char name[64];
        snprintf(name, sizeof name, "p%d.input_ids", p);
        const StTensor *ids_t = st_find(&ref, name);
        snprintf(name, sizeof name, "p%d.logits", p);
        const StTensor *lg = st_find(&ref, name);
        if (!ids_t || !lg) {
            rc = error_set(err, "reference tensors missing");
            break;
        }
        int T = (int)ids_t->shape[ids_t->ndim - 1], ids[64];
        for (int i = 0; i < T; i++) {
            int64_t v;
            memcpy(&v, (const int64_t *)ids_t->data + i, 8);
            ids[i] = (int)v;
        }
        size_t N = (size_t)T * m.config.vocab_size;
        float *got = malloc(N * sizeof(float)), *want = malloc(N * sizeof(float));
        memcpy(want, lg->data, N * sizeof(float));
        rc = llama_forward(&m, &s, ids, T, 0, got, err);
        float mx = max_abs(want, N), d = max_abs_diff(got, want, N) / (mx > 1 ? mx : 1);
        if (d > *worst) *worst = d;
        free(got);
        free(want);
    }
    if (s.arena) llama_state_free(&s);
    st_close(&ref);
    llama_free(&m);
    return rc;
}

static void check_gguf_logits(const char *model_rel, const char *type, float bound) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/ref/forward.safetensors", model_rel);
    NEED_FIXTURE(ref_path, rel);
    Error err;
    const char *path = converted(model_rel, type, &err);
    CHECK(path, "convert: %s", err.msg);
    Llama m;
    CHECK(llama_load(&m, path, &err) == 0, "load: %s", err.msg);
    /* zero-copy: the matrices are views into the map */
    const Gguf *g = m.gguf;
    const uint8_t *wq = m.weights.layers[1].wq.data;
    int in_map = g && wq >= g->bytes && wq < g->bytes + g->size && m.rope_adjacent_pairs;
    int tied_ok = strcmp(model_rel, "llama-tiny-gqa") != 0 || m.weights.lm_head.data == m.weights.embed.data;
    DType want_dt = strcmp(type, "f16") == 0 ? DT_F16 : DT_F32;
    int dt_ok = m.weights.layers[0].w_down.dtype == want_dt && m.weights.embed.dtype == want_dt;
    llama_free(&m);
    CHECK(in_map, "the GGUF weights are not used in place (or the RoPE mode is not adjacent pairs)");
    CHECK(tied_ok, "the tied model's LM head is not its embedding");
    CHECK(dt_ok, "the weights were not kept as %s", type);
    float worst;
    CHECK(prompt_logits_vs_ref(path, ref_path, &worst, &err) == 0, "%s", err.msg);
    CHECK(worst <= bound, "%s %s: logits differ from HF by %g x max(1, max|ref|), bound %g", model_rel, type, worst,
          bound);
}

/* F32: the fixture README's bound, as for the HF folder (measured 4.7e-7
 * and 1.4e-6 of max(1, max|ref|)). */
static void t_gguf_llama_tiny_f32_logits(void) { check_gguf_logits("llama-tiny", "f32", 1e-4f); }
static void t_gguf_llama_gqa_f32_logits(void) { check_gguf_logits("llama-tiny-gqa", "f32", 1e-4f); }
/* F16 weights against HF's f32 logits: rounding the weights costs 5.5e-4
 * (llama-tiny) and 1.3e-3 (gqa) of max(1, max|ref|), measured; bounded at
 * 5e-3. The tight check is the next test. */
static void t_gguf_llama_tiny_f16_logits(void) { check_gguf_logits("llama-tiny", "f16", 5e-3f); }
static void t_gguf_llama_gqa_f16_logits(void) { check_gguf_logits("llama-tiny-gqa", "f16", 5e-3f); }

/* The f16 GGUF (permuted q/k, RoPE on adjacent pairs) computes what the
 * same F16 weights compute from an HF folder (halves): measured 3.9e-7 and
 * 8.0e-7 of max(1, max|ref|); only the order of the q.k sums differs. */
static void t_gguf_f16_equals_hf_folder_at_f16(void) {
    const char *models[2] = {"llama-tiny", "llama-tiny-gqa"};
    int ids[11] = {1, 10987, 886, 29901, 13, 13, 2277, 29937, 13291, 29901, 13};
    for (int k = 0; k < 2 && !test_failed(); k++) {
        NEED_FIXTURE(dir, models[k]);
        Error err;
        char hf[700];
        snprintf(hf, sizeof hf, "%s/%s-hf-f16", test_tmpdir(), models[k]);
        CHECK(test_write_llama_as(dir, hf, DT_F16, 0, 1, &err) == 0, "%s", err.msg);
        const char *gg = converted(models[k], "f16", &err);
        CHECK(gg, "%s", err.msg);
        const char *paths[2] = {gg, hf};
        float *logits[2] = {NULL, NULL};
        size_t N = 0;
        for (int j = 0; j < 2; j++) {
            Llama m;
            CHECK(llama_load(&m, paths[j], &err) == 0, "%s", err.msg);
            LlamaState s;
            N = (size_t)11 * m.config.vocab_size;
            logits[j] = malloc(N * sizeof(float));
            int rc = llama_state_new(&s, &m, 32, 8, test_pool(2), &err) || llama_forward(&m, &s, ids, 11, 0, logits[j], &err);
            llama_state_free(&s);
            llama_free(&m);
            CHECK(rc == 0, "%s", err.msg);
        }
        float mx = max_abs(logits[1], N), d = max_abs_diff(logits[0], logits[1], N);
        free(logits[0]);
        free(logits[1]);
        CHECK(d <= 1e-5f * (mx > 1 ? mx : 1), "%s: f16 GGUF vs HF folder at F16: %g (max %g)", models[k], d, mx);
    }
}

/* Greedy ids identical to HF generate() from the GGUF (f32 and f16). */
static void check_gguf_greedy(const char *model_rel, const char *type) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/ref/generate.json", model_rel);
    NEED_FIXTURE(gen_path, rel);
    Error err;
    const char *path = converted(model_rel, type, &err);
    CHECK(path, "%s", err.msg);
    cJSON *root;
    CHECK(json_load_file(&root, gen_path, 1 << 22, &err) == 0, "%s", err.msg);
    Llama m;
    if (llama_load(&m, path, &err)) cJSON_Delete(root);
    CHECK(m.gguf, "%s", err.msg);
    char msg[300];
    int n_cases = test_llama_greedy_cases(&m, cJSON_GetObjectItem(root, "generations"), 2, msg, sizeof msg);
    cJSON_Delete(root);
    llama_free(&m);
    CHECK(n_cases >= 0, "%s %s %s", model_rel, type, msg);
    CHECK(n_cases == 2, "expected 2 generation cases, found %d", n_cases);
}

static void t_gguf_llama_tiny_greedy(void) { check_gguf_greedy("llama-tiny", "f32"); }
static void t_gguf_llama_gqa_greedy(void) { check_gguf_greedy("llama-tiny-gqa", "f32"); }
static void t_gguf_llama_tiny_greedy_f16(void) { check_gguf_greedy("llama-tiny", "f16"); }

/* A Q4_0 matrix spliced into a float file loads (it was refused before the kernels existed). */
static void t_gguf_quantized_weight_loads(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    Error err;
    const char *src = converted("llama-tiny", "f32", &err);
    CHECK(src, "%s", err.msg);
    Gguf *g;
    CHECK(gguf_open(&g, src, &err) == 0, "%s", err.msg);
    char path[700];
    snprintf(path, sizeof path, "%s/llama-tiny-q4_0-q.gguf", test_tmpdir());
    GgufWriter *w;
    int rc = gguf_writer_open(&w, path, &err);
    /* copy the metadata through the writer's typed calls */
    for (int64_t i = 0; i < g->n_kv && !rc; i++) {
        const GgufKV *kv = &g->kvs[i];
        uint64_t n;
        if (kv->type == GGUF_STRING) {
            const char *s;
            gguf_get_string(g, kv->key, &s, &n, &err);
            char buf[256];
            snprintf(buf, sizeof buf, "%.*s", (int)n, s);
            rc = gguf_writer_add_string(w, kv->key, buf, &err);
        } else if (kv->type == GGUF_ARRAY && kv->elem_type == GGUF_STRING) {
            const char **strs = malloc(kv->count * sizeof *strs);
            size_t *lens = malloc(kv->count * sizeof *lens);
            for (uint64_t j = 0; j < kv->count; j++) {
                strs[j] = gguf_array_string(kv, j, &n);
                lens[j] = (size_t)n;
            }
            rc = gguf_writer_add_string_array(w, kv->key, strs, lens, kv->count, &err);
            free(strs);
            free(lens);
        } else if (kv->type == GGUF_ARRAY) {
            rc = gguf_writer_add_array(w, kv->key, kv->elem_type, kv->data, kv->count, &err);
        } else if (kv->type == GGUF_U32) {
            rc = gguf_writer_add_u32(w, kv->key, (uint32_t)gguf_kv_number(kv), &err);
        } else if (kv->type == GGUF_F32) {
            rc = gguf_writer_add_f32(w, kv->key, (float)gguf_kv_number(kv), &err);
        } else if (kv->type == GGUF_BOOL) {
            rc = gguf_writer_add_bool(w, kv->key, kv->data[0], &err);
        } else {
            rc = error_set(&err, "unexpected metadata type %u", kv->type);
        }
    }
    for (int64_t i = 0; i < g->n_tensors && !rc; i++) {
        const GgufTensor *t = &g->tensors[i];
        int q = strcmp(t->name, "blk.0.attn_q.weight") == 0;
        rc = gguf_writer_add_tensor(w, t->name, q ? GGML_Q4_0 : t->type, t->n_dims, t->ne, &err);
    }
    for (int64_t i = 0; i < g->n_tensors && !rc; i++) {
        const GgufTensor *t = &g->tensors[i];
        if (strcmp(t->name, "blk.0.attn_q.weight") == 0) {
            uint8_t zeros[64 * 2 * 18] = {0};
            rc = gguf_writer_write(w, zeros, sizeof zeros, &err);
        } else {
            rc = gguf_writer_write(w, t->data, (size_t)t->nbytes, &err);
        }
    }
    gguf_close(g);
    if (rc && w) gguf_writer_abort(w);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(gguf_writer_close(w, &err) == 0, "%s", err.msg);
    /* Q4_0 is computed with now (tests/test_quant.c checks the numbers and
     * the message for a type vmed refuses): the all-zero matrix loads. */
    Llama m;
    CHECK(llama_load(&m, path, &err) == 0, "%s", err.msg);
    CHECK(m.weights.layers[0].wq.dtype == DT_Q4_0, "attn_q is %s", dtype_name(m.weights.layers[0].wq.dtype));
    llama_free(&m);
    /* and the tokenizer of the copy still loads */
    Tokenizer *tok;
    CHECK(tokenizer_load(&tok, path, &err) == 0, "%s", err.msg);
    tokenizer_free(tok);
}

/* ------------------------------------------------------------ tokenizer */

static void t_gguf_tokenizer_matches_tokenizer_model(void) {
    NEED_FIXTURE(ref_path, "llama-tiny/ref/tokenization.json");
    NEED_FIXTURE(dir, "llama-tiny");
    Error err;
    const char *gg = converted("llama-tiny", "f32", &err);
    CHECK(gg, "%s", err.msg);
    Tokenizer *a, *b;
    CHECK(tokenizer_load(&a, dir, &err) == 0, "%s", err.msg);
    if (tokenizer_load(&b, gg, &err)) tokenizer_free(a);
    CHECK(b, "%s", err.msg);
    cJSON *root = NULL;
    int ok = json_load_file(&root, ref_path, 1 << 22, &err) == 0;
    int n_cases = 0, same_meta = tokenizer_vocab_size(a) == tokenizer_vocab_size(b) &&
                                 tokenizer_bos(a) == tokenizer_bos(b) && tokenizer_eos(a) == tokenizer_eos(b) &&
                                 tokenizer_unk(a) == tokenizer_unk(b) && tokenizer_pad(a) == tokenizer_pad(b);
    char msg[300] = "";
    const cJSON *c, *cases = ok ? cJSON_GetObjectItem(root, "cases") : NULL;
    cJSON_ArrayForEach(c, cases) {
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(c, "text"));
        int want[512];
        int nw = test_json_ints(cJSON_GetObjectItem(c, "ids_with_bos"), want, 512);
        for (int bos = 0; bos < 2 && ok; bos++) {
            int *ia = NULL, *ib = NULL, na = 0, nb = 0;
            ok = tokenizer_encode(a, text, bos, &ia, &na, &err) == 0 && tokenizer_encode(b, text, bos, &ib, &nb, &err) == 0;
            ok = ok && na == nb && (na == 0 || memcmp(ia, ib, (size_t)na * sizeof(int)) == 0);
            if (ok && bos) ok = nb == nw && memcmp(ib, want, (size_t)nw * sizeof(int)) == 0;
            char *da = NULL, *db = NULL;
            ok = ok && tokenizer_decode(a, ia, na, 0, &da, &err) == 0 && tokenizer_decode(b, ib, nb, 0, &db, &err) == 0 &&
                 strcmp(da, db) == 0;
            if (!ok) snprintf(msg, sizeof msg, "case %d (bos %d) '%.60s'", n_cases, bos, text ? text : "");
            free(ia), free(ib), free(da), free(db);
        }
        n_cases++;
    }
    cJSON_Delete(root);
    tokenizer_free(a);
    tokenizer_free(b);
    CHECK(same_meta, "vocabulary size or special ids differ");
    CHECK(ok, "GGUF and tokenizer.model tokenizers differ: %s %s", msg, err.msg);
    CHECK(n_cases > 5, "only %d tokenization cases", n_cases);
}

static void t_gguf_tokenizer_bad_metadata(void) {
    char path[700];
    snprintf(path, sizeof path, "%s/tok-bad.gguf", test_tmpdir());
    Error err;
    GgufWriter *w;
    const char *toks[] = {"<unk>", "<s>", "</s>", "a"};
    int32_t types[] = {2, 3, 3, 1};
    float scores[] = {0, 0, 0, -1};
    CHECK(gguf_writer_open(&w, path, &err) == 0, "%s", err.msg);
    int rc = gguf_writer_add_string(w, "tokenizer.ggml.model", "gpt2", &err) ||
             gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", toks, NULL, 4, &err) ||
             gguf_writer_add_array(w, "tokenizer.ggml.scores", GGUF_F32, scores, 3, &err) ||
             gguf_writer_add_array(w, "tokenizer.ggml.token_type", GGUF_I32, types, 4, &err);
    if (rc) gguf_writer_abort(w);
    CHECK(rc == 0 && gguf_writer_close(w, &err) == 0, "%s", err.msg);
    Tokenizer *t;
    char want[1200];
    CHECK(tokenizer_load(&t, path, &err) == -1, "a gpt2 tokenizer loaded");
    snprintf(want, sizeof want, "%s: tokenizer.ggml.model is 'gpt2'; vmed reads 'llama' (SentencePiece) tokenizers only",
             path);
    CHECK(strcmp(err.msg, want) == 0, "%s", err.msg);
    /* the scores list one short */
    CHECK(gguf_writer_open(&w, path, &err) == 0, "%s", err.msg);
    rc = gguf_writer_add_string(w, "tokenizer.ggml.model", "llama", &err) ||
         gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", toks, NULL, 4, &err) ||
         gguf_writer_add_array(w, "tokenizer.ggml.scores", GGUF_F32, scores, 3, &err);
    if (rc) gguf_writer_abort(w);
    CHECK(rc == 0 && gguf_writer_close(w, &err) == 0, "%s", err.msg);
    CHECK(tokenizer_load(&t, path, &err) == -1, "a short scores list loaded");
    snprintf(want, sizeof want, "%s: metadata 'tokenizer.ggml.scores' has 3 entries but there are 4 tokens", path);
    CHECK(strcmp(err.msg, want) == 0, "%s", err.msg);
}

/* ----------------------------------------------------------------- CLI */

/* The command's stdout is not looked at here. */
static int run_vmed(const char *args, char *errout, size_t cap) {
    static char out[1 << 16];
    return test_vmed(args, out, sizeof out, errout, cap);
}

static void t_gguf_cli_convert(void) {
    NEED_FIXTURE(dir, "llama-tiny-gqa");
    char args[2048], errout[4096], out[700];
    snprintf(out, sizeof out, "%s/cli.gguf", test_tmpdir());
    snprintf(args, sizeof args, "convert '%s' '%s' --type f8", dir, out);
    CHECK(run_vmed(args, errout, sizeof errout) == 2 && strstr(errout, "--type must be f32, f16, bf16, q8_0, q4_0 or "
                                                                       "q4_k_m, got 'f8'"), "%s", errout);
    CHECK(!file_exists(out), "a failed convert left %s", out);
    snprintf(args, sizeof args, "convert '%s' '%s' --type bf16", dir, out);
    CHECK(run_vmed(args, errout, sizeof errout) == 0, "%s", errout);
    Llama m;
    Error err;
    CHECK(llama_load(&m, out, &err) == 0, "%s", err.msg);
    int ok = m.weights.layers[0].wq.dtype == DT_BF16 && m.config.n_kv_heads == 2 && m.config.tie_embeddings;
    llama_free(&m);
    CHECK(ok, "the bf16 GGUF of the gqa fixture loads wrong");
    snprintf(args, sizeof args, "convert '%s' '%s'", "/nonexistent", out);
    CHECK(run_vmed(args, errout, sizeof errout) == 1 &&
              strstr(errout, "vmed convert: /nonexistent/config.json: cannot open"), "%s", errout);
}

void suite_gguf(void) {
    RUN(t_gguf_type_table);
    RUN(t_gguf_write_read_round_trip);
    RUN(t_gguf_writer_refuses_misuse);
    RUN(t_gguf_reads_gguf_py_file);
    RUN(t_gguf_bad_input_messages);
    RUN(t_gguf_llama_tiny_f32_logits);
    RUN(t_gguf_llama_gqa_f32_logits);
    RUN(t_gguf_llama_tiny_f16_logits);
    RUN(t_gguf_llama_gqa_f16_logits);
    RUN(t_gguf_f16_equals_hf_folder_at_f16);
    RUN(t_gguf_llama_tiny_greedy);
    RUN(t_gguf_llama_gqa_greedy);
    RUN(t_gguf_llama_tiny_greedy_f16);
    RUN(t_gguf_quantized_weight_loads);
    RUN(t_gguf_tokenizer_matches_tokenizer_model);
    RUN(t_gguf_tokenizer_bad_metadata);
    RUN(t_gguf_cli_convert);
}
