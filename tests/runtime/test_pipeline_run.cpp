#include "assembly/load_pipeline.hpp"
#include "graph/pipeline_run.hpp"
#include "loader/registry.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <numeric>

using namespace contra;
using namespace contra::runtime;
namespace fs = std::filesystem;

namespace {

const char* small_pipeline = R"(
[pipeline]
seed = 11

[runtime]
prefetch = 3
compute_threads = 1

[train]
epochs = 2

[source]
plugin = "synthetic"
size = 256
height = 16
width = 16

[sampler]
plugin = "random"
batch_size = 32

[augment]
views = 2

[[augment.chain]]
plugin = "random_resized_crop"
size = 16
scale = [0.5, 1.0]

[[augment.chain]]
plugin = "horizontal_flip"

[[augment.chain]]
plugin = "normalize"
mean = [0.5]
std = [0.25]

[encoder]
plugin = "mlp"
hidden = [64]
output = 32

[loss]
plugin = "info_nce"
temperature = 0.5

[optimizer]
plugin = "sgd"
lr = 0.05
)";

RunSummary run_text(const std::string& text, const std::vector<std::string>& overrides) {
  test::TempDir dir("run");
  std::string file = dir.file("p.toml");
  test::write_file(file, text);
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(file, overrides, reg);
  return run_pipeline(spec, reg, RunOptions{});
}

double mean(const std::vector<double>& v, std::size_t a, std::size_t b) {
  return std::accumulate(v.begin() + a, v.begin() + b, 0.0) / static_cast<double>(b - a);
}

}  // namespace

TEST_CASE("pipeline: the same seed gives the same per-step losses with 1 and 2 data threads",
          "[runtime][pipeline]") {
  RunSummary one = run_text(small_pipeline, {"runtime.data_threads=1"});
  RunSummary two = run_text(small_pipeline, {"runtime.data_threads=2"});
  REQUIRE(one.losses.size() == 16);
  CHECK(one.losses == two.losses);
  RunSummary other_seed = run_text(small_pipeline, {"runtime.data_threads=2", "pipeline.seed=12"});
  CHECK(other_seed.losses != one.losses);
}

TEST_CASE("pipeline: a small synthetic run learns and reports every stage", "[runtime][pipeline]") {
  RunSummary s = run_text(small_pipeline, {"train.epochs=6"});
  REQUIRE(s.steps == 48);
  CHECK(mean(s.losses, 40, 48) < mean(s.losses, 0, 8) - 0.1);
  for (const char* stage : {"plan", "load", "augment", "train", "sink"}) {
    INFO(stage);
    CHECK(s.telemetry.stage(stage).calls == (std::string(stage) == "plan" ? 49 : 48));
  }
  CHECK(s.images == 48 * 32 * 2);
  CHECK(s.telemetry.max_in_flight <= max_batches_alive(3));
  CHECK(format_stage_table(s).find("augment") != std::string::npos);
}

TEST_CASE("pipeline: a projection head trains with the encoder under a cosine schedule", "[runtime][pipeline]") {
  std::string text = std::string(small_pipeline) +
                     "\n[head]\nplugin = \"mlp\"\nhidden = [32]\noutput = 16\n"
                     "\n[schedule]\nkind = \"cosine\"\nwarmup_epochs = 1.0\n";
  RunSummary s = run_text(text, {"train.epochs=6"});
  REQUIRE(s.steps == 48);
  CHECK(mean(s.losses, 40, 48) < mean(s.losses, 0, 8) - 0.1);
  RunSummary plain = run_text(small_pipeline, {"train.epochs=6"});
  CHECK(plain.losses != s.losses);  // the head and schedule changed what was trained
}

TEST_CASE("pipeline: a failing augmentation stops the run naming stage, plugin and location",
          "[runtime][pipeline]") {
  std::string text = std::string(small_pipeline) +
                     "\n[plugins]\npaths = [\"" + CONTRA_FIXTURE_PLUGIN_DIR + "/failing_augment\"]\n";
  // Put the failing augmentation first in the chain.
  auto pos = text.find("[[augment.chain]]");
  text.insert(pos, "[[augment.chain]]\nplugin = \"failing_augment\"\nfail_after = 100\n\n");
  try {
    run_text(text, {});
    FAIL("the run did not fail");
  } catch (const PluginError& e) {
    std::string msg = e.what();
    INFO(msg);
    CHECK_THAT(msg, Catch::StartsWith("augment stage: augmentation 'failing_augment' ([augment.chain[0]] at "));
    CHECK_THAT(msg, Catch::Contains("p.toml:25:1, library " + std::string(CONTRA_FIXTURE_PLUGIN_DIR) +
                                    "/failing_augment/libfailing_augment.so) failed on sample "));
    CHECK_THAT(msg, Catch::EndsWith("): failing on purpose"));
  }
}

