#include "formats/peft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "formats/json_util.h"
#include "formats/torch_bin.h"

/* adapter_config.json is a few hundred bytes; this only stops a runaway file. */
#define PEFT_CONFIG_MAX_BYTES (4u << 20)
#define PEFT_MAX_NAMES 256
#define PEFT_MAX_NAME_LEN 256

/* peft treats a string target_modules and pattern keys as Python regular
 * expressions; '.' is left out because in a plain module name it is the
 * separator, and a regex '.' matches it too. */
static int looks_like_regex(const char *s) { return strpbrk(s, "*+?[](){}|^$\\") != NULL; }

static int check_name(const char *s, const char *field, const char *file, Error *err) {
    size_t n = strlen(s);
    if (n == 0 || n > PEFT_MAX_NAME_LEN)
        return error_set(err, "%s: %s has a name of %zu characters, expected 1..%d", file, field, n, PEFT_MAX_NAME_LEN);
    if (looks_like_regex(s))
        return error_set(err,
                         "%s: %s holds the regular expression '%s'; only plain module names are supported: "
                         "list them, e.g. [\"q_proj\", \"v_proj\"]",
                         file, field, s);
    return 0;
}

static int add_target(PeftConfig *c, const char *name, Error *err) {
    if (check_name(name, "target_modules", c->path, err)) return -1;
    char **grown = realloc(c->targets, sizeof *grown * (size_t)(c->n_targets + 1));
    if (!grown) return error_set(err, "%s: out of memory", c->path);
    c->targets = grown;
    if (!(c->targets[c->n_targets] = strdup(name))) return error_set(err, "%s: out of memory", c->path);
    c->n_targets++;
    return 0;
}

static int parse_targets(PeftConfig *c, const cJSON *root, Error *err) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "target_modules");
    if (!t || cJSON_IsNull(t)) return 0;
    if (cJSON_IsString(t)) return add_target(c, t->valuestring, err);
    if (!cJSON_IsArray(t))
        return error_set(err, "%s: field 'target_modules' is %s, expected a list of module names", c->path,
                         json_type_name(t));
    if (cJSON_GetArraySize(t) > PEFT_MAX_NAMES)
        return error_set(err, "%s: target_modules lists %d names, more than %d", c->path, cJSON_GetArraySize(t),
                         PEFT_MAX_NAMES);
    const cJSON *it;
    cJSON_ArrayForEach(it, t) {
        if (!cJSON_IsString(it))
            return error_set(err, "%s: target_modules holds %s, expected module names", c->path, json_type_name(it));
        if (add_target(c, it->valuestring, err)) return -1;
    }
    if (c->n_targets == 0) return error_set(err, "%s: target_modules is an empty list", c->path);
    return 0;
}

/* rank_pattern {"name": r} and alpha_pattern {"name": alpha}. */
static int parse_pattern(PeftPattern **out, int *n_out, const cJSON *root, const char *field, int is_rank,
                         const char *file, Error *err) {
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!obj || cJSON_IsNull(obj)) return 0;
    if (!cJSON_IsObject(obj))
        return error_set(err, "%s: field '%s' is %s, expected an object", file, field, json_type_name(obj));
    int n = cJSON_GetArraySize(obj);
    if (n == 0) return 0;
    if (n > PEFT_MAX_NAMES) return error_set(err, "%s: %s has %d entries, more than %d", file, field, n, PEFT_MAX_NAMES);
    *out = calloc((size_t)n, sizeof **out);
    if (!*out) return error_set(err, "%s: out of memory", file);
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        if (check_name(it->string, field, file, err)) return -1;
        double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
        int ok = is_rank ? (v >= 1 && v <= PEFT_MAX_RANK && v == floor(v)) : (v > 0 && v <= 1e6);
        if (!ok)
            return error_set(err, "%s: %s['%s'] is %s, expected %s", file, field, it->string,
                             cJSON_IsNumber(it) ? "out of range" : json_type_name(it),
                             is_rank ? "an integer rank in 1..65536" : "a number in (0, 1e6]");
        PeftPattern *p = &(*out)[(*n_out)++];
        p->value = v;
        if (!(p->key = strdup(it->string))) return error_set(err, "%s: out of memory", file);
    }
    return 0;
}

