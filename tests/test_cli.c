/* The vmed command as a user runs it: exit codes, messages, and the
 * fixture numbers coming out of `tokenize` and `generate`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "formats/json_util.h"
#include "formats/safetensors.h"
#include "pipeline/prompt.h"
#include "test.h"

void suite_cli(void);

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
    CHECK(test_vmed("", out, sizeof out, errout, sizeof errout) == 2 && strstr(errout, "usage: vmed COMMAND"),
          "no command: %s", errout);
    CHECK(test_vmed("frobnicate", out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "vmed: unknown command 'frobnicate'"),
          "unknown command: %s", errout);
    CHECK(test_vmed("generate --model x --frobnicate hi", out, sizeof out, errout, sizeof errout) == 2, "exit code");
    CHECK(strcmp(errout, "vmed generate: unknown option '--frobnicate' (see 'vmed generate --help')\n") == 0,
          "unknown option: %s", errout);
    CHECK(test_vmed("generate --model x -n many hi", out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "option '-n' wants an integer in 0..16777216, got 'many'"),
          "bad number: %s", errout);
    /* without --llm, ask looks in the models directory */
    char args[1024];
    snprintf(args, sizeof args, "ask 'why?'");
    setenv("VMED_MODELS", test_tmpdir(), 1);
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    unsetenv("VMED_MODELS");
    char want[1024];
    snprintf(want, sizeof want, "vmed ask: no llm model in %s/llm (get one with: vmed pull REPO --role llm, or pass --llm DIR)\n",
             test_tmpdir());
    CHECK(rc == 1 && strcmp(errout, want) == 0, "missing --llm: %s", errout);
    CHECK(test_vmed("tokenize --model", out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "option '--model' needs a value"),
          "missing value: %s", errout);
}

static void t_cli_help_for_every_command(void) {
    const char *cmds[] = {"ask", "generate", "tokenize", "synth", "bench"};
    for (int i = 0; i < 5; i++) {
        char args[64];
        snprintf(args, sizeof args, "%s --help", cmds[i]);
        CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 0, "%s --help failed", cmds[i]);
        CHECK(strstr(out, "usage: vmed ") != NULL, "%s --help: %s", cmds[i], out);
    }
    test_vmed("generate --help", out, sizeof out, errout, sizeof errout);
    CHECK(strstr(out, "prompt.logits") && strstr(out, "gen.logits"), "--dump-logits naming not in help");
}

static void t_cli_missing_model_names_the_file(void) {
    CHECK(test_vmed("generate --model /nonexistent/model hi", out, sizeof out, errout, sizeof errout) == 1, "exit code");
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
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
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
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
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
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
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
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 1, "exit code; stderr %s", errout);
    CHECK(strstr(errout, "vmed generate: the prompt is 10 tokens, longer than the context of 8 tokens"),
          "message: %s", errout);
}

/* `vmed synth --preset tiny` into the test directory's NAME; 0 if it worked. */
static int synth_tiny(const char *name, int seed, char *dir, size_t dir_size) {
    char args[2048];
    snprintf(dir, dir_size, "%s/%s", test_tmpdir(), name);
    snprintf(args, sizeof args, "synth --out '%s' --preset tiny --seed %d", dir, seed);
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    if (rc != 0) test_fail(__FILE__, __LINE__, "synth: %s", errout);
    return rc;
}

static void t_cli_synth_then_ask(void) {
    char dir[600], args[2048];
    if (synth_tiny("synth-tiny", 3, dir, sizeof dir)) return;
    snprintf(args, sizeof args, "ask --llm '%s' --show-steps -n 8 --seed 1 'What is a pneumothorax?'", dir);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 0, "ask: %s", errout);
    CHECK(strstr(out, "### Instruction:\nWhat is a pneumothorax?\n\n### Response:\n"), "prompt not shown: %s", out);
    CHECK(strstr(errout, "not medical advice"), "no disclaimer: %s", errout);
    CHECK(strstr(out, "--- timings: load llm "), "no timings: %s", out);
    /* the same answer again; the timings differ, so compare up to them */
    char again[1 << 16];
    snprintf(again, sizeof again, "%s", out);
    *strstr(again, "--- timings") = 0;
    test_vmed(args, out, sizeof out, errout, sizeof errout);
    char *t = strstr(out, "--- timings");
    if (t) *t = 0;
    CHECK(strcmp(again, out) == 0, "same seed, different answers:\n%s\n---\n%s", again, out);
}

