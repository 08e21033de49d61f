/* libFuzzer target for the GGUF reader: any bytes go to gguf_parse; whatever
 * it accepts must be safe to use, so every metadata value is read through
 * the accessors, every tensor's first and last byte is touched (ASan catches
 * a range outside the input), names and keys must be findable, and the
 * tokenizer reader runs on the result. Seeds in fuzz/corpus/gguf were
 * written by gguf-py (tests/data/gguf_make_reference.py and a tiny
 * llama-style tokenizer file). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "text/spm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_kv(const Gguf *g, const GgufKV *kv) {
    volatile double sink = 0;
    Error err;
    if (gguf_find_kv(g, kv->key) != kv) __builtin_trap(); /* keys are unique and findable */
    if (kv->type != GGUF_ARRAY) {
        int64_t i;
        double d;
        int b;
        const char *s;
        uint64_t n;
        if (gguf_get_int(g, kv->key, &i, &err) == 0) sink += (double)i;
        if (gguf_get_float(g, kv->key, &d, &err) == 0) sink += d;
        if (gguf_get_bool(g, kv->key, &b, &err) == 0) sink += b;
        if (gguf_get_string(g, kv->key, &s, &n, &err) == 0 && n) sink += s[0] + s[n - 1];
        sink += gguf_kv_number(kv);
        return;
    }
    for (uint64_t i = 0; i < kv->count; i++) {
        if (kv->elem_type == GGUF_STRING) {
            uint64_t n;
            const char *s = gguf_array_string(kv, i, &n);
            if (n) sink += s[0] + s[n - 1];
        } else if (kv->elem_type == GGUF_F32 || kv->elem_type == GGUF_F64) {
            sink += gguf_array_float(kv, i);
        } else {
            sink += (double)gguf_array_int(kv, i);
        }
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Gguf *g;
    Error err;
    if (gguf_parse(&g, data, size, "fuzz.gguf", &err) != 0) return 0;
    for (int64_t i = 0; i < g->n_kv; i++) read_kv(g, &g->kvs[i]);
    volatile uint8_t sink = 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const GgufTensor *t = &g->tensors[i];
        const uint8_t *p = t->data;
        if (!p || t->nbytes == 0) __builtin_trap(); /* dims >= 1: never empty */
        sink ^= p[0] ^ p[t->nbytes - 1];
        if (gguf_find_tensor(g, t->name) != t) __builtin_trap();
        uint64_t rows = t->nbytes / ggml_row_bytes(t->type, (uint64_t)t->ne[0]);
        uint64_t want = 1;
        for (int d = 1; d < t->n_dims; d++) want *= (uint64_t)t->ne[d];
        if (rows != want) __builtin_trap();
        Tensor v;
        (void)gguf_tensor_view(g, t, &v, &err);
    }
    (void)sink;
    (void)gguf_find_kv(g, "");
    (void)gguf_find_tensor(g, "token_embd.weight");
    Tokenizer *tok;
    if (tokenizer_load_gguf(&tok, g, &err) == 0) {
        int *ids, n;
        if (tokenizer_encode(tok, "Hello world <s> the", 1, &ids, &n, &err) == 0) {
            for (int i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= tokenizer_vocab_size(tok)) __builtin_trap();
            free(ids);
        }
        tokenizer_free(tok);
    }
    gguf_close(g);
    return 0;
}
