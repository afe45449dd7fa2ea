// Pipelines of several towers ([tower.NAME]): a paired source's captions
// through a tokenizer into a text encoder, contrasted with the images. The
// plugins are tests/fixtures/plugins/paired.cpp (paired_bars, word_ids,
// token_mean) and the built-in ones.
#include "assembly/load_pipeline.hpp"
#include "graph/pipeline_run.hpp"
#include "loader/registry.hpp"
#include "train/safetensors.hpp"
#include "test_support.hpp"

#include <contra/errors.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <numeric>
#include <string>

using namespace contra;
using namespace contra::runtime;

namespace {

const std::string fixture_dir = std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/paired";

std::string pipeline(const std::string& source_extra = "", const std::string& tower_extra = "",
                     const std::string& more = "") {
  return "[pipeline]\nseed = 5\n\n"
         "[runtime]\nprefetch = 2\ncompute_threads = 1\ndata_threads = 1\n\n"
         "[train]\nepochs = 10\n\n"
         "[plugins]\npaths = [\"" + fixture_dir + "\"]\n\n"
         "[source]\nplugin = \"paired_bars\"\nsize = 64\n" + source_extra + "\n"
         "[sampler]\nplugin = \"random\"\nbatch_size = 16\n\n"
         "[augment]\nviews = 1\n\n"
         "[[augment.chain]]\nplugin = \"normalize\"\nmean = [0.5]\nstd = [0.25]\n\n"
         "[encoder]\nplugin = \"mlp\"\nhidden = [32]\noutput = 8\n\n"
         "[tower.text]\nfield = \"caption\"\nlength = 6\n" + tower_extra + "\n"
         "[tower.text.tokenizer]\nplugin = \"word_ids\"\n\n"
         "[tower.text.encoder]\nplugin = \"token_mean\"\noutput = 8\n\n"
         "[loss]\nplugin = \"info_nce\"\ntemperature = 0.2\n\n"
         "[optimizer]\nplugin = \"adam\"\nlr = 0.01\n" + more;
}

struct Run {
  RunSummary summary;
  std::string run_dir;
};

Run run_text(const test::TempDir& dir, const std::string& text, bool record = false) {
  const std::string file = dir.file("p.toml");
  test::write_file(file, text);
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(file, {}, reg);
  RunOptions options;
  if (record) options.run_dir = dir.file("run");
  return {run_pipeline(spec, reg, options), options.run_dir};
}

std::string config_error(const std::string& text) {
  test::TempDir dir("towers");
  const std::string file = dir.file("p.toml");
  test::write_file(file, text);
  PluginRegistry reg;
  try {
    PipelineSpec spec = load_pipeline(file, {}, reg);
    run_pipeline(spec, reg, RunOptions{});
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("no error");
  return "";
}

// `text` with its first `from` replaced by `to`.
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

double mean(const std::vector<double>& v, std::size_t a, std::size_t b) {
  return std::accumulate(v.begin() + a, v.begin() + b, 0.0) / static_cast<double>(b - a);
}

}  // namespace

TEST_CASE("towers: images and their captions trained together, the loss falls and the run repeats", "[towers]") {
  test::TempDir dir("towers");
  const Run a = run_text(dir, pipeline(), true);
  REQUIRE(a.summary.losses.size() == 40);
  // Eight captions for eight bar positions: a text and its image become
  // each other's nearest; 2·log(16) ≈ 2.8 nats is where the loss starts.
  CHECK(mean(a.summary.losses, 0, 5) > 2.0);
  CHECK(mean(a.summary.losses, 35, 40) < mean(a.summary.losses, 0, 5) - 0.5);
  // Two views per sample: the image and its caption.
  CHECK(a.summary.images == 40 * 16 * 2);

  test::TempDir again("towers");
  const Run b = run_text(again, pipeline());
  CHECK(b.summary.losses == a.summary.losses);

  // The text tower's parameters, and the optimizer's state of them, are in the checkpoint.
  const SafetensorsFile ckpt = read_safetensors(a.summary.checkpoint);
  CHECK(ckpt.tensors.count("tower.text.encoder.embedding") == 1);
  CHECK(ckpt.tensors.at("tower.text.encoder.embedding").shape() == Shape{13, 8});
}

TEST_CASE("towers: the hardest captions for each image (cross_modal_hard) with info_nce", "[towers]") {
  test::TempDir dir("towers");
  const Run r = run_text(dir, replaced(pipeline(), "[loss]", "[miner]\nplugin = \"cross_modal_hard\"\nk = 4\n\n[loss]"));
  REQUIRE(r.summary.losses.size() == 40);
  // Against 4 negatives a row starts near log(5) = 1.6 nats, and learns.
  CHECK(mean(r.summary.losses, 35, 40) < mean(r.summary.losses, 0, 5) - 0.3);
}

TEST_CASE("towers: validate counts the text tower's weights and the caption rows in the similarities", "[towers]") {
  test::TempDir dir("towers");
  const std::string file = dir.file("p.toml");
  test::write_file(file, pipeline());
  PluginRegistry reg;
  const PipelineSpec spec = load_pipeline(file, {}, reg);
  const MemoryEstimate e = check_pipeline(spec, reg);
  std::map<std::string, const MemoryItem*> items;
  for (const MemoryItem& i : e.items) items[i.what] = &i;
  // token_mean: 13 ids × 8 features, f32 weights and gradients.
  REQUIRE(items.count("tower encoder") == 1);
  CHECK(items.at("tower encoder")->bytes == 13 * 8 * 4 * 2);
  // 16 samples × (1 image view + 1 caption) rows, a 32 × 32 f32 matrix.
  REQUIRE(items.count("similarities") == 1);
  CHECK(items.at("similarities")->bytes == 32 * 32 * 4);
}

TEST_CASE("towers: a loss's own parameters are trained and checkpointed (clip's temperature)", "[towers]") {
  test::TempDir dir("towers");
  const Run r = run_text(dir, replaced(pipeline(), "plugin = \"info_nce\"\ntemperature = 0.2", "plugin = \"clip\""), true);
  CHECK(mean(r.summary.losses, 35, 40) < mean(r.summary.losses, 0, 5) - 0.5);
  const SafetensorsFile ckpt = read_safetensors(r.summary.checkpoint);
  REQUIRE(ckpt.tensors.count("loss.logit_scale") == 1);
  // Adam moved t = log(1/T) away from log(1/0.07) = 2.659 (its first step
  // moves a parameter by lr = 0.01 whatever its gradient), and keeps its
  // moments: a gradient wiped before the update would leave t exactly there.
  const float t = ckpt.tensors.at("loss.logit_scale").data<float>()[0];
  CHECK(std::abs(t - std::log(1.0f / 0.07f)) > 1e-3f);
  CHECK(ckpt.tensors.count("optimizer.logit_scale.exp_avg") + ckpt.tensors.count("optimizer.logit_scale.m") >= 1);
}

TEST_CASE("towers: cross-modal evaluation of the trained towers, retrieval and zero-shot", "[towers]") {
  const std::string eval = "\n[eval]\nevery_epochs = 0\nbatch_size = 8\n\n"
                           "[eval.test]\nplugin = \"paired_bars\"\nsize = 24\n\n"
                           "[[eval.chain]]\nplugin = \"normalize\"\nmean = [0.5]\nstd = [0.25]\n\n"
                           "[[eval.evaluator]]\nplugin = \"retrieval\"\nk = [1, 2]\n\n"
                           "[[eval.evaluator]]\nplugin = \"zero_shot\"\ntemplates = [\"bar {}\"]\n";
  test::TempDir dir("towers");
  const Run r = run_text(dir, pipeline("", "", eval));
  std::map<std::string, double> figures(r.summary.eval.begin(), r.summary.eval.end());
  INFO(r.summary.eval_error);
  REQUIRE(r.summary.eval_error.empty());
  // 24 images of 8 bars against their 24 captions (3 per bar): a caption of
  // the same bar is the nearest for (nearly) every image after training.
  REQUIRE(figures.count("retrieval.i2t_r1") == 1);
  CHECK(figures.at("retrieval.i2t_r1") >= 0.75);
  CHECK(figures.at("retrieval.t2i_r1") >= 0.75);
  CHECK(figures.at("retrieval.i2t_r2") >= figures.at("retrieval.i2t_r1"));
  // The prompts "bar zero" .. "bar seven" are the captions themselves: the
  // zero-shot answer is the retrieval's.
  CHECK(figures.at("zero_shot.classes") == 8);
  CHECK(figures.at("zero_shot.top1") == Approx(figures.at("retrieval.i2t_r1")));

  SECTION("a test split without labels: each image matches its own caption alone") {
    // Eight samples, one per bar: eight distinct captions.
    std::string unlabelled = replaced(eval, "plugin = \"paired_bars\"\nsize = 24", "plugin = \"paired_bars\"\nsize = 8\nunlabelled = true");
    unlabelled = unlabelled.substr(0, unlabelled.find("\n[[eval.evaluator]]\nplugin = \"zero_shot\""));
    auto recall_at_1 = [&](const std::string& text) {
      test::TempDir other("towers");
      const Run u = run_text(other, text);
      std::map<std::string, double> f(u.summary.eval.begin(), u.summary.eval.end());
      INFO(u.summary.eval_error);
      REQUIRE(f.count("retrieval.t2i_r1") == 1);
      return std::pair(f.at("retrieval.i2t_r1"), f.at("retrieval.t2i_r1"));
    };
    // Trained, the towers match them; after one step they are near chance
    // (1/8): a caption matches no other image than its own.
    const auto trained = recall_at_1(pipeline("", "", unlabelled));
    CHECK(trained.first >= 0.75);
    CHECK(trained.second >= 0.75);
    const auto untrained = recall_at_1(replaced(pipeline("", "", unlabelled), "epochs = 10", "max_steps = 1"));
    CHECK(untrained.first < 0.75);
    CHECK(untrained.second < 0.75);
  }
  SECTION("contra eval of the run's checkpoint gives the run's figures") {
    test::TempDir other("towers");
    const Run recorded = run_text(other, pipeline("", "", eval), true);
    REQUIRE(!recorded.summary.checkpoint.empty());
    PluginRegistry reg;
    const PipelineSpec spec = load_pipeline(recorded.run_dir + "/pipeline.toml", {}, reg);
    const CheckpointEvaluation again = evaluate_checkpoint(spec, reg, recorded.summary.checkpoint, "");
    CHECK(again.step == recorded.summary.steps - 1);
    REQUIRE(again.figures.size() == recorded.summary.eval.size());
    for (std::size_t i = 0; i < again.figures.size(); ++i) {
      INFO(again.figures[i].first);
      CHECK(again.figures[i].first == recorded.summary.eval[i].first);
      CHECK(again.figures[i].second == recorded.summary.eval[i].second);
    }
  }
  SECTION("a cross-modal evaluator needs a text tower") {
    std::string one_tower = pipeline("", "", eval);
    one_tower.erase(one_tower.find("[tower.text]"), one_tower.find("[loss]") - one_tower.find("[tower.text]"));
    CHECK_THAT(config_error(one_tower),
               Catch::Contains("a cross-modal evaluator compares the pipeline's towers, and this pipeline has one; "
                               "add a text tower ([tower.NAME])"));
  }
}

TEST_CASE("towers: the captions' field, the tokenizer and the widths are checked before the run", "[towers]") {
  SECTION("a field the source does not have") {
    CHECK_THAT(config_error(replaced(pipeline(), "field = \"caption\"", "field = \"title\"")), Catch::Contains("tower.text: the source has no field \"title\"; its records hold "
                                                  "\"image\" (image), \"caption\" (text)"));
  }
  SECTION("an image field") {
    CHECK_THAT(config_error(replaced(pipeline(), "field = \"caption\"", "field = \"image\"")), Catch::Contains("tower.text: field \"image\" of the source holds images"));
  }
  SECTION("no tokenizer") {
    CHECK_THAT(config_error(replaced(pipeline(), "[tower.text.tokenizer]\nplugin = \"word_ids\"\n", "")), Catch::Contains("tower.text.tokenizer: missing [tower.text.tokenizer] (the "
                                                  "tower's tokenizer: plugin = \"...\")"));
  }
  SECTION("towers embedding into spaces of different widths") {
    CHECK_THAT(config_error(replaced(pipeline(), "plugin = \"token_mean\"\noutput = 8", "plugin = \"token_mean\"\noutput = 6")), Catch::Contains("tower.text: embeds into 6 dimensions, the first tower ([encoder]) "
                                                  "into 8; the towers must embed into one space"));
  }
  SECTION("a length too short for bos and eos") {
    CHECK_THAT(config_error(replaced(pipeline(), "length = 6", "length = 2")),
               Catch::Contains("tower.text.length"));
  }
  SECTION("a memory") {
    CHECK_THAT(config_error(pipeline("", "", "\n[memory]\nplugin = \"queue\"\nsize = 64\n")),
               Catch::Contains("a memory in a pipeline of several towers is not supported yet"));
  }
  SECTION("a source whose records lack the text") {
    CHECK_THAT(config_error(pipeline("bad_texts = true\n")),
               Catch::Contains("load_record() returned 0 texts for sample"));
  }
}
