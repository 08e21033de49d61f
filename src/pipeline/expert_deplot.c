/* The DePlot expert: a chart in, its linearised data table out, as HF
 * Pix2StructForConditionalGeneration.generate does it after
 * Pix2StructProcessor(images, text=header). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate/generate.h"
#include "image/pix2struct_preprocess.h"
#include "image/render.h"
#include "models/pix2struct.h"
#include "pipeline/expert.h"
#include "text/t5.h"

#define DEPLOT_HEADER "Generate underlying data table of the figure below:"
/* DePlot's model card generates with max_new_tokens=512 */
#define DEPLOT_DEFAULT_MAX_LENGTH 513

typedef struct {
    Pix2Struct model;
    T5Tokenizer *tok;
    Pix2StructProcessorConfig proc;
    RenderOptions render;
    char *header;
    int max_patches;
    Pix2StructState *states; /* one per beam, sharing one pool */
    int n_states;
    ThreadPool *pool;      /* o->pool, or own_pool */
    ThreadPool *own_pool;  /* made here when o->pool is NULL */
    float *patches, *mask;
    ExpertOptions opt;
} Deplot;

static void deplot_free(void *self) {
    Deplot *d = self;
    if (!d) return;
    for (int i = 0; i < d->n_states; i++) pix2struct_state_free(&d->states[i]);
    free(d->states);
    pool_free(d->own_pool);
    free(d->patches);
    free(d->mask);
    free(d->header);
    t5_free(d->tok);
    pix2struct_free(&d->model);
    free(d);
}

static int deplot_load(void **self, const char *dir, const ExpertOptions *o, Error *err) {
    *self = NULL;
    Deplot *d = calloc(1, sizeof *d);
    if (!d) return error_set(err, "out of memory");
    d->opt = *o;
    render_options_default(&d->render);
    if (o->font_path) d->render.font_path = o->font_path;
    d->header = strdup(o->header ? o->header : DEPLOT_HEADER);
    if (!d->header) {
        error_set(err, "out of memory");
        goto fail;
    }
    if (pix2struct_load(&d->model, dir, err) || t5_load(&d->tok, dir, err) ||
        pix2struct_processor_config_load(&d->proc, dir, err))
        goto fail;
    d->max_patches = o->max_patches ? o->max_patches : PIX2STRUCT_PROCESSOR_MAX_PATCHES;
    if (d->max_patches < 1 || d->max_patches > PIX2STRUCT_MAX_PATCHES) {
        error_set(err, "max_patches %d is out of range 1..%d", d->max_patches, PIX2STRUCT_MAX_PATCHES);
        goto fail;
    }
    if (t5_vocab_size(d->tok) > d->model.config.text.vocab_size) {
        error_set(err, "%s: the tokenizer has %d tokens but config.json says vocab_size %d", dir,
                  t5_vocab_size(d->tok), d->model.config.text.vocab_size);
        goto fail;
    }
    if (!d->opt.max_length) d->opt.max_length = DEPLOT_DEFAULT_MAX_LENGTH;
    d->n_states = o->num_beams > 1 ? o->num_beams : 1;
    d->states = calloc((size_t)d->n_states, sizeof *d->states);
    size_t patch_dim = (size_t)pix2struct_patch_dim(&d->proc);
    d->patches = malloc(sizeof(float) * (size_t)d->max_patches * patch_dim);
    d->mask = malloc(sizeof(float) * (size_t)d->max_patches);
    if (!d->states || !d->patches || !d->mask) {
        error_set(err, "out of memory for %d patches", d->max_patches);
        goto fail;
    }
    if (!o->pool && o->n_threads > 1 && pool_create(&d->own_pool, o->n_threads, err)) goto fail;
    d->pool = o->pool ? o->pool : d->own_pool;
    for (int i = 0; i < d->n_states; i++) {
        if (pix2struct_state_new(&d->states[i], &d->model, d->max_patches, d->opt.max_length, d->pool, err)) {
            d->n_states = i;
            goto fail;
        }
    }
    *self = d;
    return 0;
fail:
    deplot_free(d);
    return -1;
}

/* The patches of the chart with the header rendered above it. */
static int chart_patches(Deplot *d, const Image *img, Error *err) {
    Image rgb, with_header;
    if (image_to_rgb8(&rgb, img, err)) return -1;
    const Image *in = &rgb;
    int rc = 0;
    if (d->proc.is_vqa) {
        rc = render_header(&with_header, &rgb, d->header, &d->render, err);
        in = &with_header;
    }
    int n_valid, rows, cols;
    if (!rc) rc = pix2struct_preprocess(d->patches, d->mask, &n_valid, &rows, &cols, in, &d->proc, d->max_patches, err);
    if (d->proc.is_vqa && in == &with_header) image_free(&with_header);
    image_free(&rgb);
    return rc;
}

static int deplot_describe(void *self, const Image *img, ExpertOutput *out, Error *err) {
    Deplot *d = self;
    memset(out, 0, sizeof *out);
    const Pix2StructConfig *c = &d->model.config;
    if (chart_patches(d, img, err)) return -1;
    if (pix2struct_encode(&d->model, &d->states[0], d->patches, d->mask, d->max_patches, err)) return -1;
    for (int i = 1; i < d->n_states; i++)
        if (pix2struct_state_copy_encoder(&d->states[i], &d->states[0], &d->model, err)) return -1;
    int max_new = d->opt.max_length - 1, n_new = 0, start = c->decoder_start_id, rc;
    out->ids = malloc(sizeof(int) * (size_t)(max_new + 2));
    if (!out->ids) return error_set(err, "out of memory");
    out->ids[0] = start;
    Pix2StructDecoder pd;
    Decoder dec = pix2struct_decoder(&pd, &d->model, d->states, d->n_states);
    if (d->opt.num_beams > 1) {
        BeamOptions b = beam_defaults();
        b.num_beams = d->opt.num_beams;
        b.max_new_tokens = max_new;
        b.length_penalty = d->opt.length_penalty;
        b.eos_id = c->eos_id;
        rc = beam_search(&dec, &start, 1, &b, out->ids + 1, &n_new, NULL, err);
    } else {
        GenerateOptions o = generate_defaults();
        o.sampling.greedy = 1;
        o.max_new_tokens = max_new;
        o.eos_id = c->eos_id;
        rc = generate(&dec, &start, 1, &o, out->ids + 1, &n_new, err);
    }
    out->n_ids = 1 + n_new;
    if (!rc) rc = t5_decode(d->tok, out->ids, out->n_ids, 1, &out->text, err);
    if (rc) expert_output_free(out);
    return rc;
}

const ExpertKind EXPERT_DEPLOT = {
    "deplot",
    "chart",
    "DePlot (Pix2Struct): chart -> linearised data table",
    deplot_load,
    deplot_describe,
    deplot_free,
};
