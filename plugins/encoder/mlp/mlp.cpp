#include "mlp.hpp"

#include <contra/blas.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace contra::plugins {

contra::Schema Mlp::schema() {
  return contra::Schema("mlp", "multilayer perceptron: flatten, then Linear -> ReLU -> ... -> Linear")
      .add<std::vector<std::int64_t>>("hidden", std::vector<std::int64_t>{512},
                                      "widths of the hidden layers, each followed by ReLU")
      .range(1, 65536)
      .length(0, 16)
      .add<std::int64_t>("output", 128, "width of the embedding (the last Linear layer)")
      .range(1, 65536);
}

Mlp::Mlp(const contra::Params& p)
    : hidden_(p.get<std::vector<std::int64_t>>("hidden")), output_(p.get<std::int64_t>("output")) {}

void Mlp::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("mlp: build() called twice");
  if (ctx.precision != contra::Precision::f32)
    throw contra::ConfigError("mlp: only f32 precision is supported");
  const contra::Shape& input = ctx.input;
  const std::uint64_t seed = ctx.seed;
  if (input.rank() == 0 || input.numel() == 0)
    throw contra::ConfigError("mlp: cannot take inputs of shape " + input.str() +
                              "; expected [C, H, W] or [D] with no zero dimension");
  input_ = input;
  in_dim_ = input.numel();
  std::vector<std::int64_t> widths{in_dim_};
  widths.insert(widths.end(), hidden_.begin(), hidden_.end());
  widths.push_back(output_);

  const std::size_t L = widths.size() - 1;
  layers_.clear();
  layers_.resize(L);  // never resized again: parameters() hands out pointers into it
  for (std::size_t l = 0; l < L; ++l) {
    Layer& layer = layers_[l];
    layer.in = widths[l];
    layer.out = widths[l + 1];
    const std::string name = "fc" + std::to_string(l);
    layer.weight = {name + ".weight", contra::Tensor::empty({layer.out, layer.in}, contra::DType::f32),
                    contra::Tensor::zeros({layer.out, layer.in}, contra::DType::f32), true};
    layer.bias = {name + ".bias", contra::Tensor::empty({layer.out}, contra::DType::f32),
                  contra::Tensor::zeros({layer.out}, contra::DType::f32), false};
    // nn.Linear's default: kaiming_uniform(a = sqrt(5)) for the weight, which is
    // uniform(±1/sqrt(fan_in)), and the same bound for the bias.
    const double bound = 1.0 / std::sqrt(static_cast<double>(layer.in));
    contra::Rng rng(seed, 0, l, 0, 0);
    float* w = layer.weight.value.data<float>();
    for (std::int64_t k = 0; k < layer.out * layer.in; ++k)
      w[k] = static_cast<float>(rng.uniform(-bound, bound));
    float* b = layer.bias.value.data<float>();
    for (std::int64_t k = 0; k < layer.out; ++k) b[k] = static_cast<float>(rng.uniform(-bound, bound));
  }
  acts_.assign(L + 1, contra::Tensor());
  grads_.assign(L, contra::Tensor());
  built_ = true;
}

std::vector<contra::Parameter*> Mlp::parameters() {
  std::vector<contra::Parameter*> out;
  for (Layer& layer : layers_) {
    out.push_back(&layer.weight);
    out.push_back(&layer.bias);
  }
  return out;
}

const contra::Tensor& Mlp::forward(const contra::Tensor& x, contra::Mode mode) {
  if (!built_) throw contra::UsageError("mlp: forward() called before build()");
  std::int64_t row = 1;
  for (int d = 1; d < x.rank(); ++d) row *= x.dim(d);
  if (x.rank() < 2 || row != in_dim_ || x.dtype() != contra::DType::f32 ||
      x.device() != contra::Device::cpu)
    throw contra::UsageError("mlp: forward() expected f32 inputs [N, ...] of " + std::to_string(in_dim_) +
                             " values per row (built for " + input_.str() + "), got " +
                             contra::dtype_name(x.dtype()) + " " + x.shape().str() + " on " +
                             contra::device_name(x.device()));
  const std::int64_t N = x.dim(0);
  const bool train = mode == contra::Mode::train;
  // Eval reads x in place; train copies it, since backward() needs it later.
  const float* a = x.data<float>();
  if (train) {
    acts_[0].ensure({N, in_dim_}, contra::DType::f32);
    if (N) std::memcpy(acts_[0].raw(), a, x.nbytes());
    a = acts_[0].data<float>();
    x_shape_ = x.shape();
  }
  const std::size_t L = layers_.size();
  for (std::size_t l = 0; l < L; ++l) {
    const Layer& layer = layers_[l];
    contra::Tensor& y = acts_[l + 1];
    y.ensure({N, layer.out}, contra::DType::f32);
    float* yp = y.data<float>();
    // y = b (broadcast), then y += a · Wᵀ, then ReLU on hidden layers.
    const float* b = layer.bias.value.data<float>();
    for (std::int64_t i = 0; i < N; ++i) std::memcpy(yp + i * layer.out, b, layer.out * sizeof(float));
    contra::sgemm(false, true, N, layer.out, layer.in, 1.0f, a, layer.in,
                  layer.weight.value.data<float>(), layer.in, 1.0f, yp, layer.out);
    if (l + 1 < L)
      for (std::int64_t k = 0; k < N * layer.out; ++k) yp[k] = std::max(yp[k], 0.0f);
    a = yp;
  }
  backward_ready_ = train;
  return acts_[L];
}

const contra::Tensor& Mlp::backward(const contra::Tensor& dy, bool want_input_grad) {
  if (!backward_ready_)
    throw contra::UsageError(
        "mlp: backward() needs a train-mode forward() first (none since the last backward() "
        "or eval-mode forward())");
  const std::int64_t N = acts_[0].dim(0);
  dy.expect({N, output_}, contra::DType::f32, "mlp: backward() dy");
  dx_ = contra::Tensor();  // drop the view so that grads_[0] can be reused
  const float* g = dy.data<float>();
  for (std::size_t l = layers_.size(); l-- > 0;) {
    Layer& layer = layers_[l];
    const float* a = acts_[l].data<float>();
    // dW += gᵀ · a; db += column sums of g.
    contra::sgemm(true, false, layer.out, layer.in, N, 1.0f, g, layer.out, a, layer.in, 1.0f,
                  layer.weight.grad.data<float>(), layer.in);
    float* db = layer.bias.grad.data<float>();
    for (std::int64_t i = 0; i < N; ++i) {
      const float* gi = g + i * layer.out;
      for (std::int64_t k = 0; k < layer.out; ++k) db[k] += gi[k];
    }
    if (l == 0 && !want_input_grad) break;
    // da = g · W, then through the ReLU that produced a (a > 0 iff its input > 0).
    contra::Tensor& da = grads_[l];
    da.ensure({N, layer.in}, contra::DType::f32);
    float* dap = da.data<float>();
    contra::sgemm(false, false, N, layer.in, layer.out, 1.0f, g, layer.out,
                  layer.weight.value.data<float>(), layer.in, 0.0f, dap, layer.in);
    if (l > 0)
      for (std::int64_t k = 0; k < N * layer.in; ++k) dap[k] = a[k] > 0.0f ? dap[k] : 0.0f;
    g = dap;
  }
  backward_ready_ = false;
  if (!want_input_grad) return none_;
  dx_ = grads_[0].reshape(x_shape_);
  return dx_;
}

}  // namespace contra::plugins
