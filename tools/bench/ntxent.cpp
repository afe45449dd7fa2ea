// ntxent: NT-Xent forward + backward (the info_nce loss plugin, SimCLR's
// Pairs::all) for 2N rows of width D, against the same computation in
// PyTorch (tools/bench/ntxent_torch.py, run at its best), in one run. Prints
// seconds, effective GFLOP/s (three M×M×D products: S = ẐẐᵀ and the two of
// the gradient), the ratio, and the share of oneDNN's sgemm rate for S = ZZᵀ
// measured here for the same shape. Then one very large batch for contra
// alone, with the growth of the peak resident memory, to show that the loss
// works in row chunks (chunk × M floats) instead of an M×M matrix.
//
//   build/bench/ntxent                          # 2N = 512, 2048, 8192; D = 128; 2 threads; then 2N = 65536
//   build/bench/ntxent --rows 2048 --big 0 --no-peer --chunk 256

#include "loader/registry.hpp"
#include "train/json_io.hpp"

#include <contra/cpu.hpp>
#include <contra/blas.hpp>
#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace contra;
using namespace contra::runtime;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::vector<std::int64_t> rows{512, 2048, 8192};
  std::int64_t dim = 128, chunk = 1024, big = 65536;
  int reps = 7, warmup = 2, threads = 2;
  double temperature = 0.5, min_time = 0.5;  // repeat beyond reps until min_time seconds were measured
  bool peer = true;
};

