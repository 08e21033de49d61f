/* The pipeline: the prompt manager's fitting, and ask's routes (radiology,
 * chart, other, no image) with the fixture models, checking the exact
 * prompt that reaches the LLM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "models/llama_gguf.h"
#include "models/pix2struct_synth.h"
#include "pipeline/ask.h"
#include "text/t5.h"
#include "test.h"

void suite_ask(void);

static const char QUESTION[] = "What is seen and what should be done?";

/* A long expert text: numbered findings, with a multi-byte character in
 * every line so that cuts land inside characters too. */
static char *long_caption(int lines) {
    char *s = malloc((size_t)lines * 64 + 1);
    size_t n = 0;
    for (int i = 0; i < lines; i++)
        n += (size_t)sprintf(s + n, "finding %d: opacity \xc2\xb1 %d mm in the left lung; ", i, i * 7 % 50);
    s[n] = 0;
    return s;
}

static void t_prompt_fits_without_cutting(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    Tokenizer *tok;
    Error err;
    CHECK(tokenizer_load(&tok, dir, &err) == 0, "%s", err.msg);
    Prompt p;
    int rc = prompt_build(&p, tok, QUESTION, "a chest x-ray", 400, &err);
    char *want = prompt_alpaca(QUESTION, "a chest x-ray");
    int *ids, n;
    tokenizer_encode(tok, want, 1, &ids, &n, &err);
    int same = rc == 0 && strcmp(p.text, want) == 0 && p.n_ids == n && memcmp(p.ids, ids, sizeof(int) * n) == 0;
    int kept = p.caption_kept == p.caption_len && p.caption_len == strlen("a chest x-ray");
    free(ids);
    free(want);
    prompt_free(&p);
    tokenizer_free(tok);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(same, "a prompt that fits must be the template, tokenized as is");
    CHECK(kept, "nothing may be cut from a caption that fits");
}

/* Cut prompts keep the instruction and the response header, take at most
 * the budget, and keep the longest prefix of the caption that fits. */
static void t_prompt_cuts_the_expert_text(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    Tokenizer *tok;
    Error err;
    CHECK(tokenizer_load(&tok, dir, &err) == 0, "%s", err.msg);
    char *cap = long_caption(200);
    int budgets[] = {384, 150, 80};
    for (int b = 0; b < 3; b++) {
        Prompt p;
        int rc = prompt_build(&p, tok, QUESTION, cap, budgets[b], &err);
        if (rc) {
            free(cap);
            tokenizer_free(tok);
        }
        CHECK(rc == 0, "budget %d: %s", budgets[b], err.msg);
        size_t k = p.caption_kept;
        /* the text is the template with the kept prefix and the cut mark */
        char *prefix = malloc(strlen(cap) + strlen(PROMPT_CUT_MARK) + 1);
        memcpy(prefix, cap, k);
        strcpy(prefix + k, PROMPT_CUT_MARK);
        char *want = prompt_alpaca(QUESTION, prefix);
        int same = strcmp(p.text, want) == 0;
        int utf8_ok = ((unsigned char)cap[k] & 0xC0) != 0x80;
        /* one more character would not fit */
        size_t next = k + 1;
        while (((unsigned char)cap[next] & 0xC0) == 0x80) next++;
        memcpy(prefix, cap, next);
        strcpy(prefix + next, PROMPT_CUT_MARK);
        free(want);
        want = prompt_alpaca(QUESTION, prefix);
        int *ids, n;
        tokenizer_encode(tok, want, 1, &ids, &n, &err);
        free(ids);
        free(want);
        free(prefix);
        int n_ids = p.n_ids, len = (int)p.caption_len;
        int head = strstr(p.text, "### Instruction:\nWhat is seen") != NULL;
        int tail = strlen(p.text) > 16 && strcmp(p.text + strlen(p.text) - 16, "\n\n### Response:\n") == 0;
        prompt_free(&p);
        if (!(same && utf8_ok && n > budgets[b] && n_ids <= budgets[b] && k < (size_t)len && head && tail)) {
            free(cap);
            tokenizer_free(tok);
        }
        CHECK(k < (size_t)len, "budget %d: the caption should have been cut", budgets[b]);
        CHECK(n_ids <= budgets[b], "budget %d: the prompt has %d tokens", budgets[b], n_ids);
        CHECK(same, "budget %d: the prompt is not the template with the kept prefix and the cut mark", budgets[b]);
        CHECK(utf8_ok, "budget %d: the cut splits a UTF-8 character", budgets[b]);
        CHECK(n > budgets[b], "budget %d: one more character (%d tokens) would still fit: not the longest prefix",
              budgets[b], n);
        CHECK(head && tail, "budget %d: the instruction or the response header was cut", budgets[b]);
    }
    free(cap);
    tokenizer_free(tok);
}

