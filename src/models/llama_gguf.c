/* LLaMA from a GGUF file in llama.cpp's "llama" architecture layout.
 *
 * The metadata gives the config (llama.* keys, the vocabulary size from the
 * token list); the tensors are used in place from the map, as with
 * safetensors. llama.cpp's converter permutes the rows of attn_q and attn_k
 * within each head so that RoPE rotates adjacent pairs (2i, 2i+1) where HF
 * rotates (i, i + head_dim/2); undoing that would need a copy, so the model
 * instead runs RoPE on adjacent pairs (rope_adjacent_pairs). The attention
 * scores are dot products over the same permuted dimensions of q and k, so
 * they, and the logits, are the HF model's up to summation order. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "formats/gguf.h"
#include "formats/json_util.h"
#include "models/llama.h"
#include "models/llama_gguf.h"
#include "tensor/matmul.h"
#include "tensor/quant.h"
#include "text/spm.h"

/* An integer key within lo..hi; *out keeps its default when absent unless
 * the key is required. */
static int meta_int(const Gguf *g, const char *key, int required, int64_t lo, int64_t hi, int64_t *out, Error *err) {
    int rc = gguf_get_int(g, key, out, err);
    if (rc < 0) return -1;
    if (rc > 0) return required ? error_set(err, "%s: metadata '%s' is missing", g->label, key) : 0;
    if (*out < lo || *out > hi)
        return error_set(err, "%s: metadata '%s' is %lld, expected %lld..%lld", g->label, key, (long long)*out,
                         (long long)lo, (long long)hi);
    return 0;
}

static int meta_float(const Gguf *g, const char *key, double lo, double hi, double *out, Error *err) {
    int rc = gguf_get_float(g, key, out, err);
    if (rc < 0) return -1;
    if (rc == 0 && !(*out >= lo && *out <= hi))
        return error_set(err, "%s: metadata '%s' is %g, expected %g..%g", g->label, key, *out, lo, hi);
    return 0;
}

static int read_rope_scaling(LlamaConfig *c, const Gguf *g, Error *err) {
    c->rope_linear_factor = 1.0f;
    const char *s;
    uint64_t n;
    int rc = gguf_get_string(g, "llama.rope.scaling.type", &s, &n, err);
    if (rc < 0) return -1;
    double factor = 1.0;
    if (rc == 0) {
        int none = n == 4 && memcmp(s, "none", 4) == 0, linear = n == 6 && memcmp(s, "linear", 6) == 0;
        if (!none && !linear)
            return error_set(err, "%s: llama.rope.scaling.type '%.*s' is not supported (only 'none' and 'linear')",
                             g->label, (int)(n < 40 ? n : 40), s);
        if (linear && meta_float(g, "llama.rope.scaling.factor", 1e-3, 1e6, &factor, err)) return -1;
    } else if (meta_float(g, "llama.rope.scale_linear", 1e-3, 1e6, &factor, err)) {
        return -1; /* the key older converters wrote */
    }
    c->rope_linear_factor = (float)factor;
    if (gguf_find_tensor(g, "rope_freqs.weight"))
        return error_set(err, "%s: tensor 'rope_freqs.weight' (LLaMA 3 RoPE frequency factors) is not supported",
                         g->label);
    return 0;
}

static int read_vocab_size(LlamaConfig *c, const Gguf *g, Error *err) {
    const GgufKV *kv = gguf_find_kv(g, "tokenizer.ggml.tokens");
    int64_t v = 0;
    if (kv) {
        if (kv->type != GGUF_ARRAY) return error_set(err, "%s: tokenizer.ggml.tokens is not an array", g->label);
        v = (int64_t)kv->count;
    } else if (meta_int(g, "llama.vocab_size", 0, 1, 1 << 24, &v, err)) {
        return -1;
    }
    if (v == 0) {
        const GgufTensor *t = gguf_find_tensor(g, "token_embd.weight");
        if (t && t->n_dims == 2) v = t->ne[1];
    }
    if (v < 1 || v > (1 << 24))
        return error_set(err, "%s: the vocabulary size %lld (the tokenizer.ggml.tokens list) is out of range 1..%d",
                         g->label, (long long)v, 1 << 24);
    c->vocab_size = (int)v;
    return 0;
}

