#include "loader/registry.hpp"
#include "test_support.hpp"

#include <contra/plugin.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

using namespace contra;
using contra::runtime::PluginRegistry;

namespace {
std::string fixture(const std::string& name) {
  return std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/" + name + "/lib" + name + ".so";
}
std::string builtin(const std::string& file) { return std::string(CONTRA_PLUGIN_DIR) + "/" + file; }
std::string error_of(PluginRegistry& reg, const std::string& path) {
  try {
    reg.load_library(path);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST_CASE("loader: a built-in plugin library loads, describes and creates its plugin", "[runtime][loader]") {
  PluginRegistry reg;
  reg.load_library(builtin("libcontra_loss_info_nce.so"));
  const auto* rec = reg.find(PluginKind::loss, "info_nce");
  REQUIRE(rec != nullptr);
  CHECK(rec->schema.find("temperature") != nullptr);
  auto loss = reg.create<Loss>(*rec, rec->schema.bind({{"temperature", 0.2}}));
  REQUIRE(loss);
  CHECK(reg.find(PluginKind::miner, "info_nce") == nullptr);
  CHECK(reg.kinds_of("info_nce") == std::vector<PluginKind>{PluginKind::loss});
}

TEST_CASE("loader: an object keeps its library loaded after the registry is gone", "[runtime][loader]") {
  std::shared_ptr<Miner> miner;
  {
    PluginRegistry reg;
    reg.load_library(builtin("libcontra_miner_all_pairs.so"));
    const auto* rec = reg.find(PluginKind::miner, "all_pairs");
    REQUIRE(rec != nullptr);
    miner = reg.create<Miner>(*rec, rec->schema.bind({}));
  }
  Pairs pairs;
  Tensor z = Tensor::zeros({2, 2}, DType::f32);
  std::vector<std::int64_t> sample{0, 0};
  miner->mine(Embeddings{z, &sample, nullptr, 2}, pairs);  // code of the library still mapped
  CHECK(pairs.all);
  miner.reset();  // destroyed by the library's own destroy function, then unloaded
}

TEST_CASE("loader: a library built for another SDK ABI is refused with both versions", "[runtime][loader]") {
  PluginRegistry reg;
  std::string path = fixture("other_abi");
  CHECK(error_of(reg, path) == path +
                                   " was built for contra SDK ABI 999 (SDK 9.9.0), but this runtime provides "
                                   "SDK ABI 5 (SDK 0.5.0); rebuild the plugin against SDK 0.5.0");
}

TEST_CASE("loader: a library compiled for CPU extensions this CPU lacks is refused, naming them",
          "[runtime][loader]") {
  PluginRegistry reg;
  std::string path = fixture("other_cpu");
  const std::string fp = "sdk=" CONTRA_SDK_VERSION_STRING ";compiler=gcc-12;cxx11abi=" CONTRA_STRINGIFY(
      _GLIBCXX_USE_CXX11_ABI) ";isa=x86-64,sse3,avx512_future_extension";
  CHECK(error_of(reg, path) == path +
                                   " was compiled for CPU extensions this CPU lacks (avx512_future_extension), as "
                                   "its fingerprint says (" + fp +
                                   "): it was built with -march=native (or contra_add_plugin's ARCH) on another "
                                   "machine; rebuild it on this one, or for a baseline this CPU has");
}

TEST_CASE("loader: a library without the entry symbol is refused", "[runtime][loader]") {
  PluginRegistry reg;
  std::string path = fixture("no_entry");
  CHECK(error_of(reg, path) == path +
                                   " is not a contra plugin library: it does not export the entry symbol "
                                   "'contra_plugin_manifest' (declare its plugins with CONTRA_PLUGIN_LIBRARY)");
}

TEST_CASE("loader: a library with an unresolved symbol fails to load instead of crashing", "[runtime][loader]") {
  PluginRegistry reg;
  std::string path = fixture("unresolved");
  CHECK(error_of(reg, path) == "cannot load plugin library " + path + ": " + path +
                                   ": undefined symbol: contra_fixture_symbol_nobody_defines");
  CHECK(reg.find(PluginKind::loss, "needs_missing") == nullptr);
}

TEST_CASE("loader: a missing library file is named", "[runtime][loader]") {
  PluginRegistry reg;
  CHECK(error_of(reg, "/nonexistent/libx.so") == "plugin library /nonexistent/libx.so does not exist");
}

TEST_CASE("loader: a plugin whose constructor throws gives a PluginError naming it", "[runtime][loader]") {
  PluginRegistry reg;
  std::string path = fixture("throwing_factory");
  reg.load_library(path);
  const auto* rec = reg.find(PluginKind::loss, "throwing_loss");
  REQUIRE(rec != nullptr);
  CHECK_THROWS_MATCHES(reg.create<Loss>(*rec, rec->schema.bind({})), PluginError,
                       Catch::Message("loss plugin 'throwing_loss' (" + path +
                                      ") failed to start: constructor failed on purpose"));
}

TEST_CASE("loader: a library whose schema is malformed is refused", "[runtime][loader]") {
  PluginRegistry reg;
  std::string path = fixture("bad_schema");
  CHECK(error_of(reg, path) == path +
                                   ": the schema of its miner plugin #0 is invalid: schema of plugin "
                                   "'bad_schema' declares parameter 'margin' twice");
}

TEST_CASE("loader: two libraries providing one name make that name an error", "[runtime][loader]") {
  PluginRegistry reg;
  reg.scan_directory(CONTRA_PLUGIN_DIR);
  reg.scan_directory(std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/duplicate_miner");
  std::string dup = fixture("duplicate_miner");
  CHECK_THROWS_MATCHES(reg.find(PluginKind::miner, "all_pairs"), PluginError,
                       Catch::Message("miner plugin 'all_pairs' is provided by two libraries: " +
                                      builtin("libcontra_miner_all_pairs.so") + " and " + dup +
                                      "; remove one from the plugin path"));
  CHECK(reg.find(PluginKind::loss, "info_nce") != nullptr);  // others unaffected
}

TEST_CASE("loader: scanning records bad libraries as problems and keeps the good ones", "[runtime][loader]") {
  PluginRegistry reg;
  reg.scan_directory(CONTRA_PLUGIN_DIR);
  CHECK(reg.problems().empty());
  reg.scan_directory(std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/other_abi");
  REQUIRE(reg.problems().size() == 1);
  CHECK(reg.problems()[0].message.find("SDK ABI 999") != std::string::npos);
  CHECK(reg.find(PluginKind::loss, "info_nce") != nullptr);
}

TEST_CASE("loader: plugins are keyed by kind, name and device", "[runtime][loader][device]") {
  PluginRegistry reg;
  std::string path = fixture("cuda_twins");
  reg.load_library(path);
  const auto* cpu = reg.find(PluginKind::loss, "twin_loss");
  const auto* cuda = reg.find(PluginKind::loss, "twin_loss", Device::cuda);
  REQUIRE(cpu != nullptr);
  REQUIRE(cuda != nullptr);
  CHECK(cpu != cuda);
  CHECK(cpu->device == Device::cpu);
  CHECK(cuda->device == Device::cuda);
  CHECK(cuda->schema.summary() == "a loss with a cuda build");
  CHECK(reg.find(PluginKind::loss, "lonely_loss", Device::cuda) == nullptr);
  CHECK(reg.find(PluginKind::miner, "twin_miner") == nullptr);
  CHECK(reg.names(PluginKind::loss) == std::vector<std::string>{"lonely_loss", "twin_loss"});
  CHECK(reg.names_on(PluginKind::loss, Device::cuda) == std::vector<std::string>{"twin_loss"});
  auto all = reg.all();
  REQUIRE(all.size() == 4);
  CHECK(all[0]->name == "twin_miner");  // miners sort before losses
  CHECK((all[2]->name == "twin_loss" && all[2]->device == Device::cpu));
  CHECK((all[3]->name == "twin_loss" && all[3]->device == Device::cuda));
}

TEST_CASE("loader: resolving for cuda takes the cuda twin, or the cpu build where the kind allows it",
          "[runtime][loader][device]") {
  PluginRegistry reg;
  std::string path = fixture("cuda_twins");
  reg.load_library(path);
  reg.load_library(builtin("libcontra_miner_all_pairs.so"));
  CHECK(reg.resolve(PluginKind::loss, "twin_loss", Device::cuda)->device == Device::cuda);
  CHECK(reg.resolve(PluginKind::loss, "twin_loss", Device::cpu)->device == Device::cpu);
  CHECK(reg.resolve(PluginKind::miner, "twin_miner", Device::cuda)->device == Device::cuda);
  CHECK(reg.resolve(PluginKind::miner, "twin_miner", Device::cpu) == nullptr);
  // A miner may run on the CPU beside the GPU (on host copies); a loss may not.
  CHECK(reg.resolve(PluginKind::miner, "all_pairs", Device::cuda)->device == Device::cpu);
  CHECK_THROWS_MATCHES(reg.resolve(PluginKind::loss, "lonely_loss", Device::cuda), PluginError,
                       Catch::Message("loss plugin 'lonely_loss' has no cuda build (libcuda_twins.so is its cpu "
                                      "build); loss plugins with a cuda build: twin_loss"));
  CHECK(reg.resolve(PluginKind::loss, "nothing_like_it", Device::cuda) == nullptr);
  CHECK(runtime::device_build_required(PluginKind::encoder));
  CHECK(runtime::device_build_required(PluginKind::optimizer));
  CHECK_FALSE(runtime::device_build_required(PluginKind::source));
  CHECK_FALSE(runtime::device_build_required(PluginKind::memory));
}

TEST_CASE("loader: scanning skips *_cuda.so libraries unless device builds are asked for",
          "[runtime][loader][device]") {
  test::TempDir dir("cuda-scan");
  std::filesystem::copy_file(fixture("cuda_twins"), dir.file("libcontra_loss_twins_cuda.so"));
  PluginRegistry reg;
  reg.scan_directory(dir.path());
  CHECK(reg.all().empty());
  CHECK(reg.problems().empty());
  reg.include_device_builds();
  reg.scan_directory(dir.path());  // scanned before: now for its device builds
  CHECK(reg.find(PluginKind::loss, "twin_loss", Device::cuda) != nullptr);
  CHECK(reg.all().size() == 4);
}

TEST_CASE("loader: an entry symbol that is null or too small is refused, not followed", "[runtime][loader]") {
  PluginRegistry reg;
  const std::string null_path = fixture("null_manifest");
  CHECK(error_of(reg, null_path) == null_path + ": the entry symbol 'contra_plugin_manifest' points nowhere (a null "
                                                "pointer), not to a contra plugin manifest");
  const std::string tiny_path = fixture("tiny_manifest");
  CHECK(error_of(reg, tiny_path) == tiny_path + ": the entry symbol 'contra_plugin_manifest' is 1 byte(s), not the "
                                                "pointer to a manifest that CONTRA_PLUGIN_LIBRARY exports");
}

TEST_CASE("loader: a plugin folder that cannot be read is said on stderr and kept as a problem",
          "[runtime][loader]") {
  test::TempDir dir("loader");
  test::write_file(dir.file("file"), "not a folder");
  std::filesystem::create_symlink(dir.file("loop"), dir.file("loop"));
  PluginRegistry reg;
  test::CapturedStderr err;
  reg.scan_directory(dir.file("missing"));
  reg.scan_directory(dir.file("file"));
  reg.scan_directory(dir.file("loop"));
  const std::string missing = dir.file("missing") +
                              ": cannot read the plugin folder: No such file or directory; its plugins are not loaded";
  const std::string file =
      dir.file("file") + ": cannot read the plugin folder: Not a directory; its plugins are not loaded";
  const std::string loop = dir.file("loop") +
                           ": cannot read the plugin folder: Too many levels of symbolic links; its plugins are not "
                           "loaded";
  CHECK(err.text() == "warning: " + missing + "\nwarning: " + file + "\nwarning: " + loop + "\n");
  REQUIRE(reg.problems().size() == 3);
  CHECK(reg.problems()[0].message == missing);
  CHECK(reg.problems()[1].message == file);
  CHECK(reg.problems()[2].message == loop);
  CHECK(reg.problems()[0].library == dir.path() / "missing");

  // A folder without read permission (root reads every folder, so only
  // another user sees this one).
  if (::geteuid() != 0) {
    std::filesystem::create_directories(dir.path() / "locked");
    std::filesystem::permissions(dir.path() / "locked", std::filesystem::perms::none);
    test::CapturedStderr locked_err;
    reg.scan_directory(dir.file("locked"));
    CHECK(locked_err.text() == "warning: " + dir.file("locked") +
                                   ": cannot read the plugin folder: Permission denied; its plugins are not loaded\n");
    std::filesystem::permissions(dir.path() / "locked", std::filesystem::perms::owner_all);
  }
}
