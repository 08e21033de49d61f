/* Quantized weights: ggml's block formats against gguf-py's quantizers and
 * dequantizers (tests/data/quant_reference.bin, from
 * quant_make_reference.py), round-trip error bounds, every AVX2 dot product
 * against the scalar one, the quantized matmul against the f64 reference,
 * llama.cpp's choice of types for q4_k_m, and llama-tiny converted to
 * q8_0 / q4_0 / q4_k_m against its F32 logits. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "formats/gguf.h"
#include "models/llama.h"
#include "models/llama_gguf.h"
#include "tensor/matmul.h"
#include "tensor/quant.h"
#include "test.h"

void suite_quant(void);

static const DType ALL[] = {DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1, DT_Q8_0, DT_Q4_K, DT_Q5_K, DT_Q6_K};
#define N_ALL ((int)(sizeof ALL / sizeof ALL[0]))

/* A deterministic generator (xorshift), uniform and roughly normal. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}
static float rnd_uniform(void) { return (float)(rnd_u32() >> 8) / 16777216.0f; }
static float rnd_normal(void) {
    float s = 0;
    for (int i = 0; i < 12; i++) s += rnd_uniform();
    return s - 6.0f;
}

static DType dtype_named(const char *name) {
    for (int i = 0; i < N_ALL; i++)
        if (strcmp(dtype_name(ALL[i]), name) == 0) return ALL[i];
    return DT_COUNT;
}

/* ------------------------------------------------------------ sizes */

static void t_quant_block_sizes(void) {
    const struct {
        DType t;
        const char *name;
        int elems;
        size_t bytes;
    } want[] = {
        {DT_Q4_0, "Q4_0", 32, 18},   {DT_Q4_1, "Q4_1", 32, 20},   {DT_Q5_0, "Q5_0", 32, 22},
        {DT_Q5_1, "Q5_1", 32, 24},   {DT_Q8_0, "Q8_0", 32, 34},   {DT_Q4_K, "Q4_K", 256, 144},
        {DT_Q5_K, "Q5_K", 256, 176}, {DT_Q6_K, "Q6_K", 256, 210}, {DT_F16, "F16", 1, 2},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        DType t = want[i].t;
        CHECK(strcmp(dtype_name(t), want[i].name) == 0, "name %s", dtype_name(t));
        CHECK(dtype_block_elems(t) == want[i].elems && dtype_block_bytes(t) == want[i].bytes, "%s block", want[i].name);
        CHECK(dtype_row_bytes(t, 4096) == 4096 / (size_t)want[i].elems * want[i].bytes, "%s row", want[i].name);
        CHECK(dtype_is_quant(t) == (want[i].elems > 1), "%s is_quant", want[i].name);
    }
    CHECK(dtype_size(DT_Q4_0) == 0, "a block type has no element size");
    CHECK(quant_nearest_int(2.5f) == 2 && quant_nearest_int(3.5f) == 4 && quant_nearest_int(-2.5f) == -2 &&
              quant_nearest_int(-0.4f) == 0 && quant_nearest_int(1e5f + 0.6f) == 100001,
          "nearest_int rounds to nearest, ties to even");
}

/* ------------------------------------------------------ gguf-py references */

typedef struct {
    char kind;
    DType type;
    uint32_t n, nbytes;
    const float *x;       /* Q: input; D: gguf-py's dequantized values */
    const uint8_t *bytes; /* the blocks */
} RefRecord;

/* The next record of quant_reference.bin at *pos, or 0 at the end / on a
 * malformed file (-1). */
static int next_record(const uint8_t *d, size_t len, size_t *pos, RefRecord *r) {
    size_t p = *pos;
    if (p == len) return 0;
    if (len - p < 13) return -1;
    r->kind = (char)d[p];
    char name[9] = {0};
    memcpy(name, d + p + 1, 8);
    r->type = dtype_named(name);
    memcpy(&r->n, d + p + 9, 4);
    p += 13;
    if (r->type == DT_COUNT || (r->kind != 'Q' && r->kind != 'D')) return -1;
    if (r->kind == 'Q') {
        if (len - p < (size_t)r->n * 4 + 4) return -1;
        r->x = (const float *)(d + p);
        p += (size_t)r->n * 4;
        memcpy(&r->nbytes, d + p, 4);
        p += 4;
        if (len - p < r->nbytes) return -1;
        r->bytes = d + p;
        p += r->nbytes;
    } else {
        if (len - p < 4) return -1;
        memcpy(&r->nbytes, d + p, 4);
        p += 4;
        if (len - p < (size_t)r->nbytes + (size_t)r->n * 4) return -1;
        r->bytes = d + p;
        p += r->nbytes;
        r->x = (const float *)(d + p);
        p += (size_t)r->n * 4;
    }
    *pos = p;
    return 1;
}

