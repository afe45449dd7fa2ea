// Run records, checkpoints, resume and [eval].
#include "assembly/load_pipeline.hpp"
#include "graph/pipeline_run.hpp"
#include "graph/run_record.hpp"
#include "loader/registry.hpp"
#include "graph/evaluation.hpp"
#include "train/checkpoint.hpp"
#include "train/safetensors.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <unistd.h>
#include <zlib.h>

using namespace contra;
using namespace contra::runtime;
namespace fs = std::filesystem;

namespace {

const char* pipeline = R"(
[pipeline]
name = "records"
seed = 5
[runtime]
compute_threads = 1
prefetch = 2
[train]
epochs = 3
[schedule]
kind = "cosine"
warmup_epochs = 1.0
[source]
plugin = "synthetic"
size = 128
height = 8
width = 8
[sampler]
plugin = "random"
batch_size = 16
[[augment.chain]]
plugin = "random_resized_crop"
size = 8
scale = [0.5, 1.0]
[encoder]
plugin = "seed_resnet"
width = 4
output = 8
[head]
plugin = "projection_head"
output = 8
[memory]
plugin = "queue"
size = 64
momentum = 0.9
[loss]
plugin = "info_nce"
[optimizer]
plugin = "adam"
[eval]
every_epochs = 1
batch_size = 50
save_embeddings = true
[eval.test]
plugin = "synthetic"
size = 40
height = 8
width = 8
seed = 9
[[eval.evaluator]]
plugin = "knn"
k = [5]
temperature = [0.1]
[[eval.evaluator]]
plugin = "linear_probe"
)";

struct Fixture {
  test::TempDir dir{"records"};
  std::string file = dir.file("p.toml");
  explicit Fixture(const std::string& text = pipeline) { test::write_file(file, text); }
  RunSummary run(const std::string& run_dir, const std::vector<std::string>& overrides = {},
                 const std::string& resume = "", std::int64_t stop_after = -1) {
    PluginRegistry reg;
    PipelineSpec spec = load_pipeline(resume.empty() ? file : (fs::path(run_dir) / "pipeline.toml").string(),
                                      overrides, reg);
    RunOptions o;
    o.run_dir = run_dir;
    o.overrides = overrides;
    o.resume_from = resume;
    std::atomic<bool> stop{false};
    o.stop = &stop;
    o.on_step = [&](const StepReport& r) {
      if (r.step == stop_after) stop = true;
    };
    return run_pipeline(spec, reg, o);
  }
};

