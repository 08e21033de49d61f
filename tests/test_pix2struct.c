/* Pix2Struct (DePlot) against HF transformers' numbers for pix2struct-tiny,
 * from the fixture's own flattened patches: encoder output, decoder logits,
 * greedy and beam-search ids; the config loader's defaults and refusals; and
 * the T5 tokenizer against every case of ref/tokenization.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "formats/hf_config.h"
#include "formats/json_util.h"
#include "formats/safetensors.h"
#include "generate/generate.h"
#include "image/image.h"
#include "image/pix2struct_preprocess.h"
#include "models/pix2struct.h"
#include "text/t5.h"
#include "test.h"

void suite_pix2struct(void);


/* An aligned f32 copy of a reference tensor (free() it). */
static float *f32_copy(const StTensor *t) {
    float *p = malloc(t->nbytes);
    memcpy(p, t->data, t->nbytes);
    return p;
}

static int i64_ids(const StTensor *t, int *out, int cap) {
    int n = (int)(t->nbytes / 8);
    for (int i = 0; i < n && i < cap; i++) {
        int64_t v;
        memcpy(&v, (const uint8_t *)t->data + (size_t)i * 8, 8);
        out[i] = (int)v;
    }
    return n < cap ? n : cap;
}

static int json_ids(const cJSON *a, int *out, int cap) {
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) if (n < cap) out[n++] = (int)it->valuedouble;
    return n;
}

static const StTensor *find(const SafeTensors *st, const char *img, const char *what) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", img, what);
    return st_find(st, name);
}

static cJSON *load_refs(Error *err) {
    cJSON *root = NULL;
    if (json_load_file(&root, VMED_SOURCE_DIR "/tests/data/pix2struct_refs.json", 1 << 22, err)) return NULL;
    return root;
}

/* max|got - want| over n values against a JSON array, and max|want|. */
static float json_diff(const float *got, const cJSON *want, int n, float *max_ref) {
    float d = 0, m = 0;
    *max_ref = 0;
    if (cJSON_GetArraySize(want) != n) return 1e30f;
    for (int i = 0; i < n; i++) {
        float w = (float)cJSON_GetNumberValue(cJSON_GetArrayItem(want, i));
        float e = got[i] > w ? got[i] - w : w - got[i];
        if (!(e <= d)) d = e;
        if (w > m) m = w;
        if (-w > m) m = -w;
    }
    *max_ref = m;
    return d;
}

/* ------------------------------------------------------------- config */

/* A model folder in the scratch dir holding config.json with text, and the
 * fixture's weights when with_weights. */
static const char *model_dir(const char *name, const char *config_text, const char *weights) {
    static char dirs[4][512];
    static int next;
    char *dir = dirs[next++ % 4];
    snprintf(dir, sizeof dirs[0], "%s/%s", test_tmpdir(), name);
    mkdir(dir, 0755);
    char rel[600];
    snprintf(rel, sizeof rel, "%s/config.json", name);
    test_write_file(rel, config_text, strlen(config_text));
    if (weights) {
        char link[600];
        snprintf(link, sizeof link, "%s/model.safetensors", dir);
        unlink(link);
        if (symlink(weights, link) != 0) return NULL;
    }
    return dir;
}

static void t_pix2struct_config_fixture_and_defaults(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    Pix2StructConfig c;
    Error err;
    CHECK(pix2struct_config_load(&c, dir, &err) == 0, "%s", err.msg);
    const Pix2StructVisionConfig *v = &c.vision;
    const Pix2StructTextConfig *t = &c.text;
    CHECK(v->dim == 32 && v->n_layers == 2 && v->n_heads == 4 && v->d_kv == 8 && v->d_ff == 64, "vision shape");
    CHECK(v->seq_len == 4096 && v->patch_dim == 768 && v->norm_eps == 1e-6f && v->act == DENSE_ACT_GELU_NEW,
          "vision defaults: seq_len %d patch %d eps %g", v->seq_len, v->patch_dim, (double)v->norm_eps);
    CHECK(t->dim == 32 && t->n_layers == 2 && t->n_heads == 4 && t->d_kv == 8 && t->d_ff == 64 &&
              t->vocab_size == 2100,
          "text shape");
    CHECK(t->rel_buckets == 32 && t->rel_max_distance == 128 && t->norm_eps == 1e-6f, "text defaults");
    CHECK(c.decoder_start_id == 0 && c.eos_id == 1 && c.pad_id == 0 && !c.tie_embeddings, "token ids");

    /* empty nested configs: every field is HF's class default */
    const char *d2 = model_dir("p2s-defaults", "{\"model_type\": \"pix2struct\"}", NULL);
    CHECK(pix2struct_config_load(&c, d2, &err) == 0, "%s", err.msg);
    CHECK(c.vision.dim == 768 && c.vision.n_layers == 12 && c.vision.d_kv == 64 && c.vision.d_ff == 2048,
          "vision class defaults");
    CHECK(c.text.dim == 768 && c.text.n_layers == 12 && c.text.n_heads == 12 && c.text.vocab_size == 50244,
          "text class defaults");

    /* attribute_map aliases of the text config */
    const char *d3 = model_dir("p2s-alias",
                               "{\"text_config\": {\"hidden_size\": 16, \"num_attention_heads\": 2, \"d_kv\": 8,"
                               " \"num_hidden_layers\": 3}, \"vision_config\": {\"hidden_size\": 16}}",
                               NULL);
    CHECK(pix2struct_config_load(&c, d3, &err) == 0, "%s", err.msg);
    CHECK(c.text.n_heads == 2 && c.text.n_layers == 3, "aliases: heads %d layers %d", c.text.n_heads, c.text.n_layers);
}

