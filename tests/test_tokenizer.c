/* Tokenizer tests: the LLaMA fixture references (HF slow LlamaTokenizer,
 * legacy=True) from tokenizer.model and from an equivalent tokenizer.json
 * built here, save/load round trips, the synthetic vocabulary, the Unigram
 * fixture, and bad files that must fail with a message naming the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "text/spm.h"
#include "test.h"

void suite_tokenizer(void);

/* ------------------------------------------------------------ helpers */

static cJSON *load_json(const char *path) {
    char *text;
    size_t n;
    Error err;
    if (file_read_all(path, 16 << 20, &text, &n, &err)) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    return root;
}

/* ids (n) == the JSON array of numbers a */
static int ids_equal(const int *ids, int n, const cJSON *a) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return 0;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e) || (int)e->valuedouble != ids[i]) return 0;
        i++;
    }
    return 1;
}

static const char *jstr(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ids of a JSON array into a malloc'd int array */
static int *json_ids(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    int *ids = malloc(((size_t)*n + 1) * sizeof *ids);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) ids[i++] = (int)e->valuedouble;
    return ids;
}

static void print_ids(char *dst, size_t cap, const int *ids, int n) {
    size_t o = 0;
    dst[0] = 0;
    for (int i = 0; i < n && o + 16 < cap; i++) o += (size_t)snprintf(dst + o, cap - o, "%s%d", i ? "," : "", ids[i]);
}

/* Every case of a LLaMA tokenization.json against tokenizer t. what names
 * the tokenizer in failure messages. Checks ids, pieces and the three
 * decodes unless ids_only. Returns 0 when all agree. */
static int check_llama_cases(const Tokenizer *t, const cJSON *cases, const char *what, int ids_only) {
    const cJSON *c;
    int k = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *text = jstr(c, "text");
        int *ids = NULL, n = 0;
        Error err;
        char got[2048];
        if (!text) {
            test_fail(__FILE__, __LINE__, "%s: case %d has no text", what, k);
            return -1;
        }
        for (int bos = 0; bos <= 1; bos++) {
            if (tokenizer_encode(t, text, bos, &ids, &n, &err)) {
                test_fail(__FILE__, __LINE__, "%s: case %d: %s", what, k, err.msg);
                return -1;
            }
            const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, bos ? "ids_with_bos" : "ids_no_bos");
            if (!ids_equal(ids, n, want)) {
                print_ids(got, sizeof got, ids, n);
                test_fail(__FILE__, __LINE__, "%s: case %d '%s' (bos %d): ids [%s] differ from HF", what, k, text, bos,
                          got);
                free(ids);
                return -1;
            }
            free(ids);
        }
        if (ids_only) {
            k++;
            continue;
        }
        int n_no, n_with;
        int *no = json_ids(cJSON_GetObjectItemCaseSensitive(c, "ids_no_bos"), &n_no);
        int *with = json_ids(cJSON_GetObjectItemCaseSensitive(c, "ids_with_bos"), &n_with);
        const cJSON *pieces = cJSON_GetObjectItemCaseSensitive(c, "pieces");
        int i = 0, bad = cJSON_GetArraySize(pieces) != n_no;
        const cJSON *p;
        cJSON_ArrayForEach(p, pieces) {
            if (!bad && (!cJSON_IsString(p) || strcmp(p->valuestring, tokenizer_piece(t, no[i])) != 0)) bad = 1;
            i++;
        }
        struct {
            const int *ids;
            int n, skip;
            const char *key;
        } dec[3] = {{no, n_no, 0, "decode_no_bos"}, {with, n_with, 0, "decode_with_bos"},
                    {with, n_with, 1, "decode_with_bos_skip_special"}};
        char *text_out = NULL;
        for (int d = 0; d < 3 && !bad; d++) {
            const char *want = jstr(c, dec[d].key);
            if (tokenizer_decode(t, dec[d].ids, dec[d].n, dec[d].skip, &text_out, &err)) {
                test_fail(__FILE__, __LINE__, "%s: case %d %s: %s", what, k, dec[d].key, err.msg);
                bad = 2;
                break;
            }
            if (!want || strcmp(text_out, want) != 0) {
                test_fail(__FILE__, __LINE__, "%s: case %d %s: got '%s', HF gives '%s'", what, k, dec[d].key,
                          text_out, want ? want : "(missing)");
                bad = 2;
            }
            free(text_out);
        }
        free(no);
        free(with);
        if (bad == 1) test_fail(__FILE__, __LINE__, "%s: case %d '%s': pieces differ from HF", what, k, text);
        if (bad) return -1;
        k++;
    }
    return 0;
}

/* ---------------------------------------------------- fixture references */

static void check_fixture_folder(const char *folder, int min_cases) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/ref/tokenization.json", folder);
    NEED_FIXTURE(ref, rel);
    snprintf(rel, sizeof rel, "%s/tokenizer.model", folder);
    NEED_FIXTURE(model, rel);
    cJSON *root = load_json(ref);
    CHECK(root, "%s: cannot parse", ref);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    Tokenizer *t;
    Error err;
    int rc = tokenizer_load_spm(&t, model, &err);
    if (rc) cJSON_Delete(root);
    CHECK(rc == 0, "%s", err.msg);
    int ok = tokenizer_vocab_size(t) == 32000 && tokenizer_bos(t) == 1 && tokenizer_eos(t) == 2 &&
             tokenizer_unk(t) == 0 && tokenizer_pad(t) == -1 && tokenizer_model_type(t) == SPM_BPE;
    int cmp = ok && cJSON_GetArraySize(cases) >= min_cases ? check_llama_cases(t, cases, model, 0) : -1;
    tokenizer_free(t);
    cJSON_Delete(root);
    CHECK(ok, "vocab %d bos/eos/unk/pad or model type differ from LLaMA's", 32000);
    CHECK(cmp == 0, "fixture cases differ (see above) or fewer than %d", min_cases);
}