std::vector<std::string> lines(const fs::path& p) {
  std::ifstream f(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(f, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("run records: the folder holds the pipeline, metrics, evaluations and checkpoints", "[runtime][records]") {
  Fixture fx;
  const std::string run_dir = fx.dir.file("run");
  RunSummary s = fx.run(run_dir, {"train.epochs=2"});
  REQUIRE(s.steps == 16);
  CHECK_THAT(test::read_file(run_dir + "/pipeline.toml"), Catch::Contains("epochs = 2"));
  std::string run_json = test::read_file(run_dir + "/run.json");
  CHECK_THAT(run_json, Catch::Contains("\"overrides\": [\"train.epochs=2\"]"));
  CHECK_THAT(run_json, Catch::Contains("\"git_revision\": "));
  CHECK_THAT(run_json, Catch::Contains("\"build\": \"sdk=0.5.0;"));
  CHECK_THAT(run_json, Catch::Contains("\"steps_from\": 1"));
  // Each plugin's library, with a CRC-32 of its bytes.
  const std::string lib = fs::absolute(fs::path(CONTRA_PLUGIN_DIR) / "libcontra_loss_info_nce.so").lexically_normal();
  const std::string bytes = test::read_file(lib);
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08lx",
                crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
  CHECK_THAT(run_json, Catch::Contains("{\"table\": \"loss\", \"plugin\": \"info_nce\", \"device\": \"cpu\", "
                                       "\"library\": \"" + lib + "\", \"crc32\": \"" + crc + "\"}"));
  CHECK_THAT(run_json, Catch::Contains("{\"table\": \"augment.chain[0]\", \"plugin\": \"random_resized_crop\""));
  // The resolved pipeline writes out the values left at their defaults too,
  // and reads back to the same parameters.
  const std::string resolved = test::read_file(run_dir + "/pipeline.toml");
  CHECK_THAT(resolved, Catch::Contains("chunk = 1024"));         // info_nce's default
  CHECK_THAT(resolved, Catch::Contains("shard_count = 1"));      // [data], absent from the file
  CHECK_THAT(resolved, Catch::Contains("plugin = 'all_pairs'"));  // the default miner, named
  PluginRegistry again;
  PipelineSpec reread = load_pipeline(run_dir + "/pipeline.toml", {}, again);
  CHECK(reread.loss.params.get<std::int64_t>("chunk") == 1024);
  CHECK(reread.loss.params.is_set("chunk"));
  CHECK(reread.train.get<std::int64_t>("epochs") == 2);
  CHECK(reread.has_eval);
  auto metrics = lines(run_dir + "/metrics.jsonl");
  REQUIRE(metrics.size() == 16 + 2);  // 16 steps, an evaluation after each of 2 epochs
  CHECK_THAT(metrics[0], Catch::StartsWith("{\"type\": \"step\", \"step\": 1, \"epoch\": 0, \"loss\": "));
  CHECK_THAT(metrics[0], Catch::Contains("\"mining.false_negative_rate\": "));
  CHECK_THAT(metrics[8], Catch::StartsWith("{\"type\": \"eval\", \"step\": 8, \"epoch\": 0, \"figures\": {\"knn.top1_k5_t0.1\": "));
  CHECK_THAT(metrics[8], Catch::Contains("\"linear_probe.top1\": "));
  std::string summary = test::read_file(run_dir + "/summary.json");
  CHECK_THAT(summary, Catch::Contains("\"steps\": 16"));
  CHECK_THAT(summary, Catch::Contains("\"knn.top1_k5_t0.1\": "));
  // Evaluation time is counted apart from training: not in the train
  // stage's busy time, nor in images/s.
  CHECK(s.eval_s > 0);
  CHECK_THAT(summary, Catch::Contains("\"eval_s\": "));
  CHECK(s.images_per_s == Approx(s.images / (s.telemetry.wall_s - s.eval_s)));
  CHECK_THAT(format_stage_table(s), Catch::Contains("evaluation "));
  CHECK(test::read_file(run_dir + "/checkpoints/latest") == "step-00000016.safetensors\n");
  CHECK(fs::exists(run_dir + "/embeddings/test-step-00000016.npy"));
  CHECK(fs::exists(run_dir + "/embeddings/test-step-00000016-labels.npy"));
  // The checkpoint names every piece of state.
  SafetensorsFile ck = read_safetensors(run_dir + "/checkpoints/step-00000016.safetensors");
  CHECK(ck.metadata.at("step") == "15");  // the 0-based index of the step it follows
  for (const char* name : {"encoder.stem.conv.weight", "encoder.stem.bn.running_mean", "head.fc2.bias",
                           "momentum_encoder.fc.weight", "optimizer.step", "memory.queue.keys"})
    CHECK(ck.tensors.count(name) == 1);
}

TEST_CASE("resume: an interrupted run continues with the same per-step losses", "[runtime][records]") {
  Fixture fx;
  RunSummary whole = fx.run(fx.dir.file("whole"));
  REQUIRE(whole.steps == 24);
  const std::string run_dir = fx.dir.file("broken");
  RunSummary first = fx.run(run_dir, {}, "", 9);  // stop planning after step 9
  REQUIRE(first.steps >= 10);
  REQUIRE(first.steps < 24);
  RunSummary rest = fx.run(run_dir, {}, RunRecord::latest_checkpoint(run_dir));
  CHECK(rest.first_step == first.steps);
  REQUIRE(first.steps + rest.steps == 24);
  for (std::int64_t i = 0; i < first.steps; ++i) CHECK(first.losses[i] == whole.losses[i]);
  for (std::int64_t i = 0; i < rest.steps; ++i) {
    INFO("step " << first.steps + i);
    CHECK(rest.losses[i] == whole.losses[first.steps + i]);
  }
  CHECK(lines(run_dir + "/metrics.jsonl").size() == lines(fx.dir.file("whole") + "/metrics.jsonl").size());
}

TEST_CASE("resume: a stochastic miner (mochi) draws the same mixtures again: the same per-step losses",
          "[runtime][records]") {
  // mochi draws from the step's streams (StepContext), keyed by seed, epoch
  // and step: a resumed run must redraw exactly what the whole one drew.
  std::string text = pipeline;
  const std::string loss = "[loss]\nplugin = \"info_nce\"\n";
  REQUIRE(text.find(loss) != std::string::npos);
  text.replace(text.find(loss), loss.size(),
               "[miner]\nplugin = \"mochi\"\nhardest = 8\nmixes = 4\nquery_mixes = 2\n" + loss);
  Fixture fx(text);
  RunSummary whole = fx.run(fx.dir.file("whole"), {"eval.every_epochs=0"});
  REQUIRE(whole.steps == 24);
  for (double l : whole.losses) REQUIRE(std::isfinite(l));
  const std::string run_dir = fx.dir.file("broken");
  RunSummary first = fx.run(run_dir, {"eval.every_epochs=0"}, "", 9);
  RunSummary rest = fx.run(run_dir, {"eval.every_epochs=0"}, RunRecord::latest_checkpoint(run_dir));
  REQUIRE(first.steps + rest.steps == 24);
  for (std::int64_t i = 0; i < rest.steps; ++i) {
    INFO("step " << first.steps + i);
    CHECK(rest.losses[i] == whole.losses[first.steps + i]);
  }
  // Without the mixtures the same batches give a lower loss: the synthetic
  // negatives are harder than the queue's.
  RunSummary plain = fx.run(fx.dir.file("plain"), {"eval.every_epochs=0", "miner.mixes=0", "miner.query_mixes=0"});
  CHECK(plain.losses[0] < whole.losses[0]);
}

TEST_CASE("resume: an encoder and a head with the same parameter names keep their own optimizer state",
          "[runtime][records]") {
  // mlp as both: both have fc0.weight, fc0.bias, ...; so has the optimizer's state.
  std::string text = pipeline;
  const std::string parts = "[encoder]\nplugin = \"seed_resnet\"\nwidth = 4\noutput = 8\n[head]\nplugin = "
                            "\"projection_head\"\noutput = 8\n";
  REQUIRE(text.find(parts) != std::string::npos);
  text.replace(text.find(parts), parts.size(),
               "[encoder]\nplugin = \"mlp\"\nhidden = [16]\noutput = 8\n[head]\nplugin = \"mlp\"\nhidden = [8]\n"
               "output = 8\n");
  Fixture fx(text);
  RunSummary whole = fx.run(fx.dir.file("whole"));
  REQUIRE(whole.steps == 24);
  SafetensorsFile ck = read_safetensors(fx.dir.file("whole") + "/checkpoints/step-00000024.safetensors");
  for (const char* name : {"optimizer.fc0.weight.exp_avg", "optimizer.fc0.weight.exp_avg@2",
                           "optimizer.fc1.bias.exp_avg_sq", "optimizer.fc1.bias.exp_avg_sq@2"})
    CHECK(ck.tensors.count(name) == 1);
  CHECK(ck.tensors.at("optimizer.fc0.weight.exp_avg").shape() == Shape{16, 64});  // the encoder's: 8x8 pixels in
  CHECK(ck.tensors.at("optimizer.fc0.weight.exp_avg@2").shape() == Shape{8, 8});  // the head's
  const std::string run_dir = fx.dir.file("broken");
  RunSummary first = fx.run(run_dir, {}, "", 9);
  REQUIRE(first.steps < 24);
  RunSummary rest = fx.run(run_dir, {}, RunRecord::latest_checkpoint(run_dir));
  REQUIRE(first.steps + rest.steps == 24);
  for (std::int64_t i = 0; i < rest.steps; ++i) {
    INFO("step " << first.steps + i);
    CHECK(rest.losses[i] == whole.losses[first.steps + i]);
  }
}

std::string flaky_pipeline(const std::string& extra) {
  return "[plugins]\npaths = [\"" + std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/flaky_source\"]\n"
         "[runtime]\ncompute_threads = 1\nprefetch = 2\n[train]\nepochs = 2\n"
         "[source]\nplugin = \"flaky_source\"\nsize = 64\n"
         "[sampler]\nplugin = \"random\"\nbatch_size = 8\n"
         "[encoder]\nplugin = \"mlp\"\nhidden = [8]\noutput = 4\n"
         "[loss]\nplugin = \"info_nce\"\n[optimizer]\nplugin = \"sgd\"\n" + extra;
}

TEST_CASE("run records: a failing evaluation keeps the run, its checkpoint and the error", "[runtime][records]") {
  Fixture fx(flaky_pipeline("[eval]\nevery_epochs = 1\nbatch_size = 16\n"
                            "[eval.test]\nplugin = \"flaky_source\"\nsize = 32\nfail_every = 5\n"
                            "[[eval.evaluator]]\nplugin = \"knn\"\nk = [3]\ntemperature = [0.1]\n"));
  const std::string run_dir = fx.dir.file("run");
  RunSummary s = fx.run(run_dir);
  CHECK(s.steps == 16);  // both epochs trained
  CHECK_THAT(s.eval_error, Catch::Contains("sample 0 is corrupt on purpose"));
  CHECK(s.eval.empty());
  // The state the evaluation read was checkpointed before it.
  CHECK(fs::exists(run_dir + "/checkpoints/step-00000008.safetensors"));
  CHECK(test::read_file(run_dir + "/checkpoints/latest") == "step-00000016.safetensors\n");
  auto metrics = lines(run_dir + "/metrics.jsonl");
  REQUIRE(metrics.size() == 16 + 1);  // one failed evaluation; none after it
  CHECK_THAT(metrics[8], Catch::StartsWith("{\"type\": \"eval_error\", \"step\": 8, \"epoch\": 0, \"error\": \""));
  CHECK_THAT(metrics[8], Catch::Contains("corrupt on purpose"));
  std::string summary = test::read_file(run_dir + "/summary.json");
  CHECK_THAT(summary, Catch::Contains("\"steps\": 16"));
  CHECK_THAT(summary, Catch::Contains("\"eval_error\": \""));
  CHECK_THAT(summary, Catch::Contains("\"finished\": "));
}

TEST_CASE("run records: a run that fails says why in summary.json", "[runtime][records]") {
  std::string text = flaky_pipeline("");
  text.replace(text.find("size = 64\n"), 10, "size = 64\nfail_every = 20\n");
  Fixture fx(text);
  const std::string run_dir = fx.dir.file("run");
  CHECK_THROWS_WITH(fx.run(run_dir), Catch::Contains("sample 20 is corrupt on purpose"));
  CHECK(fs::exists(run_dir + "/run.json"));
  std::string summary = test::read_file(run_dir + "/summary.json");
  CHECK_THAT(summary, Catch::Contains("\"error\": \""));
  CHECK_THAT(summary, Catch::Contains("sample 20 is corrupt on purpose"));
  CHECK_THAT(summary, Catch::Contains("\"failed\": "));
  CHECK_THAT(summary, !Catch::Contains("\"finished\": "));
}

TEST_CASE("resume: a finished run resumes to nothing and leaves its records alone", "[runtime][records]") {
  Fixture fx;
  const std::string run_dir = fx.dir.file("run");
  RunSummary whole = fx.run(run_dir);
  REQUIRE(whole.steps == 24);
  const std::string summary = test::read_file(run_dir + "/summary.json"),
                    metrics = test::read_file(run_dir + "/metrics.jsonl");
  RunSummary again = fx.run(run_dir, {}, RunRecord::latest_checkpoint(run_dir));
  CHECK(again.already_finished);
  CHECK(again.steps == 0);
  CHECK(again.first_step == 24);
  CHECK(test::read_file(run_dir + "/summary.json") == summary);
  CHECK(test::read_file(run_dir + "/metrics.jsonl") == metrics);
}

TEST_CASE("resume: a relative [plugins] path is recorded absolute, so the run folder's pipeline finds it",
          "[runtime][records]") {
  test::TempDir dir("relative-plugins");
  const fs::path relative = fs::relative(fs::path(CONTRA_FIXTURE_PLUGIN_DIR) / "flaky_source", dir.file(""));
  std::string text = flaky_pipeline("");
  const std::string absolute = std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/flaky_source";
  text.replace(text.find(absolute), absolute.size(), relative.string());
  REQUIRE(relative.is_relative());
  test::write_file(dir.file("p.toml"), text);
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(dir.file("p.toml"), {"train.max_steps=2"}, reg);
  CHECK_THAT(spec.resolved_toml, Catch::Contains(fs::absolute(absolute).lexically_normal().string()));
  RunOptions o;
  o.run_dir = dir.file("run");
  run_pipeline(spec, reg, o);
  // Read back from the run folder, as --resume does: the plugin is found.
  PluginRegistry again;
  PipelineSpec resumed = load_pipeline(dir.file("run") + "/pipeline.toml", {}, again);
  CHECK(resumed.source.name == "flaky_source");
}

TEST_CASE("checkpoints: two tensors with one name are refused", "[runtime][records]") {
  test::TempDir dir("ck");
  Tensor a = Tensor::zeros({2}, DType::f32), b = Tensor::zeros({3}, DType::f32);
  CHECK_THROWS_WITH(write_safetensors(dir.file("d.safetensors"), {{"w", &a}, {"w", &b}}, {}),
                    "safetensors: two tensors named 'w' written to " + dir.file("d.safetensors"));
}

TEST_CASE("eval: the encoder is frozen while evaluators run", "[runtime][eval]") {
  Fixture fx;
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(fx.file, {}, reg);
  auto encoder = reg.create<Encoder>(*reg.find(PluginKind::encoder, "seed_resnet"), spec.encoder.params);
  encoder->build({Shape{1, 8, 8}, 1});
  std::vector<Tensor> before;
  for (auto* p : encoder->parameters()) before.push_back(p->value.clone());
  Evaluation eval(spec, reg);
  auto figures = eval.run(*encoder, 0);
  REQUIRE(figures.size() >= 3);
  auto params = encoder->parameters();
  for (std::size_t i = 0; i < params.size(); ++i)
    for (std::int64_t j = 0; j < params[i]->value.numel(); ++j)
      REQUIRE(params[i]->value.data<float>()[j] == before[i].data<float>()[j]);
}

TEST_CASE("checkpoints: a damaged or foreign file is refused with its reason", "[runtime][records]") {
  test::TempDir dir("ck");
  Tensor t = Tensor::zeros({3, 2}, DType::f32);
  write_safetensors(dir.file("a.safetensors"), {{"w", &t}}, {{"step", "4"}});
  SafetensorsFile f = read_safetensors(dir.file("a.safetensors"));
  CHECK(f.tensors.at("w").shape() == Shape{3, 2});
  std::string bytes = test::read_file(dir.file("a.safetensors"));
  test::write_file(dir.file("cut.safetensors"), bytes.substr(0, bytes.size() - 4));
  CHECK_THROWS_WITH(read_safetensors(dir.file("cut.safetensors")),
                    dir.file("cut.safetensors") + ": truncated: tensor 'w' ends at byte " +
                        std::to_string(bytes.size()) + ", the file has " + std::to_string(bytes.size() - 4));
  CHECK_THROWS_WITH(RunRecord::latest_checkpoint(dir.path()),
                    dir.path().string() + ": no checkpoint to resume from (" + dir.file("checkpoints/latest") +
                        " is missing)");
}

namespace {
// A safetensors file: the 8-byte little-endian header length, `header`, then `data_bytes` zero bytes.
void write_safetensors_file(const std::string& path, const std::string& header, std::size_t data_bytes = 0) {
  std::string bytes(8, '\0');
  for (int b = 0; b < 8; ++b) bytes[b] = static_cast<char>(static_cast<std::uint64_t>(header.size()) >> (8 * b));
  test::write_file(path, bytes + header + std::string(data_bytes, '\0'));
}
std::string read_error(const std::string& path) {
  try {
    read_safetensors(path);
  } catch (const DataError& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("checkpoints: the header is the reference writer's JSON, padded to 8 bytes", "[runtime][records]") {
  test::TempDir dir("ck-header");
  Tensor w = Tensor::zeros({3, 2}, DType::f32), s = Tensor::zeros({1}, DType::i64);
  write_safetensors(dir.file("a.safetensors"), {{"w", &w}, {"s", &s}}, {{"step", "4"}, {"note", "a \"b\"\n"}});
  const std::string bytes = test::read_file(dir.file("a.safetensors"));
  const std::string header = R"({"__metadata__":{"note":"a \"b\"\n","step":"4"},)"
                             R"("w":{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]},)"
                             R"("s":{"dtype":"I64","shape":[1],"data_offsets":[24,32]}})";
  const std::size_t padded = (header.size() + 7) / 8 * 8;
  REQUIRE(bytes.size() == 8 + padded + 32);
  CHECK(static_cast<unsigned char>(bytes[0]) == padded);
  CHECK(bytes.substr(8, padded) == header + std::string(padded - header.size(), ' '));
  SafetensorsFile f = read_safetensors(dir.file("a.safetensors"));
  CHECK(f.metadata.at("note") == "a \"b\"\n");
  CHECK(f.tensors.at("s").shape() == Shape{1});
  CHECK_THROWS_WITH(write_safetensors(dir.file("m.safetensors"), {{"__metadata__", &w}}, {}),
                    "safetensors: a tensor named '__metadata__' written to " + dir.file("m.safetensors"));
}

TEST_CASE("checkpoints: a hostile safetensors header is refused with its reason, never a crash", "[runtime][records]") {
  test::TempDir dir("ck-hostile");
  const std::string f = dir.file("x.safetensors");
  auto header_error = [&](const std::string& header, std::size_t data_bytes = 0) {
    write_safetensors_file(f, header, data_bytes);
    return read_error(f);
  };
  CHECK(header_error(R"({"w": {"dtype": "F32",)") ==
        f + ":1:23: error: malformed safetensors header: syntax error while parsing object key - unexpected end of "
            "input; expected string literal");
  CHECK(header_error("[1, 2]") == f + ": the safetensors header is an array; expected an object");
  CHECK(header_error(R"({"w": 3})") ==
        f + ": tensor 'w' is described by a number; expected an object with dtype, shape and data_offsets");
  CHECK(header_error(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}})", 4) ==
        f + ": tensor 'w' has the unexpected key 'x'; expected dtype, shape and data_offsets");
  CHECK(header_error(R"({"w": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}})", 2) ==
        f + ": tensor 'w' has dtype 'F16'; expected U8, I32, I64 or F32");
  CHECK(header_error(R"({"w": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}})", 4) ==
        f + ": tensor 'w' has dtype ''; expected U8, I32, I64 or F32");
  const std::string bad_shape =
      f + ": tensor 'w' has a malformed shape; expected an array of at most 6 non-negative integers";
  CHECK(header_error(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4) == bad_shape);
  CHECK(header_error(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4) == bad_shape);
  CHECK(header_error(R"({"w": {"dtype": "F32", "shape": [1,1,1,1,1,1,1], "data_offsets": [0, 4]}})", 4) == bad_shape);
  CHECK(header_error(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4) == bad_shape);
  const std::string bad_offsets =
      f + ": tensor 'w' has malformed data_offsets; expected [begin, end] with 0 <= begin <= end";
  CHECK(header_error(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4) == bad_offsets);
  CHECK(header_error(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4) == bad_offsets);
  CHECK(header_error(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 18446744073709551615]}})", 4) ==
        bad_offsets);
  CHECK(header_error(R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 8], "data_offsets": [0, 4]}})", 4) ==
        f + ": tensor 'w' has a shape of more than 2^63 bytes");
  CHECK(header_error(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4) ==
        f + ": tensor 'w' of shape [2] needs 8 bytes, its data_offsets span 4");
  CHECK(header_error(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4) ==
        f + ": truncated: tensor 'w' ends at byte " + std::to_string(8 + 61 + 8) + ", the file has " +
            std::to_string(8 + 61 + 4));
  CHECK(header_error(R"({"__metadata__": [1]})") == f + ": __metadata__ is an array; expected an object of strings");
  CHECK(header_error(R"({"__metadata__": {"step": 4}})") == f + ": __metadata__ 'step' is a number; expected a string");
  // Nested 100000 deep: parsed and destroyed without recursion, then refused.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK(header_error(R"({"w": )" + deep + "}") ==
        f + ": tensor 'w' is described by an array; expected an object with dtype, shape and data_offsets");
  CHECK(header_error(R"({"__metadata__": {"a": )" + deep + "}}") ==
        f + ": __metadata__ 'a' is an array; expected a string");
  // The length itself.
  test::write_file(f, std::string("\x10\0\0\0\0\0\0\0{}", 10));
  CHECK(read_error(f) == f + ": truncated: the header declares 16 bytes, the file has 2 after the length");
  test::write_file(f, "abc");
  CHECK(read_error(f) == f + ": truncated: 3 bytes, a safetensors file starts with an 8-byte header length");
}

