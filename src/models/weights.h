/* Finding a model's tensors in its safetensors files, with the checks every
 * loader needs: present, a float dtype, the shape the config implies. */
#ifndef VMED_MODELS_WEIGHTS_H
#define VMED_MODELS_WEIGHTS_H

#include <stdint.h>

#include "base/error.h"
#include "formats/safetensors.h"
#include "tensor/tensor.h"

/* A view of the F32/F16/BF16 tensor `name` of shape dims[0..ndim), used in
 * place. A missing tensor, another dtype or another shape is an error
 * naming the file, the tensor and both shapes. */
int weight_view(Tensor *out, const SafeTensors *st, const char *name, int ndim, const int64_t *dims, Error *err);
/* weight_view of a [rows, cols] matrix. */
int weight_matrix(Tensor *out, const SafeTensors *st, const char *name, int64_t rows, int64_t cols, Error *err);
/* A [n] vector (norm weights, biases) converted to a new f32 array: free() it. */
int weight_vector(float **out, const SafeTensors *st, const char *name, int64_t n, Error *err);

/* Requantizes n matrices (F32/F16/BF16 views) to the quantized type t in
 * one new buffer, *buf (free() it), and points each view at its copy; for
 * models whose checkpoints exist only in float (GIT). A matrix whose rows
 * are not whole blocks of t is an error naming it (names[i]); nothing is
 * changed then. */
int weights_requantize(Tensor *const *mats, const char *const *names, int n, DType t, uint8_t **buf, Error *err);

#endif