static int read_config(LlamaConfig *c, const Gguf *g, Error *err) {
    memset(c, 0, sizeof *c);
    const char *arch;
    uint64_t n;
    int rc = gguf_get_string(g, "general.architecture", &arch, &n, err);
    if (rc) return rc < 0 ? -1 : error_set(err, "%s: metadata 'general.architecture' is missing", g->label);
    if (n != 5 || memcmp(arch, "llama", 5) != 0)
        return error_set(err, "%s: general.architecture is '%.*s'; vmed runs 'llama' models only", g->label,
                         (int)(n < 40 ? n : 40), arch);
    int64_t dim, layers, heads, kv, hidden, max_pos = 2048;
    if (meta_int(g, "llama.embedding_length", 1, 1, 1 << 16, &dim, err) ||
        meta_int(g, "llama.block_count", 1, 1, 1024, &layers, err) ||
        meta_int(g, "llama.attention.head_count", 1, 1, 1024, &heads, err) ||
        meta_int(g, "llama.feed_forward_length", 1, 1, 1 << 20, &hidden, err) ||
        meta_int(g, "llama.context_length", 0, 1, 1 << 24, &max_pos, err))
        return -1;
    kv = heads;
    if (meta_int(g, "llama.attention.head_count_kv", 0, 1, heads, &kv, err)) return -1;
    if (dim % heads)
        return error_set(err, "%s: llama.embedding_length %lld is not a multiple of llama.attention.head_count %lld",
                         g->label, (long long)dim, (long long)heads);
    if (heads % kv)
        return error_set(err, "%s: llama.attention.head_count %lld is not a multiple of "
                         "llama.attention.head_count_kv %lld", g->label, (long long)heads, (long long)kv);
    int64_t head_dim = dim / heads, rot = head_dim;
    if (head_dim % 2) return error_set(err, "%s: head dimension %lld must be even for RoPE", g->label, (long long)head_dim);
    if (meta_int(g, "llama.rope.dimension_count", 0, 1, 1 << 16, &rot, err)) return -1;
    if (rot != head_dim)
        return error_set(err, "%s: llama.rope.dimension_count %lld differs from the head dimension %lld (partial "
                         "rotary is not supported)", g->label, (long long)rot, (long long)head_dim);
    double eps = 1e-5, theta = 10000.0;
    if (meta_float(g, "llama.attention.layer_norm_rms_epsilon", 1e-12, 1.0, &eps, err) ||
        meta_float(g, "llama.rope.freq_base", 1.0, 1e12, &theta, err))
        return -1;
    c->dim = (int)dim;
    c->n_layers = (int)layers;
    c->n_heads = (int)heads;
    c->n_kv_heads = (int)kv;
    c->head_dim = (int)head_dim;
    c->hidden_dim = (int)hidden;
    c->max_pos = (int)max_pos;
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    if (read_vocab_size(c, g, err) || read_rope_scaling(c, g, err)) return -1;
    int64_t bos = 1 < c->vocab_size ? 1 : 0, eos = 2 < c->vocab_size ? 2 : 0;
    if (meta_int(g, "tokenizer.ggml.bos_token_id", 0, 0, c->vocab_size - 1, &bos, err) ||
        meta_int(g, "tokenizer.ggml.eos_token_id", 0, 0, c->vocab_size - 1, &eos, err))
        return -1;
    c->bos_id = (int)bos;
    c->eos_id = (int)eos;
    c->tie_embeddings = gguf_find_tensor(g, "output.weight") == NULL;
    return 0;
}

/* The tensor dtype of a GGUF type vmed computes with, or -1. */
static int dtype_of_ggml(uint32_t type, DType *out) {
    static const struct {
        uint32_t ggml;
        DType dt;
    } map[] = {
        {GGML_F32, DT_F32},   {GGML_F16, DT_F16},   {GGML_BF16, DT_BF16}, {GGML_Q4_0, DT_Q4_0},
        {GGML_Q4_1, DT_Q4_1}, {GGML_Q5_0, DT_Q5_0}, {GGML_Q5_1, DT_Q5_1}, {GGML_Q8_0, DT_Q8_0},
        {GGML_Q4_K, DT_Q4_K}, {GGML_Q5_K, DT_Q5_K}, {GGML_Q6_K, DT_Q6_K},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].ggml == type) {
            *out = map[i].dt;
            return 0;
        }
    return -1;
}

/* A view of tensor `name`, which must hold the GGUF dims ne[0..n_dims)
 * (innermost first) in a type vmed computes with: F32/F16/BF16, or for
 * matrices (quant_ok) one of the quantized types of tensor/quant.h. */
