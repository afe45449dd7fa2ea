#pragma once
// projection_head: linear – batch norm – ReLU – linear, the SimCLR projection
// g(·) placed after an encoder with [head] in a pipeline. The loss sees its
// output; evaluation uses the encoder's output before it.

#include <contra/nn/sequential.hpp>
#include <contra/plugin.hpp>

#include <string>

namespace contra::plugins {

class ProjectionHead final : public contra::Encoder {
 public:
  static contra::Schema schema();
  explicit ProjectionHead(const contra::Params& p);

  /// Throws ConfigError for inputs other than [D], or for layers whose weights
  /// and gradients need more memory than this machine has (naming `hidden`
  /// or `output` and the figure, before allocating; contra/memory_budget.hpp).
  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return output_; }
  std::vector<contra::Parameter*> parameters() override;
  std::vector<std::pair<std::string, contra::Tensor*>> buffers() override;
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  std::int64_t hidden_, output_;
  bool batch_norm_;
  std::string key_prefix_;  // "head.": how messages name the keys
  std::int64_t input_ = 0;
  contra::nn::Sequential net_;
  bool built_ = false;
};

}  // namespace contra::plugins
