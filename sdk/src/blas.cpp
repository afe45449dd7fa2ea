#include <contra/blas.hpp>
#include <contra/errors.hpp>

#include <oneapi/dnnl/dnnl.h>

#include <string>

namespace contra {

void sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
           const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
           std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b,
                                ldb, beta, c, ldc);
  if (st != dnnl_success)
    throw UsageError("sgemm(" + std::to_string(m) + "x" + std::to_string(n) + "x" +
                     std::to_string(k) + ") failed in oneDNN with status " + std::to_string(st));
}

}  // namespace contra
