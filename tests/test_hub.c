/* vmed pull against a Hub played by a small HTTP server inside the test
 * (a thread on 127.0.0.1, ephemeral port): the revision listing, resolve
 * URLs, LFS files redirected to another host with X-Linked-Etag and
 * X-Linked-Size, Range requests, and fault modes (a connection dropped
 * halfway, a server that ignores Range, a wrong sha256, 404, 401). Also
 * SHA-256 against the FIPS vectors and the models directory. No test
 * touches the real network. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/file.h"
#include "base/sha256.h"
#include "pipeline/hub.h"
#include "pipeline/models_dir.h"
#include "test.h"

void suite_hub(void);

#ifndef VMED_BIN
#define VMED_BIN "build/vmed"
#endif

/* ---- the fixture repo ---- */

typedef struct {
    const char *path;
    size_t size;
    int lfs;
    int wanted_by_default;
    uint8_t *data;
    char sha256[65];
} RepoFile;

static RepoFile repo_files[] = {
    {"config.json", 0, 0, 1, NULL, ""},
    {"model.safetensors", 1500000, 1, 1, NULL, ""},
    {"pytorch_model.bin", 3000, 1, 0, NULL, ""},
    {"tf_model.h5", 100, 0, 0, NULL, ""},
    {".gitattributes", 0, 0, 0, NULL, ""},
    {"sub/vocab.txt", 0, 0, 1, NULL, ""},
    {"README.md", 0, 0, 1, NULL, ""},
};
#define N_REPO_FILES (int)(sizeof repo_files / sizeof repo_files[0])
#define COMMIT "0123456789abcdef0123456789abcdef01234567"
#define TOKEN "hf_s3cret"

static void make_repo(void) {
    if (repo_files[0].data) return;
    const char *texts[] = {"{\"model_type\": \"git\", \"hidden_size\": 32}\n", NULL, NULL, NULL,
                           "*.safetensors filter=lfs diff=lfs merge=lfs -text\n", "[PAD]\n[CLS]\nhello\nworld\n",
                           "# tiny test repo\n"};
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < N_REPO_FILES; i++) {
        RepoFile *f = &repo_files[i];
        if (texts[i]) f->size = strlen(texts[i]);
        f->data = malloc(f->size ? f->size : 1);
        for (size_t j = 0; j < f->size; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            f->data[j] = texts[i] ? (uint8_t)texts[i][j] : (uint8_t)x;
        }
        Sha256 s;
        uint8_t d[32];
        sha256_init(&s);
        sha256_update(&s, f->data, f->size);
        sha256_final(&s, d);
        sha256_hex(d, f->sha256);
    }
}

static const RepoFile *repo_file(const char *path) {
    for (int i = 0; i < N_REPO_FILES; i++)
        if (strcmp(repo_files[i].path, path) == 0) return &repo_files[i];
    return NULL;
}

/* ---- the server ---- */

typedef struct {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t mu;
    /* fault modes, for model.safetensors */
    int drop_half, ignore_range, wrong_sha;
    /* what came in: "PATH range=R auth=0|1" */
    char log[64][400];
    int n_log;
} Server;

static Server srv = {.fd = -1};

static void send_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return;
        p += k, n -= (size_t)k;
    }
}

static void reply(int fd, int status, const char *reason, const char *extra, const void *body, size_t n) {
    char head[2048];
    int len = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                       status, reason, n, extra ? extra : "");
    send_all(fd, head, (size_t)len);
    if (body && n) send_all(fd, body, n);
}

static void serve_listing(int fd, const char *repo, int wrong_sha) {
    char *json = malloc(1 << 16);
    size_t n = (size_t)snprintf(json, 1 << 16, "{\"id\":\"%s\",\"sha\":\"%s\",\"siblings\":[", repo, COMMIT);
    for (int i = 0; i < N_REPO_FILES; i++) {
        const RepoFile *f = &repo_files[i];
        const char *sha = (wrong_sha & 1) && strcmp(f->path, "model.safetensors") == 0
                              ? "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                              : f->sha256;
        n += (size_t)snprintf(json + n, (1 << 16) - n, "%s{\"rfilename\":\"%s\",\"size\":%zu,\"blobId\":\"%.40s\"",
                              i ? "," : "", f->path, f->size, f->sha256);
        if (f->lfs)
            n += (size_t)snprintf(json + n, (1 << 16) - n, ",\"lfs\":{\"sha256\":\"%s\",\"size\":%zu,\"pointerSize\":"
                                  "134}", sha, f->size);
        n += (size_t)snprintf(json + n, (1 << 16) - n, "}");
    }
    n += (size_t)snprintf(json + n, (1 << 16) - n, "]}");
    reply(fd, 200, "OK", "Content-Type: application/json\r\n", json, n);
    free(json);
}

