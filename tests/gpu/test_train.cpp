// The train step on the GPU ([train] device = "cuda"): a short run with
// seed_resnet's cuda build learns; a run with mlp's cuda build matches the
// same run on the CPU (the oracle) step by step; and checkpoints written on
// the GPU resume with the same per-step losses, with the gpu_linear fixture
// (tests/fixtures/plugins: one Linear layer in cuBLAS, deterministic) and
// with seed_resnet + projection_head (batch-norm buffers on the device); and
// a two-tower run (text_transformer, clip) matches the same run on the CPU.
#include "assembly/load_pipeline.hpp"
#include "gpu_test.hpp"
#include "graph/pipeline_run.hpp"
#include "graph/run_record.hpp"
#include "loader/registry.hpp"
#include "test_support.hpp"
#include "train/safetensors.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

using namespace contra;
using namespace contra::runtime;

namespace {

std::string plugin_paths() {
  return std::string("[plugins]\npaths = [\"") + CONTRA_PLUGIN_DIR + "\", \"" + CONTRA_FIXTURE_PLUGIN_DIR +
         "/gpu_linear\"]\n";
}

// SimCLR on synthetic 16×16 images: 8 steps per epoch.
std::string simclr_pipeline(const std::string& encoder) {
  return plugin_paths() + encoder + R"(
[pipeline]
seed = 11
[runtime]
prefetch = 3
compute_threads = 1
[train]
epochs = 6
device = "cuda"
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
[loss]
plugin = "info_nce"
temperature = 0.5
[optimizer]
plugin = "adam"
lr = 0.01
)";
}

// MoCo-style: a head, a momentum encoder and head (the EMA on the device), a
// host-side queue, a cosine schedule, and a kNN evaluation each epoch.
std::string moco_pipeline(const std::string& encoder_and_head) {
  return plugin_paths() + encoder_and_head + R"(
[pipeline]
name = "gpu_records"
seed = 5
[runtime]
compute_threads = 1
prefetch = 2
[train]
epochs = 3
device = "cuda"
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
)";
}

// gpu_linear as encoder and head: cuBLAS only, bit-reproducible.
const char* linear_parts = R"(
[encoder]
plugin = "gpu_linear"
output = 16
[head]
plugin = "gpu_linear"
output = 8
prefix = "proj"
)";

// The CPU resume test's encoder and head, cuda builds: convolutions, batch
// norm (running statistics are checkpointed buffers), the projection head.
const char* resnet_parts = R"(
[encoder]
plugin = "seed_resnet"
width = 4
output = 8
[head]
plugin = "projection_head"
output = 8
)";

RunSummary run_text(const std::string& text, const std::vector<std::string>& overrides, RunOptions o = {}) {
  test::TempDir dir("gpu_train");
  std::string file = dir.file("p.toml");
  test::write_file(file, text);
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(file, overrides, reg);
  return run_pipeline(spec, reg, o);
}

double mean(const std::vector<double>& v, std::size_t a, std::size_t b) {
  return std::accumulate(v.begin() + a, v.begin() + b, 0.0) / static_cast<double>(b - a);
}

}  // namespace

TEST_CASE("train cuda: a short SimCLR run (info_nce, adam) on the GPU learns", "[gpu][train]") {
  CONTRA_REQUIRE_GPU();
  RunSummary s = run_text(simclr_pipeline("[encoder]\nplugin = \"seed_resnet\"\nwidth = 8\noutput = 32\n"), {});
  REQUIRE(s.steps == 48);
  for (double l : s.losses) REQUIRE(std::isfinite(l));
  INFO("first 8 steps " << mean(s.losses, 0, 8) << ", last 8 " << mean(s.losses, 40, 48));
  CHECK(mean(s.losses, 40, 48) < mean(s.losses, 0, 8) - 0.1);
  CHECK(s.telemetry.stage("to_device").calls == 48);
  CHECK(s.telemetry.stage("train").calls == 48);
}

