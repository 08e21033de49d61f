/* Generation, shared by every decoder: sampling or greedy decoding (prefill
 * the prompt, then pick, stream and feed back one token at a time), and
 * beam search as HF generate(num_beams=N) does it. */
#ifndef VMED_GENERATE_GENERATE_H
#define VMED_GENERATE_GENERATE_H

#include "base/error.h"
#include "generate/sampler.h"
#include "models/git.h"
#include "models/llama.h"
#include "models/pix2struct.h"

/* What generation needs of a model. A decoder holds n_slots independent
 * sequences (one KV cache each): sampling uses slot 0, beam search one slot
 * per beam. forward runs tokens at positions pos.. of a slot and leaves the
 * last row of logits for logits(); all_logits, when not NULL, gets every
 * row. copy_rows copies the cached positions [from, to) of one slot into
 * another when beams are reordered. */
typedef struct {
    void *self;
    int vocab_size;
    int n_ctx;
    int n_slots;
    int (*forward)(void *self, int slot, const int *tokens, int n, int pos, float *all_logits, Error *err);
    float *(*logits)(void *self, int slot);
    void (*copy_rows)(void *self, int dst, int src, int from, int to);
} Decoder;

typedef struct {
    const Llama *model;
    LlamaState *states;
    int n_states;
} LlamaDecoder;

/* A Decoder over a loaded LLaMA and n run states (1 unless beam search). */
Decoder llama_decoder(LlamaDecoder *ld, const Llama *m, LlamaState *states, int n);

typedef struct {
    const Git *model;
    GitState *states;
    int n_states;
} GitDecoder;

/* A Decoder over GIT's text decoder; every state must hold the encoded
 * image (git_copy_image). Positions count text tokens, [CLS] at 0. */
Decoder git_decoder(GitDecoder *gd, const Git *m, GitState *states, int n);

typedef struct {
    const Pix2Struct *model;
    Pix2StructState *states;
    int n_states;
} Pix2StructDecoder;

/* A Decoder over Pix2Struct's text decoder; every state must hold the
 * encoded image (pix2struct_state_copy_encoder). Position 0 holds the
 * decoder start token, which is the prompt. */
Decoder pix2struct_decoder(Pix2StructDecoder *pd, const Pix2Struct *m, Pix2StructState *states, int n);

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
 * error naming both lengths. Uses slot 0. */
int generate(const Decoder *d, const int *prompt, int n_prompt, const GenerateOptions *o, int *out_ids,
             int *n_out, Error *err);

typedef struct {
    int num_beams;
    int max_new_tokens;   /* HF max_length = prompt + this */
    float length_penalty; /* score = sum logprob / generated_len^length_penalty (HF default 1) */
    int early_stopping;   /* HF early_stopping=True: stop once num_beams hypotheses ended */
    int eos_id;
} BeamOptions;

BeamOptions beam_defaults(void);

/* HF beam search (transformers 4.36 BeamSearchScorer, batch 1, one
 * returned sequence): out_ids gets the new ids of the best hypothesis, with
 * EOS appended when it ended before max_length, as HF does; *score its
 * length-normalised log-probability. Needs d->n_slots >= num_beams. */
int beam_search(const Decoder *d, const int *prompt, int n_prompt, const BeamOptions *o, int *out_ids, int *n_out,
                float *score, Error *err);

#endif
