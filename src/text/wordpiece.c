/* BERT WordPiece tokenizer with HF BertTokenizer's (slow) rules. See
 * wordpiece.h for what it promises.
 *
 * Layout of this file:
 *   UTF-8 and small growable arrays
 *   character classes and mappings (tables from wordpiece_tables.h)
 *   the vocabulary: vocab.txt, hash index, tokenizer_config.json
 *   encoding: special-token split, BasicTokenizer, WordPiece
 *   decoding */
#include "text/wordpiece.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "formats/json_util.h"
#include "text/wordpiece_tables.h"

/* bert-base vocab.txt is 230 KB; the largest multilingual ones ~2 MB. */
#define MAX_VOCAB_BYTES ((size_t)64 << 20)
#define MAX_CONFIG_BYTES ((size_t)4 << 20)
/* A token longer than "##" + 100 four-byte characters can never match. */
#define MAX_LINE_BYTES 1024
/* HF WordpieceTokenizer.max_input_chars_per_word. */
#define MAX_WORD_CHARS 100
#define MAX_SPECIAL_BYTES 128
#define MAX_NEVER_SPLIT 4096
/* Every input byte gives at most one id, so ids stay well inside an int. */
#define MAX_TEXT_BYTES ((size_t)1 << 28)

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* In the order of HF's all_special_tokens. */
enum { SP_UNK, SP_SEP, SP_PAD, SP_CLS, SP_MASK, N_SPECIAL };
static const char *const special_key[N_SPECIAL] = {"unk_token", "sep_token", "pad_token", "cls_token",
                                                    "mask_token"};
static const char *const special_default[N_SPECIAL] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};

struct WordPiece {
    char *text;      /* vocab.txt, each line cut with a NUL in place */
    char **tokens;   /* tokens[id] points into text; NULL when shadowed */
    uint32_t *lens;  /* bytes of tokens[id] */
    int n;           /* lines */
    size_t max_len;  /* bytes of the longest token */
    int32_t *slots;  /* open-addressing index string -> id, -1 empty */
    size_t n_slots;  /* a power of two */

    int lower;   /* do_lower_case */
    int strip;   /* strip accents: do_lower_case unless strip_accents says */
    int chinese; /* tokenize_chinese_chars */
    int max_length;
    char special[N_SPECIAL][MAX_SPECIAL_BYTES];
    int special_id[N_SPECIAL];
    char **never_split; /* tokenizer_config.json never_split */
    int n_never_split;
};

/* ------------------------------------------------------------ helpers */

/* Decodes one UTF-8 character at s (n > 0 bytes left). Returns its length,
 * or 0 when the bytes are not a valid, shortest-form encoding of a scalar
 * value. */
static int utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint32_t c = s[0];
    int len;
    uint32_t min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, c &= 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, c &= 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < (size_t)len) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

static int utf8_encode(uint32_t c, char *out) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Offset of the first invalid UTF-8 byte in s, or n when all are valid. */
static size_t utf8_invalid_at(const char *s, size_t n) {
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        int k = utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (!k) return i;
        i += (size_t)k;
    }
    return n;
}

typedef struct {
    uint32_t *v;
    size_t n, cap;
} Chars;

typedef struct {
    int *v;
    size_t n, cap;
} Ids;

static int chars_push(Chars *a, uint32_t c) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        uint32_t *p = realloc(a->v, cap * sizeof *p);
        if (!p) return -1;
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = c;
    return 0;
}

static int ids_push(Ids *a, int id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int *p = realloc(a->v, cap * sizeof *p);
        if (!p) return -1;
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return 0;
}

/* ------------------------------------------------ character properties */

/* WP_DROP, WP_SPACE, WP_PUNCT, WP_MARK, or 0 for everything else. */
static int char_class(uint32_t c) {
    size_t lo = 0, hi = sizeof wp_classes / sizeof wp_classes[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < wp_classes[mid].first) hi = mid;
        else if (c > wp_classes[mid].last) lo = mid + 1;
        else return wp_classes[mid].cls;
    }
    return 0;
}

/* HF's _is_chinese_char: the CJK Unified Ideographs blocks and the CJK
 * compatibility ideographs, not kana or Hangul. */
static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Looks c up in a generated mapping (runs, then single pairs); returns c
 * itself when it is in neither. */
