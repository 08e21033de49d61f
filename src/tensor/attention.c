#include "tensor/attention.h"

#include <string.h>

#include "tensor/ops.h"

/* Keys rounded up to whole 16-wide panels. */
static size_t padded_keys(int n_kv) { return ((size_t)n_kv + MATMUL_BLOCK_ROWS - 1) / MATMUL_BLOCK_ROWS * MATMUL_BLOCK_ROWS; }

/* Per thread: scores for the small-query path, or for the matrix path the
 * packed keys and values of one head, a block of queries, its scores and
 * its outputs. */
static size_t thread_floats(int n_kv, int head_dim) {
    size_t K = padded_keys(n_kv), hd = (size_t)((head_dim + 15) / 16 * 16);
    size_t gemm = 2 * K * hd + ATTENTION_GEMM_BLOCK * ((size_t)head_dim + K + hd);
    size_t small = ATTENTION_QUERY_BLOCK * (size_t)n_kv;
    return gemm > small ? gemm : small;
}

size_t attention_scratch_floats(int nth, int n_kv, int head_dim) {
    return (size_t)nth * thread_floats(n_kv, head_dim);
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
        if (a->kernel == KERNEL_AVX2) softmax_avx2(s, visible[r]);
        else softmax(s, visible[r]);
        memset(out[r], 0, (size_t)hd * sizeof(float));
    }
    for (int p = 0; p < n_max; p++) {
        const float *vp = v + (size_t)p * a->kv_stride;
        for (int r = 0; r < rows; r++)
            if (p < visible[r]) axpy(out[r], scores[(size_t)r * a->n_kv + p], vp, hd);
    }
}

/* One head as matrix products: S = Q K^T / sqrt(d) (+ bias), a softmax per
 * row over the keys the query sees (the rest get weight 0), O = P V. */
static void attention_head_gemm(const Attention *a, int h, float *scratch) {
    int hd = a->head_dim, kvh = h / (a->n_heads / a->n_kv_heads);
    int n_keys = a->causal ? a->visible_base + a->n_q : a->n_kv;
    size_t K = padded_keys(n_keys), hdp = (size_t)((hd + 15) / 16 * 16);
    float *kpan = scratch, *vpan = kpan + K * hdp;
    float *qblk = vpan + K * hdp, *S = qblk + (size_t)ATTENTION_GEMM_BLOCK * hd;
    float *O = S + (size_t)ATTENTION_GEMM_BLOCK * K;
    const float *k = a->k + (size_t)kvh * hd, *v = a->v + (size_t)kvh * hd;
    /* keys: panel p0 holds [hd][16] (key j of the panel in column j) */
    for (size_t p0 = 0; p0 < K; p0 += MATMUL_BLOCK_ROWS) {
        float *pan = kpan + p0 * (size_t)hd;
        for (int j = 0; j < MATMUL_BLOCK_ROWS; j++) {
            size_t p = p0 + (size_t)j;
            for (int d = 0; d < hd; d++)
                pan[(size_t)d * MATMUL_BLOCK_ROWS + j] = p < (size_t)n_keys ? k[p * a->kv_stride + d] : 0.0f;
        }
    }
    /* values: panel c0 holds [K][16], columns c0..c0+15 of every value row */
    for (size_t c0 = 0; c0 < hdp; c0 += MATMUL_BLOCK_ROWS) {
        float *pan = vpan + c0 * K;
        for (size_t p = 0; p < K; p++)
            for (int j = 0; j < MATMUL_BLOCK_ROWS; j++) {
                size_t c = c0 + (size_t)j;
                pan[p * MATMUL_BLOCK_ROWS + j] = p < (size_t)n_keys && c < (size_t)hd ? v[p * a->kv_stride + c] : 0.0f;
            }
    }
    for (int i0 = 0; i0 < a->n_q; i0 += ATTENTION_GEMM_BLOCK) {
        int rows = a->n_q - i0 < ATTENTION_GEMM_BLOCK ? a->n_q - i0 : ATTENTION_GEMM_BLOCK;
        int n_max = a->causal ? a->visible_base + i0 + rows : n_keys;
        size_t ld = padded_keys(n_max);
        for (int r = 0; r < rows; r++)
            memcpy(qblk + (size_t)r * hd, a->q + (size_t)(i0 + r) * a->q_stride + (size_t)h * hd, sizeof(float) * (size_t)hd);
        for (size_t p0 = 0; p0 < ld; p0 += MATMUL_BLOCK_ROWS)
            gemm_panel(a->kernel, S + p0, (long)ld, qblk, rows, hd, kpan + p0 * (size_t)hd, MATMUL_BLOCK_ROWS, 0);
        for (int r = 0; r < rows; r++) {
            float *s = S + (size_t)r * ld;
            int vis = a->causal ? a->visible_base + i0 + r + 1 : n_keys;
            for (int p = 0; p < vis; p++) s[p] *= a->scale;
            if (a->bias) {
                const float *b = a->bias + ((size_t)h * a->n_q + i0 + r) * a->bias_stride;
                for (int p = 0; p < vis; p++) s[p] += b[p];
            }
            if (a->kernel == KERNEL_AVX2) softmax_avx2(s, vis);
            else softmax(s, vis);
            for (size_t p = (size_t)vis; p < ld; p++) s[p] = 0;
        }
        for (size_t c0 = 0; c0 < hdp; c0 += MATMUL_BLOCK_ROWS)
            gemm_panel(a->kernel, O + c0, (long)hdp, S, rows, (long)ld, vpan + c0 * K, MATMUL_BLOCK_ROWS, 0);
        for (int r = 0; r < rows; r++)
            memcpy(a->out + (size_t)(i0 + r) * a->out_stride + (size_t)h * hd, O + (size_t)r * hdp,
                   sizeof(float) * (size_t)hd);
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
    float *scores = a->scratch + (size_t)ith * thread_floats(a->n_kv, a->head_dim);
    if (a->n_q >= ATTENTION_QUERY_BLOCK) {
        long lo, hi;
        split_range(a->n_heads, ith, nth, &lo, &hi);
        for (long h = lo; h < hi; h++) attention_head_gemm(a, (int)h, scores);
        return;
    }
    long blocks = (a->n_q + ATTENTION_QUERY_BLOCK - 1) / ATTENTION_QUERY_BLOCK, lo, hi;
    split_range(blocks * a->n_heads, ith, nth, &lo, &hi);
    for (long item = lo; item < hi; item++) {
        int h = (int)(item % a->n_heads), i0 = (int)(item / a->n_heads) * ATTENTION_QUERY_BLOCK;
        int rows = a->n_q - i0 < ATTENTION_QUERY_BLOCK ? a->n_q - i0 : ATTENTION_QUERY_BLOCK;
        attention_block(a, h, i0, rows, scores, dot, axpy);
    }
}

void attention(ThreadPool *pool, const Attention *a) { pool_run(pool, attention_worker, (void *)a); }
