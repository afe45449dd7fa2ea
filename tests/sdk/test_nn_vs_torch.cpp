// Every layer of contra::nn against PyTorch autograd in float64, over a sweep
// of shapes: 1×1 and 3×3 convolutions at strides 1 and 2, channel counts below,
// at and above the SIMD widths (8 f32 lanes on AVX2, 16 on AVX-512), odd
// spatial sizes, several batch sizes; linear layers, batch norm (NHWC and
// [N, C], train and eval), max and average pooling, global pooling, ReLU.
// Each case compares y, dL/dx and every parameter's gradient for
// L = Σ y ⊙ w. oneDNN picks kernels by ISA and shape, so this sweep is what
// finds a wrong kernel (oneDNN issue #6035 was found by accident); CI runs
// it at the CPU's own ISA and capped at AVX2 (DNNL_MAX_CPU_ISA).
#include "torch_oracle.hpp"

#include <contra/nn/activation.hpp>
#include <contra/nn/batch_norm.hpp>
#include <contra/nn/conv2d.hpp>
#include <contra/nn/linear.hpp>
#include <contra/nn/pooling.hpp>
#include <contra/testing.hpp>

#include <catch2/catch.hpp>
#include <omp.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace contra;

namespace {

struct Case {
  std::string id;                      // c0, c1, ...
  std::string spec;                    // what the oracle rebuilds, one line
  std::unique_ptr<nn::Layer> layer;
  Shape input;
  Mode mode = Mode::train;
};

class Sweep {
 public:
  Sweep() : dir_("nn-torch") {}

  void add(std::string spec, std::unique_ptr<nn::Layer> layer, Shape input, Mode mode = Mode::train) {
    Case c;
    c.id = "c" + std::to_string(cases_.size());
    c.spec = std::move(spec);
    c.layer = std::move(layer);
    c.input = input;
    c.mode = mode;
    cases_.push_back(std::move(c));
  }

  // Runs every case here, then the oracle once, and checks each case's
  // largest relative differences.
  void check(double forward_tol, double grad_tol) {
    std::string manifest;
    std::uint64_t key = 1;
    for (Case& c : cases_) {
      Tensor x = testing::random_tensor(c.input, key++);
      std::vector<Parameter*> params;
      c.layer->parameters(params);
      for (Parameter* p : params) p->grad.zero();
      // A second forward on another input first: the cached primitives of a
      // layer must not keep anything of an earlier call.
      if (c.mode == Mode::train) c.layer->forward(testing::random_tensor(c.input, key++), c.mode);
      Tensor y = c.layer->forward(x, c.mode).clone();
      Tensor w = testing::random_tensor(y.shape(), key++);
      Tensor dx = c.layer->backward(w, true).clone();
      test::dump_tensor(dir_, c.id + "_x", x);
      test::dump_tensor(dir_, c.id + "_y", y);
      test::dump_tensor(dir_, c.id + "_w", w);
      test::dump_tensor(dir_, c.id + "_dx", dx);
      std::string names;
      for (Parameter* p : params) {
        test::dump_tensor(dir_, c.id + "_p_" + p->name, p->value);
        test::dump_tensor(dir_, c.id + "_g_" + p->name, p->grad);
        std::string dims;
        for (int d = 0; d < p->value.rank(); ++d) dims += (d ? "x" : "") + std::to_string(p->value.dim(d));
        names += " " + p->name + "=" + dims;
      }
      manifest += c.id + " " + (c.mode == Mode::train ? "train" : "eval") + " " + test::shape_json(c.input).dump() + " " +
                  test::shape_json(y.shape()).dump() + " " + c.spec + " |" + names + "\n";
      // Eval-mode batch norm reads running statistics the oracle needs.
      std::vector<std::pair<std::string, Tensor*>> buffers;
      c.layer->buffers(buffers);
      for (auto& [name, t] : buffers) test::dump_tensor(dir_, c.id + "_b_" + name, *t);
    }
    test::write_file(dir_.file("cases.txt"), manifest);
    const std::string out = test::run_oracle("tests/sdk/nn_vs_torch.py", dir_.path().string());
    std::istringstream lines(out);
    std::string line;
    std::size_t seen = 0;
    while (std::getline(lines, line)) {
      std::istringstream f(line);
      std::string id;
      double fwd = 0, dxe = 0, pe = 0;
      if (!(f >> id >> fwd >> dxe >> pe) || id.empty() || id[0] != 'c') continue;
      const Case& c = cases_.at(std::stoul(id.substr(1)));
      INFO(c.id << ": " << c.spec << " on " << c.input.str() << " (" << (c.mode == Mode::train ? "train" : "eval")
                << "): relative differences y " << fwd << ", dx " << dxe << ", parameters " << pe);
      CHECK(fwd < forward_tol);
      CHECK(dxe < grad_tol);
      CHECK(pe < grad_tol);
      ++seen;
    }
    INFO(out);
    CHECK(seen == cases_.size());
  }

