/* config.json checks and the LLaMA loader's shape checks: each bad input
 * gives a message naming the file and the field or tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "models/llama.h"
#include "test.h"

void suite_config(void);

static const char GOOD[] =
    "{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
    " \"num_key_value_heads\": 1, \"intermediate_size\": 16, \"vocab_size\": 16, \"max_position_embeddings\": 32,"
    " \"rms_norm_eps\": 1e-5, \"rope_theta\": 500000.0, \"rope_scaling\": null, \"tie_word_embeddings\": true,"
    " \"bos_token_id\": 1, \"eos_token_id\": 2}";

/* A fresh model folder holding config.json with text. */
static const char *model_dir(const char *name, const char *config_text) {
    static char dirs[4][512];
    static int next;
    char *dir = dirs[next++ % 4];
    snprintf(dir, sizeof dirs[0], "%s/%s", test_tmpdir(), name);
    mkdir(dir, 0755);
    char rel[600];
    snprintf(rel, sizeof rel, "%s/config.json", name);
    test_write_file(rel, config_text, strlen(config_text));
    return dir;
}

static void t_config_reads_every_field(void) {
    const char *dir = model_dir("cfg-good", GOOD);
    LlamaConfig c;
    Error err;
    CHECK(llama_config_load(&c, dir, &err) == 0, "%s", err.msg);
    CHECK(c.dim == 8 && c.n_layers == 1 && c.n_heads == 2 && c.n_kv_heads == 1 && c.head_dim == 4, "shape fields");
    CHECK(c.hidden_dim == 16 && c.vocab_size == 16 && c.max_pos == 32, "sizes");
    CHECK(c.norm_eps == 1e-5f && c.rope_theta == 500000.0f && c.rope_linear_factor == 1.0f, "floats");
    CHECK(c.tie_embeddings == 1 && c.bos_id == 1 && c.eos_id == 2, "tie/bos/eos");
}

static void t_config_fixture_and_generation_config(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    LlamaConfig c;
    Error err;
    CHECK(llama_config_load(&c, dir, &err) == 0, "%s", err.msg);
    CHECK(c.dim == 64 && c.n_layers == 2 && c.n_heads == 4 && c.hidden_dim == 176 && c.vocab_size == 32000,
          "llama-tiny fields");
    CHECK(c.norm_eps == 1e-6f && c.max_pos == 512 && !c.tie_embeddings, "llama-tiny eps/ctx/tie");
}

static void t_config_linear_rope_scaling(void) {
    char text[1024];
    snprintf(text, sizeof text, "%.*s, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0}}",
             (int)strlen(GOOD) - 1, GOOD);
    /* cJSON finds the first of two equal keys, so drop the null one */
    char *p = strstr(text, "\"rope_scaling\": null,");
    memmove(p, p + strlen("\"rope_scaling\": null,"), strlen(p + strlen("\"rope_scaling\": null,")) + 1);
    const char *dir = model_dir("cfg-rope", text);
    LlamaConfig c;
    Error err;
    CHECK(llama_config_load(&c, dir, &err) == 0, "%s", err.msg);
    CHECK(c.rope_linear_factor == 4.0f, "factor %g", c.rope_linear_factor);
}

/* GOOD with one "key": value replaced (or removed when repl is ""). */
static void expect_config_error(const char *name, const char *key_text, const char *repl, const char *want) {
    char text[2048];
    const char *p = strstr(GOOD, key_text);
    if (!p) {
        test_fail(__FILE__, __LINE__, "test bug: %s not in GOOD", key_text);
        return;
    }
    const char *end = strpbrk(p, ",}");
    if (*end == ',') end++;
    snprintf(text, sizeof text, "%.*s%s%s", (int)(p - GOOD), GOOD, repl, end);
    const char *dir = model_dir(name, text);
    LlamaConfig c;
    Error err;
    err.msg[0] = 0;
    int rc = llama_config_load(&c, dir, &err);
    if (rc == 0) {
        test_fail(__FILE__, __LINE__, "%s: loaded, expected an error with '%s'", name, want);
        return;
    }
    if (!strstr(err.msg, want) || !strstr(err.msg, "config.json"))
        test_fail(__FILE__, __LINE__, "%s: message '%s' lacks '%s' or the file name", name, err.msg, want);
}

static void t_config_bad_fields(void) {
    expect_config_error("cfg-missing", "\"hidden_size\"", "", "missing field 'hidden_size'");
    if (test_failed()) return;
    expect_config_error("cfg-zero-layers", "\"num_hidden_layers\"", "\"num_hidden_layers\": 0,", "num_hidden_layers");
    if (test_failed()) return;
    expect_config_error("cfg-absurd-vocab", "\"vocab_size\"", "\"vocab_size\": 1e15,", "vocab_size");
    if (test_failed()) return;
    expect_config_error("cfg-string", "\"intermediate_size\"", "\"intermediate_size\": \"16\",", "intermediate_size");
    if (test_failed()) return;
    expect_config_error("cfg-heads", "\"num_attention_heads\"", "\"num_attention_heads\": 3,",
                        "not a multiple of num_attention_heads");
    if (test_failed()) return;
    expect_config_error("cfg-kv", "\"num_key_value_heads\"", "\"num_key_value_heads\": 3,", "num_key_value_heads");
    if (test_failed()) return;
    expect_config_error("cfg-type", "\"model_type\"", "\"model_type\": \"bert\",", "model_type is 'bert'");
    if (test_failed()) return;
    expect_config_error("cfg-rope", "\"rope_scaling\"", "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 2},",
                        "rope_scaling type 'yarn' is not supported");
    if (test_failed()) return;
    expect_config_error("cfg-eps", "\"rms_norm_eps\"", "\"rms_norm_eps\": -1,", "rms_norm_eps");
}

