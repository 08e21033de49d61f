/* safetensors reader and writer, and the JSON helpers the loaders share.
 * Malformed files are built byte by byte here, so each validation rule is
 * checked against the message it must give. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "test.h"
#include "base/file.h"
#include "formats/json_util.h"
#include "formats/safetensors.h"

void suite_safetensors(void);

/* ---- helpers ---- */

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* A file image: u64 LE length of json, json itself (unpadded), then
 * data_len bytes of a counting pattern. *n gets the total size. */
static uint8_t *build_file(const char *json, size_t data_len, size_t *n) {
    size_t jl = strlen(json);
    *n = 8 + jl + data_len;
    uint8_t *b = malloc(*n ? *n : 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)jl >> (8 * i));
    memcpy(b + 8, json, jl);
    for (size_t i = 0; i < data_len; i++) b[8 + jl + i] = (uint8_t)(i * 7 + 1);
    return b;
}

/* Expects both st_open on a file holding bytes and st_parse of the bytes to
 * fail with a message that starts with the file's name and contains want1
 * and want2 (NULL: not checked). Leaves the st_open message in msg. */
static int fails_with(const char *name, const void *bytes, size_t n, const char *want1, const char *want2,
                      char *msg, size_t cap) {
    const char *path = test_write_file(name, bytes, n);
    SafeTensors st;
    Error err = {{0}};
    int ok = st_open(&st, path, &err) != 0;
    snprintf(msg, cap, "%s", err.msg);
    ok = ok && starts_with(err.msg, path) && strncmp(err.msg + strlen(path), ": ", 2) == 0;
    ok = ok && (!want1 || strstr(err.msg, want1)) && (!want2 || strstr(err.msg, want2));
    ok = ok && st.n_tensors == 0 && st.n_files == 0; /* left empty */

    Error err2 = {{0}};
    int parse_failed = st_parse(&st, bytes, n, name, &err2) != 0;
    ok = ok && parse_failed && starts_with(err2.msg, name);
    ok = ok && (!want1 || strstr(err2.msg, want1)) && (!want2 || strstr(err2.msg, want2));
    return ok;
}

/* Builds a file from json + data_len bytes and runs fails_with on it. */
static int header_fails_with(const char *json, size_t data_len, const char *want1, const char *want2, char *msg,
                             size_t cap) {
    size_t n;
    uint8_t *b = build_file(json, data_len, &n);
    int ok = fails_with("bad.safetensors", b, n, want1, want2, msg, cap);
    free(b);
    return ok;
}

#define BAD(json, len, w1, w2)                                                  \
    do {                                                                        \
        char msg_[1024];                                                        \
        CHECK(header_fails_with(json, len, w1, w2, msg_, sizeof msg_),          \
              "header %s: got '%s'", json, msg_);                               \
    } while (0)

static const char *make_dir(const char *name) {
    static char bufs[4][512];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, sizeof bufs[0], "%s/%s", test_tmpdir(), name);
    mkdir(p, 0700);
    return p;
}

static int dir_entry_count(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* ---- the fixtures ---- */

/* Every tensor's data lies inside its file's map. */
static int all_inside(const SafeTensors *st) {
    for (int i = 0; i < st->n_tensors; i++) {
        const StTensor *t = &st->tensors[i];
        const MappedFile *f = &st->files[t->file];
        const uint8_t *p = t->data;
        if (p < f->data || p + t->nbytes > f->data + f->size) return 0;
    }
    return 1;
}

static void t_safetensors_fixture_llama(void) {
    NEED_FIXTURE(path, "llama-tiny/model.safetensors");
    SafeTensors st;
    Error err;
    CHECK(st_open(&st, path, &err) == 0, "%s", err.msg);
    int ok = st.n_tensors == 21 && st.n_files == 1 && all_inside(&st);
    const StTensor *e = st_find(&st, "model.embed_tokens.weight");
    const StTensor *lm = st_find(&st, "lm_head.weight");
    const char *fmt = st_metadata(&st, "format");
    int fmt_ok = fmt && strcmp(fmt, "pt") == 0;
    int n_tensors = st.n_tensors;
    float first = 0, last = 0;
    if (e && e->dtype == DT_F32 && e->ndim == 2 && e->shape[0] == 32000 && e->shape[1] == 64 &&
        e->nbytes == 32000u * 64 * 4) {
        memcpy(&first, e->data, 4);
        memcpy(&last, (const uint8_t *)e->data + e->nbytes - 4, 4);
    }
    Tensor v = e ? st_tensor_view(e) : (Tensor){0};
    int view_ok = e && tensor_numel(&v) == 32000 * 64 && v.data == e->data && st_tensor_aligned(e);
    int missing_ok = st_find(&st, "model.embed_tokens") == NULL && st_find(&st, "") == NULL;
    int lm_ok = lm && lm->offset == 0;
    st_close(&st);
    CHECK(ok, "%d tensors (want 21), or data outside the file", n_tensors);
    CHECK(e, "model.embed_tokens.weight not found");
    CHECK(fabsf(first - -0.1117185652256012f) < 1e-7f && fabsf(last - -0.545744776725769f) < 1e-7f,
          "embed_tokens values %g %g", first, last);
    CHECK(view_ok && missing_ok && lm_ok, "view / find / offsets wrong");
    CHECK(fmt_ok, "metadata format is not 'pt'");

    /* The folder opens the same file. */
    NEED_FIXTURE(dir, "llama-tiny");
    CHECK(st_open(&st, dir, &err) == 0, "%s", err.msg);
    n_tensors = st.n_tensors;
    st_close(&st);
    CHECK(n_tensors == 21, "folder: %d tensors", n_tensors);
}

/* forward.safetensors holds the token ids forward.json lists. */
static void t_safetensors_fixture_forward_ids(void) {
    NEED_FIXTURE(path, "llama-tiny/ref/forward.safetensors");
    NEED_FIXTURE(json_path, "llama-tiny/ref/forward.json");
    SafeTensors st;
    Error err;
    cJSON *root;
    CHECK(json_load_file(&root, json_path, 1 << 20, &err) == 0, "%s", err.msg);
    CHECK(st_open(&st, path, &err) == 0, "%s", err.msg);
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(root, "logit_prompts");
    int bad = -1, compared = 0;
    for (int p = 0; p < 2 && bad < 0; p++) {
        char name[32];
        snprintf(name, sizeof name, "p%d.input_ids", p);
        const StTensor *t = st_find(&st, name);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(prompts, p), "input_ids");
        if (!t || t->dtype != DT_I64 || t->ndim != 1 || t->shape[0] != cJSON_GetArraySize(ids)) {
            bad = p;
            break;
        }
        for (int i = 0; i < t->shape[0]; i++) {
            int64_t v;
            memcpy(&v, (const uint8_t *)t->data + 8 * i, 8);
            if (v != (int64_t)cJSON_GetArrayItem(ids, i)->valuedouble) bad = p;
            compared++;
        }
    }
    int n = st.n_tensors;
    const char *fixture = st_metadata(&st, "fixture");
    int fixture_ok = fixture && strcmp(fixture, "llama-tiny") == 0;
    st_close(&st);
    cJSON_Delete(root);
    CHECK(n == 10, "%d tensors, want 10", n);
    CHECK(bad < 0 && compared == 20, "p%d.input_ids differ from forward.json (%d compared)", bad, compared);
    CHECK(fixture_ok, "metadata 'fixture' missing");
}

