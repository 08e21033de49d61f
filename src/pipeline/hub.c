#include "pipeline/hub.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "base/file.h"
#include "base/sha256.h"
#include "formats/json_util.h"
#include "pipeline/models_dir.h"

#define MAX_REDIRECTS 10
#define MAX_PATH_LEN 512

/* ---- the file list ---- */

static int is_hex(const char *s, size_t n) {
    if (strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return 0;
    return 1;
}

static void lower(char *s) {
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

/* A repo path is joined to the model folder, so it must stay inside it and
 * must not collide with pull's own markers. */
static int path_safe(const char *p) {
    size_t n = strlen(p), k = strlen(MODELS_PART_SUFFIX);
    if (n == 0 || n > MAX_PATH_LEN || p[0] == '/' || p[n - 1] == '/') return 0;
    if (n > k && strcmp(p + n - k, MODELS_PART_SUFFIX) == 0) return 0;
    if (strcmp(p, MODELS_INCOMPLETE) == 0 || strcmp(p, MODELS_MANIFEST) == 0) return 0;
    for (const char *s = p; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '\\') return 0;
    for (const char *s = p; *s;) {
        size_t len = strcspn(s, "/");
        if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) return 0;
        s += len;
        if (*s == '/') s++;
    }
    return 1;
}

static int parse_sibling(HubFile *f, const cJSON *item, const char *label, int i, Error *err) {
    const char *name, *blob = NULL;
    char where[64];
    snprintf(where, sizeof where, "%s: siblings[%d]", label, i);
    if (!cJSON_IsObject(item)) return error_set(err, "%s is %s, expected an object", where, json_type_name(item));
    if (json_get_string(item, "rfilename", &name, where, err)) return -1;
    if (!path_safe(name)) return error_set(err, "%s: refusing the file name '%.200s' (it would leave the model folder "
                                           "or clash with pull's own files)", where, name);
    f->has_size = json_as_u53(cJSON_GetObjectItemCaseSensitive(item, "size"), &f->size);
    if (json_opt_string(item, "blobId", &blob, where, err)) return -1;
    if (blob && strlen(blob) < sizeof f->blob_id) snprintf(f->blob_id, sizeof f->blob_id, "%s", blob);
    const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(item, "lfs");
    if (lfs && !cJSON_IsNull(lfs)) {
        const char *sha;
        uint64_t size;
        if (!cJSON_IsObject(lfs)) return error_set(err, "%s: 'lfs' is %s, expected an object", where, json_type_name(lfs));
        if (json_get_string(lfs, "sha256", &sha, where, err)) return -1;
        if (!is_hex(sha, 64)) return error_set(err, "%s: lfs.sha256 '%.80s' is not 64 hex digits", where, sha);
        snprintf(f->sha256, sizeof f->sha256, "%s", sha);
        lower(f->sha256);
        if (json_as_u53(cJSON_GetObjectItemCaseSensitive(lfs, "size"), &size)) {
            if (f->has_size && size != f->size)
                return error_set(err, "%s: '%s' is listed as %llu bytes and as %llu bytes", where, name,
                                 (unsigned long long)f->size, (unsigned long long)size);
            f->size = size, f->has_size = 1;
        }
    }
    f->path = strdup(name);
    if (!f->path) return error_set(err, "%s: out of memory", where);
    return 0;
}

int hub_parse_listing(HubListing *out, const char *json, size_t len, const char *label, Error *err) {
    memset(out, 0, sizeof *out);
    cJSON *root;
    if (json_parse(&root, json, len, label, err)) return -1;
    const char *sha = NULL;
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(root, "siblings");
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        error_set(err, "%s: expected a JSON object, got %s", label, json_type_name(root));
        goto done;
    }
    if (json_opt_string(root, "sha", &sha, label, err)) goto done;
    if (sha && !is_hex(sha, 40) && !is_hex(sha, 64)) {
        error_set(err, "%s: 'sha' is '%.80s', not a commit id", label, sha);
        goto done;
    }
    if (sha) snprintf(out->commit, sizeof out->commit, "%s", sha);
    if (!cJSON_IsArray(sib)) {
        error_set(err, "%s: 'siblings' is %s, expected the array of the repo's files", label, json_type_name(sib));
        goto done;
    }
    int n = cJSON_GetArraySize(sib);
    out->files = calloc(n ? (size_t)n : 1, sizeof *out->files);
    if (!out->files) {
        error_set(err, "%s: out of memory for %d files", label, n);
        goto done;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, sib) {
        if (parse_sibling(&out->files[out->n_files], item, label, out->n_files, err)) goto done;
        out->n_files++;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc) hub_listing_free(out);
    return rc;
}

