/* The machine's limits that the benchmarks are measured against:
 * - memory read bandwidth, the ceiling for decoding (every weight is read
 *   once per token): a buffer far larger than the caches, read with 1..N
 *   threads, best of several passes;
 * - peak f32 FLOP/s, the ceiling for prefill: independent AVX2 FMA chains
 *   that never touch memory. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/threads.h"

typedef struct {
    const uint64_t *buf;
    long n;
    uint64_t sink[64];
} ReadJob;

static void read_worker(void *ctx, int ith, int nth) {
    ReadJob *J = ctx;
    long lo, hi;
    split_range(J->n, ith, nth, &lo, &hi);
    /* Eight independent lanes: XOR keeps the loop load-bound and vectorised. */
    uint64_t acc[8] = {0};
    for (long i = lo; i + 8 <= hi; i += 8)
        for (int j = 0; j < 8; j++) acc[j] ^= J->buf[i + j];
    J->sink[ith % 64] = acc[0] ^ acc[1] ^ acc[2] ^ acc[3] ^ acc[4] ^ acc[5] ^ acc[6] ^ acc[7];
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    long iters;
    float sink[64];
} FmaJob;

/* 10 independent accumulators cover the FMA latency x throughput product of
 * current x86 cores (4-5 cycles x 2 ports). */
static void fma_worker(void *ctx, int ith, int nth) {
    FmaJob *J = ctx;
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    /* named registers, not an array, so nothing is spilled to memory */
    __m256 a0 = _mm256_set1_ps(ith + 0.f), a1 = _mm256_set1_ps(ith + 1.f), a2 = _mm256_set1_ps(ith + 2.f),
           a3 = _mm256_set1_ps(ith + 3.f), a4 = _mm256_set1_ps(ith + 4.f), a5 = _mm256_set1_ps(ith + 5.f),
           a6 = _mm256_set1_ps(ith + 6.f), a7 = _mm256_set1_ps(ith + 7.f), a8 = _mm256_set1_ps(ith + 8.f),
           a9 = _mm256_set1_ps(ith + 9.f);
    for (long i = 0; i < J->iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c);
        a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c);
        a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c);
        a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(a8, a9));
    J->sink[ith % 64] = _mm256_cvtss_f32(s);
}

static void peak_flops(int max_threads) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        printf("peak threads 1: no AVX2/FMA on this CPU, not measured\n");
        return;
    }
    FmaJob J = {20000000, {0}};
    for (int nth = 1; nth <= max_threads; nth++) {
        ThreadPool *pool = NULL;
        Error err;
        if (nth > 1 && pool_create(&pool, nth, &err)) return;
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t = now_s();
            pool_run(pool, fma_worker, &J);
            t = now_s() - t;
            if (t < best) best = t;
        }
        pool_free(pool);
        double flops = (double)J.iters * 10 * 8 * 2 * nth;
        printf("peak threads %d: %.1f GFLOP/s f32 (AVX2 FMA)\n", nth, flops / best / 1e9);
    }
}

int main(int argc, char **argv) {
    size_t bytes = (size_t)1 << 30;
    int max_threads = argc > 1 ? atoi(argv[1]) : cpu_count();
    if (max_threads < 1) max_threads = 1;
    uint64_t *buf = malloc(bytes);
    if (!buf) {
        fprintf(stderr, "limits: cannot allocate %zu bytes\n", bytes);
        return 1;
    }
    memset(buf, 1, bytes);
    ReadJob J = {buf, (long)(bytes / 8), {0}};
    for (int nth = 1; nth <= max_threads; nth++) {
        ThreadPool *pool = NULL;
        Error err;
        if (nth > 1 && pool_create(&pool, nth, &err)) {
            fprintf(stderr, "limits: %s\n", err.msg);
            return 1;
        }
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double t = now_s();
            pool_run(pool, read_worker, &J);
            t = now_s() - t;
            if (t < best) best = t;
        }
        pool_free(pool);
        printf("membw threads %d: %.2f GB/s\n", nth, (double)bytes / best / 1e9);
    }
    free(buf);
    peak_flops(max_threads);
    return (int)(J.sink[0] & 0); /* keep the reads */
}
