// What a plugin author sees when a plugin misbehaves: every failure names the
// plugin, its library file, the call and the pipeline location, and none
// crashes the runtime. The plugins are tests/fixtures/plugins/misbehaving.cpp
// (one `fault` at a time) and throwing_schema.cpp.
#include "assembly/load_pipeline.hpp"
#include "graph/pipeline_run.hpp"
#include "loader/registry.hpp"
#include "test_support.hpp"

#include <contra/errors.hpp>

#include "cli_runner.hpp"
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <sys/wait.h>

using namespace contra;
using namespace contra::runtime;

namespace {

const std::string fixture_dir = std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/misbehaving";
const std::string fixture_lib = fixture_dir + "/libmisbehaving.so";

// A small pipeline whose encoder, miner and loss tables are given.
std::string pipeline(const std::string& encoder, const std::string& miner, const std::string& loss) {
  return "[pipeline]\nseed = 3\n\n"
         "[runtime]\nprefetch = 2\ncompute_threads = 1\ndata_threads = 1\n\n"
         "[train]\nmax_steps = 3\n\n"
         "[plugins]\npaths = [\"" + fixture_dir + "\"]\n\n"
         "[source]\nplugin = \"synthetic\"\nsize = 64\nheight = 8\nwidth = 8\n\n"
         "[sampler]\nplugin = \"random\"\nbatch_size = 8\n\n"
         "[encoder]\n" + encoder + "\n\n"
         "[miner]\n" + miner + "\n\n"
         "[loss]\n" + loss + "\n\n"
         "[optimizer]\nplugin = \"sgd\"\nlr = 0.01\n";
}
const std::string good_encoder = "plugin = \"mlp\"\nhidden = [16]\noutput = 8";
const std::string good_miner = "plugin = \"all_pairs\"";
const std::string good_loss = "plugin = \"info_nce\"";

// Line of `header` in `text`, 1-based.
int line_of(const std::string& text, const std::string& header) {
  auto pos = text.find("\n" + header + "\n");
  REQUIRE(pos != std::string::npos);
  int line = 2;
  for (std::size_t i = 0; i < pos; ++i) line += text[i] == '\n';
  return line;
}

struct Failure {
  std::string file;     // the pipeline file
  std::string message;  // what the run threw
};

Failure run_failing(const std::string& text) {
  test::TempDir dir("errors");
  std::string file = dir.file("p.toml");
  test::write_file(file, text);
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(file, {}, reg);
  try {
    run_pipeline(spec, reg, RunOptions{});
  } catch (const PluginError& e) {
    return {file, e.what()};
  }
  FAIL("the run did not fail");
  return {};
}

// "encoder 'bad_encoder' ([encoder] at FILE:L:1, library LIB)"
std::string label(const Failure& f, const std::string& text, const char* kind, const char* name,
                  const std::string& section, const std::string& header = "") {
  return std::string(kind) + " '" + name + "' ([" + section + "] at " + f.file + ":" +
         std::to_string(line_of(text, header.empty() ? "[" + section + "]" : header)) + ":1, library " +
         fixture_lib + ")";
}

}  // namespace

TEST_CASE("plugin errors: an encoder that throws is named with its library, call and location",
          "[runtime][plugin-errors]") {
  std::string text = pipeline("plugin = \"bad_encoder\"\nfault = \"throw\"", good_miner, good_loss);
  Failure f = run_failing(text);
  CHECK(f.message == "train stage (step 0): " + label(f, text, "encoder", "bad_encoder", "encoder") +
                         ": forward() failed: forward() fails on purpose");
}

TEST_CASE("plugin errors: a throw that is not a std::exception is caught and named", "[runtime][plugin-errors]") {
  SECTION("from an encoder") {
    std::string text = pipeline("plugin = \"bad_encoder\"\nfault = \"non_std\"", good_miner, good_loss);
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "encoder", "bad_encoder", "encoder") +
                           ": forward() failed: it threw something that is not a std::exception");
  }
  SECTION("from a loss") {
    std::string text = pipeline(good_encoder, good_miner, "plugin = \"bad_loss\"\nfault = \"non_std\"");
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "loss", "bad_loss", "loss") +
                           ": compute() failed: it threw something that is not a std::exception");
  }
}

