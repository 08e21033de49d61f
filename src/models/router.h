/* The image-type router ("type classifier"): which visual expert, if any,
 * gets an uploaded image. vmed's own small model, trained by vmed.
 *
 * An image is flattened (alpha composited on white, gray replicated: see
 * image/flatten.h), scaled to fit ROUTER_WORK_SIZE, and described by
 * ROUTER_N_FEATURES hand-designed numbers computed from its pixels only
 * (tones, colour, flat areas, edges and their directions, long straight
 * lines, margins and borders, a coarse gray thumbnail). The features are
 * standardized with the training set's mean and deviation and go through a
 * one-hidden-layer MLP (tanh) with a softmax over the classes.
 *
 * Classes are whatever the training folder holds: one sub-folder per class,
 * named for it (the shipped router knows chart, other and radiology; the
 * pipeline sends "radiology" to Med-GIT and "chart" to DePlot).
 *
 * The file is safetensors: F32 tensors router.mean [F], router.std [F],
 * router.w1 [H, F], router.b1 [H], router.w2 [C, H], router.b2 [C], and
 * __metadata__ format = "vmed-router", feature_version, classes (the names
 * joined by newlines, in output order). Everything is checked on load. */
#ifndef VMED_MODELS_ROUTER_H
#define VMED_MODELS_ROUTER_H

#include <stdint.h>

#include "base/error.h"
#include "image/image.h"

/* Bump ROUTER_FEATURE_VERSION whenever router_features changes: a file
 * trained on other features is then refused instead of silently wrong. */
#define ROUTER_FEATURE_VERSION 2
#define ROUTER_N_FEATURES 83
#define ROUTER_WORK_SIZE 256
#define ROUTER_MAX_CLASSES 64
#define ROUTER_MAX_NAME 64

typedef struct {
    int n_classes;
    char **class_names; /* owned; [n_classes] */
    int n_features;     /* ROUTER_N_FEATURES */
    int hidden;
    int feature_version;
} RouterConfig;

typedef struct {
    float *mean, *std; /* [F]: standardization of the inputs */
    float *w1, *b1;    /* [H, F], [H] */
    float *w2, *b2;    /* [C, H], [C] */
} RouterWeights;

typedef struct {
    RouterConfig config;
    RouterWeights w;
} Router;

typedef struct {
    int hidden;         /* hidden units (default 16) */
    int epochs;         /* full-batch Adam steps (default 400) */
    float lr;           /* Adam learning rate (default 0.01) */
    float weight_decay; /* decoupled, on the weight matrices only (default 0.01) */
    uint64_t seed;      /* initialisation; same seed and data give the same bits */
    int gray_copies;    /* also train on the data set's gray copies (default 1): a
                           gray photo is still a photo, a gray chart still a chart,
                           so colour alone must not decide */
} RouterTrainOptions;

RouterTrainOptions router_train_defaults(void);

/* A labelled set of images, already turned into features. */
typedef struct {
    int n, n_classes;
    char **class_names; /* [n_classes], owned */
    float *x;           /* [n, ROUTER_N_FEATURES] */
    float *x_gray;      /* [n, ROUTER_N_FEATURES] of the images made gray, or NULL */
    int *y;             /* [n] */
    char **paths;       /* [n], owned */
    char **groups;      /* [n], owned: the source of each image, see router_source_of */
    float *weight;      /* [n], owned: how much each image counts in training (> 0),
                           or NULL: every image counts 1 */
} RouterDataset;

typedef struct {
    int label;
    float prob;
    float probs[ROUTER_MAX_CLASSES];
} RouterPrediction;

/* VMED_ROUTER if set and not empty, else the compiled-in
 * VMED_ASSETS_DIR "/router.safetensors" (the repository's assets folder). */
const char *router_default_path(void);

/* The features of a flattened 8-bit RGB image (image_flatten_rgb). out
 * holds ROUTER_N_FEATURES floats. */
int router_features(const Image *rgb, float *out, Error *err);
/* Loads, flattens and describes one image file. */
int router_features_file(const char *path, float *out, Error *err);

/* The source of a file named <class>_<source>_<n>.<ext>: the name without
 * its extension, a trailing "_<digits>" and a leading "<class>_". Writes at
 * most cap bytes. Images of one source are alike (same scanner, same plot
 * style), so cross-validation holds out whole sources. */
void router_source_of(const char *filename, const char *class_name, char *out, size_t cap);

/* Reads dir/<class>/ files named *.png, *.jpg or *.jpeg (case-insensitive;
 * other files and hidden ones are ignored), classes and files in name
 * order, with the features of each image and of its gray copy. Each class
 * folder must hold at least one image; at least two classes are needed. */
int router_dataset_load(RouterDataset *ds, const char *dir, Error *err);
/* The images of several such folders in one set: classes merged by folder
 * name (sorted), images in the order of dirs, then class, then name. A
 * folder may hold a single class (extra images of it, say); all of them
 * together need at least two. Sources still come from the file names. */
int router_dataset_load_many(RouterDataset *ds, const char *const *dirs, int n_dirs, Error *err);
/* The same, every image of dirs[d] counting weights[d] (> 0, at most 1000)
 * in training: generated images may count less than real ones. weights
 * NULL: all 1, and ds->weight stays NULL. */
int router_dataset_load_weighted(RouterDataset *ds, const char *const *dirs, const float *weights, int n_dirs,
                                 Error *err);
void router_dataset_free(RouterDataset *ds);

/* Trains r on the samples idx[0..n_idx) of ds (idx NULL: all of them).
 * Samples are weighted so that every class present counts the same; within
 * a class, each in proportion to ds->weight (which also weights the
 * standardization's mean and deviation). */
int router_train(Router *r, const RouterDataset *ds, const int *idx, int n_idx, const RouterTrainOptions *opt,
                 Error *err);

/* Probabilities of the classes for one feature vector; returns the label. */
int router_predict_features(const Router *r, const float *x, RouterPrediction *out);
/* Any image as image_load gives it: flattened here. */
int router_predict(const Router *r, const Image *img, RouterPrediction *out, Error *err);

/* Leave-one-source-out: for each distinct group, trains on the others and
 * predicts the held-out images into pred[n] (probability of the predicted
 * class in prob[n], may be NULL). */
int router_cross_validate(const RouterDataset *ds, const RouterTrainOptions *opt, int *pred, float *prob,
                          Error *err);

int router_save(const Router *r, const char *path, Error *err);
int router_load(Router *r, const char *path, Error *err);
void router_free(Router *r);

/* The index of a class name, or -1. */
int router_class_index(const Router *r, const char *name);

#endif
