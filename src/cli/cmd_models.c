/* vmed models: what the models directory holds; vmed pull: fill it from
 * the Hugging Face Hub. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/clock.h"
#include "base/file.h"
#include "cli/cli.h"
#include "formats/json_util.h"
#include "pipeline/hub.h"
#include "pipeline/models_dir.h"

static const char MODELS_HELP[] =
    "usage: vmed models\n"
    "       vmed models --default ROLE NAME\n"
    "       vmed models --path ROLE\n"
    "\n"
    "Lists the models directory ($VMED_MODELS, default ~/.cache/vmed): one folder per\n"
    "role (llm, lora, med-git, deplot), one model folder per Hub repo in each, with\n"
    "its size and whether it is complete ('*' marks the one each role uses).\n"
    "  --default ROLE NAME   use model folder NAME for ROLE (writes ROLE/default)\n"
    "  --path ROLE           print the folder ROLE uses, or fail saying why\n";

static const char PULL_HELP[] =
    "usage: vmed pull HF_REPO_ID [--role llm|lora|med-git|deplot] [--revision REV] [--include GLOB]...\n"
    "\n"
    "Downloads a Hugging Face model repo into $VMED_MODELS/ROLE/OWNER--NAME/.\n"
    "  --role R         where it goes; by default guessed from the repo (adapter_config.json:\n"
    "                   lora; config.json model_type llama: llm, git: med-git, pix2struct: deplot)\n"
    "  --revision REV   branch, tag or commit (default main)\n"
    "  --include GLOB   fetch only the files matching GLOB (repeatable; '*' matches '/' too).\n"
    "                   Without it every file is fetched except dotfiles, other frameworks'\n"
    "                   weights (*.h5, *.msgpack, *.onnx, *.tflite, tf_model*, flax_model*, ...)\n"
    "                   and, when the repo has *.safetensors, the *.bin/*.pt/*.pth duplicates.\n"
    "An interrupted pull resumes where it stopped when run again; LFS files are checked\n"
    "against their sha256 and every file against its size before it is put in place.\n"
    "Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (for gated or\n"
    "private repos; else the token file of `huggingface-cli login`, if any).\n";

static void human_bytes(uint64_t n, char *buf, size_t cap) {
    const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1000 && u < 4) v /= 1000, u++;
    if (u == 0) snprintf(buf, cap, "%llu B", (unsigned long long)n);
    else snprintf(buf, cap, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
}

static int models_list_cmd(void) {
    char root[1024];
    if (models_dir_root(root, sizeof root)) return cli_fail("models", "cannot place the models directory: set VMED_MODELS or HOME");
    ModelEntry *m;
    int n;
    Error err;
    if (models_list(&m, &n, &err)) return cli_fail("models", err.msg);
    printf("models in %s\n", root);
    if (n == 0) printf("(none: get one with `vmed pull REPO --role ROLE`)\n");
    else printf("  %-8s %-44s %10s  %-10s %s\n", "ROLE", "NAME", "SIZE", "STATE", "REPO@COMMIT");
    for (int i = 0; i < n; i++) {
        char size[32];
        human_bytes(m[i].bytes, size, sizeof size);
        printf("%c %-8s %-44s %10s  %-10s %s%s%.12s\n", m[i].is_default ? '*' : ' ', m[i].role, m[i].name, size,
               m[i].complete ? "complete" : "incomplete", m[i].repo, m[i].commit[0] ? "@" : "", m[i].commit);
    }
    for (int i = 0; i < n; i++)
        if (!m[i].complete) {
            printf("incomplete folders are never used: run `vmed pull REPO --role ROLE` again to finish them\n");
            break;
        }
    free(m);
    return 0;
}

int cmd_models(int argc, char **argv) {
    const char *cmd = "models";
    Error err;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(MODELS_HELP, stdout);
            return 0;
        }
        if (strcmp(a, "--default") == 0) {
            if (i + 2 >= argc) return cli_usage_error(cmd, "--default needs ROLE and NAME");
            if (!models_role_valid(argv[i + 1]))
                return cli_usage_error(cmd, "unknown role '%s' (llm, lora, med-git or deplot)", argv[i + 1]);
            if (i + 3 < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[i + 3]);
            if (models_set_default(argv[i + 1], argv[i + 2], &err)) return cli_fail(cmd, err.msg);
            printf("%s now uses %s\n", argv[i + 1], argv[i + 2]);
            return 0;
        }
        if (strcmp(a, "--path") == 0) {
            char path[4096];
            if (i + 1 >= argc) return cli_usage_error(cmd, "--path needs a ROLE");
            if (!models_role_valid(argv[i + 1]))
                return cli_usage_error(cmd, "unknown role '%s' (llm, lora, med-git or deplot)", argv[i + 1]);
            if (i + 2 < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[i + 2]);
            if (models_find(argv[i + 1], path, sizeof path, &err)) return cli_fail(cmd, err.msg);
            printf("%s\n", path);
            return 0;
        }
        return cli_usage_error(cmd, "unknown option '%s'", a);
    }
    return models_list_cmd();
}

/* ---- pull ---- */