void hub_listing_free(HubListing *l) {
    for (int i = 0; i < l->n_files; i++) free(l->files[i].path);
    free(l->files);
    l->files = NULL;
    l->n_files = 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static int has_dot_component(const char *p) { return p[0] == '.' || strstr(p, "/.") != NULL; }

static int other_framework(const char *path) {
    static const char *const exts[] = {".h5", ".msgpack", ".onnx", ".onnx_data", ".tflite", ".ot", ".mlmodel"};
    static const char *const prefixes[] = {"tf_model", "flax_model", "rust_model"};
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (ends_with(path, exts[i])) return 1;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (starts_with(base, prefixes[i])) return 1;
    return 0;
}

static int pytorch_pickle(const char *path) {
    static const char *const exts[] = {".bin", ".pt", ".pth", ".ckpt", ".bin.index.json", ".pt.index.json"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (ends_with(path, exts[i])) return 1;
    return 0;
}

int hub_select(HubListing *l, const char *const *includes, int n_includes) {
    int has_safetensors = 0, n = 0;
    for (int i = 0; i < l->n_files; i++) has_safetensors |= ends_with(l->files[i].path, ".safetensors");
    for (int i = 0; i < l->n_files; i++) {
        HubFile *f = &l->files[i];
        if (n_includes > 0) {
            f->wanted = 0;
            for (int j = 0; j < n_includes && !f->wanted; j++) f->wanted = fnmatch(includes[j], f->path, 0) == 0;
        } else {
            f->wanted = !has_dot_component(f->path) && !other_framework(f->path) &&
                        !(has_safetensors && pytorch_pickle(f->path));
        }
        n += f->wanted;
    }
    return n;
}

/* ---- the HTTP client ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* curl_global_init is not thread-safe in every libcurl this may link
 * against, so it runs exactly once, here; it is never undone (the process
 * exit frees it). */
static void curl_init_once(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* What the current response said, reset at each status line (each hop of a
 * redirect is a response of its own). */
typedef struct {
    long status;
    char linked_etag[160], etag[160], linked_size[32], content_range[96], error_code[64], error_message[256];
} Response;

/* Where a body goes: a file (with its running sha256) or memory. */
typedef struct {
    Response r;
    FILE *fp;
    const char *part;
    uint64_t offset; /* bytes the .part held when the request was sent */
    uint64_t have;   /* bytes in the .part now */
    int started, write_errno, range_mismatch, too_big;
    Sha256 sha;
    char *mem;
    size_t mem_len, mem_max;
    HubProgressFn fn;
    void *ctx;
    HubEvent ev;
} Transfer;

static void copy_trimmed(char *dst, size_t cap, const char *s, size_t n) {
    while (n && (s[n - 1] == '\r' || s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    snprintf(dst, cap, "%.*s", (int)n, s);
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userdata) {
    Transfer *t = userdata;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* X-Linked-* come with the Hub's redirect, not with the CDN's file */
        Response keep = t->r;
        memset(&t->r, 0, sizeof t->r);
        memcpy(t->r.linked_etag, keep.linked_etag, sizeof keep.linked_etag);
        memcpy(t->r.linked_size, keep.linked_size, sizeof keep.linked_size);
        const char *sp = memchr(line, ' ', n);
        if (sp) t->r.status = strtol(sp + 1, NULL, 10);
        return n;
    }
    const char *colon = memchr(line, ':', n);
    if (!colon) return n;
    size_t klen = (size_t)(colon - line), vlen = n - klen - 1;
    struct {
        const char *name;
        char *dst;
        size_t cap;
    } keep[] = {{"X-Linked-Etag", t->r.linked_etag, sizeof t->r.linked_etag},
                {"ETag", t->r.etag, sizeof t->r.etag},
                {"X-Linked-Size", t->r.linked_size, sizeof t->r.linked_size},
                {"Content-Range", t->r.content_range, sizeof t->r.content_range},
                {"X-Error-Code", t->r.error_code, sizeof t->r.error_code},
                {"X-Error-Message", t->r.error_message, sizeof t->r.error_message}};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (klen == strlen(keep[i].name) && strncasecmp(line, keep[i].name, klen) == 0)
            copy_trimmed(keep[i].dst, keep[i].cap, colon + 1, vlen);
    return n;
}

/* The first body byte of a good answer decides what the .part becomes: a
 * 206 must continue exactly where it ends; a 200 is the whole file again
 * (the server ignored the Range), so the .part starts over. */
static int start_body(Transfer *t) {
    t->started = 1;
    if (!t->fp || t->offset == 0) return 0;
    if (t->r.status == 206) {
        unsigned long long first = 0;
        if (sscanf(t->r.content_range, "bytes %llu-", &first) != 1 || first != t->offset) {
            t->range_mismatch = 1;
            return -1;
        }
        return 0;
    }
    if (fflush(t->fp) != 0 || ftruncate(fileno(t->fp), 0) != 0 || fseeko(t->fp, 0, SEEK_SET) != 0) {
        t->write_errno = errno;
        return -1;
    }
    t->offset = t->have = 0;
    sha256_init(&t->sha);
    t->ev.resumed_from = 0;
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nitems, void *userdata) {
    Transfer *t = userdata;
    size_t n = size * nitems;
    if (t->r.status != 200 && t->r.status != 206) return n; /* a redirect's or an error's body */
    /* returning less than n makes libcurl stop with a write error */
    if (!t->started && start_body(t) != 0) return 0;
    if (t->fp) {
        if (fwrite(data, 1, n, t->fp) != n) {
            t->write_errno = errno ? errno : EIO;
            return 0;
        }
        sha256_update(&t->sha, data, n);
        t->have += n;
        if (t->fn) {
            t->ev.kind = HUB_PROGRESS;
            t->ev.done = t->have;
            t->fn(&t->ev, t->ctx);
        }
        return n;
    }
    if (t->mem_len + n > t->mem_max) {
        t->too_big = 1;
        return 0;
    }
    memcpy(t->mem + t->mem_len, data, n);
    t->mem_len += n;
    return n;
}

int hub_open(HubClient *c, const char *endpoint, const char *token, Error *err) {
    memset(c, 0, sizeof *c);
    if (!endpoint || !*endpoint) endpoint = HUB_DEFAULT_ENDPOINT;
    if (!token) token = "";
    if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)
        return error_set(err, "the Hub endpoint '%s' is not an http:// or https:// URL", endpoint);
    int n = snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    if (n < 0 || (size_t)n >= sizeof c->endpoint) return error_set(err, "the Hub endpoint URL is too long");
    while (n > 0 && c->endpoint[n - 1] == '/') c->endpoint[--n] = 0;
    if (strpbrk(token, "\r\n") || strlen(token) >= sizeof c->token)
        return error_set(err, "the Hub token is not usable (a line break in it, or over %zu bytes)", sizeof c->token);
    snprintf(c->token, sizeof c->token, "%s", token);
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return error_set(err, "cannot start libcurl: %s", curl_easy_strerror(curl_init_rc));
    CURL *h = curl_easy_init();
    if (!h) return error_set(err, "cannot start libcurl (out of memory?)");
    c->curl = h;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "vmed/1 (libcurl)");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    /* a connection that moves less than 1 byte/s for a minute is dead */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_error);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    return 0;
}

void hub_close(HubClient *c) {
    if (c->curl) curl_easy_cleanup(c->curl);
    c->curl = NULL;
    memset(c->token, 0, sizeof c->token);
}

/* scheme, host and port of url, as "scheme://host:port"; -1 if unparsable. */
static int url_origin(const char *url, char *out, size_t cap) {
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = -1;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        int n = snprintf(out, cap, "%s://%s:%s", scheme, host, port);
        if (n > 0 && (size_t)n < cap) {
            lower(out);
            rc = 0;
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

/* Unreserved characters stay, everything else is %XX; '/' stays in paths
 * only (a revision such as refs/pr/1 is one path segment). */
static int url_escape(char *out, size_t cap, const char *s, int keep_slash) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        int keep = isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~' || (keep_slash && ch == '/');
        if (n + 4 > cap) return -1;
        if (keep) out[n++] = (char)ch;
        else out[n++] = '%', out[n++] = hex[ch >> 4], out[n++] = hex[ch & 15];
    }
    out[n] = 0;
    return 0;
}

static int listing_url(const HubClient *c, const char *repo, const char *revision, char *url, size_t cap, Error *err) {
    char rev[512];
    if (url_escape(rev, sizeof rev, revision, 0)) return error_set(err, "revision '%.100s' is too long", revision);
    int n = snprintf(url, cap, "%s/api/models/%s/revision/%s?blobs=true", c->endpoint, repo, rev);
    if (n < 0 || (size_t)n >= cap) return error_set(err, "%s: the URL is too long", repo);
    return 0;
}

static int file_url(const HubClient *c, const char *repo, const char *revision, const char *path, char *url,
                    size_t cap, Error *err) {
    char rev[512], p[3 * MAX_PATH_LEN + 4];
    if (url_escape(rev, sizeof rev, revision, 0) || url_escape(p, sizeof p, path, 1))
        return error_set(err, "%s: %s: the URL is too long", repo, path);
    int n = snprintf(url, cap, "%s/%s/resolve/%s/%s", c->endpoint, repo, rev, p);
    if (n < 0 || (size_t)n >= cap) return error_set(err, "%s: %s: the URL is too long", repo, path);
    return 0;
}

/* The message for an HTTP error; what names the repo or the file. */
static int http_error(const HubClient *c, const Response *r, const char *repo, const char *what, Error *err) {
    const char *detail = r->error_message[0] ? r->error_message : "";
    const char *sep = detail[0] ? ": " : "";
    switch (r->status) {
    case 401:
        if (c->token[0])
            return error_set(err, "%s: HTTP 401%s%s: the Hub refused the token in HF_TOKEN; check that it is "
                             "valid and has read access to %s", what, sep, detail, repo);
        return error_set(err, "%s: HTTP 401%s%s: the repo is private or gated, or does not exist; if you have "
                         "access, set HF_TOKEN to a token of yours (https://huggingface.co/settings/tokens)",
                         what, sep, detail);
    case 403:
        return error_set(err, "%s: HTTP 403%s%s: access denied; for a gated repo, accept its conditions on "
                         "https://huggingface.co/%s and set HF_TOKEN to a token of that account", what, sep, detail,
                         repo);
    case 404:
        if (strcmp(r->error_code, "RepoNotFound") == 0)
            return error_set(err, "%s: HTTP 404: no such repo on the Hub%s%s", what, sep, detail);
        if (strcmp(r->error_code, "RevisionNotFound") == 0)
            return error_set(err, "%s: HTTP 404: no such revision (branch, tag or commit) in %s%s%s", what, repo,
                             sep, detail);
        return error_set(err, "%s: HTTP 404: not found (check the repo id, --revision and the file name)%s%s",
                         what, sep, detail);
    default:
        if (r->status >= 500)
            return error_set(err, "%s: HTTP %ld from the server%s%s; try again later", what, r->status, sep,
                             detail);
        return error_set(err, "%s: unexpected HTTP %ld%s%s", what, r->status, sep, detail);
    }
}

static int is_redirect(long status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* GET url into t, following redirects here rather than in libcurl so that
 * each hop is checked: http(s) only, no https -> http downgrade, and the
 * token only for the endpoint's own origin. On return t->r holds the
 * final answer, whatever its status. */
static int perform(HubClient *c, const char *start_url, Transfer *t, const char *what, Error *err) {
    CURL *h = c->curl;
    char url[8192], home[600], origin[600], auth[1100], range[40];
    snprintf(url, sizeof url, "%s", start_url);
    if (url_origin(c->endpoint, home, sizeof home))
        return error_set(err, "the Hub endpoint '%s' is not a URL libcurl can parse", c->endpoint);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
    snprintf(range, sizeof range, "%llu-", (unsigned long long)t->offset);
    int was_https = strncmp(url, "https://", 8) == 0;
    memset(&t->r, 0, sizeof t->r);
    for (int hop = 0;; hop++) {
        if (hop > MAX_REDIRECTS) return error_set(err, "%s: more than %d redirects", what, MAX_REDIRECTS);
        if (url_origin(url, origin, sizeof origin)) return error_set(err, "%s: bad redirect to '%.300s'", what, url);
        int https = strncmp(origin, "https://", 8) == 0;
        if (!https && strncmp(origin, "http://", 7) != 0)
            return error_set(err, "%s: refusing a redirect to '%.300s' (http and https only)", what, url);
        if (was_https && !https)
            return error_set(err, "%s: refusing a redirect from https to plain http ('%.300s')", what, url);
        was_https = https;
        struct curl_slist *headers = NULL;
        if (c->token[0] && strcmp(origin, home) == 0) headers = curl_slist_append(headers, auth);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_RANGE, t->offset ? range : NULL);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
        c->curl_error[0] = 0;
        CURLcode rc = curl_easy_perform(h);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(headers);
        if (t->write_errno)
            return error_set(err, "%s.part: write failed: %s (the partial file is kept: make room and run pull "
                             "again to resume)", t->part, strerror(t->write_errno));
        if (t->range_mismatch)
            return error_set(err, "%s: the server answered a resume request with the wrong range ('%s')", what,
                             t->r.content_range);
        if (t->too_big) return error_set(err, "%s: larger than the %zu bytes allowed", what, t->mem_max);
        if (rc != CURLE_OK)
            return error_set(err, "%s: %s%s%s", what, curl_easy_strerror(rc), c->curl_error[0] ? ": " : "",
                             c->curl_error);
        if (!is_redirect(t->r.status)) return 0;
        char *next = NULL;
        curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &next);
        if (!next) return error_set(err, "%s: HTTP %ld without a Location", what, t->r.status);
        if (strlen(next) >= sizeof url) return error_set(err, "%s: redirect URL too long", what);
        snprintf(url, sizeof url, "%s", next);
    }
}

