// The GPU layers (contra/cuda/nn.hpp) against their CPU twins (contra/nn/,
// the oracle), built from the same seed. The [gpu] cases skip where no GPU is
// usable; the others run everywhere.
//
// Tolerances, relative to the CPU result's largest entry: strict_f32 1e-4
// for convolutions, products and batch norm (sums of up to a few hundred
// terms in another order, and cuDNN's algorithms: implicit GEMM, Winograd,
// FFT); exact for ReLU, max pooling, the residual add and the layout
// changes; 1e-6 for average pooling (a sum of at most 9 terms, then a
// scale). TF32 (10-bit mantissa inputs) 1e-2; bf16 products (8-bit) 2e-2.
#include <contra/batch_stats.hpp>
#include <contra/cpu.hpp>
#include <contra/cuda.hpp>
#include <contra/cuda/nn.hpp>
#include <contra/nn/activation.hpp>
#include <contra/nn/batch_norm.hpp>
#include <contra/nn/conv2d.hpp>
#include <contra/nn/linear.hpp>
#include <contra/nn/pooling.hpp>
#include <contra/nn/residual.hpp>
#include <contra/nn/sequential.hpp>

#include "layer_twin.hpp"
#include "gpu_test.hpp"

#include <algorithm>
#include <memory>
#include <tuple>

using namespace contra;
using cuda_twin::MathModeGuard;
using layer_twin::compare_layer;

namespace gnn = contra::cuda::nn;

TEST_CASE("cuda nn: wrong arguments get the CPU layers' messages, with or without a GPU", "[cuda][nn]") {
  Rng init(1, 0, 0, 0, 0);
  CHECK_THROWS_WITH(gnn::Conv2d("c", 3, 0, 3, 1, 1, false, init),
                    "conv2d 'c': in_channels, out_channels, kernel and stride must be positive and padding "
                    "non-negative (got 3, 0, 3, 1, 1)");
  CHECK_THROWS_WITH(gnn::Linear("fc", 0, 4, true, init),
                    "linear 'fc': in_features and out_features must be positive (got 0, 4)");
  CHECK_THROWS_WITH(gnn::BatchNorm("bn", 0), "BatchNorm 'bn': channels must be >= 1, got 0");
  CHECK_THROWS_WITH(gnn::BatchNorm("bn", 4, 1.5), "BatchNorm 'bn': momentum must be in [0, 1], got 1.5");
  CHECK_THROWS_WITH(gnn::BatchNorm("bn", 4, 0.1, 0.0), "BatchNorm 'bn': eps must be > 0, got 0");
  CHECK_THROWS_WITH(gnn::MaxPool2d(3, 2, 2), "MaxPool2d: padding must be in [0, kernel/2] = [0, 1], got 2");
  CHECK_THROWS_WITH(gnn::AvgPool2d(0, 1), "AvgPool2d: kernel must be >= 1, got 0");
  // The same arguments are refused the same way by the CPU layers.
  CHECK_THROWS_WITH(nn::MaxPool2d(3, 2, 2), "MaxPool2d: padding must be in [0, kernel/2] = [0, 1], got 2");
  CHECK_THROWS_WITH(nn::BatchNorm("bn", 4, 1.5), "BatchNorm 'bn': momentum must be in [0, 1], got 1.5");
}

TEST_CASE("cuda nn: without a usable GPU, building a layer says why", "[cuda][nn]") {
  if (cuda::available()) {
    SUCCEED("a GPU is usable here");
    return;
  }
  Rng init(1, 0, 0, 0, 0);
  const std::string reason = "no usable GPU: " + cuda::unavailable_reason();
  CHECK_THROWS_WITH(gnn::Conv2d("c", 3, 8, 3, 1, 1, false, init), reason + " (needed by conv2d (cuda))");
  CHECK_THROWS_WITH(gnn::Linear("fc", 3, 8, true, init), reason + " (needed by linear (cuda))");
  CHECK_THROWS_WITH(gnn::BatchNorm("bn", 8), reason + " (needed by BatchNorm (cuda))");
  CHECK_THROWS_WITH(gnn::ReLU(), reason + " (needed by ReLU (cuda))");
  CHECK_THROWS_WITH(gnn::MaxPool2d(3, 2, 1), reason + " (needed by MaxPool2d (cuda))");
  CHECK_THROWS_WITH(gnn::GlobalAvgPool(), reason + " (needed by GlobalAvgPool (cuda))");
}

