#include "graph/memory_estimate.hpp"

#include "assembly/make_plugin.hpp"
#include "graph/executor.hpp"

#include <contra/errors.hpp>
#include <contra/guard.hpp>

#include <malloc.h>

#include <algorithm>
#include <limits>
#include <optional>

namespace contra::runtime {

namespace {

std::uint64_t u64(std::int64_t v) { return v > 0 ? static_cast<std::uint64_t>(v) : 0; }

std::uint64_t image_bytes(const ImageFormat& f) {
  return mul_bytes(mul_bytes(mul_bytes(u64(f.shape.height), u64(f.shape.width)), u64(f.shape.channels)),
                   dtype_size(f.dtype));
}

std::string chw_text(const ImageShape& s) {
  return std::to_string(s.channels) + "×" + std::to_string(s.height) + "×" + std::to_string(s.width);
}

// An integer parameter of a bound table, when it has one.
bool int_param(const Params& params, const char* name, std::int64_t& out) {
  const auto& entries = params.entries();
  if (std::none_of(entries.begin(), entries.end(), [&](const Params::Entry& e) { return e.name == name; }))
    return false;
  try {
    out = params.get<std::int64_t>(name);
    return true;
  } catch (const Error&) {
    return false;
  }
}

// Where a view's image size comes from: the last plugin of its chain that
// sets a `size` or changes the height or width ("augment.chain[0].size =
// 224, 'random_resized_crop'"), else the source.
std::string size_origin(const ViewSpec& vs, const AugmentChain& chain, const PipelineSpec& spec) {
  const std::vector<ImageFormat>& f = chain.formats();
  for (std::size_t i = std::min(vs.chain.size(), f.size() - 1); i-- > 0;) {
    const PluginSpec& ps = vs.chain[i];
    std::int64_t size = 0;
    const bool set = std::any_of(ps.raw.begin(), ps.raw.end(), [](const RawParam& r) { return r.key == "size"; }) &&
                     int_param(ps.params, "size", size);
    if (set) return ps.section + ".size = " + std::to_string(size) + ", '" + ps.name + "'";
    if (f[i + 1].shape.height != f[i].shape.height || f[i + 1].shape.width != f[i].shape.width)
      return ps.section + " '" + ps.name + "'";
  }
  return "the images of source '" + spec.source.name + "'";
}

// Host bytes of tensors (device ones are left out), and whether any was on a device.
struct Count {
  std::uint64_t bytes = 0, elements = 0;
  bool device = false;
  void add(const Tensor& t) {
    if (!t.defined()) return;
    if (t.device() != Device::cpu) {
      device = true;
      return;
    }
    bytes = add_bytes(bytes, t.nbytes());
    elements = add_bytes(elements, u64(t.numel()));
  }
};

Count encoder_count(Encoder& e, const std::string& label, std::uint64_t& parameters) {
  Count c;
  parameters = 0;
  const auto params = guarded(label + ": parameters() failed", [&] { return e.parameters(); });
  for (const Parameter* q : params) {
    if (!q) continue;
    c.add(q->value);
    c.add(q->grad);
    parameters = add_bytes(parameters, u64(q->value.numel()));
  }
  const auto buffers = guarded(label + ": buffers() failed", [&] { return e.buffers(); });
  for (const auto& [name, t] : buffers)
    if (t) c.add(*t);
  return c;
}

// Bytes malloc has handed out and not had back, over all its arenas and
// its mmapped chunks (glibc's mallinfo2()): what tensors, oneDNN's
// scratchpads and a plugin's own vectors take. Nothing elsewhere.
std::optional<std::int64_t> heap_in_use() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 m = mallinfo2();
  return static_cast<std::int64_t>(m.uordblks + m.hblkhd);
#else
  return std::nullopt;
#endif
}

// What a fresh encoder and head, built as the trainer builds them, keep
// after a train-mode forward() of `rows` rows, and after its backward(): the
// activations the Encoder role does not report, measured. The instances go
// when it returns, and with them what they allocated; what stays after them
// (oneDNN's cached primitives, its scratchpad grown) is `global`: counted
// apart, as the next probe finds it there already.
struct Retained {
  std::int64_t forward = 0, backward = 0, global = 0;
};
Retained retained_by(const Pipeline& p, const PluginRegistry& reg, std::int64_t rows) {
  const PipelineSpec& spec = *p.spec;
  const std::optional<std::int64_t> start = heap_in_use();
  std::optional<std::int64_t> built, forward, backward;
  {
    const std::shared_ptr<Encoder> enc = make_plugin<Encoder>(reg, spec.encoder);
    const std::shared_ptr<Encoder> head = spec.head.name.empty() ? nullptr : make_plugin<Encoder>(reg, spec.head);
    const Precision precision = p.settings.train.precision;
    enc->build(EncoderContext{p.encoder_input(), p.settings.seed, precision});
    if (head) head->build(EncoderContext{Shape{enc->output_dim()}, p.settings.seed, precision});
    const Shape in = p.encoder_input();
    Tensor x = Tensor::empty({rows, in[0], in[1], in[2]}, DType::f32);
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(i % 7) / 7.0f;
    Tensor dy = Tensor::empty({rows, (head ? head : enc)->output_dim()}, DType::f32);
    for (std::int64_t i = 0; i < dy.numel(); ++i) dy.data<float>()[i] = static_cast<float>(i % 5) / 5.0f - 0.4f;
    built = heap_in_use();
    const Tensor& h = enc->forward(x, Mode::train);
    if (head) head->forward(h, Mode::train);
    forward = heap_in_use();
    if (head) enc->backward(head->backward(dy, true), false);
    else enc->backward(dy, false);
    backward = heap_in_use();
  }
  const std::int64_t global = *heap_in_use() - *start;
  return {*forward - *built - global, *backward - *built - global, global};
}

// A + B·rows from two probes of m1 < m2 rows, at `rows`; never below 0.
std::uint64_t extrapolate(std::int64_t at_m1, std::int64_t at_m2, std::int64_t m1, std::int64_t m2,
                          std::uint64_t rows) {
  const double per_row = std::max(0.0, static_cast<double>(at_m2 - at_m1) / static_cast<double>(m2 - m1));
  const double fixed = std::max(0.0, static_cast<double>(at_m1) - per_row * static_cast<double>(m1));
  const double total = fixed + per_row * static_cast<double>(rows);
  return total >= 1.8e19 ? std::numeric_limits<std::uint64_t>::max() : static_cast<std::uint64_t>(total);
}

// The activations of the first step, measured on two fresh instances of
// 2 and 4 rows and extrapolated to `rows` (linear in the rows: the layers'
// buffers are; what does not grow with them, oneDNN's primitives, reordered
// weights, is the intercept).
struct ActivationProbe {
  bool measured = false;
  std::uint64_t train = 0, forward = 0;  ///< at `rows`: after forward and backward; after forward
  std::int64_t m1 = 2, m2 = 4, at_m1 = 0, at_m2 = 0;
  std::string why_not;
};
ActivationProbe probe(const Pipeline& p, const PluginRegistry& reg, std::uint64_t rows, std::uint64_t instance_bytes) {
  ActivationProbe r;
  if (!heap_in_use()) {
    r.why_not = "malloc cannot count its bytes here (glibc 2.33 or later can)";
    return r;
  }
  // Each probe builds the encoder (and head) once more, for as long as it runs.
  if (instance_bytes > available_memory().bytes / 2) {
    r.why_not = "a second instance of the encoder, " + bytes_text(instance_bytes) + ", would not fit beside it";
    return r;
  }
  try {
    const Retained a = retained_by(p, reg, r.m1), b = retained_by(p, reg, r.m2);
    r.at_m1 = std::max<std::int64_t>(0, a.backward);
    r.at_m2 = std::max<std::int64_t>(0, b.backward);
    // What the first probe left behind, the run's first step leaves too.
    const std::uint64_t global = u64(a.global);
    r.train = add_bytes(extrapolate(a.backward, b.backward, r.m1, r.m2, rows), global);
    r.forward = extrapolate(a.forward, b.forward, r.m1, r.m2, rows);
    r.measured = true;
  } catch (...) {
    r.why_not = "a train-mode forward and backward of " + std::to_string(r.m1) + " rows failed: " +
                current_exception_message();
  }
  return r;
}

}  // namespace

