/* The image-type router: features, MLP, training, file. See router.h. */
#include "models/router.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/file.h"
#include "formats/safetensors.h"
#include "image/flatten.h"
#include "image/resize.h"

#ifndef VMED_ASSETS_DIR
#define VMED_ASSETS_DIR "assets"
#endif

const char *router_default_path(void) {
    const char *env = getenv("VMED_ROUTER");
    return env && *env ? env : VMED_ASSETS_DIR "/router.safetensors";
}

RouterTrainOptions router_train_defaults(void) {
    RouterTrainOptions o = {.hidden = 16, .epochs = 400, .lr = 0.01f, .weight_decay = 0.01f, .seed = 0, .gray_copies = 1};
    return o;
}

/* ---- features ---- */

/* The picture at a fixed scale, so that sizes and counts mean the same for
 * a 64x64 MR and a 512x400 chart. */
typedef struct {
    int w, h;
    const uint8_t *rgb; /* [h, w, 3] */
    float *y;           /* luminance 0..1 */
    float *c;           /* chroma max - min, 0..1 */
    float *gx, *gy;     /* Sobel / 4: a 0 -> 1 step gives 1 */
} WorkImage;

typedef struct {
    float *out;
    int k;
} FeatureSink;

static void put(FeatureSink *s, float v) { s->out[s->k++] = isfinite(v) ? v : 0.0f; }

static float frac(size_t count, size_t total) { return total ? (float)count / (float)total : 0.0f; }

static int near_white(const WorkImage *m, size_t p) { return m->y[p] > 0.92f && m->c[p] < 0.08f; }

static float mag_at(const WorkImage *m, size_t p) { return sqrtf(m->gx[p] * m->gx[p] + m->gy[p] * m->gy[p]); }

static void put_tones(FeatureSink *s, const WorkImage *m) {
    size_t n = (size_t)m->w * (size_t)m->h, h64[64] = {0};
    double sum = 0, sum2 = 0;
    for (size_t p = 0; p < n; p++) {
        int b = (int)(m->y[p] * 64.0f);
        h64[b > 63 ? 63 : b]++;
        sum += m->y[p];
        sum2 += (double)m->y[p] * m->y[p];
    }
    for (int b = 0; b < 8; b++) {
        size_t c = 0;
        for (int i = 0; i < 8; i++) c += h64[8 * b + i];
        put(s, frac(c, n));
    }
    double mean = sum / (double)n, var = sum2 / (double)n - mean * mean;
    put(s, (float)mean);
    put(s, (float)sqrt(var > 0 ? var : 0));
    double ent = 0;
    for (int b = 0; b < 64; b++)
        if (h64[b]) ent -= (double)h64[b] / (double)n * log((double)h64[b] / (double)n);
    put(s, (float)(ent / log(64.0)));
}

/* Scans are gray; charts are white with a few flat colours; photos and
 * histology are colourful everywhere. */
static void put_colour(FeatureSink *s, const WorkImage *m) {
    size_t n = (size_t)m->w * (size_t)m->h, gray = 0, c20 = 0, c50 = 0, white = 0, black = 0;
    double csum = 0, rg = 0, rg2 = 0, yb = 0, yb2 = 0;
    for (size_t p = 0; p < n; p++) {
        float c = m->c[p];
        gray += c < 0.05f;
        c20 += c > 0.2f;
        c50 += c > 0.5f;
        white += near_white(m, p);
        black += m->y[p] < 0.08f;
        csum += c;
        const uint8_t *q = m->rgb + 3 * p;
        double a = (double)q[0] - q[1], b = 0.5 * ((double)q[0] + q[1]) - q[2];
        rg += a, rg2 += a * a, yb += b, yb2 += b * b;
    }
    rg /= (double)n, yb /= (double)n;
    double vrg = rg2 / (double)n - rg * rg, vyb = yb2 / (double)n - yb * yb;
    double colourful = sqrt((vrg > 0 ? vrg : 0) + (vyb > 0 ? vyb : 0)) + 0.3 * sqrt(rg * rg + yb * yb);
    put(s, frac(gray, n));
    put(s, (float)(csum / (double)n));
    put(s, frac(c20, n));
    put(s, frac(c50, n));
    put(s, (float)(colourful / 100.0));
    put(s, frac(white, n));
    put(s, frac(black, n));
    /* the hue the image leans to: histology pink, fundus orange, Doppler red and blue */
    put(s, (float)(rg / 100.0));
    put(s, (float)(yb / 100.0));
}

