/* ask: image + question -> answer, the whole system of the original.
 *
 *   image -> router -> visual expert -> text -+
 *                                              +-> prompt manager -> LLM -> answer
 *   question ---------------------------------+
 *
 * An Assistant holds what stays loaded between questions (the LLM, the
 * router, the experts once used, the threads), so `vmed chat` pays for
 * loading once. Every intermediate text and each stage's time is kept for
 * --show-steps. */
#ifndef VMED_PIPELINE_ASK_H
#define VMED_PIPELINE_ASK_H

#include "base/error.h"
#include "base/threads.h"
#include "models/router.h"
#include "pipeline/expert.h"
#include "pipeline/llm.h"
#include "pipeline/prompt.h"

enum { ASK_MAX_EXPERTS = 8 };

typedef struct {
    const char *llm;        /* the LLM folder; NULL: the models directory's llm */
    const char *lora;       /* a PEFT adapter folder; "none": none; NULL: the
                             * models directory's lora when llm is NULL too */
    const char *router;     /* the router file; NULL: the shipped one */
    /* Expert model folders by registry index (expert_at); NULL: the models
     * directory's folder for the expert's name. */
    const char *expert_dirs[ASK_MAX_EXPERTS];
    /* NULL: the router decides; "none": no expert; else an expert's name. */
    const char *expert;
    int n_threads;
    ExpertOptions expert_options;
} AssistantConfig;

void assistant_config_init(AssistantConfig *c);

typedef struct {
    AssistantConfig cfg;
    Llm llm;
    Router *router;                    /* loaded on the first image that needs it */
    void *experts[ASK_MAX_EXPERTS];    /* loaded on first use */
    char expert_paths[ASK_MAX_EXPERTS][1024];
    ThreadPool *pool;
    double t_load_llm_s;
} Assistant;

/* Loads the LLM (the rest loads when an image needs it). */
int assistant_open(Assistant *a, const AssistantConfig *c, Error *err);
void assistant_close(Assistant *a);

/* What became of an image on its way to the prompt. */
typedef struct {
    char image[1024];
    char route[64];         /* the router's class, or "" when --expert chose */
    float confidence;       /* the router's probability of that class */
    const ExpertKind *expert; /* who read it; NULL when nobody did */
    char expert_path[1024];
    char *text;             /* the expert's text; NULL when nobody read it */
    char note[1024];        /* why nobody read it, for the user */
    int expert_missing;     /* an expert should have read it but has no model */
    double t_load_s, t_route_s, t_expert_s;
} ImageReading;

/* Routes the image and runs its expert. Fails on an unreadable image or a
 * broken expert model; a missing expert model is not a failure: the
 * reading then has no text and a note saying what is missing. */
int assistant_read_image(Assistant *a, const char *path, ImageReading *r, Error *err);
void image_reading_free(ImageReading *r);

typedef struct {
    GenerateOptions gen;
    int num_beams;
    int n_ctx;            /* 0: the model's context */
    TextCallback on_text; /* streams the answer */
    void *user;
} AskOptions;

typedef struct {
    Prompt prompt;
    LlmAnswer answer;
    int budget;           /* prompt tokens allowed */
    double t_prompt_s;
} AskResult;

/* Answers question with the image reading as the template's input (NULL:
 * no image): assistant_prompt, then assistant_generate. */
int assistant_answer(Assistant *a, const char *question, const ImageReading *image, const AskOptions *o,
                     AskResult *res, Error *err);
/* The two halves, for callers that show the prompt before the answer. */
int assistant_prompt(Assistant *a, const char *question, const ImageReading *image, const AskOptions *o,
                     AskResult *res, Error *err);
int assistant_generate(Assistant *a, const AskOptions *o, AskResult *res, Error *err);
void ask_result_free(AskResult *r);

#endif