static int weight(Tensor *out, const Gguf *g, const char *name, int n_dims, const int64_t *ne, int quant_ok,
                  Error *err) {
    const GgufTensor *t = gguf_find_tensor(g, name);
    if (!t) return error_set(err, "%s: tensor '%s' is missing", g->label, name);
    const GgmlTypeInfo *ti = ggml_type_info(t->type);
    DType dt;
    if (dtype_of_ggml(t->type, &dt))
        return error_set(err, "%s: tensor '%s' is %s; vmed computes with F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, "
                         "Q8_0, Q4_K, Q5_K and Q6_K only", g->label, name, ti->name);
    if (dtype_is_quant(dt) && !quant_ok)
        return error_set(err, "%s: tensor '%s' is %s; vectors (norm weights) must be F32, F16 or BF16", g->label,
                         name, ti->name);
    int same = t->n_dims == n_dims;
    for (int d = 0; same && d < n_dims; d++) same = t->ne[d] == ne[d];
    if (!same) {
        GgufTensor want = {.n_dims = n_dims};
        for (int d = 0; d < n_dims; d++) want.ne[d] = ne[d];
        char a[128], b[128];
        return error_set(err, "%s: tensor '%s' has dims %s but the metadata implies %s (innermost first)", g->label,
                         name, gguf_dims_str(t, a, sizeof a), gguf_dims_str(&want, b, sizeof b));
    }
    /* The reader has checked that rows are whole blocks. The kernels load
     * whole elements, and blocks through their 2-byte scales: an alignment
     * below that (general.alignment 1) could misalign them. */
    uintptr_t align = dtype_is_quant(dt) ? 2 : (uintptr_t)ti->block_bytes;
    if ((uintptr_t)t->data % align)
        return error_set(err, "%s: tensor '%s' is not aligned to %d bytes", g->label, name, (int)align);
    int64_t shape[GGUF_MAX_DIMS];
    for (int d = 0; d < n_dims; d++) shape[d] = t->ne[n_dims - 1 - d];
    *out = tensor_view(dt, (void *)t->data, n_dims, shape);
    return 0;
}

/* [rows, cols] row-major, which GGUF lists as {cols, rows}. */
static int weight_matrix_gguf(Tensor *out, const Gguf *g, const char *name, int64_t rows, int64_t cols, Error *err) {
    int64_t ne[2] = {cols, rows};
    return weight(out, g, name, 2, ne, 1, err);
}

/* A norm weight as a new f32 array (free() it). */
static int weight_vector_gguf(float **out, const Gguf *g, const char *name, int64_t n, Error *err) {
    Tensor t;
    *out = NULL;
    if (weight(&t, g, name, 1, &n, 0, err)) return -1;
    *out = malloc((size_t)n * sizeof(float));
    if (!*out) return error_set(err, "out of memory");
    convert_to_f32(KERNEL_SCALAR, *out, t.data, t.dtype, (long)n);
    return 0;
}

static int load_layer(LlamaLayer *L, const Gguf *g, const LlamaConfig *c, int i, Error *err) {
    char name[96];
    int64_t q_dim = (int64_t)c->n_heads * c->head_dim, kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
    struct {
        Tensor *dst;
        const char *part;
        int64_t rows, cols;
    } mats[] = {
        {&L->wq, "attn_q", q_dim, c->dim},          {&L->wk, "attn_k", kv_dim, c->dim},
        {&L->wv, "attn_v", kv_dim, c->dim},         {&L->wo, "attn_output", c->dim, q_dim},
        {&L->w_gate, "ffn_gate", c->hidden_dim, c->dim}, {&L->w_up, "ffn_up", c->hidden_dim, c->dim},
        {&L->w_down, "ffn_down", c->dim, c->hidden_dim},
    };
    for (size_t j = 0; j < sizeof mats / sizeof mats[0]; j++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", i, mats[j].part);
        if (weight_matrix_gguf(mats[j].dst, g, name, mats[j].rows, mats[j].cols, err)) return -1;
    }
    snprintf(name, sizeof name, "blk.%d.attn_norm.weight", i);
    if (weight_vector_gguf(&L->attn_norm, g, name, c->dim, err)) return -1;
    snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", i);
    return weight_vector_gguf(&L->ffn_norm, g, name, c->dim, err);
}

