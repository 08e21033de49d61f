/* Image decoding, PIL's convert("RGB"), PIL's bicubic resize and CLIP
 * preprocessing, against what Pillow 9.4 / transformers 4.36 computed:
 * the git-tiny fixture's pixel_values, and the small images in
 * tests/data/images with their references in refs.safetensors (made by
 * tests/data/make_image_refs.py). Then bad input: every message must name
 * the file and say what is wrong. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "formats/safetensors.h"
#include "image/clip_preprocess.h"
#include "image/image.h"
#include "image/resize.h"
#include "test.h"

void suite_image(void);

/* tests/data/images, committed beside the tests. */
static const char *data_dir(void) {
    const char *d = test_data("images");
    return dir_exists(d) ? d : NULL;
}

static const char *data_path(const char *name) {
    char rel[300];
    snprintf(rel, sizeof rel, "images/%s", name);
    return test_data(rel);
}

#define NEED_DATA()                                                              \
    if (!data_dir()) {                                                           \
        test_skip("tests/data/images not found (run from the repository root)"); \
        return;                                                                  \
    }

static int max_u8_diff(const uint8_t *a, const uint8_t *b, size_t n, size_t *where) {
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m) m = d, *where = i;
    }
    return m;
}

/* ---- the fixture: pixel_values of git-tiny's two images ---- */

static void check_fixture_pixel_values(const char *image, const char *tensor) {
    NEED_FIXTURE(dir, "git-tiny");
    NEED_FIXTURE(ref_path, "git-tiny/ref/forward.safetensors");
    char rel[64];
    snprintf(rel, sizeof rel, "images/%s", image);
    NEED_FIXTURE(img_path, rel);
    Error err;
    Image img, rgb;
    CHECK(image_load(&img, img_path, NULL, &err) == 0, "%s", err.msg);
    int rc = image_to_rgb8(&rgb, &img, &err);
    image_free(&img);
    CHECK(rc == 0, "%s", err.msg);
    ClipProcessorConfig cfg;
    int ow = 0, oh = 0;
    if (clip_processor_config_load(&cfg, dir, &err) || clip_output_size(&cfg, rgb.width, rgb.height, &ow, &oh, &err)) {
        image_free(&rgb);
        CHECK(0, "%s", err.msg);
    }
    float *pv = malloc(sizeof(float) * 3 * (size_t)ow * oh);
    rc = clip_preprocess(pv, &rgb, &cfg, &err);
    image_free(&rgb);
    SafeTensors st;
    if (rc || st_open(&st, ref_path, &err)) {
        free(pv);
        CHECK(0, "%s", err.msg);
    }
    const StTensor *t = st_find(&st, tensor);
    float diff = -1;
    if (t && t->dtype == DT_F32 && t->ndim == 3 && t->shape[0] == 3 && t->shape[1] == oh && t->shape[2] == ow)
        diff = max_abs_diff(pv, t->data, 3 * (size_t)ow * oh);
    st_close(&st);
    free(pv);
    CHECK(diff >= 0, "%s missing or not [3,%d,%d] F32", tensor, oh, ow);
    /* bit-exact resize: the only error left would be float32 rounding, and there is none */
    CHECK(diff <= 1e-5f, "%s: max abs diff %g", tensor, diff);
}

static void t_image_fixture_radio_pixel_values(void) { check_fixture_pixel_values("radio.jpg", "img0.pixel_values"); }
static void t_image_fixture_bar_pixel_values(void) { check_fixture_pixel_values("bar.png", "img1.pixel_values"); }

/* plot.jpg is a PNG: the content decides, not the name. */
static void t_image_sniffs_content_not_extension(void) {
    NEED_FIXTURE(path, "images/plot.jpg");
    Image img;
    Error err;
    CHECK(image_load(&img, path, NULL, &err) == 0, "%s", err.msg);
    int ok = img.width == 1002 && img.height == 986 && img.channels == 4 && img.bits == 8;
    image_free(&img);
    CHECK(ok, "plot.jpg should decode as a 1002x986 RGBA PNG");
}

/* ---- the Pillow references ---- */

static int open_refs(SafeTensors *st) {
    Error err;
    if (st_open(st, data_path("refs.safetensors"), &err)) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        return -1;
    }
    return 0;
}

