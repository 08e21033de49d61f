/* GIT (Med-GIT) against HF transformers' numbers for git-tiny, from the
 * fixture's own pixel values: vision encoder output, projected tokens, text
 * logits, and greedy captions with and without a prefix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "formats/json_util.h"
#include "formats/safetensors.h"
#include "generate/generate.h"
#include "models/git.h"
#include "test.h"

void suite_git(void);


/* rel_tol 0: the float model, every stage within ref_close_to's 1e-4.
 * Otherwise the matrices requantized to quant, and the text logits within
 * rel_tol * max|logit| of HF's float ones. */
static void check_image(const char *img, int n_threads, DType quant, float rel_tol) {
    NEED_FIXTURE(dir, "git-tiny");
    NEED_FIXTURE(fwd, "git-tiny/ref/forward.safetensors");
    Error err;
    Git m;
    CHECK(git_load(&m, dir, &err) == 0, "%s", err.msg);
    if (rel_tol > 0) CHECK(git_quantize(&m, quant, &err) == 0, "%s", err.msg);
    SafeTensors ref;
    CHECK(st_open(&ref, fwd, &err) == 0, "%s", err.msg);
    char name[128];
    snprintf(name, sizeof name, "%s.pixel_values", img);
    const StTensor *pv = st_find(&ref, name);
    snprintf(name, sizeof name, "%s.input_ids", img);
    const StTensor *ids_t = st_find(&ref, name);
    CHECK(pv && ids_t, "reference tensors missing");
    float *pix = malloc(pv->nbytes);
    memcpy(pix, pv->data, pv->nbytes);
    GitState s;
    CHECK(git_state_new(&s, &m, 20, test_pool(n_threads), &err) == 0, "%s", err.msg);
    git_encode_image(&m, &s, pix);
    free(pix);
    float diff, bound;
    if (rel_tol == 0) {
        snprintf(name, sizeof name, "%s.image_encoder_last_hidden_state", img);
        CHECK(ref_close_to(s.vision.x, st_find(&ref, name), &diff, &bound), "%s: vision output differs by %g (bound %g)",
              img, diff, bound);
        snprintf(name, sizeof name, "%s.visual_features_projected", img);
        CHECK(ref_close_to(s.projected, st_find(&ref, name), &diff, &bound), "%s: projection differs by %g (bound %g)",
              img, diff, bound);
    }
    int n = (int)ids_t->shape[0], ids[16];
    for (int i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, (const int64_t *)ids_t->data + i, 8);
        ids[i] = (int)v;
    }
    float *logits = malloc(sizeof(float) * (size_t)n * m.config.vocab_size);
    CHECK(git_forward(&m, &s, ids, n, 0, logits, &err) == 0, "%s", err.msg);
    snprintf(name, sizeof name, "%s.text_logits", img);
    int ok = ref_close_to(logits, st_find(&ref, name), &diff, &bound);
    if (rel_tol > 0) {
        bound = bound / 1e-4f * rel_tol; /* ref_close_to's bound is 1e-4 * max(1, max|ref|) */
        ok = diff <= bound;
        printf("      %s %s: max |logit - HF f32| %.3g, %.2g of max(1, max|logit|)\n", img, dtype_name(quant), diff,
               diff / (bound / rel_tol));
    }
    free(logits);
    git_state_free(&s);
    st_close(&ref);
    git_free(&m);
    CHECK(ok, "%s: text logits differ by %g (bound %g)", img, diff, bound);
}

static void t_git_radio_forward(void) { check_image("img0", 1, DT_F32, 0); }
static void t_git_bar_forward_two_threads(void) { check_image("img1", 2, DT_F32, 0); }
/* Requantized to Q8_0 in memory, the tiny model's logits stay within 3% of
 * the largest (measured: 1.2% and 1.7%). Its 32-wide rows are one block
 * each, so it is a harsher case than git-base's 768-wide ones. */
static void t_git_q8_0_logits_close(void) {
    check_image("img0", 2, DT_Q8_0, 0.03f);
    check_image("img1", 1, DT_Q8_0, 0.03f);
}

static void t_git_quantize_refusals(void) {
    NEED_FIXTURE(dir, "git-tiny");
    Error err;
    Git m;
    CHECK(git_load(&m, dir, &err) == 0, "%s", err.msg);
    CHECK(git_quantize(&m, DT_F16, &err) == -1 && strcmp(err.msg, "cannot requantize to F16: not a quantized type") == 0,
          "F16: %s", err.msg);
    CHECK(git_quantize(&m, DT_Q4_K, &err) == -1 &&
              strcmp(err.msg, "cannot requantize vision layer 0 q to Q4_K: its rows of 32 values are not whole "
                              "blocks of 256") == 0,
          "Q4_K: %s", err.msg);
    CHECK(m.weights.vision.patch.dtype == DT_F32 && !m.requantized, "a refused requantization changed the model");
    CHECK(git_quantize(&m, DT_Q8_0, &err) == 0, "%s", err.msg);
    CHECK(m.weights.out.dtype == DT_Q8_0 && m.weights.layers[1].w_out.dtype == DT_Q8_0, "not requantized");
    CHECK(git_quantize(&m, DT_Q8_0, &err) == -1 && strcmp(err.msg, "the GIT model is already requantized") == 0, "twice: %s",
          err.msg);
    git_free(&m);
}

static int json_ids(const cJSON *a, int *out, int cap) {
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) if (n < cap) out[n++] = (int)it->valuedouble;
    return n;
}