static int parse_layers(PeftConfig *c, const cJSON *root, Error *err) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "layers_to_transform");
    if (!t || cJSON_IsNull(t)) return 0;
    int n = cJSON_IsArray(t) ? cJSON_GetArraySize(t) : 1;
    if (!cJSON_IsArray(t) && !cJSON_IsNumber(t))
        return error_set(err, "%s: field 'layers_to_transform' is %s, expected a layer index or a list of them",
                         c->path, json_type_name(t));
    if (n > 65536) return error_set(err, "%s: layers_to_transform lists %d layers", c->path, n);
    c->layers = malloc(sizeof *c->layers * (size_t)(n ? n : 1));
    if (!c->layers) return error_set(err, "%s: out of memory", c->path);
    const cJSON *it = cJSON_IsArray(t) ? t->child : t;
    for (int i = 0; i < n; i++, it = it->next) {
        uint64_t v;
        if (!json_as_u53(it, &v) || v > 65535)
            return error_set(err, "%s: layers_to_transform holds %s, expected layer indices", c->path,
                             cJSON_IsNumber(it) ? "an out-of-range number" : json_type_name(it));
        c->layers[c->n_layers++] = (int)v;
    }
    return 0;
}

/* Fields whose other values change what the adapter computes, refused
 * rather than silently ignored. */
static int check_refused(const cJSON *root, const char *file, Error *err) {
    const char *s = NULL;
    if (json_get_string(root, "peft_type", &s, file, err)) return -1;
    if (strcmp(s, "LORA") != 0)
        return error_set(err, "%s: peft_type is '%s'; only LORA adapters are supported", file, s);
    int b = 0;
    if (json_opt_bool(root, "fan_in_fan_out", &b, file, err)) return -1;
    if (b)
        return error_set(err, "%s: fan_in_fan_out is true (weights stored transposed, as GPT-2's Conv1D); "
                              "LLaMA adapters have it false",
                         file);
    s = "none";
    if (json_opt_string(root, "bias", &s, file, err)) return -1;
    if (strcmp(s, "none") != 0)
        return error_set(err, "%s: bias is '%s'; only adapters with bias \"none\" are supported", file, s);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "modules_to_save");
    if (m && !cJSON_IsNull(m) && !(cJSON_IsArray(m) && cJSON_GetArraySize(m) == 0))
        return error_set(err,
                         "%s: modules_to_save is set; adapters that carry whole trained copies of modules "
                         "are not supported",
                         file);
    b = 0;
    if (json_opt_bool(root, "use_dora", &b, file, err)) return -1;
    if (b) return error_set(err, "%s: use_dora is true; DoRA adapters are not supported", file);
    return 0;
}

static int parse_scalars(PeftConfig *c, const cJSON *root, Error *err) {
    int64_t r;
    if (json_get_int(root, "r", &r, 1, PEFT_MAX_RANK, c->path, err)) return -1;
    c->r = (int)r;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "lora_alpha");
    if (!a) return error_set(err, "%s: missing field 'lora_alpha'", c->path);
    if (!cJSON_IsNumber(a))
        return error_set(err, "%s: field 'lora_alpha' is %s, expected a number", c->path, json_type_name(a));
    if (!(a->valuedouble > 0 && a->valuedouble <= 1e6))
        return error_set(err, "%s: field 'lora_alpha' is %g, expected a number in (0, 1e6]", c->path, a->valuedouble);
    c->lora_alpha = a->valuedouble;
    if (json_opt_bool(root, "use_rslora", &c->use_rslora, c->path, err)) return -1;
    const char *s = NULL;
    if (json_opt_string(root, "base_model_name_or_path", &s, c->path, err)) return -1;
    if (s && *s && !(c->base_model = strdup(s))) return error_set(err, "%s: out of memory", c->path);
    s = NULL;
    if (json_opt_string(root, "task_type", &s, c->path, err)) return -1;
    if (s && strcmp(s, "CAUSAL_LM") != 0)
        return error_set(err, "%s: task_type is '%s'; only CAUSAL_LM adapters apply to a language model", c->path, s);
    if (s && !(c->task_type = strdup(s))) return error_set(err, "%s: out of memory", c->path);
    return 0;
}

int peft_config_parse(PeftConfig *c, const char *text, size_t len, const char *label, Error *err) {
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", label);
    cJSON *root;
    if (json_parse(&root, text, len, label, err)) return -1;
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        error_set(err, "%s: expected a JSON object, found %s", label, json_type_name(root));
    } else if (!check_refused(root, label, err) && !parse_scalars(c, root, err) && !parse_targets(c, root, err) &&
               !parse_pattern(&c->rank_pattern, &c->n_rank_pattern, root, "rank_pattern", 1, label, err) &&
               !parse_pattern(&c->alpha_pattern, &c->n_alpha_pattern, root, "alpha_pattern", 0, label, err) &&
               !parse_layers(c, root, err)) {
        rc = 0;
    }
    cJSON_Delete(root);
    if (rc) {
        char keep[sizeof c->path];
        memcpy(keep, c->path, sizeof keep);
        peft_config_free(c);
        memcpy(c->path, keep, sizeof keep);
    }
    return rc;
}

