/* The CLIP ViT image encoder as GIT uses it (HF GitVisionModel): patch
 * embedding (a strided convolution without bias, done as one matrix
 * product), class token, position embeddings, pre-LayerNorm, pre-LN layers
 * with quick_gelu, and a post-LayerNorm applied to every token. */
#ifndef VMED_MODELS_CLIP_VIT_H
#define VMED_MODELS_CLIP_VIT_H

#include "base/threads.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "tensor/matmul.h"

typedef struct {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    Tensor wq, wk, wv, wo, fc1, fc2;
    float *bq, *bk, *bv, *bo, *b1, *b2;
} ClipLayer;

typedef struct {
    Tensor patch;      /* [dim, C*P*P]: the conv kernel [dim, C, P, P] read as a matrix */
    float *class_emb;  /* [dim] */
    float *pos_emb;    /* [n_tokens, dim], f32 copy */
    float *pre_w, *pre_b, *post_w, *post_b;
    ClipLayer *layers;
} ClipVisionWeights;

typedef struct {
    int n_tokens;
    float *x, *h, *q, *k, *v, *att, *ff, *patches; /* [n_tokens, ...] */
    float *att_scratch, *mm_scratch;
    float *arena;
} ClipVisionState;

/* prefix: the tensor name prefix, e.g. "git.image_encoder.vision_model.". */
int clip_vision_load(ClipVisionWeights *w, const ClipVisionConfig *c, const SafeTensors *st, const char *prefix,
                     Error *err);
void clip_vision_free(ClipVisionWeights *w, const ClipVisionConfig *c);

int clip_vision_state_new(ClipVisionState *s, const ClipVisionConfig *c, int n_threads, Error *err);
void clip_vision_state_free(ClipVisionState *s);

/* pixels: [C, S, S] as the CLIP processor makes them. The result is
 * s->x, [n_tokens, dim], after the post-LayerNorm. */
void clip_vision_encode(const ClipVisionWeights *w, const ClipVisionConfig *c, ClipVisionState *s, ThreadPool *pool,
                        KernelLevel kernel, const float *pixels);

#endif