static void t_tokenizer_llama_tiny_matches_hf(void) { check_fixture_folder("llama-tiny", 13); }
static void t_tokenizer_llama_tiny_gqa_matches_hf(void) { check_fixture_folder("llama-tiny-gqa", 4); }

static void t_tokenizer_load_folder(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    Tokenizer *t;
    Error err;
    CHECK(tokenizer_load(&t, dir, &err) == 0, "%s", err.msg);
    int n = tokenizer_vocab_size(t);
    tokenizer_free(t);
    CHECK(n == 32000, "vocab %d", n);
    char empty[600];
    snprintf(empty, sizeof empty, "%s/no-tokenizer", test_tmpdir());
    mkdir(empty, 0755);
    CHECK(tokenizer_load(&t, empty, &err) != 0, "an empty folder loaded");
    CHECK(strstr(err.msg, "no-tokenizer") && strstr(err.msg, "no tokenizer.model or tokenizer.json"), "message: %s",
          err.msg);
}

/* decode(encode(s)) == s, for the fixture strings where HF's own decode
 * gives s back (not: leading spaces, special tokens inside the text) and
 * for strings of our own; invalid UTF-8 comes back with U+FFFD for each
 * bad byte, as sentencepiece normalises it on the way in. (A literal "▁"
 * in the text comes back as a space, as in HF.) */
static void t_tokenizer_round_trip(void) {
    NEED_FIXTURE(ref, "llama-tiny/ref/tokenization.json");
    NEED_FIXTURE(model, "llama-tiny/tokenizer.model");
    Tokenizer *t;
    Error err;
    CHECK(tokenizer_load_spm(&t, model, &err) == 0, "%s", err.msg);
    cJSON *root = load_json(ref);
    const cJSON *c;
    int n_fixture = 0;
    static const char *const own[] = {
        "Hello world",
        "multi\nline\n\ttabs\r\nand CRLF",
        "x  y   z",
        "trailing spaces   ",
        "a<0x0A>b literal byte-piece text",
        "\xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\xa9\xbb \xf0\x9f\x98\x80 \xc3\x9c\x62\x65r",
        "<unk-ish> <s0> </s_not> <",
        "\x01\x02\x7f control bytes",
        "Pneumothorax:\t12.5 mm (left) \xe2\x80\x93 \xc2\xbd",
    };
    size_t n_own = sizeof own / sizeof own[0];
    const char *bad = NULL;
    char *out = NULL;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        const char *text = jstr(c, "text");
        const char *hf = jstr(c, "decode_no_bos");
        if (!text || !hf || strcmp(text, hf) != 0) continue; /* HF itself does not give it back */
        n_fixture++;
        int *ids, n;
        if (tokenizer_encode(t, text, 1, &ids, &n, &err) || tokenizer_decode(t, ids, n, 1, &out, &err)) bad = text;
        else if (strcmp(out, text) != 0) bad = text;
        free(ids);
        if (bad) break;
        free(out);
        out = NULL;
    }
    for (size_t i = 0; i < n_own && !bad; i++) {
        int *ids, n;
        if (tokenizer_encode(t, own[i], 0, &ids, &n, &err) || tokenizer_decode(t, ids, n, 0, &out, &err))
            bad = own[i];
        else if (strcmp(out, own[i]) != 0) bad = own[i];
        free(ids);
        if (bad) break;
        free(out);
        out = NULL;
    }
    /* invalid UTF-8: each bad byte becomes U+FFFD */
    int *ids = NULL, n = 0;
    char *fixed = NULL;
    int rc = bad ? 0 : tokenizer_encode(t, "a\xff" "b\xe2\x96", 0, &ids, &n, &err);
    if (!bad && rc == 0) rc = tokenizer_decode(t, ids, n, 0, &fixed, &err);
    free(ids);
    cJSON_Delete(root);
    tokenizer_free(t);
    CHECK(!bad, "round trip of '%s' gave '%s' (%s)", bad, out ? out : "(error)", err.msg);
    free(out);
    CHECK(n_fixture >= 9, "only %d fixture strings decode to themselves in HF", n_fixture);
    CHECK(rc == 0, "%s", err.msg);
    int same = strcmp(fixed, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd") == 0;
    free(fixed);
    CHECK(same, "invalid UTF-8 does not come back with U+FFFD per bad byte");
}

/* Streaming the pieces one at a time gives HF's decode(skip_special) of the
 * whole sequence, except that HF strips a leading space twice. */
static void t_tokenizer_piece_text_streams_like_decode(void) {
    NEED_FIXTURE(ref, "llama-tiny/ref/tokenization.json");
    NEED_FIXTURE(model, "llama-tiny/tokenizer.model");
    Tokenizer *t;
    Error err;
    CHECK(tokenizer_load_spm(&t, model, &err) == 0, "%s", err.msg);
    cJSON *root = load_json(ref);
    const cJSON *c;
    char bad[256] = "";
    char stream[4096], buf[64];
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        const char *text = jstr(c, "text");
        /* HF strips twice at the start; BOS inside the text is not a start */
        if (!text || text[0] == ' ' || strstr(text, "<s>")) continue;
        int n;
        int *ids = json_ids(cJSON_GetObjectItemCaseSensitive(c, "ids_with_bos"), &n);
        size_t o = 0;
        stream[0] = 0;
        for (int i = 0; i < n; i++) {
            const char *p = tokenizer_piece_text(t, i ? ids[i - 1] : -1, ids[i], buf, sizeof buf);
            size_t l = strlen(p);
            if (o + l < sizeof stream) memcpy(stream + o, p, l + 1), o += l;
        }
        free(ids);
        if (strcmp(stream, jstr(c, "decode_with_bos_skip_special")) != 0) {
            snprintf(bad, sizeof bad, "%s", text);
            break;
        }
    }
    /* a piece that does not fit is cut at a character boundary */
    int id = tokenizer_piece_id(t, "\xe2\x96\x81" "Hello", 8);
    char small[4];
    const char *cut = tokenizer_piece_text(t, 5, id, small, sizeof small);
    int cut_ok = id > 0 && strcmp(cut, " He") == 0;
    const char *after_bos = tokenizer_piece_text(t, 1, id, buf, sizeof buf);
    int bos_ok = strcmp(after_bos, "Hello") == 0;
    const char *byte = tokenizer_piece_text(t, 5, 13, buf, sizeof buf);
    int byte_ok = strcmp(byte, "\n") == 0;
    const char *eos = tokenizer_piece_text(t, 5, 2, buf, sizeof buf);
    int eos_ok = eos[0] == 0;
    const char *out_of_range = tokenizer_piece_text(t, 5, 99999, buf, sizeof buf);
    int range_ok = out_of_range[0] == 0;
    cJSON_Delete(root);
    tokenizer_free(t);
    CHECK(!bad[0], "streaming '%s' gave '%s'", bad, stream);
    CHECK(cut_ok && bos_ok && byte_ok && eos_ok && range_ok, "piece_text: cut '%s' bos %d byte %d eos %d range %d",
          cut, bos_ok, byte_ok, eos_ok, range_ok);
}

