/* GGUF, the llama.cpp / ggml model format (versions 2 and 3, little-endian).
 *
 * A file is: "GGUF", u32 version, u64 tensor count, u64 metadata count;
 * the metadata (key string, u32 value type, value); the tensor infos (name
 * string, u32 n_dims, n_dims x u64 sizes innermost first, u32 ggml type,
 * u64 offset into the data section); padding to the alignment
 * (general.alignment, default 32); the data section. A string is a u64
 * length and that many bytes, with no NUL.
 *
 * Reading maps the file and validates all of it before anything is used:
 * every length and count against the bytes left, value and tensor types,
 * 1..4 dimensions each >= 1 whose product and byte size do not overflow,
 * ne0 a multiple of the type's block size, offsets aligned, inside the data
 * section and not overlapping, keys and tensor names unique. Tensors then
 * point straight into the read-only map.
 *
 * Dimensions keep GGUF's order: ne[0] is the innermost (a row's length), so
 * a PyTorch [rows, cols] matrix is ne = {cols, rows}. gguf_tensor_view
 * turns that back into a row-major tensor.h view. */
#ifndef VMED_FORMATS_GGUF_H
#define VMED_FORMATS_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/file.h"
#include "tensor/tensor.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
/* ggml's GGML_MAX_NAME: names are stored in a 64-byte field with a NUL. */
#define GGUF_MAX_NAME 63
/* The spec caps keys at 65535 bytes. */
#define GGUF_MAX_KEY 65535

/* Metadata value types, numbered as in the spec. */
typedef enum {
    GGUF_U8 = 0,
    GGUF_I8 = 1,
    GGUF_U16 = 2,
    GGUF_I16 = 3,
    GGUF_U32 = 4,
    GGUF_I32 = 5,
    GGUF_F32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_U64 = 10,
    GGUF_I64 = 11,
    GGUF_F64 = 12,
    GGUF_TYPE_COUNT
} GgufType;

/* ggml tensor types (ggml.h's enum ggml_type). Ids 4, 5, 31-33 and 36-38
 * belonged to types ggml has removed; files cannot use them. */
typedef enum {
    GGML_F32 = 0,
    GGML_F16 = 1,
    GGML_Q4_0 = 2,
    GGML_Q4_1 = 3,
    GGML_Q5_0 = 6,
    GGML_Q5_1 = 7,
    GGML_Q8_0 = 8,
    GGML_Q8_1 = 9,
    GGML_Q2_K = 10,
    GGML_Q3_K = 11,
    GGML_Q4_K = 12,
    GGML_Q5_K = 13,
    GGML_Q6_K = 14,
    GGML_Q8_K = 15,
    GGML_IQ2_XXS = 16,
    GGML_IQ2_XS = 17,
    GGML_IQ3_XXS = 18,
    GGML_IQ1_S = 19,
    GGML_IQ4_NL = 20,
    GGML_IQ3_S = 21,
    GGML_IQ2_S = 22,
    GGML_IQ4_XS = 23,
    GGML_I8 = 24,
    GGML_I16 = 25,
    GGML_I32 = 26,
    GGML_I64 = 27,
    GGML_F64 = 28,
    GGML_IQ1_M = 29,
    GGML_BF16 = 30,
    GGML_TQ1_0 = 34,
    GGML_TQ2_0 = 35,
    GGML_MXFP4 = 39,
    GGML_NVFP4 = 40,
    GGML_Q1_0 = 41,
    GGML_TYPE_LIMIT /* one past the largest id */
} GgmlType;

/* A type's storage: blocks of block_elems values take block_bytes bytes. */
typedef struct {
    const char *name; /* "Q4_0", as ggml spells it */
    int block_elems;
    int block_bytes;
    int quantized;
} GgmlTypeInfo;

/* NULL for an id ggml does not define (or no longer does). */
const GgmlTypeInfo *ggml_type_info(uint32_t type);
/* The name, or "unknown". */
const char *ggml_type_name(uint32_t type);
/* F32, F16, BF16, F64, I8..I64 as a tensor.h dtype; -1 for the rest. */
int ggml_type_to_dtype(uint32_t type, DType *out);
/* Bytes of a row of n values (n a multiple of the block size). */
uint64_t ggml_row_bytes(uint32_t type, uint64_t n);

/* "u32", "string", "array", ... for messages; "unknown" past the enum. */
const char *gguf_type_name(uint32_t type);

typedef struct {
    char *key;             /* owned, NUL-terminated */
    uint32_t type;         /* GgufType */
    uint32_t elem_type;    /* for GGUF_ARRAY: the elements' type, else = type */
    uint64_t count;        /* elements of an array, else 1 */
    const uint8_t *data;   /* the value (for an array: its first element), in the map */
    uint64_t nbytes;       /* of all elements */
    uint64_t *str_offsets; /* array of strings: each element's offset from data; owned */
} GgufKV;

typedef struct {
    char *name;             /* owned, NUL-terminated */
    uint32_t type;          /* GgmlType */
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* innermost first; unused dims are 1 */
    uint64_t offset;        /* from the start of the data section */
    uint64_t nbytes;
    const void *data;       /* in the read-only map */
} GgufTensor;

typedef struct Gguf {
    MappedFile file;        /* empty for gguf_parse */
    char label[1024];       /* the path, or gguf_parse's label: names the file in messages */
    const uint8_t *bytes;
    size_t size;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;   /* start of the data section in the file */
    GgufKV *kvs;            /* in file order */
    int64_t n_kv;
    GgufTensor *tensors;    /* in file order */
    int64_t n_tensors;
    GgufKV **kv_by_key;         /* kvs sorted by key, for lookups */
    GgufTensor **tensor_by_name; /* tensors sorted by name */
} Gguf;

