#include "models/pix2struct.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "models/weights.h"
#include "tensor/attention.h"
#include "tensor/ops.h"
#include "tensor/rows.h"

/* ------------------------------------------------------------- loading */

typedef struct {
    Tensor *m;
    const char *what;
    int64_t rows, cols;
} MatrixSpec;

typedef struct {
    float **v;
    const char *what;
} NormSpec;

static int load_specs(const SafeTensors *st, const char *prefix, const MatrixSpec *mats, size_t n_mats,
                      const NormSpec *norms, size_t n_norms, int64_t dim, Error *err) {
    char name[256];
    for (size_t j = 0; j < n_mats; j++) {
        snprintf(name, sizeof name, "%s%s.weight", prefix, mats[j].what);
        if (weight_matrix(mats[j].m, st, name, mats[j].rows, mats[j].cols, err)) return -1;
    }
    for (size_t j = 0; j < n_norms; j++) {
        snprintf(name, sizeof name, "%s%s.weight", prefix, norms[j].what);
        if (weight_vector(norms[j].v, st, name, dim, err)) return -1;
    }
    return 0;
}

static int load_encoder_layer(P2sEncoderLayer *L, const Pix2StructVisionConfig *c, const SafeTensors *st, int i,
                              Error *err) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "encoder.encoder.layer.%d.", i);
    int64_t D = c->dim, I = (int64_t)c->n_heads * c->d_kv, F = c->d_ff;
    MatrixSpec mats[] = {
        {&L->wq, "attention.query", I, D}, {&L->wk, "attention.key", I, D}, {&L->wv, "attention.value", I, D},
        {&L->wo, "attention.output", D, I}, {&L->wi_0, "mlp.wi_0", F, D},   {&L->wi_1, "mlp.wi_1", F, D},
        {&L->wff, "mlp.wo", D, F},
    };
    NormSpec norms[] = {{&L->attn_norm, "pre_attention_layer_norm"}, {&L->mlp_norm, "pre_mlp_layer_norm"}};
    return load_specs(st, prefix, mats, sizeof mats / sizeof mats[0], norms, 2, D, err);
}

static int load_decoder_layer(P2sDecoderLayer *L, const Pix2StructTextConfig *c, const SafeTensors *st, int i,
                              Error *err) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "decoder.layer.%d.", i);
    int64_t D = c->dim, F = c->d_ff;
    MatrixSpec mats[] = {
        {&L->self_q, "self_attention.attention.query", D, D},
        {&L->self_k, "self_attention.attention.key", D, D},
        {&L->self_v, "self_attention.attention.value", D, D},
        {&L->self_o, "self_attention.attention.output", D, D},
        {&L->cross_q, "encoder_decoder_attention.attention.query", D, D},
        {&L->cross_k, "encoder_decoder_attention.attention.key", D, D},
        {&L->cross_v, "encoder_decoder_attention.attention.value", D, D},
        {&L->cross_o, "encoder_decoder_attention.attention.output", D, D},
        {&L->wi_0, "mlp.DenseReluDense.wi_0", F, D},
        {&L->wi_1, "mlp.DenseReluDense.wi_1", F, D},
        {&L->wff, "mlp.DenseReluDense.wo", D, F},
    };
    NormSpec norms[] = {{&L->self_norm, "self_attention.layer_norm"},
                        {&L->cross_norm, "encoder_decoder_attention.layer_norm"},
                        {&L->mlp_norm, "mlp.layer_norm"}};
    return load_specs(st, prefix, mats, sizeof mats / sizeof mats[0], norms, 3, D, err);
}

/* Layer 0's relative position table, as f32: it is read for every entry of
 * every bias matrix. */
static int load_relative_bias(float **out, const Pix2StructTextConfig *c, const SafeTensors *st, Error *err) {
    Tensor t;
    if (weight_matrix(&t, st, "decoder.layer.0.self_attention.attention.relative_attention_bias.weight",
                      c->rel_buckets, c->n_heads, err))
        return -1;
    *out = malloc(sizeof(float) * (size_t)c->rel_buckets * (size_t)c->n_heads);
    if (!*out) return error_set(err, "out of memory");
    convert_to_f32(KERNEL_SCALAR, *out, t.data, t.dtype, (long)c->rel_buckets * c->n_heads);
    return 0;
}

