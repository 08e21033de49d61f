/* The image-type router: the flattening that hides the storage mode,
 * deterministic training that learns, the file and its errors, the shipped
 * weights on the seed images, and the command line. Images are drawn here
 * in memory unless a test says it needs the fixtures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/flatten.h"
#include "models/router.h"
#include "test.h"

void suite_router(void);

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int rng_int(uint64_t *s, int lo, int hi) { return lo + (int)(rng_next(s) % (uint64_t)(hi - lo + 1)); }

static void fill_rect(Image *img, int x0, int y0, int x1, int y1, const uint8_t *rgb) {
    for (int y = y0 < 0 ? 0 : y0; y < y1 && y < img->height; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x1 && x < img->width; x++)
            for (int c = 0; c < img->channels; c++) img->data[((size_t)y * img->width + x) * img->channels + c] = rgb[c];
}

/* A bar chart: white page, black axes with ticks, flat coloured bars. */
static void draw_chart(Image *img, uint64_t *s) {
    int w = rng_int(s, 220, 360), h = rng_int(s, 160, 280);
    image_alloc(img, w, h, 3, 8, "chart", NULL);
    memset(img->data, 255, image_size_bytes(img));
    const uint8_t black[3] = {0, 0, 0}, grid[3] = {220, 220, 220};
    int left = w / 8, bottom = h - h / 8, top = h / 10, right = w - w / 20;
    for (int g = 1; g < 4; g++) fill_rect(img, left, bottom - g * (bottom - top) / 4, right, bottom - g * (bottom - top) / 4 + 1, grid);
    int n = rng_int(s, 3, 7), slot = (right - left) / n;
    for (int b = 0; b < n; b++) {
        uint8_t col[3] = {(uint8_t)rng_int(s, 0, 255), (uint8_t)rng_int(s, 0, 255), (uint8_t)rng_int(s, 0, 255)};
        col[rng_int(s, 0, 2)] = (uint8_t)rng_int(s, 0, 60); /* saturated */
        int bh = rng_int(s, (bottom - top) / 5, bottom - top);
        fill_rect(img, left + b * slot + slot / 5, bottom - bh, left + (b + 1) * slot - slot / 5, bottom, col);
        fill_rect(img, left + b * slot + slot / 2, bottom, left + b * slot + slot / 2 + 1, bottom + 4, black);
    }
    fill_rect(img, left - 2, top, left, bottom + 2, black);
    fill_rect(img, left - 2, bottom, right, bottom + 2, black);
    for (int t = 0; t < 5; t++) fill_rect(img, left - 6, bottom - t * (bottom - top) / 4, left - 2, bottom - t * (bottom - top) / 4 + 1, black);
}

/* A "scan": gray, black surround, a bright smooth body with two darker
 * lobes and a little noise. One channel, as DICOM exports are. */
