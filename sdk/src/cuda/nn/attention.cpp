// MultiHeadSelfAttention on the GPU: the projections are this library's
// Linear; the heads are rearranged into [B·H, L, dh] tensors by a kernel, so
// that Q·Kᵀ, P·V and their backward products are strided-batched cuBLAS
// calls over (sample, head); the masked softmax and its backward are kernels
// (transformer_kernels.cu). Everything is queued on the current stream.
#include <contra/cuda/nn.hpp>

#include "nn_util.hpp"
#include "transformer_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace contra::cuda::nn {

using namespace detail;

namespace {

// How messages name the layer (the CPU layer's words).
std::string label(const std::string& name) { return "MultiHeadSelfAttention '" + name + "'"; }

const float* f32(const Tensor& t) { return static_cast<const float*>(t.raw()); }
float* f32(Tensor& t) { return static_cast<float*>(t.raw()); }

// The compute type of a product, as Linear chooses it: the layer's bf16
// precision, else the math mode of the call.
cublasComputeType_t compute_type(Precision p) {
  if (p == Precision::bf16) return CUBLAS_COMPUTE_32F_FAST_16BF;
  switch (contra::cuda::math_mode()) {
    case contra::cuda::MathMode::tf32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case contra::cuda::MathMode::bf16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    default: return CUBLAS_COMPUTE_32F;
  }
}

// For each of `batch` matrices (the i-th operands at a + i·stride_a, ...):
// row-major C[m×n] = alpha · op(A) · op(B) + beta · C, lda, ldb, ldc the row
// strides. cuBLAS is column-major: the row-major C is the column-major
// Cᵀ = op(B)ᵀ · op(A)ᵀ, so the operands swap (as Linear's gemm).
void gemm_batched(const std::string& who, cublasHandle_t h, cublasComputeType_t compute, bool trans_a, bool trans_b,
                  std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a, std::int64_t lda,
                  std::int64_t stride_a, const float* b, std::int64_t ldb, std::int64_t stride_b, float beta,
                  float* c, std::int64_t ldc, std::int64_t stride_c, std::int64_t batch) {
  NN_CUBLAS(who, cublasGemmStridedBatchedEx(
                     h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(who, n, "n"),
                     as_int(who, m, "m"), as_int(who, k, "k"), &alpha, b, CUDA_R_32F, as_int(who, ldb, "ldb"),
                     static_cast<long long>(stride_b), a, CUDA_R_32F, as_int(who, lda, "lda"),
                     static_cast<long long>(stride_a), &beta, c, CUDA_R_32F, as_int(who, ldc, "ldc"),
                     static_cast<long long>(stride_c), as_int(who, batch, "batch"), compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

struct MultiHeadSelfAttention::Impl {
  std::string name, who;  // who: how DeviceErrors name the layer
  std::int64_t width = 0, heads = 0;
  bool causal = false;
  Precision precision = Precision::f32;
  Linear in_proj, out_proj;

  // What set_sequences() gave: the length, the valid lengths on the host
  // (empty: every position is real) and their device copy.
  std::int64_t length = 0;
  std::vector<std::int32_t> valid;
  Tensor valid_dev;

  // The last forward: its shape, its valid lengths on the device (shares
  // valid_dev's storage; a later set_sequences() uploads into a new tensor,
  // so a backward still sees the forward's), whether it ran in train mode.
  std::int64_t batch = 0, last_length = 0;
  Tensor last_valid;
  bool trained = false;

  // Per (sample, head) [B·H, L, dh]: Q, K, V (kept for backward), the
  // attention output O (reused for dL/dO in backward), the gradients; the
  // probabilities P [B·H, L, L] (kept) and their gradient.
  Tensor q, k, v, o, dq, dk, dv, probs, dprobs;
  Tensor out, dqkv;  // [B·L, width], [B·L, 3·width]

  Impl(std::string n, std::int64_t w, std::int64_t h, Rng& init, Precision p, bool c)
      : name(std::move(n)),
        who(label(name) + " (cuda)"),
        width(w),
        heads(h),
        causal(c),
        precision(p),
        in_proj(name + ".in_proj", w, 3 * w, true, init, p),
        out_proj(name + ".out_proj", w, w, true, init, p) {}

  std::int64_t head_dim() const { return width / heads; }
  AttentionShape shape() const {
    return {batch, last_length, heads, head_dim(),
            last_valid.defined() ? static_cast<const std::int32_t*>(last_valid.raw()) : nullptr};
  }
};

MultiHeadSelfAttention::MultiHeadSelfAttention(std::string name, std::int64_t width, std::int64_t heads, Rng& init,
                                               Precision precision, bool causal) {
  if (width < 1 || heads < 1 || width % heads != 0)
    throw UsageError(label(name) + ": width must be a positive multiple of heads, got width " + std::to_string(width) +
                     " and " + std::to_string(heads) + " heads");
  contra::cuda::require("MultiHeadSelfAttention (cuda)");
  impl_ = std::make_unique<Impl>(std::move(name), width, heads, init, precision, causal);
  Impl& m = *impl_;
  // As the CPU layer (PyTorch's nn.MultiheadAttention._reset_parameters):
  // both Linears draw their default initialisation first, then in_proj's
  // weight is redrawn Xavier-uniform (fan_in width, fan_out 3·width) from the
  // same Rng, on the host, and both biases are zeroed.
  Tensor w = Tensor::empty({3 * width, width}, DType::f32);
  contra::nn::fill_uniform(w, std::sqrt(6.0 / static_cast<double>(4 * width)), init);
  contra::cuda::copy_to_device(m.in_proj.weight().value, w, contra::cuda::current_stream());
  m.in_proj.bias()->value.zero();
  m.out_proj.bias()->value.zero();
}

MultiHeadSelfAttention::~MultiHeadSelfAttention() = default;

std::int64_t MultiHeadSelfAttention::width() const noexcept { return impl_->width; }
std::int64_t MultiHeadSelfAttention::heads() const noexcept { return impl_->heads; }
bool MultiHeadSelfAttention::causal() const noexcept { return impl_->causal; }

void MultiHeadSelfAttention::parameters(std::vector<Parameter*>& out) {
  impl_->in_proj.parameters(out);
  impl_->out_proj.parameters(out);
}

void MultiHeadSelfAttention::set_sequences(std::int64_t length, std::span<const std::int32_t> valid) {
  Impl& m = *impl_;
  if (length < 1) throw UsageError(label(m.name) + ": sequence length must be >= 1, got " + std::to_string(length));
  for (std::size_t b = 0; b < valid.size(); ++b)
    if (valid[b] < 1 || valid[b] > length)
      throw UsageError(label(m.name) + ": sample " + std::to_string(b) + " has " + std::to_string(valid[b]) +
                       " valid positions, outside [1, " + std::to_string(length) + "]");
  m.length = length;
  if (valid.empty()) {
    m.valid.clear();
    m.valid_dev = Tensor();
    return;
  }
  // The same lengths as the device copy holds: nothing to upload.
  if (m.valid_dev.defined() && m.valid.size() == valid.size() &&
      std::equal(valid.begin(), valid.end(), m.valid.begin()))
    return;
  m.valid.assign(valid.begin(), valid.end());
  Tensor host = Tensor::empty({static_cast<std::int64_t>(valid.size())}, DType::i32);
  std::copy(valid.begin(), valid.end(), host.data<std::int32_t>());
  // A new device tensor (not the old one's storage): the last forward's
  // backward may still read the old lengths.
  m.valid_dev = upload(host);
}

const Tensor& MultiHeadSelfAttention::forward(const Tensor& x, Mode mode) {
  Impl& m = *impl_;
  if (m.length == 0) throw UsageError(label(m.name) + ": forward() called before set_sequences()");
  const std::int64_t rows = x.rank() == 2 ? x.dim(0) : 0;
  if (x.dtype() != DType::f32 || x.device() != Device::cuda || x.rank() != 2 || x.dim(1) != m.width || rows == 0 ||
      rows % m.length != 0)
    throw UsageError(label(m.name) + ": expected an f32 cuda tensor [B·L, " + std::to_string(m.width) +
                     "] with L = " + std::to_string(m.length) + ", got " + dtype_name(x.dtype()) + " " +
                     device_name(x.device()) + " " + x.shape().str());
  const std::int64_t batch = rows / m.length;
  if (!m.valid.empty() && static_cast<std::int64_t>(m.valid.size()) != batch)
    throw UsageError(label(m.name) + ": set_sequences() gave valid lengths of " + std::to_string(m.valid.size()) +
                     " samples, but the input " + x.shape().str() + " holds " + std::to_string(batch) +
                     " sequences of " + std::to_string(m.length));
  m.trained = false;
  m.batch = batch;
  m.last_length = m.length;
  m.last_valid = m.valid_dev;

  const std::int64_t l = m.length, h = m.heads, dh = m.head_dim(), bh = batch * h;
  const Tensor& qkv = m.in_proj.forward(x, mode);
  for (Tensor* t : {&m.q, &m.k, &m.v, &m.o}) t->ensure({bh, l, dh}, DType::f32, Device::cuda);
  m.probs.ensure({bh, l, l}, DType::f32, Device::cuda);
  m.out.ensure({rows, m.width}, DType::f32, Device::cuda);
  const AttentionShape g = m.shape();
  cudaStream_t s = stream();
  // Q, K, V per (sample, head); padded positions' rows become 0, so that
  // nothing of theirs reaches a real row (the CPU layer never reads them).
  launch_split_heads(g, 3, f32(qkv), f32(m.q), f32(m.k), f32(m.v), s);
  cublasHandle_t handle = blas(m.who);
  const cublasComputeType_t ct = compute_type(m.precision);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  // S = Q·Kᵀ / sqrt(dh), then P = the masked softmax of S, in place.
  gemm_batched(m.who, handle, ct, false, true, l, l, dh, scale, f32(m.q), dh, l * dh, f32(m.k), dh, l * dh, 0.0f,
               f32(m.probs), l, l * l, bh);
  launch_masked_softmax(g, m.causal, f32(m.probs), s);
  // O = P·V (padded queries' rows of P are 0, and so are theirs of O).
  gemm_batched(m.who, handle, ct, false, false, l, dh, l, 1.0f, f32(m.probs), l, l * l, f32(m.v), dh, l * dh, 0.0f,
               f32(m.o), dh, l * dh, bh);
  launch_merge_heads(g, 1, f32(m.o), nullptr, nullptr, f32(m.out), s);
  const Tensor& y = m.out_proj.forward(m.out, mode);
  m.trained = mode == Mode::train;
  return y;
}

const Tensor& MultiHeadSelfAttention::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (!m.trained) throw UsageError(label(m.name) + ": backward() without a train-mode forward()");
  const Shape want{m.batch * m.last_length, m.width};
  if (dy.shape() != want || dy.dtype() != DType::f32)
    dy.expect(want, DType::f32, (label(m.name) + " backward dy").c_str());
  expect_device_f32(m.who, dy, "the gradient");
  const Tensor& dout = m.out_proj.backward(dy, true);

  const std::int64_t l = m.last_length, dh = m.head_dim(), bh = m.batch * m.heads;
  const AttentionShape g = m.shape();
  cudaStream_t s = stream();
  for (Tensor* t : {&m.dq, &m.dk, &m.dv}) t->ensure({bh, l, dh}, DType::f32, Device::cuda);
  m.dprobs.ensure({bh, l, l}, DType::f32, Device::cuda);
  m.dqkv.ensure({m.batch * l, 3 * m.width}, DType::f32, Device::cuda);
  // dL/dO per (sample, head), into O's buffer (O itself is not needed again;
  // out_proj has already used `out`); padded queries' rows become 0.
  Tensor& d_o = m.o;
  launch_split_heads(g, 1, f32(dout), f32(d_o), nullptr, nullptr, s);
  cublasHandle_t handle = blas(m.who);
  const cublasComputeType_t ct = compute_type(m.precision);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  // dP = dO·Vᵀ; dV = Pᵀ·dO.
  gemm_batched(m.who, handle, ct, false, true, l, l, dh, 1.0f, f32(d_o), dh, l * dh, f32(m.v), dh, l * dh, 0.0f,
               f32(m.dprobs), l, l * l, bh);
  gemm_batched(m.who, handle, ct, true, false, l, dh, l, 1.0f, f32(m.probs), l, l * l, f32(d_o), dh, l * dh, 0.0f,
               f32(m.dv), dh, l * dh, bh);
  // dS = P ⊙ (dP − rowsum(P ⊙ dP)), in place; 0 where hidden or padded.
  launch_masked_softmax_backward(g, f32(m.probs), f32(m.dprobs), s);
  // dQ = dS·K / sqrt(dh); dK = dSᵀ·Q / sqrt(dh).
  gemm_batched(m.who, handle, ct, false, false, l, dh, l, scale, f32(m.dprobs), l, l * l, f32(m.k), dh, l * dh, 0.0f,
               f32(m.dq), dh, l * dh, bh);
  gemm_batched(m.who, handle, ct, true, false, l, dh, l, scale, f32(m.dprobs), l, l * l, f32(m.q), dh, l * dh, 0.0f,
               f32(m.dk), dh, l * dh, bh);
  // Back into the fused projection's rows; padded positions' rows are 0.
  launch_merge_heads(g, 3, f32(m.dq), f32(m.dk), f32(m.dv), f32(m.dqkv), s);
  return m.in_proj.backward(m.dqkv, want_input_grad);
}

}  // namespace contra::cuda::nn
