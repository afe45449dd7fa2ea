#include "trainer.hpp"

#include <contra/errors.hpp>

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
  guarded(p_.encoder_label, "build()", [&] { p_.encoder->build(ctx); });
  params_ = guarded(p_.encoder_label, "parameters()", [&] { return p_.encoder->parameters(); });
  for (Parameter* q : params_) {
    if (!q || q->value.dtype() != DType::f32 || q->grad.shape() != q->value.shape() ||
        q->grad.dtype() != DType::f32)
      throw PluginError(p_.encoder_label + ": parameters() returned a parameter" +
                        (q ? " '" + q->name + "'" : std::string()) +
                        " whose value or gradient is not an f32 tensor of one shape");
  }
  guarded(p_.optimizer_label, "configure()", [&] { p_.optimizer->configure(params_); });
}

StepOutcome Trainer::step(const Batch& batch, std::int64_t global_step) {
  const std::int64_t n = batch.size(), rows = batch.images.dim(0);
  row_sample_.resize(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) row_sample_[r] = r % n;
  const bool labelled = !batch.labels.empty();
  if (labelled) {
    row_label_.resize(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) row_label_[r] = batch.labels[r % n];
  }

  const Tensor& z = guarded(p_.encoder_label, "forward()", [&]() -> const Tensor& {
    return p_.encoder->forward(batch.images, Mode::train);
  });
  const std::int64_t d = p_.encoder->output_dim();
  if (z.dtype() != DType::f32 || z.rank() != 2 || z.dim(0) != rows || z.dim(1) != d)
    throw PluginError(p_.encoder_label + ": forward() returned a " + dtype_name(z.dtype()) + " tensor of shape " +
                      z.shape().str() + ", expected f32 " + Shape{rows, d}.str());

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
  guarded(p_.encoder_label, "backward()", [&] { p_.encoder->backward(result_.grad, false); });
  guarded(p_.optimizer_label, "step()", [&] { p_.optimizer->step(OptimizerStep{global_step, 1.0}); });

  StepOutcome out;
  out.loss = result_.value;
  out.lr = p_.optimizer->learning_rate();
  out.metrics = result_.metrics;
  return out;
}

}  // namespace contra::runtime