static void open_fixture(const char *rel, int want_tensors, const char *want_name, const char *absent_name) {
    const char *path = fixture_path(rel);
    if (!path) {
        test_skip("fixture %s not found (set VMED_FIXTURES)", rel);
        return;
    }
    SafeTensors st;
    Error err;
    CHECK(st_open(&st, path, &err) == 0, "%s", err.msg);
    int n = st.n_tensors, inside = all_inside(&st);
    int has = !want_name || st_find(&st, want_name) != NULL;
    int lacks = !absent_name || st_find(&st, absent_name) == NULL;
    st_close(&st);
    CHECK(n == want_tensors, "%s: %d tensors, want %d", rel, n, want_tensors);
    CHECK(inside && has && lacks, "%s: data outside the file or names wrong", rel);
}

static void t_safetensors_fixture_gqa(void) {
    open_fixture("llama-tiny-gqa/model.safetensors", 20, "model.embed_tokens.weight", "lm_head.weight");
}

static void t_safetensors_fixture_git(void) {
    open_fixture("git-tiny/model.safetensors", 81, NULL, NULL);
    if (!test_failed()) open_fixture("git-tiny/ref/forward.safetensors", 10, NULL, NULL);
}

static void t_safetensors_fixture_pix2struct(void) {
    open_fixture("pix2struct-tiny/model.safetensors", 55, NULL, NULL);
    if (!test_failed()) open_fixture("pix2struct-tiny/ref/forward.safetensors", 20, NULL, NULL);
}

static void t_safetensors_fixture_lora(void) {
    open_fixture("llama-tiny-lora/adapter_model.safetensors", 8,
                 "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", NULL);
}

/* ---- round trips ---- */

enum { N_RT = 7 };

typedef struct {
    StTensor t[N_RT];
    uint8_t *data[N_RT];
} RoundTrip;

static void fill_tensor(StTensor *t, uint8_t **owned, const char *name, DType dt, int ndim, const int64_t *shape,
                        unsigned seed) {
    memset(t, 0, sizeof *t);
    t->name = (char *)name;
    t->dtype = dt;
    t->ndim = ndim;
    size_t n = dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        n *= (size_t)shape[i];
    }
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed + i * 31 + (i >> 8));
    t->data = p;
    t->nbytes = n;
    *owned = p;
}

static void make_round_trip(RoundTrip *rt) {
    static const int64_t s_mat[] = {2, 3}, s_vec[] = {5}, s_3d[] = {3, 1, 2}, s_ids[] = {4}, s_empty[] = {0, 7},
                         s_u8[] = {3};
    fill_tensor(&rt->t[0], &rt->data[0], "layers.0.weight", DT_F32, 2, s_mat, 1);
    fill_tensor(&rt->t[1], &rt->data[1], "half", DT_F16, 1, s_vec, 2);
    fill_tensor(&rt->t[2], &rt->data[2], "brain \"float\"", DT_BF16, 3, s_3d, 3);
    fill_tensor(&rt->t[3], &rt->data[3], "ids", DT_I64, 1, s_ids, 4);
    fill_tensor(&rt->t[4], &rt->data[4], "scalar", DT_F32, 0, NULL, 5);
    fill_tensor(&rt->t[5], &rt->data[5], "empty", DT_F32, 2, s_empty, 6);
    fill_tensor(&rt->t[6], &rt->data[6], "bytes\n\xc3\xa9", DT_U8, 1, s_u8, 7);
}

