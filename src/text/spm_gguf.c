/* The LLaMA tokenizer from GGUF metadata: llama.cpp's converter stores a
 * SentencePiece model as lists (tokenizer.ggml.tokens, .scores,
 * .token_type, numbered as sentencepiece's piece types) plus the special
 * ids, and leaves out the normalizer spec, which for LLaMA is the identity
 * with a dummy prefix and no whitespace folding: the defaults here, which
 * tokenizer.ggml.add_space_prefix and .remove_extra_whitespaces override. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "text/spm.h"

/* An optional integer-array key of n elements. */
static int int_list(const Gguf *g, const char *key, uint64_t n, const GgufKV **out, Error *err) {
    *out = NULL;
    const GgufKV *kv = gguf_find_kv(g, key);
    if (!kv) return 0;
    uint32_t et = kv->elem_type;
    int is_int = et == GGUF_I8 || et == GGUF_U8 || et == GGUF_I16 || et == GGUF_U16 || et == GGUF_I32 ||
                 et == GGUF_U32 || et == GGUF_I64 || et == GGUF_U64;
    if (kv->type != GGUF_ARRAY || !is_int)
        return error_set(err, "%s: metadata '%s' is not an array of integers", g->label, key);
    if (kv->count != n)
        return error_set(err, "%s: metadata '%s' has %llu entries but there are %llu tokens", g->label, key,
                         (unsigned long long)kv->count, (unsigned long long)n);
    *out = kv;
    return 0;
}

/* A special id: -1 when absent (or def), range-checked otherwise. */
static int special_id(const Gguf *g, const char *key, int64_t def, int n, int *out, Error *err) {
    int64_t v = def;
    int rc = gguf_get_int(g, key, &v, err);
    if (rc < 0) return -1;
    if (v < -1 || v >= n)
        return error_set(err, "%s: metadata '%s' is %lld, outside the %d tokens", g->label, key, (long long)v, n);
    *out = (int)v;
    return 0;
}

static int opt_bool(const Gguf *g, const char *key, int *v, Error *err) {
    return gguf_get_bool(g, key, v, err) < 0 ? -1 : 0;
}

static int check_model(const Gguf *g, Error *err) {
    const char *s;
    uint64_t n;
    int rc = gguf_get_string(g, "tokenizer.ggml.model", &s, &n, err);
    if (rc < 0) return -1;
    if (rc > 0) return error_set(err, "%s: the file holds no tokenizer (no 'tokenizer.ggml.model')", g->label);
    if (n != 5 || memcmp(s, "llama", 5) != 0)
        return error_set(err, "%s: tokenizer.ggml.model is '%.*s'; vmed reads 'llama' (SentencePiece) tokenizers only",
                         g->label, (int)(n < 40 ? n : 40), s);
    return 0;
}

/* The lists in the arrays SpmVocab wants (freed by free_vocab). */
static int fill_vocab(SpmVocab *v, const Gguf *g, Error *err) {
    const GgufKV *tokens, *scores = NULL, *types;
    uint64_t n;
    int rc = gguf_get_array(g, "tokenizer.ggml.tokens", GGUF_STRING, &tokens, &n, err);
    if (rc) return rc < 0 ? -1 : error_set(err, "%s: metadata 'tokenizer.ggml.tokens' is missing", g->label);
    if (n == 0 || n > INT_MAX / 4)
        return error_set(err, "%s: tokenizer.ggml.tokens has %llu tokens, expected 1..%d", g->label,
                         (unsigned long long)n, INT_MAX / 4);
    uint64_t n_scores = n;
    rc = gguf_get_array(g, "tokenizer.ggml.scores", GGUF_F32, &scores, &n_scores, err);
    if (rc < 0) return -1;
    if (rc == 0 && n_scores != n)
        return error_set(err, "%s: metadata 'tokenizer.ggml.scores' has %llu entries but there are %llu tokens",
                         g->label, (unsigned long long)n_scores, (unsigned long long)n);
    if (rc > 0) scores = NULL;
    if (int_list(g, "tokenizer.ggml.token_type", n, &types, err)) return -1;
    v->n = (int)n;
    const char **pieces = malloc((size_t)n * sizeof *pieces);
    size_t *lens = malloc((size_t)n * sizeof *lens);
    float *sc = scores ? malloc((size_t)n * sizeof *sc) : NULL;
    int *ty = types ? malloc((size_t)n * sizeof *ty) : NULL;
    v->pieces = pieces;
    v->lens = lens;
    v->scores = sc;
    v->types = ty;
    if (!pieces || !lens || (scores && !sc) || (types && !ty)) return error_set(err, "%s: out of memory", g->label);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        pieces[i] = gguf_array_string(tokens, i, &len);
        lens[i] = (size_t)len;
        if (sc) sc[i] = (float)gguf_array_float(scores, i);
        if (ty) {
            int64_t t = gguf_array_int(types, i);
            ty[i] = t < 0 || t > 255 ? 0 : (int)t; /* 0 is refused with the piece's number */
        }
    }
    return 0;
}

static void free_vocab(SpmVocab *v) {
    free((void *)v->pieces);
    free((void *)v->lens);
    free((void *)v->scores);
    free((void *)v->types);
}

int tokenizer_load_gguf(Tokenizer **out, const Gguf *g, Error *err) {
    *out = NULL;
    if (check_model(g, err)) return -1;
    SpmVocab v = {0};
    v.model_type = SPM_BPE;
    v.add_dummy_prefix = 1;
    v.remove_extra_ws = 0;
    int rc = fill_vocab(&v, g, err);
    /* llama.cpp's defaults for a "llama" vocabulary when the ids are absent */
    if (!rc) rc = special_id(g, "tokenizer.ggml.bos_token_id", v.n > 1 ? 1 : -1, v.n, &v.bos_id, err) ||
                  special_id(g, "tokenizer.ggml.eos_token_id", v.n > 2 ? 2 : -1, v.n, &v.eos_id, err) ||
                  special_id(g, "tokenizer.ggml.padding_token_id", -1, v.n, &v.pad_id, err);
    int unk = -1;
    if (!rc) rc = special_id(g, "tokenizer.ggml.unknown_token_id", -1, v.n, &unk, err);
    if (!rc) rc = opt_bool(g, "tokenizer.ggml.add_space_prefix", &v.add_dummy_prefix, err) ||
                  opt_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &v.remove_extra_ws, err);
    const GgufKV *cm = NULL;
    uint64_t cm_len = 0;
    if (!rc && gguf_get_array(g, "tokenizer.ggml.precompiled_charsmap", GGUF_U8, &cm, &cm_len, err) < 0) rc = -1;
    if (!rc && cm) {
        v.charsmap = cm->data;
        v.charsmap_len = (size_t)cm_len;
    }
    if (!rc) rc = tokenizer_from_vocab(out, &v, g->label, err);
    free_vocab(&v);
    if (rc) return -1;
    /* sentencepiece's <unk> is the one UNKNOWN piece; a different id in the
     * metadata would make the two readings of the file disagree */
    if (unk >= 0 && unk != tokenizer_unk(*out)) {
        int have = tokenizer_unk(*out);
        tokenizer_free(*out);
        *out = NULL;
        return error_set(err, "%s: tokenizer.ggml.unknown_token_id is %d but the UNKNOWN token is %d", g->label, unk,
                         have);
    }
    return 0;
}

int tokenizer_load_gguf_path(Tokenizer **out, const char *path, Error *err) {
    *out = NULL;
    Gguf *g;
    if (gguf_open(&g, path, err)) return -1;
    int rc = tokenizer_load_gguf(out, g, err);
    gguf_close(g);
    return rc;
}