static void t_pix2struct_config_refusals(void) {
    struct {
        const char *config, *want1, *want2;
    } cases[] = {
        {"{\"text_config\": {\"dense_act_fn\": \"relu\"}}", "text_config", "dense_act_fn 'relu'"},
        {"{\"vision_config\": {\"dense_act_fn\": \"gelu\"}}", "vision_config", "dense_act_fn 'gelu'"},
        {"{\"model_type\": \"t5\"}", "model_type", "pix2struct"},
        {"{\"text_config\": {\"d_kv\": 32}}", "text_config", "d_kv"},
        {"{\"vision_config\": {\"hidden_size\": 512}}", "vision_config hidden_size 512", "text_config"},
        {"{\"text_config\": {\"relative_attention_max_distance\": 8}}", "relative_attention_max_distance", "16"},
        {"{\"text_config\": {\"eos_token_id\": 60000}}", "eos_token_id", "60000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *dir = model_dir("p2s-bad", cases[i].config, NULL);
        Pix2StructConfig c;
        Error err;
        CHECK(pix2struct_config_load(&c, dir, &err) != 0, "case %zu accepted", i);
        CHECK(strstr(err.msg, "config.json") && strstr(err.msg, cases[i].want1) && strstr(err.msg, cases[i].want2),
              "case %zu: message '%s'", i, err.msg);
    }
}

/* The fixture's weights under a config whose patch_embed_hidden_size is not
 * the patch projection's in-features. */
static void t_pix2struct_patch_projection_mismatch(void) {
    NEED_FIXTURE(weights, "pix2struct-tiny/model.safetensors");
    char *cfg = NULL;
    size_t len;
    Error err;
    NEED_FIXTURE(cfg_path, "pix2struct-tiny/config.json");
    CHECK(file_read_all(cfg_path, 1 << 20, &cfg, &len, &err) == 0, "%s", err.msg);
    char *p = strstr(cfg, "\"vision_config\": {");
    CHECK(p != NULL, "no vision_config in the fixture config");
    char text[4096];
    p += strlen("\"vision_config\": {");
    snprintf(text, sizeof text, "%.*s\"patch_embed_hidden_size\": 700, %s", (int)(p - cfg), cfg, p);
    free(cfg);
    const char *dir = model_dir("p2s-patch", text, weights);
    CHECK(dir != NULL, "symlink failed");
    Pix2Struct m;
    CHECK(pix2struct_load(&m, dir, &err) != 0, "loaded a 768-wide projection as 700");
    CHECK(strstr(err.msg, "encoder.embeddings.patch_projection.weight") && strstr(err.msg, "700"), "message '%s'",
          err.msg);
}

/* ------------------------------------------------------------- model */

static void check_forward(const char *img, int n_threads) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    NEED_FIXTURE(fwd, "pix2struct-tiny/ref/forward.safetensors");
    Error err;
    Pix2Struct m;
    CHECK(pix2struct_load(&m, dir, &err) == 0, "%s", err.msg);
    SafeTensors ref;
    CHECK(st_open(&ref, fwd, &err) == 0, "%s", err.msg);
    const StTensor *fp_t = find(&ref, img, "mp512.flattened_patches"), *mask_t = find(&ref, img, "mp512.attention_mask");
    const StTensor *ids_t = find(&ref, img, "mp512.decoder_input_ids");
    CHECK(fp_t && mask_t && ids_t, "reference tensors missing");
    float *fp = f32_copy(fp_t), *mask = f32_copy(mask_t);
    Pix2StructState s;
    CHECK(pix2struct_state_new(&s, &m, 512, 16, test_pool(n_threads), &err) == 0, "%s", err.msg);
    int rc = pix2struct_encode(&m, &s, fp, mask, 512, &err);
    free(fp);
    free(mask);
    CHECK(rc == 0, "%s", err.msg);
    float diff, bound;
    int ok = ref_close_to(s.encoder_out, find(&ref, img, "mp512.encoder_last_hidden_state"), &diff, &bound);
    printf("     %s mp512 encoder_last_hidden_state: max|diff| %.3g (bound %.3g)\n", img, (double)diff, (double)bound);
    CHECK(ok, "%s: encoder output differs by %g (bound %g)", img, diff, bound);
    int ids[16], n = i64_ids(ids_t, ids, 16);
    float *logits = malloc(sizeof(float) * (size_t)n * m.config.text.vocab_size);
    CHECK(pix2struct_decode(&m, &s, ids, n, 0, logits, &err) == 0, "%s", err.msg);
    ok = ref_close_to(logits, find(&ref, img, "mp512.decoder_logits"), &diff, &bound);
    printf("     %s mp512 decoder_logits: max|diff| %.3g (bound %.3g)\n", img, (double)diff, (double)bound);
    free(logits);
    pix2struct_state_free(&s);
    st_close(&ref);
    pix2struct_free(&m);
    CHECK(ok, "%s: decoder logits differ by %g (bound %g)", img, diff, bound);
}

static void t_pix2struct_bar_mp512_forward(void) { check_forward("img0", 1); }
static void t_pix2struct_plot_mp512_forward_two_threads(void) { check_forward("img1", 2); }