/* ------------------------------------------------------- tokenizer.json */

typedef struct {
    int left, right, result;
    float score;
} Merge;

static int merge_order(const void *pa, const void *pb) {
    const Merge *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->result != b->result) return a->result < b->result ? -1 : 1;
    if (a->left != b->left) return a->left < b->left ? -1 : 1;
    return a->right < b->right ? -1 : a->right > b->right;
}

static int utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

/* The tokenizer.json transformers' LlamaConverter writes for a LLaMA
 * tokenizer.model: vocab in id order, merges = every split of a piece into
 * two pieces, ordered by the score of the merged piece (best first). */
static char *llama_json_from_spm(const Tokenizer *t) {
    int n = tokenizer_vocab_size(t);
    size_t cap = 1024, n_merges = 0;
    Merge *m = malloc(cap * sizeof *m);
    for (int id = 0; id < n; id++) {
        if (tokenizer_piece_type(t, id) != PIECE_NORMAL) continue;
        const char *p = tokenizer_piece(t, id);
        size_t len = strlen(p);
        for (size_t k = (size_t)utf8_len((unsigned char)p[0]); k < len; k += (size_t)utf8_len((unsigned char)p[k])) {
            int l = tokenizer_piece_id(t, p, k), r = tokenizer_piece_id(t, p + k, len - k);
            if (l < 0 || r < 0) continue;
            if (n_merges == cap) m = realloc(m, (cap *= 2) * sizeof *m);
            m[n_merges++] = (Merge){l, r, id, tokenizer_piece_score(t, id)};
        }
    }
    qsort(m, n_merges, sizeof *m, merge_order);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int id = 0; id < 3; id++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", id);
        cJSON_AddStringToObject(a, "content", tokenizer_piece(t, id));
        cJSON_AddBoolToObject(a, "single_word", 0);
        cJSON_AddBoolToObject(a, "lstrip", 0);
        cJSON_AddBoolToObject(a, "rstrip", 0);
        cJSON_AddBoolToObject(a, "normalized", 0);
        cJSON_AddBoolToObject(a, "special", 1);
        cJSON_AddItemToArray(added, a);
    }
    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(norm, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(norm, "normalizers");
    cJSON *prepend = cJSON_CreateObject();
    cJSON_AddStringToObject(prepend, "type", "Prepend");
    cJSON_AddStringToObject(prepend, "prepend", "\xe2\x96\x81");
    cJSON_AddItemToArray(list, prepend);
    cJSON *replace = cJSON_CreateObject();
    cJSON_AddStringToObject(replace, "type", "Replace");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(replace, "pattern"), "String", " ");
    cJSON_AddStringToObject(replace, "content", "\xe2\x96\x81");
    cJSON_AddItemToArray(list, replace);
    cJSON_AddNullToObject(root, "pre_tokenizer");
    cJSON_AddNullToObject(root, "post_processor");
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "Sequence");
    cJSON_AddArrayToObject(dec, "decoders"); /* not read by vmed */
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddStringToObject(model, "unk_token", "<unk>");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 1);
    cJSON_AddBoolToObject(model, "byte_fallback", 1);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int id = 0; id < n; id++) cJSON_AddNumberToObject(vocab, tokenizer_piece(t, id), id);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    char line[256];
    for (size_t i = 0; i < n_merges; i++) {
        snprintf(line, sizeof line, "%s %s", tokenizer_piece(t, m[i].left), tokenizer_piece(t, m[i].right));
        cJSON_AddItemToArray(merges, cJSON_CreateString(line));
    }
    free(m);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static void t_tokenizer_hf_json_matches_spm(void) {
    NEED_FIXTURE(ref, "llama-tiny/ref/tokenization.json");
    NEED_FIXTURE(model, "llama-tiny/tokenizer.model");
    Tokenizer *spm, *js;
    Error err;
    CHECK(tokenizer_load_spm(&spm, model, &err) == 0, "%s", err.msg);
    char *text = llama_json_from_spm(spm);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/llama-json", test_tmpdir());
    mkdir(dir, 0755);
    const char *path = test_write_file("llama-json/tokenizer.json", text, strlen(text));
    free(text);
    int rc = tokenizer_load_hf_json(&js, path, &err);
    if (rc) tokenizer_free(spm);
    CHECK(rc == 0, "%s", err.msg);
    cJSON *root = load_json(ref);
    int same_meta = tokenizer_vocab_size(js) == 32000 && tokenizer_bos(js) == 1 && tokenizer_eos(js) == 2 &&
                    tokenizer_unk(js) == 0;
    int cmp = check_llama_cases(js, cJSON_GetObjectItemCaseSensitive(root, "cases"), path, 0);
    /* tokenizer_load finds the json when there is no tokenizer.model */
    Tokenizer *via_dir = NULL;
    int dir_rc = tokenizer_load(&via_dir, dir, &err);
    int dir_ok = dir_rc == 0 && tokenizer_vocab_size(via_dir) == 32000;
    tokenizer_free(via_dir);
    /* a longer text: the same ids either way */
    static const char long_text[] =
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nSummarise: bilateral hilar lymphadenopathy, interstitial opacities, and a "
        "small left pleural effusion; no pneumothorax. 3.5 x 2.1 cm mass \xe2\x80\x94 \xc3\xa9tude, "
        "\xe6\x9d\xb1\xe4\xba\xac.\n\n### Response:\n";
    int *a = NULL, *b = NULL, na = 0, nb = 0;
    int enc = tokenizer_encode(spm, long_text, 1, &a, &na, &err) == 0 &&
              tokenizer_encode(js, long_text, 1, &b, &nb, &err) == 0;
    int same_long = enc && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
    free(a);
    free(b);
    cJSON_Delete(root);
    tokenizer_free(spm);
    tokenizer_free(js);
    CHECK(same_meta, "tokenizer.json: vocab/bos/eos/unk differ");
    CHECK(cmp == 0, "tokenizer.json differs from HF (see above)");
    CHECK(dir_ok, "tokenizer_load did not fall back to tokenizer.json: %s", dir_rc ? err.msg : "wrong vocab");
    CHECK(same_long, "tokenizer.json and tokenizer.model encode the long text differently");
}