static int load_weights(Llama *m, Error *err) {
    const Gguf *g = m->gguf;
    const LlamaConfig *c = &m->config;
    LlamaWeights *w = &m->weights;
    if (weight_matrix_gguf(&w->embed, g, "token_embd.weight", c->vocab_size, c->dim, err) ||
        weight_vector_gguf(&w->final_norm, g, "output_norm.weight", c->dim, err))
        return -1;
    if (c->tie_embeddings) w->lm_head = w->embed;
    else if (weight_matrix_gguf(&w->lm_head, g, "output.weight", c->vocab_size, c->dim, err)) return -1;
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers) return error_set(err, "out of memory");
    for (int i = 0; i < c->n_layers; i++)
        if (load_layer(&w->layers[i], g, c, i, err)) return -1;
    return 0;
}

int llama_load_gguf(Llama *m, const char *path, Error *err) {
    memset(m, 0, sizeof *m);
    snprintf(m->dir, sizeof m->dir, "%s", path);
    m->rope_adjacent_pairs = 1;
    if (gguf_open(&m->gguf, path, err)) return -1;
    if (read_config(&m->config, m->gguf, err) || load_weights(m, err)) {
        llama_free(m);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- converter */

static const GgufOutType OUT_TYPES[] = {
    {"f32", 0, GGML_F32},  {"f16", 1, GGML_F16},  {"bf16", 32, GGML_BF16},
    {"q8_0", 7, GGML_Q8_0}, {"q4_0", 2, GGML_Q4_0}, {"q4_k_m", 15, GGML_Q4_K},
};

const GgufOutType *gguf_out_type(const char *name) {
    for (size_t i = 0; i < sizeof OUT_TYPES / sizeof OUT_TYPES[0]; i++)
        if (strcmp(OUT_TYPES[i].name, name) == 0) return &OUT_TYPES[i];
    return NULL;
}

/* llama.cpp's use_more_bits(i_layer, n_layers). */
static int use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The layer of "blk.N.<part>.weight" when part matches, else -1. */
static int layer_of(const char *name, const char *part) {
    int i, used = 0;
    if (sscanf(name, "blk.%d.%n", &i, &used) != 1 || used == 0) return -1;
    size_t n = strlen(part);
    return strncmp(name + used, part, n) == 0 && strcmp(name + used + n, ".weight") == 0 ? i : -1;
}

uint32_t gguf_tensor_type(const GgufOutType *type, const char *name, int64_t cols, int n_layers, int tied) {
    uint32_t t = type->matrix_type;
    if (!ggml_type_info(t)->quantized) return t;
    int is_output = strcmp(name, "output.weight") == 0 || (tied && strcmp(name, "token_embd.weight") == 0);
    if (is_output) {
        if (t != GGML_Q8_0) t = cols % ggml_type_info(t)->block_elems ? GGML_Q8_0 : GGML_Q6_K;
    } else if (type->file_type == 15) {
        int l = layer_of(name, "attn_v");
        if (l < 0) l = layer_of(name, "ffn_down");
        if (l >= 0 && use_more_bits(l, n_layers)) t = GGML_Q6_K;
    }
    if (cols % ggml_type_info(t)->block_elems) {
        if (t == GGML_Q4_K) t = GGML_Q5_0;
        else if (t == GGML_Q5_K) t = GGML_Q5_1;
        else if (t == GGML_Q6_K) t = GGML_Q8_0;
        if (cols % ggml_type_info(t)->block_elems) t = GGML_F16;
    }
    return t;
}

/* A row of n f32 values in GGUF type `type` (one the planner picks). */
static void encode_row(uint32_t type, const float *x, void *out, int64_t n) {
    DType dt;
    switch (type) {
    case GGML_F32: memcpy(out, x, (size_t)n * sizeof(float)); return;
    case GGML_F16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)out)[i] = f32_to_f16(x[i]);
        return;
    case GGML_BF16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)out)[i] = f32_to_bf16(x[i]);
        return;
    default:
        if (dtype_of_ggml(type, &dt) == 0) quantize_row(dt, x, out, n);
        return;
    }
}

/* One tensor to write: where it comes from and how. */
typedef struct {
    char gguf_name[64];
    const StTensor *src;
    int64_t rows, cols;  /* rows = 1 for a vector */
    int n_dims;
    int permute_heads;   /* q/k: the number of heads whose rows are interleaved, else 0 */
    int head_dim;
    uint32_t type;
} Plan;

