// supcon's cuda build against its CPU build (the oracle): strict f32 1e-4 of
// the value and of the gradient's largest entry (see test_info_nce_cuda.cpp).
#include "supcon.hpp"
#include "supcon_cuda.hpp"

#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

using contra::plugins::SupCon;
using contra::plugins::SupConCuda;
using namespace cuda_twin;

namespace {

contra::Params params(double t, std::int64_t chunk = 1024) {
  return SupCon::schema().bind({{"temperature", t}, {"chunk", chunk}});
}

}  // namespace

TEST_CASE("supcon cuda: schema is the CPU build's", "[plugins][supcon][cuda]") {
  CHECK(SupConCuda::schema().describe() == SupCon::schema().describe());
}

TEST_CASE("supcon cuda: refuses anything but Pairs::all, and CPU embeddings", "[plugins][supcon][cuda]") {
  SupConCuda loss(params(0.1));
  contra::Tensor z = random_matrix(4, 3, 1);
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings e{z, &sample};
  contra::LossResult out;
  CHECK_THROWS_WITH(loss.compute(e, contra::Pairs{}, out),
                    "supcon: nothing selected to compute on; it takes Pairs::all (the all_pairs miner) only");
  CHECK_THROWS_WITH(loss.compute(e, all_pairs(), out),
                    "supcon: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
}

TEST_CASE("supcon cuda: by sample and by class, matches the CPU build", "[plugins][supcon][gpu]") {
  CONTRA_REQUIRE_GPU();
  const std::int64_t n = 33;
  contra::Tensor z = random_matrix(2 * n, 36, 12);
  std::vector<std::int64_t> sample = samples(n, 2), label;
  for (std::int64_t s : sample) label.push_back(s == 32 ? 99 : s % 5);  // class 99 is one sample only
  for (bool labelled : {false, true})
    for (std::int64_t chunk : {std::int64_t{1024}, std::int64_t{4}}) {
      INFO("labels " << labelled << ", chunk " << chunk);
      contra::Embeddings e{z, &sample};
      if (labelled) e.label = &label;
      SupCon cpu(params(0.1));
      SupConCuda gpu(params(0.1, chunk));
      compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4);
    }
}

TEST_CASE("supcon cuda: 2N = 2048 matches the CPU build, and TF32 stays close", "[plugins][supcon][gpu]") {
  CONTRA_REQUIRE_GPU();
  contra::Tensor z = random_matrix(2048, 128, 13);
  std::vector<std::int64_t> sample = samples(1024, 2);
  contra::Embeddings e{z, &sample};
  SupCon cpu(params(0.5));
  SupConCuda gpu(params(0.5, 300));
  compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4);
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::tf32);
  compare_loss(cpu, gpu, e, all_pairs(), 1e-2, 5e-2);
}