/* HF BPE applies only listed merges, by rank: "▁ab" stays "▁a" + "b" when
 * the merge ("▁a", "b") is not listed, though "▁ab" is a piece. */
static void t_tokenizer_hf_json_merge_ranks(void) {
    static const char json[] =
        "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true},"
        " {\"id\": 1, \"content\": \"<s>\", \"special\": true}, {\"id\": 2, \"content\": \"</s>\", \"special\": true},"
        " {\"id\": 9, \"content\": \"[PAD]\", \"special\": true}],"
        " \"normalizer\": null,"
        " \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\xe2\x96\x81\", \"prepend_scheme\": "
        "\"always\", \"split\": false},"
        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true, \"byte_fallback\": false,"
        " \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"\xe2\x96\x81\": 3, \"a\": 4, \"b\": 5,"
        " \"\xe2\x96\x81" "a\": 6, \"ab\": 7, \"\xe2\x96\x81" "ab\": 8},"
        " \"merges\": [[\"\xe2\x96\x81\", \"a\"], [\"a\", \"b\"], [\"\xe2\x96\x81\", \"ab\"]]}}";
    const char *path = test_write_file("ranks.tokenizer.json", json, strlen(json));
    Tokenizer *t;
    Error err;
    CHECK(tokenizer_load_hf_json(&t, path, &err) == 0, "%s", err.msg);
    int *ids, n;
    int rc = tokenizer_encode(t, "ab ab[PAD]zzb", 1, &ids, &n, &err);
    char got[256] = "";
    if (rc == 0) print_ids(got, sizeof got, ids, n);
    char *back = NULL, *raw = NULL;
    int drc = rc == 0 ? tokenizer_decode(t, ids, n, 1, &back, &err) : -1;
    if (drc == 0) drc = tokenizer_decode(t, ids, n, 0, &raw, &err);
    free(ids);
    int vocab = tokenizer_vocab_size(t);
    /* Metaspace adds no second "▁" before a leading space */
    int *lead = NULL, n_lead = 0;
    int lrc = tokenizer_encode(t, " ab", 0, &lead, &n_lead, &err);
    int lead_ok = lrc == 0 && n_lead == 2 && lead[0] == 6 && lead[1] == 5;
    free(lead);
    tokenizer_free(t);
    CHECK(rc == 0, "%s", err.msg);
    /* <s> ▁a b ▁a b [PAD] ▁ <unk>(zz fused) b */
    CHECK(strcmp(got, "1,6,5,6,5,9,3,0,5") == 0, "ids [%s]", got);
    CHECK(lead_ok, "' ab' with a Metaspace pre-tokenizer: %d ids", n_lead);
    CHECK(vocab == 10, "the added [PAD] makes 10 pieces, not %d", vocab);
    CHECK(drc == 0, "%s", err.msg);
    /* skip_special drops <unk> too; the raw decode has HF's legacy spaces */
    int same = strcmp(back, "ab ab b") == 0 && strcmp(raw, "<s> ab ab[PAD] <unk>b") == 0;
    char both[600];
    snprintf(both, sizeof both, "'%s' / '%s'", back, raw);
    free(back);
    free(raw);
    CHECK(same, "decode gave %s", both);
}

static int json_load_fails(const char *name, const char *json, const char *w1, const char *w2, char *msg,
                           size_t cap) {
    const char *path = test_write_file(name, json, strlen(json));
    Tokenizer *t = NULL;
    Error err;
    int rc = tokenizer_load_hf_json(&t, path, &err);
    tokenizer_free(t);
    snprintf(msg, cap, "%s", rc ? err.msg : "(loaded)");
    return rc != 0 && strstr(err.msg, name) && strstr(err.msg, w1) && (!w2 || strstr(err.msg, w2));
}

static void t_tokenizer_hf_json_bad(void) {
    char msg[1100];
    CHECK(json_load_fails("uni.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}", "Unigram",
                          "only BPE", msg, sizeof msg),
          "%s", msg);
    CHECK(json_load_fails("novocab.json", "{\"model\": {\"type\": \"BPE\", \"merges\": []}}", "model.vocab is missing",
                          NULL, msg, sizeof msg),
          "%s", msg);
    CHECK(json_load_fails("nomodel.json", "{\"version\": \"1.0\"}", "no \"model\" object", NULL, msg, sizeof msg),
          "%s", msg);
    CHECK(json_load_fails("badmerge.json",
                          "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
                          "merges[0]", "'ab' is not in model.vocab", msg, sizeof msg),
          "%s", msg);
    CHECK(json_load_fails("badid.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 7}, \"merges\": []}}",
                          "model.vocab['b']", "not an id", msg, sizeof msg),
          "%s", msg);
    CHECK(json_load_fails("badnorm.json",
                          "{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0},"
                          " \"merges\": []}}",
                          "normalizer type 'NFKC'", NULL, msg, sizeof msg),
          "%s", msg);
    CHECK(json_load_fails("notjson.json", "{\"model\": ", "notjson.json", NULL, msg, sizeof msg), "%s", msg);
}