static int load_embeddings(Pix2StructWeights *w, const Pix2StructConfig *c, const SafeTensors *st, Error *err) {
    const Pix2StructVisionConfig *v = &c->vision;
    const Pix2StructTextConfig *t = &c->text;
    if (weight_matrix(&w->patch_proj, st, "encoder.embeddings.patch_projection.weight", v->dim, v->patch_dim, err) ||
        weight_vector(&w->patch_proj_b, st, "encoder.embeddings.patch_projection.bias", v->dim, err) ||
        weight_matrix(&w->row_emb, st, "encoder.embeddings.row_embedder.weight", v->seq_len, v->dim, err) ||
        weight_matrix(&w->col_emb, st, "encoder.embeddings.column_embedder.weight", v->seq_len, v->dim, err) ||
        weight_vector(&w->enc_norm, st, "encoder.layernorm.weight", v->dim, err) ||
        weight_matrix(&w->embed, st, "decoder.embed_tokens.weight", t->vocab_size, t->dim, err) ||
        weight_vector(&w->dec_norm, st, "decoder.final_layer_norm.weight", t->dim, err) ||
        load_relative_bias(&w->rel_bias, t, st, err))
        return -1;
    if (c->tie_embeddings) {
        w->lm_head = w->embed;
        return 0;
    }
    return weight_matrix(&w->lm_head, st, "decoder.lm_head.weight", t->vocab_size, t->dim, err);
}

