#include "models/git.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "models/weights.h"
#include "tensor/attention.h"
#include "tensor/ops.h"
#include "tensor/rows.h"

static int load_layer(GitLayer *L, const GitConfig *c, const SafeTensors *st, int i, Error *err) {
    char name[256];
    struct {
        Tensor *m;
        float **b;
        const char *what;
        int64_t rows, cols;
    } lin[] = {
        {&L->wq, &L->bq, "attention.self.query", c->dim, c->dim},
        {&L->wk, &L->bk, "attention.self.key", c->dim, c->dim},
        {&L->wv, &L->bv, "attention.self.value", c->dim, c->dim},
        {&L->wo, &L->bo, "attention.output.dense", c->dim, c->dim},
        {&L->w_in, &L->b_in, "intermediate.dense", c->hidden_dim, c->dim},
        {&L->w_out, &L->b_out, "output.dense", c->dim, c->hidden_dim},
    };
    for (size_t j = 0; j < sizeof lin / sizeof lin[0]; j++) {
        snprintf(name, sizeof name, "git.encoder.layer.%d.%s.weight", i, lin[j].what);
        if (weight_matrix(lin[j].m, st, name, lin[j].rows, lin[j].cols, err)) return -1;
        snprintf(name, sizeof name, "git.encoder.layer.%d.%s.bias", i, lin[j].what);
        if (weight_vector(lin[j].b, st, name, lin[j].rows, err)) return -1;
    }
    struct {
        float **dst;
        const char *what;
    } vec[] = {{&L->att_ln_w, "attention.output.LayerNorm.weight"}, {&L->att_ln_b, "attention.output.LayerNorm.bias"},
               {&L->out_ln_w, "output.LayerNorm.weight"}, {&L->out_ln_b, "output.LayerNorm.bias"}};
    for (size_t j = 0; j < 4; j++) {
        snprintf(name, sizeof name, "git.encoder.layer.%d.%s", i, vec[j].what);
        if (weight_vector(vec[j].dst, st, name, c->dim, err)) return -1;
    }
    return 0;
}

int git_load(Git *m, const char *dir, Error *err) {
    memset(m, 0, sizeof *m);
    GitConfig *c = &m->config;
    if (git_config_load(c, dir, err)) return -1;
    if (st_open(&m->files, dir, err)) return -1;
    GitWeights *w = &m->weights;
    const SafeTensors *st = &m->files;
    if (clip_vision_load(&w->vision, &c->vision, st, "git.image_encoder.vision_model.", err)) goto fail;
    if (weight_matrix(&w->proj, st, "git.visual_projection.visual_projection.0.weight", c->dim, c->vision.dim, err) ||
        weight_vector(&w->proj_b, st, "git.visual_projection.visual_projection.0.bias", c->dim, err) ||
        weight_vector(&w->proj_ln_w, st, "git.visual_projection.visual_projection.1.weight", c->dim, err) ||
        weight_vector(&w->proj_ln_b, st, "git.visual_projection.visual_projection.1.bias", c->dim, err) ||
        weight_matrix(&w->word_emb, st, "git.embeddings.word_embeddings.weight", c->vocab_size, c->dim, err) ||
        weight_matrix(&w->pos_emb, st, "git.embeddings.position_embeddings.weight", c->max_pos, c->dim, err) ||
        weight_vector(&w->emb_ln_w, st, "git.embeddings.LayerNorm.weight", c->dim, err) ||
        weight_vector(&w->emb_ln_b, st, "git.embeddings.LayerNorm.bias", c->dim, err) ||
        weight_matrix(&w->out, st, "output.weight", c->vocab_size, c->dim, err) ||
        weight_vector(&w->out_b, st, "output.bias", c->vocab_size, err))
        goto fail;
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers) {
        error_set(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < c->n_layers; i++)
        if (load_layer(&w->layers[i], c, st, i, err)) goto fail;
    return 0;
fail:
    git_free(m);
    return -1;
}