/* Maps and validates path. *out is NULL on failure. */
int gguf_open(Gguf **out, const char *path, Error *err);
/* The same over bytes in memory, which must outlive *out; label names it. */
int gguf_parse(Gguf **out, const uint8_t *data, size_t size, const char *label, Error *err);
void gguf_close(Gguf *g);

/* 1 when path is a regular file that ends in ".gguf" or starts with "GGUF". */
int gguf_path_is_gguf(const char *path);

/* ------------------------------------------------------------ metadata */

const GgufKV *gguf_find_kv(const Gguf *g, const char *key);

/* Typed getters: 0 and *out set when key holds a value of a fitting type, 1
 * when key is absent (err untouched), -1 with a message naming the file and
 * the key when it has another type or the value does not fit. Integers of
 * any width and signedness are accepted; floats take F32 and F64. */
int gguf_get_int(const Gguf *g, const char *key, int64_t *out, Error *err);
int gguf_get_float(const Gguf *g, const char *key, double *out, Error *err);
int gguf_get_bool(const Gguf *g, const char *key, int *out, Error *err);
/* *s points into the map and is not NUL-terminated. */
int gguf_get_string(const Gguf *g, const char *key, const char **s, uint64_t *len, Error *err);
/* An array whose elements have type elem_type; *count gets its length. */
int gguf_get_array(const Gguf *g, const char *key, uint32_t elem_type, const GgufKV **kv, uint64_t *count,
                   Error *err);

/* Element i of an array (the caller has checked the element type and i).
 * Unaligned-safe: values are copied out of the map. */
int64_t gguf_array_int(const GgufKV *kv, uint64_t i);
double gguf_array_float(const GgufKV *kv, uint64_t i);
const char *gguf_array_string(const GgufKV *kv, uint64_t i, uint64_t *len);
/* A scalar KV's value as a number (integers, floats and bools). */
double gguf_kv_number(const GgufKV *kv);

/* ------------------------------------------------------------- tensors */

const GgufTensor *gguf_find_tensor(const Gguf *g, const char *name);
/* A row-major tensor.h view of t (shape = ne reversed); -1 with a message
 * when its type has no tensor.h dtype (the quantized types). */
int gguf_tensor_view(const Gguf *g, const GgufTensor *t, Tensor *out, Error *err);
/* "4096x32000" as GGUF lists the dims (innermost first), for messages. */
const char *gguf_dims_str(const GgufTensor *t, char *buf, size_t cap);

/* --------------------------------------------------------------- writer */

/* Streaming writer: add the metadata and declare every tensor, then write
 * the tensors' bytes in declaration order in chunks of any size; the header
 * goes out on the first write (or at close). The file is written under a
 * temporary name and renamed by gguf_writer_close, so a failure never
 * leaves a partial file. After any error call gguf_writer_abort
 * (gguf_writer_close cleans up by itself). Writes version 3, aligned to
 * 32 bytes unless a u32 "general.alignment" (a power of two) says otherwise. */
typedef struct GgufWriter GgufWriter;

int gguf_writer_open(GgufWriter **w, const char *path, Error *err);
int gguf_writer_add_u8(GgufWriter *w, const char *key, uint8_t v, Error *err);
int gguf_writer_add_i8(GgufWriter *w, const char *key, int8_t v, Error *err);
int gguf_writer_add_u16(GgufWriter *w, const char *key, uint16_t v, Error *err);
int gguf_writer_add_i16(GgufWriter *w, const char *key, int16_t v, Error *err);
int gguf_writer_add_u32(GgufWriter *w, const char *key, uint32_t v, Error *err);
int gguf_writer_add_i32(GgufWriter *w, const char *key, int32_t v, Error *err);
int gguf_writer_add_u64(GgufWriter *w, const char *key, uint64_t v, Error *err);
int gguf_writer_add_i64(GgufWriter *w, const char *key, int64_t v, Error *err);
int gguf_writer_add_f32(GgufWriter *w, const char *key, float v, Error *err);
int gguf_writer_add_f64(GgufWriter *w, const char *key, double v, Error *err);
int gguf_writer_add_bool(GgufWriter *w, const char *key, int v, Error *err);
int gguf_writer_add_string(GgufWriter *w, const char *key, const char *s, Error *err);
/* n values of a numeric or bool elem_type, packed as in the file (host
 * order, which vmed requires to be little-endian). */
int gguf_writer_add_array(GgufWriter *w, const char *key, uint32_t elem_type, const void *values, uint64_t n,
                          Error *err);
/* n strings; lens may be NULL for NUL-terminated strings. */
int gguf_writer_add_string_array(GgufWriter *w, const char *key, const char *const *strs, const size_t *lens,
                                 uint64_t n, Error *err);
/* ne innermost first, as stored. */
int gguf_writer_add_tensor(GgufWriter *w, const char *name, uint32_t type, int n_dims, const int64_t *ne,
                           Error *err);
int gguf_writer_write(GgufWriter *w, const void *data, size_t nbytes, Error *err);
/* Every declared tensor must be complete. Frees w whatever happens. */
int gguf_writer_close(GgufWriter *w, Error *err);
void gguf_writer_abort(GgufWriter *w);

#endif