typedef struct {
    LlamaConfig c;
    SafeTensors st;
    Tokenizer *tok;
    Plan *plan;
    int n_plan;
    GgufWriter *w;
} Convert;

static int plan_add(Convert *cv, const GgufOutType *type, const char *hf, const char *gg, int64_t rows, int64_t cols,
                    int permute_heads, Error *err) {
    const StTensor *t = st_find(&cv->st, hf);
    if (!t) return error_set(err, "%s: tensor '%s' is missing", cv->st.n_files ? cv->st.files[0].path : "model", hf);
    const char *file = st_file_path(&cv->st, t);
    if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16)
        return error_set(err, "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16", file, hf,
                         dtype_name(t->dtype));
    int is_vec = cols == 0;
    if (is_vec ? t->ndim != 1 || t->shape[0] != rows : t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return error_set(err, "%s: tensor '%s' does not have the shape config.json implies (%lldx%lld)", file, hf,
                         (long long)rows, (long long)(is_vec ? 1 : cols));
    Plan *p = &cv->plan[cv->n_plan++];
    memset(p, 0, sizeof *p);
    snprintf(p->gguf_name, sizeof p->gguf_name, "%s", gg);
    p->src = t;
    p->n_dims = is_vec ? 1 : 2;
    p->rows = is_vec ? 1 : rows;
    p->cols = is_vec ? rows : cols;
    p->permute_heads = permute_heads;
    p->head_dim = cv->c.head_dim;
    /* llama.cpp keeps 1-D tensors (the norms) in F32 whatever the type */
    int tied = !st_find(&cv->st, "lm_head.weight") && cv->c.tie_embeddings;
    p->type = is_vec ? GGML_F32 : gguf_tensor_type(type, gg, cols, cv->c.n_layers, tied);
    return 0;
}

static int make_plan(Convert *cv, const GgufOutType *type, Error *err) {
    const LlamaConfig *c = &cv->c;
    int64_t q_dim = (int64_t)c->n_heads * c->head_dim, kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
    cv->plan = calloc((size_t)(3 + 9 * c->n_layers), sizeof *cv->plan);
    if (!cv->plan) return error_set(err, "out of memory");
    if (plan_add(cv, type, "model.embed_tokens.weight", "token_embd.weight", c->vocab_size, c->dim, 0, err) ||
        plan_add(cv, type, "model.norm.weight", "output_norm.weight", c->dim, 0, 0, err))
        return -1;
    if (st_find(&cv->st, "lm_head.weight") || !c->tie_embeddings)
        if (plan_add(cv, type, "lm_head.weight", "output.weight", c->vocab_size, c->dim, 0, err)) return -1;
    for (int i = 0; i < c->n_layers; i++) {
        struct {
            const char *hf, *gg;
            int64_t rows, cols;
            int permute;
        } m[] = {
            {"input_layernorm", "attn_norm", c->dim, 0, 0},
            {"self_attn.q_proj", "attn_q", q_dim, c->dim, c->n_heads},
            {"self_attn.k_proj", "attn_k", kv_dim, c->dim, c->n_kv_heads},
            {"self_attn.v_proj", "attn_v", kv_dim, c->dim, 0},
            {"self_attn.o_proj", "attn_output", c->dim, q_dim, 0},
            {"post_attention_layernorm", "ffn_norm", c->dim, 0, 0},
            {"mlp.gate_proj", "ffn_gate", c->hidden_dim, c->dim, 0},
            {"mlp.up_proj", "ffn_up", c->hidden_dim, c->dim, 0},
            {"mlp.down_proj", "ffn_down", c->dim, c->hidden_dim, 0},
        };
        for (size_t j = 0; j < sizeof m / sizeof m[0]; j++) {
            char hf[128], gg[64];
            snprintf(hf, sizeof hf, "model.layers.%d.%s.weight", i, m[j].hf);
            snprintf(gg, sizeof gg, "blk.%d.%s.weight", i, m[j].gg);
            if (plan_add(cv, type, hf, gg, m[j].rows, m[j].cols, m[j].permute, err)) return -1;
        }
    }
    /* A tensor the plan leaves out would silently vanish from the model. */
    for (int i = 0; i < cv->st.n_tensors; i++) {
        const StTensor *t = &cv->st.tensors[i];
        int used = 0;
        for (int j = 0; j < cv->n_plan && !used; j++) used = cv->plan[j].src == t;
        size_t n = strlen(t->name), k = strlen("rotary_emb.inv_freq");
        if (!used && !(n >= k && strcmp(t->name + n - k, "rotary_emb.inv_freq") == 0))
            return error_set(err, "%s: tensor '%s' has no place in a llama GGUF file", st_file_path(&cv->st, t),
                             t->name);
    }
    return 0;
}

