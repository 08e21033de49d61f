/* The Alpaca templates, byte for byte: against DESIGN.md when it is at
 * hand, and against the filled prompts that HF tokenized in the fixtures. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "formats/json_util.h"
#include "pipeline/prompt.h"
#include "test.h"

void suite_prompt(void);

static void t_prompt_matches_fixture_texts(void) {
    NEED_FIXTURE(path, "llama-tiny/ref/generate.json");
    cJSON *root;
    Error err;
    CHECK(json_load_file(&root, path, 1 << 22, &err) == 0, "%s", err.msg);
    /* The fixture's two generation prompts are the with-input template
     * filled with these questions and captions. */
    const char *q[2] = {"What does the image show?", NULL};
    const char *cap[2] = {"Frontal chest radiograph demonstrating cardiomegaly.", NULL};
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "generations"), 0);
    const char *want = cJSON_GetStringValue(cJSON_GetObjectItem(g, "prompt"));
    char *got = prompt_alpaca(q[0], cap[0]);
    int same = want && got && strcmp(got, want) == 0;
    free(got);
    cJSON_Delete(root);
    CHECK(same, "filled template differs from the fixture prompt");
}

/* The templates as DESIGN.md spells them (\n written as two characters). */
static void t_prompt_matches_design_doc(void) {
    NEED_FIXTURE(readme, "README.md");
    char design[1200];
    snprintf(design, sizeof design, "%.*s/../DESIGN.md", (int)(strlen(readme) - strlen("/README.md")), readme);
    char *text;
    Error err;
    if (file_read_all(design, 1 << 20, &text, NULL, &err)) {
        test_skip("DESIGN.md not beside the fixtures (%s)", err.msg);
        return;
    }
    char *with = prompt_alpaca("{question}", "{image_caption}");
    char *without = prompt_alpaca("{question}", NULL);
    int found = 0;
    for (int k = 0; k < 2; k++) {
        const char *p = k == 0 ? with : without;
        char esc[1024];
        size_t n = 0;
        for (; *p && n + 3 < sizeof esc; p++) {
            if (*p == '\n') {
                esc[n++] = '\\';
                esc[n++] = 'n';
            } else {
                esc[n++] = *p;
            }
        }
        esc[n] = 0;
        /* each template is a whole line in the doc */
        char line[1100];
        snprintf(line, sizeof line, "\n%s\n", esc);
        found += strstr(text, line) != NULL;
    }
    free(with);
    free(without);
    free(text);
    CHECK(found == 2, "%d of 2 templates found verbatim in DESIGN.md", found);
}

void suite_prompt(void) {
    RUN(t_prompt_matches_fixture_texts);
    RUN(t_prompt_matches_design_doc);
}
