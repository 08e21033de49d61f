/* The models directory: where `vmed pull` puts checkpoints and where the
 * commands look for them when no folder is given.
 *
 *   $VMED_MODELS (default $HOME/.cache/vmed)
 *     llm/  lora/  med-git/  deplot/          one folder per role
 *       medalpaca--medalpaca-7b/              one folder per Hub repo ("/" -> "--")
 *         config.json ...                     the repo's files, as on the Hub
 *         .vmed-pull.json                     what pull fetched (repo, commit, files)
 *       default                               optional: which folder to use
 *
 * The model used for a role is the one `default` names (a symlink to the
 * folder, or a text file holding its name), else the only complete folder.
 * A folder is incomplete while pull has left its marker (.incomplete) or a
 * half-downloaded file (*.part) in it; such a folder is never used. */
#ifndef VMED_PIPELINE_MODELS_DIR_H
#define VMED_PIPELINE_MODELS_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define MODELS_INCOMPLETE ".incomplete" /* in a model folder while pull runs */
#define MODELS_PART_SUFFIX ".part"      /* a file being downloaded */
#define MODELS_MANIFEST ".vmed-pull.json"
#define MODELS_DEFAULT "default"

extern const char *const MODELS_ROLES[4]; /* "llm", "lora", "med-git", "deplot" */

/* $VMED_MODELS, else $HOME/.cache/vmed. Returns -1 when neither is set or
 * the path does not fit in cap. */
int models_dir_root(char *buf, size_t cap);

/* 1 if role is one of MODELS_ROLES. */
int models_role_valid(const char *role);

/* The folder name for a repo id: "medalpaca/medalpaca-7b" ->
 * "medalpaca--medalpaca-7b". Fails on ids the Hub would refuse (empty
 * parts, "..", "--", characters outside [A-Za-z0-9._-]), which also keeps
 * the name a single safe path component. */
int models_folder_name(const char *repo_id, char *buf, size_t cap, Error *err);

/* The model folder to use for role (see the top of this file). Fails with a
 * message that says how to get one or how to choose when there is none, or
 * several, or the chosen one is incomplete. */
int models_find(const char *role, char *path, size_t cap, Error *err);

/* Makes name (a folder under role/) the default for role, by writing the
 * `default` file. */
int models_set_default(const char *role, const char *name, Error *err);

/* 1 if the model folder is complete: no .incomplete marker and no *.part
 * file anywhere in it. */
int models_folder_complete(const char *dir);

typedef struct {
    char role[16];
    char name[256];
    char path[1200];
    char repo[256];   /* from .vmed-pull.json; empty when absent */
    char commit[64];  /* likewise */
    uint64_t bytes;   /* files in the folder, markers and manifest excluded */
    int complete;
    int is_default;
} ModelEntry;

/* Every model folder under every role, sorted by role then name. *out is
 * NULL when there are none; free() it. A missing root is not an error. */
int models_list(ModelEntry **out, int *n, Error *err);

#endif
