/* PNG (libspng) and JPEG (libjpeg-turbo) decoding, and PIL's convert("RGB").
 * See image.h for what each format decodes to and why. */
#include "image/image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <spng.h>

#include "base/file.h"

ImageLimits image_default_limits(void) {
    ImageLimits lim = {IMAGE_DEFAULT_MAX_PIXELS};
    return lim;
}

void image_free(Image *img) {
    free(img->data);
    memset(img, 0, sizeof *img);
}

size_t image_row_bytes(const Image *img) {
    return (size_t)img->width * (size_t)img->channels * (size_t)(img->bits / 8);
}

size_t image_size_bytes(const Image *img) { return image_row_bytes(img) * (size_t)img->height; }

int image_check_size(int64_t width, int64_t height, const ImageLimits *lim, const char *label, Error *err) {
    ImageLimits def = image_default_limits();
    if (!lim) lim = &def;
    if (width <= 0 || height <= 0)
        return error_set(err, "%s: image is %lldx%lld: zero width or height", label, (long long)width,
                         (long long)height);
    /* Both sides fit in 32 bits in every format read here, so the product fits in 64. */
    uint64_t pixels = (uint64_t)width * (uint64_t)height;
    if (width > INT32_MAX || height > INT32_MAX || pixels > lim->max_pixels)
        return error_set(err,
                         "%s: image is %lldx%lld = %llu pixels, more than the limit of %llu "
                         "(raise it with --max-pixels)",
                         label, (long long)width, (long long)height, (unsigned long long)pixels,
                         (unsigned long long)lim->max_pixels);
    return 0;
}

int image_alloc(Image *img, int width, int height, int channels, int bits, const char *label, Error *err) {
    memset(img, 0, sizeof *img);
    if (width <= 0 || height <= 0 || channels < 1 || channels > 4 || (bits != 8 && bits != 16))
        return error_set(err, "%s: cannot make a %dx%d image of %d channels x %d bits", label, width, height,
                         channels, bits);
    uint64_t bytes = (uint64_t)width * (uint64_t)height * (uint64_t)channels * (uint64_t)(bits / 8);
    if (bytes > (uint64_t)SIZE_MAX / 2)
        return error_set(err, "%s: a %dx%d image is too large for this machine", label, width, height);
    img->data = calloc((size_t)bytes, 1);
    if (!img->data)
        return error_set(err, "%s: out of memory for a %dx%d image (%llu bytes)", label, width, height,
                         (unsigned long long)bytes);
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->bits = bits;
    return 0;
}

/* ---- format sniffing ---- */

static const uint8_t PNG_MAGIC[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static int is_png(const uint8_t *d, size_t n) { return n >= 8 && memcmp(d, PNG_MAGIC, 8) == 0; }

static int is_jpeg(const uint8_t *d, size_t n) { return n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff; }

/* Formats PIL opens but vmed does not, so the message can say what the file is. */
static const char *other_format_name(const uint8_t *d, size_t n) {
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) return "GIF";
    if (n >= 2 && memcmp(d, "BM", 2) == 0) return "BMP";
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) return "WebP";
    if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0)) return "TIFF";
    if (n >= 132 && memcmp(d + 128, "DICM", 4) == 0) return "DICOM";
    return NULL;
}

static int not_an_image(const uint8_t *d, size_t n, const char *label, Error *err) {
    if (n == 0) return error_set(err, "%s: empty file (0 bytes), not an image", label);
    const char *other = other_format_name(d, n);
    if (other) return error_set(err, "%s: a %s image; only PNG and JPEG are supported", label, other);
    char hex[3 * 8 + 1] = "";
    size_t k = n < 8 ? n : 8, len = 0;
    for (size_t i = 0; i < k; i++) len += (size_t)snprintf(hex + len, sizeof hex - len, "%s%02x", i ? " " : "", d[i]);
    return error_set(err, "%s: not a PNG or JPEG image (it starts with bytes %s)", label, hex);
}

/* ---- PNG ---- */

/* Chunk limits: no real image has a metadata chunk near these sizes, and
 * they stop a small file that inflates (zTXt, iCCP) into gigabytes. */
#define PNG_MAX_CHUNK (64u << 20)
#define PNG_MAX_CHUNK_CACHE (128u << 20)