static uint32_t map_char(uint32_t c, const WpMapRun *runs, size_t n_runs, const WpMapPair *pairs,
                         size_t n_pairs) {
    size_t lo = 0, hi = n_runs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const WpMapRun *r = &runs[mid];
        if (c < r->first) hi = mid;
        else if (c > r->last) lo = mid + 1;
        else if ((c - r->first) % r->stride) return c;
        else return r->fixed ? r->to : r->to + (c - r->first);
    }
    lo = 0, hi = n_pairs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < pairs[mid].cp) hi = mid;
        else if (c > pairs[mid].cp) lo = mid + 1;
        else return pairs[mid].to;
    }
    return c;
}

/* Python's str.lower() of one character into out; returns how many. */
static int lower_char(uint32_t c, uint32_t out[2]) {
    if (c == 0x130) { /* İ: the one full (SpecialCasing) lower-case mapping */
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    out[0] = map_char(c, wp_lower_runs, COUNT(wp_lower_runs), wp_lower_pairs, COUNT(wp_lower_pairs));
    return 1;
}

static const WpMap3 *map3_find(const WpMap3 *t, size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < t[mid].cp) hi = mid;
        else if (c > t[mid].cp) lo = mid + 1;
        else return &t[mid];
    }
    return NULL;
}

static int copy3(const WpMap3 *m, uint32_t out[3]) {
    memcpy(out, m->to, sizeof m->to);
    return out[2] ? 3 : 2;
}

/* NFC of one character alone (singletons such as the CJK compatibility
 * ideographs, composition exclusions); returns how many characters. */
static int nfc_char(uint32_t c, uint32_t out[3]) {
    const WpMap3 *m = map3_find(wp_nfc3, COUNT(wp_nfc3), c);
    if (m) return copy3(m, out);
    out[0] = map_char(c, wp_nfc_runs, COUNT(wp_nfc_runs), wp_nfc_pairs, COUNT(wp_nfc_pairs));
    return 1;
}

/* NFD of one NFC-stable character with its Mn marks dropped (HF's
 * _run_strip_accents); returns how many characters, 0 for a mark. */
static int strip_char(uint32_t c, uint32_t out[3]) {
    if (c >= 0xAC00 && c <= 0xD7A3) { /* Hangul syllable: conjoining jamo */
        uint32_t s = c - 0xAC00;
        out[0] = 0x1100 + s / 588;
        out[1] = 0x1161 + (s % 588) / 28;
        out[2] = 0x11A7 + s % 28;
        return s % 28 ? 3 : 2;
    }
    if (char_class(c) == WP_MARK) return 0;
    const WpMap3 *m = map3_find(wp_strip3, COUNT(wp_strip3), c);
    if (m) return copy3(m, out);
    out[0] = map_char(c, wp_strip_runs, COUNT(wp_strip_runs), wp_strip_pairs, COUNT(wp_strip_pairs));
    return 1;
}

/* What Python's str.strip() and str.split() take for whitespace. */
static int is_py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* -------------------------------------------------------- vocabulary */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* The slot holding s, or the empty slot where it would go. */
static size_t find_slot(const WordPiece *w, const char *s, size_t n) {
    size_t mask = w->n_slots - 1;
    size_t i = hash_bytes(s, n) & mask;
    for (;;) {
        int32_t id = w->slots[i];
        if (id < 0 || (w->lens[id] == n && memcmp(w->tokens[id], s, n) == 0)) return i;
        i = (i + 1) & mask;
    }
}

/* vocab.get(s): the id of the string, -1 when it is not a token. */
static int vocab_find(const WordPiece *w, const char *s, size_t n) {
    return w->slots[find_slot(w, s, n)];
}

/* Cuts text into lines as Python's text mode reads them ("\n", "\r\n" and
 * "\r" all end a line, a last line needs no end), checking each. With
 * tokens NULL it only counts them. */