/* Decodes a data file as PIL's convert("RGB") gives it, or (want_gray) as
 * the 8-bit gray image PIL opens it as. */
static int load_data_image(Image *out, const char *name, int want_gray, Error *err) {
    Image img;
    if (image_load(&img, data_path(name), NULL, err)) return -1;
    if (want_gray) {
        if (img.channels == 1 && img.bits == 8) {
            *out = img;
            return 0;
        }
        image_free(&img);
        return error_set(err, "%s: expected an 8-bit gray image", name);
    }
    int rc = image_to_rgb8(out, &img, err);
    image_free(&img);
    return rc;
}

/* What each file decodes to before conversion (PIL's mode in the comment). */
static const struct {
    const char *name;
    int channels, bits;
} LAYOUTS[] = {
    {"gray1.png", 1, 8},             /* 1 */
    {"gray2.png", 1, 8},             /* L */
    {"gray4_interlaced.png", 1, 8},  /* L */
    {"gray8.png", 1, 8},             /* L */
    {"gray8_trns.png", 1, 8},        /* L, tRNS ignored */
    {"gray16.png", 1, 16},           /* I */
    {"gray16_interlaced.png", 1, 16},/* I */
    {"la8.png", 2, 8},               /* LA */
    {"la16.png", 2, 16},             /* RGBA from LA;16B */
    {"rgb8.png", 3, 8},
    {"rgb8_interlaced.png", 3, 8},
    {"rgb16.png", 3, 16},            /* RGB from RGB;16B */
    {"rgba8.png", 4, 8},
    {"rgba16_interlaced.png", 4, 16},
    {"pal8_trns.png", 4, 8},         /* P with tRNS */
    {"pal4.png", 3, 8},              /* P */
    {"pal1_interlaced.png", 3, 8},   /* P */
    {"gray.jpg", 1, 8},
    {"rgb420.jpg", 3, 8},
    {"rgb422.jpg", 3, 8},
    {"rgb444.jpg", 3, 8},
    {"progressive.jpg", 3, 8},
    {"restart.jpg", 3, 8},
    {"rgb_colorspace.jpg", 3, 8},
    {"cmyk.jpg", 3, 8},              /* CMYK, converted at decode */
    {"ycck.jpg", 3, 8},              /* CMYK (from YCCK), converted at decode */
};

static void t_image_decoded_layouts(void) {
    NEED_DATA();
    for (size_t i = 0; i < sizeof LAYOUTS / sizeof LAYOUTS[0]; i++) {
        Image img;
        Error err;
        CHECK(image_load(&img, data_path(LAYOUTS[i].name), NULL, &err) == 0, "%s", err.msg);
        int ch = img.channels, bits = img.bits, w = img.width;
        image_free(&img);
        CHECK(ch == LAYOUTS[i].channels && bits == LAYOUTS[i].bits, "%s: %d channels x %d bits, expected %d x %d",
              LAYOUTS[i].name, ch, bits, LAYOUTS[i].channels, LAYOUTS[i].bits);
        CHECK(w > 0, "%s: width", LAYOUTS[i].name);
    }
}

/* Every rgb.<file> reference: decode + convert("RGB") must be exact. */
static void t_image_convert_rgb_matches_pil(void) {
    NEED_DATA();
    SafeTensors st;
    if (open_refs(&st)) return;
    int n = 0;
    char msg[512] = "";
    for (int i = 0; i < st.n_tensors && !msg[0]; i++) {
        const StTensor *t = &st.tensors[i];
        if (strncmp(t->name, "rgb.", 4) != 0) continue;
        const char *file = t->name + 4;
        Image rgb;
        Error err;
        if (load_data_image(&rgb, file, 0, &err)) {
            snprintf(msg, sizeof msg, "%s", err.msg);
            break;
        }
        size_t where = 0;
        if (t->ndim != 3 || t->shape[0] != rgb.height || t->shape[1] != rgb.width || t->shape[2] != 3)
            snprintf(msg, sizeof msg, "%s: decoded %dx%d, PIL %lldx%lld", file, rgb.width, rgb.height,
                     (long long)t->shape[1], (long long)t->shape[0]);
        else {
            int d = max_u8_diff(rgb.data, t->data, t->nbytes, &where);
            if (d) snprintf(msg, sizeof msg, "%s: %d levels off PIL at pixel %zu channel %zu", file, d, where / 3, where % 3);
        }
        image_free(&rgb);
        n++;
    }
    st_close(&st);
    CHECK(!msg[0], "%s", msg);
    CHECK(n >= 26, "only %d rgb references", n);
}