static void t_config_not_json(void) {
    const char *dir = model_dir("cfg-garbage", "{\"hidden_size\": 8,,}");
    LlamaConfig c;
    Error err;
    CHECK(llama_config_load(&c, dir, &err) == -1, "garbage loaded");
    CHECK(strstr(err.msg, "config.json") != NULL, "message: %s", err.msg);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such-model", test_tmpdir());
    CHECK(llama_config_load(&c, missing, &err) == -1 && strstr(err.msg, "no-such-model/config.json: cannot open"),
          "missing folder: %s", err.msg);
}

/* Writes model.safetensors for GOOD's shapes into dir, with one tensor
 * optionally renamed away, reshaped or retyped. */
static void write_tiny_weights(const char *dir, const char *skip, const char *reshape, DType odd_dtype) {
    const char *names[] = {"model.embed_tokens.weight", "model.norm.weight",
                           "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
                           "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
                           "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                           "model.layers.0.mlp.down_proj.weight", "model.layers.0.input_layernorm.weight",
                           "model.layers.0.post_attention_layernorm.weight"};
    int64_t shapes[][2] = {{16, 8}, {8, 0}, {8, 8}, {4, 8}, {4, 8}, {8, 8}, {16, 8}, {16, 8}, {8, 16}, {8, 0}, {8, 0}};
    static float data[256];
    for (int i = 0; i < 256; i++) data[i] = (float)(i % 7) * 0.1f;
    StTensor t[11];
    int n = 0;
    for (int i = 0; i < 11; i++) {
        if (skip && strcmp(names[i], skip) == 0) continue;
        memset(&t[n], 0, sizeof t[n]);
        t[n].name = (char *)names[i];
        t[n].dtype = DT_F32;
        t[n].ndim = shapes[i][1] ? 2 : 1;
        t[n].shape[0] = shapes[i][0];
        t[n].shape[1] = shapes[i][1];
        if (reshape && strcmp(names[i], reshape) == 0) t[n].shape[0] += 1;
        if (odd_dtype != DT_F32 && i == 2) t[n].dtype = odd_dtype;
        t[n].data = data;
        t[n].nbytes = (size_t)(t[n].shape[0] * (t[n].ndim == 2 ? t[n].shape[1] : 1)) * dtype_size(t[n].dtype);
        n++;
    }
    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    Error err;
    if (st_save(path, t, n, &err)) test_fail(__FILE__, __LINE__, "st_save: %s", err.msg);
}

static void t_model_loads_and_runs(void) {
    const char *dir = model_dir("model-good", GOOD);
    write_tiny_weights(dir, NULL, NULL, DT_F32);
    Llama m;
    Error err;
    CHECK(llama_load(&m, dir, &err) == 0, "%s", err.msg);
    CHECK(m.weights.lm_head.data == m.weights.embed.data, "tied lm_head must be the embedding");
    LlamaState s;
    CHECK(llama_state_new(&s, &m, 8, 4, NULL, &err) == 0, "%s", err.msg);
    int ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK(llama_forward(&m, &s, ids, 8, 0, NULL, &err) == 0, "%s", err.msg);
    CHECK(llama_forward(&m, &s, ids, 1, 8, NULL, &err) == -1 &&
              strstr(err.msg, "1 tokens at position 8 do not fit the context of 8 tokens"),
          "overflow message: %s", err.msg);
    int bad = 16;
    CHECK(llama_forward(&m, &s, &bad, 1, 0, NULL, &err) == -1 && strstr(err.msg, "token id 16"), "bad id: %s",
          err.msg);
    llama_state_free(&s);
    CHECK(llama_state_new(&s, &m, 33, 4, NULL, &err) == -1 && strstr(err.msg, "context length 33"), "ctx: %s", err.msg);
    llama_free(&m);
}

static void expect_model_error(const char *name, const char *skip, const char *reshape, DType dt, const char *want) {
    const char *dir = model_dir(name, GOOD);
    write_tiny_weights(dir, skip, reshape, dt);
    Llama m;
    Error err;
    if (llama_load(&m, dir, &err) == 0) {
        llama_free(&m);
        test_fail(__FILE__, __LINE__, "%s loaded, expected '%s'", name, want);
        return;
    }
    if (!strstr(err.msg, want) || !strstr(err.msg, "model.safetensors"))
        test_fail(__FILE__, __LINE__, "%s: message '%s' lacks '%s' or the file name", name, err.msg, want);
}

static void t_model_bad_tensors(void) {
    expect_model_error("model-missing", "model.layers.0.mlp.up_proj.weight", NULL, DT_F32,
                       "tensor 'model.layers.0.mlp.up_proj.weight' is missing");
    if (test_failed()) return;
    expect_model_error("model-shape", NULL, "model.layers.0.self_attn.k_proj.weight", DT_F32,
                       "tensor 'model.layers.0.self_attn.k_proj.weight' is 5x8 but the config says 4x8");
    if (test_failed()) return;
    expect_model_error("model-vocab", NULL, "model.embed_tokens.weight", DT_F32,
                       "tensor 'model.embed_tokens.weight' is 17x8 but the config says 16x8");
    if (test_failed()) return;
    expect_model_error("model-dtype", NULL, NULL, DT_I32, "has dtype I32");
}

void suite_config(void) {
    RUN(t_config_reads_every_field);
    RUN(t_config_fixture_and_generation_config);
    RUN(t_config_linear_rope_scaling);
    RUN(t_config_bad_fields);
    RUN(t_config_not_json);
    RUN(t_model_loads_and_runs);
    RUN(t_model_bad_tensors);
}