static int by_count_desc(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Rendered figures use a handful of colours; photographs and scans spread
 * over many. Coverage of the top bins survives JPEG noise better than a
 * count of distinct colours would. */
static void put_palette(FeatureSink *s, const WorkImage *m) {
    size_t n = (size_t)m->w * (size_t)m->h, bins[512] = {0};
    for (size_t p = 0; p < n; p++) {
        const uint8_t *q = m->rgb + 3 * p;
        bins[(q[0] >> 5) << 6 | (q[1] >> 5) << 3 | q[2] >> 5]++;
    }
    qsort(bins, 512, sizeof bins[0], by_count_desc);
    size_t top = 0, used = 0;
    float cover[3] = {0};
    for (int i = 0; i < 512; i++) {
        top += bins[i];
        if (i == 0) cover[0] = frac(top, n);
        if (i == 3) cover[1] = frac(top, n);
        if (i == 15) cover[2] = frac(top, n);
        used += bins[i] * 1000 >= n;
    }
    for (int i = 0; i < 3; i++) put(s, cover[i]);
    put(s, (float)(log2(1.0 + (double)used) / 9.0));
}

/* Rendered areas are exactly flat; scans and photos carry noise. */
static void put_flatness(FeatureSink *s, const WorkImage *m) {
    size_t flat = 0, flat_colour = 0, flat_mid = 0, total = 0;
    double lap = 0;
    for (int y = 1; y + 1 < m->h; y++)
        for (int x = 1; x + 1 < m->w; x++) {
            size_t p = (size_t)y * (size_t)m->w + (size_t)x;
            float v = m->y[p];
            float dx = fabsf(m->y[p + 1] - v), dy = fabsf(m->y[p + (size_t)m->w] - v);
            int is_flat = dx <= 2.0f / 255.0f && dy <= 2.0f / 255.0f;
            flat += is_flat;
            flat_colour += is_flat && m->c[p] > 0.2f;
            flat_mid += is_flat && v > 0.08f && v < 0.92f;
            lap += fabsf(4 * v - m->y[p - 1] - m->y[p + 1] - m->y[p - (size_t)m->w] - m->y[p + (size_t)m->w]);
            total++;
        }
    put(s, frac(flat, total));
    put(s, frac(flat_colour, total));
    put(s, frac(flat_mid, total));
    put(s, total ? (float)(lap / (double)total) : 0.0f);
    /* fine texture against edge strength: photos are grainy, scans smooth */
    double msum = 0;
    for (size_t p = 0; p < (size_t)m->w * (size_t)m->h; p++) msum += mag_at(m, p);
    put(s, total ? (float)(lap / (double)total / (msum / ((double)m->w * m->h) + 0.01)) : 0.0f);
}

/* Charts are drawn with axis-aligned strokes; anatomy and photos have
 * edges in every direction. */
static void put_gradients(FeatureSink *s, const WorkImage *m) {
    size_t n = (size_t)m->w * (size_t)m->h, e10 = 0, e30 = 0;
    double msum = 0, orient[8] = {0}, osum = 0, edge_chroma = 0;
    for (size_t p = 0; p < n; p++) {
        float g = mag_at(m, p);
        msum += g;
        e30 += g > 0.3f;
        if (g <= 0.1f) continue;
        e10++;
        edge_chroma += m->c[p];
        /* direction modulo pi, bins centred on 0, pi/8, ... so that bins 0
         * and 4 are exactly horizontal and vertical gradients */
        float a = atan2f(m->gy[p], m->gx[p]);
        if (a < 0) a += (float)M_PI;
        int b = (int)floorf(a / (float)(M_PI / 8) + 0.5f) & 7;
        orient[b] += g;
        osum += g;
    }
    put(s, (float)(msum / (double)n));
    put(s, frac(e10, n));
    put(s, frac(e30, n));
    for (int b = 0; b < 8; b++) put(s, osum > 0 ? (float)(orient[b] / osum) : 0.0f);
    put(s, e10 ? (float)(edge_chroma / (double)e10) : 0.0f);
}

/* Longest run of line pixels along one row (horizontal) or column, gaps
 * of up to 2 pixels bridged: axes and gridlines span most of the plot.
 * *start is where the run begins. */
static int longest_run(const WorkImage *m, int fixed, int horizontal, int *start) {
    int len = horizontal ? m->w : m->h, best = 0, run = 0, gap = 0;
    *start = 0;
    for (int i = 0; i < len; i++) {
        size_t p = horizontal ? (size_t)fixed * (size_t)m->w + (size_t)i : (size_t)i * (size_t)m->w + (size_t)fixed;
        float along = horizontal ? fabsf(m->gx[p]) : fabsf(m->gy[p]);
        float across = horizontal ? fabsf(m->gy[p]) : fabsf(m->gx[p]);
        if (across > 0.1f && across > 2 * along) {
            run += gap + 1;
            gap = 0;
            if (run > best) best = run, *start = i + 1 - run;
        } else if (run && ++gap > 2) {
            run = gap = 0;
        }
    }
    return best;
}

static void put_lines(FeatureSink *s, const WorkImage *m) {
    int *start = malloc(2 * (size_t)(m->w + m->h) * sizeof *start), *run = start ? start + m->w + m->h : NULL;
    for (int horizontal = 1; horizontal >= 0; horizontal--) {
        int n_lines = horizontal ? m->h : m->w, len = horizontal ? m->w : m->h, best = 0, n_long = 0;
        for (int i = 0; i < n_lines; i++) {
            int st, r = longest_run(m, i, horizontal, &st);
            if (start) start[(horizontal ? 0 : m->h) + i] = st, run[(horizontal ? 0 : m->h) + i] = r;
            if (r > best) best = r;
            n_long += r * 10 > len * 3;
        }
        put(s, (float)best / (float)len);
        put(s, (float)n_long / (float)n_lines);
    }
    /* An axis corner: a long vertical line whose bottom end meets the left
     * end of a long horizontal one. Boxes and connectors in diagrams are
     * shorter or meet otherwise. */
    int corner = 0, tol = 3 + (m->w > m->h ? m->w : m->h) / 32;
    for (int y = 0; y < m->h && start && !corner; y++) {
        if (run[y] * 10 <= m->w * 3) continue;
        for (int x = 0; x < m->w && !corner; x++) {
            int vs = start[m->h + x], vr = run[m->h + x];
            corner = vr * 10 > m->h * 3 && abs(start[y] - x) <= tol && abs(vs + vr - 1 - y) <= tol;
        }
    }
    put(s, (float)corner);
    free(start);
}

/* Scans sit on black or have a dark frame; figures have white margins. */
static void put_margins(FeatureSink *s, const WorkImage *m) {
    int bw = (int)lrintf(0.04f * (float)(m->w < m->h ? m->w : m->h));
    if (bw < 1) bw = 1;
    size_t nb = 0, dark = 0, white = 0, ninner = 0;
    double sum = 0, sum2 = 0, inner = 0;
    for (int y = 0; y < m->h; y++)
        for (int x = 0; x < m->w; x++) {
            size_t p = (size_t)y * (size_t)m->w + (size_t)x;
            int border = x < bw || y < bw || x >= m->w - bw || y >= m->h - bw;
            int centre = 4 * x >= m->w && 4 * x < 3 * m->w && 4 * y >= m->h && 4 * y < 3 * m->h;
            if (centre) inner += m->y[p], ninner++;
            if (!border) continue;
            nb++;
            sum += m->y[p], sum2 += (double)m->y[p] * m->y[p];
            dark += m->y[p] < 0.1f;
            white += near_white(m, p);
        }
    double mean = nb ? sum / (double)nb : 0, var = nb ? sum2 / (double)nb - mean * mean : 0;
    put(s, (float)mean);
    put(s, frac(dark, nb));
    put(s, frac(white, nb));
    put(s, (float)sqrt(var > 0 ? var : 0));
    put(s, (float)((ninner ? inner / (double)ninner : mean) - mean));
    /* rows and columns of one tone (background bands), and of paper white */
    for (int horizontal = 1; horizontal >= 0; horizontal--) {
        int n_lines = horizontal ? m->h : m->w, len = horizontal ? m->w : m->h, uniform = 0;
        for (int i = 0; i < n_lines; i++) {
            float lo = 1, hi = 0;
            for (int j = 0; j < len; j++) {
                float v = m->y[horizontal ? (size_t)i * (size_t)m->w + (size_t)j : (size_t)j * (size_t)m->w + (size_t)i];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
            uniform += hi - lo < 0.06f;
        }
        put(s, (float)uniform / (float)n_lines);
    }
    for (int horizontal = 1; horizontal >= 0; horizontal--) {
        int n_lines = horizontal ? m->h : m->w, len = horizontal ? m->w : m->h, paper = 0;
        for (int i = 0; i < n_lines; i++) {
            int nw = 0;
            for (int j = 0; j < len; j++)
                nw += near_white(m, horizontal ? (size_t)i * (size_t)m->w + (size_t)j : (size_t)j * (size_t)m->w + (size_t)i);
            paper += nw * 20 >= len * 19;
        }
        put(s, (float)paper / (float)n_lines);
    }
}

/* Marks with strong contrast two pixels away: text, tick labels, thin
 * strokes, in either polarity (dark-mode charts). Then where that ink lies
 * on a 3 x 3 grid, as shares of it: a chart's tick labels and axis titles
 * line its left and bottom edges around a sparse plot area, while the
 * labels of a diagram, table or slide sit inside its boxes and rows. */
static void put_ink(FeatureSink *s, const WorkImage *m) {
    size_t ink = 0, n = (size_t)m->w * (size_t)m->h, cells[9] = {0};
    for (int y = 2; y + 2 < m->h; y++)
        for (int x = 2; x + 2 < m->w; x++) {
            size_t p = (size_t)y * (size_t)m->w + (size_t)x, w = (size_t)m->w;
            float v = m->y[p], a = fabsf(m->y[p - 2] - v), b = fabsf(m->y[p + 2] - v);
            float c = fabsf(m->y[p - 2 * w] - v), d = fabsf(m->y[p + 2 * w] - v);
            int is_ink = a > 0.5f || b > 0.5f || c > 0.5f || d > 0.5f;
            ink += is_ink;
            cells[3 * (3 * y / m->h) + 3 * x / m->w] += is_ink;
        }
    put(s, frac(ink, n));
    for (int i = 0; i < 9; i++) put(s, frac(cells[i], ink));
}

/* Mean luminance of the cells of a g x g grid over the image. */
static void grid_means(const WorkImage *m, int g, float *out) {
    for (int gy = 0; gy < g; gy++)
        for (int gx = 0; gx < g; gx++) {
            int x0 = gx * m->w / g, x1 = (gx + 1) * m->w / g, y0 = gy * m->h / g, y1 = (gy + 1) * m->h / g;
            if (x1 <= x0) x1 = x0 + 1;
            if (y1 <= y0) y1 = y0 + 1;
            double sum = 0;
            size_t cnt = 0;
            for (int y = y0; y < y1 && y < m->h; y++)
                for (int x = x0; x < x1 && x < m->w; x++) sum += m->y[(size_t)y * (size_t)m->w + (size_t)x], cnt++;
            out[gy * g + gx] = cnt ? (float)(sum / (double)cnt) : 0.0f;
        }
}

/* The coarse layout: where the bright and dark masses are. */
static void put_thumbnail(FeatureSink *s, const WorkImage *m) {
    float cells[16];
    grid_means(m, 4, cells);
    for (int i = 0; i < 16; i++) put(s, cells[i]);
}

/* Bodies are scanned head-on: axial slices and chest films are nearly
 * mirror-symmetric, photographs rarely are. Measured at 16 x 16 so that
 * small misplacements do not count, relative to the image's contrast. */
static void put_symmetry(FeatureSink *s, const WorkImage *m) {
    float c[256];
    grid_means(m, 16, c);
    double mean = 0, var = 0, lr = 0, tb = 0;
    for (int i = 0; i < 256; i++) mean += c[i] / 256.0;
    for (int i = 0; i < 256; i++) var += (c[i] - mean) * (c[i] - mean) / 256.0;
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++) {
            lr += fabsf(c[y * 16 + x] - c[y * 16 + 15 - x]) / 256.0;
            tb += fabsf(c[y * 16 + x] - c[(15 - y) * 16 + x]) / 256.0;
        }
    double sd = sqrt(var) + 0.02;
    put(s, (float)(lr / sd));
    put(s, (float)(tb / sd));
}

static void compute_planes(WorkImage *m) {
    size_t n = (size_t)m->w * (size_t)m->h;
    for (size_t p = 0; p < n; p++) {
        const uint8_t *q = m->rgb + 3 * p;
        int hi = q[0] > q[1] ? q[0] : q[1], lo = q[0] < q[1] ? q[0] : q[1];
        hi = q[2] > hi ? q[2] : hi;
        lo = q[2] < lo ? q[2] : lo;
        m->y[p] = (0.299f * q[0] + 0.587f * q[1] + 0.114f * q[2]) / 255.0f;
        m->c[p] = (float)(hi - lo) / 255.0f;
    }
    /* Sobel with clamped borders */
    for (int y = 0; y < m->h; y++)
        for (int x = 0; x < m->w; x++) {
            int xm = x > 0 ? x - 1 : x, xp = x + 1 < m->w ? x + 1 : x;
            int ym = y > 0 ? y - 1 : y, yp = y + 1 < m->h ? y + 1 : y;
#define Y(xx, yy) m->y[(size_t)(yy) * (size_t)m->w + (size_t)(xx)]
            float gx = Y(xp, ym) + 2 * Y(xp, y) + Y(xp, yp) - Y(xm, ym) - 2 * Y(xm, y) - Y(xm, yp);
            float gy = Y(xm, yp) + 2 * Y(x, yp) + Y(xp, yp) - Y(xm, ym) - 2 * Y(x, ym) - Y(xp, ym);
#undef Y
            m->gx[(size_t)y * (size_t)m->w + (size_t)x] = gx / 4;
            m->gy[(size_t)y * (size_t)m->w + (size_t)x] = gy / 4;
        }
}

int router_features(const Image *rgb, float *out, Error *err) {
    if (!rgb->data || rgb->channels != 3 || rgb->bits != 8)
        return error_set(err, "router_features: wants a flattened 8-bit RGB image, got %d channels x %d bits",
                         rgb->channels, rgb->bits);
    int longer = rgb->width > rgb->height ? rgb->width : rgb->height;
    int w = (int)lrint((double)rgb->width * ROUTER_WORK_SIZE / longer);
    int h = (int)lrint((double)rgb->height * ROUTER_WORK_SIZE / longer);
    w = w < 1 ? 1 : w;
    h = h < 1 ? 1 : h;
    Image small;
    if (image_resize_pil_bicubic(&small, rgb, w, h, err)) return -1;
    size_t n = (size_t)w * (size_t)h;
    float *planes = malloc(4 * n * sizeof *planes);
    if (!planes) {
        image_free(&small);
        return error_set(err, "router_features: out of memory for a %dx%d working image", w, h);
    }
    WorkImage m = {w, h, small.data, planes, planes + n, planes + 2 * n, planes + 3 * n};
    compute_planes(&m);
    FeatureSink s = {out, 0};
    put_tones(&s, &m);
    put_colour(&s, &m);
    put_palette(&s, &m);
    put_flatness(&s, &m);
    put_gradients(&s, &m);
    put_lines(&s, &m);
    put_margins(&s, &m);
    put_ink(&s, &m);
    put_thumbnail(&s, &m);
    put_symmetry(&s, &m);
    free(planes);
    image_free(&small);
    if (s.k != ROUTER_N_FEATURES)
        return error_set(err, "router_features: computed %d features, ROUTER_N_FEATURES is %d", s.k,
                         ROUTER_N_FEATURES);
    return 0;
}

/* PIL's convert("L") weights, replicated back to RGB. */
static void desaturate(Image *rgb) {
    size_t n = (size_t)rgb->width * (size_t)rgb->height;
    for (size_t p = 0; p < n; p++) {
        uint8_t *q = rgb->data + 3 * p;
        q[0] = q[1] = q[2] = (uint8_t)((q[0] * 19595u + q[1] * 38470u + q[2] * 7471u + 0x8000u) >> 16);
    }
}

/* out_gray (may be NULL): the features of the same image made gray. */
static int features_of_file(const char *path, float *out, float *out_gray, Error *err) {
    Image img, rgb;
    if (image_load(&img, path, NULL, err)) return -1;
    int rc = image_flatten_rgb(&rgb, &img, err);
    image_free(&img);
    if (rc) return error_prefix(err, "%s", path);
    rc = router_features(&rgb, out, err);
    if (!rc && out_gray) {
        desaturate(&rgb);
        rc = router_features(&rgb, out_gray, err);
    }
    image_free(&rgb);
    return rc ? error_prefix(err, "%s", path) : 0;
}

int router_features_file(const char *path, float *out, Error *err) { return features_of_file(path, out, NULL, err); }

/* ---- the network ---- */

static float *alloc_floats(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static int router_alloc(Router *r, int n_features, int hidden, int n_classes) {
    RouterWeights *w = &r->w;
    size_t F = (size_t)n_features, H = (size_t)hidden, C = (size_t)n_classes;
    r->config.n_features = n_features;
    r->config.hidden = hidden;
    r->config.n_classes = n_classes;
    r->config.feature_version = ROUTER_FEATURE_VERSION;
    r->config.class_names = calloc(C, sizeof(char *));
    w->mean = alloc_floats(F);
    w->std = alloc_floats(F);
    w->w1 = alloc_floats(H * F);
    w->b1 = alloc_floats(H);
    w->w2 = alloc_floats(C * H);
    w->b2 = alloc_floats(C);
    return r->config.class_names && w->mean && w->std && w->w1 && w->b1 && w->w2 && w->b2 ? 0 : -1;
}

void router_free(Router *r) {
    if (r->config.class_names)
        for (int i = 0; i < r->config.n_classes; i++) free(r->config.class_names[i]);
    free(r->config.class_names);
    RouterWeights *w = &r->w;
    free(w->mean), free(w->std), free(w->w1), free(w->b1), free(w->w2), free(w->b2);
    memset(r, 0, sizeof *r);
}

int router_class_index(const Router *r, const char *name) {
    for (int i = 0; i < r->config.n_classes; i++)
        if (strcmp(r->config.class_names[i], name) == 0) return i;
    return -1;
}

/* h = tanh(W1 z + b1), logits = W2 h + b2 for standardized z. */
static void forward(const Router *r, const float *z, float *h, float *logits) {
    const RouterConfig *c = &r->config;
    const RouterWeights *w = &r->w;
    for (int j = 0; j < c->hidden; j++) {
        const float *row = w->w1 + (size_t)j * (size_t)c->n_features;
        float a = w->b1[j];
        for (int f = 0; f < c->n_features; f++) a += row[f] * z[f];
        h[j] = tanhf(a);
    }
    for (int k = 0; k < c->n_classes; k++) {
        const float *row = w->w2 + (size_t)k * (size_t)c->hidden;
        float a = w->b2[k];
        for (int j = 0; j < c->hidden; j++) a += row[j] * h[j];
        logits[k] = a;
    }
}

static void softmax(float *x, int n) {
    float mx = x[0], sum = 0;
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) sum += x[i] = expf(x[i] - mx);
    for (int i = 0; i < n; i++) x[i] /= sum;
}

static void standardize(const Router *r, const float *x, float *z) {
    for (int f = 0; f < r->config.n_features; f++) z[f] = (x[f] - r->w.mean[f]) / r->w.std[f];
}

int router_predict_features(const Router *r, const float *x, RouterPrediction *out) {
    float z[ROUTER_N_FEATURES], *h = alloc_floats((size_t)r->config.hidden);
    memset(out, 0, sizeof *out);
    if (!h) return -1;
    standardize(r, x, z);
    forward(r, z, h, out->probs);
    free(h);
    softmax(out->probs, r->config.n_classes);
    for (int k = 1; k < r->config.n_classes; k++)
        if (out->probs[k] > out->probs[out->label]) out->label = k;
    out->prob = out->probs[out->label];
    return out->label;
}

int router_predict(const Router *r, const Image *img, RouterPrediction *out, Error *err) {
    float x[ROUTER_N_FEATURES];
    Image rgb;
    if (image_flatten_rgb(&rgb, img, err)) return -1;
    int rc = router_features(&rgb, x, err);
    image_free(&rgb);
    if (rc) return -1;
    if (router_predict_features(r, x, out) < 0) return error_set(err, "router_predict: out of memory");
    return 0;
}

/* ---- training ---- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float uniform(uint64_t *s, float a) { return ((float)(splitmix64(s) >> 40) / 16777216.0f * 2 - 1) * a; }

typedef struct {
    float *m, *v;
} AdamMoments;

static void adam_step(float *p, const float *g, AdamMoments *mo, size_t n, const RouterTrainOptions *o, int t,
                      int decay) {
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float c1 = 1 - powf(b1, (float)t), c2 = 1 - powf(b2, (float)t);
    for (size_t i = 0; i < n; i++) {
        mo->m[i] = b1 * mo->m[i] + (1 - b1) * g[i];
        mo->v[i] = b2 * mo->v[i] + (1 - b2) * g[i] * g[i];
        if (decay) p[i] -= o->lr * o->weight_decay * p[i];
        p[i] -= o->lr * (mo->m[i] / c1) / (sqrtf(mo->v[i] / c2) + eps);
    }
}

/* Weighted mean and deviation of each feature over the training rows (rw
 * NULL: all 1); constant features get deviation 1 so they standardize to 0. */
static void fit_standardization(Router *r, const float *const *rows, const float *rw, int n) {
    int F = r->config.n_features;
    double wsum = 0;
    for (int i = 0; i < n; i++) wsum += rw ? rw[i] : 1.0;
    for (int f = 0; f < F; f++) {
        double sum = 0, sum2 = 0;
        for (int i = 0; i < n; i++) sum += (rw ? rw[i] : 1.0) * rows[i][f];
        double mean = sum / wsum;
        for (int i = 0; i < n; i++) sum2 += (rw ? rw[i] : 1.0) * (rows[i][f] - mean) * (rows[i][f] - mean);
        double sd = sqrt(sum2 / wsum);
        r->w.mean[f] = (float)mean;
        r->w.std[f] = sd > 1e-6 ? (float)sd : 1.0f;
    }
}

/* One full-batch gradient of the class-weighted cross-entropy. */
static void gradient(const Router *r, const float *z, const int *y, const float *sw, int n, float *gw1, float *gb1,
                     float *gw2, float *gb2, float *h, float *p) {
    int F = r->config.n_features, H = r->config.hidden, C = r->config.n_classes;
    memset(gw1, 0, (size_t)H * F * sizeof *gw1);
    memset(gb1, 0, (size_t)H * sizeof *gb1);
    memset(gw2, 0, (size_t)C * H * sizeof *gw2);
    memset(gb2, 0, (size_t)C * sizeof *gb2);
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * F;
        forward(r, zi, h, p);
        softmax(p, C);
        /* dL/dlogits = (p - onehot) * weight */
        for (int k = 0; k < C; k++) p[k] = (p[k] - (k == y[i])) * sw[i];
        for (int k = 0; k < C; k++) {
            gb2[k] += p[k];
            for (int j = 0; j < H; j++) gw2[(size_t)k * H + j] += p[k] * h[j];
        }
        for (int j = 0; j < H; j++) {
            float dh = 0;
            for (int k = 0; k < C; k++) dh += p[k] * r->w.w2[(size_t)k * H + j];
            dh *= 1 - h[j] * h[j];
            gb1[j] += dh;
            for (int f = 0; f < F; f++) gw1[(size_t)j * F + f] += dh * zi[f];
        }
    }
}

