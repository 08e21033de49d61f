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
#include <math.h>
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

/* Decoding streams each weight byte once, so what bounds a matrix-vector
 * product is the work per weight block. The Q4_0 and Q8_0 kernels take
 * MV_ROWS rows at once: the activation block (its bytes, its offset
 * sums, its scale) is loaded once for all of them, each row keeps its own
 * float accumulator across blocks, and the horizontal sum is paid once per
 * row, not per block. */
#define MV_ROWS 4

/* The rows of a pass come from equal parts of the range a thread was
 * given (quarters for four rows, halves for two), so that a pass reads
 * long sequential streams: row j + 1 of a part starts where row j ends.
 * Four such streams per core read 10-20% faster than rows side by side
 * (four short streams that end every few kilobytes) and than one stream
 * (7B Q4_0 decode, 1 and 2 threads). Each stream is also prefetched
 * MV_PREFETCH bytes ahead, across the end of its row into the next. */
#define MV_PREFETCH 576

/* acc + (block sum) * (weight scale * activation scale). */
static inline __m256 scale_acc(__m256i isum, uint16_t dw, __m256 da, __m256 acc) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(_mm256_set1_ps(h2f(dw)), da), acc);
}

/* Four rows' weight scales times the activation's, each broadcast to a
 * vector; the four weight scales themselves are returned. Converted one at
 * a time, a scale costs five vector operations (insert, convert,
 * broadcast, multiply), as many as the block's integer product; gathered
 * into one 64-bit integer by the scalar units, which are idle here, the
 * four convert and multiply together. */
static inline __m128 scales4(uint16_t d0, uint16_t d1, uint16_t d2, uint16_t d3, __m256 da, __m256 s[4]) {
    uint64_t d = d0 | (uint64_t)d1 << 16 | (uint64_t)d2 << 32 | (uint64_t)d3 << 48;
    __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)d));
    __m256 f8 = _mm256_mul_ps(_mm256_set_m128(f, f), da);
    s[0] = _mm256_permute_ps(f8, 0x00);
    s[1] = _mm256_permute_ps(f8, 0x55);
    s[2] = _mm256_permute_ps(f8, 0xAA);
    s[3] = _mm256_permute_ps(f8, 0xFF);
    return f;
}

/* 8 lanes of sum(q * a) over one Q4_0 block's unsigned codes (0..15), as
 * floats; the offset of 8 is left to the caller. The 16 bytes are
 * broadcast to both halves and shifted per 64-bit lane (0 low, 4 high),
 * which leaves the low nibbles in the low half and the high nibbles in the
 * high one with two vector operations. */
static inline __m256 q4_0_codes_dot(const BlockQ4_0 *b, __m256i av) {
    const __m256i shift = _mm256_setr_epi64x(0, 0, 4, 4);
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b->qs));
    __m256i q = _mm256_and_si256(_mm256_srlv_epi64(v, shift), _mm256_set1_epi8(0x0F));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(q, av), _mm256_set1_epi16(1)));
}

/* Four Q4_0 rows, stride bytes apart, into y[0], y[ys], y[2 ys], y[3 ys];
 * the four accumulators stay in registers. A row is
 *   sum_i dw_i * da_i * (S_i - 8 * sum(a_i))
 * with S_i the block's integer sum over the unsigned codes; it is computed
 * as sum_i dw_i * da_i * S_i - 8 * sum_i dw_i * ds_i (ds = da * sum(a)),
 * the second sum one 4-wide FMA per block for all four rows instead of an
 * integer subtraction per row and block: 8% faster on one core, streaming
 * or in cache, and within float rounding of the exact form (both sums are
 * of the order of sum |w||a|). */
static void rows4_q4_0(float *y, long ys, const uint8_t *w, size_t stride, const QuantAct32 *a, int64_t nb) {
    const BlockQ4_0 *w0 = (const BlockQ4_0 *)w, *w1 = (const BlockQ4_0 *)(w + stride),
                    *w2 = (const BlockQ4_0 *)(w + 2 * stride), *w3 = (const BlockQ4_0 *)(w + 3 * stride);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
           acc3 = _mm256_setzero_ps();
    __m128 offsets = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        _mm_prefetch((const char *)&w0[i] + MV_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)&w1[i] + MV_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)&w2[i] + MV_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)&w3[i] + MV_PREFETCH, _MM_HINT_T0);
        __m256i av = _mm256_loadu_si256((const __m256i *)a[i].qs);
        __m256 sc[4];
        __m128 dw = scales4(w0[i].d, w1[i].d, w2[i].d, w3[i].d, _mm256_broadcast_ss(&a[i].d), sc);
        offsets = _mm_fmadd_ps(dw, _mm_broadcast_ss(&a[i].ds), offsets);
        acc0 = _mm256_fmadd_ps(q4_0_codes_dot(&w0[i], av), sc[0], acc0);
        acc1 = _mm256_fmadd_ps(q4_0_codes_dot(&w1[i], av), sc[1], acc1);
        acc2 = _mm256_fmadd_ps(q4_0_codes_dot(&w2[i], av), sc[2], acc2);
        acc3 = _mm256_fmadd_ps(q4_0_codes_dot(&w3[i], av), sc[3], acc3);
    }
    float off[4];
    _mm_storeu_ps(off, _mm_mul_ps(offsets, _mm_set1_ps(8.0f)));
    y[0] = hsum_ps(acc0) - off[0], y[ys] = hsum_ps(acc1) - off[1], y[2 * ys] = hsum_ps(acc2) - off[2],
    y[3 * ys] = hsum_ps(acc3) - off[3];
}