static void t_quant_matches_gguf_py(void) {
    char *data;
    size_t len;
    Error err;
    CHECK(file_read_all(test_data("quant_reference.bin"), 1 << 24, &data, &len, &err) == 0, "%s", err.msg);
    /* copy to an aligned buffer: the records are not 4-aligned */
    uint8_t *d = malloc(len);
    memcpy(d, data, len);
    free(data);
    size_t pos = 0;
    RefRecord r;
    int rc, n_q = 0, n_d = 0;
    float *x = malloc(4096 * sizeof(float)), *y = malloc(4096 * sizeof(float));
    uint8_t *q = malloc(4096 * 4);
    while ((rc = next_record(d, len, &pos, &r)) == 1) {
        if (r.n > 4096 || r.nbytes != dtype_row_bytes(r.type, r.n)) {
            rc = -1;
            break;
        }
        if (r.kind == 'Q') {
            memcpy(x, r.x, (size_t)r.n * 4);
            CHECK(quantize_row(r.type, x, q, r.n) == 0, "quantize %s", dtype_name(r.type));
            size_t bb = dtype_block_bytes(r.type);
            for (size_t i = 0; i < r.nbytes; i++)
                CHECK(q[i] == r.bytes[i], "%s record %d: byte %zu (block %zu) is %u, gguf-py wrote %u",
                      dtype_name(r.type), n_q, i, i / bb, q[i], r.bytes[i]);
            n_q++;
        } else {
            memcpy(q, r.bytes, r.nbytes);
            dequantize_row(r.type, q, y, r.n);
            memcpy(x, r.x, (size_t)r.n * 4);
            for (uint32_t i = 0; i < r.n; i++)
                CHECK(memcmp(&x[i], &y[i], 4) == 0, "%s dequantized value %u is %.9g, gguf-py says %.9g",
                      dtype_name(r.type), i, y[i], x[i]);
            n_d++;
        }
    }
    free(d);
    free(x);
    free(y);
    free(q);
    CHECK(rc == 0, "quant_reference.bin is malformed");
    CHECK(n_q == 15 && n_d == 8, "%d quantize and %d dequantize records", n_q, n_d);
}

/* ------------------------------------------------------ round-trip error */

/* rms(dequant(quant(x)) - x) / rms(x) over weight-like rows, and the
 * per-value bound of the 32-blocks: half a step of the stored scale, plus
 * what rounding d to f16 moves the largest code (|q| 2^-11 d), a whole
 * step for the _0 types (the far end of the range is clipped: Q4_0 has
 * codes -8..7), plus for the _1 types the f16 rounding of the minimum. */
static void t_quant_round_trip_error(void) {
    /* measured on this data: Q4_0 0.083, Q4_1 0.076, Q5_0 0.042, Q5_1 0.038,
     * Q8_0 0.0053, Q4_K 0.071, Q5_K 0.036, Q6_K 0.018; bounds 1.25-1.7x */
    const float rel_bound[] = {0.104f, 0.095f, 0.053f, 0.047f, 0.0066f, 0.09f, 0.05f, 0.03f};
    const int64_t n = 4096;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    uint8_t *q = malloc(dtype_row_bytes(DT_Q8_0, n) + 64);
    for (int ti = 0; ti < N_ALL; ti++) {
        DType t = ALL[ti];
        for (int64_t i = 0; i < n; i++) x[i] = 0.02f * rnd_normal();
        quantize_row(t, x, q, n);
        dequantize_row(t, q, y, n);
        double e2 = 0, x2 = 0;
        for (int64_t i = 0; i < n; i++) {
            e2 += (double)(y[i] - x[i]) * (y[i] - x[i]);
            x2 += (double)x[i] * x[i];
        }
        double rel = sqrt(e2 / x2);
        printf("      %s: rms error %.4f of rms(x)\n", dtype_name(t), rel);
        CHECK(rel <= rel_bound[ti], "%s: relative rms error %.4f > %.4f", dtype_name(t), rel, rel_bound[ti]);
        if (dtype_block_elems(t) != QK) continue;
        const uint8_t *b = q;
        for (int64_t i = 0; i < n; i += QK, b += dtype_block_bytes(t)) {
            uint16_t dh;
            memcpy(&dh, b, 2);
            float d = fabsf(f16_to_f32(dh)), clip = (t == DT_Q4_0 || t == DT_Q5_0) ? 1.0f : 0.5f;
            float qmax = t == DT_Q8_0 ? 127 : t == DT_Q5_1 ? 31 : 16;
            float bound = d * (clip + qmax / 2048.0f) + 1e-7f;
            if (t == DT_Q4_1 || t == DT_Q5_1) {
                uint16_t mh;
                memcpy(&mh, b + 2, 2);
                bound += fabsf(f16_to_f32(mh)) / 2048.0f;
            }
            for (int j = 0; j < QK; j++)
                CHECK(fabsf(y[i + j] - x[i + j]) <= bound, "%s value %lld: %g vs %g (bound %g)", dtype_name(t),
                      (long long)(i + j), y[i + j], x[i + j], bound);
        }
    }
    /* blocks of zeros stay zeros in every type */
    memset(x, 0, n * sizeof(float));
    for (int ti = 0; ti < N_ALL; ti++) {
        quantize_row(ALL[ti], x, q, 512);
        dequantize_row(ALL[ti], q, y, 512);
        CHECK(max_abs(y, 512) == 0, "%s: zeros came back as %g", dtype_name(ALL[ti]), max_abs(y, 512));
    }
    free(x);
    free(y);
    free(q);
}

/* The K quantizers' last step re-codes every value against the scales they
 * stored: each code must be the nearest one (clamped) to x under those
 * scales, which dequantizing and re-quantizing with the block's own scale
 * reproduces. Checked through the error: no value is further from its
 * dequantized value than half a step of its sub-block (or clamped). */