static void t_prompt_refuses_what_cannot_fit(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    Tokenizer *tok;
    Error err;
    CHECK(tokenizer_load(&tok, dir, &err) == 0, "%s", err.msg);
    Prompt p;
    int empty = prompt_build(&p, tok, " \n\t", "text", 100, &err);
    char msg1[256];
    snprintf(msg1, sizeof msg1, "%s", err.msg);
    char *q = long_caption(20);
    int full = prompt_build(&p, tok, q, "x", 100, &err);
    free(q);
    tokenizer_free(tok);
    CHECK(empty && strcmp(msg1, "the question is empty") == 0, "got '%s'", msg1);
    const char *want = "the question is too long: the prompt needs ";
    CHECK(full && strncmp(err.msg, want, strlen(want)) == 0 &&
              strstr(err.msg, "tokens without any image text, but only 100 fit (the context less the tokens kept "
                              "for the answer)"),
          "got '%s'", err.msg);
}

/* --------------------------------------------------------------- routes */

typedef struct {
    Assistant a;
    int open;
} Fx;

static int open_fx(Fx *fx, const char *expert, Error *err) {
    AssistantConfig c;
    assistant_config_init(&c);
    c.llm = fixture_path("llama-tiny");
    for (int i = 0; i < expert_count(); i++) {
        if (strcmp(expert_at(i)->name, "med-git") == 0) c.expert_dirs[i] = fixture_path("git-tiny");
        if (strcmp(expert_at(i)->name, "deplot") == 0) c.expert_dirs[i] = fixture_path("pix2struct-tiny");
    }
    c.expert = expert;
    c.expert_options.font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    c.n_threads = 2;
    fx->open = assistant_open(&fx->a, &c, err) == 0;
    return fx->open ? 0 : -1;
}

static AskOptions greedy(int n) {
    AskOptions o = {generate_defaults(), 1, 0, NULL, NULL};
    o.gen.sampling.greedy = 1;
    o.gen.max_new_tokens = n;
    return o;
}

/* Reads the image through expert (NULL: the router), then checks the
 * reading's expert and text, and that the prompt reaching the LLM is the
 * template filled with that text, tokenized. */
static void check_route(const char *image, const char *expert, const char *want_expert, const char *want_text,
                        const char *want_route) {
    Error err;
    Fx fx;
    const char *img = fixture_path(image);
    CHECK(img && fixture_path("git-tiny") && fixture_path("pix2struct-tiny") && fixture_path("llama-tiny"),
          "fixtures");
    CHECK(open_fx(&fx, expert, &err) == 0, "%s", err.msg);
    ImageReading r;
    int rc = assistant_read_image(&fx.a, img, &r, &err);
    AskResult res = {0};
    AskOptions o = greedy(4);
    int arc = rc ? -1 : assistant_answer(&fx.a, QUESTION, &r, &o, &res, &err);
    char *want = prompt_alpaca(QUESTION, want_text ? want_text : PROMPT_IMAGE_UNREAD);
    int *ids = NULL, n = 0;
    tokenizer_encode(fx.a.llm.tok, want, 1, &ids, &n, &err);
    int ok_expert = rc == 0 && (want_expert ? r.expert && strcmp(r.expert->name, want_expert) == 0 : !r.expert);
    int ok_text = rc == 0 && (want_text ? r.text && strcmp(r.text, want_text) == 0 : !r.text);
    int ok_route = rc == 0 && strcmp(r.route, want_route) == 0;
    int ok_prompt = arc == 0 && strcmp(res.prompt.text, want) == 0 && res.prompt.n_ids == n &&
                    memcmp(res.prompt.ids, ids, sizeof(int) * (size_t)n) == 0;
    int ok_answer = arc == 0 && res.answer.n_new == 4 && res.answer.text;
    char got_text[200];
    snprintf(got_text, sizeof got_text, "%s", rc == 0 && r.text ? r.text : "(none)");
    free(ids);
    free(want);
    ask_result_free(&res);
    if (rc == 0) image_reading_free(&r);
    assistant_close(&fx.a);
    CHECK(rc == 0 && arc == 0, "%s", err.msg);
    CHECK(ok_route, "%s: route '%s', expected '%s'", image, r.route, want_route);
    CHECK(ok_expert, "%s: expert %s, expected %s", image, r.expert ? r.expert->name : "none",
          want_expert ? want_expert : "none");
    CHECK(ok_text, "%s: expert text '%s'", image, got_text);
    CHECK(ok_prompt, "%s: the prompt reaching the LLM is not the template filled with the expert text", image);
    CHECK(ok_answer, "%s: no answer of 4 tokens", image);
}

