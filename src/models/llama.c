#include "models/llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "formats/gguf.h"
#include "models/llama_lora.h"
#include "models/weights.h"
#include "tensor/attention.h"
#include "tensor/rows.h"
#include "tensor/ops.h"
#include "tensor/quant.h"

/* ---------------------------------------------------------------- loading */

static int load_layer(LlamaLayer *L, const SafeTensors *st, const LlamaConfig *c, int i, Error *err) {
    char name[256];
    int64_t q_dim = (int64_t)c->n_heads * c->head_dim, kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
    struct {
        Tensor *dst;
        const char *fmt;
        int64_t rows, cols;
    } mats[] = {
        {&L->wq, "model.layers.%d.self_attn.q_proj.weight", q_dim, c->dim},
        {&L->wk, "model.layers.%d.self_attn.k_proj.weight", kv_dim, c->dim},
        {&L->wv, "model.layers.%d.self_attn.v_proj.weight", kv_dim, c->dim},
        {&L->wo, "model.layers.%d.self_attn.o_proj.weight", c->dim, q_dim},
        {&L->w_gate, "model.layers.%d.mlp.gate_proj.weight", c->hidden_dim, c->dim},
        {&L->w_up, "model.layers.%d.mlp.up_proj.weight", c->hidden_dim, c->dim},
        {&L->w_down, "model.layers.%d.mlp.down_proj.weight", c->dim, c->hidden_dim},
    };
    for (size_t j = 0; j < sizeof mats / sizeof mats[0]; j++) {
        snprintf(name, sizeof name, mats[j].fmt, i);
        if (weight_matrix(mats[j].dst, st, name, mats[j].rows, mats[j].cols, err)) return -1;
    }
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
    if (weight_vector(&L->attn_norm, st, name, c->dim, err)) return -1;
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
    return weight_vector(&L->ffn_norm, st, name, c->dim, err);
}

int llama_load(Llama *m, const char *dir, Error *err) {
    if (gguf_path_is_gguf(dir)) return llama_load_gguf(m, dir, err);
    memset(m, 0, sizeof *m);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    LlamaConfig *c = &m->config;
    if (llama_config_load(c, dir, err)) return -1;
    if (st_open(&m->files, dir, err)) return -1;
    LlamaWeights *w = &m->weights;
    if (weight_matrix(&w->embed, &m->files, "model.embed_tokens.weight", c->vocab_size, c->dim, err)) goto fail;
    if (weight_vector(&w->final_norm, &m->files, "model.norm.weight", c->dim, err)) goto fail;
    if (c->tie_embeddings && !st_find(&m->files, "lm_head.weight")) {
        w->lm_head = w->embed;
    } else if (weight_matrix(&w->lm_head, &m->files, "lm_head.weight", c->vocab_size, c->dim, err)) {
        goto fail;
    }
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers) {
        error_set(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < c->n_layers; i++)
        if (load_layer(&w->layers[i], &m->files, c, i, err)) goto fail;
    return 0;
fail:
    llama_free(m);
    return -1;
}

void llama_free(Llama *m) {
    LlamaWeights *w = &m->weights;
    if (w->layers) {
        for (int i = 0; i < m->config.n_layers; i++) {
            free(w->layers[i].attn_norm);
            free(w->layers[i].ffn_norm);
        }
    }
    free(w->layers);
    free(w->final_norm);
    st_close(&m->files);
    gguf_close(m->gguf);
    memset(m, 0, sizeof *m);
}

size_t llama_weight_bytes(const Llama *m) {
    const LlamaWeights *w = &m->weights;
    size_t total = 0;
    for (int i = 0; i < m->config.n_layers; i++) {
        const LlamaLayer *L = &w->layers[i];
        const Tensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int j = 0; j < 7; j++) total += (size_t)ts[j]->shape[0] * dtype_row_bytes(ts[j]->dtype, ts[j]->shape[1]);
    }
    /* Decoding reads one embedding row and the whole LM head. */
    total += (size_t)w->lm_head.shape[0] * dtype_row_bytes(w->lm_head.dtype, w->lm_head.shape[1]);
    return total;
}

