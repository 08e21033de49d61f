/* vmed synth: a random-weight LLaMA folder that vmed writes itself. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "models/git_synth.h"
#include "models/llama_synth.h"
#include "models/pix2struct_synth.h"

static const char SYNTH_HELP[] =
    "usage: vmed synth --out DIR [--arch llama|git] [--preset NAME] [--dtype f32|f16|bf16] [--seed N]\n"
    "                  [--dim N] [--layers N] [--heads N] [--kv-heads N] [--ffn N] [--vocab N] [--ctx N]\n"
    "\n"
    "Writes a checkpoint with random weights in the Hugging Face layout. Its output\n"
    "is noise: it exists to run vmed end to end without downloading anything, and\n"
    "to benchmark real shapes.\n"
    "  llama (default): config.json, generation_config.json, model.safetensors and a\n"
    "    tokenizer.model with a synthetic vocabulary. Presets: tiny (dim 64, 2 layers,\n"
    "    vocab 1640, default), 134m (dim 768, 12 layers, ffn 2048, vocab 32000),\n"
    "    7b (LLaMA-7B's shape; 13.5 GB in f16). The shape options override them.\n"
    "  git: a GitForCausalLM (Med-GIT) folder with preprocessor_config.json and a\n"
    "    synthetic vocab.txt. Presets: tiny (the fixture's shape, default), base\n"
    "    (microsoft/git-base: ViT-B/16, 6-layer 768-wide decoder, vocab 30522).\n"
    "  pix2struct: a DePlot-shaped folder with a synthetic T5-style spiece.model.\n"
    "    Presets: tiny (the fixture's shape, default), base (google/deplot:\n"
    "    12+12 layers, 768 wide, vocab 50244).\n";

int cmd_synth(int argc, char **argv) {
    const char *cmd = "synth", *out = NULL, *preset = "tiny", *dtype = "f32", *arch = "llama";
    long seed = 1, dim = 0, layers = 0, heads = 0, kv = 0, ffn = 0, vocab = 0, ctx = 0;
    struct {
        const char *flag;
        long *dst;
        long min, max;
    } nums[] = {{"--seed", &seed, 0, 0x7fffffff}, {"--dim", &dim, 2, 65536},     {"--layers", &layers, 1, 1024},
                {"--heads", &heads, 1, 1024},     {"--kv-heads", &kv, 1, 1024}, {"--ffn", &ffn, 1, 1 << 20},
                {"--vocab", &vocab, 512, 1 << 22}, {"--ctx", &ctx, 1, 1 << 20}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            fputs(SYNTH_HELP, stdout);
            return 0;
        }
        int matched = 0;
        for (size_t j = 0; j < sizeof nums / sizeof nums[0] && !matched; j++) {
            if (strcmp(a, nums[j].flag) != 0) continue;
            if (!(v = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
            if (cli_int(cmd, a, v, nums[j].min, nums[j].max, nums[j].dst)) return EXIT_USAGE;
            matched = 1;
        }
        if (matched) continue;
        if (strcmp(a, "--out") == 0) {
            if (!(out = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--preset") == 0) {
            if (!(preset = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--arch") == 0) {
            if (!(arch = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--dtype") == 0) {
            if (!(dtype = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
    }
    if (!out) return cli_usage_error(cmd, "--out DIR is required");
    DType dt;
    if (strcmp(dtype, "f32") == 0) dt = DT_F32;
    else if (strcmp(dtype, "f16") == 0) dt = DT_F16;
    else if (strcmp(dtype, "bf16") == 0) dt = DT_BF16;
    else return cli_usage_error(cmd, "--dtype must be f32, f16 or bf16, got '%s'", dtype);
    Error err;
    if (strcmp(arch, "git") == 0) {
        if (dim || layers || heads || kv || ffn || vocab || ctx)
            return cli_usage_error(cmd, "the shape options apply to --arch llama only");
        GitConfig g;
        if (git_synth_preset(&g, preset, &err)) return cli_usage_error(cmd, "%s", err.msg);
        if (git_synth_write(&g, dt, (uint64_t)seed, out, &err)) return cli_fail(cmd, err.msg);
        fprintf(stderr, "vmed synth: wrote %s (random weights: its captions are noise)\n", out);
        return 0;
    }
    if (strcmp(arch, "pix2struct") == 0) {
        if (dim || layers || heads || kv || ffn || vocab || ctx)
            return cli_usage_error(cmd, "the shape options apply to --arch llama only");
        if (pix2struct_synth_write(preset, dt, (uint64_t)seed, out, &err)) {
            if (strstr(err.msg, "unknown Pix2Struct preset")) return cli_usage_error(cmd, "%s", err.msg);
            return cli_fail(cmd, err.msg);
        }
        fprintf(stderr, "vmed synth: wrote %s (random weights and a synthetic vocabulary: its tables are noise)\n", out);
        return 0;
    }
    if (strcmp(arch, "llama") != 0)
        return cli_usage_error(cmd, "--arch must be llama, git or pix2struct, got '%s'", arch);
    LlamaConfig c;
    if (llama_synth_preset(&c, preset, &err)) return cli_usage_error(cmd, "%s", err.msg);
    if (dim) c.dim = (int)dim;
    if (layers) c.n_layers = (int)layers;
    if (heads) c.n_heads = c.n_kv_heads = (int)heads;
    if (kv) c.n_kv_heads = (int)kv;
    if (ffn) c.hidden_dim = (int)ffn;
    if (vocab) c.vocab_size = (int)vocab;
    if (ctx) c.max_pos = (int)ctx;
    if (c.dim % c.n_heads || (c.dim / c.n_heads) % 2 || c.n_heads % c.n_kv_heads)
        return cli_usage_error(cmd, "dim %d, heads %d, kv-heads %d do not fit: dim/heads must be even and heads a "
                               "multiple of kv-heads", c.dim, c.n_heads, c.n_kv_heads);
    c.head_dim = c.dim / c.n_heads;
    if (llama_synth_write(&c, dt, (uint64_t)seed, out, &err)) return cli_fail(cmd, err.msg);
    fprintf(stderr, "vmed synth: wrote %s (random weights: its answers are noise)\n", out);
    return 0;
}
