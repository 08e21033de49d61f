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

/* -------------------------------------------------------------- Pix2Struct */

/* The feed-forward activation (dense_act_fn). Only gelu_new, the tanh
 * approximation every Pix2Struct checkpoint uses, is supported. */
typedef enum { DENSE_ACT_GELU_NEW = 0 } DenseAct;

/* Pix2StructVisionConfig: the patch encoder. */
typedef struct {
    int dim;         /* hidden_size */
    int n_layers;    /* num_hidden_layers */
    int n_heads;     /* num_attention_heads */
    int d_kv;        /* per-head size; n_heads * d_kv need not equal dim */
    int d_ff;
    int seq_len;     /* rows of the row and column embedders: patch row/column ids are < seq_len */
    int patch_dim;   /* patch_embed_hidden_size: pixel values per patch (16 * 16 * 3) */
    float norm_eps;  /* layer_norm_eps */
    DenseAct act;    /* dense_act_fn */
} Pix2StructVisionConfig;

/* Pix2StructTextConfig: the T5-style decoder. */
typedef struct {
    int dim;              /* hidden_size */
    int n_layers;         /* num_layers (alias num_hidden_layers) */
    int n_heads;          /* num_heads (alias num_attention_heads) */
    int d_kv;             /* n_heads * d_kv == dim, as HF's text attention needs */
    int d_ff;
    int vocab_size;
    int rel_buckets;      /* relative_attention_num_buckets */
    int rel_max_distance; /* relative_attention_max_distance */
    float norm_eps;       /* layer_norm_epsilon */
    DenseAct act;         /* dense_act_fn */
} Pix2StructTextConfig;

typedef struct {
    Pix2StructVisionConfig vision;
    Pix2StructTextConfig text;
    int tie_embeddings;   /* tie_word_embeddings: lm_head is embed_tokens */
    int decoder_start_id; /* the decoder's first input (the pad id in every checkpoint) */
    int eos_id, pad_id;
} Pix2StructConfig;

/* dir/config.json of a Pix2StructForConditionalGeneration (DePlot). The
 * nested text_config / vision_config store only the keys that differ from
 * transformers' class defaults, which are filled in here. The token ids come
 * from text_config (HF copies them up from there); generation_config.json
 * overrides them when present. The decoder's cross-attention reads encoder
 * rows with text-sized projections, so the two hidden sizes must agree. */
int pix2struct_config_load(Pix2StructConfig *c, const char *dir, Error *err);

#endif