/* -------------------------------------------------------------- run state */

int llama_state_new(LlamaState *s, const Llama *m, int n_ctx, int max_batch, ThreadPool *pool, Error *err) {
    int n_threads = pool_size(pool);
    memset(s, 0, sizeof *s);
    const LlamaConfig *c = &m->config;
    if (n_ctx < 1 || n_ctx > c->max_pos)
        return error_set(err, "context length %d is out of range 1..%d (max_position_embeddings)", n_ctx, c->max_pos);
    if (max_batch < 1) max_batch = 1;
    if (max_batch > n_ctx) max_batch = n_ctx;
    s->n_ctx = n_ctx;
    s->max_batch = max_batch;
    s->n_threads = n_threads;
    s->kernel = kernel_best();
    size_t B = (size_t)max_batch, dim = (size_t)c->dim, hd = (size_t)c->head_dim;
    size_t q_dim = (size_t)c->n_heads * hd, kv_dim = (size_t)c->n_kv_heads * hd, hid = (size_t)c->hidden_dim;
    size_t max_k = hid > dim ? hid : dim;
    if (q_dim > max_k) max_k = q_dim;
    const LlamaLora *lora = m->lora;
    size_t lora_r = lora ? (size_t)lora->max_r : 0, lora_out = lora ? (size_t)lora->max_out : 0;
    if (lora_r > max_k) max_k = lora_r;
    size_t sizes[] = {
        B * dim, B * (dim > q_dim ? dim : q_dim), B * (dim > q_dim ? dim : q_dim), B * q_dim, B * kv_dim,
        B * kv_dim, B * hid, B * hid, attention_scratch_floats(n_threads, n_ctx, c->head_dim),
        (size_t)c->n_layers * (size_t)n_ctx * kv_dim, (size_t)c->n_layers * (size_t)n_ctx * kv_dim,
        (size_t)n_ctx * (hd / 2), (size_t)n_ctx * (hd / 2), matmul_scratch_floats(n_threads, (long)max_k),
        (size_t)c->vocab_size, B * lora_r, B * lora_out,
    };
    float **ptrs[] = {&s->x, &s->xb, &s->xb2, &s->q, &s->k, &s->v, &s->hb, &s->hb2, &s->att,
                      &s->key_cache, &s->value_cache, &s->rope_cos, &s->rope_sin, &s->scratch, &s->logits,
                      &s->lora_t, &s->lora_u};
    if (arena_carve(&s->arena, ptrs, sizes, sizeof sizes / sizeof sizes[0], "the LLaMA run state", err)) return -1;
    /* RoPE tables exactly as HF builds them: inv_freq = 1/theta^(2i/d) in
     * f32, angle = (pos / linear_factor) * inv_freq in f32. */
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
        for (int pos = 0; pos < n_ctx; pos++) {
            float t = (float)pos / c->rope_linear_factor;
            float ang = t * inv_freq;
            s->rope_cos[(size_t)pos * half + i] = cosf(ang);
            s->rope_sin[(size_t)pos * half + i] = sinf(ang);
        }
    }
    s->pool = pool;
    s->lora = lora;
    return 0;
}

void llama_state_free(LlamaState *s) {
    free(s->arena);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- forward */

static void mm(LlamaState *s, float *y, const float *x, int n, const Tensor *w) {
    matmul(s->pool, s->kernel, y, x, n, w, s->scratch);
}

/* An adapted linear: W x, plus the attached LoRA's low-rank update. */
static void linear(const Llama *m, LlamaState *s, int layer, LoraSlot slot, float *y, const float *x, int n,
                   const Tensor *w) {
    mm(s, y, x, n, w);
    if (m->lora) llama_lora_apply(m->lora, s, layer, slot, y, x, n);
}

/* Pair i of a head turns by angle i either way; a GGUF file's q/k rows are
 * permuted so that its pairs are adjacent, and the logits come out the same. */
static void rope(const Llama *m, float *x, int n_heads, int d, const float *cos, const float *sin) {
    if (!m->rope_adjacent_pairs) {
        rope_rotate_half(x, n_heads, d, cos, sin);
        return;
    }
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (long)h * d;
        for (int i = 0; i < d / 2; i++) {
            float a = v[2 * i], b = v[2 * i + 1];
            v[2 * i] = a * cos[i] - b * sin[i];
            v[2 * i + 1] = b * cos[i] + a * sin[i];
        }
    }
}

