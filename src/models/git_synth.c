#include "models/git_synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "models/synth.h"

int git_synth_preset(GitConfig *c, const char *name, Error *err) {
    memset(c, 0, sizeof *c);
    if (strcmp(name, "tiny") == 0) {
        c->vision = (ClipVisionConfig){32, 2, 4, 64, 224, 16, 3, 1e-5f};
        c->dim = 32, c->n_layers = 2, c->n_heads = 4, c->hidden_dim = 64;
    } else if (strcmp(name, "base") == 0) {
        c->vision = (ClipVisionConfig){768, 12, 12, 3072, 224, 16, 3, 1e-5f};
        c->dim = 768, c->n_layers = 6, c->n_heads = 12, c->hidden_dim = 3072;
    } else {
        return error_set(err, "unknown GIT preset '%s' (tiny, base)", name);
    }
    c->vocab_size = 30522;
    c->max_pos = 1024;
    c->norm_eps = 1e-12f;
    c->bos_id = 101, c->eos_id = 102, c->pad_id = 0;
    int side = c->vision.image_size / c->vision.patch_size;
    c->n_image_tokens = 1 + side * side;
    return 0;
}

static int add_linear(SynthList *l, const char *prefix, const char *what, int64_t out, int64_t in, Error *err) {
    char name[160];
    int64_t w[2] = {out, in};
    snprintf(name, sizeof name, "%s%s.weight", prefix, what);
    if (synth_add(l, name, 2, w, synth_scale(in), 0, err)) return -1;
    snprintf(name, sizeof name, "%s%s.bias", prefix, what);
    return synth_add(l, name, 1, &out, 0.02f, 0, err);
}

static int add_norm(SynthList *l, const char *prefix, const char *what, int64_t n, Error *err) {
    char name[160];
    snprintf(name, sizeof name, "%s%s.weight", prefix, what);
    if (synth_add(l, name, 1, &n, 0, 1, err)) return -1;
    snprintf(name, sizeof name, "%s%s.bias", prefix, what);
    return synth_add(l, name, 1, &n, 0, 0, err);
}

static int git_tensor_list(const GitConfig *c, SynthList *l, Error *err) {
    const ClipVisionConfig *v = &c->vision;
    const char *vp = "git.image_encoder.vision_model.";
    char name[160], prefix[160];
    int side = v->image_size / v->patch_size;
    int64_t conv[4] = {v->dim, v->n_channels, v->patch_size, v->patch_size}, vd = v->dim;
    int64_t pos[2] = {1 + side * side, v->dim};
    snprintf(name, sizeof name, "%sembeddings.patch_embedding.weight", vp);
    if (synth_add(l, name, 4, conv, synth_scale((int64_t)v->n_channels * v->patch_size * v->patch_size), 0, err)) return -1;
    snprintf(name, sizeof name, "%sembeddings.class_embedding", vp);
    if (synth_add(l, name, 1, &vd, 0.5f, 0, err)) return -1;
    snprintf(name, sizeof name, "%sembeddings.position_embedding.weight", vp);
    if (synth_add(l, name, 2, pos, 0.5f, 0, err)) return -1;
    if (add_norm(l, vp, "pre_layrnorm", v->dim, err) || add_norm(l, vp, "post_layernorm", v->dim, err)) return -1;
    for (int i = 0; i < v->n_layers; i++) {
        snprintf(prefix, sizeof prefix, "%sencoder.layers.%d.", vp, i);
        if (add_linear(l, prefix, "self_attn.q_proj", v->dim, v->dim, err) ||
            add_linear(l, prefix, "self_attn.k_proj", v->dim, v->dim, err) ||
            add_linear(l, prefix, "self_attn.v_proj", v->dim, v->dim, err) ||
            add_linear(l, prefix, "self_attn.out_proj", v->dim, v->dim, err) ||
            add_linear(l, prefix, "mlp.fc1", v->hidden_dim, v->dim, err) ||
            add_linear(l, prefix, "mlp.fc2", v->dim, v->hidden_dim, err) ||
            add_norm(l, prefix, "layer_norm1", v->dim, err) || add_norm(l, prefix, "layer_norm2", v->dim, err))
            return -1;
    }
    if (add_linear(l, "git.visual_projection.visual_projection.", "0", c->dim, v->dim, err) ||
        add_norm(l, "git.visual_projection.visual_projection.", "1", c->dim, err))
        return -1;
    int64_t words[2] = {c->vocab_size, c->dim}, positions[2] = {c->max_pos, c->dim};
    if (synth_add(l, "git.embeddings.word_embeddings.weight", 2, words, 0.5f, 0, err) ||
        synth_add(l, "git.embeddings.position_embeddings.weight", 2, positions, 0.5f, 0, err) ||
        add_norm(l, "git.embeddings.", "LayerNorm", c->dim, err))
        return -1;
    for (int i = 0; i < c->n_layers; i++) {
        snprintf(prefix, sizeof prefix, "git.encoder.layer.%d.", i);
        if (add_linear(l, prefix, "attention.self.query", c->dim, c->dim, err) ||
            add_linear(l, prefix, "attention.self.key", c->dim, c->dim, err) ||
            add_linear(l, prefix, "attention.self.value", c->dim, c->dim, err) ||
            add_linear(l, prefix, "attention.output.dense", c->dim, c->dim, err) ||
            add_norm(l, prefix, "attention.output.LayerNorm", c->dim, err) ||
            add_linear(l, prefix, "intermediate.dense", c->hidden_dim, c->dim, err) ||
            add_linear(l, prefix, "output.dense", c->dim, c->hidden_dim, err) ||
            add_norm(l, prefix, "output.LayerNorm", c->dim, err))
            return -1;
    }
    return add_linear(l, "", "output", c->vocab_size, c->dim, err);
}

