// Pipeline files: valid ones load; each broken one gives exactly the
// diagnostics in its golden file (tests/fixtures/pipelines/invalid/*.expected).
// Set CONTRA_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change.
#include "assembly/load_pipeline.hpp"
#include "loader/registry.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

using namespace contra;
using namespace contra::runtime;
namespace fs = std::filesystem;

namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

// Diagnostics of loading `file`, with its folder removed from paths.
std::string diagnostics_of(const fs::path& file, const std::vector<std::string>& overrides = {}) {
  PluginRegistry reg;
  try {
    load_pipeline(file.string(), overrides, reg);
  } catch (const ConfigError& e) {
    return replace_all(e.what(), file.parent_path().string() + "/", "") + "\n";
  }
  return "(valid)\n";
}

std::vector<fs::path> files_in(const fs::path& dir, const std::string& ext) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ext) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("config: every broken pipeline gives its golden diagnostics", "[runtime][config]") {
  auto dir = fs::path(CONTRA_FIXTURE_DIR) / "pipelines" / "invalid";
  auto files = files_in(dir, ".toml");
  REQUIRE(files.size() >= 10);
  bool update = std::getenv("CONTRA_UPDATE_GOLDEN") != nullptr;
  for (const auto& f : files) {
    DYNAMIC_SECTION(f.filename().string()) {
      std::string got = diagnostics_of(f);
      auto golden = fs::path(f).replace_extension(".expected");
      if (update) test::write_file(golden.string(), got);
      REQUIRE(fs::exists(golden));
      CHECK(got == test::read_file(golden.string()));
      CHECK(got != "(valid)\n");
    }
  }
}

TEST_CASE("config: every pipeline in pipelines/ is valid", "[runtime][config]") {
  auto files = files_in(fs::path(CONTRA_SOURCE_DIR) / "pipelines", ".toml");
  REQUIRE(!files.empty());
  for (const auto& f : files) {
    DYNAMIC_SECTION(f.filename().string()) { CHECK(diagnostics_of(f) == "(valid)\n"); }
  }
}

TEST_CASE("config: --set overrides keys, creates sections and is named in errors", "[runtime][config]") {
  test::TempDir dir("config");
  std::string file = dir.file("p.toml");
  test::write_file(file,
                   "[source]\nplugin = \"synthetic\"\n\n[encoder]\nplugin = \"mlp\"\n\n"
                   "[loss]\nplugin = \"info_nce\"\n\n[optimizer]\nplugin = \"sgd\"\n\n"
                   "[[augment.chain]]\nplugin = \"horizontal_flip\"\n");
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(
      file, {"loss.temperature=0.2", "train.max_steps=7", "augment.chain.0.p=1.0", "source.size=32"}, reg);
  CHECK(spec.loss.params.get<double>("temperature") == 0.2);
  CHECK(spec.train.get<std::int64_t>("max_steps") == 7);
  CHECK(spec.views[0].chain[0].params.get<double>("p") == 1.0);
  CHECK(spec.loss.params.where("temperature").file == "--set loss.temperature=0.2");
  CHECK(spec.resolved_toml.find("temperature = 0.2") != std::string::npos);

  PluginRegistry reg2;
  CHECK_THROWS_MATCHES(load_pipeline(file, {"loss.temperature=20"}, reg2), ConfigError,
                       Catch::Message("--set loss.temperature=20: error: loss.temperature: expected a value in "
                                      "[0.001, 10], found 20"));
  PluginRegistry reg3;
  CHECK_THROWS_MATCHES(load_pipeline(file, {"temperature"}, reg3), ConfigError,
                       Catch::Message("--set temperature: error: expected section.key=value"));
}

TEST_CASE("config: a missing pipeline file is reported, not crashed on", "[runtime][config]") {
  PluginRegistry reg;
  CHECK_THROWS_MATCHES(load_pipeline("/nonexistent/p.toml", {}, reg), ConfigError,
                       Catch::Message("/nonexistent/p.toml: error: cannot open the pipeline file: No such file or "
                                      "directory"));
}

