/* The element-wise and row-wise pieces of a transformer layer, on f32. */
#ifndef VMED_TENSOR_OPS_H
#define VMED_TENSOR_OPS_H

/* out = x / sqrt(mean(x^2) + eps) * w, over one row of n. out may be x. */
void rmsnorm(float *out, const float *x, const float *w, long n, float eps);

/* In-place softmax over n values, computed in f32 with the max subtracted. */
void softmax(float *x, long n);

/* gate[i] = silu(gate[i]) * up[i]: LLaMA's SwiGLU. */
void swiglu(float *gate, const float *up, long n);

/* Rotary embedding in HF's "rotate_half" layout: element i of a head pairs
 * with element i + d/2. cos/sin hold d/2 values for this position.
 * x holds n_heads heads of d contiguous floats. */
void rope_rotate_half(float *x, int n_heads, int d, const float *cos, const float *sin);

/* dot(a, b) over n, vectorised by the compiler. */
float dot_f32(const float *a, const float *b, long n);
/* y += a * x over n. */
void axpy_f32(float *y, float a, const float *x, long n);

#endif
