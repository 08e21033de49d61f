/* The image half of DePlot: header rendering (render.c) and
 * Pix2StructImageProcessor (pix2struct_preprocess.c), against the
 * pix2struct-tiny fixture (transformers 4.36.2, Pillow 9.4 + libraqm,
 * torch 1.13) and the PIL/textwrap references in tests/data/pix2struct
 * (made by tests/data/make_pix2struct_image_refs.py). Then bad input.
 *
 * Observed on Debian 12 (FreeType 2.12.1, fonts-dejavu-core 2.37,
 * fonts-liberation 2.1): every rendered header and text strip is identical
 * to PIL's (max and mean abs difference 0); flattened patches from the
 * fixture's with-header PNGs differ from HF's by at most 9.5e-7 (torch's
 * float rounding in the resize), ids, masks and grids exactly; end to end
 * from bar.png with our own header, also at most 2.4e-7. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ft2build.h>
#include FT_FREETYPE_H

#include "base/file.h"
#include "formats/json_util.h"
#include "formats/safetensors.h"
#include "image/image.h"
#include "image/pix2struct_preprocess.h"
#include "image/render.h"
#include "test.h"

void suite_pix2struct_image(void);

#define HEADER "Generate underlying data table of the figure below:"
#define FIXTURE_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

/* tests/data/pix2struct, committed beside the tests. */
static const char *data_dir(void) {
    const char *d = test_data("pix2struct");
    return dir_exists(d) ? d : NULL;
}

static const char *data_path(const char *name) {
    char rel[300];
    snprintf(rel, sizeof rel, "pix2struct/%s", name);
    return test_data(rel);
}

#define NEED_DATA()                                                                  \
    if (!data_dir()) {                                                               \
        test_skip("tests/data/pix2struct not found (run from the repository root)"); \
        return;                                                                      \
    }

#define NEED_FONT(path)                                                                 \
    if (!file_exists(path)) {                                                           \
        test_skip("font %s not installed (scripts/install-deps.sh installs it)", path); \
        return;                                                                         \
    }

/* The same FreeType as PIL's reference environment draws the same pixels;
 * another version may hint glyphs a little differently. */
static int same_freetype(void) { return FREETYPE_MAJOR == 2 && FREETYPE_MINOR == 12; }

typedef struct {
    int max, same_size;
    double mean;
} PixDiff;

static PixDiff image_diff(const Image *a, const Image *b) {
    PixDiff d = {0, 0, 0};
    if (a->width != b->width || a->height != b->height || a->channels != b->channels) return d;
    d.same_size = 1;
    size_t n = image_size_bytes(a);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        int v = abs((int)a->data[i] - (int)b->data[i]);
        if (v > d.max) d.max = v;
        sum += v;
    }
    d.mean = n ? sum / (double)n : 0;
    return d;
}

static int load_rgb(Image *out, const char *path, Error *err) {
    Image img;
    if (image_load(&img, path, NULL, err)) return -1;
    int rc = image_to_rgb8(out, &img, err);
    image_free(&img);
    return rc;
}

/* Pixels must match PIL's exactly with FreeType 2.12, and nearly with any
 * other. */
#define CHECK_PIXELS(d, what)                                                                        \
    CHECK((d).max == 0 || (!same_freetype() && (d).mean < 1.0), "%s: max abs diff %d, mean %.4f", what, \
          (d).max, (d).mean)

/* ---- preprocessor_config.json ---- */

static void t_pix2struct_image_config_fixture(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    Pix2StructProcessorConfig c;
    Error err;
    CHECK(pix2struct_processor_config_load(&c, dir, &err) == 0, "%s", err.msg);
    CHECK(c.is_vqa == 1 && c.max_patches == 2048 && c.patch_height == 16 && c.patch_width == 16 &&
              c.do_normalize == 1 && c.do_convert_rgb == 1,
          "config read as vqa %d, max_patches %d, patch %dx%d, normalize %d, rgb %d", c.is_vqa, c.max_patches,
          c.patch_height, c.patch_width, c.do_normalize, c.do_convert_rgb);
    CHECK(pix2struct_patch_dim(&c) == 770, "patch dim %d", pix2struct_patch_dim(&c));
}

static int load_config_text(const char *json, Pix2StructProcessorConfig *c, Error *err) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/p2s-config", test_tmpdir());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0) return error_set(err, "mkdir failed");
    char path[700];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    if (file_write_all(path, json, strlen(json), err)) return -1;
    return pix2struct_processor_config_load(c, dir, err);
}