TEST_CASE("run records: one run per folder: a second is refused naming the holder, folders never shared",
          "[runtime][records]") {
  Fixture fx;
  PluginRegistry reg;
  const PipelineSpec spec = load_pipeline(fx.file, {}, reg);
  const std::string run_dir = fx.dir.file("run");
  {
    RunRecord first(run_dir, spec, {}, false);
    try {
      RunRecord second(run_dir, spec, {}, false);
      FAIL("the second record took the folder");
    } catch (const ConfigError& e) {
      CHECK_THAT(e.what(), Catch::StartsWith(run_dir + ": the run folder is in use by another run (pid " +
                                             std::to_string(::getpid()) + " on "));
      CHECK_THAT(e.what(), Catch::EndsWith("); wait for it to end, or give another --run-dir"));
    }
    // A run through run_pipeline is refused alike, and changes nothing.
    const std::string pipeline_before = test::read_file(run_dir + "/pipeline.toml");
    CHECK_THROWS_WITH(fx.run(run_dir), Catch::Contains("the run folder is in use by another run"));
    CHECK(test::read_file(run_dir + "/pipeline.toml") == pipeline_before);
  }
  // Released with the record: the folder can be used again.
  CHECK_NOTHROW(RunRecord(run_dir, spec, {}, true));
  // Atomic writes leave no temporary file behind.
  for (const auto& entry : fs::directory_iterator(run_dir))
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);

  // Default folders: each call creates a folder of its own, also within one second.
  test::write_file(fx.file, std::string(pipeline) + "[record]\ndir = \"" + fx.dir.file("runs") + "\"\n");
  const PipelineSpec named = load_pipeline(fx.file, {}, reg);
  const fs::path a = RunRecord::default_dir(named), b = RunRecord::default_dir(named);
  CHECK(a != b);
  CHECK(fs::is_directory(a));
  CHECK(fs::is_directory(b));
}

