// [data] (subset, shards, skipping bad samples, cache) and [augment] views
// (per-view chains, multi-crop).
#include "assembly/load_pipeline.hpp"
#include "graph/pipeline_run.hpp"
#include "loader/registry.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <set>

using namespace contra;
using namespace contra::runtime;

namespace {

std::string flaky(const std::string& extra_source) {
  return "[plugins]\npaths = [\"" + std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/flaky_source\"]\n"
         "[runtime]\ncompute_threads = 1\nprefetch = 2\n"
         "[source]\nplugin = \"flaky_source\"\n" + extra_source +
         "[sampler]\nplugin = \"random\"\nbatch_size = 8\n"
         "[encoder]\nplugin = \"mlp\"\nhidden = [8]\noutput = 4\n"
         "[loss]\nplugin = \"info_nce\"\n[optimizer]\nplugin = \"sgd\"\n";
}

struct Run {
  RunSummary summary;
  std::vector<std::vector<std::int64_t>> batches;  // sample ids per step
};

Run run(const std::string& text, const std::vector<std::string>& overrides = {}) {
  test::TempDir dir("data");
  test::write_file(dir.file("p.toml"), text);
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(dir.file("p.toml"), overrides, reg);
  Run r;
  RunOptions o;
  r.summary = run_pipeline(spec, reg, o);
  return r;
}

}  // namespace

TEST_CASE("data: subset and shards select the samples in use", "[runtime][data]") {
  // 64 samples, batch 8: the sampler sees 16 after a subset of 32 split in 2 shards.
  Run r = run(flaky("size = 64\n"), {"data.subset=32", "data.shard_count=2", "data.shard_rank=1", "train.epochs=1"});
  CHECK(r.summary.steps == 2);
  Run all = run(flaky("size = 64\n"), {"train.epochs=1"});
  CHECK(all.summary.steps == 8);
  Run random = run(flaky("size = 64\n"), {"data.subset=16", "data.subset_mode=\"random\"", "train.epochs=1"});
  CHECK(random.summary.steps == 2);
  CHECK_THROWS_WITH(run(flaky("size = 64\n"), {"data.shard_count=2", "data.shard_rank=2"}),
                    "--set data.shard_rank=2: data.shard_rank = 2 must be below data.shard_count = 2");
}

TEST_CASE("data: on_error = skip drops bad samples and counts them", "[runtime][data]") {
  Run r = run(flaky("size = 64\nfail_every = 7\n"),
              {"data.on_error=\"skip\"", "data.max_skip_fraction=0.2", "train.epochs=2"});
  // ids 0, 7, ..., 63: 10 of 64 fail in each of 2 epochs.
  CHECK(r.summary.skipped_samples == 20);
  CHECK(r.summary.skipped_distinct == 10);
  CHECK(r.summary.steps == 16);
  CHECK(r.summary.images == 2 * 2 * (64 - 10));
  CHECK_THAT(format_stage_table(r.summary),
             Catch::Contains("20 samples failed to load and were skipped (10 distinct; [data] on_error = \"skip\")"));
  try {
    run(flaky("size = 64\nfail_every = 7\n"));
    FAIL("no error");
  } catch (const DataError& e) {
    CHECK_THAT(e.what(), Catch::StartsWith("load stage: source 'flaky_source' ([source] at "));
    CHECK_THAT(e.what(), Catch::EndsWith(" is corrupt on purpose"));
  }
}

