/* DePlot's linearised tables: "TITLE | t\nh1 | h2\nv1 | v2\n...": rows on
 * newlines, cells on '|', an optional first "TITLE | ..." line. Parsed for
 * display (aligned text) and for --json. */
#ifndef VMED_PIPELINE_TABLE_H
#define VMED_PIPELINE_TABLE_H

#include <cjson/cJSON.h>

#include "base/error.h"

typedef struct {
    int n_cells;
    char **cells;
} TableRow;

typedef struct {
    char *title;    /* NULL when the text has no TITLE line */
    TableRow *rows; /* rows[0] is the header when n_rows > 0 */
    int n_rows;
} Table;

/* Splits text (as decoded; a literal "<0x0A>", which HF fast tokenizers
 * leave in, also counts as a newline). Cells are trimmed; empty lines are
 * skipped. Never fails on odd text: a line without '|' is a one-cell row. */
int table_parse(Table *t, const char *text, Error *err);
void table_free(Table *t);

/* Aligned columns, the title on its own line first ("title: ..."). */
char *table_format(const Table *t);
/* {"title": ..., "header": [...], "rows": [[...], ...]} */
cJSON *table_to_json(const Table *t);

#endif