/* The bytes of a file, honouring "bytes=N-" unless told not to, and
 * dropping the connection halfway when told to. */
static void serve_bytes(int fd, const RepoFile *f, const char *range, int drop_half, int ignore_range) {
    unsigned long long from = 0;
    char extra[512];
    if (range[0] && !ignore_range && sscanf(range, "bytes=%llu-", &from) == 1) {
        if (from >= f->size) {
            snprintf(extra, sizeof extra, "Content-Range: bytes */%zu\r\n", f->size);
            reply(fd, 416, "Range Not Satisfiable", extra, NULL, 0);
            return;
        }
        snprintf(extra, sizeof extra, "Content-Range: bytes %llu-%zu/%zu\r\nETag: \"%s\"\r\n", from, f->size - 1,
                 f->size, f->sha256);
    } else {
        snprintf(extra, sizeof extra, "ETag: \"%s\"\r\n", f->sha256);
    }
    size_t n = f->size - (size_t)from;
    if (!drop_half) {
        reply(fd, from ? 206 : 200, from ? "Partial Content" : "OK", extra, f->data + from, n);
        return;
    }
    char head[1024];
    int len = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                       from ? 206 : 200, from ? "Partial Content" : "OK", n, extra);
    send_all(fd, head, (size_t)len);
    send_all(fd, f->data + from, n / 2);
}

static void serve_resolve(int fd, const char *path, int wrong_sha) {
    const RepoFile *f = repo_file(path);
    if (!f) {
        reply(fd, 404, "Not Found", "X-Error-Code: EntryNotFound\r\nX-Error-Message: Entry not found\r\n", NULL, 0);
        return;
    }
    char extra[1024];
    if (f->lfs) {
        /* to "localhost": another host, as the Hub's CDN is, so the token must not follow */
        snprintf(extra, sizeof extra, "Location: http://localhost:%d/lfs/%s\r\nX-Linked-Etag: \"%s\"\r\n"
                 "X-Linked-Size: %zu\r\nX-Repo-Commit: %s\r\n", srv.port, f->path,
                 (wrong_sha & 2) ? "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" : f->sha256, f->size,
                 COMMIT);
        reply(fd, 302, "Found", extra, NULL, 0);
        return;
    }
    serve_bytes(fd, f, "", 0, 0);
}

static void handle(int fd) {
    char req[16384];
    size_t n = 0;
    while (n + 1 < sizeof req) {
        ssize_t k = recv(fd, req + n, sizeof req - 1 - n, 0);
        if (k <= 0) return;
        n += (size_t)k;
        req[n] = 0;
        if (strstr(req, "\r\n\r\n")) break;
    }
    char path[1024] = "", range[128] = "";
    if (sscanf(req, "GET %1023s HTTP/1.1", path) != 1) return;
    const char *r = strcasestr(req, "\r\nRange: ");
    if (r) sscanf(r + 9, "%127[^\r]", range);
    const char *a = strcasestr(req, "\r\nAuthorization: ");
    char auth[256] = "";
    if (a) sscanf(a + 17, "%255[^\r]", auth);
    pthread_mutex_lock(&srv.mu);
    int drop = srv.drop_half, ignore = srv.ignore_range, wrong = srv.wrong_sha; /* wrong: 1 listing, 2 header */
    if (srv.n_log < 64) snprintf(srv.log[srv.n_log++], sizeof srv.log[0], "%s range=%s auth=%d", path, range, a != NULL);
    pthread_mutex_unlock(&srv.mu);

    char repo[256], rest[700];
    int gated = strncmp(path, "/api/models/acme/gated/", 23) == 0 || strncmp(path, "/acme/gated/", 12) == 0;
    if (gated && strcmp(auth, "Bearer " TOKEN) != 0) {
        reply(fd, 401, "Unauthorized", "X-Error-Code: GatedRepo\r\nX-Error-Message: Access to model acme/gated is "
              "restricted.\r\n", NULL, 0);
    } else if (sscanf(path, "/api/models/%255[^/]/%*[^/]/revision/%*s", repo) == 1) {
        const char *name = path + 12 + strlen(repo) + 1;
        if (strncmp(name, "tiny-git/", 9) != 0 && strncmp(name, "gated/", 6) != 0)
            reply(fd, 404, "Not Found", "X-Error-Code: RepoNotFound\r\nX-Error-Message: Repository not found\r\n",
                  NULL, 0);
        else serve_listing(fd, "acme/tiny-git", wrong);
    } else if (strncmp(path, "/lfs/", 5) == 0) {
        const RepoFile *f = repo_file(path + 5);
        int faulty = f && strcmp(f->path, "model.safetensors") == 0;
        if (f) serve_bytes(fd, f, range, faulty && drop, faulty && ignore);
        else reply(fd, 404, "Not Found", NULL, NULL, 0);
    } else if (sscanf(path, "/acme/%*[^/]/resolve/" COMMIT "/%699s", rest) == 1) {
        serve_resolve(fd, rest, wrong);
    } else {
        reply(fd, 404, "Not Found", NULL, NULL, 0);
    }
}

