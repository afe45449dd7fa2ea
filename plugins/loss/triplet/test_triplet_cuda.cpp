// triplet's cuda build against its CPU build (the oracle). Strict f32: 1e-4 of
// the value and of the gradient's largest entry (distances from the same Gram
// form, kept in float on the GPU and in double on the CPU; random inputs put
// no triplet within 1e-6 of the hinge). TF32 only with the soft margin (no
// hinge to flip): 2e-2 and 5e-2.
#include "triplet.hpp"
#include "triplet_cuda.hpp"

#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

using contra::plugins::Triplet;
using contra::plugins::TripletCuda;
using namespace cuda_twin;

namespace {

struct Options {
  double margin = 0.2;
  const char* distance = "euclidean";
  bool squared = false;
  bool soft = false;
  const char* reduction = "mean";
  bool normalize = false;
  std::int64_t chunk = 1024;
};

contra::Params params(const Options& o) {
  return Triplet::schema().bind({{"margin", o.margin},
                                 {"distance", std::string(o.distance)},
                                 {"squared", o.squared},
                                 {"soft_margin", o.soft},
                                 {"reduction", std::string(o.reduction)},
                                 {"normalize", o.normalize},
                                 {"chunk", o.chunk}});
}

std::vector<Options> variants() {
  std::vector<Options> v(7);
  v[1].squared = true;
  v[1].margin = 1.0;
  v[2].distance = "cosine";
  v[3].normalize = true;
  v[4].soft = true;
  v[5].reduction = "mean_nonzero";
  v[5].chunk = 7;
  v[6].distance = "cosine";
  v[6].chunk = 5;
  return v;
}

}  // namespace

TEST_CASE("triplet cuda: schema and parameter checks are the CPU build's", "[plugins][triplet][cuda]") {
  CHECK(TripletCuda::schema().describe() == Triplet::schema().describe());
  Options o;
  o.distance = "cosine";
  o.squared = true;
  CHECK_THROWS_AS(TripletCuda(params(o)), contra::ConfigError);
}

TEST_CASE("triplet cuda: refuses CPU embeddings and malformed triplets with the CPU build's messages",
          "[plugins][triplet][cuda]") {
  // Every check comes before any GPU work, so this runs without a GPU too.
  TripletCuda loss(params({}));
  contra::Tensor z = random_matrix(4, 3, 1);
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings e{z, &sample};
  contra::LossResult out;
  CHECK_THROWS_WITH(loss.compute(e, all_pairs(), out),
                    "triplet: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
  contra::Embeddings labelled = e;
  labelled.z = contra::Tensor::wrap(z.raw(), z.shape(), contra::DType::f32, contra::Device::cuda);
  contra::Pairs mined;
  mined.triplets = {{0, 2, 1}, {0, 2, 4}};
  CHECK_THROWS_WITH(loss.compute(labelled, mined, out), "triplet: triplet (0, 2, 4) is outside the 4 rows");
  std::vector<std::int64_t> alone = {0, 1, 2, 3};
  labelled.sample = &alone;
  CHECK_THROWS_WITH(loss.compute(labelled, all_pairs(), out),
                    "triplet: the batch of 4 rows has no (anchor, positive, negative) triplet; it needs at least 2 "
                    "views per sample and 2 samples");
}

TEST_CASE("triplet cuda: every triplet of the batch matches the CPU build", "[plugins][triplet][gpu]") {
  CONTRA_REQUIRE_GPU();
  contra::Tensor z = random_matrix(3 * 11, 16, 41);
  std::vector<std::int64_t> sample = samples(11, 3);
  contra::Embeddings e{z, &sample};
  e.views = 3;
  for (const Options& o : variants()) {
    INFO("distance " << o.distance << ", squared " << o.squared << ", soft " << o.soft << ", reduction "
                     << o.reduction << ", normalize " << o.normalize << ", chunk " << o.chunk);
    Triplet cpu(params(o));
    TripletCuda gpu(params(o));
    compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4);
  }
}

TEST_CASE("triplet cuda: mined triplets match the CPU build", "[plugins][triplet][gpu]") {
  CONTRA_REQUIRE_GPU();
  const std::int32_t n = 20;
  contra::Tensor z = random_matrix(2 * n, 24, 42);
  std::vector<std::int64_t> sample = samples(n, 2);
  contra::Embeddings e{z, &sample};
  contra::Pairs mined;
  for (std::int32_t a = 0; a < 2 * n; ++a)
    for (std::int32_t k = 1; k <= 3; ++k) mined.triplets.push_back({a, (a + n) % (2 * n), (a + 5 * k) % (2 * n)});
  mined.triplets.push_back({0, n, 1});  // repeated: counts twice
  for (const Options& o : variants()) {
    INFO("distance " << o.distance << ", squared " << o.squared << ", soft " << o.soft << ", reduction "
                     << o.reduction << ", normalize " << o.normalize);
    Triplet cpu(params(o));
    TripletCuda gpu(params(o));
    compare_loss(cpu, gpu, e, mined, 1e-4, 1e-4);
  }
}

TEST_CASE("triplet cuda: a miner that finds nothing gives a zero loss and gradient", "[plugins][triplet][gpu]") {
  CONTRA_REQUIRE_GPU();
  contra::Tensor z = random_matrix(6, 4, 43);
  std::vector<std::int64_t> sample = samples(3, 2);
  contra::Embeddings e{z, &sample};
  e.z = to_device(z);
  TripletCuda gpu(params({}));
  contra::LossResult out;
  gpu.compute(e, contra::Pairs{}, out);
  CHECK(out.value == 0.0);
  REQUIRE(out.grad.device() == contra::Device::cuda);
  contra::Tensor g = to_host(out.grad);
  CHECK(*std::max_element(g.data<float>(), g.data<float>() + g.numel()) == 0.0f);
  CHECK(*std::min_element(g.data<float>(), g.data<float>() + g.numel()) == 0.0f);
}

TEST_CASE("triplet cuda: TF32 Gram blocks stay close with the soft margin", "[plugins][triplet][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::tf32);
  contra::Tensor z = random_matrix(2 * 128, 64, 44);
  std::vector<std::int64_t> sample = samples(128, 2);
  contra::Embeddings e{z, &sample};
  Options o;
  o.soft = true;
  o.chunk = 100;
  Triplet cpu(params(o));
  TripletCuda gpu(params(o));
  compare_loss(cpu, gpu, e, all_pairs(), 2e-2, 5e-2);
}

TEST_CASE("triplet cuda: near pairs get the CPU build's exact gradient", "[plugins][triplet][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  // Views 1e-5 apart and sample pairs 1e-5 apart: positives and negatives
  // whose coefficient g/d is about 10⁵. Through the Gram form their gradient
  // would be off by about 1e-2 of the largest entry; added directly, as on
  // the CPU, it agrees to 1e-4.
  const std::int64_t n = 12;
  contra::Tensor z = near_rows(n, 2, 16, 1e-5, 1e-5, 62);
  std::vector<std::int64_t> sample = samples(n, 2);
  contra::Embeddings e{z, &sample};
  e.views = 2;
  for (const Options& o : variants()) {
    if (std::string(o.distance) == "cosine" || o.normalize) continue;  // the Euclidean Gram form only
    INFO("squared " << o.squared << ", soft " << o.soft << ", reduction " << o.reduction << ", chunk " << o.chunk);
    Triplet cpu(params(o));
    TripletCuda gpu(params(o));
    compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4);
  }
}
