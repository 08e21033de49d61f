/* Composite on white and replicate gray: see flatten.h. */
#include "image/flatten.h"

#include <string.h>

static unsigned sample8(const Image *img, size_t i) {
    if (img->bits == 8) return img->data[i];
    uint16_t v;
    memcpy(&v, img->data + 2 * i, 2);
    return v >> 8;
}

static uint8_t over_white(unsigned c, unsigned a) { return (uint8_t)((c * a + 255u * (255u - a) + 127u) / 255u); }

int image_flatten_rgb(Image *out, const Image *in, Error *err) {
    memset(out, 0, sizeof *out);
    if (!in->data || in->channels < 1 || in->channels > 4 || (in->bits != 8 && in->bits != 16))
        return error_set(err, "image_flatten_rgb: not a valid image (%d channels, %d bits)", in->channels,
                         in->bits);
    if (image_alloc(out, in->width, in->height, 3, 8, "image_flatten_rgb", err)) return -1;
    size_t npix = (size_t)in->width * (size_t)in->height;
    int ch = in->channels, has_alpha = ch == 2 || ch == 4, n_colour = ch <= 2 ? 1 : 3;
    for (size_t p = 0; p < npix; p++) {
        uint8_t *o = out->data + 3 * p;
        unsigned a = has_alpha ? sample8(in, p * ch + (size_t)(ch - 1)) : 255u;
        for (int c = 0; c < 3; c++) o[c] = over_white(sample8(in, p * ch + (size_t)(n_colour == 1 ? 0 : c)), a);
    }
    return 0;
}
