/* Writing a LLaMA HF folder as a llama-architecture GGUF file, the way
 * llama.cpp's convert_hf_to_gguf.py does: the same metadata keys, tensor
 * names, q/k row permutation and tokenizer lists, so llama.cpp and vmed
 * (llama_load_gguf) both read the result. Reading is llama_load_gguf in
 * models/llama.h. */
#ifndef VMED_MODELS_LLAMA_GGUF_H
#define VMED_MODELS_LLAMA_GGUF_H

#include <stdint.h>

#include "base/error.h"

/* An output type of the converter. 2-D weights are stored as matrix_type;
 * 1-D ones (the norms) stay F32, as llama.cpp keeps them. */
typedef struct {
    const char *name;     /* as --type spells it: "f16" */
    uint32_t file_type;   /* general.file_type (llama.cpp's LLAMA_FTYPE_*) */
    uint32_t matrix_type; /* GgmlType of the 2-D weights */
    /* Encodes n f32 values (a multiple of the type's block size) into out;
     * NULL where vmed has no quantizer for the type yet. */
    void (*encode_row)(const float *x, void *out, int64_t n);
} GgufOutType;

/* The type named name ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m"), or NULL. */
const GgufOutType *gguf_out_type(const char *name);

/* Converts the LLaMA folder hf_dir (config.json, safetensors,
 * tokenizer.model) into out_path, streaming one tensor row block at a time
 * into a temporary file renamed at the end. */
int llama_convert_gguf(const char *hf_dir, const char *out_path, const GgufOutType *type, Error *err);

#endif
