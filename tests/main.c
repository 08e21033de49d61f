/* Runs every suite, or those tests whose name contains argv[1]. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <limits.h>
#include <math.h>
#include <sys/wait.h>

#include "base/threads.h"
#include "formats/safetensors.h"
#include "generate/generate.h"
#include "test.h"

void suite_base(void);
void suite_tensor(void);
void suite_safetensors(void);
void suite_config(void);
void suite_tokenizer(void);
void suite_llama(void);
void suite_generate(void);
void suite_prompt(void);
void suite_table(void);
void suite_ask(void);
void suite_lora(void);
void suite_hub(void);
void suite_gguf(void);
void suite_router(void);
void suite_torch_bin(void);
void suite_quant(void);
void suite_cli(void);
void suite_image(void);
void suite_pix2struct_image(void);
void suite_wordpiece(void);
void suite_git(void);
void suite_pix2struct(void);

static const char *filter;
static int n_pass, n_fail, n_skip;
static int cur_failed, cur_skipped;
static char cur_name[256];

void test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s (%s:%d): ", cur_name, file, line);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    cur_failed = 1;
}

void test_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("skip %s: ", cur_name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    cur_skipped = 1;
}

int test_failed(void) { return cur_failed; }

void test_run(const char *name, void (*fn)(void)) {
    if (filter && !strstr(name, filter)) return;
    snprintf(cur_name, sizeof cur_name, "%s", name);
    cur_failed = cur_skipped = 0;
    fn();
    if (cur_failed) n_fail++;
    else if (cur_skipped) n_skip++;
    else {
        n_pass++;
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}

const char *fixture_path(const char *rel) {
    static char bufs[8][PATH_MAX];
    static int next;
    const char *root = getenv("VMED_FIXTURES");
    if (!root || !*root) root = "../shared/fixtures";
    char *buf = bufs[next++ % 8];
    char joined[1024];
    snprintf(joined, sizeof joined, "%s/%s", root, rel);
    if (access(joined, R_OK) != 0) return NULL;
    /* absolute, so that tests may symlink to it from their scratch dir */
    if (!realpath(joined, buf)) snprintf(buf, sizeof bufs[0], "%s", joined);
    return buf;
}

const char *test_data(const char *rel) {
    static char bufs[8][1200];
    static int next;
    char *buf = bufs[next++ % 8];
    snprintf(buf, sizeof bufs[0], "%s/tests/data/%s", VMED_SOURCE_DIR, rel);
    return buf;
}

static ThreadPool *pools[9];

ThreadPool *test_pool(int n) {
    if (n <= 1 || n > 8) return NULL;
    Error err;
    if (!pools[n] && pool_create(&pools[n], n, &err) != 0) {
        fprintf(stderr, "test_pool: %s\n", err.msg);
        exit(2);
    }
    return pools[n];
}

static char tmpdir[256];

const char *test_tmpdir(void) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/vmed-test-XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return tmpdir;
}

const char *test_write_file(const char *name, const void *data, size_t n) {
    static char bufs[8][512];
    static int next;
    char *path = bufs[next++ % 8];
    snprintf(path, sizeof bufs[0], "%s/%s", test_tmpdir(), name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, n, fp) != n) {
        perror(path);
        exit(2);
    }
    fclose(fp);
    return path;
}