static void t_quant_k_codes_are_nearest(void) {
    const int64_t n = 1024;
    float x[1024], y[1024];
    uint8_t q[1024];
    for (int64_t i = 0; i < n; i++) x[i] = rnd_normal() * (i % 256 < 32 ? 5.0f : 0.5f);
    DType ks[] = {DT_Q4_K, DT_Q5_K, DT_Q6_K};
    for (int ti = 0; ti < 3; ti++) {
        DType t = ks[ti];
        CHECK(quantize_row(t, x, q, n) == 0, "quantize");
        dequantize_row(t, q, y, n);
        /* the step of a sub-block is the smallest gap between its distinct dequantized values */
        int sub = t == DT_Q6_K ? 16 : 32;
        for (int64_t s = 0; s < n; s += sub) {
            float lo = y[s], hi = y[s], step = INFINITY;
            for (int j = 0; j < sub; j++) {
                lo = fminf(lo, y[s + j]), hi = fmaxf(hi, y[s + j]);
                for (int l = 0; l < sub; l++)
                    if (y[s + l] != y[s + j] && fabsf(y[s + l] - y[s + j]) < step) step = fabsf(y[s + l] - y[s + j]);
            }
            if (!isfinite(step)) continue;
            for (int j = 0; j < sub; j++) {
                float v = x[s + j];
                int clamped = v <= lo || v >= hi;
                CHECK(clamped || fabsf(v - y[s + j]) <= 0.5f * step * 1.001f + 1e-6f,
                      "%s value %lld: %g coded as %g, step %g", dtype_name(t), (long long)(s + j), v, y[s + j], step);
            }
        }
    }
}

/* ------------------------------------------------------------ dot products */

/* Random blocks of type t for k values: quantized normal data, or (raw)
 * random bytes with sane f16 scales, which reach codes the quantizers
 * rarely make (-128 in Q8_0, every 6-bit scale). */
static void random_row(DType t, void *dst, int64_t k, int raw) {
    if (!raw) {
        float *x = malloc((size_t)k * sizeof(float));
        for (int64_t i = 0; i < k; i++) x[i] = rnd_normal() * (1.0f + (float)(i % 97) / 50.0f);
        quantize_row(t, x, dst, k);
        free(x);
        return;
    }
    size_t nb = (size_t)(k / dtype_block_elems(t)), bb = dtype_block_bytes(t);
    uint8_t *b = dst;
    for (size_t i = 0; i < nb * bb; i++) b[i] = (uint8_t)rnd_u32();
    for (size_t i = 0; i < nb; i++, b += bb) {
        uint16_t d = f32_to_f16(0.01f * rnd_normal()), m = f32_to_f16(0.01f * rnd_normal());
        size_t at = t == DT_Q6_K ? 208 : 0;
        memcpy(b + at, &d, 2);
        if (t == DT_Q4_1 || t == DT_Q5_1 || t == DT_Q4_K || t == DT_Q5_K) memcpy(b + 2, &m, 2);
    }
}

/* sum |w_i| |a_i| of the dequantized row and activation: the scale of the
 * float rounding in a dot product. */
static double abs_dot(DType t, const void *w, const void *act, int64_t k) {
    float *wf = malloc((size_t)k * sizeof(float));
    dequantize_row(t, w, wf, k);
    double s = 0;
    int ab = quant_act_block(t);
    for (int64_t i = 0; i < k; i++) {
        float a;
        if (ab == QK) {
            const QuantAct32 *b = (const QuantAct32 *)act + i / QK;
            a = b->d * b->qs[i % QK];
        } else {
            const QuantAct256 *b = (const QuantAct256 *)act + i / QK_K;
            a = b->d * b->qs[i % QK_K];
        }
        s += fabs((double)wf[i] * a);
    }
    free(wf);
    return s;
}

/* The scalar dot equals the f64 dot of the dequantized row and activation
 * (the same products, summed in another order). */
static void t_quant_scalar_dot_is_dequantized_dot(void) {
    const int64_t k = 1024;
    uint8_t *w = malloc(dtype_row_bytes(DT_Q8_0, k)), *act = malloc(quant_act_bytes(DT_Q4_0, k) + 64);
    float x[1024], wf[1024];
    for (int ti = 0; ti < N_ALL; ti++) {
        DType t = ALL[ti];
        random_row(t, w, k, ti % 2);
        for (int64_t i = 0; i < k; i++) x[i] = rnd_normal();
        quantize_act(t, x, act, k);
        dequantize_row(t, w, wf, k);
        double ref = 0;
        for (int64_t i = 0; i < k; i++) {
            float a;
            if (quant_act_block(t) == QK) a = ((QuantAct32 *)act)[i / QK].d * ((QuantAct32 *)act)[i / QK].qs[i % QK];
            else a = ((QuantAct256 *)act)[i / QK_K].d * ((QuantAct256 *)act)[i / QK_K].qs[i % QK_K];
            ref += (double)wf[i] * a;
        }
        float got = quant_dot(t, w, act, k);
        double bound = 1e-5 * abs_dot(t, w, act, k);
        CHECK(fabs(got - ref) <= bound, "%s: scalar dot %.9g, dequantized dot %.9g", dtype_name(t), got, ref);
        /* and the activation is x to within half its step */
        for (int64_t i = 0; i < k; i++) {
            float a, d;
            if (quant_act_block(t) == QK) {
                const QuantAct32 *b = (const QuantAct32 *)act + i / QK;
                a = b->d * b->qs[i % QK], d = b->d;
            } else {
                const QuantAct256 *b = (const QuantAct256 *)act + i / QK_K;
                a = b->d * b->qs[i % QK_K], d = b->d;
            }
            CHECK(fabsf(a - x[i]) <= 0.5f * fabsf(d) * 1.0001f + 1e-7f, "%s activation %lld", dtype_name(t),
                  (long long)i);
        }
    }
    free(w);
    free(act);
}