static void t_pix2struct_image_config_defaults_and_refusals(void) {
    Pix2StructProcessorConfig c;
    Error err;
    CHECK(load_config_text("{}", &c, &err) == 0, "%s", err.msg);
    CHECK(c.is_vqa == 0 && c.max_patches == 2048 && c.patch_height == 16 && c.patch_width == 16 && c.do_normalize,
          "defaults differ from transformers'");
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"max_patches\": 0}", "max_patches"},
        {"{\"max_patches\": 1073741824}", "max_patches"},
        {"{\"max_patches\": 2.5}", "max_patches"},
        {"{\"patch_size\": {\"height\": 0, \"width\": 16}}", "height"},
        {"{\"patch_size\": {\"height\": 16}}", "width"},
        {"{\"patch_size\": 16}", "patch_size"},
        {"{\"is_vqa\": \"yes\"}", "is_vqa"},
        {"{\"image_processor_type\": \"CLIPImageProcessor\"}", "Pix2StructImageProcessor"},
        {"[1, 2]", "object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(load_config_text(bad[i].json, &c, &err) != 0, "%s was accepted", bad[i].json);
        CHECK(strstr(err.msg, bad[i].want) && strstr(err.msg, "preprocessor_config.json"),
              "%s: message '%s' should name the file and '%s'", bad[i].json, err.msg, bad[i].want);
    }
}

/* ---- textwrap ---- */

static void t_pix2struct_image_wrap_matches_python(void) {
    NEED_DATA();
    cJSON *root;
    Error err;
    CHECK(json_load_file(&root, data_path("wrap.json"), 1 << 20, &err) == 0, "%s", err.msg);
    int n = cJSON_GetArraySize(root), bad = 0;
    char first[600] = "";
    for (int i = 0; i < n; i++) {
        const cJSON *c = cJSON_GetArrayItem(root, i);
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const char *want = cJSON_GetObjectItem(c, "wrapped")->valuestring;
        int width = cJSON_GetObjectItem(c, "width")->valueint;
        char *got;
        if (render_wrap_text(&got, text, width, &err)) {
            snprintf(first, sizeof first, "case %d: %s", i, err.msg);
            bad++;
            continue;
        }
        if (strcmp(got, want) != 0) {
            if (!bad)
                snprintf(first, sizeof first, "case %d (width %d): got '%.200s', want '%.200s'", i, width, got,
                         want);
            bad++;
        }
        free(got);
    }
    cJSON_Delete(root);
    CHECK(n > 200, "wrap.json has only %d cases", n);
    CHECK(bad == 0, "%d of %d wraps differ from Python's textwrap; first: %s", bad, n, first);
}

/* ---- rendering against PIL ---- */

/* The fixture's header: 938x51 and PIL's pixels (observed: max 0, mean 0). */
static void t_pix2struct_image_header_rendered(void) {
    NEED_FIXTURE(ref_path, "pix2struct-tiny/ref/header_rendered.png");
    NEED_FONT(FIXTURE_FONT);
    Image got, ref;
    Error err;
    CHECK(render_text(&got, HEADER, NULL, &err) == 0, "%s", err.msg);
    if (load_rgb(&ref, ref_path, &err)) {
        image_free(&got);
        CHECK(0, "%s", err.msg);
    }
    PixDiff d = image_diff(&got, &ref);
    int w = got.width, h = got.height;
    image_free(&got);
    image_free(&ref);
    CHECK(w == 938 && h == 51, "header is %dx%d, HF's is 938x51", w, h);
    CHECK(d.same_size, "size differs from the reference PNG");
    CHECK_PIXELS(d, "header_rendered.png");
}

/* transformers' render_text in both fonts: kerning and ligatures, three
 * wrapped lines, accents, Greek, Cyrillic, hyphens (observed: all exact). */
