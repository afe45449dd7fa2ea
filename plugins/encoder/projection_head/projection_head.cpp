#include "projection_head.hpp"

#include <contra/nn/activation.hpp>
#include <contra/nn/batch_norm.hpp>
#include <contra/nn/linear.hpp>

namespace contra::plugins {

using namespace contra::nn;

contra::Schema ProjectionHead::schema() {
  return contra::Schema("projection_head", "linear - batch norm - ReLU - linear (SimCLR's projection head)")
      .add<std::int64_t>("hidden", 0, "width of the hidden layer; 0 = the encoder's output width")
      .range(0, 65536)
      .add<std::int64_t>("output", 128, "width of the projection the loss sees")
      .range(1, 65536)
      .add<bool>("batch_norm", true, "batch norm after the first linear layer (which then has no bias)");
}

ProjectionHead::ProjectionHead(const contra::Params& p)
    : hidden_(p.get<std::int64_t>("hidden")),
      output_(p.get<std::int64_t>("output")),
      batch_norm_(p.get<bool>("batch_norm")) {}

void ProjectionHead::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("projection_head: build() called twice");
  if (ctx.input.rank() != 1)
    throw contra::ConfigError("projection_head: takes feature vectors [D], got inputs of shape " + ctx.input.str() +
                              "; place it in [head], after an encoder");
  input_ = ctx.input[0];
  const std::int64_t hidden = hidden_ > 0 ? hidden_ : input_;
  contra::Rng init(ctx.seed, 0, 0, 0, 0);
  net_.emplace<Linear>("fc1", input_, hidden, !batch_norm_, init, ctx.precision);
  if (batch_norm_) net_.emplace<BatchNorm>("bn1", hidden);
  net_.emplace<ReLU>();
  net_.emplace<Linear>("fc2", hidden, output_, true, init, ctx.precision);
  built_ = true;
}

std::vector<contra::Parameter*> ProjectionHead::parameters() {
  std::vector<contra::Parameter*> out;
  net_.parameters(out);
  return out;
}

std::vector<std::pair<std::string, contra::Tensor*>> ProjectionHead::buffers() {
  std::vector<std::pair<std::string, contra::Tensor*>> out;
  net_.buffers(out);
  return out;
}

const contra::Tensor& ProjectionHead::forward(const contra::Tensor& x, contra::Mode mode) {
  if (!built_) throw contra::UsageError("projection_head: forward() called before build()");
  if (x.rank() != 2 || x.dim(1) != input_)
    throw contra::UsageError("projection_head: expected features [N, " + std::to_string(input_) + "], got " +
                             x.shape().str());
  return net_.forward(x, mode);
}

const contra::Tensor& ProjectionHead::backward(const contra::Tensor& dy, bool want_input_grad) {
  return net_.backward(dy, want_input_grad);
}

}  // namespace contra::plugins
