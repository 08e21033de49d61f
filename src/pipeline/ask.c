#include "pipeline/ask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "pipeline/models_dir.h"

void assistant_config_init(AssistantConfig *c) {
    memset(c, 0, sizeof *c);
    c->n_threads = 1;
    c->expert_options = expert_default_options();
}

int assistant_open(Assistant *a, const AssistantConfig *c, Error *err) {
    memset(a, 0, sizeof *a);
    a->cfg = *c;
    if (expert_count() > ASK_MAX_EXPERTS) return error_set(err, "too many experts registered");
    if (c->expert && strcmp(c->expert, "none") != 0 && !expert_find(c->expert))
        return error_set(err, "no expert named '%s'", c->expert);
    char llm_dir[1024], lora_dir[1024];
    const char *llm = c->llm, *lora = c->lora;
    if (!llm) {
        if (models_find("llm", llm_dir, sizeof llm_dir, err)) return -1;
        llm = llm_dir;
        /* The models directory's LLM comes with its LoRA, when one was
         * pulled: that pair is Med-Alpaca's LoRA variant. */
        Error none;
        if (!lora && models_find("lora", lora_dir, sizeof lora_dir, &none) == 0) lora = lora_dir;
    }
    if (lora && strcmp(lora, "none") == 0) lora = NULL;
    if (c->n_threads > 1 && pool_create(&a->pool, c->n_threads, err)) return -1;
    /* One pool for the LLM and the experts: they never run at once. */
    a->cfg.expert_options.n_threads = c->n_threads;
    a->cfg.expert_options.pool = a->pool;
    double t0 = clock_seconds();
    if (llm_load(&a->llm, llm, lora, err)) {
        pool_free(a->pool);
        a->pool = NULL;
        return -1;
    }
    a->t_load_llm_s = clock_seconds() - t0;
    return 0;
}

void assistant_close(Assistant *a) {
    for (int i = 0; i < expert_count() && i < ASK_MAX_EXPERTS; i++)
        if (a->experts[i]) expert_at(i)->free(a->experts[i]);
    if (a->router) router_free(a->router);
    free(a->router);
    llm_free(&a->llm);
    pool_free(a->pool);
    memset(a, 0, sizeof *a);
}

void image_reading_free(ImageReading *r) {
    free(r->text);
    r->text = NULL;
}

static int expert_index(const ExpertKind *k) {
    for (int i = 0; i < expert_count(); i++)
        if (expert_at(i) == k) return i;
    return -1;
}

/* Loads expert i on first use. 1: loaded, 0: no model for it (r->note
 * says why), -1: its model is broken. */
static int load_expert(Assistant *a, int i, ImageReading *r, Error *err) {
    const ExpertKind *k = expert_at(i);
    if (!a->experts[i]) {
        const char *dir = a->cfg.expert_dirs[i];
        if (!dir) {
            Error why;
            if (models_find(k->name, a->expert_paths[i], sizeof a->expert_paths[i], &why)) {
                snprintf(r->note, sizeof r->note, "%s", why.msg);
                r->expert_missing = 1;
                return 0;
            }
            dir = a->expert_paths[i];
        } else {
            snprintf(a->expert_paths[i], sizeof a->expert_paths[i], "%s", dir);
        }
        double t0 = clock_seconds();
        if (k->load(&a->experts[i], dir, &a->cfg.expert_options, err)) {
            a->experts[i] = NULL;
            Error e = *err;
            return error_set(err, "expert %s: %s", k->name, e.msg);
        }
        r->t_load_s = clock_seconds() - t0;
    }
    snprintf(r->expert_path, sizeof r->expert_path, "%s", a->expert_paths[i]);
    return 1;
}

/* The expert for the image: the one --expert names, or the router's
 * choice. NULL with r->note set when none applies. */
static int choose_expert(Assistant *a, const Image *img, ImageReading *r, const ExpertKind **out, Error *err) {
    *out = NULL;
    if (a->cfg.expert) {
        if (strcmp(a->cfg.expert, "none") == 0) {
            snprintf(r->note, sizeof r->note, "no expert asked for (--expert none)");
            return 0;
        }
        *out = expert_find(a->cfg.expert);
        return 0;
    }
    double t0 = clock_seconds();
    if (!a->router) {
        const char *path = a->cfg.router ? a->cfg.router : router_default_path();
        Router *router = calloc(1, sizeof *router);
        if (!router) return error_set(err, "out of memory");
        if (router_load(router, path, err)) {
            free(router);
            return -1;
        }
        a->router = router;
    }
    RouterPrediction p;
    if (router_predict(a->router, img, &p, err)) return -1;
    snprintf(r->route, sizeof r->route, "%s", a->router->config.class_names[p.label]);
    r->confidence = p.prob;
    r->t_route_s = clock_seconds() - t0;
    *out = expert_for_class(r->route);
    if (!*out) snprintf(r->note, sizeof r->note, "the router's class '%s' has no expert", r->route);
    return 0;
}

int assistant_read_image(Assistant *a, const char *path, ImageReading *r, Error *err) {
    memset(r, 0, sizeof *r);
    snprintf(r->image, sizeof r->image, "%s", path);
    Image img;
    if (image_load(&img, path, &a->cfg.expert_options.limits, err)) return -1;
    const ExpertKind *k;
    int rc = choose_expert(a, &img, r, &k, err);
    if (rc == 0 && k) {
        int i = expert_index(k), got = load_expert(a, i, r, err);
        if (got < 0) rc = -1;
        if (got > 0) {
            double t0 = clock_seconds();
            ExpertOutput out = {0};
            if (k->describe(a->experts[i], &img, &out, err)) {
                Error e = *err;
                error_set(err, "expert %s on %s: %s", k->name, path, e.msg);
                rc = -1;
            } else {
                r->expert = k;
                r->text = out.text;
                out.text = NULL;
                expert_output_free(&out);
            }
            r->t_expert_s = clock_seconds() - t0;
        }
    }
    image_free(&img);
    return rc;
}

void ask_result_free(AskResult *r) {
    prompt_free(&r->prompt);
    llm_answer_free(&r->answer);
}

int assistant_prompt(Assistant *a, const char *question, const ImageReading *image, const AskOptions *o,
                     AskResult *res, Error *err) {
    memset(res, 0, sizeof *res);
    int n_ctx = llm_context(&a->llm, o->n_ctx);
    res->budget = n_ctx - o->gen.max_new_tokens;
    if (res->budget < 1)
        return error_set(err, "no room for a prompt: the context is %d tokens and %d are kept for the answer",
                         n_ctx, o->gen.max_new_tokens);
    const char *input = NULL;
    if (image) input = image->text ? image->text : PROMPT_IMAGE_UNREAD;
    double t0 = clock_seconds();
    if (prompt_build(&res->prompt, a->llm.tok, question, input, res->budget, err)) return -1;
    res->t_prompt_s = clock_seconds() - t0;
    return 0;
}

int assistant_generate(Assistant *a, const AskOptions *o, AskResult *res, Error *err) {
    /* The KV cache holds this prompt and its answer, not the whole context. */
    LlmRun run = {o->gen, o->num_beams, o->n_ctx, a->pool, o->on_text, o->user};
    return llm_answer(&a->llm, res->prompt.ids, res->prompt.n_ids, &run, &res->answer, err);
}

int assistant_answer(Assistant *a, const char *question, const ImageReading *image, const AskOptions *o,
                     AskResult *res, Error *err) {
    if (assistant_prompt(a, question, image, o, res, err)) return -1;
    if (assistant_generate(a, o, res, err)) {
        ask_result_free(res);
        return -1;
    }
    return 0;
}
