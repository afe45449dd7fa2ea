// What a pipeline will allocate, estimated before its first batch
// (graph/memory_estimate.hpp), and the sizes refused before they are
// allocated: by the pipeline (check_pipeline(), `contra validate`, `contra
// run`), by the plugins that allocate from their parameters
// (contra/memory_budget.hpp), and by the backstops for std::bad_alloc.
// CONTRA_MEMORY_AVAILABLE fixes what "this machine" has, so that every
// machine says the same figures.
#include "assembly/load_pipeline.hpp"
#include "graph/memory_estimate.hpp"
#include "graph/pipeline_run.hpp"
#include "loader/registry.hpp"

#include "cli_runner.hpp"
#include "scoped_env.hpp"
#include "test_support.hpp"

#include <contra/errors.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

using namespace contra;
using namespace contra::runtime;
using contra::test::ScopedEnv;

namespace {

const std::string quickstart = std::string(CONTRA_SOURCE_DIR) + "/pipelines/quickstart.toml";
const std::string moco = std::string(CONTRA_SOURCE_DIR) + "/pipelines/moco_queue.toml";

// check_pipeline() of `file` with `overrides`; the spec stays for labels.
std::string check_error(const std::string& file, const std::vector<std::string>& overrides, PipelineSpec* spec_out) {
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(file, overrides, reg);
  if (spec_out) *spec_out = spec;
  try {
    check_pipeline(spec, reg);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

const MemoryItem& item(const MemoryEstimate& e, const std::string& what) {
  for (const MemoryItem& i : e.items)
    if (i.what == what) return i;
  FAIL("no item " << what);
  throw;
}

// The peak resident memory, in bytes, of `command` run to its end (its
// output discarded), and its exit status; 0 without GNU time. Measured by
// /usr/bin/time, a small process: the rusage of a child forked from this test
// process would count this process's memory (a fork's high-water mark
// carries over its exec).
std::uint64_t peak_rss(const std::string& command, int& status) {
  if (access("/usr/bin/time", X_OK) != 0) return 0;
  test::TempDir dir("peak");
  const std::string out = dir.file("peak");
  status = test::run_shell("/usr/bin/time -o " + out + " -f %M " + command + " >/dev/null 2>&1").status;
  std::ifstream f(out);
  std::string line, last;
  while (std::getline(f, line))
    if (!line.empty()) last = line;  // "Command exited with non-zero status N" comes first
  return last.empty() ? 0 : std::stoull(last) * 1024;  // KiB
}

}  // namespace

TEST_CASE("memory: validate estimates a pipeline's memory by its first step, part by part",
          "[runtime][memory]") {
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(quickstart, {}, reg);
  const MemoryEstimate e = check_pipeline(spec, reg);
  // 6 slots ([runtime] prefetch = 4, plus 2) × 256 samples × (a decoded
  // 28×28 u8 image + 2 views × (the f32 1×28×28 view + the chain's two
  // buffers: random_resized_crop, then normalize, write the first, u8 then
  // f32; horizontal_flip the second, u8)).
  const MemoryItem& batches = item(e, "batches in flight");
  CHECK(batches.bytes == 6ull * 256 * (784 + 2 * (3136 + 3136 + 784)));
  CHECK(batches.how == "6 batch slots ([runtime] prefetch = 4, plus 2) × sampler.batch_size = 256 × 2 views "
                       "([augment] views = 2) of f32 1×28×28 (augment.chain[0].size = 28, 'random_resized_crop'), "
                       "with their decoded images and augmentation buffers");
  CHECK_FALSE(batches.held);
  // mlp 784 → 512 → 128: weights, biases and their gradients, f32.
  const std::uint64_t params = 784 * 512 + 512 + 512 * 128 + 128;
  CHECK(item(e, "encoder").bytes == params * 8);
  CHECK(item(e, "encoder").held);
  // sgd with momentum: one buffer per parameter, and its step count.
  CHECK(item(e, "optimizer state").bytes == params * 4 + 8);
  // The activations, measured on fresh instances: at least what any encoder
  // keeps (the input copy, the output and its gradient: 512 rows × (784 +
  // 2·128) f32, 2.0 MiB), at most 4 × what this mlp's layers keep at 512 rows
  // (the input copy, the hidden layer's output, ReLU and their gradients, the
  // output and its gradient: 512 × (784 + 4·512 + 2·128) f32, 6.1 MiB):
  // malloc's own bytes on the probes' 2- and 4-row tensors, and oneDNN's
  // scratchpads, come on top (about 10 MiB here).
  const MemoryItem& activations = item(e, "encoder activations");
  CHECK_FALSE(activations.lower_bound);
  CHECK(activations.bytes >= 512ull * (784 + 2 * 128) * 4);
  CHECK(activations.bytes <= 4 * 512ull * (784 + 4 * 512 + 2 * 128) * 4);
  CHECK_THAT(activations.how, Catch::StartsWith("measured: a fresh encoder keeps "));
  CHECK_THAT(activations.how, Catch::EndsWith(" of 4, extrapolated to M = 512 rows"));
  // A lower bound: one 512 × 512 matrix of similarities.
  CHECK(item(e, "similarities").bytes == 512ull * 512 * 4);
  CHECK(item(e, "similarities").lower_bound);
  CHECK(e.items.size() == 5);
  CHECK(e.left_out.empty());
  CHECK_THAT(e.summary(), Catch::StartsWith("about "));
  CHECK_THAT(e.summary(), Catch::Contains(" by the first step: batches in flight 21.8 MiB, "));
  CHECK_THAT(e.summary(), Catch::Contains(", similarities ≥ 1.0 MiB"));
  CHECK(e.held() == params * 12 + 8);
}

TEST_CASE("memory: a momentum encoder, a head and a queue are counted from their tensors", "[runtime][memory]") {
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(moco, {}, reg);
  const MemoryEstimate e = check_pipeline(spec, reg);
  CHECK(item(e, "momentum encoder").bytes == item(e, "encoder").bytes);
  CHECK(item(e, "momentum head").bytes == item(e, "head").bytes);
  // The queue: 4096 keys × 128 f32, their ids and labels (i64), its pointer.
  CHECK(item(e, "memory").bytes == 4096ull * 128 * 4 + 2 * 4096 * 8 + 8);
  CHECK(item(e, "memory").how == "[memory] 'queue' (memory.size = 4096): its state() tensors, the largest "
                                 "queue.keys [4096, 128] f32");
  // 512 rows against themselves and the 4096 keys.
  CHECK(item(e, "similarities").bytes == 512ull * (512 + 4096) * 4);
}

TEST_CASE("memory: sizes no machine has are refused at validate, naming the key and the figure",
          "[runtime][memory]") {
  const ScopedEnv budget("CONTRA_MEMORY_AVAILABLE", "16GiB");
  const std::string has = "; this machine has 16.0 GiB available (CONTRA_MEMORY_AVAILABLE)";
  PipelineSpec spec;

  SECTION("a crop: the batches in flight, before the trainer allocates anything") {
    CHECK(check_error(quickstart, {"augment.chain.0.size=4096"}, &spec) ==
          quickstart +
              ": the pipeline needs about 432 GiB by its first step (batches in flight 432 GiB: 6 batch slots "
              "([runtime] prefetch = 4, plus 2) × sampler.batch_size = 256 × 2 views ([augment] views = 2) of f32 "
              "1×4096×4096 (augment.chain[0].size = 4096, 'random_resized_crop'), with their decoded images and "
              "augmentation buffers)" + has);
  }
  SECTION("a deep, wide mlp: its weights, before build() allocates them") {
    const std::string hidden = "[65536, 65536, 65536, 65536, 65536, 65536, 65536, 65536]";
    const std::string msg = check_error(quickstart, {"encoder.hidden=" + hidden}, &spec);
    CHECK(msg == spec.encoder.label() + ": build() failed: encoder.hidden = " + hidden +
                     " needs 224 GiB of weights and gradients (30125064320 parameters × 4 B × 2; largest layer fc1: "
                     "65536 × 65536, for inputs [1, 28, 28])" + has);
  }
  SECTION("a queue: its keys, before configure() allocates them") {
    const std::string msg = check_error(moco, {"memory.size=10000000000"}, &spec);
    CHECK(msg == spec.memory.label() + ": configure() failed: memory.size = 10000000000 needs 4.8 TiB of keys, ids "
                                       "and labels (10000000000 × (128 f32 + 2 i64))" + has);
  }
  SECTION("a batch whose similarities alone exceed the machine") {
    const ScopedEnv smaller("CONTRA_MEMORY_AVAILABLE", "8GiB");
    const std::string msg = check_error(quickstart, {"sampler.batch_size=30000"}, &spec);
    // The total holds the measured activations (about 1 GiB): not a fixed figure.
    CHECK_THAT(msg, Catch::StartsWith(quickstart + ": the pipeline needs about "));
    CHECK_THAT(msg, Catch::EndsWith(" GiB by its first step (similarities ≥ 13.4 GiB: at least one M × (M) f32 matrix "
                                    "for the miner and loss, M = 60000 rows (30000 samples × 2 views)); this machine "
                                    "has 8.0 GiB available (CONTRA_MEMORY_AVAILABLE)"));
  }
}

TEST_CASE("memory: std::bad_alloc where a plugin is created or built names the plugin and its table",
          "[runtime][memory]") {
  const ScopedEnv budget("CONTRA_MEMORY_AVAILABLE", "16GiB");
  test::TempDir dir("greedy");
  const std::string file = dir.file("p.toml");
  auto pipeline = [&](const std::string& fault) {
    test::write_file(file, "[plugins]\npaths = [\"" + std::string(CONTRA_FIXTURE_PLUGIN_DIR) +
                               "/greedy\"]\n"
                               "[source]\nplugin = \"synthetic\"\nsize = 16\nheight = 4\nwidth = 4\n"
                               "[sampler]\nplugin = \"random\"\nbatch_size = 4\n"
                               "[encoder]\nplugin = \"greedy_encoder\"\nfault = \"" + fault + "\"\n"
                               "[loss]\nplugin = \"info_nce\"\n[optimizer]\nplugin = \"sgd\"\n");
    return file;
  };
  const std::string oom = "out of memory (std::bad_alloc): the sizes its table sets need more than this machine "
                          "has, 16.0 GiB available (CONTRA_MEMORY_AVAILABLE)";
  PipelineSpec spec;
  const std::string in_constructor = check_error(pipeline("constructor"), {}, &spec);
  CHECK(in_constructor == spec.encoder.label() + ": " + oom);
  CHECK_THAT(spec.encoder.label(), Catch::StartsWith("encoder 'greedy_encoder' ([encoder] at " + file + ":"));
  const std::string in_build = check_error(pipeline("build"), {}, &spec);
  CHECK(in_build == spec.encoder.label() + ": build() failed: " + oom);
}

TEST_CASE("memory: the CLI prints the estimate of a valid pipeline and refuses one that cannot fit",
          "[runtime][memory][cli]") {
  const test::CommandResult ok = test::run_cli("validate " + quickstart);
  CHECK(ok.status == 0);
  CHECK_THAT(ok.out, Catch::Contains("quickstart.toml: memory: about "));
  CHECK_THAT(ok.out, Catch::Contains(" by the first step: batches in flight 21.8 MiB, "));
  CHECK_THAT(ok.out, Catch::Contains(", similarities ≥ 1.0 MiB; this machine has "));
  const ScopedEnv budget("CONTRA_MEMORY_AVAILABLE", "16GiB");  // the child's environment too
  const test::CommandResult big = test::run_cli("validate " + quickstart + " --set augment.chain.0.size=4096");
  CHECK(big.status == 1);
  CHECK(big.out == quickstart +
                       ": the pipeline needs about 432 GiB by its first step (batches in flight 432 GiB: 6 batch slots "
                       "([runtime] prefetch = 4, plus 2) × sampler.batch_size = 256 × 2 views ([augment] views = 2) of "
                       "f32 1×4096×4096 (augment.chain[0].size = 4096, 'random_resized_crop'), with their decoded "
                       "images and augmentation buffers); this machine has 16.0 GiB available "
                       "(CONTRA_MEMORY_AVAILABLE)\n");
  // run refuses it alike, before any batch.
  const test::CommandResult run = test::run_cli("run " + quickstart + " --no-record --set augment.chain.0.size=4096");
  CHECK(run.status == 1);
  CHECK_THAT(run.out, Catch::Contains(": the pipeline needs about 432 GiB by its first step"));
}

TEST_CASE("memory: the estimate is within a sane band of what a run uses", "[runtime][memory][cli]") {
  // validate builds what a run holds before its first batch (the source's
  // data, the encoder, the optimizer's state, the memory) and no batch: the
  // run's peak beyond validate's is what the estimate says is still to come
  // (the batches in flight, the first step's activations and similarities).
  // An mlp, and a convolutional encoder with a head, a momentum copy and a
  // queue, whose activations are most of it. Pipelines without [eval]: the
  // evaluation is not estimated.
  struct Case {
    std::string file;
    std::vector<std::string> overrides;
  };
  const std::vector<Case> cases{{quickstart, {}}, {moco, {"sampler.batch_size=32"}}};
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.file) {
      PluginRegistry reg;
      PipelineSpec spec = load_pipeline(c.file, c.overrides, reg);
      const MemoryEstimate e = check_pipeline(spec, reg);
      const std::uint64_t to_come = e.total() - e.held();
      std::string sets;
      for (const std::string& o : c.overrides) sets += " --set " + o;
      const std::string contra = std::string(CONTRA_BINARY_DIR) + "/bin/contra ";
      int status = 0;
      const std::uint64_t validate_peak = peak_rss(contra + "validate " + c.file + sets, status);
      if (validate_peak == 0) {
        WARN("SKIPPED: no /usr/bin/time (GNU time) to measure the runs' peak memory with");
        return;
      }
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
      // A sanitizer's shadow memory and quarantine are most of the resident set.
      WARN("SKIPPED: resident memory under a sanitizer is not what a run uses");
      return;
#endif
      REQUIRE(status == 0);
      const std::uint64_t run_peak =
          peak_rss(contra + "run " + c.file + sets + " --no-record --set train.max_steps=8", status);
      REQUIRE(status == 0);
      const std::uint64_t grown = run_peak > validate_peak ? run_peak - validate_peak : 0;
      INFO(e.summary() << "\nto come " << bytes_text(to_come) << ", validate's peak " << bytes_text(validate_peak)
                       << ", the run's " << bytes_text(run_peak));
      // At least 0.6: the estimate counts all prefetch + 2 batch slots, of
      // which a run keeps prefetch + 1 alive at once; the probes measure the
      // momentum encoder's forward on its own, which the run's key forward
      // may partly share with the encoder's buffers freed by then.
      CHECK(grown >= to_come * 6 / 10);
      // At most 1.5, plus 16 MiB: the activations are measured as what the
      // encoder keeps after backward(), not the temporaries within it; the
      // miner's and loss's matrices are a lower bound (one); the run's
      // threads have allocator arenas of their own. (Measured on two cores:
      // 1.0 to 1.1 × for quickstart, about 0.9 × for moco_queue.)
      CHECK(grown <= to_come * 3 / 2 + (16ull << 20));
    }
  }
}
