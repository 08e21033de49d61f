/* PEFT LoRA adapters: adapter_config.json parsing, the adapter applied at
 * run time and merged (in memory and by `vmed merge`), against the
 * llama-tiny-lora fixture, whose references are HF's logits and greedy ids
 * of the merged model; and every refusal and mismatch message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "formats/json_util.h"
#include "formats/peft.h"
#include "formats/safetensors.h"
#include "generate/generate.h"
#include "models/llama.h"
#include "models/llama_lora.h"
#include "test.h"

void suite_lora(void);

#define BASE_REL "llama-tiny"
#define LORA_REL "llama-tiny-lora"

/* ------------------------------------------------------------ helpers */

static void report(const char *what, float diff, float bound) {
    if (!getenv("VMED_TEST_VERBOSE")) return;
    printf("     %s: max |diff| %.3g", what, diff);
    if (bound > 0) printf(" (bound %.3g)", bound);
    printf("\n");
}

/* Loads llama-tiny with llama-tiny-lora attached at run time. */
static int load_adapted(Llama *m, LlamaLora **l, const char *base, const char *lora, Error *err) {
    if (llama_load(m, base, err)) return -1;
    if (llama_lora_load(l, m, lora, err) || llama_attach_lora(m, *l, err)) {
        llama_free(m);
        return -1;
    }
    return 0;
}

static int ref_ids(const SafeTensors *ref, const char *name, int *ids, int cap) {
    const StTensor *t = st_find(ref, name);
    if (!t || t->dtype != DT_I64) return -1;
    int n = (int)t->shape[t->ndim - 1];
    if (n > cap) return -1;
    for (int i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, (const int64_t *)t->data + i, 8);
        ids[i] = (int)v;
    }
    return n;
}

/* p0/p1 logits of m against ref/forward.safetensors of ref_rel. Fills the
 * largest difference seen. */
static int check_logits(const Llama *m, const char *ref_rel, int n_threads, int max_batch, float *worst,
                        char *msg, size_t cap) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/ref/forward.safetensors", ref_rel);
    const char *ref_path = fixture_path(rel);
    Error err;
    SafeTensors ref;
    if (!ref_path || st_open(&ref, ref_path, &err)) return snprintf(msg, cap, "no %s", rel), -1;
    LlamaState s;
    if (llama_state_new(&s, m, 64, max_batch, test_pool(n_threads), &err)) {
        st_close(&ref);
        return snprintf(msg, cap, "%s", err.msg), -1;
    }
    int rc = 0;
    *worst = 0;
    for (int p = 0; p < 2 && rc == 0; p++) {
        char name[64];
        int ids[64];
        snprintf(name, sizeof name, "p%d.input_ids", p);
        int T = ref_ids(&ref, name, ids, 64);
        snprintf(name, sizeof name, "p%d.logits", p);
        const StTensor *want = st_find(&ref, name);
        if (T < 1 || !want) {
            rc = -1;
            snprintf(msg, cap, "reference %s missing", name);
            break;
        }
        float *got = malloc(sizeof(float) * (size_t)T * (size_t)m->config.vocab_size);
        float diff = 0, bound = 0;
        if (llama_forward(m, &s, ids, T, 0, got, &err)) {
            rc = -1;
            snprintf(msg, cap, "forward: %s", err.msg);
        } else if (!ref_close_to(got, want, &diff, &bound)) {
            rc = -1;
            snprintf(msg, cap, "p%d logits differ by %g (bound %g), threads %d batch %d", p, diff, bound, n_threads,
                     max_batch);
        }
        if (diff > *worst) *worst = diff;
        free(got);
    }
    llama_state_free(&s);
    st_close(&ref);
    return rc;
}

/* ---------------------------------------------------- writing adapters */

/* The fixture adapter's tensors, copied so tests can rename, reshape and
 * drop them. */
typedef struct {
    StTensor t[16];
    char names[16][200];
    float *data[16];
    int n;
} Adapter;

static int adapter_read(Adapter *a, const char *lora_dir) {
    memset(a, 0, sizeof *a);
    char path[1200];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", lora_dir);
    SafeTensors st;
    Error err;
    if (st_open(&st, path, &err)) return -1;
    for (int i = 0; i < st.n_tensors && i < 16; i++) {
        const StTensor *t = &st.tensors[i];
        a->t[i] = *t;
        snprintf(a->names[i], sizeof a->names[i], "%s", t->name);
        a->t[i].name = a->names[i];
        a->data[i] = malloc(t->nbytes);
        memcpy(a->data[i], t->data, t->nbytes);
        a->t[i].data = a->data[i];
        a->n++;
    }
    st_close(&st);
    return 0;
}

static void adapter_free(Adapter *a) {
    for (int i = 0; i < a->n; i++) free(a->data[i]);
}

static int adapter_find(const Adapter *a, const char *name) {
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->names[i], name) == 0) return i;
    return -1;
}

static void adapter_drop(Adapter *a, int i) {
    free(a->data[i]);
    for (int j = i; j + 1 < a->n; j++) {
        a->t[j] = a->t[j + 1];
        memcpy(a->names[j], a->names[j + 1], sizeof a->names[j]);
        a->t[j].name = a->names[j];
        a->data[j] = a->data[j + 1];
    }
    a->n--;
}

static void adapter_rename(Adapter *a, int i, const char *name) {
    snprintf(a->names[i], sizeof a->names[i], "%s", name);
}

/* Replaces tensor i by a [rows, cols] one filled with small values. */
static void adapter_reshape(Adapter *a, int i, int64_t rows, int64_t cols) {
    free(a->data[i]);
    a->data[i] = calloc((size_t)(rows * cols), sizeof(float));
    for (int64_t k = 0; k < rows * cols; k++) a->data[i][k] = 0.01f * (float)(k % 7);
    a->t[i].data = a->data[i];
    a->t[i].shape[0] = rows;
    a->t[i].shape[1] = cols;
    a->t[i].nbytes = (size_t)(rows * cols) * sizeof(float);
}

/* An adapter_config.json like the fixture's, with target_modules and
 * base_model_name_or_path given, and extra fields appended. */
static void config_text(char *buf, size_t cap, const char *targets, const char *base, const char *extra) {
    snprintf(buf, cap,
             "{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"target_modules\": %s, "
             "\"base_model_name_or_path\": \"%s\", \"bias\": \"none\", \"fan_in_fan_out\": false, "
             "\"modules_to_save\": null, \"task_type\": \"CAUSAL_LM\", \"rank_pattern\": {}, "
             "\"alpha_pattern\": {}%s}",
             targets, base, extra ? extra : "");
}

/* test_tmpdir()/sub with adapter_config.json = config and the tensors of
 * a (none when a is NULL). Returns the folder (static ring). */
