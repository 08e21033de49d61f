/* libFuzzer target for the PNG path: the bytes go to image_decode and
 * whatever decodes is converted to RGB, touching every pixel, and shrunk
 * with the PIL bicubic resize. The pixel limit keeps a small input from
 * asking for gigabytes; it is checked before any pixel memory exists.
 *
 * Almost every mutation of a PNG breaks a chunk CRC, and then libspng stops
 * at the first chunk, so the chunk CRCs are recomputed before decoding to
 * let mutations reach the chunk parser and the pixel decoder. (Bad CRCs are
 * covered by the unit tests.) */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "image/resize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void fix_chunk_crcs(uint8_t *d, size_t n) {
    size_t off = 8;
    while (off + 12 <= n) {
        size_t len = (size_t)d[off] << 24 | (size_t)d[off + 1] << 16 | (size_t)d[off + 2] << 8 | d[off + 3];
        if (len > n - off - 12) break;
        uint32_t crc = crc32_png(d + off + 4, len + 4);
        uint8_t *p = d + off + 8 + len;
        p[0] = (uint8_t)(crc >> 24), p[1] = (uint8_t)(crc >> 16), p[2] = (uint8_t)(crc >> 8), p[3] = (uint8_t)crc;
        off += 12 + len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    fix_chunk_crcs(copy, size);
    ImageLimits lim = {4u * 1024 * 1024};
    Image img, rgb;
    Error err;
    int rc = image_decode(&img, copy, size, "fuzz.png", &lim, &err);
    free(copy);
    if (rc != 0) {
        if (img.data) __builtin_trap(); /* a failed decode must leave nothing behind */
        return 0;
    }
    if ((uint64_t)img.width * (uint64_t)img.height > lim.max_pixels) __builtin_trap();
    if (image_to_rgb8(&rgb, &img, &err) != 0) __builtin_trap(); /* every decoded image converts */
    Image small;
    if (image_resize_pil_bicubic(&small, &rgb, 7, 5, &err) != 0) __builtin_trap();
    image_free(&small);
    image_free(&rgb);
    image_free(&img);
    return 0;
}
