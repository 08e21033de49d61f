/* WordPiece: a vocab.txt and a text from the input (split at the first NUL
 * byte), loaded, then the text encoded and decoded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/wordpiece.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int lower = data[0] & 1;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    const char *nul = memchr(p, 0, n);
    size_t vocab_len = nul ? (size_t)(nul - p) : n;
    const char *text = nul ? nul + 1 : "Chest X-ray: don't [SEP] 3.5cm Übergröße 肺";
    size_t text_len = nul ? n - vocab_len - 1 : strlen(text);
    WordPiece *w;
    Error err;
    if (wordpiece_load_vocab_buffer(&w, p, vocab_len, "fuzz vocab", lower, &err)) return 0;
    int *ids = NULL, n_ids = 0;
    if (wordpiece_encode_bytes(w, text, text_len, 1, &ids, &n_ids, &err) == 0) {
        char *out = NULL;
        if (wordpiece_decode(w, ids, n_ids, 0, &out, &err) == 0) free(out);
        if (wordpiece_decode(w, ids, n_ids, 1, &out, &err) == 0) free(out);
        free(ids);
    }
    wordpiece_free(w);
    return 0;
}