static int split_lines(WordPiece *w, const char *path, size_t len, char **tokens, uint32_t *lens, Error *err) {
    char *s = w->text;
    int n = 0;
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && s[i] != '\n' && s[i] != '\r') i++;
        size_t end = i;
        if (i < len && s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') i++;
        if (i < len) i++;
        if (n == INT_MAX - 1) return error_set(err, "%s: too many lines", path);
        n++;
        if (end - start > MAX_LINE_BYTES)
            return error_set(err, "%s: line %d is %zu bytes, more than the %d a token may have", path, n,
                             end - start, MAX_LINE_BYTES);
        if (memchr(s + start, 0, end - start)) return error_set(err, "%s: line %d holds a NUL byte", path, n);
        size_t bad = utf8_invalid_at(s + start, end - start);
        if (bad < end - start)
            return error_set(err, "%s: line %d is not valid UTF-8 (byte %zu of the line)", path, n, bad + 1);
        if (tokens) {
            s[end] = 0; /* the terminator, or the NUL file_read_all adds */
            tokens[n - 1] = s + start;
            lens[n - 1] = (uint32_t)(end - start);
        }
    }
    return n;
}

static int index_vocab(WordPiece *w) {
    size_t n_slots = 16;
    while (n_slots < 2 * (size_t)w->n) n_slots *= 2;
    w->slots = malloc(n_slots * sizeof *w->slots);
    if (!w->slots) return -1;
    memset(w->slots, 0xFF, n_slots * sizeof *w->slots); /* all -1 */
    w->n_slots = n_slots;
    /* A repeated line keeps the later id, as Python's dict does... */
    for (int id = 0; id < w->n; id++) w->slots[find_slot(w, w->tokens[id], w->lens[id])] = id;
    /* ...and the earlier id then has no token (ids_to_tokens lacks it). */
    for (int id = 0; id < w->n; id++)
        if (vocab_find(w, w->tokens[id], w->lens[id]) != id) w->tokens[id] = NULL;
    return 0;
}

/* w->text holds len bytes of vocab.txt (NUL-terminated); path names it. */
static int parse_vocab(WordPiece *w, const char *path, size_t len, Error *err) {
    int n = split_lines(w, path, len, NULL, NULL, err);
    if (n < 0) return -1;
    if (n == 0) return error_set(err, "%s: no tokens (the file is empty)", path);
    w->tokens = malloc((size_t)n * sizeof *w->tokens);
    w->lens = malloc((size_t)n * sizeof *w->lens);
    if (!w->tokens || !w->lens) return error_set(err, "%s: out of memory for %d tokens", path, n);
    w->n = split_lines(w, path, len, w->tokens, w->lens, err); /* checked above: cannot fail */
    if (index_vocab(w)) return error_set(err, "%s: out of memory indexing %d tokens", path, n);
    for (int id = 0; id < w->n; id++)
        if (w->lens[id] > w->max_len) w->max_len = w->lens[id];
    for (int k = 0; k < N_SPECIAL; k++) w->special_id[k] = vocab_find(w, w->special[k], strlen(w->special[k]));
    if (w->special_id[SP_UNK] < 0)
        return error_set(err, "%s: no line '%s': the unknown token must be in the vocabulary", path,
                         w->special[SP_UNK]);
    return 0;
}

static int read_vocab(WordPiece *w, const char *path, Error *err) {
    size_t len;
    if (file_read_all(path, MAX_VOCAB_BYTES, &w->text, &len, err)) return -1;
    return parse_vocab(w, path, len, err);
}

static WordPiece *wordpiece_new(int lower) {
    WordPiece *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->lower = w->strip = lower;
    w->chinese = 1;
    w->max_length = INT_MAX;
    for (int k = 0; k < N_SPECIAL; k++) strcpy(w->special[k], special_default[k]);
    return w;
}

int wordpiece_load_vocab(WordPiece **out, const char *vocab_path, int do_lower_case, Error *err) {
    *out = NULL;
    WordPiece *w = wordpiece_new(do_lower_case != 0);
    if (!w) return error_set(err, "%s: out of memory", vocab_path);
    if (read_vocab(w, vocab_path, err)) {
        wordpiece_free(w);
        return -1;
    }
    *out = w;
    return 0;
}

int wordpiece_load_vocab_buffer(WordPiece **out, const char *data, size_t n, const char *label, int do_lower_case,
                                Error *err) {
    *out = NULL;
    if (n > MAX_VOCAB_BYTES) return error_set(err, "%s: %zu bytes, more than a vocabulary may have", label, n);
    WordPiece *w = wordpiece_new(do_lower_case != 0);
    if (!w || !(w->text = malloc(n + 1))) {
        wordpiece_free(w);
        return error_set(err, "%s: out of memory", label);
    }
    memcpy(w->text, data, n);
    w->text[n] = 0;
    if (parse_vocab(w, label, n, err)) {
        wordpiece_free(w);
        return -1;
    }
    *out = w;
    return 0;
}