/* Every AVX2 dot equals the scalar one up to float summation order: the
 * integer block sums are the same, so the difference is bounded by a few
 * ulps of sum |w||a|. One block, many blocks, odd counts, random bytes. */
static void t_quant_avx2_dot_matches_scalar(void) {
    if (kernel_best() == KERNEL_SCALAR) {
        test_skip("this CPU has no AVX2");
        return;
    }
    const int64_t blocks[] = {1, 2, 3, 7, 16, 43};
    uint8_t *w = malloc(dtype_row_bytes(DT_Q8_0, 43 * 256)), *act = malloc(quant_act_bytes(DT_Q4_0, 43 * 256));
    float *x = malloc(43 * 256 * sizeof(float));
    double worst = 0;
    for (int ti = 0; ti < N_ALL; ti++)
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++)
            for (int raw = 0; raw < 2; raw++) {
                DType t = ALL[ti];
                int64_t k = blocks[bi] * dtype_block_elems(t);
                random_row(t, w, k, raw);
                for (int64_t i = 0; i < k; i++) x[i] = rnd_normal() * (i % 5 == 0 ? 10.0f : 1.0f);
                quantize_act(t, x, act, k);
                float s = quant_dot(t, w, act, k), v = quant_dot_avx2(t, w, act, k);
                double scale = abs_dot(t, w, act, k), rel = fabs((double)s - v) / (scale > 0 ? scale : 1);
                if (rel > worst) worst = rel;
                CHECK(fabs((double)s - v) <= 1e-5 * scale + 1e-30, "%s, %lld blocks%s: avx2 %.9g, scalar %.9g",
                      dtype_name(t), (long long)blocks[bi], raw ? " (random bytes)" : "", v, s);
            }
    free(w);
    free(act);
    free(x);
    printf("      worst |avx2 - scalar| / sum|w||a| = %.2g\n", worst);
}

/* quant_matvec_avx2 takes Q4_0/Q8_0 rows four at a time from the four
 * quarters of the range and the other types two at a time from its halves: every
 * row count 1..11 (quarters and halves of 0..5 rows, leftovers of 0..3),
 * rows of one to several blocks and a row stride wider than the row, each
 * row against the scalar dot and no row past the range written. */
static void t_quant_avx2_matvec_rows_match_scalar(void) {
    if (kernel_best() == KERNEL_SCALAR) {
        test_skip("this CPU has no AVX2");
        return;
    }
    const int64_t blocks[] = {1, 3, 9};
    const size_t pad = 36; /* bytes between rows, so rows are not packed */
    uint8_t *w = malloc(11 * (dtype_row_bytes(DT_Q8_0, 9 * 256) + pad)), *act = malloc(quant_act_bytes(DT_Q4_0, 9 * 256));
    float *x = malloc(9 * 256 * sizeof(float)), y[11];
    for (int ti = 0; ti < N_ALL; ti++)
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
            DType t = ALL[ti];
            int64_t k = blocks[bi] * dtype_block_elems(t);
            size_t rb = dtype_row_bytes(t, k) + pad;
            for (int r = 0; r < 11; r++) random_row(t, w + r * rb, k, r % 2);
            for (int64_t i = 0; i < k; i++) x[i] = rnd_normal();
            quantize_act(t, x, act, k);
            for (long rows = 1; rows <= 11; rows++) {
                for (long r = 0; r < 11; r++) y[r] = -12345.0f;
                quant_matvec_avx2(t, y, w, rb, rows, act, k);
                for (long r = 0; r < 11; r++) {
                    if (r >= rows) {
                        CHECK(y[r] == -12345.0f, "%s: %ld rows wrote y[%ld]", dtype_name(t), rows, r);
                        continue;
                    }
                    float s = quant_dot(t, w + r * rb, act, k);
                    double scale = abs_dot(t, w + r * rb, act, k);
                    CHECK(fabs((double)s - y[r]) <= 1e-5 * scale + 1e-30, "%s, %lld blocks, row %ld of %ld: %.9g, scalar %.9g",
                          dtype_name(t), (long long)blocks[bi], r, rows, y[r], s);
                }
            }
        }
    free(w);
    free(act);
    free(x);
}

/* The AVX2 activation quantizers and dequantizers are bit-identical to the
 * scalar ones: normal data, all zeros, a lone value, values that land on
 * exact halves (roundf rounds them away from zero, nearest_int to even),
 * ties for the largest magnitude (the first one sets the Q8_K sign). */
