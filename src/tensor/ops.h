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



/* out = (x - mean) / sqrt(var + eps) * w + b over one row (biased variance,
 * as torch.nn.LayerNorm). out may be x. */
void layernorm(float *out, const float *x, const float *w, const float *b, long n, float eps);
/* Exact GELU: 0.5 x (1 + erf(x / sqrt 2)) (BERT, GIT's text layers). */
void gelu_erf(float *x, long n);
/* x * sigmoid(1.702 x) (CLIP's quick_gelu). */
void quick_gelu(float *x, long n);
/* tanh approximation, HF's gelu_new (T5, Pix2Struct). */
void gelu_tanh(float *x, long n);
/* rows x n matrix: each row += b. */
void add_bias(float *x, const float *b, long rows, long n);

#endif
