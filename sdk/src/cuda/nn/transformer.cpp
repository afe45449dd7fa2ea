// TransformerBlock on the GPU: contra::nn::TransformerBlock's composition
// (sdk/src/nn/transformer.cpp) of this library's layers, the residual sums
// by contra::cuda::nn::add.
#include <contra/cuda/nn.hpp>

#include <contra/cuda.hpp>

#include <string>
#include <utility>

namespace contra::cuda::nn {

namespace {

// The arguments the CPU block's layers refuse, with their messages and in
// their order (ln_1, attn, then mlp.c_fc), checked before the GPU is
// required; then the GPU, named for the block. Returns the name.
std::string checked(std::string name, std::int64_t width, std::int64_t heads, std::int64_t mlp_width) {
  if (width < 1)
    throw UsageError("LayerNorm '" + name + ".ln_1': features must be >= 1, got " + std::to_string(width));
  if (heads < 1 || width % heads != 0)
    throw UsageError("MultiHeadSelfAttention '" + name + ".attn': width must be a positive multiple of heads, got width " +
                     std::to_string(width) + " and " + std::to_string(heads) + " heads");
  if (mlp_width <= 0)
    throw UsageError("linear '" + name + ".mlp.c_fc': in_features and out_features must be positive (got " +
                     std::to_string(width) + ", " + std::to_string(mlp_width) + ")");
  contra::cuda::require("TransformerBlock (cuda)");
  return name;
}

}  // namespace

TransformerBlock::TransformerBlock(std::string name, std::int64_t width, std::int64_t heads, std::int64_t mlp_width,
                                   Rng& init, Precision precision, bool causal)
    : name_(checked(std::move(name), width, heads, mlp_width)),
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

}  // namespace contra::cuda::nn
