/* CLIPImageProcessor, step for step as transformers 4.36 runs it; see the
 * header for the order of the steps and the numbers' precision. */
#include "image/clip_preprocess.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "formats/json_util.h"
#include "image/resize.h"

#define CLIP_MAX_SIDE 16384
#define PREPROCESSOR_MAX_BYTES (1u << 20)

/* PIL's resampling filter numbers, for messages. */
static const char *pil_filter_name(int64_t r) {
    static const char *names[] = {"NEAREST", "LANCZOS", "BILINEAR", "BICUBIC", "BOX", "HAMMING"};
    return r >= 0 && r < 6 ? names[r] : "unknown";
}

/* CLIPImageProcessor.__init__'s defaults (OpenAI CLIP's mean and std),
 * which transformers uses for any key the file leaves out. */
static void clip_config_defaults(ClipProcessorConfig *c) {
    static const double mean[3] = {0.48145466, 0.4578275, 0.40821073};
    static const double std[3] = {0.26862954, 0.26130258, 0.27577711};
    memset(c, 0, sizeof *c);
    c->do_convert_rgb = c->do_resize = c->do_center_crop = c->do_rescale = c->do_normalize = 1;
    c->shortest_edge = 224;
    c->resample = 3;
    c->crop_height = c->crop_width = 224;
    c->rescale_factor = 1.0 / 255.0;
    memcpy(c->image_mean, mean, sizeof mean);
    memcpy(c->image_std, std, sizeof std);
}

static int side_value(const cJSON *item, const char *what, const char *file, int *out, Error *err) {
    uint64_t v;
    if (!cJSON_IsNumber(item) || !json_as_u53(item, &v) || v < 1 || v > CLIP_MAX_SIDE)
        return error_set(err, "%s: %s must be an integer 1..%d", file, what, CLIP_MAX_SIDE);
    *out = (int)v;
    return 0;
}

/* A {"height", "width"} object or a [height, width] list. */
static int height_width(const cJSON *item, const char *key, const char *file, int *h, int *w, Error *err) {
    char what[64];
    if (cJSON_IsArray(item)) {
        if (cJSON_GetArraySize(item) != 2) return error_set(err, "%s: '%s' as a list must be [height, width]", file, key);
        snprintf(what, sizeof what, "%s[0]", key);
        if (side_value(cJSON_GetArrayItem(item, 0), what, file, h, err)) return -1;
        snprintf(what, sizeof what, "%s[1]", key);
        return side_value(cJSON_GetArrayItem(item, 1), what, file, w, err);
    }
    snprintf(what, sizeof what, "%s.height", key);
    if (side_value(cJSON_GetObjectItemCaseSensitive(item, "height"), what, file, h, err)) return -1;
    snprintf(what, sizeof what, "%s.width", key);
    return side_value(cJSON_GetObjectItemCaseSensitive(item, "width"), what, file, w, err);
}

/* size: an integer means the shortest edge (CLIP resizes with
 * default_to_square=False); an object has shortest_edge or height+width. */
static int parse_size(ClipProcessorConfig *c, const cJSON *root, const char *file, Error *err) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "size");
    if (!s || cJSON_IsNull(s)) return 0;
    if (cJSON_IsNumber(s)) return side_value(s, "size", file, &c->shortest_edge, err);
    if (cJSON_IsObject(s)) {
        const cJSON *se = cJSON_GetObjectItemCaseSensitive(s, "shortest_edge");
        if (se) return side_value(se, "size.shortest_edge", file, &c->shortest_edge, err);
        if (!cJSON_GetObjectItemCaseSensitive(s, "height") || !cJSON_GetObjectItemCaseSensitive(s, "width"))
            return error_set(err, "%s: 'size' must have shortest_edge or height and width", file);
    } else if (!cJSON_IsArray(s)) {
        return error_set(err, "%s: 'size' is %s, expected an integer, an object or a list", file, json_type_name(s));
    }
    c->shortest_edge = 0;
    return height_width(s, "size", file, &c->size_height, &c->size_width, err);
}

/* crop_size: an integer means a square. */
static int parse_crop_size(ClipProcessorConfig *c, const cJSON *root, const char *file, Error *err) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "crop_size");
    if (!s || cJSON_IsNull(s)) return 0;
    if (cJSON_IsNumber(s)) {
        if (side_value(s, "crop_size", file, &c->crop_height, err)) return -1;
        c->crop_width = c->crop_height;
        return 0;
    }
    if (!cJSON_IsObject(s) && !cJSON_IsArray(s))
        return error_set(err, "%s: 'crop_size' is %s, expected an integer, an object or a list", file,
                         json_type_name(s));
    return height_width(s, "crop_size", file, &c->crop_height, &c->crop_width, err);
}

