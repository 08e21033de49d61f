/* Sampler semantics (HF order: repetition penalty, temperature, top-k,
 * top-p) and reproducibility; the draws use a fixed seed, so the frequency
 * checks are deterministic, with tolerances far above the sampling noise. */
#include <math.h>
#include <string.h>

#include "generate/sampler.h"
#include "test.h"

void suite_generate(void);

static void t_greedy_is_argmax(void) {
    SamplerConfig c = sampler_defaults();
    c.greedy = 1;
    Sampler s;
    Error err;
    CHECK(sampler_init(&s, &c, 5, &err) == 0, "%s", err.msg);
    float l[5] = {0.1f, 3.0f, -1.0f, 2.9f, 3.0f};
    int id = sampler_next(&s, l, NULL, 0);
    sampler_free(&s);
    CHECK(id == 1, "argmax picked %d (ties go to the first)", id);
}

static void t_repetition_penalty_as_hf(void) {
    SamplerConfig c = sampler_defaults();
    c.greedy = 1;
    c.repetition_penalty = 2.0f;
    Sampler s;
    Error err;
    CHECK(sampler_init(&s, &c, 4, &err) == 0, "%s", err.msg);
    float l[4] = {2.0f, -2.0f, 1.5f, 0.5f};
    int hist[3] = {0, 1, 0}; /* id 0 twice: penalised once */
    int id = sampler_next(&s, l, hist, 3);
    sampler_free(&s);
    CHECK(l[0] == 1.0f && l[1] == -4.0f && l[2] == 1.5f && l[3] == 0.5f, "penalised logits %g %g %g %g", l[0], l[1],
          l[2], l[3]);
    CHECK(id == 2, "after the penalty argmax is 2, got %d", id);
}

/* Frequencies of n draws from fresh copies of the same logits. */
static void draw_freq(const SamplerConfig *c, const float *logits, int V, int n, double *freq) {
    Sampler s;
    Error err;
    if (sampler_init(&s, c, V, &err)) return;
    float l[16];
    for (int i = 0; i < V; i++) freq[i] = 0;
    for (int k = 0; k < n; k++) {
        memcpy(l, logits, sizeof(float) * (size_t)V);
        freq[sampler_next(&s, l, NULL, 0)] += 1.0 / n;
    }
    sampler_free(&s);
}

static void t_top_p_keeps_smallest_head(void) {
    /* probabilities 0.5, 0.3, 0.15, 0.05: HF drops the tail whose mass is
     * <= 1 - 0.75 = 0.25, i.e. ids 2 and 3, and renormalises 0.5 : 0.3. */
    float l[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    SamplerConfig c = {0, 1.0f, 0, 0.75f, 1.0f, 42};
    double f[4];
    draw_freq(&c, l, 4, 20000, f);
    CHECK(f[2] == 0 && f[3] == 0, "tail drawn: %g %g", f[2], f[3]);
    CHECK(fabs(f[0] - 0.625) < 0.02 && fabs(f[1] - 0.375) < 0.02, "head frequencies %g %g", f[0], f[1]);
}

static void t_top_k_and_temperature(void) {
    float l[4] = {logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f)};
    SamplerConfig c = {0, 1.0f, 2, 1.0f, 1.0f, 7};
    double f[4];
    draw_freq(&c, l, 4, 20000, f);
    CHECK(f[2] == 0 && f[3] == 0, "top-k 2 drew ids 2/3: %g %g", f[2], f[3]);
    CHECK(fabs(f[0] - 4.0 / 7) < 0.02, "top-k renormalised: %g", f[0]);
    /* temperature 0.5 squares the odds: 0.4^2 : 0.3^2 : 0.2^2 : 0.1^2 */
    SamplerConfig t = {0, 0.5f, 0, 1.0f, 1.0f, 9};
    draw_freq(&t, l, 4, 20000, f);
    CHECK(fabs(f[0] - 16.0 / 30) < 0.02 && fabs(f[3] - 1.0 / 30) < 0.01, "temperature: %g %g", f[0], f[3]);
}

static void t_seed_reproducible(void) {
    float l[8] = {0};
    SamplerConfig c = {0, 1.0f, 0, 1.0f, 1.0f, 123};
    int a[32], b[32], d[32];
    Sampler s;
    Error err;
    for (int run = 0; run < 3; run++) {
        c.seed = run == 2 ? 124 : 123;
        CHECK(sampler_init(&s, &c, 8, &err) == 0, "%s", err.msg);
        for (int i = 0; i < 32; i++) {
            float x[8];
            memcpy(x, l, sizeof x);
            (run == 0 ? a : run == 1 ? b : d)[i] = sampler_next(&s, x, NULL, 0);
        }
        sampler_free(&s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed, different draws");
    CHECK(memcmp(a, d, sizeof a) != 0, "different seeds, same 32 draws");
}

static void t_sampler_rejects_bad_settings(void) {
    SamplerConfig c = sampler_defaults();
    Sampler s;
    Error err;
    c.temperature = 0;
    CHECK(sampler_init(&s, &c, 4, &err) == -1 && strstr(err.msg, "temperature 0 must be > 0"), "%s", err.msg);
    c = sampler_defaults();
    c.top_p = 1.5f;
    CHECK(sampler_init(&s, &c, 4, &err) == -1 && strstr(err.msg, "top_p 1.5"), "%s", err.msg);
    SamplerConfig d = sampler_defaults();
    CHECK(d.temperature == 0.1f && d.top_k == 40 && d.top_p == 0.75f && !d.greedy, "defaults of the original");
}

void suite_generate(void) {
    RUN(t_greedy_is_argmax);
    RUN(t_repetition_penalty_as_hf);
    RUN(t_top_p_keeps_smallest_head);
    RUN(t_top_k_and_temperature);
    RUN(t_seed_reproducible);
    RUN(t_sampler_rejects_bad_settings);
}