static void free_round_trip(RoundTrip *rt) {
    for (int i = 0; i < N_RT; i++) free(rt->data[i]);
}

/* Every tensor of rt is in st, with the same dtype, shape and bytes. */
static int same_tensors(const SafeTensors *st, const RoundTrip *rt, char *why, size_t cap) {
    if (st->n_tensors != N_RT) {
        snprintf(why, cap, "%d tensors, want %d", st->n_tensors, N_RT);
        return 0;
    }
    for (int i = 0; i < N_RT; i++) {
        const StTensor *a = &rt->t[i], *b = st_find(st, a->name);
        int same = b && b->dtype == a->dtype && b->ndim == a->ndim && b->nbytes == a->nbytes &&
                   (a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
        for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
        if (!same) {
            snprintf(why, cap, "tensor '%s' differs", a->name);
            return 0;
        }
    }
    return 1;
}

static void t_safetensors_save_round_trip(void) {
    RoundTrip rt;
    make_round_trip(&rt);
    char path[512];
    snprintf(path, sizeof path, "%s/saved.safetensors", test_tmpdir());
    Error err;
    int saved = st_save(path, rt.t, N_RT, &err) == 0;
    if (!saved) free_round_trip(&rt);
    CHECK(saved, "%s", err.msg);

    SafeTensors st;
    int opened = st_open(&st, path, &err) == 0;
    if (!opened) free_round_trip(&rt);
    CHECK(opened, "%s", err.msg);
    char why[256] = "";
    int same = same_tensors(&st, &rt, why, sizeof why);
    const char *fmt = st_metadata(&st, "format");
    int fmt_ok = fmt && strcmp(fmt, "pt") == 0 && st.n_meta == 1;
    /* HF layout: header padded to 8 and starting with the metadata. */
    const uint8_t *raw = st.files[0].data;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | raw[i];
    int layout_ok = hlen % 8 == 0 && memcmp(raw + 8, "{\"__metadata__\":{\"format\":\"pt\"},", 32) == 0 &&
                    raw[8 + hlen - 1] == ' ' && st_tensor_aligned(st_find(&st, "layers.0.weight"));
    const StTensor *sc = st_find(&st, "scalar");
    Tensor v = sc ? st_tensor_view(sc) : (Tensor){0};
    int scalar_ok = sc && sc->ndim == 0 && sc->nbytes == 4 && tensor_numel(&v) == 1;
    st_close(&st);
    free_round_trip(&rt);
    CHECK(same, "%s", why);
    CHECK(fmt_ok, "metadata not {format: pt}");
    CHECK(layout_ok, "header not padded to 8 / not in HF order");
    CHECK(scalar_ok, "0-d tensor wrong");
}

static void t_safetensors_stream_round_trip(void) {
    RoundTrip rt;
    make_round_trip(&rt);
    char path[512];
    snprintf(path, sizeof path, "%s/streamed.safetensors", test_tmpdir());
    Error err;
    StWriter *w;
    CHECK(st_writer_open(&w, path, &err) == 0, "%s", err.msg);
    int ok = 1;
    for (int i = 0; i < N_RT && ok; i++)
        ok = st_writer_add(w, rt.t[i].name, rt.t[i].dtype, rt.t[i].ndim, rt.t[i].shape, &err) == 0;
    ok = ok && st_writer_set_metadata(w, "fixture", "round \"trip\"", &err) == 0;
    ok = ok && st_writer_set_metadata(w, "format", "pt", &err) == 0;

    /* All data as one stream, written in odd chunk sizes that straddle
     * tensor boundaries. */
    size_t total = 0;
    for (int i = 0; i < N_RT; i++) total += rt.t[i].nbytes;
    uint8_t *all = malloc(total);
    size_t at = 0;
    for (int i = 0; i < N_RT; i++) {
        memcpy(all + at, rt.t[i].data, rt.t[i].nbytes);
        at += rt.t[i].nbytes;
    }
    static const size_t chunks[] = {1, 3, 7, 0, 13, 5};
    for (size_t pos = 0, k = 0; pos < total && ok; k++) {
        size_t c = chunks[k % 6];
        if (c > total - pos) c = total - pos;
        ok = st_writer_write(w, all + pos, c, &err) == 0;
        pos += c;
    }
    free(all);
    if (!ok) {
        st_writer_abort(w);
        free_round_trip(&rt);
    }
    CHECK(ok, "%s", err.msg);
    int closed = st_writer_close(w, &err) == 0;
    if (!closed) free_round_trip(&rt);
    CHECK(closed, "%s", err.msg);

    SafeTensors st;
    int opened = st_open(&st, path, &err) == 0;
    if (!opened) free_round_trip(&rt);
    CHECK(opened, "%s", err.msg);
    char why[256] = "";
    int same = same_tensors(&st, &rt, why, sizeof why);
    const char *fx = st_metadata(&st, "fixture"), *fmt = st_metadata(&st, "format");
    int meta_ok = fx && strcmp(fx, "round \"trip\"") == 0 && fmt && strcmp(fmt, "pt") == 0 && st.n_meta == 2;
    st_close(&st);
    free_round_trip(&rt);
    CHECK(same, "%s", why);
    CHECK(meta_ok, "metadata not kept");
}

/* A file with no tensors at all is valid (only metadata). */
static void t_safetensors_empty_file(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/none.safetensors", test_tmpdir());
    Error err;
    CHECK(st_save(path, NULL, 0, &err) == 0, "%s", err.msg);
    SafeTensors st;
    CHECK(st_open(&st, path, &err) == 0, "%s", err.msg);
    int n = st.n_tensors;
    const StTensor *t = st_find(&st, "x");
    st_close(&st);
    CHECK(n == 0 && !t, "empty file has tensors");
}

/* ---- the writer failing ---- */

static void t_safetensors_writer_too_few_bytes(void) {
    const char *dir = make_dir("wfail");
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    Error err;
    StWriter *w;
    const int64_t shape[] = {4};
    CHECK(st_writer_open(&w, path, &err) == 0, "%s", err.msg);
    CHECK(st_writer_add(w, "a", DT_F32, 1, shape, &err) == 0, "%s", err.msg);
    float x[2] = {1, 2};
    int wrote = st_writer_write(w, x, sizeof x, &err) == 0;
    CHECK(wrote, "%s", err.msg);
    CHECK(dir_entry_count(dir) == 1, "the temporary file should exist while writing");
    CHECK(st_writer_close(w, &err) != 0, "closing after 8 of 16 bytes succeeded");
    CHECK(starts_with(err.msg, path) && strstr(err.msg, "only 8 of the 16"), "message: %s", err.msg);
    CHECK(!file_exists(path), "a file was left at the target path");
    CHECK(dir_entry_count(dir) == 0, "a temporary file was left behind");
}

static void t_safetensors_writer_too_many_bytes(void) {
    const char *dir = make_dir("wmany");
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    Error err;
    StWriter *w;
    const int64_t shape[] = {2};
    CHECK(st_writer_open(&w, path, &err) == 0, "%s", err.msg);
    CHECK(st_writer_add(w, "a", DT_F16, 1, shape, &err) == 0, "%s", err.msg);
    uint8_t bytes[5] = {0};
    CHECK(st_writer_write(w, bytes, 5, &err) != 0, "writing 5 of 4 declared bytes succeeded");
    CHECK(strstr(err.msg, "would pass the 4 declared"), "message: %s", err.msg);
    CHECK(st_writer_close(w, &err) != 0, "close after a failed write succeeded");
    CHECK(strstr(err.msg, "earlier write failed"), "message: %s", err.msg);
    CHECK(dir_entry_count(dir) == 0, "files left behind");
}

static void t_safetensors_writer_misuse(void) {
    const char *dir = make_dir("wmisuse");
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    Error err;
    StWriter *w;
    const int64_t shape[] = {1}, neg[] = {-1};
    CHECK(st_writer_open(&w, path, &err) == 0, "%s", err.msg);
    int ok = st_writer_add(w, "a", DT_F32, 1, shape, &err) == 0;
    ok = ok && st_writer_add(w, "b", DT_F32, 1, neg, &err) != 0 && strstr(err.msg, "shape[0] is -1");
    ok = ok && st_writer_add(w, "__metadata__", DT_F32, 1, shape, &err) != 0;
    ok = ok && st_writer_add(w, "c", DT_F32, TENSOR_MAX_DIMS + 1, shape, &err) != 0;
    ok = ok && st_writer_add(w, "bad\xff", DT_F32, 1, shape, &err) != 0 && strstr(err.msg, "UTF-8");
    ok = ok && st_writer_add(w, "a", DT_F32, 1, shape, &err) == 0; /* caught when the header is built */
    ok = ok && st_writer_write(w, "abcd", 4, &err) != 0 && strstr(err.msg, "tensor 'a' declared twice");
    st_writer_abort(w);
    CHECK(ok, "misuse not refused: %s", err.msg);
    CHECK(dir_entry_count(dir) == 0, "abort left files behind");

    CHECK(st_writer_open(&w, path, &err) == 0, "%s", err.msg);
    ok = st_writer_add(w, "a", DT_F32, 1, shape, &err) == 0 && st_writer_write(w, "ab", 2, &err) == 0;
    ok = ok && st_writer_add(w, "late", DT_F32, 1, shape, &err) != 0 && strstr(err.msg, "declare every tensor");
    ok = ok && st_writer_set_metadata(w, "k", "v", &err) != 0;
    st_writer_abort(w);
    CHECK(ok, "late declaration not refused: %s", err.msg);
    CHECK(dir_entry_count(dir) == 0, "abort left files behind");

    /* st_save refuses data that does not match the shape. */
    StTensor t = {.name = "x", .dtype = DT_F32, .ndim = 1, .shape = {3}, .data = "abcdefgh", .nbytes = 8};
    CHECK(st_save(path, &t, 1, &err) != 0, "st_save accepted 8 bytes for 3 floats");
    CHECK(strstr(err.msg, "has 8 bytes of data but its shape needs 12"), "message: %s", err.msg);
    CHECK(dir_entry_count(dir) == 0, "st_save left files behind");
}

/* ---- malformed files ---- */

static void t_safetensors_bad_short(void) {
    char msg[1024];
    CHECK(fails_with("short.safetensors", "\x10\0\0\0\0", 5, "5 bytes", "too short", msg, sizeof msg), "%s", msg);
    CHECK(fails_with("empty.safetensors", "", 0, "0 bytes", "too short", msg, sizeof msg), "%s", msg);
}

static void t_safetensors_bad_header_length(void) {
    char msg[1024];
    uint8_t b[18] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    CHECK(fails_with("len.safetensors", b, sizeof b, "header length 100", "runs past the end of the file (18 bytes)",
                     msg, sizeof msg), "%s", msg);
    /* 200 MB claimed in a tiny file: refused as absurd before anything is read. */
    uint8_t big[16] = {0x00, 0xc2, 0xeb, 0x0b, 0, 0, 0, 0, '{', '}'};
    CHECK(fails_with("big.safetensors", big, sizeof big, "header length 200000000", "absurd", msg, sizeof msg),
          "%s", msg);
    uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    CHECK(fails_with("huge.safetensors", huge, sizeof huge, "absurd", NULL, msg, sizeof msg), "%s", msg);
}

static void t_safetensors_bad_json(void) {
    BAD("{\"a\": {\"dtype\": ", 0, "header", "not valid JSON");
    BAD("[1, 2]", 0, "header is an array, expected a JSON object", NULL);
    BAD("\"str\"", 0, "header is a string", NULL);
    BAD("{} x", 0, "not valid JSON", "unexpected text");
    BAD("{\"a\xff\": 1}", 0, "not valid UTF-8", NULL);
    BAD("", 0, "not valid JSON", NULL);
    /* Spaces after the JSON are the padding HF writes: valid. */
    size_t n;
    uint8_t *b = build_file("{}      ", 0, &n);
    SafeTensors st;
    Error err;
    int rc = st_parse(&st, b, n, "pad", &err);
    free(b);
    CHECK(rc == 0, "padded empty header refused: %s", err.msg);
    st_close(&st);
}

static void t_safetensors_bad_entry_fields(void) {
    BAD("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a' has no dtype", NULL);
    BAD("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor 'a' has no shape", NULL);
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 'a' has no data_offsets", NULL);
    BAD("{\"a\":3}", 0, "tensor 'a' is a number", "expected an object");
    BAD("{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is a number", NULL);
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4, "shape is a string", NULL);
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}}", 4, "data_offsets is an object", NULL);
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets is an array not of "
        "length 2", NULL);
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4, "data_offsets are not two "
        "non-negative integers", NULL);
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", 4, "not two non-negative", NULL);
    BAD("{\"__metadata__\":{\"format\":1}}", 0, "__metadata__ value for 'format' is a number", NULL);
    BAD("{\"__metadata__\":[]}", 0, "__metadata__ is an array", NULL);
}