/* "resize.<file>.<W>x<H>" -> file, W, H. */
static int parse_resize_name(const char *name, char *file, size_t cap, int *w, int *h) {
    const char *dot = strrchr(name, '.');
    if (!dot || sscanf(dot + 1, "%dx%d", w, h) != 2) return -1;
    size_t len = (size_t)(dot - (name + 7));
    if (len + 1 > cap) return -1;
    memcpy(file, name + 7, len);
    file[len] = 0;
    return 0;
}

/* Every resize.* reference: PIL's BICUBIC, bit-exact (the issue allows +-1). */
static void t_image_resize_bicubic_matches_pil(void) {
    NEED_DATA();
    SafeTensors st;
    if (open_refs(&st)) return;
    int n = 0;
    char msg[512] = "";
    for (int i = 0; i < st.n_tensors && !msg[0]; i++) {
        const StTensor *t = &st.tensors[i];
        if (strncmp(t->name, "resize.", 7) != 0) continue;
        char file[256];
        int w, h;
        if (parse_resize_name(t->name, file, sizeof file, &w, &h) || t->ndim != 3) {
            snprintf(msg, sizeof msg, "bad reference name %s", t->name);
            break;
        }
        Image src, out;
        Error err;
        if (load_data_image(&src, file, t->shape[2] == 1, &err) || image_resize_pil_bicubic(&out, &src, w, h, &err)) {
            snprintf(msg, sizeof msg, "%s: %s", t->name, err.msg);
            image_free(&src);
            break;
        }
        size_t where = 0;
        if (image_size_bytes(&out) != t->nbytes)
            snprintf(msg, sizeof msg, "%s: size mismatch", t->name);
        else {
            int d = max_u8_diff(out.data, t->data, t->nbytes, &where);
            if (d) snprintf(msg, sizeof msg, "%s: %d levels off PIL at byte %zu", t->name, d, where);
        }
        image_free(&src);
        image_free(&out);
        n++;
    }
    st_close(&st);
    CHECK(!msg[0], "%s", msg);
    CHECK(n >= 13, "only %d resize references", n);
}

/* "clip.<case>.<file>": CLIPImageProcessor with clip_<case>/preprocessor_config.json. */
static void t_image_clip_preprocess_matches_transformers(void) {
    NEED_DATA();
    SafeTensors st;
    if (open_refs(&st)) return;
    int n = 0;
    char msg[512] = "";
    for (int i = 0; i < st.n_tensors && !msg[0]; i++) {
        const StTensor *t = &st.tensors[i];
        if (strncmp(t->name, "clip.", 5) != 0) continue;
        const char *dot = strchr(t->name + 5, '.');
        char dir[128];
        snprintf(dir, sizeof dir, "clip_%.*s", (int)(dot - (t->name + 5)), t->name + 5);
        ClipProcessorConfig cfg;
        Image rgb;
        Error err;
        int ow, oh;
        if (clip_processor_config_load(&cfg, data_path(dir), &err) || load_data_image(&rgb, dot + 1, 0, &err)) {
            snprintf(msg, sizeof msg, "%s: %s", t->name, err.msg);
            break;
        }
        if (clip_output_size(&cfg, rgb.width, rgb.height, &ow, &oh, &err) || t->ndim != 3 || t->shape[1] != oh ||
            t->shape[2] != ow) {
            snprintf(msg, sizeof msg, "%s: output %dx%d, transformers %lldx%lld", t->name, ow, oh,
                     (long long)t->shape[2], (long long)t->shape[1]);
            image_free(&rgb);
            break;
        }
        float *pv = malloc(sizeof(float) * 3 * (size_t)ow * oh);
        if (clip_preprocess(pv, &rgb, &cfg, &err))
            snprintf(msg, sizeof msg, "%s: %s", t->name, err.msg);
        else {
            float d = max_abs_diff(pv, t->data, 3 * (size_t)ow * oh);
            if (d > 1e-6f) snprintf(msg, sizeof msg, "%s: max abs diff %g", t->name, d);
        }
        free(pv);
        image_free(&rgb);
        n++;
    }
    st_close(&st);
    CHECK(!msg[0], "%s", msg);
    CHECK(n >= 8, "only %d clip references", n);
}