int pix2struct_load(Pix2Struct *m, const char *dir, Error *err) {
    memset(m, 0, sizeof *m);
    Pix2StructConfig *c = &m->config;
    if (pix2struct_config_load(c, dir, err)) return -1;
    if (st_open(&m->files, dir, err)) return -1;
    Pix2StructWeights *w = &m->weights;
    if (load_embeddings(w, c, &m->files, err)) goto fail;
    w->enc = calloc((size_t)c->vision.n_layers, sizeof *w->enc);
    w->dec = calloc((size_t)c->text.n_layers, sizeof *w->dec);
    if (!w->enc || !w->dec) {
        error_set(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < c->vision.n_layers; i++)
        if (load_encoder_layer(&w->enc[i], &c->vision, &m->files, i, err)) goto fail;
    for (int i = 0; i < c->text.n_layers; i++)
        if (load_decoder_layer(&w->dec[i], &c->text, &m->files, i, err)) goto fail;
    return 0;
fail:
    pix2struct_free(m);
    return -1;
}

void pix2struct_free(Pix2Struct *m) {
    Pix2StructWeights *w = &m->weights;
    for (int i = 0; w->enc && i < m->config.vision.n_layers; i++) {
        free(w->enc[i].attn_norm);
        free(w->enc[i].mlp_norm);
    }
    for (int i = 0; w->dec && i < m->config.text.n_layers; i++) {
        free(w->dec[i].self_norm);
        free(w->dec[i].cross_norm);
        free(w->dec[i].mlp_norm);
    }
    free(w->enc);
    free(w->dec);
    free(w->patch_proj_b);
    free(w->enc_norm);
    free(w->dec_norm);
    free(w->rel_bias);
    st_close(&m->files);
    memset(m, 0, sizeof *m);
}

/* ----------------------------------------------------------- run state */

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

int pix2struct_relative_bucket(int distance, int num_buckets, int max_distance) {
    int max_exact = num_buckets / 2;
    if (distance < max_exact) return distance;
    /* in float32, as torch computes it, so the truncation lands alike */
    float scaled = logf((float)distance / (float)max_exact) / (float)log((double)max_distance / max_exact) *
                   (float)(num_buckets - max_exact);
    long bucket = max_exact + (long)scaled;
    return bucket < num_buckets - 1 ? (int)bucket : num_buckets - 1;
}

int pix2struct_state_new(Pix2StructState *s, const Pix2Struct *m, int max_patches, int max_text, ThreadPool *pool,
                         Error *err) {
    memset(s, 0, sizeof *s);
    const Pix2StructVisionConfig *vc = &m->config.vision;
    const Pix2StructTextConfig *tc = &m->config.text;
    if (max_patches < 1 || max_patches > (1 << 20))
        return error_set(err, "max_patches %d is out of range 1..%d", max_patches, 1 << 20);
    if (max_text < 1 || max_text > (1 << 16))
        return error_set(err, "decoder length %d is out of range 1..%d", max_text, 1 << 16);
    int n_threads = pool_size(pool);
    s->max_patches = max_patches;
    s->max_text = max_text;
    s->rows = max_patches > max_text ? max_patches : max_text;
    s->n_threads = n_threads;
    s->pool = pool;
    s->kernel = kernel_best();
    size_t P = (size_t)max_patches, T = (size_t)max_text, R = (size_t)s->rows, D = (size_t)tc->dim;
    size_t wide = max_size(D, (size_t)vc->n_heads * vc->d_kv), F = max_size((size_t)vc->d_ff, (size_t)tc->d_ff);
    size_t K = (size_t)vc->patch_dim, L = (size_t)tc->n_layers;
    size_t max_k = max_size(max_size(K, wide), F);
    size_t sizes[] = {P * K, P * D, R * D, R * D, R * wide, R * wide, R * wide, R * wide, R * F, R * F,
                      L * P * D, L * P * D, L * T * D, L * T * D, (size_t)tc->n_heads * T * T,
                      attention_scratch_floats(n_threads, (int)R, vc->d_kv > tc->d_kv ? vc->d_kv : tc->d_kv), matmul_scratch_floats(n_threads, (long)max_k), (size_t)tc->vocab_size};
    float **ptrs[] = {&s->patches, &s->encoder_out, &s->x, &s->h, &s->q, &s->k, &s->v, &s->att, &s->ff, &s->gate,
                      &s->cross_k, &s->cross_v, &s->key_cache, &s->value_cache, &s->bias,
                      &s->att_scratch, &s->mm_scratch, &s->logits};
    if (arena_carve(&s->arena, ptrs, sizes, sizeof sizes / sizeof sizes[0], "Pix2Struct's run state", err))
        return -1;
    s->bucket = malloc(sizeof(int) * (T + P));
    if (!s->bucket) {
        pix2struct_state_free(s);
        return error_set(err, "out of memory for Pix2Struct's run state");
    }
    s->keep = s->bucket + T;
    for (int d = 0; d < max_text; d++) s->bucket[d] = pix2struct_relative_bucket(d, tc->rel_buckets, tc->rel_max_distance);
    return 0;
}

void pix2struct_state_free(Pix2StructState *s) {
    free(s->arena);
    free(s->bucket);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------- helpers */

static void mm(Pix2StructState *s, float *y, const float *x, int n, const Tensor *w) {
    matmul(s->pool, s->kernel, y, x, n, w, s->mm_scratch);
}

static void add_rows(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* Row `row` of an embedding table, converted to f32, added to x. */
static void add_embedding(Pix2StructState *s, float *x, const Tensor *table, long row, float *tmp) {
    size_t dim = (size_t)table->shape[1];
    const uint8_t *src = (const uint8_t *)table->data + (size_t)row * dim * dtype_size(table->dtype);
    convert_to_f32(s->kernel, tmp, src, table->dtype, (long)dim);
    add_rows(x, tmp, dim);
}

/* h (n rows) -> h: wff(gelu_new(wi_0 h) * wi_1 h). */
static void gated_mlp(Pix2StructState *s, const Tensor *wi_0, const Tensor *wi_1, const Tensor *wff, int n) {
    long F = (long)wi_0->shape[0];
    mm(s, s->gate, s->h, n, wi_0);
    rows_activate(s->pool, s->kernel, ACT_GELU_TANH, s->gate, n, F);
    mm(s, s->ff, s->h, n, wi_1);
    rows_mul(s->pool, s->gate, s->ff, n, F);
    mm(s, s->h, s->gate, n, wff);
}

/* The attention mask must be HF's 0/1 floats; anything else is most
 * likely a caller passing the wrong buffer. */
static int check_mask(const float *mask, int n, Error *err) {
    if (!mask) return error_set(err, "pix2struct: attention_mask is required (the processor's output has one)");
    for (int i = 0; i < n; i++)
        if (mask[i] != 0.0f && mask[i] != 1.0f)
            return error_set(err, "pix2struct: attention_mask[%d] is %g; it must be 0 or 1", i, (double)mask[i]);
    return 0;
}

/* Fills s->keep with the rows that may be attended to and returns their
 * count. HF adds finfo(float32).min to the scores of masked keys, which
 * gives them weight exactly 0, so leaving them out is the same sum. When
 * every key is masked, every score is finfo.min and HF's softmax is uniform
 * over all of them: all rows with scale 0 do that. */
static int select_keys(Pix2StructState *s, const float *mask, int n, float *scale) {
    int n_keep = 0;
    for (int i = 0; i < n; i++)
        if (mask[i] != 0.0f) s->keep[n_keep++] = i;
    *scale = 1.0f;
    if (n_keep > 0) return n_keep;
    for (int i = 0; i < n; i++) s->keep[i] = i;
    *scale = 0.0f;
    return n;
}

/* Moves rows keep[0..n_keep) of x (rows of width floats) to the front. */
static void compact_rows(float *x, const int *keep, int n_keep, size_t width) {
    for (int j = 0; j < n_keep; j++)
        if (keep[j] != j) memmove(x + (size_t)j * width, x + (size_t)keep[j] * width, width * sizeof(float));
}

/* ------------------------------------------------------------- encoder */

static int check_ids(const Pix2Struct *m, const float *fp, int n, Error *err) {
    int seq = m->config.vision.seq_len;
    size_t stride = 2 + (size_t)m->config.vision.patch_dim;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 2; c++) {
            float v = fp[(size_t)i * stride + c];
            if (!(v >= 0 && v < (float)seq) || v != floorf(v))
                return error_set(err, "pix2struct: flattened_patches row %d has %s id %g; ids are whole numbers 0..%d "
                                 "(vision_config seq_len)", i, c == 0 ? "row" : "column", (double)v, seq - 1);
        }
    return 0;
}

/* x = patch_projection(pixels) + row_embedder[row id] + column_embedder[column id] */
static void embed_patches(const Pix2Struct *m, Pix2StructState *s, const float *fp, int n) {
    const Pix2StructWeights *w = &m->weights;
    size_t K = (size_t)m->config.vision.patch_dim, D = (size_t)m->config.vision.dim;
    for (int i = 0; i < n; i++) memcpy(s->patches + (size_t)i * K, fp + (size_t)i * (K + 2) + 2, K * sizeof(float));
    mm(s, s->x, s->patches, n, &w->patch_proj);
    rows_add_bias(s->pool, s->x, w->patch_proj_b, n, (long)D);
    for (int i = 0; i < n; i++) {
        float *x = s->x + (size_t)i * D;
        add_embedding(s, x, &w->row_emb, (long)fp[(size_t)i * (K + 2)], s->h);
        add_embedding(s, x, &w->col_emb, (long)fp[(size_t)i * (K + 2) + 1], s->h);
    }
}

/* One pre-norm encoder layer over n rows; every row is a query, only the
 * n_keys rows in s->keep are keys. */
static void encoder_layer(const Pix2Struct *m, Pix2StructState *s, int l, int n, int n_keys, float scale) {
    const Pix2StructVisionConfig *c = &m->config.vision;
    const P2sEncoderLayer *L = &m->weights.enc[l];
    int D = c->dim, I = c->n_heads * c->d_kv;
    rows_rmsnorm(s->pool, s->h, s->x, L->attn_norm, n, D, c->norm_eps);
    mm(s, s->q, s->h, n, &L->wq);
    mm(s, s->k, s->h, n, &L->wk);
    mm(s, s->v, s->h, n, &L->wv);
    compact_rows(s->k, s->keep, n_keys, (size_t)I);
    compact_rows(s->v, s->keep, n_keys, (size_t)I);
    Attention a = {.q = s->q, .q_stride = I, .k = s->k, .v = s->v, .kv_stride = I, .out = s->att, .out_stride = I,
                   .n_q = n, .n_heads = c->n_heads, .n_kv_heads = c->n_heads, .head_dim = c->d_kv, .causal = 0,
                   .n_kv = n_keys, .scale = scale, .scratch = s->att_scratch, .kernel = s->kernel};
    attention(s->pool, &a);
    mm(s, s->h, s->att, n, &L->wo);
    rows_add(s->pool, s->x, s->h, n, D);
    rows_rmsnorm(s->pool, s->h, s->x, L->mlp_norm, n, D, c->norm_eps);
    gated_mlp(s, &L->wi_0, &L->wi_1, &L->wff, n);
    rows_add(s->pool, s->x, s->h, n, D);
}

static int check_rows(const Pix2StructState *s, const void *data, int n, Error *err) {
    if (!data) return error_set(err, "pix2struct: no encoder input");
    if (n < 1 || n > s->max_patches)
        return error_set(err, "pix2struct: %d patches, but the run state holds 1..%d (max_patches)", n, s->max_patches);
    return 0;
}

int pix2struct_encode(const Pix2Struct *m, Pix2StructState *s, const float *flattened_patches,
                      const float *attention_mask, int n_patches, Error *err) {
    s->n_patches = 0;
    if (check_rows(s, flattened_patches, n_patches, err) || check_mask(attention_mask, n_patches, err) ||
        check_ids(m, flattened_patches, n_patches, err))
        return -1;
    const Pix2StructVisionConfig *c = &m->config.vision;
    embed_patches(m, s, flattened_patches, n_patches);
    float scale;
    int n_keys = select_keys(s, attention_mask, n_patches, &scale);
    for (int l = 0; l < c->n_layers; l++) encoder_layer(m, s, l, n_patches, n_keys, scale);
    rows_rmsnorm(s->pool, s->encoder_out, s->x, m->weights.enc_norm, n_patches, c->dim, c->norm_eps);
    return pix2struct_set_encoder_output(m, s, s->encoder_out, attention_mask, n_patches, err);
}

int pix2struct_set_encoder_output(const Pix2Struct *m, Pix2StructState *s, const float *encoder_out,
                                  const float *attention_mask, int n_patches, Error *err) {
    s->n_patches = 0;
    if (check_rows(s, encoder_out, n_patches, err) || check_mask(attention_mask, n_patches, err)) return -1;
    const Pix2StructTextConfig *c = &m->config.text;
    size_t D = (size_t)c->dim, P = (size_t)s->max_patches;
    if (encoder_out != s->encoder_out) memcpy(s->encoder_out, encoder_out, sizeof(float) * (size_t)n_patches * D);
    float scale;
    int n_keys = select_keys(s, attention_mask, n_patches, &scale);
    for (int j = 0; j < n_keys; j++)
        memcpy(s->h + (size_t)j * D, s->encoder_out + (size_t)s->keep[j] * D, D * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        mm(s, s->cross_k + (size_t)l * P * D, s->h, n_keys, &m->weights.dec[l].cross_k);
        mm(s, s->cross_v + (size_t)l * P * D, s->h, n_keys, &m->weights.dec[l].cross_v);
    }
    s->n_patches = n_patches;
    s->n_cross = n_keys;
    s->cross_scale = scale;
    return 0;
}

/* ------------------------------------------------------------- decoder */

/* The bias of queries pos..pos+n-1 over keys 0..pos+n-1, [n_heads, n,
 * pos + n], from layer 0's table. Keys after a query are never read (the
 * attention is causal), so they are left as they are. */
static void fill_position_bias(const Pix2Struct *m, Pix2StructState *s, int n, int pos) {
    int H = m->config.text.n_heads, ctx = pos + n;
    const float *table = m->weights.rel_bias;
    for (int h = 0; h < H; h++)
        for (int i = 0; i < n; i++) {
            float *row = s->bias + ((size_t)h * n + i) * ctx;
            for (int j = 0; j <= pos + i; j++) row[j] = table[(size_t)s->bucket[pos + i - j] * H + h];
        }
}

static void decoder_layer(const Pix2Struct *m, Pix2StructState *s, int l, int n, int pos) {
    const Pix2StructTextConfig *c = &m->config.text;
    const P2sDecoderLayer *L = &m->weights.dec[l];
    int D = c->dim;
    size_t T = (size_t)s->max_text, P = (size_t)s->max_patches;
    float *kc = s->key_cache + (size_t)l * T * D, *vc = s->value_cache + (size_t)l * T * D;

    rows_rmsnorm(s->pool, s->h, s->x, L->self_norm, n, D, c->norm_eps);
    mm(s, s->q, s->h, n, &L->self_q);
    mm(s, kc + (size_t)pos * D, s->h, n, &L->self_k);
    mm(s, vc + (size_t)pos * D, s->h, n, &L->self_v);
    Attention self = {.q = s->q, .q_stride = D, .k = kc, .v = vc, .kv_stride = D, .out = s->att, .out_stride = D,
                      .n_q = n, .n_heads = c->n_heads, .n_kv_heads = c->n_heads, .head_dim = c->d_kv,
                      .visible_base = pos, .causal = 1, .n_kv = pos + n, .scale = 1.0f, .bias = s->bias,
                      .bias_stride = pos + n, .scratch = s->att_scratch, .kernel = s->kernel};
    attention(s->pool, &self);
    mm(s, s->h, s->att, n, &L->self_o);
    rows_add(s->pool, s->x, s->h, n, D);

    rows_rmsnorm(s->pool, s->h, s->x, L->cross_norm, n, D, c->norm_eps);
    mm(s, s->q, s->h, n, &L->cross_q);
    Attention cross = {.q = s->q, .q_stride = D, .k = s->cross_k + (size_t)l * P * D,
                       .v = s->cross_v + (size_t)l * P * D, .kv_stride = D, .out = s->att, .out_stride = D, .n_q = n,
                       .n_heads = c->n_heads, .n_kv_heads = c->n_heads, .head_dim = c->d_kv, .causal = 0,
                       .n_kv = s->n_cross, .scale = s->cross_scale, .scratch = s->att_scratch, .kernel = s->kernel};
    attention(s->pool, &cross);
    mm(s, s->h, s->att, n, &L->cross_o);
    rows_add(s->pool, s->x, s->h, n, D);

    rows_rmsnorm(s->pool, s->h, s->x, L->mlp_norm, n, D, c->norm_eps);
    gated_mlp(s, &L->wi_0, &L->wi_1, &L->wff, n);
    rows_add(s->pool, s->x, s->h, n, D);
}

int pix2struct_decode(const Pix2Struct *m, Pix2StructState *s, const int *tokens, int n, int pos, float *all_logits,
                      Error *err) {
    const Pix2StructTextConfig *c = &m->config.text;
    const Pix2StructWeights *w = &m->weights;
    size_t D = (size_t)c->dim, V = (size_t)c->vocab_size;
    if (s->n_patches < 1) return error_set(err, "pix2struct: no image encoded in this run state");
    if (n < 1 || !tokens) return error_set(err, "pix2struct: nothing to run: 0 tokens");
    if (pos < 0 || pos > s->max_text - n)
        return error_set(err, "pix2struct: %d tokens at position %d do not fit the %d the state holds", n, pos,
                         s->max_text);
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return error_set(err, "pix2struct: token id %d is outside the vocabulary (0..%d)", tokens[t],
                             c->vocab_size - 1);
        float *x = s->x + (size_t)t * D;
        memset(x, 0, D * sizeof(float));
        add_embedding(s, x, &w->embed, tokens[t], s->h);
    }
    fill_position_bias(m, s, n, pos);
    for (int l = 0; l < c->n_layers; l++) decoder_layer(m, s, l, n, pos);
    if (all_logits) {
        rows_rmsnorm(s->pool, s->h, s->x, w->dec_norm, n, (int)D, c->norm_eps);
        mm(s, all_logits, s->h, n, &w->lm_head);
        memcpy(s->logits, all_logits + (size_t)(n - 1) * V, V * sizeof(float));
    } else {
        rows_rmsnorm(s->pool, s->h, s->x + (size_t)(n - 1) * D, w->dec_norm, 1, (int)D, c->norm_eps);
        mm(s, s->logits, s->h, 1, &w->lm_head);
    }
    return 0;
}

/* ---------------------------------------------------------------- beams */

int pix2struct_state_copy_encoder(Pix2StructState *dst, const Pix2StructState *src, const Pix2Struct *m, Error *err) {
    if (src->n_patches > dst->max_patches)
        return error_set(err, "pix2struct: the encoded image has %d patches, the target run state holds %d",
                         src->n_patches, dst->max_patches);
    const Pix2StructTextConfig *c = &m->config.text;
    size_t D = (size_t)c->dim;
    memcpy(dst->encoder_out, src->encoder_out, sizeof(float) * (size_t)src->n_patches * D);
    memcpy(dst->keep, src->keep, sizeof(int) * (size_t)src->n_cross);
    for (int l = 0; l < c->n_layers; l++) {
        size_t rows = (size_t)src->n_cross * D;
        memcpy(dst->cross_k + (size_t)l * dst->max_patches * D, src->cross_k + (size_t)l * src->max_patches * D,
               rows * sizeof(float));
        memcpy(dst->cross_v + (size_t)l * dst->max_patches * D, src->cross_v + (size_t)l * src->max_patches * D,
               rows * sizeof(float));
    }
    dst->n_patches = src->n_patches;
    dst->n_cross = src->n_cross;
    dst->cross_scale = src->cross_scale;
    return 0;
}

void pix2struct_state_copy_text(Pix2StructState *dst, const Pix2StructState *src, const Pix2Struct *m, int from,
                                int to) {
    size_t D = (size_t)m->config.text.dim;
    if (from < 0) from = 0;
    if (to > src->max_text) to = src->max_text;
    if (to > dst->max_text) to = dst->max_text;
    for (int l = 0; l < m->config.text.n_layers && to > from; l++) {
        size_t so = ((size_t)l * src->max_text + (size_t)from) * D, dof = ((size_t)l * dst->max_text + (size_t)from) * D;
        size_t bytes = (size_t)(to - from) * D * sizeof(float);
        memcpy(dst->key_cache + dof, src->key_cache + so, bytes);
        memcpy(dst->value_cache + dof, src->value_cache + so, bytes);
    }
}