int test_vmed(const char *args, char *out, size_t cap, char *errout, size_t ecap) {
    char cmd[8192], errpath[600];
    snprintf(errpath, sizeof errpath, "%s/vmed-stderr.txt", test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s 2>'%s'", VMED_BIN, args, errpath);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    FILE *e = fopen(errpath, "r");
    n = e ? fread(errout, 1, ecap - 1, e) : 0;
    errout[n] = 0;
    if (e) fclose(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int test_json_ints(const cJSON *a, int *out, int cap) {
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (n < cap) out[n] = (int)it->valuedouble;
        n++;
    }
    return n;
}

int test_write_llama_as(const char *src_dir, const char *dir, DType dt, int rounded, int matrices_only, Error *err) {
    char path[700], cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/*.json '%s'/", dir, src_dir, dir);
    if (system(cmd) != 0) return error_set(err, "cannot copy the config into %s", dir);
    snprintf(path, sizeof path, "%s/model.safetensors", src_dir);
    SafeTensors st;
    if (st_open(&st, path, err)) return -1;
    StTensor *out = calloc((size_t)st.n_tensors, sizeof *out);
    void **bufs = calloc((size_t)st.n_tensors, sizeof *bufs);
    for (int i = 0; i < st.n_tensors; i++) {
        const StTensor *t = &st.tensors[i];
        size_t n = t->nbytes / 4;
        out[i] = *t;
        if (matrices_only && t->ndim != 2) continue;
        out[i].dtype = rounded ? DT_F32 : dt;
        out[i].nbytes = n * dtype_size(out[i].dtype);
        bufs[i] = malloc(out[i].nbytes ? out[i].nbytes : 1);
        for (size_t j = 0; j < n; j++) {
            float v;
            memcpy(&v, (const float *)t->data + j, 4);
            uint16_t h = dt == DT_F16 ? f32_to_f16(v) : f32_to_bf16(v);
            float r = dt == DT_F16 ? f16_to_f32(h) : bf16_to_f32(h);
            if (rounded) ((float *)bufs[i])[j] = r;
            else ((uint16_t *)bufs[i])[j] = h;
        }
        out[i].data = bufs[i];
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = st_save(path, out, st.n_tensors, err);
    for (int i = 0; i < st.n_tensors; i++) free(bufs[i]);
    free(bufs);
    free(out);
    st_close(&st);
    return rc;
}

float max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as failure */
    }
    return m;
}

float max_abs(const float *a, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i]) > m) m = fabsf(a[i]);
    return m;
}

int test_llama_greedy_cases(const Llama *m, const cJSON *generations, int n_threads, char *msg, size_t cap) {
    int n_cases = 0;
    const cJSON *g;
    msg[0] = 0;
    cJSON_ArrayForEach(g, generations) {
        int prompt[512], want[256], got[256], n_got = 0;
        int np = test_json_ints(cJSON_GetObjectItem(g, "input_ids"), prompt, 512);
        int nw = test_json_ints(cJSON_GetObjectItem(g, "new_ids"), want, 256);
        Error err;
        LlamaState s;
        int rc = llama_state_new(&s, m, 256, 32, test_pool(n_threads), &err);
        if (!rc) {
            LlamaDecoder ld;
            Decoder d = llama_decoder(&ld, m, &s, 1);
            GenerateOptions o = generate_defaults();
            o.sampling.greedy = 1;
            o.max_new_tokens = 32;
            o.eos_id = m->config.eos_id;
            rc = generate(&d, prompt, np, &o, got, &n_got, &err);
            llama_state_free(&s);
        }
        if (rc) {
            snprintf(msg, cap, "case %d: %s", n_cases, err.msg);
            return -1;
        }
        if (n_got != nw) {
            snprintf(msg, cap, "case %d: %d new ids, HF made %d", n_cases, n_got, nw);
            return -1;
        }
        for (int i = 0; i < nw; i++)
            if (got[i] != want[i]) {
                snprintf(msg, cap, "case %d: id %d is %d, HF %d", n_cases, i, got[i], want[i]);
                return -1;
            }
        n_cases++;
    }
    return n_cases;
}

int ref_close_to(const float *got, const StTensor *ref, float *diff, float *bound) {
    size_t n = ref->nbytes / 4;
    float *r = malloc(ref->nbytes ? ref->nbytes : 1);
    memcpy(r, ref->data, ref->nbytes); /* an aligned copy */
    float m = max_abs(r, n);
    *bound = 1e-4f * (m > 1 ? m : 1);
    *diff = max_abs_diff(got, r, n);
    free(r);
    return *diff <= *bound;
}

static void cleanup(void) {
    for (int i = 0; i < 9; i++) pool_free(pools[i]);
    if (tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    }
}

int main(int argc, char **argv) {
    if (argc > 1) filter = argv[1];
    atexit(cleanup);
    suite_base();
    suite_tensor();
    suite_safetensors();
    suite_config();
    suite_tokenizer();
    suite_llama();
    suite_generate();
    suite_prompt();
    suite_image();
    suite_pix2struct_image();
    suite_wordpiece();
    suite_git();
    suite_pix2struct();
    suite_table();
    suite_ask();
    suite_lora();
    suite_hub();
    suite_gguf();
    suite_router();
    suite_torch_bin();
    suite_quant();
    suite_cli();
    printf("\n%d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}
