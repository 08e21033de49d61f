#include "base/arena.h"

#include <stdint.h>
#include <stdlib.h>

/* 16 floats = 64 bytes, a cache line and an AVX-512 register */
static size_t rounded(size_t n) { return (n + 15) & ~(size_t)15; }

int arena_carve(float **arena, float **const *bufs, const size_t *sizes, size_t n, const char *what, Error *err) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (sizes[i] > (SIZE_MAX / sizeof(float)) / 2 - total)
            return error_set(err, "%s: run state too large", what);
        total += rounded(sizes[i]);
    }
    void *p;
    if (posix_memalign(&p, 64, (total ? total : 1) * sizeof(float)) != 0) {
        *arena = NULL;
        return error_set(err, "out of memory allocating %.1f MB for %s", (double)total * 4 / 1e6, what);
    }
    *arena = p;
    float *f = p;
    for (size_t i = 0; i < n; i++) {
        *bufs[i] = f;
        f += rounded(sizes[i]);
    }
    return 0;
}
