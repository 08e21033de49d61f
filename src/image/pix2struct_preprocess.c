/* Pix2StructImageProcessor, step for step as transformers 4.36 runs it on
 * numpy 1.24 and torch 1.13; see the header for the steps. */
#include "image/pix2struct_preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "formats/json_util.h"

#define PREPROCESSOR_MAX_BYTES (1u << 20)
/* numpy reduces a contiguous array through its iterator's buffer, this
 * many elements at a time, each block summed pairwise. */
#define NUMPY_BUFSIZE 8192

/* ---- preprocessor_config.json ---- */

static void config_defaults(Pix2StructProcessorConfig *c) {
    c->is_vqa = 0;
    c->max_patches = 2048;
    c->patch_height = c->patch_width = 16;
    c->do_normalize = 1;
    c->do_convert_rgb = 1;
}

static int parse_patch_size(Pix2StructProcessorConfig *c, const cJSON *root, const char *file, Error *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "patch_size");
    if (!p || cJSON_IsNull(p)) return 0;
    if (!cJSON_IsObject(p))
        return error_set(err, "%s: 'patch_size' is %s, expected an object {\"height\", \"width\"}", file,
                         json_type_name(p));
    int64_t h, w;
    char label[1100];
    snprintf(label, sizeof label, "%s: patch_size", file);
    if (json_get_int(p, "height", &h, 1, PIX2STRUCT_MAX_PATCH_SIDE, label, err) ||
        json_get_int(p, "width", &w, 1, PIX2STRUCT_MAX_PATCH_SIDE, label, err))
        return -1;
    c->patch_height = (int)h;
    c->patch_width = (int)w;
    return 0;
}

static int parse_config(Pix2StructProcessorConfig *c, const cJSON *root, const char *file, Error *err) {
    config_defaults(c);
    if (!cJSON_IsObject(root)) return error_set(err, "%s: expected a JSON object", file);
    static const char *type_keys[] = {"image_processor_type", "feature_extractor_type"};
    for (int i = 0; i < 2; i++) {
        const char *t = NULL;
        if (json_opt_string(root, type_keys[i], &t, file, err)) return -1;
        if (t && strcmp(t, "Pix2StructImageProcessor") != 0)
            return error_set(err, "%s: %s is '%s'; only Pix2StructImageProcessor is supported here", file,
                             type_keys[i], t);
    }
    int64_t mp = c->max_patches;
    if (json_opt_bool(root, "is_vqa", &c->is_vqa, file, err) ||
        json_opt_bool(root, "do_normalize", &c->do_normalize, file, err) ||
        json_opt_bool(root, "do_convert_rgb", &c->do_convert_rgb, file, err) ||
        json_opt_int(root, "max_patches", &mp, 1, PIX2STRUCT_MAX_PATCHES, file, err) ||
        parse_patch_size(c, root, file, err))
        return -1;
    c->max_patches = (int)mp;
    return 0;
}

int pix2struct_processor_config_load(Pix2StructProcessorConfig *c, const char *dir, Error *err) {
    char path[1024];
    if (path_join(path, sizeof path, dir, "preprocessor_config.json", err)) return -1;
    cJSON *root;
    if (json_load_file(&root, path, PREPROCESSOR_MAX_BYTES, err)) return -1;
    int rc = parse_config(c, root, path, err);
    cJSON_Delete(root);
    return rc;
}

int pix2struct_patch_dim(const Pix2StructProcessorConfig *c) { return 2 + c->patch_height * c->patch_width * 3; }

static int check_config(const Pix2StructProcessorConfig *c, int max_patches, Error *err) {
    if (c->patch_height < 1 || c->patch_height > PIX2STRUCT_MAX_PATCH_SIDE || c->patch_width < 1 ||
        c->patch_width > PIX2STRUCT_MAX_PATCH_SIDE)
        return error_set(err, "pix2struct: patch size %dx%d, expected 1..%d each way", c->patch_height,
                         c->patch_width, PIX2STRUCT_MAX_PATCH_SIDE);
    if (max_patches < 1 || max_patches > PIX2STRUCT_MAX_PATCHES)
        return error_set(err, "pix2struct: max_patches %d, expected 1..%d", max_patches, PIX2STRUCT_MAX_PATCHES);
    return 0;
}

/* extract_flattened_patches' grid, in Python's double arithmetic and
 * evaluation order. */
int pix2struct_grid(const Pix2StructProcessorConfig *c, int width, int height, int max_patches, int *rows,
                    int *cols, Error *err) {
    if (check_config(c, max_patches, err)) return -1;
    if (width < 1 || height < 1) return error_set(err, "pix2struct: image is %dx%d", width, height);
    double ph = c->patch_height, pw = c->patch_width;
    double scale = sqrt((double)max_patches * (ph / height) * (pw / width));
    double r = floor(scale * height / ph), k = floor(scale * width / pw);
    *rows = (int)fmax(fmin(r, max_patches), 1);
    *cols = (int)fmax(fmin(k, max_patches), 1);
    return 0;
}

