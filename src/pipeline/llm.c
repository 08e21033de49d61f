#include "pipeline/llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"

int llm_load(Llm *l, const char *path, const char *lora_dir, Error *err) {
    memset(l, 0, sizeof *l);
    snprintf(l->path, sizeof l->path, "%s", path);
    if (llama_load(&l->model, path, err)) return -1;
    if (tokenizer_load(&l->tok, path, err)) {
        llama_free(&l->model);
        return -1;
    }
    if (tokenizer_vocab_size(l->tok) > l->model.config.vocab_size) {
        error_set(err, "%s: the tokenizer has %d tokens but the model's vocab_size is %d", path,
                  tokenizer_vocab_size(l->tok), l->model.config.vocab_size);
        llm_free(l);
        return -1;
    }
    if (lora_dir && (llama_lora_load(&l->lora, &l->model, lora_dir, err) || llama_attach_lora(&l->model, l->lora, err))) {
        llm_free(l);
        return -1;
    }
    return 0;
}

void llm_free(Llm *l) {
    tokenizer_free(l->tok);
    llama_free(&l->model);
    llama_lora_free(l->lora);
    memset(l, 0, sizeof *l);
}

int llm_context(const Llm *l, int n_ctx) {
    int max = l->model.config.max_pos;
    return n_ctx > 0 && n_ctx < max ? n_ctx : max;
}

void llm_answer_free(LlmAnswer *a) {
    free(a->text);
    memset(a, 0, sizeof *a);
}

/* Streams each sampled token's text; the first piece of an answer keeps no
 * leading space, as HF decode(new_ids) gives it. */
typedef struct {
    const Llm *llm;
    const LlmRun *run;
    int prev;
    int eos;
    double t_start, t_first;
} Stream;

static int on_token(void *user, int id) {
    Stream *s = user;
    if (s->t_first == 0) s->t_first = clock_seconds();
    if (id != s->eos && s->run->on_text) {
        char buf[64];
        s->run->on_text(s->run->user, tokenizer_piece_text(s->llm->tok, s->prev, id, buf, sizeof buf));
    }
    s->prev = id;
    return 0;
}

/* The KV-cache length of a run: what the prompt and the answer need, within
 * what the caller and the model allow. */
static int run_context(const Llm *l, const LlmRun *r, int n_prompt) {
    long want = r->n_ctx > 0 ? r->n_ctx : (long)n_prompt + r->gen.max_new_tokens;
    int cap = llm_context(l, r->n_ctx);
    return want > cap ? cap : (int)want;
}

int llm_answer(const Llm *l, const int *ids, int n, const LlmRun *r, LlmAnswer *out, Error *err) {
    memset(out, 0, sizeof *out);
    const LlamaConfig *c = &l->model.config;
    int beams = r->num_beams > 1 ? r->num_beams : 1, n_ctx = run_context(l, r, n);
    if (n >= n_ctx)
        return error_set(err, "the prompt is %d tokens, longer than the context of %d tokens", n, n_ctx);
    LlamaState *states = calloc((size_t)beams, sizeof *states);
    int *gen = malloc(sizeof(int) * (size_t)(r->gen.max_new_tokens + 1));
    int n_states = 0, n_gen = 0, rc = -1;
    if (!states || !gen) {
        error_set(err, "out of memory");
        goto out;
    }
    for (; n_states < beams; n_states++)
        if (llama_state_new(&states[n_states], &l->model, n_ctx, 256, r->pool, err)) goto out;
    LlamaDecoder ld;
    Decoder d = llama_decoder(&ld, &l->model, states, beams);
    Stream s = {l, r, -1, c->eos_id, clock_seconds(), 0};
    if (beams > 1) {
        BeamOptions b = beam_defaults();
        b.num_beams = beams;
        b.max_new_tokens = r->gen.max_new_tokens;
        b.eos_id = c->eos_id;
        if (beam_search(&d, ids, n, &b, gen, &n_gen, NULL, err)) goto out;
        s.t_first = clock_seconds();
    } else {
        GenerateOptions o = r->gen;
        o.eos_id = c->eos_id;
        o.on_token = on_token;
        o.user = &s;
        if (generate(&d, ids, n, &o, gen, &n_gen, err)) goto out;
    }
    if (tokenizer_decode(l->tok, gen, n_gen, 1, &out->text, err)) goto out;
    /* Beam search decides the whole answer at the end: it streams then. */
    if (beams > 1 && r->on_text) r->on_text(r->user, out->text);
    out->n_prompt = n;
    out->n_new = n_gen;
    double t_end = clock_seconds();
    out->t_first_s = (s.t_first ? s.t_first : t_end) - s.t_start;
    out->t_total_s = t_end - s.t_start;
    rc = 0;
out:
    for (int i = 0; i < n_states; i++) llama_state_free(&states[i]);
    free(states);
    free(gen);
    return rc;
}