TEST_CASE("cuda nn: Conv2d matches the CPU layer (strict f32 and TF32)", "[cuda][nn][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  // in, out, kernel, stride, padding, bias, input [N, H, W, C]
  for (auto [in, out, k, s, p, bias, shape] :
       {std::tuple<int, int, int, int, int, bool, Shape>{3, 8, 3, 1, 1, false, Shape{4, 9, 7, 3}},
        {3, 8, 3, 2, 1, true, Shape{4, 9, 7, 3}},
        {16, 32, 3, 1, 1, false, Shape{2, 8, 8, 16}},
        {8, 16, 1, 2, 0, false, Shape{3, 6, 6, 8}},
        {4, 6, 5, 1, 2, true, Shape{2, 7, 5, 4}}}) {
    for (auto mode : {cuda::MathMode::strict_f32, cuda::MathMode::tf32}) {
      cuda::set_math_mode(mode);
      INFO("conv " << in << "->" << out << " k" << k << " s" << s << " p" << p << (bias ? " bias" : "") << " on "
                   << shape.str() << ", " << cuda::math_mode_name(mode));
      Rng a(5, 0, 0, 0, 0), b(5, 0, 0, 0, 0);
      nn::Conv2d cpu("conv", in, out, k, s, p, bias, a);
      gnn::Conv2d gpu("conv", in, out, k, s, p, bias, b);
      CHECK(gpu.output_shape(shape) == cpu.output_shape(shape));
      compare_layer(cpu, gpu, shape, mode == cuda::MathMode::strict_f32 ? 1e-4 : 1e-2);
    }
  }
}

TEST_CASE("cuda nn: Conv2d checks its input and gradient like the CPU layer", "[cuda][nn][gpu]") {
  CONTRA_REQUIRE_GPU();
  Rng init(5, 0, 0, 0, 0);
  gnn::Conv2d gpu("conv", 3, 8, 3, 1, 1, false, init);
  CHECK_THROWS_WITH(gpu.backward(cuda_twin::to_device(layer_twin::random({1, 4, 4, 8}, 1))),
                    "conv2d 'conv': backward() called before any train-mode forward()");
  CHECK_THROWS_WITH(gpu.forward(cuda_twin::to_device(layer_twin::random({1, 4, 4, 2}, 1)), Mode::train),
                    "conv2d 'conv': expected 3 input channels (NHWC [N, H, W, 3]), got shape [1, 4, 4, 2]");
  CHECK_THROWS_WITH(gpu.forward(layer_twin::random({1, 4, 4, 3}, 1), Mode::train),
                    "conv2d 'conv' (cuda): expected the input as an f32 cuda tensor, got f32 cpu [1, 4, 4, 3]");
}

TEST_CASE("cuda nn: Linear matches the CPU layer (f32, TF32, bf16 precision)", "[cuda][nn][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  for (bool bias : {true, false}) {
    for (auto [mode, precision, tol] :
         {std::tuple<cuda::MathMode, Precision, double>{cuda::MathMode::strict_f32, Precision::f32, 1e-5},
          {cuda::MathMode::tf32, Precision::f32, 1e-2},
          {cuda::MathMode::strict_f32, Precision::bf16, 2e-2}}) {
      if (precision == Precision::bf16 && !cpu_capabilities().bf16) continue;  // the CPU twin cannot run it
      cuda::set_math_mode(mode);
      INFO((bias ? "bias, " : "no bias, ") << cuda::math_mode_name(mode)
                                           << (precision == Precision::bf16 ? ", bf16 precision" : ""));
      Rng a(9, 0, 0, 0, 0), b(9, 0, 0, 0, 0);
      nn::Linear cpu("fc", 37, 19, bias, a, precision);
      gnn::Linear gpu("fc", 37, 19, bias, b, precision);
      compare_layer(cpu, gpu, Shape{13, 37}, tol);
    }
  }
}

TEST_CASE("cuda nn: BatchNorm matches the CPU layer, running statistics and frozen backward included",
          "[cuda][nn][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (const Shape& shape : {Shape{4, 5, 5, 6}, Shape{8, 6}, Shape{2, 3, 1, 6}}) {
    INFO("input " << shape.str());
    nn::BatchNorm cpu("bn", 6, 0.2, 1e-5);
    gnn::BatchNorm gpu("bn", 6, 0.2, 1e-5);
    compare_layer(cpu, gpu, shape, 1e-4, 3, /*eval_backward=*/true);
    layer_twin::check_buffers({{"running_mean", &cpu.running_mean()}, {"running_var", &cpu.running_var()}},
                              {{"running_mean", &gpu.running_mean()}, {"running_var", &gpu.running_var()}}, 1e-4);
  }
}

