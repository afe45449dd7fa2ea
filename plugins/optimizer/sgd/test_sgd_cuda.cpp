// sgd's cuda build against its CPU build (the oracle). The kernels spell out
// the CPU's arithmetic; only multiply-adds contracted differently by g++ and
// nvcc can differ in the last bit: 1e-5 of the largest entry after 4 steps.
#include "sgd.hpp"
#include "sgd_cuda.hpp"

#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <tuple>
#include <vector>

using contra::plugins::Sgd;
using contra::plugins::SgdCuda;
using namespace cuda_twin;

TEST_CASE("sgd cuda: schema and parameter checks are the CPU build's", "[plugins][sgd][cuda]") {
  CHECK(SgdCuda::schema().describe() == Sgd::schema().describe());
  CHECK_THROWS_AS(SgdCuda(Sgd::schema().bind({{"momentum", 0.0}, {"nesterov", true}})), contra::ConfigError);
}

TEST_CASE("sgd cuda: refuses parameters on the CPU", "[plugins][sgd][cuda]") {
  SgdCuda opt(Sgd::schema().bind({}));
  contra::Parameter w{"w", contra::Tensor::zeros({2}, contra::DType::f32), contra::Tensor::zeros({2}, contra::DType::f32)};
  CHECK_THROWS_WITH(opt.configure({&w}),
                    "sgd (cuda): parameter 'w' and its gradient must be on cuda, found them on cpu and cpu");
  CHECK_THROWS_WITH(opt.step({0, 1.0}), "sgd: step() called before configure()");
}

TEST_CASE("sgd cuda: plain, momentum and Nesterov steps match the CPU build", "[plugins][sgd][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (auto [momentum, nesterov, wd] : {std::tuple<double, bool, double>{0.0, false, 0.0},
                                        {0.0, false, 1e-2},
                                        {0.9, false, 5e-4},
                                        {0.9, true, 5e-4},
                                        {0.5, true, 0.0}}) {
    INFO("momentum " << momentum << ", nesterov " << nesterov << ", weight_decay " << wd);
    contra::Params p = Sgd::schema().bind({{"lr", 0.05}, {"momentum", momentum}, {"nesterov", nesterov},
                                           {"weight_decay", wd}});
    Sgd cpu(p);
    SgdCuda gpu(p);
    TwinParameters params({1000, 37, 1, 1200000}, {true, false, true, true}, 3);
    compare_optimizer(cpu, gpu, params, 4, 1e-5);
  }
}