static int copy_names(char **dst, char *const *src, int n) {
    for (int i = 0; i < n; i++)
        if (!(dst[i] = strdup(src[i]))) return -1;
    return 0;
}

/* The rows trained on: each chosen image, and its gray copy when the data
 * set has them and the options want them, with their labels and weights
 * (*rw NULL when the data set has none). */
static int training_rows(const RouterDataset *ds, const int *idx, int n_idx, int gray, const float ***rows, int **y,
                         float **rw) {
    int n = n_idx * (gray ? 2 : 1);
    *rows = malloc((size_t)n * sizeof **rows);
    *y = malloc((size_t)n * sizeof **y);
    *rw = ds->weight ? malloc((size_t)n * sizeof **rw) : NULL;
    if (!*rows || !*y || (ds->weight && !*rw)) return -1;
    for (int i = 0; i < n_idx; i++) {
        int s = idx ? idx[i] : i;
        (*rows)[i] = ds->x + (size_t)s * ROUTER_N_FEATURES;
        (*y)[i] = ds->y[s];
        if (*rw) (*rw)[i] = ds->weight[s];
        if (!gray) continue;
        (*rows)[n_idx + i] = ds->x_gray + (size_t)s * ROUTER_N_FEATURES;
        (*y)[n_idx + i] = ds->y[s];
        if (*rw) (*rw)[n_idx + i] = ds->weight[s];
    }
    return n;
}

