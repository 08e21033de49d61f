/* Random-weight Pix2Struct checkpoints (config.json,
 * preprocessor_config.json, model.safetensors) at DePlot's shape, for the
 * chart-to-table benchmark. They carry no tokenizer: the benchmark never
 * decodes text, and `vmed deplot` refuses them with a message naming the
 * missing spiece.model. */
#ifndef VMED_MODELS_PIX2STRUCT_SYNTH_H
#define VMED_MODELS_PIX2STRUCT_SYNTH_H

#include <stdint.h>

#include "base/error.h"
#include "tensor/tensor.h"

/* preset "tiny" (the fixture's shape) or "base" (google/deplot:
 * Pix2Struct-base, 12+12 layers, 768 wide, vocab 50244). */
int pix2struct_synth_write(const char *preset, DType dt, uint64_t seed, const char *dir, Error *err);

#endif