/* Greedy ids from a state that holds an encoded image, checked against
 * forward.json's generate(max_new_tokens=24) (HF's ids start with the
 * decoder start token). */
static int check_greedy(const Pix2Struct *m, Pix2StructState *s, const cJSON *want_ids, const char *what) {
    int want[64], got[64], n_got = 0, start = m->config.decoder_start_id;
    int nw = json_ids(want_ids, want, 64);
    Pix2StructDecoder pd;
    Decoder d = pix2struct_decoder(&pd, m, s, 1);
    GenerateOptions o = generate_defaults();
    o.sampling.greedy = 1;
    o.eos_id = m->config.eos_id;
    o.max_new_tokens = 24;
    Error err;
    if (generate(&d, &start, 1, &o, got, &n_got, &err) != 0) {
        test_fail(__FILE__, __LINE__, "%s: %s", what, err.msg);
        return -1;
    }
    if (n_got + 1 != nw || want[0] != start) {
        test_fail(__FILE__, __LINE__, "%s: %d ids, HF %d", what, n_got + 1, nw);
        return -1;
    }
    for (int i = 0; i < n_got; i++)
        if (got[i] != want[i + 1]) {
            test_fail(__FILE__, __LINE__, "%s: id %d is %d, HF %d", what, i + 1, got[i], want[i + 1]);
            return -1;
        }
    return 0;
}

static const cJSON *generate_ids(const cJSON *fj, int run, const char *variant) {
    const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(fj, "runs"), run);
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "variants"), variant);
    return cJSON_GetObjectItem(cJSON_GetObjectItem(v, "generate"), "ids");
}

static void t_pix2struct_greedy_mp512(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    NEED_FIXTURE(fwd, "pix2struct-tiny/ref/forward.safetensors");
    NEED_FIXTURE(fjp, "pix2struct-tiny/ref/forward.json");
    Error err;
    Pix2Struct m;
    CHECK(pix2struct_load(&m, dir, &err) == 0, "%s", err.msg);
    SafeTensors ref;
    CHECK(st_open(&ref, fwd, &err) == 0, "%s", err.msg);
    cJSON *fj;
    CHECK(json_load_file(&fj, fjp, 1 << 22, &err) == 0, "%s", err.msg);
    int failed = 0;
    for (int r = 0; r < 2 && !failed; r++) {
        char img[8], what[64];
        snprintf(img, sizeof img, "img%d", r);
        snprintf(what, sizeof what, "%s mp512 greedy", img);
        float *fp = f32_copy(find(&ref, img, "mp512.flattened_patches"));
        float *mask = f32_copy(find(&ref, img, "mp512.attention_mask"));
        Pix2StructState s;
        CHECK(pix2struct_state_new(&s, &m, 512, 32, test_pool(2), &err) == 0, "%s", err.msg);
        int rc = pix2struct_encode(&m, &s, fp, mask, 512, &err);
        if (rc == 0) failed = check_greedy(&m, &s, generate_ids(fj, r, "512"), what);
        else test_fail(__FILE__, __LINE__, "%s", err.msg);
        free(fp);
        free(mask);
        pix2struct_state_free(&s);
        failed |= rc;
    }
    cJSON_Delete(fj);
    st_close(&ref);
    pix2struct_free(&m);
}

/* mp2048: the fixture keeps only 64 of the 2048 patch rows, so the decoder
 * runs on HF's own encoder output (stored whole): its logits and greedy ids,
 * with 2021 / 2024 unmasked patches of 2048. */
static void t_pix2struct_mp2048_decoder_on_hf_encoder_output(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    NEED_FIXTURE(fwd, "pix2struct-tiny/ref/forward.safetensors");
    NEED_FIXTURE(fjp, "pix2struct-tiny/ref/forward.json");
    Error err;
    Pix2Struct m;
    CHECK(pix2struct_load(&m, dir, &err) == 0, "%s", err.msg);
    SafeTensors ref;
    CHECK(st_open(&ref, fwd, &err) == 0, "%s", err.msg);
    cJSON *fj;
    CHECK(json_load_file(&fj, fjp, 1 << 22, &err) == 0, "%s", err.msg);
    Pix2StructState s;
    CHECK(pix2struct_state_new(&s, &m, 2048, 32, test_pool(2), &err) == 0, "%s", err.msg);
    int failed = 0;
    for (int r = 0; r < 2 && !failed; r++) {
        char img[8], what[64];
        snprintf(img, sizeof img, "img%d", r);
        float *enc = f32_copy(find(&ref, img, "mp2048.encoder_last_hidden_state"));
        float *mask = f32_copy(find(&ref, img, "mp2048.attention_mask"));
        int rc = pix2struct_set_encoder_output(&m, &s, enc, mask, 2048, &err);
        free(enc);
        free(mask);
        if (rc) {
            test_fail(__FILE__, __LINE__, "%s", err.msg);
            break;
        }
        int ids[16], n = i64_ids(find(&ref, img, "mp2048.decoder_input_ids"), ids, 16);
        float *logits = malloc(sizeof(float) * (size_t)n * m.config.text.vocab_size), diff, bound;
        rc = pix2struct_decode(&m, &s, ids, n, 0, logits, &err);
        int ok = rc == 0 && ref_close_to(logits, find(&ref, img, "mp2048.decoder_logits"), &diff, &bound);
        free(logits);
        if (!ok) {
            test_fail(__FILE__, __LINE__, "%s mp2048: %s", img, rc ? err.msg : "decoder logits differ");
            break;
        }
        printf("     %s mp2048 decoder_logits (HF encoder output): max|diff| %.3g (bound %.3g)\n", img, (double)diff,
               (double)bound);
        snprintf(what, sizeof what, "%s mp2048 greedy (HF encoder output)", img);
        failed = check_greedy(&m, &s, generate_ids(fj, r, "2048"), what);
    }
    pix2struct_state_free(&s);
    cJSON_Delete(fj);
    st_close(&ref);
    pix2struct_free(&m);
}

