#include "tensor/matmul.h"

#include <string.h>

#include "tensor/quant.h"

#if defined(__x86_64__)
#include <cpuid.h>

/* CPUID, plus XGETBV to check that the OS saves the YMM registers. (clang's
 * __builtin_cpu_supports does not know "f16c", so ask the CPU directly.) */
static int cpu_has_avx2_fma_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!(fma && osxsave && avx && f16c)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 5) & 1;
}
#endif

KernelLevel kernel_best(void) {
#if defined(__x86_64__)
    if (cpu_has_avx2_fma_f16c()) return KERNEL_AVX2;
#endif
    return KERNEL_SCALAR;
}

const char *kernel_name(KernelLevel l) { return l == KERNEL_AVX2 ? "avx2" : "scalar"; }

static float load_f32(const void *w, DType dt, long i) {
    switch (dt) {
    case DT_F16: return f16_to_f32(((const uint16_t *)w)[i]);
    case DT_BF16: return bf16_to_f32(((const uint16_t *)w)[i]);
    default: return ((const float *)w)[i];
    }
}

void convert_to_f32(KernelLevel level, float *dst, const void *src, DType dt, long count) {
    if (dtype_is_quant(dt)) {
#if defined(__x86_64__)
        if (level == KERNEL_AVX2) {
            dequantize_row_avx2(dt, src, dst, count);
            return;
        }
#endif
        dequantize_row(dt, src, dst, count);
        return;
    }
    if (dt == DT_F32) {
        memcpy(dst, src, (size_t)count * sizeof(float));
        return;
    }
#if defined(__x86_64__)
    if (level == KERNEL_AVX2) {
        convert_to_f32_avx2(dst, src, dt, count);
        return;
    }
#endif
    for (long i = 0; i < count; i++) dst[i] = load_f32(src, dt, i);
}

static void matvec_rows_scalar(float *y, const float *x, const void *w, DType dt, long j0, long j1, long k) {
    for (long j = j0; j < j1; j++) {
        float s = 0;
        for (long i = 0; i < k; i++) s += x[i] * load_f32(w, dt, j * k + i);
        y[j] = s;
    }
}

static void gemm_panel_scalar(float *y, long ldy, const float *x, long n, long k, const float *panel, long cols,
                              int accumulate) {
    for (long i = 0; i < n; i++)
        for (long j = 0; j < cols; j++) {
            float s = 0;
            for (long t = 0; t < k; t++) s += x[i * k + t] * panel[t * MATMUL_BLOCK_ROWS + j];
            y[i * ldy + j] = accumulate ? y[i * ldy + j] + s : s;
        }
}

void matvec_rows(KernelLevel level, float *y, const float *x, const void *w, DType dt, long j0, long j1, long k) {
#if defined(__x86_64__)
    if (level == KERNEL_AVX2) {
        matvec_rows_avx2(y, x, w, dt, j0, j1, k);
        return;
    }
#endif
    matvec_rows_scalar(y, x, w, dt, j0, j1, k);
}

void gemm_panel(KernelLevel level, float *y, long ldy, const float *x, long n, long k, const float *panel, long cols,
                int accumulate) {
#if defined(__x86_64__)
    if (level == KERNEL_AVX2) {
        gemm_panel_avx2(y, ldy, x, n, k, panel, cols, accumulate);
        return;
    }
#endif
    gemm_panel_scalar(y, ldy, x, n, k, panel, cols, accumulate);
}

#if defined(__x86_64__)
/* Values per row of a quantized panel tile: a multiple of every block. */
#define QUANT_TILE 256

/* Quantized rows with AVX2: QUANT_TILE values of each row dequantized into
 * a row-major [rows][kc] tile (16 KB, on the stack, in L1), which the f32
 * packer then transposes into the panel 8x8 at a time. Scalar unpacking
 * and a one-float scatter per weight took about as long as the GEMM
 * itself at 128 activation rows. */
static void pack_panel_quant_avx2(float *panel, const void *w, DType dt, long j0, long rows, long k) {
    float tile[MATMUL_BLOCK_ROWS * QUANT_TILE];
    size_t row_bytes = dtype_row_bytes(dt, k);
    const uint8_t *w0 = (const uint8_t *)w + (size_t)j0 * row_bytes;
    for (long t0 = 0; t0 < k; t0 += QUANT_TILE) {
        long kc = k - t0 < QUANT_TILE ? k - t0 : QUANT_TILE;
        size_t off = dtype_row_bytes(dt, t0);
        for (long r = 0; r < rows; r++) dequantize_row_avx2(dt, w0 + (size_t)r * row_bytes + off, tile + r * kc, kc);
        pack_panel_avx2(panel + t0 * MATMUL_BLOCK_ROWS, tile, DT_F32, 0, rows, kc);
    }
}
#endif

/* Rows [j0, j0 + rows) of W as a [k][16] f32 panel, zero-padded to 16
 * columns; row_tmp holds k floats. */