static void t_pix2struct_image_render_matches_pil(void) {
    NEED_DATA();
    cJSON *root;
    Error err;
    CHECK(json_load_file(&root, data_path("render.json"), 1 << 20, &err) == 0, "%s", err.msg);
    int n = cJSON_GetArraySize(root);
    for (int i = 0; i < n; i++) {
        const cJSON *c = cJSON_GetArrayItem(root, i);
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        RenderOptions o;
        render_options_default(&o);
        o.font_path = cJSON_GetObjectItem(c, "font")->valuestring;
        if (!file_exists(o.font_path)) {
            cJSON_Delete(root);
            test_skip("font %s not installed", o.font_path);
            return;
        }
        char png[300];
        snprintf(png, sizeof png, "render_%s.png", name);
        Image got, ref;
        int rc = render_text(&got, cJSON_GetObjectItem(c, "text")->valuestring, &o, &err);
        if (rc == 0 && load_rgb(&ref, data_path(png), &err)) {
            image_free(&got);
            rc = -1;
        }
        if (rc) {
            cJSON_Delete(root);
            CHECK(0, "%s: %s", name, err.msg);
        }
        PixDiff d = image_diff(&got, &ref);
        char what[400];
        snprintf(what, sizeof what, "%s: %dx%d vs PIL's %dx%d", name, got.width, got.height, ref.width, ref.height);
        image_free(&got);
        image_free(&ref);
        if (!d.same_size) cJSON_Delete(root);
        CHECK(d.same_size, "%s", what);
        if (!(d.max == 0 || (!same_freetype() && d.mean < 1.0))) cJSON_Delete(root);
        CHECK_PIXELS(d, what);
    }
    cJSON_Delete(root);
    CHECK(n >= 5, "render.json has %d cases", n);
}

/* render_header on bar.png and plot.jpg (a PNG) against the fixture's
 * with-header images (observed: 856x938 and 1040x1002, max diff 0). */
static void check_with_header(const char *image, const char *ref_rel) {
    char rel[64];
    snprintf(rel, sizeof rel, "images/%s", image);
    NEED_FIXTURE(img_path, rel);
    NEED_FIXTURE(ref_path, ref_rel);
    NEED_FONT(FIXTURE_FONT);
    Image rgb, got, ref;
    Error err;
    CHECK(load_rgb(&rgb, img_path, &err) == 0, "%s", err.msg);
    int rc = render_header(&got, &rgb, HEADER, NULL, &err);
    image_free(&rgb);
    CHECK(rc == 0, "%s", err.msg);
    if (load_rgb(&ref, ref_path, &err)) {
        image_free(&got);
        CHECK(0, "%s", err.msg);
    }
    PixDiff d = image_diff(&got, &ref);
    char what[200];
    snprintf(what, sizeof what, "%s: %dx%d, reference %dx%d", image, got.width, got.height, ref.width, ref.height);
    image_free(&got);
    image_free(&ref);
    CHECK(d.same_size, "%s", what);
    CHECK_PIXELS(d, what);
}

static void t_pix2struct_image_with_header_bar(void) {
    check_with_header("bar.png", "pix2struct-tiny/ref/img0_with_header.png");
}
static void t_pix2struct_image_with_header_plot(void) {
    check_with_header("plot.jpg", "pix2struct-tiny/ref/img1_with_header.png");
}

/* ---- flattened patches ---- */

/* forward.json's numbers for image k, variant "512" or "2048". */
typedef struct {
    int n_valid, rows, cols;
    double sum, abs_sum, sq_sum; /* NAN when absent */
} RunInfo;

static int run_info(int k, int max_patches, RunInfo *ri, Error *err) {
    const char *path = fixture_path("pix2struct-tiny/ref/forward.json");
    if (!path) return error_set(err, "forward.json missing");
    cJSON *root;
    if (json_load_file(&root, path, 1 << 20, err)) return -1;
    char key[16];
    snprintf(key, sizeof key, "%d", max_patches);
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "runs"), k),
                                                             "variants"),
                                         key);
    const cJSON *st = cJSON_GetObjectItem(v, "flattened_patches_stats");
    int64_t nv = 0, r = 0, c = 0;
    int rc = json_get_int(v, "n_valid_patches", &nv, 0, 1 << 20, "forward.json", err) ||
             json_get_int(v, "rows", &r, 0, 1 << 20, "forward.json", err) ||
             json_get_int(v, "cols", &c, 0, 1 << 20, "forward.json", err);
    ri->n_valid = (int)nv, ri->rows = (int)r, ri->cols = (int)c;
    ri->sum = ri->abs_sum = ri->sq_sum = NAN;
    if (!rc && st) {
        ri->sum = cJSON_GetObjectItem(st, "sum")->valuedouble;
        ri->abs_sum = cJSON_GetObjectItem(st, "abs_sum")->valuedouble;
        ri->sq_sum = cJSON_GetObjectItem(st, "sq_sum")->valuedouble;
    }
    cJSON_Delete(root);
    return rc ? -1 : 0;
}

