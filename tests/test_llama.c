/* LLaMA forward and greedy generation against HF transformers' numbers in
 * the fixtures (llama-tiny: MHA, untied; llama-tiny-gqa: GQA, tied). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "formats/json_util.h"
#include "formats/safetensors.h"
#include "generate/generate.h"
#include "models/llama.h"
#include "test.h"

void suite_llama(void);

/* Tolerance from the fixture README: max|diff| <= 1e-4 * max(1, max|ref|). */
static int logits_close(const float *got, const float *ref, size_t n, float *diff, float *bound) {
    float m = max_abs(ref, n);
    *bound = 1e-4f * (m > 1 ? m : 1);
    *diff = max_abs_diff(got, ref, n);
    return *diff <= *bound;
}

/* Checks p0/p1 prompt logits of a fixture model with the given threads and
 * prefill chunk size (1 = token by token through the decode path). */
static void check_prompt_logits(const char *model_rel, int n_threads, int max_batch) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/ref/forward.safetensors", model_rel);
    NEED_FIXTURE(ref_path, rel);
    NEED_FIXTURE(dir, model_rel);
    Error err;
    Llama m;
    CHECK(llama_load(&m, dir, &err) == 0, "load: %s", err.msg);
    SafeTensors ref;
    CHECK(st_open(&ref, ref_path, &err) == 0, "%s", err.msg);
    LlamaState s;
    CHECK(llama_state_new(&s, &m, 64, max_batch, test_pool(n_threads), &err) == 0, "%s", err.msg);
    for (int p = 0; p < 2 && !test_failed(); p++) {
        char name[64];
        snprintf(name, sizeof name, "p%d.input_ids", p);
        const StTensor *ids_t = st_find(&ref, name);
        snprintf(name, sizeof name, "p%d.logits", p);
        const StTensor *lg_t = st_find(&ref, name);
        CHECK(ids_t && lg_t && ids_t->dtype == DT_I64 && lg_t->dtype == DT_F32, "reference tensors missing");
        int T = (int)ids_t->shape[ids_t->ndim - 1];
        int ids[64];
        for (int i = 0; i < T; i++) {
            int64_t v;
            memcpy(&v, (const int64_t *)ids_t->data + i, 8);
            ids[i] = (int)v;
        }
        size_t V = (size_t)m.config.vocab_size;
        float *got = malloc((size_t)T * V * sizeof(float));
        float *want = malloc((size_t)T * V * sizeof(float));
        memcpy(want, lg_t->data, (size_t)T * V * sizeof(float));
        int rc = llama_forward(&m, &s, ids, T, 0, got, &err);
        float diff = 0, bound = 0;
        int ok = rc == 0 && logits_close(got, want, (size_t)T * V, &diff, &bound);
        free(got);
        free(want);
        CHECK(rc == 0, "forward: %s", err.msg);
        CHECK(ok, "%s p%d logits differ by %g (bound %g), threads %d batch %d", model_rel, p, diff, bound, n_threads,
              max_batch);
    }
    llama_state_free(&s);
    st_close(&ref);
    llama_free(&m);
}

static void t_llama_tiny_logits_prefill(void) { check_prompt_logits("llama-tiny", 1, 64); }
static void t_llama_tiny_logits_two_threads(void) { check_prompt_logits("llama-tiny", 2, 64); }
static void t_llama_tiny_logits_token_by_token(void) { check_prompt_logits("llama-tiny", 2, 1); }
static void t_llama_tiny_logits_chunks_of_3(void) { check_prompt_logits("llama-tiny", 1, 3); }
static void t_llama_gqa_logits_prefill(void) { check_prompt_logits("llama-tiny-gqa", 2, 64); }
static void t_llama_gqa_logits_token_by_token(void) { check_prompt_logits("llama-tiny-gqa", 1, 1); }

/* Greedy continuation: ids identical to HF generate() (KV cache, 32 new). */
static void check_greedy(const char *model_rel, int n_threads) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/ref/generate.json", model_rel);
    NEED_FIXTURE(gen_path, rel);
    NEED_FIXTURE(dir, model_rel);
    Error err;
    cJSON *root;
    CHECK(json_load_file(&root, gen_path, 1 << 22, &err) == 0, "%s", err.msg);
    Llama m;
    CHECK(llama_load(&m, dir, &err) == 0, "%s", err.msg);
    char msg[300];
    int n_cases = test_llama_greedy_cases(&m, cJSON_GetObjectItem(root, "generations"), n_threads, msg, sizeof msg);
    cJSON_Delete(root);
    llama_free(&m);
    CHECK(n_cases >= 0, "%s", msg);
    CHECK(n_cases == 2, "expected 2 generation cases, found %d", n_cases);
}

static void t_llama_tiny_greedy(void) { check_greedy("llama-tiny", 1); }
static void t_llama_tiny_greedy_two_threads(void) { check_greedy("llama-tiny", 2); }
static void t_llama_gqa_greedy(void) { check_greedy("llama-tiny-gqa", 2); }