/* PIL's rules for 16 bits, on hand-made images: gray clips, colour keeps
 * the high byte, alpha is dropped without compositing. */
static void t_image_to_rgb8_pil_rules(void) {
    Error err;
    Image g = {0}, out;
    CHECK(image_alloc(&g, 5, 1, 1, 16, "g16", &err) == 0, "%s", err.msg);
    uint16_t gv[5] = {0, 255, 256, 1000, 65535};
    memcpy(g.data, gv, sizeof gv);
    int rc = image_to_rgb8(&out, &g, &err);
    image_free(&g);
    CHECK(rc == 0, "%s", err.msg);
    uint8_t want_g[5] = {0, 255, 255, 255, 255};
    int ok = 1;
    for (int i = 0; i < 5; i++) ok &= out.data[3 * i] == want_g[i] && out.data[3 * i + 1] == want_g[i] && out.data[3 * i + 2] == want_g[i];
    image_free(&out);
    CHECK(ok, "16-bit gray must clip to 255, not scale");

    Image c = {0};
    CHECK(image_alloc(&c, 1, 1, 4, 16, "rgba16", &err) == 0, "%s", err.msg);
    uint16_t cv[4] = {0x12ff, 0x3400, 0xffff, 0x0000};
    memcpy(c.data, cv, sizeof cv);
    rc = image_to_rgb8(&out, &c, &err);
    image_free(&c);
    CHECK(rc == 0, "%s", err.msg);
    ok = out.data[0] == 0x12 && out.data[1] == 0x34 && out.data[2] == 0xff;
    image_free(&out);
    CHECK(ok, "16-bit RGBA must keep the high byte and ignore alpha 0");
}

/* ---- bad input ---- */

static void *read_data(const char *name, size_t *n) {
    char *buf = NULL;
    Error err;
    if (file_read_all(data_path(name), 1 << 20, &buf, n, &err)) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        return NULL;
    }
    return buf;
}

/* Loads bytes saved as tmp/name and expects failure with `want` in the message
 * and the file's path at its start. */
static void expect_load_error(const char *name, const void *data, size_t n, const ImageLimits *lim, const char *want) {
    const char *path = test_write_file(name, data, n);
    Image img;
    Error err = {{0}};
    if (image_load(&img, path, lim, &err) == 0) {
        image_free(&img);
        test_fail(__FILE__, __LINE__, "%s: loaded, expected an error with '%s'", name, want);
        return;
    }
    if (strncmp(err.msg, path, strlen(path)) != 0 || !strstr(err.msg, want))
        test_fail(__FILE__, __LINE__, "%s: message '%s' lacks the path or '%s'", name, err.msg, want);
    if (img.data) test_fail(__FILE__, __LINE__, "%s: failed load left pixels behind", name);
}

static void t_image_truncated_jpeg(void) {
    NEED_DATA();
    const char *names[] = {"rgb420.jpg", "progressive.jpg", "gray.jpg"};
    for (int i = 0; i < 3; i++) {
        size_t n;
        uint8_t *d = read_data(names[i], &n);
        if (!d) return;
        char out[64];
        snprintf(out, sizeof out, "cut-%s", names[i]);
        expect_load_error(out, d, n * 2 / 3, NULL, "truncated JPEG (premature end of data)");
        free(d);
        if (test_failed()) return;
    }
}

/* Without its EOI marker libjpeg runs out of data in the last rows; PIL
 * calls that truncated too ("image file is truncated"). A PNG without IEND
 * is fine for both. */
static void t_image_missing_end_markers(void) {
    NEED_DATA();
    size_t n;
    uint8_t *d = read_data("rgb420.jpg", &n);
    if (!d) return;
    expect_load_error("noeoi.jpg", d, n - 2, NULL, "truncated JPEG (premature end of data)");
    free(d);
    d = read_data("rgb8.png", &n);
    if (!d) return;
    const char *path = test_write_file("noiend.png", d, n - 12);
    free(d);
    Image img;
    Error err;
    CHECK(image_load(&img, path, NULL, &err) == 0, "%s", err.msg);
    image_free(&img);
}

