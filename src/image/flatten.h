/* One pixel layout for models that must not care how an image was stored.
 *
 * The same picture reaches vmed as an RGBA PNG with a transparent
 * background, a gray PNG, or an RGB JPEG screenshot. A classifier fed the
 * raw samples could learn the storage mode instead of the content (the
 * router's training data has exactly that shortcut: charts are mostly RGBA,
 * scans mostly gray). image_flatten_rgb removes the difference: alpha is
 * composited on white, as a viewer shows it, and gray is replicated. */
#ifndef VMED_IMAGE_FLATTEN_H
#define VMED_IMAGE_FLATTEN_H

#include "base/error.h"
#include "image/image.h"

/* out = 8-bit RGB: each colour sample c with alpha a becomes
 * (c * a + 255 * (255 - a) + 127) / 255; 16-bit samples keep their high
 * byte first (so 16-bit gray is scaled, not clipped as image_to_rgb8 does).
 * A gray image and its RGB replica, or an RGBA image and the same image
 * already composited on white, give identical bytes. Free out with
 * image_free. */
int image_flatten_rgb(Image *out, const Image *in, Error *err);

#endif