static void t_quant_avx2_act_and_dequant_are_exact(void) {
    if (kernel_best() == KERNEL_SCALAR) {
        test_skip("this CPU has no AVX2");
        return;
    }
    const int64_t k = 3 * 256;
    float *x = malloc(k * sizeof(float)), *a = malloc(k * sizeof(float)), *b = malloc(k * sizeof(float));
    uint8_t *s = malloc(quant_act_bytes(DT_Q4_0, k)), *v = malloc(quant_act_bytes(DT_Q4_0, k));
    uint8_t *w = malloc(dtype_row_bytes(DT_Q8_0, k));
    for (int kind = 0; kind < 5; kind++) {
        for (int64_t i = 0; i < k; i++) {
            switch (kind) {
            case 0: x[i] = rnd_normal() * (i % 7 == 0 ? 20.0f : 1.0f); break;
            case 1: x[i] = 0; break;
            case 2: x[i] = i == 300 ? -3.0f : 0.0f; break;
            case 3: x[i] = i % 32 == 0 ? 127.0f : (float)(i % 64) - 31.5f; break; /* d == 1: exact halves */
            default: x[i] = i % 16 == 5 ? (i % 32 < 16 ? 4.0f : -4.0f) : (float)(i % 9) * 0.5f - 2.0f; break;
            }
        }
        const DType acts[] = {DT_Q4_0, DT_Q4_K};
        for (int ai = 0; ai < 2; ai++) {
            size_t nbytes = quant_act_bytes(acts[ai], k);
            memset(s, 0xAA, nbytes), memset(v, 0x55, nbytes);
            quantize_act(acts[ai], x, s, k);
            quantize_act_avx2(acts[ai], x, v, k);
            CHECK(memcmp(s, v, nbytes) == 0, "input %d: %s activation differs", kind, ai ? "Q8_K" : "Q8_0");
        }
    }
    for (int ti = 0; ti < N_ALL; ti++)
        for (int raw = 0; raw < 2; raw++) {
            random_row(ALL[ti], w, k, raw);
            dequantize_row(ALL[ti], w, a, k);
            dequantize_row_avx2(ALL[ti], w, b, k);
            CHECK(memcmp(a, b, k * sizeof(float)) == 0, "%s%s: avx2 dequantization differs", dtype_name(ALL[ti]),
                  raw ? " (random bytes)" : "");
        }
    free(x), free(a), free(b), free(s), free(v), free(w);
}

/* matmul with quantized W against the f64 reference on the dequantized W,
 * both levels, 1 and 2 threads, odd row counts. Decoding (n == 1) rounds x
 * to 8 bits: |y - ref| <= sum_i |w_i| * (half a step of x_i's block). The
 * prefill path dequantizes W exactly: 1e-4 relative, as for f32. */
static void t_quant_matmul_levels(void) {
    const long ms[] = {1, 5, 37};
    const long n_tokens[] = {1, 3, 13};
    for (int ti = 0; ti < N_ALL; ti++) {
        DType t = ALL[ti];
        long k = 2 * dtype_block_elems(t) + (dtype_block_elems(t) == QK ? 3 * QK : 0);
        for (size_t mi = 0; mi < 3; mi++)
            for (size_t ni = 0; ni < 3; ni++) {
                long m = ms[mi], n = n_tokens[ni];
                size_t rb = dtype_row_bytes(t, k);
                uint8_t *wd = malloc((size_t)m * rb);
                for (long j = 0; j < m; j++) random_row(t, wd + (size_t)j * rb, k, j % 3 == 0);
                int64_t shape[2] = {m, k};
                Tensor w = tensor_view(t, wd, 2, shape);
                float *x = malloc((size_t)(n * k) * sizeof(float)), *ref = malloc((size_t)(n * m) * sizeof(float));
                float *got = malloc((size_t)(n * m) * sizeof(float)), *wf = malloc((size_t)k * sizeof(float));
                for (long i = 0; i < n * k; i++) x[i] = rnd_normal();
                matmul_ref(ref, x, n, &w);
                for (int level = 0; level <= (int)kernel_best(); level++)
                    for (int th = 1; th <= 2; th++) {
                        float *scratch = malloc(matmul_scratch_floats(th, k) * sizeof(float));
                        matmul(test_pool(th), (KernelLevel)level, got, x, n, &w, scratch);
                        for (long j = 0; j < m; j++) {
                            dequantize_row(t, wd + (size_t)j * rb, wf, k);
                            for (long i = 0; i < n; i++) {
                                double bound = 0;
                                const float *xi = x + i * k;
                                for (long c = 0; c < k; c++) {
                                    if (n == 1) {
                                        int ab = quant_act_block(t);
                                        long b0 = c / ab * ab;
                                        float amax = 0;
                                        for (long u = b0; u < b0 + ab; u++) amax = fmaxf(amax, fabsf(xi[u]));
                                        bound += fabs(wf[c]) * (0.5 * amax / 127 * 1.001);
                                    }
                                    bound += 1e-5 * fabs(wf[c] * xi[c]);
                                }
                                float g = got[i * m + j], r = ref[i * m + j];
                                CHECK(fabs(g - r) <= bound + 1e-6, "%s m %ld n %ld level %d threads %d row %ld: %.7g vs %.7g "
                                      "(bound %.3g)", dtype_name(t), m, n, level, th, j, g, r, bound);
                            }
                        }
                        free(scratch);
                    }
                free(wd);
                free(x);
                free(ref);
                free(got);
                free(wf);
            }
    }
}

/* ------------------------------------------------------ converter rules */

