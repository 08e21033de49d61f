/* AVX2 + FMA + F16C kernels. Compiled only for this file with -mavx2 -mfma
 * -mf16c and called only after kernel_best() has checked the CPU. */
#include <immintrin.h>
#include <math.h>

#include "tensor/matmul.h"

/* Inner-dimension chunk of the prefill kernel: every chunk after the first
 * adds its partial tile into y, so fewer chunks mean fewer passes over y.
 * A 2048 x 16 panel chunk (128 KB) is reused by every activation row from
 * L2; on Zen 3 a 134M prefill ran 419-427 tokens/s with 512-deep chunks
 * (32 KB, L1) and 437-444 with 1024 or 2048. */
#define KC 2048

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

void convert_to_f32_avx2(float *dst, const void *src, DType dt, long count) {
    long i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, load8(src, dt, i));
    for (; i < count; i++) dst[i] = load1(src, dt, i);
}

/* exp(x) for x <= 88: x = n ln2 + r with |r| <= ln2/2, exp(r) by a degree-6
 * polynomial, 2^n built in the exponent bits. Below -87 the result flushes
 * to 0, which softmax (arguments <= 0) only ever needs as 0. */
static inline __m256 exp256(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

void softmax_avx2(float *x, long n) {
    long i = 0;
    __m256 mv = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float mx = _mm_cvtss_f32(m4);
    for (; i < n; i++)
        if (x[i] > mx) mx = x[i];
    __m256 mxv = _mm256_set1_ps(mx), sv = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), mxv));
        _mm256_storeu_ps(x + i, e);
        sv = _mm256_add_ps(sv, e);
    }
    float sum = hsum(sv);
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= 1.0f / sum;
}

void swiglu_avx2(float *gate, const float *up, long n) {
    long i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), minus = _mm256_set1_ps(-1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, exp256(_mm256_mul_ps(minus, g))));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* 0.5 v (1 + erf(v / sqrt 2)), erf by Abramowitz and Stegun's 7.1.26:
 * erf(z) = 1 - (a1 t + ... + a5 t^5) exp(-z^2), t = 1 / (1 + p z), for z >= 0
 * (odd symmetry for z < 0); absolute error below 1.5e-7, at the level of
 * float rounding in the result. */
void gelu_erf_avx2(float *x, long n) {
    long i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f), sign = _mm256_set1_ps(-0.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 z = _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f));
        __m256 az = _mm256_andnot_ps(sign, z);
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), az, one));
        __m256 p = _mm256_set1_ps(1.061405429f);
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
        p = _mm256_mul_ps(p, t);
        __m256 e = exp256(_mm256_mul_ps(_mm256_xor_ps(az, sign), az));
        __m256 erf_abs = _mm256_fnmadd_ps(p, e, one);
        __m256 erf = _mm256_or_ps(erf_abs, _mm256_and_ps(sign, z));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, erf)));
    }
    for (; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void quick_gelu_avx2(float *x, long n) {
    long i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), k = _mm256_set1_ps(-1.702f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 e = exp256(_mm256_mul_ps(k, v));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

/* 0.5 v (1 + tanh(u)), u = sqrt(2/pi) (v + 0.044715 v^3), with
 * 1 + tanh(u) = 2 - 2 / (exp(2u) + 1). */
void gelu_tanh_avx2(float *x, long n) {
    long i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f), half = _mm256_set1_ps(0.5f);
    const __m256 c = _mm256_set1_ps(0.7978845608028654f), a = _mm256_set1_ps(0.044715f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 u = _mm256_mul_ps(c, _mm256_fmadd_ps(_mm256_mul_ps(a, v), _mm256_mul_ps(v, v), v));
        __m256 e = exp256(_mm256_mul_ps(two, u));
        __m256 t1 = _mm256_sub_ps(two, _mm256_div_ps(two, _mm256_add_ps(e, one)));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), t1));
    }
    for (; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
}

