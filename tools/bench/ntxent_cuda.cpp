// ntxent_cuda: NT-Xent forward + backward on the GPU (info_nce's cuda build,
// Pairs::all) for 2N rows of width D, in each math mode, next to the cuBLAS
// rate for one product of the same shape (S = ZZᵀ, measured here) and, for
// the smaller batches, the CPU build on every core. Prints milliseconds per
// call (value read back included), effective TFLOP/s (three M×M×D products),
// the share of the cuBLAS rate, and the peak device memory the call used
// (chunk × M floats of similarities instead of M × M). Then MoCo's shape: 2N
// rows against a queue of K memory keys, with momentum keys.
//
//   build/bench/ntxent_cuda                   # 2N = 1024 .. 65536, D = 128, chunk 4096
//   build/bench/ntxent_cuda --dim 256 --chunk 8192
//
// Exit status: 0 when it ran, or when no GPU is usable (it says so: "no
// usable GPU: <reason>"); 2 for bad arguments.
#include "info_nce.hpp"
#include "info_nce_cuda.hpp"

#include <contra/cuda.hpp>
#include <contra/rng.hpp>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using Clock = std::chrono::steady_clock;
using contra::plugins::InfoNce;
using contra::plugins::InfoNceCuda;

namespace {

// Best time of f() (which ends synchronised) over `reps` runs after 2 warm-up runs.
template <class F> double best_seconds(F&& f, int reps) {
  f();
  f();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t).count());
  }
  return best;
}

contra::Tensor random_host(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
  contra::Tensor t = contra::Tensor::empty({rows, cols}, contra::DType::f32);
  contra::Rng rng(seed, 0, 0, 0, 0);
  for (std::int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] = static_cast<float>(rng.normal());
  return t;
}

