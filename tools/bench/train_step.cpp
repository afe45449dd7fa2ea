// train_step: one SimCLR training step (two views, encoder + projection head,
// NT-Xent, Adam) in contra, fp32 and bf16, against the same step in PyTorch
// (tools/bench/train_step_torch.py, run at its best), in one run. Prints
// images/s, the ratio, the forward/loss/backward/optimizer split, and each
// one's share of this machine's matrix-multiply peak measured here with
// oneDNN.
//
//   build/bench/train_step                                  # seed_resnet, 28x28x1, batch 256
//   build/bench/train_step --model resnet18 --size 32 --channels 3 --batch 256
//   build/bench/train_step --curve 200                      # bf16 vs fp32 loss curves, Fashion-MNIST

#include "assembly/load_pipeline.hpp"
#include "graph/pipeline_run.hpp"
#include "loader/registry.hpp"
#include "train/json_io.hpp"

#include <contra/cpu.hpp>
#include <contra/plugin.hpp>

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace contra;
using namespace contra::runtime;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string model = "seed_resnet";
  std::int64_t batch = 256, size = 28, channels = 1;
  int steps = 5, warmup = 2, threads = 2;
  int rounds = 3;  // contra, then the peer, this many times: the ratio is the median of the rounds' ratios
  std::string conv = "auto";  // the encoder's conv_algorithm: auto, direct or winograd
  bool peer = true;
  int curve = 0;
  int pipeline_steps = 0;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Matrix-multiply rate of oneDNN on this machine, GFLOP/s, for f32 or bf16 inputs.
double matmul_peak(dnnl::memory::data_type type) {
  using namespace dnnl;
  const memory::dim n = 2048;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  memory::desc a({n, n}, type, memory::format_tag::ab), c({n, n}, memory::data_type::f32, memory::format_tag::ab);
  matmul::primitive_desc pd(matmul::desc(a, a, c), eng);
  memory ma(a, eng), mb(a, eng), mc(c, eng);
  std::fill_n(static_cast<char*>(ma.get_data_handle()), a.get_size(), 0);
  std::fill_n(static_cast<char*>(mb.get_data_handle()), a.get_size(), 0);
  matmul prim(pd);
  auto run = [&] {
    prim.execute(s, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    s.wait();
  };
  run();
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    auto t = Clock::now();
    run();
    best = std::min(best, seconds_since(t));
  }
  return 2.0 * n * n * n / best / 1e9;
}

// Multiply-adds ×2 of the encoder's convolutions and linear layers for one
// image, forward only.
double model_forward_flops(const Options& o) {
  auto conv = [](double h, double w, double cin, double cout, double k) { return 2.0 * h * w * cin * cout * k * k; };
  double f = 0;
  const double s = static_cast<double>(o.size), c = static_cast<double>(o.channels);
  if (o.model == "seed_resnet") {
    double h = s, q = std::floor((s + 2 - 3) / 2) + 1;  // after max pool 3/2 pad 1
    f += conv(h, h, c, 64, 3);
    f += 2 * conv(q, q, 64, 64, 3) + conv(q, q, 64, 128, 3) + conv(q, q, 128, 128, 3);
    f += 2.0 * 128 * 128;  // fc
    f += 2.0 * (128 * 128 + 128 * 128);  // projection head
  } else {
    double h = s;
    f += conv(h, h, c, 64, 3);
    double in = 64;
    for (int stage = 0; stage < 4; ++stage) {
      double out = 64 << stage;
      double hs = stage == 0 ? h : std::ceil(h / 2);
      f += conv(hs, hs, in, out, 3) + conv(hs, hs, out, out, 3) + 2 * conv(hs, hs, out, out, 3);
      if (stage > 0) f += conv(hs, hs, in, out, 1);
      in = out;
      h = hs;
    }
    f += 2.0 * (512 * 512 + 512 * 128);
  }
  return f;
}

struct Timing {
  double step_s = 0, forward = 0, loss = 0, backward = 0, optimizer = 0;
  double images_per_s = 0, last_loss = 0;
  std::string label;
};

template <class Role> std::shared_ptr<Role> make(PluginRegistry& reg, PluginKind kind, const std::string& name,
                                                 std::initializer_list<std::pair<std::string, Value>> values) {
  const PluginRecord* rec = reg.find(kind, name);
  if (!rec) throw PluginError("plugin '" + name + "' not found in the build's plugins folder");
  return reg.create<Role>(*rec, rec->schema.bind(values));
}