static void t_image_corrupt_jpeg(void) {
    NEED_DATA();
    size_t n;
    uint8_t *d = read_data("gray.jpg", &n);
    if (!d) return;
    /* the first DQT segment claims a length far past its table */
    uint8_t *dqt = NULL;
    for (size_t i = 2; i + 3 < n; i++)
        if (d[i] == 0xff && d[i + 1] == 0xdb) {
            dqt = d + i;
            break;
        }
    if (!dqt) free(d);
    CHECK(dqt, "gray.jpg has no DQT");
    dqt[2] = 0x00;
    dqt[3] = 0x05;
    expect_load_error("bad-dqt.jpg", d, n, NULL, "corrupt JPEG (");
    free(d);
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A PNG signature + IHDR (8-bit RGB, w x h) + IEND, no pixel data. */
static size_t png_header_only(uint8_t *buf, uint32_t w, uint32_t h) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(buf, sig, 8);
    put_be32(buf + 8, 13);
    memcpy(buf + 12, "IHDR", 4);
    put_be32(buf + 16, w);
    put_be32(buf + 20, h);
    buf[24] = 8, buf[25] = 2, buf[26] = 0, buf[27] = 0, buf[28] = 0;
    put_be32(buf + 29, crc32_png(buf + 12, 17));
    put_be32(buf + 33, 0);
    memcpy(buf + 37, "IEND", 4);
    put_be32(buf + 41, crc32_png(buf + 37, 4));
    return 45;
}

static void t_image_png_bad_crc(void) {
    NEED_DATA();
    size_t n;
    uint8_t *d = read_data("rgb8.png", &n);
    if (!d) return;
    d[29] ^= 0x01; /* IHDR's CRC */
    expect_load_error("bad-ihdr-crc.png", d, n, NULL, "corrupt PNG (bad CRC");
    d[29] ^= 0x01;
    /* the first IDAT's CRC, found by walking the chunks */
    size_t off = 8;
    while (off + 12 <= n && memcmp(d + off + 4, "IDAT", 4) != 0) off += 12 + ((size_t)d[off] << 24 | (size_t)d[off + 1] << 16 | (size_t)d[off + 2] << 8 | d[off + 3]);
    if (off + 12 > n) free(d);
    CHECK(off + 12 <= n, "rgb8.png has no IDAT");
    size_t len = (size_t)d[off] << 24 | (size_t)d[off + 1] << 16 | (size_t)d[off + 2] << 8 | d[off + 3];
    d[off + 8 + len] ^= 0x80;
    expect_load_error("bad-idat-crc.png", d, n, NULL, "corrupt PNG (bad CRC");
    d[off + 8 + len] ^= 0x80;
    /* a damaged deflate stream with a correct CRC */
    d[off + 8 + len / 2] ^= 0xff;
    put_be32(d + off + 8 + len, crc32_png(d + off + 4, len + 4));
    expect_load_error("bad-zlib.png", d, n, NULL, "corrupt PNG (");
    free(d);
}

static void t_image_truncated_png(void) {
    NEED_DATA();
    size_t n;
    uint8_t *d = read_data("rgb8_interlaced.png", &n);
    if (!d) return;
    expect_load_error("cut.png", d, n / 2, NULL, "truncated PNG (premature end of data)");
    expect_load_error("cut-header.png", d, 20, NULL, "truncated PNG (premature end of data)");
    free(d);
}

static void t_image_zero_width(void) {
    uint8_t png[64];
    size_t n = png_header_only(png, 0, 16);
    expect_load_error("zero.png", png, n, NULL, "image is 0x16: zero width or height");
    if (!data_dir()) return;
    size_t jn;
    uint8_t *j = read_data("gray.jpg", &jn);
    if (!j) return;
    for (size_t i = 2; i + 8 < jn; i++)
        if (j[i] == 0xff && j[i + 1] == 0xc0) { /* SOF0: len(2) precision(1) height(2) width(2) */
            j[i + 7] = 0, j[i + 8] = 0;
            break;
        }
    expect_load_error("zero.jpg", j, jn, NULL, "image is 0x23: zero width or height");
    free(j);
}

/* Refused from the header alone: under ASan a 30 GB allocation attempt
 * would abort the run, so passing here shows nothing was allocated. */
