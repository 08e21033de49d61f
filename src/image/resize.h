/* Resampling exactly as the Python libraries behind the HF processors do
 * it, because a model sees the numbers, not the picture: a resize that is
 * "as good" but not the same moves every logit.
 *
 * PIL (Pillow's Image.resize, used by CLIPImageProcessor and by the
 * Pix2Struct header resize) resamples 8-bit images with a separable
 * convolution whose filter is stretched by the downscale factor (so it
 * antialiases), with 22-bit fixed-point weights, a horizontal pass into an
 * 8-bit intermediate, then a vertical pass. The functions here reproduce it
 * bit for bit. torch.nn.functional.interpolate (float, used by Pix2Struct)
 * is a different algorithm and will get its own function here. */
#ifndef VMED_IMAGE_RESIZE_H
#define VMED_IMAGE_RESIZE_H

#include "base/error.h"
#include "image/image.h"

/* PIL Image.resize((out_w, out_h), resample=Image.BICUBIC) on an 8-bit gray
 * or RGB image (cubic a = -0.5, support 2 x the downscale factor). Images
 * with alpha are refused: PIL premultiplies them first. out is a new image. */
int image_resize_pil_bicubic(Image *out, const Image *in, int out_w, int out_h, Error *err);

#endif
