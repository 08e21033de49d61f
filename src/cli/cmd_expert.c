/* vmed caption and vmed deplot: one visual expert on its own, over one or
 * more images that reuse the loaded model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/threads.h"
#include "cli/cli.h"
#include "pipeline/expert.h"
#include "pipeline/table.h"

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
    "  --quantize q8_0      requantize the weight matrices to Q8_0 at load: a quarter\n"
    "                       of F32's memory, faster decoding, logits within ~1-2%\n"
    "  -t, --threads N      worker threads (default: all CPUs)\n";

static const char DEPLOT_HELP[] =
    "usage: vmed deplot --model DIR [options] IMAGE...\n"
    "\n"
    "Reads the data table out of charts with a Pix2Struct checkpoint in the Hugging\n"
    "Face layout (google/deplot): config.json, model.safetensors,\n"
    "preprocessor_config.json, spiece.model. The question header is rendered above\n"
    "the chart as DePlot's processor does. Prints the linearised table as the model\n"
    "wrote it, then the parsed table (title, header, rows) as aligned columns.\n"
    "\n"
    "  --header TEXT        the header rendered above the chart (default: \"Generate\n"
    "                       underlying data table of the figure below:\")\n"
    "  --font PATH          TrueType font for the header (default: DejaVu Sans;\n"
    "                       real DePlot renders Arial, which Liberation Sans matches:\n"
    "                       /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf)\n"
    "  --max-patches N      patch budget (default 2048, as Pix2StructProcessor)\n"
    "  --beams N            beam search with N beams (default 1: greedy)\n"
    "  --max-length N       HF max_length, counting the decoder start token (default 513)\n"
    "  --length-penalty F   beam score = log-probability / length^F (default 1)\n"
    "  --json               one JSON object per image: image, text, ids, table\n"
    "  --max-pixels N       refuse larger images (default 178956970, as PIL)\n"
    "  -t, --threads N      worker threads (default: all CPUs)\n";

static void print_caption(const char *path, const ExpertOutput *o, int json, int several) {
    if (!json) {
        if (several) printf("%s: %s\n", path, o->text);
        else printf("%s\n", o->text);
        return;
    }
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

static void print_table(const char *path, const ExpertOutput *o, int json, int several) {
    Table t;
    Error err;
    if (table_parse(&t, o->text, &err)) {
        fprintf(stderr, "vmed deplot: %s\n", err.msg);
        return;
    }
    if (!json) {
        char *aligned = table_format(&t);
        if (several) printf("== %s\n", path);
        printf("%s\n\n%s", o->text, aligned ? aligned : "");
        free(aligned);
    } else {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "image", path);
        cJSON_AddStringToObject(obj, "text", o->text);
        cJSON *ids = cJSON_AddArrayToObject(obj, "ids");
        for (int i = 0; i < o->n_ids; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(o->ids[i]));
        cJSON_AddItemToObject(obj, "table", table_to_json(&t));
        char *s = cJSON_PrintUnformatted(obj);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(obj);
    }
    table_free(&t);
}

/* Flags shared by both commands, and deplot's own when deplot is set. */
static int parse_flag(const char *cmd, int deplot, int argc, char **argv, int *i, ExpertOptions *opt, int *json) {
    const char *a = argv[*i], *v;
    long n;
    double x;
    if (strcmp(a, "--json") == 0) {
        *json = 1;
        return 1;
    }
    struct {
        const char *flag;
        int *dst;
        long lo, hi;
    } ints[] = {{"--beams", &opt->num_beams, 1, 64},      {"--max-length", &opt->max_length, 2, 65536},
                {"-t", &opt->n_threads, 1, 1024},          {"--threads", &opt->n_threads, 1, 1024},
                {"--max-patches", &opt->max_patches, 1, 1L << 20}};
    int n_ints = deplot ? 5 : 4;
    for (int k = 0; k < n_ints; k++) {
        if (strcmp(a, ints[k].flag) != 0) continue;
        if (!(v = cli_value(cmd, argc, argv, i)) || cli_int(cmd, a, v, ints[k].lo, ints[k].hi, &n)) return -1;
        *ints[k].dst = (int)n;
        return 1;
    }
    if (strcmp(a, "--length-penalty") == 0) {
        if (!(v = cli_value(cmd, argc, argv, i)) || cli_float(cmd, a, v, -100, 100, &x)) return -1;
        opt->length_penalty = (float)x;
        return 1;
    }
    if (strcmp(a, "--max-pixels") == 0) {
        if (!(v = cli_value(cmd, argc, argv, i)) || cli_int(cmd, a, v, 1, 0x7fffffffffffffffL, &n)) return -1;
        opt->limits.max_pixels = (uint64_t)n;
        return 1;
    }
    if (!deplot && strcmp(a, "--quantize") == 0) {
        if (!(v = cli_value(cmd, argc, argv, i))) return -1;
        if (strcmp(v, "q8_0") != 0) {
            cli_usage_error(cmd, "--quantize takes q8_0, not '%s'", v);
            return -1;
        }
        opt->q8_0 = 1;
        return 1;
    }
    if (deplot && (strcmp(a, "--header") == 0 || strcmp(a, "--font") == 0)) {
        if (!(v = cli_value(cmd, argc, argv, i))) return -1;
        if (strcmp(a, "--header") == 0) opt->header = v;
        else opt->font_path = v;
        return 1;
    }
    return 0;
}

