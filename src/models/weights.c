#include "models/weights.h"

#include <stdio.h>
#include <stdlib.h>

#include "tensor/matmul.h"
#include "tensor/quant.h"

static const char *any_file(const SafeTensors *st) {
    if (st->n_files > 0) return st->files[0].path;
    return st->label ? st->label : "model";
}

int weight_view(Tensor *out, const SafeTensors *st, const char *name, int ndim, const int64_t *dims, Error *err) {
    const StTensor *t = st_find(st, name);
    if (!t) return error_set(err, "%s: tensor '%s' is missing", any_file(st), name);
    const char *file = st_file_path(st, t);
    /* Matrices may also be quantized (tensor/quant.h); vectors are read as f32. */
    int quant_ok = ndim == 2 && dtype_is_quant(t->dtype);
    if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16 && !quant_ok)
        return error_set(err, "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16", file, name,
                         dtype_name(t->dtype));
    if (quant_ok && dims[1] % dtype_block_elems(t->dtype))
        return error_set(err, "%s: tensor '%s' is %s, whose rows must be a multiple of %d values, but has %lld",
                         file, name, dtype_name(t->dtype), dtype_block_elems(t->dtype), (long long)dims[1]);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == dims[i];
    if (!same) {
        Tensor have = st_tensor_view(t), want = tensor_view(DT_F32, NULL, ndim, dims);
        char a[128], b[128];
        return error_set(err, "%s: tensor '%s' is %s but the config says %s", file, name,
                         tensor_shape_str(&have, a, sizeof a), tensor_shape_str(&want, b, sizeof b));
    }
    *out = st_tensor_view(t);
    return 0;
}

int weight_matrix(Tensor *out, const SafeTensors *st, const char *name, int64_t rows, int64_t cols, Error *err) {
    int64_t dims[2] = {rows, cols};
    return weight_view(out, st, name, 2, dims, err);
}

int weight_vector(float **out, const SafeTensors *st, const char *name, int64_t n, Error *err) {
    *out = NULL;
    Tensor t;
    if (weight_view(&t, st, name, 1, &n, err)) return -1;
    *out = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!*out) return error_set(err, "out of memory");
    convert_to_f32(KERNEL_SCALAR, *out, t.data, t.dtype, (long)n);
    return 0;
}