namespace {
// Stands for R ranks that hold the same batch: every sum is R times this one's.
struct IdenticalRanks final : BatchStatsReducer {
  explicit IdenticalRanks(double r) : ranks(r) {}
  void sum(double* values, std::size_t n) override {
    for (std::size_t i = 0; i < n; ++i) values[i] *= ranks;
    ++calls;
  }
  double ranks;
  int calls = 0;
};

// The rows of `a` twice, one copy after the other.
Tensor twice(const Tensor& a) {
  Shape s = a.shape();
  s[0] *= 2;
  Tensor out = Tensor::empty(s, DType::f32);
  std::copy_n(a.data<float>(), a.numel(), out.data<float>());
  std::copy_n(a.data<float>(), a.numel(), out.data<float>() + a.numel());
  return out;
}
}  // namespace

TEST_CASE("cuda nn: synchronised BatchNorm over two identical ranks equals the CPU layer over their joined batch",
          "[cuda][nn][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (const bool relu : {false, true})
    for (const Shape& shape : {Shape{4, 5, 5, 6}, Shape{8, 6}}) {
      INFO((relu ? "BatchNormReLU " : "BatchNorm ") << shape.str());
      const Tensor x = layer_twin::random(shape, 11), dy = layer_twin::random(shape, 12);
      std::unique_ptr<nn::Layer> cpu;
      std::unique_ptr<nn::Layer> gpu;
      if (relu) {
        cpu = std::make_unique<nn::BatchNormReLU>("bn", 6, 0.2, 1e-5);
        gpu = std::make_unique<gnn::BatchNormReLU>("bn", 6, 0.2, 1e-5);
      } else {
        cpu = std::make_unique<nn::BatchNorm>("bn", 6, 0.2, 1e-5);
        gpu = std::make_unique<gnn::BatchNorm>("bn", 6, 0.2, 1e-5);
      }
      // The CPU layer over both ranks' rows, unsynchronised: the oracle.
      const Tensor y_cpu = cpu->forward(twice(x), Mode::train).clone();
      const Tensor dx_cpu = cpu->backward(twice(dy), true).clone();
      IdenticalRanks ranks(2);
      Tensor y_gpu, dx_gpu;
      {
        const ScopedBatchStatsReducer sync(&ranks);
        y_gpu = layer_twin::host_of(gpu->forward(cuda_twin::to_device(x), Mode::train));
        dx_gpu = layer_twin::host_of(gpu->backward(cuda_twin::to_device(dy), true));
      }
      CHECK(ranks.calls == 2);
      // This rank's rows are the first copy.
      layer_twin::check_close("output", "bn", y_cpu.rows(0, shape[0]).clone(), y_gpu, 1e-4);
      layer_twin::check_close("input gradient", "bn", dx_cpu.rows(0, shape[0]).clone(), dx_gpu, 1e-4);
      // Each rank adds its own share of dγ and dβ: half of the joined batch's.
      std::vector<Parameter*> pc, pg;
      cpu->parameters(pc);
      gpu->parameters(pg);
      REQUIRE(pc.size() == pg.size());
      for (std::size_t i = 0; i < pc.size(); ++i) {
        Tensor doubled = layer_twin::host_of(pg[i]->grad).clone();
        for (std::int64_t j = 0; j < doubled.numel(); ++j) doubled.data<float>()[j] *= 2;
        layer_twin::check_close("gradient", pc[i]->name, pc[i]->grad, doubled, 1e-4);
      }
      std::vector<std::pair<std::string, Tensor*>> bc, bg;
      cpu->buffers(bc);
      gpu->buffers(bg);
      layer_twin::check_buffers(bc, bg, 1e-4);
    }
}

TEST_CASE("cuda nn: BatchNormReLU matches the CPU layer", "[cuda][nn][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (const Shape& shape : {Shape{4, 5, 5, 6}, Shape{8, 6}}) {
    INFO("input " << shape.str());
    nn::BatchNormReLU cpu("bn", 6, 0.2, 1e-5);
    gnn::BatchNormReLU gpu("bn", 6, 0.2, 1e-5);
    compare_layer(cpu, gpu, shape, 1e-4, 3);
  }
}

TEST_CASE("cuda nn: BatchNorm at a training step's size (N·H·W over a million) matches the CPU layer",
          "[cuda][nn][gpu]") {
  CONTRA_REQUIRE_GPU();
  // gpu_train_step's first stage: 1024 views of 32 × 32 with 64 channels. A
  // descriptor folding N·H·W into one dimension meets cuDNN's caps here.
  for (const Shape& shape : {Shape{1024, 32, 32, 64}, Shape{70000, 16}}) {
    INFO("input " << shape.str());
    nn::BatchNorm cpu("bn", shape[shape.rank() - 1], 0.1, 1e-5);
    gnn::BatchNorm gpu("bn", shape[shape.rank() - 1], 0.1, 1e-5);
    compare_layer(cpu, gpu, shape, 1e-4, 1, /*eval_backward=*/true);
  }
}

