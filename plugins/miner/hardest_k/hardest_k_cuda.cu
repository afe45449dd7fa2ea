#include "hardest_k_cuda.hpp"

#include "../../loss/loss_cuda.cuh"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace contra::plugins {

namespace {

constexpr const char* who = "hardest_k (cuda)";
constexpr int select_threads = 256;

// The bits of f in an order that unsigned comparison keeps: NaN as −inf (as
// the CPU build), −0 as +0 (equal on the CPU, so the key index decides).
__device__ inline std::uint32_t ordered_bits(float f) {
  if (isnan(f)) f = -INFINITY;
  if (f == 0.0f) f = 0.0f;
  const std::uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Key j's rank key for one anchor: larger is harder (more similar, then a
// lower index); 0 when j is no candidate (an empty slot, id −1, or the
// anchor's own sample). A candidate's key is never 0: −inf's bits are not.
__device__ inline std::uint64_t rank_key(const float* s, const std::int64_t* key_id, std::int64_t own,
                                         std::int64_t j) {
  const std::int64_t id = key_id[j];
  if (id == -1 || id == own) return 0;
  return (static_cast<std::uint64_t>(ordered_bits(s[j])) << 32) | (0xFFFFFFFFu - static_cast<std::uint32_t>(j));
}

// One block per anchor row a = a0 + blockIdx.x, its similarities in
// sim[blockIdx.x, :K]. The want = min(k, candidates) largest rank keys are
// those ≥ the want-th largest, T, found digit by digit (8 bits at a time,
// most significant first: count the keys under the prefix per next digit,
// take the digit where the count from the top reaches what is still needed).
// Rank keys are distinct (the index is part of them), so exactly `want` keys
// are ≥ T. They go, in no order, to chosen[blockIdx.x, 0 .. want), want to
// count[blockIdx.x].
__global__ void __launch_bounds__(select_threads)
    hardest_k_kernel(const float* __restrict__ sim, std::int64_t a0, std::int64_t K,
                     const std::int64_t* __restrict__ key_id, const std::int64_t* __restrict__ row_id, std::int64_t k,
                     std::int64_t stride, std::uint64_t* __restrict__ chosen, std::int32_t* __restrict__ count) {
  __shared__ unsigned int hist[256];
  __shared__ unsigned long long total;
  __shared__ std::uint64_t prefix_s;
  __shared__ unsigned long long need_s;
  __shared__ unsigned int taken;
  const std::int64_t r = blockIdx.x;
  const float* s = sim + r * K;
  const std::int64_t own = row_id ? row_id[a0 + r] : -2;  // −2 matches no key

  if (threadIdx.x == 0) total = 0, taken = 0;
  __syncthreads();
  unsigned long long mine = 0;
  for (std::int64_t j = threadIdx.x; j < K; j += blockDim.x) mine += rank_key(s, key_id, own, j) != 0;
  atomicAdd(&total, mine);
  __syncthreads();
  const unsigned long long want = total < static_cast<unsigned long long>(k) ? total : k;
  if (want == 0) {
    if (threadIdx.x == 0) count[r] = 0;
    return;  // uniform across the block: `total` is shared
  }

  std::uint64_t prefix = 0, mask = 0;
  unsigned long long need = want;
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
    __syncthreads();
    for (std::int64_t j = threadIdx.x; j < K; j += blockDim.x) {
      const std::uint64_t key = rank_key(s, key_id, own, j);
      if (key != 0 && (key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 0xFFu], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      // The keys under the prefix number at least `need`: a digit is found.
      unsigned long long above = 0;
      int digit = 255;
      for (; digit > 0; --digit) {
        if (above + hist[digit] >= need) break;
        above += hist[digit];
      }
      need_s = need - above;
      prefix_s = prefix | (static_cast<std::uint64_t>(digit) << shift);
    }
    __syncthreads();
    prefix = prefix_s;
    need = need_s;
    mask |= static_cast<std::uint64_t>(0xFFu) << shift;
    __syncthreads();  // every thread has read prefix_s before it is written again
  }

  const std::uint64_t threshold = prefix;
  for (std::int64_t j = threadIdx.x; j < K; j += blockDim.x) {
    const std::uint64_t key = rank_key(s, key_id, own, j);
    if (key != 0 && key >= threshold) chosen[r * stride + atomicAdd(&taken, 1u)] = key;
  }
  if (threadIdx.x == 0) count[r] = static_cast<std::int32_t>(want);
}

}  // namespace

struct HardestKCudaState {
  contra::Tensor normalized, sim, key_ids, row_ids, chosen, count, keys_copy;
  gpu::PinnedBuffer key_ids_staging, row_ids_staging, keys_staging, chosen_host, count_host;
  std::vector<std::uint64_t> row;  // one anchor's choices, being ordered
};

HardestKCuda::HardestKCuda(const contra::Params& p)
    : k_(p.get<std::int64_t>("k")),
      chunk_(p.get<std::int64_t>("chunk")),
      state_(std::make_unique<HardestKCudaState>()) {}

HardestKCuda::~HardestKCuda() = default;

void HardestKCuda::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const contra::MemoryView& mem = hardest_k_inputs(e, contra::Device::cuda);
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1), kk = mem.size();
  add_view_positives(*e.sample, out);
  if (m == 0) return;
  HardestKCudaState& st = *state_;
  const cudaStream_t s = gpu::stream();

  float* x = gpu::device_buffer<float>(st.normalized, m * d);
  gpu::normalize_rows(who, e.z.data<float>(), m, d, x, nullptr, s);
  const float* keys = gpu::device_matrix(who, mem.keys, st.keys_copy, st.keys_staging, s);
  const std::int64_t* key_id = gpu::upload(who, st.key_ids, st.key_ids_staging, mem.ids->data(), kk, s);
  const std::int64_t* row_id = e.ids ? gpu::upload(who, st.row_ids, st.row_ids_staging, e.ids->data(), m, s) : nullptr;

  const std::int64_t rows = std::min(chunk_, m);
  const std::int64_t stride = std::min(k_, kk);  // at most this many choices per anchor
  float* S = gpu::device_buffer<float>(st.sim, rows * kk);
  auto* chosen = gpu::device_buffer<std::uint64_t>(st.chosen, rows * stride);
  std::int32_t* count = gpu::device_buffer<std::int32_t>(st.count, rows);
  cublasHandle_t h = gpu::blas(who, s);
  for (std::int64_t a0 = 0; a0 < m; a0 += rows) {
    const std::int64_t b = std::min(rows, m - a0);
    gpu::gemm(who, h, false, true, b, kk, d, 1.0f, x + a0 * d, d, keys, d, 0.0f, S, kk, gpu::selection_compute_type);
    hardest_k_kernel<<<static_cast<unsigned>(b), select_threads, 0, s>>>(S, a0, kk, key_id, row_id, k_, stride,
                                                                         chosen, count);
    CONTRA_CUDA_LAUNCHED(who, hardest_k_kernel);
    const std::size_t chosen_bytes = sizeof(std::uint64_t) * static_cast<std::size_t>(b * stride);
    auto* chosen_h = static_cast<std::uint64_t*>(st.chosen_host.ensure(who, chosen_bytes));
    auto* count_h = static_cast<std::int32_t*>(st.count_host.ensure(who, sizeof(std::int32_t) * b));
    CONTRA_CUDA_CHECK(who, cudaMemcpyAsync(chosen_h, chosen, chosen_bytes, cudaMemcpyDeviceToHost, s));
    CONTRA_CUDA_CHECK(who, cudaMemcpyAsync(count_h, count, sizeof(std::int32_t) * b, cudaMemcpyDeviceToHost, s));
    CONTRA_CUDA_CHECK(who, cudaStreamSynchronize(s));
    for (std::int64_t r = 0; r < b; ++r) {
      st.row.assign(chosen_h + r * stride, chosen_h + r * stride + count_h[r]);
      std::sort(st.row.begin(), st.row.end(), std::greater<>());  // hardest first
      const auto a = static_cast<std::int32_t>(a0 + r);
      for (std::uint64_t key : st.row)
        out.memory_negative.emplace_back(a, static_cast<std::int32_t>(0xFFFFFFFFu - static_cast<std::uint32_t>(key)));
    }
  }
}

}  // namespace contra::plugins
