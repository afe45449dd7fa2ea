#include "checkpoint.hpp"

#include "safetensors.hpp"
#include "device/device_ops.hpp"

#include <contra/device.hpp>
#include <contra/errors.hpp>
#include <contra/version.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

namespace contra::runtime {

namespace {

void add_encoder(std::vector<std::pair<std::string, Tensor*>>& out, const std::string& prefix, Encoder* e) {
  if (!e) return;
  for (Parameter* p : e->parameters()) out.emplace_back(prefix + p->name, &p->value);
  for (auto& [name, t] : e->buffers()) out.emplace_back(prefix + name, t);
}

void restore(const std::string& path, const SafetensorsFile& file,
             const std::vector<std::pair<std::string, Tensor*>>& state) {
  for (const auto& [name, t] : state) {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end())
      throw DataError(path + ": checkpoint has no tensor '" + name + "'; was it written by another pipeline?");
    const Tensor& src = it->second;
    if (src.shape() != t->shape() || src.dtype() != t->dtype())
      throw DataError(path + ": tensor '" + name + "' is " + dtype_name(src.dtype()) + " " + src.shape().str() +
                      " in the checkpoint, " + dtype_name(t->dtype()) + " " + t->shape().str() + " in this pipeline");
    if (t->device() != Device::cpu) {
      // Into the tensor's own device storage, in place: plugins keep
      // pointers to it (optimizer state, layers' views).
      device_ops::copy_into(*t, src);
      continue;
    }
    std::memcpy(t->raw(), src.raw(), src.nbytes());
  }
}

std::int64_t step_of(const std::string& path, const SafetensorsFile& file) {
  auto it = file.metadata.find("step");
  if (it == file.metadata.end()) throw DataError(path + ": not a contra checkpoint (no 'step' in its metadata)");
  const std::string& text = it->second;
  std::int64_t step = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), step);
  if (ec != std::errc() || end != text.data() + text.size() || step < 0)
    throw DataError(path + ": its 'step' metadata is \"" + text.substr(0, 40) +
                    "\", expected the index of a step (an integer >= 0)");
  return step;
}

bool is_model_state(const std::string& name) {
  for (const char* prefix : {"encoder.", "head.", "momentum_encoder.", "momentum_head.", "tower.", "loss."})
    if (name.rfind(prefix, 0) == 0) return true;
  return false;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// What puts a state outside `bounds` ("" when nothing does): the first
// non-finite value of any tensor, or the first model value beyond the bound.
std::string divergence(const std::vector<std::pair<std::string, const Tensor*>>& state, const StateBounds& bounds) {
  for (const auto& [name, t] : state) {
    if (t->dtype() != DType::f32) continue;
    const float* p = t->data<float>();
    const bool bounded = bounds.max_abs_weight > 0 && is_model_state(name);
    for (std::int64_t i = 0; i < t->numel(); ++i) {
      if (!std::isfinite(p[i]))
        return name + " holds " + number_text(p[i]) + " at flat index " + std::to_string(i);
      if (bounded && std::fabs(p[i]) > bounds.max_abs_weight)
        return name + " holds " + number_text(p[i]) + " at flat index " + std::to_string(i) + ", beyond " +
               bounds.setting + " = " + number_text(bounds.max_abs_weight);
    }
  }
  return "";
}

}  // namespace

std::vector<std::pair<std::string, Tensor*>> training_state(const TrainerParts& parts) {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (const auto& [prefix, e] : named_encoders(parts)) add_encoder(out, prefix, e);
  // A loss's learnt parameters (CLIP's temperature).
  if (parts.loss)
    for (Parameter* p : parts.loss->parameters()) out.emplace_back("loss." + p->name, &p->value);
  if (parts.optimizer) {
    std::vector<std::pair<std::string, Tensor*>> s;
    parts.optimizer->state(s);
    // Optimizers name their state after the parameters, and an encoder and a
    // head may share parameter names (mlp as both): the second and later
    // occurrences of a name get "@2", "@3", ... (in the optimizer's order,
    // the same at every save and load).
    std::map<std::string, int> seen;
    for (auto& [n, t] : s) {
      const int k = ++seen[n];
      out.emplace_back("optimizer." + (k == 1 ? n : n + "@" + std::to_string(k)), t);
    }
  }
  if (parts.memory) {
    std::vector<std::pair<std::string, Tensor*>> s;
    parts.memory->state(s);
    for (auto& [n, t] : s) out.emplace_back("memory." + n, t);
  }
  return out;
}

std::uint64_t state_digest(const TrainerParts& parts) {
  // FNV-1a over every tensor's bytes, in checkpoint order.
  std::uint64_t h = 1469598103934665603ull;
  for (auto& [name, t] : training_state(parts)) {
    const Tensor host = t->device() == Device::cpu ? *t : device_ops::to_host(*t);
    const auto* p = static_cast<const unsigned char*>(host.raw());
    for (std::size_t i = 0; i < host.nbytes(); ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  return h;
}

void save_checkpoint(const std::string& path, const TrainerParts& parts, std::int64_t step,
                     const std::map<std::string, std::string>& metadata, const StateBounds& bounds) {
  std::vector<std::pair<std::string, const Tensor*>> tensors;
  const auto state = training_state(parts);
  // Device tensors (a [train] device = "cuda" run) are written from host
  // copies, made on the current stream after the steps queued before.
  std::vector<Tensor> host_copies;
  host_copies.reserve(state.size());
  for (auto& [n, t] : state) {
    if (t->device() == Device::cpu) {
      tensors.emplace_back(n, t);
    } else {
      host_copies.push_back(device_ops::to_host(*t));
      tensors.emplace_back(n, &host_copies.back());
    }
  }
  if (std::string what = divergence(tensors, bounds); !what.empty())
    throw DivergedState("step " + std::to_string(step + 1) + ": " + what + ": the training has diverged, and " + path +
                        " is not written");
  std::map<std::string, std::string> meta = metadata;
  meta["step"] = std::to_string(step);
  meta["format"] = "contra checkpoint";
  meta["sdk_version"] = sdk_version;
  write_safetensors(path, tensors, meta);
}

std::int64_t load_checkpoint(const std::string& path, const TrainerParts& parts,
                             const std::function<void(const std::map<std::string, std::string>&)>& check_run) {
  SafetensorsFile file = read_safetensors(path);
  const std::int64_t step = step_of(path, file);  // before any state is touched
  if (check_run) check_run(file.metadata);
  restore(path, file, training_state(parts));
  return step;
}

namespace {
// The parameters and buffers of the named encoders alone, from `path`.
std::int64_t load_encoders(const std::string& path, const std::vector<std::pair<std::string, Encoder*>>& encoders) {
  SafetensorsFile file = read_safetensors(path);
  std::vector<std::pair<std::string, Tensor*>> state;
  for (const auto& [prefix, e] : encoders) add_encoder(state, prefix, e);
  const std::int64_t step = step_of(path, file);
  restore(path, file, state);
  return step;
}
}  // namespace

std::int64_t load_encoder(const std::string& path, Encoder& encoder) {
  return load_encoders(path, {{"encoder.", &encoder}});
}

std::int64_t load_model(const std::string& path, const TrainerParts& parts) {
  return load_encoders(path, named_encoders(parts));
}

}  // namespace contra::runtime