/* The whole mp2048 encoder from patches vmed makes itself out of the
 * fixture's with-header images (the same pixels HF patched): the 64 stored
 * rows agree within 1e-4 and the encoder output within the usual bound. */
static void t_pix2struct_mp2048_encoder_from_vmed_patches(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    NEED_FIXTURE(fwd, "pix2struct-tiny/ref/forward.safetensors");
    Error err;
    Pix2Struct m;
    Pix2StructProcessorConfig proc;
    CHECK(pix2struct_load(&m, dir, &err) == 0, "%s", err.msg);
    CHECK(pix2struct_processor_config_load(&proc, dir, &err) == 0, "%s", err.msg);
    SafeTensors ref;
    CHECK(st_open(&ref, fwd, &err) == 0, "%s", err.msg);
    Pix2StructState s;
    CHECK(pix2struct_state_new(&s, &m, 2048, 16, test_pool(2), &err) == 0, "%s", err.msg);
    int dim = pix2struct_patch_dim(&proc);
    float *fp = malloc(sizeof(float) * 2048 * (size_t)dim), *mask = malloc(sizeof(float) * 2048);
    for (int r = 0; r < 2 && !test_failed(); r++) {
        char rel[64], img[8];
        snprintf(rel, sizeof rel, "pix2struct-tiny/ref/img%d_with_header.png", r);
        snprintf(img, sizeof img, "img%d", r);
        const char *png = fixture_path(rel);
        Image raw, rgb;
        int n_valid, rows, cols;
        CHECK(png && image_load(&raw, png, NULL, &err) == 0, "%s", png ? err.msg : rel);
        int rc = image_to_rgb8(&rgb, &raw, &err);
        image_free(&raw);
        CHECK(rc == 0, "%s", err.msg);
        rc = pix2struct_preprocess(fp, mask, &n_valid, &rows, &cols, &rgb, &proc, 2048, &err);
        image_free(&rgb);
        CHECK(rc == 0, "%s", err.msg);
        float *first = f32_copy(find(&ref, img, "mp2048.flattened_patches_first64"));
        float d64 = max_abs_diff(fp, first, 64 * (size_t)dim);
        free(first);
        CHECK(d64 <= 1e-4f, "%s: the first 64 patch rows differ from HF's by %g", img, d64);
        CHECK(pix2struct_encode(&m, &s, fp, mask, 2048, &err) == 0, "%s", err.msg);
        float diff, bound;
        int ok = ref_close_to(s.encoder_out, find(&ref, img, "mp2048.encoder_last_hidden_state"), &diff, &bound);
        CHECK(ok, "%s mp2048: encoder output from vmed's patches differs by %g (bound %g)", img, diff, bound);
    }
    free(fp);
    free(mask);
    pix2struct_state_free(&s);
    st_close(&ref);
    pix2struct_free(&m);
}

/* Beam search against HF generate(num_beams=N) on the mp512 patches
 * (tests/data/pix2struct_refs.json, made by make_pix2struct_refs.py). */
static void t_pix2struct_beam_search_matches_hf(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    NEED_FIXTURE(fwd, "pix2struct-tiny/ref/forward.safetensors");
    Error err;
    cJSON *root;
    CHECK((root = load_refs(&err)) != NULL, "%s", err.msg);
    Pix2Struct m;
    CHECK(pix2struct_load(&m, dir, &err) == 0, "%s", err.msg);
    SafeTensors ref;
    CHECK(st_open(&ref, fwd, &err) == 0, "%s", err.msg);
    Pix2StructState s[4];
    for (int i = 0; i < 4; i++) CHECK(pix2struct_state_new(&s[i], &m, 512, 32, test_pool(2), &err) == 0, "%s", err.msg);
    int checked = 0, failed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        if (failed) break;
        const char *img = cJSON_GetStringValue(cJSON_GetObjectItem(c, "image"));
        float *fp = f32_copy(find(&ref, img, "mp512.flattened_patches"));
        float *mask = f32_copy(find(&ref, img, "mp512.attention_mask"));
        int rc = pix2struct_encode(&m, &s[0], fp, mask, 512, &err);
        free(fp);
        free(mask);
        for (int i = 1; i < 4 && rc == 0; i++) rc = pix2struct_state_copy_encoder(&s[i], &s[0], &m, &err);
        BeamOptions o = beam_defaults();
        o.num_beams = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "num_beams"));
        o.length_penalty = (float)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "length_penalty"));
        o.early_stopping = cJSON_IsTrue(cJSON_GetObjectItem(c, "early_stopping"));
        o.eos_id = m.config.eos_id;
        o.max_new_tokens = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "max_new_tokens"));
        int want[64], got[64], n_got = 0, start = m.config.decoder_start_id;
        int nw = json_ids(cJSON_GetObjectItem(c, "ids"), want, 64);
        Pix2StructDecoder pd;
        Decoder d = pix2struct_decoder(&pd, &m, s, 4);
        if (rc == 0) rc = beam_search(&d, &start, 1, &o, got, &n_got, NULL, &err);
        if (rc) {
            test_fail(__FILE__, __LINE__, "%s", err.msg);
            break;
        }
        failed = n_got + 1 != nw;
        for (int i = 0; i < n_got && !failed; i++) failed = got[i] != want[i + 1];
        if (failed)
            test_fail(__FILE__, __LINE__, "case %d (%s, %d beams): %d ids, HF %d; first difference at %d", checked, img,
                      o.num_beams, n_got + 1, nw, n_got);
        checked++;
    }
    for (int i = 0; i < 4; i++) pix2struct_state_free(&s[i]);
    st_close(&ref);
    pix2struct_free(&m);
    cJSON_Delete(root);
    CHECK(checked == 6 || test_failed(), "expected 6 beam cases, checked %d", checked);
}