/* image_mean / image_std: one number for every channel, or one per channel. */
static int parse_triple(double out[3], const cJSON *root, const char *key, int nonzero, const char *file, Error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    double vals[3];
    if (cJSON_IsNumber(v)) {
        vals[0] = vals[1] = vals[2] = v->valuedouble;
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 3) {
        for (int i = 0; i < 3; i++) {
            const cJSON *e = cJSON_GetArrayItem(v, i);
            if (!cJSON_IsNumber(e)) return error_set(err, "%s: %s[%d] is %s, expected a number", file, key, i, json_type_name(e));
            vals[i] = e->valuedouble;
        }
    } else {
        return error_set(err, "%s: '%s' must be a number or a list of 3 numbers (one per RGB channel)", file, key);
    }
    for (int i = 0; i < 3; i++) {
        if (!isfinite(vals[i]) || (nonzero && vals[i] == 0.0))
            return error_set(err, "%s: %s[%d] is %g, expected a finite%s number", file, key, i, vals[i],
                             nonzero ? " non-zero" : "");
        out[i] = vals[i];
    }
    return 0;
}

/* Only CLIP's processor is implemented; other processors read the same
 * keys with other meanings (and other defaults). */
static int check_processor_type(const cJSON *root, const char *file, Error *err) {
    static const char *keys[] = {"image_processor_type", "feature_extractor_type"};
    for (int i = 0; i < 2; i++) {
        const char *t = NULL;
        if (json_opt_string(root, keys[i], &t, file, err)) return -1;
        if (t && strcmp(t, "CLIPImageProcessor") != 0 && strcmp(t, "CLIPFeatureExtractor") != 0)
            return error_set(err, "%s: %s is '%s'; only CLIPImageProcessor is supported here", file, keys[i], t);
    }
    return 0;
}

static int parse_config(ClipProcessorConfig *c, const cJSON *root, const char *file, Error *err) {
    clip_config_defaults(c);
    if (!cJSON_IsObject(root)) return error_set(err, "%s: expected a JSON object", file);
    if (check_processor_type(root, file, err)) return -1;
    if (json_opt_bool(root, "do_convert_rgb", &c->do_convert_rgb, file, err) ||
        json_opt_bool(root, "do_resize", &c->do_resize, file, err) ||
        json_opt_bool(root, "do_center_crop", &c->do_center_crop, file, err) ||
        json_opt_bool(root, "do_rescale", &c->do_rescale, file, err) ||
        json_opt_bool(root, "do_normalize", &c->do_normalize, file, err))
        return -1;
    int64_t resample = c->resample;
    if (json_opt_int(root, "resample", &resample, 0, 5, file, err)) return -1;
    if (resample != 3)
        return error_set(err, "%s: resample %lld (%s) is not supported; only 3 (BICUBIC) is implemented", file,
                         (long long)resample, pil_filter_name(resample));
    c->resample = (int)resample;
    if (json_opt_float(root, "rescale_factor", &c->rescale_factor, 0.0, 1e6, file, err)) return -1;
    if (parse_size(c, root, file, err) || parse_crop_size(c, root, file, err)) return -1;
    if (parse_triple(c->image_mean, root, "image_mean", 0, file, err) ||
        parse_triple(c->image_std, root, "image_std", 1, file, err))
        return -1;
    return 0;
}

int clip_processor_config_load(ClipProcessorConfig *c, const char *dir, Error *err) {
    char path[1024];
    if (path_join(path, sizeof path, dir, "preprocessor_config.json", err)) return -1;
    cJSON *root;
    if (json_load_file(&root, path, PREPROCESSOR_MAX_BYTES, err)) return -1;
    int rc = parse_config(c, root, path, err);
    cJSON_Delete(root);
    return rc;
}

/* ---- geometry ---- */

/* transformers' get_resize_output_image_size(default_to_square=False):
 * Python's int(N * long / short), a correctly rounded double quotient of two
 * exact integers, truncated. */
