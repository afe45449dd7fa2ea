#include "trainer.hpp"

#include <contra/errors.hpp>
#include <contra/rng.hpp>

#include <cmath>

namespace contra::runtime {

namespace {
// Runs one plugin call, naming the plugin and the call in any error.
template <class F> auto guarded(const std::string& label, const char* call, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    throw PluginError(label + ": " + call + " failed: " + e.what());
  }
}
}  // namespace

Trainer::Trainer(TrainerParts parts, const EncoderContext& ctx) : p_(std::move(parts)) {
  auto collect = [&](Encoder& e, const std::string& label) {
    auto ps = guarded(label, "parameters()", [&] { return e.parameters(); });
    for (Parameter* q : ps) {
      if (!q || q->value.dtype() != DType::f32 || q->grad.shape() != q->value.shape() ||
          q->grad.dtype() != DType::f32)
        throw PluginError(label + ": parameters() returned a parameter" + (q ? " '" + q->name + "'" : std::string()) +
                          " whose value or gradient is not an f32 tensor of one shape");
      params_.push_back(q);
    }
  };
  guarded(p_.encoder_label, "build()", [&] { p_.encoder->build(ctx); });
  collect(*p_.encoder, p_.encoder_label);
  if (p_.head) {
    EncoderContext head_ctx{Shape{p_.encoder->output_dim()}, mix64(ctx.seed ^ 0x68656164ull), ctx.precision};
    guarded(p_.head_label, "build()", [&] { p_.head->build(head_ctx); });
    collect(*p_.head, p_.head_label);
  }
  guarded(p_.optimizer_label, "configure()", [&] { p_.optimizer->configure(params_); });
}

StepOutcome Trainer::step(const Batch& batch, std::int64_t global_step, double lr_scale) {
  const std::int64_t n = batch.size(), rows = batch.images.dim(0);
  row_sample_.resize(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) row_sample_[r] = r % n;
  const bool labelled = !batch.labels.empty();
  if (labelled) {
    row_label_.resize(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) row_label_[r] = batch.labels[r % n];
  }

  auto forward = [&](Encoder& e, const std::string& label, const Tensor& x) -> const Tensor& {
    const Tensor& y = guarded(label, "forward()", [&]() -> const Tensor& { return e.forward(x, Mode::train); });
    const std::int64_t d = e.output_dim();
    if (y.dtype() != DType::f32 || y.rank() != 2 || y.dim(0) != rows || y.dim(1) != d)
      throw PluginError(label + ": forward() returned a " + dtype_name(y.dtype()) + " tensor of shape " +
                        y.shape().str() + ", expected f32 " + Shape{rows, d}.str());
    return y;
  };
  const Tensor& h = forward(*p_.encoder, p_.encoder_label, batch.images);
  const Tensor& z = p_.head ? forward(*p_.head, p_.head_label, h) : h;

  Embeddings emb{z, &row_sample_, labelled ? &row_label_ : nullptr, batch.views};
  pairs_.clear();
  guarded(p_.miner_label, "mine()", [&] { p_.miner->mine(emb, pairs_); });
  result_.metrics.clear();
  guarded(p_.loss_label, "compute()", [&] { p_.loss->compute(emb, pairs_, result_); });
  if (!std::isfinite(result_.value))
    throw PluginError(p_.loss_label + ": compute() returned a loss that is not finite (" +
                      std::to_string(result_.value) + ") at step " + std::to_string(global_step));
  if (result_.grad.shape() != z.shape() || result_.grad.dtype() != DType::f32)
    throw PluginError(p_.loss_label + ": compute() returned a gradient of shape " + result_.grad.shape().str() +
                      ", expected f32 " + z.shape().str());

  for (Parameter* q : params_) q->grad.zero();
  const Tensor* dh = &result_.grad;
  if (p_.head) {
    dh = &guarded(p_.head_label, "backward()", [&]() -> const Tensor& { return p_.head->backward(result_.grad, true); });
    if (dh->shape() != h.shape() || dh->dtype() != DType::f32)
      throw PluginError(p_.head_label + ": backward() returned an input gradient of shape " + dh->shape().str() +
                        ", expected f32 " + h.shape().str());
  }
  guarded(p_.encoder_label, "backward()", [&] { p_.encoder->backward(*dh, false); });
  guarded(p_.optimizer_label, "step()", [&] { p_.optimizer->step(OptimizerStep{global_step, lr_scale}); });

  StepOutcome out;
  out.loss = result_.value;
  out.lr = p_.optimizer->learning_rate();
  out.metrics = result_.metrics;
  return out;
}

}  // namespace contra::runtime
