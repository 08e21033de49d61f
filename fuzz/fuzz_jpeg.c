/* libFuzzer target for the JPEG path: any bytes go to image_decode (which
 * picks the decoder by the magic bytes, so mutations that break the JPEG
 * signature also exercise the sniffing) and whatever decodes is converted
 * to RGB, touching every pixel, and shrunk with the PIL bicubic resize.
 * The pixel limit keeps a small input from asking for gigabytes; it is
 * checked before any pixel memory exists. */
#include <stddef.h>
#include <stdint.h>

#include "image/image.h"
#include "image/resize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ImageLimits lim = {4u * 1024 * 1024};
    Image img, rgb;
    Error err;
    if (image_decode(&img, data, size, "fuzz.jpg", &lim, &err) != 0) {
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
