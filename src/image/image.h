/* Images: PNG and JPEG decoding into one plain pixel layout, and the
 * conversion to 8-bit RGB that every model here starts from.
 *
 * The reference for behaviour is the original system, which opens images
 * with PIL (Pillow 9.4) and calls convert("RGB"). So the decoders keep what
 * the file holds (gray stays gray, 16 bits stay 16 bits, alpha stays) and
 * image_to_rgb8 reproduces PIL's conversion rules, including the odd ones
 * (16-bit gray is clipped, not scaled). A later DICOM loader fills the same
 * struct.
 *
 * Files are untrusted: the size in the header is checked against a pixel
 * limit before any pixel memory is allocated (a 100-byte PNG can claim to be
 * 100000x100000), and corrupt, truncated or unknown data gives an error that
 * names the file, never a crash or exit. */
#ifndef VMED_IMAGE_IMAGE_H
#define VMED_IMAGE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct {
    int width, height;
    int channels;  /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    int bits;      /* 8 or 16 */
    uint8_t *data; /* row-major interleaved; 16-bit samples as native uint16_t */
} Image;

/* Decompression-bomb guard. PIL refuses images of more than
 * 2 * Image.MAX_IMAGE_PIXELS pixels, MAX_IMAGE_PIXELS being
 * 1024 * 1024 * 1024 // 4 // 3 = 89478485 (a 1 GiB RGBA budget / 3), so
 * 178956970 is the largest image the original system could open: every image
 * it accepts is accepted here, and nothing bigger. */
#define IMAGE_DEFAULT_MAX_PIXELS 178956970u

typedef struct {
    uint64_t max_pixels; /* images with more pixels (width * height) are refused */
} ImageLimits;

ImageLimits image_default_limits(void);

/* Reads a PNG or JPEG file, recognised by its first bytes, not by its
 * extension. lim may be NULL for the defaults. On failure img is empty. */
int image_load(Image *img, const char *path, const ImageLimits *lim, Error *err);

/* The same for n bytes in memory; label names them in messages.
 *
 * PNG: every bit depth and colour type, interlaced or not. Gray of 1, 2 or
 * 4 bits is scaled to 8 (x255, x85, x17, as PIL does); palette images are
 * expanded to RGB, or RGBA when they have a tRNS chunk; indices past the
 * palette read PIL's default grey ramp (index i is (i,i,i)). 16-bit files
 * stay 16-bit. tRNS of gray and RGB images, gamma and colour profiles are
 * ignored, as PIL ignores them. CRC and Adler-32 errors are errors.
 *
 * JPEG: baseline, progressive, restart markers; gray gives 1 channel, YCbCr
 * and RGB give 3; CMYK and YCCK are converted to RGB at once with PIL's
 * formula (Image has no CMYK layout), see image.c. The EXIF orientation is
 * not applied (PIL's Image.open does not either). */
int image_decode(Image *img, const uint8_t *data, size_t n, const char *label, const ImageLimits *lim,
                 Error *err);

void image_free(Image *img);

/* Allocates width x height x channels samples of bits (zeroed). Refuses
 * sizes that overflow; label names the image in messages. */
int image_alloc(Image *img, int width, int height, int channels, int bits, const char *label, Error *err);

/* Bytes in one row and in the whole image. */
size_t image_row_bytes(const Image *img);
size_t image_size_bytes(const Image *img);

/* Fails unless 0 < width, height and width * height <= lim->max_pixels. */
int image_check_size(int64_t width, int64_t height, const ImageLimits *lim, const char *label, Error *err);

/* PIL's Image.convert("RGB") on the image as PIL opens it:
 *   - gray is replicated; 16-bit gray (PIL mode "I") is CLIPPED to 0..255,
 *     not scaled: 1000 becomes 255;
 *   - alpha is dropped without compositing (transparent pixels keep their
 *     colour);
 *   - 16-bit RGB, RGBA and gray+alpha keep the high byte of each sample
 *     (PIL opens them as 8-bit "RGB"/"RGBA" through its ";16B" raw modes).
 * out is a new 8-bit, 3-channel image; free it with image_free. */
int image_to_rgb8(Image *out, const Image *in, Error *err);

#endif