static int fetch_memory(HubClient *c, const char *url, const char *repo, const char *what, size_t max, char **out,
                        size_t *len, Error *err) {
    Transfer t = {0};
    t.mem_max = max;
    t.mem = malloc(max + 1);
    if (!t.mem) return error_set(err, "%s: out of memory", what);
    if (perform(c, url, &t, what, err) != 0 || (t.r.status != 200 && http_error(c, &t.r, repo, what, err))) {
        free(t.mem);
        return -1;
    }
    t.mem[t.mem_len] = 0;
    *out = t.mem;
    if (len) *len = t.mem_len;
    return 0;
}

int hub_list(HubClient *c, const char *repo, const char *revision, HubListing *out, Error *err) {
    memset(out, 0, sizeof *out);
    char url[2048], label[400], folder[256];
    if (models_folder_name(repo, folder, sizeof folder, err)) return -1;
    if (listing_url(c, repo, revision, url, sizeof url, err)) return -1;
    snprintf(label, sizeof label, "%s (revision %s)", repo, revision);
    char *text;
    size_t len;
    if (fetch_memory(c, url, repo, label, HUB_MAX_LISTING, &text, &len, err)) return -1;
    int rc = hub_parse_listing(out, text, len, label, err);
    free(text);
    return rc;
}

