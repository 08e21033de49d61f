/* The language model of the pipeline: Med-Alpaca (any LLaMA-family model)
 * with its tokenizer, and one call that turns a prompt into an answer,
 * sampled and streamed or found by beam search. */
#ifndef VMED_PIPELINE_LLM_H
#define VMED_PIPELINE_LLM_H

#include "base/error.h"
#include "base/threads.h"
#include "generate/generate.h"
#include "models/llama.h"
#include "models/llama_lora.h"
#include "text/spm.h"

typedef struct {
    Llama model;
    Tokenizer *tok;
    LlamaLora *lora; /* NULL: none */
    char path[1024];
} Llm;

/* path: an HF folder (config.json, safetensors, tokenizer.model/.json) or
 * a GGUF file. lora_dir (NULL: none): a PEFT adapter applied at run time;
 * when its base_model_name_or_path names another model but every shape
 * fits, it is used and l->lora->warning says so. */
int llm_load(Llm *l, const char *path, const char *lora_dir, Error *err);
void llm_free(Llm *l);

/* Called with each new piece of answer text as it is decided. */
typedef void (*TextCallback)(void *user, const char *text);

typedef struct {
    GenerateOptions gen; /* max_new_tokens and sampling; eos and callbacks are set by llm_answer */
    int num_beams;       /* > 1: HF beam search (the text arrives in one piece at the end) */
    int n_ctx;           /* KV-cache length; 0: prompt + max_new_tokens, capped by the model */
    ThreadPool *pool;    /* borrowed; NULL: one thread */
    TextCallback on_text;
    void *user;
} LlmRun;

typedef struct {
    char *text;      /* the decoded answer, special tokens skipped */
    int n_prompt;    /* prompt tokens */
    int n_new;       /* generated tokens (EOS included when it came) */
    double t_first_s, t_total_s; /* to the first token (prefill), and in all */
} LlmAnswer;

/* The largest context a run may use: n_ctx if set, else the model's. */
int llm_context(const Llm *l, int n_ctx);

/* Generates the continuation of prompt ids[0..n). */
int llm_answer(const Llm *l, const int *ids, int n, const LlmRun *r, LlmAnswer *out, Error *err);
void llm_answer_free(LlmAnswer *a);

#endif
