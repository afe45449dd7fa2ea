#include "trainer.hpp"

#include "activity.hpp"
#include "mining_diagnostics.hpp"
#include "device/device_ops.hpp"

#include <contra/errors.hpp>
#include <contra/guard.hpp>
#include <contra/memory_budget.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>
#include <new>

namespace contra::runtime {

namespace {
// Runs one plugin call, naming the plugin and the call in any error, and to
// the stage watchdog while it runs. `label` outlives the call (a member).
template <class F> decltype(auto) plugin_call(const std::string& label, const char* call, F&& f) {
  entering_plugin(label, call);
  // std::bad_alloc, which says nothing, is said as running out of memory,
  // with what this machine has (a build() or configure() whose own check,
  // contra/memory_budget.hpp, let a size through, or had none).
  return contra::guarded(label + ": " + call + " failed", [&]() -> decltype(auto) {
    try {
      return std::forward<F>(f)();
    } catch (const std::bad_alloc&) {
      throw PluginError(out_of_memory_text());
    }
  });
}

// Throws naming the plugin, the call and the first bad element when an f32
// [rows, cols] tensor holds NaN or Inf. Cheap when it does not: one sum.
void check_finite(const Tensor& t, const std::string& label, const char* what, std::int64_t step) {
  const float* p = t.data<float>();
  double sum = 0;
  for (std::int64_t i = 0; i < t.numel(); ++i) sum += p[i];
  if (std::isfinite(sum)) return;
  std::int64_t i = 0;
  while (i < t.numel() && std::isfinite(p[i])) ++i;
  const std::int64_t cols = t.rank() == 2 ? t.dim(1) : 1;
  throw PluginError(label + ": " + what + " holds " + std::to_string(p[i < t.numel() ? i : 0]) + " at row " +
                    std::to_string(i / cols) + ", column " + std::to_string(i % cols) + " (step " +
                    std::to_string(step) + ")");
}
}  // namespace

std::vector<std::pair<std::string, Encoder*>> named_encoders(const TrainerParts& parts) {
  std::vector<std::pair<std::string, Encoder*>> out{{"encoder.", parts.encoder.get()},
                                                    {"head.", parts.head.get()},
                                                    {"momentum_encoder.", parts.momentum_encoder.get()},
                                                    {"momentum_head.", parts.momentum_head.get()}};
  for (const TowerParts& t : parts.towers) {
    out.emplace_back("tower." + t.name + ".encoder.", t.encoder.get());
    out.emplace_back("tower." + t.name + ".head.", t.head.get());
  }
  std::erase_if(out, [](const auto& e) { return e.second == nullptr; });
  return out;
}

Trainer::Trainer(TrainerParts parts, const EncoderContext& ctx, MemoryContext memory_ctx)
    : p_(std::move(parts)), seed_(ctx.seed) {
  auto collect_from = [&](const std::string& label, auto&& parameters) {
    auto ps = plugin_call(label, "parameters()", parameters);
    for (Parameter* q : ps) {
      if (!q || q->value.dtype() != DType::f32 || q->grad.shape() != q->value.shape() ||
          q->grad.dtype() != DType::f32)
        throw PluginError(label + ": parameters() returned a parameter" + (q ? " '" + q->name + "'" : std::string()) +
                          " whose value or gradient is not an f32 tensor of one shape");
      if (q->value.device() != p_.device || q->grad.device() != p_.device)
        throw PluginError(label + ": parameters() returned parameter '" + q->name + "' with its value on " +
                          device_name(q->value.device()) + " and its gradient on " + device_name(q->grad.device()) +
                          ", expected both on " + device_name(p_.device) + " ([train] device)");
      params_.push_back(q);
    }
  };
  auto collect = [&](Encoder& e, const std::string& label) { collect_from(label, [&] { return e.parameters(); }); };
  plugin_call(p_.encoder_label, "build()", [&] { p_.encoder->build(ctx); });
  collect(*p_.encoder, p_.encoder_label);
  const EncoderContext head_ctx{Shape{p_.encoder->output_dim()}, mix64(ctx.seed ^ 0x68656164ull), ctx.precision};
  if (p_.head) {
    plugin_call(p_.head_label, "build()", [&] { p_.head->build(head_ctx); });
    collect(*p_.head, p_.head_label);
  }
  if (p_.memory) {
    memory_ctx.dim = p_.head ? p_.head->output_dim() : p_.encoder->output_dim();
    plugin_call(p_.memory_label, "configure()", [&] { p_.memory->configure(memory_ctx); });
  }
  if (p_.momentum_encoder) {
    // Same plugin, same parameters, same seed: an exact copy to start from.
    plugin_call(p_.encoder_label, "build() of the momentum encoder", [&] { p_.momentum_encoder->build(ctx); });
    momentum_params_ = p_.momentum_encoder->parameters();
    if (p_.momentum_head) {
      plugin_call(p_.head_label, "build() of the momentum head", [&] { p_.momentum_head->build(head_ctx); });
      for (Parameter* q : p_.momentum_head->parameters()) momentum_params_.push_back(q);
    }
    if (momentum_params_.size() != params_.size())
      throw PluginError(p_.encoder_label + ": a second instance has a different number of parameters");
    // build() may have initialised parameters on the default stream, which
    // does not order with the (non-blocking) stream the copies below use.
    device_ops::synchronize_device(p_.device);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (momentum_params_[i]->value.shape() != params_[i]->value.shape())
        throw PluginError(p_.encoder_label + ": a second instance has a parameter '" + momentum_params_[i]->name +
                          "' of another shape");
      if (momentum_params_[i]->value.device() != p_.device)
        throw PluginError(p_.encoder_label + ": a second instance has parameter '" + momentum_params_[i]->name +
                          "' on " + device_name(momentum_params_[i]->value.device()) + ", expected " +
                          device_name(p_.device));
      device_ops::copy_into(momentum_params_[i]->value, params_[i]->value);
    }
  }
  // The towers after the first embed into the first tower's space.
  const std::int64_t dim = p_.head ? p_.head->output_dim() : p_.encoder->output_dim();
  for (std::size_t t = 0; t < p_.towers.size(); ++t) {
    TowerParts& tower = p_.towers[t];
    tower.context.seed = mix64(ctx.seed ^ (0x746f776572ull + t));  // "tower" + t
    tower.context.precision = ctx.precision;
    plugin_call(tower.encoder_label, "build()", [&] { tower.encoder->build(tower.context); });
    collect(*tower.encoder, tower.encoder_label);
    if (tower.head) {
      const EncoderContext tower_head_ctx{Shape{tower.encoder->output_dim()}, mix64(tower.context.seed ^ 0x68656164ull),
                                          ctx.precision};
      plugin_call(tower.head_label, "build()", [&] { tower.head->build(tower_head_ctx); });
      collect(*tower.head, tower.head_label);
    }
    const std::int64_t tower_dim = tower.head ? tower.head->output_dim() : tower.encoder->output_dim();
    if (tower_dim != dim)
      throw ConfigError("tower." + tower.name + ": embeds into " + std::to_string(tower_dim) +
                        " dimensions, the first tower ([encoder]" + (p_.head ? ", [head]" : "") + ") into " +
                        std::to_string(dim) + "; the towers must embed into one space (set their heads' output)");
  }
  encoder_param_count_ = params_.size();
  collect_from(p_.loss_label, [&] { return p_.loss->parameters(); });
  plugin_call(p_.optimizer_label, "configure()", [&] { p_.optimizer->configure(params_); });
}