/* A tokenizer_config.json string that must be short, non-empty UTF-8. */
static int copy_config_string(char *dst, const char *src, const char *what, const char *file, Error *err) {
    size_t n = strlen(src);
    if (n == 0 || n >= MAX_SPECIAL_BYTES)
        return error_set(err, "%s: %s is %zu bytes, expected 1..%d", file, what, n, MAX_SPECIAL_BYTES - 1);
    if (utf8_invalid_at(src, n) < n) return error_set(err, "%s: %s is not valid UTF-8", file, what);
    memcpy(dst, src, n + 1);
    return 0;
}

/* A special token is a string or, in older files, an AddedToken object
 * {"content": ...}; absent or null keeps the default. */
static int read_special(WordPiece *w, const cJSON *root, int k, const char *file, Error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, special_key[k]);
    if (!v || cJSON_IsNull(v)) return 0;
    const char *s = NULL;
    if (cJSON_IsString(v)) s = v->valuestring;
    else if (cJSON_IsObject(v) && json_get_string(v, "content", &s, file, err)) return -1;
    if (!s) return error_set(err, "%s: field '%s' is %s, expected a string", file, special_key[k], json_type_name(v));
    return copy_config_string(w->special[k], s, special_key[k], file, err);
}

static int read_never_split(WordPiece *w, const cJSON *root, const char *file, Error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "never_split");
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsArray(v))
        return error_set(err, "%s: field 'never_split' is %s, expected a list of strings", file, json_type_name(v));
    int n = cJSON_GetArraySize(v);
    if (n > MAX_NEVER_SPLIT)
        return error_set(err, "%s: never_split has %d entries, more than the %d allowed", file, n, MAX_NEVER_SPLIT);
    w->never_split = calloc((size_t)n + 1, sizeof *w->never_split);
    if (!w->never_split) return error_set(err, "%s: out of memory", file);
    const cJSON *item;
    cJSON_ArrayForEach(item, v) {
        if (!cJSON_IsString(item))
            return error_set(err, "%s: never_split holds %s, expected strings", file, json_type_name(item));
        char *s = malloc(MAX_SPECIAL_BYTES);
        if (!s) return error_set(err, "%s: out of memory", file);
        w->never_split[w->n_never_split++] = s;
        if (copy_config_string(s, item->valuestring, "a never_split entry", file, err)) return -1;
    }
    return 0;
}

static int read_config(WordPiece *w, const char *path, Error *err) {
    cJSON *root;
    if (json_load_file(&root, path, MAX_CONFIG_BYTES, err)) return -1;
    int rc = -1;
    int lower = 1, strip_accents = -1, basic = 1;
    double max_length = 1e30;
    if (!cJSON_IsObject(root)) {
        error_set(err, "%s: expected a JSON object", path);
        goto done;
    }
    if (json_opt_bool(root, "do_lower_case", &lower, path, err) ||
        json_opt_bool(root, "strip_accents", &strip_accents, path, err) ||
        json_opt_bool(root, "tokenize_chinese_chars", &w->chinese, path, err) ||
        json_opt_bool(root, "do_basic_tokenize", &basic, path, err) ||
        json_opt_float(root, "model_max_length", &max_length, 0, 1e300, path, err))
        goto done;
    if (!basic) {
        error_set(err, "%s: do_basic_tokenize false is not supported", path);
        goto done;
    }
    w->lower = lower;
    w->strip = strip_accents < 0 ? lower : strip_accents; /* None follows do_lower_case */
    w->max_length = max_length >= INT_MAX ? INT_MAX : (int)max_length;
    for (int k = 0; k < N_SPECIAL; k++)
        if (read_special(w, root, k, path, err)) goto done;
    rc = read_never_split(w, root, path, err);
done:
    cJSON_Delete(root);
    return rc;
}

