/* Beam search as transformers 4.36 does it for batch 1: every step each
 * beam's log-softmax plus its running score, the top 2*num_beams of all,
 * finished hypotheses scored by sum_logprobs / generated_len^length_penalty,
 * and the early-stop heuristic of BeamHypotheses.is_done. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generate/generate.h"

BeamOptions beam_defaults(void) {
    BeamOptions o = {4, 128, 1.0f, 0, 2};
    return o;
}

typedef struct {
    float score; /* running sum of log-probabilities */
    int token, beam;
    long flat;   /* beam * vocab + token: the order torch.topk breaks ties by, here */
} Candidate;

typedef struct {
    float score;
    int *tokens;
    int len;
} Hypothesis;

typedef struct {
    Hypothesis *h;
    int n, cap;
    float worst;
    float length_penalty;
    int early_stopping;
} Hypotheses;

/* BeamHypotheses.add: keep the num_beams best by normalised score. */
static void hyp_add(Hypotheses *H, const int *tokens, int len, float sum_logprobs, int generated_len) {
    float score = sum_logprobs / powf((float)generated_len, H->length_penalty);
    if (H->n < H->cap || score > H->worst) {
        Hypothesis *slot;
        if (H->n < H->cap) {
            slot = &H->h[H->n++];
        } else {
            /* replace the worst; the new worst is the next lowest */
            int worst = 0;
            for (int i = 1; i < H->n; i++)
                if (H->h[i].score < H->h[worst].score) worst = i;
            slot = &H->h[worst];
        }
        slot->score = score;
        slot->len = len;
        memcpy(slot->tokens, tokens, sizeof(int) * (size_t)len);
        /* HF tracks min(score, worst) while filling and the second lowest
         * after an eviction: both are the lowest score kept. */
        H->worst = H->h[0].score;
        for (int i = 1; i < H->n; i++)
            if (H->h[i].score < H->worst) H->worst = H->h[i].score;
    }
}

static int hyp_done(const Hypotheses *H, float best_sum, int cur_len, int prompt_len) {
    if (H->n < H->cap) return 0;
    if (H->early_stopping) return 1;
    return H->worst >= best_sum / powf((float)(cur_len - prompt_len), H->length_penalty);
}

static int by_score_desc(const void *a, const void *b) {
    const Candidate *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->flat < y->flat ? -1 : x->flat > y->flat;
}

/* Keeps the k best candidates of beam b (scores = logprobs + beam score)
 * in a min-heap of size k shared across beams. */
static void heap_push(Candidate *heap, int *n, int k, Candidate c) {
    if (*n < k) {
        int i = (*n)++;
        heap[i] = c;
        while (i > 0 && by_score_desc(&heap[(i - 1) / 2], &heap[i]) < 0) {
            Candidate t = heap[(i - 1) / 2];
            heap[(i - 1) / 2] = heap[i];
            heap[i] = t;
            i = (i - 1) / 2;
        }
        return;
    }
    if (by_score_desc(&c, &heap[0]) >= 0) return; /* not better than the worst kept */
    heap[0] = c;
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && by_score_desc(&heap[l], &heap[m]) > 0) m = l;
        if (r < *n && by_score_desc(&heap[r], &heap[m]) > 0) m = r;
        if (m == i) break;
        Candidate t = heap[m];
        heap[m] = heap[i];
        heap[i] = t;
        i = m;
    }
}

/* log_softmax(logits) + base, offered to the heap. */
static void offer_beam(Candidate *heap, int *n, int k, const float *logits, int V, float base, int beam) {
    float mx = logits[0];
    for (int i = 1; i < V; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)(logits[i] - mx));
    float lse = mx + (float)log(sum);
    for (int i = 0; i < V; i++) {
        Candidate c = {logits[i] - lse + base, i, beam, (long)beam * V + i};
        heap_push(heap, n, k, c);
    }
}