/* ---- numpy's float32 statistics ---- */

/* numpy's pairwise summation (loops_utils.h): 8 accumulators up to 128
 * elements, halves (rounded to a multiple of 8) above that. */
static float pairwise_sum(const float *a, size_t n) {
    if (n < 8) {
        float res = 0.f;
        for (size_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        float r[8];
        size_t i;
        for (int k = 0; k < 8; k++) r[k] = a[k];
        for (i = 8; i < n - n % 8; i += 8)
            for (int k = 0; k < 8; k++) r[k] += a[i + k];
        float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/* np.add.reduce over a whole contiguous float32 array. */
static float numpy_sum(const float *a, size_t n) {
    float s = 0.f;
    for (size_t i = 0; i < n; i += NUMPY_BUFSIZE)
        s += pairwise_sum(a + i, n - i < NUMPY_BUFSIZE ? n - i : NUMPY_BUFSIZE);
    return s;
}

/* The same for the squares of (a - m), made block by block as np.var
 * makes the whole array of them. */
static float numpy_sum_sq_dev(const float *a, size_t n, float m) {
    float s = 0.f, block[NUMPY_BUFSIZE];
    for (size_t i = 0; i < n; i += NUMPY_BUFSIZE) {
        size_t len = n - i < NUMPY_BUFSIZE ? n - i : NUMPY_BUFSIZE;
        for (size_t k = 0; k < len; k++) {
            float d = a[i + k] - m;
            block[k] = d * d;
        }
        s += pairwise_sum(block, len);
    }
    return s;
}

/* Pix2StructImageProcessor.normalize's mean and adjusted std of the image
 * as float32 (x holds it, n values):
 *   mean = float32(sum / N)               np.mean divides the float32 sum in double;
 *   var  = float32(sum((x - m')^2) / N)   with m' = sum / float32(N) in float32;
 *   std  = sqrtf(var), then max(std, 1 / sqrt(N)) compared in double. */
static void numpy_stats(const float *x, size_t n, float *mean, float *std) {
    float sum = numpy_sum(x, n);
    *mean = (float)((double)sum / (double)n);
    float var_mean = sum / (float)n;
    float var = (float)((double)numpy_sum_sq_dev(x, n, var_mean) / (double)n);
    float sd = sqrtf(var);
    double floor_sd = 1.0 / sqrt((double)n);
    *std = floor_sd > (double)sd ? (float)floor_sd : sd;
}

static int check_image(const Image *im, Error *err) {
    if (!im || !im->data || im->channels != 3 || im->bits != 8 || im->width < 1 || im->height < 1)
        return error_set(err, "pix2struct: needs an 8-bit RGB image (convert it with image_to_rgb8)");
    return 0;
}

/* The image as float32, HWC. */
static float *image_floats(const Image *im, size_t *n, Error *err) {
    *n = (size_t)im->width * (size_t)im->height * 3;
    float *x = malloc(*n * sizeof *x);
    if (!x) {
        error_set(err, "pix2struct: out of memory for a %dx%d image", im->width, im->height);
        return NULL;
    }
    for (size_t i = 0; i < *n; i++) x[i] = im->data[i];
    return x;
}

int pix2struct_image_stats(const Image *rgb8, float *mean, float *std, Error *err) {
    size_t n;
    if (check_image(rgb8, err)) return -1;
    float *x = image_floats(rgb8, &n, err);
    if (!x) return -1;
    numpy_stats(x, n, mean, std);
    free(x);
    return 0;
}

/* ---- torch's antialiased bilinear resize ---- */

/* Output i of one axis reads count[i] inputs from first[i] with weights
 * w[i * ksize ...]. */
typedef struct {
    int ksize;
    int *first, *count;
    float *w;
} AaTaps;

static void aa_taps_free(AaTaps *t) {
    free(t->first);
    free(t->count);
    free(t->w);
    memset(t, 0, sizeof *t);
}

/* torch's aa_filter for bilinear: the triangle, evaluated in float. */
static float triangle(float x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return (float)(1.0 - x);
    return 0.0f;
}

/* HelperInterpBase::_compute_indices_weights_aa with scalar_t = float. The
 * casts mark where C++ converts between float and double, so the weights
 * round as torch's do. */
static int aa_taps_build(AaTaps *t, int in, int out, Error *err) {
    memset(t, 0, sizeof *t);
    float scale = (float)in / (float)out;
    float support = scale >= 1.0f ? (float)(1.0 * scale) : 1.0f;
    float invscale = scale >= 1.0f ? (float)(1.0 / scale) : 1.0f;
    t->ksize = (int)ceilf(support) * 2 + 1;
    t->first = malloc((size_t)out * sizeof *t->first);
    t->count = malloc((size_t)out * sizeof *t->count);
    t->w = calloc((size_t)out * (size_t)t->ksize, sizeof *t->w);
    if (!t->first || !t->count || !t->w) {
        aa_taps_free(t);
        return error_set(err, "pix2struct: out of memory for resize weights (%d to %d)", in, out);
    }
    for (int i = 0; i < out; i++) {
        float center = (float)(scale * (i + 0.5));
        long xmin = (long)(center - support + 0.5);
        long xmax = (long)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in) xmax = in;
        long xsize = xmax - xmin;
        if (xsize > t->ksize) xsize = t->ksize;
        if (xsize < 0) xsize = 0;
        float *w = t->w + (size_t)i * t->ksize, total = 0.0f;
        for (long j = 0; j < xsize; j++) {
            w[j] = triangle((float)(((float)(j + xmin) - center + 0.5) * invscale));
            total += w[j];
        }
        if (total != 0.0f)
            for (long j = 0; j < xsize; j++) w[j] /= total;
        t->first[i] = (int)xmin;
        t->count[i] = (int)xsize;
    }
    return 0;
}

/* One output sample: t0 * w0, then += tj * wj, in float, as torch's loop. */
static float aa_dot(const float *src, size_t stride, const float *w, int count) {
    if (count < 1) return 0.0f;
    float acc = src[0] * w[0];
    for (int j = 1; j < count; j++) acc += src[(size_t)j * stride] * w[j];
    return acc;
}

/* in: h x w x 3 floats -> out: oh x ow x 3, width first, then height. */
static int aa_resize(float *out, const float *in, int w, int h, int ow, int oh, Error *err) {
    AaTaps th, tv;
    if (aa_taps_build(&th, w, ow, err)) return -1;
    if (aa_taps_build(&tv, h, oh, err)) {
        aa_taps_free(&th);
        return -1;
    }
    float *tmp = malloc((size_t)h * ow * 3 * sizeof *tmp);
    if (!tmp) {
        aa_taps_free(&th);
        aa_taps_free(&tv);
        return error_set(err, "pix2struct: out of memory resizing %dx%d to %dx%d", w, h, ow, oh);
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < ow; x++)
            for (int c = 0; c < 3; c++)
                tmp[((size_t)y * ow + x) * 3 + c] = aa_dot(in + ((size_t)y * w + th.first[x]) * 3 + c, 3,
                                                           th.w + (size_t)x * th.ksize, th.count[x]);
    size_t row = (size_t)ow * 3;
    for (int y = 0; y < oh; y++)
        for (size_t k = 0; k < row; k++)
            out[y * row + k] = aa_dot(tmp + (size_t)tv.first[y] * row + k, row, tv.w + (size_t)y * tv.ksize,
                                      tv.count[y]);
    free(tmp);
    aa_taps_free(&th);
    aa_taps_free(&tv);
    return 0;
}

/* ---- patches ---- */

int pix2struct_preprocess(float *out, float *attention_mask, int *n_valid, int *rows_out, int *cols_out,
                          const Image *im, const Pix2StructProcessorConfig *c, int max_patches, Error *err) {
    int rows, cols;
    if (check_image(im, err) || pix2struct_grid(c, im->width, im->height, max_patches, &rows, &cols, err))
        return -1;
    int ph = c->patch_height, pw = c->patch_width, dim = pix2struct_patch_dim(c);
    int rh = rows * ph, rw = cols * pw;
    size_t n;
    float *x = image_floats(im, &n, err);
    if (!x) return -1;
    if (c->do_normalize) {
        float mean, std;
        numpy_stats(x, n, &mean, &std);
        for (size_t i = 0; i < n; i++) x[i] = (x[i] - mean) / std;
    }
    float *resized = malloc((size_t)rh * rw * 3 * sizeof *resized);
    if (!resized) {
        free(x);
        return error_set(err, "pix2struct: out of memory for a %dx%d resized image", rw, rh);
    }
    int rc = aa_resize(resized, x, im->width, im->height, rw, rh, err);
    free(x);
    if (rc) {
        free(resized);
        return -1;
    }
    memset(out, 0, (size_t)max_patches * dim * sizeof *out);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) {
            float *p = out + ((size_t)r * cols + k) * dim;
            p[0] = (float)(r + 1);
            p[1] = (float)(k + 1);
            for (int py = 0; py < ph; py++)
                memcpy(p + 2 + (size_t)py * pw * 3, resized + (((size_t)r * ph + py) * rw + (size_t)k * pw) * 3,
                       (size_t)pw * 3 * sizeof *p);
        }
    free(resized);
    if (attention_mask)
        for (int i = 0; i < max_patches; i++)
            attention_mask[i] = pairwise_sum(out + (size_t)i * dim, (size_t)dim) != 0.0f ? 1.0f : 0.0f;
    if (n_valid) *n_valid = rows * cols;
    if (rows_out) *rows_out = rows;
    if (cols_out) *cols_out = cols;
    return 0;
}