int router_train(Router *r, const RouterDataset *ds, const int *idx, int n_idx, const RouterTrainOptions *opt,
                 Error *err) {
    memset(r, 0, sizeof *r);
    int F = ROUTER_N_FEATURES, H = opt->hidden, C = ds->n_classes;
    if (!idx) n_idx = ds->n;
    if (n_idx < 1) return error_set(err, "router_train: no training images");
    if (H < 1 || H > 4096 || opt->epochs < 0 || !(opt->lr > 0))
        return error_set(err, "router_train: bad options (hidden %d, epochs %d, lr %g)", H, opt->epochs,
                         (double)opt->lr);
    if (C < 2 || C > ROUTER_MAX_CLASSES)
        return error_set(err, "router_train: %d classes; a router needs 2 to %d", C, ROUTER_MAX_CLASSES);
    const float **rows = NULL;
    float *rw = NULL;
    int *y = NULL, n = training_rows(ds, idx, n_idx, opt->gray_copies && ds->x_gray, &rows, &y, &rw);
    for (int i = 0; i < n && rw; i++)
        if (!(rw[i] > 0) || !isfinite(rw[i])) {
            double bad = rw[i];
            free(rows), free(y), free(rw);
            return error_set(err, "router_train: image weight %g; weights must be positive", bad);
        }
    size_t P = (size_t)H * F + H + (size_t)C * H + C, nz = (size_t)(n > 0 ? n : 0) * F;
    float *scratch = n > 0 ? alloc_floats(3 * P + nz + (size_t)n + H + C) : NULL;
    if (n < 0 || !scratch || router_alloc(r, F, H, C) || copy_names(r->config.class_names, ds->class_names, C)) {
        free(scratch), free(rows), free(y), free(rw);
        router_free(r);
        return error_set(err, "router_train: out of memory");
    }
    /* gradients, Adam m, Adam v (each laid out w1 b1 w2 b2), then z,
     * sample weights, h, p */
    float *z = scratch + 3 * P, *sw = z + nz, *h = sw + n, *p = h + H;
    size_t sizes[4] = {(size_t)H * F, (size_t)H, (size_t)C * H, (size_t)C};
    float *params[4] = {r->w.w1, r->w.b1, r->w.w2, r->w.b2}, *grads[4];
    AdamMoments mo[4];
    for (size_t t = 0, off = 0; t < 4; off += sizes[t], t++) {
        grads[t] = scratch + off;
        mo[t].m = scratch + P + off;
        mo[t].v = scratch + 2 * P + off;
    }

    fit_standardization(r, rows, rw, n);
    /* each class present gets total weight 1/present, shared among its
     * rows in proportion to their weights */
    float mass[ROUTER_MAX_CLASSES] = {0};
    int present = 0;
    for (int i = 0; i < n; i++) mass[y[i]] += rw ? rw[i] : 1.0f;
    for (int k = 0; k < C; k++) present += mass[k] > 0;
    for (int i = 0; i < n; i++) {
        sw[i] = (rw ? rw[i] : 1.0f) / ((float)present * mass[y[i]]);
        standardize(r, rows[i], z + (size_t)i * F);
    }
    uint64_t rng = opt->seed;
    float a1 = sqrtf(6.0f / (float)(F + H)), a2 = sqrtf(6.0f / (float)(H + C));
    for (size_t i = 0; i < sizes[0]; i++) r->w.w1[i] = uniform(&rng, a1);
    for (size_t i = 0; i < sizes[2]; i++) r->w.w2[i] = uniform(&rng, a2);

    for (int e = 1; e <= opt->epochs; e++) {
        gradient(r, z, y, sw, n, grads[0], grads[1], grads[2], grads[3], h, p);
        for (int t = 0; t < 4; t++) adam_step(params[t], grads[t], &mo[t], sizes[t], opt, e, t == 0 || t == 2);
    }
    free(scratch), free(rows), free(y), free(rw);
    return 0;
}