void Trainer::forward_again(const Tensor& x) {
  auto copy = [](Tensor& dst, const Tensor& src) { device_ops::copy_async(dst, src); };  // in stream order
  // The copies are kept between steps: allocated at the first re-forward.
  std::size_t k = 0;
  for (Encoder* e : {p_.encoder.get(), p_.head.get()})
    if (e)
      for (auto& [name, t] : e->buffers()) {
        if (k == saved_buffers_.size()) saved_buffers_.emplace_back(nullptr, Tensor());
        auto& [buffer, saved] = saved_buffers_[k++];
        if (buffer != t || saved.shape() != t->shape() || saved.dtype() != t->dtype()) {
          buffer = t;
          saved = t->clone();
        } else {
          copy(saved, *t);
        }
      }
  saved_buffers_.resize(k);
  // The outputs were checked at the group's first forward; this one repeats it.
  const Tensor& h = plugin_call(p_.encoder_label, "forward()",
                            [&]() -> const Tensor& { return p_.encoder->forward(x, Mode::train); });
  if (p_.head) plugin_call(p_.head_label, "forward()", [&]() -> const Tensor& { return p_.head->forward(h, Mode::train); });
  for (auto& [buffer, saved] : saved_buffers_) copy(*buffer, saved);
}

// The text " on DEVICE" for error messages, said when the step runs on a
// device or `t` lives elsewhere than the step.
std::string Trainer::where(const Tensor& t) const {
  return p_.device == Device::cpu && t.device() == Device::cpu ? std::string() : std::string(" on ") +
                                                                                      device_name(t.device());
}

