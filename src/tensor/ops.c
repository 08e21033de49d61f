#include "tensor/ops.h"

#include <math.h>

void rmsnorm(float *out, const float *x, const float *w, long n, float eps) {
    float ss = 0;
    for (long i = 0; i < n; i++) ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (long i = 0; i < n; i++) out[i] = w[i] * (x[i] * inv);
}

void softmax(float *x, long n) {
    float mx = x[0];
    for (long i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    float sum = 0;
    for (long i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (long i = 0; i < n; i++) x[i] *= inv;
}

void swiglu(float *gate, const float *up, long n) {
    for (long i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void rope_rotate_half(float *x, int n_heads, int d, const float *cos, const float *sin) {
    int half = d / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (long)h * d;
        for (int i = 0; i < half; i++) {
            float a = v[i], b = v[i + half];
            v[i] = a * cos[i] - b * sin[i];
            v[i + half] = b * cos[i] + a * sin[i];
        }
    }
}

float dot_f32(const float *a, const float *b, long n) {
    /* Eight partial sums let the compiler vectorise without -ffast-math. */
    float s[8] = {0};
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float t = 0;
    for (; i < n; i++) t += a[i] * b[i];
    return t + ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

void axpy_f32(float *y, float a, const float *x, long n) {
    for (long i = 0; i < n; i++) y[i] += a * x[i];
}

void layernorm(float *out, const float *x, const float *w, const float *b, long n, float eps) {
    float mean = 0;
    for (long i = 0; i < n; i++) mean += x[i];
    mean /= (float)n;
    float var = 0;
    for (long i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    float inv = 1.0f / sqrtf(var / (float)n + eps);
    for (long i = 0; i < n; i++) out[i] = (x[i] - mean) * inv * w[i] + b[i];
}

void gelu_erf(float *x, long n) {
    for (long i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void quick_gelu(float *x, long n) {
    for (long i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

void gelu_tanh(float *x, long n) {
    for (long i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
}

void add_bias(float *x, const float *b, long rows, long n) {
    for (long r = 0; r < rows; r++)
        for (long i = 0; i < n; i++) x[r * n + i] += b[i];
}