// Best time of f() over at least `reps` runs and at least `min_time` seconds (at most 200 runs),
// after `warmup` runs: the quietest run of a noisy machine.
template <class F> double best_time(F&& f, int reps, int warmup, double min_time) {
  for (int i = 0; i < warmup; ++i) f();
  double best = 1e30, spent = 0;
  for (int i = 0; i < reps || (spent < min_time && i < 200); ++i) {
    auto t = Clock::now();
    f();
    const double s = std::chrono::duration<double>(Clock::now() - t).count();
    best = std::min(best, s);
    spent += s;
  }
  return best;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A field of /proc/self/status in KiB: "VmHWM" (peak resident set) or "VmRSS" (current).
long status_kib(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::strtol(line.c_str() + key.size(), nullptr, 10);
  return -1;
}

// Resets VmHWM to the current resident set (Linux >= 4.0); false when refused.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

Tensor random_rows(std::int64_t rows, std::int64_t dim, std::uint64_t seed) {
  Tensor z = Tensor::empty({rows, dim}, DType::f32);
  Rng rng(seed, 0, 0, 0, 0);
  float* p = z.data<float>();
  for (std::int64_t i = 0; i < z.numel(); ++i) p[i] = static_cast<float>(rng.normal());
  return z;
}

// oneDNN's sgemm (contra::sgemm) on S = Z Zᵀ, M×M×D, best time: GFLOP/s.
double sgemm_rate(const Tensor& z, const Options& o) {
  const std::int64_t m = z.dim(0), d = z.dim(1);
  Tensor s = Tensor::empty({m, m}, DType::f32);
  const float* zp = z.data<float>();
  const double best = best_time(
      [&] { sgemm(false, true, m, m, d, 1.0f, zp, d, zp, d, 0.0f, s.data<float>(), m); }, o.reps, o.warmup, o.min_time);
  return 2.0 * m * m * d / best / 1e9;
}

struct Result {
  double seconds = 0, loss = 0;
};

// Rows 0..N-1 are view 0 of samples 0..N-1, rows N..2N-1 view 1 (as ntxent_torch.py's targets).
std::vector<std::int64_t> two_views(std::int64_t m) {
  std::vector<std::int64_t> sample(static_cast<std::size_t>(m));
  for (std::int64_t r = 0; r < m; ++r) sample[r] = r % (m / 2);
  return sample;
}

Result time_contra(const std::shared_ptr<Loss>& loss, const Tensor& z, const Options& o) {
  const std::vector<std::int64_t> sample = two_views(z.dim(0));
  Pairs pairs;
  pairs.all = true;
  LossResult out;
  Result r;
  r.seconds = best_time([&] { loss->compute(Embeddings{z, &sample, nullptr, 2}, pairs, out); }, o.reps, o.warmup,
                        o.min_time);
    std::printf("cpu: %s\n", contra::cpu_capabilities().summary().c_str());
  r.loss = out.value;
  return r;
}

// Runs the PyTorch peer once for every size; rows -> result.
bool time_pytorch(const Options& o, const std::string& input, std::map<std::int64_t, Result>& out,
                  std::string& version) {
  const char* tc = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
  const char* ob = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
  std::string cmd = std::string("LD_PRELOAD=") + tc + " LD_LIBRARY_PATH=" + ob +
                    " /usr/bin/python3 " CONTRA_SOURCE_DIR "/tools/bench/ntxent_torch.py --rows";
  // Appended piece by piece: g++ 12 warns falsely (-Wrestrict) on "literal" + std::string temporaries.
  auto arg = [&cmd](const char* flag, const std::string& value) {
    cmd.append(flag);
    cmd.append(value);
  };
  for (std::int64_t m : o.rows) arg(" ", std::to_string(m));
  arg(" --dim ", std::to_string(o.dim));
  arg(" --temperature ", std::to_string(o.temperature));
  arg(" --reps ", std::to_string(o.reps));
  arg(" --warmup ", std::to_string(o.warmup));
  arg(" --threads ", std::to_string(o.threads));
  arg(" --min-time ", std::to_string(o.min_time));
  arg(" --input ", input);
  cmd.append(" 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return false;
  std::string all;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) all.append(buf, n);
  const int rc = pclose(p);
  // One JSON object a line, one line per size.
  std::vector<json::Json> lines = json::object_lines(all);
  std::erase_if(lines, [](const json::Json& l) { return !json::find(l, "seconds"); });
  if (rc != 0 || lines.empty()) {
    std::fprintf(stderr, "PyTorch peer failed (%s):\n%s\n", cmd.c_str(), all.c_str());
    return false;
  }
  for (const auto& line : lines) {
    version = json::string_at(line, "peer", version);
    out[static_cast<std::int64_t>(json::number_at(line, "rows"))] = {json::number_at(line, "seconds"),
                                                                            json::number_at(line, "loss")};
  }
  return true;
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
    if (a == "--rows") {
      o.rows.clear();
      while (i + 1 < argc && argv[i + 1][0] != '-') o.rows.push_back(std::stoll(argv[++i]));
    } else if (a == "--dim") o.dim = std::stoll(next());
    else if (a == "--chunk") o.chunk = std::stoll(next());
    else if (a == "--big") o.big = std::stoll(next());
    else if (a == "--reps") o.reps = std::stoi(next());
    else if (a == "--warmup") o.warmup = std::stoi(next());
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--temperature") o.temperature = std::stod(next());
    else if (a == "--min-time") o.min_time = std::stod(next());
    else if (a == "--no-peer") o.peer = false;
    else {
      std::fprintf(stderr,
                   "usage: ntxent [--rows 2N...] [--dim D] [--chunk ROWS] [--big 2N|0] [--reps N] [--warmup N]\n"
                   "              [--min-time S] [--threads T] [--temperature T] [--no-peer]\n");
      return 2;
    }
  }
  for (std::int64_t m : o.rows)
    if (m < 4 || m % 2) {
      std::fprintf(stderr, "ntxent: --rows takes even sizes >= 4 (2N rows: two views of N samples)\n");
      return 2;
    }
  omp_set_num_threads(o.threads);
  try {
    PluginRegistry reg;
    reg.scan_directory(default_plugin_dir());
    const PluginRecord* rec = reg.find(PluginKind::loss, "info_nce");
    if (!rec) throw PluginError("plugin 'info_nce' not found in the build's plugins folder");
    auto loss = reg.create<Loss>(*rec, rec->schema.bind({{"temperature", o.temperature}, {"chunk", o.chunk}}));

    std::printf("ntxent: info_nce (NT-Xent, 2 views) forward + backward, D = %lld, T = %g, chunk = %lld, %d threads;\n"
                "best time of >= %d runs and >= %.1f s each\n",
                static_cast<long long>(o.dim), o.temperature, static_cast<long long>(o.chunk), o.threads, o.reps,
                o.min_time);
    // The same rows for both: written for the peer to read.
    std::map<std::int64_t, Tensor> inputs;
    char dir_template[] = "/tmp/contra-ntxent-XXXXXX";
    const char* dir = mkdtemp(dir_template);
    if (!dir) throw std::runtime_error("cannot create a temporary folder for the peer's input");
    for (std::int64_t m : o.rows) {
      inputs[m] = random_rows(m, o.dim, static_cast<std::uint64_t>(m));
      std::ofstream f(std::string(dir) + "/z_" + std::to_string(m) + ".f32", std::ios::binary);
      f.write(static_cast<const char*>(inputs[m].raw()), static_cast<std::streamsize>(inputs[m].nbytes()));
    }
    std::map<std::int64_t, Result> torch;
    std::string version = "pytorch";
    const bool have_peer = o.peer && time_pytorch(o, dir, torch, version);
    for (std::int64_t m : o.rows) std::remove((std::string(dir) + "/z_" + std::to_string(m) + ".f32").c_str());
    rmdir(dir);
    if (have_peer) std::printf("peer: %s (tcmalloc, OpenBLAS openmp, %d threads)\n", version.c_str(), o.threads);
    std::printf("GFLOP/s count 3 products of 2·M²·D flops; sgemm = oneDNN's rate for S = ZZᵀ (M×M×D) measured here\n\n");
    std::printf("%6s %11s %11s %9s %9s %8s %9s %9s %9s %10s\n", "2N", "contra (s)", "torch (s)", "contra", "torch",
                "ratio", "sgemm", "of sgemm", "loss", "vs torch");
    std::printf("%6s %11s %11s %9s %9s %8s %9s %9s %9s %10s\n", "", "", "", "GFLOP/s", "GFLOP/s", "", "GFLOP/s", "", "",
                "(rel.)");
    for (std::int64_t m : o.rows) {
      const double flops = 3.0 * 2.0 * static_cast<double>(m) * m * o.dim;
      const double rate = sgemm_rate(inputs[m], o);
      const Result c = time_contra(loss, inputs[m], o);
      const double cg = flops / c.seconds / 1e9;
      if (have_peer && torch.count(m)) {
        const Result& t = torch[m];
        const double tg = flops / t.seconds / 1e9;
        std::printf("%6lld %11.5f %11.5f %9.0f %9.0f %7.2fx %9.0f %8.0f%% %9.5f %10.1e\n", static_cast<long long>(m),
                    c.seconds, t.seconds, cg, tg, t.seconds / c.seconds, rate, 100.0 * cg / rate, c.loss,
                    (c.loss - t.loss) / t.loss);
      } else {
        std::printf("%6lld %11.5f %11s %9.0f %9s %8s %9.0f %8.0f%% %9.5f %10s\n", static_cast<long long>(m), c.seconds,
                    "-", cg, "-", "-", rate, 100.0 * cg / rate, c.loss, "-");
      }
    }
    std::printf("\ntargets: ratio >= 2x, >= 70%% of the sgemm rate\n");

    if (o.big > 0) {
      // A fresh loss object: its buffers are allocated inside the measured window.
      auto big_loss = reg.create<Loss>(*rec, rec->schema.bind({{"temperature", o.temperature}, {"chunk", o.chunk}}));
      const std::int64_t m = o.big;
      Tensor z = random_rows(m, o.dim, 99);
      const std::vector<std::int64_t> sample = two_views(m);
      Pairs pairs;
      pairs.all = true;
      LossResult out;
      out.grad = Tensor::zeros(z.shape(), DType::f32);  // the caller's gradient buffer, outside the window
      const bool reset = reset_peak_rss();
      const long before = status_kib("VmRSS");
      auto t = Clock::now();
      big_loss->compute(Embeddings{z, &sample, nullptr, 2}, pairs, out);
      const double s = seconds_since(t);
      const long after = status_kib("VmHWM");
      const double flops = 3.0 * 2.0 * static_cast<double>(m) * m * o.dim;
      const double chunk_mib = 4.0 * std::min(o.chunk, m) * m / (1 << 20);
      const double row_mib = 4.0 * m * o.dim / (1 << 20);
      std::printf("\n2N = %lld (contra only, one call): %.2f s, %.0f GFLOP/s, loss %.4f\n", static_cast<long long>(m), s,
                  flops / s / 1e9, out.value);
      std::printf("resident memory: %.1f MiB before the call (VmRSS), peak %.1f MiB during it (VmHWM%s): +%.1f MiB\n",
                  before / 1024.0, after / 1024.0, reset ? ", reset before" : ", not resettable: an upper bound",
                  (after - before) / 1024.0);
      std::printf("bound: chunk x 2N floats = %.0f MiB, plus 2N x D floats (%.0f MiB) for each of ẑ, dL/dẑ and the other\n"
                  "threads' dL/dẑ = %.0f MiB; an M x M matrix of floats would be %.1f GiB\n",
                  chunk_mib, row_mib, (1 + o.threads) * row_mib, 4.0 * m * m / (1 << 30));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ntxent: %s\n", e.what());
    return 1;
  }
}
