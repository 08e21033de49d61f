/* AVX2 dot products of quantized weight rows with 8-bit activations
 * (compiled with -mavx2 -mfma -mf16c, called only after kernel_best()).
 *
 * _mm256_maddubs_epi16 multiplies unsigned weight codes by signed
 * activation bytes into pairwise 16-bit sums (at most 2 * 63 * 127, so it
 * never saturates here), _mm256_madd_epi16 widens them to 32 bits, and each
 * block's integer sum is scaled in float. The codes stay unsigned (0..15,
 * 0..31, 0..63): the offsets (q - 8, q - 16, q - 32) are taken off through
 * the activation's precomputed sums rather than per byte. */
#include <immintrin.h>
#include <string.h>

#include "tensor/quant.h"

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* 16 bytes of nibbles as 32 codes: low nibbles first, then high ones. */
static inline __m256i nibbles32(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

/* Byte j is 0x10 where bit j of the 32 bits in qh is set. */
static inline __m256i fifth_bits(const uint8_t qh[4]) {
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i spread = _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)h), spread), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

/* 8 lanes of 32-bit sums of q[j] * a[j] over 32 unsigned codes. */
static inline __m256i dot_u8_i8(__m256i q, const int8_t *a) {
    __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)a));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* The block sums minus off * (the activation's sums), per lane. */
static inline __m256i dot_u8_i8_off(__m256i q, const QuantAct32 *a, int shift) {
    __m256i s = dot_u8_i8(q, a->qs);
    return _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)a->lane_sums), shift));
}

static float dot_q4_0(const BlockQ4_0 *w, const QuantAct32 *a, int64_t nb) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        __m256i s0 = dot_u8_i8_off(nibbles32(w[i].qs), &a[i], 3);
        __m256i s1 = dot_u8_i8_off(nibbles32(w[i + 1].qs), &a[i + 1], 3);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_set1_ps(h2f(w[i + 1].d) * a[i + 1].d), acc1);
    }
    for (; i < nb; i++) {
        __m256i s0 = dot_u8_i8_off(nibbles32(w[i].qs), &a[i], 3);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

static float dot_q4_1(const BlockQ4_1 *w, const QuantAct32 *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float corr = 0;
    for (int64_t i = 0; i < nb; i++) {
        __m256i s = dot_u8_i8(nibbles32(w[i].qs), a[i].qs);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc);
        corr += h2f(w[i].m) * a[i].d * (float)a[i].sum;
    }
    return hsum_ps(acc) + corr;
}

static float dot_q5_0(const BlockQ5_0 *w, const QuantAct32 *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i q = _mm256_or_si256(nibbles32(w[i].qs), fifth_bits(w[i].qh));
        __m256i s = dot_u8_i8_off(q, &a[i], 4);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc);
    }
    return hsum_ps(acc);
}

static float dot_q5_1(const BlockQ5_1 *w, const QuantAct32 *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float corr = 0;
    for (int64_t i = 0; i < nb; i++) {
        __m256i q = _mm256_or_si256(nibbles32(w[i].qs), fifth_bits(w[i].qh));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8_i8(q, a[i].qs)), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc);
        corr += h2f(w[i].m) * a[i].d * (float)a[i].sum;
    }
    return hsum_ps(acc) + corr;
}

/* Signed weights: |w| times a with w's sign moved onto a. A code of -128
 * still works: its absolute value reads as unsigned 128. */
static float dot_q8_0(const BlockQ8_0 *w, const QuantAct32 *a, int64_t nb) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)w[i].qs);
        __m256i w1 = _mm256_loadu_si256((const __m256i *)w[i + 1].qs);
        __m256i a0 = _mm256_loadu_si256((const __m256i *)a[i].qs);
        __m256i a1 = _mm256_loadu_si256((const __m256i *)a[i + 1].qs);
        __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w0, w0), _mm256_sign_epi8(a0, w0)), ones);
        __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w1, w1), _mm256_sign_epi8(a1, w1)), ones);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(h2f(w[i + 1].d) * a[i + 1].d), acc1);
    }
    for (; i < nb; i++) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)w[i].qs);
        __m256i a0 = _mm256_loadu_si256((const __m256i *)a[i].qs);
        __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w0, w0), _mm256_sign_epi8(a0, w0)), ones);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* ------------------------------------------------------------- K types */

