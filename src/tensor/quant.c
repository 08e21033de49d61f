/* ggml's block formats: reference quantizers, dequantizers and dot
 * products. The quantizers reproduce ggml-quants.c's quantize_row_*_ref
 * operation for operation in float, because a different rounding anywhere
 * (a double, a reordered sum, lroundf for nearest_int) changes bits of the
 * output. This file is compiled without -mfma so that the compiler cannot
 * contract a*b+c into an FMA either. */
#include "tensor/quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

_Static_assert(sizeof(BlockQ4_0) == 18, "block_q4_0 is 18 bytes");
_Static_assert(sizeof(BlockQ4_1) == 20, "block_q4_1 is 20 bytes");
_Static_assert(sizeof(BlockQ5_0) == 22, "block_q5_0 is 22 bytes");
_Static_assert(sizeof(BlockQ5_1) == 24, "block_q5_1 is 24 bytes");
_Static_assert(sizeof(BlockQ8_0) == 34, "block_q8_0 is 34 bytes");
_Static_assert(sizeof(BlockQ4_K) == 144, "block_q4_K is 144 bytes");
_Static_assert(sizeof(BlockQ5_K) == 176, "block_q5_K is 176 bytes");
_Static_assert(sizeof(BlockQ6_K) == 210, "block_q6_K is 210 bytes");
_Static_assert(sizeof(QuantAct256) == 292, "block_q8_K is 292 bytes");

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* ggml's threshold below which a group counts as all zeros */
#define GROUP_MAX_EPS 1e-15f

int dtype_is_quant(DType t) { return t >= DT_Q4_0 && t < DT_QUANT_END; }

int dtype_block_elems(DType t) {
    switch (t) {
    case DT_Q4_0: case DT_Q4_1: case DT_Q5_0: case DT_Q5_1: case DT_Q8_0: return QK;
    case DT_Q4_K: case DT_Q5_K: case DT_Q6_K: return QK_K;
    default: return 1;
    }
}

size_t dtype_block_bytes(DType t) {
    switch (t) {
    case DT_Q4_0: return sizeof(BlockQ4_0);
    case DT_Q4_1: return sizeof(BlockQ4_1);
    case DT_Q5_0: return sizeof(BlockQ5_0);
    case DT_Q5_1: return sizeof(BlockQ5_1);
    case DT_Q8_0: return sizeof(BlockQ8_0);
    case DT_Q4_K: return sizeof(BlockQ4_K);
    case DT_Q5_K: return sizeof(BlockQ5_K);
    case DT_Q6_K: return sizeof(BlockQ6_K);
    default: return dtype_size(t);
    }
}

size_t dtype_row_bytes(DType t, int64_t n) { return (size_t)(n / dtype_block_elems(t)) * dtype_block_bytes(t); }

int quant_act_block(DType t) { return dtype_block_elems(t) == QK_K ? QK_K : QK; }

size_t quant_act_bytes(DType t, int64_t k) {
    return quant_act_block(t) == QK_K ? (size_t)(k / QK_K) * sizeof(QuantAct256) : (size_t)(k / QK) * sizeof(QuantAct32);
}

/* Adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits. */
int quant_nearest_int(float x) {
    float v = x + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* ------------------------------------------------------------ 32-blocks */

/* The value of largest magnitude, with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    *mn = FLT_MAX;
    *mx = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *mn) *mn = x[j];
        if (x[j] > *mx) *mx = x[j];
    }
}

void quantize_row_q8_0(const float *x, BlockQ8_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = MAX(amax, fabsf(x[j]));
        const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        for (int j = 0; j < QK; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* The scale is the signed extreme over -8, so that extreme lands on -8
 * exactly and the other end of the range gets the spare code. */
void quantize_row_q4_0(const float *x, BlockQ4_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        const float d = signed_absmax(x, QK) / -8, id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        for (int j = 0; j < QK / 2; j++) {
            uint8_t lo = (uint8_t)MIN(15, (int8_t)(x[j] * id + 8.5f));
            uint8_t hi = (uint8_t)MIN(15, (int8_t)(x[j + QK / 2] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void quantize_row_q4_1(const float *x, BlockQ4_1 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float mn, mx;
        min_max(x, QK, &mn, &mx);
        const float d = (mx - mn) / 15, id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        y[i].m = f32_to_f16(mn);
        for (int j = 0; j < QK / 2; j++) {
            uint8_t lo = (uint8_t)MIN(15, (int8_t)((x[j] - mn) * id + 0.5f));
            uint8_t hi = (uint8_t)MIN(15, (int8_t)((x[j + QK / 2] - mn) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* 32 five-bit codes into nibbles plus a word of fifth bits. */
static void pack_q5(const uint8_t q[QK], uint8_t qs[QK / 2], uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[j + QK / 2] & 0x0F) << 4));
        h |= (uint32_t)((q[j] & 0x10) >> 4) << j;
        h |= (uint32_t)((q[j + QK / 2] & 0x10) >> 4) << (j + QK / 2);
    }
    for (int b = 0; b < 4; b++) qh[b] = (uint8_t)(h >> (8 * b));
}

void quantize_row_q5_0(const float *x, BlockQ5_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        const float d = signed_absmax(x, QK) / -16, id = d ? 1.0f / d : 0.0f;
        uint8_t q[QK];
        for (int j = 0; j < QK; j++) q[j] = (uint8_t)MIN(31, (int8_t)(x[j] * id + 16.5f));
        y[i].d = f32_to_f16(d);
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

void quantize_row_q5_1(const float *x, BlockQ5_1 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float mn, mx;
        min_max(x, QK, &mn, &mx);
        const float d = (mx - mn) / 31, id = d ? 1.0f / d : 0.0f;
        uint8_t q[QK];
        for (int j = 0; j < QK; j++) q[j] = (uint8_t)((x[j] - mn) * id + 0.5f);
        y[i].d = f32_to_f16(d);
        y[i].m = f32_to_f16(mn);
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

/* ------------------------------------------------------------- K types */

/* ggml's make_qkx2_quants: codes 0..nmax for x = scale * L - min, the
 * scale and min fitted by weighted least squares over nstep+1 trial scales
 * around nmax / (max - min). Returns the scale, *the_min = -min >= 0. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, uint8_t *Laux,
                           float rmin, float rdelta, int nstep) {
    float mn = x[0], mx = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        memset(L, 0, (size_t)n);
        *the_min = -mn;
        return 0.f;
    }
    float iscale = nmax / (mx - mn), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        int l = quant_nearest_int(iscale * (x[i] - mn));
        L[i] = (uint8_t)MAX(0, MIN(nmax, l));
        float diff = scale * L[i] + mn - x[i];
        best += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (mx - mn);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = MAX(0, MIN(nmax, quant_nearest_int(iscale * (x[i] - mn))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                err += w[i] * (diff * diff);
            }
            if (err < best) {
                memcpy(L, Laux, (size_t)n);
                best = err;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    *the_min = -mn;
    return scale;
}

/* Q4_K/Q5_K's 12 scale bytes: sub-blocks 0-3 keep their 6-bit scale and
 * min in bytes 0-3 and 4-7; 4-7 put their low 4 bits in bytes 8-11 and
 * their top 2 bits in the top bits of bytes 0-7. */
static void put_scale_min_k4(uint8_t s[12], int j, uint8_t ls, uint8_t lm) {
    if (j < 4) {
        s[j] = ls;
        s[j + 4] = lm;
    } else {
        s[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        s[j - 4] |= (uint8_t)((ls >> 4) << 6);
        s[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

static void get_scale_min_k4(const uint8_t s[12], int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* The shared part of Q4_K and Q5_K: per 32-value sub-block a fitted scale
 * and min, both quantized to 6 bits against the super-block's largest, then
 * every value re-coded 0..nmax against the stored scales. */
static void quantize_superblock_k(const float *x, int nmax, float rmin, int nstep, uint8_t scales12[12],
                                  uint16_t *d_out, uint16_t *dmin_out, uint8_t L[QK_K]) {
    float mins[QK_K / 32], scales[QK_K / 32], weights[32];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(scales12, 0, 12);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t ls = (uint8_t)quant_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)quant_nearest_int(inv_min * mins[j]);
        put_scale_min_k4(scales12, j, MIN(63, ls), MIN(63, lm));
    }
    *d_out = f32_to_f16(max_scale / 63.f);
    *dmin_out = f32_to_f16(max_min / 63.f);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        get_scale_min_k4(scales12, j, &sc, &m);
        const float d = f16_to_f32(*d_out) * sc;
        if (!d) continue;
        const float dm = f16_to_f32(*dmin_out) * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = quant_nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)MAX(0, MIN(nmax, l));
        }
    }
}

void quantize_row_q4_K(const float *x, BlockQ4_K *y, int64_t n) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        quantize_superblock_k(x, 15, -1.f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
        for (int c = 0; c < QK_K / 64; c++)
            for (int l = 0; l < 32; l++) y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

void quantize_row_q5_K(const float *x, BlockQ5_K *y, int64_t n) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        quantize_superblock_k(x, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int c = 0; c < QK_K / 64; c++)
            for (int l = 0; l < 32; l++) {
                int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                if (lo > 15) y[i].qh[l] |= (uint8_t)(1 << (2 * c));
                if (hi > 15) y[i].qh[l] |= (uint8_t)(2 << (2 * c));
                y[i].qs[32 * c + l] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
            }
    }
}

/* ggml's make_qx_quants with rmse_type 1: signed codes -nmax..nmax-1 with
 * the scale chosen among 19 trials to maximise sum(w x l)^2 / sum(w l^2),
 * w = x^2. Returns the scale; L holds code + nmax. */
static float fit_scale_signed(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = MAX(-nmax, MIN(nmax - 1, quant_nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = MAX(-nmax, MIN(nmax - 1, quant_nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + MAX(-nmax, MIN(nmax - 1, quant_nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

void quantize_row_q6_K(const float *x, BlockQ6_K *y, int64_t n) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_abs = 0;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            scales[ib] = fit_scale_signed(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs) {
                max_abs = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        memset(&y[i], 0, sizeof y[i]);
        if (max_abs < GROUP_MAX_EPS) continue;
        float iscale = -128.f / max_scale;
        y[i].d = f32_to_f16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++) y[i].scales[ib] = (int8_t)MIN(127, quant_nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; j++) {
            float d = f16_to_f32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = quant_nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(MAX(-32, MIN(31, l)) + 32);
            }
        }
        for (int h = 0; h < 2; h++) {
            const int8_t *Lh = L + 128 * h;
            uint8_t *ql = y[i].ql + 64 * h, *qh = y[i].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                  ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

int quantize_row(DType t, const float *x, void *dst, int64_t n) {
    switch (t) {
    case DT_Q4_0: quantize_row_q4_0(x, dst, n); return 0;
    case DT_Q4_1: quantize_row_q4_1(x, dst, n); return 0;
    case DT_Q5_0: quantize_row_q5_0(x, dst, n); return 0;
    case DT_Q5_1: quantize_row_q5_1(x, dst, n); return 0;
    case DT_Q8_0: quantize_row_q8_0(x, dst, n); return 0;
    case DT_Q4_K: quantize_row_q4_K(x, dst, n); return 0;
    case DT_Q5_K: quantize_row_q5_K(x, dst, n); return 0;
    case DT_Q6_K: quantize_row_q6_K(x, dst, n); return 0;
    default: return -1;
    }
}

/* -------------------------------------------------------------- unpacking */

/* The codes of one 32-block as unsigned integers (before any offset). */
static void codes_q4(const uint8_t qs[16], uint8_t q[QK]) {
    for (int j = 0; j < QK / 2; j++) {
        q[j] = qs[j] & 0xF;
        q[j + QK / 2] = qs[j] >> 4;
    }
}

static void codes_q5(const uint8_t qs[16], const uint8_t qh[4], uint8_t q[QK]) {
    uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    codes_q4(qs, q);
    for (int j = 0; j < QK; j++) q[j] |= (uint8_t)(((h >> j) & 1) << 4);
}

/* A K super-block's 256 unsigned codes in value order, with the scale (and
 * min) of each sub-block: 8 of 32 values for Q4_K/Q5_K, 16 of 16 for Q6_K. */
static void codes_q4_K(const BlockQ4_K *b, uint8_t q[QK_K], uint8_t sc[8], uint8_t m[8]) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = b->qs[32 * c + l] & 0xF;
            q[64 * c + 32 + l] = b->qs[32 * c + l] >> 4;
        }
    for (int j = 0; j < 8; j++) get_scale_min_k4(b->scales, j, &sc[j], &m[j]);
}

static void codes_q5_K(const BlockQ5_K *b, uint8_t q[QK_K], uint8_t sc[8], uint8_t m[8]) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (uint8_t)((b->qs[32 * c + l] & 0xF) | (((b->qh[l] >> (2 * c)) & 1) << 4));
            q[64 * c + 32 + l] = (uint8_t)((b->qs[32 * c + l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4));
        }
    for (int j = 0; j < 8; j++) get_scale_min_k4(b->scales, j, &sc[j], &m[j]);
}

static void codes_q6_K(const BlockQ6_K *b, uint8_t q[QK_K]) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        uint8_t *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (uint8_t)((ql[l] & 0xF) | ((qh[l] & 3) << 4));
            o[l + 32] = (uint8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
            o[l + 64] = (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
            o[l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
        }
    }
}

/* ------------------------------------------------------------ dequantize */

/* Each product is written as ggml's dequantize_row_* writes it, so the
 * floats are identical to ggml's (and gguf-py's). */
void dequantize_row(DType t, const void *src, float *y, int64_t n) {
    uint8_t q[QK_K], sc[8], m[8];
    switch (t) {
    case DT_Q4_0:
        for (int64_t i = 0; i < n / QK; i++, y += QK) {
            const BlockQ4_0 *b = (const BlockQ4_0 *)src + i;
            float d = f16_to_f32(b->d);
            codes_q4(b->qs, q);
            for (int j = 0; j < QK; j++) y[j] = (q[j] - 8) * d;
        }
        return;
    case DT_Q4_1:
        for (int64_t i = 0; i < n / QK; i++, y += QK) {
            const BlockQ4_1 *b = (const BlockQ4_1 *)src + i;
            float d = f16_to_f32(b->d), mn = f16_to_f32(b->m);
            codes_q4(b->qs, q);
            for (int j = 0; j < QK; j++) y[j] = q[j] * d + mn;
        }
        return;
    case DT_Q5_0:
        for (int64_t i = 0; i < n / QK; i++, y += QK) {
            const BlockQ5_0 *b = (const BlockQ5_0 *)src + i;
            float d = f16_to_f32(b->d);
            codes_q5(b->qs, b->qh, q);
            for (int j = 0; j < QK; j++) y[j] = (q[j] - 16) * d;
        }
        return;
    case DT_Q5_1:
        for (int64_t i = 0; i < n / QK; i++, y += QK) {
            const BlockQ5_1 *b = (const BlockQ5_1 *)src + i;
            float d = f16_to_f32(b->d), mn = f16_to_f32(b->m);
            codes_q5(b->qs, b->qh, q);
            for (int j = 0; j < QK; j++) y[j] = q[j] * d + mn;
        }
        return;
    case DT_Q8_0:
        for (int64_t i = 0; i < n / QK; i++, y += QK) {
            const BlockQ8_0 *b = (const BlockQ8_0 *)src + i;
            float d = f16_to_f32(b->d);
            for (int j = 0; j < QK; j++) y[j] = b->qs[j] * d;
        }
        return;
    case DT_Q4_K:
    case DT_Q5_K:
        for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
            uint16_t dh, mh;
            if (t == DT_Q4_K) {
                const BlockQ4_K *b = (const BlockQ4_K *)src + i;
                codes_q4_K(b, q, sc, m);
                dh = b->d, mh = b->dmin;
            } else {
                const BlockQ5_K *b = (const BlockQ5_K *)src + i;
                codes_q5_K(b, q, sc, m);
                dh = b->d, mh = b->dmin;
            }
            float d = f16_to_f32(dh), dmin = f16_to_f32(mh);
            for (int j = 0; j < 8; j++) {
                const float d1 = d * sc[j], m1 = dmin * m[j];
                for (int l = 0; l < 32; l++) y[32 * j + l] = d1 * q[32 * j + l] - m1;
            }
        }
        return;
    case DT_Q6_K:
        for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
            const BlockQ6_K *b = (const BlockQ6_K *)src + i;
            float d = f16_to_f32(b->d);
            codes_q6_K(b, q);
            for (int j = 0; j < QK_K; j++) y[j] = d * b->scales[j / 16] * (float)(q[j] - 32);
        }
        return;
    case DT_F32: memcpy(y, src, (size_t)n * sizeof(float)); return;
    case DT_F16:
        for (int64_t j = 0; j < n; j++) y[j] = f16_to_f32(((const uint16_t *)src)[j]);
        return;
    case DT_BF16:
        for (int64_t j = 0; j < n; j++) y[j] = bf16_to_f32(((const uint16_t *)src)[j]);
        return;
    default: memset(y, 0, (size_t)n * sizeof(float)); return;
    }
}

/* ------------------------------------------------------------ activations */

static void quantize_act32(const float *x, QuantAct32 *a, int64_t k) {
    for (int64_t i = 0; i < k / QK; i++, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = MAX(amax, fabsf(x[j]));
        const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        int sum = 0;
        memset(a[i].lane_sums, 0, sizeof a[i].lane_sums);
        for (int j = 0; j < QK; j++) {
            a[i].qs[j] = (int8_t)roundf(x[j] * id);
            a[i].lane_sums[j / 4] += a[i].qs[j];
            sum += a[i].qs[j];
        }
        a[i].d = d;
        a[i].sum = sum;
        a[i].ds = d * (float)sum;
    }
}

/* ggml's quantize_row_q8_K: the signed extreme maps to -127. */
static void quantize_act256(const float *x, QuantAct256 *a, int64_t k) {
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K) {
        float max = signed_absmax(x, QK_K);
        memset(&a[i], 0, sizeof a[i]);
        if (max == 0) continue;
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) {
            a[i].qs[j] = (int8_t)MIN(127, quant_nearest_int(iscale * x[j]));
            a[i].bsums[j / 16] = (int16_t)(a[i].bsums[j / 16] + a[i].qs[j]);
        }
        a[i].d = 1 / iscale;
    }
}

void quantize_act(DType t, const float *x, void *act, int64_t k) {
    if (quant_act_block(t) == QK_K) quantize_act256(x, act, k);
    else quantize_act32(x, act, k);
}

/* -------------------------------------------------------------- dot */

static int32_t dot_codes(const uint8_t *q, const int8_t *a, int n) {
    int32_t s = 0;
    for (int j = 0; j < n; j++) s += q[j] * a[j];
    return s;
}

static float dot_32(DType t, const void *w, const QuantAct32 *a, int64_t nb) {
    uint8_t q[QK];
    float s = 0;
    for (int64_t i = 0; i < nb; i++) {
        float dw, mw = 0;
        int off = 0;
        switch (t) {
        case DT_Q4_0: {
            const BlockQ4_0 *b = (const BlockQ4_0 *)w + i;
            codes_q4(b->qs, q), dw = f16_to_f32(b->d), off = 8;
            break;
        }
        case DT_Q4_1: {
            const BlockQ4_1 *b = (const BlockQ4_1 *)w + i;
            codes_q4(b->qs, q), dw = f16_to_f32(b->d), mw = f16_to_f32(b->m);
            break;
        }
        case DT_Q5_0: {
            const BlockQ5_0 *b = (const BlockQ5_0 *)w + i;
            codes_q5(b->qs, b->qh, q), dw = f16_to_f32(b->d), off = 16;
            break;
        }
        case DT_Q5_1: {
            const BlockQ5_1 *b = (const BlockQ5_1 *)w + i;
            codes_q5(b->qs, b->qh, q), dw = f16_to_f32(b->d), mw = f16_to_f32(b->m);
            break;
        }
        default: { /* Q8_0 */
            const BlockQ8_0 *b = (const BlockQ8_0 *)w + i;
            int32_t isum = 0;
            for (int j = 0; j < QK; j++) isum += b->qs[j] * a[i].qs[j];
            s += f16_to_f32(b->d) * a[i].d * (float)isum;
            continue;
        }
        }
        int32_t isum = dot_codes(q, a[i].qs, QK) - off * a[i].sum;
        s += dw * a[i].d * (float)isum + mw * a[i].d * (float)a[i].sum;
    }
    return s;
}

static float dot_256(DType t, const void *w, const QuantAct256 *a, int64_t nb) {
    uint8_t q[QK_K], sc[8], m[8];
    float s = 0;
    for (int64_t i = 0; i < nb; i++) {
        if (t == DT_Q6_K) {
            const BlockQ6_K *b = (const BlockQ6_K *)w + i;
            codes_q6_K(b, q);
            int32_t isum = 0;
            for (int j = 0; j < 16; j++)
                isum += b->scales[j] * (dot_codes(q + 16 * j, a[i].qs + 16 * j, 16) - 32 * a[i].bsums[j]);
            s += f16_to_f32(b->d) * a[i].d * (float)isum;
            continue;
        }
        uint16_t dh, mh;
        if (t == DT_Q4_K) {
            const BlockQ4_K *b = (const BlockQ4_K *)w + i;
            codes_q4_K(b, q, sc, m), dh = b->d, mh = b->dmin;
        } else {
            const BlockQ5_K *b = (const BlockQ5_K *)w + i;
            codes_q5_K(b, q, sc, m), dh = b->d, mh = b->dmin;
        }
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            isum += sc[j] * dot_codes(q + 32 * j, a[i].qs + 32 * j, 32);
            msum += m[j] * (a[i].bsums[2 * j] + a[i].bsums[2 * j + 1]);
        }
        s += f16_to_f32(dh) * a[i].d * (float)isum - f16_to_f32(mh) * a[i].d * (float)msum;
    }
    return s;
}

float quant_dot(DType t, const void *w, const void *act, int64_t k) {
    if (quant_act_block(t) == QK_K) return dot_256(t, w, act, k / QK_K);
    return dot_32(t, w, act, k / QK);
}