static void draw_scan(Image *img, uint64_t *s) {
    int n = rng_int(s, 180, 300);
    image_alloc(img, n, n, 1, 8, "scan", NULL);
    double rx = n * (0.30 + 0.1 * (double)rng_int(s, 0, 10) / 10), ry = n * (0.38 + 0.05 * (double)rng_int(s, 0, 10) / 10);
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            double dx = (x - n / 2.0) / rx, dy = (y - n / 2.0) / ry, r2 = dx * dx + dy * dy, v = 8;
            if (r2 < 1) {
                v = 200 - 80 * r2;
                for (int side = -1; side <= 1; side += 2) {
                    double lx = (x - n / 2.0 - side * rx * 0.45) / (rx * 0.35), ly = (y - n / 2.0) / (ry * 0.6);
                    if (lx * lx + ly * ly < 1) v -= 110 * (1 - (lx * lx + ly * ly));
                }
            }
            v += rng_int(s, -6, 6);
            img->data[(size_t)y * n + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
}

/* A "photo": smooth colourful waves with grain. */
static void draw_photo(Image *img, uint64_t *s) {
    int w = rng_int(s, 200, 340), h = rng_int(s, 160, 300);
    image_alloc(img, w, h, 3, 8, "photo", NULL);
    double f[3][2], ph[3];
    for (int c = 0; c < 3; c++) f[c][0] = rng_int(s, 2, 12) / 100.0, f[c][1] = rng_int(s, 2, 12) / 100.0, ph[c] = rng_int(s, 0, 6);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double v = 128 + 90 * sin(f[c][0] * x + ph[c]) * cos(f[c][1] * y) + rng_int(s, -25, 25);
                img->data[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

static int flat_features(const Image *img, float *x) {
    Image rgb;
    Error err;
    if (image_flatten_rgb(&rgb, img, &err)) return -1;
    int rc = router_features(&rgb, x, &err);
    image_free(&rgb);
    return rc;
}

/* per_class images of each of the three kinds; classes sorted by name as
 * the folder loader sorts them. */
static char *CLASSES[3] = {"chart", "other", "radiology"};

static int synth_dataset(RouterDataset *ds, int per_class, uint64_t seed) {
    memset(ds, 0, sizeof *ds);
    int n = 3 * per_class;
    ds->n = n;
    ds->n_classes = 3;
    ds->class_names = calloc(3, sizeof(char *));
    ds->x = calloc((size_t)n * ROUTER_N_FEATURES, sizeof(float));
    ds->y = calloc((size_t)n, sizeof(int));
    ds->paths = calloc((size_t)n, sizeof(char *));
    ds->groups = calloc((size_t)n, sizeof(char *));
    for (int k = 0; k < 3; k++) ds->class_names[k] = strdup(CLASSES[k]);
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        Image img;
        ds->y[i] = i % 3;
        if (ds->y[i] == 0) draw_chart(&img, &s);
        else if (ds->y[i] == 1) draw_photo(&img, &s);
        else draw_scan(&img, &s);
        char name[64];
        snprintf(name, sizeof name, "%s_synth%d_%d.png", CLASSES[ds->y[i]], i % 2, i);
        ds->paths[i] = strdup(name);
        ds->groups[i] = strdup(i % 2 ? "odd" : "even");
        int rc = flat_features(&img, ds->x + (size_t)i * ROUTER_N_FEATURES);
        image_free(&img);
        if (rc) return -1;
    }
    return 0;
}

static RouterTrainOptions small_opts(void) {
    RouterTrainOptions o = router_train_defaults();
    o.epochs = 150;
    o.seed = 7;
    return o;
}

static void t_router_flatten_hides_alpha_and_gray(void) {
    uint64_t s = 1;
    Image chart, rgba, scan, scan_rgb, a, b;
    Error err;
    draw_chart(&chart, &s);
    /* the same chart as a transparent render: background pixels are fully
     * transparent (and black underneath), marks opaque */
    CHECK(image_alloc(&rgba, chart.width, chart.height, 4, 8, "rgba", &err) == 0, "%s", err.msg);
    for (size_t p = 0; p < (size_t)chart.width * chart.height; p++) {
        const uint8_t *q = chart.data + 3 * p;
        int bg = q[0] == 255 && q[1] == 255 && q[2] == 255;
        uint8_t *o = rgba.data + 4 * p;
        o[0] = bg ? 0 : q[0], o[1] = bg ? 0 : q[1], o[2] = bg ? 0 : q[2], o[3] = bg ? 0 : 255;
    }
    CHECK(image_flatten_rgb(&a, &chart, &err) == 0 && image_flatten_rgb(&b, &rgba, &err) == 0, "%s", err.msg);
    CHECK(memcmp(a.data, b.data, image_size_bytes(&a)) == 0, "RGBA on white differs from RGB");
    /* half-transparent red on white is pink */
    uint8_t px[4] = {255, 0, 0, 128};
    Image one = {1, 1, 4, 8, px}, pink;
    CHECK(image_flatten_rgb(&pink, &one, &err) == 0, "%s", err.msg);
    CHECK(pink.data[0] == 255 && pink.data[1] == 127 && pink.data[2] == 127, "pink is %d %d %d", pink.data[0],
          pink.data[1], pink.data[2]);
    image_free(&pink);

    float fa[ROUTER_N_FEATURES], fb[ROUTER_N_FEATURES];
    CHECK(flat_features(&chart, fa) == 0 && flat_features(&rgba, fb) == 0, "features failed");
    CHECK(memcmp(fa, fb, sizeof fa) == 0, "features of RGBA and RGB versions differ");

    draw_scan(&scan, &s);
    CHECK(image_alloc(&scan_rgb, scan.width, scan.height, 3, 8, "scan", &err) == 0, "%s", err.msg);
    for (size_t p = 0; p < (size_t)scan.width * scan.height; p++)
        memset(scan_rgb.data + 3 * p, scan.data[p], 3);
    CHECK(flat_features(&scan, fa) == 0 && flat_features(&scan_rgb, fb) == 0, "features failed");
    CHECK(memcmp(fa, fb, sizeof fa) == 0, "features of gray L and RGB replica differ");
    image_free(&chart), image_free(&rgba), image_free(&scan), image_free(&scan_rgb), image_free(&a), image_free(&b);
}

static int max_diff_weights(const Router *a, const Router *b) {
    const RouterConfig *c = &a->config;
    size_t F = (size_t)c->n_features, H = (size_t)c->hidden, C = (size_t)c->n_classes;
    return memcmp(a->w.w1, b->w.w1, H * F * 4) || memcmp(a->w.b1, b->w.b1, H * 4) ||
           memcmp(a->w.w2, b->w.w2, C * H * 4) || memcmp(a->w.b2, b->w.b2, C * 4) ||
           memcmp(a->w.mean, b->w.mean, F * 4) || memcmp(a->w.std, b->w.std, F * 4);
}

static void t_router_train_deterministic_and_learns(void) {
    RouterDataset tr, te;
    Router r1, r2;
    Error err;
    RouterTrainOptions o = small_opts();
    CHECK(synth_dataset(&tr, 12, 11) == 0 && synth_dataset(&te, 8, 99) == 0, "synthetic data failed");
    CHECK(router_train(&r1, &tr, NULL, 0, &o, &err) == 0, "%s", err.msg);
    CHECK(router_train(&r2, &tr, NULL, 0, &o, &err) == 0, "%s", err.msg);
    CHECK(!max_diff_weights(&r1, &r2), "two trainings with seed 7 differ");
    int correct = 0;
    for (int i = 0; i < te.n; i++) {
        RouterPrediction p;
        correct += router_predict_features(&r1, te.x + (size_t)i * ROUTER_N_FEATURES, &p) == te.y[i];
    }
    /* the classes are balanced: the majority baseline is 1/3 */
    CHECK(correct * 10 >= te.n * 9, "held-out accuracy %d/%d, want >= 90%% (baseline 33%%)", correct, te.n);

    /* another seed gives other weights */
    Router r3;
    o.seed = 8;
    CHECK(router_train(&r3, &tr, NULL, 0, &o, &err) == 0, "%s", err.msg);
    CHECK(max_diff_weights(&r1, &r3), "seeds 7 and 8 gave the same weights");

    /* leave-one-group-out runs and predicts every sample */
    int *pred = malloc((size_t)tr.n * sizeof *pred);
    for (int i = 0; i < tr.n; i++) pred[i] = -1;
    o.seed = 7;
    CHECK(router_cross_validate(&tr, &o, pred, NULL, &err) == 0, "%s", err.msg);
    int seen = 0;
    for (int i = 0; i < tr.n; i++) seen += pred[i] >= 0 && pred[i] < 3;
    free(pred);
    CHECK(seen == tr.n, "cross-validation predicted %d of %d", seen, tr.n);
    router_free(&r1), router_free(&r2), router_free(&r3);
    router_dataset_free(&tr), router_dataset_free(&te);
}

/* Per-image weights: all 1 is the unweighted training, bit for bit; only
 * their ratios within a class matter (class balance); other weights give
 * another router, the same one every time, with a weighted standardization. */
static void t_router_sample_weights(void) {
    RouterDataset tr;
    Router r0, r1, r2, r3;
    Error err;
    RouterTrainOptions o = small_opts();
    CHECK(synth_dataset(&tr, 12, 11) == 0, "synthetic data failed");
    CHECK(router_train(&r0, &tr, NULL, 0, &o, &err) == 0, "%s", err.msg);
    tr.weight = malloc((size_t)tr.n * sizeof *tr.weight);
    for (int i = 0; i < tr.n; i++) tr.weight[i] = 1.0f;
    CHECK(router_train(&r1, &tr, NULL, 0, &o, &err) == 0, "%s", err.msg);
    CHECK(!max_diff_weights(&r0, &r1), "weights all 1 differ from no weights");
    router_free(&r1);
    for (int i = 0; i < tr.n; i++) tr.weight[i] = 2.0f;
    CHECK(router_train(&r1, &tr, NULL, 0, &o, &err) == 0, "%s", err.msg);
    CHECK(!max_diff_weights(&r0, &r1), "weights all 2 differ from weights all 1");
    /* the "odd" source counts a tenth */
    double wsum = 0, sum = 0;
    for (int i = 0; i < tr.n; i++) {
        tr.weight[i] = strcmp(tr.groups[i], "odd") == 0 ? 0.1f : 1.0f;
        wsum += tr.weight[i], sum += tr.weight[i] * tr.x[(size_t)i * ROUTER_N_FEATURES + 8];
    }
    CHECK(router_train(&r2, &tr, NULL, 0, &o, &err) == 0, "%s", err.msg);
    CHECK(router_train(&r3, &tr, NULL, 0, &o, &err) == 0, "%s", err.msg);
    CHECK(max_diff_weights(&r0, &r2), "weighting a source changed nothing");
    CHECK(!max_diff_weights(&r2, &r3), "two weighted trainings differ");
    CHECK(fabs(r2.w.mean[8] - sum / wsum) < 1e-5, "mean luminance %g, weighted mean %g", (double)r2.w.mean[8],
          sum / wsum);
    router_free(&r3);
    tr.weight[3] = 0;
    CHECK(router_train(&r3, &tr, NULL, 0, &o, &err) != 0, "weight 0 accepted");
    CHECK(strcmp(err.msg, "router_train: image weight 0; weights must be positive") == 0, "got: %s", err.msg);
    router_free(&r0), router_free(&r1), router_free(&r2), router_free(&r3);
    router_dataset_free(&tr);
}

static void t_router_robust_to_jpeg_like_noise(void) {
    RouterDataset tr;
    Router r;
    Error err;
    RouterTrainOptions o = small_opts();
    CHECK(synth_dataset(&tr, 12, 11) == 0, "synthetic data failed");
    CHECK(router_train(&r, &tr, NULL, 0, &o, &err) == 0, "%s", err.msg);
    uint64_t s = 12345;
    for (int kind = 0; kind < 3; kind++) {
        Image img, rgb;
        if (kind == 0) draw_chart(&img, &s);
        else if (kind == 1) draw_photo(&img, &s);
        else draw_scan(&img, &s);
        CHECK(image_flatten_rgb(&rgb, &img, &err) == 0, "%s", err.msg);
        /* what a JPEG screenshot does to it, roughly: small errors everywhere */
        for (size_t i = 0; i < image_size_bytes(&rgb); i++) {
            int v = rgb.data[i] + rng_int(&s, -3, 3);
            rgb.data[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        RouterPrediction p;
        CHECK(router_predict(&r, &rgb, &p, &err) == 0, "%s", err.msg);
        CHECK(p.label == kind, "a noisy %s went to %s (%.2f)", CLASSES[kind], CLASSES[p.label], (double)p.prob);
        image_free(&img), image_free(&rgb);
    }
    router_free(&r);
    router_dataset_free(&tr);
}

static void t_router_save_load_round_trip(void) {
    RouterDataset tr;
    Router r, back;
    Error err;
    RouterTrainOptions o = small_opts();
    o.epochs = 20;
    CHECK(synth_dataset(&tr, 3, 5) == 0, "synthetic data failed");
    CHECK(router_train(&r, &tr, NULL, 0, &o, &err) == 0, "%s", err.msg);
    char path[600];
    snprintf(path, sizeof path, "%s/round.safetensors", test_tmpdir());
    CHECK(router_save(&r, path, &err) == 0, "%s", err.msg);
    CHECK(router_load(&back, path, &err) == 0, "%s", err.msg);
    CHECK(back.config.n_classes == 3 && back.config.hidden == r.config.hidden &&
              back.config.n_features == ROUTER_N_FEATURES,
          "config changed");
    for (int k = 0; k < 3; k++)
        CHECK(strcmp(back.config.class_names[k], CLASSES[k]) == 0, "class %d is %s", k, back.config.class_names[k]);
    CHECK(!max_diff_weights(&r, &back), "weights changed in the round trip");
    router_free(&r), router_free(&back);
    router_dataset_free(&tr);
}

/* Saves a router after break_it changed it, and returns the load error. */
static const char *load_error_after(const char *name, void (*break_it)(Router *), char *path, size_t cap) {
    static Error err;
    RouterDataset tr;
    Router r, back;
    RouterTrainOptions o = small_opts();
    o.epochs = 2;
    if (synth_dataset(&tr, 1, 3) || router_train(&r, &tr, NULL, 0, &o, &err)) return "setup failed";
    router_dataset_free(&tr);
    snprintf(path, cap, "%s/%s", test_tmpdir(), name);
    break_it(&r);
    int rc = router_save(&r, path, &err);
    router_free(&r);
    if (rc) return err.msg;
    if (router_load(&back, path, &err) == 0) {
        router_free(&back);
        return "loaded";
    }
    return err.msg;
}

static void few_features(Router *r) { r->config.n_features = 5; }
static void old_version(Router *r) { r->config.feature_version = 99; }
static void twin_classes(Router *r) { strcpy(r->config.class_names[2], "chart"); }
static void not_finite(Router *r) { r->w.w2[1] = NAN; }
static void bad_std(Router *r) { r->w.std[3] = 0; }

static void t_router_load_errors_name_the_file(void) {
    char path[600], want[1200];
    const char *msg = load_error_after("few.safetensors", few_features, path, sizeof path);
    snprintf(want, sizeof want, "%s: tensor 'router.mean' has shape [5], expected [%d]", path, ROUTER_N_FEATURES);
    CHECK(strcmp(msg, want) == 0, "got: %s", msg);
    msg = load_error_after("old.safetensors", old_version, path, sizeof path);
    snprintf(want, sizeof want,
             "%s: the router was trained on features version '99' but this vmed computes version %d; retrain it "
             "(scripts/train-router.sh)",
             path, ROUTER_FEATURE_VERSION);
    CHECK(strcmp(msg, want) == 0, "got: %s", msg);
    msg = load_error_after("twin.safetensors", twin_classes, path, sizeof path);
    snprintf(want, sizeof want, "%s: class 'chart' appears twice in __metadata__ 'classes'", path);
    CHECK(strcmp(msg, want) == 0, "got: %s", msg);
    msg = load_error_after("nan.safetensors", not_finite, path, sizeof path);
    snprintf(want, sizeof want, "%s: tensor 'router.w2' holds a non-finite value at index 1", path);
    CHECK(strcmp(msg, want) == 0, "got: %s", msg);
    msg = load_error_after("std.safetensors", bad_std, path, sizeof path);
    snprintf(want, sizeof want, "%s: tensor 'router.std' holds 0 at index 3; deviations must be positive", path);
    CHECK(strcmp(msg, want) == 0, "got: %s", msg);

    /* a plain safetensors file is not a router */
    Error err;
    Router r;
    float one = 1;
    StTensor t = {.name = "x", .dtype = DT_F32, .ndim = 1, .shape = {1}, .data = &one, .nbytes = 4};
    snprintf(path, sizeof path, "%s/plain.safetensors", test_tmpdir());
    CHECK(st_save(path, &t, 1, &err) == 0, "%s", err.msg);
    CHECK(router_load(&r, path, &err) != 0, "a plain file loaded");
    snprintf(want, sizeof want, "%s: not a vmed router file (__metadata__ 'format' is 'pt', expected 'vmed-router')",
             path);
    CHECK(strcmp(err.msg, want) == 0, "got: %s", err.msg);

    /* truncated: the safetensors reader names the file and the problem */
    RouterDataset tr;
    RouterTrainOptions o = small_opts();
    o.epochs = 1;
    CHECK(synth_dataset(&tr, 1, 3) == 0 && router_train(&r, &tr, NULL, 0, &o, &err) == 0, "setup");
    snprintf(path, sizeof path, "%s/whole.safetensors", test_tmpdir());
    CHECK(router_save(&r, path, &err) == 0, "%s", err.msg);
    router_free(&r);
    router_dataset_free(&tr);
    FILE *fp = fopen(path, "rb");
    static uint8_t buf[1 << 16];
    size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
    if (fp) fclose(fp);
    const char *cut = test_write_file("cut.safetensors", buf, n - 10);
    CHECK(router_load(&r, cut, &err) != 0, "a truncated file loaded");
    CHECK(strncmp(err.msg, cut, strlen(cut)) == 0 && strstr(err.msg, "runs past the end"), "got: %s", err.msg);
    const char *tiny = test_write_file("tiny.safetensors", buf, 5);
    CHECK(router_load(&r, tiny, &err) != 0 && strncmp(err.msg, tiny, strlen(tiny)) == 0, "got: %s", err.msg);
    snprintf(path, sizeof path, "%s/absent.safetensors", test_tmpdir());
    CHECK(router_load(&r, path, &err) != 0, "absent file loaded");
    snprintf(want, sizeof want, "%s: no such router file", path);
    CHECK(strcmp(err.msg, want) == 0, "got: %s", err.msg);
}

static void t_router_source_of(void) {
    char s[64];
    router_source_of("chart_ggpubr_12.png", "chart", s, sizeof s);
    CHECK(strcmp(s, "ggpubr") == 0, "got %s", s);
    router_source_of("/a/b/radiology_figure1_3.PNG", "radiology", s, sizeof s);
    CHECK(strcmp(s, "figure1") == 0, "got %s", s);
    router_source_of("scan7.jpg", "radiology", s, sizeof s);
    CHECK(strcmp(s, "scan7") == 0, "got %s", s);
    router_source_of("my_phone_photos_0001.jpeg", "other", s, sizeof s);
    CHECK(strcmp(s, "my_phone_photos") == 0, "got %s", s);
}

/* The shipped router on the repository's seed images. None of them is in
 * its training data (the flowchart model.png included: the diagrams it
 * learnt from are drawn by scripts/make-router-extra.py). */
static void t_router_shipped_weights_route_seed_images(void) {
    NEED_FIXTURE(radio, "images/radio.jpg");
    NEED_FIXTURE(bar, "images/bar.png");
    NEED_FIXTURE(plot, "images/plot.jpg");
    NEED_FIXTURE(model, "images/model.png");
    struct {
        const char *path, *want;
    } cases[] = {{radio, "radiology"},
                 {bar, "chart"},
                 {plot, "chart"},
                 {model, "other"},
                 {VMED_SOURCE_DIR "/assets/samples/chest-xray.jpg", "radiology"},
                 {VMED_SOURCE_DIR "/assets/samples/papule-bar-chart.png", "chart"},
                 {VMED_SOURCE_DIR "/assets/samples/pipeline-diagram.png", "other"}};
    Router r;
    Error err;
    CHECK(router_load(&r, VMED_SOURCE_DIR "/assets/router.safetensors", &err) == 0, "%s", err.msg);
    CHECK(r.config.n_classes == 3, "%d classes", r.config.n_classes);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Image img;
        RouterPrediction p;
        CHECK(image_load(&img, cases[i].path, NULL, &err) == 0, "%s", err.msg);
        int rc = router_predict(&r, &img, &p, &err);
        image_free(&img);
        CHECK(rc == 0, "%s", err.msg);
        CHECK(strcmp(r.config.class_names[p.label], cases[i].want) == 0 && p.prob > 0.5f, "%s: %s %.2f, want %s",
              cases[i].path, r.config.class_names[p.label], (double)p.prob, cases[i].want);
    }
    router_free(&r);
}

static void t_router_dataset_folder_rules(void) {
    NEED_FIXTURE(bar, "images/bar.png");
    NEED_FIXTURE(radio, "images/radio.jpg");
    Error err;
    RouterDataset ds;
    char root[600], dir[700], link[800];
    snprintf(root, sizeof root, "%s/ds", test_tmpdir());
    snprintf(dir, sizeof dir, "%s/chart", root);
    CHECK(mkdir(root, 0755) == 0 && mkdir(dir, 0755) == 0, "mkdir");
    CHECK(router_dataset_load(&ds, root, &err) != 0, "one class loaded");
    char want[1200];
    snprintf(want, sizeof want,
             "%s: found 1 class folders; a router needs 2 to %d (one sub-folder of images per class)", root,
             ROUTER_MAX_CLASSES);
    CHECK(strcmp(err.msg, want) == 0, "got: %s", err.msg);
    snprintf(dir, sizeof dir, "%s/scan", root);
    CHECK(mkdir(dir, 0755) == 0, "mkdir");
    snprintf(link, sizeof link, "%s/chart/chart_fix_1.png", root);
    CHECK(symlink(bar, link) == 0, "symlink");
    snprintf(link, sizeof link, "%s/chart/README.txt", root);
    CHECK(symlink(bar, link) == 0, "symlink");
    CHECK(router_dataset_load(&ds, root, &err) != 0, "empty class loaded");
    snprintf(want, sizeof want, "%s/scan: class folder holds no .png, .jpg or .jpeg image", root);
    CHECK(strcmp(err.msg, want) == 0, "got: %s", err.msg);
    snprintf(link, sizeof link, "%s/scan/scan_fix_1.JPG", root);
    CHECK(symlink(radio, link) == 0, "symlink");
    CHECK(router_dataset_load(&ds, root, &err) == 0, "%s", err.msg);
    CHECK(ds.n == 2 && ds.n_classes == 2 && strcmp(ds.class_names[1], "scan") == 0 && ds.y[1] == 1 &&
              strcmp(ds.groups[0], "fix") == 0,
          "dataset: n %d", ds.n);
    router_dataset_free(&ds);
}

/* Several data folders: classes merged by folder name, a folder of one
 * class allowed beside a full one, sources still from the file names. */
static void t_router_dataset_many_folders(void) {
    NEED_FIXTURE(bar, "images/bar.png");
    NEED_FIXTURE(radio, "images/radio.jpg");
    Error err;
    RouterDataset ds;
    char a[600], b[600], dir[700], link[800];
    snprintf(a, sizeof a, "%s/many-a", test_tmpdir());
    snprintf(b, sizeof b, "%s/many-b", test_tmpdir());
    CHECK(mkdir(a, 0755) == 0 && mkdir(b, 0755) == 0, "mkdir");
    const char *files[][3] = {{a, "chart", "chart_real_1.png"}, {a, "chart", "chart_real_2.png"},
                              {a, "scan", "scan_real_1.jpg"},   {b, "chart", "chart_extra_1.png"},
                              {b, "other", "other_extra_1.png"}, {b, "other", "other_extra_2.png"}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(dir, sizeof dir, "%s/%s", files[i][0], files[i][1]);
        mkdir(dir, 0755);
        snprintf(link, sizeof link, "%s/%s", dir, files[i][2]);
        CHECK(symlink(files[i][1][0] == 's' ? radio : bar, link) == 0, "symlink %s", link);
    }
    const char *dirs[2] = {a, b};
    CHECK(router_dataset_load_many(&ds, dirs, 2, &err) == 0, "%s", err.msg);
    CHECK(ds.n == 6 && ds.n_classes == 3, "n %d, classes %d", ds.n, ds.n_classes);
    CHECK(strcmp(ds.class_names[0], "chart") == 0 && strcmp(ds.class_names[1], "other") == 0 &&
              strcmp(ds.class_names[2], "scan") == 0,
          "classes %s %s %s", ds.class_names[0], ds.class_names[1], ds.class_names[2]);
    int per_class[3] = {0}, extra = 0;
    for (int i = 0; i < ds.n; i++) per_class[ds.y[i]]++, extra += strcmp(ds.groups[i], "extra") == 0;
    CHECK(per_class[0] == 3 && per_class[1] == 2 && per_class[2] == 1 && extra == 3, "counts %d %d %d, extra %d",
          per_class[0], per_class[1], per_class[2], extra);
    router_dataset_free(&ds);
    /* b alone has two classes too, but a folder of one class alone is not a data set */
    snprintf(dir, sizeof dir, "%s/other", b);
    const char *one[1] = {dir};
    CHECK(router_dataset_load_many(&ds, one, 1, &err) != 0, "a folder of images loaded as a data set");
    /* an empty folder among several is named */
    snprintf(dir, sizeof dir, "%s/many-empty", test_tmpdir());
    CHECK(mkdir(dir, 0755) == 0, "mkdir");
    const char *with_empty[2] = {a, dir};
    CHECK(router_dataset_load_many(&ds, with_empty, 2, &err) != 0, "empty data folder accepted");
    char want[1200];
    snprintf(want, sizeof want, "%s: holds no class folder (one sub-folder of images per class)", dir);
    CHECK(strcmp(err.msg, want) == 0, "got: %s", err.msg);

    /* every image of a folder counts its weight */
    const float w[2] = {1.0f, 0.25f}, bad_w[2] = {1.0f, 0.0f};
    CHECK(router_dataset_load_weighted(&ds, dirs, w, 2, &err) == 0, "%s", err.msg);
    int weights_ok = ds.n == 6 && ds.weight;
    for (int i = 0; i < ds.n && weights_ok; i++)
        weights_ok = ds.weight[i] == (strcmp(ds.groups[i], "extra") == 0 ? 0.25f : 1.0f);
    CHECK(weights_ok, "weights of a weighted load");
    router_dataset_free(&ds);
    CHECK(router_dataset_load_weighted(&ds, dirs, bad_w, 2, &err) != 0, "weight 0 accepted");
    snprintf(want, sizeof want, "%s: weight 0; a data folder's weight must be in (0, 1000]", b);
    CHECK(strcmp(err.msg, want) == 0, "got: %s", err.msg);

    static char out[1 << 14], errout[1 << 12];
    char args[2000];
    snprintf(args, sizeof args, "router train --data '%s' --data '%s' --out '%s/many.st' --epochs 5", a, b,
             test_tmpdir());
    int rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(rc == 0 && strstr(out, "chart        3 images\n") && strstr(out, "other        2 images\n"),
          "train on two folders: %d %s %s", rc, out, errout);
    /* DIR:WEIGHT, and the weights change the router */
    snprintf(args, sizeof args, "router train --data '%s' --data '%s:0.25' --out '%s/many-w.st' --epochs 5", a, b,
             test_tmpdir());
    rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    CHECK(rc == 0 && strstr(out, "chart        3 images (weight 2.25)") &&
              strstr(out, "other        2 images (weight 0.5)") && strstr(out, "scan         1 images (weight 1)"),
          "train with a weighted folder: %d %s %s", rc, out, errout);
    char p1[800], p2[800];
    snprintf(p1, sizeof p1, "%s/many.st", test_tmpdir());
    snprintf(p2, sizeof p2, "%s/many-w.st", test_tmpdir());
    Router plain, weighted;
    CHECK(router_load(&plain, p1, &err) == 0 && router_load(&weighted, p2, &err) == 0, "%s", err.msg);
    CHECK(max_diff_weights(&plain, &weighted), "weight 0.25 gave the same router as no weight");
    router_free(&plain), router_free(&weighted);
    snprintf(args, sizeof args, "router cv --data '%s' --data '%s:0' --epochs 5", a, b);
    rc = test_vmed(args, out, sizeof out, errout, sizeof errout);
    snprintf(want, sizeof want, "vmed router cv: --data '%s:0': the weight must be a number in (0, 1000]", b);
    CHECK(rc == 2 && strncmp(errout, want, strlen(want)) == 0, "got %d: %s", rc, errout);
}

static void t_router_cli(void) {
    static char out[1 << 14], errout[1 << 12];
    CHECK(test_vmed("router --help", out, sizeof out, errout, sizeof errout) == 0 && strstr(out, "vmed router cv"),
          "router --help: %s", out);
    CHECK(test_vmed("route --help", out, sizeof out, errout, sizeof errout) == 0 && strstr(out, "--router FILE"),
          "route --help: %s", out);
    CHECK(test_vmed("router train --out x", out, sizeof out, errout, sizeof errout) == 2, "exit code");
    CHECK(strcmp(errout, "vmed router train: --data DIR is required (see 'vmed router train --help')\n") == 0,
          "got: %s", errout);
    CHECK(test_vmed("router cv --data d --frob", out, sizeof out, errout, sizeof errout) == 2 &&
              strcmp(errout, "vmed router cv: unknown option '--frob' (see 'vmed router cv --help')\n") == 0,
          "got: %s", errout);
    CHECK(test_vmed("router train --data d --out f --epochs many", out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "option '--epochs' wants an integer in 0..1000000, got 'many'"),
          "got: %s", errout);
    CHECK(test_vmed("router fly", out, sizeof out, errout, sizeof errout) == 2 &&
              strcmp(errout, "vmed router: unknown subcommand 'fly' (train, eval or cv) (see 'vmed router --help')\n") == 0,
          "got: %s", errout);
    CHECK(test_vmed("router eval --data d", out, sizeof out, errout, sizeof errout) == 2 &&
              strstr(errout, "the router FILE is required"),
          "got: %s", errout);
    CHECK(test_vmed("route", out, sizeof out, errout, sizeof errout) == 2 &&
              strcmp(errout, "vmed route: at least one IMAGE is required (see 'vmed route --help')\n") == 0,
          "got: %s", errout);
    char args[1200];
    snprintf(args, sizeof args, "route --router '%s/absent.st' x.png", test_tmpdir());
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 1, "missing router: exit code");
    char want[1200];
    snprintf(want, sizeof want, "vmed route: %s/absent.st: no such router file\n", test_tmpdir());
    CHECK(strcmp(errout, want) == 0, "got: %s", errout);
    CHECK(test_vmed("router train --data /nonexistent-vmed --out x", out, sizeof out, errout, sizeof errout) == 1 &&
              strcmp(errout, "vmed router train: /nonexistent-vmed: cannot open folder\n") == 0,
          "got: %s", errout);

    NEED_FIXTURE(radio, "images/radio.jpg");
    snprintf(args, sizeof args, "route --router '%s/assets/router.safetensors' '%s'", VMED_SOURCE_DIR, radio);
    CHECK(test_vmed(args, out, sizeof out, errout, sizeof errout) == 0 && strncmp(out, "radiology 0.", 12) == 0,
          "route radio.jpg: %s %s", out, errout);
}

void suite_router(void) {
    RUN(t_router_flatten_hides_alpha_and_gray);
    RUN(t_router_train_deterministic_and_learns);
    RUN(t_router_sample_weights);
    RUN(t_router_robust_to_jpeg_like_noise);
    RUN(t_router_save_load_round_trip);
    RUN(t_router_load_errors_name_the_file);
    RUN(t_router_source_of);
    RUN(t_router_shipped_weights_route_seed_images);
    RUN(t_router_dataset_folder_rules);
    RUN(t_router_dataset_many_folders);
    RUN(t_router_cli);
}