// " on DEVICE" of what the step expects, said when the step runs on a device.
std::string Trainer::on_step_device() const {
  return p_.device == Device::cpu ? std::string() : std::string(" on ") + device_name(p_.device);
}

const Tensor& Trainer::forward_checked(Encoder& e, const std::string& label, const Tensor& x, bool check_values,
                                       std::int64_t step) {
  const Tensor& y = plugin_call(label, "forward()", [&]() -> const Tensor& { return e.forward(x, Mode::train); });
  const std::int64_t d = e.output_dim();
  if (y.dtype() != DType::f32 || y.rank() != 2 || y.dim(0) != x.dim(0) || y.dim(1) != d || y.device() != p_.device)
    throw PluginError(label + ": forward() returned a " + dtype_name(y.dtype()) + " tensor of shape " +
                      y.shape().str() + where(y) + ", expected f32 " + Shape{x.dim(0), d}.str() +
                      on_step_device());
  // Counted where y lives; only a tensor with a bad value is copied to the
  // host, to name its first bad element.
  if (check_values && device_ops::count_nonfinite(y) != 0)
    check_finite(device_ops::to_host(y), label, "the output of forward()", step);
  return y;
}

Tensor Trainer::embed_all(Encoder& enc, Encoder* head, Tensor& joined, std::int64_t step) {
  // The final embeddings are checked once, on their host copy, in step().
  auto embed = [&](std::size_t g) -> const Tensor& {
    const Tensor& x = *groups_[g];
    if (const int t = group_tower_[g]; t > 0) {
      TowerParts& tower = p_.towers[static_cast<std::size_t>(t - 1)];
      const Tensor& h = forward_checked(*tower.encoder, tower.encoder_label, x, tower.head != nullptr, step);
      return tower.head ? forward_checked(*tower.head, tower.head_label, h, false, step) : h;
    }
    const Tensor& h = forward_checked(enc, p_.encoder_label, x, head != nullptr, step);
    return head ? forward_checked(*head, p_.head_label, h, false, step) : h;
  };
  // A single group needs no copy; multi-crop and towers join the groups in row order.
  if (groups_.size() == 1) return embed(0);
  std::int64_t at = 0;
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    const Tensor* g = groups_[gi];
    const Tensor& y = embed(gi);
    if (at == 0) joined.ensure({static_cast<std::int64_t>(row_sample_.size()), y.dim(1)}, DType::f32, p_.device);
    device_ops::copy_rows(joined, at, y);  // before the next forward() reuses y (in stream order on a device)
    at += g->dim(0);
  }
  return joined;
}

