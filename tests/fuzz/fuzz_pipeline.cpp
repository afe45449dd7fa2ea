// Pipeline files. The bytes up to the first NUL are the TOML file; each line
// after it is one `--set key=value` override. They go through what `contra
// validate` does up to the plugins' data: read_pipeline (TOML, overrides,
// the built-in sections), binding every plugin table against the schemas of
// the plugins this build made, the diagnostics sorted and formatted, and for
// a pipeline without diagnostics the settings decoded and the resolved
// pipeline (what a run folder keeps and --resume reads back) read again,
// which must succeed.
//
// The registry is scanned once from this build's plugin folder; the
// pipeline's own [plugins] paths are checked for existence by the reader but
// never loaded: a fuzzed path must not dlopen whatever library it names.
#include "fuzz_support.hpp"

#include "assembly/load_pipeline.hpp"
#include "config/settings.hpp"
#include "device/cuda_library.hpp"
#include "loader/registry.hpp"

#include <algorithm>
#include <climits>
#include <optional>
#include <string>
#include <vector>

#ifndef CONTRA_PLUGIN_DIR
#error "CONTRA_PLUGIN_DIR (the build's plugin folder) is set by tests/fuzz/CMakeLists.txt"
#endif

using namespace contra;
using namespace contra::runtime;

namespace {

const PluginRegistry& registry() {
  static const PluginRegistry& r = [] () -> const PluginRegistry& {
    static PluginRegistry reg;
    reg.scan_directory(CONTRA_PLUGIN_DIR);
    for (const auto& p : reg.problems()) std::fprintf(stderr, "fuzz_pipeline: %s\n", p.message.c_str());
    if (!reg.problems().empty() || reg.names(PluginKind::loss).empty())
      fuzz::finding("the plugins in " + std::string(CONTRA_PLUGIN_DIR) + " did not all load");
    return reg;
  }();
  return r;
}

// load_pipeline() without the scan of the plugin path: read, then bind.
std::optional<PipelineSpec> read_and_bind(const std::string& file, const std::vector<std::string>& overrides,
                                          Diagnostics& d) {
  std::optional<PipelineSpec> spec = read_pipeline(file, overrides, d);
  if (spec && pipeline_device(*spec) == Device::cuda && !built_with_cuda())
    d.push_back({pipeline_device_location(*spec), "train.device", "\"cuda\", but this build has no CUDA support"});
  else if (spec)
    bind_plugins(*spec, registry(), d);
  std::stable_sort(d.begin(), d.end(), [](const Diagnostic& a, const Diagnostic& b) {
    auto key = [](const Diagnostic& x) {
      return std::pair(x.where.line > 0 ? x.where.line : INT32_MAX, x.where.column);
    };
    return key(a) < key(b);
  });
  const std::string text = format_diagnostics(d);
  if (fuzz::verbose() && !text.empty()) std::fprintf(stderr, "refused: %s\n", text.c_str());
  return spec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)registry();
  const std::string_view bytes = fuzz::bytes_of(data, size);
  const std::size_t nul = bytes.find('\0');
  const std::string file = fuzz::write_file("pipelines/pipeline.toml", bytes.substr(0, nul));
  std::vector<std::string> overrides;
  if (nul != std::string_view::npos) {
    std::string_view rest = bytes.substr(nul + 1);
    while (!rest.empty()) {
      const std::size_t end = std::min(rest.find('\n'), rest.size());
      overrides.emplace_back(rest.substr(0, end));
      rest.remove_prefix(std::min(end + 1, rest.size()));
    }
  }
  fuzz::run_reader([&] {
    Diagnostics d;
    std::optional<PipelineSpec> spec = read_and_bind(file, overrides, d);
    if (!spec || !d.empty()) return;
    (void)decode_settings(*spec);
    (void)spec->total_views();
    // What a run folder's pipeline.toml holds, read back as --resume does.
    const std::string resolved = fuzz::write_file("pipelines/resolved.toml", resolved_with_defaults(*spec));
    Diagnostics again;
    if (!read_and_bind(resolved, {}, again) || !again.empty())
      fuzz::finding("the resolved pipeline of a valid one does not read back: " + format_diagnostics(again));
  });
  return 0;
}