static void t_quant_llama_cpp_type_rules(void) {
    const GgufOutType *q4km = gguf_out_type("q4_k_m"), *q40 = gguf_out_type("q4_0"), *q80 = gguf_out_type("q8_0");
    CHECK(q4km && q40 && q80, "types");
    CHECK(q4km->file_type == 15 && q40->file_type == 2 && q80->file_type == 7, "general.file_type");
    /* LLaMA-7B: 32 layers, 4096 / 11008 */
    char name[64];
    int more = 0;
    for (int l = 0; l < 32; l++) {
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
        uint32_t v = gguf_tensor_type(q4km, name, 4096, 32, 0);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        uint32_t d = gguf_tensor_type(q4km, name, 11008, 32, 0);
        int want = l < 4 || l >= 28 || (l - 4) % 3 == 2;
        CHECK(v == (want ? GGML_Q6_K : GGML_Q4_K) && d == v, "layer %d: attn_v %s, ffn_down %s", l,
              ggml_type_name(v), ggml_type_name(d));
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", l);
        CHECK(gguf_tensor_type(q4km, name, 4096, 32, 0) == GGML_Q4_K, "attn_q");
        more += want;
    }
    CHECK(more == 16, "%d layers with more bits, llama.cpp picks 16 of 32", more);
    CHECK(gguf_tensor_type(q4km, "output.weight", 4096, 32, 0) == GGML_Q6_K, "q4_k_m output");
    CHECK(gguf_tensor_type(q4km, "token_embd.weight", 4096, 32, 0) == GGML_Q4_K, "q4_k_m token_embd");
    CHECK(gguf_tensor_type(q4km, "token_embd.weight", 4096, 32, 1) == GGML_Q6_K, "tied token_embd is the output");
    CHECK(gguf_tensor_type(q40, "output.weight", 4096, 32, 0) == GGML_Q6_K, "q4_0 output");
    CHECK(gguf_tensor_type(q40, "blk.0.ffn_down.weight", 11008, 32, 0) == GGML_Q4_0, "q4_0 ffn_down");
    CHECK(gguf_tensor_type(q80, "output.weight", 4096, 32, 0) == GGML_Q8_0, "q8_0 output");
    /* rows that are not whole blocks */
    CHECK(gguf_tensor_type(q4km, "blk.0.attn_q.weight", 64, 2, 0) == GGML_Q5_0, "Q4_K -> Q5_0");
    CHECK(gguf_tensor_type(q4km, "output.weight", 64, 2, 0) == GGML_Q8_0, "Q6_K -> Q8_0");
    CHECK(gguf_tensor_type(q4km, "blk.0.ffn_down.weight", 176, 2, 0) == GGML_F16, "176 -> F16");
    CHECK(gguf_tensor_type(q40, "blk.0.ffn_down.weight", 176, 2, 0) == GGML_F16, "q4_0 176 -> F16");
    CHECK(gguf_tensor_type(gguf_out_type("f16"), "output.weight", 4096, 32, 0) == GGML_F16, "f16 output");
}

/* ------------------------------------------------------ llama-tiny */

static const char *converted_tiny(const char *type, Error *err) {
    static char paths[4][700];
    static int next;
    const char *dir = fixture_path("llama-tiny");
    char *path = paths[next++ % 4];
    snprintf(path, sizeof paths[0], "%s/quant-llama-tiny-%s.gguf", test_tmpdir(), type);
    if (file_exists(path)) return path;
    return llama_convert_gguf(dir, path, gguf_out_type(type), err) ? NULL : path;
}

/* The prompt logits of the model at path for the fixture's prompt p0. */
static float *prompt_logits(const char *path, const int *ids, int T, int *vocab, Error *err) {
    Llama m;
    if (llama_load(&m, path, err)) return NULL;
    LlamaState s;
    float *out = malloc((size_t)T * m.config.vocab_size * sizeof(float));
    *vocab = m.config.vocab_size;
    int rc = llama_state_new(&s, &m, 64, 64, test_pool(2), err) || llama_forward(&m, &s, ids, T, 0, out, err);
    if (s.arena) llama_state_free(&s);
    llama_free(&m);
    if (rc) {
        free(out);
        return NULL;
    }
    return out;
}

static int tensor_type_in(const char *path, const char *name, uint32_t *type, Error *err) {
    Gguf *g;
    if (gguf_open(&g, path, err)) return -1;
    const GgufTensor *t = gguf_find_tensor(g, name);
    *type = t ? t->type : 0xffffffffu;
    gguf_close(g);
    return 0;
}

/* Quantized prompt logits against the F32 GGUF's, relative to max(1,
 * max|logit|). Measured: q8_0 0.013, q4_0 0.18, q4_k_m 0.12 (mostly Q5_0
 * here: llama-tiny's 64-wide rows cannot be K blocks). llama-tiny has
 * random weights and near-flat logits, so this measures the weights'
 * rounding, not quality; bounds about 1.7x. */
static void t_quant_llama_tiny_logits(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    (void)dir;
    Error err;
    const char *f32 = converted_tiny("f32", &err);
    CHECK(f32, "%s", err.msg);
    const int ids[] = {1, 450, 16500, 471, 20114, 411, 521, 342, 6788};
    const int T = 9;
    int vocab;
    float *ref = prompt_logits(f32, ids, T, &vocab, &err);
    CHECK(ref, "%s", err.msg);
    const struct {
        const char *type;
        float bound;
    } cases[] = {{"q8_0", 0.022f}, {"q4_0", 0.3f}, {"q4_k_m", 0.2f}};
    size_t N = (size_t)T * vocab;
    for (int c = 0; c < 3; c++) {
        const char *path = converted_tiny(cases[c].type, &err);
        CHECK(path, "%s", err.msg);
        float *got = prompt_logits(path, ids, T, &vocab, &err);
        CHECK(got, "%s", err.msg);
        float mx = max_abs(ref, N), d = max_abs_diff(got, ref, N) / (mx > 1 ? mx : 1);
        printf("      %s: prompt logits within %.2g of F32 (relative to max(1, max|logit|))\n", cases[c].type, d);
        free(got);
        CHECK(d <= cases[c].bound, "%s: %g > %g", cases[c].type, d, cases[c].bound);
    }
    free(ref);
    /* the types llama.cpp would have chosen for these 64 / 176-wide rows */
    const struct {
        const char *type, *tensor;
        uint32_t want;
    } types[] = {
        {"q8_0", "blk.0.attn_q.weight", GGML_Q8_0},   {"q8_0", "blk.0.ffn_down.weight", GGML_F16},
        {"q8_0", "output.weight", GGML_Q8_0},         {"q4_0", "blk.1.ffn_up.weight", GGML_Q4_0},
        {"q4_0", "output.weight", GGML_Q8_0},         {"q4_0", "token_embd.weight", GGML_Q4_0},
        {"q4_k_m", "blk.0.attn_v.weight", GGML_Q5_0}, {"q4_k_m", "blk.1.attn_v.weight", GGML_Q8_0},
        {"q4_k_m", "output_norm.weight", GGML_F32},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        uint32_t got;
        CHECK(tensor_type_in(converted_tiny(types[i].type, &err), types[i].tensor, &got, &err) == 0, "%s", err.msg);
        CHECK(got == types[i].want, "%s %s is %s, expected %s", types[i].type, types[i].tensor, ggml_type_name(got),
              ggml_type_name(types[i].want));
    }
}

