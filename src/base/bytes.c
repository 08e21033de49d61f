#include "base/bytes.h"

#include <stdlib.h>
#include <string.h>

void bytes_put(Bytes *b, const void *s, size_t n) {
    if (b->oom || n == 0) return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void bytes_put_le(Bytes *b, uint64_t v, int n) {
    uint8_t tmp[8];
    for (int i = 0; i < n && i < 8; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    bytes_put(b, tmp, (size_t)(n < 8 ? n : 8));
}

void bytes_free(Bytes *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}