Timing time_contra(PluginRegistry& reg, const Options& o, Precision precision) {
  auto encoder = make<Encoder>(reg, PluginKind::encoder, o.model, {{"conv_algorithm", o.conv}});
  auto head = make<Encoder>(reg, PluginKind::encoder, "projection_head", {});
  auto loss = make<Loss>(reg, PluginKind::loss, "info_nce", {{"temperature", 0.5}});
  auto opt = make<Optimizer>(reg, PluginKind::optimizer, "adam", {{"lr", 1e-3}});
  encoder->build({Shape{o.channels, o.size, o.size}, 0, precision});
  head->build({Shape{encoder->output_dim()}, 1, precision});
  std::vector<Parameter*> params = encoder->parameters();
  for (auto* p : head->parameters()) params.push_back(p);
  opt->configure(params);

  const std::int64_t rows = 2 * o.batch;
  Tensor x = Tensor::empty({rows, o.channels, o.size, o.size}, DType::f32);
  Rng rng(0, 0, 0, 0, 0);
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(rng.uniform());
  std::vector<std::int64_t> sample(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) sample[r] = r % o.batch;
  Pairs pairs;
  pairs.all = true;
  LossResult result;

  Timing t;
  t.label = std::string("contra ") + (precision == Precision::bf16 ? "bf16" : "fp32");
  std::vector<double> totals;
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    auto t0 = Clock::now();
    const Tensor& h = encoder->forward(x, Mode::train);
    const Tensor& z = head->forward(h, Mode::train);
    auto t1 = Clock::now();
    loss->compute(Embeddings{z, &sample, nullptr, 2}, pairs, result);
    auto t2 = Clock::now();
    for (auto* p : params) p->grad.zero();
    const Tensor& dh = head->backward(result.grad, true);
    encoder->backward(dh, false);
    auto t3 = Clock::now();
    opt->step(OptimizerStep{step, 1.0});
    auto t4 = Clock::now();
    if (step >= o.warmup) {
      auto d = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
      t.forward += d(t0, t1) / o.steps;
      t.loss += d(t1, t2) / o.steps;
      t.backward += d(t2, t3) / o.steps;
      t.optimizer += d(t3, t4) / o.steps;
      totals.push_back(d(t0, t4));
    }
    t.last_loss = result.value;
  }
  // The median step: one slow step (a neighbour's burst) does not move it.
  std::sort(totals.begin(), totals.end());
  t.step_s = totals[totals.size() / 2];
  t.images_per_s = rows / t.step_s;
  return t;
}

bool time_pytorch(const Options& o, Timing& t) {
  const char* tc = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
  const char* ob = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
  std::string cmd = std::string("LD_PRELOAD=") + tc + " LD_LIBRARY_PATH=" + ob +
                    " /usr/bin/python3 " CONTRA_SOURCE_DIR "/tools/bench/train_step_torch.py --model " + o.model +
                    " --batch " + std::to_string(o.batch) + " --size " + std::to_string(o.size) + " --channels " +
                    std::to_string(o.channels) + " --steps " + std::to_string(o.steps) + " --warmup " +
                    std::to_string(o.warmup) + " --threads " + std::to_string(o.threads) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return false;
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  const json::Json figures = json::last_object_line(out);
  if (rc != 0 || !json::find(figures, "images_per_s")) {
    std::fprintf(stderr, "PyTorch peer failed (%s):\n%s\n", cmd.c_str(), out.c_str());
    return false;
  }
  t.label = "pytorch fp32";
  t.step_s = json::number_at(figures, "step_s");
  t.images_per_s = json::number_at(figures, "images_per_s");
  // The split of a step's time; its "loss" is the loss computation's seconds.
  const json::Json split = json::find(figures, "split_s") ? *json::find(figures, "split_s") : json::Json::object();
  t.forward = json::number_at(split, "forward");
  t.loss = json::number_at(split, "loss");
  t.backward = json::number_at(split, "backward");
  t.optimizer = json::number_at(split, "optimizer");
  return true;
}

void print_row(const Timing& t, double step_flops, double peak) {
  double gflops = step_flops / t.step_s / 1e9;
  std::printf("%-14s %9.0f %10.1f %9.1f %7.1f %9.1f %9.1f %9.0f %8.0f%%\n", t.label.c_str(), t.images_per_s,
              1e3 * t.step_s, 1e3 * t.forward, 1e3 * t.loss, 1e3 * t.backward, 1e3 * t.optimizer, gflops,
              100.0 * gflops / peak);
}

