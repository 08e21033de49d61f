#include "pipeline/models_dir.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "formats/json_util.h"

const char *const MODELS_ROLES[4] = {"llm", "lora", "med-git", "deplot"};

/* A model folder is a Hub repo: a few levels deep at most. The cap keeps a
 * symlink loop from recursing forever. */
#define MAX_DEPTH 16

int models_dir_root(char *buf, size_t cap) {
    const char *env = getenv("VMED_MODELS");
    int n;
    if (env && *env) n = snprintf(buf, cap, "%s", env);
    else {
        const char *home = getenv("HOME");
        if (!home || !*home) return -1;
        n = snprintf(buf, cap, "%s/.cache/vmed", home);
    }
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int models_role_valid(const char *role) {
    for (int i = 0; i < 4; i++)
        if (strcmp(role, MODELS_ROLES[i]) == 0) return 1;
    return 0;
}

static int repo_part_valid(const char *s, size_t n) {
    if (n == 0 || n > 96 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' || s[n - 1] == '-') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '_' || c == '-';
        if (!ok) return 0;
        if (i > 0 && ((c == '.' && s[i - 1] == '.') || (c == '-' && s[i - 1] == '-'))) return 0;
    }
    return 1;
}

int models_folder_name(const char *repo_id, char *buf, size_t cap, Error *err) {
    const char *slash = strchr(repo_id, '/');
    int ok = slash ? repo_part_valid(repo_id, (size_t)(slash - repo_id)) && repo_part_valid(slash + 1, strlen(slash + 1))
                   : repo_part_valid(repo_id, strlen(repo_id));
    if (!ok)
        return error_set(err, "'%s' is not a Hugging Face repo id (expected OWNER/NAME of letters, digits, '.', "
                         "'_' and '-', as in medalpaca/medalpaca-7b)", repo_id);
    int n = slash ? snprintf(buf, cap, "%.*s--%s", (int)(slash - repo_id), repo_id, slash + 1)
                  : snprintf(buf, cap, "%s", repo_id);
    if (n < 0 || (size_t)n >= cap) return error_set(err, "repo id '%s' is too long", repo_id);
    return 0;
}

static int is_marker_or_part(const char *name) {
    size_t n = strlen(name), k = strlen(MODELS_PART_SUFFIX);
    return strcmp(name, MODELS_INCOMPLETE) == 0 || (n > k && strcmp(name + n - k, MODELS_PART_SUFFIX) == 0);
}

/* Adds up the bytes under dir and counts markers and *.part files. */
static void walk(const char *dir, int depth, uint64_t *bytes, int *n_partial) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (stat(p, &st) != 0) continue;
        if (is_marker_or_part(e->d_name)) (*n_partial)++;
        if (S_ISDIR(st.st_mode) && depth < MAX_DEPTH) walk(p, depth + 1, bytes, n_partial);
        else if (S_ISREG(st.st_mode) && !is_marker_or_part(e->d_name) && strcmp(e->d_name, MODELS_MANIFEST) != 0)
            *bytes += (uint64_t)st.st_size;
    }
    closedir(d);
}

int models_folder_complete(const char *dir) {
    uint64_t bytes = 0;
    int n_partial = 0;
    walk(dir, 0, &bytes, &n_partial);
    return n_partial == 0;
}

static void read_manifest(const char *dir, char *repo, size_t repo_cap, char *commit, size_t commit_cap) {
    char p[PATH_MAX];
    cJSON *root = NULL;
    Error err;
    repo[0] = commit[0] = 0;
    if (snprintf(p, sizeof p, "%s/%s", dir, MODELS_MANIFEST) >= (int)sizeof p) return;
    if (!file_exists(p) || json_load_file(&root, p, 64 << 20, &err) != 0) return;
    const char *r = NULL, *c = NULL;
    if (json_opt_string(root, "repo", &r, p, &err) == 0 && r) snprintf(repo, repo_cap, "%s", r);
    if (json_opt_string(root, "commit", &c, p, &err) == 0 && c) snprintf(commit, commit_cap, "%s", c);
    cJSON_Delete(root);
}

