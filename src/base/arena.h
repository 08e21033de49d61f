/* One allocation for a run state's many float buffers: sizes[i] floats go
 * to *bufs[i], each piece 64-byte aligned, and *arena is what to free(). */
#ifndef VMED_BASE_ARENA_H
#define VMED_BASE_ARENA_H

#include <stddef.h>

#include "base/error.h"

/* what names the state in the out-of-memory message. */
int arena_carve(float **arena, float **const *bufs, const size_t *sizes, size_t n, const char *what, Error *err);

#endif