float dot_f32_avx2(const float *a, const float *b, long n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

void axpy_f32_avx2(float *y, float s, const float *x, long n) {
    __m256 sv = _mm256_set1_ps(s);
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(sv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += s * x[i];
}

/* Rows r, r + q, r + 2q, r + 3q of W against x, into y[0], y[q], y[2q],
 * y[3q]. Decode is memory-bound: each weight is read once, so the loop is
 * shaped for streaming. Taking the four rows from the four quarters of the
 * range makes a pass four long sequential streams (row r + 1 of a quarter
 * starts where row r ends), which one core reads faster than one stream
 * or than four adjacent rows (short streams that end every row); x (at
 * most a few tens of KB) stays in cache and is loaded once for the four.
 * always_inline with a constant dt lets the compiler drop the dtype test
 * from the inner loop. */
static inline __attribute__((always_inline)) void dot_rows4(float *y, long q, const float *x, const void *w, DType dt,
                                                          long row, long k) {
    const long b0 = row * k, b1 = (row + q) * k, b2 = (row + 2 * q) * k, b3 = (row + 3 * q) * k;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    long t = 0;
    for (; t + 8 <= k; t += 8) {
        const __m256 xv = _mm256_loadu_ps(x + t);
        a0 = _mm256_fmadd_ps(xv, load8(w, dt, b0 + t), a0);
        a1 = _mm256_fmadd_ps(xv, load8(w, dt, b1 + t), a1);
        a2 = _mm256_fmadd_ps(xv, load8(w, dt, b2 + t), a2);
        a3 = _mm256_fmadd_ps(xv, load8(w, dt, b3 + t), a3);
    }
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (; t < k; t++) {
        s0 += x[t] * load1(w, dt, b0 + t), s1 += x[t] * load1(w, dt, b1 + t);
        s2 += x[t] * load1(w, dt, b2 + t), s3 += x[t] * load1(w, dt, b3 + t);
    }
    y[0] = s0, y[q] = s1, y[2 * q] = s2, y[3 * q] = s3;
}

/* The rows left over from the quarters, one at a time. */
static inline __attribute__((always_inline)) float dot_row(const float *x, const void *w, DType dt, long row,
                                                         long k) {
    long base = row * k;
    __m256 a0 = _mm256_setzero_ps();
    long t = 0;
    for (; t + 8 <= k; t += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + t), load8(w, dt, base + t), a0);
    float s = hsum(a0);
    for (; t < k; t++) s += x[t] * load1(w, dt, base + t);
    return s;
}

static inline __attribute__((always_inline)) void matvec_dt(float *y, const float *x, const void *w, DType dt,
                                                          long j0, long j1, long k) {
    long q = (j1 - j0) / 4;
    for (long j = j0; j < j0 + q; j++) dot_rows4(y + j, q, x, w, dt, j, k);
    for (long j = j0 + 4 * q; j < j1; j++) y[j] = dot_row(x, w, dt, j, k);
}

/* One specialised copy of the row loop per dtype (dt is a constant in
 * each call), so the inner loop holds only loads, conversions and FMAs. */
static void matvec_f16(float *y, const float *x, const void *w, long j0, long j1, long k) {
    matvec_dt(y, x, w, DT_F16, j0, j1, k);
}
static void matvec_bf16(float *y, const float *x, const void *w, long j0, long j1, long k) {
    matvec_dt(y, x, w, DT_BF16, j0, j1, k);
}
static void matvec_f32(float *y, const float *x, const void *w, long j0, long j1, long k) {
    matvec_dt(y, x, w, DT_F32, j0, j1, k);
}

void matvec_rows_avx2(float *y, const float *x, const void *w, DType dt, long j0, long j1, long k) {
    if (dt == DT_F16) matvec_f16(y, x, w, j0, j1, k);
    else if (dt == DT_BF16) matvec_bf16(y, x, w, j0, j1, k);
    else matvec_f32(y, x, w, j0, j1, k);
}

/* In-register 8x8 transpose: r[i] becomes column i. */
static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

void pack_panel_avx2(float *panel, const void *w, DType dt, long j0, long rows, long k) {
    long t = 0;
    if (rows == MATMUL_BLOCK_ROWS) {
        /* whole 8x8 tiles: convert 8 values of 8 rows, transpose, store */
        for (; t + 8 <= k; t += 8) {
            for (int half = 0; half < 2; half++) {
                __m256 r[8];
                for (int i = 0; i < 8; i++) r[i] = load8(w, dt, (j0 + half * 8 + i) * k + t);
                transpose8(r);
                for (int i = 0; i < 8; i++) _mm256_storeu_ps(panel + (t + i) * MATMUL_BLOCK_ROWS + half * 8, r[i]);
            }
        }
    }
    for (; t < k; t++)
        for (long r = 0; r < MATMUL_BLOCK_ROWS; r++)
            panel[t * MATMUL_BLOCK_ROWS + r] = r < rows ? load1(w, dt, (j0 + r) * k + t) : 0.0f;
}

/* 6 activation rows x 16 panel columns: 12 accumulators, per step of k
 * two panel loads and six broadcasts feed twelve FMAs, and no horizontal
 * sums are needed. x[r] points at row r's first element of this k chunk. */
static void micro_6x16(const float *const x[6], const float *panel, long kl, float *y, long ldy, long rows, long cols,
                       int add) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
           c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(),
           c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(),
           c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3], *x4 = x[4], *x5 = x[5];
    for (long t = 0; t < kl; t++) {
        __m256 b0 = _mm256_loadu_ps(panel + t * MATMUL_BLOCK_ROWS);
        __m256 b1 = _mm256_loadu_ps(panel + t * MATMUL_BLOCK_ROWS + 8);
        __m256 a = _mm256_broadcast_ss(x0 + t);
        c00 = _mm256_fmadd_ps(a, b0, c00);
        c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(x1 + t);
        c10 = _mm256_fmadd_ps(a, b0, c10);
        c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(x2 + t);
        c20 = _mm256_fmadd_ps(a, b0, c20);
        c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(x3 + t);
        c30 = _mm256_fmadd_ps(a, b0, c30);
        c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(x4 + t);
        c40 = _mm256_fmadd_ps(a, b0, c40);
        c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(x5 + t);
        c50 = _mm256_fmadd_ps(a, b0, c50);
        c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    if (cols == MATMUL_BLOCK_ROWS) {
        /* A whole tile goes straight from the registers to y. */
        __m256 c[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
        for (long r = 0; r < rows; r++) {
            float *yr = y + r * ldy;
            __m256 v0 = c[r][0], v1 = c[r][1];
            if (add) v0 = _mm256_add_ps(v0, _mm256_loadu_ps(yr)), v1 = _mm256_add_ps(v1, _mm256_loadu_ps(yr + 8));
            _mm256_storeu_ps(yr, v0), _mm256_storeu_ps(yr + 8, v1);
        }
        return;
    }
    float out[6][16];
    _mm256_storeu_ps(out[0], c00), _mm256_storeu_ps(out[0] + 8, c01);
    _mm256_storeu_ps(out[1], c10), _mm256_storeu_ps(out[1] + 8, c11);
    _mm256_storeu_ps(out[2], c20), _mm256_storeu_ps(out[2] + 8, c21);
    _mm256_storeu_ps(out[3], c30), _mm256_storeu_ps(out[3] + 8, c31);
    _mm256_storeu_ps(out[4], c40), _mm256_storeu_ps(out[4] + 8, c41);
    _mm256_storeu_ps(out[5], c50), _mm256_storeu_ps(out[5] + 8, c51);
    for (long r = 0; r < rows; r++) {
        float *yr = y + r * ldy;
        for (long j = 0; j < cols; j++) yr[j] = add ? yr[j] + out[r][j] : out[r][j];
    }
}

void gemm_panel_avx2(float *y, long ldy, const float *x, long n, long k, const float *panel, long cols,
                     int accumulate) {
    for (long kc = 0; kc < k; kc += KC) {
        long kl = k - kc < KC ? k - kc : KC;
        int add = accumulate || kc > 0;
        for (long i = 0; i < n; i += 6) {
            /* A short last group repeats its last row and stores only the real ones. */
            long rows = n - i < 6 ? n - i : 6;
            const float *xr[6];
            for (int r = 0; r < 6; r++) xr[r] = x + (i + (r < rows ? r : rows - 1)) * k + kc;
            micro_6x16(xr, panel + kc * MATMUL_BLOCK_ROWS, kl, y + i * ldy, ldy, rows, cols, add);
        }
    }
}