static const char *write_adapter(const char *sub, const char *config, const Adapter *a) {
    static char dirs[4][600];
    static int next;
    char *dir = dirs[next++ % 4];
    snprintf(dir, sizeof dirs[0], "%s/%s", test_tmpdir(), sub);
    mkdir(dir, 0777);
    char path[700];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    FILE *fp = fopen(path, "wb");
    if (fp) {
        fputs(config, fp);
        fclose(fp);
    }
    if (a) {
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        Error err;
        if (st_save(path, a->t, a->n, &err)) fprintf(stderr, "write_adapter: %s\n", err.msg);
    }
    return dir;
}

/* Loads the adapter in dir against base; returns the error (empty when it
 * loaded) and the warning. */
static int try_load(const char *base_dir, const char *dir, char *msg, size_t cap, char *warning, size_t wcap) {
    Llama m;
    Error err;
    if (llama_load(&m, base_dir, &err)) return snprintf(msg, cap, "base: %s", err.msg), -1;
    LlamaLora *l = NULL;
    int rc = llama_lora_load(&l, &m, dir, &err);
    snprintf(msg, cap, "%s", rc ? err.msg : "");
    if (warning) snprintf(warning, wcap, "%s", l ? l->warning : "");
    llama_lora_free(l);
    llama_free(&m);
    return rc;
}

/* ------------------------------------------------------ config parsing */

static void t_lora_config_fixture(void) {
    NEED_FIXTURE(dir, LORA_REL);
    PeftConfig c;
    Error err;
    CHECK(peft_config_load(&c, dir, &err) == 0, "%s", err.msg);
    int ok = c.r == 8 && c.lora_alpha == 16 && !c.use_rslora && c.n_targets == 2 &&
             strcmp(c.targets[0], "q_proj") == 0 && strcmp(c.targets[1], "v_proj") == 0 && c.base_model &&
             strcmp(c.base_model, "../llama-tiny") == 0 && c.task_type && strcmp(c.task_type, "CAUSAL_LM") == 0;
    int r;
    double alpha, scaling;
    peft_module_params(&c, "model.layers.0.self_attn.q_proj", &r, &alpha, &scaling);
    peft_config_free(&c);
    CHECK(ok, "fields read wrong");
    CHECK(r == 8 && alpha == 16 && scaling == 2.0, "r %d alpha %g scaling %g", r, alpha, scaling);
}

static int parse_config(const char *json, PeftConfig *c, Error *err) {
    return peft_config_parse(c, json, strlen(json), "adapter_config.json", err);
}

static void t_lora_config_refusals(void) {
    static const struct {
        const char *json, *msg;
    } cases[] = {
        {"{\"peft_type\": \"LORA\", \"lora_alpha\": 16}", "adapter_config.json: missing field 'r'"},
        {"{\"peft_type\": \"LORA\", \"r\": 0, \"lora_alpha\": 16}",
         "adapter_config.json: field 'r' is 0, expected 1..65536"},
        {"{\"peft_type\": \"LORA\", \"r\": 1000000, \"lora_alpha\": 16}",
         "adapter_config.json: field 'r' is 1000000, expected 1..65536"},
        {"{\"peft_type\": \"LORA\", \"r\": 8.5, \"lora_alpha\": 16}",
         "adapter_config.json: field 'r' is 8.5, expected an integer"},
        {"{\"peft_type\": \"LORA\", \"r\": 8}", "adapter_config.json: missing field 'lora_alpha'"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 0}",
         "adapter_config.json: field 'lora_alpha' is 0, expected a number in (0, 1e6]"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": -16}",
         "adapter_config.json: field 'lora_alpha' is -16, expected a number in (0, 1e6]"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": \"16\"}",
         "adapter_config.json: field 'lora_alpha' is a string, expected a number"},
        {"{\"peft_type\": \"PREFIX_TUNING\", \"r\": 8, \"lora_alpha\": 16}",
         "adapter_config.json: peft_type is 'PREFIX_TUNING'; only LORA adapters are supported"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"fan_in_fan_out\": true}",
         "adapter_config.json: fan_in_fan_out is true (weights stored transposed, as GPT-2's Conv1D); LLaMA "
         "adapters have it false"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"bias\": \"all\"}",
         "adapter_config.json: bias is 'all'; only adapters with bias \"none\" are supported"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"modules_to_save\": [\"lm_head\"]}",
         "adapter_config.json: modules_to_save is set; adapters that carry whole trained copies of modules are "
         "not supported"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"use_dora\": true}",
         "adapter_config.json: use_dora is true; DoRA adapters are not supported"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"task_type\": \"SEQ_CLS\"}",
         "adapter_config.json: task_type is 'SEQ_CLS'; only CAUSAL_LM adapters apply to a language model"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"target_modules\": \".*\\\\.(q_proj|v_proj)\"}",
         "adapter_config.json: target_modules holds the regular expression '.*\\.(q_proj|v_proj)'; only plain "
         "module names are supported: list them, e.g. [\"q_proj\", \"v_proj\"]"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"target_modules\": []}",
         "adapter_config.json: target_modules is an empty list"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"rank_pattern\": {\"layers.*q_proj\": 4}}",
         "adapter_config.json: rank_pattern holds the regular expression 'layers.*q_proj'; only plain module names "
         "are supported: list them, e.g. [\"q_proj\", \"v_proj\"]"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"rank_pattern\": {\"q_proj\": 0}}",
         "adapter_config.json: rank_pattern['q_proj'] is out of range, expected an integer rank in 1..65536"},
        {"[1, 2]", "adapter_config.json: expected a JSON object, found an array"},
        {"{\"peft_type\": \"LORA\", ", "adapter_config.json: not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        PeftConfig c;
        Error err;
        CHECK(parse_config(cases[i].json, &c, &err) != 0, "case %zu accepted: %s", i, cases[i].json);
        CHECK(strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)) == 0, "case %zu: got \"%s\"\nwant \"%s\"", i,
              err.msg, cases[i].msg);
    }
}

