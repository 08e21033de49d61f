/* Kernels: every SIMD path equals the scalar reference on random data,
 * including sizes that leave tails; conversions are exact. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/threads.h"
#include "tensor/matmul.h"
#include "tensor/ops.h"
#include "test.h"

void suite_tensor(void);

static float frand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void t_f16_conversion_exact(void) {
    /* Every f16 value survives f16 -> f32 -> f16, and the AVX2 converter
     * agrees with the scalar one on all 65536 patterns. */
    uint16_t *all = malloc(65536 * 2);
    float *a = malloc(65536 * 4), *b = malloc(65536 * 4);
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    for (int i = 0; i < 65536; i++) a[i] = f16_to_f32(all[i]);
    convert_to_f32(kernel_best(), b, all, DT_F16, 65536);
    int bad = -1, bad_conv = -1;
    for (int i = 0; i < 65536; i++) {
        int is_nan = ((i >> 10) & 0x1f) == 0x1f && (i & 0x3ff);
        if (!is_nan && f32_to_f16(a[i]) != (uint16_t)i && bad < 0) bad = i;
        if (memcmp(&a[i], &b[i], 4) != 0 && bad_conv < 0) bad_conv = i;
    }
    free(all);
    free(a);
    free(b);
    CHECK(bad < 0, "f16 pattern 0x%04x does not round-trip", bad);
    CHECK(bad_conv < 0, "AVX2 f16 conversion differs at 0x%04x", bad_conv);
    CHECK(f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "round to nearest even (down)");
    CHECK(f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02, "round to nearest even (up)");
    CHECK(f32_to_f16(65520.0f) == 0x7c00, "overflow to inf");
    CHECK(f32_to_bf16(1.0f + 1.0f / 256) == 0x3f80, "bf16 ties to even");
    CHECK(bf16_to_f32(0x3f81) == 1.0078125f, "bf16 widening");
}

/* y = x W^T for several shapes, every dtype and level, 1 and 2 threads,
 * against the double-accumulating reference. */
static void check_matmul(long n, long m, long k, DType dt, int nth) {
    unsigned seed = (unsigned)(n * 131 + m * 7 + k + dt);
    float *x = malloc((size_t)(n * k) * 4), *wf = malloc((size_t)(m * k) * 4);
    void *w = malloc((size_t)(m * k) * 4);
    for (long i = 0; i < n * k; i++) x[i] = frand(&seed);
    for (long i = 0; i < m * k; i++) {
        float v = frand(&seed);
        if (dt == DT_F16) ((uint16_t *)w)[i] = f32_to_f16(v);
        else if (dt == DT_BF16) ((uint16_t *)w)[i] = f32_to_bf16(v);
        else ((float *)w)[i] = v;
    }
    int64_t shape[2] = {m, k};
    Tensor W = tensor_view(dt, w, 2, shape);
    float *ref = malloc((size_t)(n * m) * 4), *got = malloc((size_t)(n * m) * 4);
    float *scratch = malloc(matmul_scratch_floats(nth, k) * 4);
    matmul_ref(ref, x, n, &W);
    ThreadPool *pool = NULL;
    Error err;
    if (nth > 1 && pool_create(&pool, nth, &err) != 0) pool = NULL;
    float worst = 0;
    for (int level = 0; level <= (int)kernel_best(); level++) {
        memset(got, 0xff, (size_t)(n * m) * 4); /* NaNs: any unwritten output fails */
        matmul(pool, (KernelLevel)level, got, x, n, &W, scratch);
        float d = max_abs_diff(got, ref, (size_t)(n * m));
        if (!(d <= worst)) worst = d;
    }
    pool_free(pool);
    free(x); free(wf); free(w); free(ref); free(got); free(scratch);
    /* f32 sums of k products of values in [-1,1]: rounding grows ~sqrt(k) */
    float tol = 1e-6f * (float)k;
    CHECK(worst <= tol, "matmul %ldx%ldx%ld %s threads %d: max diff %g > %g", n, m, k, dtype_name(dt), nth, worst, tol);
}

static void t_matmul_levels_agree(void) {
    long shapes[][3] = {{1, 1, 1}, {1, 7, 5}, {1, 33, 64}, {1, 17, 263}, {2, 5, 9}, {3, 21, 100},
                        {5, 37, 257}, {16, 64, 64}, {7, 19, 600}, {33, 50, 513}};
    DType dts[] = {DT_F32, DT_F16, DT_BF16};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int d = 0; d < 3; d++)
            for (int nth = 1; nth <= 3; nth += 2) {
                check_matmul(shapes[i][0], shapes[i][1], shapes[i][2], dts[d], nth);
                if (test_failed()) return;
            }
}

