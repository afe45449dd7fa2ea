// @NAME@: a contra encoder plugin. See README.md.
#include "@NAME@.hpp"

#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>

contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [encoder] table against this and `contra plugins --describe`
  // prints it.
  return contra::Schema("@NAME@", "two fully connected layers with a ReLU between")
      .add<std::int64_t>("hidden", 256, "width of the hidden layer").range(1, 65536)
      .add<std::int64_t>("output", 64, "embedding width").range(1, 65536);
}

@CLASS@::@CLASS@(const contra::Params& p)
    : hidden_(p.get<std::int64_t>("hidden")), output_(p.get<std::int64_t>("output")) {}

// Skeleton: flatten, Linear, ReLU, Linear, on the SDK's layers (contra/nn/,
// oneDNN inside). Parameters are drawn from ctx.seed so that a seed gives the
// same network everywhere. Replace with your network.
void @CLASS@::build(const contra::EncoderContext& ctx) {
  inputs_ = ctx.input.numel();
  if (inputs_ <= 0) throw contra::ConfigError("@NAME@: empty input shape");
  contra::Rng init(ctx.seed, 0, 0, 0, 0);
  net_.emplace<contra::nn::Linear>("fc0", inputs_, hidden_, true, init, ctx.precision);
  net_.emplace<contra::nn::ReLU>();
  net_.emplace<contra::nn::Linear>("fc1", hidden_, output_, true, init, ctx.precision);
}

std::vector<contra::Parameter*> @CLASS@::parameters() {
  std::vector<contra::Parameter*> out;
  net_.parameters(out);
  return out;
}

const contra::Tensor& @CLASS@::forward(const contra::Tensor& x, contra::Mode mode) {
  if (x.rank() < 2 || x.numel() != x.dim(0) * inputs_)
    throw contra::UsageError("@NAME@: input " + x.shape().str() + " does not hold " + std::to_string(inputs_) +
                             " features per row");
  input_shape_ = x.shape();
  return net_.forward(x.reshape({x.dim(0), inputs_}), mode);
}

const contra::Tensor& @CLASS@::backward(const contra::Tensor& dy, bool want_input_grad) {
  const contra::Tensor& dx = net_.backward(dy, want_input_grad);
  if (!want_input_grad) return dx;
  dx_ = dx.reshape(input_shape_);
  return dx_;
}

// The library's one exported symbol: its manifest (SDK ABI version and the
// plugins it provides), checked by contra before any code here runs.
CONTRA_PLUGIN_LIBRARY(CONTRA_ENCODER(@CLASS@))