static void t_lora_config_forms(void) {
    PeftConfig c;
    Error err;
    /* a plain string is one module name; rslora scales by sqrt(r) */
    CHECK(parse_config("{\"peft_type\": \"LORA\", \"r\": 16, \"lora_alpha\": 8, \"target_modules\": \"q_proj\", "
                       "\"use_rslora\": true, \"layers_to_transform\": [1]}",
                       &c, &err) == 0,
          "%s", err.msg);
    int r;
    double alpha, scaling;
    peft_module_params(&c, "model.layers.1.self_attn.q_proj", &r, &alpha, &scaling);
    int ok = c.n_targets == 1 && peft_config_targets(&c, "model.layers.1.self_attn.q_proj") &&
             !peft_config_targets(&c, "model.layers.1.self_attn.v_proj") && !peft_layer_selected(&c, 0) &&
             peft_layer_selected(&c, 1);
    peft_config_free(&c);
    CHECK(ok, "string target_modules / layers_to_transform read wrong");
    CHECK(r == 16 && alpha == 8 && fabs(scaling - 2.0) < 1e-12, "rslora: r %d alpha %g scaling %g", r, alpha, scaling);
    /* rank_pattern and alpha_pattern: peft picks one key, the first that matches */
    CHECK(parse_config("{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"target_modules\": [\"q_proj\", "
                       "\"v_proj\"], \"rank_pattern\": {\"v_proj\": 4}, \"alpha_pattern\": {\"v_proj\": 32, "
                       "\"layers.1.self_attn.q_proj\": 4}}",
                       &c, &err) == 0,
          "%s", err.msg);
    int r_v, r_q0, r_q1;
    double a_v, a_q0, a_q1, s_v, s_q0, s_q1;
    peft_module_params(&c, "model.layers.0.self_attn.v_proj", &r_v, &a_v, &s_v);
    peft_module_params(&c, "model.layers.0.self_attn.q_proj", &r_q0, &a_q0, &s_q0);
    peft_module_params(&c, "model.layers.1.self_attn.q_proj", &r_q1, &a_q1, &s_q1);
    peft_config_free(&c);
    CHECK(r_v == 4 && a_v == 32 && s_v == 8, "v_proj: r %d alpha %g scaling %g", r_v, a_v, s_v);
    CHECK(r_q0 == 8 && a_q0 == 16 && s_q0 == 2, "layer 0 q_proj: r %d alpha %g", r_q0, a_q0);
    CHECK(r_q1 == 8 && a_q1 == 4 && s_q1 == 0.5, "layer 1 q_proj: r %d alpha %g", r_q1, a_q1);
}

static void t_lora_tensor_names(void) {
    char key[256], which = 0;
    CHECK(peft_split_tensor_name("base_model.model.model.layers.3.mlp.up_proj.lora_B.weight", key, sizeof key,
                                 &which) == 0 &&
              strcmp(key, "model.layers.3.mlp.up_proj") == 0 && which == 'B',
          "plain form: %s %c", key, which);
    CHECK(peft_split_tensor_name("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight", key,
                                 sizeof key, &which) == 0 &&
              strcmp(key, "model.layers.0.self_attn.q_proj") == 0 && which == 'A',
          "default form: %s %c", key, which);
    CHECK(peft_split_tensor_name("model.layers.0.self_attn.q_proj.lora_A.weight", key, sizeof key, &which) != 0,
          "a name without base_model.model. was accepted");
    CHECK(peft_split_tensor_name("base_model.model..lora_A.weight", key, sizeof key, &which) != 0,
          "an empty module was accepted");
}

/* ------------------------------------------------------------ numbers */

static void check_runtime(int n_threads, int max_batch) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Llama m;
    LlamaLora *l;
    Error err;
    CHECK(load_adapted(&m, &l, base, lora, &err) == 0, "%s", err.msg);
    CHECK(l->n_adapted == 4 && l->max_r == 8 && l->warning[0] == 0, "adapted %d, warning '%s'", l->n_adapted,
          l->warning);
    char msg[1200] = "";
    float worst;
    int rc = check_logits(&m, LORA_REL, n_threads, max_batch, &worst, msg, sizeof msg);
    llama_free(&m);
    llama_lora_free(l);
    CHECK(rc == 0, "%s", msg);
    char what[64];
    snprintf(what, sizeof what, "run time, threads %d batch %d", n_threads, max_batch);
    report(what, worst, 0);
}

static void t_lora_runtime_prefill(void) { check_runtime(1, 64); }
static void t_lora_runtime_two_threads(void) { check_runtime(2, 64); }
static void t_lora_runtime_token_by_token(void) { check_runtime(1, 1); }
static void t_lora_runtime_token_by_token_two_threads(void) { check_runtime(2, 1); }
static void t_lora_runtime_chunks_of_3(void) { check_runtime(2, 3); }

/* The adapter must matter: the base model's logits are far from the refs. */
static void t_lora_changes_logits(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Llama m;
    LlamaLora *l;
    Error err;
    CHECK(load_adapted(&m, &l, base, lora, &err) == 0, "%s", err.msg);
    int ids[9] = {1, 450, 16500, 471, 20186, 411, 521, 342, 6788};
    size_t n = (size_t)9 * (size_t)m.config.vocab_size;
    float *with = malloc(n * sizeof(float)), *without = malloc(n * sizeof(float));
    LlamaState s1, s2;
    CHECK(llama_state_new(&s1, &m, 16, 16, NULL, &err) == 0, "%s", err.msg);
    int rc = llama_forward(&m, &s1, ids, 9, 0, with, &err);
    llama_attach_lora(&m, NULL, &err);
    int made2 = !rc && llama_state_new(&s2, &m, 16, 16, NULL, &err) == 0;
    int rc2 = made2 ? llama_forward(&m, &s2, ids, 9, 0, without, &err) : -1;
    float d = max_abs_diff(with, without, n);
    free(with);
    free(without);
    llama_state_free(&s1);
    if (made2) llama_state_free(&s2);
    llama_free(&m);
    llama_lora_free(l);
    CHECK(rc == 0 && rc2 == 0, "%s", err.msg);
    report("LoRA vs base", d, 0);
    CHECK(d > 1.0f, "the adapter changes the logits by only %g (the fixture says ~5)", d);
}

/* A state made before the attach has no room for the update. */
static void t_lora_state_before_attach(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Llama m;
    Error err;
    CHECK(llama_load(&m, base, &err) == 0, "%s", err.msg);
    LlamaState s;
    LlamaLora *l = NULL;
    CHECK(llama_state_new(&s, &m, 16, 16, NULL, &err) == 0, "%s", err.msg);
    int ok = llama_lora_load(&l, &m, lora, &err) == 0 && llama_attach_lora(&m, l, &err) == 0;
    int ids[2] = {1, 450};
    int rc = ok ? llama_forward(&m, &s, ids, 2, 0, NULL, &err) : 0;
    llama_state_free(&s);
    llama_free(&m);
    llama_lora_free(l);
    CHECK(ok, "%s", err.msg);
    CHECK(rc != 0 && strcmp(err.msg, "this run state was made before the LoRA adapter was attached; make it after") == 0,
          "got: %s", rc ? err.msg : "no error");
}