int curve(const Options& o) {
  std::printf("cpu: %s\n", cpu_capabilities().summary().c_str());
  if (!cpu_capabilities().bf16) {
    std::printf("train_step --curve: skipped, it compares bf16 with f32 and %s\n", bf16_unavailable_reason().c_str());
    return 0;
  }
  std::vector<std::vector<double>> losses;
  for (const char* precision : {"f32", "bf16"}) {
    PluginRegistry reg;
    PipelineSpec spec = load_pipeline(CONTRA_SOURCE_DIR "/pipelines/simclr_fashion_mnist.toml",
                                      {"train.max_steps=" + std::to_string(o.curve),
                                       std::string("train.precision=\"") + precision + "\"", "eval.at_end=false"},
                                      reg);
    auto t = Clock::now();
    RunSummary s = run_pipeline(spec, reg, RunOptions{});
    std::printf("%s: %lld steps in %.1f s (%.0f images/s)\n", precision, static_cast<long long>(s.steps),
                seconds_since(t), s.images_per_s);
    losses.push_back(s.losses);
  }
  // Compare curves smoothed over 10 steps, as one reads a loss curve.
  double worst = 0;
  const auto& a = losses[0];
  const auto& b = losses[1];
  for (std::size_t i = 10; i <= a.size(); i += 10) {
    double ma = 0, mb = 0;
    for (std::size_t k = i - 10; k < i; ++k) ma += a[k] / 10, mb += b[k] / 10;
    worst = std::max(worst, std::fabs(mb - ma) / ma);
    if (i % 50 == 0 || i == a.size())
      std::printf("steps %3zu-%3zu  fp32 %.4f  bf16 %.4f  (%+.2f%%)\n", i - 9, i, ma, mb, 100 * (mb - ma) / ma);
  }
  std::printf("largest deviation of the bf16 curve from the fp32 curve (10-step means): %.2f%% (target <= 2%%)\n",
              100 * worst);
  return 0;
}