static int write_metadata(Convert *cv, const char *hf_dir, const GgufOutType *type, Error *err) {
    const LlamaConfig *c = &cv->c;
    GgufWriter *w = cv->w;
    char name[256];
    size_t n = strlen(hf_dir);
    while (n > 1 && hf_dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && hf_dir[b - 1] != '/') b--;
    snprintf(name, sizeof name, "%.*s", (int)(n - b), hf_dir + b);
    int rc = gguf_writer_add_string(w, "general.architecture", "llama", err) ||
             gguf_writer_add_string(w, "general.type", "model", err) ||
             gguf_writer_add_string(w, "general.name", name, err) ||
             gguf_writer_add_u32(w, "llama.block_count", (uint32_t)c->n_layers, err) ||
             gguf_writer_add_u32(w, "llama.context_length", (uint32_t)c->max_pos, err) ||
             gguf_writer_add_u32(w, "llama.embedding_length", (uint32_t)c->dim, err) ||
             gguf_writer_add_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim, err) ||
             gguf_writer_add_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads, err) ||
             gguf_writer_add_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads, err) ||
             gguf_writer_add_f32(w, "llama.rope.freq_base", c->rope_theta, err) ||
             gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps, err) ||
             gguf_writer_add_u32(w, "general.file_type", type->file_type, err) ||
             gguf_writer_add_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size, err) ||
             gguf_writer_add_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim, err);
    if (!rc && c->rope_linear_factor != 1.0f)
        rc = gguf_writer_add_string(w, "llama.rope.scaling.type", "linear", err) ||
             gguf_writer_add_f32(w, "llama.rope.scaling.factor", c->rope_linear_factor, err);
    if (!rc) rc = gguf_writer_add_u32(w, "general.quantization_version", 2, err);
    return rc ? -1 : 0;
}

/* tokenizer_config.json's add_bos_token / add_eos_token, when it has them. */
static int write_add_flags(Convert *cv, const char *hf_dir, Error *err) {
    char path[1100];
    if (path_join(path, sizeof path, hf_dir, "tokenizer_config.json", err)) return -1;
    if (!file_exists(path)) return 0;
    cJSON *root;
    if (json_load_file(&root, path, 4u << 20, err)) return -1;
    static const char *const keys[2] = {"add_bos_token", "add_eos_token"};
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[k]);
        char key[64];
        snprintf(key, sizeof key, "tokenizer.ggml.%s", keys[k]);
        if (cJSON_IsBool(v)) rc = gguf_writer_add_bool(cv->w, key, cJSON_IsTrue(v), err);
    }
    cJSON_Delete(root);
    return rc;
}

/* The vocabulary as llama.cpp's converter lists it: every piece of
 * tokenizer.model, padded to vocab_size with "[PADn]" UNUSED pieces. */
static int write_tokenizer(Convert *cv, const char *hf_dir, Error *err) {
    int n = cv->c.vocab_size, have = tokenizer_vocab_size(cv->tok);
    if (have > n)
        return error_set(err, "%s: tokenizer.model has %d pieces, more than the vocab_size %d of config.json", hf_dir,
                         have, n);
    const char **strs = calloc((size_t)n, sizeof *strs);
    char *pads = calloc((size_t)(n - have) + 1, 24);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    int rc = -1;
    if (!strs || !pads || !scores || !types) {
        error_set(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (i < have) {
            strs[i] = tokenizer_piece(cv->tok, i);
            scores[i] = tokenizer_piece_score(cv->tok, i);
            types[i] = tokenizer_piece_type(cv->tok, i);
        } else {
            char *p = pads + (size_t)(i - have) * 24;
            snprintf(p, 24, "[PAD%d]", i);
            strs[i] = p;
            scores[i] = -10000.0f;
            types[i] = PIECE_UNUSED;
        }
    }
    GgufWriter *w = cv->w;
    rc = gguf_writer_add_string(w, "tokenizer.ggml.model", "llama", err) ||
         gguf_writer_add_string(w, "tokenizer.ggml.pre", "default", err) ||
         gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", strs, NULL, (uint64_t)n, err) ||
         gguf_writer_add_array(w, "tokenizer.ggml.scores", GGUF_F32, scores, (uint64_t)n, err) ||
         gguf_writer_add_array(w, "tokenizer.ggml.token_type", GGUF_I32, types, (uint64_t)n, err) ||
         gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)cv->c.bos_id, err) ||
         gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)cv->c.eos_id, err);
    if (!rc && tokenizer_unk(cv->tok) >= 0)
        rc = gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)tokenizer_unk(cv->tok), err);
    if (!rc && tokenizer_pad(cv->tok) >= 0)
        rc = gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)tokenizer_pad(cv->tok), err);
    if (!rc) rc = write_add_flags(cv, hf_dir, err);