static void t_safetensors_bad_dtype(void) {
    BAD("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4, "tensor 'a'",
        "unsupported dtype 'F8_E4M3'");
    BAD("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unsupported dtype 'f32'", NULL);
}

static void t_safetensors_bad_shape(void) {
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,0]}}", 0, "shape[1] is -3",
        "expected a non-negative integer");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,10]}}", 10, "shape[0] is 2.5",
        "non-negative integer");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "shape[0] is a string", NULL);
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dimensions",
        "at most 8");
    /* A shape product past 2^64 must be caught, not wrapped around to 8. */
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,8]}}", 8, "too large",
        NULL);
}

static void t_safetensors_bad_size(void) {
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20, "tensor 'a'",
        "needs 24 bytes but data_offsets [0, 20) hold 20");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,4]}}", 8, "[8, 4) begin after end", NULL);
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}", 16, "data [0, 24)",
        "runs past the end of the data section (16 bytes)");
}

static void t_safetensors_bad_layout(void) {
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24,
        "tensors 'a' [0, 16) and 'b' [8, 24) overlap", NULL);
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "tensor 'a' appears twice", NULL);
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "4 unused bytes before tensor 'b'",
        "holes");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "data section is 8 bytes",
        "4 unused bytes at the end");
    /* An empty tensor inside another one's range is an overlap too. */
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8, "overlap", NULL);
}

