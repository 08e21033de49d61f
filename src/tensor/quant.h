/* ggml's quantized block formats: the layouts llama.cpp writes into GGUF
 * files, byte for byte, their reference quantizers and dequantizers, and
 * dot products of a quantized weight row with an activation vector.
 *
 * A row of k values is k / QK blocks. The "_0" types store one f16 scale d
 * per 32 values (x = d * q, q signed), the "_1" types a scale and a minimum
 * (x = d * q + m). The K types group 256 values into a super-block with an
 * f16 scale (and min) per super-block and 6- or 8-bit scales per 16 or 32
 * values.
 *
 * Dot products follow llama.cpp: the activation is quantized once per
 * matrix-vector product, to 8 bits per 32 values (QuantAct32, for the
 * 32-blocks) or per 256 (QuantAct256, for the K types), and each block's
 * product is an exact integer sum scaled by the two block scales. The
 * scalar functions here are the reference that every SIMD kernel
 * (quant_avx2.c) is tested against. */
#ifndef VMED_TENSOR_QUANT_H
#define VMED_TENSOR_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"

#define QK 32    /* values per block of the Q4_0 .. Q8_0 types */
#define QK_K 256 /* values per K-type super-block */

typedef struct {
    uint16_t d;
    uint8_t qs[QK / 2]; /* value j in the low nibble of qs[j], value j+16 in the high one */
} BlockQ4_0;

typedef struct {
    uint16_t d, m;
    uint8_t qs[QK / 2];
} BlockQ4_1;

typedef struct {
    uint16_t d;
    uint8_t qh[4]; /* bit j: the 5th bit of value j */
    uint8_t qs[QK / 2];
} BlockQ5_0;

typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QK / 2];
} BlockQ5_1;

typedef struct {
    uint16_t d;
    int8_t qs[QK];
} BlockQ8_0;

/* 8 sub-blocks of 32 with 6-bit scales and mins packed into 12 bytes. */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[QK_K / 2];
} BlockQ4_K;

typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} BlockQ5_K;

/* 16 sub-blocks of 16 with signed 8-bit scales; 4 low bits in ql, 2 high in qh. */
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
} BlockQ6_K;

/* An activation block for the 32-value types. The kernels need the sums
 * of qs for the offsets of Q4_0/Q5_0 (q - 8, q - 16) and the minimums of
 * Q4_1/Q5_1: sum is all 32, lane_sums[l] those of qs[4l .. 4l+4), which
 * line up with the 8 lanes of an AVX2 block product, so the offset is
 * taken off in the integer lanes without a scalar step per block; ds is
 * d * sum in float, for kernels that take the offset off once per row
 * instead (ggml's block_q8_1 keeps the same product). */
typedef struct {
    float d;
    int32_t sum;
    float ds;
    int32_t lane_sums[8];
    int8_t qs[QK];
} QuantAct32;

/* An activation super-block for the K types (ggml's block_q8_K): bsums[i]
 * is the sum of qs[16i .. 16i+16). */
typedef struct {
    float d;
    int16_t bsums[QK_K / 16];
    int8_t qs[QK_K];
} QuantAct256;

int dtype_is_quant(DType t);
/* Values per block (1 for the plain types) and bytes per block. */
int dtype_block_elems(DType t);
size_t dtype_block_bytes(DType t);
/* Bytes of a row of n values (n a multiple of the block). */
size_t dtype_row_bytes(DType t, int64_t n);
/* The activation format a quantized type's dot products take: QK or QK_K
 * values per activation block. */
int quant_act_block(DType t);
/* Bytes of the activation of k values quantized for weights of type t. */
size_t quant_act_bytes(DType t, int64_t k);

/* Rounding as ggml's nearest_int: to nearest, ties to even, for |x| < 2^22. */
int quant_nearest_int(float x);

/* n values (a multiple of the block) from a row of type t; t may be any
 * quantized type or F32/F16/BF16. */
void dequantize_row(DType t, const void *src, float *dst, int64_t n);

/* ggml's reference quantizers (quantize_row_*_ref without an importance
 * matrix), bit-exact; n a multiple of the block. Returns -1 for a type that
 * is not quantized. */
int quantize_row(DType t, const float *x, void *dst, int64_t n);
void quantize_row_q8_0(const float *x, BlockQ8_0 *y, int64_t n);
void quantize_row_q4_0(const float *x, BlockQ4_0 *y, int64_t n);
void quantize_row_q4_1(const float *x, BlockQ4_1 *y, int64_t n);
void quantize_row_q5_0(const float *x, BlockQ5_0 *y, int64_t n);
void quantize_row_q5_1(const float *x, BlockQ5_1 *y, int64_t n);
void quantize_row_q4_K(const float *x, BlockQ4_K *y, int64_t n);
void quantize_row_q5_K(const float *x, BlockQ5_K *y, int64_t n);
void quantize_row_q6_K(const float *x, BlockQ6_K *y, int64_t n);

/* The activation x[0..k) in the format t's dot products take (act holds
 * quant_act_bytes(t, k) bytes). */
void quantize_act(DType t, const float *x, void *act, int64_t k);

/* dot(weight row w of type t, activation act) over k values: the scalar
 * reference. */
float quant_dot(DType t, const void *w, const void *act, int64_t k);

/* The AVX2 version (quant_avx2.c): the same integer block sums, exactly,
 * combined in another float order. */
float quant_dot_avx2(DType t, const void *w, const void *act, int64_t k);
/* y[j] = dot(row j, act) for rows consecutive rows of type t, row_bytes
 * apart: quant_dot_avx2's sums, several rows per pass over the activation
 * (Q4_0, Q8_0) so that its loads are shared. */
void quant_matvec_avx2(DType t, float *y, const void *w, size_t row_bytes, long rows, const void *act, int64_t k);
/* quantize_act and dequantize_row with AVX2, bit-identical to them. */
void quantize_act_avx2(DType t, const float *x, void *act, int64_t k);
void dequantize_row_avx2(DType t, const void *src, float *dst, int64_t n);

#endif