TEST_CASE("data: more than max_skip_fraction of the samples failing stops the run", "[runtime][data]") {
  // 10 of 64 samples (0.156) fail: past the default 0.01, the run stops at
  // the first (or, loading in parallel, second) of them.
  try {
    run(flaky("size = 64\nfail_every = 7\n"), {"data.on_error=\"skip\""});
    FAIL("no error");
  } catch (const DataError& e) {
    CHECK_THAT(e.what(), Catch::StartsWith("load stage: source 'flaky_source' ([source] at "));
    CHECK_THAT(e.what(), Catch::Contains(" of the 64 samples in use failed to load ("));
    CHECK_THAT(e.what(), Catch::Contains(" of them), more than data.max_skip_fraction = 0.01 allows (data.on_error "
                                         "= \"skip\"); the last: sample "));
    CHECK_THAT(e.what(), Catch::EndsWith(" is corrupt on purpose"));
  }
  // Sample 0 alone fails: 1 of 64 (0.0156) is within 0.02, and a sample
  // failing in each epoch counts once against the fraction.
  Run within = run(flaky("size = 64\nfail_every = 64\n"),
                   {"data.on_error=\"skip\"", "data.max_skip_fraction=0.02", "train.epochs=3"});
  CHECK(within.summary.skipped_samples == 3);
  CHECK(within.summary.skipped_distinct == 1);
  try {
    run(flaky("size = 64\nfail_every = 64\n"), {"data.on_error=\"skip\"", "train.epochs=3"});
    FAIL("no error");
  } catch (const DataError& e) {
    CHECK_THAT(e.what(), Catch::Contains("): 1 of the 64 samples in use failed to load (0.0156 of them), more than "
                                         "data.max_skip_fraction = 0.01 allows (data.on_error = \"skip\"); the "
                                         "last: sample 0 (step "));
    CHECK_THAT(e.what(), Catch::EndsWith("): sample 0 is corrupt on purpose"));
  }
  // The fraction is of the samples in use, after [data] subset.
  CHECK_THROWS_WITH(run(flaky("size = 64\nfail_every = 64\n"),
                        {"data.on_error=\"skip\"", "data.max_skip_fraction=0.02", "data.subset=32"}),
                    Catch::Contains(": 1 of the 32 samples in use failed to load (0.0312 of them), more than "
                                    "data.max_skip_fraction = 0.02 allows"));
}

TEST_CASE("data: a run stopped by max_skip_fraction records its skipped samples", "[runtime][data]") {
  test::TempDir dir("data");
  test::write_file(dir.file("p.toml"), flaky("size = 64\nfail_every = 64\n"));
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(dir.file("p.toml"), {"data.on_error=\"skip\""}, reg);
  RunOptions o;
  o.run_dir = dir.file("run");
  CHECK_THROWS_AS(run_pipeline(spec, reg, o), DataError);
  const std::string summary = test::read_file(dir.file("run/summary.json"));
  CHECK_THAT(summary, Catch::Contains("\"skipped_samples\": 1,"));
  CHECK_THAT(summary, Catch::Contains("\"skipped_distinct\": 1,"));
  CHECK_THAT(summary, Catch::Contains("more than data.max_skip_fraction = 0.01 allows"));
}

