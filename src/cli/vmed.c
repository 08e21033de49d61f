/* vmed: Visual Med-Alpaca in C. The command dispatcher and shared flag
 * parsing; each subcommand lives in its own cmd_*.c file. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threads.h"
#include "cli/cli.h"

static const char USAGE[] =
    "usage: vmed COMMAND [options]\n"
    "\n"
    "Visual Med-Alpaca in C: a biomedical question-answering pipeline for research.\n"
    "It gives no medical advice.\n"
    "\n"
    "commands:\n"
    "  ask        answer a question about an optional image: router, visual expert,\n"
    "             Alpaca prompt, Med-Alpaca\n"
    "  chat       ask questions one after another with the models loaded once\n"
    "  generate   continue a raw prompt with a LLaMA-family model\n"
    "  merge      merge a PEFT LoRA adapter into a LLaMA-family model (folder or GGUF)\n"
    "  caption    caption radiology images with Med-GIT\n"
    "  deplot     read the data table out of charts with DePlot\n"
    "  route      which expert an image goes to: radiology, chart or other\n"
    "  router     train, evaluate and cross-validate the image-type router\n"
    "  tokenize   print the token ids of a text as a JSON array\n"
    "  synth      write a random-weight LLaMA, GIT or Pix2Struct folder (demo, benchmarks)\n"
    "  bench      measure prefill and decode speed of a model\n"
    "  convert    write a LLaMA-family folder as a llama.cpp GGUF file\n"
    "  models     list the models directory (~/.cache/vmed) and choose defaults\n"
    "  pull       download a model repo from the Hugging Face Hub into it\n"
    "\n"
    "Run 'vmed COMMAND --help' for the options of a command.\n";

int cli_fail(const char *cmd, const char *msg) {
    fprintf(stderr, "vmed %s: %s\n", cmd, msg);
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vmed %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'vmed %s --help')\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "option '%s' needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_int(const char *cmd, const char *flag, const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return cli_usage_error(cmd, "option '%s' wants an integer in %ld..%ld, got '%s'", flag, min, max, s);
    *out = v;
    return 0;
}

int cli_float(const char *cmd, const char *flag, const char *s, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max))
        return cli_usage_error(cmd, "option '%s' wants a number in %g..%g, got '%s'", flag, min, max, s);
    *out = v;
    return 0;
}

int cli_is_help(const char *arg) { return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0; }

const char GEN_FLAGS_HELP[] =
    "generation:\n"
    "  --greedy                  argmax decoding (sampling options are then ignored)\n"
    "  -n, --max-new-tokens N    stop after N new tokens (default 128)\n"
    "  --temperature T           sampling temperature (default 0.1)\n"
    "  --top-k K                 keep the K most likely tokens, 0 = all (default 40)\n"
    "  --top-p P                 nucleus sampling mass (default 0.75)\n"
    "  --repetition-penalty R    HF-style penalty on tokens already seen (default 1 = off)\n"
    "  --seed S                  random seed (default 0)\n"
    "  --beams N                 HF beam search with N beams (num_beams; the original\n"
    "                            Med-Alpaca demo used 4); prints the text when it ends\n"
    "  -t, --threads N           worker threads (default: all CPUs)\n"
    "  --ctx N                   KV-cache length (default: prompt + max new tokens)\n";

void gen_flags_init(GenFlags *f) {
    f->gen = generate_defaults();
    f->n_threads = cpu_count();
    f->n_ctx = 0;
    f->num_beams = 1;
}

int gen_flags_parse(GenFlags *f, const char *cmd, int argc, char **argv, int *i) {
    const char *a = argv[*i], *v;
    long n;
    double x;
    if (strcmp(a, "--greedy") == 0) {
        f->gen.sampling.greedy = 1;
        return 1;
    }
    int is_n = strcmp(a, "-n") == 0 || strcmp(a, "--max-new-tokens") == 0;
    int is_t = strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0;
    if (strcmp(a, "--beams") == 0) {
        if (!(v = cli_value(cmd, argc, argv, i)) || cli_int(cmd, a, v, 1, 64, &n)) return -1;
        f->num_beams = (int)n;
        return 1;
    }
    if (is_n || is_t || strcmp(a, "--top-k") == 0 || strcmp(a, "--seed") == 0 || strcmp(a, "--ctx") == 0) {
        if (!(v = cli_value(cmd, argc, argv, i))) return -1;
        long max = is_t ? 1024 : strcmp(a, "--seed") == 0 ? 0x7fffffffL : 1L << 24;
        if (cli_int(cmd, a, v, is_n || strcmp(a, "--top-k") == 0 || strcmp(a, "--seed") == 0 ? 0 : 1, max, &n))
            return -1;
        if (is_n) f->gen.max_new_tokens = (int)n;
        else if (is_t) f->n_threads = (int)n;
        else if (strcmp(a, "--top-k") == 0) f->gen.sampling.top_k = (int)n;
        else if (strcmp(a, "--seed") == 0) f->gen.sampling.seed = (uint64_t)n;
        else f->n_ctx = (int)n;
        return 1;
    }
    if (strcmp(a, "--temperature") == 0 || strcmp(a, "--top-p") == 0 || strcmp(a, "--repetition-penalty") == 0) {
        if (!(v = cli_value(cmd, argc, argv, i))) return -1;
        double lo = strcmp(a, "--top-p") == 0 ? 1e-6 : 1e-6, hi = strcmp(a, "--top-p") == 0 ? 1.0 : 1e4;
        if (cli_float(cmd, a, v, lo, hi, &x)) return -1;
        if (strcmp(a, "--temperature") == 0) f->gen.sampling.temperature = (float)x;
        else if (strcmp(a, "--top-p") == 0) f->gen.sampling.top_p = (float)x;
        else f->gen.sampling.repetition_penalty = (float)x;
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"ask", cmd_ask},     {"chat", cmd_chat}, {"generate", cmd_generate}, {"merge", cmd_merge}, {"tokenize", cmd_tokenize},
                {"synth", cmd_synth}, {"bench", cmd_bench}, {"convert", cmd_convert},
                {"caption", cmd_caption}, {"deplot", cmd_deplot},
                {"models", cmd_models}, {"pull", cmd_pull},
                {"route", cmd_route}, {"router", cmd_router}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "vmed: unknown command '%s'\n\n%s", argv[1], USAGE);
    return EXIT_USAGE;
}
