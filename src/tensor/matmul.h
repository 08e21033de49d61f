/* Matrix products against weight matrices stored as in HF checkpoints:
 * W is [m, k] row-major (out_features x in_features), activations are f32.
 *   y[i][j] = sum_k x[i][k] * W[j][k]      for i < n, j < m
 * n == 1 (decoding) is a matrix-vector product that streams W once from
 * memory; n > 1 (prefill) packs blocks of 16 W rows, converted to f32 and
 * transposed into a [k][16] panel, once, and runs every activation row
 * against the panel with a register-blocked 6x16 kernel. Every SIMD path
 * has a scalar twin that the tests compare it against. */
#ifndef VMED_TENSOR_MATMUL_H
#define VMED_TENSOR_MATMUL_H

#include <stddef.h>

#include "base/threads.h"
#include "tensor/tensor.h"

/* W rows per packed panel in the prefill path (two AVX2 registers wide). */
#define MATMUL_BLOCK_ROWS 16

typedef enum { KERNEL_SCALAR = 0, KERNEL_AVX2 = 1 } KernelLevel;

/* The best level this CPU runs (AVX2 needs AVX2, FMA and F16C). It asks
 * CPUID, which traps in a VM: call it once and keep the answer. */
KernelLevel kernel_best(void);
const char *kernel_name(KernelLevel l);

/* Floats of scratch matmul needs for nth threads and inner size k. */
size_t matmul_scratch_floats(int nth, long k);

/* w must be a contiguous 2-D F32, F16, BF16 or quantized (tensor/quant.h)
 * tensor with shape[1] == k (a multiple of a quantized type's block).
 * scratch holds matmul_scratch_floats(pool_size(pool), k) floats; it may be
 * NULL when n == 1 and w is not quantized. Quantized W: decoding (n == 1)
 * quantizes x to 8 bits once and runs integer dot products (llama.cpp's
 * scheme, so results differ from the f32 product by that rounding);
 * prefill dequantizes each 16-row panel exactly and runs the f32 GEMM. */
void matmul(ThreadPool *pool, KernelLevel level, float *y, const float *x, long n, const Tensor *w,
            float *scratch);

/* The plain reference, one thread, no SIMD: what tests compare against. */
void matmul_ref(float *y, const float *x, long n, const Tensor *w);

/* Row conversion to f32 (embedding lookups, norm weights, weight blocks);
 * count a multiple of a quantized type's block. */
void convert_to_f32(KernelLevel level, float *dst, const void *src, DType dt, long count);

/* Building blocks, exposed so tests can compare each level directly. */
void matvec_rows(KernelLevel level, float *y, const float *x, const void *w, DType dt, long j0, long j1, long k);
/* y[i][0..cols) (+)= x[i] . panel columns, panel = [k][MATMUL_BLOCK_ROWS]. */
void gemm_panel(KernelLevel level, float *y, long ldy, const float *x, long n, long k, const float *panel,
                long cols, int accumulate);

/* The AVX2 versions (matmul_avx2.c, compiled with -mavx2 -mfma -mf16c). */
void matvec_rows_avx2(float *y, const float *x, const void *w, DType dt, long j0, long j1, long k);
void gemm_panel_avx2(float *y, long ldy, const float *x, long n, long k, const float *panel, long cols,
                     int accumulate);
void convert_to_f32_avx2(float *dst, const void *src, DType dt, long count);
/* W rows [j0, j0 + rows) as a [k][16] f32 panel, zero-padded. */
void pack_panel_avx2(float *panel, const void *w, DType dt, long j0, long rows, long k);
/* In-place softmax with a vectorised exp (Cephes' polynomial, ~1 ulp on
 * the range softmax uses): a 2048-key encoder spends more time in exp than
 * in its matrix products with the scalar libm one. */
void softmax_avx2(float *x, long n);
/* quick_gelu and gelu_tanh (gelu_new) with the same vector exp: a
 * Pix2Struct chart runs 50 M tanh, a quarter second with libm's. */
void swiglu_avx2(float *gate, const float *up, long n);
void quick_gelu_avx2(float *x, long n);
void gelu_erf_avx2(float *x, long n);
void gelu_tanh_avx2(float *x, long n);
/* dot(a, b) and y += s * x over n floats, for attention's short rows. */
float dot_f32_avx2(const float *a, const float *b, long n);
void axpy_f32_avx2(float *y, float s, const float *x, long n);

#endif