typedef struct {
    int tty;
    double t0, last;
    uint64_t first; /* bytes present when the file started (resume) */
} Progress;

static void draw_bar(const Progress *p, const HubEvent *e, double now) {
    char done[32], total[32], rate[32];
    double dt = now - p->t0;
    human_bytes(e->done, done, sizeof done);
    human_bytes(e->total, total, sizeof total);
    human_bytes(dt > 0 ? (uint64_t)((double)(e->done - p->first) / dt) : 0, rate, sizeof rate);
    if (e->total) fprintf(stderr, "\r[%d/%d] %s  %5.1f%%  %s / %s  %s/s\033[K", e->index + 1, e->count, e->path,
                          100.0 * (double)e->done / (double)e->total, done, total, rate);
    else fprintf(stderr, "\r[%d/%d] %s  %s  %s/s\033[K", e->index + 1, e->count, e->path, done, rate);
}

/* A bar redrawn in place on a terminal; one line per file otherwise, so
 * logs stay readable. */
static void on_progress(const HubEvent *e, void *ctx) {
    Progress *p = ctx;
    double now = clock_seconds();
    char size[32], from[32];
    switch (e->kind) {
    case HUB_START:
        p->t0 = p->last = now;
        p->first = e->resumed_from;
        if (p->tty) draw_bar(p, e, now);
        break;
    case HUB_PROGRESS:
        if (p->tty && now - p->last >= 0.1) {
            draw_bar(p, e, now);
            p->last = now;
        }
        break;
    case HUB_DONE:
        if (p->tty) {
            draw_bar(p, e, now);
            fputc('\n', stderr);
            break;
        }
        human_bytes(e->done, size, sizeof size);
        human_bytes(p->first, from, sizeof from);
        fprintf(stderr, "[%d/%d] %s  %s%s%s%s\n", e->index + 1, e->count, e->path, size,
                e->verified ? "  sha256 ok" : "", p->first ? "  resumed from " : "", p->first ? from : "");
        break;
    case HUB_SKIPPED:
        fprintf(stderr, "[%d/%d] %s  already here\n", e->index + 1, e->count, e->path);
        break;
    }
}

/* HF_TOKEN, else the file `huggingface-cli login` writes. An HF_TOKEN set
 * to "" means no token. */
static void find_token(char *buf, size_t cap) {
    const char *env = getenv("HF_TOKEN");
    buf[0] = 0;
    if (env) {
        snprintf(buf, cap, "%s", env);
        return;
    }
    char path[1024];
    const char *hf_home = getenv("HF_HOME"), *home = getenv("HOME");
    if (hf_home && *hf_home) snprintf(path, sizeof path, "%s/token", hf_home);
    else if (home && *home) snprintf(path, sizeof path, "%s/.cache/huggingface/token", home);
    else return;
    char *text;
    Error err;
    if (!file_exists(path) || file_read_all(path, 4096, &text, NULL, &err)) return;
    snprintf(buf, cap, "%s", text);
    buf[strcspn(buf, "\r\n \t")] = 0;
    free(text);
}

/* The role from what the repo holds: a PEFT adapter, or config.json's
 * model_type. */
static int guess_role(HubClient *c, const char *repo, const char *revision, const HubListing *l, const char **role,
                      Error *err) {
    int has_config = 0;
    for (int i = 0; i < l->n_files; i++) {
        if (strcmp(l->files[i].path, "adapter_config.json") == 0) {
            *role = "lora";
            return 0;
        }
        has_config |= strcmp(l->files[i].path, "config.json") == 0;
    }
    if (!has_config) return error_set(err, "%s has no config.json to tell its role from; pass --role", repo);
    char *text;
    cJSON *cfg;
    const char *type = NULL;
    char label[300];
    snprintf(label, sizeof label, "%s: config.json", repo);
    if (hub_fetch_text(c, repo, l->commit[0] ? l->commit : revision, "config.json", 1 << 20, &text, err)) return -1;
    int rc = json_parse(&cfg, text, strlen(text), label, err);
    free(text);
    if (rc) return -1;
    rc = json_opt_string(cfg, "model_type", &type, label, err);
    *role = NULL;
    if (rc == 0 && type) {
        if (strcmp(type, "llama") == 0) *role = "llm";
        else if (strcmp(type, "git") == 0) *role = "med-git";
        else if (strcmp(type, "pix2struct") == 0) *role = "deplot";
    }
    if (rc == 0 && !*role)
        rc = error_set(err, "cannot tell what %s is for (model_type '%s'); pass --role llm|lora|med-git|deplot",
                       repo, type ? type : "none");
    cJSON_Delete(cfg);
    return rc;
}

