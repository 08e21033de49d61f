#include "formats/hf_config.h"

#include <stdio.h>
#include <string.h>

#include "base/file.h"
#include "formats/json_util.h"

#define CONFIG_MAX_BYTES (4u << 20)

/* eos_token_id may be a number or (newer configs) a list: the first counts. */
static int read_token_id(const cJSON *root, const char *key, int *out, int vocab, const char *file, Error *err) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (cJSON_IsArray(item)) {
        if (cJSON_GetArraySize(item) == 0) return error_set(err, "%s: field '%s' is an empty list", file, key);
        item = cJSON_GetArrayItem(item, 0);
        if (!cJSON_IsNumber(item)) return error_set(err, "%s: field '%s' must hold numbers", file, key);
        double v = item->valuedouble;
        if (v != (int)v || v < 0 || v >= vocab)
            return error_set(err, "%s: field '%s' is %g, expected 0..%d", file, key, v, vocab - 1);
        *out = (int)v;
        return 0;
    }
    int64_t v = *out;
    if (json_opt_int(root, key, &v, 0, vocab - 1, file, err)) return -1;
    *out = (int)v;
    return 0;
}

static int read_rope_scaling(LlamaConfig *c, const cJSON *root, const char *file, Error *err) {
    c->rope_linear_factor = 1.0f;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs)) return error_set(err, "%s: field 'rope_scaling' must be null or an object", file);
    const char *type = NULL;
    if (json_opt_string(rs, "type", &type, file, err)) return -1;
    if (!type && json_opt_string(rs, "rope_type", &type, file, err)) return -1;
    if (!type) return error_set(err, "%s: field 'rope_scaling' has no 'type'", file);
    if (strcmp(type, "linear") != 0)
        return error_set(err, "%s: rope_scaling type '%s' is not supported (only 'linear')", file, type);
    double f;
    if (json_get_float(rs, "factor", &f, 1e-3, 1e6, file, err)) return error_prefix(err, "rope_scaling");
    c->rope_linear_factor = (float)f;
    return 0;
}

static int read_config(LlamaConfig *c, const cJSON *root, const char *file, Error *err) {
    if (!cJSON_IsObject(root)) return error_set(err, "%s: not a JSON object", file);
    const char *s = NULL;
    if (json_opt_string(root, "model_type", &s, file, err)) return -1;
    if (s && strcmp(s, "llama") != 0)
        return error_set(err, "%s: model_type is '%s', expected 'llama'", file, s);
    s = NULL;
    if (json_opt_string(root, "hidden_act", &s, file, err)) return -1;
    if (s && strcmp(s, "silu") != 0)
        return error_set(err, "%s: hidden_act '%s' is not supported (LLaMA uses 'silu')", file, s);

    int64_t dim, layers, heads, kv, hidden, vocab, max_pos = 2048;
    if (json_get_int(root, "hidden_size", &dim, 1, 1 << 16, file, err)) return -1;
    if (json_get_int(root, "num_hidden_layers", &layers, 1, 1024, file, err)) return -1;
    if (json_get_int(root, "num_attention_heads", &heads, 1, 1024, file, err)) return -1;
    kv = heads;
    if (json_opt_int(root, "num_key_value_heads", &kv, 1, heads, file, err)) return -1;
    if (json_get_int(root, "intermediate_size", &hidden, 1, 1 << 20, file, err)) return -1;
    if (json_get_int(root, "vocab_size", &vocab, 1, 1 << 24, file, err)) return -1;
    if (json_opt_int(root, "max_position_embeddings", &max_pos, 1, 1 << 24, file, err)) return -1;
    if (dim % heads != 0)
        return error_set(err, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld", file,
                         (long long)dim, (long long)heads);
    if (heads % kv != 0)
        return error_set(err, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", file,
                         (long long)heads, (long long)kv);
    int64_t head_dim = dim / heads;
    if (json_opt_int(root, "head_dim", &head_dim, 1, 1 << 16, file, err)) return -1;
    if (head_dim != dim / heads)
        return error_set(err, "%s: head_dim %lld differs from hidden_size / num_attention_heads = %lld", file,
                         (long long)head_dim, (long long)(dim / heads));
    if (head_dim % 2 != 0) return error_set(err, "%s: head dimension %lld must be even for RoPE", file, (long long)head_dim);

    double eps = 1e-6, theta = 10000.0;
    if (json_opt_float(root, "rms_norm_eps", &eps, 1e-12, 1.0, file, err)) return -1;
    if (json_opt_float(root, "rope_theta", &theta, 1.0, 1e12, file, err)) return -1;
    int tie = 0;
    if (json_opt_bool(root, "tie_word_embeddings", &tie, file, err)) return -1;

    c->dim = (int)dim;
    c->n_layers = (int)layers;
    c->n_heads = (int)heads;
    c->n_kv_heads = (int)kv;
    c->head_dim = (int)head_dim;
    c->hidden_dim = (int)hidden;
    c->vocab_size = (int)vocab;
    c->max_pos = (int)max_pos;
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    c->tie_embeddings = tie;
    c->bos_id = 1 < vocab ? 1 : 0;
    c->eos_id = 2 < vocab ? 2 : 0;
    if (read_token_id(root, "bos_token_id", &c->bos_id, c->vocab_size, file, err)) return -1;
    if (read_token_id(root, "eos_token_id", &c->eos_id, c->vocab_size, file, err)) return -1;
    return read_rope_scaling(c, root, file, err);
}