done:
    free(strs);
    free(pads);
    free(scores);
    free(types);
    return rc ? -1 : 0;
}

/* The HF row that GGUF row r of a permuted q/k matrix holds: within a head,
 * GGUF rows (2i, 2i+1) are HF rows (i, i + head_dim/2). */
static int64_t source_row(const Plan *p, int64_t r) {
    if (!p->permute_heads) return r;
    int64_t hd = p->head_dim, half = hd / 2, h = r / hd, k = r % hd;
    return h * hd + (k % 2) * half + k / 2;
}

/* Streams a tensor a block of rows at a time. */
static int write_tensor(GgufWriter *w, const Plan *p, float *row, uint8_t *buf, size_t buf_cap, Error *err) {
    uint64_t row_bytes = ggml_row_bytes(p->type, (uint64_t)p->cols);
    size_t src_row_bytes = (size_t)p->cols * dtype_size(p->src->dtype), used = 0;
    for (int64_t r = 0; r < p->rows; r++) {
        const uint8_t *src = (const uint8_t *)p->src->data + (size_t)source_row(p, r) * src_row_bytes;
        convert_to_f32(KERNEL_SCALAR, row, src, p->src->dtype, (long)p->cols);
        if (used + row_bytes > buf_cap) {
            if (gguf_writer_write(w, buf, used, err)) return -1;
            used = 0;
        }
        encode_row(p->type, row, buf + used, p->cols);
        used += (size_t)row_bytes;
    }
    return gguf_writer_write(w, buf, used, err);
}

static int write_tensors(Convert *cv, Error *err) {
    int64_t max_cols = 1;
    for (int i = 0; i < cv->n_plan; i++) {
        const Plan *p = &cv->plan[i];
        int64_t ne[2] = {p->cols, p->rows};
        if (gguf_writer_add_tensor(cv->w, p->gguf_name, p->type, p->n_dims, ne, err)) return -1;
        if (p->cols > max_cols) max_cols = p->cols;
    }
    size_t buf_cap = (size_t)max_cols * sizeof(float) * 4;
    if (buf_cap < (1u << 20)) buf_cap = 1u << 20;
    float *row = malloc((size_t)max_cols * sizeof(float));
    uint8_t *buf = malloc(buf_cap);
    int rc = row && buf ? 0 : error_set(err, "out of memory");
    for (int i = 0; i < cv->n_plan && !rc; i++) rc = write_tensor(cv->w, &cv->plan[i], row, buf, buf_cap, err);
    free(row);
    free(buf);
    return rc;
}

int llama_convert_gguf(const char *hf_dir, const char *out_path, const GgufOutType *type, Error *err) {
    Convert cv;
    memset(&cv, 0, sizeof cv);
    char path[1100];
    int rc = llama_config_load(&cv.c, hf_dir, err) || path_join(path, sizeof path, hf_dir, "tokenizer.model", err);
    if (!rc && !file_exists(path))
        rc = error_set(err, "%s: no tokenizer.model; converting a tokenizer.json-only folder is not supported yet",
                       hf_dir);
    if (!rc) rc = tokenizer_load_spm(&cv.tok, path, err) || st_open(&cv.st, hf_dir, err);
    if (!rc) rc = make_plan(&cv, type, err) || gguf_writer_open(&cv.w, out_path, err);
    if (!rc) rc = write_metadata(&cv, hf_dir, type, err) || write_tokenizer(&cv, hf_dir, err) ||
                  write_tensors(&cv, err);
    if (cv.w) {
        if (rc) gguf_writer_abort(cv.w);
        else rc = gguf_writer_close(cv.w, err);
    }
    free(cv.plan);
    st_close(&cv.st);
    tokenizer_free(cv.tok);
    return rc ? -1 : 0;
}
