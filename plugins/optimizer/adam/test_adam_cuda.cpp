// adam's cuda build against its CPU build (the oracle). The kernel spells out
// the CPU's arithmetic; only multiply-adds contracted differently by g++ and
// nvcc can differ in the last bit: 1e-5 of the largest entry after 4 steps.
#include "adam.hpp"
#include "adam_cuda.hpp"

#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <vector>

using contra::plugins::Adam;
using contra::plugins::AdamCuda;
using namespace cuda_twin;

TEST_CASE("adam cuda: schema is the CPU build's", "[plugins][adam][cuda]") {
  CHECK(AdamCuda::schema().describe() == Adam::schema().describe());
}

TEST_CASE("adam cuda: refuses parameters on the CPU", "[plugins][adam][cuda]") {
  AdamCuda opt(Adam::schema().bind({}));
  contra::Parameter w{"w", contra::Tensor::zeros({2}, contra::DType::f32), contra::Tensor::zeros({2}, contra::DType::f32)};
  CHECK_THROWS_WITH(opt.configure({&w}),
                    "adam (cuda): parameter 'w' and its gradient must be on cuda, found them on cpu and cpu");
  CHECK_THROWS_WITH(opt.step({0, 1.0}), "adam: step() called before configure()");
}

TEST_CASE("adam cuda: steps match the CPU build, with and without weight decay", "[plugins][adam][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (double wd : {0.0, 1e-2}) {
    INFO("weight_decay " << wd);
    contra::Params p = Adam::schema().bind({{"lr", 1e-2}, {"beta1", 0.8}, {"beta2", 0.95}, {"weight_decay", wd}});
    Adam cpu(p);
    AdamCuda gpu(p);
    TwinParameters params({1000, 37, 1, 1200000}, {true, false, true, true}, 4);
    compare_optimizer(cpu, gpu, params, 4, 1e-5);
  }
}