typedef struct {
    float *patches, *mask;
    int n_valid, rows, cols;
} Patches;

static void patches_free(Patches *p) {
    free(p->patches);
    free(p->mask);
}

/* Runs the processor on an 8-bit RGB image (with its header on). */
static int run_processor(Patches *p, const Image *with_header, int max_patches, Error *err) {
    memset(p, 0, sizeof *p);
    const char *dir = fixture_path("pix2struct-tiny");
    Pix2StructProcessorConfig c;
    if (!dir) return error_set(err, "fixture pix2struct-tiny missing");
    if (pix2struct_processor_config_load(&c, dir, err)) return -1;
    p->patches = malloc(sizeof(float) * (size_t)max_patches * 770);
    p->mask = malloc(sizeof(float) * (size_t)max_patches);
    if (!p->patches || !p->mask) {
        patches_free(p);
        return error_set(err, "out of memory");
    }
    if (pix2struct_preprocess(p->patches, p->mask, &p->n_valid, &p->rows, &p->cols, with_header, &c, max_patches,
                              err)) {
        patches_free(p);
        return -1;
    }
    return 0;
}

/* Compares rows [0, n_rows) with a [>= n_rows, 770] F32 tensor: pixels
 * within tol, the two id columns exactly. */
static int compare_rows(const Patches *p, const StTensor *t, int n_rows, float tol, char *msg, size_t cap) {
    if (!t || t->dtype != DT_F32 || t->ndim != 2 || t->shape[1] != 770 || t->shape[0] < n_rows) {
        snprintf(msg, cap, "reference tensor missing or not [%d, 770] F32", n_rows);
        return -1;
    }
    const float *ref = t->data;
    float worst = 0;
    for (int r = 0; r < n_rows; r++) {
        const float *a = p->patches + (size_t)r * 770, *b = ref + (size_t)r * 770;
        if (a[0] != b[0] || a[1] != b[1]) {
            snprintf(msg, cap, "row %d ids (%g, %g), reference (%g, %g)", r, a[0], a[1], b[0], b[1]);
            return -1;
        }
        float d = max_abs_diff(a + 2, b + 2, 768);
        if (!(d <= worst)) worst = d;
    }
    if (!(worst <= tol)) {
        snprintf(msg, cap, "max abs diff %g over %d rows (tolerance %g)", worst, n_rows, tol);
        return -1;
    }
    return 0;
}

static int compare_mask(const Patches *p, const StTensor *t, int n, char *msg, size_t cap) {
    if (!t || t->dtype != DT_F32 || t->ndim != 1 || t->shape[0] != n) {
        snprintf(msg, cap, "attention_mask missing or not [%d] F32", n);
        return -1;
    }
    const float *ref = t->data;
    for (int i = 0; i < n; i++)
        if (p->mask[i] != ref[i]) {
            snprintf(msg, cap, "attention_mask[%d] = %g, reference %g", i, p->mask[i], ref[i]);
            return -1;
        }
    return 0;
}

/* The fixture's with-header PNG k as input, so text rendering does not
 * enter: the full [512, 770] tensor (observed max diff 2.4e-7 and 9.5e-7),
 * mask, grid. */
static void check_mp512(int k, const Image *input_or_null) {
    char rel[80], name[64];
    snprintf(rel, sizeof rel, "pix2struct-tiny/ref/img%d_with_header.png", k);
    NEED_FIXTURE(png, rel);
    NEED_FIXTURE(st_path, "pix2struct-tiny/ref/forward.safetensors");
    Error err;
    Image rgb;
    if (input_or_null) rgb = *input_or_null;
    else CHECK(load_rgb(&rgb, png, &err) == 0, "%s", err.msg);
    Patches p;
    int rc = run_processor(&p, &rgb, 512, &err);
    if (!input_or_null) image_free(&rgb);
    CHECK(rc == 0, "%s", err.msg);
    RunInfo ri;
    SafeTensors st;
    if (run_info(k, 512, &ri, &err) || st_open(&st, st_path, &err)) {
        patches_free(&p);
        CHECK(0, "%s", err.msg);
    }
    char msg[300] = "";
    snprintf(name, sizeof name, "img%d.mp512.flattened_patches", k);
    rc = compare_rows(&p, st_find(&st, name), 512, 1e-4f, msg, sizeof msg);
    snprintf(name, sizeof name, "img%d.mp512.attention_mask", k);
    if (rc == 0) rc = compare_mask(&p, st_find(&st, name), 512, msg, sizeof msg);
    st_close(&st);
    patches_free(&p);
    CHECK(rc == 0, "img%d mp512: %s", k, msg);
    CHECK(p.n_valid == ri.n_valid && p.rows == ri.rows && p.cols == ri.cols,
          "img%d mp512: %d patches in %dx%d, HF %d in %dx%d", k, p.n_valid, p.rows, p.cols, ri.n_valid, ri.rows,
          ri.cols);
}