/* Layouts that are valid: any header order, empty tensors between others,
 * an odd header length (misaligned data: allowed, reported by
 * st_tensor_aligned). */
static void t_safetensors_good_layouts(void) {
    const char *json =
        "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
        "\"e\":{\"dtype\":\"F16\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}, \"z\":{\"dtype\":\"I8\",\"shape\":[],"
        "\"data_offsets\":[8,9]}}";
    size_t n;
    uint8_t *b = build_file(json, 9, &n);
    SafeTensors st;
    Error err;
    int rc = st_parse(&st, b, n, "mem", &err);
    if (rc != 0) free(b);
    CHECK(rc == 0, "%s", err.msg);
    const StTensor *a = st_find(&st, "a"), *e = st_find(&st, "e"), *z = st_find(&st, "z");
    int ok = st.n_tensors == 4 && a && e && z && e->nbytes == 0 && z->ndim == 0 && z->nbytes == 1;
    ok = ok && strcmp(st.tensors[0].name, "a") == 0 && strcmp(st.tensors[3].name, "z") == 0;
    ok = ok && a->data == b + 8 + strlen(json) && strcmp(st_file_path(&st, a), "mem") == 0;
    ok = ok && st_tensor_aligned(a) == ((8 + strlen(json)) % 4 == 0); /* malloc'd b is 8-aligned */
    st_close(&st);
    free(b);
    CHECK(ok, "valid layout read wrongly");
}