static void t_lora_merged_in_memory(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Llama m;
    Error err;
    CHECK(llama_load(&m, base, &err) == 0, "%s", err.msg);
    LlamaLora *l = NULL;
    LlamaLoraMerged *mg = NULL;
    int ok = llama_lora_load(&l, &m, lora, &err) == 0 && llama_lora_merge(&m, l, &mg, &err) == 0;
    char msg[1200] = "", msg2[1200] = "";
    float worst = 0, worst_base = 0;
    int rc = ok ? check_logits(&m, LORA_REL, 2, 64, &worst, msg, sizeof msg) : -1;
    int rc1 = ok ? check_logits(&m, LORA_REL, 1, 1, &worst, msg, sizeof msg) : -1;
    llama_lora_unmerge(&m, mg);
    /* unmerged, the views are the base's own again */
    int rc2 = ok ? check_logits(&m, BASE_REL, 2, 64, &worst_base, msg2, sizeof msg2) : -1;
    llama_free(&m);
    llama_lora_free(l);
    CHECK(ok, "%s", err.msg);
    CHECK(rc == 0 && rc1 == 0, "merged: %s", msg);
    CHECK(rc2 == 0, "after unmerge: %s", msg2);
    report("merged in memory", worst, 0);
}

/* Greedy ids equal HF's generate() on the merged model, with the adapter
 * applied at run time and merged. */
static void check_greedy(int n_threads, int merged) {
    NEED_FIXTURE(gen_path, LORA_REL "/ref/generate.json");
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Error err;
    cJSON *root;
    CHECK(json_load_file(&root, gen_path, 1 << 22, &err) == 0, "%s", err.msg);
    Llama m;
    LlamaLora *l = NULL;
    LlamaLoraMerged *mg = NULL;
    CHECK(llama_load(&m, base, &err) == 0, "%s", err.msg);
    int ok = llama_lora_load(&l, &m, lora, &err) == 0 &&
             (merged ? llama_lora_merge(&m, l, &mg, &err) : llama_attach_lora(&m, l, &err)) == 0;
    char msg[300] = "";
    int n_cases = ok ? test_llama_greedy_cases(&m, cJSON_GetObjectItem(root, "generations"), n_threads, msg, sizeof msg)
                     : -1;
    cJSON_Delete(root);
    llama_lora_unmerge(&m, mg);
    llama_free(&m);
    llama_lora_free(l);
    CHECK(n_cases >= 0, "%s", ok ? msg : err.msg);
    CHECK(n_cases == 2, "expected 2 generation cases, found %d", n_cases);
}

static void t_lora_greedy_runtime(void) { check_greedy(1, 0); }
static void t_lora_greedy_runtime_two_threads(void) { check_greedy(2, 0); }
static void t_lora_greedy_merged(void) { check_greedy(2, 1); }

/* Beam search runs the adapter in every beam's state: same ids as on the
 * merged weights. */
static void t_lora_beam_search(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    int prompt[11] = {1, 10987, 886, 29901, 13, 13, 2277, 29937, 13291, 29901, 13};
    int ids[2][32], n_ids[2] = {0, 0};
    Error err;
    for (int merged = 0; merged < 2; merged++) {
        Llama m;
        LlamaLora *l = NULL;
        LlamaLoraMerged *mg = NULL;
        CHECK(llama_load(&m, base, &err) == 0, "%s", err.msg);
        int ok = llama_lora_load(&l, &m, lora, &err) == 0 &&
                 (merged ? llama_lora_merge(&m, l, &mg, &err) : llama_attach_lora(&m, l, &err)) == 0;
        LlamaState s[3];
        int made = 0;
        for (; ok && made < 3; made++)
            if (llama_state_new(&s[made], &m, 64, 16, test_pool(2), &err)) break;
        int rc = -1;
        if (ok && made == 3) {
            BeamOptions o = beam_defaults();
            o.num_beams = 3;
            o.max_new_tokens = 16;
            o.eos_id = m.config.eos_id;
            LlamaDecoder ld;
            Decoder d = llama_decoder(&ld, &m, s, 3);
            rc = beam_search(&d, prompt, 11, &o, ids[merged], &n_ids[merged], NULL, &err);
        }
        for (int i = 0; i < made; i++) llama_state_free(&s[i]);
        llama_lora_unmerge(&m, mg);
        llama_free(&m);
        llama_lora_free(l);
        CHECK(ok && made == 3 && rc == 0, "%s", err.msg);
    }
    CHECK(n_ids[0] == n_ids[1] && n_ids[0] > 0, "%d ids at run time, %d merged", n_ids[0], n_ids[1]);
    for (int i = 0; i < n_ids[0]; i++)
        CHECK(ids[0][i] == ids[1][i], "id %d: %d at run time, %d merged", i, ids[0][i], ids[1][i]);
}

/* The old ".lora_A.default.weight" names load as the plain ones. */
static void t_lora_default_names(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Adapter a;
    CHECK(adapter_read(&a, lora) == 0, "cannot read the fixture adapter");
    for (int i = 0; i < a.n; i++) {
        char name[200];
        size_t n = strlen(a.names[i]);
        snprintf(name, sizeof name, "%.*s.default.weight", (int)(n - 7), a.names[i]);
        adapter_rename(&a, i, name);
    }
    char cfg[1024];
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"v_proj\"]", "../llama-tiny", NULL);
    const char *dir = write_adapter("lora-default-names", cfg, &a);
    adapter_free(&a);
    Llama m;
    LlamaLora *l;
    Error err;
    CHECK(load_adapted(&m, &l, base, dir, &err) == 0, "%s", err.msg);
    char msg[1200] = "";
    float worst;
    int rc = check_logits(&m, LORA_REL, 1, 64, &worst, msg, sizeof msg);
    llama_free(&m);
    llama_lora_free(l);
    CHECK(rc == 0, "%s", msg);
}

/* rank_pattern: v_proj at rank 4 (the first 4 rank components of the
 * fixture's) and alpha_pattern 32 for it: run time equals merged. */
