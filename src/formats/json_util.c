#include "formats/json_util.h"

#include <math.h>
#include <stdlib.h>

#include "base/file.h"

/* 2^53: the largest range in which every integer is exact in a double. */
#define JSON_MAX_EXACT 9007199254740992.0

int json_parse(cJSON **out, const char *text, size_t len, const char *label, Error *err) {
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        /* cJSON reports where it stopped through end (not only through its
         * global error pointer, which is shared between threads). */
        size_t off = (end && end >= text && end <= text + len) ? (size_t)(end - text) : 0;
        size_t line = 1;
        for (size_t i = 0; i < off; i++)
            if (text[i] == '\n') line++;
        return error_set(err, "%s: not valid JSON (parse error near byte %zu, line %zu)", label, off, line);
    }
    for (size_t i = (size_t)(end - text); i < len; i++) {
        char c = text[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            cJSON_Delete(root);
            return error_set(err, "%s: not valid JSON (unexpected text after the value at byte %zu)", label, i);
        }
    }
    *out = root;
    return 0;
}

int json_load_file(cJSON **out, const char *path, size_t max_bytes, Error *err) {
    *out = NULL;
    char *text;
    size_t len;
    if (file_read_all(path, max_bytes, &text, &len, err) != 0) return -1;
    int rc = json_parse(out, text, len, path, err);
    free(text);
    return rc;
}

const char *json_type_name(const cJSON *item) {
    if (!item || cJSON_IsInvalid(item)) return "missing";
    if (cJSON_IsNull(item)) return "null";
    if (cJSON_IsBool(item)) return cJSON_IsTrue(item) ? "true" : "false";
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    return "raw JSON";
}

int json_as_u53(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= JSON_MAX_EXACT) || v != floor(v)) return 0;
    *out = (uint64_t)v;
    return 1;
}

/* The value under key, or an error for a missing key. JSON null counts as
 * missing: HF configs write null for "not set". */
static const cJSON *field(const cJSON *obj, const char *key, const char *file, Error *err) {
    const cJSON *item = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!item) {
        error_set(err, "%s: missing field '%s'", file, key);
        return NULL;
    }
    if (cJSON_IsNull(item)) {
        error_set(err, "%s: field '%s' is null, expected a value", file, key);
        return NULL;
    }
    return item;
}

/* 1 when key is absent or null: the optional variants then keep the default. */
static int absent(const cJSON *obj, const char *key) {
    const cJSON *item = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return !item || cJSON_IsNull(item);
}

int json_get_int(const cJSON *obj, const char *key, int64_t *out, int64_t min, int64_t max,
                 const char *file, Error *err) {
    const cJSON *item = field(obj, key, file, err);
    if (!item) return -1;
    if (!cJSON_IsNumber(item))
        return error_set(err, "%s: field '%s' is %s, expected an integer", file, key, json_type_name(item));
    double v = item->valuedouble;
    if (!(fabs(v) <= JSON_MAX_EXACT) || v != floor(v))
        return error_set(err, "%s: field '%s' is %g, expected an integer", file, key, v);
    int64_t i = (int64_t)v;
    if (i < min || i > max)
        return error_set(err, "%s: field '%s' is %lld, expected %lld..%lld", file, key, (long long)i,
                         (long long)min, (long long)max);
    *out = i;
    return 0;
}

int json_get_float(const cJSON *obj, const char *key, double *out, double min, double max,
                   const char *file, Error *err) {
    const cJSON *item = field(obj, key, file, err);
    if (!item) return -1;
    if (!cJSON_IsNumber(item))
        return error_set(err, "%s: field '%s' is %s, expected a number", file, key, json_type_name(item));
    double v = item->valuedouble;
    /* The negated test also catches the infinity strtod gives for "1e999". */
    if (!(v >= min && v <= max))
        return error_set(err, "%s: field '%s' is %g, expected %g..%g", file, key, v, min, max);
    *out = v;
    return 0;
}

int json_get_bool(const cJSON *obj, const char *key, int *out, const char *file, Error *err) {
    const cJSON *item = field(obj, key, file, err);
    if (!item) return -1;
    if (!cJSON_IsBool(item))
        return error_set(err, "%s: field '%s' is %s, expected true or false", file, key, json_type_name(item));
    *out = cJSON_IsTrue(item) ? 1 : 0;
    return 0;
}

int json_get_string(const cJSON *obj, const char *key, const char **out, const char *file, Error *err) {
    const cJSON *item = field(obj, key, file, err);
    if (!item) return -1;
    if (!cJSON_IsString(item) || !item->valuestring)
        return error_set(err, "%s: field '%s' is %s, expected a string", file, key, json_type_name(item));
    *out = item->valuestring;
    return 0;
}

int json_opt_int(const cJSON *obj, const char *key, int64_t *out, int64_t min, int64_t max,
                 const char *file, Error *err) {
    if (absent(obj, key)) return 0;
    return json_get_int(obj, key, out, min, max, file, err);
}

int json_opt_float(const cJSON *obj, const char *key, double *out, double min, double max,
                   const char *file, Error *err) {
    if (absent(obj, key)) return 0;
    return json_get_float(obj, key, out, min, max, file, err);
}

int json_opt_bool(const cJSON *obj, const char *key, int *out, const char *file, Error *err) {
    if (absent(obj, key)) return 0;
    return json_get_bool(obj, key, out, file, err);
}

int json_opt_string(const cJSON *obj, const char *key, const char **out, const char *file, Error *err) {
    if (absent(obj, key)) return 0;
    return json_get_string(obj, key, out, file, err);
}