/* Decoding token by token (the integer path) agrees with the prompt pass
 * (the dequantizing GEMM) to within the activation rounding. */
static void t_quant_decode_matches_prefill(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    (void)dir;
    Error err;
    const char *path = converted_tiny("q4_0", &err);
    CHECK(path, "%s", err.msg);
    Llama m;
    CHECK(llama_load(&m, path, &err) == 0, "%s", err.msg);
    /* zero-copy: every matrix is a view into the map */
    const uint8_t *lo = m.gguf->bytes, *hi = lo + m.gguf->size;
    const LlamaLayer *L = &m.weights.layers[0];
    const Tensor *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down, &m.weights.embed,
                            &m.weights.lm_head};
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
        CHECK((const uint8_t *)mats[i]->data >= lo && (const uint8_t *)mats[i]->data < hi, "matrix %zu was copied", i);
    CHECK(L->wq.dtype == DT_Q4_0 && L->w_down.dtype == DT_F16 && m.weights.lm_head.dtype == DT_Q8_0,
          "dtypes %s %s %s", dtype_name(L->wq.dtype), dtype_name(L->w_down.dtype), dtype_name(m.weights.lm_head.dtype));
    const int ids[] = {1, 450, 16500, 471, 20114, 411};
    int T = 6, V = m.config.vocab_size;
    LlamaState s;
    CHECK(llama_state_new(&s, &m, 32, 8, test_pool(2), &err) == 0, "%s", err.msg);
    float *all = malloc((size_t)T * V * sizeof(float)), *one = malloc((size_t)V * sizeof(float));
    int rc = llama_forward(&m, &s, ids, T, 0, all, &err);
    float worst = 0;
    for (int t = 0; t < T && !rc; t++) {
        rc = llama_forward(&m, &s, ids + t, 1, t, one, &err);
        float mx = max_abs(all + (size_t)t * V, V), d = max_abs_diff(one, all + (size_t)t * V, V) / (mx > 1 ? mx : 1);
        if (d > worst) worst = d;
    }
    free(all);
    free(one);
    llama_state_free(&s);
    llama_free(&m);
    CHECK(rc == 0, "%s", err.msg);
    printf("      q4_0 decode vs prefill: %.2g\n", worst);
    CHECK(worst <= 2e-2f, "decode vs prefill %g", worst);
}

/* ------------------------------------------------------ bad input */

/* A GGUF holding only blk.0.attn_q.weight, of type `type` with ne {cols,
 * 2}, all zero bytes. */
static const char *one_tensor_gguf(const char *file, uint32_t type, int64_t cols, Error *err) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), file);
    static char out[700];
    snprintf(out, sizeof out, "%s", path);
    GgufWriter *w;
    if (gguf_writer_open(&w, path, err)) return NULL;
    int64_t ne[2] = {cols, 2};
    uint64_t bytes = 2 * ggml_row_bytes(type, (uint64_t)cols);
    int rc = gguf_writer_add_string(w, "general.architecture", "llama", err) ||
             gguf_writer_add_tensor(w, "blk.0.attn_q.weight", type, 2, ne, err);
    uint8_t *zeros = calloc(1, bytes + 1);
    if (!rc) rc = gguf_writer_write(w, zeros, bytes, err);
    free(zeros);
    if (rc) {
        gguf_writer_abort(w);
        return NULL;
    }
    return gguf_writer_close(w, err) ? NULL : out;
}

static void t_quant_bad_input_messages(void) {
    Error err;
    /* the writer refuses to write it, so write it as 64 wide and patch ne[0] */
    const char *path = one_tensor_gguf("q4_0_48.gguf", GGML_Q4_0, 64, &err);
    CHECK(path, "%s", err.msg);
    char *data;
    size_t len;
    CHECK(file_read_all(path, 1 << 20, &data, &len, &err) == 0, "%s", err.msg);
    const char *nm = "blk.0.attn_q.weight";
    char *at = memmem(data, len, nm, strlen(nm));
    CHECK(at, "tensor name not found");
    int64_t ne0;
    memcpy(&ne0, at + strlen(nm) + 4, 8); /* after the name: n_dims u32, then ne[0] */
    CHECK(ne0 == 64, "layout: ne0 %lld", (long long)ne0);
    ne0 = 48;
    memcpy(at + strlen(nm) + 4, &ne0, 8);
    CHECK(file_write_all(path, data, len, &err) == 0, "%s", err.msg);
    free(data);
    Gguf *g;
    CHECK(gguf_open(&g, path, &err) == -1, "a Q4_0 tensor with 48-value rows was accepted");
    char want[1200];
    snprintf(want, sizeof want,
             "%s: tensor 'blk.0.attn_q.weight' is Q4_0 with rows of 48 values, not a multiple of its block size 32",
             path);
    CHECK(strcmp(err.msg, want) == 0, "%s", err.msg);
}

