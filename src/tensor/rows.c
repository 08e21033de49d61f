#include "tensor/rows.h"

#include "tensor/ops.h"

typedef struct {
    float *out, *x;
    const float *in, *y, *w, *b;
    long dim;
    float eps;
    KernelLevel level;
    Activation act;
} RowsJob;

static void layernorm_range(void *ctx, long lo, long hi) {
    const RowsJob *J = ctx;
    for (long t = lo; t < hi; t++) layernorm(J->out + t * J->dim, J->in + t * J->dim, J->w, J->b, J->dim, J->eps);
}

static void rmsnorm_range(void *ctx, long lo, long hi) {
    const RowsJob *J = ctx;
    for (long t = lo; t < hi; t++) rmsnorm(J->out + t * J->dim, J->in + t * J->dim, J->w, J->dim, J->eps);
}

static void add_range(void *ctx, long lo, long hi) {
    const RowsJob *J = ctx;
    for (long i = lo * J->dim; i < hi * J->dim; i++) J->x[i] += J->y[i];
}

static void mul_range(void *ctx, long lo, long hi) {
    const RowsJob *J = ctx;
    for (long i = lo * J->dim; i < hi * J->dim; i++) J->x[i] *= J->y[i];
}

static void add_bias_range(void *ctx, long lo, long hi) {
    const RowsJob *J = ctx;
    add_bias(J->x + lo * J->dim, J->b, hi - lo, J->dim);
}

static void activate_range(void *ctx, long lo, long hi) {
    const RowsJob *J = ctx;
    float *x = J->x + lo * J->dim;
    long n = (hi - lo) * J->dim;
    int avx2 = J->level == KERNEL_AVX2;
    switch (J->act) {
    case ACT_GELU_ERF: avx2 ? gelu_erf_avx2(x, n) : gelu_erf(x, n); break;
    case ACT_QUICK_GELU: avx2 ? quick_gelu_avx2(x, n) : quick_gelu(x, n); break;
    case ACT_GELU_TANH: avx2 ? gelu_tanh_avx2(x, n) : gelu_tanh(x, n); break;
    }
}

void rows_layernorm(ThreadPool *pool, float *out, const float *x, const float *w, const float *b, long n, long dim,
                    float eps) {
    RowsJob J = {.out = out, .in = x, .w = w, .b = b, .dim = dim, .eps = eps};
    pool_for(pool, n, layernorm_range, &J);
}

void rows_rmsnorm(ThreadPool *pool, float *out, const float *x, const float *w, long n, long dim, float eps) {
    RowsJob J = {.out = out, .in = x, .w = w, .dim = dim, .eps = eps};
    pool_for(pool, n, rmsnorm_range, &J);
}

void rows_add(ThreadPool *pool, float *x, const float *y, long n, long dim) {
    RowsJob J = {.x = x, .y = y, .dim = dim};
    pool_for(pool, n, add_range, &J);
}

void rows_mul(ThreadPool *pool, float *x, const float *y, long n, long dim) {
    RowsJob J = {.x = x, .y = y, .dim = dim};
    pool_for(pool, n, mul_range, &J);
}

void rows_add_bias(ThreadPool *pool, float *x, const float *b, long n, long dim) {
    RowsJob J = {.x = x, .b = b, .dim = dim};
    pool_for(pool, n, add_bias_range, &J);
}

void rows_activate(ThreadPool *pool, KernelLevel level, Activation act, float *x, long n, long dim) {
    RowsJob J = {.x = x, .dim = dim, .level = level, .act = act};
    pool_for(pool, n, activate_range, &J);
}