static void t_lora_rank_pattern(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Adapter a;
    CHECK(adapter_read(&a, lora) == 0, "cannot read the fixture adapter");
    for (int i = 0; i < a.n; i++) {
        if (!strstr(a.names[i], "v_proj")) continue;
        float *d = a.data[i];
        if (strstr(a.names[i], "lora_A")) { /* [8, 64] -> its first 4 rows */
            a.t[i].shape[0] = 4;
        } else { /* [64, 8] -> its first 4 columns */
            for (int row = 0; row < 64; row++)
                for (int k = 0; k < 4; k++) d[row * 4 + k] = d[row * 8 + k];
            a.t[i].shape[1] = 4;
        }
        a.t[i].nbytes = 256 * sizeof(float);
    }
    char cfg[1024];
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"v_proj\"]", "../llama-tiny", "");
    /* the same config with the patterns put in place of the empty ones */
    char *rp = strstr(cfg, "\"rank_pattern\": {}");
    CHECK(rp != NULL, "config template changed");
    snprintf(rp, sizeof cfg - (size_t)(rp - cfg), "\"rank_pattern\": {\"v_proj\": 4}, \"alpha_pattern\": {\"v_proj\": 32}}");
    const char *dir = write_adapter("lora-rank-pattern", cfg, &a);
    adapter_free(&a);
    Llama m;
    LlamaLora *l;
    Error err;
    CHECK(load_adapted(&m, &l, base, dir, &err) == 0, "%s", err.msg);
    const LoraModule *v = &l->modules[0 * LORA_N_SLOTS + LORA_V], *q = &l->modules[0 * LORA_N_SLOTS + LORA_Q];
    int shapes_ok = v->r == 4 && v->scale == 8.0f && q->r == 8 && q->scale == 2.0f;
    int ids[9] = {1, 450, 16500, 471, 20186, 411, 521, 342, 6788};
    size_t n = (size_t)9 * (size_t)m.config.vocab_size;
    float *rt = malloc(n * sizeof(float)), *mgd = malloc(n * sizeof(float));
    LlamaState s;
    int rc = llama_state_new(&s, &m, 16, 16, NULL, &err) || llama_forward(&m, &s, ids, 9, 0, rt, &err);
    llama_state_free(&s);
    LlamaLoraMerged *mg = NULL;
    llama_attach_lora(&m, NULL, &err);
    if (!rc) rc = llama_lora_merge(&m, l, &mg, &err) || llama_state_new(&s, &m, 16, 16, NULL, &err);
    if (!rc) {
        rc = llama_forward(&m, &s, ids, 9, 0, mgd, &err);
        llama_state_free(&s);
    }
    float mx = max_abs(mgd, n), d = max_abs_diff(rt, mgd, n);
    free(rt);
    free(mgd);
    llama_lora_unmerge(&m, mg);
    llama_free(&m);
    llama_lora_free(l);
    CHECK(shapes_ok, "per-module rank/scale read wrong");
    CHECK(rc == 0, "%s", err.msg);
    CHECK(d <= 1e-4f * (mx > 1 ? mx : 1), "run time and merged differ by %g", d);
}

/* ----------------------------------------------------- merging to disk */

/* Every tensor of the merged file: the adapted ones equal W + s B A
 * computed here in double from the two input files, the others are the
 * base's bytes. tol is relative to max(1, |value|). */
static int check_merged_file(const char *base_dir, const char *lora_dir, const char *merged_dir, double tol,
                             char *msg, size_t cap) {
    SafeTensors b, a, o;
    Error err;
    char path[1200];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", lora_dir);
    if (st_open(&b, base_dir, &err)) return snprintf(msg, cap, "%s", err.msg), -1;
    if (st_open(&a, path, &err)) {
        st_close(&b);
        return snprintf(msg, cap, "%s", err.msg), -1;
    }
    if (st_open(&o, merged_dir, &err)) {
        st_close(&b);
        st_close(&a);
        return snprintf(msg, cap, "%s", err.msg), -1;
    }
    int rc = 0, n_merged = 0;
    double worst = 0;
    if (o.n_tensors != b.n_tensors) rc = -1, snprintf(msg, cap, "%d tensors, base has %d", o.n_tensors, b.n_tensors);
    for (int i = 0; i < b.n_tensors && rc == 0; i++) {
        const StTensor *bt = &b.tensors[i], *ot = st_find(&o, bt->name);
        if (!ot || ot->dtype != bt->dtype || ot->nbytes != bt->nbytes) {
            rc = -1;
            snprintf(msg, cap, "tensor %s missing or of another dtype/size", bt->name);
            break;
        }
        char an[256], bn[256];
        size_t nlen = strlen(bt->name);
        snprintf(an, sizeof an, "base_model.model.%.*s.lora_A.weight", (int)(nlen - 7), bt->name);
        snprintf(bn, sizeof bn, "base_model.model.%.*s.lora_B.weight", (int)(nlen - 7), bt->name);
        const StTensor *A = st_find(&a, an), *B = st_find(&a, bn);
        if (!A) {
            if (memcmp(ot->data, bt->data, bt->nbytes) != 0) rc = -1, snprintf(msg, cap, "%s changed", bt->name);
            continue;
        }
        n_merged++;
        long rows = (long)bt->shape[0], in = (long)bt->shape[1], r = (long)A->shape[0];
        for (long j = 0; j < rows && rc == 0; j++)
            for (long k = 0; k < in; k++) {
                double d = 0;
                for (long q = 0; q < r; q++) {
                    float bv, av;
                    memcpy(&bv, (const float *)B->data + j * r + q, 4);
                    memcpy(&av, (const float *)A->data + q * in + k, 4);
                    d += (double)bv * av;
                }
                size_t idx = (size_t)j * (size_t)in + (size_t)k;
                double w, got;
                if (bt->dtype == DT_F32) {
                    float wf, gf;
                    memcpy(&wf, (const float *)bt->data + idx, 4);
                    memcpy(&gf, (const float *)ot->data + idx, 4);
                    w = wf, got = gf;
                } else {
                    uint16_t wh, gh;
                    memcpy(&wh, (const uint16_t *)bt->data + idx, 2);
                    memcpy(&gh, (const uint16_t *)ot->data + idx, 2);
                    w = bt->dtype == DT_F16 ? f16_to_f32(wh) : bf16_to_f32(wh);
                    got = bt->dtype == DT_F16 ? f16_to_f32(gh) : bf16_to_f32(gh);
                }
                double want = w + 2.0 * d; /* lora_alpha / r = 16 / 8 */
                double diff = fabs(got - want) / (fabs(want) > 1 ? fabs(want) : 1);
                if (diff > worst) worst = diff;
                if (diff > tol) {
                    rc = -1;
                    snprintf(msg, cap, "%s[%ld][%ld] is %.9g, W + sBA is %.9g", bt->name, j, k, got, want);
                    break;
                }
            }
    }
    if (rc == 0 && n_merged != 4) rc = -1, snprintf(msg, cap, "%d tensors merged, expected 4", n_merged);
    if (rc == 0) snprintf(msg, cap, "%.3g", worst);
    st_close(&b);
    st_close(&a);
    st_close(&o);
    return rc;
}

static char out[1 << 16], errout[1 << 14];