int peft_config_load(PeftConfig *c, const char *dir, Error *err) {
    char path[1024];
    memset(c, 0, sizeof *c);
    if (path_join(path, sizeof path, dir, "adapter_config.json", err)) return -1;
    char *text;
    size_t len;
    if (file_read_all(path, PEFT_CONFIG_MAX_BYTES, &text, &len, err)) return -1;
    int rc = peft_config_parse(c, text, len, path, err);
    free(text);
    return rc;
}

static void free_patterns(PeftPattern *p, int n) {
    for (int i = 0; i < n; i++) free(p[i].key);
    free(p);
}

void peft_config_free(PeftConfig *c) {
    for (int i = 0; i < c->n_targets; i++) free(c->targets[i]);
    free(c->targets);
    free(c->base_model);
    free(c->task_type);
    free_patterns(c->rank_pattern, c->n_rank_pattern);
    free_patterns(c->alpha_pattern, c->n_alpha_pattern);
    free(c->layers);
    memset(c, 0, sizeof *c);
}

/* key ends with "." t. */
static int dotted_suffix(const char *key, const char *t) {
    size_t nk = strlen(key), nt = strlen(t);
    return nk > nt && key[nk - nt - 1] == '.' && strcmp(key + nk - nt, t) == 0;
}

int peft_name_matches(const char *key, const char *t) { return strcmp(key, t) == 0 || dotted_suffix(key, t); }

int peft_config_targets(const PeftConfig *c, const char *key) {
    for (int i = 0; i < c->n_targets; i++)
        if (peft_name_matches(key, c->targets[i])) return 1;
    return 0;
}

int peft_layer_selected(const PeftConfig *c, int layer) {
    if (!c->layers) return 1;
    for (int i = 0; i < c->n_layers; i++)
        if (c->layers[i] == layer) return 1;
    return 0;
}

static const PeftPattern *find_pattern(const PeftPattern *p, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (strcmp(p[i].key, key) == 0) return &p[i];
    return NULL;
}

void peft_module_params(const PeftConfig *c, const char *key, int *r, double *alpha, double *scaling) {
    /* peft: target_name_key = the first of rank_pattern's then
     * alpha_pattern's keys matching ".*\.{key}$"; both dicts are then
     * looked up with that one key. */
    const char *chosen = NULL;
    for (int i = 0; i < c->n_rank_pattern && !chosen; i++)
        if (dotted_suffix(key, c->rank_pattern[i].key)) chosen = c->rank_pattern[i].key;
    for (int i = 0; i < c->n_alpha_pattern && !chosen; i++)
        if (dotted_suffix(key, c->alpha_pattern[i].key)) chosen = c->alpha_pattern[i].key;
    const PeftPattern *pr = chosen ? find_pattern(c->rank_pattern, c->n_rank_pattern, chosen) : NULL;
    const PeftPattern *pa = chosen ? find_pattern(c->alpha_pattern, c->n_alpha_pattern, chosen) : NULL;
    *r = pr ? (int)pr->value : c->r;
    *alpha = pa ? pa->value : c->lora_alpha;
    *scaling = c->use_rslora ? *alpha / sqrt((double)*r) : *alpha / (double)*r;
}

int peft_open_weights(SafeTensors *st, const char *dir, Error *err) {
    char path[1024];
    memset(st, 0, sizeof *st);
    if (path_join(path, sizeof path, dir, "adapter_model.safetensors", err)) return -1;
    if (file_exists(path)) return st_open(st, path, err);
    if (path_join(path, sizeof path, dir, "adapter_model.bin", err)) return -1;
    if (file_exists(path)) return torch_bin_open(st, path, err); /* older peft saves torch pickles */
    return error_set(err, "%s: no adapter_model.safetensors or adapter_model.bin (a PEFT adapter folder holds "
                          "adapter_config.json and one of them)",
                     dir);
}

int peft_split_tensor_name(const char *name, char *key, size_t cap, char *which) {
    static const char prefix[] = "base_model.model.";
    static const struct {
        const char *suffix;
        char which;
    } ends[] = {{".lora_A.weight", 'A'}, {".lora_B.weight", 'B'},
                {".lora_A.default.weight", 'A'}, {".lora_B.default.weight", 'B'}};
    size_t np = sizeof prefix - 1, n = strlen(name);
    if (n <= np || strncmp(name, prefix, np) != 0) return -1;
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        size_t ns = strlen(ends[i].suffix);
        if (n < np + ns + 1 || strcmp(name + n - ns, ends[i].suffix) != 0) continue;
        size_t nk = n - np - ns;
        if (nk + 1 > cap) return -1;
        memcpy(key, name + np, nk);
        key[nk] = 0;
        *which = ends[i].which;
        return 0;
    }
    return -1;
}