/* ---- shards ---- */

static const char *shard_folder(const char *name, const char *index_json, int with_shards) {
    const char *dir = make_dir(name);
    char path[600];
    Error err;
    float a[2] = {1, 2}, b[3] = {3, 4, 5}, c[1] = {6};
    StTensor s1[2] = {{.name = "w.a", .dtype = DT_F32, .ndim = 1, .shape = {2}, .data = a, .nbytes = 8},
                      {.name = "w.c", .dtype = DT_F32, .ndim = 0, .data = c, .nbytes = 4}};
    StTensor s2[2] = {{.name = "w.b", .dtype = DT_F32, .ndim = 2, .shape = {1, 3}, .data = b, .nbytes = 12},
                      {.name = "w.c2", .dtype = DT_F32, .ndim = 1, .shape = {1}, .data = c, .nbytes = 4}};
    if (with_shards) {
        snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
        if (st_save(path, s1, 2, &err) != 0) return NULL;
        snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
        if (st_save(path, s2, with_shards == 2 ? 2 : 1, &err) != 0) return NULL;
        if (with_shards == 3) { /* w.a in both shards */
            s1[1] = s2[0];
            if (st_save(path, s1, 2, &err) != 0) return NULL;
        }
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *fp = fopen(path, "wb");
    if (!fp) return NULL;
    fputs(index_json, fp);
    fclose(fp);
    return dir;
}

#define GOOD_INDEX                                                                                   \
    "{\"metadata\": {\"total_size\": 24}, \"weight_map\": {\"w.a\": \"model-00001-of-00002.safetensors\", " \
    "\"w.b\": \"model-00002-of-00002.safetensors\", \"w.c\": \"model-00001-of-00002.safetensors\"}}"

static void t_safetensors_sharded(void) {
    const char *dir = shard_folder("sharded", GOOD_INDEX, 1);
    CHECK(dir, "could not build the shard folder");
    SafeTensors st;
    Error err;
    CHECK(st_open(&st, dir, &err) == 0, "%s", err.msg);
    const StTensor *a = st_find(&st, "w.a"), *b = st_find(&st, "w.b"), *c = st_find(&st, "w.c");
    int ok = st.n_files == 2 && st.n_tensors == 3 && a && b && c && a->file == c->file && a->file != b->file;
    float v[3] = {0};
    if (ok) memcpy(v, b->data, 12);
    ok = ok && v[0] == 3 && v[2] == 5 && b->ndim == 2 && b->shape[1] == 3;
    ok = ok && strstr(st_file_path(&st, b), "model-00002-of-00002.safetensors");
    ok = ok && st_metadata(&st, "format") && strcmp(st_metadata(&st, "format"), "pt") == 0;
    st_close(&st);
    CHECK(ok, "sharded folder read wrongly");

    /* The index file itself opens too. */
    char index[600];
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    CHECK(st_open(&st, index, &err) == 0, "%s", err.msg);
    int n = st.n_tensors;
    st_close(&st);
    CHECK(n == 3, "index path: %d tensors", n);
}

/* Opens folder dir and expects a message starting with its index path and
 * containing want1 and want2. */
static int shard_fails_with(const char *dir, const char *want1, const char *want2, char *msg, size_t cap) {
    char index[600];
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    SafeTensors st;
    Error err = {{0}};
    int failed = st_open(&st, dir, &err) != 0;
    snprintf(msg, cap, "%s", err.msg);
    return failed && starts_with(err.msg, index) && strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2)) &&
           st.n_files == 0;
}

#define BAD_SHARDS(name, json, with, w1, w2)                                                     \
    do {                                                                                         \
        char msg_[1024];                                                                         \
        const char *dir_ = shard_folder(name, json, with);                                       \
        CHECK(dir_, "could not build %s", name);                                                 \
        CHECK(shard_fails_with(dir_, w1, w2, msg_, sizeof msg_), "%s: got '%s'", name, msg_);    \
    } while (0)

