#include "models/llama_synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "models/synth.h"
#include "text/spm.h"

int llama_synth_preset(LlamaConfig *c, const char *name, Error *err) {
    memset(c, 0, sizeof *c);
    if (strcmp(name, "tiny") == 0) {
        /* 1640 = the pieces the synthetic tokenizer really has: a larger
         * vocabulary is padded with <unusedN> pieces, which a random model
         * then prints */
        *c = (LlamaConfig){.dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 4, .hidden_dim = 176,
                           .vocab_size = 1640, .max_pos = 512};
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

static int synth_tensor_list(const LlamaConfig *c, SynthList *l, Error *err) {
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t emb[2] = {c->vocab_size, c->dim}, vec[1] = {c->dim};
    char name[160];
    if (synth_add(l, "model.embed_tokens.weight", 2, emb, synth_scale(1), 0, err)) return -1;
    for (int i = 0; i < c->n_layers; i++) {
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
            int64_t shape[2] = {m[j].rows, m[j].cols};
            snprintf(name, sizeof name, m[j].fmt, i);
            if (synth_add(l, name, 2, shape, synth_scale(m[j].cols), 0, err)) return -1;
        }
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
        if (synth_add(l, name, 1, vec, 0, 1, err)) return -1;
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
        if (synth_add(l, name, 1, vec, 0, 1, err)) return -1;
    }
    if (synth_add(l, "model.norm.weight", 1, vec, 0, 1, err)) return -1;
    if (!c->tie_embeddings && synth_add(l, "lm_head.weight", 2, emb, synth_scale(c->dim), 0, err)) return -1;
    return 0;
}

int llama_synth_write(const LlamaConfig *c, DType dt, uint64_t seed, const char *dir, Error *err) {
    if (dt != DT_F32 && dt != DT_F16 && dt != DT_BF16)
        return error_set(err, "synth: dtype %s is not one of F32, F16, BF16", dtype_name(dt));
    if (synth_make_dir(dir, err)) return -1;
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
    SynthList list = {0};
    rc = synth_tensor_list(c, &list, err);
    if (!rc) rc = synth_write_weights(path, &list, dt, seed, err);
    synth_list_free(&list);
    return rc;
}