static void t_pix2struct_image_patches_mp512_bar(void) { check_mp512(0, NULL); }
static void t_pix2struct_image_patches_mp512_plot(void) { check_mp512(1, NULL); }

/* 2048 patches: the first 64 rows, the mask, and forward.json's sums over
 * the whole tensor (observed relative differences < 1e-7). */
static void check_mp2048(int k) {
    char rel[80], name[64];
    snprintf(rel, sizeof rel, "pix2struct-tiny/ref/img%d_with_header.png", k);
    NEED_FIXTURE(png, rel);
    NEED_FIXTURE(st_path, "pix2struct-tiny/ref/forward.safetensors");
    Error err;
    Image rgb;
    CHECK(load_rgb(&rgb, png, &err) == 0, "%s", err.msg);
    Patches p;
    int rc = run_processor(&p, &rgb, 2048, &err);
    image_free(&rgb);
    CHECK(rc == 0, "%s", err.msg);
    RunInfo ri;
    SafeTensors st;
    if (run_info(k, 2048, &ri, &err) || st_open(&st, st_path, &err)) {
        patches_free(&p);
        CHECK(0, "%s", err.msg);
    }
    char msg[300] = "";
    snprintf(name, sizeof name, "img%d.mp2048.flattened_patches_first64", k);
    rc = compare_rows(&p, st_find(&st, name), 64, 1e-4f, msg, sizeof msg);
    snprintf(name, sizeof name, "img%d.mp2048.attention_mask", k);
    if (rc == 0) rc = compare_mask(&p, st_find(&st, name), 2048, msg, sizeof msg);
    st_close(&st);
    double sum = 0, abs_sum = 0, sq_sum = 0;
    for (size_t i = 0; i < (size_t)2048 * 770; i++) {
        sum += p.patches[i];
        abs_sum += fabs(p.patches[i]);
        sq_sum += (double)p.patches[i] * p.patches[i];
    }
    patches_free(&p);
    CHECK(rc == 0, "img%d mp2048: %s", k, msg);
    CHECK(p.n_valid == ri.n_valid && p.rows == ri.rows && p.cols == ri.cols,
          "img%d mp2048: %d patches in %dx%d, HF %d in %dx%d", k, p.n_valid, p.rows, p.cols, ri.n_valid, ri.rows,
          ri.cols);
    CHECK(fabs(sum - ri.sum) <= 1e-6 * ri.abs_sum && fabs(abs_sum - ri.abs_sum) <= 1e-6 * ri.abs_sum &&
              fabs(sq_sum - ri.sq_sum) <= 1e-6 * ri.sq_sum,
          "img%d mp2048 sums %.6f %.6f %.6f, HF %.6f %.6f %.6f", k, sum, abs_sum, sq_sum, ri.sum, ri.abs_sum,
          ri.sq_sum);
}

static void t_pix2struct_image_patches_mp2048_bar(void) { check_mp2048(0); }
static void t_pix2struct_image_patches_mp2048_plot(void) { check_mp2048(1); }

