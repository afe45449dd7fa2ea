#pragma once
/// \file
/// What a plugin library includes to export its plugins:
///
///     CONTRA_PLUGIN_LIBRARY(CONTRA_LOSS(MyLoss), CONTRA_MINER(MyMiner))
///
/// (a GPU build of a plugin: CONTRA_PLUGIN_LIBRARY(CONTRA_LOSS_CUDA(MyLossCuda))).
///
/// defines the library's one exported entry symbol, `contra_plugin_manifest`
/// (a Boost.DLL-style alias: a pointer to the manifest). The manifest is
/// plain constant data, so the runtime reads and checks its ABI version before
/// any code of the library runs.

#include <contra/build_isa.hpp>
#include <contra/roles/augmentation.hpp>
#include <contra/roles/encoder.hpp>
#include <contra/roles/evaluator.hpp>
#include <contra/roles/loss.hpp>
#include <contra/roles/memory.hpp>
#include <contra/roles/miner.hpp>
#include <contra/roles/optimizer.hpp>
#include <contra/roles/sampler.hpp>
#include <contra/roles/source.hpp>
#include <contra/roles/text_augmentation.hpp>
#include <contra/roles/tokenizer.hpp>
#include <contra/schema.hpp>
#include <contra/version.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace contra {

/// One plugin a library provides.
struct PluginEntry {
  PluginKind kind;
  Schema (*schema)();                    ///< name, summary and parameters
  Plugin* (*create)(const Params& p);   ///< may throw; p is valid for schema()
  void (*destroy)(Plugin* p) noexcept;  ///< deletes what create() made
  /// Where the plugin computes: Device::cpu, or Device::cuda for the GPU twin
  /// of a plugin (same name, built into its own *_cuda library, taking and
  /// returning tensors on Device::cuda). Set by the CONTRA_* (cpu) and
  /// CONTRA_*_CUDA (cuda) macros. Since SDK ABI 2.
  Device device;
};

inline constexpr std::uint32_t manifest_magic = 0x52544e43u;  // "CNTR"

/// The first four fields never change, whatever the ABI version: the runtime
/// reads them to decide whether it can read the rest.
struct LibraryManifest {
  std::uint32_t magic;
  std::uint32_t abi_version;
  const char* sdk_version;        ///< e.g. "0.2.0"
  const char* build_fingerprint;  ///< compiler and standard library ABI
  const PluginEntry* plugins;
  std::size_t plugin_count;
};

namespace detail {
template <class T> Schema schema_of() { return T::schema(); }
template <class T> Plugin* create_plugin(const Params& p) { return new T(p); }
template <class T> void destroy_plugin(Plugin* p) noexcept { delete static_cast<T*>(p); }
template <class T, class Role, PluginKind K, Device D = Device::cpu> constexpr PluginEntry entry() {
  static_assert(std::is_base_of_v<Role, T>, "plugin class does not derive from its role");
  static_assert(std::is_constructible_v<T, const Params&>,
                "plugin class needs a constructor taking const contra::Params&");
  return PluginEntry{K, &schema_of<T>, &create_plugin<T>, &destroy_plugin<T>, D};
}
}  // namespace detail

}  // namespace contra

#define CONTRA_STRINGIFY_IMPL(x) #x
#define CONTRA_STRINGIFY(x) CONTRA_STRINGIFY_IMPL(x)

/// Compiler, standard-library ABI and instruction-set extensions a library
/// was built with. Libraries whose fingerprints differ in the standard-library
/// ABI cannot share std types; a library built for extensions the CPU lacks
/// (contra/build_isa.hpp) cannot run on it. Readers take fields by name and
/// ignore the ones they do not know ("isa" is new in SDK 0.2.1).
#define CONTRA_BUILD_FINGERPRINT                                               \
  "sdk=" CONTRA_SDK_VERSION_STRING ";compiler=" CONTRA_COMPILER_ID             \
  ";cxx11abi=" CONTRA_STRINGIFY(_GLIBCXX_USE_CXX11_ABI) ";isa=" CONTRA_BUILD_ISA

#if defined(__clang__)
#define CONTRA_COMPILER_ID "clang-" CONTRA_STRINGIFY(__clang_major__)
#elif defined(__GNUC__)
#define CONTRA_COMPILER_ID "gcc-" CONTRA_STRINGIFY(__GNUC__)
#else
#define CONTRA_COMPILER_ID "unknown"
#endif

#define CONTRA_SOURCE(T) ::contra::detail::entry<T, ::contra::Source, ::contra::PluginKind::source>()
#define CONTRA_AUGMENTATION(T) \
  ::contra::detail::entry<T, ::contra::Augmentation, ::contra::PluginKind::augmentation>()
