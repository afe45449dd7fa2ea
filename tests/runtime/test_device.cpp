// [train] device: validation, plugin resolution for cuda, and the errors of
// `contra run` where the GPU or the CUDA build is missing. Runs on the CPU in
// builds with and without CUDA; the expected text depends on which.
#include "config/pipeline_spec.hpp"
#include "cuda_bridge.hpp"
#include "assembly/pipeline_device.hpp"
#include "device/cuda_library.hpp"
#include "graph/executor.hpp"
#include "loader/registry.hpp"
#include "train/safetensors.hpp"
#include "test_support.hpp"
#include "cli_runner.hpp"

#include <contra/cpu.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <sys/wait.h>

using namespace contra;
using namespace contra::runtime;

using contra::test::run_cli;

namespace {

// [train] device on line 2; a source whose data file does not exist, so that
// an error about it would show that data was loaded.
const char* cuda_pipeline =
    "[train]\n"
    "device = \"cuda\"\n"
    "max_steps = 1\n"
    "\n"
    "[source]\n"
    "plugin = \"idx\"\n"
    "images = \"/nonexistent/images-idx3-ubyte\"\n"
    "\n"
    "[encoder]\n"
    "plugin = \"mlp\"\n"
    "\n"
    "[loss]\n"
    "plugin = \"info_nce\"\n"
    "\n"
    "[optimizer]\n"
    "plugin = \"sgd\"\n";

const std::string no_cuda_build =
    "\"cuda\", but this build of contra has no CUDA support (built with CONTRA_CUDA=OFF or without a CUDA "
    "compiler)";

// What `contra run` must say about the device here, or "" where a GPU is usable.
std::string expected_device_error() {
  if (!built_with_cuda()) return no_cuda_build;
  std::string error;
  const cuda::detail::CudaBridge* b = cuda_bridge(&error);
  if (!b) return "\"cuda\", but no usable GPU: " + error;
  if (b->available()) return "";
  return "\"cuda\", but no usable GPU: " + b->unavailable_reason();
}
}  // namespace

TEST_CASE("device: [train] device defaults to cpu and takes cpu or cuda", "[runtime][config][device]") {
  Diagnostics d;
  auto spec = read_pipeline_text("[source]\nplugin = \"synthetic\"\n", "p.toml", {}, d);
  REQUIRE(spec);
  CHECK(pipeline_device(*spec) == Device::cpu);
  auto cuda = read_pipeline_text("[train]\ndevice = \"cuda\"\n", "p.toml", {}, d);
  REQUIRE(cuda);
  CHECK(pipeline_device(*cuda) == Device::cuda);
  CHECK(pipeline_device_location(*cuda).str() == "p.toml:2:1");
  auto set = read_pipeline_text("", "p.toml", {"train.device=cuda"}, d);
  REQUIRE(set);
  CHECK(pipeline_device(*set) == Device::cuda);
  CHECK(pipeline_device_location(*set).str() == "p.toml");  // --set: the file alone
  auto bad = read_pipeline_text("[train]\ndevice = \"gpu\"\n", "p.toml", {}, d);
  bool reported = false;
  for (const auto& x : d)
    if (x.str() == "p.toml:2:1: error: train.device: expected one of \"cpu\" or \"cuda\", found \"gpu\"")
      reported = true;
  CHECK(reported);
}

TEST_CASE("device: [train] precision tf32 needs the GPU, each precision has its GPU math mode",
          "[runtime][config][device]") {
  Diagnostics d;
  auto spec = read_pipeline_text("[train]\nprecision = \"tf32\"\n", "p.toml", {}, d);
  REQUIRE(spec);
  // (Missing sections are reported too; only [train] matters here.)
  auto about_precision = [](const Diagnostics& all) {
    std::vector<std::string> out;
    for (const auto& x : all)
      if (x.key == "train.precision") out.push_back(x.str());
    return out;
  };
  CHECK(about_precision(d) ==
        std::vector<std::string>{"p.toml:2:1: error: train.precision: \"tf32\" is the GPU's tensor-core arithmetic "
                                 "and needs [train] device = \"cuda\"; on the CPU use \"f32\", \"bf16\" or \"auto\""});
  Diagnostics ok;
  auto gpu = read_pipeline_text("[train]\nprecision = \"tf32\"\ndevice = \"cuda\"\n", "p.toml", {}, ok);
  REQUIRE(gpu);
  CHECK(about_precision(ok).empty());
  CHECK(train_precision_name(*gpu) == "tf32");
  CHECK(train_precision(*gpu) == Precision::f32);  // f32 storage, tensor-core products
  Diagnostics bf;
  auto bf16 = read_pipeline_text("", "p.toml", {"train.precision=bf16"}, bf);
  REQUIRE(bf16);
  if (cpu_capabilities().bf16) {
    CHECK(about_precision(bf).empty());
  } else {
    // Refused where it is set (the --set, or the file's line), naming what is missing and the fix.
    const std::string why = "error: train.precision: \"bf16\" cannot run on this CPU: " + bf16_unavailable_reason() +
                            "; use --set train.precision=f32, or \"auto\" (bf16 where the CPU has bf16 "
                            "instructions, else f32)";
    CHECK(about_precision(bf) == std::vector<std::string>{"--set train.precision=bf16: " + why});
    Diagnostics in_file;
    REQUIRE(read_pipeline_text("[train]\nepochs = 1\nprecision = \"bf16\"\n", "p.toml", {}, in_file));
    CHECK(about_precision(in_file) == std::vector<std::string>{"p.toml:3:1: " + why});
  }
  CHECK(train_precision(*bf16) == Precision::bf16);
  Diagnostics gpu_bf;
  auto gpu_bf16 = read_pipeline_text("[train]\nprecision = \"bf16\"\ndevice = \"cuda\"\n", "p.toml", {}, gpu_bf);
  REQUIRE(gpu_bf16);
  CHECK(about_precision(gpu_bf).empty());  // the CPU's capabilities do not matter on the GPU
  CHECK(cuda_math_mode("f32") == cuda::MathMode::strict_f32);
  CHECK(cuda_math_mode("tf32") == cuda::MathMode::tf32);
  CHECK(cuda_math_mode("bf16") == cuda::MathMode::bf16);
}

