/* PEFT LoRA adapters on a LLaMA model (Med-Alpaca's LoRA variant).
 *
 * Two ways to use one:
 *   - at run time: llama_attach_lora points the model at the adapter, and
 *     every adapted linear computes W x + s * B (A x) with the base weights
 *     untouched (they are read-only views into the memory map). Run states
 *     made after the attach carry the small extra buffers this needs;
 *   - merged: W' = W + s * B A, into new memory in the base dtype
 *     (llama_lora_merge), or streamed into a new HF folder one tensor row
 *     at a time (llama_lora_write_merged), so a 7B F16 merge never holds
 *     the model in RAM.
 * A is lora_A [r, in], B is lora_B [out, r], s the module's scaling. */
#ifndef VMED_MODELS_LLAMA_LORA_H
#define VMED_MODELS_LLAMA_LORA_H

#include "base/error.h"
#include "formats/peft.h"
#include "models/llama.h"
#include "tensor/tensor.h"

/* The linears of a LLaMA layer that an adapter can reach. */
typedef enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_N_SLOTS } LoraSlot;

typedef struct {
    Tensor a, b;  /* F32 [r, in] and [out, r] in owned memory; a.data NULL: not adapted */
    int r;
    float scale;  /* alpha / r, or alpha / sqrt(r) with use_rslora */
} LoraModule;

struct LlamaLora {
    PeftConfig config;
    int n_layers;
    LoraModule *modules;  /* [n_layers * LORA_N_SLOTS] */
    int n_adapted;        /* modules with a.data set */
    int max_r, max_out;   /* over adapted modules: run-state buffer sizes */
    char warning[1024];   /* non-empty: a note for the user (base name differs) */
    char dir[1024];
};
typedef struct LlamaLora LlamaLora;

/* Reads the adapter in dir (adapter_config.json, adapter_model.safetensors)
 * and checks every tensor against base: names, layers, shapes, r. Names
 * that differ between base_model_name_or_path and base are not an error
 * when everything fits; (*out)->warning then says so. */
int llama_lora_load(LlamaLora **out, const Llama *base, const char *dir, Error *err);
void llama_lora_free(LlamaLora *l);

/* Makes m compute with l at run time (NULL detaches). l must have been
 * loaded against a model of m's shapes and outlive the attachment; states
 * must be made after attaching. */
int llama_attach_lora(Llama *m, const LlamaLora *l, Error *err);

/* Name of a slot's module inside a layer, e.g. "self_attn.q_proj". */
const char *lora_slot_name(LoraSlot slot);

/* The run-time hook: y[n, out] += s * B (A x[n, in]) for one adapted
 * linear (nothing when that module is not adapted). Uses s->lora_t and
 * s->lora_u. */
void llama_lora_apply(const LlamaLora *l, LlamaState *s, int layer, LoraSlot slot, float *y, const float *x, int n);

/* Merged weights in memory: every adapted linear of m is pointed at a new
 * copy W + s B A in W's dtype; llama_lora_unmerge restores the views and
 * frees the copies (call it before llama_free). m must have no adapter
 * attached. */
typedef struct LlamaLoraMerged LlamaLoraMerged;
int llama_lora_merge(Llama *m, const LlamaLora *l, LlamaLoraMerged **out, Error *err);
void llama_lora_unmerge(Llama *m, LlamaLoraMerged *merged);

/* W + s B A for one weight row: dst (dtype dt) = src row j (dtype dt) +
 * the update's row j, computed in f32. tmp holds `in` floats. */
void lora_merge_row(void *dst, const void *src, DType dt, const LoraModule *mod, long j, float *tmp);

/* Writes a full HF folder into out_dir (created when absent): config.json
 * and the tokenizer files copied from the base folder, and
 * model.safetensors with every tensor of base, the adapted ones merged, in
 * their own dtype. Streams: memory use is one row, not one model. */
int llama_lora_write_merged(const Llama *base, const LlamaLora *l, const char *out_dir, Error *err);

#endif
