#include "projection_head.hpp"

#include <contra/nn/activation.hpp>
#include <contra/nn/batch_norm.hpp>
#include <contra/memory_budget.hpp>
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
      batch_norm_(p.get<bool>("batch_norm")),
      key_prefix_(p.prefix().empty() ? std::string() : p.prefix() + ".") {}

void ProjectionHead::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("projection_head: build() called twice");
  if (ctx.input.rank() != 1)
    throw contra::ConfigError("projection_head: takes feature vectors [D], got inputs of shape " + ctx.input.str() +
                              "; place it in [head], after an encoder");
  input_ = ctx.input[0];
  const std::int64_t hidden = hidden_ > 0 ? hidden_ : input_;
  {
    // fc1 (input × hidden, a bias without batch norm), bn1 (scale, shift and
    // two running statistics), fc2 (hidden × output + bias): f32 weights and
    // gradients, checked before any layer allocates.
    const auto in = static_cast<std::uint64_t>(input_), h = static_cast<std::uint64_t>(hidden),
               out = static_cast<std::uint64_t>(output_);
    const std::uint64_t fc1 = contra::mul_bytes(in, h), fc2 = contra::mul_bytes(h, out);
    const std::uint64_t params = contra::add_bytes(contra::add_bytes(fc1, fc2), h * (batch_norm_ ? 2 : 1) + out);
    const std::uint64_t bytes = contra::add_bytes(contra::mul_bytes(params, 2 * sizeof(float)),
                                                  batch_norm_ ? 2 * h * sizeof(float) : 0);
    const std::string hidden_text = hidden_ > 0 ? std::to_string(hidden_)
                                                : "0 (the encoder's output width, " + std::to_string(input_) + ")";
    const std::string subject = fc2 > fc1 && output_ > hidden ? key_prefix_ + "output = " + std::to_string(output_)
                                                              : key_prefix_ + "hidden = " + hidden_text;
    contra::require_memory(subject, bytes, "weights and gradients",
                           std::to_string(params) + " parameters × 4 B × 2; fc1: " + std::to_string(input_) + " × " +
                               std::to_string(hidden) + ", fc2: " + std::to_string(hidden) + " × " +
                               std::to_string(output_));
  }
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