TEST_CASE("train cuda: [train] precision tf32 and bf16 set the math mode and still learn", "[gpu][train]") {
  CONTRA_REQUIRE_GPU();
  const cuda::MathMode saved = cuda::math_mode();
  for (auto [precision, mode] : {std::pair{"tf32", cuda::MathMode::tf32}, std::pair{"bf16", cuda::MathMode::bf16},
                                 std::pair{"f32", cuda::MathMode::strict_f32}}) {
    INFO("precision " << precision);
    RunSummary s = run_text(simclr_pipeline("[encoder]\nplugin = \"seed_resnet\"\nwidth = 8\noutput = 32\n"),
                            {std::string("train.precision=") + precision});
    CHECK(cuda::math_mode() == mode);
    REQUIRE(s.steps == 48);
    for (double l : s.losses) REQUIRE(std::isfinite(l));
    CHECK(mean(s.losses, 40, 48) < mean(s.losses, 0, 8) - 0.1);
  }
  cuda::set_math_mode(saved);
}

TEST_CASE("train cuda: per-step losses match the same run on the CPU within 1e-3", "[gpu][train]") {
  CONTRA_REQUIRE_GPU();
  // The oracle: the same pipeline on the CPU, mlp's two builds (same names,
  // same initial draws), same batches (same seed), the CPU builds of loss and
  // optimizer. strict_f32 math on the GPU; differences are summation order
  // only, so the losses agree to about 1e-5 at first and drift slowly: 16
  // steps within 1e-3 (absolute, losses near ln 63 ≈ 4.1).
  const std::string text = simclr_pipeline("[encoder]\nplugin = \"mlp\"\nhidden = [64]\noutput = 32\n");
  std::vector<std::string> common{"train.epochs=2", "optimizer.plugin=sgd", "optimizer.lr=0.05"};
  RunSummary gpu = run_text(text, common);
  common.emplace_back("train.device=cpu");
  RunSummary cpu = run_text(text, common);
  REQUIRE(gpu.steps == 16);
  REQUIRE(cpu.steps == 16);
  for (std::size_t i = 0; i < 16; ++i) {
    INFO("step " << i << ": cuda " << gpu.losses[i] << ", cpu " << cpu.losses[i]);
    CHECK(std::abs(gpu.losses[i] - cpu.losses[i]) < 1e-3);
  }
}

namespace {

// Runs the MoCo-style pipeline whole, then interrupted after step 9 and
// resumed from its last checkpoint; the per-step losses must agree within
// `relative`. Returns the whole run's last checkpoint.
SafetensorsFile check_resume(const std::string& parts, double relative) {
  test::TempDir dir("gpu_resume");
  const std::string file = dir.file("p.toml");
  test::write_file(file, moco_pipeline(parts));
  auto run = [&](const std::string& run_dir, const std::string& resume, std::int64_t stop_after) {
    PluginRegistry reg;
    PipelineSpec spec =
        load_pipeline(resume.empty() ? file : (std::filesystem::path(run_dir) / "pipeline.toml").string(), {}, reg);
    RunOptions o;
    o.run_dir = run_dir;
    o.resume_from = resume;
    std::atomic<bool> stop{false};
    o.stop = &stop;
    o.on_step = [&](const StepReport& r) {
      if (r.step == stop_after) stop = true;
    };
    return run_pipeline(spec, reg, o);
  };
  RunSummary whole = run(dir.file("whole"), "", -1);
  REQUIRE(whole.steps == 24);
  for (double l : whole.losses) REQUIRE(std::isfinite(l));
  CHECK(!whole.eval.empty());  // knn's figures, from features computed on the GPU
  SafetensorsFile ck = read_safetensors(dir.file("whole") + "/checkpoints/step-00000023.safetensors");
  const std::string run_dir = dir.file("broken");
  RunSummary first = run(run_dir, "", 9);
  REQUIRE(first.steps >= 10);
  REQUIRE(first.steps < 24);
  RunSummary rest = run(run_dir, RunRecord::latest_checkpoint(run_dir), -1);
  CHECK(rest.first_step == first.steps);
  REQUIRE(first.steps + rest.steps == 24);
  for (std::int64_t i = 0; i < first.steps; ++i) CHECK(first.losses[i] == Approx(whole.losses[i]).epsilon(relative));
  for (std::int64_t i = 0; i < rest.steps; ++i) {
    INFO("step " << first.steps + i);
    CHECK(rest.losses[i] == Approx(whole.losses[first.steps + i]).epsilon(relative));
  }
  return ck;
}

}  // namespace

