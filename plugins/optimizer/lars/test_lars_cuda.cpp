// lars's cuda build against its CPU build (the oracle). The norms are summed
// in double in another order (trust ratios agree to ~1e-15); the updates spell
// out the CPU's arithmetic: 1e-5 of the largest entry after 4 steps.
#include "lars.hpp"
#include "lars_cuda.hpp"

#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <vector>

using contra::plugins::Lars;
using contra::plugins::LarsCuda;
using namespace cuda_twin;

TEST_CASE("lars cuda: schema and parameter checks are the CPU build's", "[plugins][lars][cuda]") {
  CHECK(LarsCuda::schema().describe() == Lars::schema().describe());
  CHECK_THROWS_AS(LarsCuda(Lars::schema().bind({{"momentum", 1.0}})), contra::ConfigError);
}

TEST_CASE("lars cuda: refuses parameters on the CPU", "[plugins][lars][cuda]") {
  LarsCuda opt(Lars::schema().bind({}));
  contra::Parameter w{"w", contra::Tensor::zeros({2}, contra::DType::f32), contra::Tensor::zeros({2}, contra::DType::f32)};
  CHECK_THROWS_WITH(opt.configure({&w}),
                    "lars (cuda): parameter 'w' and its gradient must be on cuda, found them on cpu and cpu");
  CHECK_THROWS_WITH(opt.step({0, 1.0}), "lars: step() called before configure()");
}

TEST_CASE("lars cuda: steps and trust ratios match the CPU build", "[plugins][lars][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (double momentum : {0.9, 0.0}) {
    INFO("momentum " << momentum);
    contra::Params p = Lars::schema().bind({{"lr", 0.3}, {"momentum", momentum}, {"weight_decay", 1e-4}});
    Lars cpu(p);
    LarsCuda gpu(p);
    TwinParameters params({1000, 37, 1, 1200000, 5}, {true, false, true, true, false}, 5);
    compare_optimizer(cpu, gpu, params, 4, 1e-5);
    for (std::size_t i = 0; i < params.host.size(); ++i) {
      INFO("parameter " << i);
      CHECK(gpu.trust_ratio(i) == Approx(cpu.trust_ratio(i)).epsilon(1e-9));
    }
  }
}

TEST_CASE("lars cuda: a zero weight tensor keeps the ratio 1, as on the CPU", "[plugins][lars][gpu]") {
  CONTRA_REQUIRE_GPU();
  contra::Params p = Lars::schema().bind({{"lr", 0.1}});
  Lars cpu(p);
  LarsCuda gpu(p);
  TwinParameters params({64}, {true}, 6);
  params.host[0].value.zero();
  params.dev[0].value = to_device(params.host[0].value);
  compare_optimizer(cpu, gpu, params, 1, 1e-5);
  CHECK(cpu.trust_ratio(0) == 1.0);
  CHECK(gpu.trust_ratio(0) == 1.0);
}