TEST_CASE("pipeline: a chain that cannot fit is refused before the run", "[runtime][pipeline]") {
  std::string text = small_pipeline;
  text += "\n[[augment.chain]]\nplugin = \"random_resized_crop\"\n";  // u8 transform after normalize
  try {
    run_text(text, {});
    FAIL("the run did not fail");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::StartsWith("augmentation 'random_resized_crop' ([augment.chain[3]] at "));
  }
}

TEST_CASE("pipeline: quickstart on Fashion-MNIST runs and its loss falls", "[runtime][pipeline][e2e]") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    WARN("SKIPPED: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(std::string(CONTRA_SOURCE_DIR) + "/pipelines/quickstart.toml",
                                    {"train.max_steps=200"}, reg);
  RunSummary s = run_pipeline(spec, reg, RunOptions{});
  REQUIRE(s.steps == 200);
  INFO("first 10 steps " << mean(s.losses, 0, 10) << ", last 10 steps " << mean(s.losses, 190, 200));
  CHECK(mean(s.losses, 190, 200) < 0.85 * mean(s.losses, 0, 10));
}

TEST_CASE("pipeline: simclr_fashion_mnist with seed_resnet and a projection head learns",
          "[runtime][pipeline][e2e]") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    WARN("SKIPPED: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(std::string(CONTRA_SOURCE_DIR) + "/pipelines/simclr_fashion_mnist.toml",
                                    {"sampler.batch_size=64", "train.max_steps=40", "schedule.kind=\"constant\"",
                                     "schedule.warmup_epochs=0", "eval.at_end=false"},
                                    reg);
  RunSummary s = run_pipeline(spec, reg, RunOptions{});
  REQUIRE(s.steps == 40);
  INFO("first 10 steps " << mean(s.losses, 0, 10) << ", last 10 steps " << mean(s.losses, 30, 40));
  CHECK(mean(s.losses, 30, 40) < 0.95 * mean(s.losses, 0, 10));
}

TEST_CASE("pipeline: every mining pipeline runs on Fashion-MNIST and its loss falls", "[runtime][pipeline][e2e]") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    WARN("SKIPPED: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  // Small and short: a narrow encoder, small batches, 40 steps, constant rate.
  const std::vector<std::string> shrink{"encoder.width=8", "train.max_steps=40", "schedule.kind=\"constant\"",
                                        "schedule.warmup_epochs=0"};
  struct Case {
    std::string pipeline;
    std::vector<std::string> overrides;
    std::size_t from;  // first window: steps [from, from + 10)
  };
  const std::vector<Case> cases{
      {"triplet_semi_hard", {"sampler.batch_size=64"}, 0},
      {"contrastive_margin", {"sampler.batch_size=64"}, 0},
      // The queue must fill before the loss means the same thing from step to step.
      {"moco_queue", {"sampler.batch_size=64", "memory.size=256", "memory.momentum=0.9"}, 10},
      {"supcon", {"sampler.samples_per_class=6"}, 0},
      {"hcl", {"sampler.batch_size=64"}, 0},
      {"debiased", {"sampler.batch_size=64"}, 0},
      {"neighbor_batches", {"sampler.batch_size=64", "sampler.refresh=10"}, 0},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.pipeline) {
      std::vector<std::string> o = shrink;
      o.insert(o.end(), c.overrides.begin(), c.overrides.end());
      PluginRegistry reg;
      PipelineSpec spec = load_pipeline(std::string(CONTRA_SOURCE_DIR) + "/pipelines/" + c.pipeline + ".toml", o, reg);
      RunSummary s = run_pipeline(spec, reg, RunOptions{});
      REQUIRE(s.steps == 40);
      INFO("steps " << c.from << "-" << c.from + 9 << ": " << mean(s.losses, c.from, c.from + 10)
                    << ", steps 30-39: " << mean(s.losses, 30, 40));
      CHECK(mean(s.losses, 30, 40) < mean(s.losses, c.from, c.from + 10));
    }
  }
}