int wordpiece_load(WordPiece **out, const char *model_dir, Error *err) {
    *out = NULL;
    char vocab[1024], config[1024];
    if (path_join(vocab, sizeof vocab, model_dir, "vocab.txt", err) ||
        path_join(config, sizeof config, model_dir, "tokenizer_config.json", err))
        return -1;
    WordPiece *w = wordpiece_new(1);
    if (!w) return error_set(err, "%s: out of memory", model_dir);
    if ((file_exists(config) && read_config(w, config, err)) || read_vocab(w, vocab, err)) {
        wordpiece_free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void wordpiece_free(WordPiece *w) {
    if (!w) return;
    for (int i = 0; i < w->n_never_split; i++) free(w->never_split[i]);
    free(w->never_split);
    free(w->slots);
    free(w->lens);
    free(w->tokens);
    free(w->text);
    free(w);
}

int wordpiece_vocab_size(const WordPiece *w) { return w->n; }
int wordpiece_cls(const WordPiece *w) { return w->special_id[SP_CLS]; }
int wordpiece_sep(const WordPiece *w) { return w->special_id[SP_SEP]; }
int wordpiece_pad(const WordPiece *w) { return w->special_id[SP_PAD]; }
int wordpiece_unk(const WordPiece *w) { return w->special_id[SP_UNK]; }
int wordpiece_mask(const WordPiece *w) { return w->special_id[SP_MASK]; }
int wordpiece_max_length(const WordPiece *w) { return w->max_length; }

const char *wordpiece_token(const WordPiece *w, int id) {
    if (id < 0 || id >= w->n || !w->tokens[id]) return w->special[SP_UNK];
    return w->tokens[id];
}

/* ---------------------------------------------------------- encoding */

typedef struct {
    const WordPiece *w;
    Ids ids;
    Chars norm; /* one chunk after lower-casing, clean-up and CJK spacing */
    Chars word; /* one word after accent stripping */
} Encoder;

/* How many characters of the text at c (n left) spell s; 0 when they
 * do not. s is valid UTF-8 (checked when it was loaded). */
static size_t match_string(const uint32_t *c, size_t n, const char *s) {
    size_t i = 0, k = 0, len = strlen(s);
    uint32_t cp;
    while (k < len) {
        if (i == n) return 0;
        k += (size_t)utf8_decode((const uint8_t *)s + k, len - k, &cp);
        if (c[i++] != cp) return 0;
    }
    return i;
}

static int word_is(const uint32_t *c, size_t n, const char *s) { return n && match_string(c, n, s) == n; }

/* The longest special-token string at c, or -1. */
static int special_at(const WordPiece *w, const uint32_t *c, size_t n, size_t *len) {
    int best = -1;
    *len = 0;
    for (int k = 0; k < N_SPECIAL; k++) {
        if (w->special_id[k] < 0) continue;
        size_t m = match_string(c, n, w->special[k]);
        if (m > *len) best = k, *len = m;
    }
    return best;
}

/* WordPiece on one piece: greedy longest match from the left, "##" on
 * every match after the first; all-or-nothing, else one [UNK]. */
static int encode_piece(Encoder *e, const uint32_t *c, size_t n) {
    const WordPiece *w = e->w;
    if (n > MAX_WORD_CHARS) return ids_push(&e->ids, w->special_id[SP_UNK]);
    char text[4 * MAX_WORD_CHARS], sub[2 + 4 * MAX_WORD_CHARS];
    size_t off[MAX_WORD_CHARS + 1];
    off[0] = 0;
    for (size_t i = 0; i < n; i++) off[i + 1] = off[i] + (size_t)utf8_encode(c[i], text + off[i]);
    size_t mark = e->ids.n;
    for (size_t start = 0; start < n;) {
        int id = -1;
        size_t end = n;
        for (; end > start; end--) {
            size_t len = off[end] - off[start], pre = start > 0 ? 2 : 0;
            if (pre + len > w->max_len) continue; /* keeps long words linear */
            memcpy(sub, "##", 2);
            memcpy(sub + pre, text + off[start], len);
            id = vocab_find(w, sub, pre + len);
            if (id >= 0) break;
        }
        if (id < 0) {
            e->ids.n = mark;
            return ids_push(&e->ids, w->special_id[SP_UNK]);
        }
        if (ids_push(&e->ids, id)) return -1;
        start = end;
    }
    return 0;
}

/* BertTokenizer._tokenize: a basic token listed in never_split goes to the
 * vocabulary as it is, anything else through WordPiece. */
static int encode_token(Encoder *e, const uint32_t *c, size_t n) {
    const WordPiece *w = e->w;
    for (int k = 0; k < w->n_never_split; k++) {
        if (!word_is(c, n, w->never_split[k])) continue;
        int id = vocab_find(w, w->never_split[k], strlen(w->never_split[k]));
        return ids_push(&e->ids, id >= 0 ? id : w->special_id[SP_UNK]);
    }
    return encode_piece(e, c, n);
}

static int is_never_split(const WordPiece *w, const uint32_t *c, size_t n) {
    for (int k = 0; k < w->n_never_split; k++)
        if (word_is(c, n, w->never_split[k])) return 1;
    for (int k = 0; k < N_SPECIAL; k++)
        if (w->special_id[k] >= 0 && word_is(c, n, w->special[k])) return 1;
    return 0;
}

/* One whitespace-separated word of BasicTokenizer. */
static int encode_word(Encoder *e, const uint32_t *c, size_t n) {
    const WordPiece *w = e->w;
    /* never_split words, and the special-token strings (here only when
     * clean-up made them, e.g. from "[CL\x01S]"), are kept whole. */
    if (is_never_split(w, c, n)) return encode_token(e, c, n);
    if (w->strip) {
        e->word.n = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t s[3];
            int m = strip_char(c[i], s);
            for (int j = 0; j < m; j++)
                if (chars_push(&e->word, s[j])) return -1;
        }
        c = e->word.v;
        n = e->word.n;
    }
    /* Every punctuation character is a piece of its own. */
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (char_class(c[i]) != WP_PUNCT) continue;
        if (i > start && encode_token(e, c + start, i - start)) return -1;
        if (encode_token(e, c + i, 1)) return -1;
        start = i + 1;
    }
    return n > start ? encode_token(e, c + start, n - start) : 0;
}