TEST_CASE("train cuda: a checkpoint written on the GPU resumes with the same per-step losses", "[gpu][train]") {
  CONTRA_REQUIRE_GPU();
  // Same kernels, same order, one stream: bit-identical on one GPU; 1e-6
  // relative leaves room for a cuBLAS heuristic that differs between runs.
  SafetensorsFile ck = check_resume(linear_parts, 1e-6);
  // Device parameters, momentum copies and optimizer state reach the file.
  for (const char* name : {"encoder.fc0.weight", "head.proj.bias", "momentum_encoder.fc0.weight",
                           "momentum_head.proj.weight", "memory.queue.keys", "optimizer.fc0.weight.exp_avg",
                           "optimizer.proj.weight.exp_avg_sq"})
    CHECK(ck.tensors.count(name) == 1);
  // The momentum copy moved from its start (the EMA ran) but is not the encoder.
  const Tensor& q = ck.tensors.at("encoder.fc0.weight");
  const Tensor& k = ck.tensors.at("momentum_encoder.fc0.weight");
  double diff = 0;
  for (std::int64_t i = 0; i < q.numel(); ++i) diff += std::abs(q.data<float>()[i] - k.data<float>()[i]);
  CHECK(diff > 0);
}

TEST_CASE("train cuda: seed_resnet + projection_head resume from a GPU checkpoint with the same losses",
          "[gpu][train]") {
  CONTRA_REQUIRE_GPU();
  // cuDNN's algorithms are chosen deterministic-first; 1e-5 relative allows
  // for one that is not, over 14 resumed steps.
  SafetensorsFile ck = check_resume(resnet_parts, 1e-5);
  for (const char* name : {"encoder.stem.conv.weight", "encoder.stem.bn.running_mean", "head.fc2.bias",
                           "momentum_encoder.fc.weight", "optimizer.step", "memory.queue.keys"})
    CHECK(ck.tensors.count(name) == 1);
}

TEST_CASE("train cuda: multi-crop with batch norm matches the CPU run, running statistics included",
          "[gpu][train]") {
  CONTRA_REQUIRE_GPU();
  // Two groups of views (16 × 16 and 8 × 8): the first is forwarded again
  // for its backward pass, on the device as on the CPU, without counting its
  // batch statistics twice. Same seed, same batches; strict_f32 math, so the
  // losses differ by summation order only (4 steps within 2e-3 absolute) and
  // the running statistics by as little (1e-3 relative to their scale).
  const std::string text = plugin_paths() + R"(
[pipeline]
seed = 3
[runtime]
compute_threads = 1
[train]
epochs = 1
device = "cuda"
precision = "f32"
[source]
plugin = "synthetic"
size = 64
height = 16
width = 16
[sampler]
plugin = "random"
batch_size = 16
[[augment.view]]
count = 2
[[augment.view.chain]]
plugin = "random_resized_crop"
size = 16
scale = [0.4, 1.0]
[[augment.view]]
count = 2
[[augment.view.chain]]
plugin = "random_resized_crop"
size = 8
scale = [0.1, 0.4]
[encoder]
plugin = "seed_resnet"
width = 4
output = 8
[loss]
plugin = "info_nce"
[optimizer]
plugin = "sgd"
lr = 0.05
)";
  test::TempDir dir("gpu_multicrop");
  RunOptions on_gpu, on_cpu;
  on_gpu.run_dir = dir.file("gpu");
  on_cpu.run_dir = dir.file("cpu");
  RunSummary gpu = run_text(text, {}, on_gpu);
  RunSummary cpu = run_text(text, {"train.device=cpu"}, on_cpu);
  REQUIRE(gpu.steps == 4);
  REQUIRE(cpu.steps == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    INFO("step " << i << ": cuda " << gpu.losses[i] << ", cpu " << cpu.losses[i]);
    CHECK(std::abs(gpu.losses[i] - cpu.losses[i]) < 2e-3);
  }
  const SafetensorsFile g = read_safetensors(RunRecord::latest_checkpoint(on_gpu.run_dir));
  const SafetensorsFile c = read_safetensors(RunRecord::latest_checkpoint(on_cpu.run_dir));
  int compared = 0;
  for (const auto& [name, want] : c.tensors) {
    if (name.find("running") == std::string::npos) continue;
    INFO(name);
    REQUIRE(g.tensors.count(name) == 1);
    const Tensor& got = g.tensors.at(name);
    REQUIRE(got.numel() == want.numel());
    double diff = 0, scale = 1e-6;
    for (std::int64_t i = 0; i < want.numel(); ++i) {
      diff = std::max(diff, static_cast<double>(std::abs(got.data<float>()[i] - want.data<float>()[i])));
      scale = std::max(scale, static_cast<double>(std::abs(want.data<float>()[i])));
    }
    CHECK(diff <= 1e-3 * scale);
    ++compared;
  }
  CHECK(compared > 0);
}

