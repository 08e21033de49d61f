/* The vmed command as a user runs it: exit codes, messages, and the
 * fixture numbers coming out of `tokenize` and `generate`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "formats/json_util.h"
#include "formats/safetensors.h"
#include "test.h"

void suite_cli(void);

#ifndef VMED_BIN
#define VMED_BIN "build/vmed"
#endif

/* Runs `vmed ARGS` (args already shell-quoted), stdout into out and
 * stderr into errout. Returns the exit code. */
static int vmed(const char *args, char *out, size_t cap, char *errout, size_t ecap) {
    char cmd[8192], errpath[600];
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s 2>'%s'", VMED_BIN, args, errpath);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    FILE *e = fopen(errpath, "r");
    n = e ? fread(errout, 1, ecap - 1, e) : 0;
    errout[n] = 0;
    if (e) fclose(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Does the JSON id array starting at text (vmed prints "[1, 2]") equal
 * want (cJSON prints "[1,2]")? Spaces and newlines are ignored. */
static int same_ids(const char *text, const char *want) {
    char norm[8192];
    size_t n = 0;
    for (const char *p = text ? text : ""; *p && n + 1 < sizeof norm; p++)
        if (*p != ' ' && *p != '\n') norm[n++] = *p;
    norm[n] = 0;
    return want && strcmp(norm, want) == 0;
}

static char out[1 << 16], errout[1 << 14];

static void t_cli_usage_errors(void) {
    CHECK(vmed("", out, sizeof out, errout, sizeof errout) == 2 && strstr(errout, "usage: vmed COMMAND"),
          "no command: %s", errout);
    CHECK(vmed("frobnicate", out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "vmed: unknown command 'frobnicate'"),
          "unknown command: %s", errout);
    CHECK(vmed("generate --model x --frobnicate hi", out, sizeof out, errout, sizeof errout) == 2, "exit code");
    CHECK(strcmp(errout, "vmed generate: unknown option '--frobnicate' (see 'vmed generate --help')\n") == 0,
          "unknown option: %s", errout);
    CHECK(vmed("generate --model x -n many hi", out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "option '-n' wants an integer in 0..16777216, got 'many'"),
          "bad number: %s", errout);
    CHECK(vmed("ask 'why?'", out, sizeof out, errout, sizeof errout) == 2 && strstr(errout, "--llm DIR is required"),
          "missing --llm: %s", errout);
    CHECK(vmed("tokenize --model", out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "option '--model' needs a value"),
          "missing value: %s", errout);
}

static void t_cli_help_for_every_command(void) {
    const char *cmds[] = {"ask", "generate", "tokenize", "synth", "bench"};
    for (int i = 0; i < 5; i++) {
        char args[64];
        snprintf(args, sizeof args, "%s --help", cmds[i]);
        CHECK(vmed(args, out, sizeof out, errout, sizeof errout) == 0, "%s --help failed", cmds[i]);
        CHECK(strstr(out, "usage: vmed ") != NULL, "%s --help: %s", cmds[i], out);
    }
    vmed("generate --help", out, sizeof out, errout, sizeof errout);
    CHECK(strstr(out, "prompt.logits") && strstr(out, "gen.logits"), "--dump-logits naming not in help");
}

static void t_cli_missing_model_names_the_file(void) {
    CHECK(vmed("generate --model /nonexistent/model hi", out, sizeof out, errout, sizeof errout) == 1, "exit code");
    CHECK(strstr(errout, "vmed generate: /nonexistent/model/config.json: cannot open: No such file or directory"),
          "message: %s", errout);
}

static void t_cli_tokenize_matches_fixture(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    NEED_FIXTURE(tok_json, "llama-tiny/ref/tokenization.json");
    cJSON *root;
    Error err;
    CHECK(json_load_file(&root, tok_json, 1 << 22, &err) == 0, "%s", err.msg);
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cases"), 1);
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(c, "text"));
    char *want = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "ids_with_bos"));
    char args[4096];
    snprintf(args, sizeof args, "tokenize --model '%s' '%s'", dir, text);
    int rc = vmed(args, out, sizeof out, errout, sizeof errout);
    int same = same_ids(out, want);
    free(want);
    cJSON_Delete(root);
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    CHECK(same, "ids differ: %s", out);
}

/* generate --greedy --ids on the fixture's first Alpaca prompt: the text,
 * the ids and the dumped logits against HF. */
