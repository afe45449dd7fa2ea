#pragma once
/// \file
/// Dense matrix products on the CPU (oneDNN's sgemm), row-major. Runs on the
/// calling thread's OpenMP team, whose size the runtime sets for the train
/// stage (`[runtime] compute_threads`).

#include <cstdint>

namespace contra {

/// C = alpha * op(A) · op(B) + beta * C, with op(X) = X or Xᵀ; op(A) is m×k,
/// op(B) is k×n, C is m×n; lda/ldb/ldc are row strides in elements.
void sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
           float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
           float beta, float* c, std::int64_t ldc);

}  // namespace contra
