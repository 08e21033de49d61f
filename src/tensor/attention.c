#include "tensor/attention.h"

#include <string.h>

#include "tensor/ops.h"

static void attention_worker(void *ctx, int ith, int nth) {
    const Attention *a = ctx;
    float (*dot)(const float *, const float *, long) = dot_f32;
    void (*axpy)(float *, float, const float *, long) = axpy_f32;
#if defined(__x86_64__)
    if (a->kernel == KERNEL_AVX2) {
        dot = dot_f32_avx2;
        axpy = axpy_f32_avx2;
    }
#endif
    int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    float *scores = a->scratch + (size_t)ith * (size_t)a->n_kv;
    long lo, hi;
    split_range((long)a->n_q * a->n_heads, ith, nth, &lo, &hi);
    for (long item = lo; item < hi; item++) {
        int i = (int)(item / a->n_heads), h = (int)(item % a->n_heads), kvh = h / group;
        int n = a->causal ? a->visible_base + i + 1 : a->n_kv;
        const float *q = a->q + (size_t)i * a->q_stride + (size_t)h * hd;
        const float *k = a->k + (size_t)kvh * hd, *v = a->v + (size_t)kvh * hd;
        for (int p = 0; p < n; p++) scores[p] = dot(q, k + (size_t)p * a->kv_stride, hd) * a->scale;
        if (a->bias) {
            const float *b = a->bias + ((size_t)h * a->n_q + i) * a->bias_stride;
            for (int p = 0; p < n; p++) scores[p] += b[p];
        }
        softmax(scores, n);
        float *out = a->out + (size_t)i * a->out_stride + (size_t)h * hd;
        memset(out, 0, (size_t)hd * sizeof(float));
        for (int p = 0; p < n; p++) axpy(out, scores[p], v + (size_t)p * a->kv_stride, hd);
    }
}

void attention(ThreadPool *pool, const Attention *a) { pool_run(pool, attention_worker, (void *)a); }
