// text_encoder: one training step of the text encoder: contra's
// text_transformer (CLIP's text tower) on i32 token rows [B, L], a
// mean-square loss on its output, backward, Adam; against the same step in
// PyTorch (tools/bench/text_encoder_torch.py: nn.TransformerEncoder of the
// same size, run at its best), in one run. f32, and bf16 where the CPU has it
// (contra precision bf16 against torch.autocast bf16). Prints each side's
// median step, its forward / loss / backward / optimizer split, and the ratio
// torch / contra (> 1: contra is faster) per round and as the median of the
// rounds' ratios.
//
//   build/bench/text_encoder                                 # batch 256, L 32, width 256, 4 layers, 4 heads
//   build/bench/text_encoder --batch 32 --steps 2 --warmup 1 --rounds 1
//   build/bench/text_encoder --no-peer                       # contra alone

#include "text_transformer.hpp"
#include "adam.hpp"
#include "train/json_io.hpp"

#include <contra/cpu.hpp>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace contra;
using namespace contra::runtime;
using Clock = std::chrono::steady_clock;

namespace {

// The bytes tokenizer's vocabulary (plugins/tokenizer/bytes): 256 bytes + 4 specials.
constexpr std::int64_t vocabulary_size = 260;
constexpr std::int32_t pad = 0, bos = 1, eos = 2, first_text_id = 4;
constexpr std::int64_t mlp_ratio = 4;

struct Options {
  std::int64_t batch = 256, length = 32, width = 256, layers = 4, heads = 4, output = 256;
  int steps = 5, warmup = 2, threads = 2;
  int rounds = 3;  // contra, then the peer, this many times: the ratio is the median of the rounds' ratios
  bool peer = true;
};

// The token rows, the same on both sides: a 64-bit LCG (Knuth's MMIX
// constants) that text_encoder_torch.py repeats. Row r: bos, n tokens
// (n uniform in 1..L-2), eos, pad to L.
struct Lcg {
  std::uint64_t state;
  std::uint64_t next() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  }
};

Tensor token_rows(const Options& o, std::int64_t& text_tokens) {
  Tensor x = Tensor::empty({o.batch, o.length}, DType::i32);
  std::int32_t* ids = x.data<std::int32_t>();
  Lcg rng{12345};
  text_tokens = 0;
  for (std::int64_t r = 0; r < o.batch; ++r) {
    std::int32_t* row = ids + r * o.length;
    const std::int64_t n = 1 + static_cast<std::int64_t>(rng.next() % static_cast<std::uint64_t>(o.length - 2));
    row[0] = bos;
    for (std::int64_t t = 1; t <= n; ++t) row[t] = first_text_id + static_cast<std::int32_t>(rng.next() % 256);
    row[n + 1] = eos;
    for (std::int64_t t = n + 2; t < o.length; ++t) row[t] = pad;
    text_tokens += n;
  }
  return x;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct Timing {
  std::string label;
  double step_s = 0, forward = 0, loss = 0, backward = 0, optimizer = 0;  // medians over the timed steps
  double last_loss = 0;
  std::int64_t parameters = 0, text_tokens = 0;
};

Timing time_contra(const Options& o, Precision precision) {
  plugins::TextTransformer encoder(plugins::TextTransformer::schema().bind({{"width", o.width},
                                                                            {"layers", o.layers},
                                                                            {"heads", o.heads},
                                                                            {"mlp_ratio", mlp_ratio},
                                                                            {"output", o.output},
                                                                            {"pooling", std::string("eos")},
                                                                            {"causal", true}}));
  plugins::Adam opt(plugins::Adam::schema().bind({{"lr", 1e-3}}));
  EncoderContext ctx;
  ctx.input = Shape{o.length};
  ctx.seed = 0;
  ctx.precision = precision;
  ctx.vocabulary.size = vocabulary_size;
  ctx.vocabulary.pad = pad;
  ctx.vocabulary.bos = bos;
  ctx.vocabulary.eos = eos;
  ctx.vocabulary.unk = 3;
  encoder.build(ctx);
  std::vector<Parameter*> params = encoder.parameters();
  opt.configure(params);

  Timing t;
  t.label = std::string("contra ") + (precision == Precision::bf16 ? "bf16" : "f32");
  for (auto* p : params) t.parameters += p->value.numel();
  const Tensor x = token_rows(o, t.text_tokens);
  Tensor dy = Tensor::empty({o.batch, o.output}, DType::f32);
  std::vector<double> total, fwd, lss, bwd, upd;
  auto d = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    auto t0 = Clock::now();
    const Tensor& y = encoder.forward(x, Mode::train);
    auto t1 = Clock::now();
    // loss = sum(y²) / (2B), dL/dy = y / B: the same on the peer's side.
    const float* yv = y.data<float>();
    float* g = dy.data<float>();
    const std::int64_t n = y.numel();
    const float inv_b = 1.0f / static_cast<float>(o.batch);
    double sum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      sum += static_cast<double>(yv[i]) * yv[i];
      g[i] = yv[i] * inv_b;
    }
    t.last_loss = sum / (2.0 * static_cast<double>(o.batch));
    auto t2 = Clock::now();
    for (auto* p : params) p->grad.zero();
    encoder.backward(dy, false);
    auto t3 = Clock::now();
    opt.step(OptimizerStep{step, 1.0});
    auto t4 = Clock::now();
    if (step >= o.warmup) {
      fwd.push_back(d(t0, t1));
      lss.push_back(d(t1, t2));
      bwd.push_back(d(t2, t3));
      upd.push_back(d(t3, t4));
      total.push_back(d(t0, t4));
    }
  }
  // The median step: one slow step (a neighbour's burst) does not move it.
  t.step_s = median(total);
  t.forward = median(fwd);
  t.loss = median(lss);
  t.backward = median(bwd);
  t.optimizer = median(upd);
  return t;
}