/* bench on a synthesized model: the JSON names what was run, and the
 * context checks name the options. */
static void t_cli_bench_options(void) {
    char dir[600], args[2048];
    if (synth_tiny("bench-tiny", 5, dir, sizeof dir)) return;
    snprintf(args, sizeof args, "bench --model '%s' -t 2 -p 8 -n 4 -r 2 -b 3 -c 64 --json", dir);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 0, "bench: %s", errout);
    /* tiny: dim 64, 4 heads, ffn 176, 2 layers, vocab 1640. Per prompt token:
     * 2 layers x (2 x 50176 weights + 4 x 64 x (8 + 1) / 2 attention) + the
     * LM head's 2 x 1640 x 64 shared by the 8 tokens = 229248 flops. The KV
     * cache: 2 x 2 layers x 64 positions x 64 x 4 bytes = 65536. */
    CHECK(strstr(out, "\"threads\": 2,") && strstr(out, "\"pp\": 8,") && strstr(out, "\"tg\": 4,") &&
              strstr(out, "\"batch\": 3, \"ctx\": 64, \"pp_flops_per_token\": 229248, \"kv_cache_bytes\": 65536}"),
          "json: %s", out);
    /* usage errors (exit 2): the options after --model and the exact message */
    static const char *const usage[][2] = {
        {"-p 100 -n 10 -c 50", "vmed bench: -c 50 is out of range 111..512 (-p + -n + 1 .. the model's context)"},
        {"--quantize q8_0", "vmed bench: --quantize is for GIT models (--image with a GIT folder)"},
        {"-p 600 -n 10", "vmed bench: -p 600 plus -n 10 exceed the model's context of 512"},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        snprintf(args, sizeof args, "bench --model '%s' %s", dir, usage[i][0]);
        CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 2 && strstr(errout, usage[i][1]),
              "bench %s: %s", usage[i][0], errout);
    }
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
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    int same = strcmp(out, want) == 0;
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    CHECK(same, "captions differ from HF:\n%s---\n%s", out, want);
    snprintf(args, sizeof args, "caption --model '%s' --max-length 20 --json '%s'", dir, radio);
    rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
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
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    CHECK(strstr(out, "\"ids\":[101,5559,26666,1595,19526,25675,24466,18450,14722,484,16603,25369,24760,102]"),
          "beam ids differ from HF: %s", out);
}

/* --quantize q8_0 requantizes at load; on the fixture's X-ray its greedy
 * ids are those of the float model (checked, not assumed: the logits move
 * by ~1%, enough to flip a close argmax), and a type it does not offer is a
 * usage error. */
static void t_cli_caption_quantize(void) {
    NEED_FIXTURE(dir, "git-tiny");
    char args[4096], f32[8192];
    snprintf(args, sizeof args, "caption --model '%s' --json -t 2 assets/samples/chest-xray.jpg", dir);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 0, "f32: %s", errout);
    snprintf(f32, sizeof f32, "%s", out);
    snprintf(args, sizeof args, "caption --model '%s' --json -t 2 --quantize q8_0 assets/samples/chest-xray.jpg", dir);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 0, "q8_0: %s", errout);
    CHECK(strstr(out, "\"ids\":[101,") && strcmp(out, f32) == 0, "q8_0 caption differs:\n%s\nf32:\n%s", out, f32);
    snprintf(args, sizeof args, "bench --model '%s' --image assets/samples/chest-xray.jpg -n 3 -r 1 --quantize q8_0 --json",
             dir);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 0 && strstr(out, "\"dtype\": \"Q8_0\"") &&
              strstr(out, "\"tokens\": 3,"),
          "bench --quantize: %s %s", out, errout);
    snprintf(args, sizeof args, "caption --model '%s' --quantize q4_0 assets/samples/chest-xray.jpg", dir);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "vmed caption: --quantize takes q8_0, not 'q4_0'"),
          "q4_0: %s", errout);
}

static void t_cli_caption_bad_inputs(void) {
    NEED_FIXTURE(dir, "git-tiny");
    const char *txt = test_write_file("report.png", "Findings: none.\n", 16);
    char args[4096];
    snprintf(args, sizeof args, "caption --model '%s' '%s'", dir, txt);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 1, "exit code: %s", errout);
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
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 1, "exit code: %s", errout);
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
            int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
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
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "option '--max-patches' wants an integer in 1..1048576, got '0'"),
          "max-patches 0: %s", errout);
    snprintf(args, sizeof args, "deplot --model '%s' --font /nonexistent/Arial.ttf '%s'", dir, bar);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 1 && strstr(errout, "/nonexistent/Arial.ttf"),
          "missing font: %s", errout);
    snprintf(args, sizeof args, "deplot --model '%s' '%s'", dir, "/nonexistent/chart.png");
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 1 &&
              strstr(errout, "/nonexistent/chart.png: cannot open"),
          "missing image: %s", errout);
}