/* torch's _relative_position_bucket(-d, bidirectional=False): the first
 * distance of each log-spaced bucket for 32 / 128, and a small table. */
static void t_pix2struct_relative_buckets(void) {
    static const int starts[16] = {16, 19, 21, 24, 27, 31, 35, 40, 46, 52, 59, 67, 77, 87, 99, 113};
    int b = 15;
    for (int d = 0; d < 300; d++) {
        if (d < 16) b = d;
        else if (b < 31 && d == starts[b - 15]) b++;
        CHECK(pix2struct_relative_bucket(d, 32, 128) == b, "distance %d: bucket %d, torch %d", d,
              pix2struct_relative_bucket(d, 32, 128), b);
    }
    static const int small[20] = {0, 1, 2, 3, 4, 4, 5, 5, 5, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7};
    for (int d = 0; d < 20; d++)
        CHECK(pix2struct_relative_bucket(d, 8, 20) == small[d], "8/20 distance %d: %d, torch %d", d,
              pix2struct_relative_bucket(d, 8, 20), small[d]);
}

/* Bad inputs to encode/decode: too many patches, a mask that is not 0/1,
 * ids outside the embedders, decoding before encoding, past the cache. */
static void t_pix2struct_bad_inputs(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    NEED_FIXTURE(fwd, "pix2struct-tiny/ref/forward.safetensors");
    Error err;
    Pix2Struct m;
    CHECK(pix2struct_load(&m, dir, &err) == 0, "%s", err.msg);
    SafeTensors ref;
    CHECK(st_open(&ref, fwd, &err) == 0, "%s", err.msg);
    float *fp = f32_copy(find(&ref, "img0", "mp512.flattened_patches"));
    float *mask = f32_copy(find(&ref, "img0", "mp512.attention_mask"));
    Pix2StructState s;
    CHECK(pix2struct_state_new(&s, &m, 100, 8, NULL, &err) == 0, "%s", err.msg);
    int start = 0;
    CHECK(pix2struct_decode(&m, &s, &start, 1, 0, NULL, &err) != 0 && strstr(err.msg, "no image"),
          "decoded without an image: '%s'", err.msg);
    CHECK(pix2struct_encode(&m, &s, fp, mask, 512, &err) != 0, "encoded 512 patches into a state of 100");
    CHECK(strstr(err.msg, "512") && strstr(err.msg, "max_patches"), "message '%s'", err.msg);
    CHECK(pix2struct_encode(&m, &s, fp, NULL, 100, &err) != 0 && strstr(err.msg, "attention_mask"),
          "no mask accepted: '%s'", err.msg);
    mask[7] = 0.5f;
    CHECK(pix2struct_encode(&m, &s, fp, mask, 100, &err) != 0 && strstr(err.msg, "attention_mask[7]"),
          "mask 0.5 accepted: '%s'", err.msg);
    mask[7] = 1.0f;
    fp[3 * 770 + 1] = 4096.0f;
    CHECK(pix2struct_encode(&m, &s, fp, mask, 100, &err) != 0 && strstr(err.msg, "row 3") &&
              strstr(err.msg, "column id 4096"),
          "column id 4096 accepted: '%s'", err.msg);
    fp[3 * 770 + 1] = 2.5f;
    CHECK(pix2struct_encode(&m, &s, fp, mask, 100, &err) != 0, "column id 2.5 accepted");
    fp[3 * 770 + 1] = 4.0f;
    CHECK(pix2struct_encode(&m, &s, fp, mask, 100, &err) == 0, "%s", err.msg);
    int toks[9] = {0, 5, 6, 7, 8, 9, 10, 11, 12};
    CHECK(pix2struct_decode(&m, &s, toks, 9, 0, NULL, &err) != 0 && strstr(err.msg, "8"), "9 tokens in 8: '%s'",
          err.msg);
    toks[1] = 2100;
    CHECK(pix2struct_decode(&m, &s, toks, 2, 0, NULL, &err) != 0 && strstr(err.msg, "2100"), "token 2100: '%s'",
          err.msg);
    Pix2StructState small;
    CHECK(pix2struct_state_new(&small, &m, 50, 8, NULL, &err) == 0, "%s", err.msg);
    CHECK(pix2struct_state_copy_encoder(&small, &s, &m, &err) != 0 && strstr(err.msg, "100"),
          "copied 100 patches into 50: '%s'", err.msg);
    pix2struct_state_free(&small);
    pix2struct_state_free(&s);
    free(fp);
    free(mask);
    st_close(&ref);
    pix2struct_free(&m);
}

