/* WordPiece (BERT/GIT) tokenizer tests: the git-tiny fixture references,
 * HF BertTokenizer references for tricky strings under five configurations
 * (tests/data/wordpiece_refs.json, made by tests/data/make_wordpiece_refs.py
 * with transformers 4.36.2), invalid UTF-8, decode rules, and bad files
 * that must fail with a message naming the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "formats/json_util.h"
#include "text/wordpiece.h"
#include "test.h"

void suite_wordpiece(void);

/* ------------------------------------------------------------ helpers */

/* ids (n) == the JSON array of numbers a */
static int ids_match(const int *ids, int n, const cJSON *a) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return 0;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e) || (int)e->valuedouble != ids[i++]) return 0;
    }
    return 1;
}

static const char *jstr(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* A case's text: from "hex" when there is one (texts may hold NUL). */
static char *case_text(const cJSON *c, size_t *len) {
    const char *hex = jstr(c, "hex");
    const char *text = jstr(c, "text");
    size_t n = *hex ? strlen(hex) / 2 : strlen(text);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    if (*hex) {
        for (size_t i = 0; i < n; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            out[i] = (char)v;
        }
    } else {
        memcpy(out, text, n);
    }
    out[n] = 0;
    *len = n;
    return out;
}

/* Checks one reference case (ids with and without [CLS]/[SEP], tokens,
 * both decodes); reports and returns -1 on the first difference. */
static int check_case(const WordPiece *w, const cJSON *c, const char *label, int index) {
    size_t len;
    char *text = case_text(c, &len);
    int *ids = NULL, *bare = NULL, n = 0, nb = 0, rc = -1;
    char *dec = NULL, *dec_skip = NULL;
    Error err;
    if (!text) {
        test_fail(__FILE__, __LINE__, "%s case %d: out of memory", label, index);
        return -1;
    }
    if (wordpiece_encode_bytes(w, text, len, 1, &ids, &n, &err) ||
        wordpiece_encode_bytes(w, text, len, 0, &bare, &nb, &err) ||
        wordpiece_decode(w, ids, n, 0, &dec, &err) || wordpiece_decode(w, ids, n, 1, &dec_skip, &err)) {
        test_fail(__FILE__, __LINE__, "%s case %d: %s", label, index, err.msg);
        goto done;
    }
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(c, "tokens");
    if (!ids_match(ids, n, cJSON_GetObjectItemCaseSensitive(c, "ids_with_special"))) {
        test_fail(__FILE__, __LINE__, "%s case %d (%s): ids with [CLS]/[SEP] differ (%d ids)", label, index,
                  jstr(c, "text"), n);
        goto done;
    }
    if (!ids_match(bare, nb, cJSON_GetObjectItemCaseSensitive(c, "ids_no_special")) ||
        cJSON_GetArraySize(tokens) != nb) {
        test_fail(__FILE__, __LINE__, "%s case %d (%s): ids without specials differ", label, index,
                  jstr(c, "text"));
        goto done;
    }
    /* HF's tokens are strings; an [UNK] id may stand for a never_split
     * string that is not in the vocabulary, so only other ids compare. */
    for (int i = 0; i < nb; i++) {
        const char *want = cJSON_GetArrayItem(tokens, i)->valuestring;
        if (bare[i] != wordpiece_unk(w) && strcmp(wordpiece_token(w, bare[i]), want) != 0) {
            test_fail(__FILE__, __LINE__, "%s case %d: token %d is '%s', HF has '%s'", label, index, i,
                      wordpiece_token(w, bare[i]), want);
            goto done;
        }
    }
    if (strcmp(dec, jstr(c, "decode")) != 0 || strcmp(dec_skip, jstr(c, "decode_skip_special")) != 0) {
        test_fail(__FILE__, __LINE__, "%s case %d: decode '%s' / '%s', HF has '%s' / '%s'", label, index, dec,
                  dec_skip, jstr(c, "decode"), jstr(c, "decode_skip_special"));
        goto done;
    }
    rc = 0;
done:
    free(text);
    free(ids);
    free(bare);
    free(dec);
    free(dec_skip);
    return rc;
}

static int check_cases(const WordPiece *w, const cJSON *cases, const char *label) {
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        if (check_case(w, c, label, i++)) return -1;
    }
    return 0;
}

