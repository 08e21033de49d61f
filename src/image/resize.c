/* PIL's resampling (Pillow's libImaging/Resample.c), reproduced from how it
 * computes, not from its code: every floating-point expression below is
 * evaluated in the same order and precision as there, because the 22-bit
 * weights are rounded from doubles and one ulp can flip a pixel. */
#include "image/resize.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Weights are fixed point with this many fraction bits: 32 bits minus 8 for
 * the pixel value and 2 for the overshoot of filters with negative lobes. */
#define PIL_PRECISION_BITS 22

typedef struct {
    double (*kernel)(double x);
    double support; /* the kernel is zero outside [-support, support] at scale 1 */
} PilFilter;

/* Keys' cubic convolution with a = -0.5. */
static double bicubic_kernel(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static const PilFilter PIL_BICUBIC = {bicubic_kernel, 2.0};

/* The taps of one pass: output sample i reads `count[i]` inputs from
 * `first[i]` with weights coef[i * ksize ...]. */
typedef struct {
    int ksize;
    int *first;
    int *count;
    int32_t *coef;
} PilTaps;

static void pil_taps_free(PilTaps *t) {
    free(t->first);
    free(t->count);
    free(t->coef);
    memset(t, 0, sizeof *t);
}

static int32_t pil_fixed(double w) {
    double scaled = w * (1 << PIL_PRECISION_BITS);
    return (int32_t)(w < 0 ? -0.5 + scaled : 0.5 + scaled);
}

/* Weights for mapping in_size samples onto out_size. PIL takes the source
 * box as floats (0 and in_size), which matters only past 2^24 samples. */
static int pil_taps_build(PilTaps *t, int in_size, int out_size, const PilFilter *f, Error *err) {
    memset(t, 0, sizeof *t);
    float in0 = 0.0f, in1 = (float)in_size;
    double scale = (double)(in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    double ksize_d = ceil(support) * 2 + 1;
    /* PIL refuses the same way when the weight table would pass 2 GB. */
    if (ksize_d * out_size * sizeof(double) > INT_MAX)
        return error_set(err, "resize from %d to %d samples needs too many filter weights", in_size, out_size);
    int ksize = (int)ksize_d;
    t->ksize = ksize;
    t->first = malloc((size_t)out_size * sizeof *t->first);
    t->count = malloc((size_t)out_size * sizeof *t->count);
    t->coef = calloc((size_t)out_size * (size_t)ksize, sizeof *t->coef);
    double *w = malloc((size_t)ksize * sizeof *w);
    if (!t->first || !t->count || !t->coef || !w) {
        free(w);
        pil_taps_free(t);
        return error_set(err, "out of memory for resize weights (%d x %d)", out_size, ksize);
    }
    double ss = 1.0 / filterscale;
    for (int i = 0; i < out_size; i++) {
        double center = in0 + (i + 0.5) * scale;
        int lo = (int)(center - support + 0.5);
        int hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        int n = hi - lo;
        double sum = 0.0;
        for (int k = 0; k < n; k++) {
            w[k] = f->kernel((k + lo - center + 0.5) * ss);
            sum += w[k];
        }
        for (int k = 0; k < n; k++) {
            if (sum != 0.0) w[k] /= sum;
            t->coef[(size_t)i * ksize + k] = pil_fixed(w[k]);
        }
        t->first[i] = lo;
        t->count[i] = n;
    }
    free(w);
    return 0;
}

static uint8_t pil_clip8(int32_t acc) {
    if (acc < 0) return 0;
    acc >>= PIL_PRECISION_BITS;
    return acc > 255 ? 255 : (uint8_t)acc;
}

/* Resamples rows [row0, row0 + nrows) of src (width src_w) to width
 * dst_w into dst. */
static void pil_pass_horizontal(uint8_t *dst, int dst_w, const uint8_t *src, int src_w, int row0, int nrows, int ch,
                                const PilTaps *t) {
    for (int y = 0; y < nrows; y++) {
        const uint8_t *in = src + (size_t)(row0 + y) * src_w * ch;
        uint8_t *out = dst + (size_t)y * dst_w * ch;
        for (int x = 0; x < dst_w; x++) {
            const int32_t *k = t->coef + (size_t)x * t->ksize;
            const uint8_t *p = in + (size_t)t->first[x] * ch;
            for (int c = 0; c < ch; c++) {
                int32_t acc = 1 << (PIL_PRECISION_BITS - 1);
                for (int j = 0; j < t->count[x]; j++) acc += p[j * ch + c] * k[j];
                out[x * ch + c] = pil_clip8(acc);
            }
        }
    }
}

/* Resamples columns: output row y reads src rows first[y] - row0 ... */
static void pil_pass_vertical(uint8_t *dst, int dst_h, const uint8_t *src, int w, int row0, int ch, const PilTaps *t) {
    size_t stride = (size_t)w * ch;
    for (int y = 0; y < dst_h; y++) {
        const int32_t *k = t->coef + (size_t)y * t->ksize;
        const uint8_t *base = src + (size_t)(t->first[y] - row0) * stride;
        uint8_t *out = dst + (size_t)y * stride;
        for (size_t i = 0; i < stride; i++) {
            int32_t acc = 1 << (PIL_PRECISION_BITS - 1);
            for (int j = 0; j < t->count[y]; j++) acc += base[(size_t)j * stride + i] * k[j];
            out[i] = pil_clip8(acc);
        }
    }
}

/* PIL's two-pass resample. The horizontal pass only computes the rows the
 * vertical pass will read; a pass whose size does not change is skipped
 * (PIL skips it too, and with scale 1 it would be the identity anyway). */
static int pil_resample(Image *out, const Image *in, int out_w, int out_h, const PilFilter *f, const char *name,
                        Error *err) {
    memset(out, 0, sizeof *out);
    if (!in->data || in->bits != 8 || (in->channels != 1 && in->channels != 3))
        return error_set(err, "%s resize: needs an 8-bit gray or RGB image, got %d channels of %d bits "
                              "(PIL premultiplies alpha first; convert to RGB)", name, in->channels, in->bits);
    if (out_w <= 0 || out_h <= 0)
        return error_set(err, "%s resize: output size %dx%d is empty", name, out_w, out_h);
    int ch = in->channels;
    PilTaps th = {0}, tv = {0};
    if (pil_taps_build(&tv, in->height, out_h, f, err)) return -1;
    int row0 = tv.first[0];
    int row1 = tv.first[out_h - 1] + tv.count[out_h - 1];
    int need_h = out_w != in->width, need_v = out_h != in->height;

    Image tmp = {0};
    const Image *src = in;
    int src_row0 = 0;
    if (need_h) {
        if (pil_taps_build(&th, in->width, out_w, f, err) ||
            image_alloc(&tmp, out_w, row1 - row0, ch, 8, "resize", err)) {
            pil_taps_free(&tv);
            pil_taps_free(&th);
            return -1;
        }
        pil_pass_horizontal(tmp.data, out_w, in->data, in->width, row0, row1 - row0, ch, &th);
        pil_taps_free(&th);
        src = &tmp;
        src_row0 = row0;
    }
    int rc = image_alloc(out, out_w, out_h, ch, 8, "resize", err);
    if (rc == 0) {
        if (need_v)
            pil_pass_vertical(out->data, out_h, src->data, out_w, src_row0, ch, &tv);
        else /* same height: the horizontal pass made every row (row0 is 0) */
            memcpy(out->data, src->data, image_size_bytes(out));
    }
    image_free(&tmp);
    pil_taps_free(&tv);
    return rc;
}

int image_resize_pil_bicubic(Image *out, const Image *in, int out_w, int out_h, Error *err) {
    return pil_resample(out, in, out_w, out_h, &PIL_BICUBIC, "bicubic", err);
}