/* Masks the processor never makes, against HF: every patch masked (HF's
 * softmax over all-finfo.min scores is uniform over every patch, in the
 * encoder and in cross-attention) and masked patches between unmasked
 * ones. The references hold 7 significant digits. */
static void t_pix2struct_masks_match_hf(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    NEED_FIXTURE(fwd, "pix2struct-tiny/ref/forward.safetensors");
    Error err;
    cJSON *root = load_refs(&err);
    CHECK(root, "%s", err.msg);
    Pix2Struct m;
    CHECK(pix2struct_load(&m, dir, &err) == 0, "%s", err.msg);
    SafeTensors ref;
    CHECK(st_open(&ref, fwd, &err) == 0, "%s", err.msg);
    Pix2StructState s;
    CHECK(pix2struct_state_new(&s, &m, 16, 4, NULL, &err) == 0, "%s", err.msg);
    int checked = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "masks")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(c, "name"));
        float *fp = f32_copy(find(&ref, cJSON_GetStringValue(cJSON_GetObjectItem(c, "image")),
                                  "mp512.flattened_patches"));
        float mask[16];
        for (int i = 0; i < 16; i++)
            mask[i] = (float)cJSON_GetNumberValue(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "attention_mask"), i));
        int rc = pix2struct_encode(&m, &s, fp, mask, 16, &err);
        free(fp);
        CHECK(rc == 0, "%s", err.msg);
        float mref, d = json_diff(s.encoder_out, cJSON_GetObjectItem(c, "encoder_last_hidden_state"), 16 * 32, &mref);
        printf("     %s: encoder max|diff| %.3g (max|ref| %.3g)\n", name, (double)d, (double)mref);
        CHECK(d <= 1e-4f * (mref > 1 ? mref : 1), "%s: encoder output differs by %g", name, d);
        int ids[2], V = m.config.text.vocab_size;
        json_ids(cJSON_GetObjectItem(c, "decoder_input_ids"), ids, 2);
        float *logits = malloc(sizeof(float) * 2 * (size_t)V);
        rc = pix2struct_decode(&m, &s, ids, 2, 0, logits, &err);
        for (int r = 0; r < 2 && rc == 0; r++) {
            d = json_diff(logits + (size_t)r * V, cJSON_GetArrayItem(cJSON_GetObjectItem(c, "logits_first100"), r), 100,
                          &mref);
            if (d > 1e-4f * (mref > 1 ? mref : 1)) rc = 1;
        }
        free(logits);
        CHECK(rc == 0, "%s: decoder logits differ by %g (%s)", name, d, rc < 0 ? err.msg : "values");
        checked++;
    }
    pix2struct_state_free(&s);
    st_close(&ref);
    pix2struct_free(&m);
    cJSON_Delete(root);
    CHECK(checked == 2, "checked %d mask cases", checked);
}

/* ------------------------------------------------------------- T5 tokenizer */

