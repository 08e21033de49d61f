#include "generate/generate.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- model adapters */

static int llama_decoder_forward(void *self, int slot, const int *tokens, int n, int pos, float *all_logits,
                                 Error *err) {
    LlamaDecoder *ld = self;
    return llama_forward(ld->model, &ld->states[slot], tokens, n, pos, all_logits, err);
}

static float *llama_decoder_logits(void *self, int slot) { return ((LlamaDecoder *)self)->states[slot].logits; }

static void llama_decoder_copy(void *self, int dst, int src, int from, int to) {
    LlamaDecoder *ld = self;
    llama_state_copy_positions(&ld->states[dst], &ld->states[src], ld->model, from, to);
}

Decoder llama_decoder(LlamaDecoder *ld, const Llama *m, LlamaState *states, int n) {
    ld->model = m;
    ld->states = states;
    ld->n_states = n;
    Decoder d = {ld, m->config.vocab_size, states[0].n_ctx, n, llama_decoder_forward, llama_decoder_logits,
                 llama_decoder_copy};
    return d;
}

static int git_decoder_forward(void *self, int slot, const int *tokens, int n, int pos, float *all_logits, Error *err) {
    GitDecoder *gd = self;
    return git_forward(gd->model, &gd->states[slot], tokens, n, pos, all_logits, err);
}

static float *git_decoder_logits(void *self, int slot) { return ((GitDecoder *)self)->states[slot].logits; }

static void git_decoder_copy(void *self, int dst, int src, int from, int to) {
    GitDecoder *gd = self;
    git_state_copy_text(&gd->states[dst], &gd->states[src], gd->model, from, to);
}

Decoder git_decoder(GitDecoder *gd, const Git *m, GitState *states, int n) {
    gd->model = m;
    gd->states = states;
    gd->n_states = n;
    Decoder d = {gd, m->config.vocab_size, states[0].max_text, n, git_decoder_forward, git_decoder_logits,
                 git_decoder_copy};
    return d;
}

static int pix2struct_decoder_forward(void *self, int slot, const int *tokens, int n, int pos, float *all_logits,
                                      Error *err) {
    Pix2StructDecoder *pd = self;
    return pix2struct_decode(pd->model, &pd->states[slot], tokens, n, pos, all_logits, err);
}

static float *pix2struct_decoder_logits(void *self, int slot) { return ((Pix2StructDecoder *)self)->states[slot].logits; }

static void pix2struct_decoder_copy(void *self, int dst, int src, int from, int to) {
    Pix2StructDecoder *pd = self;
    pix2struct_state_copy_text(&pd->states[dst], &pd->states[src], pd->model, from, to);
}

Decoder pix2struct_decoder(Pix2StructDecoder *pd, const Pix2Struct *m, Pix2StructState *states, int n) {
    pd->model = m;
    pd->states = states;
    pd->n_states = n;
    Decoder d = {pd, m->config.text.vocab_size, states[0].max_text, n, pix2struct_decoder_forward,
                 pix2struct_decoder_logits, pix2struct_decoder_copy};
    return d;
}

/* ------------------------------------------------------- sampling loop */

GenerateOptions generate_defaults(void) {
    GenerateOptions o;
    memset(&o, 0, sizeof o);
    o.max_new_tokens = 128;
    o.eos_id = 2;
    o.sampling = sampler_defaults();
    return o;
}

static int check_prompt(const Decoder *d, int n_prompt, int max_new, Error *err) {
    if (n_prompt < 1) return error_set(err, "the prompt is empty: at least one token (BOS) is needed");
    if (n_prompt >= d->n_ctx)
        return error_set(err, "the prompt is %d tokens but the context holds %d; shorten it or raise the context",
                         n_prompt, d->n_ctx);
    if (max_new < 0) return error_set(err, "max_new_tokens %d must be >= 0", max_new);
    return 0;
}

int generate(const Decoder *d, const int *prompt, int n_prompt, const GenerateOptions *o, int *out_ids,
             int *n_out, Error *err) {
    *n_out = 0;
    if (check_prompt(d, n_prompt, o->max_new_tokens, err)) return -1;
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
    if (d->forward(d->self, 0, prompt, n_prompt, 0, o->prompt_logits, err)) {
        rc = -1;
        goto done;
    }
    for (int step = 0; step < o->max_new_tokens; step++) {
        float *logits = d->logits(d->self, 0);
        if (o->step_logits) memcpy(o->step_logits + (size_t)step * V, logits, V * sizeof(float));
        int id = sampler_next(&sampler, logits, hist, n_hist);
        out_ids[(*n_out)++] = id;
        hist[n_hist++] = id;
        if (o->on_token && o->on_token(o->user, id)) break;
        if (id == o->eos_id) break;
        if (step + 1 == o->max_new_tokens) break;
        if (n_hist >= d->n_ctx) break; /* context full: stop, like running out of max_length */
        if (d->forward(d->self, 0, &id, 1, n_hist - 1, NULL, err)) {
            rc = -1;
            break;
        }
    }
done:
    free(hist);
    sampler_free(&sampler);
    return rc;
}