/* The fixture's greedy GIT caption of radio.jpg (ref/forward.json). */
static const char RADIO_CAPTION[] =
    "tumors iihf blending fame childrengivingiled grape [unused479] imagining spells stride newcastle mary youthful";
/* The fixture's greedy DePlot text for bar.png, max_patches 2048. */
static const char BAR_TABLE[] = "holeter follow 57\xef\xbf\xbd\x1e\xef\xbf\xbd para\xef\xbf\xbd herniacross";

static void t_ask_radiology_route(void) {
    NEED_FIXTURE(dir, "images/radio.jpg");
    check_route("images/radio.jpg", "med-git", "med-git", RADIO_CAPTION, "");
}

static void t_ask_chart_route(void) {
    NEED_FIXTURE(dir, "images/bar.png");
    check_route("images/bar.png", "deplot", "deplot", BAR_TABLE, "");
}

static void t_ask_other_route(void) {
    NEED_FIXTURE(dir, "images/model.png");
    check_route("images/model.png", "none", NULL, NULL, "");
}

/* The shipped router sends the seed images where the original would. */
static void t_ask_router_routes(void) {
    NEED_FIXTURE(dir, "images/radio.jpg");
    check_route("images/radio.jpg", NULL, "med-git", RADIO_CAPTION, "radiology");
    if (test_failed()) return;
    check_route("images/bar.png", NULL, "deplot", BAR_TABLE, "chart");
    if (test_failed()) return;
    check_route("images/model.png", NULL, NULL, NULL, "other");
}

static void t_ask_without_image(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    Error err;
    Fx fx;
    CHECK(open_fx(&fx, NULL, &err) == 0, "%s", err.msg);
    AskResult res;
    AskOptions o = greedy(3);
    int rc = assistant_answer(&fx.a, QUESTION, NULL, &o, &res, &err);
    char *want = prompt_alpaca(QUESTION, NULL);
    int same = rc == 0 && strcmp(res.prompt.text, want) == 0;
    free(want);
    if (rc == 0) ask_result_free(&res);
    assistant_close(&fx.a);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(same, "without an image the prompt must be the instruction-only template");
}

/* An expert whose model folder is broken is an error naming the expert;
 * an image that is not one is an error naming the file. */
static void t_ask_bad_expert_and_image(void) {
    NEED_FIXTURE(llm, "llama-tiny");
    NEED_FIXTURE(img, "images/radio.jpg");
    Error err;
    AssistantConfig c;
    assistant_config_init(&c);
    c.llm = llm;
    const char *bad = test_write_file("config.json", "{\"model_type\": ", 15);
    char dir[1024];
    snprintf(dir, sizeof dir, "%.*s", (int)(strlen(bad) - strlen("/config.json")), bad);
    for (int i = 0; i < expert_count(); i++) c.expert_dirs[i] = dir;
    c.expert = "med-git";
    Assistant a;
    CHECK(assistant_open(&a, &c, &err) == 0, "%s", err.msg);
    ImageReading r;
    int rc = assistant_read_image(&a, img, &r, &err);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", err.msg);
    const char *notimg = test_write_file("notes.png", "this is text, not a PNG", 23);
    int rc2 = assistant_read_image(&a, notimg, &r, &err);
    assistant_close(&a);
    CHECK(rc != 0 && strncmp(msg, "expert med-git: ", 16) == 0 && strstr(msg, "config.json"),
          "broken expert: got '%s'", msg);
    CHECK(rc2 != 0 && strstr(err.msg, "notes.png"), "not an image: got '%s'", err.msg);
}