#define CONTRA_SAMPLER(T) ::contra::detail::entry<T, ::contra::Sampler, ::contra::PluginKind::sampler>()
#define CONTRA_ENCODER(T) ::contra::detail::entry<T, ::contra::Encoder, ::contra::PluginKind::encoder>()
#define CONTRA_MINER(T) ::contra::detail::entry<T, ::contra::Miner, ::contra::PluginKind::miner>()
#define CONTRA_LOSS(T) ::contra::detail::entry<T, ::contra::Loss, ::contra::PluginKind::loss>()
#define CONTRA_EVALUATOR(T) \
  ::contra::detail::entry<T, ::contra::Evaluator, ::contra::PluginKind::evaluator>()
#define CONTRA_MEMORY(T) ::contra::detail::entry<T, ::contra::Memory, ::contra::PluginKind::memory>()
#define CONTRA_OPTIMIZER(T) \
  ::contra::detail::entry<T, ::contra::Optimizer, ::contra::PluginKind::optimizer>()
#define CONTRA_TOKENIZER(T) \
  ::contra::detail::entry<T, ::contra::Tokenizer, ::contra::PluginKind::tokenizer>()
#define CONTRA_TEXT_AUGMENTATION(T) \
  ::contra::detail::entry<T, ::contra::TextAugmentation, ::contra::PluginKind::text_augmentation>()

/// The GPU twin of a plugin: same name and schema as its CPU build, in a
/// library of its own (libcontra_<kind>_<name>_cuda.so) linked to
/// libcontra_cuda; the runtime picks it for pipelines with
/// `[train] device = "cuda"`.
#define CONTRA_SOURCE_CUDA(T) \
  ::contra::detail::entry<T, ::contra::Source, ::contra::PluginKind::source, ::contra::Device::cuda>()
#define CONTRA_AUGMENTATION_CUDA(T)                                                        \
  ::contra::detail::entry<T, ::contra::Augmentation, ::contra::PluginKind::augmentation, \
                          ::contra::Device::cuda>()
#define CONTRA_SAMPLER_CUDA(T) \
  ::contra::detail::entry<T, ::contra::Sampler, ::contra::PluginKind::sampler, ::contra::Device::cuda>()
#define CONTRA_ENCODER_CUDA(T) \
  ::contra::detail::entry<T, ::contra::Encoder, ::contra::PluginKind::encoder, ::contra::Device::cuda>()
#define CONTRA_MINER_CUDA(T) \
  ::contra::detail::entry<T, ::contra::Miner, ::contra::PluginKind::miner, ::contra::Device::cuda>()
#define CONTRA_LOSS_CUDA(T) \
  ::contra::detail::entry<T, ::contra::Loss, ::contra::PluginKind::loss, ::contra::Device::cuda>()
#define CONTRA_EVALUATOR_CUDA(T)                                                     \
  ::contra::detail::entry<T, ::contra::Evaluator, ::contra::PluginKind::evaluator, \
                          ::contra::Device::cuda>()
#define CONTRA_MEMORY_CUDA(T) \
  ::contra::detail::entry<T, ::contra::Memory, ::contra::PluginKind::memory, ::contra::Device::cuda>()
#define CONTRA_OPTIMIZER_CUDA(T)                                                     \
  ::contra::detail::entry<T, ::contra::Optimizer, ::contra::PluginKind::optimizer, \
                          ::contra::Device::cuda>()

/// Name of the exported entry symbol.
#define CONTRA_MANIFEST_SYMBOL "contra_plugin_manifest"

#define CONTRA_PLUGIN_LIBRARY(...)                                                        \
  namespace {                                                                             \
  constexpr ::contra::PluginEntry contra_plugin_entries_[] = {__VA_ARGS__};               \
  constexpr ::contra::LibraryManifest contra_library_manifest_ = {                        \
      ::contra::manifest_magic,   CONTRA_SDK_ABI_VERSION, CONTRA_SDK_VERSION_STRING,      \
      CONTRA_BUILD_FINGERPRINT,   contra_plugin_entries_,                                 \
      sizeof(contra_plugin_entries_) / sizeof(contra_plugin_entries_[0])};                \
  }                                                                                       \
  extern "C" __attribute__((visibility("default"))) const void* const contra_plugin_manifest; \
  extern "C" __attribute__((visibility("default"))) const void* const contra_plugin_manifest = \
      static_cast<const void*>(&contra_library_manifest_);