int llama_config_load(LlamaConfig *c, const char *dir, Error *err) {
    memset(c, 0, sizeof *c);
    char path[1100];
    if (path_join(path, sizeof path, dir, "config.json", err)) return -1;
    cJSON *root;
    if (json_load_file(&root, path, CONFIG_MAX_BYTES, err)) return -1;
    int rc = read_config(c, root, path, err);
    cJSON_Delete(root);
    if (rc) return -1;

    if (path_join(path, sizeof path, dir, "generation_config.json", err)) return -1;
    if (!file_exists(path)) return 0;
    if (json_load_file(&root, path, CONFIG_MAX_BYTES, err)) return -1;
    rc = 0;
    if (!cJSON_IsObject(root)) rc = error_set(err, "%s: not a JSON object", path);
    if (!rc) rc = read_token_id(root, "bos_token_id", &c->bos_id, c->vocab_size, path, err);
    if (!rc) rc = read_token_id(root, "eos_token_id", &c->eos_id, c->vocab_size, path, err);
    cJSON_Delete(root);
    return rc;
}

static int write_text(const char *dir, const char *name, const char *text, Error *err) {
    char path[1100];
    if (path_join(path, sizeof path, dir, name, err)) return -1;
    return file_write_all(path, text, strlen(text), err);
}

int llama_config_save(const LlamaConfig *c, const char *dir, const char *torch_dtype, Error *err) {
    char buf[2048];
    char rope[128] = "null";
    if (c->rope_linear_factor != 1.0f)
        snprintf(rope, sizeof rope, "{\"type\": \"linear\", \"factor\": %.9g}", c->rope_linear_factor);
    snprintf(buf, sizeof buf,
             "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
             "  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
             "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n"
             "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %.9g,\n"
             "  \"rope_theta\": %.9g,\n  \"rope_scaling\": %s,\n  \"tie_word_embeddings\": %s,\n"
             "  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"torch_dtype\": \"%s\"\n}\n",
             c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->max_pos,
             c->norm_eps, c->rope_theta, rope, c->tie_embeddings ? "true" : "false", c->bos_id, c->eos_id,
             torch_dtype);
    if (write_text(dir, "config.json", buf, err)) return -1;
    snprintf(buf, sizeof buf, "{\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d\n}\n", c->bos_id, c->eos_id);
    return write_text(dir, "generation_config.json", buf, err);
}