static uint32_t read_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Width and height straight from the IHDR bytes, so a zero or huge size gets
 * its own message before libspng (which would only say "invalid width"). */
static int png_peek_size(const uint8_t *d, size_t n, uint32_t *w, uint32_t *h) {
    if (n < 8 + 8 + 13 || memcmp(d + 12, "IHDR", 4) != 0) return 0;
    *w = read_be32(d + 16);
    *h = read_be32(d + 20);
    return 1;
}

static int png_error(int rc, const char *label, Error *err) {
    if (rc == SPNG_IO_EOF || rc == SPNG_EOF || rc == SPNG_EIDAT_TOO_SHORT)
        return error_set(err, "%s: truncated PNG (premature end of data)", label);
    if (rc == SPNG_ECHUNK_CRC) return error_set(err, "%s: corrupt PNG (bad CRC: a chunk's checksum does not match)", label);
    if (rc == SPNG_ECHUNK_LIMITS || rc == SPNG_EMEM)
        return error_set(err, "%s: PNG refused (%s; a metadata chunk is larger than %u MiB or memory ran out)",
                         label, spng_strerror(rc), PNG_MAX_CHUNK >> 20);
    return error_set(err, "%s: corrupt PNG (%s)", label, spng_strerror(rc));
}

/* Sample i of a row packed at `depth` bits per sample (1, 2, 4 or 8). */
static unsigned packed_sample(const uint8_t *row, size_t i, int depth) {
    size_t bit = i * (size_t)depth;
    unsigned shift = 8u - (unsigned)depth - (unsigned)(bit % 8);
    return (row[bit / 8] >> shift) & ((1u << depth) - 1u);
}

/* Gray of 1, 2 or 4 bits to 8 bits by repeating the bit pattern (0..3 ->
 * 0, 85, 170, 255), which is what PIL's "1", "L;2" and "L;4" unpackers give. */
static void png_expand_low_gray(Image *img, const uint8_t *packed, size_t row_bytes, int depth) {
    unsigned scale = 255u / ((1u << depth) - 1u);
    for (int y = 0; y < img->height; y++) {
        const uint8_t *row = packed + (size_t)y * row_bytes;
        uint8_t *out = img->data + (size_t)y * (size_t)img->width;
        for (int x = 0; x < img->width; x++) out[x] = (uint8_t)(packed_sample(row, (size_t)x, depth) * scale);
    }
}

/* Palette indices to RGB, or RGBA when the file has tRNS. The table starts
 * as PIL's default palette (a grey ramp) so an index past the PLTE entries
 * gives the same colour as in PIL. */
static void png_expand_palette(Image *img, const uint8_t *packed, size_t row_bytes, int depth,
                               const struct spng_plte *plte, const struct spng_trns *trns) {
    uint8_t table[256][4];
    for (int i = 0; i < 256; i++) table[i][0] = table[i][1] = table[i][2] = (uint8_t)i, table[i][3] = 255;
    for (uint32_t i = 0; i < plte->n_entries && i < 256; i++) {
        table[i][0] = plte->entries[i].red;
        table[i][1] = plte->entries[i].green;
        table[i][2] = plte->entries[i].blue;
    }
    if (trns)
        for (uint32_t i = 0; i < trns->n_type3_entries && i < 256; i++) table[i][3] = trns->type3_alpha[i];
    int ch = img->channels;
    for (int y = 0; y < img->height; y++) {
        const uint8_t *row = packed + (size_t)y * row_bytes;
        uint8_t *out = img->data + (size_t)y * (size_t)img->width * (size_t)ch;
        for (int x = 0; x < img->width; x++) memcpy(out + (size_t)x * ch, table[packed_sample(row, (size_t)x, depth)], (size_t)ch);
    }
}

static int png_channels(int color_type) {
    switch (color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE: return 1;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA: return 2;
    case SPNG_COLOR_TYPE_TRUECOLOR: return 3;
    case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA: return 4;
    default: return 0;
    }
}

/* libspng stops at the end of the compressed stream, before the CRC of the
 * last IDAT; asking for any chunk makes it read (and check) the rest of the
 * file. A missing IEND is accepted, as PIL accepts it, and so are malformed
 * metadata chunks after the pixels; a bad checksum is not. */