TEST_CASE("config: defaults fill the optional sections", "[runtime][config]") {
  test::TempDir dir("config");
  std::string file = dir.file("p.toml");
  test::write_file(file, "[source]\nplugin = \"synthetic\"\n[encoder]\nplugin = \"mlp\"\n"
                         "[loss]\nplugin = \"info_nce\"\n[optimizer]\nplugin = \"sgd\"\n");
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(file, {}, reg);
  CHECK(spec.sampler.name == "random");
  CHECK(spec.miner.name == "all_pairs");
  CHECK(spec.augment.get<std::int64_t>("views") == 2);
  CHECK(spec.runtime.get<std::int64_t>("prefetch") == 4);
  REQUIRE(spec.views.size() == 1);
  CHECK(spec.views[0].chain.empty());
  CHECK(spec.views[0].count == 2);
}

TEST_CASE("config: an unknown plugin's message names the libraries that could not be loaded",
          "[runtime][config]") {
  test::TempDir dir("config");
  std::string file = dir.file("p.toml");
  std::string other_abi = std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/other_abi";
  test::write_file(file, "[plugins]\npaths = [\"" + other_abi +
                             "\"]\n[source]\nplugin = \"synthetic\"\n[encoder]\nplugin = \"mlp\"\n"
                             "[loss]\nplugin = \"newer_loss\"\n[optimizer]\nplugin = \"sgd\"\n");
  PluginRegistry reg;
  try {
    load_pipeline(file, {}, reg);
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::StartsWith(file + ":8:10: error: loss.plugin: unknown loss plugin 'newer_loss'; "
                                                  "available: "));
    CHECK_THAT(e.what(), Catch::Contains("info_nce"));
    CHECK_THAT(e.what(), Catch::EndsWith("\n  note: " + other_abi +
                                         "/libother_abi.so was built for contra SDK ABI 999 (SDK 9.9.0), but this "
                                         "runtime provides SDK ABI 5 (SDK 0.5.0); rebuild the plugin against SDK "
                                         "0.5.0"));
  }
}

#include "config/settings.hpp"

TEST_CASE("settings: the built-in sections decoded once, typed, with 0 threads resolved", "[runtime][config]") {
  test::TempDir dir("settings");
  test::write_file(dir.file("p.toml"),
                   "[pipeline]\nname = \"s\"\nseed = 9\n[runtime]\nprefetch = 3\ndata_threads = 0\n"
                   "compute_threads = 5\ntrace = \"t.json\"\n[train]\nepochs = 4\nmax_steps = 7\n"
                   "[schedule]\nkind = \"cosine\"\nwarmup_epochs = 0.5\nfinal_scale = 0.1\n"
                   "[data]\nsubset = 10\nsubset_mode = \"random\"\non_error = \"skip\"\ncache_mb = 2\n"
                   "[record]\ncheckpoint_every = 6\nkeep = 3\n"
                   "[source]\nplugin = \"synthetic\"\n[encoder]\nplugin = \"mlp\"\n[loss]\nplugin = \"info_nce\"\n"
                   "[optimizer]\nplugin = \"sgd\"\n");
  PluginRegistry reg;
  const PipelineSettings s = decode_settings(load_pipeline(dir.file("p.toml"), {"data.shard_count=2"}, reg));
  CHECK(s.name == "s");
  CHECK(s.seed == 9);
  CHECK(s.runtime.prefetch == 3);
  CHECK(s.runtime.data_threads == machine_cores());
  CHECK(s.runtime.compute_threads == 5);
  CHECK(s.runtime.trace == fs::path(dir.file("t.json")));  // relative to the pipeline file
  CHECK(s.train.epochs == 4);
  CHECK(s.train.max_steps == 7);
  CHECK(s.train.device == Device::cpu);
  CHECK(s.train.precision_name == "f32");
  CHECK(s.schedule.cosine);
  CHECK(s.schedule.warmup_epochs == 0.5);
  CHECK(s.schedule.final_scale == 0.1);
  CHECK(s.data.subset == 10);
  CHECK(s.data.random_subset);
  CHECK(s.data.shard_count == 2);
  CHECK(s.data.skip_errors);
  CHECK(s.data.cache_bytes == 2 << 20);
  CHECK(s.data.max_skip_fraction == 0.01);
  CHECK(s.data.max_image_pixels == 67108864);
  const PipelineSettings set = decode_settings(
      load_pipeline(dir.file("p.toml"), {"data.max_skip_fraction=0", "data.max_image_pixels=1000"}, reg));
  CHECK(set.data.max_skip_fraction == 0.0);
  CHECK(set.data.max_image_pixels == 1000);
  CHECK_FALSE(s.eval.enabled);
  CHECK(s.record.checkpoint_every == 6);
  CHECK(s.record.keep == 3);
}