/* --------------------------------------------------------------------- GIT */

static int require_string(const cJSON *obj, const char *key, const char *want, const char *file, Error *err) {
    const char *s = NULL;
    if (json_opt_string(obj, key, &s, file, err)) return -1;
    if (s && strcmp(s, want) != 0)
        return error_set(err, "%s: %s '%s' is not supported (expected '%s')", file, key, s, want);
    return 0;
}

static int read_vision_config(ClipVisionConfig *v, const cJSON *vc, const char *file, Error *err) {
    /* GitVisionConfig defaults (ViT-B/16 at 224) */
    int64_t dim = 768, layers = 12, heads = 12, hidden = 3072, image = 224, patch = 16, ch = 3;
    double eps = 1e-5;
    if (!cJSON_IsObject(vc)) return error_set(err, "%s: vision_config must be an object", file);
    if (json_opt_int(vc, "hidden_size", &dim, 1, 1 << 16, file, err)) return -1;
    if (json_opt_int(vc, "num_hidden_layers", &layers, 1, 1024, file, err)) return -1;
    if (json_opt_int(vc, "num_attention_heads", &heads, 1, 1024, file, err)) return -1;
    if (json_opt_int(vc, "intermediate_size", &hidden, 1, 1 << 20, file, err)) return -1;
    if (json_opt_int(vc, "image_size", &image, 1, 8192, file, err)) return -1;
    if (json_opt_int(vc, "patch_size", &patch, 1, 1024, file, err)) return -1;
    if (json_opt_int(vc, "num_channels", &ch, 1, 4, file, err)) return -1;
    if (json_opt_float(vc, "layer_norm_eps", &eps, 1e-30, 1.0, file, err)) return -1;
    if (require_string(vc, "hidden_act", "quick_gelu", file, err)) return error_prefix(err, "vision_config");
    if (dim % heads) return error_set(err, "%s: vision_config hidden_size %lld is not a multiple of num_attention_heads %lld",
                                      file, (long long)dim, (long long)heads);
    if (image % patch) return error_set(err, "%s: vision_config image_size %lld is not a multiple of patch_size %lld",
                                        file, (long long)image, (long long)patch);
    *v = (ClipVisionConfig){(int)dim, (int)layers, (int)heads, (int)hidden, (int)image, (int)patch, (int)ch, (float)eps};
    return 0;
}

static int read_git_config(GitConfig *c, const cJSON *root, const char *file, Error *err) {
    if (!cJSON_IsObject(root)) return error_set(err, "%s: not a JSON object", file);
    const char *mt = NULL;
    if (json_opt_string(root, "model_type", &mt, file, err)) return -1;
    if (mt && strcmp(mt, "git") != 0) return error_set(err, "%s: model_type is '%s', expected 'git'", file, mt);
    if (require_string(root, "hidden_act", "gelu", file, err)) return -1;
    if (require_string(root, "position_embedding_type", "absolute", file, err)) return -1;
    const cJSON *nimg = cJSON_GetObjectItemCaseSensitive(root, "num_image_with_embedding");
    if (nimg && !cJSON_IsNull(nimg))
        return error_set(err, "%s: num_image_with_embedding is set (video GIT): only single images are supported", file);
    int64_t dim = 768, layers = 6, heads = 12, hidden = 3072, vocab = 30522, max_pos = 1024;
    int64_t bos = 101, eos = 102, pad = 0;
    double eps = 1e-12;
    if (json_opt_int(root, "hidden_size", &dim, 1, 1 << 16, file, err)) return -1;
    if (json_opt_int(root, "num_hidden_layers", &layers, 1, 1024, file, err)) return -1;
    if (json_opt_int(root, "num_attention_heads", &heads, 1, 1024, file, err)) return -1;
    if (json_opt_int(root, "intermediate_size", &hidden, 1, 1 << 20, file, err)) return -1;
    if (json_opt_int(root, "vocab_size", &vocab, 1, 1 << 24, file, err)) return -1;
    if (json_opt_int(root, "max_position_embeddings", &max_pos, 1, 1 << 20, file, err)) return -1;
    if (json_opt_float(root, "layer_norm_eps", &eps, 1e-30, 1.0, file, err)) return -1;
    if (json_opt_int(root, "bos_token_id", &bos, 0, vocab - 1, file, err)) return -1;
    if (json_opt_int(root, "eos_token_id", &eos, 0, vocab - 1, file, err)) return -1;
    if (json_opt_int(root, "pad_token_id", &pad, 0, vocab - 1, file, err)) return -1;
    if (dim % heads) return error_set(err, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld", file,
                                      (long long)dim, (long long)heads);
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    cJSON empty = {0};
    empty.type = cJSON_Object;
    if (read_vision_config(&c->vision, vc ? vc : &empty, file, err)) return -1;
    c->dim = (int)dim;
    c->n_layers = (int)layers;
    c->n_heads = (int)heads;
    c->hidden_dim = (int)hidden;
    c->vocab_size = (int)vocab;
    c->max_pos = (int)max_pos;
    c->norm_eps = (float)eps;
    c->bos_id = (int)bos;
    c->eos_id = (int)eos;
    c->pad_id = (int)pad;
    int side = c->vision.image_size / c->vision.patch_size;
    c->n_image_tokens = 1 + side * side;
    return 0;
}

