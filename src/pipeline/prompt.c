#include "pipeline/prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char PROMPT_WITH_INPUT_HEAD[] =
    "Below is an instruction that describes a task, paired with an input that provides further context of an "
    "uploaded image. Write a response that appropriately completes the request.\n\n### Instruction:\n";
const char PROMPT_NO_INPUT_HEAD[] =
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n";

static char *concat(const char *const *parts, int n) {
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(parts[i]);
    char *out = malloc(len);
    if (!out) return NULL;
    char *p = out;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        memcpy(p, parts[i], l);
        p += l;
    }
    *p = 0;
    return out;
}

char *prompt_alpaca(const char *question, const char *caption) {
    if (caption) {
        const char *parts[] = {PROMPT_WITH_INPUT_HEAD, question, "\n\n### Input:\n", caption, "\n\n### Response:\n"};
        return concat(parts, 5);
    }
    const char *parts[] = {PROMPT_NO_INPUT_HEAD, question, "\n\n### Response:\n"};
    return concat(parts, 3);
}
