#include "mlp.hpp"

#include <contra/nn/activation.hpp>
#include <contra/memory_budget.hpp>
#include <contra/nn/linear.hpp>
#include <contra/rng.hpp>

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
    : hidden_(p.get<std::vector<std::int64_t>>("hidden")),
      output_(p.get<std::int64_t>("output")),
      key_prefix_(p.prefix().empty() ? std::string() : p.prefix() + ".") {}

void Mlp::require_memory(const std::vector<std::int64_t>& widths) const {
  // Weights, biases and their gradients, f32, before any layer allocates.
  std::uint64_t params = 0, largest = 0;
  std::size_t at = 0;
  for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
    const auto in = static_cast<std::uint64_t>(widths[l]), out = static_cast<std::uint64_t>(widths[l + 1]);
    const std::uint64_t n = contra::add_bytes(contra::mul_bytes(in, out), out);
    params = contra::add_bytes(params, n);
    if (n > largest) largest = n, at = l;
  }
  // The key that sets the largest layer: output when it is the last layer's
  // wider side (or there are no hidden layers), else hidden.
  const bool output_key = hidden_.empty() || (at + 2 == widths.size() && output_ >= widths[at]);
  const std::string subject = output_key ? key_prefix_ + "output = " + std::to_string(output_)
                                         : key_prefix_ + "hidden = " + contra::list_text(hidden_);
  contra::require_memory(subject, contra::mul_bytes(params, 2 * sizeof(float)), "weights and gradients",
                         std::to_string(params) + " parameters × 4 B × 2; largest layer fc" + std::to_string(at) + ": " +
                             std::to_string(widths[at]) + " × " + std::to_string(widths[at + 1]) + ", for inputs " +
                             input_.str());
}

void Mlp::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("mlp: build() called twice");
  if (ctx.input.rank() == 0 || ctx.input.numel() == 0)
    throw contra::ConfigError("mlp: cannot take inputs of shape " + ctx.input.str() +
                              "; expected [C, H, W] or [D] with no zero dimension");
  input_ = ctx.input;
  in_dim_ = ctx.input.numel();
  std::vector<std::int64_t> widths{in_dim_};
  widths.insert(widths.end(), hidden_.begin(), hidden_.end());
  widths.push_back(output_);
  require_memory(widths);
  const std::size_t L = widths.size() - 1;
  for (std::size_t l = 0; l < L; ++l) {
    // Layer l draws its weight, then its bias, from its own stream (nn.Linear's
    // default, uniform(±1/sqrt(fan_in))): the cuda build draws the same.
    contra::Rng init(ctx.seed, 0, l, 0, 0);
    net_.emplace<contra::nn::Linear>("fc" + std::to_string(l), widths[l], widths[l + 1], true, init, ctx.precision);
    if (l + 1 < L) net_.emplace<contra::nn::ReLU>();
  }
  built_ = true;
}

std::vector<contra::Parameter*> Mlp::parameters() {
  std::vector<contra::Parameter*> out;
  net_.parameters(out);
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
  const bool train = mode == contra::Mode::train;
  if (!train) {
    backward_ready_ = false;
    return net_.forward(x.reshape({x.dim(0), in_dim_}), mode);
  }
  // Train copies x: the first layer's backward reads its input, and the
  // caller may reuse x's buffer before backward().
  rows_.ensure({x.dim(0), in_dim_}, contra::DType::f32);
  if (x.numel()) std::memcpy(rows_.raw(), x.raw(), x.nbytes());
  x_shape_ = x.shape();
  const contra::Tensor& y = net_.forward(rows_, mode);
  backward_ready_ = true;
  return y;
}

const contra::Tensor& Mlp::backward(const contra::Tensor& dy, bool want_input_grad) {
  if (!backward_ready_)
    throw contra::UsageError(
        "mlp: backward() needs a train-mode forward() first (none since the last backward() "
        "or eval-mode forward())");
  dy.expect({x_shape_[0], output_}, contra::DType::f32, "mlp: backward() dy");
  dx_ = contra::Tensor();  // drop the view, so that the first layer reuses its dL/dx buffer
  const contra::Tensor& dx = net_.backward(dy, want_input_grad);
  backward_ready_ = false;
  if (!want_input_grad) return none_;
  dx_ = dx.reshape(x_shape_);
  return dx_;
}

}  // namespace contra::plugins
