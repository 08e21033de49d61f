/* Downloads from the Hugging Face Hub (or any server that answers the same
 * way, such as a mirror named by HF_ENDPOINT), over libcurl:
 *
 *   GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true
 *       the file list: {"sha": commit, "siblings": [{"rfilename", "size",
 *       "blobId", "lfs": {"sha256", "size"}}]}
 *   GET {endpoint}/{repo}/resolve/{commit}/{path}
 *       a file; LFS files redirect to a CDN, and the first answer carries
 *       X-Linked-Etag (the sha256) and X-Linked-Size.
 *
 * Files go to NAME.part and are renamed into place only once their size
 * and, for LFS files, their sha256 are right; a .part left by an
 * interrupted run is resumed with a Range request. The token is sent only
 * to the endpoint's own scheme, host and port, never to a redirect target
 * elsewhere (redirects are followed here, hop by hop, for that reason).
 * Nothing here prints: progress goes to a callback. */
#ifndef VMED_PIPELINE_HUB_H
#define VMED_PIPELINE_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define HUB_DEFAULT_ENDPOINT "https://huggingface.co"
#define HUB_MAX_LISTING (64u << 20)

typedef struct {
    char *path;        /* rfilename: relative, checked safe to join to a folder */
    uint64_t size;     /* valid when has_size */
    int has_size;
    char sha256[65];   /* LFS files: lowercase hex; "" for plain git files */
    char blob_id[65];  /* the git blob id when listed */
    int wanted;        /* set by hub_select */
} HubFile;

typedef struct {
    char commit[64]; /* "sha": the commit the revision points to; "" if not given */
    HubFile *files;
    int n_files;
} HubListing;

/* Parses the revision endpoint's JSON. Entries whose path could escape the
 * model folder (absolute, "..", backslashes, control characters) or clash
 * with pull's own files make the whole listing an error: the server is not
 * trusted. label names the text in messages. */
int hub_parse_listing(HubListing *out, const char *json, size_t len, const char *label, Error *err);
void hub_listing_free(HubListing *l);

/* Marks the files to fetch and returns how many. With include globs
 * (fnmatch, '*' also matching '/'), exactly the files matching one of them.
 * Without, every file except what a vmed model folder never needs: dotfiles
 * (.gitattributes), other frameworks' weights (*.h5, *.msgpack, *.onnx,
 * *.onnx_data, *.tflite, *.ot, *.mlmodel, tf_model*, flax_model*,
 * rust_model*), and, when the repo has *.safetensors, the PyTorch pickles
 * that duplicate them (*.bin, *.pt, *.pth, *.ckpt and their index files). */
int hub_select(HubListing *l, const char *const *includes, int n_includes);

typedef struct {
    char endpoint[512];   /* no trailing '/' */
    char token[1024];     /* "" for none */
    char curl_error[256]; /* libcurl's detail for the last failure */
    void *curl;
} HubClient;

/* endpoint NULL or "" means HUB_DEFAULT_ENDPOINT; token NULL or "" none.
 * Safe to call from several threads (libcurl's global init runs once). */
int hub_open(HubClient *c, const char *endpoint, const char *token, Error *err);
void hub_close(HubClient *c);

int hub_list(HubClient *c, const char *repo, const char *revision, HubListing *out, Error *err);

/* One small file into memory (NUL-terminated; free() it), refusing more
 * than max bytes. Used to read config.json before choosing a folder. */
int hub_fetch_text(HubClient *c, const char *repo, const char *revision, const char *path, size_t max, char **out,
                   Error *err);

typedef enum { HUB_START, HUB_PROGRESS, HUB_DONE, HUB_SKIPPED } HubEventKind;

typedef struct {
    HubEventKind kind;
    const char *path;
    int index, count;      /* this file is index+1 of count */
    uint64_t done, total;  /* bytes of this file; total 0 when unknown */
    uint64_t resumed_from; /* bytes a .part already held (HUB_START) */
    int verified;          /* HUB_DONE: the sha256 was checked */
} HubEvent;

typedef void (*HubProgressFn)(const HubEvent *e, void *ctx);

/* Downloads one file into dir (resuming dir/PATH.part) and renames it into
 * place once checked. revision should be the listing's commit. On failure
 * the .part is kept when it holds a good prefix (network errors, a full
 * disk) and removed when its bytes are wrong (checksum, size). */
int hub_download_file(HubClient *c, const char *repo, const char *revision, const HubFile *f, const char *dir,
                      int index, int count, HubProgressFn fn, void *ctx, Error *err);

/* Fetches every wanted file of the listing into dir (created if needed).
 * While it runs dir holds the .incomplete marker, so the folder is never
 * used half-written; .vmed-pull.json records repo, revision, commit and the
 * files done, so that a rerun skips them and resumes the rest. */
int hub_pull(HubClient *c, const char *repo, const char *revision, const HubListing *l, const char *dir,
             HubProgressFn fn, void *ctx, Error *err);

#endif