int router_cross_validate(const RouterDataset *ds, const RouterTrainOptions *opt, int *pred, float *prob,
                          Error *err) {
    int *idx = malloc((size_t)(ds->n ? ds->n : 1) * sizeof *idx);
    char *done = calloc((size_t)(ds->n ? ds->n : 1), 1);
    if (!idx || !done) {
        free(idx), free(done);
        return error_set(err, "router_cross_validate: out of memory");
    }
    int n_groups = 0;
    for (int i = 0; i < ds->n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = strcmp(ds->groups[i], ds->groups[j]) == 0;
        n_groups += !seen;
    }
    if (n_groups < 2) {
        free(idx), free(done);
        return error_set(err, "cross-validation needs images from at least two sources, found %d", n_groups);
    }
    for (int i = 0; i < ds->n; i++) {
        if (done[i]) continue;
        int n_train = 0;
        for (int j = 0; j < ds->n; j++)
            if (strcmp(ds->groups[j], ds->groups[i]) != 0) idx[n_train++] = j;
        Router r;
        if (router_train(&r, ds, idx, n_train, opt, err)) {
            free(idx), free(done);
            return error_prefix(err, "fold '%s'", ds->groups[i]);
        }
        for (int j = 0; j < ds->n; j++) {
            if (strcmp(ds->groups[j], ds->groups[i]) != 0) continue;
            RouterPrediction pr;
            pred[j] = router_predict_features(&r, ds->x + (size_t)j * ROUTER_N_FEATURES, &pr);
            if (prob) prob[j] = pr.prob;
            done[j] = 1;
        }
        router_free(&r);
    }
    free(idx), free(done);
    return 0;
}