/* ask --image end to end: the router's class, the expert's text, and that
 * text in the prompt, as --show-steps prints them. */
static void t_cli_ask_image_shows_every_step(void) {
    NEED_FIXTURE(llm, "llama-tiny");
    NEED_FIXTURE(git, "git-tiny");
    NEED_FIXTURE(p2s, "pix2struct-tiny");
    NEED_FIXTURE(radio, "images/radio.jpg");
    char args[4096];
    snprintf(args, sizeof args,
             "ask --llm '%s' --med-git '%s' --deplot '%s' --image '%s' --show-steps --greedy -n 4 -t 2 "
             "'What is seen?'", llm, git, p2s, radio);
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    CHECK(strstr(out, "--- router: radiology (confidence "), "no route: %s", out);
    char want[1024];
    snprintf(want, sizeof want, "--- expert: med-git (%s)\n--- expert text ---\n%s\n", git,
             "tumors iihf blending fame childrengivingiled grape [unused479] imagining spells stride newcastle mary "
             "youthful");
    CHECK(strstr(out, want), "no expert text: %s", out);
    CHECK(strstr(out, "### Instruction:\nWhat is seen?\n\n### Input:\ntumors iihf blending"), "prompt: %s", out);
    CHECK(strstr(out, "--- timings: load llm ") && strstr(out, "| expert med-git load "), "timings: %s", out);
    CHECK(strstr(errout, "not medical advice"), "no disclaimer: %s", errout);
    /* Med-GIT requantized to Q8_0: on this image its caption is the float one */
    snprintf(args, sizeof args,
             "ask --llm '%s' --med-git '%s' --med-git-quantize q8_0 --expert med-git --image '%s' --show-steps "
             "--greedy -n 2 -t 2 'What is seen?'", llm, git, radio);
    rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(rc == 0 && strstr(out, want), "--med-git-quantize q8_0: exit %d: %s %s", rc, out, errout);
    snprintf(args, sizeof args, "ask --llm '%s' --med-git-quantize q4_0 'What is seen?'", llm);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "vmed ask: --med-git-quantize takes q8_0, not 'q4_0'"),
          "--med-git-quantize q4_0: %s", errout);
    /* --expert none: the image is given but unread */
    snprintf(args, sizeof args, "ask --llm '%s' --expert none --image '%s' --show-steps --greedy -n 2 'What is seen?'",
             llm, radio);
    rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    CHECK(strstr(out, "--- expert: none (no expert asked for (--expert none))") &&
              strstr(out, "### Input:\nAn image was uploaded, but no visual expert could read it"),
          "--expert none: %s", out);
    /* an expert without a model: a note on stderr, and the answer still comes */
    char models[700], note[1400];
    snprintf(models, sizeof models, "%s/no-models", test_tmpdir());
    snprintf(args, sizeof args, "ask --llm '%s' --expert med-git --image '%s' --greedy -n 2 'What is seen?'", llm, radio);
    setenv("VMED_MODELS", models, 1);
    rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    unsetenv("VMED_MODELS");
    snprintf(note, sizeof note,
             "vmed ask: note: no med-git model in %s/med-git (get one with: vmed pull REPO --role med-git, or pass "
             "--med-git DIR); the image goes to the LLM unread\n", models);
    CHECK(rc == 0 && strncmp(errout, note, strlen(note)) == 0, "missing expert: exit %d: %s", rc, errout);
}