TEST_CASE("checkpoints: a malformed step in the metadata is an error naming the file, not an abort",
          "[runtime][records]") {
  test::TempDir dir("ck-step");
  const std::string path = dir.file("bad.safetensors");
  PluginRegistry reg;
  reg.scan_directory(CONTRA_PLUGIN_DIR);
  const PluginRecord* rec = reg.find(PluginKind::encoder, "mlp");
  REQUIRE(rec != nullptr);
  auto encoder = reg.create<Encoder>(*rec, rec->schema.bind({}));
  encoder->build({Shape{1, 2, 2}, 1});
  for (const char* step : {"12x", "99999999999999999999999", "-3", ""}) {
    write_safetensors(path, {}, {{"step", step}});
    CHECK_THROWS_WITH(load_encoder(path, *encoder),
                      path + ": its 'step' metadata is \"" + step +
                          "\", expected the index of a step (an integer >= 0)");
  }
}

TEST_CASE("run records: resuming from a periodic checkpoint keeps each step's record once", "[runtime][records]") {
  Fixture fx;
  const std::string run_dir = fx.dir.file("run");
  // 24 steps, a checkpoint every 4, all kept: as if the run had been killed
  // after step 24 and were resumed from the checkpoint of step 8.
  fx.run(run_dir, {"record.checkpoint_every=4", "record.keep=10"});
  // A line cut by the kill, too.
  { std::ofstream(run_dir + "/metrics.jsonl", std::ios::app) << "{\"type\": \"step\", \"st"; }
  fx.run(run_dir, {"record.checkpoint_every=4", "record.keep=10"},
         run_dir + "/checkpoints/step-00000008.safetensors");
  std::map<std::int64_t, int> seen;
  for (const std::string& line : lines(run_dir + "/metrics.jsonl")) {
    INFO(line);
    REQUIRE(line.rfind("{", 0) == 0);
    if (line.find("\"type\": \"step\"") == std::string::npos) continue;
    const auto at = line.find("\"step\": ");
    REQUIRE(at != std::string::npos);
    seen[std::stoll(line.substr(at + 8))]++;
  }
  CHECK(seen.size() == 24);
  for (const auto& [step, count] : seen) {
    INFO("step " << step);
    CHECK(count == 1);
  }
}

