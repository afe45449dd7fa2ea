#include <contra/nn/transformer.hpp>

#include <contra/nn/residual.hpp>

namespace contra::nn {

TransformerBlock::TransformerBlock(std::string name, std::int64_t width, std::int64_t heads, std::int64_t mlp_width,
                                   Rng& init, Precision precision, bool causal)
    : name_(std::move(name)),
      ln_1_(name_ + ".ln_1", width),
      attn_(name_ + ".attn", width, heads, init, precision, causal),
      ln_2_(name_ + ".ln_2", width),
      fc_(name_ + ".mlp.c_fc", width, mlp_width, true, init, precision),
      proj_(name_ + ".mlp.c_proj", mlp_width, width, true, init, precision) {}

TransformerBlock::~TransformerBlock() = default;

void TransformerBlock::set_sequences(std::int64_t length, std::span<const std::int32_t> valid) {
  attn_.set_sequences(length, valid);
}

const Tensor& TransformerBlock::forward(const Tensor& x, Mode mode) {
  trained_ = false;
  add(x, attn_.forward(ln_1_.forward(x, mode), mode), mid_);
  const Tensor& hidden = gelu_.forward(fc_.forward(ln_2_.forward(mid_, mode), mode), mode);
  add(mid_, proj_.forward(hidden, mode), y_);
  trained_ = mode == Mode::train;
  return y_;
}

const Tensor& TransformerBlock::backward(const Tensor& dy, bool want_input_grad) {
  if (!trained_) throw UsageError("TransformerBlock '" + name_ + "': backward() without a train-mode forward()");
  dy.expect(y_.shape(), DType::f32, ("TransformerBlock '" + name_ + "' backward dy").c_str());
  // x' reaches y along the residual and through the MLP: dL/dx' is the sum.
  const Tensor& dhidden = gelu_.backward(proj_.backward(dy, true), true);
  add(dy, ln_2_.backward(fc_.backward(dhidden, true), true), dmid_);
  // Likewise x reaches x' directly and through the attention. The first
  // layer norm's backward also adds its parameters' gradients, so it runs
  // even when dL/dx is not wanted.
  const Tensor& dnormed = ln_1_.backward(attn_.backward(dmid_, true), want_input_grad);
  if (!want_input_grad) return none_;
  add(dmid_, dnormed, dx_);
  return dx_;
}

void TransformerBlock::parameters(std::vector<Parameter*>& out) {
  ln_1_.parameters(out);
  attn_.parameters(out);
  ln_2_.parameters(out);
  fc_.parameters(out);
  proj_.parameters(out);
}

}  // namespace contra::nn
