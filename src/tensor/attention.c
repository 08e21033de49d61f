#include "tensor/attention.h"

#include <string.h>

#include "tensor/ops.h"

size_t attention_scratch_floats(int nth, int n_kv) {
    return (size_t)nth * ATTENTION_QUERY_BLOCK * (size_t)n_kv;
}

typedef float (*DotFn)(const float *, const float *, long);
typedef void (*AxpyFn)(float *, float, const float *, long);

/* Queries [i0, i0 + rows) of head h: scores against every key any of them
 * sees (key-major, so each key row is loaded once for the block), then a
 * softmax per query over its own keys, then the weighted values (again
 * value-major). */
static void attention_block(const Attention *a, int h, int i0, int rows, float *scores, DotFn dot, AxpyFn axpy) {
    int hd = a->head_dim, kvh = h / (a->n_heads / a->n_kv_heads);
    int visible[ATTENTION_QUERY_BLOCK], n_max = 0;
    const float *q[ATTENTION_QUERY_BLOCK];
    float *out[ATTENTION_QUERY_BLOCK];
    for (int r = 0; r < rows; r++) {
        visible[r] = a->causal ? a->visible_base + i0 + r + 1 : a->n_kv;
        if (visible[r] > n_max) n_max = visible[r];
        q[r] = a->q + (size_t)(i0 + r) * a->q_stride + (size_t)h * hd;
        out[r] = a->out + (size_t)(i0 + r) * a->out_stride + (size_t)h * hd;
    }
    const float *k = a->k + (size_t)kvh * hd, *v = a->v + (size_t)kvh * hd;
    for (int p = 0; p < n_max; p++) {
        const float *kp = k + (size_t)p * a->kv_stride;
        for (int r = 0; r < rows; r++) scores[(size_t)r * a->n_kv + p] = dot(q[r], kp, hd) * a->scale;
    }
    for (int r = 0; r < rows; r++) {
        float *s = scores + (size_t)r * a->n_kv;
        if (a->bias) {
            const float *b = a->bias + ((size_t)h * a->n_q + i0 + r) * a->bias_stride;
            for (int p = 0; p < visible[r]; p++) s[p] += b[p];
        }
        softmax(s, visible[r]);
        memset(out[r], 0, (size_t)hd * sizeof(float));
    }
    for (int p = 0; p < n_max; p++) {
        const float *vp = v + (size_t)p * a->kv_stride;
        for (int r = 0; r < rows; r++)
            if (p < visible[r]) axpy(out[r], scores[(size_t)r * a->n_kv + p], vp, hd);
    }
}

static void attention_worker(void *ctx, int ith, int nth) {
    const Attention *a = ctx;
    DotFn dot = dot_f32;
    AxpyFn axpy = axpy_f32;
#if defined(__x86_64__)
    if (a->kernel == KERNEL_AVX2) {
        dot = dot_f32_avx2;
        axpy = axpy_f32_avx2;
    }
#endif
    float *scores = a->scratch + (size_t)ith * ATTENTION_QUERY_BLOCK * (size_t)a->n_kv;
    long blocks = (a->n_q + ATTENTION_QUERY_BLOCK - 1) / ATTENTION_QUERY_BLOCK, lo, hi;
    split_range(blocks * a->n_heads, ith, nth, &lo, &hi);
    for (long item = lo; item < hi; item++) {
        int h = (int)(item % a->n_heads), i0 = (int)(item / a->n_heads) * ATTENTION_QUERY_BLOCK;
        int rows = a->n_q - i0 < ATTENTION_QUERY_BLOCK ? a->n_q - i0 : ATTENTION_QUERY_BLOCK;
        attention_block(a, h, i0, rows, scores, dot, axpy);
    }
}

void attention(ThreadPool *pool, const Attention *a) { pool_run(pool, attention_worker, (void *)a); }