static void t_pix2struct_t5_tokenization_fixture(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    NEED_FIXTURE(tj, "pix2struct-tiny/ref/tokenization.json");
    Error err;
    T5Tokenizer *t;
    CHECK(t5_load(&t, dir, &err) == 0, "%s", err.msg);
    cJSON *root;
    CHECK(json_load_file(&root, tj, 1 << 22, &err) == 0, "%s", err.msg);
    int checked = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(c, "text"));
        int want[256], nw;
        int *ids = NULL, n = 0;
        nw = json_ids(cJSON_GetObjectItem(c, "ids_with_eos"), want, 256);
        CHECK(t5_encode(t, text, 1, &ids, &n, &err) == 0, "%s", err.msg);
        int same = n == nw;
        for (int i = 0; same && i < n; i++) same = ids[i] == want[i];
        free(ids);
        CHECK(same, "case %d '%s': ids with eos differ (%d ids, HF %d)", checked, text, n, nw);
        nw = json_ids(cJSON_GetObjectItem(c, "ids_no_special"), want, 256);
        CHECK(t5_encode(t, text, 0, &ids, &n, &err) == 0, "%s", err.msg);
        same = n == nw;
        for (int i = 0; same && i < n; i++) same = ids[i] == want[i];
        CHECK(same, "case %d '%s': ids without eos differ (%d ids, HF %d)", checked, text, n, nw);
        const cJSON *pieces = cJSON_GetObjectItem(c, "pieces");
        CHECK(cJSON_GetArraySize(pieces) == n, "case %d: %d pieces for %d ids", checked, cJSON_GetArraySize(pieces), n);
        for (int i = 0; i < n; i++) {
            const char *p = cJSON_GetStringValue(cJSON_GetArrayItem(pieces, i));
            CHECK(strcmp(t5_token(t, ids[i]), p) == 0, "case %d: piece %d is '%s', HF '%s'", checked, i,
                  t5_token(t, ids[i]), p);
        }
        free(ids);
        nw = json_ids(cJSON_GetObjectItem(c, "ids_with_eos"), want, 256);
        const char *keys[2] = {"decode", "decode_skip_special"};
        for (int k = 0; k < 2; k++) {
            char *out;
            CHECK(t5_decode(t, want, nw, k, &out, &err) == 0, "%s", err.msg);
            const char *w = cJSON_GetStringValue(cJSON_GetObjectItem(c, keys[k]));
            int eq = strcmp(out, w) == 0;
            CHECK(eq, "case %d %s: '%s', HF '%s'", checked, keys[k], out, w);
            free(out);
        }
        checked++;
    }
    CHECK(checked == 11, "expected 11 cases, checked %d", checked);

    const cJSON *sp = cJSON_GetObjectItem(root, "special");
    int nl = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(sp, "byte_piece_0x0A_id"));
    CHECK(t5_token_id(t, "<0x0A>") == nl, "<0x0A> is %d, HF %d", t5_token_id(t, "<0x0A>"), nl);
    char *out;
    CHECK(t5_decode(t, &nl, 1, 0, &out, &err) == 0, "%s", err.msg);
    CHECK(strcmp(out, cJSON_GetStringValue(cJSON_GetObjectItem(sp, "decode_of_byte_piece_0x0A"))) == 0,
          "decode of <0x0A> alone: '%s'", out);
    free(out);
    int table[3] = {260, 13, 318}; /* "|", "<0x0A>", "▁2019" */
    CHECK(t5_decode(t, table, 3, 0, &out, &err) == 0, "%s", err.msg);
    CHECK(strcmp(out, cJSON_GetStringValue(cJSON_GetObjectItem(sp, "decode_table_ids"))) == 0, "table decode '%s'",
          out);
    free(out);
    CHECK(t5_extra_id(t, 0) == (int)cJSON_GetNumberValue(cJSON_GetObjectItem(sp, "extra_id_0")) &&
              t5_extra_id(t, 99) == (int)cJSON_GetNumberValue(cJSON_GetObjectItem(sp, "extra_id_99")),
          "extra ids %d %d", t5_extra_id(t, 0), t5_extra_id(t, 99));
    CHECK(t5_vocab_size(t) == (int)cJSON_GetNumberValue(cJSON_GetObjectItem(sp, "len_tokenizer")), "len %d",
          t5_vocab_size(t));
    CHECK(t5_token_id(t, "<extra_id_78>") == 2021 && strcmp(t5_token(t, 2021), "<extra_id_78>") == 0, "extra id 78");
    cJSON_Delete(root);
    t5_free(t);
}

/* Decodes of generated ids with extra ids and odd bytes in them: the raw
 * and skip_special texts forward.json records for HF's generate output. */
static void t_pix2struct_t5_decode_generated(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    NEED_FIXTURE(fjp, "pix2struct-tiny/ref/forward.json");
    Error err;
    T5Tokenizer *t;
    CHECK(t5_load(&t, dir, &err) == 0, "%s", err.msg);
    cJSON *fj;
    CHECK(json_load_file(&fj, fjp, 1 << 22, &err) == 0, "%s", err.msg);
    int checked = 0;
    for (int r = 0; r < 2; r++) {
        const char *variants[2] = {"2048", "512"};
        for (int v = 0; v < 2; v++) {
            const cJSON *run = cJSON_GetArrayItem(cJSON_GetObjectItem(fj, "runs"), r);
            const cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(run, "variants"), variants[v]),
                                                 "generate");
            int ids[64], n = json_ids(cJSON_GetObjectItem(g, "ids"), ids, 64);
            const char *keys[2] = {"text_raw", "text"};
            for (int k = 0; k < 2; k++) {
                char *out;
                CHECK(t5_decode(t, ids, n, k, &out, &err) == 0, "%s", err.msg);
                const char *w = cJSON_GetStringValue(cJSON_GetObjectItem(g, keys[k]));
                int eq = strcmp(out, w) == 0;
                CHECK(eq, "run %d mp%s %s: '%s', HF '%s'", r, variants[v], keys[k], out, w);
                free(out);
                checked++;
            }
        }
    }
    cJSON_Delete(fj);
    t5_free(t);
    CHECK(checked == 8, "checked %d", checked);
}

static int ids_equal(const int *a, int na, const cJSON *want) {
    int w[256], nw = json_ids(want, w, 256);
    if (na != nw) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != w[i]) return 0;
    return 1;
}

static int decodes_to(const T5Tokenizer *t, const int *ids, int n, int skip, const cJSON *want, char **got) {
    Error err;
    if (t5_decode(t, ids, n, skip, got, &err) != 0) return 0;
    return strcmp(*got, cJSON_GetStringValue(want)) == 0;
}

/* Texts and ids the fixture does not cover, against HF's slow T5Tokenizer
 * (tests/data/pix2struct_refs.json): whitespace eaten by extra ids, unicode
 * spaces, adjacent specials, near misses of special tokens, eos already
 * last, clean-up, byte runs that are not UTF-8. */