int git_config_load(GitConfig *c, const char *dir, Error *err) {
    memset(c, 0, sizeof *c);
    char path[1100];
    if (path_join(path, sizeof path, dir, "config.json", err)) return -1;
    cJSON *root;
    if (json_load_file(&root, path, CONFIG_MAX_BYTES, err)) return -1;
    int rc = read_git_config(c, root, path, err);
    cJSON_Delete(root);
    if (rc) return -1;
    if (path_join(path, sizeof path, dir, "generation_config.json", err)) return -1;
    if (!file_exists(path)) return 0;
    if (json_load_file(&root, path, CONFIG_MAX_BYTES, err)) return -1;
    int64_t bos = c->bos_id, eos = c->eos_id, pad = c->pad_id;
    rc = !cJSON_IsObject(root) ? error_set(err, "%s: not a JSON object", path) : 0;
    if (!rc) rc = json_opt_int(root, "bos_token_id", &bos, 0, c->vocab_size - 1, path, err);
    if (!rc) rc = json_opt_int(root, "eos_token_id", &eos, 0, c->vocab_size - 1, path, err);
    if (!rc) rc = json_opt_int(root, "pad_token_id", &pad, 0, c->vocab_size - 1, path, err);
    cJSON_Delete(root);
    c->bos_id = (int)bos;
    c->eos_id = (int)eos;
    c->pad_id = (int)pad;
    return rc;
}

/* -------------------------------------------------------------- Pix2Struct */

static int read_dense_act(const cJSON *obj, DenseAct *act, const char *label, Error *err) {
    const char *s = NULL;
    if (json_opt_string(obj, "dense_act_fn", &s, label, err)) return -1;
    if (s && strcmp(s, "gelu_new") != 0)
        return error_set(err, "%s: dense_act_fn '%s' is not supported (only 'gelu_new')", label, s);
    *act = DENSE_ACT_GELU_NEW;
    return 0;
}

/* An int field that also has an alias key (PretrainedConfig.attribute_map):
 * HF sets the alias after the real name, so the alias wins. */
static int read_aliased_int(const cJSON *obj, const char *key, const char *alias, int64_t *out, int64_t min,
                            int64_t max, const char *label, Error *err) {
    if (json_opt_int(obj, key, out, min, max, label, err)) return -1;
    return json_opt_int(obj, alias, out, min, max, label, err);
}