TEST_CASE("config: hostile input gets an error, not an abort or an endless read", "[runtime][config]") {
  const fs::path quickstart = fs::path(CONTRA_SOURCE_DIR) / "pipelines" / "quickstart.toml";
  // An index no array has (it would overflow stoul) is past the end.
  CHECK_THAT(diagnostics_of(quickstart, {"augment.chain.99999999999999999999.p=1"}),
             Catch::Contains("error: augment.chain: index 99999999999999999999 is past the end (3 entries)"));
  // A device that never ends is read only up to the bound.
  Diagnostics out;
  CHECK_FALSE(read_pipeline("/dev/zero", {}, out).has_value());
  REQUIRE(out.size() == 1);
  CHECK(out[0].str() == "/dev/zero: error: more than 4 MiB: not a pipeline file");
}

TEST_CASE("config: a view count out of range and a trace folder that is not there are said at their keys",
          "[runtime][config]") {
  const fs::path quickstart = fs::path(CONTRA_SOURCE_DIR) / "pipelines" / "quickstart.toml";
  for (const char* views : {"0", "100"}) {
    const std::string got = diagnostics_of(quickstart, {std::string("augment.views=") + views});
    CHECK_THAT(got, Catch::Contains(std::string("error: augment.views: expected a value in [1, 64], found ") + views));
    CHECK_THAT(got, !Catch::Contains("not declared"));
  }
  CHECK_THAT(diagnostics_of(quickstart, {"runtime.trace=\"/nonexistent/folder/t.json\""}),
             Catch::Contains("error: runtime.trace: no such folder: /nonexistent/folder (the trace "
                             "/nonexistent/folder/t.json is written there)"));
}

TEST_CASE("config: a backend for the other memory is said at distributed.backend", "[runtime][config]") {
  const fs::path quickstart = fs::path(CONTRA_SOURCE_DIR) / "pipelines" / "quickstart.toml";
  // (A build without CUDA also says so at train.device: the line asked for is there either way.)
  CHECK_THAT(diagnostics_of(quickstart, {"train.device=\"cuda\"", "distributed.backend=\"mpi\""}),
             Catch::Contains("error: distributed.backend: \"mpi\" carries host memory; a cuda pipeline uses "
                             "\"nccl\" (bootstrapped over MPI)"));
  CHECK_THAT(diagnostics_of(quickstart, {"distributed.backend=\"nccl\""}),
             Catch::Contains("error: distributed.backend: \"nccl\" carries GPU memory and needs [train] device = "
                             "\"cuda\"; a CPU pipeline uses \"mpi\""));
  CHECK(diagnostics_of(quickstart, {"distributed.backend=\"mpi\"", "distributed.sync_batch_norm=true"}) ==
        "(valid)\n");
}

TEST_CASE("config: an empty plugin name is said at its key", "[runtime][config]") {
  const fs::path quickstart = fs::path(CONTRA_SOURCE_DIR) / "pipelines" / "quickstart.toml";
  CHECK(diagnostics_of(quickstart, {"loss.plugin=\"\""}) ==
        "--set loss.plugin=\"\": error: loss.plugin: an empty name; expected the name of a loss plugin (`contra "
        "plugins` lists them)\n");
}
