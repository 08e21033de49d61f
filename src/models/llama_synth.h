/* Random-weight LLaMA checkpoints that vmed writes itself, in the HF layout
 * (config.json, generation_config.json, model.safetensors, tokenizer.model):
 * the built-in default before trained demo weights exist, and the models
 * benchmarks run at real shapes. Their output is noise by construction. */
#ifndef VMED_MODELS_LLAMA_SYNTH_H
#define VMED_MODELS_LLAMA_SYNTH_H

#include <stdint.h>

#include "base/error.h"
#include "formats/hf_config.h"
#include "tensor/tensor.h"

/* "tiny" (dim 64, 2 layers, vocab 1640), "134m" (dim 768, 12 layers, 12
 * heads, ffn 2048, vocab 32000), "7b" (LLaMA-7B: dim 4096, 32 layers, ffn
 * 11008, vocab 32000). */
int llama_synth_preset(LlamaConfig *c, const char *name, Error *err);

/* Writes the folder. Weights ~ U(-a, a) with variance 1/fan_in (embeddings
 * variance 1), norms 1, from a generator seeded by seed; dtype F32, F16 or
 * BF16. The safetensors file streams out, so a 13 GB model needs no RAM. */
int llama_synth_write(const LlamaConfig *c, DType dt, uint64_t seed, const char *dir, Error *err);

#endif
