/* vmed bench: prefill and decode speed, as llama-bench measures them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "base/file.h"
#include "formats/json_util.h"
#include "image/clip_preprocess.h"
#include "image/pix2struct_preprocess.h"
#include "image/render.h"
#include "models/pix2struct.h"

static const char BENCH_HELP[] =
    "usage: vmed bench --model FILE.gguf|DIR [-t THREADS] [-p 512] [-n 128] [-r 3] [-b 512] [-c CTX] [--json]\n"
    "       vmed bench --model GIT_DIR --image FILE [-t THREADS] [-n 20] [-r 3] [--quantize q8_0] [--json]\n"
    "\n"
    "LLaMA (an HF folder or a GGUF file): as llama-bench's pp and tg tests,\n"
    "prefill P random prompt tokens, B per forward pass (pp), and, from an empty\n"
    "context again, decode N tokens one at a time (tg). The run state holds CTX\n"
    "positions (default P + N + 1). Prints tokens/s as mean and\n"
    "standard deviation over R repetitions, peak resident memory, the weight\n"
    "bytes one decoded token reads with the bandwidth that implies, the load time\n"
    "and the time to first token (load, run state, one decoded token). As\n"
    "llama-bench, one untimed prompt warms up before the repetitions, which share\n"
    "one run state.\n"
    "GIT (--image): image-to-caption latency: decode the file, preprocess, encode,\n"
    "and N greedy tokens (EOS ignored, so every run makes N); --quantize q8_0\n"
    "requantizes its matrices at load, as vmed caption --quantize does.\n"
    "Pix2Struct (--image): chart-to-table latency: decode, render DePlot's header,\n"
    "preprocess into 2048 patches, encode, and N greedy tokens.\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void mean_sd(const double *x, int n, double *mean, double *sd) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

/* Seconds for one caption: load + preprocess + encode + n greedy tokens. */
static int caption_once(const Git *m, GitState *s, const ClipProcessorConfig *proc, const char *path, int n,
                        float *pixels, double *secs, Error *err) {
    double t0 = now_s();
    Image img, rgb;
    if (image_load(&img, path, NULL, err)) return -1;
    int rc = image_to_rgb8(&rgb, &img, err);
    image_free(&img);
    if (rc) return -1;
    rc = clip_preprocess(pixels, &rgb, proc, err);
    image_free(&rgb);
    if (rc) return -1;
    git_encode_image(m, s, pixels);
    GitDecoder gd;
    Decoder d = git_decoder(&gd, m, s, 1);
    GenerateOptions o = generate_defaults();
    o.sampling.greedy = 1;
    o.max_new_tokens = n;
    o.eos_id = -1;
    int ids[1024], n_out, bos = m->config.bos_id;
    if (generate(&d, &bos, 1, &o, ids, &n_out, err)) return -1;
    *secs = now_s() - t0;
    return 0;
}