static void t_cli_generate_matches_fixture(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    NEED_FIXTURE(gen_json, "llama-tiny/ref/generate.json");
    NEED_FIXTURE(fwd, "llama-tiny/ref/forward.safetensors");
    cJSON *root;
    Error err;
    CHECK(json_load_file(&root, gen_json, 1 << 22, &err) == 0, "%s", err.msg);
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "generations"), 0);
    const char *prompt = cJSON_GetStringValue(cJSON_GetObjectItem(g, "prompt"));
    const char *new_text = cJSON_GetStringValue(cJSON_GetObjectItem(g, "new_text"));
    char *want_ids = cJSON_PrintUnformatted(cJSON_GetObjectItem(g, "new_ids"));
    char dump[600], args[8192];
    snprintf(dump, sizeof dump, "%s/logits.safetensors", test_tmpdir());
    snprintf(args, sizeof args, "generate --model '%s' --greedy -n 32 -t 2 --ids --dump-logits '%s' '%s'", dir, dump,
             prompt);
    int rc = vmed(args, out, sizeof out, errout, sizeof errout);
    char expect[8192];
    snprintf(expect, sizeof expect, "%s\n", new_text);
    int text_ok = strncmp(out, expect, strlen(expect)) == 0;
    char *last = strrchr(out, '[');
    int ids_ok = same_ids(last, want_ids);
    free(want_ids);
    cJSON_Delete(root);
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    CHECK(text_ok, "streamed text differs from HF decode:\n%s", out);
    CHECK(ids_ok, "ids line differs: %s", last ? last : "(none)");

    SafeTensors got, ref;
    CHECK(st_open(&got, dump, &err) == 0, "%s", err.msg);
    CHECK(st_open(&ref, fwd, &err) == 0, "%s", err.msg);
    const StTensor *gl = st_find(&got, "gen.logits"), *pl = st_find(&got, "prompt.logits");
    const StTensor *want = st_find(&ref, "g0.last_logits"), *ids = st_find(&got, "gen.ids");
    int shapes_ok = gl && pl && want && ids && gl->shape[0] == 32 && gl->shape[1] == 32000 && pl->shape[0] == 76 &&
                    ids->dtype == DT_I64 && ids->shape[0] == 32;
    float diff = 1, bound = 0;
    if (shapes_ok) {
        float *a = malloc(32000 * 4), *b = malloc(32000 * 4), *c = malloc(32000 * 4);
        memcpy(a, gl->data, 32000 * 4);
        memcpy(b, want->data, 32000 * 4);
        memcpy(c, (const float *)pl->data + 75 * 32000, 32000 * 4);
        float m = max_abs(b, 32000);
        bound = 1e-4f * (m > 1 ? m : 1);
        diff = max_abs_diff(a, b, 32000);
        float d2 = max_abs_diff(c, b, 32000);
        if (d2 > diff) diff = d2;
        free(a);
        free(b);
        free(c);
    }
    st_close(&got);
    st_close(&ref);
    CHECK(shapes_ok, "dumped tensors missing or misshapen");
    CHECK(diff <= bound, "dumped last-prompt logits differ from HF by %g (bound %g)", diff, bound);
}

/* generate --beams 4 on the first Alpaca prompt: HF generate(num_beams=4)'s
 * ids from tests/data/beam_refs.json. */
static void t_cli_generate_beams_match_hf(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    NEED_FIXTURE(gen_json, "llama-tiny/ref/generate.json");
    cJSON *root, *refs;
    Error err;
    CHECK(json_load_file(&root, gen_json, 1 << 22, &err) == 0, "%s", err.msg);
    CHECK(json_load_file(&refs, VMED_SOURCE_DIR "/tests/data/beam_refs.json", 1 << 22, &err) == 0, "%s", err.msg);
    const char *prompt = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "generations"), 0), "prompt"));
    const cJSON *ref = cJSON_GetArrayItem(cJSON_GetObjectItem(refs, "llama"), 1); /* llama-tiny, 4 beams, prompt 0 */
    char *want = cJSON_PrintUnformatted(cJSON_GetObjectItem(ref, "new_ids"));
    int beams = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(ref, "num_beams"));
    char args[8192];
    snprintf(args, sizeof args, "generate --model '%s' --beams %d -n 16 --ids '%s'", dir, beams, prompt);
    int rc = vmed(args, out, sizeof out, errout, sizeof errout);
    char *last = strrchr(out, '[');
    int same = same_ids(last, want);
    free(want);
    cJSON_Delete(root);
    cJSON_Delete(refs);
    CHECK(beams == 4, "reference order changed: %d beams", beams);
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    CHECK(same, "beam ids differ from HF: %s", last ? last : out);
}

static void t_cli_prompt_longer_than_context(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    char args[2048];
    snprintf(args, sizeof args, "generate --model '%s' --ctx 8 'one two three four five six seven eight nine'", dir);
    CHECK(vmed(args, out, sizeof out, errout, sizeof errout) == 1, "exit code; stderr %s", errout);
    CHECK(strstr(errout, "vmed generate: the prompt is 10 tokens, longer than the context of 8 tokens"),
          "message: %s", errout);
}

