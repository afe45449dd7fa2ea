#include "mlp_cuda.hpp"

#include <contra/cuda.hpp>
#include <contra/cuda/nn.hpp>

namespace contra::plugins {

using namespace contra::cuda::nn;

MlpCuda::MlpCuda(const contra::Params& p)
    : hidden_(p.get<std::vector<std::int64_t>>("hidden")), output_(p.get<std::int64_t>("output")) {}

void MlpCuda::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("mlp: build() called twice");
  if (ctx.input.rank() == 0 || ctx.input.numel() == 0)
    throw contra::ConfigError("mlp: cannot take inputs of shape " + ctx.input.str() +
                              "; expected [C, H, W] or [D] with no zero dimension");
  contra::cuda::require("mlp (cuda)");
  input_ = ctx.input;
  in_dim_ = ctx.input.numel();
  std::vector<std::int64_t> widths{in_dim_};
  widths.insert(widths.end(), hidden_.begin(), hidden_.end());
  widths.push_back(output_);
  const std::size_t L = widths.size() - 1;
  for (std::size_t l = 0; l < L; ++l) {
    // The CPU build's draws: layer l's weight, then its bias, from its own stream.
    contra::Rng init(ctx.seed, 0, l, 0, 0);
    net_.emplace<Linear>("fc" + std::to_string(l), widths[l], widths[l + 1], true, init, ctx.precision);
    if (l + 1 < L) net_.emplace<ReLU>();
  }
  // The initial values were copied and the gradients zeroed on this thread's
  // stream; the train step may run on another.
  contra::cuda::synchronize(contra::cuda::current_stream());
  built_ = true;
}

std::vector<contra::Parameter*> MlpCuda::parameters() {
  std::vector<contra::Parameter*> out;
  net_.parameters(out);
  return out;
}

const contra::Tensor& MlpCuda::forward(const contra::Tensor& x, contra::Mode mode) {
  if (!built_) throw contra::UsageError("mlp: forward() called before build()");
  std::int64_t row = 1;
  for (int d = 1; d < x.rank(); ++d) row *= x.dim(d);
  if (x.rank() < 2 || row != in_dim_ || x.dtype() != contra::DType::f32 || x.device() != contra::Device::cuda)
    throw contra::UsageError("mlp: forward() expected f32 inputs [N, ...] of " + std::to_string(in_dim_) +
                             " values per row (built for " + input_.str() + "), got " +
                             contra::dtype_name(x.dtype()) + " " + x.shape().str() + " on " +
                             contra::device_name(x.device()));
  rows_ = x.reshape({x.dim(0), in_dim_});
  const contra::Tensor& y = net_.forward(rows_, mode);
  backward_ready_ = mode == contra::Mode::train;
  if (backward_ready_) x_shape_ = x.shape();
  return y;
}

const contra::Tensor& MlpCuda::backward(const contra::Tensor& dy, bool want_input_grad) {
  if (!backward_ready_)
    throw contra::UsageError(
        "mlp: backward() needs a train-mode forward() first (none since the last backward() "
        "or eval-mode forward())");
  dy.expect({x_shape_[0], output_}, contra::DType::f32, "mlp: backward() dy");
  const contra::Tensor& dx = net_.backward(dy, want_input_grad);
  backward_ready_ = false;
  if (!want_input_grad) return none_;
  dx_ = dx.reshape(x_shape_);
  return dx_;
}

}  // namespace contra::plugins