static int bench_caption(const char *cmd, const char *dir, const char *image, ThreadPool *pool, long n, long reps,
                         int q8_0, int json) {
    long threads = pool_size(pool);
    Error err;
    Git m;
    ClipProcessorConfig proc;
    double t0 = now_s();
    if (git_load(&m, dir, &err)) return cli_fail(cmd, err.msg);
    if (q8_0 && git_quantize(&m, DT_Q8_0, &err)) {
        git_free(&m);
        return cli_fail(cmd, err.msg);
    }
    double load_s = now_s() - t0;
    if (clip_processor_config_load(&proc, dir, &err)) {
        git_free(&m);
        return cli_fail(cmd, err.msg);
    }
    if (n < 1 || n > 1000 || n + 1 > m.config.max_pos) {
        git_free(&m);
        return cli_usage_error(cmd, "-n %ld is out of range 1..%d for this model", n,
                               m.config.max_pos - 1 < 1000 ? m.config.max_pos - 1 : 1000);
    }
    GitState s;
    if (git_state_new(&s, &m, (int)n + 1, pool, &err)) {
        git_free(&m);
        return cli_fail(cmd, err.msg);
    }
    size_t S = (size_t)m.config.vision.image_size;
    float *pixels = malloc(sizeof(float) * 3 * S * S);
    double *t = calloc((size_t)reps + 1, sizeof(double));
    int rc = 0;
    /* one warm-up run: page in the weights as a served model would have them */
    for (long r = 0; r <= reps && !rc; r++)
        if (caption_once(&m, &s, &proc, image, (int)n, pixels, &t[r], &err)) rc = cli_fail(cmd, err.msg);
    if (!rc) {
        double mean, sd;
        mean_sd(t + 1, (int)reps, &mean, &sd);
        const char *dt = dtype_name(m.weights.out.dtype);
        if (json)
            printf("{\"model\": \"%s\", \"dtype\": \"%s\", \"threads\": %ld, \"kernel\": \"%s\", \"tokens\": %ld, "
                   "\"caption_s\": %.4f, \"caption_sd\": %.4f, \"load_s\": %.3f}\n",
                   dir, dt, threads, kernel_name(kernel_best()), n, mean, sd, load_s);
        else
            printf("model %s: GIT %s, vision %d x %d layers, text %d x %d layers; %ld threads, %s kernels\n"
                   "  caption (load + preprocess + encode + %ld tokens) %.3f ± %.3f s\n",
                   dir, dt, m.config.vision.dim, m.config.vision.n_layers, m.config.dim, m.config.n_layers, threads,
                   kernel_name(kernel_best()), n, mean, sd);
    }
    free(pixels);
    free(t);
    git_state_free(&s);
    git_free(&m);
    return rc;
}

/* What bench_llama measures: -p, -n, -r, -b, -c (0: -p + -n + 1). */
typedef struct {
    long pp, tg, reps, batch, ctx;
    int json;
} LlamaBench;

static int bench_llama(const char *cmd, const char *dir, ThreadPool *pool, const LlamaBench *o);

/* Seconds for one chart: load + header + patches + encode + n tokens. */
static int chart_once(const Pix2Struct *m, Pix2StructState *s, const Pix2StructProcessorConfig *proc,
                      const RenderOptions *ro, const char *path, int n, float *patches, float *mask, double *secs,
                      Error *err) {
    double t0 = now_s();
    Image img, rgb, with;
    if (image_load(&img, path, NULL, err)) return -1;
    int rc = image_to_rgb8(&rgb, &img, err);
    image_free(&img);
    if (rc) return -1;
    rc = render_header(&with, &rgb, "Generate underlying data table of the figure below:", ro, err);
    image_free(&rgb);
    if (rc) return -1;
    int n_valid, rows, cols;
    rc = pix2struct_preprocess(patches, mask, &n_valid, &rows, &cols, &with, proc, s->max_patches, err);
    image_free(&with);
    if (rc || pix2struct_encode(m, s, patches, mask, s->max_patches, err)) return -1;
    Pix2StructDecoder pd;
    Decoder d = pix2struct_decoder(&pd, m, s, 1);
    GenerateOptions o = generate_defaults();
    o.sampling.greedy = 1;
    o.max_new_tokens = n;
    o.eos_id = -1;
    int ids[1024], n_out, start = m->config.decoder_start_id;
    if (generate(&d, &start, 1, &o, ids, &n_out, err)) return -1;
    *secs = now_s() - t0;
    return 0;
}