/* Clean-up, CJK spacing and NFC of one (lower-cased) character. */
static int push_clean(Encoder *e, uint32_t c) {
    int cls = char_class(c);
    if (cls == WP_DROP) return 0;
    if (cls == WP_SPACE) return chars_push(&e->norm, ' ');
    int cjk = e->w->chinese && is_cjk(c);
    uint32_t n[3];
    int m = nfc_char(c, n);
    if (cjk && chars_push(&e->norm, ' ')) return -1;
    for (int j = 0; j < m; j++)
        if (chars_push(&e->norm, n[j])) return -1;
    return cjk ? chars_push(&e->norm, ' ') : 0;
}

/* Text between special tokens: BasicTokenizer, then WordPiece. */
static int encode_chunk(Encoder *e, const uint32_t *c, size_t n) {
    e->norm.n = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t low[2] = {c[i], 0};
        int m = e->w->lower ? lower_char(c[i], low) : 1;
        for (int j = 0; j < m; j++)
            if (push_clean(e, low[j])) return -1;
    }
    const uint32_t *t = e->norm.v;
    for (size_t i = 0; i < e->norm.n;) {
        if (t[i] == ' ') {
            i++;
            continue;
        }
        size_t start = i;
        while (i < e->norm.n && t[i] != ' ') i++;
        if (encode_word(e, t + start, i - start)) return -1;
    }
    return 0;
}

static int encode_chars(Encoder *e, const uint32_t *c, size_t n, int add_special) {
    const WordPiece *w = e->w;
    if (add_special && ids_push(&e->ids, w->special_id[SP_CLS])) return -1;
    size_t chunk = 0;
    for (size_t i = 0; i < n;) {
        size_t len;
        int k = special_at(w, c + i, n - i, &len);
        if (k < 0) {
            i++;
            continue;
        }
        if (encode_chunk(e, c + chunk, i - chunk) || ids_push(&e->ids, w->special_id[k])) return -1;
        i += len;
        chunk = i;
    }
    if (encode_chunk(e, c + chunk, n - chunk)) return -1;
    if (add_special && ids_push(&e->ids, w->special_id[SP_SEP])) return -1;
    return 0;
}

