/* safetensors, the Hugging Face weight format.
 *
 * A file is: 8 bytes N (u64 little-endian), N bytes of UTF-8 JSON, then the
 * data section. The JSON maps each tensor name to {"dtype", "shape",
 * "data_offsets": [begin, end)} with offsets relative to the data section,
 * plus an optional "__metadata__" object of string -> string.
 *
 * Reading maps the file and validates the whole header before anything is
 * used; a tensor's data then points straight into the read-only map. Big
 * models come as shards: a folder with model.safetensors.index.json whose
 * "weight_map" names the shard file of every tensor.
 *
 * Layout rules enforced (the same as the reference Rust implementation, so
 * every file HF can load opens here and nothing HF would refuse does):
 *   - header length <= 100,000,000 bytes and inside the file;
 *   - the header is valid UTF-8 JSON, an object, optionally padded with
 *     whitespace (HF pads with spaces to a multiple of 8);
 *   - each tensor has a supported dtype, at most TENSOR_MAX_DIMS
 *     non-negative integer dimensions, and end - begin = numel x dtype size;
 *   - the tensors' byte ranges tile the data section exactly: no overlaps,
 *     no holes between tensors, no unused bytes at the end. The format
 *     states the buffer must be entirely indexed, which keeps a file from
 *     hiding a second payload (polyglot files) and makes the file size a
 *     check on the header;
 *   - no name appears twice (in one header, or across shards).
 * Not required: alignment. A header whose length is not a multiple of 8
 * leaves data misaligned for its dtype; such files are valid, and the data
 * pointer is then misaligned too. st_tensor_aligned tells; readers of
 * possibly misaligned data must use memcpy or unaligned loads. */
#ifndef VMED_FORMATS_SAFETENSORS_H
#define VMED_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/file.h"
#include "tensor/tensor.h"

/* The header limit of the reference implementation: refuse before parsing. */
#define ST_MAX_HEADER 100000000u

typedef struct {
    char *name;            /* owned by the SafeTensors */
    DType dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    const void *data;      /* points into the mmap (or the st_parse buffer); read-only */
    size_t nbytes;
    uint64_t offset;       /* begin, relative to the start of the data section */
    int file;              /* index into files[] */
} StTensor;

typedef struct {
    MappedFile *files;     /* one per file opened (shards in index order) */
    int n_files;
    StTensor *tensors;     /* sorted by name: st_find binary-searches them */
    int n_tensors;
    char **meta_keys;      /* __metadata__ of every file, first value of a key wins */
    char **meta_values;
    int n_meta;
    char *label;           /* the name st_parse was given (no file mapped) */
} SafeTensors;

/* path: a .safetensors file, a folder holding model.safetensors or
 * model.safetensors.index.json, or an index .json file; PyTorch's
 * pytorch_model.bin (or its index) too, read by formats/torch_bin into the
 * same struct (in a folder only when it has no safetensors). On failure st
 * is left empty (st_close is then harmless but not needed). */
int st_open(SafeTensors *st, const char *path, Error *err);
/* Parses and validates one file held in memory; nothing is mapped and the
 * tensors point into data, which must outlive st. label names it in messages. */
int st_parse(SafeTensors *st, const uint8_t *data, size_t size, const char *label, Error *err);
void st_close(SafeTensors *st);

const StTensor *st_find(const SafeTensors *st, const char *name);
/* A tensor.h view of t. Its data pointer is not const only because Tensor's
 * is not: the memory is a read-only map and must not be written. */
Tensor st_tensor_view(const StTensor *t);
/* 1 when t->data is aligned to its dtype's size (always so for files HF writes). */
int st_tensor_aligned(const StTensor *t);
const char *st_metadata(const SafeTensors *st, const char *key);
/* The file t came from (the label for st_parse). */
const char *st_file_path(const SafeTensors *st, const StTensor *t);

/* Dtype from its safetensors spelling ("F32", "BF16", ...); -1 if unsupported. */
int st_dtype_from_name(const char *s, DType *out);

/* Streaming writer: declare every tensor, then write their bytes in the
 * same order in chunks of any size; the header goes out on the first
 * write. The file is written to a temporary name and renamed by
 * st_writer_close, so a failure never leaves a partial file behind. After
 * any error call st_writer_abort (st_writer_close cleans up by itself).
 * The data section starts 8-aligned; each tensor stays aligned for its dtype
 * when tensors are declared widest dtype first (HF's order), or when every
 * tensor's size is a multiple of 8. */
typedef struct StWriter StWriter;

int st_writer_open(StWriter **w, const char *path, Error *err);
int st_writer_add(StWriter *w, const char *name, DType dt, int ndim, const int64_t *shape, Error *err);
/* __metadata__ holds {"format": "pt"} unless replaced here. */
int st_writer_set_metadata(StWriter *w, const char *key, const char *value, Error *err);
int st_writer_write(StWriter *w, const void *data, size_t nbytes, Error *err);
/* Frees w whatever happens. */
int st_writer_close(StWriter *w, Error *err);
void st_writer_abort(StWriter *w);

/* Writes n tensors whose data is in memory (each t->nbytes must match its
 * shape); name, dtype, shape, data and nbytes are used. */
int st_save(const char *path, const StTensor *tensors, int n, Error *err);

/* For readers of other formats that fill a SafeTensors (formats/torch_bin):
 * sorts the tensors for st_find and refuses a name seen twice ("appears
 * twice in the <what>"; index is the shard index path, NULL for one file). */
int st_finish(SafeTensors *st, const char *index, const char *what, Error *err);

/* Maps and parses one shard into st, counting it in st->n_files once mapped. */
typedef int (*StShardOpener)(SafeTensors *st, const char *path, const void *ctx, Error *err);

/* Opens the shards an HF *.index.json names (its weight_map), each with add,
 * checks that every entry names the shard its tensor is in, and finishes. */
int st_open_sharded(SafeTensors *st, const char *index, StShardOpener add, const void *ctx, const char *what,
                    Error *err);

#endif