std::uint64_t MemoryEstimate::total() const {
  std::uint64_t t = 0;
  for (const MemoryItem& i : items) t = add_bytes(t, i.bytes);
  return t;
}

std::uint64_t MemoryEstimate::held() const {
  std::uint64_t t = 0;
  for (const MemoryItem& i : items)
    if (i.held) t = add_bytes(t, i.bytes);
  return t;
}

const MemoryItem* MemoryEstimate::largest() const {
  const MemoryItem* best = nullptr;
  for (const MemoryItem& i : items)
    if (!best || i.bytes > best->bytes) best = &i;
  return best;
}

std::string MemoryEstimate::summary() const {
  std::vector<const MemoryItem*> order;
  for (const MemoryItem& i : items) order.push_back(&i);
  std::stable_sort(order.begin(), order.end(),
                   [](const MemoryItem* a, const MemoryItem* b) { return a->bytes > b->bytes; });
  std::string s = "about " + bytes_text(total()) + " by the first step";
  for (std::size_t k = 0; k < order.size(); ++k)
    s += (k ? ", " : ": ") + order[k]->what + (order[k]->lower_bound ? " ≥ " : " ") + bytes_text(order[k]->bytes);
  if (!left_out.empty()) s += "; " + left_out;
  return s;
}

MemoryEstimate estimate_batches(const Pipeline& p, std::int64_t batch_samples) {
  const PipelineSpec& spec = *p.spec;
  const std::uint64_t n = u64(batch_samples);
  const int prefetch = p.settings.runtime.prefetch;
  const std::uint64_t slots = u64(max_batches_alive(prefetch) + 1);
  // One slot: the decoded images, the augmentation buffers, the batch.
  const ImageFormat decoded{p.source->info().shape, DType::u8};
  std::uint64_t slot = mul_bytes(n, image_bytes(decoded));
  std::string views;
  bool one_format = true;
  for (std::size_t v = 0; v < p.views.size(); ++v) {
    const ViewChain& vc = p.views[v];
    const std::uint64_t count = u64(vc.count);
    const ImageFormat out{vc.chain.output_format().shape, DType::f32};
    slot = add_bytes(slot, mul_bytes(mul_bytes(n, count), add_bytes(image_bytes(out), vc.chain.scratch_bytes())));
    one_format = one_format && out.shape == p.views.front().chain.output_format().shape;
  }
  // "2 views ([augment] views = 2) of f32 1×28×28 (augment.chain[0].size = 28, 'random_resized_crop')"
  const bool shared = spec.views.size() == 1 && !spec.views.front().chain.empty() &&
                      spec.views.front().chain.front().section.rfind("augment.chain", 0) == 0;
  const std::int64_t total_views = spec.total_views();
  auto view_text = [&](std::size_t v) {
    return "f32 " + chw_text(p.views[v].chain.output_format().shape) + " (" +
           size_origin(spec.views[v], p.views[v].chain, spec) + ")";
  };
  if (one_format) {
    views = std::to_string(total_views) + (total_views == 1 ? " view" : " views") +
            (shared ? " ([augment] views = " + std::to_string(total_views) + ")" : std::string()) + " of " +
            view_text(0);
  } else {
    views = "(";
    for (std::size_t v = 0; v < p.views.size(); ++v)
      views += (v ? " + " : "") + std::to_string(p.views[v].count) + (p.views[v].count == 1 ? " view" : " views") +
               " of " + view_text(v);
    views += ")";
  }
  std::int64_t batch_size = 0;
  const std::string samples = int_param(spec.sampler.params, "batch_size", batch_size) && batch_size == batch_samples
                                  ? "sampler.batch_size = " + std::to_string(batch_samples)
                                  : std::to_string(batch_samples) + " samples (sampler '" + spec.sampler.name +
                                        "', its first batch)";
  MemoryEstimate e;
  e.items.push_back({"batches in flight", mul_bytes(slots, slot),
                     std::to_string(slots) + " batch slots ([runtime] prefetch = " + std::to_string(prefetch) +
                         ", plus " + std::to_string(slots - u64(prefetch)) + ") × " + samples + " × " + views +
                         ", with their decoded images and augmentation buffers",
                     false, false});
  return e;
}

