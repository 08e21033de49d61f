/* Shared pieces of the vmed command line: option values, errors, help. */
#ifndef VMED_CLI_CLI_H
#define VMED_CLI_CLI_H

#include <stdint.h>

#include "generate/generate.h"

/* Exit codes: 0 ok, 1 the work failed (bad model, bad input), 2 bad usage. */
enum { EXIT_USAGE = 2 };

/* Prints "vmed CMD: message" to stderr and returns exit code 1 or 2. */
int cli_fail(const char *cmd, const char *msg);
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* argv[*i] is a flag needing a value: returns it and advances *i, or NULL
 * after reporting the missing value. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
int cli_int(const char *cmd, const char *flag, const char *s, long min, long max, long *out);
int cli_float(const char *cmd, const char *flag, const char *s, double min, double max, double *out);
int cli_is_help(const char *arg);

/* Generation flags shared by `generate` and `ask`. */
typedef struct {
    GenerateOptions gen;
    int n_threads;
    int n_ctx; /* 0: prompt + max_new_tokens, capped by the model */
    int num_beams; /* > 1: HF beam search instead of sampling */
} GenFlags;

void gen_flags_init(GenFlags *f);
/* 1 if argv[*i] was a generation flag (consumed), 0 if not, -1 on a bad value. */
int gen_flags_parse(GenFlags *f, const char *cmd, int argc, char **argv, int *i);
extern const char GEN_FLAGS_HELP[];

int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_ask(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_caption(int argc, char **argv);
int cmd_deplot(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_router(int argc, char **argv);
int cmd_route(int argc, char **argv);

#endif
