/* Random-weight GIT checkpoints in the HF layout (config.json,
 * preprocessor_config.json, vocab.txt, model.safetensors): for the
 * benchmarks at git-base's shape and for demos without a download. */
#ifndef VMED_MODELS_GIT_SYNTH_H
#define VMED_MODELS_GIT_SYNTH_H

#include <stdint.h>

#include "base/error.h"
#include "formats/hf_config.h"
#include "tensor/tensor.h"

/* "tiny" (the fixture's shape: 32 wide, 2+2 layers) or "base"
 * (microsoft/git-base: ViT-B/16 at 224, 6-layer 768-wide decoder, vocab
 * 30522). */
int git_synth_preset(GitConfig *c, const char *name, Error *err);
int git_synth_write(const GitConfig *c, DType dt, uint64_t seed, const char *dir, Error *err);

#endif