static void t_cli_synth_then_ask(void) {
    char dir[600], args[2048];
    snprintf(dir, sizeof dir, "%s/synth-tiny", test_tmpdir());
    snprintf(args, sizeof args, "synth --out '%s' --preset tiny --seed 3", dir);
    CHECK(vmed(args, out, sizeof out, errout, sizeof errout) == 0, "synth: %s", errout);
    snprintf(args, sizeof args, "ask --llm '%s' --show-steps -n 8 --seed 1 'What is a pneumothorax?'", dir);
    CHECK(vmed(args, out, sizeof out, errout, sizeof errout) == 0, "ask: %s", errout);
    CHECK(strstr(out, "### Instruction:\nWhat is a pneumothorax?\n\n### Response:\n"), "prompt not shown: %s", out);
    CHECK(strstr(errout, "not medical advice"), "no disclaimer: %s", errout);
    char again[1 << 16];
    snprintf(again, sizeof again, "%s", out);
    vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(strcmp(again, out) == 0, "same seed, different answers:\n%s\n---\n%s", again, out);
}

/* caption on the fixture's real images: the text HF printed for
 * generate(pixel_values, max_length=20), end to end from the files. */
static void t_cli_caption_matches_fixture(void) {
    NEED_FIXTURE(dir, "git-tiny");
    NEED_FIXTURE(fj, "git-tiny/ref/forward.json");
    NEED_FIXTURE(radio, "images/radio.jpg");
    NEED_FIXTURE(bar, "images/bar.png");
    cJSON *root;
    Error err;
    CHECK(json_load_file(&root, fj, 1 << 22, &err) == 0, "%s", err.msg);
    const cJSON *runs = cJSON_GetObjectItem(root, "runs");
    char want[4096];
    snprintf(want, sizeof want, "%s: %s\n%s: %s\n", radio,
             cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(runs, 0),
                                                                          "generate_no_prompt"), "text")),
             bar,
             cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(runs, 1),
                                                                          "generate_no_prompt"), "text")));
    char *ids0 = cJSON_PrintUnformatted(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(runs, 0), "generate_no_prompt"), "ids"));
    cJSON_Delete(root);
    char args[4096];
    snprintf(args, sizeof args, "caption --model '%s' --max-length 20 -t 2 '%s' '%s'", dir, radio, bar);
    int rc = vmed(args, out, sizeof out, errout, sizeof errout);
    int same = strcmp(out, want) == 0;
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    CHECK(same, "captions differ from HF:\n%s---\n%s", out, want);
    snprintf(args, sizeof args, "caption --model '%s' --max-length 20 --json '%s'", dir, radio);
    rc = vmed(args, out, sizeof out, errout, sizeof errout);
    cJSON *obj = cJSON_Parse(out);
    char *ids = obj ? cJSON_PrintUnformatted(cJSON_GetObjectItem(obj, "ids")) : NULL;
    int ids_ok = ids && ids0 && strcmp(ids, ids0) == 0;
    free(ids);
    free(ids0);
    cJSON_Delete(obj);
    CHECK(rc == 0 && ids_ok, "--json ids differ: %s", out);
}

static void t_cli_caption_beams_match_hf(void) {
    NEED_FIXTURE(dir, "git-tiny");
    NEED_FIXTURE(radio, "images/radio.jpg");
    char args[4096];
    /* tests/data/beam_refs.json: img0, 3 beams, length_penalty 1 */
    snprintf(args, sizeof args, "caption --model '%s' --max-length 20 --beams 3 --json '%s'", dir, radio);
    int rc = vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    CHECK(strstr(out, "\"ids\":[101,5559,26666,1595,19526,25675,24466,18450,14722,484,16603,25369,24760,102]"),
          "beam ids differ from HF: %s", out);
}

static void t_cli_caption_bad_inputs(void) {
    NEED_FIXTURE(dir, "git-tiny");
    const char *txt = test_write_file("report.png", "Findings: none.\n", 16);
    char args[4096];
    snprintf(args, sizeof args, "caption --model '%s' '%s'", dir, txt);
    CHECK(vmed(args, out, sizeof out, errout, sizeof errout) == 1, "exit code: %s", errout);
    CHECK(strstr(errout, "report.png: not a PNG or JPEG image"), "message: %s", errout);
    /* a model folder whose vision config does not match its weights */
    char bad[600], cmd[2048];
    snprintf(bad, sizeof bad, "%s/git-bad", test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && for f in \"$(cd '%s' && pwd)\"/*; do ln -sf \"$f\" '%s'/; done && rm '%s/config.json' && "
             "sed 's/\"intermediate_size\": 64,/\"intermediate_size\": 96,/' '%s/config.json' > '%s/config.json'",
             bad, dir, bad, bad, dir, bad);
    CHECK(system(cmd) == 0, "could not make %s", bad);
    snprintf(args, sizeof args, "caption --model '%s' '%s'", bad, txt);
    CHECK(vmed(args, out, sizeof out, errout, sizeof errout) == 1, "exit code: %s", errout);
    CHECK(strstr(errout, "model.safetensors: tensor 'git.image_encoder.vision_model.encoder.layers.0.mlp.fc1.weight' "
                         "is 64x32 but the config says 96x32"),
          "message: %s", errout);
}