/* The repo to name in "run vmed pull REPO again": the manifest's, else
 * the folder name read back ("a--b" -> "a/b"). */
static void repo_for_folder(const char *dir, const char *name, char *repo, size_t cap) {
    char commit[64];
    read_manifest(dir, repo, cap, commit, sizeof commit);
    if (repo[0]) return;
    const char *dash = strstr(name, "--");
    if (dash) snprintf(repo, cap, "%.*s/%s", (int)(dash - name), name, dash + 2);
    else snprintf(repo, cap, "%s", name);
}

static int role_dir(const char *role, char *dir, size_t cap, Error *err) {
    if (!models_role_valid(role))
        return error_set(err, "unknown model role '%s' (expected llm, lora, med-git or deplot)", role);
    char root[PATH_MAX];
    if (models_dir_root(root, sizeof root) != 0)
        return error_set(err, "cannot place the models directory: set VMED_MODELS or HOME");
    return path_join(dir, cap, root, role, err);
}

/* What role_dir/default names, as a path: 1 when there is a default, 0
 * when not, -1 when it cannot be read. */
static int read_default(const char *dir, char *target, size_t cap, Error *err) {
    char p[PATH_MAX], name[PATH_MAX];
    if (path_join(p, sizeof p, dir, MODELS_DEFAULT, err)) return -1;
    struct stat st;
    if (lstat(p, &st) != 0) return 0;
    if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(p, name, sizeof name - 1);
        if (n < 0) return error_set(err, "%s: cannot read the link: %s", p, strerror(errno));
        name[n] = 0;
    } else {
        char *text;
        if (file_read_all(p, 4096, &text, NULL, err)) return -1;
        snprintf(name, sizeof name, "%s", text);
        free(text);
        name[strcspn(name, "\r\n")] = 0;
    }
    if (!name[0]) return error_set(err, "%s: empty; it should name a model folder in %s", p, dir);
    int n = name[0] == '/' ? snprintf(target, cap, "%s", name) : snprintf(target, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return error_set(err, "%s: the path it names is too long", p);
    return 1;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int incomplete_error(const char *role, const char *dir, Error *err) {
    char repo[256];
    repo_for_folder(dir, base_name(dir), repo, sizeof repo);
    return error_set(err, "the %s model in %s is incomplete (a download was interrupted); run `vmed pull %s "
                     "--role %s` again to finish it", role, dir, repo, role);
}

static int use_folder(const char *role, const char *folder, char *path, size_t cap, Error *err) {
    if (!models_folder_complete(folder)) return incomplete_error(role, folder, err);
    int n = snprintf(path, cap, "%s", folder);
    if (n < 0 || (size_t)n >= cap) return error_set(err, "%s: path too long", folder);
    return 0;
}

int models_find(const char *role, char *path, size_t cap, Error *err) {
    char dir[PATH_MAX], target[PATH_MAX];
    if (role_dir(role, dir, sizeof dir, err)) return -1;
    int has_default = read_default(dir, target, sizeof target, err);
    if (has_default < 0) return -1;
    if (has_default) {
        if (!dir_exists(target))
            return error_set(err, "%s/%s names %s, which is not a model folder", dir, MODELS_DEFAULT, target);
        return use_folder(role, target, path, cap, err);
    }
    DIR *d = opendir(dir);
    int n_complete = 0, n_incomplete = 0;
    char names[512] = "", only[PATH_MAX] = "", broken[PATH_MAX] = "";
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[PATH_MAX];
        if (e->d_name[0] == '.' || snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        if (!dir_exists(p)) continue;
        if (!models_folder_complete(p)) {
            n_incomplete++;
            snprintf(broken, sizeof broken, "%s", p);
            continue;
        }
        n_complete++;
        snprintf(only, sizeof only, "%s", p);
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "", e->d_name);
    }
    if (d) closedir(d);
    if (n_complete == 1) return use_folder(role, only, path, cap, err);
    if (n_complete > 1)
        return error_set(err, "several %s models in %s (%s): choose one with `vmed models --default %s NAME`, or "
                         "pass --%s DIR", role, dir, names, role, role);
    if (n_incomplete) return incomplete_error(role, broken, err);
    return error_set(err, "no %s model in %s (get one with: vmed pull REPO --role %s, or pass --%s DIR)", role, dir,
                     role, role);
}

