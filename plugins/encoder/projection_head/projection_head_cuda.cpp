#include "projection_head_cuda.hpp"

#include <contra/cuda.hpp>
#include <contra/cuda/nn.hpp>

namespace contra::plugins {

using namespace contra::cuda::nn;

ProjectionHeadCuda::ProjectionHeadCuda(const contra::Params& p)
    : hidden_(p.get<std::int64_t>("hidden")),
      output_(p.get<std::int64_t>("output")),
      batch_norm_(p.get<bool>("batch_norm")) {}

void ProjectionHeadCuda::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("projection_head: build() called twice");
  if (ctx.input.rank() != 1)
    throw contra::ConfigError("projection_head: takes feature vectors [D], got inputs of shape " + ctx.input.str() +
                              "; place it in [head], after an encoder");
  contra::cuda::require("projection_head (cuda)");
  input_ = ctx.input[0];
  const std::int64_t hidden = hidden_ > 0 ? hidden_ : input_;
  // The CPU build's layers, names and draws, in the same order.
  contra::Rng init(ctx.seed, 0, 0, 0, 0);
  net_.emplace<Linear>("fc1", input_, hidden, !batch_norm_, init, ctx.precision);
  if (batch_norm_) net_.emplace<BatchNorm>("bn1", hidden);
  net_.emplace<ReLU>();
  net_.emplace<Linear>("fc2", hidden, output_, true, init, ctx.precision);
  // The initial values were copied and the gradients zeroed on this thread's
  // stream; the train step may run on another.
  contra::cuda::synchronize(contra::cuda::current_stream());
  built_ = true;
}

std::vector<contra::Parameter*> ProjectionHeadCuda::parameters() {
  std::vector<contra::Parameter*> out;
  net_.parameters(out);
  return out;
}

std::vector<std::pair<std::string, contra::Tensor*>> ProjectionHeadCuda::buffers() {
  std::vector<std::pair<std::string, contra::Tensor*>> out;
  net_.buffers(out);
  return out;
}

const contra::Tensor& ProjectionHeadCuda::forward(const contra::Tensor& x, contra::Mode mode) {
  if (!built_) throw contra::UsageError("projection_head: forward() called before build()");
  if (x.rank() != 2 || x.dim(1) != input_)
    throw contra::UsageError("projection_head: expected features [N, " + std::to_string(input_) + "], got " +
                             x.shape().str());
  return net_.forward(x, mode);
}

const contra::Tensor& ProjectionHeadCuda::backward(const contra::Tensor& dy, bool want_input_grad) {
  return net_.backward(dy, want_input_grad);
}

}  // namespace contra::plugins
