#include <contra/cuda/nn.hpp>

#include "nn_util.hpp"

#include <cmath>
#include <utility>

namespace contra::cuda::nn {

using namespace detail;

namespace {

// Row-major C[m×n] = alpha · op(A) · op(B) + beta · C (lda, ldb, ldc: row
// strides). cuBLAS is column-major: the row-major C is the column-major
// Cᵀ = op(B)ᵀ · op(A)ᵀ, so the operands swap.
void gemm(const std::string& who, cublasHandle_t h, cublasComputeType_t compute, bool trans_a, bool trans_b,
          std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const void* a, std::int64_t lda, const void* b,
          std::int64_t ldb, float beta, void* c, std::int64_t ldc) {
  NN_CUBLAS(who, cublasGemmEx(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                              as_int(who, n, "n"), as_int(who, m, "m"), as_int(who, k, "k"), &alpha, b, CUDA_R_32F,
                              as_int(who, ldb, "ldb"), a, CUDA_R_32F, as_int(who, lda, "lda"), &beta, c, CUDA_R_32F,
                              as_int(who, ldc, "ldc"), compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

struct Linear::Impl {
  std::string who;
  TensorDesc y4, b4;       // y as [N, out, 1, 1], the bias as [1, out, 1, 1]: cuDNN's bias add and sum
  std::int64_t desc_n = 0;  // N that y4 describes
  bool trained = false;
  Shape train_out;
  Tensor x, y, dx, none;
  explicit Impl(std::string name) : who(std::move(name)), y4(who), b4(who) {}

  cublasComputeType_t compute(Precision p) const {
    if (p == Precision::bf16) return CUBLAS_COMPUTE_32F_FAST_16BF;
    switch (contra::cuda::math_mode()) {
      case contra::cuda::MathMode::tf32: return CUBLAS_COMPUTE_32F_FAST_TF32;
      case contra::cuda::MathMode::bf16: return CUBLAS_COMPUTE_32F_FAST_16BF;
      default: return CUBLAS_COMPUTE_32F;
    }
  }
  void describe(std::int64_t n, std::int64_t out) {
    if (n == desc_n) return;
    y4.set(who, CUDNN_TENSOR_NCHW, n, out, 1, 1);
    desc_n = n;
  }
};

Linear::Linear(std::string name, std::int64_t in_features, std::int64_t out_features, bool bias, Rng& init,
               Precision precision)
    : name_(std::move(name)), in_(in_features), out_(out_features), has_bias_(bias), precision_(precision) {
  if (in_ <= 0 || out_ <= 0)
    throw UsageError("linear '" + name_ + "': in_features and out_features must be positive (got " +
                     std::to_string(in_) + ", " + std::to_string(out_) + ")");
  contra::cuda::require("linear (cuda)");
  impl_ = std::make_unique<Impl>("linear '" + name_ + "' (cuda)");
  // Drawn on the host exactly as the CPU layer draws them, then copied.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
  Tensor w = Tensor::empty({out_, in_}, DType::f32);
  contra::nn::fill_uniform(w, bound, init);
  weight_.name = name_ + ".weight";
  weight_.value = upload(w);
  weight_.grad = Tensor::zeros({out_, in_}, DType::f32, Device::cuda);
  if (has_bias_) {
    Tensor b = Tensor::empty({out_}, DType::f32);
    contra::nn::fill_uniform(b, bound, init);
    bias_.name = name_ + ".bias";
    bias_.value = upload(b);
    bias_.grad = Tensor::zeros({out_}, DType::f32, Device::cuda);
    bias_.decay = false;
  }
  impl_->b4.set(impl_->who, CUDNN_TENSOR_NCHW, 1, out_, 1, 1);
}

Linear::~Linear() = default;

void Linear::parameters(std::vector<Parameter*>& out) {
  out.push_back(&weight_);
  if (has_bias_) out.push_back(&bias_);
}

const Tensor& Linear::forward(const Tensor& x, Mode mode) {
  const std::string who = "linear '" + name_ + "': ";
  const std::string want = "[N, " + std::to_string(in_) + "]";
  const Shape& s = x.shape();
  if (s.rank() != 2) throw UsageError(who + "expected an input " + want + " of rank 2, got shape " + s.str());
  if (s[1] != in_)
    throw UsageError(who + "expected " + std::to_string(in_) + " input features (" + want + "), got shape " +
                     s.str());
  if (s[0] <= 0) throw UsageError(who + "empty batch (input shape " + s.str() + ")");
  Impl& m = *impl_;
  expect_device_f32(m.who, x, "the input");
  const std::int64_t n = s[0];
  m.y.ensure({n, out_}, DType::f32, Device::cuda);
  // y = x · Wᵀ (+ b): x [n×in], W [out×in].
  gemm(m.who, blas(m.who), m.compute(precision_), false, true, n, out_, in_, 1.0f, x.raw(), in_,
       weight_.value.raw(), in_, 0.0f, m.y.raw(), out_);
  if (has_bias_) {
    m.describe(n, out_);
    const float one = 1.0f;
    NN_CUDNN(m.who, cudnnAddTensor(dnn(), &one, m.b4, bias_.value.raw(), &one, m.y4, m.y.raw()));
  }
  if (mode == Mode::train) {
    m.x = view_of(x);
    m.train_out = m.y.shape();
    m.trained = true;
  }
  return m.y;
}

const Tensor& Linear::backward(const Tensor& dy, bool want_input_grad) {
  Impl& m = *impl_;
  if (!m.trained) throw UsageError("linear '" + name_ + "': backward() called before any train-mode forward()");
  expect_device_f32(m.who, dy, "the gradient");
  if (dy.shape() != m.train_out)
    throw UsageError("linear '" + name_ + "': gradient of shape " + dy.shape().str() +
                     " does not match the output shape " + m.train_out.str() + " of the last train-mode forward()");
  const std::int64_t n = m.train_out[0];
  cublasHandle_t h = blas(m.who);
  const cublasComputeType_t ct = m.compute(precision_);
  if (want_input_grad) {
    // dx = dy · W: dy [n×out], W [out×in].
    m.dx.ensure({n, in_}, DType::f32, Device::cuda);
    gemm(m.who, h, ct, false, false, n, in_, out_, 1.0f, dy.raw(), out_, weight_.value.raw(), in_, 0.0f, m.dx.raw(),
         in_);
  }
  // dW += dyᵀ · x: [out×n] · [n×in].
  gemm(m.who, h, ct, true, false, out_, in_, n, 1.0f, dy.raw(), out_, m.x.raw(), in_, 1.0f, weight_.grad.raw(), in_);
  if (has_bias_) {
    m.describe(n, out_);
    const float one = 1.0f;
    NN_CUDNN(m.who, cudnnConvolutionBackwardBias(dnn(), &one, m.y4, dy.raw(), &one, m.b4, bias_.grad.raw()));
  }
  return want_input_grad ? m.dx : m.none;
}

}  // namespace contra::cuda::nn
