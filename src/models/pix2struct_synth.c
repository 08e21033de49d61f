#include "models/pix2struct_synth.h"

#include <stdio.h>
#include <string.h>

#include "base/file.h"
#include "models/synth.h"
#include "text/spm.h"

typedef struct {
    int dim, layers, heads, d_kv, d_ff, vocab, seq_len, patch_dim, buckets;
} P2sShape;

static int add_matrix(SynthList *l, const char *name, int64_t out, int64_t in, Error *err) {
    int64_t shape[2] = {out, in};
    return synth_add(l, name, 2, shape, synth_scale(in), 0, err);
}

static int add_norm(SynthList *l, const char *name, int64_t n, Error *err) { return synth_add(l, name, 1, &n, 0, 1, err); }

/* The four projections of an attention block, HF's Pix2Struct names. */
static int add_attention(SynthList *l, const char *prefix, const P2sShape *s, Error *err) {
    const char *what[4] = {"query", "key", "value", "output"};
    char name[160];
    int64_t inner = (int64_t)s->heads * s->d_kv;
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "%s.%s.weight", prefix, what[k]);
        if (add_matrix(l, name, k < 3 ? inner : s->dim, k < 3 ? s->dim : inner, err)) return -1;
    }
    return 0;
}

static int add_gated_mlp(SynthList *l, const char *prefix, const P2sShape *s, Error *err) {
    char name[160];
    snprintf(name, sizeof name, "%s.wi_0.weight", prefix);
    if (add_matrix(l, name, s->d_ff, s->dim, err)) return -1;
    snprintf(name, sizeof name, "%s.wi_1.weight", prefix);
    if (add_matrix(l, name, s->d_ff, s->dim, err)) return -1;
    snprintf(name, sizeof name, "%s.wo.weight", prefix);
    return add_matrix(l, name, s->dim, s->d_ff, err);
}

static int p2s_tensor_list(const P2sShape *s, SynthList *l, Error *err) {
    char name[160];
    int64_t emb[2] = {s->seq_len, s->dim}, rel[2] = {s->buckets, s->heads}, bias = s->dim;
    if (add_matrix(l, "encoder.embeddings.patch_projection.weight", s->dim, s->patch_dim, err) ||
        synth_add(l, "encoder.embeddings.patch_projection.bias", 1, &bias, 0.02f, 0, err) ||
        synth_add(l, "encoder.embeddings.row_embedder.weight", 2, emb, 0.5f, 0, err) ||
        synth_add(l, "encoder.embeddings.column_embedder.weight", 2, emb, 0.5f, 0, err))
        return -1;
    for (int i = 0; i < s->layers; i++) {
        snprintf(name, sizeof name, "encoder.encoder.layer.%d.attention", i);
        if (add_attention(l, name, s, err)) return -1;
        snprintf(name, sizeof name, "encoder.encoder.layer.%d.mlp", i);
        if (add_gated_mlp(l, name, s, err)) return -1;
        snprintf(name, sizeof name, "encoder.encoder.layer.%d.pre_attention_layer_norm.weight", i);
        if (add_norm(l, name, s->dim, err)) return -1;
        snprintf(name, sizeof name, "encoder.encoder.layer.%d.pre_mlp_layer_norm.weight", i);
        if (add_norm(l, name, s->dim, err)) return -1;
    }
    if (add_norm(l, "encoder.layernorm.weight", s->dim, err)) return -1;
    int64_t words[2] = {s->vocab, s->dim};
    if (synth_add(l, "decoder.embed_tokens.weight", 2, words, 1.0f, 0, err)) return -1;
    for (int i = 0; i < s->layers; i++) {
        snprintf(name, sizeof name, "decoder.layer.%d.self_attention.attention", i);
        if (add_attention(l, name, s, err)) return -1;
        if (i == 0 && synth_add(l, "decoder.layer.0.self_attention.attention.relative_attention_bias.weight", 2, rel,
                                0.5f, 0, err))
            return -1;
        snprintf(name, sizeof name, "decoder.layer.%d.self_attention.layer_norm.weight", i);
        if (add_norm(l, name, s->dim, err)) return -1;
        snprintf(name, sizeof name, "decoder.layer.%d.encoder_decoder_attention.attention", i);
        if (add_attention(l, name, s, err)) return -1;
        snprintf(name, sizeof name, "decoder.layer.%d.encoder_decoder_attention.layer_norm.weight", i);
        if (add_norm(l, name, s->dim, err)) return -1;
        snprintf(name, sizeof name, "decoder.layer.%d.mlp.DenseReluDense", i);
        if (add_gated_mlp(l, name, s, err)) return -1;
        snprintf(name, sizeof name, "decoder.layer.%d.mlp.layer_norm.weight", i);
        if (add_norm(l, name, s->dim, err)) return -1;
    }
    if (add_norm(l, "decoder.final_layer_norm.weight", s->dim, err)) return -1;
    return add_matrix(l, "decoder.lm_head.weight", s->vocab, s->dim, err);
}