/* One row, with the offset taken off as rows4_q4_0 does. */
static float dot_q4_0(const BlockQ4_0 *w, const QuantAct32 *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float offset = 0;
    for (int64_t i = 0; i < nb; i++) {
        const float dw = h2f(w[i].d);
        acc = _mm256_fmadd_ps(q4_0_codes_dot(&w[i], _mm256_loadu_si256((const __m256i *)a[i].qs)),
                              _mm256_set1_ps(dw * a[i].d), acc);
        offset += dw * a[i].ds;
    }
    return hsum_ps(acc) - 8 * offset;
}

/* Rows j, j + q, j + 2q, j + 3q in one pass (see MV_PREFETCH). */
static void matvec_q4_0(float *y, const uint8_t *w, size_t row_bytes, long rows, const QuantAct32 *a, int64_t nb) {
    long q = rows / MV_ROWS;
    for (long j = 0; j < q; j++) rows4_q4_0(y + j, q, w + (size_t)j * row_bytes, (size_t)q * row_bytes, a, nb);
    for (long j = q * MV_ROWS; j < rows; j++) y[j] = dot_q4_0((const BlockQ4_0 *)(w + (size_t)j * row_bytes), a, nb);
}

/* Q4_1, Q5_0 and Q5_1, one block into a row's accumulators: the scaled
 * integer sum into acc, what is added in float (the minimum times the
 * activation's sum, for Q4_1 and Q5_1) into corr. */
static inline void q4_1_accumulate(const void *block, const QuantAct32 *a, __m256 *acc, float *corr) {
    const BlockQ4_1 *w = block;
    __m256i s = dot_u8_i8(nibbles32(w->qs), a->qs);
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(h2f(w->d) * a->d), *acc);
    *corr += h2f(w->m) * a->d * (float)a->sum;
}

static inline void q5_0_accumulate(const void *block, const QuantAct32 *a, __m256 *acc, float *corr) {
    const BlockQ5_0 *w = block;
    __m256i q = _mm256_or_si256(nibbles32(w->qs), fifth_bits(w->qh));
    __m256i s = dot_u8_i8_off(q, a, 4);
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(h2f(w->d) * a->d), *acc);
    (void)corr;
}

static inline void q5_1_accumulate(const void *block, const QuantAct32 *a, __m256 *acc, float *corr) {
    const BlockQ5_1 *w = block;
    __m256i q = _mm256_or_si256(nibbles32(w->qs), fifth_bits(w->qh));
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8_i8(q, a->qs)), _mm256_set1_ps(h2f(w->d) * a->d), *acc);
    *corr += h2f(w->m) * a->d * (float)a->sum;
}

typedef void (*BlockAccFn)(const void *block, const QuantAct32 *a, __m256 *acc, float *corr);

/* One row of a 32-value type, block_bytes per block. always_inline with a
 * constant fn lets the compiler inline the block step (no call per
 * block). */
static inline __attribute__((always_inline)) float row_32(const uint8_t *w, size_t block_bytes, const QuantAct32 *a,
                                                        int64_t nb, BlockAccFn fn) {
    __m256 acc = _mm256_setzero_ps();
    float corr = 0;
    for (int64_t i = 0; i < nb; i++) fn(w + (size_t)i * block_bytes, &a[i], &acc, &corr);
    return hsum_ps(acc) + corr;
}

/* Rows j and j + h of a 32-value type in one pass (see MV_PREFETCH). */
static inline __attribute__((always_inline)) void matvec_32(float *y, const uint8_t *w, size_t row_bytes, long rows,
                                                          const QuantAct32 *a, int64_t nb, size_t block_bytes,
                                                          BlockAccFn fn) {
    long h = rows / 2;
    for (long j = 0; j < h; j++) {
        const uint8_t *w0 = w + (size_t)j * row_bytes, *w1 = w0 + (size_t)h * row_bytes;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        float corr0 = 0, corr1 = 0;
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *b0 = w0 + (size_t)i * block_bytes, *b1 = w1 + (size_t)i * block_bytes;
            _mm_prefetch((const char *)b0 + MV_PREFETCH, _MM_HINT_T0);
            _mm_prefetch((const char *)b1 + MV_PREFETCH, _MM_HINT_T0);
            fn(b0, &a[i], &acc0, &corr0);
            fn(b1, &a[i], &acc1, &corr1);
        }
        y[j] = hsum_ps(acc0) + corr0, y[j + h] = hsum_ps(acc1) + corr1;
    }
    if (rows % 2) y[rows - 1] = row_32(w + (size_t)(rows - 1) * row_bytes, block_bytes, a, nb, fn);
}

