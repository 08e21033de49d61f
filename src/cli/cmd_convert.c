/* vmed convert: a LLaMA HF folder to a llama.cpp GGUF file. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "models/llama_gguf.h"

static const char CONVERT_HELP[] =
    "usage: vmed convert HF_DIR OUT.gguf [--type f32|f16|bf16|q8_0|q4_0|q4_k_m]\n"
    "\n"
    "Writes the LLaMA-family folder HF_DIR (config.json, model.safetensors or its\n"
    "shards, tokenizer.model) as a GGUF file the way llama.cpp's convert_hf_to_gguf.py\n"
    "does: llama.* metadata, the tokenizer lists, blk.N.* tensor names and the q/k\n"
    "row permutation. llama.cpp and 'vmed ask --llm OUT.gguf' read it.\n"
    "  --type T   the 2-D weights' type (default f16); norms stay f32.\n"
    "             q8_0, q4_0 and q4_k_m quantize as llama.cpp's llama-quantize\n"
    "             does (ggml's reference quantizers, no importance matrix):\n"
    "             output.weight in Q6_K (q4_0, q4_k_m), attn_v and ffn_down of\n"
    "             some layers in Q6_K (q4_k_m), and rows that are not whole\n"
    "             blocks in the nearest type that fits (Q5_0, Q8_0, else F16).\n";

int cmd_convert(int argc, char **argv) {
    const char *cmd = "convert", *in = NULL, *out = NULL, *type_name = "f16";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(CONVERT_HELP, stdout);
            return 0;
        }
        if (strcmp(a, "--type") == 0) {
            if (!(type_name = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        }
    }
    if (!in || !out) return cli_usage_error(cmd, "HF_DIR and OUT.gguf are required");
    const GgufOutType *type = gguf_out_type(type_name);
    if (!type) return cli_usage_error(cmd, "--type must be f32, f16, bf16, q8_0, q4_0 or q4_k_m, got '%s'", type_name);
    Error err;
    if (llama_convert_gguf(in, out, type, &err)) return cli_fail(cmd, err.msg);
    fprintf(stderr, "vmed convert: wrote %s (%s)\n", out, type->name);
    return 0;
}
