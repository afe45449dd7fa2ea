#pragma once
// Plugin loader and registry: finds plugin libraries on the search path,
// checks each manifest before any of the library's code runs, and creates
// plugin objects that keep their library loaded while they live.

#include <contra/plugin.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boost::dll {
class shared_library;
}

namespace contra::runtime {

/// One plugin found in a library.
struct PluginRecord {
  PluginKind kind;
  std::string name;
  Device device = Device::cpu;  ///< cpu, or cuda for a plugin's GPU twin
  Schema schema;
  std::filesystem::path library;
  const PluginEntry* entry = nullptr;
  std::shared_ptr<boost::dll::shared_library> handle;
};

/// A library on the search path that could not be used, or a name clash.
struct LibraryProblem {
  std::filesystem::path library;
  std::string message;  ///< complete sentence naming the library
};

/// The plugin directory of an install or a build, found from the running
/// program's folder: `<bin>/../lib/contra/plugins` when it exists (an
/// installed contra, `cmake --install`), else `<bin>/../plugins` (a build tree).
std::filesystem::path default_plugin_dir();

/// True for the kinds whose plugins must have a build for the pipeline's
/// device (encoder, loss, optimizer: they work on the device's tensors);
/// false for those that may run on the CPU beside it (source, augmentation,
/// sampler, evaluator, and miner and memory, which get host copies).
bool device_build_required(PluginKind kind) noexcept;

/// The check of a loaded library's manifest, before any of its plugins is
/// used: magic number, SDK ABI version, the standard-library ABI and CPU
/// extensions its fingerprint names, and each entry's kind, schema (called
/// and checked well-formed) and device. Returns one record per entry, without
/// the library handle; throws PluginError naming `file`. Everything it reads
/// comes from the library, so it is kept apart from the loading to be tested
/// (and fuzzed) on manifests built in memory.
std::vector<PluginRecord> check_manifest(const LibraryManifest& m, const std::filesystem::path& file);

/// Directories from CONTRA_PLUGIN_PATH (colon-separated); empty entries skipped.
std::vector<std::filesystem::path> env_plugin_dirs();

class PluginRegistry {
 public:
  PluginRegistry();
  ~PluginRegistry();
  PluginRegistry(const PluginRegistry&) = delete;
  PluginRegistry& operator=(const PluginRegistry&) = delete;

  /// Load every `*.so` in `dir` (not recursive), in name order. A library
  /// that fails is recorded in problems(), not thrown: it may be unrelated to
  /// the pipeline at hand. A directory already scanned is skipped.
  /// GPU builds (`*_cuda.so`) are skipped unless include_device_builds() was
  /// called: loading one maps cuBLAS and cuDNN (about 0.4 s), which a CPU
  /// pipeline never needs.
  void scan_directory(const std::filesystem::path& dir);
  /// From now on, scan_directory() loads `*_cuda.so` libraries too, also in
  /// directories scanned before.
  void include_device_builds();

  /// Load one library; throws PluginError with the reason when it cannot be
  /// used (missing, not loadable, no entry symbol, other SDK ABI, bad schema).
  void load_library(const std::filesystem::path& file);

  /// The plugin of this kind, name and device (plugins are keyed by all
  /// three: a CPU plugin and its cuda twin share kind and name). Throws
  /// PluginError when two libraries provide it. Returns null when none does.
  const PluginRecord* find(PluginKind kind, std::string_view name, Device device = Device::cpu) const;
  /// The build of a plugin a pipeline on `device` uses: on the CPU, the cpu
  /// build; on cuda, the cuda twin, or else, for a kind that can run beside
  /// the GPU on host copies (everything but encoder, loss and optimizer:
  /// see device_build_required()), the cpu build. Returns null when the
  /// name does not exist at all (the caller reports it with its own hints);
  /// throws PluginError when only the cpu build exists of a kind that needs
  /// the device one, naming which plugins of that kind do have one.
  const PluginRecord* resolve(PluginKind kind, std::string_view name, Device device) const;
  /// Names of the plugins of one kind built for `device`, sorted.
  std::vector<std::string> names_on(PluginKind kind, Device device) const;
  /// Kinds under which a name exists (for "is a loss, not a miner" messages).
  std::vector<PluginKind> kinds_of(std::string_view name) const;
  /// Names of the plugins of one kind, sorted.
  std::vector<std::string> names(PluginKind kind) const;
  /// Every plugin, sorted by kind, name, then device (duplicates included).
  std::vector<const PluginRecord*> all() const;
  const std::vector<LibraryProblem>& problems() const noexcept { return problems_; }

  /// Create a plugin object. The returned pointer keeps the library loaded
  /// and destroys the object through the library's own destroy function.
  /// Exceptions from the plugin's constructor are rethrown as PluginError
  /// naming the plugin and its library; std::bad_alloc goes through as
  /// itself, for make_plugin() to say with the plugin's table.
  template <class Role> std::shared_ptr<Role> create(const PluginRecord& rec, const Params& p) const {
    return std::static_pointer_cast<Role>(create_plugin(rec, p));
  }

 private:
  std::shared_ptr<Plugin> create_plugin(const PluginRecord& rec, const Params& p) const;
  void add_library(const std::filesystem::path& file);

  std::vector<PluginRecord> records_;
  std::vector<LibraryProblem> problems_;
  std::vector<std::filesystem::path> scanned_;
  std::vector<std::filesystem::path> scanned_with_device_builds_;
  bool device_builds_ = false;
  std::vector<std::filesystem::path> loaded_;
};

}  // namespace contra::runtime