/* A missing expert model is not a failure: the image goes to the LLM
 * unread, with a note saying what is missing; a half-downloaded one is
 * never used. */
static void t_ask_missing_expert_is_a_note(void) {
    NEED_FIXTURE(llm, "llama-tiny");
    NEED_FIXTURE(img, "images/radio.jpg");
    char models[900], part[1100];
    snprintf(models, sizeof models, "%s/models-missing", test_tmpdir());
    setenv("VMED_MODELS", models, 1);
    Error err;
    AssistantConfig c;
    assistant_config_init(&c);
    c.llm = llm;
    c.expert = "med-git";
    Assistant a;
    int rc = assistant_open(&a, &c, &err);
    ImageReading r = {0};
    if (rc == 0) rc = assistant_read_image(&a, img, &r, &err);
    char note1[1024], want[1024];
    snprintf(note1, sizeof note1, "%s", r.note);
    snprintf(want, sizeof want,
             "no med-git model in %s/med-git (get one with: vmed pull REPO --role med-git, or pass --med-git DIR)",
             models);
    int unread = rc == 0 && !r.expert && !r.text && r.expert_missing;
    /* now a folder with a half-downloaded weights file */
    snprintf(part, sizeof part, "mkdir -p '%s/med-git/acme--git' && cp '%s/config.json' '%s/med-git/acme--git/' && "
                                "echo x > '%s/med-git/acme--git/model.safetensors.part'",
             models, fixture_path("git-tiny"), models, models);
    int sh = system(part);
    ImageReading r2 = {0};
    int rc2 = rc == 0 ? assistant_read_image(&a, img, &r2, &err) : -1;
    if (rc == 0) assistant_close(&a);
    unsetenv("VMED_MODELS");
    CHECK(rc == 0, "%s", err.msg);
    CHECK(unread, "a missing expert must leave the image unread, not fail");
    CHECK(strcmp(note1, want) == 0, "note '%s'", note1);
    CHECK(sh == 0 && rc2 == 0 && !r2.expert && strstr(r2.note, "incomplete"), "half-downloaded: note '%s'", r2.note);
}

/* ask with a LoRA: the fixture's Alpaca prompt, given as an expert's text,
 * answered greedily by llama-tiny + the adapter: HF's ids, as text. */
static void t_ask_with_lora_matches_hf(void) {
    NEED_FIXTURE(llm, "llama-tiny");
    NEED_FIXTURE(lora, "llama-tiny-lora");
    NEED_FIXTURE(gj, "llama-tiny-lora/ref/generate.json");
    char *json;
    Error err;
    CHECK(file_read_all(gj, 1 << 22, &json, NULL, &err) == 0, "%s", err.msg);
    cJSON *root = cJSON_Parse(json);
    free(json);
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "generations"), 0);
    char want_prompt[2048], want_text[2048];
    snprintf(want_prompt, sizeof want_prompt, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(g, "prompt")));
    snprintf(want_text, sizeof want_text, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(g, "new_text")));
    int n_new = cJSON_GetArraySize(cJSON_GetObjectItem(g, "new_ids"));
    cJSON_Delete(root);
    AssistantConfig c;
    assistant_config_init(&c);
    c.llm = llm;
    c.lora = lora;
    c.n_threads = 2;
    Assistant a;
    CHECK(assistant_open(&a, &c, &err) == 0, "%s", err.msg);
    ImageReading r = {0};
    r.text = "Frontal chest radiograph demonstrating cardiomegaly.";
    AskResult res;
    AskOptions o = greedy(n_new);
    int rc = assistant_answer(&a, "What does the image show?", &r, &o, &res, &err);
    int same_prompt = rc == 0 && strcmp(res.prompt.text, want_prompt) == 0;
    int same_text = rc == 0 && strcmp(res.answer.text, want_text) == 0;
    int lora_on = a.llm.lora != NULL;
    if (rc == 0) ask_result_free(&res);
    assistant_close(&a);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(lora_on, "the adapter was not loaded");
    CHECK(same_prompt, "the prompt differs from the fixture's");
    CHECK(same_text, "the answer differs from HF's greedy continuation with the adapter");
}

