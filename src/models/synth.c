#include "models/synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/file.h"
#include "formats/safetensors.h"

typedef struct {
    uint64_t state;
} Rng;

static float rng_uniform(Rng *r) { /* [-1, 1) */
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return (float)((r->state * 0x2545F4914F6CDD1Dull) >> 40) / 8388608.0f - 1.0f;
}

/* Streams count values of scale*U(-1,1) (or the constant `fill` when
 * scale is 0) in dtype dt, in chunks. */
static int write_values(StWriter *w, DType dt, size_t count, float scale, float fill, Rng *rng, Error *err) {
    enum { CHUNK = 1 << 16 };
    float *vals = malloc(CHUNK * sizeof(float));
    uint8_t *out = malloc(CHUNK * 4);
    if (!vals || !out) {
        free(vals);
        free(out);
        return error_set(err, "out of memory");
    }
    size_t es = dtype_size(dt);
    int rc = 0;
    for (size_t done = 0; done < count;) {
        size_t n = count - done < CHUNK ? count - done : CHUNK;
        for (size_t i = 0; i < n; i++) vals[i] = scale != 0 ? scale * rng_uniform(rng) : fill;
        for (size_t i = 0; i < n; i++) {
            if (dt == DT_F32) memcpy(out + 4 * i, &vals[i], 4);
            else {
                uint16_t h = dt == DT_F16 ? f32_to_f16(vals[i]) : f32_to_bf16(vals[i]);
                memcpy(out + 2 * i, &h, 2);
            }
        }
        if ((rc = st_writer_write(w, out, n * es, err)) != 0) break;
        done += n;
    }
    free(vals);
    free(out);
    return rc;
}

int synth_add(SynthList *l, const char *name, int ndim, const int64_t *shape, float scale, float fill, Error *err) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        SynthTensor *t = realloc(l->t, sizeof *t * (size_t)cap);
        if (!t) return error_set(err, "out of memory");
        l->t = t;
        l->cap = cap;
    }
    SynthTensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->scale = scale;
    t->fill = fill;
    return 0;
}

/* uniform(-a, a) has variance a^2/3: a = sqrt(3 / fan_in) gives 1/fan_in */
float synth_scale(int64_t fan_in) { return sqrtf(3.0f / (float)fan_in); }

void synth_list_free(SynthList *l) {
    free(l->t);
    memset(l, 0, sizeof *l);
}

int synth_write_weights(const char *path, const SynthList *l, DType dt, uint64_t seed, Error *err) {
    if (dt != DT_F32 && dt != DT_F16 && dt != DT_BF16)
        return error_set(err, "synth: dtype %s is not one of F32, F16, BF16", dtype_name(dt));
    StWriter *w;
    if (st_writer_open(&w, path, err)) return -1;
    int rc = 0;
    for (int i = 0; i < l->n && !rc; i++) rc = st_writer_add(w, l->t[i].name, dt, l->t[i].ndim, l->t[i].shape, err);
    Rng rng = {seed * 0x9E3779B97F4A7C15ull + 0x1234567ull};
    for (int i = 0; i < l->n && !rc; i++) {
        size_t count = 1;
        for (int d = 0; d < l->t[i].ndim; d++) count *= (size_t)l->t[i].shape[d];
        rc = write_values(w, dt, count, l->t[i].scale, l->t[i].fill, &rng, err);
    }
    if (rc) {
        st_writer_abort(w);
        return -1;
    }
    return st_writer_close(w, err);
}

int synth_make_dir(const char *dir, Error *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return error_set(err, "%s: cannot create: %s", dir, strerror(errno));
    return 0;
}

int synth_write_text(const char *dir, const char *name, const char *text, Error *err) {
    char path[1100];
    if (synth_make_dir(dir, err) || path_join(path, sizeof path, dir, name, err)) return -1;
    return file_write_all(path, text, strlen(text), err);
}