/* normalize's float32 mean and std are numpy's to the bit. */
static void t_pix2struct_image_stats_match_numpy(void) {
    NEED_DATA();
    cJSON *root;
    Error err;
    CHECK(json_load_file(&root, data_path("stats.json"), 1 << 16, &err) == 0, "%s", err.msg);
    for (int k = 0; k < cJSON_GetArraySize(root); k++) {
        const cJSON *s = cJSON_GetArrayItem(root, k);
        const char *path = fixture_path(cJSON_GetObjectItem(s, "image")->valuestring);
        if (!path) {
            cJSON_Delete(root);
            test_skip("fixture pix2struct-tiny not found (set VMED_FIXTURES)");
            return;
        }
        uint32_t want_mean = (uint32_t)cJSON_GetObjectItem(s, "mean_f32_bits")->valuedouble;
        uint32_t want_std = (uint32_t)cJSON_GetObjectItem(s, "std_f32_bits")->valuedouble;
        Image rgb;
        float mean = 0, std = 0;
        int rc = load_rgb(&rgb, path, &err);
        if (rc == 0) rc = pix2struct_image_stats(&rgb, &mean, &std, &err), image_free(&rgb);
        uint32_t got_mean, got_std;
        memcpy(&got_mean, &mean, 4);
        memcpy(&got_std, &std, 4);
        if (rc || got_mean != want_mean || got_std != want_std) cJSON_Delete(root);
        CHECK(rc == 0, "%s", err.msg);
        CHECK(got_mean == want_mean && got_std == want_std, "image %d: mean %.9g std %.9g, numpy's bits %08x %08x",
              k, mean, std, want_mean, want_std);
    }
    cJSON_Delete(root);
}

/* bar.png from the start: RGB conversion, our header, 512 patches, against
 * HF's tensor (observed max diff 2.4e-7: the header is PIL's exactly). */
static void t_pix2struct_image_end_to_end_bar(void) {
    NEED_FIXTURE(img_path, "images/bar.png");
    NEED_FONT(FIXTURE_FONT);
    Image rgb, with;
    Error err;
    CHECK(load_rgb(&rgb, img_path, &err) == 0, "%s", err.msg);
    int rc = render_header(&with, &rgb, HEADER, NULL, &err);
    image_free(&rgb);
    CHECK(rc == 0, "%s", err.msg);
    check_mp512(0, &with);
    image_free(&with);
}

/* ---- bad input ---- */

static void t_pix2struct_image_bad_max_patches(void) {
    Image img, gray;
    Error err;
    CHECK(image_alloc(&img, 32, 32, 3, 8, "test", &err) == 0, "%s", err.msg);
    if (image_alloc(&gray, 8, 8, 1, 8, "test", &err)) {
        image_free(&img);
        CHECK(0, "%s", err.msg);
    }
    Pix2StructProcessorConfig c = {1, 2048, 16, 16, 1, 1}, zero = {1, 2048, 0, 16, 1, 1};
    float out[770], mask[1];
    const int bad[] = {0, -1, 1 << 30};
    int refused = 0, named = 0;
    for (int i = 0; i < 3; i++) {
        refused += pix2struct_preprocess(out, mask, NULL, NULL, NULL, &img, &c, bad[i], &err) != 0;
        named += strstr(err.msg, "max_patches") != NULL;
    }
    int zero_patch = pix2struct_preprocess(out, mask, NULL, NULL, NULL, &img, &zero, 1, &err);
    int gray_rc = pix2struct_preprocess(out, mask, NULL, NULL, NULL, &gray, &c, 1, &err);
    int gray_named = strstr(err.msg, "RGB") != NULL;
    /* one patch of a 32x32 image: the smallest valid call */
    int one = pix2struct_preprocess(out, mask, NULL, NULL, NULL, &img, &c, 1, &err);
    image_free(&img);
    image_free(&gray);
    CHECK(refused == 3 && named == 3, "max_patches 0, -1 and 1<<30: %d refused, %d named max_patches", refused,
          named);
    CHECK(zero_patch != 0, "patch height 0 accepted");
    CHECK(gray_rc != 0 && gray_named, "a gray image was accepted or not named");
    CHECK(one == 0 && out[0] == 1 && out[1] == 1 && mask[0] == 1, "max_patches 1: ids (%g, %g) mask %g", out[0],
          out[1], mask[0]);
}

static void t_pix2struct_image_missing_font(void) {
    RenderOptions o;
    render_options_default(&o);
    o.font_path = "/nonexistent/dir/Arial.TTF";
    Image out;
    Error err;
    CHECK(render_text(&out, HEADER, &o, &err) != 0, "a missing font was accepted");
    CHECK(strstr(err.msg, "/nonexistent/dir/Arial.TTF") && strstr(err.msg, "not found"), "message: %s", err.msg);
    /* a file that is not a font */
    const char *junk = test_write_file("junk.ttf", "not a font at all", 17);
    o.font_path = junk;
    CHECK(render_text(&out, HEADER, &o, &err) != 0, "a junk font was accepted");
    CHECK(strstr(err.msg, junk), "message should name the file: %s", err.msg);
}