/* The row-wise steps of a chunk that tensor/rows.h has no kernel for, each
 * over a range of its tokens, so that pool_for can share them out like the
 * matrix products around them. */
typedef struct {
    const Llama *m;
    LlamaState *s;
    const LlamaLayer *L;
    int layer, pos;
} ChunkRows;

/* Rotates q and k and appends k and v to the layer's caches. */
static void chunk_rope(void *ctx, long lo, long hi) {
    const ChunkRows *R = ctx;
    const LlamaConfig *c = &R->m->config;
    LlamaState *s = R->s;
    size_t q_dim = (size_t)c->n_heads * c->head_dim, kv_dim = (size_t)c->n_kv_heads * c->head_dim;
    int half = c->head_dim / 2;
    float *kc = s->key_cache + ((size_t)R->layer * s->n_ctx + R->pos) * kv_dim;
    float *vc = s->value_cache + ((size_t)R->layer * s->n_ctx + R->pos) * kv_dim;
    for (long t = lo; t < hi; t++) {
        const float *cs = s->rope_cos + (size_t)(R->pos + t) * half, *sn = s->rope_sin + (size_t)(R->pos + t) * half;
        rope(R->m, s->q + t * q_dim, c->n_heads, c->head_dim, cs, sn);
        rope(R->m, s->k + t * kv_dim, c->n_kv_heads, c->head_dim, cs, sn);
        memcpy(kc + t * kv_dim, s->k + t * kv_dim, kv_dim * sizeof(float));
        memcpy(vc + t * kv_dim, s->v + t * kv_dim, kv_dim * sizeof(float));
    }
}

/* The attention block's residual, then the feed-forward's norm. */
static void chunk_add_ffn_norm(void *ctx, long lo, long hi) {
    const ChunkRows *R = ctx;
    int dim = R->m->config.dim;
    for (long t = lo; t < hi; t++) {
        float *x = R->s->x + t * dim;
        const float *d = R->s->xb + t * dim;
        for (int i = 0; i < dim; i++) x[i] += d[i];
        rmsnorm(R->s->xb + t * dim, x, R->L->ffn_norm, dim, R->m->config.norm_eps);
    }
}

static void chunk_swiglu(void *ctx, long lo, long hi) {
    const ChunkRows *R = ctx;
    long h = R->m->config.hidden_dim;
    if (R->s->kernel == KERNEL_AVX2) swiglu_avx2(R->s->hb + lo * h, R->s->hb2 + lo * h, (hi - lo) * h);
    else swiglu(R->s->hb + lo * h, R->s->hb2 + lo * h, (hi - lo) * h);
}