static void t_image_pixel_limit(void) {
    uint8_t png[64];
    size_t n = png_header_only(png, 100000, 100000);
    expect_load_error("huge.png", png, n, NULL,
                      ": image is 100000x100000 = 10000000000 pixels, more than the limit of 178956970 "
                      "(raise it with --max-pixels)");
    ImageLimits lim = image_default_limits();
    CHECK(lim.max_pixels == 178956970u, "default limit %llu", (unsigned long long)lim.max_pixels);
    if (!data_dir()) return;
    size_t jn;
    uint8_t *j = read_data("gray.jpg", &jn);
    if (!j) return;
    for (size_t i = 2; i + 8 < jn; i++)
        if (j[i] == 0xff && j[i + 1] == 0xc0) {
            j[i + 5] = 0xfd, j[i + 6] = 0xe8, j[i + 7] = 0xfd, j[i + 8] = 0xe8; /* 65000 x 65000 */
            break;
        }
    expect_load_error("huge.jpg", j, jn, NULL, "image is 65000x65000 = 4225000000 pixels, more than the limit");
    free(j);
    /* the limit is inclusive and overridable: rgb8.png has 37 * 23 = 851 pixels */
    size_t pn;
    uint8_t *p = read_data("rgb8.png", &pn);
    if (!p) return;
    lim.max_pixels = 850;
    expect_load_error("limit.png", p, pn, &lim, "image is 37x23 = 851 pixels, more than the limit of 850");
    free(p);
    lim.max_pixels = 851;
    Image img;
    Error err;
    CHECK(image_load(&img, data_path("rgb8.png"), &lim, &err) == 0, "%s", err.msg);
    image_free(&img);
}

static void t_image_not_an_image(void) {
    const char text[] = "patient notes: no image here\n";
    expect_load_error("notes.txt", text, sizeof text - 1, NULL,
                      "not a PNG or JPEG image (it starts with bytes 70 61 74 69 65 6e 74 20)");
    expect_load_error("empty.png", "", 0, NULL, "empty file (0 bytes), not an image");
    expect_load_error("anim.png", "GIF89a\x01\x00\x01\x00", 10, NULL, "a GIF image; only PNG and JPEG are supported");
    expect_load_error("short.jpg", "\xff\xd8", 2, NULL, "not a PNG or JPEG image");
    Image img;
    Error err;
    CHECK(image_load(&img, "/nonexistent/x.png", NULL, &err) != 0 && strstr(err.msg, "/nonexistent/x.png: cannot open"),
          "missing file: %s", err.msg);
}

static void t_image_resize_refuses_bad_input(void) {
    Error err;
    Image rgba = {0}, out;
    CHECK(image_alloc(&rgba, 4, 4, 4, 8, "rgba", &err) == 0, "%s", err.msg);
    int rc = image_resize_pil_bicubic(&out, &rgba, 2, 2, &err);
    CHECK(rc != 0 && strstr(err.msg, "8-bit gray or RGB"), "RGBA resize: %s", err.msg);
    image_free(&rgba);
    Image g = {0};
    CHECK(image_alloc(&g, 4, 4, 1, 8, "g", &err) == 0, "%s", err.msg);
    rc = image_resize_pil_bicubic(&out, &g, 0, 2, &err);
    image_free(&g);
    CHECK(rc != 0 && strstr(err.msg, "0x2 is empty"), "empty resize: %s", err.msg);
}

/* ---- preprocessor_config.json ---- */

static const char *config_dir(const char *name, const char *json) {
    static char dirs[4][512];
    static int next;
    char *dir = dirs[next++ % 4];
    snprintf(dir, sizeof dirs[0], "%s/%s", test_tmpdir(), name);
    mkdir(dir, 0755);
    char rel[600];
    snprintf(rel, sizeof rel, "%s/preprocessor_config.json", name);
    test_write_file(rel, json, strlen(json));
    return dir;
}