/* Signed weights: |w| times a with w's sign moved onto a. A code of -128
 * still works: its absolute value reads as unsigned 128. */
static inline __m256i q8_0_isum(const BlockQ8_0 *b, __m256i av) {
    __m256i wv = _mm256_loadu_si256((const __m256i *)b->qs);
    __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(av, wv));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Four Q8_0 rows, stride bytes apart, into y[0], y[ys], y[2 ys], y[3 ys]. */
static void rows4_q8_0(float *y, long ys, const uint8_t *w, size_t stride, const QuantAct32 *a, int64_t nb) {
    const BlockQ8_0 *w0 = (const BlockQ8_0 *)w, *w1 = (const BlockQ8_0 *)(w + stride),
                    *w2 = (const BlockQ8_0 *)(w + 2 * stride), *w3 = (const BlockQ8_0 *)(w + 3 * stride);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
           acc3 = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        _mm_prefetch((const char *)&w0[i] + MV_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)&w1[i] + MV_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)&w2[i] + MV_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)&w3[i] + MV_PREFETCH, _MM_HINT_T0);
        __m256i av = _mm256_loadu_si256((const __m256i *)a[i].qs);
        __m256 da = _mm256_broadcast_ss(&a[i].d);
        __m256 sc[4];
        scales4(w0[i].d, w1[i].d, w2[i].d, w3[i].d, da, sc);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_0_isum(&w0[i], av)), sc[0], acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_0_isum(&w1[i], av)), sc[1], acc1);
        acc2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_0_isum(&w2[i], av)), sc[2], acc2);
        acc3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_0_isum(&w3[i], av)), sc[3], acc3);
    }
    y[0] = hsum_ps(acc0), y[ys] = hsum_ps(acc1), y[2 * ys] = hsum_ps(acc2), y[3 * ys] = hsum_ps(acc3);
}

static float dot_q8_0(const BlockQ8_0 *w, const QuantAct32 *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++)
        acc = scale_acc(q8_0_isum(&w[i], _mm256_loadu_si256((const __m256i *)a[i].qs)), w[i].d,
                        _mm256_broadcast_ss(&a[i].d), acc);
    return hsum_ps(acc);
}

/* Rows j, j + q, j + 2q, j + 3q in one pass (see MV_PREFETCH). */
static void matvec_q8_0(float *y, const uint8_t *w, size_t row_bytes, long rows, const QuantAct32 *a, int64_t nb) {
    long q = rows / MV_ROWS;
    for (long j = 0; j < q; j++) rows4_q8_0(y + j, q, w + (size_t)j * row_bytes, (size_t)q * row_bytes, a, nb);
    for (long j = q * MV_ROWS; j < rows; j++) y[j] = dot_q8_0((const BlockQ8_0 *)(w + (size_t)j * row_bytes), a, nb);
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

/* The 8 scales (low 128 bits, 16 bits each) and the 8 mins (high 128) of a
 * Q4_K block, unpacked from their 12 bytes with a few 32-bit masks as ggml
 * does. */
static inline __m256i k4_scales_mins(const uint8_t s[12]) {
    const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    uint32_t u[4];
    memcpy(u, s, 12);
    /* u[0..1]: the 8 scales, u[2..3]: the 8 mins, a byte each */
    u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
    const uint32_t m03 = u[1] & kmask1;
    u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
    u[2] = m03;
    u[0] &= kmask1;
    return _mm256_cvtepu8_epi16(_mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3]));
}

/* The activation's 16 sums of 16 folded into the 8 sums of 32 that the
 * mins multiply. */
static inline __m128i k_bsums8(const QuantAct256 *a) {
    __m256i bs = _mm256_loadu_si256((const __m256i *)a->bsums);
    return _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
}

/* A K-type row: its scaled sums less the mins' correction. */
static inline float k_row_result(__m256 acc, __m128 acc_m) {
    __m128 m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return hsum_ps(acc) - _mm_cvtss_f32(m);
}

/* One 64-value chunk of a Q4_K block (32 bytes: sub-block 2c in the low
 * nibbles, 2c+1 in the high ones) against the activation's al, ah: 8 lanes
 * of sc_2c * dot + sc_2c+1 * dot. A scale (16 bits) reaches every 16-bit
 * lane by a byte shuffle (shl, shh) of the broadcast scales rather than a
 * scalar broadcast. */