int hub_fetch_text(HubClient *c, const char *repo, const char *revision, const char *path, size_t max, char **out,
                   Error *err) {
    char url[4096], what[1024];
    snprintf(what, sizeof what, "%s: %s", repo, path);
    if (file_url(c, repo, revision, path, url, sizeof url, err)) return -1;
    return fetch_memory(c, url, repo, what, max, out, NULL, err);
}

/* ---- one file ---- */

/* mkdir -p for the folders above path, inside dir. */
static int make_parents(const char *path, Error *err) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return error_set(err, "%s: cannot create: %s", p, strerror(errno));
        *s = '/';
    }
    return 0;
}

/* The sha256 the Hub gave in X-Linked-Etag ("\"<hex>\"", maybe W/), or "". */
static void linked_sha256(const Response *r, char out[65]) {
    const char *s = r->linked_etag;
    out[0] = 0;
    if (strncmp(s, "W/", 2) == 0) s += 2;
    if (*s == '"') s++;
    char buf[65];
    snprintf(buf, sizeof buf, "%.64s", s);
    if (strlen(s) >= 64 && (s[64] == '"' || s[64] == 0) && is_hex(buf, 64)) {
        memcpy(out, buf, 65);
        lower(out);
    }
}

/* Reads the .part's bytes through the sha256 so that a resumed download is
 * checked whole; leaves fp at its end. */
