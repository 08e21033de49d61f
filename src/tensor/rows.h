/* The row-wise steps between a layer's matrix products (norms, biases,
 * residual sums, activations) over n rows of dim values, shared out over a
 * thread pool by rows. Each is a few percent of one thread's time; left on
 * one thread beside a threaded product, they would cost twice that share
 * at two threads. pool NULL (or n < 2) runs them inline. */
#ifndef VMED_TENSOR_ROWS_H
#define VMED_TENSOR_ROWS_H

#include "base/threads.h"
#include "tensor/matmul.h"

typedef enum { ACT_GELU_ERF, ACT_QUICK_GELU, ACT_GELU_TANH } Activation;

/* out = layernorm(x) row by row (out may be x). */
void rows_layernorm(ThreadPool *pool, float *out, const float *x, const float *w, const float *b, long n, long dim,
                    float eps);
void rows_rmsnorm(ThreadPool *pool, float *out, const float *x, const float *w, long n, long dim, float eps);
/* x += y, both n x dim. */
void rows_add(ThreadPool *pool, float *x, const float *y, long n, long dim);
/* x[i] += b for every row i. */
void rows_add_bias(ThreadPool *pool, float *x, const float *b, long n, long dim);
/* x = act(x), with the kernel level's version of the activation. */
void rows_activate(ThreadPool *pool, KernelLevel level, Activation act, float *x, long n, long dim);
/* x *= y, element-wise (Pix2Struct's gated feed-forward). */
void rows_mul(ThreadPool *pool, float *x, const float *y, long n, long dim);

#endif