static int png_check_trailer(spng_ctx *ctx, const char *label, Error *err) {
    uint32_t n_text;
    int rc = spng_get_text(ctx, NULL, &n_text);
    return rc == SPNG_ECHUNK_CRC ? png_error(rc, label, err) : 0;
}

/* Decodes into img once the header has been checked. Gray of 8/16 bits,
 * gray+alpha, RGB and RGBA are read as stored (SPNG_FMT_PNG: no conversion,
 * 16-bit host-endian) straight into img; low-depth gray and palette images
 * are read packed and expanded here. */
static int png_decode_pixels(spng_ctx *ctx, const struct spng_ihdr *ih, Image *img, const char *label, Error *err) {
    int depth = ih->bit_depth;
    int indexed = ih->color_type == SPNG_COLOR_TYPE_INDEXED;
    int low_gray = ih->color_type == SPNG_COLOR_TYPE_GRAYSCALE && depth < 8;
    struct spng_plte plte;
    struct spng_trns trns;
    int has_trns = 0;
    int channels, bits;
    if (indexed) {
        int rc = spng_get_plte(ctx, &plte);
        if (rc) return rc == SPNG_ECHUNKAVAIL ? error_set(err, "%s: corrupt PNG (palette image without a PLTE chunk)", label)
                                              : png_error(rc, label, err);
        rc = spng_get_trns(ctx, &trns);
        if (rc && rc != SPNG_ECHUNKAVAIL) return png_error(rc, label, err);
        has_trns = rc == 0;
        channels = has_trns ? 4 : 3;
        bits = 8;
    } else {
        channels = png_channels(ih->color_type);
        bits = depth == 16 ? 16 : 8;
        if (!channels) return error_set(err, "%s: corrupt PNG (colour type %d)", label, ih->color_type);
    }
    if (image_alloc(img, (int)ih->width, (int)ih->height, channels, bits, label, err)) return -1;

    size_t len;
    int rc = spng_decoded_image_size(ctx, SPNG_FMT_PNG, &len);
    if (rc) return png_error(rc, label, err);
    if (!indexed && !low_gray) {
        if (len != image_size_bytes(img)) return error_set(err, "%s: PNG decoder size mismatch", label);
        rc = spng_decode_image(ctx, img->data, len, SPNG_FMT_PNG, 0);
        return rc ? png_error(rc, label, err) : png_check_trailer(ctx, label, err);
    }
    /* zeroed: libspng ORs the bits of interlaced low-depth rows into place */
    uint8_t *packed = calloc(len, 1);
    if (!packed) return error_set(err, "%s: out of memory (%zu bytes)", label, len);
    rc = spng_decode_image(ctx, packed, len, SPNG_FMT_PNG, 0);
    if (rc) {
        free(packed);
        return png_error(rc, label, err);
    }
    size_t row_bytes = len / ih->height;
    if (indexed)
        png_expand_palette(img, packed, row_bytes, depth, &plte, has_trns ? &trns : NULL);
    else
        png_expand_low_gray(img, packed, row_bytes, depth);
    free(packed);
    return png_check_trailer(ctx, label, err);
}

static int png_decode(Image *img, const uint8_t *data, size_t n, const char *label, const ImageLimits *lim,
                      Error *err) {
    uint32_t w, h;
    if (png_peek_size(data, n, &w, &h) && image_check_size(w, h, lim, label, err)) return -1;
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx) return error_set(err, "%s: out of memory starting the PNG decoder", label);
    /* A bad checksum anywhere is an error, as in PIL (the default would
     * silently skip ancillary chunks with a bad CRC). */
    spng_set_crc_action(ctx, SPNG_CRC_ERROR, SPNG_CRC_ERROR);
    spng_set_chunk_limits(ctx, PNG_MAX_CHUNK, PNG_MAX_CHUNK_CACHE);
    int rc = spng_set_png_buffer(ctx, data, n);
    struct spng_ihdr ih;
    if (!rc) rc = spng_get_ihdr(ctx, &ih);
    if (rc) {
        spng_ctx_free(ctx);
        return png_error(rc, label, err);
    }
    if (image_check_size(ih.width, ih.height, lim, label, err) || png_decode_pixels(ctx, &ih, img, label, err)) {
        spng_ctx_free(ctx);
        image_free(img);
        return -1;
    }
    spng_ctx_free(ctx);
    return 0;
}

