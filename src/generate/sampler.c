#include "generate/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

SamplerConfig sampler_defaults(void) {
    SamplerConfig c = {0, 0.1f, 40, 0.75f, 1.0f, 0};
    return c;
}

int sampler_check(const SamplerConfig *c, Error *err) {
    if (!c->greedy && !(c->temperature > 0 && c->temperature < 1e4))
        return error_set(err, "temperature %g must be > 0 (use greedy decoding for 0)", c->temperature);
    if (c->top_k < 0) return error_set(err, "top_k %d must be >= 0", c->top_k);
    if (!(c->top_p > 0 && c->top_p <= 1)) return error_set(err, "top_p %g must be in (0, 1]", c->top_p);
    if (!(c->repetition_penalty > 0 && c->repetition_penalty < 1e4))
        return error_set(err, "repetition_penalty %g must be > 0", c->repetition_penalty);
    return 0;
}

int sampler_init(Sampler *s, const SamplerConfig *cfg, int vocab_size, Error *err) {
    memset(s, 0, sizeof *s);
    if (sampler_check(cfg, err)) return -1;
    s->cfg = *cfg;
    s->vocab_size = vocab_size;
    /* splitmix64 of the seed, so seed 0 still gives a non-zero xorshift state */
    uint64_t z = cfg->seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    s->rng = (z ^ (z >> 31)) | 1;
    s->cand = malloc((size_t)vocab_size * sizeof *s->cand);
    s->prob = malloc((size_t)vocab_size * sizeof *s->prob);
    if (!s->cand || !s->prob) {
        sampler_free(s);
        return error_set(err, "out of memory for a sampler of %d tokens", vocab_size);
    }
    return 0;
}

void sampler_free(Sampler *s) {
    free(s->cand);
    free(s->prob);
    memset(s, 0, sizeof *s);
}

float sampler_uniform(Sampler *s) {
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (float)((s->rng * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
}

static void apply_repetition_penalty(float *logits, int vocab, const int *hist, int n, float p) {
    /* Each distinct id once, as HF gathers and scatters by id. A penalised
     * logit is exactly representable, so a second visit would be caught by
     * tracking visited ids; the history is short, a linear check suffices. */
    for (int i = 0; i < n; i++) {
        int id = hist[i];
        if (id < 0 || id >= vocab) continue;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = hist[j] == id;
        if (seen) continue;
        logits[id] = logits[id] < 0 ? logits[id] * p : logits[id] / p;
    }
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Sorting candidates by logit, descending; ties by id for determinism. */
static int by_logit_desc(const void *a, const void *b, void *ctx) {
    const float *sort_logits = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_logits[i] != sort_logits[j]) return sort_logits[i] > sort_logits[j] ? -1 : 1;
    return i - j;
}

/* Keeps the k largest ids in cand[0..k) using a min-heap, O(V log k). */
static int select_top_k(int *cand, const float *logits, int vocab, int k) {
    int n = 0;
    for (int id = 0; id < vocab; id++) {
        if (n < k) {
            int c = n++;
            cand[c] = id;
            while (c > 0 && logits[cand[(c - 1) / 2]] > logits[cand[c]]) {
                int p = (c - 1) / 2, t = cand[p];
                cand[p] = cand[c];
                cand[c] = t;
                c = p;
            }
        } else if (logits[id] > logits[cand[0]]) {
            cand[0] = id;
            int c = 0;
            for (;;) {
                int l = 2 * c + 1, r = l + 1, m = c;
                if (l < n && logits[cand[l]] < logits[cand[m]]) m = l;
                if (r < n && logits[cand[r]] < logits[cand[m]]) m = r;
                if (m == c) break;
                int t = cand[m];
                cand[m] = cand[c];
                cand[c] = t;
                c = m;
            }
        }
    }
    return n;
}

int sampler_next(Sampler *s, float *logits, const int *history, int n_history) {
    const SamplerConfig *c = &s->cfg;
    int V = s->vocab_size;
    if (c->repetition_penalty != 1.0f) apply_repetition_penalty(logits, V, history, n_history, c->repetition_penalty);
    if (c->greedy) return argmax(logits, V);

    for (int i = 0; i < V; i++) logits[i] /= c->temperature;
    int n;
    if (c->top_k > 0 && c->top_k < V) {
        n = select_top_k(s->cand, logits, V, c->top_k);
    } else {
        n = V;
        for (int i = 0; i < V; i++) s->cand[i] = i;
    }
    qsort_r(s->cand, (size_t)n, sizeof *s->cand, by_logit_desc, logits);

    /* softmax over the candidates */
    float mx = logits[s->cand[0]], sum = 0;
    for (int i = 0; i < n; i++) {
        s->prob[i] = expf(logits[s->cand[i]] - mx);
        sum += s->prob[i];
    }
    for (int i = 0; i < n; i++) s->prob[i] /= sum;

    /* top-p: HF removes the tokens whose ascending cumulative probability is
     * <= 1 - top_p, i.e. keeps the smallest head whose mass reaches top_p. */
    if (c->top_p < 1.0f) {
        float cum = 0;
        int keep = n;
        for (int i = n - 1; i > 0; i--) { /* ascending order = from the tail */
            cum += s->prob[i];
            if (cum <= 1.0f - c->top_p) keep = i;
            else break;
        }
        n = keep;
        sum = 0;
        for (int i = 0; i < n; i++) sum += s->prob[i];
        for (int i = 0; i < n; i++) s->prob[i] /= sum;
    }

    float r = sampler_uniform(s), cum = 0;
    for (int i = 0; i < n; i++) {
        cum += s->prob[i];
        if (r < cum) return s->cand[i];
    }
    return s->cand[n - 1];
}