static void t_lora_merge_cli_round_trip(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    char merged[600], args[2400];
    snprintf(merged, sizeof merged, "%s/lora-merged", test_tmpdir());
    snprintf(args, sizeof args, "merge --base '%s' --lora '%s' --out '%s'", base, lora, merged);
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    CHECK(errout[0] == 0, "unexpected stderr: %s", errout);
    CHECK(strstr(out, "merged 4 modules") != NULL, "stdout: %s", out);
    char msg[1200];
    CHECK(check_merged_file(base, lora, merged, 1e-6, msg, sizeof msg) == 0, "%s", msg);
    report("merged file vs W + sBA (relative)", (float)atof(msg), 1e-6f);
    const char *files[] = {"config.json", "generation_config.json", "tokenizer.model", "tokenizer_config.json",
                           "special_tokens_map.json"};
    for (int i = 0; i < 5; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", merged, files[i]);
        FILE *fp = fopen(path, "rb");
        CHECK(fp != NULL, "%s was not copied", files[i]);
        fclose(fp);
    }
    /* the folder is a model of its own: HF's numbers, with no adapter */
    Llama m;
    Error err;
    CHECK(llama_load(&m, merged, &err) == 0, "%s", err.msg);
    float worst;
    int lrc = check_logits(&m, LORA_REL, 2, 64, &worst, msg, sizeof msg);
    llama_free(&m);
    CHECK(lrc == 0, "merged folder: %s", msg);
    report("merged folder logits", worst, 0);
    /* and generates HF's ids through the CLI */
    snprintf(args, sizeof args, "generate --model '%s' --greedy -n 8 --ids -t 1 'The patient was admitted'", merged);
    char ids_merged[4096];
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 0, "%s", errout);
    snprintf(ids_merged, sizeof ids_merged, "%s", strrchr(out, '['));
    snprintf(args, sizeof args, "generate --model '%s' --lora '%s' --greedy -n 8 --ids -t 1 'The patient was admitted'",
             base, lora);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 0, "%s", errout);
    CHECK(strcmp(strrchr(out, '['), ids_merged) == 0, "--lora ids %s, merged folder %s", strrchr(out, '['),
          ids_merged);
}

/* An F16 base stays F16: each merged value is W + s B A rounded once. */
static void t_lora_merge_keeps_f16(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    char half[600], merged[600], cmd[2000];
    snprintf(half, sizeof half, "%s/lora-base-f16", test_tmpdir());
    snprintf(merged, sizeof merged, "%s/lora-merged-f16", test_tmpdir());
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/*.json '%s'/tokenizer.model '%s'/", half, base, base, half);
    CHECK(system(cmd) == 0, "cannot copy the base's side files");
    SafeTensors st;
    Error err;
    CHECK(st_open(&st, base, &err) == 0, "%s", err.msg);
    StTensor *ts = calloc((size_t)st.n_tensors, sizeof *ts);
    for (int i = 0; i < st.n_tensors; i++) {
        const StTensor *t = &st.tensors[i];
        size_t n = t->nbytes / 4;
        uint16_t *h = malloc(n * 2);
        for (size_t j = 0; j < n; j++) {
            float v;
            memcpy(&v, (const float *)t->data + j, 4);
            h[j] = f32_to_f16(v);
        }
        ts[i] = *t;
        ts[i].dtype = DT_F16;
        ts[i].nbytes = n * 2;
        ts[i].data = h;
    }
    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors", half);
    int rc = st_save(path, ts, st.n_tensors, &err);
    for (int i = 0; i < st.n_tensors; i++) free((void *)ts[i].data);
    free(ts);
    st_close(&st);
    CHECK(rc == 0, "%s", err.msg);
    Llama m;
    LlamaLora *l = NULL;
    CHECK(llama_load(&m, half, &err) == 0, "%s", err.msg);
    rc = llama_lora_load(&l, &m, lora, &err) || llama_lora_write_merged(&m, l, merged, &err);
    /* in memory too: the merged copy keeps the dtype */
    LlamaLoraMerged *mg = NULL;
    int mem_ok = rc == 0 && llama_lora_merge(&m, l, &mg, &err) == 0 && m.weights.layers[0].wq.dtype == DT_F16;
    llama_lora_unmerge(&m, mg);
    llama_free(&m);
    llama_lora_free(l);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(mem_ok, "in-memory merge of an F16 base: %s", err.msg);
    char msg[1200];
    /* one F16 rounding: half an ulp, 2^-11 relative */
    CHECK(check_merged_file(half, lora, merged, 1.0 / 2048 + 1e-7, msg, sizeof msg) == 0, "%s", msg);
    report("F16 merged file vs W + sBA (relative)", (float)atof(msg), 1.0f / 2048);
}

/* ------------------------------------------------------------- errors */

static void t_lora_shape_mismatch(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Adapter a;
    CHECK(adapter_read(&a, lora) == 0, "cannot read the fixture adapter");
    const char *name = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    int i = adapter_find(&a, name);
    CHECK(i >= 0, "fixture tensor missing");
    adapter_reshape(&a, i, 8, 128);
    char cfg[1024], want[1600], msg[1200];
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"v_proj\"]", "../llama-tiny", NULL);
    const char *dir = write_adapter("lora-bad-shape", cfg, &a);
    CHECK(try_load(base, dir, msg, sizeof msg, NULL, 0) != 0, "accepted");
    snprintf(want, sizeof want,
             "%s/adapter_model.safetensors: tensor '%s' is 8x128 but q_proj of layer 0 takes 64 inputs (r 8): "
             "lora_A must be 8x64",
             dir, name);
    CHECK(strcmp(msg, want) == 0, "got  %s\nwant %s", msg, want);
    /* made for another model: the message says so */
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"v_proj\"]", "decapoda-research/llama-7b-hf", NULL);
    dir = write_adapter("lora-bad-shape-other-base", cfg, &a);
    adapter_free(&a);
    CHECK(try_load(base, dir, msg, sizeof msg, NULL, 0) != 0, "accepted");
    snprintf(want, sizeof want,
             "%s/adapter_model.safetensors: tensor '%s' is 8x128 but q_proj of layer 0 takes 64 inputs (r 8): "
             "lora_A must be 8x64; the adapter was made for 'decapoda-research/llama-7b-hf', not '%s'",
             dir, name, base);
    CHECK(strcmp(msg, want) == 0, "got  %s\nwant %s", msg, want);
}

static void t_lora_b_shape_mismatch(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Adapter a;
    CHECK(adapter_read(&a, lora) == 0, "cannot read the fixture adapter");
    const char *name = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight";
    int i = adapter_find(&a, name);
    CHECK(i >= 0, "fixture tensor missing");
    adapter_reshape(&a, i, 64, 4);
    char cfg[1024], want[1600], msg[1200];
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"v_proj\"]", "../llama-tiny", NULL);
    const char *dir = write_adapter("lora-bad-b", cfg, &a);
    adapter_free(&a);
    CHECK(try_load(base, dir, msg, sizeof msg, NULL, 0) != 0, "accepted");
    snprintf(want, sizeof want,
             "%s/adapter_model.safetensors: tensor '%s' is 64x4 but v_proj of layer 1 gives 64 outputs (r 8): "
             "lora_B must be 64x8",
             dir, name);
    CHECK(strcmp(msg, want) == 0, "got  %s\nwant %s", msg, want);
}