/* ---- JPEG ---- */

/* No encoder writes more than a few dozen scans; a crafted progressive file
 * with thousands of them makes libjpeg re-decode the image thousands of times. */
#define JPEG_MAX_SCANS 500

/* libjpeg reports fatal errors through error_exit, whose default calls
 * exit(); ours jumps back to jpeg_run instead. */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX + 64];
} JpegErrorMgr;

typedef struct {
    struct jpeg_decompress_struct cinfo;
    JpegErrorMgr jerr;
    struct jpeg_progress_mgr progress;
    int created;
    uint8_t *cmyk_row;
} JpegJob;

static void jpeg_fail(j_common_ptr cinfo) {
    JpegErrorMgr *e = (JpegErrorMgr *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, text);
    if (cinfo->err->msg_code == JERR_EMPTY_IMAGE)
        snprintf(e->msg, sizeof e->msg, "image is %ux%u: zero width or height",
                 ((j_decompress_ptr)cinfo)->image_width, ((j_decompress_ptr)cinfo)->image_height);
    else
        snprintf(e->msg, sizeof e->msg, "corrupt JPEG (%s)", text);
    longjmp(e->jump, 1);
}

/* Warnings (level -1) are ignored as PIL ignores them (libjpeg recovers from
 * bad Huffman data by filling in), except running out of data: libjpeg would
 * pad the image with grey, PIL refuses it as truncated, and so do we. */
static void jpeg_message(j_common_ptr cinfo, int level) {
    if (level >= 0 || cinfo->err->msg_code != JWRN_JPEG_EOF) return;
    JpegErrorMgr *e = (JpegErrorMgr *)cinfo->err;
    snprintf(e->msg, sizeof e->msg, "truncated JPEG (premature end of data)");
    longjmp(e->jump, 1);
}

static void jpeg_count_scans(j_common_ptr cinfo) {
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number <= JPEG_MAX_SCANS) return;
    JpegErrorMgr *e = (JpegErrorMgr *)cinfo->err;
    snprintf(e->msg, sizeof e->msg, "JPEG refused: more than %d scans", JPEG_MAX_SCANS);
    longjmp(e->jump, 1);
}

/* PIL reads every 4-component JPEG with the raw mode "CMYK;I" (Adobe's
 * inverted CMYK, assumed whatever the file's markers say), so its C is
 * 255 - c and its K 255 - k for the c, k that libjpeg returns. Its
 * convert("RGB") then gives R = (255 - K) - round(C * (255 - K) / 255);
 * substituted, R = k - round((255 - c) * k / 255). x/255 is never exactly
 * halfway, so round(x/255) = (x + 127) / 255. */
static void cmyk_row_to_rgb(uint8_t *out, const uint8_t *cmyk, int width) {
    for (int x = 0; x < width; x++) {
        unsigned k = cmyk[4 * x + 3];
        for (int c = 0; c < 3; c++) {
            unsigned ink = 255u - cmyk[4 * x + c];
            out[3 * x + c] = (uint8_t)(k - (ink * k + 127u) / 255u);
        }
    }
}

/* Everything that can longjmp happens here; state lives in *job (owned by
 * the caller) so nothing local needs to survive the jump. */