/* Beam search against HF generate(num_beams=2|4, max_new_tokens=16). */
static void t_llama_beam_search_matches_hf(void) {
    NEED_FIXTURE(any, "llama-tiny");
    NEED_FIXTURE(any_gqa, "llama-tiny-gqa");
    (void)any, (void)any_gqa;
    Error err;
    cJSON *root;
    CHECK(json_load_file(&root, VMED_SOURCE_DIR "/tests/data/beam_refs.json", 1 << 22, &err) == 0, "%s", err.msg);
    int checked = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "llama")) {
        const char *model = cJSON_GetStringValue(cJSON_GetObjectItem(c, "model"));
        NEED_FIXTURE(dir, model);
        Llama m;
        CHECK(llama_load(&m, dir, &err) == 0, "%s", err.msg);
        int prompt[512], want[64], got[64], n_got = 0;
        int np = test_json_ints(cJSON_GetObjectItem(c, "input_ids"), prompt, 512);
        int nw = test_json_ints(cJSON_GetObjectItem(c, "new_ids"), want, 64);
        BeamOptions o = beam_defaults();
        o.num_beams = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "num_beams"));
        o.max_new_tokens = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "max_new_tokens"));
        o.eos_id = m.config.eos_id;
        LlamaState s[4];
        for (int i = 0; i < o.num_beams; i++)
            CHECK(llama_state_new(&s[i], &m, np + o.max_new_tokens, 64, test_pool(2), &err) == 0, "%s", err.msg);
        LlamaDecoder ld;
        Decoder d = llama_decoder(&ld, &m, s, o.num_beams);
        int rc = beam_search(&d, prompt, np, &o, got, &n_got, NULL, &err);
        for (int i = 0; i < o.num_beams; i++) llama_state_free(&s[i]);
        llama_free(&m);
        CHECK(rc == 0, "%s", err.msg);
        CHECK(n_got == nw, "%s beams %d: %d ids, HF %d", model, o.num_beams, n_got, nw);
        for (int i = 0; i < nw; i++)
            CHECK(got[i] == want[i], "%s beams %d: id %d is %d, HF %d", model, o.num_beams, i, got[i], want[i]);
        checked++;
    }
    cJSON_Delete(root);
    CHECK(checked == 8, "expected 8 beam cases, checked %d", checked);
}

static float *prompt_logits(const char *dir, const int *ids, int n, Error *err) {
    Llama m;
    if (llama_load(&m, dir, err)) return NULL;
    LlamaState s;
    float *logits = malloc(sizeof(float) * (size_t)n * m.config.vocab_size);
    if (llama_state_new(&s, &m, 32, 8, test_pool(2), err)) {
        free(logits);
        llama_free(&m);
        return NULL;
    }
    int rc = llama_forward(&m, &s, ids, n, 0, logits, err);
    llama_state_free(&s);
    llama_free(&m);
    if (rc) {
        free(logits);
        return NULL;
    }
    return logits;
}

/* F16 and BF16 weights are used in place, converted inside the kernels:
 * the logits must equal those of an F32 model holding the same rounded
 * values (only the summation differs), not merely be close to the
 * unrounded model's. */
static void t_llama_half_weights_in_place(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    int ids[11] = {1, 10987, 886, 29901, 13, 13, 2277, 29937, 13291, 29901, 13};
    DType dts[2] = {DT_F16, DT_BF16};
    for (int k = 0; k < 2; k++) {
        char half[600], rounded[600];
        snprintf(half, sizeof half, "%s/llama-%s", test_tmpdir(), dtype_name(dts[k]));
        snprintf(rounded, sizeof rounded, "%s/llama-%s-as-f32", test_tmpdir(), dtype_name(dts[k]));
        Error err;
        CHECK(test_write_llama_as(dir, half, dts[k], 0, 0, &err) == 0, "%s", err.msg);
        CHECK(test_write_llama_as(dir, rounded, dts[k], 1, 0, &err) == 0, "%s", err.msg);
        Llama m;
        CHECK(llama_load(&m, half, &err) == 0, "%s", err.msg);
        int in_place = m.weights.layers[0].wq.dtype == dts[k];
        llama_free(&m);
        CHECK(in_place, "%s weights were converted at load", dtype_name(dts[k]));
        float *a = prompt_logits(half, ids, 11, &err), *b = a ? prompt_logits(rounded, ids, 11, &err) : NULL;
        CHECK(a && b, "%s", err.msg);
        size_t n = (size_t)11 * 32000;
        float m1 = max_abs(b, n), d = max_abs_diff(a, b, n);
        free(a);
        free(b);
        CHECK(d <= 1e-5f * (m1 > 1 ? m1 : 1), "%s logits differ from the rounded-F32 model's by %g", dtype_name(dts[k]), d);
    }
}

void suite_llama(void) {
    RUN(t_llama_half_weights_in_place);
    RUN(t_llama_beam_search_matches_hf);
    RUN(t_llama_tiny_logits_prefill);
    RUN(t_llama_tiny_logits_two_threads);
    RUN(t_llama_tiny_logits_token_by_token);
    RUN(t_llama_tiny_logits_chunks_of_3);
    RUN(t_llama_gqa_logits_prefill);
    RUN(t_llama_gqa_logits_token_by_token);
    RUN(t_llama_tiny_greedy);
    RUN(t_llama_tiny_greedy_two_threads);
    RUN(t_llama_gqa_greedy);
}
