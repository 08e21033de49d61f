/* vmed router (train, eval, cv) and vmed route: the image-type router that
 * picks the visual expert for an image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "models/router.h"

static const char ROUTER_HELP[] =
    "usage: vmed router train --data DIR[:WEIGHT]... --out FILE [--seed N] [--epochs N] [--hidden N]\n"
    "       vmed router eval --data DIR... FILE\n"
    "       vmed router cv --data DIR[:WEIGHT]... [--seed N] [--epochs N] [--hidden N]\n"
    "\n"
    "The image-type router decides which visual expert gets an image: 'radiology'\n"
    "(Med-GIT), 'chart' (DePlot) or 'other' (none). It is a small MLP over\n"
    "hand-designed pixel features; see the Router section of the README.\n"
    "\n"
    "DIR holds one sub-folder per class, named for the class, of .png/.jpg/.jpeg\n"
    "images. Any number of classes (2 to 64) may be used. --data may be given up to\n"
    "16 times: the folders' images are used together, classes merged by folder\n"
    "name (a folder of extra images may hold a single class). DIR:WEIGHT makes\n"
    "each image of DIR count WEIGHT (a number in (0, 1000], default 1) in train\n"
    "and cv, e.g. --data real --data generated:0.25: within each class images\n"
    "count in proportion to their weights, and every class counts the same.\n"
    "\n"
    "  train   trains on every image of DIR and writes the router to FILE\n"
    "          (safetensors); prints the images per class and the training accuracy\n"
    "  eval    prints the accuracy of the router FILE on DIR and the confusion matrix\n"
    "  cv      leave-one-source-out cross-validation: the source of an image named\n"
    "          <class>_<source>_<n>.png is <source>; each source in turn is held out,\n"
    "          the router is trained on the others and tested on it. Prints each\n"
    "          fold, the misrouted images, the overall accuracy and confusion matrix\n"
    "\n"
    "  --seed N      initialisation seed (default 0); same seed, same bits\n"
    "  --epochs N    full-batch Adam steps (default 400)\n"
    "  --hidden N    hidden units (default 16)\n";

static const char ROUTE_HELP[] =
    "usage: vmed route [--router FILE] [--all] IMAGE...\n"
    "\n"
    "Prints the class the router gives each image and its probability, for\n"
    "example 'radiology 0.97' ('IMAGE: radiology 0.97' for several images).\n"
    "\n"
    "  --router FILE   the router (default: $VMED_ROUTER, else the shipped\n"
    "                  assets/router.safetensors)\n"
    "  --all           print the probability of every class\n";

static void print_confusion(const char *const *names, int n_classes, const int *y, const int *pred, int n) {
    int *m = calloc((size_t)n_classes * (size_t)n_classes, sizeof *m);
    if (!m) return;
    int correct = 0, width = 10;
    for (int i = 0; i < n; i++) {
        m[y[i] * n_classes + pred[i]]++;
        correct += y[i] == pred[i];
    }
    for (int k = 0; k < n_classes; k++)
        if ((int)strlen(names[k]) + 1 > width) width = (int)strlen(names[k]) + 1;
    printf("accuracy: %d/%d = %.1f%%\n", correct, n, n ? 100.0 * correct / n : 0.0);
    printf("confusion (rows: true class, columns: predicted):\n%-*s", width, "");
    for (int k = 0; k < n_classes; k++) printf("%*s", width, names[k]);
    printf("\n");
    for (int t = 0; t < n_classes; t++) {
        printf("%-*s", width, names[t]);
        for (int k = 0; k < n_classes; k++) printf("%*d", width, m[t * n_classes + k]);
        printf("\n");
    }
    free(m);
}

#define MAX_DATA_DIRS 16

typedef struct {
    const char *data[MAX_DATA_DIRS], *out, *file;
    float weight[MAX_DATA_DIRS];
    char dir_buf[MAX_DATA_DIRS][2048]; /* DIR of a DIR:WEIGHT */
    int n_data, weighted;
    RouterTrainOptions opt;
} RouterArgs;

/* DIR or DIR:WEIGHT (the text after the last ':' a number; otherwise the
 * whole value is the folder). */
static int parse_data_arg(const char *cmd, const char *v, RouterArgs *a) {
    const char *colon = strrchr(v, ':');
    char *end;
    double w = colon && colon[1] ? strtod(colon + 1, &end) : 0;
    int k = a->n_data;
    a->data[k] = v;
    a->weight[k] = 1.0f;
    if (!colon || !colon[1] || *end || colon == v) {
        a->n_data++;
        return 0;
    }
    if (!(w > 0 && w <= 1000))
        return cli_usage_error(cmd, "--data '%s': the weight must be a number in (0, 1000]", v);
    if ((size_t)(colon - v) >= sizeof a->dir_buf[k]) return cli_usage_error(cmd, "--data '%s': path too long", v);
    memcpy(a->dir_buf[k], v, (size_t)(colon - v));
    a->dir_buf[k][colon - v] = 0;
    a->data[k] = a->dir_buf[k];
    a->weight[k] = (float)w;
    a->weighted = 1;
    a->n_data++;
    return 0;
}

