// layers: the CPU layers contra computes itself, against what they replace,
// in one process: Conv2d by Winograd F(2x2, 3x3) against oneDNN's direct
// kernels (forward, dL/dx, dL/dW), MaxPool2d against oneDNN's max pooling
// (forward and backward). Each figure is the best of --reps runs, A and B
// alternating, on --threads OpenMP threads.
//
//   build/bench/layers [--threads 2] [--reps 5]

#include <contra/cpu.hpp>
#include <contra/nn/conv2d.hpp>
#include <contra/nn/pooling.hpp>
#include <contra/testing.hpp>

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace contra;
using Clock = std::chrono::steady_clock;

namespace {

int reps = 5;

double ms(const std::function<void()>& f) {
  auto t = Clock::now();
  f();
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Best time of each of the named calls, run in turn `reps` times.
std::vector<double> best_of(const std::vector<std::function<void()>>& calls) {
  std::vector<double> best(calls.size(), 1e30);
  for (int r = 0; r < reps; ++r)
    for (std::size_t i = 0; i < calls.size(); ++i) best[i] = std::min(best[i], ms(calls[i]));
  return best;
}

void conv(std::int64_t n, std::int64_t c, std::int64_t k, std::int64_t hw) {
  Rng init(1, 0, 0, 0, 0);
  nn::Conv2d direct("direct", c, k, 3, 1, 1, false, init), wino("winograd", c, k, 3, 1, 1, false, init);
  direct.set_algorithm(nn::ConvAlgorithm::direct);
  wino.set_algorithm(nn::ConvAlgorithm::winograd);
  const Tensor x = testing::random_tensor({n, hw, hw, c}, 1), dy = testing::random_tensor({n, hw, hw, k}, 2);
  for (nn::Conv2d* l : {&direct, &wino}) {  // primitives built, memory touched
    l->forward(x, Mode::train);
    l->backward(dy, true);
  }
  // dL/dx alone = (backward with dL/dx) − (backward without).
  const std::vector<double> t = best_of({[&] { direct.forward(x, Mode::train); }, [&] { wino.forward(x, Mode::train); },
                                         [&] { direct.backward(dy, true); }, [&] { wino.backward(dy, true); },
                                         [&] { direct.backward(dy, false); }, [&] { wino.backward(dy, false); }});
  std::printf("conv 3x3 %3lld->%-3lld [%lld, %lld, %lld]  direct  %7.1f %7.1f %7.1f   winograd  %7.1f %7.1f %7.1f\n",
              static_cast<long long>(c), static_cast<long long>(k), static_cast<long long>(n),
              static_cast<long long>(hw), static_cast<long long>(hw), t[0], t[2] - t[4], t[4], t[1], t[3] - t[5], t[5]);
}

void max_pool(std::int64_t n, std::int64_t hw, std::int64_t c) {
  using namespace dnnl;
  nn::MaxPool2d mine(3, 2, 1);
  const Tensor x = testing::random_tensor({n, hw, hw, c}, 1);
  const std::int64_t o = (hw - 1) / 2 + 1;
  const Tensor dy = testing::random_tensor({n, o, o, c}, 2);
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  const memory::desc src({n, c, hw, hw}, memory::data_type::f32, memory::format_tag::nhwc),
      dst({n, c, o, o}, memory::data_type::f32, memory::format_tag::nhwc);
  pooling_forward::primitive_desc f(pooling_forward::desc(prop_kind::forward_training, algorithm::pooling_max, src,
                                                          dst, {2, 2}, {3, 3}, {1, 1}, {1, 1}),
                                    eng);
  pooling_backward::primitive_desc b(
      pooling_backward::desc(algorithm::pooling_max, src, dst, {2, 2}, {3, 3}, {1, 1}, {1, 1}), eng, f);
  memory mx(src, eng, const_cast<void*>(x.raw())), my(dst, eng), mdy(dst, eng, const_cast<void*>(dy.raw())),
      mdx(src, eng), ws(f.workspace_desc(), eng);
  pooling_forward pf(f);
  pooling_backward pb(b);
  auto theirs_fwd = [&] {
    pf.execute(s, {{DNNL_ARG_SRC, mx}, {DNNL_ARG_DST, my}, {DNNL_ARG_WORKSPACE, ws}});
    s.wait();
  };
  auto theirs_bwd = [&] {
    pb.execute(s, {{DNNL_ARG_DIFF_DST, mdy}, {DNNL_ARG_DIFF_SRC, mdx}, {DNNL_ARG_WORKSPACE, ws}});
    s.wait();
  };
  mine.forward(x, Mode::train);
  mine.backward(dy);
  theirs_fwd();
  theirs_bwd();
  const std::vector<double> t = best_of({[&] { mine.forward(x, Mode::train); }, theirs_fwd,
                                         [&] { mine.backward(dy); }, theirs_bwd});
  std::printf("max pool 3/2/1 [%lld, %lld, %lld, %lld]      contra  %7.1f %7.1f   oneDNN  %7.1f %7.1f\n",
              static_cast<long long>(n), static_cast<long long>(hw), static_cast<long long>(hw),
              static_cast<long long>(c), t[0], t[2], t[1], t[3]);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: layers [--threads T] [--reps N]\n");
      return 2;
    }
  }
  omp_set_num_threads(threads);
  std::printf("layers: best of %d runs, ms, %d threads; cpu: %s\n", reps, threads,
              cpu_capabilities().summary().c_str());
  try {
    std::printf("\n%-38s          %7s %7s %7s              %7s %7s %7s\n", "", "fwd", "dL/dx", "dL/dW", "fwd", "dL/dx",
                "dL/dW");
    conv(512, 64, 64, 14);
    conv(512, 64, 128, 14);
    conv(512, 128, 128, 14);
    conv(256, 64, 64, 32);
    conv(256, 256, 256, 8);
    std::printf("\n%-38s          %7s %7s          %7s %7s\n", "", "fwd", "bwd", "fwd", "bwd");
    max_pool(512, 28, 64);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "layers: %s\n", e.what());
    return 1;
  }
  return 0;
}