static int hash_prefix(Transfer *t, Error *err) {
    static const size_t chunk = 1 << 20;
    char *buf = malloc(chunk);
    if (!buf) return error_set(err, "%s.part: out of memory", t->part);
    size_t n;
    while ((n = fread(buf, 1, chunk, t->fp)) > 0) {
        sha256_update(&t->sha, buf, n);
        t->have += n;
    }
    int bad = ferror(t->fp);
    free(buf);
    if (bad) return error_set(err, "%s.part: read failed: %s", t->part, strerror(errno));
    t->offset = t->have;
    return 0;
}

typedef struct {
    char dest[PATH_MAX];
    char part[PATH_MAX + 8];
} FilePaths;

/* Size and checksum of a finished .part, then the rename. A wrong .part is
 * removed: resuming it could never give the right file. */
static int finish_file(const FilePaths *p, const HubFile *f, Transfer *t, const char *what, int *verified, Error *err) {
    char linked[65], got[65];
    uint64_t size = f->has_size ? f->size : 0;
    int has_size = f->has_size;
    if (!has_size && t->r.linked_size[0]) has_size = sscanf(t->r.linked_size, "%" SCNu64, &size) == 1;
    linked_sha256(&t->r, linked);
    if (has_size && t->have < size)
        return error_set(err, "%s: the connection ended after %llu of %llu bytes (the partial file is kept: run pull "
                         "again to resume)", what, (unsigned long long)t->have, (unsigned long long)size);
    if (has_size && t->have > size) {
        unlink(p->part);
        return error_set(err, "%s: got %llu bytes but the Hub lists %llu; the download was removed", what,
                         (unsigned long long)t->have, (unsigned long long)size);
    }
    uint8_t digest[32];
    sha256_final(&t->sha, digest);
    sha256_hex(digest, got);
    /* both the listing and the file's own headers must agree with the bytes */
    const char *expect[2] = {f->sha256, linked};
    for (int i = 0; i < 2; i++) {
        if (!expect[i][0] || strcmp(expect[i], got) == 0) continue;
        unlink(p->part);
        return error_set(err, "%s: sha256 mismatch: the Hub says %s, the download is %s; it was removed, run pull "
                         "again", what, expect[i], got);
    }
    *verified = f->sha256[0] || linked[0];
    if (rename(p->part, p->dest) != 0)
        return error_set(err, "%s: cannot rename into place: %s", p->dest, strerror(errno));
    return 0;
}