void git_free(Git *m) {
    GitWeights *w = &m->weights;
    clip_vision_free(&w->vision, &m->config.vision);
    if (w->layers) {
        for (int i = 0; i < m->config.n_layers; i++) {
            GitLayer *L = &w->layers[i];
            float *v[] = {L->bq, L->bk, L->bv, L->bo, L->b_in, L->b_out, L->att_ln_w, L->att_ln_b, L->out_ln_w, L->out_ln_b};
            for (size_t j = 0; j < sizeof v / sizeof v[0]; j++) free(v[j]);
        }
    }
    free(w->layers);
    float *v[] = {w->proj_b, w->proj_ln_w, w->proj_ln_b, w->emb_ln_w, w->emb_ln_b, w->out_b};
    for (size_t j = 0; j < sizeof v / sizeof v[0]; j++) free(v[j]);
    free(m->requantized);
    st_close(&m->files);
    memset(m, 0, sizeof *m);
}

int git_quantize(Git *m, DType t, Error *err) {
    if (m->requantized) return error_set(err, "the GIT model is already requantized");
    const GitConfig *c = &m->config;
    GitWeights *w = &m->weights;
    int n = 1 + 6 * c->vision.n_layers + 1 + 6 * c->n_layers + 1, i = 0;
    Tensor **mats = malloc(sizeof(Tensor *) * (size_t)n);
    char (*names)[48] = malloc(sizeof(*names) * (size_t)n);
    const char **name_ptrs = malloc(sizeof(char *) * (size_t)n);
    if (!mats || !names || !name_ptrs) {
        free(mats), free(names), free(name_ptrs);
        return error_set(err, "out of memory");
    }
    static const char *vis[] = {"q", "k", "v", "o", "fc1", "fc2"}, *txt[] = {"q", "k", "v", "o", "in", "out"};
    snprintf(names[i], sizeof names[i], "the patch embedding"), mats[i++] = &w->vision.patch;
    for (int l = 0; l < c->vision.n_layers; l++) {
        ClipLayer *L = &w->vision.layers[l];
        Tensor *v[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->fc1, &L->fc2};
        for (int j = 0; j < 6; j++) snprintf(names[i], sizeof names[i], "vision layer %d %s", l, vis[j]), mats[i++] = v[j];
    }
    snprintf(names[i], sizeof names[i], "the visual projection"), mats[i++] = &w->proj;
    for (int l = 0; l < c->n_layers; l++) {
        GitLayer *L = &w->layers[l];
        Tensor *v[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_in, &L->w_out};
        for (int j = 0; j < 6; j++) snprintf(names[i], sizeof names[i], "text layer %d %s", l, txt[j]), mats[i++] = v[j];
    }
    snprintf(names[i], sizeof names[i], "the LM head"), mats[i++] = &w->out;
    for (int j = 0; j < n; j++) name_ptrs[j] = names[j];
    int rc = weights_requantize(mats, name_ptrs, n, t, &m->requantized, err);
    free(mats), free(names), free(name_ptrs);
    return rc;
}

