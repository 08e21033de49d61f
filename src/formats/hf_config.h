/* Hugging Face config.json / generation_config.json: LLaMA-family models
 * and GIT (Med-GIT). Nested configs store only non-default keys, so the
 * loaders carry transformers' class defaults. */
#ifndef VMED_FORMATS_HF_CONFIG_H
#define VMED_FORMATS_HF_CONFIG_H

#include "base/error.h"

typedef struct {
    int dim;          /* hidden_size */
    int n_layers;     /* num_hidden_layers */
    int n_heads;      /* num_attention_heads */
    int n_kv_heads;   /* num_key_value_heads (defaults to n_heads) */
    int head_dim;     /* dim / n_heads */
    int hidden_dim;   /* intermediate_size */
    int vocab_size;
    int max_pos;      /* max_position_embeddings */
    float norm_eps;   /* rms_norm_eps */
    float rope_theta;
    float rope_linear_factor; /* rope_scaling {"type": "linear", "factor": f}; 1 when absent */
    int tie_embeddings;
    int bos_id, eos_id; /* generation_config.json overrides config.json */
} LlamaConfig;

/* Reads dir/config.json and, when present, dir/generation_config.json.
 * Every field is range-checked; an unsupported rope_scaling type, hidden_act
 * or model_type is an error that names the field. */
int llama_config_load(LlamaConfig *c, const char *dir, Error *err);

/* Writes config.json and generation_config.json for c into dir (atomic). */
int llama_config_save(const LlamaConfig *c, const char *dir, const char *torch_dtype, Error *err);

/* CLIP vision tower (GitVisionConfig / CLIPVisionConfig). */
typedef struct {
    int dim, n_layers, n_heads, hidden_dim;
    int image_size, patch_size, n_channels;
    float norm_eps;
} ClipVisionConfig;

typedef struct {
    ClipVisionConfig vision;
    int dim, n_layers, n_heads, hidden_dim; /* the BERT-style text decoder */
    int vocab_size, max_pos;
    float norm_eps;
    int bos_id, eos_id, pad_id;
    int n_image_tokens; /* 1 + (image_size / patch_size)^2 */
} GitConfig;

/* dir/config.json of a GitForCausalLM; generation_config.json overrides
 * bos/eos/pad when present. Only hidden_act gelu (text) and quick_gelu
 * (vision), absolute positions and one image are supported; anything else
 * is an error naming the field. */
int git_config_load(GitConfig *c, const char *dir, Error *err);

#endif