static void t_lora_layer_out_of_range(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Adapter a;
    CHECK(adapter_read(&a, lora) == 0, "cannot read the fixture adapter");
    const char *name = "base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight";
    adapter_rename(&a, adapter_find(&a, "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"), name);
    char cfg[1024], want[1600], msg[1200];
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"v_proj\"]", "../llama-tiny", NULL);
    const char *dir = write_adapter("lora-layer-7", cfg, &a);
    adapter_free(&a);
    CHECK(try_load(base, dir, msg, sizeof msg, NULL, 0) != 0, "accepted");
    snprintf(want, sizeof want, "%s/adapter_model.safetensors: tensor '%s' is for layer 7 but the base model has 2 layers",
             dir, name);
    CHECK(strcmp(msg, want) == 0, "got  %s\nwant %s", msg, want);
}

static void t_lora_unknown_module(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Adapter a;
    CHECK(adapter_read(&a, lora) == 0, "cannot read the fixture adapter");
    const char *name = "base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight";
    adapter_rename(&a, adapter_find(&a, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), name);
    char cfg[1024], want[1600], msg[1200];
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"v_proj\"]", "../llama-tiny", NULL);
    const char *dir = write_adapter("lora-unknown-module", cfg, &a);
    CHECK(try_load(base, dir, msg, sizeof msg, NULL, 0) != 0, "accepted");
    snprintf(want, sizeof want,
             "%s/adapter_model.safetensors: tensor '%s' adapts 'model.layers.0.self_attn.qkv_proj', which is not a "
             "linear of a LLaMA model (model.layers.N.self_attn.{q,k,v,o}_proj or model.layers.N.mlp.{gate,up,down}_proj)",
             dir, name);
    CHECK(strcmp(msg, want) == 0, "got  %s\nwant %s", msg, want);
    /* a module the config does not target */
    adapter_rename(&a, adapter_find(&a, name), "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight");
    dir = write_adapter("lora-untargeted-module", cfg, &a);
    CHECK(try_load(base, dir, msg, sizeof msg, NULL, 0) != 0, "accepted");
    snprintf(want, sizeof want,
             "%s/adapter_model.safetensors: tensor 'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight' "
             "adapts 'model.layers.0.self_attn.k_proj', which target_modules in %s/adapter_config.json does not select",
             dir, dir);
    CHECK(strcmp(msg, want) == 0, "got  %s\nwant %s", msg, want);
    /* an unknown target name */
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"c_attn\"]", "../llama-tiny", NULL);
    dir = write_adapter("lora-unknown-target", cfg, &a);
    adapter_free(&a);
    CHECK(try_load(base, dir, msg, sizeof msg, NULL, 0) != 0, "accepted");
    snprintf(want, sizeof want,
             "%s/adapter_config.json: target module 'c_attn' is not a module of this LLaMA model (2 layers)", dir);
    CHECK(strcmp(msg, want) == 0, "got  %s\nwant %s", msg, want);
}

static void t_lora_target_without_tensors(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Adapter a;
    CHECK(adapter_read(&a, lora) == 0, "cannot read the fixture adapter");
    char cfg[1024], want[1600], msg[1200];
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"k_proj\", \"v_proj\"]", "../llama-tiny", NULL);
    const char *dir = write_adapter("lora-no-k-tensors", cfg, &a);
    CHECK(try_load(base, dir, msg, sizeof msg, NULL, 0) != 0, "accepted");
    snprintf(want, sizeof want,
             "%s/adapter_config.json: target module 'k_proj' is listed in target_modules but "
             "%s/adapter_model.safetensors has no tensors for it",
             dir, dir);
    CHECK(strcmp(msg, want) == 0, "got  %s\nwant %s", msg, want);
    /* one matrix of one layer missing */
    adapter_drop(&a, adapter_find(&a, "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"));
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"v_proj\"]", "../llama-tiny", NULL);
    dir = write_adapter("lora-missing-b", cfg, &a);
    adapter_free(&a);
    CHECK(try_load(base, dir, msg, sizeof msg, NULL, 0) != 0, "accepted");
    snprintf(want, sizeof want,
             "%s/adapter_model.safetensors: tensor 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight' "
             "is missing",
             dir);
    CHECK(strcmp(msg, want) == 0, "got  %s\nwant %s", msg, want);
}

/* A hub id with the same last component is the same model; another name
 * is a warning, not an error, when the shapes fit. */
static void t_lora_base_name_rule(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Adapter a;
    CHECK(adapter_read(&a, lora) == 0, "cannot read the fixture adapter");
    char cfg[1024], want[1600], msg[1200], warning[1200];
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"v_proj\"]", "someone/llama-tiny", NULL);
    const char *dir = write_adapter("lora-hub-name", cfg, &a);
    CHECK(try_load(base, dir, msg, sizeof msg, warning, sizeof warning) == 0, "%s", msg);
    CHECK(warning[0] == 0, "same last component warned: %s", warning);
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"v_proj\"]", "decapoda-research/llama-7b-hf", NULL);
    dir = write_adapter("lora-other-name", cfg, &a);
    adapter_free(&a);
    CHECK(try_load(base, dir, msg, sizeof msg, warning, sizeof warning) == 0, "%s", msg);
    snprintf(want, sizeof want,
             "%s/adapter_config.json: base_model_name_or_path is 'decapoda-research/llama-7b-hf' but the base model "
             "is '%s'; the shapes fit, so the adapter is applied anyway",
             dir, base);
    CHECK(strcmp(warning, want) == 0, "got  %s\nwant %s", warning, want);
    /* the CLI prints it and goes on */
    char args[2400];
    snprintf(args, sizeof args, "generate --model '%s' --lora '%s' --greedy -n 2 -t 1 hi", base, dir);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 0, "%s", errout);
    snprintf(want, sizeof want, "vmed generate: warning: %s/adapter_config.json: base_model_name_or_path", dir);
    CHECK(strncmp(errout, want, strlen(want)) == 0, "stderr: %s", errout);
}

/* adapter_model.bin goes to the PyTorch reader (tests/test_torch_bin.c
 * loads real ones); a file that only starts like a zip is refused by name. */
static void t_lora_bin_that_is_not_a_zip(void) {
    NEED_FIXTURE(base, BASE_REL);
    char cfg[1024], want[1600], msg[1200], path[700];
    config_text(cfg, sizeof cfg, "[\"q_proj\", \"v_proj\"]", "../llama-tiny", NULL);
    const char *dir = write_adapter("lora-pickle", cfg, NULL);
    snprintf(path, sizeof path, "%s/adapter_model.bin", dir);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL, "cannot write %s", path);
    fputs("PK\x03\x04 not really a pickle", fp);
    fclose(fp);
    CHECK(try_load(base, dir, msg, sizeof msg, NULL, 0) != 0, "accepted");
    snprintf(want, sizeof want,
             "%s/adapter_model.bin: no zip end-of-central-directory record; not a zip archive (torch.save writes "
             "zip archives since torch 1.6; older pickle-only files are not supported)",
             dir);
    CHECK(strcmp(msg, want) == 0, "got  %s\nwant %s", msg, want);
}