/* deplot on the fixture's charts, end to end from the files with vmed's
 * own header rendering: HF's generate(max_new_tokens=24) ids for both
 * patch budgets (forward.json), and the parsed table in --json. */
static void t_cli_deplot_matches_fixture(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    NEED_FIXTURE(fj, "pix2struct-tiny/ref/forward.json");
    NEED_FIXTURE(bar, "images/bar.png");
    NEED_FIXTURE(plot, "images/plot.jpg");
    if (access("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", R_OK) != 0) {
        test_skip("DejaVuSans.ttf (Debian fonts-dejavu-core) is not installed");
        return;
    }
    cJSON *root;
    Error err;
    CHECK(json_load_file(&root, fj, 1 << 22, &err) == 0, "%s", err.msg);
    const char *images[2] = {bar, plot}, *budgets[2] = {"512", "2048"};
    int checked = 0;
    for (int i = 0; i < 2; i++)
        for (int b = 0; b < 2; b++) {
            const cJSON *v = cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "runs"), i), "variants"), budgets[b]);
            char *want = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetObjectItem(v, "generate"), "ids"));
            char args[4096];
            snprintf(args, sizeof args, "deplot --model '%s' --max-patches %s --max-length 25 --json '%s'", dir,
                     budgets[b], images[i]);
            int rc = vmed(args, out, sizeof out, errout, sizeof errout);
            cJSON *obj = cJSON_Parse(out);
            char *got = obj ? cJSON_PrintUnformatted(cJSON_GetObjectItem(obj, "ids")) : NULL;
            int same = want && got && strcmp(want, got) == 0;
            int has_table = obj && cJSON_IsObject(cJSON_GetObjectItem(obj, "table")) &&
                            cJSON_IsArray(cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "table"), "rows"));
            free(want);
            free(got);
            cJSON_Delete(obj);
            if (rc != 0 || !same || !has_table) {
                cJSON_Delete(root);
                test_fail(__FILE__, __LINE__, "%s max_patches %s: exit %d, ids %s HF's, table %s: %s%s", images[i],
                          budgets[b], rc, same ? "equal" : "differ from", has_table ? "present" : "missing", out,
                          errout);
                return;
            }
            checked++;
        }
    cJSON_Delete(root);
    CHECK(checked == 4, "checked %d", checked);
}

static void t_cli_deplot_bad_inputs(void) {
    NEED_FIXTURE(dir, "pix2struct-tiny");
    NEED_FIXTURE(bar, "images/bar.png");
    char args[4096];
    snprintf(args, sizeof args, "deplot --model '%s' --max-patches 0 '%s'", dir, bar);
    CHECK(vmed(args, out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "option '--max-patches' wants an integer in 1..1048576, got '0'"),
          "max-patches 0: %s", errout);
    snprintf(args, sizeof args, "deplot --model '%s' --font /nonexistent/Arial.ttf '%s'", dir, bar);
    CHECK(vmed(args, out, sizeof out, errout, sizeof errout) == 1 && strstr(errout, "/nonexistent/Arial.ttf"),
          "missing font: %s", errout);
    snprintf(args, sizeof args, "deplot --model '%s' '%s'", dir, "/nonexistent/chart.png");
    CHECK(vmed(args, out, sizeof out, errout, sizeof errout) == 1 &&
              strstr(errout, "/nonexistent/chart.png: cannot open"),
          "missing image: %s", errout);
}

void suite_cli(void) {
    RUN(t_cli_deplot_matches_fixture);
    RUN(t_cli_deplot_bad_inputs);
    RUN(t_cli_caption_matches_fixture);
    RUN(t_cli_caption_beams_match_hf);
    RUN(t_cli_caption_bad_inputs);
    RUN(t_cli_usage_errors);
    RUN(t_cli_help_for_every_command);
    RUN(t_cli_missing_model_names_the_file);
    RUN(t_cli_tokenize_matches_fixture);
    RUN(t_cli_generate_matches_fixture);
    RUN(t_cli_generate_beams_match_hf);
    RUN(t_cli_prompt_longer_than_context);
    RUN(t_cli_synth_then_ask);
}
