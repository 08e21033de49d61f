/* Random-weight checkpoints that vmed writes itself, in the HF layout: the
 * built-in default before trained demo weights exist, and the models the
 * benchmarks run at real shapes. Their output is noise by construction. */
#ifndef VMED_MODELS_SYNTH_H
#define VMED_MODELS_SYNTH_H

#include <stdint.h>

#include "base/error.h"
#include "tensor/tensor.h"

/* One tensor to write: scale * U(-1, 1) values, or the constant fill when
 * scale is 0. */
typedef struct {
    char name[160];
    int ndim;
    int64_t shape[4];
    float scale, fill;
} SynthTensor;

typedef struct {
    SynthTensor *t;
    int n, cap;
} SynthList;

/* Appends a tensor; rows x cols when ndim is 2, [rows] when 1. */
int synth_add(SynthList *l, const char *name, int ndim, const int64_t *shape, float scale, float fill, Error *err);
/* A weight of fan-in fan_in: uniform with variance 1/fan_in. */
float synth_scale(int64_t fan_in);
void synth_list_free(SynthList *l);

/* Streams the tensors into path as safetensors of dtype dt (F32, F16 or
 * BF16), from a generator seeded by seed; no tensor is held in memory. */
int synth_write_weights(const char *path, const SynthList *l, DType dt, uint64_t seed, Error *err);
/* dir/name = text, atomically; creates dir when missing. */
int synth_write_text(const char *dir, const char *name, const char *text, Error *err);
int synth_make_dir(const char *dir, Error *err);

#endif
