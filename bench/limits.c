/* The machine's limits that the benchmarks are measured against:
 * - memory read bandwidth, the ceiling for decoding (every weight is read
 *   once per token): a buffer far larger than the caches, read with 1..N
 *   threads, each reading 1, 2, 3, 4, 6 or 8 sequential streams side by
 *   side, best of several passes and stream counts. One core reads several
 *   streams faster than one (on the development machine 23-30 against
 *   17-21 GB/s), and vmed's decode kernels read four, so a one-stream
 *   probe would put the ceiling below what decoding reaches;
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
    const uint8_t *buf;
    size_t bytes;
    int streams;
    uint64_t sink[64];
} ReadJob;

/* The thread's part of the buffer as J->streams sequential streams, read
 * 64 bytes from each in turn. The streams are not a power of two apart
 * (parts of a 1 GiB buffer would be): addresses that far apart can fall
 * in the same DRAM bank and read slower than any real access pattern. */
static void read_worker(void *ctx, int ith, int nth) {
    ReadJob *J = ctx;
    size_t part = J->bytes / (size_t)nth / 64 * 64;
    const uint8_t *base = J->buf + (size_t)ith * part;
    int S = J->streams;
    size_t len = (part - (S > 1 ? 4096 * (size_t)S + 320 : 0)) / (size_t)S / 64 * 64;
    size_t gap = len + (S > 1 ? 4096 + 64 : 0);
    __m256i x = _mm256_setzero_si256(), y = _mm256_setzero_si256();
    for (size_t o = 0; o < len; o += 64)
        for (int s = 0; s < S; s++) {
            const uint8_t *p = base + (size_t)s * gap + o;
            x = _mm256_xor_si256(x, _mm256_load_si256((const __m256i *)p));
            y = _mm256_xor_si256(y, _mm256_load_si256((const __m256i *)(p + 32)));
        }
    J->sink[ith % 64] = (uint64_t)_mm256_extract_epi64(_mm256_xor_si256(x, y), 0);
}

/* Bytes each pass of read_worker reads in all. */
static size_t read_bytes(const ReadJob *J, int nth) {
    size_t part = J->bytes / (size_t)nth / 64 * 64;
    size_t len = (part - (J->streams > 1 ? 4096 * (size_t)J->streams + 320 : 0)) / (size_t)J->streams / 64 * 64;
    return len * (size_t)J->streams * (size_t)nth;
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
    uint8_t *buf = aligned_alloc(64, bytes);
    if (!buf) {
        fprintf(stderr, "limits: cannot allocate %zu bytes\n", bytes);
        return 1;
    }
    memset(buf, 1, bytes);
    for (int nth = 1; nth <= max_threads; nth++) {
        ThreadPool *pool = NULL;
        Error err;
        if (nth > 1 && pool_create(&pool, nth, &err)) {
            fprintf(stderr, "limits: %s\n", err.msg);
            return 1;
        }
        double best = 0;
        int best_streams = 1;
        const int stream_counts[] = {1, 2, 3, 4, 6, 8};
        for (size_t si = 0; si < sizeof stream_counts / sizeof stream_counts[0]; si++) {
            ReadJob J = {buf, bytes, stream_counts[si], {0}};
            for (int rep = 0; rep < 3; rep++) {
                double t = now_s();
                pool_run(pool, read_worker, &J);
                t = now_s() - t;
                double gbs = (double)read_bytes(&J, nth) / t / 1e9;
                if (gbs > best) best = gbs, best_streams = J.streams;
            }
        }
        pool_free(pool);
        printf("membw threads %d: %.2f GB/s (%d stream%s per thread)\n", nth, best, best_streams,
               best_streams > 1 ? "s" : "");
    }
    free(buf);
    peak_flops(max_threads);
    return 0;
}