namespace {
// A gray PNG of w x h pixels, written with zlib alone.
std::string gray_png(std::uint32_t w, std::uint32_t h) {
  auto be = [](std::uint32_t v) {
    return std::string{char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
  };
  auto chunk = [&](const std::string& type, const std::string& data) {
    const std::string body = type + data;
    const auto c = static_cast<std::uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
    return be(static_cast<std::uint32_t>(data.size())) + body + be(c);
  };
  std::string raw;
  for (std::uint32_t y = 0; y < h; ++y) raw += std::string(1, '\0') + std::string(w, char(40 * y));
  std::string z(compressBound(static_cast<uLong>(raw.size())), '\0');
  uLongf n = static_cast<uLongf>(z.size());
  REQUIRE(compress(reinterpret_cast<Bytef*>(z.data()), &n, reinterpret_cast<const Bytef*>(raw.data()),
                   static_cast<uLong>(raw.size())) == Z_OK);
  z.resize(n);
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", be(w) + be(h) + std::string("\x08\x00\x00\x00\x00", 5)) +
         chunk("IDAT", z) + chunk("IEND", "");
}

std::string image_folder(const std::string& folder) {
  return "[runtime]\ncompute_threads = 1\nprefetch = 2\n"
         "[source]\nplugin = \"image_folder\"\nfolder = \"" + folder + "\"\n"
         "[sampler]\nplugin = \"random\"\nbatch_size = 5\n"
         "[encoder]\nplugin = \"mlp\"\nhidden = [8]\noutput = 4\n"
         "[loss]\nplugin = \"info_nce\"\n[optimizer]\nplugin = \"sgd\"\n";
}
}  // namespace

TEST_CASE("data: on_error, max_skip_fraction and max_image_pixels reach a source that declares them",
          "[runtime][data]") {
  test::TempDir dir("data");
  std::filesystem::create_directories(dir.path() / "img/a");
  test::write_file(dir.file("img/a/0.png"), "not an image");
  for (int i = 1; i <= 4; ++i) test::write_file(dir.file("img/a/" + std::to_string(i) + ".png"), gray_png(4, 4));
  test::write_file(dir.file("p.toml"), image_folder(dir.file("img")) +
                                           "[data]\non_error = \"skip\"\nmax_skip_fraction = 0.25\n");
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(dir.file("p.toml"), {"train.epochs=3"}, reg);
  // The source's table leaves them unset: [data]'s values, at [data]'s lines.
  CHECK(spec.source.params.get<std::string>("on_error") == "skip");
  CHECK(spec.source.params.get<double>("max_skip_fraction") == 0.25);
  for (const auto& e : spec.source.params.entries())
    if (e.name == "on_error") {
      CHECK(!e.set);
      CHECK(e.where.str() == dir.file("p.toml") + ":19:1");
    }
  CHECK(spec.source.params.get<std::int64_t>("max_image_pixels") == 67108864);
  // The run folder's pipeline keeps them in [data] alone, so that reading it
  // again passes them the same way.
  const std::string resolved = resolved_with_defaults(spec);
  auto occurrences = [&](const std::string& word) {
    std::size_t n = 0;
    for (auto at = resolved.find(word); at != std::string::npos; at = resolved.find(word, at + 1)) ++n;
    return n;
  };
  CHECK(occurrences("on_error") == 1);
  CHECK(occurrences("max_skip_fraction") == 1);
  CHECK(occurrences("max_image_pixels") == 1);

  // The bad first image is set aside when the source is built (said once,
  // naming [data]'s key), and skipped at each step.
  test::CapturedStderr err;
  RunSummary s = run_pipeline(spec, reg, RunOptions{});
  CHECK(err.text() == "warning: " + dir.file("img") +
                          ": 1 of the 5 images cannot be read and will be skipped (data.on_error = \"skip\"):\n  " +
                          dir.file("img/a/0.png") +
                          ": sample 0: not a PNG or JPEG image: the file starts with 6e 6f 74 20 61 6e 20 69, "
                          "expected 89 50 4e 47 0d 0a 1a 0a (PNG) or ff d8 ff (JPEG)\n");
  CHECK(s.steps == 3);
  CHECK(s.skipped_distinct == 1);
  CHECK(s.skipped_samples == 3);

  // Past [data] max_skip_fraction when the source is built.
  try {
    PipelineSpec strict = load_pipeline(dir.file("p.toml"), {"data.max_skip_fraction=0.1"}, reg);
    check_pipeline(strict, reg);
    FAIL("no error");
  } catch (const PluginError& e) {
    CHECK_THAT(e.what(), Catch::EndsWith("failed to start: " + dir.file("img") +
                                         ": 1 of the 5 images (0.2 of them) cannot be read, more than "
                                         "data.max_skip_fraction = 0.1 allows (data.on_error = \"skip\"); the last: " +
                                         dir.file("img/a/0.png") + ": sample 0: not a PNG or JPEG image: the file "
                                         "starts with 6e 6f 74 20 61 6e 20 69, expected 89 50 4e 47 0d 0a 1a 0a (PNG) "
                                         "or ff d8 ff (JPEG)"));
  }

  // [data] max_image_pixels: refused before decoding, naming the key; the
  // source's own setting wins over it.
  std::filesystem::remove(dir.file("img/a/0.png"));
  try {
    PipelineSpec small = load_pipeline(dir.file("p.toml"), {"data.on_error=\"fail\"", "data.max_image_pixels=10"}, reg);
    check_pipeline(small, reg);
    FAIL("no error");
  } catch (const PluginError& e) {
    CHECK_THAT(e.what(), Catch::EndsWith("failed to start: " + dir.file("img/a/1.png") +
                                         ": sample 0: 4x4 pixels (width x height) is 16 pixels, more than "
                                         "data.max_image_pixels = 10 allows; the image is refused before it is "
                                         "decoded (raise data.max_image_pixels to read it)"));
  }
  PipelineSpec own = load_pipeline(dir.file("p.toml"),
                                   {"data.on_error=\"fail\"", "data.max_image_pixels=10", "source.max_image_pixels=16",
                                    "sampler.batch_size=4"},
                                   reg);
  CHECK_NOTHROW(check_pipeline(own, reg));
}

TEST_CASE("data: the cache serves samples seen before and does not change results", "[runtime][data]") {
  CHECK_THROWS_AS(run(flaky("size = 32\nfail_on_reload = true\n"), {"train.epochs=2"}), DataError);
  Run cached = run(flaky("size = 32\nfail_on_reload = true\n"), {"train.epochs=2", "data.cache_mb=1"});
  Run plain = run(flaky("size = 32\n"), {"train.epochs=2"});
  CHECK(cached.summary.losses == plain.summary.losses);
}

namespace {
const char* views_pipeline = R"(
[runtime]
compute_threads = 1
[source]
plugin = "synthetic"
size = 64
height = 16
width = 16
[sampler]
plugin = "random"
batch_size = 16
[train]
epochs = 2
[encoder]
plugin = "seed_resnet"
width = 4
output = 8
[loss]
plugin = "info_nce"
[optimizer]
plugin = "adam"
)";
}

