/* libFuzzer target for the SentencePiece model reader: any bytes go to
 * tokenizer_load_spm_buffer; whatever it accepts must encode and decode
 * without trouble (fixed strings and bytes taken from the input itself),
 * and must survive a write/read round trip with the same encodings. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/spm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encodes text, decodes the ids both ways and streams them; returns the
 * ids (malloc'd) or NULL. */
static int *exercise(const Tokenizer *t, const char *text, size_t len, int add_bos, int *n) {
    Error err;
    int *ids;
    if (tokenizer_encode_bytes(t, text, len, add_bos, &ids, n, &err) != 0) return NULL;
    int vocab = tokenizer_vocab_size(t);
    for (int i = 0; i < *n; i++)
        if (ids[i] < 0 || ids[i] >= vocab) __builtin_trap(); /* every id must be a piece */
    for (int skip = 0; skip <= 1; skip++) {
        char *out;
        if (tokenizer_decode(t, ids, *n, skip, &out, &err) != 0) __builtin_trap(); /* valid ids always decode */
        free(out);
    }
    char buf[32];
    volatile size_t sink = 0;
    for (int i = 0; i < *n; i++) sink += strlen(tokenizer_piece_text(t, i ? ids[i - 1] : -1, ids[i], buf, sizeof buf));
    (void)sink;
    return ids;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Tokenizer *t;
    Error err;
    if (tokenizer_load_spm_buffer(&t, data, size, "fuzz.model", &err) != 0) return 0;

    static const char *const fixed[] = {
        "Hello world",
        "   leading  and double  spaces ",
        "Hello</s>world <s> again <unk>",
        "\n\n\ttabs caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80 \xff\xfe bad",
        "",
    };
    /* the input's own tail as text: pieces of the model appear in it */
    size_t tail = size < 256 ? size : 256;
    const char *own = (const char *)data + size - tail;

    uint8_t *saved = NULL;
    size_t n_saved = 0;
    Tokenizer *back = NULL;
    if (tokenizer_serialize_spm(t, &saved, &n_saved, &err) != 0) __builtin_trap();
    if (tokenizer_load_spm_buffer(&back, saved, n_saved, "fuzz.saved.model", &err) != 0) __builtin_trap();
    if (tokenizer_vocab_size(back) != tokenizer_vocab_size(t)) __builtin_trap();

    for (size_t k = 0; k <= sizeof fixed / sizeof fixed[0]; k++) {
        const char *text = k < sizeof fixed / sizeof fixed[0] ? fixed[k] : own;
        size_t len = k < sizeof fixed / sizeof fixed[0] ? strlen(text) : tail;
        int n1 = 0, n2 = 0;
        int *a = exercise(t, text, len, (int)(k & 1), &n1);
        int *b = a ? exercise(back, text, len, 0, &n2) : NULL;
        /* the written model must encode exactly as the one it came from */
        if (a && b) {
            int off = (k & 1) && tokenizer_bos(t) >= 0 ? 1 : 0;
            if (n1 - off != n2 || memcmp(a + off, b, (size_t)n2 * sizeof *b) != 0) __builtin_trap();
        }
        free(a);
        free(b);
    }
    tokenizer_free(back);
    free(saved);
    tokenizer_free(t);
    return 0;
}
