#include <contra/l2_normalize.hpp>

#include <algorithm>
#include <cmath>

// Built for a baseline without AVX2 (plain x86-64), the row pass is compiled
// for AVX-512, AVX2+FMA and the baseline, and the loader picks the best this
// CPU runs (GCC function multi-versioning). Built for AVX2 or better already
// (e.g. -march=native), it is compiled once, for that.
// Not under ThreadSanitizer: the clones' resolver runs while the dynamic
// linker relocates, before the sanitizer's runtime is there to call.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__) && \
    !defined(__SANITIZE_THREAD__)
#define CONTRA_L2_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CONTRA_L2_CLONES
#endif

namespace contra {

namespace {

// Rows per task of the parallel loops, and the size below which one thread does all.
constexpr std::int64_t rows_per_task = 64;
constexpr std::int64_t min_parallel_floats = 65536;

CONTRA_L2_CLONES void normalize_block(const float* z, std::int64_t rows, std::int64_t d, float* zhat,
                                      float* norms) {
  for (std::int64_t i = 0; i < rows; ++i) {
    const float* zi = z + i * d;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (std::int64_t k = 0; k < d; ++k) ss += zi[k] * zi[k];
    const float n = std::sqrt(ss);
    if (norms) norms[i] = n;
    const float inv = 1.0f / std::max(n, l2_norm_eps);
    float* hi = zhat + i * d;
#pragma omp simd
    for (std::int64_t k = 0; k < d; ++k) hi[k] = zi[k] * inv;
  }
}

inline float dot(const float* a, const float* b, std::int64_t d) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (std::int64_t k = 0; k < d; ++k) s += a[k] * b[k];
  return s;
}

}  // namespace

void l2_normalize_rows(const float* z, std::int64_t rows, std::int64_t d, float* zhat, float* norms) {
  const std::int64_t tasks = (rows + rows_per_task - 1) / rows_per_task;
#pragma omp parallel for schedule(static) if (rows * d > min_parallel_floats)
  for (std::int64_t t = 0; t < tasks; ++t) {
    const std::int64_t r0 = t * rows_per_task, r1 = std::min(rows, r0 + rows_per_task);
    normalize_block(z + r0 * d, r1 - r0, d, zhat + r0 * d, norms ? norms + r0 : nullptr);
  }
}

void l2_normalize_rows_backward(const float* zhat, const float* norms, const float* grad_zhat, float scale,
                                std::int64_t rows, std::int64_t d, float* grad_z) {
#pragma omp parallel for schedule(static) if (rows * d > min_parallel_floats)
  for (std::int64_t i = 0; i < rows; ++i) {
    const float* hi = zhat + i * d;
    const float* gi = grad_zhat + i * d;
    float* oi = grad_z + i * d;
    if (norms[i] < l2_norm_eps) {
      for (std::int64_t k = 0; k < d; ++k) oi[k] = gi[k] * scale / l2_norm_eps;
      continue;
    }
    const float g_along = dot(hi, gi, d);
    const float inv = scale / norms[i];
#pragma omp simd
    for (std::int64_t k = 0; k < d; ++k) oi[k] = (gi[k] - hi[k] * g_along) * inv;
  }
}

}  // namespace contra