void Trainer::set_rows(const Batch& batch) {
  input_views_.clear();
  groups_.clear();
  if (p_.device == Device::cpu) {
    groups_.push_back(&batch.images);
    for (const Tensor& t : batch.more_images) groups_.push_back(&t);
  } else {
    // The encoder gets non-owning views of the batch's device images: an
    // encoder that keeps its input for backward() then holds no reference
    // to the copy stage's buffers, which are therefore refilled in place,
    // ordered by the stage's events, instead of being reallocated on the
    // copy stream while this stream may still read the old ones.
    input_views_.reserve(1 + batch.more_images.size());
    auto view_of = [&](const Tensor& t) {
      if (t.device() != p_.device)
        throw UsageError("train step: batch images on " + std::string(device_name(t.device())) + ", expected " +
                         device_name(p_.device) + " (the to_device stage copies them)");
      input_views_.push_back(Tensor::wrap(const_cast<void*>(t.raw()), t.shape(), t.dtype(), t.device()));
    };
    view_of(batch.images);
    for (const Tensor& t : batch.more_images) view_of(t);
    for (const Tensor& v : input_views_) groups_.push_back(&v);
  }
  group_tower_.assign(groups_.size(), 0);
  if (batch.tower_inputs.size() != p_.towers.size())
    throw UsageError("train step: the batch holds inputs for " + std::to_string(batch.tower_inputs.size()) +
                     " towers after the first, the pipeline has " + std::to_string(p_.towers.size()));
  for (std::size_t t = 0; t < batch.tower_inputs.size(); ++t) {
    groups_.push_back(&batch.tower_inputs[t]);
    group_tower_.push_back(static_cast<int>(t + 1));
  }
  // Each view's tower: the first tower's views, then one per further tower.
  view_tower_.clear();
  if (!p_.towers.empty()) {
    view_tower_.assign(static_cast<std::size_t>(batch.views - static_cast<std::int64_t>(p_.towers.size())), 0);
    for (std::size_t t = 0; t < p_.towers.size(); ++t) view_tower_.push_back(static_cast<std::int32_t>(t + 1));
  }
  // Same-size views come as one tensor; multi-crop adds more groups. Row r
  // is view r / n of sample r % n.
  std::int64_t rows = 0;
  for (const Tensor* g : groups_) rows += g->dim(0);
  const std::int64_t n = batch.size();
  row_sample_.resize(static_cast<std::size_t>(rows));
  row_id_.resize(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) row_sample_[r] = r % n, row_id_[r] = batch.ids[r % n];
  row_label_.clear();
  if (!batch.labels.empty()) {
    row_label_.resize(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) row_label_[r] = batch.labels[r % n];
  }
}

// The gradients data-parallel ranks reduce. A loss's own parameters get the
// same gradient on every rank when each computes the global loss (gather):
// summed, it would count R times; without gather each rank's differs and
// they are averaged with the rest.
const std::vector<Parameter*>& Trainer::reduced_params() {
  if (collectives_ && collectives_->global_negatives() && encoder_param_count_ != params_.size()) {
    if (encoder_params_.size() != encoder_param_count_)
      encoder_params_.assign(params_.begin(), params_.begin() + static_cast<std::ptrdiff_t>(encoder_param_count_));
    return encoder_params_;
  }
  return params_;
}