/* ---- data set ---- */

void router_source_of(const char *filename, const char *class_name, char *out, size_t cap) {
    if (!cap) return;
    const char *base = strrchr(filename, '/');
    base = base ? base + 1 : filename;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base) n = (size_t)(dot - base);
    size_t end = n;
    while (end > 0 && base[end - 1] >= '0' && base[end - 1] <= '9') end--;
    if (end > 0 && end < n && base[end - 1] == '_') n = end - 1;
    size_t start = 0, cl = strlen(class_name);
    if (cl < n && strncmp(base, class_name, cl) == 0 && base[cl] == '_') start = cl + 1;
    n -= start;
    if (n >= cap) n = cap - 1;
    memcpy(out, base + start, n);
    out[n] = 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
}

/* Names in dir (no hidden ones) that are folders (want_dirs) or image
 * files, sorted. */
static int list_dir(const char *dir, int want_dirs, char ***names, int *n, Error *err) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return error_set(err, "%s: cannot open folder", dir);
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[2048];
        if (path_join(path, sizeof path, dir, e->d_name, err)) goto fail;
        if (want_dirs ? !dir_exists(path) : dir_exists(path) || !is_image_name(e->d_name)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(*names, (size_t)cap * sizeof *grown);
            if (!grown) goto oom;
            *names = grown;
        }
        if (!((*names)[*n] = strdup(e->d_name))) goto oom;
        ++*n;
    }
    closedir(d);
    if (*n) qsort(*names, (size_t)*n, sizeof **names, by_name);
    return 0;
oom:
    error_set(err, "%s: out of memory listing the folder", dir);
fail:
    closedir(d);
    for (int i = 0; i < *n; i++) free((*names)[i]);
    free(*names);
    *names = NULL;
    *n = 0;
    return -1;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Class names end up newline-joined in the file and printed in tables. */
