#include "models/clip_vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "models/weights.h"
#include "tensor/attention.h"
#include "tensor/ops.h"
#include "tensor/rows.h"

static int load_layer(ClipLayer *L, const ClipVisionConfig *c, const SafeTensors *st, const char *prefix, int i,
                      Error *err) {
    char name[512];
    struct {
        Tensor *m;
        float **b;
        const char *what;
        int64_t rows, cols;
    } lin[] = {
        {&L->wq, &L->bq, "self_attn.q_proj", c->dim, c->dim},   {&L->wk, &L->bk, "self_attn.k_proj", c->dim, c->dim},
        {&L->wv, &L->bv, "self_attn.v_proj", c->dim, c->dim},   {&L->wo, &L->bo, "self_attn.out_proj", c->dim, c->dim},
        {&L->fc1, &L->b1, "mlp.fc1", c->hidden_dim, c->dim},     {&L->fc2, &L->b2, "mlp.fc2", c->dim, c->hidden_dim},
    };
    for (size_t j = 0; j < sizeof lin / sizeof lin[0]; j++) {
        snprintf(name, sizeof name, "%sencoder.layers.%d.%s.weight", prefix, i, lin[j].what);
        if (weight_matrix(lin[j].m, st, name, lin[j].rows, lin[j].cols, err)) return -1;
        snprintf(name, sizeof name, "%sencoder.layers.%d.%s.bias", prefix, i, lin[j].what);
        if (weight_vector(lin[j].b, st, name, lin[j].rows, err)) return -1;
    }
    struct {
        float **dst;
        const char *what;
    } vec[] = {{&L->ln1_w, "layer_norm1.weight"}, {&L->ln1_b, "layer_norm1.bias"},
               {&L->ln2_w, "layer_norm2.weight"}, {&L->ln2_b, "layer_norm2.bias"}};
    for (size_t j = 0; j < 4; j++) {
        snprintf(name, sizeof name, "%sencoder.layers.%d.%s", prefix, i, vec[j].what);
        if (weight_vector(vec[j].dst, st, name, c->dim, err)) return -1;
    }
    return 0;
}

int clip_vision_load(ClipVisionWeights *w, const ClipVisionConfig *c, const SafeTensors *st, const char *prefix,
                     Error *err) {
    memset(w, 0, sizeof *w);
    char name[512];
    int side = c->image_size / c->patch_size, n_tok = 1 + side * side;
    int64_t conv[4] = {c->dim, c->n_channels, c->patch_size, c->patch_size};
    snprintf(name, sizeof name, "%sembeddings.patch_embedding.weight", prefix);
    if (weight_view(&w->patch, st, name, 4, conv, err)) return -1;
    /* The kernel [dim, C, P, P] is a [dim, C*P*P] matrix over patches
     * flattened as (channel, row, column). */
    w->patch.ndim = 2;
    w->patch.shape[1] = (int64_t)c->n_channels * c->patch_size * c->patch_size;
    w->patch.stride[0] = w->patch.shape[1];
    w->patch.stride[1] = 1;
    snprintf(name, sizeof name, "%sembeddings.class_embedding", prefix);
    if (weight_vector(&w->class_emb, st, name, c->dim, err)) goto fail;
    Tensor pos;
    snprintf(name, sizeof name, "%sembeddings.position_embedding.weight", prefix);
    if (weight_matrix(&pos, st, name, n_tok, c->dim, err)) goto fail;
    w->pos_emb = malloc(sizeof(float) * (size_t)n_tok * (size_t)c->dim);
    if (!w->pos_emb) {
        error_set(err, "out of memory");
        goto fail;
    }
    convert_to_f32(KERNEL_SCALAR, w->pos_emb, pos.data, pos.dtype, (long)n_tok * c->dim);
    struct {
        float **dst;
        const char *what;
    } vec[] = {{&w->pre_w, "pre_layrnorm.weight"}, {&w->pre_b, "pre_layrnorm.bias"},
               {&w->post_w, "post_layernorm.weight"}, {&w->post_b, "post_layernorm.bias"}};
    for (size_t j = 0; j < 4; j++) {
        snprintf(name, sizeof name, "%s%s", prefix, vec[j].what);
        if (weight_vector(vec[j].dst, st, name, c->dim, err)) goto fail;
    }
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers) {
        error_set(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < c->n_layers; i++)
        if (load_layer(&w->layers[i], c, st, prefix, i, err)) goto fail;
    return 0;
fail:
    clip_vision_free(w, c);
    return -1;
}

void clip_vision_free(ClipVisionWeights *w, const ClipVisionConfig *c) {
    if (w->layers) {
        for (int i = 0; i < c->n_layers; i++) {
            ClipLayer *L = &w->layers[i];
            float *v[] = {L->ln1_w, L->ln1_b, L->ln2_w, L->ln2_b, L->bq, L->bk, L->bv, L->bo, L->b1, L->b2};
            for (size_t j = 0; j < sizeof v / sizeof v[0]; j++) free(v[j]);
        }
    }
    free(w->layers);
    free(w->class_emb);
    free(w->pos_emb);
    free(w->pre_w);
    free(w->pre_b);
    free(w->post_w);
    free(w->post_b);
    memset(w, 0, sizeof *w);
}