/* A fresh directory under the test scratch directory. */
static const char *scratch_dir(const char *name) {
    static char bufs[4][600];
    static int next;
    char *dir = bufs[next++ % 4];
    snprintf(dir, sizeof bufs[0], "%s/%s", test_tmpdir(), name);
    mkdir(dir, 0755);
    return dir;
}

/* Writes bytes to dir/name. */
static int write_in(const char *dir, const char *name, const void *data, size_t n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t got = fwrite(data, 1, n, fp);
    return fclose(fp) == 0 && got == n ? 0 : -1;
}

static int write_str(const char *dir, const char *name, const char *s) { return write_in(dir, name, s, strlen(s)); }

/* ids of text, NULL on failure (err filled). */
static int *encode(const WordPiece *w, const char *text, size_t len, int *n, Error *err) {
    int *ids;
    if (wordpiece_encode_bytes(w, text, len, 0, &ids, n, err)) return NULL;
    return ids;
}

/* A small vocabulary written to dir/vocab.txt and loaded (uncased). */
static WordPiece *small_vocab(const char *dir, const char *lines) {
    Error err;
    WordPiece *w = NULL;
    char path[700];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    if (write_str(dir, "vocab.txt", lines) || wordpiece_load_vocab(&w, path, 1, &err)) return NULL;
    return w;
}

/* --------------------------------------------------------------- tests */

static void t_wordpiece_git_tiny_fixture(void) {
    NEED_FIXTURE(dir, "git-tiny");
    NEED_FIXTURE(ref, "git-tiny/ref/tokenization.json");
    Error err;
    WordPiece *w;
    CHECK(wordpiece_load(&w, dir, &err) == 0, "%s", err.msg);
    cJSON *root;
    if (json_load_file(&root, ref, 1 << 22, &err)) {
        wordpiece_free(w);
        CHECK(0, "%s", err.msg);
    }
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    int size = cJSON_GetArraySize(cases);
    int rc = check_cases(w, cases, "git-tiny");
    cJSON_Delete(root);
    wordpiece_free(w);
    CHECK(rc == 0, "see above");
    CHECK(size == 11, "%d fixture cases, expected 11", size);
}

static void t_wordpiece_git_tiny_config(void) {
    NEED_FIXTURE(dir, "git-tiny");
    Error err;
    WordPiece *w;
    CHECK(wordpiece_load(&w, dir, &err) == 0, "%s", err.msg);
    int ok = wordpiece_vocab_size(w) == 30522 && wordpiece_cls(w) == 101 && wordpiece_sep(w) == 102 &&
             wordpiece_pad(w) == 0 && wordpiece_unk(w) == 100 && wordpiece_mask(w) == 103 &&
             wordpiece_max_length(w) == 512 && strcmp(wordpiece_token(w, 101), "[CLS]") == 0 &&
             strcmp(wordpiece_token(w, 30521), "##～") == 0 && strcmp(wordpiece_token(w, 30522), "[UNK]") == 0 &&
             strcmp(wordpiece_token(w, -1), "[UNK]") == 0;
    wordpiece_free(w);
    CHECK(ok, "vocab size, special ids, model_max_length or tokens differ from bert-base-uncased");
}

/* Every configuration of wordpiece_refs.json, loaded as a model folder
 * (tokenizer_config.json with the same keys + vocab.txt); the first two
 * also through wordpiece_load_vocab. */