/* Parses the flags of one subcommand; allowed lists the ones it takes. */
static int parse_router_args(const char *cmd, const char *allowed, int argc, char **argv, RouterArgs *a) {
    memset(a, 0, sizeof *a);
    a->opt = router_train_defaults();
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        long n;
        if (cli_is_help(f)) {
            fputs(ROUTER_HELP, stdout);
            return 1;
        }
        if (f[0] == '-' && f[1] && !strstr(allowed, f))
            return cli_usage_error(cmd, "unknown option '%s'", f);
        if (strcmp(f, "--data") == 0 || strcmp(f, "--out") == 0) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return EXIT_USAGE;
            if (f[2] == 'o') a->out = v;
            else if (a->n_data == MAX_DATA_DIRS)
                return cli_usage_error(cmd, "--data given more than %d times", MAX_DATA_DIRS);
            else if (parse_data_arg(cmd, v, a)) return EXIT_USAGE;
        } else if (strcmp(f, "--seed") == 0 || strcmp(f, "--epochs") == 0 || strcmp(f, "--hidden") == 0) {
            long max = f[2] == 's' ? 0x7fffffffL : f[2] == 'e' ? 1000000 : 4096;
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, f, v, f[2] == 'h' ? 1 : 0, max, &n))
                return EXIT_USAGE;
            if (f[2] == 's') a->opt.seed = (uint64_t)n;
            else if (f[2] == 'e') a->opt.epochs = (int)n;
            else a->opt.hidden = (int)n;
        } else if (f[0] == '-' && f[1]) {
            return cli_usage_error(cmd, "unknown option '%s'", f);
        } else if (strstr(allowed, "FILE") && !a->file) {
            a->file = f;
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", f);
        }
    }
    if (!a->n_data) return cli_usage_error(cmd, "--data DIR is required");
    if (strstr(allowed, "--out") && !a->out) return cli_usage_error(cmd, "--out FILE is required");
    if (strstr(allowed, "FILE") && !a->file) return cli_usage_error(cmd, "the router FILE is required");
    return 0;
}

static void print_counts(const RouterDataset *ds) {
    for (int k = 0; k < ds->n_classes; k++) {
        int c = 0;
        double w = 0;
        for (int i = 0; i < ds->n; i++) c += ds->y[i] == k, w += ds->y[i] == k && ds->weight ? ds->weight[i] : 0;
        printf("%-12s %d images", ds->class_names[k], c);
        if (ds->weight) printf(" (weight %g)", w);
        printf("\n");
    }
}

