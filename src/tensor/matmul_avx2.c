/* AVX2 + FMA + F16C kernels. Compiled only for this file with -mavx2 -mfma
 * -mf16c and called only after kernel_best() has checked the CPU. */
#include <immintrin.h>

#include "tensor/matmul.h"

/* Inner-dimension chunk of the prefill kernel: one chunk of a 16-row W block
 * (16 KB) and of an activation row pair stay in L1 while they are reused. */
#define KC 256

static inline __m256 load8(const void *w, DType dt, long i) {
    if (dt == DT_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
    if (dt == DT_BF16) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    }
    return _mm256_loadu_ps((const float *)w + i);
}

static inline float load1(const void *w, DType dt, long i) {
    if (dt == DT_F16) return f16_to_f32(((const uint16_t *)w)[i]);
    if (dt == DT_BF16) return bf16_to_f32(((const uint16_t *)w)[i]);
    return ((const float *)w)[i];
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Four horizontal sums at once: lane r of the result is the sum of a_r. */
static inline __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    __m256 s01 = _mm256_hadd_ps(a0, a1);
    __m256 s23 = _mm256_hadd_ps(a2, a3);
    __m256 s = _mm256_hadd_ps(s01, s23);
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

void convert_to_f32_avx2(float *dst, const void *src, DType dt, long count) {
    long i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, load8(src, dt, i));
    for (; i < count; i++) dst[i] = load1(src, dt, i);
}

static float dot_row(const float *x, const void *w, DType dt, long row, long k) {
    long base = row * k;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    long t = 0;
    for (; t + 16 <= k; t += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + t), load8(w, dt, base + t), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + t + 8), load8(w, dt, base + t + 8), a1);
    }
    for (; t + 8 <= k; t += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + t), load8(w, dt, base + t), a0);
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; t < k; t++) s += x[t] * load1(w, dt, base + t);
    return s;
}

void matvec_rows_avx2(float *y, const float *x, const void *w, DType dt, long j0, long j1, long k) {
    long j = j0;
    /* Four rows at a time share each load of x. */
    for (; j + 4 <= j1; j += 4) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        long t = 0;
        for (; t + 8 <= k; t += 8) {
            __m256 xv = _mm256_loadu_ps(x + t);
            a0 = _mm256_fmadd_ps(xv, load8(w, dt, (j + 0) * k + t), a0);
            a1 = _mm256_fmadd_ps(xv, load8(w, dt, (j + 1) * k + t), a1);
            a2 = _mm256_fmadd_ps(xv, load8(w, dt, (j + 2) * k + t), a2);
            a3 = _mm256_fmadd_ps(xv, load8(w, dt, (j + 3) * k + t), a3);
        }
        float s[4];
        _mm_storeu_ps(s, hsum4(a0, a1, a2, a3));
        for (; t < k; t++)
            for (int r = 0; r < 4; r++) s[r] += x[t] * load1(w, dt, (j + r) * k + t);
        for (int r = 0; r < 4; r++) y[j + r] = s[r];
    }
    for (; j < j1; j++) y[j] = dot_row(x, w, dt, j, k);
}

/* 2 activation rows x 4 weight rows over kl inner elements: 8 accumulators,
 * 6 loads per 8 FMAs. Sums come back in out[i*4 + r]. */
static void micro_2x4(const float *x0, const float *x1, const float *w0, const float *w1, const float *w2,
                      const float *w3, long kl, float out[8]) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c02 = _mm256_setzero_ps(),
           c03 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps(),
           c12 = _mm256_setzero_ps(), c13 = _mm256_setzero_ps();
    long t = 0;
    for (; t + 8 <= kl; t += 8) {
        __m256 a = _mm256_loadu_ps(x0 + t), b = _mm256_loadu_ps(x1 + t);
        __m256 v0 = _mm256_loadu_ps(w0 + t), v1 = _mm256_loadu_ps(w1 + t);
        __m256 v2 = _mm256_loadu_ps(w2 + t), v3 = _mm256_loadu_ps(w3 + t);
        c00 = _mm256_fmadd_ps(a, v0, c00);
        c01 = _mm256_fmadd_ps(a, v1, c01);
        c02 = _mm256_fmadd_ps(a, v2, c02);
        c03 = _mm256_fmadd_ps(a, v3, c03);
        c10 = _mm256_fmadd_ps(b, v0, c10);
        c11 = _mm256_fmadd_ps(b, v1, c11);
        c12 = _mm256_fmadd_ps(b, v2, c12);
        c13 = _mm256_fmadd_ps(b, v3, c13);
    }
    _mm_storeu_ps(out, hsum4(c00, c01, c02, c03));
    _mm_storeu_ps(out + 4, hsum4(c10, c11, c12, c13));
    for (; t < kl; t++) {
        out[0] += x0[t] * w0[t];
        out[1] += x0[t] * w1[t];
        out[2] += x0[t] * w2[t];
        out[3] += x0[t] * w3[t];
        out[4] += x1[t] * w0[t];
        out[5] += x1[t] * w1[t];
        out[6] += x1[t] * w2[t];
        out[7] += x1[t] * w3[t];
    }
}

void gemm_block_avx2(float *y, long ldy, const float *x, long n, long k, const float *wblk, long rows,
                     int accumulate) {
    for (long kc = 0; kc < k; kc += KC) {
        long kl = k - kc < KC ? k - kc : KC;
        int add = accumulate || kc > 0;
        for (long i = 0; i < n; i += 2) {
            /* An odd last row is computed twice and stored once. */
            long i1 = i + 1 < n ? i + 1 : i;
            const float *x0 = x + i * k + kc, *x1 = x + i1 * k + kc;
            for (long j = 0; j < rows; j += 4) {
                const float *w[4];
                for (int r = 0; r < 4; r++) w[r] = wblk + (j + r < rows ? j + r : rows - 1) * k + kc;
                float out[8];
                micro_2x4(x0, x1, w[0], w[1], w[2], w[3], kl, out);
                for (int r = 0; r < 4 && j + r < rows; r++) {
                    float *p0 = y + i * ldy + j + r;
                    *p0 = add ? *p0 + out[r] : out[r];
                    if (i1 != i) {
                        float *p1 = y + i1 * ldy + j + r;
                        *p1 = add ? *p1 + out[4 + r] : out[4 + r];
                    }
                }
            }
        }
    }
}