int clip_vision_state_new(ClipVisionState *s, const ClipVisionConfig *c, int n_threads, Error *err) {
    memset(s, 0, sizeof *s);
    int side = c->image_size / c->patch_size;
    size_t T = (size_t)(1 + side * side), D = (size_t)c->dim, H = (size_t)c->hidden_dim;
    size_t K = (size_t)c->n_channels * c->patch_size * c->patch_size;
    size_t max_k = H > D ? H : D;
    if (K > max_k) max_k = K;
    size_t sizes[] = {T * D, T * D, T * D, T * D, T * D, T * D, T * H, T * K,
                      attention_scratch_floats(n_threads, (int)T, c->dim / c->n_heads), matmul_scratch_floats(n_threads, (long)max_k)};
    float **ptrs[] = {&s->x, &s->h, &s->q, &s->k, &s->v, &s->att, &s->ff, &s->patches, &s->att_scratch, &s->mm_scratch};
    if (arena_carve(&s->arena, ptrs, sizes, sizeof sizes / sizeof sizes[0], "the vision encoder's run state", err))
        return -1;
    s->n_tokens = (int)T;
    return 0;
}

void clip_vision_state_free(ClipVisionState *s) {
    free(s->arena);
    memset(s, 0, sizeof *s);
}

/* Rows of the patch matrix: patch (py, px) flattened as (c, ky, kx), the
 * order of the convolution kernel's elements. */
static void extract_patches(float *out, const float *pix, const ClipVisionConfig *c) {
    int P = c->patch_size, S = c->image_size, side = S / P;
    for (int py = 0; py < side; py++)
        for (int px = 0; px < side; px++) {
            float *row = out + ((size_t)py * side + px) * (size_t)c->n_channels * P * P;
            for (int ch = 0; ch < c->n_channels; ch++)
                for (int ky = 0; ky < P; ky++)
                    memcpy(row + ((size_t)ch * P + ky) * P, pix + ((size_t)ch * S + py * P + ky) * S + px * P,
                           (size_t)P * sizeof(float));
        }
}

void clip_vision_encode(const ClipVisionWeights *w, const ClipVisionConfig *c, ClipVisionState *s, ThreadPool *pool,
                        KernelLevel kernel, const float *pixels) {
    int T = s->n_tokens, D = c->dim, hd = D / c->n_heads;
    extract_patches(s->patches, pixels, c);
    matmul(pool, kernel, s->x + D, s->patches, T - 1, &w->patch, s->mm_scratch);
    memcpy(s->x, w->class_emb, (size_t)D * sizeof(float));
    for (size_t i = 0; i < (size_t)T * D; i++) s->x[i] += w->pos_emb[i];
    rows_layernorm(pool, s->x, s->x, w->pre_w, w->pre_b, T, D, c->norm_eps);

    for (int l = 0; l < c->n_layers; l++) {
        const ClipLayer *L = &w->layers[l];
        rows_layernorm(pool, s->h, s->x, L->ln1_w, L->ln1_b, T, D, c->norm_eps);
        matmul(pool, kernel, s->q, s->h, T, &L->wq, s->mm_scratch);
        matmul(pool, kernel, s->k, s->h, T, &L->wk, s->mm_scratch);
        matmul(pool, kernel, s->v, s->h, T, &L->wv, s->mm_scratch);
        rows_add_bias(pool, s->q, L->bq, T, D);
        rows_add_bias(pool, s->k, L->bk, T, D);
        rows_add_bias(pool, s->v, L->bv, T, D);
        Attention a = {.q = s->q, .q_stride = D, .k = s->k, .v = s->v, .kv_stride = D, .out = s->att,
                       .out_stride = D, .n_q = T, .n_heads = c->n_heads, .n_kv_heads = c->n_heads, .head_dim = hd,
                       .causal = 0, .n_kv = T, .scale = 1.0f / sqrtf((float)hd), .scratch = s->att_scratch,
                       .kernel = kernel};
        attention(pool, &a);
        matmul(pool, kernel, s->h, s->att, T, &L->wo, s->mm_scratch);
        rows_add_bias(pool, s->h, L->bo, T, D);
        rows_add(pool, s->x, s->h, T, D);

        rows_layernorm(pool, s->h, s->x, L->ln2_w, L->ln2_b, T, D, c->norm_eps);
        matmul(pool, kernel, s->ff, s->h, T, &L->fc1, s->mm_scratch);
        rows_add_bias(pool, s->ff, L->b1, T, c->hidden_dim);
        rows_activate(pool, kernel, ACT_QUICK_GELU, s->ff, T, c->hidden_dim);
        matmul(pool, kernel, s->h, s->ff, T, &L->fc2, s->mm_scratch);
        rows_add_bias(pool, s->h, L->b2, T, D);
        rows_add(pool, s->x, s->h, T, D);
    }
    rows_layernorm(pool, s->x, s->x, w->post_w, w->post_b, T, D, c->norm_eps);
}
