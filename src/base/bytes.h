/* A growable byte buffer for the writers that build a header or an archive
 * in memory (safetensors, GGUF, torch zip). Running out of memory is
 * sticky, so appends need no checks: the caller looks at oom once, at the
 * end. */
#ifndef VMED_BASE_BYTES_H
#define VMED_BASE_BYTES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} Bytes;

void bytes_put(Bytes *b, const void *s, size_t n);
/* v as n little-endian bytes (n <= 8). */
void bytes_put_le(Bytes *b, uint64_t v, int n);
void bytes_free(Bytes *b);

#endif