static inline __m256i q4_K_chunk(const uint8_t *qs, __m256i al, __m256i ah, __m256i scales, __m256i shl, __m256i shh) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    __m256i v = _mm256_loadu_si256((const __m256i *)qs);
    __m256i pl = _mm256_maddubs_epi16(_mm256_and_si256(v, low), al);
    __m256i ph = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), low), ah);
    return _mm256_add_epi32(_mm256_madd_epi16(pl, _mm256_shuffle_epi8(scales, shl)),
                            _mm256_madd_epi16(ph, _mm256_shuffle_epi8(scales, shh)));
}

/* sum over the block of sc_j * dot(q, a) for sub-block j, in 8 lanes. */
static inline __m256i q4_K_isum(const BlockQ4_K *w, const QuantAct256 *a, __m256i scales) {
    __m256i isum = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        const __m256i shl = _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c)));
        const __m256i shh = _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c + 1)));
        const __m256i al = _mm256_loadu_si256((const __m256i *)(a->qs + 64 * c));
        const __m256i ah = _mm256_loadu_si256((const __m256i *)(a->qs + 64 * c + 32));
        isum = _mm256_add_epi32(isum, q4_K_chunk(w->qs + 32 * c, al, ah, scales, shl, shh));
    }
    return isum;
}

/* Q4_K as ggml does it: the mins' correction one _mm_madd_epi16 against the
 * activation's 32-value sums, the scales applied in the integer lanes. */
static float dot_q4_K(const BlockQ4_K *w, const QuantAct256 *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m256i sc_m = k4_scales_mins(w[i].scales);
        const float da = a[i].d;
        __m128i mins = _mm_madd_epi16(_mm256_extracti128_si256(sc_m, 1), k_bsums8(&a[i]));
        acc_m = _mm_fmadd_ps(_mm_set1_ps(h2f(w[i].dmin) * da), _mm_cvtepi32_ps(mins), acc_m);
        __m256i isum = q4_K_isum(&w[i], &a[i], _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sc_m)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(h2f(w[i].d) * da), acc);
    }
    return k_row_result(acc, acc_m);
}

/* Two Q4_K rows per pass: the activation's blocks and sums are
 * loaded once for both, and the two rows' mins share one correction
 * vector. On one core this ran 40% faster than a row at a time, in cache
 * and streaming from memory alike (11 -> 15 GB/s on a 4096-wide matrix).
 * The rows are stride bytes apart, the results go to y[0] and y[ys]. */
static void rows2_q4_K(float *y, long ys, const uint8_t *w, size_t stride, const QuantAct256 *a, int64_t nb) {
    const BlockQ4_K *w0 = (const BlockQ4_K *)w, *w1 = (const BlockQ4_K *)(w + stride);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const char *p0 = (const char *)&w0[i] + MV_PREFETCH, *p1 = (const char *)&w1[i] + MV_PREFETCH;
        _mm_prefetch(p0, _MM_HINT_T0), _mm_prefetch(p0 + 64, _MM_HINT_T0), _mm_prefetch(p0 + 128, _MM_HINT_T0);
        _mm_prefetch(p1, _MM_HINT_T0), _mm_prefetch(p1 + 64, _MM_HINT_T0), _mm_prefetch(p1 + 128, _MM_HINT_T0);
        const __m256i sm0 = k4_scales_mins(w0[i].scales), sm1 = k4_scales_mins(w1[i].scales);
        const __m128i bs8 = k_bsums8(&a[i]);
        /* lanes 0-1 row 0's min sums, 2-3 row 1's, times their dmin * da */
        __m128i m01 = _mm_hadd_epi32(_mm_madd_epi16(_mm256_extracti128_si256(sm0, 1), bs8),
                                     _mm_madd_epi16(_mm256_extracti128_si256(sm1, 1), bs8));
        uint32_t dmins = (uint32_t)w0[i].dmin | (uint32_t)w1[i].dmin << 16;
        __m128 dm = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dmins)), _mm_set1_ps(a[i].d));
        acc_m = _mm_fmadd_ps(_mm_unpacklo_ps(dm, dm), _mm_cvtepi32_ps(m01), acc_m);
        const __m256i sc0 = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm0));
        const __m256i sc1 = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm1));
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
        /* both rows in one pass over the activation's four 64-value chunks */
        for (int c = 0; c < 4; c++) {
            const __m256i shl = _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c)));
            const __m256i shh = _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c + 1)));
            const __m256i al = _mm256_loadu_si256((const __m256i *)(a[i].qs + 64 * c));
            const __m256i ah = _mm256_loadu_si256((const __m256i *)(a[i].qs + 64 * c + 32));
            s0 = _mm256_add_epi32(s0, q4_K_chunk(w0[i].qs + 32 * c, al, ah, sc0, shl, shh));
            s1 = _mm256_add_epi32(s1, q4_K_chunk(w1[i].qs + 32 * c, al, ah, sc1, shl, shh));
        }
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_set1_ps(h2f(w0[i].d) * a[i].d), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_set1_ps(h2f(w1[i].d) * a[i].d), acc1);
    }
    float m[4];
    _mm_storeu_ps(m, acc_m);
    y[0] = hsum_ps(acc0) - (m[0] + m[1]);
    y[ys] = hsum_ps(acc1) - (m[2] + m[3]);
}

