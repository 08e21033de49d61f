#include "generate/generate.h"

#include <stdlib.h>
#include <string.h>

static int llama_decoder_forward(void *self, const int *tokens, int n, int pos, float *all_logits, Error *err) {
    LlamaDecoder *ld = self;
    return llama_forward(ld->model, ld->state, tokens, n, pos, all_logits, err);
}

static float *llama_decoder_logits(void *self) { return ((LlamaDecoder *)self)->state->logits; }

Decoder llama_decoder(LlamaDecoder *ld, const Llama *m, LlamaState *s) {
    ld->model = m;
    ld->state = s;
    Decoder d = {ld, m->config.vocab_size, s->n_ctx, llama_decoder_forward, llama_decoder_logits};
    return d;
}

static int git_decoder_forward(void *self, const int *tokens, int n, int pos, float *all_logits, Error *err) {
    GitDecoder *gd = self;
    return git_forward(gd->model, gd->state, tokens, n, pos, all_logits, err);
}

static float *git_decoder_logits(void *self) { return ((GitDecoder *)self)->state->logits; }

Decoder git_decoder(GitDecoder *gd, const Git *m, GitState *s) {
    gd->model = m;
    gd->state = s;
    Decoder d = {gd, m->config.vocab_size, s->max_text, git_decoder_forward, git_decoder_logits};
    return d;
}

GenerateOptions generate_defaults(void) {
    GenerateOptions o;
    memset(&o, 0, sizeof o);
    o.max_new_tokens = 128;
    o.eos_id = 2;
    o.sampling = sampler_defaults();
    return o;
}

int generate(const Decoder *d, const int *prompt, int n_prompt, const GenerateOptions *o, int *out_ids,
             int *n_out, Error *err) {
    *n_out = 0;
    if (n_prompt < 1) return error_set(err, "the prompt is empty: at least one token (BOS) is needed");
    if (n_prompt >= d->n_ctx)
        return error_set(err, "the prompt is %d tokens but the context holds %d; shorten it or raise the context",
                         n_prompt, d->n_ctx);
    if (o->max_new_tokens < 0) return error_set(err, "max_new_tokens %d must be >= 0", o->max_new_tokens);
    Sampler sampler;
    if (sampler_init(&sampler, &o->sampling, d->vocab_size, err)) return -1;
    size_t V = (size_t)d->vocab_size;
    int max_hist = n_prompt + o->max_new_tokens;
    int *hist = malloc((size_t)max_hist * sizeof *hist);
    if (!hist) {
        sampler_free(&sampler);
        return error_set(err, "out of memory");
    }
    memcpy(hist, prompt, (size_t)n_prompt * sizeof *hist);
    int n_hist = n_prompt, rc = 0;
    if (d->forward(d->self, prompt, n_prompt, 0, o->prompt_logits, err)) {
        rc = -1;
        goto done;
    }
    for (int step = 0; step < o->max_new_tokens; step++) {
        float *logits = d->logits(d->self);
        if (o->step_logits) memcpy(o->step_logits + (size_t)step * V, logits, V * sizeof(float));
        int id = sampler_next(&sampler, logits, hist, n_hist);
        out_ids[(*n_out)++] = id;
        hist[n_hist++] = id;
        if (o->on_token && o->on_token(o->user, id)) break;
        if (id == o->eos_id) break;
        if (step + 1 == o->max_new_tokens) break;
        if (n_hist >= d->n_ctx) break; /* context full: stop, like running out of max_length */
        if (d->forward(d->self, &id, 1, n_hist - 1, NULL, err)) {
            rc = -1;
            break;
        }
    }
done:
    free(hist);
    sampler_free(&sampler);
    return rc;
}
