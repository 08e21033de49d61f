/* The Med-GIT expert: a radiology image in, a caption out, as HF
 * GitForCausalLM.generate(pixel_values) does it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "formats/json_util.h"
#include "generate/generate.h"
#include "image/clip_preprocess.h"
#include "models/git.h"
#include "pipeline/expert.h"
#include "text/wordpiece.h"

/* GIT's captioning examples use max_length 50; a generation_config.json
 * that sets max_length wins. */
#define MEDGIT_DEFAULT_MAX_LENGTH 50

typedef struct {
    Git model;
    WordPiece *tok;
    ClipProcessorConfig proc;
    GitState *states; /* one per beam, sharing one pool */
    int n_states;
    ThreadPool *pool;      /* o->pool, or own_pool */
    ThreadPool *own_pool;  /* made here when o->pool is NULL */
    float *pixels;
    ExpertOptions opt;
} MedGit;

static void medgit_free(void *self) {
    MedGit *g = self;
    if (!g) return;
    for (int i = 0; i < g->n_states; i++) git_state_free(&g->states[i]);
    free(g->states);
    pool_free(g->own_pool);
    free(g->pixels);
    wordpiece_free(g->tok);
    git_free(&g->model);
    free(g);
}

static int read_max_length(const char *dir, int *max_length, Error *err) {
    char path[1100];
    if (path_join(path, sizeof path, dir, "generation_config.json", err)) return -1;
    *max_length = MEDGIT_DEFAULT_MAX_LENGTH;
    if (!file_exists(path)) return 0;
    cJSON *root;
    if (json_load_file(&root, path, 1 << 20, err)) return -1;
    int64_t v = *max_length;
    int rc = cJSON_IsObject(root) ? json_opt_int(root, "max_length", &v, 2, 1 << 16, path, err)
                                  : error_set(err, "%s: not a JSON object", path);
    cJSON_Delete(root);
    *max_length = (int)v;
    return rc;
}

static int medgit_load(void **self, const char *dir, const ExpertOptions *o, Error *err) {
    *self = NULL;
    MedGit *g = calloc(1, sizeof *g);
    if (!g) return error_set(err, "out of memory");
    g->opt = *o;
    if (git_load(&g->model, dir, err) || (o->q8_0 && git_quantize(&g->model, DT_Q8_0, err)) ||
        wordpiece_load(&g->tok, dir, err) || clip_processor_config_load(&g->proc, dir, err))
        goto fail;
    const GitConfig *c = &g->model.config;
    int w, h;
    if (clip_output_size(&g->proc, c->vision.image_size, c->vision.image_size, &w, &h, err)) goto fail;
    if (w != c->vision.image_size || h != c->vision.image_size) {
        error_set(err, "%s: preprocessor_config.json makes %dx%d images but vision_config.image_size is %d", dir, w, h,
                  c->vision.image_size);
        goto fail;
    }
    if (wordpiece_vocab_size(g->tok) > c->vocab_size) {
        error_set(err, "%s: vocab.txt has %d tokens but config.json says vocab_size %d", dir,
                  wordpiece_vocab_size(g->tok), c->vocab_size);
        goto fail;
    }
    if (!g->opt.max_length && read_max_length(dir, &g->opt.max_length, err)) goto fail;
    if (g->opt.max_length < 2 || g->opt.max_length > c->max_pos) {
        error_set(err, "max_length %d is out of range 2..%d (max_position_embeddings)", g->opt.max_length, c->max_pos);
        goto fail;
    }
    g->n_states = o->num_beams > 1 ? o->num_beams : 1;
    g->states = calloc((size_t)g->n_states, sizeof *g->states);
    g->pixels = malloc(sizeof(float) * 3 * (size_t)c->vision.image_size * (size_t)c->vision.image_size);
    if (!g->states || !g->pixels) {
        error_set(err, "out of memory");
        goto fail;
    }
    if (!o->pool && o->n_threads > 1 && pool_create(&g->own_pool, o->n_threads, err)) goto fail;
    g->pool = o->pool ? o->pool : g->own_pool;
    for (int i = 0; i < g->n_states; i++) {
        if (git_state_new(&g->states[i], &g->model, g->opt.max_length, g->pool, err)) {
            g->n_states = i;
            goto fail;
        }
    }
    *self = g;
    return 0;
fail:
    medgit_free(g);
    return -1;
}

static int medgit_describe(void *self, const Image *img, ExpertOutput *out, Error *err) {
    MedGit *g = self;
    memset(out, 0, sizeof *out);
    const GitConfig *c = &g->model.config;
    Image rgb;
    if (image_to_rgb8(&rgb, img, err)) return -1;
    int rc = clip_preprocess(g->pixels, &rgb, &g->proc, err);
    image_free(&rgb);
    if (rc) return -1;
    git_encode_image(&g->model, &g->states[0], g->pixels);
    for (int i = 1; i < g->n_states; i++) git_state_copy_image(&g->states[i], &g->states[0], &g->model);

    int max_new = g->opt.max_length - 1, n_new = 0, bos = c->bos_id;
    out->ids = malloc(sizeof(int) * (size_t)(max_new + 2));
    if (!out->ids) return error_set(err, "out of memory");
    out->ids[0] = bos;
    GitDecoder gd;
    Decoder d = git_decoder(&gd, &g->model, g->states, g->n_states);
    if (g->opt.num_beams > 1) {
        BeamOptions b = beam_defaults();
        b.num_beams = g->opt.num_beams;
        b.max_new_tokens = max_new;
        b.length_penalty = g->opt.length_penalty;
        b.eos_id = c->eos_id;
        rc = beam_search(&d, &bos, 1, &b, out->ids + 1, &n_new, NULL, err);
    } else {
        GenerateOptions o = generate_defaults();
        o.sampling.greedy = 1;
        o.max_new_tokens = max_new;
        o.eos_id = c->eos_id;
        rc = generate(&d, &bos, 1, &o, out->ids + 1, &n_new, err);
    }
    out->n_ids = 1 + n_new;
    if (!rc) rc = wordpiece_decode(g->tok, out->ids, out->n_ids, 1, &out->text, err);
    if (rc) expert_output_free(out);
    return rc;
}

const ExpertKind EXPERT_MED_GIT = {
    "med-git",
    "radiology",
    "GIT radiology captioner (microsoft/git-base fine-tuned on ROCO): image -> caption",
    medgit_load,
    medgit_describe,
    medgit_free,
};
