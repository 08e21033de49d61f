/* libFuzzer target for the Hub's revision listing (the JSON `vmed pull`
 * gets from the server, untrusted): whatever hub_parse_listing accepts must
 * hold only paths that stay inside a model folder, and the file selection
 * must run on it. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pipeline/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int escapes(const char *p) {
    size_t n = strlen(p);
    if (!n || p[0] == '/' || strchr(p, '\\')) return 1;
    if (strcmp(p, "..") == 0 || strncmp(p, "../", 3) == 0 || strstr(p, "/../")) return 1;
    return n >= 3 && strcmp(p + n - 3, "/..") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    HubListing l;
    Error err;
    if (hub_parse_listing(&l, (const char *)data, size, "fuzz.json", &err) != 0) return 0;
    for (int i = 0; i < l.n_files; i++) {
        const char *p = l.files[i].path;
        if (escapes(p)) __builtin_trap(); /* a path leaving the model folder was accepted */
        if (l.files[i].sha256[0] && strlen(l.files[i].sha256) != 64) __builtin_trap();
    }
    const char *inc[] = {"*.json", "*"};
    hub_select(&l, NULL, 0);
    hub_select(&l, inc, 2);
    hub_listing_free(&l);
    return 0;
}