TEST_CASE("device: [train] precision auto is bf16 on a GPU or a CPU with bf16 instructions, else f32",
          "[runtime][config][device]") {
  Diagnostics d;
  auto cpu = read_pipeline_text("[train]\nprecision = \"auto\"\n", "p.toml", {}, d);
  REQUIRE(cpu);
  for (const auto& x : d) CHECK(x.key != "train.precision");
  CHECK(train_precision_setting(*cpu) == "auto");
  const bool native = cpu_capabilities().bf16_native;
  INFO(cpu_capabilities().summary());
  CHECK(train_precision_name(*cpu) == (native ? "bf16" : "f32"));
  CHECK(train_precision(*cpu) == (native ? Precision::bf16 : Precision::f32));
  auto gpu = read_pipeline_text("[train]\nprecision = \"auto\"\ndevice = \"cuda\"\n", "p.toml", {}, d);
  REQUIRE(gpu);
  CHECK(train_precision_name(*gpu) == "bf16");
  CHECK(cuda_math_mode(train_precision_name(*gpu)) == cuda::MathMode::bf16);
  auto plain = read_pipeline_text("", "p.toml", {}, d);
  REQUIRE(plain);
  CHECK(train_precision_setting(*plain) == "f32");
  CHECK(train_precision_name(*plain) == "f32");
}

TEST_CASE("device: a cpu pipeline never loads libcontra_cuda", "[runtime][device]") {
  Diagnostics d;
  auto spec = read_pipeline_text("[train]\ndevice = \"cpu\"\n", "p.toml", {}, d);
  REQUIRE(spec);
  CHECK_NOTHROW(require_device(*spec));
}

TEST_CASE("device: contra run with device = cuda fails at start without a usable GPU, naming file and key",
          "[runtime][cli][device]") {
  std::string expected = expected_device_error();
  if (expected.empty()) {
    WARN("SKIPPED: a GPU is usable here; this checks the error where none is");
    return;
  }
  test::TempDir dir("device");
  std::string file = dir.file("p.toml");
  test::write_file(file, cuda_pipeline);
  test::CommandResult r = run_cli("run " + file + " --no-record");
  CHECK(r.status == 1);
  CHECK(r.out == file + ":2:1: error: train.device: " + expected + "\n");

  // Set from the command line: the pipeline file is named, without a line.
  std::string cpu_file = dir.file("cpu.toml");
  test::write_file(cpu_file, "[source]\nplugin = \"idx\"\nimages = \"/nonexistent/x\"\n");
  test::CommandResult set = run_cli("run " + cpu_file + " --no-record --set train.device=cuda");
  CHECK(set.status == 1);
  CHECK(set.out == cpu_file + ": error: train.device: " + expected + "\n");

  // The library call says the same.
  Diagnostics d;
  auto spec = read_pipeline(file, {}, d);
  REQUIRE(spec);
  CHECK_THROWS_AS(require_device(*spec), DeviceError);
  CHECK_THROWS_WITH(require_device(*spec), file + ":2:1: error: train.device: " + expected);
}

