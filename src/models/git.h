/* GIT (GitForCausalLM), the architecture of Med-GIT: a CLIP ViT encodes the
 * image, a Linear + LayerNorm projects its tokens, and a BERT-style post-LN
 * decoder runs over [image tokens ; text tokens]. Image tokens see every
 * image token and no text; text tokens see every image token and the text
 * before them. So the image rows of every layer are computed once per image
 * and kept in the KV cache ahead of the text. */
#ifndef VMED_MODELS_GIT_H
#define VMED_MODELS_GIT_H

#include "base/threads.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "models/clip_vit.h"
#include "tensor/matmul.h"

typedef struct {
    Tensor wq, wk, wv, wo, w_in, w_out;
    float *bq, *bk, *bv, *bo, *b_in, *b_out;
    float *att_ln_w, *att_ln_b, *out_ln_w, *out_ln_b;
} GitLayer;

typedef struct {
    ClipVisionWeights vision;
    Tensor proj;                          /* [dim, vision dim] */
    float *proj_b, *proj_ln_w, *proj_ln_b;
    Tensor word_emb, pos_emb;             /* [vocab, dim], [max_pos, dim] */
    float *emb_ln_w, *emb_ln_b;
    GitLayer *layers;
    Tensor out;                           /* [vocab, dim] */
    float *out_b;
} GitWeights;

typedef struct {
    GitConfig config;
    GitWeights weights;
    SafeTensors files;
    uint8_t *requantized; /* git_quantize's copies of the matrices, or NULL */
} Git;

typedef struct {
    int n_img;       /* image tokens at the head of the cache */
    int max_text;    /* text tokens the cache holds after them */
    int n_threads;
    ThreadPool *pool;  /* borrowed */
    KernelLevel kernel;
    ClipVisionState vision;
    float *projected;                       /* [n_img, dim] the projected image tokens */
    float *x, *h, *q, *k, *v, *att, *ff;    /* [max(n_img, max_text), ...] */
    float *key_cache, *value_cache;         /* [n_layers, n_img + max_text, dim] */
    float *att_scratch, *mm_scratch;
    float *logits;                          /* [vocab] of the last text position */
    float *arena;
} GitState;

int git_load(Git *m, const char *dir, Error *err);
void git_free(Git *m);
/* Requantizes every matrix the forward pass multiplies by (the vision
 * encoder's, the projection, the decoder's, the LM head; not the embedding
 * tables, which are only gathered from) to the quantized type t in memory:
 * GIT checkpoints exist in F32/F16 only. Once per model, after git_load. */
int git_quantize(Git *m, DType t, Error *err);

/* pool (NULL: one thread) is the caller's; beams share one. */
int git_state_new(GitState *s, const Git *m, int max_text, ThreadPool *pool, Error *err);
void git_state_free(GitState *s);

/* Encodes pixels [3, S, S] and fills the image part of every layer's cache.
 * After it, s->vision.x holds the vision encoder's output and s->projected
 * the projected tokens. */
void git_encode_image(const Git *m, GitState *s, const float *pixels);

/* Copies the image rows of every layer's cache (an encoded image) from src
 * to dst, so several beams share one encoding. */
void git_state_copy_image(GitState *dst, const GitState *src, const Git *m);
/* Copies the cached text positions [from, to) of every layer. */
void git_state_copy_text(GitState *dst, const GitState *src, const Git *m, int from, int to);

/* Runs text tokens at text positions pos..pos+n-1 (0 = the [CLS]) after an
 * encoded image. all_logits, when not NULL, gets n rows of logits. */
int git_forward(const Git *m, GitState *s, const int *tokens, int n, int pos, float *all_logits, Error *err);

#endif
