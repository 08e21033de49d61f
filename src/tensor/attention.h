/* Scaled dot-product attention over keys and values laid out row by row
 * (one row per position, heads side by side), as every model here stores
 * its caches. Query i sees keys [0, visible(i)): a causal decoder passes its
 * positions, an encoder passes n_kv for all. Grouped-query attention: query
 * head h reads kv head h / (n_heads / n_kv_heads). Work is split over
 * (query, head) pairs. */
#ifndef VMED_TENSOR_ATTENTION_H
#define VMED_TENSOR_ATTENTION_H

#include "base/threads.h"
#include "tensor/matmul.h"

typedef struct {
    const float *q;      /* [n_q, q_stride]; head h at h * head_dim */
    long q_stride;
    const float *k, *v;  /* [>= max visible, kv_stride] */
    long kv_stride;
    float *out;          /* [n_q, out_stride] */
    long out_stride;
    int n_q, n_heads, n_kv_heads, head_dim;
    int visible_base;    /* query i sees visible_base + i + 1 keys when causal */
    int causal;          /* 0: every query sees n_kv keys */
    int n_kv;
    float scale;         /* usually 1/sqrt(head_dim); T5-style models use 1 */
    const float *bias;   /* optional additive bias [n_heads, n_q, bias_stride] (relative positions) */
    long bias_stride;
    float *scratch;      /* attention_scratch_floats(pool_size(pool), n_kv, head_dim) floats */
    KernelLevel kernel;  /* AVX2 or the scalar reference */
} Attention;

/* Few queries (decoding) are taken ATTENTION_QUERY_BLOCK at a time per
 * head, so each key and value row is read once per block rather than once
 * per query. Many queries (prefill, encoders) run as matrix products: a
 * thread packs one head's keys and values into the panels of the prefill
 * matmul once and multiplies ATTENTION_GEMM_BLOCK queries at a time. */
#define ATTENTION_QUERY_BLOCK 16
#define ATTENTION_GEMM_BLOCK 64

size_t attention_scratch_floats(int nth, int n_kv, int head_dim);
void attention(ThreadPool *pool, const Attention *a);

#endif