/* The decode kernel takes rows r, r + q, r + 2q, r + 3q together (the
 * quarters of the range), with 8-element steps and a 1-element tail in k
 * and one-row leftovers in j: k = 77 = 9*8 + 5, rows 0..12 (quarters of 3
 * rows and one leftover) and rows 1..12 (quarters of 3, none left, and
 * row 0 must stay unwritten) reach every one of them, for each weight
 * dtype. */
static void t_matvec_rows_levels_agree(void) {
    if (kernel_best() == KERNEL_SCALAR) {
        test_skip("this CPU has no AVX2: only the scalar path exists");
        return;
    }
    unsigned seed = 7;
    long m = 13, k = 77;
    float x[77], w[13 * 77], a[13], b[13];
    uint16_t h[13 * 77];
    for (long i = 0; i < k; i++) x[i] = frand(&seed);
    for (long i = 0; i < m * k; i++) w[i] = frand(&seed);
    DType dts[] = {DT_F32, DT_F16, DT_BF16};
    for (int d = 0; d < 3; d++) {
        const void *wp = w;
        if (dts[d] != DT_F32) {
            for (long i = 0; i < m * k; i++) h[i] = dts[d] == DT_F16 ? f32_to_f16(w[i]) : f32_to_bf16(w[i]);
            wp = h;
        }
        for (long j0 = 0; j0 <= 1; j0++) {
            memset(b, 0xff, sizeof b); /* NaNs: an unwritten row fails */
            matvec_rows(KERNEL_SCALAR, a, x, wp, dts[d], j0, m, k);
            matvec_rows(KERNEL_AVX2, b, x, wp, dts[d], j0, m, k);
            float diff = max_abs_diff(a + j0, b + j0, (size_t)(m - j0));
            CHECK(diff < 1e-5f, "avx2 matvec %s from row %ld differs by %g", dtype_name(dts[d]), j0, diff);
            if (j0 == 1) CHECK(isnan(b[0]), "avx2 matvec %s from row 1 wrote row 0", dtype_name(dts[d]));
        }
    }
}

static void t_rmsnorm_softmax_rope(void) {
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 2, 0.5f}, out[4];
    rmsnorm(out, x, w, 4, 0);
    float r = sqrtf((1 + 4 + 9 + 16) / 4.0f);
    CHECK(fabsf(out[2] - 2 * 3 / r) < 1e-6f && fabsf(out[3] - 0.5f * 4 / r) < 1e-6f, "rmsnorm");
    float s[3] = {1000, 1000, 999}; /* exp would overflow without the max subtracted */
    softmax(s, 3);
    CHECK(fabsf(s[0] - 1 / (2 + expf(-1))) < 1e-6f && fabsf(s[2] - expf(-1) / (2 + expf(-1))) < 1e-6f, "softmax with large values: %g %g", s[0], s[2]);
    /* rotate_half pairs i with i + d/2: a 90-degree turn maps (a, b) -> (-b, a) */
    float v[4] = {1, 2, 3, 4}, c[2] = {0, 0}, sn[2] = {1, 1};
    rope_rotate_half(v, 1, 4, c, sn);
    CHECK(v[0] == -3 && v[1] == -4 && v[2] == 1 && v[3] == 2, "rope rotate_half layout: %g %g %g %g", v[0], v[1], v[2], v[3]);
}

static void t_softmax_avx2_matches_scalar(void) {
    if (kernel_best() == KERNEL_SCALAR) {
        test_skip("this CPU has no AVX2: only the scalar path exists");
        return;
    }
    unsigned seed = 3;
    for (long n = 1; n < 300; n += 37) {
        float a[300], b[300];
        for (long i = 0; i < n; i++) a[i] = b[i] = 30.0f * frand(&seed) - (i % 5 == 0 ? 100.0f : 0.0f);
        softmax(a, n);
        softmax_avx2(b, n);
        float worst = 0;
        for (long i = 0; i < n; i++) {
            float d = fabsf(a[i] - b[i]) / (a[i] > 1e-30f ? a[i] : 1e-30f);
            if (a[i] > 1e-20f && d > worst) worst = d;
        }
        CHECK(worst < 2e-6f, "n %ld: relative difference %g", n, worst);
    }
}

