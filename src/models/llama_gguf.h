/* Writing a LLaMA HF folder as a llama-architecture GGUF file, the way
 * llama.cpp's convert_hf_to_gguf.py does: the same metadata keys, tensor
 * names, q/k row permutation and tokenizer lists, so llama.cpp and vmed
 * (llama_load_gguf) both read the result. Reading is llama_load_gguf in
 * models/llama.h. */
#ifndef VMED_MODELS_LLAMA_GGUF_H
#define VMED_MODELS_LLAMA_GGUF_H

#include <stdint.h>

#include "base/error.h"

/* An output type of the converter. Most 2-D weights are stored as
 * matrix_type; 1-D ones (the norms) stay F32, as llama.cpp keeps them. The
 * quantized types follow llama.cpp's llama-quantize rules for the rest
 * (gguf_tensor_type). */
typedef struct {
    const char *name;     /* as --type spells it: "f16" */
    uint32_t file_type;   /* general.file_type (llama.cpp's LLAMA_FTYPE_*) */
    uint32_t matrix_type; /* GgmlType of most 2-D weights */
} GgufOutType;

/* The GgmlType llama.cpp's llama-quantize gives the 2-D tensor gguf_name
 * (cols values per row) of a model with n_layers layers, tied = no
 * output.weight, when converting to type:
 *  - output.weight (token_embd.weight when tied): Q6_K unless the type is
 *    Q8_0 (or F32/F16/BF16, which apply to everything);
 *  - q4_k_m: Q6_K for attn_v and ffn_down in the layers llama.cpp's
 *    use_more_bits picks (the first and last eighth, and every third one
 *    between);
 *  - rows that are not whole blocks: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K ->
 *    Q8_0, and F16 when even that does not divide them (llama.cpp refuses a
 *    Q4_0/Q8_0 tensor it cannot divide; its convert_hf_to_gguf.py falls back
 *    to F16, and so does vmed). */
uint32_t gguf_tensor_type(const GgufOutType *type, const char *gguf_name, int64_t cols, int n_layers, int tied);

/* The type named name ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m"), or NULL. */
const GgufOutType *gguf_out_type(const char *name);

/* Converts the LLaMA folder hf_dir (config.json, safetensors,
 * tokenizer.model) into out_path, streaming one tensor row block at a time
 * into a temporary file renamed at the end. */
int llama_convert_gguf(const char *hf_dir, const char *out_path, const GgufOutType *type, Error *err);

#endif