/* Rows j and j + h in one pass (see MV_PREFETCH). */
static void matvec_q4_K(float *y, const uint8_t *w, size_t row_bytes, long rows, const QuantAct256 *a, int64_t nb) {
    long h = rows / 2;
    for (long j = 0; j < h; j++) rows2_q4_K(y + j, h, w + (size_t)j * row_bytes, (size_t)h * row_bytes, a, nb);
    if (rows % 2) y[rows - 1] = dot_q4_K((const BlockQ4_K *)(w + (size_t)(rows - 1) * row_bytes), a, nb);
}

/* One Q5_K block into a row's accumulators: the scaled sums into acc, the
 * mins' correction into acc_m (taken off at the end). Q5_K is Q4_K's
 * scales, mins and nibbles plus a fifth bit per value in qh (bit 2c of
 * qh[j] for value j of chunk c's low half, bit 2c+1 for its high half),
 * moved to bit 4 of each code before the products. */
static inline void q5_K_accumulate(const BlockQ5_K *w, const QuantAct256 *a, __m256 *acc, __m128 *acc_m) {
    const __m256i low = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
    const __m256i sc_m = k4_scales_mins(w->scales);
    const float da = a->d;
    __m128i mins = _mm_madd_epi16(_mm256_extracti128_si256(sc_m, 1), k_bsums8(a));
    *acc_m = _mm_fmadd_ps(_mm_set1_ps(h2f(w->dmin) * da), _mm_cvtepi32_ps(mins), *acc_m);
    const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sc_m));
    __m256i hb = _mm256_loadu_si256((const __m256i *)w->qh);
    __m256i isum = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        const __m256i shl = _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c)));
        const __m256i shh = _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c + 1)));
        __m256i v = _mm256_loadu_si256((const __m256i *)(w->qs + 32 * c));
        /* bit 2c of each qh byte to bit 4, then bit 2c+1 */
        __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(hb, 4), bit4);
        __m256i h1 = _mm256_and_si256(_mm256_slli_epi16(hb, 3), bit4);
        hb = _mm256_srli_epi16(hb, 2);
        __m256i lo = _mm256_or_si256(_mm256_and_si256(v, low), h0);
        __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), low), h1);
        __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(a->qs + 64 * c)));
        __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a->qs + 64 * c + 32)));
        isum = _mm256_add_epi32(isum, _mm256_add_epi32(_mm256_madd_epi16(pl, _mm256_shuffle_epi8(scales, shl)),
                                                       _mm256_madd_epi16(ph, _mm256_shuffle_epi8(scales, shh))));
    }
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(h2f(w->d) * da), *acc);
}

static float dot_q5_K(const BlockQ5_K *w, const QuantAct256 *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) q5_K_accumulate(&w[i], &a[i], &acc, &acc_m);
    return k_row_result(acc, acc_m);
}

/* Two Q5_K rows, stride bytes apart, into y[0] and y[ys]: two streams,
 * each prefetched MV_PREFETCH bytes ahead. */
static void rows2_q5_K(float *y, long ys, const uint8_t *w, size_t stride, const QuantAct256 *a, int64_t nb) {
    const BlockQ5_K *w0 = (const BlockQ5_K *)w, *w1 = (const BlockQ5_K *)(w + stride);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m128 m0 = _mm_setzero_ps(), m1 = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const char *p0 = (const char *)&w0[i] + MV_PREFETCH, *p1 = (const char *)&w1[i] + MV_PREFETCH;
        for (int l = 0; l < 3; l++) _mm_prefetch(p0 + 64 * l, _MM_HINT_T0), _mm_prefetch(p1 + 64 * l, _MM_HINT_T0);
        q5_K_accumulate(&w0[i], &a[i], &acc0, &m0);
        q5_K_accumulate(&w1[i], &a[i], &acc1, &m1);
    }
    y[0] = k_row_result(acc0, m0), y[ys] = k_row_result(acc1, m1);
}

/* Rows j and j + h in one pass (see MV_PREFETCH). */
static void matvec_q5_K(float *y, const uint8_t *w, size_t row_bytes, long rows, const QuantAct256 *a, int64_t nb) {
    long h = rows / 2;
    for (long j = 0; j < h; j++) rows2_q5_K(y + j, h, w + (size_t)j * row_bytes, (size_t)h * row_bytes, a, nb);
    if (rows % 2) y[rows - 1] = dot_q5_K((const BlockQ5_K *)(w + (size_t)(rows - 1) * row_bytes), a, nb);
}