void add_trainer_memory(MemoryEstimate& e, const Pipeline& p, const PluginRegistry& registry,
                        std::int64_t batch_samples) {
  const PipelineSpec& spec = *p.spec;
  const TrainerParts& parts = p.parts;
  bool on_device = false;
  std::uint64_t instance = 0;  // the encoder's and head's bytes: what a probe builds again
  auto add_encoder = [&](const std::shared_ptr<Encoder>& enc, const PluginSpec& ps, const char* what,
                         const char* whose) {
    if (!enc) return;
    std::uint64_t parameters = 0;
    const Count c = encoder_count(*enc, ps.label(), parameters);
    on_device = on_device || c.device;
    if (c.bytes == 0) return;
    if (enc == parts.encoder || enc == parts.head) instance = add_bytes(instance, c.bytes);
    e.items.push_back({what, c.bytes,
                       "[" + ps.section + "] '" + ps.name + "'" + whose + ": " + std::to_string(parameters) +
                           " parameters, f32 weights and gradients (and running statistics), from its tensors",
                       true, false});
  };
  add_encoder(parts.encoder, spec.encoder, "encoder", "");
  add_encoder(parts.head, spec.head, "head", "");
  add_encoder(parts.momentum_encoder, spec.encoder, "momentum encoder", ", its momentum copy");
  add_encoder(parts.momentum_head, spec.head, "momentum head", ", its momentum copy");
  // The further towers' weights (their activations are not measured: the
  // probe builds the first tower only).
  for (std::size_t t = 0; t < parts.towers.size(); ++t) {
    add_encoder(parts.towers[t].encoder, spec.towers[t].encoder, "tower encoder", "");
    add_encoder(parts.towers[t].head, spec.towers[t].head, "tower head", "");
  }

  // A plugin's state() tensors: their host bytes, and the largest, as "queue.keys [4096, 128] f32".
  auto state_of = [&](const std::string& label, auto&& fill, std::string& largest) {
    std::vector<std::pair<std::string, Tensor*>> state;
    guarded(label + ": state() failed", [&] { fill(state); });
    Count c;
    std::uint64_t most = 0;
    for (const auto& [name, t] : state) {
      if (!t) continue;
      c.add(*t);
      if (t->defined() && t->device() == Device::cpu && t->nbytes() > most) {
        most = t->nbytes();
        largest = name + " " + t->shape().str() + " " + dtype_name(t->dtype());
      }
    }
    on_device = on_device || c.device;
    return c;
  };
  std::string largest;
  const Count opt = state_of(parts.optimizer_label, [&](auto& out) { parts.optimizer->state(out); }, largest);
  if (opt.bytes)
    e.items.push_back({"optimizer state", opt.bytes,
                       "[optimizer] '" + spec.optimizer.name + "': " + std::to_string(opt.elements) +
                           " values in its state() tensors (moment estimates or momentum, per parameter)",
                       true, false});

  std::int64_t keys = 0;
  if (parts.memory) {
    largest.clear();
    const Count mem = state_of(parts.memory_label, [&](auto& out) { parts.memory->state(out); }, largest);
    keys = guarded(parts.memory_label + ": view() failed", [&] { return parts.memory->view().size(); });
    std::int64_t size = 0;
    const std::string length =
        int_param(spec.memory.params, "size", size) ? " (memory.size = " + std::to_string(size) + ")" : "";
    if (mem.bytes)
      e.items.push_back({"memory", mem.bytes,
                         "[memory] '" + spec.memory.name + "'" + length + ": its state() tensors" +
                             (largest.empty() ? std::string() : ", the largest " + largest),
                         true, false});
  }

  if (parts.device == Device::cpu) {
    // The first step. M rows: every view of every sample (a further tower's
    // view included, for the similarities).
    const std::uint64_t m = mul_bytes(u64(batch_samples), u64(spec.total_views()));
    const std::uint64_t loss_rows = mul_bytes(u64(batch_samples), u64(spec.total_views()) + spec.towers.size());
    const Shape in = p.encoder_input();
    const std::int64_t d_enc = parts.encoder->output_dim(), d_head = parts.head ? parts.head->output_dim() : 0;
    const std::uint64_t per_row = add_bytes(u64(in.numel()), mul_bytes(2, u64(d_enc + d_head)));
    const std::uint64_t floor = mul_bytes(mul_bytes(m, per_row), sizeof(float));
    const std::string floor_how = "M = " + std::to_string(m) + " rows × (" + in.str() + " input copy + " +
                                  (d_head ? std::to_string(d_enc) + " + " + std::to_string(d_head) + " outputs"
                                          : std::to_string(d_enc) + " outputs") +
                                  " and their gradients) f32";
    // The Encoder role does not report the activations an encoder keeps for
    // backward(): measured on fresh instances (probe()), when that can be
    // done; else the floor of what any encoder keeps.
    const ActivationProbe probed = probe(p, registry, m, instance);
    if (probed.measured) {
      const std::uint64_t train = std::max(floor, probed.train);
      e.items.push_back({"encoder activations", train,
                         "measured: a fresh " + std::string(parts.head ? "encoder and head keep" : "encoder keeps") +
                             " " + bytes_text(u64(probed.at_m1)) + " after a train-mode forward and backward of " +
                             std::to_string(probed.m1) + " rows, " + bytes_text(u64(probed.at_m2)) + " of " +
                             std::to_string(probed.m2) + ", extrapolated to M = " + std::to_string(m) + " rows",
                         false, false});
      if (parts.momentum_encoder)
        e.items.push_back({"momentum encoder activations", probed.forward,
                           "measured as the encoder's, after a train-mode forward only (the keys), at M = " +
                               std::to_string(m) + " rows",
                           false, false});
    } else {
      e.items.push_back({"encoder activations", floor,
                         "at least " + floor_how + "; the Encoder role does not report the activations it keeps "
                                                   "for backward(), and they could not be measured: " + probed.why_not,
                         false, true});
    }
    e.items.push_back({"similarities", mul_bytes(mul_bytes(loss_rows, add_bytes(loss_rows, u64(keys))), sizeof(float)),
                       "at least one M × (M" + (keys ? " + " + std::to_string(keys) + " memory keys" : std::string()) +
                           ") f32 matrix for the miner and loss, M = " + std::to_string(loss_rows) + " rows (" +
                           std::to_string(batch_samples) + " samples × " +
                           std::to_string(u64(spec.total_views()) + spec.towers.size()) + " views)",
                       false, true});
  }
  if (on_device || parts.device != Device::cpu) e.left_out = "the GPU's memory is not estimated";
}

AvailableMemory pipeline_memory_budget(const MemoryEstimate& e) {
  AvailableMemory a = available_memory();
  a.bytes = add_bytes(a.bytes, e.held());
  return a;
}

AvailableMemory require_pipeline_memory(const MemoryEstimate& e, const PipelineSpec& spec) {
  const AvailableMemory budget = pipeline_memory_budget(e);
  const MemoryItem* big = e.largest();
  if (!big || e.total() <= budget.bytes) return budget;
  throw ConfigError(spec.file + ": the pipeline needs about " + bytes_text(e.total()) + " by its first step (" +
                    big->what + (big->lower_bound ? " ≥ " : " ") + bytes_text(big->bytes) + ": " + big->how +
                    "); this machine has " + budget.text());
}

}  // namespace contra::runtime
