// gpu_train_step: a SimCLR training step on the GPU (resnet18 + projection
// head, info_nce, adam; 32×32×3, batch 512 = 1024 views) in contra against
// the same step in PyTorch (tools/bench/gpu_train_step_torch.py, at its
// best: cudnn.benchmark, the faster of NCHW and channels_last, TF32 when
// contra's is), in one run, per math mode; then one epoch end to end, the
// data pipeline feeding the GPU (CIFAR-format data written to a temp dir),
// with the GPU's busy share of wall time (CUDA events around each step) for
// both. Prints images/s and contra / PyTorch.
//
//   build/bench/gpu_train_step [--batch 512] [--steps 20] [--warmup 5]
//                              [--epoch-steps 24] [--workers N] [--no-peer] [--no-epoch]
//
// Exit status: 0 when it ran, or when no GPU is usable (it says so: "no
// usable GPU: <reason>"); 1 when something failed; 2 for bad arguments.
// PYTHON (default python3) runs the peer.

#include "assembly/load_pipeline.hpp"
#include "graph/pipeline_run.hpp"
#include "loader/registry.hpp"
#include "train/json_io.hpp"

#include <contra/cuda.hpp>
#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace contra;
using namespace contra::runtime;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::int64_t batch = 512;
  int steps = 20, warmup = 5, epoch_steps = 24, workers = 0;
  bool peer = true, epoch = true;
  bool peer_channels_last = false;  // the layout PyTorch's strict_f32 step was faster with
};

struct StepFigures {
  double images_per_s = NAN;  // 2·batch·steps / wall, steps queued back to back
  double gpu_ms = NAN;        // mean CUDA-event span of one step
  double loss = NAN;
  std::string note;           // why there are no figures
};

template <class Role> std::shared_ptr<Role> make(PluginRegistry& reg, PluginKind kind, const std::string& name,
                                                 std::initializer_list<std::pair<std::string, Value>> values) {
  const PluginRecord* rec = reg.find(kind, name, Device::cuda);
  if (!rec)
    throw PluginError(std::string(kind_name(kind)) + " '" + name + "' has no cuda build in " + CONTRA_PLUGIN_DIR);
  return reg.create<Role>(*rec, rec->schema.bind(values));
}

// contra's step, driven by hand as the trainer does (no data pipeline).
StepFigures time_contra(PluginRegistry& reg, const Options& o) {
  StepFigures f;
  std::shared_ptr<Encoder> encoder, head;
  std::shared_ptr<Loss> loss;
  std::shared_ptr<Optimizer> opt;
  try {
    encoder = make<Encoder>(reg, PluginKind::encoder, "resnet18", {});
    head = make<Encoder>(reg, PluginKind::encoder, "projection_head", {});
    loss = make<Loss>(reg, PluginKind::loss, "info_nce", {{"temperature", 0.5}});
    opt = make<Optimizer>(reg, PluginKind::optimizer, "adam", {{"lr", 1e-3}});
  } catch (const PluginError& e) {
    f.note = e.what();
    return f;
  }
  cuda::Stream stream;
  cuda::set_current_stream(stream.get());
  encoder->build({Shape{3, 32, 32}, 0, Precision::f32});
  head->build({Shape{encoder->output_dim()}, 1, Precision::f32});
  std::vector<Parameter*> params = encoder->parameters();
  for (auto* p : head->parameters()) params.push_back(p);
  opt->configure(params);
  cuda::synchronize_device();  // build() may have used the default stream

  const std::int64_t rows = 2 * o.batch;
  Tensor host = cuda::pinned_host_tensor({rows, 3, 32, 32}, DType::f32);
  Rng rng(0, 0, 0, 0, 0);
  for (std::int64_t i = 0; i < host.numel(); ++i) host.data<float>()[i] = static_cast<float>(rng.uniform());
  Tensor x;
  cuda::copy_to_device(x, host, stream.get());
  std::vector<std::int64_t> sample(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) sample[r] = r % o.batch;
  Pairs pairs;
  pairs.all = true;
  LossResult result;
  auto step = [&](int s) {
    const Tensor& h = encoder->forward(x, Mode::train);
    const Tensor& z = head->forward(h, Mode::train);
    loss->compute(Embeddings{z, &sample, nullptr, 2}, pairs, result);
    for (auto* p : params) p->grad.zero();
    const Tensor& dh = head->backward(result.grad, true);
    encoder->backward(dh, false);
    opt->step(OptimizerStep{s, 1.0});
  };
  for (int s = 0; s < o.warmup; ++s) step(s);
  cuda::synchronize(stream.get());
  std::vector<cuda::Event> begin, end;
  for (int s = 0; s < o.steps; ++s) begin.emplace_back(true), end.emplace_back(true);
  const auto t0 = Clock::now();
  for (int s = 0; s < o.steps; ++s) {
    begin[s].record(stream.get());
    step(o.warmup + s);
    end[s].record(stream.get());
  }
  cuda::synchronize(stream.get());
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  double gpu = 0;
  for (int s = 0; s < o.steps; ++s) gpu += end[s].elapsed_ms_since(begin[s]);
  cuda::set_current_stream(nullptr);
  f.images_per_s = static_cast<double>(rows) * o.steps / wall;
  f.gpu_ms = gpu / o.steps;
  f.loss = result.value;
  return f;
}