namespace {

// Two towers: paired_bars' images through mlp and its captions (word_ids)
// through text_transformer, contrasted by clip (learnt temperature), with
// retrieval evaluated at the end; every part but the source, the tokenizer
// and the evaluator has a cuda build.
std::string two_tower_pipeline() {
  return std::string("[plugins]\npaths = [\"") + CONTRA_PLUGIN_DIR + "\", \"" + CONTRA_FIXTURE_PLUGIN_DIR +
         "/paired\"]\n" + R"(
[pipeline]
seed = 5
[runtime]
prefetch = 2
compute_threads = 1
data_threads = 1
[train]
epochs = 4
device = "cuda"
[source]
plugin = "paired_bars"
size = 64
[sampler]
plugin = "random"
batch_size = 16
[augment]
views = 1
[[augment.chain]]
plugin = "normalize"
mean = [0.5]
std = [0.25]
[encoder]
plugin = "mlp"
hidden = [32]
output = 8
[tower.text]
field = "caption"
length = 6
[tower.text.tokenizer]
plugin = "word_ids"
[tower.text.encoder]
plugin = "text_transformer"
width = 16
layers = 1
heads = 2
output = 8
[loss]
plugin = "clip"
[optimizer]
plugin = "sgd"
lr = 0.05
[eval]
every_epochs = 0
batch_size = 8
[eval.test]
plugin = "paired_bars"
size = 24
[[eval.chain]]
plugin = "normalize"
mean = [0.5]
std = [0.25]
[[eval.evaluator]]
plugin = "retrieval"
k = [1, 5]
)";
}

}  // namespace

TEST_CASE("train cuda: two towers (text_transformer, clip) match the same run on the CPU", "[gpu][train]") {
  CONTRA_REQUIRE_GPU();
  // The oracle: the same pipeline on the CPU (the same batches, token ids and
  // initial weights). strict_f32 on the GPU: summation order only.
  RunSummary gpu = run_text(two_tower_pipeline(), {});
  RunSummary cpu = run_text(two_tower_pipeline(), {"train.device=cpu"});
  REQUIRE(gpu.steps == 16);
  REQUIRE(cpu.steps == 16);
  for (std::size_t i = 0; i < 16; ++i) {
    INFO("step " << i << ": cuda " << gpu.losses[i] << ", cpu " << cpu.losses[i]);
    CHECK(std::abs(gpu.losses[i] - cpu.losses[i]) < 1e-3);
  }
  INFO(gpu.eval_error);
  REQUIRE(gpu.eval_error.empty());
  REQUIRE(!gpu.eval.empty());
  REQUIRE(gpu.eval.size() == cpu.eval.size());
  for (std::size_t i = 0; i < gpu.eval.size(); ++i) {
    INFO(gpu.eval[i].first);
    CHECK(gpu.eval[i].first == cpu.eval[i].first);
    CHECK(gpu.eval[i].second == Approx(cpu.eval[i].second).margin(0.05));
  }
}