/* ------------------------------------------------- save / load, synthetic */

static int same_tables(const Tokenizer *a, const Tokenizer *b) {
    if (tokenizer_vocab_size(a) != tokenizer_vocab_size(b)) return 0;
    for (int id = 0; id < tokenizer_vocab_size(a); id++)
        if (strcmp(tokenizer_piece(a, id), tokenizer_piece(b, id)) != 0 ||
            tokenizer_piece_score(a, id) != tokenizer_piece_score(b, id) ||
            tokenizer_piece_type(a, id) != tokenizer_piece_type(b, id))
            return 0;
    return tokenizer_bos(a) == tokenizer_bos(b) && tokenizer_eos(a) == tokenizer_eos(b) &&
           tokenizer_unk(a) == tokenizer_unk(b) && tokenizer_pad(a) == tokenizer_pad(b) &&
           tokenizer_model_type(a) == tokenizer_model_type(b);
}

static void t_tokenizer_save_load_round_trip(void) {
    NEED_FIXTURE(ref, "llama-tiny/ref/tokenization.json");
    NEED_FIXTURE(model, "llama-tiny/tokenizer.model");
    Tokenizer *a, *b;
    Error err;
    CHECK(tokenizer_load_spm(&a, model, &err) == 0, "%s", err.msg);
    char path[600];
    snprintf(path, sizeof path, "%s/saved.model", test_tmpdir());
    int rc = tokenizer_save_spm(a, path, &err);
    if (rc == 0) rc = tokenizer_load_spm(&b, path, &err);
    if (rc) tokenizer_free(a);
    CHECK(rc == 0, "%s", err.msg);
    cJSON *root = load_json(ref);
    int same = same_tables(a, b);
    int cmp = check_llama_cases(b, cJSON_GetObjectItemCaseSensitive(root, "cases"), path, 0);
    /* saving again gives the same bytes */
    uint8_t *s1, *s2;
    size_t n1, n2;
    int ser = tokenizer_serialize_spm(a, &s1, &n1, &err) == 0 && tokenizer_serialize_spm(b, &s2, &n2, &err) == 0;
    int stable = ser && n1 == n2 && memcmp(s1, s2, n1) == 0;
    if (ser) free(s1), free(s2);
    cJSON_Delete(root);
    tokenizer_free(a);
    tokenizer_free(b);
    CHECK(same, "pieces, scores or types changed through save/load");
    CHECK(cmp == 0, "the saved model encodes differently (see above)");
    CHECK(stable, "serialising the reloaded model gives other bytes");
}

static void t_tokenizer_synthetic(void) {
    static const char text[] = "Hello world\n\t\xc3\x9c" "ber \xf0\x9f\xa9\xbb cardiomegaly";
    Tokenizer *t, *t2, *big;
    Error err;
    CHECK(tokenizer_build_synthetic(&t, 100, &err) != 0, "vocab 100 accepted");
    CHECK(strstr(err.msg, "vocab_size 100") && strstr(err.msg, "512"), "message: %s", err.msg);
    CHECK(tokenizer_build_synthetic(&t, 512, &err) == 0, "%s", err.msg);
    CHECK(tokenizer_build_synthetic(&t2, 512, &err) == 0, "%s", err.msg);
    int *ids = NULL, n = 0;
    char *back = NULL;
    int rc = tokenizer_encode(t, text, 1, &ids, &n, &err);
    if (rc == 0) rc = tokenizer_decode(t, ids, n, 1, &back, &err);
    uint8_t *s1 = NULL, *s2 = NULL;
    size_t n1 = 0, n2 = 0;
    int ser = tokenizer_serialize_spm(t, &s1, &n1, &err) == 0 && tokenizer_serialize_spm(t2, &s2, &n2, &err) == 0;
    int det = ser && n1 == n2 && memcmp(s1, s2, n1) == 0;
    int meta = tokenizer_vocab_size(t) == 512 && tokenizer_unk(t) == 0 && tokenizer_bos(t) == 1 &&
               tokenizer_eos(t) == 2 && tokenizer_piece_id(t, "<0x00>", 6) == 3 &&
               tokenizer_piece_id(t, "<0xFF>", 6) == 258 && tokenizer_piece_id(t, "\xe2\x96\x81", 3) == 259;
    /* through a file and back: same tables, same ids */
    Tokenizer *loaded = NULL;
    int *ids2 = NULL, n_ids2 = 0;
    char path[600];
    snprintf(path, sizeof path, "%s/synthetic.model", test_tmpdir());
    int frc = tokenizer_save_spm(t, path, &err);
    if (frc == 0) frc = tokenizer_load_spm(&loaded, path, &err);
    if (frc == 0) frc = tokenizer_encode(loaded, text, 1, &ids2, &n_ids2, &err);
    int file_same = frc == 0 && same_tables(t, loaded) && n_ids2 == n && memcmp(ids, ids2, (size_t)n * sizeof *ids) == 0;
    free(s1);
    free(s2);
    free(ids2);
    tokenizer_free(loaded);
    tokenizer_free(t);
    tokenizer_free(t2);
    free(ids);
    CHECK(rc == 0, "%s", err.msg);
    int round = strcmp(back, text) == 0;
    CHECK(round, "synthetic round trip gave '%s'", back);
    free(back);
    CHECK(det, "two builds serialise differently");
    CHECK(meta, "synthetic layout: specials, bytes at 3..258, then \"\xe2\x96\x81\"");
    CHECK(file_same, "synthetic model through a file: %s", frc ? err.msg : "differs");
    /* a vocabulary large enough for the whole word list makes each word one piece */
    CHECK(tokenizer_build_synthetic(&big, 32000, &err) == 0, "%s", err.msg);
    rc = tokenizer_encode(big, "cardiomegaly pneumothorax Hello", 0, &ids, &n, &err);
    int words = rc == 0 && n == 3 && strcmp(tokenizer_piece(big, ids[0]), "\xe2\x96\x81" "cardiomegaly") == 0;
    int padded = tokenizer_piece_type(big, 31999) == PIECE_UNUSED && tokenizer_vocab_size(big) == 32000;
    free(ids);
    tokenizer_free(big);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(words, "listed words are not single pieces (%d ids)", n);
    CHECK(padded, "a large synthetic vocabulary is not padded with unused pieces");
}