int git_state_new(GitState *s, const Git *m, int max_text, ThreadPool *pool, Error *err) {
    int n_threads = pool_size(pool);
    memset(s, 0, sizeof *s);
    const GitConfig *c = &m->config;
    if (max_text < 1 || max_text > c->max_pos)
        return error_set(err, "text length %d is out of range 1..%d (max_position_embeddings)", max_text, c->max_pos);
    s->n_img = c->n_image_tokens;
    s->max_text = max_text;
    s->n_threads = n_threads;
    s->kernel = kernel_best();
    size_t R = (size_t)(s->n_img > max_text ? s->n_img : max_text), D = (size_t)c->dim, H = (size_t)c->hidden_dim;
    size_t ctx = (size_t)(s->n_img + max_text), max_k = H > D ? H : D;
    if ((size_t)c->vision.dim > max_k) max_k = (size_t)c->vision.dim;
    size_t sizes[] = {(size_t)s->n_img * D, R * D, R * D, R * D, R * D, R * D, R * D, R * H,
                      (size_t)c->n_layers * ctx * D, (size_t)c->n_layers * ctx * D, attention_scratch_floats(n_threads, (int)ctx, c->dim / c->n_heads),
                      matmul_scratch_floats(n_threads, (long)max_k), (size_t)c->vocab_size};
    float **ptrs[] = {&s->projected, &s->x, &s->h, &s->q, &s->k, &s->v, &s->att, &s->ff,
                      &s->key_cache, &s->value_cache, &s->att_scratch, &s->mm_scratch, &s->logits};
    if (arena_carve(&s->arena, ptrs, sizes, sizeof sizes / sizeof sizes[0], "GIT's run state", err)) return -1;
    if (clip_vision_state_new(&s->vision, &c->vision, n_threads, err)) {
        git_state_free(s);
        return -1;
    }
    s->pool = pool;
    return 0;
}

void git_state_free(GitState *s) {
    clip_vision_state_free(&s->vision);
    free(s->arena);
    memset(s, 0, sizeof *s);
}

static void mm(GitState *s, float *y, const float *x, int n, const Tensor *w, const float *bias) {
    matmul(s->pool, s->kernel, y, x, n, w, s->mm_scratch);
    rows_add_bias(s->pool, y, bias, n, w->shape[0]);
}

/* One BERT post-LN layer over n rows that sit at cache rows row0.. . Image
 * rows (row0 == 0) attend to all image rows; text rows causally to
 * everything before them. */
static void decoder_layer(const Git *m, GitState *s, int l, int n, int row0) {
    const GitConfig *c = &m->config;
    const GitLayer *L = &m->weights.layers[l];
    int D = c->dim, hd = D / c->n_heads, ctx = s->n_img + s->max_text;
    float *kc = s->key_cache + (size_t)l * ctx * D, *vc = s->value_cache + (size_t)l * ctx * D;
    mm(s, s->q, s->x, n, &L->wq, L->bq);
    mm(s, kc + (size_t)row0 * D, s->x, n, &L->wk, L->bk);
    mm(s, vc + (size_t)row0 * D, s->x, n, &L->wv, L->bv);
    int image = row0 == 0;
    Attention a = {.q = s->q, .q_stride = D, .k = kc, .v = vc, .kv_stride = D, .out = s->att, .out_stride = D,
                   .n_q = n, .n_heads = c->n_heads, .n_kv_heads = c->n_heads, .head_dim = hd,
                   .visible_base = row0, .causal = !image, .n_kv = image ? s->n_img : ctx,
                   .scale = 1.0f / sqrtf((float)hd), .scratch = s->att_scratch, .kernel = s->kernel};
    attention(s->pool, &a);
    mm(s, s->h, s->att, n, &L->wo, L->bo);
    rows_add(s->pool, s->h, s->x, n, D);
    rows_layernorm(s->pool, s->h, s->h, L->att_ln_w, L->att_ln_b, n, D, c->norm_eps);
    mm(s, s->ff, s->h, n, &L->w_in, L->b_in);
    rows_activate(s->pool, s->kernel, ACT_GELU_ERF, s->ff, n, c->hidden_dim);
    mm(s, s->x, s->ff, n, &L->w_out, L->b_out);
    rows_add(s->pool, s->x, s->h, n, D);
    rows_layernorm(s->pool, s->x, s->x, L->out_ln_w, L->out_ln_b, n, D, c->norm_eps);
}