std::string python() {
  const char* p = std::getenv("PYTHON");
  return p && *p ? p : "python3";
}

// Runs the peer: the figures of its last line, one JSON object; an empty object on failure (said why).
json::Json run_peer(const std::string& args) {
  std::string cmd = python() + " " CONTRA_SOURCE_DIR "/tools/bench/gpu_train_step_torch.py " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n;
  while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = p ? pclose(p) : -1;
  json::Json figures = json::last_object_line(out);
  if (rc != 0 || !json::find(figures, "images_per_s")) {
    std::printf("  pytorch peer failed (%s):\n%s\n", cmd.c_str(), out.c_str());
    return json::Json::object();
  }
  return figures;
}

// CIFAR-10 binary batches (data_batch_1..5.bin) of `n` synthetic 32×32×3
// images, rendered by the synthetic source: both sides read the same bytes.
void write_cifar(PluginRegistry& reg, const fs::path& dir, std::int64_t n) {
  const PluginRecord* rec = reg.find(PluginKind::source, "synthetic");
  if (!rec) throw PluginError("source 'synthetic' not found in " CONTRA_PLUGIN_DIR);
  auto source = reg.create<Source>(*rec, rec->schema.bind({{"size", Value(n)}, {"height", Value(std::int64_t{32})},
                                                            {"width", Value(std::int64_t{32})},
                                                            {"channels", Value(std::int64_t{3})}}));
  fs::create_directories(dir);
  Tensor img;
  std::vector<char> record(3073);
  for (int b = 0; b < 5; ++b) {
    std::ofstream f(dir / ("data_batch_" + std::to_string(b + 1) + ".bin"), std::ios::binary);
    for (std::int64_t i = n * b / 5; i < n * (b + 1) / 5; ++i) {
      const std::int64_t label = source->load(i, img);
      const auto* px = img.data<std::uint8_t>();  // HWC
      record[0] = static_cast<char>(label);
      for (int c = 0; c < 3; ++c)
        for (int p = 0; p < 1024; ++p) record[1 + c * 1024 + p] = static_cast<char>(px[p * 3 + c]);
      f.write(record.data(), static_cast<std::streamsize>(record.size()));
    }
    if (!f) throw DataError("cannot write " + (dir / ("data_batch_" + std::to_string(b + 1) + ".bin")).string());
  }
}