/* One chunk of at most max_batch tokens. */
static void forward_chunk(const Llama *m, LlamaState *s, const int *tokens, int n, int pos, float *all_logits) {
    const LlamaConfig *c = &m->config;
    const LlamaWeights *w = &m->weights;
    int dim = c->dim, hd = c->head_dim;
    size_t q_dim = (size_t)c->n_heads * hd, kv_dim = (size_t)c->n_kv_heads * hd;
    size_t row_bytes = dtype_row_bytes(w->embed.dtype, dim);
    for (int t = 0; t < n; t++)
        convert_to_f32(s->kernel, s->x + (size_t)t * dim, (const uint8_t *)w->embed.data + (size_t)tokens[t] * row_bytes,
                       w->embed.dtype, dim);

    for (int l = 0; l < c->n_layers; l++) {
        const LlamaLayer *L = &w->layers[l];
        ChunkRows R = {m, s, L, l, pos};
        rows_rmsnorm(s->pool, s->xb, s->x, L->attn_norm, n, dim, c->norm_eps);
        linear(m, s, l, LORA_Q, s->q, s->xb, n, &L->wq);
        linear(m, s, l, LORA_K, s->k, s->xb, n, &L->wk);
        linear(m, s, l, LORA_V, s->v, s->xb, n, &L->wv);
        pool_for(s->pool, n, chunk_rope, &R);
        Attention att = {
            .q = s->q, .q_stride = (long)q_dim,
            .k = s->key_cache + (size_t)l * s->n_ctx * kv_dim, .v = s->value_cache + (size_t)l * s->n_ctx * kv_dim,
            .kv_stride = (long)kv_dim, .out = s->xb2, .out_stride = (long)q_dim,
            .n_q = n, .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = hd,
            .visible_base = pos, .causal = 1, .n_kv = s->n_ctx, .scale = 1.0f / sqrtf((float)hd),
            .scratch = s->att, .kernel = s->kernel,
        };
        attention(s->pool, &att);
        linear(m, s, l, LORA_O, s->xb, s->xb2, n, &L->wo);
        pool_for(s->pool, n, chunk_add_ffn_norm, &R);
        linear(m, s, l, LORA_GATE, s->hb, s->xb, n, &L->w_gate);
        linear(m, s, l, LORA_UP, s->hb2, s->xb, n, &L->w_up);
        pool_for(s->pool, n, chunk_swiglu, &R);
        linear(m, s, l, LORA_DOWN, s->xb, s->hb, n, &L->w_down);
        rows_add(s->pool, s->x, s->xb, n, dim);
    }

    /* Only the rows whose logits are wanted go through the final norm and
     * the LM head, which is the largest matrix of a small model. */
    int first = all_logits ? 0 : n - 1;
    for (int t = first; t < n; t++) rmsnorm(s->x + (size_t)t * dim, s->x + (size_t)t * dim, w->final_norm, dim, c->norm_eps);
    if (all_logits) {
        mm(s, all_logits, s->x, n, &w->lm_head);
        memcpy(s->logits, all_logits + (size_t)(n - 1) * c->vocab_size, (size_t)c->vocab_size * sizeof(float));
    } else {
        mm(s, s->logits, s->x + (size_t)(n - 1) * dim, 1, &w->lm_head);
    }
}

void llama_state_copy_positions(LlamaState *dst, const LlamaState *src, const Llama *m, int from, int to) {
    const LlamaConfig *c = &m->config;
    size_t kv_dim = (size_t)c->n_kv_heads * c->head_dim, bytes = (size_t)(to - from) * kv_dim * sizeof(float);
    for (int l = 0; l < c->n_layers && to > from; l++) {
        size_t off = ((size_t)l * src->n_ctx + (size_t)from) * kv_dim;
        memcpy(dst->key_cache + off, src->key_cache + off, bytes);
        memcpy(dst->value_cache + off, src->value_cache + off, bytes);
    }
}

int llama_forward(const Llama *m, LlamaState *s, const int *tokens, int n, int pos, float *all_logits, Error *err) {
    const LlamaConfig *c = &m->config;
    if (n < 1) return error_set(err, "nothing to run: 0 tokens");
    if (m->lora && s->lora != m->lora)
        return error_set(err, "this run state was made before the LoRA adapter was attached; make it after");
    if (pos < 0 || pos + n > s->n_ctx)
        return error_set(err, "%d tokens at position %d do not fit the context of %d tokens", n, pos, s->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return error_set(err, "token id %d at index %d is outside the vocabulary (0..%d)", tokens[i], i,
                             c->vocab_size - 1);
    for (int done = 0; done < n; done += s->max_batch) {
        int chunk = n - done < s->max_batch ? n - done : s->max_batch;
        float *rows = all_logits ? all_logits + (size_t)done * c->vocab_size : NULL;
        forward_chunk(m, s, tokens + done, chunk, pos + done, rows);
    }
    return 0;
}