TEST_CASE("cuda nn: ReLU, pooling and Flatten match the CPU layers", "[cuda][nn][gpu]") {
  CONTRA_REQUIRE_GPU();
  {
    nn::ReLU cpu;
    gnn::ReLU gpu;
    compare_layer(cpu, gpu, Shape{3, 5, 4, 7}, 0.0);
  }
  {
    // Mostly negative inputs: a padded position that counted as 0 would win.
    // The maxima are exact, but overlapping windows add into dL/dx in another
    // order on cuDNN: a rounding's worth of tolerance.
    nn::MaxPool2d cpu(3, 2, 1);
    gnn::MaxPool2d gpu(3, 2, 1);
    compare_layer(cpu, gpu, Shape{2, 9, 8, 5}, 1e-6);
  }
  for (bool include : {true, false}) {
    INFO("count_include_pad " << include);
    nn::AvgPool2d cpu(3, 2, 1, include);
    gnn::AvgPool2d gpu(3, 2, 1, include);
    compare_layer(cpu, gpu, Shape{2, 9, 8, 5}, 1e-6);
  }
  {
    nn::AvgPool2d cpu(4, 4);
    gnn::AvgPool2d gpu(4, 4);
    compare_layer(cpu, gpu, Shape{3, 8, 8, 6}, 1e-6);
  }
  {
    nn::GlobalAvgPool cpu;
    gnn::GlobalAvgPool gpu;
    compare_layer(cpu, gpu, Shape{3, 7, 6, 10}, 1e-6);
  }
  {
    nn::Flatten cpu;
    gnn::Flatten gpu;
    compare_layer(cpu, gpu, Shape{3, 2, 2, 5}, 0.0);
  }
}

TEST_CASE("cuda nn: a Sequential of GPU layers matches the same Sequential on the CPU", "[cuda][nn][gpu]") {
  CONTRA_REQUIRE_GPU();
  Rng a(3, 0, 0, 0, 0), b(3, 0, 0, 0, 0);
  nn::Sequential cpu, gpu;
  cpu.emplace<nn::Conv2d>("c", 2, 4, 3, 1, 1, false, a);
  cpu.emplace<nn::BatchNorm>("bn", 4);
  cpu.emplace<nn::ReLU>();
  cpu.emplace<nn::MaxPool2d>(3, 2, 1);
  cpu.emplace<nn::GlobalAvgPool>();
  cpu.emplace<nn::Linear>("fc", 4, 3, true, a);
  gpu.emplace<gnn::Conv2d>("c", 2, 4, 3, 1, 1, false, b);
  gpu.emplace<gnn::BatchNorm>("bn", 4);
  gpu.emplace<gnn::ReLU>();
  gpu.emplace<gnn::MaxPool2d>(3, 2, 1);
  gpu.emplace<gnn::GlobalAvgPool>();
  gpu.emplace<gnn::Linear>("fc", 4, 3, true, b);
  compare_layer(cpu, gpu, Shape{4, 8, 8, 2}, 1e-4);
}

TEST_CASE("cuda nn: add, accumulate and the layout changes match the CPU functions", "[cuda][nn][gpu]") {
  CONTRA_REQUIRE_GPU();
  const Tensor a = layer_twin::random({3, 4, 5, 6}, 1), b = layer_twin::random({3, 4, 5, 6}, 2);
  Tensor ad = cuda_twin::to_device(a), bd = cuda_twin::to_device(b);
  Tensor sum, sum_d;
  nn::add(a, b, sum);
  gnn::add(ad, bd, sum_d);
  layer_twin::check_close("add", "a + b", sum, sum_d, 0.0);
  gnn::add(ad, bd, ad);  // in place
  layer_twin::check_close("add", "a += b", sum, ad, 0.0);
  Tensor twice = sum.clone();
  nn::accumulate(twice, sum);
  gnn::accumulate(ad, ad);
  layer_twin::check_close("accumulate", "into += into", twice, ad, 0.0);
  CHECK_THROWS_WITH(gnn::add(bd, cuda_twin::to_device(layer_twin::random({3, 4, 5}, 3)), sum_d),
                    "add: shapes differ: a is [3, 4, 5, 6], b is [3, 4, 5]");
  Tensor nhwc, nhwc_d, nchw, nchw_d;
  nn::nchw_to_nhwc(a, nhwc);
  gnn::nchw_to_nhwc(cuda_twin::to_device(a), nhwc_d);
  layer_twin::check_close("nchw_to_nhwc", "x", nhwc, nhwc_d, 0.0);
  nn::nhwc_to_nchw(a, nchw);
  gnn::nhwc_to_nchw(cuda_twin::to_device(a), nchw_d);
  layer_twin::check_close("nhwc_to_nchw", "x", nchw, nchw_d, 0.0);
}
