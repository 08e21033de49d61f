/* Files: read-only memory maps for model weights (used in place, never
 * copied), whole-file reads with a size cap for small text files, and
 * atomic writes (temporary file + rename) for anything that matters. */
#ifndef VMED_BASE_FILE_H
#define VMED_BASE_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

typedef struct {
    const uint8_t *data; /* NULL for an empty file */
    size_t size;
    char path[1024];
} MappedFile;

int file_map(MappedFile *f, const char *path, Error *err);
void file_unmap(MappedFile *f);

/* Reads a whole file into a new NUL-terminated buffer (free() it). Files
 * larger than max_bytes are refused with a message naming the limit, so a
 * 2 GB config.json cannot exhaust memory. */
int file_read_all(const char *path, size_t max_bytes, char **out, size_t *len, Error *err);

int file_exists(const char *path);
int dir_exists(const char *path);

/* path = dir + "/" + name, refusing results that do not fit. */
int path_join(char *out, size_t cap, const char *dir, const char *name, Error *err);

/* Atomic writer: writes go to "<path>.tmp.<pid>", which file_commit fsyncs
 * and renames over path. file_abort removes the temporary file. A crash
 * mid-write therefore never leaves a half-written file under the real name. */
typedef struct {
    FILE *fp;
    char path[1024];
    char tmp[1100];
} AtomicFile;

int file_begin(AtomicFile *f, const char *path, Error *err);
int file_write(AtomicFile *f, const void *data, size_t n, Error *err);
int file_commit(AtomicFile *f, Error *err);
void file_abort(AtomicFile *f);
/* Removes a folder and everything under it (symbolic links are removed,
 * not followed). A missing folder is not an error. */
int dir_remove_tree(const char *path, Error *err);

/* The whole of data, atomically (the four calls above in one). */
int file_write_all(const char *path, const void *data, size_t n, Error *err);

#endif