/* --------------------------------------------------------- Unigram (T5) */

static void t_tokenizer_unigram_pix2struct(void) {
    NEED_FIXTURE(ref, "pix2struct-tiny/ref/tokenization.json");
    NEED_FIXTURE(model, "pix2struct-tiny/spiece.model");
    Tokenizer *t;
    Error err;
    CHECK(tokenizer_load_spm(&t, model, &err) == 0, "%s", err.msg);
    cJSON *root = load_json(ref);
    const cJSON *c;
    int checked = 0;
    const char *bad = NULL;
    char got[2048] = "";
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        const char *text = jstr(c, "text");
        if (!text || strstr(text, "<extra_id_")) continue; /* extra ids are HF added tokens, not in spiece.model */
        int *ids, n;
        if (tokenizer_encode(t, text, 0, &ids, &n, &err)) {
            bad = text;
            snprintf(got, sizeof got, "%s", err.msg);
            break;
        }
        int ok = ids_equal(ids, n, cJSON_GetObjectItemCaseSensitive(c, "ids_no_special"));
        if (!ok) print_ids(got, sizeof got, ids, n);
        free(ids);
        if (!ok) {
            bad = text;
            break;
        }
        checked++;
    }
    int meta = tokenizer_model_type(t) == SPM_UNIGRAM && tokenizer_vocab_size(t) == 2000 && tokenizer_pad(t) == 0 &&
               tokenizer_eos(t) == 1 && tokenizer_unk(t) == 2 && tokenizer_bos(t) == -1;
    cJSON_Delete(root);
    tokenizer_free(t);
    CHECK(meta, "spiece.model: type, size or special ids differ from T5's");
    CHECK(!bad, "Unigram '%s': [%s] differs from HF", bad, got);
    CHECK(checked >= 9, "only %d cases checked", checked);
}

/* ------------------------------------------------------------ bad input */

/* A hand-written ModelProto: (piece, score, type) entries, then a
 * trainer_spec with model_type BPE and the given whitespace options. */
typedef struct {
    const char *piece;
    float score;
    int type;
} PieceSpec;

static size_t pb_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    do {
        p[n] = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) p[n] |= 0x80;
        n++;
    } while (v);
    return n;
}

static size_t pb_bytes(uint8_t *p, int field, const void *data, size_t len) {
    size_t n = pb_varint(p, (uint64_t)field << 3 | 2);
    n += pb_varint(p + n, len);
    memcpy(p + n, data, len);
    return n + len;
}

static size_t make_model(uint8_t *out, const PieceSpec *ps, int n_pieces, int ws_suffix, int remove_extra) {
    size_t o = 0;
    for (int i = 0; i < n_pieces; i++) {
        uint8_t sub[256];
        size_t k = pb_bytes(sub, 1, ps[i].piece, strlen(ps[i].piece));
        sub[k++] = 0x15;
        memcpy(sub + k, &ps[i].score, 4); /* little-endian host assumed, as everywhere in vmed */
        k += 4;
        sub[k++] = 0x18;
        sub[k++] = (uint8_t)ps[i].type;
        o += pb_bytes(out + o, 1, sub, k);
    }
    uint8_t trainer[16] = {0x18, 0x02}, normalizer[32];
    size_t tk = 2, nk = pb_bytes(normalizer, 1, "identity", 8);
    if (ws_suffix) trainer[tk++] = 0xC0, trainer[tk++] = 0x01, trainer[tk++] = 0x01; /* field 24 */
    normalizer[nk++] = 0x20; /* field 4: remove_extra_whitespaces */
    normalizer[nk++] = (uint8_t)remove_extra;
    o += pb_bytes(out + o, 2, trainer, tk);
    o += pb_bytes(out + o, 3, normalizer, nk);
    return o;
}

static int pieces_are(const Tokenizer *t, const char *text, const char *want, char *got, size_t cap) {
    int *ids, n;
    Error err;
    got[0] = 0;
    if (tokenizer_encode(t, text, 0, &ids, &n, &err)) {
        snprintf(got, cap, "%s", err.msg);
        return 0;
    }
    size_t o = 0;
    for (int i = 0; i < n && o + 64 < cap; i++) o += (size_t)snprintf(got + o, cap - o, "%s|", tokenizer_piece(t, ids[i]));
    free(ids);
    return strcmp(got, want) == 0;
}


static int spm_load_fails(const char *name, const void *data, size_t n, const char *w1, const char *w2, char *msg,
                          size_t cap) {
    const char *path = test_write_file(name, data, n);
    Tokenizer *t = NULL;
    Error err;
    int rc = tokenizer_load_spm(&t, path, &err);
    tokenizer_free(t);
    snprintf(msg, cap, "%s", rc ? err.msg : "(loaded)");
    return rc != 0 && strstr(err.msg, name) && (!w1 || strstr(err.msg, w1)) && (!w2 || strstr(err.msg, w2));
}