TEST_CASE("views: each [[augment.view]] has its own chain (asymmetric views)", "[runtime][views]") {
  std::string text = std::string(views_pipeline) + R"(
[[augment.view]]
[[augment.view.chain]]
plugin = "horizontal_flip"
p = 1.0
[[augment.view]]
[[augment.view.chain]]
plugin = "random_resized_crop"
size = 16
)";
  Run r = run(text);
  CHECK(r.summary.steps == 8);
  CHECK(r.summary.images == 8 * 16 * 2);
}

TEST_CASE("views: multi-crop runs views of two sizes through one encoder", "[runtime][views]") {
  std::string text = std::string(views_pipeline) + R"(
[[augment.view]]
count = 2
[[augment.view.chain]]
plugin = "random_resized_crop"
size = 16
scale = [0.4, 1.0]
[[augment.view]]
count = 3
[[augment.view.chain]]
plugin = "random_resized_crop"
size = 8
scale = [0.05, 0.4]
)";
  Run r = run(text, {"train.epochs=4"});
  CHECK(r.summary.steps == 16);
  CHECK(r.summary.images == 16 * 16 * 5);
  double first = (r.summary.losses[0] + r.summary.losses[1] + r.summary.losses[2]) / 3;
  double last = (r.summary.losses[13] + r.summary.losses[14] + r.summary.losses[15]) / 3;
  CHECK(last < first);
}

TEST_CASE("views: a shared chain and view tables cannot be combined", "[runtime][views]") {
  std::string text = std::string(views_pipeline) +
                     "[augment]\nviews = 3\n[[augment.chain]]\nplugin = \"horizontal_flip\"\n"
                     "[[augment.view]]\ncount = 2\n";
  try {
    run(text);
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::Contains("error: augment.chain: a shared [[augment.chain]] cannot be combined with "
                                         "[[augment.view]] tables"));
    CHECK_THAT(e.what(), Catch::Contains("error: augment.views: with [[augment.view]] tables, set each table's "
                                         "count instead of augment.views"));
  }
}

#include "assembly/pipeline.hpp"
#include "graph/augment_stage.hpp"

namespace {
// The augmented first view of a 2x3 gradient image under `chain`.
std::vector<float> first_view(const std::string& chain) {
  test::TempDir dir("aug");
  std::string text = "[source]\nplugin = \"synthetic\"\nheight = 2\nwidth = 3\n[encoder]\nplugin = \"mlp\"\n"
                     "[loss]\nplugin = \"info_nce\"\n[optimizer]\nplugin = \"sgd\"\n" + chain;
  test::write_file(dir.file("p.toml"), text);
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(dir.file("p.toml"), {}, reg);
  const Pipeline pipeline = assemble(spec, reg);
  AugmentStage stage(pipeline.views, 7);
  BatchWork w;
  w.indices = {5};
  w.raw.push_back(Tensor::empty({2, 3, 1}, DType::u8));
  for (int i = 0; i < 6; ++i) w.raw[0].data<std::uint8_t>()[i] = static_cast<std::uint8_t>(10 * i);
  stage.run(w);
  const float* p = w.batch.images.data<float>();
  return std::vector<float>(p, p + 6);
}
}  // namespace