static int check_class_name(const char *name, const char *where, Error *err) {
    size_t n = strlen(name);
    if (n == 0 || n >= ROUTER_MAX_NAME)
        return error_set(err, "%s: class name '%s' must be 1 to %d bytes", where, name, ROUTER_MAX_NAME - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return error_set(err, "%s: class name '%s' holds a control character", where, name);
    return 0;
}

void router_dataset_free(RouterDataset *ds) {
    free_names(ds->class_names, ds->n_classes);
    free_names(ds->paths, ds->n);
    free_names(ds->groups, ds->n);
    free(ds->x), free(ds->x_gray), free(ds->y), free(ds->weight);
    memset(ds, 0, sizeof *ds);
}

static int dataset_add(RouterDataset *ds, int *cap, const char *path, const char *file, int label, float weight,
                       Error *err) {
    if (ds->n == *cap) {
        int nc = *cap ? 2 * *cap : 256;
        float *x = realloc(ds->x, (size_t)nc * ROUTER_N_FEATURES * sizeof *x);
        if (x) ds->x = x;
        float *xg = realloc(ds->x_gray, (size_t)nc * ROUTER_N_FEATURES * sizeof *xg);
        if (xg) ds->x_gray = xg;
        int *y = realloc(ds->y, (size_t)nc * sizeof *y);
        if (y) ds->y = y;
        char **p = realloc(ds->paths, (size_t)nc * sizeof *p);
        if (p) ds->paths = p;
        char **g = realloc(ds->groups, (size_t)nc * sizeof *g);
        if (g) ds->groups = g;
        float *wt = ds->weight ? realloc(ds->weight, (size_t)nc * sizeof *wt) : NULL;
        if (wt) ds->weight = wt;
        if (!x || !xg || !y || !p || !g || (ds->weight && !wt)) return error_set(err, "%s: out of memory", path);
        *cap = nc;
    }
    size_t off = (size_t)ds->n * ROUTER_N_FEATURES;
    if (features_of_file(path, ds->x + off, ds->x_gray + off, err)) return -1;
    char group[256];
    router_source_of(file, ds->class_names[label], group, sizeof group);
    ds->y[ds->n] = label;
    if (ds->weight) ds->weight[ds->n] = weight;
    ds->paths[ds->n] = strdup(path);
    ds->groups[ds->n] = strdup(group);
    if (!ds->paths[ds->n] || !ds->groups[ds->n]) {
        free(ds->paths[ds->n]), free(ds->groups[ds->n]);
        return error_set(err, "%s: out of memory", path);
    }
    ds->n++;
    return 0;
}

/* Adds name to the sorted set ds->class_names unless it is there already. */
static int add_class_name(RouterDataset *ds, const char *name) {
    int at = 0, n = ds->n_classes;
    while (at < n && strcmp(ds->class_names[at], name) < 0) at++;
    if (at < n && strcmp(ds->class_names[at], name) == 0) return 0;
    char **grown = realloc(ds->class_names, (size_t)(n + 1) * sizeof *grown), *copy = strdup(name);
    if (grown) ds->class_names = grown;
    if (!grown || !copy) {
        free(copy);
        return -1;
    }
    memmove(grown + at + 1, grown + at, (size_t)(n - at) * sizeof *grown);
    grown[at] = copy;
    ds->n_classes++;
    return 0;
}

/* The class folders of every dir, merged by name and sorted. One dir must
 * hold two classes by itself; with several, each adds at least one (a folder
 * of extra images of one class is the point of giving several). */
static int collect_classes(RouterDataset *ds, const char *const *dirs, int n_dirs, Error *err) {
    for (int d = 0; d < n_dirs; d++) {
        char **names;
        int n;
        if (list_dir(dirs[d], 1, &names, &n, err)) return -1;
        if (n_dirs > 1 && n == 0) {
            free_names(names, n);
            return error_set(err, "%s: holds no class folder (one sub-folder of images per class)", dirs[d]);
        }
        for (int i = 0; i < n; i++) {
            if (check_class_name(names[i], dirs[d], err)) {
                free_names(names, n);
                return -1;
            }
            if (add_class_name(ds, names[i])) {
                free_names(names, n);
                return error_set(err, "%s: out of memory", dirs[d]);
            }
        }
        free_names(names, n);
    }
    if (ds->n_classes >= 2 && ds->n_classes <= ROUTER_MAX_CLASSES) return 0;
    if (n_dirs == 1)
        return error_set(err, "%s: found %d class folders; a router needs 2 to %d (one sub-folder of images per class)",
                         dirs[0], ds->n_classes, ROUTER_MAX_CLASSES);
    return error_set(err, "%s and %d more data folders: found %d classes; a router needs 2 to %d", dirs[0], n_dirs - 1,
                     ds->n_classes, ROUTER_MAX_CLASSES);
}

int router_dataset_load_weighted(RouterDataset *ds, const char *const *dirs, const float *weights, int n_dirs,
                                 Error *err) {
    memset(ds, 0, sizeof *ds);
    if (n_dirs < 1) return error_set(err, "router_dataset_load_many: no data folder");
    for (int d = 0; d < n_dirs && weights; d++)
        if (!(weights[d] > 0 && weights[d] <= 1000))
            return error_set(err, "%s: weight %g; a data folder's weight must be in (0, 1000]", dirs[d],
                             (double)weights[d]);
    int cap = 0;
    /* a non-NULL weight array from the start, grown with the others */
    if (weights && !(ds->weight = malloc(sizeof *ds->weight))) return error_set(err, "%s: out of memory", dirs[0]);
    if (collect_classes(ds, dirs, n_dirs, err)) goto fail;
    for (int d = 0; d < n_dirs; d++) {
        char **classes;
        int n_here;
        if (list_dir(dirs[d], 1, &classes, &n_here, err)) goto fail;
        for (int c = 0; c < n_here; c++) {
            char sub[2048], path[4096];
            char **files;
            int n_files, k = 0;
            while (k < ds->n_classes && strcmp(ds->class_names[k], classes[c]) != 0) k++;
            if (path_join(sub, sizeof sub, dirs[d], classes[c], err) || list_dir(sub, 0, &files, &n_files, err)) {
                free_names(classes, n_here);
                goto fail;
            }
            int bad = 1;
            if (k == ds->n_classes) /* a folder made while loading */
                error_set(err, "%s: class folder appeared while the data was being read", sub);
            else if (!n_files)
                error_set(err, "%s: class folder holds no .png, .jpg or .jpeg image", sub);
            else
                bad = 0;
            for (int i = 0; i < n_files && !bad; i++)
                bad = path_join(path, sizeof path, sub, files[i], err) ||
                      dataset_add(ds, &cap, path, files[i], k, weights ? weights[d] : 1.0f, err);
            free_names(files, n_files);
            if (bad) {
                free_names(classes, n_here);
                goto fail;
            }
        }
        free_names(classes, n_here);
    }
    return 0;
fail:
    router_dataset_free(ds);
    return -1;
}

int router_dataset_load_many(RouterDataset *ds, const char *const *dirs, int n_dirs, Error *err) {
    return router_dataset_load_weighted(ds, dirs, NULL, n_dirs, err);
}

int router_dataset_load(RouterDataset *ds, const char *dir, Error *err) {
    return router_dataset_load_many(ds, &dir, 1, err);
}

/* ---- the file ---- */

static const char *TENSOR_NAMES[6] = {"router.mean", "router.std", "router.w1", "router.b1", "router.w2", "router.b2"};

int router_save(const Router *r, const char *path, Error *err) {
    const RouterConfig *c = &r->config;
    size_t need = 1;
    for (int k = 0; k < c->n_classes; k++) need += strlen(c->class_names[k]) + 1;
    char *classes = malloc(need), version[16];
    if (!classes) return error_set(err, "%s: out of memory", path);
    classes[0] = 0;
    for (int k = 0; k < c->n_classes; k++) {
        if (k) strcat(classes, "\n");
        strcat(classes, c->class_names[k]);
    }
    snprintf(version, sizeof version, "%d", c->feature_version);
    int64_t F = c->n_features, H = c->hidden, C = c->n_classes;
    StTensor t[6] = {0};
    int64_t shapes[6][2] = {{F}, {F}, {H, F}, {H}, {C, H}, {C}};
    float *data[6] = {r->w.mean, r->w.std, r->w.w1, r->w.b1, r->w.w2, r->w.b2};
    StWriter *w;
    if (st_writer_open(&w, path, err)) {
        free(classes);
        return -1;
    }
    int bad = st_writer_set_metadata(w, "format", "vmed-router", err) ||
              st_writer_set_metadata(w, "feature_version", version, err) ||
              st_writer_set_metadata(w, "classes", classes, err);
    free(classes);
    for (int i = 0; i < 6 && !bad; i++) {
        t[i].ndim = i == 2 || i == 4 ? 2 : 1;
        t[i].nbytes = (size_t)(t[i].ndim == 2 ? shapes[i][0] * shapes[i][1] : shapes[i][0]) * sizeof(float);
        bad = st_writer_add(w, TENSOR_NAMES[i], DT_F32, t[i].ndim, shapes[i], err);
    }
    for (int i = 0; i < 6 && !bad; i++) bad = st_writer_write(w, data[i], t[i].nbytes, err);
    if (bad) {
        st_writer_abort(w);
        return -1;
    }
    return st_writer_close(w, err);
}

static void shape_str(const StTensor *t, char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < t->ndim && n < cap; d++)
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (n < cap) snprintf(out + n, cap - n, "]");
}