int beam_search(const Decoder *d, const int *prompt, int n_prompt, const BeamOptions *o, int *out_ids, int *n_out,
                float *score, Error *err) {
    *n_out = 0;
    int B = o->num_beams, V = d->vocab_size;
    if (B < 1 || B > 64) return error_set(err, "num_beams %d is out of range 1..64", B);
    if (B > d->n_slots) return error_set(err, "num_beams %d needs %d model states, the decoder has %d", B, B, d->n_slots);
    if (n_prompt < 1) return error_set(err, "the prompt is empty: at least one token is needed");
    if (n_prompt >= d->n_ctx)
        return error_set(err, "the prompt is %d tokens but the context holds %d", n_prompt, d->n_ctx);
    int max_len = n_prompt + o->max_new_tokens;
    if (max_len > d->n_ctx) max_len = d->n_ctx;
    if (o->max_new_tokens < 1) return 0;

    int *seq = malloc(sizeof(int) * (size_t)B * max_len * 2 + sizeof(int) * (size_t)B * max_len);
    Candidate *cand = malloc(sizeof(Candidate) * (size_t)(2 * B));
    Hypothesis *hyp = calloc((size_t)B, sizeof(Hypothesis));
    float *beam_score = malloc(sizeof(float) * (size_t)B);
    int *slot = malloc(sizeof(int) * (size_t)B * 4);
    if (!seq || !cand || !hyp || !beam_score || !slot) {
        free(seq), free(cand), free(hyp), free(beam_score), free(slot);
        return error_set(err, "out of memory for beam search");
    }
    int *next_seq = seq + (size_t)B * max_len, *hyp_tokens = next_seq + (size_t)B * max_len;
    int *new_slot = slot + B, *claimed = slot + 2 * B, *is_source = slot + 3 * B;
    for (int i = 0; i < B; i++) hyp[i].tokens = hyp_tokens + (size_t)i * max_len;
    Hypotheses H = {hyp, 0, B, 1e9f, o->length_penalty, o->early_stopping};
    int rc = 0;

    /* Every beam starts as the prompt; only beam 0 counts at first (HF
     * gives the others -1e9), but all slots need the prompt's cache. */
    if (d->forward(d->self, 0, prompt, n_prompt, 0, NULL, err)) {
        rc = -1;
        goto out;
    }
    for (int b = 0; b < B; b++) {
        if (b > 0) d->copy_rows(d->self, b, 0, 0, n_prompt);
        memcpy(seq + (size_t)b * max_len, prompt, sizeof(int) * (size_t)n_prompt);
        beam_score[b] = b == 0 ? 0.0f : -1e9f;
        slot[b] = b;
    }
    int cur_len = n_prompt, done = 0;
    for (;;) {
        int nc = 0;
        for (int b = 0; b < B; b++) offer_beam(cand, &nc, 2 * B, d->logits(d->self, slot[b]), V, beam_score[b], b);
        qsort(cand, (size_t)nc, sizeof *cand, by_score_desc);

        /* BeamSearchScorer.process */
        Candidate next[64];
        int nb = 0;
        for (int r = 0; r < nc && nb < B; r++) {
            if (cand[r].token == o->eos_id) {
                if (r >= B) continue;
                hyp_add(&H, seq + (size_t)cand[r].beam * max_len, cur_len, cand[r].score, cur_len + 1 - n_prompt);
            } else {
                next[nb++] = cand[r];
            }
        }
        if (nb < B) {
            rc = error_set(err, "beam search: fewer than %d candidates that are not EOS", B);
            goto out;
        }
        done = done || hyp_done(&H, cand[0].score, cur_len + 1, n_prompt);

        /* Reorder: a new beam keeps its source's slot if no earlier beam
         * took it, else gets a copy in a slot no beam comes from. */
        for (int b = 0; b < B; b++) claimed[b] = is_source[b] = 0;
        for (int b = 0; b < nb; b++) is_source[slot[next[b].beam]] = 1;
        for (int b = 0; b < nb; b++) {
            int s = slot[next[b].beam];
            new_slot[b] = claimed[s] ? -1 : s;
            claimed[s] = 1;
        }
        int free_slot = 0;
        for (int b = 0; b < nb; b++) {
            if (new_slot[b] >= 0) continue;
            while (is_source[free_slot] || claimed[free_slot]) free_slot++;
            claimed[free_slot] = 1;
            d->copy_rows(d->self, free_slot, slot[next[b].beam], n_prompt, cur_len);
            new_slot[b] = free_slot;
        }
        for (int b = 0; b < nb; b++) {
            int *dst = next_seq + (size_t)b * max_len;
            memcpy(dst, seq + (size_t)next[b].beam * max_len, sizeof(int) * (size_t)cur_len);
            dst[cur_len] = next[b].token;
            beam_score[b] = next[b].score;
        }
        for (int b = 0; b < nb; b++) slot[b] = new_slot[b];
        int *t = seq;
        seq = next_seq;
        next_seq = t;
        cur_len++;
        if (done || cur_len >= max_len) break;
        for (int b = 0; b < B; b++) {
            int tok = seq[(size_t)b * max_len + cur_len - 1];
            if (d->forward(d->self, slot[b], &tok, 1, cur_len - 1, NULL, err)) {
                rc = -1;
                goto out;
            }
        }
    }
    /* finalize: open beams compete with the finished ones */
    if (!done)
        for (int b = 0; b < B; b++)
            hyp_add(&H, seq + (size_t)b * max_len, cur_len, beam_score[b], cur_len - n_prompt);
    int best = 0;
    for (int i = 1; i < H.n; i++)
        if (H.h[i].score >= H.h[best].score) best = i; /* HF's stable sort + pop takes the last of equals */
    for (int i = n_prompt; i < H.h[best].len; i++) out_ids[(*n_out)++] = H.h[best].tokens[i];
    if (H.h[best].len < max_len) out_ids[(*n_out)++] = o->eos_id;
    if (score) *score = H.h[best].score;
out:
    /* seq and next_seq were swapped: free the block's start */
    free(seq < next_seq ? seq : next_seq);
    free(cand);
    free(hyp);
    free(beam_score);
    free(slot);
    return rc;
}