// The Fashion-MNIST SimCLR pipeline end to end (loading and augmenting on
// TBB threads while the step trains) against its train steps alone, and
// against PyTorch fed by a DataLoader with 2 workers, same model and batch.
int end_to_end(const Options& o) {
  PluginRegistry reg;
  PipelineSpec spec = load_pipeline(CONTRA_SOURCE_DIR "/pipelines/simclr_fashion_mnist.toml",
                                    {"train.max_steps=" + std::to_string(o.pipeline_steps),
                                     "sampler.batch_size=" + std::to_string(o.batch), "eval.at_end=false"},
                                    reg);
  RunSummary s = run_pipeline(spec, reg, RunOptions{});
  const double train = s.telemetry.stage("train").busy_s;
  std::printf("contra, %d steps of batch %lld: wall %.1f s, train steps %.1f s: the epoch takes %.3fx its train steps "
              "(target <= 1.05x); %.0f images/s end to end\n",
              o.pipeline_steps, static_cast<long long>(o.batch), s.telemetry.wall_s, train, s.telemetry.wall_s / train,
              s.images_per_s);
  if (!o.peer) return 0;
  // Raw images for the DataLoader.
  auto source = reg.create<Source>(*reg.find(PluginKind::source, "idx"), spec.source.params);
  const std::string raw = (std::filesystem::temp_directory_path() / "contra-bench-fmnist.u8").string();
  {
    std::ofstream f(raw, std::ios::binary);
    Tensor img;
    for (std::int64_t i = 0; i < source->info().size; ++i) {
      source->load(i, img);
      f.write(static_cast<const char*>(img.raw()), static_cast<std::streamsize>(img.nbytes()));
    }
  }
  std::string cmd = "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 "
                    "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 " CONTRA_SOURCE_DIR
                    "/tools/bench/train_step_torch.py --model seed_resnet --batch " + std::to_string(o.batch) +
                    " --pipeline-steps " + std::to_string(o.pipeline_steps) + " --warmup 2 --workers 2 --images " + raw +
                    " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n;
  while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const json::Json figures = json::last_object_line(out);
  if (!p || pclose(p) != 0 || !json::find(figures, "wall_s")) {
    std::fprintf(stderr, "PyTorch peer failed:\n%s\n", out.c_str());
    return 1;
  }
  const double wall = json::number_at(figures, "wall_s"), tsteps = json::number_at(figures, "train_s"),
               ips = json::number_at(figures, "images_per_s");
  std::printf("pytorch, DataLoader with 2 workers: wall %.1f s, train steps %.1f s: %.3fx its train steps; %.0f "
              "images/s end to end\n",
              wall, tsteps, wall / tsteps, ips);
  std::printf("contra / pytorch end to end: %.2fx (target >= 1.4x)\n", s.images_per_s / ips);
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
    if (a == "--model") o.model = next();
    else if (a == "--batch") o.batch = std::stoll(next());
    else if (a == "--size") o.size = std::stoll(next());
    else if (a == "--channels") o.channels = std::stoll(next());
    else if (a == "--steps") o.steps = std::stoi(next());
    else if (a == "--warmup") o.warmup = std::stoi(next());
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--rounds") o.rounds = std::max(1, std::stoi(next()));
    else if (a == "--conv") o.conv = next();
    else if (a == "--no-peer") o.peer = false;
    else if (a == "--curve") o.curve = std::stoi(next());
    else if (a == "--pipeline") o.pipeline_steps = std::stoi(next());
    else {
      std::fprintf(stderr,
                   "usage: train_step [--model seed_resnet|resnet18] [--batch N] [--size S] [--channels C]\n"
                   "                  [--steps N] [--warmup N] [--threads T] [--rounds R] [--no-peer]\n"
                   "                  [--conv auto|direct|winograd]\n"
                   "                  [--curve STEPS] [--pipeline STEPS]\n");
      return 2;
    }
  }
  omp_set_num_threads(o.threads);
  try {
    if (o.curve > 0) return curve(o);
    if (o.pipeline_steps > 0) return end_to_end(o);
    const CpuCapabilities& cpu = cpu_capabilities();
    double peak32 = matmul_peak(dnnl::memory::data_type::f32);
    double peak16 = cpu.bf16 ? matmul_peak(dnnl::memory::data_type::bf16) : NAN;
    const double step_flops = 3.0 * model_forward_flops(o) * 2 * o.batch;  // forward + two backward products
    std::printf("train_step: %s (conv_algorithm %s) + projection_head, NT-Xent, Adam; batch %lld (%lld views of "
                "%lldx%lldx%lld), %d threads\n",
                o.model.c_str(), o.conv.c_str(), static_cast<long long>(o.batch), static_cast<long long>(2 * o.batch),
                static_cast<long long>(o.size), static_cast<long long>(o.size), static_cast<long long>(o.channels),
                o.threads);
    std::printf("cpu: %s\n", cpu.summary().c_str());
    std::printf("oneDNN matmul 2048^3 on this machine: fp32 %.0f GFLOP/s, bf16 %s; model %.1f GFLOP/step\n\n",
                peak32, cpu.bf16 ? (std::to_string(static_cast<long>(peak16)) + " GFLOP/s").c_str() : "not available",
                step_flops / 1e9);
    std::printf("%-14s %9s %10s %9s %7s %9s %9s %9s %9s\n", "", "images/s", "step (ms)", "fwd (ms)", "loss",
                "bwd (ms)", "opt (ms)", "GFLOP/s", "of fp32 peak");
    PluginRegistry reg;
    reg.scan_directory(default_plugin_dir());
    // Machines here are shared and their speed drifts by tens of percent over
    // a minute: each round times contra and the peer back to back, and the
    // ratios are taken per round (their median is the figure).
    std::vector<double> ratio32, ratio16;
    for (int r = 0; r < o.rounds; ++r) {
      if (o.rounds > 1) std::printf("round %d of %d\n", r + 1, o.rounds);
      Timing f32 = time_contra(reg, o, Precision::f32);
      print_row(f32, step_flops, peak32);
      Timing b16;
      if (cpu.bf16) {
        b16 = time_contra(reg, o, Precision::bf16);
        print_row(b16, step_flops, peak32);
      } else if (r == 0) {
        std::printf("%-14s skipped: %s\n", "contra bf16", bf16_unavailable_reason().c_str());
      }
      Timing torch;
      if (o.peer && time_pytorch(o, torch)) {
        print_row(torch, step_flops, peak32);
        ratio32.push_back(f32.images_per_s / torch.images_per_s);
        if (cpu.bf16) ratio16.push_back(b16.images_per_s / torch.images_per_s);
      }
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    };
    auto rounds = [](const std::vector<double>& v) {
      std::string s;
      for (double x : v) s += (s.empty() ? "" : ", ") + std::to_string(x).substr(0, 4);
      return s;
    };
    if (!ratio32.empty()) {
      std::printf("\nratio contra fp32 / pytorch fp32: %.2fx, median of %zu rounds (%s) (target >= 1.1x); %s\n",
                  median(ratio32), ratio32.size(), rounds(ratio32).c_str(), cpu.summary().c_str());
      if (!ratio16.empty())
        std::printf("ratio contra bf16 / pytorch fp32: %.2fx, median of %zu rounds (%s) (target >= 1.8x)\n",
                    median(ratio16), ratio16.size(), rounds(ratio16).c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_step: %s\n", e.what());
    return 1;
  }
}