  std::size_t size() const { return cases_.size(); }

 private:
  test::TempDir dir_;
  std::vector<Case> cases_;
};

// The kernels that went wrong need two or more threads; run the sweep with
// four whatever the machine has (oversubscribing changes timing, not results).
struct Threads {
  int saved = omp_get_max_threads();
  explicit Threads(int n) { omp_set_num_threads(n); }
  ~Threads() { omp_set_num_threads(saved); }
};

}  // namespace

TEST_CASE("nn vs torch: conv2d over kernels, strides, channel counts, sizes and batches", "[sdk][nn][conv2d][torch]") {
  if (!test::torch_oracle_ready()) return;
  Threads threads(4);
  Sweep sweep;
  Rng init(3, 0, 0, 0, 0);
  const int channels[] = {1, 2, 3, 4, 7, 8, 9, 12, 15, 16, 17, 24, 32, 33};
  const int outs[] = {4, 13, 32};
  const int sizes[] = {5, 7, 8, 9, 12, 14};
  const int batches[] = {1, 2, 5, 8, 16};
  int i = 0;
  for (int kernel : {1, 3})
    for (int stride : {1, 2})
      for (int in : channels)
        for (int out : outs) {
          const int pad = kernel == 3 ? (i % 3 == 2 ? 0 : 1) : 0;
          const int size = sizes[i % 6], n = batches[i % 5];
          const bool bias = i % 4 == 1;
          ++i;
          char spec[128];
          std::snprintf(spec, sizeof spec, "conv2d %d %d %d %d %d %d", in, out, kernel, stride, pad, bias ? 1 : 0);
          sweep.add(spec, std::make_unique<nn::Conv2d>("conv", in, out, kernel, stride, pad, bias, init),
                    Shape{n, size, size, in});
        }
  // The shortcut convolutions of narrow resnet18s and seed_resnet-sized layers
  // at a realistic batch.
  for (int in : {2, 4, 8, 16})
    sweep.add("conv2d " + std::to_string(in) + " " + std::to_string(2 * in) + " 1 2 0 0",
              std::make_unique<nn::Conv2d>("conv", in, 2 * in, 1, 2, 0, false, init), Shape{32, 16, 16, in});
  sweep.add("conv2d 1 16 3 1 1 0", std::make_unique<nn::Conv2d>("conv", 1, 16, 3, 1, 1, false, init),
            Shape{32, 28, 28, 1});
  sweep.add("conv2d 3 8 1 2 0 0", std::make_unique<nn::Conv2d>("conv", 3, 8, 1, 2, 0, false, init),
            Shape{3, 9, 11, 3});  // H != W
  sweep.check(1e-5, 1e-4);
}

TEST_CASE("nn vs torch: conv2d by Winograd F(2x2, 3x3) and by oneDNN's direct kernels",
          "[sdk][nn][conv2d][winograd][torch]") {
  if (!test::torch_oracle_ready()) return;
  Threads threads(4);
  Sweep sweep;
  Rng init(5, 0, 0, 0, 0);
  // Every channel count, padding 0-2, odd and even sizes (a last tile cut in
  // half), bias or not, batches spanning several of Winograd's image chunks.
  const int channels[] = {1, 3, 8, 16, 17, 40};
  const int sizes[] = {3, 4, 5, 7, 8, 13};
  int i = 0;
  using nn::ConvAlgorithm;
  for (ConvAlgorithm algorithm : {ConvAlgorithm::winograd, ConvAlgorithm::direct})
    for (int in : channels)
      for (int out : {2, 16, 33}) {
        const int pad = i % 3, size = sizes[i % 6], n = std::vector<int>{1, 3, 40}[i % 3];
        const bool bias = i % 2 == 0;
        ++i;
        auto conv = std::make_unique<nn::Conv2d>("conv", in, out, 3, 1, pad, bias, init);
        conv->set_algorithm(algorithm);
        REQUIRE(conv->uses_winograd() == (algorithm == ConvAlgorithm::winograd));
        char spec[128];
        std::snprintf(spec, sizeof spec, "conv2d %d %d 3 1 %d %d", in, out, pad, bias ? 1 : 0);
        sweep.add(spec, std::move(conv), Shape{n, size, size + 1, in});
      }
  // A 14×14 map at a batch with several chunks (1024 tiles each: 20 images).
  auto big = std::make_unique<nn::Conv2d>("conv", 32, 32, 3, 1, 1, false, init);
  REQUIRE(big->uses_winograd());
  sweep.add("conv2d 32 32 3 1 1 0", std::move(big), Shape{45, 14, 14, 32});
  sweep.check(1e-5, 1e-4);
}

