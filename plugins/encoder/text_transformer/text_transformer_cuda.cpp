#include "text_transformer_cuda.hpp"

#include "text_transformer_kernels.hpp"

#include "../host_initialised.hpp"

#include <contra/cuda.hpp>
#include <contra/errors.hpp>
#include <contra/rng.hpp>

#include <string>

namespace contra::plugins {

namespace {

void check_launch(const char* what) {
  if (const std::string e = text_kernels::last_error(); !e.empty())
    throw contra::DeviceError(std::string("text_transformer (cuda): ") + what + " kernel failed: " + e);
}

}  // namespace

TextTransformerCuda::TextTransformerCuda(const contra::Params& p)
    : params_(p),
      width_(p.get<std::int64_t>("width")),
      layers_(p.get<std::int64_t>("layers")),
      heads_(p.get<std::int64_t>("heads")),
      mlp_ratio_(p.get<std::int64_t>("mlp_ratio")),
      output_(p.get<std::int64_t>("output")),
      mean_pooling_(p.get<std::string>("pooling") == "mean"),
      causal_(p.get<bool>("causal")) {}

TextTransformerCuda::~TextTransformerCuda() = default;

void TextTransformerCuda::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("text_transformer: build() called twice");
  // The CPU model holds the checks, their messages and the initialisation:
  // building it first keeps the two builds equal by construction.
  TextTransformer host(params_);
  contra::EncoderContext host_ctx = ctx;
  host_ctx.precision = contra::Precision::f32;  // the draws do not depend on it; the CPU may lack bf16
  host.build(host_ctx);
  contra::cuda::require("text_transformer (cuda)");
  vocabulary_ = ctx.vocabulary;
  length_ = ctx.input[0];

  token_embedding_ = host_initialised::device_parameter("token_embedding.weight", {vocabulary_.size, width_}, true);
  positional_embedding_ = host_initialised::device_parameter("positional_embedding", {length_, width_}, true);
  for (std::int64_t i = 0; i < layers_; ++i) {
    contra::Rng init(ctx.seed, 0, static_cast<std::uint64_t>(i), 0, 0);  // drawn over below
    blocks_.push_back(std::make_unique<contra::cuda::nn::TransformerBlock>(
        "blocks." + std::to_string(i), width_, heads_, mlp_ratio_ * width_, init, ctx.precision, causal_));
  }
  ln_final_ = std::make_unique<contra::cuda::nn::LayerNorm>("ln_final", width_);
  contra::Rng projection_init(ctx.seed, 0, 0, 0, 0);
  projection_ = std::make_unique<contra::cuda::nn::Linear>("text_projection", width_, output_, false, projection_init,
                                                           ctx.precision);
  built_ = true;
  host_initialised::copy_values("text_transformer (cuda)", host.parameters(), parameters());
}

std::vector<contra::Parameter*> TextTransformerCuda::parameters() {
  std::vector<contra::Parameter*> out;
  if (!built_) return out;
  out.push_back(&token_embedding_);
  out.push_back(&positional_embedding_);
  for (auto& b : blocks_) b->parameters(out);
  ln_final_->parameters(out);
  projection_->parameters(out);
  return out;
}

const contra::Tensor& TextTransformerCuda::forward(const contra::Tensor& x, contra::Mode mode) {
  if (!built_) throw contra::UsageError("text_transformer: forward() called before build()");
  backward_ready_ = false;
  if (x.dtype() != contra::DType::i32 || x.rank() != 2 || x.dim(1) != length_ || x.dim(0) < 1)
    throw contra::UsageError("text_transformer: forward() expected i32 token ids [N, " + std::to_string(length_) +
                             "] on cpu or cuda, got " + contra::dtype_name(x.dtype()) + " " + x.shape().str() +
                             " on " + contra::device_name(x.device()));
  void* stream = contra::cuda::current_stream();
  rows_ = x.dim(0);
  // The ids are checked on the host, with the CPU build's messages.
  const contra::Tensor* host = &x;
  if (x.device() == contra::Device::cuda) {
    contra::cuda::copy_to_host(host_ids_, x, stream);
    contra::cuda::synchronize(stream);
    host = &host_ids_;
  }
  valid_ = text_valid_lengths(host->data<std::int32_t>(), rows_, length_, vocabulary_);
  if (x.device() == contra::Device::cuda)  // copied: the caller may reuse x before backward()
    contra::cuda::copy_on_device(ids_, x, stream);
  else
    contra::cuda::copy_to_device(ids_, x, stream);
  contra::cuda::copy_to_device(
      valid_device_,
      contra::Tensor::wrap(valid_.data(), contra::Shape{rows_}, contra::DType::i32, contra::Device::cpu), stream);

  embedded_.ensure({rows_ * length_, width_}, contra::DType::f32, contra::Device::cuda);
  text_kernels::embed(ids_.data<std::int32_t>(), token_embedding_.value.data<float>(),
                      positional_embedding_.value.data<float>(), rows_, length_, width_, embedded_.data<float>(),
                      stream);
  check_launch("embedding");
  const contra::Tensor* h = &embedded_;
  for (auto& b : blocks_) {
    b->set_sequences(length_, valid_);
    h = &b->forward(*h, mode);
  }
  pooled_.ensure({rows_, width_}, contra::DType::f32, contra::Device::cuda);
  text_kernels::pool(h->data<float>(), valid_device_.data<std::int32_t>(), rows_, length_, width_, mean_pooling_,
                     pooled_.data<float>(), stream);
  check_launch("pooling");
  const contra::Tensor& y = projection_->forward(ln_final_->forward(pooled_, mode), mode);
  backward_ready_ = mode == contra::Mode::train;
  return y;
}

const contra::Tensor& TextTransformerCuda::backward(const contra::Tensor& dy, bool want_input_grad) {
  if (want_input_grad)
    throw contra::UsageError("text_transformer: token ids have no gradient: call backward() with "
                             "want_input_grad = false");
  if (!backward_ready_)
    throw contra::UsageError("text_transformer: backward() needs a train-mode forward() first (none since the "
                             "last backward() or eval-mode forward())");
  dy.expect({rows_, output_}, contra::DType::f32, "text_transformer: backward() dy");
  if (dy.device() != contra::Device::cuda)
    throw contra::UsageError(std::string("text_transformer (cuda): backward() expected dy on cuda, got ") +
                             contra::device_name(dy.device()));
  void* stream = contra::cuda::current_stream();
  const contra::Tensor& dpooled = ln_final_->backward(projection_->backward(dy, true), true);
  dhidden_.ensure({rows_ * length_, width_}, contra::DType::f32, contra::Device::cuda);
  text_kernels::unpool(dpooled.data<float>(), valid_device_.data<std::int32_t>(), rows_, length_, width_,
                       mean_pooling_, dhidden_.data<float>(), stream);
  check_launch("unpooling");
  const contra::Tensor* d = &dhidden_;
  for (std::size_t i = blocks_.size(); i-- > 0;) d = &blocks_[i]->backward(*d, true);
  text_kernels::embedding_backward(d->data<float>(), ids_.data<std::int32_t>(), valid_device_.data<std::int32_t>(),
                                   rows_, length_, width_, token_embedding_.grad.data<float>(),
                                   positional_embedding_.grad.data<float>(), stream);
  check_launch("embedding gradient");
  backward_ready_ = false;
  static const contra::Tensor none;
  return none;
}

}  // namespace contra::plugins