TEST_CASE("run records: a metrics write that fails stops the run, naming the file and the reason",
          "[runtime][records]") {
  Fixture fx;
  const std::string run_dir = fx.dir.file("full");
  fs::create_directories(run_dir);
  fs::create_symlink("/dev/full", run_dir + "/metrics.jsonl");  // every write: no space left
  CHECK_THROWS_WITH(fx.run(run_dir), Catch::Contains("cannot write " + run_dir +
                                                     "/metrics.jsonl: No space left on device"));
  // The run folder says how the run ended.
  CHECK_THAT(test::read_file(run_dir + "/summary.json"), Catch::Contains("No space left on device"));
}

TEST_CASE("run records: checkpoints/latest never leads outside the run folder", "[runtime][records]") {
  test::TempDir dir("latest");
  fs::create_directories(dir.file("checkpoints"));
  test::write_file(dir.file("outside.safetensors"), "x");
  for (const char* name : {"../outside.safetensors", "/etc/passwd", ".."}) {
    test::write_file(dir.file("checkpoints/latest"), std::string(name) + "\n");
    CHECK_THROWS_WITH(RunRecord::latest_checkpoint(dir.path()),
                      dir.file("checkpoints/latest") + " names " + name + ", which is not a file name in " +
                          dir.file("checkpoints"));
  }
}