static void t_pix2struct_image_header_does_not_fit(void) {
    NEED_FONT(FIXTURE_FONT);
    Error err;
    Image out;
    /* ~500 lines: a strip far over RENDER_MAX_SIDE */
    size_t n = 40000;
    char *text = malloc(n + 1);
    CHECK(text, "out of memory");
    for (size_t i = 0; i < n; i++) text[i] = i % 6 == 5 ? ' ' : 'w';
    text[n] = 0;
    int rc = render_text(&out, text, NULL, &err);
    free(text);
    if (rc == 0) image_free(&out);
    CHECK(rc != 0 && strstr(err.msg, "limit"), "a 40000-character header: %s", rc ? err.msg : "accepted");
    /* a short, very wide image under a 40-line header would keep under 1% of the rows */
    Image wide;
    CHECK(image_alloc(&wide, 4000, 10, 3, 8, "test", &err) == 0, "%s", err.msg);
    char *tall = malloc(3001);
    CHECK(tall, "out of memory");
    for (size_t i = 0; i < 3000; i++) tall[i] = i % 6 == 5 ? ' ' : 'w';
    tall[3000] = 0;
    rc = render_header(&out, &wide, tall, NULL, &err);
    free(tall);
    image_free(&wide);
    if (rc == 0) image_free(&out);
    CHECK(rc != 0 && strstr(err.msg, "1%"), "a header burying the image: %s", rc ? err.msg : "accepted");
    /* invalid UTF-8 and a non-RGB image */
    CHECK(render_text(&out, "caf\xe9", NULL, &err) != 0 && strstr(err.msg, "UTF-8"), "invalid UTF-8: %s", err.msg);
    Image gray;
    CHECK(image_alloc(&gray, 8, 8, 1, 8, "test", &err) == 0, "%s", err.msg);
    rc = render_header(&out, &gray, HEADER, NULL, &err);
    image_free(&gray);
    CHECK(rc != 0 && strstr(err.msg, "RGB"), "a gray image under a header: %s", rc ? err.msg : "accepted");
}

/* Edge texts HF handles: empty and all-space headers give a 10x10 white
 * strip; a single character. */
static void t_pix2struct_image_render_edge_texts(void) {
    NEED_FONT(FIXTURE_FONT);
    Error err;
    Image out;
    const char *blank[] = {"", "   ", "\t\n"};
    for (int i = 0; i < 3; i++) {
        CHECK(render_text(&out, blank[i], NULL, &err) == 0, "%s", err.msg);
        int ok = out.width == 10 && out.height == 10;
        for (size_t k = 0; ok && k < image_size_bytes(&out); k++) ok = out.data[k] == 255;
        image_free(&out);
        CHECK(ok, "text '%s' should give a white 10x10 strip", blank[i]);
    }
    CHECK(render_text(&out, "A", NULL, &err) == 0, "%s", err.msg);
    int w = out.width, h = out.height;
    image_free(&out);
    /* PIL: textbbox("A") = (0, 8, 25, 34) at 36 px DejaVu Sans -> 35x44 */
    CHECK(w == 35 && h == 44, "'A' is %dx%d, PIL's 35x44", w, h);
}

void suite_pix2struct_image(void) {
    RUN(t_pix2struct_image_config_fixture);
    RUN(t_pix2struct_image_config_defaults_and_refusals);
    RUN(t_pix2struct_image_wrap_matches_python);
    RUN(t_pix2struct_image_header_rendered);
    RUN(t_pix2struct_image_render_matches_pil);
    RUN(t_pix2struct_image_with_header_bar);
    RUN(t_pix2struct_image_with_header_plot);
    RUN(t_pix2struct_image_stats_match_numpy);
    RUN(t_pix2struct_image_patches_mp512_bar);
    RUN(t_pix2struct_image_patches_mp512_plot);
    RUN(t_pix2struct_image_patches_mp2048_bar);
    RUN(t_pix2struct_image_patches_mp2048_plot);
    RUN(t_pix2struct_image_end_to_end_bar);
    RUN(t_pix2struct_image_bad_max_patches);
    RUN(t_pix2struct_image_missing_font);
    RUN(t_pix2struct_image_header_does_not_fit);
    RUN(t_pix2struct_image_render_edge_texts);
}