std::string epoch_pipeline(const fs::path& data, const Options& o) {
  return std::string("[plugins]\npaths = [\"") + CONTRA_PLUGIN_DIR + "\"]\n" +
         "[pipeline]\nseed = 1\n"
         "[runtime]\nprefetch = 4\n" +
         (o.workers > 0 ? "data_threads = " + std::to_string(o.workers) + "\n" : std::string()) +
         "[train]\nepochs = 1\ndevice = \"cuda\"\n"
         "[source]\nplugin = \"cifar\"\nfolder = \"" + data.string() + "\"\n"
         "[sampler]\nplugin = \"random\"\nbatch_size = " + std::to_string(o.batch) + "\n"
         "[augment]\nviews = 2\n"
         "[[augment.chain]]\nplugin = \"random_resized_crop\"\nsize = 32\nscale = [0.2, 1.0]\n"
         "[[augment.chain]]\nplugin = \"horizontal_flip\"\n"
         "[[augment.chain]]\nplugin = \"normalize\"\nmean = [0.49, 0.48, 0.45]\nstd = [0.25, 0.24, 0.26]\n"
         "[encoder]\nplugin = \"resnet18\"\n"
         "[head]\nplugin = \"projection_head\"\noutput = 128\n"
         "[loss]\nplugin = \"info_nce\"\ntemperature = 0.5\n"
         "[optimizer]\nplugin = \"adam\"\nlr = 0.001\n";
}