TEST_CASE("run records: a checkpoints/latest name no file can have is a ConfigError", "[runtime][records]") {
  test::TempDir dir("latest_name");
  fs::create_directories(dir.file("checkpoints"));
  // Longer than NAME_MAX: the file system refuses to look it up.
  const std::string long_name(300, 'x');
  test::write_file(dir.file("checkpoints/latest"), long_name + "\n");
  CHECK_THROWS_AS(RunRecord::latest_checkpoint(dir.path()), ConfigError);
  CHECK_THROWS_WITH(RunRecord::latest_checkpoint(dir.path()),
                    Catch::Contains(dir.file("checkpoints/latest") + " names " + long_name + ", which cannot be read"));
  const char with_nul[] = "step\0-1.safetensors\n";
  test::write_file(dir.file("checkpoints/latest"), std::string(with_nul, sizeof with_nul - 1));
  CHECK_THROWS_WITH(RunRecord::latest_checkpoint(dir.path()),
                    dir.file("checkpoints/latest") + " names step\\0-1.safetensors, which is not a file name in " +
                        dir.file("checkpoints"));
}

TEST_CASE("resume: a pipeline.toml changed since its checkpoints is refused, naming what changed",
          "[runtime][records]") {
  Fixture fx;
  const std::string run_dir = fx.dir.file("run");
  const RunSummary first = fx.run(run_dir, {}, "", 5);
  const std::string checkpoint = RunRecord::latest_checkpoint(run_dir);
  const std::string pipeline_file = (fs::path(run_dir) / "pipeline.toml").string();
  CHECK_THROWS_WITH(fx.run(run_dir, {"optimizer.lr=0.5", "sampler.batch_size=8"}, checkpoint),
                    pipeline_file + " does not match the run that wrote " + checkpoint +
                        ":\n  optimizer.lr = 0.001 in the checkpoint's run, 0.5 now"
                        "\n  sampler.batch_size = 16 in the checkpoint's run, 8 now"
                        "\na changed pipeline is a new run: start it with `contra run FILE`");
  // Nothing was recorded by the refused resume; comments and layout are not
  // changes, and the run goes on.
  { std::ofstream(pipeline_file, std::ios::app) << "\n# a note\n"; }
  const RunSummary rest = fx.run(run_dir, {}, checkpoint);
  CHECK(rest.first_step == first.steps);
  CHECK(first.steps + rest.steps == 24);
}