TEST_CASE("device: validate of a cuda pipeline names plugins without a cuda build and those with one",
          "[runtime][cli][device]") {
  test::TempDir dir("device");
  std::string file = dir.file("p.toml");
  std::string fixture_dir = std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/cuda_twins";
  test::write_file(file, "[plugins]\npaths = [\"" + fixture_dir +
                             "\"]\n\n[train]\ndevice = \"cuda\"\n\n[source]\nplugin = \"synthetic\"\n\n"
                             "[encoder]\nplugin = \"mlp\"\n\n[loss]\nplugin = \"lonely_loss\"\n\n"
                             "[optimizer]\nplugin = \"sgd\"\n");
  test::CommandResult r = run_cli("validate " + file);
  CHECK(r.status == 1);
  if (!built_with_cuda()) {
    // Said once, instead of once per plugin.
    CHECK(r.out == file + ":5:1: error: train.device: " + no_cuda_build + "\n");
    return;
  }
  CHECK_THAT(r.out, Catch::Contains(file + ":14:10: error: loss.plugin: loss plugin 'lonely_loss' has no cuda build "
                                           "(libcuda_twins.so is its cpu build); loss plugins with a cuda build: "));
  CHECK_THAT(r.out, Catch::Contains("twin_loss"));
  CHECK_THAT(r.out, Catch::Contains(" (needed for [train] device = \"cuda\")"));
  // The source runs on the CPU beside the GPU: no error about it.
  CHECK_THAT(r.out, !Catch::Contains("source.plugin"));
}

TEST_CASE("device: contra plugins marks GPU builds with their device", "[runtime][cli][device]") {
  test::CommandResult r = run_cli("plugins --kind loss --path " + std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/cuda_twins");
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("  twin_loss              a loss with a cpu build\n"
                                    "  twin_loss (cuda)       a loss with a cuda build\n"));
  CHECK_THAT(r.out, Catch::Contains("  lonely_loss            a loss without a cuda build\n"));
  test::CommandResult d = run_cli("plugins --describe twin_loss --path " + std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/cuda_twins");
  // The fixture's two builds differ in their summaries: each is described.
  const std::string lib = std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/cuda_twins/libcuda_twins.so";
  CHECK_THAT(d.out, Catch::Contains("twin_loss (loss plugin)\n  cpu build: " + lib + "\ntwin_loss: a loss with a cpu build"));
  CHECK_THAT(d.out, Catch::Contains("twin_loss (loss plugin)\n  cuda build: " + lib + "\ntwin_loss: a loss with a cuda build"));
}

// The to_device stage's place in the graph, without a GPU: plain functions
// stand in for the copy.
TEST_CASE("device: a to_device stage runs between the sequencer and train, in step order, overlapping training",
          "[runtime][executor][device]") {
  const int batches = 8;
  int planned = 0;
  std::mutex m;
  std::vector<std::int64_t> copied, trained;
  std::atomic<int> in_train{0}, copies_during_train{0};
  ExecutorStages s;
  s.plan = [&](BatchWork& w) {
    w.batch.step = planned;
    return planned++ < batches;
  };
  s.load = [](BatchWork&) {};
  // Later batches finish augmenting first: the sequencer must restore order.
  s.augment = [](BatchWork& w) {
    std::this_thread::sleep_for(std::chrono::milliseconds(w.sequence % 2 ? 5 : 25));
  };
  s.to_device = [&](BatchWork& w) {
    if (in_train.load()) ++copies_during_train;
    std::lock_guard<std::mutex> lock(m);
    copied.push_back(w.sequence);
    w.device_batch.step = w.batch.step;  // what the copy would fill
  };
  s.train = [&](BatchWork& w) {
    ++in_train;
    {
      std::lock_guard<std::mutex> lock(m);
      // Its copy ran before it.
      CHECK(std::find(copied.begin(), copied.end(), w.sequence) != copied.end());
      CHECK(w.device_batch.step == w.batch.step);
      trained.push_back(w.sequence);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    --in_train;
  };
  s.sink = [](BatchWork&) {};
  ExecutorReport r = run_graph(s, ExecutorOptions{3, 2, true});
  CHECK(r.batches == batches);
  std::vector<std::int64_t> in_order(batches);
  for (int i = 0; i < batches; ++i) in_order[i] = i;
  CHECK(copied == in_order);
  CHECK(trained == in_order);
  REQUIRE(r.stages.size() == 6);
  CHECK(r.stage("to_device").calls == batches);
  CHECK(r.max_in_flight <= max_batches_alive(3));
  // Copies of the next batches were issued while a step was running.
  CHECK(copies_during_train.load() > 0);
}

TEST_CASE("device: without a to_device stage the report keeps the five CPU stages", "[runtime][executor][device]") {
  int planned = 0;
  ExecutorStages s;
  s.plan = [&](BatchWork&) { return planned++ < 3; };
  s.load = s.augment = s.train = s.sink = [](BatchWork&) {};
  ExecutorReport r = run_graph(s, ExecutorOptions{2, 1, true});
  REQUIRE(r.stages.size() == 5);
  CHECK(r.stages.back().name == "sink");
  CHECK(r.batches == 3);
}

TEST_CASE("device: checkpoints refuse device tensors instead of reading device memory on the host",
          "[runtime][device]") {
  test::TempDir dir("device");
  float fake[4] = {};
  Tensor d = Tensor::wrap(fake, {4}, DType::f32, Device::cuda);
  std::string path = dir.file("x.safetensors");
  CHECK_THROWS_WITH(write_safetensors(path, {{"w", &d}}, {}),
                    "safetensors: tensor 'w' written to " + path +
                        ": expected a tensor on the cpu, got one on cuda (copy it to the host first)");
}