/* The demo's DePlot is `vmed synth --arch pix2struct`: its synthetic T5
 * vocabulary must load as DePlot's does and round-trip text. */
static void t_synth_pix2struct_has_a_t5_vocabulary(void) {
    char dir[900];
    snprintf(dir, sizeof dir, "%s/synth-p2s", test_tmpdir());
    Error err;
    CHECK(pix2struct_synth_write("tiny", DT_F32, 1, dir, &err) == 0, "%s", err.msg);
    T5Tokenizer *t;
    CHECK(t5_load(&t, dir, &err) == 0, "%s", err.msg);
    const char *text = "The chart shows 12 values | 3.5 (max) and a \xc2\xb1 sign";
    int *ids = NULL, n = 0;
    char *back = NULL;
    int rc = t5_encode(t, text, 1, &ids, &n, &err);
    if (rc == 0) rc = t5_decode(t, ids, n, 1, &back, &err);
    int vocab = t5_vocab_size(t), eos = t5_eos(t), pad = t5_pad(t);
    int same = rc == 0 && strcmp(back, text) == 0, ends = rc == 0 && n > 0 && ids[n - 1] == eos;
    free(ids);
    free(back);
    t5_free(t);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(vocab == 2100 && eos == 1 && pad == 0, "vocab %d eos %d pad %d", vocab, eos, pad);
    CHECK(ends, "T5 appends </s>");
    CHECK(same, "decode(encode(text)) != text");
}

/* --llm takes a GGUF file too: the same prompt and greedy answer as the
 * HF folder it was converted from (f32: the same numbers). */
static void t_ask_with_gguf_llm(void) {
    NEED_FIXTURE(llm, "llama-tiny");
    char gguf[900];
    snprintf(gguf, sizeof gguf, "%s/ask-llm.gguf", test_tmpdir());
    Error err;
    CHECK(llama_convert_gguf(llm, gguf, gguf_out_type("f32"), &err) == 0, "%s", err.msg);
    char *text[2] = {NULL, NULL};
    int n_ids[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        AssistantConfig c;
        assistant_config_init(&c);
        c.llm = k == 0 ? llm : gguf;
        Assistant a;
        CHECK(assistant_open(&a, &c, &err) == 0, "%s: %s", c.llm, err.msg);
        ImageReading r = {0};
        r.text = "Frontal chest radiograph demonstrating cardiomegaly.";
        AskResult res;
        AskOptions o = greedy(16);
        int rc = assistant_answer(&a, "What does the image show?", &r, &o, &res, &err);
        if (rc == 0) {
            text[k] = strdup(res.answer.text);
            n_ids[k] = res.prompt.n_ids;
            ask_result_free(&res);
        }
        assistant_close(&a);
        CHECK(rc == 0, "%s", err.msg);
    }
    int same = strcmp(text[0], text[1]) == 0 && n_ids[0] == n_ids[1];
    free(text[0]);
    free(text[1]);
    CHECK(same, "the GGUF LLM answers differently from its HF folder");
}

void suite_ask(void) {
    RUN(t_synth_pix2struct_has_a_t5_vocabulary);
    RUN(t_prompt_fits_without_cutting);
    RUN(t_prompt_cuts_the_expert_text);
    RUN(t_prompt_refuses_what_cannot_fit);
    RUN(t_ask_radiology_route);
    RUN(t_ask_chart_route);
    RUN(t_ask_other_route);
    RUN(t_ask_router_routes);
    RUN(t_ask_without_image);
    RUN(t_ask_with_lora_matches_hf);
    RUN(t_ask_with_gguf_llm);
    RUN(t_ask_bad_expert_and_image);
    RUN(t_ask_missing_expert_is_a_note);
}
