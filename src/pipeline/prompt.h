/* The prompt manager: Med-Alpaca's two Alpaca templates, byte for byte as
 * in the original (../shared/DESIGN.md). */
#ifndef VMED_PIPELINE_PROMPT_H
#define VMED_PIPELINE_PROMPT_H

extern const char PROMPT_WITH_INPUT_HEAD[];
extern const char PROMPT_NO_INPUT_HEAD[];

/* The filled template as a new string (free() it): with an image caption
 * when caption is non-NULL, the instruction-only template otherwise.
 * NULL only when out of memory. */
char *prompt_alpaca(const char *question, const char *caption);

#endif