static void t_tokenizer_bad_models(void) {
    char msg[1100];
    CHECK(spm_load_fails("hello.model", "hello world\n", 12, "not a SentencePiece model protobuf", "wire type", msg,
                         sizeof msg),
          "%s", msg);
    uint8_t rnd[4096];
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < sizeof rnd; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        rnd[i] = (uint8_t)(s >> 56);
    }
    CHECK(spm_load_fails("random.model", rnd, sizeof rnd, NULL, NULL, msg, sizeof msg), "%s", msg);
    /* a piece whose string length runs past the end of its entry */
    static const uint8_t past[] = {0x0A, 0x04, 0x0A, 0x10, 'a', 'b'};
    CHECK(spm_load_fails("past.model", past, sizeof past, "in piece 0", "runs past the end", msg, sizeof msg), "%s",
          msg);
    /* only a trainer_spec (model_type BPE): no pieces */
    static const uint8_t empty[] = {0x12, 0x02, 0x18, 0x02};
    CHECK(spm_load_fails("empty.model", empty, sizeof empty, "no pieces", "empty vocabulary", msg, sizeof msg), "%s",
          msg);
    CHECK(spm_load_fails("zero.model", "", 0, "no pieces", NULL, msg, sizeof msg), "%s", msg);
    /* field 1 as a fixed32 */
    static const uint8_t wire5[] = {0x0D, 1, 2, 3, 4};
    CHECK(spm_load_fails("wire5.model", wire5, sizeof wire5, "not a SentencePiece model protobuf",
                         "field 1 (pieces) has wire type 5", msg, sizeof msg),
          "%s", msg);
    /* one NORMAL piece "a", no <unk> */
    static const uint8_t no_unk[] = {0x0A, 0x03, 0x0A, 0x01, 'a'};
    CHECK(spm_load_fails("nounk.model", no_unk, sizeof no_unk, "no piece has type UNKNOWN", NULL, msg, sizeof msg),
          "%s", msg);
    /* <unk> and "a" twice */
    static const uint8_t dup[] = {0x0A, 0x09, 0x0A, 0x05, '<', 'u', 'n', 'k', '>', 0x18, 0x02, 0x0A, 0x03, 0x0A, 0x01,
                                  'a', 0x0A, 0x03, 0x0A, 0x01, 'a'};
    CHECK(spm_load_fails("dup.model", dup, sizeof dup, "piece 'a' is defined twice", "ids 1 and 2", msg, sizeof msg),
          "%s", msg);
    /* a BYTE piece without byte_fallback */
    static const uint8_t byte[] = {0x0A, 0x09, 0x0A, 0x05, '<', 'u', 'n', 'k', '>', 0x18, 0x02,
                                   0x0A, 0x0A, 0x0A, 0x06, '<', '0', 'x', '4', '1', '>', 0x18, 0x06};
    CHECK(spm_load_fails("byte.model", byte, sizeof byte, "type BYTE", "byte_fallback is false", msg, sizeof msg),
          "%s", msg);
    /* an empty piece string */
    static const uint8_t empty_piece[] = {0x0A, 0x02, 0x18, 0x02};
    CHECK(spm_load_fails("emptypiece.model", empty_piece, sizeof empty_piece, "piece 0 is empty", NULL, msg,
                         sizeof msg),
          "%s", msg);
    /* a piece longer than any sentencepiece trainer makes */
    uint8_t longp[3000 + 16];
    size_t lk = 0;
    longp[lk++] = 0x0A;
    lk += pb_varint(longp + lk, 3000 + 3);
    longp[lk++] = 0x0A;
    lk += pb_varint(longp + lk, 3000);
    memset(longp + lk, 'x', 3000);
    lk += 3000;
    CHECK(spm_load_fails("long.model", longp, lk, "3000 bytes long", "more than 2048", msg, sizeof msg), "%s", msg);
    /* a varint that never ends */
    static const uint8_t endless[] = {0x0A, 0xFF, 0xFF, 0xFF};
    CHECK(spm_load_fails("endless.model", endless, sizeof endless, "truncated", NULL, msg, sizeof msg), "%s", msg);
    Tokenizer *t;
    Error err;
    char nowhere[600];
    snprintf(nowhere, sizeof nowhere, "%s/does-not-exist.model", test_tmpdir());
    CHECK(tokenizer_load_spm(&t, nowhere, &err) != 0 && strstr(err.msg, "does-not-exist.model"), "missing file: %s",
          err.msg);
}

/* Expected pieces are what python sentencepiece 0.1.97 gives for the same
 * model: an UNUSED piece that BPE forms ("▁ab") is split back into the
 * pair it came from; a USER_DEFINED piece is never merged with its
 * neighbours; treat_whitespace_as_suffix puts "▁" at the end;
 * remove_extra_whitespaces collapses and trims spaces. */
static void t_tokenizer_spm_options(void) {
    static const PieceSpec ps[] = {
        {"<unk>", 0, PIECE_UNKNOWN}, {"<s>", 0, PIECE_CONTROL},      {"</s>", 0, PIECE_CONTROL},
        {"\xe2\x96\x81", -1, PIECE_NORMAL}, {"a", -2, PIECE_NORMAL},       {"b", -3, PIECE_NORMAL},
        {"c", -4, PIECE_NORMAL},       {"ab", -0.5f, PIECE_NORMAL},  {"\xe2\x96\x81" "ab", 0.5f, PIECE_UNUSED},
        {"[MASK]", 0, PIECE_USER_DEFINED}, {"abc", -0.25f, PIECE_NORMAL}, {"\xe2\x96\x81" "c", -0.75f, PIECE_NORMAL},
    };
    uint8_t buf[1024];
    char got[512];
    Error err;
    Tokenizer *plain, *suffix;
    size_t n = make_model(buf, ps, (int)(sizeof ps / sizeof ps[0]), 0, 1);
    CHECK(tokenizer_load_spm_buffer(&plain, buf, n, "plain.model", &err) == 0, "%s", err.msg);
    int ok1 = pieces_are(plain, "ab abc cab", "\xe2\x96\x81|ab|\xe2\x96\x81|ab|c|\xe2\x96\x81" "c|ab|", got, sizeof got);
    char got1[512];
    snprintf(got1, sizeof got1, "%s", got);
    int ok2 = ok1 && pieces_are(plain, "[MASK]ab", "\xe2\x96\x81|[MASK]|ab|", got, sizeof got);
    int ok3 = ok2 && pieces_are(plain, "  ab  ab ", "\xe2\x96\x81|ab|\xe2\x96\x81|ab|", got, sizeof got);
    tokenizer_free(plain);
    CHECK(ok1, "UNUSED resegmentation: %s", got1);
    CHECK(ok2 && ok3, "user-defined / extra spaces: %s", got);
    n = make_model(buf, ps, (int)(sizeof ps / sizeof ps[0]), 1, 1);
    CHECK(tokenizer_load_spm_buffer(&suffix, buf, n, "suffix.model", &err) == 0, "%s", err.msg);
    int ok4 = pieces_are(suffix, "ab [MASK]abc  cab", "ab|\xe2\x96\x81|[MASK]|abc|\xe2\x96\x81" "c|ab|\xe2\x96\x81|", got, sizeof got);
    tokenizer_free(suffix);
    CHECK(ok4, "treat_whitespace_as_suffix: %s", got);
}

