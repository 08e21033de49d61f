#include "pipeline/expert.h"

#include <stdlib.h>
#include <string.h>

static const ExpertKind *const EXPERTS[] = {
    &EXPERT_MED_GIT,
    &EXPERT_DEPLOT,
};

ExpertOptions expert_default_options(void) {
    ExpertOptions o = {1, NULL, 1, 0, 1.0f, image_default_limits(), 0, 0, NULL, NULL};
    return o;
}

void expert_output_free(ExpertOutput *o) {
    free(o->text);
    free(o->ids);
    memset(o, 0, sizeof *o);
}

int expert_count(void) { return (int)(sizeof EXPERTS / sizeof EXPERTS[0]); }

const ExpertKind *expert_at(int i) { return i >= 0 && i < expert_count() ? EXPERTS[i] : NULL; }

const ExpertKind *expert_find(const char *name) {
    for (int i = 0; i < expert_count(); i++)
        if (strcmp(EXPERTS[i]->name, name) == 0) return EXPERTS[i];
    return NULL;
}

const ExpertKind *expert_for_class(const char *router_class) {
    for (int i = 0; i < expert_count(); i++)
        if (strcmp(EXPERTS[i]->router_class, router_class) == 0) return EXPERTS[i];
    return NULL;
}
