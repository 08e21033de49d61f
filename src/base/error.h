/* Errors: every library function that can fail returns 0 on success or -1 on
 * failure and fills an Error with one sentence that says what, where and why,
 * e.g. "model.safetensors: tensor 'lm_head.weight' is 32000x4096 but config
 * says vocab_size 32001". The caller decides what to do with it; the library
 * never prints, aborts or exits on bad input. */
#ifndef VMED_BASE_ERROR_H
#define VMED_BASE_ERROR_H

#include <stddef.h>

typedef struct {
    char msg[1024];
} Error;

/* Writes the message and returns -1, so a failing path reads
 * `return error_set(err, "...", ...);`. err may be NULL. */
int error_set(Error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Puts "prefix: " in front of the message already in err (used to add the
 * file name when a lower layer did not know it). Returns -1. */
int error_prefix(Error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