static int open_part(Transfer *t, const FilePaths *p, const HubFile *f, Error *err) {
    struct stat st;
    if (stat(p->part, &st) == 0 && f->has_size && (uint64_t)st.st_size > f->size) unlink(p->part);
    t->fp = fopen(p->part, "r+b");
    if (!t->fp && errno == ENOENT) t->fp = fopen(p->part, "w+b");
    if (!t->fp) return error_set(err, "%s: cannot open: %s", p->part, strerror(errno));
    sha256_init(&t->sha);
    return hash_prefix(t, err);
}

static int close_part(Transfer *t, const char *part, Error *err) {
    int bad = fflush(t->fp) != 0 || fsync(fileno(t->fp)) != 0;
    int e = errno;
    if (fclose(t->fp) != 0 && !bad) bad = 1, e = errno;
    t->fp = NULL;
    if (bad)
        return error_set(err, "%s: write failed: %s (the partial file is kept: make room and run pull again)", part,
                         strerror(e));
    return 0;
}

/* One attempt; *again is set when the .part must be dropped and the file
 * fetched from the start (the server cannot serve the resume range). */
static int download_once(HubClient *c, const char *repo, const char *url, const FilePaths *p, const HubFile *f,
                         const char *what, Transfer *t, int *again, Error *err) {
    *again = 0;
    if (open_part(t, p, f, err)) {
        if (t->fp) fclose(t->fp);
        return -1;
    }
    if (t->fn) {
        t->ev.kind = HUB_START;
        t->ev.resumed_from = t->ev.done = t->have;
        t->fn(&t->ev, t->ctx);
    }
    /* a .part already whole (a crash before the rename) needs no request */
    int whole = f->has_size && t->have == f->size && t->have > 0 && f->sha256[0];
    int rc = whole ? 0 : perform(c, url, t, what, err);
    if (rc == 0 && !whole && t->r.status == 416 && t->offset > 0) {
        fclose(t->fp);
        t->fp = NULL;
        unlink(p->part);
        *again = 1;
        return -1;
    }
    if (rc == 0 && !whole && t->r.status != 200 && t->r.status != 206) rc = http_error(c, &t->r, repo, what, err);
    if (rc == 0 && !whole && !t->started && start_body(t) != 0)
        rc = error_set(err, "%s: cannot restart %s: %s", what, p->part, strerror(t->write_errno));
    Error close_err;
    if (close_part(t, p->part, &close_err) != 0 && rc == 0) {
        *err = close_err;
        rc = -1;
    }
    if (rc != 0 && t->have == 0) unlink(p->part); /* nothing worth resuming */
    return rc;
}