bool time_pytorch(const Options& o, bool bf16, Timing& t) {
  const char* tc = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
  const char* ob = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
  auto s = [](std::int64_t v) { return std::to_string(v); };
  std::string cmd = std::string("LD_PRELOAD=") + tc + " LD_LIBRARY_PATH=" + ob +
                    " /usr/bin/python3 " CONTRA_SOURCE_DIR "/tools/bench/text_encoder_torch.py --batch " +
                    s(o.batch) + " --length " + s(o.length) + " --width " + s(o.width) + " --layers " + s(o.layers) +
                    " --heads " + s(o.heads) + " --mlp-ratio " + s(mlp_ratio) + " --output " + s(o.output) +
                    " --steps " + s(o.steps) + " --warmup " + s(o.warmup) + " --threads " + s(o.threads) +
                    " --precision " + (bf16 ? "bf16" : "f32") + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return false;
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  const json::Json figures = json::last_object_line(out);
  if (rc != 0 || !json::find(figures, "step_s")) {
    std::fprintf(stderr, "PyTorch peer failed (%s):\n%s\n", cmd.c_str(), out.c_str());
    return false;
  }
  t.label = std::string("pytorch ") + (bf16 ? "bf16" : "f32");
  t.step_s = json::number_at(figures, "step_s");
  const json::Json split = json::find(figures, "split_s") ? *json::find(figures, "split_s") : json::Json::object();
  t.forward = json::number_at(split, "forward");
  t.loss = json::number_at(split, "loss");
  t.backward = json::number_at(split, "backward");
  t.optimizer = json::number_at(split, "optimizer");
  t.last_loss = json::number_at(figures, "loss");
  t.parameters = static_cast<std::int64_t>(json::number_at(figures, "parameters"));
  t.text_tokens = static_cast<std::int64_t>(json::number_at(figures, "text_tokens"));
  return true;
}

void print_header() {
  std::printf("%-14s %10s %9s %9s %9s %9s %12s\n", "", "step (ms)", "fwd (ms)", "loss (ms)", "bwd (ms)", "opt (ms)",
              "tokens/s");
}

void print_row(const Timing& t, const Options& o) {
  std::printf("%-14s %10.1f %9.1f %9.2f %9.1f %9.1f %12.0f\n", t.label.c_str(), 1e3 * t.step_s, 1e3 * t.forward,
              1e3 * t.loss, 1e3 * t.backward, 1e3 * t.optimizer,
              static_cast<double>(o.batch * o.length) / t.step_s);
}

// The peer must have trained on the same shapes and rows.
bool check_peer(const Timing& contra_side, const Timing& peer) {
  if (peer.parameters == contra_side.parameters && peer.text_tokens == contra_side.text_tokens) return true;
  std::printf("  warning: the peer has %lld parameters and %lld text tokens, contra %lld and %lld\n",
              static_cast<long long>(peer.parameters), static_cast<long long>(peer.text_tokens),
              static_cast<long long>(contra_side.parameters), static_cast<long long>(contra_side.text_tokens));
  return false;
}