typedef struct {
    const char *repo, *role, *revision;
    const char *includes[32];
    int n_includes;
} PullArgs;

static int parse_pull(PullArgs *a, int argc, char **argv) {
    const char *cmd = "pull", *v;
    memset(a, 0, sizeof *a);
    a->revision = "main";
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (cli_is_help(s)) {
            fputs(PULL_HELP, stdout);
            return -1;
        }
        if (strcmp(s, "--role") == 0 || strcmp(s, "--revision") == 0 || strcmp(s, "--include") == 0) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
            if (strcmp(s, "--role") == 0) a->role = v;
            else if (strcmp(s, "--revision") == 0) a->revision = v;
            else if (a->n_includes == 32) return cli_usage_error(cmd, "at most 32 --include globs");
            else a->includes[a->n_includes++] = v;
        } else if (s[0] == '-') {
            return cli_usage_error(cmd, "unknown option '%s'", s);
        } else if (a->repo) {
            return cli_usage_error(cmd, "one repo at a time ('%s' and '%s')", a->repo, s);
        } else {
            a->repo = s;
        }
    }
    if (!a->repo) return cli_usage_error(cmd, "HF_REPO_ID is required, e.g. vmed pull microsoft/git-base --role med-git");
    if (a->role && !models_role_valid(a->role))
        return cli_usage_error(cmd, "--role must be llm, lora, med-git or deplot, got '%s'", a->role);
    if (!a->revision[0]) return cli_usage_error(cmd, "--revision must not be empty");
    char folder[256];
    Error err;
    if (models_folder_name(a->repo, folder, sizeof folder, &err)) return cli_usage_error(cmd, "%s", err.msg);
    return 0;
}

static int pull_into(HubClient *c, const PullArgs *a, HubListing *l, Error *err) {
    char root[1024], folder[256], dir[2048];
    const char *role = a->role;
    if (models_dir_root(root, sizeof root)) return error_set(err, "cannot place the models directory: set VMED_MODELS or HOME");
    if (models_folder_name(a->repo, folder, sizeof folder, err)) return -1;
    if (hub_list(c, a->repo, a->revision, l, err)) return -1;
    if (hub_select(l, a->includes, a->n_includes) == 0)
        return error_set(err, "%s: nothing to download (%d files listed, none %s)", a->repo, l->n_files,
                         a->n_includes ? "matches --include" : "needed by vmed; use --include GLOB");
    if (!role && guess_role(c, a->repo, a->revision, l, &role, err)) return -1;
    snprintf(dir, sizeof dir, "%s/%s/%s", root, role, folder);
    Progress p = {.tty = isatty(2)};
    fprintf(stderr, "vmed pull: %s (revision %s%s%.12s) into %s\n", a->repo, a->revision, l->commit[0] ? ", commit " : "",
            l->commit, dir);
    if (hub_pull(c, a->repo, a->revision, l, dir, on_progress, &p, err)) {
        if (p.tty) fputc('\n', stderr);
        return -1;
    }
    char chosen[2048];
    Error why;
    if (models_find(role, chosen, sizeof chosen, &why) == 0)
        fprintf(stderr, "vmed pull: done; %s uses %s\n", role, chosen);
    else fprintf(stderr, "vmed pull: done; %s\n", why.msg);
    return 0;
}

int cmd_pull(int argc, char **argv) {
    PullArgs a;
    int rc = parse_pull(&a, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    char token[1024];
    find_token(token, sizeof token);
    HubClient c;
    HubListing l = {0};
    Error err;
    rc = hub_open(&c, getenv("HF_ENDPOINT"), token, &err) || pull_into(&c, &a, &l, &err);
    memset(token, 0, sizeof token);
    hub_listing_free(&l);
    hub_close(&c);
    return rc ? cli_fail("pull", err.msg) : 0;
}