contra::Tensor to_device(const contra::Tensor& host) {
  contra::Tensor d;
  contra::cuda::copy_to_device(d, host, contra::cuda::current_stream());
  contra::cuda::synchronize(contra::cuda::current_stream());
  return d;
}

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "%s failed: %s\n", what, cublasGetStatusString(s));
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::int64_t> rows{1024, 4096, 16384, 65536};
  std::int64_t dim = 128, chunk = 4096, queue = 65536, moco_rows = 512;
  for (int a = 1; a + 1 < argc; a += 2) {
    const std::string k = argv[a];
    const std::int64_t v = std::atoll(argv[a + 1]);
    if (k == "--dim") dim = v;
    else if (k == "--chunk") chunk = v;
    else if (k == "--queue") queue = v;
    else if (k == "--rows") rows = {v};
    else {
      std::fprintf(stderr, "unknown option %s (--dim, --chunk, --queue, --rows)\n", k.c_str());
      return 2;
    }
  }
  if (!contra::cuda::available()) {
    std::fprintf(stderr, "ntxent_cuda: no usable GPU: %s\n", contra::cuda::unavailable_reason().c_str());
    return 0;
  }
  contra::cuda::require("ntxent_cuda");
  contra::cuda::Stream stream;
  contra::cuda::set_current_stream(stream.get());
  std::printf("device: %s; D = %lld, T = 0.5, chunk %lld; CPU build on %d threads\n",
              contra::cuda::device_description().c_str(), static_cast<long long>(dim),
              static_cast<long long>(chunk), omp_get_max_threads());
  std::printf("%8s %-10s %10s %9s %12s %9s %12s %10s\n", "2N", "math", "ms/call", "TFLOP/s", "cuBLAS S/s", "share",
              "peak MiB", "CPU x");

  const contra::Params params = InfoNce::schema().bind(
      {{"temperature", 0.5}, {"chunk", chunk}, {"batch_negatives", std::string("auto")}});
  contra::Pairs all;
  all.all = true;
  for (const std::int64_t m : rows) {
    contra::Tensor host = random_host(m, dim, 7);
    std::vector<std::int64_t> sample;
    for (std::int64_t v = 0; v < 2; ++v)
      for (std::int64_t i = 0; i < m / 2; ++i) sample.push_back(i);
    sample.resize(static_cast<std::size_t>(m), 0);
    contra::Embeddings emb{to_device(host), &sample};
    contra::Embeddings cpu_emb{host, &sample};
    double cpu_ms = 0.0;
    if (m <= 4096) {
      InfoNce cpu(params);
      contra::LossResult r;
      cpu_ms = 1e3 * best_seconds([&] { cpu.compute(cpu_emb, all, r); }, 3);
    }
    for (auto mode : {contra::cuda::MathMode::strict_f32, contra::cuda::MathMode::tf32,
                      contra::cuda::MathMode::bf16}) {
      contra::cuda::set_math_mode(mode);
      InfoNceCuda loss(params);
      contra::LossResult r;
      loss.compute(emb, all, r);  // buffers grown before the peak is measured
      contra::cuda::reset_peak_memory();
      const std::size_t before = contra::cuda::memory_stats().in_use;
      const double s = best_seconds([&] { loss.compute(emb, all, r); }, 5);
      const double peak_mib = static_cast<double>(contra::cuda::memory_stats().peak_in_use - before) / (1 << 20);
      // One product of S's shape (M × M × D), alone, for the rate of this mode.
      cublasHandle_t h = static_cast<cublasHandle_t>(contra::cuda::cublas_handle());
      const std::int64_t b = std::min(chunk, m);
      contra::Tensor S = contra::Tensor::empty({b, m}, contra::DType::f32, contra::Device::cuda);
      const float one = 1.0f, zero = 0.0f;
      const cublasComputeType_t ct = mode == contra::cuda::MathMode::tf32   ? CUBLAS_COMPUTE_32F_FAST_TF32
                                     : mode == contra::cuda::MathMode::bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                                                            : CUBLAS_COMPUTE_32F;
      const float* z = emb.z.data<float>();
      const double gemm_s = best_seconds(
          [&] {
            for (std::int64_t r0 = 0; r0 < m; r0 += b)
              check(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m), static_cast<int>(std::min(b, m - r0)),
                                 static_cast<int>(dim), &one, z, CUDA_R_32F, static_cast<int>(dim), z + r0 * dim,
                                 CUDA_R_32F, static_cast<int>(dim), &zero, S.data<float>(), CUDA_R_32F,
                                 static_cast<int>(m), ct, CUBLAS_GEMM_DEFAULT),
                    "cublasGemmEx");
            contra::cuda::synchronize(stream.get());
          },
          5);
      const double flops = 2.0 * static_cast<double>(m) * m * dim;
      std::printf("%8lld %-10s %10.3f %9.2f %12.2f %8.0f%% %12.1f", static_cast<long long>(m),
                  contra::cuda::math_mode_name(mode), 1e3 * s, 3 * flops / s / 1e12, flops / gemm_s / 1e12,
                  100.0 * (3 * flops / s) / (flops / gemm_s), peak_mib);
      if (cpu_ms > 0 && mode == contra::cuda::MathMode::strict_f32) std::printf(" %10.1f", cpu_ms / (1e3 * s));
      std::printf("\n");
    }
  }

  // MoCo: 2N rows (two views), their momentum keys, and a queue of K keys.
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  contra::Tensor host = random_host(moco_rows, dim, 11);
  std::vector<std::int64_t> sample, ids, key_ids;
  for (std::int64_t v = 0; v < 2; ++v)
    for (std::int64_t i = 0; i < moco_rows / 2; ++i) sample.push_back(i);
  for (std::int64_t s : sample) ids.push_back(s);
  for (std::int64_t k = 0; k < queue; ++k) key_ids.push_back(1000000 + k);
  contra::MemoryView memory{to_device(random_host(queue, dim, 12)), &key_ids};
  contra::Embeddings emb{to_device(host), &sample};
  emb.ids = &ids;
  emb.keys = to_device(random_host(moco_rows, dim, 13));
  emb.memory = &memory;
  InfoNceCuda loss(params);
  contra::LossResult r;
  const double s = best_seconds([&] { loss.compute(emb, all, r); }, 5);
  const double flops = 2.0 * 2.0 * static_cast<double>(moco_rows) * (moco_rows + queue) * dim;
  std::printf("MoCo: 2N = %lld with momentum keys, queue K = %lld: %.3f ms/call, %.2f TFLOP/s (two products)\n",
              static_cast<long long>(moco_rows), static_cast<long long>(queue), 1e3 * s, flops / s / 1e12);
  contra::cuda::set_current_stream(nullptr);
  return 0;
}