void git_encode_image(const Git *m, GitState *s, const float *pixels) {
    const GitConfig *c = &m->config;
    const GitWeights *w = &m->weights;
    clip_vision_encode(&w->vision, &c->vision, &s->vision, s->pool, s->kernel, pixels);
    /* The vision dim and the text dim may differ; the projection maps one to the other. */
    mm(s, s->projected, s->vision.x, s->n_img, &w->proj, w->proj_b);
    rows_layernorm(s->pool, s->projected, s->projected, w->proj_ln_w, w->proj_ln_b, s->n_img, c->dim,
                   c->vision.norm_eps);
    memcpy(s->x, s->projected, sizeof(float) * (size_t)s->n_img * c->dim);
    for (int l = 0; l + 1 < c->n_layers; l++) decoder_layer(m, s, l, s->n_img, 0);
    /* Of the last layer, text rows read only the image rows' keys and
     * values; the rest of it (a sixth of the decoder's work on the image)
     * would never be read. */
    const GitLayer *L = &w->layers[c->n_layers - 1];
    size_t layer_rows = (size_t)(s->n_img + s->max_text) * (size_t)c->dim * (size_t)(c->n_layers - 1);
    mm(s, s->key_cache + layer_rows, s->x, s->n_img, &L->wk, L->bk);
    mm(s, s->value_cache + layer_rows, s->x, s->n_img, &L->wv, L->bv);
}

static void copy_cache_rows(GitState *dst, const GitState *src, const Git *m, int row0, int row1) {
    const GitConfig *c = &m->config;
    size_t D = (size_t)c->dim, ctx = (size_t)(src->n_img + src->max_text);
    for (int l = 0; l < c->n_layers && row1 > row0; l++) {
        size_t off = ((size_t)l * ctx + (size_t)row0) * D, bytes = (size_t)(row1 - row0) * D * sizeof(float);
        memcpy(dst->key_cache + off, src->key_cache + off, bytes);
        memcpy(dst->value_cache + off, src->value_cache + off, bytes);
    }
}

void git_state_copy_image(GitState *dst, const GitState *src, const Git *m) {
    copy_cache_rows(dst, src, m, 0, src->n_img);
}

void git_state_copy_text(GitState *dst, const GitState *src, const Git *m, int from, int to) {
    copy_cache_rows(dst, src, m, src->n_img + from, src->n_img + to);
}

int git_forward(const Git *m, GitState *s, const int *tokens, int n, int pos, float *all_logits, Error *err) {
    const GitConfig *c = &m->config;
    const GitWeights *w = &m->weights;
    int D = c->dim;
    if (n < 1) return error_set(err, "nothing to run: 0 tokens");
    if (pos < 0 || pos + n > s->max_text)
        return error_set(err, "%d text tokens at position %d do not fit the %d the state holds", n, pos, s->max_text);
    int rows = s->n_img > s->max_text ? s->n_img : s->max_text;
    if (n > rows) return error_set(err, "%d tokens in one call, more than the %d rows of the run state", n, rows);
    size_t we = dtype_size(w->word_emb.dtype), pe = dtype_size(w->pos_emb.dtype);
    float *tmp = s->h;
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return error_set(err, "token id %d is outside the vocabulary (0..%d)", tokens[t], c->vocab_size - 1);
        float *x = s->x + (size_t)t * D;
        convert_to_f32(s->kernel, x, (const uint8_t *)w->word_emb.data + (size_t)tokens[t] * D * we, w->word_emb.dtype, D);
        convert_to_f32(s->kernel, tmp, (const uint8_t *)w->pos_emb.data + (size_t)(pos + t) * D * pe, w->pos_emb.dtype, D);
        for (int i = 0; i < D; i++) x[i] += tmp[i];
        layernorm(x, x, w->emb_ln_w, w->emb_ln_b, D, c->norm_eps);
    }
    for (int l = 0; l < c->n_layers; l++) decoder_layer(m, s, l, n, s->n_img + pos);
    if (all_logits) {
        mm(s, all_logits, s->x, n, &w->out, w->out_b);
        memcpy(s->logits, all_logits + (size_t)(n - 1) * c->vocab_size, sizeof(float) * (size_t)c->vocab_size);
    } else {
        mm(s, s->logits, s->x + (size_t)(n - 1) * D, 1, &w->out, w->out_b);
    }
    return 0;
}
