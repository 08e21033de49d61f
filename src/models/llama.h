/* LLaMA (1 and 2, and their fine-tunes such as Med-Alpaca) as HF
 * transformers' LlamaForCausalLM computes it. A model is three structs: the
 * config, the weights (views into the memory-mapped safetensors, .bin or
 * GGUF file, used in place, quantized blocks included), and the run state
 * (activations and the KV cache). */
#ifndef VMED_MODELS_LLAMA_H
#define VMED_MODELS_LLAMA_H

#include "base/threads.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "tensor/matmul.h"
#include "tensor/tensor.h"

typedef struct {
    Tensor wq, wk, wv, wo;        /* [n_heads*hd, dim], [n_kv*hd, dim] x2, [dim, n_heads*hd] */
    Tensor w_gate, w_up, w_down;  /* [hidden, dim] x2, [dim, hidden] */
    float *attn_norm, *ffn_norm;  /* [dim], converted to f32 at load (tiny) */
} LlamaLayer;

typedef struct {
    Tensor embed;       /* [vocab, dim] */
    LlamaLayer *layers; /* [n_layers] */
    float *final_norm;  /* [dim] */
    Tensor lm_head;     /* [vocab, dim]; the embedding itself when tied */
} LlamaWeights;

struct LlamaLora; /* models/llama_lora.h */

typedef struct {
    LlamaConfig config;
    LlamaWeights weights;
    SafeTensors files;
    struct Gguf *gguf;  /* the mapped GGUF file when loaded from one (then files is empty) */
    /* RoPE on adjacent pairs (2i, 2i+1) instead of HF's halves (i, i+hd/2):
     * llama.cpp's converter permutes the q/k rows of GGUF files so. */
    int rope_adjacent_pairs;
    char dir[1024];
    const struct LlamaLora *lora; /* a LoRA adapter applied at run time (llama_attach_lora), or NULL */
} Llama;

typedef struct {
    int n_ctx;      /* KV cache length */
    int max_batch;  /* tokens per forward call chunk */
    int n_threads;
    ThreadPool *pool;  /* borrowed */
    KernelLevel kernel;
    float *x, *xb, *xb2, *q, *k, *v, *hb, *hb2; /* [max_batch, ...] activations */
    float *att;                                 /* [n_threads, n_ctx] attention scores */
    float *key_cache, *value_cache;             /* [n_layers, n_ctx, n_kv*hd] */
    float *rope_cos, *rope_sin;                 /* [n_ctx, hd/2] */
    float *scratch;                             /* matmul weight-block scratch */
    float *logits;                              /* [vocab] of the last position */
    const struct LlamaLora *lora;               /* the adapter the two buffers below are sized for */
    float *lora_t, *lora_u;                     /* [max_batch, max r], [max_batch, max out] */
    float *arena;                               /* one allocation behind all of the above */
} LlamaState;

/* Loads config, tokenizer-independent weights from dir (config.json +
 * model.safetensors or its sharded index, or pytorch_model.bin), or from a
 * GGUF file. Checks every tensor's presence, dtype and shape against the
 * config. */
int llama_load(Llama *m, const char *dir, Error *err);
/* The same from a llama-architecture GGUF file (models/llama_gguf.c);
 * llama_load calls it for a path ending in .gguf or a file starting GGUF. */
int llama_load_gguf(Llama *m, const char *path, Error *err);
void llama_free(Llama *m);

/* n_ctx <= max_position_embeddings. pool (NULL: one thread) is the
 * caller's: several states, the beams of a beam search, share one. */
int llama_state_new(LlamaState *s, const Llama *m, int n_ctx, int max_batch, ThreadPool *pool, Error *err);
void llama_state_free(LlamaState *s);

/* Runs tokens[0..n) at positions pos..pos+n-1, filling the KV cache.
 * s->logits gets the logits of the last token; when all_logits is not NULL
 * it receives n rows of vocab_size logits, one per token. */
int llama_forward(const Llama *m, LlamaState *s, const int *tokens, int n, int pos, float *all_logits,
                  Error *err);

/* Copies the cached keys and values of positions [from, to) of every layer
 * from src to dst (beam search reorders beams this way). */
void llama_state_copy_positions(LlamaState *dst, const LlamaState *src, const Llama *m, int from, int to);

/* Bytes of weights one decoded token reads (for bandwidth ceilings). */
size_t llama_weight_bytes(const Llama *m);

#endif