static void t_safetensors_sharded_errors(void) {
    BAD_SHARDS("sh_missing", GOOD_INDEX, 0, "shard 'model-00001-of-00002.safetensors' named by weight_map",
               "cannot open");
    BAD_SHARDS("sh_absent",
               "{\"weight_map\": {\"w.a\": \"model-00001-of-00002.safetensors\", "
               "\"w.zzz\": \"model-00002-of-00002.safetensors\"}}",
               1, "tensor 'w.zzz' in model-00002-of-00002.safetensors", "has no such tensor");
    BAD_SHARDS("sh_wrong",
               "{\"weight_map\": {\"w.a\": \"model-00002-of-00002.safetensors\", "
               "\"w.b\": \"model-00001-of-00002.safetensors\"}}",
               1, "tensor 'w.a' in model-00002-of-00002.safetensors",
               "but it is in model-00001-of-00002.safetensors");
    BAD_SHARDS("sh_array", "{\"weight_map\": [\"model-00001-of-00002.safetensors\"]}", 1,
               "weight_map is an array", "expected an object");
    BAD_SHARDS("sh_nomap", "{\"metadata\": {}}", 1, "no weight_map", NULL);
    BAD_SHARDS("sh_empty", "{\"weight_map\": {}}", 1, "weight_map is empty", NULL);
    BAD_SHARDS("sh_value", "{\"weight_map\": {\"w.a\": 3}}", 1, "weight_map entry 'w.a' is a number", NULL);
    BAD_SHARDS("sh_path", "{\"weight_map\": {\"w.a\": \"../model-00001-of-00002.safetensors\"}}", 1,
               "not a file name in the model folder", NULL);
    BAD_SHARDS("sh_json", "{\"weight_map\": ", 1, "not valid JSON", NULL);
    BAD_SHARDS("sh_twice",
               "{\"weight_map\": {\"w.a\": \"model-00001-of-00002.safetensors\", "
               "\"w.b\": \"model-00002-of-00002.safetensors\"}}",
               3, "tensor 'w.a' is in two shards", NULL);

    const char *empty = make_dir("sh_nothing");
    SafeTensors st;
    Error err;
    CHECK(st_open(&st, empty, &err) != 0, "an empty folder opened");
    CHECK(starts_with(err.msg, empty) && strstr(err.msg, "no model.safetensors or model.safetensors.index.json"),
          "message: %s", err.msg);
}

/* ---- json_util ---- */

static void t_json_load_file(void) {
    const char *good = test_write_file("good.json", "{\"a\": 1}\n", 9);
    const char *bad = test_write_file("bad.json", "{\n  \"a\": 1,\n  \"b\": ]\n}\n", 22);
    cJSON *root;
    Error err;
    CHECK(json_load_file(&root, good, 100, &err) == 0, "%s", err.msg);
    int ok = cJSON_IsObject(root) && cJSON_GetObjectItemCaseSensitive(root, "a");
    cJSON_Delete(root);
    CHECK(ok, "parsed wrongly");
    CHECK(json_load_file(&root, good, 4, &err) != 0 && !root, "a file over max_bytes was read");
    CHECK(starts_with(err.msg, good) && strstr(err.msg, "more than the 4 allowed"), "message: %s", err.msg);
    CHECK(json_load_file(&root, bad, 100, &err) != 0 && !root, "bad JSON parsed");
    CHECK(starts_with(err.msg, bad) && strstr(err.msg, "not valid JSON") && strstr(err.msg, "line 3"),
          "message: %s", err.msg);
    const char *trailing = test_write_file("trailing.json", "{} {}", 5);
    CHECK(json_load_file(&root, trailing, 100, &err) != 0, "trailing text accepted");
    CHECK(strstr(err.msg, "unexpected text after the value at byte 3"), "message: %s", err.msg);
    CHECK(json_load_file(&root, "/nonexistent/config.json", 100, &err) != 0, "missing file opened");
    CHECK(starts_with(err.msg, "/nonexistent/config.json"), "message: %s", err.msg);
}

static cJSON *config_json(void) {
    return cJSON_Parse("{\"hidden_size\": 64, \"num_hidden_layers\": 0, \"eps\": 1e-6, \"big\": 1e999, "
                       "\"half\": 2.5, \"name\": \"llama\", \"tie\": true, \"nothing\": null, \"list\": [1]}");
}

static void t_json_get_int(void) {
    cJSON *c = config_json();
    Error err;
    int64_t v = -1;
    int ok = json_get_int(c, "hidden_size", &v, 1, 65536, "config.json", &err) == 0 && v == 64;
    Error m[5];
    ok = ok && json_get_int(c, "vocab_size", &v, 1, 10, "config.json", &err) != 0;
    m[0] = err;
    ok = ok && json_get_int(c, "num_hidden_layers", &v, 1, 1024, "config.json", &err) != 0;
    m[1] = err;
    ok = ok && json_get_int(c, "name", &v, 1, 10, "config.json", &err) != 0;
    m[2] = err;
    ok = ok && json_get_int(c, "half", &v, 1, 10, "config.json", &err) != 0;
    m[3] = err;
    ok = ok && json_get_int(c, "nothing", &v, 1, 10, "config.json", &err) != 0;
    m[4] = err;
    ok = ok && v == 64;
    cJSON_Delete(c);
    CHECK(ok, "json_get_int accepted a bad value");
    CHECK(strcmp(m[0].msg, "config.json: missing field 'vocab_size'") == 0, "%s", m[0].msg);
    CHECK(strcmp(m[1].msg, "config.json: field 'num_hidden_layers' is 0, expected 1..1024") == 0, "%s", m[1].msg);
    CHECK(strcmp(m[2].msg, "config.json: field 'name' is a string, expected an integer") == 0, "%s", m[2].msg);
    CHECK(strcmp(m[3].msg, "config.json: field 'half' is 2.5, expected an integer") == 0, "%s", m[3].msg);
    CHECK(strstr(m[4].msg, "field 'nothing' is null"), "%s", m[4].msg);
}