int wordpiece_encode_bytes(const WordPiece *w, const char *text, size_t len, int add_special, int **ids, int *n,
                           Error *err) {
    *ids = NULL;
    *n = 0;
    if (len > MAX_TEXT_BYTES)
        return error_set(err, "wordpiece: text is %zu bytes, more than the %zu allowed", len, MAX_TEXT_BYTES);
    if (add_special && (w->special_id[SP_CLS] < 0 || w->special_id[SP_SEP] < 0))
        return error_set(err, "wordpiece: the vocabulary has no '%s' or '%s' to add", w->special[SP_CLS],
                         w->special[SP_SEP]);
    uint32_t *chars = calloc(len + 1, sizeof *chars);
    Encoder e = {.w = w};
    int rc = -1;
    if (!chars) goto done;
    size_t nc = 0;
    for (size_t i = 0; i < len;) {
        int k = utf8_decode((const uint8_t *)text + i, len - i, &chars[nc]);
        if (!k) chars[nc] = 0xFFFD, k = 1; /* dropped by clean-up */
        nc++;
        i += (size_t)k;
    }
    if (encode_chars(&e, chars, nc, add_special) || ids_push(&e.ids, 0)) goto done;
    *ids = e.ids.v;
    *n = (int)e.ids.n - 1; /* the pushed 0 only makes sure there is a buffer */
    e.ids.v = NULL;
    rc = 0;
done:
    if (rc) error_set(err, "wordpiece: out of memory encoding %zu bytes", len);
    free(chars);
    free(e.ids.v);
    free(e.norm.v);
    free(e.word.v);
    return rc;
}

int wordpiece_encode(const WordPiece *w, const char *text, int add_special, int **ids, int *n, Error *err) {
    return wordpiece_encode_bytes(w, text, strlen(text), add_special, ids, n, err);
}

/* ---------------------------------------------------------- decoding */

/* Python's s.replace(from, to) in place, for to no longer than from. */
static size_t replace_all(char *s, size_t n, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to), r = 0, o = 0;
    while (r < n) {
        if (n - r >= fl && memcmp(s + r, from, fl) == 0) {
            memmove(s + o, to, tl);
            o += tl;
            r += fl;
        } else {
            s[o++] = s[r++];
        }
    }
    s[o] = 0;
    return o;
}

/* Python's str.strip() in place; returns the new length. */
static size_t strip_py_space(char *s, size_t n) {
    size_t a = 0, b = n;
    uint32_t cp;
    while (a < b) {
        int k = utf8_decode((const uint8_t *)s + a, b - a, &cp);
        if (!k || !is_py_space(cp)) break;
        a += (size_t)k;
    }
    while (b > a) {
        size_t p = b - 1;
        while (p > a && ((uint8_t)s[p] & 0xC0) == 0x80) p--;
        int k = utf8_decode((const uint8_t *)s + p, b - p, &cp);
        if (!k || (size_t)k != b - p || !is_py_space(cp)) break;
        b = p;
    }
    memmove(s, s + a, b - a);
    s[b - a] = 0;
    return b - a;
}

static int is_special_id(const WordPiece *w, int id) {
    for (int k = 0; k < N_SPECIAL; k++)
        if (w->special_id[k] >= 0 && id == w->special_id[k]) return 1;
    return 0;
}

int wordpiece_decode(const WordPiece *w, const int *ids, int n, int skip_special, char **out, Error *err) {
    *out = NULL;
    if (n < 0 || (n > 0 && !ids)) return error_set(err, "wordpiece: decode of %d ids", n);
    size_t len = 0;
    for (int i = 0; i < n; i++) len += strlen(wordpiece_token(w, ids[i])) + 1;
    char *s = malloc(len + 1);
    if (!s) return error_set(err, "wordpiece: out of memory decoding %d ids", n);
    len = 0;
    int joined = 0;
    for (int i = 0; i < n; i++) {
        if (skip_special && is_special_id(w, ids[i])) continue;
        const char *t = wordpiece_token(w, ids[i]);
        if (joined++) s[len++] = ' ';
        size_t tl = strlen(t);
        memcpy(s + len, t, tl);
        len += tl;
    }
    s[len] = 0;
    /* convert_tokens_to_string, then clean_up_tokenization, in HF's order. */
    static const char *const rules[][2] = {{" ##", ""},     {" .", "."},     {" ?", "?"},    {" !", "!"},
                                           {" ,", ","},     {" ' ", "'"},    {" n't", "n't"}, {" 'm", "'m"},
                                           {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"}};
    len = replace_all(s, len, rules[0][0], rules[0][1]);
    len = strip_py_space(s, len);
    for (size_t r = 1; r < COUNT(rules); r++) len = replace_all(s, len, rules[r][0], rules[r][1]);
    *out = s;
    return 0;
}