static void t_activations_avx2_match_scalar(void) {
    if (kernel_best() == KERNEL_SCALAR) {
        test_skip("this CPU has no AVX2: only the scalar path exists");
        return;
    }
    float a[203], b[203], c[203], d[203], e[203], f[203], g[203], h[203], up[203];
    for (int i = 0; i < 203; i++) {
        a[i] = b[i] = c[i] = d[i] = e[i] = f[i] = -40.0f + 80.0f * (float)i / 202.0f + 0.013f * (float)(i % 7);
        g[i] = h[i] = -6.0f + 12.0f * (float)i / 202.0f + 0.0013f * (float)(i % 7); /* where GELU bends */
        up[i] = 0.5f - (float)(i % 11) / 7.0f;
    }
    /* beyond exp's range on both sides: silu is x and 0 there, never inf or NaN */
    e[0] = f[0] = -200.0f, e[1] = f[1] = 200.0f;
    swiglu(e, up, 203);
    swiglu_avx2(f, up, 203);
    gelu_erf(g, 203);
    gelu_erf_avx2(h, 203);
    quick_gelu(a, 203);
    quick_gelu_avx2(b, 203);
    gelu_tanh(c, 203);
    gelu_tanh_avx2(d, 203);
    for (int i = 0; i < 203; i++) {
        float tol = 2e-6f * (1.0f + fabsf(a[i]));
        CHECK(fabsf(a[i] - b[i]) <= tol, "quick_gelu at %d: %g vs %g", i, a[i], b[i]);
        tol = 2e-6f * (1.0f + fabsf(c[i]));
        CHECK(fabsf(c[i] - d[i]) <= tol, "gelu_tanh at %d: %g vs %g", i, c[i], d[i]);
        tol = 2e-6f * (1.0f + fabsf(e[i]));
        CHECK(fabsf(e[i] - f[i]) <= tol, "swiglu at %d: %g vs %g", i, e[i], f[i]);
        tol = 2e-6f * (1.0f + fabsf(g[i]));
        CHECK(fabsf(g[i] - h[i]) <= tol, "gelu_erf at %d: %g vs %g", i, g[i], h[i]);
    }
}

static void add_one(void *ctx, int ith, int nth) {
    int *hits = ctx;
    long lo, hi;
    split_range(1000, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) hits[i]++;
}

static void t_thread_pool_covers_range_once(void) {
    Error err;
    ThreadPool *p;
    CHECK(pool_create(&p, 3, &err) == 0, "%s", err.msg);
    int hits[1000] = {0};
    for (int rep = 0; rep < 200; rep++) pool_run(p, add_one, hits);
    pool_free(p);
    for (int i = 0; i < 1000; i++) CHECK(hits[i] == 200, "index %d ran %d times", i, hits[i]);
    CHECK(pool_create(&p, 0, &err) == -1 && strstr(err.msg, "thread count 0"), "bad count: %s", err.msg);
}

static void add_one_range(void *ctx, long lo, long hi) {
    int *hits = ctx;
    for (long i = lo; i < hi; i++) hits[i]++;
}

/* pool_for: every index once for any count, including counts below the
 * number of workers, 1 (inline) and 0 (nothing). */
static void t_pool_for_covers_range_once(void) {
    Error err;
    ThreadPool *p;
    CHECK(pool_create(&p, 3, &err) == 0, "%s", err.msg);
    static const long counts[] = {0, 1, 2, 3, 4, 7, 1000};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        int hits[1000] = {0};
        for (int rep = 0; rep < 50; rep++) pool_for(p, counts[c], add_one_range, hits);
        for (long i = 0; i < 1000; i++)
            CHECK(hits[i] == (i < counts[c] ? 50 : 0), "n %ld: index %ld ran %d times", counts[c], i, hits[i]);
    }
    pool_free(p);
}

void suite_tensor(void) {
    RUN(t_f16_conversion_exact);
    RUN(t_matmul_levels_agree);
    RUN(t_matvec_rows_levels_agree);
    RUN(t_rmsnorm_softmax_rope);
    RUN(t_softmax_avx2_matches_scalar);
    RUN(t_activations_avx2_match_scalar);
    RUN(t_thread_pool_covers_range_once);
    RUN(t_pool_for_covers_range_once);
}