/* The four 32-value code vectors of one Q6_K half (values 128h + 32g ..). */
static inline void codes_q6_K_half(const BlockQ6_K *b, int h, __m256i q[4]) {
    const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3);
    const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
    __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
    __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    __m256i hv = _mm256_loadu_si256((const __m256i *)qh);
    q[0] = _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_slli_epi16(_mm256_and_si256(hv, three), 4));
    q[1] = _mm256_or_si256(_mm256_and_si256(l1, low),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 2), three), 4));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 4), three), 4));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 6), three), 4));
}

/* One Q6_K block against the activation's: 8 lanes of the scaled integer
 * sums, the -32 offset taken off as sum over sub-blocks of sc * 32 * bsum.
 * Q6_K has 16 sub-blocks of 16, so each 32-value group spans two and its
 * 16-bit products are weighted by a vector holding one scale in the low 8
 * lanes and the next in the high 8: a byte shuffle of the half's eight
 * scales, held in both 128-bit lanes (one operation per 32 values, not
 * three; no faster on Zen 3, where the block costs ~50 cycles either
 * way). */
static inline __m256i q6_K_isum(const BlockQ6_K *w, const QuantAct256 *a) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales));
    const __m256i off = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)a->bsums));
    const __m256i sc_half[2] = {_mm256_permute2x128_si256(sc16, sc16, 0x00), _mm256_permute2x128_si256(sc16, sc16, 0x11)};
    __m256i isum = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
    for (int h = 0; h < 2; h++) {
        const int8_t *q8 = a->qs + 128 * h;
        const __m256i sch = sc_half[h];
        __m256i q[4];
        codes_q6_K_half(w, h, q);
        for (int g = 0; g < 4; g++) {
            /* sub-block 8h + 2g in the low lanes, 8h + 2g + 1 in the high */
            const __m256i pick = _mm256_setr_m128i(_mm_set1_epi16((short)(0x0100 + 0x0404 * g)),
                                                   _mm_set1_epi16((short)(0x0302 + 0x0404 * g)));
            __m256i p = _mm256_maddubs_epi16(q[g], _mm256_loadu_si256((const __m256i *)(q8 + 32 * g)));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sch, pick)));
        }
    }
    return isum;
}

static float dot_q6_K(const BlockQ6_K *w, const QuantAct256 *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++)
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q6_K_isum(&w[i], &a[i])), _mm256_set1_ps(h2f(w[i].d) * a[i].d), acc);
    return hsum_ps(acc);
}

/* Two Q6_K rows, stride bytes apart, into y[0] and y[ys]: two streams,
 * each prefetched MV_PREFETCH bytes ahead (a 1 GB matrix streams at 12.6
 * against 11.7 GB/s one row at a time, one core). */
static void rows2_q6_K(float *y, long ys, const uint8_t *w, size_t stride, const QuantAct256 *a, int64_t nb) {
    const BlockQ6_K *w0 = (const BlockQ6_K *)w, *w1 = (const BlockQ6_K *)(w + stride);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const char *p0 = (const char *)&w0[i] + MV_PREFETCH, *p1 = (const char *)&w1[i] + MV_PREFETCH;
        for (int l = 0; l < 4; l++) _mm_prefetch(p0 + 64 * l, _MM_HINT_T0), _mm_prefetch(p1 + 64 * l, _MM_HINT_T0);
        const __m256 da = _mm256_set1_ps(a[i].d);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q6_K_isum(&w0[i], &a[i])), _mm256_mul_ps(_mm256_set1_ps(h2f(w0[i].d)), da), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q6_K_isum(&w1[i], &a[i])), _mm256_mul_ps(_mm256_set1_ps(h2f(w1[i].d)), da), acc1);
    }
    y[0] = hsum_ps(acc0), y[ys] = hsum_ps(acc1);
}

/* Rows j and j + h in one pass (see MV_PREFETCH). */
static void matvec_q6_K(float *y, const uint8_t *w, size_t row_bytes, long rows, const QuantAct256 *a, int64_t nb) {
    long h = rows / 2;
    for (long j = 0; j < h; j++) rows2_q6_K(y + j, h, w + (size_t)j * row_bytes, (size_t)h * row_bytes, a, nb);
    if (rows % 2) y[rows - 1] = dot_q6_K((const BlockQ6_K *)(w + (size_t)(rows - 1) * row_bytes), a, nb);
}