/* HF generate(max_length=20) from [CLS] (and from [CLS] + prefix). */
static void t_git_greedy_captions(void) {
    NEED_FIXTURE(dir, "git-tiny");
    NEED_FIXTURE(fwd, "git-tiny/ref/forward.safetensors");
    NEED_FIXTURE(fj, "git-tiny/ref/forward.json");
    Error err;
    Git m;
    CHECK(git_load(&m, dir, &err) == 0, "%s", err.msg);
    SafeTensors ref;
    CHECK(st_open(&ref, fwd, &err) == 0, "%s", err.msg);
    cJSON *root;
    CHECK(json_load_file(&root, fj, 1 << 22, &err) == 0, "%s", err.msg);
    const cJSON *runs = cJSON_GetObjectItem(root, "runs");
    int checked = 0;
    for (int r = 0; r < cJSON_GetArraySize(runs); r++) {
        const cJSON *run = cJSON_GetArrayItem(runs, r);
        char name[64];
        snprintf(name, sizeof name, "img%d.pixel_values", r);
        const StTensor *pv = st_find(&ref, name);
        float *pix = malloc(pv->nbytes);
        memcpy(pix, pv->data, pv->nbytes);
        const char *keys[2] = {"generate_no_prompt", "generate_with_prefix"};
        for (int k = 0; k < 2; k++) {
            int want[32], prompt[32], got[32], n_got = 0;
            int nw = json_ids(cJSON_GetObjectItem(cJSON_GetObjectItem(run, keys[k]), "ids"), want, 32);
            int np = k == 0 ? 1 : json_ids(cJSON_GetObjectItem(run, "input_ids"), prompt, 32);
            if (k == 0) prompt[0] = m.config.bos_id;
            GitState s;
            CHECK(git_state_new(&s, &m, 20, test_pool(2), &err) == 0, "%s", err.msg);
            git_encode_image(&m, &s, pix);
            GitDecoder gd;
            Decoder d = git_decoder(&gd, &m, &s, 1);
            GenerateOptions o = generate_defaults();
            o.sampling.greedy = 1;
            o.eos_id = m.config.eos_id;
            o.max_new_tokens = 20 - np; /* HF max_length counts the prompt */
            int rc = generate(&d, prompt, np, &o, got, &n_got, &err);
            git_state_free(&s);
            CHECK(rc == 0, "%s", err.msg);
            CHECK(np + n_got == nw, "run %d %s: %d ids, HF %d", r, keys[k], np + n_got, nw);
            for (int i = 0; i < n_got; i++)
                CHECK(got[i] == want[np + i], "run %d %s: id %d is %d, HF %d", r, keys[k], np + i, got[i], want[np + i]);
            checked++;
        }
        free(pix);
    }
    cJSON_Delete(root);
    st_close(&ref);
    git_free(&m);
    CHECK(checked == 4, "expected 4 generations, checked %d", checked);
}

/* Beam search against HF generate(num_beams=N) on the same checkpoint
 * (tests/data/beam_refs.json, made by tests/data/make_beam_refs.py). */
static void t_git_beam_search_matches_hf(void) {
    NEED_FIXTURE(dir, "git-tiny");
    NEED_FIXTURE(fwd, "git-tiny/ref/forward.safetensors");
    Error err;
    cJSON *root;
    CHECK(json_load_file(&root, VMED_SOURCE_DIR "/tests/data/beam_refs.json", 1 << 22, &err) == 0, "%s", err.msg);
    Git m;
    CHECK(git_load(&m, dir, &err) == 0, "%s", err.msg);
    SafeTensors ref;
    CHECK(st_open(&ref, fwd, &err) == 0, "%s", err.msg);
    GitState s[5];
    for (int i = 0; i < 5; i++) CHECK(git_state_new(&s[i], &m, 20, test_pool(2), &err) == 0, "%s", err.msg);
    int checked = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "git")) {
        char name[64];
        snprintf(name, sizeof name, "%s.pixel_values", cJSON_GetStringValue(cJSON_GetObjectItem(c, "image")));
        const StTensor *pv = st_find(&ref, name);
        float *pix = malloc(pv->nbytes);
        memcpy(pix, pv->data, pv->nbytes);
        git_encode_image(&m, &s[0], pix);
        free(pix);
        for (int i = 1; i < 5; i++) git_state_copy_image(&s[i], &s[0], &m);
        BeamOptions o = beam_defaults();
        o.num_beams = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "num_beams"));
        o.length_penalty = (float)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "length_penalty"));
        o.early_stopping = cJSON_IsTrue(cJSON_GetObjectItem(c, "early_stopping"));
        o.eos_id = m.config.eos_id;
        o.max_new_tokens = 20 - 1;
        int want[32], got[32], n_got = 0, prompt = m.config.bos_id;
        int nw = json_ids(cJSON_GetObjectItem(c, "ids"), want, 32);
        GitDecoder gd;
        Decoder d = git_decoder(&gd, &m, s, 5);
        CHECK(beam_search(&d, &prompt, 1, &o, got, &n_got, NULL, &err) == 0, "%s", err.msg);
        CHECK(n_got + 1 == nw, "case %d (beams %d): %d ids, HF %d", checked, o.num_beams, n_got + 1, nw);
        for (int i = 0; i < n_got; i++)
            CHECK(got[i] == want[i + 1], "case %d (beams %d): id %d is %d, HF %d", checked, o.num_beams, i + 1,
                  got[i], want[i + 1]);
        checked++;
    }
    for (int i = 0; i < 5; i++) git_state_free(&s[i]);
    st_close(&ref);
    git_free(&m);
    cJSON_Delete(root);
    CHECK(checked == 8, "expected 8 beam cases, checked %d", checked);
}

void suite_git(void) {
    RUN(t_git_beam_search_matches_hf);
    RUN(t_git_radio_forward);
    RUN(t_git_bar_forward_two_threads);
    RUN(t_git_q8_0_logits_close);
    RUN(t_git_quantize_refusals);
    RUN(t_git_greedy_captions);
}