TEST_CASE("plugin errors: a source or an augmentation throwing something that is not a std::exception is named",
          "[runtime][plugin-errors]") {
  SECTION("source") {
    std::string text = pipeline(good_encoder, good_miner, good_loss);
    const std::string synthetic = "plugin = \"synthetic\"\nsize = 64\nheight = 8\nwidth = 8";
    text.replace(text.find(synthetic), synthetic.size(), "plugin = \"bad_source\"\nfault = \"non_std\"");
    Failure f = run_failing(text);
    CHECK_THAT(f.message, Catch::StartsWith("load stage: " + label(f, text, "source", "bad_source", "source") +
                                            " failed on sample "));
    // Loads and augmentations of several steps run at once: any of them may fail first.
    CHECK_THAT(f.message, Catch::Matches(".*\\(step [0-9]+\\): it threw something that is not a std::exception"));
  }
  SECTION("augmentation") {
    std::string text = pipeline(good_encoder, good_miner, good_loss);
    text.replace(text.find("[encoder]"), 0, "[[augment.chain]]\nplugin = \"bad_augment\"\nfault = \"non_std\"\n\n");
    Failure f = run_failing(text);
    CHECK_THAT(f.message, Catch::StartsWith("augment stage: " +
                                            label(f, text, "augmentation", "bad_augment", "augment.chain[0]", "[[augment.chain]]") +
                                            " failed on sample "));
    // Loads and augmentations of several steps run at once: any of them may fail first.
    CHECK_THAT(f.message, Catch::Matches(".*\\(step [0-9]+\\): it threw something that is not a std::exception"));
  }
}

TEST_CASE("plugin errors: a miner and a loss that throw are named", "[runtime][plugin-errors]") {
  SECTION("miner") {
    std::string text = pipeline(good_encoder, "plugin = \"bad_miner\"\nfault = \"throw\"", good_loss);
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "miner", "bad_miner", "miner") +
                           ": mine() failed: mine() fails on purpose");
  }
  SECTION("loss") {
    std::string text = pipeline(good_encoder, good_miner, "plugin = \"bad_loss\"\nfault = \"throw\"");
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "loss", "bad_loss", "loss") +
                           ": compute() failed: compute() fails on purpose");
  }
}

TEST_CASE("plugin errors: an encoder output of the wrong shape or dtype is refused", "[runtime][plugin-errors]") {
  SECTION("shape") {
    std::string text = pipeline("plugin = \"bad_encoder\"\nfault = \"wrong_shape\"", good_miner, good_loss);
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "encoder", "bad_encoder", "encoder") +
                           ": forward() returned a f32 tensor of shape [16, 5], expected f32 [16, 4]");
  }
  SECTION("dtype") {
    std::string text = pipeline("plugin = \"bad_encoder\"\nfault = \"wrong_dtype\"", good_miner, good_loss);
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "encoder", "bad_encoder", "encoder") +
                           ": forward() returned a i32 tensor of shape [16, 4], expected f32 [16, 4]");
  }
}

TEST_CASE("plugin errors: NaN or Inf in an encoder's output is caught at the step it appears",
          "[runtime][plugin-errors]") {
  SECTION("NaN") {
    std::string text = pipeline("plugin = \"bad_encoder\"\nfault = \"nan\"", good_miner, good_loss);
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "encoder", "bad_encoder", "encoder") +
                           ": the output of forward() holds nan at row 1, column 1 (step 0)");
  }
  SECTION("Inf") {
    std::string text = pipeline("plugin = \"bad_encoder\"\nfault = \"inf\"", good_miner, good_loss);
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "encoder", "bad_encoder", "encoder") +
                           ": the output of forward() holds -inf at row 1, column 1 (step 0)");
  }
}

TEST_CASE("plugin errors: a loss gradient of the wrong shape or dtype is refused", "[runtime][plugin-errors]") {
  SECTION("shape") {
    std::string text = pipeline(good_encoder, good_miner, "plugin = \"bad_loss\"\nfault = \"wrong_shape\"");
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "loss", "bad_loss", "loss") +
                           ": compute() returned a f32 gradient of shape [16, 7], expected f32 [16, 8]");
  }
  SECTION("dtype") {
    std::string text = pipeline(good_encoder, good_miner, "plugin = \"bad_loss\"\nfault = \"wrong_dtype\"");
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "loss", "bad_loss", "loss") +
                           ": compute() returned a i32 gradient of shape [16, 8], expected f32 [16, 8]");
  }
}

TEST_CASE("plugin errors: a NaN loss value or a NaN/Inf loss gradient is refused", "[runtime][plugin-errors]") {
  SECTION("value") {
    std::string text = pipeline(good_encoder, good_miner, "plugin = \"bad_loss\"\nfault = \"nan_value\"");
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "loss", "bad_loss", "loss") +
                           ": compute() returned a loss that is not finite (nan) at step 0");
  }
  SECTION("NaN gradient") {
    std::string text = pipeline(good_encoder, good_miner, "plugin = \"bad_loss\"\nfault = \"nan_grad\"");
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "loss", "bad_loss", "loss") +
                           ": the gradient compute() returned holds nan at row 1, column 2 (step 0)");
  }
  SECTION("Inf gradient") {
    std::string text = pipeline(good_encoder, good_miner, "plugin = \"bad_loss\"\nfault = \"inf_grad\"");
    Failure f = run_failing(text);
    CHECK(f.message == "train stage (step 0): " + label(f, text, "loss", "bad_loss", "loss") +
                           ": the gradient compute() returned holds inf at row 1, column 2 (step 0)");
  }
}

