/* Pix2Struct (Pix2StructForConditionalGeneration), the architecture of
 * DePlot, computed as transformers 4.36 does it.
 *
 * The encoder is a ViT over a variable number of flattened patches: each
 * row of the processor's flattened_patches is [row id, column id, 16*16*3
 * pixel values]; the embedding is patch_projection(pixels) + row_embedder[row
 * id] + column_embedder[column id]. Its layers are T5-like: RMSNorm without
 * bias, attention without 1/sqrt(d_kv) scaling and without biases, a gated
 * gelu_new MLP. Padding patches (attention mask 0) are hidden as keys but
 * still run as queries, so their encoder rows come out as HF's do.
 *
 * The decoder is a T5 decoder: self-attention with a relative position bias
 * that only layer 0 stores and every layer reuses, cross-attention over the
 * unmasked encoder rows, gated gelu_new MLP, final RMSNorm, an untied,
 * unscaled lm_head. An image is encoded once: every layer's cross-attention
 * keys and values are kept in the run state next to the self-attention
 * cache. */
#ifndef VMED_MODELS_PIX2STRUCT_H
#define VMED_MODELS_PIX2STRUCT_H

#include "base/threads.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "tensor/matmul.h"

typedef struct {
    Tensor wq, wk, wv;      /* [n_heads * d_kv, dim] */
    Tensor wo;              /* [dim, n_heads * d_kv] */
    Tensor wi_0, wi_1, wff; /* [d_ff, dim] x2, [dim, d_ff] */
    float *attn_norm, *mlp_norm;
} P2sEncoderLayer;

typedef struct {
    Tensor self_q, self_k, self_v, self_o;     /* [dim, dim] */
    Tensor cross_q, cross_k, cross_v, cross_o; /* [dim, dim] */
    Tensor wi_0, wi_1, wff;
    float *self_norm, *cross_norm, *mlp_norm;
} P2sDecoderLayer;

typedef struct {
    Tensor patch_proj;       /* [dim, patch_dim] */
    float *patch_proj_b;     /* [dim] */
    Tensor row_emb, col_emb; /* [seq_len, dim] */
    P2sEncoderLayer *enc;
    float *enc_norm;         /* encoder.layernorm */
    Tensor embed;            /* [vocab, dim] */
    float *rel_bias;         /* [num_buckets, n_heads], layer 0's table */
    P2sDecoderLayer *dec;
    float *dec_norm;         /* decoder.final_layer_norm */
    Tensor lm_head;          /* [vocab, dim]; embed when tie_word_embeddings */
} Pix2StructWeights;

typedef struct {
    Pix2StructConfig config;
    Pix2StructWeights weights;
    SafeTensors files;
} Pix2Struct;

typedef struct {
    int max_patches;   /* encoder rows the state holds */
    int max_text;      /* decoder positions the self-attention cache holds */
    int rows;          /* max(max_patches, max_text): rows of the scratch buffers */
    int n_threads;
    ThreadPool *pool;  /* borrowed */
    KernelLevel kernel;
    int n_patches;     /* rows of the encoded image; 0 before one is encoded */
    int n_cross;       /* encoder rows the decoder attends to: the unmasked ones */
    float cross_scale; /* 1; 0 when every patch is masked, where HF attends uniformly to all */
    float *patches;    /* [max_patches, patch_dim] the pixel columns */
    float *encoder_out;            /* [max_patches, dim] after the encoder's final norm */
    float *x, *h, *q, *k, *v, *att; /* [rows, max(dim, encoder heads * d_kv)] */
    float *ff, *gate;              /* [rows, max d_ff] */
    float *cross_k, *cross_v;      /* [n_layers, max_patches, dim] unmasked rows only */
    float *key_cache, *value_cache; /* [n_layers, max_text, dim] */
    float *bias;       /* [n_heads, n, pos + n] the relative position bias of one call */
    float *att_scratch, *mm_scratch;
    float *logits;     /* [vocab] of the last position run */
    float *arena;
    int *bucket;       /* [max_text] bucket of each query-key distance */
    int *keep;         /* [max_patches] indices of the unmasked patches */
} Pix2StructState;

int pix2struct_load(Pix2Struct *m, const char *dir, Error *err);
void pix2struct_free(Pix2Struct *m);

/* pool (NULL: one thread) is the caller's; beams share one. */
int pix2struct_state_new(Pix2StructState *s, const Pix2Struct *m, int max_patches, int max_text, ThreadPool *pool,
                         Error *err);
void pix2struct_state_free(Pix2StructState *s);

/* Encodes n_patches rows of flattened_patches ([n, 2 + patch_dim] as the
 * processor makes them) and fills s->encoder_out and every decoder layer's
 * cross-attention keys and values. attention_mask (the processor's, n
 * values, each 0 or 1) is required: HF fills a missing one differently in
 * forward() and in generate(). Row and column ids must be whole numbers
 * below seq_len. */
int pix2struct_encode(const Pix2Struct *m, Pix2StructState *s, const float *flattened_patches,
                      const float *attention_mask, int n_patches, Error *err);

/* The decoder half of pix2struct_encode, for an encoder output computed
 * elsewhere ([n_patches, dim]; it may be s->encoder_out): copies it to
 * s->encoder_out and fills the cross-attention keys and values. */
int pix2struct_set_encoder_output(const Pix2Struct *m, Pix2StructState *s, const float *encoder_out,
                                  const float *attention_mask, int n_patches, Error *err);

/* Runs decoder tokens at positions pos..pos+n-1 (position 0 holds the
 * decoder start token) after an encoded image. all_logits, when not NULL,
 * gets n rows of logits; s->logits always gets the last. */
int pix2struct_decode(const Pix2Struct *m, Pix2StructState *s, const int *tokens, int n, int pos, float *all_logits,
                      Error *err);

/* Copies an encoded image (encoder rows and every layer's cross keys and
 * values) from src to dst, so several beams share one encoding. */
int pix2struct_state_copy_encoder(Pix2StructState *dst, const Pix2StructState *src, const Pix2Struct *m, Error *err);
/* Copies the cached decoder positions [from, to) of every layer. */
void pix2struct_state_copy_text(Pix2StructState *dst, const Pix2StructState *src, const Pix2Struct *m, int from,
                                int to);

/* T5's _relative_position_bucket for a causal decoder: the bucket of a key
 * `distance` positions before its query (distance >= 0). */
int pix2struct_relative_bucket(int distance, int num_buckets, int max_distance);

#endif
