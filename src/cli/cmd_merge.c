/* vmed merge: a LLaMA-family HF folder + a PEFT LoRA adapter -> one HF
 * folder with the update merged into the weights (peft's merge_and_unload). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/file.h"
#include "cli/cli.h"
#include "models/llama_gguf.h"
#include "models/llama_lora.h"

static const char MERGE_HELP[] =
    "usage: vmed merge --base DIR --lora DIR --out DIR|FILE.gguf [--type T]\n"
    "\n"
    "Merges the PEFT LoRA adapter in --lora (adapter_config.json,\n"
    "adapter_model.safetensors) into the LLaMA-family model in --base:\n"
    "W' = W + s * lora_B @ lora_A for every adapted linear, s = lora_alpha / r\n"
    "(lora_alpha / sqrt(r) with use_rslora), as peft's merge_and_unload does.\n"
    "--out gets a full HF folder: config.json and the tokenizer files copied from\n"
    "--base, and model.safetensors with every weight in the base's dtype. The merge\n"
    "goes one weight row at a time, so it needs no memory for the whole model.\n"
    "\n"
    "  --base DIR     the base model folder (HF layout)\n"
    "  --lora DIR     the adapter folder\n"
    "  --out DIR      the folder to write (created if absent; not --base or --lora)\n"
    "  --out F.gguf   a llama.cpp GGUF file instead, as `vmed convert` writes it:\n"
    "                 the merged folder is written beside it first (F.gguf.merge/,\n"
    "                 as large as the base) and removed at the end\n"
    "  --type T       the GGUF's type: f32, f16 (default), bf16, q8_0, q4_0, q4_k_m\n";

static int ends_with_gguf(const char *s) {
    size_t n = strlen(s);
    return n >= 5 && strcasecmp(s + n - 5, ".gguf") == 0;
}

int cmd_merge(int argc, char **argv) {
    const char *cmd = "merge", *base_dir = NULL, *lora_dir = NULL, *out_dir = NULL, *type_name = NULL;
    for (int i = 1; i < argc; i++) {
        const char **slot = strcmp(argv[i], "--base") == 0   ? &base_dir
                            : strcmp(argv[i], "--lora") == 0 ? &lora_dir
                            : strcmp(argv[i], "--out") == 0  ? &out_dir
                            : strcmp(argv[i], "--type") == 0 ? &type_name
                                                             : NULL;
        if (cli_is_help(argv[i])) {
            fputs(MERGE_HELP, stdout);
            return 0;
        } else if (slot) {
            if (!(*slot = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!base_dir) return cli_usage_error(cmd, "--base DIR is required");
    if (!lora_dir) return cli_usage_error(cmd, "--lora DIR is required");
    if (!out_dir) return cli_usage_error(cmd, "--out DIR is required");
    int gguf = ends_with_gguf(out_dir);
    const GgufOutType *type = gguf_out_type(type_name ? type_name : "f16");
    if (type_name && !gguf) return cli_usage_error(cmd, "--type applies to a GGUF --out only");
    if (!type) return cli_usage_error(cmd, "--type must be f32, f16, bf16, q8_0, q4_0 or q4_k_m, got '%s'", type_name);
    /* GGUF output goes through a merged HF folder, which vmed convert then
     * reads: one converter, whatever the source. */
    char folder[1100];
    snprintf(folder, sizeof folder, "%s%s", out_dir, gguf ? ".merge" : "");
    Error err;
    Llama base;
    if (llama_load(&base, base_dir, &err)) return cli_fail(cmd, err.msg);
    LlamaLora *lora = NULL;
    int rc = 1;
    if (llama_lora_load(&lora, &base, lora_dir, &err)) {
        cli_fail(cmd, err.msg);
    } else {
        if (lora->warning[0]) fprintf(stderr, "vmed %s: warning: %s\n", cmd, lora->warning);
        if (llama_lora_write_merged(&base, lora, folder, &err)) {
            cli_fail(cmd, err.msg);
        } else if (gguf && llama_convert_gguf(folder, out_dir, type, &err)) {
            cli_fail(cmd, err.msg);
        } else {
            printf("merged %d modules of %s into %s%s\n", lora->n_adapted, lora_dir, out_dir,
                   gguf ? "" : "/model.safetensors");
            rc = 0;
        }
        if (gguf && dir_remove_tree(folder, &err)) rc = cli_fail(cmd, err.msg);
    }
    llama_lora_free(lora);
    llama_free(&base);
    return rc;
}