std::string list(const std::vector<double>& v) {
  std::string s;
  char buf[32];
  for (double x : v) {
    std::snprintf(buf, sizeof buf, "%.2f", x);
    s += (s.empty() ? "" : ", ") + std::string(buf);
  }
  return s;
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
    else if (a == "--length") o.length = std::stoll(next());
    else if (a == "--width") o.width = std::stoll(next());
    else if (a == "--layers") o.layers = std::stoll(next());
    else if (a == "--heads") o.heads = std::stoll(next());
    else if (a == "--output") o.output = std::stoll(next());
    else if (a == "--steps") o.steps = std::max(1, std::stoi(next()));
    else if (a == "--warmup") o.warmup = std::max(0, std::stoi(next()));
    else if (a == "--threads") o.threads = std::max(1, std::stoi(next()));
    else if (a == "--rounds") o.rounds = std::max(1, std::stoi(next()));
    else if (a == "--no-peer") o.peer = false;
    else {
      std::fprintf(stderr,
                   "usage: text_encoder [--batch B] [--length L] [--width W] [--layers N] [--heads H] [--output D]\n"
                   "                    [--steps N] [--warmup N] [--threads T] [--rounds R] [--no-peer]\n");
      return 2;
    }
  }
  if (o.length < 3 || o.batch < 1) {
    std::fprintf(stderr, "text_encoder: --length must be at least 3 (bos, a token, eos) and --batch at least 1\n");
    return 2;
  }
  omp_set_num_threads(o.threads);
  try {
    const CpuCapabilities& cpu = cpu_capabilities();
    std::int64_t text_tokens = 0;
    token_rows(o, text_tokens);
    std::printf("text_encoder: text_transformer (width %lld, %lld layers, %lld heads, mlp_ratio %lld, output %lld, "
                "causal, eos pooling) on token rows [%lld, %lld] (vocabulary %lld, %.1f text tokens a row on "
                "average), loss sum(y^2)/2B, Adam; %d threads\n",
                static_cast<long long>(o.width), static_cast<long long>(o.layers), static_cast<long long>(o.heads),
                static_cast<long long>(mlp_ratio), static_cast<long long>(o.output), static_cast<long long>(o.batch),
                static_cast<long long>(o.length), static_cast<long long>(vocabulary_size),
                static_cast<double>(text_tokens) / static_cast<double>(o.batch), o.threads);
    std::printf("cpu: %s\n", cpu.summary().c_str());
    std::printf("each figure is the median of %d steps after %d warm-up steps; tokens/s counts B x L positions\n\n",
                o.steps, o.warmup);
    print_header();
    std::vector<double> ratio32, ratio16;
    std::vector<double> c_step, c_fwd, c_loss, c_bwd, c_opt;
    for (int r = 0; r < o.rounds; ++r) {
      if (o.rounds > 1) std::printf("round %d of %d\n", r + 1, o.rounds);
      Timing f32 = time_contra(o, Precision::f32);
      print_row(f32, o);
      c_step.push_back(f32.step_s);
      c_fwd.push_back(f32.forward);
      c_loss.push_back(f32.loss);
      c_bwd.push_back(f32.backward);
      c_opt.push_back(f32.optimizer);
      Timing torch32;
      if (o.peer && time_pytorch(o, false, torch32)) {
        print_row(torch32, o);
        const bool same = check_peer(f32, torch32);
        ratio32.push_back(torch32.step_s / f32.step_s);
        std::printf("  ratio torch/contra f32: %.2fx%s (loss: contra %.4g, torch %.4g; different initialisations)\n",
                    ratio32.back(),
                    same ? (", " + std::to_string(f32.parameters) + " parameters and the same rows on both sides").c_str()
                         : "",
                    f32.last_loss, torch32.last_loss);
      }
      if (cpu.bf16) {
        Timing b16 = time_contra(o, Precision::bf16);
        print_row(b16, o);
        Timing torch16;
        if (o.peer && time_pytorch(o, true, torch16)) {
          print_row(torch16, o);
          ratio16.push_back(torch16.step_s / b16.step_s);
          std::printf("  ratio torch/contra bf16: %.2fx\n", ratio16.back());
        }
      } else if (r == 0) {
        std::printf("%-14s skipped: %s\n", "bf16", bf16_unavailable_reason().c_str());
      }
    }
    // Where contra's f32 step goes (medians over the rounds), to guide optimisation.
    const double step = median(c_step);
    const double f = median(c_fwd), l = median(c_loss), b = median(c_bwd), u = median(c_opt);
    std::printf("\ncontra f32 step %.1f ms: forward %.1f ms (%.0f%%), loss %.2f ms (%.1f%%), backward %.1f ms "
                "(%.0f%%), optimizer %.1f ms (%.0f%%)\n",
                1e3 * step, 1e3 * f, 100 * f / step, 1e3 * l, 100 * l / step, 1e3 * b, 100 * b / step, 1e3 * u,
                100 * u / step);
    if (!ratio32.empty()) {
      std::printf("ratio torch/contra f32: %.2fx, median of %zu rounds (%s) (> 1: contra is faster; target >= 1.0x); "
                  "%s\n",
                  median(ratio32), ratio32.size(), list(ratio32).c_str(), cpu.summary().c_str());
      if (!ratio16.empty())
        std::printf("ratio torch/contra bf16: %.2fx, median of %zu rounds (%s)\n", median(ratio16), ratio16.size(),
                    list(ratio16).c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "text_encoder: %s\n", e.what());
    return 1;
  }
}