static int bench_chart(const char *cmd, const char *dir, const char *image, ThreadPool *pool, long n, long reps,
                       int json) {
    Error err;
    Pix2Struct m;
    Pix2StructProcessorConfig proc;
    RenderOptions ro;
    render_options_default(&ro);
    double t0 = now_s();
    if (pix2struct_load(&m, dir, &err)) return cli_fail(cmd, err.msg);
    double load_s = now_s() - t0;
    if (pix2struct_processor_config_load(&proc, dir, &err)) {
        pix2struct_free(&m);
        return cli_fail(cmd, err.msg);
    }
    if (n < 1 || n > 1000) {
        pix2struct_free(&m);
        return cli_usage_error(cmd, "-n %ld is out of range 1..1000", n);
    }
    int max_patches = PIX2STRUCT_PROCESSOR_MAX_PATCHES;
    Pix2StructState s;
    if (pix2struct_state_new(&s, &m, max_patches, (int)n + 1, pool, &err)) {
        pix2struct_free(&m);
        return cli_fail(cmd, err.msg);
    }
    float *patches = malloc(sizeof(float) * (size_t)max_patches * (size_t)pix2struct_patch_dim(&proc));
    float *mask = malloc(sizeof(float) * (size_t)max_patches);
    double *t = calloc((size_t)reps + 1, sizeof(double));
    int rc = 0;
    for (long r = 0; r <= reps && !rc; r++) /* run 0 warms up */
        if (chart_once(&m, &s, &proc, &ro, image, (int)n, patches, mask, &t[r], &err)) rc = cli_fail(cmd, err.msg);
    if (!rc) {
        double mean, sd;
        mean_sd(t + 1, (int)reps, &mean, &sd);
        const char *dt = dtype_name(m.weights.lm_head.dtype);
        if (json)
            printf("{\"model\": \"%s\", \"dtype\": \"%s\", \"threads\": %d, \"kernel\": \"%s\", \"tokens\": %ld, "
                   "\"chart_s\": %.4f, \"chart_sd\": %.4f, \"load_s\": %.3f}\n",
                   dir, dt, pool_size(pool), kernel_name(kernel_best()), n, mean, sd, load_s);
        else
            printf("model %s: Pix2Struct %s, %d + %d layers, %d wide; %d threads, %s kernels\n"
                   "  chart (load + header + %d patches + encode + %ld tokens) %.3f ± %.3f s\n",
                   dir, dt, m.config.vision.n_layers, m.config.text.n_layers, m.config.vision.dim, pool_size(pool),
                   kernel_name(kernel_best()), max_patches, n, mean, sd);
    }
    free(patches);
    free(mask);
    free(t);
    pix2struct_state_free(&s);
    pix2struct_free(&m);
    return rc;
}

/* "git", "pix2struct", "llama", ... from dir/config.json; "" when unknown. */
static void model_type(const char *dir, char *out, size_t cap) {
    char path[1100];
    cJSON *root;
    Error err;
    out[0] = 0;
    if (path_join(path, sizeof path, dir, "config.json", &err) || json_load_file(&root, path, 1 << 22, &err)) return;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (cJSON_IsString(t)) snprintf(out, cap, "%s", t->valuestring);
    cJSON_Delete(root);
}