static void t_lora_cli_usage(void) {
    CHECK(test_vmed("merge --help", out, sizeof out, errout, sizeof errout) == 0 && strstr(out, "usage: vmed merge"),
          "merge --help: %s", out);
    CHECK(test_vmed("generate --help", out, sizeof out, errout, sizeof errout) == 0 && strstr(out, "--lora DIR"),
          "generate --help lacks --lora");
    /* each bad command line: exit code 2 and exactly this on stderr */
    static const char *const usage[][2] = {
        {"merge --lora a --out b", "vmed merge: --base DIR is required (see 'vmed merge --help')\n"},
        {"merge --base a --out b", "vmed merge: --lora DIR is required (see 'vmed merge --help')\n"},
        {"merge --base a --lora b", "vmed merge: --out DIR is required (see 'vmed merge --help')\n"},
        {"merge --base a --lora b --out c --frob", "vmed merge: unknown option '--frob' (see 'vmed merge --help')\n"},
        {"merge --base a --lora b --out c extra", "vmed merge: unexpected argument 'extra' (see 'vmed merge --help')\n"},
        {"merge --base a --lora", "vmed merge: option '--lora' needs a value (see 'vmed merge --help')\n"},
        {"generate --model x --lora", "vmed generate: option '--lora' needs a value (see 'vmed generate --help')\n"},
        {"merge --base a --lora b --out c --type f16",
         "vmed merge: --type applies to a GGUF --out only (see 'vmed merge --help')\n"},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        int rc = test_vmed(usage[i][0], out, sizeof out, errout, sizeof errout);
        CHECK(rc == 2 && strcmp(errout, usage[i][1]) == 0, "vmed %s: exit %d, %s", usage[i][0], rc, errout);
    }
    CHECK(test_vmed("merge --base a --lora b --out c.gguf --type q3", out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "--type must be f32, f16, bf16, q8_0, q4_0 or q4_k_m, got 'q3'"),
          "bad --type: %s", errout);
}

/* --out FILE.gguf: the merged model as llama.cpp's format, whose logits are
 * HF's merged ones (f32), and no temporary folder left behind. */
static void t_lora_merge_to_gguf(void) {
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    char gguf[600], args[2400], tmp[700];
    snprintf(gguf, sizeof gguf, "%s/lora-merged.gguf", test_tmpdir());
    snprintf(args, sizeof args, "merge --base '%s' --lora '%s' --out '%s' --type f32", base, lora, gguf);
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    snprintf(tmp, sizeof tmp, "%s.merge", gguf);
    CHECK(!dir_exists(tmp), "the temporary folder %s was left behind", tmp);
    Llama m;
    Error err;
    CHECK(llama_load(&m, gguf, &err) == 0, "%s", err.msg);
    float worst;
    char msg[1200];
    int lrc = check_logits(&m, LORA_REL, 2, 64, &worst, msg, sizeof msg);
    int from_gguf = m.gguf != NULL;
    llama_free(&m);
    CHECK(from_gguf, "not loaded as GGUF");
    CHECK(lrc == 0, "merged GGUF: %s", msg);
    report("merged GGUF (f32) logits", worst, 0);
}

static void t_lora_cli_generate_matches_hf(void) {
    NEED_FIXTURE(gen_path, LORA_REL "/ref/generate.json");
    NEED_FIXTURE(base, BASE_REL);
    NEED_FIXTURE(lora, LORA_REL);
    Error err;
    cJSON *root;
    CHECK(json_load_file(&root, gen_path, 1 << 22, &err) == 0, "%s", err.msg);
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "generations"), 1);
    const char *prompt = cJSON_GetStringValue(cJSON_GetObjectItem(g, "prompt"));
    int want[64], nw = test_json_ints(cJSON_GetObjectItem(g, "new_ids"), want, 64);
    char *quoted = malloc(strlen(prompt) * 4 + 3), *q = quoted;
    *q++ = '\'';
    for (const char *p = prompt; *p; p++) {
        if (*p == '\'') {
            memcpy(q, "'\\''", 4);
            q += 4;
        } else {
            *q++ = *p;
        }
    }
    *q++ = '\'';
    *q = 0;
    cJSON_Delete(root);
    char *args = malloc(strlen(quoted) + 2400);
    sprintf(args, "generate --model '%s' --lora '%s' --greedy -n 32 --ids -t 2 %s", base, lora, quoted);
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    free(args);
    free(quoted);
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    char want_text[2048] = "[";
    for (int i = 0; i < nw; i++) {
        char num[16];
        snprintf(num, sizeof num, i ? ", %d" : "%d", want[i]);
        strcat(want_text, num);
    }
    strcat(want_text, "]\n");
    const char *got = strrchr(out, '[');
    CHECK(got && strcmp(got, want_text) == 0, "ids %s, HF %s", got ? got : "(none)", want_text);
    /* a bad adapter folder is exit 1 with the file named */
    char bad[2400];
    snprintf(bad, sizeof bad, "generate --model '%s' --lora '%s/none' hi", base, test_tmpdir());
    CHECK(test_vmed(bad, out, sizeof out, errout, sizeof errout) == 1 && strstr(errout, "none/adapter_config.json"),
          "missing adapter: %s", errout);
}

void suite_lora(void) {
    RUN(t_lora_config_fixture);
    RUN(t_lora_config_refusals);
    RUN(t_lora_config_forms);
    RUN(t_lora_tensor_names);
    RUN(t_lora_runtime_prefill);
    RUN(t_lora_runtime_two_threads);
    RUN(t_lora_runtime_token_by_token);
    RUN(t_lora_runtime_token_by_token_two_threads);
    RUN(t_lora_runtime_chunks_of_3);
    RUN(t_lora_changes_logits);
    RUN(t_lora_state_before_attach);
    RUN(t_lora_merged_in_memory);
    RUN(t_lora_greedy_runtime);
    RUN(t_lora_greedy_runtime_two_threads);
    RUN(t_lora_greedy_merged);
    RUN(t_lora_beam_search);
    RUN(t_lora_default_names);
    RUN(t_lora_rank_pattern);
    RUN(t_lora_merge_cli_round_trip);
    RUN(t_lora_merge_keeps_f16);
    RUN(t_lora_shape_mismatch);
    RUN(t_lora_b_shape_mismatch);
    RUN(t_lora_layer_out_of_range);
    RUN(t_lora_unknown_module);
    RUN(t_lora_target_without_tensors);
    RUN(t_lora_base_name_rule);
    RUN(t_lora_bin_that_is_not_a_zip);
    RUN(t_lora_cli_usage);
    RUN(t_lora_merge_to_gguf);
    RUN(t_lora_cli_generate_matches_hf);
}