static void t_cli_ask_bad_input(void) {
    NEED_FIXTURE(llm, "llama-tiny");
    char args[4096];
    const char *notimg = test_write_file("scan.png", "not a png at all", 16);
    snprintf(args, sizeof args, "ask --llm '%s' --expert none --image '%s' 'What is seen?'", llm, notimg);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 1 && strstr(errout, "vmed ask: ") &&
              strstr(errout, "scan.png"),
          "not an image: %s", errout);
    snprintf(args, sizeof args, "ask --llm '%s' '  '", llm);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 2 &&
              strcmp(errout, "vmed ask: the question is empty (see 'vmed ask --help')\n") == 0,
          "empty question: %s", errout);
    snprintf(args, sizeof args, "ask --llm '%s' --expert radiologist 'Why?'", llm);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "--expert must be none or an expert's name (med-git, deplot), not 'radiologist'"),
          "bad expert: %s", errout);
    /* a 1 MiB question, which only standard input can carry */
    size_t n = 1 << 20;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = "why is it so? "[i % 14];
    const char *qpath = test_write_file("question.txt", big, n);
    free(big);
    snprintf(args, sizeof args, "ask --llm '%s' - < '%s'", llm, qpath);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 1 &&
              strcmp(errout, "vmed ask: the question on standard input is longer than 256 KiB; no model context "
                             "holds it\n") == 0,
          "1 MiB question: %s", errout);
    /* one that fits in bytes but not in the context */
    snprintf(args, sizeof args, "ask --llm '%s' -n 4 \"$(head -c 20000 '%s')\"", llm, qpath);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 1 &&
              strstr(errout, "vmed ask: the question is too long: the prompt needs "),
          "long question: %s", errout);
}

/* ask --beams: HF beam search for the LLM, as `generate --beams` gives it
 * on the same filled template (whose beam ids are checked against HF). */
static void t_cli_ask_beams_as_generate(void) {
    NEED_FIXTURE(llm, "llama-tiny");
    char args[4096], ask_out[4096];
    snprintf(args, sizeof args, "ask --llm '%s' --beams 3 -n 6 'What is a pneumothorax?'", llm);
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(rc == 0, "ask exit %d: %s", rc, errout);
    snprintf(ask_out, sizeof ask_out, "%s", out);
    char *prompt = prompt_alpaca("What is a pneumothorax?", NULL);
    snprintf(args, sizeof args, "generate --model '%s' --beams 3 -n 6 '%s'", llm, prompt);
    free(prompt);
    rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(rc == 0, "generate exit %d: %s", rc, errout);
    /* ask ends the answer with one newline of its own after the text */
    CHECK(strlen(ask_out) > 1 && strncmp(ask_out, out, strlen(out) - 1) == 0, "ask: '%s'\ngenerate: '%s'", ask_out,
          out);
}

/* chat: commands and questions from standard input, models loaded once. */
static void t_cli_chat_session(void) {
    NEED_FIXTURE(llm, "llama-tiny");
    NEED_FIXTURE(git, "git-tiny");
    NEED_FIXTURE(radio, "images/radio.jpg");
    char script[2048], args[4096];
    int n = snprintf(script, sizeof script,
                     "/image %s\nWhat is seen?\n\n/noimage\nWhat is a pneumothorax?\n/image /nonexistent.png\n"
                     "/frobnicate\n/quit\nnot reached\n", radio);
    const char *in = test_write_file("chat.txt", script, (size_t)n);
    snprintf(args, sizeof args, "chat --llm '%s' --med-git '%s' --greedy -n 3 < '%s'", llm, git, in);
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(rc == 0, "exit %d: %s", rc, errout);
    CHECK(strstr(out, "[med-git read the image as radiology]\n"), "image not read: %s", out);
    int answers = 0;
    for (const char *p = errout; (p = strstr(p, "not medical advice")); p++) answers++;
    CHECK(answers == 2, "%d answers, expected 2: %s", answers, errout);
    CHECK(strstr(errout, "/nonexistent.png") && strstr(errout, "vmed chat: unknown command '/frobnicate'"),
          "errors: %s", errout);
}

void suite_cli(void) {
    RUN(t_cli_ask_image_shows_every_step);
    RUN(t_cli_ask_bad_input);
    RUN(t_cli_ask_beams_as_generate);
    RUN(t_cli_chat_session);
    RUN(t_cli_deplot_matches_fixture);
    RUN(t_cli_deplot_bad_inputs);
    RUN(t_cli_caption_matches_fixture);
    RUN(t_cli_caption_beams_match_hf);
    RUN(t_cli_caption_bad_inputs);
    RUN(t_cli_caption_quantize);
    RUN(t_cli_usage_errors);
    RUN(t_cli_help_for_every_command);
    RUN(t_cli_missing_model_names_the_file);
    RUN(t_cli_tokenize_matches_fixture);
    RUN(t_cli_generate_matches_fixture);
    RUN(t_cli_generate_beams_match_hf);
    RUN(t_cli_prompt_longer_than_context);
    RUN(t_cli_synth_then_ask);
    RUN(t_cli_bench_options);
}