static void t_wordpiece_hf_refs(void) {
    NEED_FIXTURE(vocab, "tokenizers/bert-base-uncased/vocab.txt");
    Error err;
    cJSON *root;
    CHECK(json_load_file(&root, VMED_SOURCE_DIR "/tests/data/wordpiece_refs.json", 1 << 22, &err) == 0, "%s",
          err.msg);
    char *vocab_text = NULL;
    size_t vocab_len;
    int rc = file_read_all(vocab, 1 << 24, &vocab_text, &vocab_len, &err), n_configs = 0, n_cases = 0;
    const cJSON *cfg;
    cJSON_ArrayForEach(cfg, cJSON_GetObjectItemCaseSensitive(root, "configs")) {
        if (rc) break;
        const char *name = jstr(cfg, "name");
        const cJSON *cases = cJSON_GetObjectItemCaseSensitive(cfg, "cases");
        char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(cfg, "config"));
        const char *dir = scratch_dir(name);
        WordPiece *w = NULL;
        rc = !config || write_str(dir, "tokenizer_config.json", config) ||
             write_in(dir, "vocab.txt", vocab_text, vocab_len);
        free(config);
        if (rc) {
            test_fail(__FILE__, __LINE__, "%s: cannot write the model folder", dir);
            break;
        }
        if ((rc = wordpiece_load(&w, dir, &err))) {
            test_fail(__FILE__, __LINE__, "%s", err.msg);
            break;
        }
        rc = check_cases(w, cases, name);
        wordpiece_free(w);
        int lower = strcmp(name, "uncased") == 0;
        if (!rc && (lower || strcmp(name, "cased") == 0)) {
            if ((rc = wordpiece_load_vocab(&w, vocab, lower, &err))) {
                test_fail(__FILE__, __LINE__, "%s", err.msg);
                break;
            }
            rc = check_cases(w, cases, name);
            wordpiece_free(w);
        }
        n_configs++;
        n_cases += cJSON_GetArraySize(cases);
    }
    free(vocab_text);
    cJSON_Delete(root);
    CHECK(rc == 0, "%s", test_failed() ? "see above" : err.msg);
    CHECK(n_configs == 5 && n_cases >= 70, "%d configs, %d cases: the reference file is incomplete", n_configs,
          n_cases);
}

/* vmed's rule for bytes Python could not hold: each invalid byte is
 * U+FFFD, which clean-up drops, so the text reads as if they were absent. */
static void t_wordpiece_invalid_utf8(void) {
    NEED_FIXTURE(dir, "git-tiny");
    static const char *const cases[][2] = {
        {"ab\xff" "cd", "abcd"},                       /* a byte that never starts UTF-8 */
        {"pneu\xc0\xafmonia", "pneumonia"},            /* overlong "/" */
        {"x\xed\xa0\x80y", "xy"},                      /* a surrogate */
        {"\xf4\x90\x80\x80" "lung", "lung"},           /* past U+10FFFF */
        {"chest \xe6\x9d", "chest "},                  /* cut at the end */
        {"\x80\x80[CLS]\xc3", "[CLS]"},                /* lone continuation bytes */
        {"caf\xc3\xa9 \xc3(", "cafe ("},               /* valid é, then a bad lead byte */
    };
    Error err;
    WordPiece *w;
    CHECK(wordpiece_load(&w, dir, &err) == 0, "%s", err.msg);
    int bad = -1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && bad < 0; i++) {
        int n1, n2, *a = encode(w, cases[i][0], strlen(cases[i][0]), &n1, &err);
        int *b = encode(w, cases[i][1], strlen(cases[i][1]), &n2, &err);
        if (!a || !b || n1 != n2 || memcmp(a, b, (size_t)n1 * sizeof *a) != 0) bad = (int)i;
        free(a);
        free(b);
    }
    wordpiece_free(w);
    CHECK(bad < 0, "case %d: invalid UTF-8 is not dropped", bad);
}

/* Ids outside the vocabulary and repeated lines decode as HF does
 * (expected strings from transformers 4.36.2 on the same vocab.txt). */