static int router_train_cmd(int argc, char **argv) {
    const char *cmd = "router train";
    RouterArgs a;
    int rc = parse_router_args(cmd, "--data --out --seed --epochs --hidden", argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    RouterDataset ds;
    Router r;
    Error err;
    if (router_dataset_load_weighted(&ds, a.data, a.weighted ? a.weight : NULL, a.n_data, &err))
        return cli_fail(cmd, err.msg);
    print_counts(&ds);
    if (router_train(&r, &ds, NULL, 0, &a.opt, &err)) {
        router_dataset_free(&ds);
        return cli_fail(cmd, err.msg);
    }
    int correct = 0;
    for (int i = 0; i < ds.n; i++) {
        RouterPrediction p;
        correct += router_predict_features(&r, ds.x + (size_t)i * ROUTER_N_FEATURES, &p) == ds.y[i];
    }
    printf("training accuracy: %d/%d = %.1f%%\n", correct, ds.n, 100.0 * correct / ds.n);
    rc = router_save(&r, a.out, &err);
    if (!rc) printf("wrote %s\n", a.out);
    router_free(&r);
    router_dataset_free(&ds);
    return rc ? cli_fail(cmd, err.msg) : 0;
}

static int router_eval_cmd(int argc, char **argv) {
    const char *cmd = "router eval";
    RouterArgs a;
    int rc = parse_router_args(cmd, "--data FILE", argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    RouterDataset ds;
    Router r;
    Error err;
    if (router_load(&r, a.file, &err)) return cli_fail(cmd, err.msg);
    if (router_dataset_load_many(&ds, a.data, a.n_data, &err)) {
        router_free(&r);
        return cli_fail(cmd, err.msg);
    }
    int *y = malloc((size_t)ds.n * sizeof *y), *pred = malloc((size_t)ds.n * sizeof *pred);
    rc = !y || !pred ? cli_fail(cmd, "out of memory") : 0;
    for (int k = 0; k < ds.n_classes && !rc; k++)
        if (router_class_index(&r, ds.class_names[k]) < 0) {
            /* name the folder itself: with several --data it may be in any */
            int i = 0;
            while (ds.y[i] != k) i++;
            const char *slash = strrchr(ds.paths[i], '/');
            int len = slash ? (int)(slash - ds.paths[i]) : 0;
            snprintf(err.msg, sizeof err.msg, "%.*s: class folder '%s' is not a class of the router %s", len,
                     ds.paths[i], ds.class_names[k], a.file);
            rc = cli_fail(cmd, err.msg);
        }
    for (int i = 0; i < ds.n && !rc; i++) {
        RouterPrediction p;
        y[i] = router_class_index(&r, ds.class_names[ds.y[i]]);
        pred[i] = router_predict_features(&r, ds.x + (size_t)i * ROUTER_N_FEATURES, &p);
        if (pred[i] != y[i]) printf("misrouted %s: %s %.2f\n", ds.paths[i], r.config.class_names[pred[i]], p.prob);
    }
    if (!rc) print_confusion((const char *const *)r.config.class_names, r.config.n_classes, y, pred, ds.n);
    free(y), free(pred);
    router_dataset_free(&ds);
    router_free(&r);
    return rc;
}

static int router_cv_cmd(int argc, char **argv) {
    const char *cmd = "router cv";
    RouterArgs a;
    int rc = parse_router_args(cmd, "--data --seed --epochs --hidden", argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    RouterDataset ds;
    Error err;
    if (router_dataset_load_weighted(&ds, a.data, a.weighted ? a.weight : NULL, a.n_data, &err))
        return cli_fail(cmd, err.msg);
    print_counts(&ds);
    int *pred = malloc((size_t)ds.n * sizeof *pred);
    float *prob = malloc((size_t)ds.n * sizeof *prob);
    char *done = calloc((size_t)ds.n, 1);
    if (!pred || !prob || !done) rc = cli_fail(cmd, "out of memory");
    else if (router_cross_validate(&ds, &a.opt, pred, prob, &err)) rc = cli_fail(cmd, err.msg);
    for (int i = 0; i < ds.n && !rc; i++) {
        if (done[i]) continue;
        int n = 0, correct = 0;
        for (int j = i; j < ds.n; j++) {
            if (strcmp(ds.groups[j], ds.groups[i]) != 0) continue;
            n++, correct += pred[j] == ds.y[j], done[j] = 1;
        }
        printf("fold %-14s %3d/%-3d correct\n", ds.groups[i], correct, n);
    }
    for (int i = 0; i < ds.n && !rc; i++)
        if (pred[i] != ds.y[i]) printf("misrouted %s: %s %.2f\n", ds.paths[i], ds.class_names[pred[i]], prob[i]);
    if (!rc) print_confusion((const char *const *)ds.class_names, ds.n_classes, ds.y, pred, ds.n);
    free(pred), free(prob), free(done);
    router_dataset_free(&ds);
    return rc;
}

int cmd_router(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(ROUTER_HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "train") == 0) return router_train_cmd(argc - 1, argv + 1);
    if (strcmp(argv[1], "eval") == 0) return router_eval_cmd(argc - 1, argv + 1);
    if (strcmp(argv[1], "cv") == 0) return router_cv_cmd(argc - 1, argv + 1);
    return cli_usage_error("router", "unknown subcommand '%s' (train, eval or cv)", argv[1]);
}

int cmd_route(int argc, char **argv) {
    const char *cmd = "route", *path = router_default_path();
    int all = 0, n_images = 0;
    char **images = calloc((size_t)argc, sizeof *images);
    if (!images) return cli_fail(cmd, "out of memory");
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(ROUTE_HELP, stdout);
            free(images);
            return 0;
        } else if (strcmp(argv[i], "--router") == 0) {
            if (!(path = cli_value(cmd, argc, argv, &i))) goto usage;
        } else if (strcmp(argv[i], "--all") == 0) {
            all = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_usage_error(cmd, "unknown option '%s'", argv[i]);
            goto usage;
        } else {
            images[n_images++] = argv[i];
        }
    }
    if (!n_images) {
        cli_usage_error(cmd, "at least one IMAGE is required");
        goto usage;
    }
    Router r;
    Error err;
    if (router_load(&r, path, &err)) {
        free(images);
        return cli_fail(cmd, err.msg);
    }
    int rc = 0;
    for (int i = 0; i < n_images; i++) {
        Image img;
        RouterPrediction p;
        if (image_load(&img, images[i], NULL, &err)) {
            rc = cli_fail(cmd, err.msg);
            continue;
        }
        int bad = router_predict(&r, &img, &p, &err);
        image_free(&img);
        if (bad) {
            rc = cli_fail(cmd, err.msg);
            continue;
        }
        if (n_images > 1) printf("%s: ", images[i]);
        printf("%s %.2f", r.config.class_names[p.label], p.prob);
        for (int k = 0; k < r.config.n_classes && all; k++)
            printf("%s%s=%.4f", k ? " " : "  (", r.config.class_names[k], p.probs[k]);
        printf("%s\n", all ? ")" : "");
    }
    router_free(&r);
    free(images);
    return rc;
usage:
    free(images);
    return EXIT_USAGE;
}
