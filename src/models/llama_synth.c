#include "models/llama_synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/file.h"
#include "formats/safetensors.h"
#include "text/spm.h"

int llama_synth_preset(LlamaConfig *c, const char *name, Error *err) {
    memset(c, 0, sizeof *c);
    if (strcmp(name, "tiny") == 0) {
        *c = (LlamaConfig){.dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 4, .hidden_dim = 176,
                           .vocab_size = 4096, .max_pos = 512};
    } else if (strcmp(name, "134m") == 0) {
        *c = (LlamaConfig){.dim = 768, .n_layers = 12, .n_heads = 12, .n_kv_heads = 12, .hidden_dim = 2048,
                           .vocab_size = 32000, .max_pos = 2048};
    } else if (strcmp(name, "7b") == 0) {
        *c = (LlamaConfig){.dim = 4096, .n_layers = 32, .n_heads = 32, .n_kv_heads = 32, .hidden_dim = 11008,
                           .vocab_size = 32000, .max_pos = 2048};
    } else {
        return error_set(err, "unknown preset '%s' (tiny, 134m, 7b)", name);
    }
    c->head_dim = c->dim / c->n_heads;
    c->norm_eps = 1e-6f;
    c->rope_theta = 10000.0f;
    c->rope_linear_factor = 1.0f;
    c->bos_id = 1;
    c->eos_id = 2;
    return 0;
}

typedef struct {
    uint64_t state;
} Rng;

static float rng_uniform(Rng *r) { /* [-1, 1) */
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return (float)((r->state * 0x2545F4914F6CDD1Dull) >> 40) / 8388608.0f - 1.0f;
}

/* Streams count values of scale*U(-1,1) (or the constant `fill` when
 * scale is 0) in dtype dt, in chunks. */
static int write_values(StWriter *w, DType dt, size_t count, float scale, float fill, Rng *rng, Error *err) {
    enum { CHUNK = 1 << 16 };
    float *vals = malloc(CHUNK * sizeof(float));
    uint8_t *out = malloc(CHUNK * 4);
    if (!vals || !out) {
        free(vals);
        free(out);
        return error_set(err, "out of memory");
    }
    size_t es = dtype_size(dt);
    int rc = 0;
    for (size_t done = 0; done < count;) {
        size_t n = count - done < CHUNK ? count - done : CHUNK;
        for (size_t i = 0; i < n; i++) vals[i] = scale != 0 ? scale * rng_uniform(rng) : fill;
        for (size_t i = 0; i < n; i++) {
            if (dt == DT_F32) memcpy(out + 4 * i, &vals[i], 4);
            else {
                uint16_t h = dt == DT_F16 ? f32_to_f16(vals[i]) : f32_to_bf16(vals[i]);
                memcpy(out + 2 * i, &h, 2);
            }
        }
        if ((rc = st_writer_write(w, out, n * es, err)) != 0) break;
        done += n;
    }
    free(vals);
    free(out);
    return rc;
}

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[2];
    float scale, fill;
} SynthTensor;

static int synth_tensor_list(const LlamaConfig *c, SynthTensor **out, int *n_out, Error *err) {
    int n_max = 3 + 9 * c->n_layers;
    SynthTensor *t = calloc((size_t)n_max, sizeof *t);
    if (!t) return error_set(err, "out of memory");
    int n = 0;
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    /* uniform(-a, a) has variance a^2/3: a = sqrt(3 / fan_in) gives 1/fan_in */
    t[n++] = (SynthTensor){"model.embed_tokens.weight", 2, {c->vocab_size, c->dim}, sqrtf(3.0f), 0};
    for (int l = 0; l < c->n_layers; l++) {
        struct {
            const char *fmt;
            int64_t rows, cols;
        } m[] = {{"model.layers.%d.self_attn.q_proj.weight", q, c->dim},
                 {"model.layers.%d.self_attn.k_proj.weight", kv, c->dim},
                 {"model.layers.%d.self_attn.v_proj.weight", kv, c->dim},
                 {"model.layers.%d.self_attn.o_proj.weight", c->dim, q},
                 {"model.layers.%d.mlp.gate_proj.weight", c->hidden_dim, c->dim},
                 {"model.layers.%d.mlp.up_proj.weight", c->hidden_dim, c->dim},
                 {"model.layers.%d.mlp.down_proj.weight", c->dim, c->hidden_dim}};
        for (int j = 0; j < 7; j++) {
            snprintf(t[n].name, sizeof t[n].name, m[j].fmt, l);
            t[n].ndim = 2;
            t[n].shape[0] = m[j].rows;
            t[n].shape[1] = m[j].cols;
            t[n].scale = sqrtf(3.0f / (float)m[j].cols);
            n++;
        }
        t[n] = (SynthTensor){.ndim = 1, .shape = {c->dim}, .fill = 1};
        snprintf(t[n].name, sizeof t[n].name, "model.layers.%d.input_layernorm.weight", l);
        n++;
        t[n] = (SynthTensor){.ndim = 1, .shape = {c->dim}, .fill = 1};
        snprintf(t[n].name, sizeof t[n].name, "model.layers.%d.post_attention_layernorm.weight", l);
        n++;
    }
    t[n] = (SynthTensor){"model.norm.weight", 1, {c->dim}, 0, 1};
    n++;
    if (!c->tie_embeddings) {
        t[n] = (SynthTensor){"lm_head.weight", 2, {c->vocab_size, c->dim}, sqrtf(3.0f / (float)c->dim), 0};
        n++;
    }
    *out = t;
    *n_out = n;
    return 0;
}

static int write_weights(const LlamaConfig *c, DType dt, uint64_t seed, const char *path, Error *err) {
    SynthTensor *list = NULL;
    int n = 0;
    if (synth_tensor_list(c, &list, &n, err)) return -1;
    StWriter *w;
    if (st_writer_open(&w, path, err)) {
        free(list);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = st_writer_add(w, list[i].name, dt, list[i].ndim, list[i].shape, err);
    Rng rng = {seed * 0x9E3779B97F4A7C15ull + 0x1234567ull};
    for (int i = 0; i < n && !rc; i++) {
        size_t count = (size_t)list[i].shape[0] * (size_t)(list[i].ndim == 2 ? list[i].shape[1] : 1);
        rc = write_values(w, dt, count, list[i].scale, list[i].fill, &rng, err);
    }
    free(list);
    if (rc) {
        st_writer_abort(w);
        return -1;
    }
    return st_writer_close(w, err);
}

int llama_synth_write(const LlamaConfig *c, DType dt, uint64_t seed, const char *dir, Error *err) {
    if (dt != DT_F32 && dt != DT_F16 && dt != DT_BF16)
        return error_set(err, "synth: dtype %s is not one of F32, F16, BF16", dtype_name(dt));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return error_set(err, "%s: cannot create: %s", dir, strerror(errno));
    char path[1100];
    Tokenizer *tok;
    if (tokenizer_build_synthetic(&tok, c->vocab_size, err)) return -1;
    int rc = path_join(path, sizeof path, dir, "tokenizer.model", err);
    if (!rc) rc = tokenizer_save_spm(tok, path, err);
    tokenizer_free(tok);
    if (rc) return -1;
    const char *torch_dtype = dt == DT_F32 ? "float32" : dt == DT_F16 ? "float16" : "bfloat16";
    if (llama_config_save(c, dir, torch_dtype, err)) return -1;
    if (path_join(path, sizeof path, dir, "model.safetensors", err)) return -1;
    return write_weights(c, dt, seed, path, err);
}
