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
const char PROMPT_IMAGE_UNREAD[] =
    "An image was uploaded, but no visual expert could read it (it is neither a radiology image nor a chart).";
const char PROMPT_CUT_MARK[] = " ...";

static char *concat(const char *const *parts, const size_t *lens, int n) {
    size_t len = 1;
    for (int i = 0; i < n; i++) len += lens[i];
    char *out = malloc(len);
    if (!out) return NULL;
    char *p = out;
    for (int i = 0; i < n; i++) {
        memcpy(p, parts[i], lens[i]);
        p += lens[i];
    }
    *p = 0;
    return out;
}

/* The template with the first caption_len bytes of caption (and the cut
 * mark when that is not all of it). */
static char *fill(const char *question, const char *caption, size_t caption_len) {
    if (!caption) {
        const char *parts[] = {PROMPT_NO_INPUT_HEAD, question, "\n\n### Response:\n"};
        size_t lens[] = {strlen(parts[0]), strlen(question), strlen(parts[2])};
        return concat(parts, lens, 3);
    }
    int cut = caption_len < strlen(caption);
    const char *parts[] = {PROMPT_WITH_INPUT_HEAD, question, "\n\n### Input:\n", caption,
                           cut ? PROMPT_CUT_MARK : "", "\n\n### Response:\n"};
    size_t lens[] = {strlen(parts[0]), strlen(question), strlen(parts[2]), caption_len, strlen(parts[4]),
                     strlen(parts[5])};
    return concat(parts, lens, 6);
}

char *prompt_alpaca(const char *question, const char *caption) {
    return fill(question, caption, caption ? strlen(caption) : 0);
}

void prompt_free(Prompt *p) {
    free(p->text);
    free(p->ids);
    memset(p, 0, sizeof *p);
}

/* Fills and tokenizes with caption_len bytes of the caption; 1 if it fits,
 * 0 if not (p then holds nothing), -1 on error. */
static int try_fill(Prompt *p, const Tokenizer *tok, const char *question, const char *caption,
                    size_t caption_len, int max_tokens, Error *err) {
    char *text = fill(question, caption, caption_len);
    if (!text) return error_set(err, "out of memory");
    int *ids, n;
    if (tokenizer_encode(tok, text, 1, &ids, &n, err)) {
        free(text);
        return -1;
    }
    if (n > max_tokens) {
        free(text);
        free(ids);
        return 0;
    }
    prompt_free(p);
    p->text = text;
    p->ids = ids;
    p->n_ids = n;
    p->caption_kept = caption_len;
    return 1;
}

/* The start of the UTF-8 character that holds byte i (continuation bytes
 * are 10xxxxxx), so a cut never splits a character. */
static size_t char_start(const char *s, size_t i) {
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

static int is_blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
    return 1;
}

int prompt_build(Prompt *p, const Tokenizer *tok, const char *question, const char *caption, int max_tokens,
                 Error *err) {
    memset(p, 0, sizeof *p);
    if (is_blank(question)) return error_set(err, "the question is empty");
    size_t len = caption ? strlen(caption) : 0;
    int r = try_fill(p, tok, question, caption, len, max_tokens, err);
    p->caption_len = len;
    if (r) return r < 0 ? -1 : 0;
    if (caption) {
        /* Longest prefix that fits: tokens grow with the prefix, so a
         * binary search over byte lengths finds it in log2(len) encodes. */
        size_t lo = 0, hi = len; /* prefix lo fits unless proven otherwise below; hi does not */
        r = try_fill(p, tok, question, caption, 0, max_tokens, err);
        if (r < 0) return -1;
        if (r == 1) {
            while (hi - lo > 1) {
                size_t mid = char_start(caption, lo + (hi - lo) / 2);
                if (mid <= lo) break;
                Prompt q = {0};
                int f = try_fill(&q, tok, question, caption, mid, max_tokens, err);
                if (f < 0) {
                    prompt_free(p);
                    return -1;
                }
                if (f) {
                    prompt_free(p);
                    *p = q;
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            p->caption_len = len;
            return 0;
        }
    }
    /* Measure the shortest possible prompt to say how far over it is. */
    char *text = fill(question, caption, 0);
    int *ids = NULL, n = 0;
    if (!text || tokenizer_encode(tok, text, 1, &ids, &n, err)) {
        free(text);
        return text ? -1 : error_set(err, "out of memory");
    }
    free(text);
    free(ids);
    return error_set(err,
                     "the question is too long: the prompt needs %d tokens without any image text, but only %d "
                     "fit (the context less the tokens kept for the answer)",
                     n, max_tokens);
}