static void scales_mins_k4(const uint8_t s[12], uint8_t sc[8], uint8_t m[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0xF) | ((s[j] >> 6) << 4));
        m[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
}

/* sum over the 8 sub-blocks of m[j] * (sum of their 32 activations). */
static inline int32_t mins_dot(const uint8_t m[8], const int16_t bsums[16]) {
    int32_t s = 0;
    for (int j = 0; j < 8; j++) s += m[j] * (bsums[2 * j] + bsums[2 * j + 1]);
    return s;
}

/* The 32-bit lane sums of sc * dot(q, a) for one 32-value sub-block. */
static inline __m256i scaled_dot(__m256i q, const int8_t *a, int sc) {
    __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)a));
    return _mm256_madd_epi16(p, _mm256_set1_epi16((short)sc));
}

static float dot_q4_K(const BlockQ4_K *w, const QuantAct256 *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float corr = 0;
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < nb; i++) {
        uint8_t sc[8], m[8];
        scales_mins_k4(w[i].scales, sc, m);
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * c));
            __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
            isum = _mm256_add_epi32(isum, scaled_dot(lo, a[i].qs + 64 * c, sc[2 * c]));
            isum = _mm256_add_epi32(isum, scaled_dot(hi, a[i].qs + 64 * c + 32, sc[2 * c + 1]));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc);
        corr += h2f(w[i].dmin) * a[i].d * (float)mins_dot(m, a[i].bsums);
    }
    return hsum_ps(acc) - corr;
}

static float dot_q5_K(const BlockQ5_K *w, const QuantAct256 *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float corr = 0;
    const __m256i low = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < nb; i++) {
        uint8_t sc[8], m[8];
        scales_mins_k4(w[i].scales, sc, m);
        __m256i hb = _mm256_loadu_si256((const __m256i *)w[i].qh);
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * c));
            __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), one);
            __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), one);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(v, low), _mm256_slli_epi16(h0, 4));
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), low), _mm256_slli_epi16(h1, 4));
            isum = _mm256_add_epi32(isum, scaled_dot(lo, a[i].qs + 64 * c, sc[2 * c]));
            isum = _mm256_add_epi32(isum, scaled_dot(hi, a[i].qs + 64 * c + 32, sc[2 * c + 1]));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc);
        corr += h2f(w[i].dmin) * a[i].d * (float)mins_dot(m, a[i].bsums);
    }
    return hsum_ps(acc) - corr;
}

/* Q6_K: 16 sub-blocks of 16, each 32-value group spans two, so its 16-bit
 * products are weighted by a vector holding one scale in the low 8 lanes
 * and the next in the high 8. */
static float dot_q6_K(const BlockQ6_K *w, const QuantAct256 *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < nb; i++) {
        const int8_t *sc = w[i].scales;
        /* The -32 offset: sum over sub-blocks of sc * 32 * bsum. */
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        __m256i off = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)a[i].bsums));
        __m256i isum = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[i].ql + 64 * h, *qh = w[i].qh + 32 * h;
            const int8_t *q8 = a[i].qs + 128 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i hv = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_slli_epi16(_mm256_and_si256(hv, three), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, low),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 2), three), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 4), three), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 6), three), 4));
            for (int g = 0; g < 4; g++) {
                int s = 8 * h + 2 * g;
                __m256i sv = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(sc[s])),
                                                     _mm_set1_epi16(sc[s + 1]), 1);
                __m256i p = _mm256_maddubs_epi16(q[g], _mm256_loadu_si256((const __m256i *)(q8 + 32 * g)));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, sv));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc);
    }
    return hsum_ps(acc);
}

float quant_dot_avx2(DType t, const void *w, const void *act, int64_t k) {
    switch (t) {
    case DT_Q4_0: return dot_q4_0(w, act, k / QK);
    case DT_Q4_1: return dot_q4_1(w, act, k / QK);
    case DT_Q5_0: return dot_q5_0(w, act, k / QK);
    case DT_Q5_1: return dot_q5_1(w, act, k / QK);
    case DT_Q8_0: return dot_q8_0(w, act, k / QK);
    case DT_Q4_K: return dot_q4_K(w, act, k / QK_K);
    case DT_Q5_K: return dot_q5_K(w, act, k / QK_K);
    case DT_Q6_K: return dot_q6_K(w, act, k / QK_K);
    default: return 0;
    }
}