static void *server_main(void *arg) {
    (void)arg;
    for (;;) {
        int c = accept(srv.fd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR) continue;
            return NULL; /* shutdown() */
        }
        handle(c);
        close(c);
    }
}

static int server_start(void) {
    if (srv.fd >= 0) return 0;
    make_repo();
    pthread_mutex_init(&srv.mu, NULL);
    srv.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (srv.fd < 0 || bind(srv.fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(srv.fd, 16) != 0 ||
        getsockname(srv.fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    srv.port = ntohs(sa.sin_port);
    return pthread_create(&srv.thread, NULL, server_main, NULL);
}

static void server_stop(void) {
    if (srv.fd < 0) return;
    shutdown(srv.fd, SHUT_RDWR);
    pthread_join(srv.thread, NULL);
    close(srv.fd);
    srv.fd = -1;
    for (int i = 0; i < N_REPO_FILES; i++) {
        free(repo_files[i].data);
        repo_files[i].data = NULL;
    }
}

static void server_mode(int drop_half, int ignore_range, int wrong_sha) {
    pthread_mutex_lock(&srv.mu);
    srv.drop_half = drop_half, srv.ignore_range = ignore_range, srv.wrong_sha = wrong_sha;
    srv.n_log = 0;
    pthread_mutex_unlock(&srv.mu);
}

/* 1 if a logged request starts with prefix and contains what. */
static int logged(const char *prefix, const char *what) {
    int found = 0;
    pthread_mutex_lock(&srv.mu);
    for (int i = 0; i < srv.n_log && !found; i++)
        found = strncmp(srv.log[i], prefix, strlen(prefix)) == 0 && strstr(srv.log[i], what);
    pthread_mutex_unlock(&srv.mu);
    return found;
}

static const char *endpoint(void) {
    static char buf[64];
    snprintf(buf, sizeof buf, "http://127.0.0.1:%d", srv.port);
    return buf;
}

/* ---- helpers ---- */

static const char *scratch(const char *name) {
    static char bufs[8][600];
    static int next;
    char *p = bufs[next++ % 8];
    snprintf(p, sizeof bufs[0], "%s/%s", test_tmpdir(), name);
    return p;
}

static int same_bytes(const char *path, const RepoFile *f) {
    char *text;
    size_t len;
    Error err;
    if (file_read_all(path, 1 << 24, &text, &len, &err)) return 0;
    int same = len == f->size && memcmp(text, f->data, len) == 0;
    free(text);
    return same;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int pull(const char *repo, const char *token, const char *dir, Error *err) {
    HubClient c;
    HubListing l = {0};
    int rc = hub_open(&c, endpoint(), token, err) || hub_list(&c, repo, "main", &l, err);
    if (!rc) {
        hub_select(&l, NULL, 0);
        rc = hub_pull(&c, repo, "main", &l, dir, NULL, NULL, err);
    }
    hub_listing_free(&l);
    hub_close(&c);
    return rc;
}

static int run_sh(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- tests ---- */

static int digest_is(const void *data, size_t n, size_t chunk, const char *want) {
    Sha256 s;
    uint8_t d[32];
    char hex[65];
    sha256_init(&s);
    for (size_t i = 0; i < n; i += chunk) sha256_update(&s, (const char *)data + i, n - i < chunk ? n - i : chunk);
    sha256_final(&s, d);
    sha256_hex(d, hex);
    return strcmp(hex, want) == 0;
}

static void t_hub_sha256_vectors(void) {
    CHECK(digest_is("", 0, 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "empty");
    CHECK(digest_is("abc", 3, 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "abc");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    for (size_t chunk = 1; chunk <= 64; chunk += 7)
        CHECK(digest_is(m, strlen(m), chunk, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
              "448-bit message in chunks of %zu", chunk);
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    int ok = digest_is(a, 1000000, 4099, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
    CHECK(ok, "a million 'a'");
}

static void t_hub_parse_listing(void) {
    const char *good = "{\"sha\":\"" COMMIT "\",\"siblings\":[{\"rfilename\":\"config.json\",\"size\":12,\"blobId\":"
                       "\"abc\"},{\"rfilename\":\"w/model.safetensors\",\"lfs\":{\"sha256\":\"ABCDEF0123456789abcdef0123"
                       "456789abcdef0123456789abcdef0123456789\",\"size\":99}}]}";
    HubListing l;
    Error err;
    CHECK(hub_parse_listing(&l, good, strlen(good), "t", &err) == 0, "%s", err.msg);
    int ok = l.n_files == 2 && strcmp(l.commit, COMMIT) == 0 && l.files[0].has_size && l.files[0].size == 12 &&
             !l.files[0].sha256[0] && l.files[1].has_size && l.files[1].size == 99 &&
             strncmp(l.files[1].sha256, "abcdef0123", 10) == 0 && strcmp(l.files[1].path, "w/model.safetensors") == 0;
    hub_listing_free(&l);
    CHECK(ok, "fields not as listed");
    struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"siblings\": 3}", "'siblings' is a number"},
        {"[1]", "expected a JSON object"},
        {"{\"siblings\":[{\"rfilename\":\"../evil\"}]}", "refusing the file name '../evil'"},
        {"{\"siblings\":[{\"rfilename\":\"/etc/passwd\"}]}", "refusing"},
        {"{\"siblings\":[{\"rfilename\":\"a/../../b\"}]}", "refusing"},
        {"{\"siblings\":[{\"rfilename\":\"a\\\\b\"}]}", "refusing"},
        {"{\"siblings\":[{\"rfilename\":\"model.safetensors.part\"}]}", "refusing"},
        {"{\"siblings\":[{\"rfilename\":\".incomplete\"}]}", "refusing"},
        {"{\"siblings\":[{\"rfilename\":\"x\",\"lfs\":{\"sha256\":\"zz\"}}]}", "not 64 hex digits"},
        {"{\"siblings\":[{\"rfilename\":\"x\",\"size\":1,\"lfs\":{\"sha256\":\"" COMMIT COMMIT "\"}}]}", "not 64 hex"},
        {"{\"sha\":\"main\",\"siblings\":[]}", "not a commit id"},
        {"{\"siblings\":[", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(hub_parse_listing(&l, bad[i].json, strlen(bad[i].json), "t", &err) != 0, "accepted %s", bad[i].json);
        CHECK(strstr(err.msg, bad[i].msg), "%s: %s", bad[i].json, err.msg);
    }
}

static void t_hub_select_rule(void) {
    const char *names[] = {"config.json", "model.safetensors", "pytorch_model.bin", "pytorch_model.bin.index.json",
                           "tf_model.h5", "flax_model.msgpack", "onnx/model.onnx", ".gitattributes",
                           "tokenizer.model", "sub/vocab.txt", "original/consolidated.00.pth", ".github/x.yml"};
    const int keep[] = {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0};
    HubFile files[12] = {0};
    HubListing l = {.files = files, .n_files = 12};
    for (int i = 0; i < 12; i++) files[i].path = (char *)names[i];
    CHECK(hub_select(&l, NULL, 0) == 4, "default rule keeps 4 files");
    for (int i = 0; i < 12; i++) CHECK(files[i].wanted == keep[i], "%s: wanted %d", names[i], files[i].wanted);
    /* without safetensors the pickles are the weights: kept */
    l.n_files = 1;
    files[1].path = (char *)"pytorch_model.bin";
    l.files = files + 1;
    CHECK(hub_select(&l, NULL, 0) == 1, "a lone .bin is kept");
    files[1].path = (char *)names[1];
    l.files = files, l.n_files = 12;
    const char *inc[] = {"*.json", "tf_*"};
    CHECK(hub_select(&l, inc, 2) == 3, "--include *.json tf_* picks 3");
    CHECK(files[0].wanted && files[3].wanted && files[4].wanted && !files[1].wanted, "--include picks");
}

static void set_models_root(const char *sub) {
    char p[600];
    snprintf(p, sizeof p, "%s", scratch(sub));
    mkdir(p, 0755);
    setenv("VMED_MODELS", p, 1);
}

static void mkdirs(const char *root, const char *rel) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s/", root, rel);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') *s = 0, mkdir(p, 0755), *s = '/';
}

static void t_hub_models_dir(void) {
    char root[600], path[1200], want[1200];
    Error err;
    char name[256];
    CHECK(models_folder_name("medalpaca/medalpaca-7b", name, sizeof name, &err) == 0 &&
              strcmp(name, "medalpaca--medalpaca-7b") == 0, "folder name %s", name);
    CHECK(models_folder_name("gpt2", name, sizeof name, &err) == 0 && strcmp(name, "gpt2") == 0, "gpt2");
    const char *bad[] = {"a/b/c", "../x", "a/..", "a--b/c", "", "a/", "/b", "a b/c", "a/b?c"};
    for (int i = 0; i < 9; i++) CHECK(models_folder_name(bad[i], name, sizeof name, &err) != 0, "accepted '%s'", bad[i]);

    set_models_root("models-a");
    CHECK(models_dir_root(root, sizeof root) == 0 && strcmp(root, scratch("models-a")) == 0, "root %s", root);
    CHECK(models_find("med-git", path, sizeof path, &err) != 0, "found a model in an empty dir");
    snprintf(want, sizeof want, "no med-git model in %s/med-git (get one with: vmed pull REPO --role med-git, or pass "
             "--med-git DIR)", root);
    CHECK(strcmp(err.msg, want) == 0, "message: %s", err.msg);
    CHECK(models_find("vision", path, sizeof path, &err) != 0 && strstr(err.msg, "unknown model role"), "%s", err.msg);

    mkdirs(root, "med-git/acme--one");
    snprintf(path, sizeof path, "%s/med-git/acme--one/config.json", root);
    CHECK(file_write_all(path, "{}\n", 3, &err) == 0, "%s", err.msg);
    snprintf(want, sizeof want, "%s/med-git/acme--one", root);
    CHECK(models_find("med-git", path, sizeof path, &err) == 0 && strcmp(path, want) == 0, "the only one: %s", err.msg);

    /* a half-downloaded file makes it unusable */
    snprintf(path, sizeof path, "%s/med-git/acme--one/model.safetensors.part", root);
    CHECK(file_write_all(path, "xx", 2, &err) == 0, "%s", err.msg);
    CHECK(models_find("med-git", path, sizeof path, &err) != 0, "used an incomplete folder");
    CHECK(strstr(err.msg, "is incomplete") && strstr(err.msg, "vmed pull acme/one --role med-git` again"), "%s",
          err.msg);
    snprintf(path, sizeof path, "%s/med-git/acme--one/model.safetensors.part", root);
    unlink(path);
    snprintf(path, sizeof path, "%s/med-git/acme--one/%s", root, MODELS_INCOMPLETE);
    CHECK(file_write_all(path, "", 0, &err) == 0, "%s", err.msg);
    CHECK(models_find("med-git", path, sizeof path, &err) != 0 && strstr(err.msg, "incomplete"), "marker ignored");
    snprintf(path, sizeof path, "%s/med-git/acme--one/%s", root, MODELS_INCOMPLETE);
    unlink(path);

    /* two complete ones: the caller must choose */
    mkdirs(root, "med-git/acme--two");
    CHECK(models_find("med-git", path, sizeof path, &err) != 0, "picked one of two");
    CHECK(strstr(err.msg, "several med-git models") && strstr(err.msg, "acme--one") && strstr(err.msg, "acme--two") &&
              strstr(err.msg, "vmed models --default med-git NAME"), "%s", err.msg);
    CHECK(models_set_default("med-git", "acme--two", &err) == 0, "%s", err.msg);
    snprintf(want, sizeof want, "%s/med-git/acme--two", root);
    CHECK(models_find("med-git", path, sizeof path, &err) == 0 && strcmp(path, want) == 0, "default file: %s", path);
    CHECK(models_set_default("med-git", "../x", &err) != 0, "accepted a path as a name");

    /* a symlink default works too */
    snprintf(path, sizeof path, "%s/med-git/default", root);
    unlink(path);
    CHECK(symlink("acme--one", path) == 0, "symlink");
    snprintf(want, sizeof want, "%s/med-git/acme--one", root);
    CHECK(models_find("med-git", path, sizeof path, &err) == 0 && strcmp(path, want) == 0, "symlink: %s", err.msg);

    ModelEntry *m;
    int n;
    CHECK(models_list(&m, &n, &err) == 0, "%s", err.msg);
    int ok = n == 2 && strcmp(m[0].name, "acme--one") == 0 && m[0].is_default && m[0].complete && m[0].bytes == 3 &&
             strcmp(m[1].name, "acme--two") == 0 && !m[1].is_default && m[1].bytes == 0;
    free(m);
    CHECK(ok, "listing");
}

static void t_hub_pull_whole_repo(void) {
    CHECK(server_start() == 0, "server");
    server_mode(0, 0, 0);
    const char *dir = scratch("pull-ok/med-git/acme--tiny-git");
    Error err;
    CHECK(pull("acme/tiny-git", NULL, dir, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N_REPO_FILES; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, repo_files[i].path);
        if (repo_files[i].wanted_by_default) CHECK(same_bytes(p, &repo_files[i]), "%s differs", p);
        else CHECK(!file_exists(p), "%s should be skipped by default", p);
        snprintf(p, sizeof p, "%s/%s.part", dir, repo_files[i].path);
        CHECK(!file_exists(p), "%s left behind", p);
    }
    CHECK(models_folder_complete(dir), "folder not complete");
    CHECK(logged("/api/models/acme/tiny-git/revision/main?blobs=true", "auth=0"), "listing request");
    CHECK(logged("/acme/tiny-git/resolve/" COMMIT "/model.safetensors", ""), "resolve by commit");
    CHECK(logged("/lfs/model.safetensors", "range= "), "LFS redirect followed");
    /* a second run finds everything in place and fetches nothing */
    server_mode(0, 0, 0);
    CHECK(pull("acme/tiny-git", NULL, dir, &err) == 0, "%s", err.msg);
    CHECK(!logged("/acme/", "") && !logged("/lfs/", ""), "second pull downloaded again");
    CHECK(logged("/api/", ""), "second pull must still list");
}

static void t_hub_resume_after_dropped_connection(void) {
    CHECK(server_start() == 0, "server");
    const char *dir = scratch("pull-drop/llm/acme--tiny-git");
    char dest[1200], part[1200];
    snprintf(dest, sizeof dest, "%s/model.safetensors", dir);
    snprintf(part, sizeof part, "%s/model.safetensors.part", dir);
    Error err;
    server_mode(1, 0, 0);
    CHECK(pull("acme/tiny-git", NULL, dir, &err) != 0, "a dropped connection passed");
    CHECK(strstr(err.msg, "acme/tiny-git: model.safetensors"), "message names the file: %s", err.msg);
    long have = file_size(part);
    CHECK(have > 0 && have < 1500000, ".part holds %ld bytes", have);
    CHECK(!file_exists(dest), "an incomplete file was put in place");
    CHECK(!models_folder_complete(dir), "folder looks complete");
    server_mode(0, 0, 0);
    CHECK(pull("acme/tiny-git", NULL, dir, &err) == 0, "%s", err.msg);
    char want_range[64];
    snprintf(want_range, sizeof want_range, "range=bytes=%ld- ", have);
    CHECK(logged("/lfs/model.safetensors", want_range), "no resume request for %s", want_range);
    CHECK(same_bytes(dest, repo_file("model.safetensors")), "resumed file differs");
    CHECK(!file_exists(part) && models_folder_complete(dir), "leftovers after resume");
}

static void t_hub_server_ignoring_range_restarts(void) {
    CHECK(server_start() == 0, "server");
    const char *dir = scratch("pull-norange/llm/acme--tiny-git");
    char dest[1200], part[1200];
    snprintf(dest, sizeof dest, "%s/model.safetensors", dir);
    snprintf(part, sizeof part, "%s/model.safetensors.part", dir);
    Error err;
    server_mode(1, 0, 0);
    CHECK(pull("acme/tiny-git", NULL, dir, &err) != 0, "a dropped connection passed");
    CHECK(file_size(part) > 0, "no .part");
    server_mode(0, 1, 0);
    CHECK(pull("acme/tiny-git", NULL, dir, &err) == 0, "%s", err.msg);
    CHECK(logged("/lfs/model.safetensors", "range=bytes="), "no Range was asked");
    CHECK(same_bytes(dest, repo_file("model.safetensors")), "file differs after a 200 to a Range request");
}

static void t_hub_wrong_sha256_is_refused(void) {
    CHECK(server_start() == 0, "server");
    const char *dir = scratch("pull-badsha/llm/acme--tiny-git");
    char dest[1200], part[1200];
    snprintf(dest, sizeof dest, "%s/model.safetensors", dir);
    snprintf(part, sizeof part, "%s/model.safetensors.part", dir);
    Error err;
    /* wrong in the listing, in X-Linked-Etag, in both */
    for (int mode = 1; mode <= 3; mode++) {
        server_mode(0, 0, mode);
        CHECK(pull("acme/tiny-git", NULL, dir, &err) != 0, "a wrong checksum passed (mode %d)", mode);
        CHECK(strstr(err.msg, "model.safetensors: sha256 mismatch") && strstr(err.msg, "aaaaaaaa"), "%s", err.msg);
        CHECK(!file_exists(dest) && !file_exists(part), "bad bytes left on disk");
        CHECK(!models_folder_complete(dir), "folder looks complete");
    }
}

static void t_hub_http_errors(void) {
    CHECK(server_start() == 0, "server");
    Error err;
    server_mode(0, 0, 0);
    CHECK(pull("acme/nothing", NULL, scratch("pull-404"), &err) != 0, "404 passed");
    CHECK(strstr(err.msg, "acme/nothing (revision main): HTTP 404: no such repo"), "%s", err.msg);
    CHECK(!file_exists(scratch("pull-404")) && !dir_exists(scratch("pull-404")), "404 created a folder");
    CHECK(pull("acme/gated", NULL, scratch("pull-401"), &err) != 0, "401 passed");
    CHECK(strstr(err.msg, "acme/gated (revision main): HTTP 401: Access to model acme/gated is restricted.") &&
              strstr(err.msg, "set HF_TOKEN"), "%s", err.msg);
    CHECK(pull("acme/gated", "hf_wrong", scratch("pull-401"), &err) != 0, "a wrong token passed");
    CHECK(strstr(err.msg, "refused the token in HF_TOKEN"), "%s", err.msg);
    /* with the token: it goes to the endpoint, never to the CDN host */
    const char *dir = scratch("pull-gated/llm/acme--gated");
    server_mode(0, 0, 0);
    CHECK(pull("acme/gated", TOKEN, dir, &err) == 0, "%s", err.msg);
    CHECK(logged("/api/models/acme/gated/", "auth=1") && logged("/acme/gated/resolve/", "auth=1"), "token not sent");
    CHECK(logged("/lfs/model.safetensors", "auth=0") && !logged("/lfs/", "auth=1"), "token sent to another host");
    char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(same_bytes(p, repo_file("model.safetensors")), "gated file differs");
    /* nobody listening */
    HubClient c;
    HubListing l;
    CHECK(hub_open(&c, "http://127.0.0.1:1", NULL, &err) == 0, "%s", err.msg);
    int rc = hub_list(&c, "acme/tiny-git", "main", &l, &err);
    hub_close(&c);
    CHECK(rc != 0 && strstr(err.msg, "acme/tiny-git (revision main): Couldn't connect"), "%s", err.msg);
    CHECK(hub_open(&c, "ftp://x", NULL, &err) != 0 && strstr(err.msg, "not an http"), "%s", err.msg);
}

static void t_hub_cli_pull_and_models(void) {
    CHECK(server_start() == 0, "server");
    server_mode(0, 0, 0);
    char env[2048], cmd[4096], out[8192];
    const char *root = scratch("cli-models");
    snprintf(env, sizeof env, "HF_ENDPOINT=%s VMED_MODELS='%s' HF_TOKEN= ", endpoint(), root);
    snprintf(cmd, sizeof cmd, "%s %s pull acme/tiny-git 2>&1", env, VMED_BIN);
    int rc = run_sh(cmd, out, sizeof out);
    CHECK(rc == 0, "pull exit %d: %s", rc, out);
    CHECK(strstr(out, "med-git/acme--tiny-git") && strstr(out, "model.safetensors  1.50 MB  sha256 ok"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s %s models 2>&1", env, VMED_BIN);
    CHECK(run_sh(cmd, out, sizeof out) == 0, "models: %s", out);
    CHECK(strstr(out, "* med-git  acme--tiny-git") && strstr(out, "complete   acme/tiny-git@0123456789ab"), "%s",
          out);
    snprintf(cmd, sizeof cmd, "%s %s models --path med-git 2>&1", env, VMED_BIN);
    CHECK(run_sh(cmd, out, sizeof out) == 0 && strstr(out, "/med-git/acme--tiny-git\n"), "--path: %s", out);
    snprintf(cmd, sizeof cmd, "%s %s pull acme/nothing --role llm 2>&1", env, VMED_BIN);
    CHECK(run_sh(cmd, out, sizeof out) == 1 && strstr(out, "vmed pull: acme/nothing (revision main): HTTP 404"),
          "404: %s", out);
    snprintf(cmd, sizeof cmd, "%s %s pull 'bad/repo/id' 2>&1", env, VMED_BIN);
    CHECK(run_sh(cmd, out, sizeof out) == 2 && strstr(out, "is not a Hugging Face repo id"), "usage: %s", out);
    snprintf(cmd, sizeof cmd, "%s %s pull acme/tiny-git --role vision 2>&1", env, VMED_BIN);
    CHECK(run_sh(cmd, out, sizeof out) == 2 && strstr(out, "--role must be"), "role: %s", out);
    /* a full disk (a file size limit here): the write fails, nothing looks complete */
    snprintf(cmd, sizeof cmd, "trap '' XFSZ; ulimit -f 600; %s %s pull acme/tiny-git --role llm 2>&1", env, VMED_BIN);
    CHECK(run_sh(cmd, out, sizeof out) == 1 && strstr(out, "model.safetensors.part: write failed"), "disk full: %s",
          out);
    char p[1200];
    snprintf(p, sizeof p, "%s/llm/acme--tiny-git/model.safetensors", root);
    CHECK(!file_exists(p), "a truncated file was put in place");
    snprintf(cmd, sizeof cmd, "%s %s models --path llm 2>&1", env, VMED_BIN);
    CHECK(run_sh(cmd, out, sizeof out) == 1 && strstr(out, "is incomplete"), "incomplete used: %s", out);
    snprintf(cmd, sizeof cmd, "%s %s pull acme/tiny-git --role llm 2>&1", env, VMED_BIN);
    CHECK(run_sh(cmd, out, sizeof out) == 0 && strstr(out, "resumed from"), "resume after disk full: %s", out);
    CHECK(same_bytes(p, repo_file("model.safetensors")), "file differs after resume");
}

void suite_hub(void) {
    char *saved = getenv("VMED_MODELS") ? strdup(getenv("VMED_MODELS")) : NULL;
    RUN(t_hub_sha256_vectors);
    RUN(t_hub_parse_listing);
    RUN(t_hub_select_rule);
    RUN(t_hub_models_dir);
    RUN(t_hub_pull_whole_repo);
    RUN(t_hub_resume_after_dropped_connection);
    RUN(t_hub_server_ignoring_range_restarts);
    RUN(t_hub_wrong_sha256_is_refused);
    RUN(t_hub_http_errors);
    RUN(t_hub_cli_pull_and_models);
    server_stop();
    if (saved) setenv("VMED_MODELS", saved, 1);
    else unsetenv("VMED_MODELS");
    free(saved);
}