static void pack_panel(KernelLevel level, float *panel, float *row_tmp, const void *w, DType dt, long j0, long rows,
                       long k) {
#if defined(__x86_64__)
    if (level == KERNEL_AVX2) {
        if (dtype_is_quant(dt)) pack_panel_quant_avx2(panel, w, dt, j0, rows, k);
        else pack_panel_avx2(panel, w, dt, j0, rows, k);
        return;
    }
#endif
    size_t row_bytes = dtype_row_bytes(dt, k);
    for (long r = 0; r < MATMUL_BLOCK_ROWS; r++) {
        if (r >= rows) {
            for (long t = 0; t < k; t++) panel[t * MATMUL_BLOCK_ROWS + r] = 0;
            continue;
        }
        convert_to_f32(level, row_tmp, (const uint8_t *)w + (size_t)(j0 + r) * row_bytes, dt, k);
        for (long t = 0; t < k; t++) panel[t * MATMUL_BLOCK_ROWS + r] = row_tmp[t];
    }
}

size_t matmul_scratch_floats(int nth, long k) { return (size_t)nth * (MATMUL_BLOCK_ROWS + 1) * (size_t)k; }

typedef struct {
    KernelLevel level;
    float *y;
    const float *x;
    long n, m, k;
    const void *w;
    DType dt;
    float *scratch;
    const void *act; /* quantized weights, n == 1: x quantized for their dot products */
} MatmulJob;

/* Rows [j0, j1) of a quantized W against the quantized activation. */
static void quant_matvec_rows(KernelLevel level, float *y, const void *act, const void *w, DType dt, long j0, long j1,
                              long k) {
    size_t row_bytes = dtype_row_bytes(dt, k);
    const uint8_t *row = (const uint8_t *)w + (size_t)j0 * row_bytes;
#if defined(__x86_64__)
    if (level == KERNEL_AVX2) {
        quant_matvec_avx2(dt, y + j0, row, row_bytes, j1 - j0, act, k);
        return;
    }
#endif
    for (long j = j0; j < j1; j++, row += row_bytes) y[j] = quant_dot(dt, row, act, k);
}

/* Each worker takes a contiguous range of W rows, so every weight byte is
 * read by exactly one core. */
static void matmul_worker(void *ctx, int ith, int nth) {
    MatmulJob *J = ctx;
    long j0, j1;
    split_range(J->m, ith, nth, &j0, &j1);
    if (j0 >= j1) return;
    if (J->act) {
        quant_matvec_rows(J->level, J->y, J->act, J->w, J->dt, j0, j1, J->k);
        return;
    }
    if (J->n == 1) {
        matvec_rows(J->level, J->y, J->x, J->w, J->dt, j0, j1, J->k);
        return;
    }
    float *panel = J->scratch + (size_t)ith * (MATMUL_BLOCK_ROWS + 1) * (size_t)J->k;
    float *row_tmp = panel + (size_t)MATMUL_BLOCK_ROWS * (size_t)J->k;
    for (long jb = j0; jb < j1; jb += MATMUL_BLOCK_ROWS) {
        long rows = j1 - jb < MATMUL_BLOCK_ROWS ? j1 - jb : MATMUL_BLOCK_ROWS;
        pack_panel(J->level, panel, row_tmp, J->w, J->dt, jb, rows, J->k);
        gemm_panel(J->level, J->y + jb, J->m, J->x, J->n, J->k, panel, rows, 0);
    }
}

void matmul(ThreadPool *pool, KernelLevel level, float *y, const float *x, long n, const Tensor *w,
            float *scratch) {
    MatmulJob J = {level, y, x, n, w->shape[0], w->shape[1], w->data, w->dtype, scratch, NULL};
    /* Decoding with quantized weights: x is quantized once, here, and every
     * row's dot product runs on integers (the scratch is free when n == 1). */
    if (n == 1 && dtype_is_quant(w->dtype)) {
#if defined(__x86_64__)
        if (level == KERNEL_AVX2) quantize_act_avx2(w->dtype, x, scratch, J.k);
        else
#endif
            quantize_act(w->dtype, x, scratch, J.k);
        J.act = scratch;
    }
    pool_run(pool, matmul_worker, &J);
}

/* Quantized W: each row dequantized exactly, then the f32 reference. */
static void matmul_ref_quant(float *y, const float *x, long n, const Tensor *w) {
    long m = w->shape[0], k = w->shape[1];
    size_t row_bytes = dtype_row_bytes(w->dtype, k);
    float row[512];
    for (long j = 0; j < m; j++)
        for (long i = 0; i < n; i++) {
            double s = 0;
            for (long t0 = 0; t0 < k; t0 += 512) {
                long len = k - t0 < 512 ? k - t0 : 512;
                dequantize_row(w->dtype, (const uint8_t *)w->data + (size_t)j * row_bytes + dtype_row_bytes(w->dtype, t0), row, len);
                for (long t = 0; t < len; t++) s += (double)x[i * k + t0 + t] * row[t];
            }
            y[i * m + j] = (float)s;
        }
}

void matmul_ref(float *y, const float *x, long n, const Tensor *w) {
    long m = w->shape[0], k = w->shape[1];
    if (dtype_is_quant(w->dtype)) {
        matmul_ref_quant(y, x, n, w);
        return;
    }
    for (long i = 0; i < n; i++)
        for (long j = 0; j < m; j++) {
            double s = 0;
            for (long t = 0; t < k; t++) s += (double)x[i * k + t] * load_f32(w->data, w->dtype, j * k + t);
            y[i * m + j] = (float)s;
        }
}
