/* CLIPImageProcessor (transformers 4.36), the image half of GitProcessor:
 * the pixel_values a CLIP ViT (and so Med-GIT) is fed.
 *
 * Steps, each only when its do_* flag is set, in transformers' order:
 *   resize     the short side to size.shortest_edge, the long side to
 *              int(N * long / short) (truncated), or to size.height x
 *              size.width; PIL BICUBIC on the 8-bit RGB image;
 *   crop       center crop to crop_size at top = (H - h) // 2,
 *              left = (W - w) // 2 (floor division); a crop larger than the
 *              image pads it with zeros (black, before rescale/normalize);
 *   rescale    x * rescale_factor, in double, stored as float32;
 *   normalize  (x - mean[c]) / std[c] in float32;
 * and the result is laid out channel-first (CHW), float32. */
#ifndef VMED_IMAGE_CLIP_PREPROCESS_H
#define VMED_IMAGE_CLIP_PREPROCESS_H

#include "base/error.h"
#include "image/image.h"

typedef struct {
    int do_convert_rgb;  /* informational: clip_preprocess takes an RGB image, made by image_to_rgb8 */
    int do_resize;
    int shortest_edge;   /* > 0: resize the short side to it; 0: resize to size_height x size_width */
    int size_height, size_width;
    int resample;        /* PIL filter number; only 3 (BICUBIC) is implemented */
    int do_center_crop;
    int crop_height, crop_width;
    int do_rescale;
    double rescale_factor;
    int do_normalize;
    double image_mean[3], image_std[3];
} ClipProcessorConfig;

/* Reads dir/preprocessor_config.json. Keys that are absent take
 * CLIPImageProcessor's own defaults, as transformers does; present keys are
 * type- and range-checked. size and crop_size may be objects
 * ({"shortest_edge": N}, {"height": H, "width": W}), plain integers (size:
 * shortest edge; crop_size: square) or [height, width] lists; image_mean and
 * image_std a number or a list of 3. A resample other than 3 and an
 * image_processor_type other than CLIP's are refused. */
int clip_processor_config_load(ClipProcessorConfig *c, const char *dir, Error *err);

/* The size clip_preprocess gives for an in_w x in_h image. With
 * do_center_crop it is crop_size, except in one corner case copied from
 * transformers: a crop larger than the image by an odd number of pixels
 * comes out one pixel short on that side. */
int clip_output_size(const ClipProcessorConfig *c, int in_w, int in_h, int *out_w, int *out_h, Error *err);

/* out: 3 x out_h x out_w floats (clip_output_size), channel-first.
 * rgb8: 8-bit, 3 channels (image_to_rgb8 makes one from any image). */
int clip_preprocess(float *out, const Image *rgb8, const ClipProcessorConfig *cfg, Error *err);

#endif
