// Binding: a PipelineSpec's plugin tables against the plugins found on the
// plugin path. Config reads; this part loads libraries.
#include "assembly/load_pipeline.hpp"

#include "device/cuda_library.hpp"
#include "loader/registry.hpp"

#include <contra/errors.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <optional>

namespace contra::runtime {
namespace fs = std::filesystem;

namespace {

// "a loss", "an encoder".
std::string a_kind(PluginKind k) {
  std::string name = kind_name(k);
  bool vowel = std::string("aeiou").find(name[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + name;
}

// A [data] value as a value of the source parameter `spec` declares, or
// nothing when the two are not the same setting (another type) or the value
// is outside what the source accepts.
std::optional<Value> as_parameter(const Value& v, const ParamSpec& spec) {
  std::optional<Value> out;
  if (spec.type == ParamType::integer && std::holds_alternative<std::int64_t>(v)) out = v;
  else if (spec.type == ParamType::real && std::holds_alternative<double>(v)) out = v;
  else if (spec.type == ParamType::real && std::holds_alternative<std::int64_t>(v))
    out = Value(static_cast<double>(std::get<std::int64_t>(v)));
  else if (spec.type == ParamType::string && std::holds_alternative<std::string>(v)) out = v;
  if (!out) return out;
  if (const auto* s = std::get_if<std::string>(&*out)) {
    if (!spec.choices.empty() && std::find(spec.choices.begin(), spec.choices.end(), *s) == spec.choices.end())
      return std::nullopt;
  } else {
    const double x = std::holds_alternative<double>(*out) ? std::get<double>(*out)
                                                          : static_cast<double>(std::get<std::int64_t>(*out));
    if ((spec.min && x < *spec.min) || (spec.max && x > *spec.max)) return std::nullopt;
  }
  return out;
}

// A source's parameters named like a [data] key (source_data_keys()) and
// left unset in its table take [data]'s value and location.
Params with_data_settings(const Params& params, const Schema& schema, const Params& data, bool training_source) {
  std::vector<Params::Entry> entries = params.entries();
  bool changed = false;
  for (const std::string& k : source_data_keys(training_source)) {
    const ParamSpec* spec = schema.find(k);
    auto mine = std::find_if(entries.begin(), entries.end(), [&](const Params::Entry& e) { return e.name == k; });
    const auto& given_all = data.entries();
    auto given = std::find_if(given_all.begin(), given_all.end(), [&](const Params::Entry& e) { return e.name == k; });
    if (!spec || mine == entries.end() || mine->set || given == given_all.end()) continue;
    if (std::optional<Value> v = as_parameter(given->value, *spec)) {
      mine->value = std::move(*v);
      mine->where = given->where;
      changed = true;
    }
  }
  return changed ? Params(params.prefix(), params.table(), std::move(entries)) : params;
}

}  // namespace

void bind_plugins(PipelineSpec& spec, const PluginRegistry& registry, Diagnostics& out) {
  const Device device = pipeline_device(spec);
  auto bind = [&](PluginSpec& ps) {
    if (ps.name.empty()) return;  // already reported
    std::string key = ps.section + ".plugin";
    const PluginRecord* rec = nullptr;
    try {
      rec = registry.resolve(ps.kind, ps.name, device);
    } catch (const PluginError& e) {
      std::string msg = e.what();
      if (device != Device::cpu)
        msg += std::string(" (needed for [train] device = \"") + device_name(device) + "\")";
      out.push_back({ps.name_where, key, msg});
      return;
    }
    if (!rec) {
      std::string msg;
      auto kinds = registry.kinds_of(ps.name);
      if (!kinds.empty()) {
        msg = "'" + ps.name + "' is " + a_kind(kinds[0]) + " plugin, not " + a_kind(ps.kind) + " plugin";
      } else {
        auto names = registry.names(ps.kind);
        msg = std::string("unknown ") + kind_name(ps.kind) + " plugin '" + ps.name + "'";
        std::string hint = closest_match(ps.name, names);
        if (!hint.empty()) msg += "; did you mean '" + hint + "'?";
        else if (!names.empty()) {
          msg += "; available: ";
          for (std::size_t i = 0; i < names.size(); ++i) msg += (i ? ", " : "") + names[i];
        } else msg += std::string("; no ") + kind_name(ps.kind) + " plugin was found on the plugin path";
        for (const auto& p : registry.problems()) msg += "\n  note: " + p.message;
      }
      out.push_back({ps.name_where, key, msg});
      return;
    }
    ps.params = rec->schema.bind(ps.raw, ps.section, ps.where, out);
    if (ps.kind == PluginKind::source)
      ps.params = with_data_settings(ps.params, rec->schema, spec.data, &ps == &spec.source);
    ps.library = rec->library;
    ps.device = rec->device;
  };
  for (PluginSpec* ps : {&spec.source, &spec.sampler, &spec.encoder, &spec.head, &spec.memory, &spec.miner,
                         &spec.loss, &spec.optimizer})
    bind(*ps);
  for (auto& v : spec.views)
    for (auto& a : v.chain) bind(a);
  for (PluginSpec* ps : {&spec.eval_train, &spec.eval_test}) bind(*ps);
  for (auto& a : spec.eval_chain) bind(a);
  for (auto& e : spec.evaluators) bind(e);
  for (auto& t : spec.towers) {
    for (PluginSpec* ps : {&t.tokenizer, &t.encoder, &t.head}) bind(*ps);
    for (auto& a : t.chain) bind(a);
  }
}

void scan_plugin_path(const PipelineSpec& spec, PluginRegistry& registry) {
  if (pipeline_device(spec) != Device::cpu) registry.include_device_builds();
  if (auto dir = default_plugin_dir(); !dir.empty() && fs::is_directory(dir)) registry.scan_directory(dir);
  for (const auto& d : env_plugin_dirs()) registry.scan_directory(d);
  for (const auto& p : spec.plugin_paths) {
    if (fs::is_directory(p)) registry.scan_directory(p);
    else {
      try {
        registry.load_library(p);
      } catch (const PluginError& e) {
        throw ConfigError(spec.file + ": error: plugins.paths: " + e.what());
      }
    }
  }
}

std::optional<PipelineSpec> try_load_pipeline(const std::string& file, const std::vector<std::string>& overrides,
                                              PluginRegistry& registry, Diagnostics& d) {
  std::optional<PipelineSpec> spec = read_pipeline(file, overrides, d);
  if (spec && pipeline_device(*spec) == Device::cuda && !built_with_cuda()) {
    // Said once, instead of "no cuda build" for every plugin.
    d.push_back({pipeline_device_location(*spec), "train.device",
                 "\"cuda\", but this build of contra has no CUDA support (built with CONTRA_CUDA=OFF or "
                 "without a CUDA compiler)"});
  } else if (spec) {
    scan_plugin_path(*spec, registry);
    bind_plugins(*spec, registry, d);
  }
  if (!d.empty()) {
    // In file order; problems without a line (missing sections) last.
    std::stable_sort(d.begin(), d.end(), [](const Diagnostic& a, const Diagnostic& b) {
      auto key = [](const Diagnostic& x) {
        return std::pair(x.where.line > 0 ? x.where.line : INT32_MAX, x.where.column);
      };
      return key(a) < key(b);
    });
    return std::nullopt;
  }
  spec->resolved_toml = resolved_with_defaults(*spec);
  return spec;
}

PipelineSpec load_pipeline(const std::string& file, const std::vector<std::string>& overrides,
                           PluginRegistry& registry) {
  Diagnostics d;
  std::optional<PipelineSpec> spec = try_load_pipeline(file, overrides, registry, d);
  if (!spec) {
    std::string msg = format_diagnostics(d);
    if (!msg.empty() && msg.back() == '\n') msg.pop_back();
    throw ConfigError(msg);
  }
  return std::move(*spec);
}

}  // namespace contra::runtime