static void t_wordpiece_decode_rules(void) {
    const char *dir = scratch_dir("wp_decode");
    WordPiece *w = small_vocab(dir, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nlung\n##s\n.\n'\nt\ndon\nlung\n");
    CHECK(w, "small vocabulary did not load");
    Error err;
    char *s = NULL, *skip = NULL, *empty = NULL, *neg = NULL;
    int ids[] = {2, 11, 6, 7, 10, 8, 9, 99, -3, 5, 1, 4, 3};
    int n = 0, *enc = NULL;
    int rc = wordpiece_decode(w, ids, 13, 0, &s, &err) || wordpiece_decode(w, ids, 13, 1, &skip, &err) ||
             wordpiece_decode(w, NULL, 0, 1, &empty, &err) || !(enc = encode(w, "lung", 4, &n, &err));
    /* "lung" is on lines 6 and 12: the later id encodes, the earlier one
     * decodes as [UNK] (HF's ids_to_tokens lacks it). */
    int ok = !rc && n == 1 && enc[0] == 11 && wordpiece_vocab_size(w) == 12 && empty[0] == 0 &&
             strcmp(s, "[CLS] lungs. don't [UNK] [UNK] [UNK] [UNK] [MASK] [SEP]") == 0 &&
             strcmp(skip, "lungs. don't [UNK] [UNK] [UNK]") == 0 &&
             wordpiece_decode(w, ids, -1, 0, &neg, &err) == -1 && !neg;
    if (!rc && !ok) printf("     got '%s' / '%s'\n", s, skip);
    free(enc);
    free(s);
    free(skip);
    free(empty);
    wordpiece_free(w);
    CHECK(!rc, "%s", err.msg);
    CHECK(ok, "decode of out-of-range ids, duplicates or clean-up differs from HF");
}

/* Python reads vocab.txt in text mode: \r\n and \r end lines too. */
static void t_wordpiece_line_endings(void) {
    const char *dir = scratch_dir("wp_crlf");
    WordPiece *a = small_vocab(dir, "[UNK]\r\nlung\r##s\nx");
    CHECK(a, "vocabulary with mixed line ends did not load");
    Error err;
    int n, *ids = encode(a, "Lungs x", 7, &n, &err);
    int ok = wordpiece_vocab_size(a) == 4 && ids && n == 3 && ids[0] == 1 && ids[1] == 2 && ids[2] == 3;
    free(ids);
    wordpiece_free(a);
    CHECK(ok, "lines cut at \\r\\n / \\r wrongly");
}

static void expect_load_error(const char *dir, const char *config, const char *vocab, size_t vocab_len,
                              const char *want, int *failed) {
    if (*failed) return;
    Error err = {{0}};
    WordPiece *w = NULL;
    if (config) write_str(dir, "tokenizer_config.json", config);
    if (vocab) write_in(dir, "vocab.txt", vocab, vocab_len);
    if (wordpiece_load(&w, dir, &err) == 0) {
        wordpiece_free(w);
        test_fail(__FILE__, __LINE__, "%s: loaded, expected an error containing '%s'", dir, want);
        *failed = 1;
    } else if (!strstr(err.msg, want) || !strstr(err.msg, dir)) {
        test_fail(__FILE__, __LINE__, "message '%s' lacks '%s' or the path", err.msg, want);
        *failed = 1;
    }
}

static void t_wordpiece_bad_files(void) {
    int failed = 0;
    char line[3000];
    memset(line, 'a', sizeof line - 1);
    line[sizeof line - 1] = 0;
    const char *good = "[UNK]\n[CLS]\n[SEP]\nlung\n";
    expect_load_error(scratch_dir("wp_none"), NULL, NULL, 0, "vocab.txt: cannot open", &failed);
    expect_load_error(scratch_dir("wp_empty"), NULL, "", 0, "no tokens", &failed);
    expect_load_error(scratch_dir("wp_nounk"), NULL, "[CLS]\n[SEP]\nlung\n", 17, "[UNK]", &failed);
    char *long_vocab = malloc(sizeof line + 16);
    CHECK(long_vocab, "out of memory");
    snprintf(long_vocab, sizeof line + 16, "[UNK]\n%s\n", line);
    expect_load_error(scratch_dir("wp_long"), NULL, long_vocab, strlen(long_vocab), "line 2 is 2999 bytes",
                      &failed);
    free(long_vocab);
    expect_load_error(scratch_dir("wp_utf8"), NULL, "[UNK]\nlu\xffng\n", 12, "line 2 is not valid UTF-8", &failed);
    expect_load_error(scratch_dir("wp_nul"), NULL, "[UNK]\nlu\0ng\n", 11, "line 2 holds a NUL", &failed);
    const char *dir = scratch_dir("wp_config");
    expect_load_error(dir, "{\"do_lower_case\": ", good, strlen(good), "not valid JSON", &failed);
    expect_load_error(dir, "{\"do_lower_case\": \"yes\"}", good, strlen(good), "do_lower_case", &failed);
    expect_load_error(dir, "{\"never_split\": \"[X]\"}", good, strlen(good), "never_split", &failed);
    expect_load_error(dir, "{\"never_split\": [1]}", good, strlen(good), "never_split", &failed);
    expect_load_error(dir, "{\"cls_token\": 5}", good, strlen(good), "cls_token", &failed);
    expect_load_error(dir, "{\"cls_token\": {\"lstrip\": true}}", good, strlen(good), "content", &failed);
    expect_load_error(dir, "{\"unk_token\": \"<unk>\"}", good, strlen(good), "<unk>", &failed);
    expect_load_error(dir, "{\"do_basic_tokenize\": false}", good, strlen(good), "not supported", &failed);
    expect_load_error(dir, "[1, 2]", good, strlen(good), "expected a JSON object", &failed);
    CHECK(!failed, "see above");
    /* AddedToken objects, a huge model_max_length and a missing [MASK]
     * are fine; encode with specials needs [CLS] and [SEP]. */
    Error err;
    WordPiece *w = NULL;
    CHECK(write_str(dir, "tokenizer_config.json",
                    "{\"cls_token\": {\"content\": \"[CLS]\", \"__type\": \"AddedToken\"}, "
                    "\"model_max_length\": 1000000000000000019884624838656}") == 0,
          "cannot write");
    CHECK(wordpiece_load(&w, dir, &err) == 0, "%s", err.msg);
    int ok = wordpiece_cls(w) == 1 && wordpiece_mask(w) == -1 && wordpiece_pad(w) == -1 &&
             wordpiece_max_length(w) == 2147483647;
    wordpiece_free(w);
    CHECK(ok, "AddedToken object or model_max_length not read");
    w = small_vocab(scratch_dir("wp_nocls"), "[UNK]\nlung\n");
    CHECK(w, "vocabulary without [CLS] did not load");
    int *ids = NULL, n;
    int rc = wordpiece_encode(w, "lung", 1, &ids, &n, &err);
    free(ids);
    wordpiece_free(w);
    CHECK(rc == -1 && strstr(err.msg, "[CLS]"), "encode with specials but no [CLS]: %s", err.msg);
}

/* Arbitrary bytes never crash, always give ids inside the vocabulary, and
 * decode (fixed seed; the sanitizer build checks memory). */
static void t_wordpiece_random_bytes(void) {
    NEED_FIXTURE(dir, "git-tiny");
    Error err;
    WordPiece *w;
    CHECK(wordpiece_load(&w, dir, &err) == 0, "%s", err.msg);
    static const char alphabet[] = "aZ [CLS]#\xc3\xa9\xe6\x9d\xb1\xf0\x9f\x9a\x91\x00\x80\xff.,'\t\n";
    uint32_t seed = 12345;
    char text[400];
    int bad = 0;
    for (int round = 0; round < 3000 && !bad; round++) {
        size_t len = 0, want = (seed >> 8) % sizeof text;
        while (len < want) {
            seed = seed * 1103515245u + 12345u;
            int r = (int)(seed >> 16);
            text[len++] = (char)(r & 1 ? alphabet[(r >> 1) % (sizeof alphabet - 1)] : (r >> 1) & 0xFF);
        }
        int *ids = NULL, n = 0;
        char *s = NULL;
        if (wordpiece_encode_bytes(w, text, len, round & 1, &ids, &n, &err) ||
            wordpiece_decode(w, ids, n, round & 2, &s, &err))
            bad = 1;
        for (int i = 0; i < n && !bad; i++)
            if (ids[i] < 0 || ids[i] >= wordpiece_vocab_size(w)) bad = 2;
        free(ids);
        free(s);
    }
    wordpiece_free(w);
    CHECK(!bad, "random bytes: %s", bad == 1 ? err.msg : "id out of range");
}

void suite_wordpiece(void) {
    RUN(t_wordpiece_git_tiny_fixture);
    RUN(t_wordpiece_git_tiny_config);
    RUN(t_wordpiece_hf_refs);
    RUN(t_wordpiece_invalid_utf8);
    RUN(t_wordpiece_decode_rules);
    RUN(t_wordpiece_line_endings);
    RUN(t_wordpiece_bad_files);
    RUN(t_wordpiece_random_bytes);
}
