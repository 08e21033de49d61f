/* libFuzzer target for the HF tokenizer.json reader: any bytes go to
 * tokenizer_load_hf_json_buffer; whatever it accepts must encode and
 * decode without trouble, and when it can be written as a SentencePiece
 * model, that model must load again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/spm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Tokenizer *t;
    Error err;
    if (tokenizer_load_hf_json_buffer(&t, (const char *)data, size, "fuzz.json", &err) != 0) return 0;
    static const char *const texts[] = {
        "Hello world", "  ab ab[PAD]zz  ", "Hello</s>world <s> again <unk>",
        "\n\ttabs caf\xc3\xa9 \xe6\x9d\xb1 \xf0\x9f\x98\x80 \xff bad", "",
    };
    int vocab = tokenizer_vocab_size(t);
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        int *ids, n;
        if (tokenizer_encode(t, texts[k], (int)(k & 1), &ids, &n, &err) != 0) continue;
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= vocab) __builtin_trap();
        for (int skip = 0; skip <= 1; skip++) {
            char *out;
            if (tokenizer_decode(t, ids, n, skip, &out, &err) != 0) __builtin_trap();
            free(out);
        }
        free(ids);
    }
    uint8_t *saved;
    size_t n_saved;
    if (tokenizer_serialize_spm(t, &saved, &n_saved, &err) == 0) {
        Tokenizer *back;
        if (tokenizer_load_spm_buffer(&back, saved, n_saved, "fuzz.saved.model", &err) != 0) __builtin_trap();
        if (tokenizer_vocab_size(back) != vocab) __builtin_trap();
        tokenizer_free(back);
        free(saved);
    }
    tokenizer_free(t);
    return 0;
}