static int resized_size(const ClipProcessorConfig *c, int w, int h, int *rw, int *rh, Error *err) {
    if (!c->do_resize) {
        *rw = w, *rh = h;
        return 0;
    }
    if (c->shortest_edge <= 0) {
        *rw = c->size_width, *rh = c->size_height;
        return c->size_width > 0 && c->size_height > 0 ? 0 : error_set(err, "CLIP preprocess: no resize size set");
    }
    int shorter = w <= h ? w : h, longer = w <= h ? h : w;
    double q = (double)((int64_t)c->shortest_edge * longer) / (double)shorter;
    if (q * c->shortest_edge > IMAGE_DEFAULT_MAX_PIXELS)
        return error_set(err, "CLIP preprocess: a %dx%d image resized to a shortest edge of %d would be %.0f pixels "
                              "long, too large", w, h, c->shortest_edge, q);
    int new_long = (int)q;
    if (w <= h)
        *rw = c->shortest_edge, *rh = new_long;
    else
        *rw = new_long, *rh = c->shortest_edge;
    return 0;
}

static int floor_half(int v) { return v >= 0 ? v / 2 : -((1 - v) / 2); }

/* One axis of transformers' center_crop: from a side of `size` take `crop`,
 * starting at (size - crop) // 2. When the crop is larger, the image is
 * first padded to `crop` with (crop - size) // 2 zeros before it, and the
 * window is clipped to the padded image, which is why an odd difference
 * loses one pixel. Returns the output length; *src0 = the source index of
 * output 0 (negative inside the padding). */
static int crop_axis(int size, int crop, int *src0) {
    int top = floor_half(size - crop);
    int padded = crop > size ? crop : size;
    int pad = floor_half(padded - size);
    int lo = top + pad, hi = top + pad + crop;
    if (lo < 0) lo = 0;
    if (hi > padded) hi = padded;
    *src0 = lo - pad;
    return hi - lo;
}

int clip_output_size(const ClipProcessorConfig *c, int in_w, int in_h, int *out_w, int *out_h, Error *err) {
    int rw, rh, x0, y0;
    if (in_w <= 0 || in_h <= 0) return error_set(err, "CLIP preprocess: image is %dx%d", in_w, in_h);
    if (resized_size(c, in_w, in_h, &rw, &rh, err)) return -1;
    if (!c->do_center_crop) {
        *out_w = rw, *out_h = rh;
        return 0;
    }
    *out_w = crop_axis(rw, c->crop_width, &x0);
    *out_h = crop_axis(rh, c->crop_height, &y0);
    return 0;
}

/* ---- pixels ---- */

int clip_preprocess(float *out, const Image *rgb8, const ClipProcessorConfig *cfg, Error *err) {
    if (!rgb8->data || rgb8->channels != 3 || rgb8->bits != 8)
        return error_set(err, "CLIP preprocess: needs an 8-bit RGB image, got %d channels of %d bits "
                              "(convert it with image_to_rgb8)", rgb8->channels, rgb8->bits);
    if (cfg->do_resize && cfg->resample != 3)
        return error_set(err, "CLIP preprocess: resample %d is not supported; only 3 (BICUBIC) is implemented",
                         cfg->resample);
    Image resized = {0};
    const Image *src = rgb8;
    int rw, rh;
    if (resized_size(cfg, rgb8->width, rgb8->height, &rw, &rh, err)) return -1;
    if (cfg->do_resize) {
        if (image_resize_pil_bicubic(&resized, rgb8, rw, rh, err)) return error_prefix(err, "CLIP preprocess");
        src = &resized;
    }
    int ow = rw, oh = rh, x0 = 0, y0 = 0;
    if (cfg->do_center_crop) {
        ow = crop_axis(rw, cfg->crop_width, &x0);
        oh = crop_axis(rh, cfg->crop_height, &y0);
    }
    float mean[3], std[3];
    for (int c = 0; c < 3; c++) mean[c] = (float)cfg->image_mean[c], std[c] = (float)cfg->image_std[c];
    size_t plane = (size_t)ow * oh;
    for (int y = 0; y < oh; y++) {
        int sy = y0 + y;
        for (int x = 0; x < ow; x++) {
            int sx = x0 + x;
            int inside = sy >= 0 && sy < rh && sx >= 0 && sx < rw;
            const uint8_t *p = inside ? src->data + ((size_t)sy * rw + sx) * 3 : NULL;
            for (int c = 0; c < 3; c++) {
                uint8_t v = p ? p[c] : 0; /* the crop's padding is black */
                /* uint8 * Python float is float64 in numpy, then cast to float32 */
                float f = cfg->do_rescale ? (float)(v * cfg->rescale_factor) : (float)v;
                if (cfg->do_normalize) f = (f - mean[c]) / std[c];
                out[c * plane + (size_t)y * ow + x] = f;
            }
        }
    }
    image_free(&resized);
    return 0;
}
