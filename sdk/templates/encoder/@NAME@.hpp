#pragma once
// @NAME@: a contra encoder plugin (two fully connected layers with a ReLU between).

#include <contra/roles/encoder.hpp>
#include <contra/schema.hpp>
#include <contra/nn/activation.hpp>
#include <contra/nn/linear.hpp>
#include <contra/nn/sequential.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

class @CLASS@ final : public contra::Encoder {
 public:
  /// Parameters, declared once: the runtime validates pipelines against this.
  static contra::Schema schema();
  /// `p` holds values already validated against schema().
  explicit @CLASS@(const contra::Params& p);

  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return output_; }
  std::vector<contra::Parameter*> parameters() override;
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  std::int64_t hidden_, output_, inputs_ = 0;
  contra::nn::Sequential net_;
  contra::Shape input_shape_;
  contra::Tensor dx_;
};
