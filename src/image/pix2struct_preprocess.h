/* Pix2StructImageProcessor (transformers 4.36), the image half of DePlot's
 * processor: an RGB image with its header already drawn on (render_header)
 * becomes max_patches rows of flattened patches plus an attention mask.
 *
 * Steps, in transformers' order (which is not the usual one):
 *   normalize  (x - mean) / max(std, 1/sqrt(N)) with ONE mean and std over
 *              every pixel and channel of the 8-bit image (N values, no
 *              1/255), computed in float32 exactly as numpy 1.24 does
 *              (pairwise sums in blocks of 8192) - BEFORE resizing;
 *   resize     torch.nn.functional.interpolate(mode="bilinear",
 *              align_corners=False, antialias=True) (torch 1.13) to
 *              rows*ph x cols*pw, where scale = sqrt(max_patches * ph/H *
 *              pw/W), rows = max(min(floor(scale*H/ph), max_patches), 1),
 *              cols likewise: a triangle filter stretched by the downscale
 *              factor, float32 weights, width first, then height;
 *   patches    row-major over the grid, each flattened as (py, px, channel)
 *              after two columns holding its 1-based row and column ids;
 *              rows past rows*cols are zeros;
 *   mask       1 where a row's float32 sum is non-zero (HF's rule; in
 *              practice exactly the rows*cols real patches).
 * The resize differs from torch by float rounding only (about 1 ulp of the
 * normalised values: torch's own build contracts some products into FMAs);
 * everything else is bit-exact. */
#ifndef VMED_IMAGE_PIX2STRUCT_PREPROCESS_H
#define VMED_IMAGE_PIX2STRUCT_PREPROCESS_H

#include "base/error.h"
#include "image/image.h"

/* max_patches is refused outside 1..this. */
#define PIX2STRUCT_MAX_PATCHES (1 << 20)
/* patch sides are refused outside 1..this. */
#define PIX2STRUCT_MAX_PATCH_SIDE 256
/* Pix2StructProcessor.__call__'s own max_patches, which overrides the
 * value in preprocessor_config.json unless the caller passes one. */
#define PIX2STRUCT_PROCESSOR_MAX_PATCHES 2048

typedef struct {
    int is_vqa;          /* 1: a header text is rendered on the image first (DePlot) */
    int max_patches;     /* the file's value; see PIX2STRUCT_PROCESSOR_MAX_PATCHES */
    int patch_height, patch_width;
    int do_normalize;    /* 0: the raw 0..255 values are resized (HF with torch 1.13 cannot do this) */
    int do_convert_rgb;  /* informational: the input is already RGB (image_to_rgb8) */
} Pix2StructProcessorConfig;

/* Reads dir/preprocessor_config.json. Absent keys take transformers'
 * defaults (is_vqa false, max_patches 2048, patch 16x16, do_normalize and
 * do_convert_rgb true); present ones are type- and range-checked, and a
 * processor type other than Pix2Struct's is refused. */
int pix2struct_processor_config_load(Pix2StructProcessorConfig *c, const char *dir, Error *err);

/* Floats in one flattened patch row: 2 + patch_height * patch_width * 3. */
int pix2struct_patch_dim(const Pix2StructProcessorConfig *c);

/* The patch grid for a width x height image, as HF chooses it. */
int pix2struct_grid(const Pix2StructProcessorConfig *c, int width, int height, int max_patches, int *rows,
                    int *cols, Error *err);

/* The mean and std (already max(std, 1/sqrt(N))) normalize uses, as the
 * float32 values numpy computes. Exposed for tests. */
int pix2struct_image_stats(const Image *rgb8, float *mean, float *std, Error *err);

/* out: max_patches x pix2struct_patch_dim(c) floats; attention_mask:
 * max_patches floats (may be NULL); *n_valid = rows * cols, the real
 * patches; n_valid, rows and cols may be NULL. rgb8_with_header: 8-bit
 * RGB, the output of render_header for is_vqa models. max_patches must be
 * 1..PIX2STRUCT_MAX_PATCHES (pass PIX2STRUCT_PROCESSOR_MAX_PATCHES to do
 * what Pix2StructProcessor does by default). */
int pix2struct_preprocess(float *out, float *attention_mask, int *n_valid, int *rows, int *cols,
                          const Image *rgb8_with_header, const Pix2StructProcessorConfig *c, int max_patches,
                          Error *err);

#endif
