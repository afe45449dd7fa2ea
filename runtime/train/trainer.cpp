#include "trainer.hpp"

#include "mining_diagnostics.hpp"

#include <contra/errors.hpp>
#include <contra/rng.hpp>

#include <algorithm>
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

Trainer::Trainer(TrainerParts parts, const EncoderContext& ctx, MemoryContext memory_ctx) : p_(std::move(parts)) {
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
  const EncoderContext head_ctx{Shape{p_.encoder->output_dim()}, mix64(ctx.seed ^ 0x68656164ull), ctx.precision};
  if (p_.head) {
    guarded(p_.head_label, "build()", [&] { p_.head->build(head_ctx); });
    collect(*p_.head, p_.head_label);
  }
  if (p_.memory) {
    memory_ctx.dim = p_.head ? p_.head->output_dim() : p_.encoder->output_dim();
    guarded(p_.memory_label, "configure()", [&] { p_.memory->configure(memory_ctx); });
  }
  if (p_.momentum_encoder) {
    // Same plugin, same parameters, same seed: an exact copy to start from.
    guarded(p_.encoder_label, "build() of the momentum encoder", [&] { p_.momentum_encoder->build(ctx); });
    momentum_params_ = p_.momentum_encoder->parameters();
    if (p_.momentum_head) {
      guarded(p_.head_label, "build() of the momentum head", [&] { p_.momentum_head->build(head_ctx); });
      for (Parameter* q : p_.momentum_head->parameters()) momentum_params_.push_back(q);
    }
    if (momentum_params_.size() != params_.size())
      throw PluginError(p_.encoder_label + ": a second instance has a different number of parameters");
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (momentum_params_[i]->value.shape() != params_[i]->value.shape())
        throw PluginError(p_.encoder_label + ": a second instance has a parameter '" + momentum_params_[i]->name +
                          "' of another shape");
      std::copy_n(params_[i]->value.data<float>(), params_[i]->value.numel(), momentum_params_[i]->value.data<float>());
    }
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
  row_id_.resize(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) row_id_[r] = batch.ids[r % n];

  const Tensor& h = forward(*p_.encoder, p_.encoder_label, batch.images);
  const Tensor& z = p_.head ? forward(*p_.head, p_.head_label, h) : h;
  Tensor keys;
  if (p_.momentum_encoder) {
    const Tensor& hk = forward(*p_.momentum_encoder, p_.encoder_label, batch.images);
    keys = p_.momentum_head ? forward(*p_.momentum_head, p_.head_label, hk) : hk;
  }

  emb_ = Embeddings{z, &row_sample_, labelled ? &row_label_ : nullptr, batch.views, &row_id_, keys,
                    p_.memory ? &p_.memory->view() : nullptr};
  const Embeddings& emb = emb_;
  pairs_.clear();
  guarded(p_.miner_label, "mine()", [&] { p_.miner->mine(emb, pairs_); });
  result_.metrics.clear();
  guarded(p_.loss_label, "compute()", [&] { p_.loss->compute(emb, pairs_, result_); });
  // Before backward: the loss may have pointed nothing at z, but the encoder's
  // backward does not change its output, so this reads the step's embeddings.
  diagnose_mining(emb, pairs_, global_step).append_to(result_.metrics);
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
  if (p_.momentum_encoder) {
    // θ_k ← m·θ_k + (1 − m)·θ_q (MoCo).
    const float m = static_cast<float>(p_.memory->encoder_momentum());
    for (std::size_t i = 0; i < params_.size(); ++i) {
      float* k = momentum_params_[i]->value.data<float>();
      const float* q = params_[i]->value.data<float>();
      for (std::int64_t j = 0; j < params_[i]->value.numel(); ++j) k[j] = m * k[j] + (1.0f - m) * q[j];
    }
  }
  if (p_.memory) guarded(p_.memory_label, "update()", [&] { p_.memory->update(emb); });

  StepOutcome out;
  out.loss = result_.value;
  out.lr = p_.optimizer->learning_rate();
  out.metrics = result_.metrics;
  return out;
}

}  // namespace contra::runtime