int hub_download_file(HubClient *c, const char *repo, const char *revision, const HubFile *f, const char *dir,
                      int index, int count, HubProgressFn fn, void *ctx, Error *err) {
    FilePaths p;
    char url[4096], what[1024];
    snprintf(what, sizeof what, "%s: %s", repo, f->path);
    if (!path_safe(f->path)) return error_set(err, "%s: unsafe file name", what);
    if (path_join(p.dest, sizeof p.dest, dir, f->path, err)) return -1;
    snprintf(p.part, sizeof p.part, "%s%s", p.dest, MODELS_PART_SUFFIX);
    if (make_parents(p.dest, err) || file_url(c, repo, revision, f->path, url, sizeof url, err)) return -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        Transfer t = {0};
        t.part = p.dest;
        t.fn = fn, t.ctx = ctx;
        t.ev.path = f->path, t.ev.index = index, t.ev.count = count, t.ev.total = f->has_size ? f->size : 0;
        int again;
        if (download_once(c, repo, url, &p, f, what, &t, &again, err) != 0) {
            if (again) continue;
            return -1;
        }
        int verified = 0;
        if (finish_file(&p, f, &t, what, &verified, err)) return -1;
        if (fn) {
            t.ev.kind = HUB_DONE;
            t.ev.done = t.have;
            t.ev.verified = verified;
            fn(&t.ev, ctx);
        }
        return 0;
    }
    return error_set(err, "%s: the server refused to resume and then to restart the download", what);
}

/* ---- a whole repo ---- */

static const char *file_oid(const HubFile *f) { return f->sha256[0] ? f->sha256 : f->blob_id; }

static int write_manifest(const char *dir, cJSON *manifest, Error *err) {
    char p[PATH_MAX];
    if (path_join(p, sizeof p, dir, MODELS_MANIFEST, err)) return -1;
    char *text = cJSON_Print(manifest);
    if (!text) return error_set(err, "%s: out of memory", p);
    int rc = file_write_all(p, text, strlen(text), err);
    cJSON_free(text);
    return rc;
}

/* The files object of an earlier run's manifest, if its repo is this one. */
static cJSON *previous_files(const char *dir, const char *repo) {
    char p[PATH_MAX];
    cJSON *root = NULL;
    Error ignored;
    if (snprintf(p, sizeof p, "%s/%s", dir, MODELS_MANIFEST) >= (int)sizeof p || !file_exists(p)) return NULL;
    if (json_load_file(&root, p, HUB_MAX_LISTING, &ignored) != 0) return NULL;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "repo");
    cJSON *files = cJSON_DetachItemFromObjectCaseSensitive(root, "files");
    int same = cJSON_IsString(r) && strcmp(r->valuestring, repo) == 0 && cJSON_IsObject(files);
    cJSON_Delete(root);
    if (!same) {
        cJSON_Delete(files);
        return NULL;
    }
    return files;
}

/* Already here from an earlier run: in place, the listed size, and
 * recorded with the same object id. */