int epoch(PluginRegistry& reg, const Options& o, const fs::path& tmp) {
  const std::int64_t n = o.batch * o.epoch_steps;
  const fs::path data = tmp / "cifar";
  write_cifar(reg, data, n);
  std::printf("\n== one epoch end to end: %lld CIFAR-format images (%d steps of batch %lld), loading and "
              "augmentation on CPU threads feeding the GPU\n",
              static_cast<long long>(n), o.epoch_steps, static_cast<long long>(o.batch));
  const int skip = std::min(2, o.epoch_steps - 1);  // first steps: cuDNN's algorithm search, allocations
  bool ran = false;
  double contra_ips = NAN;
  try {
    const fs::path file = tmp / "epoch.toml";
    std::ofstream(file) << epoch_pipeline(data, o);
    PluginRegistry preg;
    PipelineSpec spec = load_pipeline(file.string(), {}, preg);
    RunOptions ro;
    ro.time_device_steps = true;
    std::vector<double> at;  // wall time at each step's end (sink)
    ro.on_step = [&](const StepReport& r) { at.push_back(r.elapsed_s); };
    RunSummary s = run_pipeline(spec, preg, ro);
    if (s.device_step_s.size() != at.size() || static_cast<int>(at.size()) <= skip)
      throw UsageError("the epoch ran " + std::to_string(at.size()) + " steps, " +
                       std::to_string(s.device_step_s.size()) + " of them timed on the GPU");
    // Wall time ends when the GPU has finished the last step (as PyTorch's
    // ends after torch.cuda.synchronize()); "after the first steps" starts
    // when the host had handed over step skip - 1.
    const double wall = s.device_done_s;
    const double busy = std::accumulate(s.device_step_s.begin(), s.device_step_s.end(), 0.0);
    const double busy_late = std::accumulate(s.device_step_s.begin() + skip, s.device_step_s.end(), 0.0);
    const double wall_late = wall - at[static_cast<std::size_t>(skip) - 1];
    contra_ips = static_cast<double>(2 * o.batch * (s.steps - skip)) / wall_late;
    std::printf("contra : wall %.2f s, GPU busy %.2f s (%.0f%%); after %d steps: %.0f%% busy, %.0f images/s "
                "(%d data threads)\n",
                wall, busy, 100 * busy / wall, skip, 100 * busy_late / wall_late, contra_ips, s.data_threads);
    ran = true;
  } catch (const std::exception& e) {
    std::printf("contra : not run: %s\n", e.what());
  }
  if (o.peer) {
    const json::Json out = run_peer("--epoch --folder " + data.string() + " --batch " + std::to_string(o.batch) +
                                    " --skip " + std::to_string(skip) +
                                    (o.peer_channels_last ? " --channels-last" : "") +
                                    (o.workers > 0 ? " --workers " + std::to_string(o.workers) : std::string()));
    if (!out.empty()) {
      auto figure = [&](const char* key) { return json::number_at(out, key); };
      const double ips = figure("images_per_s");
      std::printf("pytorch: wall %.2f s, GPU busy %.2f s (%.0f%%); after %d steps: %.0f%% busy, %.0f images/s "
                  "(DataLoader, %d workers)\n",
                  figure("wall_s"), figure("busy_s"), 100 * figure("busy_s") / figure("wall_s"), skip,
                  100 * figure("busy_late_s") / figure("wall_late_s"), ips, static_cast<int>(figure("workers")));
      if (ran) std::printf("contra / pytorch end to end: %.2fx\n", contra_ips / ips);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--batch") o.batch = std::stoll(next());
    else if (a == "--steps") o.steps = std::stoi(next());
    else if (a == "--warmup") o.warmup = std::stoi(next());
    else if (a == "--epoch-steps") o.epoch_steps = std::stoi(next());
    else if (a == "--workers") o.workers = std::stoi(next());
    else if (a == "--no-peer") o.peer = false;
    else if (a == "--no-epoch") o.epoch = false;
    else {
      std::fprintf(stderr,
                   "usage: gpu_train_step [--batch N] [--steps N] [--warmup N] [--epoch-steps N] [--workers N]\n"
                   "                      [--no-peer] [--no-epoch]\n");
      return 2;
    }
  }
  if (o.batch < 2 || o.steps < 1 || o.warmup < 0 || o.epoch_steps < 2) {
    std::fprintf(stderr, "gpu_train_step: needs --batch >= 2, --steps >= 1, --warmup >= 0, --epoch-steps >= 2\n");
    return 2;
  }
  if (!cuda::available()) {
    std::printf("gpu_train_step: no usable GPU: %s\n", cuda::unavailable_reason().c_str());
    return 0;
  }
  try {
    cuda::require("gpu_train_step");
    std::printf("gpu_train_step: %s\n", cuda::device_description().c_str());
    std::printf("SimCLR step: resnet18 + projection_head, info_nce (t = 0.5), adam; batch %lld (%lld views of "
                "32x32x3); %d warm-up steps, %d timed\n",
                static_cast<long long>(o.batch), static_cast<long long>(2 * o.batch), o.warmup, o.steps);
    PluginRegistry reg;
    reg.include_device_builds();
    reg.scan_directory(CONTRA_PLUGIN_DIR);
    std::printf("%-12s %-8s %12s %12s %10s\n", "math mode", "who", "images/s", "GPU ms/step", "loss");
    for (cuda::MathMode m : {cuda::MathMode::strict_f32, cuda::MathMode::tf32}) {
      cuda::set_math_mode(m);
      const char* mode = cuda::math_mode_name(m);
      StepFigures c = time_contra(reg, o);
      if (!c.note.empty())
        std::printf("%-12s %-8s not run: %s\n", mode, "contra", c.note.c_str());
      else
        std::printf("%-12s %-8s %12.0f %12.2f %10.4f\n", mode, "contra", c.images_per_s, c.gpu_ms, c.loss);
      if (!o.peer) continue;
      const json::Json out = run_peer("--batch " + std::to_string(o.batch) + " --steps " + std::to_string(o.steps) +
                                      " --warmup " + std::to_string(o.warmup) +
                                      (m == cuda::MathMode::tf32 ? " --tf32" : ""));
      if (out.empty()) continue;
      const double ips = json::number_at(out, "images_per_s");
      const json::Json* layout = json::find(out, "channels_last");
      const bool channels_last = layout && layout->is_boolean() && layout->get<bool>();
      if (m == cuda::MathMode::strict_f32) o.peer_channels_last = channels_last;
      std::printf("%-12s %-8s %12.0f %12.2f %10.4f  (%s)\n", mode, "pytorch", ips,
                  json::number_at(out, "gpu_ms"), json::number_at(out, "loss"),
                  channels_last ? "channels_last" : "NCHW");
      if (c.note.empty()) std::printf("%-12s contra / pytorch: %.2fx\n", mode, c.images_per_s / ips);
    }
    cuda::set_math_mode(cuda::MathMode::strict_f32);
    if (o.epoch) {
      const fs::path tmp = fs::temp_directory_path() / ("contra-gpu-bench-" + std::to_string(::getpid()));
      int rc = 0;
      try {
        rc = epoch(reg, o, tmp);
      } catch (...) {
        fs::remove_all(tmp);
        throw;
      }
      fs::remove_all(tmp);
      return rc;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_train_step: %s\n", e.what());
    return 1;
  }
}
