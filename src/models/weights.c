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

int weights_requantize(Tensor *const *mats, const char *const *names, int n, DType t, uint8_t **buf, Error *err) {
    *buf = NULL;
    if (!dtype_is_quant(t)) return error_set(err, "cannot requantize to %s: not a quantized type", dtype_name(t));
    size_t total = 0;
    long max_k = 0;
    for (int i = 0; i < n; i++) {
        const Tensor *w = mats[i];
        int64_t rows = w->shape[0], k = w->shape[1];
        if (w->ndim != 2 || dtype_is_quant(w->dtype))
            return error_set(err, "cannot requantize %s: not a float matrix", names[i]);
        if (k % dtype_block_elems(t))
            return error_set(err, "cannot requantize %s to %s: its rows of %lld values are not whole blocks of %d",
                             names[i], dtype_name(t), (long long)k, dtype_block_elems(t));
        total += (size_t)rows * dtype_row_bytes(t, k);
        if (k > max_k) max_k = (long)k;
    }
    uint8_t *out = malloc(total ? total : 1);
    float *row = malloc((size_t)(max_k ? max_k : 1) * sizeof(float));
    if (!out || !row) {
        free(out);
        free(row);
        return error_set(err, "out of memory requantizing %zu bytes of weights to %s", total, dtype_name(t));
    }
    uint8_t *p = out;
    for (int i = 0; i < n; i++) {
        Tensor *w = mats[i];
        int64_t rows = w->shape[0], k = w->shape[1];
        size_t src_row = (size_t)k * dtype_size(w->dtype), dst_row = dtype_row_bytes(t, k);
        uint8_t *start = p;
        for (int64_t r = 0; r < rows; r++, p += dst_row) {
            dequantize_row(w->dtype, (const uint8_t *)w->data + (size_t)r * src_row, row, k);
            quantize_row(t, row, p, k);
        }
        w->dtype = t;
        w->data = start;
        w->stride[1] = 1;
        w->stride[0] = k;
    }
    free(row);
    *buf = out;
    return 0;
}