static int jpeg_run(JpegJob *job, Image *img, const uint8_t *data, size_t n, const char *label,
                    const ImageLimits *lim, Error *err) {
    struct jpeg_decompress_struct *ci = &job->cinfo;
    if (setjmp(job->jerr.jump)) return error_set(err, "%s: %s", label, job->jerr.msg);
    jpeg_create_decompress(ci);
    job->created = 1;
    job->progress.progress_monitor = jpeg_count_scans;
    ci->progress = &job->progress;
    jpeg_mem_src(ci, data, (unsigned long)n);
    jpeg_read_header(ci, TRUE);

    int cmyk = 0;
    if (ci->num_components == 1)
        ci->out_color_space = JCS_GRAYSCALE;
    else if (ci->num_components == 3)
        ci->out_color_space = JCS_RGB;
    else if (ci->num_components == 4)
        ci->out_color_space = JCS_CMYK, cmyk = 1;
    else
        return error_set(err, "%s: JPEG with %d components is not supported (only 1, 3 or 4)", label,
                         ci->num_components);
    if (image_check_size(ci->image_width, ci->image_height, lim, label, err)) return -1;

    jpeg_start_decompress(ci);
    int want = cmyk ? 4 : ci->num_components;
    if (ci->output_components != want || (int)ci->output_width != (int)ci->image_width ||
        ci->output_height != ci->image_height)
        return error_set(err, "%s: JPEG decoder gave an unexpected layout", label);
    if (image_alloc(img, (int)ci->output_width, (int)ci->output_height, cmyk ? 3 : want, 8, label, err)) return -1;
    if (cmyk) {
        job->cmyk_row = malloc((size_t)img->width * 4);
        if (!job->cmyk_row) return error_set(err, "%s: out of memory", label);
    }
    size_t stride = image_row_bytes(img);
    while (ci->output_scanline < ci->output_height) {
        uint8_t *dst = img->data + (size_t)ci->output_scanline * stride;
        JSAMPROW row = cmyk ? job->cmyk_row : dst;
        if (jpeg_read_scanlines(ci, &row, 1) != 1)
            return error_set(err, "%s: truncated JPEG (premature end of data)", label);
        if (cmyk) cmyk_row_to_rgb(dst, job->cmyk_row, img->width);
    }
    /* No jpeg_finish_decompress: every row is here, and what follows the
     * last scan (normally just EOI) changes no pixel. */
    return 0;
}

static int jpeg_decode(Image *img, const uint8_t *data, size_t n, const char *label, const ImageLimits *lim,
                       Error *err) {
    JpegJob *job = calloc(1, sizeof *job);
    if (!job) return error_set(err, "%s: out of memory starting the JPEG decoder", label);
    job->cinfo.err = jpeg_std_error(&job->jerr.pub);
    job->jerr.pub.error_exit = jpeg_fail;
    job->jerr.pub.emit_message = jpeg_message;
    int rc = jpeg_run(job, img, data, n, label, lim, err);
    if (job->created) jpeg_destroy_decompress(&job->cinfo);
    free(job->cmyk_row);
    free(job);
    if (rc) image_free(img);
    return rc;
}

/* ---- entry points ---- */

int image_decode(Image *img, const uint8_t *data, size_t n, const char *label, const ImageLimits *lim,
                 Error *err) {
    memset(img, 0, sizeof *img);
    if (is_png(data, n)) return png_decode(img, data, n, label, lim, err);
    if (is_jpeg(data, n)) return jpeg_decode(img, data, n, label, lim, err);
    return not_an_image(data, n, label, err);
}

int image_load(Image *img, const char *path, const ImageLimits *lim, Error *err) {
    memset(img, 0, sizeof *img);
    MappedFile f;
    if (file_map(&f, path, err)) return -1;
    int rc = image_decode(img, f.data, f.size, path, lim, err);
    file_unmap(&f);
    return rc;
}

/* ---- PIL's convert("RGB") ---- */

/* Sample i of the image as PIL holds it in 8 bits: 16-bit gray is mode "I"
 * and converts by clipping; every other 16-bit layout was already cut to
 * its high byte when PIL opened the file. */
static uint8_t pil_sample8(const Image *in, size_t i) {
    if (in->bits == 8) return in->data[i];
    uint16_t v;
    memcpy(&v, in->data + 2 * i, 2);
    if (in->channels == 1) return v > 255 ? 255 : (uint8_t)v;
    return (uint8_t)(v >> 8);
}

int image_to_rgb8(Image *out, const Image *in, Error *err) {
    memset(out, 0, sizeof *out);
    if (!in->data || in->channels < 1 || in->channels > 4 || (in->bits != 8 && in->bits != 16))
        return error_set(err, "image_to_rgb8: not a valid image (%d channels, %d bits)", in->channels, in->bits);
    if (image_alloc(out, in->width, in->height, 3, 8, "image_to_rgb8", err)) return -1;
    size_t npix = (size_t)in->width * (size_t)in->height;
    int ch = in->channels;
    for (size_t p = 0; p < npix; p++) {
        uint8_t *o = out->data + 3 * p;
        if (ch <= 2) {
            o[0] = o[1] = o[2] = pil_sample8(in, p * ch);
        } else {
            for (int c = 0; c < 3; c++) o[c] = pil_sample8(in, p * ch + c);
        }
    }
    return 0;
}