/* A BERT-style vocab.txt of vocab_size lines with the special tokens where
 * bert-base-uncased has them ([PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102,
 * [MASK] 103), single characters with their ## forms, then filler words. */
static char *synth_vocab(int vocab_size) {
    size_t cap = (size_t)vocab_size * 16 + 64, n = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    for (int i = 0; i < vocab_size; i++) {
        char tok[32];
        if (i == 0) snprintf(tok, sizeof tok, "[PAD]");
        else if (i < 100) snprintf(tok, sizeof tok, "[unused%d]", i - 1);
        else if (i == 100) snprintf(tok, sizeof tok, "[UNK]");
        else if (i == 101) snprintf(tok, sizeof tok, "[CLS]");
        else if (i == 102) snprintf(tok, sizeof tok, "[SEP]");
        else if (i == 103) snprintf(tok, sizeof tok, "[MASK]");
        else if (i < 104 + 94) snprintf(tok, sizeof tok, "%c", 33 + (i - 104));
        else if (i < 104 + 188) snprintf(tok, sizeof tok, "##%c", 33 + (i - 198));
        else snprintf(tok, sizeof tok, "w%d", i);
        n += (size_t)snprintf(s + n, cap - n, "%s\n", tok);
    }
    return s;
}

int git_synth_write(const GitConfig *c, DType dt, uint64_t seed, const char *dir, Error *err) {
    if (c->vocab_size < 300) return error_set(err, "synth: a GIT vocabulary needs at least 300 tokens");
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\n  \"architectures\": [\"GitForCausalLM\"],\n  \"model_type\": \"git\",\n  \"hidden_act\": \"gelu\",\n"
             "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_attention_heads\": %d,\n"
             "  \"num_hidden_layers\": %d,\n  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n"
             "  \"layer_norm_eps\": %g,\n  \"position_embedding_type\": \"absolute\",\n"
             "  \"num_image_with_embedding\": null,\n  \"tie_word_embeddings\": false,\n"
             "  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"pad_token_id\": %d,\n"
             "  \"vision_config\": {\n    \"hidden_size\": %d,\n    \"intermediate_size\": %d,\n"
             "    \"num_attention_heads\": %d,\n    \"num_hidden_layers\": %d,\n    \"image_size\": %d,\n"
             "    \"patch_size\": %d,\n    \"model_type\": \"git_vision_model\"\n  }\n}\n",
             c->dim, c->hidden_dim, c->n_heads, c->n_layers, c->vocab_size, c->max_pos, c->norm_eps, c->bos_id,
             c->eos_id, c->pad_id, c->vision.dim, c->vision.hidden_dim, c->vision.n_heads, c->vision.n_layers,
             c->vision.image_size, c->vision.patch_size);
    if (synth_write_text(dir, "config.json", buf, err)) return -1;
    snprintf(buf, sizeof buf, "{\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"pad_token_id\": %d\n}\n",
             c->bos_id, c->eos_id, c->pad_id);
    if (synth_write_text(dir, "generation_config.json", buf, err)) return -1;
    snprintf(buf, sizeof buf,
             "{\n  \"crop_size\": {\"height\": %d, \"width\": %d},\n  \"do_center_crop\": true,\n"
             "  \"do_convert_rgb\": true,\n  \"do_normalize\": true,\n  \"do_rescale\": true,\n  \"do_resize\": true,\n"
             "  \"image_mean\": [0.48145466, 0.4578275, 0.40821073],\n"
             "  \"image_processor_type\": \"CLIPImageProcessor\",\n"
             "  \"image_std\": [0.26862954, 0.26130258, 0.27577711],\n  \"processor_class\": \"GitProcessor\",\n"
             "  \"resample\": 3,\n  \"rescale_factor\": 0.00392156862745098,\n  \"size\": {\"shortest_edge\": %d}\n}\n",
             c->vision.image_size, c->vision.image_size, c->vision.image_size);
    if (synth_write_text(dir, "preprocessor_config.json", buf, err)) return -1;
    if (synth_write_text(dir, "tokenizer_config.json",
                         "{\n  \"do_lower_case\": true,\n  \"tokenizer_class\": \"BertTokenizer\",\n"
                         "  \"model_max_length\": 512\n}\n", err))
        return -1;
    char *vocab = synth_vocab(c->vocab_size);
    if (!vocab) return error_set(err, "out of memory");
    int rc = synth_write_text(dir, "vocab.txt", vocab, err);
    free(vocab);
    if (rc) return -1;
    SynthList list = {0};
    char path[1100];
    rc = path_join(path, sizeof path, dir, "model.safetensors", err);
    if (!rc) rc = git_tensor_list(c, &list, err);
    if (!rc) rc = synth_write_weights(path, &list, dt, seed, err);
    synth_list_free(&list);
    return rc;
}
