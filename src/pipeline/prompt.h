/* The prompt manager: Med-Alpaca's two Alpaca templates, byte for byte as
 * in the original (../shared/DESIGN.md), and fitting a prompt into the
 * model's context by shortening the expert's text. */
#ifndef VMED_PIPELINE_PROMPT_H
#define VMED_PIPELINE_PROMPT_H

#include "base/error.h"
#include "text/spm.h"

extern const char PROMPT_WITH_INPUT_HEAD[];
extern const char PROMPT_NO_INPUT_HEAD[];
/* The input when an image was given but no expert read it. */
extern const char PROMPT_IMAGE_UNREAD[];
/* Put after an expert text that had to be cut. */
extern const char PROMPT_CUT_MARK[];

/* The filled template as a new string (free() it): with an image caption
 * when caption is non-NULL, the instruction-only template otherwise.
 * NULL only when out of memory. */
char *prompt_alpaca(const char *question, const char *caption);

typedef struct {
    char *text;          /* the final prompt */
    int *ids;            /* its tokens, BOS first */
    int n_ids;
    size_t caption_kept; /* bytes of the expert text in the prompt */
    size_t caption_len;  /* bytes the expert text had */
} Prompt;

/* Fills the template and tokenizes it so that it takes at most max_tokens
 * tokens. When it is too long, the expert text loses bytes from its end
 * (at a character boundary, PROMPT_CUT_MARK appended) until it fits: the
 * instruction and the response header are never cut. Fails, saying by how
 * much, when even the question alone does not fit, and for an empty
 * question. */
int prompt_build(Prompt *p, const Tokenizer *tok, const char *question, const char *caption, int max_tokens,
                 Error *err);
void prompt_free(Prompt *p);

#endif