static int read_p2s_vision(Pix2StructVisionConfig *v, const cJSON *vc, const char *label, Error *err) {
    /* Pix2StructVisionConfig defaults (pix2struct-base) */
    int64_t dim = 768, layers = 12, heads = 12, d_kv = 64, d_ff = 2048, seq_len = 4096, patch_dim = 768;
    double eps = 1e-6;
    if (!cJSON_IsObject(vc)) return error_set(err, "%s: not an object", label);
    if (json_opt_int(vc, "hidden_size", &dim, 1, 1 << 16, label, err)) return -1;
    if (json_opt_int(vc, "num_hidden_layers", &layers, 1, 1024, label, err)) return -1;
    if (json_opt_int(vc, "num_attention_heads", &heads, 1, 1024, label, err)) return -1;
    if (json_opt_int(vc, "d_kv", &d_kv, 1, 1 << 16, label, err)) return -1;
    if (json_opt_int(vc, "d_ff", &d_ff, 1, 1 << 20, label, err)) return -1;
    if (json_opt_int(vc, "seq_len", &seq_len, 1, 1 << 20, label, err)) return -1;
    if (json_opt_int(vc, "patch_embed_hidden_size", &patch_dim, 1, 1 << 20, label, err)) return -1;
    if (json_opt_float(vc, "layer_norm_eps", &eps, 0.0, 1.0, label, err)) return -1;
    if (read_dense_act(vc, &v->act, label, err)) return -1;
    if (heads * d_kv > (1 << 16))
        return error_set(err, "%s: num_attention_heads %lld x d_kv %lld is too large", label, (long long)heads,
                         (long long)d_kv);
    v->dim = (int)dim;
    v->n_layers = (int)layers;
    v->n_heads = (int)heads;
    v->d_kv = (int)d_kv;
    v->d_ff = (int)d_ff;
    v->seq_len = (int)seq_len;
    v->patch_dim = (int)patch_dim;
    v->norm_eps = (float)eps;
    return 0;
}

/* Reads text_config and its token ids. */
static int read_p2s_text(Pix2StructConfig *c, const cJSON *tc, const char *label, Error *err) {
    /* Pix2StructTextConfig defaults (pix2struct-base) */
    int64_t dim = 768, layers = 12, heads = 12, d_kv = 64, d_ff = 2048, vocab = 50244, buckets = 32, max_dist = 128;
    int64_t start = 0, eos = 1, pad = 0;
    double eps = 1e-6;
    Pix2StructTextConfig *t = &c->text;
    if (!cJSON_IsObject(tc)) return error_set(err, "%s: not an object", label);
    if (json_opt_int(tc, "hidden_size", &dim, 1, 1 << 16, label, err)) return -1;
    if (read_aliased_int(tc, "num_layers", "num_hidden_layers", &layers, 1, 1024, label, err)) return -1;
    if (read_aliased_int(tc, "num_heads", "num_attention_heads", &heads, 1, 1024, label, err)) return -1;
    if (json_opt_int(tc, "d_kv", &d_kv, 1, 1 << 16, label, err)) return -1;
    if (json_opt_int(tc, "d_ff", &d_ff, 1, 1 << 20, label, err)) return -1;
    if (json_opt_int(tc, "vocab_size", &vocab, 1, 1 << 24, label, err)) return -1;
    if (json_opt_int(tc, "relative_attention_num_buckets", &buckets, 2, 1 << 16, label, err)) return -1;
    if (json_opt_int(tc, "relative_attention_max_distance", &max_dist, 1, 1 << 24, label, err)) return -1;
    if (json_opt_float(tc, "layer_norm_epsilon", &eps, 0.0, 1.0, label, err)) return -1;
    if (read_dense_act(tc, &t->act, label, err)) return -1;
    if (json_opt_int(tc, "decoder_start_token_id", &start, 0, vocab - 1, label, err)) return -1;
    if (json_opt_int(tc, "eos_token_id", &eos, 0, vocab - 1, label, err)) return -1;
    if (json_opt_int(tc, "pad_token_id", &pad, 0, vocab - 1, label, err)) return -1;
    if (heads * d_kv != dim)
        return error_set(err, "%s: num_heads %lld x d_kv %lld is not hidden_size %lld, as the decoder's attention needs",
                         label, (long long)heads, (long long)d_kv, (long long)dim);
    /* T5's log-spaced buckets start at num_buckets / 2 and grow up to max_distance */
    if (max_dist <= buckets / 2)
        return error_set(err, "%s: relative_attention_max_distance %lld must exceed relative_attention_num_buckets / 2 = %lld",
                         label, (long long)max_dist, (long long)(buckets / 2));
    t->dim = (int)dim;
    t->n_layers = (int)layers;
    t->n_heads = (int)heads;
    t->d_kv = (int)d_kv;
    t->d_ff = (int)d_ff;
    t->vocab_size = (int)vocab;
    t->rel_buckets = (int)buckets;
    t->rel_max_distance = (int)max_dist;
    t->norm_eps = (float)eps;
    c->decoder_start_id = (int)start;
    c->eos_id = (int)eos;
    c->pad_id = (int)pad;
    return 0;
}