TEST_CASE("plugin errors: the well-behaved fixture plugins train", "[runtime][plugin-errors]") {
  std::string text = pipeline("plugin = \"bad_encoder\"", "plugin = \"bad_miner\"", "plugin = \"bad_loss\"");
  test::TempDir dir("errors");
  std::string file = dir.file("p.toml");
  test::write_file(file, text);
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(file, {}, reg);
  RunSummary s = run_pipeline(spec, reg, RunOptions{});
  CHECK(s.steps == 3);
}

TEST_CASE("plugin errors: a schema() that throws refuses its library, and the pipeline naming it says why",
          "[runtime][plugin-errors]") {
  std::string dir = std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/throwing_schema";
  std::string lib = dir + "/libthrowing_schema.so";
  PluginRegistry reg;
  try {
    reg.load_library(lib);
    FAIL("the library was accepted");
  } catch (const PluginError& e) {
    CHECK(std::string(e.what()) == lib +
                                       ": the schema of its miner plugin #0 is invalid: it threw something "
                                       "that is not a std::exception");
  }
  // A pipeline naming a plugin of an invalid library: the error is at the
  // plugin's line and carries the library's problem.
  std::string text = pipeline(good_encoder, "plugin = \"bad_schema\"", good_loss);
  auto at = text.find(fixture_dir);
  text.replace(at, fixture_dir.size(), std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/bad_schema");
  test::TempDir tmp("errors");
  std::string file = tmp.file("p.toml");
  test::write_file(file, text);
  PluginRegistry reg2;
  try {
    load_pipeline(file, {}, reg2);
    FAIL("the pipeline was accepted");
  } catch (const ConfigError& e) {
    std::string bad = std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/bad_schema/libbad_schema.so";
    CHECK_THAT(e.what(), Catch::StartsWith(file + ":" + std::to_string(line_of(text, "[miner]") + 1) +
                                           ":10: error: miner.plugin: unknown miner plugin 'bad_schema'"));
    CHECK_THAT(e.what(), Catch::Contains("\n  note: " + bad +
                                         ": the schema of its miner plugin #0 is invalid: schema of plugin "
                                         "'bad_schema' declares parameter 'margin' twice"));
  }
}

TEST_CASE("plugin errors: the CLI reports a misbehaving plugin and exits 1 without crashing",
          "[runtime][plugin-errors][cli]") {
  test::TempDir dir("errors");
  std::string file = dir.file("p.toml");
  test::write_file(file, pipeline(good_encoder, good_miner, "plugin = \"bad_loss\"\nfault = \"non_std\""));
  const test::CommandResult r = test::run_cli("run " + file);
  const std::string& out = r.out;
  INFO(out);
  CHECK(r.status == 1);  // an exit, not a signal (-1)
  CHECK_THAT(out, Catch::Contains("loss 'bad_loss' ([loss] at " + file + ":"));
  CHECK_THAT(out, Catch::Contains(", library " + fixture_lib +
                                  "): compute() failed: it threw something that is not a std::exception\n"));
}

// `text` as a regular expression matching itself.
std::string literal(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::string("\\^$.|?*+()[]{}").find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

TEST_CASE("watchdog: a plugin call that does not return stops the run, naming the stage, the step and the call",
          "[runtime][plugin-errors][watchdog]") {
  test::TempDir dir("watchdog");
  const std::string file = dir.file("p.toml");
  const std::string run_dir = dir.file("run");
  std::string text;
  std::string who;  // a pattern
  auto watched = [](std::string t) { return t.replace(t.find("[runtime]\n"), 10, "[runtime]\nstage_timeout_s = 1\n"); };
  SECTION("a loss, in the train stage") {
    text = watched(pipeline(good_encoder, good_miner, "plugin = \"bad_loss\"\nfault = \"hang\""));
    who = literal("train stage (step 0): " + label({file, ""}, text, "loss", "bad_loss", "loss") + ": compute()");
  }
  SECTION("a source, in the load stage") {
    text = watched(pipeline(good_encoder, good_miner, good_loss));
    const std::string synthetic = "plugin = \"synthetic\"\nsize = 64\nheight = 8\nwidth = 8";
    text.replace(text.find(synthetic), synthetic.size(), "plugin = \"bad_source\"\nfault = \"hang\"");
    // Loads of several steps run at once: any of them may be found first.
    who = literal("load stage (step ") + "[0-9]+" +
          literal("): " + label({file, ""}, text, "source", "bad_source", "source"));
  }
  test::write_file(file, text);
  const auto start = std::chrono::steady_clock::now();
  const test::CommandResult r = test::run_cli("run " + file + " --run-dir " + run_dir, "2>&1 >/dev/null");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(r.out);
  CHECK(r.status == 1);
  CHECK(seconds < 30);  // the plugin's call would last 60 s
  CHECK_THAT(r.out, Catch::Matches(who + literal(" has not returned after ") + "[12]" +
                                   literal(" s (over [runtime] stage_timeout_s = 1 s); the run stops, and a resume "
                                           "continues from its last checkpoint\n")));
  CHECK_THAT(test::read_file(run_dir + "/summary.json"), Catch::Contains("has not returned after"));
}
