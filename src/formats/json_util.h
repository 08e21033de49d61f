/* JSON helpers shared by the loaders of config.json, adapter_config.json,
 * preprocessor_config.json and safetensors index files: load a file with a
 * size cap, and read typed, range-checked fields with messages that name
 * the file and the field ("config.json: field 'num_hidden_layers' is 0,
 * expected 1..1024").
 *
 * `file` is the name put in front of every message; callers pass the path
 * as they were given it, the same way the safetensors and base/file
 * messages do, so every message about a file starts with the same words. */
#ifndef VMED_FORMATS_JSON_UTIL_H
#define VMED_FORMATS_JSON_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "base/error.h"

/* Reads and parses a whole JSON file (refusing files over max_bytes).
 * On success *out is the root value; free it with cJSON_Delete. Parse
 * errors give the byte offset and line where cJSON gave up. */
int json_load_file(cJSON **out, const char *path, size_t max_bytes, Error *err);

/* Parses len bytes that need not be NUL-terminated. label names the text in
 * messages. Anything but whitespace after the value is an error. */
int json_parse(cJSON **out, const char *text, size_t len, const char *label, Error *err);

/* "a string", "an array", ... for messages about wrong types. */
const char *json_type_name(const cJSON *item);

/* Required fields: a missing key, a JSON null, the wrong type, a
 * non-integral number where an integer is wanted, or a value outside
 * [min, max] are all errors. Integers must be exact in a double (|v| <=
 * 2^53), which every real config value is. */
int json_get_int(const cJSON *obj, const char *key, int64_t *out, int64_t min, int64_t max,
                 const char *file, Error *err);
int json_get_float(const cJSON *obj, const char *key, double *out, double min, double max,
                   const char *file, Error *err);
int json_get_bool(const cJSON *obj, const char *key, int *out, const char *file, Error *err);
/* *out points into obj: it lives as long as the cJSON tree. */
int json_get_string(const cJSON *obj, const char *key, const char **out, const char *file, Error *err);

/* Optional fields: when the key is absent or null, *out keeps the default
 * the caller put there and the call succeeds; a present value is checked
 * exactly as by the json_get_* functions. */
int json_opt_int(const cJSON *obj, const char *key, int64_t *out, int64_t min, int64_t max,
                 const char *file, Error *err);
int json_opt_float(const cJSON *obj, const char *key, double *out, double min, double max,
                   const char *file, Error *err);
int json_opt_bool(const cJSON *obj, const char *key, int *out, const char *file, Error *err);
int json_opt_string(const cJSON *obj, const char *key, const char **out, const char *file, Error *err);

/* A number that is an integer in [0, 2^53], the range a double holds
 * exactly. Used for sizes and offsets in untrusted headers. Returns 1 and
 * sets *out when it is one, else 0. */
int json_as_u53(const cJSON *item, uint64_t *out);

#endif
