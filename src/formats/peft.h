/* PEFT LoRA adapters as the peft library (0.x) saves them: a folder with
 * adapter_config.json and adapter_model.safetensors.
 *
 * The config says which linear layers carry a low-rank update
 * (target_modules), its rank r and lora_alpha; the update of a layer is
 * W x + scaling * B (A x) with A = lora_A.weight [r, in], B = lora_B.weight
 * [out, r] and scaling = alpha / r (alpha / sqrt(r) with use_rslora).
 * Tensors are named base_model.model.<module>.lora_A.weight (older peft
 * wrote <module>.lora_A.default.weight), where <module> is the layer's name
 * inside the base model, e.g. model.layers.0.self_attn.q_proj.
 *
 * What is refused, each with a message naming the file and the field:
 * peft_type other than LORA, fan_in_fan_out true (GPT-2 style Conv1D
 * weights, never LLaMA), bias other than "none", modules_to_save (whole
 * replaced modules), use_dora, task types other than CAUSAL_LM, and regular
 * expressions in target_modules or in rank_pattern / alpha_pattern keys.
 * This layer knows no model: which module names exist is the model's
 * business (models/llama_lora.h). */
#ifndef VMED_FORMATS_PEFT_H
#define VMED_FORMATS_PEFT_H

#include <stddef.h>

#include "base/error.h"
#include "formats/safetensors.h"

/* Beyond any rank anyone trains; larger values are a broken config. */
#define PEFT_MAX_RANK 65536

typedef struct {
    char *key;    /* a module-name suffix, matched as peft matches ".*\.{key}$" */
    double value; /* the rank (rank_pattern) or alpha (alpha_pattern) */
} PeftPattern;

typedef struct {
    char path[1024];          /* adapter_config.json as given, for messages */
    int r;
    double lora_alpha;
    int use_rslora;
    char **targets;           /* target_modules; matched as peft matches a list */
    int n_targets;            /* 0: absent or null, the model's default set applies */
    char *base_model;         /* base_model_name_or_path; NULL when absent or empty */
    char *task_type;          /* NULL when absent */
    PeftPattern *rank_pattern, *alpha_pattern;
    int n_rank_pattern, n_alpha_pattern;
    int *layers;              /* layers_to_transform; NULL: every layer */
    int n_layers;
} PeftConfig;

/* Parses adapter_config.json text (len bytes, need not be NUL-terminated);
 * label names it in messages. On failure c is left empty. */
int peft_config_parse(PeftConfig *c, const char *text, size_t len, const char *label, Error *err);
/* dir/adapter_config.json. */
int peft_config_load(PeftConfig *c, const char *dir, Error *err);
void peft_config_free(PeftConfig *c);

/* 1 when the module named key (e.g. "model.layers.0.self_attn.q_proj")
 * is one target_modules selects: key == t or key ends with "." t. */
int peft_config_targets(const PeftConfig *c, const char *key);
/* 1 when target t (an entry of targets) selects key. */
int peft_name_matches(const char *key, const char *t);
/* 1 when layers_to_transform is absent or lists layer. */
int peft_layer_selected(const PeftConfig *c, int layer);
/* The rank, alpha and scaling of module key after rank_pattern and
 * alpha_pattern, chosen as peft does: the first key of rank_pattern then
 * alpha_pattern that matches decides both. */
void peft_module_params(const PeftConfig *c, const char *key, int *r, double *alpha, double *scaling);

/* Opens dir/adapter_model.safetensors, else dir/adapter_model.bin (a
 * torch.save zip, read by formats/torch_bin without running the pickle). */
int peft_open_weights(SafeTensors *st, const char *dir, Error *err);

/* Splits a tensor name "base_model.model.<module>.lora_A.weight" (or
 * .lora_A.default.weight, or lora_B) into module (written to key, cap
 * bytes) and which ('A' or 'B'). Returns 0, or -1 when name is not the
 * name of a LoRA weight. */
int peft_split_tensor_name(const char *name, char *key, size_t cap, char *which);

#endif