// One step, on the host or on a device alike: every operation that differs
// goes through device_ops. On a device, encoder, head, loss and optimizer
// work on device tensors, all queued on the current stream (the train
// stream); the host waits only where it must read something: the
// embeddings (and a device memory's keys), copied to the host once for a
// host miner, the mining diagnostics, a host memory and the sampler; the
// count of non-finite values in the loss gradient and between encoder and
// head; and the loss value (inside the loss). The mining diagnostics then
// run while the GPU works through the backward pass and the update, which
// stay queued when step() returns, so the next batch's copy and the host
// side of the next step overlap them.
StepOutcome Trainer::step(const Batch& batch, std::int64_t global_step, double lr_scale) {
  // Drop last step's references to encoder outputs and host copies, so that
  // the encoder reuses its buffers and to_host_async() its page-locked
  // tensors in place (a shared tensor would be replaced, synchronously).
  emb_ = Embeddings{};
  emb_host_ = Embeddings{};
  local_host_ = Embeddings{};
  memory_host_ = MemoryView{};
  set_rows(batch);
  const bool labelled = !row_label_.empty();
  step_context_ = StepContext{global_step, batch.epoch, seed_};

  const Tensor z = embed_all(*p_.encoder, p_.head.get(), joined_z_, global_step);
  Tensor keys;
  if (p_.momentum_encoder) keys = embed_all(*p_.momentum_encoder, p_.momentum_head.get(), joined_keys_, global_step);
  const MemoryView* memory = p_.memory ? &p_.memory->view() : nullptr;
  const Embeddings local{z,    &row_sample_, labelled ? &row_label_ : nullptr, batch.views, &row_id_, keys, memory,
                         view_tower_.empty() ? nullptr : &view_tower_, &step_context_};
  // Data-parallel ranks gather the global batch here; a single process sees
  // its own. The loss sees it too, unless the ranks contrast their own rows.
  emb_ = collectives_ ? collectives_->gather(local) : local;
  emb_.context = &step_context_;
  const bool global_loss = !collectives_ || collectives_->global_negatives();

  // Host copies: of the embeddings, for a host miner, the diagnostics, a
  // host memory and the sampler; of a device memory's keys, for a host miner
  // and the diagnostics. One wait. On the host they are the tensors themselves.
  const MemoryView* memory_host = emb_.memory;
  if (memory_host && memory_host->keys.defined() && memory_host->keys.device() != Device::cpu) {
    device_ops::to_host_async(memory_keys_host_, memory_host->keys);
    memory_host_ = MemoryView{memory_keys_host_, memory_host->ids, memory_host->labels};
    memory_host = &memory_host_;
  }
  device_ops::to_host_async(z_host_, emb_.z);
  if (emb_.keys.defined()) device_ops::to_host_async(keys_host_, emb_.keys);
  // Ranks contrasting their own rows: those rows' host copies, for a host
  // miner and the diagnostics.
  const bool local_on_device = !global_loss && local.z.device() != Device::cpu;
  if (local_on_device) {
    device_ops::to_host_async(local_z_host_, local.z);
    if (local.keys.defined()) device_ops::to_host_async(local_keys_host_, local.keys);
  }
  device_ops::finish(p_.device);
  const std::string& z_label = p_.head ? p_.head_label : p_.encoder_label;
  check_finite(z_host_, z_label, "the output of forward()", global_step);
  if (emb_.keys.defined()) check_finite(keys_host_, z_label, "the output of forward()", global_step);
  emb_host_ = Embeddings{z_host_,      emb_.sample, emb_.label, emb_.views, emb_.ids,
                         emb_.keys.defined() ? keys_host_ : Tensor(), memory_host, emb_.view_tower, &step_context_};

  if (local_on_device)
    local_host_ = Embeddings{local_z_host_, local.sample, local.label, local.views, local.ids,
                             local.keys.defined() ? local_keys_host_ : Tensor(), memory_host, local.view_tower,
                             &step_context_};
  else if (!global_loss)
    local_host_ = local;

  // Zeroed before the loss, which adds into its own parameters' gradients.
  for (Parameter* q : params_) q->grad.zero();  // on the current stream
  pairs_.clear();
  // What the miner, the loss and the diagnostics see: the (global) batch, or this rank's rows.
  const Embeddings& for_loss = global_loss ? emb_ : local;
  const Embeddings& for_diagnostics = global_loss ? emb_host_ : local_host_;  // on the host
  const Embeddings& for_miner = p_.miner_device == Device::cpu ? for_diagnostics : for_loss;
  plugin_call(p_.miner_label, "mine()", [&] { p_.miner->mine(for_miner, pairs_); });
  result_.metrics.clear();
  plugin_call(p_.loss_label, "compute()", [&] { p_.loss->compute(for_loss, pairs_, result_); });
  if (!std::isfinite(result_.value))
    throw PluginError(p_.loss_label + ": compute() returned a loss that is not finite (" +
                      std::to_string(result_.value) + ") at step " + std::to_string(global_step));
  const Tensor& grad = result_.grad;
  if (grad.shape() != for_loss.z.shape() || grad.dtype() != DType::f32 || grad.device() != p_.device)
    throw PluginError(p_.loss_label + ": compute() returned a " + dtype_name(grad.dtype()) + " gradient of shape " +
                      grad.shape().str() + where(grad) + ", expected f32 " + for_loss.z.shape().str() +
                      on_step_device());
  if (device_ops::count_nonfinite(grad) != 0)
    check_finite(device_ops::to_host(grad), p_.loss_label, "the gradient compute() returned", global_step);
  // On the host the host copies are the step's own tensors, which the
  // backward pass may reuse: the diagnostics read them first. A device's
  // copies are the host's own, read while the device works.
  const bool diagnose_first = z_host_.raw() == emb_.z.raw();
  if (diagnose_first) diagnose_mining(for_diagnostics, pairs_, global_step).append_to(result_.metrics);

  // This rank's rows of dL/dz: a data-parallel run takes its slice of the
  // global gradient.
  const Tensor dz_local = collectives_ && global_loss ? collectives_->local_gradient(grad) : grad;
  // Backward group by group, last first: layers keep only their last
  // forward, so every group but the last is forwarded again first.
  std::int64_t end = z.dim(0);
  for (std::size_t g = groups_.size(); g-- > 0;) {
    const Tensor& x = *groups_[g];
    const std::int64_t begin = end - x.dim(0);
    // The first tower's groups but its last (multi-crop) are forwarded again;
    // each further tower has one group.
    if (group_tower_[g] == 0 && g + 1 != groups_.size() && group_tower_[g + 1] == 0) forward_again(x);
    const Tensor dz = groups_.size() == 1 ? dz_local : dz_local.rows(begin, end);
    const Tensor* dh = &dz;
    // The last pass completes the gradients: ranks reduce each as it is done.
    const ScopedGradientReadyHook overlap(collectives_ && g == 0 ? collectives_->backward_hook(reduced_params()) : nullptr);
    TowerParts* tower = group_tower_[g] > 0 ? &p_.towers[static_cast<std::size_t>(group_tower_[g] - 1)] : nullptr;
    Encoder& encoder = tower ? *tower->encoder : *p_.encoder;
    Encoder* head = tower ? tower->head.get() : p_.head.get();
    const std::string& encoder_label = tower ? tower->encoder_label : p_.encoder_label;
    const std::string& head_label = tower ? tower->head_label : p_.head_label;
    if (head) {
      dh = &plugin_call(head_label, "backward()", [&]() -> const Tensor& { return head->backward(dz, true); });
      if (dh->rank() != 2 || dh->dim(0) != x.dim(0) || dh->dim(1) != encoder.output_dim() ||
          dh->dtype() != DType::f32 || dh->device() != p_.device)
        throw PluginError(head_label + ": backward() returned an input gradient of shape " + dh->shape().str() +
                          where(*dh) + ", expected f32 " + Shape{x.dim(0), encoder.output_dim()}.str() +
                          on_step_device());
    }
    plugin_call(encoder_label, "backward()", [&] { encoder.backward(*dh, false); });
    end = begin;
  }
  // Data-parallel ranks all-reduce the parameters' gradients here.
  if (collectives_) collectives_->reduce_gradients(reduced_params());
  plugin_call(p_.optimizer_label, "step()", [&] { p_.optimizer->step(OptimizerStep{global_step, lr_scale}); });
  if (p_.momentum_encoder) {
    // θ_k ← m·θ_k + (1 − m)·θ_q (MoCo), after the optimizer's update.
    const float m = static_cast<float>(p_.memory->encoder_momentum());
    for (std::size_t i = 0; i < momentum_params_.size(); ++i)
      device_ops::momentum_update(momentum_params_[i]->value, params_[i]->value, m);
  }
  // Before the memory's update, which may change a host memory's keys.
  if (!diagnose_first) diagnose_mining(for_diagnostics, pairs_, global_step).append_to(result_.metrics);
  if (p_.memory) {
    const Embeddings& for_memory = p_.memory_device == Device::cpu ? emb_host_ : emb_;
    plugin_call(p_.memory_label, "update()", [&] { p_.memory->update(for_memory); });
  }

  StepOutcome out;
  out.loss = result_.value;
  out.lr = p_.optimizer->learning_rate();
  out.metrics = result_.metrics;
  return out;
}

}  // namespace contra::runtime