void quant_matvec_avx2(DType t, float *y, const void *w, size_t row_bytes, long rows, const void *act, int64_t k) {
    const uint8_t *row = w;
    switch (t) {
    case DT_Q4_0: matvec_q4_0(y, w, row_bytes, rows, act, k / QK); return;
    case DT_Q8_0: matvec_q8_0(y, w, row_bytes, rows, act, k / QK); return;
    case DT_Q4_1: matvec_32(y, w, row_bytes, rows, act, k / QK, sizeof(BlockQ4_1), q4_1_accumulate); return;
    case DT_Q5_0: matvec_32(y, w, row_bytes, rows, act, k / QK, sizeof(BlockQ5_0), q5_0_accumulate); return;
    case DT_Q5_1: matvec_32(y, w, row_bytes, rows, act, k / QK, sizeof(BlockQ5_1), q5_1_accumulate); return;
    case DT_Q4_K: matvec_q4_K(y, w, row_bytes, rows, act, k / QK_K); return;
    case DT_Q5_K: matvec_q5_K(y, w, row_bytes, rows, act, k / QK_K); return;
    case DT_Q6_K: matvec_q6_K(y, w, row_bytes, rows, act, k / QK_K); return;
    default:
        for (long j = 0; j < rows; j++, row += row_bytes) y[j] = quant_dot_avx2(t, row, act, k);
        return;
    }
}

float quant_dot_avx2(DType t, const void *w, const void *act, int64_t k) {
    switch (t) {
    case DT_Q4_0: return dot_q4_0(w, act, k / QK);
    case DT_Q4_1: return row_32(w, sizeof(BlockQ4_1), act, k / QK, q4_1_accumulate);
    case DT_Q5_0: return row_32(w, sizeof(BlockQ5_0), act, k / QK, q5_0_accumulate);
    case DT_Q5_1: return row_32(w, sizeof(BlockQ5_1), act, k / QK, q5_1_accumulate);
    case DT_Q8_0: return dot_q8_0(w, act, k / QK);
    case DT_Q4_K: return dot_q4_K(w, act, k / QK_K);
    case DT_Q5_K: return dot_q5_K(w, act, k / QK_K);
    case DT_Q6_K: return dot_q6_K(w, act, k / QK_K);
    default: return 0;
    }
}

/* ------------------------------------------------------------ activations */

/* roundf (halves away from zero) in vector form: adding the largest float
 * below 0.5 with x's sign and truncating rounds every float as roundf does
 * (an exact half reaches the next integer, anything below stays short). */
static inline __m256 round_away(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 half = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(0.49999997f));
    return _mm256_round_ps(_mm256_add_ps(v, half), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
}

/* 32 integral floats (4 vectors, in order) as 32 bytes, in order: the two
 * saturating packs interleave 128-bit halves, the permute puts them back. */
static inline __m256i pack32_i8(__m256 f0, __m256 f1, __m256 f2, __m256 f3) {
    __m256i a = _mm256_packs_epi32(_mm256_cvtps_epi32(f0), _mm256_cvtps_epi32(f1));
    __m256i b = _mm256_packs_epi32(_mm256_cvtps_epi32(f2), _mm256_cvtps_epi32(f3));
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* quantize_act32: the same d, id and roundf(x * id), so the same bytes. */
static void quantize_act32_avx2(const float *x, QuantAct32 *a, int64_t k) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    for (int64_t i = 0; i < k / QK; i++, x += QK) {
        __m256 v[4], mx = _mm256_setzero_ps();
        for (int c = 0; c < 4; c++) {
            v[c] = _mm256_loadu_ps(x + 8 * c);
            mx = _mm256_max_ps(mx, _mm256_and_ps(v[c], abs_mask));
        }
        const float d = hmax_ps(mx) / 127, id = d ? 1.0f / d : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        for (int c = 0; c < 4; c++) v[c] = round_away(_mm256_mul_ps(v[c], vid));
        __m256i q = pack32_i8(v[0], v[1], v[2], v[3]);
        _mm256_storeu_si256((__m256i *)a[i].qs, q);
        /* sums of 4 consecutive bytes: exactly the 8 lane sums */
        __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
        _mm256_storeu_si256((__m256i *)a[i].lane_sums, s4);
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
        a[i].sum = _mm_cvtsi128_si32(s);
        a[i].d = d;
        a[i].ds = d * (float)a[i].sum;
    }
}

/* quantize_act256 (ggml's quantize_row_q8_K): the first value of largest
 * magnitude sets the scale; nearest_int is round-to-nearest-even, which
 * _mm256_round_ps does, and the saturating packs are the MIN(127, .). */
