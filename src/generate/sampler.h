/* Choosing the next token from logits, with the logits processors of HF
 * generate() applied in its order: repetition penalty, then temperature,
 * top-k and top-p, then a draw from the softmax. Greedy is argmax. */
#ifndef VMED_GENERATE_SAMPLER_H
#define VMED_GENERATE_SAMPLER_H

#include <stdint.h>

#include "base/error.h"

typedef struct {
    int greedy;               /* argmax; the other fields are ignored (except repetition_penalty) */
    float temperature;        /* > 0 */
    int top_k;                /* 0 = off */
    float top_p;              /* 1 = off */
    float repetition_penalty; /* 1 = off; HF's CTRL-style penalty */
    uint64_t seed;
} SamplerConfig;

/* The defaults of the original Med-Alpaca generate(): temperature 0.1,
 * top_p 0.75, top_k 40, no repetition penalty, seed 0. */
SamplerConfig sampler_defaults(void);
int sampler_check(const SamplerConfig *c, Error *err);

typedef struct {
    SamplerConfig cfg;
    uint64_t rng;
    int vocab_size;
    int *cand;        /* [vocab] candidate ids */
    float *prob;      /* [vocab] */
} Sampler;

int sampler_init(Sampler *s, const SamplerConfig *cfg, int vocab_size, Error *err);
void sampler_free(Sampler *s);

/* Picks the next id. logits (vocab_size floats) is modified in place.
 * history: every id so far (prompt and generated), for the penalty. */
int sampler_next(Sampler *s, float *logits, const int *history, int n_history);

/* Uniform float in [0, 1) from the sampler's generator (xorshift64*). */
float sampler_uniform(Sampler *s);

#endif