int cmd_bench(int argc, char **argv) {
    const char *cmd = "bench", *dir = NULL, *image = NULL, *quantize = NULL;
    int n_given = 0;
    long threads = cpu_count(), pp = 512, tg = 128, reps = 3, batch = 512, ctx = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long *dst = NULL, lo = 0, hi = 1 << 20;
        if (cli_is_help(a)) {
            fputs(BENCH_HELP, stdout);
            return 0;
        } else if (strcmp(a, "--model") == 0) {
            if (!(dir = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
            continue;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
            continue;
        } else if (strcmp(a, "--image") == 0) {
            if (!(image = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
            continue;
        } else if (strcmp(a, "--quantize") == 0) {
            if (!(quantize = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
            if (strcmp(quantize, "q8_0") != 0) return cli_usage_error(cmd, "--quantize takes q8_0, not '%s'", quantize);
            continue;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            dst = &threads, lo = 1, hi = 1024;
        } else if (strcmp(a, "-p") == 0) {
            dst = &pp;
        } else if (strcmp(a, "-n") == 0) {
            dst = &tg;
            n_given = 1;
        } else if (strcmp(a, "-r") == 0) {
            dst = &reps, lo = 1, hi = 1000;
        } else if (strcmp(a, "-b") == 0) {
            dst = &batch, lo = 1;
        } else if (strcmp(a, "-c") == 0) {
            dst = &ctx, lo = 1;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
        if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, lo, hi, dst)) return EXIT_USAGE;
    }
    if (!dir) return cli_usage_error(cmd, "--model FILE|DIR is required");
    char type[64];
    model_type(dir, type, sizeof type);
    if (quantize && (!image || strcmp(type, "pix2struct") == 0))
        return cli_usage_error(cmd, "--quantize is for GIT models (--image with a GIT folder)");
    ThreadPool *pool = NULL;
    Error perr;
    if (threads > 1 && pool_create(&pool, (int)threads, &perr)) return cli_fail(cmd, perr.msg);
    LlamaBench lb = {pp, tg, reps, batch, ctx, json};
    int result = !image                          ? bench_llama(cmd, dir, pool, &lb)
                 : strcmp(type, "pix2struct") == 0 ? bench_chart(cmd, dir, image, pool, n_given ? tg : 20, reps, json)
                                                   : bench_caption(cmd, dir, image, pool, n_given ? tg : 20, reps,
                                                                   quantize != NULL, json);
    pool_free(pool);
    return result;
}

static int bench_llama(const char *cmd, const char *dir, ThreadPool *pool, const LlamaBench *o) {
    long threads = pool_size(pool), pp = o->pp, tg = o->tg, reps = o->reps;
    int json = o->json;
    if (pp < 1 && tg < 1) return cli_usage_error(cmd, "nothing to measure: -p and -n are both 0");
    Error err;
    Llama m;
    double t0 = now_s();
    if (llama_load(&m, dir, &err)) return cli_fail(cmd, err.msg);
    double load_s = now_s() - t0;
    const LlamaConfig *c = &m.config;
    long ctx = o->ctx ? o->ctx : pp + tg + 1;
    if (pp + tg + 1 > c->max_pos) {
        int max_pos = c->max_pos;
        llama_free(&m);
        return cli_usage_error(cmd, "-p %ld plus -n %ld exceed the model's context of %d", pp, tg, max_pos);
    }
    if (ctx < pp + tg + 1 || ctx > c->max_pos) {
        int max_pos = c->max_pos;
        llama_free(&m);
        return cli_usage_error(cmd, "-c %ld is out of range %ld..%d (-p + -n + 1 .. the model's context)", ctx,
                               pp + tg + 1, max_pos);
    }
    int *tokens = malloc(sizeof(int) * (size_t)(pp + 1));
    double *pp_tps = calloc((size_t)reps, sizeof(double)), *tg_tps = calloc((size_t)reps, sizeof(double));
    uint32_t seed = 12345;
    for (long i = 0; i <= pp; i++) {
        seed = seed * 1664525u + 1013904223u;
        tokens[i] = (int)(seed % (uint32_t)c->vocab_size);
    }
    int rc = 0;
    double first_s = 0;
    { /* time to first token, and the warm-up: pages in the weights (a GGUF file is mapped) */
        LlamaState s;
        if (llama_state_new(&s, &m, (int)ctx, 1, pool, &err)) {
            free(tokens);
            free(pp_tps);
            free(tg_tps);
            llama_free(&m);
            return cli_fail(cmd, err.msg);
        }
        rc = llama_forward(&m, &s, tokens, 1, 0, NULL, &err);
        first_s = now_s() - t0;
        llama_state_free(&s);
        if (rc) rc = cli_fail(cmd, err.msg);
    }
    /* One run state for every repetition, as llama-bench keeps one context
     * per test, and its warm-up too: the prompt once, untimed, so that no
     * repetition pays for first-touch page faults in the activations. */
    LlamaState s;
    int have_state = 0;
    if (!rc) {
        if (llama_state_new(&s, &m, (int)ctx, (int)(pp < o->batch ? (pp > 0 ? pp : 1) : o->batch), pool, &err))
            rc = cli_fail(cmd, err.msg);
        else
            have_state = 1;
    }
    if (!rc && pp > 0 && llama_forward(&m, &s, tokens, (int)pp, 0, NULL, &err)) rc = cli_fail(cmd, err.msg);
    for (long r = 0; r < reps && !rc; r++) {
        if (pp > 0) {
            double a = now_s();
            rc = llama_forward(&m, &s, tokens, (int)pp, 0, NULL, &err);
            pp_tps[r] = (double)pp / (now_s() - a);
        }
        if (!rc && tg > 0) {
            int pos = 0, tok = tokens[pp]; /* from an empty context, as llama-bench's tg */
            double a = now_s();
            for (long i = 0; i < tg && !rc; i++) {
                rc = llama_forward(&m, &s, &tok, 1, pos++, NULL, &err);
                tok = (int)((unsigned)(tok * 31 + 7) % (unsigned)c->vocab_size);
            }
            tg_tps[r] = (double)tg / (now_s() - a);
        }
        if (rc) rc = cli_fail(cmd, err.msg);
    }
    if (have_state) llama_state_free(&s);
    if (!rc) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double rss_gb = (double)ru.ru_maxrss * 1024 / 1e9;
        double wbytes = (double)llama_weight_bytes(&m);
        double pm, ps, tm, ts;
        mean_sd(pp_tps, (int)reps, &pm, &ps);
        mean_sd(tg_tps, (int)reps, &tm, &ts);
        const char *dt = dtype_name(m.weights.layers[0].wq.dtype);
        /* The work of one prompt token in pp: two flops per weight of the
         * layers, the causal attention over (pp + 1) / 2 positions on
         * average (q.k and p.v), and a pp-th of the LM head, which only the
         * last prompt token goes through. */
        double q_dim = (double)c->n_heads * c->head_dim, kv_dim = (double)c->n_kv_heads * c->head_dim;
        double layer_w = c->dim * (2 * q_dim + 2 * kv_dim) + 3.0 * c->dim * c->hidden_dim;
        double pp_flops = pp > 0 ? c->n_layers * (2 * layer_w + 4 * q_dim * (pp + 1) / 2.0) +
                                       2.0 * c->vocab_size * c->dim / (double)pp
                                 : 0;
        if (json) {
            printf("{\"model\": \"%s\", \"dtype\": \"%s\", \"threads\": %ld, \"kernel\": \"%s\", \"pp\": %ld, "
                   "\"pp_tps\": %.3f, \"pp_sd\": %.3f, \"tg\": %ld, \"tg_tps\": %.3f, \"tg_sd\": %.3f, "
                   "\"weight_bytes_per_token\": %.0f, \"peak_rss_bytes\": %.0f, \"load_s\": %.3f, "
                   "\"first_token_s\": %.3f, \"batch\": %ld, \"ctx\": %ld, \"pp_flops_per_token\": %.0f, "
                   "\"kv_cache_bytes\": %.0f}\n",
                   dir, dt, threads, kernel_name(kernel_best()), pp, pm, ps, tg, tm, ts, wbytes, rss_gb * 1e9,
                   load_s, first_s, o->batch, ctx, pp_flops, 2.0 * c->n_layers * (double)ctx * kv_dim * sizeof(float));
        } else {
            printf("model %s: %s, dim %d, %d layers, vocab %d; %ld threads, %s kernels\n", dir, dt, c->dim,
                   c->n_layers, c->vocab_size, threads, kernel_name(kernel_best()));
            if (pp > 0) printf("  pp%-5ld %10.2f ± %.2f tokens/s\n", pp, pm, ps);
            if (tg > 0)
                printf("  tg%-5ld %10.2f ± %.2f tokens/s  (%.2f GB of weights per token: %.1f GB/s)\n", tg, tm, ts,
                       wbytes / 1e9, wbytes * tm / 1e9);
            printf("  peak resident memory %.2f GB (context %ld), load %.3f s, first token %.3f s\n", rss_gb, ctx,
                   load_s, first_s);
        }
    }
    free(tokens);
    free(pp_tps);
    free(tg_tps);
    llama_free(&m);
    return rc;
}
