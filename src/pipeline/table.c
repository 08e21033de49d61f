#include "pipeline/table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trimmed_copy(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    memcpy(out, s, n);
    out[n] = 0;
    return out;
}

/* The length of the line at s, and where the next one starts: a newline or
 * the literal "<0x0A>" ends a line. */
static size_t line_length(const char *s, const char **next) {
    size_t n = 0;
    for (;; n++) {
        if (s[n] == 0) {
            *next = s + n;
            return n;
        }
        if (s[n] == '\n') {
            *next = s + n + 1;
            return n;
        }
        if (strncmp(s + n, "<0x0A>", 6) == 0) {
            *next = s + n + 6;
            return n;
        }
    }
}

static int add_row(Table *t, const char *line, size_t len, Error *err) {
    TableRow *rows = realloc(t->rows, sizeof *rows * (size_t)(t->n_rows + 1));
    if (!rows) return error_set(err, "out of memory");
    t->rows = rows;
    TableRow *r = &t->rows[t->n_rows++];
    r->n_cells = 0;
    r->cells = NULL;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && line[i] != '|') continue;
        char **cells = realloc(r->cells, sizeof *cells * (size_t)(r->n_cells + 1));
        if (!cells) return error_set(err, "out of memory");
        r->cells = cells;
        if (!(r->cells[r->n_cells] = trimmed_copy(line + start, i - start))) return error_set(err, "out of memory");
        r->n_cells++;
        start = i + 1;
    }
    return 0;
}

int table_parse(Table *t, const char *text, Error *err) {
    memset(t, 0, sizeof *t);
    const char *p = text, *next;
    int first = 1;
    while (*p) {
        size_t len = line_length(p, &next);
        char *probe = trimmed_copy(p, len);
        if (!probe) goto oom;
        int empty = probe[0] == 0, is_title = first && strncmp(probe, "TITLE", 5) == 0;
        if (is_title) {
            const char *bar = strchr(probe, '|');
            t->title = bar ? trimmed_copy(bar + 1, strlen(bar + 1)) : trimmed_copy("", 0);
            free(probe);
            if (!t->title) goto oom;
        } else {
            free(probe);
            if (!empty && add_row(t, p, len, err)) {
                table_free(t);
                return -1;
            }
        }
        if (!empty) first = 0;
        p = next;
    }
    return 0;
oom:
    table_free(t);
    return error_set(err, "out of memory");
}

void table_free(Table *t) {
    for (int i = 0; i < t->n_rows; i++) {
        for (int j = 0; j < t->rows[i].n_cells; j++) free(t->rows[i].cells[j]);
        free(t->rows[i].cells);
    }
    free(t->rows);
    free(t->title);
    memset(t, 0, sizeof *t);
}

/* Display width of UTF-8 text: one column per code point, enough for the
 * labels and numbers charts carry. */
static int text_width(const char *s) {
    int w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

char *table_format(const Table *t) {
    int n_cols = 0;
    for (int i = 0; i < t->n_rows; i++)
        if (t->rows[i].n_cells > n_cols) n_cols = t->rows[i].n_cells;
    int *width = calloc((size_t)(n_cols ? n_cols : 1), sizeof *width);
    size_t cap = 64 + (t->title ? strlen(t->title) : 0);
    for (int i = 0; i < t->n_rows; i++)
        for (int j = 0; j < t->rows[i].n_cells; j++) {
            int w = text_width(t->rows[i].cells[j]);
            if (w > width[j]) width[j] = w;
            cap += strlen(t->rows[i].cells[j]);
        }
    for (int j = 0; j < n_cols; j++) cap += (size_t)(width[j] + 3) * (size_t)(t->n_rows + 1);
    char *out = malloc(cap);
    if (!out || !width) {
        free(width);
        free(out);
        return NULL;
    }
    size_t n = 0;
    out[0] = 0;
    if (t->title) n += (size_t)snprintf(out + n, cap - n, "title: %s\n", t->title);
    for (int i = 0; i < t->n_rows; i++) {
        for (int j = 0; j < t->rows[i].n_cells; j++) {
            const char *c = t->rows[i].cells[j];
            int pad = j + 1 < t->rows[i].n_cells ? width[j] - text_width(c) : 0;
            n += (size_t)snprintf(out + n, cap - n, "%s%s%*s", j ? " | " : "", c, pad, "");
        }
        n += (size_t)snprintf(out + n, cap - n, "\n");
    }
    free(width);
    return out;
}

cJSON *table_to_json(const Table *t) {
    cJSON *obj = cJSON_CreateObject();
    if (!obj) return NULL;
    if (t->title) cJSON_AddStringToObject(obj, "title", t->title);
    else cJSON_AddNullToObject(obj, "title");
    cJSON *header = cJSON_AddArrayToObject(obj, "header"), *rows = cJSON_AddArrayToObject(obj, "rows");
    for (int i = 0; i < t->n_rows; i++) {
        cJSON *dst = header;
        if (i > 0) {
            dst = cJSON_CreateArray();
            cJSON_AddItemToArray(rows, dst);
        }
        for (int j = 0; j < t->rows[i].n_cells; j++) cJSON_AddItemToArray(dst, cJSON_CreateString(t->rows[i].cells[j]));
    }
    return obj;
}
