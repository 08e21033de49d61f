/* A tensor is a view: a dtype, a shape, strides and a pointer. It owns
 * nothing; whoever made the memory (an mmap'd file, a run-state arena)
 * frees it. Shapes are row-major, shape[0] outermost, as in PyTorch. */
#ifndef VMED_TENSOR_TENSOR_H
#define VMED_TENSOR_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    DT_F32 = 0,
    DT_F16,
    DT_BF16,
    DT_I64,
    DT_I32,
    DT_I16,
    DT_I8,
    DT_U8,
    DT_BOOL,
    DT_F64,
    DT_COUNT, /* the plain types, one value per element, end here (safetensors knows these) */
    /* ggml's quantized block types (tensor/quant.h): a row is whole blocks */
    DT_Q4_0 = 16,
    DT_Q4_1,
    DT_Q5_0,
    DT_Q5_1,
    DT_Q8_0,
    DT_Q4_K,
    DT_Q5_K,
    DT_Q6_K,
    DT_QUANT_END
} DType;

#define TENSOR_MAX_DIMS 8

typedef struct {
    DType dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t stride[TENSOR_MAX_DIMS]; /* in elements */
    void *data;
} Tensor;

/* Bytes per element of a plain type; 0 for the quantized ones, whose sizes
 * are per block (dtype_row_bytes in tensor/quant.h). */
size_t dtype_size(DType t);
const char *dtype_name(DType t); /* "F32", "F16", ... as safetensors spells them; "Q4_0", ... */

/* A contiguous view over data. */
Tensor tensor_view(DType t, void *data, int ndim, const int64_t *shape);
int64_t tensor_numel(const Tensor *t);
int tensor_is_contiguous(const Tensor *t);
/* "32000x4096" into buf, for messages. */
const char *tensor_shape_str(const Tensor *t, char *buf, size_t cap);

/* Scalar conversions, exact (round-to-nearest-even going down to 16 bits). */
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

#endif