TEST_CASE("views: random_apply runs or skips the next augmentations", "[runtime][views]") {
  const std::string flip = "[[augment.chain]]\nplugin = \"horizontal_flip\"\np = 1.0\n";
  auto plain = first_view("");
  auto flipped = first_view(flip);
  CHECK(flipped != plain);
  CHECK(first_view("[[augment.chain]]\nplugin = \"random_apply\"\np = 0.0\n" + flip) == plain);
  CHECK(first_view("[[augment.chain]]\nplugin = \"random_apply\"\np = 1.0\n" + flip) == flipped);
  // A skipped span may not change the image format.
  CHECK_THROWS_WITH(first_view("[[augment.chain]]\nplugin = \"random_apply\"\n"
                               "[[augment.chain]]\nplugin = \"normalize\"\n"),
                    Catch::Contains("skipping the next 1 augmentation(s) would change the image"));
  CHECK_THROWS_WITH(first_view("[[augment.chain]]\nplugin = \"random_apply\"\ncount = 2\n" + flip),
                    Catch::Contains("skips up to 2 following augmentations, but only 1 follow it"));
}

#include "assembly/make_plugin.hpp"
#include "graph/evaluation.hpp"

namespace {
// The features of a 4x4 synthetic source's 8 samples through [eval]'s chain
// `chain`, by a fixed mlp.
std::vector<float> eval_features(const std::string& chain) {
  test::TempDir dir("evalchain");
  const std::string source = "plugin = \"synthetic\"\nsize = 8\nheight = 4\nwidth = 4\n";
  test::write_file(dir.file("p.toml"), "[source]\n" + source + "[encoder]\nplugin = \"mlp\"\noutput = 4\n"
                                       "[loss]\nplugin = \"info_nce\"\n[optimizer]\nplugin = \"sgd\"\n"
                                       "[eval]\n[eval.test]\n" + source +
                                       "[[eval.evaluator]]\nplugin = \"knn\"\n" + chain);
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(dir.file("p.toml"), {}, reg);
  Evaluation(spec, reg).check();
  auto encoder = make_plugin<Encoder>(reg, spec.encoder);
  encoder->build({Shape{1, 4, 4}, 1});
  auto src = make_plugin<Source>(reg, spec.eval_test);
  FeatureSet f = FeatureExtractor(spec, reg).embed(*encoder, *src, "test");
  return std::vector<float>(f.features.data<float>(), f.features.data<float>() + f.features.numel());
}
}  // namespace

TEST_CASE("views: [eval]'s chain is the views' chain, with the same skip rules", "[runtime][views][eval]") {
  const std::string flip = "[[eval.chain]]\nplugin = \"horizontal_flip\"\np = 1.0\n";
  const auto plain = eval_features("");
  const auto flipped = eval_features(flip);
  CHECK(flipped != plain);
  // random_apply skips the flip, or lets it run, in evaluation as in training.
  CHECK(eval_features("[[eval.chain]]\nplugin = \"random_apply\"\np = 0.0\n" + flip) == plain);
  CHECK(eval_features("[[eval.chain]]\nplugin = \"random_apply\"\np = 1.0\n" + flip) == flipped);
  // And a skip that would change the format is refused before any training.
  CHECK_THROWS_WITH(eval_features("[[eval.chain]]\nplugin = \"random_apply\"\n"
                                  "[[eval.chain]]\nplugin = \"normalize\"\n"),
                    Catch::Contains("skipping the next 1 augmentation(s) would change the image"));
}

TEST_CASE("eval: features that are not finite are refused, not ranked", "[runtime][eval]") {
  test::TempDir dir("evalnan");
  const std::string source = "plugin = \"synthetic\"\nsize = 8\nheight = 4\nwidth = 4\n";
  test::write_file(dir.file("p.toml"), "[source]\n" + source + "[encoder]\nplugin = \"mlp\"\noutput = 4\n"
                                       "[loss]\nplugin = \"info_nce\"\n[optimizer]\nplugin = \"sgd\"\n"
                                       "[eval]\n[eval.test]\n" + source + "[[eval.evaluator]]\nplugin = \"knn\"\n");
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(dir.file("p.toml"), {}, reg);
  auto encoder = make_plugin<Encoder>(reg, spec.encoder);
  encoder->build({Shape{1, 4, 4}, 1});
  for (Parameter* q : encoder->parameters())
    std::fill_n(q->value.data<float>(), q->value.numel(), std::numeric_limits<float>::quiet_NaN());
  auto src = make_plugin<Source>(reg, spec.eval_test);
  CHECK_THROWS_WITH(FeatureExtractor(spec, reg).embed(*encoder, *src, "test"),
                    "test: the encoder's features of sample 0 hold nan; its weights are not finite (a diverged run "
                    "or a damaged checkpoint), and no figure computed from them would mean anything");
}