static void t_pix2struct_t5_more_cases_match_hf(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    Error err;
    cJSON *root = load_refs(&err);
    CHECK(root, "%s", err.msg);
    T5Tokenizer *t;
    CHECK(t5_load(&t, dir, &err) == 0, "%s", err.msg);
    const cJSON *tok = cJSON_GetObjectItem(root, "tokenizer"), *c;
    int checked = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(tok, "texts")) {
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(c, "text"));
        int *ids, n;
        char *out = NULL;
        CHECK(t5_encode(t, text, 0, &ids, &n, &err) == 0, "%s", err.msg);
        int ok = ids_equal(ids, n, cJSON_GetObjectItem(c, "ids_no_special"));
        free(ids);
        CHECK(ok, "'%s': ids without eos differ", text);
        CHECK(t5_encode(t, text, 1, &ids, &n, &err) == 0, "%s", err.msg);
        ok = ids_equal(ids, n, cJSON_GetObjectItem(c, "ids_with_eos"));
        for (int k = 0; k < 2 && ok; k++) {
            ok = decodes_to(t, ids, n, k, cJSON_GetObjectItem(c, k ? "decode_skip_special" : "decode"), &out);
            if (!ok) test_fail(__FILE__, __LINE__, "'%s': decode (skip %d) is '%s'", text, k, out ? out : "");
            free(out);
            out = NULL;
        }
        free(ids);
        if (!ok) break;
        checked++;
    }
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(tok, "ids")) {
        if (test_failed()) break;
        int ids[64], n = json_ids(cJSON_GetObjectItem(c, "ids"), ids, 64);
        for (int k = 0; k < 2; k++) {
            char *out = NULL;
            int ok = decodes_to(t, ids, n, k, cJSON_GetObjectItem(c, k ? "decode_skip_special" : "decode"), &out);
            if (!ok)
                test_fail(__FILE__, __LINE__, "ids case %d: decode (skip %d) is '%s', HF '%s'", checked, k,
                          out ? out : "", cJSON_GetStringValue(cJSON_GetObjectItem(c, k ? "decode_skip_special" : "decode")));
            free(out);
        }
        checked++;
    }
    t5_free(t);
    cJSON_Delete(root);
    CHECK(checked == 15 || test_failed(), "checked %d cases", checked);
}

/* A tokenizer folder: the fixture's spiece.model and one extra file. */
static const char *t5_dir(const char *name, const char *file, const char *text) {
    const char *spiece = fixture_path("pix2struct-tiny/spiece.model");
    if (!spiece) return NULL;
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(), name);
    mkdir(dir, 0755);
    char path[600];
    snprintf(path, sizeof path, "%s/spiece.model", dir);
    unlink(path);
    if (symlink(spiece, path) != 0) return NULL;
    snprintf(path, sizeof path, "%s/%s", name, file);
    test_write_file(path, text, strlen(text));
    return dir;
}

static void t_pix2struct_t5_refusals(void) {
    NEED_FIXTURE(sp, "pix2struct-tiny/spiece.model");
    struct {
        const char *file, *text, *want1, *want2;
    } cases[] = {
        {"tokenizer_config.json", "{\"legacy\": false}", "tokenizer_config.json", "legacy"},
        {"tokenizer_config.json", "{\"extra_ids\": -1}", "tokenizer_config.json", "extra_ids"},
        {"added_tokens.json", "{\"<extra_id_0>\": 2099, \"<mask>\": 2100}", "added_tokens.json", "'<mask>'"},
        {"added_tokens.json", "{\"<extra_id_1>\": 2099}", "added_tokens.json", "2098"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *dir = t5_dir("t5-bad", cases[i].file, cases[i].text);
        CHECK(dir != NULL, "could not make a tokenizer folder");
        T5Tokenizer *t;
        Error err;
        CHECK(t5_load(&t, dir, &err) != 0, "case %zu accepted", i);
        CHECK(t == NULL && strstr(err.msg, cases[i].want1) && strstr(err.msg, cases[i].want2), "case %zu: '%s'", i,
              err.msg);
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, cases[i].file);
        unlink(path);
    }
    /* extra_ids 3: ids 2000..2002, <extra_id_3> is plain text */
    const char *dir = t5_dir("t5-three", "tokenizer_config.json", "{\"extra_ids\": 3}");
    CHECK(dir != NULL, "could not make a tokenizer folder");
    T5Tokenizer *t;
    Error err;
    CHECK(t5_load(&t, dir, &err) == 0, "%s", err.msg);
    int *ids, n;
    CHECK(t5_encode(t, "<extra_id_2> <extra_id_3>", 0, &ids, &n, &err) == 0, "%s", err.msg);
    int ok = n > 2 && ids[0] == 2000 && t5_vocab_size(t) == 2003 && t5_extra_id(t, 0) == 2002 && t5_extra_id(t, 3) < 0;
    free(ids);
    t5_free(t);
    CHECK(ok, "extra_ids 3: %d ids", n);
}

void suite_pix2struct(void) {
    RUN(t_pix2struct_config_fixture_and_defaults);
    RUN(t_pix2struct_config_refusals);
    RUN(t_pix2struct_patch_projection_mismatch);
    RUN(t_pix2struct_relative_buckets);
    RUN(t_pix2struct_bar_mp512_forward);
    RUN(t_pix2struct_plot_mp512_forward_two_threads);
    RUN(t_pix2struct_greedy_mp512);
    RUN(t_pix2struct_mp2048_decoder_on_hf_encoder_output);
    RUN(t_pix2struct_mp2048_encoder_from_vmed_patches);
    RUN(t_pix2struct_beam_search_matches_hf);
    RUN(t_pix2struct_bad_inputs);
    RUN(t_pix2struct_masks_match_hf);
    RUN(t_pix2struct_t5_tokenization_fixture);
    RUN(t_pix2struct_t5_decode_generated);
    RUN(t_pix2struct_t5_more_cases_match_hf);
    RUN(t_pix2struct_t5_refusals);
}