static int already_have(const char *dir, const HubFile *f, const cJSON *done) {
    char p[PATH_MAX];
    struct stat st;
    if (snprintf(p, sizeof p, "%s/%s", dir, f->path) >= (int)sizeof p || stat(p, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(done, f->path);
    const cJSON *oid = cJSON_GetObjectItemCaseSensitive(rec, "oid");
    uint64_t size;
    if (!cJSON_IsString(oid) || strcmp(oid->valuestring, file_oid(f)) != 0) return 0;
    if (!json_as_u53(cJSON_GetObjectItemCaseSensitive(rec, "size"), &size) || size != (uint64_t)st.st_size) return 0;
    return !f->has_size || f->size == size;
}

static int record_file(cJSON *files, const HubFile *f, const char *dir, Error *err) {
    char p[PATH_MAX];
    struct stat st;
    if (path_join(p, sizeof p, dir, f->path, err)) return -1;
    if (stat(p, &st) != 0) return error_set(err, "%s: cannot stat: %s", p, strerror(errno));
    cJSON *rec = cJSON_CreateObject();
    if (!rec || !cJSON_AddNumberToObject(rec, "size", (double)st.st_size) ||
        !cJSON_AddStringToObject(rec, "oid", file_oid(f))) {
        cJSON_Delete(rec);
        return error_set(err, "%s: out of memory", p);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(files, f->path);
    cJSON_AddItemToObject(files, f->path, rec);
    return 0;
}

static int make_dirs(const char *dir, Error *err) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/", dir) >= (int)sizeof p) return error_set(err, "%s: path too long", dir);
    return make_parents(p, err);
}

static cJSON *new_manifest(const char *repo, const char *revision, const char *commit, cJSON *files) {
    cJSON *m = files ? cJSON_CreateObject() : NULL;
    if (!m || !cJSON_AddStringToObject(m, "repo", repo) || !cJSON_AddStringToObject(m, "revision", revision) ||
        !cJSON_AddStringToObject(m, "commit", commit)) {
        cJSON_Delete(m);
        cJSON_Delete(files);
        return NULL;
    }
    cJSON_AddItemToObject(m, "files", files);
    return m;
}

static int pull_files(HubClient *c, const char *repo, const HubListing *l, const char *dir, cJSON *manifest,
                      HubProgressFn fn, void *ctx, Error *err) {
    const char *rev = l->commit[0] ? l->commit : cJSON_GetObjectItemCaseSensitive(manifest, "revision")->valuestring;
    cJSON *files = cJSON_GetObjectItemCaseSensitive(manifest, "files");
    int count = 0, index = 0;
    for (int i = 0; i < l->n_files; i++) count += l->files[i].wanted;
    for (int i = 0; i < l->n_files; i++) {
        const HubFile *f = &l->files[i];
        if (!f->wanted) continue;
        if (already_have(dir, f, files)) {
            if (fn) {
                HubEvent ev = {.kind = HUB_SKIPPED, .path = f->path, .index = index, .count = count,
                               .done = f->size, .total = f->size};
                fn(&ev, ctx);
            }
        } else if (hub_download_file(c, repo, rev, f, dir, index, count, fn, ctx, err) ||
                   record_file(files, f, dir, err) || write_manifest(dir, manifest, err)) {
            return -1;
        }
        index++;
    }
    return 0;
}

int hub_pull(HubClient *c, const char *repo, const char *revision, const HubListing *l, const char *dir,
             HubProgressFn fn, void *ctx, Error *err) {
    char marker[PATH_MAX];
    if (make_dirs(dir, err) || path_join(marker, sizeof marker, dir, MODELS_INCOMPLETE, err)) return -1;
    if (file_write_all(marker, "vmed pull running\n", 18, err)) return -1;
    cJSON *files = previous_files(dir, repo);
    cJSON *manifest = new_manifest(repo, revision, l->commit, files ? files : cJSON_CreateObject());
    if (!manifest || !cJSON_GetObjectItemCaseSensitive(manifest, "files")) {
        cJSON_Delete(manifest);
        return error_set(err, "%s: out of memory", dir);
    }
    int rc = pull_files(c, repo, l, dir, manifest, fn, ctx, err);
    if (rc == 0) rc = write_manifest(dir, manifest, err);
    cJSON_Delete(manifest);
    /* the marker goes only when every file is in place: a failed run leaves
     * the folder marked incomplete */
    if (rc == 0 && unlink(marker) != 0) rc = error_set(err, "%s: cannot remove: %s", marker, strerror(errno));
    return rc;
}