TEST_CASE("checkpoints: a state beyond [record] max_abs_weight stops the run and never becomes latest",
          "[runtime][records]") {
  Fixture fx;
  const std::string run_dir = fx.dir.file("run");
  // Healthy checkpoints first; then a bound no trained encoder keeps (a
  // stand-in for a diverged run): [record] may change on a resume.
  const RunSummary first = fx.run(run_dir, {"record.checkpoint_every=4"}, "", 5);
  const std::string good = RunRecord::latest_checkpoint(run_dir);
  const std::int64_t next = (first.steps / 4 + 1) * 4;  // the resumed run's first checkpoint
  REQUIRE(next < 24);
  char next_file[64];
  std::snprintf(next_file, sizeof next_file, "step-%08lld.safetensors", static_cast<long long>(next));
  try {
    fx.run(run_dir, {"record.checkpoint_every=4", "record.max_abs_weight=0.001"}, good);
    FAIL("the run went on");
  } catch (const DivergedState& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.rfind("step " + std::to_string(next) + ": encoder.", 0) == 0);
    CHECK_THAT(m, Catch::Contains(", beyond [record] max_abs_weight = 0.001: the training has diverged, and " +
                                  run_dir + "/checkpoints/" + next_file +
                                  " is not written; checkpoints/latest still names " + good));
  }
  CHECK(RunRecord::latest_checkpoint(run_dir) == good);
  CHECK_FALSE(fs::exists(run_dir + "/checkpoints/" + next_file));
  CHECK_THAT(test::read_file(run_dir + "/summary.json"), Catch::Contains("the training has diverged"));
}
