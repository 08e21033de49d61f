/* DePlot's linearised tables: parsing, display and JSON. */
#include <stdlib.h>
#include <string.h>

#include "pipeline/table.h"
#include "test.h"

void suite_table(void);

static void t_table_parse_deplot_text(void) {
    /* as the slow tokenizer decodes it (real newlines) and as fast
     * tokenizers leave it (the literal <0x0A>) */
    const char *texts[2] = {"TITLE | Papule count\nYear | Treated | Placebo\n2019 | 10 | 12\n2020 |  4 | 11 \n",
                            "TITLE | Papule count<0x0A>Year | Treated | Placebo<0x0A>2019 | 10 | 12<0x0A>2020 |  4 | 11 "};
    for (int k = 0; k < 2; k++) {
        Table t;
        Error err;
        CHECK(table_parse(&t, texts[k], &err) == 0, "%s", err.msg);
        CHECK(t.title && strcmp(t.title, "Papule count") == 0, "title '%s'", t.title ? t.title : "(null)");
        CHECK(t.n_rows == 3 && t.rows[0].n_cells == 3 && t.rows[2].n_cells == 3, "shape %d rows", t.n_rows);
        CHECK(strcmp(t.rows[0].cells[2], "Placebo") == 0 && strcmp(t.rows[2].cells[1], "4") == 0 &&
                  strcmp(t.rows[2].cells[2], "11") == 0,
              "cells not trimmed: '%s' '%s'", t.rows[2].cells[1], t.rows[2].cells[2]);
        char *s = table_format(&t);
        const char *want = "title: Papule count\nYear | Treated | Placebo\n2019 | 10      | 12\n2020 | 4       | 11\n";
        int same = s && strcmp(s, want) == 0;
        if (!same) test_fail(__FILE__, __LINE__, "aligned text:\n%s", s ? s : "(null)");
        free(s);
        cJSON *j = table_to_json(&t);
        char *js = cJSON_PrintUnformatted(j);
        const char *want_json = "{\"title\":\"Papule count\",\"header\":[\"Year\",\"Treated\",\"Placebo\"],"
                                "\"rows\":[[\"2019\",\"10\",\"12\"],[\"2020\",\"4\",\"11\"]]}";
        int json_ok = js && strcmp(js, want_json) == 0;
        if (!json_ok) test_fail(__FILE__, __LINE__, "json: %s", js ? js : "(null)");
        free(js);
        cJSON_Delete(j);
        table_free(&t);
        if (test_failed()) return;
    }
}

static void t_table_odd_text(void) {
    Table t;
    Error err;
    CHECK(table_parse(&t, "", &err) == 0 && t.n_rows == 0 && !t.title, "empty text");
    table_free(&t);
    CHECK(table_parse(&t, "no bars at all\n\n|\n a | | b ", &err) == 0, "%s", err.msg);
    CHECK(!t.title && t.n_rows == 3, "rows %d", t.n_rows);
    CHECK(t.rows[0].n_cells == 1 && t.rows[1].n_cells == 2 && t.rows[2].n_cells == 3 && t.rows[2].cells[1][0] == 0,
          "cells %d %d %d", t.rows[0].n_cells, t.rows[1].n_cells, t.rows[2].n_cells);
    table_free(&t);
    CHECK(table_parse(&t, "TITLE\nx | y", &err) == 0 && t.title && t.title[0] == 0 && t.n_rows == 1, "bare TITLE");
    table_free(&t);
}

void suite_table(void) {
    RUN(t_table_parse_deplot_text);
    RUN(t_table_odd_text);
}