static void t_image_clip_config_reads_file(void) {
    /* microsoft/git-base's older style: integer size and crop_size, scalar mean */
    const char *dir = config_dir("pp-ints", "{\"size\": 160, \"crop_size\": 150, \"do_rescale\": false, "
                                            "\"image_mean\": 0.5, \"image_std\": [1, 2, 4], \"rescale_factor\": 0.5,"
                                            " \"feature_extractor_type\": \"CLIPFeatureExtractor\"}");
    ClipProcessorConfig c;
    Error err;
    CHECK(clip_processor_config_load(&c, dir, &err) == 0, "%s", err.msg);
    CHECK(c.shortest_edge == 160 && c.crop_height == 150 && c.crop_width == 150, "sizes");
    CHECK(!c.do_rescale && c.rescale_factor == 0.5 && c.do_resize && c.do_normalize, "flags");
    CHECK(c.image_mean[2] == 0.5 && c.image_std[0] == 1 && c.image_std[2] == 4, "mean/std");
    int w, h;
    CHECK(clip_output_size(&c, 600, 470, &w, &h, &err) == 0 && w == 150 && h == 150, "output %dx%d", w, h);
    c.do_center_crop = 0;
    /* int(160 * 600 / 470) = 204 */
    CHECK(clip_output_size(&c, 600, 470, &w, &h, &err) == 0 && w == 204 && h == 160, "resized %dx%d", w, h);
    CHECK(clip_output_size(&c, 470, 600, &w, &h, &err) == 0 && w == 160 && h == 204, "portrait %dx%d", w, h);
}

static void t_image_clip_config_fixture(void) {
    NEED_FIXTURE(git, "git-tiny");
    ClipProcessorConfig c;
    Error err;
    CHECK(clip_processor_config_load(&c, git, &err) == 0, "%s", err.msg);
    CHECK(c.shortest_edge == 224 && c.crop_height == 224 && c.resample == 3 && c.do_convert_rgb, "git-tiny");
    CHECK(c.image_std[1] == 0.26130258 && c.rescale_factor == 0.00392156862745098, "git-tiny numbers");
}

static void expect_config_error(const char *name, const char *json, const char *want) {
    const char *dir = config_dir(name, json);
    ClipProcessorConfig c;
    Error err = {{0}};
    if (clip_processor_config_load(&c, dir, &err) == 0) {
        test_fail(__FILE__, __LINE__, "%s: accepted, expected '%s'", name, want);
        return;
    }
    if (!strstr(err.msg, "preprocessor_config.json: ") || !strstr(err.msg, want))
        test_fail(__FILE__, __LINE__, "%s: message '%s' lacks the file or '%s'", name, err.msg, want);
}

static void t_image_clip_config_errors(void) {
    expect_config_error("pp-bilinear", "{\"resample\": 2}", "resample 2 (BILINEAR) is not supported; only 3 (BICUBIC)");
    expect_config_error("pp-size", "{\"size\": {\"longest_edge\": 3}}", "'size' must have shortest_edge or height and width");
    expect_config_error("pp-size0", "{\"size\": {\"shortest_edge\": 0}}", "size.shortest_edge must be an integer 1..");
    expect_config_error("pp-crop", "{\"crop_size\": {\"height\": 3}}", "crop_size.width must be an integer");
    expect_config_error("pp-std", "{\"image_std\": [0.5, 0, 0.5]}", "image_std[1] is 0, expected a finite non-zero number");
    expect_config_error("pp-mean", "{\"image_mean\": [0.5, 0.5]}", "'image_mean' must be a number or a list of 3");
    expect_config_error("pp-type", "{\"image_processor_type\": \"ViTImageProcessor\"}", "only CLIPImageProcessor");
    expect_config_error("pp-flag", "{\"do_resize\": 1}", "field 'do_resize' is a number, expected true or false");
    expect_config_error("pp-json", "{\"size\": ", "not valid JSON");
}

void suite_image(void) {
    RUN(t_image_fixture_radio_pixel_values);
    RUN(t_image_fixture_bar_pixel_values);
    RUN(t_image_sniffs_content_not_extension);
    RUN(t_image_decoded_layouts);
    RUN(t_image_convert_rgb_matches_pil);
    RUN(t_image_resize_bicubic_matches_pil);
    RUN(t_image_clip_preprocess_matches_transformers);
    RUN(t_image_to_rgb8_pil_rules);
    RUN(t_image_truncated_jpeg);
    RUN(t_image_missing_end_markers);
    RUN(t_image_corrupt_jpeg);
    RUN(t_image_png_bad_crc);
    RUN(t_image_truncated_png);
    RUN(t_image_zero_width);
    RUN(t_image_pixel_limit);
    RUN(t_image_not_an_image);
    RUN(t_image_resize_refuses_bad_input);
    RUN(t_image_clip_config_reads_file);
    RUN(t_image_clip_config_fixture);
    RUN(t_image_clip_config_errors);
}