static void t_json_get_other(void) {
    cJSON *c = config_json();
    Error err;
    double d = 0;
    int b = 0;
    const char *s = NULL;
    Error m[4];
    int ok = json_get_float(c, "eps", &d, 0, 1, "config.json", &err) == 0 && d == 1e-6;
    ok = ok && json_get_float(c, "hidden_size", &d, 0, 1, "config.json", &err) != 0;
    m[0] = err;
    ok = ok && json_get_float(c, "big", &d, 0, 1e300, "config.json", &err) != 0;
    ok = ok && json_get_float(c, "name", &d, 0, 1, "config.json", &err) != 0 && strstr(err.msg, "expected a number");
    ok = ok && json_get_bool(c, "tie", &b, "config.json", &err) == 0 && b == 1;
    ok = ok && json_get_bool(c, "hidden_size", &b, "config.json", &err) != 0;
    m[1] = err;
    ok = ok && json_get_string(c, "name", &s, "config.json", &err) == 0 && strcmp(s, "llama") == 0;
    ok = ok && json_get_string(c, "list", &s, "config.json", &err) != 0;
    m[2] = err;
    ok = ok && json_get_string(c, "absent", &s, "config.json", &err) != 0;
    m[3] = err;
    cJSON_Delete(c);
    CHECK(ok, "a json_get_* call misbehaved: %s", err.msg);
    CHECK(strcmp(m[0].msg, "config.json: field 'hidden_size' is 64, expected 0..1") == 0, "%s", m[0].msg);
    CHECK(strcmp(m[1].msg, "config.json: field 'hidden_size' is a number, expected true or false") == 0, "%s", m[1].msg);
    CHECK(strcmp(m[2].msg, "config.json: field 'list' is an array, expected a string") == 0, "%s", m[2].msg);
    CHECK(strcmp(m[3].msg, "config.json: missing field 'absent'") == 0, "%s", m[3].msg);
}

static void t_json_optional(void) {
    cJSON *c = config_json();
    Error err;
    int64_t i = 7;
    double d = 0.5;
    int b = 0;
    const char *s = "default";
    int ok = json_opt_int(c, "absent", &i, 0, 10, "config.json", &err) == 0 && i == 7;
    ok = ok && json_opt_int(c, "nothing", &i, 0, 10, "config.json", &err) == 0 && i == 7;
    ok = ok && json_opt_float(c, "absent", &d, 0, 1, "config.json", &err) == 0 && d == 0.5;
    ok = ok && json_opt_bool(c, "nothing", &b, "config.json", &err) == 0 && b == 0;
    ok = ok && json_opt_string(c, "absent", &s, "config.json", &err) == 0 && strcmp(s, "default") == 0;
    ok = ok && json_opt_int(c, "hidden_size", &i, 0, 100, "config.json", &err) == 0 && i == 64;
    ok = ok && json_opt_bool(c, "tie", &b, "config.json", &err) == 0 && b == 1;
    ok = ok && json_opt_int(c, "hidden_size", &i, 0, 10, "config.json", &err) != 0 &&
         strstr(err.msg, "is 64, expected 0..10") && i == 64;
    ok = ok && json_opt_float(c, "name", &d, 0, 1, "config.json", &err) != 0 && d == 0.5;
    ok = ok && json_opt_bool(c, "eps", &b, "config.json", &err) != 0;
    cJSON_Delete(c);
    CHECK(ok, "optional field handling wrong: %s", err.msg);
    /* A root that is not an object has no fields. */
    cJSON *arr = cJSON_Parse("[1]");
    ok = json_get_int(arr, "x", &i, 0, 1, "a.json", &err) != 0 && strstr(err.msg, "missing field 'x'") &&
         json_opt_int(arr, "x", &i, 0, 1, "a.json", &err) == 0;
    cJSON_Delete(arr);
    CHECK(ok, "non-object root: %s", err.msg);
}

void suite_safetensors(void) {
    RUN(t_safetensors_fixture_llama);
    RUN(t_safetensors_fixture_forward_ids);
    RUN(t_safetensors_fixture_gqa);
    RUN(t_safetensors_fixture_git);
    RUN(t_safetensors_fixture_pix2struct);
    RUN(t_safetensors_fixture_lora);
    RUN(t_safetensors_save_round_trip);
    RUN(t_safetensors_stream_round_trip);
    RUN(t_safetensors_empty_file);
    RUN(t_safetensors_writer_too_few_bytes);
    RUN(t_safetensors_writer_too_many_bytes);
    RUN(t_safetensors_writer_misuse);
    RUN(t_safetensors_bad_short);
    RUN(t_safetensors_bad_header_length);
    RUN(t_safetensors_bad_json);
    RUN(t_safetensors_bad_entry_fields);
    RUN(t_safetensors_bad_dtype);
    RUN(t_safetensors_bad_shape);
    RUN(t_safetensors_bad_size);
    RUN(t_safetensors_bad_layout);
    RUN(t_safetensors_good_layouts);
    RUN(t_safetensors_sharded);
    RUN(t_safetensors_sharded_errors);
    RUN(t_json_load_file);
    RUN(t_json_get_int);
    RUN(t_json_get_other);
    RUN(t_json_optional);
}