static void t_tokenizer_truncated_llama(void) {
    NEED_FIXTURE(model, "llama-tiny/tokenizer.model");
    char *data;
    size_t n;
    Error err;
    CHECK(file_read_all(model, 1 << 20, &data, &n, &err) == 0, "%s", err.msg);
    char msg[1100];
    int ok = spm_load_fails("first1000.model", data, 1000, "truncated", "runs past the end", msg, sizeof msg);
    /* every cut fails naming the file, or - when it ends between two pieces
     * that leave a consistent model - loads: protobuf has no end marker */
    int n_loaded = 0, n_failed = 0;
    size_t bad_cut = 0;
    for (size_t cut = 0; cut < 3000 && !bad_cut; cut += 7) {
        Tokenizer *t;
        if (tokenizer_load_spm_buffer(&t, (const uint8_t *)data, cut, "cut.model", &err) == 0) {
            n_loaded++;
            tokenizer_free(t);
        } else if (strstr(err.msg, "cut.model")) {
            n_failed++;
        } else {
            bad_cut = cut;
        }
    }
    free(data);
    CHECK(ok, "%s", msg);
    CHECK(!bad_cut && n_failed > 0, "cut at %zu: %s (%d loaded, %d failed)", bad_cut, err.msg, n_loaded, n_failed);
}

/* Random byte changes in a small model: loading fails cleanly or gives a
 * tokenizer that encodes and decodes without trouble (ASan watches). */
static void t_tokenizer_mutated_models_never_crash(void) {
    Tokenizer *t;
    Error err;
    CHECK(tokenizer_build_synthetic(&t, 600, &err) == 0, "%s", err.msg);
    uint8_t *data;
    size_t n;
    int rc = tokenizer_serialize_spm(t, &data, &n, &err);
    tokenizer_free(t);
    CHECK(rc == 0, "%s", err.msg);
    uint8_t *mut = malloc(n);
    uint64_t s = 12345;
    int loaded = 0;
    for (int iter = 0; iter < 1500; iter++) {
        memcpy(mut, data, n);
        int k = 1 + iter % 8;
        for (int j = 0; j < k; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(s >> 33) % n;
            mut[at] = (uint8_t)(s >> 17);
        }
        size_t len = iter % 5 == 0 ? (size_t)(s >> 40) % n : n;
        Tokenizer *m;
        if (tokenizer_load_spm_buffer(&m, mut, len, "mutated.model", &err) != 0) {
            if (!strstr(err.msg, "mutated.model")) break;
            continue;
        }
        loaded++;
        int *ids, n_ids;
        char *back;
        if (tokenizer_encode(m, "Hello world <s> caf\xc3\xa9 \xff\n", 1, &ids, &n_ids, &err) == 0) {
            if (tokenizer_decode(m, ids, n_ids, iter & 1, &back, &err) == 0) free(back);
            free(ids);
        }
        tokenizer_free(m);
    }
    free(mut);
    free(data);
    CHECK(loaded > 0, "no mutated model loaded at all");
}

static void t_tokenizer_bad_calls(void) {
    Tokenizer *t;
    Error err;
    CHECK(tokenizer_build_synthetic(&t, 512, &err) == 0, "%s", err.msg);
    int ids[2] = {5, 512};
    char *out = NULL;
    int rc = tokenizer_decode(t, ids, 2, 0, &out, &err);
    int *enc = NULL, n = 0;
    int erc = tokenizer_encode(t, "", 0, &enc, &n, &err);
    int empty_ok = erc == 0 && n == 0;
    free(enc);
    erc = tokenizer_encode(t, "", 1, &enc, &n, &err);
    int bos_only = erc == 0 && n == 1 && enc[0] == 1;
    free(enc);
    char *dec = NULL;
    int drc = tokenizer_decode(t, NULL, 0, 0, &dec, &err);
    int dec_empty = drc == 0 && dec && dec[0] == 0;
    free(dec);
    const char *p = tokenizer_piece(t, -1);
    tokenizer_free(t);
    CHECK(rc != 0 && strstr(err.msg, "512") && strstr(err.msg, "outside the vocabulary"), "decode of id 512: %s",
          rc ? err.msg : out);
    CHECK(empty_ok && bos_only, "empty text: %d ids", n);
    CHECK(dec_empty, "decoding nothing");
    CHECK(p && p[0] == 0, "piece of -1");
}

void suite_tokenizer(void) {
    RUN(t_tokenizer_llama_tiny_matches_hf);
    RUN(t_tokenizer_llama_tiny_gqa_matches_hf);
    RUN(t_tokenizer_load_folder);
    RUN(t_tokenizer_round_trip);
    RUN(t_tokenizer_piece_text_streams_like_decode);
    RUN(t_tokenizer_hf_json_matches_spm);
    RUN(t_tokenizer_hf_json_merge_ranks);
    RUN(t_tokenizer_hf_json_bad);
    RUN(t_tokenizer_save_load_round_trip);
    RUN(t_tokenizer_synthetic);
    RUN(t_tokenizer_unigram_pix2struct);
    RUN(t_tokenizer_bad_models);
    RUN(t_tokenizer_spm_options);
    RUN(t_tokenizer_truncated_llama);
    RUN(t_tokenizer_mutated_models_never_crash);
    RUN(t_tokenizer_bad_calls);
}