int models_set_default(const char *role, const char *name, Error *err) {
    char dir[PATH_MAX], folder[PATH_MAX], p[PATH_MAX];
    if (role_dir(role, dir, sizeof dir, err)) return -1;
    if (!name[0] || strchr(name, '/') || name[0] == '.')
        return error_set(err, "'%s' is not a model folder name (see `vmed models`)", name);
    if (path_join(folder, sizeof folder, dir, name, err)) return -1;
    if (!dir_exists(folder)) return error_set(err, "no model folder %s (see `vmed models`)", folder);
    if (!models_folder_complete(folder)) return incomplete_error(role, folder, err);
    if (path_join(p, sizeof p, dir, MODELS_DEFAULT, err)) return -1;
    struct stat st;
    /* a symlink default would be written through: replace it instead */
    if (lstat(p, &st) == 0 && S_ISLNK(st.st_mode) && unlink(p) != 0)
        return error_set(err, "%s: cannot replace: %s", p, strerror(errno));
    char line[300];
    int n = snprintf(line, sizeof line, "%s\n", name);
    return file_write_all(p, line, (size_t)n, err);
}

static int entry_cmp(const void *a, const void *b) {
    const ModelEntry *x = a, *y = b;
    int rx = 0, ry = 0;
    for (int i = 0; i < 4; i++) {
        if (strcmp(x->role, MODELS_ROLES[i]) == 0) rx = i;
        if (strcmp(y->role, MODELS_ROLES[i]) == 0) ry = i;
    }
    return rx != ry ? rx - ry : strcmp(x->name, y->name);
}

static int list_role(const char *role, ModelEntry **out, int *n, int *cap, Error *err) {
    char dir[PATH_MAX], chosen[PATH_MAX] = "";
    if (role_dir(role, dir, sizeof dir, err)) return -1;
    Error ignored;
    if (models_find(role, chosen, sizeof chosen, &ignored) != 0) chosen[0] = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[PATH_MAX];
        if (e->d_name[0] == '.' || snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        if (strcmp(e->d_name, MODELS_DEFAULT) == 0 || !dir_exists(p)) continue;
        if (*n == *cap) {
            int nc = *cap ? 2 * *cap : 16;
            ModelEntry *m = realloc(*out, (size_t)nc * sizeof *m);
            if (!m) {
                closedir(d);
                return error_set(err, "%s: out of memory listing models", dir);
            }
            *out = m, *cap = nc;
        }
        ModelEntry *m = &(*out)[(*n)++];
        memset(m, 0, sizeof *m);
        snprintf(m->role, sizeof m->role, "%s", role);
        snprintf(m->name, sizeof m->name, "%s", e->d_name);
        snprintf(m->path, sizeof m->path, "%s", p);
        int n_partial = 0;
        walk(p, 0, &m->bytes, &n_partial);
        m->complete = n_partial == 0;
        read_manifest(p, m->repo, sizeof m->repo, m->commit, sizeof m->commit);
        char real_a[PATH_MAX], real_b[PATH_MAX];
        m->is_default = chosen[0] && realpath(chosen, real_a) && realpath(p, real_b) && strcmp(real_a, real_b) == 0;
    }
    closedir(d);
    return 0;
}

int models_list(ModelEntry **out, int *n, Error *err) {
    *out = NULL;
    *n = 0;
    int cap = 0;
    for (int i = 0; i < 4; i++) {
        if (list_role(MODELS_ROLES[i], out, n, &cap, err)) {
            free(*out);
            *out = NULL;
            *n = 0;
            return -1;
        }
    }
    if (*n > 1) qsort(*out, (size_t)*n, sizeof **out, entry_cmp);
    return 0;
}