/* llama-tiny's GGUF with token_embd in Q2_K (as 256-wide rows, which
 * Q2_K needs): the refusal names the tensor and the types vmed has. */
static void t_quant_unsupported_type_message(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    (void)dir;
    Error err;
    const char *src = converted_tiny("f32", &err);
    CHECK(src, "%s", err.msg);
    Gguf *g;
    CHECK(gguf_open(&g, src, &err) == 0, "%s", err.msg);
    char path[700];
    snprintf(path, sizeof path, "%s/quant-q2k.gguf", test_tmpdir());
    GgufWriter *w;
    CHECK(gguf_writer_open(&w, path, &err) == 0, "%s", err.msg);
    int rc = 0;
    for (int64_t i = 0; i < g->n_kv && !rc; i++) {
        const GgufKV *kv = &g->kvs[i];
        if (kv->type == GGUF_STRING) {
            const char *str;
            uint64_t n;
            char s[512];
            if (gguf_get_string(g, kv->key, &str, &n, &err) == 0 && n < sizeof s) {
                snprintf(s, sizeof s, "%.*s", (int)n, str);
                rc = gguf_writer_add_string(w, kv->key, s, &err);
            }
        } else if (kv->type == GGUF_U32) {
            uint32_t v;
            memcpy(&v, kv->data, 4);
            rc = gguf_writer_add_u32(w, kv->key, v, &err);
        } else if (kv->type == GGUF_F32) {
            float v;
            memcpy(&v, kv->data, 4);
            rc = gguf_writer_add_f32(w, kv->key, v, &err);
        }
    }
    for (int64_t i = 0; i < g->n_tensors && !rc; i++) {
        const GgufTensor *t = &g->tensors[i];
        int q = strcmp(t->name, "token_embd.weight") == 0;
        int64_t ne[2] = {t->ne[0], t->ne[1]};
        if (q) ne[0] = 256, ne[1] = t->ne[1] / 4; /* same element count, 256 wide */
        rc = gguf_writer_add_tensor(w, t->name, q ? GGML_Q2_K : t->type, t->n_dims, ne, &err);
    }
    for (int64_t i = 0; i < g->n_tensors && !rc; i++) {
        const GgufTensor *t = &g->tensors[i];
        if (strcmp(t->name, "token_embd.weight") == 0) {
            size_t n = ggml_row_bytes(GGML_Q2_K, 256) * (size_t)(t->ne[1] / 4);
            uint8_t *z = calloc(1, n);
            rc = gguf_writer_write(w, z, n, &err);
            free(z);
        } else {
            rc = gguf_writer_write(w, t->data, (size_t)t->nbytes, &err);
        }
    }
    gguf_close(g);
    if (rc) gguf_writer_abort(w);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(gguf_writer_close(w, &err) == 0, "%s", err.msg);
    Llama m;
    CHECK(llama_load(&m, path, &err) == -1, "a Q2_K model loaded");
    char want[1400];
    snprintf(want, sizeof want, "%s: tensor 'token_embd.weight' is Q2_K; vmed computes with F32, F16, BF16, Q4_0, "
             "Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K only", path);
    CHECK(strcmp(err.msg, want) == 0, "%s", err.msg);
}

static void t_quant_cli_convert(void) {
    NEED_FIXTURE(dir, "llama-tiny");
    char args[2048], out[700], got[1 << 12], errout[4096];
    snprintf(out, sizeof out, "%s/quant-cli.gguf", test_tmpdir());
    snprintf(args, sizeof args, "convert '%s' '%s' --type q4_k_m", dir, out);
    CHECK(test_vmed(args, got, sizeof got, errout, sizeof errout) == 0, "%s", errout);
    Gguf *g;
    Error err;
    CHECK(gguf_open(&g, out, &err) == 0, "%s", err.msg);
    int64_t ft = -1;
    CHECK(gguf_get_int(g, "general.file_type", &ft, &err) == 0 && ft == 15, "general.file_type %lld", (long long)ft);
    gguf_close(g);
}

void suite_quant(void) {
    RUN(t_quant_block_sizes);
    RUN(t_quant_matches_gguf_py);
    RUN(t_quant_round_trip_error);
    RUN(t_quant_k_codes_are_nearest);
    RUN(t_quant_scalar_dot_is_dequantized_dot);
    RUN(t_quant_avx2_dot_matches_scalar);
    RUN(t_quant_avx2_matvec_rows_match_scalar);
    RUN(t_quant_avx2_act_and_dequant_are_exact);
    RUN(t_quant_matmul_levels);
    RUN(t_quant_llama_cpp_type_rules);
    RUN(t_quant_llama_tiny_logits);
    RUN(t_quant_decode_matches_prefill);
    RUN(t_quant_bad_input_messages);
    RUN(t_quant_unsupported_type_message);
    RUN(t_quant_cli_convert);
}