namespace {
std::string replace_loss(std::string text, const std::string& loss) {
  const std::string from = "[loss]\nplugin = \"info_nce\"\n";
  return text.replace(text.find(from), from.size(), "[loss]\nplugin = \"" + loss + "\"\n");
}
}  // namespace

TEST_CASE("pipeline: check_pipeline (validate) says what a run would say before its first batch",
          "[runtime][pipeline]") {
  test::TempDir dir("check");
  auto check = [&](const std::string& text) {
    test::write_file(dir.file("p.toml"), text);
    PluginRegistry reg;
    PipelineSpec spec = load_pipeline(dir.file("p.toml"), {}, reg);
    check_pipeline(spec, reg);
  };
  const std::string base = "[source]\nplugin = \"synthetic\"\nheight = 4\nwidth = 4\nsize = 8\n"
                           "[loss]\nplugin = \"info_nce\"\n[optimizer]\nplugin = \"sgd\"\n";
  CHECK_NOTHROW(check(base + "[encoder]\nplugin = \"mlp\"\n[sampler]\nplugin = \"random\"\nbatch_size = 4\n"));
  // The sampler, configured for the data: 8 samples make no batch of 256.
  CHECK_THROWS_WITH(check(base + "[encoder]\nplugin = \"mlp\"\n"),
                    Catch::Contains("random: the data set has 8 samples, fewer than one batch of 256"));
  // The encoder, built for the views' images: a head cannot take images.
  CHECK_THROWS_WITH(check(base + "[encoder]\nplugin = \"projection_head\"\n[sampler]\nplugin = \"random\"\n"
                                 "batch_size = 4\n"),
                    Catch::Contains("projection_head: takes feature vectors [D], got inputs of shape [1, 4, 4]"));
  // A loss that cannot use what its miner fills: the triplet loss, given
  // multi_similarity's positive and negative pairs.
  CHECK_NOTHROW(check(base + "[encoder]\nplugin = \"mlp\"\n[sampler]\nplugin = \"random\"\nbatch_size = 4\n"
                             "[miner]\nplugin = \"multi_similarity\"\n"));
  // Batches of one sample: no negatives, a loss of 0 at every step.
  CHECK_THROWS_WITH(check(base + "[encoder]\nplugin = \"mlp\"\n[sampler]\nplugin = \"random\"\nbatch_size = 1\n"),
                    Catch::Contains("): plans batches of 1 sample, whose views have no negatives to contrast with "
                                    "(the loss would be 0 at every step); plan at least 2 samples a batch, or add a "
                                    "[memory]"));
  try {
    check(replace_loss(base, "triplet") + "[encoder]\nplugin = \"mlp\"\n[sampler]\nplugin = \"random\"\n"
                                          "batch_size = 4\n[miner]\nplugin = \"multi_similarity\"\n");
    FAIL("no error");
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    CHECK_THAT(m, Catch::StartsWith("loss 'triplet' ([loss] at " + dir.file("p.toml") + ":"));
    CHECK_THAT(m, Catch::Contains("): Pairs::positive is not supported; it takes Pairs::all (the all_pairs miner), "
                                  "or Pairs::triplets (a triplet miner); miner 'multi_similarity' ([miner] at "));
    CHECK_THAT(m, Catch::EndsWith(") fills Pairs::positive and Pairs::negative"));
  }
  // Synthetic negatives (mochi) need a loss that takes them: info_nce's CPU build.
  CHECK_NOTHROW(check(base + "[encoder]\nplugin = \"mlp\"\n[sampler]\nplugin = \"random\"\nbatch_size = 4\n"
                             "[miner]\nplugin = \"mochi\"\n"));
  CHECK_THROWS_WITH(check(replace_loss(base, "hcl") + "[encoder]\nplugin = \"mlp\"\n[sampler]\nplugin = \"random\"\n"
                                                     "batch_size = 4\n[miner]\nplugin = \"mochi\"\n"),
                    Catch::Contains("Pairs::synthetic_negative is not supported; it takes Pairs::all (the all_pairs "
                                    "miner), or Pairs::negative and/or Pairs::memory_negative with optional "
                                    "Pairs::positive; miner 'mochi' ([miner] at "));
}