static void quantize_act256_avx2(const float *x, QuantAct256 *a, int64_t k) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K) {
        __m256 mx = _mm256_setzero_ps();
        for (int c = 0; c < QK_K / 8; c++) mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(x + 8 * c), abs_mask));
        const float amax = hmax_ps(mx);
        memset(&a[i], 0, sizeof a[i]);
        if (amax == 0) continue;
        float max = 0;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(x[j]) == amax) {
                max = x[j];
                break;
            }
        const float iscale = -127.f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        for (int g = 0; g < QK_K / 32; g++) {
            __m256 v[4];
            for (int c = 0; c < 4; c++)
                v[c] = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * c), vs),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            __m256i q = pack32_i8(v[0], v[1], v[2], v[3]);
            _mm256_storeu_si256((__m256i *)(a[i].qs + 32 * g), q);
            /* 16-bit pair sums, then the two 16-value sums of this 32 */
            __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm_srli_si128(_mm256_castsi256_si128(s), 8));
            __m128i l = _mm256_extracti128_si256(s, 1);
            l = _mm_add_epi32(l, _mm_srli_si128(l, 8));
            a[i].bsums[2 * g] = (int16_t)(_mm_cvtsi128_si32(h) + _mm_extract_epi32(h, 1));
            a[i].bsums[2 * g + 1] = (int16_t)(_mm_cvtsi128_si32(l) + _mm_extract_epi32(l, 1));
        }
        a[i].d = 1 / iscale;
    }
}

void quantize_act_avx2(DType t, const float *x, void *act, int64_t k) {
    if (quant_act_block(t) == QK_K) quantize_act256_avx2(x, act, k);
    else quantize_act32_avx2(x, act, k);
}

/* ---------------------------------------------------------- dequantize */

/* Prefill converts every weight to f32 once per 16-row panel. Each value is
 * computed with the scalar dequantize_row's operations in its order (an
 * exact int-to-float conversion, then the same products, no FMA), so the
 * floats are identical to it. */

/* 32 unsigned codes, less off, times s_lo (the first 16) and s_hi (the
 * last 16). */
static inline void store_scaled32(float *y, __m256i q, int off, float s_lo, float s_hi) {
    const __m256i o = _mm256_set1_epi32(off);
    __m128i h[2] = {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)};
    __m256 s[2] = {_mm256_set1_ps(s_lo), _mm256_set1_ps(s_hi)};
    for (int c = 0; c < 4; c++) {
        __m128i b = c & 1 ? _mm_srli_si128(h[c >> 1], 8) : h[c >> 1];
        __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(b), o));
        _mm256_storeu_ps(y + 8 * c, _mm256_mul_ps(f, s[c >> 1]));
    }
}

/* Q4_K: d1 * q - m1 over 32 unsigned codes. */
static inline void store_affine32(float *y, __m256i q, float d1, float m1) {
    const __m256 vd = _mm256_set1_ps(d1), vm = _mm256_set1_ps(m1);
    __m128i h[2] = {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)};
    for (int c = 0; c < 4; c++) {
        __m128i b = c & 1 ? _mm_srli_si128(h[c >> 1], 8) : h[c >> 1];
        __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
        _mm256_storeu_ps(y + 8 * c, _mm256_sub_ps(_mm256_mul_ps(vd, f), vm));
    }
}

void dequantize_row_avx2(DType t, const void *src, float *y, int64_t n) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    switch (t) {
    case DT_Q4_0:
        for (int64_t i = 0; i < n / QK; i++, y += QK) {
            const BlockQ4_0 *b = (const BlockQ4_0 *)src + i;
            const float d = h2f(b->d);
            store_scaled32(y, _mm256_and_si256(nibbles32(b->qs), low), 8, d, d);
        }
        return;
    case DT_Q8_0:
        for (int64_t i = 0; i < n / QK; i++, y += QK) {
            const BlockQ8_0 *b = (const BlockQ8_0 *)src + i;
            const __m256 d = _mm256_set1_ps(h2f(b->d));
            for (int c = 0; c < 4; c++) {
                __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + 8 * c)));
                _mm256_storeu_ps(y + 8 * c, _mm256_mul_ps(_mm256_cvtepi32_ps(v), d));
            }
        }
        return;
    case DT_Q4_K:
        for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
            const BlockQ4_K *b = (const BlockQ4_K *)src + i;
            uint8_t sc[8], m[8];
            scales_mins_k4(b->scales, sc, m);
            const float d = h2f(b->d), dmin = h2f(b->dmin);
            for (int c = 0; c < 4; c++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
                store_affine32(y + 64 * c, _mm256_and_si256(v, low), d * sc[2 * c], dmin * m[2 * c]);
                store_affine32(y + 64 * c + 32, _mm256_and_si256(_mm256_srli_epi16(v, 4), low), d * sc[2 * c + 1],
                               dmin * m[2 * c + 1]);
            }
        }
        return;
    case DT_Q6_K:
        for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
            const BlockQ6_K *b = (const BlockQ6_K *)src + i;
            const float d = h2f(b->d);
            for (int h = 0; h < 2; h++) {
                __m256i q[4];
                codes_q6_K_half(b, h, q);
                for (int g = 0; g < 4; g++) {
                    int s = 8 * h + 2 * g;
                    store_scaled32(y + 128 * h + 32 * g, q[g], 32, d * b->scales[s], d * b->scales[s + 1]);
                }
            }
        }
        return;
    default: dequantize_row(t, src, y, n); return;
    }
}