static int read_p2s_config(Pix2StructConfig *c, const cJSON *root, const char *file, Error *err) {
    if (!cJSON_IsObject(root)) return error_set(err, "%s: not a JSON object", file);
    const char *mt = NULL;
    if (json_opt_string(root, "model_type", &mt, file, err)) return -1;
    if (mt && strcmp(mt, "pix2struct") != 0)
        return error_set(err, "%s: model_type is '%s', expected 'pix2struct'", file, mt);
    if (json_opt_bool(root, "tie_word_embeddings", &c->tie_embeddings, file, err)) return -1;
    cJSON empty = {0};
    empty.type = cJSON_Object;
    char label[1200];
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    snprintf(label, sizeof label, "%s: vision_config", file);
    if (read_p2s_vision(&c->vision, vc && !cJSON_IsNull(vc) ? vc : &empty, label, err)) return -1;
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    snprintf(label, sizeof label, "%s: text_config", file);
    if (read_p2s_text(c, tc && !cJSON_IsNull(tc) ? tc : &empty, label, err)) return -1;
    if (c->vision.dim != c->text.dim)
        return error_set(err, "%s: vision_config hidden_size %d differs from text_config hidden_size %d; the decoder's "
                         "cross-attention needs them equal", file, c->vision.dim, c->text.dim);
    return 0;
}

int pix2struct_config_load(Pix2StructConfig *c, const char *dir, Error *err) {
    memset(c, 0, sizeof *c);
    char path[1100];
    if (path_join(path, sizeof path, dir, "config.json", err)) return -1;
    cJSON *root;
    if (json_load_file(&root, path, CONFIG_MAX_BYTES, err)) return -1;
    int rc = read_p2s_config(c, root, path, err);
    cJSON_Delete(root);
    if (rc) return -1;
    if (path_join(path, sizeof path, dir, "generation_config.json", err)) return -1;
    if (!file_exists(path)) return 0;
    if (json_load_file(&root, path, CONFIG_MAX_BYTES, err)) return -1;
    int64_t start = c->decoder_start_id, pad = c->pad_id;
    int vocab = c->text.vocab_size;
    rc = !cJSON_IsObject(root) ? error_set(err, "%s: not a JSON object", path) : 0;
    if (!rc) rc = json_opt_int(root, "decoder_start_token_id", &start, 0, vocab - 1, path, err);
    if (!rc) rc = read_token_id(root, "eos_token_id", &c->eos_id, vocab, path, err);
    if (!rc) rc = json_opt_int(root, "pad_token_id", &pad, 0, vocab - 1, path, err);
    cJSON_Delete(root);
    c->decoder_start_id = (int)start;
    c->pad_id = (int)pad;
    return rc;
}
