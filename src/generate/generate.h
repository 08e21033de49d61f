/* The generation loop, shared by every decoder: prefill the prompt, then
 * pick, stream and feed back one token at a time until EOS, a stop request
 * from the callback, max_new_tokens or the end of the context. */
#ifndef VMED_GENERATE_GENERATE_H
#define VMED_GENERATE_GENERATE_H

#include "base/error.h"
#include "generate/sampler.h"
#include "models/git.h"
#include "models/llama.h"

/* What generate() needs of a model: run tokens at a position (filling its
 * cache) and hand back the last row of logits; optionally all rows. */
typedef struct {
    void *self;
    int vocab_size;
    int n_ctx;
    int (*forward)(void *self, const int *tokens, int n, int pos, float *all_logits, Error *err);
    float *(*logits)(void *self);
} Decoder;

typedef struct {
    const Llama *model;
    LlamaState *state;
} LlamaDecoder;

/* A Decoder over a loaded LLaMA and its run state; ld must outlive it. */
Decoder llama_decoder(LlamaDecoder *ld, const Llama *m, LlamaState *s);

typedef struct {
    const Git *model;
    GitState *state;
} GitDecoder;

/* A Decoder over GIT's text decoder; the image must be encoded first. Its
 * positions count text tokens, [CLS] at 0. */
Decoder git_decoder(GitDecoder *gd, const Git *m, GitState *s);

/* Called for every generated id (EOS included) before the next step;
 * returning non-zero stops generation. */
typedef int (*TokenCallback)(void *user, int id);

typedef struct {
    int max_new_tokens;
    int eos_id;                /* -1: never stop on a token */
    SamplerConfig sampling;
    TokenCallback on_token;
    void *user;
    /* Optional: when set, prompt_logits gets n_prompt rows and step_logits
     * one row per generated token (the logits it was chosen from, before
     * any penalty or temperature), vocab_size floats each. */
    float *prompt_logits;
    float *step_logits;
} GenerateOptions;

GenerateOptions generate_defaults(void);

/* out_ids must hold max_new_tokens ids; *n_out gets the count (EOS, when
 * produced, is the last). A prompt that leaves no room in the context is an
 * error naming both lengths. */
int generate(const Decoder *d, const int *prompt, int n_prompt, const GenerateOptions *o, int *out_ids,
             int *n_out, Error *err);

#endif