TEST_CASE("nn vs torch: linear over feature counts and batches", "[sdk][nn][linear][torch]") {
  if (!test::torch_oracle_ready()) return;
  Threads threads(4);
  Sweep sweep;
  Rng init(4, 0, 0, 0, 0);
  int i = 0;
  for (int in : {1, 3, 8, 9, 16, 17, 64, 129})
    for (int out : {1, 5, 16, 33}) {
      const int n = std::vector<int>{1, 3, 8, 32, 7}[i % 5];
      const bool bias = i % 3 != 0;
      ++i;
      sweep.add("linear " + std::to_string(in) + " " + std::to_string(out) + " " + std::to_string(bias ? 1 : 0),
                std::make_unique<nn::Linear>("fc", in, out, bias, init), Shape{n, in});
    }
  sweep.check(1e-5, 1e-4);
}

TEST_CASE("nn vs torch: batch norm (and fused with ReLU), NHWC and [N, C], train and eval", "[sdk][nn][batch_norm][torch]") {
  if (!test::torch_oracle_ready()) return;
  Threads threads(4);
  Sweep sweep;
  int i = 0;
  for (int c : {1, 3, 8, 16, 17, 33}) {
    const int n = std::vector<int>{2, 5, 8, 16}[i % 4], size = std::vector<int>{1, 3, 7, 8}[i % 4];
    ++i;
    for (Mode mode : {Mode::train, Mode::eval}) {
      auto bn = std::make_unique<nn::BatchNorm>("bn", c);
      // Non-trivial affine parameters and running statistics.
      Rng r(c, 1, 0, 0, 0);
      for (Parameter* p : {&bn->weight(), &bn->bias()})
        for (std::int64_t k = 0; k < c; ++k) p->value.data<float>()[k] = static_cast<float>(r.uniform(-1.5, 1.5));
      for (std::int64_t k = 0; k < c; ++k) {
        bn->running_mean().data<float>()[k] = static_cast<float>(r.uniform(-0.5, 0.5));
        bn->running_var().data<float>()[k] = static_cast<float>(r.uniform(0.5, 2.0));
      }
      auto bn1 = std::make_unique<nn::BatchNorm>("bn", c);
      for (Parameter* p : {&bn1->weight(), &bn1->bias()})
        for (std::int64_t k = 0; k < c; ++k) p->value.data<float>()[k] = static_cast<float>(r.uniform(-1.5, 1.5));
      if (mode == Mode::train) {
        auto fused = std::make_unique<nn::BatchNormReLU>("bn", c);
        for (int k = 0; k < 2; ++k) {
          Parameter& to = k == 0 ? fused->batch_norm().weight() : fused->batch_norm().bias();
          const Parameter& from = k == 0 ? bn->weight() : bn->bias();
          for (std::int64_t j = 0; j < c; ++j) to.value.data<float>()[j] = from.value.data<float>()[j];
        }
        sweep.add("batch_norm_relu " + std::to_string(c), std::move(fused), Shape{n, size + 1, size, c}, mode);
      }
      sweep.add("batch_norm " + std::to_string(c), std::move(bn), Shape{n, size, size + 1, c}, mode);
      if (mode == Mode::train) sweep.add("batch_norm " + std::to_string(c), std::move(bn1), Shape{n + 1, c}, mode);
    }
  }
  sweep.check(1e-5, 1e-4);
}

TEST_CASE("nn vs torch: max and average pooling, global pooling, ReLU", "[sdk][nn][pooling][torch]") {
  if (!test::torch_oracle_ready()) return;
  Threads threads(4);
  Sweep sweep;
  int i = 0;
  for (int kernel : {2, 3})
    for (int stride : {1, 2})
      for (int pad : {0, 1}) {
        if (2 * pad > kernel) continue;
        const int c = std::vector<int>{3, 8, 17, 16}[i % 4], size = std::vector<int>{7, 8, 9}[i % 3];
        const int n = std::vector<int>{1, 4, 9}[i % 3];
        ++i;
        const std::string k = " " + std::to_string(kernel) + " " + std::to_string(stride) + " " + std::to_string(pad);
        sweep.add("max_pool" + k, std::make_unique<nn::MaxPool2d>(kernel, stride, pad), Shape{n, size, size, c});
        sweep.add("avg_pool" + k + " 1", std::make_unique<nn::AvgPool2d>(kernel, stride, pad, true),
                  Shape{n, size, size, c});
        sweep.add("avg_pool" + k + " 0", std::make_unique<nn::AvgPool2d>(kernel, stride, pad, false),
                  Shape{n, size, size, c});
      }
  for (int c : {1, 8, 17}) {
    sweep.add("global_avg_pool", std::make_unique<nn::GlobalAvgPool>(), Shape{3, 5, 7, c});
    sweep.add("relu", std::make_unique<nn::ReLU>(), Shape{3, 5, 7, c});
  }
  sweep.add("relu", std::make_unique<nn::ReLU>(), Shape{9, 33});
  sweep.check(1e-5, 1e-4);
}