static int run_expert(const char *cmd, const ExpertKind *kind, const char *help, int argc, char **argv) {
    const char *dir = NULL;
    ExpertOptions opt = expert_default_options();
    opt.n_threads = cpu_count();
    int json = 0, n_images = 0, deplot = kind == &EXPERT_DEPLOT;
    const char **images = calloc((size_t)argc, sizeof *images);
    if (!images) return cli_fail(cmd, "out of memory");
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            fputs(help, stdout);
            free(images);
            return 0;
        } else if (strcmp(argv[i], "--model") == 0) {
            if (!(dir = cli_value(cmd, argc, argv, &i))) goto usage;
        } else if ((r = parse_flag(cmd, deplot, argc, argv, &i, &opt, &json)) != 0) {
            if (r < 0) goto usage;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_usage_error(cmd, "unknown option '%s'", argv[i]);
            goto usage;
        } else {
            images[n_images++] = argv[i];
        }
    }
    if (!dir || !n_images) {
        cli_usage_error(cmd, !dir ? "--model DIR is required" : "at least one IMAGE is required");
        goto usage;
    }
    Error err;
    void *expert;
    if (kind->load(&expert, dir, &opt, &err)) {
        free(images);
        return cli_fail(cmd, err.msg);
    }
    int rc = 0;
    for (int k = 0; k < n_images; k++) {
        Image img;
        ExpertOutput out;
        if (image_load(&img, images[k], &opt.limits, &err)) {
            rc = cli_fail(cmd, err.msg);
            continue;
        }
        int bad = kind->describe(expert, &img, &out, &err);
        image_free(&img);
        if (bad) {
            rc = cli_fail(cmd, err.msg);
            continue;
        }
        if (deplot) print_table(images[k], &out, json, n_images > 1);
        else print_caption(images[k], &out, json, n_images > 1);
        fflush(stdout);
        expert_output_free(&out);
    }
    kind->free(expert);
    free(images);
    return rc;
usage:
    free(images);
    return EXIT_USAGE;
}

int cmd_caption(int argc, char **argv) { return run_expert("caption", &EXPERT_MED_GIT, CAPTION_HELP, argc, argv); }

int cmd_deplot(int argc, char **argv) { return run_expert("deplot", &EXPERT_DEPLOT, DEPLOT_HELP, argc, argv); }
