/* The expert registry: a visual expert turns an image into text for the
 * prompt manager. An expert is a name, the router class it serves, and
 * load / describe / free functions; adding one is one new file plus one
 * line in expert.c. */
#ifndef VMED_PIPELINE_EXPERT_H
#define VMED_PIPELINE_EXPERT_H

#include "base/error.h"
#include "base/threads.h"
#include "image/image.h"

typedef struct {
    int n_threads;
    ThreadPool *pool;   /* borrowed, shared with the caller's other models; NULL: the expert makes its own of n_threads */
    int num_beams;      /* 1: greedy */
    int max_length;     /* HF max_length (counts the decoder's start token); 0: the model's default */
    float length_penalty;
    ImageLimits limits;
    /* Med-GIT only: 1 requantizes its matrices to Q8_0 at load (GIT
     * checkpoints exist in F32/F16 only; see git_quantize) */
    int q8_0;
    /* DePlot (Pix2Struct) only */
    int max_patches;        /* 0: 2048, what Pix2StructProcessor passes unless told */
    const char *header;     /* NULL: DePlot's "Generate underlying data table of the figure below:" */
    const char *font_path;  /* NULL: the renderer's default */
} ExpertOptions;

ExpertOptions expert_default_options(void);

typedef struct {
    char *text;  /* what the expert read from the image, for the prompt */
    int *ids;    /* the generated ids as HF generate() returns them */
    int n_ids;
} ExpertOutput;

void expert_output_free(ExpertOutput *o);

typedef struct {
    const char *name;          /* "med-git" */
    const char *router_class;  /* "radiology" */
    const char *summary;       /* one line for help texts */
    int (*load)(void **self, const char *dir, const ExpertOptions *o, Error *err);
    int (*describe)(void *self, const Image *img, ExpertOutput *out, Error *err);
    void (*free)(void *self);
} ExpertKind;

int expert_count(void);
const ExpertKind *expert_at(int i);
const ExpertKind *expert_find(const char *name);
const ExpertKind *expert_for_class(const char *router_class);

/* The experts, each defined in its own expert_*.c file. */
extern const ExpertKind EXPERT_MED_GIT;
extern const ExpertKind EXPERT_DEPLOT;

#endif