/* Finds name, checks it is F32 of the wanted shape (-1: any size, then
 * filled in), and copies it out (file data may be misaligned). */
static int load_tensor(const SafeTensors *st, const char *path, const char *name, int ndim, int64_t *dims, float **dst,
                       Error *err) {
    const StTensor *t = st_find(st, name);
    if (!t) return error_set(err, "%s: tensor '%s' is missing", path, name);
    if (t->dtype != DT_F32) return error_set(err, "%s: tensor '%s' is not F32", path, name);
    int ok = t->ndim == ndim;
    for (int d = 0; d < ndim && ok; d++) {
        if (dims[d] < 0 && t->shape[d] >= 1 && t->shape[d] <= 4096) dims[d] = t->shape[d];
        ok = t->shape[d] == dims[d];
    }
    if (!ok) {
        char got[96], want[96] = "[";
        shape_str(t, got, sizeof got);
        for (int d = 0; d < ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "", (long long)dims[d]);
        strcat(want, "]");
        return error_set(err, "%s: tensor '%s' has shape %s, expected %s", path, name, got, want);
    }
    size_t n = t->nbytes / sizeof(float);
    if (!(*dst = alloc_floats(n))) return error_set(err, "%s: out of memory", path);
    memcpy(*dst, t->data, t->nbytes);
    for (size_t i = 0; i < n; i++)
        if (!isfinite((*dst)[i]))
            return error_set(err, "%s: tensor '%s' holds a non-finite value at index %zu", path, name, i);
    return 0;
}

static int load_classes(Router *r, const char *path, const char *joined, Error *err) {
    int n = 1;
    for (const char *p = joined; *p; p++) n += *p == '\n';
    if (n < 2 || n > ROUTER_MAX_CLASSES)
        return error_set(err, "%s: __metadata__ 'classes' names %d classes; a router needs 2 to %d", path, n,
                         ROUTER_MAX_CLASSES);
    if (!(r->config.class_names = calloc((size_t)n, sizeof(char *)))) return error_set(err, "%s: out of memory", path);
    r->config.n_classes = n;
    const char *p = joined;
    for (int k = 0; k < n; k++) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (!(r->config.class_names[k] = strndup(p, len))) return error_set(err, "%s: out of memory", path);
        if (check_class_name(r->config.class_names[k], path, err)) return -1;
        for (int j = 0; j < k; j++)
            if (strcmp(r->config.class_names[j], r->config.class_names[k]) == 0)
                return error_set(err, "%s: class '%s' appears twice in __metadata__ 'classes'", path,
                                 r->config.class_names[k]);
        p = end ? end + 1 : p + len;
    }
    return 0;
}

static int router_from_file(Router *r, const SafeTensors *st, const char *path, Error *err) {
    const char *format = st_metadata(st, "format"), *version = st_metadata(st, "feature_version"),
               *classes = st_metadata(st, "classes");
    if (!format || strcmp(format, "vmed-router") != 0)
        return error_set(err, "%s: not a vmed router file (__metadata__ 'format' is '%s', expected 'vmed-router')",
                         path, format ? format : "(missing)");
    char want[16];
    snprintf(want, sizeof want, "%d", ROUTER_FEATURE_VERSION);
    if (!version || strcmp(version, want) != 0)
        return error_set(err,
                         "%s: the router was trained on features version '%s' but this vmed computes version %d; "
                         "retrain it (scripts/train-router.sh)",
                         path, version ? version : "(missing)", ROUTER_FEATURE_VERSION);
    if (!classes) return error_set(err, "%s: __metadata__ 'classes' is missing", path);
    if (load_classes(r, path, classes, err)) return -1;
    r->config.feature_version = ROUTER_FEATURE_VERSION;
    r->config.n_features = ROUTER_N_FEATURES;
    int64_t F = ROUTER_N_FEATURES, C = r->config.n_classes, H = -1;
    int64_t d_mean[1] = {F}, d_std[1] = {F}, d_b1[1] = {H}, d_w1[2], d_w2[2], d_b2[1] = {C};
    if (load_tensor(st, path, "router.mean", 1, d_mean, &r->w.mean, err) ||
        load_tensor(st, path, "router.std", 1, d_std, &r->w.std, err) ||
        load_tensor(st, path, "router.b1", 1, d_b1, &r->w.b1, err))
        return -1;
    H = d_b1[0];
    d_w1[0] = H, d_w1[1] = F, d_w2[0] = C, d_w2[1] = H;
    if (load_tensor(st, path, "router.w1", 2, d_w1, &r->w.w1, err) ||
        load_tensor(st, path, "router.w2", 2, d_w2, &r->w.w2, err) ||
        load_tensor(st, path, "router.b2", 1, d_b2, &r->w.b2, err))
        return -1;
    r->config.hidden = (int)H;
    for (int f = 0; f < ROUTER_N_FEATURES; f++)
        if (!(r->w.std[f] > 0))
            return error_set(err, "%s: tensor 'router.std' holds %g at index %d; deviations must be positive", path,
                             (double)r->w.std[f], f);
    for (int i = 0; i < st->n_tensors; i++) {
        int known = 0;
        for (int j = 0; j < 6; j++) known |= strcmp(st->tensors[i].name, TENSOR_NAMES[j]) == 0;
        if (!known) return error_set(err, "%s: unexpected tensor '%s'", path, st->tensors[i].name);
    }
    return 0;
}

int router_load(Router *r, const char *path, Error *err) {
    memset(r, 0, sizeof *r);
    if (!file_exists(path)) return error_set(err, "%s: no such router file", path);
    SafeTensors st;
    if (st_open(&st, path, err)) return -1;
    int rc = router_from_file(r, &st, path, err);
    st_close(&st);
    if (rc) router_free(r);
    return rc;
}
