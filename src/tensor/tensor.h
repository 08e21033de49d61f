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
    DT_COUNT
} DType;

#define TENSOR_MAX_DIMS 8

typedef struct {
    DType dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t stride[TENSOR_MAX_DIMS]; /* in elements */
    void *data;
} Tensor;

size_t dtype_size(DType t);
const char *dtype_name(DType t); /* "F32", "F16", ... as safetensors spells them */

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