int pix2struct_synth_write(const char *preset, DType dt, uint64_t seed, const char *dir, Error *err) {
    P2sShape s;
    if (strcmp(preset, "tiny") == 0) s = (P2sShape){32, 2, 4, 8, 64, 2100, 4096, 768, 32};
    else if (strcmp(preset, "base") == 0) s = (P2sShape){768, 12, 12, 64, 2048, 50244, 4096, 768, 32};
    else return error_set(err, "unknown Pix2Struct preset '%s' (tiny, base)", preset);
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\n  \"architectures\": [\"Pix2StructForConditionalGeneration\"],\n  \"model_type\": \"pix2struct\",\n"
             "  \"is_vqa\": true,\n  \"decoder_start_token_id\": 0,\n  \"eos_token_id\": 1,\n  \"pad_token_id\": 0,\n"
             "  \"tie_word_embeddings\": false,\n"
             "  \"text_config\": {\"hidden_size\": %d, \"num_layers\": %d, \"num_heads\": %d, \"d_kv\": %d,"
             " \"d_ff\": %d, \"vocab_size\": %d, \"relative_attention_num_buckets\": %d},\n"
             "  \"vision_config\": {\"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d,"
             " \"d_kv\": %d, \"d_ff\": %d, \"seq_len\": %d, \"patch_embed_hidden_size\": %d}\n}\n",
             s.dim, s.layers, s.heads, s.d_kv, s.d_ff, s.vocab, s.buckets, s.dim, s.layers, s.heads, s.d_kv, s.d_ff,
             s.seq_len, s.patch_dim);
    if (synth_write_text(dir, "config.json", buf, err)) return -1;
    if (synth_write_text(dir, "generation_config.json",
                         "{\n  \"decoder_start_token_id\": 0,\n  \"eos_token_id\": 1,\n  \"pad_token_id\": 0\n}\n", err))
        return -1;
    if (synth_write_text(dir, "preprocessor_config.json",
                         "{\n  \"do_convert_rgb\": true,\n  \"do_normalize\": true,\n"
                         "  \"image_processor_type\": \"Pix2StructImageProcessor\",\n  \"is_vqa\": true,\n"
                         "  \"max_patches\": 2048,\n  \"patch_size\": {\"height\": 16, \"width\": 16}\n}\n", err))
        return -1;
    /* A T5-layout vocabulary so that the folder loads as DePlot does: the
     * text vocab is the pieces plus T5's 100 extra ids. */
    Tokenizer *tok;
    char path[1100];
    if (path_join(path, sizeof path, dir, "spiece.model", err) || tokenizer_build_synthetic_t5(&tok, s.vocab - 100, err))
        return -1;
    int rc = tokenizer_save_spm(tok, path, err);
    tokenizer_free(tok);
    if (rc) return -1;
    SynthList list = {0};
    rc = path_join(path, sizeof path, dir, "model.safetensors", err);
    if (!rc) rc = p2s_tensor_list(&s, &list, err);
    if (!rc) rc = synth_write_weights(path, &list, dt, seed, err);
    synth_list_free(&list);
    return rc;
}
