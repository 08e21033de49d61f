/* vmed caption: the Med-GIT expert on its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/threads.h"
#include "cli/cli.h"
#include "pipeline/expert.h"

static const char CAPTION_HELP[] =
    "usage: vmed caption --model DIR [options] IMAGE...\n"
    "\n"
    "Captions radiology images with a GIT checkpoint in the Hugging Face layout\n"
    "(Med-GIT, or microsoft/git-base): config.json, model.safetensors,\n"
    "preprocessor_config.json, vocab.txt. PNG and JPEG files are recognised by\n"
    "their content. Several images reuse the loaded model.\n"
    "\n"
    "  --beams N            beam search with N beams (default 1: greedy)\n"
    "  --max-length N       HF max_length, counting the [CLS] start token (default:\n"
    "                       generation_config.json's, else 50; HF's own default is 20)\n"
    "  --length-penalty F   beam score = log-probability / length^F (default 1)\n"
    "  --json               one JSON object per image: image, caption, ids\n"
    "  --max-pixels N       refuse larger images (default 178956970, as PIL)\n"
    "  -t, --threads N      worker threads (default: all CPUs)\n";

static void print_json(const char *path, const ExpertOutput *o) {
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "image", path);
    cJSON_AddStringToObject(obj, "caption", o->text);
    cJSON *ids = cJSON_AddArrayToObject(obj, "ids");
    for (int i = 0; i < o->n_ids; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(o->ids[i]));
    char *s = cJSON_PrintUnformatted(obj);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(obj);
}

int cmd_caption(int argc, char **argv) {
    const char *cmd = "caption", *dir = NULL;
    ExpertOptions opt = expert_default_options();
    opt.n_threads = cpu_count();
    int json = 0;
    const char **images = calloc((size_t)argc, sizeof *images);
    int n_images = 0;
    if (!images) return cli_fail(cmd, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long n;
        double x;
        if (cli_is_help(a)) {
            fputs(CAPTION_HELP, stdout);
            free(images);
            return 0;
        } else if (strcmp(a, "--model") == 0) {
            if (!(dir = cli_value(cmd, argc, argv, &i))) goto usage;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--beams") == 0) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 64, &n)) goto usage;
            opt.num_beams = (int)n;
        } else if (strcmp(a, "--max-length") == 0) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 2, 65536, &n)) goto usage;
            opt.max_length = (int)n;
        } else if (strcmp(a, "--length-penalty") == 0) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_float(cmd, a, v, -100, 100, &x)) goto usage;
            opt.length_penalty = (float)x;
        } else if (strcmp(a, "--max-pixels") == 0) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 0x7fffffffffffffffL, &n)) goto usage;
            opt.limits.max_pixels = (uint64_t)n;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, a, v, 1, 1024, &n)) goto usage;
            opt.n_threads = (int)n;
        } else if (a[0] == '-' && a[1]) {
            cli_usage_error(cmd, "unknown option '%s'", a);
            goto usage;
        } else {
            images[n_images++] = a;
        }
    }
    if (!dir) {
        cli_usage_error(cmd, "--model DIR is required");
        goto usage;
    }
    if (!n_images) {
        cli_usage_error(cmd, "at least one IMAGE is required");
        goto usage;
    }
    Error err;
    void *expert;
    if (EXPERT_MED_GIT.load(&expert, dir, &opt, &err)) {
        free(images);
        return cli_fail(cmd, err.msg);
    }
    int rc = 0;
    for (int k = 0; k < n_images; k++) {
        const char *path = images[k];
        Image img;
        ExpertOutput out;
        if (image_load(&img, path, &opt.limits, &err)) {
            rc = cli_fail(cmd, err.msg);
            continue;
        }
        int bad = EXPERT_MED_GIT.describe(expert, &img, &out, &err);
        image_free(&img);
        if (bad) {
            rc = cli_fail(cmd, err.msg);
            continue;
        }
        if (json) print_json(path, &out);
        else if (n_images > 1) printf("%s: %s\n", path, out.text);
        else printf("%s\n", out.text);
        fflush(stdout);
        expert_output_free(&out);
    }
    EXPERT_MED_GIT.free(expert);
    free(images);
    return rc;
usage:
    free(images);
    return EXIT_USAGE;
}
